//! inlet-server: `inlet serve` — the HTTP API, the scheduler and the sync workers in
//! one process.
//!
//! [`Server::start`] wires a store, the credentials key and a clock into an engine, a
//! [`Dispatcher`] (one sync per connection under a database lease, coalesced triggers),
//! the scheduler loop and an axum router ([`api::router`]). [`Server::shutdown`] stops
//! accepting requests, stops the scheduler, asks running syncs to stop at their next
//! chunk boundary (checkpoint committed) and waits for them.
//!
//! Every route except `/healthz`, `/readyz` and `/health` needs `Authorization: Bearer <key>`
//! with a key made by `inlet apikey create` ([`keys`]); only BLAKE3 hashes of keys are
//! stored. The routes are described by the OpenAPI document at `/openapi.json`.
#![deny(missing_docs)]

pub mod api;
pub mod keys;
mod metrics;
pub mod openapi;
pub mod providers;
mod workspaces;

use inlet_core::secrets::{SecretBox, connection_aad};
use inlet_core::{Clock, Connection, Connector, ConnectorError, Store};
use inlet_engine::scheduler::{ScheduleConfig, Scheduler, SchedulerHandle, run_scheduler};
use inlet_engine::worker::{ConnectorFactory, Dispatcher, DispatcherConfig};
use inlet_engine::{AttachmentOptions, Engine};
use inlet_http::HttpConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (default 127.0.0.1:8080).
    pub bind: SocketAddr,
    /// Run the scheduler (off: syncs only start through the API).
    pub scheduler: bool,
    /// How often the scheduler looks for due connections.
    pub tick: Duration,
    /// Intervals and backoff.
    pub schedule: ScheduleConfig,
    /// Lease and worker settings.
    pub dispatcher: DispatcherConfig,
    /// HTTP settings of the connectors.
    pub http: HttpConfig,
    /// Record and download attachments like `inlet sync` does (`None`: off). Build it
    /// with the same code as the CLI (`inlet-cli`'s `attachments::options`).
    pub attachments: Option<AttachmentOptions>,
    /// Hosts a new connection's config may point its URLs at besides the provider's own
    /// (`api_base`, `token_url`, ...); exact names, compared case-insensitively. Empty:
    /// overrides are refused, so an API key cannot make the server fetch other hosts.
    pub allowed_override_hosts: Vec<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            scheduler: true,
            tick: Duration::from_secs(1),
            // Each provider's interval as its definition gives it.
            schedule: ScheduleConfig::with_intervals_min(
                inlet_connectors::provider::intervals_minutes(),
            ),
            dispatcher: DispatcherConfig::default(),
            http: HttpConfig::default(),
            attachments: None,
            allowed_override_hosts: Vec::new(),
        }
    }
}

/// Shared by the request handlers.
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Seals credentials of connections created through the API.
    pub secrets: SecretBox,
    /// Starts syncs.
    pub dispatcher: Dispatcher,
    /// The scheduler's heartbeat and due times.
    pub scheduler: Option<SchedulerHandle>,
    /// Scheduler tick, for the liveness judgement of `/readyz`.
    pub tick: Duration,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// HTTP settings used to validate new connections.
    pub http: HttpConfig,
    /// Hosts a new connection's config URLs may point at besides the provider's own.
    pub allowed_override_hosts: Vec<String>,
}

/// Builds connectors for stored connections by opening their sealed credentials.
pub fn connector_factory(secrets: SecretBox, http: HttpConfig) -> ConnectorFactory {
    Arc::new(
        move |conn: &Connection| -> Result<Box<dyn Connector>, ConnectorError> {
            let plain = secrets
                .open(&conn.credentials, &connection_aad(&conn.name))
                .map_err(|e| ConnectorError::Config(format!("connection {:?}: {e}", conn.name)))?;
            let creds: serde_json::Value = serde_json::from_slice(&plain).map_err(|_| {
                ConnectorError::Config(format!("stored credentials of {:?} are corrupt", conn.name))
            })?;
            inlet_connectors::build::connector(conn, creds, http.clone())
        },
    )
}

/// An engine that stores refreshed credentials sealed with `secrets`.
pub fn engine(store: Arc<dyn Store>, clock: Arc<dyn Clock>, secrets: SecretBox) -> Engine {
    Engine::new(store, clock).with_sealer(Arc::new(
        move |conn: &Connection, creds: &serde_json::Value| {
            let plain = serde_json::to_vec(creds).map_err(|e| e.to_string())?;
            secrets
                .seal(&plain, &connection_aad(&conn.name))
                .map_err(|e| e.to_string())
        },
    ))
}

/// A running `inlet serve`.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its dispatcher (tests and benchmarks look at it).
    pub dispatcher: Dispatcher,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    scheduler: Option<JoinHandle<()>>,
}

impl Server {
    /// Bind, start the scheduler and serve. Returns once listening.
    pub async fn start(
        store: Arc<dyn Store>,
        secrets: SecretBox,
        clock: Arc<dyn Clock>,
        opts: ServeOptions,
    ) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(opts.bind).await?;
        let addr = listener.local_addr()?;
        let (fin_tx, fin_rx) = mpsc::unbounded_channel();
        let mut engine = engine(store.clone(), clock.clone(), secrets.clone());
        if let Some(a) = opts.attachments.clone() {
            engine = engine.with_attachments(a);
        }
        let engine = Arc::new(engine);
        let dispatcher = Dispatcher::new(
            engine,
            connector_factory(secrets.clone(), opts.http.clone()),
            opts.dispatcher.clone(),
            Some(fin_tx),
        );
        let (stop, stop_rx) = watch::channel(false);
        let handle = opts.scheduler.then(SchedulerHandle::default);
        let scheduler = handle.clone().map(|h| {
            tokio::spawn(run_scheduler(
                dispatcher.clone(),
                fin_rx,
                store.clone(),
                clock.clone(),
                Scheduler::new(opts.schedule.clone()),
                opts.tick,
                h,
                stop_rx.clone(),
            ))
        });
        let state = Arc::new(AppState {
            store,
            secrets,
            dispatcher: dispatcher.clone(),
            scheduler: handle,
            tick: opts.tick,
            clock,
            http: opts.http,
            allowed_override_hosts: opts.allowed_override_hosts,
        });
        let app = api::router(state);
        let mut rx = stop_rx;
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(%addr, scheduler = opts.scheduler, "Serving.");
        Ok(Server {
            addr,
            dispatcher,
            stop,
            http,
            scheduler,
        })
    }

    /// Graceful shutdown: stop accepting, stop scheduling, stop running syncs at their
    /// next chunk boundary, wait for all of it.
    pub async fn shutdown(self) {
        tracing::info!("Shutting down: running syncs stop at their next chunk boundary.");
        self.stop.send_replace(true);
        self.dispatcher.shutdown().await;
        if let Some(s) = self.scheduler {
            let _ = s.await;
        }
        match self.http.await {
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP server ended with an error."),
            Err(e) => tracing::error!(error = %e, "HTTP server task failed."),
            Ok(Ok(())) => {}
        }
        tracing::info!("Stopped.");
    }
}
