//! A streaming JSON writer that produces Reddit-style output directly into a byte buffer.
//!
//! Reddit's API is served by Python's `json.dumps`: separators are `", "` and `": "`, non-ASCII
//! is written as `\uXXXX` (with surrogate pairs) and, in HTML-bearing fields, `<`, `>` and `&`
//! appear as `\u003C`, `\u003E`, `\u0026`. Without `raw_json=1` Reddit additionally HTML-escapes
//! `&`, `<`, `>` inside every string value (legacy behaviour); [`JsonWriter::legacy`] does that.

/// Writes JSON values into `out`, inserting commas between members automatically.
pub(crate) struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
    /// HTML-escape `&`, `<`, `>` in string values (Reddit without `raw_json=1`).
    pub(crate) legacy: bool,
    comma: bool,
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

impl<'a> JsonWriter<'a> {
    /// A writer appending to `out`.
    pub(crate) fn new(out: &'a mut Vec<u8>, legacy: bool) -> Self {
        JsonWriter {
            out,
            legacy,
            comma: false,
        }
    }

    fn sep(&mut self) {
        if self.comma {
            self.out.extend_from_slice(b", ");
        }
    }

    fn key(&mut self, k: &str) {
        self.sep();
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\": ");
        self.comma = false;
    }

    /// Opens an object (as a value in the current position).
    pub(crate) fn begin_obj(&mut self) {
        self.sep();
        self.out.push(b'{');
        self.comma = false;
    }

    /// Closes an object.
    pub(crate) fn end_obj(&mut self) {
        self.out.push(b'}');
        self.comma = true;
    }

    /// Opens an array (as a value in the current position).
    pub(crate) fn begin_arr(&mut self) {
        self.sep();
        self.out.push(b'[');
        self.comma = false;
    }

    /// Closes an array.
    pub(crate) fn end_arr(&mut self) {
        self.out.push(b']');
        self.comma = true;
    }

    /// `"k": {` — open an object member.
    pub(crate) fn obj(&mut self, k: &str) {
        self.key(k);
        self.begin_obj();
    }

    /// `"k": [` — open an array member.
    pub(crate) fn arr(&mut self, k: &str) {
        self.key(k);
        self.begin_arr();
    }

    /// A string member.
    pub(crate) fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.str_value(v, false);
    }

    /// A string member holding HTML (`<>&` written as `\u003C`-style escapes).
    pub(crate) fn html(&mut self, k: &str, v: &str) {
        self.key(k);
        self.str_value(v, true);
    }

    /// A string member or `null`.
    pub(crate) fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    /// A pre-rendered JSON member or `null`.
    pub(crate) fn opt_raw(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.raw(k, v),
            None => self.null(k),
        }
    }

    /// A `null` member.
    pub(crate) fn null(&mut self, k: &str) {
        self.key(k);
        self.raw_value("null");
    }

    /// A boolean member.
    pub(crate) fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.raw_value(if v { "true" } else { "false" });
    }

    /// An integer member.
    pub(crate) fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        self.sep();
        self.push_int(v);
        self.comma = true;
    }

    /// A whole-seconds timestamp member written as a float (`1718800000.0`).
    pub(crate) fn secs(&mut self, k: &str, v: i64) {
        self.int(k, v);
        self.out.extend_from_slice(b".0");
    }

    /// A member whose value is pre-rendered JSON text.
    pub(crate) fn raw(&mut self, k: &str, json: &str) {
        self.key(k);
        self.raw_value(json);
    }

    /// A pre-rendered JSON value at the current position.
    pub(crate) fn raw_value(&mut self, json: &str) {
        self.sep();
        self.out.extend_from_slice(json.as_bytes());
        self.comma = true;
    }

    fn push_int(&mut self, v: i64) {
        let mut buf = [0u8; 20];
        let mut n = buf.len();
        let neg = v < 0;
        let mut u = v.unsigned_abs();
        loop {
            n -= 1;
            buf[n] = b'0' + (u % 10) as u8;
            u /= 10;
            if u == 0 {
                break;
            }
        }
        if neg {
            self.out.push(b'-');
        }
        self.out.extend_from_slice(&buf[n..]);
    }

    /// A string value at the current position.
    pub(crate) fn str_value(&mut self, v: &str, html: bool) {
        self.sep();
        self.out.push(b'"');
        escape_into(self.out, v, self.legacy, html);
        self.out.push(b'"');
        self.comma = true;
    }
}

/// Byte classes: 0 plain, 1 always escaped, 2 escaped in HTML-safe or legacy mode.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if i < 0x20 || i >= 0x80 || i == b'"' as usize || i == b'\\' as usize {
            1
        } else if i == b'&' as usize || i == b'<' as usize || i == b'>' as usize {
            2
        } else {
            0
        };
        i += 1;
    }
    t
};

/// Appends the JSON-escaped body of `s` (without quotes) to `out`.
fn escape_into(out: &mut Vec<u8>, s: &str, legacy: bool, html: bool) {
    let b = s.as_bytes();
    let mask = if legacy || html { 3 } else { 1 };
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && CLASS[b[i] as usize] & mask == 0 {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        out.extend_from_slice(&b[start..i]);
        let c = b[i];
        if c >= 0x80 {
            let ch = s[i..].chars().next().unwrap_or('\u{FFFD}');
            let mut units = [0u16; 2];
            for u in ch.encode_utf16(&mut units) {
                push_u(out, *u, false);
            }
            i += ch.len_utf8();
        } else {
            escape_ascii(out, c, legacy);
            i += 1;
        }
        start = i;
    }
    out.extend_from_slice(&b[start..]);
}

fn escape_ascii(out: &mut Vec<u8>, c: u8, legacy: bool) {
    match c {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        b'&' if legacy => out.extend_from_slice(b"&amp;"),
        b'<' if legacy => out.extend_from_slice(b"&lt;"),
        b'>' if legacy => out.extend_from_slice(b"&gt;"),
        b'&' | b'<' | b'>' => push_u(out, c as u16, true),
        _ => push_u(out, c as u16, false),
    }
}

/// `\uXXXX`; Python writes lowercase hex, Reddit's HTML-safe escapes are uppercase.
fn push_u(out: &mut Vec<u8>, u: u16, upper: bool) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        let h = HEX[((u >> shift) & 0xF) as usize];
        out.push(if upper { h } else { h.to_ascii_lowercase() });
    }
}

/// Writes `v` as a JSON string literal (raw mode), for small ad-hoc documents.
pub(crate) fn quote(v: &str) -> String {
    let mut out = Vec::with_capacity(v.len() + 2);
    out.push(b'"');
    escape_into(&mut out, v, false, false);
    out.push(b'"');
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(legacy: bool, f: impl FnOnce(&mut JsonWriter<'_>)) -> String {
        let mut out = Vec::new();
        let mut w = JsonWriter::new(&mut out, legacy);
        f(&mut w);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reddit_style_output() {
        let s = render(false, |w| {
            w.begin_obj();
            w.str("a", "café 🎉 \"q\"\n");
            w.html("h", "<p>&amp;</p>");
            w.secs("t", 5);
            w.null("n");
            w.arr("l");
            w.end_arr();
            w.end_obj();
        });
        assert_eq!(
            s,
            r#"{"a": "caf\u00e9 \ud83c\udf89 \"q\"\n", "h": "\u003Cp\u003E\u0026amp;\u003C/p\u003E", "t": 5.0, "n": null, "l": []}"#
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "café 🎉 \"q\"\n");
        let legacy = render(true, |w| {
            w.begin_obj();
            w.str("u", "a?b=1&c=<2>");
            w.end_obj();
        });
        assert_eq!(legacy, r#"{"u": "a?b=1&amp;c=&lt;2&gt;"}"#);
    }
}
