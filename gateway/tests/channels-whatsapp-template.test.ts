import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createWhatsAppChannel, createWhatsAppClient, TEMPLATE_PARAM_LIMIT, whatsappParts, type WhatsAppClient } from "../lib/channels/whatsapp";
import type { OutboundMessage } from "../lib/channels/types";
import { EnvError, parseEnv } from "../lib/env";
import { isAppError } from "../lib/errors";
import { startFakeGraph, type FakeGraph } from "./support/fake-graph";

// WhatsApp's 24-hour rule: a free-form message to an owner who has not written
// for a day is refused with 131047. With WHATSAPP_TEMPLATE_NAME, the channel
// sends it again through that approved template (the text as its one body
// parameter), once; without it, the refusal stands.

const accessToken = "EAAGm0PX4ZCpsBA-template";
const phoneNumberId = "106540352242922";
const owner = "33612345678";
const template = { name: "claw_message", lang: "fr" };
const window131047 = { code: 131047, message: "(#131047) Re-engagement message" };

let graph: FakeGraph;
let client: WhatsAppClient;

beforeAll(async () => {
  graph = await startFakeGraph({ accessToken, phoneNumberId });
  client = createWhatsAppClient({ apiUrl: graph.url, accessToken, phoneNumberId, maxAttempts: 1 });
});
afterAll(() => graph.close());
beforeEach(() => {
  graph.sent.length = 0;
  graph.templates.length = 0;
  graph.failTo(owner, undefined);
});

function outbound(text: string, progress: number[], startChunk = 0): OutboundMessage {
  return {
    channel: "whatsapp",
    channelId: owner,
    conversationId: "conv-1",
    replyTo: "cron:job-1:2026-12-03T09:00:00.000Z",
    text,
    startChunk,
    onChunkSent: async (count) => void progress.push(count),
  };
}

describe("outside the 24-hour window", () => {
  it("sends the message once through the template, on one line, and counts every part as sent", async () => {
    graph.failTo(owner, window131047);
    const text = `**Rappel** : sortir le linge.\n\n- étape 1\n- étape 2\n\n${"x".repeat(5000)}`;
    const progress: number[] = [];
    await createWhatsAppChannel(client, template).send(outbound(text, progress));
    expect(graph.sent).toEqual([]);
    expect(graph.templates).toHaveLength(1);
    const [sent] = graph.templates;
    expect(sent).toMatchObject({ to: owner, name: "claw_message", lang: "fr" });
    expect(sent!.params).toHaveLength(1);
    expect(sent!.params[0]!.startsWith("*Rappel* : sortir le linge. · - étape 1 · - étape 2 · xxx")).toBe(true);
    expect(sent!.params[0]!.length).toBe(TEMPLATE_PARAM_LIMIT);
    expect(sent!.params[0]!.endsWith("…")).toBe(true);
    // Every text part is counted, so a retry after a crash here sends nothing more.
    const parts = whatsappParts(text).length;
    expect(parts).toBeGreaterThan(1);
    expect(progress).toEqual([parts]);
    await createWhatsAppChannel(client, template).send(outbound(text, progress, parts));
    expect(graph.templates).toHaveLength(1);
    expect(graph.sent).toEqual([]);
  });

  it("leaves the refusal as it is without a template", async () => {
    graph.failTo(owner, window131047);
    const error = await createWhatsAppChannel(client).send(outbound("Rappel", [])).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(isAppError(error) && error.detail.graphCode).toBe(131047);
    expect(graph.templates).toEqual([]);
  });

  it("does not switch to the template once a part went out as text (the rest would not match the parts counted)", async () => {
    graph.failTo(owner, window131047, 1);
    const progress: number[] = [];
    const error = await createWhatsAppChannel(client, template)
      .send(outbound(`${"a".repeat(4000)}\n\n${"b".repeat(4000)}`, progress))
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(isAppError(error) && error.detail).toMatchObject({ graphCode: 131047, sentChunks: 1 });
    expect(progress).toEqual([1]);
    expect(graph.templates).toEqual([]);
  });

  it("sends ordinary messages as text, template or not", async () => {
    await createWhatsAppChannel(client, template).send(outbound("Bonjour", []));
    expect(graph.sent.map((m) => m.body)).toEqual(["Bonjour"]);
    expect(graph.templates).toEqual([]);
  });
});

describe("WHATSAPP_TEMPLATE_NAME and WHATSAPP_TEMPLATE_LANG", () => {
  it("configure the template, English by default", () => {
    expect(parseEnv({ WHATSAPP_TEMPLATE_NAME: "claw_message" }).whatsapp.template).toEqual({ name: "claw_message", lang: "en" });
    expect(parseEnv({ WHATSAPP_TEMPLATE_NAME: "claw_message", WHATSAPP_TEMPLATE_LANG: "fr" }).whatsapp.template).toEqual(template);
    expect(parseEnv({}).whatsapp.template).toBeUndefined();
  });

  it("refuse a name or language Meta would not have approved", () => {
    expect(() => parseEnv({ WHATSAPP_TEMPLATE_NAME: "Claw Message" })).toThrow(EnvError);
    expect(() => parseEnv({ WHATSAPP_TEMPLATE_NAME: "claw_message", WHATSAPP_TEMPLATE_LANG: "french" })).toThrow(/WHATSAPP_TEMPLATE_LANG/);
  });
});
