//! `inlet apikey` and `inlet serve` as a user runs them: a key printed once and stored
//! hashed, the server answering with it, SIGTERM stopping it cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn inlet(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_inlet"));
    c.current_dir(dir)
        .env_remove("INLET_DATABASE_URL")
        .env_remove("INLET_SECRET_KEY")
        .env_remove("INLET_CONFIG")
        .env_remove("INLET_KEY_FILE")
        // The PostgreSQL key file lives in the user's config directory: the test's own.
        .env("XDG_CONFIG_HOME", dir.join(".config"))
        .env_remove("INLET_BIND")
        .stdin(Stdio::null());
    c
}

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
