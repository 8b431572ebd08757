import { describe, expect, it } from "vitest";
import { cronPromptText, parseCronPrompt } from "../lib/cron-prompt";

describe("a scheduled job's message", () => {
  it.each(["Bonjour quotidien", 'say "hi"', "back\\slash", "line\nbreak", "émoji ☀️"])("round-trips the job name %j", (name) => {
    expect(parseCronPrompt(cronPromptText(name, "Dis bonjour\n\nen deux lignes"))).toEqual({ jobName: name, prompt: "Dis bonjour\n\nen deux lignes" });
  });

  it("leaves what the owner typed alone, even when it looks close", () => {
    expect(parseCronPrompt("hello")).toBeNull();
    expect(parseCronPrompt('[scheduled job "x"] same line')).toBeNull();
    expect(parseCronPrompt('say [scheduled job "x"]\nnot at the start')).toBeNull();
  });
});
