// Preview server for the static pages, without the Python service.
//
//   node clients/js/preview.mjs [port]      (default 8765)
//
//   http://127.0.0.1:8765/panel/demo?token=x       panel, fixture snapshot + live deltas
//   http://127.0.0.1:8765/panel/demo-500?token=x   the same with 500 participants
//   http://127.0.0.1:8765/panel/still?token=x      snapshot only, no deltas (screenshots)
//   http://127.0.0.1:8765/panel/demo?token=bad     the server refuses the token (4401)
//   http://127.0.0.1:8765/me?token=x               learner dashboard from the fixture
//
// Serves app/static at /static/, fakes GET /v1/me/records, the panel
// websocket and the participant websocket (welcome + acks). The websocket
// side is the minimum of RFC 6455: the handshake (§4.2.2), unfragmented text
// frames out, masked frames in (§5.2), ping/pong and close. No dependencies.
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const staticDir = join(here, "../../app/static");
const fixture = async (name) => JSON.parse(await readFile(join(here, "fixtures", name), "utf8"));
const port = Number(process.argv[2] ?? process.env.PORT ?? 8765);

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png" };

function problem(res, status, title, detail) {
  res.writeHead(status, { "content-type": "application/problem+json" });
  res.end(JSON.stringify({ type: "about:blank", title, status, detail }));
}

async function sendFile(res, path) {
  try {
    const body = await readFile(path);
    res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(body);
  } catch {
    problem(res, 404, "Not Found", "no such file");
  }
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname;
  if (path.startsWith("/static/")) {
    const file = normalize(join(staticDir, decodeURIComponent(path.slice(8))));
    if (!file.startsWith(staticDir)) return problem(res, 404, "Not Found", "");
    return sendFile(res, file);
  }
  if (/^\/panel\/[^/]+\/?$/.test(path)) return sendFile(res, join(staticDir, "panel.html"));
  if (path === "/me") return sendFile(res, join(staticDir, "me.html"));
  if (path === "/v1/me/records") {
    const auth = req.headers.authorization ?? "";
    if (!auth.startsWith("Bearer ") || auth === "Bearer bad") return problem(res, 401, "Unauthorized", "The token is invalid or has expired.");
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify(await fixture("me-records.json")));
  }
  if (path === "/") {
    res.writeHead(302, { location: "/panel/demo?token=x" });
    return res.end();
  }
  problem(res, 404, "Not Found", path);
});

// ---- RFC 6455, the least of it --------------------------------------------

/** Frame a text (opcode 1) or close (opcode 8) payload, server side: unmasked. */
function frame(opcode, payload) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const n = data.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n])
    : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255])
    : Buffer.concat([Buffer.from([0x80 | opcode, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  return Buffer.concat([head, data]);
}

function accept(req, socket) {
  const key = req.headers["sec-websocket-key"];
  const digest = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${digest}\r\n\r\n`);
  const ws = {
    open: true,
    send: (obj) => ws.open && socket.write(frame(1, JSON.stringify(obj))),
    close: (code, reason = "") => {
      if (!ws.open) return;
      ws.open = false;
      const body = Buffer.alloc(2 + Buffer.byteLength(reason));
      body.writeUInt16BE(code);
      body.write(reason, 2);
      socket.end(frame(8, body));
    },
    onText: (_text) => {},
    onClose: () => {},
  };
  let buf = Buffer.alloc(0);
  socket.on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2) {
      const opcode = buf[0] & 15;
      let len = buf[1] & 127, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = buf[1] & 128;
      if (buf.length < off + (masked ? 4 : 0) + len) return;
      const mask = masked ? buf.subarray(off, off + 4) : null;
      off += masked ? 4 : 0;
      const data = Buffer.from(buf.subarray(off, off + len));
      if (mask) for (let i = 0; i < data.length; i++) data[i] ^= mask[i & 3];
      buf = buf.subarray(off + len);
      if (opcode === 1) ws.onText(data.toString("utf8"));
      else if (opcode === 8) ws.close(data.length >= 2 ? data.readUInt16BE(0) : 1000);
      else if (opcode === 9) socket.write(frame(10, data));
    }
  });
  socket.on("close", () => { ws.open = false; ws.onClose(); });
  socket.on("error", () => { ws.open = false; });
  return ws;
}

// ---- fake panel -------------------------------------------------------------

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?Z$/;
/** Shift every timestamp so that the fixture's session is running now. */
function rebase(value, shiftMs) {
  if (typeof value === "string" && ISO.test(value)) return new Date(Date.parse(value) + shiftMs).toISOString();
  if (Array.isArray(value)) return value.map((v) => rebase(v, shiftMs));
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rebase(v, shiftMs)]));
  return value;
}

async function panel(ws, sessionId) {
  const snap = await fixture("panel-snapshot.json");
  // The fixture describes the session 48 minutes after its start.
  const shift = Date.now() - (Date.parse(snap.session.scheduled_start) + 48 * 60000);
  const s = rebase(snap, shift);
  s.session.id = sessionId;
  const m = /-(\d+)$/.exec(sessionId);
  if (m) {
    const want = Number(m[1]);
    const base = s.participants.filter((p) => p.role === "learner");
    for (let i = 0; s.participants.length < want; i++) {
      const p = structuredClone(base[i % base.length]);
      p.user_id = `${p.user_id}-${i}`;
      p.name = `${p.name} ${Math.floor(i / base.length) + 2}`;
      s.participants.push(p);
    }
    s.session.capacity.learners = s.participants.length - 2;
  }
  ws.send(s);
  if (sessionId === "still") return;

  const people = new Map(s.participants.map((p) => [p.user_id, { p, at: Date.now() }]));
  const ids = [...people.keys()];
  const outage = s.session.outage;
  const timer = setInterval(() => {
    if (!ws.open) return clearInterval(timer);
    const now = Date.now();
    const changed = new Set();
    for (let k = 0; k < 1 + Math.floor(Math.random() * 3); k++) {
      const e = people.get(ids[Math.floor(Math.random() * ids.length)]);
      if (e.p.role !== "learner") continue;
      const r = Math.random();
      if (e.p.state === "connected" && r < 0.25) e.p.state = "dropped";
      else if (e.p.state !== "connected" && r < 0.5) {
        if (e.p.state === "never") e.p.joined_at = new Date(now).toISOString();
        e.p.state = "connected";
      } else if (e.p.state === "connected") e.p.engagements += 1;
      else if (r < 0.6) e.p.camera = !e.p.camera;
      changed.add(e);
    }
    for (const e of changed) {
      if (e.p.state === "connected") e.p.present_s += Math.round((now - e.at) / 1000);
      e.at = now;
    }
    const msg = { type: "delta", participants: [...changed].map((e) => e.p) };
    ws.send(msg);
    if (outage.active) {
      outage.fault_ratio = Math.round((outage.fault_ratio + 2 / 5400) * 10000) / 10000;
      if (Math.random() < 0.05) {
        outage.active = false;
        outage.windows.at(-1).end = new Date(now).toISOString();
      }
      ws.send({ type: "outage", ...outage });
    }
  }, 2000);
}

// ---- fake participant endpoint: welcome, then ack everything ------------------

function live(ws, sessionId) {
  ws.send({ type: "welcome", session_id: sessionId, user_id: "u-preview", heartbeat_interval_s: 15, server_time: new Date().toISOString() });
  ws.onText = (text) => {
    let body;
    try { body = JSON.parse(text); } catch { return ws.send({ type: "error", code: "bad_json", detail: "not JSON" }); }
    const events = [body].flat();
    ws.send({ type: "ack", ids: events.map((e) => e.id) });
    if (events.some((e) => e.type === "leave")) ws.close(1000, "left");
  };
}

server.on("upgrade", (req, socket) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  const m = /^\/v1\/live\/([^/]+)(\/panel)?$/.exec(url.pathname);
  if (!m || req.headers.upgrade?.toLowerCase() !== "websocket") return socket.destroy();
  const ws = accept(req, socket);
  const token = url.searchParams.get("token");
  if (!token || token === "bad") return ws.close(4401, "invalid token");
  const sessionId = decodeURIComponent(m[1]);
  if (m[2]) panel(ws, sessionId);
  else live(ws, sessionId);
});

server.listen(port, "127.0.0.1", () => {
  console.log(`preview on http://127.0.0.1:${port}/panel/demo?token=x and http://127.0.0.1:${port}/me?token=x`);
});
