//! One sync of one connection: every stream, page by page.

use crate::reconcile::{self, ReconcilePolicy};
use inlet_core::{
    Checkpoint, Clock, Connection, ConnectionStatus, Connector, ConnectorError, HttpStats,
    PageBatch, ReconcileBatch, Record, Run, RunMode, RunStats, RunStatus, StopRule, Store,
    StoreError, StreamSpec, StreamStats, SyncState, Timestamp, Trigger,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sealer: Option<Sealer>,
    /// A complete listing longer than this is not used to detect deletions (the ids would
    /// have to be held in memory); reconcile covers those.
    pub(crate) max_seen: usize,
    /// Records per transaction during long passes: pages are gathered until this many,
    /// then committed with the checkpoint after the last of them.
    batch_records: usize,
    /// A chunk is also committed once this long has passed since its first page was
    /// asked for (by the engine's clock), so slow or capped listings checkpoint too.
    batch_time_ms: i64,
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

/// Errors a stream ended with, kept apart so the run can say what happened.
pub(crate) enum StreamEnd {
    Done,
    Failed(ConnectorError),
    Cancelled,
    /// The safety valve stopped a tombstoning; nothing was removed.
    Refused(String),
}

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

    /// Sync `conn` through `connector`; returns the finished run.
    pub async fn sync(
        &self,
        conn: &Connection,
        connector: &dyn Connector,
        opts: &SyncOptions,
        progress: &dyn Progress,
    ) -> Result<Run, EngineError> {
        self.close_abandoned_runs(conn, connector, opts).await?;
        let started = self.clock.now();
        let policy = ReconcilePolicy::from_config(&conn.config);
        let reconcile = match &policy {
            Ok(p) => self.reconcile_plan(conn, connector, opts, p).await?,
            Err(_) => BTreeSet::new(),
        };
        // A delta that also reconciles is recorded as a reconcile run; a delta of a
        // connection that never completed a stream reads everything, so it is recorded as
        // the full sync it is.
        let mode = if opts.mode == RunMode::Delta && !reconcile.is_empty() {
            RunMode::Reconcile
        } else if opts.mode == RunMode::Delta && self.never_synced(conn.id).await? {
            RunMode::Full
        } else {
            opts.mode
        };
        let run_id = self
            .store
            .start_run(conn.id, mode, opts.trigger, started)
            .await?;
        progress.run_started(run_id);
        let mut run = Run {
            id: run_id,
            connection_id: conn.id,
            mode,
            trigger: opts.trigger,
            status: RunStatus::Running,
            started_at: started,
            finished_at: None,
            stats: RunStats::default(),
            streams: BTreeMap::new(),
            error: None,
            waiting_until: None,
        };
        // Waits and requests in flight end at once when the sync is cancelled.
        connector.set_cancel(opts.cancel.clone());
        let known_wait = self.known_wait(conn.id, run_id).await?;
        let result = match (known_wait, policy) {
            // An earlier run found the provider's limit spent until later than now: send
            // nothing before then (another process's budget knows nothing about it).
            (Some((until, why)), _) => {
                run.waiting_until = Some(until);
                Ok((RunStatus::Waiting, Some(waiting_message(until, &why))))
            }
            (None, Ok(policy)) => {
                let plan = Reconcile {
                    policy,
                    streams: reconcile,
                    run_id,
                };
                self.sync_streams(conn, connector, opts, &plan, progress, &mut run)
                    .await
            }
            (None, Err(msg)) => Ok((RunStatus::Failed, Some(msg))),
        };
        connector.set_cancel(None);
        let cancelled = opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst));
        let result = match result {
            Ok((status, error)) if !cancelled => self
                .download_attachments(conn.id, &mut run.stats, status, progress)
                .await
                .map(|s| (s, error)),
            other => other,
        };
        self.save_credentials(conn, connector).await;
        let (status, error) = match result {
            Ok(s) => s,
            Err(e) => {
                // Best effort: the store just failed, but try to leave the run closed
                // and drop what it staged.
                let msg = e.to_string();
                let _ = self.finish(&mut run, RunStatus::Failed, Some(msg)).await;
                for s in connector.streams() {
                    let _ = self
                        .store
                        .drop_staged(&staging_token(conn.id, s.name, run.id))
                        .await;
                }
                return Err(e);
            }
        };
        self.finish(&mut run, status, error).await?;
        Ok(run)
    }

    /// Whether no stream of the connection has completed a pass yet (its first sync).
    async fn never_synced(&self, connection_id: i64) -> Result<bool, EngineError> {
        let states = self.store.sync_states(connection_id).await?;
        Ok(states.values().all(|s| s.last_success_at.is_none()))
    }

    /// The streams this sync reconciles: all reconcilable ones when asked, else those due.
    async fn reconcile_plan(
        &self,
        conn: &Connection,
        connector: &dyn Connector,
        opts: &SyncOptions,
        policy: &ReconcilePolicy,
    ) -> Result<BTreeSet<&'static str>, EngineError> {
        let states = self.store.sync_states(conn.id).await?;
        let now = self.clock.now();
        Ok(connector
            .streams()
            .iter()
            .filter(|s| connector.reconciles(s))
            .filter(|s| {
                opts.streams
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|n| n == s.name))
            })
            .filter(|s| {
                opts.mode == RunMode::Reconcile
                    || states.get(s.name).is_some_and(|st| policy.due(st, now))
            })
            .map(|s| s.name)
            .collect())
    }

    async fn sync_streams(
        &self,
        conn: &Connection,
        connector: &dyn Connector,
        opts: &SyncOptions,
        plan: &Reconcile,
        progress: &dyn Progress,
        run: &mut Run,
    ) -> Result<(RunStatus, Option<String>), EngineError> {
        // Child streams of a family are synced through their parent (see `children`):
        // asking for a child stream syncs its parents.
        let families = connector.families();
        let streams: Vec<&StreamSpec> = connector
            .streams()
            .iter()
            .filter(|s| {
                opts.streams.as_ref().is_none_or(|only| {
                    only.iter().any(|n| {
                        n == s.name || families.iter().any(|f| f.parent == s.name && f.child == n)
                    })
                })
            })
            .collect();
        let (mut failed, mut refused, mut errors) = (0usize, 0usize, Vec::new());
        let ran = streams
            .iter()
            .filter(|s| !crate::children::is_child(&families, s.name))
            .count();
        for stream in &streams {
            if crate::children::is_child(&families, stream.name) {
                continue;
            }
            if cancelled(opts) {
                return Ok((RunStatus::Interrupted, Some(INTERRUPTED.into())));
            }
            let mut st = StreamStats::default();
            let end = match families.iter().find(|f| f.parent == stream.name) {
                Some(fam) => {
                    let (end, cst) = self
                        .sync_family(conn, connector, fam, stream, opts, progress, &mut st)
                        .await?;
                    run.stats.add(&cst.stats);
                    let entry = run.streams.entry(fam.child.to_string()).or_default();
                    crate::children::merge_child(entry, &cst);
                    end
                }
                None => {
                    self.sync_stream(conn, connector, stream, opts, plan, progress, &mut st)
                        .await?
                }
            };
            progress.stream_finished(stream.name, &st);
            run.stats.add(&st.stats);
            // A request cut off by the cancellation fails; that is the interruption.
            let end = match end {
                StreamEnd::Failed(e)
                    if cancelled(opts) && !matches!(e, ConnectorError::NeedsReauth(_)) =>
                {
                    StreamEnd::Cancelled
                }
                end => end,
            };
            match end {
                StreamEnd::Done => {}
                StreamEnd::Cancelled => {
                    run.streams.insert(stream.name.to_string(), st);
                    return Ok((RunStatus::Interrupted, Some(INTERRUPTED.into())));
                }
                StreamEnd::Failed(ConnectorError::RateLimited { message, retry_in }) => {
                    // The provider takes no requests until later than this run may wait:
                    // stop here, keep every checkpoint, and say when to go on.
                    let ms = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
                    let until = Timestamp(self.clock.now().0.saturating_add(ms));
                    let msg = waiting_message(until, &message);
                    tracing::info!(connection = %conn.name, stream = stream.name, until = %until, "{msg}");
                    st.error = Some(msg.clone());
                    run.streams.insert(stream.name.to_string(), st);
                    run.waiting_until = Some(until);
                    return Ok((RunStatus::Waiting, Some(msg)));
                }
                StreamEnd::Failed(ConnectorError::NeedsReauth(msg)) => {
                    let msg = format!("{msg}; {}", reauth_hint(&conn.provider, &conn.name));
                    st.error = Some(msg.clone());
                    run.streams.insert(stream.name.to_string(), st);
                    let at = self.clock.now();
                    self.store
                        .set_connection_status(
                            conn.id,
                            ConnectionStatus::NeedsReauth,
                            Some(&msg),
                            at,
                        )
                        .await?;
                    return Ok((RunStatus::Failed, Some(msg)));
                }
                StreamEnd::Refused(msg) => {
                    tracing::warn!(connection = %conn.name, stream = stream.name, "{msg}");
                    errors.push(msg.clone());
                    st.error = Some(msg);
                    refused += 1;
                }
                StreamEnd::Failed(e) => {
                    tracing::warn!(connection = %conn.name, stream = stream.name, error = %e, "Stream failed.");
                    st.error = Some(e.to_string());
                    errors.push(format!("{}: {e}", stream.name));
                    failed += 1;
                }
            }
            run.streams.insert(stream.name.to_string(), st);
            self.save_progress(run).await?;
        }
        let status = match failed {
            0 if run.stats.items_skipped_with_error > 0 || refused > 0 => RunStatus::Partial,
            0 => RunStatus::Success,
            n if n < ran => RunStatus::Partial,
            _ => RunStatus::Failed,
        };
        let next = if status == RunStatus::Failed {
            ConnectionStatus::Failing
        } else {
            ConnectionStatus::Active
        };
        if next != conn.status && conn.status != ConnectionStatus::Paused {
            self.store
                .set_connection_status(
                    conn.id,
                    next,
                    errors.first().map(String::as_str),
                    self.clock.now(),
                )
                .await?;
        }
        Ok((status, (!errors.is_empty()).then(|| errors.join("; "))))
    }

    /// When the connection's last finished run ended `waiting` until a time still to
    /// come: that time and the provider's message.
    async fn known_wait(
        &self,
        connection_id: i64,
        this_run: i64,
    ) -> Result<Option<(Timestamp, String)>, EngineError> {
        let now = self.clock.now();
        let last = self
            .store
            .list_runs(Some(connection_id), 5)
            .await?
            .into_iter()
            .find(|r| r.id != this_run && r.status != RunStatus::Running);
        Ok(last.and_then(|r| match (r.status, r.waiting_until) {
            (RunStatus::Waiting, Some(until)) if until > now => {
                let why = r
                    .error
                    .as_deref()
                    .and_then(|e| e.split_once(": "))
                    .map_or("the provider's limit is spent", |(_, why)| why)
                    .to_string();
                Some((until, why))
            }
            _ => None,
        }))
    }

    /// Runs left `running` by a process that died (or lost its database) can never
    /// finish: close them as interrupted (and, under the lease, drop the ids they
    /// staged). A `running` row
    /// alone does not prove its process is gone: while another holder's lease on the
    /// connection is live, its run may be working, so nothing is closed (the run that
    /// next holds the lease closes what is left).
    async fn close_abandoned_runs(
        &self,
        conn: &Connection,
        connector: &dyn Connector,
        opts: &SyncOptions,
    ) -> Result<(), EngineError> {
        let now = self.clock.now();
        let lease = self.store.get_lease(conn.id).await?;
        if let Some(lease) = &lease
            && lease.expires_at > now
            && opts.lease_holder.as_deref() != Some(lease.holder.as_str())
        {
            tracing::debug!(connection = %conn.name, holder = %lease.holder, "Another process holds the sync lease; its runs are left alone.");
            return Ok(());
        }
        // Under the lease no other sync of the connection runs, so what a closed run
        // staged is garbage. Without one (a library caller), a `running` row may be a
        // live sync elsewhere: its staged ids stay.
        let exclusive =
            lease.is_some_and(|l| opts.lease_holder.as_deref() == Some(l.holder.as_str()));
        for r in self.store.list_runs(Some(conn.id), 20).await? {
            if r.status == RunStatus::Running {
                let msg =
                    "interrupted: the process stopped; the next sync resumed from the checkpoint";
                self.store
                    .update_run(
                        r.id,
                        RunStatus::Interrupted,
                        &r.stats,
                        &r.streams,
                        Some(msg),
                        Some(now),
                    )
                    .await?;
                if exclusive {
                    for s in connector.streams() {
                        self.store
                            .drop_staged(&staging_token(conn.id, s.name, r.id))
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn finish(
        &self,
        run: &mut Run,
        status: RunStatus,
        error: Option<String>,
    ) -> Result<(), EngineError> {
        run.status = status;
        run.error = error;
        run.finished_at = Some(self.clock.now());
        self.store
            .update_run(
                run.id,
                status,
                &run.stats,
                &run.streams,
                run.error.as_deref(),
                run.finished_at,
            )
            .await?;
        if run.waiting_until.is_some() {
            self.store
                .set_run_waiting_until(run.id, run.waiting_until)
                .await?;
        }
        Ok(())
    }

    async fn save_progress(&self, run: &Run) -> Result<(), EngineError> {
        self.store
            .update_run(
                run.id,
                RunStatus::Running,
                &run.stats,
                &run.streams,
                None,
                None,
            )
            .await?;
        Ok(())
    }

    async fn save_credentials(&self, conn: &Connection, connector: &dyn Connector) {
        let (Some(sealer), Some(creds)) =
            (&self.sealer, connector.take_updated_credentials().await)
        else {
            return;
        };
        let sealed = match sealer(conn, &creds) {
            Ok(s) => s,
            Err(e) => {
                return tracing::error!(connection = %conn.name, error = %e, "Could not seal refreshed credentials.");
            }
        };
        if let Err(e) = self
            .store
            .set_credentials(conn.id, &sealed, self.clock.now())
            .await
        {
            tracing::error!(connection = %conn.name, error = %e, "Could not store refreshed credentials.");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync_stream(
        &self,
        conn: &Connection,
        connector: &dyn Connector,
        stream: &StreamSpec,
        opts: &SyncOptions,
        plan: &Reconcile,
        progress: &dyn Progress,
        st: &mut StreamStats,
    ) -> Result<StreamEnd, EngineError> {
        let http_before = connector.http_stats();
        // A reconcile run's pass is a delta; the id listing follows it.
        let mode = match opts.mode {
            RunMode::Reconcile => RunMode::Delta,
            m => m,
        };
        let mut pass = Pass::begin(self, conn.id, stream, mode).await?;
        pass.policy = plan.policy;
        pass.force = opts.force;
        pass.run_id = plan.run_id;
        // Cache validators (ETags) only for a delta from the top; a full or resumed pass
        // must read its pages.
        let validator = if pass.cp.mode == RunMode::Delta && pass.cp.next.is_none() {
            self.store.stream_validator(conn.id, stream.name).await?
        } else {
            None
        };
        connector.set_validator(stream, validator.as_deref());
        st.resumed = pass.resumed;
        progress.stream_started(stream.name, pass.resumed);
        let mut end = pass
            .run(self, connector, opts, progress, st, http_before)
            .await;
        if matches!(end, Ok(StreamEnd::Done)) {
            let v = connector.validator(stream);
            if v != validator {
                self.store
                    .put_stream_validator(conn.id, stream.name, v.as_deref())
                    .await?;
            }
        }
        if matches!(end, Ok(StreamEnd::Done)) && plan.streams.contains(stream.name) {
            end = match self
                .reconcile_stream(conn, connector, stream, opts, plan.run_id, &plan.policy, st)
                .await
            {
                Ok(reconcile::Outcome::Done) => Ok(StreamEnd::Done),
                Ok(reconcile::Outcome::Refused(msg)) => Ok(StreamEnd::Refused(msg)),
                Ok(reconcile::Outcome::Cancelled) => Ok(StreamEnd::Cancelled),
                Ok(reconcile::Outcome::Failed(e)) => Err(PassError::Connector(e)),
                Err(e) => Err(PassError::Store(e)),
            };
        }
        set_http(&mut st.stats, http_before, connector.http_stats());
        match end {
            Ok(end) => Ok(end),
            Err(PassError::Store(e)) => Err(e.into()),
            Err(PassError::Connector(e)) => Ok(StreamEnd::Failed(e)),
        }
    }
}

/// The error of a run that ends `waiting`.
fn waiting_message(until: Timestamp, why: &str) -> String {
    format!("waiting for the provider's rate limit until {until}: {why}")
}

/// The error of a run stopped by its cancel flag.
const INTERRUPTED: &str = "interrupted; the next sync resumes from the checkpoint";

/// The sync's cancel flag is set.
pub(crate) fn cancelled(opts: &SyncOptions) -> bool {
    opts.cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::SeqCst))
}

/// The streams a sync reconciles and the connection's reconcile policy.
struct Reconcile {
    policy: ReconcilePolicy,
    streams: BTreeSet<&'static str>,
    /// The run: staged ids are kept under a token of their own run.
    run_id: i64,
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

enum PassError {
    Store(StoreError),
    Connector(ConnectorError),
}

impl From<StoreError> for PassError {
    fn from(e: StoreError) -> Self {
        PassError::Store(e)
    }
}

/// A future's output with the time from `t0` to its completion.
async fn timed<T>(
    f: impl std::future::Future<Output = T>,
    t0: std::time::Instant,
) -> (T, std::time::Duration) {
    let r = f.await;
    (r, t0.elapsed())
}

/// Pages read together and committed in one transaction.
struct Chunk {
    records: Vec<Record>,
    /// Cursor of the page after the chunk.
    next: Option<String>,
    pages: u64,
    /// The pass ends with this chunk.
    last: bool,
    /// It ends because the listing ended (not because a delta reached its stop point).
    listing_ended: bool,
    /// The pass stops after this chunk is committed: cancelled or failed on the page
    /// after it.
    halt: Option<Halt>,
}

/// Why a pass stops before its end.
enum Halt {
    Cancelled,
    Failed(ConnectorError),
}

/// When a chunk is full: records, raw bytes or time since it started, whichever first.
struct ChunkRules<'a> {
    records: usize,
    time_ms: i64,
    clock: &'a dyn Clock,
    cancel: Option<&'a AtomicBool>,
}

impl ChunkRules<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// Read pages from `cursor` until `rules` say the chunk is full, the end of the listing,
/// or a page holding an item created at or before `stop_before`. Cancellation (checked
/// before every page) and a failed page end the chunk early with what was read so far,
/// for the caller to commit before it stops.
async fn gather(
    connector: &dyn Connector,
    stream: &StreamSpec,
    mut cursor: Option<String>,
    stop_before: Option<Timestamp>,
    rules: &ChunkRules<'_>,
) -> Chunk {
    let mut chunk = Chunk {
        records: Vec::new(),
        next: cursor.clone(),
        pages: 0,
        last: false,
        listing_ended: false,
        halt: None,
    };
    let started = rules.clock.now();
    let mut raw_bytes = 0;
    loop {
        if rules.cancelled() {
            chunk.halt = Some(Halt::Cancelled);
            return chunk;
        }
        let page = match connector.fetch_page(stream, cursor.as_deref()).await {
            Ok(p) => p,
            Err(e) => {
                // A request cut off by the cancellation is the cancellation, except a
                // refused credential, which the connection must remember.
                let cut = rules.cancelled() && !matches!(e, ConnectorError::NeedsReauth(_));
                chunk.halt = Some(if cut {
                    Halt::Cancelled
                } else {
                    Halt::Failed(e)
                });
                return chunk;
            }
        };
        chunk.pages += 1;
        raw_bytes += page.records.iter().map(|r| r.raw.len()).sum::<usize>();
        let hit_stop = stop_before.is_some_and(|t| {
            page.records
                .iter()
                .any(|r| r.sort_ts.is_some_and(|ts| ts <= t))
        });
        chunk.listing_ended = page.next.is_none();
        chunk.last = chunk.listing_ended || hit_stop;
        if chunk.records.is_empty() {
            chunk.records = page.records;
        } else {
            chunk.records.extend(page.records);
        }
        cursor = page.next;
        chunk.next = cursor.clone();
        if chunk.last
            || chunk.records.len() >= rules.records
            || raw_bytes >= MAX_BATCH_RAW_BYTES
            || rules.clock.now().0 - started.0 >= rules.time_ms
        {
            return chunk;
        }
    }
}

/// One pass over one stream, from the checkpoint (or the top) to its end or stop point.
struct Pass<'a> {
    connection_id: i64,
    stream: &'a StreamSpec,
    state: SyncState,
    cp: Checkpoint,
    resumed: bool,
    /// Delta over a `CreatedBefore` stream: stop after the page holding an item this old.
    stop_before: Option<Timestamp>,
    /// Ids seen since the first page, while the pass may still prove to be complete.
    seen: Option<Vec<String>>,
    max_seen: usize,
    /// The connection's safety valve for tombstones.
    policy: ReconcilePolicy,
    /// The valve is overridden.
    force: bool,
    /// The run, whose staging token this pass uses.
    run_id: i64,
}

impl<'a> Pass<'a> {
    async fn begin(
        engine: &Engine,
        connection_id: i64,
        stream: &'a StreamSpec,
        mode: RunMode,
    ) -> Result<Pass<'a>, StoreError> {
        let mut state = engine.store.sync_state(connection_id, stream.name).await?;
        let now = engine.clock.now();
        let (cp, resumed) = match state.checkpoint.clone() {
            // A full pass is always finished; a delta is resumed unless a full was asked for.
            Some(cp) if cp.mode == RunMode::Full || mode == RunMode::Delta => (cp, true),
            _ => {
                let mode = if state.cursor.is_none() {
                    RunMode::Full
                } else {
                    mode
                };
                (
                    Checkpoint {
                        mode,
                        next: None,
                        watermark: now,
                        pages: 0,
                        records: 0,
                        fetched_all: false,
                    },
                    false,
                )
            }
        };
        let stop_before = match (cp.mode, stream.stop, state.cursor.as_deref()) {
            (RunMode::Delta, StopRule::CreatedBefore { lookback_secs }, Some(c)) => c
                .parse::<i64>()
                .ok()
                .map(|ms| Timestamp(ms - lookback_secs * 1000)),
            _ => None,
        };
        state.last_sync_at = Some(now);
        state.checkpoint = Some(cp.clone());
        engine
            .store
            .put_sync_state(connection_id, stream.name, &state)
            .await?;
        let seen = cp.next.is_none().then(Vec::new);
        Ok(Pass {
            connection_id,
            stream,
            state,
            cp,
            resumed,
            stop_before,
            seen,
            // Ids are only useful while the listing can still prove complete: below the
            // provider's cap and the engine's bound.
            max_seen: stream.listing_cap.map_or(engine.max_seen, |cap| {
                engine.max_seen.min(cap.saturating_sub(1) as usize)
            }),
            policy: ReconcilePolicy::default(),
            run_id: 0,
            force: false,
        })
    }

    /// The state once the pass is over: the watermark becomes the cursor.
    fn finished_state(&self, now: Timestamp) -> SyncState {
        let mut s = self.state.clone();
        s.cursor = Some(self.cp.watermark.millis().to_string());
        s.checkpoint = None;
        s.last_success_at = Some(now);
        s.sync_count += 1;
        s
    }

    async fn run(
        &mut self,
        engine: &Engine,
        connector: &dyn Connector,
        opts: &SyncOptions,
        progress: &dyn Progress,
        st: &mut StreamStats,
        http_before: HttpStats,
    ) -> Result<StreamEnd, PassError> {
        let store = &engine.store;
        // KnownId deltas decide their stop from what the commit found: one page at a time.
        let stop_needs_commit =
            self.cp.mode == RunMode::Delta && matches!(self.stream.stop, StopRule::KnownId);
        let batch = if stop_needs_commit {
            1
        } else {
            engine.batch_records
        };
        // A full pass rewrites derived rows once at its end, from an ordered walk of the
        // keys, instead of refreshing the scattered groups each chunk touches.
        let defer_derived = self.cp.mode == RunMode::Full && self.stream.derived.is_some();
        if self.cp.fetched_all {
            // Interrupted between the last page and the derived recomputation.
            return self.finish_deferred(engine, connector, st, false).await;
        }
        let rules = ChunkRules {
            records: batch,
            time_ms: engine.batch_time_ms,
            clock: &*engine.clock,
            cancel: opts.cancel.as_deref(),
        };
        let mut pending = gather(
            connector,
            self.stream,
            self.cp.next.clone(),
            self.stop_before,
            &rules,
        )
        .await;
        loop {
            let mut chunk = pending;
            let halt = chunk.halt.take();
            if chunk.pages == 0 {
                // Nothing was fetched since the last commit: stop where it left off.
                return match halt {
                    Some(Halt::Failed(e)) => Err(PassError::Connector(e)),
                    Some(Halt::Cancelled) | None => Ok(StreamEnd::Cancelled),
                };
            }
            let n = chunk.records.len() as u64;
            st.stats.fetched += n;
            self.note_seen(&chunk.records);
            self.cp.next = chunk.next.clone();
            self.cp.pages += chunk.pages;
            self.cp.records += n;
            let now = engine.clock.now();
            let state = if chunk.last && defer_derived {
                // Keep the pass open until the derived rows are recomputed, so a crash in
                // between redoes the recomputation instead of leaving them stale.
                let cp = Checkpoint {
                    fetched_all: true,
                    ..self.cp.clone()
                };
                SyncState {
                    checkpoint: Some(cp),
                    ..self.state.clone()
                }
            } else if chunk.last {
                self.finished_state(now)
            } else {
                SyncState {
                    checkpoint: Some(self.cp.clone()),
                    ..self.state.clone()
                }
            };
            engine
                .note_attachments(
                    connector,
                    self.connection_id,
                    self.stream,
                    &chunk.records,
                    now,
                )
                .await?;
            let commit = store.commit_page(PageBatch {
                connection_id: self.connection_id,
                stream: self.stream,
                records: chunk.records,
                state: &state,
                at: now,
                refresh_derived: !defer_derived,
            });
            // The next chunk: fetched while this one is written, unless the pass stops
            // here or its stop rule must see this commit first.
            let (outcome, next) = if chunk.last || stop_needs_commit || halt.is_some() {
                (commit.await?, None)
            } else {
                let next = gather(
                    connector,
                    self.stream,
                    self.cp.next.clone(),
                    self.stop_before,
                    &rules,
                );
                let t0 = std::time::Instant::now();
                let ((c, commit_t), (f, fetch_t)) =
                    tokio::join!(timed(commit, t0), timed(next, t0));
                tracing::debug!(
                    stream = self.stream.name,
                    commit_ms = commit_t.as_millis() as u64,
                    fetch_ms = fetch_t.as_millis() as u64,
                    "Chunk committed while the next was fetched."
                );
                (c?, Some(f))
            };
            self.state = state;
            st.stats.pages += chunk.pages;
            st.stats.inserted += outcome.inserted;
            st.stats.updated += outcome.updated;
            st.stats.unchanged += outcome.unchanged;
            st.stats.derived_inserted += outcome.derived_inserted;
            st.stats.derived_updated += outcome.derived_updated;
            set_http(&mut st.stats, http_before, connector.http_stats());
            progress.page_committed(self.stream.name, st);
            if chunk.last && defer_derived {
                return self
                    .finish_deferred(engine, connector, st, chunk.listing_ended)
                    .await;
            }
            if chunk.last {
                if chunk.listing_ended {
                    return self.tombstone_if_complete(engine, connector, st).await;
                }
                return Ok(StreamEnd::Done);
            }
            match halt {
                Some(Halt::Cancelled) => return Ok(StreamEnd::Cancelled),
                Some(Halt::Failed(e)) => return Err(PassError::Connector(e)),
                None => {}
            }
            if stop_needs_commit && outcome.known() > 0 {
                self.state = self.finished_state(engine.clock.now());
                store
                    .put_sync_state(self.connection_id, self.stream.name, &self.state)
                    .await?;
                return Ok(StreamEnd::Done);
            }
            pending = match next {
                Some(chunk) => chunk,
                // A page that was all new: the delta goes on to the next one.
                None => {
                    gather(
                        connector,
                        self.stream,
                        self.cp.next.clone(),
                        self.stop_before,
                        &rules,
                    )
                    .await
                }
            };
        }
    }

    /// Recompute the derived rows a full pass deferred, then close the pass.
    async fn finish_deferred(
        &mut self,
        engine: &Engine,
        connector: &dyn Connector,
        st: &mut StreamStats,
        listing_ended: bool,
    ) -> Result<StreamEnd, PassError> {
        let store = &engine.store;
        let (ins, upd) = store
            .refresh_derived_all(self.connection_id, self.stream, engine.clock.now())
            .await?;
        st.stats.derived_inserted += ins;
        st.stats.derived_updated += upd;
        self.state = self.finished_state(engine.clock.now());
        store
            .put_sync_state(self.connection_id, self.stream.name, &self.state)
            .await?;
        if listing_ended {
            return self.tombstone_if_complete(engine, connector, st).await;
        }
        Ok(StreamEnd::Done)
    }

    fn note_seen(&mut self, records: &[Record]) {
        if let Some(seen) = &mut self.seen {
            if seen.len() + records.len() > self.max_seen {
                self.seen = None;
            } else {
                seen.extend(records.iter().map(|r| r.id.clone()));
            }
        }
    }

    /// The listing was read from its first page to its end: what it did not return is gone
    /// (through the same staged, safety-valved diff as a reconcile). Streams that take part
    /// in reconcile leave deletions to their reconcile runs.
    async fn tombstone_if_complete(
        &mut self,
        engine: &Engine,
        connector: &dyn Connector,
        st: &mut StreamStats,
    ) -> Result<StreamEnd, PassError> {
        let Some(seen) = self.seen.take() else {
            return Ok(StreamEnd::Done);
        };
        if connector.reconciles(self.stream)
            || self
                .stream
                .listing_cap
                .is_some_and(|cap| seen.len() as u64 >= cap)
        {
            return Ok(StreamEnd::Done);
        }
        let now = engine.clock.now();
        let mut state = self.state.clone();
        state.last_reconciled_at = Some(now);
        let token = staging_token(self.connection_id, self.stream.name, self.run_id);
        engine.store.stage_ids(&token, &seen).await?;
        let out = engine
            .store
            .apply_reconcile(ReconcileBatch {
                connection_id: self.connection_id,
                stream: self.stream,
                token: &token,
                max_share: (!self.force).then_some(self.policy.max_share),
                state: &state,
                at: now,
            })
            .await?;
        if out.refused {
            return Ok(StreamEnd::Refused(reconcile::refusal(
                self.stream,
                &out,
                self.policy.max_share,
            )));
        }
        self.state = state;
        st.complete_listing = true;
        st.stats.deleted += out.tombstoned;
        Ok(StreamEnd::Done)
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
