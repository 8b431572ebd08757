import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as nextcloud from "../lib/channels/nextcloud";
import * as whatsapp from "../lib/channels/whatsapp";

const deep = fc.jsonValue({ maxDepth: 60 });
const anything = fc.oneof(fc.anything({ maxDepth: 6, withNullPrototype: true, withMap: true, withBigInt: true }), deep);
// Right keys, wrong or random values at every level.
const whatsappShaped = fc.record(
  {
    object: fc.oneof(fc.constant("whatsapp_business_account"), anything),
    entry: fc.oneof(
      anything,
      fc.array(
        fc.record(
          {
            changes: fc.oneof(
              anything,
              fc.array(
                fc.record(
                  {
                    field: fc.oneof(fc.constant("messages"), anything),
                    value: fc.oneof(
                      anything,
                      fc.record(
                        {
                          metadata: anything,
                          contacts: fc.oneof(anything, fc.array(anything)),
                          statuses: anything,
                          messages: fc.oneof(
                            anything,
                            fc.array(
                              fc.record(
                                {
                                  id: fc.oneof(fc.string(), anything),
                                  type: fc.oneof(fc.constantFrom("text", "image", "audio", "sticker"), anything),
                                  from: fc.oneof(fc.string(), anything),
                                  from_user_id: anything,
                                  text: fc.oneof(fc.record({ body: fc.oneof(fc.string(), anything) }), anything),
                                  image: anything,
                                  audio: anything,
                                },
                                { requiredKeys: [] },
                              ),
                            ),
                          ),
                        },
                        { requiredKeys: [] },
                      ),
                    ),
                  },
                  { requiredKeys: [] },
                ),
              ),
            ),
          },
          { requiredKeys: [] },
        ),
      ),
    ),
  },
  { requiredKeys: [] },
);
const nextcloudShaped = fc.record(
  {
    type: fc.oneof(fc.constantFrom("Create", "Join", "Like"), anything),
    actor: fc.oneof(anything, fc.record({ id: fc.oneof(fc.constantFrom("users/alice", "bots/x"), anything), name: anything })),
    object: fc.oneof(
      anything,
      fc.record({
        type: fc.oneof(fc.constant("Note"), anything),
        id: fc.oneof(fc.nat().map(String), anything),
        content: fc.oneof(
          deep.map((value) => JSON.stringify(value)),
          fc.record({ message: fc.string(), parameters: deep }).map((value) => JSON.stringify(value)),
          fc.string(),
        ),
      }),
    ),
    target: fc.oneof(anything, fc.record({ id: fc.oneof(fc.string(), anything) })),
  },
  { requiredKeys: [] },
);

describe("parseWebhook never throws", () => {
  it("WhatsApp: any value gives lists of messages and ignored entries", () => {
    fc.assert(
      fc.property(fc.oneof(anything, whatsappShaped), (body) => {
        const parsed = whatsapp.parseWebhook(body);
        expect(Array.isArray(parsed.messages) && Array.isArray(parsed.ignored)).toBe(true);
        for (const message of parsed.messages) expect(typeof message.text).toBe("string");
      }),
      { numRuns: 500 },
    );
  });

  it("Nextcloud Talk: any value gives at most one message with string fields", () => {
    fc.assert(
      fc.property(fc.oneof(anything, nextcloudShaped), (body) => {
        const parsed = nextcloud.parseWebhook(body);
        expect(parsed.messages.length).toBeLessThanOrEqual(1);
        for (const message of parsed.messages) expect(typeof message.text).toBe("string");
      }),
      { numRuns: 500 },
    );
  });
});

const bytes = fc.uint8Array({ maxLength: 200 });
const secret = fc.string({ minLength: 1, maxLength: 40 });
const header = fc.oneof(fc.constant(null), fc.string(), fc.string({ unit: "binary" }), fc.hexaString().map((h) => `sha256=${h}`));
const hmac = (key: string, ...parts: (string | Uint8Array)[]) => {
  const mac = createHmac("sha256", key);
  for (const part of parts) mac.update(typeof part === "string" ? Buffer.from(part, "latin1") : part);
  return mac.digest("hex");
};

describe("verifySignature", () => {
  it("WhatsApp: never throws, and is true only for the body's HMAC", () => {
    fc.assert(
      fc.property(bytes, header, secret, (body, value, key) => {
        const ok = whatsapp.verifySignature(body, value, key);
        const right = `sha256=${hmac(key, body)}`;
        expect(ok).toBe(value !== null && value.trim().toLowerCase() === right);
        expect(whatsapp.verifySignature(body, right, key)).toBe(true);
        expect(whatsapp.verifySignature(body, right.toUpperCase().replace("SHA256", "sha256"), key)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("Nextcloud Talk: never throws, and is true only for HMAC(random + body)", () => {
    const random = fc.oneof(fc.constant(null), fc.string(), fc.string({ minLength: 32, maxLength: 64 }), fc.string({ unit: "binary" }));
    fc.assert(
      fc.property(bytes, random, header, secret, (body, rand, value, key) => {
        const ok = nextcloud.verifySignature(body, rand, value, key);
        if (ok) expect(value?.toLowerCase()).toBe(hmac(key, rand ?? "", body));
        if (rand !== null && rand.length >= nextcloud.MIN_RANDOM_LENGTH) {
          expect(nextcloud.verifySignature(body, rand, hmac(key, rand, body), key)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
