//! The bounded event buffer and batch cutter.
//!
//! Events accumulate in the current batch; [`BatchBuffer::cut`] encodes it and starts the next
//! sequence number. The buffer never holds more than `max_buffer_bytes` (estimated): beyond that
//! new events are dropped and counted, and the count travels in the next batch's `dropped`
//! field so the server and the replay know something is missing. A snapshot is never dropped
//! (a replay cannot start without one): when one arrives over the bound, the pending events are
//! dropped instead.

use replay_protocol::codec::encode_batch_compact;
use replay_protocol::{Batch, Event, EventData, NodeKind};

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
}

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
        EventData::Click(_) | EventData::Scroll(_) | EventData::Viewport(_) | EventData::Focus(_) => 12,
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
        let start = *self.start.get_or_insert(now);
        // Clocks can step backwards; event times never go before the batch start.
        let now = now.max(start).max(self.last);
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

    /// Encodes the current batch (when it has events or counts to report) and starts the next.
    pub fn cut(&mut self, now: u64, is_final: bool) -> Option<Vec<u8>> {
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
                self.next_seq += 1;
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
        EventData::Click(Click { id: 1, x: 0, y: 0, button: 0 })
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
