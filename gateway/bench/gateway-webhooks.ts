// The benchmark's WhatsApp webhook acknowledgement: WEBHOOKS signed deliveries,
// WEBHOOK_CONCURRENCY at a time, from as many senders, with a slow fake model;
// time to the 200, and every answer counted at the fake Graph API (lost and
// duplicated must be 0).
import { whatsappEnv } from "../tests/support/channel-env";
import { startFakeAgent } from "../tests/support/fake-agent";
import { startFakeGraph } from "../tests/support/fake-graph";
import { textMessage, whatsappDelivery } from "../tests/support/wire";
import { secret, startGateway, stopAll } from "../e2e/stack";
import { WARMUP, WEBHOOKS, WEBHOOK_CONCURRENCY, WEBHOOK_MODEL_DELAY_MS, summary } from "./gateway-config";
import { phoneNumberId, seconds, sleep, whatsappHeaders } from "./shared";

/** `count` calls of `run`, WEBHOOK_CONCURRENCY in flight; the time each took. */
async function atConcurrency(count: number, run: (index: number) => Promise<number>, offset = 0): Promise<number[]> {
  const times: number[] = [];
  let next = offset;
  await Promise.all(
    Array.from({ length: WEBHOOK_CONCURRENCY }, async () => {
      while (next < offset + count) times.push(await run(next++));
    }),
  );
  return times;
}

export async function benchWebhooks(logDir: string) {
  const appSecret = secret().slice(0, 32);
  const accessToken = `EAAG${secret()}`;
  const senders = Array.from({ length: WEBHOOK_CONCURRENCY }, (_, i) => `1650555${String(1000 + i)}`);
  const fake = await startFakeAgent();
  fake.reply = () => ({ delayMs: WEBHOOK_MODEL_DELAY_MS });
  const graph = await startFakeGraph({ accessToken, phoneNumberId });
  const gateway = await startGateway({
    agentUrl: fake.url,
    webchatToken: secret(),
    logDir,
    name: "gateway-webhooks",
    env: whatsappEnv({ appSecret, accessToken, phoneNumberId, graphUrl: graph.url, allowedNumbers: senders.join(",") }),
  });
  const deliver = async (index: number) => {
    const raw = whatsappDelivery([{ messages: [textMessage(senders[index % senders.length]!, `wamid.bench${index}`, `bench message ${index}`)] }]);
    const started = performance.now();
    const response = await fetch(`${gateway.url}/api/webhook/whatsapp`, { method: "POST", headers: whatsappHeaders(raw, appSecret), body: raw });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`the webhook answered ${response.status}`);
    return performance.now() - started;
  };
  // The floor: a route that does no work (a refused verification handshake), same load.
  const refusedHandshake = async () => {
    const started = performance.now();
    const response = await fetch(`${gateway.url}/api/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1`);
    await response.arrayBuffer();
    return performance.now() - started;
  };
  const total = WARMUP + WEBHOOKS;
  try {
    for (let i = 0; i < WARMUP; i++) await refusedHandshake();
    const floor = await atConcurrency(WEBHOOKS, refusedHandshake);
    const started = performance.now();
    for (let i = 0; i < WARMUP; i++) await deliver(i);
    const ack = await atConcurrency(WEBHOOKS, deliver, WARMUP);
    const acknowledged = performance.now() - started;
    const deadline = Date.now() + 180_000;
    while (graph.sent.length < total && Date.now() < deadline) await sleep(100);
    // Anything late or doubled shows up here.
    await sleep(2_000);
    const answered = new Set(graph.sent.map((m) => m.body));
    const expected = Array.from({ length: total }, (_, i) => `Echo: bench message ${i}`);
    return {
      deliveries: WEBHOOKS,
      concurrency: WEBHOOK_CONCURRENCY,
      senders: senders.length,
      model_delay_ms: WEBHOOK_MODEL_DELAY_MS,
      ack_ms: summary(ack),
      no_op_route_ms: summary(floor),
      acknowledged_s: seconds(acknowledged),
      all_delivered_s: seconds(performance.now() - started - 2_000),
      answers_sent: graph.sent.length,
      lost: expected.filter((body) => !answered.has(body)).length,
      duplicated: graph.sent.length - answered.size,
    };
  } finally {
    await stopAll();
    await Promise.all([fake.close(), graph.close()]);
  }
}
