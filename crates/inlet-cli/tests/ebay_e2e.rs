//! End to end: the engine syncs the eBay simulator (conversations → messages, fetched per
//! changed conversation) into SQLite and PostgreSQL; the request log proves how few calls
//! a sync makes, and the database equals the simulator's truth.

mod common;

use common::*;
use inlet_connectors::ebay::streams::STREAMS;
use inlet_connectors::ebay::{EbayConfig, EbayConnector, EbayCredentials, EbayDelta};
use inlet_core::{
    Clock, Connection, NewConnection, PageBatch, Record, Run, RunMode, RunStatus, Store,
    StreamSpec, SystemClock, Timestamp, Value,
};
use inlet_engine::{NoProgress, Progress, SyncOptions};
use inlet_sim::ebay::{EbaySim, EbaySimConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn ebay_spec(name: &str) -> &'static StreamSpec {
    STREAMS.iter().find(|s| s.name == name).expect("stream")
}

fn account(conversations: u64) -> EbaySimConfig {
    EbaySimConfig {
        seed: 5,
        conversations,
        long_threads: 4,
        system_conversations: 30,
        ..Default::default()
    }
}

async fn setup_ebay(
    db: &TestDb,
    cfg: &EbaySimConfig,
    tune: impl FnOnce(&mut EbayConfig),
) -> (EbaySim, Arc<dyn Store>, Connection) {
    let sim = EbaySim::start(cfg.clone()).await.expect("sim");
    let store = db.store().await;
    let mut config = EbayConfig {
        api_base: sim.api_base(),
        token_url: sim.token_url(),
        ..Default::default()
    };
    tune(&mut config);
    let creds = EbayCredentials {
        client_id: cfg.client_id.clone(),
        client_secret: cfg.client_secret.clone(),
        refresh_token: cfg.refresh_token.clone(),
        ..Default::default()
    };
    let sealed = key()
        .seal(&serde_json::to_vec(&creds).expect("json"), b"test")
        .expect("seal");
    let new = NewConnection {
        name: "ebay-test".into(),
        workspace: "tests".into(),
        provider: "ebay".into(),
        config: serde_json::to_value(&config).expect("json"),
        credentials: sealed,
    };
    let conn = store
        .create_connection(&new, SystemClock.now())
        .await
        .expect("create connection");
    (sim, store, conn)
}

async fn ebay_connector(store: &Arc<dyn Store>) -> (Connection, EbayConnector) {
    let conn = store
        .get_connection("ebay-test")
        .await
        .expect("get")
        .expect("exists");
    let config: EbayConfig = serde_json::from_value(conn.config.clone()).expect("config");
    let plain = key().open(&conn.credentials, b"test").expect("open creds");
    let creds: EbayCredentials = serde_json::from_slice(&plain).expect("creds");
    let c = EbayConnector::new(config, &creds, http_config()).expect("connector");
    (conn, c)
}

async fn sync_with(store: &Arc<dyn Store>, opts: &SyncOptions, progress: &dyn Progress) -> Run {
    let (conn, connector) = ebay_connector(store).await;
    engine(store.clone())
        .sync(&conn, &connector, opts, progress)
        .await
        .expect("sync")
}

async fn sync(store: &Arc<dyn Store>) -> Run {
    sync_with(store, &SyncOptions::new(RunMode::Delta), &NoProgress).await
}

/// Every live row of a stream, id -> raw JSON.
async fn stored(store: &dyn Store, conn: i64, stream: &str) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let rows = store
            .export_page(conn, ebay_spec(stream), after.as_deref(), 1000, false)
            .await
            .expect("export");
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for r in rows {
            out.insert(r.id, serde_json::from_str(&r.raw).expect("raw is JSON"));
        }
    }
    out
}

fn diff(
    what: &str,
    want: &BTreeMap<String, serde_json::Value>,
    got: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (id, w) in want {
        match got.get(id) {
            None => out.push(format!("{what} {id} missing")),
            Some(g) if g != w => out.push(format!("{what} {id} differs")),
            _ => {}
        }
    }
    for id in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!("{what} {id} extra"));
    }
    out
}

/// Differences between the database and the simulator, ignoring `except` conversations.
async fn differences(store: &dyn Store, conn: i64, sim: &EbaySim, except: &[&str]) -> Vec<String> {
    let skip = |id: &str| except.contains(&id);
    let mut out = Vec::new();
    for (stream, ctype) in [
        ("conversations", "FROM_MEMBERS"),
        ("system_conversations", "FROM_EBAY"),
    ] {
        let want: BTreeMap<String, serde_json::Value> = sim
            .truth_conversations(ctype)
            .into_iter()
            .map(|c| (c["conversationId"].as_str().expect("id").to_string(), c))
            .filter(|(id, _)| !skip(id))
            .collect();
        let mut got = stored(store, conn, stream).await;
        got.retain(|id, _| !skip(id));
        out.extend(diff(stream, &want, &got));
    }
    let want: BTreeMap<String, serde_json::Value> = sim
        .truth_messages()
        .into_iter()
        .filter(|m| !skip(&m.conversation_id))
        .map(|m| {
            (
                m.json["messageId"].as_str().expect("id").to_string(),
                m.json,
            )
        })
        .collect();
    let excluded: BTreeSet<String> = sim
        .truth_messages()
        .into_iter()
        .filter(|m| skip(&m.conversation_id))
        .map(|m| m.json["messageId"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut got = stored(store, conn, "messages").await;
    got.retain(|id, _| !excluded.contains(id) && !id.starts_with("stub-"));
    out.extend(diff("messages", &want, &got));
    out
}

async fn assert_equals_truth(store: &dyn Store, conn: i64, sim: &EbaySim) {
    let d = differences(store, conn, sim, &[]).await;
    assert!(
        d.is_empty(),
        "database differs from the simulator: {:?}",
        &d[..d.len().min(10)]
    );
}

/// Requests by kind: (FROM_MEMBERS listing, FROM_EBAY listing, other listings, thread
/// requests by conversation id, total).
struct Calls {
    members: usize,
    system: usize,
    other_listings: usize,
    threads: BTreeMap<String, usize>,
    total: usize,
}

fn calls(sim: &EbaySim) -> Calls {
    let log = sim.requests();
    let mut c = Calls {
        members: 0,
        system: 0,
        other_listings: 0,
        threads: BTreeMap::new(),
        total: log.len(),
    };
    for r in &log {
        if r.path.ends_with("/conversation") {
            if r.query.contains("conversation_type=FROM_MEMBERS") {
                c.members += 1;
            } else if r.query.contains("conversation_type=FROM_EBAY") {
                c.system += 1;
            } else {
                c.other_listings += 1;
            }
        } else if let Some(id) = r.path.rsplit_once("/conversation/").map(|(_, id)| id) {
            *c.threads.entry(id.to_string()).or_default() += 1;
        }
    }
    c
}

fn stream_stats<'a>(run: &'a Run, stream: &str) -> &'a inlet_core::StreamStats {
    run.streams
        .get(stream)
        .unwrap_or_else(|| panic!("no stats for {stream}: {:?}", run.streams.keys()))
}

const T: u64 = 1227;

fn samples(run: &Run) -> usize {
    ["conversations", "system_conversations"]
        .iter()
        .map(|s| stream_stats(run, s).parents_sampled as usize)
        .sum()
}

/// Pick conversations that are single-page, distinct and not the newest few.
fn pick(sim: &EbaySim, n: usize) -> Vec<String> {
    let ids: Vec<String> = sim
        .conversation_ids("FROM_MEMBERS")
        .into_iter()
        .skip(10)
        .filter(|id| sim.message_count(id) < 40)
        .collect();
    let step = (ids.len() / n).max(1);
    let out: Vec<String> = ids.into_iter().step_by(step).take(n).collect();
    assert_eq!(out.len(), n);
    out
}

/// The full-scan variant: every sync lists all 1,227 conversations (25 calls) and reads
/// only the threads whose marker moved.
async fn full_scan_fetches_only_changed(db: &TestDb) {
    let cfg = account(T);
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| c.full_scan_every = 1).await;
    let first = sync(&store).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    assert_equals_truth(&*store, conn.id, &sim).await;
    let c = calls(&sim);
    let long: Vec<_> = c.threads.iter().filter(|(_, n)| **n > 1).collect();
    assert!(long.len() >= 4, "long threads are paged: {long:?}");
    assert_eq!(c.members, T.div_ceil(50) as usize);
    assert_eq!(stream_stats(&first, "conversations").stats.fetched, T);

    // 5 changes: 3 buyer messages, 2 seller-only replies.
    let changed = pick(&sim, 5);
    for id in &changed[..3] {
        sim.buyer_message(id, "Any update on shipping?");
    }
    for id in &changed[3..] {
        sim.seller_reply(id, "Shipped today, tracking attached.");
    }
    sim.clear_log();
    let delta = sync(&store).await;
    assert_eq!(delta.status, RunStatus::Success, "{:?}", delta.error);
    let st = stream_stats(&delta, "conversations");
    assert_eq!(st.parents_changed, 5);
    assert!(
        st.parents_sampled >= 1,
        "at least one unchanged thread is re-checked"
    );
    assert_eq!(st.sample_mismatches, 0);
    let c = calls(&sim);
    assert_eq!(c.members, T.div_ceil(50) as usize, "one full listing");
    for id in &changed {
        assert_eq!(c.threads.get(id), Some(&1), "changed thread {id} read once");
    }
    // Both families re-check a sample (conversations and FROM_EBAY system mail).
    let sampled = samples(&delta);
    // Distinct threads: a sampled long thread takes more than one page.
    assert_eq!(c.threads.len(), 5 + sampled);
    let pages = c.threads.values().sum::<usize>();
    // ceil(1227/50) + the 5 threads and the sample (pages) + one FROM_EBAY page; the
    // token is cached from the first sync.
    assert!(
        c.total <= T.div_ceil(50) as usize + pages + 1,
        "{} calls",
        c.total
    );
    assert_eq!(stream_stats(&delta, "messages").stats.inserted, 5);
    assert_equals_truth(&*store, conn.id, &sim).await;

    // Nothing changed: listing only (plus the sample).
    sim.clear_log();
    let quiet = sync(&store).await;
    let c = calls(&sim);
    assert_eq!(quiet.stats.inserted + quiet.stats.updated, 0);
    assert_eq!(c.threads.len(), samples(&quiet));
    assert_eq!(stream_stats(&quiet, "conversations").parents_changed, 0);
}
both_backends!(full_scan_variant, full_scan_fetches_only_changed);

/// The start_time variant: deltas list only threads with buyer activity; the seller-only
/// threads are caught by the full scan every third sync.
async fn start_time_then_full_scan(db: &TestDb) {
    let cfg = account(T);
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| {
        c.full_scan_every = 3;
        c.delta = EbayDelta::StartTime;
    })
    .await;
    let first = sync(&store).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    let changed = pick(&sim, 5);
    for id in &changed[..3] {
        sim.buyer_message(id, "Is it still available?");
    }
    for id in &changed[3..] {
        sim.seller_reply(id, "Yes, it is still available.");
    }
    sim.clear_log();
    let d1 = sync(&store).await;
    assert_eq!(d1.status, RunStatus::Success, "{:?}", d1.error);
    let c = calls(&sim);
    assert_eq!(c.members, 1, "start_time listing fits one page");
    for id in &changed[..3] {
        assert_eq!(c.threads.get(id), Some(&1));
    }
    // The 3 buyer threads and the re-check sample (at least one FROM_EBAY thread), one
    // listing page each for FROM_MEMBERS and FROM_EBAY; nothing else.
    assert_eq!(c.threads.len(), 3 + samples(&d1));
    assert_eq!(
        c.total,
        2 + c.threads.values().sum::<usize>(),
        "{} calls",
        c.total
    );
    // The start_time quirk hides the seller-only threads...
    let d = differences(&*store, conn.id, &sim, &[]).await;
    assert!(
        !d.is_empty(),
        "seller-only replies are not visible to start_time"
    );
    let hidden: Vec<&str> = changed[3..].iter().map(String::as_str).collect();
    assert!(
        differences(&*store, conn.id, &sim, &hidden)
            .await
            .is_empty()
    );
    // ... until the full scan of the cycle (sync_count 3).
    let d2 = sync(&store).await;
    assert_eq!(stream_stats(&d2, "conversations").parents_changed, 0);
    sim.clear_log();
    let d3 = sync(&store).await;
    let c = calls(&sim);
    assert_eq!(c.members, T.div_ceil(50) as usize, "third delta scans");
    assert_eq!(stream_stats(&d3, "conversations").parents_changed, 2);
    assert!(stream_stats(&d3, "conversations").complete_listing);
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(start_time_variant, start_time_then_full_scan);

/// The default newest-first delta (issue 18 item 15): 5 mixed changes — buyer messages,
/// replies the seller wrote on the website (no buyer activity), a new conversation — are
/// all seen by the next delta, for one listing call plus the changed threads; every
/// listing call asks for `sort=-last_modified_date` and none for `start_time`. The first
/// sync is recorded as `full`.
async fn newest_first_sees_seller_replies(db: &TestDb) {
    let cfg = account(300);
    let (sim, store, conn) = setup_ebay(db, &cfg, |_| {}).await;
    let first = sync(&store).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    assert_eq!(first.mode, RunMode::Full, "a first sync is a full sync");
    let changed = pick(&sim, 4);
    sim.buyer_message(&changed[0], "Any update on shipping?");
    sim.seller_reply(&changed[1], "Shipped today, tracking attached.");
    sim.buyer_message(&changed[2], "Would you take $40?");
    sim.seller_reply(&changed[3], "I can do $45 with free shipping.");
    let new = sim.new_conversation("buyer_new", "Cast iron skillet 12in", "Still there?");
    sim.clear_log();
    let delta = sync(&store).await;
    assert_eq!(delta.status, RunStatus::Success, "{:?}", delta.error);
    assert_eq!(delta.mode, RunMode::Delta);
    assert_equals_truth(&*store, conn.id, &sim).await;
    let st = stream_stats(&delta, "conversations");
    assert_eq!(st.parents_changed, 5, "all five changes seen in this sync");
    assert!(!st.complete_listing, "not a full scan");
    let c = calls(&sim);
    assert_eq!(c.members, 1, "the changes fit the first newest-first page");
    for id in changed.iter().chain([&new]) {
        assert_eq!(c.threads.get(id), Some(&1), "changed thread {id} read once");
    }
    assert_eq!(c.threads.len(), 5 + samples(&delta));
    let listings: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/conversation"))
        .collect();
    assert!(
        listings.iter().all(
            |r| r.query.contains("sort=-last_modified_date") && !r.query.contains("start_time")
        ),
        "{listings:?}"
    );
    // Nothing changed: one listing page, no thread beyond the re-check sample.
    sim.clear_log();
    let quiet = sync(&store).await;
    assert_eq!(quiet.stats.inserted + quiet.stats.updated, 0);
    let c = calls(&sim);
    assert_eq!(c.members, 1);
    assert_eq!(c.threads.len(), samples(&quiet));
}
both_backends!(newest_first_variant, newest_first_sees_seller_replies);

/// A very large account answers the unnarrowed listing with 5xx (ebay.md §6); the
/// connector always passes `sort`, so full scans complete instead of ending `partial`.
async fn large_account_full_scan(db: &TestDb) {
    let cfg = EbaySimConfig {
        // Stands in for ~10^5 conversations: every listing of more than 100 fails unless
        // narrowed.
        unnarrowed_5xx_above: Some(100),
        system_conversations: 120,
        ..account(250)
    };
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| c.full_scan_every = 1).await;
    let first = sync(&store).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    assert!(stream_stats(&first, "conversations").complete_listing);
    let id = pick(&sim, 1).remove(0);
    sim.seller_reply(&id, "Sent the invoice.");
    let scan = sync_with(&store, &SyncOptions::new(RunMode::Full), &NoProgress).await;
    assert_eq!(scan.status, RunStatus::Success, "{:?}", scan.error);
    assert!(stream_stats(&scan, "conversations").complete_listing);
    assert_eq!(scan.stats.retries, 0, "no listing call failed");
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(large_account_variant, large_account_full_scan);

/// One conversation answering 404: logged, counted, skipped; the run is partial, the rest
/// is synced; once healed the next delta fetches it.
async fn one_conversation_404(db: &TestDb) {
    let cfg = account(150);
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| c.full_scan_every = 10).await;
    assert_eq!(sync(&store).await.status, RunStatus::Success);
    let ids: Vec<String> = sim
        .conversation_ids("FROM_MEMBERS")
        .into_iter()
        .skip(20)
        .step_by(9)
        .take(3)
        .collect();
    for id in &ids {
        sim.buyer_message(id, "Hello?");
    }
    let bad = ids[1].clone();
    sim.fail_conversation(&bad, true);
    let run = sync(&store).await;
    assert_eq!(run.status, RunStatus::Partial, "{:?}", run.error);
    assert_eq!(run.stats.items_skipped_with_error, 1);
    assert!(
        differences(&*store, conn.id, &sim, &[&bad])
            .await
            .is_empty()
    );
    assert!(!differences(&*store, conn.id, &sim, &[]).await.is_empty());
    sim.fail_conversation(&bad, false);
    sim.clear_log();
    let run = sync(&store).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert!(
        calls(&sim).threads.contains_key(&bad),
        "the skipped thread is fetched again"
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(conversation_404, one_conversation_404);

/// FROM_OWNERS is undocumented: refused (400) it is reported and the sync goes on; when
/// the provider serves it, it is merged by id and its threads are read with its type
/// (under the `start_time` delta, where it is what shows the seller's own replies).
async fn merged_listings(db: &TestDb) {
    let cfg = account(120);
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| {
        c.listings = vec!["FROM_MEMBERS".into(), "FROM_OWNERS".into()];
        c.full_scan_every = 10;
        // FROM_OWNERS is how the start_time variant sees the seller's own replies.
        c.delta = EbayDelta::StartTime;
    })
    .await;
    let first = sync(&store).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    let errs = &stream_stats(&first, "conversations").listing_errors;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("FROM_OWNERS"), "{errs:?}");
    assert!(stream_stats(&first, "conversations").complete_listing);
    assert_equals_truth(&*store, conn.id, &sim).await;

    sim.set_owner_listing(true);
    let target = pick(&sim, 1).remove(0);
    sim.seller_reply(&target, "Sent the invoice.");
    sim.clear_log();
    let run = sync(&store).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert!(
        stream_stats(&run, "conversations")
            .listing_errors
            .is_empty()
    );
    let thread_calls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(&format!("/conversation/{target}")))
        .collect();
    assert_eq!(thread_calls.len(), 1);
    assert!(
        thread_calls[0]
            .query
            .contains("conversation_type=FROM_OWNERS")
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(merged_listing_variant, merged_listings);

fn stub(conversation: &str, sender: &str, body: &str, at: Timestamp) -> Record {
    let values = vec![
        Value::Text(conversation.into()),
        Value::Text("FROM_MEMBERS".into()),
        Value::Text(sender.into()),
        Value::Null,
        Value::Null,
        Value::Text(body.into()),
        Value::Time(at),
        Value::Bool(false),
        Value::Int(0),
    ];
    Record::new(
        format!("stub-{}", rand_u64()),
        values,
        r#"{"stub":true}"#.into(),
    )
}

async fn insert_stub(store: &Arc<dyn Store>, conn: i64, r: Record) {
    let spec = ebay_spec("messages");
    let state = store.sync_state(conn, spec.name).await.expect("state");
    store
        .commit_page(PageBatch {
            connection_id: conn,
            stream: spec,
            records: vec![r],
            state: &state,
            refresh_derived: false,
            at: SystemClock.now(),
        })
        .await
        .expect("insert stub");
}

/// "I just sent a message": refresh reads one thread in one request path and the real
/// message replaces the app's stub; a sync replaces stubs too.
async fn refresh_and_stubs(db: &TestDb) {
    let cfg = account(120);
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| c.full_scan_every = 1).await;
    assert_eq!(sync(&store).await.status, RunStatus::Success);
    let ids = pick(&sim, 2);
    let now = SystemClock.now();
    let text = "Shipped today, tracking 1Z999.";
    insert_stub(&store, conn.id, stub(&ids[0], &cfg.username, text, now)).await;
    let unrelated = stub(&ids[0], &cfg.username, "a different text", now);
    let unrelated_id = unrelated.id.clone();
    insert_stub(&store, conn.id, unrelated).await;
    sim.seller_reply(&ids[0], text);
    sim.clear_log();
    let (c, connector) = ebay_connector(&store).await;
    let out = engine(store.clone())
        .refresh_entity(&c, &connector, "conversation", &ids[0])
        .await
        .expect("store")
        .expect("refresh");
    assert_eq!(
        out.requests, 2,
        "one request for the thread, one for its row in the listing narrowed to the buyer"
    );
    assert_eq!(out.stubs_removed, 1);
    assert_eq!(out.inserted, 1);
    assert_eq!(out.updated, 1, "the conversation row");
    let log = sim.requests();
    assert_eq!(log.len(), 2);
    assert!(log[0].path.ends_with(&format!("/conversation/{}", ids[0])));
    assert!(
        log[1].path.ends_with("/conversation") && log[1].query.contains("other_party_username="),
        "{:?}",
        log[1]
    );
    // The conversation row's latest message, sender and unread count follow the thread.
    let truth = sim
        .truth_conversations("FROM_MEMBERS")
        .into_iter()
        .find(|c| c["conversationId"] == ids[0].as_str())
        .expect("truth");
    assert_eq!(
        stored(&*store, conn.id, "conversations").await.get(&ids[0]),
        Some(&truth)
    );
    // Its marker was stored with the thread: the next sync does not read it again.
    sim.clear_log();
    let after = sync(&store).await;
    assert_eq!(after.status, RunStatus::Success, "{:?}", after.error);
    assert_eq!(stream_stats(&after, "conversations").parents_changed, 0);
    let msgs = stored(&*store, conn.id, "messages").await;
    assert_eq!(msgs.keys().filter(|k| k.starts_with("stub-")).count(), 1);
    assert!(
        msgs.contains_key(&unrelated_id),
        "a stub no real message replaced stays"
    );

    // Through a sync: the stub goes in the transaction that brings the real message.
    insert_stub(
        &store,
        conn.id,
        stub(&ids[1], &cfg.username, text, SystemClock.now()),
    )
    .await;
    sim.seller_reply(&ids[1], text);
    let run = sync(&store).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_eq!(stream_stats(&run, "messages").stubs_removed, 1);
    let msgs = stored(&*store, conn.id, "messages").await;
    assert_eq!(msgs.keys().filter(|k| k.starts_with("stub-")).count(), 1);
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(refresh_variant, refresh_and_stubs);

/// Cancels the sync after `after` committed pages of conversations.
struct StopAfter {
    pages: AtomicU64,
    after: u64,
    flag: Arc<AtomicBool>,
}

impl Progress for StopAfter {
    fn page_committed(&self, stream: &str, _stats: &inlet_core::StreamStats) {
        if stream == "conversations" && self.pages.fetch_add(1, Ordering::SeqCst) + 1 >= self.after
        {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

/// A first sync interrupted after three pages resumes at the fourth: no listing page or
/// thread is fetched twice, and the result equals the truth.
async fn interrupted_resumes(db: &TestDb) {
    let cfg = account(400);
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| c.full_scan_every = 1).await;
    let flag = Arc::new(AtomicBool::new(false));
    let stop = StopAfter {
        pages: AtomicU64::new(0),
        after: 3,
        flag: flag.clone(),
    };
    let opts = SyncOptions {
        cancel: Some(flag),
        ..SyncOptions::new(RunMode::Delta)
    };
    let run = sync_with(&store, &opts, &stop).await;
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(stream_stats(&run, "conversations").stats.pages, 3);
    let again = sync(&store).await;
    assert_eq!(again.status, RunStatus::Success, "{:?}", again.error);
    assert!(stream_stats(&again, "conversations").resumed);
    let log = sim.requests();
    let mut listing = BTreeMap::new();
    for r in log
        .iter()
        .filter(|r| r.path.ends_with("/conversation") && r.query.contains("FROM_MEMBERS"))
    {
        *listing.entry(r.query.clone()).or_insert(0) += 1;
    }
    assert!(
        listing.values().all(|n| *n == 1),
        "a listing page fetched twice: {listing:?}"
    );
    assert_eq!(listing.len(), 8);
    let c = calls(&sim);
    let first_pages: BTreeMap<_, _> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/conversation/") && r.query.contains("offset=0"))
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.path).or_insert(0) += 1;
            m
        });
    assert!(
        first_pages.values().all(|n| *n == 1),
        "a thread fetched twice"
    );
    assert_eq!(c.threads.len(), 400 + 30);
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(interrupted_variant, interrupted_resumes);

/// A marker that lies: a message edited without moving the listing's latest message or
/// unread count is found by the sampled re-check and reported.
async fn marker_lie_is_reported(db: &TestDb) {
    let cfg = account(60);
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| {
        c.full_scan_every = 1;
        c.sample_rate = 1.0;
    })
    .await;
    assert_eq!(sync(&store).await.status, RunStatus::Success);
    let id = sim
        .conversation_ids("FROM_MEMBERS")
        .into_iter()
        .find(|id| sim.message_count(id) >= 2)
        .expect("a thread with two messages");
    let first_msg = sim
        .truth_messages()
        .into_iter()
        .find(|m| m.conversation_id == id)
        .expect("message");
    let mid = first_msg.json["messageId"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(sim.edit_silently(&id, &mid, "edited quietly"));
    let run = sync(&store).await;
    let st = stream_stats(&run, "conversations");
    assert_eq!(st.parents_changed, 0);
    assert_eq!(st.sample_mismatches, 1);
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(marker_lie, marker_lie_is_reported);

/// 5xx, resets and cut-off bodies on 10% of calls, and an expired token: the sync retries,
/// refreshes the token once, and still equals the truth.
async fn faults_and_token_expiry(db: &TestDb) {
    let cfg = account(300);
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| c.full_scan_every = 1).await;
    sim.set_faults(inlet_sim::ebay::Faults {
        http_5xx: 0.04,
        reset: 0.03,
        truncated: 0.03,
        ..Default::default()
    });
    let first = sync(&store).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    assert!(first.stats.retries > 0, "faults were injected and retried");
    let ids = pick(&sim, 4);
    for id in &ids {
        sim.buyer_message(id, "Hello again");
    }
    sim.expire_tokens();
    let run = sync(&store).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_eq!(stream_stats(&run, "conversations").parents_changed, 4);
    assert_eq!(sim.call_limit_violations(), 0);
    sim.set_faults(inlet_sim::ebay::Faults::default());
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(faults_variant, faults_and_token_expiry);

/// FROM_EBAY advances a stored offset: five pages on the first (full) run, one page per
/// delta, each committed with its offset, wrapping to 0 at the end.
async fn system_mail_progresses(db: &TestDb) {
    let cfg = EbaySimConfig {
        system_conversations: 260,
        ..account(40)
    };
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| c.full_scan_every = 1).await;
    let offsets = |sim: &EbaySim| -> Vec<String> {
        sim.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/conversation") && r.query.contains("FROM_EBAY"))
            .filter_map(|r| {
                r.query
                    .split('&')
                    .find_map(|p| p.strip_prefix("offset=").map(str::to_string))
            })
            .collect()
    };
    let first = sync(&store).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    assert_eq!(offsets(&sim), ["0", "50", "100", "150", "200"]);
    assert_eq!(
        stored(&*store, conn.id, "system_conversations").await.len(),
        250
    );
    let state = store
        .sync_state(conn.id, "system_conversations")
        .await
        .expect("state");
    assert_eq!(state.cursor.as_deref(), Some("250"));
    sim.clear_log();
    sync(&store).await;
    assert_eq!(offsets(&sim), ["250"], "one page per delta");
    let state = store
        .sync_state(conn.id, "system_conversations")
        .await
        .expect("state");
    assert_eq!(state.cursor, None, "wrapped to the start");
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.clear_log();
    sync(&store).await;
    assert_eq!(offsets(&sim), ["0"]);
    // A new notice sits at the top; `--full` reads its pages from the start, not from the
    // stored offset (50), so the notice is stored by this sync.
    let notice = sim.system_notice("Your item sold", "Ship it within 3 days.");
    sim.clear_log();
    let full = sync_with(&store, &SyncOptions::new(RunMode::Full), &NoProgress).await;
    assert_eq!(full.status, RunStatus::Success, "{:?}", full.error);
    assert_eq!(offsets(&sim), ["0", "50", "100", "150", "200"]);
    assert!(
        stored(&*store, conn.id, "system_conversations")
            .await
            .contains_key(&notice)
    );
}
both_backends!(system_mail_variant, system_mail_progresses);

/// The next midnight UTC after `t`, in ms.
fn next_utc_day(t: Timestamp) -> i64 {
    const DAY: i64 = 86_400_000;
    (t.0.div_euclid(DAY) + 1) * DAY
}

/// Issue 18 item 16: the day's call limit runs out during a full sync with ten
/// conversations in flight. The first 2001 stops the run at once (no retry into the
/// limit): it ends `waiting` until the reset eBay's rate-limit API names, the checkpoint
/// is kept, nothing more is sent before the reset (also by another process), and the
/// next day's sync resumes and completes.
async fn daily_limit_waits(db: &TestDb) {
    // 60 conversations in pages of 10, one call per thread: 66 calls, 40 a day.
    let cfg = EbaySimConfig {
        call_limit: Some(inlet_sim::ebay::CallLimit {
            calls: 40,
            window_secs: 86_400,
        }),
        long_threads: 0,
        system_conversations: 0,
        ..account(60)
    };
    let (sim, store, conn) = setup_ebay(db, &cfg, |c| c.page_size = 10).await;
    let t0 = SystemClock.now();
    let run = sync_with(&store, &SyncOptions::new(RunMode::Full), &NoProgress).await;
    assert_eq!(run.status, RunStatus::Waiting, "{:?}", run.error);
    let violations = sim.call_limit_violations();
    assert!(
        (1..=10).contains(&violations),
        "only the calls already in flight may meet the limit: {violations}"
    );
    assert_eq!(sim.rate_limit_api_calls(), 1, "the reset is asked once");
    let until = run.waiting_until.expect("waiting_until");
    assert!(
        (until.0 - next_utc_day(t0)).abs() <= 2000,
        "waits until the next UTC day: {until}"
    );
    assert_eq!(run.stats.quota_remaining, Some(0));
    let state = store
        .sync_state(conn.id, "conversations")
        .await
        .expect("state");
    let cp = state.checkpoint.expect("the checkpoint is kept");
    assert_eq!(
        cp.pages, 3,
        "three listing pages committed before the limit"
    );

    // Before the reset nothing is sent, by this process or another (a new connector).
    let sent = sim.request_count();
    let again = sync(&store).await;
    assert_eq!(again.status, RunStatus::Waiting, "{:?}", again.error);
    assert_eq!(again.waiting_until, Some(until));
    assert_eq!(sim.request_count(), sent, "nothing sent before the reset");
    assert_eq!(sim.call_limit_violations(), violations);

    // The next day: the sync resumes from the checkpoint and completes.
    sim.reset_call_window();
    let (conn, connector) = ebay_connector(&store).await;
    let tomorrow = inlet_core::ManualClock::new(Timestamp(until.0 + 1000));
    let done = inlet_engine::Engine::new(store.clone(), Arc::new(tomorrow))
        .sync(
            &conn,
            &connector,
            &SyncOptions::new(RunMode::Full),
            &NoProgress,
        )
        .await
        .expect("sync");
    assert_eq!(done.status, RunStatus::Success, "{:?}", done.error);
    assert!(stream_stats(&done, "conversations").resumed);
    assert_eq!(sim.call_limit_violations(), violations);
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(daily_call_limit_ends_waiting_and_resumes, daily_limit_waits);

/// Without eBay's rate-limit API the 2001 alone stops the run: it waits for the next
/// UTC day, and the calls in flight are the only ones over the limit.
async fn daily_limit_without_rate_limit_api(db: &TestDb) {
    let cfg = EbaySimConfig {
        call_limit: Some(inlet_sim::ebay::CallLimit {
            calls: 30,
            window_secs: 86_400,
        }),
        ..account(60)
    };
    let (sim, store, _conn) = setup_ebay(db, &cfg, |_| {}).await;
    sim.set_rate_limit_api(false);
    let t0 = SystemClock.now();
    let run = sync(&store).await;
    assert_eq!(run.status, RunStatus::Waiting, "{:?}", run.error);
    let violations = sim.call_limit_violations();
    assert!((1..=10).contains(&violations), "{violations}");
    let until = run.waiting_until.expect("waiting_until");
    assert!(
        (until.0 - next_utc_day(t0)).abs() <= 2000,
        "the next UTC day: {until}"
    );
    let sent = sim.request_count();
    let again = sync(&store).await;
    assert_eq!(again.status, RunStatus::Waiting);
    assert_eq!(sim.request_count(), sent);
}
both_backends!(
    daily_call_limit_without_the_rate_limit_api,
    daily_limit_without_rate_limit_api
);
