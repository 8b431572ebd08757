import "server-only";
import { db, type Db } from "./client";

// Approvals of side-effect calls (issue 14): asked by the agent, decided by the
// owner in the chat, claimed once by the call that runs. Every state change is
// one conditional UPDATE, so two /approve, a redelivered webhook and a claim
// racing a decision all settle on one outcome.

export type ApprovalState = "pending" | "approved" | "denied" | "expired" | "executed";

export interface NewApproval {
  key: string;
  turnId: string;
  channel: string;
  channelId: string;
  tool: string;
  summary: string;
  reason: string;
  source: string;
  expiresAt: Date;
}

export async function createApproval(data: NewApproval, client: Db = db()) {
  return client.approval.create({ data });
}

export async function findApprovalByKey({ key }: { key: string }) {
  return db().approval.findUnique({ where: { key } });
}

export async function getApproval({ id }: { id: string }) {
  return db().approval.findUnique({ where: { id } });
}
export type ApprovalRow = NonNullable<Awaited<ReturnType<typeof getApproval>>>;

/** The chat's approvals still waiting for the owner, newest first. */
export async function listPendingApprovals({ channel, channelId, now = new Date() }: { channel: string; channelId: string; now?: Date }) {
  return db().approval.findMany({
    where: { channel, channelId, state: "pending", expiresAt: { gt: now } },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
  });
}

/** pending → approved | denied, if still pending and not expired; true when this call decided it. */
export async function decideApproval({ id, decision, now = new Date() }: { id: string; decision: "approved" | "denied"; now?: Date }) {
  const { count } = await db().approval.updateMany({
    where: { id, state: "pending", expiresAt: { gt: now } },
    data: { state: decision, decidedAt: now },
  });
  return count === 1;
}

/** pending past its time → expired; true when this call expired it. */
export async function expireApproval({ id, now = new Date() }: { id: string; now?: Date }) {
  const { count } = await db().approval.updateMany({ where: { id, state: "pending", expiresAt: { lte: now } }, data: { state: "expired", decidedAt: now } });
  return count === 1;
}

/** approved → executed, once: true for the one claim that may run the call. */
export async function claimApproval({ id }: { id: string }) {
  const { count } = await db().approval.updateMany({ where: { id, state: "approved" }, data: { state: "executed" } });
  return count === 1;
}

/** The turn's approvals (any state): a turn that asked for one is never run again by a retry. */
export async function countApprovalsOfTurn({ turnId }: { turnId: string }) {
  return db().approval.count({ where: { turnId } });
}

/** Ends the turn's waiting approvals (its agent run is gone): pending or approved-not-run → expired. */
export async function closeApprovalsOfTurn({ turnId, now = new Date() }: { turnId: string; now?: Date }) {
  await db().approval.updateMany({ where: { turnId, state: { in: ["pending", "approved"] } }, data: { state: "expired", decidedAt: now } });
}
