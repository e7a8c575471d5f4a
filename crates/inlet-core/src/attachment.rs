//! Attachments: images linked from records, downloaded into a content-addressed blob store.
//!
//! Three pieces meet here, each behind a small port so the engine depends on none of them:
//! * link *detection* is provider knowledge: [`crate::Connector::attachment_links`];
//! * *fetching* is HTTP: an [`AttachmentFetcher`] (allowed hosts, image types, size cap,
//!   retries), implemented in `inlet-http`;
//! * *keeping the bytes* is a [`BlobStore`] (`blobs/ab/cd/<blake3 hex>`), implemented in
//!   `inlet-store`; the rows live in the `attachments` table behind [`crate::Store`].

use crate::Timestamp;
use serde::Serialize;

/// Where an attachment stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentStatus {
    /// Recorded, not fetched yet.
    Pending,
    /// Downloaded; `hash` names the blob.
    Done,
    /// The download failed (HTTP error, host down after retries); `inlet attachments
    /// retry` tries again.
    Failed,
    /// Not fetched by policy (host not allowed, not an image, too large).
    Skipped,
}

impl AttachmentStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [AttachmentStatus; 4] = [
        AttachmentStatus::Pending,
        AttachmentStatus::Done,
        AttachmentStatus::Failed,
        AttachmentStatus::Skipped,
    ];
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentStatus::Pending => "pending",
            AttachmentStatus::Done => "done",
            AttachmentStatus::Failed => "failed",
            AttachmentStatus::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for AttachmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AttachmentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AttachmentStatus::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown attachment status {s:?} (expected one of: pending, done, failed, skipped)")
            })
    }
}

/// One row of the `attachments` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attachment {
    /// Store-assigned id.
    pub id: i64,
    /// The connection.
    pub connection_id: i64,
    /// The stream of the record that links it.
    pub stream: String,
    /// The record's id.
    pub record_id: String,
    /// The link as the provider wrote it (HTML entities decoded).
    pub url: String,
    /// Status.
    pub status: AttachmentStatus,
    /// Hex BLAKE3 of the bytes (the blob's name), once done.
    pub hash: Option<String>,
    /// Bytes, once done.
    pub size: Option<i64>,
    /// The `Content-Type` the host answered, once known.
    pub content_type: Option<String>,
    /// Download attempts so far (each attempt may have made several HTTP requests).
    pub attempts: i64,
    /// Why the last attempt failed or was skipped.
    pub last_error: Option<String>,
    /// When the link was first recorded.
    pub first_seen_at: Timestamp,
    /// Last change of the row.
    pub updated_at: Timestamp,
}

/// A link found in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentLink {
    /// The record's id.
    pub record_id: String,
    /// The URL.
    pub url: String,
}

/// The outcome of one download attempt, to write to the row.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentUpdate {
    /// New status (done, failed or skipped).
    pub status: AttachmentStatus,
    /// Blob hash when done.
    pub hash: Option<String>,
    /// Size when done.
    pub size: Option<i64>,
    /// Content type, when the host answered one.
    pub content_type: Option<String>,
    /// Error or reason when failed / skipped.
    pub last_error: Option<String>,
    /// Time of the attempt.
    pub at: Timestamp,
}

/// Bytes fetched from an allowed host.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The body (at most the configured cap).
    pub bytes: Vec<u8>,
    /// The `Content-Type` (an `image/*` type unless [`FetchAs::any_content_type`]).
    pub content_type: String,
}

/// How a connector wants one of its attachments fetched (files behind the provider's own
/// authentication: Slack's `url_private_download`). The default fetch is anonymous and
/// takes images only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FetchAs {
    /// Sent as `Authorization: Bearer`.
    pub bearer: Option<String>,
    /// Any content type is the file (not only `image/*`).
    pub any_content_type: bool,
    /// An HTML answer with a sign-in form is the provider's login page — the request was
    /// not authorised —, never the file: a failure, nothing stored.
    pub html_is_login_page: bool,
}

impl std::fmt::Debug for FetchAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchAs")
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("any_content_type", &self.any_content_type)
            .field("html_is_login_page", &self.html_is_login_page)
            .finish()
    }
}

/// Why an attachment was not fetched.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    /// Policy said no (host not allowed, not an image, too large): retrying will not help.
    #[error("{0}")]
    Rejected(String),
    /// The host answered an error or could not be reached after retries.
    #[error("{0}")]
    Failed(String),
}

/// Downloads attachments (implemented in `inlet-http`).
#[async_trait::async_trait]
pub trait AttachmentFetcher: Send + Sync {
    /// Fetch `url`, enforcing the allowed hosts, image content types and size cap.
    async fn fetch(&self, url: &str) -> Result<Fetched, FetchError>;
    /// Fetch `url` as its connector asks ([`FetchAs`]); allowed hosts and the size cap
    /// still hold. The default ignores `how`.
    async fn fetch_as(&self, url: &str, how: &FetchAs) -> Result<Fetched, FetchError> {
        let _ = how;
        self.fetch(url).await
    }
}

/// Keeps attachment bytes by content (implemented in `inlet-store`).
pub trait BlobStore: Send + Sync {
    /// Store `bytes` (once: the same bytes twice are one blob); returns the hex BLAKE3 hash.
    fn put(&self, bytes: &[u8]) -> Result<String, String>;
}
