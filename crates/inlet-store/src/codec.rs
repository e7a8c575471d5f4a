//! Conversions shared by both backends: stored text forms, counters, validation.

use inlet_core::{
    Checkpoint, ColType, Record, RunStats, StoreError, StreamSpec, StreamStats, Timestamp, Value,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Columns of `runs` holding [`RunStats`], in [`stats_to_array`] order.
pub(crate) const RUN_STAT_COLUMNS: [&str; N_STATS] = [
    "fetched",
    "inserted",
    "updated",
    "unchanged",
    "deleted",
    "pages",
    "requests",
    "retries",
    "rate_limit_wait_ms",
    "items_skipped_with_error",
    "derived_inserted",
    "derived_updated",
    "attachments_fetched",
    "attachments_failed",
    "attachments_skipped",
];

/// Number of counter columns in `runs`.
pub(crate) const N_STATS: usize = 15;

/// The counters as stored (saturating at `i64::MAX`).
pub(crate) fn stats_to_array(s: &RunStats) -> [i64; N_STATS] {
    [
        s.fetched,
        s.inserted,
        s.updated,
        s.unchanged,
        s.deleted,
        s.pages,
        s.requests,
        s.retries,
        s.rate_limit_wait_ms,
        s.items_skipped_with_error,
        s.derived_inserted,
        s.derived_updated,
        s.attachments_fetched,
        s.attachments_failed,
        s.attachments_skipped,
    ]
    .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Counters read back; a negative count is corrupt.
pub(crate) fn stats_from_array(a: [i64; N_STATS]) -> Result<RunStats, StoreError> {
    let mut u = [0u64; N_STATS];
    for (i, v) in a.iter().enumerate() {
        u[i] = u64::try_from(*v).map_err(|_| {
            StoreError::Corrupt(format!("runs.{} is negative: {v}", RUN_STAT_COLUMNS[i]))
        })?;
    }
    let [
        fetched,
        inserted,
        updated,
        unchanged,
        deleted,
        pages,
        requests,
        retries,
        rate_limit_wait_ms,
        items_skipped_with_error,
        derived_inserted,
        derived_updated,
        attachments_fetched,
        attachments_failed,
        attachments_skipped,
    ] = u;
    Ok(RunStats {
        fetched,
        inserted,
        updated,
        unchanged,
        deleted,
        pages,
        requests,
        retries,
        rate_limit_wait_ms,
        items_skipped_with_error,
        derived_inserted,
        derived_updated,
        quota_remaining: None,
        attachments_fetched,
        attachments_failed,
        attachments_skipped,
    })
}

/// A stored RFC 3339 timestamp.
pub(crate) fn parse_ts(s: &str, what: &str) -> Result<Timestamp, StoreError> {
    Timestamp::parse_rfc3339(s)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: not an RFC 3339 UTC time: {s:?}")))
}

/// A stored enum (status, mode, trigger).
pub(crate) fn parse_enum<T: FromStr<Err = String>>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// JSON text of a checkpoint.
pub(crate) fn checkpoint_json(c: &Option<Checkpoint>) -> Result<Option<String>, StoreError> {
    c.as_ref()
        .map(|c| serde_json::to_string(c).map_err(|e| StoreError::Db(format!("checkpoint: {e}"))))
        .transpose()
}

/// A checkpoint from its stored JSON.
pub(crate) fn parse_checkpoint(s: Option<String>) -> Result<Option<Checkpoint>, StoreError> {
    s.map(|s| {
        serde_json::from_str(&s)
            .map_err(|e| StoreError::Corrupt(format!("sync_state.checkpoint: {e}: {s:?}")))
    })
    .transpose()
}

/// JSON text of a run's per-stream stats.
pub(crate) fn streams_json(m: &BTreeMap<String, StreamStats>) -> Result<String, StoreError> {
    serde_json::to_string(m).map_err(|e| StoreError::Db(format!("run streams: {e}")))
}

/// Per-stream stats from their stored JSON.
pub(crate) fn parse_streams(s: &str) -> Result<BTreeMap<String, StreamStats>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("runs.streams: {e}")))
}

/// A connection's config from its stored JSON.
pub(crate) fn parse_config(s: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("connections.config: {e}")))
}

/// A timestamp as a `SystemTime` (PostgreSQL TIMESTAMPTZ).
pub(crate) fn to_system(t: Timestamp) -> SystemTime {
    let d = Duration::from_millis(t.0.unsigned_abs());
    if t.0 >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// A `SystemTime` as a timestamp (whole milliseconds; PostgreSQL keeps microseconds).
pub(crate) fn from_system(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        Err(e) => {
            Timestamp(-i64::try_from(e.duration().as_micros().div_ceil(1000)).unwrap_or(i64::MAX))
        }
    }
}

/// A stored content hash (16 bytes).
pub(crate) fn content_hash(b: &[u8], id: &str) -> Result<[u8; 16], StoreError> {
    b.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "content_hash of {id:?} has {} bytes, not 16",
            b.len()
        ))
    })
}

/// Check that a record fits its stream's columns.
pub(crate) fn check_record(spec: &StreamSpec, r: &Record) -> Result<(), StoreError> {
    if r.values.len() != spec.columns.len() {
        return Err(StoreError::Db(format!(
            "record {:?} of stream {} has {} values for {} columns",
            r.id,
            spec.name,
            r.values.len(),
            spec.columns.len()
        )));
    }
    for (v, c) in r.values.iter().zip(spec.columns) {
        let ok = matches!(
            (v, c.ty),
            (Value::Null, _)
                | (Value::Text(_), ColType::Text)
                | (Value::Int(_), ColType::Int)
                | (Value::Float(_) | Value::Int(_), ColType::Float)
                | (Value::Bool(_), ColType::Bool)
                | (Value::Time(_), ColType::Time)
        );
        if !ok {
            return Err(StoreError::Db(format!(
                "record {:?} of stream {}: value {v:?} does not fit column {} ({:?})",
                r.id, spec.name, c.name, c.ty
            )));
        }
    }
    Ok(())
}

/// The page's records with duplicate ids removed (the last occurrence wins), validated.
pub(crate) fn dedupe<'r>(
    spec: &StreamSpec,
    records: &'r [Record],
) -> Result<Vec<&'r Record>, StoreError> {
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    let mut out: Vec<&Record> = Vec::with_capacity(records.len());
    for r in records {
        check_record(spec, r)?;
        match at.get(r.id.as_str()) {
            Some(&i) => out[i] = r,
            None => {
                at.insert(&r.id, out.len());
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// The derived-group key of a record, as text (NULL keys have no group).
pub(crate) fn group_key(spec: &StreamSpec, r: &Record) -> Option<String> {
    let der = spec.derived?;
    match r.values.get(spec.column_index(der.key)?)? {
        Value::Null => None,
        Value::Text(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Time(t) => Some(t.to_string()),
    }
}

/// What is stored for one id: content hash, tombstoned, group key.
pub(crate) struct Existing {
    pub hash: Vec<u8>,
    pub deleted: bool,
    pub key: Option<String>,
}

/// A page split into the rows to insert and to rewrite.
pub(crate) struct Plan<'r> {
    /// New records and their hashes.
    pub inserts: Vec<(&'r Record, [u8; 16])>,
    /// Changed or revived records and their hashes.
    pub updates: Vec<(&'r Record, [u8; 16])>,
    /// Records whose stored row is live with the same hash.
    pub unchanged: u64,
    /// Derived-group keys the written records had or have.
    pub keys: BTreeSet<String>,
}

/// Classify each (deduplicated) record against its stored row.
/// `keys`: collect the derived-group keys (only needed when the derived rows are
/// refreshed with this page).
pub(crate) fn plan<'r>(
    spec: &StreamSpec,
    records: Vec<&'r Record>,
    existing: &HashMap<String, Existing>,
    keys: bool,
) -> Plan<'r> {
    let mut p = Plan {
        inserts: vec![],
        updates: vec![],
        unchanged: 0,
        keys: BTreeSet::new(),
    };
    for r in records {
        let hash = r.content_hash();
        let old = existing.get(&r.id);
        match old {
            None => p.inserts.push((r, hash)),
            Some(e) if e.deleted || e.hash.as_slice() != hash.as_slice() => {
                p.updates.push((r, hash))
            }
            Some(_) => {
                p.unchanged += 1;
                continue;
            }
        }
        if keys {
            p.keys.extend(group_key(spec, r));
            p.keys.extend(old.and_then(|e| e.key.clone()));
        }
    }
    p
}

/// A staging token no other import of this process or another uses at the same time.
pub(crate) fn import_token(connection_id: i64) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("import:{connection_id}:{}:{nanos}:{n}", std::process::id())
}
