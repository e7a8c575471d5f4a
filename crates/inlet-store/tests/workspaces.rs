//! The Store contract for workspaces (tenants): create, list, pause and resume them, and a
//! new connection's workspace made with it. Every test runs on a fresh SQLite file AND a
//! fresh PostgreSQL database, like `contract.rs`.

#[allow(dead_code)]
#[macro_use]
mod harness;

use harness::Db;
use inlet_core::{NewConnection, StoreError, Timestamp, WorkspaceStatus};

const T0: i64 = 1_718_800_000_123;

fn new_conn(name: &str, workspace: &str) -> NewConnection {
    NewConnection {
        name: name.into(),
        workspace: workspace.into(),
        provider: "reddit".into(),
        config: serde_json::json!({}),
        credentials: vec![1],
    }
}

store_test!(workspace_lifecycle);
async fn workspace_lifecycle(db: Db) {
    let s = &db.store;
    assert!(s.list_workspaces().await.unwrap().is_empty());
    let w = s.create_workspace("acme", Timestamp(T0)).await.unwrap();
    assert_eq!(
        (w.name.as_str(), w.status, w.created_at, w.updated_at),
        (
            "acme",
            WorkspaceStatus::Active,
            Timestamp(T0),
            Timestamp(T0)
        )
    );
    // The name is unique; the first stays as it was.
    assert!(matches!(
        s.create_workspace("acme", Timestamp(T0 + 1)).await,
        Err(StoreError::DuplicateWorkspace(n)) if n == "acme"
    ));
    s.create_workspace("beta", Timestamp(T0 + 2)).await.unwrap();
    let names: Vec<String> = s
        .list_workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["acme", "beta"]);

    let paused = s
        .set_workspace_status("acme", WorkspaceStatus::Paused, Timestamp(T0 + 5))
        .await
        .unwrap();
    assert_eq!(paused.status, WorkspaceStatus::Paused);
    assert_eq!(paused.updated_at, Timestamp(T0 + 5));
    assert_eq!(paused.created_at, Timestamp(T0));
    assert_eq!(s.get_workspace("acme").await.unwrap(), Some(paused));
    // The other workspace is untouched.
    assert_eq!(
        s.get_workspace("beta").await.unwrap().map(|w| w.status),
        Some(WorkspaceStatus::Active)
    );
    let resumed = s
        .set_workspace_status("acme", WorkspaceStatus::Active, Timestamp(T0 + 9))
        .await
        .unwrap();
    assert_eq!(resumed.status, WorkspaceStatus::Active);

    assert!(matches!(
        s.set_workspace_status("nope", WorkspaceStatus::Paused, Timestamp(T0))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.get_workspace("nope").await.unwrap(), None);
}

store_test!(a_connection_makes_its_workspace);
async fn a_connection_makes_its_workspace(db: Db) {
    let s = &db.store;
    s.create_workspace("acme", Timestamp(T0)).await.unwrap();
    s.set_workspace_status("acme", WorkspaceStatus::Paused, Timestamp(T0 + 1))
        .await
        .unwrap();
    // An existing workspace is kept as it is (still paused).
    s.create_connection(&new_conn("a", "acme"), Timestamp(T0 + 2))
        .await
        .unwrap();
    let acme = s.get_workspace("acme").await.unwrap().unwrap();
    assert_eq!(
        (acme.status, acme.updated_at),
        (WorkspaceStatus::Paused, Timestamp(T0 + 1))
    );
    // A missing one is made, active.
    s.create_connection(&new_conn("b", "new"), Timestamp(T0 + 3))
        .await
        .unwrap();
    let made = s.get_workspace("new").await.unwrap().unwrap();
    assert_eq!(
        (made.status, made.created_at),
        (WorkspaceStatus::Active, Timestamp(T0 + 3))
    );
    // A refused connection (duplicate name) makes no workspace.
    assert!(matches!(
        s.create_connection(&new_conn("b", "ghost"), Timestamp(T0 + 4))
            .await,
        Err(StoreError::DuplicateConnection(_))
    ));
    assert_eq!(s.get_workspace("ghost").await.unwrap(), None);
    assert_eq!(s.list_workspaces().await.unwrap().len(), 2);
}
