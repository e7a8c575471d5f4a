//! The procedural data model: every base item is a pure function of `(seed, index)`; only
//! items added, edited, deleted or (un)saved through the hooks live in memory (the overlay).

use crate::util::{Rng, base36, parse_fullname};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::iter::Peekable;
use std::ops::Bound;

/// Id value of private message `i` is `T4_BASE + i`.
pub(crate) const T4_BASE: u64 = 0x2000_0000;
/// Id value of inbox comment reply `j` is `T1_REPLY_BASE + j`.
pub(crate) const T1_REPLY_BASE: u64 = 0x3000_0000;
/// Id value of saved submission `k` (even) is `SAVED_T3_BASE + k`.
pub(crate) const SAVED_T3_BASE: u64 = 0x0800_0000;
/// Id value of saved comment `k` (odd) is `SAVED_T1_BASE + k`.
pub(crate) const SAVED_T1_BASE: u64 = 0x3800_0000;
/// Seconds between consecutive base messages.
const MSG_STEP: i64 = 60;
/// Seconds between consecutive comment replies, and their offset from `base_time`.
const REPLY_STEP: i64 = 1200;
const REPLY_OFFSET: i64 = 30;

/// Sort key: (created or save order, id value). Listings are newest (largest key) first.
pub(crate) type Key = (i64, u64);

/// One item of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item {
    /// Private message by global index (base `< messages`, added above).
    Msg(u64),
    /// Inbox comment reply `j`.
    Reply(u64),
    /// Saved item `k` (even: t3 submission, odd: t1 comment).
    Saved(u64),
}

/// Which listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    /// `/message/inbox`: received messages and comment replies.
    Inbox,
    /// `/message/sent`: messages the user wrote.
    Sent,
    /// `/user/{me}/saved`.
    Saved,
}

/// A message added through a hook.
#[derive(Debug, Clone)]
pub(crate) struct Added {
    pub root: u64,
    pub from_me: bool,
    /// Sent to the user by the user: listed in the sent listing and in the inbox.
    pub to_me: bool,
    pub created: i64,
    pub body: String,
    pub partner: String,
    pub subject: String,
    pub new: bool,
}

/// Overrides of a generated item's mutable fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct Edit {
    pub body: Option<String>,
    pub new: Option<bool>,
}

/// Everything the simulator serves.
#[derive(Debug)]
pub(crate) struct Model {
    pub seed: u64,
    pub username: String,
    pub messages: u64,
    pub replies: u64,
    /// Number of base conversations `C`.
    pub convs: u64,
    pub base_time: i64,
    added: HashMap<u64, Added>,
    added_keys: BTreeMap<Key, u64>,
    next_msg: u64,
    edits: HashMap<u64, Edit>,
    deleted: HashSet<u64>,
    saved_base: u64,
    next_saved: u64,
    next_order: u64,
    save_override: HashMap<u64, Option<u64>>,
    saved_by_order: BTreeMap<u64, u64>,
    scores: HashMap<u64, i64>,
}

/// Parameters of the procedural data set.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub seed: u64,
    pub username: String,
    pub messages: u64,
    pub replies: u64,
    pub saved: u64,
    pub base_time: i64,
}

type ItemIter<'a> = Box<dyn Iterator<Item = (Key, Item)> + 'a>;

impl Model {
    /// A model with no overlay.
    pub(crate) fn new(s: Shape) -> Self {
        Model {
            seed: s.seed,
            username: s.username,
            messages: s.messages,
            replies: s.replies,
            convs: s.messages.div_ceil(8).max(1),
            base_time: s.base_time,
            added: HashMap::new(),
            added_keys: BTreeMap::new(),
            next_msg: s.messages,
            edits: HashMap::new(),
            deleted: HashSet::new(),
            saved_base: s.saved,
            next_saved: s.saved,
            next_order: s.saved,
            save_override: HashMap::new(),
            saved_by_order: BTreeMap::new(),
            scores: HashMap::new(),
        }
    }

    // ---- messages -------------------------------------------------------------------------

    /// The added message `idx`, if it is one.
    pub(crate) fn added(&self, idx: u64) -> Option<&Added> {
        self.added.get(&idx)
    }

    /// Whether message `idx` exists (deleted or not).
    pub(crate) fn msg_exists(&self, idx: u64) -> bool {
        idx < self.messages || self.added.contains_key(&idx)
    }

    /// Whether message `idx` was written by the user.
    pub(crate) fn by_me(&self, idx: u64) -> bool {
        match self.added.get(&idx) {
            Some(a) => a.from_me,
            None => ((idx / self.convs) + idx % self.convs) % 2 == 1,
        }
    }

    /// Whether message `idx` was sent by the user to the user.
    pub(crate) fn to_me(&self, idx: u64) -> bool {
        self.added.get(&idx).is_some_and(|a| a.to_me)
    }

    /// The conversation root of message `idx`.
    pub(crate) fn root_of(&self, idx: u64) -> u64 {
        match self.added.get(&idx) {
            Some(a) => a.root,
            None => idx % self.convs,
        }
    }

    /// Creation time (seconds) of message `idx`.
    pub(crate) fn msg_created(&self, idx: u64) -> i64 {
        match self.added.get(&idx) {
            Some(a) => a.created,
            None => self.base_time + MSG_STEP * idx as i64,
        }
    }

    /// Creation time (seconds) of comment reply `j`.
    pub(crate) fn reply_created(&self, j: u64) -> i64 {
        self.base_time + REPLY_STEP * j as i64 + REPLY_OFFSET
    }

    /// The edit overlay of the item with id value `idv`.
    pub(crate) fn edit(&self, idv: u64) -> Option<&Edit> {
        if self.edits.is_empty() {
            None
        } else {
            self.edits.get(&idv)
        }
    }

    fn is_deleted(&self, idv: u64) -> bool {
        !self.deleted.is_empty() && self.deleted.contains(&idv)
    }

    /// Adds a message; returns its index.
    pub(crate) fn add_message(&mut self, mut a: Added) -> u64 {
        let idx = self.next_msg;
        self.next_msg += 1;
        if a.root == u64::MAX {
            a.root = idx;
        }
        self.added_keys.insert((a.created, T4_BASE + idx), idx);
        self.added.insert(idx, a);
        idx
    }

    /// Sets partner and subject of an added message that started a new conversation.
    pub(crate) fn set_added_conversation(&mut self, idx: u64, partner: String, subject: String) {
        if let Some(a) = self.added.get_mut(&idx) {
            a.partner = partner;
            a.subject = subject;
        }
    }

    /// Records an edit of a message or comment reply; false if unknown or deleted.
    pub(crate) fn edit_item(&mut self, item: Item, body: Option<&str>, new: Option<bool>) -> bool {
        let idv = self.id_value(item);
        if self.is_deleted(idv) || matches!(item, Item::Saved(_)) {
            return false;
        }
        // A message the user sent (to someone else) is never unread.
        let sent = matches!(item, Item::Msg(i) if self.by_me(i) && !self.to_me(i));
        let e = self.edits.entry(idv).or_default();
        if let Some(b) = body {
            e.body = Some(b.to_string());
        }
        if let Some(n) = new {
            e.new = Some(n && !sent);
        }
        true
    }

    /// Deletes a message or comment reply from the user's view; false if unknown or deleted.
    pub(crate) fn delete_item(&mut self, item: Item) -> bool {
        matches!(item, Item::Msg(_) | Item::Reply(_)) && self.deleted.insert(self.id_value(item))
    }

    // ---- saved ----------------------------------------------------------------------------

    /// Current save order of saved item `k`; `None` when not saved (or unknown).
    pub(crate) fn save_order(&self, k: u64) -> Option<u64> {
        if k >= self.next_saved {
            return None;
        }
        match self.save_override.get(&k) {
            Some(o) => *o,
            None => (k < self.saved_base).then_some(k),
        }
    }

    /// Saves (or re-saves, moving to the top) item `k`.
    pub(crate) fn save(&mut self, k: u64) -> bool {
        if k >= self.next_saved {
            return false;
        }
        if let Some(old) = self.save_order(k) {
            self.saved_by_order.remove(&old);
        }
        let order = self.next_order;
        self.next_order += 1;
        self.save_override.insert(k, Some(order));
        self.saved_by_order.insert(order, k);
        true
    }

    /// Saves a brand-new item; returns its `k`.
    pub(crate) fn save_new(&mut self) -> u64 {
        let k = self.next_saved;
        self.next_saved += 1;
        self.save(k);
        k
    }

    /// Unsaves item `k`; false if it was not saved.
    pub(crate) fn unsave(&mut self, k: u64) -> bool {
        match self.save_order(k) {
            Some(o) => {
                self.saved_by_order.remove(&o);
                self.save_override.insert(k, None);
                true
            }
            None => false,
        }
    }

    /// Sets the score of saved item `k`; false if unknown.
    pub(crate) fn set_score(&mut self, k: u64, score: i64) -> bool {
        if k >= self.next_saved {
            return false;
        }
        self.scores.insert(k, score);
        true
    }

    /// The overridden score of saved item `k`.
    pub(crate) fn score_override(&self, k: u64) -> Option<i64> {
        self.scores.get(&k).copied()
    }

    // ---- identity -------------------------------------------------------------------------

    /// Id value (base36-decoded id) of an item.
    pub(crate) fn id_value(&self, item: Item) -> u64 {
        match item {
            Item::Msg(i) => T4_BASE + i,
            Item::Reply(j) => T1_REPLY_BASE + j,
            Item::Saved(k) if k % 2 == 0 => SAVED_T3_BASE + k,
            Item::Saved(k) => SAVED_T1_BASE + k,
        }
    }

    /// Kind prefix (`t1`, `t3`, `t4`) of an item.
    pub(crate) fn kind(item: Item) -> &'static str {
        match item {
            Item::Msg(_) => "t4",
            Item::Reply(_) => "t1",
            Item::Saved(k) if k % 2 == 0 => "t3",
            Item::Saved(_) => "t1",
        }
    }

    /// Fullname (`t4_xxxx`) of an item.
    pub(crate) fn fullname(&self, item: Item) -> String {
        format!("{}_{}", Self::kind(item), base36(self.id_value(item)))
    }

    /// Resolves a fullname to an existing message or comment reply (deleted ones included).
    pub(crate) fn parse_message(&self, fullname: &str) -> Option<Item> {
        let (kind, v) = parse_fullname(fullname)?;
        match kind {
            "t4" => {
                let idx = v.checked_sub(T4_BASE)?;
                self.msg_exists(idx).then_some(Item::Msg(idx))
            }
            "t1" => {
                let j = v.checked_sub(T1_REPLY_BASE)?;
                (j < self.replies).then_some(Item::Reply(j))
            }
            _ => None,
        }
    }

    /// Resolves a fullname to a saved-item slot (saved or not).
    pub(crate) fn parse_saved(&self, fullname: &str) -> Option<Item> {
        let (kind, v) = parse_fullname(fullname)?;
        let k = match kind {
            "t3" => v.checked_sub(SAVED_T3_BASE).filter(|k| k % 2 == 0)?,
            "t1" => v.checked_sub(SAVED_T1_BASE).filter(|k| k % 2 == 1)?,
            _ => return None,
        };
        (k < self.next_saved).then_some(Item::Saved(k))
    }

    /// Resolves a fullname in the namespace of `listing`.
    pub(crate) fn parse_in(&self, listing: Listing, fullname: &str) -> Option<Item> {
        match listing {
            Listing::Saved => self.parse_saved(fullname),
            _ => self.parse_message(fullname),
        }
    }

    /// Sort key of an item; `None` for an unsaved saved-slot.
    pub(crate) fn key(&self, item: Item) -> Option<Key> {
        match item {
            Item::Msg(i) => Some((self.msg_created(i), T4_BASE + i)),
            Item::Reply(j) => Some((self.reply_created(j), T1_REPLY_BASE + j)),
            Item::Saved(k) => self.save_order(k).map(|o| (o as i64, k)),
        }
    }

    /// Whether `item` is currently listed in `listing`.
    pub(crate) fn member(&self, listing: Listing, item: Item) -> bool {
        match (listing, item) {
            (Listing::Saved, Item::Saved(k)) => self.save_order(k).is_some(),
            (Listing::Inbox, Item::Reply(j)) => !self.is_deleted(T1_REPLY_BASE + j),
            (Listing::Inbox, Item::Msg(i)) => {
                (!self.by_me(i) || self.to_me(i)) && !self.is_deleted(T4_BASE + i)
            }
            (Listing::Sent, Item::Msg(i)) => self.by_me(i) && !self.is_deleted(T4_BASE + i),
            _ => false,
        }
    }

    // ---- ordered streams --------------------------------------------------------------------

    /// Items of `listing` strictly beyond `bound` (older when `desc`, newer otherwise), in order.
    pub(crate) fn stream(&self, listing: Listing, bound: Option<Key>, desc: bool) -> Merge<'_> {
        let mut parts: Vec<ItemIter<'_>> = Vec::with_capacity(3);
        match listing {
            Listing::Inbox | Listing::Sent => {
                let (t0, id0) = (self.base_time, T4_BASE);
                parts.push(self.arith(
                    listing,
                    (t0, MSG_STEP, id0, self.messages),
                    bound,
                    desc,
                    Item::Msg,
                ));
                if listing == Listing::Inbox {
                    let (t0, id0) = (self.base_time + REPLY_OFFSET, T1_REPLY_BASE);
                    parts.push(self.arith(
                        listing,
                        (t0, REPLY_STEP, id0, self.replies),
                        bound,
                        desc,
                        Item::Reply,
                    ));
                }
                let added = range(&self.added_keys, bound, desc).map(|(k, &i)| (*k, Item::Msg(i)));
                parts.push(Box::new(
                    added.filter(move |(_, it)| self.member(listing, *it)),
                ));
            }
            Listing::Saved => {
                let base = self.arith(
                    listing,
                    (0, 1, 0, self.saved_base),
                    bound,
                    desc,
                    Item::Saved,
                );
                parts.push(Box::new(
                    base.filter(move |(_, it)| matches!(it, Item::Saved(k) if !self.save_override.contains_key(k))),
                ));
                let bound = bound.map(|(o, _)| o as u64);
                let moved = range(&self.saved_by_order, bound, desc);
                parts.push(Box::new(
                    moved.map(|(o, &k)| ((*o as i64, k), Item::Saved(k))),
                ));
            }
        }
        Merge {
            parts: parts.into_iter().map(Iterator::peekable).collect(),
            desc,
        }
    }

    /// A stream over an arithmetic sequence of items with keys `(t0 + step*i, id0 + i)`.
    fn arith(
        &self,
        listing: Listing,
        (t0, step, id0, len): (i64, i64, u64, u64),
        bound: Option<Key>,
        desc: bool,
        make: fn(u64) -> Item,
    ) -> ItemIter<'_> {
        let key = move |i: u64| (t0 + step * i as i64, id0 + i);
        let keep = move |i: &u64| self.member(listing, make(*i));
        if desc {
            let end = bound.map_or(len, |b| arith_count(t0, step, id0, len, b, false));
            Box::new((0..end).rev().filter(keep).map(move |i| (key(i), make(i))))
        } else {
            let start = bound.map_or(0, |b| arith_count(t0, step, id0, len, b, true));
            Box::new((start..len).filter(keep).map(move |i| (key(i), make(i))))
        }
    }
}

/// Number of `i < len` whose key `(t0 + step*i, id0 + i)` is `< b` (or `<= b`).
fn arith_count(t0: i64, step: i64, id0: u64, len: u64, b: Key, inclusive: bool) -> u64 {
    if b.0 < t0 || len == 0 {
        return 0;
    }
    let i0 = ((b.0 - t0) / step) as u64;
    if i0 >= len {
        return len;
    }
    let k0 = (t0 + step * i0 as i64, id0 + i0);
    if k0 < b || (inclusive && k0 == b) {
        i0 + 1
    } else {
        i0
    }
}

/// Entries of `map` strictly beyond `bound` in the requested direction.
fn range<'a, K: Ord + Copy + 'a, V: 'a>(
    map: &'a BTreeMap<K, V>,
    bound: Option<K>,
    desc: bool,
) -> Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a> {
    match (bound, desc) {
        (None, true) => Box::new(map.iter().rev()),
        (None, false) => Box::new(map.iter()),
        (Some(b), true) => Box::new(map.range((Bound::Unbounded, Bound::Excluded(b))).rev()),
        (Some(b), false) => Box::new(map.range((Bound::Excluded(b), Bound::Unbounded))),
    }
}

/// A k-way merge of key-ordered item streams.
pub(crate) struct Merge<'a> {
    parts: Vec<Peekable<ItemIter<'a>>>,
    desc: bool,
}

impl Iterator for Merge<'_> {
    type Item = (Key, Item);

    fn next(&mut self) -> Option<(Key, Item)> {
        let mut best: Option<(usize, Key)> = None;
        for (n, p) in self.parts.iter_mut().enumerate() {
            if let Some(&(k, _)) = p.peek() {
                let better = best.is_none_or(|(_, b)| if self.desc { k > b } else { k < b });
                if better {
                    best = Some((n, k));
                }
            }
        }
        self.parts[best?.0].next()
    }
}

/// Deterministic per-item randomness.
pub(crate) fn rng(seed: u64, salt: u64, index: u64) -> Rng {
    Rng::derive(seed, salt, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(messages: u64, replies: u64, saved: u64) -> Model {
        Model::new(Shape {
            seed: 7,
            username: "me".into(),
            messages,
            replies,
            saved,
            base_time: 1_000_000,
        })
    }

    #[test]
    fn inbox_and_sent_partition_messages_in_order() {
        let m = model(100, 10, 0);
        let inbox: Vec<_> = m.stream(Listing::Inbox, None, true).collect();
        let sent: Vec<_> = m.stream(Listing::Sent, None, true).collect();
        let msgs_in_inbox = inbox
            .iter()
            .filter(|(_, i)| matches!(i, Item::Msg(_)))
            .count();
        assert_eq!(msgs_in_inbox + sent.len(), 100);
        assert_eq!(inbox.len() - msgs_in_inbox, 10);
        assert!(inbox.windows(2).all(|w| w[0].0 > w[1].0));
        let mid = inbox[17].0;
        let older: Vec<_> = m.stream(Listing::Inbox, Some(mid), true).collect();
        assert_eq!(older, inbox[18..]);
        let newer: Vec<_> = m.stream(Listing::Inbox, Some(mid), false).collect();
        assert_eq!(newer.len(), 17);
        assert_eq!(newer[0], inbox[16]);
    }

    #[test]
    fn saved_order_follows_saves() {
        let mut m = model(0, 0, 6);
        let order = |m: &Model| -> Vec<Item> {
            m.stream(Listing::Saved, None, true).map(|x| x.1).collect()
        };
        assert_eq!(order(&m)[0], Item::Saved(5));
        assert!(m.save(2));
        assert!(m.unsave(4));
        let k = m.save_new();
        assert_eq!(k, 6);
        let o = order(&m);
        assert_eq!(o[..3], [Item::Saved(6), Item::Saved(2), Item::Saved(5)]);
        assert_eq!(o.len(), 6);
        let bound = m.key(Item::Saved(2));
        let rest: Vec<_> = m.stream(Listing::Saved, bound, true).map(|x| x.1).collect();
        assert_eq!(rest, o[2..]);
    }
}
