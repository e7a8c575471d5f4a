//! The listing protocol: `limit`/`after`/`before`/`count`, the ~1000 item cap, and the
//! `{"kind": "Listing", ...}` envelope.

use super::data::{Item, Key, Listing, Model};
use super::render::{Scratch, write_child};
use crate::json::JsonWriter;

/// Parsed listing query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageParams {
    /// Page size, already clamped to `1..=100`.
    pub limit: usize,
    /// Anchor: return items older than it.
    pub after: Option<String>,
    /// Anchor: return items newer than it (ignored when `after` is set).
    pub before: Option<String>,
    /// Items the client says it has already seen.
    pub count: u64,
    /// `raw_json=1` was given.
    pub raw_json: bool,
}

impl PageParams {
    /// Parses decoded query pairs; unknown keys (`show`, `mark`, ...) are ignored.
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty()).map(str::to_string);
        PageParams {
            limit: get("limit")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map_or(25, |n| n.clamp(1, 100) as usize),
            after: nonempty("after"),
            before: nonempty("before"),
            count: get("count").and_then(|v| v.parse().ok()).unwrap_or(0),
            raw_json: get("raw_json").is_some_and(|v| v == "1"),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Page {
    pub items: Vec<Item>,
    pub after: Option<Item>,
    pub before: Option<Item>,
}

/// The key of the oldest reachable item when a cap applies (scans at most `cap` items).
fn cutoff(m: &Model, listing: Listing, cap: Option<u64>) -> Option<Key> {
    let cap = cap?;
    if cap == 0 {
        return Some((i64::MAX, u64::MAX));
    }
    m.stream(listing, None, true)
        .nth(cap as usize - 1)
        .map(|(k, _)| k)
}

/// Computes the page `p` of `listing` under an optional cap.
pub(crate) fn page(m: &Model, listing: Listing, p: &PageParams, cap: Option<u64>) -> Page {
    let floor = cutoff(m, listing, cap);
    let reachable = |k: &Key| floor.is_none_or(|f| *k >= f);
    let anchor = match p.after.as_deref().or(p.before.as_deref()) {
        None => None,
        Some(name) => match m.parse_in(listing, name).and_then(|it| m.key(it)) {
            Some(k) if reachable(&k) => Some(k),
            _ => return Page::default(),
        },
    };
    if p.after.is_none() && p.before.is_some() {
        return page_before(m, listing, p, anchor);
    }
    let mut got: Vec<(Key, Item)> = m
        .stream(listing, anchor, true)
        .take_while(|(k, _)| reachable(k))
        .take(p.limit + 1)
        .collect();
    let more = got.len() > p.limit;
    got.truncate(p.limit);
    let items: Vec<Item> = got.into_iter().map(|(_, it)| it).collect();
    Page {
        after: if more { items.last().copied() } else { None },
        before: if anchor.is_some() && p.count > 0 {
            items.first().copied()
        } else {
            None
        },
        items,
    }
}

fn page_before(m: &Model, listing: Listing, p: &PageParams, anchor: Option<Key>) -> Page {
    let mut got: Vec<Item> = m
        .stream(listing, anchor, false)
        .take(p.limit + 1)
        .map(|(_, it)| it)
        .collect();
    let more_newer = got.len() > p.limit;
    got.truncate(p.limit);
    got.reverse();
    Page {
        after: got.last().copied(),
        before: if more_newer {
            got.first().copied()
        } else {
            None
        },
        items: got,
    }
}

/// Writes the Listing envelope for `page` into `out`.
pub(crate) fn write_listing(
    m: &Model,
    page: &Page,
    legacy: bool,
    out: &mut Vec<u8>,
    s: &mut Scratch,
) {
    let mut w = JsonWriter::new(out, legacy);
    w.begin_obj();
    w.str("kind", "Listing");
    w.obj("data");
    w.opt_str("after", page.after.map(|it| m.fullname(it)).as_deref());
    w.int("dist", page.items.len() as i64);
    w.null("modhash");
    w.str("geo_filter", "");
    w.arr("children");
    for &item in &page.items {
        write_child(m, item, &mut w, s);
    }
    w.end_arr();
    w.opt_str("before", page.before.map(|it| m.fullname(it)).as_deref());
    w.end_obj();
    w.end_obj();
}

/// Every item of `listing`, newest first, ignoring any cap.
pub(crate) fn all(m: &Model, listing: Listing) -> Vec<Item> {
    m.stream(listing, None, true).map(|(_, it)| it).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reddit::data::Shape;

    /// Server-side rendering throughput; run with
    /// `cargo test --release -p inlet-sim --lib render_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn render_speed() {
        let m = Model::new(Shape {
            seed: 1,
            username: "me".into(),
            messages: 1_000_000,
            replies: 0,
            saved: 0,
            base_time: 1_600_000_000,
        });
        let mut s = Scratch::default();
        let mut out = Vec::new();
        let started = std::time::Instant::now();
        let (mut n, mut bytes) = (0, 0);
        for listing in [Listing::Inbox, Listing::Sent] {
            let mut p = PageParams::from_pairs(&[("limit".into(), "100".into())]);
            loop {
                let page = page(&m, listing, &p, None);
                out.clear();
                write_listing(&m, &page, false, &mut out, &mut s);
                n += page.items.len();
                bytes += out.len();
                match page.after {
                    Some(a) => p.after = Some(m.fullname(a)),
                    None => break,
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "rendered {n} items, {bytes} bytes in {secs:.2}s: {:.0} items/s",
            n as f64 / secs
        );
    }
}
