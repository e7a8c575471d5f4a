//! The `inlet` binary as a user runs it: demo, connect, sync, status, runs, export, bad
//! input (one-line errors, non-zero exit, nothing written) and a kill -9 mid-backfill.

mod common;

use common::*;
use inlet_sim::reddit::{Faults, RedditSim, RedditSimConfig};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn inlet(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_inlet"));
    c.current_dir(dir)
        .env_remove("INLET_DATABASE_URL")
        .env_remove("INLET_SECRET_KEY")
        .env_remove("INLET_CONFIG")
        .env_remove("INLET_KEY_FILE")
        // The PostgreSQL key file lives in the user's config directory: the test's own.
        .env("XDG_CONFIG_HOME", dir.join(".config"))
        .env_remove("INLET_ATTACHMENTS_REWRITE_BASE")
        // The simulated messages link images on the real media hosts: tests never reach the
        // internet, so attachments are off here (tests/attachments_e2e.rs covers them
        // against the image host simulator).
        .env("INLET_ATTACHMENTS_ENABLED", "false")
        .stdin(Stdio::null());
    c
}

async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().expect("run inlet"))
        .await
        .expect("join")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A failure: non-zero exit and exactly one `error:` line on stderr.
fn assert_one_line_error(o: &Output, needle: &str) {
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

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_offline_and_reports_both_syncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = inlet(dir.path());
    c.args(["demo", "--json"]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let (full, delta) = (&lines[0], &lines[1]);
    assert_eq!(full["status"], "success");
    assert_eq!(
        (
            full["messages_synced"].as_u64(),
            full["conversations_synced"].as_u64()
        ),
        (Some(1200), Some(150))
    );
    assert_eq!(delta["status"], "success");
    assert_eq!(
        (
            delta["new_messages"].as_u64(),
            delta["new_conversations"].as_u64()
        ),
        (Some(23), Some(5))
    );
    assert_eq!(
        (
            delta["messages_synced"].as_u64(),
            delta["conversations_synced"].as_u64()
        ),
        (Some(1223), Some(155))
    );
    assert_eq!(
        (delta["new_saved"].as_u64(), delta["removed_saved"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(delta["sync"], "reconcile");
    assert_eq!(
        delta["requests"].as_u64(),
        Some(4),
        "one request per stream, plus one page of saved ids for the reconcile"
    );
    let db = lines[2]["database"].as_str().expect("database path");
    assert!(Path::new(db).exists());
    // Images linked from the messages were downloaded from the local image hosts.
    assert!(
        full["attachments_fetched"].as_u64().is_some_and(|n| n > 0),
        "{full}"
    );
    assert_eq!(full["attachments_failed"].as_u64(), Some(0));
}

async fn connect(
    dir: &Path,
    db_url: &str,
    sim: &RedditSim,
    cfg: &RedditSimConfig,
    name: &str,
) -> Output {
    let mut c = inlet(dir);
    c.args([
        "--database-url",
        db_url,
        "--json",
        "connect",
        "reddit",
        "--name",
        name,
        "--client-id",
        &cfg.client_id,
    ])
    .args([
        "--client-secret",
        &cfg.client_secret,
        "--refresh-token",
        &cfg.refresh_token,
    ])
    .args([
        "--api-base",
        &sim.api_base(),
        "--token-url",
        &sim.token_url(),
    ]);
    run(c).await
}

async fn cli(dir: &Path, db_url: &str, args: &[&str]) -> Output {
    let mut c = inlet(dir);
    c.args(["--database-url", db_url]).args(args);
    run(c).await
}

async fn cli_flow(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 21,
        messages: 250,
        comment_replies: 10,
        saved: 12,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let url = &db.url;

    let o = connect(dir.path(), url, &sim, &cfg, "r1").await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(v["username"], cfg.username);
    assert_one_line_error(
        &connect(dir.path(), url, &sim, &cfg, "r1").await,
        "exists already",
    );

    let o = cli(dir.path(), url, &["--json", "sync", "r1"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(runs[0]["status"], "success");
    assert_eq!(runs[0]["stats"]["inserted"].as_u64(), Some(250 + 10 + 12));

    let o = cli(dir.path(), url, &["sync"]).await;
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("r1: success delta sync"),
        "{}",
        stdout(&o)
    );

    let o = cli(dir.path(), url, &["--json", "status"]).await;
    let st: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(
        st[0]["streams"]["inbox"]["records"].as_u64(),
        Some(sim.truth_inbox().len() as u64)
    );
    assert_eq!(
        st[0]["streams"]["saved"]["state"]["sync_count"].as_i64(),
        Some(2)
    );
    assert!(
        st[0]["connection"].get("credentials").is_none(),
        "credentials never printed"
    );

    let o = cli(dir.path(), url, &["--json", "runs", "r1"]).await;
    let runs: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(runs.as_array().map(Vec::len), Some(2));

    let o = cli(
        dir.path(),
        url,
        &["export", "r1", "inbox", "--format", "jsonl"],
    )
    .await;
    assert!(o.status.success());
    let rows: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(rows.len(), sim.truth_inbox().len());
    assert!(
        rows.iter()
            .all(|r| r["raw"]["name"] == r["id"] && r["created_utc"].is_string())
    );

    let csv_path = dir.path().join("saved.csv");
    let o = cli(
        dir.path(),
        url,
        &[
            "export",
            "r1",
            "saved",
            "--format",
            "csv",
            "-o",
            csv_path.to_str().expect("utf8"),
        ],
    )
    .await;
    assert!(o.status.success());
    let mut rdr = csv::Reader::from_path(&csv_path).expect("csv");
    assert_eq!(rdr.headers().expect("header").get(1), Some("kind"));
    assert_eq!(rdr.records().count(), 12);
    assert_one_line_error(
        &cli(dir.path(), url, &["export", "r1", "nope"]).await,
        "no stream",
    );
    assert_one_line_error(
        &cli(dir.path(), url, &["sync", "missing"]).await,
        "unknown connection \"missing\"",
    );
    sim.shutdown();
}
both_backends!(cli_connect_sync_status_runs_export, cli_flow);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_sealed_with_a_private_key_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        messages: 10,
        saved: 2,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let o = connect(dir.path(), "inlet.db", &sim, &cfg, "r1").await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(dir.path(), "inlet.db", &["sync"]).await;
    assert!(o.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("inlet.db.key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for f in files(dir.path()) {
        let bytes = std::fs::read(dir.path().join(&f)).expect("read");
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(&cfg.refresh_token) && !hay.contains(&cfg.client_secret),
            "secret in plaintext in {f}"
        );
    }
    // Without the key, credentials cannot be opened: a clear error.
    std::fs::rename(
        dir.path().join("inlet.db.key"),
        dir.path().join("moved.key"),
    )
    .expect("rename");
    assert_one_line_error(
        &cli(dir.path(), "inlet.db", &["sync", "r1"]).await,
        "no credentials key",
    );
    let mut c = inlet(dir.path());
    c.env("INLET_SECRET_KEY", "zz").args(["sync", "r1"]);
    assert_one_line_error(&run(c).await, "INLET_SECRET_KEY is invalid");
    sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_in_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert_one_line_error(
        &cli(d, "inlet.db", &["status"]).await,
        "no database at inlet.db",
    );
    assert_one_line_error(
        &cli(d, "mysql://x/y", &["status"]).await,
        "unsupported database URL",
    );
    assert_one_line_error(
        &cli(d, "postgres://postgres@127.0.0.1:1/nope", &["status"]).await,
        "127.0.0.1:1",
    );
    assert_one_line_error(
        &cli(
            d,
            "nodir/inlet.db",
            &[
                "connect",
                "reddit",
                "--name",
                "x",
                "--client-id",
                "c",
                "--refresh-token",
                "t",
                "--no-verify",
            ],
        )
        .await,
        "nodir",
    );
    std::fs::write(d.join("bad.toml"), "database_url = [").expect("write");
    let mut c = inlet(d);
    c.args(["--config", "bad.toml", "status"]);
    assert_one_line_error(&run(c).await, "config file bad.toml is invalid");
    let mut c = inlet(d);
    c.args([
        "connect",
        "reddit",
        "--name",
        "x",
        "--client-id",
        "c",
        "--refresh-token",
        "t",
        "--api-base",
        "not a url",
    ]);
    assert_one_line_error(&run(c).await, "api_base");

    let cfg = RedditSimConfig {
        messages: 5,
        saved: 1,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let wrong = RedditSimConfig {
        refresh_token: "wrong".into(),
        ..cfg.clone()
    };
    let o = connect(d, "inlet.db", &sim, &wrong, "x").await;
    assert_one_line_error(&o, "could not verify the credentials");
    assert_eq!(files(d), vec!["bad.toml".to_string()], "nothing written");

    let o = connect(d, "inlet.db", &sim, &cfg, "ok").await;
    assert!(o.status.success());
    assert_one_line_error(
        &cli(d, "inlet.db", &["sync", "typo"]).await,
        "unknown connection \"typo\" (known: ok)",
    );
    let o = cli(d, "inlet.db", &["--json", "runs"]).await;
    assert_eq!(stdout(&o).trim(), "[]", "a failed command started no run");
    sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_backfill_then_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 2,
        messages: 14000,
        comment_replies: 0,
        saved: 0,
        listing_cap: None,
        rate_limit: None,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let o = connect(dir.path(), "inlet.db", &sim, &cfg, "r1").await;
    assert!(o.status.success());
    // Slow every listing page down so the kill lands mid-backfill.
    sim.set_faults(Faults {
        latency_ms: 20,
        latency_prob: 1.0,
        path_contains: Some("/message/inbox".into()),
        ..Default::default()
    });
    let mut child = inlet(dir.path())
        .args(["sync", "r1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let inbox_reqs = |sim: &RedditSim| {
        sim.requests()
            .iter()
            .filter(|r| r.path.contains("/message/inbox"))
            .count()
    };
    // Kill as soon as a checkpoint is committed, while later pages are still in flight.
    let store = inlet_store::open(&dir.path().join("inlet.db").display().to_string())
        .await
        .expect("open");
    let conn = store
        .get_connection("r1")
        .await
        .expect("get")
        .expect("exists");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let st = store.sync_state(conn.id, "inbox").await.expect("state");
        if st.checkpoint.as_ref().is_some_and(|c| c.pages > 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint was committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    // Requests the killed process had in flight are still logged by the simulator.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sim.set_faults(Faults::default());
    let before = inbox_reqs(&sim);
    let total_pages = (sim.truth_inbox().len() as u64).div_ceil(100) as usize;
    assert!(before < total_pages, "killed before the end");
    let committed = store
        .sync_state(conn.id, "inbox")
        .await
        .expect("state")
        .checkpoint
        .expect("checkpoint")
        .pages as usize;

    let o = cli(dir.path(), "inlet.db", &["--json", "sync", "r1"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let resumed = inbox_reqs(&sim) - before;
    assert_eq!(
        resumed,
        total_pages - committed,
        "the resumed run fetched exactly the pages after the checkpoint"
    );
    let runs: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(runs[0]["streams"]["inbox"]["resumed"], true);

    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_connection_never_stops_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 23,
        messages: 120,
        comment_replies: 5,
        saved: 6,
        ..Default::default()
    };
    let broken = RedditSim::start(cfg.clone()).await.expect("sim");
    let good = RedditSim::start(cfg.clone()).await.expect("sim");
    for (sim, name) in [(&broken, "a-broken"), (&good, "b-good")] {
        let o = connect(dir.path(), "inlet.db", sim, &cfg, name).await;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The first connection (synced first) loses its authorization.
    broken.expire_tokens();
    broken.revoke_refresh_token();
    let o = cli(dir.path(), "inlet.db", &["--json", "sync"]).await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed connection fails the command"
    );
    let runs: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    let by_name = |n: &str| {
        runs.as_array()
            .and_then(|a| a.iter().find(|r| r["connection"] == n))
            .cloned()
            .unwrap_or_else(|| panic!("{n} reported: {runs}"))
    };
    assert_eq!(by_name("a-broken")["status"], "failed");
    assert!(
        by_name("a-broken")["error"].as_str().is_some_and(|e| e
            .contains("re-authenticate with `inlet connect reddit --name a-broken --update ...`")
            && !e.contains("<name>")),
        "{runs}"
    );
    assert_eq!(by_name("b-good")["status"], "success");
    assert_eq!(
        by_name("b-good")["stats"]["inserted"].as_u64(),
        Some(120 + 5 + 6)
    );
    // The next sync skips the connection that needs re-authentication, and says so.
    let o = cli(dir.path(), "inlet.db", &["sync"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("a-broken: skipped (needs_reauth)"), "{err}");
    assert!(
        stdout(&o).contains("b-good: success delta sync"),
        "{}",
        stdout(&o)
    );
}
/// `inlet` with attachments on, the media hosts mapped onto the image host simulator.
async fn cli_media(
    dir: &Path,
    db_url: &str,
    media: &inlet_sim::images::MediaSim,
    args: &[&str],
) -> Output {
    let mut c = inlet(dir);
    c.env("INLET_ATTACHMENTS_ENABLED", "true")
        .env("INLET_ATTACHMENTS_REWRITE_BASE", media.base())
        .args(["--database-url", db_url])
        .args(args);
    run(c).await
}

async fn attachments_cli_flow(db: &TestDb) {
    use inlet_sim::images::{MediaSim, MediaSimConfig};
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 9,
        messages: 120,
        comment_replies: 0,
        saved: 4,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let media = MediaSim::start(MediaSimConfig::default())
        .await
        .expect("media");
    media.set_host_down("i.imgur.com", true);
    let url = &db.url;
    let o = connect(dir.path(), url, &sim, &cfg, "r1").await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The sync itself succeeds as a process; the run is partial and says why.
    let o = cli_media(dir.path(), url, &media, &["--json", "sync", "r1"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    let stats = &runs[0]["stats"];
    let failed = stats["attachments_failed"].as_u64().expect("failed count");
    assert!(
        failed >= 1,
        "the simulated messages link imgur images: {stats}"
    );
    assert_eq!(runs[0]["status"], "partial");
    assert_eq!(stats["items_skipped_with_error"].as_u64(), Some(failed));
    assert!(
        stats["attachments_fetched"]
            .as_u64()
            .is_some_and(|n| n > failed)
    );

    let o = cli_media(
        dir.path(),
        url,
        &media,
        &["--json", "attachments", "list", "r1", "--status", "failed"],
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<Value> = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(rows.len() as u64, failed);
    assert!(rows.iter().all(|r| {
        r["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://i.imgur.com/"))
            && r["status"] == "failed"
            && r["last_error"].as_str().is_some_and(|e| e.contains("503"))
    }));

    // Still down: retry reports the failures and exits non-zero.
    let o = cli_media(dir.path(), url, &media, &["attachments", "retry", "r1"]).await;
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains(&format!("0 fetched, {failed} failed")),
        "{}",
        stdout(&o)
    );

    // Back up: retry fetches them all.
    media.set_host_down("i.imgur.com", false);
    let o = cli_media(dir.path(), url, &media, &["--json", "attachments", "retry"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(
        (v["fetched"].as_u64(), v["failed_left"].as_u64()),
        (Some(failed), Some(0))
    );
    let o = cli_media(
        dir.path(),
        url,
        &media,
        &["attachments", "list", "r1", "--status", "failed"],
    )
    .await;
    assert!(
        stdout(&o).starts_with("attachments: ") && !stdout(&o).contains(" failed "),
        "{}",
        stdout(&o)
    );
    let o = cli_media(
        dir.path(),
        url,
        &media,
        &["attachments", "list", "r1", "--limit", "3"],
    )
    .await;
    assert!(
        stdout(&o).contains("done") && stdout(&o).contains(" bytes image/"),
        "{}",
        stdout(&o)
    );

    assert_one_line_error(
        &cli_media(dir.path(), url, &media, &["attachments", "retry", "nope"]).await,
        "unknown connection",
    );
    let mut c = inlet(dir.path());
    c.args(["--database-url", url, "attachments", "retry", "r1"]);
    assert_one_line_error(&run(c).await, "attachments are disabled");
}
both_backends!(attachments_cli_list_and_retry, attachments_cli_flow);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_never_replaces_another_providers_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 29,
        messages: 20,
        comment_replies: 0,
        saved: 2,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let o = connect(dir.path(), "inlet.db", &sim, &cfg, "r1").await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(
        dir.path(),
        "inlet.db",
        &[
            "connect",
            "github",
            "--name",
            "r1",
            "--token",
            "ghp_x",
            "--no-verify",
            "--update",
        ],
    )
    .await;
    assert_one_line_error(&o, "is a reddit connection, not github");
    // The Reddit credentials are untouched: the connection still syncs.
    let o = cli(dir.path(), "inlet.db", &["sync", "r1"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sim.shutdown();
}

/// `inlet sync` takes the connection's sync lease, as `inlet serve` does: while another
/// process holds it, a second sync starts nothing and says who is syncing; with `--wait`
/// it waits for that sync to end, then runs, leaving the other's run as it ended.
async fn second_sync_refused_or_waits(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 5,
        messages: 30,
        comment_replies: 2,
        saved: 4,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let url = &db.url;
    let o = connect(dir.path(), url, &sim, &cfg, "r1").await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let store = db.store().await;
    let conn = store.get_connection("r1").await.expect("get").expect("r1");
    let holder = "elsewhere:4242:feedbeef";
    let now = inlet_core::Clock::now(&inlet_core::SystemClock);
    assert!(
        store
            .try_acquire_lease(conn.id, holder, now, 60_000)
            .await
            .expect("lease")
    );
    let other = store
        .start_run(
            conn.id,
            inlet_core::RunMode::Delta,
            inlet_core::Trigger::Manual,
            now,
        )
        .await
        .expect("run");

    let before = sim.request_count();
    let o = cli(dir.path(), url, &["sync", "r1"]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "refused: {err}");
    assert!(
        err.contains(&format!("is being synced by run {other}")) && err.contains(holder),
        "{err}"
    );
    let runs = store.list_runs(Some(conn.id), 10).await.expect("runs");
    assert_eq!(runs.len(), 1, "nothing started");
    assert_eq!(runs[0].status, inlet_core::RunStatus::Running);
    assert_eq!(sim.request_count(), before, "no request sent");

    // --wait: the other sync ends a moment later, then this one runs.
    let (s2, id) = (store.clone(), conn.id);
    let ender = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let r = s2.get_run(other).await.expect("get").expect("run");
        let at = inlet_core::Clock::now(&inlet_core::SystemClock);
        s2.update_run(
            other,
            inlet_core::RunStatus::Success,
            &r.stats,
            &r.streams,
            None,
            Some(at),
        )
        .await
        .expect("end run");
        s2.release_lease(id, holder).await.expect("release");
    });
    let o = cli(dir.path(), url, &["--json", "sync", "r1", "--wait"]).await;
    ender.await.expect("ender");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(v[0]["status"], "success");
    let runs = store.list_runs(Some(conn.id), 10).await.expect("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[1].status,
        inlet_core::RunStatus::Success,
        "the other run was not closed as interrupted"
    );
    assert!(
        store.get_lease(conn.id).await.expect("lease").is_none(),
        "released at the end"
    );
    sim.shutdown();
}
both_backends!(
    a_second_sync_stops_naming_the_running_one,
    second_sync_refused_or_waits
);

/// SIGTERM (a service manager stopping `inlet sync`) stops the sync at a page boundary:
/// the run is recorded as `interrupted`, not `failed`, the checkpoint is kept, the lease
/// is released, and the next sync resumes.
async fn sigterm_interrupts(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 3,
        messages: 6000,
        comment_replies: 0,
        saved: 0,
        listing_cap: None,
        rate_limit: None,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let url = &db.url;
    let o = connect(dir.path(), url, &sim, &cfg, "r1").await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sim.set_faults(Faults {
        latency_ms: 20,
        latency_prob: 1.0,
        path_contains: Some("/message/inbox".into()),
        ..Default::default()
    });
    let start = sim.request_count();
    let mut child = inlet(dir.path())
        .args(["--database-url", url, "sync", "r1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while sim.request_count() < start + 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(!status.success(), "an interrupted sync exits non-zero");
    let store = db.store().await;
    let conn = store.get_connection("r1").await.expect("get").expect("r1");
    let runs = store.list_runs(Some(conn.id), 10).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].status,
        inlet_core::RunStatus::Interrupted,
        "{:?}",
        runs[0].error
    );
    assert!(runs[0].finished_at.is_some(), "closed by its own process");
    assert!(
        store.get_lease(conn.id).await.expect("lease").is_none(),
        "the lease was released"
    );
    sim.set_faults(Faults::default());
    let o = cli(dir.path(), url, &["sync", "r1"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}
both_backends!(sigterm_records_the_run_as_interrupted, sigterm_interrupts);

/// `inlet connect` rides out a 429 burst longer than its fault retries, waiting as
/// `Retry-After` asks (up to the connect deadline), instead of giving up after 5 attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_honours_retry_after_through_a_429_burst() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 31,
        messages: 5,
        comment_replies: 0,
        saved: 0,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    sim.set_faults(Faults {
        http_429_burst: 6,
        retry_after_secs: Some(1),
        ..Default::default()
    });
    let o = connect(dir.path(), "inlet.db", &sim, &cfg, "r1").await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let limited = sim.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, 6, "the whole burst was waited out");
    sim.shutdown();
}

/// A token endpoint that keeps failing: the error says how many attempts were made
/// once, not "gave up after 0 attempts: token refresh failed: gave up after 5 attempts".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_error_says_the_attempt_count_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 32,
        messages: 5,
        comment_replies: 0,
        saved: 0,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    sim.set_faults(Faults {
        http_5xx: 1.0,
        path_contains: Some("access_token".into()),
        ..Default::default()
    });
    let o = connect(dir.path(), "inlet.db", &sim, &cfg, "r1").await;
    assert_one_line_error(&o, "could not verify the credentials with Reddit");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("attempts").count(), 1, "{err}");
    assert!(
        err.contains("token refresh failed: gave up after 5 attempts: HTTP 50"),
        "{err}"
    );
    assert!(err.contains("60 s"), "the connect deadline is named: {err}");
    sim.shutdown();
}
