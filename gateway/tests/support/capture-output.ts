import { vi } from "vitest";

/**
 * Captures everything the process writes to stdout and stderr (the gateway's logs) from now on, instead of
 * showing it; `vi.restoreAllMocks()` ends the capture. The tests then check what the logs hold.
 */
export function captureOutput(): { text: () => string } {
  let output = "";
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
      output += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
      return true;
    });
  }
  return { text: () => output };
}
