//! Connections, sync state and runs: the bookkeeping rows of the data model.

use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $var),+ }
        impl $name {
            /// Every value's text form, in declaration order.
            pub const VALUES: &'static [&'static str] = &[$($s),+];
            /// The stored text form.
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok($name::$var),)+ other => Err(format!(
                    "unknown {} {other:?} (expected one of: {})", stringify!($name),
                    [$($s),+].join(", "))) }
            }
        }
    };
}

string_enum!(
    /// Whether a connection is synced.
    ConnectionStatus {
        /// Synced on schedule and on demand.
        Active => "active",
        /// Not synced until resumed.
        Paused => "paused",
        /// The provider rejected our credentials; the user must re-authenticate.
        NeedsReauth => "needs_reauth",
        /// The last syncs failed; retried with backoff.
        Failing => "failing",
    }
);

string_enum!(
    /// Whether a workspace's connections are synced.
    WorkspaceStatus {
        /// Its active connections sync on schedule.
        Active => "active",
        /// None of its connections is scheduled until it is resumed.
        Paused => "paused",
    }
);

/// The workspace connections are created in when none is named.
pub const DEFAULT_WORKSPACE: &str = "default";

/// A tenant: it owns connections (by their `workspace` name) and can pause them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workspace {
    /// Store-assigned id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Active or paused.
    pub status: WorkspaceStatus,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

string_enum!(
    /// What a sync does.
    RunMode {
        /// From each stream's cursor.
        Delta => "delta",
        /// Every page from the start.
        Full => "full",
        /// A delta that also lists every id of the reconcilable streams and tombstones
        /// what the provider no longer has.
        Reconcile => "reconcile",
    }
);

string_enum!(
    /// What started a sync.
    Trigger {
        /// The scheduler.
        Schedule => "schedule",
        /// The CLI.
        Manual => "manual",
        /// The HTTP API.
        Api => "api",
        /// A change feed's long-running session (`inlet-engine`'s realtime loop).
        Realtime => "realtime",
    }
);

string_enum!(
    /// How a run ended.
    RunStatus {
        /// Still going (or the process died: the next run resumes its checkpoint).
        Running => "running",
        /// Every stream synced.
        Success => "success",
        /// Synced, but some items or streams were skipped with errors.
        Partial => "partial",
        /// Stopped by an error; committed pages stay committed.
        Failed => "failed",
        /// Stopped before its end by a signal (SIGTERM, Ctrl-C), a server shutdown, or
        /// its process dying; committed pages stay committed and the next sync resumes
        /// from the checkpoint.
        Interrupted => "interrupted",
        /// Stopped because the provider's rate limit or call quota is spent until
        /// `waiting_until`; the checkpoint is kept and the scheduler starts the connection
        /// again after that time.
        Waiting => "waiting",
    }
);

/// A connection to create.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// Unique, user-chosen name (`reddit-me`).
    pub name: String,
    /// Tenant / workspace this connection belongs to.
    pub workspace: String,
    /// Provider (`reddit`).
    pub provider: String,
    /// Provider settings (base URLs, user agent, streams); never secrets.
    pub config: serde_json::Value,
    /// Credentials, already sealed with [`crate::secrets::SecretBox`].
    pub credentials: Vec<u8>,
}

/// One account at one provider for one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    /// Store-assigned id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Tenant / workspace.
    pub workspace: String,
    /// Provider.
    pub provider: String,
    /// Provider settings.
    pub config: serde_json::Value,
    /// Sealed credentials; never serialized.
    #[serde(skip)]
    pub credentials: Vec<u8>,
    /// Status.
    pub status: ConnectionStatus,
    /// Why the status is what it is (e.g. the reauth message).
    pub status_detail: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Where an interrupted sync resumes: written with the page it follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The mode of the interrupted run.
    pub mode: RunMode,
    /// The provider's cursor for the next page to fetch (`None`: the first page).
    pub next: Option<String>,
    /// The start time of the run that began this pass; becomes the cursor when it ends.
    pub watermark: Timestamp,
    /// Pages committed so far in this pass.
    pub pages: u64,
    /// Records committed so far in this pass.
    pub records: u64,
    /// Every page is committed; only the deferred recomputation of derived rows remains.
    #[serde(default)]
    pub fetched_all: bool,
}

/// Per (connection, stream) sync state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncState {
    /// The delta cursor: for newest-first listings the watermark (ms since epoch) as text.
    pub cursor: Option<String>,
    /// Set while a pass is under way or was interrupted.
    pub checkpoint: Option<Checkpoint>,
    /// Last time a sync of this stream started.
    pub last_sync_at: Option<Timestamp>,
    /// Last time a sync of this stream completed.
    pub last_success_at: Option<Timestamp>,
    /// Completed syncs.
    pub sync_count: i64,
    /// Last time the stream was reconciled (deletions detected from a complete listing).
    pub last_reconciled_at: Option<Timestamp>,
}

/// Counters of one run (or one stream of a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunStats {
    /// Records received from the provider.
    pub fetched: u64,
    /// New records written.
    pub inserted: u64,
    /// Changed records rewritten (including revived tombstones).
    pub updated: u64,
    /// Records skipped because their content hash was unchanged.
    pub unchanged: u64,
    /// Records tombstoned.
    pub deleted: u64,
    /// Pages committed.
    pub pages: u64,
    /// HTTP requests made (including retries and token refreshes).
    pub requests: u64,
    /// Requests retried.
    pub retries: u64,
    /// Milliseconds spent waiting for rate limits.
    pub rate_limit_wait_ms: u64,
    /// Items skipped because the provider answered an error for them.
    pub items_skipped_with_error: u64,
    /// Derived rows created (e.g. new conversations).
    pub derived_inserted: u64,
    /// Derived rows changed.
    pub derived_updated: u64,
    /// The provider's remaining request quota at the end, when it reports one.
    pub quota_remaining: Option<u64>,
    /// Attachments downloaded (or found already stored) in this run.
    #[serde(default)]
    pub attachments_fetched: u64,
    /// Attachments whose download failed (also counted in `items_skipped_with_error`).
    #[serde(default)]
    pub attachments_failed: u64,
    /// Attachments not fetched by policy (host not allowed, not an image, too large).
    #[serde(default)]
    pub attachments_skipped: u64,
}

impl RunStats {
    /// Add another set of counters.
    pub fn add(&mut self, o: &RunStats) {
        self.fetched += o.fetched;
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deleted += o.deleted;
        self.pages += o.pages;
        self.requests += o.requests;
        self.retries += o.retries;
        self.rate_limit_wait_ms += o.rate_limit_wait_ms;
        self.items_skipped_with_error += o.items_skipped_with_error;
        self.derived_inserted += o.derived_inserted;
        self.derived_updated += o.derived_updated;
        self.quota_remaining = o.quota_remaining.or(self.quota_remaining);
        self.attachments_fetched += o.attachments_fetched;
        self.attachments_failed += o.attachments_failed;
        self.attachments_skipped += o.attachments_skipped;
    }
}

/// Per-stream outcome inside a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Counters.
    #[serde(flatten)]
    pub stats: RunStats,
    /// Whether the stream resumed an interrupted pass.
    pub resumed: bool,
    /// Whether the listing was read to its end (so absent rows were tombstoned).
    pub complete_listing: bool,
    /// Error that stopped this stream, if any.
    pub error: Option<String>,
    /// Parent streams: parents whose change marker moved, so their children were fetched.
    #[serde(default)]
    pub parents_changed: u64,
    /// Parent streams: parents whose marker was unchanged (children not fetched).
    #[serde(default)]
    pub parents_unchanged: u64,
    /// Parent streams: unchanged parents re-fetched anyway to check the marker.
    #[serde(default)]
    pub parents_sampled: u64,
    /// Parent streams: sampled parents whose children had changed although the marker
    /// had not (the provider's marker lied).
    #[serde(default)]
    pub sample_mismatches: u64,
    /// Parent streams: listings that were unsupported or failed while the others went on.
    #[serde(default)]
    pub listing_errors: Vec<String>,
    /// Child streams: local placeholder (`stub-*`) rows replaced by the real rows.
    #[serde(default)]
    pub stubs_removed: u64,
}

/// One sync of one connection.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Store-assigned id.
    pub id: i64,
    /// The connection.
    pub connection_id: i64,
    /// Mode.
    pub mode: RunMode,
    /// Trigger.
    pub trigger: Trigger,
    /// Status.
    pub status: RunStatus,
    /// Started.
    pub started_at: Timestamp,
    /// Finished.
    pub finished_at: Option<Timestamp>,
    /// Totals.
    pub stats: RunStats,
    /// Per stream.
    pub streams: BTreeMap<String, StreamStats>,
    /// Why it failed.
    pub error: Option<String>,
    /// A `waiting` run: when the provider's limit frees up and the sync may go on.
    pub waiting_until: Option<Timestamp>,
}

impl Run {
    /// Milliseconds from start to finish (or 0 while running).
    pub fn duration_ms(&self) -> i64 {
        self.finished_at.map_or(0, |f| f.0 - self.started_at.0)
    }
}

/// Config keys the engine reads from a connection's config (not the provider's).
pub const ENGINE_CONFIG_KEYS: &[&str] = &[
    "reconcile_every",
    "reconcile_max_age",
    "reconcile_max_share",
];

/// A connection's config without the engine's keys: what the provider's connector reads.
pub fn provider_config(config: &serde_json::Value) -> serde_json::Value {
    let mut c = config.clone();
    if let Some(map) = c.as_object_mut() {
        for k in ENGINE_CONFIG_KEYS {
            map.remove(*k);
        }
    }
    c
}
