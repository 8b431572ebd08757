import "server-only";
import type { Channel } from "../channels/types";
import type { Lang } from "../commands/texts";
import type { AppError } from "../errors";
import { errorMeta, logger } from "../logger";

// A turn from WhatsApp or Talk that failed for good (the last attempt, or an error no retry can mend: a message
// too long for the model, a time-out, an agent lost while an approval waited) would leave the owner with
// silence: the webchat shows a failure live, those chats have no live view. The chat is told once, when the turn
// is marked failed, with the reason. Best effort: a channel that cannot take the answer cannot take this either.

const texts = {
  en: (reason: string) => `⚠️ I could not answer your message: ${reason}`,
  fr: (reason: string) => `⚠️ Je n'ai pas pu répondre à ton message : ${reason}`,
} satisfies Record<Lang, (reason: string) => string>;

export const failureNotice = (lang: Lang, reason: string): string => texts[lang](reason);

export async function tellFailure(
  channel: Channel | undefined,
  turn: { id: string; channelId: string; conversationId: string; externalId: string },
  error: AppError,
  lang: Lang,
): Promise<void> {
  if (!channel || channel.capabilities.streams) return;
  const message = { channel: channel.name, channelId: turn.channelId, conversationId: turn.conversationId, replyTo: turn.externalId };
  try {
    await channel.send({ ...message, text: failureNotice(lang, error.message) });
    logger.info("turn.failure_told", { turnId: turn.id, channel: channel.name, code: error.code });
  } catch (sent) {
    logger.warn("turn.failure_tell_failed", { turnId: turn.id, channel: channel.name, code: error.code, ...errorMeta(sent) });
  }
}
