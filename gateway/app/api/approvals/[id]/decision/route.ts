import { z } from "zod";
import { decideById } from "@/lib/approvals/service";
import { requireOwner } from "@/lib/auth";
import { langOf } from "@/lib/commands/texts";
import { getSettings } from "@/lib/db/settings";
import { readJson, route } from "@/lib/http";
import { personaFrom } from "@/lib/persona";

const decisionSchema = z.object({ decision: z.enum(["approve", "deny"]) });

// The webchat's Approve and Deny buttons: the owner's session (or bearer token) decides one approval.
export const POST = route(async (request, { params }: { params: Promise<{ id: string }> }) => {
  await requireOwner(request);
  const { decision } = await readJson(request, decisionSchema);
  const lang = langOf(personaFrom(await getSettings()).persona_lang);
  return Response.json(await decideById((await params).id, decision === "approve" ? "approved" : "denied", lang));
});
