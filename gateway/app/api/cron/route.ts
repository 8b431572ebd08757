import { requireCronSecret, runDueCronJobs } from "@/lib/cron";
import { route } from "@/lib/http";

// Called by the system crontab every minute (`make cron-install`), with
// X-Cron-Secret. Runs the due jobs, each once, and resumes unfinished turns.
// The summary has names and statuses only, never a prompt or an answer.
async function handle(request: Request): Promise<Response> {
  requireCronSecret(request);
  const { ran, skipped, resumed } = await runDueCronJobs();
  return Response.json({ ran, skipped, resumed });
}

export const GET = route(handle);
export const POST = route(handle);
