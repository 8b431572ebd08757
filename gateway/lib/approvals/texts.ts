import { shortId, type Lang } from "../commands/texts";

// What the owner reads about approvals, in the persona's language. The request
// names the call (as the agent summarised it, secrets redacted), why it needs
// approval, how long it waits and how to answer; the id is what /approve and
// /deny take when several wait.

export interface ApprovalFacts {
  id: string;
  summary: string;
  source: string;
  reason: string;
  minutes: number;
}

export const approvalTexts = {
  en: {
    request: ({ id, summary, source, reason, minutes }: ApprovalFacts) =>
      [
        `🔐 Approval needed: the assistant wants to run\n${summary}`,
        reason === "always" ? "Every action with side effects asks first (APPROVAL_MODE=always)." : `Why: ${source}, which could have asked for this.`,
        `Answer /approve or /deny within ${minutes} min (id ${shortId(id)}); no answer means no.`,
      ].join("\n\n"),
    approve: "Approve",
    deny: "Deny",
    approved: (summary: string) => `Approved: ${summary}. It runs now, once.`,
    denied: (summary: string) => `Denied: ${summary}. It will not run.`,
    nothingWaiting: "No action is waiting for your approval in this chat.",
    alreadyDecided: (state: string) => `That one is already ${state}.`,
    whichOne: (ids: string[]) => `Several actions wait: say which one, /approve or /deny and its id (${ids.join(", ")}).`,
    notRun: (tools: string[]) =>
      `(Not done: ${tools.join(", ")} needed the owner's approval, which a scheduled run cannot wait for. Set APPROVAL_MODE=off to allow it, or ask in a chat.)`,
    agentLost: "The agent stopped while an action waited for your approval; nothing more was run. Ask again if you still want it.",
  },
  fr: {
    request: ({ id, summary, source, reason, minutes }: ApprovalFacts) =>
      [
        `🔐 Autorisation demandée : l'assistant veut exécuter\n${summary}`,
        reason === "always" ? "Toute action avec effets demande d'abord (APPROVAL_MODE=always)." : `Pourquoi : ${source}, qui a pu le lui demander.`,
        `Réponds /approve ou /deny dans les ${minutes} min (id ${shortId(id)}) ; sans réponse, c'est non.`,
      ].join("\n\n"),
    approve: "Autoriser",
    deny: "Refuser",
    approved: (summary: string) => `Autorisé : ${summary}. L'action s'exécute maintenant, une fois.`,
    denied: (summary: string) => `Refusé : ${summary}. L'action ne sera pas exécutée.`,
    nothingWaiting: "Aucune action n'attend ton autorisation dans cette discussion.",
    alreadyDecided: (state: string) => `Celle-ci est déjà ${state === "approved" || state === "executed" ? "autorisée" : state === "denied" ? "refusée" : "expirée"}.`,
    whichOne: (ids: string[]) => `Plusieurs actions attendent : précise laquelle, /approve ou /deny et son id (${ids.join(", ")}).`,
    notRun: (tools: string[]) =>
      `(Non fait : ${tools.join(", ")} demandait l'autorisation du propriétaire, qu'une tâche planifiée ne peut pas attendre. Mets APPROVAL_MODE=off pour l'autoriser, ou demande-le dans une discussion.)`,
    agentLost: "L'agent s'est arrêté pendant qu'une action attendait ton autorisation ; rien de plus n'a été exécuté. Redemande si tu le veux toujours.",
  },
} satisfies Record<Lang, unknown>;
