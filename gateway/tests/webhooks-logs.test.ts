import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { captureOutput } from "./support/capture-output";
import * as nextcloudRoute from "../app/api/webhook/nextcloud/route";
import * as whatsappRoute from "../app/api/webhook/whatsapp/route";
import { backgroundIdle } from "../lib/background";
import { startChannelFakes, type ChannelFakes } from "./support/channel-fakes";
import { metaSignature, talkMessage, talkSignature, textMessage, whatsappDelivery } from "./support/wire";

// Logs carry metadata only. A unique marker goes through both webhooks (text,
// caption, mention name, answer, failures, a refused sender) with every log
// level on, and must never appear in what the gateway wrote.

process.env.LOG_LEVEL = "debug";
const marker = `MARKER-${randomUUID()}`;
const appSecret = "6f1d3c0b9a8e7f6a5b4c3d2e1f0a9b8c";
const botSecret = "b".repeat(64);
let fakes: ChannelFakes;
let logs: { text: () => string };

beforeAll(async () => {
  fakes = await startChannelFakes({ appSecret, accessToken: "token-x", phoneNumberId: "1065", allowedNumbers: "16505551234", botSecret, rooms: ["room1"] });
  Object.assign(process.env, fakes.env);
  // Captured, not shown: the test's output stays readable.
  logs = captureOutput();
});
afterAll(async () => {
  vi.restoreAllMocks();
  await fakes.close();
});

const postWhatsApp = (raw: string) =>
  whatsappRoute.POST(
    new Request("http://127.0.0.1/api/webhook/whatsapp", { method: "POST", headers: { "x-hub-signature-256": metaSignature(raw, appSecret) }, body: raw }),
  );
const postTalk = (raw: string) => {
  const random = "R".repeat(64);
  return nextcloudRoute.POST(
    new Request("http://127.0.0.1/api/webhook/nextcloud", {
      method: "POST",
      headers: { "x-nextcloud-talk-random": random, "x-nextcloud-talk-signature": talkSignature(random, raw, botSecret) },
      body: raw,
    }),
  );
};

it("never writes message text to the logs", async () => {
  // Delivered, failing at the agent, failing at Graph, refused sender, unknown type, duplicate.
  fakes.agent.reply = (body) => (body.message.includes("agent-fails") ? { status: 500, error: { error: `boom ${marker}`, code: "internal" } } : {});
  fakes.graph.failNext(null, { code: 100, message: `(#100) Invalid parameter ${marker}` });
  const messages = [
    textMessage("16505551234", "wamid.log1", `hello ${marker}`),
    textMessage("16505551234", "wamid.log2", `graph-fails ${marker}`),
    textMessage("16505551234", "wamid.log3", `agent-fails ${marker}`),
    textMessage("5511987654321", "wamid.log4", `stranger ${marker}`),
    { from: "16505551234", id: "wamid.log5", timestamp: "1", type: "image", image: { id: "missing-media", caption: `caption ${marker}` } },
    { from: "16505551234", id: "wamid.log6", timestamp: "1", type: "contacts", contacts: [{ name: { formatted_name: marker } }] },
  ];
  const raw = whatsappDelivery([{ messages }]);
  expect((await postWhatsApp(raw)).status).toBe(200);
  expect((await postWhatsApp(raw)).status).toBe(200);
  const bad = raw.replace("hello", "HELLO");
  expect((await whatsappRoute.POST(new Request("http://127.0.0.1/x", { method: "POST", headers: { "x-hub-signature-256": metaSignature(raw, appSecret) }, body: bad }))).status).toBe(401);
  const talkRaw = talkMessage({
    id: "77",
    token: "room1",
    message: `{mention-user1} ${marker}`,
    parameters: { "mention-user1": { type: "user", id: "bob", name: marker } },
  });
  expect((await postTalk(talkRaw)).status).toBe(200);
  await backgroundIdle();

  expect(fakes.graph.sent.some((m) => m.body.includes(marker))).toBe(true);
  expect(fakes.talk.posted.some((m) => m.message.includes(marker))).toBe(true);
  expect(logs.text()).toContain('"event":"whatsapp.received"');
  expect(logs.text()).toContain('"event":"turn.send_failed"');
  expect(logs.text()).toContain('"event":"turn.failed"');
  expect(logs.text()).toContain('"event":"whatsapp.sender_not_allowed"');
  expect(logs.text()).toContain('"event":"nextcloud.received"');
  expect(logs.text()).not.toContain(marker);
});
