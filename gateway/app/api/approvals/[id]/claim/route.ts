import { requireAgent } from "@/lib/auth";
import { claim } from "@/lib/approvals/service";
import { route } from "@/lib/http";

// The agent claims an approved call before running it: `run: true` exactly once per approval.
export const POST = route(async (request, { params }: { params: Promise<{ id: string }> }) => {
  requireAgent(request);
  return Response.json(await claim((await params).id));
});
