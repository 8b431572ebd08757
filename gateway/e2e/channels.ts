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
// The owner's chat commands (/help, /model, /stop) are answered by the gateway
// on both channels without asking the model; a path such as /etc/hosts is not
// a command; /stop ends a slow turn at once and its answer never arrives.
// A file the agent sends back (send_file) reaches WhatsApp as an uploaded image
// after the text, Talk as a note, the webchat through /api/attachments; one
// over the agent's limit is refused with a reason the owner reads.
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { attachmentNotes } from "../lib/attachments/notes";
import { langOf, texts } from "../lib/commands/texts";
import { startFakeGraph } from "../tests/support/fake-graph";
import { startFakeNextcloud } from "../tests/support/fake-nextcloud";
import { channelEnv } from "../tests/support/channel-env";
import { metaSignature, talkMessage, talkHeaders, textMessage, whatsappDelivery } from "../tests/support/wire";
import { check, readLogs, reportFailed, reportPassed, sleep, waitFor } from "./checks";
import { exitUnlessAgentAvailable, gatewayDir, killService, postSigned, secret, startBackend, startGateway, stopAll, stopOnSignals } from "./stack";

const logDir = path.join(gatewayDir, "e2e-results", "logs");
const owner = "16505551234";
const phoneNumberId = "106540352242922";
const room = "n3xtc10ud";
const marker = `NOLOG-${randomUUID().slice(0, 8)}`;

const codeAnswer = (text: string) => `Thought: answering.\n<code>\nfinal_answer(${JSON.stringify(text)})\n</code>`;

interface StoredMessage {
  role: string;
  content: string;
  model: string | null;
  turnState: string | null;
  turnError: string | null;
}

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
  // The folder send_file reads a screenshot from, and a limit low enough to refuse a 2 MB file.
  const screenshotDir = mkdtempSync(path.join(tmpdir(), "my-claw-shots-"));
  const attachmentLimit = 1024 * 1024;
  const { ollama, gateway: backend } = await startBackend(logDir, {
    env: { AGENT_MAX_OUTPUT_TOKENS: "3072", SCREENSHOT_DIR: screenshotDir, AGENT_MAX_ATTACHMENT_BYTES: String(attachmentLimit) },
  });
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
    await postSigned(`${gateway.url}/api/webhook/whatsapp`, raw, { "x-hub-signature-256": metaSignature(raw, appSecret) });
    const elapsed = performance.now() - started;
    if (elapsed > 1_000) throw new Error(`the WhatsApp webhook took ${Math.round(elapsed)} ms`);
    return id;
  }
  async function nextcloud(text: string): Promise<string> {
    const id = String(2000 + ++seq);
    const raw = talkMessage({ id, token: room, message: text });
    await postSigned(`${gateway.url}/api/webhook/nextcloud`, raw, talkHeaders(raw, botSecret));
    return id;
  }
  /** The gateway's own API, as the owner's scripts call it. */
  const owned = async <T>(route: string): Promise<T> => {
    const response = await fetch(gateway.url + route, { headers: { authorization: `Bearer ${gatewayOptions.webchatToken}` } });
    if (response.status !== 200) throw new Error(`GET ${route} answered ${response.status}`);
    return (await response.json()) as T;
  };
  const conversationOf = async (channel: string, channelId: string) => {
    const { conversations } = await owned<{ conversations: { id: string; channel: string; channelId: string; model: string | null }[] }>("/api/conversations");
    const found = conversations.find((c) => c.channel === channel && c.channelId.replace(/^\+/, "") === channelId);
    if (!found) throw new Error(`no ${channel} conversation for ${channelId} in GET /api/conversations`);
    return found;
  };
  const storedIn = async (conversationId: string) => (await owned<{ messages: StoredMessage[] }>(`/api/conversations/${conversationId}/messages`)).messages;
  /** The prompts of the model calls the fake Ollama finished (it records a call once it has answered it). */
  const modelCalls = async (): Promise<{ model: string; prompt: string }[]> => {
    const records = (await (await fetch(`${ollama.url}/_fake/requests`)).json()) as { path: string; body: { model?: string; messages?: unknown[] } }[];
    return records.filter((r) => r.path === "/api/chat").map((r) => ({ model: r.body.model ?? "", prompt: JSON.stringify(r.body.messages ?? []) }));
  };
  /** The model calls that had `text` as the owner's current message. */
  const callsFor = async (text: string) => (await modelCalls()).filter((call) => call.prompt.includes(`Current message from the owner:\\n${text}`));
  const asked = async (text: string) => (await callsFor(text)).length;

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

    process.stdout.write("chat commands\n");
    const { persona_lang: personaLang } = await owned<{ persona_lang: string }>("/api/settings");
    const lang = langOf(personaLang);
    const t = texts[lang];
    const heading = lang === "fr" ? "Commandes :" : "Commands:";
    const helpId = await whatsapp("/help");
    await waitFor("the WhatsApp /help answer", () => graph.sent.some((m) => m.replyTo === helpId));
    const helpSent = graph.sent.find((m) => m.replyTo === helpId)?.body ?? "";
    check(
      helpSent.startsWith(`${heading}\n- /help`) && helpSent === t.help && sentTo(t.help) === 1,
      `WhatsApp: /help is answered with the command list ("${heading}…", persona language ${personaLang})`,
    );
    const talkHelpId = await nextcloud("/help");
    await waitFor("the Talk /help answer", () => talk.posted.some((m) => m.replyTo === Number(talkHelpId)));
    const helpPosted = talk.posted.find((m) => m.replyTo === Number(talkHelpId))?.message ?? "";
    check(helpPosted.startsWith(`${heading}\n- /help`) && helpPosted === t.help && postedIn(t.help) === 1, `Talk: /help is answered with the command list ("${heading}…")`);
    const whatsappChat = await conversationOf("whatsapp", owner);
    const talkChat = await conversationOf("nextcloud", room);
    const helpExchanges = [...(await storedIn(whatsappChat.id)), ...(await storedIn(talkChat.id))].filter(
      (m, i, all) => (m.role === "user" && m.content === "/help") || (m.role === "assistant" && all[i - 1]?.content === "/help"),
    );
    check(
      (await asked("/help")) === 0 &&
        helpExchanges.length === 4 &&
        helpExchanges.every((m) => (m.role === "user" ? m.turnState === "delivered" : m.model === "none" && m.content === t.help)),
      "the fake Ollama got no model request for either /help; both are stored as delivered exchanges answered by the gateway (model none)",
    );

    const pathId = await whatsapp("/etc/hosts");
    await waitFor("the answer to /etc/hosts", () => sentTo("Echo: /etc/hosts") === 1);
    check(
      (await asked("/etc/hosts")) === 1 && graph.sent.find((m) => m.body === "Echo: /etc/hosts")?.replyTo === pathId,
      'a path like "/etc/hosts" is no command: it reaches the model (its prompt) and the model\'s answer is delivered',
    );

    check(talkChat.model !== "fast", `the Talk conversation starts on ${talkChat.model ?? "the default model"}`);
    const modelId = await nextcloud("/model fast");
    await waitFor("the Talk /model answer", () => talk.posted.some((m) => m.replyTo === Number(modelId)));
    check(talk.posted.find((m) => m.replyTo === Number(modelId))?.message === t.modelSet("fast"), `Talk: /model fast answers "${t.modelSet("fast")}"`);
    const [talkAfter, whatsappAfter] = [await conversationOf("nextcloud", room), await conversationOf("whatsapp", owner)];
    check(
      talkAfter.id === talkChat.id && talkAfter.model === "fast" && whatsappAfter.model === whatsappChat.model,
      "GET /api/conversations shows the Talk conversation on fast, the WhatsApp one unchanged",
    );
    const { categories } = await owned<{ categories: Record<string, { model: string | null }> }>("/api/models");
    const onFast = `which model ${marker}`;
    await nextcloud(onFast);
    await waitFor("the answer on the fast model", () => postedIn(`Echo: ${onFast}`) === 1);
    const fastCalls = await callsFor(onFast);
    check(
      fastCalls.length > 0 && categories.fast?.model && categories.fast.model !== categories.smart?.model && fastCalls.every((call) => call.model === categories.fast?.model),
      `the Talk conversation's next message runs on fast (${categories.fast?.model}, not smart's ${categories.smart?.model})`,
    );

    const slowDelayS = 12;
    const slow = `take your time ${marker}`;
    await script({ delay_s: slowDelayS });
    const slowStarted = performance.now();
    const slowId = await whatsapp(slow);
    const watch = new Database(gateway.databaseUrl.replace(/^file:/, ""), { readonly: true });
    const running = watch.prepare(`SELECT count(*) AS n FROM "Turn" WHERE externalId = ? AND state = 'received' AND claimedBy IS NOT NULL`);
    await waitFor("the slow turn to be claimed", () => (running.get(slowId) as { n: number }).n === 1);
    watch.close();
    await sleep(500); // the turn's agent call under way, the agent waiting on the slow model
    const stopId = await whatsapp("/stop");
    await waitFor("the /stop answer", () => graph.sent.some((m) => m.replyTo === stopId));
    const stopElapsedMs = performance.now() - slowStarted;
    await script({ delay_s: 0 });
    check(
      graph.sent.find((m) => m.replyTo === stopId)?.body === t.stopped(1, 0) && stopElapsedMs < (slowDelayS - 4) * 1000 && (await asked(slow)) === 0,
      `/stop answers "${t.stopped(1, 0)}" ${(stopElapsedMs / 1000).toFixed(1)} s after the slow message, the ${slowDelayS} s model still running`,
    );
    const slowTurn = async () => (await storedIn(whatsappChat.id)).find((m) => m.role === "user" && m.content === slow);
    await waitFor("the slow turn to end", async () => (await slowTurn())?.turnState === "failed", 10_000);
    const stopped = await slowTurn();
    check(
      stopped?.turnState === "failed" && stopped.turnError === "conflict:chat: Stopped by the owner with /stop.",
      `the slow turn ended failed: "${stopped?.turnError}" (GET /api/conversations/{id}/messages)`,
    );
    await sleep(Math.max(0, slowStarted + (slowDelayS + 4) * 1000 - performance.now()));
    const storedAfter = await storedIn(whatsappChat.id);
    check(
      graph.sent.every((m) => m.replyTo !== slowId && !m.body.includes(slow)) &&
        !storedAfter.some((m) => m.role === "assistant" && m.content.includes(slow)) &&
        (await slowTurn())?.turnState === "failed",
      `no answer to the slow message was stored or delivered, ${slowDelayS + 4} s after it (past the slow model's end)`,
    );

    process.stdout.write("files sent back\n");
    const shot = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...randomBytes(30_000)]);
    const shotPath = path.join(screenshotDir, "screen.png");
    writeFileSync(shotPath, shot);
    const caption = `Capture ${marker}`;
    const sendShot = `Thought: I send the screenshot.\n<code>\nsend_file(path=${JSON.stringify(shotPath)}, caption=${JSON.stringify(caption)})\nfinal_answer("Voici la capture.")\n</code>`;
    const uploadsBefore = graph.uploads.length;
    await script({ answers: [sendShot] });
    const shotId = await whatsapp(`envoie-moi l'écran ${marker}`);
    await waitFor("the screenshot on WhatsApp", () => graph.sentMedia.length === 1);
    const upload = graph.uploads[uploadsBefore];
    const uploadRequest = graph.requests.find((r) => r.path === `/${phoneNumberId}/media`);
    check(
      graph.uploads.length === uploadsBefore + 1 &&
        upload?.type === "image/png" &&
        upload.fileType === "image/png" &&
        upload.fileName === "screen.png" &&
        Buffer.from(upload.bytes).equals(Buffer.from(shot)) &&
        uploadRequest?.headers.authorization === `Bearer ${accessToken}` &&
        String(uploadRequest.headers["content-type"]).startsWith("multipart/form-data; boundary="),
      `WhatsApp: POST /${phoneNumberId}/media, multipart with messaging_product=whatsapp, type=image/png and the file's exact ${shot.byteLength} bytes as screen.png, with the bearer token`,
    );
    check(
      JSON.stringify(graph.sentMedia[0]) === JSON.stringify({ to: owner, type: "image", mediaId: upload?.id, caption }),
      `then POST /${phoneNumberId}/messages type image with the uploaded id and the caption`,
    );
    const textAt = graph.requests.findIndex((r) => (r.body as { text?: { body?: string } })?.text?.body === "Voici la capture.");
    const uploadAt = graph.requests.indexOf(uploadRequest!);
    check(sentTo("Voici la capture.") === 1 && textAt >= 0 && textAt < uploadAt && graph.sent.find((m) => m.body === "Voici la capture.")?.replyTo === shotId, "the answer's text went first, quoting the message, once");
    const shotMessages = await owned<{ messages: (StoredMessage & { attachments?: { id: string; name: string; size: number }[] })[] }>(
      `/api/conversations/${(await conversationOf("whatsapp", owner)).id}/messages`,
    );
    const stored = shotMessages.messages.find((m) => m.role === "assistant" && m.content === "Voici la capture.")?.attachments?.[0];
    const served = stored ? await fetch(`${gateway.url}/api/attachments/${stored.id}`, { headers: { authorization: `Bearer ${gatewayOptions.webchatToken}` } }) : undefined;
    const servedBytes = served ? Buffer.from(await served.arrayBuffer()) : Buffer.alloc(0);
    const anonymous = stored ? await fetch(`${gateway.url}/api/attachments/${stored.id}`) : undefined;
    check(
      stored?.name === "screen.png" && stored.size === shot.byteLength && served?.status === 200 && servedBytes.equals(Buffer.from(shot)) && anonymous?.status === 401,
      "the file is stored with the answer: GET /api/attachments/<id> gives the owner its bytes (401 without the token)",
    );

    await script({ answers: [sendShot] });
    await nextcloud(`et sur Talk ${marker}`);
    const talkNote = attachmentNotes[lang].inWebchat({ name: "screen.png", size: shot.byteLength, caption });
    await waitFor("the screenshot's note on Talk", () => postedIn(`Voici la capture.\n\n${talkNote}`) === 1);
    check(postedIn(`Voici la capture.\n\n${talkNote}`) === 1, `Talk (no file upload for bots): the answer then "${talkNote.replace(marker, "…")}"`);

    const bigPath = path.join(screenshotDir, "recording.bin");
    writeFileSync(bigPath, randomBytes(2 * attachmentLimit));
    await script({ answers: [`Thought: I try to send it.\n<code>\nfinal_answer(send_file(path=${JSON.stringify(bigPath)}))\n</code>`] });
    const mediaBefore = graph.sentMedia.length;
    const bigId = await whatsapp(`envoie l'enregistrement ${marker}`);
    await waitFor("the answer about the large file", () => graph.sent.some((m) => m.replyTo === bigId));
    const refusal = graph.sent.find((m) => m.replyTo === bigId)?.body ?? "";
    check(
      /too large|larger|over/i.test(refusal) && refusal.includes("MB") && graph.sentMedia.length === mediaBefore,
      `a 2 MB file over AGENT_MAX_ATTACHMENT_BYTES (1 MB) is not sent; the owner reads why: "${refusal.slice(0, 120)}"`,
    );

    const bodies = graph.sent.map((m) => m.body);
    check(new Set(bodies).size === bodies.length, `no WhatsApp message was sent twice (${bodies.length} sent)`);
    const messages = talk.posted.map((m) => m.message);
    check(new Set(messages).size === messages.length, `no Talk message was posted twice (${messages.length} posted)`);
    const logs = readLogs(logDir, "gateway", "agent");
    check(
      logs.includes("whatsapp.received") && logs.includes("attachment.fetched") && !logs.includes(marker) && !logs.includes("screen.png"),
      "the gateway's (debug level) and the agent's logs never contain message text, a file's name or its caption",
    );
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
