// DOM capture: the walker that serialises subtrees into a tape, the full snapshot, and the
// mutation handler. Tape format: protocol/src/tape.rs.
import { S, now } from './state.js';
import { attrValue, mask } from './privacy.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const MATHML_NS = 'http://www.w3.org/1998/Math/MathML';
export const OBSERVE = { childList: true, subtree: true, attributes: true, characterData: true };

/** Serialises `root` and its subtree (document order, ids assigned on the way); returns the node count. */
export function walk(root, rootParent, ints, strs) {
  const ids = S.ids;
  const nodes = [root];
  const parents = [rootParent];
  let count = 0;
  while (nodes.length) {
    const node = nodes.pop();
    const pid = parents.pop();
    const id = S.nextId++;
    ids.set(node, id);
    count++;
    let kids = node;
    switch (node.nodeType) {
      case 1: {
        const tag = node.localName;
        const nsUri = node.namespaceURI;
        const ns = nsUri === SVG_NS ? 1 : nsUri === MATHML_NS ? 2 : 0;
        const attrs = node.attributes;
        const n = attrs.length;
        ints.push(2, id, pid, ns, tag.length, n);
        strs.push(tag);
        for (let i = 0; i < n; i++) {
          const a = attrs[i];
          const v = attrValue(node, tag, a.name, a.value);
          ints.push(a.name.length, v.length);
          strs.push(a.name, v);
        }
        if (tag === 'script') { kids = null; break; }
        if (tag === 'template' && node.content) kids = node.content;
        break;
      }
      case 3: {
        const p = node.parentNode;
        const v = p && p.localName === 'textarea' ? mask(node.data) : node.data;
        ints.push(3, id, pid, v.length);
        strs.push(v);
        kids = null;
        break;
      }
      case 8:
        ints.push(4, id, pid, node.data.length);
        strs.push(node.data);
        kids = null;
        break;
      case 9:
        ints.push(0, id, 0);
        break;
      case 10:
        ints.push(1, id, pid, node.name.length, node.publicId.length, node.systemId.length);
        strs.push(node.name, node.publicId, node.systemId);
        kids = null;
        break;
      case 11:
        ints.push(5, id, pid);
        if (S.observer) S.observer.observe(node, OBSERVE);
        break;
      default:
        // Processing instructions, CDATA: not rendered in HTML documents.
        ints.push(4, id, pid, 0);
        kids = null;
    }
    if (kids) {
      for (let c = kids.lastChild; c; c = c.previousSibling) {
        nodes.push(c);
        parents.push(id);
      }
      // The open shadow root goes on last so that it comes out first, before light children.
      if (node.nodeType === 1 && node.shadowRoot) {
        nodes.push(node.shadowRoot);
        parents.push(id);
      }
    }
  }
  return count;
}

/** Records the whole document at time `t`, then the live state of form controls. */
export function takeSnapshot(t, recordInput) {
  const ints = [0];
  const strs = [];
  ints[0] = walk(document, 0, ints, strs);
  S.rec.snapshot(t, new Uint32Array(ints), strs.join(''), Math.round(scrollX), Math.round(scrollY));
  const controls = document.querySelectorAll('input, textarea, select');
  for (let i = 0; i < controls.length; i++) {
    const el = controls[i];
    const type = (el.type || '').toLowerCase();
    if (type === 'checkbox' || type === 'radio') {
      if (el.checked !== el.defaultChecked) recordInput(el);
    } else if (el.value !== (el.defaultValue === undefined ? el.value : el.defaultValue)) {
      recordInput(el);
    }
  }
}

function parentOf(n) {
  return n.parentNode || (n.nodeType === 11 ? n.host : null);
}

/**
 * Turns one burst of MutationRecords into a mutation tape. Removals are read first (ids as
 * they were); added subtrees are serialised fresh, right to left within each parent so that
 * each one's next sibling already has its id; attribute and text changes read current values.
 */
export function onRecords(records) {
  if (!records.length || S.stopped) return;
  const ids = S.ids;
  const removes = [];
  const added = new Set();
  const attrs = new Map();
  const texts = new Set();
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
      let names = attrs.get(r.target);
      if (!names) attrs.set(r.target, names = new Map());
      names.set(r.attributeName, r.attributeNamespace);
    } else {
      texts.add(r.target);
    }
  }
  const ints = [removes.length];
  for (let i = 0; i < removes.length; i++) ints.push(removes[i]);
  const strs = [];
  // Subtree roots: connected, parent known, no ancestor added in this burst.
  const byParent = new Map();
  for (const n of added) {
    if (!n.isConnected) continue;
    const p = n.parentNode;
    if (!p || !ids.has(p) || p.localName === 'script') continue;
    let covered = added.has(p);
    for (let a = parentOf(p); a && !covered; a = parentOf(a)) covered = added.has(a);
    if (covered) continue;
    let list = byParent.get(p);
    if (!list) byParent.set(p, list = []);
    list.push(n);
  }
  const nAddsAt = ints.length;
  ints.push(0);
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
    for (let k = ordered.length - 1; k >= 0; k--) {
      const n = ordered[k];
      let s = n.nextSibling;
      while (s && !ids.has(s)) s = s.nextSibling;
      ints.push(pid, s ? ids.get(s) : 0, 0);
      const at = ints.length - 1;
      ints[at] = walk(n, pid, ints, strs);
      nAdds++;
    }
  }
  ints[nAddsAt] = nAdds;
  const nAttrsAt = ints.length;
  ints.push(0);
  let nAttrs = 0;
  for (const [el, names] of attrs) {
    const id = ids.get(el);
    if (id === undefined || !el.isConnected) continue;
    const tag = el.localName;
    for (const [name, ns] of names) {
      const node = ns ? el.getAttributeNodeNS(ns, name) : el.getAttributeNode(name);
      const qname = node ? node.name : name;
      const value = node ? attrValue(el, tag, qname, node.value) : '';
      ints.push(id, node ? 1 : 0, qname.length, value.length);
      strs.push(qname, value);
      nAttrs++;
    }
  }
  ints[nAttrsAt] = nAttrs;
  const nTextsAt = ints.length;
  ints.push(0);
  let nTexts = 0;
  for (const t of texts) {
    const id = ids.get(t);
    if (id === undefined || !t.isConnected) continue;
    const p = t.parentNode;
    const v = p && p.localName === 'textarea' ? mask(t.data) : t.data;
    ints.push(id, v.length);
    strs.push(v);
    nTexts++;
  }
  ints[nTextsAt] = nTexts;
  if (removes.length + nAdds + nAttrs + nTexts === 0) return;
  S.rec.mutation(now(), new Uint32Array(ints), strs.join(''));
}
