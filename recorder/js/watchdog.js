// Freeze watchdog, page side. Every ~250 ms the main thread posts a heartbeat to the upload
// worker, which holds a marker batch (`freeze_started`: the URL and the user's last action),
// encoded ahead of time by wasm because the worker cannot encode and a frozen page cannot do
// anything. The worker sends the marker when heartbeats stop for 1 s (upload-worker.js).
//
// A heartbeat carries a new marker only when what it says changed (the action, the URL, its
// sequence number after a cut) or the worker may not hold the last one (after a freeze, a
// visibility change, a new worker): otherwise the marker is moved to the heartbeat's time in
// place, in wasm and in the worker (its times are at a fixed place: protocol's
// `set_batch_times`), and the heartbeat carries only that time. Encoding and posting a marker
// on every beat was most of what the recorder cost an idle page. The marker re-armed after a
// batch is cut rides in that batch's message.
//
// Sequence numbers: the marker carries the number after the batch being filled, without taking
// it. The first heartbeat or batch cut after a gap reserves it (recorder/src/buffer.rs), the
// page cuts the batch of what happened before the freeze and sends the marker as well: the
// server stores it once, whoever was first. When the page answers again it
// records `freeze_ended` with the duration and the scripts that ran (perf.js).
import { S, now, guard, setTimer, setRepeat, clearRepeat } from './state.js';
import { scrubUrl } from './privacy.js';
import { enqueue, onEnqueued, onFired, postToWorker } from './transport.js';
import { freezeAttribution, sampleFreeze } from './perf.js';

const BEAT_MS = 250;
/** Time for the Long Animation Frame entries of a freeze to be delivered after it ends. */
const SETTLE_MS = 150;
const MAX_ACTION_CHARS = 120;
const CUT_TYPING_MS = 2000;

let freezeHook = null;
let timer = 0;
let lastBeat = 0;
let visible = false;
let lastAction = '';
let rearming = false;
/** The next heartbeat hands the worker a new marker (see the module doc). */
let armNext = true;
const cleanups = [];

/** The last element described (weakly: it may be removed from the page), its id and class. */
/** @type {WeakRef<Element> | null} */
let described = null;
let describedKey = '';
let description = '';

/** A short, content-free description of an element: `button#best.primary`. */
function describeElement(el) {
  if (!el || el.nodeType !== 1) return '';
  // The same field again (every keystroke): the last description, unless its id or class changed.
  const key = el.id + ' ' + (typeof el.className === 'string' ? el.className : '');
  if (described && described.deref() === el && key === describedKey) return description;
  described = typeof WeakRef === 'function' ? new WeakRef(el) : null;
  describedKey = key;
  description = describeFresh(el);
  return description;
}

function describeFresh(el) {
  let s = el.localName;
  if (el.id) s += '#' + el.id;
  const cls = typeof el.className === 'string' ? el.className.trim().split(/\s+/).slice(0, 2) : [];
  for (const c of cls) if (c) s += '.' + c;
  return s.slice(0, MAX_ACTION_CHARS);
}

let cut = null;
let lastCut = 0;
/** The action named by the marker the worker holds (`null`: none since the last change). */
let armedAction = null;
let href = '';
let scrubbedHref = '';

/** The page's URL as the recording keeps it (scrubbed once per change of the address). */
function pageUrl() {
  if (location.href !== href) {
    href = location.href;
    scrubbedHref = scrubUrl(href);
  }
  return scrubbedHref;
}

function onAction(e) {
  const target = e.target && e.target.nodeType === 1 ? e.target : null;
  const what = describeElement(target);
  if (e.type !== 'keydown') lastAction = (e.type + ' ' + what).trim();
  else lastAction = (e.key === 'Enter' ? 'Enter in ' : 'typing in ') + what;
  // The page's own handler runs next and may be the one that freezes for good: what happened
  // up to this action goes to the worker now (typing at most every 2 s), and the worker's
  // marker names this action.
  // A marker already naming this action (typing on in the same field, a second click on the
  // same button) is not encoded again: the heartbeat renews its time every BEAT_MS anyway, and
  // one per keystroke was most of the recorder's cost on a form.
  const t = now();
  if (cut && (e.type === 'click' || e.type === 'submit' || e.key === 'Enter' || t - lastCut > CUT_TYPING_MS)) {
    lastCut = t;
    cut(true);
  }
  if (lastAction !== armedAction) rearm();
}

function sendTakenMarker() {
  const taken = S.rec.take_freeze_marker();
  if (taken) enqueue(taken);
}

/**
 * Hands the worker a marker numbered after the batch just queued: through `post`, in that
 * batch's own message (transport.js `enqueue`: one message per cut, not two), or in a message
 * of its own when no batch was queued (the user's action changed). The marker a freeze took
 * goes after it.
 * @param {(armed: import('./transport.js').Armed | null) => void} [post]
 */
function rearm(post) {
  if (rearming || !S.rec || S.stopped) return;
  rearming = true;
  try {
    if (visible) {
      const armed = { marker: S.rec.freeze_marker(now(), pageUrl(), lastAction), at: S.rec.freeze_marker_times_at() };
      if (post) post(armed);
      else postToWorker({ type: 'marker', ...armed });
      armedAction = lastAction;
      // A worker that already fired keeps its marker (and ignores this one): the next
      // heartbeat hands it the new one.
      armNext = true;
    }
    sendTakenMarker();
  } finally {
    rearming = false;
  }
}

function recordEnd(from, to) {
  if (!S.rec || S.stopped) return;
  const { duration, texts, nums } = freezeAttribution(from, to);
  S.rec.freeze_ended(to, duration, texts, new Int32Array(nums));
}

function beat() {
  if (!S.rec || S.stopped) return;
  const t = now();
  const vis = document.visibilityState === 'visible';
  if (vis !== visible) {
    visible = vis;
    armNext = true;
    S.rec.watch(t, vis);
  } else if (S.rec.beat(t)) {
    armNext = true;
    const from = lastBeat;
    if (cut) cut(false);
    if (freezeHook) freezeHook();
    sendTakenMarker();
    const settled = new Promise((resolve) => setTimer(resolve, SETTLE_MS));
    Promise.all([sampleFreeze(from, t), settled]).then(guard(() => recordEnd(from, t)), guard(() => recordEnd(from, t)));
  }
  lastBeat = t;
  let marker = null;
  let at = -1;
  let time = 0;
  // (The URL as the marker has it was read when it was armed: `href`. Compared on every beat,
  // not only on the navigations events.js sees: a router may change it through a History
  // method it kept from before the recorder wrapped them.)
  if (vis && !armNext && lastAction === armedAction && location.href === href) {
    time = S.rec.move_freeze_marker(t);
  }
  if (vis && !time) {
    marker = S.rec.freeze_marker(t, pageUrl(), lastAction);
    if (marker) {
      armedAction = lastAction;
      at = S.rec.freeze_marker_times_at();
      armNext = false;
    }
  }
  postToWorker(time ? { type: 'heartbeat', visible: vis, time } : { type: 'heartbeat', visible: vis, marker, at });
}

/**
 * Starts the heartbeat (only with an upload worker); `cutBatch(atAction)` cuts and queues the
 * current batch (`atAction`: in the task of the user's action, before the page's handler runs),
 * `onFreeze` runs when the page answers again after a freeze (buffer mode sends its buffer then;
 * while the page is frozen, the worker sends its copy).
 */
export function startWatchdog(cutBatch, onFreeze) {
  if (S.cfg.watchdog === false) return;
  cut = cutBatch;
  armedAction = null;
  armNext = true;
  // A recorder started again (`stop()`, then `init()`) has a new wasm Recorder, which must be
  // told the page is visible (`watch`) before its heartbeats can see a freeze.
  visible = false;
  lastBeat = 0;
  freezeHook = onFreeze || null;
  if (!postToWorker({ type: 'heartbeat', visible: false, marker: null })) return;
  for (const type of ['click', 'submit', 'keydown']) {
    const fn = guard(onAction);
    document.addEventListener(type, fn, { capture: true, passive: true });
    cleanups.push(() => document.removeEventListener(type, fn, { capture: true }));
  }
  const onVisibility = guard(beat);
  document.addEventListener('visibilitychange', onVisibility);
  cleanups.push(() => document.removeEventListener('visibilitychange', onVisibility));
  onEnqueued(guard(rearm));
  // The worker sent its marker (the page was frozen): the next heartbeat hands it a new one.
  onFired(() => { armNext = true; });
  timer = setRepeat(guard(beat), BEAT_MS);
  guard(beat)();
}

export function stopWatchdog() {
  clearRepeat(timer);
  onEnqueued(null);
  onFired(null);
  for (const c of cleanups.splice(0)) c();
  postToWorker({ type: 'heartbeat', visible: false, marker: null });
}
