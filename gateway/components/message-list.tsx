"use client";

import { useEffect, useRef, useState } from "react";
import { humanSize } from "@/lib/attachments/notes";
import { api, type ApprovalInfo, type AttachmentInfo, type ChatMessage, type StepInfo } from "@/lib/client-api";
import { parseCronPrompt } from "@/lib/cron-prompt";
import { Markdown } from "./markdown";

export interface LiveTurn {
  text: string;
  step: StepInfo | null;
  /** The model's hidden reasoning so far (thinking on); shown while the turn streams, never stored. */
  thinking: string;
  /** An action waiting for the owner's approval, then its outcome. */
  approval?: ApprovalInfo;
}

export const emptyLiveTurn: LiveTurn = { text: "", step: null, thinking: "" };

/** Muted and collapsible; open until the model starts writing, then the owner decides. */
function LiveThinking({ text, isWriting }: { text: string; isWriting: boolean }) {
  // null: follow the stream; set once the owner opens or closes it by hand.
  const [chosen, setChosen] = useState<boolean | null>(null);
  const isOpen = chosen ?? !isWriting;
  return (
    <details
      data-testid="live-thinking"
      open={isOpen}
      // Also fired when React itself sets `open`: only a change it did not make is the owner's choice.
      onToggle={(event) => {
        if (event.currentTarget.open !== isOpen) setChosen(event.currentTarget.open);
      }}
      className="max-w-[95%] rounded-xl border border-dashed border-zinc-200 px-3 py-1.5 text-xs text-zinc-400 dark:border-zinc-800 dark:text-zinc-500"
    >
      <summary className="cursor-pointer select-none italic">Thinking…</summary>
      <p className="mt-1 max-h-40 overflow-y-auto whitespace-pre-wrap break-words italic">{text}</p>
    </details>
  );
}

function describeStep(live: LiveTurn): string {
  if (!live.step) return live.text ? "Writing…" : "Thinking…";
  const names = live.step.tool_calls.map((call) => call.name);
  const tools = names.filter((name) => name !== "final_answer");
  const prefix = `Step ${live.step.step}`;
  if (live.step.error) return `${prefix}: retrying after an error`;
  if (tools.length) return `${prefix}: ${tools.join(", ")}`;
  return names.includes("final_answer") ? `${prefix}: answering` : `${prefix}: thinking`;
}

const INLINE_IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/** The answer's files: images shown inline (a click opens them whole), other files as downloads. */
function Attachments({ files }: { files: AttachmentInfo[] }) {
  return (
    <div className="mt-2 flex flex-col gap-2" data-testid="attachments">
      {files.map((file) => {
        const href = `/api/attachments/${encodeURIComponent(file.id)}`;
        return (
          <figure key={file.id} className="flex flex-col gap-1" data-testid="attachment">
            {INLINE_IMAGES.has(file.mime) ? (
              <a href={href} target="_blank" rel="noopener">
                {/* eslint-disable-next-line @next/next/no-img-element -- a private file behind the session, not an optimisable asset */}
                <img src={href} alt={file.caption ?? file.name} className="max-h-80 max-w-full rounded-lg border border-zinc-200 dark:border-zinc-800" />
              </a>
            ) : (
              <a href={href} download={file.name} className="text-sm text-blue-600 underline dark:text-blue-400">
                📎 {file.name}
              </a>
            )}
            <figcaption className="text-xs text-zinc-500">
              {file.caption ? `${file.caption} · ` : ""}
              {file.name} · {humanSize(file.size)}
            </figcaption>
          </figure>
        );
      })}
    </div>
  );
}

/** The agent waits to run an action: what it is, and the owner's two buttons. */
function LiveApproval({ approval }: { approval: ApprovalInfo }) {
  const [answer, setAnswer] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const decide = async (decision: "approve" | "deny") => {
    setBusy(true);
    try {
      setAnswer((await api.decideApproval(approval.id, decision)).text);
    } catch (error) {
      setAnswer(error instanceof Error ? error.message : "The decision could not be sent.");
    } finally {
      setBusy(false);
    }
  };
  const waiting = approval.state === "pending" && answer === null;
  return (
    <div className="max-w-[95%] rounded-xl border border-amber-400 bg-amber-50 px-3 py-2 text-sm dark:bg-amber-950" data-testid="live-approval" role="alert">
      <p className="font-medium">Approval needed</p>
      <pre className="my-1 whitespace-pre-wrap break-words font-mono text-xs">{approval.summary}</pre>
      {approval.source && <p className="mb-1 text-xs text-zinc-600 dark:text-zinc-400">Why: {approval.source}, which could have asked for this.</p>}
      {waiting ? (
        <div className="flex gap-2">
          <button type="button" disabled={busy} onClick={() => void decide("approve")} className="rounded-lg bg-blue-600 px-3 py-1 text-white disabled:opacity-50">
            Approve
          </button>
          <button type="button" disabled={busy} onClick={() => void decide("deny")} className="rounded-lg border border-zinc-400 px-3 py-1 disabled:opacity-50">
            Deny
          </button>
        </div>
      ) : (
        <p className="text-xs text-zinc-600 dark:text-zinc-400" data-testid="approval-outcome">
          {answer ?? approval.state}
        </p>
      )}
    </div>
  );
}

export function MessageList({ messages, live }: { messages: ChatMessage[]; live: LiveTurn | null }) {
  const end = useRef<HTMLDivElement>(null);
  useEffect(() => {
    end.current?.scrollIntoView({ block: "end" });
  }, [messages, live]);

  return (
    <div className="flex-1 overflow-y-auto px-3 py-4 sm:px-6" data-testid="messages">
      <div className="mx-auto flex max-w-3xl flex-col gap-3">
        {messages.map((message) => {
          const scheduled = message.role === "user" ? parseCronPrompt(message.content) : null;
          if (scheduled) {
            // The owner did not type it: shown as the job that asked, not as a message of theirs.
            return (
              <div key={message.id} className="flex flex-col items-center gap-1 text-center" data-testid="message-scheduled">
                <div className="max-w-[85%] rounded-xl border border-dashed border-zinc-300 px-3 py-1.5 text-xs text-zinc-500 dark:border-zinc-700">
                  <span className="font-medium">Scheduled · {scheduled.jobName}</span>
                  <span className="block whitespace-pre-wrap break-words">{scheduled.prompt}</span>
                </div>
                {message.turnState === "failed" && (
                  <span className="text-xs text-red-600" role="status">
                    No answer: {message.turnError?.replace(/^[a-z_]+:[a-z_]+: /, "") ?? "the run failed"}
                  </span>
                )}
              </div>
            );
          }
          return message.role === "user" ? (
            <div key={message.id} className="flex flex-col items-end gap-1" data-testid="message-user">
              <div className="max-w-[85%] whitespace-pre-wrap break-words rounded-2xl rounded-br-sm bg-blue-600 px-3 py-2 text-white">
                {message.content}
              </div>
              {message.turnState === "failed" && (
                <span className="text-xs text-red-600" role="status">
                  No answer: {message.turnError?.replace(/^[a-z_]+:[a-z_]+: /, "") ?? "the turn failed"}
                </span>
              )}
              {message.turnState === "received" && <span className="text-xs text-zinc-500">Waiting for the agent…</span>}
            </div>
          ) : (
            <div key={message.id} className="flex flex-col items-start gap-1" data-testid="message-assistant">
              <div className="max-w-[95%] rounded-2xl rounded-bl-sm bg-white px-3 py-2 shadow-sm dark:bg-zinc-900">
                <Markdown text={message.content} />
                {message.attachments && message.attachments.length > 0 && <Attachments files={message.attachments} />}
              </div>
              {message.model && <span className="text-xs text-zinc-500">{message.model}</span>}
            </div>
          );
        })}
        {live && (
          <div className="flex flex-col items-start gap-1" data-testid="live-turn">
            {live.thinking && <LiveThinking text={live.thinking} isWriting={live.text.length > 0} />}
            {live.approval && <LiveApproval approval={live.approval} />}
            {/* The agent's raw output as it is written (thoughts and code); the answer replaces it. */}
            {live.text && (
              <pre
                data-testid="live-text"
                className="max-h-48 max-w-[95%] overflow-y-auto whitespace-pre-wrap break-words rounded-xl border border-dashed border-zinc-300 px-3 py-2 font-mono text-xs text-zinc-500 dark:border-zinc-700"
              >
                {live.text}
              </pre>
            )}
            <span className="flex items-center gap-2 text-xs text-zinc-500" data-testid="step-indicator" aria-live="polite">
              <span className="size-2 animate-pulse rounded-full bg-blue-500" />
              {describeStep(live)}
            </span>
          </div>
        )}
        <div ref={end} />
      </div>
    </div>
  );
}
