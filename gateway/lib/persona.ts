import { z } from "zod";

// The owner's persona settings, stored as key/value rows in Settings and turned
// into the system prompt sent with every turn, whatever the channel.

export const personaSchema = z.object({
  persona_name: z.string().trim().min(1, "give the assistant a name").max(80),
  persona_lang: z
    .string()
    .trim()
    .regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, "use a language code such as fr, en or pt-BR"),
  system_prompt: z.string().max(8000),
});
export type Persona = z.infer<typeof personaSchema>;

export const defaultPersona: Persona = {
  persona_name: "Claw",
  persona_lang: "fr",
  system_prompt: "",
};

/** Stored values over the defaults; a row that no longer validates falls back to its default. */
export function personaFrom(stored: Record<string, string>): Persona {
  const persona = { ...defaultPersona };
  for (const key of Object.keys(defaultPersona) as (keyof Persona)[]) {
    const value = stored[key];
    if (value !== undefined && personaSchema.shape[key].safeParse(value).success) persona[key] = value;
  }
  return persona;
}

export function languageName(code: string): string {
  try {
    return new Intl.DisplayNames(["en"], { type: "language" }).of(code) ?? code;
  } catch {
    return code;
  }
}

export function buildSystemPrompt(persona: Persona): string {
  const lines = [
    `You are ${persona.persona_name}, the owner's personal assistant.`,
    `Always answer in ${languageName(persona.persona_lang)} unless the owner asks for another language.`,
  ];
  const extra = persona.system_prompt.trim();
  if (extra) lines.push("", extra);
  return lines.join("\n");
}
