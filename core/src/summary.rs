//! What the session index keeps of a batch: its [`BatchSummary`], made by [`summarize`] in one
//! pass over the decoded (usually borrowed) batch at ingest, and again from the stored body
//! when an engine recovers its index.

use replay_protocol::{AppFact, Batch, EventData, Freeze};

use crate::diagnostics::{self, ErrorSighting};

/// Facts about a batch that the session index aggregates, extracted at ingest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub session: String,
    pub page: String,
    pub seq: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// When the server received the batch (server clock, Unix ms): retention is based on it,
    /// never on the recorder's clock.
    pub received_ms: u64,
    /// URL of the page, when the batch carries page meta.
    pub url: Option<String>,
    pub user_agent: Option<String>,
    pub user: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub browser: Option<String>,
    pub events: u64,
    pub clicks: u64,
    /// Bursts of rapid clicks on one spot ([`replay_protocol::rage`]).
    pub rage_clicks: u64,
    /// Frustration signals ([`replay_protocol::frustration`]): clicks on something clickable
    /// that nothing answered, clicks followed by an error, navigations undone within seconds.
    pub dead_clicks: u64,
    pub error_clicks: u64,
    pub quick_backs: u64,
    pub errors: u64,
    pub freezes: u64,
    pub dropped: u64,
    pub recorder_errors: u64,
    /// Longest freeze that ended in this batch (ms) and its culprit (`function (file:line)`).
    pub longest_freeze_ms: u64,
    pub freeze_culprit: Option<String>,
    /// Time (Unix ms, recorder clock) of the latest `freeze_started` / `freeze_ended` in this
    /// batch, 0 for none. A session whose latest start is after its latest end is frozen.
    pub freeze_started_ms: u64,
    pub freeze_ended_ms: u64,
    /// Errors of this batch by fingerprint (for the error groups), at most
    /// [`diagnostics::MAX_SIGHTINGS_PER_BATCH`].
    pub error_sightings: Vec<ErrorSighting>,
    /// Errors left out of `error_sightings` by that cap (they still count in `errors`).
    pub error_sightings_dropped: u64,
    /// Environment facts (`browser`, `os`, `viewport`, `flag:name`, ...) and their values, to
    /// compare a session with the others (the storage's `compare_environment`). The latest value
    /// of a fact wins.
    pub facts: Vec<(String, String)>,
    /// What the session can be searched by ([`SearchTerm`]): at most
    /// [`MAX_TERMS_PER_KIND`] distinct terms of each kind per batch.
    pub search_terms: Vec<SearchTerm>,
    /// Terms left out of `search_terms` by that cap.
    pub search_terms_dropped: u64,
    /// What click maps and scroll maps keep of the batch ([`crate::clickmap`]).
    pub activity: crate::clickmap::Activity,
}

impl BatchSummary {
    /// Whether the batch is a freeze marker ([`replay_protocol::Batch::is_freeze_marker`]):
    /// exactly one event, a `freeze_started`. Storage keys markers apart from real batches of
    /// the same number, so neither is ever taken for a resend of the other.
    pub fn is_freeze_marker(&self) -> bool {
        self.events == 1 && self.freezes == 1
    }
}

/// What a session can be searched by ("search by what happened").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TermKind {
    /// The text of a clicked element (the recorder's short masked label of the click).
    Click = 1,
    /// The URL of a request that failed (status 400 or more, or a network error).
    FailedRequest = 2,
    /// A console message (its arguments joined by spaces).
    Console = 3,
    /// The URL of a page shown (page loads and in-page navigations), with when it was first
    /// and last shown: "page A followed by page B" compares them.
    Page = 4,
    /// A user the session identified (`Replay.identify`), as given (case kept): every one, not
    /// only the latest the index shows, so an erasure request for a user finds a session in
    /// which another user signed in after them.
    User = 5,
}

impl TermKind {
    /// Every kind, in code order.
    pub const ALL: [TermKind; 5] =
        [TermKind::Click, TermKind::FailedRequest, TermKind::Console, TermKind::Page, TermKind::User];

    /// The code the index stores.
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// One searchable fact of a batch: `text` lowercased and cut to [`MAX_TERM_CHARS`]
/// characters, seen first at `first_ms` and last at `last_ms` (Unix ms, recorder clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    pub kind: TermKind,
    pub text: String,
    pub first_ms: u64,
    pub last_ms: u64,
}

/// Most distinct terms of one kind a batch contributes (and the storage engines keep per
/// session); more are counted as dropped.
pub const MAX_TERMS_PER_KIND: usize = 200;
/// Longest term kept, in characters (longer texts are cut).
pub const MAX_TERM_CHARS: usize = 200;

/// The normalized form of a term: trimmed, lowercased, at most [`MAX_TERM_CHARS`] characters.
pub fn normalize_term(text: &str) -> String {
    text.trim().chars().take(MAX_TERM_CHARS).flat_map(char::to_lowercase).collect()
}

/// A user id as a [`TermKind::User`] term: trimmed, at most [`MAX_TERM_CHARS`] characters, its
/// case kept.
pub fn user_term(user: &str) -> String {
    user.trim().chars().take(MAX_TERM_CHARS).collect()
}

/// Collects a batch's search terms, distinct per kind and bounded.
#[derive(Default)]
struct Terms {
    terms: Vec<SearchTerm>,
    index: std::collections::HashMap<(TermKind, String), usize>,
    per_kind: [usize; TermKind::ALL.len()],
    dropped: u64,
}

impl Terms {
    fn add(&mut self, kind: TermKind, text: &str, at_ms: u64) {
        // A user id is kept as given (an erasure matches it exactly); other terms are searched
        // case-insensitively.
        let text = if kind == TermKind::User { user_term(text) } else { normalize_term(text) };
        if text.is_empty() {
            return;
        }
        let key = (kind, text);
        if let Some(t) = self.index.get(&key).and_then(|&i| self.terms.get_mut(i)) {
            t.first_ms = t.first_ms.min(at_ms);
            t.last_ms = t.last_ms.max(at_ms);
            return;
        }
        let count = &mut self.per_kind[kind as usize - 1];
        if *count >= MAX_TERMS_PER_KIND {
            self.dropped += 1;
            return;
        }
        *count += 1;
        self.terms.push(SearchTerm { kind, text: key.1.clone(), first_ms: at_ms, last_ms: at_ms });
        self.index.insert(key, self.terms.len() - 1);
    }
}

/// How far ahead of the server's clock a recorder's clock may be. Start and end times later
/// than the receive time plus this are set to it: a forged future start cannot pin a session
/// at the top of the list (sorted by start).
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

/// The facts of a batch that the session index keeps, from a batch decoded owned or borrowed
/// (only these few strings are copied).
pub fn summarize<S: AsRef<str>>(batch: &Batch<S>) -> BatchSummary {
    let owned = |v: &S| v.as_ref().to_owned();
    let mut s = BatchSummary {
        session: owned(&batch.session),
        page: owned(&batch.page),
        seq: batch.seq,
        start_ms: batch.start,
        end_ms: batch.end,
        received_ms: crate::clock::now_ms(),
        events: batch.events.len() as u64,
        dropped: u64::from(batch.dropped),
        recorder_errors: u64::from(batch.recorder_errors),
        ..BatchSummary::default()
    };
    let mut rage = replay_protocol::rage::RageDetector::new();
    let mut sightings = diagnostics::Sightings::default();
    let mut terms = Terms::default();
    let mut activity = crate::clickmap::Activity::default();
    for e in &batch.events {
        activity.see(batch.time_of(e), &e.data);
        match &e.data {
            EventData::Navigation(n) => terms.add(TermKind::Page, n.url.as_ref(), batch.time_of(e)),
            EventData::Network(n) if n.failed || n.status >= 400 => {
                terms.add(TermKind::FailedRequest, n.url.as_ref(), batch.time_of(e));
            }
            EventData::Console(c) => {
                let mut message = String::new();
                for arg in &c.args {
                    if message.chars().count() >= MAX_TERM_CHARS {
                        break;
                    }
                    if !message.is_empty() {
                        message.push(' ');
                    }
                    message.extend(arg.as_ref().chars().take(MAX_TERM_CHARS));
                }
                terms.add(TermKind::Console, &message, batch.time_of(e));
            }
            EventData::Meta(m) => {
                terms.add(TermKind::Page, m.url.as_ref(), batch.time_of(e));
                if s.url.is_none() {
                    s.url = Some(owned(&m.url));
                    s.user_agent = Some(owned(&m.user_agent));
                }
                let viewport = format!("{}×{}", m.viewport.width, m.viewport.height);
                diagnostics::push_fact(&mut s.facts, "viewport", &viewport);
            }
            EventData::Click(c) => {
                // A masked label (all `*`) says nothing to search for.
                if c.label.chars().any(|ch| ch != '*' && !ch.is_whitespace()) {
                    terms.add(TermKind::Click, &c.label, batch.time_of(e));
                }
                s.clicks += 1;
                s.rage_clicks += u64::from(rage.click(batch.time_of(e), c));
            }
            EventData::Error(err) => {
                s.errors += u64::from(err.count.max(1));
                sightings.add(diagnostics::sighting(err, batch.time_of(e)));
            }
            EventData::Freeze(Freeze::Started { .. }) => {
                s.freezes += 1;
                s.freeze_started_ms = s.freeze_started_ms.max(batch.time_of(e));
            }
            EventData::Freeze(Freeze::Ended { duration, culprits }) => {
                s.freeze_ended_ms = s.freeze_ended_ms.max(batch.time_of(e));
                if u64::from(*duration) > s.longest_freeze_ms {
                    s.longest_freeze_ms = u64::from(*duration);
                    s.freeze_culprit = culprits.first().map(diagnostics::culprit_text);
                }
            }
            EventData::Environment(env) => {
                if !env.browser.as_ref().is_empty() {
                    s.browser = Some(owned(&env.browser));
                }
                diagnostics::environment_facts(&mut s.facts, env);
            }
            EventData::App(AppFact::Identify { user, .. }) => {
                terms.add(TermKind::User, user.as_ref(), batch.time_of(e));
                s.user = Some(owned(user));
            }
            EventData::App(AppFact::Release(r)) => {
                s.release = Some(owned(r));
                diagnostics::push_fact(&mut s.facts, "release", r.as_ref());
            }
            EventData::App(AppFact::Environment(v)) => {
                s.environment = Some(owned(v));
                diagnostics::push_fact(&mut s.facts, "environment", v.as_ref());
            }
            EventData::App(AppFact::Flags(json)) => diagnostics::flag_facts(&mut s.facts, json.as_ref()),
            _ => {}
        }
    }
    (s.error_sightings, s.error_sightings_dropped) = sightings.finish();
    (s.search_terms, s.search_terms_dropped) = (terms.terms, terms.dropped);
    activity.finish();
    s.activity = activity;
    let signals =
        replay_protocol::frustration::detect(batch.events.iter().map(|e| (batch.time_of(e), &e.data)), batch.end);
    (s.dead_clicks, s.error_clicks, s.quick_backs) = (signals.dead_clicks, signals.error_clicks, signals.quick_backs);
    s
}

/// Sets start and end times later than `received_ms` + [`MAX_CLOCK_SKEW_MS`] to that limit
/// (ingest does, before a batch is stored).
pub fn clamp_times(s: &mut BatchSummary) {
    let latest = s.received_ms.saturating_add(MAX_CLOCK_SKEW_MS);
    s.start_ms = s.start_ms.min(latest);
    s.end_ms = s.end_ms.min(latest);
}

#[cfg(test)]
mod tests {
    use replay_protocol::{
        Click, Environment, ErrorEvent, ErrorKind, Event, Limits, Node, NodeKind, PageMeta, ScriptTiming, Snapshot,
        Viewport, decode_batch, decode_batch_borrowed, encode_batch,
    };

    use super::*;

    fn culprit(function: &str, line: u32) -> ScriptTiming {
        ScriptTiming {
            invoker: "BUTTON.onclick".into(),
            invoker_type: "event-listener".into(),
            source_url: "https://shop.test/app.js".into(),
            function: function.into(),
            char_position: -1,
            duration: 900,
            forced_style_layout: 0,
            pause_duration: 0,
            line,
            column: 7,
        }
    }

    fn error(message: &str, stack: &str, count: u32) -> EventData {
        EventData::Error(ErrorEvent {
            kind: ErrorKind::Uncaught,
            message: message.into(),
            stack: stack.into(),
            source: "https://shop.test/app.js".into(),
            line: 3,
            column: 9,
            count,
        })
    }

    fn environment(browser: &str) -> EventData {
        EventData::Environment(Environment {
            browser: browser.into(),
            browser_version: "156".into(),
            os: "Linux".into(),
            device_pixel_ratio: 1.0,
            device_memory: 8.0,
            cpu_cores: 2,
            connection: "4g".into(),
            language: "en".into(),
            timezone: "UTC".into(),
        })
    }

    fn meta(url: &str) -> EventData {
        EventData::Meta(PageMeta {
            url: url.into(),
            title: "t".into(),
            viewport: Viewport { width: 1, height: 1 },
            user_agent: format!("ua of {url}"),
            referrer: String::new(),
        })
    }

    /// Batches with every event the summary looks at, in varied orders and repeats.
    fn varied_batches() -> Vec<Batch> {
        let events: Vec<EventData> = vec![
            meta("https://shop.test/a"),
            meta("https://shop.test/b"),
            EventData::Snapshot(Snapshot {
                nodes: vec![Node { id: 1, parent: 0, kind: NodeKind::Document }],
                scroll_x: 0,
                scroll_y: 0,
            }),
            EventData::Click(Click {
                id: 1,
                x: 2,
                y: 3,
                button: 0,
                label: String::new(),
                path: String::new(),
                interactive: None,
            }),
            error("order 123 failed", "Error: order 123 failed\n    at pay (https://shop.test/app.js:3:9)", 0),
            error("order 456 failed", "Error: order 456 failed\n    at pay (https://shop.test/app.js:3:9)", 4),
            error("\u{1F600} no stack", "", 1),
            EventData::Freeze(Freeze::Started { url: "https://shop.test/a".into(), last_action: "click".into() }),
            EventData::Freeze(Freeze::Ended { duration: 1200, culprits: vec![culprit("burn", 40)] }),
            EventData::Freeze(Freeze::Ended { duration: 3000, culprits: vec![culprit("", 0), culprit("x", 1)] }),
            EventData::Freeze(Freeze::Ended { duration: 10, culprits: vec![] }),
            environment(""),
            environment("Chrome"),
            EventData::App(AppFact::Identify { user: "ada".into(), traits: "{}".into() }),
            EventData::App(AppFact::Release("1.2.3".into())),
            EventData::App(AppFact::Environment("production".into())),
            EventData::App(AppFact::Flags("{\"a\":true}".into())),
        ];
        let mut batches = Vec::new();
        for rotation in 0..events.len() {
            let mut b = Batch::new("s-1", "p_1", rotation as u32, 1_800_000_000_000);
            let mut list = events.clone();
            list.rotate_left(rotation);
            list.truncate(events.len() - rotation % 5);
            b.events = list.into_iter().enumerate().map(|(i, data)| Event { t: i as u32 * 100, data }).collect();
            b.end = b.start + 5_000;
            b.dropped = rotation as u32;
            b.recorder_errors = (rotation % 3) as u32;
            batches.push(b);
        }
        batches.push(Batch::new("empty", "page", 0, 5));
        batches
    }

    #[test]
    fn every_user_a_batch_identified_is_a_term_with_its_case_kept() {
        let mut b = Batch::new("s1", "p1", 0, 1_700_000_000_000);
        let identify = |user: &str| EventData::App(AppFact::Identify { user: user.into(), traits: "{}".into() });
        b.events = vec![Event { t: 0, data: identify(" Ada@Example.com ") }, Event { t: 5, data: identify("bob") }];
        let s = summarize(&b);
        assert_eq!(s.user.as_deref(), Some("bob"), "the index's user is the latest");
        let users: Vec<&str> =
            s.search_terms.iter().filter(|t| t.kind == TermKind::User).map(|t| t.text.as_str()).collect();
        assert_eq!(users, ["Ada@Example.com", "bob"]);
    }

    #[test]
    fn times_from_the_future_are_clamped_to_the_receive_time() {
        let mut b = Batch::new("s", "p", 0, u64::MAX / 2);
        b.end = u64::MAX / 2 + 10;
        let mut s = summarize(&b);
        clamp_times(&mut s);
        assert_eq!(s.start_ms, s.received_ms + MAX_CLOCK_SKEW_MS);
        assert_eq!(s.end_ms, s.received_ms + MAX_CLOCK_SKEW_MS);
        let mut honest = summarize(&Batch::new("s", "p", 0, 1_700_000_000_000));
        clamp_times(&mut honest);
        assert_eq!(honest.start_ms, 1_700_000_000_000, "times in the past are kept");
    }

    #[test]
    fn a_batch_of_distinct_errors_keeps_a_bounded_number_of_sightings() {
        let mut b = Batch::new("s", "p", 0, 1);
        let n = 20_000u32;
        for i in 0..n {
            let stack = format!("Error: boom\n    at f (https://shop.test/app.js:{i}:1)");
            b.events.push(Event { t: 0, data: error("boom", &stack, 1) });
        }
        let wire = encode_batch(&b).expect("encode");
        let s = summarize(&decode_batch_borrowed(&wire, &Limits::default()).expect("decode"));
        assert_eq!(s.errors, u64::from(n), "every error counts in the session");
        assert_eq!(s.error_sightings.len(), diagnostics::MAX_SIGHTINGS_PER_BATCH);
        assert_eq!(s.error_sightings_dropped, u64::from(n) - diagnostics::MAX_SIGHTINGS_PER_BATCH as u64);
    }

    #[test]
    fn the_borrowed_summary_equals_the_one_of_the_full_decode() {
        let limits = Limits::default();
        for b in varied_batches() {
            for wire in [
                encode_batch(&b).expect("encode"),
                replay_protocol::codec::encode_batch_compact(b.clone()).expect("encode"),
            ] {
                let mut owned = summarize(&decode_batch(&wire, &limits).expect("decode"));
                let mut borrowed = summarize(&decode_batch_borrowed(&wire, &limits).expect("decode"));
                (owned.received_ms, borrowed.received_ms) = (0, 0);
                assert_eq!(owned, borrowed, "batch {}", b.seq);
            }
        }
    }

    #[test]
    fn a_summary_knows_a_freeze_marker_as_the_batch_does() {
        let mut marker = Batch::new("s", "p", 3, 1_000);
        let started = Freeze::Started { url: "https://shop.test/".into(), last_action: "click".into() };
        marker.events.push(Event { t: 0, data: EventData::Freeze(started) });
        let mut batches = varied_batches();
        batches.push(marker);
        for b in &batches {
            let wire = encode_batch(b).expect("encode");
            let s = summarize(&decode_batch_borrowed(&wire, &Limits::default()).expect("decode"));
            assert_eq!(s.is_freeze_marker(), b.is_freeze_marker(), "batch {}", b.seq);
        }
        assert!(batches.last().is_some_and(Batch::is_freeze_marker));
    }

    #[test]
    fn the_summary_keeps_the_first_url_the_last_facts_and_the_longest_freeze() {
        let b = &varied_batches()[0];
        let wire = encode_batch(b).expect("encode");
        let s = summarize(&decode_batch_borrowed(&wire, &Limits::default()).expect("decode"));
        assert_eq!(s.url.as_deref(), Some("https://shop.test/a"));
        assert_eq!(s.user_agent.as_deref(), Some("ua of https://shop.test/a"));
        assert_eq!((s.clicks, s.errors, s.freezes), (1, 1 + 4 + 1, 1));
        assert_eq!(s.longest_freeze_ms, 3000);
        assert_eq!(s.freeze_culprit.as_deref(), Some("BUTTON.onclick (https://shop.test/app.js)"));
        assert_eq!(s.error_sightings.len(), 2, "the two orders share a fingerprint");
        assert_eq!(s.error_sightings[0].count, 5);
        assert_eq!(
            (s.browser.as_deref(), s.user.as_deref(), s.release.as_deref(), s.environment.as_deref()),
            (Some("Chrome"), Some("ada"), Some("1.2.3"), Some("production"))
        );
    }

    #[test]
    fn search_terms_are_what_happened_normalized_distinct_and_bounded() {
        use replay_protocol::{Console, ConsoleLevel, Navigation, NavigationKind, Network, RequestKind};
        let request = |url: &str, status: u16, failed: bool| {
            EventData::Network(Network {
                kind: RequestKind::Fetch,
                method: "GET".into(),
                url: url.into(),
                status,
                duration: 1,
                request_size: 0,
                response_size: 0,
                failed,
                aborted: false,
                error: String::new(),
                request_headers: vec![],
                response_headers: vec![],
                request_body: String::new(),
                response_body: String::new(),
                failure: Default::default(),
                timing: None,
            })
        };
        let click = |label: &str| {
            EventData::Click(Click {
                id: 1,
                x: 0,
                y: 0,
                button: 0,
                label: label.into(),
                path: String::new(),
                interactive: None,
            })
        };
        let mut b = Batch::new("s", "p", 0, 1_000);
        b.events = vec![
            Event { t: 0, data: meta("https://shop.test/List") },
            Event { t: 1, data: click("  Pay NOW ") },
            Event { t: 5, data: click("pay now") },
            Event { t: 6, data: click("*** *") },
            Event { t: 7, data: request("https://api.test/a", 404, false) },
            Event { t: 8, data: request("https://api.test/b", 0, true) },
            Event { t: 9, data: request("https://api.test/ok", 204, false) },
            Event {
                t: 10,
                data: EventData::Console(Console {
                    level: ConsoleLevel::Warn,
                    args: vec!["careful".into(), "x".repeat(500)],
                    stack: String::new(),
                }),
            },
            Event {
                t: 11,
                data: EventData::Navigation(Navigation {
                    url: "https://shop.test/cart".into(),
                    kind: NavigationKind::Push,
                }),
            },
        ];
        b.events.extend((0..250).map(|i| Event { t: 20, data: click(&format!("button {i}")) }));
        let s = summarize(&b);
        let of = |kind: TermKind| s.search_terms.iter().filter(|t| t.kind == kind).collect::<Vec<_>>();
        let clicks = of(TermKind::Click);
        assert_eq!((clicks[0].text.as_str(), clicks[0].first_ms, clicks[0].last_ms), ("pay now", 1_001, 1_005));
        assert!(clicks.iter().all(|t| !t.text.contains('*')), "masked labels say nothing");
        assert_eq!(clicks.len(), MAX_TERMS_PER_KIND);
        assert_eq!(s.search_terms_dropped, 51, "250 buttons + pay now, 200 kept");
        let failed: Vec<_> = of(TermKind::FailedRequest).iter().map(|t| t.text.clone()).collect();
        assert_eq!(failed, ["https://api.test/a", "https://api.test/b"]);
        let console = of(TermKind::Console);
        assert!(console[0].text.starts_with("careful xxx") && console[0].text.chars().count() == MAX_TERM_CHARS);
        let pages: Vec<_> = of(TermKind::Page).iter().map(|t| (t.text.clone(), t.first_ms)).collect();
        assert_eq!(pages, [("https://shop.test/list".to_owned(), 1_000), ("https://shop.test/cart".to_owned(), 1_011)]);
    }
}
