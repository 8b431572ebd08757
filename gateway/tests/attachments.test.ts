import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as attachmentRoute from "../app/api/attachments/[id]/route";
import { createAgentClient } from "../lib/agent-client";
import { attachmentLink, isValidLink } from "../lib/attachments/link";
import { humanSize } from "../lib/attachments/notes";
import { createNextcloudChannel, createNextcloudClient } from "../lib/channels/nextcloud";
import type { OutboundAttachment, OutboundMessage } from "../lib/channels/types";
import { webchat } from "../lib/channels/webchat";
import { createWhatsAppChannel, createWhatsAppClient, whatsappMediaKind } from "../lib/channels/whatsapp";
import { listMessagesByConversation } from "../lib/db/messages";
import { saveSettings } from "../lib/db/settings";
import { getTurnById } from "../lib/db/turns";
import { parseEnv } from "../lib/env";
import { createTurnRunner } from "../lib/turns/runner";
import { startFakeAgent, type FakeAgent, type FakeFile } from "./support/fake-agent";
import { startFakeGraph, type FakeGraph } from "./support/fake-graph";
import { startFakeNextcloud, type FakeNextcloud } from "./support/fake-nextcloud";

// Files sent back (issue 13 §3), gateway side: the agent's final object lists
// them, the gateway fetches each from the agent, stores it with the answer and
// delivers it as more parts of the answer, once: WhatsApp uploads it and sends
// an image or a document, Talk gets a line with a link or a note, the webchat
// serves it through /api/attachments/<id>.

const TOKEN = "w".repeat(48);
const accessToken = "EAAGm0PX4ZCpsBA-files";
const phoneNumberId = "106540352242922";
const owner = "33612345678";
const room = "r00mt0ken";
const talkSecret = "s".repeat(64);
const publicBaseUrl = "https://claw.example.org";

// The first bytes of a real PNG: Graph's upload does not look further, nor does the route.
const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...randomBytes(2000)]);
const pdf = new Uint8Array(Buffer.from(`%PDF-1.7\n${"report ".repeat(300)}\n%%EOF`));

let agent: FakeAgent;
let graph: FakeGraph;
let talk: FakeNextcloud;
let counter = 0;

beforeAll(async () => {
  process.env.WEBCHAT_TOKEN = TOKEN;
  process.env.PUBLIC_BASE_URL = publicBaseUrl;
  [agent, graph, talk] = await Promise.all([
    startFakeAgent(),
    startFakeGraph({ accessToken, phoneNumberId }),
    startFakeNextcloud({ secret: talkSecret, tokens: [room] }),
  ]);
  await saveSettings({ values: { persona_name: "Claw", persona_lang: "en", system_prompt: "" } });
});
afterAll(async () => {
  await Promise.all([agent.close(), graph.close(), talk.close()]);
});
beforeEach(() => {
  agent.reply = () => ({});
  graph.sent.length = 0;
  graph.uploads.length = 0;
  graph.sentMedia.length = 0;
  talk.posted.length = 0;
});

const file = (name: string, mime: string, bytes: Uint8Array, extra: Partial<FakeFile> = {}): FakeFile => ({
  id: `f${randomBytes(12).toString("hex")}`,
  name,
  mime,
  bytes,
  ...extra,
});

function turnsWith(channels: Parameters<typeof createTurnRunner>[0]["channels"]) {
  return createTurnRunner({
    agent: createAgentClient({ baseUrl: agent.url }),
    channels,
    retry: { baseDelayMs: 10, maxDelayMs: 10, graceMs: 0, maxAttempts: 3 },
  });
}

/** The answer of a turn: the last assistant message of its conversation. */
async function answerOf(conversationId: string) {
  return (await listMessagesByConversation({ conversationId })).filter((m) => m.role === "assistant").at(-1);
}

const whatsapp = () => createWhatsAppChannel(createWhatsAppClient({ apiUrl: graph.url, accessToken, phoneNumberId, maxAttempts: 1 }));

describe("a WhatsApp turn whose answer has files", () => {
  it("sends the text, then uploads each file and sends it as an image or a document with its caption, and stores them with the answer", async () => {
    const shot = file("screen.png", "image/png", png, { caption: "Your screen" });
    const report = file("report.pdf", "application/pdf", pdf);
    agent.reply = () => ({ response: "Here they are.", attachments: [shot, report] });
    const turns = turnsWith({ whatsapp: whatsapp() });

    const outcome = await turns.runTurn({ channel: "whatsapp", channelId: owner, externalId: `wamid.files-${++counter}`, text: "send me my screen" });

    expect(outcome.state).toBe("delivered");
    expect(graph.sent.map((m) => m.body)).toEqual(["Here they are."]);
    expect(graph.uploads.map(({ type, fileType, fileName }) => ({ type, fileType, fileName }))).toEqual([
      { type: "image/png", fileType: "image/png", fileName: "screen.png" },
      { type: "application/pdf", fileType: "application/pdf", fileName: "report.pdf" },
    ]);
    expect(Buffer.from(graph.uploads[0]!.bytes).equals(Buffer.from(png))).toBe(true);
    expect(Buffer.from(graph.uploads[1]!.bytes).equals(Buffer.from(pdf))).toBe(true);
    expect(graph.sentMedia).toEqual([
      { to: owner, type: "image", mediaId: graph.uploads[0]!.id, caption: "Your screen" },
      { to: owner, type: "document", mediaId: graph.uploads[1]!.id, filename: "report.pdf" },
    ]);
    // Text then files, in that order, on the wire.
    const posts = graph.requests.filter((r) => r.method === "POST" && (r.body as { status?: string })?.status !== "read");
    const order = posts.map((r) => (r.path.endsWith("/media") ? "upload" : String((r.body as { type?: string })?.type)));
    expect(order).toEqual(["text", "upload", "image", "upload", "document"]);

    const answer = await answerOf(outcome.conversationId);
    expect(answer?.attachments.map(({ name, mime, size, caption }) => ({ name, mime, size, caption }))).toEqual([
      { name: "screen.png", mime: "image/png", size: png.byteLength, caption: "Your screen" },
      { name: "report.pdf", mime: "application/pdf", size: pdf.byteLength, caption: null },
    ]);
    expect((await getTurnById({ id: outcome.turnId }))?.sentChunks).toBe(3);
  });

  it("sends again only what had not gone out when a file's send failed, once the turn is retried", async () => {
    const first = file("a.png", "image/png", png);
    const second = file("b.pdf", "application/pdf", pdf);
    agent.reply = () => ({ response: "Two files.", attachments: [first, second] });
    const turns = turnsWith({ whatsapp: whatsapp() });
    // The text and the image pass; the document's send fails with a server error (retryable).
    graph.failNext(null, null, { status: 500, code: 2, message: "Service temporarily unavailable" });

    const outcome = await turns.runTurn({ channel: "whatsapp", channelId: owner, externalId: `wamid.files-${++counter}`, text: "two files" });
    expect(outcome.state).toBe("answered");
    expect((await getTurnById({ id: outcome.turnId }))?.sentChunks).toBe(2);

    await expect
      .poll(async () => {
        await turns.resumeDueTurns();
        await turns.idle();
        return (await getTurnById({ id: outcome.turnId }))?.state;
      })
      .toBe("delivered");
    expect(graph.sent.map((m) => m.body)).toEqual(["Two files."]);
    expect(graph.sentMedia.map((m) => m.type)).toEqual(["image", "document"]);
    // The document was uploaded twice (the first upload's send failed); the image once.
    expect(graph.uploads.map((u) => u.fileName)).toEqual(["a.png", "b.pdf", "b.pdf"]);
    // The agent was asked once: the retry delivers the stored answer and files.
    expect(agent.runs().filter((r) => r.message === "two files")).toHaveLength(1);
  });

  it("says in the answer which file the agent could no longer give, and stores none for it", async () => {
    const gone = file("old.png", "image/png", png, { forgotten: true });
    agent.reply = () => ({ response: "Attached.", attachments: [gone] });
    const turns = turnsWith({ whatsapp: whatsapp() });
    const outcome = await turns.runTurn({ channel: "whatsapp", channelId: owner, externalId: `wamid.files-${++counter}`, text: "old file" });
    expect(outcome.state).toBe("delivered");
    expect(graph.sent.map((m) => m.body)).toEqual(["Attached.\n\n(The file old.png could not be fetched from the agent, so it is not attached.)"]);
    expect(graph.uploads).toEqual([]);
    expect((await answerOf(outcome.conversationId))?.attachments).toEqual([]);
  });
});

describe("what WhatsApp takes", () => {
  it("sends JPEG and PNG up to 5 MB as images, anything up to 100 MB as a document, nothing larger", () => {
    expect(whatsappMediaKind("image/png", 5 * 1024 * 1024)).toBe("image");
    expect(whatsappMediaKind("image/jpeg", 1000)).toBe("image");
    expect(whatsappMediaKind("image/png", 5 * 1024 * 1024 + 1)).toBe("document");
    expect(whatsappMediaKind("image/webp", 1000)).toBe("document");
    expect(whatsappMediaKind("application/zip", 100 * 1024 * 1024)).toBe("document");
    expect(whatsappMediaKind("application/zip", 100 * 1024 * 1024 + 1)).toBeUndefined();
  });

  const outbound = (attachments: OutboundAttachment[]): OutboundMessage => ({
    channel: "whatsapp",
    channelId: owner,
    conversationId: "conv-files",
    replyTo: "wamid.x",
    text: "Done.",
    attachments,
    lang: "en",
  });

  it("sends a PNG over 5 MB as a document, and tells the owner about a file too large for WhatsApp without reading it", async () => {
    const big = new Uint8Array(5 * 1024 * 1024 + 10);
    big.set(png.subarray(0, 8));
    const huge: OutboundAttachment = {
      id: "huge",
      name: "backup.tar",
      mime: "application/x-tar",
      size: 150 * 1024 * 1024,
      caption: null,
      storedAt: new Date(),
      data: () => Promise.reject(new Error("a file too large for WhatsApp must not be read")),
    };
    const photo: OutboundAttachment = { id: "big", name: "photo.png", mime: "image/png", size: big.byteLength, caption: "Big", storedAt: new Date(), data: async () => big };
    const progress: number[] = [];
    await whatsapp().send({ ...outbound([photo, huge]), onChunkSent: async (n) => void progress.push(n) });
    expect(graph.sentMedia).toEqual([{ to: owner, type: "document", mediaId: graph.uploads[0]!.id, caption: "Big", filename: "photo.png" }]);
    expect(graph.sent.map((m) => m.body)).toEqual([
      "Done.",
      `📎 backup.tar (150 MB) is too large to send here (at most 100 MB); it is in the webchat.`,
    ]);
    expect(progress).toEqual([1, 2, 3]);
  });
});

describe("Nextcloud Talk, which cannot receive files", () => {
  const env = parseEnv({ WEBCHAT_TOKEN: TOKEN, PUBLIC_BASE_URL: publicBaseUrl, ATTACHMENT_LINK_TTL_S: "3600", CRON_TIMEZONE: "Europe/Paris" });
  const client = () => createNextcloudClient({ baseUrl: talk.url, secret: talkSecret });
  const storedAt = new Date("2026-12-03T10:00:00Z");
  const shot: OutboundAttachment = { id: "att1", name: "screen.png", mime: "image/png", size: 2048, caption: "Your screen", storedAt, data: async () => png };
  const message: OutboundMessage = { channel: "nextcloud", channelId: room, conversationId: "c1", replyTo: "17", text: "Here.", attachments: [shot], lang: "en" };

  it("gets the file's name, size and caption with a note that it is in the webchat when there is no public address", async () => {
    await createNextcloudChannel(client()).send(message);
    expect(talk.posted.map((m) => m.message)).toEqual(["Here.\n\n📎 screen.png (2 KB): Your screen. This chat cannot receive files; it is in the webchat."]);
  });

  it("gets a link that expires, in the owner's time zone, with PUBLIC_BASE_URL", async () => {
    const link = attachmentLink("att1", storedAt, env);
    expect(link?.url).toMatch(/^https:\/\/claw\.example\.org\/api\/attachments\/att1\?expires=\d+&sig=[\w-]+$/);
    expect(link?.expiresAt.toISOString()).toBe("2026-12-03T11:00:00.000Z");
    await createNextcloudChannel(client(), { linkFor: (f) => attachmentLink(f.id, f.storedAt, env), timeZone: env.cronTimeZone }).send({ ...message, lang: "fr" });
    expect(talk.posted.map((m) => m.message)).toEqual([`Here.\n\n📎 screen.png (2 KB): Your screen : ${link!.url} (lien valable jusqu'au 2026-12-03 12:00)`]);
  });

  it("accepts a link only for its own file and before it expires", () => {
    const link = attachmentLink("att1", storedAt, env)!;
    const query = new URL(link.url).searchParams;
    expect(isValidLink("att1", query, storedAt.getTime(), env)).toBe(true);
    expect(isValidLink("att2", query, storedAt.getTime(), env)).toBe(false);
    expect(isValidLink("att1", query, link.expiresAt.getTime() + 1, env)).toBe(false);
    const later = new URLSearchParams(query);
    later.set("expires", String(Number(query.get("expires")) + 86_400));
    expect(isValidLink("att1", later, storedAt.getTime(), env)).toBe(false);
    expect(attachmentLink("att1", storedAt, parseEnv({ WEBCHAT_TOKEN: TOKEN }))).toBeUndefined();
  });

  it("writes sizes as a person reads them", () => {
    expect([humanSize(12), humanSize(2048), humanSize(1536 * 1024), humanSize(100 * 1024 * 1024)]).toEqual(["12 B", "2 KB", "1.5 MB", "100 MB"]);
  });
});

describe("GET /api/attachments/<id>", () => {
  const params = (id: string) => ({ params: Promise.resolve({ id }) });
  const get = (path: string, headers: Record<string, string> = {}) => attachmentRoute.GET(new Request(`http://127.0.0.1:3000${path}`, { headers }), params(path.split("/")[3]!.split("?")[0]!));

  async function storedFiles(files: FakeFile[]) {
    agent.reply = () => ({ response: "Files.", attachments: files });
    const outcome = await turnsWith({ webchat }).runTurn({ channel: "webchat", channelId: `thread-${++counter}`, externalId: `web-${counter}`, text: "files please" });
    return (await answerOf(outcome.conversationId))!.attachments;
  }

  it("gives the owner an image inline and any other file as a download, sandboxed", async () => {
    const [image, page] = await storedFiles([file("shot.png", "image/png", png), file("page.html", "text/html", Buffer.from("<script>alert(1)</script>"))]);
    const bearer = { authorization: `Bearer ${TOKEN}` };

    const shown = await get(`/api/attachments/${image!.id}`, bearer);
    expect(shown.status).toBe(200);
    expect(shown.headers.get("content-type")).toBe("image/png");
    expect(shown.headers.get("content-disposition")).toBe("inline; filename*=UTF-8''shot.png");
    expect(shown.headers.get("content-security-policy")).toContain("sandbox");
    expect(shown.headers.get("x-content-type-options")).toBe("nosniff");
    expect(Buffer.from(await shown.arrayBuffer()).equals(Buffer.from(png))).toBe(true);

    const downloaded = await get(`/api/attachments/${page!.id}`, bearer);
    expect(downloaded.headers.get("content-type")).toBe("application/octet-stream");
    expect(downloaded.headers.get("content-disposition")).toBe("attachment; filename*=UTF-8''page.html");
  });

  it("refuses anyone without the owner's session or a valid link, and names no file that does not exist", async () => {
    const [image] = await storedFiles([file("private.png", "image/png", png)]);
    const anonymous = await get(`/api/attachments/${image!.id}`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: expect.stringMatching(/Log in/) });

    const link = attachmentLink(image!.id, new Date(image!.createdAt))!;
    const path = new URL(link.url);
    expect((await get(`${path.pathname}${path.search}`)).status).toBe(200);
    const forged = await get(`${path.pathname}${path.search.replace(/sig=[\w-]+/, "sig=AAAA")}`);
    expect(forged.status).toBe(403);
    expect(await forged.json()).toMatchObject({ error: expect.stringMatching(/expired or is not valid/) });

    const missing = await get("/api/attachments/nosuchfile", { authorization: `Bearer ${TOKEN}` });
    expect(missing.status).toBe(404);
  });
});
