//! `inlet connect ebay`, `inlet sync`, `inlet refresh` and `inlet export` against the eBay
//! simulator, as a user runs them; bad input gives one-line errors and writes nothing.

mod common;

use common::*;
use inlet_sim::ebay::{EbaySim, EbaySimConfig};
use serde_json::Value;

fn connect_args(sim: &EbaySim, cfg: &EbaySimConfig, refresh: &str) -> Vec<String> {
    [
        "connect",
        "ebay",
        "--name",
        "shop",
        "--client-id",
        &cfg.client_id,
        "--client-secret",
        &cfg.client_secret,
        "--refresh-token",
        refresh,
        "--api-base",
        &sim.api_base(),
        "--token-url",
        &sim.token_url(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_sync_refresh_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EbaySimConfig {
        conversations: 80,
        system_conversations: 5,
        ..Default::default()
    };
    let sim = EbaySim::start(cfg.clone()).await.expect("sim");

    // A refresh token eBay rejects: one line, nothing written.
    let mut c = inlet(dir.path());
    c.args(connect_args(&sim, &cfg, "revoked-token"));
    assert_one_line_error(&run(c).await, "could not verify the credentials with eBay");
    assert!(!dir.path().join("inlet.db").exists(), "nothing written");

    let mut c = inlet(dir.path());
    c.args(connect_args(&sim, &cfg, &cfg.refresh_token));
    assert!(ok(&run(c).await).contains("Connected \"shop\""));

    let mut c = inlet(dir.path());
    c.args(["sync", "shop", "--json"]);
    let runs: Value = serde_json::from_str(ok(&run(c).await).trim()).expect("json");
    assert_eq!(runs[0]["status"], "success", "{runs}");

    let conv = sim.conversation_ids("FROM_MEMBERS").remove(7);
    let msg = sim.seller_reply(&conv, "Sent today.");
    sim.clear_log();
    for form in [
        vec!["refresh", "shop", "conversation", &conv],
        vec!["refresh", "shop", "ebay", "conversation", &conv],
    ] {
        let mut c = inlet(dir.path());
        c.args(&form).arg("--json");
        let out: Value = serde_json::from_str(ok(&run(c).await).trim()).expect("json");
        assert_eq!(out["outcome"]["requests"], 2, "{out}");
    }
    assert_eq!(
        sim.requests().len(),
        4,
        "per refresh: the thread and the conversation's row in the narrowed listing"
    );
    let mut c = inlet(dir.path());
    c.args(["export", "shop", "messages"]);
    assert!(
        ok(&run(c).await).contains(&msg),
        "the refreshed message is stored"
    );
    let mut c = inlet(dir.path());
    c.args(["export", "shop", "conversations"]);
    assert!(
        ok(&run(c).await).contains(&msg),
        "the conversation row names the refreshed message as its latest"
    );

    // Bad input: wrong provider word, unknown entity.
    let mut c = inlet(dir.path());
    c.args(["refresh", "shop", "reddit", "conversation", &conv]);
    assert_one_line_error(&run(c).await, "uses provider ebay, not reddit");
    let mut c = inlet(dir.path());
    c.args(["refresh", "shop", "order", "1"]);
    assert_one_line_error(&run(c).await, "could not refresh order 1");
}
