/* Session replay loader: the only synchronous part of the embed. It defines window.Replay (calls
   are queued until the recorder is ready) and loads the recorder module and its wasm
   asynchronously. It never throws into the page. Written as a module for the type checker:
   `cargo xtask build-web` makes it the classic script `recorder.js`, with api.js inlined. */
import { METHODS } from './api.js';

(function (w, d) {
  try {
    var s = /** @type {HTMLScriptElement | null} */ (d.currentScript);
    if (!s || w.Replay) return;
    /** @type {(core: import('./types/replay').ReplayApi) => void} */
    var done;
    /** @type {Promise<import('./types/replay').ReplayApi>} */
    var ready = new Promise(function (r) { done = r; });
    var api = /** @type {Record<string, (...args: unknown[]) => Promise<unknown>>} */ ({});
    METHODS.forEach(function (m) {
      api[m] = function () {
        var a = arguments;
        // In Zone.js's root zone (Angular): the call's own promise work is not a task of the
        // app's zone (each one a change detection); the app's wait for its result still is.
        var z = /** @type {any} */ (w).Zone, root = z && z.root;
        var call = function () {
          return ready.then(function (core) { return /** @type {Function} */ (core[m]).apply(core, a); });
        };
        return root && typeof root.run === 'function' ? root.run(call) : call();
      };
    });
    w.Replay = /** @type {import('./types/replay').ReplayApi} */ (/** @type {unknown} */ (api));
    /** @type {Record<string, string>} */
    var data = {};
    var src = s.src, attrs = s.attributes;
    for (var i = 0; i < attrs.length; i++) {
      if (attrs[i].name.indexOf('data-') === 0) data[attrs[i].name.slice(5)] = attrs[i].value;
    }
    import(new URL('recorder/core.js', src).href).then(function (m) {
      return m.boot(src, data);
    }).then(done, function () {});
  } catch (e) { /* never break the host page */ }
})(window, document);
