"use client";

import Link from "next/link";
import { useCallback, useEffect, useState } from "react";
import { viewOf } from "@/lib/channels/views";
import { api, type ConversationSummary, type CronJob, type CronJobInput } from "@/lib/client-api";
import { CronJobForm } from "./cron-job-form";
import { WhatsAppWindowNote } from "./whatsapp-window-note";
import { useFailure } from "./use-failure";

const statusStyle: Record<string, string> = {
  ok: "bg-emerald-100 text-emerald-800 dark:bg-emerald-950 dark:text-emerald-300",
  running: "bg-blue-100 text-blue-800 dark:bg-blue-950 dark:text-blue-300",
  retrying: "bg-amber-100 text-amber-800 dark:bg-amber-950 dark:text-amber-300",
  failed: "bg-red-100 text-red-800 dark:bg-red-950 dark:text-red-300",
};

function when(iso: string, timeZone: string): string {
  return new Date(iso).toLocaleString(undefined, { timeZone, weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

/** The scheduled messages: list, next fire time in CRON_TIMEZONE, last outcome, and every action on them. */
export function CronJobs() {
  const [jobs, setJobs] = useState<CronJob[] | null>(null);
  const [timeZone, setTimeZone] = useState("UTC");
  const [conversations, setConversations] = useState<ConversationSummary[]>([]);
  const [editing, setEditing] = useState<CronJob | "new" | null>(null);
  const [busyId, setBusyId] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loadedAt, setLoadedAt] = useState(0);

  const fail = useFailure(setError);

  const show = useCallback((list: { jobs: CronJob[]; timeZone: string }) => {
    setJobs(list.jobs);
    setTimeZone(list.timeZone);
    setLoadedAt(Date.now());
  }, []);
  const load = useCallback(() => api.cronJobs().then(show, (caught: unknown) => fail(caught, "Could not load the jobs.")), [show, fail]);

  useEffect(() => {
    api.cronJobs().then(show, (caught: unknown) => fail(caught, "Could not load the jobs."));
    api.conversations().then(({ conversations: list }) => setConversations(list), () => undefined);
  }, [show, fail]);

  async function save(input: CronJobInput) {
    if (editing === "new") await api.createCronJob(input);
    else if (editing) await api.updateCronJob(editing.id, input);
    setEditing(null);
    await load();
  }

  async function act(job: CronJob, action: () => Promise<unknown>, fallback: string) {
    setBusyId(job.id);
    setError(null);
    try {
      await action();
    } catch (caught) {
      fail(caught, fallback);
    } finally {
      await load();
      setBusyId(null);
    }
  }

  // Shown at once; the reload after the PATCH brings the new next run (or the old state back on failure).
  const toggle = (job: CronJob, enabled: boolean) => {
    setJobs((list) => list?.map((j) => (j.id === job.id ? { ...j, enabled } : j)) ?? list);
    void act(job, () => api.updateCronJob(job.id, { enabled }), "Could not change the job.");
  };

  const remove = (job: CronJob) => {
    if (window.confirm(`Delete the job “${job.name}”? Its messages stay in their conversation.`)) {
      void act(job, () => api.deleteCronJob(job.id), "Could not delete the job.");
    }
  };
  return (
    <main className="mx-auto h-full max-w-3xl overflow-y-auto p-4 sm:p-6">
      <div className="mb-6 flex items-center justify-between">
        <Link href="/" className="text-sm text-blue-600 hover:underline">
          ← Back to the chat
        </Link>
        <Link href="/settings" className="text-sm text-zinc-600 hover:underline dark:text-zinc-400">
          Settings
        </Link>
      </div>
      <div className="mb-4 flex flex-wrap items-end justify-between gap-2">
        <div>
          <h1 className="text-lg font-semibold">Scheduled messages</h1>
          <p className="text-xs text-zinc-500">
            Times in <span data-testid="cron-timezone">{timeZone}</span> (CRON_TIMEZONE). They run when the crontab calls the gateway
            (<code>make cron-install</code>).
          </p>
        </div>
        {editing === null && (
          <button type="button" onClick={() => setEditing("new")} className="rounded-lg bg-blue-600 px-3 py-2 text-sm font-medium text-white">
            New job
          </button>
        )}
      </div>
      {error && (
        <p role="alert" className="mb-3 text-sm text-red-600">
          {error}
        </p>
      )}
      {editing !== null && (
        <div className="mb-6">
          <CronJobForm job={editing === "new" ? null : editing} conversations={conversations} onSave={save} onCancel={() => setEditing(null)} />
        </div>
      )}
      {jobs === null ? (
        <p className="text-zinc-500">Loading…</p>
      ) : jobs.length === 0 ? (
        <p className="text-zinc-500">No scheduled messages yet.</p>
      ) : (
        <ul className="space-y-3" data-testid="cron-jobs">
          {jobs.map((job) => (
            <li key={job.id} className="space-y-2 rounded-xl border border-zinc-200 bg-white p-3 dark:border-zinc-800 dark:bg-zinc-900">
              <div className="flex flex-wrap items-center gap-2">
                <span className="min-w-0 flex-1 truncate font-medium">{job.name}</span>
                <label className="flex items-center gap-1 text-xs text-zinc-600 dark:text-zinc-400">
                  <input
                    type="checkbox"
                    checked={job.enabled}
                    disabled={busyId === job.id}
                    onChange={(e) => toggle(job, e.target.checked)}
                  />
                  Enabled
                </label>
              </div>
              <p className="text-sm text-zinc-600 dark:text-zinc-400">
                {job.runAt ? <span>once, {when(job.runAt, timeZone)}</span> : <code className="font-mono">{job.schedule}</code>} ·{" "}
                {viewOf(job.channel).label}
                {!viewOf(job.channel).thread.picked && <span className="font-mono"> {job.channelId}</span>} ·{" "}
                {job.kind === "reminder" ? "reminder, sent as written" : job.model}
              </p>
              <p className="line-clamp-2 text-sm whitespace-pre-wrap">{job.prompt}</p>
              <p className="text-xs text-zinc-500">
                Next:{" "}
                {!job.nextRun
                  ? job.missedAt
                    ? `missed: the machine was off at that time (noticed ${when(job.missedAt, timeZone)})`
                    : job.runAt && job.lastRun
                      ? "done"
                      : "never (disabled)"
                  : new Date(job.nextRun).getTime() <= loadedAt
                    ? "due now, at the crontab's next call"
                    : `${when(job.nextRun, timeZone)} (${timeZone})`}
                {job.lastRun && (
                  <>
                    {" · "}Last: {when(job.lastRun, timeZone)}{" "}
                    <span className={`rounded px-1.5 py-0.5 ${statusStyle[job.lastStatus ?? ""] ?? ""}`}>{job.lastStatus ?? "?"}</span>
                    {job.lastDurationMs !== null && ` in ${(job.lastDurationMs / 1000).toFixed(1)} s`}
                  </>
                )}
              </p>
              {job.lastError && job.lastStatus !== "ok" && <p className="text-xs break-words text-red-600">{job.lastError}</p>}
              {viewOf(job.channel).hasReplyWindow && <WhatsAppWindowNote />}
              <div className="flex flex-wrap gap-2 text-sm">
                <button
                  type="button"
                  disabled={busyId === job.id}
                  onClick={() => void act(job, () => api.runCronJob(job.id), "Could not run the job.")}
                  className="rounded-lg border border-zinc-300 px-3 py-1 disabled:opacity-50 dark:border-zinc-700"
                >
                  {busyId === job.id ? "Working…" : "Run now"}
                </button>
                {viewOf(job.channel).thread.picked && (
                  <Link href={`/?c=${encodeURIComponent(job.channelId)}`} className="rounded-lg px-3 py-1 text-blue-600 hover:underline">
                    Open conversation
                  </Link>
                )}
                <button type="button" onClick={() => setEditing(job)} className="rounded-lg px-3 py-1 text-zinc-600 hover:underline dark:text-zinc-400">
                  Edit
                </button>
                <button type="button" onClick={() => remove(job)} className="rounded-lg px-3 py-1 text-red-600 hover:underline">
                  Delete
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
    </main>
  );
}
