import { requireAgent } from "@/lib/auth";
import { waitForDecision } from "@/lib/approvals/service";
import { AppError } from "@/lib/errors";
import { route } from "@/lib/http";

const MAX_WAIT_S = 30;

// The agent's long poll: the approval's state as soon as it is decided, or after `wait` seconds (≤ 30).
export const GET = route(async (request, { params }: { params: Promise<{ id: string }> }) => {
  requireAgent(request);
  const { id } = await params;
  const wait = Number(new URL(request.url).searchParams.get("wait") ?? "0");
  if (!Number.isFinite(wait) || wait < 0) throw new AppError("bad_request:api", `wait must be a number of seconds from 0 to ${MAX_WAIT_S}.`);
  return Response.json(await waitForDecision(id, Math.min(wait, MAX_WAIT_S) * 1000));
});
