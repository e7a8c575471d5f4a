//! Attachment downloads: the [`AttachmentFetcher`] behind `inlet attachments` and the
//! attachment step of a sync.
//!
//! A download is refused before any request unless the URL is `http(s)` on an allowed host
//! (exact host match; the providers name theirs, none by default); redirects are followed only to
//! allowed hosts. The answer must be `image/*`, and the body is read chunk by chunk and
//! abandoned as soon as it passes the size cap (a `Content-Length` over the cap is refused
//! without reading). Connection errors, timeouts, 5xx, 408 and 429 are retried with the
//! shared full-jitter [`Backoff`] within the policy's attempts and deadline; other 4xx are
//! final.
//!
//! [`HttpClient::execute`](crate::HttpClient::execute) reads whole bodies, which is what a
//! size cap must not do, so downloads use their own small loop over the same retry policy.
//!
//! Tests and `inlet demo` never reach the internet: `rewrite_base` maps the real media hosts
//! onto a local server AFTER the allowed-host check on the original URL, e.g.
//! `https://i.redd.it/x.png` → `http://127.0.0.1:PORT/media/i.redd.it/x.png`.

use crate::{Backoff, RetryPolicy};
use inlet_core::{AttachmentFetcher, FetchAs, FetchError, Fetched};
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use reqwest::{StatusCode, Url};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default size cap: 20 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 20 << 20;

/// Settings of a [`Downloader`].
#[derive(Debug, Clone)]
pub struct DownloadConfig {
    /// Hosts that may be fetched (exact, case-insensitive).
    pub allowed_hosts: Vec<String>,
    /// Largest body accepted, in bytes.
    pub max_bytes: u64,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for one whole attempt, body included.
    pub request_timeout: Duration,
    /// Retry spacing and bounds.
    pub retry: RetryPolicy,
    /// Seed for backoff jitter.
    pub seed: u64,
    /// Sent on every request.
    pub user_agent: String,
    /// Test/demo knob: fetch `<rewrite_base><host><path>?<query>` instead of the URL itself.
    pub rewrite_base: Option<String>,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            // Nothing until told: the providers' definitions name their image hosts.
            allowed_hosts: Vec::new(),
            max_bytes: DEFAULT_MAX_BYTES,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy {
                max_attempts: 4,
                base: Duration::from_millis(250),
                cap: Duration::from_secs(10),
                deadline: Duration::from_secs(120),
            },
            seed: 0x5bd1_e995,
            user_agent: concat!("inlet/", env!("CARGO_PKG_VERSION")).into(),
            rewrite_base: None,
        }
    }
}

/// Counters of a [`Downloader`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadStats {
    /// HTTP requests sent (each attempt counts).
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
}

/// Downloads attachments over HTTP. Clones share the connection pool and counters.
#[derive(Debug, Clone)]
pub struct Downloader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    config: DownloadConfig,
    backoff: Backoff,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// How one attempt ended, when it did not produce the bytes.
enum AttemptError {
    /// Policy: final, status `skipped`.
    Rejected(String),
    /// Final, status `failed`.
    Permanent(String),
    /// Worth another attempt.
    Transient(String),
}

impl Downloader {
    /// A downloader; fails on a `rewrite_base` that is not an absolute URL.
    pub fn new(config: DownloadConfig) -> Result<Self, crate::HttpError> {
        if let Some(base) = &config.rewrite_base {
            Url::parse(base).map_err(|e| {
                crate::HttpError::Build(format!("rewrite_base {base:?} is not a URL: {e}"))
            })?;
        }
        let allowed = config.allowed_hosts.clone();
        let rewrite_host = config
            .rewrite_base
            .as_deref()
            .and_then(|b| Url::parse(b).ok())
            .and_then(|u| u.host_str().map(str::to_string));
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let host = attempt.url().host_str().unwrap_or("").to_string();
            let ok = host_allowed(&allowed, &host) || rewrite_host.as_deref() == Some(&host);
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if ok {
                attempt.follow()
            } else {
                attempt.error(format!("redirect to host {host} is not allowed"))
            }
        });
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .redirect(policy)
            .build()
            .map_err(|e| crate::HttpError::Build(e.to_string()))?;
        Ok(Downloader {
            inner: Arc::new(Inner {
                client,
                backoff: Backoff::new(config.retry, config.seed),
                config,
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            }),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> DownloadStats {
        DownloadStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    /// The URL to request for `url`, after the policy check: the URL itself, or its
    /// rewrite onto `rewrite_base`.
    pub fn target(&self, url: &str) -> Result<Url, FetchError> {
        let parsed =
            Url::parse(url).map_err(|e| FetchError::Rejected(format!("not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FetchError::Rejected(format!(
                "scheme {} is not fetched (only http and https)",
                parsed.scheme()
            )));
        }
        let host = parsed.host_str().unwrap_or("");
        if !host_allowed(&self.inner.config.allowed_hosts, host) {
            return Err(FetchError::Rejected(format!(
                "host {host} is not in the allowed hosts"
            )));
        }
        let Some(base) = &self.inner.config.rewrite_base else {
            return Ok(parsed);
        };
        let mut s = format!("{}/{}{}", base.trim_end_matches('/'), host, parsed.path());
        if let Some(q) = parsed.query() {
            s.push('?');
            s.push_str(q);
        }
        Url::parse(&s).map_err(|e| FetchError::Rejected(format!("cannot rewrite URL: {e}")))
    }

    async fn attempt(&self, url: &Url, how: &FetchAs) -> Result<Fetched, AttemptError> {
        let cfg = &self.inner.config;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let mut rb = self
            .inner
            .client
            .get(url.clone())
            .header(USER_AGENT, &cfg.user_agent);
        if let Some(t) = &how.bearer {
            rb = rb.bearer_auth(t);
        }
        let mut resp = rb.send().await.map_err(|e| classify_error(&e))?;
        let status = resp.status();
        if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            return Err(AttemptError::Transient(format!("HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(AttemptError::Permanent(format!("HTTP {}", status.as_u16())));
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_string();
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !how.any_content_type && !essence.starts_with("image/") {
            return Err(AttemptError::Rejected(format!(
                "not an image: content type {:?}",
                content_type
            )));
        }
        if let Some(len) = resp.content_length().filter(|&n| n > cfg.max_bytes) {
            return Err(AttemptError::Rejected(format!(
                "too large: {len} bytes (max_bytes is {})",
                cfg.max_bytes
            )));
        }
        let mut bytes = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| AttemptError::Transient(format!("reading body: {}", describe(&e))))?
        {
            if (bytes.len() + chunk.len()) as u64 > cfg.max_bytes {
                return Err(AttemptError::Rejected(format!(
                    "too large: more than {} bytes (max_bytes)",
                    cfg.max_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if how.html_is_login_page && essence == "text/html" && is_sign_in_page(&bytes) {
            return Err(AttemptError::Permanent(
                "the host answered its sign-in page instead of the file: the download was not \
                 authorised (token missing, revoked, or without the files:read scope); nothing stored"
                    .into(),
            ));
        }
        Ok(Fetched {
            bytes,
            content_type: essence,
        })
    }
}

#[async_trait::async_trait]
impl AttachmentFetcher for Downloader {
    async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        self.fetch_as(url, &FetchAs::default()).await
    }

    async fn fetch_as(&self, url: &str, how: &FetchAs) -> Result<Fetched, FetchError> {
        let target = self.target(url)?;
        let policy = self.inner.config.retry;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let why = match self.attempt(&target, how).await {
                Ok(f) => return Ok(f),
                Err(AttemptError::Rejected(m)) => return Err(FetchError::Rejected(m)),
                Err(AttemptError::Permanent(m)) => return Err(FetchError::Failed(m)),
                Err(AttemptError::Transient(m)) => m,
            };
            attempt += 1;
            let delay = self.inner.backoff.delay(attempt - 1);
            if attempt >= policy.max_attempts || started.elapsed() + delay > policy.deadline {
                return Err(FetchError::Failed(format!(
                    "gave up after {attempt} attempts: {why}"
                )));
            }
            tracing::debug!(attempt, ?delay, error = %why, "Retrying attachment download.");
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }
}

/// An HTML page with a sign-in form (Slack answers an unauthorised file download with
/// its login page, HTTP 200).
fn is_sign_in_page(body: &[u8]) -> bool {
    let head = &body[..body.len().min(64 * 1024)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.contains("<form")
        && ["signin", "sign in", "sign-in", "log in", "login"]
            .iter()
            .any(|m| text.contains(m))
}

fn host_allowed(allowed: &[String], host: &str) -> bool {
    !host.is_empty() && allowed.iter().any(|h| h.eq_ignore_ascii_case(host))
}

fn classify_error(e: &reqwest::Error) -> AttemptError {
    if e.is_redirect() {
        return AttemptError::Rejected(describe(e));
    }
    AttemptError::Transient(describe(e))
}

/// The error without its URL (signed query strings stay out of logs and rows).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "redirect refused"
    } else if e.is_body() || e.is_decode() {
        "body interrupted"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hosts these tests allow (a provider's definition gives the real list).
    fn hosts() -> Vec<String> {
        ["i.redd.it", "preview.redd.it", "i.imgur.com"]
            .map(String::from)
            .to_vec()
    }

    fn dl(rewrite: Option<&str>) -> Downloader {
        Downloader::new(DownloadConfig {
            rewrite_base: rewrite.map(str::to_string),
            allowed_hosts: hosts(),
            ..Default::default()
        })
        .expect("downloader")
    }

    #[test]
    fn no_host_is_allowed_unless_named() {
        let d = Downloader::new(DownloadConfig::default()).expect("downloader");
        assert!(matches!(
            d.target("https://i.redd.it/a.png"),
            Err(FetchError::Rejected(_))
        ));
    }

    #[test]
    fn allowed_hosts_are_checked_before_any_rewrite() {
        let d = dl(Some("http://127.0.0.1:9/media/"));
        let t = d
            .target("https://preview.redd.it/a.png?width=640&format=png&s=abc")
            .expect("allowed");
        assert_eq!(
            t.as_str(),
            "http://127.0.0.1:9/media/preview.redd.it/a.png?width=640&format=png&s=abc"
        );
        assert!(matches!(
            d.target("https://evil.example.com/a.png"),
            Err(FetchError::Rejected(m)) if m.contains("evil.example.com")
        ));
        assert!(matches!(
            d.target("ftp://i.redd.it/a.png"),
            Err(FetchError::Rejected(_))
        ));
        assert!(matches!(
            d.target("not a url"),
            Err(FetchError::Rejected(_))
        ));
        // Host matching is exact: a suffix trick is not an allowed host.
        assert!(d.target("https://i.redd.it.evil.com/a.png").is_err());
        assert!(dl(None).target("https://I.REDD.IT/a.png").is_ok());
    }

    fn fast(rewrite: String, max_bytes: u64) -> Downloader {
        Downloader::new(DownloadConfig {
            rewrite_base: Some(rewrite),
            allowed_hosts: hosts(),
            max_bytes,
            retry: RetryPolicy {
                max_attempts: 3,
                base: Duration::from_millis(1),
                cap: Duration::from_millis(5),
                deadline: Duration::from_secs(5),
            },
            ..Default::default()
        })
        .expect("downloader")
    }

    /// A one-shot server: answers every connection with `head` then `body_len` bytes of
    /// `x` and closes (no Content-Length when `head` has none).
    async fn serve(head: &'static str, body_len: usize) -> (String, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                if s.write_all(head.as_bytes()).await.is_err() {
                    continue;
                }
                let chunk = vec![b'x'; 16 * 1024];
                let mut sent = 0;
                while sent < body_len {
                    let n = chunk.len().min(body_len - sent);
                    if s.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    sent += n;
                }
                let _ = s.shutdown().await;
            }
        });
        (format!("http://{addr}/media/"), task)
    }

    /// Answers a file to `Authorization: Bearer good`, its sign-in page to anyone else.
    async fn files_host() -> (String, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                let (ty, body) = if req.contains("authorization: bearer good") {
                    ("application/pdf", "%PDF-1.4 sim".to_string())
                } else {
                    (
                        "text/html; charset=utf-8",
                        "<html><title>Slack</title><form id=\"signin_form\" action=\"/signin\">\
                         Sign in to your workspace</form></html>"
                            .to_string(),
                    )
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {ty}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        (format!("http://{addr}/media/"), task)
    }

    #[tokio::test]
    async fn files_with_the_token_any_type_and_the_sign_in_page_refused() {
        let (base, task) = files_host().await;
        let d = Downloader::new(DownloadConfig {
            rewrite_base: Some(base),
            allowed_hosts: vec!["files.slack.com".into()],
            ..Default::default()
        })
        .expect("downloader");
        let url = "https://files.slack.com/files-pri/T1-F1/download/a.pdf";
        let how = |bearer: Option<&str>| FetchAs {
            bearer: bearer.map(str::to_string),
            any_content_type: true,
            html_is_login_page: true,
        };
        let f = d.fetch_as(url, &how(Some("good"))).await.expect("the file");
        assert_eq!(f.content_type, "application/pdf");
        assert_eq!(f.bytes, b"%PDF-1.4 sim");
        for bearer in [None, Some("stale")] {
            match d.fetch_as(url, &how(bearer)).await {
                Err(FetchError::Failed(m)) => assert!(m.contains("sign-in page"), "{m}"),
                other => panic!("the login page was taken for the file: {other:?}"),
            }
        }
        // The anonymous image fetch refuses a PDF by policy.
        assert!(matches!(
            d.fetch_as(
                url,
                &FetchAs {
                    bearer: Some("good".into()),
                    ..FetchAs::default()
                }
            )
            .await,
            Err(FetchError::Rejected(_))
        ));
        task.abort();
    }

    #[tokio::test]
    async fn cap_is_enforced_while_streaming_without_a_length() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n";
        let (base, task) = serve(head, 4 << 20).await;
        let d = fast(base.clone(), 100_000);
        let r = d.fetch("https://i.redd.it/big.png").await;
        assert!(
            matches!(&r, Err(FetchError::Rejected(m)) if m.contains("too large")),
            "{r:?}"
        );
        assert_eq!(d.stats().requests, 1, "a policy rejection is not retried");
        // Under the cap the same stream is accepted whole.
        let ok = fast(base, 8 << 20)
            .fetch("https://i.redd.it/big.png")
            .await
            .expect("fits");
        assert_eq!(
            (ok.bytes.len(), ok.content_type.as_str()),
            (4 << 20, "image/png")
        );
        task.abort();
    }

    #[tokio::test]
    async fn refused_connections_fail_after_retries() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let d = fast(format!("http://{addr}/media/"), 1000);
        let r = d.fetch("https://i.imgur.com/abcdefg.jpg").await;
        assert!(
            matches!(&r, Err(FetchError::Failed(m)) if m.contains("3 attempts") && m.contains("connection failed")),
            "{r:?}"
        );
        assert_eq!(
            d.stats(),
            DownloadStats {
                requests: 3,
                retries: 2
            }
        );
    }

    #[tokio::test]
    async fn redirects_only_to_allowed_hosts() {
        let head = "HTTP/1.1 302 Found\r\nLocation: http://evil.example.com/x.png\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let (base, task) = serve(head, 0).await;
        let r = fast(base, 1000).fetch("https://i.redd.it/a.png").await;
        assert!(matches!(&r, Err(FetchError::Rejected(_))), "{r:?}");
        task.abort();
    }

    #[test]
    fn bad_rewrite_base_is_an_error() {
        let r = Downloader::new(DownloadConfig {
            rewrite_base: Some("not a url".into()),
            ..Default::default()
        });
        assert!(r.is_err());
    }
}
