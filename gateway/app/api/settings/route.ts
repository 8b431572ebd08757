import { requireOwner } from "@/lib/auth";
import { readJson, route } from "@/lib/http";
import { loadPersona, settingsUpdateSchema, updatePersona } from "@/lib/settings";

export const GET = route(async (request) => {
  await requireOwner(request);
  return Response.json(await loadPersona());
});

export const PUT = route(async (request) => {
  await requireOwner(request);
  const values = await readJson(request, settingsUpdateSchema);
  return Response.json(await updatePersona(values));
});
