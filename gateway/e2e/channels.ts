// `npm run e2e` (second part): WhatsApp and Nextcloud Talk end to end. The real
// gateway (production build, scripts/start.mjs) and the real agent with its
// fake Ollama, on loopback; Meta's Graph API and Talk's OCS bot API are the
// test suite's fakes, run in this process, which check every request as the
// real servers do (bearer token; signature over random + message text;
// OCS-APIRequest) and record it. Webhooks are posted as Meta and Nextcloud
// send them, signed here.
//
// Each message is answered once; a long answer arrives in parts, in order; a
// gateway killed while turns are in flight answers them after its restart, once.
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { startFakeGraph } from "../tests/support/fake-graph";
import { startFakeNextcloud } from "../tests/support/fake-nextcloud";
import { channelEnv } from "../tests/support/channel-env";
import { metaSignature, talkMessage, talkHeaders, textMessage, whatsappDelivery } from "../tests/support/wire";
import { check, reportFailed, reportPassed, sleep, waitFor } from "./checks";
import { exitUnlessAgentAvailable, gatewayDir, killService, secret, startBackend, startGateway, stopAll, stopOnSignals } from "./stack";

const logDir = path.join(gatewayDir, "e2e-results", "logs");
const owner = "16505551234";
const phoneNumberId = "106540352242922";
const room = "n3xtc10ud";
const marker = `NOLOG-${randomUUID().slice(0, 8)}`;

const codeAnswer = (text: string) => `Thought: answering.\n<code>\nfinal_answer(${JSON.stringify(text)})\n</code>`;

async function main() {
  stopOnSignals();
  exitUnlessAgentAvailable("e2e channels");
  const appSecret = randomUUID().replace(/-/g, "");
  const botSecret = secret() + secret();
  const accessToken = `EAAG${secret()}`;

  process.stdout.write("starting fake Graph, fake Talk, fake Ollama, agent and gateway…\n");
  const graph = await startFakeGraph({ accessToken, phoneNumberId });
  const talk = await startFakeNextcloud({ secret: botSecret, tokens: [room] });
  // The long answer below is ~2,300 tokens in one final_answer: more than the default output cap (1,024), which
  // the fake Ollama enforces as Ollama does.
  const { ollama, gateway: backend } = await startBackend(logDir, { env: { AGENT_MAX_OUTPUT_TOKENS: "3072" } });
  const gatewayOptions = {
    ...backend,
    webchatToken: secret(),
    env: {
      LOG_LEVEL: "debug",
      WHATSAPP_VERIFY_TOKEN: "e2e-verify",
      ...channelEnv({ appSecret, accessToken, phoneNumberId, graphUrl: graph.url, allowedNumbers: `+${owner}`, talkUrl: talk.url, botSecret }),
    },
  };
  let gateway = await startGateway(gatewayOptions);
  const script = (body: unknown) => fetch(`${ollama.url}/_fake/script`, { method: "POST", body: JSON.stringify(body) }).then((r) => r.json());

  let seq = 0;
  async function whatsapp(text: string): Promise<string> {
    const id = `wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ${(++seq).toString().padStart(3, "0")}RTJF+A=`;
    const raw = whatsappDelivery([{ messages: [textMessage(owner, id, text)] }]);
    const started = performance.now();
    const response = await fetch(`${gateway.url}/api/webhook/whatsapp`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": metaSignature(raw, appSecret) },
      body: raw,
    });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`the WhatsApp webhook answered ${response.status}`);
    const elapsed = performance.now() - started;
    if (elapsed > 1_000) throw new Error(`the WhatsApp webhook took ${Math.round(elapsed)} ms`);
    return id;
  }
  async function nextcloud(text: string): Promise<string> {
    const id = String(2000 + ++seq);
    const raw = talkMessage({ id, token: room, message: text });
    const response = await fetch(`${gateway.url}/api/webhook/nextcloud`, {
      method: "POST",
      headers: { "content-type": "application/json", ...talkHeaders(raw, botSecret) },
      body: raw,
    });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`the Talk webhook answered ${response.status}`);
    return id;
  }
  const sentTo = (body: string) => graph.sent.filter((m) => m.to === owner && m.body === body).length;
  const postedIn = (message: string) => talk.posted.filter((m) => m.token === room && m.message === message).length;

  try {
    process.stdout.write("WhatsApp\n");
    const verify = await fetch(`${gateway.url}/api/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=e2e-verify&hub.challenge=8675309`);
    check(verify.status === 200 && (await verify.text()) === "8675309", "the verification handshake echoes the challenge");
    const first = await whatsapp(`bonjour ${marker}`);
    await waitFor("the WhatsApp answer", () => sentTo(`Echo: bonjour ${marker}`) === 1);
    check(graph.sent.find((m) => m.body === `Echo: bonjour ${marker}`)?.replyTo === first, "the answer quotes the message, with the bearer token Graph checked");
    check(graph.reads.includes(first), "the message was marked read, with the typing indicator");

    process.stdout.write("Nextcloud Talk\n");
    const talkId = await nextcloud(`salut ${marker}`);
    await waitFor("the Talk answer", () => postedIn(`Echo: salut ${marker}`) === 1);
    const posted = talk.posted.find((m) => m.message === `Echo: salut ${marker}`);
    check(posted?.replyTo === Number(talkId), "the Talk answer, signed over random + message, replies to the message");

    process.stdout.write("a long answer\n");
    const paragraphs = Array.from({ length: 16 }, (_, i) => `Paragraph ${String(i + 1).padStart(2, "0")}. ${"The quick brown fox jumps over the lazy dog. ".repeat(14).trim()}`);
    await script({ answers: [codeAnswer(paragraphs.join("\n\n"))] });
    await whatsapp("tell me a long story");
    const parts = graph.sent.filter((m) => m.body.startsWith("Paragraph "));
    const numbers = () => parts.flatMap((m) => [...m.body.matchAll(/Paragraph (\d+)\./g)].map((match) => Number(match[1])));
    await waitFor("every part of the long answer", () => {
      parts.splice(0, parts.length, ...graph.sent.filter((m) => m.body.startsWith("Paragraph ")));
      return numbers().includes(paragraphs.length);
    });
    check(parts.length >= 3 && parts.every((m) => m.body.length <= 4096), `a ${paragraphs.join("\n\n").length}-character answer arrives in ${parts.length} parts of at most 4096`);
    check(numbers().join(",") === paragraphs.map((_, i) => i + 1).join(","), "the parts arrive in order, each paragraph once");

    process.stdout.write("restart between acceptance and delivery\n");
    await script({ delay_s: 6 });
    const inFlight = [await whatsapp(`survive ${marker}`), await nextcloud(`survive too ${marker}`)];
    // Stored and claimed by the running gateway, the agent waiting on the slow model.
    const database = new Database(gateway.databaseUrl.replace(/^file:/, ""), { readonly: true });
    const claimed = database.prepare(`SELECT count(*) AS n FROM "Turn" WHERE externalId IN (?, ?) AND state = 'received' AND claimedBy IS NOT NULL`);
    await waitFor("both turns to be claimed", () => (claimed.get(...inFlight) as { n: number }).n === 2);
    database.close();
    await sleep(500);
    await killService(gateway);
    check(sentTo(`Echo: survive ${marker}`) === 0 && postedIn(`Echo: survive too ${marker}`) === 0, "the gateway was killed (SIGKILL) before answering");
    await script({ delay_s: 0 });
    gateway = await startGateway({ ...gatewayOptions, databaseUrl: gateway.databaseUrl, name: "gateway-restarted" });
    await waitFor("the answers after the restart", () => sentTo(`Echo: survive ${marker}`) >= 1 && postedIn(`Echo: survive too ${marker}`) >= 1, 60_000);
    check(
      graph.sent.find((m) => m.body === `Echo: survive ${marker}`)?.replyTo === inFlight[0] &&
        talk.posted.find((m) => m.message === `Echo: survive too ${marker}`)?.replyTo === Number(inFlight[1]),
      "after the restart both answers arrive",
    );
    await sleep(3_000);
    check(sentTo(`Echo: survive ${marker}`) === 1 && postedIn(`Echo: survive too ${marker}`) === 1, "… once each (3 s later still once)");

    const bodies = graph.sent.map((m) => m.body);
    check(new Set(bodies).size === bodies.length, `no WhatsApp message was sent twice (${bodies.length} sent)`);
    const messages = talk.posted.map((m) => m.message);
    check(new Set(messages).size === messages.length, `no Talk message was posted twice (${messages.length} posted)`);
    const logs = readdirSync(logDir)
      .filter((name) => name.startsWith("gateway"))
      .map((name) => readFileSync(path.join(logDir, name), "utf8"))
      .join("\n");
    check(logs.includes("whatsapp.received") && !logs.includes(marker), "the gateway's logs (debug level) never contain message text");
    reportPassed("e2e channels");
  } catch (error) {
    reportFailed("e2e channels", error, logDir);
  } finally {
    await stopAll();
    await Promise.all([graph.close(), talk.close()]);
  }
}

main().catch(async (error: unknown) => {
  process.stderr.write(`e2e channels could not start: ${error instanceof Error ? error.message : String(error)}\n`);
  await stopAll();
  process.exit(1);
});
