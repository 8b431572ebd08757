// The soak's load generator, open loop: signed webhook deliveries on schedule
// (RATE per second; from SENDERS WhatsApp senders, every fifth one a Nextcloud
// Talk message instead) and STREAMS webchat streams, each posting its next
// message as soon as the previous answer ended. Then the wait for the backlog
// to drain.
import Database from "better-sqlite3";
import { bodyChunks, parseSse } from "../lib/sse";
import { talkMessage, talkHeaders, textMessage, whatsappDelivery } from "../tests/support/wire";
import { DRAIN_TIMEOUT_S, RATE, STREAMS, STREAM_RAMP_MS, rooms } from "./soak-config";
import type { SoakStack } from "./soak-stack";
import { seconds, sleep, whatsappHeaders } from "./shared";

/** One phase's load (the warm-up, the main one) and what became of it. */
export interface Phase {
  name: string;
  /** Acknowledged (200) deliveries: wamid or Talk message id → text. */
  whatsapp: Map<string, string>;
  talk: Map<string, string>;
  webchat: { sent: number; answered: number; errors: string[] };
  ackMs: number[];
  /** Deliveries not acknowledged with 200, by status or error. */
  ackFailures: Map<string, number>;
  firstEventMs: number[];
  turnMs: number[];
  lateStarts: number;
}

const failed = (phase: Phase, why: string) => phase.ackFailures.set(why, (phase.ackFailures.get(why) ?? 0) + 1);

export function soakLoad({ gateway, graph, talk, appSecret, botSecret, webchatToken, senders }: SoakStack) {
  const auth = { authorization: `Bearer ${webchatToken}` };
  let sequence = 0;

  async function deliver(phase: Phase, index: number): Promise<void> {
    const id = ++sequence;
    const text = `soak ${phase.name} ${id}`;
    let url: string;
    let raw: string;
    let headers: Record<string, string>;
    let accepted: () => void;
    if (index % 5 === 4) {
      const messageId = 100_000 + id;
      raw = talkMessage({ id: String(messageId), message: text, token: rooms[id % rooms.length]! });
      headers = talkHeaders(raw, botSecret);
      url = `${gateway.url}/api/webhook/nextcloud`;
      accepted = () => phase.talk.set(String(messageId), text);
    } else {
      const wamid = `wamid.SOAK${id.toString(36).toUpperCase().padStart(8, "0")}`;
      raw = whatsappDelivery([{ messages: [textMessage(senders[index % senders.length]!, wamid, text)] }]);
      headers = whatsappHeaders(raw, appSecret);
      url = `${gateway.url}/api/webhook/whatsapp`;
      accepted = () => phase.whatsapp.set(wamid, text);
    }
    const started = performance.now();
    try {
      const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: raw });
      const body = await response.text();
      phase.ackMs.push(performance.now() - started);
      if (response.status === 200) accepted();
      else failed(phase, `HTTP ${response.status} ${body.slice(0, 120)}`);
    } catch (error) {
      failed(phase, error instanceof Error ? `${error.message} ${String((error as { cause?: unknown }).cause ?? "")}` : String(error));
    }
  }

  async function webchatStream(phase: Phase, stream: number, until: number): Promise<void> {
    let conversationId: string | undefined;
    let turn = 0;
    await sleep((stream * STREAM_RAMP_MS) / STREAMS);
    while (performance.now() < until) {
      const message = `soak ${phase.name} stream ${stream} turn ${++turn}`;
      const started = performance.now();
      let accepted = false;
      try {
        const response = await fetch(`${gateway.url}/api/chat`, {
          method: "POST",
          headers: { "content-type": "application/json", ...auth },
          body: JSON.stringify({ message, ...(conversationId ? { conversationId } : {}) }),
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        let answer: string | undefined;
        for await (const event of parseSse(bodyChunks(response.body!))) {
          if (event.event === "start") {
            // The message is stored: from here on it must be answered.
            accepted = true;
            phase.webchat.sent += 1;
            phase.firstEventMs.push(performance.now() - started);
            conversationId ??= (JSON.parse(event.data) as { conversationId: string }).conversationId;
          } else if (event.event === "final") {
            answer = (JSON.parse(event.data) as { response: string }).response;
          } else if (event.event === "error") {
            throw new Error((JSON.parse(event.data) as { code: string }).code);
          }
        }
        if (answer !== `Echo: ${message}`) throw new Error("no final answer, or not this message's");
        phase.webchat.answered += 1;
        phase.turnMs.push(performance.now() - started);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        if (accepted) phase.webchat.errors.push(why);
        else failed(phase, `webchat: ${why}`);
      }
    }
  }

  /** The load for `duration` seconds, open loop: deliveries leave on schedule whatever the answers' pace. */
  async function load(name: string, duration: number): Promise<Phase> {
    const phase: Phase = {
      name,
      whatsapp: new Map(),
      talk: new Map(),
      webchat: { sent: 0, answered: 0, errors: [] },
      ackMs: [],
      ackFailures: new Map(),
      firstEventMs: [],
      turnMs: [],
      lateStarts: 0,
    };
    const started = performance.now();
    const until = started + duration * 1000;
    const streams = Array.from({ length: STREAMS }, (_, i) => webchatStream(phase, i, until));
    const deliveries: Promise<void>[] = [];
    const total = Math.round(RATE * duration);
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      else if (wait < -50) phase.lateStarts += 1;
      deliveries.push(deliver(phase, i));
    }
    await Promise.all(deliveries);
    await Promise.all(streams);
    return phase;
  }

  /** Waits until every accepted webhook message has its answer at the fake channel, or no turn is left unfinished; returns the seconds it took. */
  async function drain(phases: Phase[]): Promise<number> {
    const started = performance.now();
    const deadline = started + DRAIN_TIMEOUT_S * 1000;
    const expected = () => phases.reduce((n, p) => n + p.whatsapp.size + p.talk.size, 0);
    const watcher = new Database(gateway.databaseUrl.replace(/^file:/, ""), { readonly: true });
    const unfinished = watcher.prepare(`SELECT COUNT(*) AS n FROM "Turn" WHERE state IN ('received', 'answered')`);
    try {
      for (;;) {
        const answered = graph.sent.length + talk.posted.length;
        if (answered >= expected() || (unfinished.get() as { n: number }).n === 0) break;
        if (performance.now() > deadline) break;
        await sleep(500);
      }
    } finally {
      watcher.close();
    }
    return seconds(performance.now() - started);
  }

  return { load, drain };
}
