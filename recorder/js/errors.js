// Error capture: uncaught errors and unhandled rejections with message, stack, source, line and
// column; failed loads of images, scripts, stylesheets and media (a capture-phase `error`
// listener, since those events do not bubble); `Replay.captureError(err)`. Repeats of the same
// error are not sent again: they are counted, and the count since the last report travels in
// the next report of that error (at most every few seconds).
import { S, now, guard, setRepeat, clearRepeat } from './state.js';
import { scrubUrl, scrubUrlsIn } from './privacy.js';
import { serialize, MAX_STRING } from './serialize.js';
import { Throttle } from './throttle.js';

const KIND = { uncaught: 0, rejection: 1, resource: 2, captured: 3 };
const MAX_STACK = 4000;
const MAX_DISTINCT = 200;
const REPORT_REPEATS_MS = 5000;
const RESOURCE_TAGS = new Set(['img', 'script', 'link', 'video', 'audio', 'source', 'iframe', 'embed', 'object', 'image']);
const throttle = new Throttle('errors', 50, 10000);

/** key → { kind, message, stack, source, line, column, repeats } */
const seen = new Map();
let overflow = 0;
let timer = 0;
const cleanups = [];

function send(e, count) {
  if (!throttle.take()) return;
  if (S.beforeText) S.beforeText();
  S.rec.error(now(), e.kind, e.message, e.stack, e.source, e.line, e.column, count);
}

/** Records an error, or counts it when the same one was seen before. */
export function report(kind, message, stack, source, line, column) {
  if (!S.rec || S.stopped) return;
  const e = {
    kind: KIND[kind],
    message: scrubUrlsIn(String(message || '').slice(0, MAX_STRING)),
    stack: scrubUrlsIn(String(stack || '').slice(0, MAX_STACK)),
    source: scrubUrl(String(source || '')),
    line: line >>> 0,
    column: column >>> 0,
    repeats: 0,
  };
  const key = e.kind + '\n' + e.message + '\n' + e.source + ':' + e.line + ':' + e.column;
  const known = seen.get(key);
  if (known) {
    known.repeats++;
    return;
  }
  if (seen.size >= MAX_DISTINCT) {
    overflow++;
    if (overflow === 1 || overflow % 100 === 0) S.rec.note(now(), 1, 0, overflow, 'distinct errors beyond ' + MAX_DISTINCT + ' not recorded');
    return;
  }
  seen.set(key, e);
  send(e, 1);
}

function reportRepeats() {
  for (const e of seen.values()) {
    if (e.repeats) {
      send(e, e.repeats);
      e.repeats = 0;
    }
  }
}

function onError(ev) {
  const t = ev.target;
  if (t && t !== window && t.nodeType === 1 && !(ev instanceof ErrorEvent)) {
    const tag = t.localName;
    if (!RESOURCE_TAGS.has(tag)) return;
    const url = t.currentSrc || t.src || t.href || (t.getAttribute && (t.getAttribute('src') || t.getAttribute('href'))) || '';
    report('resource', 'failed to load ' + tag + ' ' + scrubUrl(String(url)), '', url, 0, 0);
    return;
  }
  const err = ev.error;
  report('uncaught', ev.message || serialize(err), err && err.stack, ev.filename, ev.lineno, ev.colno);
}

function onRejection(ev) {
  const r = ev.reason;
  const message = r instanceof Error ? (r.name || 'Error') + ': ' + r.message : serialize(r);
  report('rejection', message, r && r.stack, '', 0, 0);
}

/** `Replay.captureError(err)`: an error the app caught and wants in the replay. */
export function captureError(err) {
  const isError = err instanceof Error;
  const message = isError ? (err.name || 'Error') + ': ' + err.message : serialize(err);
  let stack = isError ? err.stack : '';
  if (!stack) stack = String(new Error().stack || '').split('\n').slice(2).join('\n');
  report('captured', message, stack, '', 0, 0);
}

export function startErrors() {
  const err = guard(onError);
  const rej = guard(onRejection);
  window.addEventListener('error', err, true);
  window.addEventListener('unhandledrejection', rej);
  cleanups.push(() => window.removeEventListener('error', err, true));
  cleanups.push(() => window.removeEventListener('unhandledrejection', rej));
  timer = setRepeat(guard(reportRepeats), REPORT_REPEATS_MS);
}

export function stopErrors() {
  guard(reportRepeats)();
  clearRepeat(timer);
  for (const c of cleanups.splice(0)) c();
}
