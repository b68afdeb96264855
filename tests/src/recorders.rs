//! Simulated recorders for the delivery tests: threads that send one click per batch to one or
//! more servers and remember what was acknowledged, and the check that all of it was stored.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use replay_protocol::test_util::{at, click};
use replay_protocol::{Batch, encode_batch};

use crate::server::Server;

/// What simulated recorders had acknowledged: session → sequence numbers.
pub type Acked = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, std::collections::BTreeSet<u32>>>>;

/// Server settings that lift the per-client rate limit, for many simulated recorders on one
/// loopback address.
pub const UNLIMITED_CLIENT_RATE: [(&str, &str); 2] =
    [("REPLAY_CLIENT_RATE", "100000"), ("REPLAY_CLIENT_BURST", "100000")];

/// Sessions `{prefix}-0` to `{prefix}-{count - 1}`, each streamed by [`stream_session`] on its
/// own thread until a deadline.
pub struct Streams {
    acked: Acked,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Streams {
    /// Starts `count` sessions streaming to `bases` until `stop`.
    pub fn start(bases: &[String], key: &str, prefix: &str, count: usize, stop: Instant) -> Streams {
        let acked = Acked::default();
        let threads = (0..count)
            .map(|i| {
                let (bases, key, acked) = (bases.to_vec(), key.to_owned(), std::sync::Arc::clone(&acked));
                let session = format!("{prefix}-{i}");
                std::thread::spawn(move || stream_session(&bases, &key, &session, &acked, stop))
            })
            .collect();
        Streams { acked, threads }
    }

    /// Waits for every session to stop; what each had acknowledged.
    pub fn join(self) -> std::collections::BTreeMap<String, std::collections::BTreeSet<u32>> {
        for t in self.threads {
            let _ = t.join();
        }
        self.acked.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// A simulated recorder: sends one click per batch in order, resending a batch until it is
/// acknowledged, and remembers what was acknowledged. With several `bases` (instances behind a
/// load balancer), each batch goes to the next one, and a failed send is retried on the next.
pub fn stream_session(bases: &[String], key: &str, session: &str, acked: &Acked, stop: Instant) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
    let mut seq = 0u32;
    let mut turn = 0usize;
    while Instant::now() < stop && !bases.is_empty() {
        let mut b = Batch::new(session, "page-1", seq, 1_700_000_000_000 + u64::from(seq) * 100);
        b.events.push(at(0, click(seq, 1, 2)));
        let body = encode_batch(&b).unwrap_or_default();
        let base = &bases[turn % bases.len()];
        turn += 1;
        let ok = agent
            .post(&format!("{base}/api/v1/ingest"))
            .set("x-replay-key", key)
            .send_bytes(&body)
            .is_ok_and(|r| r.status() == 200);
        if ok {
            if let Ok(mut map) = acked.lock() {
                map.entry(session.to_owned()).or_default().insert(seq);
            }
            seq += 1;
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every acknowledged batch of every session is stored once, without gaps in sequence numbers,
/// and counted once in the index; returns how many batches were acknowledged.
pub fn check_acknowledged(
    server: &Server,
    acked: &std::collections::BTreeMap<String, std::collections::BTreeSet<u32>>,
) -> Result<usize> {
    let mut total = 0;
    for (session, seqs) in acked {
        let row = server.get_json(&format!("/api/v1/sessions/{session}"))?;
        let stored = row["batches"].as_u64().unwrap_or(0);
        let last = *seqs.iter().next_back().unwrap_or(&0);
        ensure!(seqs.len() as u32 == last + 1, "{session}: the client saw a gap in its own acks");
        // The server may also hold one batch whose acknowledgement the stop swallowed (the
        // client resends it and gets a duplicate acknowledgement; it is never stored twice).
        ensure!(
            stored == u64::from(last) + 1 || stored == u64::from(last) + 2,
            "{session}: {stored} stored, {} acknowledged",
            seqs.len()
        );
        ensure!(row["clicks"].as_u64() == Some(stored), "{session}: the index counts each batch once: {row}");
        let events = server.get_json(&format!("/api/v1/sessions/{session}/events"))?;
        let stored_seqs: Vec<u64> = events["batches"]
            .as_array()
            .map(|a| a.iter().filter_map(|b| b["seq"].as_u64()).collect())
            .unwrap_or_default();
        let expected: Vec<u64> = (0..stored).collect();
        ensure!(stored_seqs == expected, "{session}: stored sequence numbers have a gap or a duplicate");
        total += seqs.len();
    }
    Ok(total)
}
