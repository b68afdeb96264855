// The upload worker's script (upload-worker.js with upload-core.js inlined, minified), as a
// string: `cargo xtask build-web` writes the real one into the recorder's bundle, so the worker
// starts from a blob with no request of its own. Here, unbuilt, there is none: uploads then run
// on the main thread (transport.js's fallback).

/** @type {string} */
export const WORKER_SOURCE = '';
