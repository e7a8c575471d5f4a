//! What `inlet serve` keeps on SQLite: connection deletion, run lookup, sync leases,
//! API keys.

use super::meta::run_row;
use super::values::{get, opt_ts, ts};
use crate::codec::RUN_STAT_COLUMNS;
use crate::error::{sqlite as db_err, sqlite_is_unique};
use inlet_core::{ApiKey, Lease, Run, StoreError, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

pub(super) fn delete_connection(
    c: &mut Connection,
    id: i64,
    tables: &[String],
) -> Result<(), StoreError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    for t in tables {
        // A stream whose table was never made has no rows.
        if !super::records::table_exists(&tx, t)? {
            continue;
        }
        let sql = format!(
            "DELETE FROM \"{}\" WHERE \"connection_id\" = ?1",
            t.replace('"', "\"\"")
        );
        tx.execute(&sql, params![id]).map_err(db_err)?;
    }
    let n = tx
        .execute("DELETE FROM \"connections\" WHERE \"id\" = ?1", params![id])
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("connection {id}")));
    }
    tx.commit().map_err(db_err)
}

pub(super) fn get_run(c: &mut Connection, run_id: i64) -> Result<Option<Run>, StoreError> {
    let sql = format!(
        "SELECT \"id\", \"connection_id\", \"mode\", \"trigger\", \"status\", \"started_at\", \"finished_at\", \
         \"streams\", {}, \"error\", \"quota_remaining\", \"waiting_until\" FROM \"runs\" WHERE \"id\" = ?1",
        RUN_STAT_COLUMNS.map(|c| format!("\"{c}\"")).join(", ")
    );
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query(params![run_id]).map_err(db_err)?;
    match rows.next().map_err(db_err)? {
        Some(r) => run_row(r).map(Some),
        None => Ok(None),
    }
}

pub(super) fn try_acquire_lease(
    c: &mut Connection,
    id: i64,
    holder: &str,
    at: Timestamp,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let exists: Option<i64> = c
        .query_row(
            "SELECT 1 FROM \"connections\" WHERE \"id\" = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("connection {id}")));
    }
    let n = c
        .execute(
            "INSERT INTO \"sync_leases\" (\"connection_id\", \"holder\", \"acquired_at\", \"expires_at\") \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (\"connection_id\") DO UPDATE SET \
             \"holder\" = excluded.\"holder\", \"acquired_at\" = excluded.\"acquired_at\", \
             \"expires_at\" = excluded.\"expires_at\" \
             WHERE \"sync_leases\".\"expires_at\" <= ?3 OR \"sync_leases\".\"holder\" = excluded.\"holder\"",
            params![id, holder, at.to_string(), Timestamp(at.0 + ttl_ms).to_string()],
        )
        .map_err(db_err)?;
    Ok(n == 1)
}

pub(super) fn renew_lease(
    c: &mut Connection,
    id: i64,
    holder: &str,
    at: Timestamp,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE \"sync_leases\" SET \"expires_at\" = ?3 WHERE \"connection_id\" = ?1 AND \"holder\" = ?2",
            params![id, holder, Timestamp(at.0 + ttl_ms).to_string()],
        )
        .map_err(db_err)?;
    Ok(n == 1)
}

pub(super) fn release_lease(c: &mut Connection, id: i64, holder: &str) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM \"sync_leases\" WHERE \"connection_id\" = ?1 AND \"holder\" = ?2",
        params![id, holder],
    )
    .map_err(db_err)?;
    Ok(())
}

pub(super) fn get_lease(c: &mut Connection, id: i64) -> Result<Option<Lease>, StoreError> {
    let mut st = c
        .prepare_cached(
            "SELECT \"connection_id\", \"holder\", \"acquired_at\", \"expires_at\" FROM \"sync_leases\" \
             WHERE \"connection_id\" = ?1",
        )
        .map_err(db_err)?;
    let mut rows = st.query(params![id]).map_err(db_err)?;
    match rows.next().map_err(db_err)? {
        Some(r) => Ok(Some(Lease {
            connection_id: get(r, 0)?,
            holder: get(r, 1)?,
            acquired_at: ts(r, 2, "sync_leases.acquired_at")?,
            expires_at: ts(r, 3, "sync_leases.expires_at")?,
        })),
        None => Ok(None),
    }
}

const KEY_COLS: &str = "\"id\", \"name\", \"prefix\", \"hash\", \"created_at\", \"revoked_at\"";

fn key_row(r: &Row<'_>) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: get(r, 0)?,
        name: get(r, 1)?,
        prefix: get(r, 2)?,
        hash: get(r, 3)?,
        created_at: ts(r, 4, "api_keys.created_at")?,
        revoked_at: opt_ts(r, 5, "api_keys.revoked_at")?,
    })
}

fn keys_where(
    c: &mut Connection,
    filter: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!("SELECT {KEY_COLS} FROM \"api_keys\" {filter} ORDER BY \"id\"");
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query(p).map_err(db_err)?;
    let mut out = vec![];
    while let Some(r) = rows.next().map_err(db_err)? {
        out.push(key_row(r)?);
    }
    Ok(out)
}

pub(super) fn create_api_key(
    c: &mut Connection,
    name: &str,
    prefix: &str,
    hash: &str,
    at: Timestamp,
) -> Result<ApiKey, StoreError> {
    match c.execute(
        "INSERT INTO \"api_keys\" (\"name\", \"prefix\", \"hash\", \"created_at\") VALUES (?1, ?2, ?3, ?4)",
        params![name, prefix, hash, at.to_string()],
    ) {
        Ok(_) => {}
        Err(e) if sqlite_is_unique(&e) => {
            return Err(StoreError::Db("an API key with this hash exists already".into()));
        }
        Err(e) => return Err(db_err(e)),
    }
    let id = c.last_insert_rowid();
    keys_where(c, "WHERE \"id\" = ?1", &[&id])?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("api key {id}")))
}

pub(super) fn list_api_keys(c: &mut Connection) -> Result<Vec<ApiKey>, StoreError> {
    keys_where(c, "", &[])
}

pub(super) fn revoke_api_key(c: &mut Connection, id: i64, at: Timestamp) -> Result<(), StoreError> {
    let n = c
        .execute(
            "UPDATE \"api_keys\" SET \"revoked_at\" = ?2 WHERE \"id\" = ?1 AND \"revoked_at\" IS NULL",
            params![id, at.to_string()],
        )
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("live API key {id}")));
    }
    Ok(())
}

pub(super) fn find_api_key(c: &mut Connection, hash: &str) -> Result<Option<ApiKey>, StoreError> {
    Ok(keys_where(
        c,
        "WHERE \"hash\" = ?1 AND \"revoked_at\" IS NULL",
        &[&hash],
    )?
    .pop())
}
