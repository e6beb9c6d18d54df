// @ts-check
/**
 * Learner dashboard: the learner's own records and course standing from
 * `GET /v1/me/records` (CONTRACT.md, "Results"), explained in plain words.
 * The token comes from `?token=` and travels as a bearer header.
 */

import {
  CATEGORY_LABELS, FLAG_SENTENCES, STATUS_LABELS, certificateReason, creditWords, formatDate,
  formatDateTime, formatMinutes, formatTime, humanise, label, percent, reasonSentence,
  statusSentence, zoneLabel,
} from "./hadir-text.js";

/**
 * @typedef {{start: string, end: string, kind: "connected"|"credited"}} Interval
 * @typedef {object} SessionInfo
 * @property {string} id
 * @property {string} course_id
 * @property {string} [course_title]
 * @property {string} kind
 * @property {string} mode
 * @property {string} scheduled_start
 * @property {number} duration_s
 * @property {string} status
 * @typedef {object} AttendanceRecord
 * @property {SessionInfo} session
 * @property {string} status
 * @property {number} credit
 * @property {string[]} reasons
 * @property {string[]} flags
 * @property {string|null} first_join
 * @property {string|null} last_seen
 * @property {number} connected_s
 * @property {number} present_s
 * @property {number} camera_s
 * @property {number} active_s
 * @property {number} engagements
 * @property {Interval[]} intervals
 * @property {number} revision
 * @typedef {{min_live_rate?: number, min_async_rate?: number, min_core_assignments?: number, min_final_score?: number}} Minimums
 * @typedef {object} Standing
 * @property {string} course_id
 * @property {string} [course_title]
 * @property {number|null} live_rate
 * @property {Record<string, number|null>} [rates_by_mode]
 * @property {number|null} [hours_rate]
 * @property {number|null} [async_rate]
 * @property {number|null} [core_assignments]
 * @property {number|null} [final_score]
 * @property {boolean} below_minimum
 * @property {{level: number, raised_at: string}[]} [warnings]
 * @property {{status: string, reasons?: string[]}} [certificate]
 * @property {boolean|null} [final_exam_eligible]
 * @property {string[]} [flags]
 * @property {Minimums} [minimums]
 * @typedef {{window_working_days: number, categories: string[], how: string}} ExcuseInfo
 * @typedef {{user_id: string, name?: string, records: AttendanceRecord[], standings: Standing[], excuses?: ExcuseInfo}} MeResponse
 */

const STATUS_TONE = {
  present: "ok", late: "warn", partial: "part", absent: "bad", excused: "info",
  cancelled: "idle", recording: "info", forfeited: "bad",
};
const KIND_LABELS = { class: "Class", consultation: "Consultation", exam: "Exam" };
const MODE_LABELS = { online: "Online", in_person: "In person" };
const CERT = {
  eligible: ["ok", "Certificate: eligible"],
  pending: ["idle", "Certificate: pending"],
  ineligible: ["bad", "Certificate: not reachable"],
};
/** Final-exam eligibility threshold of hours attended (POLICY §5, nelc). */
const FINAL_EXAM_HOURS = 0.25;

// ---- tiny DOM builder ---------------------------------------------------------

/**
 * @param {string} tag
 * @param {Record<string, string|boolean|number|undefined> | null} [attrs]
 * @param {...(Node|string|null|undefined|false)} children
 * @returns {HTMLElement}
 */
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === false) continue;
    if (k === "class") node.className = String(v);
    else if (k === "text") node.textContent = String(v);
    // CSSOM, not the style attribute: allowed under a CSP without 'unsafe-inline'.
    else if (k === "style") node.style.cssText = String(v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

/** @param {string} tone @param {string} text */
const badge = (tone, text) => h("span", { class: `badge ${tone}`, text });

/** @template {HTMLElement} T @param {string} id @returns {T} */
const $ = (id) => /** @type {T} */ (document.getElementById(id));

// ---- loading ----------------------------------------------------------------------

const token = new URLSearchParams(location.search).get("token") ?? "";

async function load() {
  $("zone").textContent = `Times are shown in your time zone, ${zoneLabel()}.`;
  if (!token) return fail("This page needs the link from your LMS, which carries your access token.");
  /** @type {Response} */
  let res;
  try {
    res = await fetch("/v1/me/records", { headers: { Authorization: `Bearer ${token}`, Accept: "application/json" } });
  } catch {
    return fail("Could not reach the attendance service. Check your connection and try again.", true);
  }
  if (!res.ok) {
    let detail = "";
    try {
      detail = (await res.json()).detail ?? "";
    } catch { /* not problem+json */ }
    if (res.status === 401 || res.status === 403) return fail(`Your link has expired or is not valid. Open your attendance page again from the LMS.${detail ? ` (${detail})` : ""}`);
    return fail(`The attendance service answered with an error (${res.status}${detail ? `: ${detail}` : ""}).`, true);
  }
  /** @type {MeResponse} */
  const data = await res.json();
  $("status").hidden = true;
  render(data);
}

/** @param {string} text @param {boolean} [retry] */
function fail(text, retry = false) {
  $("status").hidden = true;
  const box = $("problem");
  box.hidden = false;
  const body = h("div", null, h("strong", { text: "Your records cannot be shown." }), h("p", { text }));
  if (retry) {
    const btn = h("button", { type: "button", class: "btn retry", text: "Try again" });
    btn.addEventListener("click", () => { box.hidden = true; $("status").hidden = false; load(); });
    body.append(btn);
  }
  box.replaceChildren(h("span", { class: "icon", "aria-hidden": "true", text: "×" }), body);
}

// ---- rendering -------------------------------------------------------------------------

/** @param {MeResponse} data */
function render(data) {
  $("who").textContent = data.name ? `${data.name} · ${data.user_id}` : data.user_id;
  renderStandings(data.standings ?? []);
  renderRecords(data.records ?? []);
  renderExcuses(data.excuses);
}

/** @param {Standing[]} standings */
function renderStandings(standings) {
  if (!standings.length) return;
  $("standings-section").hidden = false;
  $("standings").replaceChildren(...standings.map(standingCard));
}

/**
 * A labelled bar with the minimum marked.
 * @param {string} name
 * @param {number|null|undefined} value 0..1
 * @param {number|undefined} min 0..1
 * @param {string} [note]
 */
function meter(name, value, min, note) {
  const has = value != null;
  const below = has && min != null && /** @type {number} */ (value) < min - 1e-9;
  const status = !has ? "" : min == null ? "" : below ? "below the minimum" : "meets the minimum";
  const aria = `${name}: ${has ? percent(value) : "no data yet"}${min != null ? `, minimum ${percent(min)}` : ""}${status ? `, ${status}` : ""}`;
  const bar = h("div", { class: "bar", role: "img", "aria-label": aria },
    has ? h("span", { class: `bar-fill ${below ? "below" : "ok"}`, style: `width:${Math.max(0, Math.min(1, /** @type {number} */ (value))) * 100}%` }) : null,
    min != null ? h("span", { class: "bar-min", style: `left:${min * 100}%`, title: `Minimum ${percent(min)}` }) : null);
  return h("div", { class: "metric" },
    h("div", { class: "metric-head" },
      h("span", { class: "metric-name", text: name }),
      h("span", { class: `metric-value num${below ? " below" : ""}`, text: has ? percent(value) : "—" })),
    bar,
    h("div", { class: "metric-foot muted" },
      h("span", { text: note ?? (has ? (min != null ? (below ? `Below the ${percent(min)} minimum` : `Minimum ${percent(min)}: met`) : "") : "No data yet") }),
      min != null ? h("span", { class: "min-label", text: `min ${percent(min)}` }) : null));
}

/** @param {Standing} s */
function standingCard(s) {
  const m = s.minimums ?? {};
  const [tone, certText] = CERT[/** @type {keyof typeof CERT} */ (s.certificate?.status ?? "")] ?? ["idle", `Certificate: ${humanise(s.certificate?.status ?? "unknown")}`];
  const head = h("div", { class: "standing-head" },
    h("h3", { text: s.course_title || s.course_id }),
    h("div", { class: "badges" },
      s.below_minimum ? badge("warn", "Below minimum") : null,
      badge(tone, certText)));

  const notices = (s.warnings ?? []).slice().sort((a, b) => b.level - a.level).map((w) => h("div", { class: `notice ${w.level >= 2 ? "bad" : "warn"} compact` },
    h("span", { class: "icon", "aria-hidden": "true", text: "!" }),
    h("p", null, h("strong", { text: `${w.level >= 2 ? "Second" : "First"} warning, ${formatDate(w.raised_at)}.` }),
      w.level >= 2
        ? "Your live attendance is at 30% of the minimum or lower. Learner support will contact you."
        : "Your live attendance is at half of the minimum or lower. Attend the coming sessions to recover.")));

  const modes = Object.entries(s.rates_by_mode ?? {});
  const liveNote = modes.length > 1
    ? modes.map(([mode, r]) => `${label(MODE_LABELS, mode)} ${percent(r)}`).join(" · ")
    : undefined;
  const metrics = [
    meter("Live sessions attended", s.live_rate, m.min_live_rate, liveNote),
    s.async_rate !== undefined ? meter("Self-paced content completed", s.async_rate, m.min_async_rate) : null,
    s.core_assignments !== undefined ? meter("Core assignments on time", s.core_assignments, m.min_core_assignments) : null,
    s.final_score !== undefined ? meter("Final assessment", s.final_score, m.min_final_score, s.final_score == null ? "Not taken yet" : undefined) : null,
    s.hours_rate != null ? meter("Hours attended", s.hours_rate, s.final_exam_eligible != null ? FINAL_EXAM_HOURS : undefined,
      s.final_exam_eligible == null ? undefined : s.final_exam_eligible ? `${percent(FINAL_EXAM_HOURS)} needed to sit the final exam: met` : `Below the ${percent(FINAL_EXAM_HOURS)} needed to sit the final exam`) : null,
  ];

  const cert = s.certificate?.reasons?.length
    ? h("div", { class: "cert-reasons" }, h("p", { class: "muted", text: s.certificate.status === "ineligible" ? "The certificate can no longer be reached:" : "Still needed for the certificate:" }),
      h("ul", null, ...s.certificate.reasons.map((r) => h("li", { text: certificateReason(r) }))))
    : null;
  const flags = (s.flags ?? []).length
    ? h("ul", { class: "flag-list" }, ...(s.flags ?? []).map((f) => h("li", { text: label(FLAG_SENTENCES, f) })))
    : null;
  const exam = s.final_exam_eligible === false
    ? h("p", { class: "exam-note bad-text", text: "You are not eligible for the final exam: under 25% of the course hours attended." })
    : null;

  return h("article", { class: "card standing" }, head, ...notices, h("div", { class: "metrics" }, ...metrics), exam, cert, flags);
}

/** @param {AttendanceRecord[]} records */
function renderRecords(records) {
  $("sessions").hidden = false;
  const list = $("records");
  if (!records.length) {
    list.replaceChildren(h("p", { class: "empty", text: "No sessions recorded yet." }));
    return;
  }
  const sorted = records.slice().sort((a, b) => Date.parse(b.session.scheduled_start) - Date.parse(a.session.scheduled_start));
  const cards = sorted.map((r) => ({ course: r.session.course_id, node: recordCard(r) }));
  list.replaceChildren(...cards.map((c) => c.node));

  /** @type {HTMLSelectElement} */
  const filter = $("course-filter");
  const courses = new Map(sorted.map((r) => [r.session.course_id, r.session.course_title || r.session.course_id]));
  filter.replaceChildren(h("option", { value: "", text: "All courses" }),
    ...[...courses].map(([id, title]) => h("option", { value: id, text: title })));
  filter.closest("label")?.toggleAttribute("hidden", courses.size < 2);
  filter.addEventListener("change", () => {
    for (const c of cards) c.node.hidden = !!filter.value && c.course !== filter.value;
  });
}

/** @param {AttendanceRecord} r */
function recordCard(r) {
  const s = r.session;
  const tone = STATUS_TONE[/** @type {keyof typeof STATUS_TONE} */ (r.status)] ?? "idle";
  const credit = r.status === "excused" || r.status === "cancelled" ? "not counted" : creditWords(r.credit);
  const sentences = r.reasons?.length ? r.reasons.map((c) => reasonSentence(c, r)) : [statusSentence(r)];
  // A flag the reasons already explain is not repeated.
  const covered = { late: "joined_late", camera_off: "camera_off" };
  const flagLines = (r.flags ?? [])
    .filter((f) => !r.reasons?.includes(covered[/** @type {keyof typeof covered} */ (f)]))
    .map((f) => label(FLAG_SENTENCES, f));
  const facts = [
    ["Connected", formatMinutes(r.connected_s)],
    ["Counted as present", formatMinutes(r.present_s)],
    ["Camera on", formatMinutes(r.camera_s)],
    ["Page in view", formatMinutes(r.active_s)],
    ["Participation", String(r.engagements ?? 0)],
  ];
  return h("article", { class: "card record", "aria-labelledby": `rec-${s.id}` },
    h("div", { class: "record-head" },
      h("div", null,
        h("h3", { id: `rec-${s.id}` }, h("span", { text: s.course_title || s.course_id }), h("span", { class: "record-kind muted", text: ` · ${label(KIND_LABELS, s.kind)}, ${label(MODE_LABELS, s.mode).toLowerCase()}` })),
        h("p", { class: "muted record-when", text: `${formatDateTime(s.scheduled_start)} – ${formatTime(new Date(Date.parse(s.scheduled_start) + s.duration_s * 1000).toISOString())} · ${formatMinutes(s.duration_s)}` })),
      h("div", { class: "record-status" },
        badge(tone, label(STATUS_LABELS, r.status)),
        h("span", { class: "muted credit", text: credit }))),
    timeline(r),
    h("ul", { class: "reasons" }, ...sentences.map((t) => h("li", { text: t }))),
    flagLines.length ? h("ul", { class: "flag-list" }, ...flagLines.map((t) => h("li", { text: t }))) : null,
    h("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [h("div", null, h("dt", { text: k }), h("dd", { class: "num", text: v }))])),
    r.revision > 1 ? h("p", { class: "revision muted", text: `Corrected after the session (revision ${r.revision}).` }) : null,
    ["absent", "partial", "late"].includes(r.status)
      ? h("p", { class: "excuse-link" }, h("a", { href: "#excuses", text: "Had a reason? How to submit an excuse" }))
      : null);
}

/**
 * Connected and credited intervals over the scheduled window, as positioned
 * bars; the label reads them out.
 * @param {AttendanceRecord} r
 */
function timeline(r) {
  const start = Date.parse(r.session.scheduled_start);
  const span = r.session.duration_s * 1000;
  const pos = (/** @type {number} */ t) => Math.max(0, Math.min(100, ((t - start) / span) * 100));
  const bars = (r.intervals ?? []).map((iv) => {
    const a = pos(Date.parse(iv.start));
    const b = pos(Date.parse(iv.end));
    return h("span", { class: `tl-bar tl-${iv.kind}`, style: `left:${a}%;width:${Math.max(0.4, b - a)}%` });
  });
  const said = (r.intervals ?? []).map((iv) => `${iv.kind === "credited" ? "credited" : "connected"} ${formatTime(iv.start)} to ${formatTime(iv.end)}`);
  const aria = said.length
    ? `Timeline of the session, ${formatTime(r.session.scheduled_start)} to ${formatTime(new Date(start + span).toISOString())}: ${said.join(", ")}.`
    : "Timeline of the session: not connected at any time.";
  const ticks = [0, 0.5, 1].map((f) => h("span", { class: "tl-tick", style: `left:${f * 100}%`, text: formatTime(new Date(start + f * span).toISOString()) }));
  return h("div", { class: "timeline" },
    h("div", { class: "tl-track", role: "img", "aria-label": aria }, ...bars),
    h("div", { class: "tl-axis", "aria-hidden": "true" }, ...ticks));
}

/** 1st, 2nd, 3rd, 4th… @param {number} n */
function ordinal(n) {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? "th" : ["th", "st", "nd", "rd"][n % 10] ?? "th";
  return `${n}${suffix}`;
}

/** @param {ExcuseInfo | undefined} ex */
function renderExcuses(ex) {
  if (!ex) return;
  $("excuses").hidden = false;
  const days = ex.window_working_days ?? 5;
  $("excuses-body").replaceChildren(
    h("p", null, "Send it by the end of the ", h("strong", { text: `${ordinal(days)} working day` }), " after the session. Later excuses cannot be accepted."),
    h("p", { class: "muted", text: "Accepted excuses take the session out of your attendance rate. An accepted report of a technical problem counts the time you lost as present instead." }),
    h("h3", { text: "Reasons you can give" }),
    h("ul", { class: "categories" }, ...(ex.categories ?? []).map((c) => h("li", null, badge("info plain", label(CATEGORY_LABELS, c))))),
    h("h3", { text: "How" }),
    h("p", { text: ex.how }));
}

load();
