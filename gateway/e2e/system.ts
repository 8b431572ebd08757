// `npm run e2e:system`: the whole system, each service a real process on a free
// loopback port: the fake Ollama and SearXNG (../agent/tests/fakes), the real
// agent, the real Gradio console, the gateway's production build; Meta's Graph
// API and Talk's OCS bot API are the test suite's fakes, in this process.
//
// One test per way the owner talks to the assistant: WhatsApp, Nextcloud Talk,
// the webchat in Chromium (with a web search), the Gradio console through
// gradio_client, and a message sent by the crontab line. Every one carries the
// same marker, which must then appear in no log of the agent, the gateway or
// Gradio (all at debug level). Every process started is stopped, also on a
// failure or a signal.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { chromium, type Browser } from "playwright-core";
import { startFakeGraph, type FakeGraph } from "../tests/support/fake-graph";
import { startFakeNextcloud, type FakeNextcloud } from "../tests/support/fake-nextcloud";
import { channelEnv } from "../tests/support/channel-env";
import { metaSignature, talkMessage, talkHeaders, textMessage, whatsappDelivery } from "../tests/support/wire";
import { check, passed, reportFailed, reportPassed, sleep, waitFor } from "./checks";
import { crontabLine, runCrontabLine } from "./crontab";
import {
  agentDir,
  chromiumArgs,
  chromiumPath,
  exitUnlessAgentAvailable,
  gatewayDir,
  postSigned,
  secret,
  startAgent,
  startFakeOllama,
  startFakeSearxng,
  startGateway,
  startGradio,
  stopAll,
  stopOnSignals,
  uv,
  type Service,
} from "./stack";

const resultsDir = path.join(gatewayDir, "e2e-results");
const logDir = path.join(resultsDir, "logs-system");
const owner = "33698765432";
const phoneNumberId = "106540352242922";
const room = "sy5t3m";
const marker = `MARKER-${randomUUID().slice(0, 8)}`;
/**
 * The services whose logs must never carry message text (the fakes' own logs
 * legitimately do), with events each must have logged: proof the right file
 * was read. The gateway has no debug-level log call; the Python services do.
 */
const eventsByService: Record<string, RegExp[]> = {
  agent: [/"event": "run_done"/, /"logger": "tools\.web_search"/, /"level": "debug"/],
  gateway: [/"event":"whatsapp\.received"/, /"event":"nextcloud\.received"/, /"event":"cron\.finished"/, /"event":"turn\.delivered"/],
  gradio: [/"event": "console_run_done"/, /"level": "debug"/],
};

const agentKey = secret();
const webchatToken = secret();
const cronSecret = secret();
const appSecret = randomUUID().replace(/-/g, "");
const botSecret = secret() + secret();
const accessToken = `EAAG${secret()}`;

// What the suite holds besides the process groups stack.ts stops.
let browser: Browser | undefined;
let gradioClient: ChildProcess | undefined;
const fakes: { close(): Promise<void> }[] = [];

async function cleanup(): Promise<void> {
  gradioClient?.kill("SIGKILL");
  await browser?.close().catch(() => undefined);
  await Promise.all(fakes.splice(0).map((fake) => fake.close()));
}

interface Stack {
  ollama: Service;
  searxng: Service;
  gradio: Service;
  gateway: Service & { databaseUrl: string };
  graph: FakeGraph;
  talk: FakeNextcloud;
}

async function startStack(): Promise<Stack> {
  const started = performance.now();
  process.stdout.write("starting fake Ollama, SearXNG, Graph and OCS; agent, Gradio and gateway…\n");
  const graph = await startFakeGraph({ accessToken, phoneNumberId });
  fakes.push(graph);
  const talk = await startFakeNextcloud({ secret: botSecret, tokens: [room] });
  fakes.push(talk);
  const [ollama, searxng] = await Promise.all([startFakeOllama(logDir), startFakeSearxng(logDir)]);
  const python = { ollamaUrl: ollama.url, searxngUrl: searxng.url, logDir, env: { LOG_LEVEL: "DEBUG" } };
  const [agent, gradio] = await Promise.all([startAgent({ ...python, apiKey: agentKey }), startGradio(python)]);
  const gateway = await startGateway({
    agentUrl: agent.url,
    agentApiKey: agentKey,
    webchatToken,
    ollamaUrl: ollama.url,
    logDir,
    env: {
      LOG_LEVEL: "debug",
      CRON_SECRET: cronSecret,
      ...channelEnv({ appSecret, accessToken, phoneNumberId, graphUrl: graph.url, allowedNumbers: owner, talkUrl: talk.url, botSecret }),
    },
  });
  process.stdout.write(`services up in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  return { ollama, searxng, gradio, gateway, graph, talk };
}

/** The console's answer to one message, asked by a gradio_client script as a developer would. */
function askGradio(url: string, message: string): Promise<{ role: string; content: string; metadata?: { title?: string } }[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(uv(), ["run", "--no-sync", "python", "-m", "tests.gradio_chat", url, message], { cwd: agentDir, stdio: ["ignore", "pipe", "pipe"] });
    gradioClient = child;
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      gradioClient = undefined;
      if (code === 0) resolve(JSON.parse(out) as { role: string; content: string }[]);
      else reject(new Error(`gradio_client exited with ${code}: ${err.slice(-500)}`));
    });
  });
}

async function run({ ollama, searxng, gradio, gateway, graph, talk }: Stack): Promise<void> {
  const script = (body: unknown) => fetch(`${ollama.url}/_fake/script`, { method: "POST", body: JSON.stringify(body) }).then((r) => r.json());
  const sentTo = (text: string) => graph.sent.filter((m) => m.to === owner && m.body.includes(text));

  process.stdout.write("WhatsApp\n");
  const wamid = `wamid.HBgLMzM2OTg3NjU0MzIVAgASGBQ${randomUUID().slice(0, 8).toUpperCase()}=`;
  const whatsappRaw = whatsappDelivery([{ messages: [textMessage(owner, wamid, `whatsapp ${marker}`)] }]);
  await postSigned(`${gateway.url}/api/webhook/whatsapp`, whatsappRaw, { "x-hub-signature-256": metaSignature(whatsappRaw, appSecret) });
  await waitFor("the WhatsApp answer", () => sentTo(`Echo: whatsapp ${marker}`).length > 0);
  check(sentTo(`Echo: whatsapp ${marker}`)[0]?.replyTo === wamid, "a signed WhatsApp delivery is answered at the fake Graph API, quoting the message");

  process.stdout.write("Nextcloud Talk\n");
  const talkRaw = talkMessage({ id: "4242", token: room, message: `talk ${marker}` });
  await postSigned(`${gateway.url}/api/webhook/nextcloud`, talkRaw, talkHeaders(talkRaw, botSecret));
  const talkAnswers = () => talk.posted.filter((m) => m.token === room && m.message === `Echo: talk ${marker}`);
  await waitFor("the Talk answer", () => talkAnswers().length > 0);
  check(talkAnswers()[0]?.replyTo === 4242, "a signed Talk note is answered at the fake OCS API, whose signature check it passed");

  process.stdout.write("webchat in Chromium, with a web search\n");
  // Paced so the live text is on the page for a few seconds: a busy machine's browser must not miss it.
  await script({
    delta_delay_s: 0.12,
    answers: [
      `Thought: I will search the web.\n<code>\nresults = web_search(query=${JSON.stringify(`python 3.13 ${marker}`)})\nfinal_answer("Found: " + results.splitlines()[0])\n</code>`,
    ],
  });
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(20_000);
  await page.goto(gateway.url);
  await page.waitForURL(/\/login$/);
  await page.locator("input[name=token]").fill(webchatToken);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByTestId("composer-input").waitFor();
  const session = (await page.context().cookies()).find((c) => c.name === "my_claw_session");
  check(session?.httpOnly === true && new URL(page.url()).pathname === "/", "the owner logs in to the webchat with the token");
  await page.getByTestId("composer-input").fill(`webchat ${marker}`);
  await page.getByTestId("composer-send").click();
  await page.getByTestId("live-text").waitFor();
  check(((await page.getByTestId("live-text").textContent()) ?? "").length > 0, "the model's output streams into the page");
  await page.getByTestId("message-assistant").filter({ hasText: "Found: 1. What's New In Python 3.13" }).waitFor();
  // The stored answer, whole: the fake SearXNG's first result is "What's New In Python 3.13".
  const conversationId = new URL(page.url()).searchParams.get("c") ?? "";
  const stored = (await (
    await fetch(`${gateway.url}/api/conversations/${encodeURIComponent(conversationId)}/messages`, { headers: { authorization: `Bearer ${webchatToken}` } })
  ).json()) as { messages?: { role: string; content: string }[] };
  const answer = stored.messages?.at(-1);
  check(answer?.role === "assistant" && answer.content === "Found: 1. What's New In Python 3.13", "the answer quotes the first search result's title");
  const searches = (await (await fetch(`${searxng.url}/_fake/requests`)).json()) as { query: string; format: string }[];
  check(
    searches.length === 1 && searches[0]?.query === `python 3.13 ${marker}` && searches[0].format === "json",
    "the agent's web_search reached the fake SearXNG with the model's query, asking for JSON",
  );
  await page.screenshot({ path: path.join(resultsDir, "system-webchat.png") });

  process.stdout.write("Gradio console\n");
  const messages = await askGradio(`${gradio.url}/`, `gradio ${marker}`);
  const final = messages.at(-1);
  check(final?.content === `Echo: gradio ${marker}` && !final.metadata?.title, "gradio_client gets the console's final answer");
  check(messages.some((m) => m.metadata?.title?.startsWith("🛠️ Step 1")), "… after the step panel");

  process.stdout.write("crontab\n");
  const owned = (route: string, init: RequestInit = {}) =>
    fetch(gateway.url + route, { ...init, headers: { authorization: `Bearer ${webchatToken}`, "content-type": "application/json" } });
  const created = await owned("/api/cron-jobs", {
    method: "POST",
    body: JSON.stringify({ name: "system e2e", schedule: "* * * * *", prompt: `cron ${marker}`, channel: "whatsapp", channelId: owner }),
  });
  check(created.status === 201, "a WhatsApp job is created through the management API");
  // Created "two minutes ago" (only the timestamp moves): the every-minute slot is due now.
  const database = new Database(gateway.databaseUrl.replace(/^file:/, ""));
  database.prepare(`UPDATE "CronJob" SET scheduleSince = ?`).run(new Date(Date.now() - 120_000).toISOString().replace("Z", "+00:00"));
  database.close();
  const line = crontabLine(`CRON_SECRET=${cronSecret}\nGATEWAY_PORT=${new URL(gateway.url).port}\n`);
  check((await runCrontabLine(line)) === 0, "the line make cron-install writes, run by sh, succeeds");
  await waitFor("the scheduled message", () => sentTo(`cron ${marker}`).length > 0);
  check(sentTo(`cron ${marker}`)[0]?.replyTo === undefined, "the job's answer is delivered to the owner on WhatsApp");

  process.stdout.write("once, and never in a log\n");
  await sleep(1_500);
  check(
    sentTo(`Echo: whatsapp ${marker}`).length === 1 && talkAnswers().length === 1 && sentTo(`cron ${marker}`).length === 1 && graph.sent.length === 2,
    "each channel delivered its answer exactly once",
  );
  const logs = Object.entries(eventsByService).map(([name, events]) => ({ name, events, text: readFileSync(path.join(logDir, `${name}.log`), "utf8") }));
  const missing = logs.flatMap((log) => log.events.filter((event) => !event.test(log.text)).map((event) => `${log.name}: ${event.source}`));
  check(missing.length === 0, `the agent, gateway and Gradio logs hold the turns' metadata (Python at debug level)${missing.length ? `; missing ${missing.join(", ")}` : ""}`);
  const leaked = logs.filter((log) => log.text.includes(marker)).map((log) => log.name);
  check(leaked.length === 0, `the marker sent through all five channels is in no log of the agent, gateway or Gradio${leaked.length ? ` (found in ${leaked.join(", ")})` : ""}`);
}

async function main(): Promise<void> {
  exitUnlessAgentAvailable("e2e system");
  rmSync(logDir, { recursive: true, force: true });
  stopOnSignals(cleanup);
  const started = performance.now();
  try {
    await run(await startStack());
    process.stdout.write(`finished in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    reportPassed("e2e system");
  } catch (error) {
    reportFailed("e2e system", error, logDir);
    process.stdout.write(`e2e system: ${passed()} passed, 1 failed\n`);
  } finally {
    await cleanup();
    await stopAll();
  }
}

void main();
