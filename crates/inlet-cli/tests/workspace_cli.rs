//! `inlet workspace create|list|show|pause|resume` and `inlet connect --workspace` as a
//! user runs them, on SQLite and PostgreSQL: the lifecycle, one-line errors, and nothing
//! written on bad input.

mod common;

use common::*;
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

async fn cli(dir: &Path, db_url: &str, args: &[&str]) -> Output {
    let mut c = inlet(dir);
    c.args(["--database-url", db_url]).args(args);
    run(c).await
}

async fn json(dir: &Path, db_url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = cli(dir, db_url, &all).await;
    serde_json::from_str(ok(&o).trim()).expect("one JSON value")
}

async fn connect(
    dir: &Path,
    url: &str,
    sim: &RedditSim,
    cfg: &RedditSimConfig,
    name: &str,
    ws: &str,
) -> Output {
    let (api, token) = (sim.api_base(), sim.token_url());
    cli(
        dir,
        url,
        &[
            "connect",
            "reddit",
            "--name",
            name,
            "--workspace",
            ws,
            "--client-id",
            &cfg.client_id,
            "--client-secret",
            &cfg.client_secret,
            "--refresh-token",
            &cfg.refresh_token,
            "--api-base",
            &api,
            "--token-url",
            &token,
        ],
    )
    .await
}

async fn workspace_lifecycle(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = &db.url;
    let cfg = RedditSimConfig {
        messages: 30,
        saved: 5,
        comment_replies: 0,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");

    // Bad names are refused before anything is written (no database file either).
    let o = cli(dir.path(), url, &["workspace", "create", " acme"]).await;
    assert_one_line_error(&o, "invalid workspace name");
    let o = connect(dir.path(), url, &sim, &cfg, "r0", "a\u{202e}b").await;
    assert_one_line_error(&o, "invalid workspace name");
    if !db.url.starts_with("postgres") {
        assert!(!Path::new(url).exists(), "nothing written");
    }

    let w = json(dir.path(), url, &["workspace", "create", "acme"]).await;
    assert_eq!(
        (w["name"].as_str(), w["status"].as_str()),
        (Some("acme"), Some("active"))
    );
    let o = cli(dir.path(), url, &["workspace", "create", "acme"]).await;
    assert_one_line_error(&o, "a workspace named \"acme\" exists already");

    // connect --workspace: into acme, and into a workspace that does not exist yet
    // (created with the connection, said in a note).
    assert!(
        connect(dir.path(), url, &sim, &cfg, "r1", "acme")
            .await
            .status
            .success()
    );
    let o = connect(dir.path(), url, &sim, &cfg, "r2", "beta").await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist yet"));
    let list = json(dir.path(), url, &["workspace", "list"]).await;
    let rows: Vec<(String, String, u64)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["workspace"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["workspace"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["connections"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("acme".into(), "active".into(), 1),
            ("beta".into(), "active".into(), 1)
        ]
    );

    // show: the connections with their last run.
    ok(&cli(dir.path(), url, &["sync", "r1"]).await);
    let show = json(dir.path(), url, &["workspace", "show", "acme"]).await;
    let conns = show["connections"].as_array().expect("connections");
    assert_eq!(conns.len(), 1, "{show}");
    assert_eq!(conns[0]["connection"]["name"], "r1");
    assert_eq!(conns[0]["last_run"]["status"], "success");
    assert_eq!(conns[0]["last_run"]["stats"]["fetched"], 35);
    let text = ok(&cli(dir.path(), url, &["workspace", "show", "beta"]).await);
    assert!(
        text.contains("r2") && text.contains("no runs yet"),
        "{text}"
    );

    // pause / resume, and a connection into a paused workspace (kept, with a note).
    let p = json(dir.path(), url, &["workspace", "pause", "acme"]).await;
    assert_eq!(p["status"], "paused");
    let o = connect(dir.path(), url, &sim, &cfg, "r3", "acme").await;
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is paused"));
    let show = json(dir.path(), url, &["workspace", "show", "acme"]).await;
    assert_eq!(show["workspace"]["status"], "paused");
    assert_eq!(show["connections"].as_array().map(Vec::len), Some(2));
    let r = json(dir.path(), url, &["workspace", "resume", "acme"]).await;
    assert_eq!(r["status"], "active");

    // Unknown workspaces: one-line errors naming the known ones; nothing made.
    for cmd in ["show", "pause", "resume"] {
        let o = cli(dir.path(), url, &["workspace", cmd, "nope"]).await;
        assert_one_line_error(&o, "unknown workspace \"nope\" (known: acme, beta)");
    }
    let list = json(dir.path(), url, &["workspace", "list"]).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
}

both_backends!(workspace_cli_lifecycle, workspace_lifecycle);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_commands_on_a_missing_database_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = dir.path().join("none.db").display().to_string();
    for args in [
        vec!["workspace", "list"],
        vec!["workspace", "pause", "x"],
        vec!["workspace", "show", "x"],
    ] {
        let o = cli(dir.path(), &url, &args).await;
        assert_one_line_error(&o, "no database at");
    }
    assert!(!Path::new(&url).exists());
}
