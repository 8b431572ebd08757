import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clientKey, KeyedBuckets, TokenBucket } from "../lib/rate-limit";

// The token buckets behind the webhook and cron limits, with explicit times.

const options = fc.record({
  capacity: fc.integer({ min: 1, max: 50 }),
  refillPerSecond: fc.double({ min: 0.01, max: 1000, noNaN: true }),
});
const steps = fc.array(fc.record({ dt: fc.integer({ min: 0, max: 3000 }), op: fc.constantFrom("take", "wait") }), { maxLength: 200 });

describe("TokenBucket", () => {
  it("never lets through more than the capacity plus what the elapsed time refilled", () => {
    fc.assert(
      fc.property(options, steps, (opts, sequence) => {
        const bucket = new TokenBucket(opts, 0);
        let now = 0;
        let passed = 0;
        for (const { dt, op } of sequence) {
          now += dt;
          if (op === "take" && bucket.take(now) === 0) passed += 1;
          else if (op === "wait") bucket.waitMs(now);
          expect(passed).toBeLessThanOrEqual(opts.capacity + (now * opts.refillPerSecond) / 1000 + 1e-6);
        }
      }),
    );
  });

  it("lets a request through once the announced wait is over", () => {
    fc.assert(
      fc.property(options, steps, (opts, sequence) => {
        const bucket = new TokenBucket(opts, 0);
        let now = 0;
        for (const { dt } of sequence) {
          now += dt;
          const wait = bucket.take(now);
          if (wait > 0) {
            expect(bucket.take(now + wait)).toBe(0);
            now += wait;
          }
        }
      }),
    );
  });

  it("is full again after capacity / rate seconds of quiet, and then passes exactly `capacity` at once", () => {
    fc.assert(
      fc.property(options, steps, (opts, sequence) => {
        const bucket = new TokenBucket(opts, 0);
        let now = 0;
        for (const { dt } of sequence) bucket.take((now += dt));
        now += Math.ceil((opts.capacity / opts.refillPerSecond) * 1000) + 1;
        expect(bucket.isFull(now)).toBe(true);
        for (let i = 0; i < opts.capacity; i++) expect(bucket.take(now)).toBe(0);
        expect(bucket.take(now)).toBeGreaterThan(0);
      }),
    );
  });

  it("waitMs takes nothing, and a clock that steps back refills nothing", () => {
    fc.assert(
      fc.property(options, fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 10_000 }), (opts, looks, back) => {
        const bucket = new TokenBucket(opts, 10_000);
        for (let i = 0; i < looks; i++) expect(bucket.waitMs(10_000)).toBe(0);
        for (let i = 0; i < opts.capacity; i++) expect(bucket.take(10_000)).toBe(0);
        expect(bucket.take(10_000 - back)).toBeGreaterThan(0);
        expect(bucket.take(10_000)).toBeGreaterThan(0);
      }),
    );
  });
});

describe("KeyedBuckets", () => {
  const keyed = fc.array(fc.record({ key: fc.constantFrom("a", "b", "c", "d", "e"), dt: fc.integer({ min: 0, max: 2000 }) }), {
    maxLength: 200,
  });

  it("keeps each key's count to itself: a key behaves as a lone bucket whatever the others do", () => {
    fc.assert(
      fc.property(options, keyed, (opts, sequence) => {
        const buckets = new KeyedBuckets({ ...opts, maxKeys: 10 });
        const alone = new Map<string, TokenBucket>();
        let now = 0;
        for (const { key, dt } of sequence) {
          now += dt;
          if (!alone.has(key)) alone.set(key, new TokenBucket(opts, now));
          expect(buckets.take(key, now)).toBe(alone.get(key)!.take(now));
          expect(buckets.waitMs(key, now)).toBe(alone.get(key)!.waitMs(now));
        }
      }),
    );
  });

  it("holds at most maxKeys buckets, however many keys come", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 300 }), (maxKeys, keys) => {
        const buckets = new KeyedBuckets({ capacity: 3, refillPerSecond: 0.1, maxKeys });
        keys.forEach((key, i) => {
          buckets.take(String(key), i);
          expect(buckets.size).toBeLessThanOrEqual(maxKeys);
        });
      }),
    );
  });

  it("an unknown key has nothing to wait for", () => {
    const buckets = new KeyedBuckets({ capacity: 1, refillPerSecond: 1, maxKeys: 2 });
    expect(buckets.take("x", 0)).toBe(0);
    expect(buckets.waitMs("x", 0)).toBe(1000);
    expect(buckets.waitMs("y", 0)).toBe(0);
  });

  it("evicts the least recently used key, not the one in use", () => {
    const buckets = new KeyedBuckets({ capacity: 1, refillPerSecond: 0.001, maxKeys: 2 });
    buckets.take("a", 0);
    buckets.take("b", 1);
    buckets.take("a", 2); // refused, and now the most recent
    buckets.take("c", 3); // b goes
    expect(buckets.waitMs("a", 4)).toBeGreaterThan(0);
    expect(buckets.waitMs("b", 4)).toBe(0);
  });
});

describe("clientKey", () => {
  const withHeaders = (headers: [string, string][]) => new Request("http://127.0.0.1:3000/api/webhook/whatsapp", { headers });

  it.each([
    ["no X-Forwarded-For", [], "direct"],
    ["one hop", [["x-forwarded-for", "203.0.113.7"]], "203.0.113.7"],
    ["the hop the proxy appended, not the one the client sent", [["x-forwarded-for", "198.51.100.1, 203.0.113.7"]], "203.0.113.7"],
    ["spaces and empty hops", [["x-forwarded-for", " 198.51.100.1 ,, 2001:db8::1 , "]], "2001:db8::1"],
    ["repeated headers", [["x-forwarded-for", "198.51.100.1"], ["x-forwarded-for", "203.0.113.9"]], "203.0.113.9"],
    ["a hop longer than any address, cut", [["x-forwarded-for", "f".repeat(5000)]], "f".repeat(64)],
  ] as [string, [string, string][], string][])("%s", (_name, headers, key) => {
    expect(clientKey(withHeaders(headers))).toBe(key);
  });
});
