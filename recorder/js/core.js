// Session replay recorder: the in-page half that touches the DOM.
//
// JavaScript walks the DOM and listens; Rust (recorder_wasm) turns what it hands over into
// protocol events, buffers and encodes them. Each snapshot or mutation burst crosses into wasm
// in one call as a "tape" (one integer array plus one concatenated string; format documented in
// protocol/src/tape.rs). Every callback is guarded: the recorder never throws into the page.
import init, { Recorder } from './recorder_wasm.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const MATHML_NS = 'http://www.w3.org/1998/Math/MathML';
const SESSION_KEY = '__replay_session';
const IDLE_MS = 30 * 60 * 1000;
const MAX_BATCH_BYTES = 512 * 1024;
const MAX_BUFFER_BYTES = 16 * 1024 * 1024;
const MAX_QUEUE_BYTES = 32 * 1024 * 1024;
const KEEPALIVE_BUDGET = 60 * 1024;
const MOUSE_SAMPLE_MS = 50;
const MOUSE_FLUSH_MS = 500;
const SECRET_PARAM = /pass|token|secret|auth|session|sid|key|code|sig|jwt|credential|otp/i;
const OBSERVE = { childList: true, subtree: true, attributes: true, characterData: true };

let rec = null;
let cfg = null;
let observer = null;
let stopped = true;
let ids = new WeakMap();
let nextId = 1;
let session = '';
let flushTimer = 0;
const cleanups = [];
const queue = [];
let queueBytes = 0;
let inflight = false;
let acked = 0;
let rejected = 0;
let lastError = '';
let waiters = [];

const now = () => performance.timeOrigin + performance.now();

function guard(fn) {
  return function () {
    try {
      return fn.apply(this, arguments);
    } catch (e) {
      lastError = String(e && e.message || e);
      try { rec && rec.count_error(); } catch (_) { /* wasm gone */ }
    }
  };
}

function randomId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i] + 256).toString(16).slice(1);
  return s;
}

function sessionId() {
  let id = '';
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (saved && typeof saved.id === 'string' && now() - saved.last < IDLE_MS) id = saved.id;
  } catch (_) { /* storage disabled */ }
  id = id || randomId();
  touchSession(id);
  return id;
}

function touchSession(id) {
  try { sessionStorage.setItem(SESSION_KEY, JSON.stringify({ id, last: now() })); } catch (_) { /* ignore */ }
}

/** Replaces the values of query parameters whose names look secret. */
export function scrubUrl(u) {
  try {
    const url = new URL(u, location.href);
    let changed = false;
    url.searchParams.forEach((v, k) => {
      if (SECRET_PARAM.test(k)) { url.searchParams.set(k, 'REDACTED'); changed = true; }
    });
    return changed ? url.href : u;
  } catch (_) {
    return u;
  }
}

const mask = (v) => '*'.repeat(v.length);

function maskedValue(el) {
  const type = (el.type || '').toLowerCase();
  const auto = (el.getAttribute && el.getAttribute('autocomplete')) || '';
  if (type === 'password' || auto.indexOf('cc-') === 0) return '';
  return mask(String(el.value == null ? '' : el.value));
}

function attrValue(el, tag, name, value) {
  if (name === 'value' && (tag === 'input' || tag === 'option' || tag === 'textarea')) {
    return (el.type || '').toLowerCase() === 'password' ? '' : mask(value);
  }
  if ((name === 'href' || name === 'src') && value.indexOf('?') >= 0) return scrubUrl(value);
  return value;
}

// ---- the walker: serialises a subtree into the tape, assigning ids in document order ----

function walk(root, rootParent, ints, strs) {
  const nodes = [root];
  const parents = [rootParent];
  let count = 0;
  while (nodes.length) {
    const node = nodes.pop();
    const pid = parents.pop();
    const id = nextId++;
    ids.set(node, id);
    count++;
    let kids = node;
    switch (node.nodeType) {
      case 1: {
        const tag = node.localName;
        const nsUri = node.namespaceURI;
        const ns = nsUri === SVG_NS ? 1 : nsUri === MATHML_NS ? 2 : 0;
        const attrs = node.attributes;
        const n = attrs.length;
        ints.push(2, id, pid, ns, tag.length, n);
        strs.push(tag);
        for (let i = 0; i < n; i++) {
          const a = attrs[i];
          const v = attrValue(node, tag, a.name, a.value);
          ints.push(a.name.length, v.length);
          strs.push(a.name, v);
        }
        if (tag === 'script') { kids = null; break; }
        if (tag === 'template' && node.content) kids = node.content;
        break;
      }
      case 3: {
        const p = node.parentNode;
        const v = p && p.localName === 'textarea' ? mask(node.data) : node.data;
        ints.push(3, id, pid, v.length);
        strs.push(v);
        kids = null;
        break;
      }
      case 8:
        ints.push(4, id, pid, node.data.length);
        strs.push(node.data);
        kids = null;
        break;
      case 9:
        ints.push(0, id, 0);
        break;
      case 10:
        ints.push(1, id, pid, node.name.length, node.publicId.length, node.systemId.length);
        strs.push(node.name, node.publicId, node.systemId);
        kids = null;
        break;
      case 11:
        ints.push(5, id, pid);
        if (observer) observer.observe(node, OBSERVE);
        break;
      default:
        // Processing instructions, CDATA: not rendered in HTML documents.
        ints.push(4, id, pid, 0);
        kids = null;
    }
    if (kids) {
      for (let c = kids.lastChild; c; c = c.previousSibling) {
        nodes.push(c);
        parents.push(id);
      }
      // The open shadow root goes on last so that it comes out first, before light children.
      if (node.nodeType === 1 && node.shadowRoot) {
        nodes.push(node.shadowRoot);
        parents.push(id);
      }
    }
  }
  return count;
}

function takeSnapshot(t) {
  const ints = [0];
  const strs = [];
  ints[0] = walk(document, 0, ints, strs);
  rec.snapshot(t, new Uint32Array(ints), strs.join(''), Math.round(scrollX), Math.round(scrollY));
  // Form controls whose live value differs from their markup.
  const controls = document.querySelectorAll('input, textarea, select');
  for (let i = 0; i < controls.length; i++) {
    const el = controls[i];
    const type = (el.type || '').toLowerCase();
    if (type === 'checkbox' || type === 'radio') {
      if (el.checked !== el.defaultChecked) recordInput(el);
    } else if (el.value !== (el.defaultValue === undefined ? el.value : el.defaultValue)) {
      recordInput(el);
    }
  }
}

// ---- mutations ----

function parentOf(n) {
  return n.parentNode || (n.nodeType === 11 ? n.host : null);
}

function onRecords(records) {
  if (!records.length || stopped) return;
  const removes = [];
  const added = new Set();
  const attrs = new Map();
  const texts = new Set();
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (r.type === 'childList') {
      const rem = r.removedNodes;
      for (let j = 0; j < rem.length; j++) {
        const id = ids.get(rem[j]);
        if (id !== undefined) removes.push(id);
      }
      const add = r.addedNodes;
      for (let j = 0; j < add.length; j++) added.add(add[j]);
    } else if (r.type === 'attributes') {
      let names = attrs.get(r.target);
      if (!names) attrs.set(r.target, names = new Map());
      names.set(r.attributeName, r.attributeNamespace);
    } else {
      texts.add(r.target);
    }
  }
  const ints = [removes.length];
  for (let i = 0; i < removes.length; i++) ints.push(removes[i]);
  const strs = [];
  // Subtree roots: connected, parent known, no ancestor added in this burst.
  const byParent = new Map();
  for (const n of added) {
    if (!n.isConnected) continue;
    const p = n.parentNode;
    if (!p || !ids.has(p)) continue;
    if (p.localName === 'script') continue;
    let covered = false;
    for (let a = parentOf(p); a; a = parentOf(a)) {
      if (added.has(a)) { covered = true; break; }
    }
    if (added.has(p)) covered = true;
    if (covered) continue;
    let list = byParent.get(p);
    if (!list) byParent.set(p, list = []);
    list.push(n);
  }
  const nAddsAt = ints.length;
  ints.push(0);
  let nAdds = 0;
  for (const [p, list] of byParent) {
    // Right to left, so that each subtree's next sibling already has its (new) id.
    let ordered;
    if (list.length === 1) {
      ordered = list;
    } else {
      const set = new Set(list);
      ordered = [];
      for (let c = p.lastChild; c; c = c.previousSibling) if (set.has(c)) ordered.push(c);
      ordered.reverse();
    }
    const pid = ids.get(p);
    for (let k = ordered.length - 1; k >= 0; k--) {
      const n = ordered[k];
      let s = n.nextSibling;
      while (s && !ids.has(s)) s = s.nextSibling;
      ints.push(pid, s ? ids.get(s) : 0, 0);
      const at = ints.length - 1;
      ints[at] = walk(n, pid, ints, strs);
      nAdds++;
    }
  }
  ints[nAddsAt] = nAdds;
  const nAttrsAt = ints.length;
  ints.push(0);
  let nAttrs = 0;
  for (const [el, names] of attrs) {
    const id = ids.get(el);
    if (id === undefined || !el.isConnected) continue;
    const tag = el.localName;
    for (const [name, ns] of names) {
      const node = ns ? el.getAttributeNodeNS(ns, name) : el.getAttributeNode(name);
      const qname = node ? node.name : name;
      const value = node ? attrValue(el, tag, qname, node.value) : '';
      ints.push(id, node ? 1 : 0, qname.length, value.length);
      strs.push(qname, value);
      nAttrs++;
    }
  }
  ints[nAttrsAt] = nAttrs;
  const nTextsAt = ints.length;
  ints.push(0);
  let nTexts = 0;
  for (const t of texts) {
    const id = ids.get(t);
    if (id === undefined || !t.isConnected) continue;
    const p = t.parentNode;
    const v = p && p.localName === 'textarea' ? mask(t.data) : t.data;
    ints.push(id, v.length);
    strs.push(v);
    nTexts++;
  }
  ints[nTextsAt] = nTexts;
  if (removes.length + nAdds + nAttrs + nTexts === 0) return;
  rec.mutation(now(), new Uint32Array(ints), strs.join(''));
  if (rec.should_flush()) flushNow(false);
}

// ---- input, mouse, scroll, viewport ----

function recordInput(el) {
  const id = ids.get(el);
  if (id === undefined) return;
  const type = (el.type || '').toLowerCase();
  if (type === 'checkbox' || type === 'radio') {
    rec.input(now(), id, '', el.checked ? 1 : 0);
  } else {
    rec.input(now(), id, maskedValue(el), -1);
  }
}

let mouse = [];
let mouseStart = 0;
let mouseLast = 0;

function onMouseMove(e) {
  const t = now();
  if (t - mouseLast < MOUSE_SAMPLE_MS) return;
  mouseLast = t;
  if (!mouse.length) mouseStart = t;
  mouse.push(Math.round(e.clientX), Math.round(e.clientY), Math.round(t - mouseStart));
  if (t - mouseStart > MOUSE_FLUSH_MS) flushMouse();
}

function flushMouse() {
  if (!mouse.length) return;
  rec.mouse(mouseStart, new Int32Array(mouse));
  mouse = [];
}

const scrollTimers = new Map();

function onScroll(e) {
  const target = e.target;
  if (scrollTimers.has(target)) return;
  scrollTimers.set(target, setTimeout(guard(() => {
    scrollTimers.delete(target);
    if (stopped) return;
    if (target === document || target === document.documentElement) {
      rec.scroll(now(), 0, Math.round(scrollX), Math.round(scrollY));
    } else {
      const id = ids.get(target);
      if (id !== undefined) rec.scroll(now(), id, Math.round(target.scrollLeft), Math.round(target.scrollTop));
    }
  }), 100));
}

let resizeTimer = 0;
function onResize() {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(guard(() => rec.viewport(now(), innerWidth, innerHeight)), 200);
}

function listen(target, type, fn, opts) {
  const g = guard(fn);
  target.addEventListener(type, g, opts);
  cleanups.push(() => target.removeEventListener(type, g, opts));
}

// ---- transport ----

function enqueue(bytes) {
  if (queueBytes + bytes.length > MAX_QUEUE_BYTES) {
    // The oldest unsent batch goes first; the server sees the gap in sequence numbers.
    const old = queue.shift();
    if (old) queueBytes -= old.bytes.length;
  }
  queue.push({ bytes, tries: 0, due: 0 });
  queueBytes += bytes.length;
  pump();
}

function flushNow(isFinal) {
  if (!rec) return;
  if (observer) onRecords(observer.takeRecords());
  flushMouse();
  const bytes = rec.flush(now(), isFinal);
  if (bytes) enqueue(bytes);
  touchSession(session);
}

async function gzip(bytes) {
  if (typeof CompressionStream !== 'function') return null;
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function settle() {
  if (queue.length || inflight) return;
  const w = waiters;
  waiters = [];
  for (const r of w) r(stats());
}

function stats() {
  return { acked, rejected, pending: queue.length, dropped: rec ? rec.dropped_total() : 0, error: lastError };
}

async function pump() {
  if (inflight || !queue.length) return settle();
  const item = queue[0];
  const wait = item.due - Date.now();
  if (wait > 0) {
    setTimeout(() => pump(), wait);
    return;
  }
  inflight = true;
  let retry = true;
  try {
    const zipped = await gzip(item.bytes);
    const headers = { 'content-type': 'application/msgpack', 'x-replay-key': cfg.key };
    if (zipped) headers['content-encoding'] = 'gzip';
    const res = await fetch(cfg.endpoint, {
      method: 'POST', body: zipped || item.bytes, headers, mode: 'cors', credentials: 'omit',
    });
    if (res.ok) {
      retry = false;
      acked++;
    } else if (res.status !== 429 && res.status >= 400 && res.status < 500) {
      // The server will never take this batch: drop it and remember why.
      retry = false;
      rejected++;
      lastError = 'rejected with ' + res.status + ': ' + (await res.text()).slice(0, 200);
    } else {
      const after = Number(res.headers.get('retry-after'));
      if (after > 0) item.due = Date.now() + after * 1000;
    }
  } catch (e) {
    lastError = String(e && e.message || e);
  }
  if (!retry) {
    queue.shift();
    queueBytes -= item.bytes.length;
  } else {
    item.tries++;
    const backoff = Math.min(30000, 500 * 2 ** Math.min(item.tries, 6));
    item.due = Math.max(item.due, Date.now() + backoff / 2 + Math.random() * backoff / 2);
  }
  inflight = false;
  if (!stopped || queue.length) pump();
  else settle();
}

/** Last chance on pagehide: what fits the keepalive budget goes out raw (no async compression). */
function finalFlush() {
  flushNow(true);
  let budget = KEEPALIVE_BUDGET;
  for (const item of queue) {
    if (item.bytes.length > budget) break;
    budget -= item.bytes.length;
    try {
      fetch(cfg.endpoint, {
        method: 'POST', body: item.bytes, keepalive: true, mode: 'cors', credentials: 'omit',
        headers: { 'content-type': 'application/msgpack', 'x-replay-key': cfg.key },
      }).catch(() => {});
    } catch (_) { /* budget exceeded: the batch stays queued */ }
  }
}

// ---- public API ----

function start() {
  if (!stopped) return;
  stopped = false;
  session = sessionId();
  rec = new Recorder(session, randomId(), MAX_BATCH_BYTES, MAX_BUFFER_BYTES);
  observer = new MutationObserver(guard(onRecords));
  const t0 = now();
  rec.meta(t0, scrubUrl(location.href), document.title, innerWidth, innerHeight, navigator.userAgent,
    scrubUrl(document.referrer));
  takeSnapshot(t0);
  observer.observe(document, OBSERVE);
  listen(document, 'input', (e) => recordInput(e.target), true);
  listen(document, 'change', (e) => recordInput(e.target), true);
  listen(document, 'click', (e) => {
    const id = ids.get(e.target);
    rec.click(now(), id === undefined ? 0 : id, Math.round(e.clientX), Math.round(e.clientY), e.button);
  }, true);
  listen(document, 'mousemove', onMouseMove, { capture: true, passive: true });
  listen(document, 'scroll', onScroll, { capture: true, passive: true });
  listen(window, 'resize', onResize, { passive: true });
  listen(window, 'pagehide', finalFlush);
  listen(document, 'visibilitychange', () => { if (document.visibilityState === 'hidden') finalFlush(); });
  flushTimer = setInterval(guard(() => flushNow(false)), cfg.flushIntervalMs || 5000);
}

const api = {
  async init(options) {
    cfg = Object.assign({}, cfg, options || {});
    if (!cfg.key) throw new Error('replay: an ingest key is required');
    if (document.readyState === 'loading') {
      await new Promise((r) => document.addEventListener('DOMContentLoaded', r, { once: true }));
    }
    guard(start)();
  },
  async identify(user, traits) { api.addEvent('$identify', { user, traits }); },
  async setFlags(flags) { api.addEvent('$flags', flags); },
  async setRelease(release) { api.addEvent('$release', { release }); },
  async setEnvironment(environment) { api.addEvent('$environment', { environment }); },
  async addEvent(name, data) {
    guard(() => rec && !stopped && rec.custom(now(), String(name), JSON.stringify(data === undefined ? null : data)))();
  },
  async captureError(err) {
    api.addEvent('$error', { message: String(err && err.message || err), stack: String(err && err.stack || '') });
  },
  flush() {
    guard(() => flushNow(false))();
    return new Promise((resolve) => { waiters.push(resolve); settle(); pump(); });
  },
  async stop() {
    if (stopped) return;
    guard(() => flushNow(true))();
    stopped = true;
    if (observer) observer.disconnect();
    clearInterval(flushTimer);
    for (const c of cleanups.splice(0)) c();
  },
  async sessionUrl() {
    return new URL('viewer/player.html?session=' + encodeURIComponent(session), cfg.base).href;
  },
  stats,
};

/** Called by the loader: loads the wasm and starts when the script tag carries a key. */
export async function boot(src, data) {
  const base = new URL('./', src).href;
  cfg = {
    base,
    key: data.key || '',
    endpoint: data.endpoint || new URL('api/v1/ingest', base).href,
    flushIntervalMs: Number(data['flush-interval']) || 5000,
  };
  await init({ module_or_path: new URL('./recorder_wasm_bg.wasm', import.meta.url) });
  if (cfg.key) await api.init({});
  return api;
}

export { api };
