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
