// The safety valve: the recorder watches its own main-thread time and, past a budget, degrades
// on its own rather than become the page's problem, saying so in the recording.
//
// What counts: the recorder's work on the page's thread (the DOM slices and snapshot walk of
// dom.js, the observer's callback, cutting and encoding a batch in core.js), timed where it runs
// with `performance.now()` (a few hundred nanoseconds per measured call). It is summed in
// buckets of a twelfth of the window, and judged at each bucket's end over the whole window
// (`cpuBudgetWindow`, 60 s), once a whole window has been recorded (the first snapshot alone
// is never judged over a shorter time):
// - level 0, normal: over the budget (`cpuBudget`, 3 % of the window) → level 1;
// - level 1, coalesced: the DOM work waits COALESCE_MS between passes, so a burst of changes to
//   the same nodes becomes one diff of their final state (dom.js `schedule`); after a whole
//   window at this level, still over the budget → level 2; under half of it → level 0 again;
// - level 2, stopped: recording stops (what `Replay.stop()` does) to protect the page.
// Each change of level is a note in the recording (shown with the replay), with the share that
// caused it, so the viewer says why part of a session is coarse or why it ends early.
import { S, now } from './state.js';

const DEFAULT_BUDGET_PERCENT = 3;
const DEFAULT_WINDOW_S = 60;
const MIN_WINDOW_S = 5;
const BUCKETS = 12;
/** Pause between two passes of DOM work at level 1. */
export const COALESCE_MS = 1000;

const NOTE_THROTTLED = 0;
const NOTE_STOPPED = 3;
const NOTE_OTHER = 4;

export const V = {
  /** 0 normal, 1 DOM work coalesced, 2 stopped. */
  level: 0,
  /** Share of the window (0..1) the recorder may use; 0: the valve is off. */
  budget: DEFAULT_BUDGET_PERCENT / 100,
  windowMs: DEFAULT_WINDOW_S * 1000,
  buckets: new Float64Array(BUCKETS),
  index: 0,
  bucketStart: 0,
  startedAt: 0,
  /** When the current level began (a level is judged after a whole window of it). */
  levelSince: 0,
  /** The share of the last judged window, for `stats()`. */
  share: 0,
  /** The recorder's own main-thread time since the start, ms. */
  totalMs: 0,
  /** Called to stop recording (core.js `halt`, after a last flush). */
  stop: null,
};

/** Reads `cpuBudget` (percent, 0 turns the valve off) and `cpuBudgetWindow` (seconds). */
export function configureValve(cfg, stop) {
  const budget = Number(cfg.cpuBudget);
  V.budget = cfg.cpuBudget === undefined || cfg.cpuBudget === '' || !(budget >= 0)
    ? DEFAULT_BUDGET_PERCENT / 100 : Math.min(budget, 100) / 100;
  const win = Number(cfg.cpuBudgetWindow);
  V.windowMs = Math.max(MIN_WINDOW_S, win > 0 ? win : DEFAULT_WINDOW_S) * 1000;
  V.buckets.fill(0);
  V.index = 0;
  V.level = 0;
  V.share = 0;
  V.totalMs = 0;
  V.startedAt = V.bucketStart = V.levelSince = performance.now();
  V.stop = stop;
}

/** Adds `ms` of the recorder's own time, spent up to now. */
export function spent(ms) {
  if (!(ms > 0)) return;
  V.totalMs += ms;
  const t = performance.now();
  roll(t);
  V.buckets[V.index] += ms;
}

let depth = 0;

/**
 * Times `fn` as the recorder's own work; returns what it returns. Nested calls (a cut that
 * works on the pending DOM changes) count once, in the outermost.
 */
export function timed(fn) {
  if (depth) return fn();
  depth++;
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    depth--;
    spent(performance.now() - t0);
  }
}

/** Judges the time passed (the flush timer calls it, so an idle recorder recovers too). */
export function valveTick() {
  roll(performance.now());
}

/** Closes the buckets whose time is over, judging the window at the end of each. */
function roll(t) {
  const bucketMs = V.windowMs / BUCKETS;
  // At most one window's worth of buckets: a longer gap leaves them all empty.
  for (let n = 0; n < BUCKETS && t - V.bucketStart >= bucketMs; n++) {
    V.bucketStart += bucketMs;
    judge(V.bucketStart);
    V.index = (V.index + 1) % BUCKETS;
    V.buckets[V.index] = 0;
  }
  if (t - V.bucketStart >= bucketMs) {
    V.buckets.fill(0);
    V.bucketStart = t;
  }
}

function judge(t) {
  if (V.budget <= 0 || V.level >= 2 || S.stopped || t - V.startedAt < V.windowMs) return;
  let sum = 0;
  for (let i = 0; i < BUCKETS; i++) sum += V.buckets[i];
  V.share = sum / V.windowMs;
  const wholeWindowAtLevel = t - V.levelSince >= V.windowMs;
  const pct = (V.share * 100).toFixed(1) + '% of the main thread over the last ' + Math.round(V.windowMs / 1000) +
    ' s (budget ' + (V.budget * 100).toFixed(1) + '%)';
  if (V.level === 0 && V.share > V.budget) {
    setLevel(1, t, NOTE_THROTTLED, 'the recorder used ' + pct + ': page changes are now recorded once a second, ' +
      'in their final state (intermediate states are not in the replay)');
  } else if (V.level === 1 && wholeWindowAtLevel && V.share > V.budget) {
    setLevel(2, t, NOTE_STOPPED, 'the recorder still used ' + pct + ' with page changes coalesced: ' +
      'recording stopped to protect the page');
    if (V.stop) V.stop();
  } else if (V.level === 1 && wholeWindowAtLevel && V.share < V.budget / 2) {
    setLevel(0, t, NOTE_OTHER, 'the recorder is back under its budget (' + pct + '): page changes are recorded ' +
      'as they happen again');
  }
}

function setLevel(level, t, kind, text) {
  V.level = level;
  V.levelSince = t;
  // Count 0: nothing was dropped (a throttle note's count adds to the dropped events).
  if (S.rec && !S.stopped) S.rec.note(now(), kind, 0, 0, text);
}

/** The valve's figures for `stats()`. */
export function valveStats() {
  return { level: V.level, sharePct: V.share * 100, budgetPct: V.budget * 100, ownMs: V.totalMs };
}
