-- Conversations are refreshed from their live messages in every page's transaction.
-- Messages of one conversation are scattered across reddit_messages (replies arrive
-- months apart), so reading them through the plain (connection_id, conversation_id)
-- index meant one random table visit per message. This partial covering index holds
-- every column the aggregates read, so the refresh never touches the table.
DROP INDEX "reddit_messages_conversation";
CREATE INDEX "reddit_messages_conversation_live" ON "reddit_messages"
    ("connection_id", "conversation_id", "created_utc", "id", "author", "unread", "subject")
    WHERE "deleted_at" IS NULL;
