import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { captureOutput } from "./support/capture-output";
import * as login from "../app/api/auth/login/route";
import * as logout from "../app/api/auth/logout/route";
import * as chat from "../app/api/chat/route";
import * as cronJob from "../app/api/cron-jobs/[id]/route";
import * as cronJobRun from "../app/api/cron-jobs/[id]/run/route";
import * as cronJobs from "../app/api/cron-jobs/route";
import * as cron from "../app/api/cron/route";
import * as conversation from "../app/api/conversations/[id]/route";
import * as messages from "../app/api/conversations/[id]/messages/route";
import * as conversations from "../app/api/conversations/route";
import * as health from "../app/api/health/route";
import * as models from "../app/api/models/route";
import * as settings from "../app/api/settings/route";
import * as nextcloudRoute from "../app/api/webhook/nextcloud/route";
import * as whatsappRoute from "../app/api/webhook/whatsapp/route";
import { backgroundIdle } from "../lib/background";
import { startChannelFakes, type ChannelFakes } from "./support/channel-fakes";
import { metaSignature, talkMessage, talkSignature, textMessage, whatsappDelivery } from "./support/wire";

// Secrets never reach the logs. Every secret is a distinct marker; every route is
// driven with good and bad input (right and wrong credentials, secrets where they
// do not belong, in URLs, signed and mis-signed webhooks, failures upstream),
// with every log level on. No marker may appear in anything the gateway wrote,
// nor in any answer it gave.

process.env.LOG_LEVEL = "debug";
const secretNames = [
  "WEBCHAT_TOKEN",
  "CRON_SECRET",
  "AGENT_API_KEY",
  "WHATSAPP_APP_SECRET",
  "WHATSAPP_ACCESS_TOKEN",
  "WHATSAPP_VERIFY_TOKEN",
  "NEXTCLOUD_BOT_SECRET",
] as const;
type SecretName = (typeof secretNames)[number];
const secret = Object.fromEntries(secretNames.map((name) => [name, `${name}-${randomUUID()}`])) as Record<SecretName, string>;

const base = "http://127.0.0.1:3000";
const ownOrigin = "http://127.0.0.1:3000";
const phoneNumberId = "106540352242922";
const owner = "16505551234";
const room = "secretsroom";
const random = "S".repeat(64);

let fakes: ChannelFakes;
let logs: { text: () => string };
const answers: string[] = [];

beforeAll(async () => {
  fakes = await startChannelFakes({
    agentApiKey: secret.AGENT_API_KEY,
    appSecret: secret.WHATSAPP_APP_SECRET,
    accessToken: secret.WHATSAPP_ACCESS_TOKEN,
    phoneNumberId,
    allowedNumbers: owner,
    botSecret: secret.NEXTCLOUD_BOT_SECRET,
    rooms: [room],
  });
  // Every secret, also those no fake needs (WEBCHAT_TOKEN, CRON_SECRET, WHATSAPP_VERIFY_TOKEN).
  Object.assign(process.env, secret, fakes.env);
  logs = captureOutput();
});
afterAll(async () => {
  vi.restoreAllMocks();
  await fakes.close();
});

/** Calls a handler, keeps the whole answer (status, headers, body) for the final check, returns the status and body. */
async function send(response: Promise<Response>): Promise<{ status: number; body: string; headers: Headers }> {
  const answer = await response;
  const body = await answer.text();
  answers.push(JSON.stringify([...answer.headers]), body);
  return { status: answer.status, body, headers: answer.headers };
}

const req = (path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
  new Request(base + path, { method: init.method ?? "GET", headers: init.headers ?? {}, ...(init.body === undefined ? {} : { body: init.body }) });
const params = (id: string) => ({ params: Promise.resolve({ id }) });
const json = (value: unknown) => JSON.stringify(value);

it("no secret appears in the logs or the answers, whatever the routes are sent", async () => {
  // Login: wrong (with another secret as the token), cross-site, right; a session from it.
  expect((await send(login.POST(req("/api/auth/login", { method: "POST", body: json({ token: secret.CRON_SECRET }) })))).status).toBe(401);
  expect((await send(login.POST(req("/api/auth/login", { method: "POST", headers: { origin: "https://evil.example" }, body: json({ token: secret.WEBCHAT_TOKEN }) })))).status).toBe(403);
  const loggedIn = await send(login.POST(req("/api/auth/login", { method: "POST", headers: { origin: ownOrigin }, body: json({ token: secret.WEBCHAT_TOKEN }) })));
  expect(loggedIn.status).toBe(200);
  const cookie = (loggedIn.headers.get("set-cookie") ?? "").split(";")[0]!;
  const browser = { cookie, origin: ownOrigin, "sec-fetch-site": "same-origin" };
  const bearer = { authorization: `Bearer ${secret.WEBCHAT_TOKEN}` };

  // Credentials in the wrong place.
  expect((await send(conversations.GET(req("/api/conversations", { headers: { authorization: `Bearer ${secret.WHATSAPP_ACCESS_TOKEN}` } })))).status).toBe(401);
  expect((await send(conversations.GET(req(`/api/conversations?token=${secret.WEBCHAT_TOKEN}`)))).status).toBe(401);
  expect((await send(conversations.GET(req(`/api/conversations?access_token=${secret.WEBCHAT_TOKEN}`, { headers: bearer })))).status).toBe(401);
  expect((await send(settings.PUT(req("/api/settings", { method: "PUT", headers: { cookie, origin: "null" }, body: json({ persona_name: "x" }) })))).status).toBe(403);

  // The webchat: a turn with the cookie, one with the bearer, one the agent fails.
  const first = await send(chat.POST(req("/api/chat", { method: "POST", headers: browser, body: json({ message: "hello" }) })));
  expect(first.body).toContain("event: final");
  const conversationId = (JSON.parse(/data: (.*)/.exec(first.body)![1]!) as { conversationId: string }).conversationId;
  expect((await send(chat.POST(req("/api/chat", { method: "POST", headers: bearer, body: json({ message: "again", conversationId }) })))).body).toContain("event: final");
  fakes.agent.reply = () => ({ status: 500, error: { error: "internal failure", code: "internal" } });
  expect((await send(chat.POST(req("/api/chat", { method: "POST", headers: bearer, body: json({ message: "fail" }) })))).body).toContain("event: error");
  fakes.agent.reply = () => ({});
  expect((await send(chat.POST(req("/api/chat", { method: "POST", headers: bearer, body: "{" })))).status).toBe(400);

  // Reading and changing things.
  expect((await send(conversations.GET(req("/api/conversations", { headers: browser })))).status).toBe(200);
  expect((await send(messages.GET(req(`/api/conversations/${conversationId}/messages`, { headers: bearer }), params(conversationId)))).status).toBe(200);
  expect((await send(settings.GET(req("/api/settings", { headers: browser })))).status).toBe(200);
  expect((await send(settings.PUT(req("/api/settings", { method: "PUT", headers: browser, body: json({ persona_name: "Claw", system_prompt: "Be brief." }) })))).status).toBe(200);
  expect((await send(settings.PUT(req("/api/settings", { method: "PUT", headers: browser, body: json({ persona_lang: 42 }) })))).status).toBe(400);
  expect((await send(models.GET(req("/api/models", { headers: bearer })))).status).toBe(200);
  await send(health.GET(req("/api/health")));

  // Scheduled messages: management, run now, /api/cron right, wrong, in the URL, then throttled.
  const created = await send(cronJobs.POST(req("/api/cron-jobs", { method: "POST", headers: browser, body: json({ name: "daily", schedule: "* * * * *", prompt: "news", channel: "webchat" }) })));
  expect(created.status).toBe(201);
  const jobId = (JSON.parse(created.body) as { id: string }).id;
  expect((await send(cronJobs.GET(req("/api/cron-jobs", { headers: bearer })))).status).toBe(200);
  expect((await send(cronJob.PATCH(req(`/api/cron-jobs/${jobId}`, { method: "PATCH", headers: browser, body: json({ schedule: "not a schedule" }) }), params(jobId)))).status).toBe(400);
  expect((await send(cronJobRun.POST(req(`/api/cron-jobs/${jobId}/run`, { method: "POST", headers: bearer }), params(jobId)))).status).toBe(200);
  expect((await send(cron.POST(req("/api/cron", { method: "POST", headers: { "x-cron-secret": secret.CRON_SECRET } })))).status).toBe(200);
  expect((await send(cron.GET(req("/api/cron", { headers: { "x-cron-secret": secret.WEBCHAT_TOKEN } })))).status).toBe(401);
  expect((await send(cron.GET(req(`/api/cron?secret=${secret.CRON_SECRET}`)))).status).toBe(401);
  let cronStatus = 401;
  for (let i = 0; i < 20 && cronStatus !== 429; i++) cronStatus = (await send(cron.POST(req("/api/cron", { method: "POST", headers: { "x-cron-secret": secret.NEXTCLOUD_BOT_SECRET } })))).status;
  expect(cronStatus).toBe(429);
  expect((await send(cronJob.DELETE(req(`/api/cron-jobs/${jobId}`, { method: "DELETE", headers: browser }), params(jobId)))).status).toBe(204);

  // WhatsApp: the handshake right and wrong, a signed delivery (one answer refused by Graph as a bad
  // token), mis-signed ones (keyed with other secrets), a signature in the URL, then throttled.
  const handshake = (token: string) => send(whatsappRoute.GET(req(`/api/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=${token}&hub.challenge=12345`)));
  expect((await handshake(secret.WHATSAPP_VERIFY_TOKEN)).body).toBe("12345");
  expect((await handshake(secret.WHATSAPP_APP_SECRET)).status).toBe(403);
  fakes.graph.failNext(null, { status: 401, code: 190, message: "Invalid OAuth access token" });
  const raw = whatsappDelivery([{ messages: [textMessage(owner, "wamid.SECRETS1", "one"), textMessage(owner, "wamid.SECRETS2", "two")] }]);
  const postWhatsApp = (signature: string, path = "/api/webhook/whatsapp") =>
    send(whatsappRoute.POST(req(path, { method: "POST", headers: { "x-hub-signature-256": signature, "x-forwarded-for": "173.252.0.9" }, body: raw })));
  expect((await postWhatsApp(metaSignature(raw, secret.WHATSAPP_APP_SECRET))).status).toBe(200);
  expect((await postWhatsApp(metaSignature(raw, secret.WHATSAPP_APP_SECRET))).status).toBe(200);
  for (const other of secretNames) {
    if (other !== "WHATSAPP_APP_SECRET") expect([401, 429]).toContain((await postWhatsApp(metaSignature(raw, secret[other]))).status);
  }
  expect((await postWhatsApp(secret.WHATSAPP_APP_SECRET)).status).toBe(401);
  let whatsappStatus = 401;
  for (let i = 0; i < 20 && whatsappStatus !== 429; i++) whatsappStatus = (await postWhatsApp("sha256=" + "0".repeat(64), `/api/webhook/whatsapp?signature=${secret.WHATSAPP_APP_SECRET}`)).status;
  expect(whatsappStatus).toBe(429);

  // Nextcloud Talk: signed, mis-signed with other secrets, the secret itself as the signature, then throttled.
  const talkRaw = talkMessage({ id: "31337", token: room, message: "hi" });
  const postTalk = (signature: string) =>
    send(
      nextcloudRoute.POST(
        req("/api/webhook/nextcloud", {
          method: "POST",
          headers: { "x-nextcloud-talk-random": random, "x-nextcloud-talk-signature": signature, "x-forwarded-for": "192.0.2.80" },
          body: talkRaw,
        }),
      ),
    );
  expect((await postTalk(talkSignature(random, talkRaw, secret.NEXTCLOUD_BOT_SECRET))).status).toBe(200);
  let talkStatus = 401;
  for (const other of [...secretNames, ...secretNames]) {
    if (other !== "NEXTCLOUD_BOT_SECRET") talkStatus = (await postTalk(talkSignature(random, talkRaw, secret[other]))).status;
  }
  expect(talkStatus).toBe(429);

  expect((await send(conversation.DELETE(req(`/api/conversations/${conversationId}`, { method: "DELETE", headers: browser }), params(conversationId)))).status).toBe(204);
  expect((await send(logout.POST(req("/api/auth/logout", { method: "POST", headers: browser })))).status).toBe(200);
  await backgroundIdle();

  // The paths above were really taken...
  expect(fakes.graph.sent.map((m) => m.body)).toEqual(["Echo: one"]);
  expect(fakes.talk.posted.map((m) => m.message)).toEqual(["Echo: hi"]);
  for (const event of [
    "auth.failed",
    "auth.login",
    "auth.cross_site_refused",
    "cron.unauthorized",
    "cron.started",
    "rate_limit.client_throttled",
    "whatsapp.subscription_refused",
    "whatsapp.received",
    "turn.send_failed",
    "nextcloud.received",
    "request.failed",
  ]) {
    expect(logs.text()).toContain(`"event":"${event}"`);
  }
  // ...and no secret, nor its random part, was written or answered.
  const everything = logs.text() + answers.join("\n");
  for (const name of secretNames) {
    const value = secret[name];
    expect(everything, name).not.toContain(value);
    expect(everything, name).not.toContain(value.slice(name.length + 1));
  }
});
