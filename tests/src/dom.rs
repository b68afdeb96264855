//! Comparing documents: [`NORMALIZE_JS`] serializes a live document the way the server's
//! snapshot endpoint does, so the two compare as strings; [`first_difference`] says where two
//! such strings part; [`pixel_mismatch`] compares two screenshots.

use anyhow::{Result, bail};

/// Serializes the live document like `GET /snapshot`: doctype, then `outerHTML` of the root
/// element with `<script>` elements, `on*` handlers and recorded `srcdoc` removed, open shadow
/// roots as declarative templates, `<style>` elements whose sheet differs from their text
/// (CSSOM edits, `@import`) written as their sheet's rules, adopted sheets as
/// `<style data-replay-adopted>` last in the head or shadow root, and each same-origin frame's
/// document (normalized the same way) as its element's `srcdoc` (see `protocol/src/html.rs`).
/// What a replay adds for the recorded pointer and focus (`data-replay-hover` and the like, and
/// the sheet that uses them) is not the page's and is left out.
pub const NORMALIZE_JS: &str = r#"
function __replayNormalize(doc, depth) {
  depth = depth || 0;
  // What the recorder sends of a sheet (recorder/js/css.js `sheetText`): the rules' cssText,
  // one a line, same-origin imports inlined, URLs of linked and imported sheets absolute.
  const absolute = (text, base) => {
    if (!base || text.indexOf('url(') < 0) return text;
    return text.replace(/url\(\s*(["']?)([^"')]+)\1\s*\)/g, (m, q, u) => {
      if (/^(data|blob|https?):/i.test(u) || u.charCodeAt(0) === 35) return m;
      try { return 'url(' + q + new URL(u, base).href + q + ')'; } catch (_) { return m; }
    });
  };
  const sheetText = (sheet, d) => {
    let rules;
    try { rules = sheet.cssRules; } catch (_) { return null; }
    if (!rules) return null;
    const base = sheet.href || '';
    const out = [];
    for (const r of rules) {
      if (r.type === 3 && r.styleSheet && (d || 0) < 8) {
        const inner = sheetText(r.styleSheet, (d || 0) + 1);
        if (inner === null) out.push(absolute(r.cssText, base));
        else out.push(r.media && r.media.length ? '@media ' + r.media.mediaText + '{' + inner + '}' : inner);
      } else out.push(base ? absolute(r.cssText, base) : r.cssText);
    }
    return out.join('\n');
  };
  // A `<style>` whose sheet is not what its text parses to (CSSOM edits; an `@import`, which
  // the recorder inlines) is written as its sheet's text, like the snapshot writes it.
  const scratch = document.implementation.createHTMLDocument('');
  const sheetDiffers = (el) => {
    let rules;
    try { rules = el.sheet && el.sheet.cssRules; } catch (_) { return false; }
    if (!rules) return false;
    if (rules.length && rules[0].type === 3) return true;
    const fresh = scratch.createElement('style');
    fresh.textContent = el.textContent;
    scratch.head.appendChild(fresh);
    const again = fresh.sheet ? fresh.sheet.cssRules : [];
    let differs = again.length !== rules.length;
    for (let i = 0; !differs && i < rules.length; i++) differs = again[i].cssText !== rules[i].cssText;
    fresh.remove();
    return differs;
  };
  // Adopted sheets: one `<style data-replay-adopted>` each, last in the head or shadow root.
  const adopted = (root, into) => {
    for (const sheet of root.adoptedStyleSheets || []) {
      // The viewer's own sheet of `:hover`/`:focus` stand-ins (viewer/static/render.js).
      if (sheet.replayPseudo) continue;
      const s = doc.createElement('style');
      s.setAttribute('data-replay-adopted', '');
      s.textContent = sheetText(sheet) || '';
      into.appendChild(s);
    }
  };
  const frameDoc = (el) => {
    try { const d = el.contentDocument; return d && d.documentElement ? d : null; } catch (_) { return null; }
  };
  const clone = doc.documentElement.cloneNode(true);
  const frames = [];
  const live = [doc.documentElement];
  const copies = [clone];
  // Shadow roots, sheets and frame documents are not cloned: walk live and clone in parallel.
  while (live.length) {
    const l = live.pop(), c = copies.pop();
    if (l.shadowRoot) {
      const tpl = doc.createElement('template');
      tpl.setAttribute('shadowrootmode', 'open');
      for (const k of l.shadowRoot.childNodes) {
        const kc = k.cloneNode(true);
        tpl.content.appendChild(kc);
        // Shadow roots nested inside shadow content are written as templates too.
        if (k.nodeType === 1) { live.push(k); copies.push(kc); }
      }
      adopted(l.shadowRoot, tpl.content);
      c.insertBefore(tpl, c.firstChild);
    }
    if (l.localName === 'style' && sheetDiffers(l)) c.textContent = sheetText(l.sheet) || '';
    // A frame's document goes inline, as the `srcdoc` of its element (nested frames too).
    if (l.localName === 'iframe' && depth < 8) {
      const d = frameDoc(l);
      if (d) frames.push([c, __replayNormalize(d, depth + 1)]);
    }
    const lk = l.children, ck = c.children;
    const offset = l.shadowRoot ? 1 : 0;
    for (let i = 0; i < lk.length; i++) { live.push(lk[i]); copies.push(ck[i + offset]); }
  }
  if (doc.head) adopted(doc, clone.querySelector(':scope > head') || clone);
  for (const s of clone.querySelectorAll('script')) s.remove();
  // Event handlers are left out of the snapshot too (the sanitizer calls them hostile), and
  // so are the attributes a replay sets for the recorded pointer and focus (render.js).
  const pseudo = /^data-replay-(hover|focus|focus-within)$/;
  const strip = (root) => {
    for (const el of root.querySelectorAll('*')) {
      for (const a of [...el.attributes]) {
        if (a.name.startsWith('on') || a.name === 'srcdoc' || pseudo.test(a.name)) el.removeAttribute(a.name);
      }
      if (el.localName === 'template' && el.content) strip(el.content);
    }
  };
  strip(clone);
  for (const a of [...clone.attributes]) if (a.name.startsWith('on') || pseudo.test(a.name)) clone.removeAttribute(a.name);
  for (const [c, html] of frames) c.setAttribute('srcdoc', html);
  const dt = doc.doctype ? '<!DOCTYPE ' + doc.doctype.name + '>' : '';
  return dt + clone.outerHTML;
}
"#;

/// Shows where a replayed document first differs from the live one, with context around it.
pub fn first_difference(replay: &str, live: &str) -> String {
    let at = replay.bytes().zip(live.bytes()).position(|(x, y)| x != y).unwrap_or(replay.len().min(live.len()));
    let from = at.saturating_sub(120);
    let ctx = |s: &str| s.get(from..(at + 120).min(s.len())).unwrap_or("").to_owned();
    format!(
        "lengths {} and {}; first difference at byte {at}:\n    replay: …{}…\n    live:   …{}…",
        replay.len(),
        live.len(),
        ctx(replay),
        ctx(live)
    )
}

/// Share of pixels (percent) that differ between two PNG screenshots (a channel differing by
/// more than `tolerance`), compared over the area both cover.
pub fn pixel_mismatch(a: &[u8], b: &[u8], tolerance: u8) -> Result<f64> {
    fn decode(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>)> {
        let mut decoder = png::Decoder::new(bytes);
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info()?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf)?;
        let channels = info.color_type.samples();
        let mut rgb = Vec::with_capacity(info.width as usize * info.height as usize * 3);
        for px in buf[..info.buffer_size()].chunks_exact(channels) {
            match channels {
                1 | 2 => rgb.extend_from_slice(&[px[0], px[0], px[0]]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
        }
        Ok((info.width as usize, info.height as usize, rgb))
    }
    let (wa, ha, pa) = decode(a)?;
    let (wb, hb, pb) = decode(b)?;
    let (w, h) = (wa.min(wb), ha.min(hb));
    if w == 0 || h == 0 {
        bail!("empty screenshot");
    }
    let mut differing = 0usize;
    for y in 0..h {
        for x in 0..w {
            let ia = (y * wa + x) * 3;
            let ib = (y * wb + x) * 3;
            if (0..3).any(|c| pa[ia + c].abs_diff(pb[ib + c]) > tolerance) {
                differing += 1;
            }
        }
    }
    Ok(differing as f64 * 100.0 / (w * h) as f64)
}
