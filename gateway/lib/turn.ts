import "server-only";
import { randomUUID } from "node:crypto";
import { defaultAgent, type AgentClient, type AgentRequest, type AgentResult, type AgentStep } from "./agent-client";
import { channelsByName } from "./channels";
import type { Channel, ChannelName, InboundMessage } from "./channels/types";
import { getEnv } from "./env";
import { AppError, isAppError } from "./errors";
import { errorMeta, logger } from "./logger";
import { buildSystemPrompt, personaFrom } from "./persona";
import {
  claimTurn,
  getHistory,
  getSettings,
  getTurnById,
  listDueTurns,
  markTurnDelivered,
  markTurnFailed,
  recordInboundTurn,
  releaseOrphanedTurns,
  saveTurnAnswer,
  saveTurnProgress,
  scheduleTurnRetry,
  type ClaimedTurn,
  type TurnState,
} from "./queries";
import { createKeyedQueue } from "./serial";
import { createTurnGate, defaultTurnGate, type TurnGateOptions } from "./turn-gate";
import { answerText } from "./unfinished-note";

// One pipeline for every channel: store the inbound message, then, one turn at
// a time per conversation and in arrival order, load the history and persona,
// call the agent, store the answer and hand it to the channel.
//
// A turn moves received → answered → delivered, or to failed. Whoever runs it
// first claims it with one conditional UPDATE (queries.claimTurn), so the
// webhook's own run, the periodic sweep and a restarted process never run the
// same turn twice, and a delivered turn is never claimed again. Retryable
// failures (agent down, channel unreachable or rate-limited) leave the turn
// where it was with a next-attempt time; the sweep takes it up again.

export type TurnEvent =
  | { type: "accepted"; conversationId: string; turnId: string }
  | { type: "step"; step: AgentStep }
  | { type: "delta"; text: string }
  /** The model's hidden reasoning, for the webchat's live view only: never stored, sent to a channel or logged. */
  | { type: "thinking"; text: string }
  | { type: "final"; conversationId: string; response: string; model: string; finished: boolean }
  | { type: "error"; error: AppError };

export interface TurnOutcome {
  turnId: string;
  conversationId: string;
  state: TurnState;
  isDuplicate: boolean;
  answer?: { response: string; model: string };
  error?: AppError;
}

export interface TurnOptions {
  /** Receives steps and deltas as they come; the agent is streamed when given. */
  onEvent?: (event: TurnEvent) => void;
}

export interface RetryPolicy {
  /** Claims of one turn before it is marked failed. */
  maxAttempts: number;
  /** Wait before the second attempt; each next one waits twice as long, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A claim older than this is taken to be lost (longer than an agent run plus sending). */
  leaseMs: number;
  /** A new turn is left to its own webhook this long before the sweep may take it. */
  graceMs: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 6,
  baseDelayMs: 30_000,
  maxDelayMs: 30 * 60_000,
  leaseMs: 15 * 60_000,
  graceMs: 60_000,
};

export interface TurnDeps {
  agent: AgentClient;
  channels: Partial<Record<ChannelName, Channel>>;
  retry?: Partial<RetryPolicy>;
  /** How many turns run at once, and how busy the event loop may be for another to start (lib/turn-gate.ts). */
  gate?: Partial<TurnGateOptions>;
}

export interface AcceptedTurn {
  turnId: string;
  conversationId: string;
  externalId: string;
  isDuplicate: boolean;
}

const voiceAnswerByLang: Record<string, string> = {
  fr: "Je ne sais pas encore écouter les messages vocaux. Peux-tu me l'écrire ?",
  en: "I can't listen to voice messages yet. Could you type it instead?",
};

function isRetryable(error: AppError): boolean {
  return error.type === "unavailable" || error.detail.retryable === true;
}

const reasonOf = (error: AppError) => `${error.code}: ${error.message}`;

/** What the server asked us to wait (a channel's Retry-After), in ms; 0 when it did not say. */
function retryAfterMs(error: AppError): number {
  const value = error.detail.retryAfterMs;
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;
}

export function createTurnRunner(deps: TurnDeps) {
  const policy = { ...defaultRetryPolicy, ...deps.retry };
  const workerId = randomUUID();
  const inboxes = createKeyedQueue();
  const conversations = createKeyedQueue();
  const gate = createTurnGate({ ...defaultTurnGate, ...deps.gate });
  const running = new Map<string, Promise<TurnOutcome | undefined>>();
  let isSweeping = false;

  const backoff = (attempts: number) => Math.min(policy.baseDelayMs * 2 ** Math.max(0, attempts - 1), policy.maxDelayMs);

  async function callAgent(request: AgentRequest, emit: (event: TurnEvent) => void, stream: boolean) {
    if (!stream) return deps.agent.run(request);
    let result: AgentResult | undefined;
    for await (const event of deps.agent.stream(request)) {
      if (event.type === "final") result = event.result;
      else emit(event);
    }
    if (!result) throw new AppError("upstream:agent", "The agent's stream ended without an answer.");
    return result;
  }

  /**
   * Retry later when it may help and attempts remain (not before the server's
   * Retry-After, when it gave one); otherwise the turn has failed.
   */
  async function settleFailure(turn: ClaimedTurn, error: AppError, stay: "received" | "answered"): Promise<TurnState> {
    const retryable = turn.channel !== "webchat" && isRetryable(error);
    if (retryable && turn.attempts < policy.maxAttempts) {
      const wait = Math.max(backoff(turn.attempts), retryAfterMs(error));
      await scheduleTurnRetry({ id: turn.id, error: reasonOf(error), nextAttemptAt: new Date(Date.now() + wait) });
      return stay;
    }
    await markTurnFailed({ id: turn.id, error: `${reasonOf(error)}${retryable ? ` (gave up after ${turn.attempts} attempts)` : ""}` });
    if (retryable) logger.warn("turn.gave_up", { turnId: turn.id, channel: turn.channel, attempts: turn.attempts, code: error.code });
    return "failed";
  }

  async function deliver(turn: ClaimedTurn, text: string): Promise<{ state: TurnState; error?: AppError }> {
    const channel = deps.channels[turn.channel as ChannelName];
    const meta = { turnId: turn.id, channel: turn.channel, attempt: turn.attempts };
    try {
      if (!channel) throw new AppError("unavailable:config", `The ${turn.channel} channel is not configured; see README.`);
      await channel.send({
        channel: channel.name,
        channelId: turn.conversation.channelId,
        conversationId: turn.conversationId,
        replyTo: turn.externalId,
        text,
        startChunk: turn.sentChunks,
        onChunkSent: async (sentChunks) => void (await saveTurnProgress({ id: turn.id, sentChunks })),
      });
      await markTurnDelivered({ id: turn.id });
      if (channel.name !== "webchat") logger.info("turn.delivered", meta);
      return { state: "delivered" };
    } catch (caught) {
      const error = isAppError(caught) ? caught : new AppError("upstream:channel", "The channel failed to send the answer.", { cause: caught });
      const state = await settleFailure(turn, error, "answered");
      logger.warn("turn.send_failed", { ...meta, state, code: error.code, ...error.detail, ...(isAppError(caught) ? {} : errorMeta(caught)) });
      return { state, error };
    }
  }

  async function answer(turn: ClaimedTurn, emit: (event: TurnEvent) => void, stream: boolean) {
    const settings = await getSettings();
    if (turn.kind === "voice") {
      const lang = personaFrom(settings).persona_lang.split("-")[0] ?? "en";
      return { response: voiceAnswerByLang[lang] ?? voiceAnswerByLang.en!, model: "none", steps: 0, finished: true, historyLength: 0 };
    }
    const channel = deps.channels[turn.channel as ChannelName];
    const image = turn.mediaId && channel?.downloadImage ? await channel.downloadImage(turn.mediaId) : undefined;
    const history = await getHistory({ conversationId: turn.conversationId });
    const result = await callAgent(
      {
        message: turn.userMessage.content,
        history,
        model: turn.model,
        systemPrompt: buildSystemPrompt(personaFrom(settings)),
        ...(image ? { images: [image.data] } : {}),
      },
      emit,
      stream,
    );
    return { ...result, historyLength: history.length };
  }

  /** One attempt at a claimed turn: run the agent unless it already answered, then deliver. */
  async function attempt(turn: ClaimedTurn, emit: (event: TurnEvent) => void, stream: boolean): Promise<TurnOutcome> {
    const started = performance.now();
    const base = { turnId: turn.id, conversationId: turn.conversationId, isDuplicate: false };
    const meta = { turnId: turn.id, conversationId: turn.conversationId, channel: turn.channel, attempt: turn.attempts };
    if (turn.state === "answered" && turn.answerMessage) {
      const { content, model } = turn.answerMessage;
      const { state, error } = await deliver(turn, content);
      return { ...base, state, answer: { response: content, model: model ?? "" }, error };
    }
    try {
      const result = await answer(turn, emit, stream);
      // The one place the answer's text is settled: stored, streamed and sent as it is here.
      const response = answerText(result.response, result.finished);
      await saveTurnAnswer({ turnId: turn.id, content: response, model: result.model });
      logger.info("turn.answered", {
        ...meta,
        model: result.model,
        steps: result.steps,
        finished: result.finished,
        historyLength: result.historyLength,
        durationMs: Math.round(performance.now() - started),
      });
      emit({ type: "final", conversationId: turn.conversationId, response, model: result.model, finished: result.finished });
      const { state, error } = await deliver(turn, response);
      return { ...base, state, answer: { response, model: result.model }, error };
    } catch (caught) {
      // An unexpected error inside the gateway may clear (a full disk, a locked file): a channel's
      // turn is tried again like any retryable failure, and fails with the reason after the last attempt.
      const error = isAppError(caught)
        ? caught
        : new AppError("internal:chat", "The turn failed inside the gateway; see its logs.", { cause: caught, detail: { retryable: true } });
      const state = await settleFailure(turn, error, "received").catch(() => "failed" as const);
      logger.warn("turn.failed", {
        ...meta,
        state,
        code: error.code,
        durationMs: Math.round(performance.now() - started),
        ...error.detail,
        ...(isAppError(caught) ? {} : errorMeta(caught)),
      });
      emit({ type: "error", error });
      return { ...base, state, error };
    }
  }

  /** Claims the turn and runs it, or does nothing when it is finished or someone holds it. */
  async function claimAndRun(turnId: string, emit: (event: TurnEvent) => void, stream: boolean): Promise<TurnOutcome | undefined> {
    const turn = await claimTurn({ id: turnId, workerId, leaseMs: policy.leaseMs });
    if (!turn) return undefined;
    if (turn.attempts > policy.maxAttempts) {
      await markTurnFailed({ id: turn.id, error: `${turn.lastError ?? "unknown error"} (gave up after ${turn.attempts - 1} attempts)` });
      logger.warn("turn.gave_up", { turnId: turn.id, channel: turn.channel, attempts: turn.attempts - 1, code: turn.lastError?.split(":", 2).join(":") });
      return { turnId, conversationId: turn.conversationId, isDuplicate: false, state: "failed" };
    }
    return attempt(turn, emit, stream);
  }

  /** Queues the turn behind the others of its conversation; a turn already queued here is not queued twice. */
  function schedule(
    turnId: string,
    conversationId: string,
    emit: (event: TurnEvent) => void = () => {},
    stream = false,
  ): Promise<TurnOutcome | undefined> {
    const queued = running.get(turnId);
    if (queued) return queued;
    const done = conversations
      // A streamed turn has its owner watching: it starts at once; the others when the loop keeps up.
      .run(conversationId, () => gate.run(() => claimAndRun(turnId, emit, stream), { isUrgent: stream }))
      .catch((error: unknown) => {
        logger.error("turn.crashed", { turnId, ...errorMeta(error) });
        return undefined;
      })
      .finally(() => running.delete(turnId));
    running.set(turnId, done);
    return done;
  }

  async function store(inbound: InboundMessage) {
    const { turn, isDuplicate } = await recordInboundTurn({
      channel: inbound.channel,
      channelId: inbound.channelId,
      externalId: inbound.externalId,
      text: inbound.text,
      model: inbound.model,
      kind: inbound.kind,
      mediaId: inbound.media?.id,
      mediaType: inbound.media?.mimeType,
      nextAttemptAt: new Date(Date.now() + policy.graceMs),
    });
    logger.info(isDuplicate ? "turn.duplicate" : "turn.accepted", {
      turnId: turn.id,
      conversationId: turn.conversationId,
      channel: inbound.channel,
      kind: inbound.kind ?? "text",
    });
    return { turn, isDuplicate };
  }

  return {
    workerId,

    /**
     * Runs one inbound message through the pipeline. Resolves once the turn is
     * over, with its outcome; agent failures are recorded and returned, not thrown.
     */
    async runTurn(inbound: InboundMessage, { onEvent }: TurnOptions = {}): Promise<TurnOutcome> {
      const emit = (event: TurnEvent) => {
        try {
          onEvent?.(event);
        } catch (error) {
          logger.warn("turn.listener_failed", errorMeta(error));
        }
      };
      // Storing happens in arrival order per channel thread, and the processing
      // task is queued before the next arrival is even stored.
      const queued = await inboxes.run(`${inbound.channel}:${inbound.channelId}`, async () => {
        const { turn, isDuplicate } = await store(inbound);
        if (isDuplicate) return { turn, done: undefined };
        emit({ type: "accepted", conversationId: turn.conversationId, turnId: turn.id });
        return { turn, done: schedule(turn.id, turn.conversationId, emit, Boolean(onEvent)) };
      });
      const outcome = await queued.done;
      if (outcome) return outcome;
      const turn = (await getTurnById({ id: queued.turn.id })) ?? queued.turn;
      return { turnId: turn.id, conversationId: turn.conversationId, state: turn.state as TurnState, isDuplicate: !queued.done };
    },

    /** Stores messages durably, in order, without running them (a webhook answers in between). */
    async acceptTurns(messages: InboundMessage[]): Promise<AcceptedTurn[]> {
      const accepted: AcceptedTurn[] = [];
      for (const inbound of messages) {
        const { turn, isDuplicate } = await inboxes.run(`${inbound.channel}:${inbound.channelId}`, () => store(inbound));
        accepted.push({ turnId: turn.id, conversationId: turn.conversationId, externalId: inbound.externalId, isDuplicate });
      }
      return accepted;
    },

    /** Runs stored turns (in the order given within each conversation); resolves when all are over. */
    async runAccepted(turns: AcceptedTurn[]): Promise<(TurnOutcome | undefined)[]> {
      return Promise.all(turns.filter((turn) => !turn.isDuplicate).map((turn) => schedule(turn.turnId, turn.conversationId)));
    },

    /**
     * Takes up every unfinished turn that is due: after a restart, after a
     * backoff, or one whose webhook never got to run it. Returns how many it queued.
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

export function runTurn(inbound: InboundMessage, options?: TurnOptions): Promise<TurnOutcome> {
  return turnRunner().runTurn(inbound, options);
}
