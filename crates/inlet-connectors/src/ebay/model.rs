//! eBay Message API payloads (`shared/providers/ebay.md` §3): only the fields inlet maps
//! to columns; rows keep the provider's JSON as received.

use serde::Deserialize;
use serde_json::value::RawValue;

/// `GetAllMyConversationsResponse`.
#[derive(Debug, Deserialize)]
pub struct ConversationsPage {
    /// The page's conversations, as received.
    #[serde(default)]
    pub conversations: Vec<Box<RawValue>>,
    /// Absolute URI of the next page, only when there is one.
    #[serde(default)]
    pub next: Option<String>,
}

/// `GetMessagesByConversationIdResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesPage {
    /// The page's messages, as received.
    #[serde(default)]
    pub messages: Vec<Box<RawValue>>,
    /// Absolute URI of the next page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `ConversationDetail`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetail {
    /// Id.
    pub conversation_id: String,
    /// FROM_MEMBERS | FROM_EBAY.
    #[serde(default)]
    pub conversation_type: Option<String>,
    /// ACTIVE, ARCHIVED, ...
    #[serde(default)]
    pub conversation_status: Option<String>,
    /// Title.
    #[serde(default)]
    pub conversation_title: Option<String>,
    /// ISO 8601.
    #[serde(default)]
    pub created_date: Option<String>,
    /// Item id.
    #[serde(default)]
    pub reference_id: Option<String>,
    /// LISTING.
    #[serde(default)]
    pub reference_type: Option<String>,
    /// Unread messages.
    #[serde(default)]
    pub unread_count: Option<i64>,
    /// The newest message.
    #[serde(default)]
    pub latest_message: Option<MessageDetail>,
}

/// `MessageDetail`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDetail {
    /// Id.
    pub message_id: String,
    /// Text.
    #[serde(default)]
    pub message_body: Option<String>,
    /// Subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Sender.
    #[serde(default)]
    pub sender_username: Option<String>,
    /// Recipient.
    #[serde(default)]
    pub recipient_username: Option<String>,
    /// ISO 8601.
    #[serde(default)]
    pub created_date: Option<String>,
    /// Read by the recipient.
    #[serde(default)]
    pub read_status: Option<bool>,
    /// Attachments.
    #[serde(default)]
    pub message_media: Vec<serde_json::Value>,
}
