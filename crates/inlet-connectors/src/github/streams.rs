//! GitHub streams and their table: `github_stars`.

use inlet_core::ColType::{Bool, Int, Text, Time};
use inlet_core::{Column, StopRule, StreamSpec};

/// New stars are read newest first until one starred this long before the last sync's
/// start (clock skew and late-indexed stars).
pub const LOOKBACK_SECS: i64 = 3600;

/// Typed columns of `github_stars`.
pub const STAR_COLUMNS: &[Column] = &[
    Column::new("full_name", Text, "`owner/name`"),
    Column::new("owner", Text, "owner login"),
    Column::new("name", Text, "repository name"),
    Column::new("description", Text, "description"),
    Column::new("html_url", Text, "web page of the repository"),
    Column::new("language", Text, "main language"),
    Column::new("topics", Text, "topics, comma-separated"),
    Column::new("stargazers_count", Int, "stars when last synced"),
    Column::new("forks_count", Int, "forks when last synced"),
    Column::new("private", Bool, "private repository"),
    Column::new("fork", Bool, "is a fork"),
    Column::new("archived", Bool, "archived"),
    Column::new("starred_at", Time, "when the user starred it"),
    Column::new("pushed_at", Time, "last push"),
];

/// The streams.
pub static STREAMS: [StreamSpec; 1] = [StreamSpec {
    name: "starred",
    table: "github_stars",
    doc: "Repositories the user starred, most recently starred first (`/user/starred`).",
    columns: STAR_COLUMNS,
    scope: None,
    stop: StopRule::CreatedBefore {
        lookback_secs: LOOKBACK_SECS,
    },
    listing_cap: None,
    derived: None,
}];
