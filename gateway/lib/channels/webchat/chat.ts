import "server-only";
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { modelSchema } from "../../cron-job-schema";
import { getConversationById } from "../../db/conversations";
import { AppError } from "../../errors";
import { logger } from "../../logger";
import { encodeSse, sseKeepAlive } from "../../sse";
import { turnRunner, type TurnEvent } from "../../turns/runner";

// The webchat's side of a turn: the browser's request becomes an InboundMessage,
// and the turn's events become our SSE stream. The turn does not depend on the
// stream: if the browser leaves, the answer is still stored.

export const chatSchema = z.object({
  // The agent takes at most 32 000 characters; refusing more here keeps a doomed turn out of the history.
  message: z
    .string()
    .max(32_000, "must be at most 32000 characters")
    .refine((text) => text.trim().length > 0, "must not be empty"),
  conversationId: z.string().max(64).optional(),
  model: modelSchema.optional(),
});
export type ChatBody = z.infer<typeof chatSchema>;

const KEEP_ALIVE_MS = 15_000;

function toSse(event: TurnEvent): Uint8Array | undefined {
  switch (event.type) {
    case "accepted":
      return encodeSse("start", { conversationId: event.conversationId, turnId: event.turnId });
    case "step":
      return encodeSse("step", event.step);
    case "delta":
      return encodeSse("delta", { text: event.text });
    case "approval":
      // An action waiting for the owner: the live view shows it with Approve and Deny (POST /api/approvals/<id>/decision).
      return encodeSse("approval", event.approval);
    case "thinking":
      // Progress for the live view only; the stored answer never contains it.
      return encodeSse("thinking", { text: event.text });
    case "final":
      return encodeSse("final", {
        conversationId: event.conversationId,
        response: event.response,
        model: event.model,
        finished: event.finished,
        attachments: event.attachments,
      });
    case "error":
      return encodeSse("error", { error: event.error.message, code: event.error.code });
  }
}

async function webchatThread(conversationId: string | undefined): Promise<string> {
  if (!conversationId) return randomUUID();
  const conversation = await getConversationById({ id: conversationId });
  if (!conversation) throw new AppError("not_found:conversation", "No such conversation; start a new one.");
  if (conversation.channel !== "webchat") {
    throw new AppError(
      "conflict:conversation",
      `This conversation happens on ${conversation.channel}; the webchat can read it but answers there.`,
    );
  }
  return conversation.channelId;
}

/**
 * Starts a webchat turn and returns its event stream once the message is stored
 * (so storage problems are real HTTP errors, not stream events).
 */
export async function startChat({ message, conversationId, model }: ChatBody): Promise<Response> {
  const channelId = await webchatThread(conversationId);
  let isOpen = true;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const write = (bytes: Uint8Array) => {
    if (!isOpen) return;
    try {
      controller.enqueue(bytes);
    } catch {
      isOpen = false;
    }
  };
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      isOpen = false;
      logger.info("chat.client_left", { channel: "webchat" });
    },
  });
  const keepAlive = setInterval(() => write(sseKeepAlive), KEEP_ALIVE_MS);

  let accepted!: () => void;
  const isAccepted = new Promise<void>((resolve) => (accepted = resolve));
  const listener = (event: TurnEvent) => {
    if (event.type === "accepted") accepted();
    const bytes = toSse(event);
    if (bytes) write(bytes);
  };
  const turn = turnRunner()
    .runTurn({ channel: "webchat", channelId, externalId: randomUUID(), text: message, model }, { listener })
    .finally(() => {
      clearInterval(keepAlive);
      if (isOpen) {
        isOpen = false;
        controller.close();
      }
    });

  // Storing failed: no stream, a plain error response.
  await Promise.race([isAccepted, turn]);
  return new Response(stream, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
    },
  });
}
