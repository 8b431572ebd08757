import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkSchedule, nextFireTime } from "../lib/cron-schedule";

const field = fc.oneof(
  fc.constantFrom("*", "*/5", "0", "59", "60", "1-5", "5-1", "L", "?", "#", "MON", "jan", "1,2,,3", "-1", "9999999999", ""),
  fc.string({ maxLength: 6 }),
);
const schedule = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.array(field, { maxLength: 8 }).map((fields) => fields.join(" ")),
  fc.constantFrom("@daily", "@HOURLY", "@reboot", "@yearly", "@", "0 0 31 2 *"),
);
const zone = fc.oneof(fc.constantFrom("UTC", "Europe/Berlin", "Nowhere/City", "", "+02:00"), fc.string());

describe("checkSchedule properties", () => {
  it("never throws: an accepted schedule has a next fire time, a refused one a reason", () => {
    fc.assert(
      fc.property(schedule, zone, (text, timeZone) => {
        const check = checkSchedule(text, timeZone);
        if (check.ok) expect(nextFireTime(text, timeZone, new Date())).toBeInstanceOf(Date);
        else expect(check.error.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });
});
