import { requireOwner } from "@/lib/auth";
import { runJobNow } from "@/lib/cron-jobs";
import { route } from "@/lib/http";

// Runs the job at once, whatever its schedule; answers with the job and its run's status.
export const POST = route(async (request, { params }: { params: Promise<{ id: string }> }) => {
  await requireOwner(request);
  return Response.json(await runJobNow((await params).id));
});
