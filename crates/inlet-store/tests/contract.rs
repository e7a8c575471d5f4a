//! The Store contract: every test runs on a fresh SQLite file AND a fresh PostgreSQL
//! database (`INLET_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`;
//! each test creates and drops its own `inlet_t_<hex>` database). PostgreSQL being
//! unreachable fails the suite loudly: it never skips.

#[macro_use]
mod harness;

use harness::{Conv, Db};
use inlet_connectors::reddit::streams::{CONVERSATIONS, STREAMS};
use inlet_core::{
    Checkpoint, ColType, ConnectionStatus, NewConnection, PageBatch, Record, RunMode, RunStats,
    RunStatus, StoreError, StreamSpec, StreamStats, SyncState, Timestamp, TombstoneBatch, Trigger,
    Value,
};
use std::collections::BTreeMap;

const INBOX: &StreamSpec = &STREAMS[0];
const SENT: &StreamSpec = &STREAMS[1];
const SAVED: &StreamSpec = &STREAMS[2];
const T0: i64 = 1_718_800_000_123;

/// A record of `spec` with the named columns set (others NULL).
fn rec(spec: &StreamSpec, id: &str, cols: &[(&str, Value)]) -> Record {
    let mut values = vec![Value::Null; spec.columns.len()];
    for (name, v) in cols {
        let i = spec
            .column_index(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        values[i] = v.clone();
    }
    let raw = format!(r#"{{"id": "{id}", "n": {}}}"#, cols.len());
    Record::new(id, values, raw)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// A Reddit message.
fn msg(
    id: &str,
    folder: &str,
    conv: Option<&str>,
    author: &str,
    secs: i64,
    unread: bool,
) -> Record {
    rec(
        INBOX,
        id,
        &[
            ("kind", text("t4")),
            ("folder", text(folder)),
            ("conversation_id", Value::opt_text(conv)),
            ("author", text(author)),
            ("subject", text(&format!("subject of {id}"))),
            ("body", text("hello")),
            ("created_utc", Value::Time(Timestamp::from_secs(secs))),
            ("unread", Value::Bool(unread)),
        ],
    )
}

async fn connection(db: &Db, name: &str) -> i64 {
    let new = NewConnection {
        name: name.into(),
        workspace: "acme".into(),
        provider: "reddit".into(),
        config: serde_json::json!({"user_agent": "inlet-test", "streams": ["inbox"]}),
        credentials: vec![1, 2, 3, 0, 255],
    };
    db.store
        .create_connection(&new, Timestamp(T0))
        .await
        .expect("create connection")
        .id
}

async fn commit(
    db: &Db,
    conn: i64,
    spec: &StreamSpec,
    records: &[Record],
    at: i64,
) -> inlet_core::PageOutcome {
    let state = SyncState {
        cursor: Some(format!("c{at}")),
        ..Default::default()
    };
    let batch = PageBatch {
        connection_id: conn,
        stream: spec,
        records: records.to_vec(),
        state: &state,
        at: Timestamp(at),
        refresh_derived: true,
    };
    db.store.commit_page(batch).await.expect("commit_page")
}

async fn tombstone(db: &Db, conn: i64, spec: &StreamSpec, seen: &[&str], at: i64) -> u64 {
    let seen: Vec<String> = seen.iter().map(|s| s.to_string()).collect();
    let state = SyncState {
        last_reconciled_at: Some(Timestamp(at)),
        ..Default::default()
    };
    let batch = TombstoneBatch {
        window: None,
        connection_id: conn,
        stream: spec,
        seen: &seen,
        state: &state,
        at: Timestamp(at),
        children: None,
    };
    db.store
        .tombstone_missing(batch)
        .await
        .expect("tombstone_missing")
}

async fn export_all(
    db: &Db,
    conn: i64,
    spec: &StreamSpec,
    deleted: bool,
) -> Vec<inlet_core::ExportRow> {
    let mut out: Vec<inlet_core::ExportRow> = vec![];
    loop {
        let after = out.last().map(|r| r.id.clone());
        let page = db
            .store
            .export_page(conn, spec, after.as_deref(), 2, deleted)
            .await
            .expect("export");
        if page.is_empty() {
            return out;
        }
        assert!(page.len() <= 2);
        out.extend(page);
    }
}

store_test!(migrations_are_idempotent_and_checked);
async fn migrations_are_idempotent_and_checked(db: Db) {
    let conn = connection(&db, "keep").await;
    let again = db.reopen().await.expect("second open applies nothing");
    assert!(
        again
            .get_connection("keep")
            .await
            .expect("get")
            .is_some_and(|c| c.id == conn)
    );
    drop(again);
    db.exec("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
        .await;
    let err = db
        .reopen()
        .await
        .err()
        .expect("tampered checksum must fail");
    assert!(
        matches!(&err, StoreError::Schema(m) if m.contains("changed")),
        "{err}"
    );
    let good = inlet_store::SQLITE_MIGRATIONS[0].checksum();
    let good = if db.is_pg() {
        inlet_store::POSTGRES_MIGRATIONS[0].checksum()
    } else {
        good
    };
    db.exec(&format!(
        "UPDATE schema_migrations SET checksum = '{good}' WHERE version = 1"
    ))
    .await;
    db.reopen().await.expect("restored checksum opens");
    db.exec("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (999, 'future', 'x', CURRENT_TIMESTAMP)").await;
    let err = db.reopen().await.err().expect("newer schema must fail");
    assert!(
        matches!(&err, StoreError::Schema(m) if m.contains("999")),
        "{err}"
    );
}

store_test!(classifies_inserts_updates_unchanged);
async fn classifies_inserts_updates_unchanged(db: Db) {
    let c = connection(&db, "r").await;
    let page = vec![
        msg("t4_1", "inbox", Some("t4_1"), "a", 100, true),
        msg("t4_2", "inbox", Some("t4_1"), "b", 200, true),
        msg("t4_3", "inbox", None, "c", 300, false),
    ];
    let o = commit(&db, c, INBOX, &page, T0).await;
    assert_eq!((o.inserted, o.updated, o.unchanged), (3, 0, 0));
    let o = commit(&db, c, INBOX, &page, T0 + 1000).await;
    assert_eq!(
        (o.inserted, o.updated, o.unchanged, o.known()),
        (0, 0, 3, 3)
    );
    assert_eq!((o.derived_inserted, o.derived_updated), (0, 0));
    let mut changed = page.clone();
    changed[1] = msg("t4_2", "inbox", Some("t4_1"), "b", 200, false);
    changed[2] = msg("t4_4", "inbox", None, "d", 400, false);
    let o = commit(&db, c, INBOX, &changed, T0 + 2000).await;
    assert_eq!((o.inserted, o.updated, o.unchanged), (1, 1, 1));
    let rows = export_all(&db, c, INBOX, false).await;
    assert_eq!(
        rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["t4_1", "t4_2", "t4_3", "t4_4"]
    );
    let r2 = &rows[1];
    assert_eq!(r2.values, changed[1].values);
    assert_eq!(r2.content_hash, changed[1].content_hash());
    assert_eq!(
        (r2.first_seen_at, r2.updated_at),
        (Timestamp(T0), Timestamp(T0 + 2000))
    );
    assert_eq!(
        (rows[0].first_seen_at, rows[0].updated_at),
        (Timestamp(T0), Timestamp(T0))
    );
    assert_eq!(
        db.store.sync_state(c, "inbox").await.expect("state").cursor,
        Some(format!("c{}", T0 + 2000))
    );
}

store_test!(revives_tombstoned_rows);
async fn revives_tombstoned_rows(db: Db) {
    let c = connection(&db, "r").await;
    let page = vec![msg("t4_1", "inbox", Some("t4_1"), "a", 100, true)];
    commit(&db, c, INBOX, &page, T0).await;
    assert_eq!(tombstone(&db, c, INBOX, &[], T0 + 1).await, 1);
    assert_eq!(db.store.count_live(c, INBOX).await.expect("count"), 0);
    assert_eq!(
        db.store
            .count_derived(c, CONVERSATIONS.table)
            .await
            .expect("count"),
        0
    );
    let dead = export_all(&db, c, INBOX, true).await;
    assert_eq!(dead[0].deleted_at, Some(Timestamp(T0 + 1)));
    let o = commit(&db, c, INBOX, &page, T0 + 2).await;
    assert_eq!(
        (o.inserted, o.updated, o.unchanged, o.derived_inserted),
        (0, 1, 0, 1)
    );
    let live = export_all(&db, c, INBOX, false).await;
    assert_eq!(
        (live.len(), live[0].deleted_at, live[0].updated_at),
        (1, None, Timestamp(T0 + 2))
    );
    assert_eq!(live[0].first_seen_at, Timestamp(T0));
}

store_test!(duplicate_ids_in_a_page_last_wins);
async fn duplicate_ids_in_a_page_last_wins(db: Db) {
    let c = connection(&db, "r").await;
    let page = vec![
        msg("t4_1", "inbox", Some("t4_1"), "first", 100, true),
        msg("t4_2", "inbox", Some("t4_1"), "b", 200, true),
        msg("t4_1", "inbox", Some("t4_1"), "last", 100, false),
    ];
    let o = commit(&db, c, INBOX, &page, T0).await;
    assert_eq!((o.inserted, o.updated, o.unchanged), (2, 0, 0));
    let rows = export_all(&db, c, INBOX, false).await;
    assert_eq!(rows[0].values, page[2].values);
    let conv = db.conversation(c, "t4_1").await.expect("conversation");
    assert_eq!(
        (
            conv.message_count,
            conv.unread_count,
            conv.first_author.as_deref()
        ),
        (2, 1, Some("last"))
    );
}

store_test!(deferred_derived_refresh_recomputes_everything);
async fn deferred_derived_refresh_recomputes_everything(db: Db) {
    let c = connection(&db, "r").await;
    let other = connection(&db, "other").await;
    let state = SyncState::default();
    // 12,000 messages in 1,500 conversations, written without derived refresh (as a full
    // pass does), then one ordered recomputation that spans several key chunks.
    let records: Vec<Record> = (0..12_000)
        .map(|i| {
            let conv = format!("t4_c{:05}", i % 1500);
            msg(
                &format!("t4_m{i:05}"),
                "inbox",
                Some(&conv),
                if i % 2 == 0 { "a" } else { "b" },
                1000 + i,
                i % 3 == 0,
            )
        })
        .collect();
    let batch = PageBatch {
        connection_id: c,
        stream: INBOX,
        records,
        state: &state,
        at: Timestamp(T0),
        refresh_derived: false,
    };
    let o = db.store.commit_page(batch).await.expect("commit");
    assert_eq!((o.inserted, o.derived_inserted), (12_000, 0));
    assert_eq!(
        db.store
            .count_derived(c, "reddit_conversations")
            .await
            .expect("count"),
        0
    );
    let (ins, upd) = db
        .store
        .refresh_derived_all(c, INBOX, Timestamp(T0 + 1))
        .await
        .expect("refresh");
    assert_eq!((ins, upd), (1500, 0));
    let conv = db.conversation(c, "t4_c00007").await.expect("conversation");
    assert_eq!((conv.message_count, conv.unread_count), (8, 0));
    let nine = db.conversation(c, "t4_c00009").await.expect("conversation");
    assert_eq!((nine.message_count, nine.unread_count), (8, 8));
    assert_eq!(
        (conv.first, conv.last),
        (
            Timestamp::from_secs(1007),
            Timestamp::from_secs(1000 + 10_507)
        )
    );
    // Idempotent; other connections untouched.
    assert_eq!(
        db.store
            .refresh_derived_all(c, INBOX, Timestamp(T0 + 2))
            .await
            .expect("again"),
        (0, 0)
    );
    assert_eq!(
        db.store
            .refresh_derived_all(other, INBOX, Timestamp(T0 + 2))
            .await
            .expect("other"),
        (0, 0)
    );
    // Orphans go: move every message of conversation 7 elsewhere without a refresh; the
    // recomputation deletes the row left without live messages.
    let moved: Vec<Record> = (0..12_000)
        .filter(|i| i % 1500 == 7)
        .map(|i| {
            msg(
                &format!("t4_m{i:05}"),
                "inbox",
                Some("t4_moved"),
                "a",
                1000 + i,
                false,
            )
        })
        .collect();
    let batch = PageBatch {
        connection_id: c,
        stream: INBOX,
        records: moved,
        state: &state,
        at: Timestamp(T0 + 3),
        refresh_derived: false,
    };
    assert_eq!(
        db.store.commit_page(batch).await.expect("commit").updated,
        8
    );
    let (ins, upd) = db
        .store
        .refresh_derived_all(c, INBOX, Timestamp(T0 + 4))
        .await
        .expect("refresh");
    assert_eq!((ins, upd), (1, 0));
    assert_eq!(db.conversation(c, "t4_c00007").await, None);
    assert_eq!(
        db.conversation(c, "t4_moved")
            .await
            .expect("moved")
            .message_count,
        8
    );
    assert_eq!(
        db.store
            .count_derived(c, "reddit_conversations")
            .await
            .expect("count"),
        1500
    );
}

store_test!(derived_conversations_follow_messages);
async fn derived_conversations_follow_messages(db: Db) {
    let c = connection(&db, "r").await;
    // Ties: t4_a and t4_b share the first time (FirstBy takes the smaller id), t4_c and
    // t4_d share the last time (LastBy takes the larger id).
    let inbox = vec![
        msg("t4_a", "inbox", Some("t4_a"), "alice", 100, true),
        msg("t4_c", "inbox", Some("t4_a"), "carol", 300, true),
        msg("t4_d", "inbox", Some("t4_a"), "dave", 300, false),
        msg("t1_x", "inbox", None, "eve", 50, true),
    ];
    let o = commit(&db, c, INBOX, &inbox, T0).await;
    assert_eq!((o.derived_inserted, o.derived_updated), (1, 0));
    let sent = vec![msg("t4_b", "sent", Some("t4_a"), "me", 100, false)];
    let o = commit(&db, c, SENT, &sent, T0 + 1).await;
    assert_eq!((o.derived_inserted, o.derived_updated), (0, 1));
    let conv = db.conversation(c, "t4_a").await.expect("conversation");
    assert_eq!(
        conv,
        Conv {
            subject: Some("subject of t4_a".into()),
            first_author: Some("alice".into()),
            last_author: Some("dave".into()),
            message_count: 4,
            unread_count: 2,
            first: Timestamp::from_secs(100),
            last: Timestamp::from_secs(300),
            updated_at: Timestamp(T0 + 1),
        }
    );
    assert_eq!(
        db.store
            .count_derived(c, "reddit_conversations")
            .await
            .expect("count"),
        1
    );
    // Unread flip: one derived update; the same page again changes nothing.
    let flip = vec![msg("t4_c", "inbox", Some("t4_a"), "carol", 300, false)];
    let o = commit(&db, c, INBOX, &flip, T0 + 2).await;
    assert_eq!(
        (o.updated, o.derived_inserted, o.derived_updated),
        (1, 0, 1)
    );
    assert_eq!(
        db.conversation(c, "t4_a").await.expect("conv").unread_count,
        1
    );
    let o = commit(&db, c, INBOX, &flip, T0 + 3).await;
    assert_eq!((o.unchanged, o.derived_updated), (1, 0));
    // A message edited to the same aggregates rewrites the message but not the conversation.
    let mut same = flip.clone();
    same[0].raw = r#"{"edited": true}"#.into();
    let o = commit(&db, c, INBOX, &same, T0 + 4).await;
    assert_eq!((o.updated, o.derived_updated), (1, 0));
    assert_eq!(
        db.conversation(c, "t4_a").await.expect("conv").updated_at,
        Timestamp(T0 + 2)
    );
    // Tombstone t4_d: last_author falls back to carol.
    assert_eq!(
        tombstone(&db, c, INBOX, &["t4_a", "t4_c", "t1_x"], T0 + 5).await,
        1
    );
    let conv = db.conversation(c, "t4_a").await.expect("conv");
    assert_eq!(
        (conv.last_author.as_deref(), conv.message_count),
        (Some("carol"), 3)
    );
    // No live message left: the conversation row goes.
    assert_eq!(tombstone(&db, c, INBOX, &[], T0 + 6).await, 3);
    assert_eq!(
        db.conversation(c, "t4_a")
            .await
            .expect("conv")
            .message_count,
        1
    );
    assert_eq!(tombstone(&db, c, SENT, &[], T0 + 7).await, 1);
    assert_eq!(db.conversation(c, "t4_a").await, None);
    assert_eq!(
        db.store
            .count_derived(c, "reddit_conversations")
            .await
            .expect("count"),
        0
    );
}

store_test!(tombstones_respect_scope_and_seen);
async fn tombstones_respect_scope_and_seen(db: Db) {
    let c = connection(&db, "r").await;
    let other = connection(&db, "other").await;
    let inbox = vec![
        msg("t4_1", "inbox", Some("t4_1"), "a", 1, true),
        msg("t4_2", "inbox", Some("t4_2"), "a", 2, true),
    ];
    commit(&db, c, INBOX, &inbox, T0).await;
    commit(&db, other, INBOX, &inbox, T0).await;
    commit(
        &db,
        c,
        SENT,
        &[msg("t4_3", "sent", Some("t4_1"), "me", 3, false)],
        T0,
    )
    .await;
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("t4_x{i}"))
        .chain(["t4_1".to_string()])
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(tombstone(&db, c, INBOX, &refs, T0 + 1).await, 1);
    assert_eq!(db.store.count_live(c, INBOX).await.expect("count"), 1);
    assert_eq!(db.store.count_live(c, SENT).await.expect("count"), 1);
    assert_eq!(db.store.count_live(other, INBOX).await.expect("count"), 2);
    assert_eq!(
        db.store
            .count_derived(c, "reddit_conversations")
            .await
            .expect("count"),
        1
    );
    let state = db.store.sync_state(c, "inbox").await.expect("state");
    assert_eq!(state.last_reconciled_at, Some(Timestamp(T0 + 1)));
    assert_eq!(tombstone(&db, c, INBOX, &refs, T0 + 2).await, 0);
    // A stream without scope.
    let saved = vec![
        rec(SAVED, "t3_1", &[("score", Value::Int(5))]),
        rec(SAVED, "t3_2", &[("over_18", Value::Bool(true))]),
    ];
    let o = commit(&db, c, SAVED, &saved, T0).await;
    assert_eq!((o.inserted, o.derived_inserted), (2, 0));
    assert_eq!(tombstone(&db, c, SAVED, &["t3_2"], T0 + 3).await, 1);
    assert_eq!(db.store.count_live(c, SAVED).await.expect("count"), 1);
}

store_test!(sync_state_round_trips);
async fn sync_state_round_trips(db: Db) {
    let c = connection(&db, "r").await;
    assert_eq!(
        db.store.sync_state(c, "inbox").await.expect("state"),
        SyncState::default()
    );
    let state = SyncState {
        cursor: Some("1718800000".into()),
        checkpoint: Some(Checkpoint {
            mode: RunMode::Full,
            next: Some("t4_zz".into()),
            watermark: Timestamp(T0),
            pages: 7,
            records: 700,
            fetched_all: false,
        }),
        last_sync_at: Some(Timestamp(T0 + 1)),
        last_success_at: Some(Timestamp(-1)),
        sync_count: 42,
        last_reconciled_at: None,
    };
    db.store
        .put_sync_state(c, "inbox", &state)
        .await
        .expect("put");
    assert_eq!(db.store.sync_state(c, "inbox").await.expect("state"), state);
    let cleared = SyncState {
        checkpoint: None,
        ..state.clone()
    };
    db.store
        .put_sync_state(c, "sent", &cleared)
        .await
        .expect("put");
    let all = db.store.sync_states(c).await.expect("states");
    assert_eq!(
        all,
        BTreeMap::from([("inbox".to_string(), state), ("sent".to_string(), cleared)])
    );
    assert!(
        db.store
            .sync_states(c + 100)
            .await
            .expect("states")
            .is_empty()
    );
    let err = db
        .store
        .put_sync_state(c + 100, "inbox", &SyncState::default())
        .await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "{err:?}");
}

store_test!(runs_have_a_lifecycle);
async fn runs_have_a_lifecycle(db: Db) {
    let c = connection(&db, "r").await;
    let c2 = connection(&db, "r2").await;
    let id = db
        .store
        .start_run(c, RunMode::Full, Trigger::Manual, Timestamp(T0))
        .await
        .expect("start");
    let runs = db.store.list_runs(Some(c), 10).await.expect("list");
    assert_eq!(
        (runs.len(), runs[0].id, runs[0].status),
        (1, id, RunStatus::Running)
    );
    assert_eq!(
        (runs[0].finished_at, runs[0].stats, runs[0].streams.len()),
        (None, RunStats::default(), 0)
    );
    let stats = RunStats {
        fetched: 10,
        inserted: 4,
        updated: 3,
        unchanged: 3,
        deleted: 1,
        pages: 2,
        requests: 5,
        retries: 1,
        rate_limit_wait_ms: 1500,
        items_skipped_with_error: 1,
        derived_inserted: 2,
        derived_updated: 9,
        quota_remaining: Some(512),
        attachments_fetched: 6,
        attachments_failed: 2,
        attachments_skipped: 1,
    };
    let streams = BTreeMap::from([(
        "inbox".to_string(),
        StreamStats {
            stats,
            resumed: true,
            complete_listing: true,
            error: Some("boom ✗".into()),
            ..Default::default()
        },
    )]);
    db.store
        .update_run(
            id,
            RunStatus::Partial,
            &stats,
            &streams,
            Some("one stream failed"),
            Some(Timestamp(T0 + 2500)),
        )
        .await
        .expect("update");
    let run = &db.store.list_runs(Some(c), 10).await.expect("list")[0];
    assert_eq!(
        (run.status, run.stats, &run.streams),
        (RunStatus::Partial, stats, &streams)
    );
    assert_eq!(
        (run.error.as_deref(), run.finished_at, run.duration_ms()),
        (Some("one stream failed"), Some(Timestamp(T0 + 2500)), 2500)
    );
    assert_eq!(
        (run.mode, run.trigger, run.started_at),
        (RunMode::Full, Trigger::Manual, Timestamp(T0))
    );
    let id2 = db
        .store
        .start_run(c2, RunMode::Delta, Trigger::Schedule, Timestamp(T0 + 1))
        .await
        .expect("start");
    let id3 = db
        .store
        .start_run(c, RunMode::Delta, Trigger::Api, Timestamp(T0 + 2))
        .await
        .expect("start");
    let all: Vec<i64> = db
        .store
        .list_runs(None, 10)
        .await
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all, [id3, id2, id]);
    let limited: Vec<i64> = db
        .store
        .list_runs(Some(c), 1)
        .await
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(limited, [id3]);
    let err = db
        .store
        .update_run(id3 + 100, RunStatus::Failed, &stats, &streams, None, None)
        .await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "{err:?}");
}

store_test!(connections_crud);
async fn connections_crud(db: Db) {
    let id = connection(&db, "reddit-me").await;
    let c = db
        .store
        .get_connection("reddit-me")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (c.id, c.workspace.as_str(), c.provider.as_str(), c.status),
        (id, "acme", "reddit", ConnectionStatus::Active)
    );
    assert_eq!(
        (c.credentials.as_slice(), c.created_at, c.updated_at),
        (&[1u8, 2, 3, 0, 255][..], Timestamp(T0), Timestamp(T0))
    );
    assert_eq!(c.config["streams"][0], "inbox");
    assert_eq!(
        db.store
            .get_connection(&id.to_string())
            .await
            .expect("get")
            .map(|c| c.name),
        Some("reddit-me".into())
    );
    assert!(
        db.store
            .get_connection("nope")
            .await
            .expect("get")
            .is_none()
    );
    assert!(db.store.get_connection("999").await.expect("get").is_none());
    // A name that looks like an id wins over the id.
    let numeric = connection(&db, &id.to_string()).await;
    assert_eq!(
        db.store
            .get_connection(&id.to_string())
            .await
            .expect("get")
            .map(|c| c.id),
        Some(numeric)
    );
    let new = NewConnection {
        name: "reddit-me".into(),
        workspace: "w".into(),
        provider: "reddit".into(),
        config: serde_json::json!({}),
        credentials: vec![],
    };
    let err = db.store.create_connection(&new, Timestamp(T0)).await;
    assert!(
        matches!(&err, Err(StoreError::DuplicateConnection(n)) if n == "reddit-me"),
        "{err:?}"
    );
    db.store
        .set_connection_status(
            id,
            ConnectionStatus::NeedsReauth,
            Some("token revoked"),
            Timestamp(T0 + 5),
        )
        .await
        .expect("status");
    db.store
        .set_credentials(id, &[9, 9], Timestamp(T0 + 6))
        .await
        .expect("creds");
    let c = db
        .store
        .get_connection("reddit-me")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (c.status, c.status_detail.as_deref()),
        (ConnectionStatus::NeedsReauth, Some("token revoked"))
    );
    assert_eq!(
        (c.credentials, c.updated_at),
        (vec![9, 9], Timestamp(T0 + 6))
    );
    db.store
        .set_connection_status(id, ConnectionStatus::Active, None, Timestamp(T0 + 7))
        .await
        .expect("status");
    assert_eq!(
        db.store
            .get_connection("reddit-me")
            .await
            .expect("get")
            .and_then(|c| c.status_detail),
        None
    );
    let names: Vec<String> = db
        .store
        .list_connections()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["reddit-me".to_string(), id.to_string()]);
    let missing = db
        .store
        .set_connection_status(999, ConnectionStatus::Paused, None, Timestamp(T0))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let missing = db.store.set_credentials(999, &[], Timestamp(T0)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

store_test!(export_pages_by_id);
async fn export_pages_by_id(db: Db) {
    let c = connection(&db, "r").await;
    let page: Vec<Record> = (0..5)
        .map(|i| msg(&format!("t4_{i}"), "inbox", None, "a", i, false))
        .collect();
    commit(&db, c, INBOX, &page, T0).await;
    commit(
        &db,
        c,
        SENT,
        &[msg("t4_s", "sent", None, "me", 9, false)],
        T0,
    )
    .await;
    assert_eq!(
        tombstone(&db, c, INBOX, &["t4_0", "t4_1", "t4_3", "t4_4"], T0 + 1).await,
        1
    );
    let live: Vec<String> = export_all(&db, c, INBOX, false)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(live, ["t4_0", "t4_1", "t4_3", "t4_4"]);
    let all = export_all(&db, c, INBOX, true).await;
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["t4_0", "t4_1", "t4_2", "t4_3", "t4_4"]
    );
    assert_eq!(all[2].deleted_at, Some(Timestamp(T0 + 1)));
    for (row, rec) in all.iter().zip(&page) {
        assert_eq!(
            (&row.values, row.content_hash),
            (&rec.values, rec.content_hash())
        );
    }
    let after = db
        .store
        .export_page(c, INBOX, Some("t4_3"), 10, true)
        .await
        .expect("export");
    assert_eq!(after.len(), 1);
    let none = db
        .store
        .export_page(c + 1, INBOX, None, 10, true)
        .await
        .expect("export");
    assert!(none.is_empty());
}

store_test!(specs_match_the_schema);
async fn specs_match_the_schema(db: Db) {
    let (int, text) = if db.is_pg() {
        ("bigint", "text")
    } else {
        ("INTEGER", "TEXT")
    };
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
    let time = ty(ColType::Time);
    let (json, blob) = if db.is_pg() {
        ("jsonb", "bytea")
    } else {
        ("TEXT", "BLOB")
    };
    for spec in &STREAMS {
        let mut want = vec![("connection_id".to_string(), int), ("id".into(), text)];
        want.extend(spec.columns.iter().map(|c| (c.name.to_string(), ty(c.ty))));
        want.extend([
            ("raw".into(), json),
            ("content_hash".into(), blob),
            ("first_seen_at".into(), time),
            ("updated_at".into(), time),
            ("deleted_at".into(), time),
        ]);
        assert_eq!(
            db.columns(spec.table).await,
            owned(want),
            "table {} drifted from its StreamSpec",
            spec.table
        );
    }
    let mut want = vec![("connection_id".to_string(), int), ("id".into(), text)];
    want.extend(
        CONVERSATIONS
            .columns
            .iter()
            .map(|c| (c.column.name.to_string(), ty(c.column.ty))),
    );
    want.push(("updated_at".into(), time));
    assert_eq!(
        db.columns(CONVERSATIONS.table).await,
        owned(want),
        "derived table drifted from its spec"
    );
}

fn owned(v: Vec<(String, &str)>) -> Vec<(String, String)> {
    v.into_iter().map(|(a, b)| (a, b.to_string())).collect()
}

store_test!(text_and_time_round_trip_exactly);
async fn text_and_time_round_trip_exactly(db: Db) {
    let c = connection(&db, "r").await;
    let times = [
        Timestamp(T0),
        Timestamp(0),
        Timestamp(-1),
        Timestamp(253_402_300_799_999),
        Timestamp(1),
    ];
    let bodies = [
        "emoji 🎉👩‍👩‍👧 ✓",
        "日本語のテキスト",
        "quotes ' \" \\ and\nnewlines\ttabs",
        "",
        "Ünïcödé ∑ 𝄞",
    ];
    let page: Vec<Record> = times
        .iter()
        .zip(bodies)
        .enumerate()
        .map(|(i, (t, b))| {
            let mut r = rec(
                INBOX,
                &format!("id_{i}_é"),
                &[
                    ("folder", text("inbox")),
                    ("body", text(b)),
                    ("created_utc", Value::Time(*t)),
                    ("unread", Value::Bool(i.is_multiple_of(2))),
                ],
            );
            r.raw = serde_json::json!({"body": b, "i": i}).to_string();
            r
        })
        .collect();
    commit(&db, c, INBOX, &page, T0).await;
    let saved = vec![rec(
        SAVED,
        "t3_f",
        &[
            ("score", Value::Int(i64::MIN)),
            ("num_comments", Value::Int(i64::MAX)),
            ("over_18", Value::Bool(false)),
        ],
    )];
    commit(&db, c, SAVED, &saved, T0).await;
    let rows = export_all(&db, c, INBOX, true).await;
    assert_eq!(rows.len(), page.len());
    for (row, rec) in rows.iter().zip(&page) {
        assert_eq!(
            (&row.id, &row.values, row.content_hash),
            (&rec.id, &rec.values, rec.content_hash())
        );
        let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
        assert_eq!(parse(&row.raw), parse(&rec.raw));
        if !db.is_pg() {
            assert_eq!(row.raw, rec.raw, "SQLite keeps raw byte for byte");
        }
    }
    let rows = export_all(&db, c, SAVED, true).await;
    assert_eq!(rows[0].values, saved[0].values);
    assert_eq!(
        commit(&db, c, INBOX, &page, T0 + 9).await.unchanged,
        page.len() as u64
    );
}

store_test!(page_for_unknown_connection_is_rejected);
async fn page_for_unknown_connection_is_rejected(db: Db) {
    let state = SyncState::default();
    let records = [msg("t4_1", "inbox", Some("t4_1"), "a", 1, true)];
    let batch = PageBatch {
        connection_id: 12345,
        stream: INBOX,
        records: records.to_vec(),
        state: &state,
        at: Timestamp(T0),
        refresh_derived: true,
    };
    let err = db.store.commit_page(batch).await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "{err:?}");
    let bad = [Record::new("x", vec![Value::Int(1)], "{}".into())];
    let c = connection(&db, "r").await;
    let batch = PageBatch {
        connection_id: c,
        stream: INBOX,
        records: bad.to_vec(),
        state: &state,
        at: Timestamp(T0),
        refresh_derived: true,
    };
    assert!(db.store.commit_page(batch).await.is_err());
    assert_eq!(db.store.count_live(c, INBOX).await.expect("count"), 0);
}

#[tokio::test]
async fn unsupported_urls_fail_and_create_nothing() {
    for url in ["bad://x", "mysql://x", "bad:x"] {
        let err = inlet_store::open(url).await.err().expect("must fail");
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("unsupported")),
            "{err}"
        );
        assert!(!std::path::Path::new("bad:").exists() && !std::path::Path::new("x").exists());
        assert!(!std::path::Path::new("mysql:").exists());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no/such/dir/inlet.db");
    let err = inlet_store::open(&format!("sqlite://{}", missing.display()))
        .await
        .err()
        .expect("must fail");
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("does not exist")),
        "{err}"
    );
    assert!(!dir.path().join("no").exists(), "never creates directories");
    let path = dir.path().join("plain.db");
    let store = inlet_store::open(path.to_str().expect("utf-8"))
        .await
        .expect("plain path opens");
    assert_eq!(
        (store.backend(), store.location()),
        ("sqlite", path.display().to_string())
    );
}

#[tokio::test]
async fn unreachable_postgres_names_host_and_hides_password() {
    let err = inlet_store::open("postgres://u:sekret@127.0.0.1:1/db")
        .await
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(
        matches!(err, StoreError::Unavailable(_)) && msg.contains("127.0.0.1:1"),
        "{msg}"
    );
    assert!(!msg.contains("sekret"), "{msg}");
    assert_eq!(
        inlet_store::redact_url("postgres://u:sekret@h:5/d"),
        "postgres://u:***@h:5/d"
    );
}

store_test!(attachments_are_recorded_once_and_updated);
async fn attachments_are_recorded_once_and_updated(db: Db) {
    use inlet_core::{AttachmentLink, AttachmentStatus, AttachmentUpdate};
    let c = connection(&db, "att").await;
    let other = connection(&db, "att-other").await;
    let link = |r: &str, u: &str| AttachmentLink {
        record_id: r.into(),
        url: u.into(),
    };
    let png = "https://i.redd.it/abc.png";
    let preview = "https://preview.redd.it/x.png?width=640&format=png&auto=webp&s=ff";
    let links = vec![link("t4_1", png), link("t4_1", preview), link("t4_2", png)];
    let n = db
        .store
        .add_attachments(c, "inbox", &links, Timestamp(T0))
        .await
        .expect("add");
    assert_eq!(n, 3);
    // The same links again (a replayed page) add nothing and change nothing.
    let again = db
        .store
        .add_attachments(c, "inbox", &links[..2], Timestamp(T0 + 5))
        .await
        .expect("add again");
    assert_eq!(again, 0);
    assert_eq!(
        db.store
            .add_attachments(other, "sent", &[link("t4_1", png)], Timestamp(T0))
            .await
            .expect("other connection"),
        1
    );
    let all = db
        .store
        .list_attachments(Some(c), None, 0, 100)
        .await
        .expect("list");
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let a = &all[1];
    assert_eq!(
        (
            a.connection_id,
            a.stream.as_str(),
            a.record_id.as_str(),
            a.url.as_str()
        ),
        (c, "inbox", "t4_1", preview)
    );
    assert_eq!(
        (
            a.status,
            a.attempts,
            a.hash.clone(),
            a.first_seen_at,
            a.updated_at
        ),
        (
            AttachmentStatus::Pending,
            0,
            None,
            Timestamp(T0),
            Timestamp(T0)
        )
    );
    // Keyset paging by id.
    let page = db
        .store
        .list_attachments(Some(c), None, all[0].id, 1)
        .await
        .expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, all[1].id);

    let hash = "ab".repeat(32);
    let done = AttachmentUpdate {
        status: AttachmentStatus::Done,
        hash: Some(hash.clone()),
        size: Some(1234),
        content_type: Some("image/png".into()),
        last_error: None,
        at: Timestamp(T0 + 100),
    };
    db.store
        .update_attachment(all[0].id, &done)
        .await
        .expect("done");
    let failed = AttachmentUpdate {
        status: AttachmentStatus::Failed,
        hash: None,
        size: None,
        content_type: None,
        last_error: Some("HTTP 404: not found ✗".into()),
        at: Timestamp(T0 + 100),
    };
    db.store
        .update_attachment(all[1].id, &failed)
        .await
        .expect("failed");
    db.store
        .update_attachment(all[1].id, &failed)
        .await
        .expect("failed twice");
    let missing = db.store.update_attachment(999_999, &failed).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    let failed_rows = db
        .store
        .list_attachments(Some(c), Some(AttachmentStatus::Failed), 0, 100)
        .await
        .expect("failed");
    assert_eq!(failed_rows.len(), 1);
    let f = &failed_rows[0];
    assert_eq!(
        (f.attempts, f.last_error.as_deref(), f.updated_at),
        (2, Some("HTTP 404: not found ✗"), Timestamp(T0 + 100))
    );
    let d = &db
        .store
        .list_attachments(Some(c), Some(AttachmentStatus::Done), 0, 100)
        .await
        .expect("done")[0];
    assert_eq!(
        (
            d.hash.as_deref(),
            d.size,
            d.content_type.as_deref(),
            d.attempts
        ),
        (Some(hash.as_str()), Some(1234), Some("image/png"), 1)
    );
    // A done link seen again stays done.
    db.store
        .add_attachments(c, "inbox", &links[..1], Timestamp(T0 + 200))
        .await
        .expect("add done again");
    let counts = db.store.count_attachments(Some(c)).await.expect("count");
    assert_eq!(
        counts,
        BTreeMap::from([
            (AttachmentStatus::Pending, 1),
            (AttachmentStatus::Done, 1),
            (AttachmentStatus::Failed, 1),
        ])
    );
    let everywhere = db.store.count_attachments(None).await.expect("count all");
    assert_eq!(everywhere.get(&AttachmentStatus::Pending), Some(&2));
    assert_eq!(
        db.store
            .list_attachments(None, Some(AttachmentStatus::Pending), 0, 100)
            .await
            .expect("pending everywhere")
            .len(),
        2
    );
}

store_test!(concurrent_commits_of_the_same_new_records);
/// Two syncs of one connection without a lease (two processes: two store connections)
/// commit the same new records at the same moment: both commits succeed — no duplicate
/// key error from the bulk insert — and each record is stored once.
async fn concurrent_commits_of_the_same_new_records(db: Db) {
    let c = connection(&db, "r").await;
    let other = db.reopen().await.expect("a second connection");
    for round in 0..5i64 {
        let conv = format!("t4_{round}_0");
        let page: Vec<Record> = (0..1000i64)
            .map(|i| {
                msg(
                    &format!("t4_{round}_{i}"),
                    "inbox",
                    Some(&conv),
                    "a",
                    100 + i,
                    false,
                )
            })
            .collect();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let tasks = [db.store.clone(), other.clone()].map(|store| {
            let (page, barrier) = (page.clone(), barrier.clone());
            tokio::spawn(async move {
                let state = SyncState::default();
                barrier.wait().await;
                store
                    .commit_page(PageBatch {
                        connection_id: c,
                        stream: INBOX,
                        records: page,
                        state: &state,
                        at: Timestamp(T0 + round),
                        refresh_derived: true,
                    })
                    .await
            })
        });
        for t in tasks {
            if let Err(e) = t.await.expect("join") {
                panic!("round {round}: {e}");
            }
        }
        assert_eq!(
            db.store.count_live(c, INBOX).await.expect("count") as i64,
            (round + 1) * 1000,
            "round {round}"
        );
    }
    let rows = export_all(&db, c, INBOX, false).await;
    assert_eq!(rows.len(), 5_000, "each record once");
}
