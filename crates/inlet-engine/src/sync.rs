//! The engine and how it is asked to sync: options, progress, errors.

use inlet_core::{
    Clock, Connection, RunMode, RunStats, Store, StoreError, StreamStats, Timestamp, Trigger,
};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A sync could not be carried out or recorded (provider errors are not this: they end
/// up in the run's status and error).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed; committed pages stay committed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hears about a sync's progress (the CLI draws a bar from it).
pub trait Progress: Send + Sync {
    /// The run row exists (its id is known); streams have not started yet.
    fn run_started(&self, _run_id: i64) {}
    /// A stream starts; `resumed` when it continues an interrupted pass.
    fn stream_started(&self, _stream: &str, _resumed: bool) {}
    /// A page was committed; `stats` are the stream's totals so far.
    fn page_committed(&self, _stream: &str, _stats: &StreamStats) {}
    /// A stream ended (successfully or not).
    fn stream_finished(&self, _stream: &str, _stats: &StreamStats) {}
    /// An attachment download finished; `stats` holds the attachment counters so far.
    fn attachment_done(&self, _stats: &RunStats) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Seals a connector's updated credentials for storage.
pub type Sealer =
    Arc<dyn Fn(&Connection, &serde_json::Value) -> Result<Vec<u8>, String> + Send + Sync>;

/// How to run one sync.
#[derive(Clone)]
pub struct SyncOptions {
    /// Delta or full.
    pub mode: RunMode,
    /// What started it.
    pub trigger: Trigger,
    /// Only these streams (all when `None`).
    pub streams: Option<Vec<String>>,
    /// Set to stop at the next page boundary: the connector's waits and a page request in
    /// flight end at once, and the pages fetched so far are committed with the checkpoint
    /// after them.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Let a reconcile tombstone more than the safety valve's share of a stream.
    pub force: bool,
    /// The holder id of the connection's sync lease this sync runs under (see
    /// `lease.rs`); runs left `running` are closed only when no other holder's lease is
    /// live.
    pub lease_holder: Option<String>,
}

impl SyncOptions {
    /// A manual sync of every stream.
    pub fn new(mode: RunMode) -> Self {
        SyncOptions {
            mode,
            trigger: Trigger::Manual,
            streams: None,
            cancel: None,
            force: false,
            lease_holder: None,
        }
    }
}

/// Runs syncs against one store.
pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sealer: Option<Sealer>,
    /// A complete listing longer than this is not used to detect deletions (the ids would
    /// have to be held in memory); reconcile covers those.
    pub(crate) max_seen: usize,
    /// Records per transaction during long passes: pages are gathered until this many,
    /// then committed with the checkpoint after the last of them.
    pub(crate) batch_records: usize,
    /// A chunk is also committed once this long has passed since its first page was
    /// asked for (by the engine's clock), so slow or capped listings checkpoint too.
    pub(crate) batch_time_ms: i64,
    /// Record and download attachments (see `attachments.rs`); off when `None`.
    pub(crate) attachments: Option<crate::AttachmentOptions>,
}

/// Records per transaction by default: large enough that a commit's fixed cost (WAL
/// frames, fsync, index pages touched again and again) is shared by many pages, small
/// enough that a crash costs a few requests to redo. (Measured on 300,000 Reddit
/// messages into SQLite: 2,000 → 40-43k records/s, 5,000 → 51-53k.)
pub const DEFAULT_BATCH_RECORDS: usize = 5000;

/// A chunk also ends once its records' raw JSON reaches this size, so providers with
/// large items keep memory flat: two chunks are in memory at once (one being written,
/// one being fetched).
pub const MAX_BATCH_RAW_BYTES: usize = 4 << 20;

/// A chunk also ends once this long has passed since it started, whichever of records,
/// bytes and time comes first: a Reddit listing stops at 1,000 items (one fifth of a
/// chunk) and a rate-limited listing may take minutes, so without it such a stream would
/// never checkpoint mid-way and a kill would re-fetch all of it.
pub const DEFAULT_BATCH_TIME: std::time::Duration = std::time::Duration::from_secs(3);

impl Engine {
    /// An engine writing to `store`, telling time by `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Engine {
            store,
            clock,
            sealer: None,
            max_seen: 50_000,
            batch_records: DEFAULT_BATCH_RECORDS,
            batch_time_ms: DEFAULT_BATCH_TIME.as_millis() as i64,
            attachments: None,
        }
    }

    /// Persist credentials a connector refreshed, sealed by `sealer`.
    pub fn with_sealer(mut self, sealer: Sealer) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// Records per transaction (at least one page is always committed whole).
    pub fn with_batch_records(mut self, n: usize) -> Self {
        self.batch_records = n.max(1);
        self
    }

    /// Time per transaction: a chunk is committed once this long has passed since it
    /// started, even when it holds fewer records (at least one page per chunk).
    pub fn with_batch_time(mut self, d: std::time::Duration) -> Self {
        self.batch_time_ms = d.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The engine's clock reading.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The engine's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }
}

/// How to give a connection new credentials: the real command, with the connection's
/// name quoted for a shell when it needs it.
pub fn reauth_hint(provider: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+=:,/%".contains(c));
    let name = if plain {
        name.to_string()
    } else {
        let escaped: String = name
            .chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else if c == '\'' {
                    "'\\''".chars().collect()
                } else {
                    vec![c]
                }
            })
            .collect();
        format!("'{escaped}'")
    };
    format!("re-authenticate with `inlet connect {provider} --name {name} --update ...`")
}

#[cfg(test)]
mod reauth_hint_tests {
    use super::reauth_hint;

    #[test]
    fn names_the_connection_and_update() {
        assert_eq!(
            reauth_hint("reddit", "r1"),
            "re-authenticate with `inlet connect reddit --name r1 --update ...`"
        );
        assert_eq!(
            reauth_hint("github", "my stars"),
            "re-authenticate with `inlet connect github --name 'my stars' --update ...`"
        );
        assert_eq!(
            reauth_hint("ebay", "it's\n"),
            "re-authenticate with `inlet connect ebay --name 'it'\\''s\\n' --update ...`"
        );
    }
}
