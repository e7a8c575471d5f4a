//! When a stream is reconciled and how much one reconcile may remove: the connection's
//! reconcile policy (the pass itself is `passes/reconcile.rs`).

use inlet_core::{SyncState, Timestamp, parse_duration};

/// Reconcile every this many completed syncs of a stream by default.
pub const DEFAULT_RECONCILE_EVERY: i64 = 10;
/// A reconcile may tombstone at most this share of a stream's live rows unless forced.
pub const DEFAULT_MAX_TOMBSTONE_SHARE: f64 = 0.5;
/// When a connection's streams are reconciled, from its config JSON:
/// `reconcile_every` (completed syncs; 0 = only on demand), `reconcile_max_age`
/// (`"7d"`, `"12h"`, or seconds), `reconcile_max_share` (0..=1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconcilePolicy {
    /// Every Nth completed sync of a stream reconciles it (0: never by count).
    pub every: i64,
    /// Reconcile when the last reconcile is older than this many milliseconds.
    pub max_age_ms: Option<i64>,
    /// The safety valve: the largest share of live rows one reconcile may tombstone.
    pub max_share: f64,
}

impl Default for ReconcilePolicy {
    fn default() -> Self {
        ReconcilePolicy {
            every: DEFAULT_RECONCILE_EVERY,
            max_age_ms: None,
            max_share: DEFAULT_MAX_TOMBSTONE_SHARE,
        }
    }
}

pub use inlet_core::{ENGINE_CONFIG_KEYS, provider_config};

impl ReconcilePolicy {
    /// Read the policy from a connection's config; errors name the bad key.
    pub fn from_config(config: &serde_json::Value) -> Result<Self, String> {
        let mut p = ReconcilePolicy::default();
        if let Some(v) = config.get("reconcile_every").filter(|v| !v.is_null()) {
            p.every = v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                format!("config key reconcile_every must be a whole number >= 0, got {v}")
            })?;
        }
        if let Some(v) = config.get("reconcile_max_age").filter(|v| !v.is_null()) {
            let ms = match v {
                serde_json::Value::String(s) => parse_duration(s)
                    .map_err(|e| format!("config key reconcile_max_age: {e}"))?,
                other => other
                    .as_i64()
                    .filter(|n| *n > 0)
                    .and_then(|s| s.checked_mul(1000))
                    .ok_or_else(|| {
                        format!(
                            "config key reconcile_max_age must be a duration like \"7d\" or seconds, got {other}"
                        )
                    })?,
            };
            p.max_age_ms = Some(ms);
        }
        if let Some(v) = config.get("reconcile_max_share").filter(|v| !v.is_null()) {
            p.max_share = v
                .as_f64()
                .filter(|f| (0.0..=1.0).contains(f))
                .ok_or_else(|| {
                    format!("config key reconcile_max_share must be a number from 0 to 1, got {v}")
                })?;
        }
        Ok(p)
    }

    /// Whether the sync about to start should also reconcile a stream in `state`.
    pub fn due(&self, state: &SyncState, now: Timestamp) -> bool {
        if state.sync_count < 1 {
            return false; // the first pass reads everything anyway
        }
        if self.every > 0 && (state.sync_count + 1) % self.every == 0 {
            return true;
        }
        self.max_age_ms
            .is_some_and(|age| state.last_reconciled_at.is_none_or(|t| now.0 - t.0 >= age))
    }
}
