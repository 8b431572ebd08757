import "server-only";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import { Prisma, PrismaClient } from "../generated/prisma/client";
import { getEnv } from "../env";

// One client per process. Dev-mode hot reload re-evaluates modules, so the
// instance lives on globalThis instead of in this module.
const holder = globalThis as unknown as { myClawPrisma?: PrismaClient };

/**
 * How long a statement waits for another connection's write lock (SQLite's
 * busy timeout) before failing with SQLITE_BUSY (Prisma's P1008). A
 * transaction that has already read gets BUSY at once instead: see
 * `retryWhileBusy` below.
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

/** The client or an interactive transaction's client: data functions take either, so a caller can group them. */
export type Db = Prisma.TransactionClient;

const hasCode = (error: unknown, code: string) => error instanceof Prisma.PrismaClientKnownRequestError && error.code === code;

/** SQLite's busy timeout ran out (P1008). */
export const isBusy = (error: unknown) => hasCode(error, "P1008");
/** A unique index refused the row (P2002): a duplicate external id, job name… */
export const isUniqueViolation = (error: unknown) => hasCode(error, "P2002");
/** The row to update is gone (P2025). */
export const isMissingRow = (error: unknown) => hasCode(error, "P2025");

/**
 * Runs a write transaction again while the database is busy. Prisma opens a
 * transaction with a plain (deferred) BEGIN: once it has read, SQLite cannot
 * make it wait for another connection's write lock (the busy timeout does not
 * apply), so its first write fails with SQLITE_BUSY at once whenever another
 * process writes the file. Rolled back, it is safe to run again; the waits are
 * asynchronous, so the server keeps serving meanwhile.
 */
export async function retryWhileBusy<T>(run: () => Promise<T>, budgetMs = BUSY_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await run();
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(10 * attempt, 100)));
    }
  }
}

/** One write transaction over several data functions, retried while the database is busy. */
export function inTransaction<T>(work: (tx: Db) => Promise<T>): Promise<T> {
  return retryWhileBusy(() => db().$transaction(work));
}

export async function pingDatabase(): Promise<void> {
  await db().$queryRaw`SELECT 1`;
}
