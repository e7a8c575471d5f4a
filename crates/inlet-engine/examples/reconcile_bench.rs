//! Reconcile benchmark: a stream with N stored records (default 1,000,000) against a
//! provider id listing of the same size (1% of the stored ids gone, 1% new), on SQLite.
//! Prints the reconcile's seconds and the peak RSS during it.
//!
//! `cargo run --release -p inlet-engine --example reconcile_bench -- [N] [postgres://.../ADMIN_DB]`
//!
//! With a PostgreSQL URL, a database `inlet_reconcile_bench_<pid>` is created next to
//! the given one and dropped afterwards.

use inlet_core::ColType::{Text, Time};
use inlet_core::{
    Clock, Column, Connector, ConnectorError, HttpStats, IdPage, NewConnection, Page, PageBatch,
    Record, RunMode, StopRule, StreamSpec, SyncState, SystemClock, Timestamp, Value,
};
use inlet_engine::{Engine, NoProgress, SyncOptions};
use std::sync::Arc;
use std::time::Instant;

static COLUMNS: &[Column] = &[
    Column::new("video_id", Text, ""),
    Column::new("link", Text, ""),
    Column::new("url", Text, ""),
    Column::new("favorited_at", Time, ""),
];
static STREAMS: [StreamSpec; 1] = [StreamSpec {
    name: "favorites",
    table: "tiktok_favorites",
    doc: "",
    columns: COLUMNS,
    scope: None,
    stop: StopRule::Never,
    listing_cap: None,
    derived: None,
}];

fn id(i: u64) -> String {
    format!("{}", 7_300_000_000_000_000_000u64 + i)
}

/// Lists ids `gone..n+gone` in pages of 1,000 (ids below `gone` were removed, the last
/// `gone` are new).
struct Ids {
    n: u64,
    gone: u64,
}

#[async_trait::async_trait]
impl Connector for Ids {
    fn provider(&self) -> &'static str {
        "bench"
    }
    fn streams(&self) -> &'static [StreamSpec] {
        &STREAMS
    }
    async fn fetch_page(&self, _: &StreamSpec, _: Option<&str>) -> Result<Page, ConnectorError> {
        Ok(Page::default())
    }
    fn http_stats(&self) -> HttpStats {
        HttpStats::default()
    }
    fn reconciles(&self, _: &StreamSpec) -> bool {
        true
    }
    async fn fetch_id_page(
        &self,
        _: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        let start: u64 = cursor
            .map_or(Ok(self.gone), str::parse)
            .map_err(|e| ConnectorError::Parse(format!("bad cursor: {e}")))?;
        let end = (start + 1000).min(self.n + self.gone);
        Ok(IdPage {
            ids: (start..end).map(id).collect(),
            next: (end < self.n + self.gone).then(|| end.to_string()),
            records: Vec::new(),
        })
    }
}

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let pg = match args.get(2) {
        Some(admin) => Some(PgBenchDb::create(admin).await?),
        None => None,
    };
    let url = pg.as_ref().map_or_else(
        || dir.path().join("bench.db").display().to_string(),
        |p| p.url.clone(),
    );
    let result = bench(n, &url).await;
    if let Some(p) = pg {
        p.drop_db().await?;
    }
    result
}

/// A throwaway PostgreSQL database for the benchmark.
struct PgBenchDb {
    admin: String,
    name: String,
    url: String,
}

impl PgBenchDb {
    async fn create(admin: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let name = format!("inlet_reconcile_bench_{}", std::process::id());
        let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .ok_or("the PostgreSQL URL must end with /DATABASE")?;
        Ok(PgBenchDb {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    async fn drop_db(self) -> Result<(), Box<dyn std::error::Error>> {
        let (client, conn) = tokio_postgres::connect(&self.admin, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

async fn bench(n: u64, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = inlet_store::open(url).await?;
    let now = SystemClock.now();
    let conn = store
        .create_connection(
            &NewConnection {
                name: format!("bench-{}", now.0),
                workspace: "bench".into(),
                provider: "bench".into(),
                config: serde_json::json!({}),
                credentials: vec![0],
            },
            now,
        )
        .await?;
    let t0 = Instant::now();
    let spec = &STREAMS[0];
    let mut state = SyncState {
        cursor: Some(now.millis().to_string()),
        sync_count: 1,
        ..SyncState::default()
    };
    for chunk in 0..n.div_ceil(5000) {
        let records = (chunk * 5000..((chunk + 1) * 5000).min(n))
            .map(|i| {
                let vid = id(i);
                Record {
                    values: vec![
                        Value::Text(vid.clone()),
                        Value::Text(format!("https://www.tiktokv.com/share/video/{vid}/")),
                        Value::Text(format!("https://www.tiktok.com/@/video/{vid}")),
                        Value::Time(Timestamp::from_secs(1_700_000_000 + i as i64)),
                    ],
                    raw: format!(r#"{{"Date":"2024-01-01 00:00:00","Link":"https://www.tiktokv.com/share/video/{vid}/"}}"#),
                    sort_ts: None,
                    id: vid,
                }
            })
            .collect();
        store
            .commit_page(PageBatch {
                connection_id: conn.id,
                stream: spec,
                records,
                state: &state,
                refresh_derived: false,
                at: now,
            })
            .await?;
    }
    state.checkpoint = None;
    store.put_sync_state(conn.id, spec.name, &state).await?;
    println!(
        "stored {n} records in {:.1}s ({})",
        t0.elapsed().as_secs_f64(),
        store.backend()
    );
    // Measure the reconcile alone: reset the peak RSS (Linux) before it.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let engine = Engine::new(store.clone(), Arc::new(SystemClock));
    let gone = n / 100;
    let t = Instant::now();
    let run = engine
        .sync(
            &conn,
            &Ids { n, gone },
            &SyncOptions::new(RunMode::Reconcile),
            &NoProgress,
        )
        .await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "reconcile of {n} stored vs {n} listed ids: {secs:.2}s, peak RSS {:.0} MB, status {}, tombstoned {} (expected {gone})",
        peak_rss_mb(),
        run.status,
        run.stats.deleted
    );
    if run.stats.deleted != gone {
        return Err(format!(
            "expected {gone} tombstones, got {}: {:?}",
            run.stats.deleted, run.error
        )
        .into());
    }
    Ok(())
}
