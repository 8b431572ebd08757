import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { getEnv } from "../lib/env";
import { databasePath } from "../lib/env-file";
import { applyMigrations, diffMigrationsToSchema, migrationsDir } from "../lib/migrations";
import { getConversationById, getOrCreateConversation, listConversations, deleteConversationById } from "../lib/db/conversations";
import { addMessage, listMessagesByConversation } from "../lib/db/messages";
import { getSettings, saveSettings } from "../lib/db/settings";
import { markTurnFailed } from "../lib/db/turns";
import { getHistory } from "../lib/turns/history";
import { recordInbound, saveAnswer } from "../lib/turns/store";

let counter = 0;
const uniqueId = (prefix: string) => `${prefix}-${++counter}-${Math.random().toString(36).slice(2)}`;

describe("migrations", () => {
  it("match schema.prisma exactly", async () => {
    expect(await diffMigrationsToSchema()).toBe("");
  });

  it("are recorded in _prisma_migrations as Prisma does", () => {
    const sqlite = new Database(databasePath(getEnv().databaseUrl), { readonly: true });
    const rows = sqlite
      .prepare("SELECT migration_name, checksum, finished_at, applied_steps_count FROM _prisma_migrations ORDER BY migration_name")
      .all() as { migration_name: string; checksum: string; finished_at: string | null; applied_steps_count: number }[];
    sqlite.close();
    const folders = readdirSync(migrationsDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    expect(rows.map((r) => r.migration_name)).toEqual(folders);
    for (const row of rows) {
      const sql = readFileSync(path.join(migrationsDir, row.migration_name, "migration.sql"));
      expect(row.checksum).toBe(createHash("sha256").update(sql).digest("hex"));
      expect(row.finished_at).not.toBeNull();
      expect(row.applied_steps_count).toBe(1);
    }
  });

  it("leave the database in WAL mode", () => {
    const sqlite = new Database(databasePath(getEnv().databaseUrl), { readonly: true });
    expect(sqlite.pragma("journal_mode", { simple: true })).toBe("wal");
    sqlite.close();
  });
});

describe("migrations on a file in use", () => {
  it("say the file is in use, not the schema engine's SocketTimeout", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "my-claw-in-use-")), "in-use.db");
    await applyMigrations(`file:${file}`);
    const other = new Database(file, { readonly: true });
    try {
      other.prepare(`SELECT count(*) AS n FROM "Turn"`).get();
      await expect(applyMigrations(`file:${file}`)).rejects.toThrow(/in-use\.db is in use by another process .*stop the others/);
    } finally {
      other.close();
    }
    expect(await applyMigrations(`file:${file}`)).toEqual([]);
  });
});

describe("the cron_runs_are_turns migration", () => {
  it("gives a webchat job its conversation's thread id and leaves other channels' ids alone", async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "my-claw-upgrade-"));
    const before = path.join(scratch, "migrations");
    const folders = readdirSync(migrationsDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    const upgrade = folders.findIndex((name) => name.endsWith("_cron_runs_are_turns"));
    expect(upgrade).toBeGreaterThan(0);
    cpSync(path.join(migrationsDir, "migration_lock.toml"), path.join(before, "migration_lock.toml"));
    for (const name of folders.slice(0, upgrade)) cpSync(path.join(migrationsDir, name), path.join(before, name), { recursive: true });
    const url = `file:${path.join(scratch, "old.db")}`;
    await applyMigrations(url, before);

    const old = new Database(databasePath(url));
    old.prepare(`INSERT INTO "Conversation" (id, channel, channelId, updatedAt) VALUES ('conv-1', 'webchat', 'thread-1', 0)`).run();
    const job = old.prepare(`INSERT INTO "CronJob" (id, name, schedule, prompt, channel, channelId, lastStatus) VALUES (?, ?, '* * * * *', 'p', ?, ?, 'ok')`);
    job.run("job-web", "web", "webchat", "conv-1");
    job.run("job-gone", "gone", "webchat", "conv-deleted");
    job.run("job-wa", "wa", "whatsapp", "conv-1");
    old.close();

    expect(await applyMigrations(url)).toEqual(folders.slice(upgrade));
    const upgraded = new Database(databasePath(url), { readonly: true });
    const rows = upgraded.prepare(`SELECT * FROM "CronJob" ORDER BY id`).all() as Record<string, unknown>[];
    upgraded.close();
    expect(rows.map((row) => [row.id, row.channelId])).toEqual([
      ["job-gone", "conv-deleted"],
      ["job-wa", "conv-1"],
      ["job-web", "thread-1"],
    ]);
    expect(rows[0]).not.toHaveProperty("lastStatus");
  });
});

describe("conversations and messages", () => {
  it("finds the same conversation for the same channel thread", async () => {
    const channelId = uniqueId("phone");
    const first = await getOrCreateConversation({ channel: "whatsapp", channelId, title: "Hello there" });
    const again = await getOrCreateConversation({ channel: "whatsapp", channelId });
    expect(again.id).toBe(first.id);
    expect(first.model).toBe("smart");
    expect(first.title).toBe("Hello there");
    const other = await getOrCreateConversation({ channel: "nextcloud", channelId });
    expect(other.id).not.toBe(first.id);
  });

  it("returns the last 20 messages of a conversation, oldest first", async () => {
    const conversation = await getOrCreateConversation({ channel: "webchat", channelId: uniqueId("thread") });
    for (let i = 0; i < 25; i++) {
      await addMessage({ conversationId: conversation.id, role: i % 2 ? "assistant" : "user", content: `m${i}` });
    }
    const history = await getHistory({ conversationId: conversation.id });
    expect(history).toHaveLength(20);
    expect(history[0]).toEqual({ role: "assistant", content: "m5" });
    expect(history.at(-1)).toEqual({ role: "user", content: "m24" });
    expect(await getHistory({ conversationId: conversation.id, limit: 3 })).toEqual([
      { role: "user", content: "m22" },
      { role: "assistant", content: "m23" },
      { role: "user", content: "m24" },
    ]);
  });

  it("leaves unprocessed user messages out of the history", async () => {
    const channelId = uniqueId("thread");
    const first = await recordInbound({ channel: "webchat", channelId, externalId: uniqueId("x"), text: "first" });
    await saveAnswer({ turnId: first.turn.id, content: "answer one", model: "qwen3:8b" });
    const second = await recordInbound({ channel: "webchat", channelId, externalId: uniqueId("x"), text: "second" });
    await recordInbound({ channel: "webchat", channelId, externalId: uniqueId("x"), text: "third" });
    const history = await getHistory({ conversationId: second.turn.conversationId });
    expect(history.map((m) => m.content)).toEqual(["first", "answer one"]);
    await markTurnFailed({ id: second.turn.id, error: "unavailable:agent: down" });
    expect((await getHistory({ conversationId: second.turn.conversationId })).map((m) => m.content)).toEqual([
      "first",
      "answer one",
      "second",
    ]);
  });

  it("builds the history of a conversation with thousands of unanswered messages (more than a query may bind)", async () => {
    const channelId = uniqueId("room");
    const first = await recordInbound({ channel: "nextcloud", channelId, externalId: uniqueId("x"), text: "first" });
    await saveAnswer({ turnId: first.turn.id, content: "answer one", model: "qwen3:8b" });
    // A backlog, as after an outage or under a flood: straight SQL, for speed, in the adapter's row format.
    const file = databasePath(getEnv().databaseUrl);
    const sqlite = new Database(file);
    const at = new Date(Date.now() + 1000).toISOString().replace("Z", "+00:00");
    const addMessage = sqlite.prepare(`INSERT INTO "Message" (id, conversationId, role, content, createdAt) VALUES (?, ?, 'user', ?, ?)`);
    const addTurn = sqlite.prepare(
      `INSERT INTO "Turn" (id, conversationId, channel, externalId, state, attempts, model, userMessageId, createdAt, updatedAt) VALUES (?, ?, 'nextcloud', ?, 'received', 0, 'smart', ?, ?, ?)`,
    );
    sqlite.transaction(() => {
      for (let i = 0; i < 2_000; i++) {
        addMessage.run(`backlog-m-${channelId}-${i}`, first.turn.conversationId, `queued ${i}`, at);
        addTurn.run(`backlog-t-${channelId}-${i}`, first.turn.conversationId, `backlog-x-${channelId}-${i}`, `backlog-m-${channelId}-${i}`, at, at);
      }
    })();
    sqlite.close();
    expect((await getHistory({ conversationId: first.turn.conversationId })).map((m) => m.content)).toEqual(["first", "answer one"]);
  });

  it("lists every channel's conversations, most recent first", async () => {
    const a = await getOrCreateConversation({ channel: "whatsapp", channelId: uniqueId("p") });
    const b = await getOrCreateConversation({ channel: "nextcloud", channelId: uniqueId("room") });
    await recordInbound({ channel: "whatsapp", channelId: a.channelId, externalId: uniqueId("w"), text: "bump" });
    const list = await listConversations();
    const ids = list.map((c) => c.id);
    expect(ids.indexOf(a.id)).toBeLessThan(ids.indexOf(b.id));
    expect(list.find((c) => c.id === b.id)?.channel).toBe("nextcloud");
  });

  it("deletes a conversation with its messages and turns", async () => {
    const { turn } = await recordInbound({ channel: "webchat", channelId: uniqueId("t"), externalId: uniqueId("x"), text: "bye" });
    expect(await deleteConversationById({ id: turn.conversationId })).toBe(true);
    expect(await getConversationById({ id: turn.conversationId })).toBeNull();
    expect(await listMessagesByConversation({ conversationId: turn.conversationId })).toEqual([]);
    expect(await deleteConversationById({ id: turn.conversationId })).toBe(false);
  });
});

describe("turns", () => {
  it("stores an inbound message once per channel and external id", async () => {
    const channelId = uniqueId("phone");
    const externalId = `wamid.${uniqueId("HBg")}==`;
    const first = await recordInbound({ channel: "whatsapp", channelId, externalId, text: "hi" });
    const again = await recordInbound({ channel: "whatsapp", channelId, externalId, text: "hi" });
    expect(first.isDuplicate).toBe(false);
    expect(again).toMatchObject({ isDuplicate: true, turn: { id: first.turn.id } });
    const elsewhere = await recordInbound({ channel: "nextcloud", channelId, externalId, text: "hi" });
    expect(elsewhere.isDuplicate).toBe(false);
    const messages = await listMessagesByConversation({ conversationId: first.turn.conversationId });
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ role: "user", content: "hi", turnState: "received" });
  });

  it("records the answer and the turn state together", async () => {
    const { turn } = await recordInbound({ channel: "webchat", channelId: uniqueId("t"), externalId: uniqueId("x"), text: "q", model: "fast" });
    expect(turn.model).toBe("fast");
    const answered = await saveAnswer({ turnId: turn.id, content: "a", model: "qwen3:4b" });
    expect(answered.state).toBe("answered");
    const messages = await listMessagesByConversation({ conversationId: turn.conversationId });
    expect(messages.map((m) => [m.role, m.content, m.model])).toEqual([
      ["user", "q", null],
      ["assistant", "a", "qwen3:4b"],
    ]);
    expect((await getConversationById({ id: turn.conversationId }))?.model).toBe("fast");
  });
});

describe("another process writing the same database file", () => {
  /** Starts tests/support/sqlite-writer.mjs and resolves once it holds the write lock. */
  async function holdWriteLock(holdMs: number) {
    const writer = spawn(process.execPath, [path.resolve("tests/support/sqlite-writer.mjs"), databasePath(getEnv().databaseUrl), String(holdMs), "0", "1"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<number | null>((resolve) => writer.once("exit", resolve));
    await new Promise<void>((resolve, reject) => {
      writer.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("locked 1") && resolve());
      void exited.then(() => reject(new Error("the writer ended before taking the lock")));
    });
    return { exited };
  }

  it("waits for its write lock in a transaction that reads first, instead of failing", async () => {
    await getSettings(); // the gateway's connection is open, as in a running server
    const writer = await holdWriteLock(1500);
    const started = performance.now();
    const { turn, isDuplicate } = await recordInbound({ channel: "whatsapp", channelId: uniqueId("busy"), externalId: uniqueId("wamid"), text: "while locked" });
    expect(isDuplicate).toBe(false);
    // It waited for the other process (which holds the lock 1.5 s), rather than failing or not noticing it.
    expect(performance.now() - started).toBeGreaterThan(200);
    expect(await writer.exited).toBe(0);

    const again = await holdWriteLock(500);
    expect((await saveAnswer({ turnId: turn.id, content: "still", model: "qwen3:8b" })).state).toBe("answered");
    await saveSettings({ values: { persona_name: "Busy" } });
    expect(await again.exited).toBe(0);
    expect(await listMessagesByConversation({ conversationId: turn.conversationId })).toHaveLength(2);
  });
});

describe("settings", () => {
  it("round-trips key/value pairs", async () => {
    await saveSettings({ values: { persona_name: "Nova", persona_lang: "en" } });
    await saveSettings({ values: { persona_name: "Nova II" } });
    expect(await getSettings()).toMatchObject({ persona_name: "Nova II", persona_lang: "en" });
  });
});
