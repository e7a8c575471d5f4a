//! Connections, workspaces (in [`super::workspaces`]), sync state, stream validators and
//! `inlet_meta` values: the [`StateStore`] role.

use super::{Row, Session, SqlStore, args, changed_one, first, once, retrying, transaction};
use crate::codec::{checkpoint_json, parse_checkpoint, parse_config, parse_enum};
use crate::sql::{Dialect, q};
use async_trait::async_trait;
use inlet_core::{
    Connection as Conn, ConnectionStatus, NewConnection, StateStore, StoreError, SyncState,
    Timestamp, Workspace, WorkspaceStatus,
};
use std::collections::BTreeMap;

const CONN_COLS: &str = "\"id\", \"name\", \"workspace\", \"provider\", \"config\", \"credentials\", \
     \"status\", \"status_detail\", \"created_at\", \"updated_at\"";

fn conn_row(r: &Row) -> Result<Conn, StoreError> {
    Ok(Conn {
        id: r.get(0)?,
        name: r.get(1)?,
        workspace: r.get(2)?,
        provider: r.get(3)?,
        config: parse_config(&r.get::<String>(4)?)?,
        credentials: r.get(5)?,
        status: parse_enum(&r.get::<String>(6)?, "connections.status")?,
        status_detail: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

async fn create_connection(
    s: &mut dyn Session,
    new: &NewConnection,
    at: Timestamp,
) -> Result<Conn, StoreError> {
    let sql = format!(
        "INSERT INTO \"connections\" (\"name\", \"workspace\", \"provider\", \"config\", \"credentials\", \
         \"status\", \"created_at\", \"updated_at\") VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         RETURNING {CONN_COLS}"
    );
    let config = new.config.to_string();
    super::workspaces::ensure(s, &new.workspace, at).await?;
    let a = args![
        &new.name,
        &new.workspace,
        &new.provider,
        config.as_str(),
        new.credentials.as_slice(),
        ConnectionStatus::Active.as_str(),
        at,
    ];
    match s.query_unique(&sql, a).await? {
        None => Err(StoreError::DuplicateConnection(new.name.clone())),
        Some(rows) => rows
            .first()
            .map(conn_row)
            .ok_or_else(|| StoreError::Db("INSERT returned no connection".into()))?,
    }
}

/// Create a connection and, when missing, its workspace: one transaction.
async fn create_connection_tx(
    s: &mut dyn Session,
    new: &NewConnection,
    at: Timestamp,
) -> Result<Conn, StoreError> {
    transaction!(s, { create_connection(s, new, at).await })
}

async fn get_connection(s: &mut dyn Session, key: &str) -> Result<Option<Conn>, StoreError> {
    let sql = format!("SELECT {CONN_COLS} FROM \"connections\" WHERE \"name\" = $1");
    if let Some(r) = s.query(&sql, args![key]).await?.first() {
        return conn_row(r).map(Some);
    }
    let Ok(id) = key.parse::<i64>() else {
        return Ok(None);
    };
    let sql = format!("SELECT {CONN_COLS} FROM \"connections\" WHERE \"id\" = $1");
    s.query(&sql, args![id])
        .await?
        .first()
        .map(conn_row)
        .transpose()
}

async fn list_connections(s: &mut dyn Session) -> Result<Vec<Conn>, StoreError> {
    let sql = format!("SELECT {CONN_COLS} FROM \"connections\" ORDER BY \"id\"");
    s.query(&sql, &[]).await?.iter().map(conn_row).collect()
}

fn state_row(r: &Row) -> Result<(String, SyncState), StoreError> {
    let state = SyncState {
        cursor: r.get(1)?,
        checkpoint: parse_checkpoint(r.get(2)?)?,
        last_sync_at: r.get(3)?,
        last_success_at: r.get(4)?,
        sync_count: r.get(5)?,
        last_reconciled_at: r.get(6)?,
    };
    Ok((r.get(0)?, state))
}

/// The sync states of a connection (of one stream when `stream` is given).
async fn sync_states(
    s: &mut dyn Session,
    id: i64,
    stream: Option<&str>,
) -> Result<BTreeMap<String, SyncState>, StoreError> {
    let sql = "SELECT \"stream\", \"cursor\", \"checkpoint\", \"last_sync_at\", \"last_success_at\", \
               \"sync_count\", \"last_reconciled_at\" FROM \"sync_state\" \
               WHERE \"connection_id\" = $1 AND (CAST($2 AS TEXT) IS NULL OR \"stream\" = $2)";
    s.query(sql, args![id, stream])
        .await?
        .iter()
        .map(state_row)
        .collect()
}

/// Write a stream's sync state (inside the caller's transaction, if any).
pub(crate) async fn put_sync_state(
    s: &mut dyn Session,
    id: i64,
    stream: &str,
    st: &SyncState,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO \"sync_state\" (\"connection_id\", \"stream\", \"cursor\", \"checkpoint\", \
               \"last_sync_at\", \"last_success_at\", \"sync_count\", \"last_reconciled_at\") \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (\"connection_id\", \"stream\") DO UPDATE SET \
               \"cursor\" = \"excluded\".\"cursor\", \"checkpoint\" = \"excluded\".\"checkpoint\", \
               \"last_sync_at\" = \"excluded\".\"last_sync_at\", \"last_success_at\" = \"excluded\".\"last_success_at\", \
               \"sync_count\" = \"excluded\".\"sync_count\", \"last_reconciled_at\" = \"excluded\".\"last_reconciled_at\"";
    let checkpoint = checkpoint_json(&st.checkpoint)?;
    let a = args![
        id,
        stream,
        st.cursor.as_deref(),
        checkpoint.as_deref(),
        st.last_sync_at,
        st.last_success_at,
        st.sync_count,
        st.last_reconciled_at,
    ];
    s.execute(sql, a).await?;
    Ok(())
}

async fn stream_validator(
    s: &mut dyn Session,
    conn: i64,
    stream: &str,
) -> Result<Option<String>, StoreError> {
    let sql = "SELECT \"validator\" FROM \"stream_validators\" WHERE \"connection_id\" = $1 AND \"stream\" = $2";
    first(&s.query(sql, args![conn, stream]).await?)
}

async fn put_stream_validator(
    s: &mut dyn Session,
    conn: i64,
    stream: &str,
    validator: Option<&str>,
) -> Result<(), StoreError> {
    match validator {
        Some(v) => {
            let sql = "INSERT INTO \"stream_validators\" (\"connection_id\", \"stream\", \"validator\") \
                       VALUES ($1, $2, $3) ON CONFLICT (\"connection_id\", \"stream\") \
                       DO UPDATE SET \"validator\" = \"excluded\".\"validator\"";
            s.execute(sql, args![conn, stream, v]).await?
        }
        None => {
            let sql = "DELETE FROM \"stream_validators\" WHERE \"connection_id\" = $1 AND \"stream\" = $2";
            s.execute(sql, args![conn, stream]).await?
        }
    };
    Ok(())
}

/// Delete a connection and its rows in `tables`, in one transaction.
async fn delete_connection(
    s: &mut dyn Session,
    id: i64,
    tables: &[&str],
) -> Result<(), StoreError> {
    transaction!(s, {
        // Lock the connection first, so no page commit adds rows while they are deleted.
        let lock = match s.dialect() {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let sql = format!("SELECT 1 FROM \"connections\" WHERE \"id\" = $1{lock}");
        if s.query(&sql, args![id]).await?.is_empty() {
            return Err(StoreError::NotFound(format!("connection {id}")));
        }
        for t in tables {
            // A stream whose table was never made has no rows.
            if !super::table_exists(s, t).await? {
                continue;
            }
            let sql = format!("DELETE FROM {} WHERE \"connection_id\" = $1", q(t));
            s.execute(&sql, args![id]).await?;
        }
        s.execute("DELETE FROM \"connections\" WHERE \"id\" = $1", args![id])
            .await?;
        Ok(())
    })
}

/// A value of `inlet_meta`.
async fn meta_get(s: &mut dyn Session, name: &str) -> Result<Option<String>, StoreError> {
    let sql = "SELECT \"value\" FROM \"inlet_meta\" WHERE \"name\" = $1";
    first(&s.query(sql, args![name]).await?)
}

/// Insert `value` under `name` unless one is there; the value stored now.
async fn meta_init(s: &mut dyn Session, name: &str, value: &str) -> Result<String, StoreError> {
    let sql = "INSERT INTO \"inlet_meta\" (\"name\", \"value\") VALUES ($1, $2) \
               ON CONFLICT (\"name\") DO NOTHING";
    s.execute(sql, args![name, value]).await?;
    meta_get(s, name)
        .await?
        .ok_or_else(|| StoreError::Db(format!("inlet_meta value {name:?} vanished")))
}

#[async_trait]
impl StateStore for SqlStore {
    fn backend(&self) -> &'static str {
        self.backend.name()
    }

    fn location(&self) -> String {
        self.backend.location()
    }

    async fn meta_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        once!(self, |s| meta_get(s, name))
    }

    async fn meta_init(&self, name: &str, value: &str) -> Result<String, StoreError> {
        once!(self, |s| meta_init(s, name, value))
    }

    async fn create_connection(
        &self,
        new: &NewConnection,
        at: Timestamp,
    ) -> Result<Conn, StoreError> {
        retrying!(self, |s| create_connection_tx(s, new, at))
    }

    async fn get_connection(&self, key: &str) -> Result<Option<Conn>, StoreError> {
        retrying!(self, |s| get_connection(s, key))
    }

    async fn list_connections(&self) -> Result<Vec<Conn>, StoreError> {
        retrying!(self, |s| list_connections(s))
    }

    async fn set_connection_status(
        &self,
        id: i64,
        status: ConnectionStatus,
        detail: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE \"connections\" SET \"status\" = $2, \"status_detail\" = $3, \"updated_at\" = $4 \
                   WHERE \"id\" = $1";
        let n = retrying!(self, |s| s
            .execute(sql, args![id, status.as_str(), detail, at]))?;
        changed_one(n, || format!("connection {id}"))
    }

    async fn set_credentials(
        &self,
        id: i64,
        sealed: &[u8],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE \"connections\" SET \"credentials\" = $2, \"updated_at\" = $3 WHERE \"id\" = $1";
        let n = retrying!(self, |s| s.execute(sql, args![id, sealed, at]))?;
        changed_one(n, || format!("connection {id}"))
    }

    async fn sync_state(&self, connection_id: i64, stream: &str) -> Result<SyncState, StoreError> {
        let states = retrying!(self, |s| sync_states(s, connection_id, Some(stream)))?;
        Ok(states.into_values().next().unwrap_or_default())
    }

    async fn sync_states(
        &self,
        connection_id: i64,
    ) -> Result<BTreeMap<String, SyncState>, StoreError> {
        retrying!(self, |s| sync_states(s, connection_id, None))
    }

    async fn put_sync_state(
        &self,
        connection_id: i64,
        stream: &str,
        state: &SyncState,
    ) -> Result<(), StoreError> {
        retrying!(self, |s| put_sync_state(s, connection_id, stream, state))
    }

    async fn stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
    ) -> Result<Option<String>, StoreError> {
        retrying!(self, |s| stream_validator(s, connection_id, stream))
    }

    async fn put_stream_validator(
        &self,
        connection_id: i64,
        stream: &str,
        validator: Option<&str>,
    ) -> Result<(), StoreError> {
        retrying!(self, |s| put_stream_validator(
            s,
            connection_id,
            stream,
            validator
        ))
    }

    async fn create_workspace(&self, name: &str, at: Timestamp) -> Result<Workspace, StoreError> {
        retrying!(self, |s| super::workspaces::create(s, name, at))
    }

    async fn get_workspace(&self, name: &str) -> Result<Option<Workspace>, StoreError> {
        retrying!(self, |s| super::workspaces::get(s, name))
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        retrying!(self, |s| super::workspaces::list(s))
    }

    async fn set_workspace_status(
        &self,
        name: &str,
        status: WorkspaceStatus,
        at: Timestamp,
    ) -> Result<Workspace, StoreError> {
        retrying!(self, |s| super::workspaces::set_status(s, name, status, at))
    }

    async fn delete_connection(&self, id: i64, tables: &[&str]) -> Result<(), StoreError> {
        retrying!(self, |s| delete_connection(s, id, tables))
    }
}
