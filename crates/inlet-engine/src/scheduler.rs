//! When each connection syncs: per-provider intervals, spread by connection, backoff
//! for failing connections. Pure bookkeeping over an injected clock reading; the loop
//! that lists connections and starts syncs is [`run_scheduler`].
//!
//! Every connection has a fixed *slot* in its interval: `offset = hash(id) mod
//! interval`. It is due at `offset + k * interval`, so 10,000 connections with a
//! 10-minute interval are spread evenly over those 10 minutes, and a restart keeps each
//! connection's slot. After a success the next due time is the next slot; after a
//! failure it is `finish + min(base * 2^(failures-1), cap)`, and the first success puts
//! it back on its slot. A run that ended `waiting` (the provider's rate limit or call
//! quota spent) is due again just after the time its limit frees up, without counting
//! as a failure. Only `active` and `failing` connections of `active` workspaces are
//! scheduled; `paused` and `needs_reauth` ones, and every connection of a paused
//! workspace, never are.
//!
//! Every tick, per provider, the loop makes a [`TickSummary`]: `skipped` when none of
//! that provider's connections was due, else `success` once the last run the tick started
//! has ended, with the records those runs fetched and how many workspaces had all their
//! runs succeed or at least one fail. [`SchedulerHandle::ticks`] keeps them for the API
//! and `/metrics`.

use crate::worker::{Dispatcher, Finished, Outcome};
use inlet_core::{Clock, Connection, ConnectionStatus, Store, Timestamp, WorkspaceStatus};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// Interval per provider, in milliseconds (overrides the built-in defaults).
    pub intervals_ms: HashMap<String, i64>,
    /// Interval of providers with no default and no override.
    pub default_interval_ms: i64,
    /// First retry delay after a failure.
    pub backoff_base_ms: i64,
    /// Longest retry delay.
    pub backoff_cap_ms: i64,
}

impl Default for ScheduleConfig {
    /// No provider's own interval (every provider every 15 minutes): the engine names no
    /// provider. The server starts from [`ScheduleConfig::with_intervals_min`] over the
    /// provider registry's defaults.
    fn default() -> Self {
        ScheduleConfig {
            intervals_ms: HashMap::new(),
            default_interval_ms: 15 * 60_000,
            backoff_base_ms: 60_000,
            backoff_cap_ms: 60 * 60_000,
        }
    }
}

impl ScheduleConfig {
    /// The defaults with these per-provider intervals, in minutes (each provider's
    /// definition gives its own).
    pub fn with_intervals_min<'a>(intervals: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        ScheduleConfig {
            intervals_ms: intervals
                .into_iter()
                .map(|(p, m)| (p.to_string(), i64::from(m) * 60_000))
                .collect(),
            ..ScheduleConfig::default()
        }
    }

    /// The interval of `provider`, in milliseconds (at least one second).
    pub fn interval_ms(&self, provider: &str) -> i64 {
        self.intervals_ms
            .get(provider)
            .copied()
            .unwrap_or(self.default_interval_ms)
            .max(1000)
    }

    /// Retry delay after `failures` consecutive failures (1, 2, ...).
    pub fn backoff_ms(&self, failures: u32) -> i64 {
        let shift = failures.saturating_sub(1).min(30);
        self.backoff_base_ms
            .saturating_mul(1i64 << shift)
            .min(self.backoff_cap_ms)
    }
}

/// The connection's slot inside its interval: a fixed, well-mixed function of its id.
pub fn slot_offset(connection_id: i64, interval_ms: i64) -> i64 {
    // splitmix64: neighbouring ids land far apart.
    let mut z = (connection_id as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % interval_ms.max(1) as u64) as i64
}

/// The first slot time at or after (`inclusive`) or strictly after `t`.
fn next_slot(t: Timestamp, offset: i64, interval: i64, inclusive: bool) -> Timestamp {
    let k = (t.0 - offset).div_euclid(interval);
    let mut s = offset + k * interval;
    while s < t.0 || (!inclusive && s == t.0) {
        s += interval;
    }
    Timestamp(s)
}

#[derive(Debug, Clone)]
struct Entry {
    next_due: Timestamp,
    failures: u32,
    running: bool,
}

/// What the scheduler knows about one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView {
    /// When it is next due.
    pub next_due: Timestamp,
    /// Consecutive failures.
    pub failures: u32,
    /// A scheduled sync is under way.
    pub running: bool,
}

/// Due times of every schedulable connection.
#[derive(Debug, Default)]
pub struct Scheduler {
    config: ScheduleConfig,
    entries: HashMap<i64, Entry>,
}

impl Scheduler {
    /// A scheduler with these settings.
    pub fn new(config: ScheduleConfig) -> Self {
        Scheduler {
            config,
            entries: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// The connections due at `now`, with the time each was due, marked running.
    /// Connections not in `conns` are forgotten; paused and needs_reauth ones are skipped
    /// (and get a fresh slot when they come back).
    pub fn due(&mut self, conns: &[Connection], now: Timestamp) -> Vec<(i64, Timestamp)> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(conns.len());
        for c in conns {
            if !matches!(
                c.status,
                ConnectionStatus::Active | ConnectionStatus::Failing
            ) {
                continue;
            }
            seen.insert(c.id);
            let interval = self.config.interval_ms(&c.provider);
            let e = self.entries.entry(c.id).or_insert_with(|| Entry {
                next_due: next_slot(now, slot_offset(c.id, interval), interval, true),
                failures: 0,
                running: false,
            });
            if !e.running && e.next_due <= now {
                e.running = true;
                out.push((c.id, e.next_due));
            }
        }
        self.entries.retain(|id, _| seen.contains(id));
        out.sort_by_key(|&(id, due)| (due, id));
        out
    }

    /// A sync of `id` ended at `at` (scheduled or not): back on its slot after a
    /// success, backed off after a failure, retried soon when it could not start.
    pub fn finished(&mut self, id: i64, provider: &str, outcome: Outcome, at: Timestamp) {
        let interval = self.config.interval_ms(provider);
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.running = false;
        match outcome {
            Outcome::Success => {
                e.failures = 0;
                e.next_due = next_slot(at, slot_offset(id, interval), interval, false);
            }
            Outcome::Failed => {
                e.failures += 1;
                e.next_due = Timestamp(at.0 + self.config.backoff_ms(e.failures));
            }
            // The provider's limit is spent: start again once it frees up (a second
            // after, so the run does not find it still spent), not on failure backoff.
            Outcome::Waiting { until } => {
                e.next_due = Timestamp(until.0.saturating_add(1000).max(at.0));
            }
            // Stopped by shutdown or busy elsewhere: try again a little later.
            Outcome::Cancelled | Outcome::NotStarted => {
                e.next_due = Timestamp(at.0 + self.config.backoff_base_ms.min(interval));
            }
        }
    }

    /// What the scheduler holds for `id`.
    pub fn entry(&self, id: i64) -> Option<EntryView> {
        self.entries.get(&id).map(|e| EntryView {
            next_due: e.next_due,
            failures: e.failures,
            running: e.running,
        })
    }
}

/// Whether a tick started anything for a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TickStatus {
    /// Runs were due and started; the counts are theirs.
    Success,
    /// Nothing of the provider was due.
    Skipped,
}

impl TickStatus {
    /// The text form (`success`, `skipped`).
    pub fn as_str(self) -> &'static str {
        match self {
            TickStatus::Success => "success",
            TickStatus::Skipped => "skipped",
        }
    }
}

/// One provider's part of one scheduler tick, in the shape the old sync system returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TickSummary {
    /// `success` when the tick started runs of the provider, `skipped` when none was due.
    pub status: TickStatus,
    /// Records fetched by the runs the tick started.
    pub total_messages: u64,
    /// Workspaces whose runs of this tick all succeeded.
    pub successful_workspaces: u64,
    /// Workspaces with at least one failed run in this tick.
    pub failed_workspaces: u64,
}

/// The tick summaries of one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProviderTicks {
    /// The most recent summary (`None` before the first).
    pub last: Option<TickSummary>,
    /// Clock reading (ms) of the tick `last` belongs to.
    pub last_tick_at: Option<Timestamp>,
    /// The most recent summary with status `success`.
    pub last_success: Option<TickSummary>,
    /// Clock reading (ms) of the tick `last_success` belongs to.
    pub last_success_tick_at: Option<Timestamp>,
    /// Summaries with status `success` so far.
    pub ticks_success: u64,
    /// Summaries with status `skipped` so far.
    pub ticks_skipped: u64,
    /// Sum of `total_messages` so far.
    pub messages: u64,
    /// Sum of `successful_workspaces` so far.
    pub successful_workspaces: u64,
    /// Sum of `failed_workspaces` so far.
    pub failed_workspaces: u64,
}

impl ProviderTicks {
    fn add(&mut self, summary: TickSummary, at: Timestamp) {
        self.last = Some(summary);
        self.last_tick_at = Some(at);
        match summary.status {
            TickStatus::Success => {
                self.ticks_success += 1;
                self.last_success = Some(summary);
                self.last_success_tick_at = Some(at);
            }
            TickStatus::Skipped => self.ticks_skipped += 1,
        }
        self.messages += summary.total_messages;
        self.successful_workspaces += summary.successful_workspaces;
        self.failed_workspaces += summary.failed_workspaces;
    }
}

/// Handles the API reads to show the scheduler's state.
#[derive(Debug, Clone, Default)]
pub struct SchedulerHandle {
    /// Clock reading (ms) of the last completed tick; 0 before the first.
    pub heartbeat: Arc<AtomicI64>,
    /// Next due time per connection (ms), refreshed every tick.
    pub next_due: Arc<std::sync::Mutex<BTreeMap<i64, i64>>>,
    /// Tick summaries per provider.
    pub ticks: Arc<std::sync::Mutex<BTreeMap<String, ProviderTicks>>>,
}

impl SchedulerHandle {
    /// When `id` is next due, if it is scheduled.
    pub fn next_due(&self, id: i64) -> Option<Timestamp> {
        self.next_due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|&t| Timestamp(t))
    }

    /// The tick summaries per provider, as they are now.
    pub fn tick_summaries(&self) -> BTreeMap<String, ProviderTicks> {
        self.ticks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record_tick(&self, provider: &str, summary: TickSummary, at: Timestamp) {
        let mut t = self.ticks.lock().unwrap_or_else(|p| p.into_inner());
        t.entry(provider.to_string()).or_default().add(summary, at);
    }
}

/// The runs one tick started for one provider, until the last has ended.
#[derive(Debug, Default)]
struct TickRuns {
    /// When the tick ran.
    at: Timestamp,
    /// Runs not ended yet.
    remaining: usize,
    /// Records fetched by the ended ones.
    messages: u64,
    /// Workspaces with a run in this tick.
    workspaces: BTreeSet<String>,
    /// Workspaces with a failed run in this tick.
    failed: BTreeSet<String>,
}

impl TickRuns {
    fn summary(&self) -> TickSummary {
        TickSummary {
            status: TickStatus::Success,
            total_messages: self.messages,
            successful_workspaces: (self.workspaces.len() - self.failed.len()) as u64,
            failed_workspaces: self.failed.len() as u64,
        }
    }
}

/// Which tick started each running connection, and what each open tick has so far.
#[derive(Debug, Default)]
struct TickBook {
    /// Connection id -> (tick number, provider, workspace) of its scheduled run.
    running: HashMap<i64, (u64, String, String)>,
    /// (tick number, provider) -> the runs that tick started.
    open: HashMap<(u64, String), TickRuns>,
}

impl TickBook {
    /// A scheduled run of `c` was started by tick `seq`.
    fn started(&mut self, seq: u64, at: Timestamp, c: &Connection) {
        let runs = self.open.entry((seq, c.provider.clone())).or_default();
        runs.at = at;
        runs.remaining += 1;
        runs.workspaces.insert(c.workspace.clone());
        self.running
            .insert(c.id, (seq, c.provider.clone(), c.workspace.clone()));
    }

    /// A run ended; the provider's tick summary when it was its tick's last.
    fn ended(&mut self, f: &Finished) -> Option<(String, TickSummary, Timestamp)> {
        let (seq, provider, workspace) = self.running.remove(&f.connection_id)?;
        let key = (seq, provider);
        let runs = self.open.get_mut(&key)?;
        runs.remaining = runs.remaining.saturating_sub(1);
        runs.messages += f.records;
        if f.outcome == Outcome::Failed {
            runs.failed.insert(workspace);
        }
        if runs.remaining > 0 {
            return None;
        }
        let runs = self.open.remove(&key)?;
        Some((key.1, runs.summary(), runs.at))
    }
}

/// Log a provider's tick summary and keep it in `handle`.
fn publish(handle: &SchedulerHandle, provider: &str, summary: TickSummary, at: Timestamp) {
    let status = summary.status.as_str();
    if summary.status == TickStatus::Skipped {
        tracing::debug!(provider, status, "Scheduler tick summary.");
    } else {
        tracing::info!(
            provider,
            status,
            total_messages = summary.total_messages,
            successful_workspaces = summary.successful_workspaces,
            failed_workspaces = summary.failed_workspaces,
            "Scheduler tick summary."
        );
    }
    handle.record_tick(provider, summary, at);
}

/// The connections the scheduler may start: those of workspaces that are not paused (a
/// connection whose workspace has no row counts as active).
async fn schedulable(store: &dyn Store) -> Result<Vec<Connection>, inlet_core::StoreError> {
    let paused: HashSet<String> = store
        .list_workspaces()
        .await?
        .into_iter()
        .filter(|w| w.status == WorkspaceStatus::Paused)
        .map(|w| w.name)
        .collect();
    let mut conns = store.list_connections().await?;
    conns.retain(|c| !paused.contains(&c.workspace));
    Ok(conns)
}

/// The scheduler loop: every `tick`, list the connections of active workspaces, start
/// the due ones through `dispatcher`, feed finished syncs back, and log and keep (in
/// `handle`) each provider's tick summary. Ends when
/// `stop` is set (returns at once, without waiting for running syncs).
#[allow(clippy::too_many_arguments)]
pub async fn run_scheduler(
    dispatcher: Dispatcher,
    mut finished: mpsc::UnboundedReceiver<Finished>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mut scheduler: Scheduler,
    tick: Duration,
    handle: SchedulerHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut providers: HashMap<i64, String> = HashMap::new();
    let mut book = TickBook::default();
    let mut seq = 0u64;
    loop {
        if *stop.borrow() {
            return;
        }
        seq += 1;
        let (mut ok, mut failed, mut records) = (0u64, 0u64, 0u64);
        while let Ok(f) = finished.try_recv() {
            let provider = providers.get(&f.connection_id).cloned().unwrap_or_default();
            scheduler.finished(f.connection_id, &provider, f.outcome, f.at);
            match f.outcome {
                Outcome::Success => ok += 1,
                Outcome::Failed => failed += 1,
                _ => {}
            }
            records += f.records;
            if let Some((p, summary, at)) = book.ended(&f) {
                publish(&handle, &p, summary, at);
            }
        }
        match schedulable(&*store).await {
            Ok(conns) => {
                let now = clock.now();
                providers = conns.iter().map(|c| (c.id, c.provider.clone())).collect();
                let due = scheduler.due(&conns, now);
                let by_id: HashMap<i64, &Connection> = conns.iter().map(|c| (c.id, c)).collect();
                for (id, due_at) in &due {
                    if let Some(c) = by_id.get(id) {
                        book.started(seq, now, c);
                        dispatcher.schedule((*c).clone(), *due_at);
                    }
                }
                let started: HashSet<&str> = due
                    .iter()
                    .filter_map(|(id, _)| by_id.get(id).map(|c| c.provider.as_str()))
                    .collect();
                let known: BTreeSet<&str> = conns.iter().map(|c| c.provider.as_str()).collect();
                for p in known.into_iter().filter(|p| !started.contains(p)) {
                    let skipped = TickSummary {
                        status: TickStatus::Skipped,
                        total_messages: 0,
                        successful_workspaces: 0,
                        failed_workspaces: 0,
                    };
                    publish(&handle, p, skipped, now);
                }
                {
                    let mut nd = handle.next_due.lock().unwrap_or_else(|p| p.into_inner());
                    nd.clear();
                    for c in &conns {
                        if let Some(e) = scheduler.entry(c.id) {
                            nd.insert(c.id, e.next_due.0);
                        }
                    }
                }
                let status = if failed == 0 { "ok" } else { "degraded" };
                if ok + failed > 0 || !due.is_empty() {
                    tracing::info!(
                        status,
                        started = due.len(),
                        total_records = records,
                        successful_connections = ok,
                        failed_connections = failed,
                        "Scheduler tick."
                    );
                }
                handle.heartbeat.store(now.0, Ordering::SeqCst);
            }
            Err(e) => {
                tracing::error!(error = %e, "Scheduler could not list connections.");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests;
