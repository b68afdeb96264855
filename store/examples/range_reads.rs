//! Prints what reading a long session in ranges costs, against reading it whole for every
//! range (what the events endpoint did before `Storage::batch_range`):
//! `cargo run --profile server -p replay-store --example range_reads [BATCHES] [RANGE_BYTES]`.
//! A figure to look at, not a test: nothing is asserted.

use std::time::Instant;

use replay_store::{BatchBody, BatchSummary, RangeRequest, SqliteStorage, Storage, Stored};

fn put(db: &SqliteStorage, project: i64, summary: BatchSummary, bytes: Vec<u8>) -> anyhow::Result<Stored> {
    let (reply, outcome) = std::sync::mpsc::sync_channel(1);
    db.put_batch(
        project,
        summary,
        BatchBody { bytes: bytes.into(), gzip: false },
        Box::new(move |r| {
            let _ = reply.send(r);
        }),
    );
    Ok(outcome.recv()??)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let batches: u32 = args.next().map_or(Ok(2_000), |a| a.parse())?;
    let range_bytes: u64 = args.next().map_or(Ok(1024 * 1024), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let db = SqliteStorage::open(dir.path())?;
    let project = db.create_project("bench")?.id;
    let body_len = 16 * 1024;
    let started = Instant::now();
    for seq in 0..batches {
        let summary = BatchSummary {
            session: "long".into(),
            page: "p".into(),
            seq,
            start_ms: 1_700_000_040_000 + u64::from(seq) * 1_000,
            end_ms: 1_700_000_040_000 + u64::from(seq) * 1_000 + 500,
            received_ms: 1_700_000_040_000 + u64::from(seq) * 1_000 + 600,
            ..BatchSummary::default()
        };
        let body: Vec<u8> =
            (0..body_len).map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seq) as u8).collect();
        put(&db, project, summary, body)?;
    }
    println!("stored {batches} batches of {body_len} bytes in {:.2?}", started.elapsed());

    let started = Instant::now();
    let mut from = 0;
    let mut ranges = 0;
    loop {
        let req = RangeRequest { from, max_bytes: range_bytes, ..RangeRequest::whole(u64::MAX) };
        let r = db.batch_range(project, "long", &req)?;
        ranges += 1;
        match r.next {
            Some(n) => from = n,
            None => break,
        }
    }
    let ranged = started.elapsed();
    let started = Instant::now();
    for _ in 0..ranges {
        // Before: every range request loaded (and inflated) the whole session.
        std::hint::black_box(db.batches(project, "long")?);
    }
    let whole_each = started.elapsed();
    println!(
        "{ranges} ranges of {range_bytes} bytes: {ranged:.2?} with batch_range, {whole_each:.2?} reading the whole session for each"
    );
    let started = Instant::now();
    let first = db.batch_range(project, "long", &RangeRequest { max_bytes: 1, ..RangeRequest::whole(u64::MAX) })?;
    println!(
        "the first batch alone (the player's first frame): {:.2?} ({} body)",
        started.elapsed(),
        first.bodies.len()
    );
    let started = Instant::now();
    let refused = db.batch_range(project, "long", &RangeRequest::whole(1024));
    println!("a whole read over its cap refused from the index in {:.2?}: {}", started.elapsed(), refused.is_err());
    Ok(())
}
