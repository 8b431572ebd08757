// The agent answers `finished: false` when it ran out of steps: its response then already says, in the
// owner's language, that it stopped and what it found. The turn pipeline (lib/turns/attempt.ts) adds this note under
// such an answer, once, before storing and sending it, so every channel and the history show it.

export const UNFINISHED_NOTE = "⏹ Stopped before finishing (step limit reached).";

/** The answer as stored and delivered: an unfinished one carries the note on a line of its own. */
export function answerText(response: string, finished: boolean): string {
  if (finished) return response;
  const text = response.trimEnd();
  return text ? `${text}\n\n${UNFINISHED_NOTE}` : UNFINISHED_NOTE;
}
