// `npm run build:if-stale`: runs `prisma generate` and `next build` only when a
// source is newer than the last build, so `make gateway` starts fast when
// nothing changed.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const gatewayDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const sources = ["app", "components", "lib", "public", "prisma/schema.prisma", "package-lock.json", "next.config.ts", "postcss.config.mjs", "tsconfig.json"];
const skipped = new Set(["generated", "node_modules"]);

function newest(target) {
  if (!existsSync(target)) return 0;
  const stat = statSync(target);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = 0;
  for (const entry of readdirSync(target)) {
    if (!skipped.has(entry)) latest = Math.max(latest, newest(path.join(target, entry)));
  }
  return latest;
}

function run(script) {
  const result = spawnSync(process.platform === "win32" ? "npm.cmd" : "npm", ["run", "--silent", script], { cwd: gatewayDir, stdio: "inherit" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

const at = (file) => (existsSync(file) ? statSync(file).mtimeMs : 0);
const schema = path.join(gatewayDir, "prisma/schema.prisma");
const client = path.join(gatewayDir, "lib/generated/prisma/client.ts");
if (at(client) < at(schema)) run("db:generate");

const built = at(path.join(gatewayDir, ".next/BUILD_ID"));
const changed = Math.max(...sources.map((source) => newest(path.join(gatewayDir, source))));
if (built === 0 || changed > built) run("build");
else process.stdout.write("gateway build is up to date\n");
