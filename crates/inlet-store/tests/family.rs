//! The parent/child part of the Store contract, on SQLite AND PostgreSQL: a family commit
//! writes parents, children, markers, stub removals and state in one transaction, and a
//! commit that fails writes none of them (a marker never runs ahead of its children).

#[allow(dead_code)] // the harness serves the contract suite too
#[macro_use]
mod harness;

use harness::Db;
use inlet_connectors::ebay::streams::{STREAMS, STUBS};
use inlet_core::{FamilyBatch, NewConnection, Record, StreamSpec, SyncState, Timestamp, Value};

const CONVS: &StreamSpec = &STREAMS[0];
const MSGS: &StreamSpec = &STREAMS[2];
const T0: i64 = 1_718_800_000_000;

fn rec(spec: &StreamSpec, id: &str, cols: &[(&str, Value)]) -> Record {
    let mut values = vec![Value::Null; spec.columns.len()];
    for (name, v) in cols {
        values[spec.column_index(name).expect("column")] = v.clone();
    }
    Record::new(id, values, format!(r#"{{"id": "{id}"}}"#))
}

fn msg(id: &str, conv: &str, sender: &str, body: &str, at_ms: i64) -> Record {
    rec(
        MSGS,
        id,
        &[
            ("conversation_id", Value::Text(conv.into())),
            ("sender", Value::Text(sender.into())),
            ("body", Value::Text(body.into())),
            ("created_date", Value::Time(Timestamp(at_ms))),
        ],
    )
}

fn conv(id: &str) -> Record {
    rec(
        CONVS,
        id,
        &[("conversation_type", Value::Text("FROM_MEMBERS".into()))],
    )
}

async fn connection(db: &Db) -> i64 {
    let new = NewConnection {
        name: "shop".into(),
        workspace: "acme".into(),
        provider: "ebay".into(),
        config: serde_json::json!({}),
        credentials: vec![1],
    };
    db.store
        .create_connection(&new, Timestamp(T0))
        .await
        .expect("create")
        .id
}

fn batch<'a>(
    conn: i64,
    parents: Vec<Record>,
    children: Vec<Record>,
    markers: &[(&str, &str)],
    state: Option<&'a SyncState>,
) -> FamilyBatch<'a> {
    FamilyBatch {
        connection_id: conn,
        parent: CONVS,
        parents,
        child: MSGS,
        children,
        markers: markers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        stubs: Some(STUBS),
        replace_children: None,
        state,
        at: Timestamp(T0),
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

store_test!(family_commit_is_one_transaction);
async fn family_commit_is_one_transaction(db: Db) {
    let conn = connection(&db).await;
    let state = SyncState {
        cursor: Some("42".into()),
        ..Default::default()
    };
    let out = db
        .store
        .commit_family(batch(
            conn,
            vec![conv("c-1"), conv("c-2")],
            vec![
                msg("m-1", "c-1", "b", "hi", T0),
                msg("m-2", "c-1", "s", "yo", T0),
            ],
            &[("c-1", "m-2|1")],
            Some(&state),
        ))
        .await
        .expect("commit");
    assert_eq!((out.parents.inserted, out.children.inserted), (2, 2));
    let markers = db
        .store
        .parent_markers(conn, CONVS.name, &ids(&["c-1", "c-2", "c-9"]))
        .await
        .expect("markers");
    assert_eq!(markers.len(), 1);
    assert_eq!(markers["c-1"], "m-2|1");
    let st = db.store.sync_state(conn, CONVS.name).await.expect("state");
    assert_eq!(st.cursor.as_deref(), Some("42"));

    // A batch the store rejects (a child row with the wrong number of columns) writes
    // nothing: not the parent, not the marker, not the state.
    let mut bad = msg("m-3", "c-2", "b", "x", T0);
    bad.values.pop();
    let later = SyncState {
        cursor: Some("43".into()),
        ..Default::default()
    };
    let r = db
        .store
        .commit_family(batch(
            conn,
            vec![conv("c-3")],
            vec![bad],
            &[("c-2", "m-3|1")],
            Some(&later),
        ))
        .await;
    assert!(r.is_err());
    let markers = db
        .store
        .parent_markers(conn, CONVS.name, &ids(&["c-2"]))
        .await
        .expect("markers");
    assert!(markers.is_empty(), "no marker without its children");
    let st = db.store.sync_state(conn, CONVS.name).await.expect("state");
    assert_eq!(st.cursor.as_deref(), Some("42"));
    assert_eq!(db.store.count_live(conn, CONVS).await.expect("count"), 2);

    // Markers are replaced; `state: None` leaves the state alone.
    db.store
        .commit_family(batch(conn, vec![], vec![], &[("c-1", "m-5|0")], None))
        .await
        .expect("commit");
    let markers = db
        .store
        .parent_markers(conn, CONVS.name, &ids(&["c-1"]))
        .await
        .expect("markers");
    assert_eq!(markers["c-1"], "m-5|0");
    let st = db.store.sync_state(conn, CONVS.name).await.expect("state");
    assert_eq!(st.cursor.as_deref(), Some("42"));
}

store_test!(real_messages_replace_matching_stubs);
async fn real_messages_replace_matching_stubs(db: Db) {
    let conn = connection(&db).await;
    let stubs = vec![
        msg("stub-1", "c-1", "me", "Shipped.", T0),
        msg("stub-2", "c-1", "me", "Other text", T0),
        msg("stub-3", "c-2", "me", "Shipped.", T0),
        msg("stub-4", "c-1", "me", "Shipped.", T0 - 3_600_000),
    ];
    db.store
        .commit_family(batch(conn, vec![], stubs, &[], None))
        .await
        .expect("stubs");
    assert_eq!(db.store.count_live(conn, MSGS).await.expect("count"), 4);
    let out = db
        .store
        .commit_family(batch(
            conn,
            vec![conv("c-1")],
            vec![msg("m-7", "c-1", "me", "Shipped.", T0 + 20_000)],
            &[("c-1", "m-7|0")],
            None,
        ))
        .await
        .expect("real");
    assert_eq!(
        out.stubs_removed, 1,
        "same conversation, sender, text, within 15 minutes"
    );
    let left: Vec<String> = db
        .store
        .export_page(conn, MSGS, None, 100, true)
        .await
        .expect("export")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ["m-7", "stub-2", "stub-3", "stub-4"]);
}

store_test!(tombstone_parents_takes_children_and_markers);
/// Parents a provider reported gone are tombstoned with their children and markers,
/// other parents untouched; repeating it changes nothing; a gone parent that comes back
/// is revived by the next commit.
async fn tombstone_parents_takes_children_and_markers(db: Db) {
    let conn = connection(&db).await;
    let mut b = batch(
        conn,
        vec![conv("c-1"), conv("c-2")],
        vec![
            msg("m-1", "c-1", "b", "hi", T0),
            msg("m-2", "c-1", "s", "yo", T0),
            msg("m-3", "c-2", "b", "other", T0),
        ],
        &[("c-1", "m-2|1"), ("c-2", "m-3|1")],
        None,
    );
    b.stubs = None;
    db.store.commit_family(b).await.expect("commit");
    let at = Timestamp(T0 + 1000);
    let child = Some((MSGS, "conversation_id"));
    let gone = ids(&["c-1", "c-9"]);
    let (p, c) = db
        .store
        .tombstone_parents(conn, CONVS, &gone, child, at)
        .await
        .expect("tombstone");
    assert_eq!((p, c), (1, 2));
    assert_eq!(db.store.count_live(conn, CONVS).await.expect("count"), 1);
    assert_eq!(db.store.count_live(conn, MSGS).await.expect("count"), 1);
    let markers = db
        .store
        .parent_markers(conn, CONVS.name, &ids(&["c-1", "c-2"]))
        .await
        .expect("markers");
    assert_eq!(markers.keys().collect::<Vec<_>>(), ["c-2"]);
    let again = db
        .store
        .tombstone_parents(conn, CONVS, &gone, child, at)
        .await
        .expect("repeat");
    assert_eq!(again, (0, 0), "repeatable");
    let none = db
        .store
        .tombstone_parents(conn, CONVS, &[], child, at)
        .await
        .expect("empty");
    assert_eq!(none, (0, 0));
    let mut b = batch(
        conn,
        vec![conv("c-1")],
        vec![msg("m-1", "c-1", "b", "hi", T0)],
        &[("c-1", "m-1|1")],
        None,
    );
    b.stubs = None;
    b.replace_children = Some("conversation_id");
    let out = db.store.commit_family(b).await.expect("revive");
    assert_eq!((out.parents.updated, out.children.updated), (1, 1));
    assert_eq!(db.store.count_live(conn, CONVS).await.expect("count"), 2);
    assert_eq!(db.store.count_live(conn, MSGS).await.expect("count"), 2);
}
