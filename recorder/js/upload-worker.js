// Upload worker: compresses (CompressionStream gzip) and uploads batches off the main thread,
// with retries (exponential backoff with jitter, Retry-After honoured). Hopeless refusals
// (4xx other than 429) are dropped and reported. It keeps no state the page cannot rebuild:
// the page holds a copy of every batch until this worker reports it acknowledged.
//
// It is also the freeze watchdog: the page posts a heartbeat every ~250 ms; it holds a marker
// batch (a `freeze_started` event, encoded ahead of time by wasm with the next sequence number),
// which a heartbeat either replaces or only moves to its own time (`moveMarker`), and which a
// batch's message may replace (the marker re-armed after that batch). When
// nothing (no heartbeat, no batch) arrives for 1 s while the page is visible, the page's main
// thread is stuck: every batch held here goes out at once, followed by the marker, so the
// server knows about the freeze even if the tab never recovers. In buffer mode the page also
// hands over a copy of what it holds back (`hold`; `release` when it goes live): a freeze is
// one of the things that send the buffer, and a frozen page can no longer send it itself.
//
// It also encodes canvas frames for canvas.js (`canvas`: an ImageBitmap in, image bytes out),
// and fetches the project's recorder settings (`settings`) and the recorder's wasm (`wasm`) away
// from the page's `fetch`, which may be wrapped (a library adding the app's `Authorization`).
//
// Written as a module for the type checker; `cargo xtask build-web` turns it, with
// upload-core.js inlined, into the classic script the page starts from a blob (carried as a
// string in the recorder's bundle: upload-worker-source.js).
import { createUploader } from './upload-core.js';

/**
 * This worker's global scope, as much of it as is used here.
 * @type {{ postMessage(msg: unknown, transfer?: Transferable[]): void, onmessage: ((e: MessageEvent) => void) | null }}
 */
const scope = /** @type {any} */ (self);

const FREEZE_MS = 1000;
const WATCH_EVERY_MS = 100;
/** Most bytes of buffer-mode copies kept; the oldest go first. */
const HELD_MAX_BYTES = 16 * 1024 * 1024;

/** @type {{ bytes: import('./upload-core.js').Bytes, snapshot: boolean }[]} */
let held = [];
let heldBytes = 0;

/**
 * Keeps a buffer-mode batch; like the page, from the latest batch that starts with a snapshot on.
 * @param {import('./upload-core.js').Bytes} bytes
 * @param {boolean} snapshot
 */
function hold(bytes, snapshot) {
  if (snapshot) {
    let from = 0;
    for (let i = held.length - 1; i >= 0; i--) if (held[i].snapshot) { from = i; break; }
    for (const h of held.slice(0, from)) heldBytes -= h.bytes.length;
    held = held.slice(from);
  }
  held.push({ bytes, snapshot });
  heldBytes += bytes.length;
  while (heldBytes > HELD_MAX_BYTES && held.length > 1) heldBytes -= held.shift().bytes.length;
}

/** @type {import('./upload-core.js').UploadConfig | null} */
let cfg = null;
// Each outcome says whether this worker has nothing left to send (`idle`): the page replaces
// a worker only then, never in the middle of a request (transport.js, `renewWorker`).
const uploader = createUploader(() => cfg, (r) => post({ ...r, idle: queue.length === 0 }));
const queue = uploader.queue;
const pump = uploader.pump;

/**
 * To the page.
 * @param {unknown} msg
 */
function post(msg) {
  scope.postMessage(msg);
}

let lastBeat = 0;
/**
 * When the last message of any kind came from the page. Its main thread posted it, so it was
 * not frozen then: the marker a busy page hands over between its batch and its heartbeat (the
 * cut after a freeze posts the batch and the re-armed marker a few ms before the heartbeat)
 * must not let a check that was already confirming fire that new marker, whose sequence number
 * the page never reserved.
 */
let lastSeen = 0;
let visible = false;
/** @type {import('./upload-core.js').Bytes | null} */
let marker = null;
/** Where the marker's times are (-1: they cannot be moved), see `moveMarker`. */
let markerAt = -1;
let fired = false;
/** @type {ReturnType<typeof setInterval> | 0} */
let watchTimer = 0;

/** A missed heartbeat waits for its confirmation (see `watch`). */
let confirming = false;

/**
 * Nothing from the page for FREEZE_MS (so no heartbeat either) while it is visible and a marker
 * is armed. Counting every message, not only heartbeats, only makes the worker fire later than
 * the page's own check of its heartbeats' gap (recorder/src/buffer.rs), never sooner.
 */
function missed() {
  return visible && !fired && !!marker && lastBeat > 0 && Date.now() - lastSeen >= FREEZE_MS;
}

/**
 * Sees whether heartbeats stopped, and confirms it in a task of its own before firing: this
 * check may run late (this thread was busy compressing, or starved of CPU), from a timer that
 * fell due before a heartbeat that is already waiting in the queue behind it. Fired then, the
 * marker would carry a sequence number the page never reserved (its gap was under
 * FREEZE_SUSPECT_MS, recorder/src/buffer.rs): the page's next real batch would get the same
 * number (the server keeps both, but the session shows a freeze that never happened). A task
 * queued now runs after the messages already waiting (where the engine orders timers after
 * them); a message that arrives before it, even one posted a moment before the heartbeat, is
 * proof of life too (`lastSeen`).
 */
function watch() {
  if (confirming || !missed()) return;
  confirming = true;
  setTimeout(() => {
    confirming = false;
    if (missed()) fire();
  }, 0);
}

/**
 * Moves the marker to `ms` (epoch milliseconds) in place, as the page's wasm moved its own copy
 * (recorder/src/buffer.rs `move_marker`): its `start` and `end`, at `markerAt`, are each a
 * MessagePack `uint 64` (tag 0xcf, then 8 bytes big-endian), the layout protocol's
 * `set_batch_times` writes. Nothing is written where the bytes there are not that, nor to a
 * marker already sent.
 * @param {number} ms
 */
function moveMarker(ms) {
  if (fired || !marker || markerAt < 0 || markerAt + 18 > marker.length || !(ms > 0xffffffff)) return;
  const v = new DataView(marker.buffer, marker.byteOffset, marker.byteLength);
  if (v.getUint8(markerAt) !== 0xcf || v.getUint8(markerAt + 9) !== 0xcf) return;
  const hi = Math.floor(ms / 4294967296);
  const lo = ms % 4294967296;
  for (const at of [markerAt + 1, markerAt + 10]) {
    v.setUint32(at, hi);
    v.setUint32(at + 4, lo);
  }
}

/**
 * Keeps the marker a message brings (a full heartbeat, a `marker`, or a batch with the marker
 * re-armed after it), with where its times are.
 * @param {{ marker?: import('./upload-core.js').Bytes | null, at?: number }} m
 */
function keepMarker(m) {
  marker = m.marker || null;
  markerAt = typeof m.at === 'number' ? m.at : -1;
}

/** The page is frozen: everything held goes out now, followed by the marker. */
function fire() {
  fired = true;
  for (const item of queue) item.due = 0;
  // Buffer mode: what the page held back goes first (untracked, like the marker: if the page
  // recovers it sends the same batches again and the server stores them once).
  for (const h of held) queue.push({ id: 0, bytes: h.bytes, tries: 0, due: 0 });
  held = [];
  heldBytes = 0;
  // id 0: the page does not track the marker (it sends it itself after the freeze; the server
  // stores it once).
  queue.push({ id: 0, bytes: marker, tries: 0, due: 0 });
  post({ type: 'freeze', since: lastBeat });
}

/** Most canvases whose last frame's hash is kept (then the map starts over). */
const CANVAS_KEYS_MAX = 512;
/** @type {Map<number, string>} */
const canvasHashes = new Map();

/**
 * Encodes a canvas frame for the page (canvas.js): the bitmap drawn into an OffscreenCanvas and
 * encoded as WebP (PNG where the browser writes no WebP); `same` when the bytes equal the last
 * frame of that canvas, `failed` when this worker cannot encode (the page uses `toBlob`).
 * @param {{ seq: number, key: number, bitmap: ImageBitmap, quality: number }} m
 */
async function encodeCanvas(m) {
  const bitmap = m.bitmap;
  try {
    const oc = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = /** @type {OffscreenCanvasRenderingContext2D | null} */ (oc.getContext('2d'));
    if (!ctx) throw new Error('no 2d context');
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    const blob = await oc.convertToBlob({ type: 'image/webp', quality: m.quality });
    const buf = await blob.arrayBuffer();
    const bytes = new Uint8Array(buf);
    let h = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 16777619);
    const hash = bytes.length + ':' + h;
    if (canvasHashes.get(m.key) === hash) {
      post({ type: 'canvas', seq: m.seq, same: true });
      return;
    }
    if (canvasHashes.size >= CANVAS_KEYS_MAX) canvasHashes.clear();
    canvasHashes.set(m.key, hash);
    scope.postMessage({ type: 'canvas', seq: m.seq, mime: blob.type, bytes: buf }, [buf]);
  } catch (_) {
    try { bitmap.close(); } catch (_) { /* gone */ }
    post({ type: 'canvas', seq: m.seq, failed: true });
  }
}

/**
 * The project's recorder settings, fetched in this worker's realm: the page's `fetch` may be a
 * wrapper (an APM's, an auth library's adding the app's `Authorization` to every request) that
 * the replay server must not see. `null` when there are none in time.
 * @param {number} seq
 * @param {string} url
 * @param {number} waitMs
 */
async function settings(seq, url, waitMs) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), waitMs);
  let body = null;
  try {
    const res = await fetch(url, { credentials: 'omit', signal: abort.signal });
    if (res.ok) body = await res.json();
  } catch (_) {
    body = null;
  } finally {
    clearTimeout(timer);
  }
  post({ type: 'settings', seq, value: body });
}

/**
 * The recorder's wasm, fetched here for the same reason (bytes handed over; null when it could
 * not: the page then fetches it itself).
 * @param {number} seq
 * @param {string} url
 */
async function wasm(seq, url) {
  try {
    const res = await fetch(url, { credentials: 'same-origin' });
    if (!res.ok) throw new Error('status ' + res.status);
    const bytes = await res.arrayBuffer();
    scope.postMessage({ type: 'wasm', seq, value: bytes }, [bytes]);
  } catch (_) {
    post({ type: 'wasm', seq, value: null });
  }
}

scope.onmessage = (e) => {
  const m = e.data;
  lastSeen = Date.now();
  if (m.type === 'heartbeat') {
    lastBeat = Date.now();
    visible = !!m.visible;
    if (m.time) {
      // The same marker, moved to the heartbeat's time. One already sent stays sent (and the
      // watchdog stays off) until a heartbeat brings a new one.
      moveMarker(m.time);
    } else {
      keepMarker(m);
      fired = false;
    }
    if (!watchTimer) watchTimer = setInterval(() => { watch(); pump(); }, WATCH_EVERY_MS);
    return;
  } else if (m.type === 'marker') {
    if (!fired) keepMarker(m);
    return;
  } else if (m.type === 'config') {
    cfg = m.cfg;
  } else if (m.type === 'hold') {
    hold(m.bytes, !!m.snapshot);
    return;
  } else if (m.type === 'release') {
    held = [];
    heldBytes = 0;
    return;
  } else if (m.type === 'batch') {
    uploader.add(m.id, m.bytes);
    // The page's marker re-armed after this batch (numbered after it), as a `marker` message.
    if (m.marker && !fired) keepMarker(m);
    return;
  } else if (m.type === 'canvas') {
    encodeCanvas(m);
    return;
  } else if (m.type === 'settings') {
    settings(m.seq, String(m.url), Number(m.waitMs) || 1500);
    return;
  } else if (m.type === 'wasm') {
    wasm(m.seq, String(m.url));
    return;
  } else if (m.type === 'retry-now') {
    uploader.retryNow();
    return;
  } else if (m.type === 'stop') {
    // Recording stopped: no freeze to report, no buffer to send, no timer left running (the
    // uploader's own timers send what is queued). A later heartbeat (a restart) arms it again.
    keepMarker({});
    visible = false;
    held = [];
    heldBytes = 0;
    if (watchTimer) clearInterval(watchTimer);
    watchTimer = 0;
  }
  pump();
};
