//! Ctrl-C on `inlet sync` while the provider makes it wait 286 s: the binary stops at
//! once, and the pages it fetched before the wait are committed with their checkpoint,
//! even when Ctrl-C is pressed twice.

mod common;

use common::*;
use inlet_sim::reddit::{Faults, RedditSim, RedditSimConfig};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sigint(pid: u32) {
    let st = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill -INT");
    assert!(st.success(), "SIGINT delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_twice_during_a_long_retry_after_keeps_the_fetched_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RedditSimConfig {
        seed: 31,
        messages: 6000,
        comment_replies: 0,
        saved: 0,
        listing_cap: None,
        rate_limit: None,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let mut c = inlet(dir.path());
    c.args([
        "--database-url",
        "inlet.db",
        "connect",
        "reddit",
        "--name",
        "r1",
    ])
    .args(["--client-id", &cfg.client_id])
    .args(["--client-secret", &cfg.client_secret])
    .args(["--refresh-token", &cfg.refresh_token])
    .args([
        "--api-base",
        &sim.api_base(),
        "--token-url",
        &sim.token_url(),
    ]);
    let o = tokio::task::spawn_blocking(move || c.output().expect("connect"))
        .await
        .expect("join");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Slow pages, so the 429 lands mid-stream.
    sim.set_faults(Faults {
        latency_ms: 100,
        latency_prob: 1.0,
        path_contains: Some("/message/inbox".into()),
        ..Default::default()
    });
    let child = inlet(dir.path())
        .args(["--database-url", "inlet.db", "sync", "r1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let ok_pages = |sim: &RedditSim| {
        sim.requests()
            .iter()
            .filter(|r| r.path.contains("/message/inbox") && r.status == 200)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ok_pages(&sim) < 2 {
        assert!(Instant::now() < deadline, "the sync never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.set_faults(Faults {
        http_429_burst: 1000,
        retry_after_secs: Some(286),
        path_contains: Some("/message/inbox".into()),
        ..Default::default()
    });
    while !sim.requests().iter().any(|r| r.status == 429) {
        assert!(Instant::now() < deadline, "no 429 reached the client");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id();
    let t0 = Instant::now();
    sigint(pid);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A second Ctrl-C right after the first (ignore "no such process": it may be done).
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        took < Duration::from_secs(30),
        "stopped {took:?} after Ctrl-C, not after the 286 s wait; {stderr}"
    );
    assert!(
        stderr.contains("Stopping at the next page boundary"),
        "{stderr}"
    );

    let fetched = ok_pages(&sim);
    let store = inlet_store::open(&dir.path().join("inlet.db").display().to_string())
        .await
        .expect("open");
    let conn = store
        .get_connection("r1")
        .await
        .expect("get")
        .expect("exists");
    let rows = stored(&*store, conn.id, "inbox").await;
    assert_eq!(
        rows.len(),
        fetched * 100,
        "every page answered before Ctrl-C was committed"
    );
    let truth = sim.truth_inbox();
    let cp = store
        .sync_state(conn.id, "inbox")
        .await
        .expect("state")
        .checkpoint
        .expect("checkpoint kept");
    assert_eq!(cp.records as usize, rows.len());
    assert_eq!(cp.next.as_deref(), truth[rows.len() - 1]["name"].as_str());
    let runs = store.list_runs(Some(conn.id), 5).await.expect("runs");
    assert!(
        runs[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("interrupted")),
        "{:?}",
        runs[0].error
    );
    sim.shutdown();
}
