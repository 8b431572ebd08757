// `npm run start`: the production server on 127.0.0.1:GATEWAY_PORT (default 3000);
// `npm run dev` (argument "dev"): the development server on the same address.
// Next's CLI runs inside this process (no child), so the PID that started it
// is the PID that serves: stop it with `kill <pid>`. GATEWAY_PORT follows the
// same precedence as lib/env-file.ts (process, then ../.env.local, then ../.env;
// empty means unset); this file is plain JS so production needs no TS loader.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseEnv } from "node:util";

const gatewayDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(gatewayDir);

function fromFile(name) {
  const file = path.join(process.env.MY_CLAW_ENV_DIR || path.join(gatewayDir, ".."), name);
  return existsSync(file) ? parseEnv(readFileSync(file, "utf8")).GATEWAY_PORT || undefined : undefined;
}

const port = process.env.GATEWAY_PORT || fromFile(".env.local") || fromFile(".env") || "3000";
if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
  process.stderr.write("GATEWAY_PORT must be a port number (1-65535)\n");
  process.exit(1);
}
const mode = process.argv[2] === "dev" ? "dev" : "start";
if (mode === "start" && !existsSync(path.join(gatewayDir, ".next", "BUILD_ID"))) {
  process.stderr.write("No production build found: run `npm run build` first\n");
  process.exit(1);
}

const nextBin = createRequire(import.meta.url).resolve("next/dist/bin/next");
// Nothing leaves the machine unasked: no usage telemetry to Vercel.
process.env.NEXT_TELEMETRY_DISABLED ??= "1";
process.argv = [process.argv[0], nextBin, mode, "--hostname", "127.0.0.1", "--port", port];
await import(nextBin);
