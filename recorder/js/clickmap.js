// What click maps and scroll maps need from the page: a short, stable CSS selector of each
// clicked element (made on click only, never for the whole document) and how far down the page
// each page view has been seen.
import { S, now } from './state.js';

/** Longest path sent (the protocol's `MAX_CLICK_PATH`). */
const MAX_PATH = 300;
/** Most elements a path climbs through before it stops at one without an id. */
const MAX_STEPS = 12;
/** Most classes a step names. */
const MAX_CLASSES = 2;
/** Most siblings counted for `:nth-of-type` (past it the step names none). */
const MAX_SIBLINGS = 500;
/** Names kept in a selector: plain identifiers without long digit runs (generated ids and
 * classes such as `ember1234` or `:r1:` change between page views). */
const STABLE = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const GENERATED = /\d{3,}/;

function stable(name) {
  return STABLE.test(name) && !GENERATED.test(name);
}

/** One step of a path: tag, up to two classes and `:nth-of-type` when siblings share the tag. */
function step(el) {
  const tag = el.localName;
  let out = STABLE.test(tag) ? tag : '*';
  let classes = 0;
  const list = el.classList;
  for (let i = 0; list && i < list.length && classes < MAX_CLASSES; i++) {
    if (stable(list[i])) {
      out += '.' + list[i];
      classes++;
    }
  }
  const parent = el.parentElement;
  if (!parent) return out;
  let index = 0;
  let same = 0;
  let seen = 0;
  for (let s = parent.firstElementChild; s && seen < MAX_SIBLINGS; s = s.nextElementSibling, seen++) {
    if (s.localName !== tag) continue;
    same++;
    if (s === el) index = same;
  }
  if (index > 0 && same > 1) out += ':nth-of-type(' + index + ')';
  return out;
}

/**
 * The clicked element's path: from the element up to the nearest ancestor with a stable id
 * (`#id`) or to `body`, at most 12 steps and 300 characters (the steps nearest the element
 * kept), joined by ` > `. Names only the page's structure (tags, ids, classes), never text.
 */
export function clickPath(target) {
  let el = target && target.nodeType === 1 ? target : target && target.parentElement;
  const steps = [];
  let length = 0;
  for (let i = 0; el && el.nodeType === 1 && i < MAX_STEPS; i++, el = el.parentElement) {
    const tag = el.localName;
    if (tag === 'html') break;
    const id = el.id;
    const s = id && stable(id) ? '#' + id : tag === 'body' ? 'body' : step(el);
    if (length + s.length + 3 > MAX_PATH) break;
    steps.push(s);
    length += s.length + 3;
    if (s[0] === '#' || s === 'body') break;
  }
  return steps.reverse().join(' > ');
}

let deepest = -1;

/**
 * Records how far down the page is seen (the viewport's bottom edge and the document's
 * height) when the deepest tenth reached grows, or at once when `fresh` (a page view or an
 * in-page navigation starts: its depth counts from there).
 */
export function recordScrollDepth(fresh) {
  if (S.stopped) return;
  if (fresh) deepest = -1;
  const root = document.documentElement;
  const body = document.body;
  const height = Math.max(root ? root.scrollHeight : 0, body ? body.scrollHeight : 0);
  const bottom = Math.max(0, Math.round(scrollY + innerHeight));
  const tenth = height <= 0 || bottom >= height ? 10 : Math.floor((bottom * 10) / height);
  if (tenth <= deepest) return;
  deepest = tenth;
  S.rec.scroll_depth(now(), bottom, Math.round(height));
}
