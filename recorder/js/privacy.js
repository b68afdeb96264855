// Privacy rules applied in the page, before anything reaches wasm or the network.
//
// Defaults are safe: every form value is masked (same-length `*`), passwords and `cc-*` fields
// are never read, contenteditable text is masked, secret-looking URL parameters are replaced.
// Loosening and tightening are explicit, by option (`init()` or `data-` attributes on the script
// tag) and per element:
// - `maskAllText` / `data-mask-all-text`: every text node is masked;
// - `mask` selector / `data-replay-mask`: text and values of the subtree are masked;
// - `block` selector / `data-replay-block`: the element becomes a same-size placeholder and
//   its subtree is never read;
// - `ignore` selector / `data-replay-ignore`: the control's input is not recorded at all;
// - `unmask` selector / `data-replay-unmask`: values and text of the subtree are recorded as
//   typed (never for passwords and card fields).
const SECRET_PARAM = /pass|token|secret|auth|session|sid|key|code|sig|jwt|credential|otp/i;

/** The active rules (see `configurePrivacy`). */
export const P = {
  maskAllText: false,
  /** Selector lists, each already joined with the matching `data-replay-*` attribute. */
  mask: '[data-replay-mask]',
  block: '[data-replay-block]',
  ignore: '[data-replay-ignore]',
  unmask: '[data-replay-unmask]',
  /** Masked context: where text is masked (contenteditable is typed by the user). */
  maskText: '[data-replay-mask],[contenteditable]:not([contenteditable="false"])',
  /** True when a selector beyond the data attributes was configured (walker must `matches`). */
  custom: false,
  blockCustom: '',
  maskCustom: '',
};

function validSelector(sel) {
  if (typeof sel !== 'string' || !sel.trim()) return '';
  try {
    document.createDocumentFragment().querySelector(sel);
    return sel;
  } catch (_) {
    return '';
  }
}

const truthy = (v) => v === true || v === '' || v === 'true' || v === '1';

/** Applies options (`init()` or script-tag attributes, already merged into `cfg`). */
export function configurePrivacy(cfg) {
  const opt = (camel, dashed) => (cfg[camel] !== undefined ? cfg[camel] : cfg[dashed]);
  P.maskAllText = truthy(opt('maskAllText', 'mask-all-text'));
  const join = (attr, sel) => (sel ? attr + ',' + sel : attr);
  const mask = validSelector(opt('mask', 'mask'));
  const block = validSelector(opt('block', 'block'));
  P.mask = join('[data-replay-mask]', mask);
  P.block = join('[data-replay-block]', block);
  P.ignore = join('[data-replay-ignore]', validSelector(opt('ignore', 'ignore')));
  P.unmask = join('[data-replay-unmask]', validSelector(opt('unmask', 'unmask')));
  P.maskText = P.mask + ',[contenteditable]:not([contenteditable="false"])';
  P.blockCustom = block;
  P.maskCustom = mask;
  P.custom = !!(block || mask);
}

function scrubParams(params) {
  let changed = false;
  params.forEach((v, k) => {
    if (SECRET_PARAM.test(k)) { params.set(k, 'REDACTED'); changed = true; }
  });
  return changed;
}

/** Replaces the values of query (and fragment) parameters whose names look secret. */
export function scrubUrl(u) {
  if (u.indexOf('?') < 0 && u.indexOf('#') < 0) return u;
  try {
    const url = new URL(u, location.href);
    let changed = scrubParams(url.searchParams);
    // OAuth implicit flows put tokens in the fragment: `#access_token=…&state=…`.
    if (url.hash.indexOf('=') > 0) {
      const frag = new URLSearchParams(url.hash.slice(1));
      if (scrubParams(frag)) { url.hash = frag.toString(); changed = true; }
    }
    return changed ? url.href : u;
  } catch (_) {
    return u;
  }
}

/** Same-length mask: the replay keeps the layout, not the content. */
export const mask = (v) => '*'.repeat(v.length);

/** Masks text but keeps white space, so the replay wraps lines like the page. */
export const maskText = (v) => v.replace(/\S/g, '*');

function neverRecorded(el) {
  const type = (el.type || '').toLowerCase();
  const auto = (el.getAttribute && el.getAttribute('autocomplete')) || '';
  return type === 'password' || auto.trim().toLowerCase().indexOf('cc-') === 0;
}

/** `closest` that continues from a shadow root to its host (rules apply to shadow content). */
export function closestAcross(el, sel) {
  for (let guard = 0; el && guard < 1000; guard++) {
    const hit = el.closest(sel);
    if (hit) return hit;
    const root = el.getRootNode();
    el = root && root.host;
  }
  return null;
}

/** True when the control's values may be recorded as typed (an explicit `unmask`). */
export function unmasked(el) {
  if (neverRecorded(el)) return false;
  try {
    return !!closestAcross(el, P.unmask) && !closestAcross(el, P.mask);
  } catch (_) {
    return false;
  }
}

/** True when the control's input must not be recorded at all. */
export function ignored(el) {
  try {
    return !!closestAcross(el, P.ignore);
  } catch (_) {
    return false;
  }
}

/** The value of a form control as recorded: masked, or empty for passwords and card fields. */
export function maskedValue(el) {
  if (neverRecorded(el)) return '';
  const v = String(el.value == null ? '' : el.value);
  return unmasked(el) ? v : mask(v);
}

const URL_ATTRS = { href: 1, src: 1, action: 1, formaction: 1, poster: 1, data: 1, ping: 1, cite: 1, 'xlink:href': 1 };

/** An attribute value as recorded. */
export function attrValue(el, tag, name, value) {
  if (name === 'value' && (tag === 'input' || tag === 'option' || tag === 'textarea')) {
    if (neverRecorded(el)) return '';
    return value && unmasked(el) ? value : mask(value);
  }
  if (URL_ATTRS[name] === 1) return value.indexOf('?') >= 0 || value.indexOf('#') >= 0 ? scrubUrl(value) : value;
  if ((name === 'srcset' || name === 'imagesrcset') && value.indexOf('?') >= 0) {
    return value.split(',').map((c) => {
      const t = c.trim();
      const sp = t.search(/\s/);
      return sp < 0 ? scrubUrl(t) : scrubUrl(t.slice(0, sp)) + t.slice(sp);
    }).join(', ');
  }
  return value;
}

/**
 * Text context of the element `el` for text added or changed under it: 1 when its text must
 * be masked. Cached per element for one burst by the caller.
 */
export function textMasked(el) {
  if (!el || !el.closest) return P.maskAllText;
  if (el.localName === 'style') return false;
  try {
    if (el.localName === 'textarea') return !unmasked(el);
    if (closestAcross(el, P.unmask) && !closestAcross(el, P.mask)) return false;
    return P.maskAllText || !!closestAcross(el, P.maskText);
  } catch (_) {
    return P.maskAllText;
  }
}
