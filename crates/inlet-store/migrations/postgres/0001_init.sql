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

-- Record tables (reddit_messages, reddit_saved) and derived tables (reddit_conversations)
-- are made from the stream specs at run time (`Store::ensure_tables`); this script made
-- them up to inlet 0.1 (see tests/fixtures/v10), and such tables are kept as they are.
