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

#[cfg(test)]
mod tests {
    use super::*;
    use inlet_core::{ColType, Column, NewConnection, Record, StopRule, Value};

    /// The TikTok favourites table, as its connector declares it.
    static FAVORITES: StreamSpec = StreamSpec {
        name: "favorites",
        table: "tiktok_favorites",
        doc: "favourites",
        columns: &[
            Column::new("video_id", ColType::Text, "id"),
            Column::new("link", ColType::Text, "link"),
            Column::new("url", ColType::Text, "url"),
            Column::new("favorited_at", ColType::Time, "when"),
        ],
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    };

    fn rec(id: u64) -> Record {
        Record {
            values: vec![
                Value::Text(id.to_string()),
                Value::Text(format!("https://www.tiktokv.com/share/video/{id}/")),
                Value::Text(format!("https://www.tiktok.com/@/video/{id}")),
                Value::Null,
            ],
            raw: format!(r#"{{"Link":"{id}"}}"#),
            sort_ts: None,
            id: id.to_string(),
        }
    }

    fn snapshot<'a>(
        conn: &'a Connection,
        ids: std::ops::Range<u64>,
        reading: Result<(), String>,
        max_share: Option<f64>,
        at: i64,
    ) -> Snapshot<'a, std::future::Ready<Result<(), String>>> {
        let chunks: Vec<Vec<Record>> = vec![ids.map(rec).collect()];
        Snapshot {
            conn,
            stream: &FAVORITES,
            source: Box::new(chunks.into_iter()),
            reading: std::future::ready(reading),
            max_share,
            at: Timestamp(at),
        }
    }

    /// A source whose second chunk cannot be read (the file broke mid-way).
    struct Broken(u8);

    #[async_trait::async_trait]
    impl SnapshotSource for Broken {
        async fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, StoreError> {
            self.0 += 1;
            match self.0 {
                1 => Ok(Some((100..110).map(rec).collect())),
                _ => Err(StoreError::Db("the reader stopped".into())),
            }
        }
    }

    #[tokio::test]
    async fn keeps_the_stream_state_refuses_as_a_value_and_names_the_read_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("i.db").display());
        let store = inlet_store::open(&url).await.expect("open");
        let conn = store
            .create_connection(
                &NewConnection {
                    name: "tt".into(),
                    workspace: "w".into(),
                    provider: "tiktok".into(),
                    config: serde_json::json!({}),
                    credentials: Vec::new(),
                },
                Timestamp(1),
            )
            .await
            .expect("connection");

        let end = import(&*store, snapshot(&conn, 0..10, Ok(()), Some(0.5), 1_000))
            .await
            .expect("first");
        let counts = ImportCounts {
            inserted: 10,
            ..ImportCounts::default()
        };
        assert_eq!(end, ImportEnd::Applied(counts));
        let state = store.sync_state(conn.id, "favorites").await.expect("state");
        assert_eq!(state.sync_count, 1);
        assert_eq!(state.last_sync_at, Some(Timestamp(1_000)));
        assert_eq!(state.last_success_at, Some(Timestamp(1_000)));
        assert_eq!(state.last_reconciled_at, Some(Timestamp(1_000)));

        // 8 of 10 would go: refused, and the state is left as it was.
        let end = import(&*store, snapshot(&conn, 8..12, Ok(()), Some(0.5), 2_000))
            .await
            .expect("refusal is no error");
        assert_eq!(
            end,
            ImportEnd::Refused {
                would_remove: 8,
                live: 10
            }
        );
        let after = store.sync_state(conn.id, "favorites").await.expect("state");
        assert_eq!(after, state, "a refused import changes no state");

        // Forced: applied, counted, the state moves on.
        let end = import(&*store, snapshot(&conn, 8..12, Ok(()), None, 3_000))
            .await
            .expect("forced");
        let counts = ImportCounts {
            inserted: 2,
            unchanged: 2,
            tombstoned: 8,
            ..ImportCounts::default()
        };
        assert_eq!(end, ImportEnd::Applied(counts));
        let state = store.sync_state(conn.id, "favorites").await.expect("state");
        assert_eq!(state.sync_count, 2);
        assert_eq!(state.last_success_at, Some(Timestamp(3_000)));

        // The file broke mid-way: the read's error is reported, nothing changes.
        let broken = Snapshot {
            conn: &conn,
            stream: &FAVORITES,
            source: Box::new(Broken(0)),
            reading: std::future::ready(Err::<(), _>("truncated at line 3".to_string())),
            max_share: None,
            at: Timestamp(4_000),
        };
        match import(&*store, broken).await {
            Err(ImportError::Read(why)) => assert_eq!(why, "truncated at line 3"),
            other => panic!("expected the read's error, got {other:?}"),
        }
        let after = store.sync_state(conn.id, "favorites").await.expect("state");
        assert_eq!(after, state, "a failed import changes no state");
    }
}
