//! Wiring: the store, the key, connectors for stored connections, the engine.

use crate::keys;
use crate::settings::{Settings, Target, target};
use anyhow::{Context, Result, bail};
use inlet_core::secrets::SecretBox;
use inlet_core::{Connection, Connector, Run, Store, SystemClock};
use inlet_engine::Engine;
use inlet_http::HttpConfig;
use serde::Serialize;
use std::sync::Arc;

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
    Ok(inlet_connectors::build::connector(
        conn,
        credentials(conn, key)?,
        http,
    )?)
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
