//! The Store contract for reconcile, snapshot imports and purge, on SQLite AND
//! PostgreSQL: staged ids, one transaction, the safety valve, scope, derived rows.

#[allow(dead_code)] // shared with the main contract suite
#[macro_use]
mod harness;

use harness::Db;
use inlet_connectors::reddit::streams::{CONVERSATIONS, STREAMS};
use inlet_core::{
    ColType, NewConnection, PageBatch, ReconcileBatch, Record, SnapshotBatch, SnapshotSource,
    StoreError, StreamSpec, SyncState, Timestamp, Value,
};

const INBOX: &StreamSpec = &STREAMS[0];
const SENT: &StreamSpec = &STREAMS[1];
const T0: i64 = 1_718_800_000_123;

fn msg(id: &str, folder: &str, conv: &str, secs: i64) -> Record {
    let mut values = vec![Value::Null; INBOX.columns.len()];
    let mut set = |name: &str, v: Value| {
        let i = INBOX.column_index(name).expect("column");
        values[i] = v;
    };
    set("kind", Value::Text("t4".into()));
    set("folder", Value::Text(folder.into()));
    set("conversation_id", Value::Text(conv.into()));
    set("author", Value::Text("a".into()));
    set("created_utc", Value::Time(Timestamp::from_secs(secs)));
    set("unread", Value::Bool(false));
    Record::new(id, values, format!(r#"{{"id": "{id}"}}"#))
}

async fn connection(db: &Db) -> i64 {
    let new = NewConnection {
        name: "c".into(),
        workspace: "w".into(),
        provider: "reddit".into(),
        config: serde_json::json!({}),
        credentials: vec![1],
    };
    db.store
        .create_connection(&new, Timestamp(T0))
        .await
        .expect("create")
        .id
}

async fn commit(db: &Db, conn: i64, spec: &StreamSpec, records: Vec<Record>) {
    let state = SyncState::default();
    db.store
        .commit_page(PageBatch {
            connection_id: conn,
            stream: spec,
            records,
            state: &state,
            refresh_derived: true,
            at: Timestamp(T0),
        })
        .await
        .expect("commit");
}

async fn reconcile(
    db: &Db,
    conn: i64,
    spec: &StreamSpec,
    ids: &[&str],
    max_share: Option<f64>,
    at: i64,
) -> inlet_core::ReconcileOutcome {
    let token = format!("{conn}:{}", spec.name);
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    // Staged in two calls, with a repeat: duplicates are ignored.
    let (a, b) = ids.split_at(ids.len() / 2);
    db.store.stage_ids(&token, a).await.expect("stage");
    db.store.stage_ids(&token, b).await.expect("stage");
    db.store.stage_ids(&token, a).await.expect("stage again");
    let state = SyncState {
        last_reconciled_at: Some(Timestamp(at)),
        ..SyncState::default()
    };
    db.store
        .apply_reconcile(ReconcileBatch {
            connection_id: conn,
            stream: spec,
            token: &token,
            max_share,
            state: &state,
            at: Timestamp(at),
        })
        .await
        .expect("apply")
}

store_test!(reconcile_diff_valve_scope_and_derived);
async fn reconcile_diff_valve_scope_and_derived(db: Db) {
    let c = connection(&db).await;
    commit(
        &db,
        c,
        INBOX,
        vec![
            msg("t4_1", "inbox", "t4_1", 100),
            msg("t4_2", "inbox", "t4_1", 200),
            msg("t4_3", "inbox", "t4_3", 300),
            msg("t4_4", "inbox", "t4_4", 400),
        ],
    )
    .await;
    commit(&db, c, SENT, vec![msg("t4_9", "sent", "t4_3", 350)]).await;
    assert_eq!(
        db.store
            .count_derived(c, CONVERSATIONS.table)
            .await
            .expect("n"),
        3
    );

    // 3 of 4 would go: the valve (50%) refuses, nothing changes, the staged ids are gone.
    let out = reconcile(&db, c, INBOX, &["t4_1"], Some(0.5), T0 + 1).await;
    assert!(out.refused);
    assert_eq!((out.live_before, out.tombstoned), (4, 3));
    assert_eq!(db.store.count_live(c, INBOX).await.expect("n"), 4);
    let st = db.store.sync_state(c, "inbox").await.expect("state");
    assert_eq!(
        st.last_reconciled_at, None,
        "a refused reconcile writes no state"
    );

    // 2 of 4 is not more than half: applied, within scope (sent untouched).
    let out = reconcile(
        &db,
        c,
        INBOX,
        &["t4_1", "t4_2", "t1_new"],
        Some(0.5),
        T0 + 2,
    )
    .await;
    assert!(!out.refused);
    assert_eq!((out.tombstoned, out.revived), (2, 0));
    assert_eq!(db.store.count_live(c, INBOX).await.expect("n"), 2);
    assert_eq!(db.store.count_live(c, SENT).await.expect("n"), 1);
    let st = db.store.sync_state(c, "inbox").await.expect("state");
    assert_eq!(st.last_reconciled_at, Some(Timestamp(T0 + 2)));
    // t4_4's conversation is gone; t4_3's lives on through the sent message.
    assert_eq!(
        db.store
            .count_derived(c, CONVERSATIONS.table)
            .await
            .expect("n"),
        2
    );
    assert!(db.conversation(c, "t4_4").await.is_none());
    assert_eq!(
        db.conversation(c, "t4_3").await.map(|v| v.message_count),
        Some(1)
    );

    // Back in the listing: revived, conversation restored.
    let out = reconcile(&db, c, INBOX, &["t4_1", "t4_2", "t4_4"], None, T0 + 3).await;
    assert_eq!(
        (out.tombstoned, out.revived),
        (0, 1),
        "t4_3 stays tombstoned"
    );
    assert_eq!(
        db.conversation(c, "t4_4").await.map(|v| v.message_count),
        Some(1)
    );
    let rows = db
        .store
        .export_page(c, INBOX, None, 10, true)
        .await
        .expect("export");
    let t3 = rows.iter().find(|r| r.id == "t4_3").expect("kept");
    assert_eq!(
        t3.deleted_at,
        Some(Timestamp(T0 + 2)),
        "tombstone time kept"
    );

    // Forced: an empty listing removes everything live.
    let out = reconcile(&db, c, INBOX, &[], None, T0 + 4).await;
    assert_eq!((out.tombstoned, out.refused), (3, false));
    assert_eq!(db.store.count_live(c, INBOX).await.expect("n"), 0);

    // Purge: only tombstones older than the cut-off, only in scope.
    let purged = db
        .store
        .purge_tombstones(c, INBOX, Timestamp(T0 + 3))
        .await
        .expect("purge");
    assert_eq!(purged, 1, "t4_3 (tombstoned at T0+2)");
    let purged = db
        .store
        .purge_tombstones(c, SENT, Timestamp(T0 + 100))
        .await
        .expect("purge");
    assert_eq!(purged, 0, "sent has no tombstones");
    let rows = db
        .store
        .export_page(c, INBOX, None, 10, true)
        .await
        .expect("export");
    assert_eq!(rows.len(), 3);
}

store_test!(import_snapshot_is_one_transaction);
async fn import_snapshot_is_one_transaction(db: Db) {
    let c = connection(&db).await;
    let spec = &STREAMS[2]; // saved: no scope, no derived table
    let item = |id: &str, score: i64| {
        let mut values = vec![Value::Null; spec.columns.len()];
        values[spec.column_index("score").expect("score")] = Value::Int(score);
        Record::new(id, values, format!(r#"{{"id": "{id}", "score": {score}}}"#))
    };
    let import = |records: Vec<Record>, max_share: Option<f64>| {
        let store = db.store.clone();
        async move {
            let state = SyncState::default();
            // Two chunks, so the import spans several reads of its source.
            let mut records = records;
            let tail = records.split_off(records.len() / 2);
            store
                .import_snapshot(
                    SnapshotBatch {
                        connection_id: c,
                        stream: spec,
                        state: &state,
                        at: Timestamp(T0),
                        max_share,
                    },
                    Box::new(vec![records, tail].into_iter()),
                )
                .await
                .expect("import")
        }
    };
    let (p, r) = import(
        (0..10).map(|i| item(&format!("t3_{i}"), i)).collect(),
        Some(0.5),
    )
    .await;
    assert_eq!((p.inserted, r.tombstoned, r.refused), (10, 0, false));
    // Drop 6 of 10: refused whole (no insert of the new one either).
    let next: Vec<Record> = (6..11).map(|i| item(&format!("t3_{i}"), i)).collect();
    let (p, r) = import(next.clone(), Some(0.5)).await;
    assert!(r.refused);
    assert_eq!((p.inserted, r.tombstoned, r.live_before), (0, 6, 10));
    assert_eq!(db.store.count_live(c, spec).await.expect("n"), 10);
    // Forced: 6 tombstoned, 1 new, an edit rewritten.
    let mut edited = next;
    edited[0] = item("t3_6", 66);
    let (p, r) = import(edited, None).await;
    assert_eq!(
        (p.inserted, p.updated, p.unchanged, r.tombstoned),
        (1, 1, 3, 6)
    );
    // Back again: revived, not duplicated.
    let (p, r) = import(vec![item("t3_0", 0), item("t3_6", 66)], None).await;
    assert_eq!(
        (p.inserted, p.updated, r.revived, r.tombstoned),
        (0, 1, 1, 4)
    );
    assert_eq!(db.store.count_live(c, spec).await.expect("n"), 2);
}

/// A source that hands out its chunks, then fails.
struct FailingSource(std::vec::IntoIter<Vec<Record>>);

#[async_trait::async_trait]
impl SnapshotSource for FailingSource {
    async fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, StoreError> {
        match self.0.next() {
            Some(c) => Ok(Some(c)),
            None => Err(StoreError::Db("the file went away".into())),
        }
    }
}

store_test!(import_snapshot_source_failure_changes_nothing);
async fn import_snapshot_source_failure_changes_nothing(db: Db) {
    let c = connection(&db).await;
    let spec = &STREAMS[2];
    let item = |id: &str| {
        Record::new(
            id,
            vec![Value::Null; spec.columns.len()],
            format!(r#"{{"id": "{id}"}}"#),
        )
    };
    let state = SyncState::default();
    let batch = |max_share| SnapshotBatch {
        connection_id: c,
        stream: spec,
        state: &state,
        at: Timestamp(T0),
        max_share,
    };
    let first: Vec<Record> = (0..4).map(|i| item(&format!("t3_{i}"))).collect();
    db.store
        .import_snapshot(batch(None), Box::new(vec![first].into_iter()))
        .await
        .expect("import");
    // Two chunks upserted (one new id), then the source fails: all of it rolls back.
    let chunks = vec![vec![item("t3_0")], vec![item("t3_9")]];
    let e = db
        .store
        .import_snapshot(batch(None), Box::new(FailingSource(chunks.into_iter())))
        .await
        .expect_err("source failed");
    assert!(e.to_string().contains("the file went away"), "{e}");
    assert_eq!(db.store.count_live(c, spec).await.expect("n"), 4);
    let rows = db
        .store
        .export_page(c, spec, None, 10, true)
        .await
        .expect("export");
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["t3_0", "t3_1", "t3_2", "t3_3"], "t3_9 rolled back");
}

store_test!(new_tables_match_their_specs);
async fn new_tables_match_their_specs(db: Db) {
    let ty = |t: ColType| match (db.is_pg(), t) {
        (true, ColType::Text) => "text",
        (true, ColType::Int) => "bigint",
        (true, ColType::Float) => "double precision",
        (true, ColType::Bool) => "boolean",
        (true, ColType::Time) => "timestamp with time zone",
        (false, ColType::Text | ColType::Time) => "TEXT",
        (false, ColType::Int | ColType::Bool) => "INTEGER",
        (false, ColType::Float) => "REAL",
    };
    let (int, text, json, blob) = if db.is_pg() {
        ("bigint", "text", "jsonb", "bytea")
    } else {
        ("INTEGER", "TEXT", "TEXT", "BLOB")
    };
    let time = ty(ColType::Time);
    let specs = inlet_connectors::github::streams::STREAMS
        .iter()
        .chain(&inlet_connectors::tiktok::STREAMS);
    for spec in specs {
        let mut want = vec![
            ("connection_id".to_string(), int.to_string()),
            ("id".into(), text.into()),
        ];
        want.extend(
            spec.columns
                .iter()
                .map(|c| (c.name.to_string(), ty(c.ty).to_string())),
        );
        for (c, t) in [
            ("raw", json),
            ("content_hash", blob),
            ("first_seen_at", time),
            ("updated_at", time),
            ("deleted_at", time),
        ] {
            want.push((c.into(), t.into()));
        }
        assert_eq!(
            db.columns(spec.table).await,
            want,
            "table {} drifted",
            spec.table
        );
    }
}

store_test!(stream_validators_round_trip);
async fn stream_validators_round_trip(db: Db) {
    let c = connection(&db).await;
    let s = &db.store;
    assert_eq!(s.stream_validator(c, "starred").await.expect("get"), None);
    s.put_stream_validator(c, "starred", Some("W/\"a\""))
        .await
        .expect("put");
    s.put_stream_validator(c, "starred", Some("W/\"b\""))
        .await
        .expect("replace");
    s.put_stream_validator(c, "other", Some("x"))
        .await
        .expect("put");
    assert_eq!(
        s.stream_validator(c, "starred")
            .await
            .expect("get")
            .as_deref(),
        Some("W/\"b\"")
    );
    s.put_stream_validator(c, "starred", None)
        .await
        .expect("clear");
    assert_eq!(s.stream_validator(c, "starred").await.expect("get"), None);
    assert_eq!(
        s.stream_validator(c, "other")
            .await
            .expect("get")
            .as_deref(),
        Some("x")
    );
}
