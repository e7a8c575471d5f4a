//! Connections, sync state and runs on PostgreSQL.

use super::{Cache, Inner};
use crate::codec::{
    RUN_STAT_COLUMNS, checkpoint_json, from_system, parse_checkpoint, parse_config, parse_enum,
    parse_streams, stats_from_array, stats_to_array, to_system,
};
use crate::error::{pg as db_err, pg_is_unique};
use inlet_core::{
    Connection as Conn, ConnectionStatus, NewConnection, Run, RunMode, RunStats, RunStatus,
    StoreError, SyncState, Timestamp, Trigger,
};
use std::collections::BTreeMap;
use std::time::SystemTime;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{GenericClient, Row};

/// Column `i` of `row`; a value that does not decode is corrupt.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| {
        let name = row.columns().get(i).map_or("?", |c| c.name());
        StoreError::Corrupt(format!("column {name}: {e}"))
    })
}

/// Column `i` as a timestamp.
pub(super) fn ts(row: &Row, i: usize) -> Result<Timestamp, StoreError> {
    get::<SystemTime>(row, i).map(from_system)
}

/// Column `i` as an optional timestamp.
pub(super) fn opt_ts(row: &Row, i: usize) -> Result<Option<Timestamp>, StoreError> {
    Ok(get::<Option<SystemTime>>(row, i)?.map(from_system))
}

const CONN_COLS: &str = "\"id\", \"name\", \"workspace\", \"provider\", \"config\"::text, \"credentials\", \
     \"status\", \"status_detail\", \"created_at\", \"updated_at\"";

fn conn_row(r: &Row) -> Result<Conn, StoreError> {
    Ok(Conn {
        id: get(r, 0)?,
        name: get(r, 1)?,
        workspace: get(r, 2)?,
        provider: get(r, 3)?,
        config: parse_config(get(r, 4)?)?,
        credentials: get(r, 5)?,
        status: parse_enum(get(r, 6)?, "connections.status")?,
        status_detail: get(r, 7)?,
        created_at: ts(r, 8)?,
        updated_at: ts(r, 9)?,
    })
}

pub(super) async fn query(
    g: &mut Inner,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let st = g.cache.get(&g.client, sql).await?;
    g.client.query(&st, params).await.map_err(db_err)
}

pub(super) async fn execute(
    g: &mut Inner,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let st = g.cache.get(&g.client, sql).await?;
    g.client.execute(&st, params).await.map_err(db_err)
}

pub(super) async fn create_connection(
    g: &mut Inner,
    new: &NewConnection,
    at: Timestamp,
) -> Result<Conn, StoreError> {
    let sql = format!(
        "INSERT INTO \"connections\" (\"name\", \"workspace\", \"provider\", \"config\", \"credentials\", \
         \"status\", \"created_at\", \"updated_at\") VALUES ($1, $2, $3, ($4::text)::jsonb, $5, $6, $7, $7) \
         RETURNING {CONN_COLS}"
    );
    let st = g.cache.get(&g.client, &sql).await?;
    let config = new.config.to_string();
    let at = to_system(at);
    let status = ConnectionStatus::Active.as_str();
    let params: [&(dyn ToSql + Sync); 7] = [
        &new.name,
        &new.workspace,
        &new.provider,
        &config,
        &new.credentials,
        &status,
        &at,
    ];
    match g.client.query_one(&st, &params).await {
        Ok(row) => conn_row(&row),
        Err(e) if pg_is_unique(&e) => Err(StoreError::DuplicateConnection(new.name.clone())),
        Err(e) => Err(db_err(e)),
    }
}

pub(super) async fn get_connection(g: &mut Inner, key: &str) -> Result<Option<Conn>, StoreError> {
    let sql = format!("SELECT {CONN_COLS} FROM \"connections\" WHERE \"name\" = $1");
    if let Some(r) = query(g, &sql, &[&key]).await?.first() {
        return conn_row(r).map(Some);
    }
    let Ok(id) = key.parse::<i64>() else {
        return Ok(None);
    };
    let sql = format!("SELECT {CONN_COLS} FROM \"connections\" WHERE \"id\" = $1");
    query(g, &sql, &[&id])
        .await?
        .first()
        .map(conn_row)
        .transpose()
}

pub(super) async fn list_connections(g: &mut Inner) -> Result<Vec<Conn>, StoreError> {
    let sql = format!("SELECT {CONN_COLS} FROM \"connections\" ORDER BY \"id\"");
    query(g, &sql, &[]).await?.iter().map(conn_row).collect()
}

fn changed_one(n: u64, what: String) -> Result<(), StoreError> {
    if n == 0 {
        Err(StoreError::NotFound(what))
    } else {
        Ok(())
    }
}

pub(super) async fn set_status(
    g: &mut Inner,
    id: i64,
    status: ConnectionStatus,
    detail: Option<&str>,
    at: Timestamp,
) -> Result<(), StoreError> {
    let sql = "UPDATE \"connections\" SET \"status\" = $2, \"status_detail\" = $3, \"updated_at\" = $4 WHERE \"id\" = $1";
    let n = execute(g, sql, &[&id, &status.as_str(), &detail, &to_system(at)]).await?;
    changed_one(n, format!("connection {id}"))
}

pub(super) async fn set_credentials(
    g: &mut Inner,
    id: i64,
    sealed: &[u8],
    at: Timestamp,
) -> Result<(), StoreError> {
    let sql =
        "UPDATE \"connections\" SET \"credentials\" = $2, \"updated_at\" = $3 WHERE \"id\" = $1";
    let n = execute(g, sql, &[&id, &sealed, &to_system(at)]).await?;
    changed_one(n, format!("connection {id}"))
}

fn state_row(r: &Row) -> Result<(String, SyncState), StoreError> {
    let state = SyncState {
        cursor: get(r, 1)?,
        checkpoint: parse_checkpoint(get(r, 2)?)?,
        last_sync_at: opt_ts(r, 3)?,
        last_success_at: opt_ts(r, 4)?,
        sync_count: get(r, 5)?,
        last_reconciled_at: opt_ts(r, 6)?,
    };
    Ok((get(r, 0)?, state))
}

/// The sync states of a connection (of one stream when `stream` is given).
pub(super) async fn sync_states(
    g: &mut Inner,
    id: i64,
    stream: Option<&str>,
) -> Result<BTreeMap<String, SyncState>, StoreError> {
    let sql = "SELECT \"stream\", \"cursor\", \"checkpoint\"::text, \"last_sync_at\", \"last_success_at\", \
               \"sync_count\", \"last_reconciled_at\" FROM \"sync_state\" \
               WHERE \"connection_id\" = $1 AND ($2::text IS NULL OR \"stream\" = $2::text)";
    query(g, sql, &[&id, &stream])
        .await?
        .iter()
        .map(state_row)
        .collect()
}

/// Write a stream's sync state with `c` (a client or the page's transaction).
pub(super) async fn put_sync_state<C: GenericClient + Sync>(
    c: &C,
    cache: &mut Cache,
    id: i64,
    stream: &str,
    s: &SyncState,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO \"sync_state\" (\"connection_id\", \"stream\", \"cursor\", \"checkpoint\", \
               \"last_sync_at\", \"last_success_at\", \"sync_count\", \"last_reconciled_at\") \
               VALUES ($1, $2, $3, ($4::text)::jsonb, $5, $6, $7, $8) ON CONFLICT (\"connection_id\", \"stream\") DO UPDATE SET \
               \"cursor\" = \"excluded\".\"cursor\", \"checkpoint\" = \"excluded\".\"checkpoint\", \
               \"last_sync_at\" = \"excluded\".\"last_sync_at\", \"last_success_at\" = \"excluded\".\"last_success_at\", \
               \"sync_count\" = \"excluded\".\"sync_count\", \"last_reconciled_at\" = \"excluded\".\"last_reconciled_at\"";
    let st = cache.get(c, sql).await?;
    let checkpoint = checkpoint_json(&s.checkpoint)?;
    let t = |t: Option<Timestamp>| t.map(to_system);
    let (sync, success, rec) = (
        t(s.last_sync_at),
        t(s.last_success_at),
        t(s.last_reconciled_at),
    );
    c.execute(
        &st,
        &[
            &id,
            &stream,
            &s.cursor,
            &checkpoint,
            &sync,
            &success,
            &s.sync_count,
            &rec,
        ],
    )
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(super) async fn start_run(
    g: &mut Inner,
    id: i64,
    mode: RunMode,
    trigger: Trigger,
    at: Timestamp,
) -> Result<i64, StoreError> {
    let sql = "INSERT INTO \"runs\" (\"connection_id\", \"mode\", \"trigger\", \"status\", \"started_at\") \
               VALUES ($1, $2, $3, $4, $5) RETURNING \"id\"";
    let (mode, trigger, status) = (mode.as_str(), trigger.as_str(), RunStatus::Running.as_str());
    let rows = query(g, sql, &[&id, &mode, &trigger, &status, &to_system(at)]).await?;
    rows.first()
        .map(|r| get(r, 0))
        .ok_or_else(|| StoreError::Db("INSERT returned no id".into()))?
}

/// A run's progress or outcome.
pub(super) struct RunUpdate<'a> {
    pub run_id: i64,
    pub status: RunStatus,
    pub stats: &'a RunStats,
    pub streams: &'a str,
    pub error: Option<&'a str>,
    pub finished_at: Option<Timestamp>,
}

pub(super) async fn update_run(g: &mut Inner, u: &RunUpdate<'_>) -> Result<(), StoreError> {
    let sets: Vec<String> = RUN_STAT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\"{c}\" = ${}", i + 6))
        .collect();
    let sql = format!(
        "UPDATE \"runs\" SET \"status\" = $2, \"streams\" = ($3::text)::jsonb, \"error\" = $4, \
         \"finished_at\" = $5::timestamptz, \"duration_ms\" = \
         (EXTRACT(EPOCH FROM ($5::timestamptz - \"started_at\")) * 1000)::bigint, {}, \
         \"quota_remaining\" = ${} WHERE \"id\" = $1",
        sets.join(", "),
        RUN_STAT_COLUMNS.len() + 6
    );
    let quota = u
        .stats
        .quota_remaining
        .map(|q| i64::try_from(q).unwrap_or(i64::MAX));
    let stats = stats_to_array(u.stats);
    let (status, finished) = (u.status.as_str(), u.finished_at.map(to_system));
    let mut p: Vec<&(dyn ToSql + Sync)> = vec![&u.run_id, &status, &u.streams, &u.error, &finished];
    p.extend(stats.iter().map(|v| v as &(dyn ToSql + Sync)));
    p.push(&quota);
    let n = execute(g, &sql, &p).await?;
    changed_one(n, format!("run {}", u.run_id))
}

pub(super) fn run_row(r: &Row) -> Result<Run, StoreError> {
    let mut stats = [0i64; crate::codec::N_STATS];
    for (i, s) in stats.iter_mut().enumerate() {
        *s = get(r, 8 + i)?;
    }
    Ok(Run {
        id: get(r, 0)?,
        connection_id: get(r, 1)?,
        mode: parse_enum(get(r, 2)?, "runs.mode")?,
        trigger: parse_enum(get(r, 3)?, "runs.trigger")?,
        status: parse_enum(get(r, 4)?, "runs.status")?,
        started_at: ts(r, 5)?,
        finished_at: opt_ts(r, 6)?,
        stats: RunStats {
            quota_remaining: get::<Option<i64>>(r, 9 + crate::codec::N_STATS)?
                .and_then(|q| u64::try_from(q).ok()),
            ..stats_from_array(stats)?
        },
        streams: parse_streams(get(r, 7)?)?,
        error: get(r, 8 + crate::codec::N_STATS)?,
        waiting_until: opt_ts(r, 10 + crate::codec::N_STATS)?,
    })
}

pub(super) async fn set_run_waiting_until(
    g: &mut Inner,
    run_id: i64,
    until: Option<Timestamp>,
) -> Result<(), StoreError> {
    let until = until.map(to_system);
    let n = execute(
        g,
        "UPDATE \"runs\" SET \"waiting_until\" = $2 WHERE \"id\" = $1",
        &[&run_id, &until],
    )
    .await?;
    changed_one(n, format!("run {run_id}"))
}

pub(super) async fn list_runs(
    g: &mut Inner,
    id: Option<i64>,
    limit: u32,
) -> Result<Vec<Run>, StoreError> {
    let filter = if id.is_some() {
        "WHERE \"connection_id\" = $2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT \"id\", \"connection_id\", \"mode\", \"trigger\", \"status\", \"started_at\", \"finished_at\", \
         \"streams\"::text, {}, \"error\", \"quota_remaining\", \"waiting_until\" FROM \"runs\" {filter} ORDER BY \"id\" DESC LIMIT $1",
        RUN_STAT_COLUMNS.map(|c| format!("\"{c}\"")).join(", ")
    );
    let limit = i64::from(limit);
    let rows = match &id {
        Some(id) => query(g, &sql, &[&limit, id]).await?,
        None => query(g, &sql, &[&limit]).await?,
    };
    rows.iter().map(run_row).collect()
}

/// A value of `inlet_meta`.
pub(super) async fn meta_get(g: &mut Inner, name: &str) -> Result<Option<String>, StoreError> {
    let sql = "SELECT \"value\" FROM \"inlet_meta\" WHERE \"name\" = $1";
    query(g, sql, &[&name])
        .await?
        .first()
        .map(|r| get::<String>(r, 0))
        .transpose()
}

/// Insert `value` under `name` unless one is there; the value stored now.
pub(super) async fn meta_init(
    g: &mut Inner,
    name: &str,
    value: &str,
) -> Result<String, StoreError> {
    let sql = "INSERT INTO \"inlet_meta\" (\"name\", \"value\") VALUES ($1, $2) \
               ON CONFLICT (\"name\") DO NOTHING";
    execute(g, sql, &[&name, &value]).await?;
    meta_get(g, name)
        .await?
        .ok_or_else(|| StoreError::Db(format!("inlet_meta value {name:?} vanished")))
}
