// The recorder as an ES module: the entry of the npm package (`cargo xtask npm`) and of
// `import … from 'https://REPLAY-SERVER/recorder/index.js'`. It is the same recorder the script
// tag loads; `init({ server, key, … })` replaces the tag's data- attributes. Like the tag, it
// never throws into the page once started: only a missing `server` or `key` rejects `init`.

import { boot } from './core.js';

let core = null;

/**
 * Starts recording. `server` is the replay server's URL (batches go to its `/api/v1/ingest`
 * unless `endpoint` says otherwise); the other options are those of `Replay.init`.
 */
export async function init(options) {
  const { server, ...rest } = options || {};
  if (!server) throw new Error('replay: `server` (the replay server URL) is required');
  if (!rest.key) throw new Error('replay: an ingest key is required');
  if (!core) core = boot(new URL('recorder.js', new URL(server, location.href)).href, { key: '' });
  await (await core).init(rest);
}

/**
 * A method of the API, once `init` has started the recorder.
 * @template {keyof import('./types/replay').ReplayApi} K
 * @param {K} name
 * @returns {import('./types/replay').ReplayApi[K]}
 */
function method(name) {
  /** @type {any} */
  const call = async (/** @type {unknown[]} */ ...args) => {
    if (!core) throw new Error('replay: call init() first');
    return /** @type {Function} */ ((await core)[name])(...args);
  };
  return call;
}

export const identify = method('identify');
export const setFlags = method('setFlags');
export const setRelease = method('setRelease');
export const setEnvironment = method('setEnvironment');
export const addEvent = method('addEvent');
export const captureError = method('captureError');
export const flush = method('flush');
export const stop = method('stop');
export const sessionUrl = method('sessionUrl');
