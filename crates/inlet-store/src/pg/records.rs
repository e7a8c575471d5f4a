//! Record tables on PostgreSQL: one statement per page for inserts, one for updates,
//! one for the derived refresh.

use super::meta::{get, opt_ts, put_sync_state, ts};
use super::{Cache, Inner};
use crate::codec::{self, Existing, dedupe, from_system, plan, to_system};
use crate::error::pg as db_err;
use crate::sql::{self, Dialect::Postgres, q};
use inlet_core::{
    ColType, DerivedRow, DerivedSpec, ExportRow, PageBatch, PageOutcome, Record, StoreError,
    StreamSpec, TombstoneBatch, Value,
};
use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

pub(super) type Param<'a> = &'a (dyn ToSql + Sync);

/// The values of one typed column over the rows of a page, as a PostgreSQL array.
enum ColArray<'a> {
    Text(Vec<Option<&'a str>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Time(Vec<Option<SystemTime>>),
}

impl ColArray<'_> {
    fn param(&self) -> Param<'_> {
        match self {
            ColArray::Text(v) => v,
            ColArray::Int(v) => v,
            ColArray::Float(v) => v,
            ColArray::Bool(v) => v,
            ColArray::Time(v) => v,
        }
    }
}

/// Column `i` of each row (values were validated by `dedupe`).
fn column<'a>(ty: ColType, i: usize, rows: &[(&'a Record, [u8; 16])]) -> ColArray<'a> {
    let vals = rows.iter().map(move |(r, _)| &r.values[i]);
    match ty {
        ColType::Text => ColArray::Text(vals.map(|v| v.as_text()).collect()),
        ColType::Int => ColArray::Int(
            vals.map(|v| {
                if let Value::Int(x) = v {
                    Some(*x)
                } else {
                    None
                }
            })
            .collect(),
        ),
        ColType::Float => ColArray::Float(
            vals.map(|v| match v {
                Value::Float(f) => Some(*f),
                Value::Int(i) => Some(*i as f64),
                _ => None,
            })
            .collect(),
        ),
        ColType::Bool => ColArray::Bool(
            vals.map(|v| {
                if let Value::Bool(b) = v {
                    Some(*b)
                } else {
                    None
                }
            })
            .collect(),
        ),
        ColType::Time => ColArray::Time(
            vals.map(|v| {
                if let Value::Time(t) = v {
                    Some(to_system(*t))
                } else {
                    None
                }
            })
            .collect(),
        ),
    }
}

/// Insert (or rewrite) `rows` with one statement of column arrays.
pub(super) async fn write_rows(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    sql: &str,
    spec: &StreamSpec,
    conn: i64,
    rows: &[(&Record, [u8; 16])],
    at: &SystemTime,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let st = cache.get(tx, sql).await?;
    let ids: Vec<&str> = rows.iter().map(|(r, _)| r.id.as_str()).collect();
    let cols: Vec<ColArray<'_>> = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| column(c.ty, i, rows))
        .collect();
    let raws: Vec<&str> = rows.iter().map(|(r, _)| r.raw.as_str()).collect();
    let hashes: Vec<&[u8]> = rows.iter().map(|(_, h)| h.as_slice()).collect();
    let mut p: Vec<Param<'_>> = vec![&conn, &ids];
    p.extend(cols.iter().map(ColArray::param));
    p.extend([&raws as Param<'_>, &hashes, at]);
    tx.execute(&st, &p).await.map_err(db_err)?;
    Ok(())
}

pub(super) async fn commit_page(
    g: &mut Inner,
    b: &PageBatch<'_>,
) -> Result<PageOutcome, StoreError> {
    let Inner { client, cache } = g;
    let tx = client.transaction().await.map_err(db_err)?;
    lock_connection(&tx, cache, b.connection_id).await?;
    let out = write_records(
        &tx,
        cache,
        b.stream,
        b.connection_id,
        &b.records,
        b.refresh_derived,
        b.at,
    )
    .await?;
    put_sync_state(&tx, cache, b.connection_id, b.stream.name, b.state).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(out)
}

/// Upsert `records` of `spec` inside `tx` (the body of a page commit).
pub(super) async fn write_records(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    spec: &StreamSpec,
    conn: i64,
    records: &[Record],
    refresh: bool,
    at: inlet_core::Timestamp,
) -> Result<PageOutcome, StoreError> {
    let records = dedupe(spec, records)?;
    let existing = lookup(tx, cache, spec, conn, &records).await?;
    let plan = plan(spec, records, &existing, refresh);
    let at = to_system(at);
    write_rows(
        tx,
        cache,
        &sql::pg_insert(spec),
        spec,
        conn,
        &plan.inserts,
        &at,
    )
    .await?;
    write_rows(
        tx,
        cache,
        &sql::pg_update(spec),
        spec,
        conn,
        &plan.updates,
        &at,
    )
    .await?;
    let (derived_inserted, derived_updated) = if refresh {
        refresh_derived(tx, cache, spec, conn, &plan.keys, &at).await?
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

/// The record tables carry no foreign key (one trigger per row was too dear): check the
/// connection once per page and hold it against deletion until commit, as the key would.
pub(super) async fn lock_connection(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    conn: i64,
) -> Result<(), StoreError> {
    let st = cache
        .get(
            tx,
            "SELECT 1 FROM \"connections\" WHERE \"id\" = $1 FOR KEY SHARE",
        )
        .await?;
    if tx.query_opt(&st, &[&conn]).await.map_err(db_err)?.is_none() {
        return Err(StoreError::NotFound(format!(
            "the referenced connection (id {conn})"
        )));
    }
    Ok(())
}

pub(super) async fn lookup(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    spec: &StreamSpec,
    conn: i64,
    records: &[&Record],
) -> Result<HashMap<String, Existing>, StoreError> {
    let st = cache.get(tx, &sql::lookup(Postgres, spec)).await?;
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let rows = tx.query(&st, &[&conn, &ids]).await.map_err(db_err)?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        let e = Existing {
            hash: get(r, 1)?,
            deleted: get(r, 2)?,
            key: get(r, 3)?,
        };
        out.insert(get(r, 0)?, e);
    }
    Ok(out)
}

/// Recompute the derived rows of `keys` in one statement; returns (inserted, updated).
pub(super) async fn refresh_derived(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    spec: &StreamSpec,
    conn: i64,
    keys: &BTreeSet<String>,
    at: &SystemTime,
) -> Result<(u64, u64), StoreError> {
    let Some(der) = spec.derived else {
        return Ok((0, 0));
    };
    if keys.is_empty() {
        return Ok((0, 0));
    }
    let st = cache
        .get(tx, &sql::pg_derived_refresh(spec.table, der))
        .await?;
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let row = tx
        .query_one(&st, &[&conn, &keys, at])
        .await
        .map_err(db_err)?;
    let (ins, upd): (i64, i64) = (get(&row, 0)?, get(&row, 1)?);
    Ok((ins.max(0) as u64, upd.max(0) as u64))
}

/// Keys per refresh statement when recomputing a whole derived table.
const KEYS_PER_REFRESH: i64 = 5000;

pub(super) async fn refresh_derived_all(
    g: &mut Inner,
    conn: i64,
    spec: &StreamSpec,
    at: inlet_core::Timestamp,
) -> Result<(u64, u64), StoreError> {
    let Some(der) = spec.derived else {
        return Ok((0, 0));
    };
    let Inner { client, cache } = g;
    let tx = client.transaction().await.map_err(db_err)?;
    let at = to_system(at);
    let (mut ins, mut upd) = (0, 0);
    let mut last = String::new();
    loop {
        let st = cache
            .get(&tx, &sql::derived_keys_after(Postgres, spec.table, der))
            .await?;
        let rows = tx
            .query(&st, &[&conn, &last, &KEYS_PER_REFRESH])
            .await
            .map_err(db_err)?;
        let mut keys = BTreeSet::new();
        for r in &rows {
            keys.insert(get::<String>(r, 0)?);
        }
        let Some(max) = keys.last() else { break };
        last = max.clone();
        let (i, u) = refresh_derived(&tx, cache, spec, conn, &keys, &at).await?;
        (ins, upd) = (ins + i, upd + u);
    }
    tx.execute(&sql::derived_orphans(Postgres, spec.table, der), &[&conn])
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok((ins, upd))
}

pub(super) async fn tombstone_missing(
    g: &mut Inner,
    b: &TombstoneBatch<'_>,
) -> Result<u64, StoreError> {
    let spec = b.stream;
    let Inner { client, cache } = g;
    let tx = client.transaction().await.map_err(db_err)?;
    let st = cache.get(&tx, &sql::tombstone(Postgres, spec)).await?;
    let at = to_system(b.at);
    let seen: Vec<&str> = b.seen.iter().map(String::as_str).collect();
    let scope = spec.scope.map(|s| s.value);
    let mut p: Vec<Param<'_>> = vec![&b.connection_id, &at, &seen];
    if let Some(s) = &scope {
        p.push(s);
    }
    let rows = tx.query(&st, &p).await.map_err(db_err)?;
    let mut keys = BTreeSet::new();
    for r in &rows {
        keys.extend(get::<Option<String>>(r, 0)?);
    }
    refresh_derived(&tx, cache, spec, b.connection_id, &keys, &at).await?;
    put_sync_state(&tx, cache, b.connection_id, spec.name, b.state).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(rows.len() as u64)
}

async fn count(g: &mut Inner, sql: &str, p: &[Param<'_>]) -> Result<u64, StoreError> {
    let st = g.cache.get(&g.client, sql).await?;
    let row = g.client.query_one(&st, p).await.map_err(db_err)?;
    Ok(get::<i64>(&row, 0)?.max(0) as u64)
}

pub(super) async fn count_live(
    g: &mut Inner,
    conn: i64,
    spec: &StreamSpec,
) -> Result<u64, StoreError> {
    let sql = sql::count_live(Postgres, spec);
    match spec.scope {
        Some(s) => count(g, &sql, &[&conn, &s.value]).await,
        None => count(g, &sql, &[&conn]).await,
    }
}

pub(super) async fn count_derived(
    g: &mut Inner,
    conn: i64,
    table: &str,
) -> Result<u64, StoreError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE \"connection_id\" = $1",
        q(table)
    );
    count(g, &sql, &[&conn]).await
}

/// One keyset page of an export.
pub(super) struct ExportQuery<'a> {
    pub connection_id: i64,
    pub spec: &'a StreamSpec,
    pub after: Option<&'a str>,
    pub limit: u32,
    pub include_deleted: bool,
}

pub(super) async fn export_page(
    g: &mut Inner,
    x: &ExportQuery<'_>,
) -> Result<Vec<ExportRow>, StoreError> {
    let sql = sql::export(Postgres, x.spec, x.include_deleted, x.after.is_some());
    let st = g.cache.get(&g.client, &sql).await?;
    let limit = i64::from(x.limit);
    let scope = x.spec.scope.map(|s| s.value);
    let mut p: Vec<Param<'_>> = vec![&x.connection_id, &limit];
    if let Some(s) = &scope {
        p.push(s);
    }
    if let Some(a) = &x.after {
        p.push(a);
    }
    let rows = g.client.query(&st, &p).await.map_err(db_err)?;
    rows.iter().map(|r| export_row(r, x.spec)).collect()
}

pub(super) fn read_value(r: &Row, i: usize, ty: ColType) -> Result<Value, StoreError> {
    let v = match ty {
        ColType::Text => get::<Option<String>>(r, i)?.map(Value::Text),
        ColType::Int => get::<Option<i64>>(r, i)?.map(Value::Int),
        ColType::Float => get::<Option<f64>>(r, i)?.map(Value::Float),
        ColType::Bool => get::<Option<bool>>(r, i)?.map(Value::Bool),
        ColType::Time => get::<Option<SystemTime>>(r, i)?.map(|t| Value::Time(from_system(t))),
    };
    Ok(v.unwrap_or(Value::Null))
}

fn export_row(r: &Row, spec: &StreamSpec) -> Result<ExportRow, StoreError> {
    let id: String = get(r, 0)?;
    let n = spec.columns.len();
    let values = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| read_value(r, i + 1, c.ty))
        .collect::<Result<_, _>>()?;
    let hash: Vec<u8> = get(r, n + 2)?;
    Ok(ExportRow {
        content_hash: codec::content_hash(&hash, &id)?,
        raw: get(r, n + 1)?,
        first_seen_at: ts(r, n + 3)?,
        updated_at: ts(r, n + 4)?,
        deleted_at: opt_ts(r, n + 5)?,
        values,
        id,
    })
}

/// One keyset page of a derived table.
pub(super) async fn export_derived_page(
    g: &mut Inner,
    connection_id: i64,
    der: &DerivedSpec,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<DerivedRow>, StoreError> {
    let sql = sql::export_derived(Postgres, der, after.is_some());
    let st = g.cache.get(&g.client, &sql).await?;
    let limit = i64::from(limit);
    let mut p: Vec<Param<'_>> = vec![&connection_id, &limit];
    if let Some(a) = &after {
        p.push(a);
    }
    let rows = g.client.query(&st, &p).await.map_err(db_err)?;
    rows.iter()
        .map(|r| {
            let values = der
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| read_value(r, i + 1, c.column.ty))
                .collect::<Result<_, _>>()?;
            Ok(DerivedRow {
                id: get(r, 0)?,
                values,
                updated_at: ts(r, der.columns.len() + 1)?,
            })
        })
        .collect()
}

/// Create a stream's record table if it is missing, then check its columns. Creation is
/// serialised by a transaction-level advisory lock: two processes creating the same table
/// at once would otherwise collide in the catalog.
pub(super) async fn ensure_table(g: &mut Inner, spec: &StreamSpec) -> Result<(), StoreError> {
    let create = sql::create_table(Postgres, spec).map_err(StoreError::Schema)?;
    let tx = g.client.transaction().await.map_err(db_err)?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock(hashtext('inlet.ensure_table')); {create}"
    ))
    .await
    .map_err(db_err)?;
    let rows = tx
        .query(sql::table_info(Postgres), &[&spec.table])
        .await
        .map_err(db_err)?;
    let found = rows
        .iter()
        .map(|r| Ok((get::<String>(r, 0)?, get::<String>(r, 1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    sql::check_table(Postgres, spec, &found).map_err(StoreError::Schema)?;
    tx.commit().await.map_err(db_err)
}
