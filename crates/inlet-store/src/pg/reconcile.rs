//! Reconcile, snapshot import and purge on PostgreSQL.

use super::meta::{get, put_sync_state};
use super::records::{Param, lock_connection, lookup, refresh_derived, write_rows};
use super::{Cache, Inner};
use crate::codec::{dedupe, plan, to_system};
use crate::error::pg as db_err;
use crate::reconcile_sql as rsql;
use crate::sql::{self, Dialect::Postgres};
use inlet_core::{
    PageOutcome, ReconcileBatch, ReconcileOutcome, SnapshotBatch, SnapshotSource, StoreError,
    StreamSpec, Timestamp,
};
use std::collections::BTreeSet;
use std::time::SystemTime;
use tokio_postgres::Transaction;

pub(super) async fn stage_ids(
    g: &mut Inner,
    token: &str,
    ids: &[String],
) -> Result<(), StoreError> {
    let Inner { client, cache } = g;
    let st = cache.get(&*client, &rsql::stage(Postgres)).await?;
    client.execute(&st, &[&token, &ids]).await.map_err(db_err)?;
    Ok(())
}

pub(super) async fn drop_staged(g: &mut Inner, token: &str) -> Result<(), StoreError> {
    let Inner { client, cache } = g;
    let st = cache.get(&*client, &rsql::unstage(Postgres)).await?;
    client.execute(&st, &[&token]).await.map_err(db_err)?;
    Ok(())
}

async fn count_live(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    conn: i64,
    spec: &StreamSpec,
) -> Result<u64, StoreError> {
    let st = cache.get(tx, &sql::count_live(Postgres, spec)).await?;
    let row = match spec.scope {
        Some(s) => tx.query_one(&st, &[&conn, &s.value]).await,
        None => tx.query_one(&st, &[&conn]).await,
    }
    .map_err(db_err)?;
    let n: i64 = get(&row, 0)?;
    Ok(n.max(0) as u64)
}

/// Run an UPDATE over (connection, at, third, scope); returns the rows changed and the
/// derived keys they returned.
#[allow(clippy::too_many_arguments)]
async fn update_rows(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    sql: &str,
    spec: &StreamSpec,
    conn: i64,
    at: &SystemTime,
    third: Param<'_>,
    keys: &mut BTreeSet<String>,
) -> Result<u64, StoreError> {
    let st = cache.get(tx, sql).await?;
    let scope = spec.scope.map(|s| s.value);
    let mut p: Vec<Param<'_>> = vec![&conn, at, third];
    if let Some(s) = &scope {
        p.push(s);
    }
    if !rsql::returns_keys(spec) {
        return tx.execute(&st, &p).await.map_err(db_err);
    }
    let rows = tx.query(&st, &p).await.map_err(db_err)?;
    for r in &rows {
        keys.extend(get::<Option<String>>(r, 0)?);
    }
    Ok(rows.len() as u64)
}

pub(super) async fn apply_reconcile(
    g: &mut Inner,
    b: &ReconcileBatch<'_>,
) -> Result<ReconcileOutcome, StoreError> {
    let spec = b.stream;
    let at = to_system(b.at);
    let refused = {
        let Inner { client, cache } = &mut *g;
        let tx = client.transaction().await.map_err(db_err)?;
        let mut out = ReconcileOutcome {
            live_before: count_live(&tx, cache, b.connection_id, spec).await?,
            ..ReconcileOutcome::default()
        };
        let mut keys = BTreeSet::new();
        let token = b.token;
        let sql = rsql::tombstone_unstaged(Postgres, spec);
        out.tombstoned = update_rows(
            &tx,
            cache,
            &sql,
            spec,
            b.connection_id,
            &at,
            &token,
            &mut keys,
        )
        .await?;
        if ReconcileOutcome::exceeds(out.live_before, out.tombstoned, b.max_share) {
            tx.rollback().await.map_err(db_err)?;
            out.refused = true;
            out
        } else {
            let sql = rsql::revive_staged(Postgres, spec);
            out.revived = update_rows(
                &tx,
                cache,
                &sql,
                spec,
                b.connection_id,
                &at,
                &token,
                &mut keys,
            )
            .await?;
            refresh_derived(&tx, cache, spec, b.connection_id, &keys, &at).await?;
            put_sync_state(&tx, cache, b.connection_id, spec.name, b.state).await?;
            let st = cache.get(&tx, &rsql::unstage(Postgres)).await?;
            tx.execute(&st, &[&token]).await.map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            return Ok(out);
        }
    };
    drop_staged(g, b.token).await?;
    Ok(refused)
}

pub(super) async fn import_snapshot(
    g: &mut Inner,
    b: &SnapshotBatch<'_>,
    mut source: Box<dyn SnapshotSource>,
) -> Result<(PageOutcome, ReconcileOutcome), StoreError> {
    let spec = b.stream;
    let at = to_system(b.at);
    let token = crate::codec::import_token(b.connection_id);
    let Inner { client, cache } = g;
    // Staged ids, upserts and tombstones share the transaction: any early return (a
    // failed chunk, the safety valve) rolls all of it back.
    let tx = client.transaction().await.map_err(db_err)?;
    lock_connection(&tx, cache, b.connection_id).await?;
    let mut rec = ReconcileOutcome {
        live_before: count_live(&tx, cache, b.connection_id, spec).await?,
        ..ReconcileOutcome::default()
    };
    let mut page = PageOutcome::default();
    let mut keys = BTreeSet::new();
    while let Some(chunk) = source.next_chunk().await? {
        let records = dedupe(spec, &chunk)?;
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let st = cache.get(&tx, &rsql::stage(Postgres)).await?;
        tx.execute(&st, &[&token, &ids]).await.map_err(db_err)?;
        let existing = lookup(&tx, cache, spec, b.connection_id, &records).await?;
        rec.revived += existing.values().filter(|e| e.deleted).count() as u64;
        let plan = plan(spec, records, &existing, spec.derived.is_some());
        write_rows(
            &tx,
            cache,
            &sql::pg_insert(spec),
            spec,
            b.connection_id,
            &plan.inserts,
            &at,
        )
        .await?;
        write_rows(
            &tx,
            cache,
            &sql::pg_update(spec),
            spec,
            b.connection_id,
            &plan.updates,
            &at,
        )
        .await?;
        keys.extend(plan.keys);
        page.inserted += plan.inserts.len() as u64;
        page.updated += plan.updates.len() as u64;
        page.unchanged += plan.unchanged;
    }
    let sql = rsql::tombstone_unstaged(Postgres, spec);
    rec.tombstoned = update_rows(
        &tx,
        cache,
        &sql,
        spec,
        b.connection_id,
        &at,
        &token,
        &mut keys,
    )
    .await?;
    if ReconcileOutcome::exceeds(rec.live_before, rec.tombstoned, b.max_share) {
        tx.rollback().await.map_err(db_err)?;
        rec.refused = true;
        return Ok((PageOutcome::default(), rec));
    }
    (page.derived_inserted, page.derived_updated) =
        refresh_derived(&tx, cache, spec, b.connection_id, &keys, &at).await?;
    put_sync_state(&tx, cache, b.connection_id, spec.name, b.state).await?;
    let st = cache.get(&tx, &rsql::unstage(Postgres)).await?;
    tx.execute(&st, &[&token]).await.map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok((page, rec))
}

pub(super) async fn purge(
    g: &mut Inner,
    conn: i64,
    spec: &StreamSpec,
    before: Timestamp,
) -> Result<u64, StoreError> {
    let Inner { client, cache } = g;
    let st = cache.get(&*client, &rsql::purge(Postgres, spec)).await?;
    let before = to_system(before);
    let scope = spec.scope.map(|s| s.value);
    let mut p: Vec<Param<'_>> = vec![&conn, &before];
    if let Some(s) = &scope {
        p.push(s);
    }
    client.execute(&st, &p).await.map_err(db_err)
}

pub(super) async fn stream_validator(
    g: &mut Inner,
    conn: i64,
    stream: &str,
) -> Result<Option<String>, StoreError> {
    let Inner { client, cache } = g;
    let st = cache
        .get(
            &*client,
            "SELECT \"validator\" FROM \"stream_validators\" WHERE \"connection_id\" = $1 AND \"stream\" = $2",
        )
        .await?;
    match client
        .query_opt(&st, &[&conn, &stream])
        .await
        .map_err(db_err)?
    {
        Some(r) => Ok(Some(get(&r, 0)?)),
        None => Ok(None),
    }
}

pub(super) async fn put_stream_validator(
    g: &mut Inner,
    conn: i64,
    stream: &str,
    validator: Option<&str>,
) -> Result<(), StoreError> {
    let Inner { client, cache } = g;
    match validator {
        Some(v) => {
            let st = cache
                .get(
                    &*client,
                    "INSERT INTO \"stream_validators\" (\"connection_id\", \"stream\", \"validator\") VALUES ($1, $2, $3) \
                     ON CONFLICT (\"connection_id\", \"stream\") DO UPDATE SET \"validator\" = \"excluded\".\"validator\"",
                )
                .await?;
            client.execute(&st, &[&conn, &stream, &v]).await
        }
        None => {
            let st = cache
                .get(
                    &*client,
                    "DELETE FROM \"stream_validators\" WHERE \"connection_id\" = $1 AND \"stream\" = $2",
                )
                .await?;
            client.execute(&st, &[&conn, &stream]).await
        }
    }
    .map_err(db_err)?;
    Ok(())
}
