//! The ChangeFeed port: a source that pushes changes (Redis keyspace notifications,
//! webhooks), beside the pull [`crate::Connector`].
//!
//! A feed's events are hints, never the truth: they are lost while the session is
//! disconnected, and a source may drop them under load. So a feed offers two things: a
//! session that yields change events as they arrive ([`FeedSession::next_event`]), and a
//! complete snapshot listing read page by page ([`ChangeFeed::snapshot_page`]) for the
//! full resync the engine runs first on every (re)connect, periodically, and whenever the
//! session says events were lost ([`FeedEvent::Lost`]).
//!
//! A session must be subscribed before [`ChangeFeed::connect`] returns and buffer what
//! arrives while the engine reads the snapshot: applied after it, those events are at
//! worst a repeat of what the snapshot held (upserts are idempotent).

use crate::{ConnectorError, Page, Record, StreamSpec};
use std::time::Duration;

/// One change a feed reports.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// The record now looks like this (created or changed).
    Upsert {
        /// The stream (one of [`ChangeFeed::streams`]).
        stream: &'static str,
        /// The record's current content.
        record: Record,
    },
    /// The record with this id is gone.
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
    /// already buffered. An error ends the session: the engine
    /// connects again and resyncs, since events published meanwhile are lost.
    async fn next_event(&mut self, wait: Duration) -> Result<Option<FeedEvent>, ConnectorError>;
}

/// A source that streams change events. Implementations map the source's notifications
/// and its listing onto records; batching, transactions, tombstones, resyncs and run
/// accounting live in the engine (`inlet-engine`'s realtime loop).
#[async_trait::async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Provider name (`redis`).
    fn provider(&self) -> &'static str;
    /// The streams this feed offers.
    fn streams(&self) -> &'static [StreamSpec];
    /// Subscribe; events published from now on are delivered by the session.
    async fn connect(&self) -> Result<Box<dyn FeedSession>, ConnectorError>;
    /// One page of the complete current content of `stream` from `cursor` (`None`: the
    /// first page); the listing ends when [`Page::next`] is `None`. An id listed twice
    /// (a Redis `SCAN` may) is fine.
    async fn snapshot_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError>;
}
