//! Renders model items as the exact JSON `{"kind": .., "data": {..}}` children Reddit serves.
//! Field sets and their JSON types follow the recorded fixtures.

use super::data::{Item, Model, SAVED_T1_BASE, SAVED_T3_BASE, T1_REPLY_BASE, T4_BASE, rng};
use super::text::{self, subreddit};
use crate::json::JsonWriter;
use crate::util::{base36, mix, push_base36};

/// Salts separating the random streams of different fields.
const SALT_BODY: u64 = 1;
const SALT_SUBJECT: u64 = 2;
const SALT_NEW: u64 = 3;
const SALT_REPLY: u64 = 4;
const SALT_SAVED: u64 = 5;
const SALT_ME: u64 = 6;

/// Reusable scratch buffers, so rendering a page allocates little.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    body: String,
    html: String,
    s1: String,
    s2: String,
}

/// Number of distinct conversation partners.
const PARTNERS: u64 = 5000;

/// The partner username of conversation `c`.
pub(crate) fn partner(c: u64) -> String {
    format!("user_{}", c % PARTNERS)
}

/// A stable `t2_` account fullname for a username.
fn account_fullname(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("t2_{}", base36(0x1000_0000 + mix(h) % 0x6000_0000))
}

/// The subject of conversation root `c` (a base conversation).
pub(crate) fn root_subject(seed: u64, c: u64) -> String {
    let mut r = rng(seed, SALT_SUBJECT, c);
    format!("Subject {c} {}", text::title(&mut r))
}

/// Writes one listing child for `item`.
pub(crate) fn write_child(m: &Model, item: Item, w: &mut JsonWriter<'_>, s: &mut Scratch) {
    w.begin_obj();
    w.str("kind", Model::kind(item));
    w.obj("data");
    match item {
        Item::Msg(i) => write_message(m, i, w, s),
        Item::Reply(j) => write_reply(m, j, w, s),
        Item::Saved(k) if k % 2 == 0 => write_saved_post(m, k, w, s),
        Item::Saved(k) => write_saved_comment(m, k, w, s),
    }
    w.end_obj();
    w.end_obj();
}

/// Fills `s.body` with the item's current body (edited or generated).
fn load_body(m: &Model, idv: u64, salt: u64, s: &mut Scratch) {
    s.body.clear();
    match m.edit(idv).and_then(|e| e.body.as_deref()) {
        Some(b) => s.body.push_str(b),
        None => text::body(&mut s.body, &mut rng(m.seed, salt, idv)),
    }
}

fn unread(m: &Model, idv: u64, received: bool) -> bool {
    match m.edit(idv).and_then(|e| e.new) {
        Some(n) => n,
        None => received && rng(m.seed, SALT_NEW, idv).below(10) == 0,
    }
}

/// Message-specific values, resolved for base and added messages alike.
struct MsgFacts {
    partner: String,
    subject: String,
    new: bool,
}

fn msg_facts(m: &Model, i: u64, s: &mut Scratch) -> MsgFacts {
    let idv = T4_BASE + i;
    let root = m.root_of(i);
    let received = !m.by_me(i);
    if let Some(a) = m.added(i) {
        s.body.clear();
        match m.edit(idv).and_then(|e| e.body.as_deref()) {
            Some(b) => s.body.push_str(b),
            None => s.body.push_str(&a.body),
        }
        let new = m.edit(idv).and_then(|e| e.new).unwrap_or(a.new);
        let subject = if root == i {
            a.subject.clone()
        } else {
            format!("re: {}", a.subject)
        };
        return MsgFacts {
            partner: a.partner.clone(),
            subject,
            new,
        };
    }
    load_body(m, idv, SALT_BODY, s);
    let subject = root_subject(m.seed, root);
    MsgFacts {
        partner: partner(root),
        subject: if root == i {
            subject
        } else {
            format!("re: {subject}")
        },
        new: unread(m, idv, received),
    }
}

fn write_message(m: &Model, i: u64, w: &mut JsonWriter<'_>, s: &mut Scratch) {
    let f = msg_facts(m, i, s);
    let root = m.root_of(i);
    let (author, dest) = if m.by_me(i) {
        (m.username.as_str(), f.partner.as_str())
    } else {
        (f.partner.as_str(), m.username.as_str())
    };
    s.s1.clear();
    push_base36(&mut s.s1, T4_BASE + root);
    if root == i {
        w.null("first_message");
        w.null("first_message_name");
    } else {
        w.int("first_message", (T4_BASE + root) as i64);
        w.str("first_message_name", &format!("t4_{}", s.s1));
    }
    w.null("subreddit");
    w.null("likes");
    w.str("replies", "");
    w.str("author_fullname", &account_fullname(author));
    s.s2.clear();
    push_base36(&mut s.s2, T4_BASE + i);
    w.str("id", &s.s2);
    w.str("subject", &f.subject);
    w.null("associated_awarding_id");
    w.int("score", 0);
    w.str("author", author);
    w.null("num_comments");
    if root == i {
        w.null("parent_id");
    } else {
        w.str("parent_id", &format!("t4_{}", s.s1));
    }
    w.null("subreddit_name_prefixed");
    w.bool("new", f.new);
    w.str("type", "unknown");
    w.str("body", &s.body);
    w.str("dest", dest);
    w.bool("was_comment", false);
    s.html.clear();
    text::md_to_html(&mut s.html, &s.body, true);
    w.html("body_html", &s.html);
    w.str("name", &format!("t4_{}", s.s2));
    let created = m.msg_created(i);
    w.secs("created", created);
    w.secs("created_utc", created);
    w.str("context", "");
    w.null("distinguished");
}

/// The three kinds of inbox comment items.
const REPLY_TYPES: [(&str, &str); 3] = [
    ("comment_reply", "comment reply"),
    ("post_reply", "post reply"),
    ("username_mention", "username mention"),
];

fn write_reply(m: &Model, j: u64, w: &mut JsonWriter<'_>, s: &mut Scratch) {
    let idv = T1_REPLY_BASE + j;
    let mut r = rng(m.seed, SALT_REPLY, j);
    let (typ, subject) = REPLY_TYPES[(j % 3) as usize];
    let sr = subreddit(j);
    let author = partner(j.wrapping_mul(7).wrapping_add(3));
    let link_title = text::title(&mut r);
    let post = base36(0x0a00_0000 + j / 4);
    let id = base36(idv);
    load_body(m, idv, SALT_BODY, s);
    w.null("first_message");
    w.null("first_message_name");
    w.str("subreddit", sr);
    w.null("likes");
    w.str("replies", "");
    w.str("author_fullname", &account_fullname(&author));
    w.str("id", &id);
    w.str("subject", subject);
    w.null("associated_awarding_id");
    w.int("score", 1 + (j % 17) as i64);
    w.str("author", &author);
    w.int("num_comments", 1 + (j % 300) as i64);
    let parent = match typ {
        "post_reply" => format!("t3_{post}"),
        _ => format!("t1_{}", base36(0x0b00_0000 + j)),
    };
    w.str("parent_id", &parent);
    w.str("subreddit_name_prefixed", &format!("r/{sr}"));
    w.bool("new", unread(m, idv, true));
    w.str("type", typ);
    w.str("body", &s.body);
    w.str("link_title", &link_title);
    w.str("dest", &m.username);
    w.bool("was_comment", true);
    s.html.clear();
    text::md_to_html(&mut s.html, &s.body, true);
    w.html("body_html", &s.html);
    w.str("name", &format!("t1_{id}"));
    let created = m.reply_created(j);
    w.secs("created", created);
    w.secs("created_utc", created);
    let slug = slugify(&link_title);
    w.str(
        "context",
        &format!("/r/{sr}/comments/{post}/{slug}/{id}/?context=3"),
    );
    w.null("distinguished");
}

fn slugify(title: &str) -> String {
    title.to_ascii_lowercase().replace(' ', "_")
}

/// Values shared by saved posts and comments.
struct SavedFacts {
    id: String,
    sr: &'static str,
    author: String,
    created: i64,
    score: i64,
    title: String,
}

fn saved_facts(m: &Model, k: u64, base: u64) -> SavedFacts {
    let mut r = rng(m.seed, SALT_SAVED, k);
    SavedFacts {
        id: base36(base + k),
        sr: subreddit(k / 2),
        author: partner(k.wrapping_mul(13).wrapping_add(1)),
        created: m.base_time - 365 * 86400 + k as i64 * 600,
        score: m.score_override(k).unwrap_or(1 + r.below(5000) as i64),
        title: text::title(&mut r),
    }
}

/// Members common to both saved kinds that carry no information for a sync.
fn write_moderation_noise(w: &mut JsonWriter<'_>) {
    w.null("banned_by");
    w.null("removal_reason");
    w.raw("user_reports", "[]");
    w.int("gilded", 0);
    w.bool("archived", false);
    w.bool("stickied", false);
    w.null("approved_by");
    w.bool("over_18", false);
    w.raw("report_reasons", "[]");
    w.null("author_flair_css_class");
    w.int("downs", 0);
    w.bool("quarantine", false);
    w.raw("mod_reports", "[]");
    w.int("num_reports", 0);
    w.null("distinguished");
}

fn write_saved_post(m: &Model, k: u64, w: &mut JsonWriter<'_>, s: &mut Scratch) {
    let f = saved_facts(m, k, SAVED_T3_BASE);
    let style = (k / 2) % 3; // 0 self post, 1 image post, 2 link post
    let slug = slugify(&f.title);
    let permalink = format!("/r/{}/comments/{}/{slug}/", f.sr, f.id);
    let mut r = rng(m.seed, SALT_SAVED ^ 0xff, k);
    s.s1.clear();
    text::push_media_id(&mut s.s1, &mut r);
    let (domain, url, thumb) = match style {
        0 => (
            format!("self.{}", f.sr),
            format!("https://www.reddit.com{permalink}"),
            "self".to_string(),
        ),
        1 => (
            "i.redd.it".into(),
            format!("https://i.redd.it/{}.jpg", s.s1),
            format!("https://b.thumbs.redditmedia.com/{}.jpg", s.s1),
        ),
        _ => (
            "i.imgur.com".into(),
            format!("https://i.imgur.com/{}.png", s.s1),
            "default".to_string(),
        ),
    };
    s.body.clear();
    if style == 0 {
        text::body(&mut s.body, &mut r);
    }
    w.str("domain", &domain);
    w.raw("media_embed", "{}");
    w.str("subreddit", f.sr);
    if style == 0 {
        s.html.clear();
        text::md_to_html(&mut s.html, &s.body, true);
        w.html("selftext_html", &s.html);
    } else {
        w.null("selftext_html");
    }
    w.str("selftext", &s.body);
    w.opt_raw("likes", k.is_multiple_of(4).then_some("true"));
    w.null("suggested_sort");
    w.null("secure_media");
    w.null("link_flair_text");
    w.str("id", &f.id);
    w.null("from_kind");
    w.bool("clicked", false);
    w.str("author", &f.author);
    w.null("media");
    w.int("score", f.score);
    w.bool("hidden", false);
    w.int("num_comments", (k % 250) as i64);
    w.str("thumbnail", &thumb);
    w.str("subreddit_id", &format!("t5_{}", base36(0x2_0000 + k % 5)));
    w.bool("hide_score", false);
    w.bool("edited", false);
    w.null("link_flair_css_class");
    w.raw("secure_media_embed", "{}");
    w.bool("saved", true);
    w.bool("is_self", style == 0);
    w.null("from");
    w.null("from_id");
    w.str("permalink", &permalink);
    w.bool("locked", false);
    w.str("name", &format!("t3_{}", f.id));
    w.secs("created", f.created);
    w.str("url", &url);
    w.null("author_flair_text");
    w.str("title", &f.title);
    w.secs("created_utc", f.created);
    w.bool("visited", false);
    w.int("ups", f.score);
    if style == 1 {
        write_preview(w, &s.s1, &mut r, &mut s.s2);
    }
    write_moderation_noise(w);
}

/// `preview` of an image post: signed `preview.redd.it` URLs with `&` in their queries.
fn write_preview(w: &mut JsonWriter<'_>, media: &str, r: &mut crate::util::Rng, buf: &mut String) {
    w.str("post_hint", "image");
    w.obj("preview");
    w.arr("images");
    w.begin_obj();
    let sig = |r: &mut crate::util::Rng| format!("{:016x}{:016x}", r.next_u64(), r.next_u64());
    w.obj("source");
    buf.clear();
    buf.push_str(&format!(
        "https://preview.redd.it/{media}.jpg?auto=webp&s={}",
        sig(r)
    ));
    w.str("url", buf);
    w.int("width", 1080);
    w.int("height", 1350);
    w.end_obj();
    w.arr("resolutions");
    for width in [108i64, 216, 640] {
        w.begin_obj();
        let url = format!(
            "https://preview.redd.it/{media}.jpg?width={width}&crop=smart&auto=webp&s={}",
            sig(r)
        );
        w.str("url", &url);
        w.int("width", width);
        w.int("height", width * 5 / 4);
        w.end_obj();
    }
    w.end_arr();
    w.raw("variants", "{}");
    w.str("id", media);
    w.end_obj();
    w.end_arr();
    w.bool("enabled", true);
    w.end_obj();
}

fn write_saved_comment(m: &Model, k: u64, w: &mut JsonWriter<'_>, s: &mut Scratch) {
    let f = saved_facts(m, k, SAVED_T1_BASE);
    let link = base36(0x0900_0000 + k);
    let link_author = partner(k.wrapping_mul(31));
    let slug = slugify(&f.title);
    s.body.clear();
    text::body(&mut s.body, &mut rng(m.seed, SALT_SAVED ^ 0xfe, k));
    w.str("subreddit_id", &format!("t5_{}", base36(0x2_0000 + k % 5)));
    w.str("link_title", &f.title);
    w.str("link_id", &format!("t3_{link}"));
    w.str("link_author", &link_author);
    w.raw("likes", "true");
    w.str("replies", "");
    w.bool("saved", true);
    w.str("id", &f.id);
    w.str("author", &f.author);
    let parent = if k % 4 == 1 {
        format!("t3_{link}")
    } else {
        format!("t1_{}", base36(0x0c00_0000 + k))
    };
    w.str("parent_id", &parent);
    w.int("score", f.score);
    w.int("controversiality", 0);
    w.str("body", &s.body);
    w.secs("edited", f.created + 3600);
    s.html.clear();
    text::md_to_html(&mut s.html, &s.body, false);
    w.html("body_html", &s.html);
    w.str("subreddit", f.sr);
    w.bool("score_hidden", false);
    w.str("name", &format!("t1_{}", f.id));
    w.secs("created", f.created);
    w.str("author_flair_text", "");
    w.str(
        "link_url",
        &format!("https://www.reddit.com/r/{}/comments/{link}/{slug}/", f.sr),
    );
    w.str(
        "permalink",
        &format!("/r/{}/comments/{link}/{slug}/{}/", f.sr, f.id),
    );
    w.secs("created_utc", f.created);
    w.int("ups", f.score);
    write_moderation_noise(w);
}

/// The body of `GET /api/v1/me`.
pub(crate) fn me_json(m: &Model, inbox_count: u64) -> String {
    let mut out = Vec::with_capacity(512);
    let mut w = JsonWriter::new(&mut out, false);
    let created = m.base_time - 3 * 365 * 86400;
    let id = base36(0x1000_0000 + rng(m.seed, SALT_ME, 0).below(0x6000_0000));
    w.begin_obj();
    w.bool("is_employee", false);
    w.bool("has_verified_email", true);
    w.bool("over_18", false);
    w.int("inbox_count", inbox_count as i64);
    w.bool("has_mail", inbox_count > 0);
    w.str("id", &id);
    w.str("name", &m.username);
    w.secs("created", created);
    w.secs("created_utc", created);
    w.int("link_karma", 1);
    w.int("comment_karma", 1);
    w.int("total_karma", 2);
    w.end_obj();
    String::from_utf8(out).unwrap_or_default()
}
