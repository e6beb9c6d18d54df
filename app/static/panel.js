// @ts-check
/**
 * Instructor panel: live roster of one session over the panel websocket
 * `/v1/live/{session_id}/panel?token=…` (CONTRACT.md, "Instructor panel").
 *
 * Messages are folded into a model (session + participants by user id) and
 * the page is redrawn at most once per animation frame. Only one page of
 * rows exists in the DOM; rows are reused by user id and rewritten only when
 * their participant changed. Time present ticks locally for connected
 * people between deltas.
 */

import { Backoff } from "./hadir-queue.js";
import {
  FLAG_LABELS, STATE_LABELS, STATUS_LABELS, formatClock, formatDateTime, formatMinutes,
  formatTime, humanise, label, percent, plural, zoneLabel,
} from "./hadir-text.js";

/**
 * @typedef {"connected"|"dropped"|"left"|"never"} PresenceState
 * @typedef {{status: string, credit?: number, reasons?: string[]}} Provisional
 * @typedef {object} Participant
 * @property {string} user_id
 * @property {string} [name]
 * @property {string} role
 * @property {PresenceState} state
 * @property {string|null} [joined_at]
 * @property {number} present_s
 * @property {boolean} camera
 * @property {number} engagements
 * @property {string[]} [flags]
 * @property {Provisional} [provisional]
 * @typedef {{start: string, end: string|null, cause?: string}} OutageWindow
 * @typedef {{active: boolean, fault_ratio: number, windows?: OutageWindow[]}} Outage
 * @typedef {object} Session
 * @property {string} id
 * @property {string} status
 * @property {string|null} [started_at]
 * @property {string} [title]
 * @property {string} [kind]
 * @property {string} [scheduled_start]
 * @property {number} [duration_s]
 * @property {boolean} [camera_required]
 * @property {Outage} [outage]
 * @property {{learners: number, cap: number, hard_cap: number}} [capacity]
 * @property {{required: number, present: number}} [staffing]
 * @typedef {{p: Participant, at: number, version: number}} Entry
 */

/** Close codes after which reconnecting cannot help, with what to tell the user. */
const FATAL = {
  4401: "The link's access token is missing, invalid or expired. Open the panel again from the LMS.",
  4403: "This link is not valid for this session, or your role cannot open the panel.",
  4404: "This session does not exist.",
};

/** Above this share of the session lost to outages, it is cancelled (POLICY §3). */
const FAULT_CANCEL_RATIO = 0.3;

const STATE_ORDER = { connected: 0, dropped: 1, left: 2, never: 3 };
const STATE_BADGE = { connected: "ok", dropped: "bad", left: "idle", never: "outline" };
const OUTCOME_BADGE = { present: "ok", late: "warn", partial: "part", absent: "bad", excused: "info", cancelled: "idle" };
const FLAG_BADGE = { late: "warn", at_risk: "bad", camera_off: "idle", guest: "info", exam_checkin_late: "warn", exam_late_entry: "warn", camera_off_during_exam: "idle" };
const ROLE_LABELS = { learner: "Learner", instructor: "Instructor", assistant: "Assistant", mentor: "Mentor", observer: "Observer" };
const KIND_LABELS = { class: "Class", consultation: "Consultation", exam: "Exam" };
/** Short forms of POLICY reason codes, for the table. */
const REASON_SHORT = {
  never_joined: "not joined",
  joined_after_absent_threshold: "joined too late",
  left_before_cutoff: "left early",
  joined_late: "joined late",
  presence_below_minimum: "low presence",
  no_engagement: "no engagement",
  camera_off: "camera off",
  mentor_absent: "no instructor",
  cancelled_platform_fault: "platform fault",
};

// ---- location ------------------------------------------------------------

const params = new URLSearchParams(location.search);
const token = params.get("token") ?? "";
const sessionId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() ?? "");
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/live/${encodeURIComponent(sessionId)}/panel?token=${encodeURIComponent(token)}`;

// ---- DOM -----------------------------------------------------------------

/** @template {HTMLElement} T @param {string} id @returns {T} */
const $ = (id) => /** @type {T} */ (document.getElementById(id));

const el = {
  conn: $("conn"),
  title: $("session-title"),
  meta: $("session-meta"),
  status: $("session-status"),
  fatal: $("fatal"),
  finalised: $("finalised"),
  outage: $("outage"),
  outageTitle: $("outage-title"),
  outageText: $("outage-text"),
  outageWindows: $("outage-windows"),
  rows: $("rows"),
  empty: $("empty"),
  count: $("result-count"),
  pageInfo: $("page-info"),
  /** @type {HTMLButtonElement} */ prev: $("prev"),
  /** @type {HTMLButtonElement} */ next: $("next"),
  /** @type {HTMLInputElement} */ q: $("q"),
  /** @type {HTMLSelectElement} */ fState: $("f-state"),
  /** @type {HTMLSelectElement} */ fFlag: $("f-flag"),
  /** @type {HTMLSelectElement} */ sortKey: $("sort-key"),
  /** @type {HTMLButtonElement} */ sortDir: $("sort-dir"),
  /** @type {HTMLSelectElement} */ pageSize: $("page-size"),
  announcer: $("announcer"),
};

// ---- model ---------------------------------------------------------------

/** @type {Session | null} */
let session = null;
/** @type {Map<string, Entry>} */
const people = new Map();
let finalised = false;
let version = 0;

const view = {
  q: "",
  state: "",
  flag: "",
  /** @type {"name"|"state"|"present"|"engagements"} */
  sortKey: "name",
  sortDir: 1,
  page: 0,
  pageSize: 50,
};

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/** @param {Participant} p */
const displayName = (p) => p.name || p.user_id;

/** Time present now: the server's figure plus local time since, while connected. */
function presentNow(/** @type {Entry} */ e, now = performance.now()) {
  return e.p.present_s + (e.p.state === "connected" ? (now - e.at) / 1000 : 0);
}

/**
 * Outcome bucket for the counters, learners only: the provisional status when
 * the server sends one, otherwise a reading of state and flags.
 * @param {Participant} p
 * @returns {"present"|"late"|"partial"|"absent"|null}
 */
function outcomeOf(p) {
  const s = p.provisional?.status;
  if (s === "present" || s === "late" || s === "partial" || s === "absent") return s;
  if (s) return null;
  if (p.state === "never") return "absent";
  if (p.flags?.includes("late")) return "late";
  return "present";
}

/** @param {Participant} p */
function upsert(p, now = performance.now()) {
  const prev = people.get(p.user_id);
  people.set(p.user_id, { p, at: now, version: ++version });
  return prev?.p;
}

/** Shallow-merge a partial session, one level deep for nested objects. @param {Partial<Session>} patch */
function mergeSession(patch) {
  if (!session) session = /** @type {Session} */ ({ ...patch });
  else {
    const s = /** @type {Record<string, any>} */ (session);
    for (const [k, v] of Object.entries(patch)) {
      s[k] = v && typeof v === "object" && !Array.isArray(v) && s[k] && typeof s[k] === "object" ? { ...s[k], ...v } : v;
    }
  }
}

// ---- messages --------------------------------------------------------------

/** @param {any} msg */
function onMessage(msg) {
  switch (msg.type) {
    case "snapshot": {
      session = msg.session ?? null;
      people.clear();
      const now = performance.now();
      for (const p of msg.participants ?? []) upsert(p, now);
      if (session?.status === "finalised") setFinalised();
      backoff.reset();
      dirty.all = true;
      break;
    }
    case "delta": {
      if (msg.session) {
        const wasActive = !!session?.outage?.active;
        mergeSession(msg.session);
        announceOutage(wasActive);
      }
      const now = performance.now();
      for (const p of msg.participants ?? []) announceChange(upsert(p, now), p);
      dirty.all = true;
      break;
    }
    case "outage": {
      const wasActive = !!session?.outage?.active;
      mergeSession({ outage: { active: !!msg.active, fault_ratio: msg.fault_ratio ?? 0, windows: msg.windows ?? session?.outage?.windows ?? [] } });
      announceOutage(wasActive);
      dirty.all = true;
      break;
    }
    case "finalised":
      setFinalised();
      announce("Session finalised.");
      break;
    case "error":
      showConn("warn", `Server error: ${msg.detail || msg.code}`);
      break;
  }
  schedule();
}

function setFinalised() {
  finalised = true;
  el.finalised.hidden = false;
  if (session) session.status = "finalised";
  dirty.all = true;
}

// ---- announcements (polite live region) --------------------------------------

/** @type {{name: string, what: string}[]} */
let pendingAnnouncements = [];
/** @type {number | undefined} */
let announceTimer;

/** @param {string} text */
function announce(text) {
  pendingAnnouncements.push({ name: "", what: text });
  announceTimer ??= window.setTimeout(flushAnnouncements, 1200);
}

/** @param {Participant | undefined} before @param {Participant} after */
function announceChange(before, after) {
  if (!before) {
    if (after.state !== "connected") return;
    pendingAnnouncements.push({ name: displayName(after), what: "joined" });
  } else if (before.state === after.state) {
    if (!before.flags?.includes("at_risk") && after.flags?.includes("at_risk")) {
      pendingAnnouncements.push({ name: displayName(after), what: "is at risk" });
    } else return;
  } else {
    const what = after.state === "connected" ? (before.state === "never" ? "joined" : "reconnected")
      : after.state === "dropped" ? "dropped" : after.state === "left" ? "left" : "";
    if (!what) return;
    pendingAnnouncements.push({ name: displayName(after), what });
  }
  announceTimer ??= window.setTimeout(flushAnnouncements, 1200);
}

/** Up to three changes by name; more are summarised by kind. */
function flushAnnouncements() {
  announceTimer = undefined;
  const items = pendingAnnouncements;
  pendingAnnouncements = [];
  if (!items.length) return;
  let text;
  if (items.length <= 3) text = items.map((i) => `${i.name ? `${i.name} ` : ""}${i.what}`).join(". ");
  else {
    /** @type {Map<string, number>} */
    const byKind = new Map();
    for (const i of items) if (i.name) byKind.set(i.what, (byKind.get(i.what) ?? 0) + 1);
    const general = items.filter((i) => !i.name).map((i) => i.what);
    const parts = [...byKind].map(([what, n]) => `${n} ${what}`);
    text = [...general, parts.length ? `${plural(items.length - general.length, "change")}: ${parts.join(", ")}` : ""].filter(Boolean).join(". ");
  }
  el.announcer.textContent = `${text}.`.replace(/\.\.$/, ".");
}

/** @param {boolean} wasActive */
function announceOutage(wasActive) {
  const active = !!session?.outage?.active;
  if (active && !wasActive) announce("Platform outage started");
  if (!active && wasActive) announce("Platform outage ended");
}

// ---- connection ----------------------------------------------------------------

const backoff = new Backoff();
/** @type {WebSocket | null} */
let socket = null;

/** @param {"ok"|"warn"|"bad"|"idle"|"info"} tone @param {string} text */
function showConn(tone, text) {
  el.conn.className = `badge ${tone}`;
  el.conn.textContent = text;
}

/** @param {string} text */
function showFatal(text) {
  el.fatal.hidden = false;
  el.fatal.replaceChildren();
  const icon = document.createElement("span");
  icon.className = "icon";
  icon.setAttribute("aria-hidden", "true");
  icon.textContent = "×";
  const body = document.createElement("div");
  const strong = document.createElement("strong");
  strong.textContent = "The live roster cannot be shown.";
  const p = document.createElement("p");
  p.textContent = text;
  body.append(strong, p);
  el.fatal.append(icon, body);
  showConn("bad", "Not connected");
  if (!session) setText(el.title, "Live attendance unavailable");
}

function open() {
  showConn("idle", people.size ? "Reconnecting…" : "Connecting…");
  const ws = new WebSocket(wsUrl);
  socket = ws;
  ws.onopen = () => showConn("ok", "Connected");
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") return;
    try {
      onMessage(JSON.parse(ev.data));
    } catch (err) {
      console.error("panel: bad message", err);
    }
  };
  ws.onclose = (ev) => {
    if (ws !== socket) return;
    socket = null;
    const fatal = FATAL[/** @type {keyof typeof FATAL} */ (ev.code)];
    if (fatal) {
      showFatal(`${fatal} (${ev.reason ? `${ev.reason}, ` : ""}code ${ev.code})`);
      return;
    }
    if (finalised) {
      showConn("idle", "Closed: session finalised");
      return;
    }
    const delay = backoff.next();
    showConn("warn", `Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s`);
    window.setTimeout(open, delay);
  };
}

// ---- rendering -------------------------------------------------------------------

const dirty = { all: true };
let frameRequested = false;

function schedule() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => {
    frameRequested = false;
    if (dirty.all) {
      dirty.all = false;
      renderSession();
      renderStats();
      renderRoster();
    } else tick();
  });
}

/** @param {HTMLElement} node @param {string} text */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/**
 * @param {string} tone
 * @param {string} text
 * @param {string} [title]
 */
function badge(tone, text, title) {
  const b = document.createElement("span");
  b.className = `badge ${tone}`;
  b.textContent = text;
  if (title) b.title = title;
  return b;
}

function renderSession() {
  if (!session) return;
  $("stats").hidden = false;
  $("roster").hidden = false;
  const title = session.title || `Session ${session.id}`;
  setText(el.title, title);
  document.title = `${title} · Live attendance · Hadir`;
  const meta = [
    session.kind ? label(KIND_LABELS, session.kind) : "",
    session.scheduled_start ? `${formatDateTime(session.scheduled_start)}` : "",
    session.duration_s ? formatMinutes(session.duration_s) : "",
    session.started_at ? `started ${formatTime(session.started_at)}` : "not started",
    session.camera_required ? "camera required" : "",
    `times in ${zoneLabel()}`,
  ].filter(Boolean);
  setText(el.meta, meta.join(" · "));
  el.status.hidden = false;
  const tone = session.status === "live" ? "ok" : session.status === "finalised" ? "info" : session.status?.startsWith("cancel") ? "bad" : "idle";
  el.status.className = `badge ${tone}`;
  setText(el.status, label(STATUS_LABELS, session.status));
  renderOutage();
}

function renderOutage() {
  const o = session?.outage;
  const ratio = o?.fault_ratio ?? 0;
  if (!o || (!o.active && ratio <= 0 && !o.windows?.length)) {
    el.outage.hidden = true;
    return;
  }
  el.outage.hidden = false;
  const over = ratio > FAULT_CANCEL_RATIO;
  el.outage.className = `notice ${over || o.active ? "bad" : "warn"}`;
  setText(el.outageTitle, o.active
    ? `Platform outage in progress: ${percent(ratio, 1)} of the session lost so far`
    : `Platform outages: ${percent(ratio, 1)} of the session lost`);
  setText(el.outageText, over
    ? `More than ${percent(FAULT_CANCEL_RATIO)} of the session has been lost to platform faults: the session will be cancelled for everyone and rescheduled; it will not count toward attendance.`
    : `Learners connected when an outage began are credited for it. Above ${percent(FAULT_CANCEL_RATIO)} the session is cancelled and rescheduled.`);
  const items = (o.windows ?? []).map((w) => {
    const li = document.createElement("li");
    li.textContent = `${formatTime(w.start)} – ${w.end ? formatTime(w.end) : "ongoing"}${w.cause ? `: ${humanise(w.cause)}` : ""}`;
    return li;
  });
  el.outageWindows.replaceChildren(...items);
}

/** @param {string} id @param {string} value @param {string} [sub] */
function stat(id, value, sub) {
  setText($(id), value);
  if (sub !== undefined) setText($(`${id}-sub`), sub);
}

function renderStats() {
  let connected = 0, connectedStaff = 0, learners = 0;
  const count = { present: 0, late: 0, partial: 0, absent: 0 };
  let never = 0;
  for (const { p } of people.values()) {
    const isLearner = p.role === "learner";
    if (p.state === "connected") isLearner ? connected++ : connectedStaff++;
    if (!isLearner) continue;
    learners++;
    if (p.state === "never") never++;
    const o = outcomeOf(p);
    if (o) count[o]++;
  }
  stat("s-connected", String(connected), `learners, of ${learners}${connectedStaff ? ` · ${connectedStaff} staff` : ""}`);
  stat("s-present", String(count.present + count.partial), count.partial ? `${count.partial} partial so far` : "on time");
  stat("s-late", String(count.late), "joined after 10 min");
  stat("s-absent", String(count.absent), never ? `${never} not joined yet` : "");

  const cap = session?.capacity;
  const bar = $("s-capacity-bar");
  const mark = $("s-capacity-cap");
  if (cap && cap.hard_cap) {
    const over = cap.learners - cap.cap;
    stat("s-capacity", `${cap.learners} / ${cap.cap}`,
      cap.learners > cap.hard_cap ? `${cap.learners - cap.hard_cap} over the hard cap of ${cap.hard_cap}`
        : over > 0 ? `${over} over the cap · hard cap ${cap.hard_cap}` : `hard cap ${cap.hard_cap}`);
    bar.style.width = `${Math.min(100, (cap.learners / cap.hard_cap) * 100)}%`;
    bar.className = `meter-fill ${cap.learners > cap.hard_cap ? "bad" : over > 0 ? "warn" : "ok"}`;
    mark.style.left = `${(cap.cap / cap.hard_cap) * 100}%`;
  } else stat("s-capacity", String(learners), "learners");
  /** @type {HTMLElement} */ (bar.parentElement).hidden = !(cap && cap.hard_cap);

  const st = session?.staffing;
  if (st) {
    const short = st.required - st.present;
    stat("s-staff", `${st.present} / ${st.required}`, short > 0 ? `${short} short of the ${st.required} required` : "present / required");
    $("s-staff").parentElement?.classList.toggle("short", short > 0);
  } else {
    stat("s-staff", String(connectedStaff), "connected");
  }
}

/** Participants that pass the filters, sorted. */
function visibleEntries() {
  const q = view.q.trim().toLowerCase();
  /** @type {Entry[]} */
  const out = [];
  for (const e of people.values()) {
    const p = e.p;
    if (view.state && p.state !== view.state) continue;
    if (view.flag && !p.flags?.includes(view.flag)) continue;
    if (q && !displayName(p).toLowerCase().includes(q) && !p.user_id.toLowerCase().includes(q)) continue;
    out.push(e);
  }
  const now = performance.now();
  const byName = (/** @type {Entry} */ a, /** @type {Entry} */ b) => collator.compare(displayName(a.p), displayName(b.p));
  /** @type {(a: Entry, b: Entry) => number} */
  let cmp;
  switch (view.sortKey) {
    case "state": cmp = (a, b) => STATE_ORDER[a.p.state] - STATE_ORDER[b.p.state]; break;
    case "present": cmp = (a, b) => presentNow(a, now) - presentNow(b, now); break;
    case "engagements": cmp = (a, b) => (a.p.engagements ?? 0) - (b.p.engagements ?? 0); break;
    default: cmp = byName;
  }
  out.sort((a, b) => view.sortDir * cmp(a, b) || byName(a, b));
  return out;
}

/** @typedef {HTMLTableRowElement & {_version?: number, _present?: HTMLElement}} Row */
/** @type {Map<string, Row>} */
const rowCache = new Map();
/** @type {Entry[]} */
let shownEntries = [];

const COLUMNS = ["Name", "State", "Joined", "Present", "Camera", "Engagement", "Flags", "Outcome so far"];

/** @param {string} id @returns {Row} */
function rowFor(id) {
  let row = rowCache.get(id);
  if (!row) {
    row = /** @type {Row} */ (document.createElement("tr"));
    COLUMNS.forEach((name, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) cell.setAttribute("scope", "row");
      cell.dataset.label = name;
      if (i === 2) cell.className = "col-joined";
      if (i === 3 || i === 5) cell.classList.add("col-num", "num");
      row?.append(cell);
    });
    row._present = /** @type {HTMLElement} */ (row.cells[3]);
    rowCache.set(id, row);
  }
  return row;
}

/** @param {Row} row @param {Entry} e */
function fillRow(row, e) {
  if (row._version === e.version) return;
  row._version = e.version;
  const p = e.p;
  const [nameCell, stateCell, joinedCell, , camCell, engCell, flagCell, outCell] = /** @type {HTMLElement[]} */ ([...row.cells]);

  const name = document.createElement("span");
  name.className = "who-name";
  name.textContent = displayName(p);
  const who = [name];
  if (p.role !== "learner") who.push(badge("info plain role", label(ROLE_LABELS, p.role)));
  const uid = document.createElement("span");
  uid.className = "who-id";
  uid.textContent = p.user_id;
  nameCell.replaceChildren(...who, uid);

  stateCell.replaceChildren(badge(STATE_BADGE[p.state] ?? "idle", label(STATE_LABELS, p.state)));
  setText(joinedCell, p.joined_at ? formatTime(p.joined_at) : "—");

  camCell.replaceChildren(Object.assign(document.createElement("span"), {
    className: `cam ${p.camera ? "on" : "off"}`,
    textContent: p.state === "never" ? "—" : p.camera ? "On" : "Off",
  }));
  setText(engCell, String(p.engagements ?? 0));

  const flags = (p.flags ?? []).map((f) => badge(`${FLAG_BADGE[/** @type {keyof typeof FLAG_BADGE} */ (f)] ?? "idle"} plain`, label(FLAG_LABELS, f)));
  flagCell.replaceChildren(...flags);

  const prov = p.provisional;
  if (prov && p.role === "learner") {
    const text = `${label(STATUS_LABELS, prov.status)}${prov.credit != null && prov.credit > 0 && prov.credit < 1 ? ` · ${percent(prov.credit)}` : ""}`;
    const parts = [badge(OUTCOME_BADGE[/** @type {keyof typeof OUTCOME_BADGE} */ (prov.status)] ?? "idle", text)];
    if (prov.reasons?.length) {
      const r = document.createElement("span");
      r.className = "reasons";
      r.textContent = prov.reasons.map((c) => label(REASON_SHORT, c)).join(", ");
      parts.push(r);
    }
    outCell.replaceChildren(...parts);
  } else outCell.replaceChildren();
}

function renderRoster() {
  const entries = visibleEntries();
  const pages = Math.max(1, Math.ceil(entries.length / view.pageSize));
  view.page = Math.min(view.page, pages - 1);
  const start = view.page * view.pageSize;
  shownEntries = entries.slice(start, start + view.pageSize);
  const now = performance.now();
  const rows = shownEntries.map((e) => {
    const row = rowFor(e.p.user_id);
    fillRow(row, e);
    if (row._present) setText(row._present, formatClock(presentNow(e, now)));
    return row;
  });
  // Reorder only when the order or membership changed.
  const current = el.rows.children;
  let same = current.length === rows.length;
  for (let i = 0; same && i < rows.length; i++) same = current[i] === rows[i];
  if (!same) el.rows.replaceChildren(...rows);
  for (const id of rowCache.keys()) if (!people.has(id)) rowCache.delete(id);

  el.empty.hidden = entries.length > 0 || people.size === 0;
  const total = people.size;
  setText(el.count, entries.length === total ? `${plural(total, "participant")}` : `${entries.length} of ${plural(total, "participant")} match`);
  setText(el.pageInfo, entries.length ? `${start + 1}–${start + shownEntries.length} of ${entries.length}` : "");
  el.prev.disabled = view.page === 0;
  el.next.disabled = view.page >= pages - 1;
}

/** Between deltas: advance the present time of connected rows on this page. */
function tick() {
  const now = performance.now();
  for (const e of shownEntries) {
    if (e.p.state !== "connected") continue;
    const row = rowCache.get(e.p.user_id);
    if (row?._present) setText(row._present, formatClock(presentNow(e, now)));
  }
}

// ---- controls ----------------------------------------------------------------------

function syncSortUi() {
  el.sortKey.value = view.sortKey;
  const asc = view.sortDir === 1;
  el.sortDir.textContent = asc ? "↑ Asc" : "↓ Desc";
  el.sortDir.setAttribute("aria-label", `Sort direction: ${asc ? "ascending" : "descending"}`);
  for (const th of document.querySelectorAll("th[data-sort]")) {
    const active = /** @type {HTMLElement} */ (th).dataset.sort === view.sortKey;
    if (active) th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
    const ind = th.querySelector(".sort-ind");
    if (ind) ind.textContent = active ? (asc ? "▲" : "▼") : "";
  }
}

/** @param {string} key */
function sortBy(key) {
  const k = /** @type {typeof view.sortKey} */ (key);
  if (view.sortKey === k) view.sortDir = -view.sortDir;
  else {
    view.sortKey = k;
    view.sortDir = k === "present" || k === "engagements" ? -1 : 1; // biggest first
  }
  view.page = 0;
  syncSortUi();
  refresh();
}

function refresh() {
  dirty.all = true;
  schedule();
}

/** @type {number | undefined} */
let filterTimer;
function filtersChanged() {
  view.q = el.q.value;
  view.state = el.fState.value;
  view.flag = el.fFlag.value;
  view.page = 0;
  refresh();
  // Tell screen-reader users the result once typing pauses.
  clearTimeout(filterTimer);
  filterTimer = window.setTimeout(() => { el.announcer.textContent = el.count.textContent ?? ""; }, 800);
}

el.q.addEventListener("input", filtersChanged);
el.fState.addEventListener("change", filtersChanged);
el.fFlag.addEventListener("change", filtersChanged);
$("controls").addEventListener("submit", (ev) => ev.preventDefault());
el.sortKey.addEventListener("change", () => {
  view.sortKey = /** @type {typeof view.sortKey} */ (el.sortKey.value);
  view.page = 0;
  syncSortUi();
  refresh();
});
el.sortDir.addEventListener("click", () => sortBy(view.sortKey));
for (const th of document.querySelectorAll("th[data-sort]")) {
  th.querySelector("button")?.addEventListener("click", () => sortBy(/** @type {HTMLElement} */ (th).dataset.sort ?? "name"));
}
el.pageSize.addEventListener("change", () => {
  view.pageSize = Number(el.pageSize.value) || 50;
  view.page = 0;
  refresh();
});
el.prev.addEventListener("click", () => { view.page = Math.max(0, view.page - 1); refresh(); });
el.next.addEventListener("click", () => { view.page++; refresh(); });

// ---- start -------------------------------------------------------------------------

syncSortUi();
window.setInterval(schedule, 1000);
if (!token) showFatal("This page needs the access token from the LMS link (?token=…).");
else if (!sessionId || sessionId === "panel") showFatal("No session id in the address.");
else open();
