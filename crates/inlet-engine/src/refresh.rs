//! Re-fetch one entity outside a sync ("I just sent a message: show it now").

use crate::sync::{Engine, EngineError};
use inlet_core::{Connection, Connector, ConnectorError, FamilyBatch, PageBatch, StreamSpec};
use serde::Serialize;

/// What a single-entity refresh did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RefreshOutcome {
    /// Rows the provider returned.
    pub fetched: u64,
    /// New rows written.
    pub inserted: u64,
    /// Changed rows rewritten.
    pub updated: u64,
    /// Rows whose content was unchanged.
    pub unchanged: u64,
    /// HTTP requests the refresh made.
    pub requests: u64,
    /// Local placeholder (`stub-*`) rows the real rows replaced.
    pub stubs_removed: u64,
}

impl Engine {
    /// Fetch one entity through [`Connector::fetch_entity`] and commit its rows, one
    /// transaction per stream. Stream cursors and checkpoints are left as they are (the
    /// caller should hold the connection's sync lease so no sync writes them meanwhile).
    /// The outer error is the store's; the inner one the provider's.
    pub async fn refresh_entity(
        &self,
        conn: &Connection,
        connector: &dyn Connector,
        entity: &str,
        id: &str,
    ) -> Result<Result<RefreshOutcome, ConnectorError>, EngineError> {
        let before = connector.http_stats().requests;
        let pages = match connector.fetch_entity(entity, id).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let mut out = RefreshOutcome::default();
        for page in pages {
            let Some(stream) = connector
                .streams()
                .iter()
                .find(|s: &&StreamSpec| s.name == page.stream)
            else {
                return Ok(Err(ConnectorError::Parse(format!(
                    "refresh produced rows for unknown stream {:?}",
                    page.stream
                ))));
            };
            out.fetched += page.records.len() as u64;
            // Children of a family: placeholders the real rows replace go in the same
            // transaction ("I just sent a message": the stub becomes the real message).
            let family = connector
                .families()
                .into_iter()
                .find(|f| f.child == stream.name);
            let parent = family
                .as_ref()
                .and_then(|f| connector.streams().iter().find(|s| s.name == f.parent));
            if let (Some(fam), Some(parent)) = (&family, parent) {
                let o = self
                    .store()
                    .commit_family(FamilyBatch {
                        connection_id: conn.id,
                        parent,
                        parents: Vec::new(),
                        child: stream,
                        children: page.records,
                        markers: Vec::new(),
                        stubs: fam.stubs,
                        state: None,
                        at: self.now(),
                    })
                    .await?;
                out.inserted += o.children.inserted;
                out.updated += o.children.updated;
                out.unchanged += o.children.unchanged;
                out.stubs_removed += o.stubs_removed;
                continue;
            }
            let state = self.store().sync_state(conn.id, stream.name).await?;
            // Links are recorded pending; the next sync downloads them.
            self.note_attachments(connector, conn.id, stream, &page.records, self.now())
                .await?;
            let outcome = self
                .store()
                .commit_page(PageBatch {
                    connection_id: conn.id,
                    stream,
                    records: page.records,
                    state: &state,
                    at: self.now(),
                    refresh_derived: true,
                })
                .await?;
            out.inserted += outcome.inserted;
            out.updated += outcome.updated;
            out.unchanged += outcome.unchanged;
        }
        out.requests = connector.http_stats().requests.saturating_sub(before);
        Ok(Ok(out))
    }
}
