import "server-only";
import { langOf, type Lang } from "./commands/texts";
import { personaFrom, personaSchema, type Persona } from "./persona";
import { getSettings, saveSettings } from "./db/settings";

export const settingsUpdateSchema = personaSchema.partial().strict();

export async function loadPersona(): Promise<Persona> {
  return personaFrom(await getSettings());
}

/** The language the gateway's own words are in (commands, notes, approvals): the persona's, French or English. */
export async function ownerLang(): Promise<Lang> {
  return langOf((await loadPersona()).persona_lang);
}

export async function updatePersona(values: Partial<Persona>): Promise<Persona> {
  await saveSettings({ values: Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Record<string, string> });
  return loadPersona();
}
