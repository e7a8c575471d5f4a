//! One place that turns a stored connection into its connector, so the CLI and the
//! server build connectors the same way and a new provider registers here once.

use crate::reddit::{RedditConfig, RedditConnector, RedditCredentials};
use inlet_core::{Connection, Connector, ConnectorError, StreamSpec, provider_config};
use inlet_http::HttpConfig;

/// Providers this build can sync.
pub const PROVIDERS: &[&str] = &["reddit", "github", "ebay"];

/// Scheduler default sync interval of a provider, in minutes (Reddit 10; Slack, Gong,
/// Fathom, Gmail 15; anything else 15).
pub fn default_interval_minutes(provider: &str) -> u32 {
    match provider {
        "reddit" => 10,
        _ => 15,
    }
}

/// The streams a provider offers (empty for an unknown provider).
pub fn streams_of(provider: &str) -> &'static [StreamSpec] {
    match provider {
        "reddit" => &crate::reddit::streams::STREAMS,
        "github" => &crate::github::streams::STREAMS,
        "ebay" => &crate::ebay::streams::STREAMS,
        "tiktok" => &crate::tiktok::STREAMS,
        _ => &[],
    }
}

/// Every table a provider writes (record tables, then derived tables), each once.
pub fn tables_of(provider: &str) -> Vec<&'static str> {
    let specs = streams_of(provider);
    let mut out: Vec<&'static str> = Vec::new();
    for t in specs
        .iter()
        .map(|s| s.table)
        .chain(specs.iter().filter_map(|s| s.derived.map(|d| d.table)))
    {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Parse a provider's config (without the engine's keys) or its credentials, never
/// echoing a credential in the error.
fn parse<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    value: serde_json::Value,
    what: &str,
) -> Result<T, ConnectorError> {
    serde_json::from_value(value).map_err(|e| {
        ConnectorError::Config(format!(
            "connection {:?} has an invalid {what}: {}",
            conn.name,
            redacted(&e)
        ))
    })
}

/// The connector for `conn`, given its opened (decrypted) credentials JSON.
pub fn connector(
    conn: &Connection,
    credentials: serde_json::Value,
    http: HttpConfig,
) -> Result<Box<dyn Connector>, ConnectorError> {
    let config = provider_config(&conn.config);
    match conn.provider.as_str() {
        "reddit" => {
            let config: RedditConfig = parse(conn, config, "Reddit config")?;
            let creds: RedditCredentials = parse(conn, credentials, "Reddit credentials")?;
            Ok(Box::new(RedditConnector::new(config, &creds, http)?))
        }
        "github" => {
            use crate::github::{GithubConfig, GithubConnector, GithubCredentials};
            let config: GithubConfig = parse(conn, config, "GitHub config")?;
            let creds: GithubCredentials = parse(conn, credentials, "GitHub credentials")?;
            Ok(Box::new(GithubConnector::new(config, &creds, http)?))
        }
        "ebay" => {
            use crate::ebay::{EbayConfig, EbayConnector, EbayCredentials};
            let config: EbayConfig = parse(conn, config, "eBay config")?;
            let creds: EbayCredentials = parse(conn, credentials, "eBay credentials")?;
            Ok(Box::new(EbayConnector::new(config, &creds, http)?))
        }
        "tiktok" => Err(ConnectorError::Config(format!(
            "connection {:?} is filled by imports: update it with `inlet import tiktok FILE --connection {}`",
            conn.name, conn.name
        ))),
        other => Err(ConnectorError::Config(format!(
            "connection {:?} uses provider {other:?}, which this build does not support (supported: {})",
            conn.name,
            PROVIDERS.join(", ")
        ))),
    }
}

/// A serde error without the offending value (which may be a secret).
fn redacted(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(": ") {
        Some(i) if s.starts_with("invalid type") => s[..i].to_string(),
        _ => s,
    }
}
