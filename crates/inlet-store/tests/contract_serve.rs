//! The Store contract for what `inlet serve` needs (sync leases, API keys, run lookup,
//! connection deletion): every test runs on a fresh SQLite file AND a fresh PostgreSQL
//! database, like `contract.rs`.

#[allow(dead_code)]
#[macro_use]
mod harness;

use harness::Db;
use inlet_connectors::reddit::streams::STREAMS;
use inlet_core::{
    NewConnection, Record, RunMode, StoreError, SyncState, Timestamp, Trigger, Value,
};
use inlet_core::{PageBatch, StreamSpec};

const T0: i64 = 1_718_800_000_123;

async fn connection(db: &Db, name: &str) -> i64 {
    let new = NewConnection {
        name: name.into(),
        workspace: "acme".into(),
        provider: "reddit".into(),
        config: serde_json::json!({}),
        credentials: vec![9, 9, 9],
    };
    db.store
        .create_connection(&new, Timestamp(T0))
        .await
        .expect("create connection")
        .id
}

store_test!(lease_is_exclusive_until_it_expires);
async fn lease_is_exclusive_until_it_expires(db: Db) {
    let s = &db.store;
    let c = connection(&db, "a").await;
    let other = connection(&db, "b").await;
    assert!(
        s.try_acquire_lease(c, "p1", Timestamp(T0), 30_000)
            .await
            .unwrap()
    );
    // Held: another holder cannot take it, the holder can re-take (idempotent).
    assert!(
        !s.try_acquire_lease(c, "p2", Timestamp(T0 + 1_000), 30_000)
            .await
            .unwrap()
    );
    assert!(
        s.try_acquire_lease(c, "p1", Timestamp(T0 + 1_000), 30_000)
            .await
            .unwrap()
    );
    // Leases are per connection.
    assert!(
        s.try_acquire_lease(other, "p2", Timestamp(T0), 30_000)
            .await
            .unwrap()
    );
    // Renewal pushes the expiry; only the holder can renew.
    assert!(
        s.renew_lease(c, "p1", Timestamp(T0 + 20_000), 30_000)
            .await
            .unwrap()
    );
    assert!(
        !s.renew_lease(c, "p2", Timestamp(T0 + 20_000), 30_000)
            .await
            .unwrap()
    );
    assert!(
        !s.try_acquire_lease(c, "p2", Timestamp(T0 + 40_000), 30_000)
            .await
            .unwrap()
    );
    let l = s.get_lease(c).await.unwrap().expect("lease row");
    assert_eq!(
        (l.holder.as_str(), l.expires_at),
        ("p1", Timestamp(T0 + 50_000))
    );
    // Expired: a crashed holder's lease is taken over, and the old holder lost it.
    assert!(
        s.try_acquire_lease(c, "p2", Timestamp(T0 + 50_000), 30_000)
            .await
            .unwrap()
    );
    assert!(
        !s.renew_lease(c, "p1", Timestamp(T0 + 50_001), 30_000)
            .await
            .unwrap()
    );
    // Releasing someone else's lease does nothing; releasing one's own frees it.
    s.release_lease(c, "p1").await.unwrap();
    assert_eq!(
        s.get_lease(c).await.unwrap().map(|l| l.holder),
        Some("p2".into())
    );
    s.release_lease(c, "p2").await.unwrap();
    assert!(s.get_lease(c).await.unwrap().is_none());
    assert!(
        s.try_acquire_lease(c, "p3", Timestamp(T0 + 50_002), 30_000)
            .await
            .unwrap()
    );
    // No such connection.
    assert!(matches!(
        s.try_acquire_lease(999_999, "p1", Timestamp(T0), 1).await,
        Err(StoreError::NotFound(_))
    ));
}

store_test!(concurrent_acquires_have_one_winner);
async fn concurrent_acquires_have_one_winner(db: Db) {
    let c = connection(&db, "a").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            s.try_acquire_lease(c, &format!("h{i}"), Timestamp(T0), 60_000)
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(won, 1);
}

store_test!(api_keys_are_found_by_hash_until_revoked);
async fn api_keys_are_found_by_hash_until_revoked(db: Db) {
    let s = &db.store;
    let k = s
        .create_api_key("ci", "ik_abcd", "h1", Timestamp(T0))
        .await
        .unwrap();
    let k2 = s
        .create_api_key("app", "ik_ef01", "h2", Timestamp(T0 + 1))
        .await
        .unwrap();
    assert_eq!(
        (k.name.as_str(), k.prefix.as_str(), k.created_at),
        ("ci", "ik_abcd", Timestamp(T0))
    );
    assert_eq!(
        s.find_api_key("h1").await.unwrap().map(|k| k.id),
        Some(k.id)
    );
    assert!(s.find_api_key("nope").await.unwrap().is_none());
    assert!(
        s.create_api_key("dup", "ik_x", "h1", Timestamp(T0))
            .await
            .is_err()
    );
    s.revoke_api_key(k.id, Timestamp(T0 + 5)).await.unwrap();
    assert!(
        s.find_api_key("h1").await.unwrap().is_none(),
        "revoked keys do not authenticate"
    );
    assert!(matches!(
        s.revoke_api_key(k.id, Timestamp(T0 + 6)).await,
        Err(StoreError::NotFound(_))
    ));
    let all = s.list_api_keys().await.unwrap();
    assert_eq!(
        all.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![k.id, k2.id]
    );
    assert_eq!(all[0].revoked_at, Some(Timestamp(T0 + 5)));
    assert_eq!(all[1].revoked_at, None);
}

fn msg(id: &str) -> Record {
    let spec: &StreamSpec = &STREAMS[0];
    let mut values = vec![Value::Null; spec.columns.len()];
    for (name, v) in [
        ("kind", Value::Text("t4".into())),
        ("folder", Value::Text("inbox".into())),
        ("author", Value::Text("bob".into())),
        (
            "created_utc",
            Value::Time(Timestamp::from_secs(1_700_000_000)),
        ),
        ("unread", Value::Bool(false)),
    ] {
        if let Some(i) = spec.column_index(name) {
            values[i] = v;
        }
    }
    Record::new(id, values, format!(r#"{{"id":"{id}"}}"#))
}

store_test!(runs_are_found_by_id_and_connections_delete_with_their_data);
async fn runs_are_found_by_id_and_connections_delete_with_their_data(db: Db) {
    let s = &db.store;
    let a = connection(&db, "a").await;
    let b = connection(&db, "b").await;
    let run = s
        .start_run(a, RunMode::Delta, Trigger::Api, Timestamp(T0))
        .await
        .unwrap();
    let got = s.get_run(run).await.unwrap().expect("run");
    assert_eq!(
        (got.id, got.connection_id, got.trigger),
        (run, a, Trigger::Api)
    );
    assert!(s.get_run(run + 1000).await.unwrap().is_none());
    let spec = &STREAMS[0];
    for c in [a, b] {
        let state = SyncState::default();
        s.commit_page(PageBatch {
            connection_id: c,
            stream: spec,
            records: vec![msg("t4_1"), msg("t4_2")],
            state: &state,
            refresh_derived: true,
            at: Timestamp(T0),
        })
        .await
        .unwrap();
    }
    assert!(
        s.try_acquire_lease(a, "p", Timestamp(T0), 1000)
            .await
            .unwrap()
    );
    let mut tables: Vec<&str> = STREAMS.iter().map(|s| s.table).collect();
    tables.extend(STREAMS.iter().filter_map(|s| s.derived.map(|d| d.table)));
    tables.dedup();
    s.delete_connection(a, &tables).await.unwrap();
    assert!(s.get_connection("a").await.unwrap().is_none());
    assert!(
        s.get_run(run).await.unwrap().is_none(),
        "runs go with the connection"
    );
    assert!(s.get_lease(a).await.unwrap().is_none());
    assert_eq!(
        s.count_live(a, spec).await.unwrap(),
        0,
        "rows go with the connection"
    );
    assert_eq!(
        s.count_live(b, spec).await.unwrap(),
        2,
        "other connections keep theirs"
    );
    assert!(matches!(
        s.delete_connection(a, &tables).await,
        Err(StoreError::NotFound(_))
    ));
}
