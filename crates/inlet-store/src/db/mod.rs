//! The store written once: every role of the [`inlet_core::Store`] port (state, records,
//! runs, leases, keys, attachments) implemented by [`SqlStore`] over a small backend
//! trait. A backend ([`crate::PgStore`], [`crate::SqliteStore`]) supplies only what
//! differs: connecting, transactions, binding [`Arg`]s and decoding [`Row`]s, its SQL
//! [`Dialect`], and the bulk write of a page's rows.
//!
//! The logic here — classifying a page by content hash, the reconcile diff and its
//! safety valve, family commits, runs, leases, keys, attachments — is the same for both
//! databases; SQL that differs between them is generated per dialect in [`crate::sql`],
//! [`crate::family_sql`] and [`crate::reconcile_sql`].

mod arg;
mod attachments;
mod family;
mod meta;
mod reconcile;
mod records;
mod runs;
mod serve;
mod workspaces;

pub(crate) use arg::{Arg, Cell, Row, args, first};

use crate::schema;
use crate::sql::Dialect;
use async_trait::async_trait;
use inlet_core::{Record, StoreError, StreamSpec, Timestamp};
use std::collections::HashSet;
use std::time::Instant;

/// One connection to the database, held for one operation (one transaction at most).
/// A session dropped inside a transaction leaves it to be rolled back by the next
/// session; the shared code rolls back itself on every error it returns.
#[async_trait]
pub(crate) trait Session: Send {
    /// The SQL dialect of this backend.
    fn dialect(&self) -> Dialect;

    /// Run a statement that returns rows. Placeholders are `$1`, `$2`, ... on both
    /// backends.
    async fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError>;

    /// Run a statement; the number of rows it changed.
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError>;

    /// As [`Session::query`], but a unique-constraint violation is `Ok(None)`.
    async fn query_unique(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<Vec<Row>>, StoreError>;

    /// Run statements without arguments (DDL), several separated by `;`.
    async fn batch(&mut self, sql: &str) -> Result<(), StoreError>;

    /// Begin a transaction that will write (SQLite: `BEGIN IMMEDIATE`).
    async fn begin(&mut self) -> Result<(), StoreError>;

    /// Commit the transaction.
    async fn commit(&mut self) -> Result<(), StoreError>;

    /// Roll the transaction back.
    async fn rollback(&mut self) -> Result<(), StoreError>;

    /// Write rows of a record table in bulk (see [`RowWrite`]).
    async fn write_rows(&mut self, w: RowWrite<'_>) -> Result<(), StoreError>;
}

/// A bulk write of a page's rows: inserts (`update` false) or rewrites (`update` true).
/// Per row the connection, id, typed columns, raw JSON, content hash and `at`
/// (`first_seen_at` of an insert, `updated_at` of both). Inserts of ids another writer
/// inserted meanwhile follow [`crate::sql`]'s conflict clause.
pub(crate) struct RowWrite<'a> {
    /// The stream whose table is written.
    pub spec: &'a StreamSpec,
    /// The connection the rows belong to.
    pub conn: i64,
    /// The rows and their content hashes.
    pub rows: &'a [(&'a Record, [u8; 16])],
    /// The time written.
    pub at: Timestamp,
    /// Rewrite existing rows instead of inserting new ones.
    pub update: bool,
}

/// A database a [`SqlStore`] runs on.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn name(&self) -> &'static str;

    /// Where the database is, for messages (passwords redacted).
    fn location(&self) -> String;

    /// Opened read-only: tables are checked, never made.
    fn read_only(&self) -> bool {
        false
    }

    /// A session on the database (waiting for the connection when it is busy).
    async fn session(&self) -> Result<Box<dyn Session + '_>, StoreError>;

    /// Wait before retrying an operation whose connection was lost (attempt `attempt`,
    /// begun at `started`); `false` when it should fail instead.
    async fn backoff(&self, started: Instant, attempt: u32, why: &StoreError) -> bool;
}

/// Run `$op` (an expression over the session `$s`) in a fresh session; when the
/// connection is lost, again in a new one, with the backend's backoff. Only for
/// operations that are safe to repeat: each is one transaction, and one whose COMMIT went
/// through before the connection broke must do no harm done twice.
macro_rules! retrying {
    ($db:expr, |$s:ident| $op:expr) => {{
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            let result = match $db.backend.session().await {
                Ok(mut session) => {
                    let $s: &mut dyn $crate::db::Session = &mut *session;
                    $op.await
                }
                Err(e) => Err(e),
            };
            match result {
                Err(e @ inlet_core::StoreError::ConnectionLost(_)) => {
                    if !$db.backend.backoff(started, attempt, &e).await {
                        break Err(e);
                    }
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use retrying;

/// Run `$op` once in a fresh session (an operation not safe to repeat).
macro_rules! once {
    ($db:expr, |$s:ident| $op:expr) => {{
        let mut session = $db.backend.session().await?;
        let $s: &mut dyn $crate::db::Session = &mut *session;
        $op.await
    }};
}
pub(crate) use once;

/// Run the block in a transaction of session `$s`: committed when it returns `Ok`,
/// rolled back when it returns `Err` (by `?` or otherwise).
macro_rules! transaction {
    ($s:ident, $body:block) => {{
        $s.begin().await?;
        let result: Result<_, inlet_core::StoreError> = async { $body }.await;
        match result {
            Ok(v) => {
                $s.commit().await?;
                Ok(v)
            }
            Err(e) => {
                // The transaction is gone with a lost connection; nothing to undo then.
                let _ = $s.rollback().await;
                Err(e)
            }
        }
    }};
}
pub(crate) use transaction;

/// inlet's store on a SQL database: SQLite ([`SqlStore::from`] a [`crate::SqliteStore`])
/// or PostgreSQL (from a [`crate::PgStore`]). [`crate::open`] makes one from a URL.
pub struct SqlStore {
    backend: Box<dyn Backend>,
    /// Record tables made or checked by this store (see [`crate::schema`]).
    ensured: std::sync::Mutex<HashSet<String>>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend.name())
            .field("location", &self.backend.location())
            .finish()
    }
}

impl From<crate::PgStore> for SqlStore {
    fn from(pg: crate::PgStore) -> SqlStore {
        SqlStore::new(Box::new(pg))
    }
}

impl From<crate::SqliteStore> for SqlStore {
    fn from(file: crate::SqliteStore) -> SqlStore {
        SqlStore::new(Box::new(file))
    }
}

impl SqlStore {
    fn new(backend: Box<dyn Backend>) -> SqlStore {
        SqlStore {
            backend,
            ensured: std::sync::Mutex::default(),
        }
    }

    fn ensured(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.ensured
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Make the tables of `streams` that this store has not made or checked yet (see
    /// [`crate::schema`]). `false` when a read-only store lacks one of them.
    pub(crate) async fn ensure(&self, streams: &[StreamSpec]) -> Result<bool, StoreError> {
        let create = !self.backend.read_only();
        let mut all = true;
        for spec in streams {
            if self.ensured().contains(&schema::signature(spec)) {
                continue;
            }
            if retrying!(self, |s| ensure_tables(s, spec, create))? {
                self.ensured().insert(schema::signature(spec));
            } else {
                all = false;
            }
        }
        Ok(all)
    }

    /// Whether `table` exists (a derived table read by name).
    pub(crate) async fn has_table(&self, table: &str) -> Result<bool, StoreError> {
        retrying!(self, |s| table_exists(s, table))
    }
}

/// Key of the PostgreSQL advisory lock that serializes making tables across processes:
/// two creating the same table at once would otherwise collide in the catalog.
const ENSURE_LOCK: i64 = 0x696e_6c65_745f_7462;

/// Make the tables of a stream that are missing (record table, derived table, their
/// indexes; see [`crate::schema`]) and check the columns of those that exist. With
/// `create` false (a read-only store) nothing is made: `false` when a table is missing.
async fn ensure_tables(
    s: &mut dyn Session,
    spec: &StreamSpec,
    create: bool,
) -> Result<bool, StoreError> {
    let d = s.dialect();
    let plan = schema::plan(d, spec).map_err(StoreError::Schema)?;
    if !create {
        for (table, _, cols) in &plan.tables {
            if !table_exists(s, table).await? {
                return Ok(false);
            }
            check_columns(s, spec, table, cols).await?;
        }
        return Ok(true);
    }
    transaction!(s, {
        if d == Dialect::Postgres {
            s.execute("SELECT pg_advisory_xact_lock($1)", args![ENSURE_LOCK])
                .await?;
        }
        for (table, create, cols) in &plan.tables {
            s.batch(create).await?;
            check_columns(s, spec, table, cols).await?;
        }
        for index in &plan.indexes {
            s.batch(index).await?;
        }
        Ok(true)
    })
}

async fn check_columns(
    s: &mut dyn Session,
    spec: &StreamSpec,
    table: &str,
    want: &[schema::Col],
) -> Result<(), StoreError> {
    let rows = s
        .query(schema::table_info(s.dialect()), args![table])
        .await?;
    let found = rows
        .iter()
        .map(|r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    schema::check_table(spec.name, table, want, &found).map_err(StoreError::Schema)
}

/// Whether `table` exists.
pub(crate) async fn table_exists(s: &mut dyn Session, table: &str) -> Result<bool, StoreError> {
    let rows = s
        .query(schema::table_exists(s.dialect()), args![table])
        .await?;
    Ok(!rows.is_empty())
}

/// `Err(NotFound(what))` when an UPDATE or DELETE changed no row.
pub(crate) fn changed_one(n: u64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if n == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}
