//! `inlet apikey` and `inlet serve` as a user runs them: a key printed once and stored
//! hashed, the server answering with it, SIGTERM stopping it cleanly; and a sync started
//! through the API recording and downloading the same attachments as `inlet sync`.

mod common;

use common::*;
use inlet_core::AttachmentStatus;
use inlet_sim::images::{MediaSim, MediaSimConfig};
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apikey_then_serve_then_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = inlet(dir.path())
        .args(["--json", "apikey", "create", "--name", "app"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let key = v["key"].as_str().expect("key").to_string();
    assert!(key.starts_with("ik_") && key.len() == 67);
    // Stored hashed: the key is nowhere in the database file.
    let db = std::fs::read(dir.path().join("inlet.db")).expect("db");
    assert!(!db.windows(key.len()).any(|w| w == key.as_bytes()));
    let list = inlet(dir.path())
        .args(["apikey", "list"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(&key[..9]) && !text.contains(&key), "{text}");
    let bad = inlet(dir.path())
        .args(["serve", "--interval", "reddit"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("PROVIDER=MINUTES"));

    let mut child = inlet(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/v1/connections"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{base}/v1/connections"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let ready = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("send");
    assert_eq!(ready.status(), 200);
    // Revoked keys stop working at once.
    let id = v["id"].as_i64().expect("id").to_string();
    assert!(
        inlet(dir.path())
            .args(["apikey", "revoke", &id])
            .output()
            .expect("run")
            .status
            .success()
    );
    let r = http
        .get(format!("{base}/v1/connections"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("serve did not stop within 10 s of SIGTERM")
    });
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read");
    assert!(err.contains("Stopped."), "{err}");
    assert!(!err.contains(&key), "the key was logged");
}

/// 64 hex characters: the credentials key of both databases of a test.
const KEY_HEX: &str = "0707070707070707070707070707070707070707070707070707070707070707";

/// `inlet` with attachments on and the media hosts mapped onto the image host simulator.
fn inlet_media(dir: &Path, db_url: &str, media: &MediaSim) -> Command {
    let mut c = inlet(dir);
    c.env("INLET_SECRET_KEY", KEY_HEX)
        .env("INLET_ATTACHMENTS_ENABLED", "true")
        .env("INLET_ATTACHMENTS_REWRITE_BASE", media.base())
        .args(["--database-url", db_url]);
    c
}

async fn done_attachments(db_url: &str, connection: &str) -> (u64, u64) {
    let store = inlet_store::open(db_url).await.expect("open");
    let conn = store
        .get_connection(connection)
        .await
        .expect("get")
        .expect("connection");
    let counts = store.count_attachments(Some(conn.id)).await.expect("count");
    let all = counts.values().sum();
    (
        all,
        counts.get(&AttachmentStatus::Done).copied().unwrap_or(0),
    )
}

async fn serve_records_attachments_like_sync(db: &TestDb) {
    let backend = || {
        if db.url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    };
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
    // Separate working directories: on PostgreSQL the blobs go to ./inlet-blobs.
    let cli_dir = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");

    // The CLI path, in a database of its own.
    let cli_db = TestDb::new(backend()).await;
    let mut c = inlet_media(cli_dir.path(), &cli_db.url, &media);
    c.args([
        "connect",
        "reddit",
        "--name",
        "r1",
        "--client-id",
        &cfg.client_id,
    ])
    .args(["--client-secret", &cfg.client_secret])
    .args(["--refresh-token", &cfg.refresh_token])
    .args([
        "--api-base",
        &sim.api_base(),
        "--token-url",
        &sim.token_url(),
    ]);
    ok(&run(c).await);
    let mut c = inlet_media(cli_dir.path(), &cli_db.url, &media);
    c.args(["--json", "sync", "r1", "--full"]);
    ok(&run(c).await);
    let (cli_all, cli_done) = done_attachments(&cli_db.url, "r1").await;
    assert!(
        cli_all > 0 && cli_done == cli_all,
        "{cli_done} of {cli_all}"
    );
    cli_db.cleanup().await;

    // The server path: the same account through the API.
    let mut c = inlet_media(dir.path(), &db.url, &media);
    c.args(["--json", "apikey", "create"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&run(c).await)).expect("json");
    let key = v["key"].as_str().expect("key").to_string();
    let mut child = inlet_media(dir.path(), &db.url, &media)
        .args(["serve", "--bind", "127.0.0.1:0", "--no-scheduler"])
        .args(["--allow-override-host", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/connections"))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "name": "r1",
            "provider": "reddit",
            "config": {"api_base": sim.api_base(), "token_url": sim.token_url()},
            "credentials": {
                "client_id": cfg.client_id,
                "client_secret": cfg.client_secret,
                "refresh_token": cfg.refresh_token
            }
        }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = http
        .post(format!("{base}/v1/connections/r1/sync?mode=full"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 202);
    let run_id = r.json::<serde_json::Value>().await.expect("json")["run_id"]
        .as_i64()
        .expect("run id");
    let mut run = serde_json::Value::Null;
    for _ in 0..600 {
        run = http
            .get(format!("{base}/v1/runs/{run_id}"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send")
            .json::<serde_json::Value>()
            .await
            .expect("json")["run"]
            .clone();
        if run["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(
        run["stats"]["attachments_fetched"].as_u64(),
        Some(cli_all),
        "{run}"
    );
    let (all, done) = done_attachments(&db.url, "r1").await;
    assert_eq!(
        (all, done),
        (cli_all, cli_done),
        "serve records what sync records"
    );
    assert!(media.request_count() > 0);
}

both_backends!(
    serve_records_and_downloads_attachments_like_sync,
    serve_records_attachments_like_sync
);
