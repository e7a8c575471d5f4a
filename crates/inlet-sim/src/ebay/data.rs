//! The simulated mailbox: conversations and their messages, generated from a seed and
//! changed through the hooks.

use crate::util::Rng;
use inlet_core::Timestamp;
use serde_json::{Value, json};

/// One message.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub id: String,
    pub sender: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_ms: i64,
    pub read: bool,
    pub media: u32,
}

/// One conversation.
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    pub id: String,
    pub ctype: &'static str,
    pub status: &'static str,
    pub title: String,
    pub created_ms: i64,
    pub reference_id: Option<String>,
    pub other: String,
    pub messages: Vec<Msg>,
    /// Newest message the other party (not the account) sent: what `start_time` sees
    /// under the buyer-activity quirk.
    pub other_activity_ms: i64,
}

impl Conv {
    pub fn latest(&self) -> Option<&Msg> {
        self.messages
            .iter()
            .max_by_key(|m| (m.created_ms, m.id.clone()))
    }

    pub fn latest_ms(&self) -> i64 {
        self.latest().map_or(self.created_ms, |m| m.created_ms)
    }

    /// Newest message the account sent (0 when none).
    pub fn own_activity_ms(&self, me: &str) -> i64 {
        self.messages
            .iter()
            .filter(|m| m.sender == me)
            .map(|m| m.created_ms)
            .max()
            .unwrap_or(0)
    }

    pub fn unread(&self, me: &str) -> i64 {
        self.messages
            .iter()
            .filter(|m| m.recipient == me && !m.read)
            .count() as i64
    }
}

/// Every conversation, plus the id counter.
#[derive(Debug)]
pub(crate) struct Model {
    pub me: String,
    pub convs: Vec<Conv>,
    next_msg: u64,
    next_conv: u64,
}

fn iso(ms: i64) -> String {
    Timestamp(ms).to_string()
}

const ITEMS: &[&str] = &[
    "Nikon 50mm f/1.8 lens",
    "Vintage Levi's 501 jeans",
    "Lego Millennium Falcon 75192",
    "iPhone 12 case, blue",
    "Cast iron skillet 12in",
    "Mechanical keyboard, brown switches",
];
const LINES: &[&str] = &[
    "Is this still available?",
    "Can you ship to Canada?",
    "Shipped today, tracking attached.",
    "Would you take $40?",
    "Thanks, received it in good condition.",
    "Could you send more photos of the back?",
    "Yes, it is still available.",
    "I can do $45 with free shipping.",
];

impl Model {
    /// `members` buyer conversations (`long` of them with 51..=120 messages) and `system`
    /// FROM_EBAY conversations, all in the past of `now_ms`.
    pub fn generate(
        seed: u64,
        me: &str,
        members: u64,
        long: u64,
        system: u64,
        now_ms: i64,
    ) -> Self {
        let mut m = Model {
            me: me.to_string(),
            convs: Vec::new(),
            next_msg: 99_000,
            next_conv: 8_812_300_000,
        };
        let total = members + system;
        let span_ms = 60_000 * 60 * 24 * 90;
        let step = (span_ms / total.max(1) as i64).max(1);
        let start = now_ms - span_ms - 86_400_000;
        let long_every = members.checked_div(long).map_or(u64::MAX, |e| e.max(1));
        for i in 0..total {
            let mut rng = Rng::derive(seed, 0xeb, i);
            let created = start + i as i64 * step;
            let system_conv = i >= members;
            let n = if !system_conv && long > 0 && i % long_every == 0 && i / long_every < long {
                51 + rng.below(70)
            } else if system_conv {
                1 + rng.below(2)
            } else {
                1 + rng.below(8)
            };
            let other = if system_conv {
                "eBay".to_string()
            } else {
                format!("buyer_{}", rng.below(500))
            };
            let title = if system_conv {
                format!("Your eBay notice #{i}")
            } else {
                ITEMS[rng.below(ITEMS.len() as u64) as usize].to_string()
            };
            let id = m.conv_id();
            let mut c = Conv {
                id,
                ctype: if system_conv {
                    "FROM_EBAY"
                } else {
                    "FROM_MEMBERS"
                },
                status: "ACTIVE",
                title,
                created_ms: created,
                reference_id: (!system_conv).then(|| format!("2258{:08}", rng.below(100_000_000))),
                other: other.clone(),
                messages: Vec::new(),
                other_activity_ms: 0,
            };
            for k in 0..n {
                let from_other = system_conv || k % 2 == 0 || rng.below(4) == 0;
                let at = created + k as i64 * (step / (n as i64 + 1)).max(1);
                let body = LINES[rng.below(LINES.len() as u64) as usize].to_string();
                let read = rng.below(5) != 0;
                let media = u32::from(rng.below(10) == 0);
                m.push_msg(&mut c, from_other, at, body, read, media);
            }
            m.convs.push(c);
        }
        m
    }

    fn conv_id(&mut self) -> String {
        self.next_conv += 1;
        format!("c-{}", self.next_conv)
    }

    /// Appends a message; returns its id.
    pub fn push_msg(
        &mut self,
        c: &mut Conv,
        from_other: bool,
        at: i64,
        body: String,
        read: bool,
        media: u32,
    ) -> String {
        self.next_msg += 1;
        let id = format!("m-{}", self.next_msg);
        let (sender, recipient) = if from_other {
            (c.other.clone(), self.me.clone())
        } else {
            (self.me.clone(), c.other.clone())
        };
        let subject = if c.messages.is_empty() {
            format!("Question about {}", c.title)
        } else {
            format!("Re: {}", c.title)
        };
        if from_other {
            c.other_activity_ms = c.other_activity_ms.max(at);
        }
        c.messages.push(Msg {
            id: id.clone(),
            sender,
            recipient,
            subject,
            body,
            created_ms: at,
            read,
            media,
        });
        id
    }

    /// Starts a conversation by the other party; returns its id.
    pub fn new_conversation(&mut self, other: &str, title: &str, body: &str, at: i64) -> String {
        let id = self.conv_id();
        let mut c = Conv {
            id: id.clone(),
            ctype: "FROM_MEMBERS",
            status: "ACTIVE",
            title: title.to_string(),
            created_ms: at,
            reference_id: Some("225800000001".into()),
            other: other.to_string(),
            messages: Vec::new(),
            other_activity_ms: 0,
        };
        self.push_msg(&mut c, true, at, body.to_string(), false, 0);
        self.convs.push(c);
        id
    }

    /// A new notice from eBay (FROM_EBAY); returns its id.
    pub fn new_system_conversation(&mut self, title: &str, body: &str, at: i64) -> String {
        let id = self.conv_id();
        let mut c = Conv {
            id: id.clone(),
            ctype: "FROM_EBAY",
            status: "ACTIVE",
            title: title.to_string(),
            created_ms: at,
            reference_id: None,
            other: "eBay".into(),
            messages: Vec::new(),
            other_activity_ms: 0,
        };
        self.push_msg(&mut c, true, at, body.to_string(), false, 0);
        self.convs.push(c);
        id
    }

    pub fn find(&self, id: &str) -> Option<usize> {
        self.convs.iter().position(|c| c.id == id)
    }

    pub fn msg_json(m: &Msg) -> Value {
        let media: Vec<Value> = (0..m.media)
            .map(|k| {
                json!({"mediaName": format!("photo{k}.jpg"), "mediaType": "IMAGE",
                       "mediaUrl": format!("https://i.ebayimg.com/images/{}/{k}.jpg", m.id)})
            })
            .collect();
        json!({
            "messageId": m.id,
            "subject": m.subject,
            "messageBody": m.body,
            "senderUsername": m.sender,
            "recipientUsername": m.recipient,
            "createdDate": iso(m.created_ms),
            "readStatus": m.read,
            "messageMedia": media,
        })
    }

    pub fn conv_json(&self, c: &Conv) -> Value {
        let mut v = json!({
            "conversationId": c.id,
            "conversationType": c.ctype,
            "conversationStatus": c.status,
            "conversationTitle": c.title,
            "createdDate": iso(c.created_ms),
            "unreadCount": c.unread(&self.me),
        });
        if let Some(r) = &c.reference_id {
            v["referenceType"] = json!("LISTING");
            v["referenceId"] = json!(r);
        }
        if let Some(l) = c.latest() {
            v["latestMessage"] = Self::msg_json(l);
        }
        v
    }

    /// Conversations of a type, newest activity first.
    /// `FROM_OWNERS` (the sent-side listing) holds the member conversations the account
    /// wrote in.
    pub fn listing(&self, ctype: &str) -> Vec<&Conv> {
        let owners = ctype == "FROM_OWNERS";
        let mut out: Vec<&Conv> = self
            .convs
            .iter()
            .filter(|c| {
                let of_type = if owners {
                    c.ctype == "FROM_MEMBERS" && c.own_activity_ms(&self.me) > 0
                } else {
                    c.ctype == ctype
                };
                of_type && c.status == "ACTIVE"
            })
            .collect();
        out.sort_by(|a, b| b.latest_ms().cmp(&a.latest_ms()).then(a.id.cmp(&b.id)));
        out
    }

    /// Messages of a conversation, oldest first.
    pub fn thread(c: &Conv) -> Vec<&Msg> {
        let mut out: Vec<&Msg> = c.messages.iter().collect();
        out.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        out
    }
}
