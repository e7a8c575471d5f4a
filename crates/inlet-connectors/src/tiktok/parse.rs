//! A streaming reader of the TikTok export: walks the top-level object and keeps only
//! the favourite-video lists, skipping every other value as it is read.

use inlet_core::Timestamp;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

/// Sections that hold `Favorite Videos`, in the order they are preferred (newest export
/// generation first).
pub const FAVORITE_SECTIONS: &[&str] = &[
    "Likes and Favorites",
    "Your Activity",
    "Ads and data",
    "Activity",
];

/// Top-level keys of TikTok exports; a file with none of them is not an export.
const KNOWN_TOP_LEVEL: &[&str] = &[
    "Profile",
    "Profile And Settings",
    "Activity",
    "Your Activity",
    "Likes and Favorites",
    "Ads and data",
    "Comment",
    "Comments",
    "Direct Message",
    "Direct Messages",
    "Video",
    "TikTok Shop",
    "App Settings",
    "Tiktok Live",
];

/// One favourite video.
#[derive(Debug, Clone, PartialEq)]
pub struct Favorite {
    /// The video id, when the link carries one.
    pub video_id: Option<String>,
    /// The link as written.
    pub link: String,
    /// When it was favourited (the export's date read as UTC).
    pub favorited_at: Option<Timestamp>,
    /// The entry's JSON.
    pub raw: String,
}

/// What the export held.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Entries read from the chosen favourites list.
    pub entries: u64,
    /// Favourites, one per video (repeats merged, newest date kept), in file order.
    pub favorites: Vec<Favorite>,
    /// The section the list came from (`None` when the export has no favourites).
    pub section: Option<&'static str>,
}

/// Why a file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The file is cut off.
    #[error(
        "the file is truncated: the JSON ends early (line {line}, column {column}); was the download complete?"
    )]
    Truncated {
        /// Line.
        line: usize,
        /// Column.
        column: usize,
    },
    /// The file is not valid JSON.
    #[error("the file is not valid JSON: {0}")]
    Malformed(String),
    /// The JSON is not a TikTok export.
    #[error("this is not a TikTok data export: {0}")]
    NotAnExport(String),
    /// The export's favourites list has an unexpected shape.
    #[error("unexpected favourites list: {0}")]
    BadEntry(String),
    /// The file is larger than allowed.
    #[error("the file is larger than the limit of {limit} bytes (raise it with --max-size)")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
}

/// A reader that fails once more than `limit` bytes were read.
struct Limited<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(io::Error::other("size limit exceeded"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Read an export from `reader`, at most `max_bytes`.
pub fn parse_export(reader: impl Read, max_bytes: u64) -> Result<Parsed, ParseError> {
    let mut limited = Limited {
        inner: io::BufReader::with_capacity(1 << 16, reader),
        left: max_bytes,
        exceeded: false,
    };
    let mut found = Found::default();
    let result = {
        let mut de = serde_json::Deserializer::from_reader(&mut limited);
        Root { found: &mut found }
            .deserialize(&mut de)
            .and_then(|()| de.end())
    };
    if limited.exceeded {
        return Err(ParseError::TooLarge { limit: max_bytes });
    }
    if let Err(e) = result {
        return Err(match e.classify() {
            serde_json::error::Category::Eof => ParseError::Truncated {
                line: e.line(),
                column: e.column(),
            },
            serde_json::error::Category::Syntax => ParseError::Malformed(e.to_string()),
            serde_json::error::Category::Io => ParseError::Io(io::Error::other(e.to_string())),
            serde_json::error::Category::Data => match found.not_export.take() {
                Some(m) => ParseError::NotAnExport(m),
                None => ParseError::BadEntry(e.to_string()),
            },
        });
    }
    if !found.known_section {
        let keys = found.top_keys.join(", ");
        return Err(ParseError::NotAnExport(format!(
            "none of its top-level keys ({}) is a TikTok export section (expected e.g. \"Likes and Favorites\", \"Your Activity\" or \"Activity\")",
            if keys.is_empty() { "none" } else { &keys }
        )));
    }
    let chosen = FAVORITE_SECTIONS.iter().find_map(|s| {
        found
            .lists
            .iter()
            .find(|(sec, list)| sec == s && !list.is_empty())
            .map(|(sec, list)| (*sec, list))
    });
    let Some((section, list)) = chosen else {
        return Ok(Parsed::default());
    };
    Ok(Parsed {
        entries: list.len() as u64,
        favorites: merge(list),
        section: Some(section),
    })
}

/// One favourite per video, keeping the newest date, in order of first appearance.
fn merge(list: &[Favorite]) -> Vec<Favorite> {
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out: Vec<Favorite> = Vec::with_capacity(list.len());
    for f in list {
        let key = f.video_id.clone().unwrap_or_else(|| f.link.clone());
        match at.get(&key) {
            Some(&i) => {
                if f.favorited_at > out[i].favorited_at {
                    out[i] = f.clone();
                }
            }
            None => {
                at.insert(key, out.len());
                out.push(f.clone());
            }
        }
    }
    out
}

#[derive(Default)]
struct Found {
    top_keys: Vec<String>,
    known_section: bool,
    lists: Vec<(&'static str, Vec<Favorite>)>,
    not_export: Option<String>,
}

struct Root<'a> {
    found: &'a mut Found,
}

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

fn not_export<E: de::Error>(found: &mut Found, what: String) -> E {
    found.not_export = Some(what.clone());
    E::custom(what)
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if KNOWN_TOP_LEVEL.contains(&key.as_str()) {
                self.found.known_section = true;
            }
            match FAVORITE_SECTIONS.iter().find(|s| **s == key) {
                Some(section) => map.next_value_seed(Section {
                    section,
                    found: &mut *self.found,
                })?,
                None => {
                    if self.found.top_keys.len() < 8 {
                        self.found.top_keys.push(format!("{key:?}"));
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(not_export(
            self.found,
            "the file holds a JSON array, not an object".into(),
        ))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(not_export(
            self.found,
            "the file holds a JSON string, not an object".into(),
        ))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(not_export(
            self.found,
            "the file holds a JSON boolean, not an object".into(),
        ))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(not_export(
            self.found,
            "the file holds a number, not an object".into(),
        ))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(not_export(
            self.found,
            "the file holds a number, not an object".into(),
        ))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(not_export(
            self.found,
            "the file holds a number, not an object".into(),
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(not_export(
            self.found,
            "the file holds null, not an object".into(),
        ))
    }
}

/// A top-level section: only `Favorite Videos` is read.
struct Section<'a> {
    section: &'static str,
    found: &'a mut Found,
}

impl<'de> DeserializeSeed<'de> for Section<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Section<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "section {:?} to be an object or null", self.section)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "Favorite Videos" {
                map.next_value_seed(FavoriteVideos {
                    section: self.section,
                    found: &mut *self.found,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `Favorite Videos`: only `FavoriteVideoList` is read.
struct FavoriteVideos<'a> {
    section: &'static str,
    found: &'a mut Found,
}

impl<'de> DeserializeSeed<'de> for FavoriteVideos<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FavoriteVideos<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/Favorite Videos to be an object or null",
            self.section
        )
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "FavoriteVideoList" {
                let list = map.next_value_seed(List {
                    section: self.section,
                })?;
                self.found.lists.push((self.section, list));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `FavoriteVideoList`: an array of `{Date, Link}` objects, or null.
struct List {
    section: &'static str,
}

impl<'de> DeserializeSeed<'de> for List {
    type Value = Vec<Favorite>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Favorite>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for List {
    type Value = Vec<Favorite>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/Favorite Videos/FavoriteVideoList to be a list",
            self.section
        )
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<Favorite>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Favorite>, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = seq.next_element::<BTreeMap<String, serde_json::Value>>()? {
            let n = out.len() + 1;
            let fav = favorite(&entry).map_err(|m| {
                de::Error::custom(format!(
                    "entry {n} of {}/Favorite Videos/FavoriteVideoList {m}",
                    self.section
                ))
            })?;
            out.push(fav);
        }
        Ok(out)
    }
}

/// The value of the first key that matches one of `names`, ignoring case.
fn field<'a>(
    entry: &'a BTreeMap<String, serde_json::Value>,
    names: &[&str],
) -> Option<&'a serde_json::Value> {
    names.iter().find_map(|n| {
        entry
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
    })
}

fn favorite(entry: &BTreeMap<String, serde_json::Value>) -> Result<Favorite, String> {
    let link = match field(entry, &["Link", "VideoLink"]) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(other) => return Err(format!("has a Link that is not a text: {other}")),
        None => return Err("has no Link".into()),
    };
    let favorited_at = match field(entry, &["Date"]) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(
            parse_date(s)
                .ok_or_else(|| format!("has a Date {s:?} not in the form YYYY-MM-DD HH:MM:SS"))?,
        ),
        Some(other) => return Err(format!("has a Date that is not a text: {other}")),
    };
    let raw = serde_json::to_string(entry).map_err(|e| e.to_string())?;
    Ok(Favorite {
        video_id: video_id(&link),
        link,
        favorited_at,
        raw,
    })
}

/// `YYYY-MM-DD HH:MM:SS`, no zone: read as UTC.
fn parse_date(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 19 || b[10] != b' ' {
        return None;
    }
    Timestamp::parse_rfc3339(&format!("{}T{}Z", &s[..10], &s[11..]))
}

/// The video id a link carries: `/video/<id>`, `/photo/<id>`, `/v/<id>.html`, or a long
/// run of digits in an embed path. Short links (`vm.tiktok.com/...`) carry none.
pub fn video_id(link: &str) -> Option<String> {
    let path = link.split(['?', '#']).next().unwrap_or(link);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    for w in segments.windows(2) {
        if matches!(w[0], "video" | "photo") && digits(w[1]) {
            return Some(w[1].to_string());
        }
        if w[0] == "v"
            && let Some(id) = w[1].strip_suffix(".html").filter(|i| digits(i))
        {
            return Some(id.to_string());
        }
    }
    if segments.contains(&"embed") {
        return segments
            .iter()
            .rev()
            .find(|s| digits(s) && (15..=20).contains(&s.len()))
            .map(|s| s.to_string());
    }
    None
}
