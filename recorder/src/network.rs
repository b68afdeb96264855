//! Network detail from `js/network.js` and `js/websocket.js`: a request's Resource Timing
//! figures, and WebSocket activity, turned into protocol types. Numbers cross the boundary as
//! flat `f64` arrays (one call, no object per message); what came from the page is bounded
//! here again and masked like request bodies (URLs and reasons cleaned, payloads redacted then
//! cleaned), whatever JavaScript already did.

use replay_protocol::{EventData, ResourceTiming, WebSocketActivity, WebSocketMessage, WebSocketPhase};

use crate::{Recorder, now_ms, redact_body, size};

/// Figures per request in [`timing_from`].
const TIMING_NUMS: usize = 10;
/// Figures per message in [`Recorder::websocket`].
const MESSAGE_NUMS: usize = 3;
/// Most payloads in one WebSocket event (js/websocket.js keeps fewer).
const MAX_MESSAGES: usize = 32;
/// Longest payload kept, in bytes (js/websocket.js cuts at 2,048 characters already).
const MAX_PAYLOAD: usize = 8 * 1024;

fn micros(v: f64) -> u32 {
    if v.is_finite() && v > 0.0 { v.min(f64::from(u32::MAX)) as u32 } else { 0 }
}

/// `[restricted, blocked, dns, connect, tls, ttfb, download, transfer, encoded, decoded]`
/// (phases in microseconds, sizes in bytes; `restricted` non-zero when the browser hid the
/// detail) as a [`ResourceTiming`]; `None` for an empty or short array.
pub(crate) fn timing_from(v: &[f64], protocol: String) -> Option<ResourceTiming> {
    let v = v.get(..TIMING_NUMS)?;
    let mut protocol = protocol;
    protocol.truncate(protocol.char_indices().nth(32).map_or(protocol.len(), |(i, _)| i));
    Some(ResourceTiming {
        restricted: v[0] != 0.0,
        blocked_us: micros(v[1]),
        dns_us: micros(v[2]),
        connect_us: micros(v[3]),
        tls_us: micros(v[4]),
        ttfb_us: micros(v[5]),
        download_us: micros(v[6]),
        transfer_size: size(v[7]),
        encoded_size: size(v[8]),
        decoded_size: size(v[9]),
        protocol,
    })
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl Recorder {
    /// WebSocket activity of connection `id` at `now`: `phase` a [`WebSocketPhase`] code;
    /// `nums` = `[sent, received, sent_bytes, received_bytes, code, clean, dropped]` (totals);
    /// `messages` = `[offset_ms, flags, size]` per captured payload (flags: 1 sent, 2 binary),
    /// `payloads` their texts, in the same order.
    #[allow(clippy::too_many_arguments)]
    pub fn websocket(
        &mut self,
        now: f64,
        id: u32,
        phase: u8,
        url: String,
        protocol: String,
        reason: String,
        nums: &[f64],
        messages: &[f64],
        payloads: Vec<String>,
    ) {
        let n = |i: usize| nums.get(i).copied().unwrap_or(0.0);
        let count = |i: usize| u32::try_from(size(n(i))).unwrap_or(u32::MAX);
        let p = &self.privacy;
        let mut kept = Vec::new();
        let mut extra = 0u32;
        for (i, (m, data)) in messages.chunks_exact(MESSAGE_NUMS).zip(payloads).enumerate() {
            if i >= MAX_MESSAGES {
                extra += 1;
                continue;
            }
            let flags = size(m[1]);
            kept.push(WebSocketMessage {
                offset_ms: micros(m[0]),
                sent: flags & 1 != 0,
                binary: flags & 2 != 0,
                size: size(m[2]),
                data: p.cleaned(redact_body(&cut(data, MAX_PAYLOAD))),
            });
        }
        let w = WebSocketActivity {
            id,
            phase: WebSocketPhase::from_code(phase),
            url: p.cleaned(url),
            protocol: cut(protocol, 128),
            sent: count(0),
            received: count(1),
            sent_bytes: size(n(2)),
            received_bytes: size(n(3)),
            code: u16::try_from(size(n(4))).unwrap_or(0),
            reason: p.cleaned(cut(reason, 256)),
            clean: n(5) != 0.0,
            messages: kept,
            dropped: count(6).saturating_add(extra),
        };
        self.buffer.push(now_ms(now), EventData::WebSocket(w));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::{Batch, FailureKind};

    fn recorder() -> Recorder {
        Recorder::new("s1".into(), "p1".into(), 1 << 20, 1 << 24)
    }

    fn events(r: &mut Recorder) -> Vec<EventData> {
        let bytes = r.flush(1_700_000_050_000.0, false).expect("a batch");
        let b: Batch = replay_protocol::decode_batch(&bytes, &Default::default()).expect("decodes");
        b.events.into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn resource_timing_figures_become_phases_and_sizes_and_a_short_array_none() {
        let t = timing_from(&[0.0, 10.0, 200.0, 300.0, -4.0, 5_000.0, 700.0, 811.0, 512.0, 2_048.0], "h2".into())
            .expect("timing");
        assert_eq!((t.dns_us, t.connect_us, t.tls_us, t.ttfb_us, t.download_us), (200, 300, 0, 5_000, 700));
        assert_eq!((t.transfer_size, t.encoded_size, t.decoded_size, t.restricted), (811, 512, 2_048, false));
        assert!(timing_from(&[1.0; 9], String::new()).is_none());
        assert!(timing_from(&[1.0; 10], String::new()).expect("restricted").restricted);
    }

    #[test]
    fn a_request_carries_its_failure_kind_and_timing() {
        let mut r = recorder();
        r.network(
            1_700_000_040_000.0,
            0,
            "GET".into(),
            "https://api.example/x".into(),
            0,
            12,
            0.0,
            0.0,
            true,
            false,
            "Failed to fetch".into(),
            vec![],
            vec![],
            String::new(),
            String::new(),
            5,
            &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            String::new(),
        );
        let [EventData::Network(n)] = &events(&mut r)[..] else { panic!("one request") };
        assert_eq!(n.failure, FailureKind::CrossOrigin);
        assert!(n.timing.as_ref().is_some_and(|t| t.restricted));
    }

    #[test]
    fn websocket_payloads_are_redacted_bounded_and_the_rest_counted() {
        let mut r = recorder();
        let mut messages = Vec::new();
        let mut payloads = Vec::new();
        for i in 0..40 {
            messages.extend([f64::from(i), 1.0, 40.0]);
            payloads.push(r#"{"password":"hunter2","n":1}"#.to_owned());
        }
        r.websocket(
            1_700_000_040_000.0,
            3,
            1,
            "wss://chat.example/live".into(),
            String::new(),
            String::new(),
            &[40.0, 0.0, 1_600.0, 0.0, 0.0, 0.0, 2.0],
            &messages,
            payloads,
        );
        let [EventData::WebSocket(w)] = &events(&mut r)[..] else { panic!("one websocket event") };
        assert_eq!((w.id, w.phase, w.sent, w.sent_bytes), (3, WebSocketPhase::Messages, 40, 1_600));
        assert_eq!((w.messages.len(), w.dropped), (MAX_MESSAGES, 2 + 8));
        assert!(w.messages.iter().all(|m| m.sent && !m.data.contains("hunter2") && m.data.contains("\"n\":1")));
    }
}
