import { logOut, refuseCrossSite } from "@/lib/auth";
import { route } from "@/lib/http";

export const POST = route(async (request) => {
  refuseCrossSite(request);
  return logOut(request);
});
