//! Reddit streams and their tables: `reddit_messages` (inbox and sent, one table),
//! `reddit_conversations` (derived from messages) and `reddit_saved`.

use inlet_core::{
    Agg, ColType::*, Column, DerivedColumn, DerivedSpec, Scope, StopRule, StreamSpec,
};

/// Reddit lists at most about this many items of any listing.
pub const LISTING_CAP: u64 = 1000;

/// Overlap of a delta over the previous watermark, for late items and clock skew.
pub const LOOKBACK_SECS: i64 = 300;

/// `folder` of a message listed by both the inbox and the sent listing (one the user sent
/// to themselves): one row that belongs to both streams.
pub const BOTH_FOLDERS: &str = "inbox,sent";

/// Typed columns of `reddit_messages`.
pub const MESSAGE_COLUMNS: &[Column] = &[
    Column::new(
        "kind",
        Text,
        "`t4` private message or `t1` comment reply / mention (inbox only)",
    ),
    Column::new(
        "folder",
        Text,
        "`inbox` (received), `sent`, or `inbox,sent` for a message the user sent to themselves (listed by both, stored once)",
    ),
    Column::new(
        "conversation_id",
        Text,
        "fullname of the conversation's first message (its own name for a first message); NULL for comment replies",
    ),
    Column::new("parent_id", Text, "fullname of the item replied to"),
    Column::new(
        "author",
        Text,
        "sender's username (NULL or `[deleted]` for deleted accounts)",
    ),
    Column::new(
        "dest",
        Text,
        "recipient username, or `#subreddit` for modmail",
    ),
    Column::new("subject", Text, "subject line"),
    Column::new("body", Text, "markdown body"),
    Column::new("created_utc", Time, "when it was sent"),
    Column::new("unread", Bool, "Reddit's `new` flag: unread by the user"),
    Column::new(
        "message_type",
        Text,
        "Reddit's `type`: `unknown` for PMs, `comment_reply`, `post_reply`, `username_mention`",
    ),
    Column::new(
        "subreddit",
        Text,
        "subreddit for subreddit messages and comment replies",
    ),
    Column::new("distinguished", Text, "e.g. `admin` for Reddit system mail"),
    Column::new(
        "link_title",
        Text,
        "title of the post a comment reply belongs to",
    ),
    Column::new("context", Text, "permalink of a comment reply"),
];

/// `reddit_conversations`: one row per conversation, derived from `reddit_messages`.
pub static CONVERSATIONS: DerivedSpec = DerivedSpec {
    table: "reddit_conversations",
    key: "conversation_id",
    columns: &[
        DerivedColumn {
            column: Column::new("subject", Text, "subject of the first message"),
            agg: Agg::FirstBy {
                col: "subject",
                by: "created_utc",
            },
        },
        DerivedColumn {
            column: Column::new("first_author", Text, "who started it"),
            agg: Agg::FirstBy {
                col: "author",
                by: "created_utc",
            },
        },
        DerivedColumn {
            column: Column::new("last_author", Text, "who wrote last"),
            agg: Agg::LastBy {
                col: "author",
                by: "created_utc",
            },
        },
        DerivedColumn {
            column: Column::new("message_count", Int, "live messages stored"),
            agg: Agg::Count,
        },
        DerivedColumn {
            column: Column::new("unread_count", Int, "unread messages"),
            agg: Agg::CountTrue("unread"),
        },
        DerivedColumn {
            column: Column::new("first_message_utc", Time, "first message sent"),
            agg: Agg::Min("created_utc"),
        },
        DerivedColumn {
            column: Column::new("last_message_utc", Time, "last activity"),
            agg: Agg::Max("created_utc"),
        },
    ],
};

/// Typed columns of `reddit_saved`.
pub const SAVED_COLUMNS: &[Column] = &[
    Column::new("kind", Text, "`t3` post or `t1` comment"),
    Column::new("subreddit", Text, "subreddit name"),
    Column::new("author", Text, "author's username"),
    Column::new(
        "title",
        Text,
        "post title (for a comment: the title of its post)",
    ),
    Column::new("body", Text, "self text of a post, or the comment body"),
    Column::new(
        "url",
        Text,
        "link of a post (for a comment: its post's link)",
    ),
    Column::new("permalink", Text, "path on reddit.com"),
    Column::new(
        "created_utc",
        Time,
        "when the post or comment was created (Reddit gives no save time)",
    ),
    Column::new("score", Int, "score when last synced"),
    Column::new(
        "num_comments",
        Int,
        "comments on the post (NULL for comments)",
    ),
    Column::new("over_18", Bool, "NSFW flag (NULL for comments)"),
];

/// The streams, in sync order.
pub static STREAMS: [StreamSpec; 3] = [
    StreamSpec {
        name: "inbox",
        table: "reddit_messages",
        doc: "Received private messages and comment replies (`/message/inbox`).",
        columns: MESSAGE_COLUMNS,
        scope: Some(Scope {
            column: "folder",
            value: "inbox",
            shared: Some(BOTH_FOLDERS),
        }),
        stop: StopRule::CreatedBefore {
            lookback_secs: LOOKBACK_SECS,
        },
        listing_cap: Some(LISTING_CAP),
        derived: Some(&CONVERSATIONS),
    },
    StreamSpec {
        name: "sent",
        table: "reddit_messages",
        doc: "Private messages the user sent (`/message/sent`).",
        columns: MESSAGE_COLUMNS,
        scope: Some(Scope {
            column: "folder",
            value: "sent",
            shared: Some(BOTH_FOLDERS),
        }),
        stop: StopRule::CreatedBefore {
            lookback_secs: LOOKBACK_SECS,
        },
        listing_cap: Some(LISTING_CAP),
        derived: Some(&CONVERSATIONS),
    },
    StreamSpec {
        name: "saved",
        table: "reddit_saved",
        doc: "Saved posts and comments, most recently saved first (`/user/{name}/saved`).",
        columns: SAVED_COLUMNS,
        scope: None,
        stop: StopRule::KnownId,
        listing_cap: Some(LISTING_CAP),
        derived: None,
    },
];
