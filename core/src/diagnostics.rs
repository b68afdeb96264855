//! What the session index and the error groups keep of a batch's diagnostics: the text of a
//! freeze's culprit, the fingerprint of an error, and the environment facts that sessions are
//! compared by.
//!
//! An error's fingerprint is a hash of its normalized message (digits folded, so "order 123
//! failed" and "order 456 failed" group together) and its top stack frame (where it was
//! thrown), which is how a support engineer thinks of "the same error".

use std::collections::HashMap;

use replay_protocol::{Environment, ErrorEvent, ScriptTiming};

/// Longest message and frame kept in an error group.
const MAX_TEXT: usize = 300;

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// Most environment facts one batch may add (feature flags are the open-ended part).
pub const MAX_FACTS: usize = 48;
/// Longest fact name and value kept.
const MAX_FACT_TEXT: usize = 120;

/// Adds a fact (bounded in count and length; empty values are "unknown" and not compared).
pub fn push_fact(facts: &mut Vec<(String, String)>, name: &str, value: &str) {
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    let (name, value) = (cut(name, MAX_FACT_TEXT), cut(value, MAX_FACT_TEXT));
    // A scan of at most MAX_FACTS entries: bounded, and cheaper than hashing at this size.
    if let Some(f) = facts.iter_mut().find(|(n, _)| *n == name) {
        f.1 = value;
    } else if facts.len() < MAX_FACTS {
        facts.push((name, value));
    }
}

/// The facts of the recorder's environment report.
pub fn environment_facts<S: AsRef<str>>(facts: &mut Vec<(String, String)>, env: &Environment<S>) {
    let version = env.browser_version.as_ref().split('.').next().unwrap_or_default();
    push_fact(facts, "browser", &format!("{} {version}", env.browser.as_ref()));
    push_fact(facts, "os", env.os.as_ref());
    if env.device_pixel_ratio > 0.0 && env.device_pixel_ratio.is_finite() {
        push_fact(facts, "pixel ratio", &format!("{}", (env.device_pixel_ratio * 100.0).round() / 100.0));
    }
    if env.device_memory > 0.0 && env.device_memory.is_finite() {
        push_fact(facts, "memory", &format!("{} GiB", env.device_memory));
    }
    if env.cpu_cores > 0 {
        push_fact(facts, "cpu cores", &env.cpu_cores.to_string());
    }
    push_fact(facts, "connection", env.connection.as_ref());
    push_fact(facts, "language", env.language.as_ref());
    push_fact(facts, "time zone", env.timezone.as_ref());
}

/// One fact per feature flag of `setFlags` (JSON object text): `flag name` = value.
pub fn flag_facts(facts: &mut Vec<(String, String)>, json: &str) {
    let Ok(serde_json::Value::Object(flags)) = serde_json::from_str::<serde_json::Value>(json) else {
        return;
    };
    for (name, value) in flags {
        let value = match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        push_fact(facts, &format!("flag {name}"), &value);
    }
}

/// `function (file:line:column)` of a culprit script, as the session list shows it.
pub fn culprit_text<S: AsRef<str>>(s: &ScriptTiming<S>) -> String {
    let (function, invoker, source_url) = (s.function.as_ref(), s.invoker.as_ref(), s.source_url.as_ref());
    let name = if !function.is_empty() {
        function
    } else if !invoker.is_empty() {
        invoker
    } else {
        "(anonymous)"
    };
    let place = match (source_url.is_empty(), s.line) {
        (true, _) => String::new(),
        (false, 0) if s.char_position >= 0 => format!(" ({source_url} @{})", s.char_position),
        (false, 0) => format!(" ({source_url})"),
        (false, line) => format!(" ({source_url}:{line}:{})", s.column),
    };
    cut(&format!("{name}{place}"), MAX_TEXT)
}

/// The top frame of an error: the first line of its stack that names a place (V8's `at ...`,
/// Firefox's `fn@url:line:col`), else `source:line:column`.
pub fn top_frame<S: AsRef<str>>(e: &ErrorEvent<S>) -> String {
    let from_stack = e.stack.as_ref().lines().map(str::trim).find(|l| l.starts_with("at ") || l.contains('@'));
    let source = e.source.as_ref();
    match from_stack {
        Some(l) => cut(l.trim_start_matches("at "), MAX_TEXT),
        None if source.is_empty() => String::new(),
        None => cut(&format!("{source}:{}:{}", e.line, e.column), MAX_TEXT),
    }
}

/// The message with runs of digits folded to `N` (what the sightings of one error group share:
/// a group's message loses the digits of a deleted session's this way, see `replay-store`).
pub fn normalized(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_digits = false;
    for c in message.chars().take(MAX_TEXT) {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

/// 64-bit FNV-1a: stable across versions and platforms (the fingerprint is stored).
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Errors of one fingerprint seen in one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorSighting {
    /// Hash of the normalized message and the top stack frame.
    pub fingerprint: String,
    pub message: String,
    /// The top stack frame (or `source:line:column`), empty when unknown.
    pub frame: String,
    pub count: u64,
    /// Time of the last occurrence in the batch (Unix ms, recorder clock).
    pub at_ms: u64,
}

/// The sighting of an error at `at_ms`.
pub fn sighting<S: AsRef<str>>(e: &ErrorEvent<S>, at_ms: u64) -> ErrorSighting {
    let frame = top_frame(e);
    let message = e.message.as_ref();
    let fingerprint = format!("{:016x}", fnv1a(&[&normalized(message), &frame]));
    ErrorSighting { fingerprint, message: cut(message, MAX_TEXT), frame, count: u64::from(e.count.max(1)), at_ms }
}

/// Most distinct error fingerprints one batch adds to the error groups. Errors past it still
/// count in the session's error total; they are counted as dropped sightings. (A hostile batch
/// under 1 MB can hold 200,000 errors that differ in their numbers and so in their fingerprint:
/// uncapped, each became an index row written under the database's one writer.)
pub const MAX_SIGHTINGS_PER_BATCH: usize = 100;

/// A batch's error sightings by fingerprint, merged in constant time per error and bounded by
/// [`MAX_SIGHTINGS_PER_BATCH`].
#[derive(Debug, Default)]
pub struct Sightings {
    list: Vec<ErrorSighting>,
    /// Fingerprint → position in `list`.
    at: HashMap<String, usize>,
    dropped: u64,
}

impl Sightings {
    /// Adds a sighting, merging repeats of a fingerprint (count summed, latest time kept).
    pub fn add(&mut self, s: ErrorSighting) {
        if let Some(&i) = self.at.get(&s.fingerprint) {
            if let Some(x) = self.list.get_mut(i) {
                x.count += s.count;
                x.at_ms = x.at_ms.max(s.at_ms);
            }
        } else if self.list.len() >= MAX_SIGHTINGS_PER_BATCH {
            self.dropped += s.count;
        } else {
            self.at.insert(s.fingerprint.clone(), self.list.len());
            self.list.push(s);
        }
    }

    /// The sightings in first-seen order, and how many errors were left out of them.
    pub fn finish(self) -> (Vec<ErrorSighting>, u64) {
        (self.list, self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_stop_at_the_cap_but_known_facts_still_update() {
        let mut facts = Vec::new();
        push_fact(&mut facts, "viewport", "800×600");
        let flags: String = (0..10_000).map(|i| format!("\"f{i}\":{i}")).collect::<Vec<_>>().join(",");
        flag_facts(&mut facts, &format!("{{{flags}}}"));
        assert_eq!(facts.len(), MAX_FACTS, "10,000 flags add at most the cap");
        push_fact(&mut facts, "viewport", "1024×768");
        assert_eq!(facts[0], ("viewport".to_owned(), "1024×768".to_owned()), "the latest value wins at the cap too");
        push_fact(&mut facts, &"n".repeat(10_000), &"v".repeat(10_000));
        assert!(facts.iter().all(|(n, v)| n.chars().count() <= MAX_FACT_TEXT && v.chars().count() <= MAX_FACT_TEXT));
    }

    #[test]
    fn sightings_merge_by_fingerprint_and_stop_at_the_cap() {
        let mut s = Sightings::default();
        for i in 0..(MAX_SIGHTINGS_PER_BATCH as u64 + 50) {
            let fingerprint = format!("{i:016x}");
            s.add(ErrorSighting { fingerprint: fingerprint.clone(), count: 1, at_ms: i, ..Default::default() });
            s.add(ErrorSighting { fingerprint, count: 2, at_ms: i + 1, ..Default::default() });
        }
        let (list, dropped) = s.finish();
        assert_eq!(list.len(), MAX_SIGHTINGS_PER_BATCH);
        assert!(list.iter().enumerate().all(|(i, x)| x.count == 3 && x.at_ms == i as u64 + 1));
        assert_eq!(dropped, 50 * 3, "every error past the cap is counted");
    }
    use replay_protocol::ErrorKind;

    fn error(message: &str, stack: &str) -> ErrorEvent {
        ErrorEvent {
            kind: ErrorKind::Uncaught,
            message: message.into(),
            stack: stack.into(),
            source: "https://shop.test/app.js".into(),
            line: 10,
            column: 5,
            count: 1,
        }
    }

    #[test]
    fn same_message_and_top_frame_share_a_fingerprint_whatever_the_numbers() {
        let stack = "TypeError: order 1 failed\n    at pay (https://shop.test/app.js:10:5)\n    at onclick";
        let a = sighting(&error("order 123 failed", stack), 1);
        let b = sighting(&error("order 456 failed", stack), 2);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.frame, "pay (https://shop.test/app.js:10:5)");
        let elsewhere = sighting(&error("order 123 failed", "Error\n    at refund (https://shop.test/app.js:99:1)"), 3);
        assert_ne!(a.fingerprint, elsewhere.fingerprint);
    }

    #[test]
    fn an_error_without_stack_is_placed_by_its_source() {
        assert_eq!(top_frame(&error("x", "")), "https://shop.test/app.js:10:5");
    }

    #[test]
    fn a_culprit_reads_function_file_and_line() {
        let s = ScriptTiming {
            invoker: "BUTTON#best.onclick".into(),
            invoker_type: "event-listener".into(),
            source_url: "https://shop.test/demo".into(),
            function: "computeBestValue".into(),
            char_position: 120,
            duration: 2000,
            forced_style_layout: 0,
            pause_duration: 0,
            line: 87,
            column: 13,
        };
        assert_eq!(culprit_text(&s), "computeBestValue (https://shop.test/demo:87:13)");
        let loaf = ScriptTiming { function: String::new(), line: 0, column: 0, ..s };
        assert_eq!(culprit_text(&loaf), "BUTTON#best.onclick (https://shop.test/demo @120)");
    }
}
