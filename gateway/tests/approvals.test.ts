import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as approvals from "../app/api/approvals/route";
import * as approvalById from "../app/api/approvals/[id]/route";
import * as claimRoute from "../app/api/approvals/[id]/claim/route";
import * as decisionRoute from "../app/api/approvals/[id]/decision/route";
import { createAgentClient } from "../lib/agent-client";
import { turnRefFor } from "../lib/approvals/turn-ref";
import { channelsByName } from "../lib/channels";
import { parseWebhook } from "../lib/channels/whatsapp";
import { db } from "../lib/db/client";
import { saveSettings } from "../lib/db/settings";
import { getTurnById } from "../lib/db/turns";
import { createTurnRunner } from "../lib/turns/runner";
import { recordInbound } from "../lib/turns/store";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";
import { startFakeGraph, type FakeGraph } from "./support/fake-graph";
import { startFakeNextcloud, type FakeNextcloud } from "./support/fake-nextcloud";
import { buttonReply, whatsappDelivery } from "./support/wire";

// Approvals, gateway side (issue 14): the agent asks with the turn's signed
// reference; the request reaches the chat at once (WhatsApp buttons, Talk text);
// /approve, /deny or a button decide it once; the agent long-polls and claims
// an approved call once; an agent lost while a turn waits ends that turn.

const AGENT_KEY = "a".repeat(40);
const TOKEN = "o".repeat(48);
const accessToken = "EAAGm0PX4ZCpsBA-approvals";
const phoneNumberId = "106540352242922";
const owner = "33611112222";
const room = "appr0va1s";
const talkSecret = "t".repeat(64);
const base = "http://127.0.0.1:3000";

let agent: FakeAgent;
let graph: FakeGraph;
let talk: FakeNextcloud;
let seq = 0;

beforeAll(async () => {
  [agent, graph, talk] = await Promise.all([
    startFakeAgent({ apiKey: AGENT_KEY }),
    startFakeGraph({ accessToken, phoneNumberId }),
    startFakeNextcloud({ secret: talkSecret, tokens: [room] }),
  ]);
  Object.assign(process.env, {
    AGENT_API_KEY: AGENT_KEY,
    AGENT_URL: agent.url,
    WEBCHAT_TOKEN: TOKEN,
    APPROVAL_TIMEOUT_S: "60",
    WHATSAPP_ACCESS_TOKEN: accessToken,
    WHATSAPP_PHONE_NUMBER_ID: phoneNumberId,
    WHATSAPP_API_URL: graph.url,
    NEXTCLOUD_BASE_URL: talk.url,
    NEXTCLOUD_BOT_SECRET: talkSecret,
  });
  await saveSettings({ values: { persona_lang: "en" } });
});
afterAll(async () => {
  await Promise.all([agent.close(), graph.close(), talk.close()]);
});
beforeEach(async () => {
  // Each test starts with nothing waiting in either chat.
  await db().approval.updateMany({ where: { state: "pending" }, data: { state: "expired" } });
  agent.reply = () => ({});
  graph.sent.length = 0;
  graph.sentButtons.length = 0;
  talk.posted.length = 0;
});

const turns = () => createTurnRunner({ agent: createAgentClient({ baseUrl: agent.url, apiKey: AGENT_KEY }), channels: channelsByName() });

/** A turn of the owner's, as a message the pipeline stored and is running. */
async function turnOn(channel: "whatsapp" | "nextcloud", channelId: string) {
  const { turn } = await recordInbound({ channel, channelId, externalId: `wamid.approval-${++seq}`, text: "search then act" });
  return turn.id;
}

const summary = 'os_exec(command="touch /tmp/claw-marker")';
const source = "the assistant read web search results in this turn";

function ask(turnId: string, overrides: Record<string, unknown> = {}, key: string | null = AGENT_KEY) {
  const body = { turn_ref: turnRefFor(turnId), tool: "os_exec", summary, reason: "outside_content", source, ...overrides };
  const headers: Record<string, string> = { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) };
  return approvals.POST(new Request(`${base}/api/approvals`, { method: "POST", headers, body: JSON.stringify(body) }));
}
const params = (id: string) => ({ params: Promise.resolve({ id }) });
const agentHeaders = { authorization: `Bearer ${AGENT_KEY}` };
const poll = (id: string, wait = 0) => approvalById.GET(new Request(`${base}/api/approvals/${id}?wait=${wait}`, { headers: agentHeaders }), params(id));
const claim = (id: string) => claimRoute.POST(new Request(`${base}/api/approvals/${id}/claim`, { method: "POST", headers: agentHeaders }), params(id));
const ownerWrites = (channel: "whatsapp" | "nextcloud", channelId: string, text: string) =>
  turns().runTurn({ channel, channelId, externalId: `owner-${++seq}`, text });

describe("the agent asks", () => {
  it("needs the agent's key and a turn reference this gateway signed", async () => {
    const turnId = await turnOn("whatsapp", owner);
    expect((await ask(turnId, {}, null)).status).toBe(401);
    expect((await ask(turnId, {}, "wrong")).status).toBe(401);
    const forged = await ask(turnId, { turn_ref: `${turnId}.AAAA` });
    expect(forged.status).toBe(403);
    expect((await ask(turnId, { reason: "because" })).status).toBe(400);
    expect(await db().approval.count({ where: { turnId } })).toBe(0);
    expect(graph.sentButtons).toEqual([]);
  });

  it("reaches WhatsApp at once as a message with Approve and Deny buttons; the same call asked again is the same approval", async () => {
    const turnId = await turnOn("whatsapp", owner);
    const first = await ask(turnId);
    expect(first.status).toBe(201);
    const view = (await first.json()) as { id: string; state: string; expires_at: string };
    expect(view.state).toBe("pending");
    expect(new Date(view.expires_at).getTime() - Date.now()).toBeGreaterThan(55_000);
    expect(graph.sentButtons).toHaveLength(1);
    const [sent] = graph.sentButtons;
    expect(sent!.to).toBe(owner);
    expect(sent!.body).toContain("touch /tmp/claw-marker");
    expect(sent!.body).toContain(`Why: ${source}`);
    expect(sent!.buttons).toEqual([
      { id: `/approve ${view.id.slice(-6)}`, title: "Approve" },
      { id: `/deny ${view.id.slice(-6)}`, title: "Deny" },
    ]);

    const again = await ask(turnId);
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(view.id);
    expect(graph.sentButtons).toHaveLength(1);
  });

  it("reaches Talk as text naming the commands", async () => {
    const turnId = await turnOn("nextcloud", room);
    expect((await ask(turnId)).status).toBe(201);
    expect(talk.posted).toHaveLength(1);
    expect(talk.posted[0]!.message).toMatch(/touch \/tmp\/claw-marker[\s\S]*Answer \/approve or \/deny within 1 min/);
  });
});

describe("the owner decides, the agent claims once", () => {
  it("/approve in the chat approves the waiting call; the long poll sees it; one claim runs, the next does not", async () => {
    const turnId = await turnOn("whatsapp", owner);
    const { id } = (await (await ask(turnId)).json()) as { id: string };
    const started = Date.now();
    const waiting = poll(id, 5);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await ownerWrites("whatsapp", owner, "/approve");
    const decided = (await (await waiting).json()) as { state: string };
    expect(decided.state).toBe("approved");
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(graph.sent.at(-1)?.body).toBe(`Approved: ${summary}. It runs now, once.`);
    // The model was never asked about /approve: the gateway answered it.
    expect(agent.runs().some((run) => run.message === "/approve")).toBe(false);

    expect(await (await claim(id)).json()).toEqual({ run: true, state: "executed" });
    expect(await (await claim(id)).json()).toEqual({ run: false, state: "executed" });
    await ownerWrites("whatsapp", owner, "/approve");
    expect(graph.sent.at(-1)?.body).toBe("No action is waiting for your approval in this chat.");
  });

  it("a tapped Deny button denies it, once, even when Meta delivers the tap twice", async () => {
    const turnId = await turnOn("whatsapp", owner);
    const { id } = (await (await ask(turnId)).json()) as { id: string };
    const [button] = graph.sentButtons.at(-1)!.buttons.slice(1);
    const delivery = parseWebhook(JSON.parse(whatsappDelivery([{ messages: [buttonReply(owner, "wamid.tap-1", button!)] }])));
    expect(delivery.messages).toMatchObject([{ channelId: owner, externalId: "wamid.tap-1", kind: "text", text: `/deny ${id.slice(-6)}` }]);
    const tap = { channel: "whatsapp" as const, channelId: owner, externalId: "wamid.tap-1", text: delivery.messages[0]!.text };
    await turns().runTurn(tap);
    const replay = await turns().runTurn(tap);
    expect(replay.isDuplicate).toBe(true);
    expect(((await (await poll(id)).json()) as { state: string }).state).toBe("denied");
    expect(graph.sent.filter((m) => m.body.startsWith("Denied:"))).toHaveLength(1);
    expect(await (await claim(id)).json()).toEqual({ run: false, state: "denied" });
  });

  it("asks which one when several wait, and takes the id", async () => {
    const turnId = await turnOn("nextcloud", room);
    const a = (await (await ask(turnId, { summary: 'os_exec(command="a")' })).json()) as { id: string };
    const b = (await (await ask(turnId, { summary: 'os_exec(command="b")' })).json()) as { id: string };
    await ownerWrites("nextcloud", room, "/approve");
    expect(talk.posted.at(-1)?.message).toContain(a.id.slice(-6));
    expect(talk.posted.at(-1)?.message).toContain(b.id.slice(-6));
    await ownerWrites("nextcloud", room, `/deny ${b.id.slice(-6)}`);
    await ownerWrites("nextcloud", room, "/approve");
    const states = await db().approval.findMany({ where: { id: { in: [a.id, b.id] } }, orderBy: { createdAt: "asc" } });
    expect(states.map((row) => row.state)).toEqual(["approved", "denied"]);
  });

  it("counts as denied once its time has passed", async () => {
    const turnId = await turnOn("whatsapp", owner);
    const { id } = (await (await ask(turnId)).json()) as { id: string };
    await db().approval.update({ where: { id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect(((await (await poll(id, 1)).json()) as { state: string }).state).toBe("expired");
    await ownerWrites("whatsapp", owner, "/approve");
    expect(graph.sent.at(-1)?.body).toBe("No action is waiting for your approval in this chat.");
    expect(await (await claim(id)).json()).toEqual({ run: false, state: "expired" });
  });

  it("the webchat's buttons decide with the owner's session, and nobody else's", async () => {
    const turnId = await turnOn("whatsapp", owner);
    const { id } = (await (await ask(turnId)).json()) as { id: string };
    const decide = (headers: Record<string, string>) =>
      decisionRoute.POST(
        new Request(`${base}/api/approvals/${id}/decision`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ decision: "approve" }) }),
        params(id),
      );
    expect((await decide({})).status).toBe(401);
    expect((await decide({ authorization: `Bearer ${AGENT_KEY}` })).status).toBe(401);
    const answered = await decide({ authorization: `Bearer ${TOKEN}` });
    expect(await answered.json()).toMatchObject({ decided: true, state: "approved" });
    expect(await (await decide({ authorization: `Bearer ${TOKEN}` })).json()).toMatchObject({ decided: false, state: "approved" });
  });
});

describe("the turn around an approval", () => {
  it("sends the turn's reference with every run, and says a scheduled run is unattended", async () => {
    await ownerWrites("whatsapp", owner, "hello");
    const run = agent.runs().at(-1) as unknown as { turn_ref?: string; attended?: boolean };
    expect(run.turn_ref).toMatch(/^\w+\.[\w-]+$/);
    expect(run.attended).toBeUndefined();
    await turns().runTurn({ channel: "whatsapp", channelId: owner, externalId: `cron:job-x:${new Date().toISOString()}`, text: '[scheduled job "tidy"]\nclean up' });
    expect((agent.runs().at(-1) as unknown as { attended?: boolean }).attended).toBe(false);
  });

  it("tells a scheduled run's result what it could not do without the owner", async () => {
    agent.reply = () => ({ response: "Cleanup skipped.", approvals: [{ tool: "os_exec", decision: "unattended", waited_s: 0 }] });
    await turns().runTurn({ channel: "whatsapp", channelId: owner, externalId: `cron:job-y:${new Date().toISOString()}`, text: '[scheduled job "tidy"]\nclean up' });
    expect(graph.sent.at(-1)?.body).toBe(
      "Cleanup skipped.\n\n(Not done: os_exec needed the owner's approval, which a scheduled run cannot wait for. Set APPROVAL_MODE=off to allow it, or ask in a chat.)",
    );
  });

  it("ends a turn whose agent went away while it waited for an approval, instead of running it again", async () => {
    const turnId = await turnOn("whatsapp", owner);
    const { id } = (await (await ask(turnId)).json()) as { id: string };
    // The agent dies during the run: the gateway's call ends with a 503 (the agent answers so when it restarts).
    agent.reply = () => ({ status: 503, error: { error: "The agent restarted.", code: "model_unavailable" } });
    const runner = turns();
    await expect
      .poll(
        async () => {
          await runner.resumeDueTurns();
          await runner.idle();
          return (await getTurnById({ id: turnId }))?.state;
        },
        { timeout: 5_000 },
      )
      .toBe("failed");
    expect((await getTurnById({ id: turnId }))?.lastError).toBe(
      "upstream:agent: The agent stopped while an action waited for your approval; nothing more was run. Ask again if you still want it.",
    );
    expect((await db().approval.findUniqueOrThrow({ where: { id } })).state).toBe("expired");
    // The owner was waiting in that chat: they are told there, once.
    const { externalId } = (await getTurnById({ id: turnId }))!;
    expect(graph.sent.filter((m) => m.replyTo === externalId).map((m) => m.body)).toEqual([
      "⚠️ I could not answer your message: The agent stopped while an action waited for your approval; nothing more was run. Ask again if you still want it.",
    ]);
  });
});
