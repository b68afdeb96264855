//! A minimal JSON writer for the operation lists handed to the player's JavaScript.
//!
//! Operation lists of big pages hold hundreds of thousands of nodes; writing them straight into
//! one string (parsed by `JSON.parse` in one call) is far cheaper than building JS objects
//! through the wasm boundary one by one.

use std::fmt::Write;

/// Appends `s` as a JSON string literal.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{2028}' => "\\u2028",
            '\u{2029}' => "\\u2029",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        plain = i + c.len_utf8();
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// Appends a number.
pub fn num(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

/// Appends `bytes` as a JSON string of their standard base64 (with padding).
pub fn base64(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len().div_ceil(3) * 4 + 2);
    out.push('"');
    replay_protocol::fonts::base64(bytes, out);
    out.push('"');
}

/// Appends a float; non-finite values (which JSON cannot hold) are written as 0.
pub fn float(out: &mut String, n: f64) {
    if n.is_finite() { num(out, n) } else { out.push('0') }
}

/// Writes one JSON object field by field: `{"a":1,"b":"x"}`.
pub struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Opens the object.
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    /// Writes the key and returns the buffer for the value.
    pub fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, key);
        self.out.push(':');
        self.out
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        string(self.key(key), value);
        self
    }

    /// A number field.
    pub fn num(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        num(self.key(key), value);
        self
    }

    /// A float field.
    pub fn float(&mut self, key: &str, value: f64) -> &mut Self {
        float(self.key(key), value);
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    /// Closes the object.
    pub fn end(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_what_json_requires() {
        let mut s = String::new();
        super::string(&mut s, "a\"b\\c\n\u{1}\u{e9}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001\u{e9}\"");
    }

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        for (bytes, want) in [(&b""[..], ""), (b"f", "Zg=="), (b"fo", "Zm8="), (b"foo", "Zm9v"), (b"\xfb\xff", "+/8=")]
        {
            let mut s = String::new();
            super::base64(&mut s, bytes);
            assert_eq!(s, format!("\"{want}\""));
        }
    }
}
