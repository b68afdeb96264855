// Compile-time checks of the recorder's public API (nothing here runs): the method list the
// loader queues (api.js), core.js's API, the module entry (index.js) and the typings
// (types/replay.d.ts, types/index.d.ts) name the same methods with compatible types.

import { METHODS } from '../../recorder/js/api.js';
import { api } from '../../recorder/js/core.js';
import * as entry from '../../recorder/js/index.js';
import type * as declared from '../../recorder/js/types/index';
import type { ReplayApi, ReplayOptions } from '../../recorder/js/types/replay';

/** True when `A` and `B` are the same set of names. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** The loader's list is exactly the declared API. */
export const listed: Same<(typeof METHODS)[number], keyof ReplayApi> = true;

/** core.js implements the declared API (and adds `stats`, which only the module entry lacks). */
export const core: ReplayApi = api;
export const coreNames: Same<Exclude<keyof typeof api, 'stats'>, keyof ReplayApi> = true;

/** index.js exports what index.d.ts declares, with the declared types, and nothing else. */
export const implemented: typeof declared = entry;
export const exported: Same<keyof typeof entry, keyof typeof declared> = true;

/** The module entry's `init` takes every option of the tag's `Replay.init`, and `server`. */
export const moduleOptions: Same<keyof Parameters<typeof declared.init>[0], keyof ReplayOptions | 'server'> = true;
