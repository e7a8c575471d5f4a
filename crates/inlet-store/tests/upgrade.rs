//! A database made by inlet 0.1, whose migrations made the record tables, upgrades in
//! place now that those tables are made from the stream specs: built here from the
//! checked-in migration scripts of 0.1 (`tests/fixtures/v10/<dialect>/`, recorded in
//! `schema_migrations` with their checksums, as 0.1 recorded them) and filled with rows in
//! every table (`fill_<dialect>.sql`), it opens with this code with every row and column
//! still there, and its schema then equals, column for column and index for index, that
//! of a database this code makes from nothing. On SQLite and PostgreSQL.

#[allow(dead_code, unused_macros)] // shared with the main contract suite
mod harness;

use harness::{DEFAULT_PG, builtin_specs, open_with_tables, random_hex, with_database};
use inlet_core::{Record, Store, SyncState, Timestamp, Value, WorkspaceStatus};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_postgres::NoTls;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v10")
        .join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The migration scripts of inlet 0.1 for a dialect: (version, name, SQL), in order.
fn legacy_scripts(dialect: &str) -> Vec<(i64, String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture(dialect))
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let scripts: Vec<(i64, String, String)> = files
        .iter()
        .map(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).expect("file name");
            let (v, name) = stem.split_once('_').expect("NNNN_name.sql");
            (v.parse().expect("version"), name.to_string(), read(p))
        })
        .collect();
    assert_eq!(scripts.len(), 10, "inlet 0.1 had ten migrations");
    scripts
}

/// Raw access to a database, below the store.
enum Raw {
    Sqlite(PathBuf),
    Pg(String),
}

impl Raw {
    fn url(&self) -> String {
        match self {
            Raw::Sqlite(p) => format!("sqlite://{}", p.display()),
            Raw::Pg(url) => url.clone(),
        }
    }

    fn sqlite(p: &Path) -> rusqlite::Connection {
        rusqlite::Connection::open(p).expect("open sqlite")
    }

    async fn pg(url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, NoTls)
            .await
            .expect("connect pg");
        tokio::spawn(conn);
        client
    }

    async fn exec(&self, sql: &str) {
        match self {
            Raw::Sqlite(p) => Self::sqlite(p).execute_batch(sql).expect("exec"),
            Raw::Pg(url) => Self::pg(url).await.batch_execute(sql).await.expect("exec"),
        }
    }

    /// Rows of one query as text, first column first.
    async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match self {
            Raw::Sqlite(p) => {
                let c = Self::sqlite(p);
                let mut st = c.prepare(sql).expect("prepare");
                let n = st.column_count();
                let rows = st
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| Ok(text(r.get_ref(i)?)))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .expect("query");
                rows.collect::<Result<_, _>>().expect("rows")
            }
            Raw::Pg(url) => {
                let rows = Self::pg(url).await.query(sql, &[]).await.expect("query");
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                r.get::<_, Option<String>>(i)
                                    .unwrap_or_else(|| "NULL".into())
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Every table's rows, each row as text with every column, sorted.
    async fn dump(&self) -> BTreeMap<String, Vec<String>> {
        let tables_sql = match self {
            Raw::Sqlite(_) => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
            Raw::Pg(_) => {
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            }
        };
        let mut out = BTreeMap::new();
        for t in self.rows(tables_sql).await {
            let name = t[0].clone();
            let sql = match self {
                Raw::Sqlite(_) => format!("SELECT * FROM \"{name}\""),
                Raw::Pg(_) => format!("SELECT row_to_json(t)::text FROM \"{name}\" t"),
            };
            let mut rows: Vec<String> = self
                .rows(&sql)
                .await
                .into_iter()
                .map(|r| r.join(" | "))
                .collect();
            rows.sort();
            out.insert(name, rows);
        }
        out
    }

    /// The schema: every table's columns (name, type, nullability, default, collation),
    /// keys and foreign keys, every index with its columns and condition. Sorted lines.
    async fn schema(&self) -> Vec<String> {
        let queries: &[&str] = match self {
            Raw::Sqlite(_) => &[
                "SELECT 'table', name, ncol, wr, strict FROM pragma_table_list \
                 WHERE schema = 'main' AND name NOT LIKE 'sqlite_%'",
                "SELECT 'column', m.name, c.cid, c.name, c.type, c.\"notnull\", c.dflt_value, c.pk \
                 FROM sqlite_master m, pragma_table_xinfo(m.name) c \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
                "SELECT 'fk', m.name, f.id, f.seq, f.\"table\", f.\"from\", f.\"to\", f.on_update, \
                 f.on_delete FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
                 WHERE m.type = 'table'",
                "SELECT 'index', m.name, i.name, i.\"unique\", i.origin, i.partial \
                 FROM sqlite_master m, pragma_index_list(m.name) i WHERE m.type = 'table'",
                "SELECT 'index column', i.name, x.seqno, x.name, x.\"desc\", x.coll, x.key \
                 FROM sqlite_master m, pragma_index_list(m.name) i, pragma_index_xinfo(i.name) x \
                 WHERE m.type = 'table'",
                "SELECT 'index where', name, substr(sql, instr(sql, 'WHERE')) FROM sqlite_master \
                 WHERE type = 'index' AND sql LIKE '%WHERE%'",
            ],
            Raw::Pg(_) => &[
                "SELECT 'column', table_name::text, column_name::text, ordinal_position::text, \
                 data_type::text, is_nullable::text, column_default::text, collation_name::text \
                 FROM information_schema.columns WHERE table_schema = current_schema()",
                "SELECT 'constraint', conrelid::regclass::text, conname::text, \
                 pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE connamespace = current_schema()::regnamespace",
                "SELECT 'index', tablename::text, indexname::text, indexdef FROM pg_indexes \
                 WHERE schemaname = current_schema()",
                "SELECT 'relation', relname::text, relkind::text, relpersistence::text \
                 FROM pg_class WHERE relnamespace = current_schema()::regnamespace",
            ],
        };
        let mut out = Vec::new();
        for q in queries {
            for r in self.rows(q).await {
                // Whitespace in a partial index's condition is as its script wrote it.
                let line = r.join(" ");
                out.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        out.sort();
        out
    }
}

/// A SQLite value as text: NULL, a number, the text itself, or `x'<hex>'` for bytes.
fn text(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!(
            "x'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

/// Make the database as inlet 0.1 made it: its migrations applied and recorded, then
/// filled.
async fn build_legacy(raw: &Raw, dialect: &str) {
    let (ddl, insert) = match raw {
        Raw::Sqlite(_) => (
            "CREATE TABLE IF NOT EXISTS \"schema_migrations\" (\"version\" INTEGER PRIMARY KEY, \
             \"name\" TEXT NOT NULL, \"checksum\" TEXT NOT NULL, \"applied_at\" TEXT NOT NULL)",
            "'2024-06-19T12:00:00.000Z'",
        ),
        Raw::Pg(_) => (
            "CREATE TABLE IF NOT EXISTS \"schema_migrations\" (\"version\" BIGINT PRIMARY KEY, \
             \"name\" TEXT NOT NULL, \"checksum\" TEXT NOT NULL, \"applied_at\" TIMESTAMPTZ NOT NULL DEFAULT now())",
            "now()",
        ),
    };
    raw.exec(ddl).await;
    for (version, name, sql) in legacy_scripts(dialect) {
        let checksum = blake3::hash(sql.as_bytes()).to_hex().to_string();
        raw.exec(&format!(
            "BEGIN; {sql}\n; INSERT INTO \"schema_migrations\" VALUES ({version}, '{name}', '{checksum}', {insert}); COMMIT;"
        ))
        .await;
    }
    raw.exec(&read(&fixture(&format!("fill_{dialect}.sql"))))
        .await;
}

async fn upgrade(raw: Raw, fresh: Raw, dialect: &str) {
    build_legacy(&raw, dialect).await;
    let before = raw.dump().await;
    assert_eq!(before.len(), 18, "every table of 0.1: {:?}", before.keys());
    for (table, rows) in &before {
        if table != "schema_migrations" {
            assert!(!rows.is_empty(), "the fixture fills {table}");
        }
    }

    let store = open_with_tables(&raw.url())
        .await
        .expect("open a 0.1 database");
    let mut after = raw.dump().await;
    // Migrations newer than 0.1 add their rows to schema_migrations and their tables;
    // the tables of 0.1 keep exactly their rows.
    let migrations = after.remove("schema_migrations").unwrap_or_default();
    for row in &before["schema_migrations"] {
        assert!(migrations.contains(row), "schema_migrations kept {row}");
    }
    let workspaces = after.remove("workspaces").unwrap_or_default();
    let mut old = before.clone();
    old.remove("schema_migrations");
    assert_eq!(after, old, "every row and column kept");
    // The workspaces the 0.1 connections named became workspaces, active.
    assert_eq!(workspaces.len(), 2, "{workspaces:?}");
    uses_the_old_rows(&store).await;

    let made = open_with_tables(&fresh.url()).await.expect("open fresh");
    drop(made);
    let (old, new) = (raw.schema().await, fresh.schema().await);
    for line in &new {
        assert!(old.contains(line), "the upgraded database lacks: {line}");
    }
    for line in &old {
        assert!(new.contains(line), "a new database lacks: {line}");
    }
    assert!(
        old.iter()
            .any(|l| l.contains("reddit_messages_conversation_live"))
    );
}

/// The store reads and writes the rows 0.1 wrote.
async fn uses_the_old_rows(store: &Arc<dyn Store>) {
    let specs = builtin_specs();
    let spec = |name: &str| {
        *specs
            .iter()
            .find(|s| s.name == name)
            .expect("built-in stream")
    };
    let inbox = spec("inbox");
    assert_eq!(store.count_live(1, &inbox).await.expect("count"), 1);
    let rows = store
        .export_page(1, &inbox, None, 10, true)
        .await
        .expect("export");
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["t1_b", "t4_a"]);
    let author = inbox.column_index("author").expect("author");
    let created = inbox.column_index("created_utc").expect("created_utc");
    assert_eq!(rows[1].values[author], Value::Text("alice".into()));
    assert_eq!(
        rows[1].values[created],
        Value::Time(Timestamp::parse_rfc3339("2024-06-19T12:26:40.123Z").expect("time"))
    );
    assert_eq!(
        store
            .count_derived(1, "reddit_conversations")
            .await
            .expect("count"),
        1
    );
    assert_eq!(store.list_connections().await.expect("list").len(), 4);
    let ws = store.list_workspaces().await.expect("workspaces");
    let ws: Vec<(&str, WorkspaceStatus, Timestamp)> = ws
        .iter()
        .map(|w| (w.name.as_str(), w.status, w.created_at))
        .collect();
    let first = |t: &str| Timestamp::parse_rfc3339(t).expect("time");
    assert_eq!(
        ws,
        [
            (
                "acme",
                WorkspaceStatus::Active,
                first("2024-06-19T12:26:40.123Z")
            ),
            (
                "other",
                WorkspaceStatus::Active,
                first("2024-06-20T08:00:00.000Z")
            ),
        ]
    );
    let run = store.get_run(1).await.expect("run").expect("run 1");
    assert_eq!(run.stats.fetched, 10);

    // A new star is written next to the old ones.
    let stars = spec("starred");
    let mut values = vec![Value::Null; stars.columns.len()];
    values[stars.column_index("full_name").expect("full_name")] = Value::Text("o/t".into());
    let state = SyncState::default();
    let o = store
        .commit_page(inlet_core::PageBatch {
            connection_id: 2,
            stream: &stars,
            records: vec![Record::new("789", values, r#"{"id":789}"#.into())],
            state: &state,
            refresh_derived: false,
            at: Timestamp(1_720_000_000_000),
        })
        .await
        .expect("commit");
    assert_eq!(o.inserted, 1);
    assert_eq!(store.count_live(2, &stars).await.expect("count"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inlet_0_1_database_upgrades_in_place_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    upgrade(
        Raw::Sqlite(dir.path().join("old.db")),
        Raw::Sqlite(dir.path().join("new.db")),
        "sqlite",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inlet_0_1_database_upgrades_in_place_postgres() {
    let admin = std::env::var("INLET_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
    let client = Raw::pg(&admin).await;
    let names = [
        format!("inlet_t_{}", random_hex()),
        format!("inlet_t_{}", random_hex()),
    ];
    for n in &names {
        client
            .batch_execute(&format!("CREATE DATABASE \"{n}\""))
            .await
            .expect("CREATE DATABASE");
    }
    let (old, new) = (
        Raw::Pg(with_database(&admin, &names[0])),
        Raw::Pg(with_database(&admin, &names[1])),
    );
    let result = tokio::spawn(upgrade(old, new, "postgres")).await;
    for n in &names {
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"))
            .await
            .expect("DROP DATABASE");
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
