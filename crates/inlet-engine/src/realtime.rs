//! Realtime: apply a change feed's events as they arrive, paired with full resyncs.
//!
//! A [`ChangeFeed`] pushes changes, but its events are hints: whatever is published while
//! the session is down is lost, and events may repeat or come out of order. So the loop
//! ([`Engine::run_realtime`]):
//!
//! 1. connects (the feed subscribes first and buffers what changes meanwhile), handing the
//!    feed the last position it committed, if the feed has positions;
//! 2. unless the session resumed from that position, runs a **full resync** of every
//!    stream: the snapshot's pages are upserted ([`Store::commit_page`]: unchanged rows
//!    are not rewritten) and their ids staged; once the listing ended, the rows it lacks
//!    are tombstoned in ONE transaction ([`Store::apply_reconcile`]), behind the same
//!    safety valve as a reconcile run. Events are not applied during a resync: they wait
//!    in the session and are applied after it, so the snapshot never undoes them;
//! 3. applies events in batches (the last event of an id wins): ids that only changed
//!    ([`FeedEvent::Changed`]) are read again ([`ChangeFeed::fetch`]; an id it no longer
//!    returns is gone), upserts commit in one [`Store::commit_page`] per stream, deletes
//!    as tombstones — so a repeated event writes nothing; then the session's position is
//!    saved (the cursor of the feed's first stream), never ahead of committed events;
//! 4. resyncs again every [`RealtimeOptions::resync_every`] (by the engine's clock) and
//!    when the session reports lost events ([`FeedEvent::Lost`]); the saved position is
//!    cleared first, so an interrupted resync is run again on the next start;
//! 5. on a session or source error connects again after a backoff (doubling from
//!    [`RealtimeOptions::reconnect_delay`] to [`RealtimeOptions::max_reconnect_delay`]);
//!    errors no reconnect fixes (credentials, configuration) end the run.
//!
//! The run is one row (mode `reconcile`, trigger `realtime`) whose stats grow while the
//! loop runs; it ends `success` when cancelled, `failed` on an error a reconnect cannot
//! fix (the connection is then marked `needs_reauth` for refused credentials, else
//! `failing`), `partial` when the safety valve stopped a resync. Like [`Engine::sync`], the
//! caller holds the connection's lease: the loop is the connection's only writer.
//!
//! [`Store::commit_page`]: inlet_core::Store::commit_page
//! [`Store::apply_reconcile`]: inlet_core::Store::apply_reconcile

use crate::reconcile::ReconcilePolicy;
use crate::sync::{Engine, EngineError, reauth_hint};
use inlet_core::{
    ChangeFeed, Connection, ConnectionStatus, ConnectorError, FeedEvent, FeedSession, PageBatch,
    ReconcileBatch, Record, Run, RunMode, RunStats, RunStatus, StoreError, StreamSpec, StreamStats,
    TombstoneBatch, Trigger,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A full resync every hour by default, on top of those after (re)connects.
pub const DEFAULT_RESYNC_EVERY: Duration = Duration::from_secs(3600);
/// Events applied per transaction at most.
pub const DEFAULT_FEED_BATCH: usize = 500;
/// Ids staged per store call during a resync.
const STAGE_CHUNK: usize = 10_000;
/// Ids read again per [`ChangeFeed::fetch`] call at most.
const FETCH_CHUNK: usize = 500;
/// Rows per page when listing a stream's live ids (to apply deletes).
const LIVE_PAGE: u32 = 10_000;

/// How to run a change feed.
#[derive(Clone)]
pub struct RealtimeOptions {
    /// Time between periodic full resyncs (by the engine's clock).
    pub resync_every: Duration,
    /// Events applied per transaction at most.
    pub batch_events: usize,
    /// How long to wait for an event before checking the cancel flag and the clock.
    pub wait: Duration,
    /// Wait before the first reconnect; doubles with every reconnect up to
    /// `max_reconnect_delay`, and is reset once a session (after its resync) reads events
    /// without an error.
    pub reconnect_delay: Duration,
    /// The longest wait between reconnects.
    pub max_reconnect_delay: Duration,
    /// Set to stop: the loop ends after the batch in hand, within `wait` while it waits
    /// for events, or before the next snapshot page of a resync (whose staged ids are
    /// dropped; pages already upserted stay).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Let a resync tombstone more than the safety valve's share of a stream.
    pub force: bool,
}

impl Default for RealtimeOptions {
    fn default() -> Self {
        RealtimeOptions {
            resync_every: DEFAULT_RESYNC_EVERY,
            batch_events: DEFAULT_FEED_BATCH,
            wait: Duration::from_secs(1),
            reconnect_delay: Duration::from_secs(1),
            max_reconnect_delay: Duration::from_secs(60),
            cancel: None,
            force: false,
        }
    }
}

/// What an id's last event in a batch asks for.
enum Change {
    /// Write this content.
    Put(Record),
    /// Tombstone the id.
    Gone,
    /// Read the id's current content from the feed.
    Read,
}

/// Why the loop stopped.
enum Stop {
    Cancelled,
    /// The source refused the credentials: the connection needs them renewed.
    Reauth(String),
    /// An error no reconnect can fix (configuration, an unsupported call).
    Fatal(String),
    /// The safety valve stopped a resync; nothing was tombstoned.
    Refused(String),
}

/// How a session or a resync ended.
enum End {
    Stop(Stop),
    /// The session broke: connect again and resync.
    Lost(ConnectorError),
}

/// A session error a reconnect (and the resync after it) repairs.
fn reconnectable(e: &ConnectorError) -> bool {
    !matches!(
        e,
        ConnectorError::NeedsReauth(_) | ConnectorError::Config(_) | ConnectorError::Unsupported(_)
    )
}

impl Engine {
    /// Run `feed` for `conn` until `opts.cancel` is set or an error no reconnect can fix;
    /// returns the finished run. See the module documentation.
    pub async fn run_realtime(
        &self,
        conn: &Connection,
        feed: &dyn ChangeFeed,
        opts: &RealtimeOptions,
    ) -> Result<Run, EngineError> {
        let store = self.store().clone();
        let run_id = store
            .start_run(conn.id, RunMode::Reconcile, Trigger::Realtime, self.now())
            .await?;
        let mut rt = Realtime {
            engine: self,
            conn,
            feed,
            opts,
            run_id,
            max_share: None,
            resyncs: 0,
            reconnects: 0,
            resumes: 0,
            losses: 0,
            position: None,
            streams: BTreeMap::new(),
        };
        let end = match ReconcilePolicy::from_config(&conn.config) {
            Ok(p) => {
                rt.max_share = (!opts.force).then_some(p.max_share);
                rt.run().await
            }
            Err(e) => Ok(Stop::Fatal(e)),
        };
        let (status, error) = match end {
            Ok(Stop::Cancelled) => (RunStatus::Success, None),
            Ok(Stop::Reauth(msg)) => {
                // As a pulled sync does: the connection is marked until new credentials.
                let msg = format!("{msg}; {}", reauth_hint(&conn.provider, &conn.name));
                store
                    .set_connection_status(
                        conn.id,
                        ConnectionStatus::NeedsReauth,
                        Some(&msg),
                        self.now(),
                    )
                    .await?;
                (RunStatus::Failed, Some(msg))
            }
            Ok(Stop::Fatal(e)) => {
                if conn.status != ConnectionStatus::Paused {
                    store
                        .set_connection_status(
                            conn.id,
                            ConnectionStatus::Failing,
                            Some(&e),
                            self.now(),
                        )
                        .await?;
                }
                (RunStatus::Failed, Some(e))
            }
            Ok(Stop::Refused(e)) => (RunStatus::Partial, Some(e)),
            Err(e) => {
                let msg = e.to_string();
                let _ = rt.save(RunStatus::Failed, Some(&msg), true).await;
                return Err(e.into());
            }
        };
        rt.save(status, error.as_deref(), true).await?;
        tracing::info!(
            connection = %conn.name,
            resyncs = rt.resyncs,
            reconnects = rt.reconnects,
            resumes = rt.resumes,
            losses = rt.losses,
            "The change feed's run ended."
        );
        store
            .get_run(run_id)
            .await?
            .ok_or_else(|| EngineError::Store(StoreError::NotFound(format!("run {run_id}"))))
    }
}

/// One realtime run under way.
struct Realtime<'a> {
    engine: &'a Engine,
    conn: &'a Connection,
    feed: &'a dyn ChangeFeed,
    opts: &'a RealtimeOptions,
    run_id: i64,
    max_share: Option<f64>,
    /// Resyncs started (names their staging tokens).
    resyncs: u64,
    /// Sessions that broke, sessions that resumed, loss reports.
    reconnects: u64,
    resumes: u64,
    losses: u64,
    /// The saved position as last read or written (`None`: not read yet).
    position: Option<Option<String>>,
    streams: BTreeMap<String, StreamStats>,
}

impl Realtime<'_> {
    fn cancelled(&self) -> bool {
        self.opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Sleep `d` in short steps; false when cancelled meanwhile.
    async fn pause(&self, d: Duration) -> bool {
        let step = Duration::from_millis(50);
        let mut left = d;
        while !left.is_zero() {
            if self.cancelled() {
                return false;
            }
            let s = left.min(step);
            tokio::time::sleep(s).await;
            left -= s;
        }
        !self.cancelled()
    }

    /// Save the run's totals and per-stream stats.
    async fn save(
        &self,
        status: RunStatus,
        error: Option<&str>,
        fin: bool,
    ) -> Result<(), StoreError> {
        let mut totals = RunStats::default();
        for st in self.streams.values() {
            totals.add(&st.stats);
        }
        let finished = fin.then(|| self.engine.now());
        self.engine
            .store()
            .update_run(self.run_id, status, &totals, &self.streams, error, finished)
            .await
    }

    fn stats(&mut self, stream: &str) -> &mut StreamStats {
        self.streams.entry(stream.to_string()).or_default()
    }

    /// Connect, resync, apply events; reconnect when the session breaks.
    async fn run(&mut self) -> Result<Stop, StoreError> {
        let mut delay = self.opts.reconnect_delay;
        loop {
            if self.cancelled() {
                return Ok(Stop::Cancelled);
            }
            let resume = self.saved_position().await?;
            let end = match self.feed.connect(resume.as_deref()).await {
                Ok(mut session) => self.serve(&mut *session, &mut delay).await?,
                Err(e) => self.source_error(e),
            };
            match end {
                End::Stop(s) => return Ok(s),
                End::Lost(e) => {
                    self.reconnects += 1;
                    tracing::warn!(
                        connection = %self.conn.name,
                        error = %e,
                        delay_ms = delay.as_millis() as u64,
                        "The change feed's session broke; reconnecting."
                    );
                    if !self.pause(delay).await {
                        return Ok(Stop::Cancelled);
                    }
                    delay = delay.saturating_mul(2).min(self.opts.max_reconnect_delay);
                }
            }
        }
    }

    /// How a source error ends the session.
    fn source_error(&self, e: ConnectorError) -> End {
        match e {
            ConnectorError::NeedsReauth(msg) => End::Stop(Stop::Reauth(msg)),
            e if reconnectable(&e) => End::Lost(e),
            e => End::Stop(Stop::Fatal(e.to_string())),
        }
    }

    /// The feed's stream that keeps the saved position (its cursor).
    fn position_stream(&self) -> Option<&'static str> {
        self.feed.streams().first().map(|s| s.name)
    }

    /// The position the last committed events end at.
    async fn saved_position(&mut self) -> Result<Option<String>, StoreError> {
        if let Some(p) = &self.position {
            return Ok(p.clone());
        }
        let Some(name) = self.position_stream() else {
            return Ok(None);
        };
        let saved = self
            .engine
            .store()
            .sync_state(self.conn.id, name)
            .await?
            .cursor;
        self.position = Some(saved.clone());
        Ok(saved)
    }

    /// Save `position` (`None`: forget it), after the events it covers are committed.
    async fn save_position(&mut self, position: Option<String>) -> Result<(), StoreError> {
        let Some(name) = self.position_stream() else {
            return Ok(());
        };
        if self.saved_position().await? == position {
            return Ok(());
        }
        let store = self.engine.store().clone();
        let mut state = store.sync_state(self.conn.id, name).await?;
        state.cursor = position.clone();
        store.put_sync_state(self.conn.id, name, &state).await?;
        self.position = Some(position);
        Ok(())
    }

    /// A resync of `only` (or every stream) with the saved position cleared first, so a
    /// resync cut short is run again by the next start instead of being resumed past.
    async fn resync_unresumable(&mut self, only: Option<&str>) -> Result<Option<End>, StoreError> {
        self.save_position(None).await?;
        self.resync(only).await
    }

    /// One session: a full resync first (unless it resumed), then events, with periodic
    /// resyncs.
    async fn serve(
        &mut self,
        session: &mut dyn FeedSession,
        delay: &mut Duration,
    ) -> Result<End, StoreError> {
        if session.resumed() {
            self.resumes += 1;
        } else if let Some(end) = self.resync_unresumable(None).await? {
            return Ok(end);
        }
        let every = self.opts.resync_every.as_millis().min(i64::MAX as u128) as i64;
        let mut next_resync = self.engine.now().0.saturating_add(every);
        let mut healthy = false;
        loop {
            if self.cancelled() {
                return Ok(End::Stop(Stop::Cancelled));
            }
            if self.engine.now().0 >= next_resync {
                if let Some(end) = self.resync(None).await? {
                    return Ok(end);
                }
                next_resync = self.engine.now().0.saturating_add(every);
            }
            let mut batch = Vec::new();
            let mut lost = None;
            let mut broke = None;
            while batch.len() < self.opts.batch_events.max(1) {
                // Wait for the first event; then take only what is already buffered.
                let wait = if batch.is_empty() {
                    self.opts.wait
                } else {
                    Duration::ZERO
                };
                match session.next_event(wait).await {
                    Ok(Some(FeedEvent::Lost { stream })) => {
                        lost = Some(stream);
                        break;
                    }
                    Ok(Some(ev)) => batch.push(ev),
                    Ok(None) => break,
                    Err(e) => {
                        broke = Some(e);
                        break;
                    }
                }
            }
            if broke.is_none() && !healthy {
                // The session reads: the next break starts the backoff afresh.
                healthy = true;
                *delay = self.opts.reconnect_delay;
            }
            // Events received before a loss or a break are still true: apply them.
            if let Some(end) = self.apply(batch).await? {
                return Ok(end);
            }
            if let Some(e) = broke {
                return Ok(self.source_error(e));
            }
            if let Some(stream) = lost {
                self.losses += 1;
                tracing::warn!(
                    connection = %self.conn.name,
                    stream = stream.unwrap_or("*"),
                    "The change feed lost events; resyncing."
                );
                if let Some(end) = self.resync_unresumable(stream).await? {
                    return Ok(end);
                }
            }
            self.save_position(session.position()).await?;
        }
    }

    /// A full resync of `only` (or every stream); `None` when it completed.
    async fn resync(&mut self, only: Option<&str>) -> Result<Option<End>, StoreError> {
        self.resyncs += 1;
        for spec in self.feed.streams() {
            if only.is_some_and(|s| s != spec.name) {
                continue;
            }
            if let Some(end) = self.resync_stream(spec).await? {
                self.save(RunStatus::Running, None, false).await?;
                return Ok(Some(end));
            }
        }
        self.save(RunStatus::Running, None, false).await?;
        Ok(None)
    }

    /// Upsert the stream's snapshot page by page, staging its ids, then tombstone what it
    /// lacks in one transaction. A listing that breaks changes no tombstone.
    async fn resync_stream(&mut self, spec: &StreamSpec) -> Result<Option<End>, StoreError> {
        let store = self.engine.store().clone();
        let token = format!(
            "realtime:{}:{}:{}:{}",
            self.conn.id, spec.name, self.run_id, self.resyncs
        );
        let started = self.engine.now();
        let mut cursor: Option<String> = None;
        let mut buf: Vec<String> = Vec::new();
        loop {
            if self.cancelled() {
                store.drop_staged(&token).await?;
                return Ok(Some(End::Stop(Stop::Cancelled)));
            }
            let page = match self.feed.snapshot_page(spec, cursor.as_deref()).await {
                Ok(p) => p,
                Err(e) => {
                    store.drop_staged(&token).await?;
                    return Ok(Some(self.source_error(e)));
                }
            };
            buf.extend(page.records.iter().map(|r| r.id.clone()));
            self.upsert(spec, page.records).await?;
            if buf.len() >= STAGE_CHUNK {
                store.stage_ids(&token, &buf).await?;
                buf.clear();
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        if !buf.is_empty() {
            store.stage_ids(&token, &buf).await?;
        }
        let now = self.engine.now();
        let mut state = store.sync_state(self.conn.id, spec.name).await?;
        state.last_sync_at = Some(started);
        state.last_success_at = Some(now);
        state.last_reconciled_at = Some(now);
        state.sync_count += 1;
        let out = store
            .apply_reconcile(ReconcileBatch {
                connection_id: self.conn.id,
                stream: spec,
                token: &token,
                max_share: self.max_share,
                state: &state,
                at: now,
            })
            .await?;
        let st = self.stats(spec.name);
        if out.refused {
            let msg = format!(
                "resync of {} stopped by the safety valve: its snapshot lacks {} of {} records; \
                 nothing was removed. If the source really lost them, run again with force",
                spec.name, out.tombstoned, out.live_before
            );
            st.error = Some(msg.clone());
            return Ok(Some(End::Stop(Stop::Refused(msg))));
        }
        st.complete_listing = true;
        st.stats.deleted += out.tombstoned;
        st.stats.updated += out.revived;
        Ok(None)
    }

    /// Commit records in one transaction (unchanged ones are not rewritten).
    async fn upsert(&mut self, spec: &StreamSpec, records: Vec<Record>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let store = self.engine.store().clone();
        let state = store.sync_state(self.conn.id, spec.name).await?;
        let fetched = records.len() as u64;
        let out = store
            .commit_page(PageBatch {
                connection_id: self.conn.id,
                stream: spec,
                records,
                state: &state,
                refresh_derived: true,
                at: self.engine.now(),
            })
            .await?;
        let st = &mut self.stats(spec.name).stats;
        st.fetched += fetched;
        st.pages += 1;
        st.inserted += out.inserted;
        st.updated += out.updated;
        st.unchanged += out.unchanged;
        st.derived_inserted += out.derived_inserted;
        st.derived_updated += out.derived_updated;
        Ok(())
    }

    /// Apply a batch of events: per stream, the last event of each id wins; ids that only
    /// changed are read again; upserts commit in one transaction, then deletes as
    /// tombstones. `Some` when reading ids again failed (the session must end).
    async fn apply(&mut self, batch: Vec<FeedEvent>) -> Result<Option<End>, StoreError> {
        if batch.is_empty() {
            return Ok(None);
        }
        let mut by_stream: BTreeMap<&'static str, BTreeMap<String, Change>> = BTreeMap::new();
        for ev in batch {
            let (stream, id, change) = match ev {
                FeedEvent::Changed { stream, id } => (stream, id, Change::Read),
                FeedEvent::Upsert { stream, record } => {
                    (stream, record.id.clone(), Change::Put(record))
                }
                FeedEvent::Delete { stream, id } => (stream, id, Change::Gone),
                FeedEvent::Lost { .. } => continue,
            };
            by_stream.entry(stream).or_default().insert(id, change);
        }
        for (name, changes) in by_stream {
            let Some(spec) = self.feed.streams().iter().find(|s| s.name == name) else {
                tracing::warn!(
                    connection = %self.conn.name,
                    stream = name,
                    "The change feed sent events of a stream it does not offer; skipped."
                );
                self.stats(name).stats.items_skipped_with_error += changes.len() as u64;
                continue;
            };
            let mut upserts = Vec::new();
            let mut deletes = Vec::new();
            let mut reads = Vec::new();
            for (id, change) in changes {
                match change {
                    Change::Put(r) => upserts.push(r),
                    Change::Gone => deletes.push(id),
                    Change::Read => reads.push(id),
                }
            }
            for chunk in reads.chunks(FETCH_CHUNK) {
                let found = match self.feed.fetch(spec, chunk).await {
                    Ok(f) => f,
                    Err(e) => {
                        // What the batch held before is committed below; the resync
                        // after the reconnect reads these ids again.
                        self.upsert(spec, upserts).await?;
                        self.delete(spec, &deletes).await?;
                        return Ok(Some(self.source_error(e)));
                    }
                };
                let asked: HashSet<&str> = chunk.iter().map(String::as_str).collect();
                let mut present = HashSet::new();
                for r in found {
                    // A record the feed was not asked for is not trusted.
                    if asked.contains(r.id.as_str()) && present.insert(r.id.clone()) {
                        upserts.push(r);
                    }
                }
                deletes.extend(chunk.iter().filter(|id| !present.contains(*id)).cloned());
            }
            self.upsert(spec, upserts).await?;
            self.delete(spec, &deletes).await?;
        }
        self.save(RunStatus::Running, None, false).await?;
        Ok(None)
    }

    /// Tombstone `ids` (those live) and count them.
    async fn delete(&mut self, spec: &StreamSpec, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.stats(spec.name).stats.fetched += ids.len() as u64;
        let n = self.tombstone(spec, ids).await?;
        self.stats(spec.name).stats.deleted += n;
        Ok(())
    }

    /// Tombstone the live rows among `ids` in one transaction; ids already tombstoned or
    /// never stored change nothing. The store's tombstone takes the ids to keep, so the
    /// stream's live ids are listed first (the loop is the connection's only writer).
    async fn tombstone(&mut self, spec: &StreamSpec, ids: &[String]) -> Result<u64, StoreError> {
        let store = self.engine.store().clone();
        let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut keep = Vec::new();
        let mut hit = false;
        let mut after: Option<String> = None;
        loop {
            let rows = store
                .export_page(self.conn.id, spec, after.as_deref(), LIVE_PAGE, false)
                .await?;
            let full = rows.len() as u64 >= u64::from(LIVE_PAGE);
            let last = rows.last().map(|r| r.id.clone()).filter(|_| full);
            for r in rows {
                if gone.contains(r.id.as_str()) {
                    hit = true;
                } else {
                    keep.push(r.id);
                }
            }
            match last {
                Some(l) => after = Some(l),
                None => break,
            }
        }
        if !hit {
            return Ok(0);
        }
        let state = store.sync_state(self.conn.id, spec.name).await?;
        store
            .tombstone_missing(TombstoneBatch {
                window: None,
                connection_id: self.conn.id,
                stream: spec,
                seen: &keep,
                state: &state,
                at: self.engine.now(),
                children: None,
            })
            .await
    }
}
