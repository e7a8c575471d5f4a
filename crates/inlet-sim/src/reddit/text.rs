//! Deterministic text: message bodies, titles, and Reddit's markdown → `body_html` rendering.

use crate::util::{Rng, push_base36};

const WORDS: &[&str] = &[
    "sync",
    "engine",
    "message",
    "thread",
    "reply",
    "quick",
    "question",
    "about",
    "the",
    "camera",
    "still",
    "available",
    "tomorrow",
    "evening",
    "weekend",
    "price",
    "shipping",
    "thanks",
    "again",
    "really",
    "appreciate",
    "your",
    "help",
    "with",
    "this",
    "project",
    "database",
    "backup",
    "photo",
    "album",
    "meeting",
    "coffee",
    "later",
    "today",
    "maybe",
    "sure",
    "sounds",
    "great",
    "let",
    "me",
    "know",
    "what",
    "you",
    "think",
    "rust",
    "tokio",
    "server",
    "river",
    "mountain",
    "garden",
    "bicycle",
    "recipe",
    "pasta",
    "guitar",
    "lesson",
    "ticket",
    "concert",
    "train",
    "delay",
    "update",
    "draft",
    "review",
    "feedback",
    "idea",
];

const SUBREDDITS: &[&str] = &["rustsim", "syncengines", "pics", "AskSim", "cafe_culture"];

/// A subreddit name chosen by `n`.
pub(crate) fn subreddit(n: u64) -> &'static str {
    SUBREDDITS[(n % SUBREDDITS.len() as u64) as usize]
}

/// Appends `n` random words separated by spaces.
pub(crate) fn push_words(out: &mut String, rng: &mut Rng, n: u64) {
    for w in 0..n {
        if w > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
}

/// A title-like phrase of 2..=5 words, first letter capitalised.
pub(crate) fn title(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(40);
    let n = 2 + rng.below(4);
    push_words(&mut s, rng, n);
    capitalize_first(&mut s, 0);
    s
}

fn capitalize_first(s: &mut String, at: usize) {
    if let Some(c) = s[at..].chars().next().filter(char::is_ascii_lowercase) {
        s.replace_range(at..at + 1, &c.to_ascii_uppercase().to_string());
    }
}

/// Appends a random hex string of `n` digits.
fn push_hex(out: &mut String, rng: &mut Rng, n: usize) {
    const H: &[u8; 16] = b"0123456789abcdef";
    for _ in 0..n {
        out.push(H[rng.below(16) as usize] as char);
    }
}

/// A random media id like Reddit's (13 base36 characters).
pub(crate) fn push_media_id(out: &mut String, rng: &mut Rng) {
    let start = out.len();
    push_base36(out, rng.next_u64());
    out.truncate(start + 13.min(out.len() - start));
}

/// Appends an Imgur-like id (7 alphanumeric characters).
fn push_imgur_id(out: &mut String, rng: &mut Rng) {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for _ in 0..7 {
        out.push(A[rng.below(A.len() as u64) as usize] as char);
    }
}

/// Appends a deterministic body of roughly 100–400 characters to `out`.
///
/// Some bodies contain "café", an emoji, `&`/`<`/`>`, a paragraph break, or a link to an
/// image: a markdown link to `i.redd.it`, a signed `preview.redd.it` URL (whose `&` must
/// survive `raw_json`), Reddit Chat media on `matrix.redditspace.com` (`v3` and older `r0`),
/// a bare `imgur.com` page link or a markdown link to an `i.imgur.com` image.
pub(crate) fn body(out: &mut String, rng: &mut Rng) {
    let target = 100 + rng.below(300) as usize;
    let features = rng.next_u64();
    let start = out.len();
    let mut sentences = 0;
    while out.len() - start < target {
        if sentences > 0 {
            let para = sentences == 2 && features & 0x7 == 0;
            out.push_str(if para { "\n\n" } else { " " });
        }
        let s_start = out.len();
        let n = 4 + rng.below(10);
        push_words(out, rng, n);
        capitalize_first(out, s_start);
        if sentences == 1 {
            add_feature(out, features, rng);
        }
        out.push_str([".", "!", "?", "."][rng.below(4) as usize]);
        sentences += 1;
    }
}

fn add_feature(out: &mut String, features: u64, rng: &mut Rng) {
    let f = (features >> 8) % 100;
    match f {
        0..=11 => out.push_str(" at the café"),
        12..=21 => out.push_str([" 🎉", " 🦀", " 😀"][rng.below(3) as usize]),
        22..=29 => {
            out.push_str(" [photo](https://i.redd.it/");
            push_media_id(out, rng);
            out.push_str(".jpg)");
        }
        30..=35 => {
            out.push_str(" [preview](https://preview.redd.it/");
            push_media_id(out, rng);
            out.push_str(".png?width=640&format=png&auto=webp&s=");
            push_hex(out, rng, 40);
            out.push(')');
        }
        36..=40 => out.push_str(" Tom & Jerry <3 >_<"),
        41..=44 => {
            out.push_str(" sent an [image](https://matrix.redditspace.com/_matrix/media/");
            out.push_str(if features & 1 == 0 { "v3" } else { "r0" });
            out.push_str("/download/reddit.com/");
            push_media_id(out, rng);
            out.push(')');
        }
        45..=47 => {
            out.push_str(" https://imgur.com/");
            push_imgur_id(out, rng);
        }
        48..=49 => {
            out.push_str(" [pic](https://i.imgur.com/");
            push_imgur_id(out, rng);
            out.push_str(".png)");
        }
        _ => {}
    }
}

/// Renders markdown `md` the way Reddit fills `body_html` (paragraphs and links only).
/// `sc` wraps it in `<!-- SC_OFF -->`/`<!-- SC_ON -->` like messages and self text.
pub(crate) fn md_to_html(out: &mut String, md: &str, sc: bool) {
    if sc {
        out.push_str("<!-- SC_OFF -->");
    }
    out.push_str("<div class=\"md\">");
    for (n, para) in md.split("\n\n").enumerate() {
        if n > 0 {
            out.push_str("\n\n");
        }
        out.push_str("<p>");
        inline(out, para);
        out.push_str("</p>");
    }
    out.push_str("\n</div>");
    if sc {
        out.push_str("<!-- SC_ON -->");
    }
}

/// Inline markdown: `[text](http...)` links become anchors, everything else is escaped.
fn inline(out: &mut String, mut s: &str) {
    while let Some(open) = s.find('[') {
        let rest = &s[open..];
        match parse_link(rest) {
            Some((text, url, len)) => {
                escape_html(out, &s[..open]);
                out.push_str("<a href=\"");
                escape_html(out, url);
                out.push_str("\">");
                escape_html(out, text);
                out.push_str("</a>");
                s = &rest[len..];
            }
            None => {
                escape_html(out, &s[..open + 1]);
                s = &s[open + 1..];
            }
        }
    }
    escape_html(out, s);
}

/// `[text](url)` at the start of `s` → (text, url, consumed bytes).
fn parse_link(s: &str) -> Option<(&str, &str, usize)> {
    let close = s.find("](")?;
    let text = &s[1..close];
    if text.contains('[') || text.contains('\n') {
        return None;
    }
    let url_start = close + 2;
    let url_len = s[url_start..].find(')')?;
    let url = &s[url_start..url_start + url_len];
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(' ') {
        return None;
    }
    Some((text, url, url_start + url_len + 1))
}

/// HTML-escapes like Reddit's renderer (`&`, `<`, `>`, `"`, `'`).
pub(crate) fn escape_html(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let mut last = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep = match c {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_rendering() {
        let mut out = String::new();
        md_to_html(
            &mut out,
            "Hi & <b> [x](https://a.b/c?d=1&e=2)\n\nit's",
            true,
        );
        assert_eq!(
            out,
            "<!-- SC_OFF --><div class=\"md\"><p>Hi &amp; &lt;b&gt; <a href=\"https://a.b/c?d=1&amp;e=2\">x</a></p>\n\n<p>it&#39;s</p>\n</div><!-- SC_ON -->"
        );
        let mut plain = String::new();
        md_to_html(&mut plain, "[not a link] (x)", false);
        assert_eq!(plain, "<div class=\"md\"><p>[not a link] (x)</p>\n</div>");
    }

    #[test]
    fn bodies_are_deterministic_and_sized() {
        let mut features = [false; 7];
        for i in 0..500 {
            let mut a = String::new();
            let mut b = String::new();
            body(&mut a, &mut Rng::derive(1, 2, i));
            body(&mut b, &mut Rng::derive(1, 2, i));
            assert_eq!(a, b);
            assert!(a.len() >= 100 && a.len() < 520, "{}", a.len());
            features[0] |= a.contains("café");
            features[1] |= a.contains("https://i.redd.it/");
            features[2] |= a.contains("&format=png");
            features[3] |= a.contains('🦀') || a.contains('🎉') || a.contains('😀');
            features[4] |= a.contains("https://matrix.redditspace.com/_matrix/media/");
            features[5] |= a.contains(" https://imgur.com/");
            features[6] |= a.contains("(https://i.imgur.com/");
        }
        assert_eq!(features, [true; 7]);
    }
}
