//! The HTTP API: JSON in and out, errors as `{"error": "..."}` with a precise status.

use crate::{AppState, keys, metrics, openapi};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
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
fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> ApiResult<T> {
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

/// The router with every route, the auth layer and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let authed = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_doc))
        .route(
            "/v1/connections",
            get(list_connections).post(create_connection),
        )
        .route(
            "/v1/connections/{id}",
            get(show_connection).delete(delete_connection),
        )
        .route("/v1/connections/{id}/pause", post(pause))
        .route("/v1/connections/{id}/resume", post(resume))
        .route("/v1/connections/{id}/sync", post(trigger_sync))
        .route("/v1/connections/{id}/status", get(status))
        .route("/v1/connections/{id}/refresh", post(refresh))
        .route("/v1/connections/{id}/compare", get(compare))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(show_run))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(authed)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let res = next.run(req).await;
    tracing::debug!(%method, path, status = res.status().as_u16(), "Request.");
    res
}

async fn require_key(State(st): St, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
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

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

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

async fn openapi_doc() -> Json<Value> {
    Json(openapi::document())
}

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
    "default".into()
}
fn empty_object() -> Value {
    json!({})
}

async fn create_connection(State(st): St, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let req: CreateConnection = parse_body(&headers, &body)?;
    // The one name rule, shared with the CLI.
    let name = req.name.as_str();
    if let Err(e) = inlet_core::validate_connection_name(name) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("name: {e}")));
    }
    if !inlet_connectors::build::PROVIDERS.contains(&req.provider.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown provider {:?} (supported: {})",
                req.provider,
                inlet_connectors::build::PROVIDERS.join(", ")
            ),
        ));
    }
    if !req.credentials.is_object() || !req.config.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "config and credentials must be JSON objects",
        ));
    }
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

async fn list_connections(State(st): St) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"connections": st.store.list_connections().await?}),
    ))
}

async fn show_connection(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(find(&st, &id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default)]
    keep_data: bool,
}

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
    let tables = inlet_connectors::build::tables_of(&conn.provider);
    st.store.delete_connection(conn.id, &tables).await?;
    tracing::info!(connection = %conn.name, "Connection deleted with its data.");
    Ok(Json(json!({"deleted": conn.name, "data": "deleted"})))
}

async fn pause(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let conn = find(&st, &id).await?;
    st.store
        .set_connection_status(conn.id, ConnectionStatus::Paused, None, st.clock.now())
        .await?;
    Ok(Json(json!(find(&st, &id).await?)))
}

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

async fn status(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let conn = find(&st, &id).await?;
    let states = st.store.sync_states(conn.id).await?;
    let mut streams = serde_json::Map::new();
    for spec in inlet_connectors::build::streams_of(&conn.provider) {
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

async fn compare(State(st): St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let conn = find(&st, &id).await?;
    let mut streams = serde_json::Map::new();
    for spec in inlet_connectors::build::streams_of(&conn.provider) {
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
