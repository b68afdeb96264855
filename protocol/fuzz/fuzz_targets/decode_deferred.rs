//! Differential fuzzing of the player's deferred decoding against the reference decoder: the
//! input, taken as one batch, goes through `decode_batches` and `decode_batches_deferring`.
//! - Both accept: once every deferred list is decoded, the batches are equal.
//! - The reference refuses and the deferred reader accepts: only a deferred list may be at
//!   fault (its checks run when it is decoded), so one of them must fail to decode.
//! - The deferred reader never refuses what the reference accepts.
//!
//! Run: `cd protocol && RUSTC_BOOTSTRAP=1 cargo fuzz run decode_deferred -- -runs=3000000`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replay_protocol::codec::{concat_encoded, decode_batches};
use replay_protocol::deferred::{DeferredNodes, decode_batches_deferring, decode_deferred};
use replay_protocol::{Batch, EventData, Limits};

const MAX_TOTAL: usize = 64 * 1024 * 1024;

/// Decodes every list `batch` deferred; false when one of them does not decode.
fn fill(input: &[u8], batch: &mut Batch, lists: &[DeferredNodes], limits: &Limits) -> bool {
    lists.iter().all(|at| match batch.events.get_mut(at.event).map(|e| &mut e.data) {
        Some(EventData::Mutation(m)) => decode_deferred(input, at, &mut m.adds[at.add].nodes, limits),
        _ => panic!("a deferred list points at no mutation: {at:?}"),
    })
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let input = concat_encoded(std::iter::once(data));
    let reference = decode_batches(&input, &limits, MAX_TOTAL);
    let deferred = decode_batches_deferring(&input, &limits, MAX_TOTAL);
    match (reference, deferred) {
        (Ok(want), Ok(got)) => {
            assert_eq!(want.len(), got.len());
            for (want, (mut batch, lists)) in want.into_iter().zip(got) {
                assert!(fill(&input, &mut batch, &lists, &limits), "a list the reference accepted fails");
                assert_eq!(batch, want);
            }
        }
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("the deferred reader refused what the reference accepts: {e}"),
        (Err(_), Ok(got)) => {
            let any_bad = got.into_iter().any(|(mut batch, lists)| !fill(&input, &mut batch, &lists, &limits));
            assert!(any_bad, "the deferred reader accepted a batch the reference refuses, and every list decodes");
        }
    }
});
