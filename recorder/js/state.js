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
};

export const now = () => performance.timeOrigin + performance.now();

/** Wraps a callback so that nothing it throws reaches the host page; errors are counted. */
export function guard(fn) {
  return function () {
    try {
      return fn.apply(this, arguments);
    } catch (e) {
      S.lastError = String((e && e.message) || e);
      try { if (S.rec) S.rec.count_error(); } catch (_) { /* wasm gone */ }
      return undefined;
    }
  };
}
