// Upload worker: compresses (CompressionStream gzip) and uploads batches off the main thread,
// with retries (exponential backoff with jitter, Retry-After honoured). Hopeless refusals
// (4xx other than 429) are dropped and reported. It keeps no state the page cannot rebuild:
// the page holds a copy of every batch until this worker reports it acknowledged.
//
// It is also the freeze watchdog: the page posts a heartbeat every ~250 ms with a marker batch
// (a `freeze_started` event, encoded ahead of time by wasm with the next sequence number). When
// no heartbeat arrives for 1 s while the page is visible, the page's main thread is stuck: every
// batch held here goes out at once, followed by the marker, so the server knows about the
// freeze even if the tab never recovers. In buffer mode the page also hands over a copy of
// what it holds back (`hold`; `release` when it goes live): a freeze is one of the things that
// send the buffer, and a frozen page can no longer send it itself.
'use strict';

const FREEZE_MS = 1000;
const WATCH_EVERY_MS = 100;
/** Most bytes of buffer-mode copies kept; the oldest go first. */
const HELD_MAX_BYTES = 16 * 1024 * 1024;

let held = [];
let heldBytes = 0;

/** Keeps a buffer-mode batch; like the page, from the latest batch that starts with a snapshot on. */
function hold(bytes, snapshot) {
  if (snapshot) {
    let from = 0;
    for (let i = held.length - 1; i >= 0; i--) if (held[i].snapshot) { from = i; break; }
    for (const h of held.slice(0, from)) heldBytes -= h.bytes.length;
    held = held.slice(from);
  }
  held.push({ bytes, snapshot });
  heldBytes += bytes.length;
  while (heldBytes > HELD_MAX_BYTES && held.length > 1) heldBytes -= held.shift().bytes.length;
}

let cfg = null;
const queue = [];
let inflight = false;
let timer = 0;

function post(msg) {
  self.postMessage(msg);
}

async function gzip(bytes) {
  if (typeof CompressionStream !== 'function') return null;
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function pump() {
  if (inflight || !queue.length || !cfg) return;
  const item = queue[0];
  const wait = item.due - Date.now();
  if (wait > 0) {
    clearTimeout(timer);
    timer = setTimeout(pump, wait);
    return;
  }
  inflight = true;
  let outcome = 'retry';
  let error = '';
  try {
    const zipped = await gzip(item.bytes);
    const headers = { 'content-type': 'application/msgpack', 'x-replay-key': cfg.key };
    if (zipped) headers['content-encoding'] = 'gzip';
    const res = await fetch(cfg.endpoint, {
      method: 'POST', body: zipped || item.bytes, headers, mode: 'cors', credentials: 'omit',
    });
    if (res.ok) {
      outcome = 'ack';
    } else if (res.status !== 429 && res.status >= 400 && res.status < 500) {
      outcome = 'rejected';
      error = 'rejected with ' + res.status + ': ' + (await res.text()).slice(0, 200);
    } else {
      error = 'server answered ' + res.status;
      const after = Number(res.headers.get('retry-after'));
      if (after > 0) item.due = Date.now() + after * 1000;
    }
  } catch (e) {
    error = String((e && e.message) || e);
  }
  if (outcome === 'retry') {
    item.tries++;
    const backoff = Math.min(30000, 500 * 2 ** Math.min(item.tries, 6));
    item.due = Math.max(item.due, Date.now() + backoff / 2 + Math.random() * backoff / 2);
    post({ type: 'retrying', id: item.id, error });
  } else {
    queue.shift();
    post({ type: outcome, id: item.id, error });
  }
  inflight = false;
  pump();
}

let lastBeat = 0;
let visible = false;
let marker = null;
let fired = false;
let watchTimer = 0;

function watch() {
  if (!visible || fired || !marker || !lastBeat || Date.now() - lastBeat < FREEZE_MS) return;
  fired = true;
  for (const item of queue) item.due = 0;
  // Buffer mode: what the page held back goes first (untracked, like the marker: if the page
  // recovers it sends the same batches again and the server stores them once).
  for (const h of held) queue.push({ id: 0, bytes: h.bytes, tries: 0, due: 0 });
  held = [];
  heldBytes = 0;
  // id 0: the page does not track the marker (it sends it itself after the freeze; the server
  // stores it once).
  queue.push({ id: 0, bytes: marker, tries: 0, due: 0 });
  post({ type: 'freeze', since: lastBeat });
}

self.onmessage = (e) => {
  const m = e.data;
  if (m.type === 'heartbeat') {
    lastBeat = Date.now();
    visible = !!m.visible;
    marker = m.marker || null;
    fired = false;
    if (!watchTimer) watchTimer = setInterval(() => { watch(); pump(); }, WATCH_EVERY_MS);
    return;
  } else if (m.type === 'marker') {
    if (!fired) marker = m.marker || null;
    return;
  } else if (m.type === 'config') {
    cfg = m.cfg;
  } else if (m.type === 'hold') {
    hold(m.bytes, !!m.snapshot);
    return;
  } else if (m.type === 'release') {
    held = [];
    heldBytes = 0;
    return;
  } else if (m.type === 'batch') {
    queue.push({ id: m.id, bytes: m.bytes, tries: 0, due: 0 });
  } else if (m.type === 'retry-now') {
    for (const item of queue) item.due = 0;
  }
  pump();
};
