import { test, describe } from "node:test";
import assert from "node:assert/strict";

import {
  Backoff, EventQueue, backoffDelay, chunkFrames, classifyClose, newId,
} from "../../../app/static/hadir-queue.js";

const hb = (id) => ({ id, type: "heartbeat", camera: false, mic: false, visible: true });
const eng = (id) => ({ id, type: "engagement", kind: "chat" });

describe("EventQueue", () => {
  test("keeps events in order until acked", () => {
    const q = new EventQueue();
    q.push(hb("a"));
    q.push(eng("b"));
    q.push(hb("c"));
    assert.deepEqual(q.list().map((e) => e.id), ["a", "b", "c"]);
    assert.equal(q.ack(["b", "zz"]), 1);
    assert.deepEqual(q.list().map((e) => e.id), ["a", "c"]);
    q.ack(["a", "c"]);
    assert.equal(q.size, 0);
  });

  test("ignores an id already queued", () => {
    const q = new EventQueue();
    assert.equal(q.push(eng("x")), true);
    assert.equal(q.push({ ...eng("x"), kind: "reaction" }), false);
    assert.equal(q.size, 1);
    assert.equal(q.get("x").kind, "chat");
  });

  test("flushes as one JSON array frame", () => {
    const q = new EventQueue();
    q.push(hb("a"));
    q.push({ id: "b", type: "camera", on: true });
    q.push({ id: "c", type: "leave" });
    const frames = q.frames();
    assert.equal(frames.length, 1);
    assert.deepEqual(JSON.parse(frames[0]), [hb("a"), { id: "b", type: "camera", on: true }, { id: "c", type: "leave" }]);
  });

  test("drops the oldest heartbeat first when full", () => {
    const q = new EventQueue({ max: 3 });
    q.push(eng("e1"));
    q.push(hb("h1"));
    q.push(hb("h2"));
    q.push(eng("e2"));
    assert.deepEqual(q.list().map((e) => e.id), ["e1", "h2", "e2"]);
    assert.equal(q.dropped, 1);
  });

  test("never drops engagement, camera or leave events", () => {
    const q = new EventQueue({ max: 2 });
    q.push(eng("e1"));
    q.push({ id: "c1", type: "camera", on: true });
    q.push({ id: "l1", type: "leave" });
    assert.deepEqual(q.list().map((e) => e.id), ["e1", "c1", "l1"]);
    // A new heartbeat is the only one there is: it goes.
    assert.equal(q.push(hb("h1")), false);
    assert.equal(q.size, 3);
  });

  test("stays bounded under a long outage", () => {
    const q = new EventQueue({ max: 10000 });
    for (let i = 0; i < 25000; i++) q.push(i % 100 === 0 ? eng(`e${i}`) : hb(`h${i}`));
    assert.equal(q.size, 10000);
    assert.equal(q.list().filter((e) => e.type === "engagement").length, 250);
  });
});

describe("chunkFrames", () => {
  test("splits under the byte limit and keeps order", () => {
    const events = Array.from({ length: 2000 }, (_, i) => hb(`id-${String(i).padStart(5, "0")}`));
    const frames = chunkFrames(events, 48 * 1024);
    assert.ok(frames.length > 1);
    const bytes = (s) => new TextEncoder().encode(s).length;
    for (const f of frames) assert.ok(bytes(f) <= 48 * 1024, `frame of ${bytes(f)} bytes`);
    assert.deepEqual(frames.flatMap((f) => JSON.parse(f)), events);
  });

  test("fills frames up to the limit exactly", () => {
    const one = JSON.stringify(hb("a")).length;
    // room for exactly two events: [e,e]
    const frames = chunkFrames([hb("a"), hb("b"), hb("c")], 2 * one + 3);
    assert.equal(frames.length, 2);
    assert.equal(JSON.parse(frames[0]).length, 2);
  });

  test("counts UTF-8 bytes, not UTF-16 units", () => {
    const big = { id: "x", type: "engagement", kind: "chat", note: "ع".repeat(100) };
    const frames = chunkFrames([big, { ...big, id: "y" }], 400); // fits as UTF-16 units, not as bytes
    assert.equal(frames.length, 2);
  });

  test("sends an oversized event alone and nothing for an empty queue", () => {
    const big = { id: "x", type: "leave", pad: "p".repeat(500) };
    assert.deepEqual(chunkFrames([big, hb("a")], 100).map((f) => JSON.parse(f).length), [1, 1]);
    assert.deepEqual(chunkFrames([]), []);
  });
});

describe("backoff", () => {
  test("grows exponentially up to the cap", () => {
    const max = () => 0.999999;
    const delays = Array.from({ length: 10 }, (_, i) => backoffDelay(i, { random: max }));
    assert.deepEqual(delays, [499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999, 29999]);
    assert.ok(backoffDelay(5000, { random: max }) <= 30000);
  });

  test("full jitter: uniform between 0 and the ceiling", () => {
    assert.equal(backoffDelay(3, { random: () => 0 }), 0);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(4);
      assert.ok(d >= 0 && d < 8000, `delay ${d}`);
    }
    assert.equal(backoffDelay(2, { random: () => 0.5, baseMs: 100, capMs: 1000 }), 200);
  });

  test("Backoff.next grows and reset starts over", () => {
    const b = new Backoff({ random: () => 0.5 });
    assert.deepEqual([b.next(), b.next(), b.next()], [250, 500, 1000]);
    b.reset();
    assert.equal(b.next(), 250);
  });
});

describe("classifyClose", () => {
  test("no retry for token, role, session, ended and capacity refusals", () => {
    for (const code of [4401, 4403, 4404, 4409, 4413]) assert.equal(classifyClose(code), "fatal", String(code));
  });
  test("retries timeouts, rate limits and abnormal closes", () => {
    for (const code of [4408, 4429, 1006, 1011, 1012, 1001, 1009, 1000]) assert.equal(classifyClose(code), "retry", String(code));
  });
});

describe("newId", () => {
  test("uses randomUUID when there is one", () => {
    assert.equal(newId({ randomUUID: () => "u-1" }), "u-1");
  });
  test("falls back to a v4 UUID from getRandomValues or Math.random", () => {
    const re = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const withGrv = newId({ getRandomValues: (a) => crypto.getRandomValues(a) });
    assert.match(withGrv, re);
    assert.match(newId(/** @type {any} */ ({})), re);
    const ids = new Set(Array.from({ length: 1000 }, () => newId({})));
    assert.equal(ids.size, 1000);
  });
});
