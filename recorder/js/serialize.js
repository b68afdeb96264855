// Bounded serialisation of arbitrary page values (console arguments, rejection reasons): depth,
// length and count are capped, cycles are cut, getters are never invoked, nothing throws.
const MAX_DEPTH = 3;
const MAX_KEYS = 20;
const MAX_ITEMS = 50;
export const MAX_STRING = 1000;

const cut = (s, max) => (s.length > max ? s.slice(0, max) + '…' : s);

function describeNode(n) {
  if (n.nodeType === 1) {
    let s = '<' + n.localName;
    if (n.id) s += '#' + n.id;
    return s + '>';
  }
  return n.nodeName;
}

function inner(v, depth, seen) {
  switch (typeof v) {
    case 'string': return JSON.stringify(cut(v, MAX_STRING));
    case 'number': case 'boolean': case 'undefined': return String(v);
    case 'bigint': return v + 'n';
    case 'symbol': return v.toString();
    case 'function': return 'ƒ ' + (v.name || 'anonymous') + '()';
    default: break;
  }
  if (v === null) return 'null';
  // A Vue reactive object is a Proxy that tracks what is read of it as a dependency of the
  // effect running (a component's render logging its state): its raw object is read instead
  // (Vue answers `__v_raw` without tracking it).
  const raw = v.__v_raw;
  if (raw !== null && typeof raw === 'object' && raw !== v) v = raw;
  if (seen.has(v)) return '[circular]';
  if (v instanceof Error) return cut((v.name || 'Error') + ': ' + v.message, MAX_STRING);
  if (typeof Node !== 'undefined' && v instanceof Node) return describeNode(v);
  if (depth >= MAX_DEPTH) return Array.isArray(v) ? '[…]' : '{…}';
  seen.add(v);
  let out;
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    // A DataView has no length: it shows as `[]`.
    const list = /** @type {ArrayLike<unknown>} */ (v);
    const items = [];
    const n = Math.min(list.length, MAX_ITEMS);
    for (let i = 0; i < n; i++) items.push(inner(list[i], depth + 1, seen));
    if (list.length > n) items.push('… ' + (list.length - n) + ' more');
    out = '[' + items.join(', ') + ']';
  } else if (v instanceof Map || v instanceof Set) {
    out = (v instanceof Map ? 'Map' : 'Set') + '(' + v.size + ')';
  } else {
    const parts = [];
    let n = 0;
    for (const k in v) {
      if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
      if (n++ >= MAX_KEYS) { parts.push('…'); break; }
      const d = Object.getOwnPropertyDescriptor(v, k);
      parts.push(k + ': ' + (d && 'value' in d ? inner(d.value, depth + 1, seen) : '[getter]'));
    }
    const name = v.constructor && v.constructor !== Object && typeof v.constructor.name === 'string' ? v.constructor.name + ' ' : '';
    out = name + '{' + parts.join(', ') + '}';
  }
  seen.delete(v);
  return cut(out, MAX_STRING);
}

/** One value as bounded text; strings at the top level are kept as they are (bounded). */
export function serialize(v) {
  try {
    return typeof v === 'string' ? cut(v, MAX_STRING) : inner(v, 0, new Set());
  } catch (_) {
    return '[unserialisable]';
  }
}
