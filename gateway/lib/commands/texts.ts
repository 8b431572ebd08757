// What the commands answer, in the persona's language (French or English; others get English). Several
// lines are a Markdown list, so the webchat shows them as lines too (a single newline is no break there);
// no angle brackets, which Markdown would take for HTML and drop.

export type Lang = "fr" | "en";

/** The short id the owner reads and types (/cancel, /approve): an id's last 6 characters. */
export const shortId = (id: string) => id.slice(-6);

export const langOf = (personaLang: string): Lang => (personaLang.toLowerCase().startsWith("fr") ? "fr" : "en");

export const texts = {
  en: {
    help: [
      "Commands:",
      "- /help: this list",
      "- /new: start a fresh conversation (the next message carries no history)",
      "- /model: the current model and the choices; /model and a name (/model fast): switch this conversation's model",
      "- /stop: stop the running answer and drop the waiting messages",
      "- /status: agent, Ollama and model state, the queue, the last failure",
      "- /reminders: the scheduled messages of this chat; /cancel and an id: remove one",
      "- /approve, /deny: answer the assistant's request to run an action (an id when several wait)",
    ].join("\n"),
    newConversation: "New conversation: your next message starts without history.",
    model: (current: string, resolved: string | undefined) => `Model of this conversation: ${current}${resolved && resolved !== current ? ` (${resolved})` : ""}.`,
    modelChoices: (categories: string, installed: string) => `- Categories: ${categories}.\n- Installed: ${installed || "none"}.`,
    modelSet: (model: string) => `This conversation now uses ${model}.`,
    modelUnknown: (model: string) => `Unknown model "${model}".`,
    agentUnreachable: "The agent does not answer, so the installed models are unknown; the categories still work.",
    stopped: (running: number, queued: number) => {
      if (running + queued === 0) return "Nothing was running.";
      const done = [running > 0 ? "stopped the running answer" : "", queued > 0 ? `dropped ${queued} waiting message${queued === 1 ? "" : "s"}` : ""];
      return `Done: ${done.filter(Boolean).join(" and ")}.`;
    },
    status: (parts: { agent: string; ollama: string; model: string; queued: number; lastFailure: string | null }) =>
      [
        `- Agent: ${parts.agent}. Ollama: ${parts.ollama}. Model: ${parts.model}.`,
        `- Waiting in this conversation: ${parts.queued}.`,
        `- Last failure: ${parts.lastFailure ?? "none"}.`,
      ].join("\n"),
    noReminders: "No scheduled messages for this chat.",
    reminders: (lines: string[], timeZone: string) => `Scheduled messages (${timeZone}):\n${lines.join("\n")}\n\nRemove one with /cancel and its id.`,
    reminderLine: (id: string, name: string, next: string | null) => `- ${id} ${name}: ${next ? `next ${next}` : "disabled"}`,
    cancelUsage: "Say which one: /cancel and its id (the ids are in /reminders).",
    cancelled: (name: string) => `Removed "${name}".`,
    cancelUnknown: (id: string) => `No scheduled message of this chat has the id ${id}; see /reminders.`,
  },
  fr: {
    help: [
      "Commandes :",
      "- /help : cette liste",
      "- /new : nouvelle conversation (le message suivant part sans historique)",
      "- /model : le modèle actuel et les choix ; /model et un nom (/model fast) : changer le modèle de cette conversation",
      "- /stop : arrêter la réponse en cours et abandonner les messages en attente",
      "- /status : état de l'agent, d'Ollama et du modèle, file d'attente, dernier échec",
      "- /reminders : les messages programmés de ce fil ; /cancel et un id : en supprimer un",
      "- /approve, /deny : répondre à l'assistant qui demande d'exécuter une action (un id si plusieurs attendent)",
    ].join("\n"),
    newConversation: "Nouvelle conversation : ton prochain message part sans historique.",
    model: (current: string, resolved: string | undefined) => `Modèle de cette conversation : ${current}${resolved && resolved !== current ? ` (${resolved})` : ""}.`,
    modelChoices: (categories: string, installed: string) => `- Catégories : ${categories}.\n- Installés : ${installed || "aucun"}.`,
    modelSet: (model: string) => `Cette conversation utilise maintenant ${model}.`,
    modelUnknown: (model: string) => `Modèle inconnu « ${model} ».`,
    agentUnreachable: "L'agent ne répond pas : les modèles installés sont inconnus ; les catégories restent utilisables.",
    stopped: (running: number, queued: number) => {
      if (running + queued === 0) return "Rien n'était en cours.";
      const done = [
        running > 0 ? "réponse en cours arrêtée" : "",
        queued > 0 ? `${queued} message${queued === 1 ? "" : "s"} en attente abandonné${queued === 1 ? "" : "s"}` : "",
      ];
      return `C'est fait : ${done.filter(Boolean).join(" et ")}.`;
    },
    status: (parts: { agent: string; ollama: string; model: string; queued: number; lastFailure: string | null }) =>
      [
        `- Agent : ${parts.agent}. Ollama : ${parts.ollama}. Modèle : ${parts.model}.`,
        `- En attente dans cette conversation : ${parts.queued}.`,
        `- Dernier échec : ${parts.lastFailure ?? "aucun"}.`,
      ].join("\n"),
    noReminders: "Aucun message programmé pour ce fil.",
    reminders: (lines: string[], timeZone: string) => `Messages programmés (${timeZone}) :\n${lines.join("\n")}\n\nPour en supprimer un : /cancel et son id.`,
    reminderLine: (id: string, name: string, next: string | null) => `- ${id} ${name} : ${next ? `prochain ${next}` : "désactivé"}`,
    cancelUsage: "Lequel ? /cancel et son id (les ids sont dans /reminders).",
    cancelled: (name: string) => `« ${name} » supprimé.`,
    cancelUnknown: (id: string) => `Aucun message programmé de ce fil n'a l'id ${id} ; voir /reminders.`,
  },
} satisfies Record<Lang, unknown>;
