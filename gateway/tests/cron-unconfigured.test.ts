import { describe, expect, it } from "vitest";
import * as cron from "../app/api/cron/route";
import { db } from "../lib/db/client";

// A CRON_SECRET shorter than 32 characters switches the endpoint off: 503 with
// the reason, whatever the caller sends (the environment is read once, on first use).
process.env.CRON_SECRET = "too-short";

describe("/api/cron without a usable CRON_SECRET", () => {
  it("answers 503 naming the variable and runs nothing", async () => {
    await db().cronJob.create({ data: { name: "x", schedule: "* * * * *", prompt: "p", channel: "webchat", channelId: "c", scheduleSince: new Date(0) } });
    const response = await cron.POST(new Request("http://127.0.0.1:3000/api/cron", { method: "POST", headers: { "x-cron-secret": "too-short" } }));
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({
      code: "unavailable:config",
      error: expect.stringMatching(/cron endpoint is disabled: CRON_SECRET is shorter than 32 characters/),
    });
    expect(await db().turn.count()).toBe(0);
  });
});
