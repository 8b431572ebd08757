import { describe, expect, it } from "vitest";
import { checkSchedule, dueSlot, isTimeZone, nextFireTime, type ScheduledJob } from "../lib/cron-schedule";

const at = (iso: string) => new Date(iso);
const job = (overrides: Partial<ScheduledJob>): ScheduledJob => ({
  schedule: "0 9 * * 1-5",
  enabled: true,
  lastRun: null,
  createdAt: at("2026-11-01T00:00:00Z"),
  ...overrides,
});

describe("checkSchedule", () => {
  it.each(["0 9 * * 1-5", "*/5 * * * *", "30 7 1 * *", "@daily", "0 0 29 2 *"])("accepts %s", (schedule) => {
    expect(checkSchedule(schedule, "Europe/Paris")).toEqual({ ok: true });
  });

  it.each([
    ["0 9 * *", /4 field\(s\); use 5/],
    ["0 0 9 * * 1-5", /6 field\(s\); use 5/],
    ["61 * * * *", /not a valid cron expression.*minute/],
    ["0 25 * * *", /not a valid cron expression/],
    ["every day", /field\(s\)/],
  ])("refuses %s with a clear message", (schedule, message) => {
    const check = checkSchedule(schedule, "UTC");
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.error).toMatch(message);
  });

  it("knows real time zones", () => {
    expect(isTimeZone("Europe/Paris")).toBe(true);
    expect(isTimeZone("Mars/Olympus")).toBe(false);
  });
});

describe("dueSlot", () => {
  it("is due once the first slot after creation has passed, in the configured zone", () => {
    // 09:00 in Paris is 08:00 UTC in November.
    const monday = job({ createdAt: at("2026-11-22T12:00:00Z") });
    expect(dueSlot(monday, "Europe/Paris", at("2026-11-23T07:59:59Z"))).toBeNull();
    expect(dueSlot(monday, "Europe/Paris", at("2026-11-23T08:00:00Z"))).toEqual(at("2026-11-23T08:00:00Z"));
    expect(dueSlot(monday, "UTC", at("2026-11-23T08:30:00Z"))).toBeNull();
  });

  it("is not due again in the same minute after it ran", () => {
    const ran = job({ lastRun: at("2026-11-23T08:00:05Z") });
    expect(dueSlot(ran, "Europe/Paris", at("2026-11-23T08:00:50Z"))).toBeNull();
    expect(dueSlot(ran, "Europe/Paris", at("2026-11-24T08:00:00Z"))).toEqual(at("2026-11-24T08:00:00Z"));
  });

  it("runs a job that missed several slots once, not once per slot", () => {
    const asleep = job({ schedule: "0 * * * *", lastRun: at("2026-11-23T01:00:00Z") });
    const now = at("2026-11-23T07:30:00Z");
    expect(dueSlot(asleep, "UTC", now)).toEqual(at("2026-11-23T02:00:00Z"));
    const afterRun = { ...asleep, lastRun: now };
    expect(dueSlot(afterRun, "UTC", at("2026-11-23T07:59:00Z"))).toBeNull();
  });

  it("does not run a job created after today's slot until the next one", () => {
    const late = job({ schedule: "0 9 * * *", createdAt: at("2026-11-23T10:00:00Z") });
    expect(dueSlot(late, "UTC", at("2026-11-23T10:01:00Z"))).toBeNull();
    expect(dueSlot(late, "UTC", at("2026-11-24T09:00:00Z"))).toEqual(at("2026-11-24T09:00:00Z"));
  });

  it("never runs a disabled job", () => {
    expect(dueSlot(job({ enabled: false }), "UTC", at("2026-12-01T12:00:00Z"))).toBeNull();
  });

  it("handles month ends: day 31 skips the shorter months", () => {
    const lastDay = job({ schedule: "0 8 31 * *", lastRun: at("2026-10-31T08:00:00Z") });
    expect(nextFireTime(lastDay.schedule, "UTC", lastDay.lastRun!)).toEqual(at("2026-12-31T08:00:00Z"));
    expect(dueSlot(lastDay, "UTC", at("2026-11-30T23:59:00Z"))).toBeNull();
  });

  it("fires once across a daylight-saving change", () => {
    // Paris springs forward at 02:00 on 2026-03-29: 02:30 does not exist that night.
    const night = job({ schedule: "30 2 * * *", lastRun: at("2026-03-28T01:30:00Z") });
    const slot = nextFireTime(night.schedule, "Europe/Paris", night.lastRun!);
    expect(slot).not.toBeNull();
    expect(slot!.getTime()).toBeGreaterThan(at("2026-03-29T00:00:00Z").getTime());
    expect(slot!.getTime()).toBeLessThan(at("2026-03-29T23:00:00Z").getTime());
    const after = nextFireTime(night.schedule, "Europe/Paris", slot!);
    expect(after).toEqual(at("2026-03-30T00:30:00Z")); // 02:30 CEST
    // Autumn: 02:30 happens twice on 2026-10-25; the job runs once that night.
    const autumn = nextFireTime("30 2 * * *", "Europe/Paris", at("2026-10-24T12:00:00Z"))!;
    expect(nextFireTime("30 2 * * *", "Europe/Paris", autumn)!.getTime() - autumn.getTime()).toBeGreaterThan(12 * 3600_000);
  });
});
