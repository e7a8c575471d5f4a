//! JSON pointers (`/data/children`, RFC 6901) and their dotted shorthand (`data.children`),
//! read over raw JSON text so records keep the provider's exact bytes.

use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// A parsed pointer: the reference tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer(Vec<String>);

impl Pointer {
    /// Parse `/a/b~1c` (RFC 6901), `a.b` (dots), or `""` (the whole document).
    pub fn parse(s: &str) -> Result<Pointer, String> {
        if s.is_empty() {
            return Ok(Pointer(Vec::new()));
        }
        if let Some(rest) = s.strip_prefix('/') {
            let mut out = Vec::new();
            for tok in rest.split('/') {
                let mut t = String::with_capacity(tok.len());
                let mut chars = tok.chars();
                while let Some(c) = chars.next() {
                    if c == '~' {
                        match chars.next() {
                            Some('0') => t.push('~'),
                            Some('1') => t.push('/'),
                            _ => {
                                return Err(format!(
                                    "{s:?} is not a JSON pointer (~ must be followed by 0 or 1)"
                                ));
                            }
                        }
                    } else {
                        t.push(c);
                    }
                }
                out.push(t);
            }
            return Ok(Pointer(out));
        }
        if s.split('.').any(str::is_empty) {
            return Err(format!(
                "{s:?} is neither a JSON pointer (/a/b) nor a dotted path (a.b)"
            ));
        }
        Ok(Pointer(s.split('.').map(str::to_string).collect()))
    }

    /// The whole document.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at this pointer in a parsed document.
    pub fn get<'a>(&self, v: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        let mut cur = v;
        for t in &self.0 {
            cur = match cur {
                serde_json::Value::Object(m) => m.get(t)?,
                serde_json::Value::Array(a) => a.get(t.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The raw text at this pointer in raw JSON: `Ok(None)` when it is absent.
    pub fn get_raw<'a>(&self, raw: &'a RawValue) -> Result<Option<&'a RawValue>, String> {
        let mut cur = raw;
        for t in &self.0 {
            let text = cur.get().trim_start();
            cur = if text.starts_with('{') {
                let m: BTreeMap<String, &RawValue> =
                    serde_json::from_str(cur.get()).map_err(|e| e.to_string())?;
                match m.get(t) {
                    Some(v) => v,
                    None => return Ok(None),
                }
            } else if text.starts_with('[') {
                let a: Vec<&RawValue> =
                    serde_json::from_str(cur.get()).map_err(|e| e.to_string())?;
                match t.parse::<usize>().ok().and_then(|i| a.get(i)) {
                    Some(v) => v,
                    None => return Ok(None),
                }
            } else {
                return Ok(None);
            };
        }
        Ok(Some(cur))
    }
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for t in &self.0 {
            write!(f, "/{}", t.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            Pointer::parse("data.children").expect("dotted"),
            Pointer::parse("/data/children").expect("pointer")
        );
        assert_eq!(
            Pointer::parse("/a~1b/c~0").expect("escapes").0,
            ["a/b", "c~"]
        );
        assert!(Pointer::parse("").expect("root").is_root());
        assert!(Pointer::parse("a..b").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        assert_eq!(Pointer::parse("a.b").expect("p").to_string(), "/a/b");
    }

    #[test]
    fn reads_raw_text_exactly() {
        let doc: Box<RawValue> = serde_json::from_str(
            r#"{"data": {"after": "t4_9", "children": [{"kind": "t4", "data": {"b": 1,  "a": 2.50}}]}}"#,
        )
        .expect("json");
        let p = Pointer::parse("data.children.0.data").expect("p");
        assert_eq!(
            p.get_raw(&doc).expect("walk").map(RawValue::get),
            Some(r#"{"b": 1,  "a": 2.50}"#)
        );
        let missing = Pointer::parse("/data/nope").expect("p");
        assert!(missing.get_raw(&doc).expect("walk").is_none());
        let v: serde_json::Value = serde_json::from_str(doc.get()).expect("json");
        assert_eq!(
            Pointer::parse("/data/after").expect("p").get(&v),
            Some(&serde_json::json!("t4_9"))
        );
    }
}
