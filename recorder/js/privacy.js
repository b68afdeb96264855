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
// A document in `designMode` is typed by the user too: its text is masked. `<meta>` content
// named like a secret (csrf-token, …) is masked. Values typed into masked fields are handed to
// wasm (`remember`), which masks their echoes anywhere in the page and detects PII before
// anything is encoded (recorder/src/privacy.rs).
import { S } from './state.js';

const SECRET_PARAM = /pass|token|secret|auth|session|sid|key|code|sig|jwt|credential|otp/i;
/** `<meta name|property|http-equiv>` whose content is a secret. */
const SECRET_META = /csrf|xsrf|token|secret|nonce|session|password|signature|api[-_]?key|(^|[-_:.])auth($|[-_:.])/i;
/** Cheap first look: could this URL hold an address or a token outside its query? */
const SUSPECT = /@|%40|eyJ|[A-Za-z0-9]{20}/;
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;
const JWT = /eyJ[\w-]{4,}\.[\w-]{4,}/;
const RUN = /[A-Za-z0-9]{20,}/g;

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
  // A mask selector may match an element after any change of its attributes (a class added
  // later): the DOM passes must look for masked contexts from the start, not only once a
  // `data-replay-*` or contenteditable attribute was seen.
  if (mask) S.maskCtx = true;
}

/**
 * True for a path segment or parameter value that looks like an e-mail address or a token: a
 * JWT, a run of 32+ letters and digits, or of 20+ mixing digits, capitals and small letters.
 * Ids that are shorter or single-case (UUIDs, 24-digit hex object ids, content hashes) stay.
 */
export function secretValue(v) {
  if (v.length < 6) return false;
  let d = v;
  if (d.indexOf('%') >= 0) {
    try { d = decodeURIComponent(d); } catch (_) { /* keep as is */ }
  }
  if (d.indexOf('@') >= 0 && EMAIL.test(d)) return true;
  if (JWT.test(d)) return true;
  const runs = d.match(RUN);
  if (!runs) return false;
  for (const r of runs) {
    if (r.length >= 32) return true;
    if (/\d/.test(r) && /[a-z]/.test(r) && /[A-Z]/.test(r)) return true;
  }
  return false;
}

function scrubParams(params, values) {
  let changed = false;
  params.forEach((v, k) => {
    if (SECRET_PARAM.test(k) || (values && secretValue(v))) { params.set(k, 'REDACTED'); changed = true; }
  });
  return changed;
}

/** `/a/TOKEN/b` → `/a/REDACTED/b`; returns null when nothing changed. */
function scrubPath(path) {
  const parts = path.split('/');
  let changed = false;
  for (let i = 0; i < parts.length; i++) {
    if (secretValue(parts[i])) { parts[i] = 'REDACTED'; changed = true; }
  }
  return changed ? parts.join('/') : null;
}

/**
 * Replaces the values of query (and fragment) parameters whose names look secret. With `paths`
 * (the default: page, link and request URLs), path segments and parameter values that look like
 * e-mail addresses or tokens are replaced too; resource URLs (images, style sheets, scripts) keep
 * their paths, where content hashes live, so that the replay can still load them.
 */
export function scrubUrl(u, paths) {
  const full = paths !== false;
  if (u.indexOf('?') < 0 && u.indexOf('#') < 0 && u.indexOf('@') < 0 && !(full && SUSPECT.test(u))) return u;
  if (u.charCodeAt(0) === 100 && u.startsWith('data:')) return u;
  try {
    const url = new URL(u, location.href);
    let changed = scrubParams(url.searchParams, full);
    // Credentials in the URL (`https://user:password@host/`): never kept, not even for a resource.
    if (url.username || url.password) {
      url.username = '';
      url.password = '';
      changed = true;
    }
    if (full && (url.protocol === 'http:' || url.protocol === 'https:')) {
      const p = scrubPath(url.pathname);
      if (p !== null) { url.pathname = p; changed = true; }
    }
    // OAuth implicit flows put tokens in the fragment: `#access_token=…&state=…`.
    if (url.hash.indexOf('=') > 0) {
      const frag = new URLSearchParams(url.hash.slice(1));
      if (scrubParams(frag, full)) { url.hash = frag.toString(); changed = true; }
    } else if (full && url.hash.length > 1) {
      // Hash routes: `#/reset/TOKEN`.
      const h = scrubPath(url.hash.slice(1));
      if (h !== null) { url.hash = h; changed = true; }
    }
    return changed ? url.href : u;
  } catch (_) {
    return u;
  }
}

/** An absolute URL in a stack trace or a message, up to white space, a bracket or a quote. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s()<>"'`]+/gi;
/** A stack frame's `:line:column` (or `:line`) after its script's URL. */
const POSITION = /(:\d+){1,2}$/;

/**
 * The URLs in a stack trace or an error message scrubbed like the page's URL (`scrubUrl`), each
 * frame's `:line:column` kept: a script loaded as `app.js?token=…`, or the page's own inline
 * script at `/reset/TOKEN`, names its URL in every frame.
 */
export function scrubUrlsIn(text) {
  if (text.indexOf('://') < 0) return text;
  return text.replace(URL_IN_TEXT, (u) => {
    const at = POSITION.exec(u);
    return at ? scrubUrl(u.slice(0, at.index)) + at[0] : scrubUrl(u);
  });
}

/** Same-length mask: the replay keeps the layout, not the content. */
export const mask = (v) => '*'.repeat(v.length);

/** Masks text but keeps white space, so the replay wraps lines like the page. */
export const maskText = (v) => v.replace(/\S/g, '*');

/** Password and card fields: never recorded, not even their length. */
export function neverRecorded(el) {
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
    // Out of a shadow root to its host, out of a template's content to the template.
    el = root && (root.host || S.templates.get(root));
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

/**
 * Attributes whose value is text the page shows or reads out: masked where the element's text
 * is (a masked element's `title` or `aria-label` says what its text says).
 */
export const TEXT_ATTRS = {
  title: 1, alt: 1, placeholder: 1, label: 1, 'aria-label': 1, 'aria-description': 1, 'aria-valuetext': 1,
  'aria-roledescription': 1, 'aria-placeholder': 1,
};

/** URL attributes: 1 where the replay loads the URL (its path is kept), 2 where it only names a page. */
const URL_ATTRS = { href: 1, src: 1, action: 2, formaction: 2, poster: 1, data: 1, ping: 2, cite: 2, 'xlink:href': 1 };

/** An attribute value as recorded. */
export function attrValue(el, tag, name, value) {
  if (name === 'value' && (tag === 'input' || tag === 'option' || tag === 'textarea')) {
    if (neverRecorded(el)) return '';
    return value && unmasked(el) ? value : mask(value);
  }
  const url = URL_ATTRS[name];
  if (url !== undefined) {
    // Links and forms name pages: their paths are scrubbed too; other URLs are resources.
    const page = url === 2 || tag === 'a' || tag === 'area';
    return page || value.indexOf('?') >= 0 || value.indexOf('#') >= 0 ? scrubUrl(value, page) : value;
  }
  if ((name === 'srcset' || name === 'imagesrcset') && value.indexOf('?') >= 0) {
    return value.split(',').map((c) => {
      const t = c.trim();
      const sp = t.search(/\s/);
      return sp < 0 ? scrubUrl(t, false) : scrubUrl(t.slice(0, sp), false) + t.slice(sp);
    }).join(', ');
  }
  if (tag === 'meta' && name === 'content' && value) {
    const key = el.getAttribute('name') || el.getAttribute('property') || el.getAttribute('http-equiv') || '';
    if (SECRET_META.test(key)) return mask(value);
  }
  return value;
}

/** True when the element's document is in `designMode` (every text of it is typed). */
export function designOn(el) {
  const d = el && el.ownerDocument;
  return !!d && d.designMode === 'on';
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
    return P.maskAllText || designOn(el) || !!closestAcross(el, P.maskText);
  } catch (_) {
    // (A page's patched `closest`, or a form whose `<input name="closest">` hides it.)
    return true;
  }
}

// ---- typed values, for echo masking in wasm ----

const NOT_TYPED = { checkbox: 1, radio: 1, button: 1, submit: 1, reset: 1, file: 1, hidden: 1, image: 1, range: 1, color: 1, search: 1 };
const SEARCH_NAME = /search|query|filter|^q$/i;

/**
 * Search and filter boxes: their words come back in the results (every product named "Lamp"),
 * which echo masking would wipe out; they are not remembered (PII detection still applies).
 */
function searchField(el) {
  if (el.getAttribute('role') === 'searchbox' || el.getAttribute('enterkeyhint') === 'search') return true;
  if (SEARCH_NAME.test(el.name || '') || SEARCH_NAME.test(el.id || '')) return true;
  return !!closestAcross(el, '[role="search"]');
}
const fields = new WeakMap();
let nextField = 1;
const lastTyped = new WeakMap();

/**
 * Hands the value of a masked text field (or the text of a masked contenteditable) to wasm,
 * which keeps it in memory (bounded, never sent) and masks it wherever the page shows it again.
 * Explicitly unmasked fields and search boxes are skipped. `open`: `unmasked(el)` when the caller
 * already asked.
 * @param {any} el
 * @param {boolean} [open]
 */
export function rememberTyped(el, open) {
  if (!S.rec || !el) return;
  const tag = el.localName;
  // A contenteditable editing host: its text is what the user typed (when masked).
  const editable = tag !== 'input' && tag !== 'textarea';
  if (editable && !el.isContentEditable) return;
  if (tag === 'input' && NOT_TYPED[(el.type || '').toLowerCase()] === 1) return;
  const v = String((editable ? el.textContent : el.value) || '');
  if (v.length < 3 || v.length > 1000 || lastTyped.get(el) === v) return;
  lastTyped.set(el, v);
  if (editable ? !textMasked(el) : (open === undefined ? unmasked(el) : open) || searchField(el)) return;
  let id = fields.get(el);
  if (id === undefined) fields.set(el, id = nextField++);
  S.rec.remember(id, v);
}

/** The focused field's value, before a burst of mutations is serialised (a page may echo it first). */
export function rememberActive() {
  let a = document.activeElement;
  for (let guard = 0; a && a.shadowRoot && a.shadowRoot.activeElement && guard < 100; guard++) a = a.shadowRoot.activeElement;
  if (a && (a.localName === 'input' || a.localName === 'textarea' || /** @type {HTMLElement} */ (a).isContentEditable)) rememberTyped(a);
}
