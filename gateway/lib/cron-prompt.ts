// How a scheduled job's prompt is stored as the "user" message of its turn. The
// owner did not type it: the marker tells the agent (through the history and
// the message itself) that this is a scheduled task, and lets the webchat show
// it as one. Shared by the server and the browser, so no server-only imports.

const MARKER = /^\[scheduled job "((?:[^"\\]|\\.)*)"\]\n/;

export function cronPromptText(jobName: string, prompt: string): string {
  return `[scheduled job ${JSON.stringify(jobName)}]\n${prompt}`;
}

/** The job's name and prompt when `content` is a scheduled job's message, else null. */
export function parseCronPrompt(content: string): { jobName: string; prompt: string } | null {
  const match = MARKER.exec(content);
  if (!match) return null;
  try {
    return { jobName: JSON.parse(`"${match[1]}"`) as string, prompt: content.slice(match[0].length) };
  } catch {
    return null;
  }
}

/**
 * A run's external id: `cron:<job>:<slot>` for a scheduled slot (its turn's unique key makes the slot run once),
 * `cron:<job>:now:<random>` for a run started by hand.
 */
export function cronExternalId(jobId: string, slot: Date | null, nonce: string): string {
  return slot ? `cron:${jobId}:${slot.toISOString()}` : `cron:${jobId}:now:${nonce}`;
}

/** The slot a run's external id names (when it was due), or null for a run started by hand or not a run. */
export function cronSlotOf(externalId: string): Date | null {
  const slot = /^cron:[^:]+:(\d{4}-\d{2}-\d{2}T[\d:.]+Z)$/.exec(externalId)?.[1];
  return slot ? new Date(slot) : null;
}
