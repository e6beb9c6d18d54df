import { test, describe, beforeEach } from "node:test";
import assert from "node:assert/strict";

import { connect, socketUrl } from "../../../app/static/hadir-client.js";

/** A controllable stand-in for the browser WebSocket. */
class FakeWebSocket {
  /** @type {FakeWebSocket[]} */
  static instances = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    /** @type {string[]} */
    this.sent = [];
    this.closedWith = null;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeWebSocket.instances.push(this);
  }
  static get last() {
    return FakeWebSocket.instances.at(-1);
  }
  send(data) {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(data);
  }
  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }
  // server side
  accept(welcome = {}) {
    this.readyState = 1;
    this.onopen?.({});
    this.message({ type: "welcome", session_id: "S1", user_id: "u1", heartbeat_interval_s: 10, server_time: "2026-01-01T00:00:00Z", ...welcome });
  }
  message(obj) {
    this.onmessage?.({ data: JSON.stringify(obj) });
  }
  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** every event sent, frames and arrays flattened */
  events() {
    return this.sent.flatMap((f) => [JSON.parse(f)].flat());
  }
}

/** Manual clock for setTimeout. */
class FakeTimers {
  constructor() {
    this.now = 0;
    this.seq = 0;
    /** @type {Map<number, {at: number, fn: () => void}>} */
    this.pending = new Map();
  }
  setTimeout = (fn, ms) => {
    const id = ++this.seq;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  };
  clearTimeout = (id) => {
    this.pending.delete(id);
  };
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.pending) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
      if (!next) break;
      this.pending.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
  }
  delays() {
    return [...this.pending.values()].map((t) => t.at - this.now);
  }
}

class FakeDocument extends EventTarget {
  visibilityState = "visible";
  hide() {
    this.visibilityState = "hidden";
    this.dispatchEvent(new Event("visibilitychange"));
  }
}

let timers, doc, win;

function open(extra = {}) {
  const client = connect({
    url: "https://hadir.test/v1/live/S1",
    token: "tok en",
    WebSocketImpl: FakeWebSocket,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    now: () => Date.UTC(2026, 0, 1) + timers.now,
    random: () => 0.5,
    document: doc,
    window: win,
    ...extra,
  });
  /** @type {{type: string, detail: any}[]} */
  const seen = [];
  for (const t of ["open", "welcome", "ack", "error", "state", "fatal"]) {
    client.addEventListener(t, (e) => seen.push({ type: t, detail: e.detail }));
  }
  return { client, seen };
}

beforeEach(() => {
  FakeWebSocket.instances = [];
  timers = new FakeTimers();
  doc = new FakeDocument();
  win = new EventTarget();
});

describe("connect", () => {
  test("builds the websocket URL with the token", () => {
    open();
    assert.equal(FakeWebSocket.last.url, "wss://hadir.test/v1/live/S1?token=tok+en");
    assert.equal(socketUrl("/v1/live/S1", "t", { href: "http://localhost:8000/me" }), "ws://localhost:8000/v1/live/S1?token=t");
  });

  test("requires url and token", () => {
    assert.throws(() => connect({ url: "wss://x/v1/live/S1", WebSocketImpl: FakeWebSocket }), TypeError);
  });

  test("welcome opens the session and starts heartbeats at the server's interval", () => {
    const { client, seen } = open({ camera: true });
    assert.equal(client.state, "connecting");
    FakeWebSocket.last.accept({ heartbeat_interval_s: 10 });
    assert.equal(client.state, "open");
    assert.deepEqual(seen.map((s) => s.type), ["open", "state", "welcome"]);
    let events = FakeWebSocket.last.events();
    assert.equal(events.length, 1);
    assert.equal(events[0].type, "heartbeat");
    assert.deepEqual([events[0].camera, events[0].mic, events[0].visible], [true, false, true]);
    assert.equal(events[0].ts, "2026-01-01T00:00:00.000Z");
    timers.advance(10_000);
    timers.advance(10_000);
    events = FakeWebSocket.last.events();
    assert.equal(events.filter((e) => e.type === "heartbeat").length, 3);
    assert.equal(new Set(events.map((e) => e.id)).size, 3);
  });

  test("sends camera, engagement and a heartbeat on visibility change", () => {
    const { client } = open();
    const ws = FakeWebSocket.last;
    ws.accept();
    client.setCamera(true);
    client.engagement("hand_raise");
    doc.hide();
    client.setMic(true);
    const events = ws.events().slice(1);
    assert.deepEqual(events.map((e) => e.type), ["camera", "engagement", "heartbeat", "heartbeat"]);
    assert.equal(events[0].on, true);
    assert.equal(events[1].kind, "hand_raise");
    assert.equal(events[2].visible, false);
    assert.equal(events[3].mic, true);
    assert.throws(() => client.engagement("wave"), RangeError);
  });

  test("acks remove events from the queue; errors remove and report", () => {
    const { client, seen } = open();
    const ws = FakeWebSocket.last;
    ws.accept();
    client.engagement("chat");
    client.engagement("poll_vote");
    const [h, a, b] = ws.events();
    assert.equal(client.pending, 3);
    ws.message({ type: "ack", ids: [h.id, a.id] });
    assert.equal(client.pending, 1);
    ws.message({ type: "error", id: b.id, code: "bad_event", detail: "nope" });
    assert.equal(client.pending, 0);
    const err = seen.find((s) => s.type === "error");
    assert.equal(err.detail.code, "bad_event");
    assert.equal(err.detail.event.kind, "poll_vote");
    assert.deepEqual(seen.find((s) => s.type === "ack").detail.ids, [h.id, a.id]);
  });
});

describe("reconnect", () => {
  test("queues while disconnected and flushes unacked events as one array", () => {
    const { client, seen } = open();
    const first = FakeWebSocket.last;
    first.accept();
    client.engagement("question");
    const sentBefore = first.events();
    first.drop(1006);
    assert.equal(client.state, "reconnecting");
    client.setCamera(false); // while offline: queued, not sent
    client.engagement("reaction");
    assert.equal(FakeWebSocket.instances.length, 1);
    // full jitter with random() = 0.5 on the first attempt: 250 ms
    assert.deepEqual(timers.delays(), [250]);
    timers.advance(250);
    const second = FakeWebSocket.last;
    assert.notEqual(second, first);
    second.accept();
    assert.ok(second.sent[0].startsWith("["), "first frame is the flush array");
    const flushed = JSON.parse(second.sent[0]);
    assert.deepEqual(flushed.map((e) => e.type), ["heartbeat", "engagement", "camera", "engagement"]);
    assert.deepEqual(flushed.slice(0, 2).map((e) => e.id), sentBefore.map((e) => e.id));
    assert.equal(JSON.parse(second.sent[1]).type, "heartbeat");
    assert.deepEqual(seen.filter((s) => s.type === "state").map((s) => s.detail.state), ["open", "reconnecting", "open"]);
  });

  test("chunks a large flush under the frame limit", () => {
    const { client } = open({ chunkBytes: 1024 });
    FakeWebSocket.last.drop(1006);
    for (let i = 0; i < 100; i++) client.engagement("reaction");
    timers.advance(1000);
    const ws = FakeWebSocket.last;
    ws.accept();
    const arrays = ws.sent.filter((f) => f.startsWith("["));
    assert.ok(arrays.length > 1);
    for (const f of arrays) assert.ok(f.length <= 1024);
    assert.equal(arrays.flatMap((f) => JSON.parse(f)).length, 100);
  });

  test("backoff grows while attempts fail and resets after a welcome", () => {
    open();
    const delays = [];
    for (let i = 0; i < 8; i++) {
      FakeWebSocket.last.drop(1006);
      delays.push(timers.delays()[0]);
      timers.advance(delays.at(-1));
    }
    assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 15000, 15000]);
    FakeWebSocket.last.accept();
    FakeWebSocket.last.drop(4408);
    assert.deepEqual(timers.delays(), [250]);
  });

  test("retries heartbeat timeouts and rate limits", () => {
    const { client } = open();
    for (const code of [4408, 4429, 1011]) {
      FakeWebSocket.last.accept();
      FakeWebSocket.last.drop(code);
      assert.equal(client.state, "reconnecting", String(code));
      timers.advance(1000);
    }
    assert.equal(FakeWebSocket.instances.length, 4);
  });

  for (const code of [4401, 4403, 4404, 4409, 4413]) {
    test(`stops on close code ${code} and reports it as fatal`, () => {
      const { client, seen } = open();
      FakeWebSocket.last.accept();
      FakeWebSocket.last.drop(code, code === 4409 ? "session S1 ended" : "");
      assert.equal(client.state, "closed");
      const fatal = seen.find((s) => s.type === "fatal");
      assert.equal(fatal.detail.code, code);
      assert.ok(fatal.detail.reason.length > 0);
      if (code === 4409) assert.equal(fatal.detail.reason, "session S1 ended");
      timers.advance(120_000);
      assert.equal(FakeWebSocket.instances.length, 1);
    });
  }

  test("ignores messages from a socket it has replaced", () => {
    const { client } = open();
    const old = FakeWebSocket.last;
    old.accept();
    old.drop(1006);
    timers.advance(250);
    old.message({ type: "welcome", heartbeat_interval_s: 1 });
    assert.equal(client.state, "reconnecting");
  });
});

describe("leaving", () => {
  test("leave() sends leave, waits for its ack, then closes with 1000", async () => {
    const { client } = open();
    const ws = FakeWebSocket.last;
    ws.accept();
    const done = client.leave();
    const leave = ws.events().at(-1);
    assert.equal(leave.type, "leave");
    assert.equal(ws.closedWith, null);
    ws.message({ type: "ack", ids: [leave.id] });
    assert.equal(await done, true);
    assert.deepEqual(ws.closedWith, { code: 1000, reason: "leave" });
    assert.equal(client.state, "closed");
    timers.advance(60_000);
    assert.equal(FakeWebSocket.instances.length, 1);
  });

  test("leave() gives up waiting after the timeout", async () => {
    const { client } = open();
    const ws = FakeWebSocket.last;
    ws.accept();
    const done = client.leave({ timeoutMs: 500 });
    timers.advance(500);
    assert.equal(await done, false);
    assert.equal(ws.closedWith.code, 1000);
    assert.equal(client.state, "closed");
  });

  test("pagehide sends leave and closes at once", () => {
    const { client } = open();
    const ws = FakeWebSocket.last;
    ws.accept();
    win.dispatchEvent(new Event("pagehide"));
    assert.equal(ws.events().at(-1).type, "leave");
    assert.equal(ws.closedWith.code, 1000);
    assert.equal(client.state, "closed");
    ws.drop(1000);
    assert.equal(FakeWebSocket.instances.length, 1);
  });

  test("back from the bfcache it joins again without replaying the leave", () => {
    const { client } = open();
    FakeWebSocket.last.accept();
    win.dispatchEvent(new Event("pagehide"));
    const show = new Event("pageshow");
    Object.defineProperty(show, "persisted", { value: true });
    win.dispatchEvent(show);
    assert.equal(FakeWebSocket.instances.length, 2);
    FakeWebSocket.last.accept();
    assert.equal(client.state, "open");
    assert.ok(!FakeWebSocket.last.events().some((e) => e.type === "leave"));
  });

  test("close() stops everything", () => {
    const { client } = open();
    const ws = FakeWebSocket.last;
    ws.accept();
    client.close();
    assert.equal(ws.closedWith.code, 1000);
    client.engagement("chat");
    timers.advance(60_000);
    assert.equal(ws.sent.length, 1);
    assert.equal(FakeWebSocket.instances.length, 1);
  });
});
