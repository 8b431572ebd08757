import "server-only";
import { getEnv } from "./env";
import { pingDatabase } from "./db/client";

// Public health report: component states and latencies only, never URLs,
// paths, versions or secrets.

type ComponentState = "ok" | "down";
const components = ["db", "agent", "ollama", "searxng"] as const;
type Component = (typeof components)[number];

export interface HealthReport {
  status: "ok" | "degraded" | "down";
  db: ComponentState;
  agent: ComponentState;
  ollama: ComponentState;
  searxng: ComponentState;
  latency_ms: Record<Component, number>;
}

const PROBE_TIMEOUT_MS = 2_000;

async function httpOk(url: string, check: (body: unknown) => boolean = () => true): Promise<void> {
  const response = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS), cache: "no-store" });
  const body: unknown = (response.headers.get("content-type") ?? "").includes("json") ? await response.json() : await response.text();
  if (!response.ok || !check(body)) throw new Error(`probe answered ${response.status}`);
}

function withTimeout(work: Promise<void>): Promise<void> {
  return Promise.race([
    work,
    new Promise<void>((_, reject) => setTimeout(() => reject(new Error("probe timed out")), PROBE_TIMEOUT_MS).unref()),
  ]);
}

async function probe(run: () => Promise<void>): Promise<{ state: ComponentState; latency: number }> {
  const started = performance.now();
  const state = await withTimeout(run()).then(
    () => "ok" as const,
    () => "down" as const,
  );
  return { state, latency: Math.round(performance.now() - started) };
}

export async function checkHealth(): Promise<HealthReport> {
  const env = getEnv();
  const probes: Record<Component, () => Promise<void>> = {
    db: pingDatabase,
    agent: () => httpOk(`${env.agentUrl}/health`, (body) => (body as { status?: unknown })?.status === "ok"),
    ollama: () => httpOk(`${env.ollamaBaseUrl}/api/tags`),
    searxng: () => httpOk(`${env.searxngUrl}/healthz`),
  };
  const results = await Promise.all(components.map((name) => probe(probes[name])));
  const byName = Object.fromEntries(components.map((name, i) => [name, results[i]!])) as Record<
    Component,
    { state: ComponentState; latency: number }
  >;
  const isServing = byName.db.state === "ok" && byName.agent.state === "ok";
  const isComplete = components.every((name) => byName[name].state === "ok");
  return {
    status: isComplete ? "ok" : isServing ? "degraded" : "down",
    db: byName.db.state,
    agent: byName.agent.state,
    ollama: byName.ollama.state,
    searxng: byName.searxng.state,
    latency_ms: Object.fromEntries(components.map((name) => [name, byName[name].latency])) as Record<Component, number>,
  };
}
