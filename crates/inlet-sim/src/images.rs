//! A local stand-in for the image hosts Reddit messages link to (`i.redd.it`,
//! `preview.redd.it`, `matrix.redditspace.com`, `i.imgur.com`; `shared/providers/reddit.md`
//! §9), so attachment downloads are tested without the internet.
//!
//! `GET /media/<host>/<path>?<query>` answers the image the real
//! `https://<host>/<path>?<query>` would: deterministic bytes per URL, drawn from a few
//! distinct images so that several URLs share bytes (the blob store must keep them once).
//! Point the downloader's `rewrite_base` at [`MediaSim::base`].
//!
//! Faults, set per URL or host through hooks: a host down (503 on every request), a URL
//! that answers 404, a URL with a non-image content type, a URL whose image is larger than
//! a given size. Every response can be delayed, and the simulator records the most requests
//! it had in flight at once, so a test can check a client's concurrency bound.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use inlet_sim::images::{MediaSim, MediaSimConfig};
//! let media = MediaSim::start(MediaSimConfig::default()).await?;
//! let base = media.base(); // http://127.0.0.1:PORT/media/
//! let bytes = media.bytes_for("https://i.redd.it/abc.png");
//! # let _ = (base, bytes);
//! # Ok(()) }
//! ```

use crate::server::{self, Handler, Reply, Request, Response, ServerHandle};
use crate::util::{Rng, lock, mix};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Configuration of a [`MediaSim`].
#[derive(Debug, Clone)]
pub struct MediaSimConfig {
    /// Seed of the image bytes.
    pub seed: u64,
    /// Distinct images; every URL is served one of them.
    pub distinct: u64,
    /// Delay before each answer (lets a test see concurrent requests).
    pub delay: Duration,
}

impl Default for MediaSimConfig {
    fn default() -> Self {
        MediaSimConfig {
            seed: 1,
            distinct: 5,
            delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, Default)]
struct Faults {
    down: HashSet<String>,
    not_found: HashSet<String>,
    content_type: HashMap<String, &'static str>,
    oversize: HashMap<String, usize>,
}

#[derive(Debug, Default)]
struct Counters {
    requests: HashMap<String, u64>,
    /// When each answer still in flight will be sent.
    in_flight: Vec<Instant>,
    max_in_flight: u64,
}

#[derive(Debug)]
struct State {
    cfg: MediaSimConfig,
    faults: Mutex<Faults>,
    counters: Mutex<Counters>,
}

/// The image host simulator.
#[derive(Debug)]
pub struct MediaSim {
    state: Arc<State>,
    server: ServerHandle,
}

/// `https://host/path?q` (or `host/path?q`) → `host/path?q`, the key of everything here.
fn key_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('#').next().unwrap_or(rest).to_string()
}

impl MediaSim {
    /// Starts the simulator on `127.0.0.1` (random port) on the current tokio runtime.
    pub async fn start(cfg: MediaSimConfig) -> std::io::Result<MediaSim> {
        let state = Arc::new(State {
            cfg,
            faults: Mutex::new(Faults::default()),
            counters: Mutex::new(Counters::default()),
        });
        let server = server::serve(state.clone()).await?;
        Ok(MediaSim { state, server })
    }

    /// The base URL to rewrite media hosts onto: `http://127.0.0.1:PORT/media/`.
    pub fn base(&self) -> String {
        format!("http://{}/media/", self.server.addr())
    }

    /// The bytes served for the real URL `url`, when it is served as an image.
    pub fn bytes_for(&self, url: &str) -> Option<Vec<u8>> {
        let key = key_of(url);
        let f = lock(&self.state.faults);
        let host = key.split('/').next().unwrap_or("");
        if f.down.contains(host) || f.not_found.contains(&key) {
            return None;
        }
        Some(self.state.image(&key, f.oversize.get(&key).copied()))
    }

    /// Take a host down (every request answers 503) or bring it back.
    pub fn set_host_down(&self, host: &str, down: bool) {
        let mut f = lock(&self.state.faults);
        if down {
            f.down.insert(host.to_ascii_lowercase());
        } else {
            f.down.remove(&host.to_ascii_lowercase());
        }
    }

    /// Make `url` answer 404.
    pub fn set_not_found(&self, url: &str) {
        lock(&self.state.faults).not_found.insert(key_of(url));
    }

    /// Serve `url` with this content type (e.g. `text/html` for a "not an image" case).
    pub fn set_content_type(&self, url: &str, content_type: &'static str) {
        lock(&self.state.faults)
            .content_type
            .insert(key_of(url), content_type);
    }

    /// Serve an image of `bytes` bytes for `url` (a "too large" case).
    pub fn set_oversize(&self, url: &str, bytes: usize) {
        lock(&self.state.faults).oversize.insert(key_of(url), bytes);
    }

    /// Requests answered for the real URL `url`.
    pub fn requests_for(&self, url: &str) -> u64 {
        lock(&self.state.counters)
            .requests
            .get(&key_of(url))
            .copied()
            .unwrap_or(0)
    }

    /// Requests answered in all.
    pub fn request_count(&self) -> u64 {
        lock(&self.state.counters).requests.values().sum()
    }

    /// The most requests that were in flight (received, answer not yet sent) at once.
    pub fn max_in_flight(&self) -> u64 {
        lock(&self.state.counters).max_in_flight
    }

    /// Stops the server.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}

impl State {
    /// The image for `key`: one of `distinct` images, or an oversize one.
    fn image(&self, key: &str, oversize: Option<usize>) -> Vec<u8> {
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let (index, len) = match oversize {
            Some(n) => (u64::MAX, n),
            None => {
                let i = mix(h) % self.cfg.distinct.max(1);
                (i, 1500 + (i as usize) * 700)
            }
        };
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        out.extend_from_slice(format!("inlet-sim image {index}\n").as_bytes());
        let mut rng = Rng::derive(self.cfg.seed, 0x1a6e, index);
        while out.len() < len {
            out.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        out.truncate(len.max(8));
        out
    }

    fn note_request(&self, key: &str) {
        let now = Instant::now();
        let mut c = lock(&self.counters);
        *c.requests.entry(key.to_string()).or_default() += 1;
        c.in_flight.retain(|end| *end > now);
        c.in_flight.push(now + self.cfg.delay);
        c.max_in_flight = c.max_in_flight.max(c.in_flight.len() as u64);
    }
}

fn content_type_of(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "image/jpeg",
    }
}

impl Handler for State {
    fn handle(&self, req: &Request<'_>, resp: &mut Response) -> Reply {
        let delay = (!self.cfg.delay.is_zero()).then_some(self.cfg.delay);
        let reply = Reply {
            delay,
            ..Default::default()
        };
        let Some(rest) = req
            .path
            .strip_prefix("/media/")
            .filter(|_| req.method == "GET")
        else {
            resp.html(404, "<html><body>Not Found</body></html>");
            return reply;
        };
        let mut key = rest.to_string();
        if !req.query.is_empty() {
            key.push('?');
            key.push_str(req.query);
        }
        self.note_request(&key);
        let host = rest.split('/').next().unwrap_or("");
        let f = lock(&self.faults);
        if f.down.contains(host) {
            resp.html(503, "<html><body>Service Unavailable</body></html>");
            return reply;
        }
        if f.not_found.contains(&key) {
            resp.html(404, "<html><body>Not Found</body></html>");
            return reply;
        }
        resp.status = 200;
        resp.content_type = f
            .content_type
            .get(&key)
            .copied()
            .unwrap_or_else(|| content_type_of(rest.split('?').next().unwrap_or(rest)));
        let oversize = f.oversize.get(&key).copied();
        drop(f);
        resp.body = self.image(&key, oversize);
        reply
    }
}
