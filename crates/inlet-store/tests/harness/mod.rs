//! Fresh databases for the contract suite, and raw access to them for checks the Store
//! API does not offer (schema, derived rows, tampering).

/// Runs `async fn $name(db: Db)` as two tests, one per backend.
macro_rules! store_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::harness::with_sqlite(super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::harness::with_pg(super::$name).await
            }
        }
    };
}

use inlet_core::{Store, StoreError, Timestamp};
use std::future::Future;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_postgres::NoTls;

pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Every stream of the built-in providers: what the CLI and server pass to
/// `Store::ensure_tables` when they open a store.
pub fn builtin_specs() -> Vec<inlet_core::StreamSpec> {
    use inlet_connectors::{ebay, github, reddit, tiktok};
    reddit::streams::STREAMS
        .iter()
        .chain(&github::streams::STREAMS)
        .chain(&ebay::streams::STREAMS)
        .chain(&tiktok::STREAMS)
        .copied()
        .collect()
}

/// Open the store at `url` as the CLI and server do: migrations, then the built-in
/// providers' tables.
pub async fn open_with_tables(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store = inlet_store::open(url).await?;
    store.ensure_tables(&builtin_specs()).await?;
    Ok(store)
}

/// A fresh store plus raw access to its database.
pub struct Db {
    pub store: Arc<dyn Store>,
    url: String,
    sqlite: Option<PathBuf>,
}

/// A row of `reddit_conversations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub subject: Option<String>,
    pub first_author: Option<String>,
    pub last_author: Option<String>,
    pub message_count: i64,
    pub unread_count: i64,
    pub first: Timestamp,
    pub last: Timestamp,
    pub updated_at: Timestamp,
}

impl Db {
    pub fn is_pg(&self) -> bool {
        self.sqlite.is_none()
    }

    /// Open the same database again (runs the migration check).
    pub async fn reopen(&self) -> Result<Arc<dyn Store>, StoreError> {
        inlet_store::open(&self.url).await
    }

    fn sqlite_conn(&self, path: &PathBuf) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).expect("open sqlite");
        c.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy timeout");
        c
    }

    async fn pg_client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connect pg");
        tokio::spawn(conn);
        client
    }

    /// Run raw SQL.
    pub async fn exec(&self, sql: &str) {
        match &self.sqlite {
            Some(p) => {
                self.sqlite_conn(p).execute_batch(sql).expect("exec");
            }
            None => self
                .pg_client()
                .await
                .batch_execute(sql)
                .await
                .expect("exec"),
        }
    }

    /// (name, declared type) of a table's columns, in order.
    pub async fn columns(&self, table: &str) -> Vec<(String, String)> {
        match &self.sqlite {
            Some(p) => {
                let c = self.sqlite_conn(p);
                let mut st = c
                    .prepare("SELECT name, type FROM pragma_table_info(?1)")
                    .expect("prepare");
                let rows = st
                    .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
                    .expect("query");
                rows.collect::<Result<_, _>>().expect("rows")
            }
            None => {
                let sql = "SELECT column_name::text, data_type::text FROM information_schema.columns \
                           WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position";
                let rows = self
                    .pg_client()
                    .await
                    .query(sql, &[&table])
                    .await
                    .expect("query");
                rows.iter().map(|r| (r.get(0), r.get(1))).collect()
            }
        }
    }

    /// The derived conversation row, if any.
    pub async fn conversation(&self, conn: i64, id: &str) -> Option<Conv> {
        match &self.sqlite {
            Some(p) => {
                let c = self.sqlite_conn(p);
                let sql = "SELECT subject, first_author, last_author, message_count, unread_count, \
                           first_message_utc, last_message_utc, updated_at FROM reddit_conversations \
                           WHERE connection_id = ?1 AND id = ?2";
                let ts = |s: String| Timestamp::parse_rfc3339(&s).expect("rfc 3339");
                let mut st = c.prepare(sql).expect("prepare");
                let mut rows = st.query(rusqlite::params![conn, id]).expect("query");
                let r = rows.next().expect("row")?;
                Some(Conv {
                    subject: r.get(0).expect("col"),
                    first_author: r.get(1).expect("col"),
                    last_author: r.get(2).expect("col"),
                    message_count: r.get(3).expect("col"),
                    unread_count: r.get(4).expect("col"),
                    first: ts(r.get(5).expect("col")),
                    last: ts(r.get(6).expect("col")),
                    updated_at: ts(r.get(7).expect("col")),
                })
            }
            None => {
                let ms = |c: &str| format!("(EXTRACT(EPOCH FROM {c}) * 1000)::bigint");
                let sql = format!(
                    "SELECT subject, first_author, last_author, message_count, unread_count, {}, {}, {} \
                     FROM reddit_conversations WHERE connection_id = $1 AND id = $2",
                    ms("first_message_utc"),
                    ms("last_message_utc"),
                    ms("updated_at")
                );
                let row = self
                    .pg_client()
                    .await
                    .query_opt(&sql, &[&conn, &id])
                    .await
                    .expect("query")?;
                Some(Conv {
                    subject: row.get(0),
                    first_author: row.get(1),
                    last_author: row.get(2),
                    message_count: row.get(3),
                    unread_count: row.get(4),
                    first: Timestamp(row.get(5)),
                    last: Timestamp(row.get(6)),
                    updated_at: Timestamp(row.get(7)),
                })
            }
        }
    }
}

/// Run `test` in its own task so a panic comes back here (for cleanup) and is re-raised.
async fn run_isolated<F, Fut>(db: Db, test: F) -> Result<(), Box<dyn std::any::Any + Send>>
where
    F: FnOnce(Db) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    match tokio::spawn(test(db)).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_panic() => Err(e.into_panic()),
        Err(e) => Err(Box::new(e.to_string())),
    }
}

/// Run `test` on a fresh SQLite file.
pub async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("inlet.db");
    let url = format!("sqlite://{}", path.display());
    let store = open_with_tables(&url).await.expect("open sqlite store");
    assert_eq!(store.backend(), "sqlite");
    if let Err(panic) = run_isolated(
        Db {
            store,
            url,
            sqlite: Some(path),
        },
        test,
    )
    .await
    {
        std::panic::resume_unwind(panic);
    }
}

pub fn random_hex() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let seed = (
        std::process::id(),
        std::time::SystemTime::now(),
        N.fetch_add(1, Ordering::Relaxed),
    );
    format!(
        "{:016x}",
        std::collections::hash_map::RandomState::new().hash_one(seed)
    )
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("postgres URL has ://");
    let (before_query, query) = rest
        .split_once('?')
        .map_or((rest, None), |(a, b)| (a, Some(b)));
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(a, _)| a);
    let query = query.map_or(String::new(), |q| format!("?{q}"));
    format!("{scheme}://{authority}/{name}{query}")
}

/// Run `test` on a fresh PostgreSQL database, dropped afterwards (also on failure).
pub async fn with_pg<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin = std::env::var("INLET_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
    let (client, conn) = tokio_postgres::connect(&admin, NoTls).await.unwrap_or_else(|e| {
        panic!(
            "\n\n*** PostgreSQL is NOT reachable at {}: {e}\n*** The store contract suite runs every test on \
             PostgreSQL too; start it (127.0.0.1:5432, user postgres, trust auth) or set INLET_TEST_PG_URL.\n",
            inlet_store::redact_url(&admin)
        )
    });
    tokio::spawn(conn);
    let name = format!("inlet_t_{}", random_hex());
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("CREATE DATABASE");
    let url = with_database(&admin, &name);
    let result = match open_with_tables(&url).await {
        Ok(store) => {
            assert_eq!(store.backend(), "postgres");
            run_isolated(
                Db {
                    store,
                    url,
                    sqlite: None,
                },
                test,
            )
            .await
        }
        Err(e) => Err(Box::new(format!("open {name}: {e}")) as Box<dyn std::any::Any + Send>),
    };
    let drop = client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    drop.expect("DROP DATABASE");
}
