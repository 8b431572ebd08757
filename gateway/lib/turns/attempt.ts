import "server-only";
import type { AgentClient, AgentRequest, AgentResult } from "../agent-client";
import { afterAgentLost } from "../approvals/service";
import { turnRefFor } from "../approvals/turn-ref";
import { outboundAttachments } from "../attachments/store";
import type { Channel, ChannelName, OutboundAttachment } from "../channels/types";
import { parseCommand } from "../commands/parse";
import { runCommand } from "../commands/run";
import { langOf, type Lang } from "../commands/texts";
import { parseCronPrompt } from "../cron-prompt";
import type { TurnState } from "../db/messages";
import { markTurnDelivered, markTurnFailed, saveTurnProgress, scheduleTurnRetry, type ClaimedTurn } from "../db/turns";
import { AppError, isAppError } from "../errors";
import { errorMeta, logger } from "../logger";
import { buildSystemPrompt, type Persona } from "../persona";
import { recordUndelivered } from "../reminders/notices";
import { replyToFor } from "../reminders/reply-to";
import { loadPersona, ownerLang } from "../settings";
import { composeAnswer } from "./compose";
import { tellFailure } from "./failure-notice";
import { getHistory } from "./history";
import type { Listeners } from "./listeners";
import { decideFailure, type RetryPolicy } from "./retry";
import type { Stops } from "./stops";
import { saveAnswer } from "./store";

// One attempt at a claimed turn: ask the agent unless it already answered,
// store the answer, hand it to the channel; a failure is retried later or
// recorded, never thrown.

export interface TurnOutcome {
  turnId: string;
  conversationId: string;
  state: TurnState;
  isDuplicate: boolean;
  answer?: { response: string; model: string };
  error?: AppError;
}

export interface AttemptDeps {
  agent: AgentClient;
  channels: Partial<Record<ChannelName, Channel>>;
  policy: RetryPolicy;
  listeners: Listeners;
  stops: Stops;
}

type Answer = Pick<AgentResult, "response" | "model" | "steps" | "finished" | "attachments" | "approvals"> & { historyLength: number };

/** What the webchat shows of a file: everything but its bytes. */
const attachmentView = ({ id, name, mime, size, caption }: OutboundAttachment) => ({ id, name, mime, size, caption });

/** A scheduled job's turn (its message is the job's prompt), as opposed to one the owner sent. */
const isScheduled = (turn: ClaimedTurn) => parseCronPrompt(turn.userMessage.content) !== null;

export function createAttempt({ agent, channels, policy, listeners, stops }: AttemptDeps) {
  const channelOf = (turn: ClaimedTurn) => channels[turn.channel as ChannelName];

  async function callAgent(turn: ClaimedTurn, request: AgentRequest): Promise<AgentResult> {
    const { signal, release } = stops.begin(turn.id, turn.conversationId);
    try {
      if (!listeners.isWatched(turn.id)) return await agent.run({ ...request, signal });
      let result: AgentResult | undefined;
      for await (const event of agent.stream({ ...request, signal })) {
        if (event.type === "final") result = event.result;
        else listeners.emit(turn.id, event);
      }
      if (!result) throw new AppError("upstream:agent", "The agent's stream ended without an answer.");
      return result;
    } finally {
      release();
    }
  }

  /** Retried later (the turn stays in `stay`) or failed for good; returns the state it is left in. */
  async function settleFailure(turn: ClaimedTurn, error: AppError, stay: "received" | "answered"): Promise<TurnState> {
    const canRetry = !channelOf(turn)?.capabilities.streams;
    const decision = decideFailure(policy, { attempts: turn.attempts, error, canRetry });
    if (decision.retry) {
      await scheduleTurnRetry({ id: turn.id, error: decision.reason, nextAttemptAt: decision.nextAttemptAt });
      return stay;
    }
    await markTurnFailed({ id: turn.id, error: decision.reason });
    if (decision.gaveUp) logger.warn("turn.gave_up", { turnId: turn.id, channel: turn.channel, attempts: turn.attempts, code: error.code });
    return "failed";
  }

  /**
   * Sends the stored answer and its files; `lang` is the persona's, read here (with the files, inside the
   * failure handling) when the caller has not: a resumed turn.
   */
  async function deliver(
    turn: ClaimedTurn,
    text: string,
    files: OutboundAttachment[] | (() => Promise<OutboundAttachment[]>),
    lang?: Lang,
  ): Promise<{ state: TurnState; error?: AppError }> {
    const channel = channelOf(turn);
    const meta = { turnId: turn.id, channel: turn.channel, attempt: turn.attempts };
    try {
      if (!channel) throw new AppError("unavailable:config", `The ${turn.channel} channel is not configured; see README.`);
      await channel.send({
        channel: channel.name,
        channelId: turn.conversation.channelId,
        conversationId: turn.conversationId,
        replyTo: turn.externalId,
        text,
        attachments: typeof files === "function" ? await files() : files,
        lang: lang ?? (await ownerLang()),
        startChunk: turn.sentChunks,
        onChunkSent: async (sentChunks) => void (await saveTurnProgress({ id: turn.id, sentChunks })),
      });
      await markTurnDelivered({ id: turn.id });
      if (!channel.capabilities.streams) logger.info("turn.delivered", meta);
      return { state: "delivered" };
    } catch (caught) {
      const error = isAppError(caught) ? caught : new AppError("upstream:channel", "The channel failed to send the answer.", { cause: caught });
      const state = await settleFailure(turn, error, "answered");
      if (state === "failed") {
        // A scheduled message that failed for good: the owner is told at their next message in that chat.
        const undelivered = { ...turn, channelId: turn.conversation.channelId, message: turn.userMessage.content };
        await recordUndelivered(undelivered).catch((noted: unknown) => logger.warn("turn.notice_failed", errorMeta(noted)));
      }
      logger.warn("turn.send_failed", { ...meta, state, code: error.code, ...error.detail, ...(isAppError(caught) ? {} : errorMeta(caught)) });
      return { state, error };
    }
  }

  /** A reminder's text, a command's answer, or the channel's canned reply to what the agent cannot take; undefined: ask the agent. */
  async function answerWithoutAgent(turn: ClaimedTurn, personaLang: string): Promise<string | undefined> {
    // A reminder's text, as the owner asked for it to be sent.
    if (turn.kind === "reminder") return parseCronPrompt(turn.userMessage.content)?.prompt ?? turn.userMessage.content;
    const command = turn.kind === "text" ? parseCommand(turn.userMessage.content) : undefined;
    if (command) {
      const { id: turnId, conversationId, channel, conversation } = turn;
      const context = { turnId, conversationId, channel, channelId: conversation.channelId, lang: langOf(personaLang), agent };
      return runCommand(command, { ...context, stopRunning: (id) => stops.stop(id) });
    }
    if (turn.kind === "text") return undefined;
    return channelOf(turn)?.cannedReply?.(turn.kind as "image" | "voice", personaLang.split("-")[0] ?? "en");
  }

  async function answer(turn: ClaimedTurn, persona: Persona): Promise<Answer> {
    const channel = channelOf(turn);
    const fixed = await answerWithoutAgent(turn, persona.persona_lang);
    if (fixed !== undefined) return { response: fixed, model: "none", steps: 0, finished: true, attachments: [], approvals: [], historyLength: 0 };
    const image = turn.mediaId && channel?.downloadImage ? await channel.downloadImage(turn.mediaId) : undefined;
    const history = await getHistory({ conversationId: turn.conversationId });
    // A scheduled job's turn has nobody to answer a reminder to: no reference, so the agent refuses to set one.
    const replyTo = isScheduled(turn) ? undefined : replyToFor({ channel: turn.channel, channelId: turn.conversation.channelId });
    // The turn's reference, for the approvals the agent may ask; a scheduled turn has nobody to ask.
    const turnRef = turnRefFor(turn.id);
    const result = await callAgent(turn, {
      message: turn.userMessage.content,
      history,
      model: turn.model,
      systemPrompt: buildSystemPrompt(persona),
      ...(image ? { images: [image.data] } : {}),
      ...(replyTo ? { replyTo } : {}),
      ...(turnRef ? { turnRef } : {}),
      ...(isScheduled(turn) ? { attended: false } : {}),
    });
    return { ...result, historyLength: history.length };
  }

  /** Runs the claimed turn to its next state; agent and channel failures are recorded and returned. */
  return async function attempt(turn: ClaimedTurn): Promise<TurnOutcome> {
    const started = performance.now();
    const base = { turnId: turn.id, conversationId: turn.conversationId, isDuplicate: false };
    const meta = { turnId: turn.id, conversationId: turn.conversationId, channel: turn.channel, attempt: turn.attempts };
    if (turn.state === "answered" && turn.answerMessage) {
      const { id, content, model } = turn.answerMessage;
      const { state, error } = await deliver(turn, content, () => outboundAttachments(id));
      return { ...base, state, answer: { response: content, model: model ?? "" }, error };
    }
    try {
      // The persona, read once: its prompt for the agent, its language for what the gateway writes itself.
      const persona = await loadPersona();
      const lang = langOf(persona.persona_lang);
      const result = await answer(turn, persona);
      const thread = { id: turn.id, channel: turn.channel, channelId: turn.conversation.channelId, isScheduled: isScheduled(turn) };
      const { response, files, noticeIds } = await composeAnswer({ agent, result, lang }, thread);
      const saved = await saveAnswer({ turnId: turn.id, content: response, model: result.model, files, noticeIds });
      const attachments = await outboundAttachments(saved.answerMessageId);
      logger.info("turn.answered", {
        ...meta,
        model: result.model,
        steps: result.steps,
        finished: result.finished,
        historyLength: result.historyLength,
        attachments: attachments.length,
        durationMs: Math.round(performance.now() - started),
      });
      listeners.emit(turn.id, {
        type: "final",
        conversationId: turn.conversationId,
        response,
        model: result.model,
        finished: result.finished,
        attachments: attachments.map(attachmentView),
      });
      const { state, error } = await deliver(turn, response, attachments, lang);
      return { ...base, state, answer: { response, model: result.model }, error };
    } catch (caught) {
      // An unexpected error inside the gateway may clear (a full disk, a locked file): a channel's
      // turn is tried again like any retryable failure, and fails with the reason after the last attempt.
      let error = isAppError(caught)
        ? caught
        : new AppError("internal:chat", "The turn failed inside the gateway; see its logs.", { cause: caught, detail: { retryable: true } });
      if (error.surface === "agent") error = await afterAgentLost(turn.id, error);
      const state = await settleFailure(turn, error, "received").catch(() => "failed" as const);
      // A scheduled run's failure is on the /cron page; a /stop answers itself.
      if (state === "failed" && !isScheduled(turn) && !error.detail.stopped) {
        const lang = await ownerLang().catch(() => "en" as const);
        await tellFailure(channelOf(turn), { ...turn, channelId: turn.conversation.channelId }, error, lang);
      }
      logger.warn("turn.failed", {
        ...meta,
        state,
        code: error.code,
        durationMs: Math.round(performance.now() - started),
        ...error.detail,
        ...(isAppError(caught) ? {} : errorMeta(caught)),
      });
      listeners.emit(turn.id, { type: "error", error });
      return { ...base, state, error };
    }
  };
}
