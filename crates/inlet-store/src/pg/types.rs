//! Binding [`Arg`]s to PostgreSQL parameters and decoding result columns into
//! [`Cell`]s, by the types the server reports.

use crate::codec::{from_system, to_system};
use crate::db::{Arg, Cell, Row};
use bytes::{BufMut, BytesMut};
use inlet_core::StoreError;
use std::error::Error;
use std::time::SystemTime;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Arg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let ty = base(ty);
        match self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => Err(format!("an integer does not fit a {ty} parameter").into()),
            },
            Arg::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => Err(format!("a float does not fit a {ty} parameter").into()),
            },
            Arg::Bool(b) => b.to_sql(ty, out),
            Arg::Text(s) => match *ty {
                // jsonb's binary form is a version byte, then the JSON text.
                Type::JSONB => {
                    out.put_u8(1);
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSON => {
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                _ => s.to_sql(ty, out),
            },
            Arg::Bytes(b) => b.to_sql(ty, out),
            Arg::Time(t) => to_system(*t).to_sql(ty, out),
            Arg::List(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The type under a domain (information_schema's columns are domains over text).
fn base(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(inner) => base(inner),
        _ => ty,
    }
}

/// JSON or jsonb read as its text.
struct JsonText(String);

impl<'a> FromSql<'a> for JsonText {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let text = match *ty {
            Type::JSONB => raw.strip_prefix(&[1]).ok_or("unknown jsonb version")?,
            _ => raw,
        };
        Ok(JsonText(String::from_utf8(text.to_vec())?))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }
}

/// A result row as cells.
pub(super) fn row(r: &tokio_postgres::Row) -> Result<Row, StoreError> {
    (0..r.len())
        .map(|i| cell(r, i))
        .collect::<Result<_, _>>()
        .map(Row)
}

fn cell(r: &tokio_postgres::Row, i: usize) -> Result<Cell, StoreError> {
    let col = &r.columns()[i];
    let bad = |e: tokio_postgres::Error| {
        StoreError::Corrupt(format!(
            "column {}: {}",
            col.name(),
            crate::error::pg_cause(&e)
        ))
    };
    let ty = base(col.type_()).clone();
    let cell = match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i).map_err(bad)?.map(Cell::Int),
        Type::INT4 => r
            .try_get::<_, Option<i32>>(i)
            .map_err(bad)?
            .map(|v| Cell::Int(v.into())),
        Type::INT2 => r
            .try_get::<_, Option<i16>>(i)
            .map_err(bad)?
            .map(|v| Cell::Int(v.into())),
        Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map_err(bad)?.map(Cell::Real),
        Type::FLOAT4 => r
            .try_get::<_, Option<f32>>(i)
            .map_err(bad)?
            .map(|v| Cell::Real(v.into())),
        Type::BOOL => r
            .try_get::<_, Option<bool>>(i)
            .map_err(bad)?
            .map(Cell::Bool),
        Type::BYTEA => r
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(bad)?
            .map(Cell::Bytes),
        Type::TIMESTAMPTZ | Type::TIMESTAMP => r
            .try_get::<_, Option<SystemTime>>(i)
            .map_err(bad)?
            .map(|t| Cell::Time(from_system(t))),
        Type::JSON | Type::JSONB => r
            .try_get::<_, Option<JsonText>>(i)
            .map_err(bad)?
            .map(|j| Cell::Text(j.0)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => r
            .try_get::<_, Option<String>>(i)
            .map_err(bad)?
            .map(Cell::Text),
        other => {
            return Err(StoreError::Corrupt(format!(
                "column {}: type {other} is not read by inlet",
                col.name()
            )));
        }
    };
    Ok(cell.unwrap_or(Cell::Null))
}
