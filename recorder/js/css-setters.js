// CSSOM changes that the wrapped methods in css.js do not see: declarations of a rule set as
// properties (`rule.style.cssText = …`, `rule.style.color = …`) and a rule's `selectorText`.
// Each setter is wrapped on the prototype: the page's own set runs first and keeps its
// result and exceptions, then css.js records the change (guarded there). Inline styles
// (`el.style.x = …`, no parent rule) are attribute changes the MutationObserver sees: for them
// the wrapper costs one property read.
//
// Chromium (156, checked) has no accessor per property on the prototype (`rule.style.color`
// is a named property of the object, which no wrapper reaches without a Proxy standing in for
// the page's declaration): there only `cssText` and `cssFloat` are recorded this way. Engines
// with `CSSStyleProperties` accessors (Firefox) get every property.

import { bare } from './state.js';

/** `fontSize` → `font-size`, `webkitTransform` → `-webkit-transform`, `cssFloat` → `float`. */
function cssName(prop) {
  if (prop === 'cssFloat') return 'float';
  if (prop.indexOf('-') >= 0) return prop;
  const name = prop.replace(/[A-Z]/g, (m) => '-' + m.toLowerCase());
  return /^(webkit|moz|ms)-/.test(name) ? '-' + name : name;
}

function wrapSetter(proto, prop, after) {
  const d = Object.getOwnPropertyDescriptor(proto, prop);
  if (!d || !d.set || !d.configurable) return;
  const set = d.set;
  try {
    Object.defineProperty(proto, prop, bare({
      configurable: true,
      enumerable: d.enumerable,
      get: d.get,
      set(v) {
        set.call(this, v);
        after(this, prop);
      },
    }));
  } catch (_) { /* frozen prototype: that setter is not recorded */ }
}

/**
 * Wraps the setters of a window's CSSOM once (css.js calls this from `patchCssom`).
 * @param {any} win
 * @param {{ declaration: (decl: CSSStyleDeclaration, name: string) => void, rule: (rule: CSSRule) => void }} record
 *   `declaration`: the declaration `name` (CSS spelling) of a rule's style changed;
 *   `rule`: a rule changed as a whole.
 */
export function patchCssomSetters(win, record) {
  // The property accessors live on `CSSStyleProperties` in engines that have it.
  for (const iface of ['CSSStyleDeclaration', 'CSSStyleProperties']) {
    const decl = win[iface] && win[iface].prototype;
    if (!decl) continue;
    for (const prop of Object.getOwnPropertyNames(decl)) {
      if (prop === 'cssText') {
        wrapSetter(decl, prop, (d) => { if (d.parentRule) record.rule(d.parentRule); });
      } else if (prop !== 'parentRule' && prop !== 'length') {
        const name = cssName(prop);
        wrapSetter(decl, prop, (d) => { if (d.parentRule) record.declaration(d, name); });
      }
    }
  }
  const styleRule = win.CSSStyleRule && win.CSSStyleRule.prototype;
  if (styleRule) wrapSetter(styleRule, 'selectorText', (rule) => record.rule(rule));
}
