//! Workspaces (tenants), part of the [`inlet_core::StateStore`] role: creating, listing,
//! pausing and resuming them, and making sure a new connection's workspace exists.

use super::{Row, Session, args};
use crate::codec::parse_enum;
use inlet_core::{StoreError, Timestamp, Workspace, WorkspaceStatus};

const WS_COLS: &str = "\"id\", \"name\", \"status\", \"created_at\", \"updated_at\"";

fn ws_row(r: &Row) -> Result<Workspace, StoreError> {
    Ok(Workspace {
        id: r.get(0)?,
        name: r.get(1)?,
        status: parse_enum(&r.get::<String>(2)?, "workspaces.status")?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

/// Create an active workspace; `DuplicateWorkspace` when the name is taken.
pub(super) async fn create(
    s: &mut dyn Session,
    name: &str,
    at: Timestamp,
) -> Result<Workspace, StoreError> {
    let sql = format!(
        "INSERT INTO \"workspaces\" (\"name\", \"status\", \"created_at\", \"updated_at\") \
         VALUES ($1, $2, $3, $3) RETURNING {WS_COLS}"
    );
    let a = args![name, WorkspaceStatus::Active.as_str(), at];
    match s.query_unique(&sql, a).await? {
        None => Err(StoreError::DuplicateWorkspace(name.to_string())),
        Some(rows) => rows
            .first()
            .map(ws_row)
            .ok_or_else(|| StoreError::Db("INSERT returned no workspace".into()))?,
    }
}

/// Create the workspace `name` (active) unless it exists (inside the caller's
/// transaction, if any).
pub(super) async fn ensure(
    s: &mut dyn Session,
    name: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO \"workspaces\" (\"name\", \"status\", \"created_at\", \"updated_at\") \
               VALUES ($1, $2, $3, $3) ON CONFLICT (\"name\") DO NOTHING";
    s.execute(sql, args![name, WorkspaceStatus::Active.as_str(), at])
        .await?;
    Ok(())
}

/// The workspace named `name`.
pub(super) async fn get(s: &mut dyn Session, name: &str) -> Result<Option<Workspace>, StoreError> {
    let sql = format!("SELECT {WS_COLS} FROM \"workspaces\" WHERE \"name\" = $1");
    s.query(&sql, args![name])
        .await?
        .first()
        .map(ws_row)
        .transpose()
}

/// Every workspace, by name.
pub(super) async fn list(s: &mut dyn Session) -> Result<Vec<Workspace>, StoreError> {
    let sql = format!("SELECT {WS_COLS} FROM \"workspaces\" ORDER BY \"name\"");
    s.query(&sql, &[]).await?.iter().map(ws_row).collect()
}

/// Set a workspace's status; the workspace as it is now, `NotFound` when there is none.
pub(super) async fn set_status(
    s: &mut dyn Session,
    name: &str,
    status: WorkspaceStatus,
    at: Timestamp,
) -> Result<Workspace, StoreError> {
    let sql = format!(
        "UPDATE \"workspaces\" SET \"status\" = $2, \"updated_at\" = $3 WHERE \"name\" = $1 \
         RETURNING {WS_COLS}"
    );
    s.query(&sql, args![name, status.as_str(), at])
        .await?
        .first()
        .map(ws_row)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("workspace {name:?}")))
}
