//! `inlet connect ebay` and `inlet refresh`.

use crate::app;
use crate::keys;
use crate::output::Output;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use clap::Args;
use inlet_connectors::ebay::client::{DEFAULT_API_BASE, DEFAULT_TOKEN_URL};
use inlet_connectors::ebay::{EbayConfig, EbayCredentials};
use inlet_http::HttpConfig;
use serde_json::json;
use std::process::ExitCode;

/// `inlet connect ebay`.
#[derive(Debug, Args)]
pub struct EbayArgs {
    /// A unique name for the connection.
    #[arg(long)]
    pub name: String,
    /// Tenant / workspace the connection belongs to.
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// The eBay app's client id (App ID).
    #[arg(long, env = "EBAY_CLIENT_ID")]
    pub client_id: String,
    /// The app's client secret (Cert ID).
    #[arg(long, env = "EBAY_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: String,
    /// The user's refresh token (authorization-code grant with the commerce.message scope).
    #[arg(long, env = "EBAY_REFRESH_TOKEN", hide_env_values = true)]
    pub refresh_token: String,
    /// Message API base URL (sandbox: https://api.sandbox.ebay.com/commerce/message/v1).
    #[arg(long, default_value = DEFAULT_API_BASE)]
    pub api_base: String,
    /// Token endpoint URL.
    #[arg(long, default_value = DEFAULT_TOKEN_URL)]
    pub token_url: String,
    /// Conversation listings merged by id (repeatable): FROM_MEMBERS (eBay's documented
    /// type for buyer/seller messages) and FROM_OWNERS (undocumented; when eBay refuses it
    /// the run says so and goes on). eBay's own mail (FROM_EBAY) is always read, as its
    /// own stream.
    #[arg(long = "listing", default_values_t = vec!["FROM_MEMBERS".to_string()],
          value_parser = ["FROM_MEMBERS", "FROM_OWNERS"])]
    pub listings: Vec<String>,
    /// Every Nth sync lists all conversations instead of filtering by start_time.
    #[arg(long, default_value_t = 10)]
    pub full_scan_every: u32,
    /// Store without checking the credentials against eBay first.
    #[arg(long)]
    pub no_verify: bool,
    /// Replace the credentials of an existing connection of this name (re-authenticate).
    #[arg(long)]
    pub update: bool,
}

/// `inlet connect ebay`: verify with one listing call, then write; a failure writes nothing.
pub async fn connect(settings: &Settings, a: EbayArgs, out: &Output) -> Result<ExitCode> {
    let config = EbayConfig {
        api_base: a.api_base.trim_end_matches('/').to_string(),
        token_url: a.token_url,
        listings: a.listings,
        full_scan_every: a.full_scan_every,
        ..EbayConfig::default()
    };
    config.validate()?;
    let mut creds = EbayCredentials {
        client_id: a.client_id,
        client_secret: a.client_secret,
        refresh_token: a.refresh_token,
        ..Default::default()
    };
    if !a.no_verify {
        // The provider's own check: one listing call; keeps a rotated refresh token.
        let verified = inlet_connectors::ebay::PROVIDER
            .verify(
                serde_json::to_value(&config)?,
                serde_json::to_value(&creds)?,
                crate::cmd::connect_http(),
            )
            .await
            .with_context(|| crate::cmd::verify_failed("eBay"))?;
        creds = serde_json::from_value(verified.credentials)?;
    }
    let (store, conn) = app::store_connection(
        settings,
        app::NewVerified {
            name: &a.name,
            workspace: a.workspace,
            provider: "ebay",
            config: serde_json::to_value(&config)?,
            credentials: serde_json::to_value(&creds)?,
            update: a.update,
        },
    )
    .await?;
    let verified = if a.no_verify {
        "not verified"
    } else {
        "verified"
    };
    out.emit(&json!({"connection": conn.name, "id": conn.id, "provider": "ebay", "verified": !a.no_verify, "database": store.location()}), || {
        format!("Connected {:?} (id {}) to eBay ({verified}); stored in {}.", conn.name, conn.id, store.location())
    });
    Ok(ExitCode::SUCCESS)
}

/// `inlet refresh`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Connection name or id.
    pub connection: String,
    /// `[PROVIDER] ENTITY ID`, e.g. `conversation c-8812345001` (or `ebay conversation ...`).
    #[arg(num_args = 2..=3, required = true, value_names = ["ENTITY", "ID"])]
    pub what: Vec<String>,
}

/// `inlet refresh CONNECTION [PROVIDER] ENTITY ID`: re-fetch one entity now.
pub async fn refresh(settings: &Settings, a: &RefreshArgs, out: &Output) -> Result<ExitCode> {
    let (provider, entity, id) = match a.what.as_slice() {
        [entity, id] => (None, entity, id),
        [provider, entity, id] => (Some(provider), entity, id),
        _ => bail!(
            "give ENTITY ID, e.g. `inlet refresh {} conversation ID`",
            a.connection
        ),
    };
    let store = app::open_store(settings, false).await?;
    let conn = app::connection(&*store, &a.connection).await?;
    if let Some(p) = provider.filter(|p| **p != conn.provider) {
        bail!(
            "connection {:?} uses provider {}, not {p}",
            conn.name,
            conn.provider
        );
    }
    let key = keys::for_store(&*store, settings, false).await?;
    let connector = app::connector(&conn, &key, HttpConfig::default())?;
    let engine = app::engine(store.clone(), key);
    let outcome = engine
        .refresh_entity(&conn, &*connector, entity, id)
        .await?
        .with_context(|| format!("could not refresh {entity} {id}"))?;
    out.emit(&json!({"connection": conn.name, "entity": entity, "id": id, "outcome": outcome}), || {
        format!(
            "Refreshed {entity} {id} of {:?}: {} fetched, {} new, {} changed, {} placeholders replaced, {} requests.",
            conn.name, outcome.fetched, outcome.inserted, outcome.updated, outcome.stubs_removed, outcome.requests
        )
    });
    Ok(ExitCode::SUCCESS)
}
