//! inlet-engine: runs syncs.
//!
//! # The model: pages, checkpoints and watermarks
//!
//! A connector offers streams; a stream is read as a sequence of pages. For each
//! (connection, stream) the store keeps a [`SyncState`]: the delta *cursor* and, while a
//! pass is under way, a *checkpoint* — the provider's cursor of the next page, the pass's
//! mode and its *watermark* (the time the pass started).
//!
//! Pages are gathered into chunks (5,000 records, 4 MB of raw JSON or 3 seconds by default, whichever
//! comes first; one page at a time where the stop rule needs to see what was stored), and a chunk's records and the checkpoint
//! that follows them are committed in ONE transaction ([`Store::commit_page`]) while the
//! next chunk is fetched. Whatever kills the process, the store holds either the chunk
//! and the checkpoint after it, or neither; the next run resumes from the checkpoint and
//! re-fetches at most the chunk that was in flight. A cancellation (checked before every
//! page, and cutting the connector's waits short) or a failed page ends a chunk early: the
//! pages read so far are committed with their checkpoint before the pass stops. Upserts are idempotent and unchanged
//! records (same content hash) are not rewritten, so a replayed page costs one request
//! and no writes.
//!
//! Derived rows (Reddit conversations) are refreshed in the same transaction as the
//! records that touch them during deltas; a full pass defers them to one ordered
//! recomputation at its end ([`Store::refresh_derived_all`]), so while a first backfill
//! runs, conversations lag behind their messages.
//!
//! When a pass ends, the checkpoint is cleared and the cursor becomes the pass's
//! watermark — its *start* time, never "now" at the end, so nothing that changed during
//! the pass is skipped. A delta pass over a newest-first listing reads from the top and
//! stops after the page holding the first item created at or before the cursor minus a
//! lookback overlap ([`StopRule::CreatedBefore`]), or the first item already stored
//! ([`StopRule::KnownId`]).
//!
//! A listing read from its first page to its natural end, with fewer items than the
//! provider's listing cap, is complete: stored rows it did not return were removed at the
//! provider and are tombstoned (`deleted_at`), never deleted. A pass that failed,
//! resumed mid-way, stopped early or hit the cap deletes nothing.
//!
//! Parent/child streams (eBay conversations and their messages) run a different pass,
//! described in `passes/family.rs`: parents are listed page by page, children are fetched only
//! for parents whose change marker moved (plus a random sample of the others), and each
//! page's parents, children, markers and checkpoint commit in one transaction
//! (`Store::commit_family`).
//!
//! Sources that push change events instead of being paged ([`inlet_core::ChangeFeed`])
//! run a long-lived loop, described in `realtime.rs`: a full resync on every (re)connect
//! and periodically, events applied in small idempotent batches in between
//! ([`Engine::run_realtime`]).
//!
//! Attachments (images linked from records) are recorded as pending rows with the chunk
//! that links them and downloaded after the streams, see [`AttachmentOptions`].
#![deny(missing_docs)]

mod attachments;
mod context;
pub mod lease;
mod passes;
mod realtime;
mod reconcile;
mod refresh;
mod run;
pub mod scheduler;
mod sync;
pub mod worker;

pub use attachments::{AttachmentOptions, DEFAULT_ATTACHMENT_CONCURRENCY};
pub use inlet_core::{StopRule, Store, SyncState};
pub use passes::import;
pub use realtime::{DEFAULT_FEED_BATCH, DEFAULT_RESYNC_EVERY, RealtimeOptions};
pub use reconcile::{
    DEFAULT_MAX_TOMBSTONE_SHARE, DEFAULT_RECONCILE_EVERY, ENGINE_CONFIG_KEYS, ReconcilePolicy,
    provider_config,
};
pub use refresh::RefreshOutcome;
pub use sync::{
    DEFAULT_BATCH_RECORDS, DEFAULT_BATCH_TIME, Engine, EngineError, MAX_BATCH_RAW_BYTES,
    NoProgress, Progress, Sealer, SyncOptions,
};
