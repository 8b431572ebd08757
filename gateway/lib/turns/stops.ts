// The agent calls that /stop can interrupt: each running turn's AbortController,
// by turn id, with its conversation. Aborting makes the agent client end the
// call at once (the agent stops its run when the gateway leaves) and fail the
// turn as stopped, never retried.

export function createStops() {
  const active = new Map<string, { conversationId: string; controller: AbortController }>();
  return {
    /** The signal of this turn's agent call; `release` once the call is over. */
    begin(turnId: string, conversationId: string): { signal: AbortSignal; release: () => void } {
      const controller = new AbortController();
      active.set(turnId, { conversationId, controller });
      return { signal: controller.signal, release: () => void active.delete(turnId) };
    },
    /** Aborts the conversation's running agent calls; returns how many. */
    stop(conversationId: string): number {
      let stopped = 0;
      for (const { conversationId: owner, controller } of active.values()) {
        if (owner !== conversationId || controller.signal.aborted) continue;
        controller.abort();
        stopped += 1;
      }
      return stopped;
    },
  };
}
export type Stops = ReturnType<typeof createStops>;
