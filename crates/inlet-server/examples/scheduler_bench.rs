//! Scheduler overhead: N connections (default 10,000) scheduled against the Reddit
//! simulator, which runs in a child process so that the CPU measured here is inlet's
//! alone (scheduler, dispatcher, leases, engine, store, HTTP client).
//!
//! Cycle 1 is every connection's first sync (it stores the few items the simulator
//! has); cycle 2 is measured: every sync is a no-op delta (nothing changed). Printed:
//! CPU per scheduled no-op sync, and the p50/p99/max delay between a connection's due
//! time and the start of its run.
//!
//! `cargo run -j2 --release -p inlet-server --example scheduler_bench -- [CONNECTIONS] [INTERVAL_SECS] [sqlite|postgres]`

use inlet_core::secrets::{SecretBox, connection_aad};
use inlet_core::{Clock, NewConnection, SystemClock};
use inlet_server::{ServeOptions, Server};
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

fn sim_config() -> RedditSimConfig {
    RedditSimConfig {
        messages: 4,
        comment_replies: 0,
        saved: 2,
        rate_limit: None,
        ..Default::default()
    }
}

/// Child mode: run the simulator and print its base URLs.
async fn child() -> Result<(), Error> {
    let sim = RedditSim::start(sim_config()).await?;
    println!("{} {}", sim.api_base(), sim.token_url());
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    Ok(())
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is 0, utime 11, stime 12 (clock ticks of 1/100 s).
    (ticks(11) + ticks(12)) / 100.0
}

fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--sim-child") {
        return child().await;
    }
    let n: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let interval_s: i64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(120);
    let backend = args.get(3).cloned().unwrap_or_else(|| "sqlite".into());

    let mut sim = std::process::Command::new(std::env::current_exe()?)
        .arg("--sim-child")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(sim.stdout.take().ok_or("no sim stdout")?).read_line(&mut line)?;
    let (api_base, token_url) = line.trim().split_once(' ').ok_or("bad sim line")?;
    let cfg = sim_config();

    let dir = tempfile::tempdir()?;
    let (url, pg) = if backend == "postgres" {
        let admin = std::env::var("INLET_BENCH_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("inlet_sched_bench_{}", std::process::id());
        let (c, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        c.batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .ok_or("url")?;
        (format!("{base}/{name}"), Some((c, name)))
    } else {
        (dir.path().join("bench.db").display().to_string(), None)
    };
    let store = inlet_store::open(&url).await?;
    let secrets = SecretBox::new(&[3u8; 32]);
    let creds = serde_json::json!({
        "client_id": cfg.client_id, "client_secret": cfg.client_secret, "refresh_token": cfg.refresh_token
    });
    let config = serde_json::json!({
        "api_base": api_base, "token_url": token_url, "username": cfg.username,
        "user_agent": "inlet-bench/0.1 (by /u/sim_user)", "page_size": 100
    });
    let t = Instant::now();
    for i in 0..n {
        let name = format!("c{i:05}");
        let sealed = secrets.seal(&serde_json::to_vec(&creds)?, &connection_aad(&name))?;
        store
            .create_connection(
                &NewConnection {
                    name,
                    workspace: format!("tenant{}", i % 100),
                    provider: "reddit".into(),
                    config: config.clone(),
                    credentials: sealed,
                },
                SystemClock.now(),
            )
            .await?;
    }
    eprintln!(
        "created {n} connections in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let mut opts = ServeOptions {
        bind: "127.0.0.1:0".parse()?,
        tick: Duration::from_millis(500),
        ..Default::default()
    };
    opts.schedule
        .intervals_ms
        .insert("reddit".into(), interval_s * 1000);
    opts.dispatcher.max_scheduled = 16;
    let server = Server::start(store.clone(), secrets, Arc::new(SystemClock), opts).await?;
    let d = server.dispatcher.clone();
    let total = |m: &inlet_engine::worker::Metrics| m.runs.values().sum::<u64>();

    // Cycle 1: first syncs.
    tokio::time::sleep(Duration::from_millis((interval_s * 1000) as u64)).await;
    let m1 = d.metrics();
    let first = d.take_start_delays();
    eprintln!(
        "cycle 1: {} runs ({} first syncs), p99 delay {} ms",
        total(&m1),
        first.len(),
        {
            let mut f = first.clone();
            f.sort_unstable();
            pct(&f, 0.99)
        }
    );
    // Cycle 2: measured.
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_millis((interval_s * 1000) as u64)).await;
    let (cpu1, wall) = (cpu_seconds(), wall0.elapsed().as_secs_f64());
    let m2 = d.metrics();
    let mut delays = d.take_start_delays();
    delays.sort_unstable();
    let runs = total(&m2) - total(&m1);
    let fetched = m2.fetched - m1.fetched;
    let requests = m2.requests - m1.requests;
    server.shutdown().await;
    let _ = sim.kill();
    let _ = sim.wait();
    if let Some((c, name)) = pg {
        drop(store);
        let _ = c
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
    }
    let cpu = cpu1 - cpu0;
    println!(
        "scheduler bench ({backend}): {n} connections, interval {interval_s}s, measured cycle {wall:.0}s"
    );
    println!(
        "  no-op syncs: {runs} ({fetched} records fetched, {requests} requests, {:.2} requests/sync)",
        requests as f64 / runs.max(1) as f64
    );
    println!(
        "  CPU: {cpu:.1}s total, {:.2} ms per scheduled no-op sync ({:.0}% of one core)",
        cpu * 1000.0 / runs.max(1) as f64,
        cpu * 100.0 / wall
    );
    println!(
        "  due -> start delay: p50 {} ms, p99 {} ms, max {} ms over {} scheduled runs",
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        delays.last().copied().unwrap_or(0),
        delays.len()
    );
    Ok(())
}
