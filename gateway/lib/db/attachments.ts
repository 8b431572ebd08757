import "server-only";
import { db, type Db } from "./client";

// Files sent back with an answer (the agent's send_file), stored with it.

export interface NewAttachment {
  name: string;
  mime: string;
  size: number;
  caption: string | null;
  data: Uint8Array<ArrayBuffer>;
}

/** What is shown and sent of a file without reading its bytes. */
export const attachmentMetadata = { id: true, position: true, name: true, mime: true, size: true, caption: true, createdAt: true } as const;

export async function addAttachments({ messageId, files }: { messageId: string; files: NewAttachment[] }, client: Db = db()) {
  // One statement per file: createMany with blobs is no faster on SQLite, and a file can be 100 MB.
  for (const [position, file] of files.entries()) {
    await client.attachment.create({ data: { messageId, position, ...file } });
  }
}

/** An answer's files without their bytes, in the order the agent attached them. */
export async function listAttachments({ messageId }: { messageId: string }) {
  return db().attachment.findMany({ where: { messageId }, orderBy: { position: "asc" }, select: attachmentMetadata });
}
export type AttachmentMeta = Awaited<ReturnType<typeof listAttachments>>[number];

/** One file with its bytes, or null. */
export async function getAttachment({ id }: { id: string }) {
  return db().attachment.findUnique({ where: { id }, select: { ...attachmentMetadata, data: true } });
}

/** One file's bytes only (a channel uploading it). */
export async function getAttachmentData({ id }: { id: string }): Promise<Uint8Array | null> {
  return (await db().attachment.findUnique({ where: { id }, select: { data: true } }))?.data ?? null;
}
