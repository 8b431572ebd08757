-- A webchat job's channelId held its conversation's id; it now holds the thread id, as every other channel's does.
UPDATE "CronJob" SET "channelId" = (SELECT "Conversation"."channelId" FROM "Conversation" WHERE "Conversation"."id" = "CronJob"."channelId")
WHERE "channel" = 'webchat' AND EXISTS (SELECT 1 FROM "Conversation" WHERE "Conversation"."id" = "CronJob"."channelId");

-- The run's status, error and duration are read from its turn (lastTurnId) instead of copies.
-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_CronJob" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "schedule" TEXT NOT NULL,
    "prompt" TEXT NOT NULL,
    "channel" TEXT NOT NULL,
    "channelId" TEXT NOT NULL,
    "model" TEXT NOT NULL DEFAULT 'smart',
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "lastRun" DATETIME,
    "lastTurnId" TEXT,
    "scheduleSince" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO "new_CronJob" ("channel", "channelId", "createdAt", "enabled", "id", "lastRun", "lastTurnId", "model", "name", "prompt", "schedule", "scheduleSince") SELECT "channel", "channelId", "createdAt", "enabled", "id", "lastRun", "lastTurnId", "model", "name", "prompt", "schedule", "scheduleSince" FROM "CronJob";
DROP TABLE "CronJob";
ALTER TABLE "new_CronJob" RENAME TO "CronJob";
CREATE UNIQUE INDEX "CronJob_name_key" ON "CronJob"("name");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
