//! Attachments: images linked from synced records, downloaded into the blob store.
//!
//! Two steps, both optional (an engine without [`AttachmentOptions`] skips them):
//! 1. While a stream syncs, the links the connector finds in each chunk's records
//!    ([`inlet_core::Connector::attachment_links`]) are recorded as `pending` rows BEFORE the
//!    chunk commits. A crash in between leaves a pending row for a record the next run
//!    re-fetches anyway; the other order could lose the link for good. Links already
//!    recorded are left as they are, so a replayed page changes nothing.
//! 2. After the connection's streams are synced, its pending attachments are downloaded with
//!    bounded concurrency (default 4) through the [`AttachmentFetcher`] port, their bytes kept
//!    by the [`BlobStore`] port, and each row updated: `done` (hash, size, content type),
//!    `skipped` (policy: host not allowed, not an image, too large) or `failed` (an HTTP
//!    error, or the host down after retries). A failure is logged, counted in
//!    `items_skipped_with_error` and makes the run `partial`; everything else stays synced.
//!    [`Engine::retry_attachments`] downloads the failed ones again.

use crate::{Engine, EngineError, NoProgress, Progress};
use inlet_core::{
    Attachment, AttachmentFetcher, AttachmentLink, AttachmentStatus, AttachmentUpdate, BlobStore,
    Connector, FetchAs, FetchError, Record, RunStats, RunStatus, Store, StoreError, StreamSpec,
    Timestamp,
};
use std::sync::Arc;
use tokio::task::JoinSet;

/// Downloads in flight per connection by default.
pub const DEFAULT_ATTACHMENT_CONCURRENCY: usize = 4;

/// Rows read per query while walking pending or failed attachments.
const PAGE: u32 = 200;

/// How an engine handles attachments.
#[derive(Clone)]
pub struct AttachmentOptions {
    /// Downloads (allowed hosts, content types and size cap are its business).
    pub fetcher: Arc<dyn AttachmentFetcher>,
    /// Where the bytes go.
    pub blobs: Arc<dyn BlobStore>,
    /// Downloads in flight at once (at least 1).
    pub concurrency: usize,
}

impl std::fmt::Debug for AttachmentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentOptions")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Record and download attachments during syncs.
    pub fn with_attachments(mut self, options: AttachmentOptions) -> Self {
        self.attachments = Some(options);
        self
    }

    /// Record the attachment links of a chunk's records as pending (step 1).
    pub(crate) async fn note_attachments(
        &self,
        connector: &dyn Connector,
        connection_id: i64,
        stream: &StreamSpec,
        records: &[Record],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if self.attachments.is_none() {
            return Ok(());
        }
        note_links(
            &**self.store(),
            connector,
            connection_id,
            stream,
            records,
            at,
        )
        .await
    }

    /// Download the connection's pending attachments after its streams synced (step 2):
    /// adds the counters to the run's stats and turns a successful run partial when a
    /// download failed.
    pub(crate) async fn download_attachments(
        &self,
        connection_id: i64,
        connector: &dyn Connector,
        stats: &mut RunStats,
        status: RunStatus,
        progress: &dyn Progress,
    ) -> Result<RunStatus, EngineError> {
        if self.attachments.is_none() {
            return Ok(status);
        }
        let got = self
            .download(
                connection_id,
                Some(connector),
                AttachmentStatus::Pending,
                progress,
            )
            .await?;
        stats.add(&got);
        Ok(
            if status == RunStatus::Success && got.attachments_failed > 0 {
                RunStatus::Partial
            } else {
                status
            },
        )
    }

    /// Download the connection's failed attachments again (`inlet attachments retry`).
    /// Returns the attachment counters; an engine without attachments does nothing.
    /// `connector` (the connection's own) fetches the links that need its credentials
    /// (Slack's files); without it every link is fetched anonymously.
    pub async fn retry_attachments(
        &self,
        connection_id: i64,
        connector: Option<&dyn Connector>,
    ) -> Result<RunStats, EngineError> {
        self.download(
            connection_id,
            connector,
            AttachmentStatus::Failed,
            &NoProgress,
        )
        .await
    }

    /// Download every attachment of the connection in `status`, `concurrency` at a time.
    async fn download(
        &self,
        connection_id: i64,
        connector: Option<&dyn Connector>,
        status: AttachmentStatus,
        progress: &dyn Progress,
    ) -> Result<RunStats, EngineError> {
        let mut stats = RunStats::default();
        let Some(opts) = &self.attachments else {
            return Ok(stats);
        };
        let limit = opts.concurrency.max(1);
        let mut set: JoinSet<(Attachment, AttachmentUpdate)> = JoinSet::new();
        let mut after = 0;
        loop {
            let page = self
                .store()
                .list_attachments(Some(connection_id), Some(status), after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for att in page {
                while set.len() >= limit {
                    self.record(set.join_next().await, &mut stats).await?;
                    progress.attachment_done(&stats);
                }
                let (fetcher, blobs) = (opts.fetcher.clone(), opts.blobs.clone());
                let how = match connector {
                    Some(c) => c.attachment_access(&att.url).await,
                    None => None,
                };
                set.spawn(async move {
                    let update = fetch_one(&*fetcher, blobs, &att.url, how.as_ref()).await;
                    (att, update)
                });
            }
        }
        while !set.is_empty() {
            self.record(set.join_next().await, &mut stats).await?;
            progress.attachment_done(&stats);
        }
        Ok(stats)
    }

    /// Write one finished download to its row and the counters.
    async fn record(
        &self,
        joined: Option<Result<(Attachment, AttachmentUpdate), tokio::task::JoinError>>,
        stats: &mut RunStats,
    ) -> Result<(), StoreError> {
        let (att, mut update) = match joined {
            Some(Ok(done)) => done,
            Some(Err(e)) => {
                // The row stays as it was (pending or failed) and is tried again later.
                tracing::error!(error = %e, "Attachment download task failed.");
                return Ok(());
            }
            None => return Ok(()),
        };
        update.at = self.now();
        match update.status {
            AttachmentStatus::Done => stats.attachments_fetched += 1,
            AttachmentStatus::Skipped => {
                tracing::info!(
                    connection_id = att.connection_id,
                    attachment = att.id,
                    record = %att.record_id,
                    reason = update.last_error.as_deref().unwrap_or(""),
                    "Attachment skipped."
                );
                stats.attachments_skipped += 1;
            }
            _ => {
                tracing::warn!(
                    connection_id = att.connection_id,
                    attachment = att.id,
                    record = %att.record_id,
                    host = host_of(&att.url),
                    error = update.last_error.as_deref().unwrap_or(""),
                    "Attachment download failed."
                );
                stats.attachments_failed += 1;
                stats.items_skipped_with_error += 1;
            }
        }
        self.store().update_attachment(att.id, &update).await
    }
}

/// Record the attachment links the connector finds in `records` as pending rows (step 1;
/// links already recorded are left as they are).
pub(crate) async fn note_links(
    store: &dyn Store,
    connector: &dyn Connector,
    connection_id: i64,
    stream: &StreamSpec,
    records: &[Record],
    at: Timestamp,
) -> Result<(), StoreError> {
    let links: Vec<AttachmentLink> = records
        .iter()
        .flat_map(|r| {
            connector
                .attachment_links(stream, r)
                .into_iter()
                .map(|url| AttachmentLink {
                    record_id: r.id.clone(),
                    url,
                })
        })
        .collect();
    if links.is_empty() {
        return Ok(());
    }
    store
        .add_attachments(connection_id, stream.name, &links, at)
        .await?;
    Ok(())
}

/// Fetch one URL and keep its bytes: the row update (its `at` is set when it is written).
async fn fetch_one(
    fetcher: &dyn AttachmentFetcher,
    blobs: Arc<dyn BlobStore>,
    url: &str,
    how: Option<&FetchAs>,
) -> AttachmentUpdate {
    let mut u = AttachmentUpdate {
        status: AttachmentStatus::Failed,
        hash: None,
        size: None,
        content_type: None,
        last_error: None,
        at: Timestamp(0),
    };
    let got = match how {
        Some(how) => fetcher.fetch_as(url, how).await,
        None => fetcher.fetch(url).await,
    };
    match got {
        Err(FetchError::Rejected(why)) => {
            u.status = AttachmentStatus::Skipped;
            u.last_error = Some(why);
        }
        Err(FetchError::Failed(why)) => u.last_error = Some(why),
        Ok(f) => {
            let size = f.bytes.len() as i64;
            u.content_type = Some(f.content_type);
            match tokio::task::spawn_blocking(move || blobs.put(&f.bytes)).await {
                Ok(Ok(hash)) => {
                    u.status = AttachmentStatus::Done;
                    u.hash = Some(hash);
                    u.size = Some(size);
                }
                Ok(Err(e)) => u.last_error = Some(e),
                Err(e) => u.last_error = Some(format!("blob write stopped: {e}")),
            }
        }
    }
    u
}

/// The host of a URL, for logs (the path and signed query stay out).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or("")
}
