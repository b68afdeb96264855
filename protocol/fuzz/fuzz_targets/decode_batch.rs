//! Fuzzes the whole path hostile bytes take on the server: decode a batch with the default
//! limits, order it into a timeline, apply it to the DOM model and serialize the document.
//! Run: `cd protocol && RUSTC_BOOTSTRAP=1 cargo fuzz run decode_batch -- -runs=3000000`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replay_protocol::{Limits, Timeline, decode_batch, html};

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = decode_batch(data, &Limits::default()) {
        let timeline = Timeline::from_batches(vec![batch]);
        let dom = timeline.dom_at(None);
        let _ = html::document_html(&dom);
    }
});
