//! eBay streams: member conversations, system (FROM_EBAY) conversations, and the messages
//! of both, fetched per conversation whose change marker moved.

use inlet_core::{ColType::*, Column, Scope, StopRule, StreamSpec, StubRule};

/// Columns of `ebay_conversations`.
pub static CONVERSATION_COLUMNS: &[Column] = &[
    Column::new(
        "conversation_type",
        Text,
        "FROM_MEMBERS (buyers/sellers) or FROM_EBAY (system mail)",
    ),
    Column::new("conversation_status", Text, "ACTIVE, ARCHIVE, ..."),
    Column::new("title", Text, "conversationTitle"),
    Column::new("created_date", Time, "when the conversation started"),
    Column::new(
        "reference_id",
        Text,
        "item id when reference_type is LISTING",
    ),
    Column::new("reference_type", Text, "LISTING"),
    Column::new("unread_count", Int, "unread messages"),
    Column::new("latest_message_id", Text, "latestMessage.messageId"),
    Column::new("latest_message_at", Time, "latestMessage.createdDate"),
    Column::new("latest_sender", Text, "latestMessage.senderUsername"),
];

/// Columns of `ebay_messages`.
pub static MESSAGE_COLUMNS: &[Column] = &[
    Column::new("conversation_id", Text, "the conversation it belongs to"),
    Column::new("conversation_type", Text, "FROM_MEMBERS or FROM_EBAY"),
    Column::new("sender", Text, "senderUsername"),
    Column::new("recipient", Text, "recipientUsername"),
    Column::new("subject", Text, "subject"),
    Column::new("body", Text, "messageBody"),
    Column::new("created_date", Time, "when it was sent"),
    Column::new("read_status", Bool, "read by the recipient"),
    Column::new("media_count", Int, "attachments (messageMedia entries)"),
];

/// A conversation changed when its latest message or its unread count did.
pub static MARKER: &[&str] = &["latest_message_id", "unread_count"];

/// An app's optimistic `stub-*` message is replaced by the real one from the same sender
/// with the same text in the same conversation, sent within 15 minutes of it.
pub const STUBS: StubRule = StubRule {
    parent_column: "conversation_id",
    match_columns: &["sender", "body"],
    time_column: "created_date",
    window_secs: 900,
};

/// The streams, in sync order.
pub static STREAMS: [StreamSpec; 3] = [
    StreamSpec {
        name: "conversations",
        table: "ebay_conversations",
        doc: "Buyer/seller conversations (FROM_MEMBERS), with their latest message",
        columns: CONVERSATION_COLUMNS,
        scope: Some(Scope {
            column: "conversation_type",
            value: "FROM_MEMBERS",
            shared: None,
        }),
        // Delta listings ask for activity since the last sync's start minus 10 minutes.
        stop: StopRule::CreatedBefore { lookback_secs: 600 },
        listing_cap: None,
        derived: None,
    },
    StreamSpec {
        name: "system_conversations",
        table: "ebay_conversations",
        doc: "System mail from eBay (FROM_EBAY), read a few pages per sync",
        columns: CONVERSATION_COLUMNS,
        scope: Some(Scope {
            column: "conversation_type",
            value: "FROM_EBAY",
            shared: None,
        }),
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
    StreamSpec {
        name: "messages",
        table: "ebay_messages",
        doc: "Messages of every conversation, fetched only for conversations that changed",
        columns: MESSAGE_COLUMNS,
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
];
