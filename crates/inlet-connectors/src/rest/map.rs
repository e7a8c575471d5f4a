//! Answers to rows: find the records in a page, and map each onto the stream's columns.

use super::pointer::Pointer;
use super::spec::ColumnType;
use inlet_core::{Record, Timestamp, Value};
use serde_json::value::RawValue;

/// The pointers of one stream's records.
#[derive(Debug, Clone)]
pub(crate) struct RecordMap {
    /// The array of records in the body.
    pub records: Pointer,
    /// The record inside each element.
    pub item: Option<Pointer>,
    /// The id inside the record.
    pub id: Pointer,
    /// Typed columns.
    pub columns: Vec<ColumnMap>,
    /// The listing's order time.
    pub cursor_field: Option<Pointer>,
}

/// One typed column: where its value is and how it is converted.
#[derive(Debug, Clone)]
pub(crate) struct ColumnMap {
    /// Column name.
    pub name: String,
    /// The value inside the record.
    pub pointer: Pointer,
    /// The column's type.
    pub ty: ColumnType,
    /// Join an array of strings into one text with this separator.
    pub join: Option<String>,
}

/// Why a body's records could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoRecords {
    /// Nothing at the pointer: the spec does not fit the API.
    Missing(String),
    /// Something that is not an array there (a proxy's or CDN's answer with a 200): worth
    /// a retry, like a body that is not JSON.
    NotArray(String),
}

/// The raw records of a body; `null` is an empty page, a missing array is an error.
pub(crate) fn raw_records<'a>(
    body: &'a RawValue,
    pointer: &Pointer,
) -> Result<Vec<&'a RawValue>, NoRecords> {
    let Some(arr) = pointer.get_raw(body).map_err(NoRecords::Missing)? else {
        return Err(NoRecords::Missing(format!(
            "the answer has no records at {pointer:?}",
            pointer = pointer.to_string()
        )));
    };
    if arr.get().trim() == "null" {
        return Ok(Vec::new());
    }
    serde_json::from_str(arr.get()).map_err(|_| {
        let found = serde_json::from_str(arr.get())
            .map_or_else(|_| "invalid JSON".to_string(), |v| short(&v));
        NoRecords::NotArray(format!(
            "the answer's {:?} is not an array of records (found {found})",
            pointer.to_string()
        ))
    })
}

impl RecordMap {
    /// Map one element of the records array.
    pub(crate) fn record(&self, element: &RawValue) -> Result<Record, String> {
        let raw = match &self.item {
            Some(p) => p
                .get_raw(element)?
                .ok_or_else(|| format!("a record has nothing at item {:?}", p.to_string()))?,
            None => element,
        };
        let v: serde_json::Value = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
        let id = match self.id.get(&v) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            other => {
                return Err(format!(
                    "a record has no usable id at {:?} (found {})",
                    self.id.to_string(),
                    other.map_or("nothing".to_string(), short)
                ));
            }
        };
        let mut values = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let found = c.pointer.get(&v);
            let value = match &c.join {
                Some(sep) => joined(found, sep),
                None => convert(found, c.ty),
            }
            .map_err(|e| format!("record {id:?}, column {}: {e}", c.name))?;
            values.push(value);
        }
        let sort_ts = match &self.cursor_field {
            Some(p) => match convert(p.get(&v), ColumnType::Time)
                .map_err(|e| format!("record {id:?}, cursor_field: {e}"))?
            {
                Value::Time(t) => Some(t),
                _ => None,
            },
            None => None,
        };
        Ok(Record {
            id,
            values,
            raw: raw.get().to_string(),
            sort_ts,
        })
    }
}

/// A value in an error message, cut short.
fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// An array of strings (or numbers, or booleans) as one text joined with `sep`; absent,
/// `null` and an empty array are NULL.
pub(crate) fn joined(v: Option<&serde_json::Value>, sep: &str) -> Result<Value, String> {
    use serde_json::Value as J;
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Value::Null);
    };
    let J::Array(items) = v else {
        return Err(format!("expected an array to join, got {}", short(v)));
    };
    if items.is_empty() {
        return Ok(Value::Null);
    }
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        parts.push(match item {
            J::String(s) => s.clone(),
            J::Number(n) => n.to_string(),
            J::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "expected an array of strings to join, found {}",
                    short(other)
                ));
            }
        });
    }
    Ok(Value::Text(parts.join(sep)))
}

/// A JSON value as a column of type `ty`; absent and `null` are NULL.
pub(crate) fn convert(v: Option<&serde_json::Value>, ty: ColumnType) -> Result<Value, String> {
    use serde_json::Value as J;
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Value::Null);
    };
    let wrong = |what: &str| format!("expected {what}, got {}", short(v));
    Ok(match ty {
        ColumnType::Text => match v {
            J::String(s) => Value::Text(s.clone()),
            other => Value::Text(other.to_string()),
        },
        ColumnType::Int => match v {
            J::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Value::Int(i),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => Value::Int(f as i64),
                _ => return Err(wrong("an integer")),
            },
            J::String(s) => Value::Int(s.trim().parse().map_err(|_| wrong("an integer"))?),
            J::Bool(b) => Value::Int(i64::from(*b)),
            _ => return Err(wrong("an integer")),
        },
        ColumnType::Float => match v {
            J::Number(n) => Value::Float(n.as_f64().ok_or_else(|| wrong("a number"))?),
            J::String(s) => Value::Float(s.trim().parse().map_err(|_| wrong("a number"))?),
            _ => return Err(wrong("a number")),
        },
        ColumnType::Bool => match v {
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) if n.as_i64() == Some(0) => Value::Bool(false),
            J::Number(n) if n.as_i64() == Some(1) => Value::Bool(true),
            J::String(s) if s == "true" => Value::Bool(true),
            J::String(s) if s == "false" => Value::Bool(false),
            _ => return Err(wrong("a boolean")),
        },
        ColumnType::Time => match v {
            J::Number(n) => Value::Time(
                n.as_f64()
                    .and_then(Timestamp::from_secs_f64)
                    .ok_or_else(|| wrong("a time"))?,
            ),
            J::String(s) => match Timestamp::parse_rfc3339(s) {
                Some(t) => Value::Time(t),
                None => Value::Time(
                    s.trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(Timestamp::from_secs_f64)
                        .ok_or_else(|| wrong("a time (epoch seconds or RFC 3339)"))?,
                ),
            },
            _ => return Err(wrong("a time (epoch seconds or RFC 3339)")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversions() {
        let t = |v: serde_json::Value, ty| convert(Some(&v), ty);
        assert_eq!(t(json!("x"), ColumnType::Text), Ok(Value::Text("x".into())));
        assert_eq!(
            t(json!([1, 2]), ColumnType::Text),
            Ok(Value::Text("[1,2]".into()))
        );
        assert_eq!(t(json!(7.0), ColumnType::Int), Ok(Value::Int(7)));
        assert_eq!(t(json!("42"), ColumnType::Int), Ok(Value::Int(42)));
        assert!(t(json!(7.5), ColumnType::Int).is_err());
        assert_eq!(t(json!(1), ColumnType::Bool), Ok(Value::Bool(true)));
        assert_eq!(
            t(json!(1_718_800_000.0), ColumnType::Time),
            Ok(Value::Time(Timestamp::from_secs(1_718_800_000)))
        );
        assert_eq!(
            t(json!("2024-06-19T12:26:40Z"), ColumnType::Time),
            Ok(Value::Time(Timestamp::from_secs(1_718_800_000)))
        );
        assert!(t(json!("soon"), ColumnType::Time).is_err());
        assert_eq!(convert(None, ColumnType::Int), Ok(Value::Null));
        assert_eq!(
            convert(Some(&json!(null)), ColumnType::Text),
            Ok(Value::Null)
        );
    }

    #[test]
    fn joins() {
        let j = |v: serde_json::Value| joined(Some(&v), ",");
        assert_eq!(j(json!(["a", "b"])), Ok(Value::Text("a,b".into())));
        assert_eq!(j(json!(["x", 2, true])), Ok(Value::Text("x,2,true".into())));
        assert_eq!(j(json!([])), Ok(Value::Null), "an empty array is NULL");
        assert_eq!(j(json!(null)), Ok(Value::Null));
        assert_eq!(joined(None, ","), Ok(Value::Null));
        assert!(j(json!("a,b")).is_err(), "not an array");
        assert!(j(json!([{"k": 1}])).is_err(), "objects are not joined");
    }
}
