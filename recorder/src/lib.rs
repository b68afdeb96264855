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

pub use buffer::{BatchBuffer, BufferConfig};

use replay_protocol::{
    Click, CssChange, CssOp, Custom, Environment, EventData, Focus, Input, Media, MediaAction, MousePoint, Navigation,
    NavigationKind, Note, NoteKind, PageMeta, Scroll, Selection, Snapshot, Touch, TouchKind, Viewport, tape,
};
use wasm_bindgen::prelude::*;

/// The recorder state of one page view, owned by the JavaScript side.
#[wasm_bindgen]
pub struct Recorder {
    buffer: BatchBuffer,
}

fn now_ms(now: f64) -> u64 {
    if now.is_finite() && now > 0.0 { now as u64 } else { 0 }
}

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
        }
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
    ) -> Result<(), JsError> {
        let nodes = tape::read_snapshot(ints, strs)?;
        self.buffer.push(now_ms(now), EventData::Snapshot(Snapshot { nodes, scroll_x, scroll_y }));
        Ok(())
    }

    /// A mutation batch from the observer's tape.
    pub fn mutation(&mut self, now: f64, ints: &[u32], strs: &str) -> Result<(), JsError> {
        let m = tape::read_mutation(ints, strs)?;
        if !m.is_empty() {
            self.buffer.push(now_ms(now), EventData::Mutation(m));
        }
        Ok(())
    }

    /// A form control's state; `checked` is -1 when not a checkbox or radio.
    pub fn input(&mut self, now: f64, id: u32, value: String, checked: i32) {
        let checked = if checked < 0 { None } else { Some(checked > 0) };
        self.buffer.push(now_ms(now), EventData::Input(Input { id, value, checked }));
    }

    pub fn click(&mut self, now: f64, id: u32, x: i32, y: i32, button: u8) {
        self.buffer.push(now_ms(now), EventData::Click(Click { id, x, y, button }));
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
        self.buffer.push(now_ms(now), EventData::Navigation(Navigation { url, kind: NavigationKind::from_code(kind) }));
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

    /// The page's device pixel ratio (sent at start and when it changes, e.g. zoom or a move
    /// to another screen); the rest of the environment is filled by the page's own report.
    pub fn pixel_ratio(&mut self, now: f64, ratio: f64, language: String, timezone: String) {
        self.buffer.push(
            now_ms(now),
            EventData::Environment(Environment {
                browser: String::new(),
                browser_version: String::new(),
                os: String::new(),
                device_pixel_ratio: ratio,
                device_memory: 0.0,
                cpu_cores: 0,
                connection: String::new(),
                language,
                timezone,
            }),
        );
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
}
