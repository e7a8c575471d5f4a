-- Parent/child streams and the eBay tables (PostgreSQL).

-- The change marker of each parent (an eBay conversation's latest message id and unread
-- count) as it was when its children were last committed, written in the same
-- transaction as those children: a parent is never marked synced without them.
CREATE TABLE "parent_markers" (
    "connection_id" BIGINT NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "stream"        TEXT NOT NULL,    -- parent stream name (`conversations`)
    "parent_id"     TEXT COLLATE "C" NOT NULL,    -- the parent's id
    "marker"        TEXT NOT NULL,    -- the parent's change marker when its children were committed
    "updated_at"    TIMESTAMPTZ NOT NULL,    -- when it was written
    PRIMARY KEY ("connection_id", "stream", "parent_id")
);

-- eBay conversations: streams `conversations` (FROM_MEMBERS) and `system_conversations` (FROM_EBAY).
CREATE TABLE "ebay_conversations" (
    "connection_id"       BIGINT NOT NULL, -- the connection (no foreign key on record tables, see 0002)
    "id"                  TEXT COLLATE "C" NOT NULL, -- byte order, as in SQLite; eBay conversationId
    "conversation_type"   TEXT,             -- FROM_MEMBERS (buyers/sellers) or FROM_EBAY (system mail)
    "conversation_status" TEXT,             -- ACTIVE, ARCHIVE, ...
    "title"               TEXT,             -- conversationTitle
    "created_date"        TIMESTAMPTZ,             -- when the conversation started (RFC 3339 UTC)
    "reference_id"        TEXT,             -- item id when reference_type is LISTING
    "reference_type"      TEXT,             -- LISTING
    "unread_count"        BIGINT,          -- unread messages
    "latest_message_id"   TEXT,             -- latestMessage.messageId
    "latest_message_at"   TIMESTAMPTZ,             -- latestMessage.createdDate (RFC 3339 UTC)
    "latest_sender"       TEXT,             -- latestMessage.senderUsername
    "raw"                 JSONB NOT NULL,   -- the provider's JSON for the item, as received (jsonb: normalized)
    "content_hash"        BYTEA NOT NULL,    -- 16-byte BLAKE3 prefix over id, typed columns and raw
    "first_seen_at"       TIMESTAMPTZ NOT NULL,    -- when inlet first stored it
    "updated_at"          TIMESTAMPTZ NOT NULL,    -- when inlet last changed it
    "deleted_at"          TIMESTAMPTZ,             -- tombstone; NULL while live
    PRIMARY KEY ("connection_id", "id")
);
CREATE INDEX "ebay_conversations_type" ON "ebay_conversations" ("connection_id", "conversation_type");

-- eBay messages of all conversations: stream `messages` (fetched per changed conversation).
CREATE TABLE "ebay_messages" (
    "connection_id"     BIGINT NOT NULL, -- the connection (no foreign key on record tables, see 0002)
    "id"                TEXT COLLATE "C" NOT NULL, -- byte order, as in SQLite; eBay messageId, or `stub-...` for a placeholder an app inserted
    "conversation_id"   TEXT,             -- the conversation it belongs to
    "conversation_type" TEXT,             -- FROM_MEMBERS or FROM_EBAY
    "sender"            TEXT,             -- senderUsername
    "recipient"         TEXT,             -- recipientUsername
    "subject"           TEXT,             -- subject
    "body"              TEXT,             -- messageBody
    "created_date"      TIMESTAMPTZ,             -- when it was sent (RFC 3339 UTC)
    "read_status"       BOOLEAN,          -- read by the recipient
    "media_count"       BIGINT,          -- attachments (messageMedia entries)
    "raw"               JSONB NOT NULL,   -- the provider's JSON for the item, as received (jsonb: normalized)
    "content_hash"      BYTEA NOT NULL,    -- 16-byte BLAKE3 prefix over id, typed columns and raw
    "first_seen_at"     TIMESTAMPTZ NOT NULL,    -- when inlet first stored it
    "updated_at"        TIMESTAMPTZ NOT NULL,    -- when inlet last changed it
    "deleted_at"        TIMESTAMPTZ,             -- tombstone; NULL while live
    PRIMARY KEY ("connection_id", "id")
);
CREATE INDEX "ebay_messages_conversation" ON "ebay_messages" ("connection_id", "conversation_id", "created_date");
