// DOM capture: the walker that serialises subtrees into a tape, the full snapshot, and the
// mutation handler with its per-node throttle. Tape format: protocol/src/tape.rs.
//
// The walker also enters open shadow roots and same-origin iframe documents (as Document nodes
// under the iframe element), applies the privacy rules on the way (masked text, blocked
// placeholders) and collects what the CSSOM capture must look at after the tape is sent.
import { S, now, guard, countError, setTimer } from './state.js';
import { P, TEXT_ATTRS, attrValue, closestAcross, designOn, maskText, rememberActive, rememberTyped, textMasked, unmasked } from './privacy.js';
import { ownerWalked, rootWalked, flushCss, dropCss, snapshotWalk } from './css.js';
import { COALESCE_MS, V, timed } from './valve.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const MATHML_NS = 'http://www.w3.org/1998/Math/MathML';
export const OBSERVE = { childList: true, subtree: true, attributes: true, characterData: true };
/** Longest text or attribute value recorded (UTF-16 units); longer ones are cut and noted. */
const MAX_STRING = 1000000;
/** Per-node throttle: tasks of the page that change one node's attributes or text, per window. */
const THROTTLE_WINDOW_MS = 1000;
const THROTTLE_PER_NODE = 30;

/** Sheet owners, documents and shadow roots met by the current walk, handled once the tape is sent. */
let owners = [];
let roots = [];
/** Cross-origin frame elements met by the current walk and their ids, handled after the tape. */
let crossFrames = [];
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

  /**
   * Gives a large buffer back once the tape is done with: one big walk (a 200k-node snapshot
   * needs 8 MB) would otherwise keep its buffer for the rest of the page view. Growing it again
   * for the next big walk costs a few copies of what it holds.
   */
  trim() {
    if (this.a.length > 1 << 16) this.a = new Uint32Array(1 << 14);
    this.length = 0;
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

/** Longest slice of the recorder's own work (ms) before it yields to the page. */
export const SLICE_MS = 8;

/**
 * Most pending DOM work (ms) a cut at the user's action does before the page's handler runs,
 * in the same task: on the benchmark's cssom page, clicks that each add 100 shadow-DOM cards
 * 60 ms apart made a long task (50 to 68 ms) 9 times in 5 runs with a full slice here, once in
 * 5 with 2 ms. What is left goes on in its slices after the handler; if the handler hangs for
 * good, it is never recorded (the freeze's replay may then lack the page's last changes before
 * the action, a burst the page made a few ms earlier), the price of not slowing every click.
 */
export const ACTION_CUT_MS = 2;

/** Where the walked element's text-like attributes' values are in `strs` (see TEXT_ATTRS). */
const textAttrs = [];

/** A walk that can stop and go on later: the stack of nodes still to visit. */
function walker(root, rootParent, masked) {
  return rewalker({ nodes: [], parents: [], flags: [], count: 0, check: false }, root, rootParent, masked);
}

/**
 * Walker `w`, done with, set to walk `root` instead: a re-render of 20k rows adds 20k subtree
 * roots, and a walker (four objects) made for each was garbage the page's thread collected.
 */
function rewalker(w, root, rootParent, masked) {
  w.nodes.length = 0;
  w.parents.length = 0;
  w.flags.length = 0;
  w.nodes.push(root);
  w.parents.push(rootParent);
  w.flags.push(masked === true || masked === 1 ? 1 : masked === 2 ? 2 : 0);
  w.count = 0;
  w.check = false;
  return w;
}

/**
 * Serialises `root` and its subtree (document order, ids assigned on the way); returns the
 * node count. `masked` says whether text at the root is masked (privacy context).
 */
export function walk(root, rootParent, ints, strs, masked) {
  const w = walker(root, rootParent, masked);
  walkSome(w, ints, strs, Infinity);
  return w.count;
}

/**
 * Goes on with walk `w` until it is done (true) or `deadline` (performance.now()) passed
 * (false). Once a walk has paused, the page may have changed in between: a node still on the
 * stack whose parent is no longer the one it was queued under is skipped (its parent's
 * childList change is handled by the job, see `finishJob`).
 */
function walkSome(w, ints, strs, deadline) {
  const ids = S.ids;
  const { nodes, parents, flags } = w;
  let budget = 0;
  while (nodes.length) {
    if (++budget === 64) {
      budget = 0;
      if (performance.now() > deadline) {
        w.check = true;
        return false;
      }
    }
    const node = nodes.pop();
    const pid = parents.pop();
    let m = flags.pop();
    if (w.check && pid !== 0 && node.nodeType !== 9 && node.nodeType !== 11 && ids.get(node.parentNode) !== pid) continue;
    const id = S.nextId++;
    ids.set(node, id);
    w.count++;
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
        textAttrs.length = 0;
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
          if (TEXT_ATTRS[name] === 1) textAttrs.push(strs.length - 1);
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
        // Its text-like attributes (`title`, `aria-label`, ...) are masked with its text.
        if (m === 1) for (let k = 0; k < textAttrs.length; k++) strs[textAttrs[k]] = maskText(strs[textAttrs[k]]);
        if (tag === 'script') { kids = null; break; }
        if (tag === 'canvas' && S.onCanvas) S.onCanvas(node, m === 1);
        if (tag === 'style') { m = 0; owners.push(node); }
        else if (tag === 'link') owners.push(node);
        else if (tag === 'textarea') m = unmasked(node) ? 0 : 1;
        else if (tag === 'template' && node.content) {
          // Its content is a fragment outside the document: observed on its own, known by the
          // template's id (the replay holds the content as the template's children).
          kids = node.content;
          ids.set(kids, id);
          S.templates.set(kids, node);
          if (S.observer) S.observer.observe(kids, OBSERVE);
        }
        else if (tag === 'iframe' || tag === 'frame') {
          const d = frameDoc(node);
          if (d) {
            S.frameDocs.set(node, d);
            nodes.push(d);
            parents.push(id);
            flags.push(m);
            kids = null;
          } else if (S.onFrame) crossFrames.push(node, id);
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
          S.childDocs = true;
          if (S.observer) S.observer.observe(node, OBSERVE);
          if (S.onDocument) S.onDocument(node);
        }
        roots.push(node);
        break;
      case 10:
        ints.p6(1, id, pid, node.name.length, node.publicId.length, node.systemId.length);
        strs.push(node.name, node.publicId, node.systemId);
        kids = null;
        break;
      case 11:
        ints.p3(5, id, pid);
        if (S.observer) S.observer.observe(node, OBSERVE);
        roots.push(node);
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
  return true;
}

/** After a tape went to wasm: CSSOM state of the sheets and roots the walk met, notes. */
function afterTape() {
  const o = owners;
  const r = roots;
  owners = [];
  roots = [];
  // A <style> is pushed for each record of its text in a pass: its sheet is looked at once.
  const seen = o.length > 1 ? new Set() : null;
  for (let i = 0; i < o.length; i++) {
    if (seen) {
      if (seen.has(o[i])) continue;
      seen.add(o[i]);
    }
    ownerWalked(o[i]);
  }
  for (let i = 0; i < r.length; i++) rootWalked(r[i]);
  flushCss();
  if (crossFrames.length) {
    const f = crossFrames;
    crossFrames = [];
    for (let i = 0; i < f.length; i += 2) S.onFrame(f[i], f[i + 1]);
  }
  if (truncated) {
    S.rec.note(now(), 4, 0, truncated, truncated + ' text or attribute values cut at ' + MAX_STRING + ' characters');
    truncated = 0;
  }
}

// ---- the recorder's own work in slices ----
//
// The full snapshot and the added subtrees of a mutation burst are walked by jobs in slices of
// at most SLICE_MS, each its own task, so that the recorder never makes a long task of its own
// however big the page. The observer's callback only queues records (`collect`), with the ids
// of removed nodes read at once, while they are still the ones in the replay.
//
// The page may change between slices. What the walk already read and the page then changed is
// put right by the next job: attribute and text changes are read again at their current value;
// for a node the running job walked (its id is at least the job's first id) whose children
// changed, the children recorded under it (read back from the tape) are compared with its
// children now: those still there in the same order stay, the others are removed, and the new
// or moved ones are walked as additions. Records on nodes the running snapshot has not reached
// are dropped, since the walk reads those nodes as they are when it gets there. A node still on
// the walk's stack whose parent changed is skipped (see `walkSome`).

/** Records queued for the next job, bounded: beyond it the work is finished at once. */
const MAX_QUEUE = 200000;
let queue = [];
/** Documents seen in designMode when records of theirs were queued (for the next job). */
let designSeen = new Set();
/** Elements whose text changed while inside a masked editing host (for the next job). */
let typedSeen = new Set();
/** The running job: `{ snapshot, firstId, t, ints, strs, w, ... }`, or null. */
let job = null;
let scheduled = false;
/** The throttle's trailing pass is due: the next job runs even without records. */
let forced = false;
/** Counts nodes between two looks at the clock (one look per 64 nodes or roots). */
let steps = 0;

/**
 * How long a new burst of changes waits before its pass: the changes of every keystroke,
 * animation step or re-render in that time are read in one pass, and nodes that came and went
 * within it (a text a page rewrites on each keystroke) cost nothing. A job already running goes
 * on at once. Well under what a viewer can tell apart in time.
 */
const GATHER_MS = 50;

/** Runs `fn` in a task of its own, queued behind the recorder's slices already due. */
export function later(fn) {
  const sch = /** @type {any} */ (globalThis).scheduler;
  if (sch && typeof sch.postTask === 'function') sch.postTask(fn).catch(() => {});
  else setTimer(fn, 0);
}

function schedule() {
  if (scheduled || S.stopped) return;
  scheduled = true;
  // Over its budget (valve.js), the recorder lets changes pile up for a while: one pass then
  // records their final state.
  if (V.level >= 1) setTimer(pump, COALESCE_MS);
  else if (job) later(pump);
  else setTimer(pump, GATHER_MS);
}

/** Counts the observer's callbacks (a node's changes count once per callback: `countChange`). */
let callbacks = 0;

/** Notes a document in designMode now (for the next job). */
function noteDesignMode(d) {
  if (d.designMode === 'on' && !designSeen.has(d)) {
    designSeen.add(d);
    S.maskCtx = true;
  }
}

/** The observer's callback: queues records, reading the ids of removed nodes now. */
export function collect(records) {
  if (S.stopped) return;
  const ids = S.ids;
  let doc = null;
  const gen = ++callbacks;
  // A document in designMode now: what changed in it was typed, even if the page switches
  // designMode off before the job reads the change (GATHER_MS later). With no child document
  // observed, every record is of this one: it is looked at once, not per record.
  const oneDoc = !S.childDocs;
  if (oneDoc) noteDesignMode(document);
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    // Each of a record's fields is a call into the browser: each is read once, and only where
    // its type has it (a page animating attributes makes hundreds of records per task).
    const type = r.type;
    const target = r.target;
    if (type !== 'childList') countChange(target, gen);
    if (!oneDoc) {
      const d = target.ownerDocument || target;
      if (d !== doc) {
        doc = d;
        noteDesignMode(d);
      }
    }
    // Inside a masked editing host now (text being typed): masked even if the page drops the
    // host's contenteditable (an inline editor saving on Enter) before the job reads the change.
    if (S.maskCtx && type !== 'attributes') {
      const el = type === 'characterData' ? target.parentNode : target;
      if (el && el.nodeType === 1 && !typedSeen.has(el)) {
        try {
          if (closestAcross(el, P.maskText)) typedSeen.add(el);
        } catch (_) { /* a custom selector the browser refuses: masked by the job as usual */ }
      }
    }
    let rem = null;
    let added = null;
    let name = null;
    let ns = null;
    if (type === 'childList') {
      rem = [];
      const removed = r.removedNodes;
      for (let j = 0; j < removed.length; j++) {
        const id = ids.get(removed[j]);
        if (id !== undefined) rem.push(id);
      }
      added = r.addedNodes;
      if (job) for (let j = 0; j < added.length; j++) job.late.set(added[j], S.nextId);
    } else if (type === 'attributes') {
      name = r.attributeName;
      ns = r.attributeNamespace;
    }
    // `seq`: a node added here but walked after this record came (its id is at least `seq`)
    // is already where it is: it is not added again.
    queue.push({ type, target, rem, added, name, ns, seq: S.nextId });
  }
  if (queue.length > MAX_QUEUE) settle();
  else if (queue.length) schedule();
}

function pump() {
  scheduled = false;
  work(SLICE_MS);
}

/**
 * Works on what is pending for at most `ms` (a slice's worth, from a task of its own or from a
 * cut of the watchdog); the rest goes on in later slices.
 */
export function work(ms) {
  if (S.stopped) return;
  timed(() => workTimed(ms));
}

function workTimed(ms) {
  try {
    if (S.observer) collect(S.observer.takeRecords());
    run(performance.now() + ms);
  } catch (e) {
    // A job that failed is dropped (a snapshot still lets the recorder go on).
    S.lastError = String((e && e.message) || e);
    countError();
    const j = job;
    job = null;
    if (j && j.snapshot) snapshotWalk(false);
    if (j && j.done) j.done();
  }
  if (job || queue.length || forced) schedule();
}

/** Works until `deadline`: the running job, then jobs for what is queued. */
function run(deadline) {
  // Typed values first (coalesced, events.js): remembered before any echo of them is read.
  if (S.beforePass) S.beforePass();
  // The CSSOM changes the page made before these DOM changes go first (a <style>'s new text
  // replaces its rules: the rules inserted before it must not come after it).
  flushCss();
  for (;;) {
    if (!job) {
      if (S.stopped || (!queue.length && !forced)) return;
      job = mutationJob();
    }
    if (!advance(job, deadline)) return;
    const j = job;
    job = null;
    finishJob(j);
    if (performance.now() > deadline) return;
  }
}

/** Finishes all pending work now (a flush, the page going away, a frame reloaded). */
export function settle() {
  if (S.stopped) return;
  if (S.observer) collect(S.observer.takeRecords());
  run(Infinity);
}

/** Drops pending work (the recorder stopped). */
export function dropWork() {
  job = null;
  queue = [];
  forced = false;
  dropCss();
}

/** True while the clock says the slice is over (looked at once per 64 steps). */
function overdue(deadline) {
  if (++steps < 64) return false;
  steps = 0;
  return performance.now() > deadline;
}

/**
 * Records the whole document at time `t`, then the live state of form controls and media, in
 * slices; `done` is called once the snapshot is in the recorder.
 */
export function takeSnapshot(t, recordInput, recordMedia, done) {
  settle();
  snapshotWalk(true);
  const controls = document.querySelectorAll('input, textarea, select');
  // Values already in fields (autofill, restored form state) may be shown elsewhere on the page.
  for (let i = 0; i < controls.length; i++) rememberTyped(controls[i]);
  const ints = tape.reset();
  ints.p1(0);
  job = {
    snapshot: true,
    late: new Map(),
    pending: new Set(),
    firstId: S.nextId,
    t,
    ints,
    strs: [],
    w: walker(document, 0, P.maskAllText),
    done() {
      afterSnapshot(recordInput, recordMedia);
      if (done) done();
    },
  };
  pump();
}

function afterSnapshot(recordInput, recordMedia) {
  const controls = document.querySelectorAll('input, textarea, select');
  for (let i = 0; i < controls.length; i++) {
    // Read as an input: a textarea or select has no `checked`, a select no `defaultValue`.
    const el = /** @type {HTMLInputElement} */ (controls[i]);
    if (!S.ids.has(el)) continue;
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
    if (!S.ids.has(el)) continue;
    if (!el.paused || el.currentTime > 0 || el.muted || el.volume !== 1 || el.playbackRate !== 1) recordMedia(el);
  }
}

/** Goes on with job `j` until it is done (true) or the deadline passed (false). */
function advance(j, deadline) {
  if (j.snapshot) return walkSome(j.w, j.ints, j.strs, deadline);
  const ids = S.ids;
  const ints = j.ints;
  for (;;) {
    if (j.w) {
      if (!walkSome(j.w, ints, j.strs, deadline)) return false;
      ints.set(j.at, j.w.count);
      j.nAdds++;
      j.w = null;
    }
    if (j.next >= j.roots.length) return true;
    if (overdue(deadline)) {
      // Between two roots: what is walked so far goes to wasm now, so that no one call (nor
      // the batch it fills) takes long.
      if (j.nAdds) emitPart(j);
      return false;
    }
    const p = j.roots[j.next++];
    const n = j.roots[j.next++];
    const m = j.roots[j.next++];
    j.pending.delete(n);
    // Moved or removed since the burst: the record of that change comes with the next job.
    if (n.parentNode !== p || !live(n) || ids.has(n) && ids.get(n) >= j.firstId) continue;
    // The next sibling that is there in the replay too: not one the page put there after the
    // burst (its record comes with the next job) unless this job walked it since, nor one of
    // this job's roots still to come (the page may have moved it to the right of this one).
    let s = n.nextSibling;
    while (s && (!ids.has(s) || ids.get(s) < (j.late.get(s) || 0) || j.pending.has(s))) s = s.nextSibling;
    ints.p3(ids.get(p), s ? ids.get(s) : 0, 0);
    j.at = ints.length - 1;
    j.w = j.spare ? rewalker(j.spare, n, ids.get(p), m) : (j.spare = walker(n, ids.get(p), m));
  }
}

/** Length of the node record at `i` of a tape (see protocol/src/tape.rs). */
function recordLength(a, i) {
  const kind = a[i];
  return kind === 2 ? 6 + 2 * a[i + 5] : kind === 1 ? 6 : kind === 0 || kind === 5 ? 3 : 4;
}

/** The ids recorded directly under each of `parents` by job `j`'s tape, in tape order. */
function childrenOnTape(j, parents) {
  let a = j.ints.a;
  const out = new Map();
  const node = (i) => {
    const pid = a[i + 2];
    if (parents.has(pid)) {
      let list = out.get(pid);
      if (!list) out.set(pid, list = []);
      list.push(a[i + 1]);
    }
    return i + recordLength(a, i);
  };
  if (j.snapshot) {
    let i = 1;
    for (let k = 0, n = a[0]; k < n; k++) i = node(i);
    return out;
  }
  // A mutation job's tape may have gone to wasm in parts.
  for (let p = 0; p < j.parts.length; p++) {
    a = j.parts[p];
    let i = 1 + a[0];
    const nAdds = a[i++];
    for (let add = 0; add < nAdds; add++) {
      i += 2;
      const n = a[i++];
      for (let k = 0; k < n; k++) i = node(i);
    }
  }
  return out;
}

/** Sends job `j`'s tape, then turns what changed under it meanwhile into queued work. */
function finishJob(j) {
  const ids = S.ids;
  if (j.snapshot) {
    j.ints.set(0, j.w.count);
    S.rec.snapshot(j.t, j.ints.view(), j.strs.join(''), Math.round(scrollX), Math.round(scrollY));
    snapshotWalk(false);
    afterTape();
  } else {
    endMutation(j);
  }
  // Records that came in while the job ran, against what it walked.
  const first = j.firstId;
  const keep = [];
  const dirty = [];
  const dirtyIds = new Set();
  for (let i = 0; i < queue.length; i++) {
    const e = queue[i];
    const tid = ids.get(e.target);
    const mine = tid !== undefined && tid >= first;
    if (e.type === 'childList') {
      if (mine) {
        if (!dirtyIds.has(tid)) { dirtyIds.add(tid); dirty.push(e.target); }
      } else if (!j.snapshot) keep.push(e);
    } else if (mine || !j.snapshot) keep.push(e);
  }
  if (dirty.length) {
    // The children each changed node has in the replay (from the tape just sent) against its
    // children now: those still there in the same order stay, the others go, the new ones
    // (and the ones out of order) are walked again.
    const under = childrenOnTape(j, dirtyIds);
    for (let i = 0; i < dirty.length; i++) {
      const t = dirty[i];
      if (!live(t)) continue;
      const recorded = under.get(ids.get(t)) || [];
      const at = new Map();
      for (let k = 0; k < recorded.length; k++) at.set(recorded[k], k);
      const stay = new Set();
      // Not children in the DOM's sense, but recorded under the node: its shadow root, its frame's document.
      if (t.nodeType === 1) {
        if (t.shadowRoot && ids.has(t.shadowRoot)) stay.add(ids.get(t.shadowRoot));
        const d = S.frameDocs.get(t);
        if (d && ids.has(d)) stay.add(ids.get(d));
      }
      const added = [];
      let last = -1;
      for (let c = t.firstChild; c; c = c.nextSibling) {
        const k = at.get(ids.get(c));
        if (k !== undefined && k > last) { stay.add(recorded[k]); last = k; }
        else added.push(c);
      }
      const rem = [];
      for (let k = 0; k < recorded.length; k++) if (!stay.has(recorded[k])) rem.push(recorded[k]);
      if (rem.length || added.length) keep.push({ type: 'childList', target: t, rem, added, seq: S.nextId });
    }
  }
  queue = keep;
  // The tape was read back above (childrenOnTape): now it may go.
  tape.trim();
  if (j.done) j.done();
  if (S.afterEmit) S.afterEmit(true);
}

/** A same-origin iframe (re)loaded: its new document replaces the one recorded under it. */
export function frameLoaded(el) {
  const id = S.ids.get(el);
  if (id === undefined || S.stopped || S.blocked.has(el)) return;
  const d = frameDoc(el);
  const old = S.frameDocs.get(el);
  if (!d && S.onFrame) S.onFrame(el, id);
  if (!d || old === d) return;
  settle();
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
  tape.trim();
}

function parentOf(n) {
  return n.parentNode || (n.nodeType === 11 ? n.host || S.templates.get(n) : null);
}

/**
 * True for a node the replay holds: one in the document, or in the content of a template the
 * recorder walked (a fragment outside the document).
 */
function live(n) {
  if (n.isConnected) return true;
  const root = n.getRootNode();
  return root.nodeType === 11 && S.templates.has(root);
}

// ---- the per-node throttle ----

let windowStart = 0;
/** @type {Map<Node, { n: number, g: number }>} tasks that changed each node this window (`n`), the last one's callback (`g`) */
let counts = new Map();
/** Throttled nodes → attribute names (`[name, ns, ...]`) or `true` for text, sent as their final state. */
let dirty = new Map();
let dropped = 0;
let topNode = null;
let topDropped = 0;
let trailingTimer = 0;

/**
 * Counts a change of `node` in this observer callback (once per node per callback, i.e. per
 * task of the page that changed it, however many passes GATHER_MS folds together).
 */
function countChange(node, gen) {
  const c = counts.get(node);
  if (c === undefined) counts.set(node, { n: 1, g: gen });
  else if (c.g !== gen) {
    c.g = gen;
    c.n++;
  }
}

/** True when `node` changed in more tasks this window than THROTTLE_PER_NODE allows. */
function throttled(node) {
  const c = counts.get(node);
  const n = c === undefined ? 0 : c.n;
  if (n <= THROTTLE_PER_NODE) return false;
  dropped++;
  if (n - THROTTLE_PER_NODE > topDropped) { topDropped = n - THROTTLE_PER_NODE; topNode = node; }
  if (!trailingTimer) {
    trailingTimer = setTimer(guard(() => {
      trailingTimer = 0;
      if (S.observer && !S.stopped) {
        forced = true;
        collect(S.observer.takeRecords());
        schedule();
      }
    }), THROTTLE_WINDOW_MS);
  }
  return true;
}

/**
 * Adds attribute `name` (namespace `ns`) to an element's changed names, `[name, ns, ...]`: a
 * handful at most, so a list, not a Map per changed element. A local name in two namespaces
 * (`href` and `xlink:href` on one SVG element) is two attributes, each read.
 */
function addName(names, name, ns) {
  for (let k = 0; k < names.length; k += 2) if (names[k] === name && names[k + 1] === ns) return;
  names.push(name, ns);
}

/** Starts a new window; returns the nodes whose final state must be sent now. */
function rollWindow(t, attrs, texts) {
  windowStart = t;
  counts = new Map();
  if (!dirty.size) return;
  for (const [node, names] of dirty) {
    if (names === true) { texts.add(node); continue; }
    let cur = attrs.get(node);
    if (!cur) attrs.set(node, cur = []);
    for (let k = 0; k < names.length; k += 2) addName(cur, names[k], names[k + 1]);
  }
  const id = (topNode && S.ids.get(topNode)) || 0;
  S.rec.note(t, 0, id, dropped, dropped + ' changes on ' + dirty.size + ' fast-changing nodes were throttled (final state kept)');
  dirty = new Map();
  dropped = 0;
  topNode = null;
  topDropped = 0;
}

/**
 * Starts a job for the queued records (one burst). Removals were read when the records came
 * (ids as they were); added subtrees are walked fresh by the job, right to left within each
 * parent so that each one's next sibling already has its id; attribute and text changes read
 * current values when the job ends. Nodes changing faster than the throttle allows are sent
 * once per window, in their final state.
 */
function mutationJob() {
  const records = queue;
  queue = [];
  const force = forced;
  forced = false;
  const t = now();
  const ids = S.ids;
  // The page may have echoed the focused field before our input listener saw it.
  rememberActive();
  const removes = [];
  const added = new Set();
  const attrs = new Map();
  const texts = new Set();
  // A forced job (the throttle's trailing pass) may have no records: the window roll sends
  // the final state of throttled nodes.
  if ((force || records.length) && t - windowStart >= THROTTLE_WINDOW_MS) rollWindow(t, attrs, texts);
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (r.type === 'childList') {
      // A `<style>` whose text changed: its sheet is looked at after the pass (css.js).
      if (r.target.localName === 'style') owners.push(r.target);
      for (let j = 0; j < r.rem.length; j++) removes.push(r.rem[j]);
      const add = r.added;
      for (let j = 0; j < add.length; j++) {
        const id = ids.get(add[j]);
        if (id === undefined || id < r.seq) added.add(add[j]);
      }
    } else if (r.type === 'attributes') {
      const target = r.target;
      // Before the throttle: a masked context seen only in a throttled change must still count.
      if (r.name === 'contenteditable' || r.name.startsWith('data-replay-')) S.maskCtx = true;
      let names = attrs.get(target);
      if (!names) {
        if (throttled(target)) {
          let d = dirty.get(target);
          if (d === true) continue;
          if (!d) dirty.set(target, d = []);
          addName(d, r.name, r.ns);
          continue;
        }
        attrs.set(target, names = []);
      }
      addName(names, r.name, r.ns);
    } else if (!texts.has(r.target)) {
      if (throttled(r.target)) { dirty.set(r.target, true); continue; }
      texts.add(r.target);
    }
  }
  const ints = tape.reset();
  ints.p1(removes.length);
  for (let i = 0; i < removes.length; i++) ints.p1(removes[i]);
  const context = new Map();
  const seen = designSeen;
  designSeen = new Set();
  const typed = typedSeen;
  typedSeen = new Set();
  const design = document.designMode === 'on' || seen.has(document);
  const designed = (d) => d === document ? design : seen.has(d) || d.designMode === 'on';
  const maskedUnder = (el) => {
    if (!el || el.nodeType !== 1) {
      if (el && el.nodeType === 11 && el.host) return maskedUnder(el.host);
      if (el && el.nodeType === 11 && S.templates.has(el)) return maskedUnder(S.templates.get(el));
      if (el && el.nodeType === 9 && designed(el)) return 1;
      return P.maskAllText ? 1 : 0;
    }
    if (el.localName === 'textarea') return unmasked(el) ? 2 : 1;
    // (With no child document, the element's is this one: not asked for each element.)
    if (!P.maskAllText && !S.maskCtx && !(!S.childDocs ? design : el.ownerDocument && designed(el.ownerDocument))) return 0;
    let v = context.get(el);
    if (v === undefined) {
      v = textMasked(el) ? 1 : closestAcross(el, P.unmask) ? 2 : 0;
      // In designMode when the change came, off by now: still typed text.
      if (v === 0 && ((el.ownerDocument && seen.has(el.ownerDocument)) || typed.has(el))) v = 1;
      context.set(el, v);
    }
    return v;
  };
  // Subtree roots: connected, parent known, no ancestor added in this burst.
  const byParent = new Map();
  for (const n of added) {
    if (!live(n)) continue;
    const p = n.parentNode;
    if (!p || !ids.has(p) || p.localName === 'script' || S.blocked.has(p)) continue;
    let covered = added.has(p);
    for (let a = parentOf(p); a && !covered; a = parentOf(a)) covered = added.has(a);
    if (covered) continue;
    let list = byParent.get(p);
    if (!list) byParent.set(p, list = []);
    list.push(n);
  }
  // Walk order: [parent, node, masked] triples, right to left within each parent.
  const roots = [];
  for (const [p, list] of byParent) {
    let ordered = list;
    if (list.length > 1) {
      const set = new Set(list);
      ordered = [];
      for (let c = p.lastChild; c; c = c.previousSibling) if (set.has(c)) ordered.push(c);
    } else {
      ordered = list;
    }
    const m = maskedUnder(p);
    for (let k = 0; k < ordered.length; k++) roots.push(p, ordered[k], m);
  }
  const pending = new Set();
  for (let k = 1; k < roots.length; k += 3) pending.add(roots[k]);
  const nAddsAt = ints.length;
  ints.p1(0);
  return {
    snapshot: false, firstId: S.nextId, t, ints, strs: [], roots, next: 0, w: null, at: 0,
    nAdds: 0, nAddsAt, nRemoves: removes.length, attrs, texts, maskedUnder, late: new Map(), pending, parts: [], spare: null,
  };
}

/**
 * Whether element `el`'s text-like attributes are masked (its text is; for a `<textarea>`, whose
 * own text is masked unless unmasked, the context it is in).
 */
function maskedAttrs(j, el) {
  if (el.localName !== 'textarea') return j.maskedUnder(el) === 1;
  try {
    return j.maskedUnder(el.parentNode) === 1 || el.matches(P.mask);
  } catch (_) {
    return true;
  }
}

/** Sends the removals and the subtrees walked so far as one mutation; the job goes on with a new tape. */
function emitPart(j) {
  const ints = j.ints;
  ints.set(j.nAddsAt, j.nAdds);
  ints.p2(0, 0);
  S.rec.mutation(j.t, ints.view(), j.strs.join(''));
  j.parts.push(ints.view().slice());
  afterTape();
  ints.reset();
  ints.p1(0);
  j.nAddsAt = ints.length;
  ints.p1(0);
  j.nAdds = 0;
  j.nRemoves = 0;
  j.strs = [];
  if (S.afterEmit) S.afterEmit();
}

/** The end of a mutation job: attribute and text values as they are now, then the tape. */
function endMutation(j) {
  const ids = S.ids;
  const ints = j.ints;
  const strs = j.strs;
  ints.set(j.nAddsAt, j.nAdds);
  const nAttrsAt = ints.length;
  ints.p1(0);
  let nAttrs = 0;
  for (const [el, names] of j.attrs) {
    const id = ids.get(el);
    if (id === undefined || !live(el) || S.blocked.has(el)) continue;
    const tag = el.localName;
    for (let k = 0; k < names.length; k += 2) {
      const name = names[k];
      const ns = names[k + 1];
      // Without a namespace the name is the qualified name: its value is read as a string (an
      // Attr node per change was most of the cost of a page animating attributes). Not found
      // (removed, or a name getAttribute lower-cases away): the Attr node says which.
      let qname = name;
      let raw = ns ? null : el.getAttribute(name);
      if (raw === null) {
        const node = ns ? el.getAttributeNodeNS(ns, name) : el.getAttributeNode(name);
        if (node) {
          qname = node.name;
          raw = node.value;
        }
      }
      let value = raw === null ? '' : capped(attrValue(el, tag, qname, raw));
      if (TEXT_ATTRS[qname] === 1 && value && maskedAttrs(j, el)) value = maskText(value);
      ints.p4(id, raw === null ? 0 : 1, qname.length, value.length);
      strs.push(qname, value);
      nAttrs++;
    }
  }
  ints.set(nAttrsAt, nAttrs);
  const nTextsAt = ints.length;
  ints.p1(0);
  let nTexts = 0;
  for (const tn of j.texts) {
    const id = ids.get(tn);
    if (id === undefined || !live(tn)) continue;
    let v = capped(tn.data);
    const p = tn.parentNode;
    if (tn.nodeType === 3 && j.maskedUnder(p) === 1) v = maskText(v);
    if (p.localName === 'style') owners.push(p);
    ints.p2(id, v.length);
    strs.push(v);
    nTexts++;
  }
  ints.set(nTextsAt, nTexts);
  if (j.nRemoves + j.nAdds + nAttrs + nTexts > 0) {
    S.rec.mutation(j.t, ints.view(), strs.join(''));
  }
  j.parts.push(ints.view());
  afterTape();
}
