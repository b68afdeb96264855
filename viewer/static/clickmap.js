// The click map page (server/src/clickmap_page.rs): draws the page the click map is of, as a
// picture. The latest matching page view is replayed by the player's wasm engine and renderer
// (render.js) into an iframe sandboxed without scripts, at the moment it was last seen, and
// shown at its whole height; each clicked element found by its path gets a badge with its
// count, coloured from cool to hot; elements not found are listed beside it; the scroll map
// shades the page in tenths by the share of page views that reached them. Recorded text is only
// ever set as text.
import init, { Player } from './viewer_wasm.js';
import { createRenderer } from './render.js';

/** Bytes per range of the session read (the player's). */
const RANGE_BYTES = 4 * 1024 * 1024;
/** Tallest page drawn (CSS pixels): a longer one is cut. */
const MAX_HEIGHT = 20000;
/** Widest picture on screen before it is scaled down. */
const MAX_WIDTH = 900;

const $ = (id) => document.getElementById(id);
const root = $('clickmap-picture');

function say(text) {
  const m = $('clickmap-message');
  if (m) {
    m.textContent = text;
    m.hidden = !text;
  }
}

async function fetchRange(project, id, from, maxBytes) {
  const res = await fetch(`/api/v1/projects/${project}/sessions/${encodeURIComponent(id)}/events?from=${from}&max_bytes=${maxBytes}`, {
    headers: { accept: 'application/msgpack' },
  });
  if (!res.ok) throw new Error(`the server answered ${res.status} for the page view`);
  const next = res.headers.get('x-replay-next');
  return { bytes: new Uint8Array(await res.arrayBuffer()), next: next === null ? null : Number(next) };
}

/** Heat colour of `share` (0 to 1): blue for the least clicked, red for the most. */
function heat(share) {
  return `hsl(${Math.round(220 - 220 * Math.max(0, Math.min(1, share)))}, 85%, 45%)`;
}

/** The element a recorded path names in the replayed document, or null. */
function find(doc, path) {
  try {
    return doc.querySelector(path);
  } catch (_) {
    return null;
  }
}

function cell(row, text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.textContent = text;
  row.append(td);
}

function listMissing(elements) {
  const body = document.querySelector('#clickmap-missing tbody');
  if (!body) return;
  for (const e of elements) {
    const row = document.createElement('tr');
    row.setAttribute('data-path', e.path);
    cell(row, String(e.clicks), 'count');
    cell(row, e.label || '—');
    cell(row, e.path, 'path');
    body.append(row);
  }
}

/** Waits for the replayed document's images and fonts to settle its layout (bounded). */
function settle(doc) {
  const images = [...doc.images].filter((i) => !i.complete).slice(0, 50);
  const loads = images.map((i) => new Promise((done) => { i.addEventListener('load', done); i.addEventListener('error', done); }));
  const fonts = doc.fonts && doc.fonts.ready ? doc.fonts.ready : Promise.resolve();
  return Promise.race([Promise.all([...loads, fonts]), new Promise((done) => setTimeout(done, 1500))]);
}

async function main() {
  if (!root) return;
  const res = await fetch(root.dataset.api || '', { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`the server answered ${res.status}`);
  const map = await res.json();
  const elements = map.elements || [];
  if (!map.sample) {
    listMissing(elements);
    root.dataset.state = 'ready';
    return;
  }
  const project = root.dataset.project || '';
  await init();
  const engine = Player.empty();
  let r = await fetchRange(project, map.sample.session, 0, RANGE_BYTES);
  engine.append(r.bytes);
  while (r.next !== null && engine.end() < map.sample.at_ms) {
    r = await fetchRange(project, map.sample.session, r.next, RANGE_BYTES);
    engine.append(r.bytes);
  }
  const frame = /** @type {HTMLIFrameElement} */ ($('clickmap-frame'));
  const stage = $('clickmap-stage');
  const overlay = $('clickmap-overlay');
  let width = 1024;
  let height = 768;
  const renderer = createRenderer(frame, {
    url: () => {},
    viewport: (w, h) => { if (w > 0 && h > 0) { width = w; height = h; } },
    pointer: () => {},
    touch: () => {},
  });
  frame.style.width = `${width}px`;
  frame.style.height = `${height}px`;
  const at = Math.max(engine.start(), Math.min(map.sample.at_ms, engine.end()));
  renderer.apply(JSON.parse(engine.seek_frame(at)), { ints: engine.frame_ints(), text: engine.frame_text() });
  frame.style.width = `${width}px`;
  const doc = frame.contentDocument;
  if (!doc || !doc.documentElement) throw new Error('the page view has no document at that moment');
  await settle(doc);
  // The whole page, not one screen of it: the frame grows to the document's height.
  frame.style.height = `${height}px`;
  const full = Math.min(MAX_HEIGHT, Math.max(height, doc.documentElement.scrollHeight, doc.body ? doc.body.scrollHeight : 0));
  frame.style.height = `${full}px`;
  if (doc.defaultView) doc.defaultView.scrollTo(0, 0);
  const scale = Math.min(1, MAX_WIDTH / width);
  stage.style.width = `${width}px`;
  stage.style.height = `${full}px`;
  stage.style.transform = `scale(${scale})`;
  stage.style.transformOrigin = '0 0';
  root.style.width = `${Math.ceil(width * scale)}px`;
  root.style.height = `${Math.ceil(full * scale)}px`;

  // Scroll map: each tenth of the page shaded by the share of page views that did not reach
  // its end, labelled with the share that did.
  const reached = (map.scroll && map.scroll.reached) || [];
  const views = (map.scroll && map.scroll.views) || 0;
  if (views > 0) {
    for (let k = 1; k <= 10; k++) {
      const share = (reached[k] || 0) / views;
      const band = document.createElement('div');
      band.className = 'scroll-band';
      band.setAttribute('data-depth', String(k * 10));
      band.style.top = `${((k - 1) * full) / 10}px`;
      band.style.height = `${full / 10}px`;
      band.style.background = `rgba(20, 20, 40, ${(0.45 * (1 - share)).toFixed(3)})`;
      const label = document.createElement('span');
      label.className = 'scroll-label';
      label.textContent = `${Math.round(share * 100)} % reached ${k * 10} %`;
      band.append(label);
      overlay.append(band);
    }
  }

  // Badges over the elements found; the rest listed.
  const most = elements.reduce((m, e) => Math.max(m, e.clicks), 1);
  const missing = [];
  for (const e of elements) {
    const el = find(doc, e.path);
    const box = el && el.getBoundingClientRect ? el.getBoundingClientRect() : null;
    if (!box || (box.width === 0 && box.height === 0)) {
      missing.push(e);
      continue;
    }
    const colour = heat(e.clicks / most);
    const outline = document.createElement('div');
    outline.className = 'clickmap-box';
    outline.style.left = `${box.left}px`;
    outline.style.top = `${box.top}px`;
    outline.style.width = `${box.width}px`;
    outline.style.height = `${box.height}px`;
    outline.style.borderColor = colour;
    const badge = document.createElement('span');
    badge.className = 'clickmap-badge';
    badge.setAttribute('data-path', e.path);
    badge.style.left = `${box.left + box.width / 2}px`;
    badge.style.top = `${box.top + box.height / 2}px`;
    badge.style.background = colour;
    badge.textContent = String(e.clicks);
    badge.title = e.label ? `${e.label} — ${e.path}` : e.path;
    overlay.append(outline, badge);
  }
  listMissing(missing);
  say('');
  root.dataset.state = 'ready';
}

main().catch((e) => {
  say(`The page could not be drawn: ${e && e.message ? e.message : e}`);
  if (root) root.dataset.state = 'error';
});
