//! `inlet bench --provider ebay`: the issue-5 account (1,227 conversations, a few over 50
//! messages) synced from the eBay simulator: requests and seconds for the first sync, a
//! sync with no change, and a sync after 5 mixed changes (2 buyer messages, 2 replies the
//! seller wrote on the website, 1 new conversation) in three variants — a full list scan,
//! the newest-first delta (`sort=-last_modified_date`, stopping at the first unchanged
//! older conversation) and the `start_time` filter — with how many of the 5 changes each
//! sync saw, against the 1,252-call baseline of re-reading every thread.

use crate::bench::{Backend, BenchArgs, Cleanup, database};
use crate::output::Output;
use anyhow::Result;
use clap::ValueEnum;
use inlet_connectors::ebay::{EbayConfig, EbayConnector, EbayCredentials, EbayDelta};
use inlet_core::{Connector, NewConnection, RunMode, SystemClock};
use inlet_engine::{Engine, NoProgress, SyncOptions};
use inlet_http::HttpConfig;
use inlet_sim::ebay::{EbaySim, EbaySimConfig};
use serde::{Deserialize, Serialize};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Which simulated provider `inlet bench` syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchProvider {
    /// A full backfill of Reddit messages.
    Reddit,
    /// eBay conversations: first, no-change and 5-change syncs.
    Ebay,
}

/// The account of issue 5.
const CONVERSATIONS: u64 = 1227;
/// What re-reading every thread costs: one listing pass plus one call per thread.
const BASELINE: u64 = 1252;

#[derive(Debug, Serialize)]
struct Step {
    backend: Backend,
    step: &'static str,
    requests: u64,
    seconds: f64,
    threads_fetched: u64,
    /// Of the 5 changes made before this sync, how many it saw (read their thread).
    changes_seen: Option<u64>,
    status: String,
}

/// Run the eBay benchmark on the chosen backends.
pub async fn run(a: &BenchArgs, out: &Output) -> Result<ExitCode> {
    let backends = match a.backend {
        Backend::Both => vec![Backend::Sqlite, Backend::Postgres],
        b => vec![b],
    };
    let mut steps = Vec::new();
    // Each result once: on stdout as it is measured (text), or in the JSON array at the end.
    if !out.json {
        println!("baseline (every thread re-read): {BASELINE} requests per sync");
    }
    for b in backends {
        out.note(&format!(
            "bench: eBay, {CONVERSATIONS} conversations into {b:?} ..."
        ));
        let one = BenchArgs {
            backend: b,
            pg_url: a.pg_url.clone(),
            ..BenchArgs::for_provider(BenchProvider::Ebay)
        };
        let (url, cleanup) = database(&one).await?;
        let r = measure(b, &url).await;
        Cleanup::run(cleanup).await;
        for s in r? {
            if !out.json {
                println!("{}", line(&s));
            }
            steps.push(s);
        }
    }
    if out.json {
        out.emit(&steps, String::new);
    }
    Ok(ExitCode::SUCCESS)
}

fn line(s: &Step) -> String {
    let seen = s
        .changes_seen
        .map_or_else(String::new, |n| format!(", {n}/5 changes seen"));
    format!(
        "{:?} {:<30} {:>5} requests ({:>4} threads) in {:>6.2}s{seen}, {} (baseline {BASELINE})",
        s.backend, s.step, s.requests, s.threads_fetched, s.seconds, s.status
    )
}

async fn measure(b: Backend, url: &str) -> Result<Vec<Step>> {
    let cfg = EbaySimConfig {
        conversations: CONVERSATIONS,
        long_threads: 4,
        system_conversations: 30,
        call_limit: None,
        ..Default::default()
    };
    let sim = EbaySim::start(cfg.clone()).await?;
    let store = inlet_store::open(url).await?;
    let new = NewConnection {
        name: "bench-ebay".into(),
        workspace: "bench".into(),
        provider: "ebay".into(),
        config: serde_json::json!({}),
        credentials: Vec::new(),
    };
    let conn = store
        .create_connection(&new, inlet_core::Clock::now(&SystemClock))
        .await?;
    let engine = Engine::new(store.clone(), Arc::new(SystemClock));
    let mut creds = EbayCredentials {
        client_id: cfg.client_id.clone(),
        client_secret: cfg.client_secret.clone(),
        refresh_token: cfg.refresh_token.clone(),
        ..Default::default()
    };
    let mut steps = Vec::new();
    let config = |delta: EbayDelta, every: u32| EbayConfig {
        api_base: sim.api_base(),
        token_url: sim.token_url(),
        delta,
        full_scan_every: every,
        ..Default::default()
    };
    // 2 buyer messages, 2 replies the seller writes on the website, 1 new conversation;
    // returns the conversations that changed.
    let changes = |sim: &EbaySim, round: usize| {
        let ids = sim.conversation_ids("FROM_MEMBERS");
        let mut changed = Vec::new();
        for (k, id) in ids
            .iter()
            .skip(50 + round * 300)
            .step_by(53)
            .take(4)
            .enumerate()
        {
            if k < 2 {
                sim.buyer_message(id, "Any update on shipping?");
            } else {
                sim.seller_reply(id, "Shipped today, tracking attached.");
            }
            changed.push(id.clone());
        }
        changed.push(sim.new_conversation(
            &format!("buyer_new_{round}"),
            "Cast iron skillet 12in",
            "Is this still available?",
        ));
        changed
    };
    use EbayDelta::{NewestFirst, StartTime};
    // (step, delta variant, full_scan_every, change round). Scan every sync, or
    // (the delta variants) practically never.
    let plan: [(&'static str, EbayDelta, u32, Option<usize>); 6] = [
        ("first sync", NewestFirst, 1, None),
        ("no-change sync, full scan", NewestFirst, 1, None),
        ("5 changes, full scan", NewestFirst, 1, Some(0)),
        ("no-change sync, newest first", NewestFirst, 1000, None),
        ("5 changes, newest first", NewestFirst, 1000, Some(1)),
        ("5 changes, start_time", StartTime, 1000, Some(2)),
    ];
    for (name, delta, every, change) in plan {
        let changed = change.map(|round| changes(&sim, round));
        sim.clear_log();
        let connector = EbayConnector::new(config(delta, every), &creds, HttpConfig::default())?;
        let t = Instant::now();
        let run = engine
            .sync(
                &conn,
                &connector,
                &SyncOptions::new(RunMode::Delta),
                &NoProgress,
            )
            .await?;
        let secs = t.elapsed().as_secs_f64();
        if let Some(v) = connector.take_updated_credentials().await {
            creds = serde_json::from_value(v)?;
        }
        let log = sim.requests();
        let first_pages: Vec<&str> = log
            .iter()
            .filter(|r| r.path.contains("/conversation/") && r.query.contains("offset=0"))
            .map(|r| r.path.as_str())
            .collect();
        let seen = changed.map(|ids| {
            ids.iter()
                .filter(|id| {
                    first_pages
                        .iter()
                        .any(|p| p.ends_with(&format!("/conversation/{id}")))
                })
                .count() as u64
        });
        steps.push(Step {
            backend: b,
            step: name,
            requests: run.stats.requests,
            seconds: secs,
            threads_fetched: first_pages.len() as u64,
            changes_seen: seen,
            status: run.status.to_string(),
        });
    }
    Ok(steps)
}
