import { describe, expect, it } from "vitest";
import * as nextcloudRoute from "../app/api/webhook/nextcloud/route";
import * as whatsappRoute from "../app/api/webhook/whatsapp/route";
import { db } from "../lib/db/client";
import { metaSignature, talkMessage, talkSignature, textMessage, whatsappDelivery } from "./support/wire";

// Without its secret a channel refuses every delivery with 503 (Meta retries
// for days, so nothing is lost while the owner fixes .env.local) and never
// accepts one unsigned. This file's environment has no channel variables but
// a Talk secret that occ would refuse (the environment is read once, on first use).
process.env.NEXTCLOUD_BOT_SECRET = "s".repeat(39);

const post = (route: { POST: (request: Request) => Promise<Response> }, path: string, body: string, headers: Record<string, string>) =>
  route.POST(new Request(`http://127.0.0.1:3000${path}`, { method: "POST", headers, body }));

describe("unconfigured channels", () => {
  it("WhatsApp without WHATSAPP_APP_SECRET: 503 that names the variable, nothing stored", async () => {
    const raw = whatsappDelivery([{ messages: [textMessage("16505551234", "wamid.x1", "hi")] }]);
    const response = await post(whatsappRoute, "/api/webhook/whatsapp", raw, { "x-hub-signature-256": metaSignature(raw, "0".repeat(32)) });
    expect(response.status).toBe(503);
    expect((await response.json()).error).toContain("WHATSAPP_APP_SECRET");
    expect(await db().turn.count()).toBe(0);
  });

  it("WhatsApp verification without WHATSAPP_VERIFY_TOKEN: 403", async () => {
    const response = await whatsappRoute.GET(
      new Request("http://127.0.0.1:3000/api/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=&hub.challenge=1"),
    );
    expect(response.status).toBe(403);
  });

  it("Talk with a bot secret shorter than 40 characters: 503", async () => {
    const raw = talkMessage({ id: "1", token: "room", message: "hi" });
    const random = "r".repeat(64);
    const response = await post(nextcloudRoute, "/api/webhook/nextcloud", raw, {
      "x-nextcloud-talk-random": random,
      "x-nextcloud-talk-signature": talkSignature(random, raw, "s".repeat(39)),
    });
    expect(response.status).toBe(503);
    expect((await response.json()).error).toMatch(/NEXTCLOUD_BOT_SECRET is shorter than 40/);
    expect(await db().turn.count()).toBe(0);
  });
});
