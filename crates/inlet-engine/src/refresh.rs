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
    /// transaction per stream. Rows of a family's parent stream go in the transaction of
    /// that family's child rows, with their change markers: a connector returns a parent
    /// row together with ALL of its children (eBay: the conversation and its thread), so
    /// the row's latest-message fields follow the refresh. Stream cursors and checkpoints
    /// are left as they are (the caller should hold the connection's sync lease so no
    /// sync writes them meanwhile).
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
        let families = connector.families();
        let find = |name: &str| {
            connector
                .streams()
                .iter()
                .find(|s: &&StreamSpec| s.name == name)
        };
        // Rows of a family's parent stream are committed with that family's children:
        // they came with all of the parent's children, so the parent's marker is stored
        // too and the next sync does not read the thread again.
        let (parent_pages, pages): (Vec<_>, Vec<_>) = pages
            .into_iter()
            .partition(|p| families.iter().any(|f| f.parent == p.stream));
        let mut parent_pages: Vec<Option<_>> = parent_pages.into_iter().map(Some).collect();
        for page in pages {
            let Some(stream) = find(page.stream) else {
                return Ok(Err(ConnectorError::Parse(format!(
                    "refresh produced rows for unknown stream {:?}",
                    page.stream
                ))));
            };
            out.fetched += page.records.len() as u64;
            // Children of a family: placeholders the real rows replace go in the same
            // transaction ("I just sent a message": the stub becomes the real message).
            // The family is the one whose parent rows came along, else the first.
            let with_parent = parent_pages.iter_mut().find(|p| {
                p.as_ref().is_some_and(|p| {
                    families
                        .iter()
                        .any(|f| f.parent == p.stream && f.child == stream.name)
                })
            });
            let parents = with_parent.and_then(Option::take);
            let family = match &parents {
                Some(p) => families
                    .iter()
                    .find(|f| f.parent == p.stream && f.child == stream.name),
                None => families.iter().find(|f| f.child == stream.name),
            };
            let parent = family.and_then(|f| find(f.parent));
            if let (Some(fam), Some(parent)) = (family, parent) {
                let parents = parents.map(|p| p.records).unwrap_or_default();
                out.fetched += parents.len() as u64;
                let markers = parents
                    .iter()
                    .map(|r| (r.id.clone(), fam.marker_of(parent, r)))
                    .collect();
                let o = self
                    .store()
                    .commit_family(FamilyBatch {
                        connection_id: conn.id,
                        parent,
                        parents,
                        child: stream,
                        children: page.records,
                        markers,
                        stubs: fam.stubs,
                        replace_children: None,
                        state: None,
                        at: self.now(),
                    })
                    .await?;
                out.inserted += o.children.inserted + o.parents.inserted;
                out.updated += o.children.updated + o.parents.updated;
                out.unchanged += o.children.unchanged + o.parents.unchanged;
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
        // Parent rows without children in this refresh: the rows only, no marker.
        for page in parent_pages.into_iter().flatten() {
            let (Some(fam), Some(parent)) = (
                families.iter().find(|f| f.parent == page.stream),
                find(page.stream),
            ) else {
                continue;
            };
            let Some(child) = find(fam.child) else {
                continue;
            };
            out.fetched += page.records.len() as u64;
            let o = self
                .store()
                .commit_family(FamilyBatch {
                    connection_id: conn.id,
                    parent,
                    parents: page.records,
                    child,
                    children: Vec::new(),
                    markers: Vec::new(),
                    stubs: None,
                    replace_children: None,
                    state: None,
                    at: self.now(),
                })
                .await?;
            out.inserted += o.parents.inserted;
            out.updated += o.parents.updated;
            out.unchanged += o.parents.unchanged;
        }
        out.requests = connector.http_stats().requests.saturating_sub(before);
        Ok(Ok(out))
    }
}
