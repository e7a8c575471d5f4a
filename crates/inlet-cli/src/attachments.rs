//! Attachments: the `[attachments]` settings, wiring the downloader and blob store into
//! the engine, and `inlet attachments list | retry`.

use crate::app;
use crate::output::Output;
use crate::settings::{Settings, Target, target};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use inlet_core::{Attachment, AttachmentStatus, Connection, RunStats, Store};
use inlet_engine::{AttachmentOptions, DEFAULT_ATTACHMENT_CONCURRENCY, Engine};
use inlet_http::{DEFAULT_MAX_BYTES, DownloadConfig, Downloader};
use inlet_store::FsBlobStore;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `[attachments]` in `inlet.toml`; every key optional.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentSettings {
    /// Record and download images linked from synced records (default true).
    /// `INLET_ATTACHMENTS_ENABLED=false` overrides it.
    pub enabled: bool,
    /// Hosts that may be fetched, exact names (default: i.redd.it, preview.redd.it,
    /// matrix.redditspace.com, i.imgur.com, imgur.com).
    pub allowed_hosts: Vec<String>,
    /// Largest attachment in bytes (default 20 MiB); larger ones are skipped.
    pub max_bytes: u64,
    /// Downloads in flight per connection (default 4).
    pub concurrency: usize,
    /// Where the blobs go (default: `<database file>.blobs/` for SQLite, `./inlet-blobs`
    /// for PostgreSQL).
    pub blob_dir: Option<PathBuf>,
    /// Test/demo knob: fetch `<rewrite_base><host>/<path>` instead of the real URL (after
    /// the allowed-host check on the real one). `INLET_ATTACHMENTS_REWRITE_BASE` overrides it.
    pub rewrite_base: Option<String>,
}

impl Default for AttachmentSettings {
    fn default() -> Self {
        AttachmentSettings {
            enabled: true,
            // Every provider's image hosts, as its definition names them.
            allowed_hosts: inlet_connectors::provider::image_hosts()
                .into_iter()
                .map(str::to_string)
                .collect(),
            max_bytes: DEFAULT_MAX_BYTES,
            concurrency: DEFAULT_ATTACHMENT_CONCURRENCY,
            blob_dir: None,
            rewrite_base: None,
        }
    }
}

impl AttachmentSettings {
    /// Apply the environment, fill in the blob directory for `database_url`, validate.
    pub fn resolve(mut self, database_url: &str) -> Result<AttachmentSettings> {
        if let Ok(v) = std::env::var("INLET_ATTACHMENTS_ENABLED") {
            self.enabled = match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => bail!("INLET_ATTACHMENTS_ENABLED must be true or false, not {v:?}"),
            };
        }
        if let Ok(v) = std::env::var("INLET_ATTACHMENTS_REWRITE_BASE") {
            self.rewrite_base = (!v.is_empty()).then_some(v);
        }
        if !(1..=64).contains(&self.concurrency) {
            bail!(
                "[attachments] concurrency must be between 1 and 64, not {}",
                self.concurrency
            );
        }
        if self.max_bytes == 0 {
            bail!("[attachments] max_bytes must be at least 1");
        }
        if let Some(h) = self
            .allowed_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains(['/', ':', ' ']))
        {
            bail!(
                "[attachments] allowed_hosts: {h:?} is not a host name (write i.redd.it, not a URL)"
            );
        }
        if self.blob_dir.is_none() {
            self.blob_dir = Some(match target(database_url)? {
                Target::Sqlite(p) => PathBuf::from(format!("{}.blobs", p.display())),
                Target::Postgres => PathBuf::from("inlet-blobs"),
            });
        }
        Ok(self)
    }

    /// The blob directory (resolved).
    pub fn blob_dir(&self) -> PathBuf {
        self.blob_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("inlet-blobs"))
    }
}

/// The engine's attachment options for these settings (`None` when disabled): the one
/// place that builds the downloader and blob store, for `inlet sync` and `inlet serve`
/// alike.
pub fn options(s: &AttachmentSettings) -> Result<Option<AttachmentOptions>> {
    if !s.enabled {
        return Ok(None);
    }
    let downloader = Downloader::new(DownloadConfig {
        allowed_hosts: s.allowed_hosts.clone(),
        max_bytes: s.max_bytes,
        rewrite_base: s.rewrite_base.clone(),
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!("[attachments] {e}"))?;
    Ok(Some(AttachmentOptions {
        fetcher: Arc::new(downloader),
        blobs: Arc::new(FsBlobStore::new(s.blob_dir())),
        concurrency: s.concurrency,
    }))
}

/// `engine`, recording and downloading attachments when they are enabled.
pub fn wire(engine: Engine, s: &AttachmentSettings) -> Result<Engine> {
    Ok(match options(s)? {
        Some(o) => engine.with_attachments(o),
        None => engine,
    })
}

/// `inlet attachments ...`.
#[derive(Debug, Subcommand)]
pub enum AttachmentsCommand {
    /// List attachments (images linked from synced records) with their status.
    List(ListArgs),
    /// Download the failed attachments again; prints counts (exit code 1 if some still fail).
    Retry {
        /// Only this connection (name or id); all when omitted.
        connection: Option<String>,
    },
}

/// `inlet attachments list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this connection (name or id).
    pub connection: Option<String>,
    /// Only this status: pending, done, failed or skipped.
    #[arg(long)]
    pub status: Option<AttachmentStatus>,
    /// At most this many rows.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// Run `inlet attachments ...`.
pub async fn run(settings: &Settings, cmd: AttachmentsCommand, out: &Output) -> Result<ExitCode> {
    match cmd {
        AttachmentsCommand::List(a) => list(settings, &a, out).await,
        AttachmentsCommand::Retry { connection } => {
            retry(settings, connection.as_deref(), out).await
        }
    }
}

async fn list(settings: &Settings, a: &ListArgs, out: &Output) -> Result<ExitCode> {
    let store = app::open_store(settings, false).await?;
    let conn = match &a.connection {
        Some(k) => Some(app::connection(&*store, k).await?),
        None => None,
    };
    let rows = store
        .list_attachments(conn.as_ref().map(|c| c.id), a.status, 0, a.limit)
        .await?;
    if out.json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let blobs = FsBlobStore::new(settings.attachments.blob_dir());
    let counts = store.count_attachments(conn.as_ref().map(|c| c.id)).await?;
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "attachments: {} (blobs in {})",
        if summary.is_empty() {
            "none".to_string()
        } else {
            summary.join(", ")
        },
        blobs.root().display()
    );
    for r in &rows {
        println!("{}", row_line(r, &blobs));
    }
    Ok(ExitCode::SUCCESS)
}

fn row_line(r: &Attachment, blobs: &FsBlobStore) -> String {
    let mut line = format!(
        "{:>6}  {:<7}  {}/{}  {}",
        r.id, r.status, r.stream, r.record_id, r.url
    );
    if let (Some(h), Some(size)) = (&r.hash, r.size) {
        line.push_str(&format!(
            "\n        {size} bytes {} -> {}",
            r.content_type.as_deref().unwrap_or("?"),
            blobs.path_of(h).display()
        ));
    }
    if let Some(e) = &r.last_error {
        line.push_str(&format!("\n        {} (after {} attempts)", e, r.attempts));
    }
    line
}

async fn retry(settings: &Settings, connection: Option<&str>, out: &Output) -> Result<ExitCode> {
    if !settings.attachments.enabled {
        bail!(
            "attachments are disabled ([attachments] enabled = false or INLET_ATTACHMENTS_ENABLED=false)"
        );
    }
    let store = app::open_store(settings, false).await?;
    let conns: Vec<Connection> = match connection {
        Some(k) => vec![app::connection(&*store, k).await?],
        None => store.list_connections().await?,
    };
    let engine = wire(
        Engine::new(store.clone(), Arc::new(inlet_core::SystemClock)),
        &settings.attachments,
    )?;
    let key = crate::keys::for_store(&*store, settings, false).await?;
    let mut still_failed = false;
    for conn in &conns {
        // The connection's connector fetches the files behind its credentials (Slack);
        // one that cannot be built (a paused or broken connection) leaves them anonymous.
        let connector = app::connector(conn, &key, inlet_http::HttpConfig::default()).ok();
        let s: RunStats = engine
            .retry_attachments(conn.id, connector.as_deref())
            .await?;
        let left = failed_left(&*store, conn.id).await?;
        still_failed |= left > 0;
        out.emit(
            &json!({
                "connection": conn.name,
                "fetched": s.attachments_fetched,
                "failed": s.attachments_failed,
                "skipped": s.attachments_skipped,
                "failed_left": left,
            }),
            || {
                format!(
                    "{}: retried {} failed attachments: {} fetched, {} failed, {} skipped",
                    conn.name,
                    s.attachments_fetched + s.attachments_failed + s.attachments_skipped,
                    s.attachments_fetched,
                    s.attachments_failed,
                    s.attachments_skipped
                )
            },
        );
    }
    Ok(if still_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn failed_left(store: &dyn Store, connection_id: i64) -> Result<u64> {
    Ok(store
        .count_attachments(Some(connection_id))
        .await?
        .get(&AttachmentStatus::Failed)
        .copied()
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let s = AttachmentSettings::default()
            .resolve("data/x.db")
            .expect("defaults are valid");
        assert!(s.enabled || std::env::var("INLET_ATTACHMENTS_ENABLED").is_ok());
        assert_eq!(s.blob_dir(), PathBuf::from("data/x.db.blobs"));
        assert_eq!(s.concurrency, 4);
        let pg = AttachmentSettings::default()
            .resolve("postgres://u@h/db")
            .expect("pg");
        assert_eq!(pg.blob_dir(), PathBuf::from("inlet-blobs"));
        let bad = AttachmentSettings {
            concurrency: 0,
            ..Default::default()
        };
        assert!(bad.resolve("x.db").is_err());
        let bad = AttachmentSettings {
            allowed_hosts: vec!["https://i.redd.it".into()],
            ..Default::default()
        };
        assert!(bad.resolve("x.db").is_err());
        let parsed: AttachmentSettings =
            toml::from_str("max_bytes = 10\nallowed_hosts = [\"i.redd.it\"]").expect("toml");
        assert_eq!((parsed.max_bytes, parsed.enabled), (10, true));
        assert!(toml::from_str::<AttachmentSettings>("typo = 1").is_err());
    }
}
