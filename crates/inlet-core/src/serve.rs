//! Bookkeeping for `inlet serve`: API keys (stored only as hashes) and sync leases.

use crate::Timestamp;
use serde::Serialize;

/// An API key as stored: never the key itself, only its hash and a short prefix so a
/// person can tell keys apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Store-assigned id.
    pub id: i64,
    /// What the key is for (`ci`, `app-backend`).
    pub name: String,
    /// The key's first characters (`ik_3f9a1c`), safe to show.
    pub prefix: String,
    /// Hex BLAKE3 of the whole key; never serialized.
    #[serde(skip)]
    pub hash: String,
    /// Created.
    pub created_at: Timestamp,
    /// Revoked (a revoked key no longer authenticates).
    pub revoked_at: Option<Timestamp>,
}

/// A connection's sync lease: who holds it and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The connection.
    pub connection_id: i64,
    /// Holder id (process and task), e.g. `host:pid:uuid`.
    pub holder: String,
    /// When the holder took it.
    pub acquired_at: Timestamp,
    /// When it lapses unless renewed; after this anyone may take it over.
    pub expires_at: Timestamp,
}
