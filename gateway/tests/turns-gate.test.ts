import { describe, expect, it } from "vitest";
import { createTurnGate } from "../lib/turns/gate";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A task that records when it ran and holds its place until released. */
function heldTask(log: string[], name: string) {
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    release: () => release(),
    task: async () => {
      log.push(`start ${name}`);
      await released;
      log.push(`end ${name}`);
      return name;
    },
  };
}

describe("turn gate", () => {
  it("runs at most `width` queued tasks at once, in arrival order, and returns their results", async () => {
    const gate = createTurnGate({ width: 2, lagLimitMs: 1_000, tickMs: 1 });
    const log: string[] = [];
    const tasks = ["a", "b", "c", "d"].map((name) => heldTask(log, name));
    const results = tasks.map(({ task }) => gate.run(task));
    await sleep(30);
    expect(log).toEqual(["start a", "start b"]);
    expect(gate.running).toBe(2);
    expect(gate.waiting).toBe(2);
    tasks[1]!.release();
    await sleep(30);
    expect(log).toEqual(["start a", "start b", "end b", "start c"]);
    for (const { release } of tasks) release();
    expect(await Promise.all(results)).toEqual(["a", "b", "c", "d"]);
    expect(gate.running).toBe(0);
  });

  it("starts an urgent task at once, even when the gate is full", async () => {
    const gate = createTurnGate({ width: 1, lagLimitMs: 1_000, tickMs: 1 });
    const log: string[] = [];
    const held = heldTask(log, "queued");
    const first = gate.run(held.task);
    await sleep(20);
    const urgent = await gate.run(async () => "urgent", { isUrgent: true });
    expect(urgent).toBe("urgent");
    held.release();
    expect(await first).toBe("queued");
  });

  it("passes a task's failure on and frees its place", async () => {
    const gate = createTurnGate({ width: 1, lagLimitMs: 1_000, tickMs: 1 });
    await expect(gate.run(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await gate.run(async () => "next")).toBe("next");
    expect(gate.running).toBe(0);
  });

  it("starts nothing while the event loop is blocked, and starts once it keeps up again", async () => {
    const gate = createTurnGate({ width: 4, lagLimitMs: 20, tickMs: 5 });
    let started = 0;
    // Something else holds the loop in 60 ms slices (as a burst of requests would) for a while.
    let busy = true;
    const hog = (async () => {
      while (busy) {
        const until = performance.now() + 60;
        while (performance.now() < until) {
          // the loop is held
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const done = gate.run(async () => void (started += 1));
    await sleep(300);
    expect(started).toBe(0);
    busy = false;
    await hog;
    await done;
    expect(started).toBe(1);
  });
});
