//! Record tables on SQLite: page commits, tombstones, counts and exports.

use super::meta::put_sync_state;
use super::values::{Bind, get, opt_ts, read_value, ts};
use crate::codec::{self, Existing, dedupe, plan};
use crate::error::sqlite as db_err;
use crate::sql::{self, Dialect::Sqlite, q};
use inlet_core::{
    DerivedRow, DerivedSpec, ExportRow, PageBatch, PageOutcome, Record, StoreError, StreamSpec,
    SyncState, Timestamp, TombstoneBatch,
};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use std::collections::{BTreeSet, HashMap, HashSet};

/// A page, owned so it can move to the blocking pool.
pub(crate) struct OwnedPage {
    connection_id: i64,
    spec: StreamSpec,
    records: Vec<Record>,
    state: SyncState,
    at: Timestamp,
    refresh_derived: bool,
}

impl From<PageBatch<'_>> for OwnedPage {
    fn from(b: PageBatch<'_>) -> Self {
        OwnedPage {
            connection_id: b.connection_id,
            spec: *b.stream,
            records: b.records,
            state: b.state.clone(),
            at: b.at,
            refresh_derived: b.refresh_derived,
        }
    }
}

/// Tombstones, owned.
pub(crate) struct OwnedTombstones {
    connection_id: i64,
    spec: StreamSpec,
    seen: String,
    state: SyncState,
    at: Timestamp,
}

impl From<TombstoneBatch<'_>> for OwnedTombstones {
    fn from(b: TombstoneBatch<'_>) -> Self {
        OwnedTombstones {
            connection_id: b.connection_id,
            spec: *b.stream,
            seen: json_list(b.seen.iter().map(String::as_str)),
            state: b.state.clone(),
            at: b.at,
        }
    }
}

/// A JSON array of strings, for `json_each`.
pub(crate) fn json_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::Value::Array(items.into_iter().map(serde_json::Value::from).collect()).to_string()
}

pub(crate) fn begin(c: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)
}

pub(crate) fn commit_page(c: &mut Connection, p: &OwnedPage) -> Result<PageOutcome, StoreError> {
    let tx = begin(c)?;
    let out = write_records(
        &tx,
        &p.spec,
        p.connection_id,
        &p.records,
        p.refresh_derived,
        p.at,
    )?;
    put_sync_state(&tx, p.connection_id, p.spec.name, &p.state)?;
    tx.commit().map_err(db_err)?;
    Ok(out)
}

/// Upsert `records` of `spec` inside `tx` (the body of a page commit).
pub(crate) fn write_records(
    tx: &Transaction<'_>,
    spec: &StreamSpec,
    conn: i64,
    records: &[Record],
    refresh: bool,
    at: Timestamp,
) -> Result<PageOutcome, StoreError> {
    let records = dedupe(spec, records)?;
    let existing = lookup(tx, spec, conn, &records)?;
    let plan = plan(spec, records, &existing, refresh);
    insert(tx, spec, conn, &plan.inserts, at)?;
    for (r, hash) in &plan.updates {
        update(tx, spec, conn, r, hash, at)?;
    }
    let (derived_inserted, derived_updated) = if refresh {
        refresh_derived(tx, spec, conn, &plan.keys, at)?
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

pub(super) fn lookup(
    tx: &Transaction<'_>,
    spec: &StreamSpec,
    conn: i64,
    records: &[&Record],
) -> Result<HashMap<String, Existing>, StoreError> {
    let ids = json_list(records.iter().map(|r| r.id.as_str()));
    let mut st = tx
        .prepare_cached(&sql::lookup(Sqlite, spec))
        .map_err(db_err)?;
    let mut rows = st.query(params![conn, ids]).map_err(db_err)?;
    let mut out = HashMap::with_capacity(records.len());
    while let Some(r) = rows.next().map_err(db_err)? {
        let e = Existing {
            hash: get(r, 1)?,
            deleted: get(r, 2)?,
            key: get(r, 3)?,
        };
        out.insert(get(r, 0)?, e);
    }
    Ok(out)
}

/// Insert new rows with multi-row statements of 64, 32, ... 1 rows (few distinct
/// statements, all cached).
pub(super) fn insert(
    tx: &Transaction<'_>,
    spec: &StreamSpec,
    conn: i64,
    rows: &[(&Record, [u8; 16])],
    at: Timestamp,
) -> Result<(), StoreError> {
    let at = at.to_string();
    let mut rest = rows;
    while !rest.is_empty() {
        let n = [64, 32, 16, 8, 4, 2, 1]
            .into_iter()
            .find(|n| *n <= rest.len())
            .unwrap_or(1);
        let (chunk, tail) = rest.split_at(n);
        let mut st = tx
            .prepare_cached(&sql::sqlite_insert(spec, n))
            .map_err(db_err)?;
        let mut i = 1;
        for (r, hash) in chunk {
            let mut bind = |v: &dyn rusqlite::ToSql| {
                st.raw_bind_parameter(i, v).map_err(db_err)?;
                i += 1;
                Ok::<(), StoreError>(())
            };
            bind(&conn)?;
            bind(&r.id)?;
            for v in &r.values {
                bind(&Bind(v))?;
            }
            bind(&r.raw)?;
            bind(&hash.as_slice())?;
            bind(&at)?;
            bind(&at)?;
        }
        st.raw_execute().map_err(db_err)?;
        rest = tail;
    }
    Ok(())
}

pub(super) fn update(
    tx: &Transaction<'_>,
    spec: &StreamSpec,
    conn: i64,
    r: &Record,
    hash: &[u8; 16],
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut st = tx
        .prepare_cached(&sql::sqlite_update(spec))
        .map_err(db_err)?;
    st.raw_bind_parameter(1, conn).map_err(db_err)?;
    st.raw_bind_parameter(2, &r.id).map_err(db_err)?;
    let n = r.values.len();
    for (i, v) in r.values.iter().enumerate() {
        st.raw_bind_parameter(i + 3, Bind(v)).map_err(db_err)?;
    }
    st.raw_bind_parameter(n + 3, &r.raw).map_err(db_err)?;
    st.raw_bind_parameter(n + 4, hash.as_slice())
        .map_err(db_err)?;
    st.raw_bind_parameter(n + 5, at.to_string())
        .map_err(db_err)?;
    st.raw_execute().map_err(db_err)?;
    Ok(())
}

/// Recompute the derived rows of `keys`; returns (inserted, updated).
pub(super) fn refresh_derived(
    tx: &Transaction<'_>,
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
    let list = json_list(keys.iter().map(String::as_str));
    let mut existing = HashSet::new();
    let mut st = tx
        .prepare_cached(&sql::derived_existing(der))
        .map_err(db_err)?;
    let mut rows = st.query(params![conn, list]).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        existing.insert(get::<String>(r, 0)?);
    }
    let (mut ins, mut upd) = (0, 0);
    let mut st = tx
        .prepare_cached(&sql::derived_upsert(Sqlite, spec.table, der))
        .map_err(db_err)?;
    let mut rows = st
        .query(params![conn, list, at.to_string()])
        .map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        if existing.contains(&get::<String>(r, 0)?) {
            upd += 1
        } else {
            ins += 1
        }
    }
    let mut st = tx
        .prepare_cached(&sql::derived_delete(Sqlite, spec.table, der))
        .map_err(db_err)?;
    st.execute(params![conn, list]).map_err(db_err)?;
    Ok((ins, upd))
}

/// Keys per refresh statement when recomputing a whole derived table.
const KEYS_PER_REFRESH: i64 = 5000;

pub(crate) fn refresh_derived_all(
    c: &mut Connection,
    conn: i64,
    spec: &StreamSpec,
    at: Timestamp,
) -> Result<(u64, u64), StoreError> {
    let Some(der) = spec.derived else {
        return Ok((0, 0));
    };
    let tx = begin(c)?;
    let (mut ins, mut upd) = (0, 0);
    let mut last = String::new();
    loop {
        let keys: BTreeSet<String> = {
            let mut st = tx
                .prepare_cached(&sql::derived_keys_after(Sqlite, spec.table, der))
                .map_err(db_err)?;
            let mut rows = st
                .query(params![conn, last, KEYS_PER_REFRESH])
                .map_err(db_err)?;
            let mut keys = BTreeSet::new();
            while let Some(r) = rows.next().map_err(db_err)? {
                keys.insert(get::<String>(r, 0)?);
            }
            keys
        };
        let Some(max) = keys.last() else { break };
        last = max.clone();
        let (i, u) = refresh_derived(&tx, spec, conn, &keys, at)?;
        (ins, upd) = (ins + i, upd + u);
    }
    tx.execute(
        &sql::derived_orphans(Sqlite, spec.table, der),
        params![conn],
    )
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok((ins, upd))
}

pub(crate) fn tombstone_missing(
    c: &mut Connection,
    t: &OwnedTombstones,
) -> Result<u64, StoreError> {
    let spec = &t.spec;
    let tx = begin(c)?;
    let mut keys = BTreeSet::new();
    let mut count = 0u64;
    {
        let mut st = tx
            .prepare_cached(&sql::tombstone(Sqlite, spec))
            .map_err(db_err)?;
        let at = t.at.to_string();
        let mut p: Vec<&dyn rusqlite::ToSql> = vec![&t.connection_id, &at, &t.seen];
        let scope = spec.scope.map(|s| s.value);
        if let Some(s) = &scope {
            p.push(s);
        }
        let mut rows = st.query(p.as_slice()).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            count += 1;
            keys.extend(get::<Option<String>>(r, 0)?);
        }
    }
    refresh_derived(&tx, spec, t.connection_id, &keys, t.at)?;
    put_sync_state(&tx, t.connection_id, spec.name, &t.state)?;
    tx.commit().map_err(db_err)?;
    Ok(count)
}

pub(crate) fn count_live(
    c: &mut Connection,
    conn: i64,
    spec: &StreamSpec,
) -> Result<u64, StoreError> {
    let mut st = c
        .prepare_cached(&sql::count_live(Sqlite, spec))
        .map_err(db_err)?;
    let n: i64 = match spec.scope {
        Some(s) => st.query_row(params![conn, s.value], |r| r.get(0)),
        None => st.query_row([conn], |r| r.get(0)),
    }
    .map_err(db_err)?;
    Ok(n.max(0) as u64)
}

pub(crate) fn count_derived(c: &mut Connection, conn: i64, table: &str) -> Result<u64, StoreError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE \"connection_id\" = ?1",
        q(table)
    );
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let n: i64 = st.query_row([conn], |r| r.get(0)).map_err(db_err)?;
    Ok(n.max(0) as u64)
}

/// One keyset page of an export.
pub(crate) struct ExportQuery {
    pub connection_id: i64,
    pub spec: StreamSpec,
    pub after: Option<String>,
    pub limit: u32,
    pub include_deleted: bool,
}

pub(crate) fn export_page(
    c: &mut Connection,
    x: &ExportQuery,
) -> Result<Vec<ExportRow>, StoreError> {
    let spec = &x.spec;
    let sql = sql::export(Sqlite, spec, x.include_deleted, x.after.is_some());
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let mut p: Vec<&dyn rusqlite::ToSql> = vec![&x.connection_id, &x.limit];
    let scope = spec.scope.map(|s| s.value);
    if let Some(s) = &scope {
        p.push(s);
    }
    if let Some(a) = &x.after {
        p.push(a);
    }
    let mut rows = st.query(p.as_slice()).map_err(db_err)?;
    let mut out = vec![];
    while let Some(r) = rows.next().map_err(db_err)? {
        out.push(export_row(r, spec)?);
    }
    Ok(out)
}

fn export_row(r: &rusqlite::Row<'_>, spec: &StreamSpec) -> Result<ExportRow, StoreError> {
    let id: String = get(r, 0)?;
    let n = spec.columns.len();
    let mut values = Vec::with_capacity(n);
    for (i, c) in spec.columns.iter().enumerate() {
        values.push(read_value(
            r,
            i + 1,
            c.ty,
            &format!("{}.{} of {id:?}", spec.table, c.name),
        )?);
    }
    let hash: Vec<u8> = get(r, n + 2)?;
    Ok(ExportRow {
        content_hash: codec::content_hash(&hash, &id)?,
        raw: get(r, n + 1)?,
        first_seen_at: ts(r, n + 3, "first_seen_at")?,
        updated_at: ts(r, n + 4, "updated_at")?,
        deleted_at: opt_ts(r, n + 5, "deleted_at")?,
        values,
        id,
    })
}

/// One keyset page of a derived table.
pub(crate) fn export_derived_page(
    c: &mut Connection,
    connection_id: i64,
    der: &DerivedSpec,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<DerivedRow>, StoreError> {
    let sql = sql::export_derived(Sqlite, der, after.is_some());
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let mut p: Vec<&dyn rusqlite::ToSql> = vec![&connection_id, &limit];
    if let Some(a) = &after {
        p.push(a);
    }
    let mut rows = st.query(p.as_slice()).map_err(db_err)?;
    let mut out = vec![];
    while let Some(r) = rows.next().map_err(db_err)? {
        let id: String = get(r, 0)?;
        let mut values = Vec::with_capacity(der.columns.len());
        for (i, c) in der.columns.iter().enumerate() {
            values.push(read_value(
                r,
                i + 1,
                c.column.ty,
                &format!("{}.{} of {id:?}", der.table, c.column.name),
            )?);
        }
        let updated_at = ts(r, der.columns.len() + 1, "updated_at")?;
        out.push(DerivedRow {
            id,
            values,
            updated_at,
        });
    }
    Ok(out)
}

/// Create a stream's record table if it is missing, then check its columns.
pub(crate) fn ensure_table(c: &mut Connection, spec: &StreamSpec) -> Result<(), StoreError> {
    let create = sql::create_table(Sqlite, spec).map_err(StoreError::Schema)?;
    c.execute_batch(&create).map_err(db_err)?;
    let mut st = c.prepare(sql::table_info(Sqlite)).map_err(db_err)?;
    let found = st
        .query_map([spec.table], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    sql::check_table(Sqlite, spec, &found).map_err(StoreError::Schema)
}
