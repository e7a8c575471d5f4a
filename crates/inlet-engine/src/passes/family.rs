//! Parent/child streams: list parents, fetch children only where the marker moved.
//!
//! A [`Family`] pairs a parent stream (eBay conversations) with a child stream (their
//! messages). A pass over a family reads the parent listings page by page — several
//! listings are merged by id, a listing that is unsupported or fails is reported in
//! the run while the others go on — and for each page:
//!
//! 1. looks up the stored change marker of each listed parent (written with its
//!    children, never before them);
//! 2. fetches the children (every page of a long thread) of the parents whose marker
//!    differs, with at most [`Family::concurrency`] fetches in flight, plus a seeded
//!    random sample of unchanged parents ([`Family::sample_rate`], at least one per run)
//!    whose re-fetched children are compared with the store — a difference is a
//!    `sample_mismatches` in the run's stream stats;
//! 3. commits the page's parents, the fetched children, their new markers, the removal of
//!    placeholder (`stub-*`) rows the real children replace, and the checkpoint after the
//!    page in ONE transaction ([`Store::commit_family`]).
//!
//! A child fetch the provider refuses for one parent (a 4xx: [`ConnectorError::Provider`])
//! is logged, counted in `items_skipped_with_error` and skipped: that parent's row and
//! marker are left as they were, so the next run tries it again.
//!
//! Delta runs ask the listings for parents active since the stream's watermark (minus
//! the stream's lookback) — or, for a [`Family::newest_first`] family, read the listings
//! unfiltered, newest activity first, and stop each at the first parent whose marker is
//! unchanged and whose latest activity is older than that; every
//! [`Family::full_scan_every`]-th run and every full run read the listings whole, which
//! catches what the filter hides and, when every listing was read to its end,
//! tombstones parents no longer listed. A progressive family
//! ([`Family::progressive`]) instead reads a few pages per run from a stored offset and
//! wraps to the start at the end; a full run reads its (larger) budget from the start.

use crate::context::{PassError, RunContext, StreamEnd, set_http};
use crate::sync::EngineError;
use futures_util::stream::{self, StreamExt};
use inlet_core::{
    Checkpoint, Connection, Connector, ConnectorError, Family, FamilyBatch, FamilyOutcome,
    PageOutcome, Record, RunMode, StopRule, StoreError, StreamSpec, StreamStats, SyncState,
    Timestamp, TombstoneBatch,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

/// Where a family pass resumes (kept as JSON in [`Checkpoint::next`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FamilyCursor {
    /// Index into [`Family::listings`].
    listing: usize,
    /// The provider's cursor of that listing's next page.
    next: Option<String>,
    /// The pass reads the listings whole (no `since` filter).
    scan: bool,
    /// Listings that failed in this pass (kept across a resume: their watermarks must not
    /// advance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    failed: Vec<String>,
}

/// The watermarks of a [`Family::listing_cursors`] family, kept in the parent stream's
/// cursor as a JSON object `{listing: ms}`; a plain number (one watermark for the stream,
/// as written before) holds for every listing.
fn parse_marks(cursor: Option<&str>, listings: &[String]) -> BTreeMap<String, i64> {
    let Some(c) = cursor else {
        return BTreeMap::new();
    };
    if let Ok(ms) = c.parse::<i64>() {
        return listings.iter().map(|l| (l.clone(), ms)).collect();
    }
    serde_json::from_str(c).unwrap_or_default()
}

/// The stream names that are children of a family (synced only through their parent).
pub(crate) fn is_child(families: &[Family], stream: &str) -> bool {
    families
        .iter()
        .any(|f| f.child == stream && f.parent != stream)
}

/// Add a family pass's child-stream stats to the run's entry for that stream (several
/// families may share one child stream).
pub(crate) fn merge_child(into: &mut StreamStats, from: &StreamStats) {
    into.stats.add(&from.stats);
    into.stubs_removed += from.stubs_removed;
}

/// Sync one family; returns how the parent stream ended and the child stream's stats.
pub(crate) async fn sync_family(
    ctx: &RunContext<'_>,
    fam: &Family,
    parent: &StreamSpec,
    st: &mut StreamStats,
) -> Result<(StreamEnd, StreamStats), EngineError> {
    let connector = ctx.connector;
    let mut cst = StreamStats::default();
    let Some(child) = connector.streams().iter().find(|s| s.name == fam.child) else {
        let e = ConnectorError::Config(format!("family child stream {:?} unknown", fam.child));
        return Ok((StreamEnd::Failed(e), cst));
    };
    let http_before = connector.http_stats();
    let mut pass = FamilyPass::begin(ctx, fam, parent, child, ctx.opts.mode).await?;
    // The parent stream's validator (a provider's sync token, e.g. Gmail's history id)
    // goes only to a delta from the top; a full or resumed pass reads from its cursor.
    let validator = if pass.cp.mode == RunMode::Delta && !pass.resumed {
        ctx.store.stream_validator(ctx.conn.id, parent.name).await?
    } else {
        None
    };
    connector.set_validator(parent, validator.as_deref());
    st.resumed = pass.resumed;
    ctx.progress.stream_started(parent.name, pass.resumed);
    let end = pass.run(st, &mut cst).await;
    if matches!(end, Ok(StreamEnd::Done)) {
        let v = connector.validator(parent);
        if v != validator {
            ctx.store
                .put_stream_validator(ctx.conn.id, parent.name, v.as_deref())
                .await?;
        }
    }
    set_http(&mut st.stats, http_before, connector.http_stats());
    match end {
        Ok(end) => Ok((end, cst)),
        Err(PassError::Store(e)) => Err(e.into()),
        Err(PassError::Connector(e)) => Ok((StreamEnd::Failed(e), cst)),
    }
}

struct FamilyPass<'a> {
    ctx: &'a RunContext<'a>,
    conn: &'a Connection,
    fam: &'a Family,
    parent: &'a StreamSpec,
    child: &'a StreamSpec,
    state: SyncState,
    cp: Checkpoint,
    cur: FamilyCursor,
    resumed: bool,
    /// The `since` filter of a delta pass (of the listing being read, for a
    /// [`Family::listing_cursors`] family).
    since: Option<Timestamp>,
    /// The watermark of each listing before this pass ([`Family::listing_cursors`]).
    marks: BTreeMap<String, i64>,
    /// The lookback subtracted from a watermark.
    lookback_ms: i64,
    /// A windowed delta tombstones the live parents at or after this time it did not list
    /// (the latest `since` of the listings: every listing was read from there on).
    window_since: Option<Timestamp>,
    /// Re-fetch every parent's children (a full run).
    refetch_all: bool,
    /// Parent ids handled in this pass (listings overlap).
    done: HashSet<String>,
    /// Every id a complete scan listed, while it may still prove complete.
    seen: Option<Vec<String>>,
    /// A listing failed (not merely unsupported): no tombstones, no watermark advance.
    failed: Option<ConnectorError>,
    /// One unchanged parent kept (reservoir sampling) for the at-least-one re-check.
    candidate: Option<Record>,
    unchanged_seen: u64,
}

fn hash64(seed: i64, id: &str, salt: u8) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (seed, id, salt).hash(&mut h);
    h.finish()
}

impl<'a> FamilyPass<'a> {
    async fn begin(
        ctx: &'a RunContext<'a>,
        fam: &'a Family,
        parent: &'a StreamSpec,
        child: &'a StreamSpec,
        mode: RunMode,
    ) -> Result<FamilyPass<'a>, StoreError> {
        let (store, conn) = (ctx.store, ctx.conn);
        let mut state = store.sync_state(conn.id, parent.name).await?;
        let now = ctx.now();
        let resumable = state.checkpoint.clone().filter(|cp| {
            fam.progressive.is_none() && (cp.mode == RunMode::Full || mode == RunMode::Delta)
        });
        let (cp, cur, resumed) = match resumable {
            Some(cp) => {
                let cur = cp
                    .next
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(FamilyCursor {
                        scan: true,
                        ..FamilyCursor::default()
                    });
                (cp, cur, true)
            }
            None => {
                let every = i64::from(fam.full_scan_every.max(1));
                let (mode, scan) = if fam.listing_cursors {
                    // A listing without a watermark gets its first sync as its `since`;
                    // only a full run (or the periodic scan) reads the listings whole.
                    let first = state.cursor.is_none();
                    let scan = mode == RunMode::Full
                        || (state.sync_count > 0 && state.sync_count % every == 0);
                    (if first { RunMode::Full } else { mode }, scan)
                } else {
                    let first = state.last_success_at.is_none();
                    let mode = if first { RunMode::Full } else { mode };
                    let scan = mode == RunMode::Full
                        || state.cursor.is_none()
                        || state.sync_count % every == 0;
                    (mode, scan)
                };
                let cur = FamilyCursor {
                    listing: 0,
                    next: None,
                    scan,
                    failed: Vec::new(),
                };
                let cp = Checkpoint {
                    mode,
                    next: serde_json::to_string(&cur).ok(),
                    watermark: now,
                    pages: 0,
                    records: 0,
                    fetched_all: false,
                };
                (cp, cur, false)
            }
        };
        let lookback = match (fam.lookback_secs, parent.stop) {
            (Some(secs), _) => secs,
            (None, StopRule::CreatedBefore { lookback_secs }) => lookback_secs,
            _ => 0,
        };
        let marks = if fam.listing_cursors {
            parse_marks(state.cursor.as_deref(), &fam.listings)
        } else {
            BTreeMap::new()
        };
        let since = match (cur.scan, state.cursor.as_deref()) {
            _ if fam.listing_cursors => None,
            (false, Some(c)) => c
                .parse::<i64>()
                .ok()
                .map(|ms| Timestamp(ms - lookback * 1000)),
            _ => None,
        };
        state.last_sync_at = Some(now);
        if fam.progressive.is_none() {
            state.checkpoint = Some(cp.clone());
        }
        store.put_sync_state(conn.id, parent.name, &state).await?;
        let mut pass_failed = None;
        if !cur.failed.is_empty() {
            pass_failed = Some(ConnectorError::Provider(format!(
                "listing {} failed before the sync was resumed",
                cur.failed.join(", ")
            )));
        }
        let mut pass = FamilyPass {
            ctx,
            conn,
            fam,
            parent,
            child,
            state,
            refetch_all: cp.mode == RunMode::Full,
            cp,
            cur,
            resumed,
            since,
            marks,
            lookback_ms: lookback * 1000,
            window_since: since,
            done: HashSet::new(),
            seen: None,
            failed: pass_failed,
            candidate: None,
            unchanged_seen: 0,
        };
        if fam.listing_cursors && !pass.cur.scan {
            pass.window_since = fam.listings.iter().filter_map(|l| pass.since_for(l)).max();
        }
        let windowed =
            pass.window_since.is_some() && fam.window_column.is_some() && !fam.newest_first;
        pass.seen =
            (!resumed && (pass.cur.scan || windowed) && fam.progressive.is_none()).then(Vec::new);
        Ok(pass)
    }

    /// The `since` of one listing of a [`Family::listing_cursors`] family: its watermark
    /// minus the lookback, or — never read yet — the first-sync window before the pass
    /// began; `None` (read whole) in a scan.
    fn since_for(&self, listing: &str) -> Option<Timestamp> {
        if !self.fam.listing_cursors {
            return self.since;
        }
        if self.cur.scan {
            return None;
        }
        match self.marks.get(listing) {
            Some(ms) => Some(Timestamp(ms - self.lookback_ms)),
            None => self
                .fam
                .first_window_secs
                .map(|w| Timestamp(self.cp.watermark.millis() - w * 1000)),
        }
    }

    async fn run(
        &mut self,
        st: &mut StreamStats,
        cst: &mut StreamStats,
    ) -> Result<StreamEnd, PassError> {
        let end = if self.fam.progressive.is_some() {
            self.run_progressive(st, cst).await?
        } else {
            self.run_listings(st, cst).await?
        };
        if !matches!(end, StreamEnd::Done) {
            return Ok(end);
        }
        self.recheck_one(st, cst).await?;
        self.finish(st).await?;
        Ok(match self.failed.take() {
            Some(e) => StreamEnd::Failed(e),
            None => StreamEnd::Done,
        })
    }

    async fn run_listings(
        &mut self,
        st: &mut StreamStats,
        cst: &mut StreamStats,
    ) -> Result<StreamEnd, PassError> {
        let (connector, progress) = (self.ctx.connector, self.ctx.progress);
        let start = self.cur.listing;
        for li in start..self.fam.listings.len() {
            let listing = self.fam.listings[li].clone();
            let mut cursor = if li == start {
                self.cur.next.clone()
            } else {
                None
            };
            let mut first = cursor.is_none();
            if self.fam.listing_cursors {
                self.since = self.since_for(&listing);
            }
            loop {
                if self.ctx.cancelled() {
                    return Ok(StreamEnd::Cancelled);
                }
                let filter = if self.fam.newest_first {
                    None
                } else {
                    self.since
                };
                let page = match connector
                    .fetch_listing(self.parent, &listing, filter, cursor.as_deref())
                    .await
                {
                    Ok(p) => p,
                    // Bad credentials and a spent rate limit stop the run; other listings
                    // would meet the same.
                    Err(
                        e @ (ConnectorError::NeedsReauth(_) | ConnectorError::RateLimited { .. }),
                    ) => return Err(PassError::Connector(e)),
                    // A request cut off by the cancellation: not a failed listing.
                    Err(_) if self.ctx.cancelled() => return Ok(StreamEnd::Cancelled),
                    Err(e) => {
                        self.listing_failed(&listing, first, e, st);
                        break;
                    }
                };
                first = false;
                let next = page.next.clone();
                let failed = std::mem::take(&mut self.cur.failed);
                self.cur = match &next {
                    Some(n) => FamilyCursor {
                        listing: li,
                        next: Some(n.clone()),
                        scan: self.cur.scan,
                        failed,
                    },
                    None => FamilyCursor {
                        listing: li + 1,
                        next: None,
                        scan: self.cur.scan,
                        failed,
                    },
                };
                self.cp.next = serde_json::to_string(&self.cur).ok();
                self.cp.pages += 1;
                self.cp.records += page.records.len() as u64;
                let state = SyncState {
                    checkpoint: Some(self.cp.clone()),
                    ..self.state.clone()
                };
                let reached_old = self.process_page(page.records, state, st, cst).await?;
                progress.page_committed(self.parent.name, st);
                match next {
                    Some(_) if reached_old => {
                        // Newest first: everything further down is older and unchanged.
                        self.cur = FamilyCursor {
                            listing: li + 1,
                            next: None,
                            scan: self.cur.scan,
                            failed: std::mem::take(&mut self.cur.failed),
                        };
                        self.cp.next = serde_json::to_string(&self.cur).ok();
                        break;
                    }
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
        }
        Ok(StreamEnd::Done)
    }

    /// A listing could not be read: say so and go on with the others. An unsupported
    /// listing (refused on its first page) does not make the merged listing incomplete.
    fn listing_failed(
        &mut self,
        listing: &str,
        first: bool,
        e: ConnectorError,
        st: &mut StreamStats,
    ) {
        let label = if listing.is_empty() {
            self.parent.name
        } else {
            listing
        };
        tracing::warn!(
            connection = %self.conn.name,
            stream = self.parent.name,
            listing = label,
            error = %e,
            "Listing skipped; the other listings go on."
        );
        st.listing_errors.push(format!("{label}: {e}"));
        if !(first && matches!(e, ConnectorError::Unsupported(_))) {
            self.seen = None;
            self.failed.get_or_insert(e);
            self.cur.failed.push(listing.to_string());
            self.cp.next = serde_json::to_string(&self.cur).ok();
        }
    }

    async fn run_progressive(
        &mut self,
        st: &mut StreamStats,
        cst: &mut StreamStats,
    ) -> Result<StreamEnd, PassError> {
        let (connector, progress) = (self.ctx.connector, self.ctx.progress);
        let Some(p) = self.fam.progressive else {
            return Ok(StreamEnd::Done);
        };
        let budget = if self.cp.mode == RunMode::Full {
            p.full
        } else {
            p.normal
        };
        let listing = self.fam.listings.first().cloned().unwrap_or_default();
        // A full run re-reads the listing from its start (new mail sits at the top), not
        // from the stored offset.
        let mut from_start = self.cp.mode == RunMode::Full;
        for _ in 0..budget {
            if self.ctx.cancelled() {
                return Ok(StreamEnd::Cancelled);
            }
            let cursor = if std::mem::take(&mut from_start) {
                None
            } else {
                self.state.cursor.clone()
            };
            let page = connector
                .fetch_listing(self.parent, &listing, None, cursor.as_deref())
                .await
                .map_err(PassError::Connector)?;
            // The offset after this page; the end of the listing wraps to its start.
            let next = page.next.clone();
            let state = SyncState {
                cursor: next.clone(),
                checkpoint: None,
                ..self.state.clone()
            };
            // Progressive passes never have a `since`: nothing to stop at.
            self.process_page(page.records, state, st, cst).await?;
            progress.page_committed(self.parent.name, st);
            if next.is_none() {
                break;
            }
        }
        Ok(StreamEnd::Done)
    }

    fn sampled(&self, id: &str) -> bool {
        let u = hash64(self.cp.watermark.millis(), id, 1) as f64 / u64::MAX as f64;
        u < self.fam.sample_rate
    }

    /// Handle one listing page: compare markers, fetch children, commit with `state`.
    /// Returns whether a newest-first delta reached a parent that is unchanged and older
    /// than its `since` (the listing can stop after this page).
    async fn process_page(
        &mut self,
        records: Vec<Record>,
        state: SyncState,
        st: &mut StreamStats,
        cst: &mut StreamStats,
    ) -> Result<bool, PassError> {
        let connector = self.ctx.connector;
        let gone = connector.take_gone(self.parent);
        if !gone.is_empty() {
            // Reported gone by the provider: repeatable, so done before the page's
            // checkpoint (a crash in between reads the page and tombstones again).
            let child = self.fam.child_parent_column.map(|c| (self.child, c));
            let (p, c) = self
                .ctx
                .store
                .tombstone_parents(self.conn.id, self.parent, &gone, child, self.ctx.now())
                .await?;
            st.stats.deleted += p;
            cst.stats.deleted += c;
        }
        let recs: Vec<Record> = records
            .into_iter()
            .filter(|r| self.done.insert(r.id.clone()))
            .collect();
        if let Some(seen) = &mut self.seen {
            if seen.len() + recs.len() > self.ctx.limits.max_seen {
                self.seen = None;
            } else {
                seen.extend(recs.iter().map(|r| r.id.clone()));
            }
        }
        st.stats.fetched += recs.len() as u64;
        let ids: Vec<String> = recs.iter().map(|r| r.id.clone()).collect();
        let stored = self
            .ctx
            .store
            .parent_markers(self.conn.id, self.parent.name, &ids)
            .await?;
        let marks: Vec<String> = recs
            .iter()
            .map(|r| self.fam.marker_of(self.parent, r))
            .collect();
        let stop_before = self.since.filter(|_| self.fam.newest_first);
        let mut reached_old = false;
        let mut wanted: Vec<(usize, bool)> = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            if self.refetch_all || stored.get(&r.id) != Some(&marks[i]) {
                st.parents_changed += 1;
                wanted.push((i, false));
            } else {
                st.parents_unchanged += 1;
                if let (Some(since), Some(t)) = (stop_before, r.sort_ts) {
                    reached_old |= t < since;
                }
                if self.sampled(&r.id) {
                    wanted.push((i, true));
                } else {
                    self.unchanged_seen += 1;
                    let keep = hash64(self.cp.watermark.millis(), &r.id, 2) % self.unchanged_seen;
                    if keep == 0 {
                        self.candidate = Some(r.clone());
                    }
                }
            }
        }
        let parent = self.parent;
        let recs_ref = &recs;
        let results: Vec<(usize, bool, Result<Vec<Record>, ConnectorError>)> = stream::iter(wanted)
            .map(|(i, sample)| async move {
                let r = fetch_children(connector, parent, &recs_ref[i]).await;
                (i, sample, r)
            })
            .buffer_unordered(self.fam.concurrency.max(1))
            .collect()
            .await;
        let mut children = Vec::new();
        let mut markers = Vec::new();
        let mut leave_out: HashSet<usize> = HashSet::new();
        let mut samples = Vec::new();
        for (i, sample, res) in results {
            match res {
                Ok(kids) if sample => {
                    leave_out.insert(i);
                    samples.push((i, kids));
                }
                Ok(kids) => {
                    markers.push((recs[i].id.clone(), marks[i].clone()));
                    children.extend(kids);
                }
                Err(ConnectorError::Provider(msg)) => {
                    leave_out.insert(i);
                    self.skip_item(&recs[i].id, &msg, st);
                }
                Err(e) => return Err(PassError::Connector(e)),
            }
        }
        for (i, kids) in samples {
            self.commit_sample(&recs[i], &marks[i], kids, st, cst)
                .await?;
        }
        let parents: Vec<Record> = recs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !leave_out.contains(i))
            .map(|(_, r)| r)
            .collect();
        // Attachment links are recorded before the rows that carry them commit.
        let now = self.ctx.now();
        self.ctx
            .note_attachments(self.parent, &parents, now)
            .await?;
        self.ctx
            .note_attachments(self.child, &children, now)
            .await?;
        let out = self
            .ctx
            .store
            .commit_family(FamilyBatch {
                connection_id: self.conn.id,
                parent: self.parent,
                parents,
                child: self.child,
                children,
                markers,
                stubs: self.fam.stubs,
                replace_children: self.fam.child_parent_column,
                state: Some(&state),
                at: self.ctx.now(),
            })
            .await?;
        self.state = state;
        st.stats.pages += 1;
        add_outcome(st, cst, &out);
        Ok(reached_old)
    }

    fn skip_item(&self, id: &str, msg: &str, st: &mut StreamStats) {
        tracing::warn!(
            connection = %self.conn.name,
            stream = self.child.name,
            parent = id,
            error = %msg,
            "Children skipped: the provider refused them; the next sync retries."
        );
        st.stats.items_skipped_with_error += 1;
    }

    /// Commit a sampled parent's children on their own, to see whether they changed.
    async fn commit_sample(
        &mut self,
        rec: &Record,
        marker: &str,
        kids: Vec<Record>,
        st: &mut StreamStats,
        cst: &mut StreamStats,
    ) -> Result<(), PassError> {
        st.parents_sampled += 1;
        self.ctx
            .note_attachments(self.child, &kids, self.ctx.now())
            .await?;
        let out = self
            .ctx
            .store
            .commit_family(FamilyBatch {
                connection_id: self.conn.id,
                parent: self.parent,
                parents: vec![rec.clone()],
                child: self.child,
                children: kids,
                markers: vec![(rec.id.clone(), marker.to_string())],
                stubs: self.fam.stubs,
                replace_children: self.fam.child_parent_column,
                state: None,
                at: self.ctx.now(),
            })
            .await?;
        if out.children.inserted + out.children.updated > 0 {
            st.sample_mismatches += 1;
            tracing::warn!(
                connection = %self.conn.name,
                stream = self.parent.name,
                parent = %rec.id,
                changed = out.children.inserted + out.children.updated,
                "Marker unchanged but children changed: the provider's change marker missed an update."
            );
        }
        add_outcome(st, cst, &out);
        Ok(())
    }

    /// Every run re-checks at least one unchanged parent.
    async fn recheck_one(
        &mut self,
        st: &mut StreamStats,
        cst: &mut StreamStats,
    ) -> Result<(), PassError> {
        if st.parents_sampled > 0 || !self.fam.recheck_one {
            return Ok(());
        }
        let Some(rec) = self.candidate.take() else {
            return Ok(());
        };
        match fetch_children(self.ctx.connector, self.parent, &rec).await {
            Ok(kids) => {
                let marker = self.fam.marker_of(self.parent, &rec);
                self.commit_sample(&rec, &marker, kids, st, cst).await
            }
            Err(ConnectorError::Provider(msg)) => {
                self.skip_item(&rec.id, &msg, st);
                Ok(())
            }
            Err(e) => Err(PassError::Connector(e)),
        }
    }

    /// Close the pass: advance the watermark (unless a listing failed), tombstone what a
    /// complete scan no longer lists.
    async fn finish(&mut self, st: &mut StreamStats) -> Result<(), StoreError> {
        let store = self.ctx.store;
        let now = self.ctx.now();
        let mut s = self.state.clone();
        s.checkpoint = None;
        if self.fam.listing_cursors {
            // Each listing read to its end advances to this pass's start; a failed one
            // keeps its watermark (or has none yet: its first sync comes again).
            if st.stats.items_skipped_with_error == 0 {
                let mut marks = BTreeMap::new();
                for l in &self.fam.listings {
                    if !self.cur.failed.contains(l) {
                        marks.insert(l.clone(), self.cp.watermark.millis());
                    } else if let Some(ms) = self.marks.get(l) {
                        marks.insert(l.clone(), *ms);
                    }
                }
                if !marks.is_empty() {
                    s.cursor = serde_json::to_string(&marks).ok();
                }
            }
            if self.failed.is_none() {
                s.last_success_at = Some(now);
                s.sync_count += 1;
            }
        } else if self.failed.is_none() {
            // A skipped parent keeps the old watermark, so the next delta lists it again.
            if self.fam.progressive.is_none() && st.stats.items_skipped_with_error == 0 {
                s.cursor = Some(self.cp.watermark.millis().to_string());
            }
            s.last_success_at = Some(now);
            s.sync_count += 1;
        }
        self.state = s;
        let complete = self.failed.is_none() && self.seen.is_some();
        let Some(seen) = self.seen.take().filter(|_| complete) else {
            return store
                .put_sync_state(self.conn.id, self.parent.name, &self.state)
                .await;
        };
        // A delta with `since` was complete within its window only.
        let window = match (self.cur.scan, self.window_since, self.fam.window_column) {
            (false, Some(since), Some(col)) => Some((col, since)),
            _ => None,
        };
        if window.is_none() {
            st.complete_listing = true;
            self.state.last_reconciled_at = Some(now);
        }
        st.stats.deleted += store
            .tombstone_missing(TombstoneBatch {
                connection_id: self.conn.id,
                stream: self.parent,
                seen: &seen,
                window,
                state: &self.state,
                at: now,
                children: self.fam.child_parent_column.map(|c| (self.child, c)),
            })
            .await?;
        Ok(())
    }
}

fn add(a: &mut StreamStats, o: &PageOutcome) {
    a.stats.inserted += o.inserted;
    a.stats.updated += o.updated;
    a.stats.unchanged += o.unchanged;
    a.stats.derived_inserted += o.derived_inserted;
    a.stats.derived_updated += o.derived_updated;
}

fn add_outcome(st: &mut StreamStats, cst: &mut StreamStats, out: &FamilyOutcome) {
    add(st, &out.parents);
    add(cst, &out.children);
    cst.stats.fetched += out.children.inserted + out.children.updated + out.children.unchanged;
    cst.stubs_removed += out.stubs_removed;
    cst.stats.deleted += out.children_deleted;
}

/// Every page of one parent's children.
async fn fetch_children(
    connector: &dyn Connector,
    parent: &StreamSpec,
    rec: &Record,
) -> Result<Vec<Record>, ConnectorError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100_000 {
        let page = connector
            .fetch_children(parent, rec, cursor.as_deref())
            .await?;
        out.extend(page.records);
        match page.next {
            Some(n) if Some(&n) != cursor.as_ref() => cursor = Some(n),
            _ => return Ok(out),
        }
    }
    Err(ConnectorError::Parse(format!(
        "children of {} never reached their last page",
        rec.id
    )))
}
