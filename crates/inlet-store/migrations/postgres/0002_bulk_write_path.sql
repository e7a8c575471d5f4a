-- Conversations are refreshed from their live messages in every page's transaction.
-- Messages of one conversation are scattered across reddit_messages (replies arrive
-- months apart), so reading them through the plain (connection_id, conversation_id)
-- index meant one random heap visit per message. The partial covering index
-- "reddit_messages_conversation_live" holds every column the aggregates read, so the
-- refresh can be an index-only scan; it is made with the table from the stream specs
-- (`Store::ensure_tables`). A database made before this version loses the plain index.
DROP INDEX IF EXISTS "reddit_messages_conversation";

-- Record tables take thousands of rows per transaction. A foreign key costs one trigger
-- per row, each running its check query through SPI — and with plan_cache_mode =
-- force_custom_plan (see PgStore) re-planning it every time: a quarter of the server's
-- time in a backfill. The store checks the connection once per page instead (locking
-- it FOR KEY SHARE, as the trigger would), and deleting a connection deletes its rows
-- explicitly. sync_state and runs keep their foreign keys. Record tables made from the
-- stream specs never get one; these are those a database made before this version has.
ALTER TABLE IF EXISTS "reddit_messages" DROP CONSTRAINT IF EXISTS "reddit_messages_connection_id_fkey";
ALTER TABLE IF EXISTS "reddit_saved" DROP CONSTRAINT IF EXISTS "reddit_saved_connection_id_fkey";
ALTER TABLE IF EXISTS "reddit_conversations" DROP CONSTRAINT IF EXISTS "reddit_conversations_connection_id_fkey";
