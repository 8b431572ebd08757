import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as cronJobRun from "../app/api/cron-jobs/[id]/run/route";
import * as cronJob from "../app/api/cron-jobs/[id]/route";
import * as cronJobs from "../app/api/cron-jobs/route";
import * as cron from "../app/api/cron/route";
import { backgroundIdle } from "../lib/background";
import { listJobs } from "../lib/cron-jobs";
import { parseCronPrompt } from "../lib/cron-prompt";
import { db } from "../lib/db/client";
import { listMessagesByConversation } from "../lib/db/messages";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";
import { startFakeGraph, type FakeGraph } from "./support/fake-graph";

// /api/cron as the crontab calls it, and the webchat's management API, through
// the real routes, pipeline and database, with the fake agent and Graph API.

const TOKEN = "w".repeat(48);
const CRON_SECRET = "c".repeat(40);
const phoneNumberId = "106540352242922";
const accessToken = "EAAGm0PX4ZCpsBA-cron";
const owner = "33612345678";
const base = "http://127.0.0.1:3000";
const bearer = { authorization: `Bearer ${TOKEN}` };

let agent: FakeAgent;
let graph: FakeGraph;

beforeAll(async () => {
  agent = await startFakeAgent();
  graph = await startFakeGraph({ accessToken, phoneNumberId });
  Object.assign(process.env, {
    WEBCHAT_TOKEN: TOKEN,
    CRON_SECRET,
    CRON_TIMEZONE: "Europe/Paris",
    AGENT_URL: agent.url,
    WHATSAPP_ACCESS_TOKEN: accessToken,
    WHATSAPP_PHONE_NUMBER_ID: phoneNumberId,
    WHATSAPP_API_URL: graph.url,
  });
});
afterAll(async () => {
  await backgroundIdle();
  await Promise.all([agent.close(), graph.close()]);
});
beforeEach(async () => {
  await db().cronJob.deleteMany();
  agent.requests.length = 0;
  agent.reply = () => ({});
  graph.sent.length = 0;
});

const params = (id: string) => ({ params: Promise.resolve({ id }) });
const json = (body: unknown) => JSON.stringify(body);

function callCron(headers: Record<string, string> = { "x-cron-secret": CRON_SECRET }, method = "POST") {
  return cron[method === "GET" ? "GET" : "POST"](new Request(`${base}/api/cron`, { method, headers }));
}

async function create(body: Record<string, unknown>) {
  return cronJobs.POST(new Request(`${base}/api/cron-jobs`, { method: "POST", headers: bearer, body: json(body) }));
}

/** A job through the API whose every-minute schedule started two minutes ago, so it is due now. */
async function dueJob(body: Record<string, unknown>) {
  const response = await create({ schedule: "* * * * *", prompt: "Say hello", channel: "webchat", ...body });
  expect(response.status).toBe(201);
  const job = (await response.json()) as { id: string; channelId: string };
  await db().cronJob.update({ where: { id: job.id }, data: { scheduleSince: new Date(Date.now() - 120_000) } });
  return job;
}

describe("/api/cron", () => {
  it("refuses a missing or wrong secret with 401 and runs nothing", async () => {
    await dueJob({ name: "guarded" });
    const turns = await db().turn.count();
    const attempts: Record<string, string>[] = [{}, { "x-cron-secret": "nope" }, { "x-cron-secret": `${CRON_SECRET}x` }];
    for (const headers of attempts) {
      const response = await callCron(headers);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ code: "unauthorized:cron", error: expect.stringContaining("X-Cron-Secret") });
    }
    expect(await db().turn.count()).toBe(turns);
    expect(agent.runs()).toHaveLength(0);
    expect((await db().cronJob.findFirstOrThrow()).lastRun).toBeNull();
  });

  it("runs each due job once across two concurrent calls, delivers and stores the answer", async () => {
    const web = await dueJob({ name: "Bonjour web", prompt: "Dis bonjour au web" });
    await dueJob({ name: "Bonjour WhatsApp", prompt: "Dis bonjour", channel: "whatsapp", channelId: `+${owner}` });
    const [first, second] = await Promise.all([callCron(), callCron({ "x-cron-secret": CRON_SECRET }, "GET")]);
    const bodies = [await first!.json(), await second!.json()] as { ran: { name: string; status: string }[]; skipped: number }[];
    const ran = bodies.flatMap((body) => body.ran);
    expect(ran.map((r) => r.name).sort()).toEqual(["Bonjour WhatsApp", "Bonjour web"]);
    expect(ran.every((r) => r.status === "ok")).toBe(true);
    expect(bodies.map((body) => body.skipped).sort()).toEqual([0, 2]);
    expect(agent.runs()).toHaveLength(2);
    expect(graph.sent).toEqual([{ to: owner, body: 'Echo: [scheduled job "Bonjour WhatsApp"]\nDis bonjour' }]);

    // The prompt is stored marked as the job's, then the answer, in the chosen conversation.
    const messages = await listMessagesByConversation({ conversationId: web.channelId });
    expect(messages.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(parseCronPrompt(messages[0]!.content)).toEqual({ jobName: "Bonjour web", prompt: "Dis bonjour au web" });
    expect(messages[1]!.content).toContain("Dis bonjour au web");
    // The persona goes with the job's prompt, as with any message.
    expect(agent.runs().find((run) => run.message.includes("web"))?.system_prompt).toMatch(/^You are .+, the owner's personal assistant\./);

    // The same minute again: nothing is due.
    const again = await callCron();
    expect(await again.json()).toMatchObject({ ran: [], skipped: 2 });
    expect(agent.runs()).toHaveLength(2);
    const { jobs } = await listJobs();
    expect(jobs).toHaveLength(2);
    expect(jobs.every((job) => job.lastStatus === "ok" && job.lastError === null && job.lastRun && job.lastDurationMs !== null)).toBe(true);
  });

  it("runs a job that missed several slots once", async () => {
    const job = await dueJob({ name: "catch up" });
    await db().cronJob.update({ where: { id: job.id }, data: { scheduleSince: new Date(Date.now() - 3_600_000) } });
    expect(await (await callCron()).json()).toMatchObject({ ran: [{ name: "catch up", status: "ok" }] });
    expect(await (await callCron()).json()).toMatchObject({ ran: [], skipped: 1 });
    expect(agent.runs()).toHaveLength(1);
  });

  it("sends and stores the unfinished note when the agent ran out of steps on a scheduled run", async () => {
    const web = await dueJob({ name: "long web", prompt: "Résume mes mails" });
    await dueJob({ name: "long phone", prompt: "Résume mes mails", channel: "whatsapp", channelId: owner });
    agent.reply = () => ({ finished: false, steps: 1, response: "Arrêté après 2 mails sur 5." });
    expect(await (await callCron()).json()).toMatchObject({ ran: [{ status: "ok" }, { status: "ok" }] });
    const expected = "Arrêté après 2 mails sur 5.\n\n⏹ Arrêté après 1 étape, avant la fin (limite d'étapes ou de temps).";
    expect(graph.sent).toEqual([{ to: owner, body: expected }]);
    expect((await listMessagesByConversation({ conversationId: web.channelId })).at(-1)).toMatchObject({ role: "assistant", content: expected });
  });

  it("keeps going when one job fails, records why, skips disabled jobs, and says nothing of the content", async () => {
    await dueJob({ name: "agent down", prompt: "secret-prompt-1" });
    await dueJob({ name: "window closed", prompt: "secret-prompt-2", channel: "whatsapp", channelId: owner });
    await dueJob({ name: "fine", prompt: "secret-prompt-3" });
    await dueJob({ name: "off", prompt: "secret-prompt-4", enabled: false });
    agent.reply = (body) => (body.message.includes("secret-prompt-1") ? { status: 503, error: { error: "Ollama is down", code: "unavailable:ollama" } } : {});
    graph.failNext({ code: 131047, message: "Re-engagement message" });

    const response = await callCron();
    const text = await response.text();
    const summary = JSON.parse(text) as { ran: { name: string; status: string }[]; skipped: number };
    expect(Object.fromEntries(summary.ran.map((r) => [r.name, r.status]))).toEqual({ "agent down": "failed", "window closed": "failed", fine: "ok" });
    expect(summary.skipped).toBe(1);
    expect(text).not.toMatch(/secret-prompt|Echo/);

    const byName = Object.fromEntries((await listJobs()).jobs.map((job) => [job.name, job]));
    expect(byName["agent down"]).toMatchObject({ lastStatus: "failed", lastError: expect.stringContaining("unavailable:agent") });
    expect(byName["window closed"]).toMatchObject({ lastStatus: "failed", lastError: expect.stringContaining("24 hours") });
    expect(byName.fine).toMatchObject({ lastStatus: "ok", lastError: null });
    expect(byName.off).toMatchObject({ lastRun: null, lastStatus: null });
    expect(agent.runs().some((run) => run.message.includes("secret-prompt-4"))).toBe(false);
  });
});

describe("/api/cron-jobs", () => {
  it("needs the webchat login", async () => {
    expect((await cronJobs.GET(new Request(`${base}/api/cron-jobs`))).status).toBe(401);
    const headers = { "x-cron-secret": CRON_SECRET };
    expect((await cronJobRun.POST(new Request(`${base}/api/cron-jobs/x/run`, { method: "POST", headers }), params("x"))).status).toBe(401);
  });

  it.each([
    [{ schedule: "0 9 * *" }, /schedule: "0 9 \* \*" has 4 field\(s\); use 5/],
    [{ schedule: "61 * * * *" }, /schedule: .*not a valid cron expression/],
    [{ channel: "telegram" }, /channel: must be one of webchat, whatsapp, nextcloud/],
    [{ prompt: "   " }, /prompt: must not be empty/],
    [{ name: "" }, /name: must not be empty/],
    [{ model: "bad model!" }, /model: use a category/],
    [{ channel: "whatsapp" }, /channelId: a WhatsApp number/],
    [{ channel: "nextcloud", channelId: "a/b" }, /channelId: a Talk conversation token/],
    [{ channelId: "no-such-conversation" }, /channelId: no webchat conversation/],
  ])("refuses %j with a clear 400", async (override, message) => {
    const response = await create({ name: "job", schedule: "0 9 * * *", prompt: "hi", channel: "webchat", ...override });
    expect(response.status).toBe(400);
    expect((await response.json()).error).toMatch(message);
  });

  it("refuses a duplicate name with 400", async () => {
    expect((await create({ name: "Daily", schedule: "@daily", prompt: "hi", channel: "webchat" })).status).toBe(201);
    const response = await create({ name: "Daily", schedule: "@daily", prompt: "hi", channel: "webchat" });
    expect(response.status).toBe(400);
    expect((await response.json()).error).toContain('A job named "Daily" already exists');
    expect(await db().conversation.count({ where: { title: "Daily" } })).toBe(1);
  });

  it("creates, lists with nextRun in CRON_TIMEZONE, edits, disables and deletes", async () => {
    const created = await create({ name: "Bonjour quotidien", schedule: "0 9 * * *", prompt: "Bonjour !", channel: "nextcloud", channelId: "n3xtc10ud" });
    expect(created.status).toBe(201);
    const job = (await created.json()) as Record<string, unknown> & { id: string; nextRun: string };
    expect(Object.keys(job).sort()).toEqual(
      ["id", "name", "schedule", "prompt", "channel", "channelId", "model", "enabled", "lastRun", "lastStatus", "lastError", "lastDurationMs", "nextRun", "kind", "runAt", "missedAt"].sort(),
    );
    expect(job).toMatchObject({ model: "smart", enabled: true, lastRun: null, lastStatus: null, kind: "agent", runAt: null, missedAt: null });
    // 09:00 in Paris is 08:00 UTC in winter, 07:00 in summer.
    expect(job.nextRun).toMatch(/T0[78]:00:00\.000Z$/);
    expect(new Date(job.nextRun).getTime()).toBeGreaterThan(Date.now());

    const list = await (await cronJobs.GET(new Request(`${base}/api/cron-jobs`, { headers: bearer }))).json();
    expect(list).toMatchObject({ timeZone: "Europe/Paris", jobs: [{ id: job.id, name: "Bonjour quotidien" }] });

    const patch = (body: unknown) => cronJob.PATCH(new Request(`${base}/api/cron-jobs/${job.id}`, { method: "PATCH", headers: bearer, body: json(body) }), params(job.id));
    const edited = await (await patch({ schedule: "30 18 * * 1-5", prompt: "Bonsoir" })).json();
    expect(edited).toMatchObject({ schedule: "30 18 * * 1-5", prompt: "Bonsoir", channel: "nextcloud" });
    expect(edited.nextRun).toMatch(/T1[67]:30:00\.000Z$/);
    expect((await (await patch({ enabled: false })).json())).toMatchObject({ enabled: false, nextRun: null });
    expect((await patch({ schedule: "nope" })).status).toBe(400);
    expect((await patch({ channel: "whatsapp" })).status).toBe(400);

    const remove = () => cronJob.DELETE(new Request(`${base}/api/cron-jobs/${job.id}`, { method: "DELETE", headers: bearer }), params(job.id));
    expect((await remove()).status).toBe(204);
    expect((await remove()).status).toBe(404);
  });

  it("runs a job now, whatever its schedule, into a webchat conversation of its own", async () => {
    const created = (await (await create({ name: "Now", schedule: "0 0 1 1 *", prompt: "Quick one", channel: "webchat", enabled: false })).json()) as {
      id: string;
      channelId: string;
    };
    const response = await cronJobRun.POST(new Request(`${base}/api/cron-jobs/${created.id}/run`, { method: "POST", headers: bearer }), params(created.id));
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id: created.id, lastStatus: "ok", lastError: null, lastRun: expect.any(String) });
    const conversation = await db().conversation.findUniqueOrThrow({ where: { id: created.channelId } });
    expect(conversation).toMatchObject({ channel: "webchat", title: "Now" });
    const messages = await listMessagesByConversation({ conversationId: conversation.id });
    expect(messages.map((m) => m.content)).toEqual(['[scheduled job "Now"]\nQuick one', 'Echo: [scheduled job "Now"]\nQuick one']);
    const missing = await cronJobRun.POST(new Request(`${base}/api/cron-jobs/nope/run`, { method: "POST", headers: bearer }), params("nope"));
    expect(missing.status).toBe(404);
  });
});

describe("claiming a run", () => {
  it("lets one of three callers that see the same slot run it: the slot's turn key is unique", async () => {
    const { runDueCronJobs } = await import("../lib/cron");
    const job = await dueJob({ name: "race" });
    const summaries = await Promise.all([1, 2, 3].map(() => runDueCronJobs()));
    expect(summaries.flatMap((summary) => summary.ran)).toEqual([{ name: "race", status: "ok" }]);
    const turns = await db().turn.findMany({ where: { externalId: { startsWith: `cron:${job.id}:` } } });
    expect(turns.map((turn) => turn.externalId)).toEqual([expect.stringMatching(new RegExp(`^cron:${job.id}:\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:00\\.000Z$`))]);
    expect(agent.runs()).toHaveLength(1);
  });
});

describe("slow and orphaned runs", () => {
  it("answers 'running' after the wait and records the outcome when the run ends", async () => {
    const { runDueCronJobs } = await import("../lib/cron");
    await dueJob({ name: "slow" });
    agent.reply = () => ({ delayMs: 400 });
    const summary = await runDueCronJobs({ waitMs: 50 });
    expect(summary.ran).toEqual([{ name: "slow", status: "running" }]);
    expect((await listJobs()).jobs).toMatchObject([{ lastStatus: "running", lastDurationMs: null }]);
    await backgroundIdle();
    expect((await listJobs()).jobs).toMatchObject([{ lastStatus: "ok", lastError: null, lastDurationMs: expect.any(Number) }]);
  });

  it("gives a webchat job whose conversation was deleted a new one", async () => {
    const job = await dueJob({ name: "orphan" });
    await db().conversation.delete({ where: { id: job.channelId } });
    expect(await (await callCron()).json()).toMatchObject({ ran: [{ name: "orphan", status: "ok" }] });
    // The job keeps its thread; the API shows the thread's new conversation.
    const [{ channelId } = { channelId: "" }] = (await listJobs()).jobs;
    expect(channelId).not.toBe(job.channelId);
    expect(await db().conversation.findUniqueOrThrow({ where: { id: channelId } })).toMatchObject({ channel: "webchat", title: "orphan" });
    expect(await listMessagesByConversation({ conversationId: channelId })).toHaveLength(2);
  });
});

describe("a run finished later by the sweep", () => {
  it("is retried by a later /api/cron call and then reported ok from its turn", async () => {
    const { turnRunner } = await import("../lib/turns/runner");
    const job = await dueJob({ name: "flaky", channel: "whatsapp", channelId: owner });
    agent.reply = () => ({ status: 503, error: { error: "Ollama is down", code: "unavailable:ollama" } });
    expect(await (await callCron()).json()).toMatchObject({ ran: [{ name: "flaky", status: "retrying" }] });
    const list = async () => ((await (await cronJobs.GET(new Request(`${base}/api/cron-jobs`, { headers: bearer }))).json()) as { jobs: { lastStatus: string; lastError: string | null }[] }).jobs[0];
    expect(await list()).toMatchObject({ lastStatus: "retrying", lastError: expect.stringContaining("unavailable:agent") });

    agent.reply = () => ({});
    await db().turn.updateMany({ where: { externalId: { startsWith: `cron:${job.id}:` } }, data: { nextAttemptAt: new Date(0) } });
    expect(await (await callCron()).json()).toMatchObject({ ran: [], resumed: 1 });
    await turnRunner().idle();
    expect(graph.sent).toHaveLength(1);
    expect(await list()).toMatchObject({ lastStatus: "ok", lastError: null });
  });
});
