//! Frustration counts judged over the whole session once it is idle.
//!
//! Ingest counts each batch's frustration signals on its own ([`replay_core::summarize`]), so a
//! session is filterable at once, but the recorder cuts a batch about every second: a click
//! and what answered it (or the error it caused, or the navigation back) usually land in
//! different batches, and a batch on its own cannot judge them. Once a session has received
//! nothing for a while, [`settle`] reads all of its batches and judges them as one span, with
//! the same rules the viewer's timeline uses ([`replay_protocol::frustration`]), and replaces
//! the summed counts. A batch arriving later adds its own counts until the session is judged
//! again. The work is bounded: a number of sessions per round, each read under the same caps
//! as the API's reads (a session too large to read keeps its summed counts).

use std::time::{Duration, Instant};

use replay_protocol::Limits;
use replay_protocol::frustration::detect;
use replay_store::{FrustrationCounts, RangeRequest, Storage};

/// Most sessions one round lists (the rest wait for the next round).
pub const ROUND_SESSIONS: usize = 200;

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Sessions whose counts were replaced by the whole-session judgement.
    pub judged: u64,
    /// Sessions that could not be read or decoded (too large, a corrupt batch): their summed
    /// counts stay and they are not tried again until a new batch arrives.
    pub skipped: u64,
    /// Sessions that received a batch while being judged (judged again next round).
    pub raced: u64,
}

/// Judges the sessions idle since before `cutoff_ms`, for at most `budget` of work: reads each
/// one's batches (refused over `max_read_bytes`, stored or decoded), decodes them under
/// `limits`, and writes its counts.
pub fn settle(
    storage: &dyn Storage,
    limits: &Limits,
    max_read_bytes: usize,
    cutoff_ms: u64,
    budget: Duration,
) -> Result<Round, replay_store::Error> {
    let started = Instant::now();
    let mut round = Round::default();
    for s in storage.unsettled_sessions(cutoff_ms, ROUND_SESSIONS)? {
        if started.elapsed() > budget {
            break;
        }
        let counts = judge(storage, limits, max_read_bytes, s.project, &s.session);
        if counts.is_none() {
            tracing::warn!(project = s.project, session = %s.session, "session too large or corrupt to judge");
        }
        if storage.settle_frustration(s.project, &s.session, s.batches, counts)? {
            if counts.is_some() { round.judged += 1 } else { round.skipped += 1 }
        } else {
            round.raced += 1;
        }
    }
    Ok(round)
}

/// One session's signals over all its batches, or `None` when it cannot be read whole.
fn judge(
    storage: &dyn Storage,
    limits: &Limits,
    max_read_bytes: usize,
    project: i64,
    session: &str,
) -> Option<FrustrationCounts> {
    let range = storage.batch_range(project, session, &RangeRequest::whole(max_read_bytes as u64)).ok()?;
    if range.bodies.iter().map(Vec::len).sum::<usize>() > max_read_bytes {
        return None;
    }
    let mut batches = Vec::with_capacity(range.bodies.len());
    for body in &range.bodies {
        batches.push(replay_protocol::decode_batch_borrowed(body, limits).ok()?);
    }
    // Judged up to the end of the last batch, as the viewer judges the loaded session: a click
    // in its last seconds, with nothing after it, is not called dead (the tab may have closed).
    let end = batches.iter().map(|b| b.end).max().unwrap_or(0);
    let events = batches.iter().flat_map(|b| b.events.iter().map(move |e| (b.time_of(e), &e.data)));
    let signals = detect(events, end);
    Some(FrustrationCounts {
        dead_clicks: signals.dead_clicks,
        error_clicks: signals.error_clicks,
        quick_backs: signals.quick_backs,
    })
}
