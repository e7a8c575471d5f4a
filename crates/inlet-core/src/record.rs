//! Records: one provider item mapped onto a stream's typed columns, plus its raw JSON.

use crate::Timestamp;

/// A typed column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A point in time (stored as TIMESTAMPTZ in PostgreSQL, RFC 3339 text in SQLite).
    Time(Timestamp),
}

impl Value {
    /// Text or NULL.
    pub fn opt_text(s: Option<impl Into<String>>) -> Value {
        s.map_or(Value::Null, |s| Value::Text(s.into()))
    }
    /// The text inside, if this is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    fn hash_into(&self, h: &mut blake3::Hasher) {
        match self {
            Value::Null => h.update(&[0]),
            Value::Text(s) => h.update(&[1]).update(&(s.len() as u64).to_le_bytes()).update(s.as_bytes()),
            Value::Int(i) => h.update(&[2]).update(&i.to_le_bytes()),
            Value::Float(f) => h.update(&[3]).update(&f.to_bits().to_le_bytes()),
            Value::Bool(b) => h.update(&[4, *b as u8]),
            Value::Time(t) => h.update(&[5]).update(&t.0.to_le_bytes()),
        };
    }
}

/// A 128-bit content hash (the first 16 bytes of BLAKE3).
pub type ContentHash = [u8; 16];

/// One item of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The provider's id for the item; unique within (connection, stream table).
    pub id: String,
    /// Values of the stream's typed columns, in [`crate::StreamSpec::columns`] order.
    pub values: Vec<Value>,
    /// The provider's JSON for the item, exactly as received.
    pub raw: String,
    /// The time the engine orders a newest-first listing by (seconds), when there is one.
    pub sort_ts: Option<Timestamp>,
}

impl Record {
    /// A record without a sort time.
    pub fn new(id: impl Into<String>, values: Vec<Value>, raw: String) -> Self {
        Record { id: id.into(), values, raw, sort_ts: None }
    }

    /// Hash of everything the store writes for this record: unchanged hash, no write.
    pub fn content_hash(&self) -> ContentHash {
        let mut h = blake3::Hasher::new();
        h.update(self.id.as_bytes()).update(&[0xff]);
        for v in &self.values {
            v.hash_into(&mut h);
        }
        h.update(self.raw.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_with_any_field() {
        let base = Record::new("a", vec![Value::Int(1), Value::Null], "{}".into());
        let mut other = base.clone();
        other.values[0] = Value::Int(2);
        assert_ne!(base.content_hash(), other.content_hash());
        let mut other = base.clone();
        other.raw = "{ }".into();
        assert_ne!(base.content_hash(), other.content_hash());
        // Text("") and Null must differ, and value boundaries must not shift.
        let a = Record::new("a", vec![Value::Text("ab".into()), Value::Text("c".into())], "".into());
        let b = Record::new("a", vec![Value::Text("a".into()), Value::Text("bc".into())], "".into());
        assert_ne!(a.content_hash(), b.content_hash());
        assert_eq!(base.content_hash(), base.clone().content_hash());
    }
}
