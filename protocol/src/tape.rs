//! The tape: how the in-page JavaScript walker hands DOM data to Rust in one call.
//!
//! Crossing the JS/wasm boundary once per node or per string is what makes naive recorders
//! slow, so the walker writes integers into one `u32` array and every string, back to back, into
//! one string. Each string is announced on the integer tape by its length in UTF-16 code units
//! (JavaScript's `length`). A node record is:
//!
//! | kind | record |
//! |---|---|
//! | [`KIND_DOCUMENT`] | `kind, id, parent` |
//! | [`KIND_DOCTYPE`] | `kind, id, parent, len(name), len(public), len(system)` |
//! | [`KIND_ELEMENT`] | `kind, id, parent, ns, len(tag), n_attrs, (len(name), len(value)) * n_attrs` |
//! | [`KIND_TEXT`], [`KIND_COMMENT`] | `kind, id, parent, len(data)` |
//! | [`KIND_SHADOW_ROOT`] | `kind, id, parent` |
//!
//! A snapshot tape is `n_nodes, node*`. A mutation tape is
//! `n_removes, id*, n_adds, (parent, next, n_nodes, node*)*, n_attrs, (id, has_value, len(name),
//! len(value))*, n_texts, (id, len(text))*`.

use crate::Error;
use crate::batch::{AddedSubtree, Attr, AttrChange, Mutation, Namespace, Node, NodeKind, TextChange};

pub const KIND_DOCUMENT: u32 = 0;
pub const KIND_DOCTYPE: u32 = 1;
pub const KIND_ELEMENT: u32 = 2;
pub const KIND_TEXT: u32 = 3;
pub const KIND_COMMENT: u32 = 4;
pub const KIND_SHADOW_ROOT: u32 = 5;

struct Reader<'a> {
    ints: &'a [u32],
    at: usize,
    strs: &'a str,
    str_at: usize,
    /// The whole string tape is ASCII (checked once): lengths in UTF-16 units are byte lengths.
    ascii: bool,
}

impl<'a> Reader<'a> {
    fn int(&mut self) -> Result<u32, Error> {
        let v =
            self.ints.get(self.at).copied().ok_or(Error::Tape { at: self.at, reason: "integer tape ends early" })?;
        self.at += 1;
        Ok(v)
    }

    fn count(&mut self) -> Result<usize, Error> {
        let n = self.int()? as usize;
        // Every counted item takes at least one integer: a count larger than what is left is a lie.
        if n > self.ints.len().saturating_sub(self.at) {
            return Err(Error::Tape { at: self.at, reason: "count larger than the tape" });
        }
        Ok(n)
    }

    /// Takes the next string of `units` UTF-16 code units.
    fn string(&mut self, units: u32) -> Result<String, Error> {
        let rest =
            self.strs.get(self.str_at..).ok_or(Error::Tape { at: self.at, reason: "string tape out of step" })?;
        let mut left = units as usize;
        let mut bytes = 0;
        // Only this string's own bytes are checked: checking all of `rest` on every call made
        // reading a tape quadratic in its length whenever its tail was ASCII.
        if self.ascii || left <= rest.len() && rest.as_bytes()[..left].is_ascii() {
            bytes = left.min(rest.len());
            left -= bytes;
        } else {
            for c in rest.chars() {
                if left == 0 {
                    break;
                }
                left = left.saturating_sub(c.len_utf16());
                bytes += c.len_utf8();
            }
        }
        if left != 0 {
            return Err(Error::Tape { at: self.at, reason: "string tape ends early" });
        }
        self.str_at += bytes;
        Ok(rest[..bytes].to_owned())
    }

    fn len_string(&mut self) -> Result<String, Error> {
        let len = self.int()?;
        self.string(len)
    }

    fn node(&mut self) -> Result<Node, Error> {
        let kind = self.int()?;
        let id = self.int()?;
        let parent = self.int()?;
        let kind = match kind {
            KIND_DOCUMENT => NodeKind::Document,
            KIND_DOCTYPE => {
                let (a, b, c) = (self.int()?, self.int()?, self.int()?);
                NodeKind::Doctype { name: self.string(a)?, public_id: self.string(b)?, system_id: self.string(c)? }
            }
            KIND_ELEMENT => {
                let ns = Namespace::from_code(u8::try_from(self.int()?).unwrap_or(0));
                let tag_len = self.int()?;
                let n_attrs = self.count()?;
                let mut lens = Vec::with_capacity(n_attrs);
                for _ in 0..n_attrs {
                    lens.push((self.int()?, self.int()?));
                }
                let tag = self.string(tag_len)?;
                let mut attrs = Vec::with_capacity(n_attrs);
                for (n, v) in lens {
                    attrs.push(Attr { name: self.string(n)?, value: self.string(v)? });
                }
                NodeKind::Element { tag, ns, attrs }
            }
            KIND_TEXT => NodeKind::Text(self.len_string()?),
            KIND_COMMENT => NodeKind::Comment(self.len_string()?),
            KIND_SHADOW_ROOT => NodeKind::ShadowRoot,
            _ => {
                return Err(Error::Tape { at: self.at, reason: "unknown node kind" });
            }
        };
        if id == 0 {
            return Err(Error::Tape { at: self.at, reason: "node id 0 is reserved" });
        }
        Ok(Node { id, parent, kind })
    }

    fn nodes(&mut self) -> Result<Vec<Node>, Error> {
        let n = self.count()?;
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(self.node()?);
        }
        Ok(nodes)
    }

    fn finish(&self) -> Result<(), Error> {
        if self.at != self.ints.len() || self.str_at != self.strs.len() {
            return Err(Error::Tape { at: self.at, reason: "tape has trailing data" });
        }
        Ok(())
    }
}

/// Reads a snapshot tape into its node list.
pub fn read_snapshot(ints: &[u32], strs: &str) -> Result<Vec<Node>, Error> {
    let mut r = Reader { ints, at: 0, strs, str_at: 0, ascii: strs.is_ascii() };
    let nodes = r.nodes()?;
    r.finish()?;
    Ok(nodes)
}

/// Reads a mutation tape.
pub fn read_mutation(ints: &[u32], strs: &str) -> Result<Mutation, Error> {
    let mut r = Reader { ints, at: 0, strs, str_at: 0, ascii: strs.is_ascii() };
    let mut m = Mutation::default();
    let n = r.count()?;
    for _ in 0..n {
        m.removes.push(r.int()?);
    }
    let n = r.count()?;
    for _ in 0..n {
        let parent = r.int()?;
        let next = r.int()?;
        let nodes = r.nodes()?;
        m.adds.push(AddedSubtree { parent, next, nodes });
    }
    let n = r.count()?;
    for _ in 0..n {
        let id = r.int()?;
        let has_value = r.int()? != 0;
        let (name_len, value_len) = (r.int()?, r.int()?);
        let name = r.string(name_len)?;
        let value = r.string(value_len)?;
        m.attrs.push(AttrChange { id, name, value: has_value.then_some(value) });
    }
    let n = r.count()?;
    for _ in 0..n {
        let id = r.int()?;
        let text = r.len_string()?;
        m.texts.push(TextChange { id, text });
    }
    r.finish()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16len(s: &str) -> u32 {
        s.encode_utf16().count() as u32
    }

    #[test]
    fn reads_a_snapshot_tape_with_non_ascii_strings() {
        let strs = ["div", "title", "h\u{e9}llo \u{1F600}", "x"];
        let ints = vec![
            3,
            KIND_DOCUMENT,
            1,
            0,
            KIND_ELEMENT,
            2,
            1,
            0,
            u16len(strs[0]),
            1,
            u16len(strs[1]),
            u16len(strs[2]),
            KIND_TEXT,
            3,
            2,
            u16len(strs[3]),
        ];
        let nodes = read_snapshot(&ints, &strs.concat()).expect("valid tape");
        assert_eq!(nodes.len(), 3);
        assert_eq!(
            nodes[1].kind,
            NodeKind::Element {
                tag: "div".into(),
                ns: Namespace::Html,
                attrs: vec![Attr { name: "title".into(), value: "h\u{e9}llo \u{1F600}".into() }]
            }
        );
        assert_eq!(nodes[2].kind, NodeKind::Text("x".into()));
    }

    #[test]
    fn reads_a_mutation_tape() {
        let ints = vec![1, 7, 1, 2, 0, 1, KIND_TEXT, 9, 0, 2, 1, 4, 1, 5, 1, 1, 4, 2];
        let m = read_mutation(&ints, "hiclassabc").expect("valid tape");
        assert_eq!(m.removes, vec![7]);
        assert_eq!(m.adds[0].nodes[0].kind, NodeKind::Text("hi".into()));
        assert_eq!(m.attrs, vec![AttrChange { id: 4, name: "class".into(), value: Some("a".into()) }]);
        assert_eq!(m.texts, vec![TextChange { id: 4, text: "bc".into() }]);
    }

    #[test]
    fn long_tapes_with_ascii_and_non_ascii_strings_read_back() {
        // Non-ASCII only at the start, then a long ASCII tail (the case that used to be slow),
        // and the reverse.
        for first in ["\u{2013}", "a"] {
            let mut strs = vec![first.to_string()];
            strs.extend((0..20_000).map(|i| format!("text {i}")));
            strs.push("\u{e9}\u{1F600}".into());
            let mut ints = vec![strs.len() as u32];
            for (i, s) in strs.iter().enumerate() {
                ints.extend([KIND_TEXT, i as u32 + 1, 0, u16len(s)]);
            }
            let nodes = read_snapshot(&ints, &strs.concat()).expect("valid tape");
            let texts: Vec<_> =
                nodes.iter().map(|n| if let NodeKind::Text(t) = &n.kind { t.clone() } else { String::new() }).collect();
            assert_eq!(texts, strs);
        }
    }

    #[test]
    fn broken_tapes_are_errors() {
        assert!(read_snapshot(&[5], "").is_err());
        assert!(read_snapshot(&[1, KIND_TEXT, 1, 0, 10], "short").is_err());
        assert!(read_snapshot(&[1, 99, 1, 0], "").is_err());
        assert!(read_snapshot(&[0], "trailing").is_err());
        assert!(read_mutation(&[u32::MAX], "").is_err());
    }
}
