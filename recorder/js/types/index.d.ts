/** The recorder as an ES module (npm package entry). Same API as `window.Replay`. */
import type { ReplayApi, ReplayOptions } from './replay';

export type { ReplayApi, ReplayOptions, ReplayStats } from './replay';

/** Starts recording; `server` is the replay server's URL, `key` the project's ingest key. */
export function init(options: ReplayOptions & { server: string; key: string }): Promise<void>;
export const identify: ReplayApi['identify'];
export const setFlags: ReplayApi['setFlags'];
export const setRelease: ReplayApi['setRelease'];
export const setEnvironment: ReplayApi['setEnvironment'];
export const addEvent: ReplayApi['addEvent'];
export const captureError: ReplayApi['captureError'];
export const flush: ReplayApi['flush'];
export const stop: ReplayApi['stop'];
export const sessionUrl: ReplayApi['sessionUrl'];
