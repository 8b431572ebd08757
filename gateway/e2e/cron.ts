// `npm run e2e` (third part): proactive messages end to end. The real gateway
// (production build) and the real agent with its fake Ollama; Meta's Graph API
// is the test suite's fake. Two "Bonjour quotidien" jobs are created through
// the management API (webchat and WhatsApp), then /api/cron is called the way
// the crontab does: with the exact line scripts/cron-install.sh installs (run
// by sh, against a fake `crontab` that keeps the table in a file).
//
// A wrong secret gets 401 and runs nothing; a call at a due time delivers one
// message each and stores it; a second call in the same minute delivers nothing.
// Then headless Chromium (a phone) opens the Schedule page and the job's conversation.
//
// Reminders set in conversation: the agent runs with GATEWAY_URL on the gateway
// and its key. A WhatsApp "rappelle-moi" whose scripted model code calls
// schedule_message creates a one-shot job for that chat; a second one is
// created to be missed. Across a gateway restart (SIGKILL), with the first made
// due and the second older than REMINDER_GRACE_S (in the database), the crontab
// line run twice sends the first's text as written, once, without the model,
// and marks the second missed without sending it; the owner's next message
// (/reminders, which then lists neither) is answered with the missed one's
// notice on top, once. Then, with Meta refusing free-form messages (131047) and
// WHATSAPP_TEMPLATE_NAME set, a due reminder goes out once through the template.
import { randomUUID } from "node:crypto";
import path from "node:path";
import Database from "better-sqlite3";
import { chromium } from "playwright-core";
import { langOf, texts } from "../lib/commands/texts";
import { whatsappEnv } from "../tests/support/channel-env";
import { startFakeGraph } from "../tests/support/fake-graph";
import { metaSignature, textMessage, whatsappDelivery } from "../tests/support/wire";
import { crontabLine, runCrontabLine } from "./crontab";
import { check, readLogs, reportFailed, reportPassed, sleep, waitFor } from "./checks";
import {
  chromiumArgs,
  chromiumPath,
  exitUnlessAgentAvailable,
  freePort,
  gatewayDir,
  killService,
  postSigned,
  secret,
  startBackend,
  startGateway,
  stopAll,
  stopOnSignals,
} from "./stack";

const logDir = path.join(gatewayDir, "e2e-results", "logs-cron");
const owner = "33612345678";
const phoneNumberId = "106540352242922";
const marker = `NOLOG-${randomUUID().slice(0, 8)}`;
const reminderMarker = `NOLOG-${randomUUID().slice(0, 8)}`;
const timeZone = "Europe/Paris";

/** A job as GET /api/cron-jobs shows it. */
interface JobView {
  id: string;
  name: string;
  kind: string;
  channel: string;
  channelId: string;
  prompt: string;
  enabled: boolean;
  lastStatus: string | null;
  lastRun: string | null;
  nextRun: string | null;
  runAt: string | null;
  missedAt: string | null;
}

/** "2026-12-04T09:00": a local date-time in CRON_TIMEZONE, as the model reads it in the task's "Now:" line. */
const localDateTime = (date: Date) =>
  new Intl.DateTimeFormat("sv-SE", { timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }).format(date).replace(" ", "T");

/** The model's code for "remind me": schedule_message, then its result as the answer. */
const scheduleAnswer = (when: string, text: string) =>
  `Thought: I will set the reminder.\n<code>\nresult = schedule_message(when=${JSON.stringify(when)}, text=${JSON.stringify(text)})\nfinal_answer(result)\n</code>`;

async function main() {
  stopOnSignals();
  exitUnlessAgentAvailable("e2e cron");
  const webchatToken = secret();
  const cronSecret = secret();
  const accessToken = `EAAG${secret()}`;
  const appSecret = randomUUID().replace(/-/g, "");

  process.stdout.write("starting fake Graph, fake Ollama, agent and gateway…\n");
  const graph = await startFakeGraph({ accessToken, phoneNumberId });
  // The gateway's port is chosen first: the agent's schedule_message calls it back there (also after a restart).
  const gatewayPort = await freePort();
  const { ollama, gateway: backend } = await startBackend(logDir, { env: { GATEWAY_URL: `http://127.0.0.1:${gatewayPort}` } });
  const gatewayOptions = {
    ...backend,
    webchatToken,
    port: gatewayPort,
    env: {
      LOG_LEVEL: "debug",
      CRON_SECRET: cronSecret,
      CRON_TIMEZONE: timeZone,
      REMINDER_GRACE_S: "60",
      ...whatsappEnv({ appSecret, accessToken, phoneNumberId, graphUrl: graph.url, allowedNumbers: `+${owner}` }),
    },
  };
  let gateway = await startGateway(gatewayOptions);
  const port = String(gatewayPort);
  const owned = (route: string, init: RequestInit = {}) =>
    fetch(gateway.url + route, { ...init, headers: { authorization: `Bearer ${webchatToken}`, "content-type": "application/json" } });
  const sentCount = () => graph.sent.length;
  /** The job of that name as the management API stores it, if any. */
  const listedJobs = async () => ((await (await owned("/api/cron-jobs")).json()) as { jobs: JobView[] }).jobs;
  const storedJob = async (name: string) => (await listedJobs()).find((job) => job.name === name);
  const cronTurns = () => {
    const database = new Database(gateway.databaseUrl.replace(/^file:/, ""), { readonly: true });
    try {
      return (database.prepare(`SELECT count(*) AS n FROM "Turn" WHERE externalId LIKE 'cron:%'`).get() as { n: number }).n;
    } finally {
      database.close();
    }
  };

  try {
    process.stdout.write("jobs through the management API\n");
    const create = async (body: Record<string, unknown>) => {
      const response = await owned("/api/cron-jobs", { method: "POST", body: JSON.stringify(body) });
      if (response.status !== 201) throw new Error(`creating a job answered ${response.status}: ${await response.text()}`);
      return (await response.json()) as { id: string; channelId: string; nextRun: string };
    };
    const web = await create({ name: "Bonjour quotidien", schedule: "* * * * *", prompt: `Dis bonjour ${marker}`, channel: "webchat" });
    await create({ name: "Bonjour quotidien WhatsApp", schedule: "* * * * *", prompt: `Dis bonjour ${marker}`, channel: "whatsapp", channelId: `+${owner}` });
    const bad = await owned("/api/cron-jobs", { method: "POST", body: JSON.stringify({ name: "x", schedule: "0 9 * *", prompt: "p", channel: "webchat" }) });
    check(bad.status === 400 && ((await bad.json()) as { error: string }).error.includes("use 5"), "an invalid schedule is refused with 400 and a reason");
    const list = (await (await owned("/api/cron-jobs")).json()) as { timeZone: string; jobs: { nextRun: string }[] };
    check(list.timeZone === "Europe/Paris" && list.jobs.length === 2 && list.jobs.every((j) => j.nextRun.endsWith(":00.000Z")), "both jobs are listed with their next minute, in Europe/Paris");

    // Created "two minutes ago" (only the timestamp is moved, in the database): the every-minute slot is due now.
    const database = new Database(gateway.databaseUrl.replace(/^file:/, ""));
    database.prepare(`UPDATE "CronJob" SET scheduleSince = ?`).run(new Date(Date.now() - 120_000).toISOString().replace("Z", "+00:00"));
    database.close();
    // Both calls below must fall in the same minute.
    if (new Date().getSeconds() > 40) await sleep((61 - new Date().getSeconds()) * 1000);

    process.stdout.write("wrong secrets\n");
    const noHeader = await fetch(`${gateway.url}/api/cron`, { method: "POST" });
    check(noHeader.status === 401, "no X-Cron-Secret: 401");
    const wrongLine = crontabLine(`CRON_SECRET=${secret()}\nGATEWAY_PORT=${port}\n`);
    check((await runCrontabLine(wrongLine)) === 22, "the crontab line with a wrong secret: curl -f fails on the 401");
    await sleep(1_000);
    check(sentCount() === 0 && cronTurns() === 0, "… and nothing ran");

    process.stdout.write("a call at a due time\n");
    const line = crontabLine(`CRON_SECRET=${cronSecret}\nGATEWAY_PORT=${port}\n`);
    check(line.startsWith("* * * * * curl -fsS -X POST") && !line.includes(cronSecret), "make cron-install writes the every-minute line, without the secret itself");
    check((await runCrontabLine(line)) === 0, "the crontab line, run by sh, succeeds");
    await waitFor("the WhatsApp message", () => graph.sent.length >= 1);
    check(sentCount() === 1 && graph.sent[0]!.to === owner && graph.sent[0]!.body.includes("Dis bonjour"), "WhatsApp: one message to the owner");
    check(graph.sent[0]!.replyTo === undefined, "… quoting nothing (it answers no message)");
    const history = async () =>
      ((await (await owned(`/api/conversations/${web.channelId}/messages`)).json()) as { messages: { role: string; content: string }[] }).messages;
    await waitFor("the webchat answer", async () => (await history()).some((m) => m.role === "assistant"));
    const messages = await history();
    check(
      messages.length === 2 && messages[0]!.content.startsWith('[scheduled job "Bonjour quotidien"]') && messages[1]!.content.includes("Dis bonjour"),
      "webchat: the prompt, marked as the job's, and the answer are in the job's conversation",
    );
    const jobs = (await (await owned("/api/cron-jobs")).json()) as { jobs: { lastStatus: string; lastRun: string | null; lastDurationMs: number }[] };
    check(jobs.jobs.every((j) => j.lastStatus === "ok" && j.lastRun && j.lastDurationMs < 10_000), "both jobs record lastRun, status ok and a duration");

    process.stdout.write("a second call in the same minute\n");
    const again = await fetch(`${gateway.url}/api/cron`, { method: "POST", headers: { "x-cron-secret": cronSecret } });
    const summary = (await again.json()) as { ran: unknown[]; skipped: number };
    check(again.status === 200 && summary.ran.length === 0 && summary.skipped === 2, `runs nothing: ${JSON.stringify(summary)}`);
    await sleep(1_500);
    check(sentCount() === 1 && (await history()).length === 2 && cronTurns() === 2, "… and delivers nothing");

    process.stdout.write("the management page (a phone)\n");
    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
    try {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      page.setDefaultTimeout(20_000);
      await page.goto(`${gateway.url}/login`);
      await page.locator("input[name=token]").fill(webchatToken);
      await page.getByRole("button", { name: "Log in" }).click();
      await page.getByRole("button", { name: "Conversations" }).click();
      await page.getByTestId("cron-list-link").click();
      await page.waitForURL(/\/cron$/);
      await page.getByText("Bonjour quotidien WhatsApp").waitFor();
      check((await page.getByTestId("cron-timezone").textContent()) === "Europe/Paris", "the page lists the jobs with times in Europe/Paris");
      check(await page.getByText("error 131047", { exact: false }).first().isVisible(), "the WhatsApp job shows Meta's 24-hour rule (131047)");
      await page.screenshot({ path: path.join(gatewayDir, "e2e-results", "cron-page.png"), fullPage: true });

      // The form: the server's reason is shown; then create, run now, disable, delete.
      page.on("dialog", (dialog) => void dialog.accept());
      await page.getByRole("button", { name: "New job" }).click();
      const form = page.getByTestId("cron-form");
      await form.locator("input[name=name]").fill("Point du soir");
      await form.locator("input[name=schedule]").fill("0 19 * *");
      await form.locator("textarea[name=prompt]").fill("Résume ma journée");
      await form.getByRole("button", { name: "Create" }).click();
      await form.getByRole("alert").filter({ hasText: "use 5" }).waitFor();
      check(
        ((await form.getByRole("alert").textContent()) ?? "").includes("use 5") && (await storedJob("Point du soir")) === undefined,
        "the form shows why a schedule is refused",
      );
      await form.locator("input[name=schedule]").fill("0 19 * * *");
      await form.getByRole("button", { name: "Create" }).click();
      const card = page.locator("li", { hasText: "Point du soir" });
      await card.getByText("(Europe/Paris)").waitFor();
      check(await card.getByText("7:00 PM", { exact: false }).or(card.getByText("19:00", { exact: false })).first().isVisible(), "a new job shows its next run at 19:00 Paris time");
      await card.getByRole("button", { name: "Run now" }).click();
      await card.getByText("ok", { exact: true }).waitFor();
      const ran = await storedJob("Point du soir");
      check(ran?.lastStatus === "ok" && ran.lastRun !== null, "Run now runs it and shows ok");
      await card.getByRole("checkbox").uncheck();
      await card.getByText("never (disabled)").waitFor();
      const disabled = await storedJob("Point du soir");
      check(disabled?.enabled === false && !disabled.nextRun, "disabling it leaves no next run");
      await card.getByRole("button", { name: "Delete" }).click();
      await card.waitFor({ state: "detached" });
      check(
        (await storedJob("Point du soir")) === undefined && (await page.getByTestId("cron-jobs").locator("li").count()) === 2,
        "deleting it removes it from the list",
      );
      await page.goto(`${gateway.url}/?c=${encodeURIComponent(web.channelId)}`);
      await page.getByTestId("message-scheduled").getByText("Scheduled · Bonjour quotidien").waitFor();
      check(await page.getByTestId("message-assistant").first().isVisible(), "the chat shows the job's prompt as the job's, then the answer");
      await page.screenshot({ path: path.join(gatewayDir, "e2e-results", "cron-conversation.png") });
    } finally {
      await browser.close();
    }

    process.stdout.write("reminders set in conversation\n");
    // The every-minute jobs go: from here on a crontab call has only reminders to run, and /reminders only them to list.
    for (const job of await listedJobs()) {
      const response = await owned(`/api/cron-jobs/${job.id}`, { method: "DELETE" });
      if (response.status !== 204) throw new Error(`deleting ${job.name} answered ${response.status}`);
    }
    check((await listedJobs()).length === 0, "the every-minute jobs are deleted through the management API");
    let seq = 0;
    /** A WhatsApp message from the owner, posted as Meta signs it; its wamid. */
    const whatsapp = async (text: string) => {
      const id = `wamid.HBgLMzM2MTIzNDU2NzgVAgASGBQ${(++seq).toString().padStart(3, "0")}REM=`;
      const raw = whatsappDelivery([{ messages: [textMessage(owner, id, text)] }]);
      await postSigned(`${gateway.url}/api/webhook/whatsapp`, raw, { "x-hub-signature-256": metaSignature(raw, appSecret) });
      return id;
    };
    /** The gateway's WhatsApp answer to that message. */
    const answerTo = async (id: string) => {
      await waitFor(`the answer to ${id}`, () => graph.sent.some((m) => m.replyTo === id));
      return graph.sent.find((m) => m.replyTo === id)!.body;
    };
    const script = (body: unknown) => fetch(`${ollama.url}/_fake/script`, { method: "POST", body: JSON.stringify(body) }).then((r) => r.json());
    /** The model calls (finished by the fake Ollama) whose prompt holds `text`. */
    const modelCallsWith = async (text: string) =>
      ((await (await fetch(`${ollama.url}/_fake/requests`)).json()) as { path: string; body: { messages?: unknown[] } }[]).filter(
        (r) => r.path === "/api/chat" && JSON.stringify(r.body.messages ?? []).includes(text),
      ).length;
    /** Through the agent: the owner asks on WhatsApp, the model's code calls schedule_message(when, text). */
    const remind = async (text: string, at: Date) => {
      const when = localDateTime(at);
      await script({ answers: [scheduleAnswer(when, text)] });
      const answer = await answerTo(await whatsapp(`rappelle-moi : ${text}`));
      const match = /^Scheduled \(id (\S{6})\): next on (\S+ \S+) \(Europe\/Paris\)\. Tell the owner\.$/.exec(answer);
      const job = (await listedJobs()).find((j) => match && j.id.endsWith(match[1]!));
      return { when, answer, match, job };
    };

    const dueText = `Appeler le garage ${reminderMarker}`;
    const dueAt = new Date(Date.now() + 5 * 60_000);
    const due = await remind(dueText, dueAt);
    check(
      due.match?.[2] === due.when.replace("T", " "),
      `WhatsApp: the answer is the tool's result, "Scheduled" with the id and ${due.when} (${timeZone}): ${JSON.stringify(due.answer)}`,
    );
    const minute = (date: Date) => new Date(Math.floor(date.getTime() / 60_000) * 60_000).toISOString();
    check(
      due.job?.kind === "reminder" &&
        due.job.channel === "whatsapp" &&
        due.job.channelId.replace(/^\+/, "") === owner &&
        due.job.prompt === dueText &&
        due.job.runAt === minute(dueAt) &&
        due.job.nextRun === due.job.runAt &&
        due.job.enabled &&
        due.job.lastRun === null &&
        due.job.missedAt === null,
      `GET /api/cron-jobs: a one-shot job of kind reminder for that chat, runAt ${minute(dueAt)} (${due.when} in ${timeZone}), with the text as its prompt`,
    );
    const lateText = `Sortir les poubelles ${reminderMarker}`;
    const late = await remind(lateText, new Date(Date.now() + 10 * 60_000));
    check(late.job?.kind === "reminder" && late.job.prompt === lateText && late.job.runAt !== null, "a second reminder, to be missed, is set the same way");

    const { persona_lang: personaLang } = (await (await owned("/api/settings")).json()) as { persona_lang: string };
    const lang = langOf(personaLang);
    const t = texts[lang];
    const shown = new Intl.DateTimeFormat(lang === "fr" ? "fr-FR" : "en-GB", { timeZone, dateStyle: "medium", timeStyle: "short" });
    const expectedListing = t.reminders(
      [due.job, late.job]
        .sort((a, b) => (a.name < b.name ? -1 : 1))
        .map((job) => t.reminderLine(job.id.slice(-6), job.name, shown.format(new Date(job.runAt!)))),
      timeZone,
    );
    const before = await answerTo(await whatsapp("/reminders"));
    check(before === expectedListing, `WhatsApp: /reminders lists both, with their ids and next runs: ${JSON.stringify(before)}`);

    process.stdout.write("a gateway restart, then the crontab line twice\n");
    await killService(gateway);
    gateway = await startGateway({ ...gatewayOptions, databaseUrl: gateway.databaseUrl, name: "gateway-restarted" });
    // Made due without waiting: the first a few seconds ago (within REMINDER_GRACE_S), the second 5 minutes ago (past it).
    const dueRunAt = new Date(Date.now() - 5_000);
    const lateRunAt = new Date(Date.now() - 5 * 60_000);
    const writable = new Database(gateway.databaseUrl.replace(/^file:/, ""));
    const moveRunAt = writable.prepare(`UPDATE "CronJob" SET runAt = ? WHERE id = ?`);
    moveRunAt.run(dueRunAt.toISOString().replace("Z", "+00:00"), due.job.id);
    moveRunAt.run(lateRunAt.toISOString().replace("Z", "+00:00"), late.job.id);
    writable.close();
    const moved = await listedJobs();
    check(
      moved.find((j) => j.id === due.job!.id)?.runAt === dueRunAt.toISOString() && moved.find((j) => j.id === late.job!.id)?.runAt === lateRunAt.toISOString(),
      "after the restart, the restarted gateway reads both reminders with runAt moved into the past",
    );
    const askedBefore = await modelCallsWith(reminderMarker);
    const sentBefore = graph.sent.length;
    check((await runCrontabLine(line)) === 0, "the crontab line succeeds");
    await waitFor("the reminder's text on WhatsApp", () => graph.sent.some((m) => m.body === dueText));
    check((await runCrontabLine(line)) === 0, "… and again");
    await sleep(1_500);
    const delivered = graph.sent.slice(sentBefore);
    check(
      delivered.length === 1 && delivered[0]!.to === owner && delivered[0]!.body === dueText && delivered[0]!.replyTo === undefined,
      `WhatsApp: the due reminder's text, as written, once, to the owner, quoting nothing: ${JSON.stringify(delivered.map((m) => m.body))}`,
    );
    check(!graph.sent.some((m) => m.body === lateText), "the reminder past REMINDER_GRACE_S is not sent (its text only ever went out in the /reminders list)");
    check((await modelCallsWith(reminderMarker)) === askedBefore, `the fake Ollama got no model request for either (still ${askedBefore}, the two that set them)`);
    const after = await listedJobs();
    const sentJob = after.find((j) => j.id === due.job!.id);
    const missedJob = after.find((j) => j.id === late.job!.id);
    check(
      sentJob?.lastStatus === "ok" && sentJob.lastRun !== null && sentJob.nextRun === null && sentJob.missedAt === null,
      "GET /api/cron-jobs: the sent reminder ran once (status ok), with no next run",
    );
    check(
      typeof missedJob?.missedAt === "string" && !missedJob.enabled && missedJob.lastRun === null && missedJob.nextRun === null,
      `GET /api/cron-jobs: the late one shows missedAt (${missedJob?.missedAt}), disabled, never run`,
    );
    const { conversations } = (await (await owned("/api/conversations")).json()) as { conversations: { id: string; channel: string; channelId: string }[] };
    const chat = conversations.find((c) => c.channel === "whatsapp" && c.channelId.replace(/^\+/, "") === owner);
    const stored = ((await (await owned(`/api/conversations/${chat?.id}/messages`)).json()) as { messages: { role: string; content: string; model: string | null }[] }).messages;
    const storedReminder = stored.filter((m) => m.content === dueText);
    check(
      storedReminder.length === 1 && storedReminder[0]!.role === "assistant" && storedReminder[0]!.model === "none" && !stored.some((m) => m.content === lateText),
      "the WhatsApp conversation stores the reminder once, as the gateway's message (model none); the missed one not at all",
    );
    const afterwards = await answerTo(await whatsapp("/reminders"));
    // The owner's next message is where they hear of the missed one: its due time (CRON_TIMEZONE) and its words, on top.
    const localTime = (date: Date, zone: string) =>
      new Intl.DateTimeFormat("sv-SE", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }).format(date);
    const missedNotice = lang === "fr"
      ? `⚠️ Rappel manqué (la machine était éteinte le ${localTime(lateRunAt, timeZone)}) : ${lateText}`
      : `⚠️ Reminder missed (the machine was off at ${localTime(lateRunAt, timeZone)}): ${lateText}`;
    check(
      afterwards === `${missedNotice}\n\n${t.noReminders}`,
      `WhatsApp: the next message's answer starts with the missed reminder's notice, then /reminders lists neither: ${JSON.stringify(afterwards.replace(reminderMarker, "…"))}`,
    );
    const onceMore = await answerTo(await whatsapp("/reminders"));
    check(onceMore === t.noReminders, "… and the notice is told once: the next answer has none");

    process.stdout.write("outside WhatsApp's 24-hour window, through the template\n");
    const templateText = `Rendez-vous dentiste\n- apporter la carte ${reminderMarker}`;
    const templated = await remind(templateText, new Date(Date.now() + 10 * 60_000));
    await killService(gateway);
    gateway = await startGateway({
      ...gatewayOptions,
      env: { ...gatewayOptions.env, WHATSAPP_TEMPLATE_NAME: "claw_reminder", WHATSAPP_TEMPLATE_LANG: "fr" },
      databaseUrl: gateway.databaseUrl,
      name: "gateway-template",
    });
    const dueAgain = new Database(gateway.databaseUrl.replace(/^file:/, ""));
    dueAgain.prepare(`UPDATE "CronJob" SET runAt = ? WHERE id = ?`).run(new Date(Date.now() - 5_000).toISOString().replace("Z", "+00:00"), templated.job!.id);
    dueAgain.close();
    // Meta refuses free-form messages to this owner now: the last message was more than 24 hours ago.
    graph.failTo(owner, { code: 131047, message: "(#131047) Re-engagement message" });
    const textsBefore = graph.sent.length;
    check((await runCrontabLine(line)) === 0 && (await runCrontabLine(line)) === 0, "the crontab line, twice");
    await waitFor("the template message", () => graph.templates.length >= 1);
    await sleep(1_000);
    graph.failTo(owner, undefined);
    const [template] = graph.templates;
    check(
      graph.templates.length === 1 &&
        template?.to === owner &&
        template.name === "claw_reminder" &&
        template.lang === "fr" &&
        JSON.stringify(template.params) === JSON.stringify([`Rendez-vous dentiste · - apporter la carte ${reminderMarker}`]) &&
        graph.sent.length === textsBefore,
      "refused with 131047, the reminder goes out once through WHATSAPP_TEMPLATE_NAME, its text as the one body parameter on one line; no free-form message",
    );
    const templatedJob = (await listedJobs()).find((j) => j.id === templated.job!.id);
    check(templatedJob?.lastStatus === "ok", `GET /api/cron-jobs: that run is ok (${templatedJob?.lastStatus})`);

    const logs = readLogs(logDir, "gateway");
    check(
      logs.includes("cron.finished") && logs.includes("reminder.created") && ![marker, reminderMarker, cronSecret].some((secretText) => logs.includes(secretText)),
      "the logs (debug level) carry neither prompts, answers, reminders' texts nor the secret",
    );
    reportPassed("e2e cron");
  } catch (error) {
    reportFailed("e2e cron", error, logDir);
  } finally {
    await stopAll();
    await graph.close();
  }
}

main().catch(async (error: unknown) => {
  process.stderr.write(`e2e cron could not start: ${error instanceof Error ? error.message : String(error)}\n`);
  await stopAll();
  process.exit(1);
});
