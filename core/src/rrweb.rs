//! rrweb interoperability: recordings made by rrweb (and exported by PostHog or Sentry) become
//! our batches, and our sessions become rrweb events that `rrweb-player` plays.
//!
//! Pure conversion, no I/O: [`import_json`] turns the JSON bytes of an export into the batches
//! of one page view, parsing one event at a time ([`parse`] and [`import`] do the same in two
//! steps over parsed values); [`export`] turns a [`replay_protocol::Timeline`] back into rrweb
//! events (as `serde_json::Value`s).
//!
//! What maps (rrweb → ours, and back): Meta ⇄ `Meta`; FullSnapshot (a nested node tree) ⇄
//! `Snapshot` (a flat list with parent ids); Mutation (one add per node, with `parentId` and
//! `nextId`) ⇄ `Mutation` (added subtrees, ordered so that every parent and next sibling exists
//! when applied); MouseMove, TouchMove and Drag ⇄ `MouseMove` / `Touch`; MouseInteraction
//! Click, DblClick, ContextMenu ⇄ `Click`, Focus and Blur ⇄ `Focus`, touch start/end/cancel ⇄
//! `Touch`; Scroll, ViewportResize, Input, MediaInteraction, Selection; StyleSheetRule,
//! StyleDeclaration and AdoptedStyleSheet ⇄ `Css`; Custom ⇄ `Custom`; the console plugin →
//! `Console`. Shadow roots: rrweb marks the children of a shadow root `isShadow` under their
//! host; we have a shadow-root node between them, with an id of our own (from
//! [`SYNTHETIC_IDS`]). `_cssText` of a `<style>` becomes its text, of a `<link>` a `Css` text
//! change; `rr_dataURL` of an `<img>` its `src`; `rr_scrollLeft`/`rr_scrollTop` a `Scroll`; the
//! size of a blocked element (`rr_width`/`rr_height`) its style; a later `_cssText` change
//! (rrweb's sheet inlined once loaded) ⇄ a `Css` text change of its owner.
//!
//! What is dropped, counted by kind in [`Imported::dropped`] and told in one `Note` event per
//! kind at the end of the recording: canvas mutations, fonts, custom elements, mouse up/down,
//! assets, plugins other than the console, iframe documents, CDATA, media state attributes.
//! DomContentLoaded and Load carry nothing and are ignored. On export, our events rrweb has no
//! place for (errors, network, performance, environment, visibility, notes) are counted in
//! [`Exported::dropped`].
//!
//! Hostile input: the JSON nesting is measured before parsing (no recursion the input can
//! drive deeper than [`ImportLimits::max_json_depth`]), node trees are walked iteratively,
//! and events, nodes, strings and attributes are capped; bad input is an [`crate::Error`], never a
//! panic. The JSON parser and printer still recurse up to that depth: run them on a thread
//! with [`STACK_BYTES`] of stack.

mod export;
mod import;

pub use export::{ExportLimits, Exported, export};
pub use import::{ImportLimits, Imported, import, import_json, parse};

/// Node ids at and above this are ours (shadow roots rrweb has no node for); rrweb ids must
/// be below it.
pub const SYNTHETIC_IDS: u32 = 0x8000_0000;

/// Stack a thread parsing or printing rrweb JSON of [`ImportLimits::max_json_depth`] needs
/// (measured in debug builds, with margin).
pub const STACK_BYTES: usize = 64 * 1024 * 1024;

/// rrweb's `EventType`.
mod event_type {
    pub const DOM_CONTENT_LOADED: u64 = 0;
    pub const LOAD: u64 = 1;
    pub const FULL_SNAPSHOT: u64 = 2;
    pub const INCREMENTAL: u64 = 3;
    pub const META: u64 = 4;
    pub const CUSTOM: u64 = 5;
    pub const PLUGIN: u64 = 6;
}

/// rrweb's `IncrementalSource`.
mod source {
    pub const MUTATION: u64 = 0;
    pub const MOUSE_MOVE: u64 = 1;
    pub const MOUSE_INTERACTION: u64 = 2;
    pub const SCROLL: u64 = 3;
    pub const VIEWPORT_RESIZE: u64 = 4;
    pub const INPUT: u64 = 5;
    pub const TOUCH_MOVE: u64 = 6;
    pub const MEDIA_INTERACTION: u64 = 7;
    pub const STYLE_SHEET_RULE: u64 = 8;
    pub const CANVAS_MUTATION: u64 = 9;
    pub const FONT: u64 = 10;
    pub const LOG: u64 = 11;
    pub const DRAG: u64 = 12;
    pub const STYLE_DECLARATION: u64 = 13;
    pub const SELECTION: u64 = 14;
    pub const ADOPTED_STYLE_SHEET: u64 = 15;
    pub const CUSTOM_ELEMENT: u64 = 16;
}

/// rrweb's `MouseInteractions`.
mod interaction {
    pub const MOUSE_UP: u64 = 0;
    pub const MOUSE_DOWN: u64 = 1;
    pub const CLICK: u64 = 2;
    pub const CONTEXT_MENU: u64 = 3;
    pub const DBL_CLICK: u64 = 4;
    pub const FOCUS: u64 = 5;
    pub const BLUR: u64 = 6;
    pub const TOUCH_START: u64 = 7;
    pub const TOUCH_END: u64 = 9;
    pub const TOUCH_CANCEL: u64 = 10;
}

/// rrweb-snapshot's `NodeType`.
mod node_type {
    pub const DOCUMENT: u64 = 0;
    pub const DOCTYPE: u64 = 1;
    pub const ELEMENT: u64 = 2;
    pub const TEXT: u64 = 3;
    pub const CDATA: u64 = 4;
    pub const COMMENT: u64 = 5;
}

/// rrweb's `MediaInteractions`.
mod media {
    pub const PLAY: u64 = 0;
    pub const PAUSE: u64 = 1;
    pub const SEEKED: u64 = 2;
    pub const VOLUME_CHANGE: u64 = 3;
    pub const RATE_CHANGE: u64 = 4;
}

/// The console plugin's name in rrweb's plugin events.
const CONSOLE_PLUGIN: &str = "rrweb/console@1";

#[cfg(test)]
mod tests;
