//! The recorder's last privacy pass, in the page, before anything is encoded: echo masking, PII
//! detection and the redaction of secret-named fields in captured request and response bodies.
//!
//! The JavaScript side masks what it knows is private by where it is (form values, masked and
//! blocked subtrees, secret-looking URLs). What it cannot know by place is private data that
//! shows up as ordinary text; every text, comment and attribute value of a snapshot or mutation,
//! the page title, console and error text and network details pass through [`Privacy::clean`]:
//!
//! - **Echoes**: the values the user typed into masked fields are handed over by the walker
//!   ([`Privacy::remember`]) and kept here only, never encoded: at most [`MAX_NEEDLES`] values of
//!   [`MIN_NEEDLE`]..=[`MAX_NEEDLE`] characters, the newest kept, trimmed and case-folded. Any
//!   text that later contains one (a page showing "Ship to Ada Lovelace") has it masked.
//! - **PII** (on by default, [`Privacy::set_pii`]): e-mail addresses, card numbers (13–19 digits,
//!   optionally grouped by spaces or dashes, a card network's first digit 2–6, Luhn-valid), phone
//!   numbers (`+` and 8–15 digits; North American `(555) 123-4567` forms; national numbers with a
//!   trunk `0` and 9–11 digits) and IBANs (capitals, mod-97 valid).
//!
//! Masking keeps the length in characters and the white space: each masked character becomes
//! `*`. Detection is deliberately conservative (prices, years, dates, times, ids and hashes stay):
//! a match must stand on its own (no letter or digit glued to either side).
//!
//! Cost: a string with no ASCII digit and no `@` is skipped after one pass over its bytes when no
//! typed value is remembered; echo matching is one substring search per remembered value.

use replay_protocol::{Attr, Mutation, Node, NodeKind};

/// Most typed values remembered.
pub const MAX_NEEDLES: usize = 64;
/// Shortest typed value remembered (characters, after trimming).
pub const MIN_NEEDLE: usize = 3;
/// Longest typed value remembered (characters, after trimming).
pub const MAX_NEEDLE: usize = 256;
/// What a redacted body field or header value becomes.
pub const REDACTED: &str = "[REDACTED]";

/// One remembered typed value: the field it came from (the recorder's node id) and its folded text.
struct Needle {
    field: u32,
    text: String,
}

/// Echo masking and PII detection for one page view.
pub struct Privacy {
    pii: bool,
    /// Oldest first; never more than [`MAX_NEEDLES`].
    needles: Vec<Needle>,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy { pii: true, needles: Vec::new() }
    }
}

/// Case folding that keeps one character for one character (so positions map back): ASCII,
/// Latin-1, Latin Extended-A, Greek and Cyrillic capitals. Hand-written: the standard library's
/// Unicode tables would add tens of kilobytes to the recorder's download.
fn fold_char(c: char) -> char {
    let u = c as u32;
    let lower = match u {
        0x41..=0x5A | 0xC0..=0xD6 | 0xD8..=0xDE | 0x391..=0x3A1 | 0x3A3..=0x3AB | 0x410..=0x42F => u + 32,
        0x100..=0x137 | 0x14A..=0x177 if u.is_multiple_of(2) => u + 1,
        0x139..=0x148 | 0x179..=0x17E if u % 2 == 1 => u + 1,
        0x400..=0x40F => u + 80,
        0xA0 => 0x20, // a no-break space (contenteditable) matches a space
        _ => u,
    };
    char::from_u32(lower).unwrap_or(c)
}

fn fold(s: &str) -> String {
    s.chars().map(fold_char).collect()
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

impl Privacy {
    /// Turns PII detection on or off (echo masking always applies).
    pub fn set_pii(&mut self, on: bool) {
        self.pii = on;
    }

    /// Remembers `value`, typed into masked field `field`. A value that extends or shortens the
    /// field's previous one replaces it (typing, deleting); any other value is kept beside it.
    pub fn remember(&mut self, field: u32, value: &str) {
        let value = value.trim();
        let n = value.chars().count();
        if !(MIN_NEEDLE..=MAX_NEEDLE).contains(&n) {
            return;
        }
        let text = fold(value);
        if let Some(i) = self.needles.iter().position(|x| x.text == text) {
            let mut same = self.needles.remove(i);
            same.field = field;
            self.needles.push(same);
            return;
        }
        if let Some(i) = self
            .needles
            .iter()
            .rposition(|x| x.field == field && (text.starts_with(&x.text) || x.text.starts_with(&text)))
        {
            self.needles.remove(i);
        }
        if self.needles.len() >= MAX_NEEDLES {
            self.needles.remove(0);
        }
        self.needles.push(Needle { field, text });
    }

    /// Writes the settings and the remembered typed values (see [`crate::renew`]).
    pub fn save(&self, w: &mut crate::renew::Writer) {
        w.bool(self.pii);
        w.u32(u32::try_from(self.needles.len()).unwrap_or(0));
        for n in &self.needles {
            w.u32(n.field);
            w.bytes(n.text.as_bytes());
        }
    }

    /// Privacy as [`Privacy::save`] wrote it; `None` when malformed.
    pub fn restore(r: &mut crate::renew::Reader<'_>) -> Option<Self> {
        let pii = r.bool()?;
        let n = r.u32()? as usize;
        if n > MAX_NEEDLES {
            return None;
        }
        let mut needles = Vec::with_capacity(n);
        for _ in 0..n {
            needles.push(Needle { field: r.u32()?, text: r.string()? });
        }
        Some(Privacy { pii, needles })
    }

    /// How many typed values are remembered.
    pub fn remembered(&self) -> usize {
        self.needles.len()
    }

    /// Masks echoes of typed values and (when on) PII in `s`, in place.
    pub fn clean(&self, s: &mut String) {
        self.clean_as(s, true);
    }

    /// [`Privacy::clean`], with or without echo masking.
    fn clean_as(&self, s: &mut String, echoes: bool) {
        if s.is_empty() {
            return;
        }
        let mut ranges = Vec::new();
        if echoes && !self.needles.is_empty() {
            self.echo_ranges(s, &mut ranges);
        }
        if self.pii && s.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
            pii_ranges(s.as_bytes(), &mut ranges);
        }
        if !ranges.is_empty() {
            *s = mask_ranges(s, &ranges);
        }
    }

    /// Cleaned copy of `s`.
    pub fn cleaned(&self, mut s: String) -> String {
        self.clean(&mut s);
        s
    }

    fn echo_ranges(&self, s: &str, out: &mut Vec<(usize, usize)>) {
        let folded;
        let (hay, ascii) = if s.is_ascii() {
            folded = s.to_ascii_lowercase();
            (&folded, true)
        } else {
            folded = fold(s);
            (&folded, false)
        };
        let hb = hay.as_bytes();
        for needle in &self.needles {
            let nb = needle.text.as_bytes();
            if nb.len() > hb.len() || (ascii && !needle.text.is_ascii()) {
                continue;
            }
            let mut from = 0;
            while let Some(start) = find_bytes(hb, nb, from) {
                let end = start + nb.len();
                // A short word inside a longer one ("ada" in "Canada") is not an echo.
                let glued_left = start > 0 && alnum(nb[0]) && alnum(hb[start - 1]);
                let glued_right = end < hb.len() && alnum(nb[nb.len() - 1]) && alnum(hb[end]);
                if glued_left || glued_right {
                    from = start + 1;
                    while !hay.is_char_boundary(from) {
                        from += 1;
                    }
                    continue;
                }
                if ascii {
                    out.push((start, end));
                } else {
                    // Folding keeps one character for one character: map char positions back.
                    let c0 = hay[..start].chars().count();
                    let cn = needle.text.chars().count();
                    let byte_at = |c: usize| s.char_indices().nth(c).map_or(s.len(), |(b, _)| b);
                    out.push((byte_at(c0), byte_at(c0 + cn)));
                }
                from = end;
            }
        }
    }

    /// Cleans the text, comments and attribute values of a node list (snapshot or added
    /// subtree); style sheet text is left alone.
    pub fn clean_nodes(&self, nodes: &mut [Node]) {
        let mut styles: Vec<u32> = Vec::new();
        for node in nodes.iter_mut() {
            match &mut node.kind {
                NodeKind::Element { tag, attrs, .. } => {
                    if tag.eq_ignore_ascii_case("style") {
                        styles.push(node.id);
                    }
                    self.clean_attrs(attrs);
                }
                NodeKind::Text(text) if !styles.contains(&node.parent) => self.clean(text),
                NodeKind::Comment(text) => self.clean(text),
                _ => {}
            }
        }
    }

    fn clean_attrs(&self, attrs: &mut [Attr]) {
        for a in attrs {
            if cleaned_attr(&a.name, &a.value) {
                self.clean_as(&mut a.value, !resource_url(&a.name));
            }
        }
    }

    /// Cleans what a mutation adds and changes.
    pub fn clean_mutation(&self, m: &mut Mutation) {
        for add in &mut m.adds {
            self.clean_nodes(&mut add.nodes);
        }
        for a in &mut m.attrs {
            if let Some(v) = &mut a.value
                && cleaned_attr(&a.name, v)
            {
                self.clean_as(v, !resource_url(&a.name));
            }
        }
        for t in &mut m.texts {
            self.clean(&mut t.text);
        }
    }
}

/// Attributes whose values are cleaned: all but those that style the page (class, id, style)
/// and inline `data:` URLs (images and fonts, never typed text).
fn cleaned_attr(name: &str, value: &str) -> bool {
    !(name == "class"
        || name == "id"
        || name == "style"
        || value.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")))
}

/// URLs the replay loads: a typed word (a search for "shirt") must not break `/img/shirt.png`, so
/// only PII is looked for in them, not echoes.
fn resource_url(name: &str) -> bool {
    matches!(name, "src" | "srcset" | "imagesrcset" | "poster")
}

/// Rebuilds `s` with every character inside a range (byte offsets on char boundaries) masked,
/// white space kept. (A byte map rather than sorted ranges: sorting code is large in wasm.)
fn mask_ranges(s: &str, ranges: &[(usize, usize)]) -> String {
    let mut masked = vec![false; s.len()];
    for &(a, z) in ranges {
        if let Some(m) = masked.get_mut(a..z) {
            m.fill(true);
        }
    }
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        let space = c.is_ascii_whitespace() || c == '\u{a0}';
        out.push(if masked[i] && !space { '*' } else { c });
    }
    out
}

/// First position of `needle` in `hay` at or after `from` (a plain scan; the standard library's
/// two-way searcher is large in wasm and needles are short).
fn find_bytes(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let last = hay.len().checked_sub(needle.len())?;
    let mut i = from;
    while i <= last {
        if hay[i] == first && hay[i + 1..i + needle.len()] == *rest {
            return Some(i);
        }
        i += 1;
    }
    None
}

// ---- PII detection (ASCII) ----

fn pii_ranges(b: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let free = i == 0 || !alnum(b[i - 1]);
        let found = if c == b'@' {
            email_at(b, i)
        } else if free && (c.is_ascii_digit() || c == b'+' || c == b'(') {
            i = numbers_at(b, i, out).max(i + 1);
            continue;
        } else if free && c.is_ascii_uppercase() {
            iban_at(b, i)
        } else {
            None
        };
        match found {
            Some(r) => {
                out.push(r);
                i = r.1;
            }
            None => i += 1,
        }
    }
}

/// File extensions that look like top-level domains in `logo@2x.png`: never an address.
const NOT_TLDS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "bmp", "css", "js", "mjs", "json", "html", "htm", "pdf",
    "mp4", "webm", "mp3", "woff", "woff2", "ttf", "otf", "txt", "xml", "map", "wasm",
];

fn email_at(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let local = |c: u8| alnum(c) || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut start = at;
    while start > 0 && local(b[start - 1]) {
        start -= 1;
    }
    if start == at {
        return None;
    }
    let mut end = at + 1;
    while end < b.len() && (alnum(b[end]) || b[end] == b'.' || b[end] == b'-') {
        end += 1;
    }
    while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &b[at + 1..end];
    let dot = domain.iter().rposition(|&c| c == b'.')?;
    let (host, tld) = (&domain[..dot], &domain[dot + 1..]);
    if host.is_empty() || host[0] == b'.' || tld.len() < 2 || !tld.iter().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    if NOT_TLDS.iter().any(|x| tld.eq_ignore_ascii_case(x.as_bytes())) {
        return None;
    }
    Some((start, end))
}

/// A run of digit groups starting at `start` (a digit, `+` or `(`): separators of one or two
/// characters among space, `-`, `.`, `(` and `)`. Pushes the card and phone numbers found in it;
/// returns where the run ends.
fn numbers_at(b: &[u8], start: usize, out: &mut Vec<(usize, usize)>) -> usize {
    const MAX_GROUPS: usize = 12;
    let plus = b[start] == b'+';
    // (start, end) of each digit group, and the separator bytes before each group after the first.
    // A fixed array: this runs for every number on the page, an allocation each would show.
    let mut store = [(0usize, 0usize); MAX_GROUPS];
    let mut count = 0;
    let mut i = start;
    if b[i] == b'+' || b[i] == b'(' {
        i += 1;
    }
    loop {
        let g0 = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == g0 {
            break;
        }
        store[count] = (g0, i);
        count += 1;
        if count >= MAX_GROUPS {
            break;
        }
        let mut j = i;
        while j < b.len() && j - i < 2 && matches!(b[j], b' ' | b'-' | b'.' | b'(' | b')') {
            j += 1;
        }
        if j == i || j >= b.len() || !b[j].is_ascii_digit() {
            // `)` closes the area code of `(555) 123-4567`: it belongs to the number.
            break;
        }
        i = j;
    }
    let groups = &store[..count];
    let Some(&(_, last)) = groups.last() else {
        return start + 1;
    };
    // Glued to a letter or digit on the right: part of a word, an id, a hash.
    if last < b.len() && alnum(b[last]) {
        return last;
    }
    let followed_by_colon = last < b.len() && b[last] == b':';
    let sep = |k: usize| &b[groups[k - 1].1..groups[k].0];
    let digits = |a: usize, z: usize| groups[a..z].iter().map(|g| g.1 - g.0).sum::<usize>();
    let first_digit = |k: usize| b[groups[k].0];
    // Cards: any run of whole groups, one kind of single-character separator (space or dash).
    let n = groups.len();
    for a in 0..n {
        for z in (a + 1)..=n {
            let count = digits(a, z);
            if count > 19 {
                break;
            }
            if count < 13 || !(b'2'..=b'6').contains(&first_digit(a)) {
                continue;
            }
            let seps_ok = (a + 1..z).all(|k| {
                let s = sep(k);
                s.len() == 1 && (s[0] == b' ' || s[0] == b'-') && s == sep(a + 1)
            });
            if seps_ok && luhn(groups[a..z].iter().flat_map(|g| b[g.0..g.1].iter().copied())) {
                out.push((groups[a].0, groups[z - 1].1));
                return last;
            }
        }
    }
    if followed_by_colon {
        return last; // a time: 10:30
    }
    let total = digits(0, n);
    let all_seps = |ok: &dyn Fn(&[u8]) -> bool| (1..n).all(|k| ok(sep(k)));
    let phone = if plus {
        (8..=15).contains(&total) && all_seps(&|s| s.len() == 1 || s == b") " || s == b" (")
    } else if b[start] == b'0' || (b[start] == b'(' && b.get(start + 1) == Some(&b'0')) {
        // National numbers with a trunk 0: 020 7946 0958, 06 12 34 56 78, (030) 1234567.
        let second = b[groups[0].0 + 1..]
            .first()
            .copied()
            .filter(|c| c.is_ascii_digit())
            .or_else(|| groups.get(1).map(|g| b[g.0]));
        (9..=11).contains(&total)
            && second.is_some_and(|c| c != b'0')
            && groups.iter().all(|g| g.1 - g.0 >= 2)
            && all_seps(&|s| matches!(s, b" " | b"-" | b"." | b") "))
    } else {
        // North American: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567, 1 555 123 4567.
        let mut lens = [0usize; MAX_GROUPS];
        for (l, g) in lens.iter_mut().zip(groups) {
            *l = g.1 - g.0;
        }
        let area = match &lens[..count] {
            [3, 3, 4] => Some(0),
            [1, 3, 3, 4] if first_digit(0) == b'1' => Some(1),
            _ => None,
        };
        area.is_some_and(|k| {
            (b'2'..=b'9').contains(&first_digit(k))
                && all_seps(&|s| matches!(s, b" " | b"-" | b"." | b") " | b")" | b" ("))
        })
    };
    if phone {
        out.push((start, last));
    }
    last
}

fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.rev().enumerate() {
        let mut x = u32::from(d - b'0');
        if i % 2 == 1 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    sum.is_multiple_of(10)
}

/// An IBAN at `start`: two capitals, two check digits, then 11–30 capitals or digits (34 in
/// all), optionally grouped by single spaces; the longest mod-97-valid candidate that ends at a
/// word end.
fn iban_at(b: &[u8], start: usize) -> Option<(usize, usize)> {
    let head = b.get(start..start + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return None;
    }
    let up = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    // Positions of the characters, spaces skipped; candidate ends where a word ends.
    let mut chars: Vec<usize> = Vec::with_capacity(34);
    let mut ends: Vec<usize> = Vec::new();
    let mut i = start;
    while i < b.len() && chars.len() < 34 {
        if up(b[i]) {
            chars.push(i);
            i += 1;
            if i >= b.len() || !alnum(b[i]) {
                ends.push(chars.len());
            }
        } else if b[i] == b' ' && i + 1 < b.len() && up(b[i + 1]) && i > start && up(b[i - 1]) {
            i += 1;
        } else {
            break;
        }
    }
    for &n in ends.iter().rev() {
        if !(15..=34).contains(&n) {
            continue;
        }
        // The character after the candidate must not glue it to a word.
        let end = chars[n - 1] + 1;
        if end < b.len() && alnum(b[end]) {
            continue;
        }
        let order = chars[4..n].iter().chain(chars[..4].iter());
        let mut rem = 0u32;
        for &p in order {
            let c = b[p];
            rem = if c.is_ascii_digit() {
                (rem * 10 + u32::from(c - b'0')) % 97
            } else {
                (rem * 100 + u32::from(c - b'A') + 10) % 97
            };
        }
        if rem == 1 {
            return Some((start, end));
        }
    }
    None
}

// ---- captured bodies and headers ----

/// True for a field or header name that names a secret: passwords, tokens, secrets,
/// authorization, API keys, card numbers and codes, IBANs, social security numbers.
pub fn sensitive_key(key: &str) -> bool {
    sensitive_name(key.as_bytes())
}

/// [`sensitive_key`] on bytes (ASCII rules; other bytes separate words).
fn sensitive_name(key: &[u8]) -> bool {
    const MAX_KEY: usize = 128;
    // Lower-case words separated by single `_`: split at non-alphanumerics and camelCase humps.
    let mut norm: Vec<u8> = Vec::with_capacity(key.len().min(MAX_KEY) + 8);
    let mut prev_lower = false;
    for &c in key.iter().take(MAX_KEY) {
        if !c.is_ascii_alphanumeric() {
            if norm.last().is_some_and(|&l| l != b'_') {
                norm.push(b'_');
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            norm.push(b'_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        norm.push(c.to_ascii_lowercase());
    }
    const WORDS: &[&[u8]] = &[
        b"pass",
        b"pwd",
        b"pin",
        b"cc",
        b"ccv",
        b"cvv",
        b"cvv2",
        b"cvc",
        b"cvc2",
        b"card",
        b"iban",
        b"ssn",
        b"otp",
        b"auth",
        b"sig",
        b"signature",
        b"credential",
        b"credentials",
        b"authorization",
        b"oauth",
    ];
    let mut prev: &[u8] = b"";
    for w in norm.split(|&c| c == b'_') {
        if WORDS.contains(&w) {
            return true;
        }
        if w == b"key" && matches!(prev, b"api" | b"private" | b"access" | b"secret") {
            return true;
        }
        prev = w;
    }
    // Glued spellings: newpassword, accesstoken, apikey, cardnumber, authtoken.
    let glued: Vec<u8> = norm.into_iter().filter(|&c| c != b'_').collect();
    const PARTS: &[&[u8]] = &[
        b"passw",
        b"passphrase",
        b"passcode",
        b"secret",
        b"token",
        b"apikey",
        b"privatekey",
        b"accesskey",
        b"cardnumber",
        b"cardno",
        b"creditcard",
        b"cvv",
        b"cvc",
        b"iban",
        b"authkey",
        b"authcode",
        b"sessionid",
        b"csrf",
        b"xsrf",
    ];
    PARTS.iter().any(|p| find_bytes(&glued, p, 0).is_some())
}

/// A captured body with the values of secret-named fields replaced by [`REDACTED`]: JSON
/// (objects at any depth; the value of a secret-named key is replaced whole, even an object),
/// and form-encoded (`a=1&password=2`). Bodies cut short by the capture bound are handled as far
/// as they go. Anything else is returned as is.
pub fn redact_body(body: &str) -> String {
    let t = body.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        redact_json(body)
    } else if body.bytes().any(|b| b == b'=') && !body.bytes().any(|b| b.is_ascii_whitespace()) {
        redact_form(body)
    } else {
        body.to_owned()
    }
}

fn redact_form(body: &str) -> String {
    let b = body.as_bytes();
    let mut out = String::with_capacity(body.len());
    let mut start = 0;
    while start <= b.len() {
        let end = b[start..].iter().position(|&c| c == b'&').map_or(b.len(), |k| start + k);
        let part = &body[start..end];
        match part.bytes().position(|c| c == b'=') {
            Some(eq) if sensitive_name(&percent_decode(&part[..eq])) => {
                out.push_str(&part[..=eq]);
                out.push_str(REDACTED);
            }
            _ => out.push_str(part),
        }
        if end < b.len() {
            out.push('&');
        }
        start = end + 1;
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(|&x| hex(x)), b.get(i + 2).and_then(|&x| hex(x)))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(if c == b'+' { b' ' } else { c });
        i += 1;
    }
    out
}

/// End (exclusive) of the JSON string starting with the quote at `at`; the text's end when
/// unterminated.
fn string_end(b: &[u8], at: usize) -> usize {
    let mut i = at + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// End (exclusive) of the JSON value starting at `at` (after white space).
fn value_end(b: &[u8], at: usize) -> usize {
    match b.get(at) {
        Some(b'"') => string_end(b, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = at;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = string_end(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            b.len()
        }
        _ => {
            let mut i = at;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            i
        }
    }
}

fn redact_json(body: &str) -> String {
    let b = body.as_bytes();
    let mut out = String::with_capacity(body.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let end = string_end(b, i);
        let mut j = end;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b':' && end > i + 1 {
            let key = &body[i + 1..end - 1];
            if sensitive_key(key) {
                let mut v = j + 1;
                while v < b.len() && b[v].is_ascii_whitespace() {
                    v += 1;
                }
                let v_end = value_end(b, v);
                if v < b.len() {
                    out.push_str(&body[copied..v]);
                    out.push('"');
                    out.push_str(REDACTED);
                    out.push('"');
                    copied = v_end;
                }
                i = v_end.max(end);
                continue;
            }
        }
        i = end;
    }
    out.push_str(&body[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pii(s: &str) -> String {
        Privacy::default().cleaned(s.to_owned())
    }

    #[test]
    fn emails_are_masked_file_names_and_handles_are_not() {
        assert_eq!(pii("mail ada.lovelace@example.com now"), "mail ************************ now");
        assert_eq!(pii("mailto:ada+x@mail.example.co.uk."), "mailto:************************.");
        for keep in ["logo@2x.png", "@media screen", "pkg@1.2.3", "user@localhost", "a @ b.com"] {
            assert_eq!(pii(keep), keep);
        }
    }

    #[test]
    fn card_numbers_are_masked_when_luhn_valid_with_a_network_prefix() {
        assert_eq!(pii("card 4242424242424242."), "card ****************.");
        assert_eq!(pii("4242 4242 4242 4242 exp 12/29"), "**** **** **** **** exp 12/29");
        assert_eq!(pii("x 5555-5555-5555-4444"), "x *******************");
        assert_eq!(pii("Amex 378282246310005"), "Amex ***************");
        // Not Luhn-valid, no card network, mixed separators, glued to letters: kept.
        for keep in [
            "4242424242424241",
            "1700000040000 ms",
            "4242 4242-4242 4242",
            "id a4242424242424242",
            "4242424242424242px",
        ] {
            assert_eq!(pii(keep), keep);
        }
    }

    #[test]
    fn phone_numbers_are_masked_in_common_forms() {
        for (s, masked) in [
            ("call +44 20 7946 0958 now", "call *** ** **** **** now"),
            ("+1 (555) 123-4567", "** ***** ********"),
            ("+33612345678", "************"),
            ("(555) 123-4567", "***** ********"),
            ("tel 555-123-4567", "tel ************"),
            ("555.123.4567", "************"),
            ("020 7946 0958", "*** **** ****"),
            ("06 12 34 56 78", "** ** ** ** **"),
            ("0612345678", "**********"),
        ] {
            assert_eq!(pii(s), masked, "{s}");
        }
    }

    #[test]
    fn ordinary_numbers_are_kept() {
        for keep in [
            "Total $129.00",
            "in 2024, 1,234,567 users",
            "1 234 567 €",
            "order #123456789",
            "2024-01-15",
            "01.02.2023",
            "01-02-2023 10:30",
            "version 1.2.3.4",
            "ZIP 75001",
            "0012345678",
            "+12 kg",
            "pi 3.14159265358979",
            "100 200 3000",
            "10:30 - 11:45",
            "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert_eq!(pii(keep), keep, "{keep}");
        }
    }

    #[test]
    fn ibans_are_masked_when_mod97_valid() {
        assert_eq!(pii("IBAN DE89 3704 0044 0532 0130 00 EUR"), "IBAN **** **** **** **** **** ** EUR");
        assert_eq!(pii("GB82WEST12345698765432"), "**********************");
        assert_eq!(pii("GB82WEST12345698765433"), "GB82WEST12345698765433");
        assert_eq!(pii("AB12 CODE"), "AB12 CODE");
    }

    #[test]
    fn pii_detection_can_be_turned_off() {
        let mut p = Privacy::default();
        p.set_pii(false);
        assert_eq!(p.cleaned("ada@example.com 4242424242424242".into()), "ada@example.com 4242424242424242");
    }

    #[test]
    fn typed_values_are_masked_wherever_they_are_echoed() {
        let mut p = Privacy::default();
        p.set_pii(false);
        p.remember(7, "  Ada Lovelace ");
        p.remember(8, "12 Analytical Engine Road");
        assert_eq!(
            p.cleaned("Ship to ADA LOVELACE · 12 analytical engine road, London".into()),
            "Ship to *** ******** · ** ********** ****** ****, London"
        );
        // Inside a longer word it is not an echo; short values are not remembered.
        p.remember(9, "ab");
        assert_eq!(p.cleaned("Ada Lovelacey ab".into()), "Ada Lovelacey ab");
        // Non-ASCII text and values map back to the right characters.
        p.remember(10, "Zoë Müller");
        assert_eq!(p.cleaned("für ZOË MÜLLER ✓".into()), "für *** ****** ✓");
        p.remember(11, "Countess\u{a0}Lovelace");
        assert_eq!(p.cleaned("Signed: Countess Lovelace".into()), "Signed: ******** ********");
    }

    #[test]
    fn typing_replaces_the_fields_value_and_the_memory_is_bounded() {
        let mut p = Privacy::default();
        for v in ["Ada", "Ada L", "Ada Lovelace"] {
            p.remember(1, v);
        }
        assert_eq!(p.remembered(), 1);
        assert_eq!(p.cleaned("Ada Lovelace".into()), "*** ********");
        p.remember(1, "Grace Hopper");
        assert_eq!(p.remembered(), 2, "a different value is kept beside the old one");
        for i in 0..200 {
            p.remember(100 + i, &format!("value number {i}"));
        }
        assert_eq!(p.remembered(), MAX_NEEDLES);
        assert_eq!(p.cleaned("value number 199".into()), "***** ****** ***");
        assert_eq!(p.cleaned("Grace Hopper".into()), "Grace Hopper", "the oldest are forgotten");
    }

    #[test]
    fn snapshots_and_mutations_are_cleaned_but_style_sheets_and_class_names_are_not() {
        use replay_protocol::{AddedSubtree, AttrChange, Namespace, TextChange};
        let el = |id, parent, tag: &str, attrs: &[(&str, &str)]| Node {
            id,
            parent,
            kind: NodeKind::Element {
                tag: tag.into(),
                ns: Namespace::Html,
                attrs: attrs.iter().map(|(n, v)| Attr { name: (*n).into(), value: (*v).into() }).collect(),
            },
        };
        let text = |id, parent, t: &str| Node { id, parent, kind: NodeKind::Text(t.into()) };
        let mut p = Privacy::default();
        p.remember(1, "Ada Lovelace");
        p.remember(2, "lovelace");
        let mut nodes = vec![
            el(
                2,
                0,
                "p",
                &[
                    ("title", "Ada Lovelace"),
                    ("class", "ada@example.com"),
                    ("src", "data:x@y.com"),
                    ("srcset", "/img/lovelace.png?u=ada@example.com"),
                ],
            ),
            text(3, 2, "ship to Ada Lovelace, ada@example.com"),
            el(4, 0, "style", &[]),
            text(5, 4, "a[href^='mailto:ada@example.com'] {}"),
            Node { id: 6, parent: 0, kind: NodeKind::Comment("ada@example.com".into()) },
        ];
        p.clean_nodes(&mut nodes);
        let NodeKind::Element { attrs, .. } = &nodes[0].kind else { unreachable!() };
        assert_eq!(
            attrs.iter().map(|a| a.value.as_str()).collect::<Vec<_>>(),
            ["*** ********", "ada@example.com", "data:x@y.com", "/img/lovelace.png?u=***************"]
        );
        assert_eq!(nodes[1].kind, NodeKind::Text("ship to *** ********, ***************".into()));
        assert_eq!(nodes[3].kind, NodeKind::Text("a[href^='mailto:ada@example.com'] {}".into()));
        assert_eq!(nodes[4].kind, NodeKind::Comment("***************".into()));
        let mut m = Mutation {
            adds: vec![AddedSubtree { parent: 1, next: 0, nodes: vec![text(7, 1, "+44 20 7946 0958")] }],
            attrs: vec![AttrChange { id: 2, name: "aria-label".into(), value: Some("ada lovelace".into()) }],
            texts: vec![TextChange { id: 3, text: "IBAN GB82WEST12345698765432".into() }],
            ..Mutation::default()
        };
        p.clean_mutation(&mut m);
        assert_eq!(m.adds[0].nodes[0].kind, NodeKind::Text("*** ** **** ****".into()));
        assert_eq!(m.attrs[0].value.as_deref(), Some("*** ********"));
        assert_eq!(m.texts[0].text, "IBAN **********************");
    }

    #[test]
    fn secret_names_are_recognised() {
        for k in [
            "password",
            "newPassword",
            "user[password]",
            "passwd",
            "client_secret",
            "access_token",
            "refreshToken",
            "Authorization",
            "x-auth-token",
            "api_key",
            "X-API-Key",
            "apikey",
            "card_number",
            "cardNumber",
            "cc",
            "cc-exp",
            "cvv",
            "cvc",
            "iban",
            "ssn",
            "csrfToken",
            "pin",
        ] {
            assert!(sensitive_key(k), "{k}");
        }
        for k in ["author", "email", "name", "classname", "discard", "account", "success", "keyword"] {
            assert!(!sensitive_key(k), "{k}");
        }
    }

    #[test]
    fn json_and_form_bodies_lose_secret_fields() {
        assert_eq!(
            redact_body(r#"{"email":"a@b.co","password":"hunter2","card":{"number":"4242","cvc":123},"n":1}"#),
            r#"{"email":"a@b.co","password":"[REDACTED]","card":"[REDACTED]","n":1}"#
        );
        assert_eq!(
            redact_body(r#"[{"access_token": "x\"y", "ok": true}, {"apiKey": null}]"#),
            r#"[{"access_token": "[REDACTED]", "ok": true}, {"apiKey": "[REDACTED]"}]"#
        );
        // Cut short by the capture bound.
        assert_eq!(redact_body(r#"{"a":1,"token":"abcdef"#), r#"{"a":1,"token":"[REDACTED]""#);
        assert_eq!(
            redact_body("user=ada&user%5Bpassword%5D=s3cret&cc_number=4242&x="),
            "user=ada&user%5Bpassword%5D=[REDACTED]&cc_number=[REDACTED]&x="
        );
        assert_eq!(redact_body("plain text password=x y"), "plain text password=x y");
    }
}
