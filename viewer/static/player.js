// The player page: loads a session, drives the wasm replay engine (seek, play), and owns the
// controls, the timeline and the effects around the replayed page (cursor, scaling, URL bar).
// Building the replayed document is render.js's job; the iframe is sandboxed without
// allow-scripts.
import init, { Player } from './viewer_wasm.js';
import { createRenderer } from './render.js';

const $ = (id) => document.getElementById(id);
const frame = $('frame');
const wrap = $('frame-wrap');
const cursor = $('cursor');
const seekBar = $('seek');
const playButton = $('play');

let engine = null;
let start = 0;
let duration = 0;
let position = 0;
let playing = false;
let speed = 1;
let lastTick = 0;
let viewport = [1024, 768];

function fmt(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function showUrl(url) {
  $('url').textContent = url || '';
}

function moveCursor(x, y, click) {
  cursor.hidden = false;
  cursor.style.left = `${x}px`;
  cursor.style.top = `${y}px`;
  if (click) {
    cursor.classList.remove('click');
    void cursor.offsetWidth;
    cursor.classList.add('click');
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
  wrap.style.left = `${Math.max(0, (stage.clientWidth - viewport[0] * scale) / 2)}px`;
  wrap.style.top = `${Math.max(0, (stage.clientHeight - viewport[1] * scale) / 2)}px`;
}

const renderer = createRenderer(frame, { url: showUrl, viewport: resize, pointer: moveCursor });
const apply = (ops) => renderer.apply(ops);

// ---- playback ----

function updateClock() {
  $('time').textContent = `${fmt(position)} / ${fmt(duration)}`;
  seekBar.value = String(Math.round(position));
}

function seek(ms) {
  position = Math.max(0, Math.min(duration, ms));
  apply(JSON.parse(engine.seek(start + position)));
  lastTick = performance.now();
  updateClock();
}

function tick(now) {
  if (!playing) return;
  position = Math.min(duration, position + (now - lastTick) * speed);
  lastTick = now;
  apply(JSON.parse(engine.advance(start + position)));
  updateClock();
  if (position >= duration) { pause(); return; }
  requestAnimationFrame(tick);
}

function play() {
  if (position >= duration) seek(0);
  playing = true;
  playButton.textContent = '❚❚';
  lastTick = performance.now();
  requestAnimationFrame(tick);
}

function pause() {
  playing = false;
  playButton.textContent = '▶';
}

function drawMarkers() {
  const box = $('markers');
  for (const [t, kind] of JSON.parse(engine.markers())) {
    const i = document.createElement('i');
    i.className = kind;
    i.style.left = `${duration ? ((t - start) / duration) * 100 : 0}%`;
    i.title = `${kind} at ${fmt(t - start)}`;
    box.append(i);
  }
}

async function fetchSession(id) {
  const res = await fetch(`/api/v1/sessions/${encodeURIComponent(id)}/events`, { headers: { accept: 'application/msgpack' } });
  if (!res.ok) throw new Error(`the server answered ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    if (total) $('progress').firstElementChild.style.width = `${(got / total) * 100}%`;
  }
  const bytes = new Uint8Array(got);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  $('progress').firstElementChild.style.width = '100%';
  return bytes;
}

async function main() {
  const params = new URLSearchParams(location.search);
  const id = params.get('session') || '';
  $('session-id').textContent = id;
  try {
    await init();
    const bytes = await fetchSession(id);
    engine = new Player(bytes);
    start = engine.start();
    duration = Math.max(0, engine.end() - start);
    seekBar.max = String(Math.round(duration));
    // The replay document starts empty and same-origin, so the player can build into it.
    const t = params.get('t');
    seek(t === null ? 0 : t === 'end' ? duration : Number(t) || 0);
    drawMarkers();
    document.body.dataset.state = 'ready';
  } catch (e) {
    $('message').textContent = `Could not load this session: ${e.message}`;
    document.body.dataset.state = 'error';
    return;
  }
  playButton.addEventListener('click', () => (playing ? pause() : play()));
  seekBar.addEventListener('input', () => seek(Number(seekBar.value)));
  $('speed').addEventListener('change', (e) => { speed = Number(e.target.value) || 1; });
  addEventListener('resize', fit);
  addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== 'range') return;
    if (e.key === ' ') { e.preventDefault(); playing ? pause() : play(); }
    else if (e.key === 'ArrowRight') seek(position + 5000);
    else if (e.key === 'ArrowLeft') seek(position - 5000);
  });
}

// A hook for tests and for linking: the current position and a way to move it.
window.replayPlayer = {
  seek: (ms) => seek(ms),
  position: () => position,
  duration: () => duration,
  play,
  pause,
};

main();
