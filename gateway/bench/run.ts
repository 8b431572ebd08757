// `npm run bench`: the gateway's own cost, measured against its targets.
//
// 1. Overhead per webchat turn: time to the last byte of POST /api/chat minus
//    the same turn posted straight to the agent's /run/stream, p50 and p95 over
//    paired runs (gateway-turns.ts). The agent is the test suite's fake
//    (answers at once), so the difference is the gateway's work.
//    BENCH_AGENT_URL points it at a real agent instead (then BENCH_AGENT_API_KEY too).
// 2. Time to the first streamed event, through the gateway (gateway-turns.ts).
// 3. getHistory latency with 100 000 and 1 000 000 stored messages (gateway-history.ts).
// 4. WhatsApp webhook acknowledgement: 200 signed deliveries, 20 at a time,
//    from 20 senders, with a slow fake model; time to the 200, and every
//    answer counted at the fake Graph API (lost and duplicated must be 0)
//    (gateway-webhooks.ts).
//
// Settings and targets in gateway-config.ts. Writes gateway.json and gateway.md
// (gateway-report.ts) to BENCH_REPORT_DIR (default bench-results/).
import { stopOnSignals } from "../e2e/stack";
import { HISTORY_SIZES, TURNS, WARMUP, WEBHOOKS, WEBHOOK_CONCURRENCY } from "./gateway-config";
import { benchHistory } from "./gateway-history";
import { gatewayMarkdown, gatewayReport } from "./gateway-report";
import { benchTurns } from "./gateway-turns";
import { benchWebhooks } from "./gateway-webhooks";
import { fail, logDir, writeReport } from "./shared";

async function run() {
  process.stdout.write(`webchat turns: ${WARMUP} warm-up + ${TURNS} measured…\n`);
  const turns = await benchTurns(logDir);
  process.stdout.write(`WhatsApp webhooks: ${WARMUP} warm-up + ${WEBHOOKS} at concurrency ${WEBHOOK_CONCURRENCY}…\n`);
  const webhooks = await benchWebhooks(logDir);
  process.stdout.write(`getHistory at ${HISTORY_SIZES.join(", ")} messages…\n`);
  const history = await benchHistory();
  return gatewayReport(turns, webhooks, history);
}

stopOnSignals();
run().then(
  (report) => writeReport("gateway", report, gatewayMarkdown(report)),
  (error: unknown) => fail("bench", error),
);
