//! Gmail streams: the threads of the chosen labels (a family parent, marker `historyId`),
//! their messages (read whole with `threads.get`), and the mailbox's labels.

use inlet_core::{ColType::*, Column, StopRule, StreamSpec};

/// Columns of `gmail_threads` (id: the thread id).
pub static THREAD_COLUMNS: &[Column] = &[
    Column::new(
        "history_id",
        Text,
        "the thread's historyId (decimal text): its change marker",
    ),
    Column::new(
        "snippet",
        Text,
        "text excerpt, HTML entities as Gmail sends them",
    ),
];

/// Columns of `gmail_messages` (id: the message id).
pub static MESSAGE_COLUMNS: &[Column] = &[
    Column::new("thread_id", Text, "the thread (gmail_threads.id)"),
    Column::new(
        "history_id",
        Text,
        "last history record that changed the message",
    ),
    Column::new(
        "label_ids",
        Text,
        "label ids joined with commas (INBOX,UNREAD,Label_12); join gmail_labels for names",
    ),
    Column::new("snippet", Text, "text excerpt"),
    Column::new(
        "internal_date",
        Time,
        "internalDate: when Gmail received it",
    ),
    Column::new("size_estimate", Int, "sizeEstimate in bytes"),
    Column::new("from_header", Text, "the From header"),
    Column::new("to_header", Text, "the To header"),
    Column::new("cc_header", Text, "the Cc header"),
    Column::new("subject", Text, "the Subject header"),
    Column::new("date_header", Text, "the Date header as sent"),
    Column::new("message_id_header", Text, "the Message-ID header"),
    Column::new(
        "text_plain",
        Text,
        "the text/plain parts (not attachments), base64url-decoded, joined",
    ),
    Column::new(
        "text_html",
        Text,
        "the text/html parts (not attachments), base64url-decoded, joined",
    ),
    Column::new("attachment_count", Int, "parts with a filename"),
    Column::new(
        "attachments",
        Text,
        "attachment metadata as a JSON array of {part_id, attachment_id, filename, mime_type, size}",
    ),
];

/// Columns of `gmail_labels` (id: the label id, `INBOX` or `Label_12`).
pub static LABEL_COLUMNS: &[Column] = &[
    Column::new("name", Text, "label name"),
    Column::new("type", Text, "system or user"),
    Column::new("message_list_visibility", Text, "show or hide"),
    Column::new(
        "label_list_visibility",
        Text,
        "labelShow, labelShowIfUnread or labelHide",
    ),
];

/// A thread changed when its history id did.
pub static MARKER: &[&str] = &["history_id"];

/// The streams, in sync order (labels last: they are read when the threads were listed
/// whole, and by reconcile runs).
pub static STREAMS: [StreamSpec; 3] = [
    StreamSpec {
        name: "threads",
        table: "gmail_threads",
        doc: "Threads of the chosen labels (threads.list on the first sync, then the threads users.history.list names)",
        columns: THREAD_COLUMNS,
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
    StreamSpec {
        name: "messages",
        table: "gmail_messages",
        doc: "Every message of those threads (threads.get, format=full), read whole when the thread's historyId moved",
        columns: MESSAGE_COLUMNS,
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
    StreamSpec {
        name: "labels",
        table: "gmail_labels",
        doc: "The mailbox's labels (labels.list), read with full listings and reconcile runs",
        columns: LABEL_COLUMNS,
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    },
];
