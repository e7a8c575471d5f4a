//! End to end: the engine syncs the Slack simulator (conversations, users, the chosen
//! channels' messages, thread replies fetched per changed parent) into SQLite and
//! PostgreSQL. The database equals the simulator's truth after a full sync, after new,
//! edited and deleted messages and new replies, and after a 3-day outage; the request
//! log shows one `conversations.history` per channel and no `conversations.replies` on a
//! no-change delta; no tier limit is ever exceeded, also under injected faults.

mod common;

use common::*;
use inlet_connectors::slack::FILES_HOST;
use inlet_connectors::slack::streams::STREAMS;
use inlet_connectors::slack::{SlackConfig, SlackConnector, SlackCredentials};
use inlet_core::{Attachment, AttachmentStatus, ExportRow};
use inlet_core::{
    Clock, Connection, ConnectionStatus, ManualClock, NewConnection, Run, RunMode, RunStatus,
    Store, StreamSpec, Timestamp,
};
use inlet_engine::{AttachmentOptions, Engine, NoProgress, SyncOptions};
use inlet_http::{DownloadConfig, Downloader, RetryPolicy};
use inlet_sim::slack::{Faults, SlackSim, SlackSimConfig};
use inlet_store::FsBlobStore;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The simulator's and the engine's "now" at the start.
const T0: i64 = 1_750_000_000_000;
const HOUR: i64 = 3_600_000;

fn slack_spec(name: &str) -> &'static StreamSpec {
    STREAMS.iter().find(|s| s.name == name).expect("stream")
}

#[derive(Clone)]
struct Env {
    sim: SlackSim,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    channels: Vec<String>,
}

async fn setup(db: &TestDb, seed: u64, extra: &[&str]) -> Env {
    setup_with(db, seed, extra, false).await
}

/// `rotation`: the app has token rotation; the connection holds the rotating pair.
async fn setup_with(db: &TestDb, seed: u64, extra: &[&str], rotation: bool) -> Env {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let sim = SlackSim::start(SlackSimConfig {
        seed,
        channels: 5,
        messages_per_channel: 60,
        threads_per_channel: 6,
        replies_per_thread: 3,
        span_secs: 3 * 86_400,
        // Budgets are shared per token within a process: one token per test.
        bot_token: format!("xoxb-{seed}-{}", rand_u64()),
        clock: clock.clone(),
        rotation,
        ..Default::default()
    })
    .await
    .expect("sim");
    let store = db.store().await;
    // Three public channels and a private one; the DM stays unsynced.
    let channels: Vec<String> = sim.channel_ids().into_iter().take(4).collect();
    let mut chosen = channels.clone();
    chosen.extend(extra.iter().map(|c| c.to_string()));
    let config = SlackConfig {
        api_base: sim.api_base(),
        channels: chosen,
        ..Default::default()
    };
    let creds = if rotation {
        let (access, refresh) = sim.rotating_tokens();
        SlackCredentials {
            token: access,
            refresh_token: Some(refresh),
            client_id: Some(SlackSimConfig::default().client_id),
            client_secret: Some(SlackSimConfig::default().client_secret),
            expires_at_ms: None,
        }
    } else {
        SlackCredentials::token(sim.bot_token())
    };
    let sealed = key()
        .seal(&serde_json::to_vec(&creds).expect("json"), b"test")
        .expect("seal");
    let new = NewConnection {
        name: "slack-test".into(),
        workspace: "tests".into(),
        provider: "slack".into(),
        config: serde_json::to_value(&config).expect("json"),
        credentials: sealed,
    };
    store
        .create_connection(&new, clock.now())
        .await
        .expect("create connection");
    Env {
        sim,
        store,
        clock,
        channels,
    }
}

async fn conn(store: &Arc<dyn Store>) -> Connection {
    store
        .get_connection("slack-test")
        .await
        .expect("get")
        .expect("exists")
}

impl Env {
    async fn sync_mode(&self, mode: RunMode) -> Run {
        let conn = conn(&self.store).await;
        let c = self.connector().await;
        self.engine()
            .sync(&conn, &c, &SyncOptions::new(mode), &NoProgress)
            .await
            .expect("sync")
    }

    /// The connector as the stored connection makes it.
    async fn connector(&self) -> SlackConnector {
        let conn = conn(&self.store).await;
        let config: SlackConfig = serde_json::from_value(conn.config.clone()).expect("config");
        let plain = key().open(&conn.credentials, b"test").expect("open creds");
        let creds: SlackCredentials = serde_json::from_slice(&plain).expect("creds");
        SlackConnector::new(config, &creds, http_config()).expect("connector")
    }

    fn engine(&self) -> Engine {
        let k = Arc::new(key());
        Engine::new(self.store.clone(), self.clock.clone()).with_sealer(Arc::new(
            move |_c: &Connection, v: &serde_json::Value| {
                k.seal(&serde_json::to_vec(v).map_err(|e| e.to_string())?, b"test")
                    .map_err(|e| e.to_string())
            },
        ))
    }

    /// An engine that downloads attachments (Slack's files, through the simulator's
    /// files host) into `blobs`.
    fn engine_with_files(&self, blobs: &std::path::Path) -> Engine {
        let downloader = Downloader::new(DownloadConfig {
            allowed_hosts: vec![FILES_HOST.to_string()],
            rewrite_base: Some(self.sim.media_base()),
            retry: RetryPolicy {
                max_attempts: 4,
                base: std::time::Duration::from_millis(5),
                cap: std::time::Duration::from_millis(50),
                deadline: std::time::Duration::from_secs(10),
            },
            ..Default::default()
        })
        .expect("downloader");
        self.engine().with_attachments(AttachmentOptions {
            fetcher: Arc::new(downloader),
            blobs: Arc::new(FsBlobStore::new(blobs)),
            concurrency: 4,
        })
    }

    /// The credentials stored now.
    async fn stored_credentials(&self) -> SlackCredentials {
        let conn = conn(&self.store).await;
        let plain = key().open(&conn.credentials, b"test").expect("open creds");
        serde_json::from_slice(&plain).expect("creds")
    }

    async fn sync(&self) -> Run {
        self.sync_mode(RunMode::Delta).await
    }

    /// Differences between the database and the simulator's truth.
    async fn differences(&self) -> Vec<String> {
        let id = conn(&self.store).await.id;
        let mut want_msgs = BTreeMap::new();
        let mut want_replies = BTreeMap::new();
        for ch in &self.channels {
            for m in self.sim.truth_history(ch) {
                want_msgs.insert(format!("{}:{}", m.channel, m.ts), m.json);
            }
            for m in self.sim.truth_replies(ch) {
                want_replies.insert(format!("{}:{}", m.channel, m.ts), m.json);
            }
        }
        let users: BTreeMap<String, serde_json::Value> = self
            .sim
            .truth_users()
            .into_iter()
            .map(|u| (u["id"].as_str().unwrap_or("").to_string(), u))
            .collect();
        let mut out = diff(
            "message",
            &want_msgs,
            &stored(&*self.store, id, "messages").await,
        );
        out.extend(diff(
            "reply",
            &want_replies,
            &stored(&*self.store, id, "replies").await,
        ));
        out.extend(diff(
            "user",
            &users,
            &stored(&*self.store, id, "users").await,
        ));
        let channels = stored(&*self.store, id, "channels").await;
        let ids: Vec<&String> = channels.keys().collect();
        let mut all = self.sim.channel_ids();
        all.sort();
        if ids
            .iter()
            .map(|s| s.as_str())
            .ne(all.iter().map(String::as_str))
        {
            out.push(format!("channels {ids:?} != {all:?}"));
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

    /// A live message of `channel` in the last `hours`, with (or without) replies.
    fn recent(&self, channel: &str, hours: i64, threaded: bool) -> String {
        let since = self.clock.now().0 - hours * HOUR;
        self.sim
            .truth_history(channel)
            .into_iter()
            .find(|m| {
                let secs: f64 = m.ts.parse().unwrap_or(0.0);
                (secs * 1000.0) as i64 > since
                    && m.json.get("reply_count").is_some() == threaded
                    && m.json.get("subtype").is_none()
            })
            .map(|m| m.ts)
            .unwrap_or_else(|| panic!("no recent message in {channel}"))
    }
}

/// Every live row of a stream, id -> raw JSON.
async fn stored(store: &dyn Store, conn: i64, stream: &str) -> BTreeMap<String, serde_json::Value> {
    export_all(store, conn, slack_spec(stream))
        .await
        .into_iter()
        .map(|r| {
            let raw = serde_json::from_str(&r.raw).expect("raw is JSON");
            (r.id, raw)
        })
        .collect()
}

fn diff(
    what: &str,
    want: &BTreeMap<String, serde_json::Value>,
    got: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (id, w) in want {
        match got.get(id) {
            None => out.push(format!("{what} {id} missing")),
            Some(g) if g != w => out.push(format!("{what} {id} differs")),
            _ => {}
        }
    }
    for id in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!("{what} {id} extra"));
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

/// First sync (last 24 hours), `--full`, changes, a no-change delta, a 3-day outage.
async fn full_changes_delta_outage(db: &TestDb) {
    let env = setup(db, 11, &[]).await;
    let sim = &env.sim;
    let first = env.sync().await;
    ok(&first, "first sync");
    assert_eq!(first.mode, RunMode::Full);
    let id = conn(&env.store).await.id;
    let msgs = stored(&*env.store, id, "messages").await;
    let window = T0 - 24 * HOUR;
    let want = env
        .channels
        .iter()
        .flat_map(|c| sim.truth_history(c))
        .filter(|m| {
            m.ts.parse::<f64>()
                .map(|s| (s * 1000.0) as i64 >= window)
                .unwrap_or(false)
        })
        .count();
    assert!(
        want > 0 && want < 4 * 60,
        "the window holds some messages: {want}"
    );
    assert_eq!(
        msgs.len(),
        want,
        "the first sync reads the last 24 hours only"
    );

    sim.clear_log();
    env.clock.advance_ms(60_000);
    let full = env.sync_mode(RunMode::Full).await;
    ok(&full, "--full");
    env.assert_equals_truth("after --full").await;
    let counts = sim.method_counts();
    eprintln!("slack full sync of 4 channels x 60 messages, 24 threads: {counts:?}");
    assert_eq!(
        counts.get("conversations.history"),
        Some(&4),
        "one page per channel"
    );
    assert_eq!(
        counts.get("conversations.replies"),
        Some(&24),
        "one call per thread"
    );

    // New, edited and deleted messages, a new reply, a renamed user.
    env.clock.advance_ms(10 * 60_000);
    let (c0, c1, c2) = (&env.channels[0], &env.channels[1], &env.channels[2]);
    sim.post(c0, "U0SIM0001", "a new message");
    let edited = env.recent(c1, 20, false);
    assert!(sim.edit(c1, &edited, "an edited message"));
    let gone = env.recent(c2, 20, false);
    assert!(sim.delete(c2, &gone));
    let parent = env.recent(c0, 20, true);
    sim.reply(c0, &parent, "U0SIM0002", "a new reply");
    let old_reply = sim
        .truth_replies(c0)
        .into_iter()
        .find(|r| r.json["thread_ts"] == parent.as_str())
        .expect("a reply")
        .ts;
    assert!(sim.delete(c0, &old_reply), "a deleted reply");
    assert!(sim.rename_user("U0SIM0003", "Renamed User"));
    sim.clear_log();
    let delta = env.sync().await;
    ok(&delta, "delta after changes");
    env.assert_equals_truth("after changes").await;
    assert_eq!(delta.streams["messages"].stats.deleted, 1);
    assert_eq!(delta.streams["replies"].stats.deleted, 1);
    assert_eq!(sim.method_count("conversations.history"), 4);
    assert_eq!(
        sim.method_count("conversations.replies"),
        1,
        "only the changed thread"
    );

    // Nothing changed: one history call per channel, no replies.
    env.clock.advance_ms(15 * 60_000);
    sim.clear_log();
    let quiet = env.sync().await;
    ok(&quiet, "no-change delta");
    let counts = sim.method_counts();
    eprintln!("slack no-change delta of 4 channels: {counts:?}");
    assert_eq!(counts.get("conversations.history"), Some(&4));
    assert_eq!(counts.get("conversations.replies"), None);
    env.assert_equals_truth("after a no-change delta").await;

    // A 3-day outage with traffic all along, then one catch-up sync.
    for step in 0..12 {
        env.clock.advance_ms(6 * HOUR);
        let ts = sim.post(c1, "U0SIM0004", &format!("during the outage {step}"));
        if step % 3 == 0 {
            sim.reply(c1, &ts, "U0SIM0005", "a reply during the outage");
        }
    }
    let edited = env.recent(c1, 30, false);
    assert!(sim.edit(c1, &edited, "edited after the outage"));
    let catch_up = env.sync().await;
    ok(&catch_up, "catch-up after 3 days");
    env.assert_equals_truth("after a 3-day outage").await;
    assert_eq!(sim.rate_limit_violations(), 0, "no tier limit exceeded");
}

both_backends!(full_changes_delta_outage_variant, full_changes_delta_outage);

/// Injected 5xx, 429 with Retry-After, resets and latency: the result still equals the
/// truth, and no tier limit is exceeded.
async fn faults_still_equal_truth(db: &TestDb) {
    let env = setup(db, 12, &[]).await;
    env.sim.set_faults(Faults {
        http_5xx: 0.15,
        reset: 0.05,
        latency_ms: 30,
        latency_prob: 0.2,
        http_429_burst: 2,
        retry_after_secs: Some(1),
        ..Faults::default()
    });
    let run = env.sync_mode(RunMode::Full).await;
    ok(&run, "full under faults");
    env.assert_equals_truth("full under faults").await;
    env.clock.advance_ms(10 * 60_000);
    let parent = env.recent(&env.channels[3], 20, true);
    env.sim
        .reply(&env.channels[3], &parent, "U0SIM0001", "reply under faults");
    let run = env.sync().await;
    ok(&run, "delta under faults");
    env.assert_equals_truth("delta under faults").await;
    assert_eq!(env.sim.rate_limit_violations(), 0);
}

both_backends!(faults_variant, faults_still_equal_truth);

/// A channel the app cannot read from the first sync on does not hold the others back:
/// each channel keeps its own cursor. After a 3-day outage the healthy channels are
/// caught up from their cursors (nothing older than 24 hours lost, nothing stored
/// tombstoned), and the channel, readable again, gets its own first sync.
async fn failing_channel_holds_no_other_back(db: &TestDb) {
    let env = setup(db, 14, &[]).await;
    let sim = &env.sim;
    let (c0, locked) = (env.channels[0].clone(), env.channels[3].clone());
    sim.set_access(&locked, false);
    let first = env.sync().await;
    assert_eq!(first.status, RunStatus::Partial, "{:?}", first.error);
    assert!(
        first.streams["messages"]
            .listing_errors
            .iter()
            .any(|e| e.contains("not_in_channel")),
        "{:?}",
        first.streams["messages"].listing_errors
    );
    // Three days pass with traffic; no sync runs.
    let mut posted = Vec::new();
    for step in 0..12 {
        env.clock.advance_ms(6 * HOUR);
        posted.push(sim.post(&c0, "U0SIM0001", &format!("outage {step}")));
        sim.post(&locked, "U0SIM0002", &format!("locked {step}"));
    }
    sim.set_access(&locked, true);
    let run = env.sync().await;
    ok(&run, "after the outage");
    assert_eq!(
        run.streams["messages"].stats.deleted, 0,
        "nothing tombstoned"
    );
    let id = conn(&env.store).await.id;
    let msgs = stored(&*env.store, id, "messages").await;
    let now = env.clock.now().0;
    let ms_of = |ts: &str| (ts.parse::<f64>().unwrap_or(0.0) * 1000.0) as i64;
    for ch in &env.channels {
        // Healthy channels: everything since their first sync's window; the channel
        // read for the first time: its own last 24 hours.
        let from = if *ch == locked {
            now - 24 * HOUR
        } else {
            T0 - 24 * HOUR
        };
        for m in sim.truth_history(ch) {
            let key = format!("{ch}:{}", m.ts);
            if ms_of(&m.ts) >= from {
                assert_eq!(msgs.get(&key), Some(&m.json), "{key} missing or differs");
            } else if *ch == locked {
                assert!(!msgs.contains_key(&key), "{key} before the window");
            }
        }
    }
    for ts in &posted {
        assert!(
            msgs.contains_key(&format!("{c0}:{ts}")),
            "outage message {ts}"
        );
    }
    // From now on every channel continues from its own cursor.
    env.clock.advance_ms(15 * 60_000);
    sim.post(&locked, "U0SIM0003", "after");
    sim.clear_log();
    let run = env.sync().await;
    ok(&run, "delta");
    assert_eq!(run.streams["messages"].stats.inserted, 1);
    assert_eq!(sim.method_count("conversations.history"), 4);
    assert_eq!(sim.rate_limit_violations(), 0);
}

both_backends!(failing_channel_variant, failing_channel_holds_no_other_back);

/// Token rotation: 12 hours on, Slack answers `token_expired`; the exchange replaces both
/// tokens and kills the old refresh token. The new pair is sealed and stored before the
/// new token is used: a sync stopped dead (the task dropped, as by kill -9) right after the
/// exchange leaves the new pair in the database, and the next sync goes on with it.
async fn rotation_is_stored_before_the_new_token_is_used(db: &TestDb) {
    let env = setup_with(db, 15, &[], true).await;
    let sim = env.sim.clone();
    ok(&env.sync_mode(RunMode::Full).await, "first sync");
    assert_eq!(sim.token_exchanges(), 0);
    env.clock.advance_ms(13 * HOUR);
    sim.post(&env.channels[0], "U0SIM0001", "after the token expired");
    sim.hold_new_token(Some(std::time::Duration::from_secs(60)));
    let e2 = env.clone();
    let task = tokio::spawn(async move { e2.sync().await });
    let mut held = false;
    for _ in 0..400 {
        if sim.held_calls() > 0 {
            held = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        held,
        "the first call with the new token reached the simulator"
    );
    task.abort();
    let _ = task.await;
    assert_eq!(sim.token_exchanges(), 1);
    let (access, refresh) = sim.rotating_tokens();
    let stored = env.stored_credentials().await;
    assert_eq!(stored.refresh_token.as_deref(), Some(refresh.as_str()));
    assert_eq!(stored.token, access);
    assert!(stored.expires_at_ms.is_some());
    sim.hold_new_token(None);
    let run = env.sync().await;
    ok(&run, "the sync after the kill");
    assert_eq!(sim.token_exchanges(), 1, "the stored pair works as it is");
    env.assert_equals_truth("after the kill").await;
    // The next expiry rotates again, within one sync.
    env.clock.advance_ms(13 * HOUR);
    ok(&env.sync().await, "a sync that rotates");
    assert_eq!(sim.token_exchanges(), 2);
    assert_eq!(
        env.stored_credentials().await.refresh_token,
        Some(sim.rotating_tokens().1)
    );
    assert_eq!(sim.rate_limit_violations(), 0);
}

both_backends!(
    rotation_stored_variant,
    rotation_is_stored_before_the_new_token_is_used
);

/// The exchange went through at Slack but its answer never arrived (the process died
/// before it could store it): the old refresh token is dead. The run ends `needs_reauth`
/// with a message naming the cause, and a later attempt is one more exchange and the
/// same clear answer — never a loop.
async fn lost_rotation_is_a_clear_needs_reauth(db: &TestDb) {
    let env = setup_with(db, 16, &[], true).await;
    let sim = &env.sim;
    ok(&env.sync().await, "first sync");
    env.clock.advance_ms(13 * HOUR);
    sim.lose_next_token_answer();
    let run = env.sync().await;
    assert_eq!(run.status, RunStatus::Failed, "{:?}", run.error);
    let err = run.error.clone().unwrap_or_default();
    assert!(
        err.contains("invalid_refresh_token") && err.contains("reconnect"),
        "{err}"
    );
    assert_eq!(conn(&env.store).await.status, ConnectionStatus::NeedsReauth);
    let after_first = sim.token_exchanges();
    assert!((1..=2).contains(&after_first), "{after_first} exchanges");
    let run = env.sync().await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(sim.token_exchanges() <= after_first + 1, "no retry loop");
    assert_eq!(conn(&env.store).await.status, ConnectionStatus::NeedsReauth);
}

both_backends!(lost_rotation_variant, lost_rotation_is_a_clear_needs_reauth);

/// Files: their metadata lands in the `files` column, their bytes are downloaded with
/// the token through the attachments pipeline (any type, not only images), byte for
/// byte; without the token Slack answers its sign-in page, which is recognised and never
/// stored; `inlet attachments retry` with the connector then fetches them.
async fn files_downloaded_with_the_token(db: &TestDb) {
    let env = setup(db, 17, &[]).await;
    let sim = &env.sim;
    sim.set_faults(Faults {
        http_5xx: 0.1,
        ..Faults::default()
    });
    let blobs = tempfile::tempdir().expect("tempdir");
    let conn_row = conn(&env.store).await;
    let c = env.connector().await;
    let run = env
        .engine_with_files(blobs.path())
        .sync(&conn_row, &c, &SyncOptions::new(RunMode::Full), &NoProgress)
        .await
        .expect("sync");
    ok(&run, "full with files");
    env.assert_equals_truth("full with files").await;
    let truth = sim.truth_files(&env.channels);
    assert!(truth.len() >= 8, "{} files", truth.len());
    assert!(truth.iter().any(|f| f.1 == "application/pdf"));
    let id = conn_row.id;
    let rows = env
        .store
        .list_attachments(Some(id), None, 0, 1000)
        .await
        .expect("list");
    assert_eq!(rows.len(), truth.len(), "one attachment row per file");
    assert_eq!(run.stats.attachments_fetched, truth.len() as u64);
    let store = FsBlobStore::new(blobs.path());
    for (url, mime, bytes) in &truth {
        let a = rows
            .iter()
            .find(|a| &a.url == url)
            .unwrap_or_else(|| panic!("no attachment for {url}"));
        assert_eq!(a.status, AttachmentStatus::Done, "{a:?}");
        assert_eq!(a.content_type.as_deref(), Some(mime.as_str()));
        assert_eq!(a.size, Some(bytes.len() as i64));
        let path = store.path_of(a.hash.as_deref().expect("hash"));
        assert_eq!(&std::fs::read(path).expect("blob"), bytes, "{url}");
    }
    // The metadata column: one JSON object per file.
    let msgs = stored_rows(&*env.store, id, "messages").await;
    let with_files = msgs
        .iter()
        .filter(|r| column_text(r, "files").is_some())
        .count();
    assert_eq!(with_files, truth.len());
    let one = msgs
        .iter()
        .find_map(|r| column_text(r, "files"))
        .expect("a files value");
    let meta: serde_json::Value = serde_json::from_str(&one).expect("JSON");
    assert!(
        meta[0]["id"].is_string() && meta[0]["mimetype"].is_string(),
        "{meta}"
    );
    assert!(meta[0]["url_private_download"].is_string(), "{meta}");

    // A new file while Slack answers file downloads with its sign-in page (a token
    // without files:read): the page is recognised, nothing stored, the run partial.
    env.clock.advance_ms(60_000);
    sim.set_faults(Faults::default());
    let before: Vec<String> = truth.iter().map(|f| f.0.clone()).collect();
    sim.post_file(&env.channels[0], "U0SIM0001", "a report", 1);
    let (url, _, bytes) = sim
        .truth_files(&env.channels)
        .into_iter()
        .find(|f| !before.contains(&f.0))
        .expect("the new file");
    sim.files_sign_in(true);
    let eng = env.engine_with_files(blobs.path());
    let run = eng
        .sync(
            &conn_row,
            &c,
            &SyncOptions::new(RunMode::Delta),
            &NoProgress,
        )
        .await
        .expect("sync");
    assert_eq!(run.status, RunStatus::Partial, "{:?}", run.error);
    assert_eq!(run.stats.attachments_failed, 1);
    let row = attachment(&*env.store, id, &url).await;
    assert_eq!(row.status, AttachmentStatus::Failed, "{row:?}");
    assert!(row.hash.is_none() && row.size.is_none(), "{row:?}");
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or("")
            .contains("sign-in page"),
        "{row:?}"
    );
    // With files readable again, `inlet attachments retry` (the connector's token)
    // fetches it.
    sim.files_sign_in(false);
    let retried = eng.retry_attachments(id, Some(&c)).await.expect("retry");
    assert_eq!(retried.attachments_fetched, 1, "{retried:?}");
    let row = attachment(&*env.store, id, &url).await;
    assert_eq!(row.status, AttachmentStatus::Done, "{row:?}");
    let path = store.path_of(row.hash.as_deref().expect("hash"));
    assert_eq!(std::fs::read(path).expect("blob"), bytes);
}

/// Every live row of a stream with its typed values.
async fn stored_rows(store: &dyn Store, conn: i64, stream: &str) -> Vec<ExportRow> {
    export_all(store, conn, slack_spec(stream)).await
}

/// A typed text column of a `slack_messages` row.
fn column_text(r: &ExportRow, name: &str) -> Option<String> {
    let i = slack_spec("messages").column_index(name)?;
    r.values
        .get(i)
        .and_then(|v| v.as_text())
        .map(str::to_string)
}

async fn attachment(store: &dyn Store, conn: i64, url: &str) -> Attachment {
    store
        .list_attachments(Some(conn), None, 0, 1000)
        .await
        .expect("list")
        .into_iter()
        .find(|a| a.url == url)
        .unwrap_or_else(|| panic!("no attachment row for {url}"))
}

both_backends!(files_variant, files_downloaded_with_the_token);

/// A revoked token (HTTP 200, `ok: false`, `token_revoked`) fails the run and sets the
/// connection `needs_reauth`; a channel that is gone fails its listing only.
async fn revoked_token_needs_reauth(db: &TestDb) {
    let env = setup(db, 13, &["C0GONE"]).await;
    let run = env.sync().await;
    assert_eq!(run.status, RunStatus::Partial, "{:?}", run.error);
    let errors = &run.streams["messages"].listing_errors;
    assert!(
        errors.iter().any(|e| e.contains("channel_not_found")),
        "{errors:?}"
    );
    env.sim.revoke(&env.sim.bot_token());
    let run = env.sync().await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error.as_deref().unwrap_or("").contains("token_revoked"),
        "{:?}",
        run.error
    );
    assert_eq!(conn(&env.store).await.status, ConnectionStatus::NeedsReauth);
}

both_backends!(revoked_variant, revoked_token_needs_reauth);

/// The benchmark: 50 channels, 100,000 messages, 2,000 threads; prints the
/// requests of the first full sync and of a no-change delta (tier budgets raised in the
/// simulator and the connector alike, so it measures calls, not waits). Run with
/// `cargo test --release -p inlet-cli --test slack_e2e bench -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: minutes in a debug build"]
async fn bench_requests_full_and_quiet_delta() {
    let db = common::TestDb::new(common::Backend::Sqlite).await;
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let sim = SlackSim::start(SlackSimConfig {
        seed: 99,
        channels: 50,
        messages_per_channel: 2_000,
        threads_per_channel: 40,
        replies_per_thread: 3,
        span_secs: 30 * 86_400,
        bot_token: format!("xoxb-bench-{}", rand_u64()),
        tier2_per_min: 1_000_000,
        tier3_per_min: 1_000_000,
        clock: clock.clone(),
        ..Default::default()
    })
    .await
    .expect("sim");
    let store = db.store().await;
    let config = SlackConfig {
        api_base: sim.api_base(),
        channels: sim.channel_ids(),
        tier2_per_minute: 1_000_000,
        tier3_per_minute: 1_000_000,
        concurrency: 10,
        ..Default::default()
    };
    let creds = SlackCredentials::token(sim.bot_token());
    let sealed = key()
        .seal(&serde_json::to_vec(&creds).expect("json"), b"test")
        .expect("seal");
    store
        .create_connection(
            &NewConnection {
                name: "slack-test".into(),
                workspace: "tests".into(),
                provider: "slack".into(),
                config: serde_json::to_value(&config).expect("json"),
                credentials: sealed,
            },
            clock.now(),
        )
        .await
        .expect("create");
    let env = Env {
        sim: sim.clone(),
        store,
        clock: clock.clone(),
        channels: sim.channel_ids(),
    };
    let started = std::time::Instant::now();
    let full = env.sync_mode(RunMode::Full).await;
    ok(&full, "bench full");
    let full_counts = sim.method_counts();
    let full_secs = started.elapsed().as_secs_f64();
    env.assert_equals_truth("bench full").await;
    clock.advance_ms(15 * 60_000);
    sim.clear_log();
    let started = std::time::Instant::now();
    ok(&env.sync().await, "bench quiet delta");
    println!(
        "slack bench (50 channels, 100,000 messages, 2,000 threads): full sync {full_counts:?} in {full_secs:.1} s; no-change delta {:?} in {:.1} s",
        sim.method_counts(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(sim.method_count("conversations.replies"), 0);
    assert_eq!(sim.method_count("conversations.history"), 50);
    assert_eq!(sim.rate_limit_violations(), 0);
    db.cleanup().await;
}
