//! Compact MessagePack encoding of batches and a decoder that enforces caps.
//!
//! Decoding order: the byte cap is checked before any parsing (so the memory a hostile body can
//! make us allocate is proportional to its capped size), then the bytes are parsed, then every
//! count and string length is checked against [`Limits`]. The decoder never panics.

use crate::Error;
use crate::batch::{AppFact, Batch, CssOp, EventData, Freeze, Mutation, Node, NodeKind, ScriptTiming};

/// Caps applied when decoding untrusted batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded (decompressed) batch, in bytes.
    pub max_bytes: usize,
    /// Most events in one batch.
    pub max_events: usize,
    /// Most nodes in one batch (snapshots plus added subtrees).
    pub max_nodes: usize,
    /// Longest string (text, attribute value, URL, ...), in bytes.
    pub max_string: usize,
    /// Most attributes on one element.
    pub max_attrs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 32 * 1024 * 1024,
            max_events: 200_000,
            max_nodes: 2_000_000,
            max_string: 4 * 1024 * 1024,
            max_attrs: 1_024,
        }
    }
}

/// Encodes a batch as compact MessagePack (structs as arrays): the bytes of its `serde` form
/// through `rmp-serde`, written by hand ([`crate::pack`]: a fraction of the code in the
/// recorder's wasm). Never fails; the `Result` is kept for callers.
pub fn encode_batch(batch: &Batch) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    crate::pack::batch(&mut out, batch);
    Ok(out)
}

/// Encodes a batch like [`encode_batch`], with node ids delta-coded and
/// [`Batch::FLAG_DELTA_IDS`] set: what the recorder sends.
///
/// Node ids are handed out in document order, so most ids are the previous id plus one and
/// most parents are a few nodes back; as absolute numbers they were 70% of a products page's
/// gzipped batches (every id a distinct 3- or 5-byte integer that gzip cannot predict). Coded:
/// in snapshot and added-subtree node lists, in order across the whole batch, `id` is the
/// difference from the previous node's id and `parent` the difference back from the node's own
/// id; an added subtree's `parent` and `next` are differences back from its first node's id
/// (the previous node's id when it has none); removals are differences from the previous
/// removal. All differences wrap (u32), so every batch round-trips exactly. The decoders
/// ([`decode_batch`], [`decode_batches`]) undo this before validating, so nothing downstream
/// ever sees coded ids.
pub fn encode_batch_compact(mut batch: Batch) -> Result<Vec<u8>, Error> {
    code_ids(&mut batch, true);
    batch.flags |= Batch::FLAG_DELTA_IDS;
    encode_batch(&batch)
}

/// Applies (`encode`) or undoes the delta coding of [`encode_batch_compact`].
fn code_ids<S>(batch: &mut Batch<S>, encode: bool) {
    let mut prev = 0u32;
    let mut prev_removed = 0u32;
    let code_nodes = |nodes: &mut [Node<S>], prev: &mut u32| {
        for n in nodes {
            let id = if encode { n.id } else { prev.wrapping_add(n.id) };
            n.parent = id.wrapping_sub(n.parent);
            n.id = if encode { id.wrapping_sub(*prev) } else { id };
            *prev = id;
        }
    };
    for e in &mut batch.events {
        match &mut e.data {
            EventData::Snapshot(s) => code_nodes(&mut s.nodes, &mut prev),
            EventData::Mutation(Mutation { removes, adds, .. }) => {
                for r in removes.iter_mut() {
                    let id = if encode { *r } else { prev_removed.wrapping_add(*r) };
                    *r = if encode { id.wrapping_sub(prev_removed) } else { id };
                    prev_removed = id;
                }
                for add in adds.iter_mut() {
                    // The first node's id comes first when decoding: code the nodes before the
                    // subtree's own fields when encoding and after when decoding.
                    let base = |nodes: &[Node<S>], prev: u32| nodes.first().map_or(prev, |n| n.id);
                    if encode {
                        let b = base(&add.nodes, prev);
                        add.parent = b.wrapping_sub(add.parent);
                        add.next = b.wrapping_sub(add.next);
                        code_nodes(&mut add.nodes, &mut prev);
                    } else {
                        let before = prev;
                        code_nodes(&mut add.nodes, &mut prev);
                        let b = base(&add.nodes, before);
                        add.parent = b.wrapping_sub(add.parent);
                        add.next = b.wrapping_sub(add.next);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The bytes [`batch_times_at`] names: `start`, then `end`, each a MessagePack `uint 64` (its
/// tag `0xcf` and 8 bytes, big-endian).
pub const BATCH_TIMES_LEN: usize = 18;

/// Where the encoded form of `batch` ([`encode_batch`], [`encode_batch_compact`]) holds its
/// `start` and `end`, when both take 8 bytes (every time after 1970-02-19 does, as epoch
/// milliseconds): then [`set_batch_times`] moves the encoded batch in time without encoding it
/// again. The freeze watchdog's heartbeat moves its marker that way while what the marker says
/// is unchanged, in wasm and in the upload worker (recorder/js/upload-worker.js writes the same
/// bytes).
pub fn batch_times_at<S: AsRef<str>>(batch: &Batch<S>) -> Option<usize> {
    let wide = |ms: u64| ms > u64::from(u32::MAX);
    (wide(batch.start) && wide(batch.end)).then(|| crate::pack::start_offset(batch))
}

/// Sets both `start` and `end` of an encoded batch to `ms`, at the offset [`batch_times_at`]
/// gave: for a batch whose end is its start (its events all at offset 0). False, and nothing
/// written, when the bytes there are not two 8-byte integers or `ms` would not take 8 bytes.
pub fn set_batch_times(bytes: &mut [u8], at: usize, ms: u64) -> bool {
    if ms <= u64::from(u32::MAX) {
        return false;
    }
    let Some(field) = at.checked_add(BATCH_TIMES_LEN).and_then(|end| bytes.get_mut(at..end)) else {
        return false;
    };
    if field[0] != 0xcf || field[9] != 0xcf {
        return false;
    }
    let be = ms.to_be_bytes();
    field[1..9].copy_from_slice(&be);
    field[10..18].copy_from_slice(&be);
    true
}

/// Restores plain ids in a batch sent by [`encode_batch_compact`].
pub(crate) fn undo_compact<S>(batch: &mut Batch<S>) {
    if batch.flags & Batch::FLAG_DELTA_IDS != 0 {
        code_ids(batch, false);
        batch.flags &= !Batch::FLAG_DELTA_IDS;
    }
}

/// Exact encoded size of one event (what [`encode_batch`] writes for it).
pub fn encoded_len(data: &EventData) -> usize {
    let mut out = Vec::new();
    crate::pack::event_data(&mut out, data);
    out.len()
}

/// Decodes and validates one batch.
pub fn decode_batch(bytes: &[u8], limits: &Limits) -> Result<Batch, Error> {
    if bytes.len() > limits.max_bytes {
        return Err(Error::TooLarge { size: bytes.len(), limit: limits.max_bytes });
    }
    let scope = crate::budget::Scope::new(limits.max_events, limits.max_nodes);
    let mut batch: Batch = rmp_serde::from_slice(bytes).map_err(|e| scope.exceeded().unwrap_or(Error::Malformed(e)))?;
    undo_compact(&mut batch);
    validate(&batch, limits)?;
    Ok(batch)
}

/// Decodes and validates one batch like [`decode_batch`], borrowing every string from `bytes`
/// instead of allocating it: what the server needs to check a batch and summarise it for the
/// session index, at a fraction of the allocations. Accepts and refuses exactly the same
/// inputs as [`decode_batch`] (same types, same rules, same [`Limits`]).
pub fn decode_batch_borrowed<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Batch<&'a str>, Error> {
    if bytes.len() > limits.max_bytes {
        return Err(Error::TooLarge { size: bytes.len(), limit: limits.max_bytes });
    }
    let scope = crate::budget::Scope::new(limits.max_events, limits.max_nodes);
    let mut batch: Batch<&'a str> =
        rmp_serde::from_slice(bytes).map_err(|e| scope.exceeded().unwrap_or(Error::Malformed(e)))?;
    undo_compact(&mut batch);
    validate(&batch, limits)?;
    Ok(batch)
}

/// Encodes already-encoded batches as one MessagePack array, without re-encoding them.
pub fn concat_encoded<'a>(batches: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let len = u32::try_from(batches.len()).unwrap_or(u32::MAX);
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_array_len(&mut out, len);
    for b in batches {
        out.extend_from_slice(b);
    }
    out
}

/// Decodes a MessagePack array of batches (as produced by [`concat_encoded`]); each batch is
/// validated against `limits`, and the whole input is capped at `max_total` bytes.
pub fn decode_batches(bytes: &[u8], limits: &Limits, max_total: usize) -> Result<Vec<Batch>, Error> {
    if bytes.len() > max_total {
        return Err(Error::TooLarge { size: bytes.len(), limit: max_total });
    }
    let scope = crate::budget::Scope::new(limits.max_events, limits.max_nodes);
    let mut batches: Vec<Batch> =
        rmp_serde::from_slice(bytes).map_err(|e| scope.exceeded().unwrap_or(Error::Malformed(e)))?;
    for b in &mut batches {
        undo_compact(b);
        validate(b, limits)?;
    }
    Ok(batches)
}

/// True for a valid session or page id: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Deepest CSS rule path (nesting of grouping rules).
const MAX_PATH: usize = 32;

fn check_scripts<S: AsRef<str>>(scripts: &[ScriptTiming<S>], limits: &Limits) -> Result<(), Error> {
    check("scripts", scripts.len(), limits.max_attrs)?;
    for t in scripts {
        for v in [&t.invoker, &t.invoker_type, &t.source_url, &t.function] {
            check("script attribution", v.as_ref().len(), limits.max_string)?;
        }
    }
    Ok(())
}

fn check(what: &'static str, actual: usize, limit: usize) -> Result<(), Error> {
    if actual > limit { Err(Error::LimitExceeded { what, actual, limit }) } else { Ok(()) }
}

/// Checks the nodes of one list (a snapshot's, an added subtree's) against the rules and the
/// limits; [`validate`] also caps their number per batch.
pub(crate) fn validate_nodes<S: AsRef<str>>(list: &[Node<S>], limits: &Limits) -> Result<(), Error> {
    let s = |what, v: &S| check(what, v.as_ref().len(), limits.max_string);
    for n in list {
        if n.id == 0 {
            return Err(Error::Invalid("node id 0 is reserved"));
        }
        match &n.kind {
            NodeKind::Element { tag, attrs, .. } => {
                s("tag name", tag)?;
                check("attributes", attrs.len(), limits.max_attrs)?;
                for a in attrs {
                    s("attribute name", &a.name)?;
                    s("attribute value", &a.value)?;
                }
            }
            NodeKind::Text(t) | NodeKind::Comment(t) => s("text", t)?,
            NodeKind::Doctype { name, public_id, system_id } => {
                s("doctype", name)?;
                s("doctype", public_id)?;
                s("doctype", system_id)?;
            }
            NodeKind::Document | NodeKind::ShadowRoot => {}
        }
    }
    Ok(())
}

/// Checks a decoded batch (owned or borrowed) against the structural rules and the limits.
pub fn validate<S: AsRef<str>>(batch: &Batch<S>, limits: &Limits) -> Result<(), Error> {
    if !(crate::OLDEST_PROTOCOL_VERSION..=crate::PROTOCOL_VERSION).contains(&batch.version) {
        return Err(Error::UnsupportedVersion(batch.version));
    }
    if !is_valid_id(batch.session.as_ref()) {
        return Err(Error::Invalid("session id must be 1 to 64 of [A-Za-z0-9_-]"));
    }
    if !is_valid_id(batch.page.as_ref()) {
        return Err(Error::Invalid("page id must be 1 to 64 of [A-Za-z0-9_-]"));
    }
    if batch.end < batch.start {
        return Err(Error::Invalid("batch ends before it starts"));
    }
    check("events", batch.events.len(), limits.max_events)?;
    let mut nodes = 0usize;
    let s = |what, v: &S| check(what, v.as_ref().len(), limits.max_string);
    let check_nodes = |list: &[Node<S>], nodes: &mut usize| -> Result<(), Error> {
        *nodes += list.len();
        check("nodes", *nodes, limits.max_nodes)?;
        validate_nodes(list, limits)
    };
    for e in &batch.events {
        match &e.data {
            EventData::Meta(m) => {
                s("url", &m.url)?;
                s("title", &m.title)?;
                s("user agent", &m.user_agent)?;
                s("referrer", &m.referrer)?;
            }
            EventData::Snapshot(snap) => check_nodes(&snap.nodes, &mut nodes)?,
            EventData::Mutation(m) => {
                for add in &m.adds {
                    check_nodes(&add.nodes, &mut nodes)?;
                }
                for a in &m.attrs {
                    s("attribute name", &a.name)?;
                    if let Some(v) = &a.value {
                        s("attribute value", v)?;
                    }
                }
                for t in &m.texts {
                    s("text", &t.text)?;
                }
                check("removed nodes", m.removes.len(), limits.max_nodes)?;
            }
            EventData::Input(i) => s("input value", &i.value)?,
            EventData::MouseMove(points) => check("mouse points", points.len(), limits.max_events)?,
            EventData::Custom(c) => {
                s("custom event name", &c.name)?;
                s("custom event data", &c.data)?;
            }
            EventData::Navigation(n) => s("url", &n.url)?,
            EventData::Touch(t) => check("touch points", t.points.len(), limits.max_events)?,
            EventData::Css(c) => match &c.op {
                CssOp::Text(t) => s("stylesheet", t)?,
                CssOp::Insert { path, rule } => {
                    check("rule path", path.len(), MAX_PATH)?;
                    s("rule", rule)?;
                }
                CssOp::Delete { path } => check("rule path", path.len(), MAX_PATH)?,
                CssOp::SetProperty { path, name, value, priority } => {
                    check("rule path", path.len(), MAX_PATH)?;
                    s("property", name)?;
                    s("property value", value)?;
                    s("priority", priority)?;
                }
                CssOp::RemoveProperty { path, name } => {
                    check("rule path", path.len(), MAX_PATH)?;
                    s("property", name)?;
                }
                CssOp::Adopt { sheets } => check("adopted sheets", sheets.len(), limits.max_attrs)?,
            },
            EventData::Console(c) => {
                check("console arguments", c.args.len(), limits.max_attrs)?;
                for a in &c.args {
                    s("console argument", a)?;
                }
                s("stack", &c.stack)?;
            }
            EventData::Error(e) => {
                s("error message", &e.message)?;
                s("stack", &e.stack)?;
                s("error source", &e.source)?;
            }
            EventData::Network(n) => {
                s("method", &n.method)?;
                s("url", &n.url)?;
                s("error", &n.error)?;
                s("request body", &n.request_body)?;
                s("response body", &n.response_body)?;
                for h in n.request_headers.iter().chain(&n.response_headers) {
                    s("header", &h.name)?;
                    s("header", &h.value)?;
                }
                check("headers", n.request_headers.len() + n.response_headers.len(), limits.max_attrs)?;
                if let Some(t) = &n.timing {
                    s("protocol", &t.protocol)?;
                }
            }
            EventData::WebSocket(w) => {
                s("url", &w.url)?;
                s("protocol", &w.protocol)?;
                s("close reason", &w.reason)?;
                for m in &w.messages {
                    s("websocket message", &m.data)?;
                }
                check("websocket messages", w.messages.len(), limits.max_attrs)?;
            }
            EventData::LongFrame(f) => check_scripts(&f.scripts, limits)?,
            EventData::Metric(m) => s("metric name", &m.name)?,
            EventData::Environment(e) => {
                for v in [&e.browser, &e.browser_version, &e.os, &e.connection, &e.language, &e.timezone] {
                    s("environment", v)?;
                }
            }
            EventData::App(a) => match a {
                AppFact::Identify { user, traits } => {
                    s("user", user)?;
                    s("traits", traits)?;
                }
                AppFact::Release(v) | AppFact::Environment(v) | AppFact::Flags(v) => s("app fact", v)?,
            },
            EventData::Freeze(f) => match f {
                Freeze::Started { url, last_action } => {
                    s("url", url)?;
                    s("last action", last_action)?;
                }
                Freeze::Ended { culprits, .. } => check_scripts(culprits, limits)?,
            },
            EventData::Note(n) => s("note", &n.text)?,
            EventData::Canvas(c) => {
                s("image type", &c.mime)?;
                check("canvas frame", c.data.len(), limits.max_string)?;
            }
            EventData::Frame(f) => s("frame url", &f.url)?,
            EventData::Font(f) => {
                for v in [&f.family, &f.url, &f.style, &f.weight, &f.stretch, &f.unicode_range, &f.display] {
                    s("font", v)?;
                }
                check("font file", f.data.len(), limits.max_string)?;
            }
            EventData::Click(c) => {
                check("click label", c.label.len(), limits.max_string)?;
                check("click path", c.path.len(), limits.max_string)?;
            }
            EventData::Scroll(_)
            | EventData::Viewport(_)
            | EventData::Focus(_)
            | EventData::Dialog(_)
            | EventData::ScrollDepth(_)
            | EventData::Selection(_)
            | EventData::Media(_)
            | EventData::Visibility(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::*;
    use crate::test_util::{el, text};
    use proptest::prelude::*;

    #[test]
    fn script_timing_from_before_line_and_column_still_decodes() {
        // The eight fields recorders sent before `line` and `column` were appended.
        let old = ("BUTTON.onclick", "event-listener", "https://x/app.js", "pay", -1i32, 5u32, 0u32, 0u32);
        let bytes = rmp_serde::to_vec(&old).expect("encodes");
        let s: ScriptTiming = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!((s.function.as_str(), s.duration, s.line, s.column), ("pay", 5, 0, 0));
    }

    fn sample() -> Batch {
        let mut b = Batch::new("s1", "p1", 3, 1_700_000_000_000);
        b.end = b.start + 20;
        b.events.push(Event {
            t: 0,
            data: EventData::Snapshot(Snapshot {
                nodes: vec![Node { id: 1, parent: 0, kind: NodeKind::Document }, el(2, 1, "html", &[])],
                scroll_x: 0,
                scroll_y: 0,
            }),
        });
        b.events.push(Event {
            t: 20,
            data: EventData::Click(Click {
                id: 2,
                x: 5,
                y: 6,
                button: 0,
                label: String::new(),
                path: String::new(),
                interactive: None,
            }),
        });
        b
    }

    proptest! {
        /// A batch moved in time in place decodes exactly as the batch encoded at that time,
        /// whatever its ids and sequence number (the fields before `start` vary in length).
        #[test]
        fn a_batch_moved_in_place_equals_the_batch_encoded_at_that_time(
            session in "[A-Za-z0-9_-]{1,64}",
            page in "[A-Za-z0-9_-]{1,64}",
            seq in any::<u32>(),
            first in (1u64 << 32)..(1u64 << 50),
            then in (1u64 << 32)..(1u64 << 50),
        ) {
            let at = |ms: u64| {
                let mut b = Batch::new(session.clone(), page.clone(), seq, ms);
                b.events.push(Event { t: 0, data: EventData::Freeze(Freeze::Started { url: "https://x/".into(), last_action: "click".into() }) });
                b
            };
            let marker = at(first);
            let offset = batch_times_at(&marker).expect("wide times");
            let mut bytes = encode_batch_compact(marker).expect("encodes");
            prop_assert!(set_batch_times(&mut bytes, offset, then));
            prop_assert_eq!(&bytes, &encode_batch_compact(at(then)).expect("encodes"));
            prop_assert_eq!(decode_batch(&bytes, &Limits::default()).expect("decodes"), at(then));
        }
    }

    #[test]
    fn a_batch_is_moved_in_time_only_where_its_times_are_wide() {
        assert_eq!(batch_times_at(&Batch::new("s", "p", 0, 5)), None, "a time of 1970 takes less than 8 bytes");
        let b = Batch::new("s", "p", 0, 1_700_000_000_000);
        let at = batch_times_at(&b).expect("wide");
        let mut bytes = encode_batch(&b).expect("encodes");
        let before = bytes.clone();
        assert!(!set_batch_times(&mut bytes, at, 5), "a narrow time is refused");
        assert!(!set_batch_times(&mut bytes, at + 1, 1_800_000_000_000), "not the times' offset");
        assert!(!set_batch_times(&mut bytes, usize::MAX, 1_800_000_000_000), "beyond the bytes");
        assert!(!set_batch_times(&mut bytes[..at + 10], at, 1_800_000_000_000), "cut short");
        assert_eq!(bytes, before, "nothing written");
    }

    #[test]
    fn encoded_batch_round_trips() {
        let b = sample();
        let bytes = encode_batch(&b).expect("encode");
        assert_eq!(decode_batch(&bytes, &Limits::default()).expect("decode"), b);
    }

    #[test]
    fn compact_batch_round_trips_and_is_smaller() {
        let mut b = sample();
        let rows: Vec<Node> = (0..200u32)
            .flat_map(|i| {
                let li = 100_000 + 2 * i;
                [el(li, 2, "li", &[]), text(li + 1, li, format!("row {i}"))]
            })
            .collect();
        b.events.push(Event {
            t: 20,
            data: EventData::Mutation(Mutation {
                removes: (0..200).map(|i| 70_000 + 9 * i).collect(),
                adds: vec![
                    AddedSubtree { parent: 2, next: 0, nodes: rows },
                    AddedSubtree { parent: 2, next: 100_000, nodes: vec![] },
                ],
                attrs: vec![AttrChange { id: 100_001, name: "class".into(), value: None }],
                texts: vec![],
            }),
        });
        let compact = encode_batch_compact(b.clone()).expect("encode");
        let plain = encode_batch(&b).expect("encode");
        assert_eq!(decode_batch(&compact, &Limits::default()).expect("decode"), b);
        let both = concat_encoded([&plain[..], &compact[..]].into_iter());
        assert_eq!(decode_batches(&both, &Limits::default(), usize::MAX).expect("decode"), vec![b.clone(), b]);
        assert!(compact.len() < plain.len(), "{} vs {} bytes", compact.len(), plain.len());
    }

    #[test]
    fn structs_travel_as_arrays_not_maps() {
        let bytes = encode_batch(&sample()).expect("encode");
        // fixarray of 10 fields.
        assert_eq!(bytes[0], 0x9a);
        assert!(!bytes.windows(7).any(|w| w == b"session"), "field names must not be on the wire");
    }

    #[test]
    fn oversized_input_is_rejected_before_parsing() {
        let limits = Limits { max_bytes: 4, ..Limits::default() };
        assert!(matches!(decode_batch(&[0u8; 5], &limits), Err(Error::TooLarge { size: 5, limit: 4 })));
    }

    #[test]
    fn truncated_input_is_malformed() {
        let bytes = encode_batch(&sample()).expect("encode");
        for cut in 0..bytes.len() {
            assert!(decode_batch(&bytes[..cut], &Limits::default()).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn too_many_nodes_is_a_limit_error() {
        let limits = Limits { max_nodes: 1, ..Limits::default() };
        let bytes = encode_batch(&sample()).expect("encode");
        assert!(matches!(decode_batch(&bytes, &limits), Err(Error::LimitExceeded { what: "nodes", .. })));
    }

    #[test]
    fn long_strings_are_limit_errors() {
        let mut b = sample();
        b.events.push(Event { t: 1, data: EventData::Custom(Custom { name: "n".into(), data: "x".repeat(100) }) });
        let limits = Limits { max_string: 99, ..Limits::default() };
        let bytes = encode_batch(&b).expect("encode");
        assert!(matches!(decode_batch(&bytes, &limits), Err(Error::LimitExceeded { .. })));
    }

    #[test]
    fn canvas_frames_travel_as_bin_bounded_by_the_string_limit() {
        let frame = CanvasFrame { id: 7, mime: "image/webp".into(), data: vec![0xab; 100], width: 30, height: 20 };
        let mut b = sample();
        b.events.push(Event { t: 1, data: EventData::Canvas(frame.clone()) });
        let bytes = encode_batch(&b).expect("encode");
        // One `bin 8` of 100 bytes (header c4 64), not 100 integers.
        assert!(bytes.windows(3).any(|w| w == [0xc4, 100, 0xab]), "bytes travel as bin");
        assert_eq!(decode_batch(&bytes, &Limits::default()).expect("decode"), b);
        let borrowed = decode_batch_borrowed(&bytes, &Limits::default()).expect("decode");
        assert!(
            matches!(&borrowed.events.last().expect("event").data, EventData::Canvas(c) if c.data == frame.data && c.mime == "image/webp")
        );
        let limits = Limits { max_string: 99, ..Limits::default() };
        assert!(matches!(decode_batch(&bytes, &limits), Err(Error::LimitExceeded { what: "canvas frame", .. })));
        assert!(matches!(decode_batch_borrowed(&bytes, &limits), Err(Error::LimitExceeded { .. })));
        // The JSON events API writes the bytes as numbers and reads them back.
        let json = serde_json::to_string(&EventData::Canvas(frame.clone())).expect("json");
        assert!(json.starts_with(r#"{"P":{"id":7,"mime":"image/webp","data":[171,"#), "{json}");
        assert_eq!(serde_json::from_str::<EventData>(&json).expect("back"), EventData::Canvas(frame.clone()));
        assert_eq!(frame.image_type(), Some("image/webp"));
        let svg = CanvasFrame { mime: "image/svg+xml".into(), ..frame };
        assert_eq!(svg.image_type(), None, "only raster types are drawn");
    }

    #[test]
    fn frame_placeholders_round_trip_and_their_url_is_bounded() {
        let info = crate::batch::FrameInfo { id: 9, url: "http://other.example/w".into(), width: 300, height: 150 };
        let mut b = sample();
        b.events.push(Event { t: 1, data: EventData::Frame(info.clone()) });
        let bytes = encode_batch(&b).expect("encode");
        assert_eq!(decode_batch(&bytes, &Limits::default()).expect("decode"), b);
        let borrowed = decode_batch_borrowed(&bytes, &Limits::default()).expect("decode");
        assert!(matches!(&borrowed.events.last().expect("event").data, EventData::Frame(f) if f.url == info.url));
        let limits = Limits { max_string: 5, ..Limits::default() };
        assert!(matches!(decode_batch(&bytes, &limits), Err(Error::LimitExceeded { .. })));
        let json = serde_json::to_string(&EventData::Frame(info.clone())).expect("json");
        assert_eq!(json, r#"{"X":{"id":9,"url":"http://other.example/w","width":300,"height":150}}"#);
    }

    #[test]
    fn bad_ids_and_versions_are_rejected() {
        let mut b = sample();
        b.session = "../etc".into();
        let bytes = encode_batch(&b).expect("encode");
        assert!(matches!(decode_batch(&bytes, &Limits::default()), Err(Error::Invalid(_))));
        let mut b = sample();
        b.version = 99;
        let bytes = encode_batch(&b).expect("encode");
        assert!(matches!(decode_batch(&bytes, &Limits::default()), Err(Error::UnsupportedVersion(99))));
    }

    #[test]
    fn concatenated_batches_decode_as_a_list() {
        let a = encode_batch(&sample()).expect("encode");
        let mut second = sample();
        second.seq = 4;
        let b = encode_batch(&second).expect("encode");
        let all = concat_encoded([a.as_slice(), b.as_slice()].into_iter());
        let list = decode_batches(&all, &Limits::default(), usize::MAX).expect("decode");
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].seq, 4);
    }

    fn arb_string() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z<>&\"' \u{e9}\u{1F600}]{0,12}").expect("regex")
    }

    fn arb_kind() -> impl Strategy<Value = NodeKind> {
        prop_oneof![
            Just(NodeKind::Document),
            Just(NodeKind::ShadowRoot),
            arb_string().prop_map(NodeKind::Text),
            arb_string().prop_map(NodeKind::Comment),
            (arb_string(), arb_string(), arb_string())
                .prop_map(|(name, public_id, system_id)| { NodeKind::Doctype { name, public_id, system_id } }),
            (arb_string(), 0u8..3, proptest::collection::vec((arb_string(), arb_string()), 0..4)).prop_map(
                |(tag, ns, attrs)| NodeKind::Element {
                    tag,
                    ns: Namespace::from_code(ns),
                    attrs: attrs.into_iter().map(|(name, value)| Attr { name, value }).collect(),
                }
            ),
        ]
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        (1u32.., any::<u32>(), arb_kind()).prop_map(|(id, parent, kind)| Node { id, parent, kind })
    }

    fn arb_event() -> impl Strategy<Value = EventData> {
        prop_oneof![
            (arb_string(), arb_string(), any::<u32>(), any::<u32>(), arb_string(), arb_string()).prop_map(
                |(url, title, width, height, user_agent, referrer)| {
                    EventData::Meta(PageMeta { url, title, viewport: Viewport { width, height }, user_agent, referrer })
                }
            ),
            (proptest::collection::vec(arb_node(), 0..6), any::<i32>(), any::<i32>())
                .prop_map(|(nodes, scroll_x, scroll_y)| EventData::Snapshot(Snapshot { nodes, scroll_x, scroll_y })),
            (
                proptest::collection::vec(any::<u32>(), 0..4),
                proptest::collection::vec(
                    (any::<u32>(), any::<u32>(), proptest::collection::vec(arb_node(), 0..3)),
                    0..3
                ),
                proptest::collection::vec((any::<u32>(), arb_string(), proptest::option::of(arb_string())), 0..3),
                proptest::collection::vec((any::<u32>(), arb_string()), 0..3),
            )
                .prop_map(|(removes, adds, attrs, texts)| EventData::Mutation(Mutation {
                    removes,
                    adds: adds.into_iter().map(|(parent, next, nodes)| AddedSubtree { parent, next, nodes }).collect(),
                    attrs: attrs.into_iter().map(|(id, name, value)| AttrChange { id, name, value }).collect(),
                    texts: texts.into_iter().map(|(id, text)| TextChange { id, text }).collect(),
                })),
            (any::<u32>(), arb_string(), proptest::option::of(any::<bool>()))
                .prop_map(|(id, value, checked)| EventData::Input(Input { id, value, checked })),
            proptest::collection::vec((any::<i32>(), any::<i32>(), any::<u32>()), 0..5)
                .prop_map(|p| EventData::MouseMove(p.into_iter().map(|(x, y, dt)| MousePoint { x, y, dt }).collect())),
            (any::<u32>(), any::<i32>(), any::<i32>(), any::<u8>(), arb_string(), proptest::option::of(any::<bool>()))
                .prop_map(|(id, x, y, button, path, interactive)| EventData::Click(Click {
                    id,
                    x,
                    y,
                    button,
                    label: String::new(),
                    path,
                    interactive
                })),
            (any::<u32>(), any::<u32>())
                .prop_map(|(bottom, height)| EventData::ScrollDepth(crate::batch::ScrollDepth { bottom, height })),
            (any::<u32>(), any::<i32>(), any::<i32>()).prop_map(|(id, x, y)| EventData::Scroll(Scroll { id, x, y })),
            (any::<u32>(), any::<u32>()).prop_map(|(width, height)| EventData::Viewport(Viewport { width, height })),
            (any::<u32>(), any::<bool>())
                .prop_map(|(id, modal)| EventData::Dialog(crate::batch::DialogShown { id, modal })),
            (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40), any::<u32>(), any::<u32>()).prop_map(
                |(id, data, width, height)| EventData::Canvas(crate::batch::CanvasFrame {
                    id,
                    mime: "image/webp".into(),
                    data,
                    width,
                    height
                })
            ),
            (arb_string(), arb_string()).prop_map(|(name, data)| EventData::Custom(Custom { name, data })),
            (0u8..8, proptest::collection::vec(arb_string(), 0..3), arb_string()).prop_map(|(level, args, stack)| {
                EventData::Console(Console { level: ConsoleLevel::from_code(level), args, stack })
            }),
            (any::<u32>(), any::<u32>(), proptest::collection::vec(0u32..9, 0..3), arb_string()).prop_map(
                |(owner, sheet, path, rule)| EventData::Css(CssChange {
                    owner,
                    sheet,
                    op: CssOp::Insert { path, rule }
                })
            ),
            (arb_string(), arb_string(), any::<u16>(), any::<u32>(), any::<bool>()).prop_map(
                |(method, url, status, duration, failed)| EventData::Network(Network {
                    kind: RequestKind::Xhr,
                    method,
                    url,
                    status,
                    duration,
                    request_size: 1,
                    response_size: 2,
                    failed,
                    aborted: !failed,
                    error: String::new(),
                    request_headers: vec![Attr { name: "a".into(), value: "b".into() }],
                    response_headers: vec![],
                    request_body: String::new(),
                    response_body: String::new(),
                    failure: crate::FailureKind::from_code(duration as u8 % 6),
                    timing: failed.then(|| crate::ResourceTiming {
                        dns_us: duration,
                        protocol: "h2".into(),
                        ..Default::default()
                    }),
                })
            ),
            (
                any::<u32>(),
                arb_string(),
                any::<u16>(),
                proptest::collection::vec((any::<u32>(), any::<bool>(), arb_string()), 0..3)
            )
                .prop_map(|(id, url, code, messages)| EventData::WebSocket(crate::WebSocketActivity {
                    id,
                    phase: crate::WebSocketPhase::from_code(code as u8 % 4),
                    url,
                    protocol: String::new(),
                    sent: id / 2,
                    received: id / 3,
                    sent_bytes: u64::from(id) * 7,
                    received_bytes: 0,
                    code,
                    reason: "bye".into(),
                    clean: code == 1000,
                    dropped: 0,
                    messages: messages
                        .into_iter()
                        .map(|(offset_ms, sent, data)| crate::WebSocketMessage {
                            offset_ms,
                            sent,
                            binary: !sent,
                            size: data.len() as u64,
                            data
                        })
                        .collect(),
                })),
            (any::<u32>(), arb_string()).prop_map(|(duration, function)| EventData::Freeze(Freeze::Ended {
                duration,
                culprits: vec![ScriptTiming {
                    invoker: "click".into(),
                    invoker_type: "event-listener".into(),
                    source_url: "http://x/app.js".into(),
                    function,
                    char_position: -1,
                    duration,
                    forced_style_layout: 0,
                    pause_duration: 0,
                    line: 3,
                    column: 7,
                }],
            })),
        ]
    }

    proptest! {
        #[test]
        fn any_batch_round_trips(
            seq in any::<u32>(),
            start in 0u64..u64::MAX / 2,
            span in any::<u32>(),
            flags in any::<u32>(),
            dropped in any::<u32>(),
            events in proptest::collection::vec((any::<u32>(), arb_event()), 0..8),
        ) {
            let mut b = Batch::new("session-1", "page_1", seq, start);
            b.end = start + u64::from(span);
            // The delta-ids flag is only ever set by encode_batch_compact (and cleared on decode).
            b.flags = flags & !Batch::FLAG_DELTA_IDS;
            b.dropped = dropped;
            b.events = events.into_iter().map(|(t, data)| Event { t, data }).collect();
            let bytes = encode_batch(&b).expect("encode");
            // The hand-written encoder (`pack.rs`) writes exactly the serde form's bytes.
            prop_assert_eq!(&bytes, &rmp_serde::to_vec(&b).expect("encode"));
            prop_assert_eq!(decode_batch(&bytes, &Limits::default()).expect("decode"), b.clone());
            let compact = encode_batch_compact(b.clone()).expect("encode");
            prop_assert_eq!(decode_batch(&compact, &Limits::default()).expect("decode"), b.clone());
            // The borrowed decoding sees the same batch: re-encoded, the same bytes.
            for wire in [&bytes, &compact] {
                let borrowed = decode_batch_borrowed(wire, &Limits::default()).expect("decode borrowed");
                prop_assert_eq!(rmp_serde::to_vec(&borrowed).expect("encode"), bytes.clone());
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let owned = decode_batch(&bytes, &Limits::default());
            let borrowed = decode_batch_borrowed(&bytes, &Limits::default());
            prop_assert_eq!(owned.is_ok(), borrowed.is_ok());
        }

        #[test]
        fn borrowed_and_owned_decoding_refuse_the_same_inputs(
            events in proptest::collection::vec((any::<u32>(), arb_event()), 0..6),
            cut in any::<proptest::sample::Index>(),
            flip in any::<proptest::sample::Index>(),
            max_string in 0usize..8,
            max_nodes in 0usize..6,
        ) {
            let mut b = Batch::new("s", "p", 1, 1_000);
            b.events = events.into_iter().map(|(t, data)| Event { t, data }).collect();
            let bytes = encode_batch_compact(b).expect("encode");
            let limits = Limits { max_string, max_nodes, ..Limits::default() };
            let mut flipped = bytes.clone();
            let at = flip.index(flipped.len());
            flipped[at] ^= 0x5a;
            for input in [&bytes[..], &bytes[..cut.index(bytes.len())], &flipped[..]] {
                let owned = decode_batch(input, &limits).map(|b| rmp_serde::to_vec(&b).expect("encode"));
                let borrowed =
                    decode_batch_borrowed(input, &limits).map(|b| rmp_serde::to_vec(&b).expect("encode"));
                match (owned, borrowed) {
                    (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                    (Err(a), Err(b)) => prop_assert_eq!(
                        std::mem::discriminant(&a),
                        std::mem::discriminant(&b),
                        "{} vs {}",
                        a,
                        b
                    ),
                    (a, b) => prop_assert!(false, "owned {:?}, borrowed {:?}", a.map(|_| ()), b.map(|_| ())),
                }
            }
        }
    }

    #[test]
    fn encoded_len_is_the_exact_encoded_size_of_each_event() {
        for e in sample().events {
            let direct = rmp_serde::to_vec(&e.data).expect("encodes").len();
            assert_eq!(encoded_len(&e.data), direct);
            assert_eq!(encoded_len(&e.data), direct, "the scratch buffer is reused cleanly");
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use crate::codec::{Limits, concat_encoded, decode_batch, decode_batch_borrowed, decode_batches, encode_batch};
    use crate::test_util::{at, document, snapshot, text};
    use crate::{Batch, Error, EventData};

    fn visibility_batch(events: usize) -> Vec<u8> {
        let mut b = Batch::new("s1", "p1", 0, 1_700_000_000_000);
        b.events = (0..events).map(|_| at(0, EventData::Visibility(true))).collect();
        encode_batch(&b).expect("encode")
    }

    fn small() -> Limits {
        Limits { max_events: 10, max_nodes: 5, ..Limits::default() }
    }

    #[test]
    fn more_events_than_the_limit_are_refused_as_over_the_limit() {
        assert!(decode_batch(&visibility_batch(10), &small()).is_ok());
        for r in [
            decode_batch(&visibility_batch(11), &small()).err(),
            decode_batch_borrowed(&visibility_batch(11), &small()).err(),
        ] {
            assert!(matches!(r, Some(Error::LimitExceeded { what: "events", actual: 11, limit: 10 })), "{r:?}");
        }
    }

    #[test]
    fn a_list_is_refused_by_its_announced_length_before_its_elements_are_decoded() {
        // The batch's events array says it holds four billion events, and holds none: refused as
        // too many (from the header), not as truncated (which it would be once decoded).
        let mut bytes = visibility_batch(0);
        let at = bytes.iter().position(|&b| b == 0x90).expect("the empty events array");
        bytes.splice(at..=at, [0xdd, 0xff, 0xff, 0xff, 0xff]);
        let r = decode_batch(&bytes, &Limits::default());
        assert!(matches!(r, Err(Error::LimitExceeded { what: "events", .. })), "{r:?}");
    }

    #[test]
    fn nodes_count_across_a_batch_s_snapshots_and_each_batch_has_its_own_budget() {
        let snap =
            |first: u32| snapshot(vec![document(first), text(first + 1, first, "a"), text(first + 2, first, "b")]);
        let mut b = Batch::new("s1", "p1", 0, 1_700_000_000_000);
        b.events = vec![at(0, snap(1))];
        let one = encode_batch(&b).expect("encode");
        assert!(decode_batch(&one, &small()).is_ok());
        b.events.push(at(1, snap(10)));
        let r = decode_batch(&encode_batch(&b).expect("encode"), &small());
        assert!(matches!(r, Err(Error::LimitExceeded { what: "nodes", actual: 6, limit: 5 })), "{r:?}");
        // Three batches of three nodes: nine in all, each batch under its limit of five.
        let many = concat_encoded([one.as_slice(), one.as_slice(), one.as_slice()].into_iter());
        assert_eq!(decode_batches(&many, &small(), usize::MAX).expect("decode").len(), 3);
    }

    #[test]
    fn outside_a_decode_call_nothing_is_counted() {
        let bytes = visibility_batch(11);
        let _ = decode_batch(&bytes, &small());
        let b: Batch = rmp_serde::from_slice(&bytes).expect("plain serde decode");
        assert_eq!(b.events.len(), 11);
    }
}
