// WebSocket capture. `window.WebSocket` is replaced by a constructor that builds the browser's
// own socket (same prototype, so `instanceof`, the static constants, `binaryType`, `on*`
// handlers and listeners all behave as before) and follows it: open, error and close (code,
// reason, clean) as events, and messages sent and received as counts and byte sizes, summarized
// per connection at most every SUMMARY_MS (never one event per message). Payloads are kept only
// for URLs on the body-capture allow-list (`networkAllowList`, the project's
// `network_allow_list`), cut to MAX_PAYLOAD characters, at most MAX_KEPT per connection (the
// rest counted), and masked and redacted in wasm like request bodies. Binary payloads are
// counted and sized, never kept.
//
// A message costs the page a counter, a size (a string's UTF-8 length is counted up to
// MAX_MEASURE characters, past that its length stands for it) and, when captured, a slice.
// Sockets made before the recorder started, or through a constructor saved before it, are not
// followed.
import { S, now, guard, likeOriginal, setTimer, clearTimer, bare } from './state.js';
import { scrubUrl } from './privacy.js';
import { Throttle } from './throttle.js';
import { absolute, allowListed } from './network.js';

const PHASE = { open: 0, messages: 1, error: 2, close: 3 };
const SUMMARY_MS = 2000;
const MAX_OPEN = 64;
const MAX_KEPT = 20;
const MAX_PAYLOAD = 2048;
const MAX_MEASURE = 1 << 20;
const NOTE_DROPPED = 1;
const throttle = new Throttle('websocket events', 60, 10000);
const sockets = new WeakMap(); // socket → its connection record
const live = new Set();
const restore = [];
let nextId = 1;
let unfollowed = 0;

/** Bytes of a message as it travels (a string as UTF-8). */
function byteSize(data) {
  if (typeof data === 'string') {
    if (data.length > MAX_MEASURE) return data.length;
    let n = data.length;
    for (let i = 0; i < data.length; i++) {
      const c = data.charCodeAt(i);
      if (c >= 0x80) n += c < 0x800 ? 1 : c >= 0xd800 && c <= 0xdfff ? 1 : 2;
    }
    return n;
  }
  if (typeof Blob !== 'undefined' && data instanceof Blob) return data.size;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

function emit(c, phase, t, ws) {
  if (!S.rec || S.stopped) return;
  if (!throttle.take()) { c.dropped += c.kept.length; c.kept = []; return; }
  const nums = [];
  const texts = [];
  for (const m of c.kept) { nums.push(Math.max(0, Math.round(m.t - t)), m.flags, m.size); texts.push(m.text); }
  c.kept = [];
  const closing = phase === PHASE.close;
  S.rec.websocket(t, c.id, phase, c.url, (ws && ws.protocol) || '', closing ? c.reason : '',
    [c.sent, c.received, c.sentBytes, c.receivedBytes, closing ? c.code : 0, closing && c.clean ? 1 : 0, c.dropped],
    nums, texts);
}

/** Writes the messages summary of `c` now (what arrived since its last one). */
function summarize(c) {
  clearTimer(c.timer);
  c.timer = 0;
  if (c.since) emit(c, PHASE.messages, c.since, c.ws);
  c.since = 0;
}
const summarizeGuarded = guard(summarize);

function message(c, sent, data) {
  const size = byteSize(data);
  if (sent) { c.sent++; c.sentBytes += size; } else { c.received++; c.receivedBytes += size; }
  const t = now();
  if (c.capture) {
    if (c.taken < MAX_KEPT) {
      c.taken++;
      const text = typeof data === 'string';
      c.kept.push({ t, flags: (sent ? 1 : 0) | (text ? 0 : 2), size, text: text ? data.slice(0, MAX_PAYLOAD) : '' });
    } else c.dropped++;
  }
  if (!c.since) {
    c.since = t;
    c.timer = setTimer(summarizeGuarded, SUMMARY_MS, c);
  }
}

function follow(ws, url) {
  if (S.stopped || !S.rec) return;
  if (live.size >= MAX_OPEN) { unfollowed++; return; }
  const abs = absolute(url);
  const c = { id: nextId++, ws, url: scrubUrl(abs), capture: allowListed(abs), sent: 0, received: 0, sentBytes: 0,
    receivedBytes: 0, taken: 0, dropped: 0, kept: [], since: 0, timer: 0, code: 0, reason: '', clean: false, off: () => {} };
  sockets.set(ws, c);
  live.add(c);
  if (unfollowed) {
    S.rec.note(now(), NOTE_DROPPED, 0, unfollowed, 'websocket connections not followed (too many open)');
    unfollowed = 0;
  }
  const listeners = {
    open: guard(() => emit(c, PHASE.open, now(), ws)),
    message: guard((ev) => message(c, false, ev.data)),
    error: guard(() => emit(c, PHASE.error, now(), ws)),
    close: guard((ev) => {
      summarize(c);
      c.code = ev.code;
      c.reason = String(ev.reason || '').slice(0, 256);
      c.clean = !!ev.wasClean;
      live.delete(c);
      emit(c, PHASE.close, now(), ws);
      c.ws = null;
      c.off();
    }),
  };
  const types = Object.keys(listeners);
  for (const type of types) ws.addEventListener(type, listeners[type]);
  // What `stopWebSockets` (or the close) takes off again: a long-lived socket followed by a
  // stopped recorder would otherwise count every message for nothing.
  c.off = () => { for (const type of types) ws.removeEventListener(type, listeners[type]); };
}

export function startWebSockets() {
  const Native = window.WebSocket;
  if (typeof Native !== 'function' || !Native.prototype) return;
  const track = guard(follow);
  const onSend = guard((ws, data) => {
    const c = sockets.get(ws);
    if (c && c.ws && ws.readyState === 1) message(c, true, data);
  });
  // Named like the browser's, one declared parameter: `WebSocket.name` and `.length` unchanged.
  /** @type {any} */
  const Wrapped = function WebSocket(url) {
    // Called without `new`: the browser's own TypeError.
    if (!new.target) return Native.apply(this, arguments);
    const ws = Reflect.construct(Native, arguments, new.target);
    track(ws, url);
    return ws;
  };
  Object.defineProperty(Wrapped, 'name', bare({ value: 'WebSocket' })); // whatever the minifier does
  Wrapped.prototype = Native.prototype;
  Object.setPrototypeOf(Wrapped, Native); // CONNECTING, OPEN, CLOSING, CLOSED
  const proto = Native.prototype;
  const nativeSend = proto.send;
  const send = function send(data) {
    const out = nativeSend.apply(this, arguments); // throws before open: nothing counted
    onSend(this, data);
    return out;
  };
  proto.send = likeOriginal(send, nativeSend);
  window.WebSocket = Wrapped;
  restore.push(() => {
    if (window.WebSocket === Wrapped) window.WebSocket = Native;
    if (proto.send === send) proto.send = nativeSend;
  });
}

/** Writes every open connection's pending summary (a flush: asked for, or the page going away). */
export function flushWebSockets() {
  for (const c of live) summarizeGuarded(c);
}

export function stopWebSockets() {
  flushWebSockets();
  for (const r of restore.splice(0)) r();
  for (const c of live) {
    c.off();
    c.ws = null;
  }
  live.clear();
}
