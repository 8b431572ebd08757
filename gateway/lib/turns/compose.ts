import "server-only";
import type { AgentClient, AgentResult } from "../agent-client";
import { approvalTexts } from "../approvals/texts";
import { attachmentNotes } from "../attachments/notes";
import { fetchAttachments } from "../attachments/store";
import type { Lang } from "../commands/texts";
import type { NewAttachment } from "../db/attachments";
import { pendingNoticesFor } from "../reminders/notices";
import { answerText } from "../unfinished-note";

// The one place an answer's text is settled, before it is stored, streamed and
// sent as it is: the chat's untold notices on top (an owner's message only), the
// agent's text (with the note when it ran out of steps), then what the gateway
// adds itself: a file the agent could not give, what a scheduled run could not
// do without the owner. The files come with it, fetched from the agent.

export interface ComposedAnswer {
  response: string;
  files: NewAttachment[];
  /** The notices this answer tells, marked told when it is stored. */
  noticeIds: string[];
}

export async function composeAnswer(
  { agent, result, lang }: { agent: AgentClient; result: Pick<AgentResult, "response" | "finished" | "steps" | "attachments" | "approvals">; lang: Lang },
  turn: { id: string; channel: string; channelId: string; isScheduled: boolean },
): Promise<ComposedAnswer> {
  const { files, missing } = await fetchAttachments(agent, result.attachments, { turnId: turn.id });
  const notices = turn.isScheduled ? { ids: [], lines: [] } : await pendingNoticesFor({ channel: turn.channel, channelId: turn.channelId }, lang);
  const unattended = [...new Set(result.approvals.filter((a) => a.decision === "unattended").map((a) => a.tool))];
  const response = [
    ...notices.lines,
    answerText(result.response, result, lang),
    ...missing.map(attachmentNotes[lang].unavailable),
    ...(unattended.length > 0 ? [approvalTexts[lang].notRun(unattended)] : []),
  ].join("\n\n");
  return { response, files, noticeIds: notices.ids };
}
