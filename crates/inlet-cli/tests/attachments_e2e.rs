//! Attachments end to end: the engine syncs the Reddit simulator, records the image links
//! of its messages and downloads them from the image host simulator into the blob store,
//! with faults (a URL answering 404, one answering HTML, one too large, a host not allowed,
//! a host down and then back), on SQLite and PostgreSQL.

mod common;

use common::*;
use inlet_connectors::reddit::links::image_links;
use inlet_core::{Attachment, AttachmentStatus, RunMode, RunStatus, Store};
use inlet_engine::{AttachmentOptions, Engine, NoProgress, Progress, SyncOptions};
use inlet_http::{DownloadConfig, Downloader, RetryPolicy};
use inlet_sim::images::{MediaSim, MediaSimConfig};
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use inlet_store::FsBlobStore;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const CONCURRENCY: usize = 3;

/// Counts finished attachment downloads as the progress bar hears of them.
#[derive(Default)]
struct Downloads(AtomicU64);
impl Progress for Downloads {
    fn attachment_done(&self, _stats: &inlet_core::RunStats) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
const MAX_BYTES: u64 = 64 * 1024;

fn account() -> RedditSimConfig {
    RedditSimConfig {
        seed: 5,
        messages: 400,
        comment_replies: 10,
        saved: 10,
        ..Default::default()
    }
}

/// (record id, url) of every image link in the simulator's messages and saved items.
fn truth_links(sim: &RedditSim) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let items = sim
        .truth_inbox()
        .into_iter()
        .chain(sim.truth_sent())
        .chain(sim.truth_saved());
    for m in items {
        let id = m["name"].as_str().expect("name").to_string();
        let text = m["body"].as_str().or(m["selftext"].as_str());
        for url in image_links(text.unwrap_or_default()) {
            out.insert((id.clone(), url));
        }
    }
    out
}

/// The stream a record of the simulator belongs to.
fn stream_of(sim: &RedditSim, record: &str) -> &'static str {
    let has = |v: Vec<serde_json::Value>| v.iter().any(|m| m["name"].as_str() == Some(record));
    if has(sim.truth_sent()) {
        "sent"
    } else if has(sim.truth_saved()) {
        "saved"
    } else {
        "inbox"
    }
}

fn host(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("")
}

fn with_attachments(store: Arc<dyn Store>, media: &MediaSim, blobs: &std::path::Path) -> Engine {
    let downloader = Downloader::new(DownloadConfig {
        // preview.redd.it is left out: its links must be recorded and never fetched.
        allowed_hosts: inlet_connectors::reddit::IMAGE_HOSTS
            .iter()
            .filter(|h| **h != "preview.redd.it")
            .map(|h| h.to_string())
            .collect(),
        max_bytes: MAX_BYTES,
        rewrite_base: Some(media.base()),
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
            deadline: Duration::from_secs(10),
        },
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .expect("downloader");
    engine(store).with_attachments(AttachmentOptions {
        fetcher: Arc::new(downloader),
        blobs: Arc::new(FsBlobStore::new(blobs)),
        concurrency: CONCURRENCY,
    })
}

async fn all_attachments(store: &dyn Store, conn: i64) -> BTreeMap<(String, String), Attachment> {
    let mut out = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store
            .list_attachments(Some(conn), None, after, 50)
            .await
            .expect("list");
        let Some(last) = page.last() else { break };
        after = last.id;
        for a in page {
            out.insert((a.record_id.clone(), a.url.clone()), a);
        }
    }
    out
}

async fn downloads_with_faults_then_retry(db: &TestDb) {
    let cfg = account();
    let (sim, store, conn) = setup(db, &cfg).await;
    let media = MediaSim::start(MediaSimConfig {
        seed: 3,
        distinct: 5,
        delay: Duration::from_millis(15),
    })
    .await
    .expect("media sim");
    let blob_dir = tempfile::tempdir().expect("tempdir");

    let links = truth_links(&sim);
    let urls: Vec<&str> = links.iter().map(|(_, u)| u.as_str()).collect();
    let of_host =
        |h: &str| -> Vec<&str> { urls.iter().copied().filter(|u| host(u) == h).collect() };
    let redd = of_host("i.redd.it");
    let (not_found, html, huge) = (redd[0], redd[1], redd[2]);
    media.set_not_found(not_found);
    media.set_content_type(html, "text/html; charset=utf-8");
    media.set_oversize(huge, 200 * 1024);
    media.set_host_down("i.imgur.com", true);
    let imgur = of_host("i.imgur.com");
    let preview = of_host("preview.redd.it");
    let matrix = of_host("matrix.redditspace.com");
    assert!(
        imgur.len() >= 2 && preview.len() >= 2 && matrix.len() >= 2 && redd.len() >= 10,
        "the simulated messages link every host kind: {} imgur, {} preview, {} matrix, {} i.redd.it",
        imgur.len(),
        preview.len(),
        matrix.len(),
        redd.len()
    );
    // One escaped preview query arrives whole, `&` and all.
    assert!(
        preview
            .iter()
            .all(|u| u.contains("&format=") && !u.contains("&amp;"))
    );

    let eng = with_attachments(store.clone(), &media, blob_dir.path());
    let connector = connector(&conn);
    let progress = Downloads::default();
    let run = eng
        .sync(
            &conn,
            &connector,
            &SyncOptions::new(RunMode::Full),
            &progress,
        )
        .await
        .expect("sync");
    assert_eq!(progress.0.load(Ordering::SeqCst), links.len() as u64);

    // Everything else synced; the failed downloads make the run partial and are counted.
    assert_equals_truth(&*store, conn.id, &sim).await;
    let failed_now = 1 + imgur.len() as u64;
    assert_eq!(run.status, RunStatus::Partial, "{:?}", run.error);
    assert_eq!(run.stats.attachments_failed, failed_now);
    assert_eq!(run.stats.items_skipped_with_error, failed_now);
    assert_eq!(run.stats.attachments_skipped, 2 + preview.len() as u64);
    let done_now = links.len() as u64 - failed_now - 2 - preview.len() as u64;
    assert_eq!(run.stats.attachments_fetched, done_now);
    let stored_run = &store.list_runs(Some(conn.id), 1).await.expect("runs")[0];
    assert_eq!(
        (stored_run.status, stored_run.stats),
        (RunStatus::Partial, run.stats)
    );

    // One row per (record, url), each with the right outcome.
    let rows = all_attachments(&*store, conn.id).await;
    assert_eq!(rows.keys().cloned().collect::<BTreeSet<_>>(), links);
    let mut hashes = BTreeSet::new();
    for ((record, url), a) in &rows {
        assert_eq!(a.stream, stream_of(&sim, record), "{record}");
        let err = a.last_error.as_deref().unwrap_or("");
        let h = host(url);
        if h == "preview.redd.it" {
            assert_eq!(a.status, AttachmentStatus::Skipped, "{url}");
            assert!(err.contains("not in the allowed hosts"), "{err}");
            assert_eq!(
                media.requests_for(url),
                0,
                "a disallowed host is never fetched"
            );
        } else if *url == not_found {
            assert_eq!((a.status, a.attempts), (AttachmentStatus::Failed, 1));
            assert!(err.contains("HTTP 404"), "{err}");
            assert_eq!(media.requests_for(url), 1, "404 is not retried");
        } else if *url == html {
            assert_eq!(a.status, AttachmentStatus::Skipped);
            assert!(err.contains("not an image"), "{err}");
        } else if *url == huge {
            assert_eq!(a.status, AttachmentStatus::Skipped);
            assert!(err.contains("too large"), "{err}");
        } else if h == "i.imgur.com" {
            assert_eq!(a.status, AttachmentStatus::Failed);
            assert!(err.contains("503") && err.contains("3 attempts"), "{err}");
        } else {
            assert_eq!(a.status, AttachmentStatus::Done, "{url}: {err}");
            let want = media.bytes_for(url).expect("served");
            let hash = a.hash.clone().expect("hash");
            assert_eq!(hash, blake3::hash(&want).to_hex().to_string());
            assert_eq!(a.size, Some(want.len() as i64));
            assert!(
                a.content_type
                    .as_deref()
                    .is_some_and(|c| c.starts_with("image/"))
            );
            let path = FsBlobStore::new(blob_dir.path()).path_of(&hash);
            assert_eq!(std::fs::read(&path).expect("blob"), want);
            hashes.insert(hash);
        }
    }
    // Content addressing: many URLs, a few distinct images, each stored once.
    assert!(
        done_now > 5 && hashes.len() <= 5,
        "{done_now} done, {} blobs",
        hashes.len()
    );
    assert_eq!(blob_files(blob_dir.path()), hashes.len());
    // Bounded concurrency: never more than asked, and it did run in parallel.
    let peak = media.max_in_flight();
    assert!(
        (2..=CONCURRENCY as u64).contains(&peak),
        "peak in flight {peak}"
    );

    // The host comes back: retry fetches what failed there; the 404 stays failed.
    media.set_host_down("i.imgur.com", false);
    let retried = eng.retry_attachments(conn.id, None).await.expect("retry");
    assert_eq!(
        (retried.attachments_fetched, retried.attachments_failed),
        (imgur.len() as u64, 1)
    );
    let rows = all_attachments(&*store, conn.id).await;
    for ((_, url), a) in &rows {
        if host(url) == "i.imgur.com" {
            assert_eq!((a.status, a.attempts), (AttachmentStatus::Done, 2), "{url}");
        }
    }
    assert_eq!(rows[&key_of(&rows, not_found)].attempts, 2);

    // A delta sync later finds nothing new to download and fetches nothing again.
    let before = media.request_count();
    let delta = eng
        .sync(
            &conn,
            &connector,
            &SyncOptions::new(RunMode::Delta),
            &NoProgress,
        )
        .await
        .expect("delta");
    assert_eq!(delta.status, RunStatus::Success, "{:?}", delta.error);
    assert_eq!(
        (
            delta.stats.attachments_fetched,
            delta.stats.attachments_failed
        ),
        (0, 0)
    );
    assert_eq!(media.request_count(), before);
    // A new message with an image is picked up by the delta.
    let root = sim.truth_inbox()[0]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let new_url = "https://i.redd.it/newimage123.png";
    sim.add_message(Some(&root), false, &format!("look [here]({new_url})"));
    let delta = eng
        .sync(
            &conn,
            &connector,
            &SyncOptions::new(RunMode::Delta),
            &NoProgress,
        )
        .await
        .expect("delta");
    assert_eq!(delta.stats.attachments_fetched, 1);
    assert_eq!(media.requests_for(new_url), 1);
    assert_equals_truth(&*store, conn.id, &sim).await;
}
both_backends!(
    attachments_downloaded_with_faults_then_retried,
    downloads_with_faults_then_retry
);

fn key_of(rows: &BTreeMap<(String, String), Attachment>, url: &str) -> (String, String) {
    rows.keys()
        .find(|(_, u)| u == url)
        .cloned()
        .expect("row for url")
}

fn blob_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += 1;
            }
        }
    }
    n
}

/// Without attachment options the engine records nothing (and the sync is unchanged).
async fn off_by_default(db: &TestDb) {
    let cfg = RedditSimConfig {
        messages: 60,
        ..account()
    };
    let (sim, store, conn) = setup(db, &cfg).await;
    let run = engine(store.clone())
        .sync(
            &conn,
            &connector(&conn),
            &SyncOptions::new(RunMode::Full),
            &NoProgress,
        )
        .await
        .expect("sync");
    assert_eq!(run.status, RunStatus::Success);
    assert!(!truth_links(&sim).is_empty());
    assert!(all_attachments(&*store, conn.id).await.is_empty());
}
both_backends!(engine_without_attachments_records_none, off_by_default);
