import type { Lang } from "./commands/texts";

// The agent answers `finished: false` when it ran out of steps, or of time (it then stops early rather than be cut
// off): its response is then the model's own account of
// what it found, which a small model may not get right. The turn pipeline (lib/turns/compose.ts) adds this note
// under such an answer, once, before storing and sending it, so every channel and the history say plainly, in the
// owner's language, that the task stopped and after how many steps.

const notes = {
  en: (steps: number) => `⏹ Stopped after ${steps} ${steps === 1 ? "step" : "steps"}, before finishing (step or time limit).`,
  fr: (steps: number) => `⏹ Arrêté après ${steps} ${steps === 1 ? "étape" : "étapes"}, avant la fin (limite d'étapes ou de temps).`,
} satisfies Record<Lang, (steps: number) => string>;

export const unfinishedNote = (lang: Lang, steps: number): string => notes[lang](steps);

/** The answer as stored and delivered: an unfinished one carries the note on a line of its own. */
export function answerText(response: string, { finished, steps }: { finished: boolean; steps: number }, lang: Lang): string {
  if (finished) return response;
  const note = unfinishedNote(lang, steps);
  const text = response.trimEnd();
  return text ? `${text}\n\n${note}` : note;
}
