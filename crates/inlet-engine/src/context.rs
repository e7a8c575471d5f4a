//! What the passes share about the run they belong to.
//!
//! A [`RunContext`] is built once per run by `run.rs` and handed to every pass in
//! `passes/`: the store, the clock, the connection and its connector, the sync's options
//! (with its cancel flag), the progress listener, the run's id, its reconcile plan and the
//! engine's chunk limits. Passes see nothing else of the [`Engine`](crate::Engine), so they
//! depend on this module and never on the run or on each other's internals.

use crate::reconcile::ReconcilePolicy;
use crate::sync::{Progress, SyncOptions};
use inlet_core::{
    Clock, Connection, Connector, ConnectorError, HttpStats, Record, RunStats, Store, StoreError,
    StreamSpec, Timestamp,
};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

/// One run of one connection, as the passes see it.
pub(crate) struct RunContext<'a> {
    /// Where pages, checkpoints and tombstones are committed.
    pub(crate) store: &'a dyn Store,
    /// The engine's clock (watermarks, chunk time, commit times).
    pub(crate) clock: &'a dyn Clock,
    /// The connection being synced.
    pub(crate) conn: &'a Connection,
    /// Its connector.
    pub(crate) connector: &'a dyn Connector,
    /// How the sync was asked for; its cancel flag stops every pass at a page boundary.
    pub(crate) opts: &'a SyncOptions,
    /// Hears about streams and committed pages.
    pub(crate) progress: &'a dyn Progress,
    /// The run: staged ids are kept under a token of their own run.
    pub(crate) run_id: i64,
    /// The connection's reconcile policy (safety valve included).
    pub(crate) policy: ReconcilePolicy,
    /// The streams this run reconciles after their pass.
    pub(crate) reconcile: BTreeSet<&'static str>,
    /// When a chunk is full, and how many ids a pass keeps to prove a listing complete.
    pub(crate) limits: Limits,
    /// Record the attachment links of committed records (the engine has attachments on).
    pub(crate) attachments: bool,
}

/// The engine's bounds on one pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Records per chunk.
    pub(crate) batch_records: usize,
    /// Milliseconds per chunk (by the run's clock).
    pub(crate) batch_time_ms: i64,
    /// A complete listing longer than this is not used to detect deletions.
    pub(crate) max_seen: usize,
}

impl RunContext<'_> {
    /// The clock's reading.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The sync's cancel flag is set.
    pub(crate) fn cancelled(&self) -> bool {
        cancelled(self.opts)
    }

    /// Record the attachment links of a chunk's records as pending, before the chunk
    /// commits (see `attachments.rs`); nothing when the engine has no attachments.
    pub(crate) async fn note_attachments(
        &self,
        stream: &StreamSpec,
        records: &[Record],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if !self.attachments {
            return Ok(());
        }
        crate::attachments::note_links(
            self.store,
            self.connector,
            self.conn.id,
            stream,
            records,
            at,
        )
        .await
    }
}

/// Errors a stream ended with, kept apart so the run can say what happened.
pub(crate) enum StreamEnd {
    Done,
    Failed(ConnectorError),
    Cancelled,
    /// The safety valve stopped a tombstoning; nothing was removed.
    Refused(String),
}

/// The error of a run stopped by its cancel flag.
pub(crate) const INTERRUPTED: &str = "interrupted; the next sync resumes from the checkpoint";

/// The sync's cancel flag is set.
pub(crate) fn cancelled(opts: &SyncOptions) -> bool {
    opts.cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::SeqCst))
}

/// The staging token of one listing: `<connection>:<stream>:<run>`. Keyed by run, so two
/// runs of one connection (say, started without a lease) never drop or read each
/// other's ids.
pub(crate) fn staging_token(connection_id: i64, stream: &str, run_id: i64) -> String {
    format!("{connection_id}:{stream}:{run_id}")
}

/// A stream's request accounting: what the connector's client did since `before`.
pub(crate) fn set_http(stats: &mut RunStats, before: HttpStats, after: HttpStats) {
    stats.requests = after.requests.saturating_sub(before.requests);
    stats.retries = after.retries.saturating_sub(before.retries);
    stats.rate_limit_wait_ms = after
        .rate_limit_wait_ms
        .saturating_sub(before.rate_limit_wait_ms);
    stats.quota_remaining = after.quota_remaining;
}

/// What stops a pass with an error: the store failed (the run fails), or the provider
/// did (the stream ends `failed`).
pub(crate) enum PassError {
    Store(StoreError),
    Connector(ConnectorError),
}

impl From<StoreError> for PassError {
    fn from(e: StoreError) -> Self {
        PassError::Store(e)
    }
}
