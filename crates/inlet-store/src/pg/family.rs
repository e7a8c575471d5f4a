//! Parent/child commits on PostgreSQL: parents, children, markers and stub removals in
//! one transaction.

use super::meta::{get, put_sync_state};
use super::records::{lock_connection, read_value, write_records};
use super::{Cache, Inner};
use crate::codec::to_system;
use crate::error::pg as db_err;
use crate::family_sql as fsql;
use crate::sql::Dialect::Postgres;
use inlet_core::{FamilyBatch, FamilyOutcome, Record, StoreError, StreamSpec, StubRule, Value};
use std::collections::HashMap;
use tokio_postgres::Transaction;

pub(super) async fn parent_markers(
    g: &mut Inner,
    conn: i64,
    stream: &str,
    ids: &[String],
) -> Result<HashMap<String, String>, StoreError> {
    let st = g
        .cache
        .get(&g.client, &fsql::markers_select(Postgres))
        .await?;
    let rows = g
        .client
        .query(&st, &[&conn, &stream, &ids])
        .await
        .map_err(db_err)?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        out.insert(get(r, 0)?, get(r, 1)?);
    }
    Ok(out)
}

pub(super) async fn commit_family(
    g: &mut Inner,
    b: &FamilyBatch<'_>,
) -> Result<FamilyOutcome, StoreError> {
    let Inner { client, cache } = g;
    let conn = b.connection_id;
    let tx = client.transaction().await.map_err(db_err)?;
    lock_connection(&tx, cache, conn).await?;
    let parents = write_records(&tx, cache, b.parent, conn, &b.parents, true, b.at).await?;
    let children = write_records(&tx, cache, b.child, conn, &b.children, true, b.at).await?;
    let stubs_removed = match &b.stubs {
        Some(rule) => remove_stubs(&tx, cache, b.child, rule, conn, &b.children).await?,
        None => 0,
    };
    if !b.markers.is_empty() {
        let st = cache.get(&tx, &fsql::marker_upsert(Postgres)).await?;
        let at = to_system(b.at);
        for (id, marker) in &b.markers {
            tx.execute(&st, &[&conn, &b.parent.name, id, marker, &at])
                .await
                .map_err(db_err)?;
        }
    }
    if let Some(state) = b.state {
        put_sync_state(&tx, cache, conn, b.parent.name, state).await?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(FamilyOutcome {
        parents,
        children,
        stubs_removed,
    })
}

async fn remove_stubs(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    child: &StreamSpec,
    rule: &StubRule,
    conn: i64,
    children: &[Record],
) -> Result<u64, StoreError> {
    let parents = fsql::stub_parents(child, rule, children)?;
    if parents.is_empty() {
        return Ok(0);
    }
    let st = cache
        .get(tx, &fsql::stubs_select(Postgres, child, rule))
        .await?;
    let rows = tx.query(&st, &[&conn, &parents]).await.map_err(db_err)?;
    let mut stubs: Vec<(String, Vec<Value>)> = Vec::with_capacity(rows.len());
    for r in &rows {
        let vals = child
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| read_value(r, i + 1, c.ty))
            .collect::<Result<_, _>>()?;
        stubs.push((get(r, 0)?, vals));
    }
    let gone = fsql::replaced(child, rule, stubs, children);
    let st = cache.get(tx, &fsql::stub_delete(Postgres, child)).await?;
    for id in &gone {
        tx.execute(&st, &[&conn, id]).await.map_err(db_err)?;
    }
    Ok(gone.len() as u64)
}
