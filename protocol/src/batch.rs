//! The batch envelope and the recorded events (protocol v1).
//!
//! Encoding rules, chosen for size and forward compatibility:
//! - structs travel as MessagePack arrays (field order is the format: only append new fields,
//!   and give them `#[serde(default)]`);
//! - enums are externally tagged with one-letter variant names (a map of one entry), never
//!   `untagged` or `flatten`;
//! - times inside a batch are milliseconds relative to [`Batch::start`], which is Unix epoch ms.

use serde::{Deserialize, Serialize};

/// Node id used by the recorder. `0` means "no node" (the document has no parent, an insertion
/// with no next sibling appends).
pub type NodeId = u32;

/// One upload from one page of one session: the unit of delivery, storage and idempotency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Wire format version, [`crate::PROTOCOL_VERSION`] for this build.
    pub version: u16,
    /// Session id: one per browser tab, kept across reloads (1 to 64 of `[A-Za-z0-9_-]`).
    pub session: String,
    /// Page-view id: new on every full page load (same alphabet as the session id).
    pub page: String,
    /// Sequence number of this batch within its page view, starting at 0, without gaps.
    pub seq: u32,
    /// Unix epoch milliseconds of the batch's time origin; event times are relative to it.
    pub start: u64,
    /// Unix epoch milliseconds of the last event (or of the cut, when the batch is empty).
    pub end: u64,
    /// Bit set of `FLAG_*` values.
    pub flags: u32,
    /// The recorded events, in the order they happened.
    pub events: Vec<Event>,
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

    /// Absolute time (Unix epoch ms) of an event of this batch.
    pub fn time_of(&self, event: &Event) -> u64 {
        self.start.saturating_add(u64::from(event.t))
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since [`Batch::start`].
    pub t: u32,
    /// What happened.
    pub data: EventData,
}

/// The kinds of recorded events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventData {
    /// The page view started or navigated: URL, title, viewport, user agent.
    #[serde(rename = "p")]
    Meta(PageMeta),
    /// A full snapshot of the document; replaces everything known about the page.
    #[serde(rename = "s")]
    Snapshot(Snapshot),
    /// A set of DOM changes observed together.
    #[serde(rename = "m")]
    Mutation(Mutation),
    /// The value or checked state of a form control changed (values are masked by the recorder).
    #[serde(rename = "i")]
    Input(Input),
    /// Sampled mouse positions since the previous mouse event.
    #[serde(rename = "v")]
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
    Custom(Custom),
}

/// Page meta data, sent when a page view starts and on navigation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageMeta {
    pub url: String,
    pub title: String,
    pub viewport: Viewport,
    pub user_agent: String,
    #[serde(default)]
    pub referrer: String,
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
pub struct Snapshot {
    pub nodes: Vec<Node>,
    /// Scroll position of the document when the snapshot was taken.
    pub scroll_x: i32,
    pub scroll_y: i32,
}

/// One node of a snapshot or of an added subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The recorder's id for this node, unique within a page view, never 0.
    pub id: NodeId,
    /// Id of the parent node; 0 for the document (and for the root of an added subtree, whose
    /// parent is given by [`AddedSubtree::parent`]).
    pub parent: NodeId,
    pub kind: NodeKind,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeKind {
    #[serde(rename = "D")]
    Document,
    #[serde(rename = "T")]
    Doctype { name: String, public_id: String, system_id: String },
    #[serde(rename = "E")]
    Element { tag: String, ns: Namespace, attrs: Vec<Attr> },
    #[serde(rename = "t")]
    Text(String),
    #[serde(rename = "C")]
    Comment(String),
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
        s.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u8::deserialize(d).map(Namespace::from_code)
    }
}

/// An attribute: name and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub name: String,
    pub value: String,
}

/// DOM changes observed together. Applied in field order: removals, additions, attribute and
/// text changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mutation {
    /// Nodes removed (with their subtrees).
    pub removes: Vec<NodeId>,
    /// Subtrees added. Applied front to back; each [`AddedSubtree::next`] refers to a node that
    /// exists when that subtree is applied (the recorder orders them so).
    pub adds: Vec<AddedSubtree>,
    pub attrs: Vec<AttrChange>,
    pub texts: Vec<TextChange>,
}

impl Mutation {
    /// True when the mutation changes nothing.
    pub fn is_empty(&self) -> bool {
        self.removes.is_empty() && self.adds.is_empty() && self.attrs.is_empty() && self.texts.is_empty()
    }
}

/// A subtree inserted under `parent`, before `next` (0 = appended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedSubtree {
    pub parent: NodeId,
    pub next: NodeId,
    /// The subtree in document order; the first node is its root.
    pub nodes: Vec<Node>,
}

/// An attribute set (`value` = `Some`) or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrChange {
    pub id: NodeId,
    pub name: String,
    pub value: Option<String>,
}

/// New character data of a text or comment node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextChange {
    pub id: NodeId,
    pub text: String,
}

/// A form control's new state. `value` is already masked by the recorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub id: NodeId,
    pub value: String,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    pub id: NodeId,
    pub x: i32,
    pub y: i32,
    pub button: u8,
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
pub struct Custom {
    pub name: String,
    /// JSON text, kept opaque so that hostile nesting never reaches a decoder.
    pub data: String,
}
