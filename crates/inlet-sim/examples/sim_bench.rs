//! Throughput benchmark: a Reddit simulator with 1,000,000 messages (no rate limit, no cap),
//! paged through completely (inbox + sent = every message) with a plain reqwest client that
//! parses every page. Server-side rendering alone is measured by the ignored unit test
//! `render_speed` (`cargo test --release -p inlet-sim --lib render_speed -- --ignored --nocapture`).
//!
//! `cargo run -j2 --release -p inlet-sim --example sim_bench`

use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::time::Instant;

#[derive(Deserialize)]
struct Listing {
    data: ListingData,
}

#[derive(Deserialize)]
struct ListingData {
    after: Option<String>,
    children: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

type Error = Box<dyn std::error::Error>;

async fn token(http: &reqwest::Client, sim: &RedditSim) -> Result<String, Error> {
    let t: Token = http
        .post(sim.token_url())
        .basic_auth("sim_client_id", Some("sim_client_secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "sim_refresh_token"),
        ])
        .send()
        .await?
        .json()
        .await?;
    Ok(t.access_token)
}

/// Pages through `path`; returns (items, pages, bytes).
async fn pull(http: &reqwest::Client, url: &str, token: &str) -> Result<(u64, u64, u64), Error> {
    let (mut items, mut pages, mut bytes) = (0u64, 0u64, 0u64);
    let mut after: Option<String> = None;
    loop {
        let mut q = vec![("limit", "100".to_string()), ("raw_json", "1".to_string())];
        if let Some(a) = &after {
            q.push(("after", a.clone()));
        }
        let body = http
            .get(url)
            .bearer_auth(token)
            .query(&q)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let page: Listing = serde_json::from_slice(&body)?;
        bytes += body.len() as u64;
        items += page.data.children.len() as u64;
        pages += 1;
        match page.data.after {
            Some(a) => after = Some(a),
            None => return Ok((items, pages, bytes)),
        }
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let messages = 1_000_000;
    let sim = RedditSim::start(RedditSimConfig {
        messages,
        comment_replies: 0,
        saved: 0,
        rate_limit: None,
        listing_cap: None,
        ..RedditSimConfig::default()
    })
    .await?;
    let http = reqwest::Client::builder()
        .user_agent("inlet-sim-bench/0.1")
        .build()?;
    let token = token(&http, &sim).await?;
    let started = Instant::now();
    // Inbox and sent are pulled concurrently (two connections), like a connector syncing
    // two streams; together they hold every message exactly once.
    let base = sim.api_base();
    let (inbox_url, sent_url) = (
        format!("{base}/message/inbox"),
        format!("{base}/message/sent"),
    );
    let (inbox, sent) = tokio::join!(
        pull(&http, &inbox_url, &token),
        pull(&http, &sent_url, &token)
    );
    let (mut items, mut pages, mut bytes) = (0, 0, 0);
    for (path, r) in [("/message/inbox", inbox?), ("/message/sent", sent?)] {
        println!("{path}: {} items in {} pages", r.0, r.1);
        items += r.0;
        pages += r.1;
        bytes += r.2;
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(items, messages, "every message exactly once");
    println!(
        "pulled {items} messages in {pages} pages, {:.1} MB, in {secs:.2}s: {:.0} messages/s, {:.1} MB/s",
        bytes as f64 / 1e6,
        items as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    println!("server log: {} requests", sim.request_count());
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS unavailable"),
    }
    Ok(())
}
