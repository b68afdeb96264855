//! Network detail on the wire (a part of [`crate::batch`], re-exported as `crate::network`): what a request's [`crate::Network`] event carries beyond its
//! status and duration (the browser's Resource Timing breakdown and sizes, and why it failed),
//! and WebSocket activity ([`crate::EventData::WebSocket`]).
//!
//! Both came after the first recorders: the request fields are appended to `Network` with
//! `#[serde(default)]` (an older batch decodes with `failure: none` and no timing), and the
//! WebSocket event is a variant of its own that older readers never meet.
//!
//! A WebSocket is not one event per message: the recorder counts messages and bytes per
//! connection and writes a summary at a bounded rate (and when the connection closes), with
//! running totals, so a lost summary loses no count. Payloads travel only for URLs on the
//! body-capture allow-list, masked and redacted like request bodies, cut to a bound, at most a
//! few per connection, the rest counted in `dropped`.

use serde::{Deserialize, Serialize};

use super::{CodeOrName, code_enum, seq_as_tuple};

code_enum! {
    /// Why a request got no response.
    ///
    /// Browsers make a request refused by CORS look exactly like a network error to the page
    /// (by design: a page must not probe what it may not read), so a failed cross-origin request
    /// is `cross_origin` unless the browser said which: `cors` when its message names CORS
    /// (WebKit's does), `network` when the request could not have been refused by CORS
    /// (same-origin, or `no-cors`).
    #[derive(Default)]
    FailureKind {
        /// The request got a response (any status); what older recorders' requests read as.
        #[default]
        None = 0,
        /// A network error: the connection failed or was dropped, DNS, TLS, offline.
        Network = 1,
        /// Refused by the browser's CORS checks: the response did not allow this page to read it.
        Cors = 2,
        /// Aborted by the page (`AbortController`, `xhr.abort()`).
        Aborted = 3,
        /// Timed out (`xhr.timeout`, `AbortSignal.timeout`).
        Timeout = 4,
        /// A cross-origin request failed: refused by CORS or a network error, which the browser
        /// does not tell apart.
        CrossOrigin = 5,
    } fallback Network
}

/// The browser's Resource Timing of one request (`PerformanceResourceTiming`), as consecutive
/// phases from the request's start to its last byte: `blocked` (queueing, redirects, cache,
/// waiting for a connection), `dns`, `connect` (TCP), `tls`, `ttfb` (request sent to first
/// byte) and `download`, in microseconds. Sizes in bytes: `transfer_size` on the wire (headers
/// included, 0 from the cache), `encoded_size` the body as sent, `decoded_size` after
/// decompression.
///
/// `restricted`: a cross-origin response without `Timing-Allow-Origin`, for which the browser
/// exposes only the total; phases and sizes are then 0 because they are unknown, not because
/// they took no time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct ResourceTiming<S = String> {
    pub restricted: bool,
    pub blocked_us: u32,
    pub dns_us: u32,
    pub connect_us: u32,
    pub tls_us: u32,
    pub ttfb_us: u32,
    pub download_us: u32,
    pub transfer_size: u64,
    pub encoded_size: u64,
    pub decoded_size: u64,
    /// `nextHopProtocol` (`http/1.1`, `h2`, `h3`), empty when unknown.
    pub protocol: S,
}

impl<S> ResourceTiming<S> {
    /// Microseconds from the request's start to its last byte (the sum of the phases).
    pub fn total_us(&self) -> u64 {
        [self.blocked_us, self.dns_us, self.connect_us, self.tls_us, self.ttfb_us, self.download_us]
            .iter()
            .map(|&v| u64::from(v))
            .sum()
    }
}

code_enum! {
    /// What a [`WebSocketActivity`] event reports.
    WebSocketPhase {
        /// The connection opened (`protocol`: the subprotocol the server chose).
        Open = 0,
        /// Messages went both ways since the previous event (totals so far).
        Messages = 1,
        /// The connection failed (the `error` event; a close follows).
        Error = 2,
        /// The connection closed: `code`, `reason`, `clean`, final totals.
        Close = 3,
    } fallback Messages
}

/// One event of a WebSocket connection. `id` numbers the connections of a page view from 1;
/// the counts and byte sizes are totals since the connection was created; `messages` are the
/// payloads captured since the connection's previous event, for allow-listed URLs only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct WebSocketActivity<S = String> {
    pub id: u32,
    pub phase: WebSocketPhase,
    /// Scrubbed like request URLs.
    pub url: S,
    pub protocol: S,
    pub sent: u32,
    pub received: u32,
    pub sent_bytes: u64,
    pub received_bytes: u64,
    /// Close code (1000 normal, 1006 dropped without a close frame), 0 before the close.
    pub code: u16,
    pub reason: S,
    /// True when the closing handshake completed.
    pub clean: bool,
    #[serde(serialize_with = "seq_as_tuple")]
    pub messages: Vec<WebSocketMessage<S>>,
    /// Payloads of this connection not captured so far (over the per-connection bound, or
    /// summaries refused by the recorder's rate bound).
    pub dropped: u32,
}

/// A captured WebSocket message: `offset_ms` after its event's time, `sent` by the page (or
/// received), `binary` (then `data` is empty: only text payloads are captured), its `size` in
/// bytes, and `data`, masked and cut to a bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize"))]
pub struct WebSocketMessage<S = String> {
    pub offset_ms: u32,
    pub sent: bool,
    pub binary: bool,
    pub size: u64,
    pub data: S,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Batch, Event, EventData, Network, RequestKind};
    use crate::{Limits, decode_batch, encode_batch};

    fn request(failure: FailureKind, timing: Option<ResourceTiming>) -> Network {
        Network {
            kind: RequestKind::Fetch,
            method: "GET".into(),
            url: "https://shop.example/api/cart".into(),
            status: if failure == FailureKind::None { 200 } else { 0 },
            duration: 42,
            request_size: 0,
            response_size: 512,
            failed: failure != FailureKind::None,
            aborted: failure == FailureKind::Aborted,
            error: String::new(),
            request_headers: vec![],
            response_headers: vec![],
            request_body: String::new(),
            response_body: String::new(),
            failure,
            timing,
        }
    }

    fn timing() -> ResourceTiming {
        ResourceTiming {
            restricted: false,
            blocked_us: 100,
            dns_us: 2_000,
            connect_us: 3_000,
            tls_us: 4_000,
            ttfb_us: 20_000,
            download_us: 5_000,
            transfer_size: 812,
            encoded_size: 512,
            decoded_size: 2_048,
            protocol: "h2".into(),
        }
    }

    fn socket() -> WebSocketActivity {
        WebSocketActivity {
            id: 1,
            phase: WebSocketPhase::Close,
            url: "wss://chat.example/live".into(),
            protocol: "chat.v2".into(),
            sent: 3,
            received: 4,
            sent_bytes: 30,
            received_bytes: 4_000,
            code: 1000,
            reason: "bye".into(),
            clean: true,
            messages: vec![WebSocketMessage {
                offset_ms: 5,
                sent: true,
                binary: false,
                size: 10,
                data: "{\"hi\":1}".into(),
            }],
            dropped: 2,
        }
    }

    #[test]
    fn timing_failure_and_websockets_round_trip_through_the_wire() {
        let mut b = Batch::new("s1", "p1", 0, 1_700_000_040_000);
        b.events.push(Event { t: 1, data: EventData::Network(request(FailureKind::None, Some(timing()))) });
        b.events.push(Event { t: 2, data: EventData::Network(request(FailureKind::CrossOrigin, None)) });
        b.events.push(Event { t: 3, data: EventData::WebSocket(socket()) });
        let bytes = encode_batch(&b).expect("encodes");
        assert_eq!(decode_batch(&bytes, &Limits::default()).expect("decodes"), b);
        assert_eq!(timing().total_us(), 34_100);
    }

    #[test]
    fn a_request_from_an_older_recorder_decodes_with_no_failure_kind_and_no_timing() {
        // The fourteen fields recorders sent before `failure` and `timing` were appended.
        let none: Vec<(String, String)> = Vec::new();
        let flat =
            (3u8, "GET", "https://x/a", 0u16, 9u32, 0u64, 0u64, true, false, "Failed to fetch", &none, &none, "", "");
        let bytes = rmp_serde::to_vec(&flat).expect("encodes");
        let n: Network = rmp_serde::from_slice(&bytes).expect("decodes");
        assert!(n.failed && n.error == "Failed to fetch");
        assert_eq!((n.failure, n.timing), (FailureKind::None, None));
    }

    #[test]
    fn unknown_codes_decode_to_the_fallbacks() {
        assert_eq!(FailureKind::from_code(200), FailureKind::Network);
        assert_eq!(WebSocketPhase::from_code(200), WebSocketPhase::Messages);
    }

    #[test]
    fn readable_json_names_the_websocket_event_and_the_failure_kind() {
        let json = serde_json::to_string(&crate::Readable(&EventData::WebSocket(socket()))).expect("json");
        assert!(json.starts_with("{\"websocket\":{\"id\":1,\"phase\":\"close\""), "{json}");
        let json =
            serde_json::to_string(&crate::Readable(&EventData::Network(request(FailureKind::CrossOrigin, None))))
                .expect("json");
        assert!(json.contains("\"failure\":\"cross_origin\",\"timing\":null"), "{json}");
    }

    #[test]
    fn a_websocket_payload_over_the_string_limit_is_refused() {
        let mut s = socket();
        s.messages[0].data = "x".repeat(Limits::default().max_string + 1);
        let mut b = Batch::new("s1", "p1", 0, 1_700_000_040_000);
        b.events.push(Event { t: 1, data: EventData::WebSocket(s) });
        let bytes = encode_batch(&b).expect("encodes");
        assert!(decode_batch(&bytes, &Limits::default()).is_err());
    }
}
