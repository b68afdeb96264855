//! Comparing documents: [`NORMALIZE_JS`] serializes a live document the way the server's
//! snapshot endpoint does, so the two compare as strings; [`first_difference`] says where two
//! such strings part; [`pixel_mismatch`] compares two screenshots.

use anyhow::{Result, bail};

/// Serializes the live document like `GET /snapshot`: doctype, then `outerHTML` of the root
/// element with `<script>` elements and `on*` handlers removed and open shadow roots as
/// declarative templates.
pub const NORMALIZE_JS: &str = r#"
function __replayNormalize(doc) {
  const clone = doc.documentElement.cloneNode(true);
  const live = [doc.documentElement];
  const copies = [clone];
  // Shadow roots are not cloned: walk live and clone in parallel to write them as templates.
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
      c.insertBefore(tpl, c.firstChild);
    }
    const lk = l.children, ck = c.children;
    const offset = l.shadowRoot ? 1 : 0;
    for (let i = 0; i < lk.length; i++) { live.push(lk[i]); copies.push(ck[i + offset]); }
  }
  for (const s of clone.querySelectorAll('script')) s.remove();
  // Event handlers are left out of the snapshot too (the sanitizer calls them hostile).
  const strip = (root) => {
    for (const el of root.querySelectorAll('*')) {
      for (const a of [...el.attributes]) if (a.name.startsWith('on')) el.removeAttribute(a.name);
      if (el.localName === 'template' && el.content) strip(el.content);
    }
  };
  strip(clone);
  for (const a of [...clone.attributes]) if (a.name.startsWith('on')) clone.removeAttribute(a.name);
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
