import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { markdownToWhatsApp, splitMessage } from "../lib/channels/text";

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const pieces = fc.constantFrom(
  "word", "longerword", " ", "  ", "\t", "\n", "\n\n", "\r\n", ".", "! ", "😀", "é", "漢字。", "x".repeat(70),
  "```", "```js\n", "\n```\n", "~~~\n", "    ```", "**bold**", "_it_", "[a](https://x.y/(z))", "> ", "# ", "- ",
);
// Well-formed text: the channel parts, plus any code points (astral ones as surrogate pairs).
const messageText = fc.oneof(
  fc.array(pieces, { maxLength: 120 }).map((parts) => parts.join("")),
  fc.string({ unit: "binary", maxLength: 400 }),
);
const limits = fc.integer({ min: 64, max: 300 });
const visible = (text: string) => text.replace(/[\s`~]/g, "");
const hasFence = (text: string) => /^ {0,3}(`{3,8}|~{3,8})([^`]*)$/m.test(text.replace(/\r\n?/g, "\n"));

describe("splitMessage properties", () => {
  it("keeps every chunk within the limit and never splits a surrogate pair", () => {
    fc.assert(
      fc.property(messageText, limits, (text, limit) => {
        for (const chunk of splitMessage(text, limit)) {
          expect(chunk.length).toBeLessThanOrEqual(limit);
          expect(chunk.trim()).not.toBe("");
          expect(LONE_SURROGATE.test(chunk)).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("loses and invents nothing but whitespace and the fence markers it closes and reopens", () => {
    fc.assert(
      fc.property(messageText, limits, (text, limit) => {
        const joined = splitMessage(text, limit).join("");
        if (hasFence(text)) expect(visible(joined)).toBe(visible(text));
        else expect(joined.replace(/\s/g, "")).toBe(text.replace(/\s/g, ""));
      }),
      { numRuns: 300 },
    );
  });
});

describe("markdownToWhatsApp properties", () => {
  it("never throws and keeps one line per input line", () => {
    fc.assert(
      fc.property(messageText, (text) => {
        const out = markdownToWhatsApp(text);
        const lines = text.replace(/\r\n?/g, "\n").split("\n").length;
        // A fence left open gets its closing line.
        expect([lines, lines + 1]).toContain(out.split("\n").length);
      }),
      { numRuns: 300 },
    );
  });

  it("leaves plain prose alone, so converting twice changes nothing", () => {
    const prose = fc.array(fc.constantFrom("word", " ", "\n", ".", ",", "é", "😀", "Hello", "42"), { maxLength: 60 });
    fc.assert(
      fc.property(prose, (parts) => {
        const text = parts.join("");
        expect(markdownToWhatsApp(text)).toBe(text);
        expect(markdownToWhatsApp(markdownToWhatsApp(text))).toBe(text);
      }),
    );
  });
});
