//! Rage clicks: a burst of rapid clicks on one spot, the mark of a user fighting an
//! unresponsive or broken control.
//!
//! One definition shared by the server (the session index counts bursts, so sessions can be
//! filtered by them) and the viewer (a timeline marker where each burst reaches the threshold).
//! A burst is [`RAGE_MIN_CLICKS`] or more clicks, each within [`RAGE_MAX_GAP_MS`] of the previous
//! one and on the same element or within [`RAGE_RADIUS_PX`] of the burst's first click. Four,
//! not three: a triple click is how people select a paragraph.

use crate::batch::Click;

/// Clicks a burst needs to count as a rage click.
pub const RAGE_MIN_CLICKS: u32 = 4;
/// Longest pause between two clicks of one burst (ms).
pub const RAGE_MAX_GAP_MS: u64 = 1_000;
/// Farthest a click may land from the burst's first click (CSS px), unless it hits the same
/// element.
pub const RAGE_RADIUS_PX: i64 = 30;

/// Follows clicks in time order and reports when a burst becomes a rage click.
#[derive(Debug, Clone, Default)]
pub struct RageDetector {
    first: Option<Click>,
    last_ms: u64,
    count: u32,
}

impl RageDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one click at `time_ms`. Returns true exactly once per burst: on the click that
    /// makes it a rage click.
    pub fn click(&mut self, time_ms: u64, click: &Click) -> bool {
        let continues = self.first.as_ref().is_some_and(|first| {
            let near = (i64::from(click.x) - i64::from(first.x)).abs() <= RAGE_RADIUS_PX
                && (i64::from(click.y) - i64::from(first.y)).abs() <= RAGE_RADIUS_PX;
            time_ms.saturating_sub(self.last_ms) <= RAGE_MAX_GAP_MS
                && time_ms >= self.last_ms
                && (near || (click.id != 0 && click.id == first.id))
        });
        if continues {
            self.count = self.count.saturating_add(1);
        } else {
            // Only where it was: the label is not needed (nor copied) here.
            self.first = Some(Click { label: String::new(), path: String::new(), ..*click });
            self.count = 1;
        }
        self.last_ms = time_ms;
        self.count == RAGE_MIN_CLICKS
    }

    /// Clicks in the current burst so far.
    pub fn burst(&self) -> u32 {
        self.count
    }
}

/// Number of rage clicks among `clicks` (time in ms, in time order).
pub fn count<'a>(clicks: impl IntoIterator<Item = (u64, &'a Click)>) -> u64 {
    let mut d = RageDetector::new();
    clicks.into_iter().filter(|(t, c)| d.click(*t, c)).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(id: u32, x: i32, y: i32) -> Click {
        Click { id, x, y, button: 0, label: String::new(), path: String::new(), interactive: None }
    }

    #[test]
    fn four_quick_clicks_on_one_spot_are_one_rage_click() {
        let c = click(7, 100, 100);
        let clicks = [(0, &c), (200, &c), (450, &c), (700, &c), (900, &c)];
        assert_eq!(count(clicks), 1, "one burst, however long");
    }

    #[test]
    fn a_triple_click_or_slow_clicks_are_not() {
        let c = click(7, 100, 100);
        assert_eq!(count([(0, &c), (100, &c), (200, &c)]), 0, "selecting a paragraph");
        assert_eq!(count([(0, &c), (1_500, &c), (3_000, &c), (4_500, &c)]), 0, "deliberate clicks");
    }

    #[test]
    fn clicks_far_apart_on_different_elements_are_not_but_one_element_is() {
        let (a, b) = (click(1, 0, 0), click(2, 300, 300));
        assert_eq!(count([(0, &a), (100, &b), (200, &a), (300, &b)]), 0);
        let (left, right) = (click(5, 10, 10), click(5, 200, 10));
        assert_eq!(count([(0, &left), (100, &right), (200, &left), (300, &right)]), 1, "a wide button");
    }

    #[test]
    fn two_bursts_count_twice() {
        let c = click(3, 50, 50);
        let times = [0, 100, 200, 300, 5_000, 5_100, 5_200, 5_300];
        assert_eq!(count(times.iter().map(|t| (*t, &c))), 2);
    }
}
