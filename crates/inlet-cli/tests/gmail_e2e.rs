//! End to end: the engine syncs the Gmail simulator (threads of the chosen labels, every
//! message of those threads, the labels) into SQLite and PostgreSQL. The database equals
//! the simulator's truth after the first sync (the newest 5 threads per label), after new
//! threads, replies, label changes, deleted messages and threads, and after a 3-day
//! outage; a no-change delta is one `history.list` (2 quota units); an expired history id
//! falls back to listing the labels again without tombstoning anything; the unit quota is
//! never exceeded, also under injected faults; a revoked refresh token sets the
//! connection `needs_reauth`.

mod common;

use common::*;
use inlet_connectors::gmail::streams::STREAMS;
use inlet_connectors::gmail::{GmailConfig, GmailConnector, GmailCredentials};
use inlet_core::{
    Clock, Connection, ConnectionStatus, ManualClock, NewConnection, Run, RunMode, RunStatus,
    Store, StreamSpec, Timestamp,
};
use inlet_engine::{Engine, NoProgress, SyncOptions};
use inlet_sim::gmail::{Faults, GmailSim, GmailSimConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const T0: i64 = 1_750_000_000_000;
const HOUR: i64 = 3_600_000;
/// The labels the tests sync.
const LABELS: [&str; 2] = ["INBOX", "Label_1"];

fn spec(name: &str) -> &'static StreamSpec {
    STREAMS.iter().find(|s| s.name == name).expect("stream")
}

struct Env {
    sim: GmailSim,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    /// Threads the connection has taken up: the first sync's and every thread changed
    /// since (those still in scope are expected live).
    synced: BTreeSet<String>,
}

async fn setup(db: &TestDb, seed: u64, threads: u64, first_sync_threads: u32) -> Env {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let sim = GmailSim::start(GmailSimConfig {
        seed,
        threads,
        // Budgets are shared per refresh token within a process: one token per test.
        refresh_token: format!("1//sim-{seed}-{}", rand_u64()),
        clock: clock.clone(),
        ..Default::default()
    })
    .await
    .expect("sim");
    let store = db.store().await;
    let (client_id, client_secret, refresh_token) = sim.credentials();
    let config = GmailConfig {
        api_base: sim.api_base(),
        token_url: sim.token_url(),
        labels: LABELS.iter().map(|l| l.to_string()).collect(),
        first_sync_threads,
        ..Default::default()
    };
    let creds = GmailCredentials {
        client_id,
        client_secret,
        refresh_token,
        access_token: None,
        expires_at_ms: None,
    };
    let sealed = key()
        .seal(&serde_json::to_vec(&creds).expect("json"), b"test")
        .expect("seal");
    store
        .create_connection(
            &NewConnection {
                name: "gmail-test".into(),
                workspace: "tests".into(),
                provider: "gmail".into(),
                config: serde_json::to_value(&config).expect("json"),
                credentials: sealed,
            },
            clock.now(),
        )
        .await
        .expect("create connection");
    Env {
        sim,
        store,
        clock,
        synced: BTreeSet::new(),
    }
}

async fn conn(store: &Arc<dyn Store>) -> Connection {
    store
        .get_connection("gmail-test")
        .await
        .expect("get")
        .expect("exists")
}

/// Every live row of a stream, id -> (typed values as JSON text, raw JSON).
async fn stored(store: &dyn Store, conn: i64, stream: &str) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let rows = store
            .export_page(conn, spec(stream), after.as_deref(), 1000, false)
            .await
            .expect("export");
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for r in rows {
            out.insert(r.id, serde_json::from_str(&r.raw).expect("raw is JSON"));
        }
    }
    out
}

fn ok(run: &Run, when: &str) {
    assert_eq!(
        run.status,
        RunStatus::Success,
        "{when}: {:?} {:?}",
        run.error,
        run.streams
    );
}

impl Env {
    async fn sync_mode(&self, mode: RunMode) -> Run {
        let conn = conn(&self.store).await;
        let config: GmailConfig = serde_json::from_value(conn.config.clone()).expect("config");
        let plain = key().open(&conn.credentials, b"test").expect("open creds");
        let creds: GmailCredentials = serde_json::from_slice(&plain).expect("creds");
        let c = GmailConnector::new(config, creds, http_config()).expect("connector");
        let k = Arc::new(key());
        Engine::new(self.store.clone(), self.clock.clone())
            .with_sealer(Arc::new(move |_c: &Connection, v: &serde_json::Value| {
                k.seal(&serde_json::to_vec(v).map_err(|e| e.to_string())?, b"test")
                    .map_err(|e| e.to_string())
            }))
            .sync(&conn, &c, &SyncOptions::new(mode), &NoProgress)
            .await
            .expect("sync")
    }

    async fn sync(&self) -> Run {
        self.sync_mode(RunMode::Delta).await
    }

    /// The first-sync window: the newest `n` threads of each label.
    fn window(&self, n: usize) -> BTreeSet<String> {
        LABELS
            .iter()
            .flat_map(|l| self.sim.listed(l).into_iter().take(n))
            .collect()
    }

    /// Differences between the database and the truth: every synced thread still in
    /// scope is live with its history id and exactly its messages, as the simulator
    /// serves them; nothing else is live.
    async fn differences(&self) -> Vec<String> {
        let id = conn(&self.store).await.id;
        let threads = stored(&*self.store, id, "threads").await;
        let messages = stored(&*self.store, id, "messages").await;
        let mut want_threads = BTreeMap::new();
        let mut want_msgs = BTreeMap::new();
        for t in &self.synced {
            if !self.sim.in_scope(t, &LABELS) {
                continue;
            }
            let Some(truth) = self.sim.thread(t) else {
                continue;
            };
            want_threads.insert(t.clone(), truth.history_id.clone());
            for m in truth.messages {
                want_msgs.insert(m["id"].as_str().unwrap_or("").to_string(), m);
            }
        }
        let mut out = Vec::new();
        for (t, h) in &want_threads {
            match threads.get(t) {
                None => out.push(format!("thread {t} missing")),
                Some(g) if g["historyId"].as_str() != Some(h.as_str()) => {
                    out.push(format!("thread {t} history id {} != {h}", g["historyId"]));
                }
                _ => {}
            }
        }
        for t in threads.keys().filter(|t| !want_threads.contains_key(*t)) {
            out.push(format!("thread {t} extra"));
        }
        for (m, w) in &want_msgs {
            match messages.get(m) {
                None => out.push(format!("message {m} missing")),
                Some(g) if g != w => out.push(format!("message {m} differs")),
                _ => {}
            }
        }
        for m in messages.keys().filter(|m| !want_msgs.contains_key(*m)) {
            out.push(format!("message {m} extra"));
        }
        out
    }

    async fn assert_equals_truth(&self, when: &str) {
        let d = self.differences().await;
        assert!(
            d.is_empty(),
            "{when}: {} differences: {:?}",
            d.len(),
            &d[..d.len().min(10)]
        );
    }

    /// A synced thread in scope with at least `min` messages, other than `not`.
    fn pick(&self, min: usize, not: &[&str]) -> String {
        self.synced
            .iter()
            .find(|t| {
                !not.contains(&t.as_str())
                    && self.sim.in_scope(t, &LABELS)
                    && self.sim.message_ids(t).len() >= min
            })
            .cloned()
            .unwrap_or_else(|| panic!("no synced thread with {min} messages"))
    }
}

/// First sync (5 threads per label), changes of every kind, a no-change delta, a 3-day
/// outage.
async fn full_changes_delta_outage(db: &TestDb) {
    let mut env = setup(db, 21, 30, 5).await;
    let first = env.sync().await;
    ok(&first, "first sync");
    assert_eq!(first.mode, RunMode::Full);
    env.synced = env.window(5);
    assert!(
        env.synced.len() > 5 && env.synced.len() <= 10,
        "{:?}",
        env.synced
    );
    env.assert_equals_truth("after the first sync").await;
    let counts = env.sim.method_counts();
    eprintln!(
        "gmail first sync (5 threads per label, 2 labels): {counts:?}, {} units",
        env.sim.units()
    );
    assert_eq!(
        counts.get("profile"),
        Some(&1),
        "the history id is taken once"
    );
    assert_eq!(counts.get("threads.list"), Some(&2), "one page per label");
    assert_eq!(counts.get("threads.get"), Some(&(env.synced.len() as u64)));
    assert_eq!(counts.get("labels.list"), Some(&1));
    let id = conn(&env.store).await.id;
    assert!(
        stored(&*env.store, id, "labels")
            .await
            .contains_key("Label_1")
    );

    // Changes: a new thread, a reply labelled SENT only in a synced thread, a label added
    // and one removed, a deleted message, a deleted thread, an archived thread (it leaves
    // INBOX and every chosen label), and an old thread beyond the window starred.
    env.clock.advance_ms(10 * 60_000);
    let sim = env.sim.clone();
    let new = sim.new_thread(&["INBOX", "UNREAD"], "A new thread");
    let replied = env.pick(1, &[]);
    sim.reply(&replied, &["SENT"], "Re: replied");
    let relabelled = env.pick(1, &[&replied]);
    let m = sim.message_ids(&relabelled)[0].clone();
    assert!(sim.relabel(&m, &["Label_2", "STARRED"], &["UNREAD"]));
    let trimmed = env.pick(2, &[&replied, &relabelled]);
    let gone_msg = sim.message_ids(&trimmed)[1].clone();
    assert!(sim.delete_message(&gone_msg));
    let deleted = env.pick(1, &[&replied, &relabelled, &trimmed]);
    assert!(sim.delete_thread(&deleted));
    let archived = env
        .synced
        .iter()
        .find(|t| {
            ![&replied, &relabelled, &trimmed, &deleted].contains(t)
                && sim.in_scope(t, &LABELS)
                && !sim.in_scope(t, &["Label_1"])
        })
        .cloned()
        .expect("an INBOX-only thread");
    for m in sim.message_ids(&archived) {
        sim.relabel(&m, &[], &["INBOX"]);
    }
    let old = sim
        .listed("INBOX")
        .into_iter()
        .find(|t| !env.synced.contains(t) && *t != new)
        .expect("an older thread");
    let old_msg = sim.message_ids(&old)[0].clone();
    assert!(sim.relabel(&old_msg, &["STARRED"], &[]));
    for t in [&new, &old] {
        env.synced.insert(t.clone());
    }
    assert!(!sim.in_scope(&archived, &LABELS));
    sim.clear_log();
    let delta = env.sync().await;
    ok(&delta, "delta after changes");
    env.assert_equals_truth("after changes").await;
    assert_eq!(delta.mode, RunMode::Delta);
    assert_eq!(
        delta.streams["threads"].stats.deleted, 2,
        "the deleted and the archived thread"
    );
    let counts = sim.method_counts();
    eprintln!(
        "gmail delta after 7 changes: {counts:?}, {} units",
        sim.units()
    );
    assert_eq!(counts.get("threads.list"), None, "history, not listings");
    assert_eq!(counts.get("history.list"), Some(&1));
    assert_eq!(
        counts.get("threads.get"),
        Some(&7),
        "each touched thread once"
    );

    // Nothing changed: one history.list, 2 units.
    env.clock.advance_ms(15 * 60_000);
    sim.clear_log();
    let quiet = env.sync().await;
    ok(&quiet, "no-change delta");
    let counts = sim.method_counts();
    eprintln!("gmail no-change delta: {counts:?}, {} units", sim.units());
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(counts.get("history.list"), Some(&1));
    assert_eq!(sim.units(), 2);
    env.assert_equals_truth("after a no-change delta").await;

    // A 3-day outage with traffic all along, then one catch-up sync.
    for step in 0..12 {
        env.clock.advance_ms(6 * HOUR);
        let t = sim.new_thread(&["Label_1"], &format!("during the outage {step}"));
        env.synced.insert(t.clone());
        if step % 3 == 0 {
            let r = sim.reply(&t, &["INBOX"], "a reply during the outage");
            if step == 6 {
                assert!(sim.delete_message(&r));
            }
        }
        if step % 4 == 1 {
            let other = env.pick(1, &[&t]);
            let m = sim.message_ids(&other)[0].clone();
            sim.relabel(&m, &["IMPORTANT"], &[]);
        }
    }
    let catch_up = env.sync().await;
    ok(&catch_up, "catch-up after 3 days");
    env.assert_equals_truth("after a 3-day outage").await;
    assert_eq!(
        sim.rate_limit_violations(),
        0,
        "the unit quota was never exceeded"
    );
}

both_backends!(full_changes_delta_outage_variant, full_changes_delta_outage);

/// `--full` reads every thread of the labels; an expired history id (404) lists them
/// all again from a new history id and tombstones nothing; deltas go on from there.
async fn expired_history_resyncs(db: &TestDb) {
    let mut env = setup(db, 22, 24, 5).await;
    ok(&env.sync().await, "first sync");
    env.synced = env.window(5);
    env.clock.advance_ms(60_000);
    let full = env.sync_mode(RunMode::Full).await;
    ok(&full, "--full");
    env.synced = env.window(usize::MAX);
    env.assert_equals_truth("after --full").await;

    // Changes the history would have named, then the history expires.
    let sim = env.sim.clone();
    let t = env.pick(1, &[]);
    sim.reply(&t, &["INBOX"], "Re: while history expired");
    let n = sim.new_thread(&["Label_1"], "new while history expired");
    env.synced.insert(n);
    sim.expire_history();
    sim.clear_log();
    let id = conn(&env.store).await.id;
    let before = stored(&*env.store, id, "threads").await.len();
    let resync = env.sync().await;
    ok(&resync, "resync after 404");
    let counts = sim.method_counts();
    eprintln!("gmail resync after an expired history id: {counts:?}");
    assert_eq!(counts.get("history.list"), Some(&1), "one 404");
    assert_eq!(counts.get("profile"), Some(&1), "a new history id");
    assert_eq!(
        counts.get("threads.get"),
        Some(&2),
        "only the changed threads"
    );
    assert_eq!(
        resync.streams["threads"].stats.deleted, 0,
        "nothing tombstoned"
    );
    assert_eq!(stored(&*env.store, id, "threads").await.len(), before + 1);
    env.assert_equals_truth("after the resync").await;

    // The next delta starts from the new history id.
    env.clock.advance_ms(60_000);
    let t2 = env.pick(1, &[&t]);
    sim.reply(&t2, &["SENT"], "Re: after the resync");
    sim.clear_log();
    ok(&env.sync().await, "delta after the resync");
    assert_eq!(sim.method_count("threads.get"), 1);
    env.assert_equals_truth("delta after the resync").await;

    // A thread deleted, then `--full` (no delta saw the history): the complete scan
    // tombstones the thread and, with it, its messages.
    env.clock.advance_ms(60_000);
    let gone = env.pick(2, &[&t, &t2]);
    assert!(sim.delete_thread(&gone));
    let full = env.sync_mode(RunMode::Full).await;
    ok(&full, "--full after a deleted thread");
    assert_eq!(full.streams["threads"].stats.deleted, 1);
    env.assert_equals_truth("--full after a deleted thread")
        .await;
    assert_eq!(sim.rate_limit_violations(), 0);
}

both_backends!(expired_history_variant, expired_history_resyncs);

/// Injected 5xx, 429 bursts, resets and latency, and an access token that expires: the
/// result still equals the truth, and the unit quota is never exceeded.
async fn faults_still_equal_truth(db: &TestDb) {
    let mut env = setup(db, 23, 30, 0).await;
    env.sim.set_faults(Faults {
        http_5xx: 0.15,
        reset: 0.05,
        latency_ms: 30,
        latency_prob: 0.2,
        http_429_burst: 3,
        retry_after_secs: Some(1),
        ..Faults::default()
    });
    let run = env.sync().await;
    ok(&run, "first sync under faults");
    env.synced = env.window(usize::MAX);
    env.assert_equals_truth("first sync under faults").await;
    env.sim.expire_tokens();
    let t = env.pick(2, &[]);
    env.sim.reply(&t, &["INBOX"], "reply under faults");
    let run = env.sync().await;
    ok(&run, "delta under faults");
    env.assert_equals_truth("delta under faults").await;
    assert!(
        env.sim.method_count("token") >= 2,
        "the expired token was refreshed"
    );
    assert_eq!(env.sim.rate_limit_violations(), 0);
}

both_backends!(faults_variant, faults_still_equal_truth);

/// A revoked refresh token (400 `invalid_grant`) fails the run once, with a clear
/// message, and sets the connection `needs_reauth`; nothing loops.
async fn revoked_refresh_token_needs_reauth(db: &TestDb) {
    let env = setup(db, 24, 10, 5).await;
    ok(&env.sync().await, "first sync");
    env.sim.revoke();
    env.sim.clear_log();
    let run = env.sync().await;
    assert_eq!(run.status, RunStatus::Failed);
    let err = run.error.as_deref().unwrap_or("");
    assert!(err.contains("invalid_grant"), "{err}");
    assert!(
        err.contains("inlet connect gmail") || err.contains("reconnect") || err.contains("re-auth"),
        "{err}"
    );
    assert_eq!(conn(&env.store).await.status, ConnectionStatus::NeedsReauth);
    let counts = env.sim.method_counts();
    assert!(
        counts.get("token").copied().unwrap_or(0) <= 2,
        "no refresh loop: {counts:?}"
    );
}

both_backends!(revoked_variant, revoked_refresh_token_needs_reauth);

/// The benchmark: 2,000 threads (up to 4 messages each) in the chosen labels;
/// prints the requests and quota units of a `--full` sync and of a no-change delta
/// (the unit budget raised in the simulator and the connector alike, so it measures
/// calls, not waits). Run with
/// `cargo test --release -p inlet-cli --test gmail_e2e bench -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: a minute in a debug build"]
async fn bench_units_full_and_quiet_delta() {
    let db = common::TestDb::new(common::Backend::Sqlite).await;
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let sim = GmailSim::start(GmailSimConfig {
        seed: 99,
        threads: 2_000,
        refresh_token: format!("1//bench-{}", rand_u64()),
        units_per_second: 1_000_000,
        units_per_minute: 100_000_000,
        clock: clock.clone(),
        ..Default::default()
    })
    .await
    .expect("sim");
    let store = db.store().await;
    let (client_id, client_secret, refresh_token) = sim.credentials();
    let config = GmailConfig {
        api_base: sim.api_base(),
        token_url: sim.token_url(),
        labels: LABELS.iter().map(|l| l.to_string()).collect(),
        units_per_second: 1_000_000,
        concurrency: 10,
        ..Default::default()
    };
    let creds = GmailCredentials {
        client_id,
        client_secret,
        refresh_token,
        access_token: None,
        expires_at_ms: None,
    };
    let sealed = key()
        .seal(&serde_json::to_vec(&creds).expect("json"), b"test")
        .expect("seal");
    store
        .create_connection(
            &NewConnection {
                name: "gmail-test".into(),
                workspace: "tests".into(),
                provider: "gmail".into(),
                config: serde_json::to_value(&config).expect("json"),
                credentials: sealed,
            },
            clock.now(),
        )
        .await
        .expect("create");
    let mut env = Env {
        sim: sim.clone(),
        store,
        clock: clock.clone(),
        synced: BTreeSet::new(),
    };
    let started = std::time::Instant::now();
    let full = env.sync_mode(RunMode::Full).await;
    ok(&full, "bench full");
    let (full_counts, full_units) = (sim.method_counts(), sim.units());
    let full_secs = started.elapsed().as_secs_f64();
    env.synced = env.window(usize::MAX);
    env.assert_equals_truth("bench full").await;
    clock.advance_ms(15 * 60_000);
    sim.clear_log();
    let started = std::time::Instant::now();
    ok(&env.sync().await, "bench quiet delta");
    println!(
        "gmail bench ({} threads in INBOX/Label_1 of 2,000): full sync {full_counts:?} = {} requests, {full_units} units in {full_secs:.1} s; no-change delta {:?} = {} units in {:.2} s",
        env.synced.len(),
        full_counts.values().sum::<u64>(),
        sim.method_counts(),
        sim.units(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(sim.units(), 2, "a no-change delta is one history.list");
    assert_eq!(sim.rate_limit_violations(), 0);
    db.cleanup().await;
}
