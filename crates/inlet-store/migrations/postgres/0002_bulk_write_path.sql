-- Conversations are refreshed from their live messages in every page's transaction.
-- Messages of one conversation are scattered across reddit_messages (replies arrive
-- months apart), so reading them through the plain (connection_id, conversation_id)
-- index meant one random heap visit per message. This partial covering index holds
-- every column the aggregates read, so the refresh can be an index-only scan.
DROP INDEX "reddit_messages_conversation";
CREATE INDEX "reddit_messages_conversation_live" ON "reddit_messages"
    ("connection_id", "conversation_id", "created_utc", "id")
    INCLUDE ("author", "unread", "subject")
    WHERE "deleted_at" IS NULL;

-- Record tables take thousands of rows per transaction. A foreign key costs one trigger
-- per row, each running its check query through SPI — and with plan_cache_mode =
-- force_custom_plan (see PgStore) re-planning it every time: a quarter of the server's
-- time in a backfill. The store checks the connection once per page instead (locking
-- it FOR KEY SHARE, as the trigger would), and deleting a connection deletes its rows
-- explicitly. sync_state and runs keep their foreign keys.
ALTER TABLE "reddit_messages" DROP CONSTRAINT "reddit_messages_connection_id_fkey";
ALTER TABLE "reddit_saved" DROP CONSTRAINT "reddit_saved_connection_id_fkey";
ALTER TABLE "reddit_conversations" DROP CONSTRAINT "reddit_conversations_connection_id_fkey";
