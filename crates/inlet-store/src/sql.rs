//! SQL text shared by both backends, generated from a [`StreamSpec`]. Every identifier
//! is double-quoted with [`q`].

use inlet_core::{Agg, ColType, DerivedSpec, StreamSpec};

/// The SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Placeholder `n` (1-based).
    pub fn p(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// A subquery over the text list bound at placeholder `n` (SQLite: a JSON array).
    pub fn list(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("(SELECT \"value\" FROM json_each(?{n}))"),
            Dialect::Postgres => format!("(SELECT unnest(${n}::text[]))"),
        }
    }

    /// A membership test against the text list bound at placeholder `n`, written so the
    /// planner probes an index once per element (PostgreSQL plans `IN (SELECT unnest(..))`
    /// as a semi-join over every row of the connection when statistics are young).
    pub fn in_list(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("IN (SELECT \"value\" FROM json_each(?{n}))"),
            Dialect::Postgres => format!("= ANY(${n}::text[])"),
        }
    }

    /// The expression that reads the `raw` column as text.
    fn raw(self) -> &'static str {
        match self {
            Dialect::Sqlite => "\"raw\"",
            Dialect::Postgres => "\"raw\"::text",
        }
    }
}

/// A double-quoted SQL identifier.
pub(crate) fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The PostgreSQL array type of a column type.
pub(crate) fn pg_array_type(ty: ColType) -> &'static str {
    match ty {
        ColType::Text => "text[]",
        ColType::Int => "int8[]",
        ColType::Float => "float8[]",
        ColType::Bool => "bool[]",
        ColType::Time => "timestamptz[]",
    }
}

/// The quoted typed columns of a stream, comma-separated, each prefixed.
fn typed(spec: &StreamSpec, prefix: &str) -> Vec<String> {
    spec.columns
        .iter()
        .map(|c| format!("{prefix}{}", q(c.name)))
        .collect()
}

/// The key column of a derived table, as text (or NULL when there is none).
fn key_expr(spec: &StreamSpec) -> String {
    match spec.derived {
        Some(d) => format!("CAST({} AS TEXT)", q(d.key)),
        None => "NULL".into(),
    }
}

/// `AND "scope" = $n` when the stream is scoped (`IN ($n, 'shared')` when rows may
/// belong to every stream of the table).
pub(crate) fn scope_filter(d: Dialect, spec: &StreamSpec, n: usize) -> String {
    spec.scope.map_or(String::new(), |s| match s.shared {
        None => format!(" AND {} = {}", q(s.column), d.p(n)),
        Some(v) => format!(
            " AND {} IN ({}, '{}')",
            q(s.column),
            d.p(n),
            v.replace('\'', "''")
        ),
    })
}

/// Existing rows of a page: `id, content_hash, deleted, group key`.
/// Params: 1 connection, 2 id list.
pub(crate) fn lookup(d: Dialect, spec: &StreamSpec) -> String {
    if d == Dialect::Postgres {
        // A LATERAL probe of the primary key per id (`LIMIT 1` keeps PostgreSQL from
        // flattening it into a join): a plain join lets the planner pick a hash join over
        // the whole table once it is large, which made every chunk's lookup a table scan.
        return format!(
            "SELECT \"t\".\"id\", \"t\".\"content_hash\", \"t\".\"deleted_at\" IS NOT NULL, {} \
             FROM unnest($2::text[]) AS \"k\"(\"kid\") CROSS JOIN LATERAL (SELECT * FROM {} AS \"x\" \
             WHERE \"x\".\"connection_id\" = $1 AND \"x\".\"id\" = \"k\".\"kid\" LIMIT 1) AS \"t\"",
            key_expr(spec).replace("CAST(\"", "CAST(\"t\".\""),
            q(spec.table)
        );
    }
    format!(
        "SELECT \"id\", \"content_hash\", \"deleted_at\" IS NOT NULL, {} FROM {} \
         WHERE \"connection_id\" = {} AND \"id\" {}",
        key_expr(spec),
        q(spec.table),
        d.p(1),
        d.in_list(2)
    )
}

/// Every column of a record table, in order, for INSERT.
fn insert_columns(spec: &StreamSpec) -> String {
    let mut cols = vec![q("connection_id"), q("id")];
    cols.extend(typed(spec, ""));
    for c in [
        "raw",
        "content_hash",
        "first_seen_at",
        "updated_at",
        "deleted_at",
    ] {
        cols.push(q(c));
    }
    cols.join(", ")
}

/// The conflict clause of an insert of rows classified as new: another writer (a
/// concurrent sync of the same connection, in another process or without a lease) may
/// have inserted the same id between the classification and the insert. The write stays
/// idempotent: the row takes this content when it differs (or was tombstoned) and is
/// left alone when it is the same; `first_seen_at` keeps the first writer's time.
fn insert_conflict(spec: &StreamSpec) -> String {
    let t = q(spec.table);
    let mut sets: Vec<String> = spec
        .columns
        .iter()
        .map(|c| format!("{0} = \"excluded\".{0}", q(c.name)))
        .collect();
    for c in ["raw", "content_hash", "updated_at"] {
        sets.push(format!("{0} = \"excluded\".{0}", q(c)));
    }
    sets.push("\"deleted_at\" = NULL".into());
    format!(
        " ON CONFLICT (\"connection_id\", \"id\") DO UPDATE SET {} \
         WHERE {t}.\"content_hash\" <> \"excluded\".\"content_hash\" OR {t}.\"deleted_at\" IS NOT NULL",
        sets.join(", ")
    )
}

/// SQLite: insert `rows` new rows. Per row the params are connection, id, typed columns,
/// raw, content_hash, at (first_seen_at and updated_at).
pub(crate) fn sqlite_insert(spec: &StreamSpec, rows: usize) -> String {
    let per_row = spec.columns.len() + 6;
    let one = format!("({}, NULL)", vec!["?"; per_row].join(", "));
    let values = vec![one.as_str(); rows].join(", ");
    format!(
        "INSERT INTO {} ({}) VALUES {values}{}",
        q(spec.table),
        insert_columns(spec),
        insert_conflict(spec)
    )
}

/// SQLite: rewrite one changed row. Params: 1 connection, 2 id, 3.. typed columns, then
/// raw, content_hash, at.
pub(crate) fn sqlite_update(spec: &StreamSpec) -> String {
    let n = spec.columns.len();
    let mut sets: Vec<String> = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} = ?{}", q(c.name), i + 3))
        .collect();
    sets.push(format!("\"raw\" = ?{}", n + 3));
    sets.push(format!("\"content_hash\" = ?{}", n + 4));
    sets.push(format!("\"updated_at\" = ?{}", n + 5));
    sets.push("\"deleted_at\" = NULL".into());
    format!(
        "UPDATE {} SET {} WHERE \"connection_id\" = ?1 AND \"id\" = ?2",
        q(spec.table),
        sets.join(", ")
    )
}

/// The `UNNEST(...) AS u(...)` source of a PostgreSQL bulk write. Params: 2 ids,
/// 3.. typed column arrays, then raw and content_hash arrays.
fn pg_unnest(spec: &StreamSpec) -> String {
    let n = spec.columns.len();
    let mut arrays = vec!["$2::text[]".to_string()];
    arrays.extend(
        spec.columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 3, pg_array_type(c.ty))),
    );
    arrays.push(format!("${}::text[]", n + 3));
    arrays.push(format!("${}::bytea[]", n + 4));
    let mut names = vec![q("id")];
    names.extend(typed(spec, ""));
    names.push(q("raw"));
    names.push(q("content_hash"));
    format!(
        "UNNEST({}) AS \"u\" ({})",
        arrays.join(", "),
        names.join(", ")
    )
}

/// PostgreSQL: insert a page's new rows in one statement. Params: 1 connection,
/// 2.. arrays (see `pg_unnest`), last: at.
pub(crate) fn pg_insert(spec: &StreamSpec) -> String {
    let at = format!("${}", spec.columns.len() + 5);
    format!(
        "INSERT INTO {} ({}) SELECT $1, \"u\".\"id\", {}, \"u\".\"raw\"::jsonb, \"u\".\"content_hash\", \
         {at}, {at}, NULL FROM {}{}",
        q(spec.table),
        insert_columns(spec),
        typed(spec, "\"u\".").join(", "),
        pg_unnest(spec),
        insert_conflict(spec)
    )
}

/// PostgreSQL: rewrite a page's changed rows in one statement (same params as insert).
pub(crate) fn pg_update(spec: &StreamSpec) -> String {
    let at = format!("${}", spec.columns.len() + 5);
    let mut sets: Vec<String> = spec
        .columns
        .iter()
        .map(|c| format!("{0} = \"u\".{0}", q(c.name)))
        .collect();
    sets.push("\"raw\" = \"u\".\"raw\"::jsonb".into());
    sets.push("\"content_hash\" = \"u\".\"content_hash\"".into());
    sets.push(format!("\"updated_at\" = {at}"));
    sets.push("\"deleted_at\" = NULL".into());
    format!(
        "UPDATE {} AS \"t\" SET {} FROM {} WHERE \"t\".\"connection_id\" = $1 AND \"t\".\"id\" = \"u\".\"id\"",
        q(spec.table),
        sets.join(", "),
        pg_unnest(spec)
    )
}

/// The aggregate expression of one derived column over source rows `s`.
fn agg_expr(d: Dialect, table: &str, key: &str, key_ref: &str, agg: Agg) -> String {
    let pick = |col: &str, by: &str, dir: &str| {
        format!(
            "(SELECT \"x\".{} FROM {} AS \"x\" WHERE \"x\".\"connection_id\" = {} AND \"x\".{key} = {key_ref} \
             AND \"x\".\"deleted_at\" IS NULL ORDER BY \"x\".{} {dir} NULLS LAST, \"x\".\"id\" {dir} LIMIT 1)",
            q(col),
            q(table),
            d.p(1),
            q(by)
        )
    };
    match agg {
        Agg::Count => "COUNT(*)".into(),
        Agg::CountTrue(c) => format!("SUM(CASE WHEN \"s\".{} THEN 1 ELSE 0 END)", q(c)),
        Agg::Min(c) => format!("MIN(\"s\".{})", q(c)),
        Agg::Max(c) => format!("MAX(\"s\".{})", q(c)),
        Agg::FirstBy { col, by } => pick(col, by, "ASC"),
        Agg::LastBy { col, by } => pick(col, by, "DESC"),
    }
}

/// The derived columns, and the SET and changed-only WHERE clauses of their upsert.
fn upsert_clauses(der: &DerivedSpec) -> (Vec<String>, Vec<String>, Vec<String>) {
    let cols: Vec<String> = der.columns.iter().map(|c| q(c.column.name)).collect();
    let sets = cols
        .iter()
        .map(|c| format!("{c} = \"excluded\".{c}"))
        .collect();
    let changed = cols
        .iter()
        .map(|c| format!("{}.{c} IS DISTINCT FROM \"excluded\".{c}", q(der.table)))
        .collect();
    (cols, sets, changed)
}

/// Upsert the derived rows of the keys in list param 2 from the live source rows;
/// rows whose values did not change are not rewritten. Params: 1 connection,
/// 2 key list, 3 at. Returns the written ids (PostgreSQL: and whether inserted).
pub(crate) fn derived_upsert(d: Dialect, source: &str, der: &DerivedSpec) -> String {
    let key = q(der.key);
    let key_ref = format!("\"s\".{key}");
    let (cols, sets, changed) = upsert_clauses(der);
    let aggs: Vec<String> = der
        .columns
        .iter()
        .map(|c| agg_expr(d, source, &key, &key_ref, c.agg))
        .collect();
    let returning = match d {
        Dialect::Sqlite => "\"id\"",
        Dialect::Postgres => "\"id\", (xmax = 0) AS \"ins\"",
    };
    format!(
        "INSERT INTO {table} (\"connection_id\", \"id\", {cols}, \"updated_at\") \
         SELECT {p1}, CAST(\"s\".{key} AS TEXT), {aggs}, {p3} FROM {src} AS \"s\" \
         WHERE \"s\".\"connection_id\" = {p1} AND \"s\".\"deleted_at\" IS NULL AND \"s\".{key} {list} \
         GROUP BY \"s\".{key} \
         ON CONFLICT (\"connection_id\", \"id\") DO UPDATE SET {sets}, \"updated_at\" = \"excluded\".\"updated_at\" \
         WHERE {changed} RETURNING {returning}",
        table = q(der.table),
        cols = cols.join(", "),
        aggs = aggs.join(", "),
        src = q(source),
        p1 = d.p(1),
        p3 = d.p(3),
        list = d.in_list(2),
        sets = sets.join(", "),
        changed = changed.join(" OR "),
    )
}

/// Delete the derived rows of the keys in list param 2 that have no live source row.
/// Params: 1 connection, 2 key list.
pub(crate) fn derived_delete(d: Dialect, source: &str, der: &DerivedSpec) -> String {
    format!(
        "DELETE FROM {t} WHERE \"connection_id\" = {p1} AND \"id\" {list} AND NOT EXISTS \
         (SELECT 1 FROM {src} AS \"s\" WHERE \"s\".\"connection_id\" = {p1} AND \"s\".{key} = {t}.\"id\" \
         AND \"s\".\"deleted_at\" IS NULL)",
        t = q(der.table),
        p1 = d.p(1),
        list = d.in_list(2),
        src = q(source),
        key = q(der.key),
    )
}

/// SQLite: which of the keys in list param 2 have a derived row. Params: 1 connection.
pub(crate) fn derived_existing(der: &DerivedSpec) -> String {
    format!(
        "SELECT \"id\" FROM {} WHERE \"connection_id\" = ?1 AND \"id\" {}",
        q(der.table),
        Dialect::Sqlite.in_list(2)
    )
}

/// PostgreSQL: the whole derived refresh in one statement returning (inserted, updated).
/// Params: 1 connection, 2 key list, 3 at.
///
/// Each key's aggregates are computed in a LATERAL subquery whose conditions name both
/// index columns, so PostgreSQL probes the covering index once per key even while the
/// table's statistics are young (a large first backfill). With `IN`/`ANY` filters it
/// planned a scan of every row of the connection per page.
pub(crate) fn pg_derived_refresh(source: &str, der: &DerivedSpec) -> String {
    let key = q(der.key);
    let src = q(source);
    let (cols, sets, changed) = upsert_clauses(der);
    let aggs: Vec<String> = der
        .columns
        .iter()
        .zip(&cols)
        .map(|(c, name)| {
            format!(
                "{} AS {name}",
                agg_expr(Dialect::Postgres, source, &key, "\"k\".\"key\"", c.agg)
            )
        })
        .collect();
    format!(
        "WITH \"agg\" AS (SELECT \"k\".\"key\", \"a\".* FROM unnest($2::text[]) AS \"k\"(\"key\") \
         CROSS JOIN LATERAL (SELECT COUNT(*) AS \"__n\", {aggs} FROM {src} AS \"s\" \
         WHERE \"s\".\"connection_id\" = $1 AND \"s\".{key} = \"k\".\"key\" AND \"s\".\"deleted_at\" IS NULL) AS \"a\"), \
         \"up\" AS (INSERT INTO {table} (\"connection_id\", \"id\", {cols}, \"updated_at\") \
         SELECT $1, \"key\", {cols}, $3 FROM \"agg\" WHERE \"__n\" > 0 \
         ON CONFLICT (\"connection_id\", \"id\") DO UPDATE SET {sets}, \"updated_at\" = \"excluded\".\"updated_at\" \
         WHERE {changed} RETURNING \"id\", (xmax = 0) AS \"ins\"), \
         \"gone\" AS (DELETE FROM {table} WHERE \"connection_id\" = $1 \
         AND \"id\" IN (SELECT \"key\" FROM \"agg\" WHERE \"__n\" = 0) RETURNING 1) \
         SELECT COUNT(*) FILTER (WHERE \"ins\"), COUNT(*) FILTER (WHERE NOT \"ins\") FROM \"up\"",
        aggs = aggs.join(", "),
        table = q(der.table),
        cols = cols.join(", "),
        sets = sets.join(", "),
        changed = changed.join(" OR "),
    )
}

/// The next `limit` distinct group keys with live source rows after param 2, in order.
/// Params: 1 connection, 2 last key seen ('' to start), 3 limit.
pub(crate) fn derived_keys_after(d: Dialect, source: &str, der: &DerivedSpec) -> String {
    // No CAST on the key: the comparison and the order must be the index's own, so the
    // walk streams from the covering index instead of sorting every key per call.
    let key = q(der.key);
    format!(
        "SELECT DISTINCT {key} FROM {} WHERE \"connection_id\" = {} \
         AND \"deleted_at\" IS NULL AND {key} > {} ORDER BY {key} LIMIT {}",
        q(source),
        d.p(1),
        d.p(2),
        d.p(3)
    )
}

/// Delete derived rows whose key has no live source row. Params: 1 connection.
pub(crate) fn derived_orphans(d: Dialect, source: &str, der: &DerivedSpec) -> String {
    let key = q(der.key);
    format!(
        "DELETE FROM {} WHERE \"connection_id\" = {p1} AND \"id\" NOT IN (SELECT CAST({key} AS TEXT) FROM {} \
         WHERE \"connection_id\" = {p1} AND \"deleted_at\" IS NULL AND {key} IS NOT NULL)",
        q(der.table),
        q(source),
        p1 = d.p(1)
    )
}

/// Tombstone live rows (within scope) whose id is not in list param 3; returns their
/// group keys. Params: 1 connection, 2 at, 3 seen ids, 4 scope value (when scoped), then
/// the window's start when `window` names its time column.
pub(crate) fn tombstone(d: Dialect, spec: &StreamSpec, window: Option<&str>) -> String {
    let next = if spec.scope.is_some() { 5 } else { 4 };
    let window = window.map_or(String::new(), |c| format!(" AND {} >= {}", q(c), d.p(next)));
    format!(
        "UPDATE {} SET \"deleted_at\" = {p2}, \"updated_at\" = {p2} WHERE \"connection_id\" = {} \
         AND \"deleted_at\" IS NULL AND \"id\" NOT IN {}{}{} RETURNING \"id\", {}",
        q(spec.table),
        d.p(1),
        d.list(3),
        scope_filter(d, spec, 4),
        window,
        key_expr(spec),
        p2 = d.p(2),
    )
}

/// Live rows within scope. Params: 1 connection, 2 scope value.
pub(crate) fn count_live(d: Dialect, spec: &StreamSpec) -> String {
    format!(
        "SELECT COUNT(*) FROM {} WHERE \"connection_id\" = {} AND \"deleted_at\" IS NULL{}",
        q(spec.table),
        d.p(1),
        scope_filter(d, spec, 2)
    )
}

/// A keyset page of rows. Params: 1 connection, 2 limit, then the scope value when the
/// stream is scoped, then `after` when `has_after`.
pub(crate) fn export(
    d: Dialect,
    spec: &StreamSpec,
    include_deleted: bool,
    has_after: bool,
) -> String {
    let live = if include_deleted {
        ""
    } else {
        " AND \"deleted_at\" IS NULL"
    };
    let next = if spec.scope.is_some() { 4 } else { 3 };
    let after = if has_after {
        format!(" AND \"id\" > {}", d.p(next))
    } else {
        String::new()
    };
    format!(
        "SELECT \"id\", {}, {}, \"content_hash\", \"first_seen_at\", \"updated_at\", \"deleted_at\" \
         FROM {} WHERE \"connection_id\" = {}{live}{}{after} ORDER BY \"id\" LIMIT {}",
        typed(spec, "").join(", "),
        d.raw(),
        q(spec.table),
        d.p(1),
        scope_filter(d, spec, 3),
        d.p(2),
    )
}

/// A keyset page of a derived table. Params: 1 connection, 2 limit, 3 `after` when
/// `has_after`.
pub(crate) fn export_derived(d: Dialect, der: &DerivedSpec, has_after: bool) -> String {
    let after = if has_after {
        format!(" AND \"id\" > {}", d.p(3))
    } else {
        String::new()
    };
    let cols: Vec<String> = der.columns.iter().map(|c| q(c.column.name)).collect();
    format!(
        "SELECT \"id\", {}, \"updated_at\" FROM {} WHERE \"connection_id\" = {}{after} \
         ORDER BY \"id\" LIMIT {}",
        cols.join(", "),
        q(der.table),
        d.p(1),
        d.p(2),
    )
}

#[cfg(test)]
mod dump {
    #[test]
    #[ignore]
    fn dump_sql() {
        let spec = &inlet_connectors::reddit::streams::STREAMS[0];
        let der = spec.derived.expect("derived");
        for d in [super::Dialect::Sqlite, super::Dialect::Postgres] {
            println!("{};", super::lookup(d, spec));
            println!("{};", super::derived_upsert(d, spec.table, der));
            println!("{};", super::derived_delete(d, spec.table, der));
        }
        println!("{};", super::pg_insert(spec));
        println!("{};", super::pg_derived_refresh(spec.table, der));
    }
}
