//! The player's replay engine, compiled to wasm32 and driven by `viewer/static/player.js`.
//!
//! It holds a session's [`Timeline`] and the protocol's [`Dom`] model. Seeking applies events
//! to the model in memory and then describes the whole document once (`["full", ...]`);
//! playing forward describes each change as a small operation. JavaScript applies the
//! operations to the sandboxed replay iframe through DOM APIs; recorded strings are never
//! parsed as HTML. Every node and attribute passes [`sanitize`] on its way out.
//!
//! Operations (JSON arrays, one per change):
//! `["full", url, title, scrollX, scrollY, nodes]`, `["rm", id]`, `["add", parent, next, nodes]`,
//! `["attr", id, name, value|null]`, `["text", id, text]`, `["input", id, value, checked|null]`,
//! `["scroll", id, x, y]`, `["mouse", x, y]`, `["click", x, y]`, `["viewport", w, h]`,
//! `["meta", url, title]`. A node is `[id, parent, kind, ...]` with kind 0 document,
//! 1 doctype (name, public, system), 2 element (tag, ns, [name, value, ...]), 3 text, 4 comment,
//! 5 shadow root.

pub mod json;
pub mod sanitize;

use std::collections::HashSet;

use replay_protocol::codec::{self, Limits};
use replay_protocol::dom::DomKind;
use replay_protocol::{Dom, EventData, Node, NodeKind, Timeline};
use wasm_bindgen::prelude::*;

/// Largest session the player loads, in encoded bytes.
const MAX_SESSION_BYTES: usize = 1024 * 1024 * 1024;

/// A loaded session and the replay position.
#[wasm_bindgen]
pub struct Player {
    timeline: Timeline,
    dom: Dom,
    /// Index of the next event to apply.
    cursor: usize,
    /// Nodes not rebuilt (scripts and their subtrees).
    dropped: HashSet<u32>,
    viewport: (u32, u32),
    pointer: Option<(i32, i32)>,
}

#[wasm_bindgen]
impl Player {
    /// Loads a MessagePack array of batches (the events endpoint's `application/msgpack`).
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8]) -> Result<Player, JsError> {
        let batches = codec::decode_batches(bytes, &Limits::default(), MAX_SESSION_BYTES)?;
        Ok(Player::from_timeline(Timeline::from_batches(batches)))
    }

    /// Time of the first event (Unix epoch ms).
    pub fn start(&self) -> f64 {
        self.timeline.start().unwrap_or(0) as f64
    }

    /// Time of the last event (Unix epoch ms).
    pub fn end(&self) -> f64 {
        self.timeline.end().unwrap_or(0) as f64
    }

    /// Number of events in the session.
    pub fn event_count(&self) -> usize {
        self.timeline.events.len()
    }

    /// Moves to absolute time `t` and describes the whole document there.
    pub fn seek(&mut self, t: f64) -> String {
        let t = to_ms(t);
        if self.cursor > 0 && self.timeline.events.get(self.cursor - 1).is_some_and(|e| e.time > t) {
            self.dom = Dom::new();
            self.cursor = 0;
            self.pointer = None;
        }
        while let Some(e) = self.timeline.events.get(self.cursor) {
            if e.time > t {
                break;
            }
            self.track(self.cursor);
            self.dom.apply(&self.timeline.events[self.cursor].data);
            self.cursor += 1;
        }
        let mut out = String::from("[");
        self.write_full(&mut out);
        out.push(']');
        out
    }

    /// Plays forward to absolute time `t`, describing each change.
    pub fn advance(&mut self, t: f64) -> String {
        let t = to_ms(t);
        let mut out = String::from("[");
        let mut first = true;
        while let Some(e) = self.timeline.events.get(self.cursor) {
            if e.time > t {
                break;
            }
            let index = self.cursor;
            self.cursor += 1;
            self.track(index);
            let data = self.timeline.events[index].data.clone();
            self.dom.apply(&data);
            if matches!(data, EventData::Snapshot(_)) {
                // A new page view: everything before it is superseded.
                out.truncate(1);
                self.write_full(&mut out);
                first = false;
                continue;
            }
            let mark = out.len();
            if !first {
                out.push(',');
            }
            if self.write_op(&data, &mut out) {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        out.push(']');
        out
    }

    /// Timeline markers as JSON: `[[time, kind, x, y], ...]` for clicks (`"click"`) and page
    /// views (`"page"`).
    pub fn markers(&self) -> String {
        let mut out = String::from("[");
        let mut first = true;
        for e in &self.timeline.events {
            let (kind, x, y) = match &e.data {
                EventData::Click(c) => ("click", c.x, c.y),
                EventData::Meta(_) => ("page", 0, 0),
                _ => continue,
            };
            if !first {
                out.push(',');
            }
            first = false;
            out.push('[');
            json::num(&mut out, e.time);
            out.push(',');
            json::string(&mut out, kind);
            out.push(',');
            json::num(&mut out, x);
            out.push(',');
            json::num(&mut out, y);
            out.push(']');
        }
        out.push(']');
        out
    }

    /// Times of all events as a Float64Array-friendly list (for the activity graph).
    pub fn event_times(&self) -> Vec<f64> {
        self.timeline.events.iter().map(|e| e.time as f64).collect()
    }
}

fn to_ms(t: f64) -> u64 {
    if t.is_finite() && t > 0.0 { t as u64 } else { 0 }
}

impl Player {
    /// A player over an already ordered timeline.
    pub fn from_timeline(timeline: Timeline) -> Self {
        Player { timeline, dom: Dom::new(), cursor: 0, dropped: HashSet::new(), viewport: (0, 0), pointer: None }
    }

    /// The model at the current position (for tests and for the native side).
    pub fn dom(&self) -> &Dom {
        &self.dom
    }

    fn track(&mut self, index: usize) {
        match &self.timeline.events[index].data {
            EventData::Meta(m) => self.viewport = (m.viewport.width, m.viewport.height),
            EventData::Viewport(v) => self.viewport = (v.width, v.height),
            EventData::MouseMove(points) => {
                if let Some(p) = points.last() {
                    self.pointer = Some((p.x, p.y));
                }
            }
            EventData::Click(c) => self.pointer = Some((c.x, c.y)),
            _ => {}
        }
    }

    fn write_full(&mut self, out: &mut String) {
        self.dropped.clear();
        out.push_str("[\"full\",");
        json::string(out, &self.dom.url);
        out.push(',');
        json::string(out, &self.dom.title);
        out.push(',');
        json::num(out, self.dom.scroll.0);
        out.push(',');
        json::num(out, self.dom.scroll.1);
        out.push_str(",[");
        let mut state = Vec::new();
        let mut first = true;
        let doc = self.dom.document();
        let mut stack = if doc == 0 { vec![] } else { vec![(doc, 0u32)] };
        while let Some((id, parent)) = stack.pop() {
            let Some(node) = self.dom.node(id) else {
                continue;
            };
            if self.dropped.contains(&parent) {
                self.dropped.insert(id);
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            let kind = dom_kind_to_node(&node.kind);
            write_node(&mut self.dropped, id, parent, &kind, &self.dom.url, out);
            if let DomKind::Element { value, checked, scroll, .. } = &node.kind {
                if value.is_some() || checked.is_some() {
                    state.push(("input", id, value.clone(), *checked, (0, 0)));
                }
                if let Some(s) = scroll {
                    state.push(("scroll", id, None, None, *s));
                }
            }
            let children: Vec<u32> = self.dom.children(id).map(|(c, _)| c).collect();
            stack.extend(children.into_iter().rev().map(|c| (c, id)));
        }
        out.push_str("]]");
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
                json::string(out, value.as_deref().unwrap_or(""));
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
        out.push_str(",[\"viewport\",");
        json::num(out, self.viewport.0);
        out.push(',');
        json::num(out, self.viewport.1);
        out.push(']');
        if let Some((x, y)) = self.pointer {
            out.push_str(",[\"mouse\",");
            json::num(out, x);
            out.push(',');
            json::num(out, y);
            out.push(']');
        }
    }
}

/// Writes one node (sanitized); scripts become placeholder comments and are remembered in
/// `dropped` so their subtrees are dropped.
fn write_node(dropped: &mut HashSet<u32>, id: u32, parent: u32, kind: &NodeKind, page_url: &str, out: &mut String) {
    out.push('[');
    json::num(out, id);
    out.push(',');
    json::num(out, parent);
    out.push(',');
    match kind {
        NodeKind::Document => out.push('0'),
        NodeKind::Doctype { name, public_id, system_id } => {
            out.push_str("1,");
            json::string(out, name);
            out.push(',');
            json::string(out, public_id);
            out.push(',');
            json::string(out, system_id);
        }
        NodeKind::Element { tag, ns, attrs } => {
            if sanitize::is_blocked_element(tag, *ns) {
                dropped.insert(id);
                out.push_str("4,");
                json::string(out, sanitize::SCRIPT_PLACEHOLDER);
            } else {
                out.push_str("2,");
                json::string(out, tag);
                out.push(',');
                json::num(out, ns.code());
                out.push_str(",[");
                for (i, a) in sanitize::clean_attrs(tag, attrs, page_url).iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json::string(out, &a.name);
                    out.push(',');
                    json::string(out, &a.value);
                }
                out.push(']');
            }
        }
        NodeKind::Text(t) => {
            out.push_str("3,");
            json::string(out, t);
        }
        NodeKind::Comment(t) => {
            out.push_str("4,");
            json::string(out, t);
        }
        NodeKind::ShadowRoot => out.push('5'),
    }
    out.push(']');
}

impl Player {
    fn write_nodes(&mut self, nodes: &[Node], root_parent: u32, out: &mut String) {
        out.push('[');
        let mut first = true;
        for (i, n) in nodes.iter().enumerate() {
            let parent = if i == 0 { root_parent } else { n.parent };
            if self.dropped.contains(&parent) {
                self.dropped.insert(n.id);
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            write_node(&mut self.dropped, n.id, parent, &n.kind, &self.dom.url, out);
        }
        out.push(']');
    }

    /// Writes the operation of one event; false when the event has no visible effect.
    fn write_op(&mut self, data: &EventData, out: &mut String) -> bool {
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
                    self.write_nodes(&add.nodes, add.parent, out);
                    out.push(']');
                }
                for a in &m.attrs {
                    let tag = match self.dom.node(a.id).map(|n| &n.kind) {
                        Some(DomKind::Element { tag, .. }) => tag.to_ascii_lowercase(),
                        _ => continue,
                    };
                    let value = a
                        .value
                        .as_deref()
                        .and_then(|v| sanitize::clean_attr(&tag, &a.name.to_ascii_lowercase(), v, &self.dom.url));
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
                    sep(out);
                    out.push_str("[\"text\",");
                    json::num(out, t.id);
                    out.push(',');
                    json::string(out, &t.text);
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
            // Shown by later viewer work (panels, CSSOM replay); no visible effect yet.
            _ => false,
        }
    }
}

fn dom_kind_to_node(kind: &DomKind) -> NodeKind {
    match kind {
        DomKind::Document => NodeKind::Document,
        DomKind::Doctype { name, public_id, system_id } => {
            NodeKind::Doctype { name: name.clone(), public_id: public_id.clone(), system_id: system_id.clone() }
        }
        DomKind::Element { tag, ns, attrs, .. } => {
            NodeKind::Element { tag: tag.clone(), ns: *ns, attrs: attrs.clone() }
        }
        DomKind::Text(t) => NodeKind::Text(t.clone()),
        DomKind::Comment(t) => NodeKind::Comment(t.clone()),
        DomKind::ShadowRoot => NodeKind::ShadowRoot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::{AddedSubtree, Attr, Batch, Event, Mutation, Namespace, Snapshot};

    fn el(id: u32, parent: u32, tag: &str, attrs: &[(&str, &str)]) -> Node {
        Node {
            id,
            parent,
            kind: NodeKind::Element {
                tag: tag.into(),
                ns: Namespace::Html,
                attrs: attrs.iter().map(|(n, v)| Attr { name: (*n).into(), value: (*v).into() }).collect(),
            },
        }
    }

    fn session() -> Timeline {
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = vec![
            Event {
                t: 0,
                data: EventData::Snapshot(Snapshot {
                    nodes: vec![
                        Node { id: 1, parent: 0, kind: NodeKind::Document },
                        el(2, 1, "html", &[]),
                        el(3, 2, "body", &[("onload", "alert(1)")]),
                        el(4, 3, "script", &[]),
                        Node { id: 5, parent: 4, kind: NodeKind::Text("alert(2)".into()) },
                        el(6, 3, "a", &[("href", "javascript:alert(3)")]),
                    ],
                    scroll_x: 0,
                    scroll_y: 0,
                }),
            },
            Event {
                t: 10,
                data: EventData::Mutation(Mutation {
                    adds: vec![
                        AddedSubtree { parent: 3, next: 0, nodes: vec![el(7, 3, "p", &[("class", "x")])] },
                        AddedSubtree {
                            parent: 4,
                            next: 0,
                            nodes: vec![Node { id: 8, parent: 4, kind: NodeKind::Text("more".into()) }],
                        },
                    ],
                    ..Mutation::default()
                }),
            },
        ];
        Timeline::from_batches(vec![b])
    }

    #[test]
    fn full_frames_are_sanitized() {
        let mut p = Player::from_timeline(session());
        let full = p.seek(1000.0);
        assert!(!full.contains("alert"), "{full}");
        assert!(full.contains(sanitize::SCRIPT_PLACEHOLDER));
    }

    #[test]
    fn playing_forward_emits_ops_and_drops_script_children() {
        let mut p = Player::from_timeline(session());
        p.seek(1000.0);
        let ops = p.advance(1010.0);
        assert_eq!(ops, r#"[["add",3,0,[[7,3,2,"p",0,["class","x"]]]]]"#);
        assert_eq!(p.seek(1000.0).matches("\"p\"").count(), 0, "seeking back rebuilds the earlier document");
    }
}
