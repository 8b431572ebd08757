// The benchmark's getHistory latency: the last 20 messages of a conversation,
// HISTORY_CALLS times, in databases of HISTORY_SIZES stored messages.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { applyMigrations } from "../lib/migrations";
import { HISTORY_CALLS, HISTORY_SIZES, summary, type Summary } from "./gateway-config";
import { seconds } from "./shared";

/** Fills a migrated database with `total` messages in 100 conversations, a tenth of them in `conversationId`. */
function seed(file: string, total: number, conversationId: string) {
  // Straight SQL for speed; same columns and timestamp format as Prisma's adapter writes.
  const sqlite = new Database(file);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = OFF");
  const now = Date.now();
  const conversations = 100;
  const addConversation = sqlite.prepare(
    `INSERT INTO "Conversation" (id, channel, channelId, title, model, createdAt, updatedAt) VALUES (?, 'webchat', ?, 'bench', 'smart', ?, ?)`,
  );
  const addMessage = sqlite.prepare(
    `INSERT INTO "Message" (id, conversationId, role, content, model, createdAt) VALUES (?, ?, ?, ?, NULL, ?)`,
  );
  const addTurn = sqlite.prepare(
    `INSERT INTO "Turn" (id, conversationId, channel, externalId, state, attempts, model, userMessageId, answerMessageId, createdAt, updatedAt) VALUES (?, ?, 'webchat', ?, 'delivered', 1, 'smart', ?, ?, ?, ?)`,
  );
  const iso = (ms: number) => new Date(ms).toISOString().replace("Z", "+00:00");
  sqlite.transaction(() => {
    const ids = [conversationId, ...Array.from({ length: conversations - 1 }, (_, i) => `bench-conv-${i}`)];
    for (const id of ids) addConversation.run(id, id, iso(now), iso(now));
    // The measured conversation holds a tenth of all messages; the rest are spread out.
    for (let i = 0; i < total; i += 2) {
      const conversation = i % 10 === 0 ? conversationId : ids[1 + ((i / 2) % (conversations - 1))]!;
      const at = now - (total - i) * 1000;
      const question = `bench-m-${i}`;
      const answer = `bench-m-${i + 1}`;
      addMessage.run(question, conversation, "user", `question ${i} ${"lorem ipsum ".repeat(8)}`, iso(at));
      addMessage.run(answer, conversation, "assistant", `answer ${i} ${"dolor sit amet ".repeat(20)}`, iso(at + 500));
      addTurn.run(`bench-t-${i}`, conversation, `bench-x-${i}`, question, answer, iso(at), iso(at + 500));
    }
  })();
  sqlite.close();
}

async function measureHistory(databaseUrl: string): Promise<number[]> {
  const { PrismaBetterSqlite3 } = await import("@prisma/adapter-better-sqlite3");
  const { PrismaClient } = await import("../lib/generated/prisma/client");
  const holder = globalThis as unknown as { myClawPrisma?: InstanceType<typeof PrismaClient> };
  await holder.myClawPrisma?.$disconnect();
  holder.myClawPrisma = new PrismaClient({ adapter: new PrismaBetterSqlite3({ url: databaseUrl }) });
  // lib/db/client.ts keeps its client on globalThis; swapping it points the real
  // data modules at this database.
  const { getHistory } = await import("../lib/turns/history");
  for (let i = 0; i < 20; i++) await getHistory({ conversationId: "bench-target" });
  const times: number[] = [];
  for (let i = 0; i < HISTORY_CALLS; i++) {
    const started = performance.now();
    const history = await getHistory({ conversationId: "bench-target" });
    times.push(performance.now() - started);
    if (history.length !== 20) throw new Error(`getHistory returned ${history.length} messages`);
  }
  await holder.myClawPrisma.$disconnect();
  holder.myClawPrisma = undefined;
  return times;
}

export async function benchHistory() {
  const results: Record<string, Summary & { messages_in_conversation: number; seed_s: number }> = {};
  const scratch = mkdtempSync(path.join(tmpdir(), "my-claw-bench-"));
  try {
    for (const total of HISTORY_SIZES) {
      const file = path.join(scratch, `history-${total}.db`);
      await applyMigrations(`file:${file}`);
      const seeded = performance.now();
      seed(file, total, "bench-target");
      const seedSeconds = seconds(performance.now() - seeded);
      const times = await measureHistory(`file:${file}`);
      results[String(total)] = { ...summary(times), messages_in_conversation: Math.ceil(total / 10), seed_s: seedSeconds };
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return results;
}
