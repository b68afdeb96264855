// User interaction capture: input, clicks, sampled mouse moves, scroll, viewport.
import { S, now, guard } from './state.js';
import { maskedValue } from './privacy.js';

const MOUSE_SAMPLE_MS = 50;
const MOUSE_FLUSH_MS = 500;
const cleanups = [];

/** Records the current state of a form control (masked). */
export function recordInput(el) {
  const id = S.ids.get(el);
  if (id === undefined) return;
  const type = (el.type || '').toLowerCase();
  if (type === 'checkbox' || type === 'radio') {
    S.rec.input(now(), id, '', el.checked ? 1 : 0);
  } else {
    S.rec.input(now(), id, maskedValue(el), -1);
  }
}

let mouse = [];
let mouseStart = 0;
let mouseLast = 0;

function onMouseMove(e) {
  const t = now();
  if (t - mouseLast < MOUSE_SAMPLE_MS) return;
  mouseLast = t;
  if (!mouse.length) mouseStart = t;
  mouse.push(Math.round(e.clientX), Math.round(e.clientY), Math.round(t - mouseStart));
  if (t - mouseStart > MOUSE_FLUSH_MS) flushMouse();
}

/** Hands the sampled mouse positions to the recorder as one event. */
export function flushMouse() {
  if (!mouse.length || !S.rec) return;
  S.rec.mouse(mouseStart, new Int32Array(mouse));
  mouse = [];
}

const scrollTimers = new Map();

function onScroll(e) {
  const target = e.target;
  if (scrollTimers.has(target)) return;
  scrollTimers.set(target, setTimeout(guard(() => {
    scrollTimers.delete(target);
    if (S.stopped) return;
    if (target === document || target === document.documentElement) {
      S.rec.scroll(now(), 0, Math.round(scrollX), Math.round(scrollY));
    } else {
      const id = S.ids.get(target);
      if (id !== undefined) S.rec.scroll(now(), id, Math.round(target.scrollLeft), Math.round(target.scrollTop));
    }
  }), 100));
}

let resizeTimer = 0;
function onResize() {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(guard(() => S.rec.viewport(now(), innerWidth, innerHeight)), 200);
}

/** Adds a guarded listener that `removeListeners` takes away again. */
export function listen(target, type, fn, opts) {
  const g = guard(fn);
  target.addEventListener(type, g, opts);
  cleanups.push(() => target.removeEventListener(type, g, opts));
}

export function removeListeners() {
  for (const c of cleanups.splice(0)) c();
}

/** Starts listening to the user. */
export function listenToUser() {
  listen(document, 'input', (e) => recordInput(e.target), true);
  listen(document, 'change', (e) => recordInput(e.target), true);
  listen(document, 'click', (e) => {
    const id = S.ids.get(e.target);
    S.rec.click(now(), id === undefined ? 0 : id, Math.round(e.clientX), Math.round(e.clientY), e.button);
  }, true);
  listen(document, 'mousemove', onMouseMove, { capture: true, passive: true });
  listen(document, 'scroll', onScroll, { capture: true, passive: true });
  listen(window, 'resize', onResize, { passive: true });
}
