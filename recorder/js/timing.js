// Resource Timing for the requests network.js records: each fetch and XHR is matched with the
// browser's `PerformanceResourceTiming` entry (same URL, closest start) and recorded with its
// phases (blocked, DNS, connect, TLS, time to first byte, download) and sizes (transfer,
// encoded, decoded). A cross-origin response without `Timing-Allow-Origin` has only its total
// exposed: it is recorded as restricted, not as zeros.
//
// The cost on the page stays small and off the request's path: a request is noted when it
// starts (one push), an entry is matched when the observer delivers it (a scan of at most
// MAX_PENDING records), and a finished request waits at most WAIT_MS for its entry, swept by
// one timer. Pending requests are bounded: past MAX_PENDING the oldest is recorded without
// timing, and the count is reported as a note. Browsers without the API record no timing.
import { S, now, guard, setTimer, clearTimer } from './state.js';

const MAX_PENDING = 100;
const WAIT_MS = 5000;
const SWEEP_MS = 1000;
const NOTE_DROPPED = 1;
const INITIATORS = { fetch: 1, xmlhttprequest: 1 };
const EMPTY = [];

/** @type {any[]} requests started and not recorded yet, oldest first */
const pending = [];
let observer = null;
let record = null;
let timer = 0;
let dropped = 0;

const strip = (url) => { const i = url.indexOf('#'); return i < 0 ? url : url.slice(0, i); };

/** The figures recorder/src/network.rs reads: phases in microseconds, then sizes. */
function figures(e) {
  // Hidden detail (cross-origin, no Timing-Allow-Origin; or no response): only the total.
  if (!e.requestStart) return [1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  const us = (a, b) => (a > 0 && b > a ? Math.round((b - a) * 1000) : 0);
  const tlsAt = e.secureConnectionStart > 0 ? e.secureConnectionStart : e.connectEnd;
  const dns = us(e.domainLookupStart, e.domainLookupEnd);
  const connect = us(e.connectStart, tlsAt);
  const tls = us(tlsAt, e.connectEnd);
  const blocked = Math.max(0, us(e.startTime || 1e-9, e.requestStart) - dns - connect - tls);
  return [0, blocked, dns, connect, tls, us(e.requestStart, e.responseStart), us(e.responseStart, e.responseEnd),
    e.transferSize || 0, e.encodedBodySize || 0, e.decodedBodySize || 0];
}

function onEntries(list) {
  const base = performance.timeOrigin;
  for (const e of list.getEntries()) {
    if (!INITIATORS[e.initiatorType]) continue;
    const name = strip(e.name);
    const at = base + e.startTime;
    let best = null;
    for (const r of pending) {
      if (r.timing || strip(r.url) !== name) continue;
      if (!best || Math.abs(r.start - at) < Math.abs(best.start - at)) best = r;
    }
    if (!best || Math.abs(best.start - at) > 60000) continue;
    best.timing = figures(e);
    best.protocol = e.nextHopProtocol || '';
    best.lastByte = at + e.duration;
    if (best.ended) settle(best);
  }
}

function settle(r) {
  const i = pending.indexOf(r);
  if (i >= 0) pending.splice(i, 1);
  if (r.recorded) return;
  r.recorded = true;
  record(r);
}

function sweep() {
  timer = 0;
  const t = now();
  for (const r of pending.slice()) if (r.ended && t - r.end >= WAIT_MS) settle(r);
  report(t);
  if (pending.some((r) => r.ended)) timer = setTimer(sweepGuarded, SWEEP_MS);
}
const sweepGuarded = guard(sweep);

function report(t) {
  if (!dropped || !S.rec || S.stopped) return;
  S.rec.note(t, NOTE_DROPPED, 0, dropped, 'request timings not matched (too many requests in flight)');
  dropped = 0;
}

/** Starts matching; `emit(r)` records a request (its `timing`, `protocol`, `lastByte` set when matched). */
export function startTiming(emit) {
  record = emit;
  const types = typeof PerformanceObserver === 'function' && PerformanceObserver.supportedEntryTypes;
  if (!types || types.indexOf('resource') < 0) return;
  observer = new PerformanceObserver(guard(onEntries));
  observer.observe({ type: 'resource' });
}

/** A request started (`r.url`, `r.start` set). */
export function track(r) {
  if (!observer) return;
  if (pending.length >= MAX_PENDING) {
    const old = pending.shift();
    dropped++;
    if (old.ended) settle(old);
  }
  pending.push(r);
}

/**
 * A request ended (`r.end` set: its last byte or failure as the page saw it) and is complete
 * (bodies read): recorded now when its entry came, else once it comes or after WAIT_MS.
 */
export function finish(r) {
  r.ended = true;
  if (!observer || r.timing || pending.indexOf(r) < 0) {
    settle(r);
    return;
  }
  if (!timer) timer = setTimer(sweepGuarded, SWEEP_MS);
}

/** Records every ended request now (a flush, or recording stops), the entries queued first. */
export function flushTiming() {
  if (observer) onEntries({ getEntries: () => observer.takeRecords() || EMPTY });
  for (const r of pending.slice()) if (r.ended) settle(r);
  report(now());
}

export function stopTiming() {
  flushTiming();
  if (observer) observer.disconnect();
  observer = null;
  pending.length = 0;
  clearTimer(timer);
  timer = 0;
}
