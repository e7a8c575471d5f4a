//! One sync of one connection: the run row, the streams in order, how it ends.

use crate::context::{INTERRUPTED, Limits, RunContext, StreamEnd, cancelled, staging_token};
use crate::passes::{family, flat};
use crate::reconcile::ReconcilePolicy;
use crate::sync::{Engine, EngineError, Progress, SyncOptions, reauth_hint};
use inlet_core::{
    Connection, ConnectionStatus, Connector, ConnectorError, CredentialSink, Run, RunMode,
    RunStats, RunStatus, Store, StreamSpec, StreamStats, Timestamp,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Engine {
    /// Sync `conn` through `connector`; returns the finished run.
    pub async fn sync(
        &self,
        conn: &Connection,
        connector: &dyn Connector,
        opts: &SyncOptions,
        progress: &dyn Progress,
    ) -> Result<Run, EngineError> {
        self.close_abandoned_runs(conn, connector, opts).await?;
        let started = self.clock.now();
        let policy = ReconcilePolicy::from_config(&conn.config);
        let reconcile = match &policy {
            Ok(p) => self.reconcile_plan(conn, connector, opts, p).await?,
            Err(_) => BTreeSet::new(),
        };
        // A delta that also reconciles is recorded as a reconcile run; a delta of a
        // connection that never completed a stream reads everything, so it is recorded as
        // the full sync it is.
        let mode = if opts.mode == RunMode::Delta && !reconcile.is_empty() {
            RunMode::Reconcile
        } else if opts.mode == RunMode::Delta && self.never_synced(conn.id).await? {
            RunMode::Full
        } else {
            opts.mode
        };
        let run_id = self
            .store
            .start_run(conn.id, mode, opts.trigger, started)
            .await?;
        progress.run_started(run_id);
        let mut run = Run {
            id: run_id,
            connection_id: conn.id,
            mode,
            trigger: opts.trigger,
            status: RunStatus::Running,
            started_at: started,
            finished_at: None,
            stats: RunStats::default(),
            streams: BTreeMap::new(),
            error: None,
            waiting_until: None,
        };
        // Waits and requests in flight end at once when the sync is cancelled.
        connector.set_cancel(opts.cancel.clone());
        // Rotated credentials are sealed and stored the moment they arrive.
        connector.set_credential_sink(self.credential_sink(conn));
        let known_wait = self.known_wait(conn.id, run_id).await?;
        let result = match (known_wait, policy) {
            // An earlier run found the provider's limit spent until later than now: send
            // nothing before then (another process's budget knows nothing about it).
            (Some((until, why)), _) => {
                run.waiting_until = Some(until);
                Ok((RunStatus::Waiting, Some(waiting_message(until, &why))))
            }
            (None, Ok(policy)) => {
                let ctx = RunContext {
                    store: &*self.store,
                    clock: &*self.clock,
                    conn,
                    connector,
                    opts,
                    progress,
                    run_id,
                    policy,
                    reconcile,
                    limits: self.limits(),
                    attachments: self.attachments.is_some(),
                };
                sync_streams(&ctx, &mut run).await
            }
            (None, Err(msg)) => Ok((RunStatus::Failed, Some(msg))),
        };
        connector.set_cancel(None);
        let cancelled = opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst));
        let result = match result {
            Ok((status, error)) if !cancelled => self
                .download_attachments(conn.id, connector, &mut run.stats, status, progress)
                .await
                .map(|s| (s, error)),
            other => other,
        };
        self.save_credentials(conn, connector).await;
        connector.set_credential_sink(None);
        let (status, error) = match result {
            Ok(s) => s,
            Err(e) => {
                // Best effort: the store just failed, but try to leave the run closed
                // and drop what it staged.
                let msg = e.to_string();
                let _ = self.finish(&mut run, RunStatus::Failed, Some(msg)).await;
                for s in connector.streams() {
                    let _ = self
                        .store
                        .drop_staged(&staging_token(conn.id, s.name, run.id))
                        .await;
                }
                return Err(e);
            }
        };
        self.finish(&mut run, status, error).await?;
        Ok(run)
    }

    /// Whether no stream of the connection has completed a pass yet (its first sync).
    async fn never_synced(&self, connection_id: i64) -> Result<bool, EngineError> {
        let states = self.store.sync_states(connection_id).await?;
        Ok(states.values().all(|s| s.last_success_at.is_none()))
    }

    /// The streams this sync reconciles: all reconcilable ones when asked, else those due.
    async fn reconcile_plan(
        &self,
        conn: &Connection,
        connector: &dyn Connector,
        opts: &SyncOptions,
        policy: &ReconcilePolicy,
    ) -> Result<BTreeSet<&'static str>, EngineError> {
        let states = self.store.sync_states(conn.id).await?;
        let now = self.clock.now();
        Ok(connector
            .streams()
            .iter()
            .filter(|s| connector.reconciles(s))
            .filter(|s| {
                opts.streams
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|n| n == s.name))
            })
            .filter(|s| {
                opts.mode == RunMode::Reconcile
                    || states.get(s.name).is_some_and(|st| policy.due(st, now))
            })
            .map(|s| s.name)
            .collect())
    }

    /// The bounds the engine puts on one pass.
    fn limits(&self) -> Limits {
        Limits {
            batch_records: self.batch_records,
            batch_time_ms: self.batch_time_ms,
            max_seen: self.max_seen,
        }
    }

    /// When the connection's last finished run ended `waiting` until a time still to
    /// come: that time and the provider's message.
    async fn known_wait(
        &self,
        connection_id: i64,
        this_run: i64,
    ) -> Result<Option<(Timestamp, String)>, EngineError> {
        let now = self.clock.now();
        let last = self
            .store
            .list_runs(Some(connection_id), 5)
            .await?
            .into_iter()
            .find(|r| r.id != this_run && r.status != RunStatus::Running);
        Ok(last.and_then(|r| match (r.status, r.waiting_until) {
            (RunStatus::Waiting, Some(until)) if until > now => {
                let why = r
                    .error
                    .as_deref()
                    .and_then(|e| e.split_once(": "))
                    .map_or("the provider's limit is spent", |(_, why)| why)
                    .to_string();
                Some((until, why))
            }
            _ => None,
        }))
    }

    /// Runs left `running` by a process that died (or lost its database) can never
    /// finish: close them as interrupted (and, under the lease, drop the ids they
    /// staged). A `running` row
    /// alone does not prove its process is gone: while another holder's lease on the
    /// connection is live, its run may be working, so nothing is closed (the run that
    /// next holds the lease closes what is left).
    async fn close_abandoned_runs(
        &self,
        conn: &Connection,
        connector: &dyn Connector,
        opts: &SyncOptions,
    ) -> Result<(), EngineError> {
        let now = self.clock.now();
        let lease = self.store.get_lease(conn.id).await?;
        if let Some(lease) = &lease
            && lease.expires_at > now
            && opts.lease_holder.as_deref() != Some(lease.holder.as_str())
        {
            tracing::debug!(connection = %conn.name, holder = %lease.holder, "Another process holds the sync lease; its runs are left alone.");
            return Ok(());
        }
        // Under the lease no other sync of the connection runs, so what a closed run
        // staged is garbage. Without one (a library caller), a `running` row may be a
        // live sync elsewhere: its staged ids stay.
        let exclusive =
            lease.is_some_and(|l| opts.lease_holder.as_deref() == Some(l.holder.as_str()));
        for r in self.store.list_runs(Some(conn.id), 20).await? {
            if r.status == RunStatus::Running {
                let msg =
                    "interrupted: the process stopped; the next sync resumed from the checkpoint";
                self.store
                    .update_run(
                        r.id,
                        RunStatus::Interrupted,
                        &r.stats,
                        &r.streams,
                        Some(msg),
                        Some(now),
                    )
                    .await?;
                if exclusive {
                    for s in connector.streams() {
                        self.store
                            .drop_staged(&staging_token(conn.id, s.name, r.id))
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn finish(
        &self,
        run: &mut Run,
        status: RunStatus,
        error: Option<String>,
    ) -> Result<(), EngineError> {
        run.status = status;
        run.error = error;
        run.finished_at = Some(self.clock.now());
        self.store
            .update_run(
                run.id,
                status,
                &run.stats,
                &run.streams,
                run.error.as_deref(),
                run.finished_at,
            )
            .await?;
        if run.waiting_until.is_some() {
            self.store
                .set_run_waiting_until(run.id, run.waiting_until)
                .await?;
        }
        Ok(())
    }

    /// Seals and stores a connector's new credentials at once (see
    /// [`Connector::set_credential_sink`]); `None` without a sealer.
    fn credential_sink(&self, conn: &Connection) -> Option<CredentialSink> {
        let sealer = self.sealer.clone()?;
        let (store, clock, conn) = (self.store.clone(), self.clock.clone(), conn.clone());
        Some(Arc::new(move |creds: serde_json::Value| {
            let (sealer, store, clock, conn) =
                (sealer.clone(), store.clone(), clock.clone(), conn.clone());
            Box::pin(async move {
                let sealed = match sealer(&conn, &creds) {
                    Ok(s) => s,
                    Err(e) => {
                        return tracing::error!(connection = %conn.name, error = %e, "Could not seal rotated credentials.");
                    }
                };
                match store.set_credentials(conn.id, &sealed, clock.now()).await {
                    Ok(()) => {
                        tracing::info!(connection = %conn.name, "Rotated credentials stored.");
                    }
                    Err(e) => {
                        tracing::error!(connection = %conn.name, error = %e, "Could not store rotated credentials; they are stored again at the end of the run.");
                    }
                }
            })
        }))
    }

    async fn save_credentials(&self, conn: &Connection, connector: &dyn Connector) {
        let (Some(sealer), Some(creds)) =
            (&self.sealer, connector.take_updated_credentials().await)
        else {
            return;
        };
        let sealed = match sealer(conn, &creds) {
            Ok(s) => s,
            Err(e) => {
                return tracing::error!(connection = %conn.name, error = %e, "Could not seal refreshed credentials.");
            }
        };
        if let Err(e) = self
            .store
            .set_credentials(conn.id, &sealed, self.clock.now())
            .await
        {
            tracing::error!(connection = %conn.name, error = %e, "Could not store refreshed credentials.");
        }
    }
}

/// Run the streams of one sync in order, each through its pass; returns how the run ends.
async fn sync_streams(
    ctx: &RunContext<'_>,
    run: &mut Run,
) -> Result<(RunStatus, Option<String>), EngineError> {
    let &RunContext {
        store,
        conn,
        connector,
        opts,
        progress,
        ..
    } = ctx;
    // Child streams of a family are synced through their parent (see `children`):
    // asking for a child stream syncs its parents.
    let families = connector.families();
    let streams: Vec<&StreamSpec> = connector
        .streams()
        .iter()
        .filter(|s| {
            opts.streams.as_ref().is_none_or(|only| {
                only.iter().any(|n| {
                    n == s.name || families.iter().any(|f| f.parent == s.name && f.child == n)
                })
            })
        })
        .collect();
    let (mut failed, mut refused, mut errors) = (0usize, 0usize, Vec::new());
    let ran = streams
        .iter()
        .filter(|s| !family::is_child(&families, s.name))
        .count();
    for stream in &streams {
        if family::is_child(&families, stream.name) {
            continue;
        }
        if cancelled(opts) {
            return Ok((RunStatus::Interrupted, Some(INTERRUPTED.into())));
        }
        let mut st = StreamStats::default();
        let end = match families.iter().find(|f| f.parent == stream.name) {
            Some(fam) => {
                let (end, cst) = family::sync_family(ctx, fam, stream, &mut st).await?;
                run.stats.add(&cst.stats);
                let entry = run.streams.entry(fam.child.to_string()).or_default();
                family::merge_child(entry, &cst);
                end
            }
            None => flat::sync_stream(ctx, stream, &mut st).await?,
        };
        progress.stream_finished(stream.name, &st);
        run.stats.add(&st.stats);
        // A request cut off by the cancellation fails; that is the interruption.
        let end = match end {
            StreamEnd::Failed(e)
                if cancelled(opts) && !matches!(e, ConnectorError::NeedsReauth(_)) =>
            {
                StreamEnd::Cancelled
            }
            end => end,
        };
        match end {
            StreamEnd::Done => {}
            StreamEnd::Cancelled => {
                run.streams.insert(stream.name.to_string(), st);
                return Ok((RunStatus::Interrupted, Some(INTERRUPTED.into())));
            }
            StreamEnd::Failed(ConnectorError::RateLimited { message, retry_in }) => {
                // The provider takes no requests until later than this run may wait:
                // stop here, keep every checkpoint, and say when to go on.
                let ms = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
                let until = Timestamp(ctx.now().0.saturating_add(ms));
                let msg = waiting_message(until, &message);
                tracing::info!(connection = %conn.name, stream = stream.name, until = %until, "{msg}");
                st.error = Some(msg.clone());
                run.streams.insert(stream.name.to_string(), st);
                run.waiting_until = Some(until);
                return Ok((RunStatus::Waiting, Some(msg)));
            }
            StreamEnd::Failed(ConnectorError::NeedsReauth(msg)) => {
                let msg = format!("{msg}; {}", reauth_hint(&conn.provider, &conn.name));
                st.error = Some(msg.clone());
                run.streams.insert(stream.name.to_string(), st);
                let at = ctx.now();
                store
                    .set_connection_status(conn.id, ConnectionStatus::NeedsReauth, Some(&msg), at)
                    .await?;
                return Ok((RunStatus::Failed, Some(msg)));
            }
            StreamEnd::Refused(msg) => {
                tracing::warn!(connection = %conn.name, stream = stream.name, "{msg}");
                errors.push(msg.clone());
                st.error = Some(msg);
                refused += 1;
            }
            StreamEnd::Failed(e) => {
                tracing::warn!(connection = %conn.name, stream = stream.name, error = %e, "Stream failed.");
                st.error = Some(e.to_string());
                errors.push(format!("{}: {e}", stream.name));
                failed += 1;
            }
        }
        run.streams.insert(stream.name.to_string(), st);
        save_progress(store, run).await?;
    }
    let status = match failed {
        0 if run.stats.items_skipped_with_error > 0 || refused > 0 => RunStatus::Partial,
        0 => RunStatus::Success,
        n if n < ran => RunStatus::Partial,
        _ => RunStatus::Failed,
    };
    let next = if status == RunStatus::Failed {
        ConnectionStatus::Failing
    } else {
        ConnectionStatus::Active
    };
    if next != conn.status && conn.status != ConnectionStatus::Paused {
        store
            .set_connection_status(conn.id, next, errors.first().map(String::as_str), ctx.now())
            .await?;
    }
    Ok((status, (!errors.is_empty()).then(|| errors.join("; "))))
}

/// Record a running run's totals so far.
async fn save_progress(store: &dyn Store, run: &Run) -> Result<(), EngineError> {
    store
        .update_run(
            run.id,
            RunStatus::Running,
            &run.stats,
            &run.streams,
            None,
            None,
        )
        .await?;
    Ok(())
}

/// The error of a run that ends `waiting`.
fn waiting_message(until: Timestamp, why: &str) -> String {
    format!("waiting for the provider's rate limit until {until}: {why}")
}
