//! Network detail in the panel entries ([`crate::entries`]): a request's failure kind and
//! Resource Timing (the waterfall's phases and sizes), and WebSocket activity (`k: "ws"`).
//!
//! Fields added to a `network` entry: `failure` (`none`, `network`, `cors`, `aborted`,
//! `timeout`, `cross_origin`) and `timing`, `null` or `{restricted, blocked, dns, connect, tls,
//! ttfb, download, transfer, encoded, decoded, protocol}` (phases in milliseconds, sizes in
//! bytes). A `ws` entry: `page` (page view index), `id` (numbered per page view), `phase` (`open`, `messages`, `error`, `close`), `url`,
//! `protocol`, `sent`, `received`, `sentBytes`, `receivedBytes`, `code`, `reason`, `clean`,
//! `dropped`, `messages` (`[{t, sent, binary, size, data}]`, `t` in Unix epoch ms).

use replay_protocol::{FailureKind, Network, ResourceTiming, WebSocketActivity, WebSocketPhase};

use crate::json::Obj;

fn failure(f: FailureKind) -> &'static str {
    match f {
        FailureKind::None => "none",
        FailureKind::Network => "network",
        FailureKind::Cors => "cors",
        FailureKind::Aborted => "aborted",
        FailureKind::Timeout => "timeout",
        FailureKind::CrossOrigin => "cross_origin",
    }
}

fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

fn timing(out: &mut String, t: &ResourceTiming) {
    let mut o = Obj::new(out);
    o.bool("restricted", t.restricted)
        .float("blocked", ms(t.blocked_us))
        .float("dns", ms(t.dns_us))
        .float("connect", ms(t.connect_us))
        .float("tls", ms(t.tls_us))
        .float("ttfb", ms(t.ttfb_us))
        .float("download", ms(t.download_us))
        .num("transfer", t.transfer_size)
        .num("encoded", t.encoded_size)
        .num("decoded", t.decoded_size)
        .str("protocol", &t.protocol);
    o.end();
}

/// The network detail fields of a request's entry.
pub fn request(o: &mut Obj<'_>, n: &Network) {
    o.str("failure", failure(n.failure));
    match &n.timing {
        Some(t) => timing(o.key("timing"), t),
        None => o.key("timing").push_str("null"),
    }
}

/// The fields of a WebSocket entry at `time` (Unix epoch ms) of page view `page` (connection
/// ids are numbered per page view).
pub fn websocket(o: &mut Obj<'_>, w: &WebSocketActivity, time: u64, page: usize) {
    let phase = match w.phase {
        WebSocketPhase::Open => "open",
        WebSocketPhase::Messages => "messages",
        WebSocketPhase::Error => "error",
        WebSocketPhase::Close => "close",
    };
    o.num("page", page)
        .num("id", w.id)
        .str("phase", phase)
        .str("url", &w.url)
        .str("protocol", &w.protocol)
        .num("sent", w.sent)
        .num("received", w.received)
        .num("sentBytes", w.sent_bytes)
        .num("receivedBytes", w.received_bytes)
        .num("code", w.code)
        .str("reason", &w.reason)
        .bool("clean", w.clean)
        .num("dropped", w.dropped);
    let out = o.key("messages");
    out.push('[');
    for (i, m) in w.messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut mo = Obj::new(out);
        mo.num("t", time.saturating_add(u64::from(m.offset_ms)))
            .bool("sent", m.sent)
            .bool("binary", m.binary)
            .num("size", m.size)
            .str("data", &m.data);
        mo.end();
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::WebSocketMessage;

    #[test]
    fn timing_is_written_in_milliseconds_and_a_websocket_with_its_messages() {
        let mut out = String::new();
        let mut o = Obj::new(&mut out);
        timing(o.key("timing"), &ResourceTiming { dns_us: 1_500, decoded_size: 9, ..Default::default() });
        o.end();
        assert!(out.contains("\"dns\":1.5") && out.contains("\"decoded\":9"), "{out}");

        let w = WebSocketActivity {
            id: 2,
            phase: WebSocketPhase::Close,
            url: "ws://x/live".into(),
            protocol: String::new(),
            sent: 1,
            received: 0,
            sent_bytes: 5,
            received_bytes: 0,
            code: 1006,
            reason: "<b>gone</b>".into(),
            clean: false,
            messages: vec![WebSocketMessage { offset_ms: 7, sent: true, binary: false, size: 5, data: "hello".into() }],
            dropped: 0,
        };
        let mut out = String::new();
        let mut o = Obj::new(&mut out);
        websocket(&mut o, &w, 1_000, 0);
        o.end();
        assert!(out.contains("\"phase\":\"close\"") && out.contains("\"code\":1006"), "{out}");
        assert!(out.contains("[{\"t\":1007,\"sent\":true,\"binary\":false,\"size\":5,\"data\":\"hello\"}]"), "{out}");
    }
}
