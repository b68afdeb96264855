// Diagnostics capture, started with the recording: console, errors, network, WebSockets, performance,
// environment and the freeze watchdog; and the app-facts API (`identify`, `setRelease`,
// `setEnvironment`, `setFlags`). Each part lives in its own module and is bounded on its own.
import { S, now, guard } from './state.js';
import { serialize, MAX_STRING } from './serialize.js';
import { startConsole, stopConsole } from './console.js';
import { captureError, startErrors, stopErrors } from './errors.js';
import { startNetwork, stopNetwork } from './network.js';
import { flushTiming } from './timing.js';
import { flushWebSockets, startWebSockets, stopWebSockets } from './websocket.js';
import { startPerf, stopPerf } from './perf.js';
import { recordEnvironment } from './environment.js';
import { startWatchdog, stopWatchdog } from './watchdog.js';

export { captureError };

const FACT = { identify: 0, release: 1, environment: 2, flags: 3 };

function json(v) {
  try {
    return JSON.stringify(v === undefined ? null : v).slice(0, 10 * MAX_STRING);
  } catch (_) {
    return JSON.stringify(serialize(v));
  }
}

/** A fact from the host app: user identity, release, environment name or feature flags. */
const latest = new Map(); // facts given before recording started are recorded when it starts

export function appFact(kind, value, traits) {
  latest.set(kind, [value, traits]);
  if (!S.rec || S.stopped) return;
  const text = kind === 'flags' ? json(value) : String(value == null ? '' : value).slice(0, MAX_STRING);
  S.rec.app_fact(now(), FACT[kind], text, kind === 'identify' ? json(traits === undefined ? {} : traits) : '');
}

/**
 * Starts every part; `cutBatch(atAction)` cuts and queues the current batch, `onFreeze` runs
 * after a freeze (the watchdog uses both).
 */
export function startDiagnostics(cutBatch, onFreeze) {
  for (const start of [recordEnvironment, startConsole, startErrors, startNetwork, startWebSockets, startPerf]) guard(start)();
  guard(startWatchdog)(cutBatch, onFreeze);
  for (const [kind, [value, traits]] of latest) guard(appFact)(kind, value, traits);
}

/**
 * Records now what waits for more (requests for their timing entry, WebSocket summaries): the
 * batch is cut for a flush asked for or the page going away.
 */
export function flushDiagnostics() {
  guard(flushTiming)();
  guard(flushWebSockets)();
}

export function stopDiagnostics() {
  for (const stop of [stopWatchdog, stopPerf, stopWebSockets, stopNetwork, stopErrors, stopConsole]) guard(stop)();
}
