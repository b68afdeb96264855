// Canvas frames (opt-in): the pixels of `<canvas>` elements, recorded as encoded images when
// they change, at a bounded rate, within a byte budget per session.
//
// Which canvases: every one when the project (remote settings) or the tag/`init` says
// `canvas: true`, or only those marked `data-replay-canvas`; `data-replay-canvas="false"` opts
// one out. Never a canvas the walker met inside a masked or blocked subtree (blocked ones are
// never walked), nor one under `[data-replay-mask]`/`[data-replay-block]` when captured, nor,
// with mask-all-text, one not marked itself (charts draw their labels as pixels).
//
// When: the drawing methods of the 2D and WebGL contexts are wrapped (the page's call runs first
// and keeps its result and exceptions). The first draw call on a canvas that is due (its last
// frame is older than 1/fps) queues a capture in a microtask, i.e. right after the page's task
// or animation-frame callback that drew, in the same frame: a WebGL canvas without
// `preserveDrawingBuffer` is only readable then. Later draws in the same interval are captured
// by a timer at the next due time (2D canvases and preserved WebGL ones; an unpreserved WebGL
// canvas waits for its next draw, so the last frame of an animation that stops within an
// interval of its previous capture is missed). A canvas the walker meets is captured when it has
// no frame under its node id yet (first met, or moved), unless it reads blank then (WebGL).
//
// How: `createImageBitmap(canvas)` copies the pixels (the main thread's only real cost), the
// bitmap is transferred to the upload worker, which draws it into an `OffscreenCanvas`, encodes
// it (`convertToBlob`, WebP where the browser writes it, else PNG) and drops a frame equal to
// the previous one of that canvas (a hash of the bytes, off the main thread); without a worker (or OffscreenCanvas in it) `canvas.toBlob`
// encodes instead. At most two frames are encoded at once; a capture beyond that waits for the
// next due time. Frames larger than MAX_FRAME_BYTES, and every frame once the session's budget
// is spent, are dropped, counted (`canvas` in the stats `Replay.flush()` resolves with, and the
// batch's `dropped`) and noted (a `Note` of kind dropped on the canvas, at most every
// NOTE_EVERY_MS), so the viewer says so.
import { S, now, countError, likeOriginal, setTimer, clearTimer, bare } from './state.js';
import { postToWorker, onCanvasEncoded } from './transport.js';

const DEFAULT_FPS = 2;
const MAX_FPS = 10;
const DEFAULT_BUDGET = 8 * 1024 * 1024;
const MAX_FRAME_BYTES = 384 * 1024;
/** Larger canvases are scaled down to this many pixels before encoding. */
const MAX_PIXELS = 1920 * 1080;
const MAX_IN_FLIGHT = 2;
const NOTE_EVERY_MS = 5000;
const QUALITY = 0.8;
const BUDGET_KEY = '__replay_canvas';

const MARK = Symbol('replay.canvas');
const METHODS_2D = ['fill', 'stroke', 'fillRect', 'strokeRect', 'clearRect', 'fillText', 'strokeText', 'drawImage',
  'putImageData', 'reset'];
const METHODS_GL = ['clear', 'drawArrays', 'drawElements', 'drawArraysInstanced', 'drawElementsInstanced',
  'drawRangeElements'];

const C = {
  on: false,
  all: false,
  maskAll: false,
  interval: 1000 / DEFAULT_FPS,
  budget: DEFAULT_BUDGET,
  used: 0,
  inFlight: 0,
  seq: 0,
  /** Contexts drawn on since their canvas's last capture (cleared by `round`). */
  marked: new Set(),
  roundTimer: 0,
  /** Frames sent, their bytes, frames dropped, main-thread ms spent capturing and handing over. */
  frames: 0,
  bytes: 0,
  dropped: 0,
  mainMs: 0,
  unnoted: 0,
  notedAt: 0,
};

/** Per canvas: last capture time, the walker's mask flag, the context seen drawing. */
const state = new WeakMap();
/** Captures waiting for the worker, by sequence number. */
const waiting = new Map();
const patched = new WeakSet();

const truthy = (v) => v === true || v === '' || v === 'true' || v === '1';

function info(canvas) {
  let st = state.get(canvas);
  if (!st) {
    st = { last: 0, masked: false, ctx: null, micro: false, hash: '', id: 0 };
    state.set(canvas, st);
  }
  return st;
}

/** Reads the options (after the project's settings were merged into `cfg`). */
export function configureCanvas(cfg) {
  const fps = Number(cfg.canvasFps);
  C.interval = 1000 / (fps > 0 ? Math.min(fps, MAX_FPS) : DEFAULT_FPS);
  const budget = Number(cfg.canvasBudget);
  C.budget = budget >= 0 && cfg.canvasBudget !== undefined && cfg.canvasBudget !== '' ? budget : DEFAULT_BUDGET;
  C.all = truthy(cfg.canvas);
  C.maskAll = truthy(cfg.maskAllText);
  C.on = true;
  S.canvasStats = canvasStats;
  try {
    const saved = JSON.parse(sessionStorage.getItem(BUDGET_KEY) || 'null');
    C.used = saved && saved.id === S.session && saved.used > 0 ? saved.used : 0;
  } catch (_) { C.used = 0; }
  onCanvasEncoded(encoded);
}

/** Stops capturing (the recorder stopped). */
export function stopCanvas() {
  C.on = false;
  clearTimer(C.roundTimer);
  C.roundTimer = 0;
  C.marked.clear();
  waiting.clear();
}

/** Figures for the stats `Replay.flush()` resolves with. */
function canvasStats() {
  return { frames: C.frames, bytes: C.bytes, dropped: C.dropped, mainMs: Math.round(C.mainMs * 100) / 100 };
}

/**
 * The walker met `canvas` (`masked`: inside a masked subtree). A wanted one is captured when it
 * has no frame under its current id (first met, or moved: a new node in the replay), unless it
 * is a WebGL canvas known to read blank outside its frame.
 */
export function walkedCanvas(canvas, masked) {
  const st = info(canvas);
  st.masked = masked;
  if (!C.on || st.id === S.ids.get(canvas) || unpreserved(st.ctx) || !wanted(canvas, st)) return;
  st.last = 0;
  queueMicrotask(() => capture(canvas, st));
}

/** Whether `canvas` may be recorded now. */
function wanted(canvas, st) {
  if (!C.on || S.stopped || st.masked || !canvas.isConnected || S.blocked.has(canvas)) return false;
  const own = canvas.getAttribute('data-replay-canvas');
  if (own === 'false') return false;
  if (own === null && (!C.all || C.maskAll)) return false;
  if (!S.ids.has(canvas)) return false;
  for (let el = canvas, guard = 0; el && guard < 1000; guard++) {
    if (el.closest('[data-replay-mask],[data-replay-block]')) return false;
    const root = el.getRootNode();
    el = root && root.host;
  }
  return true;
}

/** A drawing method ran on `ctx` (a 2D or WebGL context). */
function touched(ctx) {
  ctx[MARK] = true;
  const canvas = ctx.canvas;
  if (!C.on || !canvas || canvas.nodeType !== 1) return;
  const st = info(canvas);
  st.ctx = ctx;
  C.marked.add(ctx);
  if (!st.micro && now() - st.last >= C.interval) {
    st.micro = true;
    queueMicrotask(() => {
      st.micro = false;
      ctx[MARK] = false;
      C.marked.delete(ctx);
      capture(canvas, st);
    });
  } else if (!C.roundTimer) {
    C.roundTimer = setTimer(round, Math.max(0, st.last + C.interval - now()));
  }
}

/** True for a WebGL context whose drawing buffer is cleared once presented. */
function unpreserved(ctx) {
  if (!ctx || typeof ctx.getContextAttributes !== 'function' || !('drawArrays' in ctx)) return false;
  const a = ctx.getContextAttributes();
  return !a || !a.preserveDrawingBuffer;
}

/** Captures the canvases drawn on since their last capture that are due. */
function round() {
  C.roundTimer = 0;
  if (!C.on) return;
  try {
    let next = Infinity;
    const t = now();
    for (const ctx of C.marked) {
      const canvas = ctx.canvas;
      const st = canvas && state.get(canvas);
      const wait = st ? st.last + C.interval - t : 0;
      if (st && wait > 0) { next = Math.min(next, wait); continue; }
      C.marked.delete(ctx);
      ctx[MARK] = false;
      // A presented WebGL buffer reads blank: its next draw captures it.
      if (st && !unpreserved(ctx)) capture(canvas, st);
    }
    if (next < Infinity) C.roundTimer = setTimer(round, next);
  } catch (_) { countError(); }
}

/** Takes the pixels of `canvas` now and hands them to be encoded. */
function capture(canvas, st) {
  const t0 = performance.now();
  try {
    if (!wanted(canvas, st)) {
      // Not recorded: looked at again after an interval at the earliest.
      st.last = now();
      return;
    }
    let w = canvas.width;
    let h = canvas.height;
    if (!w || !h) return;
    if (C.used >= C.budget) {
      st.last = now();
      drop(canvas, 'canvas frames over the session byte budget');
      return;
    }
    if (C.inFlight >= MAX_IN_FLIGHT) {
      if (!C.roundTimer) C.roundTimer = setTimer(round, C.interval);
      if (st.ctx) C.marked.add(st.ctx);
      return;
    }
    st.last = now();
    const t = st.last;
    if (w * h > MAX_PIXELS) {
      const k = Math.sqrt(MAX_PIXELS / (w * h));
      w = Math.max(1, Math.floor(w * k));
      h = Math.max(1, Math.floor(h * k));
    }
    const seq = ++C.seq;
    C.inFlight++;
    const job = { canvas, t, w, h };
    waiting.set(seq, job);
    const viaWorker = typeof createImageBitmap === 'function' && typeof OffscreenCanvas === 'function';
    if (viaWorker) {
      const resize = w !== canvas.width || h !== canvas.height ? { resizeWidth: w, resizeHeight: h } : undefined;
      createImageBitmap(canvas, resize).then((bitmap) => {
        const key = S.ids.get(canvas) || 0;
        if (!waiting.has(seq) || !postToWorker({ type: 'canvas', seq, key, bitmap, quality: QUALITY }, [bitmap])) {
          bitmap.close();
          if (waiting.has(seq)) fallback(seq, job);
        }
      }, () => finish(seq));
    } else {
      fallback(seq, job);
    }
  } catch (_) {
    countError();
  } finally {
    C.mainMs += performance.now() - t0;
  }
}

/** Encodes on the browser's own encoder thread through `toBlob` (no worker, no OffscreenCanvas). */
function fallback(seq, job) {
  try {
    job.canvas.toBlob((blob) => {
      if (!blob || !waiting.has(seq)) { finish(seq); return; }
      blob.arrayBuffer().then((buf) => encoded({ type: 'canvas', seq, mime: blob.type, bytes: buf, fallback: true }),
        () => finish(seq));
    }, 'image/webp', QUALITY);
  } catch (_) {
    // A tainted canvas (cross-origin images drawn into it) cannot be read: nothing to record.
    finish(seq);
  }
}

function finish(seq) {
  if (waiting.delete(seq)) C.inFlight = Math.max(0, C.inFlight - 1);
}

/**
 * The worker's (or `toBlob`'s) answer: `bytes` of type `mime`, or `same` (equal to the last
 * frame of that canvas), or `failed` (no OffscreenCanvas there: encode here instead).
 */
function encoded(m) {
  const job = waiting.get(m.seq);
  if (!job) return;
  if (m.failed) {
    fallback(m.seq, job);
    return;
  }
  finish(m.seq);
  if (!C.on || S.stopped || m.same || !m.bytes) return;
  const t0 = performance.now();
  try {
    const canvas = job.canvas;
    const id = S.ids.get(canvas);
    if (id === undefined || !canvas.isConnected) return;
    const bytes = new Uint8Array(m.bytes);
    if (bytes.length > MAX_FRAME_BYTES) {
      drop(canvas, 'canvas frame larger than ' + MAX_FRAME_BYTES + ' bytes');
      return;
    }
    if (C.used + bytes.length > C.budget) {
      C.used = C.budget;
      drop(canvas, 'canvas frames over the session byte budget');
      return;
    }
    if (m.fallback && sameAsLast(job.canvas, bytes)) return;
    C.used += bytes.length;
    C.frames++;
    C.bytes += bytes.length;
    S.rec.canvas(job.t, id, String(m.mime || 'image/png'), bytes, job.w, job.h);
    info(canvas).id = id;
    try {
      sessionStorage.setItem(BUDGET_KEY, JSON.stringify({ id: S.session, used: C.used }));
    } catch (_) { /* storage disabled */ }
    if (S.afterEmit) S.afterEmit();
  } catch (_) {
    countError();
  } finally {
    C.mainMs += performance.now() - t0;
  }
}

/** Equal to the last frame of `canvas` (the fallback path has no worker to tell). */
function sameAsLast(canvas, bytes) {
  const st = info(canvas);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 16777619);
  const key = bytes.length + ':' + h;
  if (st.hash === key) return true;
  st.hash = key;
  return false;
}

/** Counts a dropped frame and notes it (at once the first time, then at most every 5 s). */
function drop(canvas, why) {
  C.dropped++;
  C.unnoted++;
  const t = now();
  if (C.notedAt && t - C.notedAt < NOTE_EVERY_MS) return;
  C.notedAt = t;
  S.rec.note(t, 1, S.ids.get(canvas) || 0, C.unnoted, why);
  C.unnoted = 0;
}

function wrap(proto, name) {
  const orig = proto && proto[name];
  if (typeof orig !== 'function') return;
  const wrapped = function () {
    const result = orig.apply(this, arguments);
    if (this[MARK] !== true) {
      try { touched(this); } catch (_) { countError(); }
    }
    return result;
  };
  likeOriginal(wrapped, orig);
  try {
    Object.defineProperty(proto, name, bare({ value: wrapped, writable: true, configurable: true, enumerable: false }));
  } catch (_) { /* frozen prototype: this canvas kind is captured only when walked */ }
}

/** Wraps the drawing methods of a window's (the page's, each same-origin iframe's) contexts once. */
export function patchCanvas(win) {
  if (!win || patched.has(win)) return;
  patched.add(win);
  try {
    const c2d = win.CanvasRenderingContext2D;
    if (c2d) for (const m of METHODS_2D) wrap(c2d.prototype, m);
    for (const gl of [win.WebGLRenderingContext, win.WebGL2RenderingContext]) {
      if (gl) for (const m of METHODS_GL) wrap(gl.prototype, m);
    }
  } catch (_) { countError(); }
}
