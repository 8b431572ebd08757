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
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { chromium } from "playwright-core";
import { startFakeGraph } from "../tests/support/fake-graph";
import { crontabLine, runCrontabLine } from "./crontab";
import { check, reportFailed, reportPassed, sleep, waitFor } from "./checks";
import { chromiumArgs, chromiumPath, exitUnlessAgentAvailable, gatewayDir, secret, startBackend, startGateway, stopAll, stopOnSignals } from "./stack";

const logDir = path.join(gatewayDir, "e2e-results", "logs-cron");
const owner = "33612345678";
const phoneNumberId = "106540352242922";
const marker = `NOLOG-${randomUUID().slice(0, 8)}`;

async function main() {
  stopOnSignals();
  exitUnlessAgentAvailable("e2e cron");
  const webchatToken = secret();
  const cronSecret = secret();
  const accessToken = `EAAG${secret()}`;

  process.stdout.write("starting fake Graph, fake Ollama, agent and gateway…\n");
  const graph = await startFakeGraph({ accessToken, phoneNumberId });
  const { gateway: backend } = await startBackend(logDir);
  const gateway = await startGateway({
    ...backend,
    webchatToken,
    env: {
      LOG_LEVEL: "debug",
      CRON_SECRET: cronSecret,
      CRON_TIMEZONE: "Europe/Paris",
      WHATSAPP_ACCESS_TOKEN: accessToken,
      WHATSAPP_PHONE_NUMBER_ID: phoneNumberId,
      WHATSAPP_API_URL: graph.url,
    },
  });
  const port = new URL(gateway.url).port;
  const owned = (route: string, init: RequestInit = {}) =>
    fetch(gateway.url + route, { ...init, headers: { authorization: `Bearer ${webchatToken}`, "content-type": "application/json" } });
  const sentCount = () => graph.sent.length;
  /** The job of that name as the management API stores it, if any. */
  const storedJob = async (name: string) =>
    ((await (await owned("/api/cron-jobs")).json()) as { jobs: { name: string; enabled: boolean; lastStatus: string | null; lastRun: string | null; nextRun: string | null }[] }).jobs.find(
      (job) => job.name === name,
    );
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

    const logs = readdirSync(logDir)
      .filter((name) => name.startsWith("gateway"))
      .map((name) => readFileSync(path.join(logDir, name), "utf8"))
      .join("\n");
    check(logs.includes("cron.finished") && !logs.includes(marker) && !logs.includes(cronSecret), "the logs (debug level) carry neither prompts, answers nor the secret");
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
