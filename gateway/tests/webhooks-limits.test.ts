import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import * as cron from "../app/api/cron/route";
import * as nextcloudRoute from "../app/api/webhook/nextcloud/route";
import * as whatsappRoute from "../app/api/webhook/whatsapp/route";
import { backgroundIdle } from "../lib/background";
import { db } from "../lib/db/client";
import { FAILED_CREDENTIALS } from "../lib/rate-limit";
import { startChannelFakes, type ChannelFakes } from "./support/channel-fakes";
import { metaSignature, talkMessage, talkSignature, textMessage, whatsappDelivery } from "./support/wire";

// The rate limits through the real routes: failed signatures and cron secrets
// per client (429 before the body is read), and the per-channel cap on accepted
// deliveries (WEBHOOK_RATE_LIMIT_PER_S, 5 here). Time moves through Date.now only.

const appSecret = "0123456789abcdef0123456789abcdef";
const botSecret = "k".repeat(48);
const cronSecret = "s".repeat(40);
const accessToken = "EAAG-limits";
const phoneNumberId = "106540352242922";
const owner = "16505551234";
const room = "limitsroom";
const random = "Z".repeat(64);
const CAP = 5;

let fakes: ChannelFakes;
let counter = 0;
const wamid = () => `wamid.LIMITS${++counter}`;

// The limiter reads Date.now(); the clock here is the real one, shifted forward or frozen on demand.
const realNow = Date.now.bind(Date);
let offset = 0;
let frozenAt: number | null = null;
const advance = (ms: number) => void (offset += ms);

beforeAll(async () => {
  fakes = await startChannelFakes({ appSecret, accessToken, phoneNumberId, allowedNumbers: owner, botSecret, rooms: [room] });
  Object.assign(process.env, fakes.env, { CRON_SECRET: cronSecret, WEBHOOK_RATE_LIMIT_PER_S: String(CAP) });
  vi.spyOn(Date, "now").mockImplementation(() => frozenAt ?? realNow() + offset);
});
afterAll(async () => {
  vi.restoreAllMocks();
  await backgroundIdle();
  await fakes.close();
});
beforeEach(() => {
  frozenAt = null;
  // A full cap for every test.
  advance(60_000);
});

const turnCount = () => db().turn.count();

/** A body that counts how much of it was read. */
function countedBody(text: string) {
  const counted = { pulls: 0 };
  const bytes = new TextEncoder().encode(text);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      counted.pulls += 1;
      controller.enqueue(bytes);
      controller.close();
    },
  }, { highWaterMark: 0 });
  return { stream, counted };
}

interface Post {
  body?: string;
  signed?: boolean;
  client?: string;
  stream?: ReadableStream<Uint8Array>;
}

const channels = [
  {
    name: "whatsapp",
    fresh: () => whatsappDelivery([{ messages: [textMessage(owner, wamid(), "limits")] }]),
    post: ({ body = "", signed = true, client, stream }: Post) => {
      const headers: Record<string, string> = { "content-type": "application/json" };
      headers["x-hub-signature-256"] = signed ? metaSignature(body, appSecret) : metaSignature(body, "another-secret");
      if (client) headers["x-forwarded-for"] = client;
      const init = { method: "POST", headers, body: stream ?? body, duplex: "half" } as RequestInit;
      return whatsappRoute.POST(new Request("http://127.0.0.1:3000/api/webhook/whatsapp", init));
    },
    answered: () => fakes.graph.sent.length,
  },
  {
    name: "nextcloud",
    fresh: () => talkMessage({ id: String(5000 + ++counter), token: room, message: "limits" }),
    post: ({ body = "", signed = true, client, stream }: Post) => {
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "x-nextcloud-talk-random": random,
        "x-nextcloud-talk-signature": signed ? talkSignature(random, body, botSecret) : "0".repeat(64),
      };
      if (client) headers["x-forwarded-for"] = client;
      const init = { method: "POST", headers, body: stream ?? body, duplex: "half" } as RequestInit;
      return nextcloudRoute.POST(new Request("http://127.0.0.1:3000/api/webhook/nextcloud", init));
    },
    answered: () => fakes.talk.posted.length,
  },
];

async function expect429(response: Response, code: string) {
  expect(response.status).toBe(429);
  const retryAfter = Number(response.headers.get("retry-after"));
  expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
  expect(await response.json()).toMatchObject({ code, error: expect.stringContaining(`Retry in ${retryAfter} s`) });
  return retryAfter;
}

describe.each(channels)("$name: failed signatures", ({ name, fresh, post, answered }) => {
  it("a client that keeps failing gets 429 before its body is read; others are not affected; later it may try again", async () => {
    const attacker = `198.51.100.${name.length}`;
    for (let i = 0; i < FAILED_CREDENTIALS.capacity; i++) {
      const response = await post({ body: fresh(), signed: false, client: attacker });
      expect(response.status).toBe(401);
    }
    const before = await turnCount();
    // Even a correctly signed delivery: the key is all the gateway knows before reading.
    const signedDelivery = fresh();
    const { stream, counted } = countedBody(signedDelivery);
    const retryAfter = await expect429(await post({ body: signedDelivery, stream, client: attacker }), "too_many_requests:channel");
    expect(counted.pulls).toBe(0);
    // A forged first hop does not make a new client: the proxy's hop is the last one.
    expect((await post({ body: fresh(), signed: false, client: `203.0.113.${counter}, ${attacker}` })).status).toBe(429);
    expect(await turnCount()).toBe(before);

    // Someone else, e.g. Meta or the Talk server, still gets through.
    const sentBefore = answered();
    expect((await post({ body: fresh(), client: "192.0.2.44" })).status).toBe(200);
    await backgroundIdle();
    expect(answered()).toBe(sentBefore + 1);

    // Once the announced time has passed, the same client has one more try.
    advance(retryAfter * 1000);
    const delivery = fresh();
    expect((await post({ body: delivery, client: attacker })).status).toBe(200);
    expect(await turnCount()).toBe(before + 2);
    expect((await post({ body: fresh(), signed: false, client: attacker })).status).toBe(401);
    expect((await post({ body: fresh(), signed: false, client: attacker })).status).toBe(429);
    await backgroundIdle();
  });

  it("bodies over the limit count as failures too (their signature cannot be checked)", async () => {
    const client = `198.51.100.${100 + name.length}`;
    const big = "x".repeat(3 * 1024 * 1024 + 1);
    for (let i = 0; i < FAILED_CREDENTIALS.capacity; i++) expect((await post({ body: big, client })).status).toBe(413);
    await expect429(await post({ body: fresh(), client }), "too_many_requests:channel");
  });
});

describe("failed signatures are counted per surface", () => {
  it("a client throttled on WhatsApp may still deliver to Talk", async () => {
    const [whatsapp, nextcloud] = channels as [(typeof channels)[0], (typeof channels)[1]];
    const client = "198.51.100.200";
    for (let i = 0; i <= FAILED_CREDENTIALS.capacity; i++) await whatsapp.post({ body: whatsapp.fresh(), signed: false, client });
    expect((await whatsapp.post({ body: whatsapp.fresh(), client })).status).toBe(429);
    expect((await nextcloud.post({ body: nextcloud.fresh(), client })).status).toBe(200);
    await backgroundIdle();
  });
});

describe.each(channels)("$name: the per-channel cap on accepted deliveries", ({ name, fresh, post }) => {
  it(`accepts ${CAP} per second, then 429 with Retry-After and nothing stored, before or after reading`, async () => {
    frozenAt = realNow() + offset;
    const before = await turnCount();
    // Concurrent: all pass the check before reading; the cap is taken after the signature, so exactly CAP are stored.
    const answers = await Promise.all(Array.from({ length: CAP + 3 }, (_, i) => post({ body: fresh(), client: `192.0.2.${i}` })));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(CAP);
    for (const refused of answers.filter((r) => r.status !== 200)) await expect429(refused, "too_many_requests:channel");
    expect(await turnCount()).toBe(before + CAP);

    // Over the cap, the next one is refused before its body is read.
    const next = fresh();
    const { stream, counted } = countedBody(next);
    expect(await expect429(await post({ body: next, stream, client: "192.0.2.99" }), "too_many_requests:channel")).toBe(1);
    expect(counted.pulls).toBe(0);
    expect(await turnCount()).toBe(before + CAP);

    // 1 / CAP seconds later, one more.
    frozenAt += 1000 / CAP;
    expect((await post({ body: fresh() })).status).toBe(200);
    expect((await post({ body: fresh() })).status).toBe(429);

    // The other channel has its own cap.
    const other = channels.find((channel) => channel.name !== name)!;
    expect((await other.post({ body: other.fresh() })).status).toBe(200);
    await backgroundIdle();
  });
});

describe("/api/cron: wrong secrets", () => {
  const call = (secret: string | null, client?: string, path = "/api/cron") => {
    const headers: Record<string, string> = {};
    if (secret !== null) headers["x-cron-secret"] = secret;
    if (client) headers["x-forwarded-for"] = client;
    return cron.POST(new Request(`http://127.0.0.1:3000${path}`, { method: "POST", headers }));
  };

  it("are throttled per client like failed signatures; the right secret from elsewhere still works", async () => {
    const client = "198.51.100.77";
    for (let i = 0; i < FAILED_CREDENTIALS.capacity; i++) {
      const response = await (i % 3 === 0 ? call(null, client) : i % 3 === 1 ? call("wrong", client) : call(null, client, `/api/cron?secret=${cronSecret}`));
      expect(response.status).toBe(401);
    }
    const retryAfter = await expect429(await call(cronSecret, client), "too_many_requests:cron");
    expect((await call(cronSecret, "127.0.0.1")).status).toBe(200);
    advance(retryAfter * 1000);
    expect((await call(cronSecret, client)).status).toBe(200);
  });
});
