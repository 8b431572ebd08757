import { logOut } from "@/lib/auth";
import { route } from "@/lib/http";

export const POST = route(async (request) => logOut(request));
