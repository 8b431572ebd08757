// `make soak`: the whole assistant under sustained load, against a fake model.
//
// Every service is a real process: the fake Ollama (../agent/tests/fakes), the
// real agent, the gateway's production build; the fake Graph API and fake
// Nextcloud run in this process (soak-stack.ts). For SOAK_SECONDS (60), open
// loop (soak-load.ts):
//   - SOAK_WEBHOOK_RATE (200) signed webhook deliveries per second, one message
//     each, from SOAK_SENDERS (50) WhatsApp senders, every fifth one a Nextcloud
//     Talk message instead;
//   - SOAK_STREAMS (50) webchat streams, each posting its next message as soon
//     as the previous answer ended, in its own conversation; they open one after
//     the other over the first STREAM_RAMP_MS, not all in the same millisecond.
// A warm-up phase with the same load (SOAK_WARMUP_SECONDS, as long as the main
// one) comes first, so the baseline is a process that has already been through
// it all: the memory of each service after the warm-up has drained, compared
// with its memory after the main phase has drained (same run, same machine;
// soak-memory.ts).
// Figures: acknowledgement latency p50/p99, time to the webchat's first event,
// throughput, memory before/peak/after, and every message accounted for: the
// answers counted at the fake channels and in the database (lost, duplicated;
// soak-count.ts).
// Writes soak.json and soak.md (soak-report.ts) to BENCH_REPORT_DIR; exits 1
// when an answer is lost or duplicated or memory grew past the limit.
import { stopAll, stopOnSignals } from "../e2e/stack";
import { RATE, SECONDS, STREAMS, WARMUP_SECONDS } from "./soak-config";
import { countAnswers, countRefusals } from "./soak-count";
import { soakLoad } from "./soak-load";
import { MemoryWatch } from "./soak-memory";
import { exactlyOnce, memoryOk, soakMarkdown, soakReport } from "./soak-report";
import { startSoakStack } from "./soak-stack";
import { fail, writeReport } from "./shared";

async function main() {
  stopOnSignals();
  const stack = await startSoakStack();
  const { graph, talk } = stack;
  const memory = new MemoryWatch(stack.gateway, stack.agent);
  const atStart = memory.now();
  const { load, drain } = soakLoad(stack);

  try {
    process.stdout.write(`warm-up: ${WARMUP_SECONDS} s of the same load…\n`);
    const warmup = await load("warmup", WARMUP_SECONDS);
    const warmupDrainS = await drain([warmup]);
    const before = await memory.settled();
    process.stdout.write(`memory after warm-up: gateway ${before.gateway} MiB, agent ${before.agent} MiB\n`);
    memory.resetPeak(before);

    process.stdout.write(`load: ${RATE} webhook deliveries/s and ${STREAMS} webchat streams for ${SECONDS} s…\n`);
    const loadStarted = performance.now();
    const main = await load("main", SECONDS);
    const loadS = (performance.now() - loadStarted) / 1000;
    process.stdout.write(`draining (${graph.sent.length + talk.posted.length} answers so far)…\n`);
    const drainS = await drain([warmup, main]);
    // Late or doubled answers would arrive now.
    const after = await memory.settled();
    memory.stop();

    const phases = [warmup, main];
    const refused = countRefusals(phases);
    const report = soakReport({
      warmup,
      main,
      loadS,
      drainS,
      warmupDrainS,
      memory: { atStart, before, peak: memory.peak, after },
      refused,
      answers: countAnswers(phases, stack),
    });
    const once = exactlyOnce(report);
    const memoryStable = memoryOk(report);
    writeReport("soak", { ...report, exactly_once: once, memory_ok: memoryStable }, soakMarkdown(report));
    if (!once || !memoryStable || refused.total > 0) process.exitCode = 1;
  } finally {
    memory.stop();
    await stopAll();
    await Promise.all([graph.close(), talk.close()]);
  }
}

main().catch((error: unknown) => fail("soak", error));
