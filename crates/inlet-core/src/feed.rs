//! The ChangeFeed port: a source that pushes changes (Redis keyspace notifications,
//! webhooks), beside the pull [`crate::Connector`].
//!
//! A feed's events are hints, never the truth: they are lost while the session is
//! disconnected, a source may drop them under load, repeat them or deliver them out of
//! order. So a feed offers three things:
//!
//! * a session that yields change events as they arrive ([`FeedSession::next_event`]);
//! * a complete snapshot listing read page by page ([`ChangeFeed::snapshot_page`]) for
//!   the full resync the engine runs on every (re)connect that did not resume, every so
//!   often, and whenever the session says events were lost ([`FeedEvent::Lost`]);
//! * a read of the current content of a few ids ([`ChangeFeed::fetch`]), for events that
//!   only say *which* record changed ([`FeedEvent::Changed`], what Redis publishes).
//!
//! A session must be subscribed before [`ChangeFeed::connect`] returns and buffer what
//! arrives while the engine reads the snapshot: the engine applies those events after
//! the snapshot, so a change made during a resync is never undone by it.
//!
//! A source that can replay (a Redis Stream, a webhook log) reports a position with every
//! event it delivers ([`FeedSession::position`]); the engine saves it after the events
//! before it are committed and passes it back to [`ChangeFeed::connect`], and a session
//! that really continued from there ([`FeedSession::resumed`]) spares the resync.

use crate::{ConnectorError, Page, Record, StreamSpec};
use std::time::Duration;

/// One change a feed reports.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// The record with this id may have changed (created, changed or removed): the engine
    /// reads its current content with [`ChangeFeed::fetch`]. Safe under any repeat or
    /// reordering; what a source whose notifications carry no values sends (Redis).
    Changed {
        /// The stream (one of [`ChangeFeed::streams`]).
        stream: &'static str,
        /// The record's id.
        id: String,
    },
    /// The record now looks like this (created or changed). Applied as delivered: a
    /// source must send a record's events in the order they happened (or send
    /// [`FeedEvent::Changed`] instead).
    Upsert {
        /// The stream.
        stream: &'static str,
        /// The record's current content.
        record: Record,
    },
    /// The record with this id is gone (applied as a tombstone).
    Delete {
        /// The stream.
        stream: &'static str,
        /// The record's id.
        id: String,
    },
    /// Events were lost (a slow subscriber was cut off, a queue overflowed): the stream
    /// (`None`: every stream) needs a full resync.
    Lost {
        /// The stream, or `None` for all of them.
        stream: Option<&'static str>,
    },
}

/// A live subscription to a feed. Dropping it unsubscribes.
#[async_trait::async_trait]
pub trait FeedSession: Send {
    /// The next event, waiting at most `wait` for one (`Ok(None)`: none arrived, so the
    /// engine can check its cancel flag and clock). A zero `wait` returns only an event
    /// already buffered. An error ends the session: the engine connects again and
    /// resyncs unless the new session resumed, since events published meanwhile are lost.
    async fn next_event(&mut self, wait: Duration) -> Result<Option<FeedEvent>, ConnectorError>;

    /// Where the events returned so far end, for a source that can replay from there
    /// (`None`: the source has no positions). The engine saves it once those events are
    /// committed and hands it to the next [`ChangeFeed::connect`].
    fn position(&self) -> Option<String>;

    /// True when this session continues exactly after the `resume` position given to
    /// [`ChangeFeed::connect`], so nothing was lost and no resync is needed. False for a
    /// fresh subscription or when the source no longer holds that position (trimmed).
    fn resumed(&self) -> bool;
}

/// A source that streams change events. Implementations map the source's notifications
/// and its listing onto records; batching, transactions, tombstones, resyncs, positions
/// and run accounting live in the engine (`inlet-engine`'s realtime loop).
#[async_trait::async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Provider name (`redis`).
    fn provider(&self) -> &'static str;

    /// The streams this feed offers.
    fn streams(&self) -> &'static [StreamSpec];

    /// Subscribe; events published from now on are delivered by the session. `resume` is
    /// the last position the engine committed (`None`: none saved): a source that can
    /// replay delivers what followed it and says so with [`FeedSession::resumed`].
    async fn connect(&self, resume: Option<&str>) -> Result<Box<dyn FeedSession>, ConnectorError>;

    /// One page of the complete current content of `stream` from `cursor` (`None`: the
    /// first page); the listing ends when [`Page::next`] is `None`. An id listed twice
    /// (a Redis `SCAN` may) is fine.
    async fn snapshot_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError>;

    /// The current content of the records `ids` of `stream` that exist; an id missing
    /// from the answer is gone (the engine tombstones it).
    async fn fetch(
        &self,
        stream: &StreamSpec,
        ids: &[String],
    ) -> Result<Vec<Record>, ConnectorError>;
}
