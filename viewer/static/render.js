// The replay renderer: applies the engine's operations (viewer/src/ops.rs) to the sandboxed
// replay iframe through DOM APIs. Recorded strings are never parsed as HTML here; the engine
// has already sanitized nodes and attributes (viewer/src/sanitize.rs). Effects outside the
// replayed document (cursor, viewport, URL bar) are handed to the player through callbacks.

const NS = ['http://www.w3.org/1999/xhtml', 'http://www.w3.org/2000/svg', 'http://www.w3.org/1998/Math/MathML'];
const XLINK = 'http://www.w3.org/1999/xlink';
const XML = 'http://www.w3.org/XML/1998/namespace';

/**
 * A renderer bound to one iframe. `effects` receives `url(url)`, `viewport(w, h)`,
 * `pointer(x, y, clicked)` and, when it has one, `touch(points)` (`[x, y, ...]` of the fingers
 * on the screen, empty once lifted).
 */
export function createRenderer(frame, effects) {
  const nodes = new Map();
  /** Constructed sheets by recorder id; `<style>` companions of inlined `<link>`s by owner id. */
  const sheets = new Map();
  const companions = new Map();

  /**
   * The replayed page is a picture of a page, not one to use: a click on one of its links
   * (by the viewer's user, or dispatched by anything) must not navigate the replay frame away
   * to the recorded target. The sandbox stops scripts, forms and popups, not a link followed
   * in the frame itself. The listeners are the player's (its scripts run; the frame's don't).
   */
  const guarded = new WeakSet();
  function guard(doc) {
    if (!doc || guarded.has(doc)) return;
    guarded.add(doc);
    for (const type of ['click', 'auxclick', 'submit']) doc.addEventListener(type, (e) => e.preventDefault(), true);
  }
  guard(frame.contentDocument);

  /**
   * Puts a replay document in the rendering mode of the recorded one before it is built. A
   * replay document starts as about:blank, in quirks mode, and a doctype node inserted later
   * does not change that: a recorded page with `<!DOCTYPE html>` would lay out as a quirks
   * page (e.g. the first paragraph's top margin collapsing away). Only this constant doctype
   * is ever written, never recorded markup.
   */
  function setMode(doc, standards) {
    if ((doc.compatMode === 'CSS1Compat') === standards) return;
    try {
      doc.open();
      doc.write(standards ? '<!DOCTYPE html>' : '');
      doc.close();
    } catch (_) { return; }
    // `open` dropped the document's listeners: the link guard goes on again.
    guarded.delete(doc);
    guard(doc);
  }

  function setAttr(el, name, value) {
    try {
      if (name.startsWith('xlink:')) el.setAttributeNS(XLINK, name, value);
      else if (name.startsWith('xml:')) el.setAttributeNS(XML, name, value);
      else el.setAttribute(name, value);
    } catch (_) { /* invalid attribute name in the recording */ }
  }

  function create(doc, n) {
    switch (n[2]) {
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

  /**
   * A replayed `<iframe>`/`<frame>` (its recorded `src` is never loaded) gets an address of its
   * own that still means the empty document, `about:blank?N` (N: the frame's node id), before
   * it is inserted. Without one, WebKit leaves a frame nested in a replayed frame with no box
   * (its address resolves to that of the documents around it, which `setMode`'s `open()` made
   * the player's own, and WebKit refuses a frame that repeats its ancestors' address). Every
   * engine keeps the initial empty document for it, so it is built into at once.
   */
  function blankFrame(el, id) {
    const tag = el.localName;
    if ((tag === 'iframe' || tag === 'frame') && el.namespaceURI === NS[0]) el.setAttribute('src', 'about:blank?' + id);
  }

  function container(parent) {
    return parent && parent.localName === 'template' && parent.content ? parent.content : parent;
  }

  function insert(list, parentId, nextId) {
    for (let i = 0; i < list.length; i++) {
      const n = list[i];
      const id = n[0];
      const parent = container(nodes.get(i === 0 ? parentId : n[1]));
      if (!parent) continue;
      if (n[2] === 0) {
        // A same-origin iframe's document: built inside the replayed iframe (about:blank).
        const inner = parent.localName === 'iframe' || parent.localName === 'frame' ? parent.contentDocument : null;
        if (inner) {
          const next = list[i + 1];
          setMode(inner, !!next && next[2] === 1 && next[1] === id);
          guard(inner);
          while (inner.firstChild) inner.removeChild(inner.firstChild);
          nodes.set(id, inner);
          recordedDocs.add(inner);
        }
        continue;
      }
      const doc = parent.nodeType === 9 ? parent : parent.ownerDocument || frame.contentDocument;
      if (n[2] === 5) {
        let root;
        try { root = parent.attachShadow({ mode: 'open' }); } catch (_) { root = doc.createDocumentFragment(); }
        nodes.set(id, root);
        continue;
      }
      const node = create(doc, n);
      if (!node) continue;
      if (n[2] === 2) blankFrame(node, id);
      nodes.set(id, node);
      const before = i === 0 && nextId ? nodes.get(nextId) : null;
      try {
        parent.insertBefore(node, before && before.parentNode === parent ? before : null);
      } catch (_) { /* e.g. a second doctype */ }
      if (n[2] === 2 && n[3] === 'dialog') showDialog(node);
    }
  }

  /**
   * Frames holding a recorded document now, and the placeholder text of each cross-origin frame
   * not recorded (its URL and size, set as text: nothing is loaded).
   */
  const recordedDocs = new WeakSet();
  const placeholders = new WeakMap();

  /** `["frame", id, text]`: shows the placeholder in frame `id` unless it holds a recorded document. */
  function framePlaceholder(el, text) {
    if (!el || (el.localName !== 'iframe' && el.localName !== 'frame')) return;
    placeholders.set(el, text);
    const inner = el.contentDocument;
    if (!inner || recordedDocs.has(inner)) return;
    setMode(inner, true);
    guard(inner);
    while (inner.firstChild) inner.removeChild(inner.firstChild);
    const html = inner.createElement('html');
    const body = inner.createElement('body');
    body.style.margin = '0';
    const box = inner.createElement('div');
    box.setAttribute('data-replay-frame', 'placeholder');
    box.style.cssText = 'box-sizing:border-box;height:100vh;padding:8px;border:1px dashed #98a2b3;background:#f2f4f7;'
      + 'color:#475467;font:12px sans-serif;overflow:hidden;word-break:break-all';
    box.textContent = text;
    body.appendChild(box);
    html.appendChild(body);
    inner.appendChild(html);
  }

  /**
   * `["font", css]`: a font the page added through the `FontFace` API, as an `@font-face` rule
   * the engine wrote from checked parts (viewer/src/ops.rs), added as a style of its own.
   */
  function addFont(css) {
    const doc = frame.contentDocument;
    if (!doc || !doc.documentElement) return;
    const s = doc.createElement('style');
    s.setAttribute('data-replay-font', '');
    s.textContent = css;
    (doc.head || doc.documentElement).appendChild(s);
  }

  /** A frame's recorded document went (the frame navigated away, its recorder left). */
  function frameDocumentRemoved(inner) {
    recordedDocs.delete(inner);
    while (inner.firstChild) inner.removeChild(inner.firstChild);
    const el = inner.defaultView && inner.defaultView.frameElement;
    if (el && placeholders.has(el)) framePlaceholder(el, placeholders.get(el));
  }

  /** The frame last asked to be drawn into each replayed canvas: a slower decode of an older
   * frame never paints over a newer one. */
  const canvasFrames = new WeakMap();
  const IMAGE_TYPES = ['image/webp', 'image/png', 'image/jpeg'];

  /**
   * `["canvas", id, mime, base64, width, height]`: a recorded canvas frame. The bytes are only
   * ever decoded as an image (`createImageBitmap` of a typed Blob, no URL, no markup) and
   * drawn into the replayed `<canvas>`, stretched over its size.
   */
  function drawCanvas(op) {
    const el = nodes.get(op[1]);
    if (!el || el.localName !== 'canvas' || el.namespaceURI !== NS[0] || !IMAGE_TYPES.includes(op[2])) return;
    let bytes;
    try {
      const bin = atob(op[3]);
      bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    } catch (_) { return; }
    const token = {};
    canvasFrames.set(el, token);
    createImageBitmap(new Blob([bytes], { type: op[2] })).then((bitmap) => {
      try {
        if (canvasFrames.get(el) !== token) return;
        const ctx = el.getContext('2d');
        if (!ctx) return;
        ctx.clearRect(0, 0, el.width, el.height);
        ctx.drawImage(bitmap, 0, 0, el.width, el.height);
      } finally {
        bitmap.close();
      }
    }, () => { /* not an image the browser decodes */ });
  }

  /** Dialogs recorded as shown with `show()` (not modally), by replay element. */
  const modeless = new WeakSet();

  /**
   * An open `<dialog>` is shown modally, as pages almost always open them (showModal), unless
   * the recording says it was shown with `show()` (a `dialog` operation).
   */
  function showDialog(el) {
    if (!el.isConnected || el.localName !== 'dialog') return;
    try {
      if (modeless.has(el)) {
        if (el.matches(':modal')) { el.close(); el.setAttribute('open', ''); }
        else if (!el.hasAttribute('open') && el.open) el.close();
      } else if (el.hasAttribute('open') && !el.matches(':modal')) {
        el.removeAttribute('open');
        el.showModal();
        // showModal focuses the dialog; the replay shows focus only as recorded.
        const active = el.ownerDocument.activeElement;
        if (active && active.blur) active.blur();
      }
      else if (!el.hasAttribute('open') && el.open) el.close();
    } catch (_) { /* not connected to a rendered document */ }
  }

  // ---- CSSOM ----

  /** Copies parsed rules into a sheet the player cannot `replaceSync` (a `<style>`'s). */
  function fillSheet(sheet, text, win) {
    while (sheet.cssRules.length) sheet.deleteRule(sheet.cssRules.length - 1);
    const parsed = new win.CSSStyleSheet();
    parsed.replaceSync(text);
    for (let i = 0; i < parsed.cssRules.length; i++) {
      try { sheet.insertRule(parsed.cssRules[i].cssText, sheet.cssRules.length); } catch (_) { /* skip */ }
    }
  }

  function sheetFor(owner, id, create) {
    if (owner === 0) {
      let s = sheets.get(id);
      if (!s && create) {
        const win = frame.contentWindow;
        s = new win.CSSStyleSheet();
        sheets.set(id, s);
      }
      return s || null;
    }
    const c = companions.get(owner);
    if (c) return c.sheet;
    const el = nodes.get(owner);
    if (!el) return null;
    if (el.localName === 'link' && create) {
      // An inlined `<link>`: its rules live in a `<style>` right after it (not a recorded node).
      const style = el.ownerDocument.createElement('style');
      el.after(style);
      companions.set(owner, style);
      return style.sheet;
    }
    return el.sheet || null;
  }

  function ruleList(sheet, path, upTo) {
    let holder = sheet;
    for (let i = 0; i < upTo; i++) {
      const r = holder && holder.cssRules && holder.cssRules[path[i]];
      if (!r) return null;
      holder = r;
    }
    return holder;
  }

  function css(owner, id, op) {
    if (op[0] === 'a') {
      const root = nodes.get(owner);
      if (!root) return;
      const list = [];
      for (const sid of op[1]) { const s = sheets.get(sid); if (s) list.push(s); }
      root.adoptedStyleSheets = list;
      return;
    }
    const sheet = sheetFor(owner, id, op[0] === 't');
    if (!sheet) return;
    const win = frame.contentWindow;
    switch (op[0]) {
      case 't':
        if (owner === 0) sheet.replaceSync(op[1]);
        else fillSheet(sheet, op[1], win);
        break;
      case 'i': {
        const path = op[1];
        const holder = ruleList(sheet, path, path.length - 1);
        if (holder) holder.insertRule(op[2], path[path.length - 1]);
        break;
      }
      case 'd': {
        const path = op[1];
        const holder = ruleList(sheet, path, path.length - 1);
        if (holder) holder.deleteRule(path[path.length - 1]);
        break;
      }
      case 'p': {
        const rule = ruleList(sheet, op[1], op[1].length);
        if (rule && rule.style) rule.style.setProperty(op[2], op[3], op[4]);
        break;
      }
      case 'r': {
        const rule = ruleList(sheet, op[1], op[1].length);
        if (rule && rule.style) rule.style.removeProperty(op[2]);
        break;
      }
      default: break;
    }
  }

  function media(op) {
    const el = nodes.get(op[1]);
    if (!el || typeof el.pause !== 'function') return;
    try {
      el.playbackRate = op[4] || 1;
      el.volume = op[5];
      el.muted = !!op[6];
      if (Math.abs(el.currentTime - op[3]) > 0.05) el.currentTime = op[3];
      if (op[2] === 0) { const p = el.play(); if (p && p.catch) p.catch(() => {}); } else el.pause();
    } catch (_) { /* no media in this document */ }
  }

  function selection(op) {
    const doc = frame.contentDocument;
    const sel = doc && doc.getSelection();
    if (!sel) return;
    try {
      const a = nodes.get(op[1]);
      const f = nodes.get(op[3]);
      if (!a || !f) { sel.removeAllRanges(); return; }
      sel.setBaseAndExtent(a, op[2], f, op[4]);
    } catch (_) { /* offsets beyond the replayed nodes */ }
  }

  /**
   * The nodes of a binary frame (viewer/src/ops.rs, `Tape`) as the JSON node arrays that
   * `insert` takes: for the rare documents that `buildFrame` cannot build.
   */
  function frameNodes(ints, text) {
    const list = [];
    const str = (i) => text.substring(ints[i], ints[i] + ints[i + 1]);
    for (let i = 0; i < ints.length;) {
      const n = [ints[i], ints[i + 1], ints[i + 2]];
      i += 3;
      switch (n[2]) {
        case 1: n.push(str(i), str(i + 2), str(i + 4)); i += 6; break;
        case 2: {
          n.push(str(i), ints[i + 2]);
          const count = ints[i + 3];
          i += 4;
          const attrs = [];
          for (let k = 0; k < count; k++, i += 4) attrs.push(str(i), str(i + 2));
          n.push(attrs);
          break;
        }
        case 3: case 4: n.push(str(i)); i += 2; break;
        default: break;
      }
      list.push(n);
    }
    return list;
  }

  /** True when a frame holds a document below its first node (a same-origin iframe's). */
  function hasInnerDocument(ints) {
    for (let i = 0, first = true; i < ints.length; first = false) {
      const kind = ints[i + 2];
      if (kind === 0 && !first) return true;
      i += 3;
      if (kind === 1) i += 6;
      else if (kind === 2) i += 4 + 4 * ints[i + 3];
      else if (kind === 3 || kind === 4) i += 2;
    }
    return false;
  }

  /**
   * Builds a whole document from a binary frame (parents before children) off the document:
   * every node is created and appended while its tree is detached (no style invalidation, no
   * connection bookkeeping per insertion), then the top-level nodes are attached in one
   * insertion each. Strings are slices of one text, so no JSON is parsed. A same-origin
   * iframe's document can only be built once its iframe is connected: such frames take the
   * incremental path (`insert`).
   */
  function buildFrame(doc, ints, text) {
    if (ints.length < 3 || ints[2] !== 0) return;
    const docId = ints[0];
    nodes.set(docId, doc);
    if (hasInnerDocument(ints)) {
      insert(frameNodes(ints, text).slice(1), docId, 0);
      return;
    }
    const top = [];
    const dialogs = [];
    const contents = new Map();
    for (let i = 3; i < ints.length;) {
      const id = ints[i];
      const pid = ints[i + 1];
      const kind = ints[i + 2];
      i += 3;
      let parent = null;
      let skip = false;
      if (pid !== docId) {
        parent = (contents.size !== 0 && contents.get(pid)) || nodes.get(pid);
        if (!parent) skip = true;
      }
      let node = null;
      if (kind === 2) {
        const tag = text.substring(ints[i], ints[i] + ints[i + 1]);
        const ns = ints[i + 2];
        const count = ints[i + 3];
        i += 4;
        if (skip) { i += 4 * count; continue; }
        try {
          node = ns === 0 ? doc.createElement(tag) : doc.createElementNS(NS[ns] || NS[0], tag);
        } catch (_) {
          node = doc.createElement('span');
        }
        for (let k = 0; k < count; k++, i += 4) {
          setAttr(node, text.substring(ints[i], ints[i] + ints[i + 1]), text.substring(ints[i + 2], ints[i + 2] + ints[i + 3]));
        }
        blankFrame(node, id);
        if (tag === 'template' && node.content) contents.set(id, node.content);
        else if (tag === 'dialog') dialogs.push(node);
      } else if (kind === 3 || kind === 4) {
        const data = text.substring(ints[i], ints[i] + ints[i + 1]);
        i += 2;
        if (skip) continue;
        node = kind === 3 ? doc.createTextNode(data) : doc.createComment(data);
      } else if (kind === 1) {
        const name = text.substring(ints[i], ints[i] + ints[i + 1]);
        const pub = text.substring(ints[i + 2], ints[i + 2] + ints[i + 3]);
        const sys = text.substring(ints[i + 4], ints[i + 4] + ints[i + 5]);
        i += 6;
        if (skip) continue;
        try { node = doc.implementation.createDocumentType(name || 'html', pub, sys); } catch (_) { continue; }
      } else if (kind === 5) {
        if (!parent) continue;
        let root;
        try { root = parent.attachShadow({ mode: 'open' }); } catch (_) { root = doc.createDocumentFragment(); }
        nodes.set(id, root);
        continue;
      } else continue;
      nodes.set(id, node);
      if (parent) {
        try { parent.appendChild(node); } catch (_) { /* e.g. a doctype below the document */ }
      } else top.push(node);
    }
    for (const node of top) {
      try { doc.appendChild(node); } catch (_) { /* e.g. a second doctype or root element */ }
    }
    for (const el of dialogs) showDialog(el);
  }

  /** A `full` operation; its nodes are JSON arrays, or (`null`) in the binary `frame`. */
  function full(op, frameData) {
    const doc = frame.contentDocument;
    const list = op[5];
    // The recorded document's doctype comes right after it (in JSON or binary nodes).
    const ints = frameData && frameData.ints;
    const standards = list === null
      ? !!ints && ints.length > 5 && ints[5] === 1 && ints[4] === ints[0]
      : list.length > 1 && list[1][2] === 1 && list[1][1] === list[0][0];
    setMode(doc, standards);
    guard(doc);
    while (doc.firstChild) doc.removeChild(doc.firstChild);
    nodes.clear();
    sheets.clear();
    companions.clear();
    try { doc.adoptedStyleSheets = []; } catch (_) { /* old engine */ }
    if (list === null) {
      if (frameData) buildFrame(doc, frameData.ints, frameData.text);
    } else {
      if (list.length && list[0][2] === 0) nodes.set(list[0][0], doc);
      insert(list.slice(1), list.length ? list[0][0] : 0, 0);
    }
    effects.url(op[1]);
    scrollWindowSoon(op[3], op[4]);
  }

  // The window's scroll position after a full rebuild is set in the next animation frame:
  // scrolling now would force a synchronous layout of the whole new document, which the frame
  // does anyway. A later scroll operation supersedes it.
  let pendingScroll = null;
  function scrollWindowSoon(x, y) {
    const first = pendingScroll === null;
    pendingScroll = [x, y];
    if (!first) return;
    requestAnimationFrame(() => {
      if (pendingScroll === null) return;
      const [px, py] = pendingScroll;
      pendingScroll = null;
      setScroll(0, px, py);
    });
  }

  function setScroll(id, x, y) {
    if (id === 0) {
      pendingScroll = null;
      const win = frame.contentWindow;
      if (win) win.scrollTo(x, y);
    } else {
      const el = nodes.get(id);
      if (el) { el.scrollLeft = x; el.scrollTop = y; }
    }
  }

  const pseudo = pseudoStates(frame, nodes);

  /** Applies operations; `frameData` ({ints, text}) holds the nodes of a binary `full`. */
  function apply(ops, frameData) {
    for (const op of ops) {
      if (STYLE_OPS.has(op[0])) pseudo.stylesChanged(op);
      switch (op[0]) {
        case 'full': full(op, frameData); break;
        case 'rm': {
          const node = nodes.get(op[1]);
          if (node && node.parentNode) node.parentNode.removeChild(node);
          else if (node && node.nodeType === 9 && recordedDocs.has(node)) frameDocumentRemoved(node);
          nodes.delete(op[1]);
          const c = companions.get(op[1]);
          if (c) { c.remove(); companions.delete(op[1]); }
          break;
        }
        case 'add': insert(op[3], op[1], op[2]); break;
        case 'attr': {
          const el = nodes.get(op[1]);
          if (el && el.nodeType === 1) {
            if (op[3] === null) { try { el.removeAttribute(op[2]); } catch (_) { /* ignore */ } }
            else setAttr(el, op[2], op[3]);
            if (op[2] === 'open') showDialog(el);
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
          if (el && el.localName === 'option') el.selected = !!op[3];
          else if (el && 'value' in el) {
            if (op[3] === null) el.value = op[2]; else el.checked = !!op[3];
          }
          break;
        }
        case 'css': try { css(op[1], op[2], op[3]); } catch (_) { /* a rule the browser refuses */ } break;
        case 'media': media(op); break;
        case 'sel': selection(op); break;
        case 'scroll': setScroll(op[1], op[2], op[3]); break;
        case 'mouse': effects.pointer(op[1], op[2], false); pseudo.hover(op[1], op[2]); break;
        case 'click': effects.pointer(op[1], op[2], true); pseudo.hover(op[1], op[2]); break;
        case 'focus': pseudo.focus(op[1]); break;
        case 'dialog': {
          const el = nodes.get(op[1]);
          if (el && el.nodeType === 1) {
            if (op[2]) modeless.delete(el); else modeless.add(el);
            showDialog(el);
          }
          break;
        }
        case 'canvas': drawCanvas(op); break;
        case 'frame': framePlaceholder(nodes.get(op[1]), String(op[2])); break;
        case 'font': addFont(String(op[1])); break;
        case 'touch': if (effects.touch) effects.touch(op.slice(1)); break;
        case 'viewport': effects.viewport(op[1], op[2]); break;
        case 'meta': effects.url(op[1]); break;
        default: break;
      }
    }
  }

  return { apply, node: (id) => nodes.get(id) };
}

/** Operations that may change the replayed stylesheets (or the elements they are in). */
const STYLE_OPS = new Set(['full', 'add', 'rm', 'text', 'css']);

/** Most style rules read, and most `:hover`/`:focus` rules written, per stylesheet rebuild. */
const MAX_RULES_READ = 50000;
const MAX_PSEUDO_RULES = 5000;

/** The attributes that stand for the user's pseudo-classes in the replay. */
const HOVER = 'data-replay-hover';
const FOCUS = 'data-replay-focus';
const FOCUS_WITHIN = 'data-replay-focus-within';

/**
 * Rewrites a selector's user-action pseudo-classes into the attributes the replay sets:
 * `a:hover` → `a[data-replay-hover]`. Null when it has none.
 */
export function pseudoSelector(selector) {
  if (!/:(hover|focus)/.test(selector)) return null;
  return selector
    .replace(/:hover(?![\w-])/g, `[${HOVER}]`)
    .replace(/:focus-within(?![\w-])/g, `[${FOCUS_WITHIN}]`)
    .replace(/:focus-visible(?![\w-])/g, `[${FOCUS}]`)
    .replace(/:focus(?![\w-])/g, `[${FOCUS}]`);
}

/**
 * The look of the element under the recorded pointer (`:hover`) and of the focused one
 * (`:focus`, `:focus-visible`, `:focus-within`) in the replay. The replay's own pointer is
 * the viewer user's, not the recorded user's, so the browser's pseudo-classes never match:
 * each rule that uses them is copied with them rewritten into attributes
 * ([`pseudoSelector`]), in a constructed sheet adopted last by the replay document, and the
 * attributes follow the recorded pointer (resolved once per animation frame) and focus. The
 * copies are rebuilt when the document's styles change, bounded in rules read and written.
 * Stylesheets inside shadow roots, and cross-origin ones the frame cannot read, are not copied.
 */
function pseudoStates(frame, nodes) {
  let sheet = null;
  let stale = true;
  let hovered = [];
  let focused = [];
  let point = null;
  let scheduled = false;

  function setChain(old, el, name, self) {
    for (const e of old) { try { e.removeAttribute(name); } catch (_) { /* gone */ } }
    const chain = [];
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      if (e !== el || self) { try { e.setAttribute(name, ''); } catch (_) { /* ignore */ } }
      chain.push(e);
    }
    return chain;
  }

  function collect(rules, out, budget) {
    for (const r of rules) {
      if (budget.read-- <= 0 || out.length >= MAX_PSEUDO_RULES) return;
      if (r.selectorText !== undefined && r.style) {
        const sel = pseudoSelector(r.selectorText);
        if (sel) out.push(`${sel}{${r.style.cssText}}`);
      } else if (r.cssRules && (r.media || r.conditionText !== undefined)) {
        const inner = [];
        collect(r.cssRules, inner, budget);
        if (inner.length) {
          const cond = r.media ? `@media ${r.media.mediaText}` : `@supports ${r.conditionText}`;
          out.push(`${cond}{${inner.join('')}}`);
        }
      }
    }
  }

  function rebuild() {
    stale = false;
    const doc = frame.contentDocument;
    const win = frame.contentWindow;
    if (!doc || !win || !win.CSSStyleSheet) return;
    const out = [];
    const budget = { read: MAX_RULES_READ };
    const own = (s) => s === sheet;
    let adopted = [];
    try { adopted = [...doc.adoptedStyleSheets].filter((s) => !own(s)); } catch (_) { /* old engine */ }
    for (const s of [...doc.styleSheets, ...adopted]) {
      let rules = null;
      try { rules = s.cssRules; } catch (_) { /* cross-origin: unreadable */ }
      if (rules) collect(rules, out, budget);
    }
    try {
      if (!sheet || !(sheet instanceof win.CSSStyleSheet)) {
        sheet = new win.CSSStyleSheet();
        // Marks the sheet as the viewer's, not the page's (the tests' DOM comparison skips it).
        sheet.replayPseudo = true;
      }
      sheet.replaceSync(out.join('\n'));
      doc.adoptedStyleSheets = [...adopted, sheet];
    } catch (_) { sheet = null; }
  }

  const isStyle = (el) => !!el && (el.localName === 'style' || el.localName === 'link');
  /** Whether `op` can change a stylesheet: most mutations only touch content. */
  function touchesStyles(op) {
    switch (op[0]) {
      case 'full': case 'css': return true;
      case 'text': { const t = nodes.get(op[1]); return !!t && isStyle(t.parentNode); }
      case 'rm': {
        const n = nodes.get(op[1]);
        if (!n || n.nodeType !== 1) return !!n && isStyle(n.parentNode);
        return isStyle(n) || !!n.querySelector('style,link');
      }
      // Added nodes: `[id, parent, kind, tag, ...]` (see `create`); text added into a style too.
      // The first node's parent is the operation's.
      case 'add': return Array.isArray(op[3]) && op[3].some((n, i) => n[3] === 'style' || n[3] === 'link'
        || (n[2] === 3 && isStyle(nodes.get(i === 0 ? op[1] : n[1]))));
      default: return false;
    }
  }

  function frameTick() {
    scheduled = false;
    if (stale) rebuild();
    if (point) {
      const doc = frame.contentDocument;
      let el = null;
      try { el = doc && doc.elementFromPoint(point[0], point[1]); } catch (_) { /* no layout */ }
      if (el !== hovered[0]) hovered = setChain(hovered, el, HOVER, true);
    }
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(frameTick);
  }

  return {
    /** Called before `op` (one of STYLE_OPS) is applied. */
    stylesChanged(op) {
      if (op[0] === 'full') { hovered = []; focused = []; }
      if (stale || !touchesStyles(op)) return;
      stale = true;
      schedule();
    },
    hover(x, y) { point = [x, y]; schedule(); },
    focus(id) {
      const el = id ? nodes.get(id) : null;
      for (const e of focused) { try { e.removeAttribute(FOCUS_WITHIN); } catch (_) { /* gone */ } }
      if (focused[0]) { try { focused[0].removeAttribute(FOCUS); } catch (_) { /* gone */ } }
      focused = el && el.nodeType === 1 ? setChain([], el, FOCUS_WITHIN, true) : [];
      if (focused[0]) focused[0].setAttribute(FOCUS, '');
    },
  };
}
