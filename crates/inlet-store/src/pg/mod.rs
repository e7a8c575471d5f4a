//! The PostgreSQL backend: one client connection behind an async mutex, a cache of
//! prepared statements, bulk page writes through `UNNEST` of column arrays (see
//! [`bulk`]). Everything else is the shared store in [`crate::db`].

mod bulk;
mod types;

use crate::db::{Arg, Backend, Row, RowWrite, Session};
use crate::error::{pg as db_err, pg_is_unique};
use crate::migrate::{self, Applied, POSTGRES_MIGRATIONS};
use crate::sql::Dialect;
use crate::target::redact_url;
use async_trait::async_trait;
use inlet_core::StoreError;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, GenericClient, NoTls, Statement};

/// Key of the advisory lock that serializes migrations across processes.
const MIGRATION_LOCK: i64 = 0x696e_6c65_745f_6d69;

/// How long a lost connection is retried by default (`INLET_DATABASE_RECONNECT_SECS`).
pub const DEFAULT_RECONNECT_SECS: u64 = 60;

/// The PostgreSQL backend of [`SqlStore`], for many processes or machines sharing one
/// database. [`crate::open`] gives the store; `SqlStore::from(PgStore::connect(url)?)`
/// the same with settings of its own ([`PgStore::with_reconnect_for`]).
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
    /// A transaction is open: one a dropped session left is rolled back before the
    /// connection is used again.
    in_tx: bool,
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
                in_tx: false,
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
            g.in_tx = false;
        }
        if g.in_tx {
            g.client.batch_execute("ROLLBACK").await.map_err(db_err)?;
            g.in_tx = false;
        }
        Ok(g)
    }

    /// Wait before the next attempt of an operation whose connection was lost: full
    /// jitter over an exponential step (0.2 s doubling, at most 5 s), never past the
    /// reconnect window. `false` when the window is spent.
    async fn retry_wait(&self, started: Instant, attempt: u32, why: &StoreError) -> bool {
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
impl Backend for PgStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn session(&self) -> Result<Box<dyn Session + '_>, StoreError> {
        Ok(Box::new(PgSession {
            g: self.lock().await?,
        }))
    }

    async fn backoff(&self, started: Instant, attempt: u32, why: &StoreError) -> bool {
        self.retry_wait(started, attempt, why).await
    }
}

/// A session: the locked client.
struct PgSession<'a> {
    g: MutexGuard<'a, Inner>,
}

impl PgSession<'_> {
    /// The prepared statement of `sql` (cached per connection).
    async fn prepare(&mut self, sql: &str) -> Result<Statement, StoreError> {
        let Inner { client, cache, .. } = &mut *self.g;
        cache.get(&*client, sql).await
    }

    async fn run_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.g.client.batch_execute(sql).await.map_err(db_err)
    }
}

/// The arguments as driver parameters.
fn params<'a>(args: &'a [Arg<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

#[async_trait]
impl Session for PgSession<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        let st = self.prepare(sql).await?;
        let rows = self
            .g
            .client
            .query(&st, &params(args))
            .await
            .map_err(db_err)?;
        rows.iter().map(types::row).collect()
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let st = self.prepare(sql).await?;
        self.g
            .client
            .execute(&st, &params(args))
            .await
            .map_err(db_err)
    }

    async fn query_unique(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<Vec<Row>>, StoreError> {
        let st = self.prepare(sql).await?;
        match self.g.client.query(&st, &params(args)).await {
            Ok(rows) => rows
                .iter()
                .map(types::row)
                .collect::<Result<_, _>>()
                .map(Some),
            Err(e) if pg_is_unique(&e) => Ok(None),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.run_batch(sql).await
    }

    async fn begin(&mut self) -> Result<(), StoreError> {
        self.run_batch("BEGIN").await?;
        self.g.in_tx = true;
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        self.run_batch("COMMIT").await?;
        self.g.in_tx = false;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), StoreError> {
        self.run_batch("ROLLBACK").await?;
        self.g.in_tx = false;
        Ok(())
    }

    async fn write_rows(&mut self, w: RowWrite<'_>) -> Result<(), StoreError> {
        let sql = if w.update {
            crate::sql::pg_update(w.spec)
        } else {
            crate::sql::pg_insert(w.spec)
        };
        let st = self.prepare(&sql).await?;
        bulk::write_rows(&self.g.client, &st, &w).await
    }
}
