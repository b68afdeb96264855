//! The bounded event buffer and batch cutter.
//!
//! Events accumulate in the current batch; [`BatchBuffer::cut`] encodes it and starts the next
//! sequence number. The buffer never holds more than `max_buffer_bytes` (estimated): beyond that
//! new events are dropped and counted, and the count travels in the next batch's `dropped`
//! field so the server and the replay know something is missing. A snapshot is never dropped
//! (a replay cannot start without one): when one arrives over the bound, the pending events are
//! dropped instead.

use replay_protocol::codec::{batch_times_at, encode_batch_compact, set_batch_times};
use replay_protocol::{Batch, Event, EventData, NodeKind};

use crate::renew::{Reader, Writer};

/// Bounds of the buffer.
#[derive(Debug, Clone, Copy)]
pub struct BufferConfig {
    /// Estimated size at which the current batch should be cut.
    pub max_batch_bytes: usize,
    /// Estimated size beyond which events are dropped.
    pub max_buffer_bytes: usize,
}

/// Events of the current batch plus the page view's delivery state.
pub struct BatchBuffer {
    session: String,
    page: String,
    config: BufferConfig,
    next_seq: u32,
    start: Option<u64>,
    last: u64,
    events: Vec<Event>,
    bytes: usize,
    dropped: u32,
    dropped_total: u32,
    errors: u32,
    watch: Watch,
}

/// A gap between heartbeats this long may have let the upload worker's watchdog (1 s without a
/// heartbeat) send its marker; a little less than 1 s absorbs the clock difference between the
/// page and the worker.
pub const FREEZE_SUSPECT_MS: u64 = 950;

/// The freeze watchdog's view of the page: the last heartbeat and the marker batch the worker
/// holds. The marker is numbered with the sequence number *after* the batch being filled,
/// without taking it; the first cut or heartbeat after a gap of [`FREEZE_SUSPECT_MS`] reserves
/// that number for the marker (the worker may have sent it), so a real batch never collides
/// with a marker the server stored, and in replay order the marker comes right after the
/// events recorded before the freeze. (Should one collide all the same, the server keys a
/// marker apart from a real batch of its number and keeps both, the marker first.)
#[derive(Default)]
struct Watch {
    armed: bool,
    last_beat: u64,
    /// The marker handed to the worker.
    marker: Option<Armed>,
    /// A marker whose seq was taken, waiting for the page to send it too (the server stores it
    /// once whoever sends it first).
    taken: Option<Vec<u8>>,
    /// Sequence numbers reserved by markers, skipped by the cuts (ascending, a handful at most).
    reserved: Vec<u32>,
    /// When a cut reserved the marker of the gap since `last_beat` (0: none did), the user's
    /// click queued during a freeze, handled before the heartbeat. The marker armed after that
    /// cut names no freeze of its own: what ends the gap reserves nothing more unless another
    /// [`FREEZE_SUSPECT_MS`] passed since that cut (a second freeze; the worker counts from the
    /// cut's messages too). One freeze, one `freeze_started`.
    gap_taken_at: u64,
}

/// The freeze marker as the worker holds it.
struct Armed {
    seq: u32,
    bytes: Vec<u8>,
    /// Where its times are in `bytes` ([`batch_times_at`]): the heartbeat moves them.
    times_at: Option<usize>,
}

/// Most reserved sequence numbers kept (freezes without any batch cut in between).
const MAX_RESERVED: usize = 16;

/// Rough encoded size of an event, cheap to compute (strings dominate).
fn estimate(e: &EventData) -> usize {
    fn node_size(kind: &NodeKind) -> usize {
        8 + match kind {
            NodeKind::Element { tag, attrs, .. } => {
                tag.len() + attrs.iter().map(|a| a.name.len() + a.value.len() + 4).sum::<usize>()
            }
            NodeKind::Text(t) | NodeKind::Comment(t) => t.len(),
            NodeKind::Doctype { name, public_id, system_id } => name.len() + public_id.len() + system_id.len(),
            NodeKind::Document | NodeKind::ShadowRoot => 0,
        }
    }
    8 + match e {
        EventData::Meta(m) => m.url.len() + m.title.len() + m.user_agent.len() + m.referrer.len() + 16,
        EventData::Snapshot(s) => s.nodes.iter().map(|n| node_size(&n.kind)).sum(),
        EventData::Mutation(m) => {
            m.removes.len() * 5
                + m.adds.iter().map(|a| 10 + a.nodes.iter().map(|n| node_size(&n.kind)).sum::<usize>()).sum::<usize>()
                + m.attrs.iter().map(|a| 8 + a.name.len() + a.value.as_ref().map_or(0, String::len)).sum::<usize>()
                + m.texts.iter().map(|t| 6 + t.text.len()).sum::<usize>()
        }
        EventData::Input(i) => i.value.len() + 8,
        EventData::MouseMove(p) => p.len() * 9,
        EventData::Custom(c) => c.name.len() + c.data.len(),
        EventData::Canvas(c) => c.data.len() + c.mime.len() + 16,
        EventData::Click(c) => 12 + c.label.len() + c.path.len(),
        EventData::Scroll(_)
        | EventData::ScrollDepth(_)
        | EventData::Viewport(_)
        | EventData::Focus(_)
        | EventData::Dialog(_) => 12,
        // Rare events: measured exactly.
        other => replay_protocol::codec::encoded_len(other),
    }
}

impl BatchBuffer {
    pub fn new(session: String, page: String, config: BufferConfig) -> Self {
        BatchBuffer {
            session,
            page,
            config,
            next_seq: 0,
            start: None,
            last: 0,
            events: Vec::new(),
            bytes: 0,
            dropped: 0,
            dropped_total: 0,
            errors: 0,
            watch: Watch::default(),
        }
    }

    /// Adds an event that happened at `now` (Unix epoch ms).
    pub fn push(&mut self, now: u64, data: EventData) {
        let size = estimate(&data);
        if self.bytes + size > self.config.max_buffer_bytes {
            if matches!(data, EventData::Snapshot(_)) {
                let n = u32::try_from(self.events.len()).unwrap_or(u32::MAX);
                self.dropped = self.dropped.saturating_add(n);
                self.dropped_total = self.dropped_total.saturating_add(n);
                self.events.clear();
                self.bytes = 0;
            } else {
                self.dropped = self.dropped.saturating_add(1);
                self.dropped_total = self.dropped_total.saturating_add(1);
                return;
            }
        }
        // Event times never go backwards (clocks step; performance entries arrive with the time
        // they started). A batch starts at its first event's time after that clamp, so that the
        // batch start, the session start in the index and the replay's first event all agree.
        let now = now.max(self.last);
        let start = *self.start.get_or_insert(now);
        let now = now.max(start);
        self.last = now;
        let t = u32::try_from(now - start).unwrap_or(u32::MAX);
        self.events.push(Event { t, data });
        self.bytes += size;
    }

    /// Counts events dropped outside the buffer (throttled in the page).
    pub fn count_dropped(&mut self, n: u32) {
        self.dropped = self.dropped.saturating_add(n);
        self.dropped_total = self.dropped_total.saturating_add(n);
    }

    /// Counts an internal error.
    pub fn count_error(&mut self) {
        self.errors = self.errors.saturating_add(1);
    }

    pub fn is_full(&self) -> bool {
        self.bytes >= self.config.max_batch_bytes
    }

    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }

    pub fn dropped_total(&self) -> u32 {
        self.dropped_total
    }

    /// Counts events dropped elsewhere (reported in the next batch).
    pub fn add_dropped(&mut self, n: u32) {
        self.dropped = self.dropped.saturating_add(n);
        self.dropped_total = self.dropped_total.saturating_add(n);
    }

    /// Sequence number the next cut batch gets.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Starts (page visible) or stops (hidden: timers are throttled, gaps mean nothing)
    /// watching for freezes; `now` counts as a heartbeat.
    pub fn watch(&mut self, now: u64, armed: bool) {
        self.watch.armed = armed;
        self.watch.last_beat = now;
        self.watch.gap_taken_at = 0;
    }

    /// A heartbeat of the page at `now`. True when it ends a freeze (a gap of at least
    /// [`FREEZE_SUSPECT_MS`] while watched); the marker's sequence number is then taken.
    pub fn beat(&mut self, now: u64) -> bool {
        let frozen = self.freeze_suspected(now);
        if frozen {
            self.take_marker_seq(now);
        }
        self.watch.last_beat = now;
        self.watch.gap_taken_at = 0;
        frozen
    }

    /// The sequence number a marker armed now gets: the first one after the batch being
    /// filled that no earlier marker reserved.
    fn marker_seq(&self) -> u32 {
        let mut seq = self.next_seq.saturating_add(1);
        while self.watch.reserved.contains(&seq) {
            seq = seq.saturating_add(1);
        }
        seq
    }

    /// Encodes the marker batch the worker sends when the page stops answering: one event at
    /// `now`, numbered after the batch being filled (not taken until a freeze is seen).
    pub fn arm_marker(&mut self, now: u64, data: EventData) -> Option<Vec<u8>> {
        let seq = self.marker_seq();
        let mut batch = Batch::new(self.session.clone(), self.page.clone(), seq, now);
        batch.events.push(Event { t: 0, data });
        let times_at = batch_times_at(&batch);
        let bytes = encode_batch_compact(batch).ok()?;
        self.watch.marker = Some(Armed { seq, bytes: bytes.clone(), times_at });
        Some(bytes)
    }

    /// Moves the armed marker to `now` in place, as arming it again with the same event would
    /// (what every heartbeat does while the URL and the last action stay the same), without
    /// encoding it. True when it did; false when there is no marker, its number is no longer
    /// the one a marker armed now would get (a batch was cut since), or its times cannot be
    /// moved: the page arms a new one then.
    pub fn move_marker(&mut self, now: u64) -> bool {
        let seq = self.marker_seq();
        match &mut self.watch.marker {
            Some(Armed { seq: armed, bytes, times_at: Some(at) }) if *armed == seq => set_batch_times(bytes, *at, now),
            _ => false,
        }
    }

    /// Where the armed marker's times are in its bytes, for the worker's copy (see
    /// [`BatchBuffer::move_marker`]).
    pub fn marker_times_at(&self) -> Option<usize> {
        self.watch.marker.as_ref().and_then(|m| m.times_at)
    }

    /// The marker whose sequence number a freeze took, for the page to send as well.
    pub fn take_marker(&mut self) -> Option<Vec<u8>> {
        self.watch.taken.take()
    }

    fn freeze_suspected(&self, now: u64) -> bool {
        let w = &self.watch;
        w.armed && w.last_beat > 0 && now.saturating_sub(w.last_beat) >= FREEZE_SUSPECT_MS
    }

    /// Reserves the armed marker's number for the gap being ended at `now`, once per freeze.
    fn take_marker_seq(&mut self, now: u64) {
        let w = &mut self.watch;
        if w.gap_taken_at > 0 && now.saturating_sub(w.gap_taken_at) < FREEZE_SUSPECT_MS {
            return;
        }
        w.gap_taken_at = now.max(1);
        if let Some(Armed { seq, bytes, .. }) = self.watch.marker.take()
            && seq == self.marker_seq()
            && self.watch.reserved.len() < MAX_RESERVED
        {
            self.watch.reserved.push(seq);
            self.watch.taken = Some(bytes);
        }
    }

    /// Encodes the current batch (when it has events or counts to report) and starts the next.
    /// True when no event waits in the current batch (what [`BatchBuffer::save`] needs).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Writes everything but the events (see [`crate::renew`]); call it right after a cut.
    pub fn save(&self, w: &mut Writer) {
        w.bytes(self.session.as_bytes());
        w.bytes(self.page.as_bytes());
        w.usize(self.config.max_batch_bytes);
        w.usize(self.config.max_buffer_bytes);
        w.u32(self.next_seq);
        w.u64(self.last);
        w.u32(self.dropped);
        w.u32(self.dropped_total);
        w.u32(self.errors);
        let watch = &self.watch;
        w.bool(watch.armed);
        w.u64(watch.last_beat);
        w.bool(watch.marker.is_some());
        if let Some(m) = &watch.marker {
            w.u32(m.seq);
            w.bytes(&m.bytes);
            w.u32(m.times_at.and_then(|at| u32::try_from(at + 1).ok()).unwrap_or(0));
        }
        w.bool(watch.taken.is_some());
        if let Some(bytes) = &watch.taken {
            w.bytes(bytes);
        }
        w.u32(u32::try_from(watch.reserved.len()).unwrap_or(0));
        for seq in &watch.reserved {
            w.u32(*seq);
        }
        w.u64(watch.gap_taken_at);
    }

    /// A buffer as [`BatchBuffer::save`] wrote it, with no events; `None` when malformed.
    pub fn restore(r: &mut Reader<'_>) -> Option<Self> {
        let session = r.string()?;
        let page = r.string()?;
        let config = BufferConfig { max_batch_bytes: r.usize()?, max_buffer_bytes: r.usize()? };
        let mut b = BatchBuffer::new(session, page, config);
        b.next_seq = r.u32()?;
        b.last = r.u64()?;
        b.dropped = r.u32()?;
        b.dropped_total = r.u32()?;
        b.errors = r.u32()?;
        b.watch.armed = r.bool()?;
        b.watch.last_beat = r.u64()?;
        if r.bool()? {
            let seq = r.u32()?;
            let bytes = r.bytes()?.to_vec();
            let times_at = (r.u32()? as usize).checked_sub(1);
            b.watch.marker = Some(Armed { seq, bytes, times_at });
        }
        if r.bool()? {
            b.watch.taken = Some(r.bytes()?.to_vec());
        }
        let reserved = r.u32()? as usize;
        if reserved > MAX_RESERVED {
            return None;
        }
        for _ in 0..reserved {
            b.watch.reserved.push(r.u32()?);
        }
        b.watch.gap_taken_at = r.u64()?;
        Some(b)
    }

    pub fn cut(&mut self, now: u64, is_final: bool) -> Option<Vec<u8>> {
        if self.freeze_suspected(now) {
            // The first cut after a freeze: the worker may have sent the marker with this seq.
            self.take_marker_seq(now);
        }
        if self.events.is_empty() && self.dropped == 0 && self.errors == 0 {
            return None;
        }
        let start = self.start.unwrap_or(now);
        let mut batch = Batch::new(self.session.clone(), self.page.clone(), self.next_seq, start);
        batch.end = start + self.events.last().map_or(0, |e| u64::from(e.t));
        batch.events = std::mem::take(&mut self.events);
        batch.dropped = std::mem::take(&mut self.dropped);
        batch.recorder_errors = std::mem::take(&mut self.errors);
        if is_final {
            batch.flags |= Batch::FLAG_FINAL;
        }
        if self.next_seq == 0 {
            batch.flags |= Batch::FLAG_PAGE_START;
        }
        self.start = None;
        self.bytes = 0;
        match encode_batch_compact(batch) {
            Ok(bytes) => {
                self.next_seq = self.next_seq.saturating_add(1);
                while self.watch.reserved.first() == Some(&self.next_seq) {
                    self.watch.reserved.remove(0);
                    self.next_seq = self.next_seq.saturating_add(1);
                }
                Some(bytes)
            }
            Err(_) => {
                // Only possible for values past MessagePack's own limits: count and carry on.
                self.errors = self.errors.saturating_add(1);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::{Click, Limits, Snapshot, decode_batch};

    fn click() -> EventData {
        EventData::Click(Click {
            id: 1,
            x: 0,
            y: 0,
            button: 0,
            label: String::new(),
            path: String::new(),
            interactive: None,
        })
    }

    #[test]
    fn batches_are_numbered_without_gaps_and_times_are_relative() {
        let mut b =
            BatchBuffer::new("s".into(), "p".into(), BufferConfig { max_batch_bytes: 100, max_buffer_bytes: 1000 });
        assert!(b.cut(5, false).is_none(), "nothing to send");
        b.push(1000, click());
        b.push(1250, click());
        let first = decode_batch(&b.cut(1300, false).expect("batch"), &Limits::default()).expect("decodes");
        assert_eq!((first.seq, first.start, first.end), (0, 1000, 1250));
        assert_eq!(first.events[1].t, 250);
        assert_ne!(first.flags & Batch::FLAG_PAGE_START, 0);
        b.push(2000, click());
        let second = decode_batch(&b.cut(2000, true).expect("batch"), &Limits::default()).expect("decodes");
        assert_eq!(second.seq, 1);
        assert_ne!(second.flags & Batch::FLAG_FINAL, 0);
    }

    #[test]
    fn an_early_timestamp_never_starts_a_batch_before_the_previous_events() {
        let mut b =
            BatchBuffer::new("s".into(), "p".into(), BufferConfig { max_batch_bytes: 100, max_buffer_bytes: 1000 });
        b.push(5_000, click());
        b.cut(5_000, false).expect("batch");
        // A performance entry reported now but timed at page load.
        b.push(1_000, click());
        let batch = decode_batch(&b.cut(6_000, false).expect("batch"), &Limits::default()).expect("decodes");
        assert_eq!(batch.start, 5_000);
        assert_eq!(batch.events[0].t, 0);
    }

    #[test]
    fn full_buffer_drops_and_reports_the_count() {
        let mut b =
            BatchBuffer::new("s".into(), "p".into(), BufferConfig { max_batch_bytes: 10, max_buffer_bytes: 50 });
        for i in 0..10 {
            b.push(i, click());
        }
        assert!(b.is_full());
        let batch = decode_batch(&b.cut(20, false).expect("batch"), &Limits::default()).expect("decodes");
        assert_eq!(batch.events.len() + batch.dropped as usize, 10);
        assert!(batch.dropped > 0);
        assert_eq!(b.dropped_total(), batch.dropped);
    }

    fn started() -> EventData {
        EventData::Freeze(replay_protocol::Freeze::Started { url: "u".into(), last_action: "click".into() })
    }

    fn buffer() -> BatchBuffer {
        BatchBuffer::new("s".into(), "p".into(), BufferConfig { max_batch_bytes: 100, max_buffer_bytes: 1000 })
    }

    fn seq_of(bytes: &[u8]) -> u32 {
        decode_batch(bytes, &Limits::default()).expect("decodes").seq
    }

    #[test]
    fn a_freeze_marker_is_numbered_after_the_open_batch_without_taking_it() {
        let mut b = buffer();
        b.watch(1000, true);
        b.push(1000, click());
        assert!(b.cut(1100, false).is_some());
        let marker =
            decode_batch(&b.arm_marker(1200, started()).expect("marker"), &Limits::default()).expect("decodes");
        assert_eq!((marker.seq, marker.start, marker.events.len()), (2, 1200, 1));
        assert!(!b.beat(1450), "no gap, no freeze");
        b.push(1500, click());
        assert_eq!(seq_of(&b.cut(1600, false).expect("batch")), 1);
        b.push(1700, click());
        assert_eq!(seq_of(&b.cut(1800, false).expect("batch")), 2, "an unused marker leaves no gap");
        assert!(b.take_marker().is_none());
    }

    #[test]
    fn the_first_cut_after_a_freeze_comes_before_the_marker_and_never_reuses_its_seq() {
        let mut b = buffer();
        b.watch(1000, true);
        b.arm_marker(1000, started()).expect("marker");
        b.push(1100, click());
        // Frozen from 1100 to 3100; a flush runs before the next heartbeat.
        assert_eq!(seq_of(&b.cut(3100, false).expect("batch")), 0, "the events before the freeze");
        assert_eq!(seq_of(&b.take_marker().expect("the page sends the marker too")), 1);
        assert!(b.beat(3150), "the heartbeat still sees the freeze");
        assert!(b.take_marker().is_none(), "taken once");
        b.push(3200, click());
        assert_eq!(seq_of(&b.cut(3300, false).expect("batch")), 2);
    }

    /// A watched page frozen from 1100 to 3100 ms: a click's cut at 3100 ends the gap (batch 0,
    /// the freeze's marker 1 taken), and the page re-arms a marker at `rearmed_at` (number 3).
    fn frozen_then_cut(rearmed_at: u64) -> BatchBuffer {
        let mut b = buffer();
        b.watch(1000, true);
        b.arm_marker(1000, started()).expect("marker");
        b.push(1100, click());
        assert_eq!(seq_of(&b.cut(3100, false).expect("batch")), 0);
        assert_eq!(seq_of(&b.take_marker().expect("the freeze's marker")), 1);
        assert_eq!(seq_of(&b.arm_marker(rearmed_at, started()).expect("re-armed")), 3);
        b
    }

    #[test]
    fn a_cut_and_the_heartbeat_after_one_freeze_reserve_one_marker() {
        // The user's click, queued meanwhile, cuts before the heartbeat.
        let mut b = frozen_then_cut(3105);
        // A second cut in the same gap (the flush timer) reserves nothing more either.
        b.push(3110, click());
        assert_eq!(seq_of(&b.cut(3120, false).expect("batch")), 2);
        b.arm_marker(3125, started()).expect("re-armed");
        assert!(b.beat(3150), "the heartbeat still ends the freeze (its end is recorded)");
        assert!(b.take_marker().is_none(), "the marker armed after the cut names no freeze");
        b.push(3200, click());
        assert_eq!(seq_of(&b.cut(3300, false).expect("batch")), 3, "only the freeze's number was skipped");
        // The next freeze reserves its own marker again.
        b.arm_marker(3300, started()).expect("marker");
        assert!(b.beat(5000));
        assert_eq!(seq_of(&b.take_marker().expect("the second freeze's marker")), 5);
    }

    #[test]
    fn a_second_freeze_right_after_a_cut_reserves_its_own_marker() {
        // The page freezes again from 3100 to 4500 before any heartbeat: the worker, silent
        // since the cut, may send the re-armed marker, so the heartbeat reserves it.
        let mut b = frozen_then_cut(3100);
        assert!(b.beat(4500));
        assert_eq!(seq_of(&b.take_marker().expect("the second freeze's marker")), 3);
        b.push(4600, click());
        assert_eq!(seq_of(&b.cut(4700, false).expect("batch")), 2);
        b.push(4800, click());
        assert_eq!(seq_of(&b.cut(4900, false).expect("batch")), 4, "both markers' numbers skipped");
    }

    #[test]
    fn a_heartbeat_moves_the_armed_marker_in_place_until_a_cut_renumbers_it() {
        const T: u64 = 1_700_000_000_000;
        let mut b = buffer();
        b.watch(T, true);
        assert!(!b.move_marker(T + 250), "nothing armed yet");
        let armed = b.arm_marker(T, started()).expect("marker");
        let at = b.marker_times_at().expect("epoch times move");
        assert!(b.move_marker(T + 250));
        assert!(b.move_marker(T + 500));
        // The worker's copy, moved the same way, is the marker armed at that time.
        let mut copy = armed;
        assert!(set_batch_times(&mut copy, at, T + 500));
        let mut fresh = buffer();
        fresh.watch(T, true);
        assert_eq!(fresh.arm_marker(T + 500, started()), Some(copy.clone()));
        // A freeze after that heartbeat takes the moved marker.
        assert!(!b.beat(T + 500));
        assert!(b.beat(T + 2000));
        assert_eq!(b.take_marker(), Some(copy));
        // Taken, or renumbered by a cut: nothing to move, the page arms a new marker.
        assert!(!b.move_marker(T + 2250));
        b.arm_marker(T + 2250, started()).expect("marker");
        b.push(T + 2300, click());
        assert!(b.cut(T + 2400, false).is_some());
        assert!(!b.move_marker(T + 2500), "numbered before the cut");
        b.arm_marker(T + 2500, started()).expect("marker");
        assert!(b.move_marker(T + 2750));
        // Times of 1970 do not take 8 bytes: such a marker is armed again each time.
        let mut old = buffer();
        old.arm_marker(1000, started()).expect("marker");
        assert_eq!(old.marker_times_at(), None);
        assert!(!old.move_marker(1250));
    }

    #[test]
    fn a_heartbeat_after_a_gap_reserves_the_markers_seq_only_while_watched() {
        let mut b = buffer();
        b.watch(1000, false);
        b.arm_marker(1000, started()).expect("marker");
        assert!(!b.beat(5000), "hidden pages are throttled, not frozen");
        b.watch(5000, true);
        b.arm_marker(5000, started()).expect("marker");
        assert!(b.beat(6200));
        assert_eq!(seq_of(&b.take_marker().expect("marker")), 1);
        // Two freezes before any batch: the second marker skips the first one's seq.
        assert_eq!(seq_of(&b.arm_marker(6200, started()).expect("marker")), 2);
        assert!(b.beat(8000));
        assert_eq!(seq_of(&b.take_marker().expect("marker")), 2);
        b.push(8100, click());
        assert_eq!(seq_of(&b.cut(8200, false).expect("batch")), 0);
        b.push(8300, click());
        assert_eq!(seq_of(&b.cut(8400, false).expect("batch")), 3, "reserved seqs are skipped");
    }

    #[test]
    fn a_snapshot_is_never_dropped() {
        let mut b =
            BatchBuffer::new("s".into(), "p".into(), BufferConfig { max_batch_bytes: 10, max_buffer_bytes: 40 });
        for i in 0..10 {
            b.push(i, click());
        }
        b.push(11, EventData::Snapshot(Snapshot { nodes: vec![], scroll_x: 0, scroll_y: 0 }));
        let batch = decode_batch(&b.cut(20, false).expect("batch"), &Limits::default()).expect("decodes");
        assert!(matches!(batch.events.last().map(|e| &e.data), Some(EventData::Snapshot(_))));
    }
}
