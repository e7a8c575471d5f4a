//! How a pass commits and stops, against the simulator on SQLite and PostgreSQL: pages
//! fetched before a fatal error or a cancellation are committed (with the checkpoint after
//! them) before the pass stops, a cancellation cuts a long rate-limit wait short, a chunk
//! also ends after a few seconds, and a saved-items delta pages past a page of new saves.

mod common;

use common::*;
use inlet_connectors::reddit::RedditConnector;
use inlet_core::{
    Clock, ConnectionStatus, Connector, ConnectorError, HttpStats, ManualClock, Page, Record,
    RunMode, RunStatus, StreamSpec, StreamStats, SystemClock,
};
use inlet_engine::{Engine, NoProgress, Progress, SyncOptions};
use inlet_http::{HttpConfig, RetryPolicy};
use inlet_sim::reddit::{Faults, RedditSimConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A Reddit connector that calls `before(n)` before its `n`-th page request (from 1).
struct Hooked<F: Fn(u64) + Send + Sync> {
    inner: RedditConnector,
    calls: AtomicU64,
    before: F,
}

impl<F: Fn(u64) + Send + Sync> Hooked<F> {
    fn new(inner: RedditConnector, before: F) -> Self {
        Hooked {
            inner,
            calls: AtomicU64::new(0),
            before,
        }
    }
}

#[async_trait::async_trait]
impl<F: Fn(u64) + Send + Sync> Connector for Hooked<F> {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }
    fn streams(&self) -> &'static [StreamSpec] {
        self.inner.streams()
    }
    async fn fetch_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        (self.before)(self.calls.fetch_add(1, Ordering::SeqCst) + 1);
        self.inner.fetch_page(stream, cursor).await
    }
    fn http_stats(&self) -> HttpStats {
        self.inner.http_stats()
    }
    fn attachment_links(&self, stream: &StreamSpec, record: &Record) -> Vec<String> {
        self.inner.attachment_links(stream, record)
    }
    fn reconciles(&self, stream: &StreamSpec) -> bool {
        self.inner.reconciles(stream)
    }
    async fn take_updated_credentials(&self) -> Option<serde_json::Value> {
        self.inner.take_updated_credentials().await
    }
    fn set_cancel(&self, flag: Option<Arc<AtomicBool>>) {
        self.inner.set_cancel(flag);
    }
}

/// Inbox only, no comment replies or saves: about 300 received messages.
fn inbox_account(seed: u64) -> RedditSimConfig {
    RedditSimConfig {
        seed,
        messages: 600,
        comment_replies: 0,
        saved: 0,
        ..Default::default()
    }
}

/// A connector to the test connection with pages of 25 items.
async fn small_pages(
    store: &Arc<dyn inlet_core::Store>,
    http: HttpConfig,
) -> (inlet_core::Connection, RedditConnector) {
    let mut conn = store
        .get_connection("reddit-test")
        .await
        .expect("get")
        .expect("exists");
    conn.config["page_size"] = serde_json::json!(25);
    let connector = connector_with(&conn, http);
    (conn, connector)
}

fn inbox_only(mode: RunMode) -> SyncOptions {
    let mut opts = SyncOptions::new(mode);
    opts.streams = Some(vec!["inbox".into()]);
    opts
}

/// The stored inbox holds exactly the newest `n` items of the simulator's inbox, and the
/// checkpoint points after them.
async fn kept_newest(
    store: &Arc<dyn inlet_core::Store>,
    conn: i64,
    sim: &inlet_sim::reddit::RedditSim,
    n: usize,
) {
    let truth = sim.truth_inbox();
    let rows = stored(&**store, conn, "inbox").await;
    assert_eq!(rows.len(), n, "the pages fetched before the stop are kept");
    for item in &truth[..n] {
        let name = item["name"].as_str().expect("name");
        assert_eq!(rows.get(name), Some(item), "{name}");
    }
    let cp = store
        .sync_state(conn, "inbox")
        .await
        .expect("state")
        .checkpoint
        .expect("the pass keeps its checkpoint");
    assert_eq!(cp.records, n as u64);
    assert_eq!(
        cp.next.as_deref(),
        truth[n - 1]["name"].as_str(),
        "the checkpoint points after the committed pages"
    );
}

async fn fatal_error_commits_fetched_pages(db: &TestDb) {
    let cfg = inbox_account(201);
    let (sim, store, _) = setup(db, &cfg).await;
    let (conn, inner) = small_pages(&store, http_config()).await;
    // Four pages arrive, then the refresh token is revoked: the fifth request fails
    // for good. One chunk would hold all twelve pages, so nothing had been committed.
    let s = sim.clone();
    let connector = Hooked::new(inner, move |n| {
        if n == 5 {
            s.expire_tokens();
            s.revoke_refresh_token();
        }
    });
    let run = engine(store.clone())
        .with_batch_time(Duration::from_secs(3600))
        .sync(&conn, &connector, &inbox_only(RunMode::Full), &NoProgress)
        .await
        .expect("sync");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("re-authenticate")),
        "{:?}",
        run.error
    );
    let c = store
        .get_connection("reddit-test")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(c.status, ConnectionStatus::NeedsReauth);
    assert_eq!(run.streams["inbox"].stats.inserted, 100);
    kept_newest(&store, conn.id, &sim, 100).await;
    sim.shutdown();
}
both_backends!(
    a_fatal_error_commits_the_pages_fetched_before_it,
    fatal_error_commits_fetched_pages
);

async fn cancel_cuts_a_long_retry_after_short(db: &TestDb) {
    let cfg = inbox_account(203);
    let (sim, store, _) = setup(db, &cfg).await;
    // The request's deadline allows the provider's 286 s wait.
    let http = HttpConfig {
        retry: RetryPolicy {
            deadline: Duration::from_secs(600),
            ..http_config().retry
        },
        ..http_config()
    };
    let (conn, inner) = small_pages(&store, http).await;
    let s = sim.clone();
    let connector = Hooked::new(inner, move |n| {
        if n == 5 {
            s.set_faults(Faults {
                http_429_burst: 100,
                retry_after_secs: Some(286),
                ..Default::default()
            });
        }
    });
    let cancel = Arc::new(AtomicBool::new(false));
    let mut opts = inbox_only(RunMode::Full);
    opts.cancel = Some(cancel.clone());
    // Ctrl-C once the client sits in the 286 s wait.
    let cancelled_at = Arc::new(Mutex::new(None::<Instant>));
    let watcher = {
        let (sim, cancel, at) = (sim.clone(), cancel.clone(), cancelled_at.clone());
        tokio::spawn(async move {
            while !sim.requests().iter().any(|r| r.status == 429) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            *at.lock().expect("lock") = Some(Instant::now());
            cancel.store(true, Ordering::SeqCst);
        })
    };
    let eng = engine(store.clone()).with_batch_time(Duration::from_secs(3600));
    let sync = eng.sync(&conn, &connector, &opts, &NoProgress);
    let run = tokio::time::timeout(Duration::from_secs(120), sync)
        .await
        .expect("the cancellation ends the 286 s wait")
        .expect("sync");
    let stopped_in = cancelled_at
        .lock()
        .expect("lock")
        .expect("cancelled during the wait")
        .elapsed();
    // A sync that ended without the long wait never lets the watcher fire: stop it, and
    // the check below says so instead of this test hanging.
    watcher.abort();
    let _ = watcher.await;
    assert!(
        stopped_in < Duration::from_secs(30),
        "stopped {stopped_in:?} after the cancellation, not after the wait"
    );
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.starts_with("interrupted")),
        "{:?}",
        run.error
    );
    kept_newest(&store, conn.id, &sim, 100).await;
    let c = store
        .get_connection("reddit-test")
        .await
        .expect("get")
        .expect("exists");
    assert_ne!(c.status, ConnectionStatus::NeedsReauth);
    sim.shutdown();
}
both_backends!(
    a_cancel_during_a_long_retry_after_stops_at_once_and_keeps_the_pages,
    cancel_cuts_a_long_retry_after_short
);

async fn cancel_cuts_a_long_budget_wait_short(db: &TestDb) {
    // The provider's window allows 6 requests per ~286 s and says so in its headers: after
    // a few pages the client waits for the window to reset. The simulator's windows are
    // aligned to the wall clock, as Reddit's are, so a window of 286 s may have only
    // seconds left; pick a length near it whose current window has at least 200 s to go,
    // so the client's wait is the long one this test is about.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let window_secs = (280..=400u64)
        .find(|w| w - now % w >= 200)
        .expect("a window length with 200 s to go");
    let cfg = RedditSimConfig {
        rate_limit: Some(inlet_sim::reddit::RateLimit {
            budget: 6,
            window_secs,
        }),
        ..inbox_account(211)
    };
    let (sim, store, _) = setup(db, &cfg).await;
    let (conn, connector) = small_pages(&store, http_config()).await;
    let connector = Arc::new(connector);
    let cancel = Arc::new(AtomicBool::new(false));
    let mut opts = inbox_only(RunMode::Full);
    opts.cancel = Some(cancel.clone());
    let cancelled_at = Arc::new(Mutex::new(None::<Instant>));
    let watcher = {
        let (c, cancel, at) = (connector.clone(), cancel.clone(), cancelled_at.clone());
        tokio::spawn(async move {
            while c.http_stats().waiting_ms < 60_000 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            *at.lock().expect("lock") = Some(Instant::now());
            cancel.store(true, Ordering::SeqCst);
        })
    };
    let eng = engine(store.clone()).with_batch_time(Duration::from_secs(3600));
    let sync = eng.sync(&conn, &*connector, &opts, &NoProgress);
    let run = tokio::time::timeout(Duration::from_secs(120), sync)
        .await
        .expect("the cancellation ends the budget wait")
        .expect("sync");
    // A sync that ended without the long wait never lets the watcher fire: stop it, and
    // the check below says so instead of this test hanging.
    watcher.abort();
    let _ = watcher.await;
    let stopped_in = cancelled_at
        .lock()
        .expect("lock")
        .unwrap_or_else(|| {
            panic!(
                "the sync ended without the long wait: {:?} {:?}",
                run.status, run.error
            )
        })
        .elapsed();
    assert!(
        stopped_in < Duration::from_secs(30),
        "stopped {stopped_in:?} after the cancellation, not after the window"
    );
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.starts_with("interrupted")),
        "{:?}",
        run.error
    );
    let pages = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/message/inbox") && r.status == 200)
        .count();
    assert!(pages >= 1, "some pages came before the wait");
    kept_newest(&store, conn.id, &sim, pages * 25).await;
    assert_eq!(sim.rate_limit_violations(), 0);
    sim.shutdown();
}
both_backends!(
    a_cancel_during_a_long_rate_limit_window_stops_at_once_and_keeps_the_pages,
    cancel_cuts_a_long_budget_wait_short
);

/// Inbox pages committed so far, one entry per commit.
#[derive(Default)]
struct Commits(Mutex<Vec<u64>>);

impl Progress for Commits {
    fn page_committed(&self, stream: &str, s: &StreamStats) {
        if stream == "inbox" {
            self.0.lock().expect("lock").push(s.stats.pages);
        }
    }
}

async fn chunks_end_by_time(db: &TestDb) {
    let cfg = inbox_account(205);
    let (sim, store, _) = setup(db, &cfg).await;
    let (conn, inner) = small_pages(&store, http_config()).await;
    // Every page takes one second by the engine's clock; a chunk lasts 2.5 s.
    let clock = ManualClock::new(SystemClock.now());
    let c = clock.clone();
    let connector = Hooked::new(inner, move |_| c.advance_ms(1000));
    let commits = Commits::default();
    let run = Engine::new(store.clone(), Arc::new(clock))
        .with_batch_time(Duration::from_millis(2500))
        .sync(&conn, &connector, &inbox_only(RunMode::Full), &commits)
        .await
        .expect("sync");
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    let items = sim.truth_inbox().len();
    let pages = items.div_ceil(25) as u64;
    assert!(pages >= 7, "{pages}");
    let mut want: Vec<u64> = (1..).map(|k| 3 * k).take_while(|p| *p < pages).collect();
    want.push(pages);
    assert_eq!(
        *commits.0.lock().expect("lock"),
        want,
        "far fewer than 5,000 records, yet a checkpoint every three pages"
    );
    assert_eq!(stored(&*store, conn.id, "inbox").await.len(), items);
    sim.shutdown();
}
both_backends!(
    a_chunk_is_committed_after_its_time_limit,
    chunks_end_by_time
);

async fn saved_delta_pages_past_new_saves(db: &TestDb) {
    let cfg = RedditSimConfig {
        seed: 207,
        messages: 20,
        comment_replies: 0,
        saved: 50,
        ..Default::default()
    };
    let (sim, store, conn) = setup(db, &cfg).await;
    let mut opts = SyncOptions::new(RunMode::Delta);
    opts.streams = Some(vec!["saved".into()]);
    let sync = |opts: SyncOptions| {
        let store = store.clone();
        let conn = conn.clone();
        async move {
            engine(store)
                .sync(&conn, &connector(&conn), &opts, &NoProgress)
                .await
                .expect("sync")
        }
    };
    let first = sync(opts.clone()).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    // More new saves than one page (100) holds.
    for _ in 0..120 {
        sim.save_new();
    }
    sim.clear_log();
    let run = sync(opts).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_eq!(run.error, None);
    assert_eq!(run.streams["saved"].stats.inserted, 120);
    let saved_requests = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/saved"))
        .count();
    assert_eq!(saved_requests, 2, "a page of new saves, then the known one");
    let truth = sim.truth_saved();
    let rows = stored(&*store, conn.id, "saved").await;
    assert_eq!(rows.len(), truth.len());
    assert_eq!(rows.len(), 170);
    sim.shutdown();
}
both_backends!(
    a_saved_delta_pages_past_a_page_of_new_saves,
    saved_delta_pages_past_new_saves
);

/// The stored row of message `name` as the export of `stream` shows it.
async fn exported(
    store: &Arc<dyn inlet_core::Store>,
    conn: i64,
    stream: &str,
    name: &str,
) -> Option<inlet_core::ExportRow> {
    let mut after: Option<String> = None;
    loop {
        let rows = store
            .export_page(conn, spec(stream), after.as_deref(), 500, false)
            .await
            .expect("export");
        let last = rows.last()?.id.clone();
        if let Some(r) = rows.into_iter().find(|r| r.id == name) {
            return Some(r);
        }
        after = Some(last);
    }
}

async fn message_to_self_is_one_row(db: &TestDb) {
    let cfg = RedditSimConfig {
        seed: 209,
        messages: 40,
        comment_replies: 0,
        saved: 0,
        ..Default::default()
    };
    let (sim, store, conn) = setup(db, &cfg).await;
    let sync = || {
        let store = store.clone();
        let conn = conn.clone();
        async move {
            let run = engine(store)
                .sync(
                    &conn,
                    &connector(&conn),
                    &SyncOptions::new(RunMode::Delta),
                    &NoProgress,
                )
                .await
                .expect("sync");
            assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
            run
        }
    };
    sync().await;
    let name = sim.add_message_to_self("a note to self");
    assert!(sim.truth_inbox().iter().any(|m| m["name"] == name.as_str()));
    assert!(sim.truth_sent().iter().any(|m| m["name"] == name.as_str()));
    let second = sync().await;
    let (inbox, sent) = (
        &second.streams["inbox"].stats,
        &second.streams["sent"].stats,
    );
    assert_eq!(
        (inbox.inserted, inbox.updated, sent.inserted, sent.updated),
        (1, 0, 0, 0),
        "written once, by the first stream that lists it"
    );
    let row = exported(&store, conn.id, "inbox", &name)
        .await
        .expect("listed as inbox");
    let folder = spec("inbox").column_index("folder").expect("folder");
    assert_eq!(
        row.values[folder],
        inlet_core::Value::Text("inbox,sent".into()),
        "one row with both memberships"
    );
    let in_sent = exported(&store, conn.id, "sent", &name)
        .await
        .expect("listed as sent");
    assert_eq!(in_sent.content_hash, row.content_hash);
    // Later syncs read it again from both listings and leave it alone.
    let third = sync().await;
    for s in ["inbox", "sent"] {
        assert_eq!(third.streams[s].stats.updated, 0, "{s} rewrote nothing");
    }
    let after = exported(&store, conn.id, "inbox", &name)
        .await
        .expect("still there");
    assert_eq!(after.updated_at, row.updated_at, "not rewritten");
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}
both_backends!(
    a_message_to_self_is_one_row_in_both_folders_written_once,
    message_to_self_is_one_row
);
