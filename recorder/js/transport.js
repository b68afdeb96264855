// Delivery: a bounded queue of encoded batches, gzip via CompressionStream, uploads with
// retries (exponential backoff with jitter, Retry-After honoured, hopeless 4xx dropped and
// reported), and the last-chance flush on pagehide within the keepalive budget.
import { S } from './state.js';

const MAX_QUEUE_BYTES = 32 * 1024 * 1024;
const KEEPALIVE_BUDGET = 60 * 1024;

const queue = [];
let queueBytes = 0;
let inflight = false;
let acked = 0;
let rejected = 0;
let droppedBatches = 0;
let waiters = [];

/** Adds an encoded batch to the upload queue. */
export function enqueue(bytes) {
  while (queue.length && queueBytes + bytes.length > MAX_QUEUE_BYTES) {
    // The oldest unsent batch goes first; the server sees the gap in sequence numbers.
    const old = queue.shift();
    queueBytes -= old.bytes.length;
    droppedBatches++;
  }
  queue.push({ bytes, tries: 0, due: 0 });
  queueBytes += bytes.length;
  pump();
}

async function gzip(bytes) {
  if (typeof CompressionStream !== 'function') return null;
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Delivery figures, also the value `Replay.flush()` resolves with. */
export function stats() {
  return {
    acked,
    rejected,
    pending: queue.length,
    droppedBatches,
    dropped: S.rec ? S.rec.dropped_total() : 0,
    error: S.lastError,
  };
}

function settle() {
  if (queue.length || inflight) return;
  const w = waiters;
  waiters = [];
  for (const r of w) r(stats());
}

/** Resolves once the queue is empty (everything acknowledged or refused for good). */
export function whenDrained() {
  return new Promise((resolve) => { waiters.push(resolve); settle(); pump(); });
}

async function pump() {
  if (inflight || !queue.length) { settle(); return; }
  const item = queue[0];
  const wait = item.due - Date.now();
  if (wait > 0) {
    setTimeout(pump, wait);
    return;
  }
  inflight = true;
  let retry = true;
  try {
    const zipped = await gzip(item.bytes);
    const headers = { 'content-type': 'application/msgpack', 'x-replay-key': S.cfg.key };
    if (zipped) headers['content-encoding'] = 'gzip';
    const res = await fetch(S.cfg.endpoint, {
      method: 'POST', body: zipped || item.bytes, headers, mode: 'cors', credentials: 'omit',
    });
    if (res.ok) {
      retry = false;
      acked++;
    } else if (res.status !== 429 && res.status >= 400 && res.status < 500) {
      // The server will never take this batch: drop it and remember why.
      retry = false;
      rejected++;
      S.lastError = 'rejected with ' + res.status + ': ' + (await res.text()).slice(0, 200);
    } else {
      const after = Number(res.headers.get('retry-after'));
      if (after > 0) item.due = Date.now() + after * 1000;
    }
  } catch (e) {
    S.lastError = String((e && e.message) || e);
  }
  if (retry) {
    item.tries++;
    const backoff = Math.min(30000, 500 * 2 ** Math.min(item.tries, 6));
    item.due = Math.max(item.due, Date.now() + backoff / 2 + Math.random() * backoff / 2);
  } else {
    queue.shift();
    queueBytes -= item.bytes.length;
  }
  inflight = false;
  pump();
}

/** Last chance on pagehide: what fits the keepalive budget goes out uncompressed right now. */
export function sendQueuedWithKeepalive() {
  let budget = KEEPALIVE_BUDGET;
  for (const item of queue) {
    if (item.bytes.length > budget) break;
    budget -= item.bytes.length;
    try {
      fetch(S.cfg.endpoint, {
        method: 'POST', body: item.bytes, keepalive: true, mode: 'cors', credentials: 'omit',
        headers: { 'content-type': 'application/msgpack', 'x-replay-key': S.cfg.key },
      }).catch(() => {});
    } catch (_) { /* over the browser's keepalive quota: the batch stays queued */ }
  }
}
