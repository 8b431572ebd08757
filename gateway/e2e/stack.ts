// Starts the real services for the end-to-end tests and the benchmark: the fake
// Ollama and SearXNG, the real agent and Gradio console (from ../agent, through
// uv), and the gateway's production build. Each runs in its own process group,
// stopped by its own id.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import { applyMigrations } from "../lib/migrations";

export const gatewayDir = process.cwd();
export const agentDir = path.resolve(gatewayDir, "../agent");
export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const chromiumArgs = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"];

export interface Service {
  name: string;
  url: string;
  process: ChildProcess;
  logFile: string;
}

const started: Service[] = [];

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export function secret(): string {
  return randomBytes(24).toString("hex");
}

export function uv(): string {
  if (process.env.UV) return process.env.UV;
  const local = path.join(homedir(), ".local/bin/uv");
  return existsSync(local) ? local : "uv";
}

function launch(name: string, command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; logDir: string }) {
  mkdirSync(options.logDir, { recursive: true });
  const logFile = path.join(options.logDir, `${name}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  return { child, logFile };
}

export async function waitForHttp(url: string, timeoutMs = 60_000, isReady: (status: number) => boolean = (s) => s < 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      if (isReady(response.status)) return;
      last = `status ${response.status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
}

function track(name: string, url: string, child: ChildProcess, logFile: string): Service {
  const service = { name, url, process: child, logFile };
  started.push(service);
  child.once("exit", (code, signal) => {
    if (!stopping && !stoppedOnPurpose.has(child)) process.stderr.write(`${name} exited early (code ${code}, signal ${signal}); see ${logFile}\n`);
  });
  return service;
}

export function agentAvailable(): boolean {
  return existsSync(path.join(agentDir, "main.py")) && existsSync(path.join(agentDir, "tests/fakes/ollama.py"));
}

/** Ends a suite with exit code 2 when ../agent is not there to run against. */
export function exitUnlessAgentAvailable(suite: string): void {
  if (agentAvailable()) return;
  process.stderr.write(`${suite}: ../agent/main.py or its fakes are missing; nothing to run against\n`);
  process.exit(2);
}

/**
 * A fake from ../agent/tests/fakes, run as `python -m tests.fakes.<module> --port <port>`, which prints
 * `READY <port>`. Port 0 picks a free one; a given port brings a killed fake back where it was.
 */
async function startFake(name: string, module: string, logDir: string, port = 0): Promise<Service> {
  const { child, logFile } = launch(name, uv(), ["run", "--no-sync", "python", "-m", `tests.fakes.${module}`, "--port", String(port)], {
    cwd: agentDir,
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
    logDir,
  });
  const service = track(name, "", child, logFile);
  const readyPort = await new Promise<number>((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not print READY; see ${logFile}`)), 60_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      const match = /READY (\d+)/.exec(buffer);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once("exit", () => reject(new Error(`${name} exited; see ${logFile}`)));
  });
  service.url = `http://127.0.0.1:${readyPort}`;
  return service;
}

export const startFakeOllama = (logDir: string, port?: number) => startFake("fake-ollama", "ollama", logDir, port);
export const startFakeSearxng = (logDir: string) => startFake("fake-searxng", "searxng", logDir);

/** An empty folder for MY_CLAW_ENV_DIR, so a Python service reads no .env files from the checkout. */
function emptyEnvDir(): string {
  return mkdtempSync(path.join(tmpdir(), "my-claw-env-"));
}

export interface AgentOptions {
  ollamaUrl: string;
  apiKey: string;
  logDir: string;
  /** Where web_search goes; by default a closed port. */
  searxngUrl?: string;
  /** LOG_LEVEL and the like. */
  env?: Record<string, string>;
  /** A restart where the gateway expects it; a free port by default. */
  port?: number;
  /** The log file's name, so a restarted agent keeps the first one's log. */
  name?: string;
}

export async function startAgent(options: AgentOptions): Promise<Service> {
  const port = options.port ?? (await freePort());
  const { child, logFile } = launch(options.name ?? "agent", uv(), ["run", "--no-sync", "python", "main.py"], {
    cwd: agentDir,
    env: {
      ...process.env,
      ...options.env,
      MY_CLAW_ENV_DIR: emptyEnvDir(),
      AGENT_HOST: "127.0.0.1",
      AGENT_PORT: String(port),
      AGENT_API_KEY: options.apiKey,
      OLLAMA_BASE_URL: options.ollamaUrl,
      SEARXNG_URL: options.searxngUrl ?? `http://127.0.0.1:${await freePort()}`,
      ZAI_API_KEY: "",
      PYTHONUNBUFFERED: "1",
    },
    logDir: options.logDir,
  });
  const service = track(options.name ?? "agent", `http://127.0.0.1:${port}`, child, logFile);
  await waitForHttp(`${service.url}/health`, 120_000, (status) => status === 200);
  return service;
}

/** The Gradio console (`python gradio_app.py`): the agent in-process, on its own free port. */
export async function startGradio(options: Omit<AgentOptions, "apiKey">): Promise<Service> {
  const port = await freePort();
  const { child, logFile } = launch("gradio", uv(), ["run", "--no-sync", "python", "gradio_app.py"], {
    cwd: agentDir,
    env: {
      ...process.env,
      ...options.env,
      MY_CLAW_ENV_DIR: emptyEnvDir(),
      GRADIO_PORT: String(port),
      OLLAMA_BASE_URL: options.ollamaUrl,
      SEARXNG_URL: options.searxngUrl ?? `http://127.0.0.1:${await freePort()}`,
      ZAI_API_KEY: "",
      PYTHONUNBUFFERED: "1",
    },
    logDir: options.logDir,
  });
  const service = track("gradio", `http://127.0.0.1:${port}`, child, logFile);
  await waitForHttp(`${service.url}/`, 120_000, (status) => status === 200);
  return service;
}

export interface GatewayOptions {
  agentUrl: string;
  agentApiKey?: string;
  webchatToken: string;
  ollamaUrl?: string;
  logDir: string;
  /** Channel variables and the like. */
  env?: Record<string, string>;
  /** Start on an existing database (a restart) instead of a new one. */
  databaseUrl?: string;
  /** The log file's name, so a restarted gateway keeps the first one's log. */
  name?: string;
  /** A port chosen beforehand (the agent's GATEWAY_URL names it; a restart comes back on it); a free one by default. */
  port?: number;
}

/**
 * The fake Ollama and the real agent on it, under a fresh API key; `gateway` holds the options that point a
 * gateway at both. `agentOptions` starts the agent again where it was (with `port` and `name`).
 */
export async function startBackend(logDir: string, agent: Pick<AgentOptions, "env"> = {}) {
  const ollama = await startFakeOllama(logDir);
  const agentOptions: AgentOptions = { ollamaUrl: ollama.url, apiKey: secret(), logDir, ...agent };
  const service = await startAgent(agentOptions);
  const gateway = { agentUrl: service.url, agentApiKey: agentOptions.apiKey, ollamaUrl: ollama.url, logDir };
  return { ollama, agent: service, agentOptions, gateway };
}

/** Builds the gateway when a source is newer than the last build. */
export function ensureBuild(): void {
  const result = spawnSync(process.execPath, [path.join(gatewayDir, "scripts/build-if-stale.mjs")], { cwd: gatewayDir, stdio: "inherit" });
  if (result.status !== 0) throw new Error("the gateway build failed");
}

/**
 * A migrated database in a scratch folder, and the production server on a free
 * port, started as `npm run start` does (scripts/start.mjs: the PID serves).
 */
export async function startGateway(options: GatewayOptions): Promise<Service & { databaseUrl: string }> {
  ensureBuild();
  const databaseUrl = options.databaseUrl ?? `file:${path.join(mkdtempSync(path.join(tmpdir(), "my-claw-stack-")), "gateway.db")}`;
  const scratch = path.dirname(databaseUrl.replace(/^file:/, ""));
  await applyMigrations(databaseUrl);
  const port = options.port ?? (await freePort());
  const { child, logFile } = launch(options.name ?? "gateway", process.execPath, [path.join(gatewayDir, "scripts/start.mjs")], {
    cwd: gatewayDir,
    env: {
      ...process.env,
      ...options.env,
      GATEWAY_PORT: String(port),
      NODE_ENV: "production",
      NEXT_TELEMETRY_DISABLED: "1",
      MY_CLAW_ENV_DIR: scratch, // no .env files from the checkout
      DATABASE_URL: databaseUrl,
      AGENT_URL: options.agentUrl,
      AGENT_API_KEY: options.agentApiKey ?? "",
      WEBCHAT_TOKEN: options.webchatToken,
      OLLAMA_BASE_URL: options.ollamaUrl ?? `http://127.0.0.1:${await freePort()}`,
      SEARXNG_URL: `http://127.0.0.1:${await freePort()}`,
      LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
    },
    logDir: options.logDir,
  });
  const service = track(options.name ?? "gateway", `http://127.0.0.1:${port}`, child, logFile);
  await waitForHttp(`${service.url}/api/health`, 60_000, (status) => status === 200 || status === 503);
  return { ...service, databaseUrl };
}

/**
 * Any other process a suite needs (a second writer on the database…), in its own
 * process group, stopped with the services if it is still running. It is
 * expected to end by itself: its exit is not reported as early.
 */
export function startProcess(name: string, command: string, args: string[], options: { logDir: string; env?: NodeJS.ProcessEnv }): Service {
  const { child, logFile } = launch(name, command, args, { cwd: gatewayDir, env: options.env ?? process.env, logDir: options.logDir });
  stoppedOnPurpose.add(child);
  const service = track(name, "", child, logFile);
  child.once("exit", () => {
    const index = started.indexOf(service);
    if (index >= 0) started.splice(index, 1);
  });
  return service;
}

let stopping = false;
const stoppedOnPurpose = new Set<ChildProcess>();

function stop(service: Service, signal: NodeJS.Signals): Promise<void> {
  return new Promise<void>((resolve) => {
    const pid = service.process.pid;
    if (pid === undefined || service.process.exitCode !== null || service.process.signalCode !== null) return resolve();
    const timer = setTimeout(() => {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }, 5_000);
    service.process.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      process.kill(-pid, signal);
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/** Kills one service at once, as a crash or a power cut would (SIGKILL: no clean shutdown). */
export async function killService(service: Service): Promise<void> {
  stoppedOnPurpose.add(service.process);
  const index = started.indexOf(service);
  if (index >= 0) started.splice(index, 1);
  await stop(service, "SIGKILL");
}

export async function stopAll(): Promise<void> {
  stopping = true;
  await Promise.all(started.splice(0).map((service) => stop(service, "SIGTERM")));
}

/**
 * Ctrl-C, kill or a closed terminal: `cleanup` (the suite's own resources), then
 * every started process group, then exit. A `finally` never runs on a signal.
 */
export function stopOnSignals(cleanup: () => Promise<void> = async () => undefined): void {
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      process.stderr.write(`${signal}: stopping every service\n`);
      void cleanup()
        .catch(() => undefined)
        .then(stopAll)
        .finally(() => process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1)));
    });
  }
}

/** A signed webhook delivery, posted as the channel's server does; anything but 200 stops the suite. */
export async function postSigned(url: string, raw: string, headers: Record<string, string>): Promise<void> {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: raw });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${new URL(url).pathname} answered ${response.status} ${body.slice(0, 200)}`);
}
