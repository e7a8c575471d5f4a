-- Reconcile, GitHub stars and TikTok favourites (issue 4).

-- Ids a reconcile listing returned, staged under a token until the listing is complete;
-- the diff against a record table is then applied in one transaction and the rows are
-- dropped. A listing that failed leaves its rows to be dropped; records never change.
CREATE TABLE "reconcile_staging" (
    "token" TEXT NOT NULL, -- one listing: `<connection>:<stream>:<run>`
    "id"    TEXT NOT NULL, -- an id the provider listed
    PRIMARY KEY ("token", "id")
) WITHOUT ROWID;

-- GitHub repositories the user starred: stream `starred`.
CREATE TABLE "github_stars" (
    "connection_id"    INTEGER NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "id"               TEXT NOT NULL,    -- GitHub repository id (stable across renames)
    "full_name"        TEXT,             -- `owner/name`
    "owner"            TEXT,             -- owner login
    "name"             TEXT,             -- repository name
    "description"      TEXT,             -- description
    "html_url"         TEXT,             -- web page of the repository
    "language"         TEXT,             -- main language
    "topics"           TEXT,             -- topics, comma-separated
    "stargazers_count" INTEGER,          -- stars when last synced
    "forks_count"      INTEGER,          -- forks when last synced
    "private"          INTEGER,          -- private repository 0/1
    "fork"             INTEGER,          -- is a fork 0/1
    "archived"         INTEGER,          -- archived 0/1
    "starred_at"       TEXT,             -- when the user starred it (RFC 3339 UTC)
    "pushed_at"        TEXT,             -- last push (RFC 3339 UTC)
    "raw"              TEXT NOT NULL,    -- the provider's JSON for the item, exactly as received
    "content_hash"     BLOB NOT NULL,    -- 16-byte BLAKE3 prefix over id, typed columns and raw
    "first_seen_at"    TEXT NOT NULL,    -- when inlet first stored it
    "updated_at"       TEXT NOT NULL,    -- when inlet last changed it
    "deleted_at"       TEXT,             -- tombstone (unstarred); NULL while live
    PRIMARY KEY ("connection_id", "id")
);
CREATE INDEX "github_stars_starred" ON "github_stars" ("connection_id", "starred_at");

-- TikTok favourite videos from imported `user_data.json` exports: stream `favorites`.
CREATE TABLE "tiktok_favorites" (
    "connection_id" INTEGER NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "id"            TEXT NOT NULL,    -- video id (digits), or the link itself when it carries no id (short links)
    "video_id"      TEXT,             -- video id; NULL for unresolved short links
    "link"          TEXT,             -- link as written in the export
    "url"           TEXT,             -- browsable web address
    "favorited_at"  TEXT,             -- when the user favourited it (export date read as UTC, RFC 3339)
    "raw"           TEXT NOT NULL,    -- the export entry's JSON
    "content_hash"  BLOB NOT NULL,    -- 16-byte BLAKE3 prefix over id, typed columns and raw
    "first_seen_at" TEXT NOT NULL,    -- when inlet first stored it
    "updated_at"    TEXT NOT NULL,    -- when inlet last changed it
    "deleted_at"    TEXT,             -- tombstone (missing from a later export); NULL while live
    PRIMARY KEY ("connection_id", "id")
);

-- A connector's cache validators per stream (GitHub: the ETag of the first page), kept
-- between processes so an unchanged first page can be answered 304 at no budget.
CREATE TABLE "stream_validators" (
    "connection_id" INTEGER NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "stream"    TEXT NOT NULL, -- stream name
    "validator" TEXT NOT NULL, -- opaque to inlet: what the connector asked to keep
    PRIMARY KEY ("connection_id", "stream")
);
