// Runs `prisma generate|validate|format` where the CLI cannot download its native
// schema engine. Those commands never execute the engine, but the CLI insists on
// having one on disk first; PRISMA_SCHEMA_ENGINE_BINARY naming any existing file
// satisfies it. Where the engine was downloaded (a machine with internet), the
// variable is left alone and the CLI behaves as usual.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const gatewayDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const command = process.argv[2];
if (!["generate", "validate", "format"].includes(command)) {
  process.stderr.write("usage: node scripts/prisma-offline.mjs generate|validate|format\n");
  process.exit(2);
}

const enginesDir = path.join(gatewayDir, "node_modules/@prisma/engines");
const hasNativeEngine =
  existsSync(enginesDir) && readdirSync(enginesDir).some((name) => name.startsWith("schema-engine"));
const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY && !hasNativeEngine) {
  env.PRISMA_SCHEMA_ENGINE_BINARY = path.join(gatewayDir, "package.json");
}
// No telemetry or update check from an offline machine.
env.CHECKPOINT_DISABLE ??= "1";

const cli = path.join(gatewayDir, "node_modules/prisma/build/index.js");
const result = spawnSync(process.execPath, [cli, command, ...process.argv.slice(3)], {
  cwd: gatewayDir,
  env,
  stdio: "inherit",
});
process.exit(result.status ?? 1);
