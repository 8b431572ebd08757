import "server-only";
import type { AgentClient, AgentModels } from "../agent-client";
import { decideInChat } from "../approvals/service";
import { nextRunOf } from "../cron-schedule";
import { createConversation, getConversationById, setConversationModel } from "../db/conversations";
import { deleteCronJobById, listCronJobsByThread } from "../db/cron-jobs";
import { countPendingTurns, dropWaitingTurns, findLastFailedTurn } from "../db/turns";
import { getEnv } from "../env";
import { checkHealth } from "../health";
import { logger } from "../logger";
import type { Command, CommandName } from "./parse";
import { shortId, texts, type Lang } from "./texts";

// What each command does. A command runs as the answer of its own turn
// (lib/turns/attempt.ts), so it is stored, delivered and deduplicated like any
// answer; it only reads and writes the owner's own data, never calls the model.

export interface CommandContext {
  turnId: string;
  conversationId: string;
  channel: string;
  /** The chat on its channel (phone number, Talk token, webchat thread). */
  channelId: string;
  lang: Lang;
  agent: AgentClient;
  /** Aborts the conversation's running agent calls; returns how many. */
  stopRunning(conversationId: string): number;
}

type Handler = (arg: string, context: CommandContext) => Promise<string>;


async function installedModels(agent: AgentClient): Promise<AgentModels | undefined> {
  return agent.models().catch(() => undefined);
}

const handlers: Record<CommandName, Handler> = {
  help: async (_arg, { lang }) => texts[lang].help,

  new: async (_arg, { channel, channelId, conversationId, lang }) => {
    const current = await getConversationById({ id: conversationId });
    // The thread's newest conversation is the one it continues: the next message starts here, with no history.
    await createConversation({ channel, channelId, title: null, model: current?.model });
    return texts[lang].newConversation;
  },

  model: async (arg, { agent, conversationId, lang }) => {
    const t = texts[lang];
    const models = await installedModels(agent);
    const categories = models ? Object.keys(models.categories) : ["fast", "smart", "main", "vision", "code", "reason"];
    const installed = models?.installed ?? [];
    const choices = t.modelChoices(categories.join(", "), installed.join(", "));
    const caveat = models ? "" : `\n\n${t.agentUnreachable}`;
    if (!arg) {
      const conversation = await getConversationById({ id: conversationId });
      const current = conversation?.model ?? "smart";
      return `${t.model(current, models?.categories[current]?.model ?? undefined)}\n${choices}${caveat}`;
    }
    if (!categories.includes(arg) && !installed.includes(arg)) return `${t.modelUnknown(arg)}\n${choices}${caveat}`;
    await setConversationModel({ id: conversationId, model: arg });
    return t.modelSet(arg);
  },

  stop: async (_arg, { stopRunning, conversationId, turnId, lang }) => {
    const queued = await dropWaitingTurns({ conversationId, exceptId: turnId, reason: "conflict:chat: Dropped by the owner with /stop." });
    const running = stopRunning(conversationId);
    logger.info("command.stopped", { conversationId, running, queued });
    return texts[lang].stopped(running, queued);
  },

  status: async (_arg, { conversationId, turnId, agent, lang }) => {
    const [health, conversation, queued, failed, models] = await Promise.all([
      checkHealth(),
      getConversationById({ id: conversationId }),
      countPendingTurns({ conversationId, exceptId: turnId }),
      findLastFailedTurn({ conversationId }),
      installedModels(agent),
    ]);
    const category = conversation?.model ?? "smart";
    const resolved = models?.categories[category];
    const model = resolved ? `${category} → ${resolved.model ?? "?"}${resolved.available ? "" : " (not installed)"}` : category;
    const lastFailure = failed?.lastError ? `${failed.lastError} (${failed.updatedAt.toISOString()})` : null;
    return texts[lang].status({ agent: health.agent, ollama: health.ollama, model, queued, lastFailure });
  },

  reminders: async (_arg, { channel, channelId, lang }) => {
    const timeZone = getEnv().cronTimeZone;
    // One-shot jobs that ran or were missed are done; the others are still to come.
    const jobs = (await listCronJobsByThread({ channel, channelId })).filter((job) => !job.runAt || (!job.lastTurnId && !job.missedAt));
    if (jobs.length === 0) return texts[lang].noReminders;
    const when = new Intl.DateTimeFormat(lang === "fr" ? "fr-FR" : "en-GB", { timeZone, dateStyle: "medium", timeStyle: "short" });
    const lines = jobs.map((job) => {
      const next = nextRunOf(job, timeZone);
      return texts[lang].reminderLine(shortId(job.id), job.name, next ? when.format(next) : null);
    });
    return texts[lang].reminders(lines, timeZone);
  },

  cancel: async (arg, { channel, channelId, lang }) => {
    const t = texts[lang];
    if (!arg) return t.cancelUsage;
    const wanted = arg.split(/\s+/)[0]!.toLowerCase();
    const job = (await listCronJobsByThread({ channel, channelId })).find((candidate) => shortId(candidate.id).toLowerCase() === wanted);
    if (!job) return t.cancelUnknown(wanted);
    await deleteCronJobById({ id: job.id });
    return t.cancelled(job.name);
  },

  // An action the agent waits to run (lib/approvals/): the one waiting in this chat, or the one named by its id.
  approve: async (arg, { channel, channelId, lang }) => decideInChat({ channel, channelId, hint: arg.split(/\s+/)[0], lang }, "approved"),
  deny: async (arg, { channel, channelId, lang }) => decideInChat({ channel, channelId, hint: arg.split(/\s+/)[0], lang }, "denied"),
};

/** The command's answer, in the persona's language. */
export async function runCommand(command: Command, context: CommandContext): Promise<string> {
  logger.info("command.ran", { turnId: context.turnId, channel: context.channel, command: command.name });
  return handlers[command.name](command.arg, context);
}
