// Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Graph and
// Nextcloud may send it with a 429 or a 503; the next attempt waits at least that long.

/** The wait the header asks for, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null | undefined, now = Date.now()): number | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
