// The crontab line `make cron-install` writes, and running it as cron does, for the e2e suites.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gatewayDir } from "./stack";

/** The line scripts/cron-install.sh installs for an .env.local holding `envLocal`, read back from a fake `crontab`. */
export function crontabLine(envLocal: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "my-claw-crontab-"));
  mkdirSync(path.join(dir, "bin"));
  const fake = path.join(dir, "bin", "crontab");
  writeFileSync(fake, `#!/usr/bin/env bash\nif [ "$1" = "-l" ]; then cat "${dir}/table" 2>/dev/null || exit 1; else cat > "${dir}/table"; fi\n`);
  chmodSync(fake, 0o755);
  writeFileSync(path.join(dir, ".env.local"), envLocal);
  execFileSync("bash", [path.resolve(gatewayDir, "../scripts/cron-install.sh")], {
    env: { ...process.env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, MY_CLAW_ENV_DIR: dir },
    stdio: "ignore",
  });
  return readFileSync(path.join(dir, "table"), "utf8").trim();
}

/**
 * Runs the line's command as cron would (sh -c, after the five schedule fields); curl's exit status.
 * Asynchronously: the fake Graph API lives in this process and must answer meanwhile.
 */
export function runCrontabLine(line: string): Promise<number> {
  const command = line.split(/\s+/).slice(5).join(" ");
  return new Promise((resolve) => {
    const child = spawn("sh", ["-c", command], { stdio: "ignore", timeout: 60_000 });
    child.once("exit", (code) => resolve(code ?? -1));
  });
}
