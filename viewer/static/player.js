// The player page: loads a session in ranges (first frame before the whole session has
// downloaded), drives the wasm replay engine (seek, play), and owns the controls, the timeline
// (activity density, markers with details), the panels and the effects around the replayed page
// (cursor, scaling, URL bar). Building the replayed document is render.js's job; the iframe is
// sandboxed without allow-scripts. An exported file (server/src/pages.rs) embeds the wasm and
// the session bytes and runs this same module offline.
import init, { Player } from './viewer_wasm.js';
import { createRenderer } from './render.js';
import { createPanels, fmtTime, isFailedRequest } from './panels.js';
import { createFreezePanel, culprit } from './freezes.js';
import { createComments } from './comments.js';

const $ = (id) => document.getElementById(id);
const frame = /** @type {HTMLIFrameElement} */ ($('frame'));
const wrap = $('frame-wrap');
const cursor = $('cursor');
const seekBar = /** @type {HTMLInputElement} */ ($('seek'));
const playButton = $('play');
const SPEEDS = [0.5, 1, 2, 4, 8, 16];
/** Gaps longer than this are skipped while playing when "skip inactivity" is on. */
const IDLE_GAP_MS = 5000;
/** The first range is one batch (it holds the full snapshot); later ranges are bigger. */
const FIRST_RANGE_BYTES = 1;
const RANGE_BYTES = 4 * 1024 * 1024;
/** Work (nodes touched) per idle slice of keyframe building: a few milliseconds. */
const KEYFRAME_SLICE = 40000;

let engine = null;
let sessionId = '';
let start = 0;
let duration = 0;
let position = 0;
let playing = false;
let speed = 1;
let lastTick = 0;
let viewport = [1024, 768];
let times = new Float64Array(0); // event times relative to start, replay order
let loadedAll = false;
const entries = [];

function showUrl(url) {
  $('url').textContent = url || '';
  $('url').title = url || '';
}

function moveCursor(x, y, click) {
  cursor.hidden = false;
  cursor.style.left = `${x}px`;
  cursor.style.top = `${y}px`;
  if (click) {
    const ripple = document.createElement('span');
    ripple.className = 'ripple';
    ripple.style.left = `${x}px`;
    ripple.style.top = `${y}px`;
    wrap.append(ripple);
    ripple.addEventListener('animationend', () => ripple.remove());
  }
}

/** Draws a dot where each finger touches the screen (`[x, y, ...]`; none once lifted). */
function showTouches(points) {
  for (const old of wrap.querySelectorAll('.touch-point')) old.remove();
  for (let i = 0; i + 1 < points.length; i += 2) {
    const dot = document.createElement('span');
    dot.className = 'touch-point';
    dot.style.left = `${points[i]}px`;
    dot.style.top = `${points[i + 1]}px`;
    wrap.append(dot);
  }
}

function resize(w, h) {
  if (w > 0 && h > 0) viewport = [w, h];
  frame.style.width = `${viewport[0]}px`;
  frame.style.height = `${viewport[1]}px`;
  fit();
}

function fit() {
  const stage = $('stage');
  const scale = Math.min(stage.clientWidth / viewport[0], stage.clientHeight / viewport[1], 1);
  wrap.style.transform = `scale(${scale})`;
  wrap.dataset.scale = String(scale);
  wrap.style.left = `${Math.max(0, (stage.clientWidth - viewport[0] * scale) / 2)}px`;
  wrap.style.top = `${Math.max(0, (stage.clientHeight - viewport[1] * scale) / 2)}px`;
}

const renderer = createRenderer(frame, { url: showUrl, viewport: resize, pointer: moveCursor, touch: showTouches });
const apply = (ops) => renderer.apply(ops);
/** Seeks the engine to absolute time `t` and shows the document there (binary frame). */
function showAt(t) {
  const ops = JSON.parse(engine.seek_frame(t));
  renderer.apply(ops, { ints: engine.frame_ints(), text: engine.frame_text() });
}
const panels = createPanels($('panels'), {
  culprit,
  start: () => start,
  duration: () => duration,
  seek: (ms) => { pause(); seek(ms); },
});
const freezePanel = createFreezePanel($('panel-freezes'), {
  start: () => start,
  seek: (ms) => { pause(); seek(ms); },
});

// Comments at a moment (comments.js): loaded from the server once the session is there.
const comments = createComments($('panel-comments'), {
  api: (tail) => sessionApi(sessionId, tail),
  position: () => position,
  seek: (ms) => { pause(); seek(ms); },
  fmtTime,
  changed: () => { if (engine) drawMarkers(); },
});

// ---- playback ----

function updateClock() {
  $('time').textContent = `${fmtTime(position)} / ${fmtTime(duration)}`;
  seekBar.value = String(Math.round(position));
  panels.follow(start + position);
  comments.moment(position);
}

function seek(ms) {
  if (!engine) return;
  position = Math.max(0, Math.min(duration, Number(ms) || 0));
  showAt(start + position);
  lastTick = performance.now();
  updateClock();
}

/** Index of the first event later than `ms` (relative). */
function nextEvent(ms) {
  let lo = 0, hi = times.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (times[mid] <= ms) lo = mid + 1; else hi = mid; }
  return lo;
}

function tick(now) {
  if (!playing) return;
  // A frame's timestamp can be earlier than the `performance.now()` a seek or play took: the
  // position never goes back while playing.
  position = Math.min(duration, position + Math.max(0, now - lastTick) * speed);
  lastTick = Math.max(lastTick, now);
  let skipped = false;
  if (/** @type {HTMLInputElement} */ ($('skip-idle')).checked) {
    const next = nextEvent(position);
    if (next < times.length && times[next] - position > IDLE_GAP_MS) {
      position = times[next] - 250;
      skipped = true;
    }
  }
  $('skipping').hidden = !skipped;
  if (skipped) setTimeout(() => { $('skipping').hidden = true; }, 800);
  apply(JSON.parse(engine.advance(start + position)));
  updateClock();
  if (position >= duration) { pause(); return; }
  requestAnimationFrame(tick);
}

function play() {
  if (!engine) return;
  if (position >= duration) seek(0);
  playing = true;
  playButton.textContent = '❚❚';
  document.body.dataset.playing = '1';
  lastTick = performance.now();
  requestAnimationFrame(tick);
}

function pause() {
  playing = false;
  playButton.textContent = '▶';
  delete document.body.dataset.playing;
}

function setSpeed(s) {
  speed = s;
  /** @type {HTMLSelectElement} */ ($('speed')).value = String(s);
}

// ---- timeline: density graph and markers ----

function drawDensity() {
  const canvas = /** @type {HTMLCanvasElement} */ ($('density'));
  const w = canvas.clientWidth || 600;
  canvas.width = w;
  const h = canvas.height;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, w, h);
  if (!duration || !times.length) return;
  const bins = new Uint32Array(Math.max(1, Math.floor(w / 3)));
  for (const t of times) bins[Math.min(bins.length - 1, Math.floor((t / duration) * bins.length))]++;
  let max = 1;
  for (const b of bins) max = Math.max(max, b);
  ctx.fillStyle = 'rgba(49,84,212,.35)';
  const bw = w / bins.length;
  for (let i = 0; i < bins.length; i++) {
    if (!bins[i]) continue;
    const bh = Math.max(2, (Math.log1p(bins[i]) / Math.log1p(max)) * h);
    ctx.fillRect(i * bw, h - bh, Math.max(1, bw - 1), bh);
  }
}

function describe(e) {
  switch (e.k) {
    case 'click': return e.rage ? `Rage click: rapid clicks at ${e.x}, ${e.y}` : `Click at ${e.x}, ${e.y}`;
    case 'page': return `Page: ${e.url}`;
    case 'frustration': return e.text;
    case 'comment': return `Comment by ${e.author}: ${e.text}`;
    case 'nav': return `Navigation: ${e.url}`;
    case 'error': return `Error: ${e.message}`;
    case 'console': return `console.${e.level}: ${e.args.join(' ')}`;
    case 'network': return `Failed request: ${e.method} ${e.url} (${e.failed ? e.error || 'failed' : e.aborted ? 'aborted' : e.status})`;
    case 'freeze': return e.phase === 'start'
      ? `Page froze${e.action ? ` after ${e.action}` : ''} and never recovered`
      : `Page froze for ${(e.duration / 1000).toFixed(1)} s${e.scripts.length ? `: ${culprit(e.scripts[0])}` : ''}`;
    default: return e.k;
  }
}

function markerKind(e) {
  if (e.k === 'click') return e.rage ? 'rage' : 'click';
  if (e.k === 'page' || e.k === 'nav') return 'nav';
  if (e.k === 'error' || (e.k === 'console' && (e.level === 'error' || e.level === 'assert'))) return 'error';
  if (isFailedRequest(e)) return 'request';
  return null;
}

function pct(t) {
  return duration ? `${Math.max(0, Math.min(100, ((t - start) / duration) * 100))}%` : '0%';
}

function drawMarkers() {
  const box = $('markers');
  box.replaceChildren();
  let frozeAt = null;
  const addMarker = (cls, e, from, to) => {
    const i = document.createElement('i');
    i.className = cls;
    i.dataset.t = String(e.t);
    i.style.left = pct(from);
    if (to !== undefined) i.style.width = `calc(${pct(to)} - ${pct(from)})`;
    i.dataset.tip = `${fmtTime(from - start)} · ${describe(e)}`;
    i.addEventListener('click', () => {
      pause();
      seek(from - start);
      if (cls.startsWith('freeze')) { panels.show('freezes'); freezePanel.select(from); }
      if (cls === 'comment') panels.show('comments');
    });
    box.append(i);
  };
  for (const e of entries) {
    if (e.k === 'freeze') {
      if (e.phase === 'start') { frozeAt = e; continue; }
      const from = frozeAt ? frozeAt.t : e.t - e.duration;
      addMarker('freeze', e, from, e.t);
      frozeAt = null;
      continue;
    }
    const kind = markerKind(e);
    if (kind) addMarker(kind, e, e.t);
  }
  if (frozeAt) addMarker('freeze never-recovered', { ...frozeAt, phase: 'start' }, frozeAt.t, start + duration);
  // Frustration signals (protocol/src/frustration.rs), judged in the engine over the loaded events.
  const tips = { dead: 'Dead click: nothing answered', error: 'Error click: an error followed', back: 'Quick back: navigation undone within seconds' };
  for (const f of JSON.parse(engine.frustration())) addMarker(`frustration ${f.k}`, { t: f.t, k: 'frustration', text: tips[f.k] || f.k }, f.t);
  // Comments, on top of the rest.
  for (const c of comments.list()) addMarker('comment', { t: start + c.t, k: 'comment', author: c.author, text: c.text }, start + c.t);
}

function showTip(ev) {
  const m = ev.target.closest('[data-tip]');
  const tip = $('tip');
  if (!m) { tip.hidden = true; return; }
  tip.textContent = m.dataset.tip;
  tip.hidden = false;
  const track = $('track').getBoundingClientRect();
  tip.style.left = `${Math.max(0, Math.min(track.width - 240, ev.clientX - track.left - 20))}px`;
}

// ---- loading ----

function base64Bytes(text) {
  const bin = atob(text.trim());
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * The project this page belongs to: the player lives at `/viewer/p/{project}/player.html`, and
 * a session id only means something inside its project, so every API call names it.
 */
const PROJECT = (/^\/viewer\/p\/(\d+)\//.exec(location.pathname) || [])[1] || '';

/** The API URL of session `id` of this page's project, plus `tail`. */
function sessionApi(id, tail) {
  return `/api/v1/projects/${PROJECT}/sessions/${encodeURIComponent(id)}${tail}`;
}

async function fetchRange(id, from, maxBytes) {
  const res = await fetch(sessionApi(id, `/events?from=${from}&max_bytes=${maxBytes}`), {
    headers: { accept: 'application/msgpack' },
  });
  if (!res.ok) throw new Error(`the server answered ${res.status}`);
  const next = res.headers.get('x-replay-next');
  return {
    bytes: new Uint8Array(await res.arrayBuffer()),
    next: next === null ? null : Number(next),
    total: Number(res.headers.get('x-replay-batches')) || 1,
  };
}

function progress(fraction) {
  /** @type {HTMLElement} */ ($('progress').firstElementChild).style.width = `${Math.min(1, fraction) * 100}%`;
  $('progress').classList.toggle('done', fraction >= 1);
}

let keyframeTask = null;
/**
 * Keyframes (clones of the model that later seeks start from) are taken in idle time, one
 * slice at a time, never while a seek or the first frame waits (engine.build_keyframes).
 */
function scheduleKeyframes() {
  if (keyframeTask !== null || !engine) return;
  const slice = () => {
    keyframeTask = null;
    if (engine && engine.build_keyframes(KEYFRAME_SLICE)) scheduleKeyframes();
  };
  keyframeTask = window.requestIdleCallback ? requestIdleCallback(slice, { timeout: 2000 }) : setTimeout(slice, 50);
}

/** Takes in newly appended events: duration, entries, timeline. */
function absorb() {
  scheduleKeyframes();
  if (!start) start = engine.start();
  const end = engine.end();
  duration = Math.max(0, end - start);
  seekBar.max = String(Math.round(duration));
  const all = engine.event_times();
  times = new Float64Array(all.length);
  for (let i = 0; i < all.length; i++) times[i] = all[i] - start;
  const fresh = JSON.parse(engine.entries(entries.length ? entries[entries.length - 1].i + 1 : 0));
  for (const e of fresh) entries.push(e);
  panels.add(fresh);
  const n = freezePanel.update(entries);
  $('freeze-count').textContent = n ? String(n) : '';
  drawMarkers();
  drawDensity();
  updateClock();
}

async function loadFromServer(id, onFirstFrame) {
  await init();
  engine = Player.empty();
  let r = await fetchRange(id, 0, FIRST_RANGE_BYTES);
  engine.append(r.bytes);
  absorb();
  onFirstFrame();
  while (r.next !== null) {
    progress(r.next / r.total);
    r = await fetchRange(id, r.next, RANGE_BYTES);
    engine.append(r.bytes);
    absorb();
  }
  progress(1);
}

async function loadEmbedded(onFirstFrame) {
  await init({ module_or_path: base64Bytes($('replay-wasm').textContent) });
  engine = new Player(base64Bytes($('replay-session').textContent));
  absorb();
  progress(1);
  onFirstFrame();
}

function initialPosition(t) {
  if (t === null) return 0;
  if (t === 'end') return duration;
  return Number(t) || 0;
}

/**
 * The share link of the current moment: `/viewer/p/{project}/sessions/{id}?t=ms` opens the
 * player there, paused, for any member of the project (404 for anyone else). An exported file
 * links to itself.
 */
function linkToNow() {
  const t = String(Math.round(position));
  const url = new URL(location.href);
  url.searchParams.set('t', t);
  history.replaceState(null, '', url);
  const share = PROJECT && !$('replay-session')
    ? `${location.origin}/viewer/p/${PROJECT}/sessions/${encodeURIComponent(sessionId)}?t=${t}`
    : url.href;
  const out = /** @type {HTMLInputElement} */ ($('link-out'));
  out.value = share;
  out.hidden = false;
  out.select();
  navigator.clipboard?.writeText(share).catch(() => {});
  return share;
}

async function main() {
  const params = new URLSearchParams(location.search);
  const embedded = $('replay-session');
  sessionId = embedded ? embedded.dataset.session : params.get('session') || '';
  $('session-id').textContent = sessionId;
  document.title = `${sessionId} · Replay`;
  /** @type {HTMLInputElement} */ ($('block')).checked = params.get('block') === '1';
  $('block').addEventListener('change', (e) => {
    const url = new URL(location.href);
    if (/** @type {HTMLInputElement} */ (e.target).checked) url.searchParams.set('block', '1'); else url.searchParams.delete('block');
    url.searchParams.set('t', String(Math.round(position)));
    location.replace(url);
  });
  if (embedded) {
    $('back').hidden = true;
    $('export').hidden = true;
    $('block').parentElement.hidden = true;
    // Comments live on the server.
    /** @type {HTMLElement} */ ($('panels').querySelector('[data-tab="comments"]')).hidden = true;
  } else {
    /** @type {HTMLAnchorElement} */ ($('export')).href = `export/${encodeURIComponent(sessionId)}`;
  }
  playButton.addEventListener('click', () => (playing ? pause() : play()));
  seekBar.addEventListener('input', () => seek(Number(seekBar.value)));
  $('speed').addEventListener('change', (e) => { speed = Number(/** @type {HTMLSelectElement} */ (e.target).value) || 1; });
  $('copy-link').addEventListener('click', linkToNow);
  $('markers').addEventListener('mousemove', showTip);
  $('markers').addEventListener('mouseleave', () => { $('tip').hidden = true; });
  addEventListener('resize', () => { fit(); drawDensity(); });
  addEventListener('keydown', (e) => {
    if (!engine || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target instanceof HTMLInputElement && e.target.type !== 'range' && e.target.type !== 'checkbox') return;
    if (e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement) return;
    if (e.key === ' ') { e.preventDefault(); playing ? pause() : play(); }
    else if (e.key === 'ArrowRight') { e.preventDefault(); seek(position + 5000); }
    else if (e.key === 'ArrowLeft') { e.preventDefault(); seek(position - 5000); }
    else if (e.key === 'Home') seek(0);
    else if (e.key === 'End') seek(duration);
    else if (e.key >= '1' && e.key <= String(SPEEDS.length)) setSpeed(SPEEDS[Number(e.key) - 1]);
  });
  const wanted = params.get('t');
  try {
    const first = () => {
      // Until the range holding `?t=` arrives, show the first frame.
      seek(Math.min(initialPosition(wanted), duration));
      document.body.dataset.state = 'ready';
      // For the long-session benchmark (tests/tests/e2e/long_session.rs): from navigation.
      performance.mark('replay-first-frame');
    };
    if (embedded) await loadEmbedded(first); else await loadFromServer(sessionId, first);
    if (!embedded) compareEnvironment(sessionId);
    if (!embedded) symbolicate(sessionId);
    if (!embedded) comments.load().catch((e) => { $('comment-status').textContent = `Could not load the comments: ${e.message}`; });
    loadedAll = true;
    performance.mark('replay-loaded');
    document.body.dataset.loaded = '1';
    if (wanted !== null && position !== initialPosition(wanted)) seek(initialPosition(wanted));
  } catch (e) {
    $('message').textContent = `Could not load this session: ${e.message}`;
    document.body.dataset.state = 'error';
  }
}

/** Fills the environment panel's comparison; the replay does not depend on it. */
async function compareEnvironment(id) {
  try {
    const res = await fetch(sessionApi(id, '/environment'), { credentials: 'same-origin' });
    if (res.ok) panels.compare((await res.json()).facts || []);
    const side = await fetch(sessionApi(id, '/compare'), { credentials: 'same-origin' });
    if (side.ok) panels.sideBySide(await side.json());
  } catch { /* the comparison is optional */ }
}

/** Reads stacks and freeze culprits through the release's source maps; optional too. */
async function symbolicate(id) {
  try {
    const res = await fetch(sessionApi(id, '/symbolicated'), { credentials: 'same-origin' });
    if (!res.ok) return;
    const data = await res.json();
    panels.symbolicate(data);
    freezePanel.symbolicate(data);
    drawMarkers();
  } catch { /* symbolication is optional */ }
}

async function nextFrame() {
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
}

let markSeq = 0;
function mark(name) {
  const m = `replay-viewer-${name}-${++markSeq}`;
  performance.mark(m);
  return m;
}

/**
 * The shared benchmark's replay hook (bench/adapter.mjs): downloads the session in the same
 * ranges as the player, then (timed) shows the first frame from the first range and seeks to
 * the end after appending the rest. Every decoding step is inside a timed span.
 */
async function benchReplay(id, selector) {
  await init();
  const ranges = [];
  let r = await fetchRange(id, 0, FIRST_RANGE_BYTES);
  ranges.push(r.bytes);
  while (r.next !== null) { r = await fetchRange(id, r.next, RANGE_BYTES); ranges.push(r.bytes); }
  const count = () => frame.contentDocument.querySelectorAll(selector).length;
  const marks = {};
  const t0 = performance.now();
  marks.open = mark('open');
  const profile = {};
  let tp = performance.now();
  const lap = (name) => { const now = performance.now(); profile[name] = (profile[name] || 0) + now - tp; tp = now; mark(`lap-${name}`); };
  engine = Player.empty();
  marks.construct = mark('construct');
  engine.append(ranges[0]);
  lap('firstAppendMs');
  start = engine.start();
  const firstJson = engine.seek_frame(start);
  const firstFrame = { ints: engine.frame_ints(), text: engine.frame_text() };
  lap('firstSeekEngineMs');
  const firstOps = JSON.parse(firstJson);
  lap('firstParseMs');
  renderer.apply(firstOps, firstFrame);
  lap('firstApplyMs');
  marks.ready = mark('ready');
  const startReadyMs = performance.now() - t0;
  const nodesAtStart = count();
  await nextFrame();
  marks.framed = mark('framed');
  const startFramedMs = performance.now() - t0;
  const t1 = performance.now();
  marks.seekStart = mark('seek-start');
  tp = performance.now();
  for (const bytes of ranges.slice(1)) engine.append(bytes);
  lap('restAppendMs');
  const endJson = engine.seek_frame(engine.end());
  const endFrame = { ints: engine.frame_ints(), text: engine.frame_text() };
  lap('endSeekEngineMs');
  const endOps = JSON.parse(endJson);
  lap('endParseMs');
  renderer.apply(endOps, endFrame);
  lap('endApplyMs');
  profile.firstFrameInts = firstFrame.ints.length;
  profile.firstFrameText = firstFrame.text.length;
  profile.endFrameInts = endFrame.ints.length;
  marks.seekEnd = mark('seek-end');
  const seekEndSyncMs = performance.now() - t1;
  await nextFrame();
  marks.seekFramed = mark('seek-framed');
  const seekEndFramedMs = performance.now() - t1;
  absorb();
  position = duration;
  updateClock();
  return {
    startReadyMs, startFramedMs, seekEndSyncMs, seekEndFramedMs, nodesAtStart, nodesAtEnd: count(),
    totalTimeMs: engine.end() - engine.start(), events: engine.event_count(), ranges: ranges.length,
    bytes: ranges.reduce((n, b) => n + b.length, 0), keyframes: engine.keyframe_count(), marks, profile,
  };
}

// A hook for tests, the benchmark and linking: the current position and a way to move it.
window.replayPlayer = {
  seek: (ms) => seek(ms),
  position: () => position,
  duration: () => duration,
  speed: () => speed,
  playing: () => playing,
  loaded: () => loadedAll,
  entries: () => entries,
  comments: () => comments.list(),
  keyframes: () => (engine ? engine.keyframe_count() : 0),
  link: linkToNow,
  play,
  pause,
  benchReplay,
};

// The benchmark opens the page with ?bench and drives benchReplay itself.
if (!new URLSearchParams(location.search).has('bench')) main();
