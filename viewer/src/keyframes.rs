//! Keyframes: clones of the replay model taken while it moves forward, so that a seek starts
//! from the nearest earlier keyframe instead of from the start of the session.
//!
//! When to keep one is a cost rule, not a fixed event count: a keyframe is taken once the work
//! applied since the previous one (nodes added, removed or changed) is at least half the size
//! of the model (its nodes and its style sheets' weight), i.e. comparable to what the clone
//! costs. Keyframes therefore cost at most about
//! twice the work of moving forward, and a seek replays at most about one model's worth of
//! changes, which is what describing the document to the page costs anyway. (Half, not all: in
//! a page that only grows, the work since a keyframe never catches up with the model size.) The
//! clones are bounded in total ([`MAX_KEYFRAME_NODES`]): when the budget is reached every other
//! keyframe is dropped and keyframes become twice as sparse.

use replay_protocol::EventData;

use crate::replay::ReplayState;

/// Fewest units of work between two keyframes (small pages change cheaply; clone rarely).
pub const MIN_KEYFRAME_WORK: u64 = 2_000;
/// Most model nodes held in all keyframes together (style sheets counted in nodes too,
/// [`replay_protocol::Dom::weight`]: a page of few nodes and many CSS operations cloned its
/// whole operation log into every keyframe).
pub const MAX_KEYFRAME_NODES: usize = 3_000_000;

/// The keyframes of one player (saved positions, see [`ReplayState`]), ordered by cursor.
#[derive(Debug, Default)]
pub struct Keyframes {
    frames: Vec<ReplayState>,
    /// Highest cursor whose work was counted (moving again through known ground counts nothing).
    frontier: usize,
    work: u64,
    /// Spacing multiplier, doubled each time the budget forces thinning.
    spacing: u64,
    nodes: usize,
}

/// Units of work of applying one event: roughly the nodes it touches.
pub fn work_of(data: &EventData) -> u64 {
    let n = match data {
        EventData::Snapshot(s) => s.nodes.len(),
        EventData::Mutation(m) => {
            m.removes.len() + m.adds.iter().map(|a| a.nodes.len()).sum::<usize>() + m.attrs.len() + m.texts.len()
        }
        _ => 0,
    };
    n as u64 + 1
}

impl Keyframes {
    /// Number of keyframes held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no keyframe is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The keyframe with the highest cursor.
    pub fn last(&self) -> Option<&ReplayState> {
        self.frames.last()
    }

    /// Highest cursor whose work was counted: keyframes are known up to here.
    pub fn frontier(&self) -> usize {
        self.frontier
    }

    /// The latest keyframe at or before event index `target`.
    pub fn best_for(&self, target: usize) -> Option<&ReplayState> {
        let i = self.frames.partition_point(|k| k.cursor() <= target);
        i.checked_sub(1).map(|i| &self.frames[i])
    }

    /// Counts the work of the event that moved the model to `cursor`; true when a keyframe
    /// should be taken now.
    pub fn record_work(&mut self, cursor: usize, work: u64, model_nodes: usize) -> bool {
        if cursor <= self.frontier {
            return false;
        }
        self.frontier = cursor;
        self.work += work;
        let spacing = self.spacing.max(1);
        self.work >= (model_nodes as u64 / 2).max(MIN_KEYFRAME_WORK) * spacing
    }

    /// Keeps a clone of `state` (at its cursor).
    pub fn push(&mut self, state: &ReplayState) {
        self.work = 0;
        let len = state.dom().weight();
        if self.nodes + len > MAX_KEYFRAME_NODES {
            self.thin();
            if self.nodes + len > MAX_KEYFRAME_NODES {
                return;
            }
        }
        self.nodes += len;
        self.frames.push(state.clone());
    }

    /// Drops every other keyframe and doubles the spacing of future ones.
    fn thin(&mut self) {
        let mut i = 0;
        self.frames.retain(|_| {
            i += 1;
            i % 2 == 0
        });
        self.nodes = self.frames.iter().map(|k| k.dom().weight()).sum();
        self.spacing = self.spacing.max(1) * 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyframe_is_due_once_the_work_reaches_the_model_size() {
        let mut k = Keyframes::default();
        assert!(!k.record_work(1, 1_000, 10_000));
        assert!(!k.record_work(2, 3_999, 10_000));
        assert!(k.record_work(3, 1, 10_000));
    }

    #[test]
    fn moving_again_through_known_ground_takes_no_keyframes() {
        let mut k = Keyframes::default();
        assert!(k.record_work(5, 5_000, 10));
        k.push(&ReplayState::at(5));
        assert!(!k.record_work(3, 5_000, 10));
        assert!(!k.record_work(5, 5_000, 10));
    }

    #[test]
    fn the_best_keyframe_is_the_latest_at_or_before_the_target() {
        let mut k = Keyframes::default();
        for c in [10, 20, 30] {
            k.push(&ReplayState::at(c));
        }
        assert_eq!(k.best_for(5).map(|f| f.cursor()), None);
        assert_eq!(k.best_for(20).map(|f| f.cursor()), Some(20));
        assert_eq!(k.best_for(29).map(|f| f.cursor()), Some(20));
        assert_eq!(k.best_for(1000).map(|f| f.cursor()), Some(30));
    }
}
