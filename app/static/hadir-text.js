// @ts-check
/**
 * Plain-language wording shared by the instructor panel and the learner
 * dashboard: labels for states, statuses and flags, one sentence per reason
 * code of POLICY.md, and time formatting in the browser's zone. Pure: no DOM.
 * @module hadir-text
 */

/**
 * @typedef {object} RecordLike  the parts of an attendance record the sentences use
 * @property {string} [status]
 * @property {number} [credit]
 * @property {string|null} [first_join]
 * @property {string|null} [last_seen]
 * @property {number} [connected_s]
 * @property {number} [present_s]
 * @property {number} [camera_s]
 * @property {{scheduled_start?: string, duration_s?: number}} [session]
 */

/** Presence states of the live panel. */
export const STATE_LABELS = {
  connected: "Connected",
  dropped: "Dropped",
  left: "Left",
  never: "Not joined",
};

/** Record statuses (POLICY §2-§4). */
export const STATUS_LABELS = {
  present: "Present",
  late: "Late",
  partial: "Partial",
  absent: "Absent",
  excused: "Excused",
  cancelled: "Cancelled",
  recording: "Recording credit",
  forfeited: "Forfeited",
  // session outcomes
  scheduled: "Scheduled",
  live: "Live",
  ended: "Ended",
  finalised: "Finalised",
  cancelled_platform_fault: "Cancelled: platform fault",
  mentor_absent: "Cancelled: no instructor",
};

/** Short labels for flags (panel badges, dashboard tags). */
export const FLAG_LABELS = {
  late: "Late",
  at_risk: "At risk",
  camera_off: "Camera off",
  guest: "Guest",
  exam_checkin_late: "Late check-in",
  exam_late_entry: "Late exam entry",
  camera_off_during_exam: "Camera off in exam",
  late_10m: "Late 10 min+",
  left_early_unexcused: "Left early",
  absence_15pct: "Absences 15%+",
  alternative_content: "Alternative content",
  below_minimum: "Below minimum",
  reschedule_required: "Reschedule",
};

/** One sentence per flag, for the learner. */
export const FLAG_SENTENCES = {
  late: "You joined late.",
  at_risk: "Your attendance in this course is at risk.",
  camera_off: "Your camera was off while it was required.",
  guest: "You were recorded as a guest.",
  exam_checkin_late: "You checked in less than 10 minutes before the exam started.",
  exam_late_entry: "You entered the exam after it started; the end time was not extended.",
  camera_off_during_exam: "Your camera was off during the exam.",
  late_10m: "Conduct note: joined 10 or more minutes late without an accepted excuse.",
  left_early_unexcused: "Conduct note: left more than 10 minutes before the end without an accepted excuse.",
  absence_15pct: "Conduct note: unexcused absences have reached 15% of the scheduled lectures.",
  alternative_content: "Alternative content is available to make up for this session.",
  below_minimum: "Your live attendance rate is below the course minimum.",
};

/** Excuse categories (POLICY §6). */
export const CATEGORY_LABELS = {
  medical: "Medical",
  bereavement: "Bereavement",
  official: "Official duty",
  travel: "Travel",
  technical: "Technical problem",
};

/** `some_code` → "Some code": the fallback for codes this file does not know. */
export function humanise(/** @type {string} */ code) {
  const s = String(code).replace(/[_-]+/g, " ").trim();
  return s ? s[0].toUpperCase() + s.slice(1) : "";
}

/**
 * @param {Record<string, string>} table
 * @param {string} key
 */
export function label(table, key) {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : humanise(key);
}

/** @param {number} n @param {string} one @param {string} [many] */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** Whole minutes, rounded. @param {number} seconds */
export function minutes(seconds) {
  return Math.round((seconds || 0) / 60);
}

/** "45 min", "1 h 30 min". @param {number} seconds */
export function formatMinutes(seconds) {
  const m = minutes(seconds);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}

/** "1:05:09", "12:04" (running clock). @param {number} seconds */
export function formatClock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** "50%" from 0.5; "—" for null. @param {number|null|undefined} ratio @param {number} [digits] */
export function percent(ratio, digits = 0) {
  if (ratio == null || Number.isNaN(ratio)) return "—";
  return `${(ratio * 100).toFixed(digits)}%`;
}

/** How a credit counts, in words. @param {number|null|undefined} credit */
export function creditWords(credit) {
  if (credit == null) return "";
  if (credit >= 1) return "counted in full";
  if (credit === 0.5) return "counted as half";
  if (credit <= 0) return "not counted as attended";
  return `counted as ${percent(credit)}`;
}

/** @param {string|null|undefined} a @param {string|null|undefined} b seconds from a to b */
function secondsBetween(a, b) {
  if (!a || !b) return null;
  return (Date.parse(b) - Date.parse(a)) / 1000;
}

/**
 * One sentence explaining a reason code of a record (POLICY §2-§6).
 * @param {string} code
 * @param {RecordLike} [record]
 * @returns {string}
 */
export function reasonSentence(code, record = {}) {
  const start = record.session?.scheduled_start;
  const duration = record.session?.duration_s ?? 0;
  const late = secondsBetween(start, record.first_join);
  const stayed = secondsBetween(start, record.last_seen);
  const credit = creditWords(record.credit);
  switch (code) {
    case "never_joined":
      return "You did not join this session.";
    case "joined_after_absent_threshold":
      return late != null
        ? `Joined ${plural(minutes(late), "minute")} late, past the point where a late arrival counts as an absence.`
        : "Joined too late for the session to count: counted as absent.";
    case "left_before_cutoff":
      return stayed != null && duration
        ? `Left ${plural(minutes(stayed), "minute")} into the ${minutes(duration)}-minute session, before the part you have to attend was over: counted as absent.`
        : "Left before the part of the session you have to attend was over: counted as absent.";
    case "joined_late":
      return late != null
        ? `Joined ${plural(minutes(late), "minute")} late: ${credit || "counted as half"}.`
        : `Joined late: ${credit || "counted as half"}.`;
    case "presence_below_minimum":
      return record.present_s != null && duration
        ? `Present for ${minutes(record.present_s)} of ${minutes(duration)} minutes, less than the time required.`
        : "Present for less than the time required.";
    case "no_engagement":
      return "No participation recorded: no question, chat message, poll vote, answer, reaction or raised hand.";
    case "camera_off":
      return record.camera_s != null && record.connected_s
        ? `Camera on for ${minutes(record.camera_s)} of ${minutes(record.connected_s)} connected minutes; this session needed it on for most of the time.`
        : "Camera off for longer than allowed in a session that needed it.";
    case "mentor_absent":
      return "No instructor joined within 10 minutes of the start. The session is cancelled and does not count against you; you can ask for a refund, a substitute session or goodwill credit.";
    case "cancelled_platform_fault":
      return "Platform problems took more than 30% of the session. It is cancelled, does not count, and will be rescheduled.";
    case "excused":
    case "excuse_accepted":
      return "Your excuse was accepted: this session is left out of your attendance rate.";
    case "excuse_rejected":
      return "Your excuse was not accepted.";
    case "excuse_pending":
      return "Your excuse is waiting for a decision.";
    case "excuse_window_passed":
      return "Your excuse arrived after the 5-working-day window and could not be accepted.";
    case "technical_claim_accepted":
      return "Your report of a technical problem was accepted: the time it took is counted as present.";
    case "recording":
    case "recording_watched":
      return `You lost time to a platform problem and then watched the recording: ${credit || "counted as half"}.`;
    case "outage_credited":
      return "Time lost to a platform outage while you were connected is counted in your favour.";
    case "reconnect_credited":
      return "Short disconnections from which you came back within a minute are counted in your favour.";
    case "forfeited":
    case "cancelled_late":
    case "late_cancellation":
      return "Cancelled less than 24 hours before the start: the session is counted as held.";
    case "cancelled_by_learner":
    case "cancelled_with_notice":
      return "Cancelled at least 24 hours ahead: not counted; you can get a refund or a new time.";
    case "cancelled_by_institution":
      return "Cancelled by the institution: not counted.";
    default:
      return `${humanise(code)}.`;
  }
}

/**
 * The outcome of a record in one sentence, for records whose reasons do not
 * say it already.
 * @param {RecordLike} record
 */
export function statusSentence(record) {
  switch (record.status) {
    case "present": return "Attended: counted in full.";
    case "late": return `Late: ${creditWords(record.credit ?? 0.5)}.`;
    case "partial": return `Partly attended: ${creditWords(record.credit ?? 0.5)}.`;
    case "absent": return "Absent: counted as a missed session.";
    case "excused": return "Excused: left out of your attendance rate.";
    case "cancelled": return "Cancelled: not counted.";
    case "recording": return `Credited through the recording: ${creditWords(record.credit ?? 0.5)}.`;
    case "forfeited": return "Cancelled too late: counted as held, with no attendance credit.";
    default: return record.status ? `${humanise(record.status)}.` : "";
  }
}

/** Reasons a certificate is pending or out of reach. */
export function certificateReason(/** @type {string} */ code) {
  const known = {
    live_rate_below_minimum: "Live attendance is below the minimum.",
    min_live_rate: "Live attendance is below the minimum.",
    live_rate_unreachable: "Live attendance can no longer reach the minimum, even attending every remaining session.",
    async_rate_below_minimum: "Not enough self-paced content completed yet.",
    min_async_rate: "Not enough self-paced content completed yet.",
    core_assignments_missing: "Not every core assignment was submitted on time.",
    min_core_assignments: "Not every core assignment was submitted on time.",
    final_score_below_minimum: "The final assessment score is below the minimum.",
    min_final_score: "The final assessment score is below the minimum.",
    final_score_missing: "No final assessment score yet.",
    course_not_ended: "The course has not ended yet.",
  };
  return label(known, code).replace(/([^.])$/, "$1.");
}

/**
 * The browser's time zone, e.g. "Asia/Riyadh (GMT+3)".
 * @param {Date} [at]
 */
export function zoneLabel(at = new Date()) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "shortOffset" })
    .formatToParts(at)
    .find((p) => p.type === "timeZoneName");
  return part && part.value !== zone ? `${zone} (${part.value})` : zone;
}

const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
});
const dateFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric" });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

/** @param {string|null|undefined} iso */
export function formatDateTime(iso) {
  return iso ? dateTimeFmt.format(new Date(iso)) : "—";
}
/** @param {string|null|undefined} iso */
export function formatDate(iso) {
  return iso ? dateFmt.format(new Date(iso)) : "—";
}
/** @param {string|null|undefined} iso */
export function formatTime(iso) {
  return iso ? timeFmt.format(new Date(iso)) : "—";
}
