//! The import pass: a whole-truth snapshot of one stream (an export file) applied in ONE
//! transaction.
//!
//! A provider without an API (TikTok) hands over an export that is the whole truth at the
//! time it was made. Its connector checks the file and reads it as chunks of records (a
//! [`SnapshotSource`]); this pass owns the stream's bookkeeping: the sync state written
//! with the snapshot (`last_sync_at`, `last_success_at`, `last_reconciled_at` and
//! `sync_count`), the safety valve, and which error explains a failure. The store adds
//! new records, updates changed ones, tombstones stored ones missing from the snapshot
//! and revives ones that came back ([`Store::import_snapshot`]); a refused or failed
//! import changes nothing, its sync state included.

use inlet_core::{
    Connection, SnapshotBatch, SnapshotSource, Store, StoreError, StreamSpec, Timestamp,
};
use std::future::Future;

/// One snapshot to apply to one stream of one connection.
pub struct Snapshot<'a, R> {
    /// The connection it belongs to.
    pub conn: &'a Connection,
    /// The stream it replaces.
    pub stream: &'a StreamSpec,
    /// Its records, chunk by chunk. A chunk that cannot be read ends the import: nothing
    /// changes.
    pub source: Box<dyn SnapshotSource>,
    /// How reading the records went, known once the store is done with `source`. A
    /// failed read explains a failed store call better than the store's echo of it.
    pub reading: R,
    /// Refuse (change nothing) when more than this share (0..=1) of the stream's live
    /// rows would be tombstoned; `None` when forced.
    pub max_share: Option<f64>,
    /// Commit and tombstone time.
    pub at: Timestamp,
}

/// How an import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportEnd {
    /// The snapshot was applied.
    Applied(ImportCounts),
    /// The safety valve refused the snapshot; nothing changed.
    Refused {
        /// Live rows the snapshot would have tombstoned.
        would_remove: u64,
        /// Live rows before.
        live: u64,
    },
}

/// What an applied snapshot changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Records not stored before.
    pub inserted: u64,
    /// Stored records whose content changed.
    pub updated: u64,
    /// Stored records left as they were.
    pub unchanged: u64,
    /// Stored records missing from the snapshot, now tombstoned.
    pub tombstoned: u64,
    /// Tombstoned records the snapshot holds again.
    pub revived: u64,
}

/// Why an import changed nothing (a refusal is not an error: [`ImportEnd::Refused`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError<E> {
    /// Reading the snapshot failed.
    #[error(transparent)]
    Read(E),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Apply `snap` to its stream in one transaction (see the module's documentation).
pub async fn import<R, E>(
    store: &dyn Store,
    snap: Snapshot<'_, R>,
) -> Result<ImportEnd, ImportError<E>>
where
    R: Future<Output = Result<(), E>>,
{
    let Snapshot {
        conn,
        stream,
        source,
        reading,
        max_share,
        at,
    } = snap;
    let mut state = store.sync_state(conn.id, stream.name).await?;
    state.last_sync_at = Some(at);
    state.last_success_at = Some(at);
    state.last_reconciled_at = Some(at);
    state.sync_count += 1;
    let stored = store
        .import_snapshot(
            SnapshotBatch {
                connection_id: conn.id,
                stream,
                state: &state,
                at,
                max_share,
            },
            source,
        )
        .await;
    let read = reading.await;
    let (page, rec) = match (stored, read) {
        (Err(_), Err(e)) => return Err(ImportError::Read(e)),
        (stored, _) => stored?,
    };
    if rec.refused {
        return Ok(ImportEnd::Refused {
            would_remove: rec.tombstoned,
            live: rec.live_before,
        });
    }
    Ok(ImportEnd::Applied(ImportCounts {
        inserted: page.inserted,
        updated: page.updated,
        unchanged: page.unchanged,
        tombstoned: rec.tombstoned,
        revived: rec.revived,
    }))
}
