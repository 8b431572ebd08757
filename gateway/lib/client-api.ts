// Browser-side calls to the gateway's API. Shapes mirror the route handlers.
import type { ChannelName } from "./channels/types";
import type { CronJobInput, CronJobView } from "./cron-job-schema";
import type { HealthReport } from "./health";
import { bodyChunks, parseSse } from "./sse";

export type { ChannelName } from "./channels/types";
export type { CronJobInput } from "./cron-job-schema";
export type CronJob = CronJobView;

export interface ConversationSummary {
  id: string;
  channel: ChannelName;
  channelId: string;
  title: string | null;
  model: string;
  updatedAt: string;
}

/** A file sent with an answer; its bytes are at /api/attachments/<id>. */
export interface AttachmentInfo {
  id: string;
  name: string;
  mime: string;
  size: number;
  caption: string | null;
}

export interface ChatMessage {
  id: string;
  role: "user" | "assistant";
  content: string;
  model: string | null;
  createdAt: string;
  turnState: "received" | "answered" | "delivered" | "failed" | null;
  turnError: string | null;
  /** Files the agent sent with this answer (absent on the user's messages). */
  attachments?: AttachmentInfo[];
}

export interface StepInfo {
  step: number;
  tool_calls: { name: string; arguments: unknown }[];
  observation?: string | null;
  error?: string | null;
}

export interface ModelsInfo {
  categories: Record<string, { model: string | null; available: boolean; provider: string }>;
  installed: string[];
}

/** GET /api/health's body (a type-only import: nothing of lib/health.ts reaches the browser). */
export type HealthInfo = HealthReport;

export interface Persona {
  persona_name: string;
  persona_lang: string;
  system_prompt: string;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(path, {
    ...init,
    headers: { "content-type": "application/json", ...init.headers },
    credentials: "same-origin",
  });
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as { error?: string };
    throw new ApiError(body.error ?? `Request failed (${response.status})`, response.status);
  }
  return (response.status === 204 ? undefined : await response.json()) as T;
}

export const api = {
  login: (token: string) => call<{ ok: true }>("/api/auth/login", { method: "POST", body: JSON.stringify({ token }) }),
  logout: () => call<{ ok: true }>("/api/auth/logout", { method: "POST", body: "{}" }),
  conversations: () => call<{ conversations: ConversationSummary[] }>("/api/conversations"),
  messages: (id: string) =>
    call<{ conversation: ConversationSummary; messages: ChatMessage[] }>(`/api/conversations/${encodeURIComponent(id)}/messages`),
  deleteConversation: (id: string) => call<void>(`/api/conversations/${encodeURIComponent(id)}`, { method: "DELETE" }),
  models: () => call<ModelsInfo>("/api/models"),
  settings: () => call<Persona>("/api/settings"),
  saveSettings: (persona: Persona) => call<Persona>("/api/settings", { method: "PUT", body: JSON.stringify(persona) }),
  cronJobs: () => call<{ jobs: CronJob[]; timeZone: string }>("/api/cron-jobs"),
  createCronJob: (job: CronJobInput) => call<CronJob>("/api/cron-jobs", { method: "POST", body: JSON.stringify(job) }),
  updateCronJob: (id: string, patch: Partial<CronJobInput>) =>
    call<CronJob>(`/api/cron-jobs/${encodeURIComponent(id)}`, { method: "PATCH", body: JSON.stringify(patch) }),
  deleteCronJob: (id: string) => call<void>(`/api/cron-jobs/${encodeURIComponent(id)}`, { method: "DELETE" }),
  runCronJob: (id: string) => call<CronJob>(`/api/cron-jobs/${encodeURIComponent(id)}/run`, { method: "POST", body: "{}" }),
  decideApproval: (id: string, decision: "approve" | "deny") =>
    call<{ decided: boolean; text: string; state: string }>(`/api/approvals/${encodeURIComponent(id)}/decision`, {
      method: "POST",
      body: JSON.stringify({ decision }),
    }),
  health: async (): Promise<HealthInfo | null> => {
    const response = await fetch("/api/health", { cache: "no-store" }).catch(() => null);
    return response ? ((await response.json().catch(() => null)) as HealthInfo | null) : null;
  },
};

/** An action the agent waits to run until the owner approves it (issue 14). */
export interface ApprovalInfo {
  id: string;
  tool: string;
  summary: string;
  state: string;
  expires_at?: string | null;
  source?: string | null;
}

export type ChatStreamEvent =
  | { type: "start"; conversationId: string }
  | { type: "step"; step: StepInfo }
  | { type: "delta"; text: string }
  /** The model's hidden reasoning: shown while the turn streams, never part of the answer. */
  | { type: "thinking"; text: string }
  | { type: "approval"; approval: ApprovalInfo }
  /** `response` already carries the note when the agent stopped before finishing. */
  | { type: "final"; conversationId: string; response: string; model: string; finished: boolean; attachments: AttachmentInfo[] }
  | { type: "error"; error: string };

/** Posts a message and reports the turn's events as they arrive. */
export async function sendChat(
  body: { message: string; conversationId?: string; model?: string },
  onEvent: (event: ChatStreamEvent) => void,
): Promise<void> {
  const response = await fetch("/api/chat", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  if (!response.ok || !response.body) {
    const error = (await response.json().catch(() => ({}))) as { error?: string };
    throw new ApiError(error.error ?? `Request failed (${response.status})`, response.status);
  }
  for await (const { event, data } of parseSse(bodyChunks(response.body))) {
    const payload = JSON.parse(data) as Record<string, unknown>;
    if (event === "start") onEvent({ type: "start", conversationId: String(payload.conversationId) });
    else if (event === "step") onEvent({ type: "step", step: payload as unknown as StepInfo });
    else if (event === "delta") onEvent({ type: "delta", text: String(payload.text ?? "") });
    else if (event === "thinking") onEvent({ type: "thinking", text: String(payload.text ?? "") });
    else if (event === "approval") onEvent({ type: "approval", approval: payload as unknown as ApprovalInfo });
    else if (event === "final")
      onEvent({
        type: "final",
        conversationId: String(payload.conversationId),
        response: String(payload.response),
        model: String(payload.model),
        finished: payload.finished !== false,
        attachments: Array.isArray(payload.attachments) ? (payload.attachments as AttachmentInfo[]) : [],
      });
    else if (event === "error") onEvent({ type: "error", error: String(payload.error ?? "The turn failed.") });
  }
}
