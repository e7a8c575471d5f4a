//! Wiring: the store, the key, connectors for stored connections, the engine.

use crate::keys;
use crate::settings::{Settings, Target, target};
use anyhow::{Context, Result, bail};
use inlet_core::secrets::SecretBox;
use inlet_core::{
    Clock, Connection, ConnectionStatus, Connector, NewConnection, Run, RunStatus, Store,
    SystemClock,
};
use inlet_engine::Engine;
use inlet_http::HttpConfig;
use serde::Serialize;
use std::sync::Arc;

/// A provider whose connections are filled by `inlet import`, never synced.
pub fn import_only(provider: &str) -> bool {
    inlet_connectors::provider::find(provider).is_some_and(|p| !p.syncs())
}

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
    let store = inlet_store::open(&settings.database_url).await?;
    // Every provider's tables exist from the start, for anyone reading the database with
    // SQL before a first sync (a stream's own writes would make them anyway).
    store
        .ensure_tables(&inlet_connectors::provider::all_streams())
        .await?;
    Ok(store)
}

/// Open the database for a command that only reads (`status`, `runs`, `export`): a SQLite
/// file this process may not write is opened read-only (no migration applied; a schema
/// that needs one is refused with the migrations named).
pub async fn open_store_read(settings: &Settings) -> Result<Arc<dyn Store>> {
    let Target::Sqlite(path) = target(&settings.database_url)? else {
        return open_store(settings, false).await;
    };
    // A file without write permission is read-only even for a user (root) the system
    // would let write it.
    let writable = std::fs::metadata(&path).is_ok_and(|m| !m.permissions().readonly())
        && std::fs::OpenOptions::new().write(true).open(&path).is_ok();
    if writable {
        match open_store(settings, false).await {
            Err(e) if format!("{e:#}").contains("readonly") => {}
            other => return other,
        }
    } else if !path.exists() {
        return open_store(settings, false).await;
    }
    inlet_store::open_read_only(&settings.database_url)
        .await
        .map_err(anyhow::Error::from)
}

/// Refuse a new connection's name that breaks the one name rule
/// ([`inlet_core::validate_connection_name`], shared with the HTTP API).
pub fn check_name(name: &str) -> Result<()> {
    inlet_core::validate_connection_name(name)
        .with_context(|| format!("invalid connection name {name:?}"))
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

/// A connection `inlet connect` stores once its credentials are verified.
pub struct NewVerified<'a> {
    /// Connection name.
    pub name: &'a str,
    /// Tenant / workspace (for a new connection).
    pub workspace: String,
    /// Provider.
    pub provider: &'static str,
    /// Provider settings (no secrets).
    pub config: serde_json::Value,
    /// Credentials, sealed here.
    pub credentials: serde_json::Value,
    /// Replace the credentials of the existing connection of this name (same provider)
    /// and set it `active`, instead of creating one.
    pub update: bool,
}

/// Store a new connection, or re-authenticate an existing one (`update`). Creates the
/// database and the key file when needed; a refused request writes nothing.
pub async fn store_connection(
    settings: &Settings,
    c: NewVerified<'_>,
) -> Result<(Arc<dyn Store>, Connection)> {
    if !c.update {
        check_name(c.name)?;
    }
    let store = open_store(settings, true).await?;
    let key = keys::for_store(&*store, settings, true).await?;
    let sealed = seal(c.name, &c.credentials, &key)?;
    let now = SystemClock.now();
    let conn = match store.get_connection(c.name).await? {
        Some(existing) if c.update && existing.provider == c.provider => {
            store.set_credentials(existing.id, &sealed, now).await?;
            store
                .set_connection_status(existing.id, ConnectionStatus::Active, None, now)
                .await?;
            existing
        }
        Some(existing) if c.update => bail!(
            "connection {:?} is a {} connection, not {}",
            c.name,
            existing.provider,
            c.provider
        ),
        Some(_) => bail!(
            "a connection named {:?} exists already (use --update to replace its credentials)",
            c.name
        ),
        None if c.update => bail!("no connection named {:?} to update", c.name),
        None => {
            let new = NewConnection {
                name: c.name.to_string(),
                workspace: c.workspace,
                provider: c.provider.into(),
                config: c.config,
                credentials: sealed,
            };
            store.create_connection(&new, now).await?
        }
    };
    Ok((store, conn))
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

/// One line about a run (control characters in the name or error escaped).
pub fn run_line(name: &str, run: &Run) -> String {
    let name = inlet_core::escape_unsafe(name);
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
    if let Some(until) = run
        .waiting_until
        .filter(|_| run.status == RunStatus::Waiting)
    {
        line.push_str(&format!(
            "\n  waiting: the provider's rate limit frees up at {until}; the next sync after that resumes from the checkpoint"
        ));
    }
    if let Some(e) = &run.error {
        line.push_str(&format!("\n  error: {}", inlet_core::escape_unsafe(e)));
    }
    line
}
