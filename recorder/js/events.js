// User interaction capture: input of every control type, clicks, sampled mouse moves and
// touches, scroll of any element, viewport and pixel ratio, focus, selection, media state,
// visibility and in-page navigation. Listeners go on the page's document and on each
// same-origin iframe document.
import { recordEnvironment } from './environment.js';
import { S, now, guard, likeOriginal, setTimer, clearTimer } from './state.js';
import { P, ignored, mask, maskText, neverRecorded, rememberActive, rememberTyped, scrubUrl, textMasked, unmasked } from './privacy.js';
import { frameLoaded } from './dom.js';
import { ownerWalked } from './css.js';
import { clickPath, recordScrollDepth } from './clickmap.js';

const MOUSE_SAMPLE_MS = 50;
const MOUSE_FLUSH_MS = 500;
const SELECTION_MS = 100;
const MAX_OPTIONS = 1000;
const cleanups = [];

/**
 * Records the current state of a form control (masked unless explicitly unmasked). `typing` is
 * true for `input` events: password and card fields send nothing then (not even the rhythm of
 * keystrokes), only one empty state when they change.
 */
export function recordInput(el, typing) {
  recordInputAt(now(), el, typing);
}

/**
 * Text typed into a field is recorded once per TYPED_GATHER_MS, not once per keystroke: the
 * fields typed into since the last pass, each with the time of its last `input` event. A pass
 * records each one's value as it is then (the value its last keystroke left, unless the page
 * rewrote it since, which fires no `input`). Every cut of a batch and every DOM pass first
 * records them (`flushTyped`), so that a value is remembered for masking before the page's
 * echo of it is read, and goes with the batch the watchdog cuts before a click or an Enter.
 * Recording the value per keystroke was, with its privacy checks, the largest cost of typing.
 */
const TYPED_GATHER_MS = 50;
/** Most fields held for a pass (a script firing `input` on many fields): then recorded at once. */
const MAX_TYPED = 256;
/**
 * Each field typed into since the last pass: the time of its last keystroke, and the privacy
 * verdict taken at its first keystroke of the pass (`open`: may be kept as typed; `hidden`:
 * ignored; `never`: a password or card field). The pass records with the most restrictive of
 * that verdict and the field's verdict then: a field the page moves out of a masked block, or
 * swaps for another element, or turns from a password into a text field (a "show" toggle)
 * within the pass never sends its value in clear.
 * @type {Map<Element, { t: number, open: boolean, hidden: boolean, never: boolean }>}
 */
let typed = new Map();
let typedTimer = 0;

function onInput(e) {
  const el = e.target;
  const tag = el && el.localName;
  const type = tag === 'input' ? (el.type || '').toLowerCase() : '';
  if ((tag !== 'input' && tag !== 'textarea') || type === 'checkbox' || type === 'radio' || S.stopped) {
    recordInput(el, true);
    return;
  }
  // Deleted and set again: the field's place follows its last keystroke.
  const first = typed.get(el);
  typed.delete(el);
  typed.set(el, first
    ? { t: now(), open: first.open, hidden: first.hidden, never: first.never }
    : { t: now(), open: unmasked(el), hidden: ignored(el), never: neverRecorded(el) });
  if (typed.size > MAX_TYPED) flushTyped();
  else if (!typedTimer) typedTimer = setTimer(flushTypedGuarded, TYPED_GATHER_MS);
}

/** Records the fields typed into since the last pass (see TYPED_GATHER_MS). */
export function flushTyped() {
  if (typedTimer) {
    clearTimer(typedTimer);
    typedTimer = 0;
  }
  if (!typed.size) return;
  const fields = typed;
  typed = new Map();
  for (const [el, seen] of fields) recordInputAt(seen.t, el, true, seen);
}

// Every pass over DOM changes starts with them (dom.js `run`; a parent's or a child frame's).
S.beforePass = flushTyped;

/**
 * Records (and so remembers, for echo masking) what was typed, and remembers the focused
 * field's value: before a text the page made goes to wasm (`S.beforeText`). A typed value is
 * otherwise remembered up to TYPED_GATHER_MS after its keystroke, and a page that logs, throws
 * or sends a field's value from its `input` handler (which runs after our capturing listener)
 * would hand wasm an echo of a value it does not know yet: every prefix of a password, in clear.
 */
function rememberTypedNow() {
  flushTyped();
  rememberActive();
}
S.beforeText = rememberTypedNow;

const flushTypedGuarded = guard(() => {
  typedTimer = 0;
  flushTyped();
});

/** `seen`: the verdict of the field's first keystroke in the pass (see `typed`), if any. */
function recordInputAt(t, el, typing, seen = undefined) {
  const id = S.ids.get(el);
  if (id === undefined || S.stopped) return;
  const tag = el.localName;
  if (tag !== 'input' && tag !== 'textarea' && tag !== 'select') {
    rememberTyped(el);
    return;
  }
  // Whether the value may be kept as typed: asked once for both uses below (each asks the
  // document for the closest masking rules).
  const open = unmasked(el) && (!seen || seen.open);
  rememberTyped(el, open);
  if (ignored(el) || (seen && seen.hidden)) return;
  if (typing === true && (neverRecorded(el) || (seen && seen.never))) return;
  const type = (el.type || '').toLowerCase();
  if (type === 'checkbox' || type === 'radio') {
    S.rec.input(t, id, '', el.checked ? 1 : 0);
  } else if (tag === 'select') {
    // Which options are selected is the value: recorded only when unmasked.
    if (!open) return;
    const opts = el.options;
    for (let i = 0; i < opts.length && i < MAX_OPTIONS; i++) {
      const oid = S.ids.get(opts[i]);
      if (oid !== undefined && (opts[i].selected || el.multiple)) S.rec.input(t, oid, '', opts[i].selected ? 1 : 0);
    }
  } else {
    const v = neverRecorded(el) || (seen && seen.never) ? '' : String(el.value == null ? '' : el.value);
    S.rec.input(t, id, open ? v : mask(v), -1);
  }
}

const MEDIA_ACTIONS = { play: 0, playing: 0, pause: 1, seeked: 2, ratechange: 3, volumechange: 4, ended: 5 };

/** Records a media element's state. */
export function recordMedia(el, type) {
  const id = S.ids.get(el);
  if (id === undefined || S.stopped) return;
  const action = MEDIA_ACTIONS[type] !== undefined ? MEDIA_ACTIONS[type] : el.paused ? 1 : 0;
  S.rec.media(now(), id, action, Number(el.currentTime) || 0, Number(el.playbackRate) || 1,
    Number(el.volume), !!el.muted);
}

let mouse = [];
let mouseStart = 0;
let mouseLast = 0;

function onMouseMove(e) {
  const t = now();
  if (t - mouseLast < MOUSE_SAMPLE_MS) return;
  mouseLast = t;
  if (!mouse.length) mouseStart = t;
  mouse.push(Math.round(e.clientX), Math.round(e.clientY), Math.round(t - mouseStart));
  if (t - mouseStart > MOUSE_FLUSH_MS) flushMouse();
}

/** Hands the sampled mouse positions to the recorder as one event. */
export function flushMouse() {
  if (!mouse.length || !S.rec) return;
  S.rec.mouse(mouseStart, new Int32Array(mouse));
  mouse = [];
}

const TOUCH_KINDS = { touchstart: 0, touchmove: 1, touchend: 2, touchcancel: 3 };
let touchLast = 0;

function onTouch(e) {
  const t = now();
  if (e.type === 'touchmove' && t - touchLast < MOUSE_SAMPLE_MS) return;
  touchLast = t;
  const pts = [];
  const list = e.changedTouches;
  for (let i = 0; i < list.length && i < 10; i++) pts.push(Math.round(list[i].clientX), Math.round(list[i].clientY), 0);
  S.rec.touch(t, TOUCH_KINDS[e.type], new Int32Array(pts));
}

const scrollTimers = new Map();

function onScroll(e) {
  const target = e.target;
  if (scrollTimers.has(target)) return;
  scrollTimers.set(target, setTimer(guard(() => {
    scrollTimers.delete(target);
    if (S.stopped) return;
    if (target === document || target === document.documentElement) {
      S.rec.scroll(now(), 0, Math.round(scrollX), Math.round(scrollY));
      recordScrollDepth(false);
    } else {
      // An iframe document scrolls as its scrolling element (the replay scrolls its root).
      const el = target.nodeType === 9 ? target.scrollingElement : target;
      const id = el && S.ids.get(el);
      if (id !== undefined && id !== null) S.rec.scroll(now(), id, Math.round(el.scrollLeft), Math.round(el.scrollTop));
    }
  }), 100));
}

let resizeTimer = 0;
let ratio = 0;
function onResize() {
  clearTimer(resizeTimer);
  resizeTimer = setTimer(guard(() => {
    if (S.stopped) return;
    S.rec.viewport(now(), innerWidth, innerHeight);
    if (devicePixelRatio !== ratio) recordPixelRatio();
  }), 200);
}

/**
 * The device pixel ratio changed (zoom, another screen): the environment is recorded again
 * with it. The first environment of the page view is recorded by diagnostics at start.
 */
export function recordPixelRatio() {
  const first = ratio === 0;
  ratio = devicePixelRatio;
  if (!first) recordEnvironment();
}

let selectionTimer = 0;
/** The selection last recorded: the caret moving in a field while typing is no new selection. */
let lastSelection = '';

function recordSelection(a, ao, f, fo) {
  const key = a + ' ' + ao + ' ' + f + ' ' + fo;
  if (key === lastSelection) return;
  lastSelection = key;
  S.rec.selection(now(), a, ao, f, fo);
}

function onSelection(e) {
  const doc = e.target && e.target.nodeType === 9 ? e.target : document;
  if (selectionTimer) return;
  selectionTimer = setTimer(guard(() => {
    selectionTimer = 0;
    if (S.stopped) return;
    const sel = doc.getSelection();
    if (!sel || !sel.rangeCount || sel.isCollapsed) {
      recordSelection(0, 0, 0, 0);
      return;
    }
    const a = S.ids.get(sel.anchorNode);
    const f = S.ids.get(sel.focusNode);
    if (a !== undefined && f !== undefined) recordSelection(a, sel.anchorOffset, f, sel.focusOffset);
  }), SELECTION_MS);
}

let lastUrl = '';
function recordNavigation(kind) {
  const url = scrubUrl(location.href);
  if (url === lastUrl) return;
  lastUrl = url;
  S.rec.navigation(now(), url, kind);
  recordScrollDepth(true);
}

function wrapHistory(name, kind) {
  const orig = history[name];
  if (typeof orig !== 'function') return;
  const wrapped = function () {
    const result = orig.apply(this, arguments);
    if (!S.stopped) guard(recordNavigation)(kind);
    return result;
  };
  history[name] = likeOriginal(wrapped, orig);
  cleanups.push(() => { if (history[name] === wrapped) history[name] = orig; });
}

/**
 * The listeners on each same-origin iframe's document, by document: dropped once its frame is
 * gone (`pruneFrameListeners`). Kept with the page's own in `cleanups`, they held every iframe
 * document the page ever showed until the recording stopped.
 * @type {Map<Document, (() => void)[]>}
 */
const frameCleanups = new Map();
/** Where `listen` keeps its removals (`cleanups`, or an iframe document's list). */
let into = cleanups;

/** Adds a guarded listener that `removeListeners` takes away again. */
export function listen(target, type, fn, opts) {
  const g = guard(fn);
  target.addEventListener(type, g, opts);
  into.push(() => target.removeEventListener(type, g, opts));
}

/**
 * Forgets the listeners of iframe documents whose frame is gone (no window any more): when
 * another iframe document is met, and at each flush tick.
 */
export function pruneFrameListeners() {
  for (const [doc, list] of frameCleanups) {
    if (doc.defaultView) continue;
    for (const c of list) c();
    frameCleanups.delete(doc);
  }
}

export function removeListeners() {
  clearTimer(resizeTimer);
  for (const c of cleanups.splice(0)) c();
  for (const list of frameCleanups.values()) for (const c of list) c();
  frameCleanups.clear();
  clearTimer(typedTimer);
  typedTimer = 0;
  typed = new Map();
  lastSelection = '';
}

function onLoad(e) {
  const el = e.target;
  const tag = el && el.localName;
  if (tag === 'iframe' || tag === 'frame') frameLoaded(el);
  else if (tag === 'link' && S.ids.has(el)) ownerWalked(el);
}

const CLICKABLE = 'button,a,label,summary,[role=button],[role=link],[role=menuitem],[role=tab],input[type=button],input[type=submit],input[type=reset]';
/**
 * Controls whose click is expected to change something (protocol `Click::interactive`: dead
 * clicks are judged on them). Not a label (its control gets its own click), a text field (the
 * answer is a caret), a select or a file or color input (the answer is a picker the page does
 * not draw).
 */
const INTERACTIVE = 'a[href],button,summary,input[type=button],input[type=submit],input[type=reset],' +
  'input[type=checkbox],input[type=radio],input[type=image],[role=button],[role=link],[role=menuitem],' +
  '[role=menuitemcheckbox],[role=menuitemradio],[role=tab],[role=checkbox],[role=radio],[role=switch],[role=option],' +
  '[role=treeitem]';

/**
 * Whether the clicked element is, or is inside, an INTERACTIVE control: the innermost one, in
 * an open shadow root too (a design system's button is a `<button>` inside its host), then up
 * through the hosts.
 */
function interactive(e) {
  try {
    const path = e.composedPath();
    let el = path.length ? path[0] : e.target;
    for (let hops = 0; el && hops < 32; hops++) {
      if (el.nodeType === 1 && el.closest(INTERACTIVE)) return true;
      const root = el.getRootNode && el.getRootNode();
      el = root && root.nodeType === 11 ? root.host : null;
    }
  } catch (_) { /* a page's odd event object: not judged */ }
  return false;
}

/** Longest click label, in characters. */
const LABEL_CHARS = 60;
/** Most nodes read for a click's label: a click on a container of 100k rows reads its start. */
const LABEL_NODES = 200;
/** Elements whose text is not what the page shows as text. */
const NOT_TEXT = { script: 1, style: 1, template: 1, noscript: 1, textarea: 1, select: 1, iframe: 1 };

/**
 * A short label of what a click hit, for searching sessions by it: the text of the control it
 * is in (or of the element), white space collapsed, at most LABEL_CHARS characters, masked like
 * any text recorded there. Form fields other than buttons give none (their value is input).
 */
function clickLabel(target) {
  const el = target && target.closest ? (target.closest(CLICKABLE) || target) : null;
  if (!el || ignored(el) || S.blocked.has(el)) return '';
  const button = el.localName === 'input';
  if (!button && /^(input|textarea|select)$/.test(el.localName)) return '';
  const masked = textMasked(el);
  let text = button ? String(el.value || '').slice(0, 2 * LABEL_CHARS) : labelText(el, masked);
  if (!text && !button && el.getAttribute) text = String(el.getAttribute('aria-label') || '').slice(0, 2 * LABEL_CHARS);
  text = text.replace(/\s+/g, ' ').trim().slice(0, LABEL_CHARS);
  return masked ? maskText(text) : text;
}

/**
 * The start of the text under `el` (its first LABEL_NODES nodes, about twice LABEL_CHARS
 * characters): text in masked elements masked, blocked subtrees left out. Reading the whole
 * `textContent` of a large container was one long task per click, and gave the text of a masked
 * or blocked part inside the clicked control in clear.
 */
function labelText(el, masked) {
  let out = '';
  // Whether text is masked under each element the walk is in, `el` first.
  const flags = [masked];
  let node = el.firstChild;
  for (let seen = 0; node && seen < LABEL_NODES && out.length < 2 * LABEL_CHARS; seen++) {
    const m = flags[flags.length - 1];
    if (node.nodeType === 3) {
      const data = node.data.slice(0, 2 * LABEL_CHARS);
      out += m ? maskText(data) : data;
    } else if (node.nodeType === 1 && node.firstChild && NOT_TEXT[node.localName] !== 1 && !S.blocked.has(node) &&
      !matchesSafe(node, P.block)) {
      flags.push(m || matchesSafe(node, P.maskText));
      node = node.firstChild;
      continue;
    }
    // The next sibling, or that of the nearest ancestor under `el` that has one.
    while (node && node !== el && !node.nextSibling) {
      node = node.parentNode;
      flags.pop();
    }
    node = node && node !== el ? node.nextSibling : null;
  }
  return out;
}

/** `el.matches(sel)`, false when the browser refuses a custom selector. */
function matchesSafe(el, sel) {
  try {
    return el.matches(sel);
  } catch (_) {
    return false;
  }
}

/** Listens to the user in one document (the page's, or a same-origin iframe's). */
export function listenToDocument(doc) {
  if (doc === document) {
    listenIn(doc);
    return;
  }
  pruneFrameListeners();
  const list = [];
  frameCleanups.set(doc, list);
  into = list;
  try {
    listenIn(doc);
  } finally {
    into = cleanups;
  }
}

function listenIn(doc) {
  const cap = { capture: true, passive: true };
  listen(doc, 'input', onInput, true);
  listen(doc, 'change', (e) => {
    // Its value is recorded now: a pass due for its last keystrokes would record it again.
    typed.delete(e.target);
    recordInput(e.target);
  }, true);
  listen(doc, 'click', (e) => {
    // What was typed before the click goes before it (a button that keeps the focus in its field).
    flushTyped();
    const id = S.ids.get(e.target);
    S.rec.click(now(), id === undefined ? 0 : id, Math.round(e.clientX), Math.round(e.clientY), e.button, clickLabel(e.target),
      clickPath(e.target), interactive(e) ? 1 : 0);
  }, true);
  listen(doc, 'mousemove', onMouseMove, cap);
  listen(doc, 'scroll', onScroll, cap);
  listen(doc, 'focusin', (e) => { const id = S.ids.get(e.target); if (id !== undefined) S.rec.focus(now(), id, true); }, true);
  listen(doc, 'focusout', (e) => { const id = S.ids.get(e.target); if (id !== undefined) S.rec.focus(now(), id, false); }, true);
  listen(doc, 'selectionchange', onSelection, cap);
  // (Own keys only: `for…in` would also list what a page put on `Object.prototype`.)
  for (const type of Object.keys(MEDIA_ACTIONS)) {
    if (type !== 'playing') listen(doc, type, (e) => recordMedia(e.target, e.type), cap);
  }
  for (const type of Object.keys(TOUCH_KINDS)) listen(doc, type, onTouch, cap);
  listen(doc, 'load', onLoad, cap);
}

/** Starts listening to the user and the page. */
export function listenToUser() {
  listenToDocument(document);
  listen(window, 'resize', onResize, { passive: true });
  listen(document, 'visibilitychange', () => S.rec.visibility(now(), document.visibilityState !== 'hidden'));
  lastUrl = scrubUrl(location.href);
  wrapHistory('pushState', 0);
  wrapHistory('replaceState', 1);
  listen(window, 'popstate', () => recordNavigation(2));
  listen(window, 'hashchange', () => recordNavigation(3));
  recordPixelRatio();
  recordScrollDepth(true);
}
