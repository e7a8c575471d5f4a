//! What `inlet serve` keeps: sync leases (the [`LeaseStore`] role) and API keys (the
//! [`KeyStore`] role).

use super::{Row, Session, SqlStore, args, changed_one, retrying};
use async_trait::async_trait;
use inlet_core::{ApiKey, KeyStore, Lease, LeaseStore, StoreError, Timestamp};

async fn try_acquire_lease(
    s: &mut dyn Session,
    id: i64,
    holder: &str,
    at: Timestamp,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let exists = s
        .query("SELECT 1 FROM \"connections\" WHERE \"id\" = $1", args![id])
        .await?;
    if exists.is_empty() {
        return Err(StoreError::NotFound(format!("connection {id}")));
    }
    let sql = "INSERT INTO \"sync_leases\" (\"connection_id\", \"holder\", \"acquired_at\", \"expires_at\") \
         VALUES ($1, $2, $3, $4) ON CONFLICT (\"connection_id\") DO UPDATE SET \
         \"holder\" = excluded.\"holder\", \"acquired_at\" = excluded.\"acquired_at\", \
         \"expires_at\" = excluded.\"expires_at\" \
         WHERE \"sync_leases\".\"expires_at\" <= $3 OR \"sync_leases\".\"holder\" = excluded.\"holder\"";
    let n = s
        .execute(sql, args![id, holder, at, Timestamp(at.0 + ttl_ms)])
        .await?;
    Ok(n == 1)
}

fn lease_row(r: &Row) -> Result<Lease, StoreError> {
    Ok(Lease {
        connection_id: r.get(0)?,
        holder: r.get(1)?,
        acquired_at: r.get(2)?,
        expires_at: r.get(3)?,
    })
}

const KEY_COLS: &str = "\"id\", \"name\", \"prefix\", \"hash\", \"created_at\", \"revoked_at\"";

fn key_row(r: &Row) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        prefix: r.get(2)?,
        hash: r.get(3)?,
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

async fn create_api_key(
    s: &mut dyn Session,
    name: &str,
    prefix: &str,
    hash: &str,
    at: Timestamp,
) -> Result<ApiKey, StoreError> {
    let sql = format!(
        "INSERT INTO \"api_keys\" (\"name\", \"prefix\", \"hash\", \"created_at\") VALUES ($1, $2, $3, $4) \
         RETURNING {KEY_COLS}"
    );
    match s.query_unique(&sql, args![name, prefix, hash, at]).await? {
        None => Err(StoreError::Db(
            "an API key with this hash exists already".into(),
        )),
        Some(rows) => rows
            .first()
            .map(key_row)
            .ok_or_else(|| StoreError::Db("INSERT returned no API key".into()))?,
    }
}

#[async_trait]
impl LeaseStore for SqlStore {
    async fn try_acquire_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        retrying!(self, |s| try_acquire_lease(
            s,
            connection_id,
            holder,
            at,
            ttl_ms
        ))
    }

    async fn renew_lease(
        &self,
        connection_id: i64,
        holder: &str,
        at: Timestamp,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE \"sync_leases\" SET \"expires_at\" = $3 \
                   WHERE \"connection_id\" = $1 AND \"holder\" = $2";
        let until = Timestamp(at.0 + ttl_ms);
        let n = retrying!(self, |s| s
            .execute(sql, args![connection_id, holder, until]))?;
        Ok(n == 1)
    }

    async fn release_lease(&self, connection_id: i64, holder: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM \"sync_leases\" WHERE \"connection_id\" = $1 AND \"holder\" = $2";
        retrying!(self, |s| s.execute(sql, args![connection_id, holder]))?;
        Ok(())
    }

    async fn get_lease(&self, connection_id: i64) -> Result<Option<Lease>, StoreError> {
        let sql = "SELECT \"connection_id\", \"holder\", \"acquired_at\", \"expires_at\" \
                   FROM \"sync_leases\" WHERE \"connection_id\" = $1";
        let rows = retrying!(self, |s| s.query(sql, args![connection_id]))?;
        rows.first().map(lease_row).transpose()
    }
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn create_api_key(
        &self,
        name: &str,
        prefix: &str,
        hash: &str,
        at: Timestamp,
    ) -> Result<ApiKey, StoreError> {
        retrying!(self, |s| create_api_key(s, name, prefix, hash, at))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLS} FROM \"api_keys\" ORDER BY \"id\"");
        let rows = retrying!(self, |s| s.query(&sql, &[]))?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke_api_key(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        let sql = "UPDATE \"api_keys\" SET \"revoked_at\" = $2 \
                   WHERE \"id\" = $1 AND \"revoked_at\" IS NULL";
        let n = retrying!(self, |s| s.execute(sql, args![id, at]))?;
        changed_one(n, || format!("live API key {id}"))
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLS} FROM \"api_keys\" WHERE \"hash\" = $1 AND \"revoked_at\" IS NULL"
        );
        let rows = retrying!(self, |s| s.query(&sql, args![hash]))?;
        rows.first().map(key_row).transpose()
    }
}
