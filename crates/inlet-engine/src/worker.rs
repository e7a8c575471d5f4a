//! Starting syncs: one at a time per connection, under a lease in the database,
//! coalescing triggers that arrive while one runs.
//!
//! A [`Dispatcher`] is shared by the scheduler and the HTTP API of one process. For each
//! connection it keeps at most one *active* entry: the running sync plus at most one
//! queued follow-up. A trigger for a connection that is running returns the running
//! run's id at once and sets the follow-up (a burst of triggers becomes one follow-up,
//! so nothing that changed during the run is missed); with `if_idle` it is refused
//! instead. Across processes the lease row (`Store::try_acquire_lease`) keeps syncs of a
//! connection apart: it is renewed while the sync runs, released at its end, and taken
//! over once expired when its holder died.
//!
//! Shutdown sets every running sync's cancel flag, so each stops at its next chunk
//! boundary with its checkpoint committed, and waits for them.

use crate::RefreshOutcome;
use crate::sync::{Engine, EngineError, Progress, SyncOptions};
use inlet_core::{
    Connection, ConnectionStatus, Connector, ConnectorError, RunMode, RunStats, RunStatus,
    StoreError, StreamStats, Timestamp, Trigger,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

/// Builds the connector of a stored connection (decrypting its credentials).
pub type ConnectorFactory =
    Arc<dyn Fn(&Connection) -> Result<Box<dyn Connector>, ConnectorError> + Send + Sync>;

/// How a sync attempt ended, as the scheduler needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Synced (success or partial).
    Success,
    /// Failed (provider error, bad credentials, store error).
    Failed,
    /// Stopped by shutdown at a chunk boundary.
    Cancelled,
    /// Never started: another process holds the lease, or a run was already active.
    NotStarted,
    /// Stopped because the provider's rate limit or call quota is spent until `until`
    /// (the run is `waiting`, its checkpoint kept).
    Waiting {
        /// When the provider takes requests again.
        until: Timestamp,
    },
}

/// A sync attempt ended.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// The connection.
    pub connection_id: i64,
    /// How it ended.
    pub outcome: Outcome,
    /// When.
    pub at: Timestamp,
    /// Records received from the provider.
    pub records: u64,
}

/// What a trigger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Triggered {
    /// A new run started.
    Started {
        /// Its id.
        run_id: i64,
    },
    /// A run was already going: one follow-up run is queued after it.
    Coalesced {
        /// The running run.
        run_id: i64,
    },
    /// A scheduled run of this connection is waiting for a free worker slot and has not
    /// started yet; it will read everything, so no follow-up is needed.
    Queued,
}

/// Why a trigger did not start or queue a run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TriggerError {
    /// The process is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Paused and needs_reauth connections are not synced.
    #[error("connection is {0}; resume it (or re-authenticate) first")]
    NotSyncable(ConnectionStatus),
    /// A sync is running (`if_idle`), or another process holds the connection's lease.
    #[error("a sync of this connection is running")]
    Busy {
        /// The running run, when known.
        run_id: Option<i64>,
    },
    /// The connector could not be built (bad config or credentials).
    #[error("{0}")]
    Connector(String),
    /// The store failed.
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for TriggerError {
    fn from(e: StoreError) -> Self {
        TriggerError::Store(e.to_string())
    }
}

/// Dispatcher settings.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// This process's lease holder id.
    pub holder: String,
    /// Lease lifetime; renewed every third of it while a sync runs.
    pub lease_ttl_ms: i64,
    /// Scheduled syncs running at once (API triggers do not wait for a slot).
    pub max_scheduled: usize,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            holder: holder_id(),
            lease_ttl_ms: 60_000,
            max_scheduled: 8,
        }
    }
}

/// A lease holder id unique to this process: `host:pid:suffix` (the suffix from the std
/// hasher's per-process random keys). `inlet sync` reads the host and pid back to tell
/// a holder that died on this machine (see `lease.rs`).
pub fn holder_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = crate::lease::host_name();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{host}:{}:{:08x}", std::process::id(), h.finish() as u32)
}

/// Counters since the process started, for `/metrics`. Record counts, requests, retries
/// and rate-limit waits grow as each page commits; `runs` and `last_success` when a run
/// ends.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    /// Finished runs by status.
    pub runs: BTreeMap<String, u64>,
    /// Records received.
    pub fetched: u64,
    /// Records inserted.
    pub inserted: u64,
    /// Records updated.
    pub updated: u64,
    /// Records tombstoned.
    pub deleted: u64,
    /// HTTP requests.
    pub requests: u64,
    /// Retried requests.
    pub retries: u64,
    /// Milliseconds spent waiting for rate limits.
    pub rate_limit_wait_ms: u64,
    /// Last successful sync end per connection.
    pub last_success: BTreeMap<i64, Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
enum Start {
    Pending,
    Running(i64),
    Refused(TriggerError),
}

impl PartialEq for TriggerError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

struct Active {
    state: Arc<watch::Sender<Start>>,
    /// A scheduled run waiting for a worker slot (not started yet).
    waiting: Arc<AtomicBool>,
    follow_up: Option<(RunMode, Trigger)>,
    cancel: Arc<AtomicBool>,
}

struct Inner {
    engine: Arc<Engine>,
    factory: ConnectorFactory,
    config: DispatcherConfig,
    active: Mutex<HashMap<i64, Active>>,
    idle: Notify,
    shutting_down: AtomicBool,
    permits: Arc<Semaphore>,
    finished: Option<mpsc::UnboundedSender<Finished>>,
    metrics: Mutex<Metrics>,
    delays: Mutex<Vec<i64>>,
}

/// Starts syncs for the scheduler and the API. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tells the waiting trigger the run id, records how late a scheduled run started, and
/// adds each committed page's counts to the process metrics as it commits (so `/metrics`
/// follows a long run instead of jumping at its end).
struct StartReporter {
    state: Arc<watch::Sender<Start>>,
    due: Option<Timestamp>,
    engine: Arc<Engine>,
    delays: Arc<Inner>,
    /// Per stream, its totals when last reported; and what was counted for this run.
    counted: Mutex<(HashMap<String, RunStats>, RunStats)>,
}

/// The counters `/metrics` sums, `a - b` each (never below zero).
fn counter_delta(a: &RunStats, b: &RunStats) -> RunStats {
    RunStats {
        fetched: a.fetched.saturating_sub(b.fetched),
        inserted: a.inserted.saturating_sub(b.inserted),
        updated: a.updated.saturating_sub(b.updated),
        deleted: a.deleted.saturating_sub(b.deleted),
        requests: a.requests.saturating_sub(b.requests),
        retries: a.retries.saturating_sub(b.retries),
        rate_limit_wait_ms: a.rate_limit_wait_ms.saturating_sub(b.rate_limit_wait_ms),
        ..RunStats::default()
    }
}

impl StartReporter {
    /// Count what a stream committed since its last report.
    fn stream_progress(&self, stream: &str, totals: &RunStats) {
        let d = {
            let mut c = lock(&self.counted);
            let last = c.0.entry(stream.to_string()).or_default();
            let d = counter_delta(totals, last);
            *last = *totals;
            c.1.add(&d);
            d
        };
        lock(&self.delays.metrics).add_counts(&d);
    }

    /// What this run has counted so far.
    fn counted(&self) -> RunStats {
        lock(&self.counted).1
    }
}

impl Progress for StartReporter {
    fn run_started(&self, run_id: i64) {
        if let Some(due) = self.due {
            let mut d = lock(&self.delays.delays);
            if d.len() < 1_000_000 {
                d.push(self.engine.now().0 - due.0);
            }
        }
        self.state.send_replace(Start::Running(run_id));
    }
    fn page_committed(&self, stream: &str, stats: &StreamStats) {
        self.stream_progress(stream, &stats.stats);
    }
    fn stream_finished(&self, stream: &str, stats: &StreamStats) {
        self.stream_progress(stream, &stats.stats);
    }
}

impl Metrics {
    fn add_counts(&mut self, s: &RunStats) {
        self.fetched += s.fetched;
        self.inserted += s.inserted;
        self.updated += s.updated;
        self.deleted += s.deleted;
        self.requests += s.requests;
        self.retries += s.retries;
        self.rate_limit_wait_ms += s.rate_limit_wait_ms;
    }
}

impl Dispatcher {
    /// A dispatcher running syncs through `engine`; finished attempts are reported on
    /// `finished` (the scheduler listens there).
    pub fn new(
        engine: Arc<Engine>,
        factory: ConnectorFactory,
        config: DispatcherConfig,
        finished: Option<mpsc::UnboundedSender<Finished>>,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(config.max_scheduled.max(1)));
        Dispatcher {
            inner: Arc::new(Inner {
                engine,
                factory,
                config,
                active: Mutex::new(HashMap::new()),
                idle: Notify::new(),
                shutting_down: AtomicBool::new(false),
                permits,
                finished,
                metrics: Mutex::new(Metrics::default()),
                delays: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// Start a sync of `conn` now, or coalesce into the running one (one follow-up run
    /// is queued). With `if_idle`, a running sync refuses instead. Returns once the run
    /// row exists, with its id; the sync goes on in the background.
    pub async fn trigger(
        &self,
        conn: &Connection,
        mode: RunMode,
        trigger: Trigger,
        if_idle: bool,
    ) -> Result<Triggered, TriggerError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(TriggerError::ShuttingDown);
        }
        if matches!(
            conn.status,
            ConnectionStatus::Paused | ConnectionStatus::NeedsReauth
        ) {
            return Err(TriggerError::NotSyncable(conn.status));
        }
        let (mut rx, coalesced) = {
            let mut active = lock(&self.inner.active);
            match active.get_mut(&conn.id) {
                Some(a) if a.waiting.load(Ordering::SeqCst) => {
                    // Not started: answer at once instead of waiting for a slot.
                    return if if_idle {
                        Err(TriggerError::Busy { run_id: None })
                    } else {
                        Ok(Triggered::Queued)
                    };
                }
                Some(a) => {
                    if !if_idle {
                        let m = match a.follow_up {
                            Some((RunMode::Full, _)) => RunMode::Full,
                            _ => mode,
                        };
                        a.follow_up = Some((m, trigger));
                    }
                    (a.state.subscribe(), true)
                }
                None => {
                    let state = Arc::new(watch::Sender::new(Start::Pending));
                    let rx = state.subscribe();
                    active.insert(
                        conn.id,
                        Active {
                            state,
                            waiting: Arc::new(AtomicBool::new(false)),
                            follow_up: None,
                            cancel: Arc::new(AtomicBool::new(false)),
                        },
                    );
                    (rx, false)
                }
            }
        };
        if !coalesced {
            let me = self.clone();
            let conn = conn.clone();
            tokio::spawn(async move { me.drive(conn, mode, trigger, None).await });
        }
        let start = rx
            .wait_for(|s| *s != Start::Pending)
            .await
            .map(|s| s.clone())
            .unwrap_or(Start::Refused(TriggerError::ShuttingDown));
        match (start, coalesced, if_idle) {
            (Start::Running(id), false, _) => Ok(Triggered::Started { run_id: id }),
            (Start::Running(id), true, false) => Ok(Triggered::Coalesced { run_id: id }),
            (Start::Running(id), true, true) => Err(TriggerError::Busy { run_id: Some(id) }),
            (Start::Refused(e), _, _) => Err(e),
            (Start::Pending, _, _) => Err(TriggerError::ShuttingDown),
        }
    }

    /// Queue a scheduled sync that was due at `due`; it waits for one of the
    /// `max_scheduled` slots. Its end is reported on the finished channel.
    pub fn schedule(&self, conn: Connection, due: Timestamp) {
        let refused = self.inner.shutting_down.load(Ordering::SeqCst) || {
            let mut active = lock(&self.inner.active);
            match active.entry(conn.id) {
                std::collections::hash_map::Entry::Occupied(_) => true,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Active {
                        state: Arc::new(watch::Sender::new(Start::Pending)),
                        waiting: Arc::new(AtomicBool::new(true)),
                        follow_up: None,
                        cancel: Arc::new(AtomicBool::new(false)),
                    });
                    false
                }
            }
        };
        if refused {
            self.report(conn.id, Outcome::NotStarted, 0);
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let permit = me.inner.permits.clone().acquire_owned().await;
            if let Some(a) = lock(&me.inner.active).get(&conn.id) {
                a.waiting.store(false, Ordering::SeqCst);
            }
            me.drive(conn, RunMode::Delta, Trigger::Schedule, Some(due))
                .await;
            drop(permit);
        });
    }

    fn report(&self, connection_id: i64, outcome: Outcome, records: u64) {
        if let Some(tx) = &self.inner.finished {
            let _ = tx.send(Finished {
                connection_id,
                outcome,
                at: self.inner.engine.now(),
                records,
            });
        }
    }

    /// Run `conn` and then its follow-ups until none is queued.
    async fn drive(
        &self,
        mut conn: Connection,
        mut mode: RunMode,
        mut trigger: Trigger,
        mut due: Option<Timestamp>,
    ) {
        loop {
            let (state, cancel) = {
                let active = lock(&self.inner.active);
                match active.get(&conn.id) {
                    Some(a) => (a.state.clone(), a.cancel.clone()),
                    None => return,
                }
            };
            let (outcome, records) = if self.inner.shutting_down.load(Ordering::SeqCst) {
                state.send_replace(Start::Refused(TriggerError::ShuttingDown));
                (Outcome::NotStarted, 0)
            } else {
                self.run_once(&conn, mode, trigger, due, &state, &cancel)
                    .await
            };
            self.report(conn.id, outcome, records);
            let next = {
                let mut active = lock(&self.inner.active);
                let stopping = self.inner.shutting_down.load(Ordering::SeqCst);
                match active.get_mut(&conn.id) {
                    Some(a) if !stopping && a.follow_up.is_some() => {
                        let next = a.follow_up.take();
                        let fresh = Arc::new(watch::Sender::new(Start::Pending));
                        a.state = fresh;
                        next
                    }
                    _ => {
                        if let Some(a) = active.remove(&conn.id) {
                            // Wake triggers still waiting on a run that never started.
                            a.state.send_if_modified(|s| {
                                if *s == Start::Pending {
                                    *s = Start::Refused(TriggerError::ShuttingDown);
                                    true
                                } else {
                                    false
                                }
                            });
                        }
                        None
                    }
                }
            };
            let Some((m, t)) = next else { break };
            (mode, trigger, due) = (m, t, None);
            // The follow-up sees the connection as it is now (it may have been paused).
            match self
                .inner
                .engine
                .store()
                .get_connection(&conn.id.to_string())
                .await
            {
                Ok(Some(c))
                    if !matches!(
                        c.status,
                        ConnectionStatus::Paused | ConnectionStatus::NeedsReauth
                    ) =>
                {
                    conn = c
                }
                _ => {
                    let mut active = lock(&self.inner.active);
                    if let Some(a) = active.remove(&conn.id) {
                        a.state
                            .send_replace(Start::Refused(TriggerError::NotSyncable(
                                ConnectionStatus::Paused,
                            )));
                    }
                    break;
                }
            }
        }
        self.inner.idle.notify_waiters();
    }

    async fn run_once(
        &self,
        conn: &Connection,
        mode: RunMode,
        trigger: Trigger,
        due: Option<Timestamp>,
        state: &Arc<watch::Sender<Start>>,
        cancel: &Arc<AtomicBool>,
    ) -> (Outcome, u64) {
        let engine = &self.inner.engine;
        let store = engine.store().clone();
        let holder = self.inner.config.holder.clone();
        let ttl = self.inner.config.lease_ttl_ms;
        match store
            .try_acquire_lease(conn.id, &holder, engine.now(), ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                let run_id = running_run(&*store, conn.id).await;
                state.send_replace(Start::Refused(TriggerError::Busy { run_id }));
                return (Outcome::NotStarted, 0);
            }
            Err(e) => {
                state.send_replace(Start::Refused(e.into()));
                return (Outcome::Failed, 0);
            }
        }
        let connector = match (self.inner.factory)(conn) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(connection = %conn.name, error = %e, "Cannot build the connector.");
                let _ = store.release_lease(conn.id, &holder).await;
                state.send_replace(Start::Refused(TriggerError::Connector(e.to_string())));
                return (Outcome::Failed, 0);
            }
        };
        let renewer = {
            let (store, holder, cancel, engine) = (
                store.clone(),
                holder.clone(),
                cancel.clone(),
                engine.clone(),
            );
            let id = conn.id;
            tokio::spawn(async move {
                let every = Duration::from_millis((ttl / 3).max(10) as u64);
                loop {
                    tokio::time::sleep(every).await;
                    match store.renew_lease(id, &holder, engine.now(), ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(
                                connection_id = id,
                                "Sync lease lost; stopping the sync."
                            );
                            cancel.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(connection_id = id, error = %e, "Could not renew the sync lease.")
                        }
                    }
                }
            })
        };
        let mut opts = SyncOptions::new(mode);
        opts.trigger = trigger;
        opts.cancel = Some(cancel.clone());
        opts.lease_holder = Some(holder.clone());
        let reporter = StartReporter {
            state: state.clone(),
            due,
            engine: engine.clone(),
            delays: self.inner.clone(),
            counted: Mutex::new(Default::default()),
        };
        let result = engine.sync(conn, &*connector, &opts, &reporter).await;
        renewer.abort();
        if let Err(e) = store.release_lease(conn.id, &holder).await {
            tracing::warn!(connection = %conn.name, error = %e, "Could not release the sync lease.");
        }
        match result {
            Ok(run) => {
                let outcome = match run.status {
                    RunStatus::Success | RunStatus::Partial => Outcome::Success,
                    RunStatus::Waiting => Outcome::Waiting {
                        until: run.waiting_until.unwrap_or_else(|| engine.now()),
                    },
                    _ if cancel.load(Ordering::SeqCst) => Outcome::Cancelled,
                    _ => Outcome::Failed,
                };
                self.record(conn.id, &run, &reporter.counted());
                tracing::info!(connection = %conn.name, run_id = run.id, status = %run.status, fetched = run.stats.fetched, "Sync finished.");
                (outcome, run.stats.fetched)
            }
            Err(EngineError::Store(e)) => {
                tracing::error!(connection = %conn.name, error = %e, "Sync failed in the store.");
                state.send_if_modified(|s| {
                    if *s == Start::Pending {
                        *s = Start::Refused(TriggerError::Store(e.to_string()));
                        true
                    } else {
                        false
                    }
                });
                (Outcome::Failed, 0)
            }
        }
    }

    /// A run ended: count it, and whatever of its totals the page reports did not
    /// already count (`counted`).
    fn record(&self, connection_id: i64, run: &inlet_core::Run, counted: &RunStats) {
        let mut m = lock(&self.inner.metrics);
        *m.runs.entry(run.status.to_string()).or_default() += 1;
        m.add_counts(&counter_delta(&run.stats, counted));
        if matches!(run.status, RunStatus::Success | RunStatus::Partial) {
            m.last_success
                .insert(connection_id, run.finished_at.unwrap_or(run.started_at));
        }
    }

    /// Re-fetch one entity under the connection's lease (refused while a sync runs).
    pub async fn refresh(
        &self,
        conn: &Connection,
        entity: &str,
        id: &str,
    ) -> Result<Result<RefreshOutcome, ConnectorError>, TriggerError> {
        if let Some(run_id) = self.running(conn.id) {
            return Err(TriggerError::Busy { run_id });
        }
        let engine = &self.inner.engine;
        let store = engine.store().clone();
        let holder = format!("{}/refresh", self.inner.config.holder);
        let ttl = self.inner.config.lease_ttl_ms;
        if !store
            .try_acquire_lease(conn.id, &holder, engine.now(), ttl)
            .await?
        {
            let run_id = running_run(&*store, conn.id).await;
            return Err(TriggerError::Busy { run_id });
        }
        let result = async {
            let connector =
                (self.inner.factory)(conn).map_err(|e| TriggerError::Connector(e.to_string()))?;
            let out = engine
                .refresh_entity(conn, &*connector, entity, id)
                .await
                .map_err(|EngineError::Store(e)| TriggerError::from(e))?;
            Ok(out)
        }
        .await;
        let _ = store.release_lease(conn.id, &holder).await;
        result
    }

    /// The active entry of a connection: `Some(run id if started)`.
    pub fn running(&self, connection_id: i64) -> Option<Option<i64>> {
        lock(&self.inner.active)
            .get(&connection_id)
            .map(|a| match &*a.state.borrow() {
                Start::Running(id) => Some(*id),
                _ => None,
            })
    }

    /// Whether a follow-up run is queued for the connection.
    pub fn follow_up_queued(&self, connection_id: i64) -> bool {
        lock(&self.inner.active)
            .get(&connection_id)
            .is_some_and(|a| a.follow_up.is_some())
    }

    /// Connections with a sync active in this process.
    pub fn active_count(&self) -> usize {
        lock(&self.inner.active).len()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        lock(&self.inner.metrics).clone()
    }

    /// Milliseconds between due time and start of every scheduled run so far (drained).
    pub fn take_start_delays(&self) -> Vec<i64> {
        std::mem::take(&mut *lock(&self.inner.delays))
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Stop: refuse new triggers, drop queued follow-ups, tell running syncs to stop at
    /// their next chunk boundary, and wait until they have.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        for a in lock(&self.inner.active).values() {
            a.cancel.store(true, Ordering::SeqCst);
        }
        self.wait_idle().await;
    }

    /// Wait until no sync is active.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.inner.active).is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// The id of the connection's newest run when it is still running.
async fn running_run(store: &dyn inlet_core::Store, connection_id: i64) -> Option<i64> {
    store
        .list_runs(Some(connection_id), 1)
        .await
        .ok()?
        .into_iter()
        .find(|r| r.status == RunStatus::Running)
        .map(|r| r.id)
}
