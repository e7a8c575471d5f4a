//! Binding [`Value`]s to SQLite parameters and reading them back.

use crate::codec::parse_ts;
use crate::error::sqlite as db_err;
use inlet_core::{ColType, StoreError, Timestamp, Value};
use rusqlite::types::{ToSqlOutput, Value as Sv, ValueRef};
use rusqlite::{Row, ToSql};

/// A [`Value`] as a SQLite parameter (text borrowed, times as RFC 3339, bools 0/1).
pub(super) struct Bind<'a>(pub &'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(i) => ToSqlOutput::Owned(Sv::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(Sv::Real(*f)),
            Value::Bool(b) => ToSqlOutput::Owned(Sv::Integer(i64::from(*b))),
            Value::Time(t) => ToSqlOutput::Owned(Sv::Text(t.to_string())),
        })
    }
}

/// Column `idx` of `row` decoded as `ty`; anything else is corrupt.
pub(super) fn read_value(
    row: &Row<'_>,
    idx: usize,
    ty: ColType,
    what: &str,
) -> Result<Value, StoreError> {
    let v = row.get_ref(idx).map_err(db_err)?;
    let bad = || {
        StoreError::Corrupt(format!(
            "{what}: {:?} value in a {ty:?} column",
            v.data_type()
        ))
    };
    Ok(match (ty, v) {
        (_, ValueRef::Null) => Value::Null,
        (ColType::Text, ValueRef::Text(b)) => Value::Text(text(b, what)?),
        (ColType::Int, ValueRef::Integer(i)) => Value::Int(i),
        (ColType::Float, ValueRef::Real(f)) => Value::Float(f),
        (ColType::Float, ValueRef::Integer(i)) => Value::Float(i as f64),
        (ColType::Bool, ValueRef::Integer(0)) => Value::Bool(false),
        (ColType::Bool, ValueRef::Integer(1)) => Value::Bool(true),
        (ColType::Time, ValueRef::Text(b)) => Value::Time(parse_ts(&text(b, what)?, what)?),
        _ => return Err(bad()),
    })
}

fn text(b: &[u8], what: &str) -> Result<String, StoreError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("{what}: text is not UTF-8")))
}

/// Column `idx` as a required timestamp.
pub(super) fn ts(row: &Row<'_>, idx: usize, what: &str) -> Result<Timestamp, StoreError> {
    let s: String = row.get(idx).map_err(db_err)?;
    parse_ts(&s, what)
}

/// Column `idx` as an optional timestamp.
pub(super) fn opt_ts(
    row: &Row<'_>,
    idx: usize,
    what: &str,
) -> Result<Option<Timestamp>, StoreError> {
    let s: Option<String> = row.get(idx).map_err(db_err)?;
    crate::codec::parse_opt_ts(s, what)
}

/// Column `idx`, mapping decode failures to store errors.
pub(super) fn get<T: rusqlite::types::FromSql>(row: &Row<'_>, idx: usize) -> Result<T, StoreError> {
    row.get(idx).map_err(db_err)
}

/// An optional timestamp as text.
pub(super) fn ts_text(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.to_string())
}
