import { requireAgent } from "@/lib/auth";
import { approvalRequestSchema, requestApproval } from "@/lib/approvals/service";
import { readJson, route } from "@/lib/http";

// The agent asks the owner's approval for a side-effect call (issue 14): bearer AGENT_API_KEY, the
// turn's signed reference. 201 a new approval, asked in the chat at once; 200 the same call asked again.
export const POST = route(async (request) => {
  requireAgent(request);
  const body = await readJson(request, approvalRequestSchema);
  const { view, created } = await requestApproval(body);
  return Response.json(view, { status: created ? 201 : 200 });
});
