//! A session's batches put in replay order, with absolute event times.
//!
//! Batches can arrive in any order and a session spans several page views (reloads). Replay
//! order is: page views by their first batch's start time, then batches by sequence number,
//! then events in recorded order. Duplicate `(page, seq)` pairs are kept once, except that a
//! freeze marker and a real batch sharing a number are both kept, the marker first.

use std::collections::HashMap;

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
    ///
    /// Costs O(n log n) in the number of batches whatever the number of page views: a hostile
    /// session may have one page view per batch, so pages are found through a hash map, never
    /// by a scan.
    pub fn from_batches(mut batches: Vec<Batch>) -> Self {
        let mut first_start: HashMap<&str, u64> = HashMap::new();
        for b in &batches {
            first_start.entry(b.page.as_str()).and_modify(|s| *s = (*s).min(b.start)).or_insert(b.start);
        }
        let mut order: Vec<(&str, u64)> = first_start.into_iter().collect();
        order.sort_unstable_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
        let pages: Vec<String> = order.into_iter().map(|(p, _)| p.to_owned()).collect();
        let index: HashMap<&str, usize> = pages.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
        // A freeze marker may share its number with a real batch (see
        // `Batch::is_freeze_marker`): both are kept, the marker first (its event is the last
        // moment the page answered, before anything the real batch holds).
        let mut keyed: Vec<(usize, u32, bool, Batch)> = batches
            .drain(..)
            .map(|b| (index.get(b.page.as_str()).copied().unwrap_or(usize::MAX), b.seq, !b.is_freeze_marker(), b))
            .collect();
        drop(index);
        keyed.sort_by_key(|(page, seq, real, _)| (*page, *seq, *real));
        let before = keyed.len();
        keyed.dedup_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2));
        let mut timeline = Timeline { events: Vec::new(), pages, duplicates: before - keyed.len() };
        for (page, _, _, b) in keyed {
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

    #[test]
    fn a_freeze_marker_sharing_a_real_batchs_number_is_kept_before_it() {
        use crate::batch::Freeze;
        let mut marker = Batch::new("s", "a", 1, 1_400);
        let started = Freeze::Started { url: "https://shop.test/".into(), last_action: "click".into() };
        marker.events.push(Event { t: 0, data: EventData::Freeze(started) });
        assert!(marker.is_freeze_marker() && !batch("a", 1, 1_500, &[2]).is_freeze_marker());
        // Sent twice (by the worker and by the page), and after the real batch.
        let t = Timeline::from_batches(vec![
            batch("a", 0, 1000, &[1]),
            batch("a", 1, 1500, &[2]),
            marker.clone(),
            marker,
            batch("a", 1, 1500, &[2]),
        ]);
        let kinds: Vec<i32> = t
            .events
            .iter()
            .map(|e| match e.data {
                EventData::Scroll(s) => s.y,
                EventData::Freeze(_) => -1,
                _ => -2,
            })
            .collect();
        assert_eq!(kinds, vec![1, -1, 2], "the real batch and the marker, each once, the marker first");
        assert_eq!(t.duplicates, 2);
    }

    #[test]
    fn a_page_view_per_batch_is_ordered_by_first_start() {
        // A hostile session: 20,000 page views of one batch each, sent in reverse order, with
        // ties broken by page id.
        let n = 20_000u64;
        let batches: Vec<Batch> =
            (0..n).rev().map(|i| batch(&format!("p{i:05}"), 0, 1_000 + (i / 2) * 10, &[i as i32])).collect();
        let t = Timeline::from_batches(batches);
        assert_eq!(t.pages.len(), n as usize);
        assert_eq!(t.pages[0], "p00000");
        assert_eq!(t.pages[1], "p00001", "equal starts: by page id");
        assert_eq!(t.pages.last().map(String::as_str), Some("p19999"));
        let ys: Vec<i32> = t.events.iter().map(|e| if let EventData::Scroll(s) = e.data { s.y } else { -1 }).collect();
        assert!(ys.iter().enumerate().all(|(i, &y)| y == i as i32), "events follow their page views");
        assert!(t.events.iter().enumerate().all(|(i, e)| e.page == i));
    }
}
