//! The replay model: a DOM tree that applies a snapshot and recorded events.
//!
//! Used natively by the server (to answer "the document at time t") and in wasm by the viewer
//! (to seek without touching the real DOM). Hostile input never panics it: unknown ids are
//! ignored, subtrees deeper than [`MAX_DEPTH`] or beyond [`MAX_NODES`] are refused and counted,
//! and every walk is iterative so deep trees cannot overflow the stack.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use crate::batch::{
    Attr, AttrChange, CanvasFrame, EventData, FontAdded, FrameInfo, Media, Mutation, Namespace, Node, NodeId, NodeKind,
    Selection, Snapshot,
};
use crate::cssom::CssState;

/// Deepest nesting the model accepts; deeper nodes are refused (and counted).
pub const MAX_DEPTH: u32 = 10_000;
/// Most nodes the model holds at once.
pub const MAX_NODES: usize = 5_000_000;
/// Most attributes one element holds (the decoder's default cap on a recorded element,
/// [`crate::Limits::max_attrs`]): attribute changes that would add more are refused, so that
/// a storm of new names cannot make every change on the element scan an ever longer list.
pub const MAX_ATTRS: usize = 1_024;
/// Elements with at least this many attributes have them indexed by name.
const INDEXED_ATTRS: usize = 32;

/// What a node of the model is, with its current state.
#[derive(Debug, Clone, PartialEq)]
pub enum DomKind {
    Document,
    Doctype {
        name: String,
        public_id: String,
        system_id: String,
    },
    Element {
        tag: String,
        ns: Namespace,
        attrs: Vec<Attr>,
        /// Current value of a form control (a property, not the `value` attribute).
        value: Option<String>,
        /// Current checked state of a checkbox or radio.
        checked: Option<bool>,
        /// Scroll position of the element, when it was scrolled.
        scroll: Option<(i32, i32)>,
    },
    Text(String),
    Comment(String),
    ShadowRoot,
}

impl From<NodeKind> for DomKind {
    fn from(kind: NodeKind) -> Self {
        match kind {
            NodeKind::Document => DomKind::Document,
            NodeKind::Doctype { name, public_id, system_id } => DomKind::Doctype { name, public_id, system_id },
            NodeKind::Element { tag, ns, attrs } => {
                DomKind::Element { tag, ns, attrs, value: None, checked: None, scroll: None }
            }
            NodeKind::Text(t) => DomKind::Text(t),
            NodeKind::Comment(t) => DomKind::Comment(t),
            NodeKind::ShadowRoot => DomKind::ShadowRoot,
        }
    }
}

/// A node of the model with its tree links (0 = none).
///
/// The kind is shared between clones of the model (keyframes) and copied only when one of them
/// changes it, so a clone costs no string copies.
#[derive(Debug, Clone, PartialEq)]
pub struct DomNode {
    pub kind: Arc<DomKind>,
    pub parent: NodeId,
    pub first_child: NodeId,
    pub last_child: NodeId,
    pub prev: NodeId,
    pub next: NodeId,
    depth: u32,
}

/// Hashing of node ids for the model's maps: the id, xored with a key, times an odd constant,
/// with the high half folded into the low half (so that ids differing only in high bits still
/// land in different buckets). SipHash, the standard default, cost a large share of every seek
/// in wasm; ids are small integers, and the key still comes from the standard library's random
/// state where the platform has one.
#[derive(Debug, Clone, Copy)]
pub struct IdHash {
    key: u64,
}

impl Default for IdHash {
    fn default() -> Self {
        static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let key = *KEY.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1);
        IdHash { key }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher { key: self.key, hash: 0 }
    }
}

/// The hasher of [`IdHash`].
#[derive(Debug)]
pub struct IdHasher {
    key: u64,
    hash: u64,
}

impl IdHasher {
    fn mix(&mut self, v: u64) {
        let m = (self.hash ^ v ^ self.key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.hash = m ^ (m >> 32);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.hash
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(b));
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.mix(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }
}

/// A map keyed by node id, hashed with [`IdHash`].
pub type IdMap<V> = HashMap<NodeId, V, IdHash>;
/// A set of node ids, hashed with [`IdHash`].
pub type IdSet = std::collections::HashSet<NodeId, IdHash>;

/// The node kinds of one snapshot or mutation event, taken out of it once ([`take_kinds`]) and
/// shared by every model that applies the event ([`Dom::apply_shared`]): inserting a node then
/// copies no string, and removing it frees none.
pub type SharedKinds = Vec<Arc<DomKind>>;

/// Moves the node kinds out of a snapshot or mutation event, in event order (the snapshot's
/// nodes; the nodes of each added subtree in turn), converted for the model. The event keeps
/// its ids and parents, but its kinds become placeholders: from then on it must be applied with
/// [`Dom::apply_shared`] and these kinds. Other events give an empty list.
pub fn take_kinds(event: &mut EventData) -> SharedKinds {
    let take = |n: &mut Node| Arc::new(DomKind::from(std::mem::replace(&mut n.kind, NodeKind::Document)));
    match event {
        EventData::Snapshot(s) => s.nodes.iter_mut().map(take).collect(),
        EventData::Mutation(m) => m.adds.iter_mut().flat_map(|a| a.nodes.iter_mut()).map(take).collect(),
        _ => Vec::new(),
    }
}

/// Number of kinds [`take_kinds`] takes from an event.
fn node_count(event: &EventData) -> usize {
    match event {
        EventData::Snapshot(s) => s.nodes.len(),
        EventData::Mutation(m) => m.adds.iter().map(|a| a.nodes.len()).sum(),
        _ => 0,
    }
}

/// Where inserted nodes get their kinds: copied from the event, or shared ([`take_kinds`]).
#[derive(Clone, Copy)]
enum Kinds<'a> {
    Owned,
    Shared(&'a [Arc<DomKind>]),
}

impl Kinds<'_> {
    fn get(self, i: usize, node: &Node) -> Arc<DomKind> {
        match self {
            Kinds::Shared(kinds) => match kinds.get(i) {
                Some(k) => Arc::clone(k),
                None => Arc::new(node.kind.clone().into()),
            },
            Kinds::Owned => Arc::new(node.kind.clone().into()),
        }
    }
}

/// The document of one page view as known at some point of the recording.
#[derive(Debug, Clone, Default)]
pub struct Dom {
    nodes: IdMap<DomNode>,
    document: NodeId,
    /// Document scroll position.
    pub scroll: (i32, i32),
    /// Last known URL and title of the page.
    pub url: String,
    pub title: String,
    /// Nodes or changes refused because they referred to unknown nodes or broke a cap.
    pub refused: u64,
    /// Stylesheet state beyond the markup (inserted rules, inlined links, adopted sheets).
    pub css: CssState,
    /// Last recorded state of `<video>`/`<audio>` elements, by id.
    pub media: IdMap<Media>,
    /// The last text selection (ids 0 when there is none).
    pub selection: Option<Selection>,
    /// The focused element, 0 for none.
    pub focused: NodeId,
    /// How each dialog was last shown (true: modally), by id; a dialog not in it is shown
    /// modally when open (recordings from before modality was recorded).
    pub dialogs: IdMap<bool>,
    /// The latest recorded frame of each canvas, by id (shared by the model's clones).
    pub canvases: IdMap<Arc<CanvasFrame>>,
    /// Cross-origin frames whose document is not recorded, by element id: what is shown in
    /// their place while no document is recorded under them (see [`Dom::frame_placeholder`]).
    pub frames: IdMap<Arc<FrameInfo>>,
    /// Fonts the page view added through the `FontFace` API, in order (at most
    /// [`crate::fonts::MAX_FONTS`]; a new page view starts without).
    pub fonts: Vec<Arc<FontAdded>>,
    /// Position of each attribute by name, for the elements with many attributes (see
    /// `change_attr`); an element's entry goes with the element.
    attr_index: IdMap<AttrIndex>,
}

/// The attributes of one element by name (see `Dom::change_attr`). Each attribute has a
/// sequence number, increasing along the element's list (an attribute is only ever appended or
/// removed), so that a removal renumbers nothing: the position of a name is the place of its
/// number in `order`, found by binary search.
#[derive(Debug, Clone)]
struct AttrIndex {
    /// Sequence number of the first attribute of each name.
    seq: HashMap<String, u64>,
    /// The sequence numbers in list order (ascending), one per attribute.
    order: Vec<u64>,
    /// Number of the next attribute appended.
    next: u64,
    /// The recorded element repeats a name (changes never add a repeat).
    repeats: bool,
}

impl AttrIndex {
    /// Position of the first attribute named `name` in the element's list.
    fn position(&self, name: &str) -> Option<usize> {
        let seq = self.seq.get(name)?;
        self.order.binary_search(seq).ok()
    }
}

impl Dom {
    /// An empty model (no document yet).
    pub fn new() -> Self {
        Dom::default()
    }

    /// Id of the document node, 0 before the first snapshot.
    pub fn document(&self) -> NodeId {
        self.document
    }

    /// A node by id.
    pub fn node(&self, id: NodeId) -> Option<&DomNode> {
        self.nodes.get(&id)
    }

    /// Number of nodes in the model.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// What a clone of the model costs, in nodes: its nodes, and its style sheets' texts and
    /// operations ([`CssState::weight`]), which a page of few nodes can make the bulk of it.
    pub fn weight(&self) -> usize {
        self.nodes.len().saturating_add(self.css.weight())
    }

    /// True before the first snapshot.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Children of a node, in order.
    pub fn children(&self, id: NodeId) -> Children<'_> {
        Children { dom: self, next: self.nodes.get(&id).map_or(0, |n| n.first_child) }
    }

    /// Applies one event whose node kinds were taken out by [`take_kinds`] (`kinds`). When
    /// `kinds` does not match the event's nodes (an event that kept its kinds), this is
    /// [`Dom::apply`].
    pub fn apply_shared(&mut self, event: &EventData, kinds: &[Arc<DomKind>]) {
        if kinds.is_empty() || kinds.len() != node_count(event) {
            return self.apply(event);
        }
        match event {
            EventData::Snapshot(snapshot) => self.snapshot_with(snapshot, Kinds::Shared(kinds)),
            EventData::Mutation(m) => self.mutation_with(m, Kinds::Shared(kinds)),
            other => self.apply(other),
        }
    }

    /// [`Dom::apply_shared`], leaving out the added subtrees whose root `dead` says a later
    /// event removes anyway. For a long seek: the end state is the same (changes to the nodes
    /// left out are refused instead of applied, and a sibling that a later addition is placed
    /// before must never be left out), and the work of building and tearing down subtrees that
    /// nobody sees is saved.
    pub fn apply_shared_skipping(&mut self, event: &EventData, kinds: &[Arc<DomKind>], dead: impl Fn(NodeId) -> bool) {
        match event {
            EventData::Mutation(m) if kinds.len() == node_count(event) => {
                self.mutation_skipping(m, Kinds::Shared(kinds), dead)
            }
            EventData::Mutation(m) => self.mutation_skipping(m, Kinds::Owned, dead),
            other => self.apply_shared(other, kinds),
        }
    }

    /// Applies one event. Events that do not change the document (clicks, mouse) are ignored.
    pub fn apply(&mut self, event: &EventData) {
        match event {
            EventData::Meta(meta) => {
                self.fonts.clear();
                self.url.clone_from(&meta.url);
                self.title.clone_from(&meta.title);
            }
            EventData::Snapshot(snapshot) => self.apply_snapshot(snapshot),
            EventData::Mutation(m) => self.apply_mutation(m),
            EventData::Input(input) => match self.nodes.get_mut(&input.id).map(|n| Arc::make_mut(&mut n.kind)) {
                Some(DomKind::Element { value, checked, .. }) => {
                    *value = Some(input.value.clone());
                    if input.checked.is_some() {
                        *checked = input.checked;
                    }
                }
                _ => self.refused += 1,
            },
            EventData::Scroll(s) => {
                if s.id == 0 || s.id == self.document {
                    self.scroll = (s.x, s.y);
                } else if let Some(DomKind::Element { scroll, .. }) =
                    self.nodes.get_mut(&s.id).map(|n| Arc::make_mut(&mut n.kind))
                {
                    *scroll = Some((s.x, s.y));
                }
            }
            EventData::Navigation(n) => self.url.clone_from(&n.url),
            EventData::Css(change) => {
                if (change.owner != 0 && !self.nodes.contains_key(&change.owner)) || !self.css.apply(change) {
                    self.refused += 1;
                }
            }
            EventData::Media(m) => {
                if self.nodes.contains_key(&m.id) {
                    self.media.insert(m.id, *m);
                } else {
                    self.refused += 1;
                }
            }
            EventData::Selection(s) => self.selection = (s.anchor != 0).then_some(*s),
            EventData::Dialog(d) => match self.nodes.get(&d.id).map(|n| &*n.kind) {
                Some(DomKind::Element { .. }) => {
                    self.dialogs.insert(d.id, d.modal);
                }
                _ => self.refused += 1,
            },
            // A frame of a type no reader draws does not replace a drawable one.
            EventData::Canvas(c) => match self.nodes.get(&c.id).map(|n| &*n.kind) {
                Some(DomKind::Element { .. }) if c.image_type().is_some() => {
                    self.canvases.insert(c.id, Arc::new(c.clone()));
                }
                _ => self.refused += 1,
            },
            EventData::Frame(f) => match self.nodes.get(&f.id).map(|n| &*n.kind) {
                Some(DomKind::Element { tag, .. })
                    if tag.eq_ignore_ascii_case("iframe") || tag.eq_ignore_ascii_case("frame") =>
                {
                    self.frames.insert(f.id, Arc::new(f.clone()));
                }
                _ => self.refused += 1,
            },
            EventData::Font(f) => {
                if self.fonts.len() < crate::fonts::MAX_FONTS {
                    self.fonts.push(Arc::new(f.clone()));
                } else {
                    self.refused += 1;
                }
            }
            EventData::Focus(f) => {
                if f.focused {
                    self.focused = f.id;
                } else if self.focused == f.id {
                    self.focused = 0;
                }
            }
            EventData::MouseMove(_)
            | EventData::Click(_)
            | EventData::Viewport(_)
            | EventData::Custom(_)
            | EventData::Touch(_)
            | EventData::Visibility(_)
            | EventData::Console(_)
            | EventData::Error(_)
            | EventData::Network(_)
            | EventData::LongFrame(_)
            | EventData::Metric(_)
            | EventData::Environment(_)
            | EventData::App(_)
            | EventData::Freeze(_)
            | EventData::Note(_)
            | EventData::WebSocket(_)
            | EventData::ScrollDepth(_) => {}
        }
    }

    /// Replaces the whole model with a snapshot.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) {
        self.snapshot_with(snapshot, Kinds::Owned);
    }

    fn snapshot_with(&mut self, snapshot: &Snapshot, kinds: Kinds<'_>) {
        // Clearing a map costs its capacity, not its length: after one big page, every small
        // page's snapshot would pay for the big one again (100,000 page views after a page of
        // 200,000 nodes: 2·10¹⁰ bytes touched). A map far bigger than needed is replaced.
        if self.nodes.capacity() > 4 * snapshot.nodes.len().max(1024) {
            self.nodes = IdMap::with_capacity_and_hasher(snapshot.nodes.len(), IdHash::default());
        } else {
            self.nodes.clear();
            self.nodes.reserve(snapshot.nodes.len());
        }
        self.document = 0;
        self.scroll = (snapshot.scroll_x, snapshot.scroll_y);
        self.css = CssState::default();
        self.media.clear();
        self.dialogs.clear();
        self.canvases.clear();
        self.frames.clear();
        self.attr_index.clear();
        self.selection = None;
        self.focused = 0;
        for (i, node) in snapshot.nodes.iter().enumerate() {
            let kind = kinds.get(i, node);
            if node.parent == 0 && self.document == 0 && matches!(*kind, DomKind::Document) {
                self.document = node.id;
                self.nodes.insert(node.id, DomNode { kind, ..DomNode::detached(DomKind::Document, 0) });
                continue;
            }
            self.insert(node.id, kind, node.parent, 0);
        }
    }

    /// Applies removals, then additions, then attribute and text changes.
    pub fn apply_mutation(&mut self, m: &Mutation) {
        self.mutation_with(m, Kinds::Owned);
    }

    fn mutation_with(&mut self, m: &Mutation, kinds: Kinds<'_>) {
        self.mutation_skipping(m, kinds, |_| false);
    }

    fn mutation_skipping(&mut self, m: &Mutation, kinds: Kinds<'_>, dead: impl Fn(NodeId) -> bool) {
        for &id in &m.removes {
            self.remove(id);
        }
        let mut i = 0;
        for add in &m.adds {
            let first = i;
            i += add.nodes.len();
            let Some((root, rest)) = add.nodes.split_first() else {
                continue;
            };
            if dead(root.id) {
                continue;
            }
            if !self.insert(root.id, kinds.get(first, root), add.parent, add.next) {
                continue;
            }
            for (j, node) in rest.iter().enumerate() {
                self.insert(node.id, kinds.get(first + 1 + j, node), node.parent, 0);
            }
        }
        for change in &m.attrs {
            self.change_attr(change);
        }
        for change in &m.texts {
            match self.nodes.get_mut(&change.id) {
                Some(node) if matches!(*node.kind, DomKind::Text(_) | DomKind::Comment(_)) => {
                    if let DomKind::Text(t) | DomKind::Comment(t) = Arc::make_mut(&mut node.kind) {
                        t.clone_from(&change.text);
                    }
                    // New text of a `<style>` rebuilds its sheet: CSSOM changes before it are gone.
                    let parent = node.parent;
                    if !self.css.owned.is_empty() {
                        self.css.owned.remove(&parent);
                    }
                }
                _ => self.refused += 1,
            }
        }
    }

    /// Sets or removes one attribute. An element with many attributes has them indexed by
    /// name ([`INDEXED_ATTRS`]), so that a storm of changes on it does not scan the list each
    /// time; an element may hold at most [`MAX_ATTRS`].
    fn change_attr(&mut self, change: &AttrChange) {
        let Some(node) = self.nodes.get_mut(&change.id).filter(|n| matches!(*n.kind, DomKind::Element { .. })) else {
            self.refused += 1;
            return;
        };
        let DomKind::Element { attrs, .. } = Arc::make_mut(&mut node.kind) else { return };
        let mut index = match self.attr_index.entry(change.id) {
            Entry::Occupied(e) => Some(e.into_mut()),
            Entry::Vacant(e) if attrs.len() >= INDEXED_ATTRS => {
                let mut index = AttrIndex {
                    seq: HashMap::with_capacity(attrs.len()),
                    order: (0..attrs.len() as u64).collect(),
                    next: attrs.len() as u64,
                    repeats: false,
                };
                for (i, a) in attrs.iter().enumerate() {
                    // The first of repeated names counts, as a search of the list finds it.
                    match index.seq.entry(a.name.clone()) {
                        Entry::Occupied(_) => index.repeats = true,
                        Entry::Vacant(v) => {
                            v.insert(i as u64);
                        }
                    }
                }
                Some(e.insert(index))
            }
            Entry::Vacant(_) => None,
        };
        let existing = match &index {
            Some(index) => index.position(&change.name),
            None => attrs.iter().position(|a| a.name == change.name),
        };
        match (&change.value, existing) {
            (Some(v), Some(i)) => attrs[i].value.clone_from(v),
            (Some(_), None) if attrs.len() >= MAX_ATTRS => self.refused += 1,
            (Some(v), None) => {
                attrs.push(Attr { name: change.name.clone(), value: v.clone() });
                if let Some(index) = index.as_mut() {
                    index.seq.insert(change.name.clone(), index.next);
                    index.order.push(index.next);
                    index.next += 1;
                }
            }
            (None, Some(i)) => {
                attrs.remove(i);
                if let Some(index) = index.as_mut() {
                    index.order.remove(i);
                    index.seq.remove(&change.name);
                    // A recorded element may repeat a name; the next one is found from now on.
                    if index.repeats
                        && let Some(j) = attrs.iter().position(|a| a.name == change.name)
                        && let Some(&seq) = index.order.get(j)
                    {
                        index.seq.insert(change.name.clone(), seq);
                    }
                }
            }
            (None, None) => {}
        }
    }

    /// Inserts `node` under `parent` before `next` (appends when `next` is 0 or not a child of
    /// `parent`). Returns false (and counts a refusal) when the node cannot be placed.
    fn insert(&mut self, id: NodeId, kind: Arc<DomKind>, parent: NodeId, next: NodeId) -> bool {
        if id == 0 || self.nodes.len() >= MAX_NODES || id == parent {
            self.refused += 1;
            return false;
        }
        if self.nodes.contains_key(&id) {
            // A recorder never reuses an id; a hostile one might. The newest node wins (when it
            // can be placed at all).
            if self.nodes.get(&parent).is_none_or(|p| p.depth >= MAX_DEPTH) {
                self.refused += 1;
                return false;
            }
            self.remove(id);
        }
        let next = if next != 0 && self.nodes.get(&next).is_some_and(|n| n.parent == parent) { next } else { 0 };
        // One lookup of the parent: its depth, and its child links when appending.
        let (depth, prev) = match self.nodes.get_mut(&parent) {
            Some(p) if p.depth < MAX_DEPTH => {
                if next == 0 {
                    let last = p.last_child;
                    if p.first_child == 0 {
                        p.first_child = id;
                    }
                    p.last_child = id;
                    (p.depth + 1, last)
                } else {
                    (p.depth + 1, 0)
                }
            }
            _ => {
                self.refused += 1;
                return false;
            }
        };
        let mut fresh = DomNode { kind, parent, first_child: 0, last_child: 0, prev, next: 0, depth };
        if next == 0 {
            if let Some(l) = self.nodes.get_mut(&prev) {
                l.next = id;
            }
        } else {
            let prev = self.nodes.get_mut(&next).map_or(0, |n| std::mem::replace(&mut n.prev, id));
            fresh.prev = prev;
            fresh.next = next;
            if prev != 0 {
                if let Some(p) = self.nodes.get_mut(&prev) {
                    p.next = id;
                }
            } else if let Some(p) = self.nodes.get_mut(&parent) {
                p.first_child = id;
            }
        }
        self.nodes.insert(id, fresh);
        true
    }

    /// Detaches a node and forgets it with its whole subtree.
    pub fn remove(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let (parent, prev, next) = (node.parent, node.prev, node.next);
        if let Some(p) = self.nodes.get_mut(&prev) {
            p.next = next;
        }
        if let Some(n) = self.nodes.get_mut(&next) {
            n.prev = prev;
        }
        if let Some(p) = self.nodes.get_mut(&parent) {
            if p.first_child == id {
                p.first_child = next;
            }
            if p.last_child == id {
                p.last_child = prev;
            }
        }
        if id == self.document {
            self.document = 0;
        }
        // Each removed node hands over its first child and (below the root) its next sibling:
        // one lookup per node.
        let mut stack = vec![(id, false)];
        while let Some((current, with_siblings)) = stack.pop() {
            if !self.css.is_empty() {
                self.css.forget(current);
            }
            if !self.media.is_empty() {
                self.media.remove(&current);
            }
            if !self.attr_index.is_empty() {
                self.attr_index.remove(&current);
            }
            if !self.dialogs.is_empty() {
                self.dialogs.remove(&current);
            }
            if !self.canvases.is_empty() {
                self.canvases.remove(&current);
            }
            if !self.frames.is_empty() {
                self.frames.remove(&current);
            }
            if let Some(n) = self.nodes.remove(&current) {
                if with_siblings && n.next != 0 {
                    stack.push((n.next, true));
                }
                if n.first_child != 0 {
                    stack.push((n.first_child, true));
                }
            }
        }
    }

    /// The placeholder of frame element `id`: its [`FrameInfo`] when it is a cross-origin frame
    /// not recorded and no document is recorded under it now.
    pub fn frame_placeholder(&self, id: NodeId) -> Option<&FrameInfo> {
        let info = self.frames.get(&id)?;
        let has_document = self.children(id).any(|(_, c)| matches!(*c.kind, DomKind::Document));
        (!has_document).then_some(&**info)
    }

    /// Number of elements with this tag name (ASCII case-insensitive), in the whole model.
    pub fn count_elements(&self, tag: &str) -> usize {
        self.nodes
            .values()
            .filter(|n| matches!(&*n.kind, DomKind::Element { tag: t, .. } if t.eq_ignore_ascii_case(tag)))
            .count()
    }
}

impl DomNode {
    /// Depth in the tree: 0 for a document, 1 for its children, ...
    pub fn depth(&self) -> u32 {
        self.depth
    }

    fn detached(kind: DomKind, depth: u32) -> Self {
        DomNode { kind: Arc::new(kind), parent: 0, first_child: 0, last_child: 0, prev: 0, next: 0, depth }
    }
}

/// Iterator over the children of a node.
pub struct Children<'a> {
    dom: &'a Dom,
    next: NodeId,
}

impl<'a> Iterator for Children<'a> {
    type Item = (NodeId, &'a DomNode);

    fn next(&mut self) -> Option<Self::Item> {
        let id = self.next;
        let node = self.dom.nodes.get(&id)?;
        self.next = node.next;
        Some((id, node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{AddedSubtree, AttrChange, Input, TextChange};
    use crate::test_util::{el, text};

    fn base() -> Dom {
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot {
            nodes: vec![
                Node { id: 1, parent: 0, kind: NodeKind::Document },
                el(2, 1, "html", &[]),
                el(3, 2, "body", &[]),
                el(4, 3, "ul", &[]),
                el(5, 4, "li", &[]),
                text(6, 5, "a"),
                el(7, 4, "li", &[]),
                text(8, 7, "b"),
            ],
            scroll_x: 0,
            scroll_y: 0,
        }));
        dom
    }

    fn child_ids(dom: &Dom, id: NodeId) -> Vec<NodeId> {
        dom.children(id).map(|(id, _)| id).collect()
    }

    #[test]
    fn snapshot_builds_the_tree_in_order() {
        let dom = base();
        assert_eq!(dom.document(), 1);
        assert_eq!(child_ids(&dom, 4), vec![5, 7]);
        assert_eq!(dom.len(), 8);
    }

    #[test]
    fn adds_go_before_their_next_sibling_and_removes_drop_subtrees() {
        let mut dom = base();
        dom.apply(&EventData::Mutation(Mutation {
            removes: vec![5],
            adds: vec![
                AddedSubtree { parent: 4, next: 0, nodes: vec![el(10, 0, "li", &[]), text(11, 10, "z")] },
                AddedSubtree { parent: 4, next: 7, nodes: vec![el(9, 0, "li", &[])] },
            ],
            attrs: vec![AttrChange { id: 4, name: "class".into(), value: Some("x".into()) }],
            texts: vec![TextChange { id: 8, text: "B".into() }],
        }));
        assert_eq!(child_ids(&dom, 4), vec![9, 7, 10]);
        assert!(dom.node(6).is_none(), "subtree of a removed node is forgotten");
        assert_eq!(dom.node(8).map(|n| &*n.kind), Some(&DomKind::Text("B".into())));
        match &dom.node(4).map(|n| &*n.kind) {
            Some(DomKind::Element { attrs, .. }) => {
                assert_eq!(attrs, &vec![Attr { name: "class".into(), value: "x".into() }])
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn hostile_changes_are_refused_not_panicking() {
        let mut dom = base();
        dom.apply(&EventData::Mutation(Mutation {
            removes: vec![999, 0],
            adds: vec![
                AddedSubtree { parent: 999, next: 0, nodes: vec![el(20, 0, "p", &[])] },
                AddedSubtree { parent: 4, next: 4, nodes: vec![el(4, 0, "p", &[])] },
                AddedSubtree { parent: 3, next: 0, nodes: vec![] },
            ],
            attrs: vec![AttrChange { id: 6, name: "x".into(), value: None }],
            texts: vec![TextChange { id: 3, text: "no".into() }],
        }));
        dom.apply(&EventData::Input(Input { id: 12345, value: "v".into(), checked: None }));
        assert!(dom.refused >= 4);
    }

    #[test]
    fn very_deep_trees_are_capped_without_recursion() {
        let mut dom = base();
        let mut nodes = vec![el(100, 0, "div", &[])];
        for i in 101..(100 + MAX_DEPTH + 50) {
            nodes.push(el(i, i - 1, "div", &[]));
        }
        dom.apply(&EventData::Mutation(Mutation {
            adds: vec![AddedSubtree { parent: 3, next: 0, nodes }],
            ..Mutation::default()
        }));
        assert!(dom.refused > 0);
        dom.remove(2);
        assert_eq!(dom.len(), 1, "only the document is left");
    }

    #[test]
    fn an_attribute_storm_of_new_names_is_capped_and_still_applies_known_names() {
        let mut dom = base();
        let set = |name: String, value: &str| AttrChange { id: 4, name, value: Some(value.into()) };
        let mut attrs: Vec<AttrChange> = (0..MAX_ATTRS + 100).map(|i| set(format!("data-{i}"), "1")).collect();
        attrs.push(set("data-7".into(), "changed"));
        attrs.push(AttrChange { id: 4, name: "data-8".into(), value: None });
        attrs.push(set("data-new".into(), "fits again"));
        dom.apply(&EventData::Mutation(Mutation { attrs, ..Mutation::default() }));
        assert_eq!(dom.refused, 100, "only the names beyond the cap are refused");
        let Some(DomKind::Element { attrs, .. }) = dom.node(4).map(|n| &*n.kind) else { panic!("no element") };
        assert_eq!(attrs.len(), MAX_ATTRS);
        assert_eq!(attrs[7].value, "changed");
        assert!(!attrs.iter().any(|a| a.name == "data-8"));
        assert_eq!(attrs.last().map(|a| (a.name.as_str(), a.value.as_str())), Some(("data-new", "fits again")));
    }

    #[test]
    fn indexed_attributes_change_exactly_like_a_list_searched_each_time() {
        // An element recorded with a repeated name and many attributes, then 60,000 pseudo-random
        // sets and removals over 80 names, checked against a plain list after every 1,000.
        let mut recorded: Vec<(String, String)> = (0..40).map(|i| (format!("n{i}"), "r".to_owned())).collect();
        recorded.push(("n3".into(), "repeated".into()));
        let pairs: Vec<(&str, &str)> = recorded.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot {
            nodes: vec![Node { id: 1, parent: 0, kind: NodeKind::Document }, el(2, 1, "div", &pairs)],
            scroll_x: 0,
            scroll_y: 0,
        }));
        let mut reference: Vec<Attr> =
            recorded.iter().map(|(n, v)| Attr { name: n.clone(), value: v.clone() }).collect();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..60 {
            let mut attrs = Vec::new();
            for k in 0..1_000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let name = format!("n{}", seed % 80);
                let value = (!seed.is_multiple_of(3)).then(|| format!("{round}.{k}"));
                match (&value, reference.iter().position(|a| a.name == name)) {
                    (Some(v), Some(i)) => reference[i].value.clone_from(v),
                    (Some(v), None) => reference.push(Attr { name: name.clone(), value: v.clone() }),
                    (None, Some(i)) => {
                        reference.remove(i);
                    }
                    (None, None) => {}
                }
                attrs.push(AttrChange { id: 2, name, value });
            }
            dom.apply(&EventData::Mutation(Mutation { attrs, ..Mutation::default() }));
            let Some(DomKind::Element { attrs, .. }) = dom.node(2).map(|n| &*n.kind) else { panic!("no element") };
            assert_eq!(attrs, &reference, "round {round}");
        }
        assert!(dom.attr_index.contains_key(&2), "the element was indexed");
        dom.remove(2);
        assert!(dom.attr_index.is_empty(), "the index goes with the element");
    }

    #[test]
    fn small_pages_after_a_big_one_do_not_keep_its_map() {
        let mut dom = Dom::new();
        let big: Vec<Node> = std::iter::once(Node { id: 1, parent: 0, kind: NodeKind::Document })
            .chain((2..100_000).map(|i| el(i, 1, "p", &[])))
            .collect();
        dom.apply(&EventData::Snapshot(Snapshot { nodes: big, scroll_x: 0, scroll_y: 0 }));
        assert_eq!(dom.len(), 99_999);
        for page in 0..3 {
            let small =
                vec![Node { id: 1, parent: 0, kind: NodeKind::Document }, el(2, 1, "html", &[]), text(3, 2, "x")];
            dom.apply(&EventData::Snapshot(Snapshot { nodes: small, scroll_x: 0, scroll_y: page }));
            assert_eq!(dom.len(), 3);
            assert_eq!(child_ids(&dom, 2), vec![3]);
            assert!(dom.nodes.capacity() < 10_000, "a small page clears a small map: {}", dom.nodes.capacity());
        }
    }

    #[test]
    fn the_latest_canvas_frame_is_kept_per_element_and_goes_with_it() {
        use crate::batch::CanvasFrame;
        let frame = |id, byte| {
            EventData::Canvas(CanvasFrame { id, mime: "image/png".into(), data: vec![byte], width: 1, height: 1 })
        };
        let mut dom = base();
        dom.apply(&frame(5, 1));
        dom.apply(&frame(5, 2));
        dom.apply(&frame(6, 3));
        dom.apply(&frame(999, 4));
        dom.apply(&EventData::Canvas(CanvasFrame {
            id: 5,
            mime: "text/html".into(),
            data: vec![9],
            width: 1,
            height: 1,
        }));
        assert_eq!(dom.refused, 3, "a text node, an unknown id and a type no reader draws are refused");
        assert_eq!(dom.canvases.get(&5).map(|f| f.data.clone()), Some(vec![2]), "the latest frame");
        let clone = dom.clone();
        assert!(Arc::ptr_eq(&clone.canvases[&5], &dom.canvases[&5]), "clones share frames");
        dom.remove(5);
        assert!(!dom.canvases.contains_key(&5));
        dom.apply(&EventData::Snapshot(Snapshot { nodes: vec![], scroll_x: 0, scroll_y: 0 }));
        assert!(dom.canvases.is_empty(), "a snapshot starts over");
    }

    #[test]
    fn a_frame_placeholder_shows_while_no_document_is_recorded_under_the_frame() {
        use crate::batch::{AddedSubtree, FrameInfo};
        let info = |id| EventData::Frame(FrameInfo { id, url: "http://b.example/".into(), width: 300, height: 150 });
        let mut dom = base();
        dom.apply(&EventData::Mutation(Mutation {
            adds: vec![AddedSubtree { parent: 3, next: 0, nodes: vec![el(9, 3, "iframe", &[])] }],
            ..Mutation::default()
        }));
        dom.apply(&info(9));
        dom.apply(&info(5));
        dom.apply(&info(999));
        assert_eq!(dom.refused, 2, "only frame elements take a placeholder");
        assert_eq!(dom.frame_placeholder(9).map(|f| (f.width, f.height)), Some((300, 150)));
        let attach = Mutation {
            adds: vec![AddedSubtree {
                parent: 9,
                next: 0,
                nodes: vec![
                    Node { id: 0x8000_0001, parent: 9, kind: NodeKind::Document },
                    el(0x8000_0002, 0x8000_0001, "html", &[]),
                ],
            }],
            ..Mutation::default()
        };
        dom.apply(&EventData::Mutation(attach));
        assert!(dom.frame_placeholder(9).is_none(), "its recorder answered: the document shows");
        dom.apply(&EventData::Mutation(Mutation { removes: vec![0x8000_0001], ..Mutation::default() }));
        assert!(dom.frame_placeholder(9).is_some(), "the document went (the frame navigated away)");
        dom.remove(9);
        assert!(dom.frames.is_empty(), "the placeholder goes with its element");
    }

    #[test]
    fn dialog_modality_is_kept_per_element_and_goes_with_it() {
        use crate::batch::DialogShown;
        let mut dom = base();
        dom.apply(&EventData::Dialog(DialogShown { id: 5, modal: false }));
        dom.apply(&EventData::Dialog(DialogShown { id: 7, modal: true }));
        dom.apply(&EventData::Dialog(DialogShown { id: 6, modal: true }));
        dom.apply(&EventData::Dialog(DialogShown { id: 999, modal: true }));
        assert_eq!(dom.refused, 2, "a text node and an unknown id are refused");
        assert_eq!((dom.dialogs.get(&5), dom.dialogs.get(&7)), (Some(&false), Some(&true)));
        dom.remove(5);
        assert!(!dom.dialogs.contains_key(&5));
        dom.apply(&EventData::Snapshot(Snapshot { nodes: vec![], scroll_x: 0, scroll_y: 0 }));
        assert!(dom.dialogs.is_empty(), "a snapshot starts over");
    }

    #[test]
    fn removing_a_node_forgets_its_sheets_and_media_state() {
        use crate::batch::{CssChange, CssOp, MediaAction};
        let mut dom = base();
        dom.apply(&EventData::Css(CssChange { owner: 4, sheet: 0, op: CssOp::Text("li{}".into()) }));
        dom.apply(&EventData::Media(Media {
            id: 5,
            action: MediaAction::Seeked,
            time: 1.5,
            rate: 1.0,
            volume: 1.0,
            muted: false,
        }));
        assert!(dom.css.owned.contains_key(&4) && dom.media.contains_key(&5));
        dom.apply(&EventData::Css(CssChange { owner: 999, sheet: 0, op: CssOp::Text("x{}".into()) }));
        assert_eq!(dom.css.owned.len(), 1, "sheets of unknown owners are refused");
        dom.remove(4);
        assert!(dom.css.is_empty() && dom.media.is_empty());
    }
}
