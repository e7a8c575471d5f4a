//! `inlet bench --provider ebay`: the issue-5 account (1,227 conversations, a few over 50
//! messages) synced from the eBay simulator: requests and seconds for the first sync, a
//! sync with no change, and a sync after 5 changes (3 buyer messages, 2 seller-only
//! replies) in both variants — a full list scan, and the `start_time` filter — against
//! the 1,252-call baseline of re-reading every thread.

use crate::bench::{Backend, BenchArgs, Cleanup, database};
use crate::output::Output;
use anyhow::Result;
use clap::ValueEnum;
use inlet_connectors::ebay::{EbayConfig, EbayConnector, EbayCredentials};
use inlet_core::{Connector, NewConnection, Run, RunMode, SystemClock};
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
    format!(
        "{:?} {:<26} {:>5} requests ({:>4} threads) in {:>6.2}s, {} (baseline {BASELINE})",
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
    let mut step = |name: &'static str, run: Run, secs: f64, threads: u64| {
        steps.push(Step {
            backend: b,
            step: name,
            requests: run.stats.requests,
            seconds: secs,
            threads_fetched: threads,
            status: run.status.to_string(),
        });
    };
    // Scan every sync, or (start_time variant) practically never.
    let scan = |every: u32| EbayConfig {
        api_base: sim.api_base(),
        token_url: sim.token_url(),
        full_scan_every: every,
        ..Default::default()
    };
    let changes = |sim: &EbaySim, round: usize| {
        let ids = sim.conversation_ids("FROM_MEMBERS");
        for (k, id) in ids
            .iter()
            .skip(50 + round * 300)
            .step_by(53)
            .take(5)
            .enumerate()
        {
            if k < 3 {
                sim.buyer_message(id, "Any update on shipping?");
            } else {
                sim.seller_reply(id, "Shipped today, tracking attached.");
            }
        }
    };
    let plan: [(&'static str, u32, Option<usize>); 4] = [
        ("first sync", 1, None),
        ("no-change sync", 1, None),
        ("5 changes, full scan", 1, Some(0)),
        ("5 changes, start_time", 1000, Some(1)),
    ];
    for (name, every, change) in plan {
        if let Some(round) = change {
            changes(&sim, round);
        }
        sim.clear_log();
        let connector = EbayConnector::new(scan(every), &creds, HttpConfig::default())?;
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
        let threads = sim
            .requests()
            .iter()
            .filter(|r| r.path.contains("/conversation/") && r.query.contains("offset=0"))
            .count() as u64;
        step(name, run, secs, threads);
    }
    Ok(steps)
}
