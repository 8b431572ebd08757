import "server-only";
import { createHash } from "node:crypto";
import { z } from "zod";
import { channelsByName } from "../channels";
import type { ChannelName } from "../channels/types";
import { shortId, type Lang } from "../commands/texts";
import {
  claimApproval,
  closeApprovalsOfTurn,
  countApprovalsOfTurn,
  createApproval,
  decideApproval,
  expireApproval,
  findApprovalByKey,
  getApproval,
  listPendingApprovals,
  type ApprovalRow,
} from "../db/approvals";
import { isUniqueViolation } from "../db/client";
import { getConversationById } from "../db/conversations";
import { getTurnById } from "../db/turns";
import { getEnv } from "../env";
import { AppError } from "../errors";
import { errorMeta, logger } from "../logger";
import { ownerLang } from "../settings";
import { approvalTexts } from "./texts";
import { turnOfRef } from "./turn-ref";

// Approvals (issue 14), gateway side. The agent asks (POST /api/approvals) before
// a side-effect call it may make only with the owner's consent; the request goes
// to the chat the turn came from at once; the owner answers /approve or /deny
// (WhatsApp buttons, the webchat's buttons); the agent long-polls the state and
// claims an approved call once before running it. Logs: ids, tool, decision and
// seconds waited, never the call's summary.

export const approvalRequestSchema = z.object({
  turn_ref: z.string().min(1).max(1000),
  tool: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
  summary: z.string().min(1).max(2000),
  reason: z.enum(["outside_content", "always"]),
  source: z.string().max(300).default(""),
});
export type ApprovalRequest = z.infer<typeof approvalRequestSchema>;

export interface ApprovalView {
  id: string;
  state: ApprovalRow["state"];
  expires_at: string;
}

/** The row as the agent sees it: a pending one past its time is expired (and recorded so). */
async function current(row: ApprovalRow, now = new Date()): Promise<ApprovalRow> {
  if (row.state !== "pending" || row.expiresAt.getTime() > now.getTime()) return row;
  if (await expireApproval({ id: row.id, now })) logDecision(row, "expired", now);
  return (await getApproval({ id: row.id })) ?? row;
}

export const viewOf = (row: ApprovalRow): ApprovalView => ({ id: row.id, state: row.state, expires_at: row.expiresAt.toISOString() });

function logDecision(row: ApprovalRow, decision: string, now = new Date()): void {
  const waitedS = Math.round((now.getTime() - row.createdAt.getTime()) / 100) / 10;
  logger.info("approval.decided", { approvalId: row.id, turnId: row.turnId, channel: row.channel, tool: row.tool, decision, waitedS });
}

/** Sends the request to the chat: buttons where the channel has them, else the text (which names the commands). The webchat shows it live. */
async function askInChat(row: ApprovalRow, replyTo: string): Promise<void> {
  const channel = channelsByName()[row.channel as ChannelName];
  if (!channel || channel.capabilities.streams) return;
  const t = approvalTexts[await ownerLang()];
  const text = t.request({ ...row, minutes: Math.round((row.expiresAt.getTime() - row.createdAt.getTime()) / 60_000) });
  const conversationId = (await getTurnById({ id: row.turnId }))?.conversationId ?? "";
  if (channel.ask) {
    const choices = [
      { id: `/approve ${shortId(row.id)}`, title: t.approve },
      { id: `/deny ${shortId(row.id)}`, title: t.deny },
    ];
    await channel.ask({ channelId: row.channelId, conversationId, text, choices });
  } else {
    await channel.send({ channel: channel.name, channelId: row.channelId, conversationId, replyTo, text });
  }
}

/** The agent asks: a new approval (201) asked in the chat, or the same turn's same call found again (200). */
export async function requestApproval(body: ApprovalRequest): Promise<{ view: ApprovalView; created: boolean }> {
  const turnId = turnOfRef(body.turn_ref);
  if (!turnId) throw new AppError("forbidden:api", "This turn reference was not issued by this gateway.");
  const turn = await getTurnById({ id: turnId });
  const conversation = turn ? await getConversationById({ id: turn.conversationId }) : null;
  if (!turn || !conversation) throw new AppError("not_found:api", "The turn no longer exists (its conversation was deleted).");
  const key = createHash("sha256").update(`${turnId}\n${body.tool}\n${body.summary}`).digest("hex");
  const known = await findApprovalByKey({ key });
  if (known) return { view: viewOf(await current(known)), created: false };
  let row: ApprovalRow;
  try {
    const expiresAt = new Date(Date.now() + getEnv().approvalTimeoutMs);
    const { tool, summary, reason, source } = body;
    row = await createApproval({ key, turnId, channel: turn.channel, channelId: conversation.channelId, tool, summary, reason, source, expiresAt });
  } catch (error) {
    const raced = isUniqueViolation(error) ? await findApprovalByKey({ key }) : null;
    if (raced) return { view: viewOf(await current(raced)), created: false };
    throw error;
  }
  logger.info("approval.requested", { approvalId: row.id, turnId, channel: row.channel, tool: row.tool, reason: row.reason });
  try {
    await askInChat(row, turn.externalId);
  } catch (error) {
    // The approval stands (the owner can still answer /approve); the agent waits until it expires.
    logger.warn("approval.ask_failed", { approvalId: row.id, channel: row.channel, ...errorMeta(error) });
  }
  return { view: viewOf(row), created: true };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The approval's state once it is no longer pending, or after `waitMs` (the agent's long poll). */
export async function waitForDecision(id: string, waitMs: number): Promise<ApprovalView> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const row = await getApproval({ id });
    if (!row) throw new AppError("not_found:api", "No such approval.");
    const now = await current(row);
    if (now.state !== "pending" || Date.now() >= deadline) return viewOf(now);
    await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
  }
}

/** The one claim that may run an approved call; `run: false` for every other. */
export async function claim(id: string): Promise<{ run: boolean; state: ApprovalRow["state"] }> {
  const row = await getApproval({ id });
  if (!row) throw new AppError("not_found:api", "No such approval.");
  const run = await claimApproval({ id });
  if (run) logger.info("approval.claimed", { approvalId: id, turnId: row.turnId, tool: row.tool });
  return { run, state: run ? "executed" : (await current(row)).state };
}

/** Decides one approval (the webchat's buttons); the answer to show. */
export async function decideById(id: string, decision: "approved" | "denied", lang: Lang): Promise<{ decided: boolean; text: string; state: string }> {
  const row = await getApproval({ id });
  if (!row) throw new AppError("not_found:api", "No such approval.");
  const t = approvalTexts[lang];
  if (await decideApproval({ id, decision })) {
    logDecision(row, decision);
    return { decided: true, text: decision === "approved" ? t.approved(row.summary) : t.denied(row.summary), state: decision };
  }
  const state = (await current(row)).state;
  return { decided: false, text: t.alreadyDecided(state), state };
}

/** `/approve [id]` or `/deny [id]` in a chat: the one waiting there, or the one whose id ends with `hint`. */
export async function decideInChat(
  { channel, channelId, hint, lang }: { channel: string; channelId: string; hint?: string; lang: Lang },
  decision: "approved" | "denied",
): Promise<string> {
  const t = approvalTexts[lang];
  const waiting = await listPendingApprovals({ channel, channelId });
  const wanted = hint?.trim().toLowerCase();
  if (wanted) {
    const match = waiting.find((row) => row.id.toLowerCase().endsWith(wanted));
    if (match) return (await decideById(match.id, decision, lang)).text;
    // Decided already (a second /approve, a redelivered button tap) or unknown.
    return t.nothingWaiting;
  }
  if (waiting.length === 0) return t.nothingWaiting;
  if (waiting.length > 1) return t.whichOne(waiting.map((row) => shortId(row.id)));
  return (await decideById(waiting[0]!.id, decision, lang)).text;
}

/**
 * The agent call of a turn ended without an answer. If the turn had asked for an approval, what still waits is
 * closed and the turn must not be run again with its side effects: the error becomes a final one that says so
 * (a /stop keeps its own reason); the chat is told like any turn that failed for good (turns/failure-notice.ts).
 * Otherwise the error is returned as it is.
 */
export async function afterAgentLost(turnId: string, error: AppError): Promise<AppError> {
  if ((await countApprovalsOfTurn({ turnId }).catch(() => 0)) === 0) return error;
  await closeApprovalsOfTurn({ turnId });
  if (error.detail.stopped) return error;
  return new AppError("upstream:agent", approvalTexts[await ownerLang()].agentLost, { cause: error, detail: { agentCode: error.code } });
}
