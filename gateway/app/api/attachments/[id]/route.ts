import { isValidLink } from "@/lib/attachments/link";
import { requireOwner } from "@/lib/auth";
import { getAttachment } from "@/lib/db/attachments";
import { AppError } from "@/lib/errors";
import { route } from "@/lib/http";

// A file sent with an answer, for the owner's webchat session or bearer token, or for a signed link that has
// not expired (what Talk gets with PUBLIC_BASE_URL). Served so that nothing in it runs on the gateway's origin:
// only plain image types are shown inline, everything else is a download, and a sandbox CSP covers both.

const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

const notFound = () => new AppError("not_found:attachment", "No such file.");

export const GET = route(async (request, { params }: { params: Promise<{ id: string }> }) => {
  const { id } = await params;
  const query = new URL(request.url).searchParams;
  if (query.has("sig")) {
    if (!isValidLink(id, query)) {
      throw new AppError("forbidden:attachment", "This link has expired or is not valid; open the file in the webchat.");
    }
  } else {
    await requireOwner(request);
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw notFound();
  const file = await getAttachment({ id });
  if (!file) throw notFound();
  const inline = INLINE_TYPES.has(file.mime.toLowerCase());
  return new Response(file.data, {
    status: 200,
    headers: {
      "content-type": inline ? file.mime : "application/octet-stream",
      "content-length": String(file.data.byteLength),
      "content-disposition": `${inline ? "inline" : "attachment"}; filename*=UTF-8''${encodeURIComponent(file.name)}`,
      "content-security-policy": "sandbox; default-src 'none'; img-src 'self'",
      "x-content-type-options": "nosniff",
      "cache-control": "private, max-age=3600",
    },
  });
});
