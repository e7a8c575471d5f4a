//! The simulated mailbox: messages grouped into threads, labels, and the history log.

use crate::util::{Rng, mix};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

/// One label of `labels.list`.
#[derive(Debug, Clone)]
pub(crate) struct Label {
    pub id: String,
    pub name: String,
    pub system: bool,
}

/// An attachment part.
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub id: String,
    pub filename: String,
    pub mime: String,
    pub size: u64,
}

/// One message.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub id: String,
    pub thread: String,
    pub labels: Vec<String>,
    pub history_id: u64,
    pub internal_ms: i64,
    pub from: String,
    pub to: String,
    pub cc: Option<String>,
    pub subject: String,
    pub plain: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Padded base64url bodies (Gmail's data is sometimes padded, sometimes not).
    pub padded: bool,
    pub deleted: bool,
}

/// What a history record says happened.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Added,
    Deleted,
    LabelsAdded(Vec<String>),
    LabelsRemoved(Vec<String>),
}

/// One history record: one change of one message.
#[derive(Debug, Clone)]
pub(crate) struct Hist {
    pub id: u64,
    pub msg: String,
    pub thread: String,
    /// The message's labels after the change.
    pub labels: Vec<String>,
    pub event: Event,
}

/// The mailbox.
#[derive(Debug)]
pub(crate) struct Model {
    pub email: String,
    pub labels: Vec<Label>,
    /// Messages by id (deleted ones stay, marked).
    pub msgs: BTreeMap<String, Msg>,
    pub history: Vec<Hist>,
    /// The mailbox's current history id.
    pub history_id: u64,
    /// History before this id is forgotten: a `startHistoryId` below it is a 404.
    pub oldest_valid: u64,
    seed: u64,
    counter: u64,
    rng: Rng,
}

/// What [`Model::generate`] makes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub seed: u64,
    pub threads: u64,
    pub max_messages: u64,
    pub span_secs: i64,
}

pub(crate) const HIDDEN: [&str; 2] = ["TRASH", "SPAM"];

impl Model {
    pub fn generate(shape: Shape, now_ms: i64) -> Model {
        let sys = [
            "INBOX",
            "SENT",
            "TRASH",
            "SPAM",
            "UNREAD",
            "STARRED",
            "IMPORTANT",
            "DRAFT",
        ];
        let mut labels: Vec<Label> = sys
            .iter()
            .map(|l| Label {
                id: l.to_string(),
                name: l.to_string(),
                system: true,
            })
            .collect();
        for (id, name) in [("Label_1", "Work"), ("Label_2", "Receipts")] {
            labels.push(Label {
                id: id.into(),
                name: name.into(),
                system: false,
            });
        }
        let base = 100_000 + mix(shape.seed) % 10_000;
        let mut m = Model {
            email: "me@example.com".into(),
            labels,
            msgs: BTreeMap::new(),
            history: Vec::new(),
            history_id: base,
            oldest_valid: base,
            seed: shape.seed,
            counter: 0,
            rng: Rng::derive(shape.seed, 7, 0),
        };
        let span_ms = shape.span_secs.max(1) * 1000;
        for t in 0..shape.threads {
            let mut r = Rng::derive(shape.seed, 1, t);
            let start = now_ms - span_ms + (r.below(span_ms as u64) as i64);
            let mut labels = match t % 5 {
                4 => vec!["Label_2".to_string()],
                _ => vec!["INBOX".to_string()],
            };
            if t % 3 == 0 {
                labels.push("Label_1".into());
            }
            if r.below(2) == 0 {
                labels.push("UNREAD".into());
            }
            let n = 1 + r.below(shape.max_messages.max(1));
            let first = m.new_msg(None, labels, &format!("Topic {t}"), start, t % 4 == 1);
            for k in 1..n {
                let mine = k % 2 == 1;
                let labels = if mine {
                    vec!["SENT".to_string()]
                } else {
                    vec!["INBOX".to_string()]
                };
                let at = start + (k as i64) * 60_000;
                let id = m.new_msg(Some(&first), labels, &format!("Re: Topic {t}"), at, false);
                if mine && let Some(x) = m.msgs.get_mut(&id) {
                    x.from = "Me <me@example.com>".into();
                }
            }
        }
        m
    }

    fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("{:016x}", mix(self.seed ^ mix(self.counter)) | (1 << 60))
    }

    /// Bump the mailbox's history id by a gap of 1..=3 (ids are not contiguous).
    fn bump(&mut self) -> u64 {
        self.history_id += 1 + self.rng.below(3);
        self.history_id
    }

    /// Make a message (no history record); returns its id.
    pub fn new_msg(
        &mut self,
        thread: Option<&str>,
        labels: Vec<String>,
        subject: &str,
        at_ms: i64,
        attach: bool,
    ) -> String {
        let id = self.next_id();
        let thread = thread.map_or_else(|| id.clone(), str::to_string);
        let n = self.counter;
        let attachments = if attach {
            vec![
                Attachment {
                    id: format!("ANGjdJ{n:x}a"),
                    filename: format!("report-{n}.pdf"),
                    mime: "application/pdf".into(),
                    size: 10_000 + n * 7,
                },
                Attachment {
                    id: format!("ANGjdJ{n:x}b"),
                    filename: format!("photo-{n}.jpg"),
                    mime: "image/jpeg".into(),
                    size: 50_000 + n,
                },
            ]
        } else {
            Vec::new()
        };
        let plain = format!("Hello ✓ message {n} about {subject}.\r\nSecond line & more.");
        let html = (!n.is_multiple_of(3))
            .then(|| format!("<div dir=\"ltr\">Hello ✓ message {n} about <b>{subject}</b>.</div>"));
        self.msgs.insert(
            id.clone(),
            Msg {
                id: id.clone(),
                thread,
                labels,
                history_id: self.history_id,
                internal_ms: at_ms,
                from: format!("Person {} <p{}@example.org>", n % 7, n % 7),
                to: "Me <me@example.com>".into(),
                cc: n.is_multiple_of(4).then(|| format!("cc{n}@example.net")),
                subject: subject.to_string(),
                plain,
                html,
                attachments,
                padded: n.is_multiple_of(2),
                deleted: false,
            },
        );
        id
    }

    fn record(&mut self, msg: &str, event: Event) -> u64 {
        let id = self.bump();
        let Some(m) = self.msgs.get_mut(msg) else {
            return id;
        };
        m.history_id = id;
        let (thread, labels) = (m.thread.clone(), m.labels.clone());
        self.history.push(Hist {
            id,
            msg: msg.to_string(),
            thread,
            labels,
            event,
        });
        id
    }

    /// A new message now (a new thread when `thread` is `None`), with its history record.
    pub fn add(
        &mut self,
        thread: Option<&str>,
        labels: Vec<String>,
        subject: &str,
        at_ms: i64,
    ) -> String {
        let attach = self.counter.is_multiple_of(2);
        let id = self.new_msg(thread, labels, subject, at_ms, attach);
        self.record(&id, Event::Added);
        id
    }

    /// Add and remove labels of a live message; `false` when there is none.
    pub fn relabel(&mut self, msg: &str, add: &[&str], remove: &[&str]) -> bool {
        let Some(m) = self.msgs.get_mut(msg).filter(|m| !m.deleted) else {
            return false;
        };
        let added: Vec<String> = add
            .iter()
            .filter(|l| !m.labels.iter().any(|x| x == *l))
            .map(|l| l.to_string())
            .collect();
        let removed: Vec<String> = remove
            .iter()
            .filter(|l| m.labels.iter().any(|x| x == *l))
            .map(|l| l.to_string())
            .collect();
        m.labels.extend(added.iter().cloned());
        m.labels.retain(|l| !removed.contains(l));
        if !added.is_empty() {
            self.record(msg, Event::LabelsAdded(added));
        }
        if !removed.is_empty() {
            self.record(msg, Event::LabelsRemoved(removed));
        }
        true
    }

    /// Delete a message for good; `false` when there is none.
    pub fn delete(&mut self, msg: &str) -> bool {
        let Some(m) = self.msgs.get_mut(msg).filter(|m| !m.deleted) else {
            return false;
        };
        m.deleted = true;
        self.record(msg, Event::Deleted);
        true
    }

    /// Live messages of a thread, oldest first.
    pub fn thread_msgs(&self, thread: &str) -> Vec<&Msg> {
        let mut v: Vec<&Msg> = self
            .msgs
            .values()
            .filter(|m| m.thread == thread && !m.deleted)
            .collect();
        v.sort_by(|a, b| (a.internal_ms, &a.id).cmp(&(b.internal_ms, &b.id)));
        v
    }

    /// Ids of the threads with a live message, newest activity first.
    pub fn thread_ids(&self) -> Vec<String> {
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for m in self.msgs.values().filter(|m| !m.deleted) {
            let e = latest.entry(m.thread.as_str()).or_insert(i64::MIN);
            *e = (*e).max(m.internal_ms);
        }
        let mut v: Vec<(&str, i64)> = latest.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(a.0)));
        v.into_iter().map(|(t, _)| t.to_string()).collect()
    }

    /// A thread's history id: the newest record of any of its messages, deleted ones
    /// included (a deletion changes the thread).
    pub fn thread_history_id(&self, thread: &str) -> u64 {
        self.msgs
            .values()
            .filter(|m| m.thread == thread)
            .map(|m| m.history_id)
            .max()
            .unwrap_or(0)
    }

    /// Whether `threads.list` with these `labelIds` lists the thread.
    pub fn thread_listed(&self, thread: &str, label_ids: &[String], spam_trash: bool) -> bool {
        self.thread_msgs(thread).iter().any(|m| {
            label_ids.iter().all(|l| m.labels.contains(l))
                && (spam_trash || !m.labels.iter().any(|l| HIDDEN.contains(&l.as_str())))
        })
    }

    /// The snippet of a thread: its newest message's.
    pub fn thread_snippet(&self, thread: &str) -> String {
        self.thread_msgs(thread)
            .last()
            .map(|m| snippet(m))
            .unwrap_or_default()
    }

    /// Live messages and threads.
    pub fn totals(&self) -> (usize, usize) {
        let live: Vec<&Msg> = self.msgs.values().filter(|m| !m.deleted).collect();
        let threads: HashSet<&str> = live.iter().map(|m| m.thread.as_str()).collect();
        (live.len(), threads.len())
    }
}

/// A message's snippet (HTML entities encoded, as Gmail does).
pub(crate) fn snippet(m: &Msg) -> String {
    let first = m.plain.lines().next().unwrap_or("");
    first
        .chars()
        .take(100)
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// base64url of `s`, padded or not.
pub(crate) fn b64url(s: &[u8], pad: bool) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(s.len() * 4 / 3 + 4);
    for c in s.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        for i in 0..=c.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if pad {
            for _ in c.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

/// How much of a message `threads.get` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Full,
    Metadata,
    Minimal,
}

fn text_part(part_id: &str, mime: &str, text: &str, pad: bool) -> Value {
    json!({"partId": part_id, "mimeType": mime, "filename": "",
           "headers": [{"name": "Content-Type", "value": format!("{mime}; charset=\"UTF-8\"")}],
           "body": {"size": text.len(), "data": b64url(text.as_bytes(), pad)}})
}

/// A message as `threads.get` serves it.
pub(crate) fn message_json(m: &Msg, format: Format, only: &[String]) -> Value {
    let mut v = json!({
        "id": m.id, "threadId": m.thread, "labelIds": m.labels, "snippet": snippet(m),
        "historyId": m.history_id.to_string(), "internalDate": m.internal_ms.to_string(),
        "sizeEstimate": 800 + m.plain.len() + m.html.as_ref().map_or(0, String::len)
            + m.attachments.iter().map(|a| a.size as usize).sum::<usize>(),
    });
    if format == Format::Minimal {
        return v;
    }
    let date = inlet_core::Timestamp(m.internal_ms).to_string();
    let mut headers = vec![
        json!({"name": "Delivered-To", "value": "me@example.com"}),
        json!({"name": "Date", "value": date}),
        json!({"name": "From", "value": m.from}),
        json!({"name": "To", "value": m.to}),
    ];
    if let Some(cc) = &m.cc {
        headers.push(json!({"name": "Cc", "value": cc}));
    }
    headers.push(json!({"name": "Subject", "value": m.subject}));
    headers.push(json!({"name": "Message-ID", "value": format!("<{}@mail.example.com>", m.id)}));
    if format == Format::Metadata {
        let headers: Vec<Value> = headers
            .into_iter()
            .filter(|h| {
                only.is_empty()
                    || only.iter().any(|o| {
                        h["name"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(o))
                    })
            })
            .collect();
        v["payload"] = json!({"partId": "", "mimeType": "multipart/alternative", "filename": "",
                              "headers": headers});
        return v;
    }
    let alt = match &m.html {
        Some(h) => json!({"partId": "0", "mimeType": "multipart/alternative", "filename": "",
                          "headers": [], "body": {"size": 0},
                          "parts": [text_part("0.0", "text/plain", &m.plain, m.padded),
                                    text_part("0.1", "text/html", h, m.padded)]}),
        None => text_part("0", "text/plain", &m.plain, m.padded),
    };
    let payload = if m.attachments.is_empty() {
        let mut p = alt;
        p["partId"] = json!("");
        p["headers"] = Value::Array(headers);
        p
    } else {
        let mut parts = vec![alt];
        for (i, a) in m.attachments.iter().enumerate() {
            parts.push(json!({"partId": (i + 1).to_string(), "mimeType": a.mime,
                "filename": a.filename,
                "headers": [{"name": "Content-Disposition",
                             "value": format!("attachment; filename=\"{}\"", a.filename)}],
                "body": {"attachmentId": a.id, "size": a.size}}));
        }
        json!({"partId": "", "mimeType": "multipart/mixed", "filename": "", "headers": headers,
               "body": {"size": 0}, "parts": parts})
    };
    v["payload"] = payload;
    v
}
