// The owner's chat commands: a message whose first word is one of these is
// answered by the gateway itself, never by the model. Anything else that starts
// with "/" (a path such as /etc/hosts) is an ordinary message.

export const commandNames = ["help", "new", "model", "stop", "status", "reminders", "cancel", "approve", "deny"] as const;
export type CommandName = (typeof commandNames)[number];

export interface Command {
  name: CommandName;
  /** What follows the command word, trimmed ("" when nothing does). */
  arg: string;
}

const COMMAND = /^\/([A-Za-z]+)(?:\s+([\s\S]*))?$/;

export function parseCommand(text: string): Command | undefined {
  const match = COMMAND.exec(text.trim());
  const name = match?.[1]?.toLowerCase();
  if (!name || !(commandNames as readonly string[]).includes(name)) return undefined;
  return { name: name as CommandName, arg: (match?.[2] ?? "").trim() };
}
