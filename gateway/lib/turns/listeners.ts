import type { AgentApprovalEvent, AgentStep } from "../agent-client";
import type { AppError } from "../errors";
import { errorMeta, logger } from "../logger";

// Who watches a turn live (the webchat's stream), registered by turn id. A turn
// with a listener is streamed from the agent; without one it runs all the same.

export type TurnEvent =
  | { type: "accepted"; conversationId: string; turnId: string }
  | { type: "step"; step: AgentStep }
  | { type: "delta"; text: string }
  /** The model's hidden reasoning, for the webchat's live view only: never stored, sent to a channel or logged. */
  | { type: "thinking"; text: string }
  /** An action waiting for the owner's approval (the webchat shows Approve and Deny), then its outcome. */
  | { type: "approval"; approval: AgentApprovalEvent }
  | {
      type: "final";
      conversationId: string;
      response: string;
      model: string;
      finished: boolean;
      /** The answer's files (their bytes at /api/attachments/<id>). */
      attachments: { id: string; name: string; mime: string; size: number; caption: string | null }[];
    }
  | { type: "error"; error: AppError };

export type TurnListener = (event: TurnEvent) => void;

export function createListeners() {
  const byTurn = new Map<string, TurnListener>();
  return {
    /** Registers the turn's listener; the returned function removes it. */
    watch(turnId: string, listener: TurnListener): () => void {
      byTurn.set(turnId, listener);
      return () => {
        if (byTurn.get(turnId) === listener) byTurn.delete(turnId);
      };
    },
    isWatched: (turnId: string) => byTurn.has(turnId),
    /** A listener that throws is logged and never breaks the turn. */
    emit(turnId: string, event: TurnEvent): void {
      try {
        byTurn.get(turnId)?.(event);
      } catch (error) {
        logger.warn("turn.listener_failed", errorMeta(error));
      }
    },
  };
}
export type Listeners = ReturnType<typeof createListeners>;
