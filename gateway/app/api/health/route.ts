import { checkHealth } from "@/lib/health";
import { route } from "@/lib/http";

// Public, for monitoring: states and latencies only.
export const dynamic = "force-dynamic";

export const GET = route(async () => {
  const report = await checkHealth();
  const isServing = report.db === "ok" && report.agent === "ok";
  return Response.json(report, { status: isServing ? 200 : 503, headers: { "cache-control": "no-store" } });
});
