//! Test helpers: a fresh database per test on SQLite or PostgreSQL, the Reddit
//! simulator, a server on 127.0.0.1, an API key, and a log capture.
#![allow(dead_code)]

use inlet_core::secrets::SecretBox;
use inlet_core::{Clock, Store, SystemClock};
use inlet_server::{ServeOptions, Server, keys};
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = dir.path().join("inlet.db").display().to_string();
                TestDb {
                    url,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("INLET_TEST_PG_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let name = format!("inlet_srv_{:x}", rand_u64());
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL is required at {admin}: {e}"));
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .expect("url");
                TestDb {
                    url: format!("{base}/{name}"),
                    _dir: None,
                }
            }
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        inlet_store::open(&self.url).await.expect("open store")
    }
}

#[macro_export]
#[allow(clippy::crate_in_macro_def)]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = crate::common::TestDb::new(crate::common::Backend::Sqlite).await;
                super::$name(&db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = crate::common::TestDb::new(crate::common::Backend::Postgres).await;
                super::$name(&db).await;
            }
        }
    };
}

pub fn secrets() -> SecretBox {
    SecretBox::new(&[7u8; 32])
}

/// Everything a test talks to.
pub struct Env {
    pub store: Arc<dyn Store>,
    pub sim: RedditSim,
    pub sim_cfg: RedditSimConfig,
    pub server: Server,
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

pub async fn start_server(store: Arc<dyn Store>, opts: ServeOptions) -> Server {
    Server::start(store, secrets(), Arc::new(SystemClock), opts)
        .await
        .expect("server starts")
}

pub fn opts(scheduler: bool) -> ServeOptions {
    ServeOptions {
        bind: "127.0.0.1:0".parse().expect("addr"),
        scheduler,
        tick: Duration::from_millis(100),
        // The simulators listen on 127.0.0.1, which connections reach through
        // `api_base` / `token_url` overrides: the operator allows that host.
        allowed_override_hosts: vec!["127.0.0.1".into()],
        ..Default::default()
    }
}

pub async fn env(db: &TestDb, sim_cfg: RedditSimConfig, scheduler: bool) -> Env {
    capture_logs();
    let store = db.store().await;
    let sim = RedditSim::start(sim_cfg.clone()).await.expect("sim");
    let server = start_server(store.clone(), opts(scheduler)).await;
    let k = keys::generate().expect("key");
    store
        .create_api_key("tests", &k.prefix, &k.hash, SystemClock.now())
        .await
        .expect("api key");
    Env {
        base: format!("http://{}", server.addr),
        store,
        sim,
        sim_cfg,
        server,
        key: k.key,
        http: reqwest::Client::new(),
    }
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.key)
    }
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.key)
    }
    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(&self.key)
    }
    /// The body that creates a connection to the simulator.
    pub fn new_connection(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "name": name,
            "workspace": "tests",
            "provider": "reddit",
            "config": {
                "api_base": self.sim.api_base(),
                "token_url": self.sim.token_url(),
                "user_agent": "inlet-tests/0.1 (by /u/sim_user)",
                "username": self.sim_cfg.username,
                "page_size": 100
            },
            "credentials": {
                "client_id": self.sim_cfg.client_id,
                "client_secret": self.sim_cfg.client_secret,
                "refresh_token": self.sim_cfg.refresh_token
            }
        })
    }
    pub async fn create(&self, name: &str) -> i64 {
        let r = self
            .post("/v1/connections")
            .json(&self.new_connection(name))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let v: serde_json::Value = r.json().await.expect("json");
        v["id"].as_i64().expect("id")
    }
    /// Poll a run until it is no longer running.
    pub async fn wait_run(&self, run_id: i64) -> serde_json::Value {
        for _ in 0..600 {
            let v: serde_json::Value = self
                .get(&format!("/v1/runs/{run_id}"))
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            if v["run"]["status"] != "running" {
                return v["run"].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {run_id} did not finish in 30 s");
    }
}

/// Everything logged by this test process (all tests share one global subscriber).
pub fn logs() -> String {
    String::from_utf8_lossy(
        &LOGS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    )
    .into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let buf = LOGS.get_or_init(Default::default).clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .json()
            .with_writer(move || Sink(buf.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
    });
}
