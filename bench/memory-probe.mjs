#!/usr/bin/env node
// Where the renderer's memory goes with a recorder on a workload page of the shared benchmark.
//
//   cargo xtask build
//   node bench/memory-probe.mjs [--pages=products,form] [--variants=none,replay] [--n=20000]
//                               [--no-worker] [--worker-gc] [--top=25]
//
// For each page and variant: a fresh browser context, the page of ../shared/bench/pages, the
// recorder started the way bench/adapter.mjs starts it (rrweb as the harness starts it), the
// page's scenario (the harness's own, shortened only where noted), then, as the benchmark does,
// a forced GC of the page's isolate and the renderer's private memory from
// /proc/PID/smaps_rollup. Then a Chromium memory-infra dump (trace category
// `disabled-by-default-memory-infra`, `Tracing.requestMemoryDump`, detailed) of that renderer,
// printed as the allocator dumps that hold the memory: each V8 isolate (the page's `main`, each
// worker's), Blink's GC heap, PartitionAlloc's partitions (array buffers, buffers, layout,
// fast_malloc), malloc, and the rest; and the mappings of smaps by size class.
//
// --no-worker  the page's `Worker` is removed before the recorder starts: uploads run on the
//              main thread (transport.js's fallback), to see what the worker costs.
// --worker-gc  also collects garbage in every dedicated worker (CDP, through the page's
//              target) before measuring: what the worker holds that a GC would free.
// --top=N      how many allocator dumps to print (largest first).
// --only=RE    prints only the allocator dumps whose name matches RE (e.g. `^blink_objects`:
//              Oilpan's objects by type).
// --no-gc      measures without the forced GC: what was allocated and not yet collected
//              (with --only=^blink_objects, which kinds of objects the recorder makes the page
//              allocate).
// --js-flags=F  passes V8 flags to Chromium (e.g. `--liftoff-only`, `--max-opt=0`): which of V8's
//              compilers the recorder's code pages come from (smaps' `chromium` class).
// --web=DIR    serves the recorder's files (`recorder.js`, `recorder/*`) from DIR (e.g.
//              target/web) instead of the server binary's embedded copy: after a change to the
//              recorder, `cargo xtask build-web` is enough (no server rebuild).
//
// Needs playwright-core, from the benchmark's installed copy (`bash ../shared/bench/run.sh`
// installs it under ~/.cache/replay-bench/harness/node_modules; BENCH_HOME moves it).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import os from 'node:os';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HARNESS = process.env.BENCH_HARNESS || path.resolve(HERE, '../../shared/bench');
const HARNESS_COPY = path.join(process.env.BENCH_HOME || path.join(os.homedir(), '.cache/replay-bench'), 'harness');
const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = a.match(/^--([^=]+)(?:=(.*))?$/);
  if (!m) throw new Error('bad argument ' + a);
  return [m[1], m[2] === undefined ? true : m[2]];
}));
const PAGES = String(args.pages || 'products,form').split(',');
const VARIANTS = String(args.variants || 'none,replay').split(',');
const N = Number(args.n || 20000);
const TOP = Number(args.top || 25);
const NO_WORKER = !!args['no-worker'];
const WORKER_GC = !!args['worker-gc'];
const NO_GC = !!args['no-gc'];
const ONLY = args.only ? new RegExp(String(args.only)) : null;
const WEB = args.web ? path.resolve(String(args.web)) : null;
const JS_FLAGS = args['js-flags'] ? String(args['js-flags']) : null;

const require = createRequire(path.join(HARNESS_COPY, 'package.json'));
const { chromium } = require('playwright-core');
const adapter = (await import(pathToFileURL(path.join(HERE, 'adapter.mjs')).href)).default;

// ------------------------------------------------------------ the pages, served as the harness does
const PAGES_DIR = path.join(HARNESS, 'pages');
const RRWEB = path.join(HARNESS_COPY, 'node_modules/rrweb/dist/rrweb.umd.min.cjs');
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const file = u.pathname.startsWith('/rrweb/') ? RRWEB : path.join(PAGES_DIR, path.normalize(u.pathname).replace(/^\/+/, ''));
  if (!file.startsWith(PAGES_DIR) && file !== RRWEB) { res.writeHead(404).end(); return; }
  fs.readFile(file, (err, data) => {
    if (err) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': /\.html$/.test(file) ? 'text/html' : 'text/javascript' }).end(data);
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const ORIGIN = `http://127.0.0.1:${server.address().port}`;

// ------------------------------------------------------------ scenarios (bench.mjs's)
const opCount = (page) => page.evaluate(() => window.__ops.length);
const waitOps = (page, n) => page.evaluate((n) => window.__waitOps(n, 600000), n);
const SCENARIOS = {
  products: {
    url: `/products.html?n=${N}&burnM=90`,
    async run(page) {
      let n = await opCount(page);
      await page.click('#filter');
      for (const ch of 'blue') { await page.keyboard.type(ch); await waitOps(page, ++n); }
      await page.keyboard.press('Control+A'); await page.keyboard.press('Backspace');
      await waitOps(page, ++n);
      await page.click('#expensive'); await waitOps(page, ++n);
      await page.click('#showall'); await waitOps(page, ++n);
      await page.mouse.move(640, 500);
      for (let i = 0; i < 10; i++) { await page.mouse.wheel(0, 600); await page.waitForTimeout(100); }
      for (let i = 0; i < 5; i++) { await page.mouse.click(400, 200 + i * 60); await waitOps(page, ++n); }
      await page.click('#filter');
      await page.keyboard.insertText('teal'); await waitOps(page, ++n);
    },
  },
  form: {
    url: '/form.html',
    async run(page) {
      const fields = [['#fullname', 'Jane Q. Example'], ['#email', 'jane.example@example.com'], ['#phone', '+1 555 0100 2233'],
        ['#address', '1234 Long Street Apt 56'], ['#city', 'Springfield'], ['#zip', '12345'], ['#card', '4242424242424242'],
        ['#password', 'Sup3rSecretPass9'], ['#notes', 'Please leave the parcel at the back door. Ring twice.']];
      for (const [sel, text] of fields) { await page.click(sel); await page.keyboard.type(text); }
      await page.selectOption('#country', 'DE');
      await page.click('#shipping'); await page.click('#terms');
      const n = await opCount(page);
      await page.click('#submit'); await waitOps(page, n + 1);
    },
  },
  cssom: {
    url: '/cssom.html?rules=600&cards=100',
    async run(page) {
      let n = await opCount(page);
      const click = async (sel) => { await page.click(sel); await waitOps(page, ++n); };
      for (let i = 0; i < 3; i++) await click('#add-cards');
      await click('#theme'); await click('#restyle'); await click('#frame-rows');
      await click('#theme'); await click('#restyle'); await click('#frame-rows');
      await page.click('search-box input');
      await page.keyboard.type('shadow dom text');
      await page.locator('product-card').nth(5).locator('button').click();
      await page.mouse.move(640, 500);
      for (let i = 0; i < 5; i++) { await page.mouse.wheel(0, 400); await page.waitForTimeout(100); }
    },
  },
  churn: {
    url: '/churn.html?duration=10&tiles=100&mut=200&interval=100',
    async run(page) { await page.evaluate(() => window.__startChurn()); },
  },
};

// ------------------------------------------------------------ measurements
function smaps(pid) {
  const text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const classes = new Map();
  let cur = null;
  let total = 0;
  const flush = () => {
    if (!cur) return;
    const k = cur.name !== 'anon' ? cur.name.split('/').pop() : cur.size <= 256 ? 'anon <=256K' : cur.size <= 2048 ? 'anon <=2M' : cur.size <= 8192 ? 'anon <=8M' : cur.size <= 65536 ? 'anon <=64M' : 'anon >64M';
    const c = classes.get(k) || { n: 0, priv: 0 };
    c.n++; c.priv += cur.priv; total += cur.priv;
    classes.set(k, c);
  };
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) { flush(); cur = { name: head[3] || 'anon', size: (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024, priv: 0 }; continue; }
    const kv = /^(Private_Clean|Private_Dirty):\s+(\d+) kB/.exec(line);
    if (kv && cur) cur.priv += Number(kv[2]);
  }
  flush();
  return { totalMB: total / 1024, classes: [...classes].filter(([, c]) => c.priv >= 512).sort((a, b) => b[1].priv - a[1].priv).map(([k, c]) => `${k}: ${(c.priv / 1024).toFixed(1)} MB in ${c.n}`) };
}

function privateBytes(pid) {
  const r = Object.fromEntries(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n').slice(1).filter(Boolean).map((l) => { const [k, v] = l.split(/:\s+/); return [k, parseInt(v, 10) * 1024]; }));
  return (r.Private_Clean || 0) + (r.Private_Dirty || 0);
}

/** The renderer process whose main thread made the mark `name` (from a blink.user_timing trace). */
async function rendererPid(browser, page) {
  await browser.startTracing(undefined, { categories: ['blink.user_timing'] });
  const mark = await page.evaluate(() => __mark('probe-pid'));
  const trace = JSON.parse((await browser.stopTracing()).toString('utf8'));
  const ev = (trace.traceEvents || trace).find((e) => e.name === mark);
  return ev ? ev.pid : null;
}

/** A detailed memory-infra dump of every process; the allocator dumps of process `pid`. */
async function memoryDump(browser, pid) {
  const cdp = await browser.newBrowserCDPSession();
  const events = [];
  cdp.on('Tracing.dataCollected', (e) => events.push(...e.value));
  const done = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.start', {
    traceConfig: { includedCategories: ['disabled-by-default-memory-infra'], excludedCategories: ['*'], memoryDumpConfig: { triggers: [] } },
    transferMode: 'ReportEvents',
  });
  const r = await cdp.send('Tracing.requestMemoryDump', { deterministic: !NO_GC, levelOfDetail: 'detailed' });
  await cdp.send('Tracing.end');
  await done;
  await cdp.detach();
  if (!r.success) throw new Error('memory dump failed');
  const dumps = {};
  let totals = null;
  for (const e of events) {
    if (e.ph !== 'v' || e.pid !== pid || !e.args || !e.args.dumps) continue;
    totals = e.args.dumps.process_totals || totals;
    for (const [raw, d] of Object.entries(e.args.dumps.allocators || {})) {
      // Oilpan's per-type dumps end in a type index that differs between processes.
      const name = raw.replace(/ \(0x[0-9a-f]+\)$/, '');
      const attrs = d.attrs || {};
      const v = (k) => (attrs[k] && attrs[k].units === 'bytes' ? parseInt(attrs[k].value, 16) : undefined);
      dumps[name] = { size: v('size'), allocated: v('allocated_objects_size'), virtual: v('virtual_size') };
    }
  }
  return { dumps, totals };
}

const MB = (b) => (b / 2 ** 20).toFixed(1);

/**
 * Allocator dumps, largest first (with `base`, the dumps of the same page without a recorder:
 * largest difference first, each with both sizes).
 */
function printDumps(dumps, base) {
  const depth = (n) => n.split('/').length;
  const keep = (name) => (ONLY ? ONLY.test(name) : depth(name) <= 5) && !/global_dump|shared_memory\/|discardable\/child|\/0x|provider_/.test(name);
  const names = new Set([...Object.keys(dumps), ...Object.keys(base || {})].filter(keep));
  const size = (set, n) => (set && set[n] && set[n].size) || 0;
  const alloc = (set, n) => (set && set[n] && set[n].allocated);
  const rows = [...names].map((n) => [n, base ? size(dumps, n) - size(base, n) : size(dumps, n)])
    .filter(([, v]) => Math.abs(v) >= 256 * 1024).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, TOP);
  if (base) console.log(`  allocator dumps, largest difference to the page without a recorder first (Δ MB: recorder / none):`);
  for (const [n, v] of rows) {
    const a = alloc(dumps, n);
    const extra = a !== undefined ? `  (allocated objects ${MB(a)}${base && alloc(base, n) !== undefined ? ' / ' + MB(alloc(base, n)) : ''} MB)` : '';
    console.log(base
      ? `    ${(v >= 0 ? '+' : '') + MB(v)} MB`.padEnd(16) + ` ${n}: ${MB(size(dumps, n))} / ${MB(size(base, n))} MB${extra}`
      : `    ${MB(v).padStart(7)} MB  ${n}${extra}`);
  }
}

/** The ArrayBuffers and WebAssembly memories alive in the page's isolate (Runtime.queryObjects). */
async function liveBuffers(cdp) {
  const out = [];
  for (const proto of ['ArrayBuffer.prototype', 'WebAssembly.Memory.prototype']) {
    const { result: p } = await cdp.send('Runtime.evaluate', { expression: proto });
    const { objects } = await cdp.send('Runtime.queryObjects', { prototypeObjectId: p.objectId });
    const { result } = await cdp.send('Runtime.callFunctionOn', {
      objectId: objects.objectId, returnByValue: true,
      functionDeclaration: 'function () { return this.map((b) => (b.buffer || b).byteLength).sort((a, b) => b - a).slice(0, 8); }',
    });
    out.push(`${proto.split('.')[0]}: ${result.value.map((n) => MB(n)).join(', ') || 'none'} MB`);
  }
  return out.join('; ');
}

/** Runs `fn` in every dedicated worker of the page (CDP, non-flat target sessions). */
async function inWorkers(cdp, method, params) {
  const results = [];
  const targets = (await cdp.send('Target.getTargets')).targetInfos.filter((t) => t.type === 'worker');
  for (const t of targets) {
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: t.targetId, flatten: false });
    const reply = new Promise((resolve) => {
      const on = (e) => {
        if (e.sessionId !== sessionId) return;
        const m = JSON.parse(e.message);
        if (m.id === 1) { cdp.off('Target.receivedMessageFromTarget', on); resolve(m.result || m.error); }
      };
      cdp.on('Target.receivedMessageFromTarget', on);
    });
    await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id: 1, method, params: params || {} }) });
    results.push(await reply);
    await cdp.send('Target.detachFromTarget', { sessionId });
  }
  return results;
}

async function startRrweb(page) {
  await page.evaluate(async () => {
    await new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/rrweb/rrweb.umd.min.cjs'; s.onload = resolve; s.onerror = reject;
      document.head.appendChild(s);
    });
    const events = window.__events = [];
    window.__stopRecording = rrweb.record({ emit(e) { events.push(e); } });
  });
}

// ------------------------------------------------------------ main
const scratchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-probe-'));
const actx = { name: 'replay', origin: ORIGIN, scratchDir, harnessDir: HARNESS, config: {}, log: (...a) => console.log('[replay]', ...a) };
const needsReplay = VARIANTS.includes('replay');
if (needsReplay) await adapter.setup(actx);
const browser = await chromium.launch({
  executablePath: process.env.REPLAY_CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
    ...(JS_FLAGS ? ['--js-flags=' + JS_FLAGS] : [])],
});
const base = {};
const baseDumps = {};
try {
  for (const pageName of PAGES) {
    const sc = SCENARIOS[pageName];
    if (!sc) throw new Error('unknown page ' + pageName);
    for (const variant of VARIANTS) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      if (WEB && variant === 'replay') {
        await context.route(/\/recorder(\.js|\/[\w.-]+)$/, (route) => {
          const rel = new URL(route.request().url()).pathname.replace(/^\/+/, '');
          const file = path.join(WEB, rel);
          if (!file.startsWith(WEB + path.sep) || !fs.existsSync(file)) return route.continue();
          const type = file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
          return route.fulfill({ status: 200, body: fs.readFileSync(file), headers: { 'content-type': type, 'access-control-allow-origin': '*' } });
        });
      }
      const page = await context.newPage();
      page.setDefaultTimeout(600000);
      const cdp = await context.newCDPSession(page);
      await cdp.send('Performance.enable', { timeDomain: 'timeTicks' });
      await page.goto(ORIGIN + sc.url, { waitUntil: 'load' });
      await page.waitForFunction(() => window.__ready === true);
      await page.waitForTimeout(300);
      const pid = await rendererPid(browser, page);
      const before = privateBytes(pid);
      const runCtx = { ...actx, pageName, rep: 0, runId: `${pageName}-${variant}-probe`, url: ORIGIN + sc.url, state: {} };
      if (variant === 'replay') {
        if (NO_WORKER) await page.evaluate(() => { window.Worker = undefined; });
        await adapter.start(page, runCtx);
      } else if (variant === 'rrweb') {
        await startRrweb(page);
      }
      await sc.run(page);
      await page.waitForTimeout(300);
      let workerHeaps = [];
      if (WORKER_GC) {
        workerHeaps = await inWorkers(cdp, 'Runtime.getHeapUsage');
        await inWorkers(cdp, 'HeapProfiler.collectGarbage');
      }
      if (!NO_GC) await cdp.send('HeapProfiler.collectGarbage');
      const after = privateBytes(pid);
      const { metrics } = await cdp.send('Performance.getMetrics');
      const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
      const ph = await cdp.send('Runtime.getHeapUsage');
      const recStats = variant === 'replay' ? await page.evaluate(async () => {
        const src = [...document.scripts].find((s) => /\/recorder\.js$/.test(s.src));
        if (!src) return null;
        const mod = await import(new URL('recorder/core.js', src.src).href);
        return mod.api.stats();
      }).catch((e) => String(e)) : null;
      const key = `${pageName}`;
      if (variant === 'none') base[key] = after;
      const delta = base[key] !== undefined && variant !== 'none' ? ` (Δ over none ${MB(after - base[key])} MB)` : '';
      console.log(`\n=== ${pageName} / ${variant}${NO_WORKER && variant === 'replay' ? ' (no worker)' : ''}${WORKER_GC ? ' (workers GCed)' : ''}: renderer ${pid} private ${MB(before)} MB before start, ${MB(after)} MB after GC${delta}`);
      console.log(`  page JS heap used ${MB(m.JSHeapUsedSize)} MB / total ${MB(m.JSHeapTotalSize)} MB (array buffer backing stores ${MB(ph.backingStorageSize || 0)} MB), DOM nodes ${m.Nodes}, workers ${page.workers().length}`);
      if (workerHeaps.length) console.log(`  worker heaps before their GC: ${workerHeaps.map((h) => `${MB(h.usedSize)}/${MB(h.totalSize)} MB (embedder ${MB(h.embedderHeapUsedSize || 0)}, backing stores ${MB(h.backingStorageSize || 0)})`).join(', ')}`);
      if (recStats) console.log(`  recorder stats: ${JSON.stringify(recStats).slice(0, 400)}`);
      console.log(`  live in the page's isolate (largest): ${await liveBuffers(cdp)}`);
      const s = smaps(pid);
      console.log(`  smaps private ${s.totalMB.toFixed(1)} MB by class: ${s.classes.join(', ')}`);
      const { dumps, totals } = await memoryDump(browser, pid);
      if (totals) console.log(`  memory-infra totals: ${Object.entries(totals).map(([k, v]) => `${k} ${typeof v === 'string' ? MB(parseInt(v, 16)) : v}`).join(', ')}`);
      if (variant === 'none') baseDumps[pageName] = dumps;
      printDumps(dumps, variant === 'none' ? null : baseDumps[pageName]);
      if (variant === 'replay') await adapter.finish(page, runCtx).catch((e) => console.log('  finish failed:', e.message));
      await context.close();
    }
  }
} finally {
  await browser.close();
  if (needsReplay) await adapter.teardown(actx);
  server.close();
  fs.rmSync(scratchDir, { recursive: true, force: true });
}
