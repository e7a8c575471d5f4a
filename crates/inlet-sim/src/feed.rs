//! An in-memory change feed ([`inlet_core::ChangeFeed`]): the test double of a source that
//! pushes changes (Redis keyspace notifications, webhooks).
//!
//! The feed holds the truth per stream. Changing it ([`MemoryFeed::upsert`],
//! [`MemoryFeed::delete`]) publishes an event to the open session — unless the session is
//! disconnected or events are being dropped, exactly the losses a real feed has. Tests
//! can also replay events ([`MemoryFeed::emit`]), report lost events
//! ([`MemoryFeed::report_lost`]) and make connects fail. Snapshots list the truth in id
//! order, [`MemoryFeed::with_page_size`] records per page.

use inlet_core::{
    ChangeFeed, ConnectorError, FeedEvent, FeedSession, Page, Record, StreamSpec,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    truth: BTreeMap<&'static str, BTreeMap<String, Record>>,
    /// Events published to the open session and not yet read.
    queue: VecDeque<FeedEvent>,
    /// The open session's number; a session with another number is broken.
    session: u64,
    connected: bool,
    /// Changes publish no event (while still connected).
    dropping: bool,
    /// Connect attempts left that fail.
    failing_connects: u32,
    connects: u64,
    snapshots: u64,
}

/// An in-memory change feed; clones share the same state.
#[derive(Clone)]
pub struct MemoryFeed {
    streams: &'static [StreamSpec],
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
    page_size: usize,
}

impl MemoryFeed {
    /// A feed offering `streams`, all empty.
    pub fn new(streams: &'static [StreamSpec]) -> Self {
        MemoryFeed {
            streams,
            inner: Arc::default(),
            notify: Arc::new(Notify::new()),
            page_size: 100,
        }
    }

    /// Snapshot pages of `n` records (at least one).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, inner: &mut Inner, ev: FeedEvent) {
        if inner.connected && !inner.dropping {
            inner.queue.push_back(ev);
            self.notify.notify_one();
        }
    }

    fn stream_name(&self, stream: &str) -> &'static str {
        self.streams
            .iter()
            .find(|s| s.name == stream)
            .map_or("unknown", |s| s.name)
    }

    /// Create or change a record (publishes an upsert).
    pub fn upsert(&self, stream: &str, record: Record) {
        let name = self.stream_name(stream);
        let mut g = self.lock();
        g.truth
            .entry(name)
            .or_default()
            .insert(record.id.clone(), record.clone());
        self.publish(
            &mut g,
            FeedEvent::Upsert {
                stream: name,
                record,
            },
        );
    }

    /// Remove a record (publishes a delete when it existed).
    pub fn delete(&self, stream: &str, id: &str) {
        let name = self.stream_name(stream);
        let mut g = self.lock();
        if g.truth.entry(name).or_default().remove(id).is_some() {
            self.publish(
                &mut g,
                FeedEvent::Delete {
                    stream: name,
                    id: id.to_string(),
                },
            );
        }
    }

    /// Publish `ev` as it is (a replay), changing no truth.
    pub fn emit(&self, ev: FeedEvent) {
        let mut g = self.lock();
        self.publish(&mut g, ev);
    }

    /// Break the open session: its next read fails, and changes until the next connect
    /// publish nothing (they are lost).
    pub fn disconnect(&self) {
        let mut g = self.lock();
        g.connected = false;
        g.queue.clear();
        self.notify.notify_one();
    }

    /// While `on`, changes publish no event although the session stays open.
    pub fn set_dropping(&self, on: bool) {
        self.lock().dropping = on;
    }

    /// Tell the session that events of `stream` (`None`: all) were lost.
    pub fn report_lost(&self, stream: Option<&str>) {
        let stream = stream.map(|s| self.stream_name(s));
        let mut g = self.lock();
        if g.connected {
            g.queue.push_back(FeedEvent::Lost { stream });
            self.notify.notify_one();
        }
    }

    /// The next `n` connects fail with a transient error.
    pub fn fail_connects(&self, n: u32) {
        self.lock().failing_connects = n;
    }

    /// The truth of a stream, by id.
    pub fn truth(&self, stream: &str) -> BTreeMap<String, Record> {
        let name = self.stream_name(stream);
        self.lock().truth.get(name).cloned().unwrap_or_default()
    }

    /// Successful connects so far.
    pub fn connects(&self) -> u64 {
        self.lock().connects
    }

    /// Snapshot listings started so far (first pages served).
    pub fn snapshots(&self) -> u64 {
        self.lock().snapshots
    }

    /// Events published and not yet read.
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }
}

/// A session of a [`MemoryFeed`].
struct MemorySession {
    feed: MemoryFeed,
    session: u64,
}

#[async_trait::async_trait]
impl FeedSession for MemorySession {
    async fn next_event(&mut self, wait: Duration) -> Result<Option<FeedEvent>, ConnectorError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            {
                let mut g = self.feed.lock();
                if !g.connected || g.session != self.session {
                    return Err(ConnectorError::Transient("feed connection reset".into()));
                }
                if let Some(ev) = g.queue.pop_front() {
                    return Ok(Some(ev));
                }
            }
            let notified = self.feed.notify.notified();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }
}

#[async_trait::async_trait]
impl ChangeFeed for MemoryFeed {
    fn provider(&self) -> &'static str {
        "memory"
    }

    fn streams(&self) -> &'static [StreamSpec] {
        self.streams
    }

    async fn connect(&self) -> Result<Box<dyn FeedSession>, ConnectorError> {
        let mut g = self.lock();
        if g.failing_connects > 0 {
            g.failing_connects -= 1;
            return Err(ConnectorError::Transient("feed refused the connection".into()));
        }
        g.session += 1;
        g.connected = true;
        g.queue.clear();
        g.connects += 1;
        Ok(Box::new(MemorySession {
            feed: self.clone(),
            session: g.session,
        }))
    }

    async fn snapshot_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let from = match cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .map_err(|_| ConnectorError::Parse(format!("bad snapshot cursor {c:?}")))?,
        };
        let mut g = self.lock();
        if from == 0 {
            g.snapshots += 1;
        }
        let all = g.truth.get(stream.name);
        let records: Vec<Record> = all
            .map(|t| t.values().skip(from).take(self.page_size).cloned().collect())
            .unwrap_or_default();
        let total = all.map_or(0, BTreeMap::len);
        let end = from + records.len();
        Ok(Page {
            records,
            next: (end < total).then(|| end.to_string()),
        })
    }
}
