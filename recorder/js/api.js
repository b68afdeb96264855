// The methods of the public API, written once. The loader (a classic script: `cargo xtask
// build-web` inlines this module into it) queues calls to each of them until the recorder is
// ready. `tools/js/api.check.ts` holds this list, core.js's API, the module entry (index.js) and
// the typings (types/replay.d.ts, types/index.d.ts) to the same names: `cargo xtask lint`.

/** The methods of `window.Replay`, as declared in `types/replay.d.ts` (`ReplayApi`). */
export const METHODS = /** @type {const} */ ([
  'init', 'identify', 'setFlags', 'setRelease', 'setEnvironment', 'addEvent', 'captureError', 'flush', 'stop',
  'sessionUrl',
]);
