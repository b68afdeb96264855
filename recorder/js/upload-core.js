// The upload loop, written once: gzip (CompressionStream), POST, retries with exponential
// backoff and jitter (Retry-After honoured), hopeless refusals (4xx other than 429) reported and
// never retried. One batch is in flight at a time, in queue order.
//
// Two places run it: the upload worker (upload-worker.js; `cargo xtask build-web` inlines this
// module into that classic script) and, when workers are unavailable, transport.js's
// main-thread fallback (which imports it only then). Both hear the outcomes through `report`:
// `{ type: 'ack' | 'rejected' | 'retrying', id, error }`.

/**
 * One batch waiting for the server. `id` 0 is a batch the page does not track (the freeze
 * marker and buffer copies the worker sends on its own).
 * @typedef {{ id: number, bytes: Bytes, tries: number, due: number }} Upload
 */

/** An encoded batch (wasm memory copied out, or restored from sessionStorage). @typedef {Uint8Array<ArrayBuffer>} Bytes */

/** @typedef {{ type: 'ack' | 'rejected' | 'retrying', id: number, error: string }} UploadReport */

/** @typedef {{ key: string, endpoint: string }} UploadConfig */

/**
 * Frees the memory behind `bytes` now instead of at the isolate's next garbage collection: its
 * buffer is detached (`ArrayBuffer.prototype.transfer(0)` moves the contents into an empty
 * buffer, and V8 frees the old backing store at once). Only for bytes nothing reads any more,
 * made in this isolate: the contents of a buffer that came in a message are kept by the
 * message's event too, until a garbage collection, whatever is done to the buffer; a view on
 * part of a buffer is left alone.
 * @param {Uint8Array} bytes
 */
export function release(bytes) {
  const b = /** @type {ArrayBuffer & { transfer?: (n: number) => ArrayBuffer, detached?: boolean }} */ (bytes.buffer);
  if (typeof b.transfer !== 'function' || b.detached || bytes.byteOffset !== 0 || bytes.byteLength !== b.byteLength) return;
  try { b.transfer(0); } catch (_) { /* not detachable (a wasm memory, say) */ }
}

/**
 * The gzip of `bytes`, or null where the browser has no CompressionStream. The bytes go
 * straight into the stream (no Blob: that copies them first), and each compressed chunk is
 * released once copied into the result.
 * @param {Bytes} bytes
 * @returns {Promise<Bytes | null>}
 */
async function gzip(bytes) {
  if (typeof CompressionStream !== 'function') return null;
  const stream = new CompressionStream('gzip');
  const writer = stream.writable.getWriter();
  writer.write(bytes).catch(() => {});
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  /** @type {Uint8Array[]} */
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
  }
  const out = new Uint8Array(n);
  n = 0;
  for (const c of chunks) {
    out.set(c, n);
    n += c.length;
    release(c);
  }
  return out;
}

/**
 * An upload queue. `config()` says where batches go (null: not yet known, nothing is sent);
 * `report` hears every outcome. The compressed body of a batch is released once sent.
 * @param {() => UploadConfig | null} config
 * @param {(report: UploadReport) => void} report
 */
export function createUploader(config, report) {
  /** @type {Upload[]} */
  const queue = [];
  let inflight = false;
  /** @type {ReturnType<typeof setTimeout> | 0} */
  let timer = 0;

  /** Sends the first batch once it is due; runs again after every outcome. */
  async function pump() {
    const cfg = config();
    if (inflight || !queue.length || !cfg) return;
    const item = queue[0];
    const wait = item.due - Date.now();
    if (wait > 0) {
      clearTimeout(timer);
      timer = setTimeout(pump, wait);
      return;
    }
    inflight = true;
    /** @type {'ack' | 'rejected' | 'retry'} */
    let outcome = 'retry';
    let error = '';
    /** @type {Bytes | null} */
    let zipped = null;
    try {
      zipped = await gzip(item.bytes);
      /** @type {Record<string, string>} */
      const headers = { 'content-type': 'application/msgpack', 'x-replay-key': cfg.key };
      if (zipped) headers['content-encoding'] = 'gzip';
      const res = await fetch(cfg.endpoint, {
        method: 'POST', body: zipped || item.bytes, headers, mode: 'cors', credentials: 'omit',
      });
      if (res.ok) {
        outcome = 'ack';
        // The request is over only once its answer is read: the upload worker may be ended
        // right after it reports (transport.js), which would cut a request still running.
        await res.arrayBuffer().catch(() => null);
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
    // The request copied its body when it was made.
    if (zipped) release(zipped);
    if (outcome === 'retry') {
      item.tries++;
      const backoff = Math.min(30000, 500 * 2 ** Math.min(item.tries, 6));
      item.due = Math.max(item.due, Date.now() + backoff / 2 + Math.random() * backoff / 2);
      report({ type: 'retrying', id: item.id, error });
    } else {
      // By identity: the page may have given up on this batch (`forget`) while it was in flight.
      const at = queue.indexOf(item);
      if (at >= 0) queue.splice(at, 1);
      report({ type: outcome, id: item.id, error });
    }
    inflight = false;
    pump();
  }

  return {
    queue,
    pump,
    /**
     * Queues a batch and sends it when its turn comes.
     * @param {number} id
     * @param {Bytes} bytes
     */
    add(id, bytes) {
      queue.push({ id, bytes, tries: 0, due: 0 });
      pump();
    },
    /**
     * Drops a batch the page gave up on (it is not sent again; one in flight finishes).
     * @param {number} id
     */
    forget(id) {
      const at = queue.findIndex((u) => u.id === id);
      if (at >= 0) queue.splice(at, 1);
    },
    /** Everything waiting for a retry is due now. */
    retryNow() {
      for (const item of queue) item.due = 0;
      pump();
    },
  };
}
