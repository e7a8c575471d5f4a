//! `inlet import tiktok FILE` and `inlet purge --older-than DURATION`.

use crate::app;
use crate::keys;
use crate::output::Output;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use inlet_connectors::tiktok::{self, ImportError};
use inlet_core::{Clock, NewConnection, SystemClock, Timestamp, parse_duration};
use inlet_engine::ReconcilePolicy;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// `inlet import <source>`.
#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// Import favourite videos from a TikTok "Download your data" JSON export
    /// (user_data_tiktok.json / user_data.json): the file is the whole truth.
    Tiktok(TiktokArgs),
}

/// `inlet import tiktok`.
#[derive(Debug, Args)]
pub struct TiktokArgs {
    /// The export file (JSON).
    pub file: PathBuf,
    /// Connection to import into (created on first import).
    #[arg(long, default_value = "tiktok")]
    pub connection: String,
    /// Workspace of a connection created by this import.
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// Refuse files larger than this many megabytes (at least 1).
    #[arg(long = "max-size", value_name = "MB", default_value_t = tiktok::DEFAULT_MAX_BYTES >> 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_size_mb: u64,
    /// Apply the file even if it removes more than the safety valve's share of the
    /// stored favourites (default 50%).
    #[arg(long)]
    pub force: bool,
}

/// `inlet import ...`: the file is read and checked before the database is touched; the
/// change is one transaction.
pub async fn import(settings: &Settings, source: ImportSource, out: &Output) -> Result<ExitCode> {
    let ImportSource::Tiktok(a) = source;
    let max_bytes = a.max_size_mb.saturating_mul(1 << 20);
    let meta =
        std::fs::metadata(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", a.file.display());
    }
    if meta.len() > max_bytes {
        bail!(
            "{} is {:.1} MB, more than the limit of {} MB (raise it with --max-size)",
            a.file.display(),
            meta.len() as f64 / (1u64 << 20) as f64,
            a.max_size_mb
        );
    }
    // Read the whole file once before the database is touched: a bad file creates and
    // changes nothing.
    let path = a.file.clone();
    let open = move || std::fs::File::open(&path);
    let scan = tiktok::check(open.clone(), max_bytes)
        .await
        .with_context(|| format!("cannot import {}", a.file.display()))?;

    let store = app::open_store(settings, true).await?;
    let now = SystemClock.now();
    let conn = match store.get_connection(&a.connection).await? {
        Some(c) if c.provider == "tiktok" => c,
        Some(c) => bail!(
            "connection {:?} is a {} connection, not tiktok (choose another with --connection)",
            c.name,
            c.provider
        ),
        None => {
            app::check_name(&a.connection)?;
            let key = keys::for_store(&*store, settings, true).await?;
            let new = NewConnection {
                name: a.connection.clone(),
                workspace: a.workspace.clone(),
                provider: "tiktok".into(),
                config: json!({}),
                credentials: app::seal(&a.connection, &json!({}), &key)?,
            };
            store.create_connection(&new, now).await?
        }
    };
    let policy = ReconcilePolicy::from_config(&conn.config)
        .map_err(|e| anyhow::anyhow!("connection {:?}: {e}", conn.name))?;
    let max_share = (!a.force).then_some(policy.max_share);
    let outcome = match tiktok::apply(&*store, &conn, &scan, open, max_bytes, max_share, now).await
    {
        Ok(o) => o,
        Err(e @ ImportError::Refused { .. }) => bail!("{e}"),
        Err(e) => return Err(e).context(format!("cannot import {}", a.file.display())),
    };
    out.emit(&outcome, || {
        format!(
            "{}: imported {} — {} processed, {} new, {} removed, {} skipped (no video), {} unresolved (short links)",
            conn.name,
            a.file.display(),
            outcome.processed,
            outcome.new,
            outcome.removed,
            outcome.skipped,
            outcome.unresolved
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// `inlet purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Delete records tombstoned longer ago than this (`30d`, `12h`, `2w`, seconds).
    #[arg(long, value_name = "DURATION")]
    pub older_than: String,
    /// Only this connection (name or id); all when omitted.
    #[arg(long)]
    pub connection: Option<String>,
}

/// `inlet purge`: tombstones older than the given age are deleted for good.
pub async fn purge(settings: &Settings, a: &PurgeArgs, out: &Output) -> Result<ExitCode> {
    let age = parse_duration(&a.older_than).map_err(|e| anyhow::anyhow!("--older-than: {e}"))?;
    let store = app::open_store(settings, false).await?;
    let conns = match &a.connection {
        Some(k) => vec![app::connection(&*store, k).await?],
        None => store.list_connections().await?,
    };
    let before = Timestamp(SystemClock.now().0.saturating_sub(age));
    let mut per = serde_json::Map::new();
    let mut total = 0u64;
    let mut text = Vec::new();
    for conn in &conns {
        let mut n = 0;
        for spec in crate::cmd::specs_of(&conn.provider) {
            n += store.purge_tombstones(conn.id, spec, before).await?;
        }
        total += n;
        per.insert(conn.name.clone(), json!(n));
        text.push(format!("{}: {n} tombstoned records purged", conn.name));
    }
    out.emit(
        &json!({"purged": total, "before": before, "connections": per}),
        || {
            if text.is_empty() {
                "no connections".into()
            } else {
                format!("{}\n(tombstoned before {before})", text.join("\n"))
            }
        },
    );
    Ok(ExitCode::SUCCESS)
}
