import { logIn, loginSchema } from "@/lib/auth";
import { readJson, route } from "@/lib/http";

export const POST = route(async (request) => {
  const body = await readJson(request, loginSchema, { maxBytes: 4096 });
  return logIn(request, body);
});
