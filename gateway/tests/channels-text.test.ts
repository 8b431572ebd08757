import { describe, expect, it } from "vitest";
import { markdownToWhatsApp, splitMessage } from "../lib/channels/text";

const words = (count: number, word = "word") => Array.from({ length: count }, () => word).join(" ");

describe("splitMessage", () => {
  it("keeps a message under the limit whole and drops an empty one", () => {
    expect(splitMessage("Hello there.", 100)).toEqual(["Hello there."]);
    expect(splitMessage(" \n\n  ", 100)).toEqual([]);
  });

  it("splits at the paragraph break, in order", () => {
    const first = `First paragraph. ${words(10)}.`;
    const second = `Second paragraph. ${words(10)}.`;
    const third = `Third paragraph. ${words(10)}.`;
    const chunks = splitMessage(`${first}\n\n${second}\n\n\n${third}`, 140);
    expect(chunks).toEqual([`${first}\n\n${second}`, third]);
  });

  it("prefers an earlier paragraph break to a later line break", () => {
    const a = `A ${words(11)}.`;
    const b1 = `B1 ${words(7)}.`;
    const b2 = `B2 ${words(11)}.`;
    expect(splitMessage(`${a}\n\n${b1}\n${b2}`, 140)).toEqual([a, `${b1}\n${b2}`]);
  });

  it("prefers a sentence end to a word boundary when there is no paragraph", () => {
    const one = `One ${words(12)}.`;
    const two = `Two ${words(12)}!`;
    const three = `Three ${words(12)}?`;
    const chunks = splitMessage(`${one} ${two} ${three}`, 140);
    expect(chunks).toEqual([`${one} ${two}`, three]);
    expect(chunks.every((chunk) => chunk.length <= 140)).toBe(true);
  });

  it("cuts between words, never inside one that fits", () => {
    const text = words(100, "abcdefghi");
    const chunks = splitMessage(text, 95);
    for (const chunk of chunks) {
      expect(chunk.length).toBeLessThanOrEqual(95);
      expect(chunk.split(" ").every((word) => word === "abcdefghi")).toBe(true);
    }
    expect(chunks.join(" ")).toBe(text);
  });

  it("cuts a word only when it alone exceeds the limit, and never a surrogate pair", () => {
    const long = "😀".repeat(100); // 200 UTF-16 code units
    const chunks = splitMessage(`short ${long}`, 65);
    expect(chunks.join("").replace("short", "")).toBe(long);
    for (const chunk of chunks) {
      expect(chunk.length).toBeLessThanOrEqual(65);
      expect(chunk).not.toMatch(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/);
    }
  });

  it("closes a code fence cut in two and reopens it in the next chunk", () => {
    const code = Array.from({ length: 40 }, (_, i) => `const value${i} = ${i};`).join("\n");
    const chunks = splitMessage(`Intro.\n\n\`\`\`ts\n${code}\n\`\`\`\n\nAfter.`, 300);
    expect(chunks.length).toBeGreaterThan(2);
    for (const chunk of chunks) {
      expect(chunk.length).toBeLessThanOrEqual(300);
      expect(chunk.match(/^```/gm)?.length ?? 0).toSatisfy((n: number) => n % 2 === 0);
    }
    const lines = chunks.join("\n").split("\n").filter((line) => line.startsWith("const "));
    expect(lines).toEqual(code.split("\n"));
  });

  it("never ends a chunk with an empty code block", () => {
    const chunks = splitMessage(`Intro line that is long enough to matter here.\n\`\`\`ts\n${"x".repeat(300)}\n\`\`\``, 100);
    expect(chunks[0]).toMatch(/^Intro[^]*```ts\nx+\n```$/);
    expect(chunks.every((chunk) => chunk.length <= 100 && !/```\w*\n```$/.test(chunk))).toBe(true);
  });

  it("refuses a limit too small to hold a closed fence", () => {
    expect(() => splitMessage("text", 10)).toThrow(RangeError);
  });
});

describe("markdownToWhatsApp", () => {
  it.each([
    ["**bold** and __bold__", "*bold* and *bold*"],
    ["*italic* and _italic_", "_italic_ and _italic_"],
    ["***both***", "*_both_*"],
    ["~~gone~~", "~gone~"],
    ["# Title", "*Title*"],
    ["### **Already bold** title ###", "*Already bold title*"],
    ["see [the docs](https://example.com/a_b) now", "see the docs (https://example.com/a_b) now"],
    ["[https://example.com](https://example.com)", "https://example.com"],
    ["[example.com](https://example.com)", "https://example.com"],
    ["![a cat](https://example.com/cat.png)", "https://example.com/cat.png"],
    ["[wiki](https://en.wikipedia.org/wiki/Foo_(bar))", "wiki (https://en.wikipedia.org/wiki/Foo_(bar))"],
    ["run `npm **test**` now", "run ```npm **test**``` now"],
    ["* one\n+ two\n- three", "- one\n- two\n- three"],
    ["  * nested", "  - nested"],
    ["1. first\n2. second", "1. first\n2. second"],
    ["> quoted **text**", "> quoted *text*"],
    ["a \\*literal\\* star", "a *literal* star"],
    ["2*3*4 stays", "2*3*4 stays"],
    ["snake_case_name and https://x.org/a__b__c", "snake_case_name and https://x.org/a__b__c"],
    ["***\n---", "---\n---"],
  ])("%j → %j", (markdown, expected) => {
    expect(markdownToWhatsApp(markdown)).toBe(expected);
  });

  it("keeps code block contents untouched and drops the language", () => {
    const markdown = "Look:\n\n```python\ndef f(*args, **kwargs):\n    return __name__  # **not bold**\n```\nDone **now**.";
    expect(markdownToWhatsApp(markdown)).toBe(
      "Look:\n\n```\ndef f(*args, **kwargs):\n    return __name__  # **not bold**\n```\nDone *now*.",
    );
  });

  it("closes a code block the agent left open", () => {
    expect(markdownToWhatsApp("```\nx = 1")).toBe("```\nx = 1\n```");
  });
});
