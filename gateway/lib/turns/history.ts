import "server-only";
import type { HistoryEntry } from "../agent-client";
import { parseCommand } from "../commands/parse";
import { listSettledMessages, type Role, type SettledMessage } from "../db/messages";

/**
 * Messages newest first → the agent's history, oldest first, each answer right
 * after the question it answers, even when the owner sent more messages while
 * the agent was thinking. Chat commands and their replies are left out: they
 * were for the gateway, and every token of history is read again by the model.
 */
export function pairHistory(newestFirst: SettledMessage[]): HistoryEntry[] {
  const rows = [...newestFirst].reverse();
  const answerByQuestion = new Map(rows.flatMap((row) => (row.answeredIn ? [[row.answeredIn.userMessageId, row] as const] : [])));
  const placed = new Set<string>();
  const history: HistoryEntry[] = [];
  for (const row of rows) {
    if (placed.has(row.id)) continue;
    const answer = answerByQuestion.get(row.id);
    if (row.role === "user" && parseCommand(row.content)) {
      if (answer) placed.add(answer.id);
      continue;
    }
    history.push({ role: row.role as Role, content: row.content });
    if (answer) {
      history.push({ role: answer.role as Role, content: answer.content });
      placed.add(answer.id);
    }
  }
  return history;
}

/**
 * The last `limit` messages of the conversation for the agent's context. User
 * messages whose turn has not been processed yet (later arrivals queued behind
 * the current turn, and the current one) are left out.
 */
export async function getHistory({ conversationId, limit = 20 }: { conversationId: string; limit?: number }): Promise<HistoryEntry[]> {
  return pairHistory(await listSettledMessages({ conversationId, limit }));
}
