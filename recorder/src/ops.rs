//! The recorder's one entry point for JavaScript: every [`Recorder`] method reached through
//! [`Recorder::op`], its arguments packed by `js/ops.js` into one array of numbers, one string,
//! one `u32` array and one byte array.
//!
//! Why: one wasm-bindgen export per method (about 45) cost a JavaScript shim and a wasm shim
//! each, a fifth of what the tag downloaded for the glue alone. One export whose arguments are
//! a compact tape keeps the glue to a few functions; the hand-written `js/ops.js` gives the
//! capture modules the same method names as before (`S.rec.click(...)`), built from [`OPS`].
//!
//! Each operation's arguments are described by one letter each ([`OPS`]):
//!
//! | letter | argument | carried as |
//! |---|---|---|
//! | `n` | a number (or a boolean) | one entry of `nums` |
//! | `s` | a string | its length in UTF-16 code units in `nums`, its text appended to `strs` |
//! | `S` | a tape's string (always the op's last string) | the rest of `strs`, no length |
//! | `f` | an array of numbers | its length in `nums`, then its values |
//! | `a` | an array of strings | its length in `nums`, then each string as `s` |
//! | `i` | a `u32` array (a tape's integers, a CSS rule path) | `ints` |
//! | `b` | bytes (a canvas frame, a font file) | `bytes` |
//!
//! Nothing read here panics: a short `nums` reads as zeros, a short `strs` as empty strings, and
//! numbers are converted with Rust's saturating casts (NaN is 0).

use wasm_bindgen::prelude::*;

use crate::Recorder;

/// Every operation as `name:kinds`, separated by spaces; an operation's code is its place in
/// this list. `js/ops.js` holds the same text (checked by a test).
pub const OPS: &str = "set_pii:n remember:ns meta:nssnnss snapshot:niSnn mutation:niS frame_document:nnniSnn \
frame_mutation:niSnn frame:nnsnn font:nssbsssss input:nnsn click:nnnnnssn scroll_depth:nnn mouse:nf scroll:nnnn \
viewport:nnn custom:nss css:nnnsisss navigation:nsn canvas:nnsbnn dialog:nnn focus:nnn selection:nnnnn \
media:nnnnnnn touch:nnf visibility:nn note:nnnns count_error: flush:nn add_dropped:n console:nnas \
error:nnsssnnn network:nnssnnnnnnsaassnfs long_frame:nnnnnaf metric:nsn environment:nsssnnnsss app_fact:nnss \
watch:nn freeze_marker:nss take_freeze_marker: freeze_ended:nnaf websocket:nnnsssffa save:";

/// The arguments of one operation, read in order.
pub(crate) struct Args<'a> {
    nums: &'a [f64],
    at: usize,
    strs: &'a str,
}

/// The readers that hold a loop are never inlined: [`Recorder::run`] calls them about a hundred
/// times, and inlined they made it the biggest function of the wasm.
impl<'a> Args<'a> {
    pub(crate) fn new(nums: &'a [f64], strs: &'a str) -> Self {
        Args { nums, at: 0, strs }
    }

    fn n(&mut self) -> f64 {
        let v = self.nums.get(self.at).copied().unwrap_or(0.0);
        self.at = self.at.saturating_add(1);
        v
    }

    fn u32(&mut self) -> u32 {
        self.n() as u32
    }

    fn i32(&mut self) -> i32 {
        self.n() as i32
    }

    fn u8(&mut self) -> u8 {
        self.n() as u8
    }

    /// JavaScript's truthiness of a number: not 0, not NaN.
    fn bool(&mut self) -> bool {
        let v = self.n();
        v != 0.0 && !v.is_nan()
    }

    /// The next string: as many characters as its length in UTF-16 code units says (fewer when
    /// `strs` ends first).
    #[inline(never)]
    fn str(&mut self) -> &'a str {
        let mut left = self.n() as usize;
        let mut bytes = 0;
        for c in self.strs.chars() {
            if left == 0 {
                break;
            }
            left = left.saturating_sub(c.len_utf16());
            bytes += c.len_utf8();
        }
        let (s, rest) = self.strs.split_at_checked(bytes).unwrap_or((self.strs, ""));
        self.strs = rest;
        s
    }

    #[inline(never)]
    fn string(&mut self) -> String {
        self.str().to_owned()
    }

    /// The rest of `strs`: a tape's strings.
    fn rest(&mut self) -> &'a str {
        std::mem::take(&mut self.strs)
    }

    /// An array of numbers: its length, then its values (cut where `nums` ends).
    #[inline(never)]
    fn nums(&mut self) -> &'a [f64] {
        let len = self.n() as usize;
        let start = self.at.min(self.nums.len());
        let end = start.saturating_add(len).min(self.nums.len());
        self.at = end;
        self.nums.get(start..end).unwrap_or_default()
    }

    #[inline(never)]
    fn i32s(&mut self) -> Vec<i32> {
        self.nums().iter().map(|&v| v as i32).collect()
    }

    /// An array of strings: its length, then each string (at most as many as `nums` has left).
    #[inline(never)]
    fn strings(&mut self) -> Vec<String> {
        let len = (self.n() as usize).min(self.nums.len().saturating_sub(self.at));
        (0..len).map(|_| self.string()).collect()
    }
}

#[wasm_bindgen]
impl Recorder {
    /// Operation `code` of [`OPS`] with its packed arguments (see the module docs). Returns the
    /// bytes of `flush`, `freeze_marker`, `take_freeze_marker` and `save`, nothing for the others;
    /// an error for a bad tape or an unknown code.
    pub fn op(
        &mut self,
        code: u32,
        nums: &[f64],
        strs: &str,
        ints: &[u32],
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, JsError> {
        self.run(code, Args::new(nums, strs), ints, bytes).map_err(JsError::new)
    }

    /// A figure: `0` should the batch be cut now (1 or 0), `1` its pending bytes, `2` events
    /// dropped so far, `3` a heartbeat at `now` (1 when it ends a freeze), `4` the freeze
    /// marker moved to `now` ([`Recorder::move_freeze_marker`]), `5` where its times are
    /// ([`Recorder::freeze_marker_times_at`]); NaN for an unknown code. The calls a heartbeat
    /// makes, without the argument packing of [`Recorder::op`].
    pub fn num(&mut self, code: u32, now: f64) -> f64 {
        match code {
            0 => f64::from(u8::from(self.should_flush())),
            1 => f64::from(self.pending_bytes()),
            2 => f64::from(self.dropped_total()),
            3 => f64::from(u8::from(self.beat(now))),
            4 => self.move_freeze_marker(now),
            5 => self.freeze_marker_times_at(),
            _ => f64::NAN,
        }
    }
}

impl Recorder {
    /// [`Recorder::op`] on the host: the error as its message.
    pub(crate) fn run(
        &mut self,
        code: u32,
        mut a: Args<'_>,
        ints: &[u32],
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, &'static str> {
        let a = &mut a;
        match code {
            0 => self.set_pii(a.bool()),
            1 => {
                let field = a.u32();
                self.remember(field, a.str());
            }
            2 => {
                let (now, url, title, width, height) = (a.n(), a.string(), a.string(), a.u32(), a.u32());
                self.meta(now, url, title, width, height, a.string(), a.string());
            }
            3 => {
                let (now, strs, x) = (a.n(), a.rest(), a.i32());
                self.snapshot(now, ints, strs, x, a.i32())?;
            }
            4 => {
                let now = a.n();
                self.mutation(now, ints, a.rest())?;
            }
            5 => {
                let (now, frame, old, strs, lo) = (a.n(), a.u32(), a.u32(), a.rest(), a.u32());
                self.frame_document(now, frame, old, ints, strs, lo, a.u32())?;
            }
            6 => {
                let (now, strs, lo) = (a.n(), a.rest(), a.u32());
                self.frame_mutation(now, ints, strs, lo, a.u32())?;
            }
            7 => {
                let (now, id, url, width) = (a.n(), a.u32(), a.string(), a.u32());
                self.frame(now, id, url, width, a.u32());
            }
            8 => {
                let (now, family, url) = (a.n(), a.string(), a.string());
                let (style, weight, stretch, range) = (a.string(), a.string(), a.string(), a.string());
                self.font(now, family, url, bytes.to_vec(), style, weight, stretch, range, a.string());
            }
            9 => {
                let (now, id, value) = (a.n(), a.u32(), a.string());
                self.input(now, id, value, a.i32());
            }
            10 => {
                let (now, id, x, y, button, label) = (a.n(), a.u32(), a.i32(), a.i32(), a.u8(), a.string());
                let path = a.string();
                self.click(now, id, x, y, button, label, path, a.bool());
            }
            11 => {
                let (now, bottom) = (a.n(), a.u32());
                self.scroll_depth(now, bottom, a.u32());
            }
            12 => {
                let now = a.n();
                self.mouse(now, &a.i32s());
            }
            13 => {
                let (now, id, x) = (a.n(), a.u32(), a.i32());
                self.scroll(now, id, x, a.i32());
            }
            14 => {
                let (now, width) = (a.n(), a.u32());
                self.viewport(now, width, a.u32());
            }
            15 => {
                let (now, name) = (a.n(), a.string());
                self.custom(now, name, a.string());
            }
            16 => {
                let (now, owner, sheet, op) = (a.n(), a.u32(), a.u32(), a.str());
                let (x, y) = (a.string(), a.string());
                self.css(now, owner, sheet, op, ints, x, y, a.string());
            }
            17 => {
                let (now, url) = (a.n(), a.string());
                self.navigation(now, url, a.u8());
            }
            18 => {
                let (now, id, mime, width) = (a.n(), a.u32(), a.string(), a.u32());
                self.canvas(now, id, mime, bytes.to_vec(), width, a.u32());
            }
            19 => {
                let (now, id) = (a.n(), a.u32());
                self.dialog(now, id, a.bool());
            }
            20 => {
                let (now, id) = (a.n(), a.u32());
                self.focus(now, id, a.bool());
            }
            21 => {
                let (now, anchor, anchor_offset, focus) = (a.n(), a.u32(), a.u32(), a.u32());
                self.selection(now, anchor, anchor_offset, focus, a.u32());
            }
            22 => {
                let (now, id, action, time, rate, volume) = (a.n(), a.u32(), a.u8(), a.n(), a.n(), a.n());
                self.media(now, id, action, time, rate, volume, a.bool());
            }
            23 => {
                let (now, kind) = (a.n(), a.u8());
                self.touch(now, kind, &a.i32s());
            }
            24 => {
                let now = a.n();
                self.visibility(now, a.bool());
            }
            25 => {
                let (now, kind, id, count) = (a.n(), a.u8(), a.u32(), a.u32());
                self.note(now, kind, id, count, a.string());
            }
            26 => self.count_error(),
            27 => {
                let now = a.n();
                return Ok(self.flush(now, a.bool()));
            }
            28 => self.add_dropped(a.u32()),
            29 => {
                let (now, level, args) = (a.n(), a.u8(), a.strings());
                self.console(now, level, args, a.string());
            }
            30 => {
                let (now, kind, message, stack, source) = (a.n(), a.u8(), a.string(), a.string(), a.string());
                let (line, column) = (a.u32(), a.u32());
                self.error(now, kind, message, stack, source, line, column, a.u32());
            }
            31 => {
                let (now, kind, method, url) = (a.n(), a.u8(), a.string(), a.string());
                let (status, duration, request_size, response_size) = (a.n() as u16, a.u32(), a.n(), a.n());
                let (failed, aborted, error) = (a.bool(), a.bool(), a.string());
                let (request_headers, response_headers) = (a.strings(), a.strings());
                let (request_body, response_body, failure, timing) = (a.string(), a.string(), a.u8(), a.nums());
                self.network(
                    now,
                    kind,
                    method,
                    url,
                    status,
                    duration,
                    request_size,
                    response_size,
                    failed,
                    aborted,
                    error,
                    request_headers,
                    response_headers,
                    request_body,
                    response_body,
                    failure,
                    timing,
                    a.string(),
                );
            }
            32 => {
                let (now, duration, blocking, layout, long_task) = (a.n(), a.u32(), a.u32(), a.u32(), a.bool());
                let texts = a.strings();
                self.long_frame(now, duration, blocking, layout, long_task, texts, &a.i32s());
            }
            33 => {
                let (now, name) = (a.n(), a.string());
                self.metric(now, name, a.n());
            }
            34 => {
                let (now, browser, version, os) = (a.n(), a.string(), a.string(), a.string());
                let (ratio, memory, cores) = (a.n(), a.n(), a.u32());
                let (connection, language) = (a.string(), a.string());
                self.environment(now, browser, version, os, ratio, memory, cores, connection, language, a.string());
            }
            35 => {
                let (now, kind, value) = (a.n(), a.u8(), a.string());
                self.app_fact(now, kind, value, a.string());
            }
            36 => {
                let now = a.n();
                self.watch(now, a.bool());
            }
            37 => {
                let (now, url) = (a.n(), a.string());
                return Ok(self.freeze_marker(now, url, a.string()));
            }
            38 => return Ok(self.take_freeze_marker()),
            39 => {
                let (now, duration, texts) = (a.n(), a.u32(), a.strings());
                self.freeze_ended(now, duration, texts, &a.i32s());
            }
            40 => {
                let (now, id, phase, url, protocol, reason) =
                    (a.n(), a.u32(), a.u8(), a.string(), a.string(), a.string());
                let (nums, messages) = (a.nums(), a.nums());
                self.websocket(now, id, phase, url, protocol, reason, nums, messages, a.strings());
            }
            41 => return self.save().map(Some),
            _ => return Err("unknown recorder operation"),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::{Batch, EventData};

    fn code(name: &str) -> u32 {
        OPS.split(' ').position(|op| op.split(':').next() == Some(name)).expect("an operation") as u32
    }

    fn decode(bytes: &[u8]) -> Batch {
        replay_protocol::decode_batch(bytes, &Default::default()).expect("a batch")
    }

    #[test]
    fn the_javascript_side_has_the_same_table() {
        let js = include_str!("../js/ops.js");
        let line = js.lines().find_map(|l| l.strip_prefix("const OPS = '")).expect("js/ops.js has `const OPS = '...'`");
        assert_eq!(line.split('\'').next(), Some(OPS), "js/ops.js and OPS differ: the codes would not match");
    }

    #[test]
    fn strings_are_split_by_utf16_length() {
        // "é" is 1 unit, "😀" 2 units (4 UTF-8 bytes), "\u{FFFD}" stands for a lone surrogate.
        let strs = "aé😀b\u{FFFD}xyz";
        let mut a = Args::new(&[2.0, 3.0, 1.0, 9.0], strs);
        assert_eq!(a.str(), "aé");
        assert_eq!(a.str(), "😀b");
        assert_eq!(a.str(), "\u{FFFD}");
        // Longer than what is left: what is left.
        assert_eq!(a.str(), "xyz");
        assert_eq!(a.str(), "");
        assert_eq!(a.n(), 0.0, "past the end reads zero");
    }

    #[test]
    fn arrays_are_cut_where_the_numbers_end() {
        let mut a = Args::new(&[2.0, 1.5, -2.0, 7.0], "");
        assert_eq!(a.i32s(), [1, -2]);
        assert_eq!(a.nums(), [] as [f64; 0], "a length past the end reads what is there");
        let mut a = Args::new(&[1e300, 0.0], "");
        assert_eq!(a.strings(), [""], "a huge count reads at most what nums holds");
        let mut a = Args::new(&[f64::NAN, -1.0, 1e12], "");
        assert!(!a.bool(), "NaN is false");
        assert_eq!((a.u32(), a.i32()), (0, i32::MAX), "casts saturate");
    }

    #[test]
    fn an_operation_reads_its_arguments_in_order() {
        let mut rec = Recorder::new("s".into(), "p".into(), 1 << 20, 1 << 22);
        let base = 1_700_000_040_000.0;
        let (url, title) = ("https://example.com/é", "Tï😀tle");
        let nums =
            [base, url.encode_utf16().count() as f64, title.encode_utf16().count() as f64, 800.0, 600.0, 2.0, 0.0];
        let strs = format!("{url}{title}UA");
        assert_eq!(rec.run(code("meta"), Args::new(&nums, &strs), &[], &[]), Ok(None));
        let clicks = [base + 1.0, 7.0, 10.0, -3.0, 0.0, 2.0, 6.0, 1.0];
        assert_eq!(rec.run(code("click"), Args::new(&clicks, "OKdiv>a"), &[], &[]), Ok(None));
        let args = [base + 2.0, 1.0];
        let bytes = rec.run(code("flush"), Args::new(&args, ""), &[], &[]).expect("flushed").expect("a batch");
        let batch = decode(&bytes);
        match &batch.events[0].data {
            EventData::Meta(m) => {
                assert_eq!((m.url.as_str(), m.title.as_str(), m.user_agent.as_str()), (url, title, "UA"));
                assert_eq!((m.viewport.width, m.viewport.height, m.referrer.as_str()), (800, 600, ""));
            }
            other => panic!("not meta: {other:?}"),
        }
        match &batch.events[1].data {
            EventData::Click(c) => {
                assert_eq!((c.id, c.x, c.y, c.button), (7, 10, -3, 0));
                assert_eq!((c.label.as_str(), c.path.as_str(), c.interactive), ("OK", "div>a", Some(true)));
            }
            other => panic!("not a click: {other:?}"),
        }
        assert_ne!(batch.flags & Batch::FLAG_FINAL, 0);
        assert_eq!(rec.run(99, Args::new(&[], ""), &[], &[]), Err("unknown recorder operation"));
    }
}
