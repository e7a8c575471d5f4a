-- Attachments: images linked from records (Reddit messages), downloaded into the
-- content-addressed blob store (`<blob_dir>/ab/cd/<blake3 hex>`).
CREATE TABLE "attachments" (
    "id"            INTEGER PRIMARY KEY AUTOINCREMENT, -- store-assigned id
    "connection_id" INTEGER NOT NULL REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "stream"        TEXT NOT NULL,    -- stream of the record that links the attachment (`inbox`, `sent`)
    "record_id"     TEXT NOT NULL,    -- id of that record
    "url"           TEXT NOT NULL,    -- the link as the provider wrote it (HTML entities decoded)
    "status"        TEXT NOT NULL,    -- pending | done | failed | skipped
    "hash"          TEXT,             -- hex BLAKE3 of the bytes = the blob's file name (when done)
    "size"          INTEGER,          -- bytes (when done)
    "content_type"  TEXT,             -- Content-Type the host answered
    "attempts"      INTEGER NOT NULL DEFAULT 0, -- download attempts so far
    "last_error"    TEXT,             -- why the last attempt failed or was skipped
    "first_seen_at" TEXT NOT NULL,    -- when the link was first recorded
    "updated_at"    TEXT NOT NULL,    -- last change of the row
    UNIQUE ("connection_id", "record_id", "url")
);
CREATE INDEX "attachments_status" ON "attachments" ("connection_id", "status", "id");

-- Attachment counters of a run.
ALTER TABLE "runs" ADD COLUMN "attachments_fetched" INTEGER NOT NULL DEFAULT 0; -- attachments downloaded
ALTER TABLE "runs" ADD COLUMN "attachments_failed" INTEGER NOT NULL DEFAULT 0;  -- attachment downloads that failed
ALTER TABLE "runs" ADD COLUMN "attachments_skipped" INTEGER NOT NULL DEFAULT 0; -- attachments not fetched by policy
