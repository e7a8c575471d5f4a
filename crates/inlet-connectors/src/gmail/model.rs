//! Gmail's JSON: threads, messages and their MIME parts, mapped onto rows.
//!
//! A message's `payload` is a tree of parts; `body.data` is base64url (padding
//! optional). The text/plain and text/html parts that are not attachments are decoded and
//! joined (a part with a `filename` or an `attachmentId` is an attachment, whose metadata
//! goes to the `attachments` column). Headers are matched case-insensitively; the first
//! occurrence wins. Parsing is lenient: missing fields are empty, never an error, except a
//! message or thread without an `id`.

use inlet_core::{Record, Timestamp, Value};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A `threads.list` page.
#[derive(Debug, Deserialize)]
pub(crate) struct ThreadList {
    /// Absent when the result is empty (gmail.md §3).
    #[serde(default)]
    pub threads: Vec<Box<RawValue>>,
    #[serde(default, rename = "nextPageToken")]
    pub next_page_token: Option<String>,
}

/// The top-level fields of a thread (from `threads.list` or `threads.get`).
#[derive(Debug, Deserialize)]
pub(crate) struct ThreadHead {
    pub id: String,
    #[serde(default, rename = "historyId")]
    pub history_id: Option<String>,
    #[serde(default)]
    pub snippet: Option<String>,
}

/// A `threads.get` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ThreadFull {
    pub id: String,
    #[serde(default, rename = "historyId")]
    pub history_id: Option<String>,
    #[serde(default)]
    pub snippet: Option<String>,
    #[serde(default)]
    pub messages: Vec<Box<RawValue>>,
}

/// A `history.list` page.
#[derive(Debug, Deserialize)]
pub(crate) struct HistoryPage {
    #[serde(default)]
    pub history: Vec<HistoryRecord>,
    #[serde(default, rename = "nextPageToken")]
    pub next_page_token: Option<String>,
    #[serde(default, rename = "historyId")]
    pub history_id: Option<String>,
}

/// One history record: only the thread ids it touches matter.
#[derive(Debug, Deserialize)]
pub(crate) struct HistoryRecord {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub messages: Vec<MsgRef>,
    #[serde(default, rename = "messagesAdded")]
    pub messages_added: Vec<Change>,
    #[serde(default, rename = "messagesDeleted")]
    pub messages_deleted: Vec<Change>,
    #[serde(default, rename = "labelsAdded")]
    pub labels_added: Vec<Change>,
    #[serde(default, rename = "labelsRemoved")]
    pub labels_removed: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Change {
    pub message: MsgRef,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MsgRef {
    #[serde(default, rename = "threadId")]
    pub thread_id: Option<String>,
}

impl HistoryRecord {
    /// The thread ids this record touches, in order.
    pub fn threads(&self) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .chain(
                self.messages_added
                    .iter()
                    .chain(&self.messages_deleted)
                    .chain(&self.labels_added)
                    .chain(&self.labels_removed)
                    .map(|c| &c.message),
            )
            .filter_map(|m| m.thread_id.as_deref())
    }
}

/// A history id as a number (decimal text; `None` when it is not one).
pub(crate) fn hid(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// A thread's row: id, history id and snippet. `raw` is those three fields re-serialised
/// (the same text whether the thread came from `threads.list` or `threads.get`, whose
/// messages go to `gmail_messages`), so an unchanged thread is never rewritten.
pub(crate) fn thread_record(id: &str, history_id: Option<&str>, snippet: Option<&str>) -> Record {
    let raw = serde_json::json!({"id": id, "historyId": history_id, "snippet": snippet});
    Record::new(
        id.to_string(),
        vec![
            Value::opt_text(history_id.map(str::to_string)),
            Value::opt_text(snippet.map(str::to_string)),
        ],
        raw.to_string(),
    )
}

/// A `threads.list` item as a thread row.
pub(crate) fn map_thread_head(raw: &str) -> Result<Record, String> {
    let t: ThreadHead =
        serde_json::from_str(raw).map_err(|e| format!("unexpected Gmail thread: {e}"))?;
    Ok(thread_record(
        &t.id,
        t.history_id.as_deref(),
        t.snippet.as_deref(),
    ))
}

#[derive(Debug, Default, Deserialize)]
struct Header {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default, rename = "attachmentId")]
    attachment_id: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    data: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Part {
    #[serde(default, rename = "partId")]
    part_id: Option<String>,
    #[serde(default, rename = "mimeType")]
    mime_type: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(default)]
    body: Option<Body>,
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
struct Message {
    id: String,
    #[serde(default, rename = "threadId")]
    thread_id: Option<String>,
    #[serde(default, rename = "labelIds")]
    label_ids: Vec<String>,
    #[serde(default)]
    snippet: Option<String>,
    #[serde(default, rename = "historyId")]
    history_id: Option<String>,
    #[serde(default, rename = "internalDate")]
    internal_date: Option<serde_json::Value>,
    #[serde(default, rename = "sizeEstimate")]
    size_estimate: Option<i64>,
    #[serde(default)]
    payload: Option<Part>,
}

/// The decoded bodies and attachments of a part tree.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Bodies {
    pub plain: Vec<String>,
    pub html: Vec<String>,
    pub attachments: Vec<serde_json::Value>,
}

fn walk(part: &Part, out: &mut Bodies, depth: usize) {
    if depth > 64 {
        return;
    }
    let mime = part.mime_type.as_deref().unwrap_or("").to_ascii_lowercase();
    let filename = part.filename.as_deref().unwrap_or("");
    let body = part.body.as_ref();
    let attachment_id = body.and_then(|b| b.attachment_id.as_deref());
    if !filename.is_empty() || attachment_id.is_some() {
        out.attachments.push(serde_json::json!({
            "part_id": part.part_id,
            "attachment_id": attachment_id,
            "filename": filename,
            "mime_type": part.mime_type,
            "size": body.and_then(|b| b.size),
        }));
    } else if let Some(text) = body
        .and_then(|b| b.data.as_deref())
        .and_then(base64url_decode)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
    {
        if mime.starts_with("text/plain") {
            out.plain.push(text);
        } else if mime.starts_with("text/html") {
            out.html.push(text);
        }
    }
    for p in &part.parts {
        walk(p, out, depth + 1);
    }
}

/// Bodies and attachments of a payload.
#[cfg(test)]
pub(crate) fn bodies_of(payload: &serde_json::Value) -> Bodies {
    let part: Part = serde_json::from_value(payload.clone()).unwrap_or_default();
    let mut out = Bodies::default();
    walk(&part, &mut out, 0);
    out
}

/// Decodes base64url (`-`, `_`; standard `+`, `/` accepted too; padding optional).
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn internal_date(v: Option<&serde_json::Value>) -> Value {
    let ms = match v {
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    ms.map_or(Value::Null, |ms| Value::Time(Timestamp(ms)))
}

fn joined(parts: &[String]) -> Value {
    if parts.is_empty() {
        Value::Null
    } else {
        Value::Text(parts.join("\n"))
    }
}

/// A message of a `threads.get` answer as a `gmail_messages` row.
pub(crate) fn map_message(raw: &str, thread: &str) -> Result<Record, String> {
    let m: Message =
        serde_json::from_str(raw).map_err(|e| format!("unexpected Gmail message: {e}"))?;
    let payload = m.payload.unwrap_or_default();
    let mut b = Bodies::default();
    walk(&payload, &mut b, 0);
    let h = |n: &str| Value::opt_text(header(&payload.headers, n).map(str::to_string));
    let sort = match internal_date(m.internal_date.as_ref()) {
        Value::Time(t) => Some(t),
        _ => None,
    };
    let values = vec![
        Value::Text(m.thread_id.unwrap_or_else(|| thread.to_string())),
        Value::opt_text(m.history_id),
        Value::Text(m.label_ids.join(",")),
        Value::opt_text(m.snippet),
        internal_date(m.internal_date.as_ref()),
        m.size_estimate.map_or(Value::Null, Value::Int),
        h("From"),
        h("To"),
        h("Cc"),
        h("Subject"),
        h("Date"),
        h("Message-ID"),
        joined(&b.plain),
        joined(&b.html),
        Value::Int(b.attachments.len() as i64),
        Value::Text(serde_json::Value::Array(b.attachments).to_string()),
    ];
    Ok(Record {
        id: m.id,
        values,
        raw: raw.to_string(),
        sort_ts: sort,
    })
}

/// The label ids of a message (for the scope check), without parsing the rest.
pub(crate) fn message_labels(raw: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct L {
        #[serde(default, rename = "labelIds")]
        label_ids: Vec<String>,
    }
    serde_json::from_str::<L>(raw)
        .map(|l| l.label_ids)
        .unwrap_or_default()
}

/// A `labels.list` item as a `gmail_labels` row.
pub(crate) fn map_label(raw: &str) -> Result<Record, String> {
    #[derive(Deserialize)]
    struct L {
        id: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default, rename = "messageListVisibility")]
        mlv: Option<String>,
        #[serde(default, rename = "labelListVisibility")]
        llv: Option<String>,
    }
    let l: L = serde_json::from_str(raw).map_err(|e| format!("unexpected Gmail label: {e}"))?;
    Ok(Record::new(
        l.id,
        vec![
            Value::opt_text(l.name),
            Value::opt_text(l.kind),
            Value::opt_text(l.mlv),
            Value::opt_text(l.llv),
        ],
        raw.to_string(),
    ))
}

/// `labels.list`: `{"labels": [...]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct LabelList {
    #[serde(default)]
    pub labels: Vec<Box<RawValue>>,
}
