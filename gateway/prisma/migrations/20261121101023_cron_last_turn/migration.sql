-- AlterTable
ALTER TABLE "CronJob" ADD COLUMN "lastTurnId" TEXT;
