import { createHmac } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as chat from "../app/api/chat/route";
import * as cronJobs from "../app/api/cron-jobs/route";
import * as cron from "../app/api/cron/route";
import * as settings from "../app/api/settings/route";
import * as nextcloudRoute from "../app/api/webhook/nextcloud/route";
import * as whatsappRoute from "../app/api/webhook/whatsapp/route";
import { backgroundIdle } from "../lib/background";
import { chatSchema } from "../lib/channels/webchat/chat";
import { cronJobCreateSchema } from "../lib/cron-job-schema";
import { db } from "../lib/db/client";
import { settingsUpdateSchema } from "../lib/settings";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";
import { metaSignature } from "./support/wire";

// Bad input against the real route handlers: every answer is a 4xx with a JSON
// {error, code} (or, for a signed webhook of unknown shape, the 200 that stops
// Meta's and Talk's retries), never a 5xx, and no row is written.

const TOKEN = "f".repeat(48);
const CRON_SECRET = "c".repeat(40);
const APP_SECRET = "a".repeat(32);
const BOT_SECRET = "b".repeat(48);
const RANDOM = "r".repeat(40);
const base = "http://127.0.0.1:3000";
const MB = 1024 * 1024;
let agent: FakeAgent;

beforeAll(async () => {
  agent = await startFakeAgent();
  Object.assign(process.env, {
    WEBCHAT_TOKEN: TOKEN,
    CRON_SECRET,
    AGENT_URL: agent.url,
    WHATSAPP_APP_SECRET: APP_SECRET,
    WHATSAPP_ACCESS_TOKEN: "EAAG-test",
    WHATSAPP_PHONE_NUMBER_ID: "106540352242922",
    WHATSAPP_API_URL: "http://127.0.0.1:9",
    WHATSAPP_ALLOWED_NUMBERS: "16505551234",
    NEXTCLOUD_BASE_URL: "http://127.0.0.1:9",
    NEXTCLOUD_BOT_SECRET: BOT_SECRET,
  });
});
afterAll(async () => {
  await backgroundIdle();
  await agent.close();
});

const rowCounts = async () => {
  const d = db();
  return Promise.all([d.conversation.count(), d.message.count(), d.turn.count(), d.cronJob.count(), d.settings.count()]);
};
const settingsRows = () => db().settings.findMany();

type Handler = (request: Request) => Promise<Response>;
type Body = string | Uint8Array;

function request(path: string, method: string, body: Body | undefined, headers: [string, string][]): Request {
  const init: RequestInit = { method, headers: new Headers(headers) };
  if (body !== undefined) init.body = typeof body === "string" ? body : Buffer.from(body);
  return new Request(base + path, init);
}

async function expectRefusedOrIgnored(response: Response, allowOk = false) {
  const status = response.status;
  if (allowOk && status === 200) return;
  expect(status, await response.clone().text()).toBeGreaterThanOrEqual(400);
  expect(status).toBeLessThan(500);
  const body = (await response.json()) as unknown;
  expect(body).toMatchObject({ error: expect.any(String), code: expect.any(String) });
}

const INVALID_UTF8 = Uint8Array.from([0x7b, 0x22, 0x6d, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]);
const MALFORMED = ["", "{", "nul", "[1,", '{"message": "hi"', "{'message': 'hi'}", '{"a":1}}', "\u0000"];
// JSON after all (the BOM is dropped, 1e99999 is Infinity), but of no route's shape.
const ODD_JSON = ["\uFEFF[]", "1e99999", '"\\ud800"'];
const oversize = (bytes: number) => `{"message":"${"a".repeat(bytes)}"}`;
const notMatching = (schema: { safeParse(value: unknown): { success: boolean } }) =>
  fc.jsonValue({ maxDepth: 30 }).filter((value) => !schema.safeParse(value).success);

const owner: [string, string][] = [
  ["content-type", "application/json"],
  ["authorization", `Bearer ${TOKEN}`],
];
const jsonRoutes: { name: string; path: string; method: string; handler: Handler; schema: Parameters<typeof notMatching>[0] }[] = [
  { name: "POST /api/chat", path: "/api/chat", method: "POST", handler: chat.POST, schema: chatSchema },
  { name: "PUT /api/settings", path: "/api/settings", method: "PUT", handler: settings.PUT, schema: settingsUpdateSchema },
  { name: "POST /api/cron-jobs", path: "/api/cron-jobs", method: "POST", handler: cronJobs.POST, schema: cronJobCreateSchema },
];

describe.each(jsonRoutes)("$name refuses bad input", ({ path, method, handler, schema }) => {
  it("malformed JSON, invalid UTF-8 and an over-limit body: 4xx, nothing stored", async () => {
    const before = [await rowCounts(), await settingsRows()];
    for (const body of [...MALFORMED, ...ODD_JSON, INVALID_UTF8, oversize(MB)]) {
      await expectRefusedOrIgnored(await handler(request(path, method, body, owner)));
    }
    expect([await rowCounts(), await settingsRows()]).toEqual(before);
  });

  it("any JSON value the schema refuses: 4xx, nothing stored", async () => {
    const before = [await rowCounts(), await settingsRows()];
    await fc.assert(
      fc.asyncProperty(notMatching(schema), async (value) => {
        await expectRefusedOrIgnored(await handler(request(path, method, JSON.stringify(value), owner)));
      }),
      { numRuns: 60 },
    );
    expect([await rowCounts(), await settingsRows()]).toEqual(before);
  });

  it("missing, wrong or repeated credentials: 401 before the body is read", async () => {
    const before = await rowCounts();
    const headerSets: [string, string][][] = [
      [["content-type", "application/json"]],
      [["authorization", "Bearer wrong"]],
      [["authorization", `Bearer ${TOKEN}`], ["authorization", `Bearer ${TOKEN}`]],
      [["authorization", `Basic ${TOKEN}`]],
      [["cookie", "my_claw_session=forged; my_claw_session=forged"]],
    ];
    for (const headers of headerSets) {
      const response = await handler(request(path, method, '{"message":"hi","name":"x","schedule":"@daily","prompt":"p"}', headers));
      expect(response.status).toBe(401);
      await expectRefusedOrIgnored(response);
    }
    expect(await rowCounts()).toEqual(before);
  });
});

describe("/api/cron refuses bad credentials", () => {
  it("missing, wrong or repeated X-Cron-Secret: 401 with a reason", async () => {
    const before = await rowCounts();
    for (const headers of [[], [["x-cron-secret", "nope"]], [["x-cron-secret", CRON_SECRET], ["x-cron-secret", CRON_SECRET]], [["authorization", `Bearer ${TOKEN}`]]] as [string, string][][]) {
      for (const handler of [cron.GET, cron.POST]) {
        const response = await handler(request("/api/cron", handler === cron.GET ? "GET" : "POST", handler === cron.GET ? undefined : INVALID_UTF8, headers));
        expect(response.status).toBe(401);
        await expectRefusedOrIgnored(response);
      }
    }
    expect(await rowCounts()).toEqual(before);
  });
});

const talkSignature = (random: string, raw: Body) =>
  createHmac("sha256", BOT_SECRET).update(random, "latin1").update(typeof raw === "string" ? Buffer.from(raw, "utf8") : raw).digest("hex");

const webhooks = [
  {
    name: "WhatsApp",
    path: "/api/webhook/whatsapp",
    handler: whatsappRoute.POST,
    limit: 3 * MB,
    signed: (raw: Body): [string, string][] => [["x-hub-signature-256", metaSignature(raw, APP_SECRET)]],
    unsigned: [[], [["x-hub-signature-256", "sha256=" + "0".repeat(64)]], [["x-hub-signature-256", "garbage"]]] as [string, string][][],
    repeated: (raw: Body): [string, string][] => [["x-hub-signature-256", metaSignature(raw, APP_SECRET)], ["x-hub-signature-256", metaSignature(raw, APP_SECRET)]],
  },
  {
    name: "Nextcloud Talk",
    path: "/api/webhook/nextcloud",
    handler: nextcloudRoute.POST,
    limit: MB,
    signed: (raw: Body): [string, string][] => [["x-nextcloud-talk-random", RANDOM], ["x-nextcloud-talk-signature", talkSignature(RANDOM, raw)]],
    unsigned: [[], [["x-nextcloud-talk-random", RANDOM]], [["x-nextcloud-talk-random", "short"], ["x-nextcloud-talk-signature", "0".repeat(64)]]] as [string, string][][],
    repeated: (raw: Body): [string, string][] => [
      ["x-nextcloud-talk-random", RANDOM],
      ["x-nextcloud-talk-random", RANDOM],
      ["x-nextcloud-talk-signature", talkSignature(RANDOM, raw)],
    ],
  },
];

// Each request from its own client: failed signatures are throttled per client (tests/webhooks-limits.test.ts),
// and this suite is about the answer to each kind of bad input, not about the 429 that follows many.
let client = 0;
const nextClient = (): [string, string] => ["x-forwarded-for", `10.${(++client >> 16) & 255}.${(client >> 8) & 255}.${client & 255}`];

describe.each(webhooks)("$name webhook refuses bad input", ({ path, handler, limit, signed, unsigned, repeated }) => {
  const post = (body: Body, headers: [string, string][]) =>
    handler(request(path, "POST", body, [["content-type", "application/json"], nextClient(), ...headers]));

  it("signed but malformed JSON or invalid UTF-8: 400; unsigned, mis-signed or repeated headers: 401", async () => {
    const before = await rowCounts();
    for (const body of [...MALFORMED, INVALID_UTF8]) {
      const response = await post(body, signed(body));
      expect(response.status).toBe(400);
      await expectRefusedOrIgnored(response);
      for (const headers of [...unsigned, repeated(body)]) {
        const refused = await post(body, headers);
        expect(refused.status).toBe(401);
        await expectRefusedOrIgnored(refused);
      }
    }
    expect(await rowCounts()).toEqual(before);
  });

  it("a body over the limit: 413, even when signed", async () => {
    const before = await rowCounts();
    const body = oversize(limit);
    await expectRefusedOrIgnored(await post(body, signed(body)));
    expect((await post(body, signed(body))).status).toBe(413);
    expect(await rowCounts()).toEqual(before);
  });

  it("any signed JSON of the wrong shape: acknowledged or refused, never stored", async () => {
    const before = await rowCounts();
    for (const body of ODD_JSON) await expectRefusedOrIgnored(await post(body, signed(body)), true);
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 40 }), async (value) => {
        const body = JSON.stringify(value);
        await expectRefusedOrIgnored(await post(body, signed(body)), true);
      }),
      { numRuns: 60 },
    );
    await backgroundIdle();
    expect(await rowCounts()).toEqual(before);
  });
});
