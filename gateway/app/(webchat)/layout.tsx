import { cookies } from "next/headers";
import { redirect } from "next/navigation";
import { connection } from "next/server";
import { isSessionValid, SESSION_COOKIE } from "@/lib/auth";
import { getEnv } from "@/lib/env";

// Pages behind the login. The API routes check the same session themselves.
export default async function WebchatLayout({ children }: { children: React.ReactNode }) {
  // Decide per request: the token and the session are only known at run time.
  await connection();
  if (getEnv().secrets.WEBCHAT_TOKEN.status !== "ok") {
    return (
      <main className="mx-auto max-w-lg space-y-3 p-6">
        <h1 className="text-lg font-semibold">The webchat is switched off</h1>
        <p>
          Set <code>WEBCHAT_TOKEN</code> to a random value of at least 32 characters in <code>.env.local</code> at the
          repository root (<code>openssl rand -hex 32</code>), then restart the gateway.
        </p>
      </main>
    );
  }
  const session = (await cookies()).get(SESSION_COOKIE)?.value;
  if (!isSessionValid(session)) redirect("/login");
  return children;
}
