//! Streams: the kinds of record a connector offers, with their typed columns.

/// The SQL type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// TEXT.
    Text,
    /// BIGINT / INTEGER.
    Int,
    /// DOUBLE PRECISION / REAL.
    Float,
    /// BOOLEAN (SQLite: INTEGER 0/1).
    Bool,
    /// TIMESTAMPTZ (SQLite: RFC 3339 TEXT in UTC).
    Time,
}

/// One typed column of a record table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name, stable: users query it.
    pub name: &'static str,
    /// SQL type.
    pub ty: ColType,
    /// What it holds (goes into the docs).
    pub doc: &'static str,
}

impl Column {
    /// A column.
    pub const fn new(name: &'static str, ty: ColType, doc: &'static str) -> Self {
        Column { name, ty, doc }
    }
}

/// When a stream's rows share a table with another stream, the column and value that
/// select this stream's rows (e.g. `folder = 'inbox'`).
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// Column name.
    pub column: &'static str,
    /// The value of this stream's rows.
    pub value: &'static str,
    /// A value marking rows that belong to every stream of the table (one row listed by
    /// two streams, e.g. a message the user sent to themselves: `folder = 'inbox,sent'`);
    /// `None` when each row belongs to one stream.
    pub shared: Option<&'static str>,
}

/// Where a delta sync of a newest-first listing stops.
#[derive(Debug, Clone, Copy)]
pub enum StopRule {
    /// Stop after the page holding the first item created at or before the stored
    /// watermark minus `lookback_secs` (the overlap that catches late or skewed items).
    CreatedBefore {
        /// Overlap in seconds.
        lookback_secs: i64,
    },
    /// Stop after the page holding the first item already stored (for listings ordered by
    /// a time the payload does not carry, like Reddit's save time).
    KnownId,
    /// The listing has no order usable for deltas: every sync reads it whole.
    Never,
}

/// An aggregate over the source rows of one derived row.
#[derive(Debug, Clone, Copy)]
pub enum Agg {
    /// Number of live source rows.
    Count,
    /// Number of live source rows where the boolean column is true.
    CountTrue(&'static str),
    /// Minimum of a column.
    Min(&'static str),
    /// Maximum of a column.
    Max(&'static str),
    /// Value of `col` on the row with the smallest `by`.
    FirstBy {
        /// Column to read.
        col: &'static str,
        /// Column to order by.
        by: &'static str,
    },
    /// Value of `col` on the row with the largest `by`.
    LastBy {
        /// Column to read.
        col: &'static str,
        /// Column to order by.
        by: &'static str,
    },
}

/// One column of a derived table and how it is computed.
#[derive(Debug, Clone, Copy)]
pub struct DerivedColumn {
    /// The column.
    pub column: Column,
    /// How.
    pub agg: Agg,
}

/// A table derived from a stream's table by grouping (Reddit conversations from
/// messages). The store refreshes the groups a page touched, in the page's transaction.
#[derive(Debug, Clone, Copy)]
pub struct DerivedSpec {
    /// Derived table name.
    pub table: &'static str,
    /// Column of the source table that groups rows; becomes the derived row's `id`.
    pub key: &'static str,
    /// Derived columns.
    pub columns: &'static [DerivedColumn],
}

/// A kind of record a connector offers.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    /// Stream name, unique within the connector (`inbox`).
    pub name: &'static str,
    /// Record table (`reddit_messages`).
    pub table: &'static str,
    /// One line for the docs.
    pub doc: &'static str,
    /// Typed columns besides the fixed ones (`connection_id`, `id`, `raw`, `content_hash`,
    /// `first_seen_at`, `updated_at`, `deleted_at`).
    pub columns: &'static [Column],
    /// The rows of this stream, when the table is shared.
    pub scope: Option<Scope>,
    /// How a delta sync knows where to stop.
    pub stop: StopRule,
    /// The provider lists at most this many items; a listing that reached it is not
    /// known to be complete.
    pub listing_cap: Option<u64>,
    /// A table derived from this one.
    pub derived: Option<&'static DerivedSpec>,
}

impl StreamSpec {
    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}
