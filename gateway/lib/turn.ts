import "server-only";
import { defaultAgent, type AgentClient, type AgentRequest, type AgentResult, type AgentStep } from "./agent-client";
import { channelsByName } from "./channels";
import type { Channel, ChannelName, InboundMessage } from "./channels/types";
import { AppError, isAppError } from "./errors";
import { errorMeta, logger } from "./logger";
import { buildSystemPrompt, personaFrom } from "./persona";
import {
  getHistory,
  getSettings,
  listUnfinishedTurns,
  markTurnAttempt,
  markTurnDelivered,
  markTurnFailed,
  recordInboundTurn,
  saveTurnAnswer,
  type TurnState,
} from "./queries";
import { createKeyedQueue } from "./serial";

// One pipeline for every channel: store the inbound message, then, one turn at
// a time per conversation and in arrival order, load the history and persona,
// call the agent, store the answer and hand it to the channel.

export type TurnEvent =
  | { type: "accepted"; conversationId: string; turnId: string }
  | { type: "step"; step: AgentStep }
  | { type: "delta"; text: string }
  | { type: "final"; conversationId: string; response: string; model: string }
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

export interface TurnDeps {
  agent: AgentClient;
  channels: Partial<Record<ChannelName, Channel>>;
}

interface PendingTurn {
  id: string;
  conversationId: string;
  channel: string;
  channelId: string;
  externalId: string;
  model: string;
  text: string;
}

const MAX_ATTEMPTS = 3;

export function createTurnRunner(deps: TurnDeps) {
  const inboxes = createKeyedQueue();
  const conversations = createKeyedQueue();

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

  async function deliver(turn: PendingTurn, text: string): Promise<TurnState> {
    const channel = deps.channels[turn.channel as ChannelName];
    try {
      if (!channel) throw new AppError("unavailable:channel", `No channel named ${turn.channel} is configured.`);
      await channel.send({
        channel: channel.name,
        channelId: turn.channelId,
        conversationId: turn.conversationId,
        replyTo: turn.externalId,
        text,
      });
      await markTurnDelivered({ id: turn.id });
      return "delivered";
    } catch (error) {
      const reason = isAppError(error) ? `${error.code}: ${error.message}` : "send_failed";
      logger.warn("turn.send_failed", { turnId: turn.id, channel: turn.channel, ...errorMeta(error) });
      await markTurnFailed({ id: turn.id, error: reason, state: "answered" });
      return "answered";
    }
  }

  async function processTurn(turn: PendingTurn, emit: (event: TurnEvent) => void, stream: boolean): Promise<TurnOutcome> {
    const started = performance.now();
    const base = { turnId: turn.id, conversationId: turn.conversationId, isDuplicate: false };
    try {
      const [settings, history] = await Promise.all([getSettings(), getHistory({ conversationId: turn.conversationId })]);
      await markTurnAttempt({ id: turn.id });
      const request = {
        message: turn.text,
        history,
        model: turn.model,
        systemPrompt: buildSystemPrompt(personaFrom(settings)),
      };
      const result = await callAgent(request, emit, stream);
      await saveTurnAnswer({ turnId: turn.id, content: result.response, model: result.model });
      logger.info("turn.answered", {
        turnId: turn.id,
        conversationId: turn.conversationId,
        channel: turn.channel,
        model: result.model,
        steps: result.steps,
        historyLength: history.length,
        durationMs: Math.round(performance.now() - started),
      });
      emit({ type: "final", conversationId: turn.conversationId, response: result.response, model: result.model });
      const state = await deliver(turn, result.response);
      return { ...base, state, answer: { response: result.response, model: result.model } };
    } catch (caught) {
      const error = isAppError(caught)
        ? caught
        : new AppError("internal:chat", "The turn failed inside the gateway; see its logs.", { cause: caught });
      logger.warn("turn.failed", {
        turnId: turn.id,
        conversationId: turn.conversationId,
        channel: turn.channel,
        code: error.code,
        durationMs: Math.round(performance.now() - started),
        ...error.detail,
        ...(isAppError(caught) ? {} : errorMeta(caught)),
      });
      await markTurnFailed({ id: turn.id, error: `${error.code}: ${error.message}` }).catch(() => undefined);
      emit({ type: "error", error });
      return { ...base, state: "failed", error };
    }
  }

  return {
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
        const { turn, isDuplicate } = await recordInboundTurn(inbound);
        const meta = { turnId: turn.id, conversationId: turn.conversationId, channel: inbound.channel };
        if (isDuplicate) {
          logger.info("turn.duplicate", meta);
          return { turn, done: undefined };
        }
        logger.info("turn.accepted", meta);
        emit({ type: "accepted", conversationId: turn.conversationId, turnId: turn.id });
        const pending = { ...turn, channelId: inbound.channelId, text: inbound.text };
        const done = conversations.run(turn.conversationId, () => processTurn(pending, emit, Boolean(onEvent)));
        return { turn, done };
      });
      if (queued.done) return queued.done;
      const { turn } = queued;
      return { turnId: turn.id, conversationId: turn.conversationId, state: turn.state as TurnState, isDuplicate: true };
    },

    /** After a restart: finishes turns that were stored but never answered or delivered. */
    async resumeUnfinishedTurns({ before = new Date() }: { before?: Date } = {}): Promise<number> {
      const turns = await listUnfinishedTurns({ before });
      for (const turn of turns) {
        const pending: PendingTurn = { ...turn, channelId: turn.conversation.channelId, text: turn.userMessage.content };
        if (turn.state === "answered" && turn.answerMessage) {
          const answer = turn.answerMessage.content;
          void conversations.run(turn.conversationId, () => deliver(pending, answer));
        } else if (turn.attempts >= MAX_ATTEMPTS) {
          await markTurnFailed({ id: turn.id, error: `gave up after ${turn.attempts} attempts` });
        } else {
          void conversations.run(turn.conversationId, () => processTurn(pending, () => {}, false));
        }
      }
      if (turns.length > 0) logger.info("turn.resumed", { count: turns.length });
      return turns.length;
    },
  };
}

export type TurnRunner = ReturnType<typeof createTurnRunner>;

// Route bundles may each evaluate this module; the queues must be one per process.
const holder = globalThis as unknown as { myClawTurnRunner?: TurnRunner };

export function turnRunner(): TurnRunner {
  holder.myClawTurnRunner ??= createTurnRunner({ agent: defaultAgent, channels: channelsByName });
  return holder.myClawTurnRunner;
}

export function runTurn(inbound: InboundMessage, options?: TurnOptions): Promise<TurnOutcome> {
  return turnRunner().runTurn(inbound, options);
}
