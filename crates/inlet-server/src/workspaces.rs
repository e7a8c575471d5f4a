//! Workspace routes (`/v1/workspaces`), the scheduler's tick summaries
//! (`/v1/scheduler/ticks`) and the sync engine's health check (`/health`).

use crate::AppState;
use crate::api::{ApiError, parse_body};
use crate::openapi::{
    ErrorBody, HealthDoc, NewWorkspace, SchedulerTicks, WorkspaceDetail, WorkspaceDoc,
    WorkspaceList,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use inlet_core::{StoreError, Workspace, WorkspaceStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type St = State<Arc<AppState>>;
type ApiResult<T> = Result<T, ApiError>;

/// `POST /v1/workspaces` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWorkspace {
    name: String,
}

/// The `{name}` of a workspace route.
#[derive(utoipa::IntoParams)]
#[into_params(names("name"), parameter_in = Path)]
#[allow(dead_code)]
struct WsName(
    /// Workspace name.
    String,
);

/// The workspace `name`, or 404.
pub(crate) async fn find(st: &AppState, name: &str) -> ApiResult<Workspace> {
    st.store
        .get_workspace(name)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("unknown workspace {name:?}")))
}

#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces",
    responses(
        (status = 200, description = "Every workspace, by name.", body = WorkspaceList),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody)))]
pub(crate) async fn list_workspaces(State(st): St) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"workspaces": st.store.list_workspaces().await?}),
    ))
}

#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces",
    request_body = NewWorkspace,
    responses(
        (status = 201, description = "Created (active).", body = WorkspaceDoc),
        (status = 400, description = "Malformed body or name.", body = ErrorBody),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 409, description = "The name is taken.", body = ErrorBody)))]
pub(crate) async fn create_workspace(
    State(st): St,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateWorkspace = parse_body(&headers, &body)?;
    inlet_core::validate_workspace_name(&req.name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("name: {e}")))?;
    let w = match st.store.create_workspace(&req.name, st.clock.now()).await {
        Ok(w) => w,
        Err(StoreError::DuplicateWorkspace(n)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("a workspace named {n:?} already exists"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(workspace = %w.name, "Workspace created.");
    Ok((StatusCode::CREATED, Json(json!(w))).into_response())
}

#[utoipa::path(get, path = "/v1/workspaces/{name}", tag = "workspaces", params(WsName),
    responses(
        (status = 200, description = "The workspace with its connections and each one's last run.", body = WorkspaceDetail),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such workspace.", body = ErrorBody)))]
pub(crate) async fn show_workspace(
    State(st): St,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let w = find(&st, &name).await?;
    let mut conns = Vec::new();
    for c in st.store.list_connections().await? {
        if c.workspace != w.name {
            continue;
        }
        let last_run = st.store.list_runs(Some(c.id), 1).await?.into_iter().next();
        conns.push(json!({"connection": c, "last_run": last_run}));
    }
    Ok(Json(json!({"workspace": w, "connections": conns})))
}

async fn set_status(st: &AppState, name: &str, status: WorkspaceStatus) -> ApiResult<Json<Value>> {
    find(st, name).await?;
    let w = st
        .store
        .set_workspace_status(name, status, st.clock.now())
        .await?;
    tracing::info!(workspace = %w.name, status = %w.status, "Workspace status changed.");
    Ok(Json(json!(w)))
}

#[utoipa::path(post, path = "/v1/workspaces/{name}/pause", tag = "workspaces",
    description = "Pause: the scheduler starts none of the workspace's connections until it is resumed (their own status is kept).",
    params(WsName),
    responses(
        (status = 200, description = "The paused workspace.", body = WorkspaceDoc),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such workspace.", body = ErrorBody)))]
pub(crate) async fn pause_workspace(
    State(st): St,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    set_status(&st, &name, WorkspaceStatus::Paused).await
}

#[utoipa::path(post, path = "/v1/workspaces/{name}/resume", tag = "workspaces",
    description = "Resume: the workspace's active connections are scheduled again.",
    params(WsName),
    responses(
        (status = 200, description = "The active workspace.", body = WorkspaceDoc),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody),
        (status = 404, description = "No such workspace.", body = ErrorBody)))]
pub(crate) async fn resume_workspace(
    State(st): St,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    set_status(&st, &name, WorkspaceStatus::Active).await
}

#[utoipa::path(get, path = "/v1/scheduler/ticks", tag = "operations",
    description = "Per provider: the last scheduler tick summary {status: success|skipped, total_messages, successful_workspaces, failed_workspaces}, the last one with status success, and totals.",
    responses(
        (status = 200, description = "{scheduler: running|disabled, providers: {name: ...}}.", body = SchedulerTicks),
        (status = 401, description = "Missing, invalid or revoked API key.", body = ErrorBody)))]
pub(crate) async fn scheduler_ticks(State(st): St) -> Json<Value> {
    match &st.scheduler {
        Some(h) => Json(json!({"scheduler": "running", "providers": h.tick_summaries()})),
        None => Json(json!({"scheduler": "disabled", "providers": {}})),
    }
}

/// Whether the scheduler's last tick is recent enough: within three ticks, at least
/// 30 seconds. `None` when the scheduler is disabled.
pub(crate) fn scheduler_fresh(st: &AppState) -> Option<bool> {
    let now = st.clock.now().0;
    st.scheduler.as_ref().map(|h| {
        let beat = h.heartbeat.load(std::sync::atomic::Ordering::SeqCst);
        let limit = (st.tick.as_millis() as i64 * 3).max(30_000);
        beat != 0 && now - beat <= limit
    })
}

#[utoipa::path(get, path = "/health", tag = "health", security(()),
    description = "The sync engine's health: healthy while the scheduler's heartbeat is fresh (its last tick within three ticks, at least 30 s). A server started without the scheduler is unhealthy here (use /readyz for the API alone).",
    responses(
        (status = 200, description = "{status: healthy, timestamp, service: sync_engine}.", body = HealthDoc),
        (status = 503, description = "{status: unhealthy, timestamp, service: sync_engine}.", body = HealthDoc)))]
pub(crate) async fn health(State(st): St) -> Response {
    let healthy = scheduler_fresh(&st) == Some(true);
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "timestamp": st.clock.now(),
        "service": "sync_engine",
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
