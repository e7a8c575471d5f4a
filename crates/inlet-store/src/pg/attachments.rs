//! The `attachments` table on PostgreSQL.

use super::Inner;
use super::meta::{get, ts};
use crate::codec::{parse_enum, to_system};
use crate::error::pg as db_err;
use inlet_core::{
    Attachment, AttachmentLink, AttachmentStatus, AttachmentUpdate, StoreError, Timestamp,
};
use std::collections::BTreeMap;
use tokio_postgres::Row;

const COLS: &str = "\"id\", \"connection_id\", \"stream\", \"record_id\", \"url\", \"status\", \"hash\", \
     \"size\", \"content_type\", \"attempts\", \"last_error\", \"first_seen_at\", \"updated_at\"";

fn row(r: &Row) -> Result<Attachment, StoreError> {
    Ok(Attachment {
        id: get(r, 0)?,
        connection_id: get(r, 1)?,
        stream: get(r, 2)?,
        record_id: get(r, 3)?,
        url: get(r, 4)?,
        status: parse_enum(get(r, 5)?, "attachments.status")?,
        hash: get(r, 6)?,
        size: get(r, 7)?,
        content_type: get(r, 8)?,
        attempts: get(r, 9)?,
        last_error: get(r, 10)?,
        first_seen_at: ts(r, 11)?,
        updated_at: ts(r, 12)?,
    })
}

/// One statement for the whole batch: `INSERT ... SELECT FROM UNNEST(...)`.
pub(super) async fn add(
    g: &mut Inner,
    connection_id: i64,
    stream: &str,
    links: &[AttachmentLink],
    at: Timestamp,
) -> Result<u64, StoreError> {
    if links.is_empty() {
        return Ok(0);
    }
    let sql = "INSERT INTO \"attachments\" (\"connection_id\", \"stream\", \"record_id\", \"url\", \
               \"status\", \"attempts\", \"first_seen_at\", \"updated_at\") \
               SELECT $1, $2, r, u, 'pending', 0, $5, $5 FROM UNNEST($3::text[], $4::text[]) AS t(r, u) \
               ON CONFLICT (\"connection_id\", \"record_id\", \"url\") DO NOTHING";
    let st = g.cache.get(&g.client, sql).await?;
    let records: Vec<&str> = links.iter().map(|l| l.record_id.as_str()).collect();
    let urls: Vec<&str> = links.iter().map(|l| l.url.as_str()).collect();
    let at = to_system(at);
    g.client
        .execute(&st, &[&connection_id, &stream, &records, &urls, &at])
        .await
        .map_err(db_err)
}

pub(super) async fn list(
    g: &mut Inner,
    connection_id: Option<i64>,
    status: Option<AttachmentStatus>,
    after: i64,
    limit: u32,
) -> Result<Vec<Attachment>, StoreError> {
    let sql = format!(
        "SELECT {COLS} FROM \"attachments\" WHERE ($1::bigint IS NULL OR \"connection_id\" = $1) \
         AND ($2::text IS NULL OR \"status\" = $2) AND \"id\" > $3 ORDER BY \"id\" LIMIT $4"
    );
    let st = g.cache.get(&g.client, &sql).await?;
    let status = status.map(AttachmentStatus::as_str);
    let limit = i64::from(limit);
    let rows = g
        .client
        .query(&st, &[&connection_id, &status, &after, &limit])
        .await
        .map_err(db_err)?;
    rows.iter().map(row).collect()
}

pub(super) async fn update(g: &mut Inner, id: i64, u: &AttachmentUpdate) -> Result<(), StoreError> {
    let sql = "UPDATE \"attachments\" SET \"status\" = $2, \"hash\" = $3, \"size\" = $4, \
               \"content_type\" = $5, \"last_error\" = $6, \"updated_at\" = $7, \
               \"attempts\" = \"attempts\" + 1 WHERE \"id\" = $1";
    let st = g.cache.get(&g.client, sql).await?;
    let at = to_system(u.at);
    let n = g
        .client
        .execute(
            &st,
            &[
                &id,
                &u.status.as_str(),
                &u.hash,
                &u.size,
                &u.content_type,
                &u.last_error,
                &at,
            ],
        )
        .await
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("attachment {id}")));
    }
    Ok(())
}

pub(super) async fn count(
    g: &mut Inner,
    connection_id: Option<i64>,
) -> Result<BTreeMap<AttachmentStatus, u64>, StoreError> {
    let sql = "SELECT \"status\", COUNT(*) FROM \"attachments\" \
               WHERE ($1::bigint IS NULL OR \"connection_id\" = $1) GROUP BY \"status\"";
    let st = g.cache.get(&g.client, sql).await?;
    let rows = g
        .client
        .query(&st, &[&connection_id])
        .await
        .map_err(db_err)?;
    let mut out = BTreeMap::new();
    for r in &rows {
        let status: AttachmentStatus = parse_enum(get(r, 0)?, "attachments.status")?;
        out.insert(status, get::<i64>(r, 1)?.max(0) as u64);
    }
    Ok(out)
}
