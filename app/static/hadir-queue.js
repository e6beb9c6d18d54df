// @ts-check
/**
 * Pure building blocks of the Hadir live client: the offline event queue,
 * reconnect backoff and close-code classification. Nothing here touches the
 * network, the DOM or the clock, so it runs unchanged under Node's test runner.
 * @module hadir-queue
 */

/**
 * @typedef {"question"|"chat"|"poll_vote"|"response"|"reaction"|"hand_raise"} EngagementKind
 * @typedef {{id: string, type: "heartbeat", camera: boolean, mic: boolean, visible: boolean, ts?: string}} HeartbeatEvent
 * @typedef {{id: string, type: "camera", on: boolean, ts?: string}} CameraEvent
 * @typedef {{id: string, type: "engagement", kind: EngagementKind, ts?: string}} EngagementEvent
 * @typedef {{id: string, type: "leave", ts?: string}} LeaveEvent
 * @typedef {HeartbeatEvent|CameraEvent|EngagementEvent|LeaveEvent} ClientEvent
 */

/** Engagement kinds the live ingest accepts (CONTRACT, "Live ingest"). */
export const ENGAGEMENT_KINDS = Object.freeze([
  "question", "chat", "poll_vote", "response", "reaction", "hand_raise",
]);

/** Close codes after which reconnecting cannot help. */
export const FATAL_CLOSE_CODES = Object.freeze({
  4401: "bad or missing token",
  4403: "token not valid for this session or role",
  4404: "unknown session",
  4409: "session already ended",
  4413: "class is full",
});

/**
 * What to do after the socket closed.
 * `fatal`: stop and tell the user; `retry`: reconnect with backoff.
 * 4408 (heartbeat timeout), 4429 (rate limit), 1006, 1011, 1012 and every
 * code not listed as fatal are retried. Whether a close was asked for by the
 * client itself (leave, close) is the caller's knowledge, not the code's.
 * @param {number} code
 * @returns {"fatal"|"retry"}
 */
export function classifyClose(code) {
  return Object.prototype.hasOwnProperty.call(FATAL_CLOSE_CODES, code) ? "fatal" : "retry";
}

/**
 * Delay before reconnect attempt `attempt` (0-based), "full jitter":
 * uniform in [0, min(cap, base * 2^attempt)).
 * @param {number} attempt
 * @param {{baseMs?: number, capMs?: number, random?: () => number}} [opts]
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, opts = {}) {
  const base = opts.baseMs ?? 500;
  const cap = opts.capMs ?? 30000;
  const random = opts.random ?? Math.random;
  // 2 ** 40 already dwarfs any cap; clamping keeps the product finite.
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 40));
  return Math.floor(random() * ceiling);
}

/** Stateful wrapper over {@link backoffDelay}: `next()` grows, `reset()` after a welcome. */
export class Backoff {
  /** @param {{baseMs?: number, capMs?: number, random?: () => number}} [opts] */
  constructor(opts = {}) {
    this.opts = opts;
    this.attempt = 0;
  }
  /** @returns {number} milliseconds to wait before the next attempt */
  next() {
    return backoffDelay(this.attempt++, this.opts);
  }
  reset() {
    this.attempt = 0;
  }
}

/**
 * A unique event id: crypto.randomUUID where available (secure contexts),
 * otherwise an RFC 4122 v4 id from getRandomValues, otherwise Math.random.
 * @param {{randomUUID?: () => string, getRandomValues?: <T extends Uint8Array>(a: T) => T} | undefined} [cryptoImpl]
 * @returns {string}
 */
export function newId(cryptoImpl = globalThis.crypto) {
  if (cryptoImpl && typeof cryptoImpl.randomUUID === "function") return cryptoImpl.randomUUID();
  const bytes = new Uint8Array(16);
  if (cryptoImpl && typeof cryptoImpl.getRandomValues === "function") cryptoImpl.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Server frame limit is 64 KiB; stay well below it. */
export const DEFAULT_CHUNK_BYTES = 48 * 1024;

/**
 * Events waiting for the server's ack, in the order they were created.
 *
 * Bounded at `max` events: when full, the oldest heartbeat goes first (a
 * later heartbeat carries the same information). Camera, engagement and leave
 * events are never dropped; if the queue holds nothing else it grows past
 * `max` rather than lose them (they are user actions, so few).
 */
export class EventQueue {
  /** @param {{max?: number}} [opts] */
  constructor(opts = {}) {
    this.max = opts.max ?? 10000;
    /** @type {Map<string, ClientEvent>} insertion-ordered */
    this.events = new Map();
    /** heartbeats dropped to keep the bound, for diagnostics */
    this.dropped = 0;
  }

  get size() {
    return this.events.size;
  }

  /**
   * Add an event. An id already queued is ignored.
   * @param {ClientEvent} event
   * @returns {boolean} whether it was added
   */
  push(event) {
    if (this.events.has(event.id)) return false;
    this.events.set(event.id, event);
    if (this.events.size > this.max) this.#dropOldestHeartbeat();
    return this.events.has(event.id);
  }

  #dropOldestHeartbeat() {
    for (const [id, ev] of this.events) {
      if (ev.type === "heartbeat") {
        this.events.delete(id);
        this.dropped++;
        return;
      }
    }
  }

  /**
   * Remove acknowledged (or rejected) events.
   * @param {Iterable<string>} ids
   * @returns {number} how many were queued
   */
  ack(ids) {
    let n = 0;
    for (const id of ids) if (this.events.delete(id)) n++;
    return n;
  }

  /** @param {string} id */
  has(id) {
    return this.events.has(id);
  }

  /** @param {string} id */
  get(id) {
    return this.events.get(id);
  }

  /** @returns {ClientEvent[]} queued events, oldest first */
  list() {
    return Array.from(this.events.values());
  }

  clear() {
    this.events.clear();
  }

  /**
   * The whole queue as JSON array frames (see {@link chunkFrames}).
   * @param {number} [maxBytes]
   * @returns {string[]}
   */
  frames(maxBytes = DEFAULT_CHUNK_BYTES) {
    return chunkFrames(this.list(), maxBytes);
  }
}

const encoder = new TextEncoder();

/**
 * Serialise events as JSON array text frames of at most `maxBytes` UTF-8
 * bytes each, keeping order. One event larger than the limit travels alone.
 * @param {readonly object[]} events
 * @param {number} [maxBytes]
 * @returns {string[]}
 */
export function chunkFrames(events, maxBytes = DEFAULT_CHUNK_BYTES) {
  /** @type {string[]} */
  const frames = [];
  /** @type {string[]} */
  let parts = [];
  let bytes = 2; // "[" + "]"
  for (const ev of events) {
    const text = JSON.stringify(ev);
    const size = encoder.encode(text).length + (parts.length ? 1 : 0); // comma
    if (parts.length && bytes + size > maxBytes) {
      frames.push(`[${parts.join(",")}]`);
      parts = [];
      bytes = 2;
      parts.push(text);
      bytes += size - 1;
    } else {
      parts.push(text);
      bytes += size;
    }
  }
  if (parts.length) frames.push(`[${parts.join(",")}]`);
  return frames;
}
