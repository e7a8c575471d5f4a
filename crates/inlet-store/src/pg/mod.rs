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
    ApiKey, Connection as Conn, ConnectionStatus, ExportRow, FamilyBatch, FamilyOutcome, Lease,
    NewConnection, PageBatch, PageOutcome, ReconcileBatch, ReconcileOutcome, Run, RunMode,
    RunStats, RunStatus, SnapshotBatch, SnapshotSource, Store, StoreError, StreamSpec, StreamStats,
    SyncState, Timestamp, TombstoneBatch, Trigger,
};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, GenericClient, NoTls, Statement};

/// Key of the advisory lock that serializes migrations across processes.
const MIGRATION_LOCK: i64 = 0x696e_6c65_745f_6d69;

/// The PostgreSQL store.
pub struct PgStore {
    inner: Mutex<Inner>,
    config: Config,
    location: String,
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
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL {location}: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut client = connect_client(&config).await?;
        migrate(&mut client).await?;
        Ok(PgStore {
            inner: Mutex::new(Inner {
                client,
                cache: Cache::default(),
            }),
            config,
            location,
        })
    }

    /// The client, reconnected if the server closed the previous connection.
    async fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        let mut g = self.inner.lock().await;
        if g.client.is_closed() {
            tracing::warn!(location = %self.location, "PostgreSQL connection lost; reconnecting");
            g.client = connect_client(&self.config).await?;
            g.cache = Cache::default();
        }
        Ok(g)
    }
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
            "cannot connect to PostgreSQL at {} (database {:?}, user {:?}): {e}",
            host_port(config),
            config.get_dbname().unwrap_or("(default)"),
            config.get_user().unwrap_or("(default)")
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
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

    async fn create_connection(
        &self,
        new: &NewConnection,
        at: Timestamp,
    ) -> Result<Conn, StoreError> {
        meta::create_connection(&mut *self.lock().await?, new, at).await
    }

    async fn get_connection(&self, key: &str) -> Result<Option<Conn>, StoreError> {
        meta::get_connection(&mut *self.lock().await?, key).await
    }

    async fn list_connections(&self) -> Result<Vec<Conn>, StoreError> {
        meta::list_connections(&mut *self.lock().await?).await
    }

    async fn set_connection_status(
        &self,
        id: i64,
        status: ConnectionStatus,
        detail: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        meta::set_status(&mut *self.lock().await?, id, status, detail, at).await
    }

    async fn set_credentials(
        &self,
        id: i64,
        sealed: &[u8],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        meta::set_credentials(&mut *self.lock().await?, id, sealed, at).await
    }

    async fn sync_state(&self, connection_id: i64, stream: &str) -> Result<SyncState, StoreError> {
        let states =
            meta::sync_states(&mut *self.lock().await?, connection_id, Some(stream)).await?;
        Ok(states.into_values().next().unwrap_or_default())
    }

    async fn sync_states(
        &self,
        connection_id: i64,
    ) -> Result<BTreeMap<String, SyncState>, StoreError> {
        meta::sync_states(&mut *self.lock().await?, connection_id, None).await
    }

    async fn put_sync_state(
        &self,
        connection_id: i64,
        stream: &str,
        state: &SyncState,
    ) -> Result<(), StoreError> {
        let mut g = self.lock().await?;
        let Inner { client, cache } = &mut *g;
        meta::put_sync_state(&*client, cache, connection_id, stream, state).await
    }

    async fn start_run(
        &self,
        connection_id: i64,
        mode: RunMode,
        trigger: Trigger,
        at: Timestamp,
    ) -> Result<i64, StoreError> {
        meta::start_run(&mut *self.lock().await?, connection_id, mode, trigger, at).await
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
        meta::update_run(&mut *self.lock().await?, &up).await
    }

    async fn list_runs(
        &self,
        connection_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Run>, StoreError> {
        meta::list_runs(&mut *self.lock().await?, connection_id, limit).await
    }

    async fn commit_page(&self, batch: PageBatch<'_>) -> Result<PageOutcome, StoreError> {
        records::commit_page(&mut *self.lock().await?, &batch).await
    }

    async fn tombstone_missing(&self, batch: TombstoneBatch<'_>) -> Result<u64, StoreError> {
        records::tombstone_missing(&mut *self.lock().await?, &batch).await
    }

    async fn stage_ids(&self, token: &str, ids: &[String]) -> Result<(), StoreError> {
        reconcile::stage_ids(&mut *self.lock().await?, token, ids).await
    }

    async fn drop_staged(&self, token: &str) -> Result<(), StoreError> {
        reconcile::drop_staged(&mut *self.lock().await?, token).await
    }

    async fn apply_reconcile(
        &self,
        batch: ReconcileBatch<'_>,
    ) -> Result<ReconcileOutcome, StoreError> {
        reconcile::apply_reconcile(&mut *self.lock().await?, &batch).await
    }

    async fn import_snapshot(
        &self,
        batch: SnapshotBatch<'_>,
        source: Box<dyn SnapshotSource>,
    ) -> Result<(PageOutcome, ReconcileOutcome), StoreError> {
        reconcile::import_snapshot(&mut *self.lock().await?, &batch, source).await
    }

    async fn purge_tombstones(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        reconcile::purge(&mut *self.lock().await?, connection_id, stream, before).await
    }

    async fn stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
    ) -> Result<Option<String>, StoreError> {
        reconcile::stream_validator(&mut *self.lock().await?, connection_id, stream).await
    }

    async fn put_stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
        validator: Option<&str>,
    ) -> Result<(), StoreError> {
        reconcile::put_stream_validator(&mut *self.lock().await?, connection_id, stream, validator)
            .await
    }

    async fn refresh_derived_all(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        at: Timestamp,
    ) -> Result<(u64, u64), StoreError> {
        records::refresh_derived_all(&mut *self.lock().await?, connection_id, stream, at).await
    }

    async fn count_live(&self, connection_id: i64, stream: &StreamSpec) -> Result<u64, StoreError> {
        records::count_live(&mut *self.lock().await?, connection_id, stream).await
    }

    async fn count_derived(&self, connection_id: i64, table: &str) -> Result<u64, StoreError> {
        records::count_derived(&mut *self.lock().await?, connection_id, table).await
    }

    async fn parent_markers(
        &self,
        connection_id: i64,
        parent_stream: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut g = self.lock().await?;
        family::parent_markers(&mut g, connection_id, parent_stream, ids).await
    }

    async fn commit_family(&self, batch: FamilyBatch<'_>) -> Result<FamilyOutcome, StoreError> {
        let mut g = self.lock().await?;
        family::commit_family(&mut g, &batch).await
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
        records::export_page(&mut *self.lock().await?, &q).await
    }
    async fn add_attachments(
        &self,
        connection_id: i64,
        stream: &str,
        links: &[inlet_core::AttachmentLink],
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        attachments::add(&mut *self.lock().await?, connection_id, stream, links, at).await
    }

    async fn list_attachments(
        &self,
        connection_id: Option<i64>,
        status: Option<inlet_core::AttachmentStatus>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<inlet_core::Attachment>, StoreError> {
        attachments::list(
            &mut *self.lock().await?,
            connection_id,
            status,
            after,
            limit,
        )
        .await
    }

    async fn update_attachment(
        &self,
        id: i64,
        update: &inlet_core::AttachmentUpdate,
    ) -> Result<(), StoreError> {
        attachments::update(&mut *self.lock().await?, id, update).await
    }

    async fn count_attachments(
        &self,
        connection_id: Option<i64>,
    ) -> Result<BTreeMap<inlet_core::AttachmentStatus, u64>, StoreError> {
        attachments::count(&mut *self.lock().await?, connection_id).await
    }

    async fn delete_connection(&self, id: i64, tables: &[&str]) -> Result<(), StoreError> {
        serve::delete_connection(&mut *self.lock().await?, id, tables).await
    }

    async fn get_run(&self, run_id: i64) -> Result<Option<Run>, StoreError> {
        serve::get_run(&mut *self.lock().await?, run_id).await
    }

    async fn try_acquire_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        serve::try_acquire_lease(&mut *self.lock().await?, connection_id, holder, at, ttl_ms).await
    }

    async fn renew_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        serve::renew_lease(&mut *self.lock().await?, connection_id, holder, at, ttl_ms).await
    }

    async fn release_lease(&self, connection_id: i64, holder: &str) -> Result<(), StoreError> {
        serve::release_lease(&mut *self.lock().await?, connection_id, holder).await
    }

    async fn get_lease(&self, connection_id: i64) -> Result<Option<Lease>, StoreError> {
        serve::get_lease(&mut *self.lock().await?, connection_id).await
    }

    async fn create_api_key(
        &self,
        name: &str,
        prefix: &str,
        hash: &str,
        at: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        serve::create_api_key(&mut *self.lock().await?, name, prefix, hash, at).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        serve::list_api_keys(&mut *self.lock().await?).await
    }

    async fn revoke_api_key(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        serve::revoke_api_key(&mut *self.lock().await?, id, at).await
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        serve::find_api_key(&mut *self.lock().await?, hash).await
    }
}
