//! TikTok: favourite videos from the "Download your data" JSON export
//! (`user_data_tiktok.json` / `user_data.json`). See `shared/providers/tiktok.md`.
//!
//! TikTok has no API for a user's favourites; the export is the whole truth at the time
//! it was made. [`import`] parses it as a stream (the file is never held in memory —
//! every section but the favourites list is skipped while reading), then applies it as
//! one snapshot in ONE transaction ([`Store::import_snapshot`]): new favourites are
//! added, ones missing from the file are tombstoned, ones that came back are revived. A
//! malformed, truncated or foreign file is rejected with an error naming what is wrong,
//! and nothing changes.

mod parse;

pub use parse::{FAVORITE_SECTIONS, Favorite, ParseError, Parsed, parse_export, video_id};

use crate::provider::{Kind, ProviderDef};
use inlet_core::{
    ColType::{Text, Time},
    Column, Connection, PageBatch, Record, Scope, StopRule, Store, StoreError, StreamSpec,
    Timestamp, Value,
};
use serde::Serialize;
use std::io::Read;

/// Typed columns of `tiktok_favorites`.
pub const FAVORITE_COLUMNS: &[Column] = &[
    Column::new(
        "video_id",
        Text,
        "video id (digits); NULL for short links that carry none",
    ),
    Column::new("link", Text, "the link as written in the export"),
    Column::new("url", Text, "browsable web address of the video"),
    Column::new(
        "favorited_at",
        Time,
        "when the user favourited it (the export's date, read as UTC)",
    ),
];

/// The streams: favourites, filled by imports only.
pub static STREAMS: [StreamSpec; 1] = [StreamSpec {
    name: "favorites",
    table: "tiktok_favorites",
    doc: "Favourite (bookmarked) videos from imported exports (`inlet import tiktok`).",
    columns: FAVORITE_COLUMNS,
    scope: None::<Scope>,
    stop: StopRule::Never,
    listing_cap: None,
    derived: None,
}];

/// TikTok as the registry knows it: filled from data-export files by `inlet import
/// tiktok`, never synced, so it has no connect parameters, quota or builder.
pub static PROVIDER: ProviderDef = ProviderDef {
    name: "tiktok",
    title: "TikTok",
    about: "TikTok favourites, imported from the account's data export.",
    streams: &STREAMS,
    interval_minutes: 0,
    quota: None,
    rate_headers: None,
    image_hosts: &[],
    params: &[],
    default_config: no_config,
    kind: Kind::Import,
    #[cfg(feature = "openapi")]
    api: None,
};

fn no_config() -> serde_json::Value {
    serde_json::json!({})
}

/// Files larger than this are refused unless a larger limit is given.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportOutcome {
    /// Favourite entries read from the file (before merging repeats of one video).
    pub processed: u64,
    /// Favourites not stored before.
    pub new: u64,
    /// Stored favourites missing from the file, now tombstoned.
    pub removed: u64,
}

/// Why an import changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be understood.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The import would tombstone more than the allowed share of the favourites.
    #[error(
        "the file would remove {removed} of {live} stored favourites (more than {pct:.0}%); \
         nothing was changed. If that is right, import again with --force"
    )]
    Refused {
        /// Would-be tombstones.
        removed: u64,
        /// Live favourites before.
        live: u64,
        /// The allowed share, in percent.
        pct: f64,
    },
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One favourite as a row of `tiktok_favorites`.
pub fn to_record(f: &Favorite) -> Record {
    let id = f.video_id.clone().unwrap_or_else(|| f.link.clone());
    let url = f.video_id.as_ref().map_or_else(
        || f.link.clone(),
        |v| format!("https://www.tiktok.com/@/video/{v}"),
    );
    Record {
        values: vec![
            Value::opt_text(f.video_id.clone()),
            Value::Text(f.link.clone()),
            Value::Text(url),
            f.favorited_at.map_or(Value::Null, Value::Time),
        ],
        raw: f.raw.clone(),
        sort_ts: f.favorited_at,
        id,
    }
}

/// Parse an export from `reader` (at most `max_bytes`) and apply it to `conn`'s
/// favourites ([`apply`]).
pub async fn import(
    store: &dyn Store,
    conn: &Connection,
    reader: impl Read,
    max_bytes: u64,
    max_share: Option<f64>,
    at: Timestamp,
) -> Result<ImportOutcome, ImportError> {
    let parsed = parse_export(reader, max_bytes)?;
    apply(store, conn, &parsed, max_share, at).await
}

/// Apply a parsed export to `conn`'s favourites in one transaction: add new ones,
/// tombstone stored ones missing from the file, revive ones that came back. `max_share`:
/// refuse (change nothing) when more than this share of the stored favourites would be
/// tombstoned (`None`: forced).
pub async fn apply(
    store: &dyn Store,
    conn: &Connection,
    parsed: &Parsed,
    max_share: Option<f64>,
    at: Timestamp,
) -> Result<ImportOutcome, ImportError> {
    let spec = &STREAMS[0];
    let records: Vec<Record> = parsed.favorites.iter().map(to_record).collect();
    let mut state = store.sync_state(conn.id, spec.name).await?;
    state.last_sync_at = Some(at);
    state.last_success_at = Some(at);
    state.last_reconciled_at = Some(at);
    state.sync_count += 1;
    let (page, rec) = store
        .import_snapshot(
            PageBatch {
                connection_id: conn.id,
                stream: spec,
                records,
                state: &state,
                refresh_derived: false,
                at,
            },
            max_share,
        )
        .await?;
    if rec.refused {
        return Err(ImportError::Refused {
            removed: rec.tombstoned,
            live: rec.live_before,
            pct: max_share.unwrap_or(1.0) * 100.0,
        });
    }
    Ok(ImportOutcome {
        processed: parsed.entries,
        new: page.inserted,
        removed: rec.tombstoned,
    })
}

#[cfg(test)]
mod tests;
