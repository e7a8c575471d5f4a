//! The flat pass: one stream read page by page, committed in chunks with its checkpoint.

use crate::context::{PassError, RunContext, StreamEnd, set_http, staging_token};
use crate::passes::reconcile;
use crate::sync::{EngineError, MAX_BATCH_RAW_BYTES};
use inlet_core::{
    Checkpoint, Clock, ConnectorError, HttpStats, PageBatch, ReconcileBatch, Record, RunMode,
    StopRule, StoreError, StreamSpec, StreamStats, SyncState, Timestamp,
};
use std::sync::atomic::{AtomicBool, Ordering};

/// Run the flat pass over `stream` (and its reconcile when the run plans one).
pub(crate) async fn sync_stream(
    ctx: &RunContext<'_>,
    stream: &StreamSpec,
    st: &mut StreamStats,
) -> Result<StreamEnd, EngineError> {
    let &RunContext {
        conn,
        connector,
        opts,
        progress,
        ..
    } = ctx;
    let http_before = connector.http_stats();
    // A reconcile run's pass is a delta; the id listing follows it.
    let mode = match opts.mode {
        RunMode::Reconcile => RunMode::Delta,
        m => m,
    };
    let mut pass = Pass::begin(ctx, stream, mode).await?;
    // Cache validators (ETags) only for a delta from the top; a full or resumed pass
    // must read its pages.
    let validator = if pass.cp.mode == RunMode::Delta && pass.cp.next.is_none() {
        ctx.store.stream_validator(conn.id, stream.name).await?
    } else {
        None
    };
    connector.set_validator(stream, validator.as_deref());
    st.resumed = pass.resumed;
    progress.stream_started(stream.name, pass.resumed);
    let mut end = pass.run(ctx, st, http_before).await;
    if matches!(end, Ok(StreamEnd::Done)) {
        let v = connector.validator(stream);
        if v != validator {
            ctx.store
                .put_stream_validator(conn.id, stream.name, v.as_deref())
                .await?;
        }
    }
    if matches!(end, Ok(StreamEnd::Done)) && ctx.reconcile.contains(stream.name) {
        end = match reconcile::reconcile_stream(ctx, stream, st).await {
            Ok(reconcile::Outcome::Done) => Ok(StreamEnd::Done),
            Ok(reconcile::Outcome::Refused(msg)) => Ok(StreamEnd::Refused(msg)),
            Ok(reconcile::Outcome::Cancelled) => Ok(StreamEnd::Cancelled),
            Ok(reconcile::Outcome::Failed(e)) => Err(PassError::Connector(e)),
            Err(e) => Err(PassError::Store(e)),
        };
    }
    set_http(&mut st.stats, http_before, connector.http_stats());
    match end {
        Ok(end) => Ok(end),
        Err(PassError::Store(e)) => Err(e.into()),
        Err(PassError::Connector(e)) => Ok(StreamEnd::Failed(e)),
    }
}

/// A future's output with the time from `t0` to its completion.
async fn timed<T>(
    f: impl std::future::Future<Output = T>,
    t0: std::time::Instant,
) -> (T, std::time::Duration) {
    let r = f.await;
    (r, t0.elapsed())
}

/// Pages read together and committed in one transaction.
struct Chunk {
    records: Vec<Record>,
    /// Cursor of the page after the chunk.
    next: Option<String>,
    pages: u64,
    /// The pass ends with this chunk.
    last: bool,
    /// It ends because the listing ended (not because a delta reached its stop point).
    listing_ended: bool,
    /// The pass stops after this chunk is committed: cancelled or failed on the page
    /// after it.
    halt: Option<Halt>,
}

/// Why a pass stops before its end.
enum Halt {
    Cancelled,
    Failed(ConnectorError),
}

/// When a chunk is full: records, raw bytes or time since it started, whichever first.
struct ChunkRules<'a> {
    records: usize,
    time_ms: i64,
    clock: &'a dyn Clock,
    cancel: Option<&'a AtomicBool>,
}

impl ChunkRules<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// Read pages from `cursor` until `rules` say the chunk is full, the end of the listing,
/// or a page holding an item created at or before `stop_before`. Cancellation (checked
/// before every page) and a failed page end the chunk early with what was read so far,
/// for the caller to commit before it stops.
async fn gather(
    connector: &dyn inlet_core::Connector,
    stream: &StreamSpec,
    mut cursor: Option<String>,
    stop_before: Option<Timestamp>,
    rules: &ChunkRules<'_>,
) -> Chunk {
    let mut chunk = Chunk {
        records: Vec::new(),
        next: cursor.clone(),
        pages: 0,
        last: false,
        listing_ended: false,
        halt: None,
    };
    let started = rules.clock.now();
    let mut raw_bytes = 0;
    loop {
        if rules.cancelled() {
            chunk.halt = Some(Halt::Cancelled);
            return chunk;
        }
        let page = match connector.fetch_page(stream, cursor.as_deref()).await {
            Ok(p) => p,
            Err(e) => {
                // A request cut off by the cancellation is the cancellation, except a
                // refused credential, which the connection must remember.
                let cut = rules.cancelled() && !matches!(e, ConnectorError::NeedsReauth(_));
                chunk.halt = Some(if cut {
                    Halt::Cancelled
                } else {
                    Halt::Failed(e)
                });
                return chunk;
            }
        };
        chunk.pages += 1;
        raw_bytes += page.records.iter().map(|r| r.raw.len()).sum::<usize>();
        let hit_stop = stop_before.is_some_and(|t| {
            page.records
                .iter()
                .any(|r| r.sort_ts.is_some_and(|ts| ts <= t))
        });
        chunk.listing_ended = page.next.is_none();
        chunk.last = chunk.listing_ended || hit_stop;
        if chunk.records.is_empty() {
            chunk.records = page.records;
        } else {
            chunk.records.extend(page.records);
        }
        cursor = page.next;
        chunk.next = cursor.clone();
        if chunk.last
            || chunk.records.len() >= rules.records
            || raw_bytes >= MAX_BATCH_RAW_BYTES
            || rules.clock.now().0 - started.0 >= rules.time_ms
        {
            return chunk;
        }
    }
}

/// One pass over one stream, from the checkpoint (or the top) to its end or stop point.
struct Pass<'a> {
    connection_id: i64,
    stream: &'a StreamSpec,
    state: SyncState,
    cp: Checkpoint,
    resumed: bool,
    /// Delta over a `CreatedBefore` stream: stop after the page holding an item this old.
    stop_before: Option<Timestamp>,
    /// Ids seen since the first page, while the pass may still prove to be complete.
    seen: Option<Vec<String>>,
    max_seen: usize,
}

impl<'a> Pass<'a> {
    async fn begin(
        ctx: &RunContext<'_>,
        stream: &'a StreamSpec,
        mode: RunMode,
    ) -> Result<Pass<'a>, StoreError> {
        let connection_id = ctx.conn.id;
        let mut state = ctx.store.sync_state(connection_id, stream.name).await?;
        let now = ctx.now();
        let (cp, resumed) = match state.checkpoint.clone() {
            // A full pass is always finished; a delta is resumed unless a full was asked for.
            Some(cp) if cp.mode == RunMode::Full || mode == RunMode::Delta => (cp, true),
            _ => {
                let mode = if state.cursor.is_none() {
                    RunMode::Full
                } else {
                    mode
                };
                (
                    Checkpoint {
                        mode,
                        next: None,
                        watermark: now,
                        pages: 0,
                        records: 0,
                        fetched_all: false,
                    },
                    false,
                )
            }
        };
        let stop_before = match (cp.mode, stream.stop, state.cursor.as_deref()) {
            (RunMode::Delta, StopRule::CreatedBefore { lookback_secs }, Some(c)) => c
                .parse::<i64>()
                .ok()
                .map(|ms| Timestamp(ms - lookback_secs * 1000)),
            _ => None,
        };
        state.last_sync_at = Some(now);
        state.checkpoint = Some(cp.clone());
        ctx.store
            .put_sync_state(connection_id, stream.name, &state)
            .await?;
        let seen = cp.next.is_none().then(Vec::new);
        Ok(Pass {
            connection_id,
            stream,
            state,
            cp,
            resumed,
            stop_before,
            seen,
            // Ids are only useful while the listing can still prove complete: below the
            // provider's cap and the engine's bound.
            max_seen: stream.listing_cap.map_or(ctx.limits.max_seen, |cap| {
                ctx.limits.max_seen.min(cap.saturating_sub(1) as usize)
            }),
        })
    }

    /// The state once the pass is over: the watermark becomes the cursor.
    fn finished_state(&self, now: Timestamp) -> SyncState {
        let mut s = self.state.clone();
        s.cursor = Some(self.cp.watermark.millis().to_string());
        s.checkpoint = None;
        s.last_success_at = Some(now);
        s.sync_count += 1;
        s
    }

    async fn run(
        &mut self,
        ctx: &RunContext<'_>,
        st: &mut StreamStats,
        http_before: HttpStats,
    ) -> Result<StreamEnd, PassError> {
        let &RunContext {
            store,
            connector,
            progress,
            ..
        } = ctx;
        // KnownId deltas decide their stop from what the commit found: one page at a time.
        let stop_needs_commit =
            self.cp.mode == RunMode::Delta && matches!(self.stream.stop, StopRule::KnownId);
        let batch = if stop_needs_commit {
            1
        } else {
            ctx.limits.batch_records
        };
        // A full pass rewrites derived rows once at its end, from an ordered walk of the
        // keys, instead of refreshing the scattered groups each chunk touches.
        let defer_derived = self.cp.mode == RunMode::Full && self.stream.derived.is_some();
        if self.cp.fetched_all {
            // Interrupted between the last page and the derived recomputation.
            return self.finish_deferred(ctx, st, false).await;
        }
        let rules = ChunkRules {
            records: batch,
            time_ms: ctx.limits.batch_time_ms,
            clock: ctx.clock,
            cancel: ctx.opts.cancel.as_deref(),
        };
        let mut pending = gather(
            connector,
            self.stream,
            self.cp.next.clone(),
            self.stop_before,
            &rules,
        )
        .await;
        loop {
            let mut chunk = pending;
            let halt = chunk.halt.take();
            if chunk.pages == 0 {
                // Nothing was fetched since the last commit: stop where it left off.
                return match halt {
                    Some(Halt::Failed(e)) => Err(PassError::Connector(e)),
                    Some(Halt::Cancelled) | None => Ok(StreamEnd::Cancelled),
                };
            }
            let n = chunk.records.len() as u64;
            st.stats.fetched += n;
            self.note_seen(&chunk.records);
            self.cp.next = chunk.next.clone();
            self.cp.pages += chunk.pages;
            self.cp.records += n;
            let now = ctx.now();
            let state = if chunk.last && defer_derived {
                // Keep the pass open until the derived rows are recomputed, so a crash in
                // between redoes the recomputation instead of leaving them stale.
                let cp = Checkpoint {
                    fetched_all: true,
                    ..self.cp.clone()
                };
                SyncState {
                    checkpoint: Some(cp),
                    ..self.state.clone()
                }
            } else if chunk.last {
                self.finished_state(now)
            } else {
                SyncState {
                    checkpoint: Some(self.cp.clone()),
                    ..self.state.clone()
                }
            };
            ctx.note_attachments(self.stream, &chunk.records, now)
                .await?;
            let commit = store.commit_page(PageBatch {
                connection_id: self.connection_id,
                stream: self.stream,
                records: chunk.records,
                state: &state,
                at: now,
                refresh_derived: !defer_derived,
            });
            // The next chunk: fetched while this one is written, unless the pass stops
            // here or its stop rule must see this commit first.
            let (outcome, next) = if chunk.last || stop_needs_commit || halt.is_some() {
                (commit.await?, None)
            } else {
                let next = gather(
                    connector,
                    self.stream,
                    self.cp.next.clone(),
                    self.stop_before,
                    &rules,
                );
                let t0 = std::time::Instant::now();
                let ((c, commit_t), (f, fetch_t)) =
                    tokio::join!(timed(commit, t0), timed(next, t0));
                tracing::debug!(
                    stream = self.stream.name,
                    commit_ms = commit_t.as_millis() as u64,
                    fetch_ms = fetch_t.as_millis() as u64,
                    "Chunk committed while the next was fetched."
                );
                (c?, Some(f))
            };
            self.state = state;
            st.stats.pages += chunk.pages;
            st.stats.inserted += outcome.inserted;
            st.stats.updated += outcome.updated;
            st.stats.unchanged += outcome.unchanged;
            st.stats.derived_inserted += outcome.derived_inserted;
            st.stats.derived_updated += outcome.derived_updated;
            set_http(&mut st.stats, http_before, connector.http_stats());
            progress.page_committed(self.stream.name, st);
            if chunk.last && defer_derived {
                return self.finish_deferred(ctx, st, chunk.listing_ended).await;
            }
            if chunk.last {
                if chunk.listing_ended {
                    return self.tombstone_if_complete(ctx, st).await;
                }
                return Ok(StreamEnd::Done);
            }
            match halt {
                Some(Halt::Cancelled) => return Ok(StreamEnd::Cancelled),
                Some(Halt::Failed(e)) => return Err(PassError::Connector(e)),
                None => {}
            }
            if stop_needs_commit && outcome.known() > 0 {
                self.state = self.finished_state(ctx.now());
                store
                    .put_sync_state(self.connection_id, self.stream.name, &self.state)
                    .await?;
                return Ok(StreamEnd::Done);
            }
            pending = match next {
                Some(chunk) => chunk,
                // A page that was all new: the delta goes on to the next one.
                None => {
                    gather(
                        connector,
                        self.stream,
                        self.cp.next.clone(),
                        self.stop_before,
                        &rules,
                    )
                    .await
                }
            };
        }
    }

    /// Recompute the derived rows a full pass deferred, then close the pass.
    async fn finish_deferred(
        &mut self,
        ctx: &RunContext<'_>,
        st: &mut StreamStats,
        listing_ended: bool,
    ) -> Result<StreamEnd, PassError> {
        let store = ctx.store;
        let (ins, upd) = store
            .refresh_derived_all(self.connection_id, self.stream, ctx.now())
            .await?;
        st.stats.derived_inserted += ins;
        st.stats.derived_updated += upd;
        self.state = self.finished_state(ctx.now());
        store
            .put_sync_state(self.connection_id, self.stream.name, &self.state)
            .await?;
        if listing_ended {
            return self.tombstone_if_complete(ctx, st).await;
        }
        Ok(StreamEnd::Done)
    }

    fn note_seen(&mut self, records: &[Record]) {
        if let Some(seen) = &mut self.seen {
            if seen.len() + records.len() > self.max_seen {
                self.seen = None;
            } else {
                seen.extend(records.iter().map(|r| r.id.clone()));
            }
        }
    }

    /// The listing was read from its first page to its end: what it did not return is gone
    /// (through the same staged, safety-valved diff as a reconcile). Streams that take part
    /// in reconcile leave deletions to their reconcile runs.
    async fn tombstone_if_complete(
        &mut self,
        ctx: &RunContext<'_>,
        st: &mut StreamStats,
    ) -> Result<StreamEnd, PassError> {
        let Some(seen) = self.seen.take() else {
            return Ok(StreamEnd::Done);
        };
        if ctx.connector.reconciles(self.stream)
            || self
                .stream
                .listing_cap
                .is_some_and(|cap| seen.len() as u64 >= cap)
        {
            return Ok(StreamEnd::Done);
        }
        let now = ctx.now();
        let mut state = self.state.clone();
        state.last_reconciled_at = Some(now);
        let token = staging_token(self.connection_id, self.stream.name, ctx.run_id);
        ctx.store.stage_ids(&token, &seen).await?;
        let out = ctx
            .store
            .apply_reconcile(ReconcileBatch {
                connection_id: self.connection_id,
                stream: self.stream,
                token: &token,
                max_share: (!ctx.opts.force).then_some(ctx.policy.max_share),
                state: &state,
                at: now,
            })
            .await?;
        if out.refused {
            return Ok(StreamEnd::Refused(reconcile::refusal(
                self.stream,
                &out,
                ctx.policy.max_share,
            )));
        }
        self.state = state;
        st.complete_listing = true;
        st.stats.deleted += out.tombstoned;
        Ok(StreamEnd::Done)
    }
}
