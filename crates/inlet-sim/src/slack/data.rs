//! The simulated workspace: users, conversations, messages and thread replies, in memory.

use crate::util::Rng;
use serde_json::{Value, json};

/// A message `ts` in microseconds since the epoch.
pub(crate) type Ts = i64;

/// The `ts` string of `t`: seconds, a dot, six digits.
pub(crate) fn ts_str(t: Ts) -> String {
    format!("{}.{:06}", t.div_euclid(1_000_000), t.rem_euclid(1_000_000))
}

/// Parses a `ts` string (`"1718800000.123456"`, `"1718800000"`) as a decimal, never a
/// float; `None` when it is not one.
pub(crate) fn parse_ts(s: &str) -> Option<Ts> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 6 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros = format!("{frac:0<6}").parse::<i64>().ok()?;
    Some(secs.parse::<i64>().ok()? * 1_000_000 + micros)
}

/// One message (top-level or reply).
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub ts: Ts,
    pub user: String,
    pub text: String,
    /// Edit time and editor, once edited.
    pub edited: Option<(String, Ts)>,
    pub deleted: bool,
    /// Replies, oldest first (only on thread parents).
    pub replies: Vec<Msg>,
    /// The parent's ts (replies only).
    pub thread_ts: Option<Ts>,
    /// An attached file (`files[]`), by index into the file kinds.
    pub file: Option<u64>,
}

/// The kinds of generated files: name stem, extension (filetype), mimetype.
const FILE_KINDS: [(&str, &str, &str); 2] = [
    ("photo", "png", "image/png"),
    ("notes", "pdf", "application/pdf"),
];

/// A generated file of message `ts`: its id, name, mimetype and bytes.
pub(crate) fn file_of(ts: Ts, kind: u64) -> (String, String, &'static str, Vec<u8>) {
    let (stem, ext, mime) = FILE_KINDS[(kind % 2) as usize];
    let id = format!("F0SIM{:X}", ts.rem_euclid(1 << 40));
    let name = format!("{stem}-{}.{ext}", ts.rem_euclid(100_000));
    let len = 64 + (ts.rem_euclid(97) as usize) * 3;
    let bytes: Vec<u8> = match ext {
        "png" => b"\x89PNG\r\n\x1a\n".to_vec(),
        _ => b"%PDF-1.4\n".to_vec(),
    }
    .into_iter()
    .chain((0..len).map(|i| (ts as usize).wrapping_add(i * 31) as u8))
    .collect();
    (id, name, mime, bytes)
}

impl Msg {
    fn new(ts: Ts, user: String, text: String) -> Self {
        Msg {
            ts,
            user,
            text,
            edited: None,
            deleted: false,
            replies: Vec::new(),
            thread_ts: None,
            file: None,
        }
    }

    /// Live replies, oldest first.
    pub(crate) fn live_replies(&self) -> impl Iterator<Item = &Msg> {
        self.replies.iter().filter(|r| !r.deleted)
    }

    /// Whether history lists it: live, or a deleted parent with surviving replies
    /// (a `tombstone`).
    pub(crate) fn listed(&self) -> bool {
        !self.deleted || self.live_replies().next().is_some()
    }

    /// The message JSON as history (`parent`) or replies serve it.
    pub(crate) fn json(&self, team: &str, parent_user: Option<&str>) -> Value {
        if self.deleted {
            return json!({"type": "message", "subtype": "tombstone", "text": "This message was deleted.",
                "user": "USLACKBOT", "hidden": true, "ts": ts_str(self.ts), "thread_ts": ts_str(self.ts),
                "reply_count": self.live_replies().count(),
                "latest_reply": self.live_replies().last().map(|r| ts_str(r.ts)), "team": team});
        }
        let mut v = json!({"type": "message", "user": self.user, "text": self.text,
            "ts": ts_str(self.ts), "team": team});
        let o = v.as_object_mut().expect("object");
        if let Some(kind) = self.file {
            let (id, name, mime, bytes) = file_of(self.ts, kind);
            let ext = name.rsplit('.').next().unwrap_or("");
            let private = format!("https://files.slack.com/files-pri/{team}-{id}/{name}");
            let download = format!("https://files.slack.com/files-pri/{team}-{id}/download/{name}");
            o.insert(
                "files".into(),
                json!([{"id": id, "created": self.ts / 1_000_000,
                "timestamp": self.ts / 1_000_000, "name": name, "title": name, "mimetype": mime,
                "filetype": ext, "pretty_type": ext.to_uppercase(), "user": self.user,
                "mode": "hosted", "editable": false, "is_external": false,
                "external_type": "", "size": bytes.len(), "url_private": private,
                "url_private_download": download,
                "permalink": format!("https://sim.slack.com/files/{}/{id}/{name}", self.user)}]),
            );
            o.insert("upload".into(), json!(false));
        }
        if let Some((user, at)) = &self.edited {
            o.insert("edited".into(), json!({"user": user, "ts": ts_str(*at)}));
        }
        if let Some(p) = self.thread_ts {
            o.insert("thread_ts".into(), json!(ts_str(p)));
            o.insert("parent_user_id".into(), json!(parent_user.unwrap_or("")));
        } else if self.live_replies().next().is_some() {
            let mut users: Vec<&str> = Vec::new();
            for r in self.live_replies() {
                if !users.contains(&r.user.as_str()) {
                    users.push(&r.user);
                }
            }
            o.insert("thread_ts".into(), json!(ts_str(self.ts)));
            o.insert("reply_count".into(), json!(self.live_replies().count()));
            o.insert("reply_users_count".into(), json!(users.len()));
            o.insert("reply_users".into(), json!(users));
            let latest = self.live_replies().last().map(|r| ts_str(r.ts));
            o.insert("latest_reply".into(), json!(latest));
        }
        v
    }
}

/// Which conversations `conversations.list` calls a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Public,
    Private,
    Im,
}

impl Kind {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Public => "public_channel",
            Kind::Private => "private_channel",
            Kind::Im => "im",
        }
    }
}

/// One conversation.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub created: i64,
    pub archived: bool,
    /// Messages, oldest first.
    pub messages: Vec<Msg>,
}

impl Channel {
    pub(crate) fn json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "is_channel": self.kind == Kind::Public,
            "is_group": self.kind == Kind::Private, "is_im": self.kind == Kind::Im,
            "is_mpim": false, "is_private": self.kind != Kind::Public,
            "is_archived": self.archived, "is_member": true, "created": self.created,
            "updated": self.created * 1000, "num_members": 3,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": format!("about {}", self.name), "creator": "", "last_set": 0}})
    }

    pub(crate) fn find(&self, ts: Ts) -> Option<usize> {
        self.messages.binary_search_by_key(&ts, |m| m.ts).ok()
    }
}

/// One user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: String,
    pub name: String,
    pub real_name: String,
    pub deleted: bool,
}

impl User {
    pub(crate) fn json(&self, team: &str) -> Value {
        json!({"id": self.id, "team_id": team, "name": self.name, "deleted": self.deleted,
            "real_name": self.real_name, "is_bot": false, "is_admin": false, "tz": "Europe/Berlin",
            "profile": {"real_name": self.real_name, "display_name": self.name}, "updated": 1_700_000_000})
    }
}

/// What the simulator generates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub seed: u64,
    pub channels: u64,
    pub messages_per_channel: u64,
    pub threads_per_channel: u64,
    pub replies_per_thread: u64,
    pub users: u64,
    pub span_secs: i64,
}

/// The whole workspace.
#[derive(Debug)]
pub(crate) struct Model {
    pub users: Vec<User>,
    pub channels: Vec<Channel>,
    /// The last ts handed out (ts are unique and increasing).
    last_ts: Ts,
}

impl Model {
    /// Generates a workspace whose messages lie in the `span_secs` before `now_ms`.
    pub(crate) fn generate(s: Shape, now_ms: i64) -> Model {
        let mut rng = Rng::derive(s.seed, 0x51ac, 0);
        let users: Vec<User> = (0..s.users.max(1))
            .map(|i| User {
                id: format!("U0SIM{i:04}"),
                name: format!("user{i}"),
                real_name: format!("Sim User {i}"),
                deleted: false,
            })
            .collect();
        let now = now_ms * 1000;
        let start = now - s.span_secs * 1_000_000;
        let mut channels = Vec::new();
        for c in 0..s.channels {
            let kind = match c % 5 {
                3 => Kind::Private,
                4 => Kind::Im,
                _ => Kind::Public,
            };
            let prefix = match kind {
                Kind::Public => 'C',
                Kind::Private => 'G',
                Kind::Im => 'D',
            };
            let mut ch = Channel {
                id: format!("{prefix}0SIM{c:04}"),
                name: if kind == Kind::Im {
                    String::new()
                } else {
                    format!("channel-{c}")
                },
                kind,
                created: start / 1_000_000 - 86_400,
                archived: false,
                messages: Vec::new(),
            };
            let n = s.messages_per_channel.max(1);
            // Leave the last tenth of the span for replies.
            let step = (s.span_secs * 9 / 10 * 1_000_000 / n as i64).max(1);
            let every = n.checked_div(s.threads_per_channel).map_or(0, |e| e.max(1));
            for i in 0..n {
                let ts = start + i as i64 * step + (c as i64 * 7 + 1) % step.max(2);
                let u = &users[rng.below(users.len() as u64) as usize];
                let mut m = Msg::new(ts, u.id.clone(), format!("message {i} in {}", ch.id));
                // Every seventh message carries a file (no draw from `rng`: the rest of the
                // data stays as it was).
                if i % 7 == 3 {
                    m.file = Some(i / 7);
                }
                if rng.below(20) == 0 {
                    m.edited = Some((m.user.clone(), ts + 30_000_000));
                }
                if every > 0 && i % every == 0 && (i / every) < s.threads_per_channel {
                    for j in 0..s.replies_per_thread {
                        let ru = &users[rng.below(users.len() as u64) as usize];
                        let mut r = Msg::new(
                            ts + (j as i64 + 1) * 1_000_000 + 17,
                            ru.id.clone(),
                            format!("reply {j} to {}", ts_str(ts)),
                        );
                        r.thread_ts = Some(ts);
                        m.replies.push(r);
                    }
                }
                ch.messages.push(m);
            }
            channels.push(ch);
        }
        let last_ts = channels
            .iter()
            .flat_map(|c| {
                c.messages
                    .iter()
                    .flat_map(|m| std::iter::once(m.ts).chain(m.replies.iter().map(|r| r.ts)))
            })
            .max()
            .unwrap_or(start);
        Model {
            users,
            channels,
            last_ts,
        }
    }

    /// A new unique ts at `now_ms` (or just after the last one handed out).
    pub(crate) fn next_ts(&mut self, now_ms: i64) -> Ts {
        let t = (now_ms * 1000).max(self.last_ts + 1);
        self.last_ts = t;
        t
    }

    pub(crate) fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    pub(crate) fn channel_mut(&mut self, id: &str) -> Option<&mut Channel> {
        self.channels.iter_mut().find(|c| c.id == id)
    }
}
