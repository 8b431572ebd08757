import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
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
import * as models from "../app/api/models/route";
import * as settings from "../app/api/settings/route";
import * as nextcloudRoute from "../app/api/webhook/nextcloud/route";
import * as whatsappRoute from "../app/api/webhook/whatsapp/route";
import { backgroundIdle } from "../lib/background";
import { db } from "../lib/db/client";
import { getOrCreateConversation } from "../lib/db/conversations";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";
import { metaSignature, talkMessage, talkSignature, textMessage, whatsappDelivery } from "./support/wire";

// Cross-site request forgery against the cookie session, and credentials put in
// query strings, through the real route handlers. Every refusal is a 4xx with a
// JSON reason, changes nothing, and leaves the credential out of the logs.

const TOKEN = "w".repeat(20) + "-webchat-token-in-url";
const CRON_SECRET = "cron-secret-in-url-" + "c".repeat(20);
const APP_SECRET = "app-secret-in-url-" + "a".repeat(20);
const BOT_SECRET = "bot-secret-in-url-" + "b".repeat(30);
const RANDOM = "R".repeat(64);
const base = "http://127.0.0.1:3000";
const ownOrigin = "http://127.0.0.1:3000";
let agent: FakeAgent;
let session = "";
let output = "";
const inUrl: string[] = [];

beforeAll(async () => {
  agent = await startFakeAgent();
  Object.assign(process.env, {
    LOG_LEVEL: "debug",
    WEBCHAT_TOKEN: TOKEN,
    CRON_SECRET,
    AGENT_URL: agent.url,
    WHATSAPP_APP_SECRET: APP_SECRET,
    WHATSAPP_ACCESS_TOKEN: "EAAG-auth",
    WHATSAPP_PHONE_NUMBER_ID: "106540352242922",
    WHATSAPP_API_URL: "http://127.0.0.1:9",
    WHATSAPP_ALLOWED_NUMBERS: "16505551234",
    NEXTCLOUD_BASE_URL: "http://127.0.0.1:9",
    NEXTCLOUD_BOT_SECRET: BOT_SECRET,
  });
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
      output += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
      return true;
    });
  }
  const response = await login.POST(
    new Request(`${base}/api/auth/login`, { method: "POST", headers: { origin: ownOrigin }, body: JSON.stringify({ token: TOKEN }) }),
  );
  expect(response.status).toBe(200);
  session = (response.headers.get("set-cookie") ?? "").split(";")[0]!;
});
afterAll(async () => {
  vi.restoreAllMocks();
  await backgroundIdle();
  await agent.close();
});

const rows = async () => {
  const d = db();
  return [
    await d.conversation.count(),
    await d.message.count(),
    await d.turn.count(),
    await d.cronJob.findMany({ orderBy: { id: "asc" } }),
    await d.settings.findMany(),
  ];
};
const params = (id: string) => ({ params: Promise.resolve({ id }) });

type Call = (headers: Record<string, string>, id: string) => Promise<Response>;

const newJob = async () =>
  (
    await db().cronJob.create({
      data: { name: `job-${Math.random()}`, schedule: "0 3 * * *", prompt: "p", channel: "webchat", channelId: "c", scheduleSince: new Date() },
    })
  ).id;
const newConversation = async () => (await getOrCreateConversation({ channel: "webchat", channelId: `victim-${Math.random()}` })).id;
const nothing = async () => "";

// Every state-changing route a browser session can reach, with what it acts on and a body that would succeed.
const changes: [string, () => Promise<string>, Call][] = [
  ["POST /api/chat", nothing, (h) => chat.POST(new Request(`${base}/api/chat`, { method: "POST", headers: h, body: JSON.stringify({ message: "forged" }) }))],
  [
    "PUT /api/settings",
    nothing,
    (h) => settings.PUT(new Request(`${base}/api/settings`, { method: "PUT", headers: h, body: JSON.stringify({ persona_name: "Mallory" }) })),
  ],
  [
    "DELETE /api/conversations/{id}",
    newConversation,
    (h, id) => conversation.DELETE(new Request(`${base}/api/conversations/${id}`, { method: "DELETE", headers: h }), params(id)),
  ],
  [
    "POST /api/cron-jobs",
    nothing,
    (h) =>
      cronJobs.POST(
        new Request(`${base}/api/cron-jobs`, {
          method: "POST",
          headers: h,
          body: JSON.stringify({ name: `forged-${Math.random()}`, schedule: "@daily", prompt: "p", channel: "webchat" }),
        }),
      ),
  ],
  [
    "PATCH /api/cron-jobs/{id}",
    newJob,
    (h, id) => cronJob.PATCH(new Request(`${base}/api/cron-jobs/${id}`, { method: "PATCH", headers: h, body: JSON.stringify({ enabled: false }) }), params(id)),
  ],
  ["DELETE /api/cron-jobs/{id}", newJob, (h, id) => cronJob.DELETE(new Request(`${base}/api/cron-jobs/${id}`, { method: "DELETE", headers: h }), params(id))],
  [
    "POST /api/cron-jobs/{id}/run",
    newJob,
    (h, id) => cronJobRun.POST(new Request(`${base}/api/cron-jobs/${id}/run`, { method: "POST", headers: h, body: "{}" }), params(id)),
  ],
  ["POST /api/auth/logout", nothing, (h) => logout.POST(new Request(`${base}/api/auth/logout`, { method: "POST", headers: h, body: "{}" }))],
];

const foreign: [string, Record<string, string>][] = [
  ["another site's Origin", { origin: "https://evil.example" }],
  ["Origin: null (sandboxed frame, file: page)", { origin: "null" }],
  ["the same host on another port", { origin: "http://127.0.0.1:4000" }],
  ["the same host over another scheme", { origin: "https://127.0.0.1:3000" }],
  ["Sec-Fetch-Site: cross-site", { "sec-fetch-site": "cross-site", origin: ownOrigin }],
  ["Sec-Fetch-Site: same-site (a sibling subdomain)", { "sec-fetch-site": "same-site" }],
  ["a proxy's host, from elsewhere", { origin: "https://evil.example", "x-forwarded-host": "claw.example.org", "x-forwarded-proto": "https" }],
];

describe("CSRF: a change with the session cookie", () => {
  describe.each(changes)("%s", (_name, prepare, call) => {
    it.each(foreign)("is refused with 403 when sent with %s, and changes nothing", async (_case, headers) => {
      const id = await prepare();
      const before = await rows();
      const response = await call({ cookie: session, "content-type": "application/json", ...headers }, id);
      expect(response.status).toBe(403);
      expect(await response.json()).toMatchObject({ code: "forbidden:csrf", error: expect.stringContaining("Cross-site") });
      expect(response.headers.get("set-cookie")).toBeNull();
      await backgroundIdle();
      expect(await rows()).toEqual(before);
    });

    it("works from the gateway's own page", async () => {
      const id = await prepare();
      const response = await call({ cookie: session, "content-type": "application/json", origin: ownOrigin, "sec-fetch-site": "same-origin" }, id);
      expect(response.status, await response.clone().text()).toBeLessThan(300);
      await response.body?.cancel();
      await backgroundIdle();
    });
  });

  it.each([
    ["its own Origin (every browser fetch that is not a GET)", { origin: ownOrigin }],
    ["Sec-Fetch-Site: same-origin", { "sec-fetch-site": "same-origin", origin: ownOrigin }],
    ["behind a proxy that sets X-Forwarded-Host and -Proto", { origin: "https://claw.example.org", "x-forwarded-host": "claw.example.org", "x-forwarded-proto": "https" }],
    ["behind a proxy that rewrote Host, from a browser that says same-origin", { origin: "https://claw.example.org", host: "127.0.0.1:3000", "sec-fetch-site": "same-origin" }],
    ["no Origin and no Sec-Fetch-Site (curl, not a browser)", {}],
  ] as [string, Record<string, string>][])("passes with %s", async (_case, headers) => {
    const response = await settings.PUT(
      new Request(`${base}/api/settings`, { method: "PUT", headers: { cookie: session, ...headers }, body: JSON.stringify({ persona_name: "Claw" }) }),
    );
    expect(response.status).toBe(200);
  });

  it("does not apply to reads, nor to bearer calls (a page cannot send the token)", async () => {
    const crossSite = { origin: "https://evil.example", "sec-fetch-site": "cross-site" };
    expect((await conversations.GET(new Request(`${base}/api/conversations`, { headers: { cookie: session, ...crossSite } }))).status).toBe(200);
    const put = await settings.PUT(
      new Request(`${base}/api/settings`, {
        method: "PUT",
        headers: { authorization: `Bearer ${TOKEN}`, ...crossSite },
        body: JSON.stringify({ persona_name: "Claw" }),
      }),
    );
    expect(put.status).toBe(200);
  });

  it("login from another site is refused before the token is checked: no session", async () => {
    for (const headers of foreign.map(([, h]) => h)) {
      const response = await login.POST(new Request(`${base}/api/auth/login`, { method: "POST", headers, body: JSON.stringify({ token: TOKEN }) }));
      expect(response.status).toBe(403);
      expect((await response.json()).code).toBe("forbidden:csrf");
      expect(response.headers.get("set-cookie")).toBeNull();
    }
    const same = await login.POST(
      new Request(`${base}/api/auth/login`, { method: "POST", headers: { origin: ownOrigin, "sec-fetch-site": "same-origin" }, body: JSON.stringify({ token: TOKEN }) }),
    );
    expect(same.status).toBe(200);
    expect(same.headers.get("set-cookie")).toMatch(/^my_claw_session=/);
  });
});

describe("credentials in the query string", () => {
  const withQuery = (path: string, name: string, value: string, headers: Record<string, string> = {}) =>
    new Request(`${base}${path}?${name}=${encodeURIComponent(value)}`, { headers });

  it.each(["token", "access_token", "auth"])("?%s=<WEBCHAT_TOKEN> is refused with 401 on every /api route, even beside a valid bearer", async (name) => {
    const { id } = await getOrCreateConversation({ channel: "webchat", channelId: "query" });
    const before = await rows();
    const calls: [string, (request: Request) => Promise<Response>][] = [
      ["/api/conversations", (r) => conversations.GET(r)],
      [`/api/conversations/${id}/messages`, (r) => messages.GET(r, params(id))],
      ["/api/settings", (r) => settings.GET(r)],
      ["/api/models", (r) => models.GET(r)],
      ["/api/cron-jobs", (r) => cronJobs.GET(r)],
    ];
    for (const [path, call] of calls) {
      for (const headers of [{}, { authorization: `Bearer ${TOKEN}` }, { cookie: session }] as Record<string, string>[]) {
        const response = await call(withQuery(path, name, TOKEN, headers));
        expect(response.status, path).toBe(401);
        expect(await response.json()).toMatchObject({ code: "unauthorized:auth", error: expect.stringContaining("URL") });
      }
    }
    const post = await chat.POST(new Request(`${base}/api/chat?${name}=${TOKEN}`, { method: "POST", body: JSON.stringify({ message: "hi" }) }));
    expect(post.status).toBe(401);
    expect(await rows()).toEqual(before);
  });

  it("/api/cron?secret=<CRON_SECRET> is refused and runs nothing", async () => {
    await db().cronJob.create({ data: { name: "due", schedule: "* * * * *", prompt: "p", channel: "webchat", channelId: "c", scheduleSince: new Date(0) } });
    const before = await rows();
    for (const name of ["secret", "cron_secret", "token"]) {
      for (const handler of [cron.GET, cron.POST]) {
        const response = await handler(new Request(`${base}/api/cron?${name}=${CRON_SECRET}`, { method: handler === cron.GET ? "GET" : "POST", headers: { "x-forwarded-for": `192.0.2.${name.length}` } }));
        expect(response.status).toBe(401);
        expect(await response.json()).toMatchObject({ code: "unauthorized:cron", error: expect.stringContaining("URL") });
      }
    }
    expect(await rows()).toEqual(before);
  });

  it("a webhook signature in the query is not a signature: 401, nothing stored", async () => {
    const before = await rows();
    const raw = whatsappDelivery([{ messages: [textMessage("16505551234", "wamid.QUERY1", "signed in the URL")] }]);
    const signature = metaSignature(raw, APP_SECRET);
    inUrl.push(signature.slice("sha256=".length));
    for (const name of ["x-hub-signature-256", "signature", "hub.signature"]) {
      const response = await whatsappRoute.POST(
        new Request(`${base}/api/webhook/whatsapp?${name}=${encodeURIComponent(signature)}`, { method: "POST", headers: { "x-forwarded-for": "192.0.2.10" }, body: raw }),
      );
      expect(response.status).toBe(401);
      expect((await response.json()).code).toBe("unauthorized:channel");
    }
    const talk = talkMessage({ id: "9001", token: "room", message: "signed in the URL" });
    const query = new URLSearchParams({ random: RANDOM, signature: talkSignature(RANDOM, talk, BOT_SECRET) });
    inUrl.push(query.get("signature")!);
    const response = await nextcloudRoute.POST(new Request(`${base}/api/webhook/nextcloud?${query}`, { method: "POST", headers: { "x-forwarded-for": "192.0.2.11" }, body: talk }));
    expect(response.status).toBe(401);
    expect(await rows()).toEqual(before);
  });

  it("none of those values reaches the logs", async () => {
    expect(output).toContain('"event":"request.failed"');
    expect(inUrl).toHaveLength(2);
    for (const value of [TOKEN, CRON_SECRET, APP_SECRET, BOT_SECRET, ...inUrl]) {
      expect(output).not.toContain(value);
    }
  });
});
