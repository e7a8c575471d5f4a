//! Mapping of driver errors onto [`StoreError`], in one place.

use inlet_core::StoreError;

/// A rusqlite error as a store error.
pub(crate) fn sqlite(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let detail = msg.clone().unwrap_or_else(|| f.to_string());
        return match f.extended_code {
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                StoreError::NotFound(format!("the referenced connection ({detail})"))
            }
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => {
                StoreError::Db(format!("database is locked by another process: {detail}"))
            }
            ffi::SQLITE_CANTOPEN | ffi::SQLITE_NOTADB => StoreError::Unavailable(detail),
            ffi::SQLITE_CORRUPT => StoreError::Corrupt(detail),
            _ => StoreError::Db(detail),
        };
    }
    match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Db(other.to_string()),
    }
}

/// Whether a rusqlite error is a UNIQUE constraint violation.
pub(crate) fn sqlite_is_unique(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// What went wrong, in words: the server's own message for a server error (the driver's
/// `Display` says only "db error"), else the driver's text followed by its causes.
pub(crate) fn pg_cause(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        };
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        source = s.source();
    }
    msg
}

/// A tokio-postgres error as a store error.
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    if pg_is_lost(&e) {
        return StoreError::ConnectionLost(format!(
            "PostgreSQL connection closed: {}",
            pg_cause(&e)
        ));
    }
    let Some(db) = e.as_db_error() else {
        return StoreError::Db(pg_cause(&e));
    };
    let mut msg = db.message().to_string();
    if let Some(detail) = db.detail() {
        msg = format!("{msg} ({detail})");
    }
    match *db.code() {
        SqlState::FOREIGN_KEY_VIOLATION => {
            StoreError::NotFound(format!("the referenced connection ({msg})"))
        }
        SqlState::DATA_CORRUPTED | SqlState::INDEX_CORRUPTED => StoreError::Corrupt(msg),
        _ => StoreError::Db(msg),
    }
}

/// Whether a tokio-postgres error means the connection is gone: closed, broken
/// underneath (an I/O error), or its backend ended by the server (`pg_terminate_backend`,
/// a shutdown).
pub(crate) fn pg_is_lost(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code);
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Whether a tokio-postgres error is a UNIQUE constraint violation.
pub(crate) fn pg_is_unique(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// A failed blocking task (it panicked or was cancelled).
pub(crate) fn join(e: tokio::task::JoinError) -> StoreError {
    StoreError::Db(format!("database worker task failed: {e}"))
}
