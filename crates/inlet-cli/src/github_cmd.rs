//! `inlet connect github`.

use crate::app;
use crate::output::Output;
use crate::settings::Settings;
use anyhow::{Context, Result};
use clap::Args;
use inlet_connectors::github::{DEFAULT_API_BASE, GithubConfig, GithubCredentials};
use serde_json::json;
use std::process::ExitCode;

/// `inlet connect github`.
#[derive(Debug, Args)]
pub struct GithubArgs {
    /// A unique name for the connection.
    #[arg(long)]
    pub name: String,
    /// Tenant / workspace the connection belongs to.
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// A personal access token (classic `ghp_` or fine-grained `github_pat_`) or an OAuth
    /// token (`gho_`); private starred repositories need the `repo` scope / "Starring: read".
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub token: String,
    /// API base URL (for GitHub Enterprise, proxies and simulators).
    #[arg(long, default_value = DEFAULT_API_BASE)]
    pub api_base: String,
    /// Items per page (1..=100).
    #[arg(long, default_value_t = 100)]
    pub per_page: u32,
    /// Store without checking the token against GitHub first.
    #[arg(long)]
    pub no_verify: bool,
    /// Replace the token of an existing connection of this name.
    #[arg(long)]
    pub update: bool,
}

/// Verify the token with one request (the first page of stars), then store.
pub async fn connect(settings: &Settings, a: GithubArgs, out: &Output) -> Result<ExitCode> {
    let config = GithubConfig {
        api_base: a.api_base.trim_end_matches('/').to_string(),
        per_page: a.per_page,
        login: None,
        http: Default::default(),
    };
    config.validate()?;
    let creds = GithubCredentials { token: a.token };
    if !a.no_verify {
        // The provider's own check: one request for the first page of stars.
        inlet_connectors::github::PROVIDER
            .verify(
                serde_json::to_value(&config)?,
                serde_json::to_value(&creds)?,
                crate::cmd::connect_http(),
            )
            .await
            .with_context(|| {
                format!(
                    "could not verify the token with GitHub (rate-limit waits it asks for are honoured for up to {} s)",
                    crate::cmd::CONNECT_DEADLINE.as_secs()
                )
            })?;
    }
    let (store, conn) = app::store_connection(
        settings,
        app::NewVerified {
            name: &a.name,
            workspace: a.workspace,
            provider: "github",
            config: serde_json::to_value(&config)?,
            credentials: serde_json::to_value(&creds)?,
            update: a.update,
        },
    )
    .await?;
    out.emit(
        &json!({"connection": conn.name, "id": conn.id, "provider": "github", "verified": !a.no_verify, "database": store.location()}),
        || {
            format!(
                "Connected {:?} (id {}) to GitHub{}; stored in {}.",
                conn.name,
                conn.id,
                if a.no_verify { " (not verified)" } else { "" },
                store.location()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
