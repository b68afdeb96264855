//! The recorder's Rust half, compiled to wasm32 and driven by `js/core.js`.
//!
//! Division of labour, chosen for speed: JavaScript touches the DOM (a walk in JS is cheaper
//! than one boundary crossing per node through web-sys) and hands each snapshot or mutation
//! batch over in one call as a [`replay_protocol::tape`]; Rust turns tapes and listener data into
//! protocol events, keeps them in a bounded buffer and encodes batches. Nothing here touches the
//! DOM or the network, so this crate also builds and tests on the host.
//!
//! Invariant: nothing here panics on input from the page; a bad tape is an error returned to
//! JavaScript, which counts it and carries on.

mod buffer;
mod frames;
mod network;
mod ops;
mod privacy;
pub mod renew;

pub use buffer::{BatchBuffer, BufferConfig};
pub use ops::OPS;
pub use privacy::{Privacy, redact_body, sensitive_key};

use replay_protocol::{
    AppFact, Attr, CanvasFrame, Click, Console, ConsoleLevel, CssChange, CssOp, Custom, DialogShown, Environment,
    ErrorEvent, ErrorKind, EventData, Focus, FontAdded, FrameInfo, Freeze, Input, LongFrame, Media, MediaAction,
    Metric, MousePoint, Navigation, NavigationKind, Network, Note, NoteKind, PageMeta, RequestKind, ScriptTiming,
    Scroll, ScrollDepth, Selection, Snapshot, Touch, TouchKind, Viewport, tape,
};
use wasm_bindgen::prelude::*;

/// The allocator: talc instead of the standard library's dlmalloc, a smaller part of the
/// download (the recorder runs on one thread; `cargo xtask size` has the figures).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// The recorder state of one page view, owned by the JavaScript side.
#[wasm_bindgen]
pub struct Recorder {
    buffer: BatchBuffer,
    privacy: Privacy,
}

impl Recorder {
    /// [`Recorder::restore`]'s reading: `None` when `state` is malformed or cut short.
    fn from_state(state: &[u8]) -> Option<Recorder> {
        let mut r = renew::Reader(state);
        let buffer = BatchBuffer::restore(&mut r)?;
        let privacy = Privacy::restore(&mut r)?;
        r.done().then_some(Recorder { buffer, privacy })
    }
}

fn now_ms(now: f64) -> u64 {
    if now.is_finite() && now > 0.0 { now as u64 } else { 0 }
}

/// Most scripts kept for one long frame or freeze.
const MAX_SCRIPTS: usize = 16;
/// Strings and numbers per script in the flat arrays of [`scripts_from`].
const SCRIPT_TEXTS: usize = 4;
const SCRIPT_NUMS: usize = 6;

/// Script attributions from flat arrays: texts `(invoker, invoker_type, source_url, function)`
/// and numbers `(char_position, duration, forced_style_layout, pause_duration, line, column)`
/// per script (one call instead of one object per script across the boundary).
fn scripts_from(texts: Vec<String>, nums: &[i32]) -> Vec<ScriptTiming> {
    let ms = |v: i32| u32::try_from(v).unwrap_or(0);
    let n = MAX_SCRIPTS.min(texts.len() / SCRIPT_TEXTS);
    let mut texts = texts.into_iter();
    nums.chunks_exact(SCRIPT_NUMS)
        .take(n)
        .map_while(|n| {
            let mut next = || texts.next();
            let (invoker, invoker_type, source_url, function) = (next()?, next()?, next()?, next()?);
            Some(ScriptTiming {
                invoker,
                invoker_type,
                source_url,
                function,
                char_position: n[0],
                duration: ms(n[1]),
                forced_style_layout: ms(n[2]),
                pause_duration: ms(n[3]),
                line: ms(n[4]),
                column: ms(n[5]),
            })
        })
        .collect()
}

/// Header pairs from a flat `[name, value, name, value, ...]` array; values of secret-named
/// headers are redacted, the others cleaned.
fn attrs_from(flat: Vec<String>, privacy: &Privacy) -> Vec<Attr> {
    let mut it = flat.into_iter();
    let mut out = Vec::new();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let value = if sensitive_key(&name) { privacy::REDACTED.to_owned() } else { privacy.cleaned(value) };
        out.push(Attr { name, value });
    }
    out
}

/// A bad tape's error for JavaScript: the tape's reason (where it went wrong is not written:
/// `replay_protocol::Error`'s `Display` would bring every variant's message and the MessagePack
/// and I/O errors' formatting into the wasm).
fn tape_error(e: replay_protocol::Error) -> &'static str {
    match e {
        replay_protocol::Error::Tape { reason, .. } => reason,
        _ => "invalid tape",
    }
}

/// Bytes as a wire size: JavaScript hands sizes over as numbers.
fn size(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 { v as u64 } else { 0 }
}

/// What JavaScript calls directly: the constructor and [`Recorder::restore`]; everything else
/// goes through [`Recorder::op`] (see [`ops`]).
#[wasm_bindgen]
impl Recorder {
    /// A recorder for page view `page` of session `session`; `max_buffer_bytes` bounds what is
    /// kept in memory before events are dropped (and counted).
    #[wasm_bindgen(constructor)]
    pub fn new(session: String, page: String, max_batch_bytes: u32, max_buffer_bytes: u32) -> Recorder {
        Recorder {
            buffer: BatchBuffer::new(
                session,
                page,
                BufferConfig { max_batch_bytes: max_batch_bytes as usize, max_buffer_bytes: max_buffer_bytes as usize },
            ),
            privacy: Privacy::default(),
        }
    }

    /// A recorder from the state [`Recorder::save`] returned (in another instance of this wasm).
    pub fn restore(state: &[u8]) -> Result<Recorder, JsError> {
        Recorder::from_state(state).ok_or_else(|| JsError::new("malformed recorder state"))
    }
}

/// The operations of [`ops::OPS`], each reached through [`Recorder::op`].
impl Recorder {
    /// The recorder's state, to carry it into a fresh wasm instance (see [`renew`]): only
    /// right after a cut, while no event waits (an error otherwise).
    pub fn save(&self) -> Result<Vec<u8>, &'static str> {
        if !self.buffer.is_empty() {
            return Err("events are waiting: cut the batch first");
        }
        let mut w = renew::Writer::default();
        self.buffer.save(&mut w);
        self.privacy.save(&mut w);
        Ok(w.0)
    }

    /// Turns PII detection (e-mails, card numbers, phone numbers, IBANs) on or off; on by default.
    pub fn set_pii(&mut self, on: bool) {
        self.privacy.set_pii(on);
    }

    /// Remembers a value the user typed into masked field `field`, so that its echoes elsewhere
    /// are masked. Kept in this page's memory only, never encoded (see [`Privacy::remember`]).
    pub fn remember(&mut self, field: u32, value: &str) {
        self.privacy.remember(field, value);
    }

    /// Page meta: URL (already scrubbed), title, viewport, user agent, referrer.
    #[allow(clippy::too_many_arguments)]
    pub fn meta(
        &mut self,
        now: f64,
        url: String,
        title: String,
        width: u32,
        height: u32,
        user_agent: String,
        referrer: String,
    ) {
        let p = &self.privacy;
        let (url, title, referrer) = (p.cleaned(url), p.cleaned(title), p.cleaned(referrer));
        self.buffer.push(
            now_ms(now),
            EventData::Meta(PageMeta { url, title, viewport: Viewport { width, height }, user_agent, referrer }),
        );
    }

    /// A full snapshot from the walker's tape.
    pub fn snapshot(
        &mut self,
        now: f64,
        ints: &[u32],
        strs: &str,
        scroll_x: i32,
        scroll_y: i32,
    ) -> Result<(), &'static str> {
        let mut nodes = tape::read_snapshot(ints, strs).map_err(tape_error)?;
        self.privacy.clean_nodes(&mut nodes);
        self.buffer.push(now_ms(now), EventData::Snapshot(Snapshot { nodes, scroll_x, scroll_y }));
        Ok(())
    }

    /// A mutation batch from the observer's tape.
    pub fn mutation(&mut self, now: f64, ints: &[u32], strs: &str) -> Result<(), &'static str> {
        let mut m = tape::read_mutation(ints, strs).map_err(tape_error)?;
        if !m.is_empty() {
            self.privacy.clean_mutation(&mut m);
            self.buffer.push(now_ms(now), EventData::Mutation(m));
        }
        Ok(())
    }

    /// A cross-origin child frame's document (its recorder's snapshot tape, node ids in
    /// `lo..hi`), put under frame element `frame` in place of the one recorded there (`old`).
    #[allow(clippy::too_many_arguments)]
    pub fn frame_document(
        &mut self,
        now: f64,
        frame: u32,
        old: u32,
        ints: &[u32],
        strs: &str,
        lo: u32,
        hi: u32,
    ) -> Result<(), &'static str> {
        let nodes = tape::read_snapshot(ints, strs).map_err(tape_error)?;
        let mut m = frames::attach(nodes, frame, old, frames::IdRange { lo, hi })?;
        self.privacy.clean_mutation(&mut m);
        self.buffer.push(now_ms(now), EventData::Mutation(m));
        Ok(())
    }

    /// A cross-origin child frame's mutation tape; refused whole when it names a node outside
    /// the child's ids `lo..hi`.
    pub fn frame_mutation(&mut self, now: f64, ints: &[u32], strs: &str, lo: u32, hi: u32) -> Result<(), &'static str> {
        let mut m = tape::read_mutation(ints, strs).map_err(tape_error)?;
        frames::check_mutation(&m, frames::IdRange { lo, hi })?;
        if !m.is_empty() {
            self.privacy.clean_mutation(&mut m);
            self.buffer.push(now_ms(now), EventData::Mutation(m));
        }
        Ok(())
    }

    /// Frame element `id` shows a cross-origin document that is not recorded (yet): the
    /// replay's placeholder (URL already scrubbed, size in CSS pixels).
    pub fn frame(&mut self, now: f64, id: u32, url: String, width: u32, height: u32) {
        let url = self.privacy.cleaned(url);
        self.buffer.push(now_ms(now), EventData::Frame(FrameInfo { id, url, width, height }));
    }

    /// A font the page added through the `FontFace` API: its source is `url` (already scrubbed)
    /// or the font file's bytes (`data`; bounded by the caller).
    #[allow(clippy::too_many_arguments)]
    pub fn font(
        &mut self,
        now: f64,
        family: String,
        url: String,
        data: Vec<u8>,
        style: String,
        weight: String,
        stretch: String,
        unicode_range: String,
        display: String,
    ) {
        let url = self.privacy.cleaned(url);
        let f = FontAdded { family, url, data, style, weight, stretch, unicode_range, display };
        self.buffer.push(now_ms(now), EventData::Font(f));
    }

    /// A form control's state; `checked` is -1 when not a checkbox or radio.
    pub fn input(&mut self, now: f64, id: u32, value: String, checked: i32) {
        let checked = if checked < 0 { None } else { Some(checked > 0) };
        let value = self.privacy.cleaned(value);
        self.buffer.push(now_ms(now), EventData::Input(Input { id, value, checked }));
    }

    /// A click; `label` is the clicked control's short text, already masked by place; `path`
    /// a short CSS selector of the clicked element (for click maps), cut to
    /// [`replay_protocol::MAX_CLICK_PATH`] bytes; `interactive`: the element is, or is inside, a
    /// control ([`Click::interactive`]).
    #[allow(clippy::too_many_arguments)]
    pub fn click(
        &mut self,
        now: f64,
        id: u32,
        x: i32,
        y: i32,
        button: u8,
        label: String,
        path: String,
        interactive: bool,
    ) {
        let label = self.privacy.cleaned(label);
        // Names only structure, but an id may echo what was typed: masked like any text.
        let mut path = self.privacy.cleaned(path);
        if path.len() > replay_protocol::MAX_CLICK_PATH {
            let mut end = replay_protocol::MAX_CLICK_PATH;
            while !path.is_char_boundary(end) {
                end -= 1;
            }
            path.truncate(end);
        }
        self.buffer.push(
            now_ms(now),
            EventData::Click(Click { id, x, y, button, label, path, interactive: Some(interactive) }),
        );
    }

    /// How far down the page has been seen: the viewport's bottom edge and the document's
    /// scroll height (CSS pixels), for scroll maps.
    pub fn scroll_depth(&mut self, now: f64, bottom: u32, height: u32) {
        self.buffer.push(now_ms(now), EventData::ScrollDepth(ScrollDepth { bottom, height }));
    }

    /// Sampled mouse positions as `(x, y, dt)` triples.
    pub fn mouse(&mut self, now: f64, triples: &[i32]) {
        let points: Vec<MousePoint> = triples
            .chunks_exact(3)
            .map(|c| MousePoint { x: c[0], y: c[1], dt: u32::try_from(c[2]).unwrap_or(0) })
            .collect();
        if !points.is_empty() {
            self.buffer.push(now_ms(now), EventData::MouseMove(points));
        }
    }

    pub fn scroll(&mut self, now: f64, id: u32, x: i32, y: i32) {
        self.buffer.push(now_ms(now), EventData::Scroll(Scroll { id, x, y }));
    }

    pub fn viewport(&mut self, now: f64, width: u32, height: u32) {
        self.buffer.push(now_ms(now), EventData::Viewport(Viewport { width, height }));
    }

    /// An application event; `data` is JSON text.
    pub fn custom(&mut self, now: f64, name: String, data: String) {
        self.buffer.push(now_ms(now), EventData::Custom(Custom { name, data }));
    }

    /// A CSSOM change of the sheet owned by node `owner` (or constructed sheet `sheet`).
    /// `op` is `t` text, `i` insert, `d` delete, `p` set property, `r` remove property,
    /// `a` adopt (`path` then holds the adopted sheet ids); `a`, `b`, `c` are its strings.
    #[allow(clippy::too_many_arguments)]
    pub fn css(&mut self, now: f64, owner: u32, sheet: u32, op: &str, path: &[u32], a: String, b: String, c: String) {
        let path = path.to_vec();
        let op = match op {
            "t" => CssOp::Text(a),
            "i" => CssOp::Insert { path, rule: a },
            "d" => CssOp::Delete { path },
            "p" => CssOp::SetProperty { path, name: a, value: b, priority: c },
            "r" => CssOp::RemoveProperty { path, name: a },
            "a" => CssOp::Adopt { sheets: path },
            _ => {
                self.buffer.count_error();
                return;
            }
        };
        self.buffer.push(now_ms(now), EventData::Css(CssChange { owner, sheet, op }));
    }

    /// An in-page navigation: `kind` 0 push, 1 replace, 2 pop, 3 hash change.
    pub fn navigation(&mut self, now: f64, url: String, kind: u8) {
        let url = self.privacy.cleaned(url);
        self.buffer.push(now_ms(now), EventData::Navigation(Navigation { url, kind: NavigationKind::from_code(kind) }));
    }

    /// A frame of canvas `id`: `data` encoded as `mime`, `width` × `height` image pixels.
    pub fn canvas(&mut self, now: f64, id: u32, mime: String, data: Vec<u8>, width: u32, height: u32) {
        self.buffer.push(now_ms(now), EventData::Canvas(CanvasFrame { id, mime, data, width, height }));
    }

    /// Dialog `id` was shown (`modal`: with `showModal()`).
    pub fn dialog(&mut self, now: f64, id: u32, modal: bool) {
        self.buffer.push(now_ms(now), EventData::Dialog(DialogShown { id, modal }));
    }

    pub fn focus(&mut self, now: f64, id: u32, focused: bool) {
        self.buffer.push(now_ms(now), EventData::Focus(Focus { id, focused }));
    }

    pub fn selection(&mut self, now: f64, anchor: u32, anchor_offset: u32, focus: u32, focus_offset: u32) {
        self.buffer.push(now_ms(now), EventData::Selection(Selection { anchor, anchor_offset, focus, focus_offset }));
    }

    /// A media element's state after `action` (see [`MediaAction`] codes).
    #[allow(clippy::too_many_arguments)]
    pub fn media(&mut self, now: f64, id: u32, action: u8, time: f64, rate: f64, volume: f64, muted: bool) {
        let action = MediaAction::from_code(action);
        self.buffer.push(now_ms(now), EventData::Media(Media { id, action, time, rate, volume, muted }));
    }

    /// Touch points as `(x, y, dt)` triples; `kind` 0 start, 1 move, 2 end, 3 cancel.
    pub fn touch(&mut self, now: f64, kind: u8, triples: &[i32]) {
        let points = triples
            .chunks_exact(3)
            .map(|c| MousePoint { x: c[0], y: c[1], dt: u32::try_from(c[2]).unwrap_or(0) })
            .collect();
        self.buffer.push(now_ms(now), EventData::Touch(Touch { kind: TouchKind::from_code(kind), points }));
    }

    pub fn visibility(&mut self, now: f64, visible: bool) {
        self.buffer.push(now_ms(now), EventData::Visibility(visible));
    }

    /// Something the replay cannot show faithfully; `kind` 0 throttled, 1 dropped, 2 blocked,
    /// 3 stopped, 4 other. Dropped changes are counted in the batch's `dropped` too.
    pub fn note(&mut self, now: f64, kind: u8, id: u32, count: u32, text: String) {
        let kind = NoteKind::from_code(kind);
        if matches!(kind, NoteKind::Throttled | NoteKind::Dropped) {
            self.buffer.count_dropped(count);
        }
        self.buffer.push(now_ms(now), EventData::Note(Note { kind, id, count, text }));
    }

    /// Counts an error caught on the JavaScript side (reported in the next batch).
    pub fn count_error(&mut self) {
        self.buffer.count_error();
    }

    /// Cuts the current batch. Returns its encoding, or nothing when there is nothing to send.
    pub fn flush(&mut self, now: f64, is_final: bool) -> Option<Vec<u8>> {
        self.buffer.cut(now_ms(now), is_final)
    }

    /// True when the current batch reached its size bound and should be cut now.
    pub fn should_flush(&self) -> bool {
        self.buffer.is_full()
    }

    /// Estimated size of the events waiting in the current batch.
    pub fn pending_bytes(&self) -> u32 {
        u32::try_from(self.buffer.pending_bytes()).unwrap_or(u32::MAX)
    }

    /// Events dropped so far because the buffer was full.
    pub fn dropped_total(&self) -> u32 {
        self.buffer.dropped_total()
    }

    /// Counts events lost outside the buffer (whole batches dropped by delivery) so that the
    /// next batch reports them to the server.
    pub fn add_dropped(&mut self, events: u32) {
        self.buffer.add_dropped(events);
    }

    // ---- diagnostics: console, errors, network, performance, environment, app facts, freezes ----

    /// A console call; `level` is a [`ConsoleLevel`] code, `args` already serialised and bounded.
    pub fn console(&mut self, now: f64, level: u8, args: Vec<String>, stack: String) {
        let level = ConsoleLevel::from_code(level);
        let args = args.into_iter().map(|a| self.privacy.cleaned(a)).collect();
        let stack = self.privacy.cleaned(stack);
        self.buffer.push(now_ms(now), EventData::Console(Console { level, args, stack }));
    }

    /// An error; `kind` is an [`ErrorKind`] code, `count` how many times it happened since the
    /// last report of the same error.
    #[allow(clippy::too_many_arguments)]
    pub fn error(
        &mut self,
        now: f64,
        kind: u8,
        message: String,
        stack: String,
        source: String,
        line: u32,
        column: u32,
        count: u32,
    ) {
        let kind = ErrorKind::from_code(kind);
        let (message, stack) = (self.privacy.cleaned(message), self.privacy.cleaned(stack));
        let e = ErrorEvent { kind, message, stack, source, line, column, count };
        self.buffer.push(now_ms(now), EventData::Error(e));
    }

    /// A finished request; `now` is its start. Headers are flat `[name, value, ...]` arrays and,
    /// like bodies, only present for allow-listed URLs. `failure` is a
    /// [`replay_protocol::FailureKind`] code; `timing` the Resource Timing figures as in
    /// [`network::timing_from`] (empty: none), `protocol` its `nextHopProtocol`.
    #[allow(clippy::too_many_arguments)]
    pub fn network(
        &mut self,
        now: f64,
        kind: u8,
        method: String,
        url: String,
        status: u16,
        duration: u32,
        request_size: f64,
        response_size: f64,
        failed: bool,
        aborted: bool,
        error: String,
        request_headers: Vec<String>,
        response_headers: Vec<String>,
        request_body: String,
        response_body: String,
        failure: u8,
        timing: &[f64],
        protocol: String,
    ) {
        let p = &self.privacy;
        let n = Network {
            kind: RequestKind::from_code(kind),
            method,
            url: p.cleaned(url),
            status,
            duration,
            request_size: size(request_size),
            response_size: size(response_size),
            failed,
            aborted,
            error: p.cleaned(error),
            request_headers: attrs_from(request_headers, p),
            response_headers: attrs_from(response_headers, p),
            request_body: p.cleaned(redact_body(&request_body)),
            response_body: p.cleaned(redact_body(&response_body)),
            failure: replay_protocol::FailureKind::from_code(failure),
            timing: network::timing_from(timing, protocol),
        };
        self.buffer.push(now_ms(now), EventData::Network(n));
    }

    /// A long animation frame (or long task) starting at `now`; scripts as in [`scripts_from`].
    #[allow(clippy::too_many_arguments)]
    pub fn long_frame(
        &mut self,
        now: f64,
        duration: u32,
        blocking_duration: u32,
        style_and_layout: u32,
        long_task: bool,
        texts: Vec<String>,
        nums: &[i32],
    ) {
        let scripts = scripts_from(texts, nums);
        let f = LongFrame { duration, blocking_duration, style_and_layout, long_task, scripts };
        self.buffer.push(now_ms(now), EventData::LongFrame(f));
    }

    /// A named performance figure.
    pub fn metric(&mut self, now: f64, name: String, value: f64) {
        self.buffer.push(now_ms(now), EventData::Metric(Metric { name, value }));
    }

    /// The environment of the page view.
    #[allow(clippy::too_many_arguments)]
    pub fn environment(
        &mut self,
        now: f64,
        browser: String,
        browser_version: String,
        os: String,
        device_pixel_ratio: f64,
        device_memory: f64,
        cpu_cores: u32,
        connection: String,
        language: String,
        timezone: String,
    ) {
        let env = Environment {
            browser,
            browser_version,
            os,
            device_pixel_ratio,
            device_memory,
            cpu_cores,
            connection,
            language,
            timezone,
        };
        self.buffer.push(now_ms(now), EventData::Environment(env));
    }

    /// A fact from the host app: `kind` 0 identify (`value` user, `traits` JSON), 1 release,
    /// 2 environment name, 3 feature flags (JSON in `value`).
    pub fn app_fact(&mut self, now: f64, kind: u8, value: String, traits: String) {
        let fact = match kind {
            0 => AppFact::Identify { user: value, traits },
            1 => AppFact::Release(value),
            2 => AppFact::Environment(value),
            _ => AppFact::Flags(value),
        };
        self.buffer.push(now_ms(now), EventData::App(fact));
    }

    /// Starts (page visible) or stops (hidden) watching for freezes; `now` counts as a heartbeat.
    pub fn watch(&mut self, now: f64, visible: bool) {
        self.buffer.watch(now_ms(now), visible);
    }

    /// A heartbeat; true when it ends a freeze (see [`BatchBuffer::beat`]).
    pub fn beat(&mut self, now: f64) -> bool {
        self.buffer.beat(now_ms(now))
    }

    /// The freeze watchdog's marker batch, encoded ahead of time for the upload worker: a
    /// `freeze_started` event at `now` (the last moment the page answered) under the next
    /// sequence number, which is only taken when a freeze is seen.
    pub fn freeze_marker(&mut self, now: f64, url: String, last_action: String) -> Option<Vec<u8>> {
        let url = self.privacy.cleaned(url);
        self.buffer.arm_marker(now_ms(now), EventData::Freeze(Freeze::Started { url, last_action }))
    }

    /// The armed marker moved to `now` in place (the heartbeat's case: same URL, same last
    /// action; see [`buffer::BatchBuffer::move_marker`]): the time it now carries, in epoch
    /// milliseconds, for the worker to write into its copy; 0 when there is none to move and the
    /// page must arm a new one ([`Recorder::freeze_marker`]).
    pub fn move_freeze_marker(&mut self, now: f64) -> f64 {
        let ms = now_ms(now);
        if self.buffer.move_marker(ms) { ms as f64 } else { 0.0 }
    }

    /// Where the armed marker's times are in its bytes (`replay_protocol::codec::batch_times_at`),
    /// for the worker; -1 when they cannot be moved.
    pub fn freeze_marker_times_at(&self) -> f64 {
        self.buffer.marker_times_at().map_or(-1.0, |at| at as f64)
    }

    /// The marker of a freeze that just ended, for the page to send too (the server keeps one).
    pub fn take_freeze_marker(&mut self) -> Option<Vec<u8>> {
        self.buffer.take_marker()
    }

    /// The main thread answered again after `duration` ms; culprits as in [`scripts_from`].
    pub fn freeze_ended(&mut self, now: f64, duration: u32, texts: Vec<String>, nums: &[i32]) {
        let culprits = scripts_from(texts, nums);
        self.buffer.push(now_ms(now), EventData::Freeze(Freeze::Ended { duration, culprits }));
    }
}
