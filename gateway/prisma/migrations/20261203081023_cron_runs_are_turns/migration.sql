-- A webchat job's channelId held its conversation's id; it now holds the thread id, as every other channel's does.
UPDATE "CronJob" SET "channelId" = (SELECT "Conversation"."channelId" FROM "Conversation" WHERE "Conversation"."id" = "CronJob"."channelId")
WHERE "channel" = 'webchat' AND EXISTS (SELECT 1 FROM "Conversation" WHERE "Conversation"."id" = "CronJob"."channelId");

-- The run's status, error and duration are read from its turn (lastTurnId) instead of copies.
ALTER TABLE "CronJob" DROP COLUMN "lastStatus";
ALTER TABLE "CronJob" DROP COLUMN "lastError";
ALTER TABLE "CronJob" DROP COLUMN "lastDurationMs";
