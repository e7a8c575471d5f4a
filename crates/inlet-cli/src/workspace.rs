//! `inlet workspace create|list|show|pause|resume`: the tenants that own connections.
//! A paused workspace keeps its connections as they are, but `inlet serve`'s scheduler
//! starts none of them until it is resumed.

use crate::app;
use crate::output::Output;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use inlet_core::{
    Clock, Store, StoreError, SystemClock, Workspace, WorkspaceStatus, escape_unsafe,
};
use serde_json::json;
use std::process::ExitCode;

/// `inlet workspace ...`.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace (active).
    Create {
        /// Unique name: 1 to 200 characters, no control characters, no white space at
        /// either end.
        name: String,
    },
    /// List workspaces with their status and number of connections.
    List,
    /// Show a workspace: its connections and each one's last run.
    Show {
        /// Workspace name.
        name: String,
    },
    /// Pause a workspace: the scheduler starts none of its connections until it is resumed.
    Pause {
        /// Workspace name.
        name: String,
    },
    /// Resume a paused workspace: its active connections are scheduled again.
    Resume {
        /// Workspace name.
        name: String,
    },
}

/// Run `inlet workspace ...`.
pub async fn run(settings: &Settings, command: WorkspaceCommand, out: &Output) -> Result<ExitCode> {
    match command {
        WorkspaceCommand::Create { name } => create(settings, &name, out).await,
        WorkspaceCommand::List => list(settings, out).await,
        WorkspaceCommand::Show { name } => show(settings, &name, out).await,
        WorkspaceCommand::Pause { name } => {
            set_status(settings, &name, WorkspaceStatus::Paused, out).await
        }
        WorkspaceCommand::Resume { name } => {
            set_status(settings, &name, WorkspaceStatus::Active, out).await
        }
    }
}

/// Refuse a workspace name that breaks the name rule.
fn check_name(name: &str) -> Result<()> {
    inlet_core::validate_workspace_name(name)
        .with_context(|| format!("invalid workspace name {name:?}"))
}

/// The workspace `name`, or an error naming the known ones.
async fn find(store: &dyn Store, name: &str) -> Result<Workspace> {
    if let Some(w) = store.get_workspace(name).await? {
        return Ok(w);
    }
    let known: Vec<String> = store
        .list_workspaces()
        .await?
        .into_iter()
        .map(|w| w.name)
        .collect();
    if known.is_empty() {
        bail!(
            "unknown workspace {name:?}: there are no workspaces yet (create one with `inlet workspace create {name}`)"
        )
    }
    bail!("unknown workspace {name:?} (known: {})", known.join(", "))
}

/// A new connection's workspace (`inlet connect --workspace`), checked before anything
/// is verified or written: a name that breaks the rule is refused. A workspace that does
/// not exist yet is created (active) with the connection; a paused one takes it, and it
/// is not scheduled until the workspace is resumed. Both are said in a note.
pub async fn check_for_connect(settings: &Settings, name: &str, out: &Output) -> Result<()> {
    check_name(name).context("the connection was not stored")?;
    // A database that does not exist yet has no workspaces; it is made by the connect.
    let Ok(store) = app::open_store(settings, false).await else {
        return Ok(());
    };
    match store.get_workspace(name).await? {
        None if name != inlet_core::DEFAULT_WORKSPACE => out.note(&format!(
            "Note: workspace {name:?} does not exist yet; it is created (active) with this connection."
        )),
        Some(w) if w.status == WorkspaceStatus::Paused => out.note(&format!(
            "Note: workspace {name:?} is paused; the connection is not scheduled until `inlet workspace resume {name}`."
        )),
        _ => {}
    }
    Ok(())
}

async fn create(settings: &Settings, name: &str, out: &Output) -> Result<ExitCode> {
    check_name(name)?;
    crate::settings::target(&settings.database_url)?;
    let store = app::open_store(settings, true).await?;
    let w = match store.create_workspace(name, SystemClock.now()).await {
        Ok(w) => w,
        Err(StoreError::DuplicateWorkspace(_)) => {
            bail!("a workspace named {name:?} exists already")
        }
        Err(e) => return Err(e.into()),
    };
    out.emit(&w, || {
        format!(
            "Created workspace {:?} (active); stored in {}.",
            w.name,
            store.location()
        )
    });
    Ok(ExitCode::SUCCESS)
}

async fn list(settings: &Settings, out: &Output) -> Result<ExitCode> {
    let store = app::open_store_read(settings).await?;
    let conns = store.list_connections().await?;
    let mut all = Vec::new();
    let mut text = String::new();
    let workspaces = store.list_workspaces().await?;
    if workspaces.is_empty() {
        text.push_str("No workspaces yet (create one with `inlet workspace create NAME`).");
    }
    for w in workspaces {
        let n = conns.iter().filter(|c| c.workspace == w.name).count();
        text.push_str(&format!(
            "{}: {}, {n} connection(s), created {}\n",
            escape_unsafe(&w.name),
            w.status,
            w.created_at
        ));
        all.push(json!({"workspace": w, "connections": n}));
    }
    out.emit(&all, || text.trim_end().to_string());
    Ok(ExitCode::SUCCESS)
}

async fn show(settings: &Settings, name: &str, out: &Output) -> Result<ExitCode> {
    let store = app::open_store_read(settings).await?;
    let w = find(&*store, name).await?;
    let mut text = format!(
        "workspace {}: {} (created {}, changed {})\n",
        escape_unsafe(&w.name),
        w.status,
        w.created_at,
        w.updated_at
    );
    let mut conns = Vec::new();
    for c in store.list_connections().await? {
        if c.workspace != w.name {
            continue;
        }
        let last = store.list_runs(Some(c.id), 1).await?.into_iter().next();
        let last_text = match &last {
            None => "no runs yet".to_string(),
            Some(r) => format!(
                "last run {} {} {}, {} fetched",
                r.id, r.status, r.started_at, r.stats.fetched
            ),
        };
        text.push_str(&format!(
            "  {} (id {}, {}): {}; {last_text}\n",
            escape_unsafe(&c.name),
            c.id,
            c.provider,
            c.status
        ));
        conns.push(json!({"connection": c, "last_run": last}));
    }
    if conns.is_empty() {
        text.push_str(
            "  no connections (add one with `inlet connect <provider> --workspace NAME`)\n",
        );
    }
    out.emit(&json!({"workspace": w, "connections": conns}), || {
        text.trim_end().to_string()
    });
    Ok(ExitCode::SUCCESS)
}

async fn set_status(
    settings: &Settings,
    name: &str,
    status: WorkspaceStatus,
    out: &Output,
) -> Result<ExitCode> {
    let store = app::open_store(settings, false).await?;
    find(&*store, name).await?;
    let w = store
        .set_workspace_status(name, status, SystemClock.now())
        .await?;
    out.emit(&w, || match w.status {
        WorkspaceStatus::Paused => format!(
            "Paused workspace {:?}: none of its connections is scheduled until it is resumed.",
            w.name
        ),
        WorkspaceStatus::Active => format!(
            "Resumed workspace {:?}: its active connections are scheduled again.",
            w.name
        ),
    });
    Ok(ExitCode::SUCCESS)
}
