//! `inlet bench`: a full backfill of N simulated Reddit messages into SQLite and
//! PostgreSQL, printing records/s, requests and peak RSS. Each (backend, size) runs in its
//! own child process so its peak memory is its own; the simulator runs inside the child
//! (it generates messages on the fly, so it adds little memory).

use crate::app;
use crate::output::Output;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use inlet_core::secrets::SecretBox;
use inlet_core::{Clock, NewConnection, RunMode, SystemClock};
use inlet_engine::{NoProgress, SyncOptions};
use inlet_http::HttpConfig;
use inlet_sim::reddit::{Faults, RedditSim, RedditSimConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::process::ExitCode;
use std::time::Instant;

/// Which databases to measure.
#[derive(Debug, Clone, Copy, PartialEq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A fresh SQLite file in the temp directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server of --pg-url.
    Postgres,
    /// Both.
    Both,
}

/// `inlet bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Messages to backfill.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Databases to measure.
    #[arg(long, value_enum, default_value = "both")]
    pub backend: Backend,
    /// PostgreSQL server (a database is created there and dropped afterwards).
    #[arg(
        long,
        env = "INLET_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub pg_url: String,
    /// Only run the given size (skip the 10x-smaller run that shows memory stays flat).
    #[arg(long)]
    pub single: bool,
    /// Share of API requests the simulator answers with a 5xx (0.1 = 10%); the run is
    /// also measured without faults for comparison.
    #[arg(long, value_parser = parse_share)]
    pub fault_5xx: Option<f64>,
    /// Internal: run one measurement in this process.
    #[arg(long, hide = true)]
    pub child: bool,
    /// Provider to simulate: `reddit` (backfill throughput) or `ebay` (requests per sync
    /// of 1,227 conversations).
    #[arg(long, value_enum, default_value = "reddit")]
    pub provider: crate::bench_ebay::BenchProvider,
}

impl BenchArgs {
    /// Defaults for one provider (SQLite, local PostgreSQL).
    pub fn for_provider(provider: crate::bench_ebay::BenchProvider) -> Self {
        BenchArgs {
            messages: 0,
            backend: Backend::Sqlite,
            pg_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            single: true,
            child: false,
            provider,
            fault_5xx: None,
        }
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share in [0, 1) such as 0.1")),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Measurement {
    backend: Backend,
    messages: u64,
    /// Share of requests answered 5xx.
    #[serde(default)]
    fault_5xx: f64,
    /// Messages in the database after the run (must equal `messages`).
    #[serde(default)]
    stored: u64,
    records: u64,
    seconds: f64,
    records_per_s: f64,
    requests: u64,
    retries: u64,
    peak_rss_mb: f64,
    status: String,
}

/// Run the benchmark.
pub async fn run(a: &BenchArgs, out: &Output) -> Result<ExitCode> {
    if a.provider == crate::bench_ebay::BenchProvider::Ebay {
        return crate::bench_ebay::run(a, out).await;
    }
    if a.child {
        let m = measure(a).await?;
        println!("{}", serde_json::to_string(&m)?);
        return Ok(ExitCode::SUCCESS);
    }
    let backends = match a.backend {
        Backend::Both => vec![Backend::Sqlite, Backend::Postgres],
        b => vec![b],
    };
    let sizes = if a.single || a.messages < 10 {
        vec![a.messages]
    } else {
        vec![a.messages / 10, a.messages]
    };
    let faults = match a.fault_5xx {
        Some(p) => vec![0.0, p],
        None => vec![0.0],
    };
    let mut results = Vec::new();
    for b in backends {
        for &n in &sizes {
            for &p in &faults {
                out.note(&format!(
                    "bench: {n} messages into {b:?}{} ...",
                    if p > 0.0 {
                        format!(" with {:.0}% 5xx", p * 100.0)
                    } else {
                        String::new()
                    }
                ));
                let m = run_child(b, n, p, &a.pg_url)?;
                // Each result once: on stdout as it is measured (text), or in the
                // JSON array at the end.
                if !out.json {
                    println!("{}", line(&m));
                }
                if m.stored != m.messages {
                    bail!(
                        "the run lost messages: {} stored of {}",
                        m.stored,
                        m.messages
                    );
                }
                results.push(m);
            }
        }
    }
    if out.json {
        out.emit(&results, String::new);
    }
    Ok(ExitCode::SUCCESS)
}

fn line(m: &Measurement) -> String {
    format!(
        "{:?}{}: {} records in {:.2}s = {:.0} records/s, {} requests ({} retries), peak RSS {:.1} MB, {}, {} of {} messages stored",
        m.backend,
        if m.fault_5xx > 0.0 {
            format!(" ({:.0}% 5xx)", m.fault_5xx * 100.0)
        } else {
            String::new()
        },
        m.records,
        m.seconds,
        m.records_per_s,
        m.requests,
        m.retries,
        m.peak_rss_mb,
        m.status,
        m.stored,
        m.messages
    )
}

fn run_child(b: Backend, n: u64, fault_5xx: f64, pg_url: &str) -> Result<Measurement> {
    let exe = std::env::current_exe().context("cannot find the inlet binary")?;
    let backend = match b {
        Backend::Sqlite => "sqlite",
        _ => "postgres",
    };
    let output = std::process::Command::new(exe)
        .args([
            "bench",
            "--child",
            "--single",
            "--backend",
            backend,
            "--messages",
            &n.to_string(),
            "--pg-url",
            pg_url,
            "--fault-5xx",
            &fault_5xx.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start the benchmark child process")?;
    if !output.status.success() {
        bail!(
            "benchmark of {backend} with {n} messages failed ({})",
            output.status
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).with_context(|| format!("benchmark child printed {text:?}"))
}

async fn measure(a: &BenchArgs) -> Result<Measurement> {
    let cfg = RedditSimConfig {
        messages: a.messages,
        comment_replies: 0,
        saved: 0,
        rate_limit: None,
        listing_cap: None,
        ..Default::default()
    };
    let sim = RedditSim::start(cfg.clone()).await?;
    if let Some(p) = a.fault_5xx.filter(|p| *p > 0.0) {
        sim.set_faults(Faults {
            http_5xx: p,
            ..Default::default()
        });
    }
    let (url, cleanup) = database(a).await?;
    let result = backfill(&url, &sim, &cfg, a).await;
    cleanup.run().await;
    sim.shutdown();
    result
}

async fn backfill(
    url: &str,
    sim: &RedditSim,
    cfg: &RedditSimConfig,
    a: &BenchArgs,
) -> Result<Measurement> {
    let store = inlet_store::open(url).await?;
    let key = SecretBox::from_hex(&SecretBox::generate_hex()?)?;
    let creds = json!({"client_id": cfg.client_id, "client_secret": cfg.client_secret, "refresh_token": cfg.refresh_token});
    let config = json!({"api_base": sim.api_base(), "token_url": sim.token_url(), "user_agent": "inlet-bench/0.1", "username": cfg.username});
    let new = NewConnection {
        name: "bench".into(),
        workspace: "bench".into(),
        provider: "reddit".into(),
        config,
        credentials: app::seal("bench", &creds, &key)?,
    };
    let conn = store.create_connection(&new, SystemClock.now()).await?;
    let connector = app::connector(&conn, &key, HttpConfig::default())?;
    let engine = app::engine(store.clone(), key);
    let mut opts = SyncOptions::new(RunMode::Full);
    opts.streams = Some(vec!["inbox".into(), "sent".into()]);
    let t = Instant::now();
    let run = engine.sync(&conn, &*connector, &opts, &NoProgress).await?;
    let secs = t.elapsed().as_secs_f64();
    let mut stored = 0;
    for s in connector.streams().iter().filter(|s| s.name != "saved") {
        stored += store.count_live(conn.id, s).await?;
    }
    Ok(Measurement {
        fault_5xx: a.fault_5xx.unwrap_or(0.0),
        stored,
        backend: if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        },
        messages: a.messages,
        records: run.stats.fetched,
        seconds: secs,
        records_per_s: run.stats.fetched as f64 / secs,
        requests: run.stats.requests,
        retries: run.stats.retries,
        peak_rss_mb: peak_rss_kb() as f64 / 1024.0,
        status: run.status.to_string(),
    })
}

/// Peak resident set size of this process (Linux `VmHWM`), in KiB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) enum Cleanup {
    File(std::path::PathBuf),
    Database { admin_url: String, name: String },
}

impl Cleanup {
    pub(crate) async fn run(self) {
        match self {
            Cleanup::File(p) => {
                for s in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{s}", p.display()));
                }
            }
            Cleanup::Database { admin_url, name } => {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            }
        }
    }
}

pub(crate) async fn database(a: &BenchArgs) -> Result<(String, Cleanup)> {
    let id = format!("{}_{}", std::process::id(), SystemClock.now().millis());
    if a.backend == Backend::Sqlite {
        let p = std::env::temp_dir().join(format!("inlet-bench-{id}.db"));
        return Ok((p.display().to_string(), Cleanup::File(p)));
    }
    let name = format!("inlet_bench_{id}");
    let (client, conn) = tokio_postgres::connect(&a.pg_url, tokio_postgres::NoTls)
        .await
        .with_context(|| "cannot reach PostgreSQL for the benchmark (set --pg-url)".to_string())?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let url = match a.pg_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => bail!("--pg-url must end with /DATABASE"),
    };
    Ok((
        url,
        Cleanup::Database {
            admin_url: a.pg_url.clone(),
            name,
        },
    ))
}
