import "server-only";
import type { AgentAttachment, AgentClient } from "../agent-client";
import type { OutboundAttachment } from "../channels/types";
import { getAttachmentData, listAttachments, type NewAttachment } from "../db/attachments";
import { AppError, isAppError } from "../errors";
import { logger } from "../logger";

// The files of an answer: fetched from the agent once, before the answer is
// stored (they are stored with it, in the same transaction), then read from
// the database for every delivery. Logs carry counts and sizes, never a name
// or a byte of content.

/** Fetches each file the agent attached; those it cannot give are named in `missing`, for a note in the answer. */
export async function fetchAttachments(
  agent: AgentClient,
  listed: AgentAttachment[],
  meta: { turnId: string },
): Promise<{ files: NewAttachment[]; missing: string[] }> {
  const files: NewAttachment[] = [];
  const missing: string[] = [];
  for (const item of listed) {
    try {
      const data = await agent.file(item.id);
      files.push({ name: item.name, mime: item.mime, size: data.byteLength, caption: item.caption, data });
    } catch (error) {
      const code = isAppError(error) ? error.code : "internal:attachment";
      logger.warn("attachment.fetch_failed", { ...meta, code, size: item.size });
      missing.push(item.name);
    }
  }
  if (listed.length > 0) {
    logger.info("attachment.fetched", { ...meta, count: files.length, missing: missing.length, bytes: files.reduce((n, f) => n + f.size, 0) });
  }
  return { files, missing };
}

/** An answer's stored files as the channels take them, bytes read on demand. */
export async function outboundAttachments(messageId: string | null | undefined): Promise<OutboundAttachment[]> {
  if (!messageId) return [];
  const rows = await listAttachments({ messageId });
  return rows.map(({ id, name, mime, size, caption, createdAt }) => ({
    id,
    name,
    mime,
    size,
    caption,
    storedAt: createdAt,
    async data() {
      const data = await getAttachmentData({ id });
      if (!data) throw new AppError("not_found:attachment", "The file was deleted with its conversation.");
      return data as Uint8Array<ArrayBuffer>;
    },
  }));
}
