//! The schema generator: record tables and derived tables made from the stream specs, one
//! dialect at a time. Migrations make only the bookkeeping tables (connections, runs,
//! sync state, leases, keys, attachments, staging, ...); a stream's tables are made when
//! the store is told its spec ([`inlet_core::RecordStore::ensure_tables`], or the first
//! operation on the stream), with `CREATE ... IF NOT EXISTS`, so a table an earlier
//! release's migrations made is kept as it is, rows and all.
//!
//! The tables are shaped exactly as the migrations of inlet 0.1 made them (see
//! `tests/fixtures/v10`), column for column and index for index:
//! * record table: `connection_id`, `id`, the typed columns in spec order, `raw`,
//!   `content_hash`, `first_seen_at`, `updated_at`, `deleted_at`; primary key
//!   `(connection_id, id)`;
//! * derived table: `connection_id`, `id` (the group key), the derived columns,
//!   `updated_at`; primary key `(connection_id, id)`;
//! * SQLite: `connection_id` references `connections` (deleting a connection cascades);
//!   PostgreSQL: no foreign key (one trigger per row was a quarter of a backfill's time;
//!   the store checks the connection once per page and deletes rows explicitly), and
//!   `id` sorts bytewise (`COLLATE "C"`), as in SQLite.

use crate::sql::{Dialect, q};
use inlet_core::{Agg, ColType, DerivedSpec, StreamSpec};

/// One column of a generated table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Col {
    pub name: String,
    /// The type as `CREATE TABLE` writes it, with its constraints.
    pub create: String,
    /// The type as the catalog reports it back (SQLite: the declared type;
    /// PostgreSQL: `information_schema.columns.data_type`).
    pub reported: &'static str,
}

/// The SQL type of a typed column: as created, as reported.
fn column_type(d: Dialect, ty: ColType) -> (&'static str, &'static str) {
    match (d, ty) {
        (Dialect::Sqlite, ColType::Text | ColType::Time) => ("TEXT", "TEXT"),
        (Dialect::Sqlite, ColType::Int | ColType::Bool) => ("INTEGER", "INTEGER"),
        (Dialect::Sqlite, ColType::Float) => ("REAL", "REAL"),
        (Dialect::Postgres, ColType::Text) => ("TEXT", "text"),
        (Dialect::Postgres, ColType::Int) => ("BIGINT", "bigint"),
        (Dialect::Postgres, ColType::Float) => ("DOUBLE PRECISION", "double precision"),
        (Dialect::Postgres, ColType::Bool) => ("BOOLEAN", "boolean"),
        (Dialect::Postgres, ColType::Time) => ("TIMESTAMPTZ", "timestamp with time zone"),
    }
}

fn col(name: &str, create: &str, reported: &'static str) -> Col {
    Col {
        name: name.to_string(),
        create: create.to_string(),
        reported,
    }
}

fn typed(d: Dialect, name: &str, ty: ColType) -> Col {
    let (create, reported) = column_type(d, ty);
    col(name, create, reported)
}

fn time(d: Dialect, name: &str, not_null: bool) -> Col {
    let (create, reported) = column_type(d, ColType::Time);
    if not_null {
        col(name, &format!("{create} NOT NULL"), reported)
    } else {
        col(name, create, reported)
    }
}

/// `connection_id` and `id`, the key of every generated table.
fn key_columns(d: Dialect) -> [Col; 2] {
    match d {
        Dialect::Sqlite => [
            col(
                "connection_id",
                "INTEGER NOT NULL REFERENCES \"connections\" (\"id\") ON DELETE CASCADE",
                "INTEGER",
            ),
            col("id", "TEXT NOT NULL", "TEXT"),
        ],
        Dialect::Postgres => [
            col("connection_id", "BIGINT NOT NULL", "bigint"),
            col("id", "TEXT COLLATE \"C\" NOT NULL", "text"),
        ],
    }
}

/// Every column of a stream's record table, in order.
pub(crate) fn record_columns(d: Dialect, spec: &StreamSpec) -> Vec<Col> {
    let mut cols = Vec::from(key_columns(d));
    cols.extend(spec.columns.iter().map(|c| typed(d, c.name, c.ty)));
    let (json, blob) = match d {
        Dialect::Sqlite => (("TEXT NOT NULL", "TEXT"), ("BLOB NOT NULL", "BLOB")),
        Dialect::Postgres => (("JSONB NOT NULL", "jsonb"), ("BYTEA NOT NULL", "bytea")),
    };
    cols.push(col("raw", json.0, json.1));
    cols.push(col("content_hash", blob.0, blob.1));
    cols.push(time(d, "first_seen_at", true));
    cols.push(time(d, "updated_at", true));
    cols.push(time(d, "deleted_at", false));
    cols
}

/// Every column of a derived table, in order.
pub(crate) fn derived_columns(d: Dialect, der: &DerivedSpec) -> Vec<Col> {
    let mut cols = Vec::from(key_columns(d));
    cols.extend(
        der.columns
            .iter()
            .map(|c| typed(d, c.column.name, c.column.ty)),
    );
    cols.push(time(d, "updated_at", true));
    cols
}

/// `CREATE TABLE IF NOT EXISTS` of `table` with `cols` and the key `(connection_id, id)`.
/// A name given twice (a typed column named like a fixed one) is refused.
fn create_table(table: &str, cols: &[Col]) -> Result<String, String> {
    let mut seen = std::collections::HashSet::new();
    for c in cols {
        if !seen.insert(c.name.as_str()) {
            return Err(format!(
                "table {table:?} would have the column {:?} twice (typed columns may not reuse \
                 the names connection_id, id, raw, content_hash, first_seen_at, updated_at, \
                 deleted_at)",
                c.name
            ));
        }
    }
    let body: Vec<String> = cols
        .iter()
        .map(|c| format!("{} {}", q(&c.name), c.create))
        .collect();
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (\"connection_id\", \"id\"))",
        q(table),
        body.join(", ")
    ))
}

/// An index of a record table inlet 0.1's migrations made, as each dialect wrote it
/// (what follows `ON "table"`). These tables keep exactly these indexes; a table not
/// named here gets [`rule_indexes`].
struct KnownIndex {
    table: &'static str,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// The record-table indexes of inlet 0.1, kept so a table made from its spec equals the
/// one the migrations made.
static KNOWN_INDEXES: &[KnownIndex] = &[
    KnownIndex {
        table: "reddit_messages",
        name: "reddit_messages_folder_created",
        sqlite: "(\"connection_id\", \"folder\", \"created_utc\")",
        postgres: "(\"connection_id\", \"folder\", \"created_utc\")",
    },
    // Conversations are refreshed from their live messages in every page's transaction:
    // this partial covering index holds every column the aggregates read, so the refresh
    // never reads the table (see migration 0002).
    KnownIndex {
        table: "reddit_messages",
        name: "reddit_messages_conversation_live",
        sqlite: "(\"connection_id\", \"conversation_id\", \"created_utc\", \"id\", \"author\", \
                 \"unread\", \"subject\") WHERE \"deleted_at\" IS NULL",
        postgres: "(\"connection_id\", \"conversation_id\", \"created_utc\", \"id\") \
                   INCLUDE (\"author\", \"unread\", \"subject\") WHERE \"deleted_at\" IS NULL",
    },
    KnownIndex {
        table: "github_stars",
        name: "github_stars_starred",
        sqlite: "(\"connection_id\", \"starred_at\")",
        postgres: "(\"connection_id\", \"starred_at\")",
    },
    KnownIndex {
        table: "ebay_conversations",
        name: "ebay_conversations_type",
        sqlite: "(\"connection_id\", \"conversation_type\")",
        postgres: "(\"connection_id\", \"conversation_type\")",
    },
    KnownIndex {
        table: "ebay_messages",
        name: "ebay_messages_conversation",
        sqlite: "(\"connection_id\", \"conversation_id\", \"created_date\")",
        postgres: "(\"connection_id\", \"conversation_id\", \"created_date\")",
    },
];

/// The indexes of a table no [`KnownIndex`] names, from what the store's own queries
/// filter on: the scope column of a shared table (`<table>_<column>`), and for a derived
/// table the group key over live rows plus every column the aggregates read, so its
/// refresh reads the index only (`<table>_<key>_live`).
fn rule_indexes(spec: &StreamSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(scope) = &spec.scope {
        out.push((
            format!("{}_{}", spec.table, scope.column),
            format!("(\"connection_id\", {})", q(scope.column)),
        ));
    }
    if let Some(der) = spec.derived {
        let mut cols = vec!["connection_id".to_string(), der.key.to_string()];
        let mut add = |c: &str| {
            if !cols.iter().any(|x| x == c) {
                cols.push(c.to_string());
            }
        };
        for c in der.columns {
            match c.agg {
                Agg::Count => {}
                Agg::CountTrue(c) | Agg::Min(c) | Agg::Max(c) => add(c),
                Agg::FirstBy { col, by } | Agg::LastBy { col, by } => {
                    add(by);
                    add("id");
                    add(col);
                }
            }
        }
        let list: Vec<String> = cols.iter().map(|c| q(c)).collect();
        out.push((
            format!("{}_{}_live", spec.table, der.key),
            format!("({}) WHERE \"deleted_at\" IS NULL", list.join(", ")),
        ));
    }
    out
}

/// `CREATE INDEX IF NOT EXISTS` of every index of a stream's record table.
fn create_indexes(d: Dialect, spec: &StreamSpec) -> Vec<String> {
    let known: Vec<(String, String)> = KNOWN_INDEXES
        .iter()
        .filter(|i| i.table == spec.table)
        .map(|i| {
            let body = match d {
                Dialect::Sqlite => i.sqlite,
                Dialect::Postgres => i.postgres,
            };
            (i.name.to_string(), body.to_string())
        })
        .collect();
    let list = if known.is_empty() {
        rule_indexes(spec)
    } else {
        known
    };
    list.into_iter()
        .map(|(name, body)| {
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} {body}",
                q(&name),
                q(spec.table)
            )
        })
        .collect()
}

/// What making a stream's tables takes: the tables to create (then check against their
/// columns), then the indexes to create once the tables passed the check.
pub(crate) struct Plan {
    /// `(table, CREATE TABLE IF NOT EXISTS ..., the columns it must have)`.
    pub tables: Vec<(&'static str, String, Vec<Col>)>,
    /// `CREATE INDEX IF NOT EXISTS ...`.
    pub indexes: Vec<String>,
}

/// The plan for a stream: its record table, its derived table if any, their indexes.
pub(crate) fn plan(d: Dialect, spec: &StreamSpec) -> Result<Plan, String> {
    if spec.table.is_empty() {
        return Err(format!("stream {:?} names no table", spec.name));
    }
    let cols = record_columns(d, spec);
    let mut tables = vec![(spec.table, create_table(spec.table, &cols)?, cols)];
    if let Some(der) = spec.derived {
        let cols = derived_columns(d, der);
        tables.push((der.table, create_table(der.table, &cols)?, cols));
    }
    Ok(Plan {
        tables,
        indexes: create_indexes(d, spec),
    })
}

/// What identifies the tables a spec asks for: its table, typed columns and derived table
/// with theirs. A store remembers the signatures it made or checked, so a spec is checked
/// once per process, and another spec naming the same table with other columns still is.
pub(crate) fn signature(spec: &StreamSpec) -> String {
    let mut s = String::from(spec.table);
    for c in spec.columns {
        s.push_str(&format!(",{}:{:?}", c.name, c.ty));
    }
    if let Some(der) = spec.derived {
        s.push_str(&format!(";{}/{}", der.table, der.key));
        for c in der.columns {
            s.push_str(&format!(",{}:{:?}", c.column.name, c.column.ty));
        }
    }
    s
}

/// The columns of an existing table as `(name, type)`, in order. Params: 1 table name.
pub(crate) fn table_info(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => {
            "SELECT \"name\", upper(\"type\") FROM pragma_table_info(?1) ORDER BY \"cid\""
        }
        Dialect::Postgres => {
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
        }
    }
}

/// Whether a table exists. Params: 1 table name. One row when it does.
pub(crate) fn table_exists(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "SELECT 1 FROM sqlite_master WHERE \"type\" = 'table' AND \"name\" = ?1",
        Dialect::Postgres => {
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    }
}

/// Check the columns `table` has against those it must have.
pub(crate) fn check_table(
    stream: &str,
    table: &str,
    want: &[Col],
    found: &[(String, String)],
) -> Result<(), String> {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|c| (c.name.clone(), c.reported.to_string()))
        .collect();
    if found == want.as_slice() {
        return Ok(());
    }
    let show = |cols: &[(String, String)]| {
        cols.iter()
            .map(|(n, t)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(format!(
        "table {table:?} exists with other columns than stream {stream:?} describes: it has \
         ({}), the stream wants ({}); rename the stream's table or drop the old one",
        show(found),
        show(&want)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use inlet_core::{Column, DerivedColumn, Scope, StopRule};

    static DER: DerivedSpec = DerivedSpec {
        table: "t_groups",
        key: "grp",
        columns: &[
            DerivedColumn {
                column: Column::new("n", ColType::Int, "n"),
                agg: Agg::Count,
            },
            DerivedColumn {
                column: Column::new("first", ColType::Text, "first"),
                agg: Agg::FirstBy {
                    col: "who",
                    by: "at",
                },
            },
        ],
    };

    const SPEC: StreamSpec = StreamSpec {
        name: "s",
        table: "t",
        doc: "",
        columns: &[
            Column::new("grp", ColType::Text, "g"),
            Column::new("who", ColType::Text, "w"),
            Column::new("at", ColType::Time, "a"),
            Column::new("kind", ColType::Text, "k"),
        ],
        scope: Some(Scope {
            column: "kind",
            value: "x",
            shared: None,
        }),
        stop: StopRule::Never,
        listing_cap: None,
        derived: Some(&DER),
    };

    #[test]
    fn a_new_table_gets_rule_indexes() {
        let p = plan(Dialect::Postgres, &SPEC).expect("plan");
        assert_eq!(p.tables.len(), 2);
        assert_eq!(
            p.indexes,
            [
                "CREATE INDEX IF NOT EXISTS \"t_kind\" ON \"t\" (\"connection_id\", \"kind\")",
                "CREATE INDEX IF NOT EXISTS \"t_grp_live\" ON \"t\" (\"connection_id\", \"grp\", \
                 \"at\", \"id\", \"who\") WHERE \"deleted_at\" IS NULL"
            ]
        );
        assert!(p.tables[0].1.starts_with(
            "CREATE TABLE IF NOT EXISTS \"t\" (\"connection_id\" BIGINT NOT NULL, \"id\" TEXT \
             COLLATE \"C\" NOT NULL, \"grp\" TEXT,"
        ));
        assert!(p.tables[1].1.ends_with(
            "\"first\" TEXT, \"updated_at\" TIMESTAMPTZ NOT NULL, PRIMARY KEY (\"connection_id\", \"id\"))"
        ));
    }

    #[test]
    fn a_fixed_column_name_is_refused() {
        const CLASH: StreamSpec = StreamSpec {
            columns: &[Column::new("raw", ColType::Text, "r")],
            derived: None,
            ..SPEC
        };
        assert!(plan(Dialect::Sqlite, &CLASH).is_err());
    }
}
