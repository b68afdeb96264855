// Cross-origin frames: a child frame's recorder joins its parent's recording over postMessage.
//
// Parent (the page recording a session): each cross-origin <iframe> the walker meets is
// recorded as a placeholder (`Recorder.frame`: its URL and size) and pinged. A recorder running
// in that frame answers with a hello; the parent answers it with a request to record, an id
// range of its own (so that the child's node ids can never be the parent's or another frame's)
// and the parent's privacy options. The child then walks its document and relays its snapshot,
// mutations, input, scrolls and the values typed in it (for echo masking); the parent checks
// each message (the sender is the frame's window, from the frame's origin, of bounded size; in
// wasm, every node id within the child's
// range: recorder/src/frames.rs) and records it as part of its own page: the child's document
// under the iframe element. The child leaving (navigation, unload) removes its document again,
// and the placeholder shows. What is refused is counted and noted, never trusted.
//
// Both sides name their project's ingest key (public anyway) and each refuses the other's if
// it differs: a frame of another project never joins this one's sessions.
//
// Child (a recorder whose page is framed by another origin): it records nothing of its own. It
// says hello to its parent's origin (from `location.ancestorOrigins`, or the referrer) and
// relays only once that parent asks, only to that origin, only while the request's id range
// lasts (then it asks again and starts over with a fresh walk).
import { S, now, guard, setTimer, clearTimer } from './state.js';
import { OBSERVE, collect, dropWork, takeSnapshot } from './dom.js';
import { configurePrivacy, scrubUrl } from './privacy.js';
import { flushTyped, listen, listenToDocument, recordInput, recordMedia } from './events.js';

/** Marks our messages among the page's own. */
const TAG = '__replay_frame';
/** Cross-origin frames the parent takes part with; more are shown as placeholders only. */
const MAX_FRAMES = 32;
/** Child id ranges: from 2^31 up, 2^22 ids each, at most 512 of them per page view. */
const RANGE_BASE = 0x80000000;
const RANGE_SIZE = 1 << 22;
const MAX_RANGES = 512;
/** Largest relayed tape (integers, UTF-16 units) and input value accepted. */
const MAX_INTS = 1 << 22;
const MAX_CHARS = 16 << 20;
const MAX_VALUE = 1 << 16;
/** Hellos a frame may send in a page view (each one costs a range and a walk). */
const MAX_HELLOS = 64;
/** A child asked to record must send its document within this time. */
const ANSWER_MS = 10000;
const NOTE_DROPPED = 1;
const PRIVACY_KEYS = ['maskAllText', 'mask-all-text', 'mask', 'block', 'ignore', 'unmask'];

// ---- the parent ----

/** iframe element → { id, origin, nonce, lo, hi, doc, hellos, timer }. */
const frames = new Map();
let ranges = 0;
let refused = 0;
/** @type {string[]} */
let refusedWhy = [];
let noteTimer = 0;

/** Distinct reasons named in one note (the count covers every refusal). */
const MAX_REASONS = 4;

/** Counts a refused message; noted at most once a second with the count and its reasons. */
function refuse(why) {
  refused++;
  if (refusedWhy.length < MAX_REASONS && refusedWhy.indexOf(why) < 0) refusedWhy.push(why);
  if (noteTimer) return;
  noteTimer = setTimer(guard(() => {
    noteTimer = 0;
    if (!refused || !S.rec || S.stopped) return;
    S.rec.note(now(), NOTE_DROPPED, 0, refused, refused + ' frame messages refused (' + refusedWhy.join('; ') + ')');
    refused = 0;
    refusedWhy = [];
  }), 1000);
}

function originOf(el) {
  try {
    const u = new URL(el.src, document.baseURI);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : '';
  } catch (_) {
    return '';
  }
}

/** Starts listening to child frames (the recorder started). */
export function startFrames() {
  listen(window, 'message', onMessage);
}

/**
 * A frame element whose document the walker could not read (cross-origin), walked as node `id`,
 * or loaded again: recorded as a placeholder, and its recorder (if any) asked to say hello.
 */
export function frameMet(el, id) {
  if (S.stopped || !S.rec || S.blocked.has(el)) return;
  const origin = originOf(el);
  if (!origin || origin === location.origin) return;
  let w = 0;
  let h = 0;
  try {
    const r = el.getBoundingClientRect();
    w = Math.round(r.width);
    h = Math.round(r.height);
  } catch (_) { /* detached */ }
  S.rec.frame(now(), id, scrubUrl(el.src), w, h);
  for (const [f, st] of frames) if (!f.isConnected) { clearTimer(st.timer); frames.delete(f); }
  let st = frames.get(el);
  if (!st) {
    if (frames.size >= MAX_FRAMES) return;
    st = { id, origin, nonce: '', lo: 0, hi: 0, doc: 0, hellos: 0, timer: 0 };
    frames.set(el, st);
  }
  if (st.id !== id || st.origin !== origin) {
    // Walked again (moved) or pointed elsewhere: its recorded document went with the old node.
    st.id = id;
    st.origin = origin;
    st.nonce = '';
    st.doc = 0;
  }
  post(el.contentWindow, { type: 'ping' }, origin);
}

function post(win, msg, origin, transfer) {
  msg[TAG] = 1;
  try { if (win) win.postMessage(msg, origin, transfer || []); } catch (_) { /* gone */ }
}

function frameOf(source) {
  if (!source) return null;
  for (const [el, st] of frames) if (el.contentWindow === source && el.isConnected) return st;
  return null;
}

const okTape = (d) => d.ints instanceof Uint32Array && d.ints.length <= MAX_INTS && typeof d.strs === 'string'
  && d.strs.length <= MAX_CHARS;

function onMessage(e) {
  const d = e.data;
  if (!d || typeof d !== 'object' || d[TAG] !== 1 || S.stopped || !S.rec) return;
  const found = frameOf(e.source);
  // A hello may come before the walk reached its frame (which then pings it): not counted.
  if (!found) return d.type === 'hello' ? undefined : refuse('not from a recorded frame');
  const st = found;
  if (e.origin !== st.origin) return refuse('wrong origin ' + String(e.origin).slice(0, 100));
  if (typeof d.n !== 'string' || d.n.length > 64) return refuse('malformed');
  if (d.type === 'hello') {
    // Already asked (or recording) this very document under this node: nothing to do.
    if (d.n === st.nonce) return undefined;
    // Projects are kept apart: a frame recording for another project (another ingest key) does
    // not join this one's sessions, and this page's recording does not take its content.
    if (d.key !== S.cfg.key) return refuse('a recorder of another project');
    if (++st.hellos > MAX_HELLOS || ranges >= MAX_RANGES) return refuse('too many hellos');
    st.nonce = d.n;
    st.lo = RANGE_BASE + RANGE_SIZE * ranges++;
    st.hi = st.lo + RANGE_SIZE;
    const privacy = {};
    for (const k of PRIVACY_KEYS) {
      const v = S.cfg[k];
      if (typeof v === 'string' || typeof v === 'boolean') privacy[k] = v;
    }
    post(e.source, { type: 'record', n: d.n, lo: st.lo, hi: st.hi, privacy, key: S.cfg.key }, st.origin);
    clearTimer(st.timer);
    const asked = d.n;
    st.timer = setTimer(guard(() => {
      if (st.nonce === asked && !st.doc) { st.nonce = ''; refuse('a frame asked to record never sent its document'); }
    }), ANSWER_MS);
    return undefined;
  }
  if (d.n !== st.nonce || !st.nonce) return refuse('not asked to record');
  const t = now();
  try {
    switch (d.type) {
      case 'snap': {
        if (!okTape(d)) return refuse('malformed');
        S.rec.frame_document(t, st.id, st.doc, d.ints, d.strs, st.lo, st.hi);
        st.doc = d.ints[2];
        break;
      }
      case 'mut':
        if (!okTape(d)) return refuse('malformed');
        if (!st.doc) return refuse('a change before the document');
        S.rec.frame_mutation(t, d.ints, d.strs, st.lo, st.hi);
        break;
      case 'input': {
        const v = d.value;
        if (!inRange(st, d.id) || typeof v !== 'string' || v.length > MAX_VALUE || !Number.isInteger(d.checked)) {
          return refuse('malformed');
        }
        S.rec.input(t, d.id, v, d.checked < 0 ? -1 : d.checked ? 1 : 0);
        break;
      }
      case 'remember':
        // A value typed in the frame: its echoes in the frame's text are masked like the page's
        // own (the value never leaves the browser). Sent during the frame's first walk too,
        // before its document. `id` numbers the field in the frame (privacy.js), moved into
        // the frame's range so that it never names one of the page's fields.
        if (!Number.isInteger(d.id) || d.id < 1 || d.id >= RANGE_SIZE || typeof d.value !== 'string' ||
          d.value.length > MAX_VALUE) return refuse('malformed');
        S.rec.remember(st.lo + d.id, d.value);
        return undefined;
      case 'scroll':
        if (!inRange(st, d.id) || !Number.isInteger(d.x) || !Number.isInteger(d.y)) return refuse('malformed');
        S.rec.scroll(t, d.id, d.x, d.y);
        break;
      case 'bye':
        if (st.doc) S.rec.mutation(t, new Uint32Array([1, st.doc, 0, 0, 0]), '');
        st.doc = 0;
        st.nonce = '';
        break;
      default:
        return refuse('malformed');
    }
  } catch (_) {
    // The wasm side refused the tape (broken, or a node outside the child's range).
    return refuse('refused by the recorder');
  }
  if (S.afterEmit) S.afterEmit();
  return undefined;
}

function inRange(st, id) {
  return Number.isInteger(id) && id >= st.lo && id < st.hi && !!st.doc;
}

// ---- the child ----

let parentOrigin = '';
let myNonce = '';
let relayRange = null;
let listening = false;

/**
 * True when this page is framed by a page of another origin: the recorder then records only
 * for its parent, when asked (`startChild`).
 */
export function framedCrossOrigin() {
  try {
    if (window.parent === window) return false;
  } catch (_) {
    return false;
  }
  try {
    return !window.parent.location.href;
  } catch (_) {
    return true;
  }
}

function randomNonce() {
  const b = new Uint32Array(4);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(36)).join('');
}

/** The child's side: says hello to its parent's origin and waits to be asked. */
export function startChild() {
  const anc = location.ancestorOrigins;
  if (anc && anc.length) parentOrigin = anc[0];
  else {
    try { parentOrigin = document.referrer ? new URL(document.referrer).origin : ''; } catch (_) { parentOrigin = ''; }
  }
  if (!parentOrigin || parentOrigin === 'null') return;
  myNonce = randomNonce();
  window.addEventListener('message', guard(onParentMessage));
  window.addEventListener('pagehide', guard(() => {
    if (relayRange) {
      // The last keystrokes wait for a pass (events.js): relayed before the frame goes.
      flushTyped();
      post(window.parent, { type: 'bye', n: myNonce }, parentOrigin);
    }
  }));
  hello();
}

function hello() {
  post(window.parent, { type: 'hello', n: myNonce, key: S.cfg.key }, parentOrigin);
}

function onParentMessage(e) {
  const d = e.data;
  if (e.source !== window.parent || e.origin !== parentOrigin || !d || typeof d !== 'object' || d[TAG] !== 1) return;
  if (d.type === 'ping') hello();
  else if (d.type === 'record' && d.n === myNonce && d.key === S.cfg.key && Number.isInteger(d.lo) && Number.isInteger(d.hi) && d.lo > 0
    && d.hi > d.lo && d.hi <= 0x100000000) {
    relay(d.lo, d.hi, d.privacy && typeof d.privacy === 'object' ? d.privacy : {});
  }
}

/** The parent's privacy options over the child's own: masking only ever tightens. */
function mergedPrivacy(own, parent) {
  const out = Object.assign({}, own);
  const truthy = (v) => v === true || v === 'true' || v === '' || v === '1';
  out.maskAllText = truthy(own.maskAllText) || truthy(own['mask-all-text']) || truthy(parent.maskAllText)
    || truthy(parent['mask-all-text']);
  for (const k of ['mask', 'block', 'ignore', 'unmask']) {
    const a = typeof own[k] === 'string' ? own[k] : '';
    const b = typeof parent[k] === 'string' ? parent[k] : '';
    // The parent's `unmask` does not unmask the child's masked text beyond the child's own.
    out[k] = k === 'unmask' ? a : [a, b].filter(Boolean).join(',');
  }
  return out;
}

/** Starts (or starts over) relaying to the parent with node ids `lo..hi`. */
function relay(lo, hi, privacy) {
  if (!S.stopped) {
    S.stopped = true;
    dropWork();
    if (S.observer) S.observer.disconnect();
  }
  configurePrivacy(mergedPrivacy(S.cfg || {}, privacy));
  relayRange = { lo, hi };
  S.rec = relayTo(lo, hi);
  S.nextId = lo;
  S.stopped = false;
  S.observer = new MutationObserver(guard(collect));
  S.observer.observe(document, OBSERVE);
  if (!listening) {
    listening = true;
    listenToDocument(document);
  }
  takeSnapshot(now(), recordInput, recordMedia, null);
}

/**
 * What stands in for the wasm recorder in a child: the DOM tapes, input, scrolls and the typed
 * values its echo masking needs go to the parent; everything else is not recorded (a no-op).
 */
function relayTo(lo, hi) {
  const n = myNonce;
  const send = (msg, transfer) => {
    if (relayRange === null || S.nextId >= hi - 1) {
      // The range is used up: start over with a fresh one (and a fresh walk).
      if (relayRange) { relayRange = null; S.stopped = true; dropWork(); S.observer.disconnect(); myNonce = randomNonce(); hello(); }
      return;
    }
    msg.n = n;
    post(window.parent, msg, parentOrigin, transfer);
  };
  const own = {
    snapshot(t, ints, strs) {
      const copy = ints.slice();
      send({ type: 'snap', ints: copy, strs }, [copy.buffer]);
    },
    mutation(t, ints, strs) {
      const copy = ints.slice();
      send({ type: 'mut', ints: copy, strs }, [copy.buffer]);
    },
    input(t, id, value, checked) {
      send({ type: 'input', id, value: String(value), checked });
    },
    remember(id, value) {
      send({ type: 'remember', id, value: String(value).slice(0, MAX_VALUE) });
    },
    scroll(t, id, x, y) {
      // The child's own document scrolls as its scrolling element in the parent's replay.
      const sid = id === 0 ? S.ids.get(document.scrollingElement) : id;
      if (sid !== undefined && sid >= lo) send({ type: 'scroll', id: sid, x, y });
    },
  };
  return new Proxy(own, { get: (o, k) => (k in o ? o[k] : () => undefined) });
}
