//! Decoding that leaves the node lists of big mutations undecoded until they are needed.
//!
//! A player seeking through a long session applies most added subtrees only to see a later
//! event remove them again (a list rendered, filtered, rendered again); it never needs their
//! tags, attributes and texts, which are most of a session's bytes and almost all of its
//! decoding (one allocation per string). [`decode_batches_deferring`] decodes a MessagePack
//! array of batches like [`codec::decode_batches`], except that every added subtree of a
//! mutation with many additions keeps only its nodes' ids and parents: its kinds are
//! placeholders ([`NodeKind::Document`], as after `dom::take_kinds`) and [`DeferredNodes`] says
//! where the encoded list is. [`decode_deferred`] fills the kinds in from those bytes when the
//! subtree is applied.
//!
//! Only the envelope is read here (batch, events, the mutation's fields, each node's id and
//! parent); every value is decoded by the same serde code as [`codec::decode_batches`], ids are
//! restored by the same code, and batches are validated by [`codec::validate`]. A batch laid
//! out in any way this reader does not expect (a struct written as a map, a field added by a
//! later version, a truncated value) is decoded by [`codec::decode_batches`]'s decoder instead,
//! so the two accept the same batches and give the same events. The exception: the node kinds of
//! a deferred list (their form, UTF-8, [`Limits`]) are checked only when it is decoded; a list
//! that fails then is left out (its subtree is never built). Reading is iterative and never
//! panics; no list reserves more than its input could hold.

use serde::Deserialize;

use crate::Error;
use crate::batch::{AddedSubtree, Batch, Event, EventData, Mutation, Node, NodeKind, packed};
use crate::codec::{self, Limits};

/// Mutations with at least this many added subtrees have their node lists deferred.
pub const DEFER_MIN_ADDS: usize = 16;

/// Where the encoded node list of one added subtree is: `bytes[start..end]` of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeferredNodes {
    /// Index of the event in its batch.
    pub event: usize,
    /// Index of the subtree in the mutation's additions.
    pub add: usize,
    pub start: usize,
    pub end: usize,
}

/// Decodes a MessagePack array of batches like [`codec::decode_batches`], deferring the node
/// lists of mutations with at least [`DEFER_MIN_ADDS`] additions (see the module docs). Each
/// batch comes with the lists it deferred, in event and subtree order.
pub fn decode_batches_deferring(
    bytes: &[u8],
    limits: &Limits,
    max_total: usize,
) -> Result<Vec<(Batch, Vec<DeferredNodes>)>, Error> {
    if bytes.len() > max_total {
        return Err(Error::TooLarge { size: bytes.len(), limit: max_total });
    }
    let mut cur = bytes;
    let Some(count) = array_len(&mut cur) else {
        return codec::decode_batches(bytes, limits, max_total)
            .map(|b| b.into_iter().map(|b| (b, Vec::new())).collect());
    };
    let mut out = Vec::with_capacity(reserve(count, cur));
    for _ in 0..count {
        let start = offset(bytes, cur);
        let (mut batch, deferred) = match read_batch(bytes, &mut cur) {
            Some(read) => read,
            None => {
                // Anything unexpected: this batch (and where the next one starts) from serde.
                cur = bytes.get(start..).unwrap_or_default();
                (take::<Batch>(&mut cur).map_err(Error::Malformed)?, Vec::new())
            }
        };
        codec::undo_compact(&mut batch);
        codec::validate(&batch, limits)?;
        out.push((batch, deferred));
    }
    if !cur.is_empty() {
        // Trailing bytes: let the reference decoder report them.
        return codec::decode_batches(bytes, limits, max_total)
            .map(|b| b.into_iter().map(|b| (b, Vec::new())).collect());
    }
    Ok(out)
}

/// Decodes a deferred node list from the `bytes` it was deferred from and moves its kinds into
/// `nodes` (the subtree's nodes with placeholder kinds, ids already restored). Returns false,
/// leaving `nodes` empty, when the list does not decode, does not match, or breaks `limits`.
pub fn decode_deferred(bytes: &[u8], at: &DeferredNodes, nodes: &mut Vec<Node>, limits: &Limits) -> bool {
    let full = bytes
        .get(at.start..at.end)
        .and_then(|mut slice| take::<Vec<Node>>(&mut slice).ok().filter(|_| slice.is_empty()));
    match full {
        Some(full) if full.len() == nodes.len() && codec::validate_nodes(&full, limits).is_ok() => {
            for (n, f) in nodes.iter_mut().zip(full) {
                n.kind = f.kind;
            }
            true
        }
        _ => {
            nodes.clear();
            false
        }
    }
}

/// Room to reserve for a list announcing `n` elements with `rest` bytes left: never more than
/// the bytes could hold (each element takes at least one) nor than a few thousand, so that a
/// lying header cannot make the decoder allocate far more than the input (longer lists grow).
fn reserve(n: usize, rest: &[u8]) -> usize {
    n.min(rest.len()).min(4096)
}

fn offset(whole: &[u8], rest: &[u8]) -> usize {
    whole.len() - rest.len()
}

/// One value decoded by serde from the front of `cur`, which moves past it.
fn take<T: for<'de> Deserialize<'de>>(cur: &mut &[u8]) -> Result<T, rmp_serde::decode::Error> {
    T::deserialize(&mut rmp_serde::Deserializer::new(cur))
}

/// A node id: any MessagePack integer that fits a `u32`, as serde reads one.
fn id(cur: &mut &[u8]) -> Option<u32> {
    let (&marker, rest) = cur.split_first()?;
    *cur = rest;
    let value: i128 = match marker {
        0x00..=0x7f => i128::from(marker),
        0xe0..=0xff => return None,
        0xcc => i128::from(read_be::<1>(cur)?),
        0xcd => i128::from(read_be::<2>(cur)?),
        0xce => i128::from(read_be::<4>(cur)?),
        0xcf => i128::from(u64::from_be_bytes(*take_bytes::<8>(cur)?)),
        0xd0 => i128::from(i8::from_be_bytes(*take_bytes::<1>(cur)?)),
        0xd1 => i128::from(i16::from_be_bytes(*take_bytes::<2>(cur)?)),
        0xd2 => i128::from(i32::from_be_bytes(*take_bytes::<4>(cur)?)),
        0xd3 => i128::from(i64::from_be_bytes(*take_bytes::<8>(cur)?)),
        _ => return None,
    };
    u32::try_from(value).ok()
}

fn array_len(cur: &mut &[u8]) -> Option<usize> {
    let (&marker, rest) = cur.split_first()?;
    *cur = rest;
    let n = match marker {
        0x90..=0x9f => u32::from(marker & 0x0f),
        0xdc => read_be::<2>(cur)?,
        0xdd => read_be::<4>(cur)?,
        _ => return None,
    };
    usize::try_from(n).ok()
}

/// The length of the array at the front of `cur`, without moving past its header.
fn peek_array_len(mut cur: &[u8]) -> Option<usize> {
    array_len(&mut cur)
}

/// Reads one batch, or `None` for anything this reader does not expect.
fn read_batch(whole: &[u8], cur: &mut &[u8]) -> Option<(Batch, Vec<DeferredNodes>)> {
    let fields = array_len(cur)?;
    if !(8..=10).contains(&fields) {
        return None;
    }
    let version = take(cur).ok()?;
    let session = take(cur).ok()?;
    let page = take(cur).ok()?;
    let seq = take(cur).ok()?;
    let start = take(cur).ok()?;
    let end = take(cur).ok()?;
    let flags = take(cur).ok()?;
    let count = array_len(cur)?;
    let mut events = Vec::with_capacity(reserve(count, cur));
    let mut deferred = Vec::new();
    for index in 0..count {
        if array_len(cur)? != 2 {
            return None;
        }
        let t = take(cur).ok()?;
        let data = match read_mutation(whole, cur, index, &mut deferred)? {
            Some(m) => EventData::Mutation(m),
            None => take(cur).ok()?,
        };
        events.push(Event { t, data });
    }
    let dropped = if fields > 8 { take(cur).ok()? } else { 0 };
    let recorder_errors = if fields > 9 { take(cur).ok()? } else { 0 };
    let batch = Batch { version, session, page, seq, start, end, flags, events, dropped, recorder_errors };
    Some((batch, deferred))
}

/// Reads a mutation with many additions from the front of `cur`, deferring its node lists;
/// `Some(None)` (cursor unmoved) for any other event, `None` for anything unexpected.
fn read_mutation(
    whole: &[u8],
    cur: &mut &[u8],
    event: usize,
    deferred: &mut Vec<DeferredNodes>,
) -> Option<Option<Mutation>> {
    let mut c = *cur;
    if rmp::decode::read_map_len(&mut c).ok()? != 1 {
        return Some(None);
    }
    let Ok((key, rest)) = rmp::decode::read_str_from_slice(c) else { return Some(None) };
    c = rest;
    if key != "m" || peek_array_len(c)? != 4 {
        return Some(None);
    }
    let mut probe = c;
    array_len(&mut probe)?;
    let _removes: serde::de::IgnoredAny = take(&mut probe).ok()?;
    if peek_array_len(probe)? < DEFER_MIN_ADDS {
        return Some(None);
    }
    array_len(&mut c)?;
    let removes = packed::removes::deserialize(&mut rmp_serde::Deserializer::new(&mut c)).ok()?;
    let count = array_len(&mut c)?;
    let mut adds = Vec::with_capacity(reserve(count, c));
    let first = deferred.len();
    for add in 0..count {
        if array_len(&mut c)? != 3 {
            deferred.truncate(first);
            return None;
        }
        let parent = id(&mut c)?;
        let next = id(&mut c)?;
        let start = offset(whole, c);
        let n = array_len(&mut c)?;
        let mut nodes = Vec::with_capacity(reserve(n, c));
        for _ in 0..n {
            if array_len(&mut c)? != 3 {
                deferred.truncate(first);
                return None;
            }
            let id = id(&mut c)?;
            let parent = self::id(&mut c)?;
            skip_value(&mut c)?;
            nodes.push(Node { id, parent, kind: NodeKind::Document });
        }
        deferred.push(DeferredNodes { event, add, start, end: offset(whole, c) });
        adds.push(AddedSubtree { parent, next, nodes });
    }
    let attrs = packed::attrs::deserialize(&mut rmp_serde::Deserializer::new(&mut c)).ok()?;
    let texts = packed::texts::deserialize(&mut rmp_serde::Deserializer::new(&mut c)).ok()?;
    *cur = c;
    Some(Some(Mutation { removes, adds, attrs, texts }))
}

/// Moves past one MessagePack value (of any nesting, without recursion), checking only its
/// framing: strings are not decoded.
fn skip_value(cur: &mut &[u8]) -> Option<()> {
    let mut pending: usize = 1;
    while pending > 0 {
        pending -= 1;
        let (&marker, rest) = cur.split_first()?;
        *cur = rest;
        // (bytes to skip, values that follow)
        let (skip, values): (usize, usize) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 | 0xca => (4, 0),
            0xcf | 0xd3 | 0xcb => (8, 0),
            0xc4 | 0xd9 => (len(read_be::<1>(cur)?)?, 0),
            0xc5 | 0xda => (len(read_be::<2>(cur)?)?, 0),
            0xc6 | 0xdb => (len(read_be::<4>(cur)?)?, 0),
            0xdc => (0, len(read_be::<2>(cur)?)?),
            0xdd => (0, len(read_be::<4>(cur)?)?),
            0xde => (0, len(read_be::<2>(cur)?)?.checked_mul(2)?),
            0xdf => (0, len(read_be::<4>(cur)?)?.checked_mul(2)?),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xc7 => (len(read_be::<1>(cur)?)?.checked_add(1)?, 0),
            0xc8 => (len(read_be::<2>(cur)?)?.checked_add(1)?, 0),
            0xc9 => (len(read_be::<4>(cur)?)?.checked_add(1)?, 0),
            // 0xc1: never used
            _ => return None,
        };
        *cur = cur.get(skip..)?;
        pending = pending.checked_add(values)?;
        // Every value takes at least one byte: a count beyond the input is a lie.
        if pending > cur.len() {
            return None;
        }
    }
    Some(())
}

fn len(n: u32) -> Option<usize> {
    usize::try_from(n).ok()
}

/// The first `N` bytes of `cur`, which moves past them.
fn take_bytes<'a, const N: usize>(cur: &mut &'a [u8]) -> Option<&'a [u8; N]> {
    let (head, rest) = cur.split_first_chunk::<N>()?;
    *cur = rest;
    Some(head)
}

/// A big-endian unsigned integer of `N` (1, 2 or 4) bytes from the front of `cur`.
fn read_be<const N: usize>(cur: &mut &[u8]) -> Option<u32> {
    let (head, rest) = cur.split_first_chunk::<N>()?;
    *cur = rest;
    Some(head.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{AttrChange, TextChange};
    use crate::codec::{concat_encoded, decode_batches, encode_batch, encode_batch_compact};
    use crate::test_util::{el, text};

    fn row(id: u32, label: &str) -> Vec<Node> {
        vec![
            el(id, 0, "li", &[("class", &format!("row r{id}"))]),
            text(id + 1, id, label),
            Node { id: id + 2, parent: id, kind: NodeKind::Comment("\u{1f600}".into()) },
        ]
    }

    /// A batch with a small and a big mutation (the big one deferred) between other events.
    fn batch(seq: u32, base: u32) -> Batch {
        let mut b = Batch::new("s", "p", seq, 1000);
        let adds = |n: u32, at: u32| -> Vec<AddedSubtree> {
            (0..n).map(|i| AddedSubtree { parent: 3, next: 0, nodes: row(at + 10 * i, "caf\u{e9} \"x\"") }).collect()
        };
        b.events.push(Event { t: 1, data: EventData::Scroll(crate::Scroll { id: 0, x: 1, y: 2 }) });
        b.events
            .push(Event { t: 2, data: EventData::Mutation(Mutation { adds: adds(3, base), ..Mutation::default() }) });
        b.events.push(Event {
            t: 3,
            data: EventData::Mutation(Mutation {
                // Lists long enough to travel packed (`batch::packed`), which this reader
                // reads too.
                removes: vec![base, base + 10, base + 20, base + 30],
                adds: adds(40, base + 1000),
                attrs: (0..4)
                    .map(|i| AttrChange { id: 3 + i, name: "data-x".into(), value: Some("1".into()) })
                    .collect(),
                texts: (0..4).map(|i| TextChange { id: base + 21 + i, text: "t".into() }).collect(),
            }),
        });
        let custom = crate::Custom { name: "n".into(), data: "{}".into() };
        b.events.push(Event { t: 4, data: EventData::Custom(custom) });
        b
    }

    /// The batches with every deferred list decoded (`strict`: each must decode).
    fn materialized(bytes: &[u8], strict: bool) -> Result<Vec<Batch>, Error> {
        let decoded = decode_batches_deferring(bytes, &Limits::default(), usize::MAX)?;
        let mut out = Vec::new();
        for (mut b, lists) in decoded {
            for at in &lists {
                let EventData::Mutation(m) = &mut b.events[at.event].data else { panic!("not a mutation") };
                assert!(m.adds[at.add].nodes.iter().all(|n| n.kind == NodeKind::Document));
                let ok = decode_deferred(bytes, at, &mut m.adds[at.add].nodes, &Limits::default());
                assert!(ok || !strict);
            }
            out.push(b);
        }
        Ok(out)
    }

    #[test]
    fn deferred_lists_decode_to_the_same_batches() {
        let plain = encode_batch(&batch(0, 100)).unwrap_or_default();
        let compact = encode_batch_compact(batch(1, 5000)).unwrap_or_default();
        let bytes = concat_encoded([plain.as_slice(), compact.as_slice()].into_iter());
        let deferred = decode_batches_deferring(&bytes, &Limits::default(), usize::MAX).unwrap_or_default();
        assert_eq!(deferred.iter().map(|(_, l)| l.len()).collect::<Vec<_>>(), vec![40, 40], "the big mutations' lists");
        let expected = decode_batches(&bytes, &Limits::default(), usize::MAX).ok();
        assert!(expected.is_some());
        assert_eq!(materialized(&bytes, true).ok(), expected);
    }

    #[test]
    fn broken_input_is_refused_like_the_reference_decoder_and_never_panics() {
        let compact = encode_batch_compact(batch(0, 5000)).unwrap_or_default();
        let bytes = concat_encoded([compact.as_slice()].into_iter());
        for cut in 0..bytes.len() {
            let part = &bytes[..cut];
            let reference = decode_batches(part, &Limits::default(), usize::MAX);
            assert_eq!(
                decode_batches_deferring(part, &Limits::default(), usize::MAX).is_ok(),
                reference.is_ok(),
                "cut {cut}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0xc0);
        let reference = decode_batches(&extra, &Limits::default(), usize::MAX).map(|b| b.len());
        let deferring = decode_batches_deferring(&extra, &Limits::default(), usize::MAX).map(|b| b.len());
        assert_eq!(deferring.ok(), reference.ok(), "trailing bytes are treated alike");
        let mut flipped = bytes;
        for i in (0..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
            let _ = materialized(&flipped, false);
            flipped[i] ^= 0x5a;
        }
    }

    #[test]
    fn values_are_skipped_whole_and_ids_read_as_serde_reads_them() {
        use std::collections::BTreeMap;
        let mut map = BTreeMap::new();
        map.insert("k".to_string(), vec![vec![1u64, u64::MAX], vec![]]);
        let values: Vec<Vec<u8>> = vec![
            rmp_serde::to_vec(&0u8).unwrap_or_default(),
            rmp_serde::to_vec(&u64::MAX).unwrap_or_default(),
            rmp_serde::to_vec(&i64::MIN).unwrap_or_default(),
            rmp_serde::to_vec(&-200i16).unwrap_or_default(),
            rmp_serde::to_vec(&1.5f32).unwrap_or_default(),
            rmp_serde::to_vec(&2.5f64).unwrap_or_default(),
            rmp_serde::to_vec(&Option::<u8>::None).unwrap_or_default(),
            rmp_serde::to_vec(&true).unwrap_or_default(),
            rmp_serde::to_vec("").unwrap_or_default(),
            rmp_serde::to_vec(&"x".repeat(40)).unwrap_or_default(),
            rmp_serde::to_vec(&"y".repeat(300)).unwrap_or_default(),
            rmp_serde::to_vec(&"z".repeat(70_000)).unwrap_or_default(),
            rmp_serde::to_vec(&vec![7u32; 20]).unwrap_or_default(),
            rmp_serde::to_vec(&vec![(); 70_000]).unwrap_or_default(),
            rmp_serde::to_vec(&map).unwrap_or_default(),
            vec![0xc4, 2, 9, 9],
            vec![0xd6, 1, 0, 0, 0, 0],
        ];
        for v in &values {
            let mut cur = v.as_slice();
            assert_eq!(skip_value(&mut cur), Some(()), "{:x?}", &v[..v.len().min(8)]);
            assert!(cur.is_empty());
            assert_eq!(skip_value(&mut &v[..v.len() - 1]), None, "truncated");
            let serde = rmp_serde::from_slice::<u32>(v).ok();
            assert_eq!(id(&mut v.as_slice()), serde, "{:x?}", &v[..v.len().min(8)]);
        }
        for n in [0u64, 127, 128, 255, 256, 65_535, 65_536, u64::from(u32::MAX), u64::from(u32::MAX) + 1] {
            let v = rmp_serde::to_vec(&n).unwrap_or_default();
            assert_eq!(id(&mut v.as_slice()), u32::try_from(n).ok());
        }
        for n in [-1i64, -33, -129, -40_000] {
            let v = rmp_serde::to_vec(&n).unwrap_or_default();
            assert_eq!(id(&mut v.as_slice()), None);
        }
        assert_eq!(skip_value(&mut &[0xc1][..]), None);
        assert_eq!(skip_value(&mut &[0xdd, 0xff, 0xff, 0xff, 0xff][..]), None, "a count beyond the input");
    }

    #[test]
    fn a_list_that_fails_later_is_left_out() {
        let bytes = concat_encoded([encode_batch(&batch(0, 100)).unwrap_or_default().as_slice()].into_iter());
        let decoded = decode_batches_deferring(&bytes, &Limits::default(), usize::MAX).unwrap_or_default();
        let (b, lists) = &decoded[0];
        let EventData::Mutation(m) = &b.events[lists[0].event].data else { panic!("not a mutation") };
        let mut nodes = m.adds[0].nodes.clone();
        let tight = Limits { max_string: 2, ..Limits::default() };
        assert!(!decode_deferred(&bytes, &lists[0], &mut nodes, &tight));
        assert!(nodes.is_empty());
    }
}
