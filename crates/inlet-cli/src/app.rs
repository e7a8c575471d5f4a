//! Wiring: the store, the key, connectors for stored connections, the engine.

use crate::keys;
use crate::settings::{Settings, Target, target};
use anyhow::{Context, Result, bail};
use inlet_connectors::reddit::{RedditConfig, RedditConnector, RedditCredentials};
use inlet_core::secrets::SecretBox;
use inlet_core::{Connection, Connector, Run, Store, SystemClock};
use inlet_engine::Engine;
use inlet_http::HttpConfig;
use serde::Serialize;
use std::sync::Arc;

/// Providers this build can sync.
pub const PROVIDERS: &[&str] = &["reddit", "github", "ebay"];

/// Providers whose connections are filled by `inlet import`, never synced.
pub const IMPORT_ONLY: &[&str] = &["tiktok"];

/// Open the database. Without `create`, a SQLite file that does not exist is an error
/// (so a typo in a path never leaves an empty database behind).
pub async fn open_store(settings: &Settings, create: bool) -> Result<Arc<dyn Store>> {
    if let Target::Sqlite(path) = target(&settings.database_url)?
        && !create
        && !path.exists()
    {
        bail!(
            "no database at {}: add a connection with `inlet connect` first (or try `inlet demo`)",
            path.display()
        );
    }
    inlet_store::open(&settings.database_url)
        .await
        .map_err(anyhow::Error::from)
}

/// Find a connection by name or id.
pub async fn connection(store: &dyn Store, key: &str) -> Result<Connection> {
    match store.get_connection(key).await? {
        Some(c) => Ok(c),
        None => {
            let known: Vec<String> = store
                .list_connections()
                .await?
                .into_iter()
                .map(|c| c.name)
                .collect();
            if known.is_empty() {
                bail!(
                    "unknown connection {key:?}: there are no connections yet (add one with `inlet connect`)"
                )
            }
            bail!("unknown connection {key:?} (known: {})", known.join(", "))
        }
    }
}

/// Open a connection's credentials.
pub fn credentials(conn: &Connection, key: &SecretBox) -> Result<serde_json::Value> {
    let plain = key
        .open(&conn.credentials, &keys::aad(&conn.name))
        .with_context(|| format!("cannot read the credentials of {:?}", conn.name))?;
    serde_json::from_slice(&plain)
        .with_context(|| format!("stored credentials of {:?} are corrupt", conn.name))
}

/// Seal credentials for a connection.
pub fn seal(conn_name: &str, creds: &serde_json::Value, key: &SecretBox) -> Result<Vec<u8>> {
    let plain = serde_json::to_vec(creds)?;
    Ok(key.seal(&plain, &keys::aad(conn_name))?)
}

/// The connector for a stored connection.
pub fn connector(
    conn: &Connection,
    key: &SecretBox,
    http: HttpConfig,
) -> Result<Box<dyn Connector>> {
    match conn.provider.as_str() {
        "reddit" => {
            let config: RedditConfig = serde_json::from_value(inlet_engine::provider_config(
                &conn.config,
            ))
            .with_context(|| format!("connection {:?} has an invalid Reddit config", conn.name))?;
            let creds: RedditCredentials = serde_json::from_value(credentials(conn, key)?)
                .with_context(|| {
                    format!("connection {:?} has invalid Reddit credentials", conn.name)
                })?;
            Ok(Box::new(RedditConnector::new(config, &creds, http)?))
        }
        "github" => {
            use inlet_connectors::github::{GithubConfig, GithubConnector, GithubCredentials};
            let config: GithubConfig = serde_json::from_value(inlet_engine::provider_config(
                &conn.config,
            ))
            .with_context(|| format!("connection {:?} has an invalid GitHub config", conn.name))?;
            let creds: GithubCredentials = serde_json::from_value(credentials(conn, key)?)
                .with_context(|| {
                    format!("connection {:?} has invalid GitHub credentials", conn.name)
                })?;
            Ok(Box::new(GithubConnector::new(config, &creds, http)?))
        }
        "tiktok" => bail!(
            "connection {:?} is filled by imports: update it with `inlet import tiktok FILE --connection {}`",
            conn.name,
            conn.name
        ),
        "ebay" => {
            use inlet_connectors::ebay::{EbayConfig, EbayConnector, EbayCredentials};
            let config: EbayConfig = serde_json::from_value(inlet_engine::provider_config(
                &conn.config,
            ))
            .with_context(|| format!("connection {:?} has an invalid eBay config", conn.name))?;
            let creds: EbayCredentials = serde_json::from_value(credentials(conn, key)?)
                .with_context(|| {
                    format!("connection {:?} has invalid eBay credentials", conn.name)
                })?;
            Ok(Box::new(EbayConnector::new(config, &creds, http)?))
        }
        other => bail!(
            "connection {:?} uses provider {other:?}, which this build does not support (supported: {})",
            conn.name,
            PROVIDERS.join(", ")
        ),
    }
}

/// An engine that seals refreshed credentials with `key`.
pub fn engine(store: Arc<dyn Store>, key: SecretBox) -> Engine {
    let key = Arc::new(key);
    Engine::new(store, Arc::new(SystemClock)).with_sealer(Arc::new(
        move |conn: &Connection, creds: &serde_json::Value| {
            seal(&conn.name, creds, &key).map_err(|e| e.to_string())
        },
    ))
}

/// A run as printed by `sync`, `runs` and `demo`.
#[derive(Debug, Serialize)]
pub struct RunReport<'a> {
    /// Connection name.
    pub connection: &'a str,
    /// Duration.
    pub duration_ms: i64,
    /// The run.
    #[serde(flatten)]
    pub run: &'a Run,
}

/// One line about a run.
pub fn run_line(name: &str, run: &Run) -> String {
    let s = &run.stats;
    let mut line = format!(
        "{name}: {} {} sync (run {}) — {} fetched: {} new, {} changed, {} unchanged, {} removed; {} requests ({} retries{}) in {:.2}s",
        run.status,
        run.mode,
        run.id,
        s.fetched,
        s.inserted,
        s.updated,
        s.unchanged,
        s.deleted,
        s.requests,
        s.retries,
        if s.rate_limit_wait_ms > 0 {
            format!(
                ", {:.1}s rate-limit wait",
                s.rate_limit_wait_ms as f64 / 1000.0
            )
        } else {
            String::new()
        },
        run.duration_ms() as f64 / 1000.0
    );
    if let Some(q) = s.quota_remaining {
        line.push_str(&format!("; provider quota left: {q}"));
    }
    if s.items_skipped_with_error > 0 {
        line.push_str(&format!(
            "; {} items skipped with errors",
            s.items_skipped_with_error
        ));
    }
    if s.attachments_fetched + s.attachments_failed + s.attachments_skipped > 0 {
        line.push_str(&format!(
            "; attachments: {} fetched, {} failed, {} skipped",
            s.attachments_fetched, s.attachments_failed, s.attachments_skipped
        ));
    }
    if let Some(e) = &run.error {
        line.push_str(&format!("\n  error: {e}"));
    }
    line
}
