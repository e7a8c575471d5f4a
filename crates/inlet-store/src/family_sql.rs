//! SQL of parent/child commits (markers and placeholder rows), for both backends.

use crate::sql::{Dialect, q};
use inlet_core::{Record, StoreError, StreamSpec, StubRule, Value};

/// Markers of the listed parents: `(connection, stream, ids)`.
pub(crate) fn markers_select(d: Dialect) -> String {
    format!(
        "SELECT \"parent_id\", \"marker\" FROM \"parent_markers\" \
         WHERE \"connection_id\" = {} AND \"stream\" = {} AND \"parent_id\" {}",
        d.p(1),
        d.p(2),
        d.in_list(3)
    )
}

/// Upsert one marker: `(connection, stream, parent id, marker, at)`.
pub(crate) fn marker_upsert(d: Dialect) -> String {
    format!(
        "INSERT INTO \"parent_markers\" (\"connection_id\", \"stream\", \"parent_id\", \"marker\", \"updated_at\") \
         VALUES ({}, {}, {}, {}, {}) ON CONFLICT (\"connection_id\", \"stream\", \"parent_id\") \
         DO UPDATE SET \"marker\" = excluded.\"marker\", \"updated_at\" = excluded.\"updated_at\"",
        d.p(1),
        d.p(2),
        d.p(3),
        d.p(4),
        d.p(5)
    )
}

/// Live placeholder rows of the given parents: `(connection, parent ids)` → id, typed
/// columns.
pub(crate) fn stubs_select(d: Dialect, child: &StreamSpec, rule: &StubRule) -> String {
    let cols: Vec<String> = child.columns.iter().map(|c| q(c.name)).collect();
    format!(
        "SELECT \"id\", {} FROM {} WHERE \"connection_id\" = {} AND \"id\" LIKE 'stub-%' \
         AND \"deleted_at\" IS NULL AND {} {}",
        cols.join(", "),
        q(child.table),
        d.p(1),
        q(rule.parent_column),
        d.in_list(2)
    )
}

/// Delete one placeholder row: `(connection, id)`.
pub(crate) fn stub_delete(d: Dialect, child: &StreamSpec) -> String {
    format!(
        "DELETE FROM {} WHERE \"connection_id\" = {} AND \"id\" = {} AND \"id\" LIKE 'stub-%'",
        q(child.table),
        d.p(1),
        d.p(2)
    )
}

/// The parents (values of the rule's parent column) the real child rows belong to.
pub(crate) fn stub_parents(
    child: &StreamSpec,
    rule: &StubRule,
    children: &[Record],
) -> Result<Vec<String>, StoreError> {
    let i = child.column_index(rule.parent_column).ok_or_else(|| {
        StoreError::Db(format!(
            "stub rule names column {:?}, which {} does not have",
            rule.parent_column, child.table
        ))
    })?;
    let mut out: Vec<String> = children
        .iter()
        .filter_map(|r| r.values.get(i).and_then(Value::as_text).map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The stubs (id, values) that a real row in `children` replaces.
pub(crate) fn replaced(
    child: &StreamSpec,
    rule: &StubRule,
    stubs: Vec<(String, Vec<Value>)>,
    children: &[Record],
) -> Vec<String> {
    stubs
        .into_iter()
        .filter(|(_, vals)| children.iter().any(|r| rule.replaced_by(child, vals, r)))
        .map(|(id, _)| id)
        .collect()
}

/// Tombstone live children of the parents in list param 3 (by `parent_col`) that are not
/// in list param 4. Params: 1 connection, 2 at, 3 parent ids, 4 kept child ids.
pub(crate) fn replace_children(d: Dialect, child: &StreamSpec, parent_col: &str) -> String {
    format!(
        "UPDATE {} SET \"deleted_at\" = {p2}, \"updated_at\" = {p2} WHERE \"connection_id\" = {} \
         AND \"deleted_at\" IS NULL AND {} {} AND \"id\" NOT IN {}",
        q(child.table),
        d.p(1),
        q(parent_col),
        d.in_list(3),
        d.list(4),
        p2 = d.p(2),
    )
}

/// Tombstone the live rows of `table` whose `col` is in list param 3. Params: 1
/// connection, 2 at, 3 ids.
pub(crate) fn tombstone_where_in(d: Dialect, table: &str, col: &str) -> String {
    format!(
        "UPDATE {} SET \"deleted_at\" = {p2}, \"updated_at\" = {p2} WHERE \"connection_id\" = {} \
         AND \"deleted_at\" IS NULL AND {} {}",
        q(table),
        d.p(1),
        q(col),
        d.in_list(3),
        p2 = d.p(2),
    )
}

/// Forget the markers of some parents: `(connection, stream, ids)`.
pub(crate) fn markers_delete(d: Dialect) -> String {
    format!(
        "DELETE FROM \"parent_markers\" WHERE \"connection_id\" = {} AND \"stream\" = {} \
         AND \"parent_id\" {}",
        d.p(1),
        d.p(2),
        d.in_list(3)
    )
}
