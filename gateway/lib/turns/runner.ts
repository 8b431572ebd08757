import "server-only";
import { randomUUID } from "node:crypto";
import { defaultAgent, type AgentClient } from "../agent-client";
import { parseCommand } from "../commands/parse";
import { channelsByName } from "../channels";
import type { Channel, ChannelName, InboundMessage } from "../channels/types";
import { claimTurn, getTurnById, listDueTurns, markTurnFailed, releaseOrphanedTurns } from "../db/turns";
import type { TurnState } from "../db/messages";
import { getEnv } from "../env";
import { AppError } from "../errors";
import { errorMeta, logger } from "../logger";
import { createKeyedQueue } from "./queue";
import { createTurnGate, defaultTurnGate, type TurnGateOptions } from "./gate";
import { createAttempt, type TurnOutcome } from "./attempt";
import { createListeners, type TurnListener } from "./listeners";
import { defaultRetryPolicy, type RetryPolicy } from "./retry";
import { createStops } from "./stops";
import { recordInbound } from "./store";

// The one entrance of the turn pipeline. Webhooks, the webchat and cron jobs
// all `submit` InboundMessages: each is stored durably (a redelivered
// (channel, externalId) finds its turn instead), then, one turn at a time per
// conversation and in arrival order, it is claimed, answered by the agent and
// delivered by its channel (./attempt.ts).
//
// A turn moves received → answered → delivered, or to failed. Whoever runs it
// first claims it with one conditional UPDATE (db/turns.claimTurn), so the
// submitter's own run, the periodic sweep and a restarted process never run the
// same turn twice, and a delivered turn is never claimed again. Retryable
// failures leave the turn where it was with a next-attempt time (./retry.ts);
// the sweep takes it up again.

export type { TurnOutcome } from "./attempt";
export type { TurnEvent, TurnListener } from "./listeners";
export type { RetryPolicy } from "./retry";
export { defaultRetryPolicy } from "./retry";

export interface TurnDeps {
  agent: AgentClient;
  channels: Partial<Record<ChannelName, Channel>>;
  retry?: Partial<RetryPolicy>;
  /** How many turns run at once, and how busy the event loop may be for another to start (./gate.ts). */
  gate?: Partial<TurnGateOptions>;
}

export interface SubmitOptions {
  /** Watches each fresh turn live (the webchat's stream): the agent is streamed and the turn starts at once. */
  listener?: TurnListener;
  /**
   * Sends the channel's read receipt for each fresh message before its turn runs, where the channel
   * has them (default true; a message the gateway wrote itself, a cron job's, passes false).
   */
  markRead?: boolean;
}

export interface Submission {
  turnId: string;
  conversationId: string;
  externalId: string;
  isDuplicate: boolean;
  /** Settles when the turn's run is over (undefined: someone else ran it, or a duplicate). */
  done: Promise<TurnOutcome | undefined>;
}

export function createTurnRunner(deps: TurnDeps) {
  const policy = { ...defaultRetryPolicy, ...deps.retry };
  const workerId = randomUUID();
  const inboxes = createKeyedQueue();
  const conversations = createKeyedQueue();
  const gate = createTurnGate({ ...defaultTurnGate, ...deps.gate });
  const listeners = createListeners();
  const stops = createStops();
  const attempt = createAttempt({ agent: deps.agent, channels: deps.channels, policy, listeners, stops });
  const running = new Map<string, Promise<TurnOutcome | undefined>>();
  let isSweeping = false;

  /** Claims the turn and runs it, or does nothing when it is finished or someone holds it. */
  async function claimAndRun(turnId: string): Promise<TurnOutcome | undefined> {
    const turn = await claimTurn({ id: turnId, workerId, leaseMs: policy.leaseMs });
    if (!turn) return undefined;
    if (turn.attempts > policy.maxAttempts) {
      await markTurnFailed({ id: turn.id, error: `${turn.lastError ?? "unknown error"} (gave up after ${turn.attempts - 1} attempts)` });
      logger.warn("turn.gave_up", { turnId: turn.id, channel: turn.channel, attempts: turn.attempts - 1, code: turn.lastError?.split(":", 2).join(":") });
      return { turnId, conversationId: turn.conversationId, isDuplicate: false, state: "failed" };
    }
    return attempt(turn);
  }

  /**
   * Queues the turn behind the others of its conversation; a turn already queued here is not queued twice.
   * A command (`isCommand`) is answered at once: it waits for no other turn (/stop must reach a running one).
   */
  function schedule(turnId: string, conversationId: string, before?: Promise<unknown>, isCommand = false): Promise<TurnOutcome | undefined> {
    const queued = running.get(turnId);
    if (queued) return queued;
    const done = conversations
      // A watched turn has its owner waiting: it starts at once; the others when the loop keeps up.
      .run(isCommand ? `command:${turnId}` : conversationId, async () => {
        await before;
        return gate.run(() => claimAndRun(turnId), { isUrgent: isCommand || listeners.isWatched(turnId) });
      })
      .catch((error: unknown) => {
        logger.error("turn.crashed", { turnId, ...errorMeta(error) });
        return undefined;
      })
      .finally(() => running.delete(turnId));
    running.set(turnId, done);
    return done;
  }

  /** The read receipt (and typing indicator) of a fresh message; a failure is logged, never blocks the turn. */
  async function markRead(inbound: InboundMessage, turnId: string): Promise<void> {
    const channel = deps.channels[inbound.channel];
    await channel?.markRead?.(inbound.externalId).catch((error: unknown) => {
      logger.warn(`${inbound.channel}.mark_read_failed`, { turnId, ...errorMeta(error), code: (error as AppError).code });
    });
  }

  async function submitOne(inbound: InboundMessage, options: SubmitOptions): Promise<Submission> {
    const { turn, isDuplicate } = await recordInbound(inbound, { nextAttemptAt: new Date(Date.now() + policy.graceMs) });
    const base = { turnId: turn.id, conversationId: turn.conversationId, externalId: inbound.externalId, isDuplicate };
    logger.info(isDuplicate ? "turn.duplicate" : "turn.accepted", {
      turnId: turn.id,
      conversationId: turn.conversationId,
      channel: inbound.channel,
      kind: inbound.kind ?? "text",
    });
    if (isDuplicate) return { ...base, done: Promise.resolve(undefined) };
    const unwatch = options.listener && listeners.watch(turn.id, options.listener);
    listeners.emit(turn.id, { type: "accepted", conversationId: turn.conversationId, turnId: turn.id });
    const read = options.markRead === false ? undefined : markRead(inbound, turn.id);
    const isCommand = (inbound.kind ?? "text") === "text" && parseCommand(inbound.text) !== undefined;
    const done = schedule(turn.id, turn.conversationId, read, isCommand);
    if (unwatch) void done.finally(unwatch);
    return { ...base, done };
  }

  return {
    workerId,

    /**
     * The pipeline's entrance: stores the messages durably and in order (per
     * channel thread), queues the fresh ones, and resolves once all are stored.
     */
    async submit(messages: InboundMessage[], options: SubmitOptions = {}): Promise<Submission[]> {
      const submitted: Submission[] = [];
      for (const inbound of messages) {
        // The processing task is queued before the next arrival of the thread is even stored.
        submitted.push(await inboxes.run(`${inbound.channel}:${inbound.channelId}`, () => submitOne(inbound, options)));
      }
      return submitted;
    },

    /** Submits one message and resolves with its outcome once the turn is over (a duplicate: as it stands). */
    async runTurn(inbound: InboundMessage, options: SubmitOptions = {}): Promise<TurnOutcome> {
      const [submitted] = await this.submit([inbound], options);
      const outcome = await submitted!.done;
      if (outcome) return outcome;
      const turn = await getTurnById({ id: submitted!.turnId });
      return { turnId: submitted!.turnId, conversationId: submitted!.conversationId, state: (turn?.state ?? "failed") as TurnState, isDuplicate: submitted!.isDuplicate };
    },

    /**
     * Takes up every unfinished turn that is due: after a restart, after a
     * backoff, or one whose submitter never got to run it. Returns how many it queued.
     */
    async resumeDueTurns(): Promise<number> {
      if (isSweeping) return 0;
      isSweeping = true;
      try {
        const due = (await listDueTurns({})).filter((turn) => !running.has(turn.id));
        for (const turn of due) void schedule(turn.id, turn.conversationId);
        if (due.length > 0) logger.info("turn.resumed", { count: due.length });
        return due.length;
      } finally {
        isSweeping = false;
      }
    },

    /** At start-up: turns an earlier process left (claimed or never started) are due now. */
    async recoverTurns({ startedAt }: { startedAt: Date }): Promise<number> {
      const released = await releaseOrphanedTurns({ workerId, startedAt });
      if (released > 0) logger.info("turn.recovered", { count: released });
      return this.resumeDueTurns();
    },

    /** Resolves when every turn this runner queued is over (tests, benchmarks). */
    async idle(): Promise<void> {
      while (running.size > 0) await Promise.all([...running.values()]);
    },
  };
}

export type TurnRunner = ReturnType<typeof createTurnRunner>;

// Route bundles may each evaluate this module; the queues must be one per process.
const holder = globalThis as unknown as { myClawTurnRunner?: TurnRunner };

export function turnRunner(): TurnRunner {
  if (!holder.myClawTurnRunner) {
    const { retryBaseMs, maxAttempts, graceMs } = getEnv().turns;
    holder.myClawTurnRunner = createTurnRunner({
      agent: defaultAgent,
      channels: channelsByName(),
      retry: { baseDelayMs: retryBaseMs, maxAttempts, graceMs, maxDelayMs: Math.max(defaultRetryPolicy.maxDelayMs, retryBaseMs) },
    });
  }
  return holder.myClawTurnRunner;
}
