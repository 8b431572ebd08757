// Starts the real services for the end-to-end test and the benchmark: the fake
// Ollama and the real agent (from ../agent, through uv), and the gateway's
// production build. Each runs in its own process group, stopped by its own id.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import { applyMigrations } from "../lib/migrations";

export const gatewayDir = process.cwd();
export const agentDir = path.resolve(gatewayDir, "../agent");

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

function uv(): string {
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

export async function startFakeOllama(logDir: string): Promise<Service> {
  const { child, logFile } = launch("fake-ollama", uv(), ["run", "--no-sync", "python", "-m", "tests.fakes.ollama", "--port", "0"], {
    cwd: agentDir,
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
    logDir,
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error(`fake Ollama did not print READY; see ${logFile}`)), 60_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      const match = /READY (\d+)/.exec(buffer);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once("exit", () => reject(new Error(`fake Ollama exited; see ${logFile}`)));
  });
  return track("fake-ollama", `http://127.0.0.1:${port}`, child, logFile);
}

export async function startAgent(options: { ollamaUrl: string; apiKey: string; logDir: string }): Promise<Service> {
  const port = await freePort();
  const { child, logFile } = launch("agent", uv(), ["run", "--no-sync", "python", "main.py"], {
    cwd: agentDir,
    env: {
      ...process.env,
      AGENT_HOST: "127.0.0.1",
      AGENT_PORT: String(port),
      AGENT_API_KEY: options.apiKey,
      OLLAMA_BASE_URL: options.ollamaUrl,
      SEARXNG_URL: `http://127.0.0.1:${await freePort()}`,
      ZAI_API_KEY: "",
      PYTHONUNBUFFERED: "1",
    },
    logDir: options.logDir,
  });
  const service = track("agent", `http://127.0.0.1:${port}`, child, logFile);
  await waitForHttp(`${service.url}/health`, 120_000, (status) => status === 200);
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
  const port = await freePort();
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
