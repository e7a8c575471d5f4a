//! The Store contract for the database's own values (`inlet_meta`: the credentials key
//! check value, the demo mark) and for exporting derived tables, on SQLite AND
//! PostgreSQL; and the read-only SQLite open.

#[allow(dead_code)] // shared with the main contract suite
#[macro_use]
mod harness;

use harness::Db;
use inlet_connectors::reddit::streams::{CONVERSATIONS, STREAMS};
use inlet_core::{NewConnection, PageBatch, Record, StoreError, SyncState, Timestamp, Value};

const T0: i64 = 1_718_800_000_123;

store_test!(meta_values_are_set_once);
async fn meta_values_are_set_once(db: Db) {
    assert_eq!(db.store.meta_get("k").await.expect("get"), None);
    assert_eq!(
        db.store.meta_init("k", "first").await.expect("init"),
        "first"
    );
    // A second init keeps the first value and says so.
    assert_eq!(
        db.store.meta_init("k", "second").await.expect("init"),
        "first"
    );
    assert_eq!(
        db.store.meta_get("k").await.expect("get").as_deref(),
        Some("first")
    );
    // Survives a reopen (and the migration check).
    let again = db.reopen().await.expect("reopen");
    assert_eq!(
        again.meta_get("k").await.expect("get").as_deref(),
        Some("first")
    );
}

fn msg(id: &str, conv: &str, secs: i64) -> Record {
    let spec = &STREAMS[0];
    let mut values = vec![Value::Null; spec.columns.len()];
    let mut set = |name: &str, v: Value| {
        values[spec.column_index(name).expect("column")] = v;
    };
    set("kind", Value::Text("t4".into()));
    set("folder", Value::Text("inbox".into()));
    set("conversation_id", Value::Text(conv.into()));
    set("author", Value::Text("a".into()));
    set("subject", Value::Text(format!("re {conv}")));
    set("created_utc", Value::Time(Timestamp::from_secs(secs)));
    set("unread", Value::Bool(true));
    Record::new(id, values, format!(r#"{{"id": "{id}"}}"#))
}

store_test!(derived_rows_export_in_key_pages);
async fn derived_rows_export_in_key_pages(db: Db) {
    let conn = db
        .store
        .create_connection(
            &NewConnection {
                name: "c".into(),
                workspace: "w".into(),
                provider: "reddit".into(),
                config: serde_json::json!({}),
                credentials: vec![1],
            },
            Timestamp(T0),
        )
        .await
        .expect("create")
        .id;
    let records: Vec<Record> = (0..5)
        .flat_map(|c| {
            (0..2).map(move |m| msg(&format!("t4_{c}{m}"), &format!("t4_c{c}"), 1000 + m))
        })
        .collect();
    db.store
        .commit_page(PageBatch {
            connection_id: conn,
            stream: &STREAMS[0],
            records,
            state: &SyncState::default(),
            refresh_derived: true,
            at: Timestamp(T0),
        })
        .await
        .expect("commit");
    let first = db
        .store
        .export_derived_page(conn, &CONVERSATIONS, None, 3)
        .await
        .expect("page");
    let ids: Vec<&str> = first.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["t4_c0", "t4_c1", "t4_c2"]);
    let rest = db
        .store
        .export_derived_page(conn, &CONVERSATIONS, Some("t4_c2"), 3)
        .await
        .expect("page");
    let ids: Vec<&str> = rest.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["t4_c3", "t4_c4"]);
    let count = CONVERSATIONS
        .columns
        .iter()
        .position(|c| c.column.name == "message_count")
        .expect("message_count");
    let subject = CONVERSATIONS
        .columns
        .iter()
        .position(|c| c.column.name == "subject")
        .expect("subject");
    for r in first.iter().chain(&rest) {
        assert_eq!(r.values.len(), CONVERSATIONS.columns.len());
        assert_eq!(r.values[count], Value::Int(2), "{r:?}");
        assert_eq!(r.values[subject], Value::Text(format!("re {}", r.id)));
        assert_eq!(r.updated_at, Timestamp(T0));
    }
    assert!(
        db.store
            .export_derived_page(conn + 1, &CONVERSATIONS, None, 10)
            .await
            .expect("page")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_open_writes_nothing_and_names_missing_migrations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.db");
    let url = path.display().to_string();
    // Nothing is created for a missing file.
    assert!(inlet_store::open_read_only(&url).await.is_err());
    assert!(!path.exists());
    {
        let store = inlet_store::open(&url).await.expect("open");
        store.meta_init("k", "v").await.expect("init");
    }
    let ro = inlet_store::open_read_only(&url).await.expect("read-only");
    assert_eq!(ro.meta_get("k").await.expect("get").as_deref(), Some("v"));
    assert!(
        ro.meta_init("k2", "v").await.is_err(),
        "a read-only store wrote"
    );
    drop(ro);
    // An older schema: refused with the migration named, and not applied.
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute_batch("DELETE FROM schema_migrations WHERE version >= 8; DROP TABLE inlet_meta;")
            .expect("downgrade");
    }
    match inlet_store::open_read_only(&url).await {
        Err(StoreError::Schema(m)) => assert!(m.contains("0008_meta") && m.contains("a.db"), "{m}"),
        Err(other) => panic!("expected a schema error, got {other}"),
        Ok(_) => panic!("an older schema opened read-only"),
    }
    let c = rusqlite::Connection::open(&path).expect("open");
    let applied: i64 = c
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .expect("max");
    assert_eq!(applied, 7);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sqlite_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.db");
    let store = inlet_store::open(&path.display().to_string())
        .await
        .expect("open");
    store.meta_init("k", "v").await.expect("write");
    for f in ["p.db", "p.db-wal", "p.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .expect(f)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}
