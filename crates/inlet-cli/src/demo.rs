//! `inlet demo`: the whole loop offline. Starts the Reddit simulator on 127.0.0.1,
//! connects to it, runs a full sync, lets new messages arrive (and saves change), runs a
//! delta sync, and prints each result and where the database is. Images linked from the
//! messages are downloaded from a local stand-in for the image hosts (`inlet_sim::images`)
//! into `<database>.blobs/`.

use crate::app;
use crate::keys;
use crate::output::Output;
use crate::progress::Bar;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use clap::Args;
use inlet_connectors::reddit::{RedditConfig, RedditCredentials};
use inlet_core::{Clock, Connection, NewConnection, Run, RunMode, Store, SystemClock};
use inlet_engine::{Engine, SyncOptions};
use inlet_http::HttpConfig;
use inlet_sim::images::{MediaSim, MediaSimConfig};
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// `inlet demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Private messages the simulated account holds.
    #[arg(long, default_value_t = 1200)]
    pub messages: u64,
    /// Saved posts and comments.
    #[arg(long, default_value_t = 40)]
    pub saved: u64,
    /// The demo's SQLite database, recreated on every run. An existing file is replaced
    /// only when an earlier `inlet demo` made it; any other file is refused, never deleted.
    #[arg(long, default_value = "inlet-demo.db")]
    pub database: PathBuf,
    /// Seed of the simulated data.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Run the demo.
pub async fn run(a: &DemoArgs, out: &Output) -> Result<ExitCode> {
    remove_previous(&a.database).await?;
    let cfg = RedditSimConfig {
        seed: a.seed,
        messages: a.messages,
        saved: a.saved,
        comment_replies: 0,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone())
        .await
        .context("cannot start the Reddit simulator on 127.0.0.1")?;
    out.note(&format!(
        "Reddit simulator listening on {} ({} messages, {} saved items).",
        sim.api_base(),
        a.messages,
        a.saved
    ));
    let media = MediaSim::start(MediaSimConfig {
        seed: a.seed,
        ..Default::default()
    })
    .await
    .context("cannot start the image host simulator on 127.0.0.1")?;
    let settings = Settings {
        database_url: a.database.display().to_string(),
        key_file: PathBuf::from(format!("{}.key", a.database.display())),
        attachments: crate::attachments::AttachmentSettings {
            rewrite_base: Some(media.base()),
            blob_dir: Some(PathBuf::from(format!("{}.blobs", a.database.display()))),
            ..Default::default()
        },
    };
    let store = app::open_store(&settings, true).await?;
    store.meta_init(DEMO_MARK, DEMO_MARK_VALUE).await?;
    let key = keys::for_store(&*store, &settings, true).await?;
    let conn = create_connection(&*store, &key, &sim, &cfg).await?;
    let engine = crate::attachments::wire(
        app::engine(store.clone(), key.clone()),
        &settings.attachments,
    )?;

    let full = sync(&engine, &conn, &key, RunMode::Full).await?;
    report(out, &*store, &conn, &full, "full").await?;

    let changes = simulate_activity(&sim);
    out.note(&format!(
        "Meanwhile on Reddit: {} new messages ({} in new conversations), {} saved, {} unsaved, 1 message read.",
        changes.new_messages, changes.new_conversations, changes.saved, changes.unsaved
    ));
    // A delta that also reconciles (what every 10th scheduled sync does): unsaves are
    // only visible to a full id listing.
    let delta = sync(&engine, &conn, &key, RunMode::Reconcile).await?;
    report(out, &*store, &conn, &delta, "reconcile").await?;

    let path = std::fs::canonicalize(&a.database).unwrap_or_else(|_| a.database.clone());
    let blobs = settings.attachments.blob_dir();
    out.emit(&json!({"database": path, "blobs": blobs}), || {
        format!(
            "Database: {}\nImages: {}\nTry: sqlite3 {} \"SELECT subject, message_count, last_message_utc FROM reddit_conversations ORDER BY last_message_utc DESC LIMIT 5\"\n     inlet --database-url {} attachments list --limit 5",
            path.display(),
            blobs.display(),
            path.display(),
            path.display()
        )
    });
    sim.shutdown();
    media.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// The `inlet_meta` entry that marks a database made by `inlet demo`.
const DEMO_MARK: &str = "demo";
const DEMO_MARK_VALUE: &str = "made by inlet demo";

/// The demo database is the demo's own: remove the files (and images) an earlier demo
/// left — only when the database there carries the demo's mark. Any other file at that
/// path (a real inlet database, another program's file) is refused and left untouched,
/// and so are its key file and images.
async fn remove_previous(db: &std::path::Path) -> Result<()> {
    let url = db.display().to_string();
    if crate::settings::target(&url)? != crate::settings::Target::Sqlite(db.to_path_buf()) {
        bail!("--database must be a SQLite file path (the demo makes its own database)");
    }
    let refuse = |why: String| {
        anyhow::anyhow!(
            "{} exists and {why}: `inlet demo` replaces only a database an earlier demo made; \
             choose another --database path (nothing was deleted)",
            db.display()
        )
    };
    match std::fs::symlink_metadata(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", db.display())),
        Ok(m) if !m.is_file() => return Err(refuse("is not a regular file".into())),
        Ok(_) => {}
    }
    let store = inlet_store::open_read_only(&url)
        .await
        .map_err(|e| refuse(format!("is not a database made by `inlet demo` ({e})")))?;
    let mark = store.meta_get(DEMO_MARK).await;
    drop(store);
    if mark.ok().flatten().as_deref() != Some(DEMO_MARK_VALUE) {
        return Err(refuse("is not a database made by `inlet demo`".into()));
    }
    for suffix in ["", "-wal", "-shm", ".key"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot remove the previous demo file {}", p.display())
                });
            }
        }
    }
    let blobs = PathBuf::from(format!("{}.blobs", db.display()));
    match std::fs::remove_dir_all(&blobs) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e)
            .with_context(|| format!("cannot remove the previous demo images {}", blobs.display())),
    }
}

async fn create_connection(
    store: &dyn Store,
    key: &inlet_core::secrets::SecretBox,
    sim: &RedditSim,
    cfg: &RedditSimConfig,
) -> Result<Connection> {
    let config = RedditConfig {
        api_base: sim.api_base(),
        token_url: sim.token_url(),
        user_agent: Some(format!("inlet-demo/0.1 (by /u/{})", cfg.username)),
        username: Some(cfg.username.clone()),
        page_size: 100,
        http: Default::default(),
    };
    let creds = RedditCredentials {
        client_id: cfg.client_id.clone(),
        client_secret: cfg.client_secret.clone(),
        refresh_token: Some(cfg.refresh_token.clone()),
        ..Default::default()
    };
    let name = "demo-reddit";
    let new = NewConnection {
        name: name.into(),
        workspace: "demo".into(),
        provider: "reddit".into(),
        config: serde_json::to_value(&config)?,
        credentials: app::seal(name, &serde_json::to_value(&creds)?, key)?,
    };
    Ok(store.create_connection(&new, SystemClock.now()).await?)
}

async fn sync(
    engine: &Engine,
    conn: &Connection,
    key: &inlet_core::secrets::SecretBox,
    mode: RunMode,
) -> Result<Run> {
    // Reload: the previous sync may have stored a fresh access token.
    let conn = &app::connection(&**engine.store(), &conn.name).await?;
    let connector = app::connector(conn, key, HttpConfig::default())?;
    let bar = Bar::new(&conn.name);
    let run = engine
        .sync(conn, &*connector, &SyncOptions::new(mode), &bar)
        .await;
    bar.finish();
    Ok(run?)
}

async fn report(
    out: &Output,
    store: &dyn Store,
    conn: &Connection,
    run: &Run,
    label: &str,
) -> Result<()> {
    let streams = &inlet_connectors::reddit::streams::STREAMS;
    let (mut messages, mut new_messages, mut new_conversations) = (0, 0, 0);
    for s in streams.iter().filter(|s| s.table == "reddit_messages") {
        messages += store.count_live(conn.id, s).await?;
        if let Some(st) = run.streams.get(s.name) {
            new_messages += st.stats.inserted;
            new_conversations += st.stats.derived_inserted;
        }
    }
    let saved = store.count_live(conn.id, &streams[2]).await?;
    let conversations = store.count_derived(conn.id, "reddit_conversations").await?;
    let saved_stats = run
        .streams
        .get("saved")
        .map(|s| s.stats)
        .unwrap_or_default();
    let value = json!({
        "sync": label,
        "status": run.status,
        "conversations_synced": conversations,
        "messages_synced": messages,
        "saved_synced": saved,
        "new_conversations": new_conversations,
        "new_messages": new_messages,
        "new_saved": saved_stats.inserted,
        "removed_saved": saved_stats.deleted,
        "changed": run.stats.updated,
        "requests": run.stats.requests,
        "attachments_fetched": run.stats.attachments_fetched,
        "attachments_failed": run.stats.attachments_failed,
        "duration_ms": run.duration_ms(),
    });
    out.emit(&value, || format!("{label} sync: {value}"));
    if let Some(e) = &run.error {
        out.note(&format!("  error: {e}"));
    }
    Ok(())
}

struct Changes {
    new_messages: usize,
    new_conversations: usize,
    saved: usize,
    unsaved: usize,
}

/// New replies in recent conversations, new conversations, saves and unsaves, a read.
fn simulate_activity(sim: &RedditSim) -> Changes {
    let inbox = sim.truth_inbox();
    let mut roots: Vec<String> = Vec::new();
    for m in &inbox {
        let root = m["first_message_name"]
            .as_str()
            .or(m["name"].as_str())
            .map(str::to_string);
        if let Some(r) = root.filter(|r| r.starts_with("t4_") && !roots.contains(r)) {
            roots.push(r);
        }
    }
    let mut new_messages = 0;
    for (i, root) in roots.iter().take(12).enumerate() {
        sim.add_message(
            Some(root),
            i % 3 == 0,
            "Is this still available? I can pick it up on Saturday.",
        );
        new_messages += 1;
    }
    for i in 0..5 {
        let root = sim.add_message(
            None,
            false,
            "Hi! Saw your post about the camera — still for sale?",
        );
        new_messages += 1;
        for k in 0..if i == 0 { 2 } else { 1 } {
            sim.add_message(Some(&root), k % 2 == 0, "Yes, it is. 250 and it's yours.");
            new_messages += 1;
        }
    }
    let roots_left = 23usize.saturating_sub(new_messages);
    for root in roots.iter().skip(12).take(roots_left) {
        sim.add_message(Some(root), false, "Following up on this 🙂");
        new_messages += 1;
    }
    if let Some(unread) = inbox
        .iter()
        .find(|m| m["new"].as_bool() == Some(true))
        .and_then(|m| m["name"].as_str())
    {
        sim.edit_message(unread, None, Some(false));
    }
    let saved = sim.truth_saved();
    let unsaved = saved
        .iter()
        .take(2)
        .filter_map(|s| s["name"].as_str())
        .filter(|n| sim.unsave(n))
        .count();
    for _ in 0..3 {
        sim.save_new();
    }
    Changes {
        new_messages,
        new_conversations: 5,
        saved: 3,
        unsaved,
    }
}
