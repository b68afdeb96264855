//! A session's batches put in replay order, with absolute event times.
//!
//! Batches can arrive in any order and a session spans several page views (reloads). Replay
//! order is: page views by their first batch's start time, then batches by sequence number,
//! then events in recorded order. Duplicate `(page, seq)` pairs are kept once.

use crate::batch::{Batch, EventData};
use crate::dom::Dom;

/// One event with its absolute time (Unix epoch ms) and the index of its page view.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    pub time: u64,
    pub page: usize,
    pub data: EventData,
}

/// All events of a session in replay order.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub events: Vec<TimedEvent>,
    /// Page-view ids in order.
    pub pages: Vec<String>,
    /// Events refused or batches skipped (duplicates).
    pub duplicates: usize,
}

impl Timeline {
    /// Orders the batches of one session.
    pub fn from_batches(mut batches: Vec<Batch>) -> Self {
        let mut first_start: Vec<(String, u64)> = Vec::new();
        for b in &batches {
            match first_start.iter_mut().find(|(p, _)| *p == b.page) {
                Some((_, start)) => *start = (*start).min(b.start),
                None => first_start.push((b.page.clone(), b.start)),
            }
        }
        first_start.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let page_index = |page: &str| first_start.iter().position(|(p, _)| p == page).unwrap_or(usize::MAX);
        batches.sort_by_key(|b| (page_index(&b.page), b.seq));
        let before = batches.len();
        batches.dedup_by(|a, b| a.page == b.page && a.seq == b.seq);
        let mut timeline = Timeline {
            events: Vec::new(),
            pages: first_start.iter().map(|(p, _)| p.clone()).collect(),
            duplicates: before - batches.len(),
        };
        for b in batches {
            let page = page_index(&b.page);
            let start = b.start;
            timeline.events.extend(b.events.into_iter().map(|e| TimedEvent {
                time: start.saturating_add(u64::from(e.t)),
                page,
                data: e.data,
            }));
        }
        timeline
    }

    /// Time of the first event, if any.
    pub fn start(&self) -> Option<u64> {
        self.events.iter().map(|e| e.time).min()
    }

    /// Time of the last event, if any.
    pub fn end(&self) -> Option<u64> {
        self.events.iter().map(|e| e.time).max()
    }

    /// The document as it was at time `t` (Unix epoch ms); `None` means the end of the session.
    /// Events are applied in replay order up to the first one later than `t`.
    pub fn dom_at(&self, t: Option<u64>) -> Dom {
        let mut dom = Dom::new();
        for e in &self.events {
            if t.is_some_and(|t| e.time > t) {
                break;
            }
            dom.apply(&e.data);
        }
        dom
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Event, EventData, Scroll};

    fn batch(page: &str, seq: u32, start: u64, ys: &[i32]) -> Batch {
        let mut b = Batch::new("s", page, seq, start);
        b.events = ys
            .iter()
            .enumerate()
            .map(|(i, &y)| Event { t: i as u32, data: EventData::Scroll(Scroll { id: 0, x: 0, y }) })
            .collect();
        b
    }

    #[test]
    fn orders_pages_then_sequence_and_drops_duplicates() {
        let t = Timeline::from_batches(vec![
            batch("b", 0, 2000, &[3]),
            batch("a", 1, 1500, &[2]),
            batch("a", 0, 1000, &[1]),
            batch("a", 1, 1500, &[2]),
        ]);
        let ys: Vec<i32> = t
            .events
            .iter()
            .map(|e| match e.data {
                EventData::Scroll(s) => s.y,
                _ => -1,
            })
            .collect();
        assert_eq!(ys, vec![1, 2, 3]);
        assert_eq!(t.pages, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.dom_at(Some(1500)).scroll, (0, 2));
        assert_eq!(t.dom_at(None).scroll, (0, 3));
    }
}
