import { requireOwner } from "@/lib/auth";
import { cronJobPatchSchema } from "@/lib/cron-job-schema";
import { deleteJob, updateJob } from "@/lib/cron-jobs";
import { readJson, route } from "@/lib/http";

type Params = { params: Promise<{ id: string }> };

export const PATCH = route(async (request, { params }: Params) => {
  await requireOwner(request);
  const patch = await readJson(request, cronJobPatchSchema);
  return Response.json(await updateJob((await params).id, patch));
});

export const DELETE = route(async (request, { params }: Params) => {
  await requireOwner(request);
  await deleteJob((await params).id);
  return new Response(null, { status: 204 });
});
