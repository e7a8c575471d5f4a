//! The Connector port: where data comes from.

use crate::{Family, Record, StreamSpec, Timestamp};

/// One page of a stream.
#[derive(Debug, Default)]
pub struct Page {
    /// Records, in the provider's order.
    pub records: Vec<Record>,
    /// Cursor of the next page; `None` when the listing ended.
    pub next: Option<String>,
}

/// Rows of one stream produced by re-fetching a single entity
/// ([`Connector::fetch_entity`]).
#[derive(Debug)]
pub struct EntityPage {
    /// The stream the rows belong to (one of [`Connector::streams`]).
    pub stream: &'static str,
    /// The rows, as a page of that stream would carry them.
    pub records: Vec<Record>,
}

/// One page of a stream's ids, for a reconcile ([`Connector::fetch_id_page`]).
#[derive(Debug, Default)]
pub struct IdPage {
    /// Ids on this page.
    pub ids: Vec<String>,
    /// Cursor of the next page; `None` when the listing ended.
    pub next: Option<String>,
    /// The full records of this page, when the id listing is the ordinary listing (its
    /// pages carry whole records): the reconcile upserts them, so it leaves the table equal
    /// to the provider and not only the id set. Empty when the provider lists bare ids.
    pub records: Vec<Record>,
}

impl IdPage {
    /// The id page of an ordinary (full) page: its ids, its cursor and its records.
    pub fn full(page: Page) -> Self {
        IdPage {
            ids: page.records.iter().map(|r| r.id.clone()).collect(),
            next: page.next,
            records: page.records,
        }
    }
}

/// Request accounting of a connector's HTTP client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Requests sent (each attempt counts, token refreshes too).
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Milliseconds spent waiting for rate limits.
    pub rate_limit_wait_ms: u64,
    /// The provider's remaining quota after the last response, when it says.
    pub quota_remaining: Option<u64>,
    /// A rate-limit wait under way: milliseconds left (0: not waiting).
    pub waiting_ms: u64,
}

/// Why a connector could not produce a page.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The provider rejected the credentials and a refresh did not help.
    #[error("authentication failed: {0}")]
    NeedsReauth(String),
    /// Retries were exhausted on a transient fault.
    #[error("provider unavailable after retries: {0}")]
    Transient(String),
    /// The provider answered with an error that retrying cannot fix.
    #[error("provider error: {0}")]
    Provider(String),
    /// The provider's answer could not be understood.
    #[error("unexpected response: {0}")]
    Parse(String),
    /// The connection's configuration is unusable.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The provider or connector cannot do what was asked (e.g. refresh one entity).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The provider's rate limit or call quota is spent until later than the run may
    /// wait: the run ends `waiting` and is started again after `retry_in`.
    #[error("rate limited: {message}")]
    RateLimited {
        /// What the provider said.
        message: String,
        /// How long until it accepts requests again.
        retry_in: std::time::Duration,
    },
}

/// Receives a connector's complete new credentials (see
/// [`Connector::set_credential_sink`]); resolves once they are stored (or storing failed and
/// was logged).
pub type CredentialSink = std::sync::Arc<
    dyn Fn(serde_json::Value) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// A provider, mapped onto streams. Implementations only build requests, parse pages,
/// find the next cursor and map items to rows; paging, checkpoints, retries and rate
/// limits live in the shared crates.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// Provider name (`reddit`).
    fn provider(&self) -> &'static str;
    /// The streams this connector offers.
    fn streams(&self) -> &'static [StreamSpec];
    /// Fetch one page of `stream`; `cursor` is `None` for the first page.
    async fn fetch_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError>;
    /// Request accounting so far.
    fn http_stats(&self) -> HttpStats;
    /// Re-fetch one entity now (e.g. one conversation with its messages, right after the
    /// user sent a message), as rows per stream. `entity` names the kind (`conversation`).
    /// A row of a family's parent stream must come with ALL of its children (the engine
    /// stores its change marker with them). Connectors without such a lookup keep this
    /// default.
    async fn fetch_entity(
        &self,
        entity: &str,
        id: &str,
    ) -> Result<Vec<EntityPage>, ConnectorError> {
        let _ = id;
        Err(ConnectorError::Unsupported(format!(
            "{} cannot refresh a single {entity}",
            self.provider()
        )))
    }
    /// Parent/child stream families (conversations → messages); the engine syncs a
    /// family's child stream only through its parents. Empty by default.
    fn families(&self) -> Vec<Family> {
        Vec::new()
    }
    /// Fetch one page of one of a family's parent `listing`s ([`Family::listings`]);
    /// `since` asks for parents with activity after that time (`None`: all of them).
    /// The default reads the stream's only listing with [`Connector::fetch_page`].
    async fn fetch_listing(
        &self,
        stream: &StreamSpec,
        listing: &str,
        since: Option<Timestamp>,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let _ = (listing, since);
        self.fetch_page(stream, cursor).await
    }
    /// Parents of `stream` (a family's parent stream) that the provider reported gone —
    /// deleted, or out of the connection's scope — on the listing page
    /// [`Connector::fetch_listing`] returned last (a change log's deletions: Gmail's
    /// threads that 404 or lost every chosen label). The family pass tombstones them and
    /// their children before it commits that page, and forgets their markers. The default
    /// reports none.
    fn take_gone(&self, stream: &StreamSpec) -> Vec<String> {
        let _ = stream;
        Vec::new()
    }
    /// Fetch one page of the children of `parent` (a record of `parent_stream`, as its
    /// listing returned it); `cursor` is `None` for the first page.
    async fn fetch_children(
        &self,
        parent_stream: &StreamSpec,
        parent: &Record,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let _ = (parent, cursor);
        Err(ConnectorError::Unsupported(format!(
            "{} has no children for stream {}",
            self.provider(),
            parent_stream.name
        )))
    }
    /// Links to attachments (images) in `record` of `stream` that should be downloaded,
    /// as absolute URLs with HTML entities decoded. Connectors without attachments keep
    /// this default.
    fn attachment_links(&self, stream: &StreamSpec, record: &Record) -> Vec<String> {
        let _ = (stream, record);
        Vec::new()
    }
    /// How to fetch one of this connector's attachment links (`None`: the default
    /// anonymous image fetch). Slack's files need the token.
    async fn attachment_access(&self, url: &str) -> Option<crate::FetchAs> {
        let _ = url;
        None
    }
    /// Whether `stream` takes part in reconcile: its complete id listing can be read with
    /// [`Connector::fetch_id_page`], and deletions are detected only by reconcile runs
    /// (not by a delta that happens to read a short listing to its end).
    fn reconciles(&self, stream: &StreamSpec) -> bool {
        let _ = stream;
        false
    }
    /// One page of the ids of `stream` from `cursor` (`None`: the first page), the cheapest
    /// way the provider allows. A connector whose id pages are full pages hands their
    /// records along ([`IdPage::records`]) for the reconcile to upsert. The default reads
    /// the ordinary page and hands over its ids and records.
    async fn fetch_id_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        let page = self.fetch_page(stream, cursor).await?;
        Ok(IdPage::full(page))
    }
    /// The cache validator of `stream` to keep for the next delta (e.g. the ETag of its
    /// first page, or a provider's sync token: Gmail's history id, for a family's parent
    /// stream), after a pass that completed; `None` when there is none.
    fn validator(&self, stream: &StreamSpec) -> Option<String> {
        let _ = stream;
        None
    }
    /// Set (or with `None` clear) the cache validator a delta of `stream` may send. The
    /// engine calls this before every pass: with the stored validator for a delta from
    /// the top, with `None` for a full or resumed pass (which must read every page).
    fn set_validator(&self, stream: &StreamSpec, validator: Option<&str>) {
        let _ = (stream, validator);
    }
    /// Credentials changed by the connector (a refreshed or rotated token) since the last
    /// call, as the complete credentials JSON to seal and store; `None` when unchanged.
    async fn take_updated_credentials(&self) -> Option<serde_json::Value> {
        None
    }
    /// Where to hand new credentials the moment a token exchange returns them, before the
    /// new token is used (`None` clears it). A provider that rotates its refresh token
    /// with every exchange (Slack) must not lose the new one to a crash later in the run:
    /// the engine sets a sink that seals and stores the complete credentials JSON at once.
    /// The default ignores it (credentials are saved at the end of the run through
    /// [`Connector::take_updated_credentials`]).
    fn set_credential_sink(&self, sink: Option<CredentialSink>) {
        let _ = sink;
    }
    /// Set (or with `None` clear) the flag that stops the sync under way. Once it is set,
    /// the connector's waits (rate limit, retry backoff) and page requests in flight end
    /// at once with an error, so the engine can commit what it fetched and stop; a token
    /// exchange is never cut off (a rotated refresh token must not be lost). The engine
    /// sets it at the start of a sync and clears it at the end.
    fn set_cancel(&self, flag: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>) {
        let _ = flag;
    }
}
