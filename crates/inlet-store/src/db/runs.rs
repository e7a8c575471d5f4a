//! Sync runs: the [`RunStore`] role.

use super::{Row, Session, SqlStore, args, changed_one, first, once, retrying};
use crate::codec::{
    N_STATS, RUN_STAT_COLUMNS, parse_enum, parse_streams, stats_from_array, stats_to_array,
    streams_json,
};
use async_trait::async_trait;
use inlet_core::{
    Run, RunMode, RunStats, RunStatus, RunStore, StoreError, StreamStats, Timestamp, Trigger,
};
use std::collections::BTreeMap;

/// The columns of a run, in [`run_row`] order.
fn run_cols() -> String {
    format!(
        "\"id\", \"connection_id\", \"mode\", \"trigger\", \"status\", \"started_at\", \"finished_at\", \
         \"streams\", {}, \"error\", \"quota_remaining\", \"waiting_until\"",
        RUN_STAT_COLUMNS.map(|c| format!("\"{c}\"")).join(", ")
    )
}

fn run_row(r: &Row) -> Result<Run, StoreError> {
    let mut stats = [0i64; N_STATS];
    for (i, s) in stats.iter_mut().enumerate() {
        *s = r.get(8 + i)?;
    }
    Ok(Run {
        id: r.get(0)?,
        connection_id: r.get(1)?,
        mode: parse_enum(&r.get::<String>(2)?, "runs.mode")?,
        trigger: parse_enum(&r.get::<String>(3)?, "runs.trigger")?,
        status: parse_enum(&r.get::<String>(4)?, "runs.status")?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        stats: RunStats {
            quota_remaining: r
                .get::<Option<i64>>(9 + N_STATS)?
                .and_then(|q| u64::try_from(q).ok()),
            ..stats_from_array(stats)?
        },
        streams: parse_streams(&r.get::<String>(7)?)?,
        error: r.get(8 + N_STATS)?,
        waiting_until: r.get(10 + N_STATS)?,
    })
}

async fn start_run(
    s: &mut dyn Session,
    id: i64,
    mode: RunMode,
    trigger: Trigger,
    at: Timestamp,
) -> Result<i64, StoreError> {
    let sql = "INSERT INTO \"runs\" (\"connection_id\", \"mode\", \"trigger\", \"status\", \"started_at\") \
               VALUES ($1, $2, $3, $4, $5) RETURNING \"id\"";
    let a = args![
        id,
        mode.as_str(),
        trigger.as_str(),
        RunStatus::Running.as_str(),
        at
    ];
    first(&s.query(sql, a).await?)?.ok_or_else(|| StoreError::Db("INSERT returned no id".into()))
}

/// A run's progress or outcome.
struct RunUpdate<'a> {
    run_id: i64,
    status: RunStatus,
    stats: &'a RunStats,
    streams: &'a str,
    error: Option<&'a str>,
    finished_at: Option<Timestamp>,
}

async fn update_run(s: &mut dyn Session, u: &RunUpdate<'_>) -> Result<(), StoreError> {
    let started = s
        .query(
            "SELECT \"started_at\" FROM \"runs\" WHERE \"id\" = $1",
            args![u.run_id],
        )
        .await?;
    let started: Timestamp =
        first(&started)?.ok_or_else(|| StoreError::NotFound(format!("run {}", u.run_id)))?;
    let duration = u.finished_at.map(|f| f.0 - started.0);
    let sets: Vec<String> = RUN_STAT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\"{c}\" = ${}", i + 7))
        .collect();
    let sql = format!(
        "UPDATE \"runs\" SET \"status\" = $2, \"streams\" = $3, \"error\" = $4, \"finished_at\" = $5, \
         \"duration_ms\" = $6, {}, \"quota_remaining\" = ${} WHERE \"id\" = $1",
        sets.join(", "),
        RUN_STAT_COLUMNS.len() + 7
    );
    let quota = u
        .stats
        .quota_remaining
        .map(|q| i64::try_from(q).unwrap_or(i64::MAX));
    let mut a = args![
        u.run_id,
        u.status.as_str(),
        u.streams,
        u.error,
        u.finished_at,
        duration
    ]
    .to_vec();
    a.extend(stats_to_array(u.stats).map(super::Arg::Int));
    a.push(quota.into());
    let n = s.execute(&sql, &a).await?;
    changed_one(n, || format!("run {}", u.run_id))
}

async fn list_runs(
    s: &mut dyn Session,
    id: Option<i64>,
    limit: u32,
) -> Result<Vec<Run>, StoreError> {
    let sql = format!(
        "SELECT {} FROM \"runs\" WHERE (CAST($1 AS BIGINT) IS NULL OR \"connection_id\" = $1) \
         ORDER BY \"id\" DESC LIMIT $2",
        run_cols()
    );
    s.query(&sql, args![id, limit])
        .await?
        .iter()
        .map(run_row)
        .collect()
}

async fn get_run(s: &mut dyn Session, run_id: i64) -> Result<Option<Run>, StoreError> {
    let sql = format!("SELECT {} FROM \"runs\" WHERE \"id\" = $1", run_cols());
    s.query(&sql, args![run_id])
        .await?
        .first()
        .map(run_row)
        .transpose()
}

#[async_trait]
impl RunStore for SqlStore {
    async fn start_run(
        &self,
        connection_id: i64,
        mode: RunMode,
        trigger: Trigger,
        at: Timestamp,
    ) -> Result<i64, StoreError> {
        retrying!(self, |s| start_run(s, connection_id, mode, trigger, at))
    }

    async fn update_run(
        &self,
        run_id: i64,
        status: RunStatus,
        stats: &RunStats,
        streams: &BTreeMap<String, StreamStats>,
        error: Option<&str>,
        finished_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let streams = streams_json(streams)?;
        let up = RunUpdate {
            run_id,
            status,
            stats,
            streams: &streams,
            error,
            finished_at,
        };
        retrying!(self, |s| update_run(s, &up))
    }

    async fn set_run_waiting_until(
        &self,
        run_id: i64,
        until: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE \"runs\" SET \"waiting_until\" = $2 WHERE \"id\" = $1";
        let n = once!(self, |s| s.execute(sql, args![run_id, until]))?;
        changed_one(n, || format!("run {run_id}"))
    }

    async fn list_runs(
        &self,
        connection_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Run>, StoreError> {
        retrying!(self, |s| list_runs(s, connection_id, limit))
    }

    async fn get_run(&self, run_id: i64) -> Result<Option<Run>, StoreError> {
        retrying!(self, |s| get_run(s, run_id))
    }
}
