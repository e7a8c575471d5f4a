//! `/metrics` in the Prometheus text format, rendered by `metrics-exporter-prometheus`
//! from the dispatcher's counters (which grow as each page commits) and the store's
//! connections. Each request fills a fresh recorder, so a deleted connection or a
//! changed status leaves no stale series behind and servers in one process (tests)
//! never mix their numbers. The names are stable; docs/ARCHITECTURE.md lists them.

use crate::AppState;
use inlet_core::StoreError;
use inlet_engine::scheduler::{ProviderTicks, TickStatus};
use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::collections::BTreeMap;

/// Run statuses always present in `inlet_runs_total`, even at zero: every way a run
/// ends (all but `running`).
fn run_statuses() -> impl Iterator<Item = &'static str> {
    inlet_core::RunStatus::VALUES
        .iter()
        .copied()
        .filter(|s| *s != "running")
}

/// The exposition text.
pub async fn render(st: &AppState) -> Result<String, StoreError> {
    let m = st.dispatcher.metrics();
    let now = st.clock.now();
    let conns = st.store.list_connections().await?;
    let mut lags = Vec::with_capacity(conns.len());
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
        lags.push((
            c.name.clone(),
            c.provider.clone(),
            c.status.to_string(),
            age,
        ));
    }
    let heartbeat_age = st.scheduler.as_ref().map(|h| {
        let beat = h.heartbeat.load(std::sync::atomic::Ordering::SeqCst);
        if beat == 0 {
            -1.0
        } else {
            (now.0 - beat) as f64 / 1000.0
        }
    });
    let active = st.dispatcher.active_count() as f64;
    let ticks = st
        .scheduler
        .as_ref()
        .map(|h| h.tick_summaries())
        .unwrap_or_default();

    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe_counter!(
            "inlet_runs_total",
            "Sync runs finished by this process, by status."
        );
        for status in run_statuses() {
            counter!("inlet_runs_total", "status" => status)
                .absolute(m.runs.get(status).copied().unwrap_or(0));
        }
        for (status, n) in &m.runs {
            if !run_statuses().any(|s| s == status.as_str()) {
                counter!("inlet_runs_total", "status" => status.clone()).absolute(*n);
            }
        }
        for (name, help, v) in [
            (
                "inlet_records_fetched_total",
                "Records received from providers (counted as pages commit).",
                m.fetched,
            ),
            (
                "inlet_records_inserted_total",
                "New records written (counted as pages commit).",
                m.inserted,
            ),
            (
                "inlet_records_updated_total",
                "Changed records rewritten (counted as pages commit).",
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
            describe_counter!(name, help);
            counter!(name).absolute(v);
        }
        // A float that only grows; the metrics crate's counters are integers, so it is
        // exposed as a gauge under its established name.
        describe_gauge!(
            "inlet_rate_limit_wait_seconds_total",
            Unit::Seconds,
            "Time spent waiting for provider rate limits (only grows)."
        );
        gauge!("inlet_rate_limit_wait_seconds_total").set(m.rate_limit_wait_ms as f64 / 1000.0);
        describe_gauge!(
            "inlet_syncs_active",
            "Connections with a sync running in this process."
        );
        gauge!("inlet_syncs_active").set(active);
        if let Some(age) = heartbeat_age {
            describe_gauge!(
                "inlet_scheduler_heartbeat_age_seconds",
                Unit::Seconds,
                "Seconds since the scheduler's last tick."
            );
            gauge!("inlet_scheduler_heartbeat_age_seconds").set(age);
        }
        tick_metrics(&ticks);
        describe_gauge!(
            "inlet_connection_last_success_age_seconds",
            Unit::Seconds,
            "Seconds since the connection's last successful sync (-1: none yet)."
        );
        for (name, provider, status, age) in lags {
            gauge!(
                "inlet_connection_last_success_age_seconds",
                "connection" => name,
                "provider" => provider,
                "status" => status
            )
            .set(age);
        }
    });
    Ok(handle.render())
}

/// The scheduler's tick summaries per provider: the last tick's numbers as gauges, the
/// totals as counters.
fn tick_metrics(ticks: &BTreeMap<String, ProviderTicks>) {
    describe_counter!(
        "inlet_scheduler_ticks_total",
        "Scheduler tick summaries per provider, by status (success: runs were due; skipped: none was)."
    );
    describe_counter!(
        "inlet_scheduler_tick_messages_total",
        "Records fetched by the runs scheduler ticks started, per provider."
    );
    describe_counter!(
        "inlet_scheduler_tick_workspaces_total",
        "Workspaces counted in tick summaries, per provider, by result (successful or failed)."
    );
    describe_gauge!(
        "inlet_scheduler_last_tick_skipped",
        "1 when the provider's last tick summary is skipped, 0 when it is success."
    );
    describe_gauge!(
        "inlet_scheduler_last_tick_messages",
        "total_messages of the provider's last tick summary with status success."
    );
    describe_gauge!(
        "inlet_scheduler_last_tick_successful_workspaces",
        "successful_workspaces of the provider's last tick summary with status success."
    );
    describe_gauge!(
        "inlet_scheduler_last_tick_failed_workspaces",
        "failed_workspaces of the provider's last tick summary with status success."
    );
    for (provider, t) in ticks {
        let p = provider.clone();
        for (status, n) in [("success", t.ticks_success), ("skipped", t.ticks_skipped)] {
            counter!("inlet_scheduler_ticks_total", "provider" => p.clone(), "status" => status)
                .absolute(n);
        }
        counter!("inlet_scheduler_tick_messages_total", "provider" => p.clone())
            .absolute(t.messages);
        for (result, n) in [
            ("successful", t.successful_workspaces),
            ("failed", t.failed_workspaces),
        ] {
            counter!("inlet_scheduler_tick_workspaces_total", "provider" => p.clone(), "result" => result)
                .absolute(n);
        }
        if let Some(last) = t.last {
            let skipped = f64::from(u8::from(last.status == TickStatus::Skipped));
            gauge!("inlet_scheduler_last_tick_skipped", "provider" => p.clone()).set(skipped);
        }
        if let Some(ok) = t.last_success {
            gauge!("inlet_scheduler_last_tick_messages", "provider" => p.clone())
                .set(ok.total_messages as f64);
            gauge!("inlet_scheduler_last_tick_successful_workspaces", "provider" => p.clone())
                .set(ok.successful_workspaces as f64);
            gauge!("inlet_scheduler_last_tick_failed_workspaces", "provider" => p.clone())
                .set(ok.failed_workspaces as f64);
        }
    }
}
