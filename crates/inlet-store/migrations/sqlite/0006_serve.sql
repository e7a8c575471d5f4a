-- inlet schema, version 6 (SQLite): what `inlet serve` needs.

-- One sync per connection at a time, across processes: the holder renews its lease
-- while the sync runs and deletes it at the end; a lease past expires_at belongs to a
-- process that died and may be taken over (the next run resumes from the checkpoint).
CREATE TABLE "sync_leases" (
    "connection_id" INTEGER PRIMARY KEY REFERENCES "connections" ("id") ON DELETE CASCADE, -- the connection
    "holder"        TEXT NOT NULL, -- who holds it (host, process id, random suffix)
    "acquired_at"   TEXT NOT NULL, -- when the holder took it
    "expires_at"    TEXT NOT NULL  -- when it lapses unless renewed
);

-- API keys for the HTTP API: only a hash of each key is stored.
CREATE TABLE "api_keys" (
    "id"         INTEGER PRIMARY KEY AUTOINCREMENT, -- store-assigned id
    "name"       TEXT NOT NULL,                     -- what the key is for
    "prefix"     TEXT NOT NULL,                     -- the key's first characters, to tell keys apart
    "hash"       TEXT NOT NULL UNIQUE,              -- hex BLAKE3 of the key
    "created_at" TEXT NOT NULL,                     -- when it was created
    "revoked_at" TEXT                               -- when it was revoked (NULL: live)
);
