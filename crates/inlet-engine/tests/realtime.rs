//! The realtime loop against the in-memory change feed, on SQLite and PostgreSQL: the
//! database equals the feed's truth after runs with faults (disconnects, failed
//! reconnects, repeated, reordered and dropped events, changes during a resync), deletes
//! become tombstones, positions resume, and a cancel stops at once keeping what was
//! committed.

use inlet_core::ColType::{Int, Text};
use inlet_core::{
    Clock, Column, Connection, ConnectionStatus, FeedEvent, ManualClock, NewConnection, Record,
    RunStatus, StopRule, Store, StreamSpec, Timestamp, Value,
};
use inlet_engine::{Engine, RealtimeOptions};
use inlet_sim::feed::MemoryFeed;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Two streams on tables that exist in every database (a subset of their columns).
static STREAMS: [StreamSpec; 2] = [
    StreamSpec {
        name: "stars",
        table: "feed_test_stars",
        doc: "test stream",
        columns: &[
            Column::new("full_name", Text, "name"),
            Column::new("stargazers_count", Int, "version"),
        ],
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
    StreamSpec {
        name: "saved",
        table: "feed_test_saved",
        doc: "test stream",
        columns: &[
            Column::new("subreddit", Text, "name"),
            Column::new("score", Int, "version"),
        ],
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
];

/// How long the loop may take to catch up before a test fails.
const SETTLE: Duration = Duration::from_secs(20);

fn rec(id: &str, version: i64) -> Record {
    Record::new(
        id,
        vec![Value::Text(format!("name {id}")), Value::Int(version)],
        format!(r#"{{"id":"{id}","v":{version}}}"#),
    )
}

fn spec(name: &str) -> &'static StreamSpec {
    STREAMS.iter().find(|s| s.name == name).expect("stream")
}

// ---------- databases ----------

enum Backend {
    Sqlite,
    Postgres,
}

struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

static DB_SEQ: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
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
                let admin = std::env::var("INLET_TEST_PG_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL is required for these tests at {admin}: {e}")
                    });
                tokio::spawn(conn);
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let name = format!(
                    "inlet_rt_{}_{}_{nanos}",
                    std::process::id(),
                    DB_SEQ.fetch_add(1, Ordering::SeqCst)
                );
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

    async fn cleanup(self) {
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

macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = TestDb::new(Backend::Sqlite).await;
                $body(&db).await;
                db.cleanup().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = TestDb::new(Backend::Postgres).await;
                $body(&db).await;
                db.cleanup().await;
            }
        }
    };
}

// ---------- harness ----------

struct Harness {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    engine: Arc<Engine>,
    conn: Connection,
}

async fn harness(db: &TestDb) -> Harness {
    let store = inlet_store::open(&db.url).await.expect("open store");
    let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
    let engine = Arc::new(Engine::new(store.clone(), clock.clone()));
    let conn = store
        .create_connection(
            &NewConnection {
                name: "feed-test".into(),
                workspace: "tests".into(),
                provider: "memory".into(),
                config: serde_json::json!({}),
                credentials: Vec::new(),
            },
            clock.now(),
        )
        .await
        .expect("create connection");
    Harness {
        store,
        clock,
        engine,
        conn,
    }
}

fn options(cancel: &Arc<AtomicBool>) -> RealtimeOptions {
    RealtimeOptions {
        resync_every: Duration::from_secs(3600),
        batch_events: 50,
        wait: Duration::from_millis(20),
        reconnect_delay: Duration::from_millis(10),
        max_reconnect_delay: Duration::from_millis(80),
        cancel: Some(cancel.clone()),
        force: false,
    }
}

/// A running loop.
struct Running {
    cancel: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<inlet_core::Run>,
}

fn start(h: &Harness, feed: &MemoryFeed) -> Running {
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = options(&cancel);
    let (engine, conn, feed) = (h.engine.clone(), h.conn.clone(), feed.clone());
    let task = tokio::spawn(async move {
        engine
            .run_realtime(&conn, &feed, &opts)
            .await
            .expect("realtime run")
    });
    Running { cancel, task }
}

impl Running {
    /// Cancel and wait; returns the run and how long stopping took.
    async fn stop(self) -> (inlet_core::Run, Duration) {
        let t = Instant::now();
        self.cancel.store(true, Ordering::SeqCst);
        let run = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the loop stops within 10 s of a cancel")
            .expect("task");
        (run, t.elapsed())
    }
}

/// Raw JSON as a value (PostgreSQL keeps it as JSONB, which reorders keys).
fn json(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw).expect("raw is JSON")
}

/// Live rows of a stream: id -> raw JSON.
async fn live(store: &dyn Store, conn: i64, stream: &str) -> BTreeMap<String, serde_json::Value> {
    rows(store, conn, stream, false)
        .await
        .into_iter()
        .map(|(id, (raw, _))| (id, json(&raw)))
        .collect()
}

/// Rows of a stream, tombstones too with `all`: id -> (raw, tombstoned).
async fn rows(
    store: &dyn Store,
    conn: i64,
    stream: &str,
    all: bool,
) -> BTreeMap<String, (String, bool)> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .export_page(conn, spec(stream), after.as_deref(), 500, all)
            .await
            .expect("export");
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for r in page {
            out.insert(r.id, (r.raw, r.deleted_at.is_some()));
        }
    }
    out
}

fn truth(feed: &MemoryFeed, stream: &str) -> BTreeMap<String, serde_json::Value> {
    feed.truth(stream)
        .into_iter()
        .map(|(id, r)| (id, json(&r.raw)))
        .collect()
}

/// Whether every stream's live rows equal the feed's truth.
async fn equal(h: &Harness, feed: &MemoryFeed) -> bool {
    for s in &STREAMS {
        if live(&*h.store, h.conn.id, s.name).await != truth(feed, s.name) {
            return false;
        }
    }
    true
}

/// Wait until the database equals the truth; fail with the difference after `SETTLE`.
async fn settle(h: &Harness, feed: &MemoryFeed) {
    let t = Instant::now();
    while t.elapsed() < SETTLE {
        if feed.pending() == 0 && equal(h, feed).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in &STREAMS {
        assert_eq!(
            live(&*h.store, h.conn.id, s.name).await,
            truth(feed, s.name),
            "{}: the database differs from the feed's truth",
            s.name
        );
    }
}

/// Wait until `f` holds (a count on the feed reached a value), failing after `SETTLE`.
async fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < SETTLE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Let the loop read whatever is buffered (events that change nothing leave no trace).
async fn drain(feed: &MemoryFeed) {
    wait_for("the feed's queue to empty", || feed.pending() == 0).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
}

// ---------- tests ----------

/// Payload events with every fault: repeats, a broken session with changes made while it
/// was down, failing reconnects, a window of dropped events reported lost, deletes.
async fn faults_end_equal(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS).with_page_size(7);
    for i in 0..40 {
        feed.upsert("stars", rec(&format!("s{i:03}"), 1));
        feed.upsert("saved", rec(&format!("v{i:03}"), 1));
    }
    let run = start(&h, &feed);
    settle(&h, &feed).await;
    assert_eq!(feed.snapshots(), 2, "one resync of each stream on connect");

    // Repeated events.
    feed.set_duplicating(true);
    for i in 0..20 {
        feed.upsert("stars", rec(&format!("s{i:03}"), 2));
    }
    for i in 30..35 {
        feed.delete("saved", &format!("v{i:03}"));
    }
    feed.set_duplicating(false);
    settle(&h, &feed).await;

    // A broken session: what changes until the reconnect is lost; two reconnects fail.
    feed.disconnect();
    feed.fail_connects(2);
    for i in 40..50 {
        feed.upsert("stars", rec(&format!("s{i:03}"), 1));
    }
    feed.delete("stars", "s005");
    feed.upsert("saved", rec("v001", 9));
    wait_for("the reconnect", || feed.connects() >= 2).await;
    settle(&h, &feed).await;

    // Dropped events, then the source says so.
    feed.set_dropping(true);
    feed.delete("saved", "v002");
    feed.upsert("saved", rec("v900", 1));
    feed.set_dropping(false);
    feed.report_lost(Some("saved"));
    settle(&h, &feed).await;

    let (run, _) = run.stop().await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert!(equal(&h, &feed).await);
    // Every delete is a tombstone, not a removed row.
    let stars = rows(&*h.store, h.conn.id, "stars", true).await;
    assert!(stars["s005"].1, "s005 is a tombstone");
    let saved = rows(&*h.store, h.conn.id, "saved", true).await;
    for id in ["v030", "v034", "v002"] {
        assert!(saved[id].1, "{id} is a tombstone");
    }
    assert_eq!(run.streams["saved"].stats.deleted, 6);
    assert_eq!(run.streams["stars"].stats.deleted, 1);
    assert_eq!(feed.connects(), 2);
}
both_backends!(
    payload_events_with_faults_end_equal_to_truth,
    faults_end_equal
);

/// Id-only events (Redis), repeated and out of order, many changes per id: each id is read
/// again, so the last state wins without any resync.
async fn hints_reordered(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS).with_hints();
    for i in 0..10 {
        feed.upsert("stars", rec(&format!("s{i:03}"), 0));
    }
    let run = start(&h, &feed);
    wait_for("the first resync", || feed.snapshots() == 2).await;
    settle(&h, &feed).await;
    let snapshots = feed.snapshots();

    feed.set_reordering(true);
    feed.set_duplicating(true);
    for v in 1..=5 {
        for i in 0..10 {
            feed.upsert("stars", rec(&format!("s{i:03}"), v));
        }
        feed.upsert("saved", rec(&format!("n{v}"), v));
    }
    feed.delete("stars", "s003");
    feed.upsert("stars", rec("s004", 99));
    feed.delete("saved", "n2");
    feed.set_duplicating(false);
    feed.set_reordering(false);
    settle(&h, &feed).await;
    assert_eq!(feed.snapshots(), snapshots, "no resync was needed");
    assert!(feed.fetches() > 0);

    let (run, _) = run.stop().await;
    assert_eq!(run.status, RunStatus::Success);
    assert!(rows(&*h.store, h.conn.id, "stars", true).await["s003"].1);
    assert_eq!(
        live(&*h.store, h.conn.id, "stars").await["s004"],
        json(r#"{"id":"s004","v":99}"#)
    );
}
both_backends!(reordered_repeated_hints_end_equal_to_truth, hints_reordered);

/// The same event many times writes one row once.
async fn duplicates(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS);
    let run = start(&h, &feed);
    wait_for("the first resync", || feed.snapshots() == 2).await;
    let ev = FeedEvent::Upsert {
        stream: "stars",
        record: rec("dup", 1),
    };
    feed.upsert("stars", rec("dup", 1));
    for _ in 0..24 {
        feed.emit(ev.clone());
    }
    drain(&feed).await;
    let before = rows(&*h.store, h.conn.id, "stars", true).await;
    let updated_at = h
        .store
        .export_page(h.conn.id, spec("stars"), None, 10, true)
        .await
        .expect("export")[0]
        .updated_at;
    h.clock.advance_ms(5_000);
    for _ in 0..25 {
        feed.emit(ev.clone());
    }
    feed.emit(FeedEvent::Delete {
        stream: "stars",
        id: "never-stored".into(),
    });
    drain(&feed).await;
    let (run, _) = run.stop().await;
    assert_eq!(before.len(), 1);
    assert_eq!(rows(&*h.store, h.conn.id, "stars", true).await, before);
    let row = &h
        .store
        .export_page(h.conn.id, spec("stars"), None, 10, true)
        .await
        .expect("export")[0];
    assert_eq!(row.updated_at, updated_at, "a repeat rewrites nothing");
    let st = run.streams["stars"].stats;
    assert_eq!(st.inserted, 1);
    assert_eq!(st.updated, 0);
    assert_eq!(st.deleted, 0, "deleting an id never stored changes nothing");
    assert!(
        st.unchanged >= 1,
        "repeats are classified unchanged: {st:?}"
    );
}
both_backends!(duplicate_events_are_idempotent, duplicates);

/// A delete keeps the row as a tombstone; a later upsert revives it.
async fn tombstones(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS);
    feed.upsert("stars", rec("a", 1));
    feed.upsert("stars", rec("b", 1));
    let run = start(&h, &feed);
    settle(&h, &feed).await;
    feed.delete("stars", "a");
    settle(&h, &feed).await;
    let all = rows(&*h.store, h.conn.id, "stars", true).await;
    assert_eq!(all.len(), 2);
    assert!(all["a"].1, "a is a tombstone");
    assert!(!all["b"].1);
    assert_eq!(
        h.store
            .count_live(h.conn.id, spec("stars"))
            .await
            .expect("count"),
        1
    );
    feed.upsert("stars", rec("a", 2));
    settle(&h, &feed).await;
    let (run, _) = run.stop().await;
    assert!(
        !rows(&*h.store, h.conn.id, "stars", true).await["a"].1,
        "revived"
    );
    assert_eq!(run.streams["stars"].stats.deleted, 1);
}
both_backends!(a_delete_becomes_a_tombstone, tombstones);

/// Events dropped without a word stay missing until the periodic resync (by the engine's
/// clock) finds them.
async fn dropped_healed(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS).with_page_size(5);
    for i in 0..12 {
        feed.upsert("stars", rec(&format!("s{i:03}"), 1));
    }
    let run = start(&h, &feed);
    wait_for("the first resync", || feed.snapshots() == 2).await;
    settle(&h, &feed).await;
    feed.set_dropping(true);
    feed.upsert("stars", rec("s001", 2));
    feed.delete("stars", "s002");
    feed.upsert("saved", rec("new", 1));
    feed.set_dropping(false);
    drain(&feed).await;
    assert!(!equal(&h, &feed).await, "dropped events are not applied");
    assert_eq!(feed.snapshots(), 2);

    h.clock.advance_ms(3_600_000);
    wait_for("the periodic resync", || feed.snapshots() >= 4).await;
    settle(&h, &feed).await;
    let (run, _) = run.stop().await;
    assert!(rows(&*h.store, h.conn.id, "stars", true).await["s002"].1);
    assert_eq!(run.status, RunStatus::Success);
    assert!(run.streams["stars"].complete_listing);
}
both_backends!(dropped_events_are_healed_by_the_resync, dropped_healed);

/// Changes made while a snapshot is listed (one listed already, a delete, an insert
/// behind the cursor) are applied after it and not undone by it.
async fn during_resync(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS).with_page_size(4);
    for i in 0..20 {
        feed.upsert("stars", rec(&format!("s{i:03}"), 1));
    }
    feed.on_snapshot_page(1, |f| {
        f.upsert("stars", rec("s000", 7)); // listed on page 0 with version 1
        f.delete("stars", "s015"); // listed later
        f.upsert("stars", rec("s001a", 1)); // behind the cursor: the snapshot misses it
    });
    feed.on_snapshot_page(2, |f| f.upsert("saved", rec("x", 1)));
    let run = start(&h, &feed);
    settle(&h, &feed).await;
    let (run, _) = run.stop().await;
    assert_eq!(feed.connects(), 1);
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(
        live(&*h.store, h.conn.id, "stars").await["s000"],
        json(r#"{"id":"s000","v":7}"#)
    );
}
both_backends!(changes_during_a_resync_are_kept, during_resync);

/// A feed with positions: a restart resumes after the last committed event (no resync)
/// and finds what changed while stopped; a position the source no longer holds resyncs.
async fn resume(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS).with_log(1000);
    for i in 0..5 {
        feed.upsert("stars", rec(&format!("s{i}"), 1));
    }
    let run = start(&h, &feed);
    wait_for("the first resync", || feed.snapshots() == 2).await;
    settle(&h, &feed).await;
    feed.upsert("stars", rec("s9", 1));
    settle(&h, &feed).await;
    let (_, _) = run.stop().await;
    feed.disconnect();
    assert_eq!(feed.snapshots(), 2);

    // Stopped: changes go to the log only.
    feed.upsert("stars", rec("s1", 2));
    feed.delete("stars", "s2");
    feed.upsert("saved", rec("x", 1));
    let run = start(&h, &feed);
    settle(&h, &feed).await;
    assert_eq!(feed.resumes(), 1);
    assert_eq!(feed.snapshots(), 2, "a resumed session needs no resync");
    let (_, _) = run.stop().await;
    feed.disconnect();

    // The log was trimmed past the saved position: the restart resyncs.
    feed.upsert("stars", rec("s3", 5));
    feed.trim_log();
    let run = start(&h, &feed);
    wait_for("the resync", || feed.snapshots() == 4).await;
    settle(&h, &feed).await;
    let (run, _) = run.stop().await;
    assert_eq!(feed.resumes(), 1);
    assert_eq!(feed.snapshots(), 4);
    assert_eq!(run.status, RunStatus::Success);
}
both_backends!(positions_resume_and_trimmed_logs_resync, resume);

/// A cancel stops the loop at once, while it waits and while events flow, and keeps what
/// was committed.
async fn cancel(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS);
    for i in 0..30 {
        feed.upsert("stars", rec(&format!("s{i:03}"), 1));
    }
    let run = start(&h, &feed);
    wait_for("the resync of both streams", || feed.snapshots() == 2).await;
    settle(&h, &feed).await;
    let (run, took) = run.stop().await;
    assert_eq!(run.status, RunStatus::Success);
    assert!(run.finished_at.is_some());
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    assert_eq!(live(&*h.store, h.conn.id, "stars").await.len(), 30);

    // Cancelled while a writer keeps the feed busy.
    let run = start(&h, &feed);
    wait_for("the resync", || feed.snapshots() == 4).await;
    let writer_feed = feed.clone();
    let stop_writer = Arc::new(AtomicBool::new(false));
    let stop = stop_writer.clone();
    let writer = tokio::spawn(async move {
        let mut v = 2;
        while !stop.load(Ordering::SeqCst) {
            for i in 0..30 {
                writer_feed.upsert("stars", rec(&format!("s{i:03}"), v));
            }
            v += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (run, took) = run.stop().await;
    stop_writer.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    assert_eq!(run.status, RunStatus::Success);
    let st = run.streams["stars"].stats;
    assert!(
        st.updated > 0,
        "events were committed before the cancel: {st:?}"
    );
    let stored = live(&*h.store, h.conn.id, "stars").await;
    assert_eq!(stored.len(), 30);
    assert!(
        stored.values().any(|raw| raw["v"] != 1),
        "committed changes are kept"
    );
}
both_backends!(a_cancel_stops_promptly_and_keeps_commits, cancel);

/// An error no reconnect fixes (revoked credentials) ends the run `failed` at once, with
/// what was committed before kept.
async fn fatal(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS);
    feed.upsert("stars", rec("a", 1));
    let run = start(&h, &feed);
    settle(&h, &feed).await;
    feed.set_rejecting(true);
    feed.disconnect();
    let t = Instant::now();
    let run = tokio::time::timeout(Duration::from_secs(10), run.task)
        .await
        .expect("the loop ends by itself")
        .expect("task");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("credentials")),
        "{:?}",
        run.error
    );
    assert_eq!(live(&*h.store, h.conn.id, "stars").await.len(), 1);
    let conn = h
        .store
        .get_connection(&h.conn.name)
        .await
        .expect("get")
        .expect("connection");
    assert_eq!(conn.status, ConnectionStatus::NeedsReauth);
}
both_backends!(revoked_credentials_end_the_run_failed, fatal);

/// Failed reconnects back off, doubling from `reconnect_delay` (10 ms) up to
/// `max_reconnect_delay` (80 ms): four failures wait 10 + 20 + 40 + 80 + 80 ms in all.
async fn backoff(db: &TestDb) {
    let h = harness(db).await;
    let feed = MemoryFeed::new(&STREAMS);
    feed.upsert("stars", rec("a", 1));
    let run = start(&h, &feed);
    wait_for("the first resync", || feed.snapshots() == 2).await;
    settle(&h, &feed).await;
    feed.fail_connects(4);
    let t = Instant::now();
    feed.disconnect();
    feed.upsert("stars", rec("b", 1)); // lost: found by the resync after the reconnect
    wait_for("the reconnect", || feed.connects() == 2).await;
    let took = t.elapsed();
    settle(&h, &feed).await;
    let (run, _) = run.stop().await;
    assert!(
        took >= Duration::from_millis(230),
        "reconnected after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "reconnected after {took:?}");
    assert_eq!(run.status, RunStatus::Success);
}
both_backends!(failed_reconnects_back_off, backoff);
