//! End to end: the engine syncs the Reddit simulator into SQLite and PostgreSQL, and the
//! database equals the simulator's truth after every step.

mod common;

use common::*;
use inlet_core::{Connector, RunMode, RunStatus, Store, StreamStats};
use inlet_engine::{NoProgress, Progress, SyncOptions};
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn small_account() -> RedditSimConfig {
    RedditSimConfig {
        seed: 11,
        messages: 300,
        comment_replies: 15,
        saved: 30,
        ..Default::default()
    }
}

async fn sync(store: &Arc<dyn Store>, conn_key: &str, mode: RunMode) -> inlet_core::Run {
    let conn = store
        .get_connection(conn_key)
        .await
        .expect("get")
        .expect("exists");
    let connector = connector(&conn);
    engine(store.clone())
        .sync(&conn, &connector, &SyncOptions::new(mode), &NoProgress)
        .await
        .expect("sync")
}

/// Listing requests per stream in the simulator's log.
fn listing_requests(sim: &RedditSim) -> (usize, usize, usize, usize) {
    let log = sim.requests();
    let count = |p: &str| log.iter().filter(|r| r.path.contains(p)).count();
    (
        count("/message/inbox"),
        count("/message/sent"),
        count("/saved"),
        log.len(),
    )
}

async fn full_then_changes_then_delta(db: &TestDb) {
    let cfg = small_account();
    let (sim, store, conn) = setup(db, &cfg).await;

    let full = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(full.status, RunStatus::Success, "{:?}", full.error);
    assert_eq!(
        full.mode,
        RunMode::Full,
        "asked for delta; the first sync reads everything and is recorded as full"
    );
    assert_eq!(full.stats.inserted, 300 + 15 + 30);
    assert_equals_truth(&*store, conn.id, &sim).await;

    // New messages (one in a new conversation), edits on recent items, saves and unsaves.
    let inbox = sim.truth_inbox();
    let recent_root = inbox
        .iter()
        .find_map(|m| m["first_message_name"].as_str())
        .expect("a reply")
        .to_string();
    sim.add_message(Some(&recent_root), false, "new reply 🙂");
    sim.add_message(Some(&recent_root), true, "my answer");
    let root = sim.add_message(None, false, "a new conversation");
    sim.add_message(Some(&root), true, "and my reply");
    let newest_unread = inbox
        .iter()
        .find(|m| m["new"] == true)
        .and_then(|m| m["name"].as_str())
        .expect("unread");
    assert!(sim.edit_message(newest_unread, Some("edited body"), Some(false)));
    let saved = sim.truth_saved();
    let names: Vec<&str> = saved.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(sim.unsave(names[0]) && sim.unsave(names[5]));
    assert!(sim.edit_saved(names[2], 4242));
    sim.save_new();

    let delta = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(delta.status, RunStatus::Success, "{:?}", delta.error);
    assert_eq!(
        delta.stats.inserted,
        4 + 1,
        "4 messages and 1 saved item are new"
    );
    assert_eq!(
        delta.stats.deleted, 0,
        "unsaves wait for the next reconcile"
    );
    assert!(
        delta.stats.updated >= 2,
        "the edited message and saved item were rewritten"
    );
    assert_eq!(delta.stats.derived_inserted, 1, "one new conversation");
    let rec = sync(&store, "reddit-test", RunMode::Reconcile).await;
    assert_eq!(rec.status, RunStatus::Success, "{:?}", rec.error);
    assert_eq!(rec.stats.deleted, 2, "2 unsaved items tombstoned");
    assert_equals_truth(&*store, conn.id, &sim).await;

    // Re-saving an unsaved item revives its row instead of duplicating it.
    assert!(sim.save(names[0]));
    let again = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(again.stats.updated, 1, "revived");
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}
both_backends!(
    full_then_changes_then_delta_equals_truth,
    full_then_changes_then_delta
);

async fn nothing_new_costs_one_request_per_stream(db: &TestDb) {
    let cfg = small_account();
    let (sim, store, _) = setup(db, &cfg).await;
    sync(&store, "reddit-test", RunMode::Full).await;
    sim.clear_log();
    let run = sync(&store, "reddit-test", RunMode::Delta).await;
    let (inbox, sent, saved, total) = listing_requests(&sim);
    assert_eq!((inbox, sent, saved), (1, 1, 1), "one request per stream");
    assert_eq!(
        total,
        3,
        "no token or identity requests either: {:?}",
        sim.requests()
    );
    assert_eq!(run.stats.requests, 3);
    assert_eq!(
        (run.stats.inserted, run.stats.updated, run.stats.deleted),
        (0, 0, 0)
    );
    sim.shutdown();
}
both_backends!(
    delta_with_nothing_new_costs_one_request_per_stream,
    nothing_new_costs_one_request_per_stream
);

/// Aborts the sync task once `k` inbox pages were committed.
struct AbortAfter {
    k: u64,
    pages: AtomicU64,
    tx: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Progress for AbortAfter {
    fn page_committed(&self, stream: &str, s: &StreamStats) {
        self.pages.store(s.stats.pages, Ordering::SeqCst);
        if stream == "inbox"
            && s.stats.pages >= self.k
            && let Some(tx) = self.tx.lock().expect("lock").take()
        {
            let _ = tx.send(());
        }
    }
}

async fn crash_mid_backfill_resumes(db: &TestDb) {
    let cfg = RedditSimConfig {
        seed: 5,
        messages: 2400,
        comment_replies: 0,
        saved: 0,
        listing_cap: None,
        rate_limit: None,
        ..Default::default()
    };
    let (sim, store, conn) = setup(db, &cfg).await;
    let inbox_total = sim.truth_inbox().len() as u64;
    let inbox_pages = inbox_total.div_ceil(100);

    let (tx, rx) = tokio::sync::oneshot::channel();
    let progress = Arc::new(AbortAfter {
        k: 4,
        pages: AtomicU64::new(0),
        tx: std::sync::Mutex::new(Some(tx)),
    });
    let (s2, c2, p2) = (store.clone(), conn.clone(), progress.clone());
    // Three pages per transaction: the checkpoint must land on chunk boundaries.
    let task = tokio::spawn(async move {
        let connector = connector(&c2);
        engine(s2)
            .with_batch_records(300)
            .sync(&c2, &connector, &SyncOptions::new(RunMode::Full), &*p2)
            .await
    });
    rx.await.expect("reached page k");
    task.abort();
    let _ = task.await;
    // Let what the aborted task had already sent settle (a request the simulator is still
    // answering, a COMMIT the server is still applying) before reading state and counting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let cp = store
        .sync_state(conn.id, "inbox")
        .await
        .expect("state")
        .checkpoint
        .expect("checkpoint kept");
    assert!(
        cp.pages >= 4 && cp.pages < inbox_pages,
        "committed {} of {inbox_pages} pages",
        cp.pages
    );
    assert_eq!(
        cp.pages % 3,
        0,
        "checkpoints fall between chunks of three pages"
    );
    let committed = store
        .count_live(conn.id, spec("inbox"))
        .await
        .expect("count");
    assert_eq!(
        committed, cp.records,
        "rows and checkpoint committed together"
    );

    sim.clear_log();
    let run = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert!(run.streams["inbox"].resumed);
    let (inbox_reqs, _, _, _) = listing_requests(&sim);
    assert_eq!(
        inbox_reqs as u64,
        inbox_pages - cp.pages,
        "resumed from the checkpoint, did not start over"
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
    let runs = store.list_runs(Some(conn.id), 10).await.expect("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[1].status,
        RunStatus::Interrupted,
        "the aborted run is closed as interrupted"
    );
    sim.shutdown();
}
both_backends!(
    crash_mid_backfill_resumes_from_checkpoint,
    crash_mid_backfill_resumes
);

async fn deleted_messages_tombstoned_by_complete_listing(db: &TestDb) {
    let cfg = RedditSimConfig {
        seed: 3,
        messages: 120,
        comment_replies: 0,
        saved: 5,
        ..Default::default()
    };
    let (sim, store, conn) = setup(db, &cfg).await;
    sync(&store, "reddit-test", RunMode::Full).await;
    let victim = sim.truth_sent()[3]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(sim.delete_message(&victim));
    let run = sync(&store, "reddit-test", RunMode::Full).await;
    assert_eq!(run.stats.deleted, 1);
    assert!(run.streams["sent"].complete_listing);
    assert_equals_truth(&*store, conn.id, &sim).await;
    let with_deleted = store
        .export_page(conn.id, spec("sent"), None, 1000, true)
        .await
        .expect("export");
    let row = with_deleted
        .iter()
        .find(|r| r.id == victim)
        .expect("tombstone kept");
    assert!(row.deleted_at.is_some());
    sim.shutdown();
}
both_backends!(
    deleted_messages_are_tombstoned_not_dropped,
    deleted_messages_tombstoned_by_complete_listing
);

async fn listing_cap_never_deletes(db: &TestDb) {
    // 2,400 messages behind Reddit's 1,000-item cap: the oldest are unreachable, and a
    // listing that reached the cap is not complete, so nothing may be tombstoned.
    let cfg = RedditSimConfig {
        seed: 9,
        messages: 2400,
        comment_replies: 0,
        saved: 0,
        rate_limit: None,
        ..Default::default()
    };
    let (sim, store, conn) = setup(db, &cfg).await;
    let run = sync(&store, "reddit-test", RunMode::Full).await;
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(
        store
            .count_live(conn.id, spec("inbox"))
            .await
            .expect("count"),
        1000
    );
    let again = sync(&store, "reddit-test", RunMode::Full).await;
    assert_eq!(again.stats.deleted, 0);
    assert!(!again.streams["inbox"].complete_listing);
    sim.shutdown();
}
both_backends!(a_capped_listing_never_deletes, listing_cap_never_deletes);

async fn token_expiry_and_revocation(db: &TestDb) {
    let cfg = small_account();
    let (sim, store, conn) = setup(db, &cfg).await;
    sync(&store, "reddit-test", RunMode::Full).await;
    // An expired token is refreshed once and the sync goes on.
    sim.expire_tokens();
    sim.add_message(None, false, "hello");
    let run = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_eq!(run.stats.inserted, 1);
    // A revoked refresh token: needs_reauth, the run fails with instructions, nothing lost.
    sim.expire_tokens();
    sim.revoke_refresh_token();
    let run = sync(&store, "reddit-test", RunMode::Delta).await;
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
    assert_eq!(c.status, inlet_core::ConnectionStatus::NeedsReauth);
    assert_eq!(
        store
            .count_live(conn.id, spec("inbox"))
            .await
            .expect("count"),
        sim.truth_inbox().len() as u64
    );
    sim.shutdown();
}
both_backends!(
    expired_token_refreshes_and_revoked_needs_reauth,
    token_expiry_and_revocation
);

#[tokio::test]
async fn refreshed_tokens_are_persisted_so_the_next_run_needs_none() {
    let db = TestDb::new(Backend::Sqlite).await;
    let cfg = small_account();
    let (sim, store, _) = setup(&db, &cfg).await;
    sync(&store, "reddit-test", RunMode::Full).await;
    let token_requests = |sim: &RedditSim| {
        sim.requests()
            .iter()
            .filter(|r| r.path.contains("access_token"))
            .count()
    };
    assert_eq!(token_requests(&sim), 1);
    sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(
        token_requests(&sim),
        1,
        "the stored access token was reused"
    );
    let conn = store
        .get_connection("reddit-test")
        .await
        .expect("get")
        .expect("exists");
    let c = connector(&conn);
    assert!(c.take_updated_credentials().await.is_none());
    sim.shutdown();
}

async fn interrupted_before_derived_refresh(db: &TestDb) {
    // A full pass that committed every page but died before recomputing conversations
    // must redo the recomputation on the next run, without fetching the listing again.
    let cfg = RedditSimConfig {
        seed: 13,
        messages: 400,
        comment_replies: 0,
        saved: 3,
        ..Default::default()
    };
    let (sim, store, conn) = setup(db, &cfg).await;
    sync(&store, "reddit-test", RunMode::Full).await;
    assert_equals_truth(&*store, conn.id, &sim).await;
    // New messages land without their conversations, as a crash would leave them.
    for _ in 0..3 {
        sim.add_message(None, false, "a conversation the crash hid");
    }
    let inbox = sim.truth_inbox();
    let connector = connector(&conn);
    let page = connector
        .fetch_page(spec("inbox"), None)
        .await
        .expect("page");
    let mut state = store.sync_state(conn.id, "inbox").await.expect("state");
    let batch = inlet_core::PageBatch {
        connection_id: conn.id,
        stream: spec("inbox"),
        records: page.records,
        state: &state,
        at: inlet_core::Timestamp(0),
        refresh_derived: false,
    };
    store.commit_page(batch).await.expect("commit");
    let before = store
        .count_derived(conn.id, "reddit_conversations")
        .await
        .expect("count");
    state.checkpoint = Some(inlet_core::Checkpoint {
        mode: RunMode::Full,
        next: None,
        watermark: inlet_core::Timestamp(0),
        pages: 4,
        records: inbox.len() as u64,
        fetched_all: true,
    });
    store
        .put_sync_state(conn.id, "inbox", &state)
        .await
        .expect("put");
    sim.clear_log();
    let run = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert!(run.streams["inbox"].resumed);
    assert_eq!(run.streams["inbox"].stats.derived_inserted, 3);
    let (inbox_reqs, _, _, _) = listing_requests(&sim);
    assert_eq!(inbox_reqs, 0, "only the recomputation was left to do");
    assert_eq!(
        store
            .count_derived(conn.id, "reddit_conversations")
            .await
            .expect("count"),
        before + 3
    );
    assert!(
        store
            .sync_state(conn.id, "inbox")
            .await
            .expect("state")
            .checkpoint
            .is_none()
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}
both_backends!(
    a_pass_interrupted_before_its_derived_refresh_redoes_it,
    interrupted_before_derived_refresh
);

async fn faults_injected(db: &TestDb) {
    // 5xx, connection resets, truncated bodies and a 429 burst on every listing: the
    // retries absorb them and the database still ends equal to the simulator.
    let cfg = RedditSimConfig {
        seed: 17,
        messages: 900,
        comment_replies: 30,
        saved: 60,
        ..Default::default()
    };
    let (sim, store, conn) = setup(db, &cfg).await;
    sim.set_faults(inlet_sim::reddit::Faults {
        http_5xx: 0.2,
        reset: 0.05,
        truncated: 0.05,
        http_429_burst: 2,
        ..Default::default()
    });
    let run = sync(&store, "reddit-test", RunMode::Full).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert!(run.stats.retries > 0, "faults were injected and retried");
    assert_eq!(
        run.stats.requests,
        run.stats.retries + run.stats.pages + 1,
        "every request is a page, a retry or the token"
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.add_message(None, false, "after the storm");
    let delta = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(delta.status, RunStatus::Success, "{:?}", delta.error);
    assert_equals_truth(&*store, conn.id, &sim).await;
    assert_eq!(sim.rate_limit_violations(), 0);
    sim.shutdown();
}
both_backends!(faults_injected_still_end_equal_to_truth, faults_injected);

/// Sets the cancel flag (as Ctrl-C does) once the first chunk of `inbox` is committed.
struct CancelAfterFirstChunk(Arc<std::sync::atomic::AtomicBool>);

impl Progress for CancelAfterFirstChunk {
    fn page_committed(&self, stream: &str, _s: &StreamStats) {
        if stream == "inbox" {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_at_a_chunk_boundary_and_the_next_sync_resumes() {
    let db = TestDb::new(Backend::Sqlite).await;
    let cfg = RedditSimConfig {
        seed: 4,
        messages: 1200,
        comment_replies: 0,
        saved: 0,
        ..Default::default()
    };
    let (sim, store, conn) = setup(&db, &cfg).await;
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut opts = SyncOptions::new(RunMode::Full);
    opts.cancel = Some(flag.clone());
    let run = engine(store.clone())
        .with_batch_records(200)
        .sync(
            &conn,
            &connector(&conn),
            &opts,
            &CancelAfterFirstChunk(flag),
        )
        .await
        .expect("sync");
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("interrupted")),
        "{:?}",
        run.error
    );
    assert!(
        !run.streams.contains_key("sent"),
        "later streams did not start"
    );
    let cp = store
        .sync_state(conn.id, "inbox")
        .await
        .expect("state")
        .checkpoint
        .expect("checkpoint kept");
    // The second chunk was fetched while the first was committed, before the flag was
    // set: it is committed too (pages fetched before a cancellation are kept), and the
    // third is never asked for.
    assert_eq!(
        cp.pages, 4,
        "stopped after the chunk fetched while the first was written"
    );
    let again = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(again.status, RunStatus::Success, "{:?}", again.error);
    assert!(again.streams["inbox"].resumed);
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}

/// A run left `running` is closed only when no other holder's lease on the connection is
/// live: a second sync must not mark a first one's live run interrupted. Once that lease
/// lapsed (its holder died or lost its database), the next sync closes the run as
/// interrupted.
async fn abandoned_runs_checked_against_the_lease(db: &TestDb) {
    let (sim, store, conn) = setup(db, &small_account()).await;
    let holder = "elsewhere:4242:feedbeef";
    let now = inlet_core::Clock::now(&inlet_core::SystemClock);
    assert!(
        store
            .try_acquire_lease(conn.id, holder, now, 60_000)
            .await
            .expect("lease")
    );
    let live = store
        .start_run(conn.id, RunMode::Delta, inlet_core::Trigger::Api, now)
        .await
        .expect("run");
    let run = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    let other = store.get_run(live).await.expect("get").expect("run");
    assert_eq!(other.status, RunStatus::Running, "a live run is left alone");

    // The holder stops renewing: its lease lapses, and the next sync closes its run.
    store.release_lease(conn.id, holder).await.expect("release");
    let past = inlet_core::Timestamp(now.0 - 120_000);
    assert!(
        store
            .try_acquire_lease(conn.id, holder, past, 60_000)
            .await
            .expect("lease")
    );
    let run = sync(&store, "reddit-test", RunMode::Delta).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    let other = store.get_run(live).await.expect("get").expect("run");
    assert_eq!(other.status, RunStatus::Interrupted);
    assert!(
        other
            .error
            .as_deref()
            .is_some_and(|e| e.contains("the process stopped")),
        "{:?}",
        other.error
    );
    sim.shutdown();
}
both_backends!(
    a_live_lease_keeps_its_run_open_until_it_lapses,
    abandoned_runs_checked_against_the_lease
);
