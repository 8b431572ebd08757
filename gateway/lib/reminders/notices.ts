import "server-only";
import type { Lang } from "../commands/texts";
import { parseCronPrompt, cronSlotOf } from "../cron-prompt";
import { addNotice, listPendingNotices, type NoticeKind, type PendingNotice } from "../db/notices";
import { getEnv } from "../env";
import { logger } from "../logger";
import { localTime } from "./create";

// What the owner is told, at the top of the next answer in a chat, about that
// chat's reminders that were missed or could not be delivered: the time it was
// due (owner's time zone) and its words.

const texts: Record<Lang, Record<NoticeKind, (when: string, subject: string) => string>> = {
  en: {
    missed: (when, subject) => `⚠️ Reminder missed (the machine was off at ${when}): ${subject}`,
    undelivered: (when, subject) => `⚠️ Reminder of ${when} that could not be delivered here: ${subject}`,
  },
  fr: {
    missed: (when, subject) => `⚠️ Rappel manqué (la machine était éteinte le ${when}) : ${subject}`,
    undelivered: (when, subject) => `⚠️ Rappel du ${when} qui n'a pas pu être envoyé ici : ${subject}`,
  },
};

export function noticeLine(notice: Pick<PendingNotice, "kind" | "at" | "subject">, lang: Lang, timeZone: string): string {
  const say = notice.kind === "missed" ? texts[lang].missed : texts[lang].undelivered;
  return say(localTime(notice.at, timeZone), notice.subject);
}

/** The chat's pending notices and the lines that tell them (empty when there are none). */
export async function pendingNoticesFor(thread: { channel: string; channelId: string }, lang: Lang) {
  const notices = await listPendingNotices(thread);
  const timeZone = getEnv().cronTimeZone;
  return { ids: notices.map((n) => n.id), lines: notices.map((n) => noticeLine(n, lang, timeZone)) };
}

/** A scheduled message that could not be delivered for good: its chat is told at the owner's next message there. */
export async function recordUndelivered(turn: { id: string; channel: string; channelId: string; externalId: string; createdAt: Date; message: string }) {
  const scheduled = parseCronPrompt(turn.message);
  if (!scheduled) return;
  // When it was due: its slot, or when a run started by hand began.
  const at = cronSlotOf(turn.externalId) ?? turn.createdAt;
  await addNotice({ channel: turn.channel, channelId: turn.channelId, kind: "undelivered", at, subject: scheduled.prompt });
  logger.info("turn.notice_recorded", { turnId: turn.id, channel: turn.channel, kind: "undelivered" });
}
