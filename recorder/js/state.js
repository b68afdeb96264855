// Shared state of the recorder modules: one object, so every module sees the same recorder.
export const S = {
  /** The wasm Recorder of this page view. */
  rec: null,
  /** The MutationObserver watching the document and every open shadow root. */
  observer: null,
  /** Settings: key, endpoint, base URL, intervals. */
  cfg: null,
  stopped: true,
  /** Node → recorder id. Weak: removed nodes are forgotten with the page's own references. */
  ids: new WeakMap(),
  nextId: 1,
  session: '',
  lastError: '',
  /** Elements recorded as placeholders (`block`): nothing under them is read. */
  blocked: new WeakSet(),
  /** iframe element → the document recorded under it. */
  frameDocs: new WeakMap(),
  /** True once a masked context (`data-replay-mask`, contenteditable, a mask selector) was seen. */
  maskCtx: false,
  /** Called with each same-origin iframe document met (listeners, CSSOM wrapping). */
  onDocument: null,
};

/** Counts an internal error (reported in the next batch). */
export function countError() {
  try { if (S.rec) S.rec.count_error(); } catch (_) { /* wasm gone */ }
}

export const now = () => performance.timeOrigin + performance.now();

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
