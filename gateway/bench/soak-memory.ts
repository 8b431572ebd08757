// The soak's memory figures: each service's resident memory, sampled every
// second for the peak.
import { readFileSync, readdirSync } from "node:fs";
import type { Service } from "../e2e/stack";
import { sleep } from "./shared";

/** Resident memory of a service: every process of its group (uv and python for the agent), in MiB. */
function groupRssMiB(service: Service): number {
  const group = service.process.pid;
  let kib = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command (which may hold spaces): state ppid pgrp …
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp !== group) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${entry}/status`, "utf8"));
      kib += Number(rss?.[1] ?? 0);
    } catch {
      // the process ended while being read
    }
  }
  return Math.round(kib / 102.4) / 10;
}

export interface Memory {
  gateway: number;
  agent: number;
}

/** The gateway's and the agent's memory, now and at its peak since the start or the last `resetPeak`. */
export class MemoryWatch {
  peak: Memory = { gateway: 0, agent: 0 };
  private readonly sampler: NodeJS.Timeout;

  constructor(
    private readonly gateway: Service,
    private readonly agent: Service,
  ) {
    this.sampler = setInterval(() => {
      this.peak = {
        gateway: Math.max(this.peak.gateway, groupRssMiB(gateway)),
        agent: Math.max(this.peak.agent, groupRssMiB(agent)),
      };
    }, 1_000);
  }

  now(): Memory {
    return { gateway: groupRssMiB(this.gateway), agent: groupRssMiB(this.agent) };
  }

  /** The memory once the services have had 5 s to settle. */
  async settled(): Promise<Memory> {
    await sleep(5_000);
    return this.now();
  }

  resetPeak(to: Memory): void {
    this.peak = { ...to };
  }

  stop(): void {
    clearInterval(this.sampler);
  }
}
