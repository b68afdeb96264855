// Session replay recorder: the module the loader imports. It owns the page view's lifecycle
// (session id, start, periodic flush, stop) and the public API; capture lives in dom.js and
// events.js, delivery in transport.js, privacy rules in privacy.js.
//
// Division of labour: JavaScript touches the DOM; Rust (recorder_wasm) turns what it is handed
// into protocol events, buffers and encodes them. Every callback is guarded: the recorder never
// throws into the page.
import init, {
  __replay_instantiate as instantiate, __replay_memory_bytes as memoryBytes, __replay_switch as switchTo,
} from './recorder_wasm.js';
import { Recorder } from './ops.js';
import { S, now, guard, setTimer, clearTimer, setRepeat, clearRepeat, outsideZones } from './state.js';
import { configurePrivacy, scrubUrl } from './privacy.js';
import { ACTION_CUT_MS, OBSERVE, SLICE_MS, collect, dropWork, later, settle, takeSnapshot, work } from './dom.js';
import { patchDialogs, recordOpenDialogs } from './dialogs.js';
import { configureCanvas, patchCanvas, stopCanvas, walkedCanvas } from './canvas.js';
import { patchCssom, flushCss } from './css.js';
import {
  flushMouse, flushTyped, listen, listenToDocument, listenToUser, pruneFrameListeners, recordInput, recordMedia,
  removeListeners,
} from './events.js';
import {
  configureTransport, disarmWorker, enqueue, fetchSettings, postCopy, wasmSource, postToWorker, rescueUnsent, startTransport, stats, whenDrained,
  whenSessionRefused,
} from './transport.js';
import { appFact, captureError, flushDiagnostics, startDiagnostics, stopDiagnostics } from './diagnostics.js';
import { configureValve, timed, valveTick } from './valve.js';
import { frameMet, framedCrossOrigin, startChild, startFrames } from './frames.js';
import { patchFonts, recordEarlyFonts } from './fonts.js';

const SESSION_KEY = '__replay_session';
const IDLE_MS = 30 * 60 * 1000;
const MAX_BATCH_BYTES = 512 * 1024;
const MAX_BUFFER_BYTES = 16 * 1024 * 1024;
/**
 * Wasm memory only grows: past this much at a periodic cut, a flush or the end of a DOM pass,
 * the recorder moves to a fresh instance and the old one's memory is collected
 * (recorder/src/renew.rs). A fresh instance has 1.1 MB; a big page's re-render grows it to
 * several MB. 8 MB left ~7 MB held for good on the benchmark's products, 4 MB up to 4.2 MB.
 */
const RENEW_ABOVE_BYTES = 2 * 1024 * 1024;
/**
 * Least time between two renewals that DOM passes start: a long burst grows the memory again
 * after each move, and each move costs an instantiation. Ticks and flushes renew regardless.
 */
const RENEW_PASS_MS = 500;

let flushTimer = 0;
/** In a frame of another origin: records only what its parent asks for (frames.js). */
let child = false;
/** Settles once the automatic start (script tag with a key) has run. */
let starting = null;
/**
 * `stop()` came while nothing was recording (before the recorder loaded, or while an `init`
 * was still on its way: a page that queues `Replay.stop()` when its user refuses consent).
 * The automatic start does not start then, nor does an `init` that was already running; only
 * an `init()` the page calls after the stop does.
 */
let stopRequested = false;

function randomId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i] + 256).toString(16).slice(1);
  return s;
}

/** The tab's session id: kept in sessionStorage across reloads, new after 30 min idle. */
function sessionId() {
  let id = '';
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (saved && typeof saved.id === 'string' && now() - saved.last < IDLE_MS) id = saved.id;
  } catch (_) { /* storage disabled */ }
  id = id || randomId();
  touched = 0;
  touchSession(id);
  return id;
}

/** When the session's last activity was last saved: once per TOUCH_MS is plenty for IDLE_MS. */
let touched = 0;
const TOUCH_MS = 10000;

function touchSession(id) {
  const t = now();
  if (t - touched < TOUCH_MS) return;
  touched = t;
  try { sessionStorage.setItem(SESSION_KEY, JSON.stringify({ id, last: t })); } catch (_) { /* ignore */ }
}

// Buffer mode: batches are held in memory (the last `bufferSeconds` or so, from the latest
// periodic snapshot before that) and only sent when an error, a freeze or `Replay.flush()` asks.
// The upload worker keeps a copy, which it sends itself while the page is frozen.
let buffering = false;
/** A buffer-mode snapshot is being walked (see `tick`). */
let bufferSnapshot = false;
let held = [];
let heldBytes = 0;
let lastSnapshotAt = 0;
/**
 * Most bytes held (the worker's copy has the same bound): a long `bufferSeconds` on a busy page
 * drops the oldest batches, counted as lost in the next batch sent.
 */
const MAX_HELD_BYTES = 16 * 1024 * 1024;

function hold(bytes, startsWithSnapshot) {
  if (startsWithSnapshot) {
    // Keep from the previous snapshot on: the window always starts with a full snapshot.
    let keepFrom = 0;
    for (let i = held.length - 1; i >= 0; i--) if (held[i].snapshot) { keepFrom = i; break; }
    for (let i = 0; i < keepFrom; i++) heldBytes -= held[i].bytes.length;
    held = held.slice(keepFrom);
  }
  held.push({ bytes, snapshot: startsWithSnapshot });
  heldBytes += bytes.length;
  while (heldBytes > MAX_HELD_BYTES && held.length > 1) {
    heldBytes -= held.shift().bytes.length;
    if (S.rec) S.rec.add_dropped(1);
  }
  // The upload worker keeps a copy: if the page freezes, it sends the buffer itself.
  postCopy('hold', 0, bytes, startsWithSnapshot);
}

/** Leaves buffer mode: everything held goes out, and recording continues live. */
function goLive() {
  if (!buffering) return;
  buffering = false;
  postToWorker({ type: 'release' });
  for (const h of held) enqueue(h.bytes);
  held = [];
  heldBytes = 0;
}

let nextStartsWithSnapshot = true;

/**
 * Cuts the current batch and queues it. With `drain` true (a flush asked for, the page going
 * away), pending DOM work is finished first; with a number, it is worked on for at most that
 * many ms and the rest goes on in its slices; otherwise it all goes on in its slices.
 */
function flushNow(isFinal, drain) {
  if (!S.rec) return;
  timed(() => cut(isFinal, drain));
}

/** True while a final cut (pagehide, stop) settles pending work: no renewal starts then. */
let finalCut = false;

function cut(isFinal, drain) {
  flushTyped();
  if (drain === true) {
    finalCut = isFinal;
    try { settle(); } finally { finalCut = false; }
    flushDiagnostics();
  }
  else if (drain) work(drain);
  else if (S.observer) collect(S.observer.takeRecords());
  // The CSSOM changes noted so far go in this batch (a final one: they would be lost).
  flushCss();
  flushMouse();
  emit(S.rec.flush(now(), isFinal));
  touchSession(S.session);
  // Not on every cut of a burst (a full batch, a click): once per tick or flush is enough, and
  // each renewal costs an instantiation.
  if (!isFinal && (drain === undefined || drain === true)) renewIfGrown();
}

/** Sends (or, in buffer mode, holds) a cut batch. */
function emit(bytes) {
  if (!bytes) return;
  if (buffering) hold(bytes, nextStartsWithSnapshot);
  else enqueue(bytes);
  nextStartsWithSnapshot = false;
}

let renewing = false;
/** When the last renewal started (see RENEW_PASS_MS). */
let renewedAt = 0;

/**
 * When the wasm memory grew past RENEW_ABOVE_BYTES (a big snapshot or mutation batch), moves
 * the recorder to a fresh instance of the same compiled module, so that the old instance and
 * its memory can be collected. The new instance is made asynchronously; the move itself is one
 * synchronous step: cut what arrived meanwhile, save, free, switch, restore.
 */
function renewIfGrown() {
  if (renewing || S.stopped || memoryBytes() <= RENEW_ABOVE_BYTES) return;
  renewing = true;
  renewedAt = now();
  instantiate().then(guard((instance) => {
    renewing = false;
    if (!S.rec || S.stopped) return;
    emit(S.rec.flush(now(), false));
    const state = S.rec.save();
    S.rec.free();
    switchTo(instance);
    try {
      S.rec = Recorder.restore(state);
    } catch (e) {
      // Cannot happen with one build on both sides; stop cleanly rather than record half.
      S.rec = null;
      halt();
      throw e;
    }
    S.renewals++;
  }), () => { renewing = false; });
}

function tick() {
  valveTick();
  pruneFrameListeners();
  if (buffering && !bufferSnapshot && now() - lastSnapshotAt > S.cfg.bufferSeconds * 1000) {
    // The held window's next start: a full snapshot, walked in slices like the first one (in
    // one task it was a long task of the recorder's own on a big page, one per window). The
    // batch cut when it is done is the one the window may start from; what the user did during
    // its slices goes before it, in that batch or earlier ones.
    bufferSnapshot = true;
    lastSnapshotAt = now();
    takeSnapshot(lastSnapshotAt, recordInput, recordMedia, guard(() => {
      bufferSnapshot = false;
      if (!buffering || S.stopped) return;
      recordOpenDialogs(document);
      nextStartsWithSnapshot = true;
      flushNow(false, false);
    }));
  }
  flushNow(false);
}

/** The sampling decision, made once per session and kept with it. */
function sampled(session) {
  const rate = S.cfg.sampleRate;
  if (!(rate < 1)) return true;
  const key = '__replay_sampled';
  try {
    const saved = JSON.parse(sessionStorage.getItem(key) || 'null');
    if (saved && saved.id === session) return saved.sampled;
    const decision = Math.random() < rate;
    sessionStorage.setItem(key, JSON.stringify({ id: session, sampled: decision }));
    return decision;
  } catch (_) {
    return Math.random() < rate;
  }
}

function finalFlush() {
  flushNow(true, true);
  if (!buffering) rescueUnsent();
}

/**
 * A same-origin iframe document met by the walker: its input and CSSOM are recorded too. The
 * documents already listened to are forgotten at a stop (which takes the listeners away), so a
 * recording started again listens to them again.
 */
let framed = new WeakSet();
function onDocument(doc) {
  if (framed.has(doc)) return;
  framed.add(doc);
  patchCssom(doc.defaultView);
  patchDialogs(doc.defaultView);
  patchCanvas(doc.defaultView);
  listenToDocument(doc);
}

/** Starts recording; `recording` is called once the first snapshot is in (true then). */
function start(recording) {
  if (!S.stopped || child) return false;
  configurePrivacy(S.cfg);
  S.session = sessionId();
  if (!sampled(S.session)) return false;
  S.stopped = false;
  patchCssom(window);
  patchDialogs(window);
  configureCanvas(S.cfg);
  patchCanvas(window);
  S.onCanvas = guard(walkedCanvas);
  S.onDocument = guard(onDocument);
  S.onFrame = guard(frameMet);
  startFrames();
  buffering = S.cfg.mode === 'buffer';
  // A recording started again after a stop: the stopped one's wasm memory goes.
  if (S.rec) S.rec.free();
  S.rec = new Recorder(S.session, randomId(), MAX_BATCH_BYTES, MAX_BUFFER_BYTES);
  // PII detection (e-mails, card and phone numbers, IBANs) is on unless `pii: false`.
  const pii = S.cfg.pii;
  S.rec.set_pii(!(pii === false || pii === 'false' || pii === '0' || pii === 'off'));
  // Over its main-thread budget for long, the recorder stops itself (valve.js): a last cut
  // carries the note that says so.
  configureValve(S.cfg, () => {
    flushNow(true, false);
    halt();
  });
  S.observer = new MutationObserver(guard((records) => timed(() => collect(records))));
  // A full batch is encoded in a task of its own, before the next slice: not on top of the
  // slice (or the whole snapshot) that filled it, which would make one long task of the two.
  let cutDue = false;
  const cutFull = guard(() => {
    cutDue = false;
    if (!S.stopped && S.rec.should_flush()) flushNow(false, false);
  });
  S.afterEmit = (jobEnded) => {
    // The burst that grew the memory (a re-render, the snapshot) gives it back when its job
    // ends (not after each part of a long job, nor at a final cut), not at the next tick,
    // seconds later: the move cuts what is buffered then.
    if (jobEnded && !finalCut && !renewing && now() - renewedAt >= RENEW_PASS_MS) renewIfGrown();
    if (cutDue || !S.rec.should_flush()) return;
    cutDue = true;
    later(cutFull);
  };
  const t0 = now();
  lastSnapshotAt = t0;
  S.rec.meta(t0, scrubUrl(location.href), document.title, innerWidth, innerHeight, navigator.userAgent,
    scrubUrl(document.referrer));
  // Observing from before the walk: what the page changes between its slices is seen.
  S.observer.observe(document, OBSERVE);
  takeSnapshot(t0, recordInput, recordMedia, guard(() => {
    if (!S.stopped) recordingStarted();
    recording();
  }));
  return true;
}

/** The rest of `start`, once the snapshot is in. */
function recordingStarted() {
  recordOpenDialogs(document);
  recordEarlyFonts();
  listenToUser();
  const active = document.activeElement;
  if (active && active !== document.body && S.ids.has(active)) S.rec.focus(now(), S.ids.get(active), true);
  listen(window, 'pagehide', finalFlush);
  listen(document, 'visibilitychange', () => { if (document.visibilityState === 'hidden') finalFlush(); });
  if (buffering) {
    listen(window, 'error', goLive);
    listen(window, 'unhandledrejection', goLive);
  }
  flushTimer = setRepeat(guard(tick), S.cfg.flushIntervalMs || 5000);
  // The watchdog cuts on every click, submit and Enter (typing: every 2 s) and after a freeze.
  // A cut at the user's action works at most ACTION_CUT_MS of pending DOM work (it runs in the
  // page's own task, before its handler), the cut after a freeze at most one slice: never a big
  // burst, which would make the cut a long task of the recorder's own. The rest follows in its
  // slices.
  startDiagnostics((atAction) => flushNow(false, atAction ? ACTION_CUT_MS : SLICE_MS), goLive);
}

const SETTINGS_KEY = '__replay_settings';
const SETTINGS_TTL_MS = 5 * 60 * 1000;
const SETTINGS_WAIT_MS = 1500;

/**
 * The project's recorder settings kept by the server (`GET /api/v1/recorder/settings`), cached
 * in sessionStorage for 5 minutes so a page view after the first asks nothing; `null` when the
 * server does not answer in time (the tag's attributes and `init()` options then apply).
 */
async function remoteSettings(cfg) {
  if (!cfg.key || !cfg.endpoint || cfg.remoteSettings === false) return null;
  try {
    const saved = JSON.parse(sessionStorage.getItem(SETTINGS_KEY) || 'null');
    if (saved && saved.key === cfg.key && Date.now() - saved.at < SETTINGS_TTL_MS) return saved.settings;
  } catch (_) { /* storage disabled */ }
  try {
    const url = new URL('recorder/settings', cfg.endpoint);
    url.searchParams.set('key', cfg.key);
    const settings = await fetchSettings(url.href, SETTINGS_WAIT_MS);
    if (!settings || typeof settings !== 'object') return null;
    try {
      sessionStorage.setItem(SETTINGS_KEY, JSON.stringify({ key: cfg.key, at: Date.now(), settings }));
    } catch (_) { /* storage disabled */ }
    return settings;
  } catch (_) {
    return null;
  }
}

/**
 * The project's settings over the tag's: sampling and mode are the project's; privacy only
 * tightens (text is masked when either says so; bodies are captured for the URLs of both);
 * canvases are recorded when either says so (a canvas in a masked part never is).
 */
function withRemote(cfg, r) {
  if (!r || typeof r !== 'object') return cfg;
  const out = Object.assign(Object.create(null), cfg);
  const get = (k) => (Object.prototype.hasOwnProperty.call(r, k) ? r[k] : undefined);
  const rate = get('sample_rate');
  const mode = get('mode');
  const allow = get('network_allow_list');
  if (typeof rate === 'number') out.sampleRate = rate;
  if (mode === 'buffer' || mode === 'live') out.mode = mode;
  if (get('mask_all_text') === true) out.maskAllText = true;
  if (get('canvas') === true) out.canvas = true;
  if (Array.isArray(allow) && allow.length) {
    const own = Array.isArray(cfg.networkAllowList) ? cfg.networkAllowList : [];
    out.networkAllowList = own.concat(allow.filter((u) => typeof u === 'string'));
  }
  return out;
}

/**
 * `init`: the page's own call, or (`auto`) the start the script tag's key asks for, which a
 * `stop()` that came first cancels (see `stopRequested`).
 */
async function initialize(options, auto) {
  if (auto && stopRequested) return;
  if (!auto) stopRequested = false;
  // (Options without a prototype: what a polluted `Object.prototype` holds is never an option.)
  S.cfg = Object.assign(Object.create(null), S.cfg, options || {});
  if (!S.cfg.key) throw new Error('replay: an ingest key is required');
  // The key (or endpoint) may arrive only now (`Replay.init({ key })`, the module entry).
  configureTransport();
  S.cfg = withRemote(S.cfg, await remoteSettings(S.cfg));
  if (document.readyState === 'loading') {
    await new Promise((r) => document.addEventListener('DOMContentLoaded', r, { once: true }));
  }
  // A `stop()` while the settings or the document were awaited: nothing starts.
  if (stopRequested) return;
  // Resolves once the first snapshot is in (taken in slices). Outside the app's zone (Zone.js):
  // what start() sets up calls back there (state.js `outsideZones`).
  await new Promise((r) => { outsideZones(() => { if (guard(start)(r) !== true) r(undefined); }); });
}

const api = {
  async init(options) {
    // Its awaits (the settings, the document, the snapshot) in the root zone (Zone.js): only the
    // app's own wait for this call is in the app's zone.
    return outsideZones(() => initialize(options, false));
  },
  async identify(user, traits) { guard(appFact)('identify', user, traits); },
  async setFlags(flags) { guard(appFact)('flags', flags); },
  async setRelease(release) { guard(appFact)('release', release); },
  async setEnvironment(environment) { guard(appFact)('environment', environment); },
  async addEvent(name, data) {
    guard(() => {
      if (!S.rec || S.stopped) return;
      if (S.beforeText) S.beforeText();
      S.rec.custom(now(), String(name), JSON.stringify(data === undefined ? null : data));
    })();
  },
  async captureError(err) { guard(captureError)(err); },
  async flush() {
    await starting;
    // Stopped (by the app, or because the server refuses the session): nothing new to send.
    if (S.stopped) return whenDrained();
    guard(() => {
      flushNow(false, true);
      goLive();
    })();
    return whenDrained();
  },
  async stop() {
    stopRequested = true;
    if (S.stopped) return;
    guard(() => flushNow(true, true))();
    halt();
  },
  async sessionUrl() {
    await starting;
    // A session id means something only inside its project; the page knows its project by its
    // (public) ingest key, which the server turns into the project's player.
    const q = 'key=' + encodeURIComponent(S.cfg.key) + '&session=' + encodeURIComponent(S.session);
    return new URL('viewer/open?' + q, S.cfg.base).href;
  },
  stats,
};
// Without a prototype: the promises that resolve to it (the loader's, `boot`'s) would take a
// `then` a page put on `Object.prototype` for its own and never resolve.
Object.setPrototypeOf(api, null);

/** Stops observing and recording (what `stop` does after its last flush). */
function halt() {
  S.stopped = true;
  disarmWorker();
  dropWork();
  stopCanvas();
  if (S.observer) S.observer.disconnect();
  clearRepeat(flushTimer);
  stopDiagnostics();
  removeListeners();
  framed = new WeakSet();
  held = [];
  heldBytes = 0;
  bufferSnapshot = false;
}

/**
 * Called by the loader: loads the wasm and starts when the script tag carries a key (outside the
 * app's zone, if the page has Zone.js: the loader may run from the app's code, as `index.js`).
 * @param {string} src
 * @param {Record<string, string>} data
 */
export function boot(src, data) {
  return outsideZones(() => bootHere(src, data));
}

/**
 * @param {string} src
 * @param {Record<string, string>} data
 */
async function bootHere(src, data) {
  const base = new URL('./', src).href;
  S.cfg = Object.assign(Object.create(null), {
    ...data,
    base,
    key: data.key || '',
    endpoint: data.endpoint || new URL('api/v1/ingest', base).href,
    flushIntervalMs: Number(data['flush-interval']) || 5000,
    sampleRate: data['sample-rate'] === undefined ? 1 : Number(data['sample-rate']),
    mode: data.mode === 'buffer' ? 'buffer' : 'live',
    bufferSeconds: Number(data['buffer-seconds']) || 60,
    remoteSettings: data['remote-settings'] !== 'false',
    canvasFps: data['canvas-fps'] === undefined ? undefined : Number(data['canvas-fps']),
    canvasBudget: data['canvas-budget'] === undefined ? undefined : Number(data['canvas-budget']),
    cpuBudget: data['cpu-budget'] === undefined ? undefined : Number(data['cpu-budget']),
    cpuBudgetWindow: data['cpu-budget-window'] === undefined ? undefined : Number(data['cpu-budget-window']),
  });
  // FontFace sources are known only for faces made after this (fonts.js).
  guard(patchFonts)(window);
  if (framedCrossOrigin()) {
    // A child frame: no session of its own, no upload; its parent's recorder may ask it.
    child = true;
    startChild();
    return api;
  }
  // The upload worker starts first: it fetches the wasm (not the page's `fetch`, transport.js).
  await init({ module_or_path: await wasmSource(new URL('./recorder_wasm_bg.wasm', import.meta.url)) });
  await startTransport();
  // The server refuses this session for good (full, or the key or origin refused): recording
  // on would only send batches to be refused.
  whenSessionRefused((reason) => {
    if (S.stopped) return;
    S.lastError = 'recording stopped: the server refuses this session (' + reason + ')';
    halt();
  });
  // Start on the next task: an `init(options)` the page queued before the recorder loaded runs
  // first, so its privacy options apply to the very first snapshot.
  if (S.cfg.key) starting = new Promise((r) => setTimer(() => { initialize({}, true).then(r, r); }, 0));
  return api;
}

export { api };
