import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EnvError, parseEnv, requireSecret, agentApiKey } from "../lib/env";
import { mergedEnv, resolveDatabaseUrl } from "../lib/env-file";
import { AppError } from "../lib/errors";

const longSecret = "x".repeat(32);

describe("parseEnv", () => {
  it("fills defaults for a bare environment", () => {
    const env = parseEnv({});
    expect(env.gatewayPort).toBe(3000);
    expect(env.agentUrl).toBe("http://127.0.0.1:8000");
    expect(env.ollamaBaseUrl).toBe("http://127.0.0.1:11434");
    expect(env.searxngUrl).toBe("http://127.0.0.1:8888");
    expect(env.databaseUrl).toBe(`file:${path.resolve("data/my-claw.db")}`);
    expect(env.secrets.WEBCHAT_TOKEN).toEqual({ status: "unset" });
  });

  it("rejects a port that is not a number and names the variable, not the value", () => {
    expect(() => parseEnv({ GATEWAY_PORT: "eighty" })).toThrow(EnvError);
    try {
      parseEnv({ GATEWAY_PORT: "eighty", AGENT_URL: "ftp://secret-host" });
    } catch (error) {
      const message = (error as Error).message;
      expect(message).toContain("GATEWAY_PORT");
      expect(message).toContain("AGENT_URL");
      expect(message).not.toContain("secret-host");
    }
  });

  it("strips trailing slashes from service URLs", () => {
    expect(parseEnv({ AGENT_URL: "http://127.0.0.1:9000/" }).agentUrl).toBe("http://127.0.0.1:9000");
  });

  it("refuses a non-file DATABASE_URL", () => {
    expect(() => parseEnv({ DATABASE_URL: "postgres://x" })).toThrow(/DATABASE_URL/);
  });

  it("resolves a relative SQLite path against the gateway directory", () => {
    expect(resolveDatabaseUrl("file:./data/x.db")).toBe(`file:${path.resolve("data/x.db")}`);
    expect(resolveDatabaseUrl("file:/tmp/x.db")).toBe("file:/tmp/x.db");
  });
});

describe("approvals and files sent back", () => {
  it("wait 10 minutes for the owner by default; files get no links without PUBLIC_BASE_URL, and links last a day", () => {
    const env = parseEnv({});
    expect(env.approvalTimeoutMs).toBe(600_000);
    expect(env.attachments).toEqual({ publicBaseUrl: undefined, linkTtlMs: 86_400_000 });
    expect(parseEnv({ APPROVAL_TIMEOUT_S: "30", PUBLIC_BASE_URL: "https://claw.example.org/" }).attachments.publicBaseUrl).toBe("https://claw.example.org");
  });

  it.each([
    ["APPROVAL_TIMEOUT_S", "5", /APPROVAL_TIMEOUT_S must be at least 10 s/],
    ["PUBLIC_BASE_URL", "claw.example.org", /PUBLIC_BASE_URL must be an http\(s\) URL/],
    ["ATTACHMENT_LINK_TTL_S", "10", /ATTACHMENT_LINK_TTL_S must be at least 60 s/],
  ])("stops start-up on %s=%s, naming the variable and the rule", (name, value, message) => {
    expect(() => parseEnv({ [name]: value })).toThrow(message);
  });
});

describe("turn retries", () => {
  it("defaults to 30 s doubling, 6 attempts, a sweep every 30 s and a 60 s grace", () => {
    expect(parseEnv({}).turns).toEqual({ retryBaseMs: 30_000, maxAttempts: 6, sweepIntervalMs: 30_000, graceMs: 60_000 });
  });

  it("takes fractions of a second", () => {
    expect(parseEnv({ TURN_RETRY_BASE_S: "0.5", TURN_MAX_ATTEMPTS: "3", TURN_SWEEP_INTERVAL_S: "0.25", TURN_GRACE_S: "0" }).turns).toEqual({
      retryBaseMs: 500,
      maxAttempts: 3,
      sweepIntervalMs: 250,
      graceMs: 0,
    });
  });

  it.each([
    ["TURN_RETRY_BASE_S", "soon", /TURN_RETRY_BASE_S must be a number of seconds/],
    ["TURN_RETRY_BASE_S", "0", /TURN_RETRY_BASE_S must be at least 0.1 s/],
    ["TURN_MAX_ATTEMPTS", "2.5", /TURN_MAX_ATTEMPTS must be a whole number/],
    ["TURN_MAX_ATTEMPTS", "0", /TURN_MAX_ATTEMPTS must be at least 1/],
    ["TURN_SWEEP_INTERVAL_S", "-1", /TURN_SWEEP_INTERVAL_S must be at least 0.1 s/],
    ["TURN_GRACE_S", "86400", /TURN_GRACE_S must be at most 3600 s/],
  ])("stops start-up on %s=%s, naming the variable and the rule", (name, value, message) => {
    expect(() => parseEnv({ [name]: value })).toThrow(message);
  });
});

describe("CRON_TIMEZONE", () => {
  it("defaults to the server's zone and accepts an IANA zone", () => {
    expect(parseEnv({}).cronTimeZone).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
    expect(parseEnv({ CRON_TIMEZONE: "Europe/Paris" }).cronTimeZone).toBe("Europe/Paris");
  });

  it("stops start-up on an unknown zone, naming the variable", () => {
    expect(() => parseEnv({ CRON_TIMEZONE: "Europe/Pariss" })).toThrow(/CRON_TIMEZONE must be an IANA time zone/);
  });
});

describe("secrets", () => {
  it("refuses short secrets for the feature that needs them only", () => {
    const env = parseEnv({ WEBCHAT_TOKEN: "short", CRON_SECRET: longSecret });
    expect(env.secrets.WEBCHAT_TOKEN).toEqual({ status: "too_short", length: 5, minLength: 32 });
    expect(() => requireSecret("WEBCHAT_TOKEN", env)).toThrow(/WEBCHAT_TOKEN is shorter than 32/);
    expect(requireSecret("CRON_SECRET", env)).toBe(longSecret);
  });

  it("reports a missing secret as a 503 that says how to fix it", () => {
    try {
      requireSecret("WEBCHAT_TOKEN", parseEnv({}));
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(AppError);
      expect((error as AppError).status).toBe(503);
      expect((error as AppError).message).toContain("openssl rand -hex 32");
    }
  });

  it("lets AGENT_API_KEY be unset but never short", () => {
    expect(agentApiKey(parseEnv({}))).toBeUndefined();
    expect(agentApiKey(parseEnv({ AGENT_API_KEY: longSecret }))).toBe(longSecret);
    expect(() => agentApiKey(parseEnv({ AGENT_API_KEY: "abc" }))).toThrow(/AGENT_API_KEY/);
  });
});

describe("channels", () => {
  it("defaults the Graph URL and leaves the channels unconfigured", () => {
    const env = parseEnv({});
    expect(env.whatsapp).toEqual({ apiUrl: "https://graph.facebook.com/v26.0" });
    expect(env.secrets.WHATSAPP_APP_SECRET).toEqual({ status: "unset" });
    expect(env.nextcloud).toEqual({});
  });

  it("needs a Nextcloud bot secret of 40 to 128 characters, as occ does", () => {
    expect(parseEnv({ NEXTCLOUD_BOT_SECRET: "x".repeat(39) }).secrets.NEXTCLOUD_BOT_SECRET).toMatchObject({ status: "too_short", minLength: 40 });
    expect(() => requireSecret("NEXTCLOUD_BOT_SECRET", parseEnv({ NEXTCLOUD_BOT_SECRET: "x".repeat(39) }))).toThrow(/shorter than 40/);
    expect(parseEnv({ NEXTCLOUD_BOT_SECRET: "x".repeat(64) }).secrets.NEXTCLOUD_BOT_SECRET.status).toBe("ok");
    expect(() => parseEnv({ NEXTCLOUD_BOT_SECRET: "x".repeat(129) })).toThrow(/NEXTCLOUD_BOT_SECRET/);
  });

  it("refuses a phone number where the phone number id belongs, and a non-URL Nextcloud", () => {
    expect(() => parseEnv({ WHATSAPP_PHONE_NUMBER_ID: "+1 555 0100" })).toThrow(/WHATSAPP_PHONE_NUMBER_ID/);
    expect(() => parseEnv({ NEXTCLOUD_BASE_URL: "cloud.example.org" })).toThrow(/NEXTCLOUD_BASE_URL/);
    expect(parseEnv({ NEXTCLOUD_BASE_URL: "https://cloud.example.org/" }).nextcloud.baseUrl).toBe("https://cloud.example.org");
  });
});

describe("mergedEnv", () => {
  const root = mkdtempSync(path.join(tmpdir(), "my-claw-env-"));
  writeFileSync(path.join(root, ".env"), "A=from-env\nB=from-env\nC=from-env\nE=\n");
  writeFileSync(path.join(root, ".env.local"), 'B=from-local\nC="from-local"\nD=\n');

  it("lets the process win over .env.local, which wins over .env", () => {
    const env = mergedEnv({ C: "from-process" }, root);
    expect(env).toMatchObject({ A: "from-env", B: "from-local", C: "from-process" });
  });

  it("treats an empty variable as unset wherever it is", () => {
    const env = mergedEnv({ B: "" }, root);
    expect(env.B).toBe("from-local");
    expect(env).not.toHaveProperty("D");
    expect(env).not.toHaveProperty("E");
  });
});

describe("LOG_LEVEL", () => {
  it("accepts the agent's Python spellings", () => {
    expect(parseEnv({ LOG_LEVEL: "INFO" }).logLevel).toBe("info");
    expect(parseEnv({ LOG_LEVEL: "WARNING" }).logLevel).toBe("warn");
    expect(() => parseEnv({ LOG_LEVEL: "loud" })).toThrow(/LOG_LEVEL/);
  });
});
