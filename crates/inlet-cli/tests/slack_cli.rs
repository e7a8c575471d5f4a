//! `inlet` as a process against the Slack simulator with token rotation: a `kill -9`
//! right after Slack rotated the token pair leaves the new pair stored, so the next
//! `inlet sync` goes on without another exchange.

mod common;

use common::*;
use inlet_core::{Clock, ManualClock, SystemClock};
use inlet_sim::slack::{SlackSim, SlackSimConfig};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_a_token_rotation_keeps_the_new_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let sim = SlackSim::start(SlackSimConfig {
        seed: 21,
        channels: 2,
        messages_per_channel: 20,
        threads_per_channel: 2,
        replies_per_thread: 2,
        span_secs: 6 * 3600,
        bot_token: format!("xoxb-cli-{}", std::process::id()),
        rotation: true,
        clock: clock.clone(),
        ..Default::default()
    })
    .await
    .expect("sim");
    let (access, refresh) = sim.rotating_tokens();
    let defaults = SlackSimConfig::default();
    let channels = sim.channel_ids();
    let mut c = inlet(dir.path());
    c.args([
        "--database-url",
        "inlet.db",
        "connect",
        "slack",
        "--name",
        "s1",
    ])
    .args(["--token", &access, "--refresh-token", &refresh])
    .args(["--client-id", &defaults.client_id])
    .args(["--client-secret", &defaults.client_secret])
    .args(["--api-base", &sim.api_base()])
    .args(["--channel", &channels[0], "--channel", &channels[1]]);
    ok(&run(c).await);
    let sync = || {
        let mut c = inlet(dir.path());
        c.args(["--database-url", "inlet.db", "--json", "sync", "s1"]);
        c
    };
    ok(&run(sync()).await);
    assert_eq!(sim.token_exchanges(), 0);

    // The token expires; the first call with the rotated one is held, and the process is
    // killed while it waits.
    sim.expire_access_token();
    sim.post(&channels[0], "U0SIM0001", "while the token rotated");
    sim.hold_new_token(Some(Duration::from_secs(60)));
    let mut child = sync()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.held_calls() == 0 {
        assert!(Instant::now() < deadline, "no call with the new token");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert_eq!(sim.token_exchanges(), 1);

    // The stored pair is the new one: the next sync needs no exchange (with the old pair
    // it would meet `token_expired`, then `invalid_refresh_token`).
    sim.hold_new_token(None);
    let out = ok(&run(sync()).await);
    assert!(out.contains("\"status\":\"success\""), "{out}");
    assert_eq!(sim.token_exchanges(), 1, "the stored pair worked as it was");
    let o = ok(&run({
        let mut c = inlet(dir.path());
        c.args(["--database-url", "inlet.db", "--json", "status"]);
        c
    })
    .await);
    assert!(o.contains("\"s1\"") && o.contains("\"active\""), "{o}");
    assert!(!o.contains("needs_reauth"), "{o}");
}
