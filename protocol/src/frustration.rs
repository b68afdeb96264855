//! Frustration signals beside rage clicks ([`crate::rage`]): dead clicks, error clicks and quick
//! backs, found in one batch's events.
//!
//! One definition shared by the session index and the viewer (timeline marks). Ingest judges
//! each batch on its own, without the state of earlier batches, so it stays one pass with no
//! lookups; once a session is idle the server judges all its batches as one span and replaces
//! those counts (`server/src/frustration.rs`), since a click and its effect are usually in
//! different batches:
//!
//! - **error click**: a click followed within [`ERROR_WINDOW_MS`] by an uncaught error or an
//!   unhandled rejection (counted once per click).
//! - **dead click**: a click on something that looks clickable followed by nothing within
//!   [`DEAD_WINDOW_MS`]: no DOM change, page view, navigation, request, input, scroll or style
//!   change. "Looks clickable" is the recorder's test at the click
//!   ([`Click::interactive`](crate::batch::Click::interactive): a
//!   link, button, label, summary, select, button-like input or element with a widget role, or
//!   inside one), so clicks on plain text or into a text field never count. For clicks from
//!   older recorders it is the browser's: the click focused an element (the focus event comes
//!   with the press), which Chromium does for buttons and Safari does not. A click is judged only when its batch runs at least
//!   [`DEAD_WINDOW_MS`] + [`PENDING_GRACE_MS`] past it (requests are recorded when they end, with
//!   their start time: the grace lets a slow one arrive); later clicks are not judged.
//! - **quick back**: a history navigation back (`popstate`) to the URL a pushed or replaced
//!   navigation left less than [`QUICK_BACK_MS`] before (a single-page app's "oops, not this").
//!   Back between full page loads spans two page views and is not seen.

use crate::batch::{ErrorKind, EventData, Freeze, Mutation, NavigationKind};

/// How long after a click a response counts (ms).
pub const DEAD_WINDOW_MS: u64 = 1_000;
/// How long after a click an error is blamed on it (ms).
pub const ERROR_WINDOW_MS: u64 = 1_000;
/// Extra time the batch must cover before a click is judged dead (ms).
pub const PENDING_GRACE_MS: u64 = 2_000;
/// A navigation undone within this long is a quick back (ms).
pub const QUICK_BACK_MS: u64 = 5_000;
/// How long before a click its focus may have come (the press precedes the click).
pub const FOCUS_LEAD_MS: u64 = 1_000;
/// Most clicks, responses and navigations one batch's judgement looks at; past them nothing
/// more is judged.
pub const MAX_TRACKED: usize = 100_000;

/// A frustration signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    DeadClick,
    ErrorClick,
    QuickBack,
}

/// The signals of a batch, with their times (the click's, or the back navigation's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    pub dead_clicks: u64,
    pub error_clicks: u64,
    pub quick_backs: u64,
    /// (time, signal), in time order.
    pub marks: Vec<(u64, Signal)>,
}

fn is_response<S>(data: &EventData<S>) -> bool {
    match data {
        EventData::Mutation(Mutation { removes, adds, attrs, texts }) => {
            !(removes.is_empty() && adds.is_empty() && attrs.is_empty() && texts.is_empty())
        }
        EventData::Meta(_)
        | EventData::Snapshot(_)
        | EventData::Navigation(_)
        | EventData::Network(_)
        | EventData::WebSocket(_)
        | EventData::Input(_)
        | EventData::Scroll(_)
        | EventData::Css(_)
        | EventData::Media(_) => true,
        // A freeze marker means the page was busy, not that it ignored the click.
        EventData::Freeze(Freeze::Started { .. }) => true,
        _ => false,
    }
}

/// Finds the signals among one batch's events (`(time, data)`, in any order) in a batch that
/// ends at `batch_end` (Unix ms).
pub fn detect<'a, S: AsRef<str> + 'a>(
    events: impl IntoIterator<Item = (u64, &'a EventData<S>)>,
    batch_end: u64,
) -> Signals {
    let mut clicks = Vec::new();
    let mut responses = Vec::new();
    let mut errors = Vec::new();
    let mut focus: Vec<(u64, bool)> = Vec::new();
    // (time, kind, url)
    let mut navs: Vec<(u64, NavigationKind, &str)> = Vec::new();
    let mut first_url: Option<(u64, &str)> = None;
    for (t, data) in events {
        if clicks.len() + responses.len() + errors.len() + focus.len() + navs.len() >= MAX_TRACKED {
            break;
        }
        match data {
            EventData::Click(c) => clicks.push((t, c.interactive)),
            EventData::Focus(f) => focus.push((t, f.focused)),
            EventData::Error(e) if matches!(e.kind, ErrorKind::Uncaught | ErrorKind::Rejection) => errors.push(t),
            EventData::Navigation(n) => {
                navs.push((t, n.kind, n.url.as_ref()));
                responses.push(t);
            }
            EventData::Meta(m) => {
                if first_url.is_none_or(|(at, _)| t < at) {
                    first_url = Some((t, m.url.as_ref()));
                }
                responses.push(t);
            }
            d if is_response(d) => responses.push(t),
            _ => {}
        }
    }
    clicks.sort_unstable_by_key(|c| c.0);
    for v in [&mut responses, &mut errors] {
        v.sort_unstable();
    }
    focus.sort_unstable_by_key(|f| f.0);
    navs.sort_by_key(|n| n.0);
    let any_in = |v: &[u64], from: u64, to: u64| {
        let i = v.partition_point(|&x| x < from);
        v.get(i).is_some_and(|&x| x <= to)
    };
    let mut out = Signals::default();
    for &(t, interactive) in &clicks {
        if any_in(&errors, t, t + ERROR_WINDOW_MS) {
            out.error_clicks += 1;
            out.marks.push((t, Signal::ErrorClick));
            continue;
        }
        let judged = batch_end >= t + DEAD_WINDOW_MS + PENDING_GRACE_MS;
        // The recorder's own test; from older recorders, the latest focus change at or just
        // before the click (the press focuses, then clicks).
        let clickable = interactive.unwrap_or_else(|| {
            let at = focus.partition_point(|f| f.0 <= t + 50);
            at > 0 && focus[at - 1].1 && focus[at - 1].0 + FOCUS_LEAD_MS >= t
        });
        if judged && clickable && !any_in(&responses, t, t + DEAD_WINDOW_MS) {
            out.dead_clicks += 1;
            out.marks.push((t, Signal::DeadClick));
        }
    }
    let mut url = first_url.map(|(_, u)| u).unwrap_or("");
    let mut left: Option<(u64, &str)> = None;
    for &(t, kind, to) in &navs {
        match kind {
            NavigationKind::Push | NavigationKind::Replace | NavigationKind::Hash => left = Some((t, url)),
            NavigationKind::Pop => {
                if let Some((at, from)) = left
                    && !from.is_empty()
                    && from == to
                    && t.saturating_sub(at) <= QUICK_BACK_MS
                {
                    out.quick_backs += 1;
                    out.marks.push((t, Signal::QuickBack));
                }
                left = None;
            }
        }
        url = to;
    }
    out.marks.sort_by_key(|m| m.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Click, ErrorEvent, Focus, Navigation};
    use crate::test_util::el;
    use crate::{AddedSubtree, Mutation};

    /// A click from a recorder older than `Click::interactive`.
    fn click() -> EventData {
        click_with(None)
    }
    /// A click from a recorder that says whether the element answers clicks.
    fn click_on(interactive: bool) -> EventData {
        click_with(Some(interactive))
    }
    fn click_with(interactive: Option<bool>) -> EventData {
        EventData::Click(Click { id: 9, x: 1, y: 1, button: 0, label: String::new(), path: String::new(), interactive })
    }
    fn focus(focused: bool) -> EventData {
        EventData::Focus(Focus { id: 9, focused })
    }
    fn change() -> EventData {
        EventData::Mutation(Mutation {
            adds: vec![AddedSubtree { parent: 4, next: 0, nodes: vec![el(20, 4, "p", &[])] }],
            ..Mutation::default()
        })
    }
    fn nav(kind: NavigationKind, url: &str) -> EventData {
        EventData::Navigation(Navigation { url: url.into(), kind })
    }
    fn error(kind: ErrorKind) -> EventData {
        EventData::Error(ErrorEvent {
            kind,
            message: "x".into(),
            stack: String::new(),
            source: String::new(),
            line: 0,
            column: 0,
            count: 1,
        })
    }
    fn run(events: &[(u64, EventData)], end: u64) -> Signals {
        detect(events.iter().map(|(t, e)| (*t, e)), end)
    }

    #[test]
    fn a_focused_click_with_no_answer_is_dead_and_one_with_an_answer_is_not() {
        let dead = run(&[(1_000, focus(true)), (1_040, click())], 10_000);
        assert_eq!((dead.dead_clicks, dead.marks.clone()), (1, vec![(1_040, Signal::DeadClick)]));
        let answered = run(&[(1_000, focus(true)), (1_040, click()), (1_300, change())], 10_000);
        assert_eq!(answered.dead_clicks, 0);
        // Events are not in time order in a batch (requests arrive when they end).
        let late = run(
            &[(1_000, focus(true)), (1_040, click()), (9_000, EventData::Visibility(true)), (1_500, change())],
            10_000,
        );
        assert_eq!(late.dead_clicks, 0);
    }

    #[test]
    fn the_recorders_own_test_decides_when_it_is_there() {
        // A button that took no focus (Safari, Firefox on macOS): still a dead click.
        let unfocused = run(&[(1_040, click_on(true))], 10_000);
        assert_eq!((unfocused.dead_clicks, unfocused.marks), (1, vec![(1_040, Signal::DeadClick)]));
        assert_eq!(run(&[(1_040, click_on(true)), (1_500, change())], 10_000).dead_clicks, 0);
        // A click into a text field focuses it and answers with a caret: never dead.
        assert_eq!(run(&[(1_000, focus(true)), (1_040, click_on(false))], 10_000).dead_clicks, 0);
    }

    #[test]
    fn plain_text_and_clicks_near_the_batch_end_are_not_judged() {
        assert_eq!(run(&[(1_040, click())], 10_000).dead_clicks, 0, "nothing was focused: plain text");
        assert_eq!(run(&[(900, focus(true)), (950, focus(false)), (1_040, click())], 10_000).dead_clicks, 0);
        assert_eq!(run(&[(1_000, focus(true)), (1_040, click())], 2_500).dead_clicks, 0, "too close to the end");
    }

    #[test]
    fn an_error_right_after_a_click_makes_an_error_click() {
        let s = run(
            &[
                (1_000, click()),
                (1_200, error(ErrorKind::Uncaught)),
                (5_000, click()),
                (5_100, error(ErrorKind::Resource)),
            ],
            10_000,
        );
        assert_eq!((s.error_clicks, s.dead_clicks), (1, 0));
    }

    #[test]
    fn a_navigation_undone_within_seconds_is_a_quick_back() {
        let meta = EventData::Meta(crate::test_util::page_meta("https://shop.test/list"));
        let s = run(
            &[
                (0, meta.clone()),
                (1_000, nav(NavigationKind::Push, "https://shop.test/item/1")),
                (3_000, nav(NavigationKind::Pop, "https://shop.test/list")),
            ],
            10_000,
        );
        assert_eq!((s.quick_backs, s.marks), (1, vec![(3_000, Signal::QuickBack)]));
        let slow = run(
            &[
                (0, meta),
                (1_000, nav(NavigationKind::Push, "https://shop.test/item/1")),
                (9_000, nav(NavigationKind::Pop, "https://shop.test/list")),
            ],
            10_000,
        );
        assert_eq!(slow.quick_backs, 0, "reading the page for 8 s is not a quick back");
    }
}
