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
//! `["meta", url, title]`, `["css", owner, sheet, op]`, `["media", id, action, time, rate,
//! volume, muted]`, `["sel", anchor, anchorOffset, focus, focusOffset]` (see `ops.rs`). A node is `[id, parent, kind, ...]` with kind 0 document,
//! 1 doctype (name, public, system), 2 element (tag, ns, [name, value, ...]), 3 text, 4 comment,
//! 5 shadow root.

pub mod json;
mod ops;
pub mod sanitize;

use std::collections::HashSet;

use replay_protocol::codec::{self, Limits};
use replay_protocol::{Dom, EventData, Timeline};
use wasm_bindgen::prelude::*;

/// Largest session the player loads, in encoded bytes.
const MAX_SESSION_BYTES: usize = 1024 * 1024 * 1024;

/// A loaded session and the replay position.
#[wasm_bindgen]
pub struct Player {
    pub(crate) timeline: Timeline,
    pub(crate) dom: Dom,
    /// Index of the next event to apply.
    pub(crate) cursor: usize,
    /// Nodes not rebuilt (scripts and their subtrees).
    pub(crate) dropped: HashSet<u32>,
    pub(crate) viewport: (u32, u32),
    pub(crate) pointer: Option<(i32, i32)>,
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

    /// Timeline markers as JSON: `[[time, kind, x, y], ...]` for clicks (`"click"`), page
    /// views (`"page"`) and recorder notes (`"note"`: throttled or cut data).
    pub fn markers(&self) -> String {
        let mut out = String::from("[");
        let mut first = true;
        for e in &self.timeline.events {
            let (kind, x, y) = match &e.data {
                EventData::Click(c) => ("click", c.x, c.y),
                EventData::Meta(_) => ("page", 0, 0),
                EventData::Note(_) => ("note", 0, 0),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::{AddedSubtree, Attr, Batch, Event, Mutation, Namespace, Snapshot};
    use replay_protocol::{Node, NodeKind};

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
