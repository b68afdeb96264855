//! Seeking: putting a [`ReplayState`] at any event index and describing the whole document
//! there.
//!
//! A seek starts from the nearest keyframe at or before its target when that saves work
//! (see [`crate::keyframes`]), otherwise from where the state is or from the start. Over the
//! events it then applies, it leaves out the added subtrees that a later event of the same seek
//! removes again ([`Removals`]), and never decodes them: the node lists of mutations with many
//! additions stay encoded until applied (`replay::Deferred`, see
//! `replay_protocol::deferred`). The answer is one `full` operation (see [`crate::ops`]).

use std::collections::HashSet;

use replay_protocol::EventData;
use replay_protocol::batch::NodeId;
use replay_protocol::dom::{IdHash, IdMap, IdSet};
use replay_protocol::timeline::TimedEvent;

use crate::keyframes::Keyframes;
use crate::ops::{Tape, Writer};
use crate::replay::{Events, ReplayState};

/// Puts `state` at event index `target` (the events before it applied): from the nearest
/// keyframe at or before `target` when that saves work, otherwise by applying forward.
pub(crate) fn move_to(state: &mut ReplayState, keyframes: &Keyframes, events: &mut Events, target: usize) {
    let target = target.min(events.len());
    if let Some(k) = keyframes.best_for(target)
        && (k.cursor() > state.cursor() || target < state.cursor())
    {
        *state = k.clone();
    } else if target < state.cursor() {
        *state = ReplayState::new();
    }
    let removals = Removals::of(events.all().get(state.cursor()..target).unwrap_or_default(), state.cursor());
    while state.cursor() < target {
        let i = state.cursor();
        // An event with subtrees left out keeps its kinds (the nodes kept copy theirs):
        // converting every node for sharing would cost more than it saves.
        let event = if removals.leaves_out_in(i) && events.kinds_untaken(i) {
            // Only the subtrees kept are decoded.
            events.keeping_kinds(i, |id| removals.removed_after(id, i)).map(|data| (data, &[][..]))
        } else {
            events.shared(i)
        };
        let Some((data, kinds)) = event else { break };
        state.apply_skipping(data, kinds, |id| removals.removed_after(id, i));
    }
}

/// The whole document at `state` as the answer of a seek: a list of one `full` operation and
/// the element and page state that go with it (see [`Writer::write_full`]). With a `tape`,
/// the nodes go there instead of into the JSON.
pub(crate) fn describe(state: &ReplayState, writer: &mut Writer, tape: Option<&mut Tape>) -> String {
    let mut out = String::from("[");
    writer.write_full(state, &mut out, tape);
    out.push(']');
    out
}

/// The added subtrees of one seek that a later event of the same seek removes again, so that
/// they are never built (see [`replay_protocol::Dom::apply_shared_skipping`]).
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
