import { test, describe } from "node:test";
import assert from "node:assert/strict";

import {
  certificateReason, creditWords, formatClock, formatMinutes, humanise, percent, reasonSentence, statusSentence,
} from "../../../app/static/hadir-text.js";

const session = { scheduled_start: "2026-03-08T09:00:00Z", duration_s: 5400 };

describe("reasonSentence", () => {
  test("states lateness in minutes from the scheduled start", () => {
    const r = { session, credit: 0.5, first_join: "2026-03-08T09:14:00Z" };
    assert.equal(reasonSentence("joined_late", r), "Joined 14 minutes late: counted as half.");
    assert.equal(reasonSentence("joined_after_absent_threshold", { ...r, first_join: "2026-03-08T09:42:00Z" }),
      "Joined 42 minutes late, past the point where a late arrival counts as an absence.");
  });

  test("explains leaving early and low presence with the session's figures", () => {
    const r = { session, last_seen: "2026-03-08T09:35:00Z", present_s: 2100 };
    assert.match(reasonSentence("left_before_cutoff", r), /^Left 35 minutes into the 90-minute session/);
    assert.equal(reasonSentence("presence_below_minimum", r), "Present for 35 of 90 minutes, less than the time required.");
  });

  test("has a sentence for every reason code of POLICY.md", () => {
    const codes = ["never_joined", "joined_after_absent_threshold", "left_before_cutoff", "joined_late",
      "presence_below_minimum", "no_engagement", "camera_off", "mentor_absent", "cancelled_platform_fault",
      "excuse_window_passed"];
    for (const code of codes) {
      const s = reasonSentence(code, {});
      assert.ok(s.length > 20 && !s.includes("_"), `${code}: ${s}`);
    }
  });

  test("falls back to readable words for an unknown code", () => {
    assert.equal(reasonSentence("something_new", {}), "Something new.");
  });
});

test("statusSentence and creditWords", () => {
  assert.equal(statusSentence({ status: "present", credit: 1 }), "Attended: counted in full.");
  assert.equal(statusSentence({ status: "recording", credit: 0.5 }), "Credited through the recording: counted as half.");
  assert.equal(creditWords(0.25), "counted as 25%");
  assert.equal(creditWords(0), "not counted as attended");
});

test("formatting helpers", () => {
  assert.equal(formatClock(3909), "1:05:09");
  assert.equal(formatClock(724), "12:04");
  assert.equal(formatMinutes(5400), "1 h 30 min");
  assert.equal(formatMinutes(3600), "1 h");
  assert.equal(formatMinutes(1500), "25 min");
  assert.equal(percent(0.124, 1), "12.4%");
  assert.equal(percent(null), "—");
  assert.equal(humanise("left_early_unexcused"), "Left early unexcused");
  assert.equal(certificateReason("live_rate_below_minimum"), "Live attendance is below the minimum.");
  assert.equal(certificateReason("odd_thing"), "Odd thing.");
});
