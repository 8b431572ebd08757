// Text shaping shared by the messaging channels: the agent writes Markdown,
// WhatsApp has its own lighter formatting, and both channels cap the length of
// one message, so long answers are split where a reader would pause.

const MIN_LIMIT = 64;
// Room kept in every chunk for closing a code fence cut in two ("\n" + up to 8 marker characters).
const FENCE_RESERVE = 9;
const FENCE_OPEN = /^ {0,3}(`{3,8}|~{3,8})([^`]*)$/;

interface Fence {
  marker: string;
}

function closesFence(line: string, fence: Fence): boolean {
  const match = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
  return Boolean(match?.[1] && match[1][0] === fence.marker[0] && match[1].length >= fence.marker.length);
}

/** The fence still open at the end of `text`, if any. */
function openFenceAtEnd(text: string): Fence | undefined {
  let fence: Fence | undefined;
  for (const line of text.split("\n")) {
    if (fence) {
      if (closesFence(line, fence)) fence = undefined;
      continue;
    }
    const marker = FENCE_OPEN.exec(line)?.[1];
    if (marker) fence = { marker };
  }
  return fence;
}

// Boundaries from the most to the least natural; the match is the separator, dropped between chunks.
const boundaries = [
  /\n[ \t]*\n(?:[ \t]*\n)*/g, // paragraph
  /\n/g, // line
  /(?<=[.!?…。！？]["'”’)\]]*)[ \t]+/g, // sentence
  /[ \t]+/g, // word
];

function lastBoundary(window: string, pattern: RegExp, min: number): RegExpExecArray | undefined {
  let found: RegExpExecArray | undefined;
  for (const match of window.matchAll(pattern)) {
    if (match.index >= min) found = match as RegExpExecArray;
  }
  return found;
}

function cut(text: string, budget: number): { head: string; tail: string } {
  // One character past the budget: a separator sitting exactly there still counts.
  const window = text.slice(0, budget + 1);
  const min = Math.ceil(budget / 4);
  for (const [level, pattern] of boundaries.entries()) {
    // Words: a word boundary beats cutting through a word that would fit.
    const match = lastBoundary(window, pattern, level === boundaries.length - 1 ? 1 : min);
    if (match) {
      return { head: text.slice(0, match.index).trimEnd(), tail: text.slice(match.index + match[0].length) };
    }
  }
  return hardCut(text, budget);
}

function hardCut(text: string, budget: number): { head: string; tail: string } {
  const code = text.charCodeAt(budget - 1);
  const at = code >= 0xd800 && code <= 0xdbff ? budget - 1 : budget; // never split a surrogate pair
  return { head: text.slice(0, at), tail: text.slice(at) };
}

/**
 * Splits `text` into chunks of at most `limit` UTF-16 code units (never more
 * characters than a channel counts), at paragraph, then line, then sentence,
 * then word boundaries; a word is cut only when it alone exceeds the limit. A
 * code fence cut in two is closed at the end of one chunk and reopened in the next.
 */
export function splitMessage(text: string, limit: number): string[] {
  if (!Number.isInteger(limit) || limit < MIN_LIMIT) throw new RangeError(`limit must be an integer of at least ${MIN_LIMIT}`);
  let rest = text.replace(/\r\n?/g, "\n").replace(/^(?:[ \t]*\n)+/, "").trimEnd();
  const hasFences = text.split("\n").some((line) => FENCE_OPEN.test(line));
  const budget = hasFences ? limit - FENCE_RESERVE : limit;
  const chunks: string[] = [];
  while (rest.length > limit) {
    let { head, tail } = cut(rest, budget);
    // A chunk ending on a fence's opening line would carry an empty code block: cut inside the code instead.
    if (hasFences && FENCE_OPEN.test(head.split("\n").at(-1) ?? "") && openFenceAtEnd(head)) {
      ({ head, tail } = hardCut(rest, budget));
    }
    const fence = hasFences ? openFenceAtEnd(head) : undefined;
    if (fence) {
      head = `${head}\n${fence.marker}`;
      tail = `${fence.marker}\n${tail}`;
    }
    if (head.trim()) chunks.push(head);
    rest = tail.replace(/^(?:[ \t]*\n)+/, "");
  }
  if (rest.trim()) chunks.push(rest);
  return chunks;
}

// Placeholders for text that later rules must not touch (code, URLs, escapes).
const SAVED_OPEN = "\uE000";
const SAVED_CLOSE = "\uE001";
const BOLD = "\uE002";
const URL_IN_PARENS = String.raw`((?:[^()\s]|\([^()\s]*\))+)`;
const LINK = new RegExp(String.raw`(!?)\[([^\]]*)\]\(\s*<?${URL_IN_PARENS}>?(?:\s+"[^"]*")?\s*\)`, "g");

function convertInline(line: string): string {
  const saved: string[] = [];
  const keep = (text: string) => `${SAVED_OPEN}${saved.push(text) - 1}${SAVED_CLOSE}`;
  let text = line.replace(/[\uE000-\uE002]/g, "");

  text = text.replace(/\\([\\`*_{}[\]()#+\-.!~>|])/g, (_, char: string) => keep(char));
  text = text.replace(/(`+)(?!`)(.+?)(?<!`)\1(?!`)/g, (_, _ticks: string, code: string) =>
    keep("```" + (/^ .*\S.* $/.test(code) ? code.slice(1, -1) : code) + "```"),
  );
  text = text.replace(LINK, (_, bang: string, label: string, url: string) => {
    if (bang) return keep(url);
    const shown = label.trim();
    if (!shown || shown === url || shown === url.replace(/^(?:https?:\/\/|mailto:)/, "")) return keep(url);
    return `${shown} (${keep(url)})`;
  });
  text = text.replace(/<((?:https?|mailto):[^>\s]+)>/g, (_, url: string) => keep(url));
  text = text.replace(/\b(?:https?:\/\/|www\.)[^\s<]*[^\s<.,:;"')\]!?*_~]/g, (url) => keep(url));

  const [, quote = "", body = ""] = /^((?:[ \t]{0,3}>[ \t]?)*)(.*)$/.exec(text) ?? [];
  let rest = body;
  const heading = /^[ \t]{0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/.exec(rest);
  if (heading) {
    const title = (heading[1] ?? "").replace(/\*\*|__/g, "").trim();
    rest = title ? `${BOLD}${title}${BOLD}` : "";
  } else if (/^[ \t]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/.test(rest)) {
    rest = "---";
  } else {
    rest = rest.replace(/^([ \t]*)[*+-][ \t]+/, "$1- ");
  }

  rest = rest
    .replace(/(\*\*\*|(?<!\w)___)(?=\S)(.+?)(?<=\S)\1/g, (_, _marker: string, inner: string) => `${BOLD}_${inner}_${BOLD}`)
    .replace(/\*\*(?=\S)(.+?)(?<=\S)\*\*/g, `${BOLD}$1${BOLD}`)
    .replace(/(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)/g, `${BOLD}$1${BOLD}`)
    .replace(/~~(?=\S)(.+?)(?<=\S)~~/g, "~$1~")
    .replace(/(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])/g, "_$1_");

  const out = (quote + rest).replaceAll(BOLD, "*");
  return out.replace(/\uE000(\d+)\uE001/g, (_, index: string) => saved[Number(index)] ?? "");
}

/**
 * Agent Markdown to WhatsApp formatting: *bold*, _italic_, ~strike~,
 * ```monospace```, "- " lists, "> " quotes, headings as bold lines and links
 * as "text (url)". Code blocks keep their content untouched.
 */
export function markdownToWhatsApp(markdown: string): string {
  const out: string[] = [];
  let fence: Fence | undefined;
  for (const line of markdown.replace(/\r\n?/g, "\n").split("\n")) {
    if (fence) {
      if (closesFence(line, fence)) {
        out.push("```");
        fence = undefined;
      } else {
        out.push(line);
      }
      continue;
    }
    const marker = FENCE_OPEN.exec(line)?.[1];
    if (marker) {
      fence = { marker };
      out.push("```");
      continue;
    }
    out.push(convertInline(line));
  }
  if (fence) out.push("```");
  return out.join("\n");
}
