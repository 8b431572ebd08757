"use client";

import { useEffect, useState } from "react";
import { api, type HealthInfo } from "@/lib/client-api";

const REFRESH_MS = 30_000;
const colorByStatus = { ok: "bg-emerald-500", degraded: "bg-amber-500", down: "bg-red-500" } as const;

export function HealthBadge() {
  const [health, setHealth] = useState<HealthInfo | null>(null);

  useEffect(() => {
    let isMounted = true;
    const load = () => api.health().then((info) => isMounted && setHealth(info));
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      isMounted = false;
      clearInterval(timer);
    };
  }, []);

  const status = health?.status ?? "down";
  const details = health
    ? `agent ${health.agent} · ollama ${health.ollama} · db ${health.db} · searxng ${health.searxng}`
    : "gateway unreachable";
  return (
    <span
      data-testid="health-badge"
      data-status={health ? status : "unknown"}
      title={details}
      className="inline-flex items-center gap-1.5 rounded-full border border-zinc-200 px-2 py-0.5 text-xs dark:border-zinc-700"
    >
      <span className={`size-2 rounded-full ${health ? colorByStatus[status] : "bg-zinc-400"}`} />
      <span className="hidden sm:inline">{health ? status : "…"}</span>
    </span>
  );
}
