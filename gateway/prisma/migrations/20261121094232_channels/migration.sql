-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_Turn" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "conversationId" TEXT NOT NULL,
    "channel" TEXT NOT NULL,
    "externalId" TEXT NOT NULL,
    "state" TEXT NOT NULL DEFAULT 'received',
    "kind" TEXT NOT NULL DEFAULT 'text',
    "mediaId" TEXT,
    "mediaType" TEXT,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "nextAttemptAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "claimedBy" TEXT,
    "claimedUntil" DATETIME,
    "sentChunks" INTEGER NOT NULL DEFAULT 0,
    "lastError" TEXT,
    "model" TEXT NOT NULL,
    "userMessageId" TEXT NOT NULL,
    "answerMessageId" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Turn_conversationId_fkey" FOREIGN KEY ("conversationId") REFERENCES "Conversation" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Turn_userMessageId_fkey" FOREIGN KEY ("userMessageId") REFERENCES "Message" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "Turn_answerMessageId_fkey" FOREIGN KEY ("answerMessageId") REFERENCES "Message" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_Turn" ("answerMessageId", "attempts", "channel", "conversationId", "createdAt", "externalId", "id", "lastError", "model", "state", "updatedAt", "userMessageId") SELECT "answerMessageId", "attempts", "channel", "conversationId", "createdAt", "externalId", "id", "lastError", "model", "state", "updatedAt", "userMessageId" FROM "Turn";
DROP TABLE "Turn";
ALTER TABLE "new_Turn" RENAME TO "Turn";
CREATE UNIQUE INDEX "Turn_userMessageId_key" ON "Turn"("userMessageId");
CREATE UNIQUE INDEX "Turn_answerMessageId_key" ON "Turn"("answerMessageId");
CREATE INDEX "Turn_conversationId_state_idx" ON "Turn"("conversationId", "state");
CREATE INDEX "Turn_state_createdAt_idx" ON "Turn"("state", "createdAt");
CREATE INDEX "Turn_state_nextAttemptAt_idx" ON "Turn"("state", "nextAttemptAt");
CREATE UNIQUE INDEX "Turn_channel_externalId_key" ON "Turn"("channel", "externalId");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
