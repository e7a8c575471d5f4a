//! The Store port: where data goes.
//!
//! Contract (checked by the shared suite in `inlet-store/tests`, run on every backend):
//! * [`Store::commit_page`] writes a page's records, the derived rows they touch and the
//!   stream's sync state (its checkpoint) in ONE transaction.
//! * Upserts are idempotent on (connection, table, id); a record whose content hash is
//!   unchanged is not rewritten; a tombstoned record that comes back is revived.
//! * Timestamps are [`Timestamp`]s; text is UTF-8; nothing is lost in a round trip.

use crate::{
    ApiKey, Connection, ConnectionStatus, ContentHash, Lease, NewConnection, Record, Run, RunMode,
    RunStats, RunStatus, StreamSpec, StreamStats, SyncState, Timestamp, Trigger, Value,
};
use std::collections::BTreeMap;

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot open database: {0}")]
    Unavailable(String),
    /// A connection with that name exists already.
    #[error("a connection named {0:?} already exists")]
    DuplicateConnection(String),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The database schema is newer than this binary or was changed by hand.
    #[error("schema mismatch: {0}")]
    Schema(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Db(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// One page to commit.
#[derive(Debug)]
pub struct PageBatch<'a> {
    /// The connection.
    pub connection_id: i64,
    /// The stream the records belong to.
    pub stream: &'a StreamSpec,
    /// The records (one or more pages), handed over so a backend can move them to its
    /// writer without copying.
    pub records: Vec<Record>,
    /// The stream's sync state after this page (carries the checkpoint).
    pub state: &'a SyncState,
    /// Refresh the derived rows the records touch in this transaction. A full pass turns
    /// this off and calls [`Store::refresh_derived_all`] once at its end instead.
    pub refresh_derived: bool,
    /// Commit time: `first_seen_at` / `updated_at` of written rows.
    pub at: Timestamp,
}

/// What a page commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageOutcome {
    /// New records.
    pub inserted: u64,
    /// Changed or revived records.
    pub updated: u64,
    /// Records with an unchanged hash (not written).
    pub unchanged: u64,
    /// Derived rows created.
    pub derived_inserted: u64,
    /// Derived rows changed.
    pub derived_updated: u64,
}

impl PageOutcome {
    /// Records that were stored before this page.
    pub fn known(&self) -> u64 {
        self.updated + self.unchanged
    }
}

/// Tombstones for a stream whose complete listing was just read.
#[derive(Debug)]
pub struct TombstoneBatch<'a> {
    /// The connection.
    pub connection_id: i64,
    /// The stream.
    pub stream: &'a StreamSpec,
    /// Every id the complete listing returned.
    pub seen: &'a [String],
    /// The stream's sync state to write in the same transaction.
    pub state: &'a SyncState,
    /// Tombstone time.
    pub at: Timestamp,
}

/// A stored record, for export.
#[derive(Debug, Clone)]
pub struct ExportRow {
    /// Id.
    pub id: String,
    /// Typed columns, in stream order.
    pub values: Vec<Value>,
    /// Raw provider JSON.
    pub raw: String,
    /// Content hash.
    pub content_hash: ContentHash,
    /// First stored.
    pub first_seen_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Tombstone.
    pub deleted_at: Option<Timestamp>,
}

/// Where inlet keeps records, connections, sync state and runs.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// A human description of where the data is (a file path or a redacted URL).
    fn location(&self) -> String;

    /// Create a connection (status active).
    async fn create_connection(
        &self,
        new: &NewConnection,
        at: Timestamp,
    ) -> Result<Connection, StoreError>;
    /// Find a connection by name, or by id when `key` is a number.
    async fn get_connection(&self, key: &str) -> Result<Option<Connection>, StoreError>;
    /// All connections, by id.
    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError>;
    /// Change a connection's status.
    async fn set_connection_status(
        &self,
        id: i64,
        status: ConnectionStatus,
        detail: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Replace a connection's sealed credentials.
    async fn set_credentials(
        &self,
        id: i64,
        sealed: &[u8],
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// The sync state of a stream (the default when it never synced).
    async fn sync_state(&self, connection_id: i64, stream: &str) -> Result<SyncState, StoreError>;
    /// Every stream's sync state of a connection.
    async fn sync_states(
        &self,
        connection_id: i64,
    ) -> Result<BTreeMap<String, SyncState>, StoreError>;
    /// Write a stream's sync state on its own (e.g. when a pass starts).
    async fn put_sync_state(
        &self,
        connection_id: i64,
        stream: &str,
        state: &SyncState,
    ) -> Result<(), StoreError>;

    /// Record the start of a run; returns its id.
    async fn start_run(
        &self,
        connection_id: i64,
        mode: RunMode,
        trigger: Trigger,
        at: Timestamp,
    ) -> Result<i64, StoreError>;
    /// Save a run's progress or outcome (status, totals, per-stream stats, error, finish).
    #[allow(clippy::too_many_arguments)]
    async fn update_run(
        &self,
        run_id: i64,
        status: RunStatus,
        stats: &RunStats,
        streams: &BTreeMap<String, StreamStats>,
        error: Option<&str>,
        finished_at: Option<Timestamp>,
    ) -> Result<(), StoreError>;
    /// Runs, newest first, optionally of one connection.
    async fn list_runs(
        &self,
        connection_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Run>, StoreError>;

    /// Commit one page: records, derived rows, sync state, in one transaction.
    async fn commit_page(&self, batch: PageBatch<'_>) -> Result<PageOutcome, StoreError>;
    /// Tombstone the stream's live rows (within its scope) whose ids are not in `seen`,
    /// refresh the derived rows they belong to, and write the sync state: one transaction.
    /// Returns how many rows were tombstoned.
    async fn tombstone_missing(&self, batch: TombstoneBatch<'_>) -> Result<u64, StoreError>;
    /// Recompute every derived row of the stream's derived table for this connection from
    /// the live source rows, and delete derived rows that have none left: one
    /// transaction, walking the keys in order. Returns (inserted, updated).
    async fn refresh_derived_all(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        at: Timestamp,
    ) -> Result<(u64, u64), StoreError>;
    /// Live (not tombstoned) rows of a stream within its scope.
    async fn count_live(&self, connection_id: i64, stream: &StreamSpec) -> Result<u64, StoreError>;
    /// Live rows of a derived table.
    async fn count_derived(&self, connection_id: i64, table: &str) -> Result<u64, StoreError>;
    /// Up to `limit` rows of a stream (within its scope) with ids greater than `after`,
    /// ordered by id: keyset pages for streaming exports.
    async fn export_page(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        after: Option<&str>,
        limit: u32,
        include_deleted: bool,
    ) -> Result<Vec<ExportRow>, StoreError>;

    // --- `inlet serve`: connection deletion, run lookup, sync leases, API keys. ---

    /// Delete a connection with everything stored for it: its rows in `tables` (the
    /// record and derived tables of its provider), sync state, runs and lease. One
    /// transaction. [`StoreError::NotFound`] when there is no such connection.
    async fn delete_connection(&self, id: i64, tables: &[&str]) -> Result<(), StoreError>;
    /// One run by id.
    async fn get_run(&self, run_id: i64) -> Result<Option<Run>, StoreError>;
    /// Take the connection's sync lease for `holder` until `at + ttl_ms`: succeeds when
    /// nobody holds it, when the current lease expired (a crashed holder), or when
    /// `holder` holds it already. Returns whether `holder` now holds it.
    async fn try_acquire_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Extend `holder`'s lease to `at + ttl_ms`; false when it no longer holds it.
    async fn renew_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Give the lease up (nothing happens when `holder` does not hold it).
    async fn release_lease(&self, connection_id: i64, holder: &str) -> Result<(), StoreError>;
    /// The connection's lease row, expired or not.
    async fn get_lease(&self, connection_id: i64) -> Result<Option<Lease>, StoreError>;
    /// Store a new API key by its hash.
    async fn create_api_key(
        &self,
        name: &str,
        prefix: &str,
        hash: &str,
        at: Timestamp,
    ) -> Result<ApiKey, StoreError>;
    /// Every API key (revoked ones too), by id.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Revoke a key; [`StoreError::NotFound`] when no live key has that id.
    async fn revoke_api_key(&self, id: i64, at: Timestamp) -> Result<(), StoreError>;
    /// The live (not revoked) key with this hash.
    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;
}
