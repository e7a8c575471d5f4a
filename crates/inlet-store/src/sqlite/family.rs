//! Parent/child commits on SQLite: parents, children, markers and stub removals in one
//! transaction.

use super::meta::put_sync_state;
use super::records::{begin, json_list, write_records};
use super::values::{get, read_value};
use crate::error::sqlite as db_err;
use crate::family_sql as fsql;
use crate::sql::Dialect::Sqlite;
use inlet_core::{
    FamilyBatch, FamilyOutcome, Record, StoreError, StreamSpec, StubRule, SyncState, Timestamp,
    Value,
};
use rusqlite::{Connection, Transaction, params};
use std::collections::HashMap;

/// A family batch, owned so it can move to the blocking pool.
pub(crate) struct OwnedFamily {
    connection_id: i64,
    parent: StreamSpec,
    parents: Vec<Record>,
    child: StreamSpec,
    children: Vec<Record>,
    markers: Vec<(String, String)>,
    stubs: Option<StubRule>,
    state: Option<SyncState>,
    at: Timestamp,
}

impl From<FamilyBatch<'_>> for OwnedFamily {
    fn from(b: FamilyBatch<'_>) -> Self {
        OwnedFamily {
            connection_id: b.connection_id,
            parent: *b.parent,
            parents: b.parents,
            child: *b.child,
            children: b.children,
            markers: b.markers,
            stubs: b.stubs,
            state: b.state.cloned(),
            at: b.at,
        }
    }
}

pub(crate) fn parent_markers(
    c: &mut Connection,
    conn: i64,
    stream: &str,
    ids: &[String],
) -> Result<HashMap<String, String>, StoreError> {
    let list = json_list(ids.iter().map(String::as_str));
    let mut st = c
        .prepare_cached(&fsql::markers_select(Sqlite))
        .map_err(db_err)?;
    let mut rows = st.query(params![conn, stream, list]).map_err(db_err)?;
    let mut out = HashMap::with_capacity(ids.len());
    while let Some(r) = rows.next().map_err(db_err)? {
        out.insert(get(r, 0)?, get(r, 1)?);
    }
    Ok(out)
}

pub(crate) fn commit_family(
    c: &mut Connection,
    f: &OwnedFamily,
) -> Result<FamilyOutcome, StoreError> {
    let tx = begin(c)?;
    let conn = f.connection_id;
    let parents = write_records(&tx, &f.parent, conn, &f.parents, true, f.at)?;
    let children = write_records(&tx, &f.child, conn, &f.children, true, f.at)?;
    let stubs_removed = match &f.stubs {
        Some(rule) => remove_stubs(&tx, &f.child, rule, conn, &f.children)?,
        None => 0,
    };
    {
        let mut st = tx
            .prepare_cached(&fsql::marker_upsert(Sqlite))
            .map_err(db_err)?;
        let at = f.at.to_string();
        for (id, marker) in &f.markers {
            st.execute(params![conn, f.parent.name, id, marker, at])
                .map_err(db_err)?;
        }
    }
    if let Some(state) = &f.state {
        put_sync_state(&tx, conn, f.parent.name, state)?;
    }
    tx.commit().map_err(db_err)?;
    Ok(FamilyOutcome {
        parents,
        children,
        stubs_removed,
    })
}

fn remove_stubs(
    tx: &Transaction<'_>,
    child: &StreamSpec,
    rule: &StubRule,
    conn: i64,
    children: &[Record],
) -> Result<u64, StoreError> {
    let parents = fsql::stub_parents(child, rule, children)?;
    if parents.is_empty() {
        return Ok(0);
    }
    let list = json_list(parents.iter().map(String::as_str));
    let mut stubs: Vec<(String, Vec<Value>)> = Vec::new();
    {
        let mut st = tx
            .prepare_cached(&fsql::stubs_select(Sqlite, child, rule))
            .map_err(db_err)?;
        let mut rows = st.query(params![conn, list]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let id: String = get(r, 0)?;
            let mut vals = Vec::with_capacity(child.columns.len());
            for (i, col) in child.columns.iter().enumerate() {
                let what = format!("{}.{} of {id:?}", child.table, col.name);
                vals.push(read_value(r, i + 1, col.ty, &what)?);
            }
            stubs.push((id, vals));
        }
    }
    let gone = fsql::replaced(child, rule, stubs, children);
    let mut st = tx
        .prepare_cached(&fsql::stub_delete(Sqlite, child))
        .map_err(db_err)?;
    for id in &gone {
        st.execute(params![conn, id]).map_err(db_err)?;
    }
    Ok(gone.len() as u64)
}
