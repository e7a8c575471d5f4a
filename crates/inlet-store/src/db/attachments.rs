//! The `attachments` table: the [`AttachmentStore`] role.

use super::{Arg, Row, SqlStore, args, changed_one, retrying};
use crate::codec::parse_enum;
use crate::sql::Dialect;
use async_trait::async_trait;
use inlet_core::{
    Attachment, AttachmentLink, AttachmentStatus, AttachmentStore, AttachmentUpdate, StoreError,
    Timestamp,
};
use std::collections::BTreeMap;

const COLS: &str = "\"id\", \"connection_id\", \"stream\", \"record_id\", \"url\", \"status\", \"hash\", \
     \"size\", \"content_type\", \"attempts\", \"last_error\", \"first_seen_at\", \"updated_at\"";

fn row(r: &Row) -> Result<Attachment, StoreError> {
    Ok(Attachment {
        id: r.get(0)?,
        connection_id: r.get(1)?,
        stream: r.get(2)?,
        record_id: r.get(3)?,
        url: r.get(4)?,
        status: parse_enum(&r.get::<String>(5)?, "attachments.status")?,
        hash: r.get(6)?,
        size: r.get(7)?,
        content_type: r.get(8)?,
        attempts: r.get(9)?,
        last_error: r.get(10)?,
        first_seen_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

/// Pairs (record id, url) from the two text lists bound at `$3` and `$4`, as a table
/// `"t"("r", "u")`. (The insert that reads it says `WHERE true`: SQLite would take its
/// `ON CONFLICT` for a join's `ON` otherwise.)
fn pairs(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "UNNEST($3::text[], $4::text[]) AS \"t\"(\"r\", \"u\")",
        Dialect::Sqlite => {
            "(SELECT \"a\".\"value\" AS \"r\", \"b\".\"value\" AS \"u\" FROM json_each($3) AS \"a\" \
             JOIN json_each($4) AS \"b\" ON \"a\".\"key\" = \"b\".\"key\") AS \"t\""
        }
    }
}

#[async_trait]
impl AttachmentStore for SqlStore {
    /// One statement for the whole batch.
    async fn add_attachments(
        &self,
        connection_id: i64,
        stream: &str,
        links: &[AttachmentLink],
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        if links.is_empty() {
            return Ok(0);
        }
        let records = Arg::List(links.iter().map(|l| l.record_id.as_str()).collect());
        let urls = Arg::List(links.iter().map(|l| l.url.as_str()).collect());
        let a = [
            Arg::Int(connection_id),
            Arg::Text(stream),
            records,
            urls,
            Arg::Time(at),
        ];
        let a = &a;
        retrying!(self, |s| {
            let sql = format!(
                "INSERT INTO \"attachments\" (\"connection_id\", \"stream\", \"record_id\", \"url\", \
                 \"status\", \"attempts\", \"first_seen_at\", \"updated_at\") \
                 SELECT $1, $2, \"r\", \"u\", 'pending', 0, $5, $5 FROM {} WHERE true \
                 ON CONFLICT (\"connection_id\", \"record_id\", \"url\") DO NOTHING",
                pairs(s.dialect())
            );
            async move { s.execute(&sql, a).await }
        })
    }

    async fn list_attachments(
        &self,
        connection_id: Option<i64>,
        status: Option<AttachmentStatus>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM \"attachments\" WHERE (CAST($1 AS BIGINT) IS NULL OR \"connection_id\" = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR \"status\" = $2) AND \"id\" > $3 ORDER BY \"id\" LIMIT $4"
        );
        let status = status.map(AttachmentStatus::as_str);
        let rows = retrying!(self, |s| s
            .query(&sql, args![connection_id, status, after, limit]))?;
        rows.iter().map(row).collect()
    }

    async fn update_attachment(&self, id: i64, u: &AttachmentUpdate) -> Result<(), StoreError> {
        let sql = "UPDATE \"attachments\" SET \"status\" = $2, \"hash\" = $3, \"size\" = $4, \
                   \"content_type\" = $5, \"last_error\" = $6, \"updated_at\" = $7, \
                   \"attempts\" = \"attempts\" + 1 WHERE \"id\" = $1";
        let a = args![
            id,
            u.status.as_str(),
            u.hash.as_deref(),
            u.size,
            u.content_type.as_deref(),
            u.last_error.as_deref(),
            u.at,
        ];
        let n = retrying!(self, |s| s.execute(sql, a))?;
        changed_one(n, || format!("attachment {id}"))
    }

    async fn count_attachments(
        &self,
        connection_id: Option<i64>,
    ) -> Result<BTreeMap<AttachmentStatus, u64>, StoreError> {
        let sql = "SELECT \"status\", COUNT(*) FROM \"attachments\" \
                   WHERE (CAST($1 AS BIGINT) IS NULL OR \"connection_id\" = $1) GROUP BY \"status\"";
        let rows = retrying!(self, |s| s.query(sql, args![connection_id]))?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let status: AttachmentStatus = parse_enum(&r.get::<String>(0)?, "attachments.status")?;
            out.insert(status, r.count(1)?);
        }
        Ok(out)
    }
}
