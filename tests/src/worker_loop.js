// The upload worker's freeze watchdog (recorder/js/upload-worker.js) on a modelled event loop,
// run by node for `delivery::a_late_watchdog_check_lets_a_queued_heartbeat_in_first`. Time is
// a counter; a timer's task joins the queue when it falls due, also while the thread is busy
// (as in Firefox, whose timer thread queues it), and messages join it when posted. Each
// scenario imports a fresh copy of the worker and prints what the worker posted to the page.
// Usage: node worker_loop.js (next to upload-worker.js, upload-core.js and a package.json that
// says "type": "module").

/** The model's time in ms (not 0: the worker reads 0 as "no heartbeat yet"). */
const T0 = 100000;
let clock = T0;
/** @type {(() => void)[]} */
let tasks = [];
/** @type {Map<number, { due: number, every: number, fn: () => void }>} */
let timers = new Map();
let nextTimer = 1;
/** @type {unknown[]} */
let posted = [];

const realTimeout = globalThis.setTimeout;
/** Bodies the worker sent, as given to fetch. @type {Uint8Array[]} */
let sent = [];
globalThis.self = { postMessage: (m) => posted.push(m), onmessage: null };
globalThis.setTimeout = (fn, ms) => addTimer(fn, ms, 0);
globalThis.setInterval = (fn, ms) => addTimer(fn, ms, ms);
globalThis.clearTimeout = globalThis.clearInterval = (id) => timers.delete(id);
globalThis.fetch = (_url, init) => {
  sent.push(init.body);
  return new Promise(() => {});
};
Date.now = () => clock;

function addTimer(fn, ms, every) {
  const id = nextTimer++;
  timers.set(id, { due: clock + Math.max(0, ms || 0), every, fn });
  return id;
}

/** Queues the task of every timer due by now, in order of due time. */
function queueDueTimers() {
  const due = [...timers.entries()].filter(([, t]) => t.due <= clock).sort((a, b) => a[1].due - b[1].due);
  for (const [id, t] of due) {
    if (t.every) t.due += t.every;
    else timers.delete(id);
    tasks.push(() => t.fn());
  }
}

/** Runs tasks until `until` ms after T0, one millisecond at a time; `busy` holds them back meanwhile. */
function advance(until, busy = false, posts = []) {
  while (clock < T0 + until) {
    clock++;
    for (const p of posts) if (T0 + p.at === clock) tasks.push(() => self.onmessage({ data: p.msg }));
    queueDueTimers();
    while (!busy && tasks.length) {
      tasks.shift()();
      queueDueTimers();
    }
  }
}

const beat = { type: 'heartbeat', visible: true, marker: new Uint8Array([0x92, 1]) };

async function scenario(n, steps) {
  clock = T0;
  tasks = [];
  timers = new Map();
  posted = [];
  await import('./upload-worker.js?' + n);
  self.onmessage({ data: { type: 'config', cfg: { key: 'k', endpoint: 'http://127.0.0.1:9/ingest' } } });
  self.onmessage({ data: beat });
  steps();
  return posted.filter((m) => m.type === 'freeze').map((m) => m.since - T0);
}

// The page stops beating: the marker goes out once 1 s has passed.
const frozen = await scenario(1, () => advance(1500));
// The page beats 940 ms after the last heartbeat (under the page's FREEZE_SUSPECT_MS, so it
// reserves nothing), while this thread is busy from 890 to 1010 ms: the check due at 900 ms
// runs at 1010 ms, with that heartbeat already waiting behind it.
const late = await scenario(2, () => {
  advance(890);
  advance(1010, true, [{ at: 940, msg: beat }]);
  advance(1100);
});
// WebKit in CI: this thread starved through a 2 s freeze of the page, so no check ran then. The
// page answers at 2100 ms: its cut posts the batch of the freeze (2100) and the re-armed marker
// (2102), then its heartbeat (2106). The checks that fell due meanwhile run at 2104, when the
// thread gets the CPU back, and one of them starts a confirmation, which runs after the batch
// and the marker but before the heartbeat. The freeze is the page's to send now (it reserved
// that marker's number); the re-armed marker names a number the page did not reserve.
// (The page's cut posts the batch with the re-armed marker in its message, transport.js
// `enqueue`; a marker re-armed without a cut, when the user's action changed, comes alone.)
const rearmed = { type: 'marker', marker: new Uint8Array([0x92, 2]) };
const batch = { type: 'batch', id: 7, bytes: new Uint8Array([0x92, 3]), marker: new Uint8Array([0x92, 2]), at: -1 };
const starved = await scenario(3, () => {
  advance(500);
  advance(2104, true, [{ at: 2100, msg: batch }, { at: 2102, msg: rearmed }]);
  advance(2200, false, [{ at: 2106, msg: beat }]);
});
// The page posts a batch with its re-armed marker at 300 ms (a click's cut), then freezes for
// good: the marker still goes out, 1 s after the last thing the page posted.
const silent = await scenario(4, () => {
  advance(1200, false, [{ at: 300, msg: batch }]);
  const early = posted.some((m) => m.type === 'freeze');
  advance(1400);
  if (early) posted.push({ type: 'freeze', since: -1 });
});
// A marker armed by wasm, then heartbeats that only move it in time: the marker the worker
// sends is the one wasm would have armed at the last heartbeat's time, byte for byte
// (REPLAY_MOVE_CASE: the marker, where its times are, the heartbeat's time, that marker).
const move = JSON.parse(process.env.REPLAY_MOVE_CASE || 'null');
let moved = null;
if (move) {
  sent = [];
  await scenario(5, () => {
    self.onmessage({ data: { type: 'heartbeat', visible: true, marker: new Uint8Array(move.marker), at: move.at } });
    advance(250, false, [{ at: 250, msg: { type: 'heartbeat', visible: true, time: move.time } }]);
    advance(1600);
  });
  // The upload compresses with the platform's streams (promises, not the modelled timers);
  // uploads of the earlier scenarios' workers may still come in: the marker is the body of
  // its length.
  const { gunzipSync } = await import('node:zlib');
  const bodies = () => sent.map((b) => Array.from(gunzipSync(b))).filter((b) => b.length === move.expected.length);
  for (let i = 0; i < 100 && !bodies().length; i++) await new Promise((r) => realTimeout(r, 10));
  moved = bodies()[0] || [];
}
console.log(JSON.stringify({ frozen, late, starved, silent, moved, expected: move && move.expected }));
