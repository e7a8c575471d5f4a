//! Issue 18 items 1, 2, 7, 9 and 13 as a user meets them through the `inlet` binary: the
//! demo never deletes what it did not make, one credentials key per database, one
//! connection-name rule with escaped printing, private files, and the small CLI items.

mod common;

use common::*;
use inlet_core::secrets::{SecretBox, connection_aad};
use inlet_core::{Clock, NewConnection, Store, SystemClock};
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

const KEY_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_B: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn connect_args<'a>(
    sim: &RedditSim,
    cfg: &'a RedditSimConfig,
    db: &'a str,
    name: &'a str,
) -> Vec<String> {
    [
        "--database-url",
        db,
        "connect",
        "reddit",
        "--name",
        name,
        "--client-id",
        &cfg.client_id,
        "--client-secret",
        &cfg.client_secret,
        "--refresh-token",
        &cfg.refresh_token,
        "--api-base",
        &sim.api_base(),
        "--token-url",
        &sim.token_url(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn small() -> RedditSimConfig {
    RedditSimConfig {
        messages: 30,
        comment_replies: 0,
        saved: 3,
        ..Default::default()
    }
}

/// A connection stored the way inlet stored them before the name rule and the key check
/// value: any name, credentials sealed with `key`, nothing else written.
async fn store_old_connection(
    store: &dyn Store,
    sim: &RedditSim,
    cfg: &RedditSimConfig,
    name: &str,
    api_base: String,
    key: &SecretBox,
) {
    let (mut config, creds) = reddit_settings(sim, cfg);
    config.api_base = api_base;
    let sealed = key
        .seal(
            &serde_json::to_vec(&creds).expect("json"),
            &connection_aad(name),
        )
        .expect("seal");
    store
        .create_connection(
            &NewConnection {
                name: name.into(),
                workspace: "old".into(),
                provider: "reddit".into(),
                config: serde_json::to_value(&config).expect("json"),
                credentials: sealed,
            },
            SystemClock.now(),
        )
        .await
        .expect("create connection");
}

fn snapshot(paths: &[&Path]) -> Vec<Option<Vec<u8>>> {
    paths.iter().map(|p| std::fs::read(p).ok()).collect()
}

// ---- item 1: the demo deletes only its own database ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_never_deletes_a_database_it_did_not_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // A real inlet database (made by `apikey create`), its key file and its images.
    let mut c = inlet(d);
    c.args([
        "--database-url",
        "real.db",
        "apikey",
        "create",
        "--name",
        "t",
    ]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", err(&o));
    std::fs::write(d.join("real.db.key"), KEY_A).expect("key");
    std::fs::create_dir(d.join("real.db.blobs")).expect("blobs");
    std::fs::write(d.join("real.db.blobs/photo"), b"precious").expect("blob");
    std::fs::write(d.join("notes.txt"), b"not a database").expect("notes");
    let files = [
        d.join("real.db"),
        d.join("real.db.key"),
        d.join("real.db.blobs/photo"),
        d.join("notes.txt"),
    ];
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let before = snapshot(&refs);
    for target in ["real.db", "notes.txt"] {
        let mut c = inlet(d);
        c.args([
            "demo",
            "--database",
            target,
            "--messages",
            "20",
            "--saved",
            "3",
        ]);
        assert_one_line_error(&run(c).await, "is not a database made by `inlet demo`");
    }
    assert_eq!(
        snapshot(&refs),
        before,
        "the demo touched files it did not make"
    );

    // Its own database it replaces, run after run.
    for _ in 0..2 {
        let mut c = inlet(d);
        c.args([
            "--json",
            "demo",
            "--database",
            "mine.db",
            "--messages",
            "20",
            "--saved",
            "3",
        ]);
        let o = run(c).await;
        assert!(o.status.success(), "{}", err(&o));
    }
    assert_eq!(snapshot(&refs), before);
}

// ---- item 2: one credentials key per database ----

async fn key_must_match(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cfg = small();
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let url = db.url.as_str();
    let with_key = |key: &str, args: Vec<String>| {
        let mut c = inlet(d);
        c.env("INLET_SECRET_KEY", key).args(args);
        c
    };
    let strs = |a: &[&str]| {
        std::iter::once("--database-url")
            .chain(std::iter::once(url))
            .chain(a.iter().copied())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    let o = run(with_key(KEY_A, connect_args(&sim, &cfg, url, "r1"))).await;
    assert!(o.status.success(), "{}", err(&o));
    // A second key is refused for a new connection, for --update and for a sync.
    let o = run(with_key(KEY_B, connect_args(&sim, &cfg, url, "r2"))).await;
    assert_one_line_error(&o, "is not the key the credentials");
    let mut upd = connect_args(&sim, &cfg, url, "r1");
    upd.push("--update".into());
    assert_one_line_error(&run(with_key(KEY_B, upd)).await, "is not the key");
    assert_one_line_error(
        &run(with_key(KEY_B, strs(&["sync", "r1"]))).await,
        "is not the key",
    );
    let store = db.store().await;
    assert_eq!(store.list_connections().await.expect("list").len(), 1);
    let o = run(with_key(KEY_A, strs(&["sync", "r1"]))).await;
    assert!(o.status.success(), "{}", err(&o));

    // The derived conversations table exports like a stream (item 13).
    let o = run(with_key(
        KEY_A,
        strs(&["export", "r1", "reddit_conversations"]),
    ))
    .await;
    assert!(o.status.success(), "{}", err(&o));
    let rows: Vec<Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    let conn = store.get_connection("r1").await.expect("get").expect("r1");
    let n = store
        .count_derived(conn.id, "reddit_conversations")
        .await
        .expect("count");
    assert!(n > 0);
    assert_eq!(rows.len() as u64, n);
    assert!(rows.iter().all(|r| r["id"].is_string()
        && r["message_count"].as_i64().is_some_and(|c| c > 0)
        && r["updated_at"].is_string()));

    // A database made before the check value (credentials, no check) adopts it on the
    // first open with the right key, and refuses another key before that.
    let old_db = TestDb::new(if db.url.starts_with("postgres") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    })
    .await;
    let old_store = old_db.store().await;
    let key_a = SecretBox::from_hex(KEY_A).expect("key");
    store_old_connection(&*old_store, &sim, &cfg, "old", sim.api_base(), &key_a).await;
    assert_eq!(
        old_store
            .meta_get("credentials_key_check")
            .await
            .expect("meta"),
        None
    );
    let old_url = old_db.url.clone();
    let o = run(with_key(KEY_B, connect_args(&sim, &cfg, &old_url, "new"))).await;
    assert_one_line_error(&o, "is not the key");
    let mut c = inlet(d);
    c.env("INLET_SECRET_KEY", KEY_A)
        .args(["--database-url", &old_url, "sync", "old"]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", err(&o));
    let check = old_store
        .meta_get("credentials_key_check")
        .await
        .expect("meta")
        .expect("adopted");
    assert!(key_a.matches_key_check(&check));
    old_db.cleanup().await;
    sim.shutdown();
}
both_backends!(a_second_credentials_key_is_refused, key_must_match);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_key_file_is_per_user_not_per_directory() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (w1, w2) = (dir.path().join("w1"), dir.path().join("w2"));
    std::fs::create_dir_all(&w1).expect("w1");
    std::fs::create_dir_all(&w2).expect("w2");
    let config = dir.path().join("cfg");
    let cfg = small();
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let mut c = inlet(&w1);
    c.env("XDG_CONFIG_HOME", &config)
        .args(connect_args(&sim, &cfg, &db.url, "r1"));
    let o = run(c).await;
    assert!(o.status.success(), "{}", err(&o));
    let key_file = config.join("inlet").join("inlet.key");
    assert!(key_file.is_file(), "no key at {}", key_file.display());
    assert!(
        !w1.join("inlet.key").exists(),
        "key written to the working directory"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Another working directory finds the same key.
    let mut c = inlet(&w2);
    c.env("XDG_CONFIG_HOME", &config)
        .args(["--database-url", &db.url, "sync", "r1"]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", err(&o));
    // Where there is no key, none is made for a database that holds sealed credentials.
    let elsewhere = dir.path().join("other-cfg");
    let mut c = inlet(&w2);
    c.env("XDG_CONFIG_HOME", &elsewhere)
        .args(connect_args(&sim, &cfg, &db.url, "r2"));
    assert_one_line_error(&run(c).await, "refusing to create a new key");
    assert!(!elsewhere.join("inlet").join("inlet.key").exists());
    sim.shutdown();
    db.cleanup().await;
}

// ---- item 7: one name rule; names from older databases printed escaped ----

async fn names_rule_and_escaping(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cfg = small();
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    for bad in [
        "a\nforged",
        "tab\tname",
        "evil\u{202e}gpj",
        "42",
        "x\u{200b}y",
    ] {
        let mut c = inlet(d);
        c.env("INLET_SECRET_KEY", KEY_A)
            .args(connect_args(&sim, &cfg, &db.url, bad));
        assert_one_line_error(&run(c).await, "invalid connection name");
    }
    if !db.url.starts_with("postgres") {
        assert!(
            !Path::new(&db.url).exists(),
            "a refused name wrote a database"
        );
    }
    // A name an older inlet accepted, syncing against a path that answers 404 (the
    // stream fails at once and is logged with the connection's name).
    let store = db.store().await;
    let evil = "old\nforged line\u{202e}txt";
    let key_a = SecretBox::from_hex(KEY_A).expect("key");
    let bad_base = format!("{}/missing", sim.api_base());
    store_old_connection(&*store, &sim, &cfg, evil, bad_base, &key_a).await;
    let mut c = inlet(d);
    c.args(["--database-url", &db.url, "status"]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert!(!text.contains(evil) && !text.contains('\u{202e}'), "{text}");
    assert!(text.contains("old\\nforged line\\u{202e}txt"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("forged")), "{text}");

    let mut c = inlet(d);
    c.env("INLET_SECRET_KEY", KEY_A)
        .args(["--database-url", &db.url, "sync"]);
    let o = run(c).await;
    let (so, se) = (out(&o), err(&o));
    assert!(se.contains("Stream failed."), "no warning logged: {se}");
    for text in [&so, &se] {
        assert!(!text.contains('\u{202e}') && !text.contains(evil), "{text}");
        assert!(!text.contains('\u{1b}'), "colour codes in a pipe: {text:?}");
        assert!(!text.lines().any(|l| l.starts_with("forged")), "{text}");
    }
    assert!(se.contains("old\\nforged line\\u{202e}txt"), "{se}");
    sim.shutdown();
}
both_backends!(one_name_rule_and_escaped_names, names_rule_and_escaping);

// ---- item 9: private files ----

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_key_are_private_and_a_readable_key_warns() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cfg = small();
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let o = run({
        let mut c = inlet(d);
        c.args(connect_args(&sim, &cfg, "inlet.db", "r1"));
        c
    })
    .await;
    assert!(o.status.success(), "{}", err(&o));
    let mut c = inlet(d);
    c.args(["--database-url", "inlet.db", "sync"]);
    assert!(run(c).await.status.success());
    let mode = |f: &str| {
        std::fs::metadata(d.join(f))
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    };
    assert_eq!(mode("inlet.db"), Some(0o600));
    assert_eq!(mode("inlet.db.key"), Some(0o600));
    for side in ["inlet.db-wal", "inlet.db-shm"] {
        assert!(
            matches!(mode(side), None | Some(0o600)),
            "{side}: {:?}",
            mode(side)
        );
    }
    std::fs::set_permissions(
        d.join("inlet.db.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let mut c = inlet(d);
    c.args(["--database-url", "inlet.db", "sync"]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", err(&o));
    let warnings = err(&o)
        .lines()
        .filter(|l| l.contains("can be read or changed by other users"))
        .count();
    assert_eq!(warnings, 1, "{}", err(&o));
    sim.shutdown();
}

// ---- item 13: the smaller CLI items ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_work_on_a_read_only_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cfg = small();
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let mut c = inlet(d);
    c.args(connect_args(&sim, &cfg, "inlet.db", "r1"));
    assert!(run(c).await.status.success());
    let mut c = inlet(d);
    c.args(["--database-url", "inlet.db", "sync"]);
    assert!(run(c).await.status.success());
    sim.shutdown();

    let read_only = |p: &Path| {
        let mut perm = std::fs::metadata(p).expect("meta").permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(p, perm).expect("chmod");
    };
    let db = d.join("inlet.db");
    read_only(&db);
    let before = std::fs::read(&db).expect("db");
    for args in [
        vec!["status"],
        vec!["runs"],
        vec!["export", "r1", "inbox"],
        vec!["export", "r1", "reddit_conversations"],
    ] {
        let mut c = inlet(d);
        c.args(["--database-url", "inlet.db"]).args(&args);
        let o = run(c).await;
        assert!(o.status.success(), "{args:?}: {}", err(&o));
        assert!(!out(&o).is_empty(), "{args:?}");
    }
    assert_eq!(
        std::fs::read(&db).expect("db"),
        before,
        "a read changed the file"
    );

    // An older schema on a read-only file: refused naming the file and the migration,
    // nothing applied.
    let old = d.join("old.db");
    std::fs::copy(&db, &old).expect("copy");
    let mut perm = std::fs::metadata(&old).expect("meta").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&old, perm).expect("chmod");
    {
        let conn = rusqlite::Connection::open(&old).expect("open");
        conn.execute_batch(
            "DELETE FROM schema_migrations WHERE version >= 8; DROP TABLE inlet_meta;",
        )
        .expect("downgrade");
    }
    read_only(&old);
    let before = std::fs::read(&old).expect("old");
    let mut c = inlet(d);
    c.args(["--database-url", "old.db", "status"]);
    let o = run(c).await;
    assert_one_line_error(&o, "old.db");
    assert!(err(&o).contains("0008_meta"), "{}", err(&o));
    assert_eq!(std::fs::read(&old).expect("old"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_cli_items() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // `KEY=$(inlet apikey create)` captures the key alone.
    let mut c = inlet(d);
    c.args([
        "--database-url",
        "inlet.db",
        "apikey",
        "create",
        "--name",
        "ci",
    ]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", err(&o));
    let stdout = out(&o);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let key = stdout.trim();
    assert!(!key.is_empty() && !key.contains(' '), "{stdout}");
    assert!(err(&o).contains("created"), "{}", err(&o));

    // `runs --limit 0` is refused instead of saying "no runs yet".
    let mut c = inlet(d);
    c.args(["--database-url", "inlet.db", "runs", "--limit", "0"]);
    let o = run(c).await;
    assert!(!o.status.success());
    assert!(!out(&o).contains("no runs yet"));
    assert!(err(&o).contains("--limit"), "{}", err(&o));

    // `--max-size 0` is refused, and sizes under a megabyte are not "0 MB".
    let file = d.join("export.json");
    std::fs::write(&file, vec![b' '; 300 * 1024]).expect("file");
    let mut c = inlet(d);
    c.args(["--database-url", "inlet.db", "import", "tiktok"])
        .arg(&file)
        .args(["--max-size", "0"]);
    let o = run(c).await;
    assert!(!o.status.success());
    assert!(!err(&o).contains("0 MB, more than"), "{}", err(&o));
    assert!(err(&o).contains("--max-size"), "{}", err(&o));
    std::fs::write(&file, vec![b' '; (1 << 20) + 300 * 1024]).expect("file");
    let mut c = inlet(d);
    c.args(["--database-url", "inlet.db", "import", "tiktok"])
        .arg(&file)
        .args(["--max-size", "1"]);
    assert_one_line_error(&run(c).await, "is 1.3 MB, more than the limit of 1 MB");

    // `--listing` takes only the listings eBay has.
    let mut c = inlet(d);
    c.args([
        "--database-url",
        "inlet.db",
        "connect",
        "ebay",
        "--name",
        "shop",
        "--client-id",
        "a",
        "--client-secret",
        "b",
        "--refresh-token",
        "c",
        "--listing",
        "BOGUS",
        "--no-verify",
    ]);
    let o = run(c).await;
    assert!(!o.status.success());
    assert!(err(&o).contains("BOGUS"), "{}", err(&o));
    let conns = inlet_store::open(&d.join("inlet.db").display().to_string())
        .await
        .expect("open")
        .list_connections()
        .await
        .expect("list");
    assert!(conns.is_empty(), "{conns:?}");

    // PostgreSQL errors say what the server said, not "db error".
    let missing = format!("inlet_missing_{:x}", rand_u64());
    let base = pg_admin_url();
    let (base, _) = base.rsplit_once('/').expect("admin URL ends with /db");
    let mut c = inlet(d);
    c.args(["--database-url", &format!("{base}/{missing}"), "status"]);
    let o = run(c).await;
    assert_one_line_error(&o, &format!("database \"{missing}\" does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_prints_each_result_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = inlet(dir.path());
    c.args([
        "bench",
        "--backend",
        "sqlite",
        "--single",
        "--messages",
        "200",
    ]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", err(&o));
    let all = format!("{}{}", out(&o), err(&o));
    let results = all.lines().filter(|l| l.contains("records/s")).count();
    assert_eq!(results, 1, "stdout: {}\nstderr: {}", out(&o), err(&o));
}

#[test]
fn readme_intro_names_the_providers_that_exist() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let intro = readme.split("\n## ").next().expect("intro").to_lowercase();
    for p in inlet_connectors::provider::REGISTRY.iter().map(|p| p.name) {
        assert!(intro.contains(p), "the README intro does not name {p}");
    }
    // A provider in the list is a ghost until it is registered.
    let ghosts = ["slack", "gong", "fathom", "gmail"]
        .into_iter()
        .filter(|g| inlet_connectors::provider::find(g).is_none());
    for ghost in ghosts {
        assert!(
            !readme.to_lowercase().contains(ghost),
            "the README names {ghost}, which inlet does not support"
        );
    }
}
