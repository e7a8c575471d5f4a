-- Reconcile, GitHub stars and TikTok favourites (issue 4).
-- Record tables carry no foreign key to connections (see 0002): the store checks the
-- connection once per page.

-- Ids a reconcile listing returned, staged under a token until the listing is complete;
-- the diff against a record table is then applied in one transaction and the rows are
-- dropped. Unlogged: staged ids are worthless after a server crash (the listing is redone).
CREATE UNLOGGED TABLE "reconcile_staging" (
    "token" TEXT COLLATE "C" NOT NULL, -- one listing: `<connection>:<stream>:<run>`
    "id"    TEXT COLLATE "C" NOT NULL, -- an id the provider listed
    PRIMARY KEY ("token", "id")
);

-- GitHub repositories the user starred: stream `starred`.
CREATE TABLE "github_stars" (
    "connection_id"    BIGINT NOT NULL,  -- the connection
    "id"               TEXT COLLATE "C" NOT NULL, -- GitHub repository id (stable across renames)
    "full_name"        TEXT,             -- `owner/name`
    "owner"            TEXT,             -- owner login
    "name"             TEXT,             -- repository name
    "description"      TEXT,             -- description
    "html_url"         TEXT,             -- web page of the repository
    "language"         TEXT,             -- main language
    "topics"           TEXT,             -- topics, comma-separated
    "stargazers_count" BIGINT,           -- stars when last synced
    "forks_count"      BIGINT,           -- forks when last synced
    "private"          BOOLEAN,          -- private repository
    "fork"             BOOLEAN,          -- is a fork
    "archived"         BOOLEAN,          -- archived
    "starred_at"       TIMESTAMPTZ,      -- when the user starred it
    "pushed_at"        TIMESTAMPTZ,      -- last push
    "raw"              JSONB NOT NULL,   -- the provider's JSON for the item (jsonb: normalized)
    "content_hash"     BYTEA NOT NULL,   -- 16-byte BLAKE3 prefix over id, typed columns and raw
    "first_seen_at"    TIMESTAMPTZ NOT NULL, -- when inlet first stored it
    "updated_at"       TIMESTAMPTZ NOT NULL, -- when inlet last changed it
    "deleted_at"       TIMESTAMPTZ,      -- tombstone (unstarred); NULL while live
    PRIMARY KEY ("connection_id", "id")
);
CREATE INDEX "github_stars_starred" ON "github_stars" ("connection_id", "starred_at");

-- TikTok favourite videos from imported `user_data.json` exports: stream `favorites`.
CREATE TABLE "tiktok_favorites" (
    "connection_id" BIGINT NOT NULL,  -- the connection
    "id"            TEXT COLLATE "C" NOT NULL, -- video id (digits), or the link itself when it carries no id
    "video_id"      TEXT,             -- video id; NULL for unresolved short links
    "link"          TEXT,             -- link as written in the export
    "url"           TEXT,             -- browsable web address
    "favorited_at"  TIMESTAMPTZ,      -- when the user favourited it (export date read as UTC)
    "raw"           JSONB NOT NULL,   -- the export entry's JSON
    "content_hash"  BYTEA NOT NULL,   -- 16-byte BLAKE3 prefix over id, typed columns and raw
    "first_seen_at" TIMESTAMPTZ NOT NULL, -- when inlet first stored it
    "updated_at"    TIMESTAMPTZ NOT NULL, -- when inlet last changed it
    "deleted_at"    TIMESTAMPTZ,      -- tombstone (missing from a later export); NULL while live
    PRIMARY KEY ("connection_id", "id")
);

-- A connector's cache validators per stream (GitHub: the ETag of the first page), kept
-- between processes so an unchanged first page can be answered 304 at no budget.
CREATE TABLE "stream_validators" (
    "connection_id" BIGINT NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "stream"    TEXT NOT NULL, -- stream name
    "validator" TEXT NOT NULL, -- opaque to inlet: what the connector asked to keep
    PRIMARY KEY ("connection_id", "stream")
);
