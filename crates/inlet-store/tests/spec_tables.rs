//! `Store::ensure_tables`: record tables made from a stream spec, also one known only at
//! run time (the `rest` connector's streams), on SQLite and PostgreSQL. The generated
//! table has the shape of the migrations' record tables, takes pages, hash-skips,
//! tombstones and exports like them, and an existing table of another shape is refused.
//! Tables nobody asked for are made on a stream's first use; until then they read empty.

#[macro_use]
#[allow(dead_code)] // shared with the main contract suite
mod harness;

use harness::Db;
use inlet_connectors::github::streams::STREAMS as GITHUB;
use inlet_core::{
    Agg, ColType, Column, DerivedColumn, DerivedSpec, NewConnection, PageBatch, Record, StopRule,
    StoreError, StreamSpec, SyncState, Timestamp, TombstoneBatch, Value,
};

const T0: i64 = 1_718_800_000_123;

const ITEMS: StreamSpec = StreamSpec {
    name: "items",
    table: "rest_items",
    doc: "Items of a REST API.",
    columns: &[
        Column::new("title", ColType::Text, "title"),
        Column::new("votes", ColType::Int, "votes"),
        Column::new("ratio", ColType::Float, "ratio"),
        Column::new("open", ColType::Bool, "open"),
        Column::new("created", ColType::Time, "created"),
    ],
    scope: None,
    stop: StopRule::Never,
    listing_cap: None,
    derived: None,
};

async fn connection(db: &Db) -> i64 {
    let new = NewConnection {
        name: "api".into(),
        workspace: "acme".into(),
        provider: "rest".into(),
        config: serde_json::json!({}),
        credentials: vec![1, 2, 3],
    };
    db.store
        .create_connection(&new, Timestamp(T0))
        .await
        .expect("create connection")
        .id
}

fn item(id: &str, title: &str, votes: i64) -> Record {
    Record::new(
        id,
        vec![
            Value::Text(title.into()),
            Value::Int(votes),
            Value::Float(0.25),
            Value::Bool(votes % 2 == 0),
            Value::Time(Timestamp(T0 - votes * 1000)),
        ],
        format!(r#"{{"id":"{id}","title":"{title}","votes":{votes}}}"#),
    )
}

async fn commit(db: &Db, conn: i64, records: Vec<Record>, at: i64) -> inlet_core::PageOutcome {
    let state = SyncState::default();
    let batch = PageBatch {
        connection_id: conn,
        stream: &ITEMS,
        records,
        state: &state,
        refresh_derived: false,
        at: Timestamp(at),
    };
    db.store.commit_page(batch).await.expect("commit_page")
}

store_test!(spec_table_is_created_and_used_like_a_migrated_one);
async fn spec_table_is_created_and_used_like_a_migrated_one(db: Db) {
    assert!(db.columns("rest_items").await.is_empty());
    db.store.ensure_tables(&[ITEMS]).await.expect("create");
    // Twice is fine: the table is there with the right shape.
    db.store.ensure_tables(&[ITEMS]).await.expect("again");
    let names: Vec<String> = db
        .columns("rest_items")
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "connection_id",
            "id",
            "title",
            "votes",
            "ratio",
            "open",
            "created",
            "raw",
            "content_hash",
            "first_seen_at",
            "updated_at",
            "deleted_at"
        ]
    );

    let c = connection(&db).await;
    let page = vec![item("a", "first", 1), item("b", "second", 2)];
    let o = commit(&db, c, page.clone(), T0).await;
    assert_eq!((o.inserted, o.updated, o.unchanged), (2, 0, 0));
    let o = commit(&db, c, page.clone(), T0 + 1000).await;
    assert_eq!((o.inserted, o.updated, o.unchanged), (0, 0, 2), "hash skip");
    let o = commit(&db, c, vec![item("b", "edited", 2)], T0 + 2000).await;
    assert_eq!((o.inserted, o.updated, o.unchanged), (0, 1, 0));

    let rows = db
        .store
        .export_page(c, &ITEMS, None, 10, false)
        .await
        .expect("export");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].values, page[0].values, "every type round-trips");
    assert_eq!(rows[1].values, item("b", "edited", 2).values);
    assert_eq!(rows[0].content_hash, page[0].content_hash());

    let state = SyncState::default();
    let seen = vec!["b".to_string()];
    let gone = db
        .store
        .tombstone_missing(TombstoneBatch {
            window: None,
            connection_id: c,
            stream: &ITEMS,
            seen: &seen,
            state: &state,
            at: Timestamp(T0 + 3000),
            children: None,
        })
        .await
        .expect("tombstone");
    assert_eq!(gone, 1);
    assert_eq!(db.store.count_live(c, &ITEMS).await.expect("count"), 1);

    db.store
        .delete_connection(c, &[ITEMS.table])
        .await
        .expect("delete");
    let left = db
        .store
        .export_page(c, &ITEMS, None, 10, true)
        .await
        .expect("export");
    assert!(left.is_empty(), "the connection's rows went with it");
}

store_test!(spec_table_matches_the_migrations_shape);
async fn spec_table_matches_the_migrations_shape(db: Db) {
    // The generator writes what the migrations wrote for GitHub stars, column for column
    // and type for type; so the migrated table itself passes the check.
    let stars = GITHUB[0];
    let copy = StreamSpec {
        table: "copy_of_stars",
        ..stars
    };
    db.store.ensure_tables(&[copy]).await.expect("create copy");
    assert_eq!(
        db.columns("copy_of_stars").await,
        db.columns(stars.table).await
    );
    db.store
        .ensure_tables(&[stars])
        .await
        .expect("the migrated table has the spec's shape");
}

const RETYPED: &[Column] = &[
    Column::new("title", ColType::Int, "title"),
    Column::new("votes", ColType::Int, "votes"),
    Column::new("ratio", ColType::Float, "ratio"),
    Column::new("open", ColType::Bool, "open"),
    Column::new("created", ColType::Time, "created"),
];
const CLASH: &[Column] = &[Column::new("raw", ColType::Text, "raw")];

store_test!(spec_table_of_another_shape_is_refused);
async fn spec_table_of_another_shape_is_refused(db: Db) {
    db.store.ensure_tables(&[ITEMS]).await.expect("create");
    let fewer = StreamSpec {
        columns: &ITEMS.columns[..2],
        ..ITEMS
    };
    let retyped = StreamSpec {
        columns: RETYPED,
        ..ITEMS
    };
    let bookkeeping = StreamSpec {
        table: "connections",
        ..ITEMS
    };
    let clash = StreamSpec {
        table: "rest_clash",
        columns: CLASH,
        ..ITEMS
    };
    for (what, spec) in [
        ("fewer columns", fewer),
        ("another type", retyped),
        ("a bookkeeping table", bookkeeping),
        ("a fixed column name", clash),
    ] {
        assert!(
            matches!(
                db.store.ensure_tables(&[spec]).await,
                Err(StoreError::Schema(_))
            ),
            "{what} must be refused"
        );
    }
    assert!(db.columns("rest_clash").await.is_empty());
}

static GROUPS: DerivedSpec = DerivedSpec {
    table: "rest_groups",
    key: "title",
    columns: &[
        DerivedColumn {
            column: Column::new("n", ColType::Int, "items"),
            agg: Agg::Count,
        },
        DerivedColumn {
            column: Column::new("top", ColType::Int, "most votes"),
            agg: Agg::Max("votes"),
        },
    ],
};

const GROUPED: StreamSpec = StreamSpec {
    table: "rest_grouped",
    derived: Some(&GROUPS),
    ..ITEMS
};

store_test!(tables_are_made_on_first_use);
async fn tables_are_made_on_first_use(db: Db) {
    let c = connection(&db).await;
    // Never asked for: the derived table reads empty, and nothing was made by reading.
    assert_eq!(
        db.store
            .count_derived(c, GROUPS.table)
            .await
            .expect("count derived"),
        0
    );
    let none = db
        .store
        .export_derived_page(c, &GROUPS, None, 10)
        .await
        .expect("export derived");
    assert!(none.is_empty());
    assert!(db.columns(GROUPED.table).await.is_empty());
    assert!(db.columns(GROUPS.table).await.is_empty());

    // The first page makes the record table and the derived table, then fills both.
    let state = SyncState::default();
    let page = vec![item("a", "x", 1), item("b", "x", 5), item("c", "y", 2)];
    let o = db
        .store
        .commit_page(PageBatch {
            connection_id: c,
            stream: &GROUPED,
            records: page,
            state: &state,
            refresh_derived: true,
            at: Timestamp(T0),
        })
        .await
        .expect("commit_page");
    assert_eq!(o.inserted, 3);
    assert_eq!(db.columns(GROUPED.table).await.len(), 12);
    let derived: Vec<String> = db
        .columns(GROUPS.table)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(derived, ["connection_id", "id", "n", "top", "updated_at"]);
    let groups = db
        .store
        .export_derived_page(c, &GROUPS, None, 10)
        .await
        .expect("export derived");
    let got: Vec<(&str, &[Value])> = groups
        .iter()
        .map(|g| (g.id.as_str(), g.values.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            ("x", &[Value::Int(2), Value::Int(5)][..]),
            ("y", &[Value::Int(1), Value::Int(2)][..])
        ]
    );

    // Deleting a connection skips the tables of streams it never used.
    db.store
        .delete_connection(c, &[GROUPED.table, GROUPS.table, "rest_never_made"])
        .await
        .expect("delete");
    assert_eq!(
        db.store
            .count_derived(c, GROUPS.table)
            .await
            .expect("count"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_makes_nothing_and_reads_missing_tables_as_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("inlet.db").display());
    let c = {
        let store = inlet_store::open(&url).await.expect("open");
        store.ensure_tables(&[ITEMS]).await.expect("make items");
        let new = NewConnection {
            name: "api".into(),
            workspace: "acme".into(),
            provider: "rest".into(),
            config: serde_json::json!({}),
            credentials: vec![1],
        };
        store
            .create_connection(&new, Timestamp(T0))
            .await
            .expect("create connection")
            .id
    };
    let ro = inlet_store::open_read_only(&url).await.expect("read-only");
    assert_eq!(ro.count_live(c, &GROUPED).await.expect("count"), 0);
    let rows = ro
        .export_page(c, &GROUPED, None, 10, true)
        .await
        .expect("export");
    assert!(rows.is_empty());
    assert_eq!(ro.count_derived(c, GROUPS.table).await.expect("count"), 0);
    ro.ensure_tables(&[GROUPED, ITEMS])
        .await
        .expect("checks what is there, makes nothing");
    let fewer = StreamSpec {
        columns: &ITEMS.columns[..2],
        ..ITEMS
    };
    assert!(matches!(
        ro.ensure_tables(&[fewer]).await,
        Err(StoreError::Schema(_))
    ));
    drop(ro);
    let store = inlet_store::open(&url).await.expect("open");
    assert_eq!(store.count_live(c, &ITEMS).await.expect("count"), 0);
    let c2 = rusqlite::Connection::open(dir.path().join("inlet.db")).expect("raw");
    let made: i64 = c2
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'rest_grouped'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(made, 0, "the read-only store made no table");
}
