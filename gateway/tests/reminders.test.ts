import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as cron from "../app/api/cron/route";
import * as reminders from "../app/api/reminders/route";
import { createAgentClient } from "../lib/agent-client";
import { channelsByName } from "../lib/channels";
import { db } from "../lib/db/client";
import { listCronJobs } from "../lib/db/cron-jobs";
import { listMessagesByConversation } from "../lib/db/messages";
import { listJobs } from "../lib/cron-jobs";
import { localTime } from "../lib/reminders/create";
import { replyToFor, threadOf } from "../lib/reminders/reply-to";
import { saveSettings } from "../lib/db/settings";
import { createTurnRunner } from "../lib/turns/runner";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";
import { startFakeGraph, type FakeGraph } from "./support/fake-graph";

// Reminders the agent sets in conversation: POST /api/reminders with the turn's
// reply_to, one-shot jobs run once by the crontab's call (or marked missed past
// the grace), and their text delivered as written, without the model.

const AGENT_KEY = "k".repeat(40);
const CRON_SECRET = "c".repeat(40);
const phoneNumberId = "106540352242922";
const accessToken = "EAAGm0PX4ZCpsBA-reminders";
const owner = "33699887766";
const base = "http://127.0.0.1:3000";

let agent: FakeAgent;
let graph: FakeGraph;

beforeAll(async () => {
  agent = await startFakeAgent({ apiKey: AGENT_KEY });
  graph = await startFakeGraph({ accessToken, phoneNumberId });
  Object.assign(process.env, {
    AGENT_API_KEY: AGENT_KEY,
    AGENT_URL: agent.url,
    CRON_SECRET,
    CRON_TIMEZONE: "Europe/Paris",
    REMINDERS_MAX: "3",
    REMINDER_GRACE_S: "3600",
    WHATSAPP_ACCESS_TOKEN: accessToken,
    WHATSAPP_PHONE_NUMBER_ID: phoneNumberId,
    WHATSAPP_API_URL: graph.url,
  });
});
afterAll(async () => {
  await Promise.all([agent.close(), graph.close()]);
});
beforeEach(async () => {
  await db().cronJob.deleteMany();
  agent.requests.length = 0;
  agent.reply = () => ({});
  graph.sent.length = 0;
});

function post(body: unknown, key: string | null = AGENT_KEY) {
  const headers: Record<string, string> = { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) };
  return reminders.POST(new Request(`${base}/api/reminders`, { method: "POST", headers, body: JSON.stringify(body) }));
}
const callCron = () => cron.POST(new Request(`${base}/api/cron`, { method: "POST", headers: { "x-cron-secret": CRON_SECRET } }));
const chat = { channel: "whatsapp", channelId: owner };

describe("the turn's reply_to", () => {
  it("goes to the agent with a channel turn, names its chat, and cannot be forged with another key", async () => {
    const turns = createTurnRunner({ agent: createAgentClient({ baseUrl: agent.url, apiKey: AGENT_KEY }), channels: channelsByName() });
    await turns.runTurn({ channel: "whatsapp", channelId: owner, externalId: `wamid.r-${Date.now()}`, text: "remind me" });
    const sent = (agent.runs().at(-1) as unknown as { reply_to?: string }).reply_to;
    expect(sent).toBeTruthy();
    expect(threadOf(sent!)).toEqual(chat);
    expect(threadOf(replyToFor(chat, "another key of forty characters........")!)).toBeUndefined();
    expect(threadOf(`${sent!.split(".")[0]}.AAAA`)).toBeUndefined();
  });
});

describe("POST /api/reminders", () => {
  it("refuses without the agent's key", async () => {
    const replyTo = replyToFor(chat)!;
    for (const key of [null, "wrong"]) {
      const response = await post({ reply_to: replyTo, when: "2030-01-15T09:00", text: "x" }, key);
      expect(response.status).toBe(401);
    }
    expect(await listCronJobs()).toEqual([]);
  });

  it("refuses a reply_to this gateway did not sign", async () => {
    const response = await post({ reply_to: replyToFor(chat, "z".repeat(40)), when: "2030-01-15T09:00", text: "x" });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ code: "forbidden:api" });
  });

  it.each([
    [{ when: "tomorrow at nine" }, /not a local date-time: use 2026-12-04T09:00 \(Europe\/Paris\)/],
    [{ when: "2020-01-15T09:00" }, /has already passed: it is now \d{4}-\d\d-\d\d \d\d:\d\d \(Europe\/Paris\)/],
    [{ when: "61 9 * * *", repeat: "cron" }, /not a valid cron expression/],
    [{ when: "2030-01-15T09:00", text: "   " }, /text: must not be empty/],
  ])("answers 400 with a reason the model can pass on: %j", async (change, reason) => {
    const defaults: Record<string, unknown> = { reply_to: replyToFor(chat), when: "2030-01-15T09:00", text: "x" };
    const response = await post({ ...defaults, ...change });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(reason);
    expect(await listCronJobs()).toEqual([]);
  });

  it("stores a one-shot reminder for the turn's chat at that local time, and a repeating one by its cron expression", async () => {
    const once = await post({ reply_to: replyToFor(chat), when: "2030-01-15T09:00", text: "Appeler le garage" });
    expect(once.status).toBe(201);
    const created = (await once.json()) as { id: string; next_run: string; time_zone: string };
    expect(created).toMatchObject({ next_run: "2030-01-15 09:00", time_zone: "Europe/Paris" });
    const repeating = await post({ reply_to: replyToFor(chat), when: "0 8 * * 1", text: "Sortir les poubelles", repeat: "cron" });
    expect(repeating.status).toBe(201);
    const [job, weekly] = await listCronJobs().then((jobs) => [jobs.find((j) => j.runAt), jobs.find((j) => !j.runAt)]);
    // 09:00 in Paris in January is 08:00 UTC.
    expect(job).toMatchObject({ kind: "reminder", channel: "whatsapp", channelId: owner, prompt: "Appeler le garage", schedule: "", enabled: true });
    expect(job?.runAt?.toISOString()).toBe("2030-01-15T08:00:00.000Z");
    expect(job?.id.slice(-6)).toBe(created.id);
    expect(weekly).toMatchObject({ kind: "reminder", schedule: "0 8 * * 1", runAt: null, name: "Reminder (0 8 * * 1): Sortir les poubelles" });
    expect(job?.name).toBe("Reminder 2030-01-15 09:00: Appeler le garage");
    // The same words at the same time again: refused, not a second job.
    const again = await post({ reply_to: replyToFor(chat), when: "2030-01-15T09:00", text: "Appeler le garage" });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toBe("The same reminder is already set for that time.");
  });

  it("refuses more than REMINDERS_MAX active reminders", async () => {
    for (let i = 0; i < 3; i++) expect((await post({ reply_to: replyToFor(chat), when: `2030-01-1${i}T09:00`, text: `n${i}` })).status).toBe(201);
    const response = await post({ reply_to: replyToFor(chat), when: "2030-02-01T09:00", text: "one too many" });
    expect(response.status).toBe(409);
    expect(((await response.json()) as { error: string }).error).toContain("REMINDERS_MAX");
  });
});

describe("a one-shot reminder", () => {
  async function dueReminder(text: string, lateMs: number) {
    const response = await post({ reply_to: replyToFor(chat), when: "2030-01-15T09:00", text });
    expect(response.status).toBe(201);
    const [job] = await listCronJobs();
    await db().cronJob.update({ where: { id: job!.id }, data: { runAt: new Date(Date.now() - lateMs) } });
    return job!;
  }

  it("is delivered as written, once, without the model, then shown as done", async () => {
    const job = await dueReminder("Appeler le garage avant 10 h", 60_000);
    const first = await callCron();
    expect(await first.json()).toMatchObject({ ran: [{ name: job.name, status: "ok" }] });
    expect(graph.sent).toEqual([{ to: owner, body: "Appeler le garage avant 10 h" }]);
    expect(agent.runs()).toEqual([]);
    expect(await (await callCron()).json()).toMatchObject({ ran: [] });
    expect(graph.sent).toHaveLength(1);
    const turn = await db().turn.findFirstOrThrow({ where: { externalId: { startsWith: `cron:${job.id}:` } } });
    expect(turn).toMatchObject({ kind: "reminder", state: "delivered" });
    const stored = await listMessagesByConversation({ conversationId: turn.conversationId });
    expect(stored.at(-1)).toMatchObject({ role: "assistant", content: "Appeler le garage avant 10 h", model: "none" });
    const [view] = (await listJobs()).jobs;
    expect(view).toMatchObject({ kind: "reminder", lastStatus: "ok", nextRun: null, missedAt: null });
  });

  it("is recorded, not sent again, when a process died between sending it and recording the run", async () => {
    const job = await dueReminder("Une seule fois", 60_000);
    await callCron();
    const { lastTurnId } = await db().cronJob.findUniqueOrThrow({ where: { id: job.id } });
    expect(lastTurnId).not.toBeNull();
    // What such a process leaves: the slot's turn exists, the job does not point at it.
    await db().cronJob.update({ where: { id: job.id }, data: { lastTurnId: null } });
    expect(await (await callCron()).json()).toMatchObject({ ran: [] });
    expect(graph.sent.map((m) => m.body)).toEqual(["Une seule fois"]);
    expect(await db().cronJob.findUniqueOrThrow({ where: { id: job.id } })).toMatchObject({ lastTurnId, missedAt: null });
  });

  it("is marked missed, never sent, when the machine was off past REMINDER_GRACE_S", async () => {
    const job = await dueReminder("Trop tard", 2 * 3_600_000);
    expect(await (await callCron()).json()).toMatchObject({ ran: [] });
    expect(graph.sent).toEqual([]);
    const [view] = (await listJobs()).jobs;
    expect(view).toMatchObject({ id: job.id, nextRun: null, enabled: false, missedAt: expect.any(String), lastRun: null });
    expect(await (await callCron()).json()).toMatchObject({ ran: [] });
  });
});

describe("the owner is told at their next message", () => {
  const turns = () => createTurnRunner({ agent: createAgentClient({ baseUrl: agent.url, apiKey: AGENT_KEY }), channels: channelsByName() });
  let seq = 0;
  const ownerWrites = (text: string) => turns().runTurn({ channel: "whatsapp", channelId: owner, externalId: `wamid.notice-${++seq}-${Date.now()}`, text });

  async function reminderDue(text: string, lateMs: number) {
    expect((await post({ reply_to: replyToFor(chat), when: "2030-01-15T09:00", text })).status).toBe(201);
    const [job] = await listCronJobs();
    const runAt = new Date(Date.now() - lateMs);
    await db().cronJob.update({ where: { id: job!.id }, data: { runAt } });
    return localTime(runAt, "Europe/Paris");
  }

  beforeEach(async () => {
    await saveSettings({ values: { persona_lang: "en" } });
    await db().notice.deleteMany();
  });

  it("of a reminder missed while the machine was off: its time and words, once, above the answer", async () => {
    const when = await reminderDue("Arroser les plantes", 2 * 3_600_000);
    await callCron();
    expect(graph.sent).toEqual([]);

    await ownerWrites("bonjour");
    expect(graph.sent.map((m) => m.body)).toEqual([`⚠️ Reminder missed (the machine was off at ${when}): Arroser les plantes\n\nEcho: bonjour`]);
    // The agent was asked the owner's message only, as always.
    expect(agent.runs().map((r) => r.message)).toEqual(["bonjour"]);
    await ownerWrites("encore");
    expect(graph.sent.at(-1)?.body).toBe("Echo: encore");
  });

  it("of a reminder WhatsApp refused outside the 24-hour window when no template is set", async () => {
    const when = await reminderDue("Rendez-vous dentiste", 60_000);
    graph.failTo(owner, { code: 131047, message: "(#131047) Re-engagement message" });
    try {
      expect(await (await callCron()).json()).toMatchObject({ ran: [{ status: "failed" }] });
    } finally {
      graph.failTo(owner, undefined);
    }
    const turn = await db().turn.findFirstOrThrow({ where: { kind: "reminder", state: "failed" }, orderBy: { createdAt: "desc" } });
    expect(turn.lastError).toMatch(/131047/);

    await ownerWrites("me revoilà");
    expect(graph.sent.map((m) => m.body)).toEqual([`⚠️ Reminder of ${when} that could not be delivered here: Rendez-vous dentiste\n\nEcho: me revoilà`]);
    await ownerWrites("et maintenant");
    expect(graph.sent.at(-1)?.body).toBe("Echo: et maintenant");
  });

  it("in French when the persona speaks French, and only in the chat the reminder was for", async () => {
    await saveSettings({ values: { persona_lang: "fr" } });
    const when = await reminderDue("Sortir les poubelles", 2 * 3_600_000);
    await callCron();
    await turns().runTurn({ channel: "whatsapp", channelId: "33600000001", externalId: `wamid.other-${Date.now()}`, text: "autre" });
    expect(graph.sent.at(-1)?.body).toBe("Echo: autre");
    await ownerWrites("salut");
    expect(graph.sent.at(-1)?.body).toBe(`⚠️ Rappel manqué (la machine était éteinte le ${when}) : Sortir les poubelles\n\nEcho: salut`);
  });
});
