//! Shared test harness: fresh databases on both backends, a simulator-backed Reddit
//! connection, and the "database equals the simulator's truth" check.
#![allow(dead_code)]

use inlet_connectors::reddit::streams::STREAMS;
use inlet_connectors::reddit::{RedditConfig, RedditConnector, RedditCredentials};
use inlet_core::secrets::SecretBox;
use inlet_core::{Clock, Connection, NewConnection, Store, StreamSpec, SystemClock};
use inlet_engine::Engine;
use inlet_http::{HttpConfig, RetryPolicy};
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Where a test's data lives.
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database; dropped (PostgreSQL) or deleted (SQLite) by `cleanup`.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

pub fn pg_admin_url() -> String {
    std::env::var("INLET_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = dir.path().join("inlet.db").display().to_string();
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres => {
                let admin = pg_admin_url();
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL is required for these tests and is not reachable at {admin}: {e}. Start it (see README) or set INLET_TEST_PG_URL.")
                });
                tokio::spawn(conn);
                let name = format!("inlet_e2e_{:x}", rand_u64());
                client
                    .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .expect("admin URL ends with /db");
                TestDb {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    pg: Some((admin, name)),
                }
            }
        }
    }

    /// A handle on a database another `TestDb` made (not dropped by this one).
    pub fn existing(url: String) -> TestDb {
        TestDb {
            url,
            _dir: None,
            pg: None,
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        inlet_store::open(&self.url).await.expect("open store")
    }

    pub async fn cleanup(self) {
        if let Some((admin, name)) = &self.pg
            && let Ok((client, conn)) = tokio_postgres::connect(admin, tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random");
    u64::from_le_bytes(b)
}

/// Runs an async test body on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = common::TestDb::new(common::Backend::Sqlite).await;
                $body(&db).await;
                db.cleanup().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = common::TestDb::new(common::Backend::Postgres).await;
                $body(&db).await;
                db.cleanup().await;
            }
        }
    };
}

pub fn key() -> SecretBox {
    SecretBox::new(&[7u8; 32])
}

/// The Reddit config and credentials that reach `sim`.
pub fn reddit_settings(
    sim: &RedditSim,
    cfg: &RedditSimConfig,
) -> (RedditConfig, RedditCredentials) {
    let config = RedditConfig {
        api_base: sim.api_base(),
        token_url: sim.token_url(),
        user_agent: Some("inlet-tests/0.1 (by /u/sim_user)".into()),
        username: Some(cfg.username.clone()),
        page_size: 100,
        http: Default::default(),
    };
    let creds = RedditCredentials {
        client_id: cfg.client_id.clone(),
        client_secret: cfg.client_secret.clone(),
        refresh_token: Some(cfg.refresh_token.clone()),
        ..Default::default()
    };
    (config, creds)
}

pub async fn create_connection(
    store: &dyn Store,
    sim: &RedditSim,
    cfg: &RedditSimConfig,
) -> Connection {
    create_named_connection(store, sim, cfg, "reddit-test").await
}

/// A connection named `name` to the account `cfg` describes on `sim`.
pub async fn create_named_connection(
    store: &dyn Store,
    sim: &RedditSim,
    cfg: &RedditSimConfig,
    name: &str,
) -> Connection {
    let (config, creds) = reddit_settings(sim, cfg);
    let sealed = key()
        .seal(&serde_json::to_vec(&creds).expect("json"), b"test")
        .expect("seal");
    let new = NewConnection {
        name: name.into(),
        workspace: "tests".into(),
        provider: "reddit".into(),
        config: serde_json::to_value(&config).expect("json"),
        credentials: sealed,
    };
    store
        .create_connection(&new, SystemClock.now())
        .await
        .expect("create connection")
}

/// A simulator for `cfg`, the test database's store, and a connection to the simulator.
pub async fn setup(db: &TestDb, cfg: &RedditSimConfig) -> (RedditSim, Arc<dyn Store>, Connection) {
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let store = db.store().await;
    let conn = create_connection(&*store, &sim, cfg).await;
    (sim, store, conn)
}

/// Fast retries so fault tests stay short.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        retry: RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(100),
            deadline: Duration::from_secs(30),
        },
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

/// A connector for the connection's current stored credentials.
pub fn connector(store_conn: &Connection) -> RedditConnector {
    connector_with(store_conn, http_config())
}

/// A connector for the connection's current stored credentials, with `http` settings.
pub fn connector_with(store_conn: &Connection, http: HttpConfig) -> RedditConnector {
    let config: RedditConfig = serde_json::from_value(store_conn.config.clone()).expect("config");
    let plain = key()
        .open(&store_conn.credentials, b"test")
        .expect("open creds");
    let creds: RedditCredentials = serde_json::from_slice(&plain).expect("creds");
    RedditConnector::new(config, &creds, http).expect("connector")
}

pub fn engine(store: Arc<dyn Store>) -> Engine {
    let k = Arc::new(key());
    Engine::new(store, Arc::new(SystemClock)).with_sealer(Arc::new(
        move |_c: &Connection, v: &serde_json::Value| {
            k.seal(&serde_json::to_vec(v).map_err(|e| e.to_string())?, b"test")
                .map_err(|e| e.to_string())
        },
    ))
}

pub fn spec(name: &str) -> &'static StreamSpec {
    STREAMS.iter().find(|s| s.name == name).expect("stream")
}

/// Every live row of a stream (any provider's), in id order.
pub async fn export_all(
    store: &dyn Store,
    conn: i64,
    stream: &StreamSpec,
) -> Vec<inlet_core::ExportRow> {
    let mut out: Vec<inlet_core::ExportRow> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let rows = store
            .export_page(conn, stream, after.as_deref(), 500, false)
            .await
            .expect("export");
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        out.extend(rows);
    }
    out
}

/// Every live row of a Reddit stream, id -> raw JSON.
pub async fn stored(
    store: &dyn Store,
    conn: i64,
    stream: &str,
) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for r in export_all(store, conn, spec(stream)).await {
        let raw: serde_json::Value = serde_json::from_str(&r.raw).expect("raw is JSON");
        assert!(out.insert(r.id, raw).is_none(), "duplicate id in export");
    }
    out
}

/// Assert the database holds exactly what the simulator holds, item for item.
pub async fn assert_equals_truth(store: &dyn Store, conn: i64, sim: &RedditSim) {
    let truths = [
        ("inbox", sim.truth_inbox()),
        ("sent", sim.truth_sent()),
        ("saved", sim.truth_saved()),
    ];
    for (stream, truth) in truths {
        let want: BTreeMap<String, serde_json::Value> = truth
            .into_iter()
            .map(|d| (d["name"].as_str().expect("name").to_string(), d))
            .collect();
        let got = stored(store, conn, stream).await;
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !want.contains_key(*k))
            .take(5)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{stream}: missing {missing:?}, extra {extra:?} (want {}, got {})",
            want.len(),
            got.len()
        );
        for (id, w) in &want {
            assert_eq!(&got[id], w, "{stream}: {id} differs from the simulator");
        }
        assert_eq!(
            store.count_live(conn, spec(stream)).await.expect("count"),
            want.len() as u64
        );
    }
    // Conversations: one per distinct root among live private messages.
    let mut roots = std::collections::BTreeSet::new();
    for d in sim.truth_inbox().into_iter().chain(sim.truth_sent()) {
        let name = d["name"].as_str().unwrap_or_default().to_string();
        if name.starts_with("t4_") {
            roots.insert(
                d["first_message_name"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or(name),
            );
        }
    }
    assert_eq!(
        store
            .count_derived(conn, "reddit_conversations")
            .await
            .expect("count"),
        roots.len() as u64,
        "conversations"
    );
}

/// Tables and columns of `streams` (derived tables included) docs/tables.md does not
/// name.
pub fn undocumented_columns(streams: &[StreamSpec], doc: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut check = |table: &str, columns: Vec<&str>| {
        if !doc.contains(&format!("## {table}")) {
            missing.push(table.to_string());
        }
        for c in columns {
            if !doc.contains(&format!("| `{c}` |")) {
                missing.push(format!("{table}.{c}"));
            }
        }
    };
    for spec in streams {
        check(spec.table, spec.columns.iter().map(|c| c.name).collect());
        if let Some(d) = spec.derived {
            check(d.table, d.columns.iter().map(|c| c.column.name).collect());
        }
    }
    missing
}

/// The `inlet` binary run in `dir` as a fresh user would: nothing of inlet's own settings
/// from the environment, a per-test configuration directory (where a PostgreSQL key file
/// lands), no stdin, and attachments off — the simulated messages link images on the real
/// media hosts and tests never reach the internet (tests/attachments_e2e.rs and
/// serve_cli.rs turn them on against the image host simulator).
pub fn inlet(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_inlet"));
    c.current_dir(dir);
    for var in [
        "INLET_DATABASE_URL",
        "INLET_SECRET_KEY",
        "INLET_CONFIG",
        "INLET_KEY_FILE",
        "INLET_LOG",
        "INLET_BIND",
        "INLET_ATTACHMENTS_REWRITE_BASE",
        "EBAY_CLIENT_ID",
        "EBAY_CLIENT_SECRET",
        "EBAY_REFRESH_TOKEN",
    ] {
        c.env_remove(var);
    }
    c.env("XDG_CONFIG_HOME", dir.join(".config"))
        .env("INLET_ATTACHMENTS_ENABLED", "false")
        .stdin(Stdio::null());
    c
}

/// Run `c` to its end off the runtime's threads (the simulators answer on them).
pub async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().expect("run inlet"))
        .await
        .expect("join")
}

/// What `o` printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What `o` printed on stdout, after checking it succeeded.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(o)
}

/// A failure: non-zero exit and exactly one `error:` line on stderr.
pub fn assert_one_line_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{needle:?} not in {err}"
    );
}
