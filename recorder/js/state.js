// Shared state of the recorder modules: one object, so every module sees the same recorder.

const ID = Symbol('replay.id');
const frozenIds = new WeakMap();
let anyFrozen = false;
/**
 * The descriptor of a new id (one object, its value set before each use; without a prototype,
 * so that a page's `Object.prototype.get` cannot make it an accessor's), and `defineProperty` as
 * it was when the recorder loaded.
 */
const FRESH = { __proto__: null, value: 0, writable: true, configurable: true, enumerable: false };
const defineProperty = Object.defineProperty;

/**
 * Node → recorder id, kept on the node itself under a private symbol, as a non-enumerable
 * property: `for…in`, `Object.keys`, JSON, `Object.assign` and `{...node}` in a page never see
 * or copy it. A WeakMap did the same job but its `set` was the single largest cost of the
 * walker (30% of its time on the products page). A plainly assigned symbol property was
 * cheaper still but enumerable (a page's `{...node}` copied the id) and, measured in the shared
 * benchmark, left the products page's renderer 36 MB over no recorder against 16 MB for this
 * one (the DOM heap kept more free space after the page's re-renders). Nodes the page made
 * non-extensible fall back to a WeakMap. Like the WeakMap, ids die with their nodes.
 */
const ids = {
  get(n) {
    if (n == null) return undefined;
    if (anyFrozen) {
      const f = frozenIds.get(n);
      if (f !== undefined) return f;
    }
    return n[ID];
  },
  has(n) {
    return ids.get(n) !== undefined;
  },
  set(n, v) {
    try {
      if (n[ID] !== undefined) n[ID] = v;
      else {
        FRESH.value = v;
        defineProperty(n, ID, FRESH);
      }
    } catch (_) {
      frozenIds.set(n, v);
      anyFrozen = true;
    }
    return ids;
  },
};

export const S = {
  /** The wasm Recorder of this page view. */
  rec: null,
  /** The MutationObserver watching the document and every open shadow root. */
  observer: null,
  /** Settings: key, endpoint, base URL, intervals. */
  cfg: null,
  stopped: true,
  /** Node → recorder id (`get`/`has`/`set`). Weak: ids die with their nodes. */
  ids,
  nextId: 1,
  session: '',
  lastError: '',
  /** Elements recorded as placeholders (`block`): nothing under them is read. */
  blocked: new WeakSet(),
  /** Template content fragment → its `<template>` (walked: observed, its id the template's). */
  templates: new WeakMap(),
  /** iframe element → the document recorded under it. */
  frameDocs: new WeakMap(),
  /**
   * True once a same-origin child frame's document is observed: until then every record's node
   * is in this document (or a template's inert one, never in designMode).
   */
  childDocs: false,
  /** True once a masked context (`data-replay-mask`, contenteditable, a mask selector) was seen. */
  maskCtx: false,
  /** Called with each same-origin iframe document met (listeners, CSSOM wrapping). */
  onDocument: null,
  /** Called before each pass over DOM changes (records the fields typed into meanwhile: events.js). */
  beforePass: null,
  /**
   * Called before a text the page made goes to wasm (a console message, an error, a request
   * body, a custom event): what was typed is remembered first, so that wasm masks the page's
   * echo of it (events.js `rememberTypedNow`).
   * @type {null | (() => void)}
   */
  beforeText: null,
  /**
   * Called after each snapshot or mutation went to the recorder (cuts a full batch), with
   * `true` when a DOM job ended (renews a grown wasm memory).
   * @type {null | ((jobEnded?: boolean) => void)}
   */
  afterEmit: null,
  /** Moves to a fresh wasm instance after the memory grew (core.js, recorder/src/renew.rs). */
  renewals: 0,
  /** Called with each cross-origin frame element the walker meets (or that loads) and its id. */
  onFrame: null,
  /** Called with each `<canvas>` the walker meets and whether it is in a masked subtree. */
  onCanvas: null,
  /** Canvas frame figures for `stats()` (canvas.js), once canvas capture is configured. */
  canvasStats: null,
};

/** Counts an internal error (reported in the next batch). */
export function countError() {
  try { if (S.rec) S.rec.count_error(); } catch (_) { /* wasm gone */ }
}

// ---- timers outside the page's zones ----
//
// Zone.js (Angular) patches the timer functions, listeners and observers so that each callback
// runs in the zone current when it was scheduled, and ends with a change detection of the whole
// app when that zone is Angular's. A recorder started from the app's code (a consent banner
// calling `init`), or a wrapper the app calls (`insertRule`), would schedule its own work there:
// a change detection per slice, heartbeat and mouse move, and an app that is never stable.
// The recorder starts in the root zone (`outsideZones`) and schedules with the browser's own
// timers, which Zone.js keeps under `__zone_symbol__` names.

const G = /** @type {any} */ (globalThis);
const nativeSetTimeout = G.__zone_symbol__setTimeout || G.setTimeout;
const nativeClearTimeout = G.__zone_symbol__clearTimeout || G.clearTimeout;
const nativeSetInterval = G.__zone_symbol__setInterval || G.setInterval;
const nativeClearInterval = G.__zone_symbol__clearInterval || G.clearInterval;

/**
 * `setTimeout` as the browser has it.
 * @param {(...args: any[]) => void} fn
 * @param {number} [ms]
 * @param {...any} args
 * @returns {any}
 */
export const setTimer = (fn, ms, ...args) => nativeSetTimeout(fn, ms, ...args);
/** @param {any} id */
export const clearTimer = (id) => nativeClearTimeout(id);
/**
 * `setInterval` as the browser has it.
 * @param {(...args: any[]) => void} fn
 * @param {number} ms
 * @returns {any}
 */
export const setRepeat = (fn, ms) => nativeSetInterval(fn, ms);
/** @param {any} id */
export const clearRepeat = (id) => nativeClearInterval(id);

/**
 * Runs `fn` in Zone.js's root zone where the page has Zone.js: what it creates (listeners,
 * observers, timers) calls back outside the app's zone.
 * @template T
 * @param {() => T} fn
 * @returns {T}
 */
export function outsideZones(fn) {
  const root = G.Zone && G.Zone.root;
  return root && typeof root.run === 'function' ? root.run(fn) : fn();
}

const setPrototype = Object.setPrototypeOf;

/**
 * `d` without a prototype, for `Object.defineProperty`: a page that put `get`, `set` or `value`
 * on `Object.prototype` (it happens) would otherwise have them read as part of it, making it
 * invalid (and the wrapper it installs, missing).
 * @param {PropertyDescriptor} d
 * @returns {PropertyDescriptor}
 */
export function bare(d) {
  return setPrototype(d, null);
}

/** When this document's clock started (Unix ms): fixed, read once (the getter was a few µs per event). */
const ORIGIN = performance.timeOrigin;
export const now = () => ORIGIN + performance.now();

/**
 * Gives a wrapper of a page API the `name` and `length` of the function it replaces: a page or
 * library that looks at them (feature tests, argument-count dispatch) sees the browser's.
 * @template {Function} F
 * @param {F} wrapper
 * @param {Function} original
 * @returns {F}
 */
export function likeOriginal(wrapper, original) {
  try {
    Object.defineProperty(wrapper, 'name', bare({ value: original.name, configurable: true }));
    Object.defineProperty(wrapper, 'length', bare({ value: original.length, configurable: true }));
  } catch (_) { /* keeps its own */ }
  return wrapper;
}

/** Wraps a callback so that nothing it throws reaches the host page; errors are counted. */
export function guard(fn) {
  return function () {
    try {
      return fn.apply(this, arguments);
    } catch (e) {
      S.lastError = String((e && e.message) || e);
      countError();
      return undefined;
    }
  };
}
