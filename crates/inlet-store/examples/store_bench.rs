//! Throughput of `commit_page` on SQLite and PostgreSQL: 200,000 synthetic Reddit
//! messages (~800-byte raw JSON), pages of 100, derived conversations refreshed
//! (~8 messages per conversation).
//!
//! `cargo run -j2 --release -p inlet-store --example store_bench`
//! Env: `INLET_BENCH_ROWS` (default 200000), `INLET_BENCH_BATCH` (records per commit,
//! default 5000 as the engine commits), `INLET_BENCH_NO_DERIVED` (set: measure without
//! the conversation refresh, to separate its cost), `INLET_BENCH_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; a scratch database is created and dropped).

use inlet_connectors::reddit::streams::STREAMS;
use inlet_core::{NewConnection, PageBatch, Record, Store, SyncState, Timestamp, Value};
use std::error::Error;
use std::time::{Duration, Instant};

const PER_CONVERSATION: usize = 8;

fn message(i: usize) -> Record {
    let spec = &STREAMS[0];
    let conv = format!("t4_c{:08}", i / PER_CONVERSATION);
    let created = 1_700_000_000 + i as i64;
    let body = format!("message {i}: {}", "lorem ipsum dolor sit amet ".repeat(15));
    let raw = serde_json::json!({
        "kind": "t4",
        "data": {
            "id": format!("m{i:08}"), "name": format!("t4_m{i:08}"), "first_message_name": conv,
            "author": format!("user{}", i % 97), "dest": "me", "subject": format!("subject {}", i / PER_CONVERSATION),
            "body": body, "created_utc": created as f64, "new": i.is_multiple_of(3), "type": "unknown",
            "subreddit": null, "distinguished": null, "parent_id": null, "context": "",
            "body_html": "&lt;div class=\"md\"&gt;&lt;p&gt;lorem&lt;/p&gt;&lt;/div&gt;",
        }
    })
    .to_string();
    let mut values = vec![Value::Null; spec.columns.len()];
    let mut set = |name: &str, v: Value| {
        if let Some(i) = spec.column_index(name) {
            values[i] = v;
        }
    };
    set("kind", Value::Text("t4".into()));
    set("folder", Value::Text("inbox".into()));
    set("conversation_id", Value::Text(conv));
    set("author", Value::Text(format!("user{}", i % 97)));
    set("dest", Value::Text("me".into()));
    set(
        "subject",
        Value::Text(format!("subject {}", i / PER_CONVERSATION)),
    );
    set("body", Value::Text(body));
    set("created_utc", Value::Time(Timestamp::from_secs(created)));
    set("unread", Value::Bool(i.is_multiple_of(3)));
    set("message_type", Value::Text("unknown".into()));
    Record::new(format!("t4_m{i:08}"), values, raw)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

async fn bench(store: &dyn Store, rows: usize) -> Result<(f64, usize), Box<dyn Error>> {
    let page_size = env_usize("INLET_BENCH_BATCH", 5000);
    let mut spec = STREAMS[0];
    if std::env::var_os("INLET_BENCH_NO_DERIVED").is_some() {
        spec.derived = None;
    }
    let new = NewConnection {
        name: "bench".into(),
        workspace: "bench".into(),
        provider: "reddit".into(),
        config: serde_json::json!({}),
        credentials: vec![],
    };
    let conn = store.create_connection(&new, Timestamp(0)).await?.id;
    let (mut spent, mut raw_bytes, mut inserted) = (Duration::ZERO, 0usize, 0u64);
    let mut state = SyncState::default();
    for (n, start) in (0..rows).step_by(page_size).enumerate() {
        let page: Vec<Record> = (start..(start + page_size).min(rows))
            .map(message)
            .collect();
        raw_bytes += page.iter().map(|r| r.raw.len()).sum::<usize>();
        state.cursor = Some(n.to_string());
        let batch = PageBatch {
            connection_id: conn,
            stream: &spec,
            records: page,
            state: &state,
            at: Timestamp(n as i64),
            refresh_derived: true,
        };
        let t = Instant::now();
        let out = store.commit_page(batch).await?;
        spent += t.elapsed();
        inserted += out.inserted;
    }
    assert_eq!(inserted as usize, rows);
    if spec.derived.is_some() {
        let convs = store.count_derived(conn, "reddit_conversations").await?;
        assert_eq!(convs as usize, rows.div_ceil(PER_CONVERSATION));
    }
    Ok((rows as f64 / spent.as_secs_f64(), raw_bytes / rows))
}

async fn pg_bench(rows: usize) -> Result<f64, Box<dyn Error>> {
    let admin = std::env::var("INLET_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let name = "inlet_bench".to_string();
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => return Err("INLET_BENCH_PG_URL needs a /database part".into()),
    };
    let result = async {
        let store = inlet_store::open(&url).await?;
        bench(store.as_ref(), rows).await
    }
    .await;
    if std::env::var_os("INLET_BENCH_KEEP").is_none() {
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
    }
    Ok(result?.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let rows: usize = std::env::var("INLET_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let store = inlet_store::open(&dir.path().join("bench.db").display().to_string()).await?;
    let (rate, avg_raw) = bench(store.as_ref(), rows).await?;
    println!(
        "{rows} messages, {} records per commit, ~{avg_raw}-byte raw, derived refresh {}",
        env_usize("INLET_BENCH_BATCH", 5000),
        if std::env::var_os("INLET_BENCH_NO_DERIVED").is_some() {
            "off"
        } else {
            "on"
        }
    );
    println!("sqlite   commit_page: {rate:>10.0} rows/s");
    match pg_bench(rows).await {
        Ok(rate) => println!("postgres commit_page: {rate:>10.0} rows/s"),
        Err(e) => println!("postgres commit_page: not measured ({e:?})"),
    }
    Ok(())
}
