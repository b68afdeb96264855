//! The [`Player`]: what `viewer/static/player.js` holds through wasm-bindgen.
//!
//! It owns the loaded events (`replay::Events`), its position (a [`ReplayState`]), the
//! keyframes and the scout that takes them in idle time, the writer of operations, and the last
//! binary frame. Its methods load batches, take keyframes, seek (see `seek.rs`) and play
//! forward, answering with the operations of `ops.rs`.

use replay_protocol::{Dom, EventData, Timeline};
use wasm_bindgen::prelude::*;

use crate::keyframes::{self, Keyframes};
use crate::ops::{Tape, Writer};
use crate::replay::{Events, ReplayState};
use crate::{entries, seek};

/// Largest session the player loads, in encoded bytes.
const MAX_SESSION_BYTES: usize = 1024 * 1024 * 1024;

/// A loaded session and the replay position.
#[wasm_bindgen]
pub struct Player {
    events: Events,
    /// The model at the replay position.
    state: ReplayState,
    /// Writes the operations, remembering the nodes the page left out.
    writer: Writer,
    keyframes: Keyframes,
    /// The second model that takes keyframes in idle time ([`Player::build_keyframes`]).
    scout: Option<ReplayState>,
    /// The nodes of the last full description written by [`Player::seek_frame`].
    frame: Tape,
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
        let len = bytes.len();
        let added = self.events.append(bytes, budget)?;
        self.loaded_bytes += len;
        Ok(added)
    }

    /// Time of the first event (Unix epoch ms).
    pub fn start(&self) -> f64 {
        self.events.time(0).map_or(0.0, |t| t as f64)
    }

    /// Time of the last event (Unix epoch ms).
    pub fn end(&self) -> f64 {
        self.events.all().iter().map(|e| e.time).max().unwrap_or(0) as f64
    }

    /// Number of events in the session.
    pub fn event_count(&self) -> usize {
        self.events.len()
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
        let total = self.events.len();
        let mut scout = match self.scout.take() {
            Some(s) => s,
            None if self.keyframes.frontier() >= total => return false,
            // The scout continues from the latest keyframe (or from the start).
            None => self.keyframes.last().cloned().unwrap_or_default(),
        };
        let mut spent = 0u64;
        while scout.cursor() < total && spent < u64::from(budget.max(1)) {
            let Some((data, kinds)) = self.events.shared(scout.cursor()) else { break };
            scout.apply(data, kinds);
            let work = keyframes::work_of(data);
            spent += work;
            if self.keyframes.record_work(scout.cursor(), work, scout.dom().weight()) {
                self.keyframes.push(&scout);
            }
        }
        let more = scout.cursor() < total;
        if more {
            self.scout = Some(scout);
        }
        more
    }

    /// Moves to absolute time `t` and describes the whole document there.
    pub fn seek(&mut self, t: f64) -> String {
        self.move_to(self.events.index_after(to_ms(t)));
        seek::describe(&self.state, &mut self.writer, None)
    }

    /// [`Player::seek`], with the nodes of the full description in a binary frame instead of
    /// JSON (its `nodes` are `null`): a frame of a big page is written and read several times
    /// faster. Take the frame with [`Player::frame_ints`] and [`Player::frame_text`] before
    /// the next call (see `ops::Tape` for the format).
    pub fn seek_frame(&mut self, t: f64) -> String {
        self.move_to(self.events.index_after(to_ms(t)));
        self.frame.clear();
        seek::describe(&self.state, &mut self.writer, Some(&mut self.frame))
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
        while self.events.time(self.state.cursor()).is_some_and(|time| time <= t) {
            let Some((data, kinds)) = self.events.shared(self.state.cursor()) else { break };
            self.state.apply(data, kinds);
            if matches!(data, EventData::Snapshot(_)) {
                // A new page view: everything before it is superseded.
                out.truncate(1);
                self.writer.write_full(&self.state, &mut out, None);
                first = false;
                continue;
            }
            let mark = out.len();
            if !first {
                out.push(',');
            }
            if self.writer.write_op(self.state.dom(), data, kinds, &mut out) {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        out.push(']');
        out
    }

    /// Panel entries of the events from index `from` on, as a JSON array (see [`entries`]).
    pub fn entries(&self, from: usize) -> String {
        entries::write(self.events.all(), from)
    }

    /// Frustration signals of the loaded events, as a JSON array (see [`entries::frustration`]).
    pub fn frustration(&self) -> String {
        entries::frustration(self.events.all())
    }

    /// Times of all events as a Float64Array-friendly list (for the activity graph).
    pub fn event_times(&self) -> Vec<f64> {
        self.events.all().iter().map(|e| e.time as f64).collect()
    }
}

fn to_ms(t: f64) -> u64 {
    if t.is_finite() && t > 0.0 { t as u64 } else { 0 }
}

impl Player {
    /// A player over an already ordered timeline.
    pub fn from_timeline(timeline: Timeline) -> Self {
        Player {
            events: Events::from_timeline(timeline),
            state: ReplayState::new(),
            writer: Writer::default(),
            keyframes: Keyframes::default(),
            scout: None,
            frame: Tape::default(),
            loaded_bytes: 0,
        }
    }

    /// The model at the current position (for tests and for the native side).
    pub fn dom(&self) -> &Dom {
        self.state.dom()
    }

    /// Index of the next event to apply.
    pub fn cursor(&self) -> usize {
        self.state.cursor()
    }

    /// The keyframes taken so far (see [`Player::build_keyframes`]).
    pub fn keyframes(&self) -> &Keyframes {
        &self.keyframes
    }

    /// Puts the model at event index `target` (the events before it applied): from the nearest
    /// keyframe at or before `target` when that saves work, otherwise by applying forward.
    /// Keyframes are not taken here but in idle time ([`Player::build_keyframes`]), so that a
    /// seek costs only its own events.
    pub fn move_to(&mut self, target: usize) {
        seek::move_to(&mut self.state, &self.keyframes, &mut self.events, target);
    }

    /// Appends one event after the ones loaded (for tests that add events directly).
    #[cfg(test)]
    pub(crate) fn push_event(&mut self, event: replay_protocol::timeline::TimedEvent) {
        self.events.push(event);
    }

    /// Number of events whose node lists are still (partly) deferred.
    #[cfg(test)]
    pub(crate) fn deferred_count(&self) -> usize {
        self.events.deferred_count()
    }
}
