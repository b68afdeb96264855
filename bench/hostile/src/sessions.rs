//! The legitimate side: N recording sessions, each from its own client address (presented to
//! the server in `X-Forwarded-For`, the benchmark being the trusted proxy) on its own
//! keep-alive connection, sending a page start and then one small batch a second. Every
//! request's latency and status is recorded.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::batches::{now_ms, session_batch};

/// Most batches one session sends in a phase (one a second: an hour).
const MAX_BATCHES: u32 = 3600;

/// What the sessions of one phase saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every answered request, microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, reset, timed out).
    pub failed: u64,
    /// Latency of the page starts alone (decoded off the async workers), sorted.
    pub page_start_us: Vec<u64>,
    /// Latency of the small batches alone (decoded inline), sorted.
    pub small_us: Vec<u64>,
}

impl Outcome {
    /// Answers that were not 2xx.
    pub fn refused(&self) -> u64 {
        self.statuses.iter().filter(|(s, _)| !(200..300).contains(*s)).map(|(_, n)| n).sum()
    }
}

/// The address of legitimate session `i`: distinct, in 198.18.0.0/15 (the benchmarking range).
pub fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 1)) + i as u32)
}

/// Runs `sessions` sessions for `seconds` against `base`, labelled `label` (session ids).
pub async fn run(base: &str, key: &str, sessions: usize, seconds: u64, label: &str) -> Result<Outcome> {
    let url: hyper::Uri = format!("{base}/api/v1/ingest").parse()?;
    // Bodies are built before the clock starts, for one minute of batches; later ones repeat
    // the small batch (with its seq, so each is stored as new).
    let start_ms = now_ms().saturating_sub(3_600_000);
    let page_starts: Vec<Bytes> =
        (0..sessions).map(|s| session_batch(&format!("{label}-{s}"), 0, start_ms)).collect::<Result<_>>()?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let pace = Duration::from_secs(1);
    let mut tasks = Vec::new();
    for (i, first) in page_starts.into_iter().enumerate() {
        let (url, key, session) = (url.clone(), key.to_owned(), format!("{label}-{i}"));
        let forwarded = address(i).to_string();
        tasks.push(tokio::spawn(async move {
            // One connection per session, like one browser tab each.
            let client: Client<_, Full<Bytes>> =
                Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1).build_http();
            let mut out = Outcome::default();
            // Sessions start spread over one interval, like real tabs do.
            let mut next = Instant::now() + pace * i as u32 / sessions.max(1) as u32;
            let mut seq = 0u32;
            while seq < MAX_BATCHES {
                tokio::time::sleep_until(next.into()).await;
                if Instant::now() >= deadline {
                    break;
                }
                next += pace;
                let body = if seq == 0 {
                    first.clone()
                } else {
                    match session_batch(&session, seq, start_ms + u64::from(seq) * 1000) {
                        Ok(b) => b,
                        Err(_) => break,
                    }
                };
                let req = hyper::Request::post(url.clone())
                    .header("x-replay-key", &key)
                    .header("x-forwarded-for", &forwarded)
                    .header("origin", "https://shop.example")
                    .header("content-type", "application/msgpack")
                    .header("content-encoding", "gzip")
                    .body(Full::new(body));
                let Ok(req) = req else { break };
                let t = Instant::now();
                match tokio::time::timeout(Duration::from_secs(30), client.request(req)).await {
                    Ok(Ok(res)) => {
                        let status = res.status().as_u16();
                        let _ = res.into_body().collect().await;
                        let us = t.elapsed().as_micros() as u64;
                        out.latencies_us.push(us);
                        if seq == 0 {
                            out.page_start_us.push(us)
                        } else {
                            out.small_us.push(us)
                        }
                        *out.statuses.entry(status).or_default() += 1;
                        // A refused batch is sent again on the next tick, like the recorder.
                        if (200..300).contains(&status) {
                            seq += 1;
                        }
                    }
                    _ => out.failed += 1,
                }
            }
            out
        }));
    }
    let mut all = Outcome::default();
    for t in tasks {
        let o = t.await?;
        all.latencies_us.extend(o.latencies_us);
        all.page_start_us.extend(o.page_start_us);
        all.small_us.extend(o.small_us);
        for (s, n) in o.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
        all.failed += o.failed;
    }
    all.latencies_us.sort_unstable();
    all.page_start_us.sort_unstable();
    all.small_us.sort_unstable();
    Ok(all)
}
