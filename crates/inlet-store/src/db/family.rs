//! Parent/child commits: parents, children, markers and stub removals in one transaction.

use super::meta::put_sync_state;
use super::records::{lock_connection, write_records};
use super::{Arg, Session, args, transaction};
use crate::family_sql as fsql;
use inlet_core::{FamilyBatch, FamilyOutcome, Record, StoreError, StreamSpec, StubRule, Value};
use std::collections::HashMap;

pub(crate) async fn parent_markers(
    s: &mut dyn Session,
    conn: i64,
    stream: &str,
    ids: &[String],
) -> Result<HashMap<String, String>, StoreError> {
    let rows = s
        .query(&fsql::markers_select(s.dialect()), args![conn, stream, ids])
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        out.insert(r.get(0)?, r.get(1)?);
    }
    Ok(out)
}

pub(crate) async fn commit_family(
    s: &mut dyn Session,
    b: &FamilyBatch<'_>,
) -> Result<FamilyOutcome, StoreError> {
    let conn = b.connection_id;
    transaction!(s, {
        lock_connection(s, conn).await?;
        let parents = write_records(s, b.parent, conn, &b.parents, true, b.at).await?;
        let children = write_records(s, b.child, conn, &b.children, true, b.at).await?;
        let stubs_removed = match &b.stubs {
            Some(rule) => remove_stubs(s, b.child, rule, conn, &b.children).await?,
            None => 0,
        };
        let children_deleted = match b.replace_children {
            Some(col) if !b.markers.is_empty() => {
                let parents: Vec<String> = b.markers.iter().map(|(id, _)| id.clone()).collect();
                let kept: Vec<String> = b.children.iter().map(|r| r.id.clone()).collect();
                let sql = fsql::replace_children(s.dialect(), b.child, col);
                s.execute(
                    &sql,
                    &[
                        Arg::Int(conn),
                        Arg::Time(b.at),
                        Arg::from(parents.as_slice()),
                        Arg::from(kept.as_slice()),
                    ],
                )
                .await?
            }
            _ => 0,
        };
        let sql = fsql::marker_upsert(s.dialect());
        for (id, marker) in &b.markers {
            s.execute(&sql, args![conn, b.parent.name, id, marker, b.at])
                .await?;
        }
        if let Some(state) = b.state {
            put_sync_state(s, conn, b.parent.name, state).await?;
        }
        Ok(FamilyOutcome {
            parents,
            children,
            stubs_removed,
            children_deleted,
        })
    })
}

async fn remove_stubs(
    s: &mut dyn Session,
    child: &StreamSpec,
    rule: &StubRule,
    conn: i64,
    children: &[Record],
) -> Result<u64, StoreError> {
    let parents = fsql::stub_parents(child, rule, children)?;
    if parents.is_empty() {
        return Ok(0);
    }
    let sql = fsql::stubs_select(s.dialect(), child, rule);
    let rows = s
        .query(&sql, &[Arg::Int(conn), Arg::from(parents.as_slice())])
        .await?;
    let mut stubs: Vec<(String, Vec<Value>)> = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.get(0)?;
        let vals = child
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                r.value(
                    i + 1,
                    c.ty,
                    &format!("{}.{} of {id:?}", child.table, c.name),
                )
            })
            .collect::<Result<_, _>>()?;
        stubs.push((id, vals));
    }
    let gone = fsql::replaced(child, rule, stubs, children);
    let sql = fsql::stub_delete(s.dialect(), child);
    for id in &gone {
        s.execute(&sql, args![conn, id]).await?;
    }
    Ok(gone.len() as u64)
}

/// Tombstone parents a provider reported gone, their children and their markers.
pub(crate) async fn tombstone_parents(
    s: &mut dyn Session,
    conn: i64,
    parent: &StreamSpec,
    ids: &[String],
    child: Option<(&StreamSpec, &str)>,
    at: inlet_core::Timestamp,
) -> Result<(u64, u64), StoreError> {
    transaction!(s, {
        lock_connection(s, conn).await?;
        let sql = fsql::tombstone_where_in(s.dialect(), parent.table, "id");
        let parents = s.execute(&sql, args![conn, at, ids]).await?;
        let children = match child {
            Some((spec, col)) => {
                let sql = fsql::tombstone_where_in(s.dialect(), spec.table, col);
                s.execute(&sql, args![conn, at, ids]).await?
            }
            None => 0,
        };
        s.execute(
            &fsql::markers_delete(s.dialect()),
            args![conn, parent.name, ids],
        )
        .await?;
        Ok((parents, children))
    })
}
