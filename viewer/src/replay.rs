//! The replay state and the loaded events it replays.
//!
//! [`ReplayState`] is one position in a session: the document model after the first `cursor`
//! events, with the viewport, pointer and touch points those events left. The player's own position, the
//! scout that walks ahead to take keyframes, and every keyframe are each one of these, moved
//! forward by the same methods.
//!
//! `Events` holds what a session has loaded: its [`Timeline`], the node kinds of each event
//! once taken out of it for sharing ([`take_kinds`]), and the node lists still left encoded
//! (see `seek.rs`). It hands each event out ready to apply.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use replay_protocol::batch::{NodeId, TouchKind};
use replay_protocol::codec::Limits;
use replay_protocol::deferred::{DeferredNodes, decode_batches_deferring, decode_deferred};
use replay_protocol::dom::{DomKind, SharedKinds, take_kinds};
use replay_protocol::timeline::TimedEvent;
use replay_protocol::{Dom, EventData, Timeline};

/// Most touch points shown at once (the recorder sends at most 10 per event).
pub const MAX_TOUCHES: usize = 10;

/// The model after the first [`ReplayState::cursor`] events, with the viewport size and
/// pointer position they left.
#[derive(Debug, Clone, Default)]
pub struct ReplayState {
    dom: Dom,
    /// Index of the next event to apply.
    cursor: usize,
    viewport: (u32, u32),
    pointer: Option<(i32, i32)>,
    /// Fingers on the screen: the points of the last touch start or move, none after an end.
    touches: Vec<(i32, i32)>,
    /// The element that has the focus (0: none), for the replay's `:focus` look.
    focused: NodeId,
}

impl ReplayState {
    /// The state before the first event.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty model at `cursor` (for tests of what holds states).
    #[cfg(test)]
    pub(crate) fn at(cursor: usize) -> Self {
        ReplayState { cursor, ..Self::default() }
    }

    /// The document model.
    pub fn dom(&self) -> &Dom {
        &self.dom
    }

    /// Index of the next event to apply.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The recorded viewport size (width, height).
    pub fn viewport(&self) -> (u32, u32) {
        self.viewport
    }

    /// The last pointer position, if any event gave one.
    pub fn pointer(&self) -> Option<(i32, i32)> {
        self.pointer
    }

    /// Where fingers touch the screen now (the last start or move; empty once lifted).
    pub fn touches(&self) -> &[(i32, i32)] {
        &self.touches
    }

    /// The element that has the focus now (0: none).
    pub fn focused(&self) -> NodeId {
        self.focused
    }

    /// Applies the event at the cursor, with its shared node kinds (see [`Dom::apply_shared`]).
    pub fn apply(&mut self, data: &EventData, kinds: &[Arc<DomKind>]) {
        self.track_pointer(data);
        self.dom.apply_shared(data, kinds);
        self.cursor += 1;
    }

    /// [`ReplayState::apply`], leaving out the added subtrees whose root `dead` names (see
    /// [`Dom::apply_shared_skipping`]).
    pub fn apply_skipping(&mut self, data: &EventData, kinds: &[Arc<DomKind>], dead: impl Fn(NodeId) -> bool) {
        self.track_pointer(data);
        self.dom.apply_shared_skipping(data, kinds, dead);
        self.cursor += 1;
    }

    /// Viewport size and pointer position follow the events that carry them.
    fn track_pointer(&mut self, data: &EventData) {
        match data {
            EventData::Meta(m) => self.viewport = (m.viewport.width, m.viewport.height),
            EventData::Viewport(v) => self.viewport = (v.width, v.height),
            EventData::MouseMove(points) => {
                if let Some(p) = points.last() {
                    self.pointer = Some((p.x, p.y));
                }
            }
            EventData::Click(c) => self.pointer = Some((c.x, c.y)),
            EventData::Focus(f) if f.focused => self.focused = f.id,
            EventData::Focus(f) if f.id == self.focused => self.focused = 0,
            EventData::Touch(t) => {
                self.touches.clear();
                if matches!(t.kind, TouchKind::Start | TouchKind::Move) {
                    self.touches.extend(t.points.iter().take(MAX_TOUCHES).map(|p| (p.x, p.y)));
                }
            }
            _ => {}
        }
    }
}

/// The events of a session loaded so far, in replay order.
#[derive(Default)]
pub(crate) struct Events {
    timeline: Timeline,
    /// The node kinds of each event, taken out of it the first time it is applied and shared
    /// by the models that apply it (see [`take_kinds`]); empty until then, and for events
    /// without nodes.
    kinds: Vec<SharedKinds>,
    /// The node lists of each event still undecoded (see [`Deferred`]); `None` for events with
    /// none (and for events beyond the list, which a timeline given whole has).
    deferred: Vec<Option<Deferred>>,
    /// Index of each page view in `timeline.pages`, by id: a session of many page views must
    /// not scan the list for every batch.
    page_index: HashMap<String, usize>,
}

impl Events {
    /// The events of an already ordered timeline.
    pub(crate) fn from_timeline(timeline: Timeline) -> Self {
        let kinds = vec![Vec::new(); timeline.events.len()];
        let page_index = timeline.pages.iter().enumerate().map(|(i, p)| (p.clone(), i)).collect();
        Events { timeline, kinds, deferred: Vec::new(), page_index }
    }

    /// Appends a MessagePack array of batches (at most `budget` encoded bytes) whose events
    /// follow the ones already loaded; returns the number of events added. Node lists of
    /// additions are left encoded until an event is applied (see [`crate::seek`]).
    pub(crate) fn append(&mut self, bytes: Vec<u8>, budget: usize) -> Result<usize, replay_protocol::Error> {
        let batches = decode_batches_deferring(&bytes, &Limits::default(), budget)?;
        let before = self.timeline.events.len();
        // The bytes (taken, not copied) stay while lists decoded from them are still deferred.
        let bytes = Rc::new(bytes);
        for (b, lists) in batches {
            let first = self.timeline.events.len();
            self.deferred.resize_with(first + b.events.len(), || None);
            for at in lists {
                if let Some(slot) = self.deferred.get_mut(first + at.event) {
                    Deferred::add(slot, &bytes, at);
                }
            }
            let pages = &mut self.timeline.pages;
            let page = *self.page_index.entry(b.page.clone()).or_insert_with(|| {
                pages.push(b.page.clone());
                pages.len() - 1
            });
            let start = b.start;
            for e in b.events {
                self.push(TimedEvent { time: start.saturating_add(u64::from(e.t)), page, data: e.data });
            }
        }
        Ok(self.timeline.events.len() - before)
    }

    /// Appends one event (its kinds are taken out when it is first applied).
    pub(crate) fn push(&mut self, event: TimedEvent) {
        self.kinds.push(Vec::new());
        self.timeline.events.push(event);
    }

    /// All events loaded, as they are now (node lists still deferred are empty).
    pub(crate) fn all(&self) -> &[TimedEvent] {
        &self.timeline.events
    }

    /// Number of events loaded.
    pub(crate) fn len(&self) -> usize {
        self.timeline.events.len()
    }

    /// Time of event `i` (Unix epoch ms).
    pub(crate) fn time(&self, i: usize) -> Option<u64> {
        self.timeline.events.get(i).map(|e| e.time)
    }

    /// Index of the first event later than `t` (the number of events at or before it).
    pub(crate) fn index_after(&self, t: u64) -> usize {
        self.timeline.events.iter().position(|e| e.time > t).unwrap_or(self.timeline.events.len())
    }

    /// Event `i` ready to apply, with its shared node kinds: its deferred node lists decoded
    /// and its kinds taken out the first time (loading converts nothing, and a seek that
    /// leaves subtrees out never converts them).
    pub(crate) fn shared(&mut self, i: usize) -> Option<(&EventData, &[Arc<DomKind>])> {
        let (Some(k), Some(e)) = (self.kinds.get_mut(i), self.timeline.events.get_mut(i)) else {
            return None;
        };
        if k.is_empty() {
            materialize(self.deferred.get_mut(i), &mut e.data, |_| false);
            *k = take_kinds(&mut e.data);
        }
        Some((&e.data, k))
    }

    /// True when the kinds of event `i` were not taken out yet (see [`Events::shared`]).
    pub(crate) fn kinds_untaken(&self, i: usize) -> bool {
        self.kinds.get(i).is_some_and(Vec::is_empty)
    }

    /// Event `i` with its kinds left in it and only the deferred node lists decoded whose
    /// subtree root `skip` does not name (those stay deferred). For a seek that leaves those
    /// subtrees out: converting every node for sharing would cost more than it saves.
    pub(crate) fn keeping_kinds(&mut self, i: usize, skip: impl Fn(NodeId) -> bool) -> Option<&EventData> {
        let e = self.timeline.events.get_mut(i)?;
        materialize(self.deferred.get_mut(i), &mut e.data, skip);
        Some(&e.data)
    }

    /// Number of events whose node lists are still (partly) deferred.
    #[cfg(test)]
    pub(crate) fn deferred_count(&self) -> usize {
        self.deferred.iter().flatten().count()
    }
}

/// The node lists of one event left undecoded on load ([`replay_protocol::deferred`]): a seek
/// decodes only the subtrees it keeps, so the rows of a list rendered and replaced again cost
/// no more than reading past them.
pub(crate) struct Deferred {
    /// The range the event was loaded from.
    bytes: Rc<Vec<u8>>,
    lists: Vec<DeferredNodes>,
}

impl Deferred {
    /// Adds list `at` (read from `bytes`) to the event whose deferred lists `slot` holds.
    pub(crate) fn add(slot: &mut Option<Deferred>, bytes: &Rc<Vec<u8>>, at: DeferredNodes) {
        slot.get_or_insert_with(|| Deferred { bytes: Rc::clone(bytes), lists: Vec::new() }).lists.push(at);
    }
}

/// Decodes the node lists an event's `slot` still defers into its mutation `data`, except
/// those of the subtrees whose root `skip` names (they stay deferred). A list that fails to
/// decode leaves its subtree out (no nodes).
pub(crate) fn materialize(slot: Option<&mut Option<Deferred>>, data: &mut EventData, skip: impl Fn(NodeId) -> bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::codec::{concat_encoded, encode_batch};
    use replay_protocol::test_util::{at, click};
    use replay_protocol::{Batch, PROTOCOL_VERSION};

    #[test]
    fn the_focus_follows_focus_and_blur() {
        use replay_protocol::Focus;
        let focus = |id, focused| EventData::Focus(Focus { id, focused });
        let mut state = ReplayState::new();
        assert_eq!(state.focused(), 0);
        state.apply(&focus(7, true), &[]);
        assert_eq!(state.focused(), 7);
        state.apply(&focus(9, true), &[]);
        state.apply(&focus(7, false), &[]);
        assert_eq!(state.focused(), 9, "the blur of another element leaves it");
        state.apply(&focus(9, false), &[]);
        assert_eq!(state.focused(), 0);
    }

    #[test]
    fn touch_points_follow_starts_and_moves_and_go_when_lifted() {
        use replay_protocol::{MousePoint, Touch};
        let touch = |kind, n: i32| {
            EventData::Touch(Touch { kind, points: (0..n).map(|i| MousePoint { x: i, y: 2 * i, dt: 0 }).collect() })
        };
        let mut state = ReplayState::new();
        state.apply(&touch(TouchKind::Start, 2), &[]);
        assert_eq!(state.touches(), &[(0, 0), (1, 2)]);
        state.apply(&touch(TouchKind::Move, 30), &[]);
        assert_eq!(state.touches().len(), MAX_TOUCHES, "a hostile event cannot draw more");
        state.apply(&touch(TouchKind::End, 1), &[]);
        assert!(state.touches().is_empty());
        state.apply(&touch(TouchKind::Start, 1), &[]);
        state.apply(&touch(TouchKind::Cancel, 1), &[]);
        assert!(state.touches().is_empty());
    }

    #[test]
    fn many_page_views_each_get_one_index_however_their_batches_interleave() {
        // 5,000 page views, each with two batches; the second batches come after all firsts.
        let pages = 5_000u32;
        let batch = |p: u32, seq: u32| {
            let mut b = Batch::new("s", format!("p{p}"), seq, 1_700_000_040_000 + u64::from(p));
            b.events = vec![at(0, click(p, 0, 0))];
            assert_eq!(b.version, PROTOCOL_VERSION);
            encode_batch(&b).unwrap_or_default()
        };
        let bodies: Vec<Vec<u8>> = (0..2).flat_map(|seq| (0..pages).map(move |p| batch(p, seq))).collect();
        let mut events = Events::default();
        for range in bodies.chunks(700) {
            let added = events.append(concat_encoded(range.iter().map(Vec::as_slice)), usize::MAX);
            assert_eq!(added.ok(), Some(range.len()));
        }
        assert_eq!(events.timeline.pages.len(), pages as usize);
        for (i, e) in events.all().iter().enumerate() {
            let p = i % pages as usize;
            assert_eq!(e.page, p, "event {i}");
            assert_eq!(events.timeline.pages[e.page], format!("p{p}"));
            assert!(matches!(&e.data, EventData::Click(c) if c.id == p as u32));
        }
    }
}
