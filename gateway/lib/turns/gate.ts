// Turns yield to requests. One event loop both acknowledges the webhooks and
// runs the turns; under a burst, running every accepted turn at once starves
// the acknowledgements (Nextcloud Talk gives up after 5 s and never retries,
// Meta retries and delivers everything again). So a queued turn starts only
// when the loop is keeping up, and at most `width` run at once; the rest wait,
// stored, in arrival order. A turn whose owner is watching (the webchat's
// stream) starts at once.

export interface TurnGateOptions {
  /** Turns running at once (their agent calls wait in the agent's own queue beyond its slots). */
  width: number;
  /** A timer late by more than this means requests are waiting: no new turn starts. */
  lagLimitMs: number;
  /** How long the gate sleeps to measure the loop's lag between two starts. */
  tickMs: number;
}

export const defaultTurnGate: TurnGateOptions = { width: 8, lagLimitMs: 25, tickMs: 5 };

type Waiter = () => void;

export function createTurnGate(options: TurnGateOptions = defaultTurnGate) {
  const queued: Waiter[] = [];
  let running = 0;
  let pumping = false;

  /** Sleeps one tick; answers how late the timer fired (the time other callbacks held the loop). */
  function lag(): Promise<number> {
    const started = performance.now();
    return new Promise((resolve) => setTimeout(() => resolve(performance.now() - started - options.tickMs), options.tickMs));
  }

  async function pump(): Promise<void> {
    if (pumping) return;
    pumping = true;
    try {
      while (running < options.width && queued.length > 0) {
        // One start per tick in which the loop kept up.
        if ((await lag()) > options.lagLimitMs) continue;
        queued.shift()?.();
      }
    } finally {
      pumping = false;
    }
  }

  return {
    /** Runs the task when the gate lets it through; resolves or rejects as the task does. */
    run<T>(task: () => Promise<T>, { isUrgent = false }: { isUrgent?: boolean } = {}): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const finish = () => {
          running -= 1;
          void pump();
        };
        const start: Waiter = () => {
          running += 1;
          task().then(
            (value) => {
              finish();
              resolve(value);
            },
            (error: unknown) => {
              finish();
              reject(error);
            },
          );
        };
        if (isUrgent) return start();
        queued.push(start);
        void pump();
      });
    },
    get running(): number {
      return running;
    },
    get waiting(): number {
      return queued.length;
    },
  };
}

export type TurnGate = ReturnType<typeof createTurnGate>;
