//! What the passes share about the run they belong to.

use crate::reconcile::ReconcilePolicy;
use crate::sync::SyncOptions;
use inlet_core::{ConnectorError, HttpStats, RunStats, StoreError};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

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

/// The streams a sync reconciles and the connection's reconcile policy.
pub(crate) struct Reconcile {
    pub(crate) policy: ReconcilePolicy,
    pub(crate) streams: BTreeSet<&'static str>,
    /// The run: staged ids are kept under a token of their own run.
    pub(crate) run_id: i64,
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

pub(crate) enum PassError {
    Store(StoreError),
    Connector(ConnectorError),
}

impl From<StoreError> for PassError {
    fn from(e: StoreError) -> Self {
        PassError::Store(e)
    }
}
