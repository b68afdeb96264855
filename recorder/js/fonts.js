// Fonts added through the FontFace API (`document.fonts.add(new FontFace(family, source,
// descriptors))`): they have no markup, so the recorder keeps what each FontFace was made from
// (the constructor is wrapped) and records a face when the page adds it to its document's
// fonts: its family, its source (a URL, scrubbed, or the font file's bytes, at most
// MAX_FONT_BYTES) and its descriptors. Faces made before the recorder loaded, or too big, are
// not recorded (the latter noted).
import { S, now, guard, likeOriginal } from './state.js';
import { scrubUrl } from './privacy.js';

/** Largest font file recorded, and most faces recorded per page view. */
const MAX_FONT_BYTES = 1 << 20;
const MAX_FONTS = 64;
const NOTE_DROPPED = 1;
/** FontFace → the source it was made from. */
const sources = new WeakMap();
const recorded = new WeakSet();
/** Faces added before recording started (bounded), recorded once it has. */
let early = [];
let count = 0;

/** Wraps `win`'s FontFace constructor and `document.fonts.add` (once per window). */
export function patchFonts(win) {
  const F = win.FontFace;
  const set = win.document && win.document.fonts;
  if (typeof F !== 'function' || !set || typeof set.add !== 'function' || F.__replayFonts) return;
  const wrapped = new Proxy(F, {
    construct(target, args, newTarget) {
      const face = Reflect.construct(target, args, newTarget === wrapped ? target : newTarget);
      try { sources.set(face, args[1]); } catch (_) { /* not an object */ }
      return face;
    },
    get(target, key) {
      return key === '__replayFonts' ? true : Reflect.get(target, key);
    },
  });
  try { win.FontFace = wrapped; } catch (_) { return; }
  const add = set.add;
  const doc = win.document;
  set.add = function (face) {
    const r = add.apply(this, arguments);
    if (this === doc.fonts) {
      if (S.stopped && early.length < MAX_FONTS && doc === document) early.push(face);
      else guard(recordFont)(face, doc);
    }
    return r;
  };
  likeOriginal(set.add, add);
}

/** Records the faces added before recording started that are still in use. */
export function recordEarlyFonts() {
  const faces = early;
  early = [];
  for (const f of faces) if (document.fonts.has(f)) recordFont(f, document);
}

/** Records `face` (added to `doc.fonts`) if the recorder knows its source. */
function recordFont(face, doc) {
  if (S.stopped || !S.rec || recorded.has(face) || !sources.has(face) || doc !== document) return;
  recorded.add(face);
  const src = sources.get(face);
  let url = '';
  let bytes = new Uint8Array(0);
  if (typeof src === 'string') {
    const m = /url\(\s*(['"]?)(.*?)\1\s*\)/.exec(src);
    if (!m) return;
    try { url = scrubUrl(new URL(m[2], document.baseURI).href); } catch (_) { return; }
  } else if (src instanceof ArrayBuffer || ArrayBuffer.isView(src)) {
    const view = src instanceof ArrayBuffer ? new Uint8Array(src) : new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    if (view.length > MAX_FONT_BYTES) {
      S.rec.note(now(), NOTE_DROPPED, 0, 1, 'a font of ' + view.length + ' bytes added through FontFace was not recorded');
      return;
    }
    bytes = view.slice();
  } else return;
  if (++count > MAX_FONTS) return;
  const d = (v) => String(v || '').slice(0, 200);
  S.rec.font(now(), d(face.family).replace(/^["']|["']$/g, ''), url, bytes, d(face.style), d(face.weight), d(face.stretch),
    d(face.unicodeRange), d(face.display));
}
