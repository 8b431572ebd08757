import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAgentClient } from "../lib/agent-client";
import type { Channel, InboundMessage, OutboundMessage } from "../lib/channels/types";
import { createWhatsAppChannel, createWhatsAppClient } from "../lib/channels/whatsapp";
import { parseCommand } from "../lib/commands/parse";
import { db } from "../lib/db/client";
import { getConversationById } from "../lib/db/conversations";
import { createCronJob } from "../lib/db/cron-jobs";
import { listMessagesByConversation } from "../lib/db/messages";
import { saveSettings } from "../lib/db/settings";
import { getTurnById } from "../lib/db/turns";
import { createTurnRunner } from "../lib/turns/runner";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";

// The owner's chat commands through the real pipeline: answered by the gateway,
// stored like any exchange, never sent to the model; anything else goes to it.

let agent: FakeAgent;
let sent: OutboundMessage[];
let counter = 0;

const whatsapp = createWhatsAppChannel(createWhatsAppClient({ apiUrl: "http://127.0.0.1:9", accessToken: "unused", phoneNumberId: "1" }));
const recording: Channel = {
  ...whatsapp,
  async send(message) {
    sent.push(message);
  },
  // No read receipts to a Graph API that is not there.
  markRead: undefined,
};

const runner = () => createTurnRunner({ agent: createAgentClient({ baseUrl: agent.url }), channels: { whatsapp: recording } });
const message = (text: string, phone: string): InboundMessage => ({ channel: "whatsapp", channelId: phone, externalId: `cmd-${++counter}`, text });
const phone = () => `3361000${String(++counter).padStart(4, "0")}`;

beforeAll(async () => {
  agent = await startFakeAgent();
});
afterAll(() => agent.close());
beforeEach(async () => {
  agent.requests.length = 0;
  agent.reply = () => ({});
  sent = [];
  await saveSettings({ values: { persona_lang: "en" } });
});

describe("parseCommand", () => {
  it.each([
    ["/help", { name: "help", arg: "" }],
    ["  /HELP  ", { name: "help", arg: "" }],
    ["/model qwen3:8b", { name: "model", arg: "qwen3:8b" }],
    ["/cancel a1b2c3 please", { name: "cancel", arg: "a1b2c3 please" }],
  ])("reads %j as a command", (text, command) => {
    expect(parseCommand(text)).toEqual(command);
  });

  it.each(["/etc/hosts", "/helpme", "help", "hello /help", "/ help", "/model/x", "/"])("leaves %j to the model", (text) => {
    expect(parseCommand(text)).toBeUndefined();
  });
});

describe("commands", () => {
  it("/help answers in the persona's language, is stored with its reply, and never reaches the model", async () => {
    const chat = phone();
    const english = await runner().runTurn(message("/help", chat));
    await saveSettings({ values: { persona_lang: "fr" } });
    const french = await runner().runTurn(message("/help", chat));
    expect(agent.runs()).toEqual([]);
    expect(english).toMatchObject({ state: "delivered", answer: { model: "none" } });
    expect(english.answer?.response).toMatch(/^Commands:\n- \/help: /);
    expect(french.answer?.response).toMatch(/^Commandes :\n- \/help : /);
    for (const name of ["/new", "/model", "/stop", "/status", "/reminders", "/cancel"]) expect(english.answer?.response).toContain(name);
    expect(sent.map((m) => m.text)).toEqual([english.answer?.response, french.answer?.response]);
    const stored = await listMessagesByConversation({ conversationId: english.conversationId });
    expect(stored.map((m) => [m.role, m.content])).toEqual([
      ["user", "/help"],
      ["assistant", english.answer?.response],
      ["user", "/help"],
      ["assistant", french.answer?.response],
    ]);
  });

  it("keeps commands and their replies out of the model's history", async () => {
    const chat = phone();
    const turns = runner();
    await turns.runTurn(message("hello", chat));
    await turns.runTurn(message("/help", chat));
    await turns.runTurn(message("/model", chat));
    await turns.runTurn(message("again", chat));
    expect(agent.runs().at(-1)).toMatchObject({
      message: "again",
      history: [
        { role: "user", content: "hello" },
        { role: "assistant", content: "Echo: hello" },
      ],
    });
  });

  it("sends a path-like message to the model", async () => {
    const outcome = await runner().runTurn(message("/etc/hosts", phone()));
    expect(agent.runs().map((run) => run.message)).toEqual(["/etc/hosts"]);
    expect(outcome.answer?.response).toBe("Echo: /etc/hosts");
  });

  it("/new starts a conversation whose next message carries no history", async () => {
    const chat = phone();
    const turns = runner();
    const first = await turns.runTurn(message("remember: blue", chat));
    await turns.runTurn(message("/new", chat));
    const after = await turns.runTurn(message("what colour?", chat));
    expect(after.conversationId).not.toBe(first.conversationId);
    expect(agent.runs().at(-1)).toMatchObject({ message: "what colour?", history: [] });
    // The old conversation keeps its messages, the command included.
    expect((await listMessagesByConversation({ conversationId: first.conversationId })).map((m) => m.content)).toEqual([
      "remember: blue",
      "Echo: remember: blue",
      "/new",
      "New conversation: your next message starts without history.",
    ]);
  });

  it("/model shows the choices, switches this conversation's model, and lists the valid names for an unknown one", async () => {
    const chat = phone();
    const turns = runner();
    const shown = await turns.runTurn(message("/model", chat));
    expect(shown.answer?.response).toBe(
      "Model of this conversation: smart (qwen3:8b).\n- Categories: fast, smart, main, vision, code, reason.\n- Installed: qwen3:4b, qwen3:8b.",
    );
    const set = await turns.runTurn(message("/model fast", chat));
    expect(set.answer?.response).toBe("This conversation now uses fast.");
    expect((await getConversationById({ id: set.conversationId }))?.model).toBe("fast");
    await turns.runTurn(message("hello", chat));
    expect(agent.runs().at(-1)).toMatchObject({ message: "hello", model: "fast" });
    const unknown = await turns.runTurn(message("/model gpt-9", chat));
    expect(unknown.answer?.response).toMatch(/^Unknown model "gpt-9"\.\n- Categories: fast, smart, main, vision, code, reason\.\n- Installed: qwen3:4b, qwen3:8b\.$/);
    expect((await getConversationById({ id: set.conversationId }))?.model).toBe("fast");
  });

  it("/stop cancels the running agent call at once, drops the waiting messages, and nothing is retried", async () => {
    const chat = phone();
    const turns = runner();
    agent.reply = (body) => (body.message === "long task" ? { hang: true } : {});
    const running = turns.runTurn(message("long task", chat));
    await expect.poll(() => agent.runs().length).toBe(1);
    const waiting = turns.runTurn(message("and then this", chat));
    await expect.poll(async () => db().turn.count({ where: { externalId: `cmd-${counter}` } })).toBe(1);
    const stop = await turns.runTurn(message("/stop", chat));
    expect(stop).toMatchObject({ state: "delivered" });
    expect(stop.answer?.response).toBe("Done: stopped the running answer and dropped 1 waiting message.");
    const [stopped, dropped] = await Promise.all([running, waiting]);
    expect(stopped).toMatchObject({ state: "failed", error: { code: "conflict:chat" } });
    expect((await getTurnById({ id: stopped.turnId }))?.lastError).toBe("conflict:chat: Stopped by the owner with /stop.");
    expect(await getTurnById({ id: dropped.turnId })).toMatchObject({ state: "failed", lastError: "conflict:chat: Dropped by the owner with /stop." });
    // The agent saw the gateway leave, and was never asked the dropped message.
    await expect.poll(() => agent.abandoned).toBeGreaterThanOrEqual(1);
    expect(agent.runs().map((run) => run.message)).toEqual(["long task"]);
    expect(sent.map((m) => m.text)).toEqual([stop.answer?.response]);
    // A sweep does not take either up again.
    expect(await turns.resumeDueTurns()).toBe(0);
    const idle = await turns.runTurn(message("/stop", chat));
    expect(idle.answer?.response).toBe("Nothing was running.");
  });

  it("/status reports the agent, Ollama, the model, the queue and the last failure", async () => {
    const chat = phone();
    const turns = runner();
    agent.reply = () => ({ status: 400, error: { error: "bad", code: "bad_request" } });
    await turns.runTurn(message("fails", chat));
    agent.reply = () => ({});
    const status = await turns.runTurn(message("/status", chat));
    const lines = status.answer?.response.split("\n") ?? [];
    expect(lines[0]).toMatch(/^- Agent: (ok|down)\. Ollama: (ok|down)\. Model: smart → qwen3:8b\.$/);
    expect(lines[1]).toBe("- Waiting in this conversation: 0.");
    expect(lines[2]).toMatch(/^- Last failure: upstream:agent: bad \(\d{4}-\d\d-\d\dT/);
  });

  it("/reminders lists this chat's scheduled messages with a short id, and /cancel removes one", async () => {
    const chat = phone();
    const other = phone();
    const mine = await createCronJob({
      fields: { name: `Morning ${chat}`, schedule: "0 9 * * *", prompt: "news", channel: "whatsapp", channelId: chat, model: "smart", enabled: true },
    });
    await createCronJob({
      fields: { name: `Other ${other}`, schedule: "0 9 * * *", prompt: "x", channel: "whatsapp", channelId: other, model: "smart", enabled: true },
    });
    const turns = runner();
    const list = await turns.runTurn(message("/reminders", chat));
    const id = mine.id.slice(-6);
    expect(list.answer?.response).toMatch(new RegExp(`^Scheduled messages \\(.+\\):\\n- ${id} Morning ${chat}: next .+\\n\\nRemove one with /cancel and its id\\.$`));
    expect(list.answer?.response).not.toContain("Other");
    expect((await turns.runTurn(message("/cancel zzzzzz", chat))).answer?.response).toBe(
      "No scheduled message of this chat has the id zzzzzz; see /reminders.",
    );
    expect((await turns.runTurn(message(`/cancel ${id.toUpperCase()}`, chat))).answer?.response).toBe(`Removed "Morning ${chat}".`);
    expect(await db().cronJob.findUnique({ where: { id: mine.id } })).toBeNull();
    expect((await turns.runTurn(message("/reminders", chat))).answer?.response).toBe("No scheduled messages for this chat.");
    expect(agent.runs()).toEqual([]);
  });
});
