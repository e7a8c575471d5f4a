//! The PostgreSQL backend: one client connection behind an async mutex, a cache of
//! prepared statements, bulk page writes through `UNNEST` of column arrays.

mod attachments;
mod family;
mod meta;
mod reconcile;
mod records;
mod serve;

use crate::codec::streams_json;
use crate::error::pg as db_err;
use crate::migrate::{self, Applied, POSTGRES_MIGRATIONS};
use crate::target::redact_url;
use async_trait::async_trait;
use inlet_core::{
    ApiKey, Connection as Conn, ConnectionStatus, DerivedRow, DerivedSpec, ExportRow, FamilyBatch,
    FamilyOutcome, Lease, NewConnection, PageBatch, PageOutcome, ReconcileBatch, ReconcileOutcome,
    Run, RunMode, RunStats, RunStatus, SnapshotBatch, SnapshotSource, Store, StoreError,
    StreamSpec, StreamStats, SyncState, Timestamp, TombstoneBatch, Trigger,
};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, GenericClient, NoTls, Statement};

/// Key of the advisory lock that serializes migrations across processes.
const MIGRATION_LOCK: i64 = 0x696e_6c65_745f_6d69;

/// How long a lost connection is retried by default (`INLET_DATABASE_RECONNECT_SECS`).
pub const DEFAULT_RECONNECT_SECS: u64 = 60;

/// The PostgreSQL store.
pub struct PgStore {
    inner: Mutex<Inner>,
    config: Config,
    location: String,
    /// How long an operation whose connection was lost keeps reconnecting (with
    /// backoff) before it fails with [`StoreError::ConnectionLost`].
    reconnect_for: Duration,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .finish()
    }
}

/// The client and its prepared statements.
pub(crate) struct Inner {
    client: Client,
    cache: Cache,
}

/// Prepared statements by SQL text.
#[derive(Default)]
pub(crate) struct Cache(HashMap<String, Statement>);

impl Cache {
    /// The prepared statement for `sql`, preparing it on first use.
    pub(crate) async fn get<C: GenericClient + Sync>(
        &mut self,
        c: &C,
        sql: &str,
    ) -> Result<Statement, StoreError> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = c.prepare(sql).await.map_err(db_err)?;
        self.0.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

impl PgStore {
    /// Connect to the database at `url` (`postgres://user:password@host:port/db`) and
    /// apply pending migrations.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let location = redact_url(url);
        let mut config: Config = url.parse().map_err(|e| {
            StoreError::Unavailable(format!(
                "bad PostgreSQL URL {location}: {}",
                crate::error::pg_cause(&e)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let reconnect_for = reconnect_window()?;
        let mut client = connect_client(&config).await?;
        migrate(&mut client).await?;
        Ok(PgStore {
            inner: Mutex::new(Inner {
                client,
                cache: Cache::default(),
            }),
            config,
            location,
            reconnect_for,
        })
    }

    /// Keep reconnecting a lost connection for up to `d` per operation.
    pub fn with_reconnect_for(mut self, d: Duration) -> Self {
        self.reconnect_for = d;
        self
    }

    /// The client, reconnected if the server closed the previous connection.
    async fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        let mut g = self.inner.lock().await;
        if g.client.is_closed() {
            tracing::warn!(location = %self.location, "PostgreSQL connection lost; reconnecting");
            g.client = connect_client(&self.config).await.map_err(|e| {
                let why = match e {
                    StoreError::Unavailable(m) => m,
                    other => other.to_string(),
                };
                StoreError::ConnectionLost(format!("reconnecting failed: {why}"))
            })?;
            g.cache = Cache::default();
        }
        Ok(g)
    }

    /// Wait before the next attempt of an operation whose connection was lost: full
    /// jitter over an exponential step (0.2 s doubling, at most 5 s), never past the
    /// reconnect window. `false` when the window is spent.
    async fn backoff(&self, started: Instant, attempt: u32, why: &StoreError) -> bool {
        let left = self.reconnect_for.saturating_sub(started.elapsed());
        if left.is_zero() {
            return false;
        }
        let step = Duration::from_millis(200u64.saturating_mul(1 << attempt.min(5)))
            .min(Duration::from_secs(5));
        let jitter = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(attempt);
            h.finish() % 1000
        };
        let wait = (step / 2 + step.mul_f64(jitter as f64 / 2000.0)).min(left);
        tracing::warn!(location = %self.location, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, error = %why, "PostgreSQL connection lost; retrying");
        tokio::time::sleep(wait).await;
        true
    }
}

/// The reconnect window from `INLET_DATABASE_RECONNECT_SECS` (whole seconds, 0 = fail
/// at once), default [`DEFAULT_RECONNECT_SECS`].
fn reconnect_window() -> Result<Duration, StoreError> {
    match std::env::var("INLET_DATABASE_RECONNECT_SECS") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "INLET_DATABASE_RECONNECT_SECS must be whole seconds, got {v:?}"
                ))
            }),
        Err(_) => Ok(Duration::from_secs(DEFAULT_RECONNECT_SECS)),
    }
}

/// Run an operation on the client; when its connection is lost (or cannot be made
/// again), reconnect and run it again, with backoff, within the store's reconnect
/// window. Only for operations that are safe to repeat: each is one transaction, and one
/// whose COMMIT went through before the connection broke must do no harm done twice.
macro_rules! retrying {
    ($self:ident, |$g:ident| $op:expr) => {{
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let result = match $self.lock().await {
                Ok(mut guard) => {
                    let $g = &mut *guard;
                    $op.await
                }
                Err(e) => Err(e),
            };
            match result {
                Err(e @ StoreError::ConnectionLost(_)) => {
                    if !$self.backoff(started, attempt, &e).await {
                        break Err(e);
                    }
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}

/// Where `config` points, for messages: `host:port`.
fn host_port(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

async fn connect_client(config: &Config) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot connect to PostgreSQL at {} (database {:?}, user {:?}): {}",
            host_port(config),
            config.get_dbname().unwrap_or("(default)"),
            config.get_user().unwrap_or("(default)"),
            crate::error::pg_cause(&e)
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %crate::error::pg_cause(&e), "PostgreSQL connection ended");
        }
    });
    // Record tables grow from empty within one session: a generic plan cached while a
    // table was small (sequential scans) would stay, and make every page O(table).
    //
    // synchronous_commit = off: a commit returns before its WAL is flushed. If the
    // PostgreSQL *server* crashes, the last few hundred milliseconds of commits may be
    // lost — but each is lost whole, records and checkpoint together, so the next sync
    // resumes from the earlier checkpoint and re-fetches: the tables still end equal to
    // the provider. Everything inlet writes can be fetched again; waiting for an fsync
    // per chunk bought nothing.
    client
        .batch_execute("SET plan_cache_mode = force_custom_plan; SET synchronous_commit = off")
        .await
        .map_err(db_err)?;
    Ok(client)
}

async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let applied = {
        let tx = client.transaction().await.map_err(db_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS \"schema_migrations\" (\"version\" BIGINT PRIMARY KEY, \
             \"name\" TEXT NOT NULL, \"checksum\" TEXT NOT NULL, \"applied_at\" TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(db_err)?;
        let rows = tx
            .query(
                "SELECT \"version\", \"checksum\" FROM \"schema_migrations\" ORDER BY \"version\"",
                &[],
            )
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(Applied {
                    version: r.try_get(0)?,
                    checksum: r.try_get(1)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::Corrupt(format!("schema_migrations: {e}")))?
    };
    for m in migrate::pending(POSTGRES_MIGRATIONS, &applied)? {
        let tx = client.transaction().await.map_err(db_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_err)?;
        let again = tx
            .query_opt(
                "SELECT 1 FROM \"schema_migrations\" WHERE \"version\" = $1",
                &[&m.version],
            )
            .await
            .map_err(db_err)?;
        if again.is_some() {
            continue; // another process applied it meanwhile
        }
        tx.batch_execute(m.sql).await.map_err(|e| {
            StoreError::Schema(format!(
                "migration {:04}_{} failed: {}",
                m.version,
                m.name,
                db_err(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO \"schema_migrations\" (\"version\", \"name\", \"checksum\") VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &m.checksum()],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
    }
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn meta_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        meta::meta_get(&mut *self.lock().await?, name).await
    }

    async fn meta_init(&self, name: &str, value: &str) -> Result<String, StoreError> {
        meta::meta_init(&mut *self.lock().await?, name, value).await
    }

    async fn create_connection(
        &self,
        new: &NewConnection,
        at: Timestamp,
    ) -> Result<Conn, StoreError> {
        retrying!(self, |g| meta::create_connection(g, new, at))
    }

    async fn get_connection(&self, key: &str) -> Result<Option<Conn>, StoreError> {
        retrying!(self, |g| meta::get_connection(g, key))
    }

    async fn list_connections(&self) -> Result<Vec<Conn>, StoreError> {
        retrying!(self, |g| meta::list_connections(g))
    }

    async fn set_connection_status(
        &self,
        id: i64,
        status: ConnectionStatus,
        detail: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        retrying!(self, |g| meta::set_status(g, id, status, detail, at))
    }

    async fn set_credentials(
        &self,
        id: i64,
        sealed: &[u8],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        retrying!(self, |g| meta::set_credentials(g, id, sealed, at))
    }

    async fn sync_state(&self, connection_id: i64, stream: &str) -> Result<SyncState, StoreError> {
        let states = retrying!(self, |g| meta::sync_states(g, connection_id, Some(stream)))?;
        Ok(states.into_values().next().unwrap_or_default())
    }

    async fn sync_states(
        &self,
        connection_id: i64,
    ) -> Result<BTreeMap<String, SyncState>, StoreError> {
        retrying!(self, |g| meta::sync_states(g, connection_id, None))
    }

    async fn put_sync_state(
        &self,
        connection_id: i64,
        stream: &str,
        state: &SyncState,
    ) -> Result<(), StoreError> {
        retrying!(self, |g| async {
            let Inner { client, cache } = g;
            meta::put_sync_state(&*client, cache, connection_id, stream, state).await
        })
    }

    async fn start_run(
        &self,
        connection_id: i64,
        mode: RunMode,
        trigger: Trigger,
        at: Timestamp,
    ) -> Result<i64, StoreError> {
        retrying!(self, |g| meta::start_run(
            g,
            connection_id,
            mode,
            trigger,
            at
        ))
    }

    async fn update_run(
        &self,
        run_id: i64,
        status: RunStatus,
        stats: &RunStats,
        streams: &BTreeMap<String, StreamStats>,
        error: Option<&str>,
        finished_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let streams = streams_json(streams)?;
        let up = meta::RunUpdate {
            run_id,
            status,
            stats,
            streams: &streams,
            error,
            finished_at,
        };
        retrying!(self, |g| meta::update_run(g, &up))
    }

    async fn set_run_waiting_until(
        &self,
        run_id: i64,
        until: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        meta::set_run_waiting_until(&mut *self.lock().await?, run_id, until).await
    }

    async fn list_runs(
        &self,
        connection_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Run>, StoreError> {
        retrying!(self, |g| meta::list_runs(g, connection_id, limit))
    }

    async fn commit_page(&self, batch: PageBatch<'_>) -> Result<PageOutcome, StoreError> {
        retrying!(self, |g| records::commit_page(g, &batch))
    }

    async fn tombstone_missing(&self, batch: TombstoneBatch<'_>) -> Result<u64, StoreError> {
        retrying!(self, |g| records::tombstone_missing(g, &batch))
    }

    async fn stage_ids(&self, token: &str, ids: &[String]) -> Result<(), StoreError> {
        retrying!(self, |g| reconcile::stage_ids(g, token, ids))
    }

    async fn drop_staged(&self, token: &str) -> Result<(), StoreError> {
        retrying!(self, |g| reconcile::drop_staged(g, token))
    }

    async fn apply_reconcile(
        &self,
        batch: ReconcileBatch<'_>,
    ) -> Result<ReconcileOutcome, StoreError> {
        // Not repeated: had the COMMIT gone through before the connection broke, the
        // staged ids would be gone, and a second attempt would tombstone every row.
        reconcile::apply_reconcile(&mut *self.lock().await?, &batch).await
    }

    async fn import_snapshot(
        &self,
        batch: SnapshotBatch<'_>,
        source: Box<dyn SnapshotSource>,
    ) -> Result<(PageOutcome, ReconcileOutcome), StoreError> {
        // Not retried on a lost connection: the source is a stream read once.
        reconcile::import_snapshot(&mut *self.lock().await?, &batch, source).await
    }

    async fn purge_tombstones(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        retrying!(self, |g| reconcile::purge(g, connection_id, stream, before))
    }

    async fn stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
    ) -> Result<Option<String>, StoreError> {
        retrying!(self, |g| reconcile::stream_validator(
            g,
            connection_id,
            stream
        ))
    }

    async fn put_stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
        validator: Option<&str>,
    ) -> Result<(), StoreError> {
        retrying!(self, |g| reconcile::put_stream_validator(
            g,
            connection_id,
            stream,
            validator
        ))
    }

    async fn refresh_derived_all(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        at: Timestamp,
    ) -> Result<(u64, u64), StoreError> {
        retrying!(self, |g| records::refresh_derived_all(
            g,
            connection_id,
            stream,
            at
        ))
    }

    async fn count_live(&self, connection_id: i64, stream: &StreamSpec) -> Result<u64, StoreError> {
        retrying!(self, |g| records::count_live(g, connection_id, stream))
    }

    async fn ensure_table(&self, stream: &StreamSpec) -> Result<(), StoreError> {
        retrying!(self, |g| records::ensure_table(g, stream))
    }

    async fn count_derived(&self, connection_id: i64, table: &str) -> Result<u64, StoreError> {
        retrying!(self, |g| records::count_derived(g, connection_id, table))
    }

    async fn parent_markers(
        &self,
        connection_id: i64,
        parent_stream: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        retrying!(self, |g| family::parent_markers(
            g,
            connection_id,
            parent_stream,
            ids
        ))
    }

    async fn commit_family(&self, batch: FamilyBatch<'_>) -> Result<FamilyOutcome, StoreError> {
        retrying!(self, |g| family::commit_family(g, &batch))
    }

    async fn export_derived_page(
        &self,
        connection_id: i64,
        derived: &DerivedSpec,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DerivedRow>, StoreError> {
        records::export_derived_page(
            &mut *self.lock().await?,
            connection_id,
            derived,
            after,
            limit,
        )
        .await
    }

    async fn export_page(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        after: Option<&str>,
        limit: u32,
        include_deleted: bool,
    ) -> Result<Vec<ExportRow>, StoreError> {
        let q = records::ExportQuery {
            connection_id,
            spec: stream,
            after,
            limit,
            include_deleted,
        };
        retrying!(self, |g| records::export_page(g, &q))
    }
    async fn add_attachments(
        &self,
        connection_id: i64,
        stream: &str,
        links: &[inlet_core::AttachmentLink],
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        retrying!(self, |g| attachments::add(
            g,
            connection_id,
            stream,
            links,
            at
        ))
    }

    async fn list_attachments(
        &self,
        connection_id: Option<i64>,
        status: Option<inlet_core::AttachmentStatus>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<inlet_core::Attachment>, StoreError> {
        retrying!(self, |g| attachments::list(
            g,
            connection_id,
            status,
            after,
            limit,
        ))
    }

    async fn update_attachment(
        &self,
        id: i64,
        update: &inlet_core::AttachmentUpdate,
    ) -> Result<(), StoreError> {
        retrying!(self, |g| attachments::update(g, id, update))
    }

    async fn count_attachments(
        &self,
        connection_id: Option<i64>,
    ) -> Result<BTreeMap<inlet_core::AttachmentStatus, u64>, StoreError> {
        retrying!(self, |g| attachments::count(g, connection_id))
    }

    async fn delete_connection(&self, id: i64, tables: &[&str]) -> Result<(), StoreError> {
        retrying!(self, |g| serve::delete_connection(g, id, tables))
    }

    async fn get_run(&self, run_id: i64) -> Result<Option<Run>, StoreError> {
        retrying!(self, |g| serve::get_run(g, run_id))
    }

    async fn try_acquire_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        retrying!(self, |g| serve::try_acquire_lease(
            g,
            connection_id,
            holder,
            at,
            ttl_ms
        ))
    }

    async fn renew_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        retrying!(self, |g| serve::renew_lease(
            g,
            connection_id,
            holder,
            at,
            ttl_ms
        ))
    }

    async fn release_lease(&self, connection_id: i64, holder: &str) -> Result<(), StoreError> {
        retrying!(self, |g| serve::release_lease(g, connection_id, holder))
    }

    async fn get_lease(&self, connection_id: i64) -> Result<Option<Lease>, StoreError> {
        retrying!(self, |g| serve::get_lease(g, connection_id))
    }

    async fn create_api_key(
        &self,
        name: &str,
        prefix: &str,
        hash: &str,
        at: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        retrying!(self, |g| serve::create_api_key(g, name, prefix, hash, at))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        retrying!(self, |g| serve::list_api_keys(g))
    }

    async fn revoke_api_key(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        retrying!(self, |g| serve::revoke_api_key(g, id, at))
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        retrying!(self, |g| serve::find_api_key(g, hash))
    }
}
