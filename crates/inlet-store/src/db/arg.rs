//! What crosses the backend boundary: statement arguments ([`Arg`]) in, rows of owned
//! cells ([`Row`]) out. Each backend binds an [`Arg`] its own way (a time is RFC 3339
//! text on SQLite, `TIMESTAMPTZ` on PostgreSQL; a list is a JSON array on SQLite, a
//! `text[]` on PostgreSQL) and decodes its values into [`Cell`]s, so the shared logic
//! never sees a driver type.

use crate::codec::parse_ts;
use inlet_core::{ColType, StoreError, Timestamp, Value};

/// One statement argument.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    /// SQL NULL (of whatever type the statement expects).
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// A boolean (0/1 on SQLite).
    Bool(bool),
    /// Text (also JSON, for a JSON column).
    Text(&'a str),
    /// Bytes.
    Bytes(&'a [u8]),
    /// A point in time.
    Time(Timestamp),
    /// A list of text, read in SQL through [`crate::sql::Dialect::list`] and friends.
    List(Vec<&'a str>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Int(i64::from(v))
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}

impl From<Timestamp> for Arg<'_> {
    fn from(v: Timestamp) -> Self {
        Arg::Time(v)
    }
}

impl<'a> From<&'a [String]> for Arg<'a> {
    fn from(v: &'a [String]) -> Self {
        Arg::List(v.iter().map(String::as_str).collect())
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

impl<'a> From<&'a Value> for Arg<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => Arg::Null,
            Value::Text(s) => Arg::Text(s),
            Value::Int(i) => Arg::Int(*i),
            Value::Float(f) => Arg::Real(*f),
            Value::Bool(b) => Arg::Bool(*b),
            Value::Time(t) => Arg::Time(*t),
        }
    }
}

/// The arguments of a statement: `args![a, b, c]` converts each with [`Arg::from`].
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::db::Arg::from($a)),*]
    };
}
pub(crate) use args;

/// One value read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// SQL NULL.
    Null,
    /// An integer (SQLite keeps booleans so).
    Int(i64),
    /// A float.
    Real(f64),
    /// A boolean (PostgreSQL).
    Bool(bool),
    /// Text (SQLite keeps times so, as RFC 3339).
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A point in time (PostgreSQL).
    Time(Timestamp),
}

impl Cell {
    fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "NULL",
            Cell::Int(_) => "integer",
            Cell::Real(_) => "float",
            Cell::Bool(_) => "boolean",
            Cell::Text(_) => "text",
            Cell::Bytes(_) => "bytes",
            Cell::Time(_) => "time",
        }
    }
}

/// A type a [`Cell`] reads as; `None` when the cell holds something else.
pub(crate) trait FromCell: Sized {
    /// The value, or `Err(expected type)` when the cell holds another kind.
    fn from_cell(c: &Cell) -> Result<Self, &'static str>;
}

impl FromCell for i64 {
    fn from_cell(c: &Cell) -> Result<Self, &'static str> {
        match c {
            Cell::Int(i) => Ok(*i),
            _ => Err("an integer"),
        }
    }
}

impl FromCell for bool {
    fn from_cell(c: &Cell) -> Result<Self, &'static str> {
        match c {
            Cell::Bool(b) => Ok(*b),
            Cell::Int(0) => Ok(false),
            Cell::Int(1) => Ok(true),
            _ => Err("a boolean"),
        }
    }
}

impl FromCell for String {
    fn from_cell(c: &Cell) -> Result<Self, &'static str> {
        match c {
            Cell::Text(s) => Ok(s.clone()),
            _ => Err("text"),
        }
    }
}

impl FromCell for Vec<u8> {
    fn from_cell(c: &Cell) -> Result<Self, &'static str> {
        match c {
            Cell::Bytes(b) => Ok(b.clone()),
            _ => Err("bytes"),
        }
    }
}

impl FromCell for Timestamp {
    fn from_cell(c: &Cell) -> Result<Self, &'static str> {
        match c {
            Cell::Time(t) => Ok(*t),
            Cell::Text(s) => parse_ts(s, "").map_err(|_| "an RFC 3339 UTC time"),
            _ => Err("a time"),
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(c: &Cell) -> Result<Self, &'static str> {
        match c {
            Cell::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// One row read back: its cells in the statement's column order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("row has no column {i}")))
    }

    /// Column `i` as `T`; a value of another kind is corrupt.
    pub fn get<T: FromCell>(&self, i: usize) -> Result<T, StoreError> {
        let c = self.cell(i)?;
        T::from_cell(c).map_err(|want| {
            StoreError::Corrupt(format!("column {i}: expected {want}, found {}", c.kind()))
        })
    }

    /// Column `i` as a count (negative reads as 0).
    pub fn count(&self, i: usize) -> Result<u64, StoreError> {
        Ok(self.get::<i64>(i)?.max(0) as u64)
    }

    /// Column `i` of a record or derived table, decoded as `ty`; `what` names it in the
    /// error when it does not fit.
    pub fn value(&self, i: usize, ty: ColType, what: &str) -> Result<Value, StoreError> {
        let c = self.cell(i)?;
        let bad = || StoreError::Corrupt(format!("{what}: {} value in a {ty:?} column", c.kind()));
        Ok(match (ty, c) {
            (_, Cell::Null) => Value::Null,
            (ColType::Text, Cell::Text(s)) => Value::Text(s.clone()),
            (ColType::Int, Cell::Int(i)) => Value::Int(*i),
            (ColType::Float, Cell::Real(f)) => Value::Float(*f),
            (ColType::Float, Cell::Int(i)) => Value::Float(*i as f64),
            (ColType::Bool, Cell::Bool(b)) => Value::Bool(*b),
            (ColType::Bool, Cell::Int(0)) => Value::Bool(false),
            (ColType::Bool, Cell::Int(1)) => Value::Bool(true),
            (ColType::Time, Cell::Time(t)) => Value::Time(*t),
            (ColType::Time, Cell::Text(s)) => Value::Time(parse_ts(s, what)?),
            _ => return Err(bad()),
        })
    }
}

/// The first row's column 0, when there is a row.
pub(crate) fn first<T: FromCell>(rows: &[Row]) -> Result<Option<T>, StoreError> {
    rows.first().map(|r| r.get(0)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_their_types_and_refuse_others() {
        let r = Row(vec![
            Cell::Int(1),
            Cell::Text("2026-01-02T03:04:05.006Z".into()),
            Cell::Null,
            Cell::Text("x".into()),
        ]);
        assert!(r.get::<bool>(0).expect("bool"));
        assert_eq!(r.get::<i64>(0).expect("int"), 1);
        let t: Timestamp = r.get(1).expect("time from text");
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.006Z");
        assert_eq!(r.get::<Option<String>>(2).expect("null"), None);
        assert!(matches!(r.get::<i64>(3), Err(StoreError::Corrupt(_))));
        assert!(matches!(r.get::<i64>(9), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            r.value(3, ColType::Int, "t.c"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            r.value(0, ColType::Float, "t.c").expect("float"),
            Value::Float(1.0)
        );
    }

    #[test]
    fn options_and_values_become_args() {
        assert!(matches!(Arg::from(None::<i64>), Arg::Null));
        assert!(matches!(Arg::from(Some("a")), Arg::Text("a")));
        assert!(matches!(Arg::from(&Value::Bool(true)), Arg::Bool(true)));
        let ids = vec!["a".to_string(), "b".to_string()];
        assert!(matches!(Arg::from(ids.as_slice()), Arg::List(v) if v == ["a", "b"]));
    }
}
