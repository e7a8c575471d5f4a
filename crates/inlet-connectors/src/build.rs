//! One place that turns a stored connection into its connector, so the CLI and the
//! server build connectors the same way and a new provider registers here once.

use crate::reddit::{RedditConfig, RedditConnector, RedditCredentials};
use inlet_core::{Connection, Connector, ConnectorError, StreamSpec};
use inlet_http::HttpConfig;

/// Providers this build can sync.
pub const PROVIDERS: &[&str] = &["reddit"];

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

/// The connector for `conn`, given its opened (decrypted) credentials JSON.
pub fn connector(
    conn: &Connection,
    credentials: serde_json::Value,
    http: HttpConfig,
) -> Result<Box<dyn Connector>, ConnectorError> {
    match conn.provider.as_str() {
        "reddit" => {
            let config: RedditConfig =
                serde_json::from_value(conn.config.clone()).map_err(|e| {
                    ConnectorError::Config(format!(
                        "connection {:?} has an invalid Reddit config: {e}",
                        conn.name
                    ))
                })?;
            // Never echo the credentials themselves in the message.
            let creds: RedditCredentials = serde_json::from_value(credentials).map_err(|e| {
                ConnectorError::Config(format!(
                    "connection {:?} has invalid Reddit credentials: {}",
                    conn.name,
                    redacted(&e)
                ))
            })?;
            Ok(Box::new(RedditConnector::new(config, &creds, http)?))
        }
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
