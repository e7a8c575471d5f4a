//! One place that turns a stored connection into its connector, so the CLI and the
//! server build connectors the same way. Which providers exist, and how each is built,
//! is the [`crate::provider::REGISTRY`]'s business.

use inlet_core::{Connection, Connector, ConnectorError, StreamSpec};
use inlet_http::HttpConfig;

/// The streams a provider offers (empty for an unknown provider).
pub fn streams_of(provider: &str) -> &'static [StreamSpec] {
    crate::provider::find(provider).map_or(&[], |p| p.streams)
}

/// Every table a provider writes (record tables, then derived tables), each once.
pub fn tables_of(provider: &str) -> Vec<&'static str> {
    crate::provider::find(provider).map_or_else(Vec::new, |p| p.tables())
}

/// The streams of one connection: its provider's, or for a `rest` connection those its
/// spec describes.
pub fn streams_of_connection(conn: &Connection) -> &'static [StreamSpec] {
    if conn.provider == crate::rest::NAME {
        return crate::rest::streams_of_connection(conn);
    }
    streams_of(&conn.provider)
}

/// Every table one connection writes (see [`streams_of_connection`]).
pub fn tables_of_connection(conn: &Connection) -> Vec<&'static str> {
    if conn.provider == crate::rest::NAME {
        return streams_of_connection(conn)
            .iter()
            .map(|s| s.table)
            .collect();
    }
    tables_of(&conn.provider)
}

/// The connector for `conn`, given its opened (decrypted) credentials JSON.
pub fn connector(
    conn: &Connection,
    credentials: serde_json::Value,
    http: HttpConfig,
) -> Result<Box<dyn Connector>, ConnectorError> {
    crate::provider::build(conn, credentials, http)
}
