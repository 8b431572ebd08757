import "server-only";
import { after } from "next/server";
import { errorMeta, logger } from "./logger";

// Work that runs after the response is sent. Inside a request, Next's after()
// ties it to the request's lifetime; outside one (tests, scripts) after()
// throws, and the task runs as a plain background promise instead.

const pending = new Set<Promise<void>>();

export function afterResponse(name: string, task: () => Promise<unknown>): void {
  const run = async () => {
    try {
      await task();
    } catch (error) {
      logger.error("background.failed", { task: name, ...errorMeta(error) });
    }
  };
  const track = () => {
    const promise = run();
    pending.add(promise);
    void promise.finally(() => pending.delete(promise));
    return promise;
  };
  try {
    // Started after the response, not awaited by it: Next keeps a request's context until its
    // after() callback settles, and turns can wait minutes behind a backlog.
    after(() => void track());
  } catch {
    void track();
  }
}

/** Resolves once every task started so far (and any they started) is over. */
export async function backgroundIdle(): Promise<void> {
  while (pending.size > 0) await Promise.all([...pending]);
}
