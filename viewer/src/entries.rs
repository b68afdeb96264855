//! Panel entries: what happened besides the DOM, for the player's timeline markers and its
//! console, network, errors, performance and environment panels.
//!
//! [`write`] turns events into a JSON array of objects, each with `i` (event index), `t` (Unix
//! epoch ms) and `k` (kind), plus the fields of that kind:
//!
//! | `k` | fields |
//! |---|---|
//! | `page` | `url`, `title`, `ua`, `w`, `h` (a page view started) |
//! | `nav` | `url` |
//! | `click` | `x`, `y`, and `rage: true` on the click that makes a burst a rage click ([`replay_protocol::rage`]) |
//! | `console` | `level` (`log`, `debug`, `info`, `warn`, `error`, `trace`, `assert`), `args`, `stack` |
//! | `error` | `kind` (`uncaught`, `rejection`, `resource`, `captured`), `message`, `stack`, `source`, `line`, `column`, `count` |
//! | `network` | `kind` (`fetch`, `xhr`, `beacon`, `resource`), `method`, `url`, `status`, `duration`, `req`, `res`, `failed`, `aborted`, `error`, `failure`, `timing` ([`crate::network`]) |
//! | `ws` | a WebSocket's open, messages summary, error or close ([`crate::network`]) |
//! | `longframe` | `duration`, `blocking`, `layout`, `longTask`, `scripts` (`[{invoker, type, source, fn, charPos, line, column, duration, layout}]`) |
//! | `metric` | `name`, `value` |
//! | `env` | `browser`, `version`, `os`, `dpr`, `memory`, `cores`, `connection`, `language`, `timezone` |
//! | `app` | `fact` (`user`, `release`, `environment`, `flags`), `value`, `traits` |
//! | `freeze` | `phase` (`start`: `url`, `action`; `end`: `duration`, `scripts`) |
//! | `note` | `kind` (`throttled`, `dropped`, `blocked`, `stopped`, `other`), `count`, `text` |
//! | `custom` | `name`, `data` |
//!
//! Everything here is recorded, hence hostile: the player inserts it as text only.

use replay_protocol::timeline::TimedEvent;
use replay_protocol::{AppFact, ConsoleLevel, ErrorKind, EventData, Freeze, NoteKind, RequestKind, ScriptTiming};

use crate::json::{self, Obj};

fn console_level(l: ConsoleLevel) -> &'static str {
    match l {
        ConsoleLevel::Log => "log",
        ConsoleLevel::Debug => "debug",
        ConsoleLevel::Info => "info",
        ConsoleLevel::Warn => "warn",
        ConsoleLevel::Error => "error",
        ConsoleLevel::Trace => "trace",
        ConsoleLevel::Assert => "assert",
    }
}

fn scripts(out: &mut String, scripts: &[ScriptTiming]) {
    out.push('[');
    for (i, s) in scripts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Obj::new(out);
        o.str("invoker", &s.invoker)
            .str("type", &s.invoker_type)
            .str("source", &s.source_url)
            .str("fn", &s.function)
            .num("charPos", s.char_position)
            .num("line", s.line)
            .num("column", s.column)
            .num("duration", s.duration)
            .num("layout", s.forced_style_layout);
        o.end();
    }
    out.push(']');
}

/// The frustration signals of `events` ([`replay_protocol::frustration`]) as a JSON array of
/// `{t, k}` with `k` one of `dead`, `error`, `back`, for the timeline. Judged over the loaded
/// events as one span, as the server judges an idle session (`server/src/frustration.rs`).
pub fn frustration(events: &[TimedEvent]) -> String {
    use replay_protocol::frustration::{Signal, detect};
    let end = events.iter().map(|e| e.time).max().unwrap_or(0);
    let signals = detect(events.iter().map(|e| (e.time, &e.data)), end);
    let mut out = String::from("[");
    for (i, (t, s)) in signals.marks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let k = match s {
            Signal::DeadClick => "dead",
            Signal::ErrorClick => "error",
            Signal::QuickBack => "back",
        };
        let mut o = Obj::new(&mut out);
        o.num("t", *t).str("k", k);
        o.end();
    }
    out.push(']');
    out
}

/// Writes the entries of `events[from..]` (see the module documentation).
pub fn write(events: &[TimedEvent], from: usize) -> String {
    let mut out = String::from("[");
    let mut first = true;
    // Bursts may straddle `from`: the detector sees every earlier click first.
    let mut rage = replay_protocol::rage::RageDetector::new();
    for e in events.iter().take(from) {
        if let EventData::Click(c) = &e.data {
            rage.click(e.time, c);
        }
    }
    for (i, e) in events.iter().enumerate().skip(from) {
        let kind = match &e.data {
            EventData::Meta(_) => "page",
            EventData::Navigation(_) => "nav",
            EventData::Click(_) => "click",
            EventData::Console(_) => "console",
            EventData::Error(_) => "error",
            EventData::Network(_) => "network",
            EventData::LongFrame(_) => "longframe",
            EventData::Metric(_) => "metric",
            EventData::Environment(_) => "env",
            EventData::App(_) => "app",
            EventData::Freeze(_) => "freeze",
            EventData::Note(_) => "note",
            EventData::Custom(_) => "custom",
            EventData::WebSocket(_) => "ws",
            _ => continue,
        };
        if !first {
            out.push(',');
        }
        first = false;
        let mut o = Obj::new(&mut out);
        o.num("i", i).num("t", e.time).str("k", kind);
        match &e.data {
            EventData::Meta(m) => {
                o.str("url", &m.url)
                    .str("title", &m.title)
                    .str("ua", &m.user_agent)
                    .num("w", m.viewport.width)
                    .num("h", m.viewport.height);
            }
            EventData::Navigation(n) => {
                o.str("url", &n.url);
            }
            EventData::Click(c) => {
                o.num("x", c.x).num("y", c.y);
                if rage.click(e.time, c) {
                    o.bool("rage", true);
                }
            }
            EventData::Console(c) => {
                o.str("level", console_level(c.level)).str("stack", &c.stack);
                let args = o.key("args");
                args.push('[');
                for (j, a) in c.args.iter().enumerate() {
                    if j > 0 {
                        args.push(',');
                    }
                    json::string(args, a);
                }
                args.push(']');
            }
            EventData::Error(err) => {
                let kind = match err.kind {
                    ErrorKind::Uncaught => "uncaught",
                    ErrorKind::Rejection => "rejection",
                    ErrorKind::Resource => "resource",
                    ErrorKind::Captured => "captured",
                };
                o.str("kind", kind)
                    .str("message", &err.message)
                    .str("stack", &err.stack)
                    .str("source", &err.source)
                    .num("line", err.line)
                    .num("column", err.column)
                    .num("count", err.count);
            }
            EventData::Network(n) => {
                let kind = match n.kind {
                    RequestKind::Fetch => "fetch",
                    RequestKind::Xhr => "xhr",
                    RequestKind::Beacon => "beacon",
                    RequestKind::Resource => "resource",
                };
                o.str("kind", kind)
                    .str("method", &n.method)
                    .str("url", &n.url)
                    .num("status", n.status)
                    .num("duration", n.duration)
                    .num("req", n.request_size)
                    .num("res", n.response_size)
                    .bool("failed", n.failed)
                    .bool("aborted", n.aborted)
                    .str("error", &n.error);
                crate::network::request(&mut o, n);
            }
            EventData::LongFrame(f) => {
                o.num("duration", f.duration)
                    .num("blocking", f.blocking_duration)
                    .num("layout", f.style_and_layout)
                    .bool("longTask", f.long_task);
                scripts(o.key("scripts"), &f.scripts);
            }
            EventData::Metric(m) => {
                o.str("name", &m.name).float("value", m.value);
            }
            EventData::Environment(env) => {
                o.str("browser", &env.browser)
                    .str("version", &env.browser_version)
                    .str("os", &env.os)
                    .float("dpr", env.device_pixel_ratio)
                    .float("memory", env.device_memory)
                    .num("cores", env.cpu_cores)
                    .str("connection", &env.connection)
                    .str("language", &env.language)
                    .str("timezone", &env.timezone);
            }
            EventData::App(fact) => {
                match fact {
                    AppFact::Identify { user, traits } => {
                        o.str("fact", "user").str("value", user).str("traits", traits)
                    }
                    AppFact::Release(v) => o.str("fact", "release").str("value", v),
                    AppFact::Environment(v) => o.str("fact", "environment").str("value", v),
                    AppFact::Flags(v) => o.str("fact", "flags").str("value", v),
                };
            }
            EventData::Freeze(Freeze::Started { url, last_action }) => {
                o.str("phase", "start").str("url", url).str("action", last_action);
            }
            EventData::Freeze(Freeze::Ended { duration, culprits }) => {
                o.str("phase", "end").num("duration", duration);
                scripts(o.key("scripts"), culprits);
            }
            EventData::Note(n) => {
                let kind = match n.kind {
                    NoteKind::Throttled => "throttled",
                    NoteKind::Dropped => "dropped",
                    NoteKind::Blocked => "blocked",
                    NoteKind::Stopped => "stopped",
                    NoteKind::Other => "other",
                };
                o.str("kind", kind).num("count", n.count).str("text", &n.text);
            }
            EventData::Custom(c) => {
                o.str("name", &c.name).str("data", &c.data);
            }
            EventData::WebSocket(w) => crate::network::websocket(&mut o, w, e.time, e.page),
            _ => {}
        }
        o.end();
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::Click;

    fn clicks(times: &[u64]) -> Vec<TimedEvent> {
        times
            .iter()
            .map(|&time| TimedEvent {
                time,
                page: 0,
                data: EventData::Click(Click {
                    id: 4,
                    x: 10,
                    y: 10,
                    button: 0,
                    label: String::new(),
                    path: String::new(),
                    interactive: None,
                }),
            })
            .collect()
    }

    #[test]
    fn the_click_that_makes_a_burst_a_rage_click_is_marked_once_even_across_loads() {
        let events = clicks(&[1_000, 1_100, 1_200, 1_300, 1_400, 9_000]);
        let all = write(&events, 0);
        assert_eq!(all.matches("\"rage\":true").count(), 1);
        // Streamed in two ranges: the second write starts in the middle of the burst.
        let (head, tail) = (write(&events[..2], 0), write(&events, 2));
        assert_eq!(head.matches("\"rage\":true").count() + tail.matches("\"rage\":true").count(), 1);
        assert!(tail.contains("\"i\":3,\"t\":1300,\"k\":\"click\",\"x\":10,\"y\":10,\"rage\":true"), "{tail}");
    }

    #[test]
    fn a_focused_click_nothing_answered_is_marked_dead() {
        let mut events = vec![TimedEvent {
            time: 990,
            page: 0,
            data: EventData::Focus(replay_protocol::Focus { id: 4, focused: true }),
        }];
        events.extend(clicks(&[1_000, 9_000]));
        assert_eq!(frustration(&events), "[{\"t\":1000,\"k\":\"dead\"}]");
    }
}
