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
//! as a failure. Only `active` and `failing` connections are scheduled; `paused` and
//! `needs_reauth` ones never are.

use crate::worker::{Dispatcher, Finished, Outcome};
use inlet_core::{Clock, Connection, ConnectionStatus, Store, Timestamp};
use std::collections::{BTreeMap, HashMap};
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

/// Handles the API reads to show the scheduler's state.
#[derive(Debug, Clone, Default)]
pub struct SchedulerHandle {
    /// Clock reading (ms) of the last completed tick; 0 before the first.
    pub heartbeat: Arc<AtomicI64>,
    /// Next due time per connection (ms), refreshed every tick.
    pub next_due: Arc<std::sync::Mutex<BTreeMap<i64, i64>>>,
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
}

/// The scheduler loop: every `tick`, list connections, start the due ones through
/// `dispatcher`, feed finished syncs back, and log a summary of the tick. Ends when
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
    loop {
        if *stop.borrow() {
            return;
        }
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
        }
        match store.list_connections().await {
            Ok(conns) => {
                let now = clock.now();
                providers = conns.iter().map(|c| (c.id, c.provider.clone())).collect();
                let due = scheduler.due(&conns, now);
                let by_id: HashMap<i64, &Connection> = conns.iter().map(|c| (c.id, c)).collect();
                for (id, due_at) in &due {
                    if let Some(c) = by_id.get(id) {
                        dispatcher.schedule((*c).clone(), *due_at);
                    }
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
