//! The wire types written as MessagePack by hand: what [`crate::codec::encode_batch`] (and so
//! the recorder) uses to encode, instead of their `serde` derive through `rmp-serde`.
//!
//! Why: the derived `Serialize` impls, instantiated for `rmp-serde`'s serializer, were the
//! largest part of the recorder's wasm (about 60 KB of 250 KB: one generic path per field of
//! every struct, `Result` plumbing around every value). Written out, the same bytes take a few
//! KB, and encoding is faster (no per-value error paths).
//!
//! The format is still described once: the `serde` attributes on the types in [`crate::batch`]
//! are the description (they decode, and they write the JSON API), and this module must write
//! exactly the bytes `rmp_serde::encode::write` writes for them. Two things keep it so:
//! - every struct is taken apart with an exhaustive pattern and every enum matched without a
//!   wildcard, so a new field or variant does not compile until it is written here too;
//! - tests (`tests` below, and the round-trip proptests of [`crate::codec`]) compare these
//!   bytes with `rmp-serde`'s for every variant, at every length boundary of the integer,
//!   string, bin, array and map headers.
//!
//! The rules of `rmp-serde` 1.x (default configuration) written here: structs and struct
//! variants as arrays of their fields in order; enums externally tagged (a map of one entry,
//! the one-letter variant name to the value); unit variants as their name alone; integers in
//! their smallest form (`write_uint`, `write_sint`); `f64` always as float 64; `None` as nil;
//! bytes as `bin`; code enums ([`crate::batch::ConsoleLevel`], ...) as their `u8` code.

use crate::batch::network::{ResourceTiming, WebSocketActivity, WebSocketMessage};
use crate::batch::packed;
use crate::batch::{
    AddedSubtree, AppFact, Attr, AttrChange, Batch, CanvasFrame, Click, Console, CssChange, CssOp, Custom, DialogShown,
    Environment, ErrorEvent, Event, EventData, Focus, FontAdded, FrameInfo, Freeze, Input, LongFrame, Media, Metric,
    MousePoint, Mutation, Navigation, Network, Node, NodeKind, Note, PageMeta, ScriptTiming, Scroll, ScrollDepth,
    Selection, Snapshot, TextChange, Touch, Viewport,
};

/// MessagePack values appended to a byte buffer (`rmp`'s choice of forms, see the module doc).
trait Put {
    fn byte(&mut self, b: u8);
    fn uint(&mut self, v: u64);
    fn sint(&mut self, v: i64);
    fn boolean(&mut self, v: bool);
    fn f64(&mut self, v: f64);
    /// A length header: `fix | len` when `len < fix_max`, else the smallest of an 8-bit (when
    /// `m8` is not 0), 16-bit and 32-bit length after markers `m8`, `m16` and `m16 + 1`.
    fn header(&mut self, len: usize, fix: u8, fix_max: u32, m8: u8, m16: u8);
    fn str(&mut self, s: &str);
    fn bin(&mut self, b: &[u8]);
    fn array(&mut self, len: usize);
    /// `{ tag: ... }`: an enum variant's one-entry map and its name; the value follows.
    fn variant(&mut self, tag: u8);
}

impl Put for Vec<u8> {
    fn byte(&mut self, b: u8) {
        self.push(b);
    }

    #[inline(never)]
    fn uint(&mut self, v: u64) {
        if v < 128 {
            self.push(v as u8);
        } else if v < 256 {
            self.extend_from_slice(&[0xcc, v as u8]);
        } else if v < 65_536 {
            self.push(0xcd);
            self.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v < 1 << 32 {
            self.push(0xce);
            self.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.push(0xcf);
            self.extend_from_slice(&v.to_be_bytes());
        }
    }

    #[inline(never)]
    fn sint(&mut self, v: i64) {
        if v >= 0 {
            self.uint(v as u64);
        } else if v >= -32 {
            self.push(v as u8);
        } else if v >= -128 {
            self.extend_from_slice(&[0xd0, v as u8]);
        } else if v >= -32_768 {
            self.push(0xd1);
            self.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= -2_147_483_648 {
            self.push(0xd2);
            self.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            self.push(0xd3);
            self.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn boolean(&mut self, v: bool) {
        self.push(if v { 0xc3 } else { 0xc2 });
    }

    fn f64(&mut self, v: f64) {
        self.push(0xcb);
        self.extend_from_slice(&v.to_be_bytes());
    }

    #[inline(never)]
    fn header(&mut self, len: usize, fix: u8, fix_max: u32, m8: u8, m16: u8) {
        // Lengths travel as u32, cut like rmp's `len as u32`.
        let len = len as u32;
        if len < fix_max {
            self.push(fix | len as u8);
        } else if len < 256 && m8 != 0 {
            self.extend_from_slice(&[m8, len as u8]);
        } else if len < 65_536 {
            self.push(m16);
            self.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.push(m16 + 1);
            self.extend_from_slice(&len.to_be_bytes());
        }
    }

    #[inline(never)]
    fn str(&mut self, s: &str) {
        self.header(s.len(), 0xa0, 32, 0xd9, 0xda);
        self.extend_from_slice(s.as_bytes());
    }

    #[inline(never)]
    fn bin(&mut self, b: &[u8]) {
        self.header(b.len(), 0, 0, 0xc4, 0xc5);
        self.extend_from_slice(b);
    }

    fn array(&mut self, len: usize) {
        self.header(len, 0x90, 16, 0, 0xdc);
    }

    #[inline(never)]
    fn variant(&mut self, tag: u8) {
        self.extend_from_slice(&[0x81, 0xa1, tag]);
    }
}

fn s<S: AsRef<str>>(o: &mut Vec<u8>, v: &S) {
    o.str(v.as_ref());
}

fn list<T>(o: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    o.array(items.len());
    for item in items {
        each(o, item);
    }
}

fn ints(o: &mut Vec<u8>, items: &[u32]) {
    list(o, items, |o, v| o.uint(u64::from(*v)));
}

fn strs<S: AsRef<str>>(o: &mut Vec<u8>, items: &[S]) {
    list(o, items, |o, v| s(o, v));
}

/// A pointer trail as one `bin` ([`crate::batch::packed_points`]).
fn points(o: &mut Vec<u8>, points: &[MousePoint]) {
    bin_of(o, |o| crate::batch::packed_points::pack_into(points, o));
}

/// A packed list of a mutation ([`crate::batch::packed`]): one `bin` when `packable` (as the
/// serde writer decides), else the plain array of `each` item.
fn packed_list<T>(
    o: &mut Vec<u8>,
    items: &[T],
    packable: bool,
    pack: impl FnOnce(&mut Vec<u8>),
    each: impl FnMut(&mut Vec<u8>, &T),
) {
    if !packable {
        list(o, items, each);
    } else {
        bin_of(o, pack);
    }
}

/// One `bin` whose content `fill` appends: written after the buffer's end, then the header is
/// put before it.
fn bin_of(o: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let at = o.len();
    fill(o);
    let len = o.len() - at;
    let mut header = Vec::with_capacity(5);
    header.header(len, 0, 0, 0xc4, 0xc5);
    o.extend_from_slice(&header);
    o[at..].rotate_right(header.len());
}

/// Appends a batch, as `rmp_serde::encode::write(o, batch)` would.
pub(crate) fn batch<S: AsRef<str>>(o: &mut Vec<u8>, b: &Batch<S>) {
    let Batch { version, session, page, seq, start, end, flags, events, dropped, recorder_errors } = b;
    o.array(10);
    o.uint(u64::from(*version));
    s(o, session);
    s(o, page);
    o.uint(u64::from(*seq));
    o.uint(*start);
    o.uint(*end);
    o.uint(u64::from(*flags));
    list(o, events, |o, e| {
        let Event { t, data } = e;
        o.array(2);
        o.uint(u64::from(*t));
        event_data(o, data);
    });
    o.uint(u64::from(*dropped));
    o.uint(u64::from(*recorder_errors));
}

/// Where [`batch`] writes `b.start`: the length of the fields before it. Written by the same
/// calls as [`batch`], in the same order, so the two cannot disagree (a test patches a batch at
/// this offset and decodes it).
pub(crate) fn start_offset<S: AsRef<str>>(b: &Batch<S>) -> usize {
    let mut o = Vec::with_capacity(16 + b.session.as_ref().len() + b.page.as_ref().len());
    o.array(10);
    o.uint(u64::from(b.version));
    s(&mut o, &b.session);
    s(&mut o, &b.page);
    o.uint(u64::from(b.seq));
    o.len()
}

/// Appends one event's data, as `rmp_serde::encode::write(o, data)` would.
pub(crate) fn event_data<S: AsRef<str>>(o: &mut Vec<u8>, data: &EventData<S>) {
    match data {
        EventData::Meta(PageMeta { url, title, viewport, user_agent, referrer }) => {
            o.variant(b'p');
            o.array(5);
            s(o, url);
            s(o, title);
            viewport_of(o, viewport);
            s(o, user_agent);
            s(o, referrer);
        }
        EventData::Snapshot(Snapshot { nodes, scroll_x, scroll_y }) => {
            o.variant(b's');
            o.array(3);
            node_list(o, nodes);
            o.sint(i64::from(*scroll_x));
            o.sint(i64::from(*scroll_y));
        }
        EventData::Mutation(Mutation { removes, adds, attrs, texts }) => {
            o.variant(b'm');
            o.array(4);
            let packable = removes.len() >= packed::PACK_MIN;
            packed_list(o, removes, packable, |o| packed::pack_removes(removes, o), |o, v| o.uint(u64::from(*v)));
            list(o, adds, |o, a| {
                let AddedSubtree { parent, next, nodes } = a;
                o.array(3);
                o.uint(u64::from(*parent));
                o.uint(u64::from(*next));
                node_list(o, nodes);
            });
            packed_list(
                o,
                attrs,
                packed::attrs_packable(attrs),
                |o| packed::pack_attrs(attrs, o),
                |o, a| {
                    let AttrChange { id, name, value } = a;
                    o.array(3);
                    o.uint(u64::from(*id));
                    s(o, name);
                    match value {
                        Some(v) => s(o, v),
                        None => o.byte(0xc0),
                    }
                },
            );
            packed_list(
                o,
                texts,
                texts.len() >= packed::PACK_MIN,
                |o| packed::pack_texts(texts, o),
                |o, t| {
                    let TextChange { id, text } = t;
                    o.array(2);
                    o.uint(u64::from(*id));
                    s(o, text);
                },
            );
        }
        EventData::Input(Input { id, value, checked }) => {
            o.variant(b'i');
            o.array(3);
            o.uint(u64::from(*id));
            s(o, value);
            match checked {
                Some(c) => o.boolean(*c),
                None => o.byte(0xc0),
            }
        }
        EventData::MouseMove(trail) => {
            o.variant(b'v');
            points(o, trail);
        }
        EventData::Click(Click { id, x, y, button, label, path, interactive }) => {
            o.variant(b'c');
            o.array(7);
            o.uint(u64::from(*id));
            o.sint(i64::from(*x));
            o.sint(i64::from(*y));
            o.uint(u64::from(*button));
            s(o, label);
            s(o, path);
            match interactive {
                Some(v) => o.boolean(*v),
                None => o.byte(0xc0),
            }
        }
        EventData::Scroll(Scroll { id, x, y }) => {
            o.variant(b'o');
            o.array(3);
            o.uint(u64::from(*id));
            o.sint(i64::from(*x));
            o.sint(i64::from(*y));
        }
        EventData::Viewport(v) => {
            o.variant(b'w');
            viewport_of(o, v);
        }
        EventData::Custom(Custom { name, data }) => {
            o.variant(b'x');
            o.array(2);
            s(o, name);
            s(o, data);
        }
        EventData::Navigation(Navigation { url, kind }) => {
            o.variant(b'n');
            o.array(2);
            s(o, url);
            o.uint(u64::from(kind.code()));
        }
        EventData::Focus(Focus { id, focused }) => {
            o.variant(b'f');
            o.array(2);
            o.uint(u64::from(*id));
            o.boolean(*focused);
        }
        EventData::Selection(Selection { anchor, anchor_offset, focus, focus_offset }) => {
            o.variant(b'l');
            ints(o, &[*anchor, *anchor_offset, *focus, *focus_offset]);
        }
        EventData::Media(Media { id, action, time, rate, volume, muted }) => {
            o.variant(b'd');
            o.array(6);
            o.uint(u64::from(*id));
            o.uint(u64::from(action.code()));
            o.f64(*time);
            o.f64(*rate);
            o.f64(*volume);
            o.boolean(*muted);
        }
        EventData::Touch(Touch { kind, points: trail }) => {
            o.variant(b'h');
            o.array(2);
            o.uint(u64::from(kind.code()));
            points(o, trail);
        }
        EventData::Visibility(visible) => {
            o.variant(b'y');
            o.boolean(*visible);
        }
        EventData::Css(CssChange { owner, sheet, op }) => {
            o.variant(b'z');
            o.array(3);
            o.uint(u64::from(*owner));
            o.uint(u64::from(*sheet));
            css_op(o, op);
        }
        EventData::Console(Console { level, args, stack }) => {
            o.variant(b'k');
            o.array(3);
            o.uint(u64::from(level.code()));
            strs(o, args);
            s(o, stack);
        }
        EventData::Error(ErrorEvent { kind, message, stack, source, line, column, count }) => {
            o.variant(b'e');
            o.array(7);
            o.uint(u64::from(kind.code()));
            s(o, message);
            s(o, stack);
            s(o, source);
            o.uint(u64::from(*line));
            o.uint(u64::from(*column));
            o.uint(u64::from(*count));
        }
        EventData::Network(n) => {
            o.variant(b'r');
            network(o, n);
        }
        EventData::LongFrame(LongFrame {
            duration,
            blocking_duration,
            style_and_layout,
            long_task,
            scripts: list_,
        }) => {
            o.variant(b'g');
            o.array(5);
            o.uint(u64::from(*duration));
            o.uint(u64::from(*blocking_duration));
            o.uint(u64::from(*style_and_layout));
            o.boolean(*long_task);
            scripts(o, list_);
        }
        EventData::Metric(Metric { name, value }) => {
            o.variant(b'u');
            o.array(2);
            s(o, name);
            o.f64(*value);
        }
        EventData::Environment(Environment {
            browser,
            browser_version,
            os,
            device_pixel_ratio,
            device_memory,
            cpu_cores,
            connection,
            language,
            timezone,
        }) => {
            o.variant(b'j');
            o.array(9);
            s(o, browser);
            s(o, browser_version);
            s(o, os);
            o.f64(*device_pixel_ratio);
            o.f64(*device_memory);
            o.uint(u64::from(*cpu_cores));
            s(o, connection);
            s(o, language);
            s(o, timezone);
        }
        EventData::App(fact) => {
            o.variant(b'a');
            match fact {
                AppFact::Identify { user, traits } => {
                    o.variant(b'u');
                    o.array(2);
                    s(o, user);
                    s(o, traits);
                }
                AppFact::Release(v) => {
                    o.variant(b'r');
                    s(o, v);
                }
                AppFact::Environment(v) => {
                    o.variant(b'e');
                    s(o, v);
                }
                AppFact::Flags(v) => {
                    o.variant(b'f');
                    s(o, v);
                }
            }
        }
        EventData::Freeze(f) => {
            o.variant(b'F');
            match f {
                Freeze::Started { url, last_action } => {
                    o.variant(b's');
                    o.array(2);
                    s(o, url);
                    s(o, last_action);
                }
                Freeze::Ended { duration, culprits } => {
                    o.variant(b'e');
                    o.array(2);
                    o.uint(u64::from(*duration));
                    scripts(o, culprits);
                }
            }
        }
        EventData::Note(Note { kind, id, count, text }) => {
            o.variant(b'N');
            o.array(4);
            o.uint(u64::from(kind.code()));
            o.uint(u64::from(*id));
            o.uint(u64::from(*count));
            s(o, text);
        }
        EventData::Dialog(DialogShown { id, modal }) => {
            o.variant(b'O');
            o.array(2);
            o.uint(u64::from(*id));
            o.boolean(*modal);
        }
        EventData::Canvas(CanvasFrame { id, mime, data, width, height }) => {
            o.variant(b'P');
            o.array(5);
            o.uint(u64::from(*id));
            s(o, mime);
            o.bin(data);
            o.uint(u64::from(*width));
            o.uint(u64::from(*height));
        }
        EventData::WebSocket(w) => {
            o.variant(b'W');
            websocket(o, w);
        }
        EventData::Frame(FrameInfo { id, url, width, height }) => {
            o.variant(b'X');
            o.array(4);
            o.uint(u64::from(*id));
            s(o, url);
            o.uint(u64::from(*width));
            o.uint(u64::from(*height));
        }
        EventData::Font(FontAdded { family, url, data, style, weight, stretch, unicode_range, display }) => {
            o.variant(b'G');
            o.array(8);
            s(o, family);
            s(o, url);
            o.bin(data);
            for v in [style, weight, stretch, unicode_range, display] {
                s(o, v);
            }
        }
        EventData::ScrollDepth(ScrollDepth { bottom, height }) => {
            o.variant(b'M');
            ints(o, &[*bottom, *height]);
        }
    }
}

fn viewport_of(o: &mut Vec<u8>, v: &Viewport) {
    let Viewport { width, height } = v;
    ints(o, &[*width, *height]);
}

fn node_list<S: AsRef<str>>(o: &mut Vec<u8>, nodes: &[Node<S>]) {
    list(o, nodes, |o, n| {
        let Node { id, parent, kind } = n;
        o.array(3);
        o.uint(u64::from(*id));
        o.uint(u64::from(*parent));
        match kind {
            NodeKind::Document => o.str("D"),
            NodeKind::Doctype { name, public_id, system_id } => {
                o.variant(b'T');
                strs(o, &[name, public_id, system_id]);
            }
            NodeKind::Element { tag, ns, attrs } => {
                o.variant(b'E');
                o.array(3);
                s(o, tag);
                o.uint(u64::from(ns.code()));
                list(o, attrs, |o, a| {
                    let Attr { name, value } = a;
                    o.array(2);
                    s(o, name);
                    s(o, value);
                });
            }
            NodeKind::Text(t) => {
                o.variant(b't');
                s(o, t);
            }
            NodeKind::Comment(t) => {
                o.variant(b'C');
                s(o, t);
            }
            NodeKind::ShadowRoot => o.str("S"),
        }
    });
}

fn css_op<S: AsRef<str>>(o: &mut Vec<u8>, op: &CssOp<S>) {
    match op {
        CssOp::Text(t) => {
            o.variant(b't');
            s(o, t);
        }
        CssOp::Insert { path, rule } => {
            o.variant(b'i');
            o.array(2);
            ints(o, path);
            s(o, rule);
        }
        CssOp::Delete { path } => {
            o.variant(b'd');
            o.array(1);
            ints(o, path);
        }
        CssOp::SetProperty { path, name, value, priority } => {
            o.variant(b'p');
            o.array(4);
            ints(o, path);
            s(o, name);
            s(o, value);
            s(o, priority);
        }
        CssOp::RemoveProperty { path, name } => {
            o.variant(b'r');
            o.array(2);
            ints(o, path);
            s(o, name);
        }
        CssOp::Adopt { sheets } => {
            o.variant(b'a');
            o.array(1);
            ints(o, sheets);
        }
    }
}

fn headers<S: AsRef<str>>(o: &mut Vec<u8>, list_: &[Attr<S>]) {
    list(o, list_, |o, a| {
        let Attr { name, value } = a;
        o.array(2);
        s(o, name);
        s(o, value);
    });
}

fn network<S: AsRef<str>>(o: &mut Vec<u8>, n: &Network<S>) {
    let Network {
        kind,
        method,
        url,
        status,
        duration,
        request_size,
        response_size,
        failed,
        aborted,
        error,
        request_headers,
        response_headers,
        request_body,
        response_body,
        failure,
        timing,
    } = n;
    o.array(16);
    o.uint(u64::from(kind.code()));
    s(o, method);
    s(o, url);
    o.uint(u64::from(*status));
    o.uint(u64::from(*duration));
    o.uint(*request_size);
    o.uint(*response_size);
    o.boolean(*failed);
    o.boolean(*aborted);
    s(o, error);
    headers(o, request_headers);
    headers(o, response_headers);
    s(o, request_body);
    s(o, response_body);
    o.uint(u64::from(failure.code()));
    match timing {
        None => o.byte(0xc0),
        Some(ResourceTiming {
            restricted,
            blocked_us,
            dns_us,
            connect_us,
            tls_us,
            ttfb_us,
            download_us,
            transfer_size,
            encoded_size,
            decoded_size,
            protocol,
        }) => {
            o.array(11);
            o.boolean(*restricted);
            for v in [blocked_us, dns_us, connect_us, tls_us, ttfb_us, download_us] {
                o.uint(u64::from(*v));
            }
            for v in [transfer_size, encoded_size, decoded_size] {
                o.uint(*v);
            }
            s(o, protocol);
        }
    }
}

fn scripts<S: AsRef<str>>(o: &mut Vec<u8>, items: &[ScriptTiming<S>]) {
    list(o, items, |o, t| {
        let ScriptTiming {
            invoker,
            invoker_type,
            source_url,
            function,
            char_position,
            duration,
            forced_style_layout,
            pause_duration,
            line,
            column,
        } = t;
        o.array(10);
        for v in [invoker, invoker_type, source_url, function] {
            s(o, v);
        }
        o.sint(i64::from(*char_position));
        for v in [duration, forced_style_layout, pause_duration, line, column] {
            o.uint(u64::from(*v));
        }
    });
}

fn websocket<S: AsRef<str>>(o: &mut Vec<u8>, w: &WebSocketActivity<S>) {
    let WebSocketActivity {
        id,
        phase,
        url,
        protocol,
        sent,
        received,
        sent_bytes,
        received_bytes,
        code,
        reason,
        clean,
        messages,
        dropped,
    } = w;
    o.array(13);
    o.uint(u64::from(*id));
    o.uint(u64::from(phase.code()));
    s(o, url);
    s(o, protocol);
    o.uint(u64::from(*sent));
    o.uint(u64::from(*received));
    o.uint(*sent_bytes);
    o.uint(*received_bytes);
    o.uint(u64::from(*code));
    s(o, reason);
    o.boolean(*clean);
    list(o, messages, |o, m| {
        let WebSocketMessage { offset_ms, sent, binary, size, data } = m;
        o.array(5);
        o.uint(u64::from(*offset_ms));
        o.boolean(*sent);
        o.boolean(*binary);
        o.uint(*size);
        s(o, data);
    });
    o.uint(u64::from(*dropped));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::network::{FailureKind, WebSocketPhase};
    use crate::batch::{
        AttrChange, ConsoleLevel, ErrorKind, MediaAction, Namespace, NavigationKind, NoteKind, RequestKind, TextChange,
        TouchKind,
    };

    /// Which variant of [`EventData`] an event is, by an exhaustive match: a new variant fails
    /// to compile here until [`every_event`] covers it (the test checks all are there).
    fn variant(d: &EventData) -> usize {
        match d {
            EventData::Meta(_) => 0,
            EventData::Snapshot(_) => 1,
            EventData::Mutation(_) => 2,
            EventData::Input(_) => 3,
            EventData::MouseMove(_) => 4,
            EventData::Click(_) => 5,
            EventData::Scroll(_) => 6,
            EventData::Viewport(_) => 7,
            EventData::Custom(_) => 8,
            EventData::Navigation(_) => 9,
            EventData::Focus(_) => 10,
            EventData::Selection(_) => 11,
            EventData::Media(_) => 12,
            EventData::Touch(_) => 13,
            EventData::Visibility(_) => 14,
            EventData::Css(_) => 15,
            EventData::Console(_) => 16,
            EventData::Error(_) => 17,
            EventData::Network(_) => 18,
            EventData::LongFrame(_) => 19,
            EventData::Metric(_) => 20,
            EventData::Environment(_) => 21,
            EventData::App(_) => 22,
            EventData::Freeze(_) => 23,
            EventData::Note(_) => 24,
            EventData::Dialog(_) => 25,
            EventData::Canvas(_) => 26,
            EventData::WebSocket(_) => 27,
            EventData::Frame(_) => 28,
            EventData::Font(_) => 29,
            EventData::ScrollDepth(_) => 30,
        }
    }
    const VARIANTS: usize = 31;

    fn script(function: &str, char_position: i32) -> ScriptTiming {
        ScriptTiming {
            invoker: "BUTTON.onclick".into(),
            invoker_type: "event-listener".into(),
            source_url: "https://shop.example/app.js".into(),
            function: function.into(),
            char_position,
            duration: 120,
            forced_style_layout: 3,
            pause_duration: 70_000,
            line: 12,
            column: 300,
        }
    }

    fn nodes(text: &str) -> Vec<Node> {
        vec![
            Node { id: 1, parent: 0, kind: NodeKind::Document },
            Node {
                id: 2,
                parent: 1,
                kind: NodeKind::Doctype { name: "html".into(), public_id: "-//W3C".into(), system_id: String::new() },
            },
            Node {
                id: 3,
                parent: 1,
                kind: NodeKind::Element {
                    tag: "svg".into(),
                    ns: Namespace::Svg,
                    attrs: vec![Attr { name: "viewBox".into(), value: "0 0 10 10".into() }],
                },
            },
            Node { id: 4, parent: 3, kind: NodeKind::Text(text.into()) },
            Node { id: 70_000, parent: 3, kind: NodeKind::Comment("c".into()) },
            Node { id: u32::MAX, parent: 70_000, kind: NodeKind::ShadowRoot },
            Node {
                id: 5,
                parent: 1,
                kind: NodeKind::Element { tag: "math".into(), ns: Namespace::MathMl, attrs: vec![] },
            },
        ]
    }

    /// At least one event of every variant and sub-variant, with `text` in their strings and
    /// `n` in their numbers.
    fn every_event(text: &str, n: u32) -> Vec<EventData> {
        let t = || String::from(text);
        let i = n as i32;
        let minus_i = i.wrapping_neg();
        let trail: Vec<MousePoint> = (0..n.min(200))
            .map(|k| MousePoint { x: i.wrapping_sub(k as i32), y: -(k as i32) * 1000, dt: k * 16 })
            .collect();
        let socket = WebSocketActivity {
            id: n,
            phase: WebSocketPhase::Messages,
            url: t(),
            protocol: "chat".into(),
            sent: n,
            received: 2,
            sent_bytes: u64::from(n) << 20,
            received_bytes: 0,
            code: n as u16,
            reason: t(),
            clean: false,
            messages: vec![WebSocketMessage { offset_ms: n, sent: true, binary: false, size: 5, data: t() }],
            dropped: 1,
        };
        let timing = ResourceTiming {
            restricted: true,
            blocked_us: n,
            dns_us: 1,
            connect_us: 2,
            tls_us: 3,
            ttfb_us: 4,
            download_us: 5,
            transfer_size: u64::from(n) * 1000,
            encoded_size: 7,
            decoded_size: u64::MAX,
            protocol: "h2".into(),
        };
        let request = |failure, timing| Network {
            kind: RequestKind::Xhr,
            method: "POST".into(),
            url: t(),
            status: n as u16,
            duration: n,
            request_size: u64::from(n),
            response_size: 1 << 40,
            failed: true,
            aborted: false,
            error: t(),
            request_headers: vec![Attr { name: "a".into(), value: t() }],
            response_headers: vec![],
            request_body: t(),
            response_body: String::new(),
            failure,
            timing,
        };
        vec![
            EventData::Meta(PageMeta {
                url: t(),
                title: t(),
                viewport: Viewport { width: n, height: 600 },
                user_agent: "UA".into(),
                referrer: String::new(),
            }),
            EventData::Snapshot(Snapshot { nodes: nodes(text), scroll_x: minus_i, scroll_y: i }),
            EventData::Mutation(Mutation {
                removes: vec![n, 1, 70_000],
                adds: vec![
                    AddedSubtree { parent: 3, next: n, nodes: nodes(text) },
                    AddedSubtree { parent: 3, next: 0, nodes: vec![] },
                ],
                attrs: vec![
                    AttrChange { id: n, name: "class".into(), value: Some(t()) },
                    AttrChange { id: 2, name: "hidden".into(), value: None },
                ],
                texts: vec![TextChange { id: 4, text: t() }],
            }),
            EventData::Input(Input { id: n, value: t(), checked: None }),
            EventData::Input(Input { id: 1, value: String::new(), checked: Some(true) }),
            EventData::Input(Input { id: 1, value: String::new(), checked: Some(false) }),
            EventData::MouseMove(trail.clone()),
            EventData::Click(Click {
                id: n,
                x: minus_i,
                y: i,
                button: 2,
                label: t(),
                path: t(),
                interactive: Some(true),
            }),
            EventData::Click(Click { id: 1, x: 0, y: 0, button: 0, label: t(), path: t(), interactive: Some(false) }),
            EventData::Click(Click {
                id: 1,
                x: 0,
                y: 0,
                button: 0,
                label: String::new(),
                path: String::new(),
                interactive: None,
            }),
            EventData::Scroll(Scroll { id: 0, x: i, y: minus_i }),
            EventData::Viewport(Viewport { width: n, height: 0 }),
            EventData::Custom(Custom { name: t(), data: t() }),
            EventData::Navigation(Navigation { url: t(), kind: NavigationKind::Hash }),
            EventData::Focus(Focus { id: n, focused: true }),
            EventData::Selection(Selection { anchor: n, anchor_offset: 1, focus: 2, focus_offset: n }),
            EventData::Media(Media {
                id: n,
                action: MediaAction::VolumeChange,
                time: f64::from(n) / 3.0,
                rate: 1.5,
                volume: -0.0,
                muted: true,
            }),
            EventData::Touch(Touch { kind: TouchKind::Cancel, points: trail }),
            EventData::Visibility(false),
            EventData::Visibility(true),
            EventData::Css(CssChange { owner: n, sheet: 0, op: CssOp::Text(t()) }),
            EventData::Css(CssChange { owner: 1, sheet: n, op: CssOp::Insert { path: vec![0, n], rule: t() } }),
            EventData::Css(CssChange { owner: 1, sheet: 2, op: CssOp::Delete { path: vec![n] } }),
            EventData::Css(CssChange {
                owner: 1,
                sheet: 2,
                op: CssOp::SetProperty { path: vec![], name: "color".into(), value: t(), priority: "important".into() },
            }),
            EventData::Css(CssChange {
                owner: 1,
                sheet: 2,
                op: CssOp::RemoveProperty { path: vec![1, 2, 3], name: t() },
            }),
            EventData::Css(CssChange { owner: 9, sheet: 0, op: CssOp::Adopt { sheets: vec![n, 2] } }),
            EventData::Console(Console {
                level: ConsoleLevel::Assert,
                args: vec![t(), t(), String::new()],
                stack: t(),
            }),
            EventData::Error(ErrorEvent {
                kind: ErrorKind::Resource,
                message: t(),
                stack: t(),
                source: t(),
                line: n,
                column: 7,
                count: 1,
            }),
            EventData::Network(request(FailureKind::None, Some(timing))),
            EventData::Network(request(FailureKind::CrossOrigin, None)),
            EventData::LongFrame(LongFrame {
                duration: n,
                blocking_duration: 1,
                style_and_layout: 2,
                long_task: false,
                scripts: vec![script(text, minus_i), script("", i)],
            }),
            EventData::Metric(Metric { name: t(), value: f64::from(n) * 0.25 }),
            EventData::Environment(Environment {
                browser: t(),
                browser_version: "130".into(),
                os: "Linux".into(),
                device_pixel_ratio: 2.0,
                device_memory: 0.5,
                cpu_cores: n,
                connection: "4g".into(),
                language: "en".into(),
                timezone: t(),
            }),
            EventData::App(AppFact::Identify { user: t(), traits: "{}".into() }),
            EventData::App(AppFact::Release(t())),
            EventData::App(AppFact::Environment(t())),
            EventData::App(AppFact::Flags(t())),
            EventData::Freeze(Freeze::Started { url: t(), last_action: t() }),
            EventData::Freeze(Freeze::Ended { duration: n, culprits: vec![script(text, i)] }),
            EventData::Note(Note { kind: NoteKind::Stopped, id: n, count: n, text: t() }),
            EventData::Dialog(DialogShown { id: n, modal: true }),
            EventData::Canvas(CanvasFrame {
                id: n,
                mime: "image/webp".into(),
                data: text.as_bytes().to_vec(),
                width: n,
                height: 1,
            }),
            EventData::WebSocket(socket),
            EventData::Frame(FrameInfo { id: n, url: t(), width: 300, height: n }),
            EventData::Font(FontAdded {
                family: t(),
                url: String::new(),
                data: vec![0xff; n.min(70_000) as usize],
                style: "italic".into(),
                weight: "700".into(),
                stretch: t(),
                unicode_range: "U+0-FF".into(),
                display: "swap".into(),
            }),
            EventData::ScrollDepth(ScrollDepth { bottom: n, height: n.wrapping_mul(2) }),
        ]
    }

    fn serde_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        rmp_serde::encode::write(&mut out, v).expect("rmp-serde encodes");
        out
    }

    /// Lengths and numbers at every boundary of MessagePack's header and integer forms.
    const EDGES: [u32; 12] = [0, 1, 15, 16, 31, 32, 127, 128, 255, 256, 65_535, 65_536];

    #[test]
    fn every_variant_is_written_as_rmp_serde_writes_it() {
        let mut seen = [false; VARIANTS];
        for len in EDGES {
            let text = "é".repeat(len as usize / 2) + &"x".repeat(len as usize % 2);
            assert_eq!(text.len(), len as usize);
            for n in EDGES.into_iter().chain([u32::MAX, u32::MAX - 1, 1 << 31, 40_000]) {
                let events = every_event(&text, n);
                for data in &events {
                    seen[variant(data)] = true;
                    let mut ours = Vec::new();
                    event_data(&mut ours, data);
                    assert_eq!(ours, serde_bytes(data), "{data:?}");
                }
                let mut b = Batch::new("session-1", "page-1", n, u64::from(n) << 12);
                b.end = u64::MAX;
                b.flags = n & !Batch::FLAG_DELTA_IDS;
                b.dropped = n;
                b.recorder_errors = 1;
                b.events = events.into_iter().map(|data| Event { t: n, data }).collect();
                let bytes = crate::encode_batch(&b).expect("encodes");
                assert_eq!(bytes, serde_bytes(&b));
                // The same writer serves borrowed batches (the server's).
                let borrowed = crate::decode_batch_borrowed(&bytes, &crate::Limits::default()).expect("decodes");
                let mut again = Vec::new();
                batch(&mut again, &borrowed);
                assert_eq!(again, bytes);
            }
        }
        assert!(seen.iter().all(|s| *s), "variants never written: {seen:?}");
    }

    #[test]
    fn integers_and_lengths_take_the_forms_rmp_serde_takes() {
        let signed = [0i64, 1, -1, -32, -33, -128, -129, -32_768, -32_769, i64::from(i32::MIN), i64::from(i32::MAX)];
        for v in signed.into_iter().chain(EDGES.iter().map(|e| i64::from(*e))) {
            let mut o = Vec::new();
            o.sint(v);
            assert_eq!(o, serde_bytes(&v), "{v}");
            let v = v as i32;
            assert_eq!(
                {
                    let mut o = Vec::new();
                    o.sint(i64::from(v));
                    o
                },
                serde_bytes(&v)
            );
        }
        for v in EDGES.iter().map(|e| u64::from(*e)).chain([u64::from(u32::MAX), 1 << 32, u64::MAX]) {
            let mut o = Vec::new();
            o.uint(v);
            assert_eq!(o, serde_bytes(&v), "{v}");
        }
        // Lists longer than 65,535 (a 32-bit array header) and a bin over 65,535 bytes.
        let m: EventData = EventData::Mutation(Mutation { removes: vec![7; 70_000], ..Mutation::default() });
        let mut o = Vec::new();
        event_data(&mut o, &m);
        assert_eq!(o, serde_bytes(&m));
        let long: Vec<MousePoint> = (0..30_000).map(|k| MousePoint { x: k * 1000, y: -k, dt: 1 }).collect();
        for trail in [long.clone(), long[..100].to_vec(), vec![]] {
            let e: EventData = EventData::MouseMove(trail);
            let mut o = Vec::new();
            event_data(&mut o, &e);
            assert_eq!(o, serde_bytes(&e));
        }
        let s = "z".repeat(70_000);
        let e = EventData::Custom(Custom { name: s.clone(), data: s });
        let mut o = Vec::new();
        event_data(&mut o, &e);
        assert_eq!(o, serde_bytes(&e));
    }
}
