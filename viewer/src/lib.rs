//! The player's replay engine, compiled to wasm32 and driven by `viewer/static/player.js`.
//!
//! It holds a session's [`Timeline`] and the protocol's [`Dom`] model. Seeking applies events
//! to the model in memory and then describes the whole document once (`["full", ...]`);
//! playing forward describes each change as a small operation. JavaScript applies the
//! operations to the sandboxed replay iframe through DOM APIs; recorded strings are never
//! parsed as HTML. Every node and attribute passes [`sanitize`] on its way out.
//!
//! Batches can be loaded in pieces ([`Player::append`]) so the first frame shows before a long
//! session has downloaded. In idle time a second model walks the loaded events and keeps
//! keyframes (clones of the model, see [`keyframes`] and [`Player::build_keyframes`]) so that
//! seeking backwards, or forwards past an earlier seek, never replays from the start of the
//! session; a seek itself never waits for a keyframe to be cloned. A long seek leaves out the
//! subtrees that a later event of the same seek removes again, and never decodes them: the node
//! lists of mutations with many additions stay encoded until applied (see
//! `replay_protocol::deferred`).
//!
//! Operations (JSON arrays, one per change):
//! `["full", url, title, scrollX, scrollY, nodes]`, `["rm", id]`, `["add", parent, next, nodes]`,
//! `["attr", id, name, value|null]`, `["text", id, text]`, `["input", id, value, checked|null]`,
//! `["scroll", id, x, y]`, `["mouse", x, y]`, `["click", x, y]`, `["viewport", w, h]`,
//! `["meta", url, title]`, `["css", owner, sheet, op]`, `["media", id, action, time, rate,
//! volume, muted]`, `["sel", anchor, anchorOffset, focus, focusOffset]` (see `ops.rs`). A node is `[id, parent, kind, ...]` with kind 0 document,
//! 1 doctype (name, public, system), 2 element (tag, ns, [name, value, ...]), 3 text, 4 comment,
//! 5 shadow root.
//!
//! A seek can also hand the nodes of its `full` operation over as a binary frame
//! ([`Player::seek_frame`], then [`Player::frame_ints`] and [`Player::frame_text`]; `nodes` is
//! then `null`): integers and one text of strings, read without a JSON parse (see `ops::Tape`).
//!
//! Panel entries ([`Player::entries`]) describe what happened besides the DOM (console, errors,
//! network, performance, environment, freezes, navigation, clicks) as JSON objects, see
//! [`entries`].

pub mod entries;
pub mod json;
pub mod keyframes;
mod ops;
pub mod sanitize;

use replay_protocol::codec::Limits;
use replay_protocol::deferred::{DeferredNodes, decode_batches_deferring, decode_deferred};
use std::rc::Rc;
use std::sync::Arc;

use replay_protocol::batch::NodeId;
use std::collections::HashSet;

use replay_protocol::dom::{DomKind, IdHash, IdMap, IdSet, SharedKinds, take_kinds};
use replay_protocol::timeline::TimedEvent;
use replay_protocol::{Dom, EventData, Timeline};
use wasm_bindgen::prelude::*;

use crate::keyframes::Keyframes;

/// Largest session the player loads, in encoded bytes.
const MAX_SESSION_BYTES: usize = 1024 * 1024 * 1024;

/// A loaded session and the replay position.
#[wasm_bindgen]
pub struct Player {
    pub(crate) timeline: Timeline,
    /// The node kinds of each event, taken out of it on load and shared by the model and its
    /// keyframes (see [`take_kinds`]); empty for events without nodes.
    pub(crate) kinds: Vec<SharedKinds>,
    /// The node lists of each event still undecoded (see [`Deferred`]); `None` for events with
    /// none (and for events beyond the list, which tests add directly).
    deferred: Vec<Option<Deferred>>,
    pub(crate) dom: Dom,
    /// Index of the next event to apply.
    pub(crate) cursor: usize,
    /// Nodes not rebuilt (scripts and their subtrees).
    pub(crate) dropped: IdSet,
    pub(crate) viewport: (u32, u32),
    pub(crate) pointer: Option<(i32, i32)>,
    pub(crate) keyframes: Keyframes,
    /// The second model that takes keyframes in idle time ([`Player::build_keyframes`]).
    scout: Option<Scout>,
    /// The nodes of the last full description written by [`Player::seek_frame`].
    frame: ops::Tape,
    /// Encoded bytes loaded so far.
    loaded_bytes: usize,
}

#[wasm_bindgen]
impl Player {
    /// Loads a MessagePack array of batches (the events endpoint's `application/msgpack`).
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: Vec<u8>) -> Result<Player, JsError> {
        let mut player = Player::empty();
        player.append(bytes)?;
        Ok(player)
    }

    /// A player with no events yet; batches arrive through [`Player::append`].
    pub fn empty() -> Player {
        Player::from_timeline(Timeline::default())
    }

    /// Appends a MessagePack array of batches that follow the ones already loaded in replay
    /// order (the events endpoint answers ranges in that order). Returns the number of events
    /// added. The replay position is kept.
    pub fn append(&mut self, bytes: Vec<u8>) -> Result<usize, JsError> {
        let budget = MAX_SESSION_BYTES.saturating_sub(self.loaded_bytes);
        let batches = decode_batches_deferring(&bytes, &Limits::default(), budget)?;
        self.loaded_bytes += bytes.len();
        let before = self.timeline.events.len();
        // The bytes (taken, not copied) stay while lists decoded from them are still deferred.
        let bytes = Rc::new(bytes);
        for (b, lists) in batches {
            let first = self.timeline.events.len();
            self.deferred.resize_with(first + b.events.len(), || None);
            for at in lists {
                if let Some(slot) = self.deferred.get_mut(first + at.event) {
                    slot.get_or_insert_with(|| Deferred { bytes: Rc::clone(&bytes), lists: Vec::new() }).lists.push(at);
                }
            }
            let page = match self.timeline.pages.iter().position(|p| *p == b.page) {
                Some(i) => i,
                None => {
                    self.timeline.pages.push(b.page.clone());
                    self.timeline.pages.len() - 1
                }
            };
            let start = b.start;
            for e in b.events {
                self.kinds.push(Vec::new());
                self.timeline.events.push(TimedEvent {
                    time: start.saturating_add(u64::from(e.t)),
                    page,
                    data: e.data,
                });
            }
        }
        Ok(self.timeline.events.len() - before)
    }

    /// Time of the first event (Unix epoch ms).
    pub fn start(&self) -> f64 {
        self.timeline.events.first().map_or(0.0, |e| e.time as f64)
    }

    /// Time of the last event (Unix epoch ms).
    pub fn end(&self) -> f64 {
        self.timeline.events.iter().map(|e| e.time).max().unwrap_or(0) as f64
    }

    /// Number of events in the session.
    pub fn event_count(&self) -> usize {
        self.timeline.events.len()
    }

    /// Number of keyframes held (for the tests and the benchmark).
    pub fn keyframe_count(&self) -> usize {
        self.keyframes.len()
    }

    /// Takes keyframes in idle time: moves a second model (the scout) forward through the
    /// loaded events by about `budget` units of work (nodes touched, see
    /// [`keyframes::work_of`]), keeping a clone whenever the cost rule says so. Returns true
    /// while events remain to be scouted. Seeking never waits for keyframes: a seek that finds
    /// none applies events from the start (or from the nearest one already taken).
    pub fn build_keyframes(&mut self, budget: u32) -> bool {
        let total = self.timeline.events.len();
        let mut scout = match self.scout.take() {
            Some(s) => s,
            None if self.keyframes.frontier() >= total => return false,
            None => Scout::at(&self.keyframes),
        };
        let mut spent = 0u64;
        while scout.cursor < total && spent < u64::from(budget.max(1)) {
            let kinds = shared_kinds(&mut self.kinds, &mut self.deferred, &mut self.timeline.events, scout.cursor);
            let data = &self.timeline.events[scout.cursor].data;
            scout.apply(data, kinds);
            let work = keyframes::work_of(data);
            spent += work;
            if self.keyframes.record_work(scout.cursor, work, scout.dom.len()) {
                self.keyframes.push(scout.cursor, &scout.dom, scout.viewport, scout.pointer);
            }
        }
        let more = scout.cursor < total;
        if more {
            self.scout = Some(scout);
        }
        more
    }

    /// Moves to absolute time `t` and describes the whole document there.
    pub fn seek(&mut self, t: f64) -> String {
        let t = to_ms(t);
        let target = self.timeline.events.iter().position(|e| e.time > t).unwrap_or(self.timeline.events.len());
        self.move_to(target);
        let mut out = String::from("[");
        self.write_full(&mut out, None);
        out.push(']');
        out
    }

    /// [`Player::seek`], with the nodes of the full description in a binary frame instead of
    /// JSON (its `nodes` are `null`): a frame of a big page is written and read several times
    /// faster. Take the frame with [`Player::frame_ints`] and [`Player::frame_text`] before
    /// the next call (see `ops::Tape` for the format).
    pub fn seek_frame(&mut self, t: f64) -> String {
        let t = to_ms(t);
        let target = self.timeline.events.iter().position(|e| e.time > t).unwrap_or(self.timeline.events.len());
        self.move_to(target);
        let mut out = String::from("[");
        let mut tape = std::mem::take(&mut self.frame);
        tape.clear();
        self.write_full(&mut out, Some(&mut tape));
        self.frame = tape;
        out.push(']');
        out
    }

    /// The integers of the last binary frame (taken: a second call gives an empty list).
    pub fn frame_ints(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.frame.ints)
    }

    /// The strings of the last binary frame, one text (taken like [`Player::frame_ints`]).
    pub fn frame_text(&mut self) -> String {
        std::mem::take(&mut self.frame.text)
    }

    /// Plays forward to absolute time `t`, describing each change.
    pub fn advance(&mut self, t: f64) -> String {
        let t = to_ms(t);
        let mut out = String::from("[");
        let mut first = true;
        // The events are read while the model changes: take them out for the loop.
        let mut timeline = std::mem::take(&mut self.timeline);
        let mut kinds = std::mem::take(&mut self.kinds);
        while timeline.events.get(self.cursor).is_some_and(|e| e.time <= t) {
            let event_kinds = shared_kinds(&mut kinds, &mut self.deferred, &mut timeline.events, self.cursor);
            let e = &timeline.events[self.cursor];
            self.step(&e.data, event_kinds);
            if matches!(e.data, EventData::Snapshot(_)) {
                // A new page view: everything before it is superseded.
                out.truncate(1);
                self.write_full(&mut out, None);
                first = false;
                continue;
            }
            let mark = out.len();
            if !first {
                out.push(',');
            }
            if self.write_op(&e.data, event_kinds, &mut out) {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        self.timeline = timeline;
        self.kinds = kinds;
        out.push(']');
        out
    }

    /// Panel entries of the events from index `from` on, as a JSON array (see [`entries`]).
    pub fn entries(&self, from: usize) -> String {
        entries::write(&self.timeline.events, from)
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
        let kinds = vec![Vec::new(); timeline.events.len()];
        Player {
            timeline,
            kinds,
            deferred: Vec::new(),
            dom: Dom::new(),
            cursor: 0,
            dropped: IdSet::default(),
            viewport: (0, 0),
            pointer: None,
            keyframes: Keyframes::default(),
            scout: None,
            frame: ops::Tape::default(),
            loaded_bytes: 0,
        }
    }

    /// The model at the current position (for tests and for the native side).
    pub fn dom(&self) -> &Dom {
        &self.dom
    }

    /// Index of the next event to apply.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Puts the model at event index `target` (the events before it applied): from the nearest
    /// keyframe at or before `target` when that saves work, otherwise by applying forward.
    pub fn move_to(&mut self, target: usize) {
        let target = target.min(self.timeline.events.len());
        if let Some(k) = self.keyframes.best_for(target)
            && (k.cursor > self.cursor || target < self.cursor)
        {
            self.dom = k.dom.clone();
            self.cursor = k.cursor;
            self.viewport = k.viewport;
            self.pointer = k.pointer;
        } else if target < self.cursor {
            self.dom = Dom::new();
            self.cursor = 0;
            self.viewport = (0, 0);
            self.pointer = None;
        }
        let mut timeline = std::mem::take(&mut self.timeline);
        let mut kinds = std::mem::take(&mut self.kinds);
        let events = timeline.events.get(self.cursor..target).unwrap_or_default();
        let removals = Removals::of(events, self.cursor);
        while self.cursor < target {
            let i = self.cursor;
            // An event with subtrees left out keeps its kinds (the nodes kept copy theirs):
            // converting every node for sharing would cost more than it saves.
            let event_kinds = if removals.leaves_out_in(i) && kinds.get(i).is_some_and(Vec::is_empty) {
                // Only the subtrees kept are decoded.
                if let Some(e) = timeline.events.get_mut(i) {
                    materialize(self.deferred.get_mut(i), &mut e.data, |id| removals.removed_after(id, i));
                }
                &[][..]
            } else {
                shared_kinds(&mut kinds, &mut self.deferred, &mut timeline.events, i)
            };
            let data = &timeline.events[i].data;
            track_pointer(data, &mut self.viewport, &mut self.pointer);
            self.dom.apply_shared_skipping(data, event_kinds, |id| removals.removed_after(id, i));
            self.cursor += 1;
        }
        self.timeline = timeline;
        self.kinds = kinds;
    }

    /// Applies the event at the cursor (given by the caller, who holds the timeline, with its
    /// shared node kinds). Keyframes are not taken here but in idle time
    /// ([`Player::build_keyframes`]), so that a seek costs only its own events.
    fn step(&mut self, data: &EventData, kinds: &[Arc<DomKind>]) {
        track_pointer(data, &mut self.viewport, &mut self.pointer);
        self.dom.apply_shared(data, kinds);
        self.cursor += 1;
    }
}

/// The added subtrees of one seek that a later event of the same seek removes again, so that
/// they are never built (see [`Dom::apply_shared_skipping`]).
#[derive(Default)]
struct Removals {
    /// (event index, root id) of each addition left out.
    dead: HashSet<(usize, NodeId), IdHash>,
    /// Indexes of the events that have additions left out.
    events: HashSet<usize, IdHash>,
}

impl Removals {
    /// The additions of `events` (the first has index `first`) that can be left out: the root is
    /// removed by a later event, and no addition that is kept is placed before it. Additions
    /// only ever name earlier nodes as their next sibling, so one backward pass decides.
    fn of(events: &[TimedEvent], first: usize) -> Removals {
        let mut r = Removals::default();
        if events.len() < 2 {
            return r;
        }
        let mut last_removal: IdMap<usize> = IdMap::default();
        for (i, e) in events.iter().enumerate() {
            if let EventData::Mutation(m) = &e.data {
                for &id in &m.removes {
                    last_removal.insert(id, first + i);
                }
            }
        }
        if last_removal.is_empty() {
            return r;
        }
        let mut anchors = IdSet::default();
        for (i, e) in events.iter().enumerate().rev() {
            let EventData::Mutation(m) = &e.data else { continue };
            let index = first + i;
            for add in m.adds.iter().rev() {
                let Some(root) = add.nodes.first() else { continue };
                let removed_later = last_removal.get(&root.id).is_some_and(|&last| last > index);
                if removed_later && !anchors.contains(&root.id) {
                    r.dead.insert((index, root.id));
                    r.events.insert(index);
                } else if add.next != 0 {
                    anchors.insert(add.next);
                }
            }
        }
        r
    }

    /// True when event `index` has additions left out.
    fn leaves_out_in(&self, index: usize) -> bool {
        !self.events.is_empty() && self.events.contains(&index)
    }

    /// True when the subtree rooted at `id`, added by event `index`, is left out.
    fn removed_after(&self, id: NodeId, index: usize) -> bool {
        !self.dead.is_empty() && self.dead.contains(&(index, id))
    }
}

/// The shared node kinds of event `i`, taken out of it the first time they are needed (see
/// [`take_kinds`]): loading a session converts nothing, and a seek that leaves subtrees out
/// never converts them.
fn shared_kinds<'a>(
    kinds: &'a mut [SharedKinds],
    deferred: &mut [Option<Deferred>],
    events: &mut [TimedEvent],
    i: usize,
) -> &'a [Arc<DomKind>] {
    match (kinds.get_mut(i), events.get_mut(i)) {
        (Some(k), Some(e)) => {
            if k.is_empty() {
                materialize(deferred.get_mut(i), &mut e.data, |_| false);
                *k = take_kinds(&mut e.data);
            }
            k
        }
        _ => &[],
    }
}

/// The node lists of one event left undecoded on load ([`replay_protocol::deferred`]): a seek
/// decodes only the subtrees it keeps, so the rows of a list rendered and replaced again cost
/// no more than reading past them.
struct Deferred {
    /// The range the event was loaded from.
    bytes: Rc<Vec<u8>>,
    lists: Vec<DeferredNodes>,
}

/// Decodes the node lists an event's `slot` still defers into its mutation `data`, except
/// those of the subtrees whose root `skip` names (they stay deferred). A list that fails to
/// decode leaves its subtree out (no nodes).
fn materialize(slot: Option<&mut Option<Deferred>>, data: &mut EventData, skip: impl Fn(NodeId) -> bool) {
    let Some(slot) = slot else { return };
    let Some(Deferred { bytes, lists }) = slot else { return };
    let EventData::Mutation(m) = data else {
        *slot = None;
        return;
    };
    let limits = Limits::default();
    lists.retain(|at| {
        let Some(add) = m.adds.get_mut(at.add) else { return false };
        if add.nodes.first().is_some_and(|root| skip(root.id)) {
            return true;
        }
        decode_deferred(bytes, at, &mut add.nodes, &limits);
        false
    });
    if lists.is_empty() {
        *slot = None;
    }
}

/// Viewport size and pointer position follow the events that carry them.
fn track_pointer(data: &EventData, viewport: &mut (u32, u32), pointer: &mut Option<(i32, i32)>) {
    match data {
        EventData::Meta(m) => *viewport = (m.viewport.width, m.viewport.height),
        EventData::Viewport(v) => *viewport = (v.width, v.height),
        EventData::MouseMove(points) => {
            if let Some(p) = points.last() {
                *pointer = Some((p.x, p.y));
            }
        }
        EventData::Click(c) => *pointer = Some((c.x, c.y)),
        _ => {}
    }
}

/// The model that walks ahead of the keyframes ([`Player::build_keyframes`]).
struct Scout {
    dom: Dom,
    /// Index of the next event to apply.
    cursor: usize,
    viewport: (u32, u32),
    pointer: Option<(i32, i32)>,
}

impl Scout {
    /// A scout that continues from the latest keyframe (or from the start).
    fn at(keyframes: &Keyframes) -> Scout {
        match keyframes.last() {
            Some(k) => Scout { dom: k.dom.clone(), cursor: k.cursor, viewport: k.viewport, pointer: k.pointer },
            None => Scout { dom: Dom::new(), cursor: 0, viewport: (0, 0), pointer: None },
        }
    }

    fn apply(&mut self, data: &EventData, kinds: &[Arc<DomKind>]) {
        track_pointer(data, &mut self.viewport, &mut self.pointer);
        self.dom.apply_shared(data, kinds);
        self.cursor += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::codec;
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
        b.events = session_events();
        Timeline::from_batches(vec![b])
    }

    fn session_events() -> Vec<Event> {
        vec![
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
        ]
    }

    #[test]
    fn full_frames_are_sanitized() {
        let mut p = Player::from_timeline(session());
        let full = p.seek(1000.0);
        assert!(!full.contains("alert"), "{full}");
        assert!(full.contains(sanitize::SCRIPT_PLACEHOLDER));
    }

    /// The nodes of a binary frame written back as the JSON node arrays of a `full` operation.
    fn frame_as_json(ints: &[u32], text: &str) -> String {
        let units: Vec<u16> = text.encode_utf16().collect();
        let mut ints = ints.iter().copied();
        let slice = |start: u32, len: u32| {
            let (start, len) = (start as usize, len as usize);
            String::from_utf16_lossy(units.get(start..start + len).unwrap_or_default())
        };
        let mut out = String::from("[");
        let mut json = ops::JsonNodes::new(&mut out);
        use ops::NodeOut;
        while let (Some(id), Some(parent), Some(kind)) = (ints.next(), ints.next(), ints.next()) {
            let mut next = || ints.next().unwrap_or(0);
            json.begin(id, parent, kind as u8);
            match kind {
                1 => {
                    for _ in 0..3 {
                        let (a, b) = (next(), next());
                        json.str(&slice(a, b));
                    }
                }
                2 => {
                    let (a, b) = (next(), next());
                    json.str(&slice(a, b));
                    json.num(next());
                    let count = next();
                    json.attrs_begin();
                    for _ in 0..count {
                        let (a, b, c, d) = (next(), next(), next(), next());
                        json.attr(&slice(a, b), &slice(c, d));
                    }
                    json.attrs_end();
                }
                3 | 4 => {
                    let (a, b) = (next(), next());
                    json.str(&slice(a, b));
                }
                _ => {}
            }
            json.end();
        }
        out.push(']');
        out
    }

    #[test]
    fn a_binary_frame_holds_the_same_nodes_as_the_json_description() {
        let mut events = session_events();
        if let EventData::Snapshot(s) = &mut events[0].data {
            s.nodes.push(Node { id: 9, parent: 3, kind: NodeKind::Text("caf\u{e9} \u{1f600} \"q\" end".into()) });
            s.nodes.push(el(10, 3, "svg", &[("viewBox", "0 0 1 1")]));
            s.nodes.push(Node { id: 11, parent: 10, kind: NodeKind::Comment("\u{1f600}".into()) });
        }
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = events;
        let mut p = Player::from_timeline(Timeline::from_batches(vec![b]));
        let json = p.seek(2000.0);
        let framed = p.seek_frame(2000.0);
        let (ints, text) = (p.frame_ints(), p.frame_text());
        let nodes = frame_as_json(&ints, &text);
        assert!(nodes.contains("\u{1f600}") && !nodes.contains("alert"), "{nodes}");
        assert_eq!(json, framed.replacen(",null]", &format!(",{nodes}]"), 1));
        assert!(p.frame_ints().is_empty(), "a frame is taken once");
        p.seek_frame(2000.0);
        let again = frame_as_json(&p.frame_ints(), &p.frame_text());
        assert_eq!(again, nodes, "the next frame starts afresh");
    }

    #[test]
    fn playing_forward_emits_ops_and_drops_script_children() {
        let mut p = Player::from_timeline(session());
        p.seek(1000.0);
        let ops = p.advance(1010.0);
        assert_eq!(ops, r#"[["add",3,0,[[7,3,2,"p",0,["class","x"]]]]]"#);
        assert_eq!(p.seek(1000.0).matches("\"p\"").count(), 0, "seeking back rebuilds the earlier document");
    }

    /// A session of `n` mutations that each add one paragraph of 3,000 text nodes (enough work
    /// per event for keyframes to be taken).
    fn long_session(n: u32) -> Timeline {
        let mut b = Batch::new("s", "p", 0, 0);
        b.events.push(Event {
            t: 0,
            data: EventData::Snapshot(Snapshot {
                nodes: vec![Node { id: 1, parent: 0, kind: NodeKind::Document }, el(2, 1, "html", &[])],
                scroll_x: 0,
                scroll_y: 0,
            }),
        });
        let mut next = 3;
        for i in 0..n {
            let root = next;
            let mut nodes = vec![el(root, 2, "p", &[])];
            for _ in 0..3_000 {
                next += 1;
                nodes.push(Node { id: next, parent: root, kind: NodeKind::Text("x".into()) });
            }
            next += 1;
            b.events.push(Event {
                t: 100 * (i + 1),
                data: EventData::Mutation(Mutation {
                    adds: vec![AddedSubtree { parent: 2, next: 0, nodes }],
                    ..Mutation::default()
                }),
            });
        }
        Timeline::from_batches(vec![b])
    }

    #[test]
    fn seeking_back_starts_from_a_keyframe_and_gives_the_same_document() {
        let mut p = Player::from_timeline(long_session(20));
        let end = p.seek(1_000_000.0);
        assert_eq!(p.keyframe_count(), 0, "a seek takes no keyframes itself");
        while p.build_keyframes(5_000) {}
        assert!(p.keyframe_count() > 1, "keyframes taken in idle time: {}", p.keyframe_count());
        let middle = p.seek(1_000.0);
        assert_eq!(middle.matches("\"p\"").count(), 10);
        let mut fresh = Player::from_timeline(long_session(20));
        assert_eq!(fresh.seek(1_000.0), middle, "a keyframe seek equals a seek from the start");
        assert_eq!(p.seek(1_000_000.0), end);
    }

    #[test]
    fn keyframe_seek_applies_only_events_after_the_keyframe() {
        let mut p = Player::from_timeline(long_session(40));
        p.seek(1_000_000.0);
        while p.build_keyframes(5_000) {}
        p.seek(0.0);
        let best = p.keyframes.best_for(30).map(|k| k.cursor).unwrap_or(0);
        assert!(best > 10, "a keyframe late in the session exists: {best}");
        p.move_to(30);
        assert_eq!(p.cursor(), 30);
        assert_eq!(p.dom().count_elements("p"), 29);
    }

    #[test]
    fn a_long_seek_leaves_out_subtrees_removed_later_and_ends_in_the_same_document() {
        use replay_protocol::{AttrChange, TextChange};
        let li = |id: u32, text: &str| {
            vec![
                el(id, 0, "li", &[("class", "row")]),
                Node { id: id + 1, parent: id, kind: NodeKind::Text(text.into()) },
            ]
        };
        let mut b = Batch::new("s", "p", 0, 0);
        b.events = vec![session_events().remove(0)];
        let mutation = |m: Mutation| Event { t: 1, data: EventData::Mutation(m) };
        // Render 10, 11, 12; re-render 20, 21 (a row placed before 11 first); change removed
        // and kept rows; re-render 30 before 21, which stays.
        let add = |nodes, next| AddedSubtree { parent: 3, next, nodes };
        b.events.push(mutation(Mutation {
            adds: vec![add(li(10, "a"), 0), add(li(12, "c"), 0), add(li(14, "e"), 0)],
            ..Mutation::default()
        }));
        b.events.push(mutation(Mutation { adds: vec![add(li(16, "before"), 12)], ..Mutation::default() }));
        b.events.push(mutation(Mutation {
            attrs: vec![AttrChange { id: 10, name: "class".into(), value: Some("gone".into()) }],
            texts: vec![TextChange { id: 15, text: "E".into() }],
            ..Mutation::default()
        }));
        b.events.push(mutation(Mutation {
            removes: vec![10, 12, 14],
            adds: vec![add(li(22, "y"), 0), add(li(20, "x"), 22)],
            ..Mutation::default()
        }));
        b.events.push(mutation(Mutation {
            removes: vec![20],
            adds: vec![add(li(30, "z"), 22)],
            texts: vec![TextChange { id: 23, text: "Y".into() }],
            ..Mutation::default()
        }));
        let timeline = Timeline::from_batches(vec![b]);
        let mut reference = Dom::new();
        for e in &timeline.events {
            reference.apply(&e.data);
        }
        let mut p = Player::from_timeline(timeline);
        p.move_to(usize::MAX);
        let html = replay_protocol::html::document_html(p.dom());
        assert_eq!(html, replay_protocol::html::document_html(&reference));
        assert!(html.contains("before") && html.contains(">z<") && html.contains(">Y<"), "{html}");
    }

    #[test]
    fn keyframes_built_in_slices_continue_after_more_events_arrive() {
        let whole = long_session(30);
        let mut first = whole.clone();
        first.events.truncate(11);
        let mut p = Player::from_timeline(first);
        let mut slices = 0;
        while p.build_keyframes(3_001) {
            slices += 1;
        }
        assert!(slices >= 9, "one slice per budget: {slices}");
        let before = p.keyframe_count();
        for mut e in whole.events[11..].iter().cloned() {
            p.kinds.push(take_kinds(&mut e.data));
            p.timeline.events.push(e);
        }
        while p.build_keyframes(100_000) {}
        assert!(p.keyframe_count() > before, "{before} -> {}", p.keyframe_count());
        let mut fresh = Player::from_timeline(long_session(30));
        assert_eq!(p.seek(2_500.0), fresh.seek(2_500.0));
    }

    #[test]
    fn batches_appended_in_pieces_play_like_one_load() {
        let mut whole = Batch::new("s", "p", 0, 1000);
        whole.events = session_events();
        let mut first = Batch::new("s", "p", 0, 1000);
        first.events = whole.events[..1].to_vec();
        let mut second = Batch::new("s", "p", 1, 1000);
        second.events = whole.events[1..].to_vec();
        let encode = |bs: &[&Batch]| {
            let bodies: Vec<Vec<u8>> = bs.iter().map(|b| codec::encode_batch(b).unwrap_or_default()).collect();
            codec::concat_encoded(bodies.iter().map(Vec::as_slice))
        };
        let mut streamed = Player::empty();
        assert_eq!(streamed.append(encode(&[&first])).ok(), Some(1));
        let first_frame = streamed.seek(1000.0);
        assert!(first_frame.contains("\"body\""));
        assert_eq!(streamed.append(encode(&[&second])).ok(), Some(1));
        let mut loaded = Player::new(encode(&[&whole])).ok().unwrap_or_else(Player::empty);
        assert_eq!(streamed.seek(2000.0), loaded.seek(2000.0));
        assert_eq!(streamed.end(), 1010.0);
    }

    /// Renders of 20 rows each (their node lists deferred on load), each replacing the last.
    fn rerenders() -> Batch {
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = vec![session_events().remove(0)];
        let mut rendered: Vec<u32> = Vec::new();
        for r in 0..4u32 {
            let ids: Vec<u32> = (0..20).map(|i| 100 + 1000 * r + 2 * i).collect();
            let adds = ids
                .iter()
                .map(|&id| AddedSubtree {
                    parent: 3,
                    next: 0,
                    nodes: vec![
                        el(id, 0, "li", &[("class", "row")]),
                        Node { id: id + 1, parent: id, kind: NodeKind::Text(format!("r{r} {id}")) },
                    ],
                })
                .collect();
            let removes = std::mem::replace(&mut rendered, ids);
            b.events.push(Event {
                t: 10 * (r + 1),
                data: EventData::Mutation(Mutation { removes, adds, ..Mutation::default() }),
            });
        }
        b
    }

    #[test]
    fn deferred_node_lists_play_like_decoded_ones() {
        let bytes = codec::concat_encoded(
            [codec::encode_batch_compact(rerenders()).unwrap_or_default().as_slice()].into_iter(),
        );
        let mut loaded = Player::new(bytes).ok().unwrap_or_else(Player::empty);
        assert!(loaded.deferred.iter().flatten().count() >= 4, "the renders' lists are deferred");
        let mut decoded = Player::from_timeline(Timeline::from_batches(vec![rerenders()]));
        let end = loaded.seek(2000.0);
        assert!(end.contains("r3 3100") && !end.contains("r2"), "{end}");
        assert_eq!(end, decoded.seek(2000.0));
        assert!(loaded.deferred.iter().flatten().count() >= 3, "the renders replaced are never decoded");
        assert_eq!(loaded.seek(1025.0), decoded.seek(1025.0), "a seek back decodes what it needs");
        while loaded.build_keyframes(1_000) {}
        assert_eq!(loaded.seek(1015.0), decoded.seek(1015.0));
        loaded.seek(1000.0);
        decoded.seek(1000.0);
        assert_eq!(loaded.advance(2000.0), decoded.advance(2000.0), "playing decodes each list it applies");
    }

    #[test]
    fn entries_describe_console_errors_network_and_freezes_as_text() {
        use replay_protocol::{Console, ConsoleLevel, ErrorEvent, ErrorKind, Freeze, Network, RequestKind};
        let mut b = Batch::new("s", "p", 0, 5000);
        b.events = vec![
            Event {
                t: 1,
                data: EventData::Console(Console {
                    level: ConsoleLevel::Warn,
                    args: vec!["<img src=x onerror=alert(1)>".into()],
                    stack: String::new(),
                }),
            },
            Event {
                t: 2,
                data: EventData::Error(ErrorEvent {
                    kind: ErrorKind::Uncaught,
                    message: "boom".into(),
                    stack: "at f (app.js:1:2)".into(),
                    source: "app.js".into(),
                    line: 1,
                    column: 2,
                    count: 3,
                }),
            },
            Event {
                t: 3,
                data: EventData::Network(Network {
                    kind: RequestKind::Fetch,
                    method: "GET".into(),
                    url: "/api".into(),
                    status: 500,
                    duration: 20,
                    request_size: 0,
                    response_size: 10,
                    failed: false,
                    aborted: false,
                    error: String::new(),
                    request_headers: vec![],
                    response_headers: vec![],
                    request_body: String::new(),
                    response_body: String::new(),
                }),
            },
            Event { t: 4, data: EventData::Freeze(Freeze::Ended { duration: 2000, culprits: vec![] }) },
            Event { t: 5, data: EventData::Scroll(replay_protocol::Scroll { id: 0, x: 0, y: 1 }) },
        ];
        let p = Player::from_timeline(Timeline::from_batches(vec![b]));
        let all = p.entries(0);
        assert!(all.starts_with(r#"[{"i":0,"t":5001,"k":"console","level":"warn","stack":"","args":["<img"#), "{all}");
        assert!(all.contains(r#""k":"error","kind":"uncaught","message":"boom""#), "{all}");
        assert!(all.contains(r#""status":500"#), "{all}");
        assert!(all.contains(r#""k":"freeze","phase":"end","duration":2000,"scripts":[]"#), "{all}");
        assert_eq!(p.entries(3), r#"[{"i":3,"t":5004,"k":"freeze","phase":"end","duration":2000,"scripts":[]}]"#);
    }
}
