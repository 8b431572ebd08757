import { z } from "zod";
import { decideById } from "@/lib/approvals/service";
import { requireOwner } from "@/lib/auth";
import { readJson, route } from "@/lib/http";
import { ownerLang } from "@/lib/settings";

const decisionSchema = z.object({ decision: z.enum(["approve", "deny"]) });

// The webchat's Approve and Deny buttons: the owner's session (or bearer token) decides one approval.
export const POST = route(async (request, { params }: { params: Promise<{ id: string }> }) => {
  await requireOwner(request);
  const { decision } = await readJson(request, decisionSchema);
  return Response.json(await decideById((await params).id, decision === "approve" ? "approved" : "denied", await ownerLang()));
});
