//! Operations: how the engine describes the replayed document to `static/render.js`.
//!
//! A seek describes the whole document once (`full`); playing forward describes each change.
//! Everything passes the [`crate::sanitize`] rules on the way out. The format is documented on
//! the crate ([`crate`]).

use std::sync::Arc;

use replay_protocol::Dom;
use replay_protocol::batch::TouchKind;
use replay_protocol::cssom::SheetState;
use replay_protocol::dom::{DomKind, IdSet};
use replay_protocol::{Attr, CanvasFrame, CssOp, EventData, FrameInfo, Media, Namespace, Node, NodeKind, Selection};

use crate::replay::{MAX_TOUCHES, ReplayState};
use crate::{json, sanitize};

/// Writes operations for one page, remembering the nodes it left out (scripts and their
/// subtrees) so that later changes under them are left out too.
#[derive(Default)]
pub(crate) struct Writer {
    /// Nodes not rebuilt (scripts and their subtrees).
    dropped: IdSet,
}

/// Receives the nodes of a description one by one: JSON text for operations ([`JsonNodes`]),
/// or the binary frame of a full description ([`Tape`]).
pub(crate) trait NodeOut {
    /// Starts node `id` (under `parent`) of `kind` (0 document … 5 shadow root).
    fn begin(&mut self, id: u32, parent: u32, kind: u8);
    fn str(&mut self, s: &str);
    fn num(&mut self, n: u32);
    fn attrs_begin(&mut self);
    fn attr(&mut self, name: &str, value: &str);
    fn attrs_end(&mut self);
    fn end(&mut self);
}

/// Nodes as JSON arrays `[id, parent, kind, ...]`, comma-separated.
pub(crate) struct JsonNodes<'a> {
    out: &'a mut String,
    first: bool,
    first_attr: bool,
}

impl<'a> JsonNodes<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        JsonNodes { out, first: true, first_attr: true }
    }
}

impl NodeOut for JsonNodes<'_> {
    fn begin(&mut self, id: u32, parent: u32, kind: u8) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('[');
        json::num(self.out, id);
        self.out.push(',');
        json::num(self.out, parent);
        self.out.push(',');
        json::num(self.out, kind);
    }
    fn str(&mut self, s: &str) {
        self.out.push(',');
        json::string(self.out, s);
    }
    fn num(&mut self, n: u32) {
        self.out.push(',');
        json::num(self.out, n);
    }
    fn attrs_begin(&mut self) {
        self.out.push_str(",[");
        self.first_attr = true;
    }
    fn attr(&mut self, name: &str, value: &str) {
        if !self.first_attr {
            self.out.push(',');
        }
        self.first_attr = false;
        json::string(self.out, name);
        self.out.push(',');
        json::string(self.out, value);
    }
    fn attrs_end(&mut self) {
        self.out.push(']');
    }
    fn end(&mut self) {
        self.out.push(']');
    }
}

/// The nodes of a full description as a binary frame, read by `render.js` (`buildFrame`)
/// without a JSON parse: integers, and all strings in one text, each string a (start, length)
/// pair of UTF-16 offsets into it. A node is `id, parent, kind` followed by, for kind 1
/// (doctype) three strings, 2 (element) the tag, the namespace code, the attribute count and
/// a name and value per attribute, 3 and 4 (text, comment) one string; 0 and 5 nothing.
#[derive(Debug, Default)]
pub struct Tape {
    pub(crate) ints: Vec<u32>,
    pub(crate) text: String,
    /// Length of `text` in UTF-16 code units.
    units: u32,
    /// Where the attribute count of the current element is.
    attrs_at: usize,
}

impl Tape {
    /// Empties the tape for the next frame.
    pub(crate) fn clear(&mut self) {
        self.ints.clear();
        self.text.clear();
        self.units = 0;
        self.attrs_at = 0;
    }
}

impl NodeOut for Tape {
    fn begin(&mut self, id: u32, parent: u32, kind: u8) {
        self.ints.extend([id, parent, u32::from(kind)]);
    }
    fn str(&mut self, s: &str) {
        let len = if s.is_ascii() { s.len() } else { s.encode_utf16().count() };
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.ints.extend([self.units, len]);
        self.text.push_str(s);
        self.units = self.units.saturating_add(len);
    }
    fn num(&mut self, n: u32) {
        self.ints.push(n);
    }
    fn attrs_begin(&mut self) {
        self.attrs_at = self.ints.len();
        self.ints.push(0);
    }
    fn attr(&mut self, name: &str, value: &str) {
        if let Some(count) = self.ints.get_mut(self.attrs_at) {
            *count += 1;
        }
        self.str(name);
        self.str(value);
    }
    fn attrs_end(&mut self) {}
    fn end(&mut self) {}
}

/// Deepest node the player rebuilds in the page; deeper ones are left out like scripts (the
/// model keeps them, to `replay_protocol::dom::MAX_DEPTH`). Chromium's renderer crashed
/// replaying 3,000 levels of nested `<div>`s (2,000 rendered); its own HTML parser stops
/// nesting at 512.
pub(crate) const MAX_RENDER_DEPTH: u32 = 1_000;

/// Element state that goes with a full description: (op, id, value, checked, scroll).
type ElementState<'a> = (&'static str, u32, Option<&'a str>, Option<bool>, (i32, i32));

/// Writes the document's nodes in tree order (sanitized, scripts dropped with their subtrees,
/// remembered in `dropped`) and returns the element state to restore after them.
fn write_tree<'a>(dom: &'a Dom, dropped: &mut IdSet, out: &mut impl NodeOut) -> Vec<ElementState<'a>> {
    let mut state = Vec::new();
    let doc = dom.document();
    // (id, parent, parent dropped, parent is a <style>): carried down so that no node needs
    // a lookup of its parent.
    let mut stack = if doc == 0 { vec![] } else { vec![(doc, 0u32, false, false)] };
    let page_url = &dom.url;
    while let Some((id, parent, parent_dropped, in_style)) = stack.pop() {
        let Some(node) = dom.node(id) else {
            continue;
        };
        if parent_dropped || node.depth() > MAX_RENDER_DEPTH {
            dropped.insert(id);
            continue;
        }
        let is_dropped = write_node(id, parent, NodeView::from(&*node.kind), page_url, in_style, out);
        if is_dropped {
            dropped.insert(id);
        }
        if let DomKind::Element { value, checked, scroll, .. } = &*node.kind {
            if value.is_some() || checked.is_some() {
                state.push(("input", id, value.as_deref(), *checked, (0, 0)));
            }
            if let Some(s) = scroll {
                state.push(("scroll", id, None, None, *s));
            }
        }
        let style = is_style(Some(&*node.kind));
        let at = stack.len();
        stack.extend(dom.children(id).map(|(c, _)| (c, id, is_dropped, style)));
        stack[at..].reverse();
    }
    state
}

impl Writer {
    /// Writes `["full", url, title, scrollX, scrollY, nodes]` for the document of `replay` and
    /// the element state (input values, scroll positions), viewport and pointer that go with
    /// it. With a `tape`, the nodes go there and `nodes` is `null`.
    pub(crate) fn write_full(&mut self, replay: &ReplayState, out: &mut String, tape: Option<&mut Tape>) {
        let dom = replay.dom();
        self.dropped.clear();
        out.push_str("[\"full\",");
        json::string(out, &dom.url);
        out.push(',');
        json::string(out, &dom.title);
        out.push(',');
        json::num(out, dom.scroll.0);
        out.push(',');
        json::num(out, dom.scroll.1);
        out.push(',');
        let state = match tape {
            Some(tape) => {
                out.push_str("null");
                write_tree(dom, &mut self.dropped, tape)
            }
            None => {
                out.push('[');
                let state = write_tree(dom, &mut self.dropped, &mut JsonNodes::new(out));
                out.push(']');
                state
            }
        };
        out.push(']');
        for (kind, id, value, checked, (x, y)) in state {
            if self.dropped.contains(&id) {
                continue;
            }
            out.push_str(",[");
            json::string(out, kind);
            out.push(',');
            json::num(out, id);
            out.push(',');
            if kind == "input" {
                json::string(out, value.unwrap_or(""));
                out.push(',');
                match checked {
                    Some(c) => json::num(out, c),
                    None => out.push_str("null"),
                }
            } else {
                json::num(out, x);
                out.push(',');
                json::num(out, y);
            }
            out.push(']');
        }
        self.write_page_state(dom, out);
        out.push_str(",[\"viewport\",");
        json::num(out, replay.viewport().0);
        out.push(',');
        json::num(out, replay.viewport().1);
        out.push(']');
        if let Some((x, y)) = replay.pointer() {
            out.push_str(",[\"mouse\",");
            json::num(out, x);
            out.push(',');
            json::num(out, y);
            out.push(']');
        }
        // Always written, so that a seek clears the fingers and focus of an earlier moment.
        out.push(',');
        write_touch(replay.touches().iter().copied(), out);
        out.push_str(",[\"focus\",");
        json::num(out, replay.focused());
        out.push(']');
    }
}

/// `["touch", x, y, ...]`: the fingers on the screen (none: lifted).
fn write_touch(points: impl Iterator<Item = (i32, i32)>, out: &mut String) {
    out.push_str("[\"touch\"");
    for (x, y) in points {
        out.push(',');
        json::num(out, x);
        out.push(',');
        json::num(out, y);
    }
    out.push(']');
}

impl Writer {
    /// The state beyond the markup of `dom`, after a full description: stylesheets
    /// (constructed sheets first, then owned sheets, then adoptions), media elements, the
    /// selection.
    fn write_page_state(&self, dom: &Dom, out: &mut String) {
        let css = &dom.css;
        let url = &dom.url;
        let mut constructed: Vec<(&u32, &SheetState)> = css.constructed.iter().collect();
        constructed.sort_by_key(|(id, _)| **id);
        for (sheet, state) in constructed {
            write_sheet(0, *sheet, state, url, out);
        }
        let mut owned: Vec<(&u32, &SheetState)> =
            css.owned.iter().filter(|(id, _)| !self.dropped.contains(id)).collect();
        owned.sort_by_key(|(id, _)| **id);
        for (owner, state) in owned {
            write_sheet(*owner, 0, state, url, out);
        }
        let mut adopted: Vec<(&u32, &Vec<u32>)> = css.adopted.iter().collect();
        adopted.sort_by_key(|(id, _)| **id);
        for (owner, sheets) in adopted {
            out.push(',');
            write_css(*owner, 0, &CssOp::Adopt { sheets: sheets.clone() }, url, out);
        }
        let mut media: Vec<&Media> = dom.media.values().collect();
        media.sort_by_key(|m| m.id);
        for m in media {
            out.push(',');
            write_media(m, out);
        }
        if let Some(sel) = &dom.selection {
            out.push(',');
            write_selection(sel, out);
        }
        let mut dialogs: Vec<(&u32, &bool)> = dom.dialogs.iter().filter(|(id, _)| !self.dropped.contains(id)).collect();
        dialogs.sort_by_key(|(id, _)| **id);
        for (id, modal) in dialogs {
            out.push(',');
            write_dialog(*id, *modal, out);
        }
        let mut canvases: Vec<&Arc<CanvasFrame>> =
            dom.canvases.values().filter(|f| !self.dropped.contains(&f.id)).collect();
        canvases.sort_by_key(|f| f.id);
        for frame in canvases {
            if frame.image_type().is_some() {
                out.push(',');
                write_canvas(frame, out);
            }
        }
        let mut frames: Vec<&FrameInfo> = dom
            .frames
            .keys()
            .filter(|id| !self.dropped.contains(id))
            .filter_map(|id| dom.frame_placeholder(*id))
            .collect();
        frames.sort_by_key(|f| f.id);
        for f in frames {
            out.push(',');
            write_frame(f, out);
        }
        for css in dom.fonts.iter().filter_map(|f| replay_protocol::fonts::font_face_css(f, &dom.url)) {
            out.push(',');
            write_font(&css, out);
        }
    }
}

/// `["font", css]`: an `@font-face` rule of a font the page added through the `FontFace` API
/// (written by [`replay_protocol::fonts`] from checked parts), which the page adds as a style.
fn write_font(css: &str, out: &mut String) {
    out.push_str("[\"font\",");
    json::string(out, css);
    out.push(']');
}

/// `["frame", id, text]`: frame element `id` holds a cross-origin document that is not
/// recorded; the page shows `text` (its URL and size) inside it while no recorded document is.
fn write_frame(f: &FrameInfo, out: &mut String) {
    out.push_str("[\"frame\",");
    json::num(out, f.id);
    out.push(',');
    json::string(out, &f.placeholder_text());
    out.push(']');
}

/// `["canvas", id, mime, base64, width, height]`: a canvas's recorded pixels, which the page
/// decodes as an image (never as markup) and draws into the replayed `<canvas>`.
fn write_canvas(frame: &CanvasFrame, out: &mut String) {
    out.push_str("[\"canvas\",");
    json::num(out, frame.id);
    out.push(',');
    json::string(out, frame.image_type().unwrap_or(""));
    out.push(',');
    json::base64(out, &frame.data);
    out.push(',');
    json::num(out, frame.width);
    out.push(',');
    json::num(out, frame.height);
    out.push(']');
}

/// `["dialog", id, modal]`: how an open dialog is shown (modally or not).
fn write_dialog(id: u32, modal: bool, out: &mut String) {
    out.push_str("[\"dialog\",");
    json::num(out, id);
    out.push(',');
    json::num(out, modal);
    out.push(']');
}

fn write_sheet(owner: u32, sheet: u32, state: &SheetState, url: &str, out: &mut String) {
    if let Some(text) = &state.text {
        out.push(',');
        write_css(owner, sheet, &CssOp::Text(text.clone()), url, out);
    }
    for op in &state.ops {
        out.push(',');
        write_css(owner, sheet, op, url, out);
    }
}

fn write_path(path: &[u32], out: &mut String) {
    out.push('[');
    for (i, p) in path.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::num(out, p);
    }
    out.push(']');
}

/// `["css", owner, sheet, [op, ...]]` with op `t` text, `i` path rule, `d` path, `p` path
/// name value priority, `r` path name, `a` sheets. CSS passes [`sanitize::clean_css`].
fn write_css(owner: u32, sheet: u32, op: &CssOp, url: &str, out: &mut String) {
    out.push_str("[\"css\",");
    json::num(out, owner);
    out.push(',');
    json::num(out, sheet);
    out.push_str(",[");
    match op {
        CssOp::Text(t) => {
            out.push_str("\"t\",");
            json::string(out, &sanitize::clean_css(t, url));
        }
        CssOp::Insert { path, rule } => {
            out.push_str("\"i\",");
            write_path(path, out);
            out.push(',');
            json::string(out, &sanitize::clean_css(rule, url));
        }
        CssOp::Delete { path } => {
            out.push_str("\"d\",");
            write_path(path, out);
        }
        CssOp::SetProperty { path, name, value, priority } => {
            out.push_str("\"p\",");
            write_path(path, out);
            out.push(',');
            json::string(out, name);
            out.push(',');
            json::string(out, &sanitize::clean_css(value, url));
            out.push(',');
            json::string(out, priority);
        }
        CssOp::RemoveProperty { path, name } => {
            out.push_str("\"r\",");
            write_path(path, out);
            out.push(',');
            json::string(out, name);
        }
        CssOp::Adopt { sheets } => {
            out.push_str("\"a\",");
            write_path(sheets, out);
        }
    }
    out.push_str("]]");
}

fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// `["media", id, action, time, rate, volume, muted]`.
fn write_media(m: &Media, out: &mut String) {
    out.push_str("[\"media\",");
    json::num(out, m.id);
    out.push(',');
    json::num(out, m.action.code());
    out.push(',');
    json::num(out, finite(m.time));
    out.push(',');
    json::num(out, finite(m.rate));
    out.push(',');
    json::num(out, finite(m.volume).clamp(0.0, 1.0));
    out.push(',');
    json::num(out, u8::from(m.muted));
    out.push(']');
}

/// `["sel", anchor, anchorOffset, focus, focusOffset]` (0 ids: no selection).
fn write_selection(s: &Selection, out: &mut String) {
    out.push_str("[\"sel\",");
    json::num(out, s.anchor);
    out.push(',');
    json::num(out, s.anchor_offset);
    out.push(',');
    json::num(out, s.focus);
    out.push(',');
    json::num(out, s.focus_offset);
    out.push(']');
}

fn is_style(kind: Option<&DomKind>) -> bool {
    matches!(kind, Some(DomKind::Element { tag, ns: Namespace::Html | Namespace::Svg, .. }) if tag.eq_ignore_ascii_case("style"))
}

/// A node's kind as written, borrowed from either the model or an event.
#[derive(Clone, Copy)]
enum NodeView<'a> {
    Document,
    Doctype { name: &'a str, public_id: &'a str, system_id: &'a str },
    Element { tag: &'a str, ns: Namespace, attrs: &'a [Attr] },
    Text(&'a str),
    Comment(&'a str),
    ShadowRoot,
}

/// Whether the model's node is the one an event sent: the same kind of node, the same tag.
fn same_node(model: NodeView<'_>, sent: NodeView<'_>) -> bool {
    match (model, sent) {
        (NodeView::Element { tag: a, ns: x, .. }, NodeView::Element { tag: b, ns: y, .. }) => a == b && x == y,
        (a, b) => std::mem::discriminant(&a) == std::mem::discriminant(&b),
    }
}

impl<'a> From<&'a DomKind> for NodeView<'a> {
    fn from(kind: &'a DomKind) -> Self {
        match kind {
            DomKind::Document => NodeView::Document,
            DomKind::Doctype { name, public_id, system_id } => NodeView::Doctype { name, public_id, system_id },
            DomKind::Element { tag, ns, attrs, .. } => NodeView::Element { tag, ns: *ns, attrs },
            DomKind::Text(t) => NodeView::Text(t),
            DomKind::Comment(t) => NodeView::Comment(t),
            DomKind::ShadowRoot => NodeView::ShadowRoot,
        }
    }
}

impl<'a> From<&'a NodeKind> for NodeView<'a> {
    fn from(kind: &'a NodeKind) -> Self {
        match kind {
            NodeKind::Document => NodeView::Document,
            NodeKind::Doctype { name, public_id, system_id } => NodeView::Doctype { name, public_id, system_id },
            NodeKind::Element { tag, ns, attrs } => NodeView::Element { tag, ns: *ns, attrs },
            NodeKind::Text(t) => NodeView::Text(t),
            NodeKind::Comment(t) => NodeView::Comment(t),
            NodeKind::ShadowRoot => NodeView::ShadowRoot,
        }
    }
}

/// Writes one node (sanitized); scripts become placeholder comments. Returns true for a
/// script, whose subtree the caller drops (and remembers in `dropped`). Text of a `<style>`
/// passes [`sanitize::clean_css`].
fn write_node(
    id: u32,
    parent: u32,
    kind: NodeView<'_>,
    page_url: &str,
    in_style: bool,
    out: &mut impl NodeOut,
) -> bool {
    let mut dropped = false;
    match kind {
        NodeView::Document => out.begin(id, parent, 0),
        NodeView::Doctype { name, public_id, system_id } => {
            out.begin(id, parent, 1);
            out.str(name);
            out.str(public_id);
            out.str(system_id);
        }
        NodeView::Element { tag, ns, attrs } => {
            if sanitize::is_blocked_element(tag) {
                dropped = true;
                out.begin(id, parent, 4);
                out.str(sanitize::SCRIPT_PLACEHOLDER);
            } else {
                out.begin(id, parent, 2);
                out.str(tag);
                out.num(u32::from(ns.code()));
                out.attrs_begin();
                sanitize::for_each_clean_attr(tag, attrs, page_url, |name, value| out.attr(name, value));
                out.attrs_end();
            }
        }
        NodeView::Text(t) if in_style => {
            out.begin(id, parent, 3);
            out.str(&sanitize::clean_css(t, page_url));
        }
        NodeView::Text(t) => {
            out.begin(id, parent, 3);
            out.str(t);
        }
        NodeView::Comment(t) => {
            out.begin(id, parent, 4);
            out.str(t);
        }
        NodeView::ShadowRoot => out.begin(id, parent, 5),
    }
    out.end();
    dropped
}

impl Writer {
    /// Writes the nodes of one added subtree (already applied to `dom`); `kinds` are their
    /// shared kinds (see [`replay_protocol::dom::take_kinds`]), or empty when the event kept
    /// its own.
    fn write_nodes(&mut self, dom: &Dom, nodes: &[Node], kinds: &[Arc<DomKind>], root_parent: u32, out: &mut String) {
        out.push('[');
        let mut json = JsonNodes::new(out);
        for (i, n) in nodes.iter().enumerate() {
            let parent = if i == 0 { root_parent } else { n.parent };
            if self.dropped.contains(&parent) || dom.node(n.id).is_some_and(|m| m.depth() > MAX_RENDER_DEPTH) {
                self.dropped.insert(n.id);
                continue;
            }
            let in_style = is_style(dom.node(parent).map(|p| &*p.kind));
            // The event's own kinds were moved into the shared ones when there are shared ones.
            let sent = || match kinds.get(i) {
                Some(k) => NodeView::from(&**k),
                None => NodeView::from(&n.kind),
            };
            // Only what the model took, where it put it: a node it refused (an addition whose
            // root names its own parent, an unknown parent, a cap) would otherwise be drawn,
            // and later changes of the node the model does hold under that id (a `<div>`) would
            // be cleaned by that node's tag on the drawn one (a `<meta>`).
            let accepted =
                dom.node(n.id).is_some_and(|m| m.parent == parent && same_node(NodeView::from(&*m.kind), sent()));
            if !accepted {
                continue;
            }
            if write_node(n.id, parent, sent(), &dom.url, in_style, &mut json) {
                self.dropped.insert(n.id);
            }
        }
        out.push(']');
    }

    /// Writes the operation of one event, already applied to `dom`; false when the event has
    /// no visible effect.
    pub(crate) fn write_op(&mut self, dom: &Dom, data: &EventData, kinds: &[Arc<DomKind>], out: &mut String) -> bool {
        // Shared kinds cover all added nodes or none (an event that kept its own).
        let shared = matches!(data, EventData::Mutation(m) if kinds.len() == m.adds.iter().map(|a| a.nodes.len()).sum::<usize>());
        let mut offset = 0;
        match data {
            EventData::Mutation(m) => {
                let mut first = true;
                let mut sep = |out: &mut String| {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                };
                for id in &m.removes {
                    sep(out);
                    out.push_str("[\"rm\",");
                    json::num(out, id);
                    out.push(']');
                }
                for add in &m.adds {
                    let add_kinds = if shared { &kinds[offset..offset + add.nodes.len()] } else { &[][..] };
                    offset += add.nodes.len();
                    if self.dropped.contains(&add.parent) {
                        for n in &add.nodes {
                            self.dropped.insert(n.id);
                        }
                        continue;
                    }
                    sep(out);
                    out.push_str("[\"add\",");
                    json::num(out, add.parent);
                    out.push(',');
                    json::num(out, add.next);
                    out.push(',');
                    self.write_nodes(dom, &add.nodes, add_kinds, add.parent, out);
                    out.push(']');
                }
                for a in &m.attrs {
                    let tag = match dom.node(a.id).map(|n| &*n.kind) {
                        Some(DomKind::Element { tag, .. }) => tag.to_ascii_lowercase(),
                        _ => continue,
                    };
                    let value = a
                        .value
                        .as_deref()
                        .and_then(|v| sanitize::clean_attr(&tag, &a.name.to_ascii_lowercase(), v, &dom.url));
                    sep(out);
                    out.push_str("[\"attr\",");
                    json::num(out, a.id);
                    out.push(',');
                    json::string(out, &a.name);
                    out.push(',');
                    match value {
                        Some(v) => json::string(out, &v),
                        None => out.push_str("null"),
                    }
                    out.push(']');
                }
                for t in &m.texts {
                    if self.dropped.contains(&t.id) {
                        continue;
                    }
                    let parent = dom.node(t.id).map_or(0, |n| n.parent);
                    let in_style = is_style(dom.node(parent).map(|p| &*p.kind));
                    sep(out);
                    out.push_str("[\"text\",");
                    json::num(out, t.id);
                    out.push(',');
                    if in_style {
                        json::string(out, &sanitize::clean_css(&t.text, &dom.url));
                    } else {
                        json::string(out, &t.text);
                    }
                    out.push(']');
                }
                !first
            }
            EventData::Input(i) => {
                out.push_str("[\"input\",");
                json::num(out, i.id);
                out.push(',');
                json::string(out, &i.value);
                out.push(',');
                match i.checked {
                    Some(c) => json::num(out, c),
                    None => out.push_str("null"),
                }
                out.push(']');
                true
            }
            EventData::Scroll(s) => {
                out.push_str("[\"scroll\",");
                json::num(out, s.id);
                out.push(',');
                json::num(out, s.x);
                out.push(',');
                json::num(out, s.y);
                out.push(']');
                true
            }
            EventData::MouseMove(points) => match points.last() {
                Some(p) => {
                    out.push_str("[\"mouse\",");
                    json::num(out, p.x);
                    out.push(',');
                    json::num(out, p.y);
                    out.push(']');
                    true
                }
                None => false,
            },
            EventData::Touch(t) => {
                let down = matches!(t.kind, TouchKind::Start | TouchKind::Move);
                let points = t.points.iter().filter(|_| down).take(MAX_TOUCHES).map(|p| (p.x, p.y));
                write_touch(points, out);
                true
            }
            EventData::Focus(f) => {
                // `["focus", id]`: the element with the focus now (0: none).
                out.push_str("[\"focus\",");
                json::num(out, if f.focused { f.id } else { 0 });
                out.push(']');
                true
            }
            EventData::Click(c) => {
                out.push_str("[\"click\",");
                json::num(out, c.x);
                out.push(',');
                json::num(out, c.y);
                out.push(']');
                true
            }
            EventData::Viewport(v) => {
                out.push_str("[\"viewport\",");
                json::num(out, v.width);
                out.push(',');
                json::num(out, v.height);
                out.push(']');
                true
            }
            EventData::Meta(m) => {
                out.push_str("[\"meta\",");
                json::string(out, &m.url);
                out.push(',');
                json::string(out, &m.title);
                out.push(']');
                true
            }
            EventData::Navigation(n) => {
                out.push_str("[\"meta\",");
                json::string(out, &n.url);
                out.push_str(",\"\"]");
                true
            }
            EventData::Css(c) => {
                if c.owner != 0 && self.dropped.contains(&c.owner) {
                    return false;
                }
                write_css(c.owner, c.sheet, &c.op, &dom.url, out);
                true
            }
            EventData::Media(m) => {
                write_media(m, out);
                true
            }
            EventData::Selection(s) => {
                write_selection(s, out);
                true
            }
            EventData::Dialog(d) => {
                if self.dropped.contains(&d.id) {
                    return false;
                }
                write_dialog(d.id, d.modal, out);
                true
            }
            EventData::Canvas(c) => {
                if self.dropped.contains(&c.id) || c.image_type().is_none() {
                    return false;
                }
                write_canvas(c, out);
                true
            }
            EventData::Font(f) => {
                let Some(css) = replay_protocol::fonts::font_face_css(f, &dom.url) else { return false };
                write_font(&css, out);
                true
            }
            EventData::Frame(f) => {
                if self.dropped.contains(&f.id) {
                    return false;
                }
                write_frame(f, out);
                true
            }
            // Shown by other viewer work (panels, markers); no effect on the replayed page.
            _ => false,
        }
    }
}
