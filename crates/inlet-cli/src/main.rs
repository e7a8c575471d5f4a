//! `inlet`: keep a database you own in sync with the services where your data lives.

mod app;
mod attachments;
mod bench;
mod bench_ebay;
mod cmd;
mod connect;
mod demo;
mod ebay_cmd;
mod import;
mod keys;
mod output;
mod progress;
mod rest_cmd;
mod serve;
mod settings;
mod workspace;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// inlet: keep a database you own (SQLite or PostgreSQL) in sync with Reddit and other
/// services, incrementally, within rate limits, noticing deletions.
#[derive(Debug, Parser)]
#[command(name = "inlet", version, about, long_about = None)]
pub struct Cli {
    /// Database: a SQLite file path (default ./inlet.db), sqlite:PATH, or postgres://...
    #[arg(long, global = true, env = "INLET_DATABASE_URL")]
    database_url: Option<String>,
    /// Config file (TOML; ./inlet.toml is read when present).
    #[arg(long, global = true, env = "INLET_CONFIG")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a full and a delta sync against the built-in Reddit simulator (offline).
    Demo(demo::DemoArgs),
    /// Add a connection to a provider account.
    Connect {
        #[command(subcommand)]
        provider: connect::ConnectProvider,
    },
    /// Sync one connection, or every active one.
    Sync(SyncArgs),
    /// Show connections, their streams and sync state.
    Status,
    /// Show recent sync runs with their stats.
    Runs {
        /// Only this connection (name or id).
        connection: Option<String>,
        /// How many runs (at least 1).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Write a stream's records to stdout or a file.
    Export(cmd::ExportArgs),
    /// Measure a full backfill from the simulator: records/s, requests, peak memory.
    Bench(bench::BenchArgs),
    /// Re-fetch one entity now, e.g. one conversation right after sending a message.
    Refresh(ebay_cmd::RefreshArgs),
    /// Images linked from synced records: list them, retry failed downloads.
    Attachments {
        #[command(subcommand)]
        command: attachments::AttachmentsCommand,
    },
    /// Import a data export file as the whole truth of a stream (add new, tombstone missing).
    Import {
        #[command(subcommand)]
        source: import::ImportSource,
    },
    /// Delete tombstoned records (removed at the provider) older than a given age.
    Purge(import::PurgeArgs),
    /// Run the HTTP API, the scheduler and the sync workers until SIGTERM/SIGINT.
    Serve(serve::ServeArgs),
    /// Manage API keys for `inlet serve`.
    Apikey {
        #[command(subcommand)]
        command: serve::ApiKeyCommand,
    },
    /// Workspaces (tenants) that own connections: create, list, show, pause, resume.
    Workspace {
        #[command(subcommand)]
        command: workspace::WorkspaceCommand,
    },
}

/// `inlet sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Connection name or id (all active connections when omitted).
    pub connection: Option<String>,
    /// Re-read every page instead of syncing from the cursor.
    #[arg(long)]
    pub full: bool,
    /// Only these streams (repeatable).
    #[arg(long = "stream")]
    pub streams: Vec<String>,
    /// Also list every id of the reconcilable streams and tombstone what the provider no
    /// longer has (otherwise done every 10th sync).
    #[arg(long)]
    pub reconcile: bool,
    /// Let a reconcile remove more than the safety valve's share of a stream (default 50%).
    #[arg(long)]
    pub force: bool,
    /// When another process is syncing the connection, wait for it to finish instead of
    /// stopping with a message that names it.
    #[arg(long)]
    pub wait: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server logs what it does (ticks, runs); one-shot commands only warnings.
    init_logs(cli.log_format, matches!(cli.command, Command::Serve(_)));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        // `inlet export ... | head`: the reader left; that is not a failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = output::Output::new(cli.json);
    if let Command::Bench(args) = &cli.command {
        return bench::run(args, &out).await;
    }
    if let Command::Demo(args) = &cli.command {
        return demo::run(args, &out).await;
    }
    let settings = settings::Settings::resolve(cli.config.as_deref(), cli.database_url.clone())?;
    match cli.command {
        Command::Connect { provider } => connect::connect(&settings, provider, &out).await,
        Command::Sync(args) => cmd::sync(&settings, &args, &out).await,
        Command::Status => cmd::status(&settings, &out).await,
        Command::Runs { connection, limit } => {
            cmd::runs(&settings, connection.as_deref(), limit, &out).await
        }
        Command::Export(args) => cmd::export(&settings, &args, &out).await,
        Command::Refresh(args) => ebay_cmd::refresh(&settings, &args, &out).await,
        Command::Attachments { command } => attachments::run(&settings, command, &out).await,
        Command::Import { source } => import::import(&settings, source, &out).await,
        Command::Purge(args) => import::purge(&settings, &args, &out).await,
        Command::Serve(args) => serve::serve(&settings, &args, &out).await,
        Command::Apikey { command } => serve::apikey(&settings, &command, &out).await,
        Command::Workspace { command } => workspace::run(&settings, command, &out).await,
        Command::Demo(_) | Command::Bench(_) => unreachable!("handled above"),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|ce| {
                matches!(ce.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
            || c.downcast_ref::<serde_json::Error>().is_some_and(|je| je.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

fn init_logs(format: LogFormat, server: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::field::MakeExt;
    let default = if server { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("INLET_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal, never in a file or a pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            // Every field value (connection names from an older database, provider error
            // texts) is printed with its control characters escaped: one event, one line,
            // nothing hidden or reordered.
            let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                let text = format!("{value:?}");
                let text = inlet_core::escape_unsafe(&text);
                if field.name() == "message" {
                    write!(w, "{text}")
                } else {
                    write!(w, "{}={text}", field.name())
                }
            })
            .delimited(" ");
            builder.fmt_fields(fields).init()
        }
        LogFormat::Json => builder.json().init(),
    }
}
