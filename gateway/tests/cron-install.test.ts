import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";

// scripts/cron-install.sh against a fake `crontab` that keeps the table in a file.
const script = path.resolve(__dirname, "../../scripts/cron-install.sh");
let dir: string;

function install(envLocal: string) {
  writeFileSync(path.join(dir, ".env.local"), envLocal);
  return execFileSync("bash", [script], {
    env: { ...process.env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, MY_CLAW_ENV_DIR: dir },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

const table = () => readFileSync(path.join(dir, "crontab.txt"), "utf8");

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "cron-install-"));
  execFileSync("mkdir", ["-p", path.join(dir, "bin")]);
  const fake = path.join(dir, "bin", "crontab");
  writeFileSync(
    fake,
    `#!/usr/bin/env bash\nstore=${dir}/crontab.txt\nif [ "$1" = "-l" ]; then cat "$store" 2>/dev/null || exit 1; else cat > "$store"; fi\n`,
  );
  chmodSync(fake, 0o755);
  writeFileSync(path.join(dir, "crontab.txt"), "0 5 * * * /usr/bin/backup\n");
});

describe("make cron-install", () => {
  const secret = "c".repeat(40);

  it("adds one line that posts to /api/cron with the secret read from .env.local at run time", () => {
    install(`CRON_SECRET=${secret}\nGATEWAY_PORT=3100\n`);
    const [backup, ours = "", ...rest] = table().trim().split("\n");
    expect(backup).toBe("0 5 * * * /usr/bin/backup");
    expect(rest).toEqual([]);
    expect(ours).toMatch(/^\* \* \* \* \* curl -fsS -X POST -H "X-Cron-Secret: \$\(grep/);
    expect(ours).toContain("http://127.0.0.1:3100/api/cron");
    expect(ours).not.toContain(secret);
    // The command as cron's /bin/sh would run it, with curl swapped for echo, sends the secret.
    const command = ours.replace(/^\* \* \* \* \* /, "").replace(/^curl /, "echo ");
    expect(execFileSync("sh", ["-c", command.replace(/>\/dev\/null.*$/, "")], { encoding: "utf8" })).toContain(
      `X-Cron-Secret: ${secret}`,
    );
  });

  it("replaces its own line instead of adding a second one", () => {
    install(`CRON_SECRET=${secret}\n`);
    install(`CRON_SECRET=${secret}\nGATEWAY_PORT=3200\n`);
    const ours = table().split("\n").filter((line) => line.includes("/api/cron"));
    expect(ours).toEqual([expect.stringContaining("http://127.0.0.1:3200/api/cron")]);
  });

  it("refuses a missing or short secret and leaves the crontab alone", () => {
    expect(() => install("CRON_SECRET=short\n")).toThrow(/shorter than 32/);
    expect(table()).toBe("0 5 * * * /usr/bin/backup\n");
  });
});
