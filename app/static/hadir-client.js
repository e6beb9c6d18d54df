// @ts-check
/**
 * Hadir live attendance client for the browser. No dependencies.
 *
 * ```js
 * import { connect } from "/static/hadir-client.js";
 * const client = connect({ url: "/v1/live/S1", token });
 * client.addEventListener("fatal", (e) => alert(e.detail.reason));
 * client.setCamera(true);
 * client.engagement("hand_raise");
 * ```
 *
 * Protocol: CONTRACT.md, "Live ingest". Every event carries a unique id and
 * stays queued until the server acks it; after a drop the client reconnects
 * with backoff and sends the whole queue again as JSON array frames (the
 * server counts a re-sent id once).
 * @module hadir-client
 */

import {
  Backoff, EventQueue, ENGAGEMENT_KINDS, FATAL_CLOSE_CODES, classifyClose, newId,
  DEFAULT_CHUNK_BYTES,
} from "./hadir-queue.js";

export { ENGAGEMENT_KINDS, FATAL_CLOSE_CODES, classifyClose } from "./hadir-queue.js";

/**
 * @typedef {import("./hadir-queue.js").ClientEvent} ClientEvent
 * @typedef {import("./hadir-queue.js").EngagementKind} EngagementKind
 * @typedef {"connecting"|"open"|"reconnecting"|"closed"} ClientState
 * @typedef {{type: "welcome", session_id: string, user_id: string, heartbeat_interval_s: number, server_time: string}} Welcome
 *
 * @typedef {object} SocketLike  the subset of the browser WebSocket used here
 * @property {number} readyState
 * @property {(data: string) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {((ev: any) => void) | null} onopen
 * @property {((ev: {data: any}) => void) | null} onmessage
 * @property {((ev: {code: number, reason: string}) => void) | null} onclose
 * @property {((ev: any) => void) | null} onerror
 *
 * @typedef {object} ConnectOptions
 * @property {string} url  live endpoint, e.g. "/v1/live/S1", "https://host/v1/live/S1" or "wss://…"
 * @property {string} token  participant token (sent as `?token=`)
 * @property {boolean} [camera=false]  initial camera state
 * @property {boolean} [mic=false]  initial microphone state
 * @property {number} [heartbeatIntervalS=15]  used until the welcome says otherwise
 * @property {number} [maxQueue=10000]  queue bound (heartbeats dropped first)
 * @property {number} [chunkBytes=49152]  largest flush frame
 * @property {number} [backoffBaseMs=500]
 * @property {number} [backoffCapMs=30000]
 * @property {boolean} [timestamps=true]  add the client clock as `ts`
 * @property {boolean} [leaveOnPagehide=true]  send `leave` and close on pagehide
 * @property {new (url: string) => SocketLike} [WebSocketImpl]  for tests
 * @property {() => number} [random]  for tests
 * @property {() => number} [now]  epoch milliseconds, for tests
 * @property {(fn: () => void, ms: number) => any} [setTimeout]  for tests
 * @property {(handle: any) => void} [clearTimeout]  for tests
 * @property {Document} [document]  visibility source; null disables
 * @property {Window | EventTarget} [window]  pagehide source; null disables
 */

const OPEN = 1;

/**
 * Resolve `url` + `token` to the websocket URL.
 * @param {string} url
 * @param {string} token
 * @param {{href: string} | undefined} base
 */
export function socketUrl(url, token, base) {
  const u = new URL(url, base ? base.href : undefined);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  u.searchParams.set("token", token);
  return u.toString();
}

/**
 * A live connection. Dispatches `state`, `open`, `welcome`, `ack`, `error`
 * and `fatal` as CustomEvents (payload in `detail`).
 */
export class HadirClient extends EventTarget {
  /** @param {ConnectOptions} options */
  constructor(options) {
    super();
    if (!options || !options.url || !options.token) throw new TypeError("connect: url and token are required");
    const o = options;
    const g = /** @type {any} */ (globalThis);
    this.url = socketUrl(o.url, o.token, g.location);
    this.camera = !!o.camera;
    this.mic = !!o.mic;
    this.heartbeatIntervalS = o.heartbeatIntervalS ?? 15;
    this.queue = new EventQueue({ max: o.maxQueue });
    this.chunkBytes = o.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.backoff = new Backoff({ baseMs: o.backoffBaseMs, capMs: o.backoffCapMs, random: o.random });
    this.timestamps = o.timestamps ?? true;
    /** @type {new (url: string) => SocketLike} */
    this.WebSocketImpl = o.WebSocketImpl ?? g.WebSocket;
    this.now = o.now ?? Date.now;
    this.setTimeout = o.setTimeout ?? ((fn, ms) => g.setTimeout(fn, ms));
    this.clearTimeout = o.clearTimeout ?? ((h) => g.clearTimeout(h));
    /** @type {Document | undefined} */
    this.document = o.document === undefined ? g.document : o.document ?? undefined;
    /** @type {ClientState} */
    this.state = "connecting";
    /** @type {Welcome | null} */
    this.welcome = null;
    /** @type {SocketLike | null} */
    this.ws = null;
    /** true between a welcome and the close of that socket */
    this.live = false;
    /** @type {any} */ this.heartbeatTimer = null;
    /** @type {any} */ this.retryTimer = null;
    /** @type {{code: number, reason: string} | null} */
    this.fatal = null;

    this.onVisibility = () => this.#sendHeartbeat();
    this.onPagehide = () => this.#leaveNow();
    this.onPageshow = (/** @type {any} */ ev) => {
      if (ev && ev.persisted && this.state === "closed" && !this.fatal) this.#restart();
    };
    this.document?.addEventListener?.("visibilitychange", this.onVisibility);
    const win = o.window === undefined ? g.window : o.window;
    this.window = (o.leaveOnPagehide ?? true) ? win ?? undefined : undefined;
    this.window?.addEventListener?.("pagehide", this.onPagehide);
    this.window?.addEventListener?.("pageshow", this.onPageshow);

    this.#open();
  }

  /** Events not yet acknowledged. */
  get pending() {
    return this.queue.size;
  }

  /** @param {boolean} on */
  setCamera(on) {
    this.camera = !!on;
    this.#emit({ type: "camera", on: this.camera });
  }

  /** Microphone state travels in heartbeats; a change sends one now. @param {boolean} on */
  setMic(on) {
    this.mic = !!on;
    this.#sendHeartbeat();
  }

  /** @param {EngagementKind} kind */
  engagement(kind) {
    if (!ENGAGEMENT_KINDS.includes(kind)) throw new RangeError(`unknown engagement kind: ${kind}`);
    this.#emit({ type: "engagement", kind });
  }

  /**
   * Leave the session: send `leave`, wait up to `timeoutMs` for its ack,
   * then close with 1000. Resolves to whether the server acknowledged it.
   * @param {{timeoutMs?: number}} [opts]
   * @returns {Promise<boolean>}
   */
  leave(opts = {}) {
    if (this.state === "closed") return Promise.resolve(false);
    const event = this.#emit({ type: "leave" });
    if (!this.live) {
      this.close();
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      const done = (/** @type {boolean} */ acked) => {
        this.removeEventListener("ack", onAck);
        this.removeEventListener("state", onState);
        this.clearTimeout(timer);
        this.close();
        resolve(acked);
      };
      const onAck = () => { if (!this.queue.has(event.id)) done(true); };
      const onState = () => { if (this.state !== "open") done(false); };
      const timer = this.setTimeout(() => done(false), opts.timeoutMs ?? 2000);
      this.addEventListener("ack", onAck);
      this.addEventListener("state", onState);
    });
  }

  /** Close with 1000 (a leave, for the server) and stop reconnecting. */
  close() {
    this.#stop();
    this.document?.removeEventListener?.("visibilitychange", this.onVisibility);
    this.window?.removeEventListener?.("pagehide", this.onPagehide);
    this.window?.removeEventListener?.("pageshow", this.onPageshow);
  }

  // ---- internals -------------------------------------------------------

  /**
   * @param {string} type
   * @param {unknown} [detail]
   */
  #dispatch(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {ClientState} state */
  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.#dispatch("state", { state });
  }

  /**
   * Stamp, queue and (when live) send one event.
   * @template {Record<string, unknown>} T
   * @param {T} body
   * @returns {ClientEvent}
   */
  #emit(body) {
    /** @type {any} */
    const event = { id: newId(), ...body };
    if (this.timestamps) event.ts = new Date(this.now()).toISOString();
    if (this.state === "closed") return event;
    this.queue.push(event);
    if (this.live && this.ws) this.ws.send(JSON.stringify(event));
    return event;
  }

  #visible() {
    return this.document ? this.document.visibilityState !== "hidden" : true;
  }

  #sendHeartbeat() {
    if (!this.live) return;
    this.#emit({ type: "heartbeat", camera: this.camera, mic: this.mic, visible: this.#visible() });
    this.#scheduleHeartbeat();
  }

  #scheduleHeartbeat() {
    this.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = this.setTimeout(() => this.#sendHeartbeat(), this.heartbeatIntervalS * 1000);
  }

  #open() {
    this.retryTimer = null;
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (err) {
      this.#dispatch("error", { code: "connect_failed", detail: String(err) });
      this.#retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.#dispatch("open");
    ws.onmessage = (ev) => this.#onMessage(ws, ev.data);
    ws.onerror = () => {}; // a close always follows; handled there
    ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason);
  }

  /**
   * @param {SocketLike} ws
   * @param {unknown} data
   */
  #onMessage(ws, data) {
    if (ws !== this.ws || typeof data !== "string") return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "welcome") {
      this.welcome = msg;
      if (msg.heartbeat_interval_s > 0) this.heartbeatIntervalS = msg.heartbeat_interval_s;
      this.backoff.reset();
      this.live = true;
      this.#setState("open");
      this.#dispatch("welcome", msg);
      // Everything still unacknowledged, as array frames.
      for (const frame of this.queue.frames(this.chunkBytes)) ws.send(frame);
      this.#sendHeartbeat();
    } else if (msg.type === "ack" && Array.isArray(msg.ids)) {
      this.queue.ack(msg.ids);
      this.#dispatch("ack", { ids: msg.ids });
    } else if (msg.type === "error") {
      const event = msg.id != null ? this.queue.get(msg.id) : undefined;
      if (msg.id != null) this.queue.ack([msg.id]);
      this.#dispatch("error", { id: msg.id, code: msg.code, detail: msg.detail, event });
    }
  }

  /**
   * @param {SocketLike} ws
   * @param {number} code
   * @param {string} reason
   */
  #onClose(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.live = false;
    this.clearTimeout(this.heartbeatTimer);
    if (this.state === "closed") return;
    if (classifyClose(code) === "fatal") {
      this.fatal = {
        code,
        reason: reason || FATAL_CLOSE_CODES[/** @type {keyof typeof FATAL_CLOSE_CODES} */ (code)],
      };
      this.#stop();
      this.#dispatch("fatal", this.fatal);
      return;
    }
    this.#retry();
  }

  #retry() {
    this.#setState("reconnecting");
    const delay = this.backoff.next();
    this.retryTimer = this.setTimeout(() => this.#open(), delay);
  }

  /** pagehide: no time to wait for an ack. */
  #leaveNow() {
    if (this.state === "closed") return;
    this.#emit({ type: "leave" });
    this.#stop();
  }

  #stop() {
    this.clearTimeout(this.heartbeatTimer);
    this.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.live = false;
    const ws = this.ws;
    this.ws = null;
    this.#setState("closed");
    if (ws && ws.readyState <= OPEN) {
      try {
        ws.close(1000, "leave");
      } catch {
        /* already closing */
      }
    }
  }

  /** Back from the back/forward cache: join again. */
  #restart() {
    // The leave sent on pagehide must not be replayed into the new presence.
    this.queue.ack(this.queue.list().filter((e) => e.type === "leave").map((e) => e.id));
    this.backoff.reset();
    this.#setState("connecting");
    this.#open();
  }
}

/**
 * Open a live connection (see {@link HadirClient}).
 * @param {ConnectOptions} options
 * @returns {HadirClient}
 */
export function connect(options) {
  return new HadirClient(options);
}
