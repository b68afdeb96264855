//! The bodies both sides send, built with the protocol's codec and gzip-compressed like the
//! recorder's uploads: a legitimate session's page start and small batches, and the attacker's
//! batches of ~200k distinct errors and of the largest body the server accepts.

use std::io::Write;

use anyhow::{Result, bail};
use bytes::Bytes;
use replay_protocol::test_util::{at, click, document, el, page_meta, snapshot, text};
use replay_protocol::{
    AddedSubtree, Batch, ErrorEvent, ErrorKind, EventData, Input, Limits, MousePoint, Mutation, PageMeta, Viewport,
    encode_batch,
};

/// A small, fast pseudo-random generator (splitmix64): the benchmark needs cheap variety, not
/// unpredictability.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// Seeded from the clock and the process id, different in every process and call.
    pub fn from_time(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Rng::new((nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `n` lowercase letters (digits would be folded by the server's error fingerprint).
    pub fn letters(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'a' + (self.next_u64() % 26) as u8)).collect()
    }

    /// `n` characters of a 64-letter alphabet: about 6 bits each, which gzip hardly shrinks.
    pub fn noise(&mut self, n: usize) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(n);
        let mut bits = 0u64;
        for i in 0..n {
            if i % 10 == 0 {
                bits = self.next_u64();
            }
            out.push(char::from(ALPHABET[(bits & 63) as usize]));
            bits >>= 6;
        }
        out
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The MessagePack of `batch`, gzip-compressed (the recorder gzips every upload).
pub fn gzip_batch(batch: &Batch) -> Result<(Bytes, usize)> {
    let raw = encode_batch(batch)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 2), flate2::Compression::fast());
    gz.write_all(&raw)?;
    Ok((Bytes::from(gz.finish()?), raw.len()))
}

/// Batch `seq` of a legitimate session: at 0 a page start (meta and a 2,000-node snapshot,
/// ~7.7 KB gzip, over the server's 4 KiB inline-decode threshold), then small batches of mouse
/// movement, input, a click and a few added rows (~0.5 KB gzip).
pub fn session_batch(session: &str, seq: u32, start: u64) -> Result<Bytes> {
    let mut b = Batch::new(session, "page", seq, start);
    if seq == 0 {
        b.flags = Batch::FLAG_PAGE_START;
        let mut nodes = vec![document(1), el(2, 1, "html", &[]), el(3, 2, "body", &[("class", "app")])];
        for row in 0..998u32 {
            let id = 4 + row * 2;
            nodes.push(el(id, 3, "div", &[("class", "row")]));
            nodes.push(text(id + 1, id, format!("Product {row} · {}", row * 7919 % 10007)));
        }
        b.events.push(at(
            0,
            EventData::Meta(PageMeta {
                title: "Catalog".into(),
                viewport: Viewport { width: 1280, height: 800 },
                user_agent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/156".into(),
                ..page_meta("https://shop.example/catalog")
            }),
        ));
        b.events.push(at(0, snapshot(nodes)));
    } else {
        for i in 0..20u32 {
            let points = (0..5).map(|k| MousePoint { x: (i * 13 + k) as i32, y: (i * 7) as i32, dt: k * 50 }).collect();
            b.events.push(at(i * 40, EventData::MouseMove(points)));
        }
        b.events.push(at(850, EventData::Input(Input { id: 7, value: "*****".into(), checked: None })));
        b.events.push(at(900, click(9, 200, 300)));
        let base = 10_000 + seq * 100;
        let adds = (0..10)
            .map(|r| AddedSubtree {
                parent: 3,
                next: 0,
                nodes: vec![
                    el(base + r * 2, 3, "div", &[("class", "row new")]),
                    text(base + r * 2 + 1, base + r * 2, format!("Result {r}")),
                ],
            })
            .collect();
        b.events.push(at(950, EventData::Mutation(Mutation { adds, ..Mutation::default() })));
    }
    b.end = b.start + u64::from(b.events.last().map_or(0, |e| e.t));
    Ok(gzip_batch(&b)?.0)
}

/// A batch of up to `count` errors, every one with its own message and top frame (so its own
/// fingerprint), as many as fit under both the body cap (gzip) and the decompressed cap.
pub fn error_batch(session: &str, count: usize, body_cap: usize, rng: &mut Rng) -> Result<(Bytes, usize)> {
    let limits = Limits::default();
    let mut count = count.min(limits.max_events);
    loop {
        let mut b = Batch::new(session, "page", 0, now_ms().saturating_sub(60_000));
        b.events = (0..count)
            .map(|i| {
                let (a, f) = (rng.letters(8), rng.letters(6));
                at(
                    (i / 10) as u32,
                    EventData::Error(ErrorEvent {
                        kind: ErrorKind::Uncaught,
                        message: format!("TypeError: cannot read properties of undefined (reading '{a}')"),
                        stack: format!("TypeError\n    at {f} (https://shop.example/app.js:1:2)"),
                        source: "https://shop.example/app.js".into(),
                        line: 1,
                        column: 2,
                        count: 1,
                    }),
                )
            })
            .collect();
        b.end = b.start + u64::from(b.events.last().map_or(0, |e| e.t));
        let (body, raw) = gzip_batch(&b)?;
        if body.len() <= body_cap && raw <= limits.max_bytes {
            return Ok((body, count));
        }
        if count < 1000 {
            bail!("no error batch fits under {body_cap} bytes");
        }
        count = count * 9 / 10;
    }
}

/// Length of each random text node of [`big_batch`].
const NOISE_CHUNK: usize = 64 * 1024;

/// A batch of random text nodes whose gzip body is just under `body_cap` (within one chunk of
/// 64 KiB, which gzip hardly shrinks): the largest valid batch the server takes.
pub fn big_batch(session: &str, seq: u32, body_cap: usize, rng: &mut Rng) -> Result<Bytes> {
    let build = |chunks: usize, rng: &mut Rng| -> Result<Bytes> {
        let mut b = Batch::new(session, "page", seq, now_ms().saturating_sub(60_000) + u64::from(seq));
        let adds = (0..chunks as u32)
            .map(|i| AddedSubtree { parent: 3, next: 0, nodes: vec![text(100 + i, 3, rng.noise(NOISE_CHUNK))] })
            .collect();
        b.events.push(at(0, EventData::Mutation(Mutation { adds, ..Mutation::default() })));
        Ok(gzip_batch(&b)?.0)
    };
    // Random text of a 64-letter alphabet gzips to about 0.76 of its size.
    let mut chunks = (body_cap as f64 / (NOISE_CHUNK as f64 * 0.76)) as usize;
    let first = build(chunks, rng)?;
    let per_chunk = first.len() as f64 / chunks as f64;
    chunks = ((body_cap as f64 / per_chunk) as usize).saturating_sub(1);
    loop {
        let body = build(chunks, rng)?;
        if body.len() <= body_cap {
            return Ok(body);
        }
        if chunks <= 1 {
            bail!("no batch fits under {body_cap} bytes");
        }
        chunks -= 1;
    }
}

/// A small valid batch, the body of each request with a made-up key.
pub fn small_batch(session: &str) -> Result<Bytes> {
    session_batch(session, 1, now_ms().saturating_sub(60_000))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use replay_protocol::decode_batch;

    use super::*;

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body).read_to_end(&mut out).expect("gzip");
        out
    }

    #[test]
    fn bodies_are_batches_the_server_accepts() {
        let limits = Limits::default();
        let mut rng = Rng::new(7);
        let (errors, count) = error_batch("e", 5_000, 1 << 20, &mut rng).expect("errors");
        let batch = decode_batch(&gunzip(&errors), &limits).expect("valid error batch");
        assert_eq!(batch.events.len(), count);
        let messages: std::collections::HashSet<String> = batch
            .events
            .iter()
            .filter_map(|e| match &e.data {
                EventData::Error(err) => Some(err.message.clone()),
                _ => None,
            })
            .collect();
        assert!(messages.len() > count * 99 / 100, "errors are distinct: {} of {count}", messages.len());
        let cap = 1 << 20;
        let big = big_batch("b", 3, cap, &mut rng).expect("big");
        assert!(big.len() <= cap && big.len() > cap - 2 * NOISE_CHUNK, "{} bytes for a cap of {cap}", big.len());
        assert_eq!(decode_batch(&gunzip(&big), &limits).expect("valid big batch").seq, 3);
        for seq in [0, 1] {
            let b = session_batch("s", seq, 1_700_000_040_000).expect("session batch");
            assert_eq!(decode_batch(&gunzip(&b), &limits).expect("valid session batch").seq, seq);
        }
    }
}
