//! The wire format of the session-replay system and the model that replays it.
//!
//! This crate is the single description of what travels from the recorder to the server and
//! from the server to the viewer:
//!
//! - [`batch`]: the [`Batch`] envelope and every recorded [`Event`];
//! - [`codec`]: compact MessagePack encoding and a decoder that enforces [`Limits`];
//! - [`deferred`]: the player's decoder, which leaves the node lists of big mutations encoded
//!   until they are applied;
//! - [`dom`]: the [`Dom`] model that applies a snapshot and events and answers "what did the
//!   document look like at time t";
//! - [`cssom`]: stylesheet state beyond the markup (inserted rules, adopted sheets);
//! - [`html`]: normalized HTML serialization of a [`Dom`];
//! - [`readable`]: the readable JSON form of the wire types (descriptive tags and names) for
//!   API users; the MessagePack form never goes through it;
//! - [`network`]: network detail (a request's Resource Timing and failure kind, WebSocket
//!   activity);
//! - [`rage`]: what counts as a rage click (shared by the session index and the timeline);
//! - [`frustration`]: dead clicks, error clicks and quick backs in a batch (index and timeline);
//! - [`sanitize`]: what the player and the snapshot API never let through of a hostile
//!   recording (scripts, handlers, script URLs, ...), decided in one place for both;
//! - [`tape`]: the flat integer/string tape the in-page JavaScript walker fills, turned into
//!   protocol types in one call;
//! - [`timeline`]: a session's batches in replay order;
//! - `test_util` (cargo feature `test-util`): builders of nodes, page metadata and batches for
//!   tests, examples and benchmarks.
//!
//! Architecture invariant: this crate does no I/O and builds for both the host and
//! `wasm32-unknown-unknown`. Everything it decodes is treated as hostile: decoding never panics,
//! every collection is bounded and every failure is a typed [`Error`].

pub mod batch;
mod budget;
pub mod codec;
pub mod cssom;
pub mod deferred;
pub mod dom;
pub mod fonts;
pub mod frustration;
pub mod html;
pub mod rage;
pub mod readable;
pub mod sanitize;
pub mod tape;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
pub mod timeline;

mod error;
mod pack;

pub use batch::MAX_CLICK_PATH;
pub use batch::network;
pub use batch::network::{FailureKind, ResourceTiming, WebSocketActivity, WebSocketMessage, WebSocketPhase};
pub use batch::{
    AddedSubtree, AppFact, Attr, AttrChange, Batch, CanvasFrame, Click, Console, ConsoleLevel, CssChange, CssOp,
    Custom, DialogShown, Environment, ErrorEvent, ErrorKind, Event, EventData, Focus, FontAdded, FrameInfo, Freeze,
    Input, LongFrame, Media, MediaAction, Metric, MousePoint, Mutation, Namespace, Navigation, NavigationKind, Network,
    Node, NodeKind, Note, NoteKind, PageMeta, RequestKind, ScriptTiming, Scroll, ScrollDepth, Selection, Snapshot,
    TextChange, Touch, TouchKind, Viewport,
};
pub use codec::{Limits, decode_batch, decode_batch_borrowed, encode_batch};
pub use dom::Dom;
pub use error::Error;
pub use readable::Readable;
pub use timeline::Timeline;

/// Version of the wire format carried in every batch. Decoders reject versions they do not know
/// and accept every earlier one ([`OLDEST_PROTOCOL_VERSION`] on): stored sessions still replay.
///
/// - 1: the first format.
/// - 2: a mutation's removals, attribute and text changes travel packed
///   ([`batch::packed`]).
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest wire format version decoders still read.
pub const OLDEST_PROTOCOL_VERSION: u16 = 1;
