import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { captureOutput } from "./support/capture-output";
import * as chat from "../app/api/chat/route";
import * as messages from "../app/api/conversations/[id]/messages/route";
import { bodyChunks, parseSse, type SseEvent } from "../lib/sse";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";

// The two additions to the agent's contract, through the real /api/chat route:
// `thinking` events reach the browser's stream as progress and nowhere else (not
// the stored message, not the logs, at every log level), and `finished: false`
// puts the note under the answer, in the stream and in the stored history.

process.env.LOG_LEVEL = "debug";
const TOKEN = "t".repeat(48);
const base = "http://127.0.0.1:3000";
const bearer = { authorization: `Bearer ${TOKEN}` };
const marker = `THINKING-${randomUUID()}`;
let agent: FakeAgent;
let logs: { text: () => string };

beforeAll(async () => {
  agent = await startFakeAgent();
  Object.assign(process.env, { WEBCHAT_TOKEN: TOKEN, AGENT_URL: agent.url });
  logs = captureOutput();
});
afterAll(async () => {
  vi.restoreAllMocks();
  await agent.close();
});

async function chatTurn(message: string): Promise<SseEvent[]> {
  const response = await chat.POST(
    new Request(`${base}/api/chat`, { method: "POST", headers: { ...bearer, "content-type": "application/json" }, body: JSON.stringify({ message }) }),
  );
  expect(response.status).toBe(200);
  const list: SseEvent[] = [];
  for await (const event of parseSse(bodyChunks(response.body!))) list.push(event);
  return list;
}

async function stored(conversationId: string): Promise<{ role: string; content: string }[]> {
  const response = await messages.GET(new Request(`${base}/api/conversations/${conversationId}/messages`, { headers: bearer }), {
    params: Promise.resolve({ id: conversationId }),
  });
  return ((await response.json()) as { messages: { role: string; content: string }[] }).messages;
}

it("relays thinking to the browser as progress, and stores and logs none of it", async () => {
  agent.reply = () => ({ thinking: [`Let me think: ${marker}`, " then answer."], deltas: ["Bonjour !"], response: "Bonjour !" });
  const list = await chatTurn("bonjour");
  expect(list.map((e) => e.event)).toEqual(["start", "step", "thinking", "thinking", "delta", "final"]);
  expect(list.filter((e) => e.event === "thinking").map((e) => JSON.parse(e.data))).toEqual([
    { text: `Let me think: ${marker}` },
    { text: " then answer." },
  ]);
  const final = JSON.parse(list.at(-1)!.data) as { conversationId: string; response: string; finished: boolean };
  expect(final).toMatchObject({ response: "Bonjour !", finished: true });

  const history = await stored(final.conversationId);
  expect(history.map((m) => [m.role, m.content])).toEqual([
    ["user", "bonjour"],
    ["assistant", "Bonjour !"],
  ]);
  expect(logs.text()).toContain('"event":"turn.answered"');
  expect(logs.text()).not.toContain(marker);
});

it("streams and stores the note when the agent ran out of steps", async () => {
  agent.reply = () => ({
    finished: false,
    steps: 4,
    thinking: [`Out of steps ${marker}`],
    deltas: ["Je me suis arrêté : deux pistes trouvées."],
    response: "Je me suis arrêté : deux pistes trouvées.",
  });
  const list = await chatTurn("cherche pour moi");
  const expected = "Je me suis arrêté : deux pistes trouvées.\n\n⏹ Arrêté après 4 étapes, avant la fin (limite d'étapes ou de temps).";
  const final = JSON.parse(list.at(-1)!.data) as { conversationId: string; response: string; finished: boolean };
  expect(list.at(-1)!.event).toBe("final");
  expect(final).toMatchObject({ response: expected, finished: false });
  expect((await stored(final.conversationId)).at(-1)).toMatchObject({ role: "assistant", content: expected });
  expect(logs.text()).toContain('"finished":false');
  expect(logs.text()).not.toContain(marker);
});
