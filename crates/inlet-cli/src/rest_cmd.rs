//! The one CLI step particular to `rest` connections (docs/rest.md): their streams are
//! described at run time by the spec, so `inlet connect rest` makes their record tables
//! before the connection is stored. Everything else — flags, the spec check, verification
//! — is the provider's (`inlet_connectors::rest::PROVIDER`) through the registry.

use crate::app;
use crate::settings::Settings;
use anyhow::{Context, Result};
use inlet_connectors::rest;

/// Make the record tables of a new connection of `provider` with `config` when its
/// streams come from a spec (`rest`); other providers' tables exist already.
pub async fn ensure_tables(
    settings: &Settings,
    provider: &str,
    config: &serde_json::Value,
) -> Result<()> {
    if provider != rest::NAME {
        return Ok(());
    }
    let text = config
        .get("spec")
        .and_then(|v| v.as_str())
        .context("the REST config holds no spec")?;
    let streams = rest::streams_of_spec(text)?;
    let store = app::open_store(settings, true).await?;
    store.ensure_tables(streams).await.with_context(|| {
        let tables: Vec<&str> = streams.iter().map(|s| s.table).collect();
        format!("cannot create the tables {}", tables.join(", "))
    })
}
