//! The batch envelope and the recorded events (protocol v2).
//!
//! Encoding rules, chosen for size and forward compatibility:
//! - structs travel as MessagePack arrays (field order is the format: only append new fields,
//!   and give them `#[serde(default)]`);
//! - enums are externally tagged with one-letter variant names (a map of one entry), never
//!   `untagged` or `flatten`;
//! - times inside a batch are milliseconds relative to [`Batch::start`], which is Unix epoch ms;
//! - pointer trails (mouse moves, touch points), the most numerous values of a recording, travel
//!   packed in one `bin` of varints ([`packed_points`]); readers also accept them as a list of
//!   `[x, y, dt]` arrays, as recorders before this encoding sent them;
//! - a mutation's removals, attribute changes and text changes (most of a busy page's batches)
//!   travel packed column by column in one `bin` each since protocol v2 ([`packed`]); readers
//!   also accept v1's arrays.

use serde::{Deserialize, Serialize};

pub mod network;
pub mod packed;

/// Node id used by the recorder. `0` means "no node" (the document has no parent, an insertion
/// with no next sibling appends).
pub type NodeId = u32;

/// One upload from one page of one session: the unit of delivery, storage and idempotency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
#[serde(bound(serialize = "S: Serialize + AsRef<str>"))]
pub struct Batch<S = String> {
    /// Wire format version, [`crate::PROTOCOL_VERSION`] for this build.
    pub version: u16,
    /// Session id: one per browser tab, kept across reloads (1 to 64 of `[A-Za-z0-9_-]`).
    pub session: S,
    /// Page-view id: new on every full page load (same alphabet as the session id).
    pub page: S,
    /// Sequence number of this batch within its page view, starting at 0, without gaps.
    pub seq: u32,
    /// Unix epoch milliseconds of the batch's time origin; event times are relative to it.
    pub start: u64,
    /// Unix epoch milliseconds of the last event (or of the cut, when the batch is empty).
    pub end: u64,
    /// Bit set of `FLAG_*` values.
    pub flags: u32,
    /// The recorded events, in the order they happened.
    #[serde(serialize_with = "seq_as_tuple", deserialize_with = "crate::budget::events")]
    pub events: Vec<Event<S>>,
    /// Events the recorder had to drop since the previous batch (buffer full, throttled).
    #[serde(default)]
    pub dropped: u32,
    /// Internal recorder errors caught since the previous batch (never thrown into the page).
    #[serde(default)]
    pub recorder_errors: u32,
}

impl Batch {
    /// The batch was sent while the page was being hidden or unloaded.
    pub const FLAG_FINAL: u32 = 1;
    /// The batch starts a page view (carries the page meta and full snapshot).
    pub const FLAG_PAGE_START: u32 = 2;
    /// Node ids travel delta-coded (see [`crate::codec::encode_batch_compact`]). Only ever set on
    /// the wire: decoding restores plain ids and clears it.
    pub const FLAG_DELTA_IDS: u32 = 4;

    /// A new empty batch of this protocol version.
    pub fn new(session: impl Into<String>, page: impl Into<String>, seq: u32, start: u64) -> Self {
        Batch {
            version: crate::PROTOCOL_VERSION,
            session: session.into(),
            page: page.into(),
            seq,
            start,
            end: start,
            flags: 0,
            events: Vec::new(),
            dropped: 0,
            recorder_errors: 0,
        }
    }
}

impl<S> Batch<S> {
    /// Absolute time (Unix epoch ms) of an event of this batch.
    pub fn time_of(&self, event: &Event<S>) -> u64 {
        self.start.saturating_add(u64::from(event.t))
    }

    /// Whether this is a freeze marker: the batch the upload worker sends on its own when the
    /// page stops answering, exactly one [`Freeze::Started`] event (the recorder writes that
    /// event nowhere else). Its sequence number is the one after the batch the page was
    /// filling, so a real batch may carry the same number: storage and replay keep the two
    /// apart (see `replay_core::BatchSummary::is_freeze_marker`).
    pub fn is_freeze_marker(&self) -> bool {
        matches!(self.events.as_slice(), [Event { data: EventData::Freeze(Freeze::Started { .. }), .. }])
    }
}

/// Writes a list as a fixed-length tuple: the same MessagePack array as a sequence, but
/// rmp-serde compiles a sequence's element serializer twice (for known and unknown lengths),
/// which doubled every wire type's serializer in the recorder's wasm (about 35 KB). Every
/// list of the wire types is written through this; reading is unchanged.
pub(crate) fn seq_as_tuple<T: Serialize, W: serde::Serializer>(items: &[T], s: W) -> Result<W::Ok, W::Error> {
    use serde::ser::SerializeTuple;
    let mut t = s.serialize_tuple(items.len())?;
    for item in items {
        t.serialize_element(item)?;
    }
    t.end()
}

/// Pointer trails as one MessagePack `bin`: per point, the zigzag LEB128 varints of the
/// differences of `x`, `y` and `dt` from the previous point's (from 0 for the first).
///
/// A trail of 5 points took 5 arrays of 3 integers (20 values for a decoder to visit, about 25
/// bytes); packed it is one value of 15 to 20 bytes. Decoding refuses truncated varints, varints
/// longer than 10 bytes and coordinates outside `i32` / `u32`; it allocates at most one point
/// per 3 input bytes.
pub mod packed_points {
    use super::MousePoint;
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Packed for MessagePack; human-readable formats (the JSON events API) keep the list.
    pub fn serialize<S: Serializer>(points: &[MousePoint], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return super::seq_as_tuple(points, s);
        }
        let mut out = Vec::with_capacity(points.len() * 4);
        pack_into(points, &mut out);
        s.serialize_bytes(&out)
    }

    /// Appends the packed varints of a trail (the `bin`'s content) to `out`.
    pub(crate) fn pack_into(points: &[MousePoint], out: &mut Vec<u8>) {
        let mut prev = [0i64; 3];
        for p in points {
            for (i, v) in [i64::from(p.x), i64::from(p.y), i64::from(p.dt)].into_iter().enumerate() {
                let d = v - prev[i];
                prev[i] = v;
                let mut z = ((d << 1) ^ (d >> 63)) as u64;
                while z >= 0x80 {
                    out.push((z as u8) | 0x80);
                    z >>= 7;
                }
                out.push(z as u8);
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MousePoint>, D::Error> {
        d.deserialize_any(Points)
    }

    /// Unpacks a packed trail.
    pub fn unpack(bytes: &[u8]) -> Result<Vec<MousePoint>, &'static str> {
        let mut points = Vec::with_capacity(bytes.len() / 3);
        let mut prev = [0i64; 3];
        let mut at = 0;
        while at < bytes.len() {
            let mut v = [0i64; 3];
            for (i, slot) in v.iter_mut().enumerate() {
                let mut z: u64 = 0;
                let mut shift = 0;
                loop {
                    let Some(&b) = bytes.get(at) else { return Err("truncated pointer trail") };
                    at += 1;
                    if shift == 63 && b > 1 {
                        return Err("pointer trail varint too long");
                    }
                    z |= u64::from(b & 0x7f) << shift;
                    if b & 0x80 == 0 {
                        break;
                    }
                    shift += 7;
                    if shift > 63 {
                        return Err("pointer trail varint too long");
                    }
                }
                let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
                prev[i] = prev[i].checked_add(d).ok_or("pointer coordinate out of range")?;
                *slot = prev[i];
            }
            let out_of_range = "pointer coordinate out of range";
            points.push(MousePoint {
                x: i32::try_from(v[0]).map_err(|_| out_of_range)?,
                y: i32::try_from(v[1]).map_err(|_| out_of_range)?,
                dt: u32::try_from(v[2]).map_err(|_| out_of_range)?,
            });
        }
        Ok(points)
    }

    struct Points;

    impl<'de> Visitor<'de> for Points {
        type Value = Vec<MousePoint>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a packed pointer trail or a list of points")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            unpack(v).map_err(E::custom)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut points = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(p) = seq.next_element()? {
                points.push(p);
            }
            Ok(points)
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
#[serde(bound(serialize = "S: Serialize + AsRef<str>"))]
pub struct Event<S = String> {
    /// Milliseconds since [`Batch::start`].
    pub t: u32,
    /// What happened.
    pub data: EventData<S>,
}

/// The kinds of recorded events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
#[serde(bound(serialize = "S: Serialize + AsRef<str>"))]
pub enum EventData<S = String> {
    /// The page view started or navigated: URL, title, viewport, user agent.
    #[serde(rename = "p")]
    Meta(PageMeta<S>),
    /// A full snapshot of the document; replaces everything known about the page.
    #[serde(rename = "s")]
    Snapshot(Snapshot<S>),
    /// A set of DOM changes observed together.
    #[serde(rename = "m")]
    Mutation(Mutation<S>),
    /// The value or checked state of a form control changed (values are masked by the recorder).
    #[serde(rename = "i")]
    Input(Input<S>),
    /// Sampled mouse positions since the previous mouse event.
    #[serde(rename = "v")]
    #[serde(with = "packed_points")]
    MouseMove(Vec<MousePoint>),
    /// A click.
    #[serde(rename = "c")]
    Click(Click),
    /// The document (node 0 or the document's id) or an element scrolled.
    #[serde(rename = "o")]
    Scroll(Scroll),
    /// The viewport was resized.
    #[serde(rename = "w")]
    Viewport(Viewport),
    /// An application-defined event (`addEvent(name, data)`); `data` is JSON text.
    #[serde(rename = "x")]
    Custom(Custom<S>),
    /// An in-page navigation (History API or hash change).
    #[serde(rename = "n")]
    Navigation(Navigation<S>),
    /// An element gained (`focused`) or lost focus.
    #[serde(rename = "f")]
    Focus(Focus),
    /// The text selection changed.
    #[serde(rename = "l")]
    Selection(Selection),
    /// A `<video>`/`<audio>` element changed state.
    #[serde(rename = "d")]
    Media(Media),
    /// Touch points.
    #[serde(rename = "h")]
    Touch(Touch),
    /// The page became visible (`true`) or hidden.
    #[serde(rename = "y")]
    Visibility(bool),
    /// A CSSOM change (stylesheet text, rule inserted or deleted, property set, sheets adopted).
    #[serde(rename = "z")]
    Css(CssChange<S>),
    /// A console call.
    #[serde(rename = "k")]
    Console(Console<S>),
    /// An uncaught error, unhandled rejection, failed resource load or captured error.
    #[serde(rename = "e")]
    Error(ErrorEvent<S>),
    /// A finished (or failed, or aborted) network request.
    #[serde(rename = "r")]
    Network(Network<S>),
    /// A long animation frame (or a long task where LoAF is missing), with script attribution.
    #[serde(rename = "g")]
    LongFrame(LongFrame<S>),
    /// A performance figure: web vitals (LCP, CLS, INP), navigation timing, memory.
    #[serde(rename = "u")]
    Metric(Metric<S>),
    /// The environment the page runs in.
    #[serde(rename = "j")]
    Environment(Environment<S>),
    /// Facts supplied by the application: user, release, environment name, feature flags.
    #[serde(rename = "a")]
    App(AppFact<S>),
    /// The freeze watchdog: the main thread stopped answering, or came back.
    #[serde(rename = "F")]
    Freeze(Freeze<S>),
    /// Something the recorder could not record faithfully (throttled, dropped, blocked).
    #[serde(rename = "N")]
    Note(Note<S>),
    /// A `<dialog>` was shown, modally (`showModal()`: top layer, backdrop, the rest inert) or
    /// not (`show()`). Recordings without it show open dialogs modally.
    #[serde(rename = "O")]
    Dialog(DialogShown),
    /// The pixels of a `<canvas>` as an encoded image, recorded when it changed (opt-in).
    #[serde(rename = "P")]
    Canvas(CanvasFrame<S>),
    /// A WebSocket connection opened, exchanged messages (a summary at a bounded rate), failed
    /// or closed.
    #[serde(rename = "W")]
    WebSocket(network::WebSocketActivity<S>),
    /// A cross-origin frame whose document is not recorded (no recorder in it answered): what
    /// the replay shows in its place.
    #[serde(rename = "X")]
    Frame(FrameInfo<S>),
    /// A font the page added through the `FontFace` API.
    #[serde(rename = "G")]
    Font(FontAdded<S>),
    /// How far down the page the page view has been seen (for scroll maps).
    #[serde(rename = "M")]
    ScrollDepth(ScrollDepth),
}

/// A font face the page added through the `FontFace` API (`document.fonts.add(new
/// FontFace(…))`): its `family`, its source (`url`, already scrubbed, or the font file's bytes
/// in `data`, bounded by [`crate::Limits::max_string`]; `url` is empty then) and its descriptors
/// as the page set them. The replay writes it as an `@font-face` rule ([`crate::fonts`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct FontAdded<S = String> {
    pub family: S,
    pub url: S,
    #[serde(with = "image_bytes")]
    pub data: Vec<u8>,
    pub style: S,
    pub weight: S,
    pub stretch: S,
    pub unicode_range: S,
    pub display: S,
}

/// Frame element `id` (an `<iframe>` or `<frame>`) shows a cross-origin document that is not
/// recorded: the replay shows a placeholder with the frame's `url` (already scrubbed; shown as
/// text, never loaded) and its size in CSS pixels as recorded. A document recorded under the
/// element later (its recorder answered) is shown instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct FrameInfo<S = String> {
    pub id: NodeId,
    pub url: S,
    pub width: u32,
    pub height: u32,
}

impl<S: AsRef<str>> FrameInfo<S> {
    /// What the replay shows in the frame's place (the viewer and the snapshot API alike).
    pub fn placeholder_text(&self) -> String {
        format!("Cross-origin frame not recorded: {} ({}\u{d7}{})", self.url.as_ref(), self.width, self.height)
    }
}

/// A frame of canvas `id`: its pixels encoded as `mime` (`image/webp`, `image/png` or
/// `image/jpeg`; readers draw nothing for another type), `width` × `height` image pixels, which
/// the replay stretches over the canvas as it is then. `data` is bounded by
/// [`crate::Limits::max_string`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct CanvasFrame<S = String> {
    pub id: NodeId,
    pub mime: S,
    #[serde(with = "image_bytes")]
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl<S: AsRef<str>> CanvasFrame<S> {
    /// The image type when it is one a reader may decode (`None`: draw nothing).
    pub fn image_type(&self) -> Option<&'static str> {
        ["image/webp", "image/png", "image/jpeg"].into_iter().find(|t| *t == self.mime.as_ref())
    }
}

/// Image bytes as one MessagePack `bin` (a list of numbers in JSON); readers accept either.
pub mod image_bytes {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(Bytes)
    }

    struct Bytes;

    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("image bytes")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// Declares a field-less enum that travels as a small integer (unknown codes decode to the
/// fallback variant, so old readers survive new codes).
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal),+ $(,)? } fallback $fallback:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The wire code.
            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code),+ }
            }

            /// The variant of a wire code.
            pub fn from_code(code: u8) -> Self {
                match code { $($code => $name::$variant,)+ _ => $name::$fallback }
            }
        }

        impl $name {
            /// The variant's readable name (snake case), for human-readable formats.
            pub fn name(self) -> String {
                match self { $($name::$variant => crate::readable::snake_case(stringify!($variant))),+ }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    return s.serialize_str(&self.name());
                }
                s.serialize_u8(self.code())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    return Ok(match CodeOrName::deserialize(d)? {
                        CodeOrName::Code(c) => $name::from_code(c),
                        CodeOrName::Name(n) => [$($name::$variant),+]
                            .into_iter()
                            .find(|v| v.name() == n)
                            .unwrap_or($name::$fallback),
                    });
                }
                u8::deserialize(d).map($name::from_code)
            }
        }
    };
}

pub(crate) use code_enum;

/// A code enum in a human-readable format: its name, or the wire code.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum CodeOrName {
    Code(u8),
    Name(String),
}

code_enum! {
    /// How an in-page navigation happened.
    NavigationKind { Push = 0, Replace = 1, Pop = 2, Hash = 3 } fallback Push
}

/// An in-page navigation to `url` (already scrubbed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Navigation<S = String> {
    pub url: S,
    pub kind: NavigationKind,
}

/// Dialog `id` was shown, modally or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogShown {
    pub id: NodeId,
    pub modal: bool,
}

/// Focus change of node `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Focus {
    pub id: NodeId,
    pub focused: bool,
}

/// A selection from (`anchor`, `anchor_offset`) to (`focus`, `focus_offset`); ids 0 = none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub anchor: NodeId,
    pub anchor_offset: u32,
    pub focus: NodeId,
    pub focus_offset: u32,
}

code_enum! {
    /// What a media element did.
    MediaAction { Play = 0, Pause = 1, Seeked = 2, RateChange = 3, VolumeChange = 4, Ended = 5 } fallback Pause
}

/// State of a media element after `action`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Media {
    pub id: NodeId,
    pub action: MediaAction,
    /// `currentTime`, seconds.
    pub time: f64,
    pub rate: f64,
    pub volume: f64,
    pub muted: bool,
}

code_enum! {
    /// Phase of a touch event.
    TouchKind { Start = 0, Move = 1, End = 2, Cancel = 3 } fallback Move
}

/// Touch points of one touch event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    pub kind: TouchKind,
    #[serde(with = "packed_points")]
    pub points: Vec<MousePoint>,
}

/// A CSSOM change. `owner` is the node owning the sheet (`<style>`, `<link>`), or for
/// [`CssOp::Adopt`] the document or shadow root adopting sheets; `sheet` identifies a
/// constructed sheet (`new CSSStyleSheet()`) when `owner` is 0 or for `Adopt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct CssChange<S = String> {
    pub owner: NodeId,
    pub sheet: u32,
    pub op: CssOp<S>,
}

/// The CSSOM operations. A `path` addresses a rule: indexes from the sheet's top-level rule
/// list into nested grouping rules (`@media`, `@supports`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub enum CssOp<S = String> {
    /// The whole text of the sheet (inlined `<link>`, `replace`/`replaceSync`, a new sheet).
    #[serde(rename = "t")]
    Text(S),
    /// `insertRule(rule, index)`: the last path element is the index.
    #[serde(rename = "i")]
    Insert {
        #[serde(serialize_with = "seq_as_tuple")]
        path: Vec<u32>,
        rule: S,
    },
    /// `deleteRule(index)`.
    #[serde(rename = "d")]
    Delete {
        #[serde(serialize_with = "seq_as_tuple")]
        path: Vec<u32>,
    },
    /// `style.setProperty(name, value, priority)` on the rule at `path`.
    #[serde(rename = "p")]
    SetProperty {
        #[serde(serialize_with = "seq_as_tuple")]
        path: Vec<u32>,
        name: S,
        value: S,
        priority: S,
    },
    /// `style.removeProperty(name)` on the rule at `path`.
    #[serde(rename = "r")]
    RemoveProperty {
        #[serde(serialize_with = "seq_as_tuple")]
        path: Vec<u32>,
        name: S,
    },
    /// `adoptedStyleSheets` of `owner` became these constructed sheets, in order.
    #[serde(rename = "a")]
    Adopt {
        #[serde(serialize_with = "seq_as_tuple")]
        sheets: Vec<u32>,
    },
}

code_enum! {
    /// Console method.
    ConsoleLevel { Log = 0, Debug = 1, Info = 2, Warn = 3, Error = 4, Trace = 5, Assert = 6 } fallback Log
}

/// A console call with its arguments serialised (bounded depth, length and count).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Console<S = String> {
    pub level: ConsoleLevel,
    #[serde(serialize_with = "seq_as_tuple")]
    pub args: Vec<S>,
    /// Stack of the call for errors, warnings, traces and assertions; empty otherwise.
    pub stack: S,
}

code_enum! {
    /// Where an error came from.
    ErrorKind { Uncaught = 0, Rejection = 1, Resource = 2, Captured = 3 } fallback Uncaught
}

/// An error. Repeats of the same error are counted in `count` instead of sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct ErrorEvent<S = String> {
    pub kind: ErrorKind,
    pub message: S,
    pub stack: S,
    pub source: S,
    pub line: u32,
    pub column: u32,
    pub count: u32,
}

code_enum! {
    /// The API that made a request.
    RequestKind { Fetch = 0, Xhr = 1, Beacon = 2, Resource = 3 } fallback Fetch
}

/// A network request. The event time is the request start; URLs are scrubbed; headers and
/// bodies are only present for URLs on the page's explicit allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Network<S = String> {
    pub kind: RequestKind,
    pub method: S,
    pub url: S,
    /// HTTP status, 0 when the request failed or was aborted.
    pub status: u16,
    /// Milliseconds from start to the end of the response (or the failure).
    pub duration: u32,
    pub request_size: u64,
    pub response_size: u64,
    pub failed: bool,
    pub aborted: bool,
    pub error: S,
    #[serde(serialize_with = "seq_as_tuple")]
    pub request_headers: Vec<Attr<S>>,
    #[serde(serialize_with = "seq_as_tuple")]
    pub response_headers: Vec<Attr<S>>,
    pub request_body: S,
    pub response_body: S,
    /// Why the request got no response (`none` when it got one; always `none` from recorders
    /// older than this field, which only said `failed` and `aborted`).
    #[serde(default)]
    pub failure: network::FailureKind,
    /// The browser's Resource Timing of the request (phases, sizes), when it gave one.
    #[serde(default)]
    pub timing: Option<network::ResourceTiming<S>>,
}

/// Script attribution of a long animation frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct ScriptTiming<S = String> {
    pub invoker: S,
    pub invoker_type: S,
    pub source_url: S,
    pub function: S,
    pub char_position: i32,
    /// Milliseconds.
    pub duration: u32,
    pub forced_style_layout: u32,
    pub pause_duration: u32,
    /// 1-based line of `function` in `source_url`, 0 when unknown (Long Animation Frames only
    /// give a character position; sampled stacks give lines).
    #[serde(default)]
    pub line: u32,
    /// 1-based column, 0 when unknown.
    #[serde(default)]
    pub column: u32,
}

/// A long animation frame (`long_task` = true: a PerformanceLongTaskTiming, no scripts).
/// The event time is the frame start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct LongFrame<S = String> {
    pub duration: u32,
    pub blocking_duration: u32,
    pub style_and_layout: u32,
    pub long_task: bool,
    #[serde(serialize_with = "seq_as_tuple")]
    pub scripts: Vec<ScriptTiming<S>>,
}

/// A named performance figure (`lcp`, `cls`, `inp`, `fcp`, `ttfb`, `dom_content_loaded`,
/// `load`, `memory_used`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Metric<S = String> {
    pub name: S,
    pub value: f64,
}

/// The environment of the page view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Environment<S = String> {
    pub browser: S,
    pub browser_version: S,
    pub os: S,
    pub device_pixel_ratio: f64,
    /// GiB, 0 when unknown.
    pub device_memory: f64,
    pub cpu_cores: u32,
    pub connection: S,
    pub language: S,
    pub timezone: S,
}

/// A fact supplied by the host application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub enum AppFact<S = String> {
    /// `identify(user, traits)`; traits are JSON text.
    #[serde(rename = "u")]
    Identify { user: S, traits: S },
    #[serde(rename = "r")]
    Release(S),
    #[serde(rename = "e")]
    Environment(S),
    /// Feature flags as JSON text.
    #[serde(rename = "f")]
    Flags(S),
}

/// The freeze watchdog's markers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub enum Freeze<S = String> {
    /// No heartbeat from the main thread for a while (time of the event: the last heartbeat).
    #[serde(rename = "s")]
    Started { url: S, last_action: S },
    /// The main thread answered again after `duration` ms; `culprits` from Long Animation Frames.
    #[serde(rename = "e")]
    Ended {
        duration: u32,
        #[serde(serialize_with = "seq_as_tuple")]
        culprits: Vec<ScriptTiming<S>>,
    },
}

code_enum! {
    /// What a note is about.
    NoteKind { Throttled = 0, Dropped = 1, Blocked = 2, Stopped = 3, Other = 4 } fallback Other
}

/// Something the recorder could not record faithfully; the viewer shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Note<S = String> {
    pub kind: NoteKind,
    /// The node concerned, 0 for none.
    pub id: NodeId,
    pub count: u32,
    pub text: S,
}

/// Page meta data, sent when a page view starts and on navigation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
#[serde(bound(serialize = "S: Serialize"))]
pub struct PageMeta<S = String> {
    pub url: S,
    pub title: S,
    pub viewport: Viewport,
    pub user_agent: S,
    #[serde(default)]
    pub referrer: S,
}

/// Viewport size in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
}

/// A full snapshot: the document as a flat node list in document order.
///
/// Every node's parent appears before it, and siblings appear in their order, so applying the
/// list front to back rebuilds the tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize", deserialize = "S: Deserialize<'de>"))]
pub struct Snapshot<S = String> {
    #[serde(serialize_with = "seq_as_tuple", deserialize_with = "crate::budget::nodes")]
    pub nodes: Vec<Node<S>>,
    /// Scroll position of the document when the snapshot was taken.
    pub scroll_x: i32,
    pub scroll_y: i32,
}

/// One node of a snapshot or of an added subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Node<S = String> {
    /// The recorder's id for this node, unique within a page view, never 0.
    pub id: NodeId,
    /// Id of the parent node; 0 for the document (and for the root of an added subtree, whose
    /// parent is given by [`AddedSubtree::parent`]).
    pub parent: NodeId,
    pub kind: NodeKind<S>,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub enum NodeKind<S = String> {
    #[serde(rename = "D")]
    Document,
    #[serde(rename = "T")]
    Doctype { name: S, public_id: S, system_id: S },
    #[serde(rename = "E")]
    Element {
        tag: S,
        ns: Namespace,
        #[serde(serialize_with = "seq_as_tuple")]
        attrs: Vec<Attr<S>>,
    },
    #[serde(rename = "t")]
    Text(S),
    #[serde(rename = "C")]
    Comment(S),
    /// An open shadow root attached to its parent element.
    #[serde(rename = "S")]
    ShadowRoot,
}

/// Element namespace, encoded as a small integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Namespace {
    #[default]
    Html,
    Svg,
    MathMl,
}

impl Namespace {
    /// The namespace URI, as the DOM reports it.
    pub fn uri(self) -> &'static str {
        match self {
            Namespace::Html => "http://www.w3.org/1999/xhtml",
            Namespace::Svg => "http://www.w3.org/2000/svg",
            Namespace::MathMl => "http://www.w3.org/1998/Math/MathML",
        }
    }

    /// The wire code of this namespace.
    pub fn code(self) -> u8 {
        match self {
            Namespace::Html => 0,
            Namespace::Svg => 1,
            Namespace::MathMl => 2,
        }
    }

    /// The namespace for a wire code; unknown codes read as HTML.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Namespace::Svg,
            2 => Namespace::MathMl,
            _ => Namespace::Html,
        }
    }
}

impl Serialize for Namespace {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return s.serialize_str(match self {
                Namespace::Html => "html",
                Namespace::Svg => "svg",
                Namespace::MathMl => "math_ml",
            });
        }
        s.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return Ok(match CodeOrName::deserialize(d)? {
                CodeOrName::Code(c) => Namespace::from_code(c),
                CodeOrName::Name(n) if n == "svg" => Namespace::Svg,
                CodeOrName::Name(n) if n == "math_ml" => Namespace::MathMl,
                CodeOrName::Name(_) => Namespace::Html,
            });
        }
        u8::deserialize(d).map(Namespace::from_code)
    }
}

/// An attribute: name and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Attr<S = String> {
    pub name: S,
    pub value: S,
}

/// DOM changes observed together. Applied in field order: removals, additions, attribute and
/// text changes.
///
/// Removals, attribute changes and text changes travel packed ([`packed`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize + AsRef<str>"))]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
pub struct Mutation<S = String> {
    /// Nodes removed (with their subtrees).
    #[serde(with = "packed::removes")]
    pub removes: Vec<NodeId>,
    /// Subtrees added. Applied front to back; each [`AddedSubtree::next`] refers to a node that
    /// exists when that subtree is applied (the recorder orders them so).
    #[serde(serialize_with = "seq_as_tuple", deserialize_with = "crate::budget::adds")]
    pub adds: Vec<AddedSubtree<S>>,
    #[serde(with = "packed::attrs")]
    pub attrs: Vec<AttrChange<S>>,
    #[serde(with = "packed::texts")]
    pub texts: Vec<TextChange<S>>,
}

impl<S> Mutation<S> {
    /// True when the mutation changes nothing.
    pub fn is_empty(&self) -> bool {
        self.removes.is_empty() && self.adds.is_empty() && self.attrs.is_empty() && self.texts.is_empty()
    }
}

/// A subtree inserted under `parent`, before `next` (0 = appended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize", deserialize = "S: Deserialize<'de>"))]
pub struct AddedSubtree<S = String> {
    pub parent: NodeId,
    pub next: NodeId,
    /// The subtree in document order; the first node is its root.
    #[serde(serialize_with = "seq_as_tuple", deserialize_with = "crate::budget::nodes")]
    pub nodes: Vec<Node<S>>,
}

/// An attribute set (`value` = `Some`) or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct AttrChange<S = String> {
    pub id: NodeId,
    pub name: S,
    pub value: Option<S>,
}

/// New character data of a text or comment node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct TextChange<S = String> {
    pub id: NodeId,
    pub text: S,
}

/// A form control's new state. `value` is already masked by the recorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Input<S = String> {
    pub id: NodeId,
    pub value: S,
    pub checked: Option<bool>,
}

/// A sampled mouse position; `dt` is milliseconds after the event's own time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MousePoint {
    pub x: i32,
    pub y: i32,
    pub dt: u32,
}

/// A click on node `id` at viewport position (`x`, `y`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    pub id: NodeId,
    pub x: i32,
    pub y: i32,
    pub button: u8,
    /// A short label of what was clicked (the text of the button or link, at most 60
    /// characters), masked in the page like any recorded text; empty from older recorders.
    #[serde(default)]
    pub label: String,
    /// A short CSS selector of the clicked element (tag, id, a few classes, `:nth-of-type`,
    /// from the nearest ancestor with an id, at most [`MAX_CLICK_PATH`] characters), made on
    /// click for click maps; empty from older recorders.
    #[serde(default)]
    pub path: String,
    /// Whether the clicked element is, or is inside, a control that answers a click: a link, a
    /// button, a label, a summary, a select, a checkbox or other button-like input, an element
    /// with a widget role (`button`, `link`, `tab`, `checkbox`, ...). Text fields are not: a click
    /// there answers with a caret. Dead clicks are judged on such clicks
    /// ([`crate::frustration`]). `None` from older recorders and imports, where the focus a press
    /// gives stands in for it (Chromium focuses a clicked button; Safari, and Firefox on macOS,
    /// do not).
    #[serde(default)]
    pub interactive: Option<bool>,
}

/// Longest [`Click::path`] a recorder sends (readers cut longer ones).
pub const MAX_CLICK_PATH: usize = 300;

/// How far down the page a page view has been seen: the bottom edge of the viewport
/// (`scrollY + innerHeight`) and the document's scroll height, both in CSS pixels. The recorder
/// sends one when a page view starts (or navigates in the page) and again each time the deepest
/// tenth of the page reached grows (a dozen per page view at most); click maps turn them into
/// scroll maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrollDepth {
    pub bottom: u32,
    pub height: u32,
}

impl ScrollDepth {
    /// The tenth of the page reached, 0 to 10 (10: the bottom; a page shorter than the viewport
    /// is seen whole).
    pub fn tenth(&self) -> u8 {
        if self.height == 0 || self.bottom >= self.height {
            return 10;
        }
        (u64::from(self.bottom) * 10 / u64::from(self.height)) as u8
    }
}

/// A scroll position of the document (`id` = 0) or of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scroll {
    pub id: NodeId,
    pub x: i32,
    pub y: i32,
}

/// An application-defined event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct Custom<S = String> {
    pub name: S,
    /// JSON text, kept opaque so that hostile nesting never reaches a decoder.
    pub data: S,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mouse(points: Vec<MousePoint>) -> Batch {
        let mut b = Batch::new("s", "p", 0, 0);
        b.events.push(Event { t: 0, data: EventData::MouseMove(points) });
        b
    }

    #[test]
    fn pointer_trails_travel_packed_and_come_back_equal() {
        let points = vec![
            MousePoint { x: 0, y: 0, dt: 0 },
            MousePoint { x: i32::MAX, y: i32::MIN, dt: u32::MAX },
            MousePoint { x: i32::MIN, y: i32::MAX, dt: 0 },
            MousePoint { x: -3, y: 700, dt: 16 },
        ];
        let b = mouse(points.clone());
        let bytes = crate::encode_batch(&b).expect("encode");
        assert_eq!(crate::decode_batch(&bytes, &crate::Limits::default()).expect("decode"), b);
        // 5 small moves pack into one `bin` of 3 bytes per point, plus its 2-byte header.
        let small: Vec<_> = (0..5).map(|i| MousePoint { x: 100 + i, y: 50 + i, dt: 10 * i as u32 }).collect();
        let packed = rmp_serde::to_vec(&EventData::<String>::MouseMove(small.clone())).expect("encode");
        let listed =
            rmp_serde::to_vec(&("v", small.iter().map(|p| (p.x, p.y, p.dt)).collect::<Vec<_>>())).expect("encode");
        assert!(packed.len() < listed.len(), "{} vs {}", packed.len(), listed.len());
    }

    #[test]
    fn json_keeps_pointer_trails_as_lists() {
        let points = vec![MousePoint { x: 1, y: -2, dt: 3 }];
        let json = serde_json::to_string(&EventData::<String>::MouseMove(points.clone())).expect("json");
        assert_eq!(json, r#"{"v":[{"x":1,"y":-2,"dt":3}]}"#);
        assert_eq!(serde_json::from_str::<EventData>(&json).expect("back"), EventData::MouseMove(points));
    }

    #[test]
    fn trails_sent_as_lists_by_older_recorders_still_decode() {
        let points = vec![MousePoint { x: 1, y: 2, dt: 3 }, MousePoint { x: -4, y: 5, dt: 60 }];
        // An event map {"v": [[x, y, dt], ...]}, as written before trails were packed.
        let mut bytes = Vec::new();
        rmp::encode::write_map_len(&mut bytes, 1).expect("write");
        rmp::encode::write_str(&mut bytes, "v").expect("write");
        rmp::encode::write_array_len(&mut bytes, 2).expect("write");
        for p in &points {
            rmp::encode::write_array_len(&mut bytes, 3).expect("write");
            rmp::encode::write_sint(&mut bytes, i64::from(p.x)).expect("write");
            rmp::encode::write_sint(&mut bytes, i64::from(p.y)).expect("write");
            rmp::encode::write_uint(&mut bytes, u64::from(p.dt)).expect("write");
        }
        let data: EventData = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(data, EventData::MouseMove(points));
    }

    #[test]
    fn broken_packed_trails_are_refused() {
        use packed_points::unpack;
        assert_eq!(unpack(&[]), Ok(vec![]));
        assert_eq!(unpack(&[2, 4, 6]), Ok(vec![MousePoint { x: 1, y: 2, dt: 3 }]));
        assert!(unpack(&[2, 4]).is_err(), "a point cut short");
        assert!(unpack(&[2, 4, 0x80]).is_err(), "a varint cut short");
        assert!(unpack(&[0xff; 11]).is_err(), "a varint longer than 10 bytes");
        let mut big = vec![0x80, 0x80, 0x80, 0x80, 0x10]; // zigzag of 2^31: one past i32::MAX
        big.extend([0, 0]);
        assert!(unpack(&big).is_err(), "x beyond i32");
        assert!(unpack(&[0, 0, 1]).is_err(), "a negative dt");
    }
}
