// Dialog modality: whether a `<dialog>` was opened with `showModal()` (top layer, backdrop, the
// rest of the page inert) or `show()`. The `open` attribute the MutationObserver sees is the
// same for both, so the two methods are wrapped (the page's call runs first and keeps its
// result and exceptions; recording is guarded), and the dialogs already open when a snapshot
// is taken are recorded after it.
import { S, now, countError, likeOriginal, bare } from './state.js';

const patched = new WeakSet();

function record(el, modal) {
  const id = S.ids.get(el);
  if (id !== undefined && S.rec && !S.stopped && !S.blocked.has(el)) S.rec.dialog(now(), id, modal);
}

function wrap(proto, name, modal) {
  const orig = proto && proto[name];
  if (typeof orig !== 'function') return;
  const wrapped = function () {
    const result = orig.apply(this, arguments);
    try { record(this, modal); } catch (_) { countError(); }
    return result;
  };
  likeOriginal(wrapped, orig);
  try {
    Object.defineProperty(proto, name, bare({ value: wrapped, writable: true, configurable: true, enumerable: false }));
  } catch (_) { /* frozen prototype: modality is not recorded */ }
}

/** Wraps `show` and `showModal` of a window (the page's, and each same-origin iframe's) once. */
export function patchDialogs(win) {
  if (!win || patched.has(win)) return;
  patched.add(win);
  const proto = win.HTMLDialogElement && win.HTMLDialogElement.prototype;
  wrap(proto, 'show', false);
  wrap(proto, 'showModal', true);
}

/** Records how each dialog open in `doc` is shown (after a snapshot). */
export function recordOpenDialogs(doc) {
  try {
    const open = doc.querySelectorAll('dialog[open]');
    for (let i = 0; i < open.length && i < 100; i++) {
      let modal = false;
      try { modal = open[i].matches(':modal'); } catch (_) { /* no :modal in this engine */ }
      record(open[i], modal);
    }
  } catch (_) { countError(); }
}
