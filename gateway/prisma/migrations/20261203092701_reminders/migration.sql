-- Reminders: a job's kind (the agent answers its prompt, or the prompt is delivered as written) and one-shot jobs.
ALTER TABLE "CronJob" ADD COLUMN "kind" TEXT NOT NULL DEFAULT 'agent';
ALTER TABLE "CronJob" ADD COLUMN "runAt" DATETIME;
ALTER TABLE "CronJob" ADD COLUMN "missedAt" DATETIME;
