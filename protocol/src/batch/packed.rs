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
//! - removals: per id, its zigzag varint as an `i32` (no differences here: the compact coding
//!   of [`crate::codec::encode_batch_compact`] already codes them across the batch);
//! - attribute changes: `uvarint n`, `n` id deltas, `uvarint t`, `t` names (`uvarint len`,
//!   UTF-8 bytes), `n` name indexes (`uvarint`, each `< t`), `n` values (`uvarint 0` for a
//!   removal, else `uvarint len + 1` and the UTF-8 bytes);
//! - text changes: `uvarint n`, `n` id deltas, `n` texts (`uvarint len`, UTF-8 bytes).
//!
//! A list of fewer than [`PACK_MIN`] changes travels as the plain array of arrays protocol v1
//! sent (an empty list is one byte, and for a change or two the array is smaller once
//! gzipped: measured on the benchmark's form page). Readers accept either form for every
//! list (so stored v1 sessions still replay), and human-readable formats (the JSON API) keep
//! the plain lists.
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

/// Lists with fewer changes than this travel as plain arrays.
pub const PACK_MIN: usize = 4;

/// Longest attribute name a packed list's name table holds, in bytes.
///
/// A packed change names its attribute by an index into the table (one byte or two), and
/// decoding copies the name into every change: without this bound, one long name referenced by
/// millions of 3-byte changes would make a small hostile body decode into terabytes. With it, a
/// name costs a decoder at most about ten times the bytes that named it, about what a v1 array
/// change of a one-letter name cost. Attribute lists with a longer name (rare: `data-` names of
/// generated code) travel as the plain list, where every change carries its name.
pub const MAX_PACKED_NAME: usize = 32;

/// Most distinct names a packed list's name table holds (a mutation has a handful; the writer
/// finds each by a linear search). Lists with more travel as the plain list.
pub const MAX_PACKED_NAMES: usize = 64;

/// Whether an attribute-change list travels packed: at least [`PACK_MIN`] changes, every name
/// at most [`MAX_PACKED_NAME`] bytes and at most [`MAX_PACKED_NAMES`] distinct names. Both
/// writers (serde's and `crate::pack`'s) ask this, so they stay byte-identical.
pub(crate) fn attrs_packable<S: AsRef<str>>(changes: &[AttrChange<S>]) -> bool {
    if changes.len() < PACK_MIN {
        return false;
    }
    let mut names: Vec<&str> = Vec::new();
    for c in changes {
        let name = c.name.as_ref();
        if name.len() > MAX_PACKED_NAME {
            return false;
        }
        if !names.contains(&name) {
            if names.len() == MAX_PACKED_NAMES {
                return false;
            }
            names.push(name);
        }
    }
    true
}

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
        put_uvarint(out, u64::from(zigzag(id.wrapping_sub(prev))));
        prev = id;
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, plus: u64) {
    put_uvarint(out, s.len() as u64 + plus);
    out.extend_from_slice(s.as_bytes());
}

/// The content of a packed removal list's `bin`.
pub(crate) fn pack_removes(ids: &[NodeId], out: &mut Vec<u8>) {
    for &id in ids {
        put_uvarint(out, u64::from(zigzag(id)));
    }
}

/// An id read as an `i32`, zigzagged: the wrapping differences of the compact coding
/// ([`crate::codec::encode_batch_compact`]), negative ones included, stay short.
fn zigzag(id: NodeId) -> u32 {
    let d = id as i32;
    ((d << 1) ^ (d >> 31)) as u32
}

fn unzigzag(z: u32) -> NodeId {
    (((z >> 1) as i32) ^ -((z & 1) as i32)) as u32
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

    fn id(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.uvarint()?).map_err(|_| "packed node id out of range")
    }

    fn ids(&mut self, n: usize) -> Result<Vec<NodeId>, &'static str> {
        let mut ids = Vec::with_capacity(n.min(self.bytes.len()));
        let mut prev = 0u32;
        for _ in 0..n {
            prev = prev.wrapping_add(unzigzag(self.id()?));
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
    while !r.bytes.is_empty() {
        ids.push(unzigzag(r.id()?));
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
    if t > MAX_PACKED_NAMES {
        return Err(fail("packed attribute name table too long"));
    }
    let mut names = Vec::with_capacity(t);
    for _ in 0..t {
        let name = r.str().map_err(fail)?;
        if name.len() > MAX_PACKED_NAME {
            return Err(fail("packed attribute name too long"));
        }
        names.push(name);
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

/// Writes a list packed as one `bin`; a short list, and any list in a human-readable format, as
/// the plain list.
fn write<T: Serialize, W: Serializer>(
    items: &[T],
    s: W,
    packable: bool,
    pack: impl FnOnce(&mut Vec<u8>),
) -> Result<W::Ok, W::Error> {
    if s.is_human_readable() || !packable {
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
        write(ids, s, ids.len() >= PACK_MIN, |out| pack_removes(ids, out))
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
        write(changes, s, attrs_packable(changes), |out| pack_attrs(changes, out))
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
        write(changes, s, changes.len() >= PACK_MIN, |out| pack_texts(changes, out))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{AddedSubtree, Batch, Event, EventData, Mutation};
    use crate::codec::{Limits, decode_batch, decode_batch_borrowed, encode_batch, encode_batch_compact};
    use proptest::prelude::*;

    type E = serde::de::value::Error;

    fn attr(id: u32, name: &str, value: Option<&str>) -> AttrChange {
        AttrChange { id, name: name.into(), value: value.map(Into::into) }
    }

    fn text(id: u32, text: &str) -> TextChange {
        TextChange { id, text: text.into() }
    }

    /// One tick of the benchmark's churn page: 100 value texts walked in steps of 6 ids, 50
    /// tiles' status and bar width.
    fn churn_tick() -> Mutation {
        Mutation {
            removes: vec![610],
            adds: vec![],
            attrs: (0..50u32)
                .flat_map(|i| {
                    let tile = 25 + 12 * i;
                    [attr(tile, "style", Some("width: 42%;")), attr(tile + 1, "data-status", Some("ok"))]
                })
                .collect(),
            texts: (0..100u32).map(|i| text(29 + 6 * i, &format!("{}.{}", 1000 + i * 37, i % 10))).collect(),
        }
    }

    fn owned(s: &str) -> Result<String, E> {
        Ok(s.to_owned())
    }

    #[test]
    fn packed_lists_come_back_equal_borrowed_or_owned() {
        let m = Mutation {
            removes: vec![5, 4, u32::MAX, 0, 1 << 31, 7],
            attrs: vec![
                attr(9, "class", Some("a b")),
                attr(3, "hidden", None),
                attr(u32::MAX, "class", Some("")),
                attr(4, "\u{e9}", Some("\u{1F600}")),
            ],
            texts: vec![text(1, ""), text(70_000, "caf\u{e9} \u{1F600}"), text(2, "x"), text(0, "y")],
            ..Mutation::default()
        };
        let mut out = Vec::new();
        pack_removes(&m.removes, &mut out);
        assert_eq!(unpack_removes(&out), Ok(m.removes.clone()));
        out.clear();
        pack_attrs(&m.attrs, &mut out);
        assert_eq!(unpack_attrs(&out, owned), Ok(m.attrs.clone()));
        let borrowed: Vec<AttrChange<&str>> = unpack_attrs(&out, Ok::<&str, E>).expect("borrowed");
        assert_eq!(borrowed[0].value, Some("a b"));
        out.clear();
        pack_texts(&m.texts, &mut out);
        assert_eq!(unpack_texts(&out, owned), Ok(m.texts.clone()));
        // Through the whole batch, plain and compact, owned and borrowed.
        let mut b = Batch::new("s", "p", 0, 1_700_000_040_000);
        b.events.push(Event { t: 0, data: EventData::Mutation(m.clone()) });
        let bytes = encode_batch(&b).expect("encode");
        for list in [&out[..], &b"\x0a\x08\x01"[..]] {
            assert!(bytes.windows(list.len()).any(|w| w == list), "packed");
        }
        for bytes in [encode_batch(&b).expect("encode"), encode_batch_compact(b.clone()).expect("encode")] {
            assert_eq!(decode_batch(&bytes, &Limits::default()).expect("decode"), b);
            let borrowed = decode_batch_borrowed(&bytes, &Limits::default()).expect("decode");
            assert_eq!(rmp_serde::to_vec(&borrowed).expect("encode"), encode_batch(&b).expect("encode"));
        }
    }

    #[test]
    fn a_busy_tick_packs_to_a_fraction_of_its_v1_size() {
        let m = churn_tick();
        let packed = rmp_serde::to_vec(&m).expect("encode");
        let v1 = v1_mutation(&m);
        // Ids, array headers and repeated names were most of it.
        assert!(packed.len() * 10 < v1.len() * 7, "{} packed vs {} in v1", packed.len(), v1.len());
        // Names travel once per mutation.
        assert_eq!(packed.windows(11).filter(|w| *w == b"data-status").count(), 1);
        // Ids walked in equal steps are one repeated byte.
        let mut ids = Vec::new();
        put_ids(&mut ids, m.texts.iter().map(|t| t.id));
        assert!(ids[1..].iter().all(|&b| b == 12), "{ids:?}");
    }

    #[test]
    fn json_keeps_the_plain_lists() {
        let m = Mutation { removes: vec![3], attrs: vec![attr(1, "a", None)], texts: vec![text(2, "t")], adds: vec![] };
        let json = serde_json::to_string(&m).expect("json");
        assert_eq!(
            json,
            r#"{"removes":[3],"adds":[],"attrs":[{"id":1,"name":"a","value":null}],"texts":[{"id":2,"text":"t"}]}"#
        );
        assert_eq!(serde_json::from_str::<Mutation>(&json).expect("back"), m);
    }

    #[test]
    fn short_lists_travel_as_plain_arrays() {
        let bytes = rmp_serde::to_vec(&Mutation::<String>::default()).expect("encode");
        assert_eq!(bytes, [0x94, 0x90, 0x90, 0x90, 0x90]);
        assert_eq!(rmp_serde::from_slice::<Mutation>(&bytes).expect("decode"), Mutation::default());
        let m = Mutation {
            removes: vec![1, 2, 3],
            attrs: vec![attr(4, "a", None)],
            texts: vec![text(5, "t"), text(6, "u")],
            ..Mutation::default()
        };
        let bytes = rmp_serde::to_vec(&m).expect("encode");
        assert_eq!(bytes, v1_mutation(&m));
        assert_eq!(rmp_serde::from_slice::<Mutation>(&bytes).expect("decode"), m);
    }

    #[test]
    fn broken_packed_lists_are_refused() {
        assert_eq!(unpack_removes(&[]), Ok(vec![]));
        assert_eq!(unpack_removes(&[2, 1, 0x81, 0x01]), Ok(vec![1, u32::MAX, 0xffff_ffbf]));
        assert!(unpack_removes(&[0x80]).is_err(), "a varint cut short");
        assert!(unpack_removes(&[0xff; 11]).is_err(), "a varint longer than 10 bytes");
        assert!(unpack_removes(&[0x80, 0x80, 0x80, 0x80, 0x10]).is_err(), "beyond u32");
        let texts = |b: &[u8]| unpack_texts(b, owned);
        assert_eq!(texts(&[1, 4, 2, b'h', b'i']), Ok(vec![text(2, "hi")]));
        assert!(texts(&[]).is_err(), "no count");
        assert!(texts(&[200, 1]).is_err(), "a count beyond the input");
        assert!(texts(&[1, 4, 3, b'h', b'i']).is_err(), "a text cut short");
        assert!(texts(&[1, 4, 1, 0xff]).is_err(), "a text that is not UTF-8");
        assert!(texts(&[1, 4, 0, 0]).is_err(), "trailing bytes");
        let attrs = |b: &[u8]| unpack_attrs(b, owned);
        // One change of node 1: name table ["a"], index 0, value "b".
        assert_eq!(attrs(&[1, 2, 1, 1, b'a', 0, 2, b'b']), Ok(vec![attr(1, "a", Some("b"))]));
        assert_eq!(attrs(&[1, 2, 1, 1, b'a', 0, 0]), Ok(vec![attr(1, "a", None)]));
        assert!(attrs(&[1, 2, 1, 1, b'a', 1, 0]).is_err(), "a name index out of range");
        assert!(attrs(&[1, 2, 0, 0, 0]).is_err(), "no name table");
        assert!(attrs(&[1, 2, 9, 1, b'a', 0, 0]).is_err(), "a name table beyond the input");
        assert!(attrs(&[1, 2, 1, 1, b'a', 0, 5, b'b']).is_err(), "a value cut short");
    }

    #[test]
    fn a_name_table_cannot_make_decoding_copy_more_than_a_bounded_share() {
        // A hostile list: one long name referenced by many 3-byte changes would be copied into
        // every change. The reader refuses names over the bound and over-long tables.
        let long = "n".repeat(MAX_PACKED_NAME + 1);
        let n = 10_000usize;
        let mut bytes = Vec::new();
        put_uvarint(&mut bytes, n as u64);
        bytes.extend(std::iter::repeat_n(2u8, n));
        put_uvarint(&mut bytes, 1);
        put_str(&mut bytes, &long, 0);
        bytes.extend(std::iter::repeat_n(0u8, 2 * n));
        assert_eq!(
            unpack_attrs(&bytes, owned).map_err(|e| e.to_string()),
            Err("packed attribute name too long".to_owned())
        );
        let mut table = Vec::new();
        put_uvarint(&mut table, 1);
        table.push(2);
        put_uvarint(&mut table, MAX_PACKED_NAMES as u64 + 1);
        for i in 0..=MAX_PACKED_NAMES {
            put_str(&mut table, &format!("a{i}"), 0);
        }
        table.extend([0, 0]);
        assert!(unpack_attrs(&table, owned).is_err(), "a name table over its bound");

        // The writers keep such lists plain, so every change carries its own name.
        let m = Mutation { attrs: (1..=8).map(|id| attr(id, &long, Some("v"))).collect(), ..Mutation::default() };
        let plain = rmp_serde::to_vec(&m).expect("encode");
        assert_eq!(plain, v1_mutation(&m));
        assert_eq!(rmp_serde::from_slice::<Mutation>(&plain).expect("decode"), m);
        let many = Mutation {
            attrs: (0..=MAX_PACKED_NAMES as u32).map(|i| attr(i + 1, &format!("data-{i}"), None)).collect(),
            ..Mutation::default()
        };
        assert_eq!(rmp_serde::to_vec(&many).expect("encode"), v1_mutation(&many));
        let mut fits = many.clone();
        fits.attrs.pop();
        assert_ne!(rmp_serde::to_vec(&fits).expect("encode"), v1_mutation(&fits), "at the bound: packed");
        let mut hand = Vec::new();
        crate::pack::event_data(&mut hand, &crate::EventData::Mutation(many.clone()));
        let serde_bytes = rmp_serde::to_vec(&crate::EventData::Mutation(many)).expect("encode");
        assert_eq!(hand, serde_bytes, "the hand writer decides as serde's does");
    }

    /// A mutation as protocol v1 wrote it: every change an array.
    fn v1_mutation(m: &Mutation) -> Vec<u8> {
        let mut o = Vec::new();
        rmp::encode::write_array_len(&mut o, 4).expect("write");
        rmp::encode::write_array_len(&mut o, m.removes.len() as u32).expect("write");
        for r in &m.removes {
            rmp::encode::write_uint(&mut o, u64::from(*r)).expect("write");
        }
        rmp::encode::write_array_len(&mut o, m.adds.len() as u32).expect("write");
        for AddedSubtree { parent, next, nodes } in &m.adds {
            rmp::encode::write_array_len(&mut o, 3).expect("write");
            rmp::encode::write_uint(&mut o, u64::from(*parent)).expect("write");
            rmp::encode::write_uint(&mut o, u64::from(*next)).expect("write");
            o.extend(rmp_serde::to_vec(nodes).expect("encode"));
        }
        rmp::encode::write_array_len(&mut o, m.attrs.len() as u32).expect("write");
        for a in &m.attrs {
            rmp::encode::write_array_len(&mut o, 3).expect("write");
            rmp::encode::write_uint(&mut o, u64::from(a.id)).expect("write");
            rmp::encode::write_str(&mut o, &a.name).expect("write");
            match &a.value {
                Some(v) => rmp::encode::write_str(&mut o, v).expect("write"),
                None => rmp::encode::write_nil(&mut o).expect("write"),
            }
        }
        rmp::encode::write_array_len(&mut o, m.texts.len() as u32).expect("write");
        for t in &m.texts {
            rmp::encode::write_array_len(&mut o, 2).expect("write");
            rmp::encode::write_uint(&mut o, u64::from(t.id)).expect("write");
            rmp::encode::write_str(&mut o, &t.text).expect("write");
        }
        o
    }

    #[test]
    fn v1_batches_as_stored_still_decode() {
        // A v1 batch as recorders sent it: delta-coded ids (flag 4), removals as differences
        // from the previous removal across the batch, every change an array.
        let first =
            Mutation { removes: vec![40, 30], attrs: vec![attr(7, "class", Some("on"))], ..Mutation::default() };
        let second = Mutation { removes: vec![35], texts: vec![text(8, "12.5"), text(14, "3")], ..Mutation::default() };
        let coded = |m: &Mutation, removes: Vec<u32>| v1_mutation(&Mutation { removes, ..m.clone() });
        let mut o = Vec::new();
        rmp::encode::write_array_len(&mut o, 10).expect("write");
        rmp::encode::write_uint(&mut o, 1).expect("write");
        rmp::encode::write_str(&mut o, "s1").expect("write");
        rmp::encode::write_str(&mut o, "p1").expect("write");
        rmp::encode::write_uint(&mut o, 3).expect("write");
        rmp::encode::write_uint(&mut o, 1_700_000_040_000).expect("write");
        rmp::encode::write_uint(&mut o, 1_700_000_040_020).expect("write");
        rmp::encode::write_uint(&mut o, u64::from(Batch::FLAG_DELTA_IDS)).expect("write");
        rmp::encode::write_array_len(&mut o, 2).expect("write");
        for (t, m) in [(0u32, coded(&first, vec![40, (-10i32) as u32])), (20, coded(&second, vec![5]))] {
            rmp::encode::write_array_len(&mut o, 2).expect("write");
            rmp::encode::write_uint(&mut o, u64::from(t)).expect("write");
            rmp::encode::write_map_len(&mut o, 1).expect("write");
            rmp::encode::write_str(&mut o, "m").expect("write");
            o.extend(m);
        }
        rmp::encode::write_uint(&mut o, 0).expect("write");
        rmp::encode::write_uint(&mut o, 0).expect("write");
        let mut want = Batch::new("s1", "p1", 3, 1_700_000_040_000);
        want.version = 1;
        want.end = want.start + 20;
        want.events.push(Event { t: 0, data: EventData::Mutation(first) });
        want.events.push(Event { t: 20, data: EventData::Mutation(second) });
        assert_eq!(decode_batch(&o, &Limits::default()).expect("decode"), want);
        let borrowed = decode_batch_borrowed(&o, &Limits::default()).expect("decode");
        assert_eq!(rmp_serde::to_vec(&borrowed).expect("encode"), encode_batch(&want).expect("encode"));
        let list = crate::codec::concat_encoded([&o[..]].into_iter());
        let deferred =
            crate::deferred::decode_batches_deferring(&list, &Limits::default(), usize::MAX).expect("decode");
        assert_eq!(deferred[0].0, want);
        // Versions beyond this build's are refused.
        o[1] = crate::PROTOCOL_VERSION as u8 + 1;
        assert!(matches!(decode_batch(&o, &Limits::default()), Err(crate::Error::UnsupportedVersion(_))));
    }

    proptest! {
        #[test]
        fn hostile_packed_lists_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = unpack_removes(&bytes);
            let _ = unpack_attrs(&bytes, owned);
            let _ = unpack_texts(&bytes, owned);
            let _ = unpack_attrs(&bytes, Ok::<&str, E>);
        }

        #[test]
        fn any_change_lists_round_trip(
            removes in proptest::collection::vec(any::<u32>(), 0..6),
            attrs in proptest::collection::vec((any::<u32>(), "[a-c]{0,3}", proptest::option::of("[a-z\u{e9}]{0,5}")), 0..6),
            texts in proptest::collection::vec((any::<u32>(), "[ -~\u{1F600}]{0,8}"), 0..6),
        ) {
            let m = Mutation {
                removes,
                adds: vec![],
                attrs: attrs.into_iter().map(|(id, name, value)| AttrChange { id, name, value }).collect(),
                texts: texts.into_iter().map(|(id, text)| TextChange { id, text }).collect(),
            };
            let bytes = rmp_serde::to_vec(&m).expect("encode");
            prop_assert_eq!(rmp_serde::from_slice::<Mutation>(&bytes).expect("decode"), m.clone());
            let borrowed: Mutation<&str> = rmp_serde::from_slice(&bytes).expect("decode borrowed");
            prop_assert_eq!(rmp_serde::to_vec(&borrowed).expect("encode"), bytes);
            // And the v1 form of the same changes.
            prop_assert_eq!(rmp_serde::from_slice::<Mutation>(&v1_mutation(&m)).expect("decode v1"), m);
        }
    }
}
