//! The SQLite backend: one file, WAL mode, one connection behind a mutex, driven from
//! tokio's blocking pool.

mod attachments;
mod family;
mod meta;
mod reconcile;
mod records;
mod serve;
mod values;

use crate::error::{join, sqlite as db_err};
use crate::migrate::{self, Applied, SQLITE_MIGRATIONS};
use async_trait::async_trait;
use inlet_core::{
    ApiKey, Connection as Conn, ConnectionStatus, DerivedRow, DerivedSpec, ExportRow, FamilyBatch,
    FamilyOutcome, Lease, NewConnection, PageBatch, PageOutcome, ReconcileBatch, ReconcileOutcome,
    Run, RunMode, RunStats, RunStatus, SnapshotBatch, SnapshotSource, Store, StoreError,
    StreamSpec, StreamStats, SyncState, Timestamp, TombstoneBatch, Trigger,
};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Open (creating on first use) the SQLite file at `path` and apply pending
    /// migrations. The parent directory must exist: it is never created.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent.filter(|d| !d.is_dir()) {
            return Err(StoreError::Unavailable(format!(
                "cannot create SQLite database {}: directory {} does not exist (create it first)",
                path.display(),
                dir.display()
            )));
        }
        create_private(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open SQLite database {}: {e}",
                path.display()
            ))
        })?;
        configure(&conn)
            .and_then(|()| migrate(&mut conn))
            .map_err(|e| naming_file(e, path))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// Open an existing SQLite file for reading only: nothing is created or written and
    /// no migration is applied, so a read-only file (or a copy on read-only media) can be
    /// inspected. A database whose schema is older than this binary's is refused with the
    /// migrations it lacks named.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Unavailable(format!(
                "no SQLite database at {}",
                path.display()
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open SQLite database {} read-only: {e}",
                path.display()
            ))
        })?;
        check_schema_read_only(&conn, path).map_err(|e| naming_file(e, path))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the connection in tokio's blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(join)?
    }
}

/// Create a missing database file empty with mode 0600 (it holds private messages), so
/// SQLite, which gives its `-wal` and `-shm` files the database file's mode, never makes
/// a readable one. An existing file is left as it is.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!(
            "cannot create SQLite database {}: {e}",
            path.display()
        ))),
    }
}

/// An error met while opening `path`, with the file named (SQLite's own messages, such
/// as "attempt to write a readonly database", do not say which file).
fn naming_file(e: StoreError, path: &Path) -> StoreError {
    let at = |m: String| format!("SQLite database {}: {m}", path.display());
    match e {
        StoreError::Db(m) if m.contains("readonly") => StoreError::Unavailable(at(format!(
            "{m} (the file or its directory is not writable; read-only commands such as \
             `inlet status` open it read-only)"
        ))),
        StoreError::Db(m) => StoreError::Db(at(m)),
        StoreError::Unavailable(m) => StoreError::Unavailable(at(m)),
        StoreError::Schema(m) => StoreError::Schema(at(m)),
        StoreError::Corrupt(m) => StoreError::Corrupt(at(m)),
        other => other,
    }
}

/// The schema check of a read-only open: the migrations table must be there and every
/// migration this binary knows applied.
fn check_schema_read_only(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if tables == 0 {
        return Err(StoreError::Schema(
            "not an inlet database (it has no schema_migrations table)".into(),
        ));
    }
    let pending = migrate::pending(SQLITE_MIGRATIONS, &applied(conn)?)?;
    if !pending.is_empty() {
        let names: Vec<String> = pending
            .iter()
            .map(|m| format!("{:04}_{}", m.version, m.name))
            .collect();
        return Err(StoreError::Schema(format!(
            "the database needs schema migration(s) {} that a read-only open does not apply: \
             run any writing command (e.g. `inlet sync`) once with write access to {}",
            names.join(", "),
            path.display()
        )));
    }
    Ok(())
}

/// Pragmas every connection gets.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
    // Larger pages suit ~1-2 KB rows; only takes effect on a new, empty file.
    conn.execute_batch("PRAGMA page_size = 16384")
        .map_err(db_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "SQLite refused WAL mode (got {mode})"
        )));
    }
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768; \
         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 65536; \
         PRAGMA journal_size_limit = 67108864;",
    )
    .map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// Apply pending migrations, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS \"schema_migrations\" (\
         \"version\" INTEGER PRIMARY KEY, \"name\" TEXT NOT NULL, \
         \"checksum\" TEXT NOT NULL, \"applied_at\" TEXT NOT NULL)",
    )
    .map_err(db_err)?;
    let applied = applied(conn)?;
    for m in migrate::pending(SQLITE_MIGRATIONS, &applied)? {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let again: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM \"schema_migrations\" WHERE \"version\" = ?1",
                [m.version],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        if again > 0 {
            continue; // another process applied it meanwhile
        }
        tx.execute_batch(m.sql).map_err(|e| {
            StoreError::Schema(format!("migration {:04}_{} failed: {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO \"schema_migrations\" (\"version\", \"name\", \"checksum\", \"applied_at\") \
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            rusqlite::params![m.version, m.name, m.checksum()],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
    }
    Ok(())
}

fn applied(conn: &Connection) -> Result<Vec<Applied>, StoreError> {
    let mut st = conn
        .prepare("SELECT \"version\", \"checksum\" FROM \"schema_migrations\" ORDER BY \"version\"")
        .map_err(db_err)?;
    let rows = st
        .query_map([], |r| {
            Ok(Applied {
                version: r.get(0)?,
                checksum: r.get(1)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn meta_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_string();
        self.run(move |c| meta::meta_get(c, &name)).await
    }

    async fn meta_init(&self, name: &str, value: &str) -> Result<String, StoreError> {
        let (name, value) = (name.to_string(), value.to_string());
        self.run(move |c| meta::meta_init(c, &name, &value)).await
    }

    async fn create_connection(
        &self,
        new: &NewConnection,
        at: Timestamp,
    ) -> Result<Conn, StoreError> {
        let new = new.clone();
        self.run(move |c| meta::create_connection(c, &new, at))
            .await
    }

    async fn get_connection(&self, key: &str) -> Result<Option<Conn>, StoreError> {
        let key = key.to_string();
        self.run(move |c| meta::get_connection(c, &key)).await
    }

    async fn list_connections(&self) -> Result<Vec<Conn>, StoreError> {
        self.run(meta::list_connections).await
    }

    async fn set_connection_status(
        &self,
        id: i64,
        status: ConnectionStatus,
        detail: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let detail = detail.map(str::to_string);
        self.run(move |c| meta::set_status(c, id, status, detail.as_deref(), at))
            .await
    }

    async fn set_credentials(
        &self,
        id: i64,
        sealed: &[u8],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let sealed = sealed.to_vec();
        self.run(move |c| meta::set_credentials(c, id, &sealed, at))
            .await
    }

    async fn sync_state(&self, connection_id: i64, stream: &str) -> Result<SyncState, StoreError> {
        let stream = stream.to_string();
        self.run(move |c| meta::sync_state(c, connection_id, &stream))
            .await
    }

    async fn sync_states(
        &self,
        connection_id: i64,
    ) -> Result<BTreeMap<String, SyncState>, StoreError> {
        self.run(move |c| meta::sync_states(c, connection_id)).await
    }

    async fn put_sync_state(
        &self,
        connection_id: i64,
        stream: &str,
        state: &SyncState,
    ) -> Result<(), StoreError> {
        let (stream, state) = (stream.to_string(), state.clone());
        self.run(move |c| meta::put_sync_state(c, connection_id, &stream, &state))
            .await
    }

    async fn start_run(
        &self,
        connection_id: i64,
        mode: RunMode,
        trigger: Trigger,
        at: Timestamp,
    ) -> Result<i64, StoreError> {
        self.run(move |c| meta::start_run(c, connection_id, mode, trigger, at))
            .await
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
        let up = meta::RunUpdate {
            run_id,
            status,
            stats: *stats,
            streams: crate::codec::streams_json(streams)?,
            error: error.map(str::to_string),
            finished_at,
        };
        self.run(move |c| meta::update_run(c, &up)).await
    }

    async fn set_run_waiting_until(
        &self,
        run_id: i64,
        until: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.run(move |c| meta::set_run_waiting_until(c, run_id, until))
            .await
    }

    async fn list_runs(
        &self,
        connection_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Run>, StoreError> {
        self.run(move |c| meta::list_runs(c, connection_id, limit))
            .await
    }

    async fn commit_page(&self, batch: PageBatch<'_>) -> Result<PageOutcome, StoreError> {
        let page = records::OwnedPage::from(batch);
        self.run(move |c| records::commit_page(c, &page)).await
    }

    async fn tombstone_missing(&self, batch: TombstoneBatch<'_>) -> Result<u64, StoreError> {
        let t = records::OwnedTombstones::from(batch);
        self.run(move |c| records::tombstone_missing(c, &t)).await
    }

    async fn stage_ids(&self, token: &str, ids: &[String]) -> Result<(), StoreError> {
        let (token, ids) = (token.to_string(), ids.to_vec());
        self.run(move |c| reconcile::stage_ids(c, &token, &ids))
            .await
    }

    async fn drop_staged(&self, token: &str) -> Result<(), StoreError> {
        let token = token.to_string();
        self.run(move |c| reconcile::drop_staged(c, &token)).await
    }

    async fn apply_reconcile(
        &self,
        batch: ReconcileBatch<'_>,
    ) -> Result<ReconcileOutcome, StoreError> {
        let b = reconcile::OwnedReconcile::from(batch);
        self.run(move |c| reconcile::apply_reconcile(c, &b)).await
    }

    async fn import_snapshot(
        &self,
        batch: SnapshotBatch<'_>,
        source: Box<dyn SnapshotSource>,
    ) -> Result<(PageOutcome, ReconcileOutcome), StoreError> {
        let b = reconcile::OwnedImport::from(batch);
        let rt = tokio::runtime::Handle::current();
        self.run(move |c| reconcile::import_snapshot(c, &b, source, &rt))
            .await
    }

    async fn purge_tombstones(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        let spec = *stream;
        self.run(move |c| reconcile::purge(c, connection_id, &spec, before))
            .await
    }

    async fn stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
    ) -> Result<Option<String>, StoreError> {
        let stream = stream.to_string();
        self.run(move |c| reconcile::stream_validator(c, connection_id, &stream))
            .await
    }

    async fn put_stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
        validator: Option<&str>,
    ) -> Result<(), StoreError> {
        let (stream, v) = (stream.to_string(), validator.map(str::to_string));
        self.run(move |c| reconcile::put_stream_validator(c, connection_id, &stream, v.as_deref()))
            .await
    }

    async fn refresh_derived_all(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        at: Timestamp,
    ) -> Result<(u64, u64), StoreError> {
        let spec = *stream;
        self.run(move |c| records::refresh_derived_all(c, connection_id, &spec, at))
            .await
    }

    async fn count_live(&self, connection_id: i64, stream: &StreamSpec) -> Result<u64, StoreError> {
        let spec = *stream;
        self.run(move |c| records::count_live(c, connection_id, &spec))
            .await
    }

    async fn ensure_table(&self, stream: &StreamSpec) -> Result<(), StoreError> {
        let spec = *stream;
        self.run(move |c| records::ensure_table(c, &spec)).await
    }

    async fn count_derived(&self, connection_id: i64, table: &str) -> Result<u64, StoreError> {
        let table = table.to_string();
        self.run(move |c| records::count_derived(c, connection_id, &table))
            .await
    }

    async fn parent_markers(
        &self,
        connection_id: i64,
        parent_stream: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let (stream, ids) = (parent_stream.to_string(), ids.to_vec());
        self.run(move |c| family::parent_markers(c, connection_id, &stream, &ids))
            .await
    }

    async fn commit_family(&self, batch: FamilyBatch<'_>) -> Result<FamilyOutcome, StoreError> {
        let f = family::OwnedFamily::from(batch);
        self.run(move |c| family::commit_family(c, &f)).await
    }

    async fn export_derived_page(
        &self,
        connection_id: i64,
        derived: &DerivedSpec,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DerivedRow>, StoreError> {
        let (der, after) = (*derived, after.map(str::to_string));
        self.run(move |c| {
            records::export_derived_page(c, connection_id, &der, after.as_deref(), limit)
        })
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
            spec: *stream,
            after: after.map(str::to_string),
            limit,
            include_deleted,
        };
        self.run(move |c| records::export_page(c, &q)).await
    }
    async fn add_attachments(
        &self,
        connection_id: i64,
        stream: &str,
        links: &[inlet_core::AttachmentLink],
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        if links.is_empty() {
            return Ok(0);
        }
        let (stream, links) = (stream.to_string(), links.to_vec());
        self.run(move |c| attachments::add(c, connection_id, &stream, &links, at))
            .await
    }

    async fn list_attachments(
        &self,
        connection_id: Option<i64>,
        status: Option<inlet_core::AttachmentStatus>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<inlet_core::Attachment>, StoreError> {
        self.run(move |c| attachments::list(c, connection_id, status, after, limit))
            .await
    }

    async fn update_attachment(
        &self,
        id: i64,
        update: &inlet_core::AttachmentUpdate,
    ) -> Result<(), StoreError> {
        let u = update.clone();
        self.run(move |c| attachments::update(c, id, &u)).await
    }

    async fn count_attachments(
        &self,
        connection_id: Option<i64>,
    ) -> Result<BTreeMap<inlet_core::AttachmentStatus, u64>, StoreError> {
        self.run(move |c| attachments::count(c, connection_id))
            .await
    }

    async fn delete_connection(&self, id: i64, tables: &[&str]) -> Result<(), StoreError> {
        let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        self.run(move |c| serve::delete_connection(c, id, &tables))
            .await
    }

    async fn get_run(&self, run_id: i64) -> Result<Option<Run>, StoreError> {
        self.run(move |c| serve::get_run(c, run_id)).await
    }

    async fn try_acquire_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let holder = holder.to_string();
        self.run(move |c| serve::try_acquire_lease(c, connection_id, &holder, at, ttl_ms))
            .await
    }

    async fn renew_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let holder = holder.to_string();
        self.run(move |c| serve::renew_lease(c, connection_id, &holder, at, ttl_ms))
            .await
    }

    async fn release_lease(&self, connection_id: i64, holder: &str) -> Result<(), StoreError> {
        let holder = holder.to_string();
        self.run(move |c| serve::release_lease(c, connection_id, &holder))
            .await
    }

    async fn get_lease(&self, connection_id: i64) -> Result<Option<Lease>, StoreError> {
        self.run(move |c| serve::get_lease(c, connection_id)).await
    }

    async fn create_api_key(
        &self,
        name: &str,
        prefix: &str,
        hash: &str,
        at: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        let (name, prefix, hash) = (name.to_string(), prefix.to_string(), hash.to_string());
        self.run(move |c| serve::create_api_key(c, &name, &prefix, &hash, at))
            .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.run(serve::list_api_keys).await
    }

    async fn revoke_api_key(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        self.run(move |c| serve::revoke_api_key(c, id, at)).await
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = hash.to_string();
        self.run(move |c| serve::find_api_key(c, &hash)).await
    }
}
