//! GitHub streams and their table, `github_stars`, and the spec the REST fetcher reads
//! them with.

use crate::rest::spec::{
    AuthSpec, ColumnDef, ColumnType, PaginatorSpec, RateLimitSpec, RestSpec, StopSpec, StreamDef,
};
use inlet_core::ColType::{Bool, Int, Text, Time};
use inlet_core::{Column, StopRule, StreamSpec};
use std::collections::BTreeMap;

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

/// Where each column of [`STAR_COLUMNS`] is in a starred item
/// (`{"starred_at": ..., "repo": {...}}`), in the same order.
const STAR_POINTERS: [&str; 14] = [
    "repo.full_name",
    "repo.owner.login",
    "repo.name",
    "repo.description",
    "repo.html_url",
    "repo.language",
    "repo.topics",
    "repo.stargazers_count",
    "repo.forks_count",
    "repo.private",
    "repo.fork",
    "repo.archived",
    "starred_at",
    "repo.pushed_at",
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

/// The spec of [`STREAMS`] for the REST fetcher, for the API at `api_base` with pages of
/// `per_page`: `GET /user/starred` newest star first, the star media type (each item
/// carries `starred_at`), pages by the `Link` header, the first page of a delta
/// conditional on its stored ETag, `topics` joined with commas. Auth and rate limits are
/// the connector's client's.
pub fn spec(api_base: &str, per_page: u32) -> RestSpec {
    let columns = STAR_COLUMNS
        .iter()
        .zip(STAR_POINTERS)
        .map(|(c, pointer)| ColumnDef {
            name: c.name.to_string(),
            pointer: pointer.to_string(),
            ty: ColumnType::of(c.ty),
            doc: Some(c.doc.to_string()),
            join: (c.name == "topics").then(|| ",".to_string()),
        })
        .collect();
    RestSpec {
        name: "github".into(),
        base_url: api_base.trim_end_matches('/').to_string(),
        user_agent: None,
        headers: BTreeMap::from([
            ("accept".to_string(), super::STAR_MEDIA_TYPE.to_string()),
            (
                "x-github-api-version".to_string(),
                super::API_VERSION.to_string(),
            ),
        ]),
        auth: AuthSpec::None,
        rate_limit: RateLimitSpec::default(),
        streams: vec![StreamDef {
            name: STREAMS[0].name.into(),
            table: Some(STREAMS[0].table.into()),
            doc: Some(STREAMS[0].doc.into()),
            // The query is written out, in GitHub's documented order, so the first page's
            // URL (and so its ETag) is the one earlier releases stored.
            path: format!("/user/starred?per_page={per_page}&sort=created&direction=desc"),
            query: BTreeMap::new(),
            records: String::new(),
            item: None,
            id: "repo.id".into(),
            columns,
            paginator: PaginatorSpec::LinkHeader,
            cursor_field: Some("starred_at".into()),
            stop: StopSpec::CreatedBefore,
            lookback_secs: LOOKBACK_SECS,
            reconcile: true,
            listing_cap: None,
            parent: None,
            conditional: true,
        }],
    }
}
