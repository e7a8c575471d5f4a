//! Reconcile, snapshot import and purge on SQLite.

use super::meta::put_sync_state;
use super::records::{begin, insert, json_list, lookup, refresh_derived, update};
use super::values::get;
use crate::codec::{dedupe, plan};
use crate::error::sqlite as db_err;
use crate::reconcile_sql as rsql;
use crate::sql::{self, Dialect::Sqlite};
use inlet_core::{
    PageOutcome, ReconcileBatch, ReconcileOutcome, SnapshotBatch, SnapshotSource, StoreError,
    StreamSpec, SyncState, Timestamp,
};
use rusqlite::{Connection, Transaction, params};
use std::collections::BTreeSet;

pub(crate) fn stage_ids(c: &mut Connection, token: &str, ids: &[String]) -> Result<(), StoreError> {
    let list = json_list(ids.iter().map(String::as_str));
    let tx = begin(c)?;
    tx.prepare_cached(&rsql::stage(Sqlite))
        .map_err(db_err)?
        .execute(params![token, list])
        .map_err(db_err)?;
    tx.commit().map_err(db_err)
}

pub(crate) fn drop_staged(c: &mut Connection, token: &str) -> Result<(), StoreError> {
    c.prepare_cached(&rsql::unstage(Sqlite))
        .map_err(db_err)?
        .execute([token])
        .map_err(db_err)?;
    Ok(())
}

fn count_live(tx: &Transaction<'_>, conn: i64, spec: &StreamSpec) -> Result<u64, StoreError> {
    let mut st = tx
        .prepare_cached(&sql::count_live(Sqlite, spec))
        .map_err(db_err)?;
    let n: i64 = match spec.scope {
        Some(s) => st.query_row(params![conn, s.value], |r| r.get(0)),
        None => st.query_row([conn], |r| r.get(0)),
    }
    .map_err(db_err)?;
    Ok(n.max(0) as u64)
}

/// Run an UPDATE over (connection, at, list-or-token, scope); returns the rows changed and
/// the derived keys they returned.
fn update_rows(
    tx: &Transaction<'_>,
    sql: &str,
    spec: &StreamSpec,
    conn: i64,
    at: &str,
    third: &str,
    keys: &mut BTreeSet<String>,
) -> Result<u64, StoreError> {
    let mut st = tx.prepare_cached(sql).map_err(db_err)?;
    let mut p: Vec<&dyn rusqlite::ToSql> = vec![&conn, &at, &third];
    let scope = spec.scope.map(|s| s.value);
    if let Some(s) = &scope {
        p.push(s);
    }
    if !rsql::returns_keys(spec) {
        return Ok(st.execute(p.as_slice()).map_err(db_err)? as u64);
    }
    let mut rows = st.query(p.as_slice()).map_err(db_err)?;
    let mut n = 0;
    while let Some(r) = rows.next().map_err(db_err)? {
        n += 1;
        keys.extend(get::<Option<String>>(r, 0)?);
    }
    Ok(n)
}

pub(crate) struct OwnedReconcile {
    pub connection_id: i64,
    pub spec: StreamSpec,
    pub token: String,
    pub max_share: Option<f64>,
    pub state: SyncState,
    pub at: Timestamp,
}

impl From<ReconcileBatch<'_>> for OwnedReconcile {
    fn from(b: ReconcileBatch<'_>) -> Self {
        OwnedReconcile {
            connection_id: b.connection_id,
            spec: *b.stream,
            token: b.token.to_string(),
            max_share: b.max_share,
            state: b.state.clone(),
            at: b.at,
        }
    }
}

pub(crate) fn apply_reconcile(
    c: &mut Connection,
    b: &OwnedReconcile,
) -> Result<ReconcileOutcome, StoreError> {
    let spec = &b.spec;
    let at = b.at.to_string();
    let tx = begin(c)?;
    let mut out = ReconcileOutcome {
        live_before: count_live(&tx, b.connection_id, spec)?,
        ..ReconcileOutcome::default()
    };
    let mut keys = BTreeSet::new();
    let sql = rsql::tombstone_unstaged(Sqlite, spec);
    out.tombstoned = update_rows(&tx, &sql, spec, b.connection_id, &at, &b.token, &mut keys)?;
    if ReconcileOutcome::exceeds(out.live_before, out.tombstoned, b.max_share) {
        drop(tx); // rolls back
        drop_staged(c, &b.token)?;
        out.refused = true;
        return Ok(out);
    }
    let sql = rsql::revive_staged(Sqlite, spec);
    out.revived = update_rows(&tx, &sql, spec, b.connection_id, &at, &b.token, &mut keys)?;
    refresh_derived(&tx, spec, b.connection_id, &keys, b.at)?;
    put_sync_state(&tx, b.connection_id, spec.name, &b.state)?;
    tx.prepare_cached(&rsql::unstage(Sqlite))
        .map_err(db_err)?
        .execute([&b.token])
        .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(out)
}

pub(crate) struct OwnedImport {
    pub connection_id: i64,
    pub spec: StreamSpec,
    pub state: SyncState,
    pub at: Timestamp,
    pub max_share: Option<f64>,
}

impl From<SnapshotBatch<'_>> for OwnedImport {
    fn from(b: SnapshotBatch<'_>) -> Self {
        OwnedImport {
            connection_id: b.connection_id,
            spec: *b.stream,
            state: b.state.clone(),
            at: b.at,
            max_share: b.max_share,
        }
    }
}

/// Runs on the store's blocking thread; `rt` waits for each chunk of `source`.
pub(crate) fn import_snapshot(
    c: &mut Connection,
    b: &OwnedImport,
    mut source: Box<dyn SnapshotSource>,
    rt: &tokio::runtime::Handle,
) -> Result<(PageOutcome, ReconcileOutcome), StoreError> {
    let spec = &b.spec;
    let at = b.at.to_string();
    let token = crate::codec::import_token(b.connection_id);
    // Staged ids, upserts and tombstones share the transaction: any early return (a
    // failed chunk, the safety valve) rolls all of it back.
    let tx = begin(c)?;
    let mut rec = ReconcileOutcome {
        live_before: count_live(&tx, b.connection_id, spec)?,
        ..ReconcileOutcome::default()
    };
    let mut page = PageOutcome::default();
    let mut keys = BTreeSet::new();
    while let Some(chunk) = rt.block_on(source.next_chunk())? {
        let records = dedupe(spec, &chunk)?;
        tx.prepare_cached(&rsql::stage(Sqlite))
            .map_err(db_err)?
            .execute(params![
                token,
                json_list(records.iter().map(|r| r.id.as_str()))
            ])
            .map_err(db_err)?;
        let existing = lookup(&tx, spec, b.connection_id, &records)?;
        rec.revived += existing.values().filter(|e| e.deleted).count() as u64;
        let plan = plan(spec, records, &existing, spec.derived.is_some());
        insert(&tx, spec, b.connection_id, &plan.inserts, b.at)?;
        for (r, hash) in &plan.updates {
            update(&tx, spec, b.connection_id, r, hash, b.at)?;
        }
        keys.extend(plan.keys);
        page.inserted += plan.inserts.len() as u64;
        page.updated += plan.updates.len() as u64;
        page.unchanged += plan.unchanged;
    }
    let sql = rsql::tombstone_unstaged(Sqlite, spec);
    rec.tombstoned = update_rows(&tx, &sql, spec, b.connection_id, &at, &token, &mut keys)?;
    if ReconcileOutcome::exceeds(rec.live_before, rec.tombstoned, b.max_share) {
        rec.refused = true;
        return Ok((PageOutcome::default(), rec)); // the transaction rolls back
    }
    (page.derived_inserted, page.derived_updated) =
        refresh_derived(&tx, spec, b.connection_id, &keys, b.at)?;
    put_sync_state(&tx, b.connection_id, spec.name, &b.state)?;
    tx.prepare_cached(&rsql::unstage(Sqlite))
        .map_err(db_err)?
        .execute([&token])
        .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok((page, rec))
}

pub(crate) fn purge(
    c: &mut Connection,
    conn: i64,
    spec: &StreamSpec,
    before: Timestamp,
) -> Result<u64, StoreError> {
    let before = before.to_string();
    let mut st = c
        .prepare_cached(&rsql::purge(Sqlite, spec))
        .map_err(db_err)?;
    let mut p: Vec<&dyn rusqlite::ToSql> = vec![&conn, &before];
    let scope = spec.scope.map(|s| s.value);
    if let Some(s) = &scope {
        p.push(s);
    }
    Ok(st.execute(p.as_slice()).map_err(db_err)? as u64)
}

pub(crate) fn stream_validator(
    c: &mut Connection,
    conn: i64,
    stream: &str,
) -> Result<Option<String>, StoreError> {
    let mut st = c
        .prepare_cached(
            "SELECT \"validator\" FROM \"stream_validators\" WHERE \"connection_id\" = ?1 AND \"stream\" = ?2",
        )
        .map_err(db_err)?;
    let mut rows = st.query(params![conn, stream]).map_err(db_err)?;
    match rows.next().map_err(db_err)? {
        Some(r) => Ok(Some(get(r, 0)?)),
        None => Ok(None),
    }
}

pub(crate) fn put_stream_validator(
    c: &mut Connection,
    conn: i64,
    stream: &str,
    validator: Option<&str>,
) -> Result<(), StoreError> {
    match validator {
        Some(v) => c
            .prepare_cached(
                "INSERT INTO \"stream_validators\" (\"connection_id\", \"stream\", \"validator\") VALUES (?1, ?2, ?3) \
                 ON CONFLICT (\"connection_id\", \"stream\") DO UPDATE SET \"validator\" = \"excluded\".\"validator\"",
            )
            .map_err(db_err)?
            .execute(params![conn, stream, v]),
        None => c
            .prepare_cached(
                "DELETE FROM \"stream_validators\" WHERE \"connection_id\" = ?1 AND \"stream\" = ?2",
            )
            .map_err(db_err)?
            .execute(params![conn, stream]),
    }
    .map_err(db_err)?;
    Ok(())
}
