//! A minimal JSON writer for the operation lists handed to the player's JavaScript.
//!
//! Operation lists of big pages hold hundreds of thousands of nodes; writing them straight into
//! one string (parsed by `JSON.parse` in one call) is far cheaper than building JS objects
//! through the wasm boundary one by one.

use std::fmt::Write;

/// Appends `s` as a JSON string literal.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a number.
pub fn num(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_what_json_requires() {
        let mut s = String::new();
        super::string(&mut s, "a\"b\\c\n\u{1}\u{e9}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001\u{e9}\"");
    }
}
