//! The Store port: where data goes. It is six role traits ([`StateStore`],
//! [`RecordStore`], [`RunStore`], [`AttachmentStore`], [`LeaseStore`], [`KeyStore`]);
//! [`Store`] is all of them at once, the type callers hold (`Arc<dyn Store>`).
//!
//! Contract (checked by the shared suite in `inlet-store/tests`, run on every backend):
//! * [`RecordStore::commit_page`] writes a page's records, the derived rows they touch and the
//!   stream's sync state (its checkpoint) in ONE transaction.
//! * Upserts are idempotent on (connection, table, id); a record whose content hash is
//!   unchanged is not rewritten; a tombstoned record that comes back is revived.
//! * Timestamps are [`Timestamp`]s; text is UTF-8; nothing is lost in a round trip.

use crate::{
    ApiKey, Attachment, AttachmentLink, AttachmentStatus, AttachmentUpdate, Connection,
    ConnectionStatus, ContentHash, DerivedSpec, Lease, NewConnection, Record, Run, RunMode,
    RunStats, RunStatus, StreamSpec, StreamStats, SyncState, Timestamp, Trigger, Value, Workspace,
    WorkspaceStatus,
};
use std::collections::BTreeMap;

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot open database: {0}")]
    Unavailable(String),
    /// The connection to a database that was open broke (server restarted, backend
    /// terminated, network down) and could not be made again within the store's
    /// reconnect window.
    #[error("database connection lost: {0}")]
    ConnectionLost(String),
    /// A connection with that name exists already.
    #[error("a connection named {0:?} already exists")]
    DuplicateConnection(String),
    /// A workspace with that name exists already.
    #[error("a workspace named {0:?} already exists")]
    DuplicateWorkspace(String),
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
    /// this off and calls [`RecordStore::refresh_derived_all`] once at its end instead.
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
    /// Only rows whose time column (the name) is at or after the time: the listing was
    /// complete within that window only (Slack's re-read lookback). `None`: all rows.
    pub window: Option<(&'static str, Timestamp)>,
    /// The stream's sync state to write in the same transaction.
    pub state: &'a SyncState,
    /// Tombstone time.
    pub at: Timestamp,
    /// A family's child stream and its column holding the parent's id: the children of
    /// every parent tombstoned here are tombstoned with it and its change marker is
    /// forgotten, in the same transaction (a Gmail thread gone takes its messages along).
    pub children: Option<(&'a StreamSpec, &'static str)>,
}

/// A reconcile to apply: the ids of a complete listing were staged with
/// [`RecordStore::stage_ids`] under `token`.
#[derive(Debug)]
pub struct ReconcileBatch<'a> {
    /// The connection.
    pub connection_id: i64,
    /// The stream.
    pub stream: &'a StreamSpec,
    /// The staging token the listed ids were staged under.
    pub token: &'a str,
    /// Change nothing when more than this share (0..=1) of the stream's live rows would be
    /// tombstoned; `None` when forced.
    pub max_share: Option<f64>,
    /// The stream's sync state to write in the same transaction (when not refused).
    pub state: &'a SyncState,
    /// Tombstone time.
    pub at: Timestamp,
}

/// A snapshot import to apply ([`RecordStore::import_snapshot`]).
#[derive(Debug)]
pub struct SnapshotBatch<'a> {
    /// The connection.
    pub connection_id: i64,
    /// The stream.
    pub stream: &'a StreamSpec,
    /// The stream's sync state to write in the same transaction (when not refused).
    pub state: &'a SyncState,
    /// Commit and tombstone time.
    pub at: Timestamp,
    /// Change nothing when more than this share (0..=1) of the stream's live rows would be
    /// tombstoned; `None` when forced.
    pub max_share: Option<f64>,
}

/// The records of a snapshot, handed to [`RecordStore::import_snapshot`] one chunk at a time.
#[async_trait::async_trait]
pub trait SnapshotSource: Send {
    /// The next chunk, `None` after the last. An error stops the import: nothing changes.
    async fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, StoreError>;
}

/// A snapshot already in memory, as its chunks.
#[async_trait::async_trait]
impl SnapshotSource for std::vec::IntoIter<Vec<Record>> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, StoreError> {
        Ok(self.next())
    }
}

/// What a reconcile (or an import) did, or would have done when refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileOutcome {
    /// Live rows of the stream before.
    pub live_before: u64,
    /// Rows tombstoned (when refused: rows that would have been).
    pub tombstoned: u64,
    /// Tombstoned rows the listing returned again, made live.
    pub revived: u64,
    /// The safety valve tripped: nothing was changed.
    pub refused: bool,
}

impl ReconcileOutcome {
    /// Whether tombstoning `tombstoned` of `live_before` rows exceeds `max_share`.
    pub fn exceeds(live_before: u64, tombstoned: u64, max_share: Option<f64>) -> bool {
        max_share
            .is_some_and(|share| tombstoned > 0 && tombstoned as f64 > share * live_before as f64)
    }
}

/// A parent/child commit: parent rows, their children, the parents' new change markers,
/// the removal of placeholder rows the children replace, and the parent stream's sync
/// state, in ONE transaction — so a parent is never marked synced without its children.
#[derive(Debug)]
pub struct FamilyBatch<'a> {
    /// The connection.
    pub connection_id: i64,
    /// Parent stream.
    pub parent: &'a StreamSpec,
    /// Parent rows.
    pub parents: Vec<Record>,
    /// Child stream.
    pub child: &'a StreamSpec,
    /// Child rows.
    pub children: Vec<Record>,
    /// (parent id, marker) to store for the parents whose children are complete here.
    pub markers: Vec<(String, String)>,
    /// Delete stubs of these parents that a child row in this batch replaces.
    pub stubs: Option<crate::StubRule>,
    /// The child column holding the parent's id: the children of every parent in
    /// `markers` (read whole) that are not in `children` are tombstoned (a deleted
    /// reply). `None`: children are only added and updated.
    pub replace_children: Option<&'static str>,
    /// The parent stream's sync state after this batch (`None`: leave it).
    pub state: Option<&'a SyncState>,
    /// Commit time.
    pub at: Timestamp,
}

/// What a [`FamilyBatch`] commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FamilyOutcome {
    /// Parent rows.
    pub parents: PageOutcome,
    /// Child rows.
    pub children: PageOutcome,
    /// Placeholder rows deleted.
    pub stubs_removed: u64,
    /// Children tombstoned because their parent, read whole, no longer has them.
    pub children_deleted: u64,
}

/// A row of a derived table (e.g. `reddit_conversations`), for export.
#[derive(Debug, Clone)]
pub struct DerivedRow {
    /// The row's key (the derived spec's key value, as text).
    pub id: String,
    /// Values of the derived spec's columns, in order.
    pub values: Vec<Value>,
    /// When inlet last changed the row.
    pub updated_at: Timestamp,
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

/// The store's identity and what it keeps about connections: the connections
/// themselves, their per-stream sync state and cache validators, facts about the
/// database (`inlet_meta`), and deleting a connection with everything stored for it.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// A human description of where the data is (a file path or a redacted URL).
    fn location(&self) -> String;

    /// A value the database keeps about itself (`inlet_meta`), e.g. the credentials key
    /// check value or the `inlet demo` mark.
    async fn meta_get(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Store `value` under `name` unless a value is there already (atomically); returns
    /// the value stored now: the earlier one, or `value`.
    async fn meta_init(&self, name: &str, value: &str) -> Result<String, StoreError>;

    /// Create a connection (status active). Its workspace is created (active) in the same
    /// transaction when it does not exist, so every connection's workspace is a row of
    /// `workspaces`; callers that must not create workspaces check first.
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

    /// A connector's stored cache validator for a stream ([`crate::Connector::validator`]).
    async fn stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Store (or with `None` forget) a stream's cache validator.
    async fn put_stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
        validator: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Create a workspace (status active); [`StoreError::DuplicateWorkspace`] when the
    /// name is taken.
    async fn create_workspace(&self, name: &str, at: Timestamp) -> Result<Workspace, StoreError>;

    /// The workspace with this name.
    async fn get_workspace(&self, name: &str) -> Result<Option<Workspace>, StoreError>;

    /// Every workspace, by name.
    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError>;

    /// Pause or resume a workspace; returns it as it is now. [`StoreError::NotFound`]
    /// when there is no such workspace.
    async fn set_workspace_status(
        &self,
        name: &str,
        status: WorkspaceStatus,
        at: Timestamp,
    ) -> Result<Workspace, StoreError>;

    /// Delete a connection with everything stored for it: its rows in `tables` (the
    /// record and derived tables of its provider), sync state, runs and lease. One
    /// transaction; a table that was never made is skipped. [`StoreError::NotFound`]
    /// when there is no such connection.
    async fn delete_connection(&self, id: i64, tables: &[&str]) -> Result<(), StoreError>;
}

/// Record tables: their creation from the stream specs, page commits, tombstones,
/// reconcile, imports, derived tables, parent/child families, counts and exports.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync {
    /// Commit one page: records, derived rows, sync state, in one transaction.
    async fn commit_page(&self, batch: PageBatch<'_>) -> Result<PageOutcome, StoreError>;

    /// Tombstone the stream's live rows (within its scope) whose ids are not in `seen`,
    /// refresh the derived rows they belong to, and write the sync state: one transaction.
    /// Returns how many rows were tombstoned.
    async fn tombstone_missing(&self, batch: TombstoneBatch<'_>) -> Result<u64, StoreError>;

    /// Add listed ids to the staging area under `token` (duplicates are ignored), for a
    /// later [`RecordStore::apply_reconcile`]. Staged ids change no record.
    async fn stage_ids(&self, token: &str, ids: &[String]) -> Result<(), StoreError>;

    /// Forget the ids staged under `token` (a listing that failed or was cancelled).
    async fn drop_staged(&self, token: &str) -> Result<(), StoreError>;

    /// In ONE transaction: tombstone the stream's live rows (within its scope) whose ids
    /// were not staged under `token`, revive tombstoned rows whose ids were, refresh the
    /// derived rows they belong to and write the sync state. When the share of live rows
    /// to tombstone exceeds `max_share`, nothing changes and the outcome is `refused`.
    /// The staged ids are dropped either way.
    async fn apply_reconcile(
        &self,
        batch: ReconcileBatch<'_>,
    ) -> Result<ReconcileOutcome, StoreError>;

    /// An import of a complete snapshot read chunk by chunk from `source` (so a large
    /// snapshot is never held in memory), in ONE transaction: upsert each chunk's records
    /// (reviving tombstoned ones; a later repeat of an id overwrites the earlier one),
    /// then tombstone the stream's live rows whose ids no chunk held, and write the sync
    /// state. When the share of live rows to tombstone exceeds `batch.max_share`, nothing
    /// changes and the outcome is `refused`; when `source` fails, nothing changes and its
    /// error is returned.
    async fn import_snapshot(
        &self,
        batch: SnapshotBatch<'_>,
        source: Box<dyn SnapshotSource>,
    ) -> Result<(PageOutcome, ReconcileOutcome), StoreError>;

    /// Delete the stream's tombstoned rows (within its scope) tombstoned before `before`;
    /// returns how many.
    async fn purge_tombstones(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        before: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Recompute every derived row of the stream's derived table for this connection from
    /// the live source rows, and delete derived rows that have none left: one
    /// transaction, walking the keys in order. Returns (inserted, updated).
    async fn refresh_derived_all(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        at: Timestamp,
    ) -> Result<(u64, u64), StoreError>;

    /// Tombstone the live rows `ids` of a family's parent stream `parent`, the live rows
    /// of `child` whose `child_parent_column` names one of them (when given), and forget
    /// their change markers: one transaction, repeatable. Returns (parents, children)
    /// tombstoned. For parents a provider reported gone ([`crate::Connector::take_gone`]).
    async fn tombstone_parents(
        &self,
        connection_id: i64,
        parent: &StreamSpec,
        ids: &[String],
        child: Option<(&StreamSpec, &str)>,
        at: Timestamp,
    ) -> Result<(u64, u64), StoreError>;

    /// Live (not tombstoned) rows of a stream within its scope.
    async fn count_live(&self, connection_id: i64, stream: &StreamSpec) -> Result<u64, StoreError>;

    /// Live rows of a derived table.
    async fn count_derived(&self, connection_id: i64, table: &str) -> Result<u64, StoreError>;

    /// The stored change markers of the given parents of `parent_stream` (absent: never
    /// committed with their children).
    async fn parent_markers(
        &self,
        connection_id: i64,
        parent_stream: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let _ = (connection_id, parent_stream, ids);
        Err(StoreError::Db(
            "this store does not support parent/child streams".into(),
        ))
    }

    /// Commit parents, children, markers, stub removals and state in one transaction.
    async fn commit_family(&self, batch: FamilyBatch<'_>) -> Result<FamilyOutcome, StoreError> {
        let _ = batch;
        Err(StoreError::Db(
            "this store does not support parent/child streams".into(),
        ))
    }

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

    /// Up to `limit` rows of the derived table `derived` of one connection with keys
    /// greater than `after`, ordered by key.
    async fn export_derived_page(
        &self,
        connection_id: i64,
        derived: &DerivedSpec,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DerivedRow>, StoreError>;

    /// Make the tables of `streams` that do not exist yet, from their specs: each
    /// stream's record table (the fixed columns, the typed columns in spec order, primary
    /// key `(connection_id, id)`), its derived table if it has one, and their indexes.
    /// Tables that exist (made by an earlier release's migrations, or by an earlier call)
    /// are kept, rows and all, and must have exactly the columns and types the spec
    /// gives, else [`StoreError::Schema`]. Idempotent; any spec, also one made at run
    /// time (a user's REST stream). Callers pass every stream they know at open (the
    /// provider registry's specs) so the tables are there for SQL readers from the start;
    /// besides, every method taking a [`StreamSpec`] makes its stream's tables on first
    /// use. A read-only store makes nothing and only checks the tables it has.
    async fn ensure_tables(&self, streams: &[StreamSpec]) -> Result<(), StoreError>;
}

/// Runs: one row per sync of a connection, with its counters.
#[async_trait::async_trait]
pub trait RunStore: Send + Sync {
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

    /// Record when a `waiting` run may go on (`None`: clear it).
    async fn set_run_waiting_until(
        &self,
        run_id: i64,
        until: Option<Timestamp>,
    ) -> Result<(), StoreError>;

    /// Runs, newest first, optionally of one connection.
    async fn list_runs(
        &self,
        connection_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Run>, StoreError>;

    /// One run by id.
    async fn get_run(&self, run_id: i64) -> Result<Option<Run>, StoreError>;
}

/// Attachments linked from records, downloaded into the blob store.
#[async_trait::async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Record attachment links of `stream` as `pending`; links already recorded for the
    /// same (connection, record, url) are left as they are. Returns how many were new.
    async fn add_attachments(
        &self,
        connection_id: i64,
        stream: &str,
        links: &[AttachmentLink],
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        let _ = (connection_id, stream, links, at);
        Err(StoreError::Db(
            "this store does not keep attachments".into(),
        ))
    }

    /// Up to `limit` attachments with ids greater than `after`, ordered by id, optionally
    /// of one connection and one status.
    async fn list_attachments(
        &self,
        connection_id: Option<i64>,
        status: Option<AttachmentStatus>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError> {
        let _ = (connection_id, status, after, limit);
        Ok(Vec::new())
    }

    /// Write the outcome of a download attempt (adds one to `attempts`).
    async fn update_attachment(
        &self,
        id: i64,
        update: &AttachmentUpdate,
    ) -> Result<(), StoreError> {
        let _ = (id, update);
        Err(StoreError::NotFound(format!("attachment {id}")))
    }

    /// Attachments per status, optionally of one connection.
    async fn count_attachments(
        &self,
        connection_id: Option<i64>,
    ) -> Result<BTreeMap<AttachmentStatus, u64>, StoreError> {
        let _ = connection_id;
        Ok(BTreeMap::new())
    }
}

/// Sync leases: one sync per connection at a time, across processes.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync {
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
}

/// API keys of the HTTP API (only a hash of each key is stored).
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync {
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

/// Where inlet keeps records, connections, sync state and runs: every role at once.
/// Callers hold an `Arc<dyn Store>` and call any role's methods on it; a backend
/// implements the six role traits and is a `Store` by the blanket impl below.
pub trait Store:
    StateStore + RecordStore + RunStore + AttachmentStore + LeaseStore + KeyStore
{
}

impl<T: StateStore + RecordStore + RunStore + AttachmentStore + LeaseStore + KeyStore + ?Sized>
    Store for T
{
}
