//! The bulk write of a page on PostgreSQL: one `INSERT ... SELECT FROM UNNEST(...)` (or
//! `UPDATE ... FROM UNNEST(...)`) statement of column arrays.

use crate::codec::to_system;
use crate::db::RowWrite;
use crate::error::pg as db_err;
use inlet_core::{ColType, Record, StoreError, Value};
use std::time::SystemTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

type Param<'a> = &'a (dyn ToSql + Sync);

/// The values of one typed column over the rows of a page, as a PostgreSQL array.
enum ColArray<'a> {
    Text(Vec<Option<&'a str>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Time(Vec<Option<SystemTime>>),
}

impl ColArray<'_> {
    fn param(&self) -> Param<'_> {
        match self {
            ColArray::Text(v) => v,
            ColArray::Int(v) => v,
            ColArray::Float(v) => v,
            ColArray::Bool(v) => v,
            ColArray::Time(v) => v,
        }
    }
}

/// Column `i` of each row (values were validated by `dedupe`).
fn column<'a>(ty: ColType, i: usize, rows: &[(&'a Record, [u8; 16])]) -> ColArray<'a> {
    let vals = rows.iter().map(move |(r, _)| &r.values[i]);
    match ty {
        ColType::Text => ColArray::Text(vals.map(|v| v.as_text()).collect()),
        ColType::Int => ColArray::Int(
            vals.map(|v| match v {
                Value::Int(x) => Some(*x),
                _ => None,
            })
            .collect(),
        ),
        ColType::Float => ColArray::Float(
            vals.map(|v| match v {
                Value::Float(f) => Some(*f),
                Value::Int(i) => Some(*i as f64),
                _ => None,
            })
            .collect(),
        ),
        ColType::Bool => ColArray::Bool(
            vals.map(|v| match v {
                Value::Bool(b) => Some(*b),
                _ => None,
            })
            .collect(),
        ),
        ColType::Time => ColArray::Time(
            vals.map(|v| match v {
                Value::Time(t) => Some(to_system(*t)),
                _ => None,
            })
            .collect(),
        ),
    }
}

/// Insert (or rewrite) `rows` with the prepared bulk statement `st` (see
/// [`crate::sql::pg_insert`]): connection, ids, one array per typed column, raws,
/// hashes, at.
pub(super) async fn write_rows(
    client: &Client,
    st: &Statement,
    w: &RowWrite<'_>,
) -> Result<(), StoreError> {
    let (spec, conn, rows) = (w.spec, w.conn, w.rows);
    let ids: Vec<&str> = rows.iter().map(|(r, _)| r.id.as_str()).collect();
    let cols: Vec<ColArray<'_>> = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| column(c.ty, i, rows))
        .collect();
    let raws: Vec<&str> = rows.iter().map(|(r, _)| r.raw.as_str()).collect();
    let hashes: Vec<&[u8]> = rows.iter().map(|(_, h)| h.as_slice()).collect();
    let at = to_system(w.at);
    let mut p: Vec<Param<'_>> = vec![&conn, &ids];
    p.extend(cols.iter().map(ColArray::param));
    p.extend([&raws as Param<'_>, &hashes, &at]);
    client.execute(st, &p).await.map_err(db_err)?;
    Ok(())
}
