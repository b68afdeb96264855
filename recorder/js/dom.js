// DOM capture: the walker that serialises subtrees into a tape, the full snapshot, and the
// mutation handler with its per-node throttle. Tape format: protocol/src/tape.rs.
//
// The walker also enters open shadow roots and same-origin iframe documents (as Document nodes
// under the iframe element), applies the privacy rules on the way (masked text, blocked
// placeholders) and collects what the CSSOM capture must look at after the tape is sent.
import { S, now, guard } from './state.js';
import { P, attrValue, closestAcross, designOn, maskText, rememberActive, rememberTyped, textMasked, unmasked } from './privacy.js';
import { ownerWalked, sendAdopted } from './css.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const MATHML_NS = 'http://www.w3.org/1998/Math/MathML';
export const OBSERVE = { childList: true, subtree: true, attributes: true, characterData: true };
/** Longest text or attribute value recorded (UTF-16 units); longer ones are cut and noted. */
const MAX_STRING = 1000000;
/** Per-node throttle: recorded attribute/text changes of one node per window. */
const THROTTLE_WINDOW_MS = 1000;
const THROTTLE_PER_NODE = 30;

/** Sheet owners and adopting roots met by the current walk, handled once the tape is sent. */
let owners = [];
let roots = [];
let truncated = 0;

/**
 * The integer half of a tape, written into one reused Uint32Array that grows as needed. A JS
 * array had to grow on every push and then be converted element by element into a typed array
 * for the hand-over (a third of `onRecords`' own time on the products page). Only one tape is
 * built at a time: each is reset before use and handed over before the next one starts.
 */
class IntTape {
  constructor() {
    this.a = new Uint32Array(1 << 14);
    this.length = 0;
  }

  /** Starts a new tape; a very large buffer left by a burst is given back. */
  reset() {
    if (this.a.length > 1 << 22) this.a = new Uint32Array(1 << 14);
    this.length = 0;
    return this;
  }

  room(k) {
    if (this.length + k > this.a.length) {
      const b = new Uint32Array(Math.max(2 * this.a.length, this.length + k));
      b.set(this.a.subarray(0, this.length));
      this.a = b;
    }
  }

  p1(x) {
    this.room(1);
    this.a[this.length++] = x;
  }

  p2(x, y) {
    this.room(2);
    const a = this.a;
    a[this.length++] = x;
    a[this.length++] = y;
  }

  p3(x, y, z) {
    this.room(3);
    const a = this.a;
    a[this.length++] = x;
    a[this.length++] = y;
    a[this.length++] = z;
  }

  p4(x, y, z, w) {
    this.room(4);
    const a = this.a;
    a[this.length++] = x;
    a[this.length++] = y;
    a[this.length++] = z;
    a[this.length++] = w;
  }

  p6(x, y, z, w, u, v) {
    this.room(6);
    const a = this.a;
    a[this.length++] = x;
    a[this.length++] = y;
    a[this.length++] = z;
    a[this.length++] = w;
    a[this.length++] = u;
    a[this.length++] = v;
  }

  set(at, v) {
    this.a[at] = v;
  }

  /** The tape so far (a view: wasm copies it during the call). */
  view() {
    return this.a.subarray(0, this.length);
  }
}

const tape = new IntTape();

function frameDoc(el) {
  try {
    const d = el.contentDocument;
    return d && d.documentElement ? d : null;
  } catch (_) {
    return null;
  }
}

function capped(v) {
  if (v.length <= MAX_STRING) return v;
  truncated++;
  return v.slice(0, MAX_STRING);
}

function placeholder(el, tag, id, pid, ns, ints, strs) {
  let w = 0;
  let h = 0;
  let display = 'block';
  try {
    const r = el.getBoundingClientRect();
    w = Math.round(r.width);
    h = Math.round(r.height);
    const d = getComputedStyle(el).display;
    display = d === 'inline' ? 'inline-block' : d;
  } catch (_) { /* detached */ }
  const style = `display:${display};width:${w}px;height:${h}px`;
  ints.p6(2, id, pid, ns, tag.length, 2);
  ints.p4(17, 0, 5, style.length);
  strs.push(tag, 'data-replay-block', '', 'style', style);
}

/**
 * Serialises `root` and its subtree (document order, ids assigned on the way); returns the
 * node count. `masked` says whether text at the root is masked (privacy context).
 */
export function walk(root, rootParent, ints, strs, masked) {
  const ids = S.ids;
  const nodes = [root];
  const parents = [rootParent];
  const flags = [masked === true || masked === 1 ? 1 : masked === 2 ? 2 : 0];
  let count = 0;
  while (nodes.length) {
    const node = nodes.pop();
    const pid = parents.pop();
    let m = flags.pop();
    const id = S.nextId++;
    ids.set(node, id);
    count++;
    let kids = node;
    switch (node.nodeType) {
      case 1: {
        const tag = node.localName;
        const nsUri = node.namespaceURI;
        const ns = nsUri === SVG_NS ? 1 : nsUri === MATHML_NS ? 2 : 0;
        // Names and values as strings: `attributes[i]` creates an Attr node per attribute
        // (3x slower on fresh elements). getAttribute lower-cases its argument on HTML
        // elements, so a name it cannot find (upper case, set with setAttributeNS) is read
        // from the Attr as before.
        const names = node.getAttributeNames();
        const n = names.length;
        const intsAt = ints.length;
        const strsAt = strs.length;
        ints.p6(2, id, pid, ns, tag.length, n);
        strs.push(tag);
        let special = 0;
        for (let i = 0; i < n; i++) {
          const name = names[i];
          let value = node.getAttribute(name);
          if (value === null) value = node.attributes[i].value;
          if (name.charCodeAt(0) === 100 && name.startsWith('data-replay-')) {
            special |= name === 'data-replay-block' ? 1 : name === 'data-replay-mask' ? 2 : name === 'data-replay-unmask' ? 4 : 0;
          } else if (name === 'contenteditable' && value !== 'false') {
            special |= 8;
          }
          const v = capped(attrValue(node, tag, name, value));
          ints.p2(name.length, v.length);
          strs.push(name, v);
        }
        if (P.custom) {
          if (P.blockCustom && node.matches(P.blockCustom)) special |= 1;
          if (P.maskCustom && node.matches(P.maskCustom)) special |= 2;
        }
        if (special & 1) {
          // Blocked: a same-size placeholder; nothing under it is read.
          ints.length = intsAt;
          strs.length = strsAt;
          placeholder(node, tag, id, pid, ns, ints, strs);
          S.blocked.add(node);
          kids = null;
          break;
        }
        // Text flags: 0 clear, 1 masked, 2 explicitly unmasked (user-typed text stays clear).
        if (special & 4) m = 2;
        else if (special & 2) { m = 1; S.maskCtx = true; }
        else if (special & 8) { if (m !== 2) m = 1; S.maskCtx = true; }
        if (tag === 'script') { kids = null; break; }
        if (tag === 'style') { m = 0; owners.push(node); }
        else if (tag === 'link') owners.push(node);
        else if (tag === 'textarea') m = unmasked(node) ? 0 : 1;
        else if (tag === 'template' && node.content) kids = node.content;
        else if (tag === 'iframe' || tag === 'frame') {
          const d = frameDoc(node);
          if (d) {
            S.frameDocs.set(node, d);
            nodes.push(d);
            parents.push(id);
            flags.push(m);
            kids = null;
          }
        }
        break;
      }
      case 3: {
        let v = capped(node.data);
        if (m === 1) v = maskText(v);
        ints.p4(3, id, pid, v.length);
        strs.push(v);
        kids = null;
        break;
      }
      case 8: {
        const v = capped(node.data);
        ints.p4(4, id, pid, v.length);
        strs.push(v);
        kids = null;
        break;
      }
      case 9:
        ints.p3(0, id, pid);
        // designMode: the whole document is typed by the user.
        if (m !== 2 && node.designMode === 'on') { m = 1; S.maskCtx = true; }
        if (pid !== 0) {
          if (S.observer) S.observer.observe(node, OBSERVE);
          if (S.onDocument) S.onDocument(node);
        }
        if (node.adoptedStyleSheets && node.adoptedStyleSheets.length) roots.push(node);
        break;
      case 10:
        ints.p6(1, id, pid, node.name.length, node.publicId.length, node.systemId.length);
        strs.push(node.name, node.publicId, node.systemId);
        kids = null;
        break;
      case 11:
        ints.p3(5, id, pid);
        if (S.observer) S.observer.observe(node, OBSERVE);
        if (node.adoptedStyleSheets && node.adoptedStyleSheets.length) roots.push(node);
        break;
      default:
        // Processing instructions, CDATA: not rendered in HTML documents.
        ints.p4(4, id, pid, 0);
        kids = null;
    }
    if (kids) {
      for (let c = kids.lastChild; c; c = c.previousSibling) {
        nodes.push(c);
        parents.push(id);
        flags.push(m);
      }
      // The open shadow root goes on last so that it comes out first, before light children.
      if (node.nodeType === 1 && node.shadowRoot) {
        nodes.push(node.shadowRoot);
        parents.push(id);
        flags.push(m);
      }
    }
  }
  return count;
}

/** After a tape went to wasm: CSSOM state of the sheets and roots the walk met, notes. */
function afterTape() {
  const o = owners;
  const r = roots;
  owners = [];
  roots = [];
  for (let i = 0; i < o.length; i++) ownerWalked(o[i]);
  for (let i = 0; i < r.length; i++) sendAdopted(r[i]);
  if (truncated) {
    S.rec.note(now(), 4, 0, truncated, truncated + ' text or attribute values cut at ' + MAX_STRING + ' characters');
    truncated = 0;
  }
}

/** Records the whole document at time `t`, then the live state of form controls and media. */
export function takeSnapshot(t, recordInput, recordMedia) {
  const controls = document.querySelectorAll('input, textarea, select');
  // Values already in fields (autofill, restored form state) may be shown elsewhere on the page.
  for (let i = 0; i < controls.length; i++) rememberTyped(controls[i]);
  const ints = tape.reset();
  const strs = [];
  ints.p1(0);
  ints.set(0, walk(document, 0, ints, strs, P.maskAllText));
  S.rec.snapshot(t, ints.view(), strs.join(''), Math.round(scrollX), Math.round(scrollY));
  afterTape();
  for (let i = 0; i < controls.length; i++) {
    // Read as an input: a textarea or select has no `checked`, a select no `defaultValue`.
    const el = /** @type {HTMLInputElement} */ (controls[i]);
    const type = (el.type || '').toLowerCase();
    if (type === 'checkbox' || type === 'radio') {
      if (el.checked !== el.defaultChecked) recordInput(el);
    } else if (el.localName === 'select') {
      recordInput(el);
    } else if (el.value !== (el.defaultValue === undefined ? el.value : el.defaultValue)) {
      recordInput(el);
    }
  }
  const media = /** @type {NodeListOf<HTMLMediaElement>} */ (document.querySelectorAll('video, audio'));
  for (let i = 0; i < media.length; i++) {
    const el = media[i];
    if (!el.paused || el.currentTime > 0 || el.muted || el.volume !== 1 || el.playbackRate !== 1) recordMedia(el);
  }
}

/** A same-origin iframe (re)loaded: its new document replaces the one recorded under it. */
export function frameLoaded(el) {
  const id = S.ids.get(el);
  if (id === undefined || S.stopped || S.blocked.has(el)) return;
  const d = frameDoc(el);
  const old = S.frameDocs.get(el);
  if (!d || old === d) return;
  if (S.observer) onRecords(S.observer.takeRecords());
  const oldId = old ? S.ids.get(old) : undefined;
  const ints = tape.reset();
  if (oldId === undefined) ints.p1(0);
  else ints.p2(1, oldId);
  const strs = [];
  S.frameDocs.set(el, d);
  ints.p4(1, id, 0, 0);
  const at = ints.length - 1;
  ints.set(at, walk(d, id, ints, strs, textMasked(el)));
  ints.p2(0, 0);
  S.rec.mutation(now(), ints.view(), strs.join(''));
  afterTape();
}

function parentOf(n) {
  return n.parentNode || (n.nodeType === 11 ? n.host : null);
}

// ---- the per-node throttle ----

let windowStart = 0;
let counts = new Map();
/** Throttled nodes → attribute names (Map) or `true` for text, sent as their final state. */
let dirty = new Map();
let dropped = 0;
let topNode = null;
let topDropped = 0;
let trailingTimer = 0;

function throttled(node) {
  const n = (counts.get(node) || 0) + 1;
  counts.set(node, n);
  if (n <= THROTTLE_PER_NODE) return false;
  dropped++;
  if (n - THROTTLE_PER_NODE > topDropped) { topDropped = n - THROTTLE_PER_NODE; topNode = node; }
  if (!trailingTimer) {
    trailingTimer = setTimeout(guard(() => {
      trailingTimer = 0;
      if (S.observer && !S.stopped) onRecords(S.observer.takeRecords(), true);
    }), THROTTLE_WINDOW_MS);
  }
  return true;
}

/** Starts a new window; returns the nodes whose final state must be sent now. */
function rollWindow(t, attrs, texts) {
  windowStart = t;
  counts = new Map();
  if (!dirty.size) return;
  for (const [node, names] of dirty) {
    if (names === true) { texts.add(node); continue; }
    let cur = attrs.get(node);
    if (!cur) attrs.set(node, cur = new Map());
    for (const [name, ns] of names) cur.set(name, ns);
  }
  const id = (topNode && S.ids.get(topNode)) || 0;
  S.rec.note(t, 0, id, dropped, dropped + ' changes on ' + dirty.size + ' fast-changing nodes were throttled (final state kept)');
  dirty = new Map();
  dropped = 0;
  topNode = null;
  topDropped = 0;
}

/**
 * Turns one burst of MutationRecords into a mutation tape. Removals are read first (ids as
 * they were); added subtrees are serialised fresh, right to left within each parent so that
 * each one's next sibling already has its id; attribute and text changes read current values.
 * Nodes changing faster than the throttle allows are sent once per window, in their final state.
 */
export function onRecords(records, force) {
  if ((!records.length && !force) || S.stopped) return;
  const t = now();
  const ids = S.ids;
  // The page may have echoed the focused field before our input listener saw it.
  rememberActive();
  const removes = [];
  const added = new Set();
  const attrs = new Map();
  const texts = new Set();
  if (t - windowStart >= THROTTLE_WINDOW_MS) rollWindow(t, attrs, texts);
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (r.type === 'childList') {
      const rem = r.removedNodes;
      for (let j = 0; j < rem.length; j++) {
        const id = ids.get(rem[j]);
        if (id !== undefined) removes.push(id);
      }
      const add = r.addedNodes;
      for (let j = 0; j < add.length; j++) added.add(add[j]);
    } else if (r.type === 'attributes') {
      const target = r.target;
      // Before the throttle: a masked context seen only in a throttled change must still count.
      if (r.attributeName === 'contenteditable' || r.attributeName.startsWith('data-replay-')) S.maskCtx = true;
      let names = attrs.get(target);
      if (!names) {
        if (throttled(target)) {
          let d = dirty.get(target);
          if (d === true) continue;
          if (!d) dirty.set(target, d = new Map());
          d.set(r.attributeName, r.attributeNamespace);
          continue;
        }
        attrs.set(target, names = new Map());
      }
      names.set(r.attributeName, r.attributeNamespace);
    } else if (!texts.has(r.target)) {
      if (throttled(r.target)) { dirty.set(r.target, true); continue; }
      texts.add(r.target);
    }
  }
  const ints = tape.reset();
  ints.p1(removes.length);
  for (let i = 0; i < removes.length; i++) ints.p1(removes[i]);
  const strs = [];
  const context = new Map();
  const design = document.designMode === 'on';
  const maskedUnder = (el) => {
    if (!el || el.nodeType !== 1) {
      if (el && el.nodeType === 11 && el.host) return maskedUnder(el.host);
      if (el && el.nodeType === 9 && (el === document ? design : el.designMode === 'on')) return 1;
      return P.maskAllText ? 1 : 0;
    }
    if (el.localName === 'textarea') return unmasked(el) ? 2 : 1;
    if (!P.maskAllText && !S.maskCtx && !(el.ownerDocument === document ? design : designOn(el))) return 0;
    let v = context.get(el);
    if (v === undefined) context.set(el, v = textMasked(el) ? 1 : closestAcross(el, P.unmask) ? 2 : 0);
    return v;
  };
  // Subtree roots: connected, parent known, no ancestor added in this burst.
  const byParent = new Map();
  for (const n of added) {
    if (!n.isConnected) continue;
    const p = n.parentNode;
    if (!p || !ids.has(p) || p.localName === 'script' || S.blocked.has(p)) continue;
    let covered = added.has(p);
    for (let a = parentOf(p); a && !covered; a = parentOf(a)) covered = added.has(a);
    if (covered) continue;
    let list = byParent.get(p);
    if (!list) byParent.set(p, list = []);
    list.push(n);
  }
  const nAddsAt = ints.length;
  ints.p1(0);
  let nAdds = 0;
  for (const [p, list] of byParent) {
    let ordered = list;
    if (list.length > 1) {
      const set = new Set(list);
      ordered = [];
      for (let c = p.lastChild; c; c = c.previousSibling) if (set.has(c)) ordered.push(c);
      ordered.reverse();
    }
    const pid = ids.get(p);
    const m = maskedUnder(p);
    for (let k = ordered.length - 1; k >= 0; k--) {
      const n = ordered[k];
      let s = n.nextSibling;
      while (s && !ids.has(s)) s = s.nextSibling;
      ints.p3(pid, s ? ids.get(s) : 0, 0);
      const at = ints.length - 1;
      ints.set(at, walk(n, pid, ints, strs, m));
      nAdds++;
    }
  }
  ints.set(nAddsAt, nAdds);
  const nAttrsAt = ints.length;
  ints.p1(0);
  let nAttrs = 0;
  for (const [el, names] of attrs) {
    const id = ids.get(el);
    if (id === undefined || !el.isConnected || S.blocked.has(el)) continue;
    const tag = el.localName;
    for (const [name, ns] of names) {
      const node = ns ? el.getAttributeNodeNS(ns, name) : el.getAttributeNode(name);
      const qname = node ? node.name : name;
      const value = node ? capped(attrValue(el, tag, qname, node.value)) : '';
      ints.p4(id, node ? 1 : 0, qname.length, value.length);
      strs.push(qname, value);
      nAttrs++;
    }
  }
  ints.set(nAttrsAt, nAttrs);
  const nTextsAt = ints.length;
  ints.p1(0);
  let nTexts = 0;
  for (const tn of texts) {
    const id = ids.get(tn);
    if (id === undefined || !tn.isConnected) continue;
    let v = capped(tn.data);
    if (tn.nodeType === 3 && maskedUnder(tn.parentNode) === 1) v = maskText(v);
    ints.p2(id, v.length);
    strs.push(v);
    nTexts++;
  }
  ints.set(nTextsAt, nTexts);
  if (removes.length + nAdds + nAttrs + nTexts > 0) {
    S.rec.mutation(t, ints.view(), strs.join(''));
  }
  afterTape();
}
