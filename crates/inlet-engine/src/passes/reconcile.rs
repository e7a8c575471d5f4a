//! Reconcile: list every id of a stream, tombstone what the provider no longer has.
//!
//! A delta cannot see removals (an unsaved post, an unstarred repository). For streams a
//! connector marks as reconcilable ([`Connector::reconciles`]), the engine lists all ids
//! ([`Connector::fetch_id_page`]) every Nth completed sync of the stream, when the last
//! reconcile is older than a configured age, or when asked (`RunMode::Reconcile`).
//!
//! The ids are staged in the store page by page (memory stays at one chunk however long
//! the listing), and only once the listing has been read to its natural end is the diff
//! applied — in ONE transaction ([`Store::apply_reconcile`]). A listing that fails,
//! is cancelled or reaches the provider's cap changes nothing. A diff that would
//! tombstone more than the configured share of the stream (default 50%) changes
//! nothing either, and the run says why, unless forced.
//!
//! [`Store::apply_reconcile`]: inlet_core::Store::apply_reconcile
//! [`IdPage::records`]: inlet_core::IdPage::records

use crate::context::RunContext;
use inlet_core::{ConnectorError, PageBatch, ReconcileBatch, StoreError, StreamSpec, StreamStats};

/// Listed ids staged per store call.
const STAGE_CHUNK: usize = 10_000;

/// How a stream's reconcile ended.
pub(crate) enum Outcome {
    /// Applied (or skipped because the listing cannot be complete).
    Done,
    /// The safety valve stopped it; nothing changed.
    Refused(String),
    /// The listing failed; nothing changed.
    Failed(ConnectorError),
    /// Cancelled during the listing; nothing changed.
    Cancelled,
}

/// List every id of `stream`, staging them in the store, then apply the diff.
pub(crate) async fn reconcile_stream(
    ctx: &RunContext<'_>,
    stream: &StreamSpec,
    st: &mut StreamStats,
) -> Result<Outcome, StoreError> {
    let &RunContext {
        store,
        conn,
        connector,
        opts,
        run_id,
        ref policy,
        ..
    } = ctx;
    // One token per run: a concurrent run of the same connection (without a lease)
    // stages its own ids. What a crashed run staged is dropped when its run is closed
    // (`close_abandoned_runs`).
    let token = crate::context::staging_token(conn.id, stream.name, run_id);
    let mut cursor: Option<String> = None;
    let mut buf: Vec<String> = Vec::new();
    let mut listed = 0u64;
    loop {
        if ctx.cancelled() {
            store.drop_staged(&token).await?;
            return Ok(Outcome::Cancelled);
        }
        let page = match connector.fetch_id_page(stream, cursor.as_deref()).await {
            Ok(p) => p,
            Err(e) => {
                store.drop_staged(&token).await?;
                return Ok(Outcome::Failed(e));
            }
        };
        listed += page.ids.len() as u64;
        if !page.records.is_empty() {
            upsert_listed(ctx, stream, page.records, st).await?;
        }
        buf.extend(page.ids);
        if buf.len() >= STAGE_CHUNK {
            store.stage_ids(&token, &buf).await?;
            buf.clear();
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    if !buf.is_empty() {
        store.stage_ids(&token, &buf).await?;
    }
    if stream.listing_cap.is_some_and(|cap| listed >= cap) {
        store.drop_staged(&token).await?;
        tracing::warn!(
            connection = %conn.name,
            stream = stream.name,
            listed,
            "The id listing reached the provider's cap, so it cannot prove deletions; nothing tombstoned."
        );
        return Ok(Outcome::Done);
    }
    let now = ctx.now();
    let mut state = store.sync_state(conn.id, stream.name).await?;
    state.last_reconciled_at = Some(now);
    let out = store
        .apply_reconcile(ReconcileBatch {
            connection_id: conn.id,
            stream,
            token: &token,
            max_share: (!opts.force).then_some(policy.max_share),
            state: &state,
            at: now,
        })
        .await?;
    if out.refused {
        return Ok(Outcome::Refused(refusal(stream, &out, policy.max_share)));
    }
    st.complete_listing = true;
    st.stats.deleted += out.tombstoned;
    st.stats.updated += out.revived;
    Ok(Outcome::Done)
}

/// Upsert the records of a full id page (unchanged rows are not rewritten). The
/// stream's sync state is written back as it is: the reconcile follows a completed
/// pass, and only its final diff moves `last_reconciled_at`.
async fn upsert_listed(
    ctx: &RunContext<'_>,
    stream: &StreamSpec,
    records: Vec<inlet_core::Record>,
    st: &mut StreamStats,
) -> Result<(), StoreError> {
    let &RunContext { store, conn, .. } = ctx;
    let state = store.sync_state(conn.id, stream.name).await?;
    let now = ctx.now();
    ctx.note_attachments(stream, &records, now).await?;
    let out = store
        .commit_page(PageBatch {
            connection_id: conn.id,
            stream,
            records,
            state: &state,
            refresh_derived: true,
            at: now,
        })
        .await?;
    st.stats.inserted += out.inserted;
    st.stats.updated += out.updated;
    st.stats.unchanged += out.unchanged;
    st.stats.derived_inserted += out.derived_inserted;
    st.stats.derived_updated += out.derived_updated;
    Ok(())
}

/// Why the safety valve stopped a reconcile, in one line.
pub(crate) fn refusal(
    stream: &StreamSpec,
    out: &inlet_core::ReconcileOutcome,
    max_share: f64,
) -> String {
    format!(
        "reconcile of {} stopped by the safety valve: it would remove {} of {} records \
         (more than {:.0}%); nothing was removed. If the provider really lost them, run \
         `inlet sync --reconcile --force`",
        stream.name,
        out.tombstoned,
        out.live_before,
        max_share * 100.0
    )
}
