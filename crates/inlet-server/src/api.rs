//! The HTTP API: JSON in and out, errors as `{"error": "..."}` with a precise status.

use crate::openapi::{
    ConnectionDoc, ConnectionList, Deleted, ErrorBody, NewConnection as NewConnectionDoc,
    RefreshRequest, RunList, SyncRequest, TriggeredDoc,
};
use crate::{AppState, keys, metrics, openapi, providers, workspaces};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use inlet_core::secrets::connection_aad;
use inlet_core::{
    Connection, ConnectionStatus, ConnectorError, NewConnection, RunMode, StoreError, Trigger,
};
use inlet_engine::worker::{TriggerError, Triggered};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest request body accepted (1 MiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

type St = State<Arc<AppState>>;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    /// An answer with this status and `{"error": msg}`.
    pub(crate) fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({"error": msg.into()}),
        }
    }
    fn with(mut self, key: &str, v: Value) -> Self {
        if let Some(o) = self.body.as_object_mut() {
            o.insert(key.into(), v);
        }
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            StoreError::DuplicateConnection(n) => ApiError::new(
                StatusCode::CONFLICT,
                format!("a connection named {n:?} already exists"),
            ),
            StoreError::DuplicateWorkspace(n) => ApiError::new(
                StatusCode::CONFLICT,
                format!("a workspace named {n:?} already exists"),
            ),
            other => {
                tracing::error!(error = %other, "Store error while answering a request.");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        let msg = e.to_string();
        match e {
            TriggerError::Busy { run_id } => {
                ApiError::new(StatusCode::CONFLICT, msg).with("run_id", json!(run_id))
            }
            TriggerError::NotSyncable(_) => ApiError::new(StatusCode::CONFLICT, msg),
            TriggerError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg),
            TriggerError::Connector(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg),
            TriggerError::Store(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Parse a JSON body with a precise 400 (line, column, what was wrong).
pub(crate) fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> ApiResult<T> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !body.is_empty() && !ct.is_empty() && !ct.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type application/json, got {ct:?}"),
        ));
    }
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// Every route with its OpenAPI description: the public health checks and the routes
/// behind the API key. [`router`] serves them; [`openapi::openapi`] documents them.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    public_routes().merge(authed_routes())
}

fn public_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(workspaces::health))
}

fn authed_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(metrics_text))
        .routes(routes!(openapi_doc))
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(show_connection, delete_connection))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(trigger_sync))
        .routes(routes!(status))
        .routes(routes!(refresh))
        .routes(routes!(compare))
        .routes(routes!(list_runs))
        .routes(routes!(show_run))
        .routes(routes!(
            workspaces::list_workspaces,
            workspaces::create_workspace
        ))
        .routes(routes!(workspaces::show_workspace))
        .routes(routes!(workspaces::pause_workspace))
        .routes(routes!(workspaces::resume_workspace))
        .routes(routes!(workspaces::scheduler_ticks))
}

/// The router with every route, the auth layer and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let (public, _) = public_routes().split_for_parts();
    let (authed, _) = authed_routes().split_for_parts();
    let authed = authed.route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    public
        .merge(authed)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let res = next.run(req).await;
    tracing::debug!(%method, path, status = res.status().as_u16(), "Request.");
    res
}

/// Longest error text taken over from a plain-text answer of axum or a rejection.
const MAX_ERROR_TEXT: usize = 500;

/// Every error answer is JSON `{"error": ...}`: answers made by axum itself (405, 413,
/// query and path rejections) come as plain text or empty, so they are rewritten here,
/// keeping their status and headers (`Allow`, `WWW-Authenticate`).
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let msg = if text.is_empty() {
        let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
        match status {
            StatusCode::METHOD_NOT_ALLOWED => {
                let allow = parts
                    .headers
                    .get(header::ALLOW)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                format!("{reason} (allowed: {allow})")
            }
            _ => reason,
        }
    } else {
        text.chars()
            .filter(|c| !c.is_control())
            .take(MAX_ERROR_TEXT)
            .collect()
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&json!({ "error": msg })).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The key of an `Authorization: Bearer <key>` header; the scheme is case-insensitive
/// (RFC 9110 §11.1).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(char::is_whitespace)?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn require_key(State(st): St, req: Request, next: Next) -> Response {
    let token = bearer_token(req.headers());
    let denied = |msg: &str| {
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, msg).into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return denied(
            "missing API key: send Authorization: Bearer <key> (make one with `inlet apikey create`)",
        );
    };
    match st.store.find_api_key(&keys::hash(token)).await {
        Ok(Some(_)) => next.run(req).await,
        Ok(None) => denied("invalid or revoked API key"),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The process answers: {\"status\": \"ok\"}.", body = Object)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "Ready: database reachable, scheduler alive (or disabled), not shutting down. {\"status\", \"database\", \"scheduler\"}.", body = Object),
        (status = 503, description = "Not ready; same fields say why.", body = Object)))]
async fn readyz(State(st): St) -> Response {
    let db = st.store.get_run(-1).await;
    let now = st.clock.now().0;
    let sched = st.scheduler.as_ref().map(|h| {
        let beat = h.heartbeat.load(std::sync::atomic::Ordering::SeqCst);
        let limit = (st.tick.as_millis() as i64 * 3).max(30_000);
        beat != 0 && now - beat <= limit
    });
    let ready = db.is_ok() && sched != Some(false) && !st.dispatcher.is_shutting_down();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": match &db { Ok(_) => "ok".to_string(), Err(e) => e.to_string() },
        "scheduler": match sched { None => "disabled", Some(true) => "alive", Some(false) => "stalled" },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format; the metrics are listed in docs/ARCHITECTURE.md (\"Metrics\").", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody)))]
async fn metrics_text(State(st): St) -> ApiResult<Response> {
    let text = metrics::render(&st).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses(
        (status = 200, description = "This document.", body = Object),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody)))]
async fn openapi_doc() -> Json<Value> {
    Json(openapi::document())
}

/// The `{id}` of a connection route.
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)]
struct ConnId(
    /// Connection name or numeric id.
    String,
);

async fn find(st: &AppState, key: &str) -> ApiResult<Connection> {
    st.store
        .get_connection(key)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("unknown connection {key:?}")))
}

/// `POST /v1/connections` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConnection {
    name: String,
    #[serde(default = "default_workspace")]
    workspace: String,
    provider: String,
    #[serde(default = "empty_object")]
    config: Value,
    credentials: Value,
}

fn default_workspace() -> String {
    inlet_core::DEFAULT_WORKSPACE.into()
}
fn empty_object() -> Value {
    json!({})
}

#[utoipa::path(post, path = "/v1/connections", tag = "connections",
    request_body(content = NewConnectionDoc, description = "The connection; config and credentials follow the provider's schemas."),
    responses(
        (status = 201, description = "Created.", body = ConnectionDoc),
        (status = 400, description = "Malformed body, unknown provider, a workspace name that breaks the name rule, or a config URL pointing at a host the operator did not allow.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 409, description = "The name is taken.", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB.", body = ErrorBody),
        (status = 415, description = "Not application/json.", body = ErrorBody),
        (status = 422, description = "Config or credentials unusable by the provider.", body = ErrorBody)))]
async fn create_connection(State(st): St, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let req: CreateConnection = parse_body(&headers, &body)?;
    // The one name rule, shared with the CLI.
    let name = req.name.as_str();
    if let Err(e) = inlet_core::validate_connection_name(name) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("name: {e}")));
    }
    // Exactly the providers /openapi.json lists (both read the registry).
    let accepted = providers::names();
    if !accepted.contains(&req.provider.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown provider {:?} (supported: {})",
                req.provider,
                accepted.join(", ")
            ),
        ));
    }
    if !req.credentials.is_object() || !req.config.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "config and credentials must be JSON objects",
        ));
    }
    check_workspace(&req.workspace)?;
    let Some(described) = providers::get(&req.provider) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "provider {:?} is not available through the API",
                req.provider
            ),
        ));
    };
    providers::check_overrides(&described, &req.config, &st.allowed_override_hosts)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    // Build the connector once to check config and credentials (no request is sent).
    let probe = Connection {
        id: 0,
        name: name.to_string(),
        workspace: req.workspace.clone(),
        provider: req.provider.clone(),
        config: req.config.clone(),
        credentials: vec![],
        status: ConnectionStatus::Active,
        status_detail: None,
        created_at: st.clock.now(),
        updated_at: st.clock.now(),
    };
    if let Err(e) =
        inlet_connectors::build::connector(&probe, req.credentials.clone(), st.http.clone())
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        ));
    }
    let plain = serde_json::to_vec(&req.credentials)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let sealed = st
        .secrets
        .seal(&plain, &connection_aad(name))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let conn = st
        .store
        .create_connection(
            &NewConnection {
                name: name.to_string(),
                workspace: req.workspace,
                provider: req.provider,
                config: req.config,
                credentials: sealed,
            },
            st.clock.now(),
        )
        .await?;
    tracing::info!(connection = %conn.name, id = conn.id, provider = %conn.provider, "Connection created.");
    Ok((StatusCode::CREATED, Json(json!(conn))).into_response())
}

/// A new connection's workspace name must follow the name rule. A workspace that does
/// not exist yet is created (active) with the connection; a paused one takes it (it is
/// not scheduled until the workspace is resumed).
fn check_workspace(name: &str) -> ApiResult<()> {
    inlet_core::validate_workspace_name(name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("workspace: {e}")))
}

#[utoipa::path(get, path = "/v1/connections", tag = "connections",
    responses(
        (status = 200, description = "Every connection (never their credentials).", body = ConnectionList),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody)))]
async fn list_connections(State(st): St) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"connections": st.store.list_connections().await?}),
    ))
}

#[utoipa::path(get, path = "/v1/connections/{id}", tag = "connections", params(ConnId),
    responses(
        (status = 200, description = "The connection.", body = ConnectionDoc),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody)))]
async fn show_connection(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(find(&st, &id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default)]
    keep_data: bool,
}

#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "connections",
    description = "Delete a connection with its data, or with ?keep_data=true erase its credentials and stop it while its rows stay.",
    params(ConnId, ("keep_data" = Option<bool>, Query, description = "keep the rows (default false)")),
    responses(
        (status = 200, description = "Deleted.", body = Deleted),
        (status = 400, description = "Bad query string.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody),
        (status = 409, description = "A sync is running.", body = ErrorBody)))]
async fn delete_connection(
    State(st): St,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Value>> {
    let conn = find(&st, &id).await?;
    if let Some(run_id) = st.dispatcher.running(conn.id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a sync of this connection is running; pause it and retry when it ends",
        )
        .with("run_id", json!(run_id)));
    }
    let now = st.clock.now();
    if q.keep_data {
        // Retire: the credentials are erased and the connection never syncs again; its
        // rows stay queryable under its id.
        st.store.set_credentials(conn.id, &[], now).await?;
        st.store
            .set_connection_status(
                conn.id,
                ConnectionStatus::Paused,
                Some("deleted with its data kept: credentials erased"),
                now,
            )
            .await?;
        tracing::info!(connection = %conn.name, "Connection retired; data kept.");
        return Ok(Json(json!({"deleted": conn.name, "data": "kept"})));
    }
    let tables = inlet_connectors::build::tables_of_connection(&conn);
    st.store.delete_connection(conn.id, &tables).await?;
    tracing::info!(connection = %conn.name, "Connection deleted with its data.");
    Ok(Json(json!({"deleted": conn.name, "data": "deleted"})))
}

#[utoipa::path(post, path = "/v1/connections/{id}/pause", tag = "connections",
    description = "Pause: no scheduled or triggered syncs.", params(ConnId),
    responses(
        (status = 200, description = "The paused connection.", body = ConnectionDoc),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody)))]
async fn pause(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let conn = find(&st, &id).await?;
    st.store
        .set_connection_status(conn.id, ConnectionStatus::Paused, None, st.clock.now())
        .await?;
    Ok(Json(json!(find(&st, &id).await?)))
}

#[utoipa::path(post, path = "/v1/connections/{id}/resume", tag = "connections",
    description = "Resume a paused or failing connection.", params(ConnId),
    responses(
        (status = 200, description = "The active connection.", body = ConnectionDoc),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody),
        (status = 409, description = "Deleted with its data kept, or needs re-authentication.", body = ErrorBody)))]
async fn resume(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let conn = find(&st, &id).await?;
    if conn.credentials.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "connection was deleted (credentials erased)",
        ));
    }
    if conn.status == ConnectionStatus::NeedsReauth {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "connection needs re-authentication: update its credentials (inlet connect --update)",
        ));
    }
    st.store
        .set_connection_status(conn.id, ConnectionStatus::Active, None, st.clock.now())
        .await?;
    Ok(Json(json!(find(&st, &id).await?)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    mode: Option<String>,
}

#[utoipa::path(post, path = "/v1/connections/{id}/sync", tag = "syncs",
    description = "Trigger a sync; returns at once. While a sync runs the trigger is coalesced into one follow-up run (202 with the running run id), or refused with ?if_idle=true (409).",
    params(ConnId,
        ("if_idle" = Option<bool>, Query, description = "refuse instead of coalescing when a sync runs"),
        ("mode" = Option<String>, Query, description = "delta (default), full or reconcile")),
    request_body(content = Option<SyncRequest>, description = "Optional; `mode` here wins over the query."),
    responses(
        (status = 202, description = "Started, coalesced or queued.", body = TriggeredDoc),
        (status = 400, description = "Bad mode, query or body.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody),
        (status = 409, description = "Running (if_idle), paused or needs re-authentication.", body = ErrorBody),
        (status = 422, description = "The connector cannot be built.", body = ErrorBody),
        (status = 503, description = "Shutting down.", body = ErrorBody)))]
async fn trigger_sync(
    State(st): St,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: SyncBody = parse_body(&headers, &body)?;
    for k in q.keys() {
        if k != "if_idle" && k != "mode" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown query parameter {k:?} (expected mode, if_idle)"),
            ));
        }
    }
    let if_idle = match q.get("if_idle").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(o) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("if_idle must be true or false, not {o:?}"),
            ));
        }
    };
    let mode = match b.mode.as_deref().or(q.get("mode").map(String::as_str)) {
        None => RunMode::Delta,
        Some(m) => RunMode::from_str(m).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?,
    };
    let conn = find(&st, &id).await?;
    let t = st
        .dispatcher
        .trigger(&conn, mode, Trigger::Api, if_idle)
        .await?;
    let run_id = match t {
        Triggered::Started { run_id } | Triggered::Coalesced { run_id } => Some(run_id),
        Triggered::Queued => None,
    };
    let mut body = json!(t);
    if let Some(o) = body.as_object_mut() {
        o.insert("connection".into(), json!(conn.name));
        o.insert("run_id".into(), json!(run_id));
        o.insert(
            "run".into(),
            json!(run_id.map(|id| format!("/v1/runs/{id}"))),
        );
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/v1/connections/{id}/status", tag = "syncs",
    description = "Sync status: the connection, per-stream records and state, the running run, a queued follow-up, the next scheduled time and the last run.",
    params(ConnId),
    responses(
        (status = 200, description = "{connection, syncing, running_run_id, follow_up_queued, next_scheduled_at, last_run, streams}.", body = Object),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody)))]
async fn status(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let conn = find(&st, &id).await?;
    let states = st.store.sync_states(conn.id).await?;
    let mut streams = serde_json::Map::new();
    for spec in inlet_connectors::build::streams_of_connection(&conn) {
        let state = states.get(spec.name).cloned().unwrap_or_default();
        let records = st.store.count_live(conn.id, spec).await?;
        streams.insert(
            spec.name.into(),
            json!({"records": records, "state": state}),
        );
    }
    let running = st.dispatcher.running(conn.id);
    let last_run = st
        .store
        .list_runs(Some(conn.id), 1)
        .await?
        .into_iter()
        .next();
    let next_due = st.scheduler.as_ref().and_then(|h| h.next_due(conn.id));
    Ok(Json(json!({
        "connection": conn,
        "syncing": running.is_some(),
        "running_run_id": running.flatten(),
        "follow_up_queued": st.dispatcher.follow_up_queued(conn.id),
        "next_scheduled_at": next_due,
        "last_run": last_run,
        "streams": streams,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    entity: String,
    id: String,
}

#[utoipa::path(post, path = "/v1/connections/{id}/refresh", tag = "syncs",
    description = "Re-fetch one entity now (e.g. one conversation).", params(ConnId),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "{connection, entity, id, outcome}.", body = Object),
        (status = 400, description = "Malformed body.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody),
        (status = 409, description = "A sync is running.", body = ErrorBody),
        (status = 422, description = "The provider cannot refresh this entity.", body = ErrorBody),
        (status = 502, description = "The provider failed.", body = ErrorBody)))]
async fn refresh(
    State(st): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body must be {\"entity\": ..., \"id\": ...}",
        ));
    }
    let b: RefreshBody = parse_body(&headers, &body)?;
    let conn = find(&st, &id).await?;
    match st.dispatcher.refresh(&conn, &b.entity, &b.id).await? {
        Ok(out) => Ok(Json(
            json!({"connection": conn.name, "entity": b.entity, "id": b.id, "outcome": out}),
        )),
        Err(e @ ConnectorError::Unsupported(_)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
        Err(e @ ConnectorError::Config(_)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())),
    }
}

#[utoipa::path(get, path = "/v1/connections/{id}/compare", tag = "syncs",
    description = "Records per stream in the store against the provider's count where the provider can count (source null with a reason otherwise).",
    params(ConnId),
    responses(
        (status = 200, description = "{connection, streams: {name: {store, source, reason}}}.", body = Object),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody)))]
async fn compare(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let conn = find(&st, &id).await?;
    let mut streams = serde_json::Map::new();
    for spec in inlet_connectors::build::streams_of_connection(&conn) {
        let n = st.store.count_live(conn.id, spec).await?;
        streams.insert(
            spec.name.into(),
            json!({
                "store": n,
                "source": null,
                "reason": format!("{} cannot count a listing without reading all of it; a full sync (mode=full) re-reads and reconciles it", conn.provider),
            }),
        );
    }
    Ok(Json(json!({"connection": conn.name, "streams": streams})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    connection: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/runs", tag = "syncs",
    params(
        ("connection" = Option<String>, Query, description = "only this connection (name or id)"),
        ("limit" = Option<u32>, Query, description = "at most this many, 1..=1000 (default 50)")),
    responses(
        (status = 200, description = "Runs, newest first.", body = RunList),
        (status = 400, description = "Bad query string.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody)))]
async fn list_runs(State(st): St, Query(q): Query<RunsQuery>) -> ApiResult<Json<Value>> {
    let filter = match &q.connection {
        Some(k) => Some(find(&st, k).await?.id),
        None => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(
        json!({"runs": st.store.list_runs(filter, limit).await?}),
    ))
}

#[utoipa::path(get, path = "/v1/runs/{id}", tag = "syncs",
    params(("id" = i64, Path, description = "run id")),
    responses(
        (status = 200, description = "{run, duration_ms}.", body = Object),
        (status = 400, description = "Not a number.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody)))]
async fn show_run(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("run id must be a number, not {id:?}"),
        )
    })?;
    match st.store.get_run(id).await? {
        Some(r) => Ok(Json(json!({"run": r, "duration_ms": r.duration_ms()}))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run {id} not found"),
        )),
    }
}
