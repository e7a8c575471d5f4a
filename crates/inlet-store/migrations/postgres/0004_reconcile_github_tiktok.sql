-- Reconcile, GitHub stars and TikTok favourites (issue 4).

-- Ids a reconcile listing returned, staged under a token until the listing is complete;
-- the diff against a record table is then applied in one transaction and the rows are
-- dropped. Unlogged: staged ids are worthless after a server crash (the listing is redone).
CREATE UNLOGGED TABLE "reconcile_staging" (
    "token" TEXT COLLATE "C" NOT NULL, -- one listing: `<connection>:<stream>:<run>`
    "id"    TEXT COLLATE "C" NOT NULL, -- an id the provider listed
    PRIMARY KEY ("token", "id")
);

-- The record tables github_stars and tiktok_favorites are made from the stream specs at
-- run time (`Store::ensure_tables`); this script made them up to inlet 0.1.

-- A connector's cache validators per stream (GitHub: the ETag of the first page), kept
-- between processes so an unchanged first page can be answered 304 at no budget.
CREATE TABLE "stream_validators" (
    "connection_id" BIGINT NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "stream"    TEXT NOT NULL, -- stream name
    "validator" TEXT NOT NULL, -- opaque to inlet: what the connector asked to keep
    PRIMARY KEY ("connection_id", "stream")
);
