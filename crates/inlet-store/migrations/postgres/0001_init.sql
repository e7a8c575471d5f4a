-- inlet schema, version 1 (PostgreSQL).
--
-- Timestamps are TIMESTAMPTZ (inlet keeps millisecond precision). JSON is jsonb.

-- One account at one provider for one tenant.
CREATE TABLE "connections" (
    "id"            BIGSERIAL PRIMARY KEY, -- store-assigned id, never reused
    "name"          TEXT NOT NULL UNIQUE,              -- unique user-chosen name (`reddit-me`)
    "workspace"     TEXT NOT NULL,                     -- tenant / workspace the connection belongs to
    "provider"      TEXT NOT NULL,                     -- provider (`reddit`)
    "config"        JSONB NOT NULL,                     -- provider settings (jsonb); never secrets
    "credentials"   BYTEA NOT NULL,                     -- sealed credentials: opaque encrypted bytes
    "status"        TEXT NOT NULL,                     -- active | paused | needs_reauth | failing
    "status_detail" TEXT,                              -- why the status is what it is (e.g. the reauth message)
    "created_at"    TIMESTAMPTZ NOT NULL,                     -- when the connection was created
    "updated_at"    TIMESTAMPTZ NOT NULL                      -- when it last changed
);

-- Per (connection, stream) sync state.
CREATE TABLE "sync_state" (
    "connection_id"      BIGINT NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "stream"             TEXT NOT NULL,              -- stream name (`inbox`)
    "cursor"             TEXT,                       -- delta cursor (provider cursor or watermark)
    "checkpoint"         JSONB,                       -- JSON of inlet_core::Checkpoint while a pass is under way or interrupted
    "last_sync_at"       TIMESTAMPTZ,                       -- last time a sync of this stream started
    "last_success_at"    TIMESTAMPTZ,                       -- last time a sync of this stream completed
    "sync_count"         BIGINT NOT NULL DEFAULT 0, -- completed syncs
    "last_reconciled_at" TIMESTAMPTZ,                       -- last time deletions were detected from a complete listing
    PRIMARY KEY ("connection_id", "stream")
);

-- One row per sync of a connection.
CREATE TABLE "runs" (
    "id"                       BIGSERIAL PRIMARY KEY, -- store-assigned run id
    "connection_id"            BIGINT NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "mode"                     TEXT NOT NULL,              -- delta | full
    "trigger"                  TEXT NOT NULL,              -- schedule | manual | api
    "status"                   TEXT NOT NULL,              -- running | success | partial | failed
    "started_at"               TIMESTAMPTZ NOT NULL,              -- when the run started
    "finished_at"              TIMESTAMPTZ,                       -- when it finished (NULL while running)
    "duration_ms"              BIGINT,                    -- finished_at - started_at in milliseconds (NULL while running)
    "fetched"                  BIGINT NOT NULL DEFAULT 0, -- records received from the provider
    "inserted"                 BIGINT NOT NULL DEFAULT 0, -- new records written
    "updated"                  BIGINT NOT NULL DEFAULT 0, -- changed or revived records rewritten
    "unchanged"                BIGINT NOT NULL DEFAULT 0, -- records skipped because their content hash was unchanged
    "deleted"                  BIGINT NOT NULL DEFAULT 0, -- records tombstoned
    "pages"                    BIGINT NOT NULL DEFAULT 0, -- pages committed
    "requests"                 BIGINT NOT NULL DEFAULT 0, -- HTTP requests made (including retries)
    "retries"                  BIGINT NOT NULL DEFAULT 0, -- requests retried
    "rate_limit_wait_ms"       BIGINT NOT NULL DEFAULT 0, -- milliseconds spent waiting for rate limits
    "items_skipped_with_error" BIGINT NOT NULL DEFAULT 0, -- items skipped because the provider answered an error
    "derived_inserted"         BIGINT NOT NULL DEFAULT 0, -- derived rows created
    "derived_updated"          BIGINT NOT NULL DEFAULT 0, -- derived rows changed
    "streams"                  JSONB NOT NULL DEFAULT '{}', -- JSON map: stream name -> inlet_core::StreamStats
    "error"                    TEXT                        -- why the run failed
);
CREATE INDEX "runs_connection_id" ON "runs" ("connection_id", "id");

-- Reddit private messages and comment replies: streams `inbox` and `sent`.
CREATE TABLE "reddit_messages" (
    "connection_id"   BIGINT NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "id"              TEXT COLLATE "C" NOT NULL, -- byte order, as in SQLite; Reddit fullname (`t4_...`, `t1_...`)
    "kind"            TEXT,             -- `t4` private message or `t1` comment reply / mention (inbox only)
    "folder"          TEXT,             -- `inbox` (received) or `sent`
    "conversation_id" TEXT,             -- fullname of the conversation's first message; NULL for comment replies
    "parent_id"       TEXT,             -- fullname of the item replied to
    "author"          TEXT,             -- sender's username (NULL or `[deleted]` for deleted accounts)
    "dest"            TEXT,             -- recipient username, or `#subreddit` for modmail
    "subject"         TEXT,             -- subject line
    "body"            TEXT,             -- markdown body
    "created_utc"     TIMESTAMPTZ,             -- when it was sent
    "unread"          BOOLEAN,          -- Reddit's `new` flag: unread by the user
    "message_type"    TEXT,             -- Reddit's `type`: `unknown` for PMs, `comment_reply`, `post_reply`, `username_mention`
    "subreddit"       TEXT,             -- subreddit for subreddit messages and comment replies
    "distinguished"   TEXT,             -- e.g. `admin` for Reddit system mail
    "link_title"      TEXT,             -- title of the post a comment reply belongs to
    "context"         TEXT,             -- permalink of a comment reply
    "raw"             JSONB NOT NULL,    -- the provider's JSON for the item, as received (jsonb: normalized)
    "content_hash"    BYTEA NOT NULL,    -- 16-byte BLAKE3 prefix over id, typed columns and raw: unchanged hash, no write
    "first_seen_at"   TIMESTAMPTZ NOT NULL,    -- when inlet first stored it
    "updated_at"      TIMESTAMPTZ NOT NULL,    -- when inlet last changed it
    "deleted_at"      TIMESTAMPTZ,             -- when the provider stopped listing it (tombstone); NULL while live
    PRIMARY KEY ("connection_id", "id")
);
CREATE INDEX "reddit_messages_conversation" ON "reddit_messages" ("connection_id", "conversation_id");
CREATE INDEX "reddit_messages_folder_created" ON "reddit_messages" ("connection_id", "folder", "created_utc");

-- One row per Reddit conversation, derived from the live rows of reddit_messages.
CREATE TABLE "reddit_conversations" (
    "connection_id"     BIGINT NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "id"                TEXT COLLATE "C" NOT NULL, -- byte order, as in SQLite; conversation_id of its messages
    "subject"           TEXT,             -- subject of the first message
    "first_author"      TEXT,             -- who started it
    "last_author"       TEXT,             -- who wrote last
    "message_count"     BIGINT,          -- live messages stored
    "unread_count"      BIGINT,          -- unread messages
    "first_message_utc" TIMESTAMPTZ,             -- first message sent
    "last_message_utc"  TIMESTAMPTZ,             -- last activity
    "updated_at"        TIMESTAMPTZ NOT NULL,    -- when inlet last changed this row
    PRIMARY KEY ("connection_id", "id")
);

-- Reddit posts and comments the user saved: stream `saved`.
CREATE TABLE "reddit_saved" (
    "connection_id" BIGINT NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "id"            TEXT COLLATE "C" NOT NULL, -- byte order, as in SQLite; Reddit fullname (`t3_...`, `t1_...`)
    "kind"          TEXT,             -- `t3` post or `t1` comment
    "subreddit"     TEXT,             -- subreddit name
    "author"        TEXT,             -- author's username
    "title"         TEXT,             -- post title (for a comment: the title of its post)
    "body"          TEXT,             -- self text of a post, or the comment body
    "url"           TEXT,             -- link of a post (for a comment: its post's link)
    "permalink"     TEXT,             -- path on reddit.com
    "created_utc"   TIMESTAMPTZ,             -- when the post or comment was created
    "score"         BIGINT,          -- score when last synced
    "num_comments"  BIGINT,          -- comments on the post (NULL for comments)
    "over_18"       BOOLEAN,          -- NSFW flag (NULL for comments)
    "raw"           JSONB NOT NULL,    -- the provider's JSON for the item, as received (jsonb: normalized)
    "content_hash"  BYTEA NOT NULL,    -- 16-byte BLAKE3 prefix over id, typed columns and raw
    "first_seen_at" TIMESTAMPTZ NOT NULL,    -- when inlet first stored it
    "updated_at"    TIMESTAMPTZ NOT NULL,    -- when inlet last changed it
    "deleted_at"    TIMESTAMPTZ,             -- tombstone; NULL while live
    PRIMARY KEY ("connection_id", "id")
);
