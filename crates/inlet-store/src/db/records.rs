//! Record tables: page commits classified by content hash, tombstones, derived tables,
//! counts and exports — the [`RecordStore`] role (its reconcile, import and family
//! operations are in [`super::reconcile`] and [`super::family`]).

use super::meta::put_sync_state;
use super::{Arg, RowWrite, Session, SqlStore, args, once, retrying, transaction};
use crate::codec::{self, Existing, Plan, dedupe, plan};
use crate::sql::{self, Dialect, q};
use async_trait::async_trait;
use inlet_core::{
    DerivedRow, DerivedSpec, ExportRow, FamilyBatch, FamilyOutcome, PageBatch, PageOutcome,
    ReconcileBatch, ReconcileOutcome, Record, RecordStore, SnapshotBatch, SnapshotSource,
    StoreError, StreamSpec, Timestamp, TombstoneBatch,
};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The record tables carry no foreign key on PostgreSQL (one trigger per row was too
/// dear): check the connection once per page and hold it against deletion until commit,
/// as the key would. SQLite's tables keep the key.
pub(crate) async fn lock_connection(s: &mut dyn Session, conn: i64) -> Result<(), StoreError> {
    if s.dialect() == Dialect::Sqlite {
        return Ok(());
    }
    let sql = "SELECT 1 FROM \"connections\" WHERE \"id\" = $1 FOR KEY SHARE";
    if s.query(sql, args![conn]).await?.is_empty() {
        return Err(StoreError::NotFound(format!(
            "the referenced connection (id {conn})"
        )));
    }
    Ok(())
}

/// What is stored for the ids of a page.
pub(crate) async fn lookup(
    s: &mut dyn Session,
    spec: &StreamSpec,
    conn: i64,
    records: &[&Record],
) -> Result<HashMap<String, Existing>, StoreError> {
    let ids = Arg::List(records.iter().map(|r| r.id.as_str()).collect());
    let rows = s
        .query(&sql::lookup(s.dialect(), spec), &[Arg::Int(conn), ids])
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        let e = Existing {
            hash: r.get(1)?,
            deleted: r.get(2)?,
            key: r.get(3)?,
        };
        out.insert(r.get(0)?, e);
    }
    Ok(out)
}

/// Upsert `records` of `spec` inside the session's transaction (the body of a page
/// commit): classify each against its stored row by content hash, write the new and the
/// changed in bulk, and refresh the derived rows of the groups they touch.
pub(crate) async fn write_records(
    s: &mut dyn Session,
    spec: &StreamSpec,
    conn: i64,
    records: &[Record],
    refresh: bool,
    at: Timestamp,
) -> Result<PageOutcome, StoreError> {
    let records = dedupe(spec, records)?;
    let existing = lookup(s, spec, conn, &records).await?;
    let plan = plan(spec, records, &existing, refresh);
    write_plan(s, spec, conn, &plan, at).await?;
    let (derived_inserted, derived_updated) = if refresh {
        refresh_derived(s, spec, conn, &plan.keys, at).await?
    } else {
        (0, 0)
    };
    Ok(PageOutcome {
        inserted: plan.inserts.len() as u64,
        updated: plan.updates.len() as u64,
        unchanged: plan.unchanged,
        derived_inserted,
        derived_updated,
    })
}

/// Write a classified page: its new rows, then its changed ones, each in bulk.
pub(crate) async fn write_plan(
    s: &mut dyn Session,
    spec: &StreamSpec,
    conn: i64,
    plan: &Plan<'_>,
    at: Timestamp,
) -> Result<(), StoreError> {
    for (rows, update) in [(&plan.inserts, false), (&plan.updates, true)] {
        if !rows.is_empty() {
            let w = RowWrite {
                spec,
                conn,
                rows,
                at,
                update,
            };
            s.write_rows(w).await?;
        }
    }
    Ok(())
}

/// Recompute the derived rows of `keys`; returns (inserted, updated). PostgreSQL does it
/// in one statement; SQLite reads which rows exist, upserts, and deletes the emptied.
pub(crate) async fn refresh_derived(
    s: &mut dyn Session,
    spec: &StreamSpec,
    conn: i64,
    keys: &BTreeSet<String>,
    at: Timestamp,
) -> Result<(u64, u64), StoreError> {
    let Some(der) = spec.derived else {
        return Ok((0, 0));
    };
    if keys.is_empty() {
        return Ok((0, 0));
    }
    let list = || Arg::List(keys.iter().map(String::as_str).collect());
    match s.dialect() {
        Dialect::Postgres => {
            let sql = sql::pg_derived_refresh(spec.table, der);
            let rows = s
                .query(&sql, &[Arg::Int(conn), list(), Arg::Time(at)])
                .await?;
            let row = rows
                .first()
                .ok_or_else(|| StoreError::Db("derived refresh returned no row".into()))?;
            Ok((row.count(0)?, row.count(1)?))
        }
        Dialect::Sqlite => {
            let rows = s
                .query(&sql::derived_existing(der), &[Arg::Int(conn), list()])
                .await?;
            let existing = rows
                .iter()
                .map(|r| r.get::<String>(0))
                .collect::<Result<HashSet<_>, _>>()?;
            let sql = sql::derived_upsert(Dialect::Sqlite, spec.table, der);
            let written = s
                .query(&sql, &[Arg::Int(conn), list(), Arg::Time(at)])
                .await?;
            let (mut ins, mut upd) = (0, 0);
            for r in &written {
                if existing.contains(&r.get::<String>(0)?) {
                    upd += 1
                } else {
                    ins += 1
                }
            }
            let sql = sql::derived_delete(Dialect::Sqlite, spec.table, der);
            s.execute(&sql, &[Arg::Int(conn), list()]).await?;
            Ok((ins, upd))
        }
    }
}

/// Keys per refresh statement when recomputing a whole derived table.
const KEYS_PER_REFRESH: i64 = 5000;

async fn refresh_derived_all(
    s: &mut dyn Session,
    conn: i64,
    spec: &StreamSpec,
    at: Timestamp,
) -> Result<(u64, u64), StoreError> {
    let Some(der) = spec.derived else {
        return Ok((0, 0));
    };
    transaction!(s, {
        let d = s.dialect();
        let (mut ins, mut upd) = (0, 0);
        let mut last = String::new();
        loop {
            let sql = sql::derived_keys_after(d, spec.table, der);
            let rows = s
                .query(&sql, args![conn, last.as_str(), KEYS_PER_REFRESH])
                .await?;
            let keys = rows
                .iter()
                .map(|r| r.get::<String>(0))
                .collect::<Result<BTreeSet<_>, _>>()?;
            let Some(max) = keys.last() else { break };
            last = max.clone();
            let (i, u) = refresh_derived(s, spec, conn, &keys, at).await?;
            (ins, upd) = (ins + i, upd + u);
        }
        s.execute(&sql::derived_orphans(d, spec.table, der), args![conn])
            .await?;
        Ok((ins, upd))
    })
}

async fn commit_page(s: &mut dyn Session, b: &PageBatch<'_>) -> Result<PageOutcome, StoreError> {
    transaction!(s, {
        lock_connection(s, b.connection_id).await?;
        let out = write_records(
            s,
            b.stream,
            b.connection_id,
            &b.records,
            b.refresh_derived,
            b.at,
        )
        .await?;
        put_sync_state(s, b.connection_id, b.stream.name, b.state).await?;
        Ok(out)
    })
}

/// The stream's scope value as an argument, when it is scoped.
pub(crate) fn scope(spec: &StreamSpec) -> Option<Arg<'static>> {
    spec.scope.map(|s| Arg::Text(s.value))
}

async fn tombstone_missing(s: &mut dyn Session, b: &TombstoneBatch<'_>) -> Result<u64, StoreError> {
    let spec = b.stream;
    transaction!(s, {
        let mut a = vec![
            Arg::Int(b.connection_id),
            Arg::Time(b.at),
            Arg::from(b.seen),
        ];
        a.extend(scope(spec));
        if let Some((_, from)) = b.window {
            a.push(Arg::Time(from));
        }
        let sql = sql::tombstone(s.dialect(), spec, b.window.map(|(c, _)| c));
        let rows = s.query(&sql, &a).await?;
        let mut keys = BTreeSet::new();
        let mut ids: Vec<String> = Vec::new();
        for r in &rows {
            ids.push(r.get(0)?);
            keys.extend(r.get::<Option<String>>(1)?);
        }
        refresh_derived(s, spec, b.connection_id, &keys, b.at).await?;
        if let (Some((child, col)), false) = (b.children, ids.is_empty()) {
            let sql = crate::family_sql::tombstone_where_in(s.dialect(), child.table, col);
            s.execute(&sql, args![b.connection_id, b.at, ids.as_slice()])
                .await?;
            s.execute(
                &crate::family_sql::markers_delete(s.dialect()),
                args![b.connection_id, spec.name, ids.as_slice()],
            )
            .await?;
        }
        put_sync_state(s, b.connection_id, spec.name, b.state).await?;
        Ok(rows.len() as u64)
    })
}

/// Live rows of a stream (within its scope).
pub(crate) async fn count_live(
    s: &mut dyn Session,
    conn: i64,
    spec: &StreamSpec,
) -> Result<u64, StoreError> {
    let mut a = vec![Arg::Int(conn)];
    a.extend(scope(spec));
    let rows = s.query(&sql::count_live(s.dialect(), spec), &a).await?;
    rows.first().map_or(Ok(0), |r| r.count(0))
}

async fn count_derived(s: &mut dyn Session, conn: i64, table: &str) -> Result<u64, StoreError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE \"connection_id\" = $1",
        q(table)
    );
    let rows = s.query(&sql, args![conn]).await?;
    rows.first().map_or(Ok(0), |r| r.count(0))
}

/// One keyset page of an export.
struct ExportQuery<'a> {
    connection_id: i64,
    spec: &'a StreamSpec,
    after: Option<&'a str>,
    limit: u32,
    include_deleted: bool,
}

async fn export_page(
    s: &mut dyn Session,
    x: &ExportQuery<'_>,
) -> Result<Vec<ExportRow>, StoreError> {
    let spec = x.spec;
    let sql = sql::export(s.dialect(), spec, x.include_deleted, x.after.is_some());
    let mut a = vec![Arg::Int(x.connection_id), Arg::from(x.limit)];
    a.extend(scope(spec));
    a.extend(x.after.map(Arg::Text));
    let rows = s.query(&sql, &a).await?;
    let n = spec.columns.len();
    rows.iter()
        .map(|r| {
            let id: String = r.get(0)?;
            let values = spec
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| r.value(i + 1, c.ty, &format!("{}.{} of {id:?}", spec.table, c.name)))
                .collect::<Result<_, _>>()?;
            let hash: Vec<u8> = r.get(n + 2)?;
            Ok(ExportRow {
                content_hash: codec::content_hash(&hash, &id)?,
                raw: r.get(n + 1)?,
                first_seen_at: r.get(n + 3)?,
                updated_at: r.get(n + 4)?,
                deleted_at: r.get(n + 5)?,
                values,
                id,
            })
        })
        .collect()
}

/// One keyset page of a derived table.
async fn export_derived_page(
    s: &mut dyn Session,
    connection_id: i64,
    der: &DerivedSpec,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<DerivedRow>, StoreError> {
    let sql = sql::export_derived(s.dialect(), der, after.is_some());
    let mut a = vec![Arg::Int(connection_id), Arg::from(limit)];
    a.extend(after.map(Arg::Text));
    let rows = s.query(&sql, &a).await?;
    rows.iter()
        .map(|r| {
            let id: String = r.get(0)?;
            let values = der
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let what = format!("{}.{} of {id:?}", der.table, c.column.name);
                    r.value(i + 1, c.column.ty, &what)
                })
                .collect::<Result<_, _>>()?;
            Ok(DerivedRow {
                updated_at: r.get(der.columns.len() + 1)?,
                values,
                id,
            })
        })
        .collect()
}

#[async_trait]
impl RecordStore for SqlStore {
    async fn commit_page(&self, batch: PageBatch<'_>) -> Result<PageOutcome, StoreError> {
        self.ensure(&[*batch.stream]).await?;
        retrying!(self, |s| commit_page(s, &batch))
    }

    async fn tombstone_missing(&self, batch: TombstoneBatch<'_>) -> Result<u64, StoreError> {
        let mut specs = vec![*batch.stream];
        specs.extend(batch.children.map(|(c, _)| *c));
        self.ensure(&specs).await?;
        retrying!(self, |s| tombstone_missing(s, &batch))
    }

    async fn stage_ids(&self, token: &str, ids: &[String]) -> Result<(), StoreError> {
        retrying!(self, |s| super::reconcile::stage_ids(s, token, ids))
    }

    async fn drop_staged(&self, token: &str) -> Result<(), StoreError> {
        retrying!(self, |s| super::reconcile::drop_staged(s, token))
    }

    async fn apply_reconcile(
        &self,
        batch: ReconcileBatch<'_>,
    ) -> Result<ReconcileOutcome, StoreError> {
        // Not repeated: had the COMMIT gone through before the connection broke, the
        // staged ids would be gone, and a second attempt would tombstone every row.
        self.ensure(&[*batch.stream]).await?;
        once!(self, |s| super::reconcile::apply_reconcile(s, &batch))
    }

    async fn import_snapshot(
        &self,
        batch: SnapshotBatch<'_>,
        source: Box<dyn SnapshotSource>,
    ) -> Result<(PageOutcome, ReconcileOutcome), StoreError> {
        // Not retried on a lost connection: the source is a stream read once.
        self.ensure(&[*batch.stream]).await?;
        once!(self, |s| super::reconcile::import_snapshot(
            s, &batch, source
        ))
    }

    async fn purge_tombstones(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        self.ensure(&[*stream]).await?;
        retrying!(self, |s| super::reconcile::purge(
            s,
            connection_id,
            stream,
            before
        ))
    }

    async fn refresh_derived_all(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        at: Timestamp,
    ) -> Result<(u64, u64), StoreError> {
        self.ensure(&[*stream]).await?;
        retrying!(self, |s| refresh_derived_all(s, connection_id, stream, at))
    }

    async fn tombstone_parents(
        &self,
        connection_id: i64,
        parent: &StreamSpec,
        ids: &[String],
        child: Option<(&StreamSpec, &str)>,
        at: Timestamp,
    ) -> Result<(u64, u64), StoreError> {
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let mut specs = vec![*parent];
        specs.extend(child.map(|(c, _)| *c));
        self.ensure(&specs).await?;
        retrying!(self, |s| super::family::tombstone_parents(
            s,
            connection_id,
            parent,
            ids,
            child,
            at
        ))
    }

    async fn count_live(&self, connection_id: i64, stream: &StreamSpec) -> Result<u64, StoreError> {
        if !self.ensure(&[*stream]).await? {
            return Ok(0);
        }
        retrying!(self, |s| count_live(s, connection_id, stream))
    }

    async fn ensure_tables(&self, streams: &[StreamSpec]) -> Result<(), StoreError> {
        self.ensure(streams).await.map(|_| ())
    }

    async fn count_derived(&self, connection_id: i64, table: &str) -> Result<u64, StoreError> {
        if !self.has_table(table).await? {
            return Ok(0);
        }
        retrying!(self, |s| count_derived(s, connection_id, table))
    }

    async fn parent_markers(
        &self,
        connection_id: i64,
        parent_stream: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        retrying!(self, |s| super::family::parent_markers(
            s,
            connection_id,
            parent_stream,
            ids
        ))
    }

    async fn commit_family(&self, batch: FamilyBatch<'_>) -> Result<FamilyOutcome, StoreError> {
        self.ensure(&[*batch.parent, *batch.child]).await?;
        retrying!(self, |s| super::family::commit_family(s, &batch))
    }

    async fn export_derived_page(
        &self,
        connection_id: i64,
        derived: &DerivedSpec,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DerivedRow>, StoreError> {
        if !self.has_table(derived.table).await? {
            return Ok(Vec::new());
        }
        retrying!(self, |s| export_derived_page(
            s,
            connection_id,
            derived,
            after,
            limit
        ))
    }

    async fn export_page(
        &self,
        connection_id: i64,
        stream: &StreamSpec,
        after: Option<&str>,
        limit: u32,
        include_deleted: bool,
    ) -> Result<Vec<ExportRow>, StoreError> {
        if !self.ensure(&[*stream]).await? {
            return Ok(Vec::new());
        }
        let q = ExportQuery {
            connection_id,
            spec: stream,
            after,
            limit,
            include_deleted,
        };
        retrying!(self, |s| export_page(s, &q))
    }
}
