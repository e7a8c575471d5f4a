//! The SQLite backend: one file, WAL mode, one connection behind an async mutex. A
//! session's statements run with `block_in_place` on a multi-threaded runtime, binding
//! the caller's text without copies; a page's rows are written with cached multi-row
//! statements. Everything else is the shared store in [`crate::db`].

use crate::db::{Arg, Backend, Cell, Row, RowWrite, Session};
use crate::error::{sqlite as db_err, sqlite_is_unique};
use crate::migrate::{self, Applied, SQLITE_MIGRATIONS};
use crate::sql::{self, Dialect};
use async_trait::async_trait;
use inlet_core::{Record, StoreError};
use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, Value as Sv, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params_from_iter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The SQLite backend of [`SqlStore`]: the default, embedded database. [`crate::open`]
/// gives the store; `SqlStore::from(SqliteStore::open(path)?)` the same.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Opened read-only: tables are checked, never made.
    read_only: bool,
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
            read_only: false,
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
            read_only: true,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
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
impl Backend for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    async fn session(&self) -> Result<Box<dyn Session + '_>, StoreError> {
        let mut s = SqliteSession {
            conn: Arc::clone(&self.conn).lock_owned().await,
        };
        // A transaction a dropped session left open is rolled back first.
        s.blocking(|c| {
            if !c.is_autocommit() {
                c.execute_batch("ROLLBACK").map_err(db_err)?;
            }
            Ok(())
        })?;
        Ok(Box::new(s))
    }

    async fn backoff(&self, _: Instant, _: u32, _: &StoreError) -> bool {
        false // a file does not come back by waiting
    }
}

/// A session: the locked connection.
struct SqliteSession {
    conn: OwnedMutexGuard<Connection>,
}

impl SqliteSession {
    /// Run `f` on the connection: on a multi-threaded runtime through
    /// [`tokio::task::block_in_place`] (the worker hands its other tasks over while SQLite
    /// works), elsewhere (a test's current-thread runtime) in place. The statements bind
    /// the caller's text where it lies: no copy of a page to move it to another thread.
    fn blocking<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn: &mut Connection = &mut self.conn;
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| f(conn))
            }
            _ => f(conn),
        }
    }
}

fn read_rows(c: &mut Connection, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, rusqlite::Error> {
    let mut st = c.prepare_cached(&placeholders(sql))?;
    let n = st.column_count();
    let mut rows = st.query(params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            cells.push(match r.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(b) => Cell::Text(String::from_utf8(b.to_vec()).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?),
                ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
            });
        }
        out.push(Row(cells));
    }
    Ok(out)
}

/// `$1`, `$2`, ... (the shared SQL's placeholders) as SQLite's `?1`, `?2`, ...; text in
/// quotes is left as it is.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// An argument as a SQLite value: text and bytes borrowed, times as RFC 3339 text,
/// booleans 0/1, lists as JSON arrays for `json_each`.
impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Arg::Int(i) => ToSqlOutput::Owned(Sv::Integer(*i)),
            Arg::Real(f) => ToSqlOutput::Owned(Sv::Real(*f)),
            Arg::Bool(b) => ToSqlOutput::Owned(Sv::Integer(i64::from(*b))),
            Arg::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Arg::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Arg::Time(t) => ToSqlOutput::Owned(Sv::Text(t.to_string())),
            Arg::List(v) => ToSqlOutput::Owned(Sv::Text(
                serde_json::Value::Array(v.iter().map(|s| serde_json::Value::from(*s)).collect())
                    .to_string(),
            )),
        })
    }
}

#[async_trait]
impl Session for SqliteSession {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        self.blocking(|c| read_rows(c, sql, args).map_err(db_err))
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        self.blocking(|c| {
            let mut st = c.prepare_cached(&placeholders(sql)).map_err(db_err)?;
            let n = st.execute(params_from_iter(args.iter())).map_err(db_err)?;
            Ok(n as u64)
        })
    }

    async fn query_unique(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<Vec<Row>>, StoreError> {
        self.blocking(|c| match read_rows(c, sql, args) {
            Ok(rows) => Ok(Some(rows)),
            Err(e) if sqlite_is_unique(&e) => Ok(None),
            Err(e) => Err(db_err(e)),
        })
    }

    async fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.blocking(|c| c.execute_batch(sql).map_err(db_err))
    }

    async fn begin(&mut self) -> Result<(), StoreError> {
        self.batch("BEGIN IMMEDIATE").await
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        self.batch("COMMIT").await
    }

    async fn rollback(&mut self) -> Result<(), StoreError> {
        self.batch("ROLLBACK").await
    }

    /// Inserts go in multi-row statements of 64, 32, ... 1 rows (few distinct statements,
    /// all cached); updates one statement a row. Values are bound where they lie.
    async fn write_rows(&mut self, w: RowWrite<'_>) -> Result<(), StoreError> {
        let at = Arg::Time(w.at);
        let conn = Arg::Int(w.conn);
        self.blocking(|c| {
            let bind_row = |st: &mut rusqlite::Statement<'_>,
                            i: &mut usize,
                            r: &Record,
                            hash: &[u8; 16]|
             -> Result<(), StoreError> {
                let mut bind = |v: &dyn ToSql| {
                    st.raw_bind_parameter(*i, v).map_err(db_err)?;
                    *i += 1;
                    Ok::<(), StoreError>(())
                };
                bind(&conn)?;
                bind(&r.id)?;
                for v in &r.values {
                    bind(&Arg::from(v))?;
                }
                bind(&r.raw)?;
                bind(&hash.as_slice())?;
                bind(&at)
            };
            if w.update {
                let mut st = c
                    .prepare_cached(&sql::sqlite_update(w.spec))
                    .map_err(db_err)?;
                for (r, hash) in w.rows {
                    bind_row(&mut st, &mut 1, r, hash)?;
                    st.raw_execute().map_err(db_err)?;
                }
                return Ok(());
            }
            let mut rest = w.rows;
            while !rest.is_empty() {
                let n = [64, 32, 16, 8, 4, 2, 1]
                    .into_iter()
                    .find(|n| *n <= rest.len())
                    .unwrap_or(1);
                let (chunk, tail) = rest.split_at(n);
                let mut st = c
                    .prepare_cached(&sql::sqlite_insert(w.spec, n))
                    .map_err(db_err)?;
                let mut i = 1;
                for (r, hash) in chunk {
                    bind_row(&mut st, &mut i, r, hash)?;
                    // updated_at, after first_seen_at
                    st.raw_bind_parameter(i, &at).map_err(db_err)?;
                    i += 1;
                }
                st.raw_execute().map_err(db_err)?;
                rest = tail;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_become_sqlite_ones_outside_quotes() {
        assert_eq!(
            super::placeholders("SELECT $1, '$2', \"$3\", $10 WHERE x = 'it''s $4'"),
            "SELECT ?1, '$2', \"$3\", ?10 WHERE x = 'it''s $4'"
        );
    }
}
