//! TikTok: favourite videos from the "Download your data" JSON export
//! (`user_data_tiktok.json` / `user_data.json`). See `shared/providers/tiktok.md`.
//!
//! TikTok has no API for a user's favourites; the export is the whole truth at the time
//! it was made. [`import`] reads the file twice as a stream, never holding it in memory:
//! first to check it ([`check`]: every section but the favourites lists is skipped while
//! reading, the list to import is chosen, its entries are counted), then to hand its
//! favourites to the store in chunks of [`CHUNK`] records, applied as one snapshot in
//! ONE transaction ([`Store::import_snapshot`]): new favourites are added, ones missing
//! from the file are tombstoned, ones that came back are revived. A malformed,
//! truncated or foreign file, or one with no favourites list at any known place, is
//! rejected with an error naming what is wrong, and nothing changes. Entries that name
//! no video are counted as skipped, short links (no id without an HTTP redirect) as
//! unresolved; neither is stored.

mod parse;

pub use parse::{
    Entry, FAVORITE_SECTIONS, Favorite, ParseError, Scan, favorite_paths, is_short_link,
    read_favorites, scan_export, video_id,
};

use crate::provider::{Kind, ProviderDef};
use inlet_core::{
    ColType::{Text, Time},
    Column, Connection, Record, Scope, SnapshotBatch, SnapshotSource, StopRule, Store, StoreError,
    StreamSpec, Timestamp, Value,
};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Read};
use tokio::sync::mpsc;

/// Typed columns of `tiktok_favorites`.
pub const FAVORITE_COLUMNS: &[Column] = &[
    Column::new("video_id", Text, "video id (digits)"),
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

/// What an import did. `processed` = entries of the favourites list; each is a
/// favourite (new, already stored, or a repeat of one video), `skipped` or `unresolved`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportOutcome {
    /// Favourite entries read from the file (before merging repeats of one video).
    pub processed: u64,
    /// Favourites not stored before.
    pub new: u64,
    /// Stored favourites missing from the file, now tombstoned.
    pub removed: u64,
    /// Entries that name no video (an empty link, "N/A", a profile or tag link, a video
    /// link without a numeric id): not stored.
    pub skipped: u64,
    /// Short links (`vm.tiktok.com`, `vt.tiktok.com`), whose video id is only known
    /// through an HTTP redirect: not stored.
    pub unresolved: u64,
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
    Record {
        values: vec![
            Value::Text(f.video_id.clone()),
            Value::Text(f.link.clone()),
            Value::Text(format!("https://www.tiktok.com/@/video/{}", f.video_id)),
            f.favorited_at.map_or(Value::Null, Value::Time),
        ],
        raw: f.raw.clone(),
        sort_ts: f.favorited_at,
        id: f.video_id.clone(),
    }
}

/// Records handed to the store at a time: the import holds at most a few chunks.
pub const CHUNK: usize = 2_000;

/// Check an export without keeping it: the whole file is read once ([`scan_export`]).
/// `open` gives the file's bytes.
pub async fn check<R, F>(open: F, max_bytes: u64) -> Result<Scan, ParseError>
where
    R: Read,
    F: FnOnce() -> io::Result<R> + Send + 'static,
{
    tokio::task::spawn_blocking(move || scan_export(open()?, max_bytes))
        .await
        .map_err(|e| ParseError::Io(io::Error::other(e.to_string())))?
}

/// Check the export `open` gives (at most `max_bytes`) and apply it to `conn`'s
/// favourites ([`apply`]). The file is read twice and never held in memory.
pub async fn import<R, F>(
    store: &dyn Store,
    conn: &Connection,
    open: F,
    max_bytes: u64,
    max_share: Option<f64>,
    at: Timestamp,
) -> Result<ImportOutcome, ImportError>
where
    R: Read,
    F: Fn() -> io::Result<R> + Clone + Send + 'static,
{
    let scan = check(open.clone(), max_bytes).await?;
    apply(store, conn, &scan, open, max_bytes, max_share, at).await
}

/// One message from the reader of the file to the store.
enum Chunk {
    Records(Vec<Record>),
    End,
    Failed(String),
}

/// The store's side of the channel.
struct ChunkSource(mpsc::Receiver<Chunk>);

#[async_trait::async_trait]
impl SnapshotSource for ChunkSource {
    async fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, StoreError> {
        match self.0.recv().await {
            Some(Chunk::Records(r)) => Ok(Some(r)),
            Some(Chunk::End) => Ok(None),
            Some(Chunk::Failed(why)) => Err(StoreError::Db(why)),
            None => Err(StoreError::Db("reading the file stopped early".into())),
        }
    }
}

/// Record `date` for `key` unless a date as new or newer is there; whether it was.
fn keep_newest<K: std::hash::Hash + Eq>(map: &mut HashMap<K, i64>, key: K, date: i64) -> bool {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(mut o) => {
            let newer = *o.get() < date;
            if newer {
                o.insert(date);
            }
            newer
        }
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(date);
            true
        }
    }
}

/// Read the favourites list `scan` chose from `open`'s bytes and send them in chunks:
/// one favourite per video, the newest date kept (a later, newer repeat is sent again and
/// overwrites the earlier one).
fn produce<R: Read>(
    open: impl FnOnce() -> io::Result<R>,
    max_bytes: u64,
    scan: &Scan,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), ParseError> {
    // Newest date per video id, 16 bytes a video (`i64::MIN`: no date). Ids are 64-bit
    // integers; the rare 20-digit one beyond u64 goes to a second map.
    let mut newest: HashMap<u64, i64> = HashMap::new();
    let mut newest_wide: HashMap<u128, i64> = HashMap::new();
    let mut chunk: Vec<Record> = Vec::with_capacity(CHUNK);
    let mut seen = Scan {
        section: scan.section,
        ..Scan::default()
    };
    // The store stopped listening (it failed or refused): its answer is the one to report.
    let mut hung_up = false;
    let read = read_favorites(open()?, max_bytes, scan.section, &mut |entry| {
        seen.entries += 1;
        let Entry::Favorite(f) = entry else {
            return Ok(());
        };
        seen.favorites += 1;
        let date = f.favorited_at.map_or(i64::MIN, |t| t.0);
        let newer = match f.video_id.parse::<u64>() {
            Ok(key) => keep_newest(&mut newest, key, date),
            Err(_) => {
                let key = f.video_id.parse::<u128>().map_err(|e| e.to_string())?;
                keep_newest(&mut newest_wide, key, date)
            }
        };
        if !newer {
            return Ok(()); // an older (or same-dated) repeat of a video already sent
        }
        chunk.push(to_record(&f));
        if chunk.len() >= CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if tx.blocking_send(Chunk::Records(full)).is_err() {
                hung_up = true;
                return Err("the import stopped".into());
            }
        }
        Ok(())
    });
    if hung_up {
        return Ok(());
    }
    read?;
    if (seen.entries, seen.favorites) != (scan.entries, scan.favorites) {
        return Err(ParseError::Io(io::Error::other(
            "the file changed while it was imported",
        )));
    }
    if !chunk.is_empty() {
        // A send to a store that stopped listening fails; the store's error is reported.
        let _ = tx.blocking_send(Chunk::Records(chunk));
    }
    Ok(())
}

/// Apply the export `scan` describes to `conn`'s favourites in one transaction, reading
/// it again from `open` in chunks: add new ones, tombstone stored ones missing from the
/// file, revive ones that came back. `max_share`: refuse (change nothing) when more than
/// this share of the stored favourites would be tombstoned (`None`: forced).
pub async fn apply<R, F>(
    store: &dyn Store,
    conn: &Connection,
    scan: &Scan,
    open: F,
    max_bytes: u64,
    max_share: Option<f64>,
    at: Timestamp,
) -> Result<ImportOutcome, ImportError>
where
    R: Read,
    F: FnOnce() -> io::Result<R> + Send + 'static,
{
    let spec = &STREAMS[0];
    let mut state = store.sync_state(conn.id, spec.name).await?;
    state.last_sync_at = Some(at);
    state.last_success_at = Some(at);
    state.last_reconciled_at = Some(at);
    state.sync_count += 1;
    let (tx, rx) = mpsc::channel(2);
    let owned = *scan;
    let reader = tokio::task::spawn_blocking(move || {
        let r = produce(open, max_bytes, &owned, &tx);
        let msg = match &r {
            Ok(()) => Chunk::End,
            Err(e) => Chunk::Failed(e.to_string()),
        };
        // The store may have stopped listening already; its error is reported then.
        let _ = tx.blocking_send(msg);
        r
    });
    let stored = store
        .import_snapshot(
            SnapshotBatch {
                connection_id: conn.id,
                stream: spec,
                state: &state,
                at,
                max_share,
            },
            Box::new(ChunkSource(rx)),
        )
        .await;
    let read = reader
        .await
        .map_err(|e| ParseError::Io(io::Error::other(e.to_string())));
    // A failed read explains a failed store call better than the store's echo of it.
    let (page, rec) = match (stored, read) {
        (Err(_), Ok(Err(e)) | Err(e)) => return Err(ImportError::Parse(e)),
        (stored, _) => stored?,
    };
    if rec.refused {
        return Err(ImportError::Refused {
            removed: rec.tombstoned,
            live: rec.live_before,
            pct: max_share.unwrap_or(1.0) * 100.0,
        });
    }
    Ok(ImportOutcome {
        processed: scan.entries,
        new: page.inserted,
        removed: rec.tombstoned,
        skipped: scan.skipped,
        unresolved: scan.unresolved,
    })
}

#[cfg(test)]
mod tests;
