import type { ChannelName } from "./types";

// How the browser presents each channel: one row a channel, so the webchat's
// components read flags and labels here and never compare a channel's name.
// No server-only imports: the /cron page and the chat use it.

export interface ChannelView {
  /** In the cron job's form and list. */
  label: string;
  /** In the conversation list, where space is short. */
  shortLabel: string;
  /** The webchat writes in this channel's conversations itself; the others are read here and answered on their channel. */
  writesHere: boolean;
  /** How a cron job names its thread: a webchat conversation picked from a list, or an id the owner types. */
  thread: { picked: true } | { picked: false; label: string; hint: string };
  /** Proactive messages need the owner to have written in the last 24 hours (WhatsApp's window). */
  hasReplyWindow: boolean;
}

export const channelViews: Record<ChannelName, ChannelView> = {
  webchat: { label: "Webchat", shortLabel: "web", writesHere: true, thread: { picked: true }, hasReplyWindow: false },
  whatsapp: {
    label: "WhatsApp",
    shortLabel: "WhatsApp",
    writesHere: false,
    thread: { picked: false, label: "WhatsApp number", hint: "With the country code, digits only, e.g. 33612345678 (the number you write to the bot from)." },
    hasReplyWindow: true,
  },
  nextcloud: {
    label: "Nextcloud Talk",
    shortLabel: "Talk",
    writesHere: false,
    thread: { picked: false, label: "Talk conversation token", hint: "The end of the conversation's URL: …/call/<token>. The bot must be enabled there." },
    hasReplyWindow: false,
  },
};

/** The view of a channel name read from the server; an unknown one is shown by its name, read-only. */
export function viewOf(channel: string): ChannelView {
  return (
    (channelViews as Record<string, ChannelView | undefined>)[channel] ?? {
      label: channel,
      shortLabel: channel,
      writesHere: false,
      thread: { picked: false, label: "Thread id", hint: "" },
      hasReplyWindow: false,
    }
  );
}
