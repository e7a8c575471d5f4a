//! Parent/child streams: a parent listing (conversations) whose items carry a change
//! marker, and a child stream (messages) fetched per parent only when its marker moved.
//!
//! A connector declares its families with [`crate::Connector::families`]; the engine
//! lists the parents, compares each parent's marker with the one stored when its
//! children were last committed, fans out child fetches for the changed ones, and
//! re-checks a random sample of the unchanged ones (a provider's marker can lie).

use crate::{Record, StreamSpec, Timestamp, Value};

/// How many listing pages a progressive parent stream reads per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressivePages {
    /// Pages per delta run.
    pub normal: u32,
    /// Pages per full run.
    pub full: u32,
}

/// Which locally inserted placeholder rows (`stub-*` ids) a real child row replaces.
///
/// An app that just sent a message inserts an optimistic row whose id starts with
/// `stub-`; when a sync (or a refresh) commits the real message, stubs of the same parent
/// whose `match_columns` are equal and whose `time_column` lies within `window_secs` are
/// deleted in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StubRule {
    /// Child column naming the parent (`conversation_id`).
    pub parent_column: &'static str,
    /// Child columns that must be equal (`sender`, `body`).
    pub match_columns: &'static [&'static str],
    /// Child time column compared with tolerance (`created_date`).
    pub time_column: &'static str,
    /// Largest accepted distance between the stub's and the real row's time.
    pub window_secs: i64,
}

/// The id prefix of local placeholder rows.
pub const STUB_PREFIX: &str = "stub-";

impl StubRule {
    /// Whether the real child row `real` replaces a stub whose typed values are `stub`
    /// (both in `child.columns` order).
    pub fn replaced_by(&self, child: &StreamSpec, stub: &[Value], real: &Record) -> bool {
        if real.id.starts_with(STUB_PREFIX) {
            return false;
        }
        let col = |vals: &[Value], name: &str| {
            child
                .column_index(name)
                .and_then(|i| vals.get(i))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let same = |name: &str| {
            let (a, b) = (col(stub, name), col(&real.values, name));
            a != Value::Null && a == b
        };
        if !same(self.parent_column) || !self.match_columns.iter().all(|c| same(c)) {
            return false;
        }
        let time = |vals: &[Value]| match col(vals, self.time_column) {
            Value::Time(t) => Some(t),
            _ => None,
        };
        match (time(stub), time(&real.values)) {
            (Some(a), Some(b)) => (a.0 - b.0).abs() <= self.window_secs * 1000,
            _ => false,
        }
    }
}

/// One parent stream and its child stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Parent stream name (`conversations`).
    pub parent: &'static str,
    /// Child stream name (`messages`); children are only synced through their parents.
    pub child: &'static str,
    /// Parent columns whose values form the change marker (latest message id, unread
    /// count).
    pub marker: &'static [&'static str],
    /// Names of the listings the parents are read from, merged by id
    /// ([`crate::Connector::fetch_listing`]); a listing that is unsupported or fails is
    /// reported and the others go on.
    pub listings: Vec<String>,
    /// Delta runs read the listings with a `since` filter; every Nth run (and every full
    /// run) reads them whole instead, to catch what the filter hides, and tombstones
    /// parents a complete scan no longer returns. 1 = always scan.
    pub full_scan_every: u32,
    /// Delta runs read the listings unfiltered, newest activity first (no `since` is
    /// passed to [`crate::Connector::fetch_listing`]), and stop a listing at the first
    /// parent whose marker is unchanged and whose latest activity ([`Record::sort_ts`])
    /// lies before the watermark minus the stream's lookback. Every change — whoever made
    /// it — is then seen in the same run for one or two listing pages. `false`: delta runs
    /// pass `since` and rely on the provider's time filter.
    pub newest_first: bool,
    /// Read the listing a few pages per run from a stored offset, wrapping to the start
    /// at its end (system mail that has no usable time filter).
    pub progressive: Option<ProgressivePages>,
    /// Child fetches in flight at once.
    pub concurrency: usize,
    /// Share of unchanged parents re-fetched each run to check the marker (at least one).
    pub sample_rate: f64,
    /// Placeholder rows the real children replace.
    pub stubs: Option<StubRule>,
    /// Re-check at least one unchanged parent per run even when the sample picked none
    /// (`false` for a provider whose marker is exact and whose child fetches are
    /// expensive: Slack's `reply_count`/`latest_reply`).
    pub recheck_one: bool,
    /// The re-read overlap of delta listings in seconds, in place of the parent stream's
    /// stop-rule lookback (a per-connection setting, Slack's `lookback_hours`).
    pub lookback_secs: Option<i64>,
    /// A parent time column: a delta that read every listing to its end with `since`
    /// tombstones the live parents at or after `since` it did not list (the listings were
    /// complete within that window; Slack's deleted messages). `None`: only complete
    /// scans tombstone.
    pub window_column: Option<&'static str>,
    /// The child column holding the parent's id: a parent's children read whole replace
    /// its stored ones, and those no longer there are tombstoned. `None`: children are
    /// only added and updated.
    pub child_parent_column: Option<&'static str>,
    /// Each listing keeps its own watermark (Slack's channels): a listing that fails keeps
    /// its old one while the others advance, and a listing never read to its end yet —
    /// one that failed from the start, or was added to the connection later — gets its
    /// first sync ([`Family::first_window_secs`]) on its own. `false`: one watermark for
    /// the stream, advanced only when every listing was read.
    pub listing_cursors: bool,
    /// How far back the first sync of a listing reads, in seconds (Slack's
    /// `first_sync_hours`); the engine passes it as that listing's `since`, and a full run
    /// reads everything. `None`: the first sync reads everything. Only with
    /// [`Family::listing_cursors`].
    pub first_window_secs: Option<i64>,
}

impl Family {
    /// A family with the defaults: one listing, scan every 10th run, 10 child fetches in
    /// flight, 1% sample, at least one re-check per run.
    pub fn new(parent: &'static str, child: &'static str, marker: &'static [&'static str]) -> Self {
        Family {
            parent,
            child,
            marker,
            listings: vec![String::new()],
            full_scan_every: 10,
            newest_first: false,
            progressive: None,
            concurrency: 10,
            sample_rate: 0.01,
            stubs: None,
            recheck_one: true,
            lookback_secs: None,
            window_column: None,
            child_parent_column: None,
            listing_cursors: false,
            first_window_secs: None,
        }
    }

    /// The marker of a parent record: its marker columns' values, unambiguously joined.
    pub fn marker_of(&self, parent: &StreamSpec, rec: &Record) -> String {
        let mut out = String::new();
        for name in self.marker {
            let v = parent.column_index(name).and_then(|i| rec.values.get(i));
            let part = match v {
                None | Some(Value::Null) => "-".to_string(),
                Some(Value::Text(s)) => format!("t{}:{s}", s.len()),
                Some(Value::Int(i)) => format!("i{i}"),
                Some(Value::Float(f)) => format!("f{f}"),
                Some(Value::Bool(b)) => format!("b{b}"),
                Some(Value::Time(t)) => format!("T{}", Timestamp::millis(*t)),
            };
            out.push_str(&part);
            out.push('|');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ColType, Column, StopRule};

    static COLS: &[Column] = &[
        Column::new("conversation_id", ColType::Text, ""),
        Column::new("sender", ColType::Text, ""),
        Column::new("body", ColType::Text, ""),
        Column::new("created_date", ColType::Time, ""),
    ];
    static SPEC: StreamSpec = StreamSpec {
        name: "messages",
        table: "t",
        doc: "",
        columns: COLS,
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    };
    const RULE: StubRule = StubRule {
        parent_column: "conversation_id",
        match_columns: &["sender", "body"],
        time_column: "created_date",
        window_secs: 600,
    };

    fn vals(c: &str, s: &str, b: &str, t: i64) -> Vec<Value> {
        vec![
            Value::Text(c.into()),
            Value::Text(s.into()),
            Value::Text(b.into()),
            Value::Time(Timestamp::from_secs(t)),
        ]
    }

    #[test]
    fn stub_matching() {
        let stub = vals("c1", "me", "hi", 1000);
        let real = Record::new("m1", vals("c1", "me", "hi", 1300), String::new());
        assert!(RULE.replaced_by(&SPEC, &stub, &real));
        let far = Record::new("m1", vals("c1", "me", "hi", 1000 + 601), String::new());
        assert!(!RULE.replaced_by(&SPEC, &stub, &far));
        let other_text = Record::new("m1", vals("c1", "me", "hi!", 1000), String::new());
        assert!(!RULE.replaced_by(&SPEC, &stub, &other_text));
        let other_conv = Record::new("m1", vals("c2", "me", "hi", 1000), String::new());
        assert!(!RULE.replaced_by(&SPEC, &stub, &other_conv));
        let another_stub = Record::new("stub-2", vals("c1", "me", "hi", 1000), String::new());
        assert!(!RULE.replaced_by(&SPEC, &stub, &another_stub));
    }

    #[test]
    fn markers_differ_by_value_and_type() {
        let fam = Family::new("p", "c", &["conversation_id", "sender"]);
        let a = Record::new("x", vals("a", "b|c", "", 0), String::new());
        let b = Record::new("x", vals("a|b", "c", "", 0), String::new());
        assert_ne!(fam.marker_of(&SPEC, &a), fam.marker_of(&SPEC, &b));
        assert_eq!(fam.marker_of(&SPEC, &a), fam.marker_of(&SPEC, &a.clone()));
    }
}
