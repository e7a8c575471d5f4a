//! Bearer tokens: where they come from and how they are refreshed.
//!
//! [`OAuth2Token`] is the OAuth 2 refresh-token / password grant shared by every provider
//! that uses it; it refreshes single-flight (one refresh however many requests saw the
//! 401) and keeps a rotated refresh token so the connector can persist it.

use crate::{HttpClient, HttpError, Parsed};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// A token could not be obtained.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The provider refused the grant (revoked or wrong credentials): the user must
    /// re-authenticate.
    #[error("{0}")]
    Rejected(String),
    /// The token endpoint could not be reached; retrying later may work.
    #[error("{0}")]
    Transient(String),
}

/// Supplies bearer tokens to [`HttpClient`].
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// The current token, obtaining one if there is none or it expired.
    async fn token(&self) -> Result<String, AuthError>;
    /// The provider rejected `stale`: get a new token unless another request already did.
    async fn refresh(&self, stale: &str) -> Result<String, AuthError>;
}

/// A fixed token (personal access tokens, tests). A 401 cannot be fixed by refreshing.
#[derive(Debug, Clone)]
pub struct StaticToken(pub String);

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn token(&self) -> Result<String, AuthError> {
        Ok(self.0.clone())
    }
    async fn refresh(&self, _stale: &str) -> Result<String, AuthError> {
        Err(AuthError::Rejected(
            "the token was rejected and cannot be refreshed".into(),
        ))
    }
}

/// How an OAuth 2 access token is obtained.
#[derive(Clone)]
pub enum Grant {
    /// `grant_type=refresh_token`.
    RefreshToken(String),
    /// `grant_type=password` (Reddit script apps).
    Password {
        /// Account name.
        username: String,
        /// Account password.
        password: String,
    },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::RefreshToken(_) => f.write_str("RefreshToken(<redacted>)"),
            Grant::Password { username, .. } => write!(f, "Password({username}, <redacted>)"),
        }
    }
}

/// What a connector persists (sealed) so the next run needs no token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSnapshot {
    /// Access token.
    pub access_token: String,
    /// Expiry, ms since the epoch.
    pub expires_at_ms: i64,
    /// The refresh token, if the provider rotated it.
    pub refresh_token: Option<String>,
}

/// Called with the new token state the moment a token exchange answered, before the new
/// token is used: a provider that rotates refresh tokens (Slack) kills the old one with
/// the exchange, so the new pair must be stored before anything else can go wrong.
pub type RenewHook =
    Arc<dyn Fn(TokenSnapshot) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Clone)]
struct Current {
    access: String,
    expires_at_ms: i64,
}

/// OAuth 2 client credentials + grant against a token endpoint.
pub struct OAuth2Token {
    http: HttpClient,
    token_url: String,
    client_id: String,
    client_secret: String,
    grant: StdMutex<Grant>,
    /// Sent as `scope` with refresh-token grants (eBay documents it), when set.
    scope: Option<String>,
    current: Mutex<Option<Current>>,
    changed: AtomicBool,
    /// Send `client_id`/`client_secret` in the form instead of HTTP Basic.
    secret_in_body: bool,
    on_renew: StdMutex<Option<RenewHook>>,
}

impl std::fmt::Debug for OAuth2Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2Token")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Tokens are refreshed this long before they expire.
const EXPIRY_MARGIN_MS: i64 = 60_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl OAuth2Token {
    /// A token source; `http` must be a client without auth (token requests use Basic).
    /// `cached` is an access token and its expiry (ms since the epoch) stored by an
    /// earlier run, so a sync needs no token request while it is valid.
    pub fn new(
        http: HttpClient,
        token_url: String,
        client_id: String,
        client_secret: String,
        grant: Grant,
        cached: Option<(String, i64)>,
    ) -> Self {
        OAuth2Token {
            http: http.awaiting_answers(),
            token_url,
            client_id,
            client_secret,
            grant: StdMutex::new(grant),
            scope: None,
            current: Mutex::new(cached.map(|(access, expires_at_ms)| Current {
                access,
                expires_at_ms,
            })),
            changed: AtomicBool::new(false),
            secret_in_body: false,
            on_renew: StdMutex::new(None),
        }
    }

    /// Send the client credentials as `client_id`/`client_secret` form fields (Slack's
    /// `oauth.v2.access`) instead of HTTP Basic.
    pub fn with_secret_in_body(mut self) -> Self {
        self.secret_in_body = true;
        self
    }

    /// Set (or clear) the hook called with every new token before it is used.
    pub fn set_on_renew(&self, hook: Option<RenewHook>) {
        *self.on_renew.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Send `scope` (space-separated scopes) with refresh-token grants.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The token state if it changed since the last call (a new access token or a rotated
    /// refresh token), for the connector to persist.
    pub async fn take_snapshot(&self) -> Option<TokenSnapshot> {
        if !self.changed.swap(false, Ordering::SeqCst) {
            return None;
        }
        let cur = self.current.lock().await.clone()?;
        let refresh_token = match &*self.grant.lock().unwrap_or_else(|p| p.into_inner()) {
            Grant::RefreshToken(t) => Some(t.clone()),
            Grant::Password { .. } => None,
        };
        Some(TokenSnapshot {
            access_token: cur.access,
            expires_at_ms: cur.expires_at_ms,
            refresh_token,
        })
    }

    async fn fetch(&self) -> Result<Current, AuthError> {
        let grant = self.grant.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut form: Vec<(&str, String)> = match &grant {
            Grant::RefreshToken(t) => {
                let mut f = vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", t.clone()),
                ];
                if let Some(s) = &self.scope {
                    f.push(("scope", s.clone()));
                }
                f
            }
            Grant::Password { username, password } => vec![
                ("grant_type", "password".into()),
                ("username", username.clone()),
                ("password", password.clone()),
            ],
        };
        if self.secret_in_body {
            form.push(("client_id", self.client_id.clone()));
            form.push(("client_secret", self.client_secret.clone()));
        }
        let res = self
            .http
            .execute(
                |c| {
                    let rb = c.post(&self.token_url);
                    let rb = if self.secret_in_body {
                        rb
                    } else {
                        rb.basic_auth(&self.client_id, Some(&self.client_secret))
                    };
                    rb.form(&form)
                },
                parse_token,
            )
            .await;
        let tok = match res {
            Ok(t) => t,
            Err(HttpError::Status {
                status: 400 | 401 | 403,
                message,
            }) => {
                return Err(AuthError::Rejected(format!(
                    "token endpoint refused the client credentials: {message}"
                )));
            }
            Err(HttpError::Unauthorized(m)) => return Err(AuthError::Rejected(m)),
            Err(e) => return Err(AuthError::Transient(e.to_string())),
        };
        if let (Some(new_rt), Grant::RefreshToken(_)) = (tok.refresh_token, &grant) {
            *self.grant.lock().unwrap_or_else(|p| p.into_inner()) = Grant::RefreshToken(new_rt);
        }
        self.changed.store(true, Ordering::SeqCst);
        Ok(Current {
            access: tok.access_token,
            expires_at_ms: now_ms() + (tok.expires_in as i64) * 1000,
        })
    }
}

struct TokenResponse {
    access_token: String,
    expires_in: u64,
    refresh_token: Option<String>,
}

/// Parse a token endpoint answer. Some providers (Reddit) answer a refused grant with
/// HTTP 200 and `{"error": "invalid_grant"}`.
fn parse_token(resp: &crate::Response) -> Parsed<TokenResponse> {
    let v: serde_json::Value = match serde_json::from_slice(&resp.body) {
        Ok(v) => v,
        Err(e) => return Parsed::Retry(format!("token endpoint sent invalid JSON: {e}")),
    };
    if let Some(err) = v.get("error") {
        let err =
            crate::client::snippet(&err.as_str().map_or_else(|| err.to_string(), str::to_string));
        return Parsed::Fail(HttpError::Unauthorized(format!(
            "token endpoint refused the grant: {err}"
        )));
    }
    let Some(access) = v.get("access_token").and_then(|a| a.as_str()) else {
        return Parsed::Fail(HttpError::Unauthorized(
            "token endpoint answered without an access_token".into(),
        ));
    };
    Parsed::Ok(TokenResponse {
        access_token: access.to_string(),
        expires_in: v
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .unwrap_or(3600)
            .clamp(60, 31_536_000),
        refresh_token: v
            .get("refresh_token")
            .and_then(|r| r.as_str())
            .map(str::to_string),
    })
}

impl OAuth2Token {
    /// Fetch a new token into the locked slot; the renew hook has it before anyone uses it.
    async fn renew(&self, cur: &mut Option<Current>) -> Result<String, AuthError> {
        let fresh = self.fetch().await?;
        let access = fresh.access.clone();
        let hook = self
            .on_renew
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(hook) = hook {
            let refresh_token = match &*self.grant.lock().unwrap_or_else(|p| p.into_inner()) {
                Grant::RefreshToken(t) => Some(t.clone()),
                Grant::Password { .. } => None,
            };
            hook(TokenSnapshot {
                access_token: fresh.access.clone(),
                expires_at_ms: fresh.expires_at_ms,
                refresh_token,
            })
            .await;
        }
        *cur = Some(fresh);
        Ok(access)
    }
}

#[async_trait::async_trait]
impl TokenSource for OAuth2Token {
    async fn token(&self) -> Result<String, AuthError> {
        let mut cur = self.current.lock().await;
        if let Some(c) = &*cur
            && c.expires_at_ms - EXPIRY_MARGIN_MS > now_ms()
        {
            return Ok(c.access.clone());
        }
        self.renew(&mut cur).await
    }

    async fn refresh(&self, stale: &str) -> Result<String, AuthError> {
        // Holding the lock across the fetch makes the refresh single-flight: requests that
        // saw the same stale token wait here and then find the new one.
        let mut cur = self.current.lock().await;
        if let Some(c) = &*cur
            && c.access != stale
        {
            return Ok(c.access.clone());
        }
        self.renew(&mut cur).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpConfig;
    use std::sync::Arc;
    use std::time::Duration;

    /// Answers `/token` with a token and anything else with `{}`; counts token requests.
    async fn server() -> (String, Arc<std::sync::atomic::AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let tokens = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let t = tokens.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let t = t.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let body = if req.starts_with("POST /token") {
                        t.fetch_add(1, Ordering::SeqCst);
                        r#"{"access_token":"a1","expires_in":3600}"#
                    } else {
                        "{}"
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(body.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        (format!("http://{addr}"), tokens)
    }

    /// Every in-flight permit held by API requests that wait for their token: the token
    /// exchange takes none, so it still runs (it deadlocked when it needed one).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_token_exchange_needs_no_in_flight_permit() {
        let (base, tokens) = server().await;
        let http = crate::HttpClient::new(HttpConfig {
            max_in_flight: 1,
            ..HttpConfig::default()
        })
        .expect("client");
        let token = Arc::new(OAuth2Token::new(
            http.clone(),
            format!("{base}/token"),
            "id".into(),
            "secret".into(),
            Grant::RefreshToken("r".into()),
            None,
        ));
        let api = http.with_auth(token);
        let url = format!("{base}/api");
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (api, url) = (api.clone(), url.clone());
            set.spawn(async move {
                api.execute(|c| c.get(&url), |_| crate::Parsed::Ok(()))
                    .await
            });
        }
        let all = tokio::time::timeout(Duration::from_secs(10), async {
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.push(r);
            }
            out
        })
        .await
        .expect("no deadlock between the API's permits and the token exchange");
        assert_eq!(all.len(), 4);
        for r in all {
            r.expect("task").expect("request");
        }
        assert_eq!(tokens.load(Ordering::SeqCst), 1, "one exchange for all");
    }
}
