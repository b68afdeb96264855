// Performance capture: Long Animation Frames with script attribution (long tasks where LoAF is
// missing), web vitals (LCP, CLS, INP from event timing), navigation timing and memory; and
// the attribution of freezes for the watchdog.
//
// Attribution of a freeze: LoAF names the entry point of each long script (an event listener,
// a timer, ...) but not the function deep inside it that burned the CPU. When the page allows
// the JS Self-Profiling API (response header `Document-Policy: js-profiling`), a low-rate
// sampling profiler runs in a rolling window and the most sampled script function during the
// freeze comes first, with its file, line and column.
import { S, now, guard, setTimer, setRepeat, clearRepeat } from './state.js';
import { scrubUrl, scrubUrlsIn } from './privacy.js';
import { Throttle } from './throttle.js';

const MAX_TEXT = 300;
const RECENT_FRAMES = 64;
const PROFILE_INTERVAL_MS = 10;
const PROFILE_WINDOW_MS = 30000;
const MEMORY_EVERY_MS = 30000;

const frames = []; // recent long frames (PerformanceEntry), for freeze attribution
const observers = [];
const timers = [];
const throttle = new Throttle('long animation frames', 30, 10000);
let profiler = null;
let profilerSince = 0;
let loaf = null;

const text = (v) => String(v == null ? '' : v).slice(0, MAX_TEXT);
const ms = (v) => Math.max(0, Math.round(Number(v) || 0));
const epoch = (perfTime) => performance.timeOrigin + perfTime;

function observe(type, fn, extra) {
  try {
    const o = new PerformanceObserver(guard((list) => { for (const e of list.getEntries()) fn(e); }));
    o.observe(Object.assign({ type, buffered: true }, extra || {}));
    observers.push(o);
    return o;
  } catch (_) {
    return null; // not supported by this browser
  }
}

/** Flat script arrays for wasm: 4 strings and 6 numbers per script (recorder/src/lib.rs). */
function flatScripts(scripts) {
  const texts = [];
  const nums = [];
  for (const s of scripts) {
    texts.push(text(scrubUrlsIn(String(s.invoker || ''))), text(s.invokerType), text(scrubUrl(s.sourceURL || '')), text(s.sourceFunctionName));
    nums.push(s.sourceCharPosition | 0, ms(s.duration), ms(s.forcedStyleAndLayoutDuration), ms(s.pauseDuration),
      s.line | 0, s.column | 0);
  }
  return { texts, nums };
}

function byDuration(a, b) {
  return b.duration - a.duration;
}

function onFrame(e, longTask) {
  frames.push(e);
  if (frames.length > RECENT_FRAMES) frames.shift();
  if (!throttle.take()) return;
  // (A copy by `slice`: MooTools' `Array.from` hands the browser's frozen array back, and
  // sorting that throws.)
  const scripts = longTask ? [] : Array.prototype.slice.call(e.scripts || []).sort(byDuration).slice(0, 8);
  const { texts, nums } = flatScripts(scripts);
  const layout = longTask ? 0 : ms(e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0);
  S.rec.long_frame(epoch(e.startTime), ms(e.duration), ms(e.blockingDuration), layout, longTask, texts,
    new Int32Array(nums));
}

// ---- the sampling profiler (only where the page allows it) ----

function startProfiler() {
  if (typeof self.Profiler !== 'function' || S.cfg.profiling === false) return;
  try {
    profiler = new self.Profiler({ sampleInterval: PROFILE_INTERVAL_MS, maxBufferSize: 2 * PROFILE_WINDOW_MS / PROFILE_INTERVAL_MS });
    profilerSince = performance.now();
  } catch (_) {
    profiler = null; // no `Document-Policy: js-profiling`
  }
}

/** Keeps the profile short: a fresh profiler every window (the old trace is discarded). */
function rollProfiler() {
  if (!profiler || performance.now() - profilerSince < PROFILE_WINDOW_MS) return;
  const old = profiler;
  startProfiler();
  old.stop().catch(() => {});
}

/**
 * The script function most sampled between `from` and `to` (performance time): for each sample
 * the innermost frame that belongs to a script (builtins such as `Math.sin` have no resource).
 */
function hottestFunction(trace, from, to) {
  const counts = new Map();
  for (const sample of trace.samples) {
    if (sample.timestamp < from || sample.timestamp > to || sample.stackId === undefined) continue;
    let stack = trace.stacks[sample.stackId];
    while (stack) {
      const frame = trace.frames[stack.frameId];
      if (frame && frame.resourceId !== undefined) {
        counts.set(stack.frameId, (counts.get(stack.frameId) || 0) + 1);
        break;
      }
      stack = stack.parentId === undefined ? null : trace.stacks[stack.parentId];
    }
  }
  let best = -1;
  let bestCount = 0;
  for (const [id, n] of counts) if (n > bestCount) { best = id; bestCount = n; }
  if (best < 0) return null;
  const f = trace.frames[best];
  return {
    invoker: 'sampled stack', invokerType: 'profiler', sourceURL: trace.resources[f.resourceId] || '',
    sourceFunctionName: f.name || '(anonymous)', sourceCharPosition: -1, duration: bestCount * PROFILE_INTERVAL_MS,
    forcedStyleAndLayoutDuration: 0, pauseDuration: 0, line: f.line || 0, column: f.column || 0,
  };
}

let sampled = null; // { from, to, script } of the last freeze, filled asynchronously

/**
 * Duration and culprits of a freeze between two heartbeats (`from`, `to`: epoch ms): the long
 * frames overlapping the gap give the duration and their scripts; the profiler's hottest
 * function, when there is one, comes first.
 */
export function freezeAttribution(from, to) {
  if (loaf) for (const e of loaf.takeRecords()) onFrame(e, false);
  const a = from - performance.timeOrigin;
  const b = to - performance.timeOrigin;
  const overlapping = frames.filter((e) => e.startTime < b && e.startTime + e.duration > a);
  let duration = to - from;
  const scripts = [];
  if (overlapping.length) {
    const start = Math.min(...overlapping.map((e) => e.startTime));
    const end = Math.max(...overlapping.map((e) => e.startTime + e.duration));
    duration = end - start;
    for (const e of overlapping) for (const s of (e.scripts || [])) scripts.push(s);
    scripts.sort(byDuration);
  }
  if (sampled && sampled.script && sampled.from === from) scripts.unshift(sampled.script);
  const { texts, nums } = flatScripts(scripts.slice(0, 8));
  return { duration: ms(duration), texts, nums };
}

/**
 * Called by the watchdog as soon as a freeze ended: stops the profiler (its trace covers the
 * freeze) and starts a new one; resolves once the hottest function is known.
 */
export async function sampleFreeze(from, to) {
  if (!profiler) return;
  const old = profiler;
  startProfiler();
  try {
    const trace = await old.stop();
    const script = hottestFunction(trace, from - performance.timeOrigin, to - performance.timeOrigin);
    if (script) script.sourceURL = scrubUrl(script.sourceURL);
    sampled = { from, to, script };
  } catch (_) { /* profiler gone */ }
}

// ---- web vitals, navigation timing, memory ----

let cls = 0;
let clsWindow = 0;
let clsFirst = 0;
let clsLast = 0;
let clsSent = -1;
let inp = 0;

function onShift(e) {
  if (e.hadRecentInput) return;
  // Session windows: shifts less than 1 s apart, at most 5 s long; CLS is the worst window.
  if (clsWindow && e.startTime - clsLast < 1000 && e.startTime - clsFirst < 5000) {
    clsWindow += e.value;
  } else {
    clsWindow = e.value;
    clsFirst = e.startTime;
  }
  clsLast = e.startTime;
  cls = Math.max(cls, clsWindow);
}

function sendCls() {
  if (cls !== clsSent) {
    clsSent = cls;
    S.rec.metric(now(), 'cls', cls);
  }
}

function onEventTiming(e) {
  // INP, approximated: the slowest interaction so far (the exact metric drops one outlier per
  // 50 interactions).
  if (!e.interactionId || e.duration <= inp) return;
  inp = e.duration;
  S.rec.metric(epoch(e.startTime), 'inp', inp);
}

function navigationTiming() {
  const nav = /** @type {PerformanceNavigationTiming | undefined} */ (performance.getEntriesByType('navigation')[0]);
  if (!nav) return;
  const t = epoch(0);
  S.rec.metric(t, 'ttfb', nav.responseStart);
  S.rec.metric(t, 'dom_content_loaded', nav.domContentLoadedEventEnd);
  if (nav.loadEventEnd) S.rec.metric(t, 'load', nav.loadEventEnd);
  if (nav.transferSize) S.rec.metric(t, 'transfer_size', nav.transferSize);
}

function memory() {
  const m = performance.memory;
  if (m && m.usedJSHeapSize) S.rec.metric(now(), 'memory_used', m.usedJSHeapSize);
}

export function startPerf() {
  loaf = observe('long-animation-frame', (e) => onFrame(e, false));
  if (!loaf) observe('longtask', (e) => onFrame(e, true));
  observe('largest-contentful-paint', (e) => S.rec.metric(epoch(e.startTime), 'lcp', e.startTime));
  observe('paint', (e) => { if (e.name === 'first-contentful-paint') S.rec.metric(epoch(e.startTime), 'fcp', e.startTime); });
  observe('layout-shift', onShift);
  observe('event', onEventTiming, { durationThreshold: 40 });
  if (document.readyState === 'complete') navigationTiming();
  else {
    const onLoad = guard(() => setTimer(guard(navigationTiming), 0));
    addEventListener('load', onLoad, { once: true });
  }
  memory();
  timers.push(setRepeat(guard(() => { sendCls(); memory(); rollProfiler(); }), MEMORY_EVERY_MS));
  const onHide = guard(() => { if (document.visibilityState === 'hidden') sendCls(); });
  document.addEventListener('visibilitychange', onHide);
  observers.push({ disconnect: () => document.removeEventListener('visibilitychange', onHide) });
  startProfiler();
}

export function stopPerf() {
  for (const o of observers.splice(0)) o.disconnect();
  for (const t of timers.splice(0)) clearRepeat(t);
  if (profiler) profiler.stop().catch(() => {});
  profiler = null;
}
