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
    "lastStatus" TEXT,
    "lastError" TEXT,
    "lastDurationMs" INTEGER,
    "scheduleSince" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO "new_CronJob" ("channel", "channelId", "createdAt", "enabled", "id", "lastRun", "model", "name", "prompt", "schedule") SELECT "channel", "channelId", "createdAt", "enabled", "id", "lastRun", "model", "name", "prompt", "schedule" FROM "CronJob";
DROP TABLE "CronJob";
ALTER TABLE "new_CronJob" RENAME TO "CronJob";
CREATE UNIQUE INDEX "CronJob_name_key" ON "CronJob"("name");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
