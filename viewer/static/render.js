// The replay renderer: applies the engine's operations (viewer/src/ops.rs) to the sandboxed
// replay iframe through DOM APIs. Recorded strings are never parsed as HTML here; the engine
// has already sanitized nodes and attributes (viewer/src/sanitize.rs). Effects outside the
// replayed document (cursor, viewport, URL bar) are handed to the player through callbacks.

const NS = ['http://www.w3.org/1999/xhtml', 'http://www.w3.org/2000/svg', 'http://www.w3.org/1998/Math/MathML'];
const XLINK = 'http://www.w3.org/1999/xlink';
const XML = 'http://www.w3.org/XML/1998/namespace';

/**
 * A renderer bound to one iframe. `effects` receives `url(url)`, `viewport(w, h)`,
 * `pointer(x, y, clicked)`.
 */
export function createRenderer(frame, effects) {
  const nodes = new Map();

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
      if (n[2] === 5) {
        let root;
        try { root = parent.attachShadow({ mode: 'open' }); } catch (_) { root = doc.createDocumentFragment(); }
        nodes.set(id, root);
        continue;
      }
      const node = create(doc, n);
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
    effects.url(op[1]);
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
        case 'mouse': effects.pointer(op[1], op[2], false); break;
        case 'click': effects.pointer(op[1], op[2], true); break;
        case 'viewport': effects.viewport(op[1], op[2]); break;
        case 'meta': effects.url(op[1]); break;
        default: break;
      }
    }
  }

  return { apply, node: (id) => nodes.get(id) };
}
