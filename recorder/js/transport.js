// Delivery: nothing acknowledged is lost, nothing is sent twice on purpose, and the page never
// waits for the network.
//
// - Encoded batches go to the upload worker (upload-worker.js: gzip + POST + retries off the
//   main thread); without workers (CSP, old browsers) the same loop (upload-core.js) runs here.
// - The page keeps a copy of every batch until it is acknowledged (bounded; the oldest are
//   dropped and counted when the bound is hit).
// - On pagehide, what is still unacknowledged is sent with fetch keepalive within the 64 KB
//   budget and also saved in sessionStorage; the next page of the same tab resends it (the
//   server acknowledges duplicates without storing them twice).
import { valveStats } from './valve.js';
import { S, now, setTimer, clearTimer, bare } from './state.js';
import { WORKER_SOURCE } from './upload-worker-source.js';
import { __replay_memory_bytes as memoryBytes } from './recorder_wasm.js';
import { createUploader, release } from './upload-core.js';

/** `NoteKind::Dropped` on the wire. */
const NOTE_DROPPED = 1;

const MAX_PENDING_BYTES = 16 * 1024 * 1024;
const KEEPALIVE_BUDGET = 60 * 1024;
const UNSENT_KEY = '__replay_unsent';
const MAX_SAVED_CHARS = 3 * 1024 * 1024;

/** @typedef {(import('./upload-core.js').UploadReport & { idle?: boolean }) | { type: 'freeze', since: number } | { type: 'canvas', seq: number } | { type: 'settings', seq: number, value?: unknown } | { type: 'wasm', seq: number, value?: unknown }} WorkerReport */

/** @typedef {import('./upload-core.js').Bytes} Bytes */

/** id → { bytes } of batches not yet acknowledged, in order. */
const pending = /** @type {Map<number, { bytes: Bytes }>} */ (new Map());
let pendingBytes = 0;
let nextId = 1;
/** @type {Worker | null} */
let worker = null;
/** Bytes of batches handed to the current worker (see `renewWorker`). */
let workerBytes = 0;
/** Past this many bytes handed over, the worker is replaced once it is idle. */
const WORKER_RENEW_BYTES = 4 * 1024 * 1024;
/** The worker said, with its last outcome, that it has nothing left to send. */
let workerIdle = true;
let workerRenewals = 0;
/**
 * What a new worker must be told of the watchdog, in order: the last heartbeat that carried a
 * marker (or none), the marker posted after it, and the last heartbeat since that only moved
 * the marker in time. (A posted marker makes the next heartbeat carry one, so the last two are
 * never both there: the move applies to the first's marker.)
 */
let watch = /** @type {unknown[]} */ ([]);
/** Canvas frames the worker is encoding: it is not replaced meanwhile. */
let canvasInFlight = 0;
/** Buffer mode: the worker holds copies of what the page holds back (not replaced meanwhile). */
let holding = false;
let acked = 0;
let rejected = 0;
let droppedBatches = 0;
let restored = 0;
/** @type {((stats: import('./types/replay').ReplayStats) => void)[]} */
let waiters = [];
/**
 * The freeze watchdog's marker as the worker gets it: its bytes and where its times are.
 * @typedef {{ marker: Uint8Array | undefined, at: number }} Armed
 */
/** @type {((post?: (armed: Armed | null) => void) => void) | null} */
let enqueued = null;
/**
 * The main-thread fallback's upload loop (the worker runs its own copy of upload-core.js),
 * made only when there is no worker.
 * @type {ReturnType<typeof createUploader> | null}
 */
let uploader = null;

/**
 * Posts a message (and what it transfers) to the upload worker; false when uploads run on the
 * main thread.
 * @param {unknown} msg
 * @param {Transferable[]} [transfer]
 */
export function postToWorker(msg, transfer) {
  if (!worker) return false;
  worker.postMessage(msg, transfer || []);
  const type = /** @type {{ type?: string }} */ (msg).type;
  // What a new worker must be told again (see `renewWorker`).
  if (type === 'heartbeat') watch = /** @type {{ time?: number }} */ (msg).time ? [watch[0], watch[1], msg] : [msg];
  else if (type === 'marker') watch = [watch[0], msg];
  else if (type === 'canvas') canvasInFlight++;
  else if (type === 'release') holding = false;
  return true;
}

/**
 * Recording stopped: the worker's freeze watchdog is disarmed and its timer ends (what it still
 * holds is sent as before), and a worker started later is not armed again.
 */
export function disarmWorker() {
  watch = [];
  postToWorker({ type: 'stop' });
}

/**
 * Posts a copy of `bytes` to the upload worker, moved (transferred), not cloned: a clone is
 * copied into the message and out of it again in the worker, and the worker keeps both copies
 * until its next garbage collection; moved, it keeps one (the message event holds on to it,
 * see `renewWorker`). Copying here costs what the clone's first copy did.
 * @param {'batch' | 'hold'} type
 * @param {number} id the batch's id (`hold`: 0)
 * @param {Bytes} bytes
 * @param {boolean} [snapshot] `hold`: the batch starts with a snapshot
 * @param {Armed | null} [armed] `batch`: the freeze
 *   watchdog's marker re-armed after it (cloned, not moved: a new worker is told it again)
 */
export function postCopy(type, id, bytes, snapshot, armed) {
  if (!worker) return false;
  const copy = bytes.slice();
  if (type === 'batch') workerBytes += copy.length;
  else holding = true;
  if (armed) {
    worker.postMessage({ type, id, bytes: copy, snapshot, marker: armed.marker, at: armed.at }, [copy.buffer]);
    watch = [watch[0], { type: 'marker', marker: armed.marker, at: armed.at }];
  } else {
    worker.postMessage({ type, id, bytes: copy, snapshot }, [copy.buffer]);
  }
  return true;
}

/** @type {(() => void) | null} */
let onWorkerFired = null;

/** Calls `fn` when the worker sent its freeze marker (the watchdog arms a new one). */
export function onFired(fn) {
  onWorkerFired = fn;
}

/**
 * Calls `fn` after every batch handed to delivery (the freeze watchdog re-arms its marker),
 * with `post`: what `fn` gives it rides in the batch's message to the worker (called at most
 * once; without it, the batch goes alone).
 * @param {((post?: (armed: Armed | null) => void) => void) | null} fn
 */
export function onEnqueued(fn) {
  enqueued = fn;
}

/**
 * Requests to the worker that answer (settings, the wasm): seq → what to do with the answer,
 * and what to do from here instead when the worker fails or does not answer in time.
 * @type {Map<number, { done: (v: unknown) => void, here: () => Promise<unknown> }>}
 */
const asks = new Map();
let askSeq = 0;

/**
 * Asks the worker (`msg` gets a `seq`; the worker answers with the same type and seq, and
 * `value`). `here` does it on the main thread instead when there is no worker or it failed to
 * start; `late` gives the answer when the worker has not answered within `waitMs` (the first of
 * the two answers wins).
 * @param {Record<string, unknown>} msg
 * @param {number} waitMs
 * @param {() => Promise<unknown>} here
 * @param {() => Promise<unknown>} late
 * @returns {Promise<unknown>}
 */
function ask(msg, waitMs, here, late) {
  if (!worker) return settled(here);
  const w = worker;
  return new Promise((resolve) => {
    const seq = ++askSeq;
    /** @param {unknown} v */
    const finish = (v) => {
      if (!asks.delete(seq)) return;
      clearTimer(timer);
      resolve(v);
    };
    const timer = setTimer(() => {
      if (asks.has(seq)) settled(late).then(finish);
    }, waitMs);
    asks.set(seq, { done: finish, here: () => settled(here) });
    w.postMessage({ ...msg, seq });
  });
}

/**
 * `fn()`'s result, null when it throws or rejects.
 * @param {() => Promise<unknown>} fn
 * @returns {Promise<unknown>}
 */
async function settled(fn) {
  try {
    return await fn();
  } catch (_) {
    return null;
  }
}

/** The worker is gone (it failed to start): what was asked of it is done here. */
function askHere() {
  for (const a of [...asks.values()]) a.here().then(a.done);
}

/**
 * The project's recorder settings (JSON), or null when there are none in `waitMs`. Fetched by
 * the upload worker: the page's `fetch` may be wrapped by a library that adds the app's own
 * headers (`Authorization`) to every request, which must not reach the replay server. Without
 * a worker (CSP), with the page's `fetch`, without credentials.
 * @param {string} url
 * @param {number} waitMs
 * @returns {Promise<unknown>}
 */
export function fetchSettings(url, waitMs) {
  const here = async () => {
    const abort = new AbortController();
    const timer = setTimer(() => abort.abort(), waitMs);
    try {
      const res = await fetch(url, { credentials: 'omit', signal: abort.signal });
      return res.ok ? JSON.parse(await res.text()) : null;
    } finally {
      clearTimer(timer);
    }
  };
  // The worker's own timeout answers first; the page's covers a worker that never answers
  // (then without settings, not through the page's `fetch`).
  return ask({ type: 'settings', url, waitMs }, waitMs + 1000, here, async () => null);
}

/**
 * The recorder's wasm: its bytes, fetched by the upload worker (started here for it) for the
 * same reason as the settings, or its URL (wasm-bindgen then fetches it with the page's
 * `fetch`) when there is no worker, it could not, or it has not answered in a minute.
 * @param {URL} url
 * @returns {Promise<ArrayBuffer | URL>}
 */
export async function wasmSource(url) {
  startWorkerOnce();
  const none = async () => null;
  const got = await ask({ type: 'wasm', url: url.href }, WASM_WAIT_MS, none, none);
  return got instanceof ArrayBuffer ? got : url;
}
const WASM_WAIT_MS = 60000;

/** Tells the upload worker where batches go and with which key (again after `init` changed them). */
export function configureTransport() {
  if (worker) worker.postMessage({ type: 'config', cfg: { key: S.cfg.key, endpoint: S.cfg.endpoint } });
}

/**
 * Starts the upload worker: a blob worker (the recorder's own origin is not the page's) from the
 * script the bundle carries (upload-worker-source.js), so no request of its own. A page whose
 * CSP refuses blob workers (`worker-src`, else `script-src`, without `blob:`) gets the
 * main-thread fallback: `new Worker` throws or the worker reports an error.
 */
export async function startTransport() {
  startWorkerOnce();
  for (const bytes of takeSaved()) {
    restored++;
    enqueue(bytes);
  }
}

let workerTried = false;

/** Starts the first worker, or the main-thread uploader where the page refuses workers. */
function startWorkerOnce() {
  if (workerTried) return;
  workerTried = true;
  try {
    startWorker();
  } catch (_) {
    worker = null;
    uploadHere();
  }
}

/** Starts a worker (throws where the page's CSP or the browser refuses it). */
function startWorker() {
  if (!WORKER_SOURCE) throw new Error('no worker script');
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
  const w = new Worker(url);
  URL.revokeObjectURL(url);
  worker = w;
  workerBytes = 0;
  w.onmessage = (e) => onResult(e.data);
  w.onerror = () => {
    if (worker !== w) return;
    // An error after it started (not only a refused start): no heartbeats reach it any more, so
    // its watchdog must not go on to report a freeze or send what it holds.
    try { w.terminate(); } catch (_) { /* gone */ }
    worker = null;
    uploadHere();
    askHere();
  };
  configureTransport();
}

/**
 * Replaces the upload worker by a fresh one once it has been handed WORKER_RENEW_BYTES. A
 * dedicated worker that only uploads allocates almost nothing of its own, so its garbage
 * collector seldom runs, and every batch it was handed stays in memory until then: the message
 * event that brought it keeps its contents (Blink's copy of the message), which nothing in
 * JavaScript can free. On a big page that was 40-60 MB of the renderer's memory. Ending the
 * worker frees all of it at once; the new one is told the configuration and the freeze
 * watchdog's last heartbeat and marker. Only when it is idle: every batch acknowledged, nothing
 * of its own to send (a freeze marker), no canvas frame being encoded, no buffer-mode copies
 * held; a page that never idles keeps its worker (whose collector then runs on V8's own
 * schedule). True when it did.
 */
function renewWorker() {
  if (!worker || workerBytes < WORKER_RENEW_BYTES || !workerIdle || pending.size || canvasInFlight || holding || asks.size) return false;
  const old = worker;
  old.onmessage = null;
  old.onerror = null;
  old.terminate();
  worker = null;
  try {
    startWorker();
  } catch (_) {
    worker = null;
    uploadHere();
    return true;
  }
  workerRenewals++;
  workerIdle = true;
  for (const msg of watch) if (msg) worker.postMessage(msg);
  return true;
}

/** Uploads from the main thread from now on, starting with what the worker had. */
async function uploadHere() {
  uploader = createUploader(() => S.cfg, onResult);
  for (const [id, item] of pending) uploader.add(id, item.bytes);
}

/** What the page does when the server refuses the whole session (set by core.js). */
let onSessionRefused = (/** @type {string} */ _reason) => {};

/**
 * Registers what to do when the server refuses every further batch of this session: the key
 * is unknown or revoked, the page's origin is not allowed, or the session is full or was
 * deleted on request.
 * @param {(reason: string) => void} f
 */
export function whenSessionRefused(f) {
  onSessionRefused = f;
}

/** Refusals that no later batch of this session can escape. */
const SESSION_REFUSALS = /"reason"\s*:\s*"(session_full|session_deleted|unknown_key|origin_not_allowed)"/;

/** @type {(m: any) => void} */
let onCanvas = () => {};

/**
 * Registers who takes the worker's encoded canvas frames (canvas.js).
 * @param {(m: any) => void} f
 */
export function onCanvasEncoded(f) {
  onCanvas = f;
}

/** @param {WorkerReport} m */
function onResult(m) {
  if (m.type === 'freeze') {
    // The worker sent its marker: it needs a new one (the page answers again by now).
    if (onWorkerFired) onWorkerFired();
    return;
  }
  if (m.type === 'settings' || m.type === 'wasm') {
    const a = asks.get(m.seq);
    if (a) a.done(m.value === undefined ? null : m.value);
    return;
  }
  if (m.type === 'canvas') {
    if (canvasInFlight > 0) canvasInFlight--;
    onCanvas(m);
    return;
  }
  if (typeof m.idle === 'boolean') workerIdle = m.idle;
  const item = pending.get(m.id);
  if (m.type === 'retrying') {
    S.lastError = m.error;
    return;
  }
  if (!item) return;
  pending.delete(m.id);
  pendingBytes -= item.bytes.length;
  // Nothing reads the page's copy any more (the fallback uploader has let go of it too).
  release(item.bytes);
  if (m.type === 'ack') acked++;
  else {
    rejected++;
    S.lastError = m.error;
    // Every later batch would be refused the same way: stop recording instead of sending them.
    const refusal = SESSION_REFUSALS.exec(String(m.error));
    if (refusal) {
      onSessionRefused(refusal[1]);
    } else {
      // Tell the server why something is missing: the next batch carries a note (a batch
      // refused for good, e.g. over a limit, is never retried).
      try {
        if (S.rec && !S.stopped) {
          S.rec.add_dropped(1);
          S.rec.note(now(), NOTE_DROPPED, 0, 1, 'a batch was refused by the server: ' + String(m.error).slice(0, 300));
        }
      } catch (_) { /* wasm gone */ }
    }
  }
  settle();
  // Idle now (everything acknowledged): the moment to replace a worker that was handed a lot.
  if (!pending.size) renewWorker();
}

/**
 * Adds an encoded batch to the delivery queue.
 * @param {Bytes} bytes
 */
export function enqueue(bytes) {
  while (pending.size && pendingBytes + bytes.length > MAX_PENDING_BYTES) {
    // The oldest unsent batch goes; the server sees the gap in sequence numbers.
    const [oldId, old] = pending.entries().next().value;
    pending.delete(oldId);
    if (uploader) uploader.forget(oldId);
    pendingBytes -= old.bytes.length;
    droppedBatches++;
    // The server learns about the loss in the next batch (counted as one event per batch: the
    // exact number of events inside an encoded batch is not known here).
    if (S.rec) S.rec.add_dropped(1);
  }
  const id = nextId++;
  pending.set(id, { bytes });
  pendingBytes += bytes.length;
  if (!worker) {
    if (uploader) uploader.add(id, bytes);
    if (enqueued) enqueued();
    return;
  }
  // The freeze watchdog's marker, re-armed after this batch, rides in the batch's message.
  let posted = false;
  /** @param {Armed | null} armed */
  const post = (armed) => {
    if (posted) return;
    posted = true;
    postCopy('batch', id, bytes, false, armed);
  };
  if (enqueued) enqueued(post);
  post(null);
}

/**
 * Delivery figures, also the value `Replay.flush()` resolves with.
 * @returns {import('./types/replay').ReplayStats}
 */
export function stats() {
  const out = {
    acked,
    rejected,
    pending: pending.size,
    droppedBatches,
    restored,
    dropped: S.rec ? S.rec.dropped_total() : 0,
    worker: !!worker,
    renewals: S.renewals,
    workerRenewals,
    wasmMemory: S.rec ? memoryBytes() : 0,
    error: S.lastError,
    canvas: S.canvasStats ? S.canvasStats() : undefined,
    valve: valveStats(),
  };
  // `flush()` resolves to it: an `Object.prototype.then` the page added would make it a
  // thenable that never settles. An own `then` (hidden) shadows it.
  Object.defineProperty(out, 'then', bare({ value: undefined, enumerable: false }));
  return out;
}

function settle() {
  if (pending.size) return;
  try { sessionStorage.removeItem(UNSENT_KEY); } catch (_) { /* disabled */ }
  const w = waiters;
  waiters = [];
  for (const r of w) r(stats());
}

/** Resolves once everything queued so far is acknowledged (or refused for good). */
export function whenDrained() {
  return new Promise((resolve) => {
    waiters.push(resolve);
    if (worker) worker.postMessage({ type: 'retry-now' });
    settle();
    if (uploader) uploader.retryNow();
  });
}

// ---- the last chance: pagehide ----

function toBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function takeSaved() {
  try {
    const text = sessionStorage.getItem(UNSENT_KEY) || '';
    sessionStorage.removeItem(UNSENT_KEY);
    // (A JSON array: what a recorder before this one saved.)
    const saved = text.charCodeAt(0) === 91 ? JSON.parse(text) : text ? text.split(',') : [];
    return Array.isArray(saved) ? saved.map(fromBase64) : [];
  } catch (_) {
    return [];
  }
}

/**
 * Sends what is unacknowledged with keepalive (the browser finishes those requests after the
 * page is gone) and saves it for the next page of this tab.
 */
export function rescueUnsent() {
  let budget = KEEPALIVE_BUDGET;
  const saved = [];
  let savedChars = 0;
  for (const item of pending.values()) {
    if (item.bytes.length <= budget) {
      budget -= item.bytes.length;
      try {
        fetch(S.cfg.endpoint, {
          method: 'POST', body: item.bytes, keepalive: true, mode: 'cors', credentials: 'omit',
          headers: { 'content-type': 'application/msgpack', 'x-replay-key': S.cfg.key },
        }).catch(() => {});
      } catch (_) { /* over the browser's keepalive quota */ }
    }
    const text = toBase64(item.bytes);
    if (savedChars + text.length <= MAX_SAVED_CHARS) {
      saved.push(text);
      savedChars += text.length;
    } else {
      droppedBatches++;
    }
  }
  try {
    // Joined, not JSON: a page's `Array.prototype.toJSON` (Prototype.js 1.6) makes JSON of an
    // array a string (base64 has no comma).
    if (saved.length) sessionStorage.setItem(UNSENT_KEY, saved.join(','));
    else sessionStorage.removeItem(UNSENT_KEY);
  } catch (_) { /* storage full or disabled: keepalive was the last chance */ }
}
