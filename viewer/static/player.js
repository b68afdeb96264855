// The player: loads a session, drives the wasm replay engine, and applies its operations to a
// sandboxed iframe (no allow-scripts) through DOM APIs. Recorded strings are never parsed as
// HTML here; the engine has already sanitized nodes and attributes (viewer/src/sanitize.rs).
import init, { Player } from './viewer_wasm.js';

const NS = ['http://www.w3.org/1999/xhtml', 'http://www.w3.org/2000/svg', 'http://www.w3.org/1998/Math/MathML'];
const XLINK = 'http://www.w3.org/1999/xlink';
const XML = 'http://www.w3.org/XML/1998/namespace';

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
const nodes = new Map();

function fmt(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

// ---- building the replay document ----

function create(doc, n) {
  const kind = n[2];
  switch (kind) {
    case 1:
      try { return doc.implementation.createDocumentType(n[3] || 'html', n[4], n[5]); } catch (_) { return null; }
    case 2: {
      let el;
      try {
        el = n[4] === 0 ? doc.createElement(n[3]) : doc.createElementNS(NS[n[4]] || NS[0], n[3]);
      } catch (_) {
        el = doc.createElement('span');
      }
      const attrs = n[5];
      for (let i = 0; i < attrs.length; i += 2) setAttr(el, attrs[i], attrs[i + 1]);
      return el;
    }
    case 3: return doc.createTextNode(n[3]);
    case 4: return doc.createComment(n[3]);
    default: return null;
  }
}

function setAttr(el, name, value) {
  try {
    if (name.startsWith('xlink:')) el.setAttributeNS(XLINK, name, value);
    else if (name.startsWith('xml:')) el.setAttributeNS(XML, name, value);
    else el.setAttribute(name, value);
  } catch (_) { /* invalid attribute name in the recording */ }
}

function container(parent) {
  return parent && parent.localName === 'template' && parent.content ? parent.content : parent;
}

function insert(list, parentId, nextId) {
  const doc = frame.contentDocument;
  for (let i = 0; i < list.length; i++) {
    const n = list[i];
    const id = n[0];
    const parent = container(nodes.get(i === 0 ? parentId : n[1]));
    if (!parent) continue;
    if (n[2] === 0) { nodes.set(id, doc); continue; }
    let node;
    if (n[2] === 5) {
      try { node = parent.attachShadow({ mode: 'open' }); } catch (_) { node = doc.createDocumentFragment(); }
      nodes.set(id, node);
      continue;
    }
    node = create(doc, n);
    if (!node) continue;
    nodes.set(id, node);
    const before = i === 0 && nextId ? nodes.get(nextId) : null;
    try {
      parent.insertBefore(node, before && before.parentNode === parent ? before : null);
    } catch (_) { /* e.g. a second doctype */ }
  }
}

function full(op) {
  const doc = frame.contentDocument;
  while (doc.firstChild) doc.removeChild(doc.firstChild);
  nodes.clear();
  const list = op[5];
  if (list.length && list[0][2] === 0) nodes.set(list[0][0], doc);
  insert(list.slice(1), list.length ? list[0][0] : 0, 0);
  showUrl(op[1]);
  setScroll(0, op[3], op[4]);
}

function setScroll(id, x, y) {
  if (id === 0) {
    const win = frame.contentWindow;
    if (win) win.scrollTo(x, y);
  } else {
    const el = nodes.get(id);
    if (el) { el.scrollLeft = x; el.scrollTop = y; }
  }
}

function showUrl(url) {
  $('url').textContent = url || '';
}

function apply(ops) {
  for (const op of ops) {
    switch (op[0]) {
      case 'full': full(op); break;
      case 'rm': {
        const node = nodes.get(op[1]);
        if (node && node.parentNode) node.parentNode.removeChild(node);
        nodes.delete(op[1]);
        break;
      }
      case 'add': insert(op[3], op[1], op[2]); break;
      case 'attr': {
        const el = nodes.get(op[1]);
        if (el && el.nodeType === 1) {
          if (op[3] === null) { try { el.removeAttribute(op[2]); } catch (_) { /* ignore */ } }
          else setAttr(el, op[2], op[3]);
        }
        break;
      }
      case 'text': {
        const t = nodes.get(op[1]);
        if (t && (t.nodeType === 3 || t.nodeType === 8)) t.data = op[2];
        break;
      }
      case 'input': {
        const el = nodes.get(op[1]);
        if (el && 'value' in el) {
          if (op[3] === null) el.value = op[2]; else el.checked = !!op[3];
        }
        break;
      }
      case 'scroll': setScroll(op[1], op[2], op[3]); break;
      case 'mouse': moveCursor(op[1], op[2], false); break;
      case 'click': moveCursor(op[1], op[2], true); break;
      case 'viewport': resize(op[1], op[2]); break;
      case 'meta': showUrl(op[1]); break;
      default: break;
    }
  }
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
