//! Reconcile (deletes found by a full id listing), snapshot import and purge: the diff
//! between what is stored and what was staged, behind the safety valve that refuses to
//! tombstone more than a stream's share of live rows.

use super::meta::put_sync_state;
use super::records::{count_live, lock_connection, lookup, refresh_derived, scope, write_plan};
use super::{Arg, Session, args};
use crate::codec::{dedupe, plan};
use crate::reconcile_sql as rsql;
use inlet_core::{
    PageOutcome, ReconcileBatch, ReconcileOutcome, SnapshotBatch, SnapshotSource, StoreError,
    StreamSpec, Timestamp,
};
use std::collections::BTreeSet;

pub(crate) async fn stage_ids(
    s: &mut dyn Session,
    token: &str,
    ids: &[String],
) -> Result<(), StoreError> {
    s.execute(&rsql::stage(s.dialect()), args![token, ids])
        .await?;
    Ok(())
}

pub(crate) async fn drop_staged(s: &mut dyn Session, token: &str) -> Result<(), StoreError> {
    s.execute(&rsql::unstage(s.dialect()), args![token]).await?;
    Ok(())
}

/// Run an UPDATE over (connection, at, token, scope); returns the rows changed and adds
/// the derived keys they returned to `keys`.
async fn update_rows(
    s: &mut dyn Session,
    sql: &str,
    spec: &StreamSpec,
    conn: i64,
    at: Timestamp,
    token: &str,
    keys: &mut BTreeSet<String>,
) -> Result<u64, StoreError> {
    let mut a = vec![Arg::Int(conn), Arg::Time(at), Arg::Text(token)];
    a.extend(scope(spec));
    if !rsql::returns_keys(spec) {
        return s.execute(sql, &a).await;
    }
    let rows = s.query(sql, &a).await?;
    for r in &rows {
        keys.extend(r.get::<Option<String>>(0)?);
    }
    Ok(rows.len() as u64)
}

pub(crate) async fn apply_reconcile(
    s: &mut dyn Session,
    b: &ReconcileBatch<'_>,
) -> Result<ReconcileOutcome, StoreError> {
    let (spec, conn, d) = (b.stream, b.connection_id, s.dialect());
    s.begin().await?;
    let result: Result<ReconcileOutcome, StoreError> = async {
        let mut out = ReconcileOutcome {
            live_before: count_live(s, conn, spec).await?,
            ..ReconcileOutcome::default()
        };
        let mut keys = BTreeSet::new();
        let sql = rsql::tombstone_unstaged(d, spec);
        out.tombstoned = update_rows(s, &sql, spec, conn, b.at, b.token, &mut keys).await?;
        if ReconcileOutcome::exceeds(out.live_before, out.tombstoned, b.max_share) {
            out.refused = true;
            return Ok(out);
        }
        let sql = rsql::revive_staged(d, spec);
        out.revived = update_rows(s, &sql, spec, conn, b.at, b.token, &mut keys).await?;
        refresh_derived(s, spec, conn, &keys, b.at).await?;
        put_sync_state(s, conn, spec.name, b.state).await?;
        s.execute(&rsql::unstage(d), args![b.token]).await?;
        Ok(out)
    }
    .await;
    match result {
        Ok(out) if !out.refused => {
            s.commit().await?;
            Ok(out)
        }
        Ok(refused) => {
            // The safety valve: nothing tombstoned, the staged ids dropped.
            s.rollback().await?;
            drop_staged(s, b.token).await?;
            Ok(refused)
        }
        Err(e) => {
            let _ = s.rollback().await;
            Err(e)
        }
    }
}

pub(crate) async fn import_snapshot(
    s: &mut dyn Session,
    b: &SnapshotBatch<'_>,
    mut source: Box<dyn SnapshotSource>,
) -> Result<(PageOutcome, ReconcileOutcome), StoreError> {
    let (spec, conn, d) = (b.stream, b.connection_id, s.dialect());
    let token = crate::codec::import_token(conn);
    // Staged ids, upserts and tombstones share the transaction: any early return (a
    // failed chunk, the safety valve) rolls all of it back.
    s.begin().await?;
    let result: Result<(PageOutcome, ReconcileOutcome), StoreError> = async {
        lock_connection(s, conn).await?;
        let mut rec = ReconcileOutcome {
            live_before: count_live(s, conn, spec).await?,
            ..ReconcileOutcome::default()
        };
        let mut page = PageOutcome::default();
        let mut keys = BTreeSet::new();
        while let Some(chunk) = source.next_chunk().await? {
            let records = dedupe(spec, &chunk)?;
            let ids = Arg::List(records.iter().map(|r| r.id.as_str()).collect());
            s.execute(&rsql::stage(d), &[Arg::Text(&token), ids])
                .await?;
            let existing = lookup(s, spec, conn, &records).await?;
            rec.revived += existing.values().filter(|e| e.deleted).count() as u64;
            let plan = plan(spec, records, &existing, spec.derived.is_some());
            write_plan(s, spec, conn, &plan, b.at).await?;
            keys.extend(plan.keys);
            page.inserted += plan.inserts.len() as u64;
            page.updated += plan.updates.len() as u64;
            page.unchanged += plan.unchanged;
        }
        let sql = rsql::tombstone_unstaged(d, spec);
        rec.tombstoned = update_rows(s, &sql, spec, conn, b.at, &token, &mut keys).await?;
        if ReconcileOutcome::exceeds(rec.live_before, rec.tombstoned, b.max_share) {
            rec.refused = true;
            return Ok((PageOutcome::default(), rec));
        }
        (page.derived_inserted, page.derived_updated) =
            refresh_derived(s, spec, conn, &keys, b.at).await?;
        put_sync_state(s, conn, spec.name, b.state).await?;
        s.execute(&rsql::unstage(d), args![token.as_str()]).await?;
        Ok((page, rec))
    }
    .await;
    match result {
        Ok((page, rec)) if !rec.refused => {
            s.commit().await?;
            Ok((page, rec))
        }
        other => {
            let _ = s.rollback().await;
            other
        }
    }
}

pub(crate) async fn purge(
    s: &mut dyn Session,
    conn: i64,
    spec: &StreamSpec,
    before: Timestamp,
) -> Result<u64, StoreError> {
    let mut a = vec![Arg::Int(conn), Arg::Time(before)];
    a.extend(scope(spec));
    s.execute(&rsql::purge(s.dialect(), spec), &a).await
}
