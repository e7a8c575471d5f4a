//! The everyday commands: connect, sync, status, runs, export.

use crate::SyncArgs;
use crate::app::{self, RunReport, run_line};
use crate::keys;
use crate::output::Output;
use crate::progress::Bar;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use inlet_core::{
    ConnectionStatus, Connector, RunMode, RunStatus, StreamSpec, Value, escape_unsafe,
};
use inlet_engine::SyncOptions;
use inlet_engine::lease::{DEFAULT_LEASE_TTL_MS, SyncLease};
use inlet_http::HttpConfig;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `inlet sync`: every connection's outcome is reported; the exit code says if any failed.
pub async fn sync(settings: &Settings, args: &SyncArgs, out: &Output) -> Result<ExitCode> {
    let store = app::open_store(settings, false).await?;
    let conns = match &args.connection {
        Some(k) => vec![app::connection(&*store, k).await?],
        None => store.list_connections().await?,
    };
    if conns.is_empty() {
        bail!("there are no connections yet (add one with `inlet connect`)");
    }
    let key = keys::for_store(&*store, settings, false).await?;
    let engine = crate::attachments::wire(
        app::engine(store.clone(), key.clone()),
        &settings.attachments,
    )?;
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    spawn_ctrl_c(cancel.clone());
    spawn_sigterm(cancel.clone());
    let holder = inlet_engine::worker::holder_id();
    let mut failed = false;
    let mut waiting = false;
    let mut reports = Vec::new();
    if args.full && args.reconcile {
        bail!(
            "--full and --reconcile cannot be combined (a full sync re-reads everything; --reconcile lists ids after a delta)"
        );
    }
    for conn in &conns {
        if args.connection.is_none() && app::import_only(&conn.provider) {
            continue; // filled by `inlet import`, nothing to sync
        }
        if args.connection.is_none()
            && conn.status != ConnectionStatus::Active
            && conn.status != ConnectionStatus::Failing
        {
            out.note(&format!(
                "{}: skipped ({})",
                escape_unsafe(&conn.name),
                conn.status
            ));
            continue;
        }
        let connector = match app::connector(conn, &key, HttpConfig::default()) {
            Ok(c) => c,
            Err(e) => {
                failed = true;
                out.note(&format!(
                    "{}: cannot sync: {}",
                    escape_unsafe(&conn.name),
                    escape_unsafe(&format!("{e:#}"))
                ));
                reports.push(
                    json!({"connection": conn.name, "status": "failed", "error": format!("{e:#}")}),
                );
                continue;
            }
        };
        check_streams(&*connector, &args.streams)?;
        let mut opts = SyncOptions::new(if args.full {
            RunMode::Full
        } else if args.reconcile {
            RunMode::Reconcile
        } else {
            RunMode::Delta
        });
        opts.force = args.force;
        opts.streams = (!args.streams.is_empty()).then(|| args.streams.clone());
        opts.cancel = Some(cancel.clone());
        // One sync per connection across processes: the lease `inlet serve` takes too.
        let lease = if args.wait {
            SyncLease::acquire_waiting(
                &engine,
                conn.id,
                &holder,
                DEFAULT_LEASE_TTL_MS,
                cancel.clone(),
                std::time::Duration::from_secs(1),
            )
            .await
        } else {
            SyncLease::try_acquire(
                &engine,
                conn.id,
                &holder,
                DEFAULT_LEASE_TTL_MS,
                cancel.clone(),
            )
            .await
        };
        let lease = match lease {
            Ok(Ok(l)) => l,
            Err(e) => {
                // The store failed taking the lease; report it and go on.
                failed = true;
                out.note(&format!("{}: sync failed: {e}", conn.name));
                reports.push(
                    json!({"connection": conn.name, "status": "failed", "error": e.to_string()}),
                );
                continue;
            }
            Ok(Err(busy)) => {
                failed = true;
                let msg = format!(
                    "connection {:?} is being synced by {busy}; not started (wait for it, or pass --wait)",
                    conn.name
                );
                out.note(&format!("{}: {msg}", conn.name));
                reports.push(json!({"connection": conn.name, "status": "busy", "run_id": busy.run_id, "error": msg}));
                continue;
            }
        };
        opts.lease_holder = Some(lease.holder().to_string());
        let bar = Bar::new(&conn.name);
        let done = std::sync::atomic::AtomicBool::new(false);
        let (run, ()) = tokio::join!(
            async {
                let run = engine.sync(conn, &*connector, &opts, &bar).await;
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                run
            },
            bar.watch_waits(&*connector, &done)
        );
        bar.finish();
        if let Err(e) = lease.release().await {
            tracing::warn!(connection = %conn.name, error = %e, "Could not release the sync lease; it lapses in a minute.");
        }
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                // The store failed under this connection's sync; report it and go on.
                failed = true;
                out.note(&format!(
                    "{}: sync failed: {}",
                    escape_unsafe(&conn.name),
                    escape_unsafe(&format!("{e:#}"))
                ));
                reports.push(
                    json!({"connection": conn.name, "status": "failed", "error": format!("{e:#}")}),
                );
                continue;
            }
        };
        failed |= matches!(run.status, RunStatus::Failed | RunStatus::Interrupted);
        waiting |= run.status == RunStatus::Waiting;
        if !out.json {
            println!("{}", run_line(&conn.name, &run));
        }
        reports.push(serde_json::to_value(RunReport {
            connection: &conn.name,
            duration_ms: run.duration_ms(),
            run: &run,
        })?);
    }
    if out.json {
        println!("{}", serde_json::to_string(&reports)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else if waiting {
        // EX_TEMPFAIL: nothing failed, try again later (after the time printed).
        ExitCode::from(EXIT_WAITING)
    } else {
        ExitCode::SUCCESS
    })
}

/// `inlet sync`'s exit code when a run ended waiting for the provider's rate limit.
pub const EXIT_WAITING: u8 = 75;

fn check_streams(connector: &dyn Connector, wanted: &[String]) -> Result<()> {
    let names: Vec<&str> = connector.streams().iter().map(|s| s.name).collect();
    for w in wanted {
        if !names.contains(&w.as_str()) {
            bail!(
                "{} has no stream {w:?} (streams: {})",
                connector.provider(),
                names.join(", ")
            );
        }
    }
    Ok(())
}

/// After a second Ctrl-C, how long a sync may still take to commit what it fetched.
const ABORT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn spawn_ctrl_c(cancel: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "Stopping at the next page boundary (the checkpoint is kept; press Ctrl-C again to abort)."
            );
            cancel.store(true, std::sync::atomic::Ordering::SeqCst);
            if tokio::signal::ctrl_c().await.is_ok() {
                // The sync stops within moments of the first Ctrl-C (waits and requests in
                // flight are cut short); give it that long to commit the pages it fetched,
                // then quit, or at once on a third Ctrl-C.
                eprintln!(
                    "Aborting once the pages fetched so far are saved (at most {} s; Ctrl-C again to quit at once).",
                    ABORT_GRACE.as_secs()
                );
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    () = tokio::time::sleep(ABORT_GRACE) => {}
                }
                std::process::exit(130);
            }
        }
    });
}

/// SIGTERM (a service manager stopping `inlet sync`) stops the sync like Ctrl-C: at the
/// next page boundary, the run recorded as `interrupted`.
fn spawn_sigterm(cancel: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate())
            && term.recv().await.is_some()
        {
            eprintln!("SIGTERM: stopping at the next page boundary (the checkpoint is kept).");
            cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    #[cfg(not(unix))]
    let _ = cancel;
}

/// `inlet status`.
pub async fn status(settings: &Settings, out: &Output) -> Result<ExitCode> {
    let store = app::open_store_read(settings).await?;
    let mut all = Vec::new();
    let mut text = format!("database: {} ({})\n", store.location(), store.backend());
    for conn in store.list_connections().await? {
        let states = store.sync_states(conn.id).await?;
        let mut streams = serde_json::Map::new();
        // Names and notes from a database older than the name rule may hold control
        // characters: escaped, so they cannot forge or hide lines.
        text.push_str(&format!(
            "{} (id {}, {}, workspace {}): {}\n",
            escape_unsafe(&conn.name),
            conn.id,
            conn.provider,
            escape_unsafe(&conn.workspace),
            conn.status
        ));
        if let Some(d) = &conn.status_detail {
            text.push_str(&format!("  note: {}\n", escape_unsafe(d)));
        }
        let mut derived = Vec::new();
        for spec in inlet_connectors::build::streams_of_connection(&conn) {
            let st = states.get(spec.name).cloned().unwrap_or_default();
            let live = store.count_live(conn.id, spec).await?;
            let last = st
                .last_success_at
                .map_or("never".to_string(), |t| t.to_string());
            let resume = if st.checkpoint.is_some() {
                ", interrupted pass will resume"
            } else {
                ""
            };
            text.push_str(&format!(
                "  {:<8} {live:>9} records  last success {last}  syncs {}{resume}\n",
                spec.name, st.sync_count
            ));
            streams.insert(spec.name.into(), json!({"records": live, "state": st}));
            if let Some(d) = spec.derived.filter(|d| !derived.contains(&d.table)) {
                derived.push(d.table);
            }
        }
        for table in derived {
            let n = store.count_derived(conn.id, table).await?;
            text.push_str(&format!("  {table}: {n} rows (derived)\n"));
            streams.insert(table.into(), json!({"records": n}));
        }
        all.push(json!({"connection": conn, "streams": streams}));
    }
    out.emit(&all, || text.trim_end().to_string());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn specs_of(provider: &str) -> &'static [StreamSpec] {
    inlet_connectors::build::streams_of(provider)
}

/// `inlet runs`.
pub async fn runs(
    settings: &Settings,
    connection: Option<&str>,
    limit: u32,
    out: &Output,
) -> Result<ExitCode> {
    let store = app::open_store_read(settings).await?;
    let conns = store.list_connections().await?;
    let filter = match connection {
        Some(k) => Some(app::connection(&*store, k).await?.id),
        None => None,
    };
    let runs = store.list_runs(filter, limit).await?;
    let name = |id: i64| {
        conns
            .iter()
            .find(|c| c.id == id)
            .map_or("?", |c| c.name.as_str())
    };
    let reports: Vec<RunReport> = runs
        .iter()
        .map(|r| RunReport {
            connection: name(r.connection_id),
            duration_ms: r.duration_ms(),
            run: r,
        })
        .collect();
    out.emit(&reports, || {
        if runs.is_empty() {
            return "no runs yet".into();
        }
        runs.iter()
            .map(|r| format!("{}  {}", r.started_at, run_line(name(r.connection_id), r)))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(ExitCode::SUCCESS)
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSON object per line, `raw` as JSON.
    Jsonl,
    /// Comma-separated with a header row, `raw` as a JSON string.
    Csv,
}

/// `inlet export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Connection name or id.
    pub connection: String,
    /// Stream (reddit: inbox, sent, saved).
    pub stream: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Include tombstoned (deleted at the provider) records.
    #[arg(long)]
    pub include_deleted: bool,
}

/// `inlet export`: streams keyset pages, never the whole table in memory.
pub async fn export(settings: &Settings, a: &ExportArgs, out: &Output) -> Result<ExitCode> {
    let store = app::open_store_read(settings).await?;
    let conn = app::connection(&*store, &a.connection).await?;
    let specs = inlet_connectors::build::streams_of_connection(&conn);
    let derived = specs
        .iter()
        .filter_map(|s| s.derived)
        .find(|d| d.table == a.stream);
    if let Some(der) = derived {
        return export_derived(&*store, &conn, der, a, out).await;
    }
    let Some(spec) = specs.iter().find(|s| s.name == a.stream) else {
        let mut names: Vec<&str> = specs.iter().map(|s| s.name).collect();
        for d in specs.iter().filter_map(|s| s.derived) {
            if !names.contains(&d.table) {
                names.push(d.table);
            }
        }
        bail!(
            "{} has no stream {:?} (streams: {})",
            conn.provider,
            a.stream,
            names.join(", ")
        );
    };
    let sink: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let w = std::io::BufWriter::new(sink);
    let mut sink = match a.format {
        Format::Jsonl => Sink::Jsonl(w),
        Format::Csv => {
            let mut c = csv::Writer::from_writer(w);
            let mut header = vec!["id"];
            header.extend(spec.columns.iter().map(|c| c.name));
            header.extend(["raw", "first_seen_at", "updated_at", "deleted_at"]);
            c.write_record(&header)?;
            Sink::Csv(Box::new(c))
        }
    };
    let (mut after, mut n) = (None::<String>, 0u64);
    loop {
        let rows = store
            .export_page(conn.id, spec, after.as_deref(), 1000, a.include_deleted)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for r in &rows {
            n += 1;
            sink.write(spec, r)?;
        }
    }
    sink.flush()?;
    if a.output.is_some() || out.json {
        out.note(&format!("exported {n} records"));
    }
    Ok(ExitCode::SUCCESS)
}

/// `inlet export CONNECTION <derived table>`: a table inlet computes from a stream (e.g.
/// `reddit_conversations`), keyset pages as for a stream; no raw JSON or tombstones.
async fn export_derived(
    store: &dyn inlet_core::Store,
    conn: &inlet_core::Connection,
    der: &inlet_core::DerivedSpec,
    a: &ExportArgs,
    out: &Output,
) -> Result<ExitCode> {
    let sink: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let w = std::io::BufWriter::new(sink);
    let mut sink = match a.format {
        Format::Csv => {
            let mut c = csv::Writer::from_writer(w);
            let mut header = vec!["id"];
            header.extend(der.columns.iter().map(|c| c.column.name));
            header.push("updated_at");
            c.write_record(&header)?;
            Sink::Csv(Box::new(c))
        }
        Format::Jsonl => Sink::Jsonl(w),
    };
    let (mut after, mut n) = (None::<String>, 0u64);
    loop {
        let rows = store
            .export_derived_page(conn.id, der, after.as_deref(), 1000)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for r in &rows {
            n += 1;
            match &mut sink {
                Sink::Csv(c) => {
                    let mut rec = vec![r.id.clone()];
                    rec.extend(r.values.iter().map(cell));
                    rec.push(r.updated_at.to_string());
                    c.write_record(&rec)?;
                }
                Sink::Jsonl(w) => {
                    let mut obj = serde_json::Map::new();
                    obj.insert("id".into(), json!(r.id));
                    for (col, v) in der.columns.iter().zip(&r.values) {
                        obj.insert(col.column.name.into(), json_value(v));
                    }
                    obj.insert("updated_at".into(), json!(r.updated_at));
                    serde_json::to_writer(&mut *w, &obj)?;
                    w.write_all(b"\n")?;
                }
            }
        }
    }
    sink.flush()?;
    if a.output.is_some() || out.json {
        out.note(&format!("exported {n} rows"));
    }
    Ok(ExitCode::SUCCESS)
}

enum Sink<W: Write> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> Sink<W> {
    fn write(&mut self, spec: &StreamSpec, r: &inlet_core::ExportRow) -> Result<()> {
        match self {
            Sink::Csv(c) => {
                let mut rec = vec![r.id.clone()];
                rec.extend(r.values.iter().map(cell));
                rec.push(r.raw.clone());
                rec.push(r.first_seen_at.to_string());
                rec.push(r.updated_at.to_string());
                rec.push(r.deleted_at.map(|d| d.to_string()).unwrap_or_default());
                c.write_record(&rec)?;
            }
            Sink::Jsonl(w) => {
                let mut obj = serde_json::Map::new();
                obj.insert("id".into(), json!(r.id));
                for (col, v) in spec.columns.iter().zip(&r.values) {
                    obj.insert(col.name.into(), json_value(v));
                }
                let raw = serde_json::from_str(&r.raw)
                    .unwrap_or_else(|_| serde_json::Value::String(r.raw.clone()));
                obj.insert("raw".into(), raw);
                obj.insert("first_seen_at".into(), json!(r.first_seen_at));
                obj.insert("updated_at".into(), json!(r.updated_at));
                obj.insert("deleted_at".into(), json!(r.deleted_at));
                serde_json::to_writer(&mut *w, &obj)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        match self {
            Sink::Csv(c) => c.flush()?,
            Sink::Jsonl(w) => w.flush()?,
        }
        Ok(())
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Text(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Time(t) => t.to_string(),
    }
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Text(s) => json!(s),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Bool(b) => json!(b),
        Value::Time(t) => json!(t),
    }
}
