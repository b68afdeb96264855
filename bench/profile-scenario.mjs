// Where the recorder's main-thread time goes during one of the shared benchmark's scenarios: a
// V8 sampling profile (CDP `Profiler`) of the scenario, with and without the recorder, summed by
// function (self time) and by script. The shared benchmark gives the figures to compare with
// rrweb; this gives the profile to act on ("measure before you optimise").
//
//   cargo xtask build
//   node bench/profile-scenario.mjs [--page=form] [--reps=3] [--top=30] [--interval-us=50]
//     [--entry=FN: self time under entry point FN] [--lines=FN: FN's self time by source line]
//     [--calls: calls per function of the recorder (precise coverage)]
//     [--instead=observer: in place of the recorder, a MutationObserver that only counts records
//      (the floor any DOM recorder pays)]
//     [--longtasks: the scenario's long tasks, each with the page's marks before its end]
//     [--memory: the renderer's private memory after the scenario and a GC (when the shared
//      benchmark measures it), again after --settle-ms=3000 more, with the recorder's delivery
//      figures (batches not yet acknowledged, wasm memory) and the largest private mappings,
//      and once more after a critical memory-pressure notification (allocators drop their caches);
//      with --dump, Chromium's memory-infra account of it by allocator and thread]
//     [--trace: instead of the JS profile, a Chromium trace of the scenario: the renderer main
//      thread's CPU time (thread time) per trace event, self time, the recorder's run against none;
//      this is where "(program)", time outside any JS function, goes]
//
// It uses the shared harness's pages (../shared/bench/pages) and its installed playwright-core
// (the copy run.sh keeps under ${BENCH_HOME:-~/.cache/replay-bench}/harness: run the benchmark once
// first), and our adapter (bench/adapter.mjs) to start the server and insert the recorder.
// The `form`, `cssom`, `products` and `churn` scenarios are written here (copies of the harness's
// steps); `idle` (the form page, untouched for --seconds) is ours.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import adapter from './adapter.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map(a => a.replace(/^--/, '').split('=')));
const PAGE = args.page || 'form';
const REPS = Number(args.reps || 3);
const TOP = Number(args.top || 30);
const INTERVAL_US = Number(args['interval-us'] || 50);
const PAGES = path.resolve(HERE, '../../shared/bench/pages');
const HARNESS = path.join(process.env.BENCH_HOME || path.join(os.homedir(), '.cache/replay-bench'), 'harness');
const require = createRequire(path.join(HARNESS, 'package.json'));
const { chromium } = require('playwright-core');

const SCENARIOS = {
  form: {
    url: '/form.html',
    async run(page) {
      const fields = [
        ['#fullname', 'Jane Q. Example'], ['#email', 'jane.example@example.com'], ['#phone', '+1 555 0100 2233'],
        ['#address', '1234 Long Street Apt 56'], ['#city', 'Springfield'], ['#zip', '12345'],
        ['#card', '4242424242424242'], ['#password', 'Sup3rSecretPass9'],
        ['#notes', 'Please leave the parcel at the back door. Ring twice. The dog is friendly but loud; do not be alarmed. Thanks!'],
      ];
      for (const [sel, text] of fields) { await page.click(sel); await page.keyboard.type(text); }
      await page.selectOption('#country', 'DE');
      await page.click('#shipping'); await page.click('#terms');
      await page.click('#submit');
    },
  },
  // Copies of the shared benchmark's products (N from --n, default 20000) and churn scenarios.
  products: {
    url: `/products.html?n=${Number(args.n || 20000)}&burnM=90`,
    async run(page) {
      const opCount = () => page.evaluate(() => window.__ops.length);
      const waitOps = n => page.evaluate(n => window.__waitOps(n, 600000), n);
      let n = await opCount();
      await page.click('#filter');
      for (const ch of 'blue') { await page.keyboard.type(ch); await waitOps(++n); }
      await page.keyboard.press('Control+A'); await page.keyboard.press('Backspace');
      await waitOps(++n);
      await page.click('#expensive'); await waitOps(++n);
      await page.click('#showall'); await waitOps(++n);
      await page.mouse.move(640, 500);
      for (let i = 0; i < 10; i++) { await page.mouse.wheel(0, 600); await page.waitForTimeout(100); }
      for (let i = 0; i < 5; i++) { await page.mouse.click(400, 200 + i * 60); await waitOps(++n); }
      await page.click('#filter');
      await page.keyboard.insertText('teal'); await waitOps(++n);
    },
  },
  churn: {
    url: '/churn.html?duration=10&tiles=100&mut=200&interval=100',
    async run(page) { await page.evaluate(() => window.__startChurn()); },
  },
  // Nothing happens for --seconds (default 10): what the recorder costs an idle page (its
  // heartbeat, its timers).
  idle: {
    url: '/form.html',
    async run(page) { await page.waitForTimeout(1000 * Number(args.seconds || 10)); },
  },
  cssom: {
    url: '/cssom.html?rules=600&cards=100',
    async run(page) {
      let n = await page.evaluate(() => window.__ops.length);
      const click = async sel => { await page.click(sel); await page.evaluate(n => window.__waitOps(n, 600000), ++n); };
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
};
const scenario = SCENARIOS[PAGE];

// The recorder's module unminified (same sources, same esbuild, without --minify), served in place
// of the minified one so that the profile names functions: `--minified` keeps the real one.
let unminified = null;
if (!('minified' in args)) {
  // (`--staging=DIR`: the recorder's modules from DIR instead, e.g. an edited copy for an experiment.)
  const staging = path.resolve(args.staging || path.resolve(HERE, '../target/web-src/recorder'));
  const esbuild = path.resolve(HERE, '../target/jstools/node_modules/esbuild/bin/esbuild');
  const out = path.join(os.tmpdir(), `replay-core-unminified-${process.pid}.js`);
  const { execFileSync } = await import('node:child_process');
  execFileSync('node', [esbuild, path.join(staging, 'core.js'), '--bundle', '--format=esm', '--charset=utf8', '--log-level=warning', `--outfile=${out}`]);
  unminified = fs.readFileSync(out);
}
if (!scenario) throw new Error(`no scenario ${PAGE}; known: ${Object.keys(SCENARIOS).join(', ')}`);

// The pages, and the directories the adapter mounts, on 127.0.0.1.
const mounts = new Map();
const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  let file = path.join(PAGES, path.normalize(u.pathname));
  const m = u.pathname.match(/^\/x\/([^/]+)\/(.*)$/);
  if (m && mounts.has(m[1])) file = path.join(mounts.get(m[1]), path.normalize('/' + m[2]));
  fs.readFile(file, (err, data) => {
    if (err) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(data);
  });
});
await new Promise(r => server.listen(0, '127.0.0.1', r));
const ORIGIN = `http://127.0.0.1:${server.address().port}`;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'replay-profile-'));
const ctx = {
  name: 'replay', origin: ORIGIN, harnessDir: HARNESS, scratchDir: scratch, config: {}, state: {},
  log: (...x) => console.error('[replay]', ...x),
  serveDir(name, dir) { mounts.set(name, path.resolve(dir)); return `${ORIGIN}/x/${name}/`; },
};
await adapter.setup(ctx);
const browser = await chromium.launch({
  executablePath: process.env.REPLAY_CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

/// Self time per function and per script of one profile, in ms.
function summarize(profile, into) {
  const byId = new Map(profile.nodes.map(n => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children || []) parent.set(c, n.id);
  const ours = f => /\/recorder\/|recorder_wasm/.test(f.url);
  // The outermost frame of ours on a sample's stack: which of the recorder's entry points (event
  // listener, observer callback, task) the time is spent under, natives it calls included.
  const entry = id => {
    // (A wrapper without a name, such as the recorder's `guard`, is skipped for its callee.)
    let found = null, named = null;
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at).callFrame;
      if (!ours(f)) continue;
      if (f.functionName) named = f;
      found = f;
    }
    return found && !found.functionName && named ? named : found;
  };
  const dt = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const d = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    dt.set(profile.samples[i], (dt.get(profile.samples[i]) || 0) + d);
  }
  for (const [id, ms] of dt) {
    const f = byId.get(id).callFrame;
    const script = f.url ? f.url.replace(/^.*\//, '') : '(native)';
    const key = `${f.functionName || '(anonymous)'}  ${script}:${f.lineNumber + 1}:${f.columnNumber + 1}`;
    into.fns.set(key, (into.fns.get(key) || 0) + ms);
    if (args.lines && f.functionName === args.lines) {
      // Self samples by source line (`positionTicks`: ticks, not ms; the node's time shared out by them).
      const node = byId.get(id);
      const ticks = (node.positionTicks || []).reduce((a, p) => a + p.ticks, 0);
      for (const p of node.positionTicks || []) {
        const lk = `${script}:${p.line}`;
        into.lines.set(lk, (into.lines.get(lk) || 0) + ms * p.ticks / ticks);
      }
    }
    into.scripts.set(script, (into.scripts.get(script) || 0) + ms);
    const e = entry(id);
    if (e) {
      const ek = `${e.functionName || '(anonymous)'}  ${e.url.replace(/^.*\//, '')}:${e.lineNumber + 1}:${e.columnNumber + 1}`;
      into.entries.set(ek, (into.entries.get(ek) || 0) + ms);
      if (args.entry && e.functionName === args.entry) into.under.set(key, (into.under.get(key) || 0) + ms);
    }
  }
}

async function once(withRecorder) {
  const context = await browser.newContext();
  if (unminified) await context.route(/\/recorder\/core\.js(\?.*)?$/, route => route.fulfill({ status: 200, contentType: 'text/javascript', body: unminified }));
  const page = await context.newPage();
  // `--longtasks`: each long task of the scenario, with the page's marks around it.
  if ('longtasks' in args) {
    await page.addInitScript(() => {
      window.__long = [];
      new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push([Math.round(e.startTime), Math.round(e.duration)]); })
        .observe({ type: 'longtask', buffered: true });
      // Long animation frames name the scripts that ran in them (Chromium).
      window.__loaf = [];
      try {
        new PerformanceObserver((l) => {
          for (const e of l.getEntries()) {
            window.__loaf.push([Math.round(e.startTime), Math.round(e.duration),
              e.scripts.map((x) => `${x.invoker} ${x.sourceFunctionName || ''}@${(x.sourceURL || '').replace(/^.*\//, '')}:${x.sourceCharPosition} ${Math.round(x.duration)}ms`)]);
          }
        }).observe({ type: 'long-animation-frame', buffered: true });
      } catch (_) { /* no LoAF */ }
    });
  }
  await page.goto(ORIGIN + scenario.url);
  await page.waitForFunction(() => window.__ready === true);
  if (withRecorder && args.instead === 'observer') {
    // The floor of any DOM recorder: a MutationObserver that only counts its records.
    await page.evaluate(() => new MutationObserver((r) => { window.__records = (window.__records || 0) + r.length; })
      .observe(document, { childList: true, subtree: true, attributes: true, characterData: true }));
  } else if (withRecorder) await adapter.start(page, { ...ctx, runId: 'profile', pageName: PAGE, url: ORIGIN + scenario.url });
  await page.waitForTimeout(300);
  if ('trace' in args) {
    await browser.startTracing(page, { categories: TRACE_CATEGORIES });
    await scenario.run(page);
    await page.waitForTimeout(300);
    const trace = JSON.parse((await browser.stopTracing()).toString());
    if (withRecorder && args.instead !== 'observer') await adapter.finish(page, { ...ctx, runId: 'profile', pageName: PAGE });
    await context.close();
    return trace;
  }
  if ('memory' in args) {
    // The recorder, not the bare observer of `--instead=observer`.
    const real = withRecorder && args.instead !== 'observer';
    const mcdp = await context.newCDPSession(page);
    const pid = await rendererPid(page);
    await scenario.run(page);
    await page.waitForTimeout(300);
    const at = async (label) => {
      await mcdp.send('HeapProfiler.collectGarbage');
      // The loader's API has no stats(); the core module (same URL, same instance) has.
      const st = real ? await page.evaluate(async () => {
        const core = performance.getEntriesByType('resource').find((e) => /\/recorder\/core\.js/.test(e.name));
        return core ? (await import(core.name)).api.stats() : {};
      }) : {};
      const m = privateMemory(pid);
      console.log(`${withRecorder ? 'replay' : 'none'} ${label}: private ${(m.total / 2 ** 20).toFixed(1)} MB` +
        ` (clean ${(m.clean / 2 ** 20).toFixed(1)}: file pages only this process maps, which the kernel can drop)` +
        (real ? `; pending batches ${st.pending}, wasm memory ${((st.wasmMemory || 0) / 2 ** 20).toFixed(1)} MB, renewals ${st.renewals}/${st.workerRenewals}` : ''));
      console.log('    largest: ' + m.top.map(([k, b]) => `${k} ${(b / 2 ** 20).toFixed(1)}`).join(', '));
      console.log('    anonymous mappings under 1 MB by size (count x KB: private MB): ' +
        m.small.map(([kb, [n, b]]) => `${n}x${kb}: ${(b / 2 ** 20).toFixed(1)}`).join(', '));
    };
    await at('after the scenario');
    await page.waitForTimeout(Number(args['settle-ms'] || 3000));
    await at(`${Number(args['settle-ms'] || 3000)} ms later`);
    // The upload worker's collector too (a CDP GC reaches only the page's isolate).
    if (real) {
      const used = await workerGc(page);
      await page.waitForTimeout(300);
      await at(`after a GC in the page's workers too (their JS heaps held ${used.map((b) => (b / 2 ** 20).toFixed(1)).join(', ')} MB before it)`);
    }
    // What the allocators keep only as a cache (free pages) goes under memory pressure.
    await mcdp.send('Memory.simulatePressureNotification', { level: 'critical' });
    await page.waitForTimeout(500);
    await at('after a critical memory-pressure notification');
    if ('dump' in args) await memoryInfra(pid);
    if (real) await adapter.finish(page, { ...ctx, runId: 'profile', pageName: PAGE });
    await context.close();
    return null;
  }
  if ('longtasks' in args) {
    const lcdp = await context.newCDPSession(page);
    await lcdp.send('Profiler.enable');
    await lcdp.send('Profiler.setSamplingInterval', { interval: 100 });
    await lcdp.send('Profiler.start');
    const t0 = await page.evaluate(() => performance.now());
    await scenario.run(page);
    await page.waitForTimeout(300);
    const { profile } = await lcdp.send('Profiler.stop');
    const { long, marks, loaf } = await page.evaluate(() => ({
      long: window.__long,
      loaf: window.__loaf,
      marks: performance.getEntriesByType('mark').map((m) => [Math.round(m.startTime), m.name]),
    }));
    console.log(`${withRecorder ? 'replay' : 'none'}: long tasks [start ms, duration ms] after the scenario began at ${Math.round(t0)}:`,
      JSON.stringify(long.filter(([s]) => s >= t0)));
    for (const [s, d] of long.filter(([st]) => st >= t0)) {
      const before = marks.filter(([m]) => m <= s + d).slice(-2);
      console.log(`  ${s} +${d}: marks before its end ${JSON.stringify(before)}`);
      for (const [fs, fd, scripts] of loaf.filter(([f, fd]) => f <= s + d && f + fd >= s)) console.log(`    frame ${fs} +${fd}: ${scripts.join('; ')}`);
      // The profile's samples in the task (its clock anchored at the scenario's start, ~ms).
      const byId = new Map(profile.nodes.map((n) => [n.id, n]));
      const self = new Map();
      let at = profile.startTime;
      for (let i = 0; i < profile.samples.length; i++) {
        at += profile.timeDeltas[i] || 0;
        const ms = (at - profile.startTime) / 1000 + t0;
        if (ms < s || ms > s + d) continue;
        const f = byId.get(profile.samples[i]).callFrame;
        const k = `${f.functionName || '(anonymous)'}@${f.url.replace(/^.*\//, '')}:${f.lineNumber + 1}`;
        self.set(k, (self.get(k) || 0) + 0.1);
      }
      console.log('    ' + [...self].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', '));
    }
    if (withRecorder) await adapter.finish(page, { ...ctx, runId: 'profile', pageName: PAGE });
    await context.close();
    return null;
  }
  const cdp = await context.newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: INTERVAL_US });
  if ('calls' in args && withRecorder) await cdp.send('Profiler.startPreciseCoverage', { callCount: true, detailed: false });
  await cdp.send('Profiler.start');
  await scenario.run(page);
  await page.waitForTimeout(300);
  const { profile } = await cdp.send('Profiler.stop');
  if ('calls' in args && withRecorder) {
    // How many times each of the recorder's functions ran during the scenario (precise coverage).
    const { result } = await cdp.send('Profiler.takePreciseCoverage');
    await cdp.send('Profiler.stopPreciseCoverage');
    for (const script of result) {
      if (!/\/recorder\//.test(script.url)) continue;
      for (const fn of script.functions) {
        const n = fn.ranges[0].count;
        if (!n) continue;
        const k = `${fn.functionName || '(anonymous)'}  ${script.url.replace(/^.*\//, '')}@${fn.ranges[0].startOffset}`;
        calls.set(k, (calls.get(k) || 0) + n);
      }
    }
  }
  if (withRecorder) await adapter.finish(page, { ...ctx, runId: 'profile', pageName: PAGE });
  await context.close();
  return profile;
}

const TRACE_CATEGORIES = ['toplevel', 'v8', 'v8.execute', 'blink', 'devtools.timeline', 'disabled-by-default-v8.gc',
  'disabled-by-default-devtools.timeline', 'disabled-by-default-v8.compile'];

/**
 * Thread time (CPU) per trace event name on the renderer main threads, self time (children's
 * time taken out), in ms, added to `into`. Complete events (`X`) and begin/end pairs nest by
 * their wall-clock times; an event without thread time counts its wall time.
 */
function summarizeTrace(trace, into) {
  const events = trace.traceEvents || trace;
  const main = new Set();
  for (const e of events) if (e.ph === 'M' && e.name === 'thread_name' && e.args && e.args.name === 'CrRendererMain') main.add(`${e.pid}:${e.tid}`);
  const spans = new Map();
  const open = new Map();
  for (const e of events) {
    const key = `${e.pid}:${e.tid}`;
    if (!main.has(key)) continue;
    let list = spans.get(key);
    if (!list) spans.set(key, list = []);
    if (e.ph === 'X') list.push({ name: e.name, ts: e.ts, end: e.ts + (e.dur || 0), cpu: e.tdur ?? e.dur ?? 0 });
    else if (e.ph === 'B') {
      let st = open.get(key);
      if (!st) open.set(key, st = []);
      st.push(e);
    } else if (e.ph === 'E') {
      const b = (open.get(key) || []).pop();
      if (b) list.push({ name: b.name, ts: b.ts, end: e.ts, cpu: (b.tts !== undefined && e.tts !== undefined) ? e.tts - b.tts : e.ts - b.ts });
    }
  }
  for (const list of spans.values()) {
    list.sort((a, b) => a.ts - b.ts || b.end - a.end);
    const stack = [];
    const self = new Map();
    for (const s of list) {
      while (stack.length && stack[stack.length - 1].end <= s.ts) stack.pop();
      const parent = stack[stack.length - 1];
      self.set(s, s.cpu);
      if (parent && s.end <= parent.end) self.set(parent, self.get(parent) - s.cpu);
      stack.push(s);
    }
    for (const [s, us] of self) into.set(s.name, (into.get(s.name) || 0) + us / 1000);
  }
}

/** The pid of the renderer process that runs `page`: a user-timing mark's, in a short trace. */
async function rendererPid(page) {
  await browser.startTracing(page, { categories: ['blink.user_timing'] });
  const name = `pid-${Math.random()}`;
  await page.evaluate((n) => performance.mark(n), name);
  const trace = JSON.parse((await browser.stopTracing()).toString());
  const e = (trace.traceEvents || trace).find((x) => x.name === name);
  if (!e) throw new Error('no user-timing mark in the trace');
  return e.pid;
}

/**
 * `--memory --dump`: Chromium's own account of the renderer's memory (a `memory-infra` dump):
 * each allocator's size (`blink_gc` per thread, `v8` per isolate, `partition_alloc` per
 * partition, `malloc`, ...), down to --dump-depth=3 levels, those of --dump-min-mb=0.5 or more.
 * Where the smaps figures say how much, this says whose.
 */
async function memoryInfra(pid) {
  const cdp = await browser.newBrowserCDPSession();
  const events = [];
  cdp.on('Tracing.dataCollected', (e) => events.push(...e.value));
  const done = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
  await cdp.send('Tracing.start', {
    transferMode: 'ReportEvents',
    traceConfig: { includedCategories: ['disabled-by-default-memory-infra'], memoryDumpConfig: { triggers: [] } },
  });
  const { success } = await cdp.send('Tracing.requestMemoryDump', { deterministic: true, levelOfDetail: 'detailed' });
  await cdp.send('Tracing.end');
  await done;
  await cdp.detach();
  const dump = events.find((e) => e.ph === 'v' && e.pid === pid && e.args && e.args.dumps && e.args.dumps.allocators);
  if (!success || !dump) { console.log('    memory-infra: no dump of the renderer'); return; }
  const depth = Number(args['dump-depth'] || 3);
  const min = Number(args['dump-min-mb'] || 0.5) * 2 ** 20;
  const rows = [];
  for (const [name, d] of Object.entries(dump.args.dumps.allocators)) {
    if (name.split('/').length > depth || name.startsWith('global/')) continue;
    const a = d.attrs || {};
    const size = a.size ? parseInt(a.size.value, 16) : 0;
    if (size >= min) rows.push([name, size, a.allocated_objects_size ? parseInt(a.allocated_objects_size.value, 16) : null]);
  }
  rows.sort((x, y) => (x[0] < y[0] ? -1 : 1));
  console.log('    memory-infra (MB: size, and live objects where the allocator says): ' +
    rows.map(([n, s, o]) => `${n} ${(s / 2 ** 20).toFixed(1)}${o === null ? '' : ` (${(o / 2 ** 20).toFixed(1)})`}`).join(', '));
}

/**
 * Collects the garbage of every dedicated worker of `page` (through the browser's CDP session,
 * attached to each worker target); the used JS heap of each before, in bytes.
 */
async function workerGc(page) {
  const cdp = await browser.newBrowserCDPSession();
  const { targetInfos } = await cdp.send('Target.getTargets');
  const used = [];
  for (const t of targetInfos.filter((x) => x.type === 'worker')) {
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: t.targetId, flatten: false });
    let next = 1;
    // Answered, or `{}` when the worker ended meanwhile (no answer within 5 s, or a refused send).
    const call = (method, params) => new Promise((resolve) => {
      const id = next++;
      const done = (result) => {
        clearTimeout(timer);
        cdp.off('Target.receivedMessageFromTarget', on);
        resolve(result);
      };
      const on = (e) => {
        if (e.sessionId !== sessionId) return;
        const m = JSON.parse(e.message);
        if (m.id === id) done(m.result || {});
      };
      const timer = setTimeout(() => done({}), 5000);
      cdp.on('Target.receivedMessageFromTarget', on);
      cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params: params || {} }) })
        .catch(() => done({}));
    });
    used.push((await call('Runtime.getHeapUsage')).usedSize || 0);
    await call('HeapProfiler.collectGarbage');
    await cdp.send('Target.detachFromTarget', { sessionId }).catch(() => {});
  }
  await cdp.detach();
  return used;
}

/**
 * Private memory of process `pid` (what the shared benchmark reports: Private_Clean +
 * Private_Dirty), in total and for its largest mappings (by name; anonymous ones by size class),
 * and the anonymous mappings under 1 MB by their exact size (which allocator made them: V8's
 * 256 KB pages, glibc's `mmap` of one large allocation, ...).
 */
function privateMemory(pid) {
  /** Mapping size in KB -> [count, private bytes], for anonymous mappings under 1 MB. */
  const small = new Map();
  const by = new Map();
  let total = 0;
  let clean = 0;
  let name = '';
  let size = 0;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = line.match(/^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/);
    if (head) {
      size = parseInt(head[2], 16) - parseInt(head[1], 16);
      const mb = size / 2 ** 20;
      name = head[3] || `[anon ${mb >= 64 ? '>=64MB' : mb >= 1 ? '1-64MB' : '<1MB'}]`;
      if (name === '[anon <1MB]') {
        const c = small.get(size / 1024) || [0, 0];
        c[0]++;
        small.set(size / 1024, c);
      }
      continue;
    }
    const m = line.match(/^Private_(Clean|Dirty):\s+(\d+) kB/);
    if (m) {
      const b = Number(m[2]) * 1024;
      total += b;
      if (m[1] === 'Clean') clean += b;
      by.set(name, (by.get(name) || 0) + b);
      if (name === '[anon <1MB]') small.get(size / 1024)[1] += b;
    }
  }
  return {
    total, clean, top: [...by].sort((a, b) => b[1] - a[1]).slice(0, 6),
    small: [...small].sort((a, b) => b[1][1] - a[1][1]).slice(0, 6),
  };
}

/** Closes the browser, the adapter's server and the pages' server. */
async function finish() {
  await browser.close();
  await adapter.teardown(ctx);
  server.close();
}

if ('longtasks' in args || 'memory' in args) {
  for (let rep = 0; rep < REPS; rep++) {
    await once(false);
    await once(true);
  }
  await finish();
  process.exit(0);
}

if ('trace' in args) {
  const acc = { none: new Map(), replay: new Map() };
  for (let rep = 0; rep < REPS; rep++) {
    summarizeTrace(await once(false), acc.none);
    summarizeTrace(await once(true), acc.replay);
  }
  const fmt = ms => (ms / REPS).toFixed(2).padStart(9);
  const names = new Set([...acc.none.keys(), ...acc.replay.keys()]);
  const rows = [...names].map(n => [n, acc.replay.get(n) || 0, acc.none.get(n) || 0]);
  const total = (i) => rows.reduce((a, r) => a + r[i], 0);
  console.log(`\nrenderer main thread, CPU ms per run (${REPS} runs), self time by trace event: replay, none, difference`);
  console.log(`${fmt(total(1))} ${fmt(total(2))} ${fmt(total(1) - total(2))}  (all events)`);
  for (const [n, r, z] of rows.sort((x, y) => (y[1] - y[2]) - (x[1] - x[2])).slice(0, TOP)) console.log(`${fmt(r)} ${fmt(z)} ${fmt(r - z)}  ${n}`);
  await finish();
  process.exit(0);
}

/** Calls per recorder function (`--calls`), summed over the runs. */
const calls = new Map();
const fresh = () => ({ fns: new Map(), scripts: new Map(), entries: new Map(), under: new Map(), lines: new Map() });
const acc = { none: fresh(), replay: fresh() };
for (let rep = 0; rep < REPS; rep++) {
  summarize(await once(false), acc.none);
  summarize(await once(true), acc.replay);
}
const fmt = ms => (ms / REPS).toFixed(2).padStart(9);
for (const [variant, a] of Object.entries(acc)) {
  const total = [...a.scripts.values()].reduce((x, y) => x + y, 0);
  console.log(`\n${variant}: ${fmt(total)} ms sampled per run (${REPS} runs); by script:`);
  for (const [s, ms] of [...a.scripts].sort((x, y) => y[1] - x[1]).slice(0, 12)) console.log(`${fmt(ms)}  ${s}`);
}
console.log(`\nreplay: top ${TOP} functions by self time (ms per run), (program)/(idle)/(garbage collector) included:`);
for (const [k, ms] of [...acc.replay.fns].sort((x, y) => y[1] - x[1]).slice(0, TOP)) {
  const none = acc.none.fns.get(k) || 0;
  console.log(`${fmt(ms)} ${fmt(none)}  ${k}`);
}
const entries = [...acc.replay.entries].sort((x, y) => y[1] - x[1]);
console.log(`\nreplay: ${fmt(entries.reduce((a, [, ms]) => a + ms, 0))} ms per run under the recorder's entry points (outermost frame of ours, callees included):`);
for (const [k, ms] of entries.slice(0, TOP)) console.log(`${fmt(ms)}  ${k}`);
if (args.entry) {
  console.log(`\nreplay: self time under ${args.entry} (ms per run):`);
  for (const [k, ms] of [...acc.replay.under].sort((x, y) => y[1] - x[1]).slice(0, TOP)) console.log(`${fmt(ms)}  ${k}`);
}
if ('calls' in args) {
  console.log(`\nreplay: calls per run of the recorder's functions (precise coverage; counts perturb the profile):`);
  for (const [k, n] of [...calls].sort((x, y) => y[1] - x[1]).slice(0, TOP)) console.log(`${(n / REPS).toFixed(0).padStart(9)}  ${k}`);
}
if (args.lines) {
  console.log(`\nreplay: self time of ${args.lines} by source line of the unminified bundle (ms per run):`);
  for (const [k, ms] of [...acc.replay.lines].sort((x, y) => y[1] - x[1]).slice(0, TOP)) console.log(`${fmt(ms)}  ${k}`);
  if (unminified) console.log(`(the bundle: ${path.join(os.tmpdir(), `replay-core-unminified-${process.pid}.js`)})`);
}
await finish();
