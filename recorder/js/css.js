// CSSOM capture: what styles the page has beyond its markup.
//
// - `<link rel=stylesheet>` sheets that the page may read (same origin) are inlined as their
//   text, with `@import`ed sheets inlined and relative URLs made absolute; cross-origin links
//   keep their href and load in the replay.
// - `<style>` elements whose sheet was built with `insertRule` (CSS-in-JS) are sent as text.
// - `insertRule`/`deleteRule` (sheets and grouping rules), `replace`/`replaceSync`,
//   `style.setProperty`/`removeProperty` on rules and `adoptedStyleSheets` (document and shadow
//   roots) are wrapped: the page's call runs first and keeps its result and exceptions, then
//   the change is recorded (guarded: a recording error never reaches the page).
// - A wrapper only notes the change (where, and the rule or declaration to read): reading the
//   rule's text and the call into wasm happen in a task of the recorder's own soon after, or
//   before the next DOM pass at the latest (`flushCss`), so a page inserting hundreds of rules
//   in one task (CSS-in-JS rendering a list) does not pay for them in that task. A text read
//   late includes what changed in its rule since: a change of that rule (or of a rule nested
//   in it) made while its text is still to be read is not recorded again.
// - `adoptedStyleSheets` is an observable array: `push`/`splice` change it in place, around the
//   setter. A page reads the array to change it, so the getter notes the root and the next flush
//   compares its list with the one last sent (`touchAdopted`).
import { S, now, countError, likeOriginal, setTimer, bare } from './state.js';
import { patchCssomSetters } from './css-setters.js';
import { timed } from './valve.js';

/**
 * Constructed sheet → `{ id, epoch }`: its id, and the snapshot its text was sent in. A sheet
 * gets an id when a document or shadow root adopts it (its text then holds what changed before):
 * scratch sheets a page builds and never adopts cost nothing.
 * @type {WeakMap<CSSStyleSheet, { id: number, epoch: number }>}
 */
const sheetIds = new WeakMap();
let nextSheet = 1;
/**
 * Counts the snapshots: each one resets the replay's style sheets, so what a constructed sheet
 * sent before it is sent again when a root adopting it is walked.
 */
let epoch = 0;
/** While a snapshot is walked, changes wait for its tape (which resets the replay's sheets). */
let holding = false;
/** Owners whose sheet changed through the CSSOM before they had an id: sent whole when walked. */
const dirtyOwners = new WeakSet();
const patched = new WeakSet();
/**
 * Owners whose sheet was sent whole, with the text they had then (see `sendRuleOp`). Their
 * sheet differs from their text: walked again (moved, or in a new snapshot) or with their text
 * changed, they are sent whole again (`ownerWalked`).
 */
const sentWhole = new WeakMap();
const MAX_SHEET_CHARS = 2000000;

// ---- changes noted, sent out of the page's task ----

/**
 * Changes noted and not yet sent, in the page's order. `rule`: an inserted rule, its text read
 * when sent; `decl`: a declaration, the value and priority of property `a` read when sent.
 * @type {Array<{ t: number, owner: number, sheet: number, op: string, path: number[], a: string, b: string, c: string, rule: CSSRule | null, decl: CSSStyleDeclaration | null }>}
 */
let noted = [];
/** Characters of the texts in `noted` (whole sheets are read when noted). */
let notedChars = 0;
let flushDue = false;
/** Rules whose text is still to be read: their changes (and their nested rules') are in it. */
let unread = new WeakSet();
/**
 * Roots whose `adoptedStyleSheets` the page read since the last flush (it may have changed the
 * array in place), and the list each root had when last sent.
 * @type {Array<Document | ShadowRoot>}
 */
let touched = [];
let touchedSet = new WeakSet();
/** @type {WeakMap<Document | ShadowRoot, CSSStyleSheet[]>} */
const adoptedSent = new WeakMap();
/** Set while the recorder reads an adopted list itself (its reads are not the page's). */
let ownRead = false;
/** Past either bound, what is noted is sent at once (in the page's task, bounded). */
const MAX_NOTED = 4096;
const MAX_NOTED_CHARS = 4000000;

/** `flushCss` in a task of its own, its time on the recorder's budget (valve.js). */
function flushTimed() {
  try { timed(flushCss); } catch (_) { countError(); }
}

function note(owner, sheet, op, path, a, b, c, rule, decl) {
  noted.push({ t: now(), owner, sheet, op, path, a, b, c, rule, decl });
  notedChars += a.length + b.length + c.length;
  if (rule) unread.add(rule);
  if (noted.length >= MAX_NOTED || notedChars >= MAX_NOTED_CHARS) flushCss();
  else dueSoon();
}

/** A flush in a task of its own, unless one is already due. */
function dueSoon() {
  if (flushDue) return;
  flushDue = true;
  setTimer(flushTimed, 0);
}

/** The page read `root.adoptedStyleSheets`: the next flush looks whether it changed in place. */
function touchAdopted(root) {
  if (ownRead || touchedSet.has(root) || touched.length >= MAX_NOTED) return;
  touchedSet.add(root);
  touched.push(root);
  dueSoon();
}

/** Sends the adopted lists of the roots the page read that differ from the ones last sent. */
function checkTouched() {
  const t = touched;
  touched = [];
  touchedSet = new WeakSet();
  for (let i = 0; i < t.length; i++) {
    const root = t[i];
    const sent = adoptedSent.get(root);
    if (sent === undefined) continue; // not sent yet: its walk sends it
    ownRead = true;
    try {
      const list = root.adoptedStyleSheets;
      ownRead = false;
      if (!list) continue;
      let same = list.length === sent.length;
      for (let j = 0; same && j < list.length; j++) same = list[j] === sent[j];
      if (!same) sendAdopted(root);
    } catch (_) {
      countError();
    } finally {
      ownRead = false;
    }
  }
}

/**
 * Sends the CSSOM changes noted so far to wasm. Called in a task of its own after a change, and
 * before anything that must come after them: each DOM pass (a `<style>`'s text changing, a sheet
 * owner removed) and the snapshot.
 */
export function flushCss() {
  if (!noted.length && !touched.length) {
    flushDue = false;
    return;
  }
  // While a snapshot holds the notes, the flush stays due (no timer per note); its tape's
  // `snapshotWalk(false)` schedules the flush.
  if (holding && noted.length < MAX_NOTED && notedChars < MAX_NOTED_CHARS) return;
  flushDue = false;
  if (!live()) {
    dropCss();
    return;
  }
  if (touched.length) checkTouched();
  const q = noted;
  noted = [];
  notedChars = 0;
  for (let i = 0; i < q.length; i++) {
    const e = q[i];
    try {
      let a = e.a, b = e.b, c = e.c;
      if (e.rule) {
        unread.delete(e.rule);
        a = e.rule.cssText;
      } else if (e.decl) {
        b = e.decl.getPropertyValue(a);
        c = e.decl.getPropertyPriority(a);
      }
      S.rec.css(e.t, e.owner, e.sheet, e.op, new Uint32Array(e.path), a, b, c);
    } catch (_) {
      countError();
    }
  }
}

/** Forgets the changes noted and not sent (the recorder stopped). */
export function dropCss() {
  noted = [];
  notedChars = 0;
  unread = new WeakSet();
  touched = [];
  touchedSet = new WeakSet();
  holding = false;
  // A flush held due by a snapshot would never be scheduled again.
  flushDue = false;
}

/**
 * A snapshot starts (`true`: its walk begins; what was noted before went out first) or its tape
 * was sent (`false`): the changes noted meanwhile go after it.
 */
export function snapshotWalk(on) {
  if (on) epoch++;
  holding = on;
  if (!on && flushDue) {
    flushDue = false;
    dueSoon();
  }
}

function absolute(text, base) {
  if (!base || text.indexOf('url(') < 0) return text;
  return text.replace(/url\(\s*(["']?)([^"')]+)\1\s*\)/g, (m, q, u) => {
    if (/^(data|blob|https?):/i.test(u) || u.charCodeAt(0) === 35) return m;
    try { return 'url(' + q + new URL(u, base).href + q + ')'; } catch (_) { return m; }
  });
}

/** The text of a sheet: rules' cssText, same-origin imports inlined, URLs absolute. */
export function sheetText(sheet, depth) {
  let rules;
  try { rules = sheet.cssRules; } catch (_) { return null; }
  if (!rules) return null;
  const base = sheet.href || '';
  const out = [];
  let size = 0;
  for (let i = 0; i < rules.length && size < MAX_SHEET_CHARS; i++) {
    const r = rules[i];
    let t;
    if (r.type === 3 && r.styleSheet && (depth || 0) < 8) {
      const inner = sheetText(r.styleSheet, (depth || 0) + 1);
      if (inner === null) t = absolute(r.cssText, base);
      else t = r.media && r.media.length ? '@media ' + r.media.mediaText + '{' + inner + '}' : inner;
    } else {
      t = base ? absolute(r.cssText, base) : r.cssText;
    }
    out.push(t);
    size += t.length;
  }
  return out.join('\n');
}

/** The recorder's id of an adopted sheet, sending its text the first time in this snapshot. */
function constructedId(sheet) {
  let e = sheetIds.get(sheet);
  if (e === undefined) {
    e = { id: nextSheet++, epoch: -1 };
    sheetIds.set(sheet, e);
  }
  if (e.epoch !== epoch) {
    e.epoch = epoch;
    note(0, e.id, 't', [], sheetText(sheet) || '', '', '', null, null);
  }
  return e.id;
}

/** Where a sheet's changes go: `[owner, sheet]`, or null when it is not (yet) recorded. */
function target(sheet) {
  const owner = sheet.ownerNode;
  if (owner) {
    const id = S.ids.get(owner);
    if (id === undefined) { dirtyOwners.add(owner); return null; }
    if (S.blocked.has(owner)) return null;
    return [id, 0];
  }
  if (sheet.parentStyleSheet) return null; // an @import's sheet: its owner is sent whole
  // A constructed sheet (or a removed `<style>`'s) not adopted since the snapshot: its text,
  // sent when a root adopts it, will hold this change.
  const e = sheetIds.get(sheet);
  return e !== undefined && e.epoch === epoch ? [0, e.id] : null;
}

/**
 * Path of a rule from its sheet's top-level list, and the sheet; null when it has none, or when
 * its text or an enclosing rule's is still to be read (`unread`: a change there is in that text).
 */
function rulePath(rule) {
  const path = [];
  for (let r = rule, guard = 0; r && guard < 64; guard++) {
    if (unread.has(r)) return null;
    const parent = r.parentRule;
    const list = parent ? parent.cssRules : r.parentStyleSheet && r.parentStyleSheet.cssRules;
    if (!list) return null;
    const i = Array.prototype.indexOf.call(list, r);
    if (i < 0) return null;
    path.unshift(i);
    if (!parent) return { sheet: r.parentStyleSheet, path };
    r = parent;
  }
  return null;
}

/** Sends the whole text of a sheet. */
function sendText(sheet) {
  const t = target(sheet);
  if (!t) return;
  const text = sheetText(sheet);
  if (text === null) return;
  // The rules noted before it are sent first, their texts read now: a later change of one of
  // them is recorded again (that text would hold it, this one would not).
  flushCss();
  note(t[0], t[1], 't', [], text, '', '', null, null);
  if (t[0]) sentWhole.set(sheet.ownerNode, sheet.ownerNode.textContent);
}

/**
 * Records one rule operation; false when the sheet was sent whole instead (nothing more to
 * send). `rule`: the inserted rule, whose text is read when sent (`a` then unused); `decl`: the
 * declaration whose property `a` is read when sent (`b` and `c` then unused).
 */
function sendRuleOp(sheet, path, op, a, b, c, rule, decl) {
  const t = target(sheet);
  if (!t) return false;
  // An owner's sheet is sent whole at its first CSSOM change: the snapshot API rebuilds sheets
  // from text the browser serialized, without a CSS parser. One whose text changed since it was
  // sent whole is sent whole again after the DOM pass that records the new text (the replay
  // rebuilds a sheet from its new text: `ownerWalked`), this change in it.
  if (t[0]) {
    const owner = sheet.ownerNode;
    const sent = sentWhole.get(owner);
    if (sent === undefined) { sendText(sheet); return false; }
    if (sent !== owner.textContent) return false;
  }
  note(t[0], t[1], op, path, a || '', b || '', c || '', rule || null, decl || null);
  return true;
}

/** A rule changed as a whole (`selectorText`, `style.cssText`): deleted and inserted again. */
function sendRuleReplaced(rule) {
  const at = rulePath(rule);
  if (at && sendRuleOp(at.sheet, at.path, 'd')) sendRuleOp(at.sheet, at.path, 'i', '', '', '', rule);
}

/**
 * Called after a walk for each `<style>`/`<link>` it met, and after a DOM pass for each
 * `<style>` whose text changed: inlines what the markup lacks.
 */
export function ownerWalked(el) {
  const sheet = el.sheet;
  if (!sheet) return;
  if (el.localName === 'link') {
    if (!/(^|\s)stylesheet(\s|$)/i.test(el.rel || '')) return;
    sendText(sheet);
    return;
  }
  let rules;
  try { rules = sheet.cssRules; } catch (_) { return; }
  const hasImport = rules.length && rules[0].type === 3;
  if (dirtyOwners.has(el) || sentWhole.has(el) || hasImport || (rules.length && !/\S/.test(el.textContent))) {
    dirtyOwners.delete(el);
    sendText(sheet);
  }
}

/**
 * After the tape of a walk that met document or shadow root `root` (the replay has it now,
 * adopting nothing): sends what it adopts, or keeps its empty list to compare a change in place
 * with. Read here, not during the walk: a change between the walk's slices is in it.
 */
export function rootWalked(root) {
  let list;
  ownRead = true;
  try {
    list = root.adoptedStyleSheets;
  } catch (_) {
    countError();
  } finally {
    ownRead = false;
  }
  if (!list) return;
  if (!list.length) adoptedSent.set(root, []);
  else {
    try { sendAdopted(root); } catch (_) { countError(); }
  }
}

/** Sends the adopted sheets of a document or shadow root (ids, sending new sheets first). */
export function sendAdopted(root) {
  const id = S.ids.get(root);
  ownRead = true;
  let list;
  try { list = root.adoptedStyleSheets; } finally { ownRead = false; }
  if (id === undefined || !list) return;
  const ids = [];
  const sheets = [];
  for (let i = 0; i < list.length && i < 1000; i++) {
    sheets.push(list[i]);
    ids.push(constructedId(list[i]));
  }
  adoptedSent.set(root, sheets);
  note(id, 0, 'a', ids, '', '', '', null, null);
}

function live() {
  return S.rec && !S.stopped;
}

function after(proto, name, record) {
  const orig = proto && proto[name];
  if (typeof orig !== 'function') return;
  const wrapped = function () {
    const result = orig.apply(this, arguments);
    if (live()) {
      try { record(this, arguments, result); } catch (_) { countError(); }
    }
    return result;
  };
  likeOriginal(wrapped, orig);
  try {
    Object.defineProperty(proto, name, bare({ value: wrapped, writable: true, configurable: true, enumerable: false }));
  } catch (_) { /* frozen prototype: that API is not recorded */ }
}

function patchAdopted(proto) {
  const d = proto && Object.getOwnPropertyDescriptor(proto, 'adoptedStyleSheets');
  if (!d || !d.set || !d.configurable) return;
  try {
    Object.defineProperty(proto, 'adoptedStyleSheets', bare({
      configurable: true,
      enumerable: d.enumerable,
      get() {
        const list = d.get.call(this);
        if (live()) {
          try { touchAdopted(this); } catch (_) { countError(); }
        }
        return list;
      },
      set(v) {
        d.set.call(this, v);
        if (live()) {
          try { sendAdopted(this); } catch (_) { countError(); }
        }
      },
    }));
  } catch (_) { /* a prototype the page froze meanwhile: adoptions are seen when walked */ }
}

/** Wraps the CSSOM of a window (the page's, and each same-origin iframe's) once. */
export function patchCssom(win) {
  if (!win || patched.has(win)) return;
  patched.add(win);
  const sheetProto = win.CSSStyleSheet && win.CSSStyleSheet.prototype;
  after(sheetProto, 'insertRule', (sheet, args, index) => {
    const rule = sheet.cssRules[index];
    if (rule) sendRuleOp(sheet, [index], 'i', '', '', '', rule);
  });
  after(sheetProto, 'deleteRule', (sheet, args) => sendRuleOp(sheet, [Number(args[0]) >>> 0], 'd'));
  // The legacy aliases: `addRule(selector, style, index)` appends when there is no index.
  after(sheetProto, 'addRule', (sheet, args) => {
    const i = args.length > 2 && args[2] !== undefined ? Number(args[2]) >>> 0 : sheet.cssRules.length - 1;
    const rule = sheet.cssRules[i];
    if (rule) sendRuleOp(sheet, [i], 'i', '', '', '', rule);
  });
  after(sheetProto, 'removeRule', (sheet, args) => sendRuleOp(sheet, [args.length ? Number(args[0]) >>> 0 : 0], 'd'));
  after(sheetProto, 'replaceSync', (sheet) => sendText(sheet));
  after(sheetProto, 'replace', (sheet, args, promise) => {
    if (promise && promise.then) promise.then(() => { if (live()) { try { sendText(sheet); } catch (_) { countError(); } } }, () => {});
  });
  const groupProto = win.CSSGroupingRule && win.CSSGroupingRule.prototype;
  after(groupProto, 'insertRule', (group, args, index) => {
    const at = rulePath(group);
    const rule = group.cssRules[index];
    if (at && rule) sendRuleOp(at.sheet, at.path.concat(index), 'i', '', '', '', rule);
  });
  after(groupProto, 'deleteRule', (group, args) => {
    const at = rulePath(group);
    if (at) sendRuleOp(at.sheet, at.path.concat(Number(args[0]) >>> 0), 'd');
  });
  const declProto = win.CSSStyleDeclaration && win.CSSStyleDeclaration.prototype;
  after(declProto, 'setProperty', (decl, args) => {
    // Inline styles (`el.style`) are attribute changes, seen by the MutationObserver.
    const at = decl.parentRule && rulePath(decl.parentRule);
    if (at) {
      sendRuleOp(at.sheet, at.path, 'p', String(args[0]), '', '', null, decl);
    }
  });
  after(declProto, 'removeProperty', (decl, args) => {
    const at = decl.parentRule && rulePath(decl.parentRule);
    if (at) sendRuleOp(at.sheet, at.path, 'r', String(args[0]));
  });
  patchCssomSetters(win, {
    declaration(decl, name) {
      if (!live()) return;
      try {
        const at = rulePath(decl.parentRule);
        if (at) sendRuleOp(at.sheet, at.path, 'p', name, '', '', null, decl);
      } catch (_) { countError(); }
    },
    rule(rule) {
      if (!live()) return;
      try { sendRuleReplaced(rule); } catch (_) { countError(); }
    },
  });
  patchAdopted(win.Document && win.Document.prototype);
  patchAdopted(win.ShadowRoot && win.ShadowRoot.prototype);
}
