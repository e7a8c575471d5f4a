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

-- The record tables ebay_conversations and ebay_messages are made from the stream specs
-- at run time (`Store::ensure_tables`); this script made them up to inlet 0.1.
