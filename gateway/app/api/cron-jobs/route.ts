import { requireOwner } from "@/lib/auth";
import { cronJobCreateSchema } from "@/lib/cron-job-schema";
import { createJob, listJobs } from "@/lib/cron-jobs";
import { readJson, route } from "@/lib/http";

export const GET = route(async (request) => {
  await requireOwner(request);
  return Response.json(await listJobs());
});

export const POST = route(async (request) => {
  await requireOwner(request);
  const body = await readJson(request, cronJobCreateSchema);
  return Response.json(await createJob(body), { status: 201 });
});
