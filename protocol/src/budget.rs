//! Counts the events, nodes and added subtrees a batch decode builds, while it builds them: a
//! batch with more than its `Limits` allow is refused at the first list that goes over, not
//! after every element was decoded and only then counted by `validate`.
//!
//! Why: decoded, these elements are much larger than on the wire. A `Visibility` event is 6
//! bytes encoded and 240 in memory, so a 44 KB gzip body of 5 million of them (30 MB raw, under
//! the byte cap) held 1.1 GB and 3 s of CPU before the count was checked; nodes and added
//! subtrees grow about 20 times. MessagePack arrays say their length up front, so a list over
//! the budget is refused before any of its elements is decoded.
//!
//! The budget lives in a thread-local set by [`Scope`] for one `decode_batch*` call (decoding
//! is synchronous: nothing else runs on the thread meanwhile). Outside a scope every budget is
//! unlimited, so other decoders of these types (the JSON API's, tests') behave as before.
//! Each batch's events reset the node budgets, so a decode of several batches counts nodes per
//! batch as `validate` does.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

#[derive(Clone, Copy)]
struct State {
    max_events: usize,
    max_nodes: usize,
    events_left: usize,
    nodes_left: usize,
    adds_left: usize,
}

const UNLIMITED: State = State {
    max_events: usize::MAX,
    max_nodes: usize::MAX,
    events_left: usize::MAX,
    nodes_left: usize::MAX,
    adds_left: usize::MAX,
};

thread_local! {
    static STATE: Cell<State> = const { Cell::new(UNLIMITED) };
    /// The first list that went over its budget: what, how many it said it held, the limit.
    static EXCEEDED: Cell<Option<(&'static str, usize, usize)>> = const { Cell::new(None) };
}

/// The budgets of one decode call; the previous ones come back when it is dropped.
pub(crate) struct Scope {
    prev: State,
}

impl Scope {
    /// Budgets of `max_events` events and `max_nodes` nodes (and added subtrees) per batch.
    pub(crate) fn new(max_events: usize, max_nodes: usize) -> Scope {
        let prev = STATE.get();
        STATE.set(State {
            max_events,
            max_nodes,
            events_left: max_events,
            nodes_left: max_nodes,
            adds_left: max_nodes,
        });
        EXCEEDED.set(None);
        Scope { prev }
    }

    /// The list that went over its budget during this scope, as the error `validate` gives.
    pub(crate) fn exceeded(&self) -> Option<crate::Error> {
        EXCEEDED.get().map(|(what, actual, limit)| crate::Error::LimitExceeded { what, actual, limit })
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        STATE.set(self.prev);
        EXCEEDED.set(None);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Events,
    Nodes,
    Adds,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Nodes => "nodes",
            Kind::Adds => "added subtrees",
        }
    }

    /// Takes `n` from this kind's budget; false (and the excess noted) when there is not that much.
    fn take(self, n: usize) -> bool {
        let mut s = STATE.get();
        let (left, limit) = match self {
            Kind::Events => (s.events_left, s.max_events),
            Kind::Nodes => (s.nodes_left, s.max_nodes),
            Kind::Adds => (s.adds_left, s.max_nodes),
        };
        if n > left {
            if EXCEEDED.get().is_none() {
                EXCEEDED.set(Some((self.name(), n.saturating_add(limit - left), limit)));
            }
            return false;
        }
        match self {
            Kind::Events => s.events_left -= n,
            Kind::Nodes => s.nodes_left -= n,
            Kind::Adds => s.adds_left -= n,
        }
        STATE.set(s);
        true
    }
}

/// Deserializes a list, taking each element from the budget of `kind` (all at once when the
/// format says the length first, as MessagePack does).
struct Counted<T> {
    kind: Kind,
    marker: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Counted<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of {}", self.kind.name())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let over = || de::Error::custom(format_args!("too many {}", self.kind.name()));
        let hinted = seq.size_hint();
        if let Some(n) = hinted
            && !self.kind.take(n)
        {
            return Err(over());
        }
        // Never more room up front than a few thousand elements: the hint is the sender's word.
        let mut out = Vec::with_capacity(hinted.unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            if hinted.is_none() && !self.kind.take(1) {
                return Err(over());
            }
            out.push(v);
        }
        Ok(out)
    }
}

/// A batch's events (and the start of its budgets: each batch has its own).
pub(crate) fn events<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    let mut s = STATE.get();
    s.events_left = s.max_events;
    s.nodes_left = s.max_nodes;
    s.adds_left = s.max_nodes;
    STATE.set(s);
    d.deserialize_seq(Counted { kind: Kind::Events, marker: PhantomData })
}

/// The nodes of a snapshot or of an added subtree (counted together per batch).
pub(crate) fn nodes<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(Counted { kind: Kind::Nodes, marker: PhantomData })
}

/// The subtrees a mutation adds (counted together per batch, up to the node limit).
pub(crate) fn adds<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(Counted { kind: Kind::Adds, marker: PhantomData })
}
