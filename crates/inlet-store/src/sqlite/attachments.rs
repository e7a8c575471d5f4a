//! The `attachments` table on SQLite.

use super::values::{get, ts};
use crate::codec::parse_enum;
use crate::error::sqlite as db_err;
use inlet_core::{
    Attachment, AttachmentLink, AttachmentStatus, AttachmentUpdate, StoreError, Timestamp,
};
use rusqlite::{Connection, Row, TransactionBehavior, params};
use std::collections::BTreeMap;

const COLS: &str = "\"id\", \"connection_id\", \"stream\", \"record_id\", \"url\", \"status\", \"hash\", \
     \"size\", \"content_type\", \"attempts\", \"last_error\", \"first_seen_at\", \"updated_at\"";

fn row(r: &Row<'_>) -> Result<Attachment, StoreError> {
    Ok(Attachment {
        id: get(r, 0)?,
        connection_id: get(r, 1)?,
        stream: get(r, 2)?,
        record_id: get(r, 3)?,
        url: get(r, 4)?,
        status: parse_enum(&get::<String>(r, 5)?, "attachments.status")?,
        hash: get(r, 6)?,
        size: get(r, 7)?,
        content_type: get(r, 8)?,
        attempts: get(r, 9)?,
        last_error: get(r, 10)?,
        first_seen_at: ts(r, 11, "attachments.first_seen_at")?,
        updated_at: ts(r, 12, "attachments.updated_at")?,
    })
}

pub(super) fn add(
    c: &mut Connection,
    connection_id: i64,
    stream: &str,
    links: &[AttachmentLink],
    at: Timestamp,
) -> Result<u64, StoreError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let mut n = 0;
    {
        let mut st = tx
            .prepare_cached(
                "INSERT INTO \"attachments\" (\"connection_id\", \"stream\", \"record_id\", \"url\", \
                 \"status\", \"attempts\", \"first_seen_at\", \"updated_at\") \
                 VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5) \
                 ON CONFLICT (\"connection_id\", \"record_id\", \"url\") DO NOTHING",
            )
            .map_err(db_err)?;
        let at = at.to_string();
        for l in links {
            n += st
                .execute(params![connection_id, stream, l.record_id, l.url, at])
                .map_err(db_err)? as u64;
        }
    }
    tx.commit().map_err(db_err)?;
    Ok(n)
}

pub(super) fn list(
    c: &mut Connection,
    connection_id: Option<i64>,
    status: Option<AttachmentStatus>,
    after: i64,
    limit: u32,
) -> Result<Vec<Attachment>, StoreError> {
    let sql = format!(
        "SELECT {COLS} FROM \"attachments\" WHERE (?1 IS NULL OR \"connection_id\" = ?1) \
         AND (?2 IS NULL OR \"status\" = ?2) AND \"id\" > ?3 ORDER BY \"id\" LIMIT ?4"
    );
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let status = status.map(AttachmentStatus::as_str);
    let mut rows = st
        .query(params![connection_id, status, after, i64::from(limit)])
        .map_err(db_err)?;
    let mut out = vec![];
    while let Some(r) = rows.next().map_err(db_err)? {
        out.push(row(r)?);
    }
    Ok(out)
}

pub(super) fn update(c: &mut Connection, id: i64, u: &AttachmentUpdate) -> Result<(), StoreError> {
    let n = c
        .prepare_cached(
            "UPDATE \"attachments\" SET \"status\" = ?2, \"hash\" = ?3, \"size\" = ?4, \
             \"content_type\" = ?5, \"last_error\" = ?6, \"updated_at\" = ?7, \
             \"attempts\" = \"attempts\" + 1 WHERE \"id\" = ?1",
        )
        .map_err(db_err)?
        .execute(params![
            id,
            u.status.as_str(),
            u.hash,
            u.size,
            u.content_type,
            u.last_error,
            u.at.to_string()
        ])
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("attachment {id}")));
    }
    Ok(())
}

pub(super) fn count(
    c: &mut Connection,
    connection_id: Option<i64>,
) -> Result<BTreeMap<AttachmentStatus, u64>, StoreError> {
    let mut st = c
        .prepare_cached(
            "SELECT \"status\", COUNT(*) FROM \"attachments\" \
             WHERE (?1 IS NULL OR \"connection_id\" = ?1) GROUP BY \"status\"",
        )
        .map_err(db_err)?;
    let mut rows = st.query(params![connection_id]).map_err(db_err)?;
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next().map_err(db_err)? {
        let status: AttachmentStatus = parse_enum(&get::<String>(r, 0)?, "attachments.status")?;
        out.insert(status, get::<i64>(r, 1)?.max(0) as u64);
    }
    Ok(out)
}
