//! `/metrics` in the Prometheus text format, rendered by hand.

use crate::AppState;
use inlet_core::StoreError;
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The exposition text.
pub async fn render(st: &AppState) -> Result<String, StoreError> {
    let m = st.dispatcher.metrics();
    let now = st.clock.now();
    let mut o = String::with_capacity(4096);
    family(
        &mut o,
        "inlet_runs_total",
        "counter",
        "Sync runs finished by this process, by status.",
    );
    for status in ["success", "partial", "failed"] {
        let n = m.runs.get(status).copied().unwrap_or(0);
        let _ = writeln!(o, "inlet_runs_total{{status=\"{status}\"}} {n}");
    }
    for (name, help, v) in [
        (
            "inlet_records_fetched_total",
            "Records received from providers.",
            m.fetched,
        ),
        (
            "inlet_records_inserted_total",
            "New records written.",
            m.inserted,
        ),
        (
            "inlet_records_updated_total",
            "Changed records rewritten.",
            m.updated,
        ),
        (
            "inlet_records_deleted_total",
            "Records tombstoned.",
            m.deleted,
        ),
        (
            "inlet_http_requests_total",
            "HTTP requests made to providers.",
            m.requests,
        ),
        (
            "inlet_http_retries_total",
            "Provider requests retried.",
            m.retries,
        ),
    ] {
        family(&mut o, name, "counter", help);
        let _ = writeln!(o, "{name} {v}");
    }
    family(
        &mut o,
        "inlet_rate_limit_wait_seconds_total",
        "counter",
        "Time spent waiting for provider rate limits.",
    );
    let _ = writeln!(
        o,
        "inlet_rate_limit_wait_seconds_total {:.3}",
        m.rate_limit_wait_ms as f64 / 1000.0
    );
    family(
        &mut o,
        "inlet_syncs_active",
        "gauge",
        "Connections with a sync running in this process.",
    );
    let _ = writeln!(o, "inlet_syncs_active {}", st.dispatcher.active_count());
    if let Some(h) = &st.scheduler {
        let beat = h.heartbeat.load(std::sync::atomic::Ordering::SeqCst);
        family(
            &mut o,
            "inlet_scheduler_heartbeat_age_seconds",
            "gauge",
            "Seconds since the scheduler's last tick.",
        );
        let age = if beat == 0 {
            -1.0
        } else {
            (now.0 - beat) as f64 / 1000.0
        };
        let _ = writeln!(o, "inlet_scheduler_heartbeat_age_seconds {age:.3}");
    }
    family(
        &mut o,
        "inlet_connection_last_success_age_seconds",
        "gauge",
        "Seconds since the connection's last successful sync (-1: none yet).",
    );
    let conns = st.store.list_connections().await?;
    for c in &conns {
        let last = match m.last_success.get(&c.id) {
            Some(t) => Some(*t),
            None => st
                .store
                .sync_states(c.id)
                .await?
                .values()
                .filter_map(|s| s.last_success_at)
                .min(),
        };
        let age = last.map_or(-1.0, |t| (now.0 - t.0) as f64 / 1000.0);
        let _ = writeln!(
            o,
            "inlet_connection_last_success_age_seconds{{connection=\"{}\",provider=\"{}\",status=\"{}\"}} {age:.3}",
            esc(&c.name),
            esc(&c.provider),
            c.status
        );
    }
    Ok(o)
}
