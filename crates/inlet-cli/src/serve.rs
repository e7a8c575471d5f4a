//! `inlet serve` (API + scheduler + workers) and `inlet apikey`.

use crate::app;
use crate::keys;
use crate::output::Output;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use inlet_core::{Clock, SystemClock};
use inlet_server::{ServeOptions, Server};
use serde_json::json;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// `inlet serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "INLET_BIND")]
    pub bind: SocketAddr,
    /// Do not run the scheduler (syncs start only through the API).
    #[arg(long)]
    pub no_scheduler: bool,
    /// Sync interval of a provider, as PROVIDER=MINUTES (repeatable; defaults: reddit=10,
    /// slack/gong/fathom/gmail=15, others 15).
    #[arg(long = "interval", value_name = "PROVIDER=MINUTES")]
    pub intervals: Vec<String>,
    /// Scheduled syncs running at once.
    #[arg(long, default_value_t = 8)]
    pub max_syncs: usize,
    /// A host that connections created through the API may point `api_base`,
    /// `token_url` or another config URL at, besides the provider's own hosts
    /// (repeatable, or comma-separated in the variable). Without it such overrides are
    /// refused with 400, so an API key cannot make the server fetch internal addresses.
    #[arg(
        long = "allow-override-host",
        value_name = "HOST",
        env = "INLET_ALLOWED_OVERRIDE_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_override_hosts: Vec<String>,
}

/// `inlet apikey ...`.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a new API key and print it once (only its hash is stored).
    Create {
        /// What the key is for.
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List keys (prefix, name, created, revoked); never the keys themselves.
    List,
    /// Revoke a key by id: it stops working at once.
    Revoke {
        /// The key's id (from `inlet apikey list`).
        id: i64,
    },
}

fn options(settings: &Settings, a: &ServeArgs) -> Result<ServeOptions> {
    let mut allowed = Vec::new();
    for h in &a.allowed_override_hosts {
        let h = h.trim().trim_start_matches('[').trim_end_matches(']');
        let ip = h.parse::<std::net::IpAddr>().is_ok();
        if h.is_empty() || (!ip && h.contains(['/', ':', ' ', '@'])) {
            bail!(
                "--allow-override-host {h:?}: expected a host name or IP address such as 127.0.0.1, not a URL"
            );
        }
        allowed.push(h.to_ascii_lowercase());
    }
    let mut o = ServeOptions {
        bind: a.bind,
        scheduler: !a.no_scheduler,
        // The same downloader and blob store as `inlet sync`.
        attachments: crate::attachments::options(&settings.attachments)?,
        allowed_override_hosts: allowed,
        ..Default::default()
    };
    o.dispatcher.max_scheduled = a.max_syncs.max(1);
    for spec in &a.intervals {
        let Some((p, m)) = spec.split_once('=') else {
            bail!("--interval {spec:?}: expected PROVIDER=MINUTES, e.g. reddit=10");
        };
        let minutes: f64 = m
            .trim()
            .parse()
            .ok()
            .filter(|m: &f64| *m > 0.0 && m.is_finite())
            .with_context(|| format!("--interval {spec:?}: MINUTES must be a positive number"))?;
        o.schedule
            .intervals_ms
            .insert(p.trim().to_string(), (minutes * 60_000.0) as i64);
    }
    Ok(o)
}

/// `inlet serve`: runs until SIGTERM or SIGINT, then stops gracefully.
pub async fn serve(settings: &Settings, a: &ServeArgs, out: &Output) -> Result<ExitCode> {
    let opts = options(settings, a)?;
    let store = app::open_store(settings, true).await?;
    let secrets = keys::for_store(&*store, settings, true).await?;
    if store
        .list_api_keys()
        .await?
        .iter()
        .all(|k| k.revoked_at.is_some())
    {
        out.note("No API key yet: make one with `inlet apikey create` (every route but /healthz and /readyz needs one).");
    }
    let server = Server::start(store.clone(), secrets, Arc::new(SystemClock), opts)
        .await
        .with_context(|| format!("cannot listen on {}", a.bind))?;
    out.emit(
        &json!({"listening": server.addr.to_string(), "database": store.location()}),
        || {
            format!(
                "Listening on http://{} (database {}); Ctrl-C stops.",
                server.addr,
                store.location()
            )
        },
    );
    wait_for_signal().await;
    out.note("Stopping: running syncs finish their current chunk and keep their checkpoint.");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `inlet apikey ...`.
pub async fn apikey(settings: &Settings, cmd: &ApiKeyCommand, out: &Output) -> Result<ExitCode> {
    let store = app::open_store(settings, matches!(cmd, ApiKeyCommand::Create { .. })).await?;
    let now = SystemClock.now();
    match cmd {
        ApiKeyCommand::Create { name } => {
            let name = name.trim();
            if name.is_empty() {
                bail!("--name must not be empty");
            }
            let k = inlet_server::keys::generate()
                .map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
            let stored = store.create_api_key(name, &k.prefix, &k.hash, now).await?;
            // The key alone on stdout (`KEY=$(inlet apikey create ...)`), the notice on stderr.
            out.emit(
                &json!({"id": stored.id, "name": stored.name, "key": k.key}),
                || k.key.clone(),
            );
            out.note(&format!(
                "API key {} ({:?}) created. It is shown only now; send it as `Authorization: Bearer <key>`.",
                stored.id, stored.name
            ));
        }
        ApiKeyCommand::List => {
            let keys = store.list_api_keys().await?;
            out.emit(&keys, || {
                if keys.is_empty() {
                    return "no API keys (make one with `inlet apikey create`)".into();
                }
                keys.iter()
                    .map(|k| {
                        format!(
                            "{:>4}  {}…  {:<20} created {}{}",
                            k.id,
                            k.prefix,
                            k.name,
                            k.created_at,
                            k.revoked_at
                                .map_or(String::new(), |r| format!("  revoked {r}"))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ApiKeyCommand::Revoke { id } => {
            store
                .revoke_api_key(*id, now)
                .await
                .with_context(|| format!("cannot revoke API key {id}"))?;
            out.emit(&json!({"revoked": id}), || format!("API key {id} revoked."));
        }
    }
    Ok(ExitCode::SUCCESS)
}
