import { logIn, loginSchema, refuseCrossSite } from "@/lib/auth";
import { readJson, route } from "@/lib/http";

// Another site must not log the browser into its own session (login CSRF): same guard as changes.
export const POST = route(async (request) => {
  refuseCrossSite(request);
  const body = await readJson(request, loginSchema, { maxBytes: 4096 });
  return logIn(request, body);
});
