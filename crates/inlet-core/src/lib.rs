//! inlet-core: the domain types of inlet and its ports.
//!
//! inlet keeps a user's database equal to what a provider holds. Everything else in the
//! workspace is wired together through the traits defined here:
//!
//! * [`Connector`] — where data comes from. A connector knows how to build a request for
//!   one page of a [`StreamSpec`], parse it into [`Record`]s and find the next page cursor.
//! * [`ChangeFeed`] — the same for a source that pushes change events (Redis keyspace
//!   notifications, webhooks): a session of upserts and deletes plus a snapshot listing
//!   for the full resync that repairs what was lost while disconnected.
//! * [`Store`] — where data goes. A store commits a page of records *and* the checkpoint
//!   that follows them in one transaction, keeps connections, sync state and runs.
//!
//! This crate does no I/O and picks no async runtime.
//!
//! ```
//! use inlet_core::{Record, Value};
//! let r = Record::new("t4_1", vec![Value::Text("hi".into())], r#"{"id":"1"}"#.to_string());
//! assert_eq!(r.content_hash(), Record::new("t4_1", vec![Value::Text("hi".into())], r#"{"id":"1"}"#.to_string()).content_hash());
//! ```
#![deny(missing_docs)]

pub mod attachment;
mod clock;
mod connector;
mod duration;
mod family;
mod feed;
mod model;
mod names;
mod record;
pub mod secrets;
mod serve;
mod store;
mod stream;
mod time;

pub use attachment::{
    Attachment, AttachmentFetcher, AttachmentLink, AttachmentStatus, AttachmentUpdate, BlobStore,
    FetchAs, FetchError, Fetched,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use connector::{
    Connector, ConnectorError, CredentialSink, EntityPage, HttpStats, IdPage, Page,
};
pub use duration::parse_duration;
pub use family::{Family, ProgressivePages, STUB_PREFIX, StubRule};
pub use feed::{ChangeFeed, FeedEvent, FeedSession};
pub use model::{
    Checkpoint, Connection, ConnectionStatus, DEFAULT_WORKSPACE, ENGINE_CONFIG_KEYS, NewConnection,
    Run, RunMode, RunStats, RunStatus, StreamStats, SyncState, Trigger, Workspace, WorkspaceStatus,
    provider_config,
};
pub use names::{
    MAX_NAME_CHARS, NameError, WorkspaceNameError, escape_unsafe, is_unsafe_char,
    validate_connection_name, validate_workspace_name,
};
pub use record::{ContentHash, Record, Value};
pub use serve::{ApiKey, Lease};
pub use store::{AttachmentStore, KeyStore, LeaseStore, RecordStore, RunStore, StateStore};
pub use store::{
    DerivedRow, ExportRow, FamilyBatch, FamilyOutcome, PageBatch, PageOutcome, ReconcileBatch,
    ReconcileOutcome, SnapshotBatch, SnapshotSource, Store, StoreError, TombstoneBatch,
};
pub use stream::{Agg, ColType, Column, DerivedColumn, DerivedSpec, Scope, StopRule, StreamSpec};
pub use time::Timestamp;
