//! Reconcile end to end, on SQLite and PostgreSQL: unsaves are tombstoned at the next
//! reconcile and not before, re-saves revive, failed listings and empty listings delete
//! nothing, every Nth sync reconciles, purge removes old tombstones.

mod common;

use common::*;
use inlet_connectors::reddit::RedditConnector;
use inlet_core::{
    Clock, Connection, Connector, ConnectorError, HttpStats, IdPage, Page, RunMode, RunStatus,
    Store, StreamSpec, SystemClock, Timestamp,
};
use inlet_engine::{NoProgress, SyncOptions};
use inlet_sim::reddit::RedditSimConfig;
use std::sync::Arc;

fn account(saved: u64) -> RedditSimConfig {
    RedditSimConfig {
        seed: 21,
        messages: 40,
        comment_replies: 3,
        saved,
        ..Default::default()
    }
}

async fn run_with(
    store: &Arc<dyn Store>,
    conn: &Connection,
    connector: &dyn Connector,
    mode: RunMode,
    force: bool,
) -> inlet_core::Run {
    let conn = store
        .get_connection(&conn.id.to_string())
        .await
        .expect("get")
        .expect("exists");
    let mut opts = SyncOptions::new(mode);
    opts.force = force;
    engine(store.clone())
        .sync(&conn, connector, &opts, &NoProgress)
        .await
        .expect("sync")
}

async fn run(store: &Arc<dyn Store>, conn: &Connection, mode: RunMode) -> inlet_core::Run {
    run_with(store, conn, &connector(conn), mode, false).await
}

fn saved_names(sim: &inlet_sim::reddit::RedditSim) -> Vec<String> {
    sim.truth_saved()
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

async fn unsave_waits_for_reconcile(db: &TestDb) {
    let cfg = account(30);
    let (sim, store, conn) = setup(db, &cfg).await;
    let first = run(&store, &conn, RunMode::Delta).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    assert_eq!(
        first.mode,
        RunMode::Full,
        "the first sync does not reconcile (it reads everything: recorded as full)"
    );
    let names = saved_names(&sim);
    assert!(sim.unsave(&names[0]) && sim.unsave(&names[5]));

    // A delta cannot see unsaves, and a short listing read to its end does not count.
    let delta = run(&store, &conn, RunMode::Delta).await;
    assert_eq!(delta.status, RunStatus::Success, "{:?}", delta.error);
    assert_eq!(delta.stats.deleted, 0, "not before the reconcile");
    assert_eq!(
        store.count_live(conn.id, spec("saved")).await.expect("n"),
        30
    );

    let rec = run(&store, &conn, RunMode::Reconcile).await;
    assert_eq!(rec.status, RunStatus::Success, "{:?}", rec.error);
    assert_eq!(rec.mode, RunMode::Reconcile);
    assert_eq!(rec.stats.deleted, 2);
    assert_eq!(rec.streams["saved"].stats.deleted, 2);
    assert!(rec.streams["saved"].complete_listing);
    let state = store.sync_state(conn.id, "saved").await.expect("state");
    assert!(
        state
            .last_reconciled_at
            .is_some_and(|t| t >= rec.started_at)
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
    let all = store
        .export_page(conn.id, spec("saved"), None, 1000, true)
        .await
        .expect("export");
    let gone = all
        .iter()
        .find(|r| r.id == names[5])
        .expect("tombstone kept");
    assert!(gone.deleted_at.is_some(), "kept and queryable");

    // Reconciling again changes nothing.
    let again = run(&store, &conn, RunMode::Reconcile).await;
    assert_eq!((again.stats.deleted, again.stats.updated), (0, 0));

    // Re-saved: revived by the next delta, not duplicated.
    assert!(sim.save(&names[0]));
    let back = run(&store, &conn, RunMode::Delta).await;
    assert_eq!(back.stats.updated, 1, "revived");
    assert_eq!(back.stats.inserted, 0);
    assert_equals_truth(&*store, conn.id, &sim).await;

    // Purge: tombstones older than the cut-off go for good; live rows stay.
    let purged = store
        .purge_tombstones(conn.id, spec("saved"), rec.started_at)
        .await
        .expect("purge");
    assert_eq!(purged, 0, "the tombstone is newer than the cut-off");
    let later = Timestamp(SystemClock.now().0 + 1000);
    let purged = store
        .purge_tombstones(conn.id, spec("saved"), later)
        .await
        .expect("purge");
    assert_eq!(purged, 1, "names[5] is still unsaved");
    let all = store
        .export_page(conn.id, spec("saved"), None, 1000, true)
        .await
        .expect("export");
    assert_eq!(all.len(), 29);
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}
both_backends!(
    unsave_tombstoned_at_reconcile_only,
    unsave_waits_for_reconcile
);

async fn every_nth_sync(db: &TestDb) {
    let cfg = account(30);
    let sim = inlet_sim::reddit::RedditSim::start(cfg.clone())
        .await
        .expect("sim");
    let store = db.store().await;
    let conn = create_connection(&*store, &sim, &cfg).await;
    // Set the per-connection policy the way the API will: in the config JSON.
    let mut config = conn.config.clone();
    config["reconcile_every"] = serde_json::json!(3);
    let conn = Connection { config, ..conn };
    let connector = {
        let plain = key().open(&conn.credentials, b"test").expect("creds");
        let creds = serde_json::from_slice(&plain).expect("creds");
        let config =
            serde_json::from_value(inlet_engine::provider_config(&conn.config)).expect("config");
        RedditConnector::new(config, &creds, http_config()).expect("connector")
    };
    let names = saved_names(&sim);
    let opts = SyncOptions::new(RunMode::Delta);
    let eng = engine(store.clone());
    let mut modes = vec![];
    let mut deleted = vec![];
    for i in 0..6 {
        if i == 1 {
            assert!(sim.unsave(&names[1]));
        }
        let r = eng
            .sync(&conn, &connector, &opts, &NoProgress)
            .await
            .expect("sync");
        assert_eq!(r.status, RunStatus::Success, "{:?}", r.error);
        modes.push(r.mode);
        deleted.push(r.stats.deleted);
    }
    use RunMode::{Delta, Full, Reconcile};
    // The first sync reads everything and is recorded as full.
    assert_eq!(modes, [Full, Delta, Reconcile, Delta, Delta, Reconcile]);
    assert_eq!(deleted, [0, 0, 1, 0, 0, 0], "tombstoned at the 3rd sync");
    assert_equals_truth(&*store, conn.id, &sim).await;

    // A bad policy is a clear error, nothing synced.
    let mut config = conn.config.clone();
    config["reconcile_max_share"] = serde_json::json!(7);
    let bad = Connection { config, ..conn };
    let r = eng
        .sync(&bad, &connector, &opts, &NoProgress)
        .await
        .expect("sync");
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("reconcile_max_share")),
        "{:?}",
        r.error
    );
    sim.shutdown();
}
both_backends!(reconcile_every_nth_sync, every_nth_sync);

/// A connector whose id listing fails after its first page.
struct FailingIds(RedditConnector);

#[async_trait::async_trait]
impl Connector for FailingIds {
    fn provider(&self) -> &'static str {
        self.0.provider()
    }
    fn streams(&self) -> &'static [StreamSpec] {
        self.0.streams()
    }
    async fn fetch_page(&self, s: &StreamSpec, c: Option<&str>) -> Result<Page, ConnectorError> {
        self.0.fetch_page(s, c).await
    }
    fn http_stats(&self) -> HttpStats {
        self.0.http_stats()
    }
    fn reconciles(&self, s: &StreamSpec) -> bool {
        self.0.reconciles(s)
    }
    async fn fetch_id_page(
        &self,
        s: &StreamSpec,
        c: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        match c {
            None => self.0.fetch_id_page(s, c).await,
            Some(_) => Err(ConnectorError::Transient(
                "HTTP 503 after 10 attempts".into(),
            )),
        }
    }
}

async fn failed_listing(db: &TestDb) {
    let cfg = account(250); // three pages of saved items
    let (sim, store, conn) = setup(db, &cfg).await;
    run(&store, &conn, RunMode::Full).await;
    let names = saved_names(&sim);
    for n in &names[100..103] {
        assert!(sim.unsave(n));
    }
    let broken = FailingIds(connector(&conn));
    let r = run_with(&store, &conn, &broken, RunMode::Reconcile, false).await;
    assert_eq!(r.status, RunStatus::Partial, "{:?}", r.error);
    assert!(r.streams["saved"].error.is_some());
    assert_eq!(r.stats.deleted, 0, "a failed listing deletes nothing");
    assert_eq!(
        store.count_live(conn.id, spec("saved")).await.expect("n"),
        250
    );
    let state = store.sync_state(conn.id, "saved").await.expect("state");
    assert!(state.last_reconciled_at.is_none_or(|t| t < r.started_at));

    let ok = run(&store, &conn, RunMode::Reconcile).await;
    assert_eq!(ok.status, RunStatus::Success, "{:?}", ok.error);
    assert_eq!(
        ok.stats.deleted, 3,
        "no ids left over from the failed listing"
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}
both_backends!(failed_listing_deletes_nothing, failed_listing);

async fn empty_listing(db: &TestDb) {
    let cfg = account(30);
    let (sim, store, conn) = setup(db, &cfg).await;
    run(&store, &conn, RunMode::Full).await;
    for n in saved_names(&sim) {
        assert!(sim.unsave(&n));
    }
    let r = run(&store, &conn, RunMode::Reconcile).await;
    assert_eq!(r.status, RunStatus::Partial);
    let err = r.streams["saved"].error.clone().unwrap_or_default();
    assert!(
        err.contains("safety valve") && err.contains("30 of 30"),
        "{err}"
    );
    assert!(r.error.as_deref().is_some_and(|e| e.contains("--force")));
    assert_eq!(r.stats.deleted, 0);
    assert_eq!(
        store.count_live(conn.id, spec("saved")).await.expect("n"),
        30
    );

    let forced = run_with(&store, &conn, &connector(&conn), RunMode::Reconcile, true).await;
    assert_eq!(forced.status, RunStatus::Success, "{:?}", forced.error);
    assert_eq!(forced.stats.deleted, 30);
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}
both_backends!(empty_listing_trips_safety_valve, empty_listing);

/// Two reconciles of one connection at once without a lease (two processes that do not
/// coordinate, each with its own store connection): each run stages its listed ids under
/// its own token, so neither run's cleanup drops the ids the other staged, and nothing is
/// tombstoned. Forced, so the safety valve cannot hide a wrong diff. 20 pairs.
async fn concurrent_reconciles(db: &TestDb) {
    let cfg = account(250);
    let (sim, store, conn) = setup(db, &cfg).await;
    let first = run(&store, &conn, RunMode::Delta).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    let other = db.store().await;
    for pair in 0..20 {
        let (ca, cb) = (connector(&conn), connector(&conn));
        let (a, b) = tokio::join!(
            run_with(&store, &conn, &ca, RunMode::Reconcile, true),
            run_with(&other, &conn, &cb, RunMode::Reconcile, true),
        );
        for r in [&a, &b] {
            assert_eq!(r.status, RunStatus::Success, "pair {pair}: {:?}", r.error);
            assert_eq!(r.stats.deleted, 0, "pair {pair}: run {} tombstoned", r.id);
        }
        assert_eq!(
            store.count_live(conn.id, spec("saved")).await.expect("n"),
            250,
            "pair {pair}"
        );
    }
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}
both_backends!(
    concurrent_reconcile_pairs_tombstone_nothing,
    concurrent_reconciles
);
