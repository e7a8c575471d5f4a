//! SQL text for reconcile, import and purge, for both backends (see [`crate::sql`]).

use crate::sql::{Dialect, q, scope_filter};
use inlet_core::StreamSpec;

/// The derived-table key of a row as text, or NULL.
fn key_expr(spec: &StreamSpec) -> String {
    match spec.derived {
        Some(d) => format!("CAST({} AS TEXT)", q(d.key)),
        None => "NULL".into(),
    }
}

/// Whether the statement's returned keys are needed (a derived table to refresh).
pub(crate) fn returns_keys(spec: &StreamSpec) -> bool {
    spec.derived.is_some()
}

fn returning(spec: &StreamSpec) -> String {
    if returns_keys(spec) {
        format!(" RETURNING {}", key_expr(spec))
    } else {
        String::new()
    }
}

/// Add ids to the staging area. Params: 1 token, 2 id list.
pub(crate) fn stage(d: Dialect) -> String {
    match d {
        Dialect::Sqlite => "INSERT OR IGNORE INTO \"reconcile_staging\" (\"token\", \"id\") \
                            SELECT ?1, \"value\" FROM json_each(?2)"
            .into(),
        Dialect::Postgres => "INSERT INTO \"reconcile_staging\" (\"token\", \"id\") \
                              SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING"
            .into(),
    }
}

/// Drop a token's staged ids. Params: 1 token.
pub(crate) fn unstage(d: Dialect) -> String {
    format!(
        "DELETE FROM \"reconcile_staging\" WHERE \"token\" = {}",
        d.p(1)
    )
}

/// `[NOT] EXISTS` a staged id for the row. Param `n`: token.
fn staged(d: Dialect, spec: &StreamSpec, n: usize, negate: bool) -> String {
    format!(
        "{}EXISTS (SELECT 1 FROM \"reconcile_staging\" AS \"s\" WHERE \"s\".\"token\" = {} \
         AND \"s\".\"id\" = {}.\"id\")",
        if negate { "NOT " } else { "" },
        d.p(n),
        q(spec.table)
    )
}

/// Tombstone live rows (within scope) not staged under the token; returns group keys
/// when the stream has a derived table. Params: 1 connection, 2 at, 3 token, 4 scope.
pub(crate) fn tombstone_unstaged(d: Dialect, spec: &StreamSpec) -> String {
    format!(
        "UPDATE {t} SET \"deleted_at\" = {p2}, \"updated_at\" = {p2} WHERE \"connection_id\" = {p1} \
         AND \"deleted_at\" IS NULL{scope} AND {cond}{ret}",
        t = q(spec.table),
        p1 = d.p(1),
        p2 = d.p(2),
        scope = scope_filter(d, spec, 4),
        cond = staged(d, spec, 3, true),
        ret = returning(spec),
    )
}

/// Revive tombstoned rows (within scope) staged under the token; returns group keys when
/// the stream has a derived table. Params: 1 connection, 2 at, 3 token, 4 scope.
pub(crate) fn revive_staged(d: Dialect, spec: &StreamSpec) -> String {
    format!(
        "UPDATE {t} SET \"deleted_at\" = NULL, \"updated_at\" = {p2} WHERE \"connection_id\" = {p1} \
         AND \"deleted_at\" IS NOT NULL{scope} AND {cond}{ret}",
        t = q(spec.table),
        p1 = d.p(1),
        p2 = d.p(2),
        scope = scope_filter(d, spec, 4),
        cond = staged(d, spec, 3, false),
        ret = returning(spec),
    )
}

/// Delete rows (within scope) tombstoned before a time. Params: 1 connection, 2 before,
/// 3 scope.
pub(crate) fn purge(d: Dialect, spec: &StreamSpec) -> String {
    format!(
        "DELETE FROM {} WHERE \"connection_id\" = {} AND \"deleted_at\" IS NOT NULL \
         AND \"deleted_at\" < {}{}",
        q(spec.table),
        d.p(1),
        d.p(2),
        scope_filter(d, spec, 3)
    )
}
