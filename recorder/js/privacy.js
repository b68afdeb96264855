// Privacy rules applied in the page, before anything reaches wasm or the network.
const SECRET_PARAM = /pass|token|secret|auth|session|sid|key|code|sig|jwt|credential|otp/i;

/** Replaces the values of query parameters whose names look secret. */
export function scrubUrl(u) {
  try {
    const url = new URL(u, location.href);
    let changed = false;
    url.searchParams.forEach((v, k) => {
      if (SECRET_PARAM.test(k)) { url.searchParams.set(k, 'REDACTED'); changed = true; }
    });
    return changed ? url.href : u;
  } catch (_) {
    return u;
  }
}

/** Same-length mask: the replay keeps the layout, not the content. */
export const mask = (v) => '*'.repeat(v.length);

function neverRecorded(el) {
  const type = (el.type || '').toLowerCase();
  const auto = (el.getAttribute && el.getAttribute('autocomplete')) || '';
  return type === 'password' || auto.indexOf('cc-') === 0;
}

/** The value of a form control as recorded: masked, or empty for passwords and card fields. */
export function maskedValue(el) {
  if (neverRecorded(el)) return '';
  return mask(String(el.value == null ? '' : el.value));
}

/** An attribute value as recorded. */
export function attrValue(el, tag, name, value) {
  if (name === 'value' && (tag === 'input' || tag === 'option' || tag === 'textarea')) {
    return neverRecorded(el) ? '' : mask(value);
  }
  if ((name === 'href' || name === 'src') && value.indexOf('?') >= 0) return scrubUrl(value);
  return value;
}
