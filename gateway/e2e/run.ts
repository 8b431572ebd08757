// `npm run e2e`: headless Chromium against the real gateway (production build),
// the real agent and the agent's fake Ollama. Needs Debian's chromium
// (/usr/bin/chromium, or CHROMIUM_PATH) and ../agent synced (uv); builds the
// gateway first when its sources changed.
//
// Logs in, sends a message and watches it stream, refreshes and finds the
// history, changes the persona and checks it reached the model's prompt. Then a
// second gateway against the scripted fake agent (tests/support/fake-agent.ts):
// the model's thinking shows while the turn streams and is not part of the
// answer; an answer the agent could not finish carries the note. A chat
// command typed in the composer (/help) is answered by the gateway, not the model.
// Files sent with an answer show as an inline image and a download.
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { langOf, texts } from "../lib/commands/texts";
import { startFakeAgent } from "../tests/support/fake-agent";
import { check, passed } from "./checks";
import { agentAvailable, chromiumArgs, chromiumPath, gatewayDir, secret, startAgent, startFakeOllama, startGateway, stopAll, stopOnSignals } from "./stack";

const resultsDir = path.join(gatewayDir, "e2e-results");

interface OllamaRecord {
  path: string;
  body: { messages?: { role: string; content: unknown }[] };
}

async function fakeOllama(url: string, route: string, body?: unknown): Promise<unknown> {
  // /_fake/reset takes no body: the fake does not read one, and leftover bytes
  // on its keep-alive connection would corrupt the next request.
  const init: RequestInit = body === undefined ? {} : { method: "POST", body: body === null ? undefined : JSON.stringify(body) };
  const response = await fetch(url + route, init);
  return response.json();
}

async function send(page: Page, text: string) {
  await page.getByTestId("composer-input").fill(text);
  await page.getByTestId("composer-send").click();
}

async function logIn(page: Page, url: string, token: string) {
  await page.goto(url);
  await page.locator("input[name=token]").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByTestId("composer-input").waitFor();
}

/**
 * The agent's `thinking` events and `finished: false`, which the fake Ollama cannot
 * script: a second gateway against the gateway's own fake agent (tests/support),
 * which holds the stream after the thinking until the block has been seen.
 */
async function thinkingAndUnfinished(browser: Browser, logDir: string) {
  process.stdout.write("thinking and an unfinished answer (scripted agent)\n");
  const agent = await startFakeAgent();
  const token = secret();
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  let release = () => {};
  try {
    const gateway = await startGateway({ agentUrl: agent.url, webchatToken: token, logDir, name: "gateway-scripted" });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    await logIn(page, gateway.url, token);

    const thought = "The owner asks for flights; checking the first airline.";
    // The persona's language is French by default; the note names the steps.
    const UNFINISHED = "⏹ Arrêté après 5 étapes, avant la fin (limite d'étapes ou de temps).";
    const held = new Promise<void>((resolve) => (release = resolve));
    agent.reply = () => ({
      thinking: ["The owner asks for flights; ", "checking the first airline."],
      holdAfterThinking: held,
      deltas: ["Two flights found so far."],
      response: "Two flights found so far.",
      finished: false,
      steps: 5,
    });
    await send(page, "find me flights");
    const thinking = page.getByTestId("live-thinking");
    await thinking.filter({ hasText: thought }).waitFor();
    check(
      ((await thinking.textContent()) ?? "").includes(thought) && (await page.getByTestId("live-turn").count()) === 1,
      "the model's thinking shows in the live view while the turn streams",
    );
    check((await thinking.getAttribute("open")) !== null, "the thinking block is open while the model only thinks");
    await thinking.locator("summary").click();
    check((await thinking.getAttribute("open")) === null, "the thinking block collapses on a click");
    check((await page.getByTestId("message-assistant").count()) === 0, "no answer is shown while the agent still thinks");
    await page.screenshot({ path: path.join(resultsDir, "chat-thinking.png"), fullPage: true });
    release();

    const answer = page.getByTestId("message-assistant").filter({ hasText: "Two flights found so far." });
    await answer.waitFor();
    await page.getByTestId("live-turn").waitFor({ state: "detached" });
    check((await page.getByTestId("live-thinking").count()) === 0, "the thinking goes away when the answer arrives");
    const text = (await answer.textContent()) ?? "";
    check(text.includes(UNFINISHED), "an answer the agent could not finish carries the note");
    check(!text.includes("checking the first airline"), "the thinking is not part of the answer");
    await page.screenshot({ path: path.join(resultsDir, "chat-unfinished.png"), fullPage: true });

    await page.reload();
    const again = page.getByTestId("message-assistant").filter({ hasText: "Two flights found so far." });
    await again.waitFor();
    const storedText = (await again.textContent()) ?? "";
    check(storedText.includes(UNFINISHED) && !storedText.includes("checking the first airline"), "after a refresh: the note kept, no thinking");

    process.stdout.write("files sent back (scripted agent)\n");
    // A real PNG (the page itself, 40×30), so the browser has to decode it.
    const png = await page.screenshot({ clip: { x: 0, y: 0, width: 40, height: 30 } });
    const notes = "first line\nsecond line\n";
    agent.reply = () => ({
      response: "Here is the screen and the notes.",
      attachments: [
        { id: "e2e-shot-000001", name: "screen.png", mime: "image/png", caption: "The screen", bytes: png },
        { id: "e2e-notes-000001", name: "notes.txt", mime: "text/plain", bytes: Buffer.from(notes) },
      ],
    });
    await send(page, "send me the screen and my notes");
    const files = page.getByTestId("message-assistant").filter({ hasText: "Here is the screen and the notes." }).getByTestId("attachment");
    await files.first().waitFor();
    const image = files.locator("img");
    await page.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>("[data-testid=attachment] img");
      return img !== null && img.complete && img.naturalWidth > 0;
    });
    check(
      (await image.evaluate((img) => [(img as HTMLImageElement).naturalWidth, (img as HTMLImageElement).naturalHeight].join("x"))) === "40x30" &&
        (await image.getAttribute("alt")) === "The screen",
      "the webchat shows the image inline (decoded, 40×30, fetched through the session), its caption as alt text",
    );
    const link = files.locator("a[download]");
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    const downloaded = readFileSync((await download.path())!, "utf8");
    check(download.suggestedFilename() === "notes.txt" && downloaded === notes, "any other file is a download with its name and exact bytes");
    await page.screenshot({ path: path.join(resultsDir, "chat-files.png"), fullPage: true });
    await page.reload();
    await page.getByTestId("attachment").first().waitFor();
    check((await page.getByTestId("attachment").count()) === 2, "after a refresh both files are still shown (stored with the answer)");
  } finally {
    release();
    await context.close();
    await agent.close();
  }
}

async function main() {
  stopOnSignals();
  if (!agentAvailable()) {
    process.stderr.write("e2e: ../agent/main.py or its fake Ollama is missing; nothing to run against\n");
    process.exit(2);
  }
  mkdirSync(resultsDir, { recursive: true });
  const logDir = path.join(resultsDir, "logs");
  const agentKey = secret();
  const token = secret();

  process.stdout.write("starting fake Ollama, agent and gateway…\n");
  const ollama = await startFakeOllama(logDir);
  const agent = await startAgent({ ollamaUrl: ollama.url, apiKey: agentKey, logDir });
  const gateway = await startGateway({ agentUrl: agent.url, agentApiKey: agentKey, webchatToken: token, ollamaUrl: ollama.url, logDir });

  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } }); // a phone
  page.setDefaultTimeout(20_000);
  const owned = async <T>(route: string): Promise<T> => (await fetch(gateway.url + route, { headers: { authorization: `Bearer ${token}` } })).json() as Promise<T>;
  const sessionCookie = async () => (await page.context().cookies()).find((c) => c.name === "my_claw_session");
  try {
    process.stdout.write("login\n");
    await page.goto(gateway.url);
    await page.waitForURL(/\/login$/);
    check(new URL(page.url()).pathname === "/login" && (await page.locator("input[name=token]").isVisible()), "an anonymous visit lands on /login");
    await page.locator("input[name=token]").fill("not-the-token");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").filter({ hasText: "Wrong token" }).waitFor();
    check(
      /^Wrong token\. .*WEBCHAT_TOKEN/.test((await page.locator("form").getByRole("alert").textContent()) ?? "") &&
        new URL(page.url()).pathname === "/login" &&
        !(await sessionCookie()),
      "a wrong token is refused with a clear message",
    );
    await page.locator("input[name=token]").fill(token);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByTestId("composer-input").waitFor();
    const session = await sessionCookie();
    check(session?.httpOnly && session.sameSite === "Strict", "the session cookie is httpOnly and SameSite=Strict");

    process.stdout.write("health and models\n");
    await page.locator('[data-testid=health-badge][data-status="degraded"], [data-testid=health-badge][data-status="ok"]').waitFor();
    const health = (await (await fetch(`${gateway.url}/api/health`)).json()) as Record<string, string>;
    check(health.agent === "ok" && health.db === "ok" && health.ollama === "ok", "the health badge reports the agent, db and Ollama up");
    await page.locator("[data-testid=model-select] option", { hasText: "qwen3:8b" }).first().waitFor({ state: "attached" });
    const agentModels = (await (await fetch(`${agent.url}/models`, { headers: { authorization: `Bearer ${agentKey}` } })).json()) as {
      categories: Record<string, { model: string | null }>;
      installed: string[];
    };
    const options = await page.locator("[data-testid=model-select] option").evaluateAll((nodes) => nodes.map((n) => `${(n as HTMLOptionElement).value}=${n.textContent}`));
    const expected = [
      ...Object.entries(agentModels.categories).flatMap(([name, info]) => (info.model ? [`${name}=${name} · ${info.model}`] : [])),
      ...agentModels.installed.map((name) => `${name}=${name}`),
    ];
    check(expected.length > 0 && expected.every((option) => options.includes(option)), "the model selector lists the agent's models");

    process.stdout.write("chat and streaming\n");
    await fakeOllama(ollama.url, "/_fake/reset", null);
    await fakeOllama(ollama.url, "/_fake/script", { delta_delay_s: 0.12 });
    await send(page, "bonjour e2e");
    await page.getByTestId("step-indicator").waitFor();
    check(/^(Thinking…|Writing…|Step \d+)/.test((await page.getByTestId("step-indicator").textContent()) ?? ""), "a live indicator shows while the agent works");
    await page.getByTestId("live-text").waitFor();
    const partial = (await page.getByTestId("live-text").textContent()) ?? "";
    check(partial.length > 0, "the agent's output streams in before the answer");
    await page.getByTestId("message-assistant").filter({ hasText: "Echo: bonjour e2e" }).waitFor();
    const answers = await page.getByTestId("message-assistant").allTextContents();
    check(answers.length === 1 && answers[0]!.startsWith("Echo: bonjour e2e"), "the answer appears");
    await page.getByTestId("live-turn").waitFor({ state: "detached" });
    check(page.url().includes("?c="), "the conversation id is in the URL");
    const conversationId = new URL(page.url()).searchParams.get("c");
    /** The chat's messages as shown, in order: `user:…` and `assistant:…`. */
    const shown = () =>
      page
        .locator("[data-testid=message-user], [data-testid=message-assistant]")
        .evaluateAll((nodes) => nodes.map((n) => `${n.getAttribute("data-testid")?.replace("message-", "")}:${n.textContent}`));

    process.stdout.write("refresh keeps the history\n");
    await page.reload();
    await page.getByTestId("message-assistant").filter({ hasText: "Echo: bonjour e2e" }).waitFor();
    await page.getByTestId("message-user").filter({ hasText: "bonjour e2e" }).waitFor();
    const afterRefresh = await shown();
    check(
      afterRefresh.length === 2 && afterRefresh[0] === "user:bonjour e2e" && afterRefresh[1]!.startsWith("assistant:Echo: bonjour e2e"),
      "after a refresh the history is still there",
    );

    process.stdout.write("persona\n");
    await page.getByTestId("settings-link").click();
    await page.locator("input[name=persona_name]").waitFor();
    check((await page.locator("select[name=persona_lang]").inputValue()) === "fr", "the language defaults to French");
    await page.locator("input[name=persona_name]").fill("Zorglub");
    await page.locator("textarea[name=system_prompt]").fill("Réponds toujours comme un pirate.");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
    const persona = await owned<Record<string, string>>("/api/settings");
    check(
      persona.persona_name === "Zorglub" && persona.system_prompt === "Réponds toujours comme un pirate." && persona.persona_lang === "fr",
      "the persona is saved",
    );
    await page.getByRole("link", { name: /Back to the chat/ }).click();
    await page.getByTestId("message-assistant").filter({ hasText: "Echo: bonjour e2e" }).waitFor();
    check(
      new URL(page.url()).searchParams.get("c") === conversationId && (await shown()).length === 2,
      "coming back from the settings reopens the conversation",
    );
    await fakeOllama(ollama.url, "/_fake/reset", null);
    await send(page, "qui es-tu ?");
    await page.getByTestId("message-assistant").filter({ hasText: "Echo: qui es-tu ?" }).waitFor();
    const requests = (await fakeOllama(ollama.url, "/_fake/requests")) as OllamaRecord[];
    const prompts = requests
      .filter((r) => r.path === "/api/chat")
      .map((r) => JSON.stringify(r.body.messages ?? []))
      .join("\n");
    check(prompts.includes("Zorglub"), "the persona's name reached the model's prompt");
    check(prompts.includes("comme un pirate"), "the persona's system prompt reached the model's prompt");
    check(prompts.includes("French"), "the persona's language reached the model's prompt");

    check(prompts.includes("Echo: bonjour e2e"), "the earlier exchange went along as history");

    process.stdout.write("a chat command\n");
    await fakeOllama(ollama.url, "/_fake/reset", null);
    const lang = langOf(persona.persona_lang ?? "fr");
    const help = texts[lang].help;
    const heading = lang === "fr" ? "Commandes :" : "Commands:";
    await send(page, "/help");
    const helpAnswer = page.getByTestId("message-assistant").filter({ hasText: heading });
    await helpAnswer.waitFor();
    await page.getByTestId("live-turn").waitFor({ state: "detached" });
    // Rendered as Markdown: the heading, then one list item a command, each exactly its line of the help text.
    const items = (await helpAnswer.locator(".markdown li").allInnerTexts()).map((item) => item.trim());
    const expectedItems = help.split("\n").slice(1).map((line) => line.replace(/^- /, ""));
    const lastShown = (await shown()).slice(-2);
    check(
      lastShown[0] === "user:/help" && lastShown[1]?.startsWith(`assistant:${heading}`) && JSON.stringify(items) === JSON.stringify(expectedItems),
      `/help typed in the composer shows the command list as the answer ("${heading}…", one line a command)`,
    );
    const { messages: stored } = await owned<{ messages: { role: string; content: string; model: string | null }[] }>(`/api/conversations/${conversationId}/messages`);
    check(
      stored.at(-2)?.content === "/help" && stored.at(-1)?.role === "assistant" && stored.at(-1)?.content === help && stored.at(-1)?.model === "none",
      "the /help exchange is stored in the conversation, answered by the gateway (model none)",
    );
    const helpRequests = ((await fakeOllama(ollama.url, "/_fake/requests")) as OllamaRecord[]).filter(
      (r) => r.path === "/api/chat" && JSON.stringify(r.body.messages ?? []).includes("Current message from the owner:\\n/help"),
    );
    check(helpRequests.length === 0, "the agent's fake Ollama got no model request for /help");
    await page.screenshot({ path: path.join(resultsDir, "chat-phone.png"), fullPage: true });

    process.stdout.write("markdown and the conversation list (desktop)\n");
    await page.setViewportSize({ width: 1280, height: 800 });
    const markdown = "**bold** text\n\n- first\n- second\n\n```py\nprint(1)\n```\n\n[a link](https://example.org)";
    await fakeOllama(ollama.url, "/_fake/script", {
      answers: [`Thought: formatted.\n<code>\nfinal_answer(${JSON.stringify(markdown)})\n</code>`],
      delta_delay_s: 0,
    });
    await page.getByTestId("new-conversation").click();
    await send(page, "format something");
    const answer = page.getByTestId("message-assistant").last();
    await answer.locator("strong", { hasText: "bold" }).waitFor();
    check((await answer.locator("li").count()) === 2, "lists render as Markdown");
    check((await answer.locator("pre code").textContent())?.includes("print(1)"), "code blocks render as Markdown");
    check((await answer.locator("a").getAttribute("target")) === "_blank", "links open in a new tab");
    await page.screenshot({ path: path.join(resultsDir, "chat-markdown.png"), fullPage: true });
    const list = page.getByTestId("conversation-list").locator("li");
    check((await list.count()) === 2, "the list shows both conversations");
    page.once("dialog", (dialog) => void dialog.accept());
    await list.filter({ hasText: "format something" }).getByRole("button", { name: "Delete conversation" }).click();
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=conversation-list] li").length === 1);
    const { conversations } = await owned<{ conversations: { id: string }[] }>("/api/conversations");
    check(
      (await list.filter({ hasText: "format something" }).count()) === 0 && conversations.length === 1 && conversations[0]!.id === conversationId,
      "a conversation can be deleted from the list",
    );
    await page.screenshot({ path: path.join(resultsDir, "chat-desktop.png"), fullPage: true });

    await thinkingAndUnfinished(browser, logDir);
    process.stdout.write(`e2e: ${passed()} passed, 0 failed\n`);
  } catch (error) {
    await page.screenshot({ path: path.join(resultsDir, "failure.png"), fullPage: true }).catch(() => undefined);
    process.stderr.write(`e2e failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.stderr.write(`screenshot and service logs in ${resultsDir}\n`);
    process.exitCode = 1;
  } finally {
    await browser.close();
    await stopAll();
  }
}

main().catch(async (error: unknown) => {
  process.stderr.write(`e2e could not start: ${error instanceof Error ? error.message : String(error)}\n`);
  await stopAll();
  process.exit(1);
});
