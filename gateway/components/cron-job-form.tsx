"use client";

import { useState } from "react";
import { channelNames } from "@/lib/channels/types";
import { channelViews } from "@/lib/channels/views";
import type { ConversationSummary, CronJob, CronJobInput } from "@/lib/client-api";
import { ModelSelect } from "./model-select";
import { WhatsAppWindowNote } from "./whatsapp-window-note";

export const field =
  "w-full rounded-lg border border-zinc-300 bg-transparent px-3 py-2 outline-none focus:border-blue-500 dark:border-zinc-700 dark:bg-zinc-900";

const emptyJob: CronJobInput = { name: "", schedule: "0 9 * * *", prompt: "", channel: channelNames[0], channelId: "", model: "smart", enabled: true };

/** Create or edit one job; the server validates again and its message is shown as it comes. */
export function CronJobForm({
  job,
  conversations,
  onSave,
  onCancel,
}: {
  job: CronJob | null;
  conversations: ConversationSummary[];
  onSave: (input: CronJobInput) => Promise<void>;
  onCancel: () => void;
}) {
  const [input, setInput] = useState<CronJobInput>(job ? { ...job } : emptyJob);
  const [error, setError] = useState<string | null>(null);
  const [isSaving, setIsSaving] = useState(false);
  const set = (change: Partial<CronJobInput>) => setInput((current) => ({ ...current, ...change }));
  const view = channelViews[input.channel];
  const pickable = conversations.filter((c) => c.channel === input.channel);

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    setIsSaving(true);
    setError(null);
    try {
      await onSave(input);
    } catch (caught) {
      setError(caught instanceof Error ? caught.message : "Could not save the job.");
    } finally {
      setIsSaving(false);
    }
  }

  return (
    <form onSubmit={submit} className="space-y-4 rounded-xl border border-zinc-200 bg-white p-4 dark:border-zinc-800 dark:bg-zinc-900" data-testid="cron-form">
      <h2 className="font-medium">{job ? `Edit “${job.name}”` : "New scheduled message"}</h2>
      <label className="block space-y-1">
        <span className="text-sm font-medium">Name</span>
        <input name="name" required maxLength={80} value={input.name} onChange={(e) => set({ name: e.target.value })} className={field} />
      </label>
      <label className="block space-y-1">
        <span className="text-sm font-medium">Schedule</span>
        <span className="block text-xs text-zinc-500">
          Cron: minute hour day-of-month month day-of-week. <code>0 9 * * 1-5</code> = 9:00 on weekdays, <code>*/30 * * * *</code> = every
          half hour, <code>@daily</code> = midnight.
        </span>
        <input name="schedule" required value={input.schedule} onChange={(e) => set({ schedule: e.target.value })} className={`${field} font-mono`} />
      </label>
      <label className="block space-y-1">
        <span className="text-sm font-medium">Prompt</span>
        <span className="block text-xs text-zinc-500">What the assistant is asked each time; its answer is the message you receive.</span>
        <textarea name="prompt" required rows={4} maxLength={8000} value={input.prompt} onChange={(e) => set({ prompt: e.target.value })} className={field} />
      </label>
      <div className="grid gap-4 sm:grid-cols-2">
        <label className="block space-y-1">
          <span className="text-sm font-medium">Channel</span>
          <select
            name="channel"
            value={input.channel}
            onChange={(e) => set({ channel: e.target.value as CronJobInput["channel"], channelId: "" })}
            className={field}
          >
            {channelNames.map((name) => (
              <option key={name} value={name}>
                {channelViews[name].label}
              </option>
            ))}
          </select>
        </label>
        <div className="block space-y-1">
          <span className="text-sm font-medium">Model</span>
          <div>
            <ModelSelect value={input.model} onChange={(model) => set({ model })} />
          </div>
        </div>
      </div>
      {view.thread.picked ? (
        <label className="block space-y-1">
          <span className="text-sm font-medium">Conversation</span>
          <select name="channelId" value={input.channelId} onChange={(e) => set({ channelId: e.target.value })} className={field}>
            <option value="">A new conversation for this job</option>
            {pickable.map((c) => (
              <option key={c.id} value={c.id}>
                {c.title ?? "Untitled"}
              </option>
            ))}
          </select>
        </label>
      ) : (
        <label className="block space-y-1">
          <span className="text-sm font-medium">{view.thread.label}</span>
          <span className="block text-xs text-zinc-500">{view.thread.hint}</span>
          <input name="channelId" required value={input.channelId} onChange={(e) => set({ channelId: e.target.value })} className={`${field} font-mono`} />
        </label>
      )}
      {view.hasReplyWindow && <WhatsAppWindowNote />}
      <label className="flex items-center gap-2 text-sm">
        <input type="checkbox" checked={input.enabled} onChange={(e) => set({ enabled: e.target.checked })} />
        Enabled
      </label>
      <div className="flex flex-wrap items-center gap-3">
        <button type="submit" disabled={isSaving} className="rounded-lg bg-blue-600 px-4 py-2 font-medium text-white disabled:opacity-50">
          {isSaving ? "Saving…" : job ? "Save" : "Create"}
        </button>
        <button type="button" onClick={onCancel} className="rounded-lg px-3 py-2 text-sm text-zinc-600 hover:underline dark:text-zinc-400">
          Cancel
        </button>
        {error && (
          <span role="alert" className="text-sm text-red-600">
            {error}
          </span>
        )}
      </div>
    </form>
  );
}
