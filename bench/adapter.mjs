// Benchmark adapter for the shared session-recorder benchmark (../shared/bench, README section
// "Plugging in a recorder"). Variant name: `replay`.
//
//   cd /work/main && cargo xtask build
//   bash ../shared/bench/run.sh --quick --adapter=bench/adapter.mjs --variants=none,rrweb,replay
//   (or simply: cargo xtask bench --quick)
//
// setup    spawns our replay-server (127.0.0.1, random port, data under ctx.scratchDir) and reads
//          the listen address and the ingest key it prints.
// start    inserts the production embed tag <script src=".../recorder.js" data-key=KEY> into the
//          rendered page and resolves once the recorder is recording (its full snapshot taken).
// finish   `await Replay.flush()`: resolves when the server acknowledged every batch; reports
//          what the server counted (/metrics deltas and the session's index row).
// replay   opens the viewer (player.html?bench) on the run's session and calls
//          replayPlayer.benchReplay(): ranges are downloaded first (as the player fetches them),
//          then timed: first range decoded + first frame in the iframe (open -> ready), then the
//          remaining ranges decoded + seek to the end (seekStart -> seekEnd).
// teardown stops the server.
//
// Environment:
//   REPLAY_SERVER_BIN            server binary (default ../target/server/replay-server from here)
//   REPLAY_LOG                   server log filter (default "warn"; logs go to <scratch>/server.log)
//   REPLAY_BENCH_STRICT=0        keep a run whose flush reports rejected/pending batches
//                                (default: such a run fails, with the flush result in the error)
//   REPLAY_BENCH_WASM_MARK=0     do not mark the end of WebAssembly instantiation (see start())
//   REPLAY_BENCH_READY_TIMEOUT_S how long start() waits for the recorder to record (default 60)
//   REPLAY_BENCH_FLUSH_TIMEOUT_S how long finish() waits for flush() (default 120)
//   REPLAY_BENCH_LOAF=1          logs, at finish(), every long animation frame seen after start()
//                                with the scripts that ran in it (source, function, invoker, ms):
//                                which of the recorder's tasks are long ones
//   REPLAY_BENCH_SMAPS=1         logs, at start() and at finish() (before the flush), the largest private
//                                mappings of every renderer process (/proc/PID/smaps): where
//                                the renderer's memory is (a wasm memory is one mapping of
//                                exactly its size in 64 KiB pages)
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const SERVER_BIN = process.env.REPLAY_SERVER_BIN
  ? path.resolve(process.env.REPLAY_SERVER_BIN)
  : fileURLToPath(new URL('../target/server/replay-server', import.meta.url));
const WEB_DIR = fileURLToPath(new URL('../target/web/', import.meta.url));
const STRICT = process.env.REPLAY_BENCH_STRICT !== '0';
const WASM_MARK = process.env.REPLAY_BENCH_WASM_MARK !== '0';
const READY_TIMEOUT_MS = 1000 * (Number(process.env.REPLAY_BENCH_READY_TIMEOUT_S) || 60);
const FLUSH_TIMEOUT_MS = 1000 * (Number(process.env.REPLAY_BENCH_FLUSH_TIMEOUT_S) || 120);
const LOAF = process.env.REPLAY_BENCH_LOAF === '1';
const SMAPS = process.env.REPLAY_BENCH_SMAPS === '1';

let child = null;        // the spawned replay-server
let origin = null;       // http://127.0.0.1:PORT
let ingestKey = null;
let logFile = null;
let servedFiles = null;  // { 'recorder/core.js': '/abs/copy', ... }: the recorder as served, for `bundles`
let killOnExit = null;
// The viewer and the session API need a sign-in: the spawned server gets a fresh admin token (API
// calls from here) and admin password (the viewer page signs in through the login form).
const ADMIN_TOKEN = randomBytes(24).toString('hex');
const ADMIN_PASSWORD = randomBytes(24).toString('hex');

/** The largest private mappings of each renderer process, one line per process. */
function renderersMemory() {
  const out = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmd = '';
    try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { continue; }
    if (!cmd.includes('--type=renderer')) continue;
    let text = '';
    try { text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8'); } catch { continue; }
    const maps = [];
    let cur = null;
    for (const line of text.split('\n')) {
      const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (head) { cur = { name: head[3] || 'anon', size: 0, priv: 0 }; maps.push(cur); continue; }
      const kv = /^(Size|Private_Clean|Private_Dirty):\s+(\d+) kB/.exec(line);
      if (kv && cur) { if (kv[1] === 'Size') cur.size = Number(kv[2]); else cur.priv += Number(kv[2]); }
    }
    const total = maps.reduce((n, m) => n + m.priv, 0);
    if (total < 50 * 1024) continue;
    maps.sort((a, b) => b.priv - a.priv);
    const top = maps.slice(0, 12).map((m) => `${(m.priv / 1024).toFixed(1)}/${(m.size / 1024).toFixed(1)}MB ${m.name.split('/').pop()}`);
    // Mappings by size class (a 2 MiB class is PartitionAlloc's super pages, say; V8's heap
    // reserves its own cage): what kind of memory holds the total.
    const classes = new Map();
    for (const m of maps) {
      const k = m.name !== 'anon' ? m.name.split('/').pop() : m.size <= 256 ? '<=256K' : m.size <= 2048 ? '<=2M' : m.size <= 8192 ? '<=8M' : m.size <= 65536 ? '<=64M' : '>64M';
      const c = classes.get(k) || { n: 0, priv: 0 };
      c.n++; c.priv += m.priv;
      classes.set(k, c);
    }
    const byClass = [...classes].filter(([, c]) => c.priv > 1024).sort((a, b) => b[1].priv - a[1].priv)
      .map(([k, c]) => `${k}: ${(c.priv / 1024).toFixed(1)} MB in ${c.n}`);
    out.push(`pid ${pid}: private ${(total / 1024).toFixed(1)} MB; by mapping class: ${byClass.join(', ')}; largest (private/size): ${top.join(', ')}`);
  }
  return out;
}

function serverGone() {
  return !child || child.exitCode !== null || child.signalCode !== null;
}

function serverLogTail() {
  try {
    const text = fs.readFileSync(logFile, 'utf8').trim();
    return text ? `\nserver log (${logFile}), last lines:\n${text.split('\n').slice(-15).join('\n')}` : '';
  } catch { return ''; }
}

async function get(pathname, type = 'text', headers = {}) {
  const res = await fetch(origin + pathname, { headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...headers } });
  if (!res.ok) throw new Error(`GET ${pathname}: ${res.status} ${(await res.text()).slice(0, 200)}`);
  return type === 'json' ? res.json() : type === 'bytes' ? Buffer.from(await res.arrayBuffer()) : res.text();
}

/** The ingest counters of /metrics (Prometheus text). */
async function ingestCounters() {
  const text = await get('/metrics');
  const c = { bytes: 0, stored: 0, duplicate: 0, rejected: 0, rejectedBy: {} };
  for (const line of text.split('\n')) {
    let m;
    if ((m = line.match(/^replay_ingest_bytes_total\s+(\d+)/))) c.bytes = Number(m[1]);
    else if ((m = line.match(/^replay_ingest_batches_total\{outcome="(\w+)"\}\s+(\d+)/))) c[m[1]] = Number(m[2]);
    else if ((m = line.match(/^replay_ingest_rejected_total\{reason="([^"]*)"\}\s+(\d+)/))) {
      c.rejectedBy[m[1]] = Number(m[2]);
      c.rejected += Number(m[2]);
    }
  }
  return c;
}

function counterDelta(a, b) {
  const by = {};
  for (const [k, v] of Object.entries(b.rejectedBy)) if (v - (a.rejectedBy[k] || 0)) by[k] = v - (a.rejectedBy[k] || 0);
  return { bytes: b.bytes - a.bytes, stored: b.stored - a.stored, duplicate: b.duplicate - a.duplicate, rejected: b.rejected - a.rejected, rejectedBy: by };
}

/**
 * Fetches /recorder.js and, transitively, every same-origin .js/.wasm file named by a string
 * literal in the JavaScript (imports, `new URL('x.wasm', import.meta.url)`, the loader's
 * `new URL('recorder/core.js', src)`), and writes copies under `dir`. Names that the server
 * does not serve (false positives) are skipped.
 */
async function copyRecorderFiles(dir) {
  const files = {};
  const todo = ['/recorder.js'];
  const seen = new Set();
  while (todo.length && seen.size < 100) {
    const p = todo.shift();
    if (seen.has(p)) continue;
    seen.add(p);
    let bytes;
    try { bytes = await get(p, 'bytes'); } catch (e) {
      if (p === '/recorder.js') throw new Error(`the server does not serve /recorder.js (${e.message}); rebuild with \`cargo xtask build\``);
      continue;
    }
    const label = p.slice(1);
    files[label] = path.join(dir, ...label.split('/'));
    fs.mkdirSync(path.dirname(files[label]), { recursive: true });
    fs.writeFileSync(files[label], bytes);
    if (!/\.m?js$/.test(p)) continue;
    for (const m of bytes.toString('utf8').matchAll(/['"`]([\w./-]+\.(?:m?js|wasm))['"`]/g)) {
      const u = new URL(m[1], origin + p);
      if (u.origin === origin && !seen.has(u.pathname)) todo.push(u.pathname);
    }
  }
  return files;
}

export default {
  name: 'replay',

  // Sizes of the recorder as served: setup fetches the loader and everything it references
  // (modules, wasm) from the server, since they are embedded in the binary. Without setup, the
  // build output in target/web is listed instead.
  bundles() {
    if (servedFiles) return servedFiles;
    const out = {};
    const add = (label, file) => { if (fs.existsSync(file)) out[label] = file; };
    add('recorder.js', path.join(WEB_DIR, 'recorder.js'));
    const dir = path.join(WEB_DIR, 'recorder');
    if (fs.existsSync(dir)) for (const f of fs.readdirSync(dir).sort()) if (/\.(m?js|wasm)$/.test(f)) add('recorder/' + f, path.join(dir, f));
    return out;
  },

  async setup(ctx) {
    if (!fs.existsSync(SERVER_BIN)) {
      throw new Error(`replay-server not found at ${SERVER_BIN}: run \`cargo xtask build\` in the repository first (or set REPLAY_SERVER_BIN)`);
    }
    const dataDir = path.join(ctx.scratchDir, 'data');
    fs.mkdirSync(dataDir, { recursive: true });
    logFile = path.join(ctx.scratchDir, 'server.log');
    const logFd = fs.openSync(logFile, 'a');
    child = spawn(SERVER_BIN, ['--listen', '127.0.0.1:0', '--data-dir', dataDir], {
      stdio: ['ignore', 'pipe', logFd],
      env: { ...process.env, REPLAY_LOG: process.env.REPLAY_LOG || 'warn', REPLAY_ADMIN_TOKEN: ADMIN_TOKEN, REPLAY_ADMIN_PASSWORD: ADMIN_PASSWORD },
    });
    fs.closeSync(logFd);
    killOnExit = () => { if (!serverGone()) child.kill('SIGKILL'); };
    process.once('exit', killOnExit);
    let stdout = '';
    const ready = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`replay-server printed no listen address and ingest key within 15 s; stdout so far: ${JSON.stringify(stdout)}${serverLogTail()}`)), 15000);
      child.stdout.on('data', d => {
        stdout += d;
        const listen = stdout.match(/replay-server listening on (http:\/\/127\.0\.0\.1:\d+)/);
        const key = stdout.match(/ingest key: ([0-9A-Za-z_-]+)/);
        if (listen && key) { clearTimeout(timer); resolve({ origin: listen[1], key: key[1] }); }
      });
      child.once('error', e => { clearTimeout(timer); reject(new Error(`starting ${SERVER_BIN}: ${e.message}`)); });
      child.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`replay-server exited (${sig || code}) before listening${serverLogTail()}`)); });
    });
    child.stdout.on('data', () => {}); // keep draining
    origin = ready.origin;
    ingestKey = ready.key;
    if ((await get('/healthz')).trim() !== 'ok') throw new Error(`${origin}/healthz did not answer ok`);
    // The recorder files exactly as served, for the bundle-size table. This also checks that the
    // binary has the recorder in it (a server built without `cargo xtask build-web` has none).
    servedFiles = await copyRecorderFiles(path.join(ctx.scratchDir, 'served'));
    if (!Object.keys(servedFiles).some(f => f.endsWith('.wasm'))) {
      ctx.log('WARNING: no .wasm file found by following the recorder\'s imports; files:', Object.keys(servedFiles).join(', '));
    }
    ctx.log(`replay-server ${origin} (data ${dataDir}, log ${logFile})`);
    return { server: SERVER_BIN, origin, recorderFiles: Object.keys(servedFiles), embed: `<script src="${origin}/recorder.js" data-key="…">`, strict: STRICT, wasmMark: WASM_MARK };
  },

  // Inserts the embed tag and waits until the recorder records. Marks (main thread):
  //   start  just before the tag is inserted (the recorder's whole start-up is measured from here,
  //          as in the README's outline for a recorder that loads asynchronously)
  //   meta   WebAssembly instantiation resolved; the snapshot follows in the same task chain
  //          (set by briefly wrapping WebAssembly.instantiateStreaming/instantiate around the
  //          recorder's load; REPLAY_BENCH_WASM_MARK=0 turns that off)
  //   full = end  the recorder's API resolved, i.e. boot() finished: snapshot taken, observers on
  // So recorder.fullSnapshotCpuMs / recordCallCpuMs cover loader + module + wasm + snapshot,
  // recorder.snapshotSerializeCpuMs (meta -> full) the snapshot alone, recorder.wasmInitCpuMs
  // (start -> meta) the loading. Wall-clock twins: bundleLoadMs (tag inserted -> loader script
  // loaded), wasmReadyMs, snapshotMs, fullSnapshotMs = recordCallMs (tag inserted -> recording).
  async start(page, ctx) {
    if (SMAPS) for (const line of renderersMemory()) ctx.log(`smaps-before ${ctx.runId} ${line}`);
    if (serverGone()) throw new Error(`replay-server is not running${serverLogTail()}`);
    const problems = ctx.state.problems = [];
    const onFailed = r => { if (r.url().startsWith(origin)) problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText || ''}`); };
    const onResponse = r => { if (r.url().startsWith(origin) && r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`); };
    page.on('requestfailed', onFailed);
    page.on('response', onResponse);
    ctx.state.detach = () => { page.off('requestfailed', onFailed); page.off('response', onResponse); };
    ctx.state.counters0 = await ingestCounters();
    if (LOAF) {
      await page.evaluate(() => {
        window.__replayLoaf = [];
        try {
          new PerformanceObserver(l => {
            for (const e of l.getEntries()) {
              if (e.duration < 50 || window.__replayLoaf.length >= 500) continue;
              window.__replayLoaf.push({
                start: Math.round(e.startTime), ms: Math.round(e.duration), blockingMs: Math.round(e.blockingDuration || 0),
                scripts: (e.scripts || []).filter(x => x.duration >= 5).map(x => `${Math.round(x.duration)} ms ${x.invoker || ''} ${x.sourceFunctionName || ''} ${(x.sourceURL || '').split('/').slice(-2).join('/')}`),
              });
            }
          }).observe({ type: 'long-animation-frame' });
        } catch {}
      });
    }

    const r = await page.evaluate(async ({ origin, key, wasmMark, timeoutMs }) => {
      const marks = {};
      const t = {};
      let restore = () => {};
      if (wasmMark && typeof WebAssembly === 'object') {
        const orig = { instantiateStreaming: WebAssembly.instantiateStreaming, instantiate: WebAssembly.instantiate };
        restore = () => { for (const k of Object.keys(orig)) if (orig[k]) WebAssembly[k] = orig[k]; restore = () => {}; };
        for (const k of Object.keys(orig)) {
          if (typeof orig[k] !== 'function') continue;
          WebAssembly[k] = async function () {
            const result = await orig[k].apply(WebAssembly, arguments);
            if (!marks.meta) { marks.meta = __mark('replay-wasm-ready'); t.meta = performance.now(); restore(); }
            return result;
          };
        }
      }
      try {
        marks.start = __mark('replay-start');
        t.start = performance.now();
        const s = document.createElement('script');
        s.src = origin + '/recorder.js';
        s.setAttribute('data-key', key);
        s.defer = true;
        const loaded = new Promise((resolve, reject) => {
          s.onload = resolve;
          s.onerror = () => reject(new Error('failed to load ' + s.src));
        });
        document.head.appendChild(s);
        await loaded;
        t.loaded = performance.now();
        if (!window.Replay) throw new Error('recorder.js loaded but did not define window.Replay');
        // Every API call resolves once boot() has finished: wasm loaded, snapshot taken.
        let timer;
        const sessionUrl = await Promise.race([
          window.Replay.sessionUrl(),
          new Promise(resolve => { timer = setTimeout(resolve, timeoutMs, null); }),
        ]);
        clearTimeout(timer);
        if (sessionUrl === null) {
          const files = performance.getEntriesByType('resource').filter(e => e.name.startsWith(origin))
            .map(e => `${e.name.slice(origin.length)} (${e.responseStatus || '?'}, ${Math.round(e.duration)} ms)`);
          throw new Error(`the recorder did not start within ${timeoutMs / 1000} s (window.Replay defined, ` +
            `wasm instantiated: ${!!marks.meta}); recorder files fetched: ${files.join(', ') || 'none'}`);
        }
        marks.full = __mark('replay-recording');
        marks.end = marks.full;
        t.full = performance.now();
        const session = new URL(sessionUrl).searchParams.get('session');
        const out = {
          bundleLoadMs: t.loaded - t.start,
          recordCallMs: t.full - t.start,
          fullSnapshotMs: t.full - t.start,
          marks,
          session,
        };
        if (marks.meta) {
          out.wasmReadyMs = t.meta - t.start;
          out.snapshotMs = t.full - t.meta;
          out.spans = { wasmInit: [marks.start, marks.meta] };
        }
        return out;
      } finally { restore(); }
    }, { origin, key: ingestKey, wasmMark: WASM_MARK, timeoutMs: READY_TIMEOUT_MS });
    ctx.state.session = r.session;
    return r;
  },

  // Uploads everything and resolves once the server acknowledged it. finish.adapter.* figures:
  // the flush result (acked/rejected/pending/dropped batches), flushMs, and what the server
  // counted for this run: serverIngestBytes (acknowledged bodies as sent: compare with
  // payload.wireBytes), serverBatchesStored/Duplicate/Rejected, and the session's index row.
  async finish(page, ctx) {
    if (SMAPS) for (const line of renderersMemory()) ctx.log(`smaps ${ctx.runId} ${line}`);
    if (LOAF) {
      const frames = await page.evaluate(() => window.__replayLoaf || []);
      for (const f of frames) ctx.log(`LoAF ${ctx.runId} at ${f.start} ms: ${f.ms} ms (blocking ${f.blockingMs}); ${f.scripts.join('; ') || 'no script >= 5 ms'}`);
    }
    const r = await page.evaluate(async ({ timeoutMs, origin }) => {
      const t0 = performance.now();
      let timer;
      const res = await Promise.race([
        window.Replay.flush(),
        new Promise(resolve => { timer = setTimeout(resolve, timeoutMs, null); }),
      ]);
      clearTimeout(timer);
      if (res === null) {
        // The loader's API has no stats(); the core module (same URL, same instance) has.
        let stats = 'unavailable';
        try { stats = JSON.stringify((await import(origin + '/recorder/core.js')).api.stats()); } catch (e) { stats += ': ' + e; }
        return { timedOut: true, stats };
      }
      return { ...res, flushMs: performance.now() - t0 };
    }, { timeoutMs: FLUSH_TIMEOUT_MS, origin });
    ctx.state.detach?.();
    const problems = ctx.state.problems || [];
    if (r.timedOut) throw new Error(`Replay.flush() did not resolve within ${FLUSH_TIMEOUT_MS / 1000} s; recorder stats: ${r.stats}` +
      (problems.length ? `; ${problems.slice(0, 5).join('; ')}` : '') + serverLogTail());

    const d = counterDelta(ctx.state.counters0, await ingestCounters());
    // Every number of the flush result (acked, rejected, pending, dropped, …) becomes a figure.
    const out = {};
    for (const [k, v] of Object.entries(r)) if (typeof v === 'number') out[k] = v;
    Object.assign(out, {
      serverIngestBytes: d.bytes, serverBatchesStored: d.stored, serverBatchesDuplicate: d.duplicate, serverBatchesRejected: d.rejected,
      error: r.error || '', serverRejectedBy: d.rejectedBy, session: ctx.state.session, problems: problems.slice(0, 20),
    });
    try {
      const s = await get(`/api/v1/sessions/${encodeURIComponent(ctx.state.session)}`, 'json');
      const row = s.session || s;
      for (const [k, name] of [['events', 'serverSessionEvents'], ['batches', 'serverSessionBatches'], ['bytes', 'serverSessionBytes'],
        ['dropped', 'serverSessionDropped'], ['recorder_errors', 'serverSessionRecorderErrors']]) {
        if (typeof row[k] === 'number') out[name] = row[k];
      }
    } catch (e) { out.sessionLookupError = String(e.message || e); }

    const bad = [];
    if (r.rejected || d.rejected) bad.push(`${r.rejected} batch(es) rejected (server: ${JSON.stringify(d.rejectedBy)})`);
    if (r.pending) bad.push(`${r.pending} batch(es) still pending`);
    if (r.dropped || r.droppedBatches) bad.push(`dropped: ${r.dropped || 0} event(s), ${r.droppedBatches || 0} batch(es)`);
    if (r.error) bad.push(`recorder error: ${r.error}`);
    if (out.serverSessionRecorderErrors) bad.push(`${out.serverSessionRecorderErrors} recorder error(s) counted in the session`);
    if (problems.length) bad.push(...problems.slice(0, 5));
    if (bad.length) {
      const msg = `${ctx.runId}: ${bad.join('; ')}`;
      if (STRICT && (r.rejected || r.pending || d.rejected)) throw new Error(msg + ' (REPLAY_BENCH_STRICT=0 keeps such runs)');
      ctx.log('WARNING', msg);
    }
    return out;
  },

  async replay(page, ctx) {
    if (serverGone()) throw new Error(`replay-server is not running${serverLogTail()}`);
    const session = ctx.recording.state.session;
    if (!session) throw new Error('no session id recorded for this run');
    await page.goto(`${origin}/viewer/player.html?bench=1`);
    if (new URL(page.url()).pathname === '/login') {
      // Signing in (not timed): the login form redirects back to the player.
      await page.fill('#username', 'admin');
      await page.fill('#password', ADMIN_PASSWORD);
      await Promise.all([page.waitForURL(u => new URL(u).pathname !== '/login'), page.evaluate(() => document.querySelector('form').submit())]);
    }
    await page.waitForFunction(() => window.replayPlayer && window.replayPlayer.benchReplay);
    const r = await ctx.measure(() => page.evaluate(([id, sel]) => window.replayPlayer.benchReplay(id, sel), [session, ctx.recording.checkSelector]));
    if (process.env.REPLAY_BENCH_SAVE_SESSION) {
      // For profiling the engine natively: the session's ranges as the player fetched them.
      const dir = path.resolve(process.env.REPLAY_BENCH_SAVE_SESSION);
      fs.mkdirSync(dir, { recursive: true });
      let from = 0, i = 0, max = 1;
      while (from !== null) {
        const res = await fetch(`${origin}/api/v1/sessions/${encodeURIComponent(session)}/events?from=${from}&max_bytes=${max}`, { headers: { accept: 'application/msgpack', authorization: `Bearer ${ADMIN_TOKEN}` } });
        fs.writeFileSync(path.join(dir, `range-${i++}.msgpack`), Buffer.from(await res.arrayBuffer()));
        const next = res.headers.get('x-replay-next');
        from = next === null ? null : Number(next);
        max = 4 * 1024 * 1024;
      }
    }
    return r;
  },

  async teardown(ctx) {
    if (killOnExit) process.off('exit', killOnExit);
    if (serverGone()) return;
    const exited = new Promise(res => child.once('exit', res));
    child.kill('SIGTERM');
    const timer = setTimeout(() => { if (!serverGone()) { ctx.log('replay-server did not stop within 10 s, killing it'); child.kill('SIGKILL'); } }, 10000);
    await exited;
    clearTimeout(timer);
  },
};
