-- Conversations are refreshed from their live messages in every page's transaction.
-- Messages of one conversation are scattered across reddit_messages (replies arrive
-- months apart), so reading them through the plain (connection_id, conversation_id)
-- index meant one random table visit per message. The partial covering index
-- "reddit_messages_conversation_live" holds every column the aggregates read, so the
-- refresh never touches the table; it is made with the table from the stream specs
-- (`Store::ensure_tables`). A database made before this version loses the plain index.
DROP INDEX IF EXISTS "reddit_messages_conversation";
