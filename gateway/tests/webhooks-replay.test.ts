import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as nextcloudRoute from "../app/api/webhook/nextcloud/route";
import * as whatsappRoute from "../app/api/webhook/whatsapp/route";
import { backgroundIdle } from "../lib/background";
import { db } from "../lib/db/client";
import { startChannelFakes, type ChannelFakes } from "./support/channel-fakes";
import type { FakeAgent } from "./support/fake-agent";
import type { FakeGraph } from "./support/fake-graph";
import type { FakeNextcloud } from "./support/fake-nextcloud";
import { metaSignature, talkMessage, talkSignature, textMessage, whatsappDelivery } from "./support/wire";

// Replayed webhooks: a captured, correctly signed delivery posted again by
// someone else (all at once while the first is being answered, and days later)
// is acknowledged with 200 and never makes a second turn, agent run or answer.
// The durable dedupe on the message id (wamid, Talk message id) does it.

const appSecret = "5e0b6d1c2a3f4e5d6c7b8a9f0e1d2c3b";
const botSecret = "r".repeat(56);
const accessToken = "EAAG-replay";
const phoneNumberId = "106540352242922";
const owner = "16505551234";
const room = "replayroom";
const random = "aB3+/".repeat(12) + "xyzw";

let fakes: ChannelFakes;
let agent: FakeAgent;
let graph: FakeGraph;
let talk: FakeNextcloud;

beforeAll(async () => {
  fakes = await startChannelFakes({ appSecret, accessToken, phoneNumberId, allowedNumbers: owner, botSecret, rooms: [room] });
  ({ agent, graph, talk } = fakes);
  Object.assign(process.env, fakes.env);
});
afterAll(async () => {
  await backgroundIdle();
  await fakes.close();
});
beforeEach(() => fakes.forget());

// The exact request Meta sent, as an attacker who captured it would send it again (from anywhere).
const replayWhatsApp = (raw: string, signature: string, client: string) =>
  whatsappRoute.POST(
    new Request("http://127.0.0.1:3000/api/webhook/whatsapp", {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": signature, "x-forwarded-for": client },
      body: raw,
    }),
  );

const replayTalk = (raw: string, signature: string, client: string) =>
  nextcloudRoute.POST(
    new Request("http://127.0.0.1:3000/api/webhook/nextcloud", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-nextcloud-talk-random": random,
        "x-nextcloud-talk-signature": signature,
        "x-nextcloud-talk-backend": "https://cloud.example.org/",
        "x-forwarded-for": client,
      },
      body: raw,
    }),
  );

const turnsOf = (externalId: string) => db().turn.findMany({ where: { externalId: { contains: externalId } } });

describe("a replayed WhatsApp delivery", () => {
  it("is acknowledged but answered once: replays during the first turn and days after", async () => {
    const id = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzRUIwRkE3NDc0RDg5MDk1QzFDAA==";
    const raw = whatsappDelivery([{ messages: [textMessage(owner, id, "transfer 100 EUR to Bob")] }]);
    const signature = metaSignature(raw, appSecret);
    agent.reply = () => ({ delayMs: 300 });

    expect((await replayWhatsApp(raw, signature, "173.252.0.1")).status).toBe(200);
    const replays = await Promise.all(Array.from({ length: 6 }, (_, i) => replayWhatsApp(raw, signature, `203.0.113.${i}`)));
    expect(replays.map((r) => r.status)).toEqual(Array(6).fill(200));
    await backgroundIdle();

    await db().turn.updateMany({ where: { externalId: id }, data: { createdAt: new Date(Date.now() - 5 * 86_400_000) } });
    expect((await replayWhatsApp(raw, signature, "203.0.113.50")).status).toBe(200);
    await backgroundIdle();

    expect(await turnsOf(id)).toMatchObject([{ state: "delivered" }]);
    expect(agent.runs()).toHaveLength(1);
    expect(graph.sent.map((m) => m.body)).toEqual(["Echo: transfer 100 EUR to Bob"]);
    expect(await db().message.count({ where: { content: "transfer 100 EUR to Bob" } })).toBe(1);
  });

  it("replayed at the same moment as the original, from many clients: still one turn", async () => {
    const id = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQ09OQ1VSUkVOVA==";
    const raw = whatsappDelivery([{ messages: [textMessage(owner, id, "race me")] }]);
    const signature = metaSignature(raw, appSecret);
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => replayWhatsApp(raw, signature, `198.51.100.${i}`)));
    expect(answers.map((r) => r.status)).toEqual(Array(8).fill(200));
    await backgroundIdle();
    expect(await turnsOf(id)).toHaveLength(1);
    expect(graph.sent.map((m) => m.body)).toEqual(["Echo: race me"]);
  });
});

describe("a replayed Nextcloud Talk delivery (same random, same signature)", () => {
  it("is acknowledged but answered once, during the first turn and after", async () => {
    const raw = talkMessage({ id: "424242", token: room, message: "delete my files" });
    const signature = talkSignature(random, raw, botSecret);
    agent.reply = () => ({ delayMs: 300 });

    expect((await replayTalk(raw, signature, "192.0.2.1")).status).toBe(200);
    const replays = await Promise.all(Array.from({ length: 6 }, (_, i) => replayTalk(raw, signature, `203.0.113.${100 + i}`)));
    expect(replays.map((r) => r.status)).toEqual(Array(6).fill(200));
    await backgroundIdle();
    expect((await replayTalk(raw, signature, "203.0.113.200")).status).toBe(200);
    await backgroundIdle();

    expect(await turnsOf("424242")).toHaveLength(1);
    expect(agent.runs()).toHaveLength(1);
    expect(talk.posted).toMatchObject([{ token: room, message: "Echo: delete my files", replyTo: 424242 }]);
  });
});
