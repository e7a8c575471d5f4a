//! Reddit's JSON: the Listing envelope and the item kinds we map (t1, t3, t4).

use serde::Deserialize;
use serde_json::value::RawValue;

/// `{"kind": "Listing", "data": {...}}`.
#[derive(Debug, Deserialize)]
pub struct Listing<'a> {
    /// Always `Listing`.
    pub kind: String,
    /// Page.
    #[serde(borrow)]
    pub data: ListingData<'a>,
}

/// The page inside a Listing.
#[derive(Debug, Deserialize)]
pub struct ListingData<'a> {
    /// Fullname of the last child when more pages follow.
    pub after: Option<String>,
    /// Items; `data` is kept raw so it is stored exactly as received.
    #[serde(borrow)]
    pub children: Vec<Child<'a>>,
}

/// One item of a Listing.
#[derive(Debug, Deserialize)]
pub struct Child<'a> {
    /// `t1`, `t3`, `t4`, ...
    pub kind: String,
    /// The item's JSON.
    #[serde(borrow)]
    pub data: &'a RawValue,
}

/// A private message (t4) or an inbox comment reply / mention (t1).
#[derive(Debug, Deserialize)]
pub struct Message {
    /// Fullname, e.g. `t4_22ydk2c`.
    pub name: String,
    /// Sender.
    pub author: Option<String>,
    /// Recipient.
    pub dest: Option<String>,
    /// Subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Markdown body.
    #[serde(default)]
    pub body: Option<String>,
    /// Seconds since the epoch.
    pub created_utc: f64,
    /// Conversation root.
    pub first_message_name: Option<String>,
    /// Item replied to.
    pub parent_id: Option<String>,
    /// Unread.
    #[serde(default)]
    pub new: bool,
    /// `unknown`, `comment_reply`, ...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Subreddit.
    pub subreddit: Option<String>,
    /// `admin`, `moderator`, ...
    pub distinguished: Option<String>,
    /// Title of the post a comment reply belongs to.
    pub link_title: Option<String>,
    /// Permalink of a comment reply (empty for PMs).
    pub context: Option<String>,
}

/// A saved post (t3) or comment (t1).
#[derive(Debug, Deserialize)]
pub struct Saved {
    /// Fullname.
    pub name: String,
    /// Subreddit.
    pub subreddit: Option<String>,
    /// Author.
    pub author: Option<String>,
    /// Post title.
    pub title: Option<String>,
    /// Title of a comment's post.
    pub link_title: Option<String>,
    /// Self text of a post.
    pub selftext: Option<String>,
    /// Comment body.
    pub body: Option<String>,
    /// Link of a post.
    pub url: Option<String>,
    /// Link of a comment's post.
    pub link_url: Option<String>,
    /// Path on reddit.com.
    pub permalink: Option<String>,
    /// Seconds since the epoch.
    pub created_utc: f64,
    /// Score.
    pub score: Option<i64>,
    /// Comments on a post.
    pub num_comments: Option<i64>,
    /// NSFW.
    pub over_18: Option<bool>,
}

/// `GET /api/v1/me`.
#[derive(Debug, Deserialize)]
pub struct Me {
    /// Username.
    pub name: String,
}
