//! What `inlet serve` keeps on PostgreSQL: connection deletion, run lookup, sync
//! leases, API keys.

use super::Inner;
use super::meta::{execute, get, opt_ts, query, run_row, ts};
use crate::codec::{RUN_STAT_COLUMNS, to_system};
use crate::error::{pg as db_err, pg_is_unique};
use inlet_core::{ApiKey, Lease, Run, StoreError, Timestamp};
use tokio_postgres::Row;

pub(super) async fn delete_connection(
    g: &mut Inner,
    id: i64,
    tables: &[&str],
) -> Result<(), StoreError> {
    let tx = g.client.transaction().await.map_err(db_err)?;
    // Lock the connection first, so no page commit adds rows while they are deleted.
    let found = tx
        .query(
            "SELECT 1 FROM \"connections\" WHERE \"id\" = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(db_err)?;
    if found.is_empty() {
        return Err(StoreError::NotFound(format!("connection {id}")));
    }
    for t in tables {
        // A stream whose table was never made has no rows.
        if !super::records::table_exists(&tx, t).await? {
            continue;
        }
        let sql = format!(
            "DELETE FROM \"{}\" WHERE \"connection_id\" = $1",
            t.replace('"', "\"\"")
        );
        tx.execute(&sql, &[&id]).await.map_err(db_err)?;
    }
    tx.execute("DELETE FROM \"connections\" WHERE \"id\" = $1", &[&id])
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

pub(super) async fn get_run(g: &mut Inner, run_id: i64) -> Result<Option<Run>, StoreError> {
    let sql = format!(
        "SELECT \"id\", \"connection_id\", \"mode\", \"trigger\", \"status\", \"started_at\", \"finished_at\", \
         \"streams\"::text, {}, \"error\", \"quota_remaining\", \"waiting_until\" FROM \"runs\" WHERE \"id\" = $1",
        RUN_STAT_COLUMNS.map(|c| format!("\"{c}\"")).join(", ")
    );
    query(g, &sql, &[&run_id])
        .await?
        .first()
        .map(run_row)
        .transpose()
}

pub(super) async fn try_acquire_lease(
    g: &mut Inner,
    id: i64,
    holder: &str,
    at: Timestamp,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let exists = query(g, "SELECT 1 FROM \"connections\" WHERE \"id\" = $1", &[&id]).await?;
    if exists.is_empty() {
        return Err(StoreError::NotFound(format!("connection {id}")));
    }
    let sql = "INSERT INTO \"sync_leases\" (\"connection_id\", \"holder\", \"acquired_at\", \"expires_at\") \
         VALUES ($1, $2, $3, $4) ON CONFLICT (\"connection_id\") DO UPDATE SET \
         \"holder\" = excluded.\"holder\", \"acquired_at\" = excluded.\"acquired_at\", \
         \"expires_at\" = excluded.\"expires_at\" \
         WHERE \"sync_leases\".\"expires_at\" <= $3 OR \"sync_leases\".\"holder\" = excluded.\"holder\"";
    let (now, until) = (to_system(at), to_system(Timestamp(at.0 + ttl_ms)));
    let n = execute(g, sql, &[&id, &holder, &now, &until]).await?;
    Ok(n == 1)
}

pub(super) async fn renew_lease(
    g: &mut Inner,
    id: i64,
    holder: &str,
    at: Timestamp,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let sql = "UPDATE \"sync_leases\" SET \"expires_at\" = $3 WHERE \"connection_id\" = $1 AND \"holder\" = $2";
    let until = to_system(Timestamp(at.0 + ttl_ms));
    Ok(execute(g, sql, &[&id, &holder, &until]).await? == 1)
}

pub(super) async fn release_lease(g: &mut Inner, id: i64, holder: &str) -> Result<(), StoreError> {
    let sql = "DELETE FROM \"sync_leases\" WHERE \"connection_id\" = $1 AND \"holder\" = $2";
    execute(g, sql, &[&id, &holder]).await?;
    Ok(())
}

pub(super) async fn get_lease(g: &mut Inner, id: i64) -> Result<Option<Lease>, StoreError> {
    let sql = "SELECT \"connection_id\", \"holder\", \"acquired_at\", \"expires_at\" FROM \"sync_leases\" \
               WHERE \"connection_id\" = $1";
    match query(g, sql, &[&id]).await?.first() {
        Some(r) => Ok(Some(Lease {
            connection_id: get(r, 0)?,
            holder: get(r, 1)?,
            acquired_at: ts(r, 2)?,
            expires_at: ts(r, 3)?,
        })),
        None => Ok(None),
    }
}

const KEY_COLS: &str = "\"id\", \"name\", \"prefix\", \"hash\", \"created_at\", \"revoked_at\"";

fn key_row(r: &Row) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: get(r, 0)?,
        name: get(r, 1)?,
        prefix: get(r, 2)?,
        hash: get(r, 3)?,
        created_at: ts(r, 4)?,
        revoked_at: opt_ts(r, 5)?,
    })
}

pub(super) async fn create_api_key(
    g: &mut Inner,
    name: &str,
    prefix: &str,
    hash: &str,
    at: Timestamp,
) -> Result<ApiKey, StoreError> {
    let sql = format!(
        "INSERT INTO \"api_keys\" (\"name\", \"prefix\", \"hash\", \"created_at\") VALUES ($1, $2, $3, $4) \
         RETURNING {KEY_COLS}"
    );
    let st = g.cache.get(&g.client, &sql).await?;
    match g
        .client
        .query_one(&st, &[&name, &prefix, &hash, &to_system(at)])
        .await
    {
        Ok(row) => key_row(&row),
        Err(e) if pg_is_unique(&e) => Err(StoreError::Db(
            "an API key with this hash exists already".into(),
        )),
        Err(e) => Err(db_err(e)),
    }
}

pub(super) async fn list_api_keys(g: &mut Inner) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!("SELECT {KEY_COLS} FROM \"api_keys\" ORDER BY \"id\"");
    query(g, &sql, &[]).await?.iter().map(key_row).collect()
}

pub(super) async fn revoke_api_key(
    g: &mut Inner,
    id: i64,
    at: Timestamp,
) -> Result<(), StoreError> {
    let sql =
        "UPDATE \"api_keys\" SET \"revoked_at\" = $2 WHERE \"id\" = $1 AND \"revoked_at\" IS NULL";
    if execute(g, sql, &[&id, &to_system(at)]).await? == 0 {
        return Err(StoreError::NotFound(format!("live API key {id}")));
    }
    Ok(())
}

pub(super) async fn find_api_key(g: &mut Inner, hash: &str) -> Result<Option<ApiKey>, StoreError> {
    let sql = format!(
        "SELECT {KEY_COLS} FROM \"api_keys\" WHERE \"hash\" = $1 AND \"revoked_at\" IS NULL"
    );
    query(g, &sql, &[&hash])
        .await?
        .first()
        .map(key_row)
        .transpose()
}
