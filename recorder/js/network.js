// Network capture: fetch, XMLHttpRequest and sendBeacon. Recorded: method, URL (secrets
// scrubbed), status, start, duration, request and response sizes, failure or abort and why
// (network error, CORS, timeout; see FailureKind in protocol/src/network.rs), and the browser's
// Resource Timing breakdown (timing.js). WebSockets are websocket.js's. Headers
// and bodies only for URLs on the explicit allow-list (`networkAllowList` option: URL prefixes
// or regular expressions); cookies, Authorization and the recorder's own key never.
//
// The wrappers must not change what the page sees: the original function is called with the
// original arguments (streams, FormData, Blob bodies, signals and keepalive pass through
// untouched), its result is returned as is (fetch: the same Response, the same rejection), and
// bodies are only ever read from a clone, up to a bound. The recorder's own uploads are skipped.
import { S, now, guard, likeOriginal } from './state.js';
import { scrubUrl } from './privacy.js';
import { Throttle } from './throttle.js';
import { startTiming, stopTiming, track, finish } from './timing.js';

const KIND = { fetch: 0, xhr: 1, beacon: 2 };
const FAILURE = { network: 1, cors: 2, aborted: 3, timeout: 4, crossOrigin: 5 };
const MAX_BODY = 10 * 1024;
const MAX_HEADERS = 50;
const NEVER_HEADERS = /^(cookie|set-cookie|authorization|proxy-authorization|x-replay-key)$/i;
const throttle = new Throttle('network requests', 100, 10000);
const restore = [];

export function absolute(url) {
  try { return new URL(url, location.href).href; } catch (_) { return String(url); }
}

/** True for the recorder's own requests (uploads, its module and worker). */
function ours(url) {
  const cfg = S.cfg || {};
  return (cfg.endpoint && url.indexOf(cfg.endpoint) === 0) || (cfg.base && url.indexOf(cfg.base + 'recorder') === 0);
}

export function allowListed(url) {
  const list = (S.cfg && S.cfg.networkAllowList) || [];
  for (const p of list) {
    if (typeof p === 'string' ? url.indexOf(absolute(p)) === 0 : p instanceof RegExp && p.test(url)) return true;
  }
  return false;
}

/** Size of a request body without reading it (0 when unknown: streams). */
function bodySize(body) {
  if (body == null) return 0;
  if (typeof body === 'string') return body.length;
  if (body instanceof Blob) return body.size;
  if (body instanceof ArrayBuffer) return body.byteLength;
  if (ArrayBuffer.isView(body)) return body.byteLength;
  if (body instanceof URLSearchParams) return body.toString().length;
  if (body instanceof FormData) {
    let n = 0;
    for (const [k, v] of body.entries()) n += k.length + (typeof v === 'string' ? v.length : v.size);
    return n;
  }
  return 0;
}

/** Request body text for allow-listed URLs: only bodies that are text already. */
function bodyText(body) {
  if (typeof body === 'string') return body.slice(0, MAX_BODY);
  if (body instanceof URLSearchParams) return body.toString().slice(0, MAX_BODY);
  return '';
}

function headerPairs(entries) {
  const out = [];
  for (const [name, value] of entries) {
    if (out.length >= MAX_HEADERS * 2) break;
    if (!NEVER_HEADERS.test(name)) out.push(String(name).toLowerCase(), String(value).slice(0, 500));
  }
  return out;
}

function parseRawHeaders(raw) {
  const pairs = [];
  for (const line of String(raw || '').trim().split(/[\r\n]+/)) {
    const i = line.indexOf(':');
    if (i > 0) pairs.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
  }
  return pairs;
}

/**
 * Why a request got no response. A cross-origin request refused by CORS fails exactly like a
 * network error (browsers hide which, so that pages cannot probe), unless the browser's message
 * names CORS (WebKit's does): such a failure is `crossOrigin`. Same-origin and `no-cors`
 * requests cannot be refused by CORS: theirs is a network error.
 */
function failureOf(r, err) {
  const name = err && err.name;
  if (r.aborted || name === 'AbortError') return FAILURE.aborted;
  if (r.timedOut || name === 'TimeoutError') return FAILURE.timeout;
  if (/access-control|cors/i.test(r.error || '')) return FAILURE.cors;
  let cross = false;
  try { cross = new URL(r.url).origin !== location.origin; } catch (_) { /* not a URL */ }
  return cross && r.mode !== 'no-cors' ? FAILURE.crossOrigin : FAILURE.network;
}

function record(r) {
  if (!S.rec || S.stopped || !throttle.take()) return;
  const end = Math.max(r.end || now(), r.lastByte || 0);
  if (S.beforeText) S.beforeText();
  S.rec.network(r.start, KIND[r.kind], r.method, scrubUrl(r.url), r.status, Math.max(0, Math.round(end - r.start)),
    r.req, r.res, !!r.failed, !!r.aborted, r.error || '', r.reqHeaders || [], r.resHeaders || [], r.reqBody || '',
    r.resBody || '', r.failure || 0, r.timing || [], r.protocol || '');
}

/** The request ended (response, failure or abort): recorded once its timing entry is in. */
function emit(r) {
  if (!r.end) r.end = now();
  if (r.kind === 'beacon') record(r); else finish(r);
}

/** Reads at most MAX_BODY characters of a response clone, then lets go of it. */
async function readPrefix(res) {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (text.length < MAX_BODY) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return text.slice(0, MAX_BODY);
}

// ---- fetch ----

function beginFetch(input, init) {
  const isRequest = typeof Request !== 'undefined' && input instanceof Request;
  const url = absolute(isRequest ? input.url : input);
  if (ours(url)) return null;
  const body = init && 'body' in init ? init.body : null;
  const r = {
    kind: 'fetch', start: now(), url,
    method: String((init && init.method) || (isRequest && input.method) || 'GET').toUpperCase(),
    req: bodySize(body), res: 0, status: 0,
    mode: (init && init.mode) || (isRequest && input.mode) || 'cors',
  };
  track(r);
  if (allowListed(url)) {
    r.capture = true;
    const h = init && init.headers ? new Headers(init.headers) : isRequest ? input.headers : null;
    r.reqHeaders = h ? headerPairs(h.entries()) : [];
    r.reqBody = bodyText(body);
  }
  return r;
}

function fetchDone(r, res) {
  r.end = now();
  r.status = res.status;
  r.res = Number(res.headers.get('content-length')) || 0;
  if (!r.capture) return emit(r);
  r.resHeaders = headerPairs(res.headers.entries());
  let clone = null;
  try { clone = res.clone(); } catch (_) { /* body already used */ }
  if (!clone) return emit(r);
  readPrefix(clone).then((text) => {
    r.resBody = text;
    if (!r.res) r.res = text.length;
  }, () => {}).then(guard(() => emit(r)));
  return undefined;
}

function fetchFailed(r, err) {
  r.aborted = !!err && err.name === 'AbortError';
  r.failed = !r.aborted;
  r.error = String((err && err.message) || err).slice(0, 300);
  r.failure = failureOf(r, err);
  emit(r);
}

function wrapFetch() {
  const original = window.fetch;
  if (typeof original !== 'function') return;
  const done = guard(fetchDone);
  const failed = guard(fetchFailed);
  const begin = guard(beginFetch);
  const wrapped = function fetch(input, init) {
    const r = S.stopped ? null : begin(input, init);
    const promise = original.apply(this, arguments);
    if (!r) return promise;
    return promise.then((res) => { done(r, res); return res; }, (err) => { failed(r, err); throw err; });
  };
  window.fetch = likeOriginal(wrapped, original);
  // A wrapper the page (or another tool) put over ours stays: ours then only passes calls on.
  restore.push(() => { if (window.fetch === wrapped) window.fetch = original; });
}

// ---- XMLHttpRequest ----

function wrapXhr() {
  if (typeof XMLHttpRequest !== 'function') return;
  const proto = XMLHttpRequest.prototype;
  const { open, send, setRequestHeader } = proto;
  const requests = new WeakMap();
  /** The request each object is sending, until it is recorded (`finish`). */
  const sent = new WeakMap();
  /** Records the request `r` of `xhr` once, and takes its listeners off the object. */
  const finish = (xhr, r) => {
    if (sent.get(xhr) !== r) return;
    sent.delete(xhr);
    r.off();
    onEnd(xhr, r);
  };
  const onOpen = guard((xhr, method, url) => {
    // A page that reuses the object from its own `load` handler opens it again before our
    // `loadend` (what it answered is still there: recorded now), and `open` while a request
    // runs ends it without any event.
    const before = sent.get(xhr);
    if (before) {
      if (xhr.readyState !== 4) before.aborted = true;
      finish(xhr, before);
    }
    const abs = absolute(url);
    if (ours(abs) || S.stopped) { requests.delete(xhr); return; }
    const capture = allowListed(abs);
    requests.set(xhr, { kind: 'xhr', method: String(method || 'GET').toUpperCase(), url: abs, capture,
      reqHeaders: capture ? [] : undefined, req: 0, res: 0, status: 0, off: () => {} });
  });
  const onHeader = guard((xhr, name, value) => {
    const r = requests.get(xhr);
    if (r && r.capture && !NEVER_HEADERS.test(name) && r.reqHeaders.length < MAX_HEADERS * 2) {
      r.reqHeaders.push(String(name).toLowerCase(), String(value).slice(0, 500));
    }
  });
  const onEnd = guard((xhr, r) => {
    r.status = xhr.status;
    if (r.aborted) r.status = 0;
    else if (!r.status) { r.failed = true; r.error = r.timedOut ? 'timeout' : 'network error'; }
    if (r.aborted || r.failed) r.failure = failureOf(r, null);
    r.res = Number(xhr.getResponseHeader('content-length')) || 0;
    if (r.capture && !r.failed && !r.aborted) {
      r.resHeaders = headerPairs(parseRawHeaders(xhr.getAllResponseHeaders()));
      if (xhr.responseType === '' || xhr.responseType === 'text') {
        r.resBody = xhr.responseText.slice(0, MAX_BODY);
        if (!r.res) r.res = xhr.responseText.length;
      }
    }
    emit(r);
  });
  const onSend = guard((xhr, body) => {
    const r = requests.get(xhr);
    // A second `send` of a running request throws in the browser: nothing to record again.
    if (!r || sent.get(xhr) === r) return;
    r.start = now();
    r.end = 0;
    r.req = bodySize(body);
    track(r);
    if (r.capture) r.reqBody = bodyText(body);
    sent.set(xhr, r);
    // This request's listeners, taken off when it is recorded: a page that reuses one object
    // gained two listeners per request. Its own events come while the object is DONE (4);
    // those of the request before it still come after the page opened it again from that
    // request's `load` handler (the object is OPENED then), and are not this one's.
    const aborted = () => { if (xhr.readyState === 4) r.aborted = true; };
    const timedOut = () => { if (xhr.readyState === 4) r.timedOut = true; };
    const ended = () => { if (xhr.readyState === 4) finish(xhr, r); };
    xhr.addEventListener('abort', aborted);
    xhr.addEventListener('timeout', timedOut);
    xhr.addEventListener('loadend', ended);
    r.off = () => {
      xhr.removeEventListener('abort', aborted);
      xhr.removeEventListener('timeout', timedOut);
      xhr.removeEventListener('loadend', ended);
    };
  });
  proto.open = function (method, url) {
    onOpen(this, method, url);
    return open.apply(this, arguments);
  };
  proto.setRequestHeader = function (name, value) {
    onHeader(this, name, value);
    return setRequestHeader.apply(this, arguments);
  };
  proto.send = function (body) {
    onSend(this, body);
    return send.apply(this, arguments);
  };
  likeOriginal(proto.open, open);
  likeOriginal(proto.send, send);
  likeOriginal(proto.setRequestHeader, setRequestHeader);
  const mine = { open: proto.open, send: proto.send, setRequestHeader: proto.setRequestHeader };
  const originals = { open, send, setRequestHeader };
  restore.push(() => {
    for (const name of /** @type {('open' | 'send' | 'setRequestHeader')[]} */ (['open', 'send', 'setRequestHeader'])) {
      if (proto[name] === mine[name]) proto[name] = /** @type {any} */ (originals[name]);
    }
  });
}

// ---- sendBeacon ----

function wrapBeacon() {
  if (typeof navigator.sendBeacon !== 'function') return;
  const original = navigator.sendBeacon;
  const after = guard((url, data, queued) => {
    const abs = absolute(url);
    if (ours(abs) || S.stopped) return;
    const r = { kind: 'beacon', start: now(), method: 'POST', url: abs, req: bodySize(data), res: 0, status: 0,
      failed: !queued, error: queued ? '' : 'not queued by the browser', failure: queued ? 0 : FAILURE.network };
    if (allowListed(abs)) r.reqBody = bodyText(data);
    emit(r);
  });
  const wrapped = function sendBeacon(url, data) {
    const queued = original.apply(this, arguments);
    after(url, data, queued);
    return queued;
  };
  navigator.sendBeacon = likeOriginal(wrapped, original);
  restore.push(() => { if (navigator.sendBeacon === wrapped) navigator.sendBeacon = original; });
}

export function startNetwork() {
  startTiming(guard(record));
  wrapFetch();
  wrapXhr();
  wrapBeacon();
}

export function stopNetwork() {
  stopTiming();
  for (const r of restore.splice(0)) r();
}
