import "server-only";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaClient } from "./generated/prisma/client";
import { getEnv } from "./env";

// One client per process. Dev-mode hot reload re-evaluates modules, so the
// instance lives on globalThis instead of in this module.
const holder = globalThis as unknown as { myClawPrisma?: PrismaClient };

/**
 * How long a statement waits for another connection's write lock (SQLite's
 * busy timeout) before failing with SQLITE_BUSY (Prisma's P1008). A
 * transaction that has already read gets BUSY at once instead: see
 * queries.ts `retryWhileBusy`.
 */
export const BUSY_TIMEOUT_MS = 5_000;

export function db(): PrismaClient {
  if (!holder.myClawPrisma) {
    const client = new PrismaClient({ adapter: new PrismaBetterSqlite3({ url: getEnv().databaseUrl, timeout: BUSY_TIMEOUT_MS }) });
    // With WAL (set by the migrations), NORMAL skips the fsync on each commit: a
    // power cut may lose the last turns, an application crash loses nothing.
    // Per connection, hence here; the adapter's single connection runs it first.
    void client.$queryRawUnsafe("PRAGMA synchronous = NORMAL").catch(() => undefined);
    holder.myClawPrisma = client;
  }
  return holder.myClawPrisma;
}
