//! `inlet refresh`.

use crate::app;
use crate::keys;
use crate::output::Output;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use clap::Args;
use inlet_http::HttpConfig;
use serde_json::json;
use std::process::ExitCode;

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
