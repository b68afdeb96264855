//! Fonts the page added through the `FontFace` API (`document.fonts.add(new FontFace(…))`,
//! [`crate::FontAdded`]): such a font has no markup, so the replay writes it as an
//! `@font-face` rule, the same text for the viewer (a `<style>` it adds to the replayed document)
//! and the snapshot API (a `<style data-replay-font>` at the end of the head).
//!
//! Everything in the rule comes from the recording, so nothing is copied as is: the family is
//! written as an escaped CSS string, a URL source resolves against the recorded page and is
//! dropped when script-capable, font bytes become a `data:font/…` URL (the type read from the
//! bytes' signature), and a descriptor is kept only when its value is made of the characters
//! such values use (no quote, brace, semicolon or backslash).

use crate::batch::FontAdded;
use crate::sanitize::{dangerous_url, resolve_url};

/// Most fonts the model keeps per page view (later ones are refused and counted).
pub const MAX_FONTS: usize = 64;
/// Longest descriptor value kept.
const MAX_DESCRIPTOR: usize = 200;

/// The `@font-face` rule of `font`, or `None` when it has no usable source.
pub fn font_face_css<S: AsRef<str>>(font: &FontAdded<S>, page_url: &str) -> Option<String> {
    let src = if !font.data.is_empty() {
        let mut s = format!("url(\"data:{};base64,", font_type(&font.data));
        base64(&font.data, &mut s);
        s.push_str("\")");
        s
    } else {
        let url = resolve_url(page_url, font.url.as_ref());
        if url.is_empty() || dangerous_url(&url) || url.len() > 8192 {
            return None;
        }
        let mut s = String::from("url(");
        css_string(&url, &mut s);
        s.push(')');
        s
    };
    let mut out = String::from("@font-face{font-family:");
    css_string(font.family.as_ref(), &mut out);
    out.push_str(";src:");
    out.push_str(&src);
    for (name, value) in [
        ("font-style", font.style.as_ref()),
        ("font-weight", font.weight.as_ref()),
        ("font-stretch", font.stretch.as_ref()),
        ("unicode-range", font.unicode_range.as_ref()),
        ("font-display", font.display.as_ref()),
    ] {
        if descriptor_ok(value) {
            out.push(';');
            out.push_str(name);
            out.push(':');
            out.push_str(value);
        }
    }
    out.push('}');
    Some(out)
}

fn descriptor_ok(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_DESCRIPTOR
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '+' | '-' | '.' | ',' | '%' | '?'))
}

/// A CSS string of `s` in double quotes: quotes, backslashes, `<` and control characters escaped.
fn css_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars().take(1000) {
        match c {
            '"' | '\\' | '<' | '>' => out.push_str(&format!("\\{:x} ", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\{:x} ", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The font type of `data` from its signature (TrueType when unknown).
fn font_type(data: &[u8]) -> &'static str {
    match data.get(..4) {
        Some(b"wOF2") => "font/woff2",
        Some(b"wOFF") => "font/woff",
        Some(b"OTTO") => "font/otf",
        Some(b"ttcf") => "font/collection",
        _ => "font/ttf",
    }
}

/// Appends `bytes` as standard base64 with padding (the viewer's JSON writer uses it too).
pub fn base64(bytes: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font(family: &str, url: &str, data: &[u8]) -> FontAdded {
        FontAdded {
            family: family.into(),
            url: url.into(),
            data: data.to_vec(),
            style: "italic".into(),
            weight: "800".into(),
            stretch: String::new(),
            unicode_range: "U+0000-00FF, U+0131".into(),
            display: "swap; } body { color: red".into(),
        }
    }

    #[test]
    fn a_font_from_bytes_is_a_data_url_and_a_font_from_a_url_resolves() {
        let css = font_face_css(&font("Fancy", "", b"wOF2ab"), "http://x/p/").expect("css");
        assert_eq!(
            css,
            "@font-face{font-family:\"Fancy\";src:url(\"data:font/woff2;base64,d09GMmFi\");font-style:italic;\
             font-weight:800;unicode-range:U+0000-00FF, U+0131}"
        );
        let css = font_face_css(&font("F", "f/a.woff2", b""), "http://x/p/").expect("css");
        assert!(css.contains("src:url(\"http://x/p/f/a.woff2\")"), "{css}");
    }

    #[test]
    fn hostile_fonts_cannot_break_out_of_the_rule() {
        let css = font_face_css(&font("a\"}</style><script>", "", b"x"), "http://x/").expect("css");
        assert!(css.starts_with("@font-face{font-family:\"a\\22 }\\3c /style\\3e \\3c script\\3e \";"), "{css}");
        assert!(!css.contains("color: red"), "a descriptor with a semicolon is dropped");
        assert!(font_face_css(&font("F", "javascript:alert(1)", b""), "http://x/").is_none());
        let css = font_face_css(&font("F", "a\") } body { color: red", b""), "http://x/").expect("css");
        assert!(css.contains("url(\"http://x/a\\22 ) } body { color: red\")"), "{css}");
    }
}
