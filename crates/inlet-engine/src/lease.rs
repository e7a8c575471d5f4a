//! The connection's sync lease for one-off syncs (`inlet sync`): the same lease row the
//! server's workers take (`Store::try_acquire_lease`), so one sync of a connection runs
//! at a time across every process — CLI or server. It is taken before the run starts,
//! renewed every third of its lifetime while the sync runs, and released at its end; a
//! holder that died (or lost its database) stops renewing, and its lease lapses after
//! the lifetime, when the next sync takes it over and closes the dead run.

use crate::sync::Engine;
use inlet_core::{Lease, RunStatus, Store, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Lease lifetime of a CLI sync: the same as the server's default.
pub const DEFAULT_LEASE_TTL_MS: i64 = 60_000;

/// A held sync lease; renewed in the background until [`SyncLease::release`].
pub struct SyncLease {
    store: Arc<dyn Store>,
    connection_id: i64,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
}

/// Who holds a connection's lease when it could not be taken.
#[derive(Debug, Clone)]
pub struct Busy {
    /// The lease row (`None` when it vanished between the attempt and the look-up).
    pub lease: Option<Lease>,
    /// The connection's run that is `running`, when there is one.
    pub run_id: Option<i64>,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.run_id {
            Some(id) => write!(f, "run {id}")?,
            None => f.write_str("another sync")?,
        }
        if let Some(l) = &self.lease {
            write!(
                f,
                " (lease holder {}, taken {}, held until {} unless renewed)",
                l.holder, l.acquired_at, l.expires_at
            )?;
        }
        Ok(())
    }
}

impl SyncLease {
    /// Try once to take the lease of `connection_id` for `holder`. While held, it is
    /// renewed every third of `ttl_ms`; when a renewal finds it taken over, `cancel` is
    /// set so the sync stops at its next page boundary.
    pub async fn try_acquire(
        engine: &Engine,
        connection_id: i64,
        holder: &str,
        ttl_ms: i64,
        cancel: Arc<AtomicBool>,
    ) -> Result<Result<SyncLease, Busy>, StoreError> {
        let store = engine.store().clone();
        let mut held = store
            .try_acquire_lease(connection_id, holder, engine.now(), ttl_ms)
            .await?;
        if !held
            && let Some(dead) = store
                .get_lease(connection_id)
                .await?
                .filter(|l| local_holder_gone(&l.holder))
        {
            // Its process on this machine is gone (killed, crashed): take the lease over
            // now instead of after its lifetime. Of two takers only one gets it.
            tracing::info!(connection_id, holder = %dead.holder, "The sync lease's holder is no longer running; taking the lease over.");
            store.release_lease(connection_id, &dead.holder).await?;
            held = store
                .try_acquire_lease(connection_id, holder, engine.now(), ttl_ms)
                .await?;
        }
        if !held {
            let lease = store.get_lease(connection_id).await?;
            let run_id = store
                .list_runs(Some(connection_id), 1)
                .await?
                .into_iter()
                .find(|r| r.status == RunStatus::Running)
                .map(|r| r.id);
            return Ok(Err(Busy { lease, run_id }));
        }
        let renewer = {
            let (store, holder, clock) = (store.clone(), holder.to_string(), engine.clock());
            tokio::spawn(async move {
                let every = Duration::from_millis((ttl_ms / 3).max(10) as u64);
                loop {
                    tokio::time::sleep(every).await;
                    match store
                        .renew_lease(connection_id, &holder, clock.now(), ttl_ms)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(
                                connection_id,
                                "Sync lease lost (taken over by another process); stopping the sync."
                            );
                            cancel.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(connection_id, error = %e, "Could not renew the sync lease.")
                        }
                    }
                }
            })
        };
        Ok(Ok(SyncLease {
            store,
            connection_id,
            holder: holder.to_string(),
            renewer,
        }))
    }

    /// Take the lease, waiting for the current holder to finish (or its lease to
    /// lapse), polling every `poll`. Gives up with the last [`Busy`] when `cancel` is set.
    pub async fn acquire_waiting(
        engine: &Engine,
        connection_id: i64,
        holder: &str,
        ttl_ms: i64,
        cancel: Arc<AtomicBool>,
        poll: Duration,
    ) -> Result<Result<SyncLease, Busy>, StoreError> {
        loop {
            match Self::try_acquire(engine, connection_id, holder, ttl_ms, cancel.clone()).await? {
                Ok(l) => return Ok(Ok(l)),
                Err(busy) if cancel.load(Ordering::SeqCst) => return Ok(Err(busy)),
                Err(_) => tokio::time::sleep(poll).await,
            }
        }
    }

    /// The holder id (to pass in [`crate::SyncOptions::lease_holder`]).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stop renewing and give the lease up.
    pub async fn release(self) -> Result<(), StoreError> {
        self.renewer.abort();
        self.store
            .release_lease(self.connection_id, &self.holder)
            .await
    }
}

impl Drop for SyncLease {
    fn drop(&mut self) {
        // Dropped without `release` (an error path): stop renewing, let it lapse.
        self.renewer.abort();
    }
}

/// This machine's name, for lease holder ids: `HOSTNAME`, else the kernel's host name,
/// else `host`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(':'))
        .unwrap_or_else(|| "host".into())
}

/// Whether a lease holder id (`host:pid:suffix`) names a process on this machine that is
/// no longer running. Only a definite "gone" counts: another host, an unknown host name,
/// no `/proc` to look in, or a running process (or a recycled pid) all say no, and the
/// lease is left to lapse.
pub fn local_holder_gone(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let me = host_name();
    if host != me || me == "host" || pid == std::process::id() {
        return false;
    }
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return false;
    }
    match std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        // `pid (comm) S ...`: a zombie (`Z`) or dead (`X`) process runs no sync.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_local_holder_is_told_apart() {
        let me = host_name();
        if me == "host" || !std::path::Path::new("/proc/self").exists() {
            return; // nothing can be told here
        }
        let own = format!("{me}:{}:abcd", std::process::id());
        assert!(!local_holder_gone(&own), "this process runs");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        let _ = child.wait();
        assert!(
            local_holder_gone(&format!("{me}:{pid}:abcd")),
            "exited and reaped"
        );
        assert!(
            !local_holder_gone(&format!("{me}x:{pid}:abcd")),
            "another host"
        );
        assert!(!local_holder_gone("garbage"));
        assert!(!local_holder_gone(&format!("{me}:notapid:abcd")));
    }
}
