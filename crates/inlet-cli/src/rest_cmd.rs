//! `inlet connect rest --spec FILE`: any paginated JSON API described by a spec file
//! (docs/rest.md). The spec is checked before anything is written, the credentials are
//! verified with one request, the record tables are created from the spec, then the
//! connection is stored; `inlet sync` syncs it like any provider.

use crate::app;
use crate::output::Output;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use clap::Args;
use inlet_connectors::rest::{self, RestConfig, RestCredentials};
use inlet_core::{Store, StreamSpec};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// `inlet connect rest`.
#[derive(Debug, Args)]
pub struct RestArgs {
    /// A unique name for the connection.
    #[arg(long)]
    pub name: String,
    /// Tenant / workspace the connection belongs to.
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// The spec file (TOML) describing the API's streams (see docs/rest.md).
    #[arg(long)]
    pub spec: PathBuf,
    /// Replaces the spec's base_url (staging, proxies, simulators).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Replaces the spec's auth.token_url.
    #[arg(long)]
    pub token_url: Option<String>,
    /// The token of `bearer` and `header` auth.
    #[arg(long, env = "INLET_REST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// OAuth 2 client id.
    #[arg(long, env = "INLET_REST_CLIENT_ID")]
    pub client_id: Option<String>,
    /// OAuth 2 client secret.
    #[arg(long, env = "INLET_REST_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// OAuth 2 refresh token (`grant = "refresh_token"`).
    #[arg(long, env = "INLET_REST_REFRESH_TOKEN", hide_env_values = true)]
    pub refresh_token: Option<String>,
    /// Store without checking the spec and credentials against the API first.
    #[arg(long)]
    pub no_verify: bool,
    /// Replace the credentials of an existing connection of this name (same spec).
    #[arg(long)]
    pub update: bool,
}

/// Check the spec, verify, create the tables, then store.
pub async fn connect(settings: &Settings, a: RestArgs, out: &Output) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.spec)
        .with_context(|| format!("cannot read the spec file {}", a.spec.display()))?;
    let config = RestConfig {
        spec: text,
        spec_file: Some(a.spec.display().to_string()),
        base_url: a.base_url.map(|u| u.trim_end_matches('/').to_string()),
        token_url: a.token_url,
    };
    config
        .parsed()
        .with_context(|| format!("{} is not a usable spec", a.spec.display()))?;
    let streams = rest::streams_of_spec(&config.spec)?;
    let mut creds = RestCredentials {
        token: a.token,
        client_id: a.client_id,
        client_secret: a.client_secret,
        refresh_token: a.refresh_token,
        ..Default::default()
    };
    let mut config_value = serde_json::to_value(&config)?;
    if !a.no_verify {
        let verified = rest::PROVIDER
            .verify(
                config_value,
                serde_json::to_value(&creds)?,
                crate::cmd::connect_http(),
            )
            .await
            .with_context(|| crate::cmd::verify_failed("the API"))?;
        config_value = verified.config;
        creds = serde_json::from_value(verified.credentials)?;
    }
    if a.update {
        // The spec (and so the tables) of a connection stays: only credentials change.
        let store = app::open_store(settings, false).await?;
        if let Some(existing) = store.get_connection(&a.name).await?
            && existing.provider == rest::NAME
            && existing.config.get("spec") != config_value.get("spec")
        {
            bail!(
                "{} differs from the spec connection {:?} was made with; a connection's spec cannot change (connect a new one)",
                a.spec.display(),
                a.name
            );
        }
    } else {
        app::check_name(&a.name)?;
        let store = app::open_store(settings, true).await?;
        ensure_tables(&*store, streams).await?;
    }
    let (store, conn) = app::store_connection(
        settings,
        app::NewVerified {
            name: &a.name,
            workspace: a.workspace,
            provider: rest::NAME,
            config: config_value,
            credentials: serde_json::to_value(&creds)?,
            update: a.update,
        },
    )
    .await?;
    let tables: Vec<&str> = streams.iter().map(|s| s.table).collect();
    out.emit(
        &json!({"connection": conn.name, "id": conn.id, "provider": rest::NAME, "verified": !a.no_verify, "tables": tables, "database": store.location()}),
        || {
            format!(
                "Connected {:?} (id {}) to the API of {}{}; tables {}; stored in {}.",
                conn.name,
                conn.id,
                a.spec.display(),
                if a.no_verify { " (not verified)" } else { "" },
                tables.join(", "),
                store.location()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// Create the record tables of a spec's streams (the one place that does; an existing
/// table of another shape is refused).
pub async fn ensure_tables(store: &dyn Store, streams: &[StreamSpec]) -> Result<()> {
    for s in streams {
        store
            .ensure_table(s)
            .await
            .with_context(|| format!("cannot create table {} of stream {}", s.table, s.name))?;
    }
    Ok(())
}
