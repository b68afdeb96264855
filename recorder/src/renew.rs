//! What carries a page view's recorder into a fresh wasm instance.
//!
//! Wasm linear memory only grows: one big snapshot or mutation batch leaves the instance's
//! memory at its peak for the rest of the page view (117 MB on a 200k-node page). So once a
//! batch is cut and the memory has grown past a bound, `core.js` instantiates the same compiled
//! module again, moves the recorder's state over ([`crate::Recorder::save`] and
//! [`crate::Recorder::restore`]) and drops the old instance, whose memory the browser then
//! collects. The state is small: the ids, sequence numbers, counters and freeze-watch marker of
//! the buffer (never events: it is saved right after a cut) and the privacy settings with the
//! remembered typed values, which only ever pass through the page's own memory on the way.
//!
//! The format is private to one build (saved and restored by the same wasm): little-endian
//! integers and length-prefixed bytes, read back with every length checked.

/// Appends fields to a saved state.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
    }

    pub fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }
}

/// Reads the fields of a saved state back, in the order they were written; `None` when the
/// state is cut short or malformed.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    pub fn bool(&mut self) -> Option<bool> {
        Some(self.take(1)?[0] != 0)
    }

    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_owned)
    }

    pub fn usize(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }

    /// True once everything was read.
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::Recorder;
    use replay_protocol::{EventData, Limits, decode_batch};

    #[test]
    fn a_restored_recorder_goes_on_where_the_saved_one_stopped() {
        let mut a = Recorder::new("s1".into(), "p1".into(), 1 << 20, 1 << 24);
        a.set_pii(false);
        a.remember(7, "hunter22");
        a.custom(1_700_000_040_000.0, "x".into(), "1".into());
        let first =
            decode_batch(&a.flush(1_700_000_040_010.0, false).expect("a batch"), &Limits::default()).expect("decodes");
        let marker = a.freeze_marker(1_700_000_040_020.0, "https://x/".into(), String::new()).expect("a marker");
        a.add_dropped(3);
        let state = a.save().expect("saved after a cut");

        let mut b = Recorder::from_state(&state).expect("restores");
        assert_eq!(b.save().ok().as_ref(), Some(&state), "nothing lost or added");
        assert_eq!(b.dropped_total(), 3);
        // Echo masking still knows the typed value; PII detection stays off.
        b.console(1_700_000_040_030.0, 0, vec!["hunter22 and 555-123-4567".into()], String::new());
        let next =
            decode_batch(&b.flush(1_700_000_040_040.0, false).expect("a batch"), &Limits::default()).expect("decodes");
        assert_eq!((first.seq, next.seq, next.dropped), (0, 1, 3));
        let EventData::Console(c) = &next.events[0].data else { panic!("console event") };
        assert!(!c.args[0].contains("hunter22") && c.args[0].contains("555-123-4567"), "{:?}", c.args);
        // The freeze marker armed before the move is the one the new recorder hands over.
        let same = b.freeze_marker(1_700_000_040_020.0, "https://x/".into(), String::new());
        assert_eq!(same.map(|m| m.len()), Some(marker.len()));
        // Where its times are moves with it: the restored recorder's heartbeat moves it in place.
        let mut c = Recorder::from_state(&state).expect("restores");
        assert_eq!(c.freeze_marker_times_at(), b.freeze_marker_times_at());
        assert!(c.freeze_marker_times_at() > 0.0);
        assert_eq!(c.move_freeze_marker(1_700_000_040_270.0), 1_700_000_040_270.0);
    }

    #[test]
    fn a_state_cut_short_or_too_long_is_refused() {
        let mut a = Recorder::new("s1".into(), "p1".into(), 1 << 20, 1 << 24);
        a.remember(3, "secret value");
        let state = a.save().expect("saved");
        assert!(Recorder::from_state(&state).is_some());
        for cut in 0..state.len() {
            assert!(Recorder::from_state(&state[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = state.clone();
        longer.push(0);
        assert!(Recorder::from_state(&longer).is_none());
    }
}
