// Console capture: every level by default, arguments serialised with bounds (serialize.js), at
// most 10 arguments, a stack for errors, warnings, traces and failed assertions. The `console`
// option (`data-console` on the tag) limits it: `"all"` (default), `"errors"` (console.error and
// failed assertions), `"off"`, or a list of levels (`"warn,error"`, `['warn', 'error']`); levels
// not captured are not wrapped at all. The page's console keeps working exactly as before: the
// original method is always called, first.
import { S, now, guard, likeOriginal } from './state.js';
import { serialize } from './serialize.js';
import { Throttle } from './throttle.js';
import { scrubUrlsIn } from './privacy.js';

const LEVELS = { log: 0, debug: 1, info: 2, warn: 3, error: 4, trace: 5, assert: 6 };
const MAX_ARGS = 10;
const MAX_STACK = 4000;
const throttle = new Throttle('console messages', 100, 10000);
const originals = {};
/** Our wrapper of each console method. */
const ours = {};
let busy = false; // a getter or toString that logs must not recurse into us

/** The caller's stack, without the recorder's own frames. */
export function callerStack(skip) {
  const stack = String(new Error().stack || '').split('\n');
  // Line 0 is "Error"; then our frames.
  return scrubUrlsIn(stack.slice(1 + skip).join('\n').slice(0, MAX_STACK));
}

function record(level, args) {
  if (busy || !S.rec || S.stopped) return;
  let list = Array.prototype.slice.call(args, 0, MAX_ARGS + 1);
  if (level === 'assert') {
    if (list[0]) return;
    list = list.slice(1);
    if (!list.length) list = ['Assertion failed'];
  }
  if (!throttle.take()) return;
  busy = true;
  try {
    const out = list.slice(0, MAX_ARGS).map(serialize);
    if (args.length > MAX_ARGS + (level === 'assert' ? 1 : 0)) out.push('…');
    const code = LEVELS[level];
    const stack = code >= 3 ? callerStack(4) : '';
    if (S.beforeText) S.beforeText();
    S.rec.console(now(), code, out, stack);
  } finally {
    busy = false;
  }
}

/** The levels the `console` option asks for. */
export function consoleLevels(opt) {
  if (opt === undefined || opt === null || opt === '' || opt === true || opt === 'all' || opt === 'true') return Object.keys(LEVELS);
  if (opt === false || opt === 'off' || opt === 'none' || opt === 'false' || opt === '0') return [];
  if (opt === 'errors' || opt === 'error') return ['error', 'assert'];
  const list = Array.isArray(opt) ? opt : String(opt).split(',');
  return list.map((l) => String(l).trim().toLowerCase()).filter((l) => LEVELS[l] !== undefined);
}

export function startConsole() {
  if (typeof console === 'undefined') return;
  for (const level of consoleLevels(S.cfg && S.cfg.console)) {
    const original = console[level];
    if (typeof original !== 'function') continue;
    originals[level] = original;
    const rec = guard(record);
    const wrapped = function () {
      const result = original.apply(this, arguments);
      rec(level, arguments);
      return result;
    };
    console[level] = likeOriginal(wrapped, original);
    ours[level] = wrapped;
  }
}

/** Puts back the page's console methods, except where the page wrapped ours since (ours stays, recording nothing). */
export function stopConsole() {
  for (const [level, original] of Object.entries(originals)) {
    if (console[level] === ours[level]) console[level] = original;
  }
}
