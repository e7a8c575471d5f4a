//! Connections, sync state and runs on SQLite.

use super::values::{get, opt_ts, ts, ts_text};
use crate::codec::{
    self, RUN_STAT_COLUMNS, checkpoint_json, parse_checkpoint, parse_config, parse_enum,
    stats_from_array, stats_to_array,
};
use crate::error::{sqlite as db_err, sqlite_is_unique};
use inlet_core::{
    Connection as Conn, ConnectionStatus, NewConnection, Run, RunMode, RunStats, RunStatus,
    StoreError, SyncState, Timestamp, Trigger,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::BTreeMap;

const CONN_COLS: &str = "\"id\", \"name\", \"workspace\", \"provider\", \"config\", \"credentials\", \
     \"status\", \"status_detail\", \"created_at\", \"updated_at\"";

fn conn_row(r: &Row<'_>) -> Result<Conn, StoreError> {
    let config: String = get(r, 4)?;
    let status: String = get(r, 6)?;
    Ok(Conn {
        id: get(r, 0)?,
        name: get(r, 1)?,
        workspace: get(r, 2)?,
        provider: get(r, 3)?,
        config: parse_config(&config)?,
        credentials: get(r, 5)?,
        status: parse_enum(&status, "connections.status")?,
        status_detail: get(r, 7)?,
        created_at: ts(r, 8, "connections.created_at")?,
        updated_at: ts(r, 9, "connections.updated_at")?,
    })
}

pub(super) fn create_connection(
    c: &mut Connection,
    new: &NewConnection,
    at: Timestamp,
) -> Result<Conn, StoreError> {
    let res = c.execute(
        "INSERT INTO \"connections\" (\"name\", \"workspace\", \"provider\", \"config\", \"credentials\", \
         \"status\", \"status_detail\", \"created_at\", \"updated_at\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?7)",
        params![
            new.name,
            new.workspace,
            new.provider,
            new.config.to_string(),
            new.credentials,
            ConnectionStatus::Active.as_str(),
            at.to_string()
        ],
    );
    match res {
        Err(e) if sqlite_is_unique(&e) => Err(StoreError::DuplicateConnection(new.name.clone())),
        Err(e) => Err(db_err(e)),
        Ok(_) => by_id(c, c.last_insert_rowid())?
            .ok_or_else(|| StoreError::Db("created connection vanished".into())),
    }
}

fn query_one(
    c: &Connection,
    filter: &str,
    p: &dyn rusqlite::ToSql,
) -> Result<Option<Conn>, StoreError> {
    let sql = format!("SELECT {CONN_COLS} FROM \"connections\" WHERE {filter}");
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query([p]).map_err(db_err)?;
    match rows.next().map_err(db_err)? {
        Some(r) => conn_row(r).map(Some),
        None => Ok(None),
    }
}

fn by_id(c: &Connection, id: i64) -> Result<Option<Conn>, StoreError> {
    query_one(c, "\"id\" = ?1", &id)
}

pub(super) fn get_connection(c: &mut Connection, key: &str) -> Result<Option<Conn>, StoreError> {
    if let Some(conn) = query_one(c, "\"name\" = ?1", &key)? {
        return Ok(Some(conn));
    }
    match key.parse::<i64>() {
        Ok(id) => by_id(c, id),
        Err(_) => Ok(None),
    }
}

pub(super) fn list_connections(c: &mut Connection) -> Result<Vec<Conn>, StoreError> {
    let mut st = c
        .prepare_cached(&format!(
            "SELECT {CONN_COLS} FROM \"connections\" ORDER BY \"id\""
        ))
        .map_err(db_err)?;
    let mut rows = st.query([]).map_err(db_err)?;
    let mut out = vec![];
    while let Some(r) = rows.next().map_err(db_err)? {
        out.push(conn_row(r)?);
    }
    Ok(out)
}

fn changed_one(n: usize, what: String) -> Result<(), StoreError> {
    if n == 0 {
        Err(StoreError::NotFound(what))
    } else {
        Ok(())
    }
}

pub(super) fn set_status(
    c: &mut Connection,
    id: i64,
    status: ConnectionStatus,
    detail: Option<&str>,
    at: Timestamp,
) -> Result<(), StoreError> {
    let n = c
        .execute(
            "UPDATE \"connections\" SET \"status\" = ?2, \"status_detail\" = ?3, \"updated_at\" = ?4 WHERE \"id\" = ?1",
            params![id, status.as_str(), detail, at.to_string()],
        )
        .map_err(db_err)?;
    changed_one(n, format!("connection {id}"))
}

pub(super) fn set_credentials(
    c: &mut Connection,
    id: i64,
    sealed: &[u8],
    at: Timestamp,
) -> Result<(), StoreError> {
    let n = c
        .execute(
            "UPDATE \"connections\" SET \"credentials\" = ?2, \"updated_at\" = ?3 WHERE \"id\" = ?1",
            params![id, sealed, at.to_string()],
        )
        .map_err(db_err)?;
    changed_one(n, format!("connection {id}"))
}

const STATE_COLS: &str = "\"stream\", \"cursor\", \"checkpoint\", \"last_sync_at\", \"last_success_at\", \
     \"sync_count\", \"last_reconciled_at\"";

fn state_row(r: &Row<'_>) -> Result<(String, SyncState), StoreError> {
    let state = SyncState {
        cursor: get(r, 1)?,
        checkpoint: parse_checkpoint(get(r, 2)?)?,
        last_sync_at: opt_ts(r, 3, "sync_state.last_sync_at")?,
        last_success_at: opt_ts(r, 4, "sync_state.last_success_at")?,
        sync_count: get(r, 5)?,
        last_reconciled_at: opt_ts(r, 6, "sync_state.last_reconciled_at")?,
    };
    Ok((get(r, 0)?, state))
}

pub(super) fn sync_state(
    c: &mut Connection,
    id: i64,
    stream: &str,
) -> Result<SyncState, StoreError> {
    let sql = format!(
        "SELECT {STATE_COLS} FROM \"sync_state\" WHERE \"connection_id\" = ?1 AND \"stream\" = ?2"
    );
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query(params![id, stream]).map_err(db_err)?;
    match rows.next().map_err(db_err)? {
        Some(r) => Ok(state_row(r)?.1),
        None => Ok(SyncState::default()),
    }
}

pub(super) fn sync_states(
    c: &mut Connection,
    id: i64,
) -> Result<BTreeMap<String, SyncState>, StoreError> {
    let sql = format!("SELECT {STATE_COLS} FROM \"sync_state\" WHERE \"connection_id\" = ?1");
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query([id]).map_err(db_err)?;
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next().map_err(db_err)? {
        let (k, v) = state_row(r)?;
        out.insert(k, v);
    }
    Ok(out)
}

/// Write a stream's sync state (inside the caller's transaction, if any).
pub(super) fn put_sync_state(
    c: &Connection,
    id: i64,
    stream: &str,
    s: &SyncState,
) -> Result<(), StoreError> {
    let mut st = c
        .prepare_cached(
            "INSERT INTO \"sync_state\" (\"connection_id\", \"stream\", \"cursor\", \"checkpoint\", \
             \"last_sync_at\", \"last_success_at\", \"sync_count\", \"last_reconciled_at\") \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (\"connection_id\", \"stream\") DO UPDATE SET \
             \"cursor\" = \"excluded\".\"cursor\", \"checkpoint\" = \"excluded\".\"checkpoint\", \
             \"last_sync_at\" = \"excluded\".\"last_sync_at\", \"last_success_at\" = \"excluded\".\"last_success_at\", \
             \"sync_count\" = \"excluded\".\"sync_count\", \"last_reconciled_at\" = \"excluded\".\"last_reconciled_at\"",
        )
        .map_err(db_err)?;
    st.execute(params![
        id,
        stream,
        s.cursor,
        checkpoint_json(&s.checkpoint)?,
        ts_text(s.last_sync_at),
        ts_text(s.last_success_at),
        s.sync_count,
        ts_text(s.last_reconciled_at)
    ])
    .map_err(db_err)?;
    Ok(())
}

pub(super) fn start_run(
    c: &mut Connection,
    id: i64,
    mode: RunMode,
    trigger: Trigger,
    at: Timestamp,
) -> Result<i64, StoreError> {
    c.execute(
        "INSERT INTO \"runs\" (\"connection_id\", \"mode\", \"trigger\", \"status\", \"started_at\") \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, mode.as_str(), trigger.as_str(), RunStatus::Running.as_str(), at.to_string()],
    )
    .map_err(db_err)?;
    Ok(c.last_insert_rowid())
}

/// A run's progress or outcome.
pub(super) struct RunUpdate {
    pub run_id: i64,
    pub status: RunStatus,
    pub stats: RunStats,
    pub streams: String,
    pub error: Option<String>,
    pub finished_at: Option<Timestamp>,
}

pub(super) fn update_run(c: &mut Connection, u: &RunUpdate) -> Result<(), StoreError> {
    let started: Option<String> = c
        .query_row(
            "SELECT \"started_at\" FROM \"runs\" WHERE \"id\" = ?1",
            [u.run_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    let started = started.ok_or_else(|| StoreError::NotFound(format!("run {}", u.run_id)))?;
    let started = codec::parse_ts(&started, "runs.started_at")?;
    let duration = u.finished_at.map(|f| f.0 - started.0);
    let sets: Vec<String> = RUN_STAT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\"{c}\" = ?{}", i + 7))
        .collect();
    let sql = format!(
        "UPDATE \"runs\" SET \"status\" = ?2, \"streams\" = ?3, \"error\" = ?4, \"finished_at\" = ?5, \
         \"duration_ms\" = ?6, {}, \"quota_remaining\" = ?{} WHERE \"id\" = ?1",
        sets.join(", "),
        RUN_STAT_COLUMNS.len() + 7
    );
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let finished = ts_text(u.finished_at);
    let quota = u
        .stats
        .quota_remaining
        .map(|q| i64::try_from(q).unwrap_or(i64::MAX));
    let stats = stats_to_array(&u.stats);
    let status = u.status.as_str();
    let mut p: Vec<&dyn rusqlite::ToSql> = vec![
        &u.run_id, &status, &u.streams, &u.error, &finished, &duration,
    ];
    p.extend(stats.iter().map(|v| v as &dyn rusqlite::ToSql));
    p.push(&quota);
    st.execute(p.as_slice()).map_err(db_err)?;
    Ok(())
}

pub(super) fn run_row(r: &Row<'_>) -> Result<Run, StoreError> {
    let mut stats = [0i64; crate::codec::N_STATS];
    for (i, s) in stats.iter_mut().enumerate() {
        *s = get(r, 8 + i)?;
    }
    let streams: String = get(r, 7)?;
    Ok(Run {
        id: get(r, 0)?,
        connection_id: get(r, 1)?,
        mode: parse_enum(&get::<String>(r, 2)?, "runs.mode")?,
        trigger: parse_enum(&get::<String>(r, 3)?, "runs.trigger")?,
        status: parse_enum(&get::<String>(r, 4)?, "runs.status")?,
        started_at: ts(r, 5, "runs.started_at")?,
        finished_at: opt_ts(r, 6, "runs.finished_at")?,
        stats: RunStats {
            quota_remaining: get::<Option<i64>>(r, 9 + crate::codec::N_STATS)?
                .and_then(|q| u64::try_from(q).ok()),
            ..stats_from_array(stats)?
        },
        streams: codec::parse_streams(&streams)?,
        error: get(r, 8 + crate::codec::N_STATS)?,
        waiting_until: opt_ts(r, 10 + crate::codec::N_STATS, "runs.waiting_until")?,
    })
}

pub(super) fn set_run_waiting_until(
    c: &mut Connection,
    run_id: i64,
    until: Option<Timestamp>,
) -> Result<(), StoreError> {
    let n = c
        .execute(
            "UPDATE \"runs\" SET \"waiting_until\" = ?2 WHERE \"id\" = ?1",
            params![run_id, ts_text(until)],
        )
        .map_err(db_err)?;
    changed_one(n, format!("run {run_id}"))
}

pub(super) fn list_runs(
    c: &mut Connection,
    id: Option<i64>,
    limit: u32,
) -> Result<Vec<Run>, StoreError> {
    let sql = format!(
        "SELECT \"id\", \"connection_id\", \"mode\", \"trigger\", \"status\", \"started_at\", \"finished_at\", \
         \"streams\", {}, \"error\", \"quota_remaining\", \"waiting_until\" FROM \"runs\" WHERE (?1 IS NULL OR \"connection_id\" = ?1) \
         ORDER BY \"id\" DESC LIMIT ?2",
        RUN_STAT_COLUMNS.map(|c| format!("\"{c}\"")).join(", ")
    );
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query(params![id, i64::from(limit)]).map_err(db_err)?;
    let mut out = vec![];
    while let Some(r) = rows.next().map_err(db_err)? {
        out.push(run_row(r)?);
    }
    Ok(out)
}

/// A value of `inlet_meta`.
pub(super) fn meta_get(c: &mut Connection, name: &str) -> Result<Option<String>, StoreError> {
    c.query_row(
        "SELECT \"value\" FROM \"inlet_meta\" WHERE \"name\" = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_err)
}

/// Insert `value` under `name` unless one is there; the value stored now.
pub(super) fn meta_init(c: &mut Connection, name: &str, value: &str) -> Result<String, StoreError> {
    c.execute(
        "INSERT INTO \"inlet_meta\" (\"name\", \"value\") VALUES (?1, ?2) \
         ON CONFLICT (\"name\") DO NOTHING",
        params![name, value],
    )
    .map_err(db_err)?;
    meta_get(c, name)?.ok_or_else(|| StoreError::Db(format!("inlet_meta value {name:?} vanished")))
}
