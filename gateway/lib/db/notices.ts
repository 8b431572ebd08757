import "server-only";
import { db, type Db } from "./client";

// Notices for the owner about a chat's reminders, told once at their next message there.

export type NoticeKind = "missed" | "undelivered";

export async function addNotice(
  { channel, channelId, kind, at, subject }: { channel: string; channelId: string; kind: NoticeKind; at: Date; subject: string },
  client: Db = db(),
) {
  return client.notice.create({ data: { channel, channelId, kind, at, subject } });
}

/** The chat's notices not told yet, oldest first. */
export async function listPendingNotices({ channel, channelId }: { channel: string; channelId: string }) {
  return db().notice.findMany({ where: { channel, channelId, toldAt: null }, orderBy: [{ at: "asc" }, { id: "asc" }] });
}
export type PendingNotice = Awaited<ReturnType<typeof listPendingNotices>>[number];

export async function markNoticesTold({ ids, at = new Date() }: { ids: string[]; at?: Date }, client: Db = db()) {
  if (ids.length === 0) return;
  await client.notice.updateMany({ where: { id: { in: ids }, toldAt: null }, data: { toldAt: at } });
}
