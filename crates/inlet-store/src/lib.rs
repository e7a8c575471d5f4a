//! inlet-store: inlet's [`Store`] port on SQL databases.
//!
//! [`SqlStore`] implements every role of the port once, over a small backend trait (see
//! the `db` module): the logic is shared, and each backend supplies only connections,
//! transactions, argument binding, its SQL dialect and the bulk write of a page.
//!
//! * [`SqliteStore`] — the default, embedded backend: one SQLite file (WAL mode), used by
//!   the CLI and by a single `inlet serve` process. rusqlite runs on tokio's blocking
//!   pool behind one mutex-guarded connection; a page is written with cached prepared
//!   statements inside one `BEGIN IMMEDIATE` transaction.
//! * [`PgStore`] — PostgreSQL for many processes or machines sharing one database. Each
//!   page is written with one `INSERT ... SELECT FROM UNNEST(...)` and one
//!   `UPDATE ... FROM UNNEST(...)` statement of column arrays, inside one transaction.
//!
//! Both apply the same versioned migrations at open (embedded SQL under `migrations/`,
//! recorded with a checksum in `schema_migrations`) and pass the same contract suite
//! (`tests/contract.rs`). [`open`] picks the backend from a URL:
//!
//! ```no_run
//! # async fn demo() -> Result<(), inlet_core::StoreError> {
//! let store = inlet_store::open("sqlite://inlet.db").await?;
//! assert_eq!(store.backend(), "sqlite");
//! let pg = inlet_store::open("postgres://postgres@127.0.0.1:5432/inlet").await?;
//! assert_eq!(pg.backend(), "postgres");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod blobs;
mod codec;
mod db;
mod error;
mod family_sql;
mod migrate;
mod pg;
mod reconcile_sql;
mod schema;
mod sql;
mod sqlite;
mod target;

pub use blobs::FsBlobStore;
pub use db::SqlStore;
pub use inlet_core::{Store, StoreError};
pub use migrate::{Migration, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
pub use pg::PgStore;
pub use sqlite::SqliteStore;
pub use target::{Target as DatabaseTarget, parse as parse_database_url, redact_url};

use std::sync::Arc;
use target::Target;

/// Open the store a URL names for reading only: a SQLite file is opened read-only (see
/// [`SqliteStore::open_read_only`]: nothing created, no migration applied); PostgreSQL is
/// opened as by [`open`].
pub async fn open_read_only(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match target::parse(url)? {
        Target::Postgres(url) => Ok(Arc::new(SqlStore::from(PgStore::connect(&url).await?))),
        Target::Sqlite(path) => {
            let store = tokio::task::spawn_blocking(move || SqliteStore::open_read_only(&path))
                .await
                .map_err(error::join)??;
            Ok(Arc::new(SqlStore::from(store)))
        }
    }
}

/// Open the store a URL names: `postgres://` or `postgresql://` → [`PgStore`];
/// `sqlite://PATH`, `sqlite:PATH` or a plain file path → [`SqliteStore`]. Any other
/// scheme is an error, and nothing is created on disk for it.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match target::parse(url)? {
        Target::Postgres(url) => Ok(Arc::new(SqlStore::from(PgStore::connect(&url).await?))),
        Target::Sqlite(path) => {
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(error::join)??;
            Ok(Arc::new(SqlStore::from(store)))
        }
    }
}
