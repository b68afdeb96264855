//! A mutation's removals, attribute changes and text changes packed column by column in one
//! MessagePack `bin` each (protocol v2), instead of one small array per change.
//!
//! Why: on small, busy pages (a dashboard ticking every 100 ms) most of a batch is attribute
//! and text changes. Written as `[id, name, value]` and `[id, text]` arrays, every change paid
//! an array header and a node id of 1 to 5 bytes in an order gzip cannot predict (the ids walk
//! the page in steps); measured on the shared benchmark's churn page, structure was two thirds
//! of the gzipped bytes. Packed, the ids are zigzag varints of their differences (a walk in
//! equal steps repeats one byte), attribute names are an index into the mutation's own name
//! table, and the values follow each other with a varint length: what remains is mostly the
//! values themselves.
//!
//! The layouts (`uvarint`: LEB128; `id deltas`: per id, the zigzag varint of its difference
//! from the previous id of the same list, wrapping in `u32`, the first from 0):
//! - removals: the id deltas, nothing else;
//! - attribute changes: `uvarint n`, `n` id deltas, `uvarint t`, `t` names (`uvarint len`,
//!   UTF-8 bytes), `n` name indexes (`uvarint`, each `< t`), `n` values (`uvarint 0` for a
//!   removal, else `uvarint len + 1` and the UTF-8 bytes);
//! - text changes: `uvarint n`, `n` id deltas, `n` texts (`uvarint len`, UTF-8 bytes).
//!
//! An empty list travels as an empty array (one byte). Readers also accept every list as the
//! array of arrays that protocol v1 recorders sent (so stored sessions still replay), and
//! human-readable formats (the JSON API) keep the plain lists.
//!
//! Decoding is bounded: every count is checked against the bytes left (each entry takes at
//! least one byte), varints longer than 10 bytes or beyond `u32` are refused, and strings
//! must be UTF-8; it never panics. Strings are borrowed from the input when the target string
//! type borrows ([`crate::codec::decode_batch_borrowed`]).

use serde::de::value::{BorrowedStrDeserializer, StrDeserializer};
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use std::marker::PhantomData;

use super::{AttrChange, NodeId, TextChange};

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends the zigzag varints of the differences between consecutive ids (the first from 0).
pub(crate) fn put_ids(out: &mut Vec<u8>, ids: impl Iterator<Item = NodeId>) {
    let mut prev = 0u32;
    for id in ids {
        let d = id.wrapping_sub(prev) as i32;
        prev = id;
        put_uvarint(out, u64::from(((d << 1) ^ (d >> 31)) as u32));
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, plus: u64) {
    put_uvarint(out, s.len() as u64 + plus);
    out.extend_from_slice(s.as_bytes());
}

/// The content of a packed removal list's `bin`.
pub(crate) fn pack_removes(ids: &[NodeId], out: &mut Vec<u8>) {
    put_ids(out, ids.iter().copied());
}

/// The content of a packed attribute-change list's `bin`.
pub(crate) fn pack_attrs<S: AsRef<str>>(changes: &[AttrChange<S>], out: &mut Vec<u8>) {
    put_uvarint(out, changes.len() as u64);
    put_ids(out, changes.iter().map(|c| c.id));
    // The mutation's distinct names in the order first seen; a mutation has a handful, so a
    // linear search is cheaper than hashing.
    let mut names: Vec<&str> = Vec::new();
    let mut indexes = Vec::with_capacity(changes.len());
    // Exhaustive patterns: a field added to a change does not compile until it is packed.
    for AttrChange { id: _, name, value: _ } in changes {
        let name = name.as_ref();
        let i = match names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                names.push(name);
                names.len() - 1
            }
        };
        indexes.push(i as u64);
    }
    put_uvarint(out, names.len() as u64);
    for n in &names {
        put_str(out, n, 0);
    }
    for i in indexes {
        put_uvarint(out, i);
    }
    for AttrChange { value, .. } in changes {
        match value {
            Some(v) => put_str(out, v.as_ref(), 1),
            None => out.push(0),
        }
    }
}

/// The content of a packed text-change list's `bin`.
pub(crate) fn pack_texts<S: AsRef<str>>(changes: &[TextChange<S>], out: &mut Vec<u8>) {
    put_uvarint(out, changes.len() as u64);
    put_ids(out, changes.iter().map(|c| c.id));
    for TextChange { id: _, text } in changes {
        put_str(out, text.as_ref(), 0);
    }
}

/// A cursor over a packed list.
struct Reader<'b> {
    bytes: &'b [u8],
}

impl<'b> Reader<'b> {
    fn uvarint(&mut self) -> Result<u64, &'static str> {
        let mut v: u64 = 0;
        let mut shift = 0;
        loop {
            let Some((&b, rest)) = self.bytes.split_first() else { return Err("truncated packed changes") };
            self.bytes = rest;
            if shift == 63 && b > 1 {
                return Err("packed changes varint too long");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err("packed changes varint too long");
            }
        }
    }

    /// A count of entries that take at least one byte each: never more than the bytes left.
    fn count(&mut self) -> Result<usize, &'static str> {
        let n = self.uvarint()?;
        if n > self.bytes.len() as u64 {
            return Err("packed changes count beyond the input");
        }
        Ok(n as usize)
    }

    fn ids(&mut self, n: usize) -> Result<Vec<NodeId>, &'static str> {
        let mut ids = Vec::with_capacity(n.min(self.bytes.len()));
        let mut prev = 0u32;
        for _ in 0..n {
            let z = u32::try_from(self.uvarint()?).map_err(|_| "packed node id out of range")?;
            let d = ((z >> 1) as i32) ^ -((z & 1) as i32);
            prev = prev.wrapping_add(d as u32);
            ids.push(prev);
        }
        Ok(ids)
    }

    fn str_of_len(&mut self, len: u64) -> Result<&'b str, &'static str> {
        if len > self.bytes.len() as u64 {
            return Err("truncated packed changes");
        }
        let (s, rest) = self.bytes.split_at(len as usize);
        self.bytes = rest;
        std::str::from_utf8(s).map_err(|_| "packed changes text is not UTF-8")
    }

    fn str(&mut self) -> Result<&'b str, &'static str> {
        let len = self.uvarint()?;
        self.str_of_len(len)
    }

    fn end(&self) -> Result<(), &'static str> {
        if self.bytes.is_empty() { Ok(()) } else { Err("trailing bytes after packed changes") }
    }
}

/// Unpacks a removal list.
pub fn unpack_removes(bytes: &[u8]) -> Result<Vec<NodeId>, &'static str> {
    let mut r = Reader { bytes };
    let mut ids = Vec::with_capacity(bytes.len());
    let mut prev = 0u32;
    while !r.bytes.is_empty() {
        let z = u32::try_from(r.uvarint()?).map_err(|_| "packed node id out of range")?;
        prev = prev.wrapping_add((((z >> 1) as i32) ^ -((z & 1) as i32)) as u32);
        ids.push(prev);
    }
    Ok(ids)
}

/// Unpacks an attribute-change list, making each string with `mk`.
pub fn unpack_attrs<'b, S, E>(bytes: &'b [u8], mk: impl Fn(&'b str) -> Result<S, E>) -> Result<Vec<AttrChange<S>>, E>
where
    E: de::Error,
{
    let mut r = Reader { bytes };
    let fail = |m: &'static str| E::custom(m);
    let n = r.count().map_err(fail)?;
    let ids = r.ids(n).map_err(fail)?;
    let t = r.count().map_err(fail)?;
    let mut names = Vec::with_capacity(t);
    for _ in 0..t {
        names.push(r.str().map_err(fail)?);
    }
    let mut indexes = Vec::with_capacity(n.min(r.bytes.len()));
    for _ in 0..n {
        let i = r.uvarint().map_err(fail)?;
        if i >= names.len() as u64 {
            return Err(fail("packed attribute name index out of range"));
        }
        indexes.push(i as usize);
    }
    let mut out = Vec::with_capacity(n.min(r.bytes.len()));
    for (id, i) in ids.into_iter().zip(indexes) {
        let value = match r.uvarint().map_err(fail)? {
            0 => None,
            len => Some(mk(r.str_of_len(len - 1).map_err(fail)?)?),
        };
        out.push(AttrChange { id, name: mk(names[i])?, value });
    }
    r.end().map_err(fail)?;
    Ok(out)
}

/// Unpacks a text-change list, making each string with `mk`.
pub fn unpack_texts<'b, S, E>(bytes: &'b [u8], mk: impl Fn(&'b str) -> Result<S, E>) -> Result<Vec<TextChange<S>>, E>
where
    E: de::Error,
{
    let mut r = Reader { bytes };
    let fail = |m: &'static str| E::custom(m);
    let n = r.count().map_err(fail)?;
    let ids = r.ids(n).map_err(fail)?;
    let mut out = Vec::with_capacity(n.min(r.bytes.len()));
    for id in ids {
        out.push(TextChange { id, text: mk(r.str().map_err(fail)?)? });
    }
    r.end().map_err(fail)?;
    Ok(out)
}

/// Writes a packed list as one `bin`, an empty list as an empty array, and the plain list for
/// human-readable formats.
fn write<T: Serialize, W: Serializer>(items: &[T], s: W, pack: impl FnOnce(&mut Vec<u8>)) -> Result<W::Ok, W::Error> {
    if s.is_human_readable() || items.is_empty() {
        return super::seq_as_tuple(items, s);
    }
    let mut out = Vec::with_capacity(items.len() * 8);
    pack(&mut out);
    s.serialize_bytes(&out)
}

/// What a packed list decodes to: the packed form from a `bin`, the v1 form from an array.
trait Unpack<'de>: Sized {
    type Item: Deserialize<'de>;
    const EXPECTING: &'static str;
    fn borrowed<E: de::Error>(bytes: &'de [u8]) -> Result<Vec<Self::Item>, E>;
    fn copied<E: de::Error>(bytes: &[u8]) -> Result<Vec<Self::Item>, E>;
}

struct ListVisitor<U>(PhantomData<U>);

impl<'de, U: Unpack<'de>> Visitor<'de> for ListVisitor<U> {
    type Value = Vec<U::Item>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(U::EXPECTING)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        U::borrowed(v)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        U::copied(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

fn read<'de, U: Unpack<'de>, D: Deserializer<'de>>(d: D) -> Result<Vec<U::Item>, D::Error> {
    if d.is_human_readable() {
        return Vec::<U::Item>::deserialize(d);
    }
    d.deserialize_any(ListVisitor::<U>(PhantomData))
}

fn borrowed_str<'de, S: Deserialize<'de>, E: de::Error>(s: &'de str) -> Result<S, E> {
    S::deserialize(BorrowedStrDeserializer::<E>::new(s))
}

/// [`super::Mutation::removes`]: packed node ids.
pub mod removes {
    use super::*;

    pub fn serialize<W: Serializer>(ids: &[NodeId], s: W) -> Result<W::Ok, W::Error> {
        write(ids, s, |out| pack_removes(ids, out))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NodeId>, D::Error> {
        read::<Removes, D>(d)
    }

    struct Removes;

    impl<'de> Unpack<'de> for Removes {
        type Item = NodeId;
        const EXPECTING: &'static str = "packed node ids or a list of node ids";

        fn borrowed<E: de::Error>(bytes: &'de [u8]) -> Result<Vec<NodeId>, E> {
            unpack_removes(bytes).map_err(E::custom)
        }

        fn copied<E: de::Error>(bytes: &[u8]) -> Result<Vec<NodeId>, E> {
            unpack_removes(bytes).map_err(E::custom)
        }
    }
}

/// [`super::Mutation::attrs`]: packed attribute changes.
pub mod attrs {
    use super::*;

    pub fn serialize<S: Serialize + AsRef<str>, W: Serializer>(
        changes: &[AttrChange<S>],
        s: W,
    ) -> Result<W::Ok, W::Error> {
        write(changes, s, |out| pack_attrs(changes, out))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, S: Deserialize<'de>>(d: D) -> Result<Vec<AttrChange<S>>, D::Error> {
        read::<Attrs<S>, D>(d)
    }

    struct Attrs<S>(PhantomData<S>);

    impl<'de, S: Deserialize<'de>> Unpack<'de> for Attrs<S> {
        type Item = AttrChange<S>;
        const EXPECTING: &'static str = "packed attribute changes or a list of them";

        fn borrowed<E: de::Error>(bytes: &'de [u8]) -> Result<Vec<AttrChange<S>>, E> {
            unpack_attrs(bytes, borrowed_str::<S, E>)
        }

        fn copied<E: de::Error>(bytes: &[u8]) -> Result<Vec<AttrChange<S>>, E> {
            unpack_attrs(bytes, |s: &str| S::deserialize(StrDeserializer::<E>::new(s)))
        }
    }
}

/// [`super::Mutation::texts`]: packed text changes.
pub mod texts {
    use super::*;

    pub fn serialize<S: Serialize + AsRef<str>, W: Serializer>(
        changes: &[TextChange<S>],
        s: W,
    ) -> Result<W::Ok, W::Error> {
        write(changes, s, |out| pack_texts(changes, out))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, S: Deserialize<'de>>(d: D) -> Result<Vec<TextChange<S>>, D::Error> {
        read::<Texts<S>, D>(d)
    }

    struct Texts<S>(PhantomData<S>);

    impl<'de, S: Deserialize<'de>> Unpack<'de> for Texts<S> {
        type Item = TextChange<S>;
        const EXPECTING: &'static str = "packed text changes or a list of them";

        fn borrowed<E: de::Error>(bytes: &'de [u8]) -> Result<Vec<TextChange<S>>, E> {
            unpack_texts(bytes, borrowed_str::<S, E>)
        }

        fn copied<E: de::Error>(bytes: &[u8]) -> Result<Vec<TextChange<S>>, E> {
            unpack_texts(bytes, |s: &str| S::deserialize(StrDeserializer::<E>::new(s)))
        }
    }
}
