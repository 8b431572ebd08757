import "server-only";
import { personaFrom, personaSchema, type Persona } from "./persona";
import { getSettings, saveSettings } from "./db/settings";

export const settingsUpdateSchema = personaSchema.partial().strict();

export async function loadPersona(): Promise<Persona> {
  return personaFrom(await getSettings());
}

export async function updatePersona(values: Partial<Persona>): Promise<Persona> {
  await saveSettings({ values: Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Record<string, string> });
  return loadPersona();
}
