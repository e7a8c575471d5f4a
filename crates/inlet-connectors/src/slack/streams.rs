//! Slack streams: the conversations the token sees, the workspace's users, the top-level
//! messages of the chosen conversations, and thread replies, fetched per thread parent
//! whose `reply_count`/`latest_reply` moved.

use inlet_core::{ColType::*, Column, StopRule, StreamSpec};

/// Columns of `slack_channels`.
pub static CHANNEL_COLUMNS: &[Column] = &[
    Column::new("name", Text, "channel name (empty for a DM)"),
    Column::new("kind", Text, "public_channel, private_channel, mpim or im"),
    Column::new("is_private", Bool, "private channel, group DM or DM"),
    Column::new("is_archived", Bool, "archived"),
    Column::new("is_member", Bool, "the token's user or bot is a member"),
    Column::new("created", Time, "when it was created"),
    Column::new("topic", Text, "topic.value"),
    Column::new("purpose", Text, "purpose.value"),
    Column::new("num_members", Int, "members (not for DMs)"),
    Column::new("user_id", Text, "the other user of a DM"),
];

/// Columns of `slack_users`.
pub static USER_COLUMNS: &[Column] = &[
    Column::new("name", Text, "the handle (`name`)"),
    Column::new("real_name", Text, "real_name"),
    Column::new("display_name", Text, "profile.display_name"),
    Column::new("is_bot", Bool, "a bot user"),
    Column::new("deleted", Bool, "deactivated"),
    Column::new("tz", Text, "time zone name"),
];

/// Columns of `slack_messages` (top-level messages and thread parents; id
/// `<channel>:<ts>`).
pub static MESSAGE_COLUMNS: &[Column] = &[
    Column::new("channel_id", Text, "the conversation"),
    Column::new("ts", Text, "Slack's message id within the channel"),
    Column::new("user_id", Text, "author (join slack_users.id for the name)"),
    Column::new("text", Text, "mrkdwn text"),
    Column::new(
        "subtype",
        Text,
        "absent for plain messages; bot_message, tombstone, ...",
    ),
    Column::new("thread_ts", Text, "equals ts on a thread parent"),
    Column::new("reply_count", Int, "replies of a thread parent"),
    Column::new("latest_reply", Text, "ts of the thread's newest reply"),
    Column::new("edited_at", Time, "edited.ts, once edited"),
    Column::new("posted_at", Time, "ts as a time"),
    Column::new(
        "files",
        Text,
        "the attached files as a JSON array (id, name, title, mimetype, filetype, size, url_private_download, permalink); their downloads are rows of `attachments`",
    ),
];

/// Columns of `slack_replies` (id `<channel>:<ts>`).
pub static REPLY_COLUMNS: &[Column] = &[
    Column::new("channel_id", Text, "the conversation"),
    Column::new("ts", Text, "Slack's message id within the channel"),
    Column::new("thread_ts", Text, "the parent's ts (slack_messages.ts)"),
    Column::new("parent_id", Text, "the parent's row id (slack_messages.id)"),
    Column::new("user_id", Text, "author (join slack_users.id for the name)"),
    Column::new("text", Text, "mrkdwn text"),
    Column::new(
        "subtype",
        Text,
        "absent for plain replies; thread_broadcast, ...",
    ),
    Column::new("edited_at", Time, "edited.ts, once edited"),
    Column::new("posted_at", Time, "ts as a time"),
    Column::new(
        "files",
        Text,
        "the attached files as a JSON array (id, name, title, mimetype, filetype, size, url_private_download, permalink); their downloads are rows of `attachments`",
    ),
];

/// A thread parent changed when its reply count or newest reply did.
pub static MARKER: &[&str] = &["reply_count", "latest_reply"];

/// The streams, in sync order.
pub static STREAMS: [StreamSpec; 4] = [
    StreamSpec {
        name: "channels",
        table: "slack_channels",
        doc: "Conversations the token can see (conversations.list): pick channels from here",
        columns: CHANNEL_COLUMNS,
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
    StreamSpec {
        name: "users",
        table: "slack_users",
        doc: "The workspace's users (users.list), to resolve user ids to names",
        columns: USER_COLUMNS,
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
    StreamSpec {
        name: "messages",
        table: "slack_messages",
        doc: "Top-level messages of the chosen channels (conversations.history from the stored oldest cursor)",
        columns: MESSAGE_COLUMNS,
        scope: None,
        // The connector widens `since` by the connection's lookback itself.
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
    StreamSpec {
        name: "replies",
        table: "slack_replies",
        doc: "Thread replies (conversations.replies), fetched only for parents whose reply_count/latest_reply moved",
        columns: REPLY_COLUMNS,
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
];
