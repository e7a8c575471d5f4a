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
    /// An unambiguous encoding (a tag, then a length for text), for hashing.
    fn encode_into(&self, buf: &mut Vec<u8>) {
        match self {
            Value::Null => buf.push(0),
            Value::Text(s) => {
                buf.push(1);
                buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
                buf.extend_from_slice(s.as_bytes());
            }
            Value::Int(i) => {
                buf.push(2);
                buf.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                buf.push(3);
                buf.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Bool(b) => buf.extend_from_slice(&[4, *b as u8]),
            Value::Time(t) => {
                buf.push(5);
                buf.extend_from_slice(&t.0.to_le_bytes());
            }
        }
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
        Record {
            id: id.into(),
            values,
            raw,
            sort_ts: None,
        }
    }

    /// Hash of everything the store writes for this record: unchanged hash, no write.
    pub fn content_hash(&self) -> ContentHash {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // One contiguous buffer and one hash call: many small hasher updates cost more
        // than the hashing itself.
        BUF.with(|b| {
            let mut buf = b.borrow_mut();
            buf.clear();
            buf.extend_from_slice(&(self.id.len() as u64).to_le_bytes());
            buf.extend_from_slice(self.id.as_bytes());
            for v in &self.values {
                v.encode_into(&mut buf);
            }
            buf.extend_from_slice(self.raw.as_bytes());
            let mut out = [0u8; 16];
            out.copy_from_slice(&blake3::hash(&buf).as_bytes()[..16]);
            out
        })
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
        let a = Record::new(
            "a",
            vec![Value::Text("ab".into()), Value::Text("c".into())],
            "".into(),
        );
        let b = Record::new(
            "a",
            vec![Value::Text("a".into()), Value::Text("bc".into())],
            "".into(),
        );
        assert_ne!(a.content_hash(), b.content_hash());
        assert_eq!(base.content_hash(), base.clone().content_hash());
    }
}
