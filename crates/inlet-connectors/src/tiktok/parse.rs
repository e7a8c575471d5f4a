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
    /// The video id the link carries.
    pub video_id: String,
    /// The link as written.
    pub link: String,
    /// When it was favourited (the export's date read as UTC).
    pub favorited_at: Option<Timestamp>,
    /// The entry's JSON.
    pub raw: String,
}

/// One entry of a favourites list.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A favourite with a video id.
    Favorite(Favorite),
    /// A short link (`vm.tiktok.com`, `vt.tiktok.com`): the id is only known after an
    /// HTTP redirect, which an offline import does not follow.
    Unresolved,
    /// Not a video: an empty link, "N/A", a profile or tag link, `/video/notanumber`.
    Skipped,
}

/// What a first read of the export found ([`scan_export`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scan {
    /// The section the favourites list is read from.
    pub section: &'static str,
    /// Entries of that list (repeats of one video included).
    pub entries: u64,
    /// Entries with a video id.
    pub favorites: u64,
    /// Short links, which carry no id.
    pub unresolved: u64,
    /// Entries that name no video.
    pub skipped: u64,
}

impl Scan {
    fn count(&mut self, e: &Entry) {
        self.entries += 1;
        match e {
            Entry::Favorite(_) => self.favorites += 1,
            Entry::Unresolved => self.unresolved += 1,
            Entry::Skipped => self.skipped += 1,
        }
    }
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
    /// The export has no favourites list at any known place; importing it as an empty
    /// list would remove every stored favourite.
    #[error(
        "the export has no favourites list (looked for {}); nothing was imported",
        favorite_paths()
    )]
    NoFavorites,
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

/// Where favourites lists are looked for, as `A/B/C` paths joined for a message.
pub fn favorite_paths() -> String {
    FAVORITE_SECTIONS
        .iter()
        .map(|s| format!("\"{s}/Favorite Videos/FavoriteVideoList\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reader that drops a leading UTF-8 byte order mark (some editors and Windows tools
/// write one; JSON parsers refuse it).
struct SkipBom<R> {
    inner: R,
    start: [u8; 3],
    /// Bytes of `start` still to hand out: `at..len`.
    at: usize,
    len: usize,
    checked: bool,
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked {
            self.checked = true;
            while self.len < 3 {
                let n = self.inner.read(&mut self.start[self.len..])?;
                if n == 0 {
                    break;
                }
                self.len += n;
            }
            if self.start[..self.len] == [0xEF, 0xBB, 0xBF] {
                self.at = 3;
            }
        }
        if self.at < self.len {
            let n = (self.len - self.at).min(buf.len());
            buf[..n].copy_from_slice(&self.start[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// Walk the export in `reader` (at most `max_bytes`), handing every entry of every
/// favourites list to `sink` with its section.
fn walk(
    reader: impl Read,
    max_bytes: u64,
    sink: &mut dyn FnMut(&'static str, Entry) -> Result<(), String>,
) -> Result<Found, ParseError> {
    let mut limited = Limited {
        inner: io::BufReader::with_capacity(
            1 << 16,
            SkipBom {
                inner: reader,
                start: [0; 3],
                at: 0,
                len: 0,
                checked: false,
            },
        ),
        left: max_bytes,
        exceeded: false,
    };
    let mut found = Found::default();
    let result = {
        let mut de = serde_json::Deserializer::from_reader(&mut limited);
        Root {
            found: &mut found,
            sink,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
    };
    if limited.exceeded {
        return Err(ParseError::TooLarge { limit: max_bytes });
    }
    if let Some(why) = found.stopped.take() {
        return Err(ParseError::Io(io::Error::other(why)));
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
    Ok(found)
}

/// Read the whole export from `reader` (at most `max_bytes`) without keeping its
/// entries: check it, choose the favourites list (the first non-empty one in
/// [`FAVORITE_SECTIONS`] order, else the first present one) and count its entries. A file
/// without a favourites list at any known place is refused ([`ParseError::NoFavorites`]).
pub fn scan_export(reader: impl Read, max_bytes: u64) -> Result<Scan, ParseError> {
    let mut scans: Vec<Scan> = Vec::new();
    let found = walk(reader, max_bytes, &mut |section, entry| {
        let i = match scans.iter().position(|s| s.section == section) {
            Some(i) => i,
            None => {
                scans.push(Scan {
                    section,
                    ..Scan::default()
                });
                scans.len() - 1
            }
        };
        scans[i].count(&entry);
        Ok(())
    })?;
    let lists: Vec<Scan> = FAVORITE_SECTIONS
        .iter()
        .filter(|s| found.lists.contains(s))
        .map(|s| {
            scans
                .iter()
                .find(|c| c.section == *s)
                .copied()
                .unwrap_or(Scan {
                    section: s,
                    ..Scan::default()
                })
        })
        .collect();
    lists
        .iter()
        .find(|s| s.entries > 0)
        .or(lists.first())
        .copied()
        .ok_or(ParseError::NoFavorites)
}

/// Read the export from `reader` again and hand each entry of the favourites list in
/// `section` (as [`scan_export`] chose it) to `sink`, in file order. `sink` returning an
/// error stops the read.
pub fn read_favorites(
    reader: impl Read,
    max_bytes: u64,
    section: &'static str,
    sink: &mut dyn FnMut(Entry) -> Result<(), String>,
) -> Result<(), ParseError> {
    walk(reader, max_bytes, &mut |s, entry| {
        if s == section { sink(entry) } else { Ok(()) }
    })?;
    Ok(())
}

#[derive(Default)]
struct Found {
    top_keys: Vec<String>,
    known_section: bool,
    /// Sections whose favourites list is present (even when null or empty).
    lists: Vec<&'static str>,
    not_export: Option<String>,
    /// Why the sink stopped the read.
    stopped: Option<String>,
}

type Sink<'s> = &'s mut dyn FnMut(&'static str, Entry) -> Result<(), String>;

struct Root<'a, 's> {
    found: &'a mut Found,
    sink: Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for Root<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

fn not_export<E: de::Error>(found: &mut Found, what: String) -> E {
    found.not_export = Some(what.clone());
    E::custom(what)
}

impl<'de> Visitor<'de> for Root<'_, '_> {
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
                    sink: &mut *self.sink,
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
struct Section<'a, 's> {
    section: &'static str,
    found: &'a mut Found,
    sink: Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for Section<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Section<'_, '_> {
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
                    sink: &mut *self.sink,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `Favorite Videos`: only `FavoriteVideoList` is read.
struct FavoriteVideos<'a, 's> {
    section: &'static str,
    found: &'a mut Found,
    sink: Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for FavoriteVideos<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FavoriteVideos<'_, '_> {
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
                if !self.found.lists.contains(&self.section) {
                    self.found.lists.push(self.section);
                }
                map.next_value_seed(List {
                    section: self.section,
                    found: &mut *self.found,
                    sink: &mut *self.sink,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `FavoriteVideoList`: an array of `{Date, Link}` objects, or null; each entry goes to
/// the sink as it is read.
struct List<'a, 's> {
    section: &'static str,
    found: &'a mut Found,
    sink: Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for List<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for List<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/Favorite Videos/FavoriteVideoList to be a list",
            self.section
        )
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0u64;
        while let Some(entry) = seq.next_element::<BTreeMap<String, serde_json::Value>>()? {
            n += 1;
            let e = entry_of(&entry).map_err(|m| {
                de::Error::custom(format!(
                    "entry {n} of {}/Favorite Videos/FavoriteVideoList {m}",
                    self.section
                ))
            })?;
            if let Err(why) = (self.sink)(self.section, e) {
                self.found.stopped = Some(why.clone());
                return Err(de::Error::custom(why));
            }
        }
        Ok(())
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

fn entry_of(entry: &BTreeMap<String, serde_json::Value>) -> Result<Entry, String> {
    let link = match field(entry, &["Link", "VideoLink"]) {
        Some(serde_json::Value::String(s)) => s.trim(),
        // An empty link names no video: skipped, not a reason to refuse the file.
        Some(serde_json::Value::Null) => "",
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
    let Some(video_id) = video_id(link) else {
        return Ok(if is_short_link(link) {
            Entry::Unresolved
        } else {
            Entry::Skipped
        });
    };
    let raw = serde_json::to_string(entry).map_err(|e| e.to_string())?;
    Ok(Entry::Favorite(Favorite {
        video_id,
        link: link.to_string(),
        favorited_at,
        raw,
    }))
}

/// Whether `link` is a short link (`vm.tiktok.com/...`, `vt.tiktok.com/...`), which names
/// a video only through an HTTP redirect.
pub fn is_short_link(link: &str) -> bool {
    let rest = link.split_once("://").map_or(link, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next().unwrap_or(host);
    host.eq_ignore_ascii_case("vm.tiktok.com") || host.eq_ignore_ascii_case("vt.tiktok.com")
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
/// An id is 1 to 20 digits.
pub fn video_id(link: &str) -> Option<String> {
    let path = link.split(['?', '#']).next().unwrap_or(link);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Ids are 64-bit integers: at most 20 digits.
    let digits = |s: &str| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
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
