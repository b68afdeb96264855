//! Builders of protocol values for tests, examples and benchmarks, so that each of them does
//! not spell out nodes, page metadata and click batches again.
//!
//! Public only with the cargo feature `test-util` (dev-dependencies and the test harness turn
//! it on; the recorder's and viewer's wasm builds never do); this crate's own unit tests see it
//! without the feature. Each builder returns a plain value: a test that needs other details
//! adjusts it with struct update syntax, e.g. `PageMeta { title: "Cart".into(), ..page_meta(url) }`.

use crate::batch::NodeId;
use crate::{Attr, Batch, Click, Event, EventData, Namespace, Node, NodeKind, PageMeta, Snapshot, Viewport};

/// The document node `id` (parent 0), the root of a snapshot.
pub fn document(id: NodeId) -> Node {
    Node { id, parent: 0, kind: NodeKind::Document }
}

/// An HTML element `<tag name="value"...>` under `parent`.
pub fn el(id: NodeId, parent: NodeId, tag: &str, attrs: &[(&str, &str)]) -> Node {
    Node {
        id,
        parent,
        kind: NodeKind::Element {
            tag: tag.into(),
            ns: Namespace::Html,
            attrs: attrs.iter().map(|(name, value)| Attr { name: (*name).into(), value: (*value).into() }).collect(),
        },
    }
}

/// A text node under `parent`.
pub fn text(id: NodeId, parent: NodeId, text: impl Into<String>) -> Node {
    Node { id, parent, kind: NodeKind::Text(text.into()) }
}

/// The nodes of a page: the document (1), `<html>` (2) with an empty `<head>` (3) and a
/// `<body>` (4) with `body_attrs`, then `content` (whose nodes name their parents).
pub fn page_nodes(body_attrs: &[(&str, &str)], content: impl IntoIterator<Item = Node>) -> Vec<Node> {
    let mut nodes = vec![document(1), el(2, 1, "html", &[]), el(3, 2, "head", &[]), el(4, 2, "body", body_attrs)];
    nodes.extend(content);
    nodes
}

/// A full snapshot of `nodes`, scrolled to the top left.
pub fn snapshot(nodes: Vec<Node>) -> EventData {
    EventData::Snapshot(Snapshot { nodes, scroll_x: 0, scroll_y: 0 })
}

/// Page metadata of `url`: title "Shop", an 800×600 viewport, user agent "test", no referrer.
pub fn page_meta(url: &str) -> PageMeta {
    PageMeta {
        url: url.into(),
        title: "Shop".into(),
        viewport: Viewport { width: 800, height: 600 },
        user_agent: "test".into(),
        referrer: String::new(),
    }
}

/// [`page_meta`] as an event payload.
pub fn meta(url: &str) -> EventData {
    EventData::Meta(page_meta(url))
}

/// A primary-button click on node `id` at (`x`, `y`).
pub fn click(id: NodeId, x: i32, y: i32) -> EventData {
    EventData::Click(Click { id, x, y, button: 0, label: String::new(), path: String::new(), interactive: None })
}

/// `data` at `t` ms after the start of its batch.
pub fn at(t: u32, data: EventData) -> Event {
    Event { t, data }
}

/// A batch of `clicks` clicks on node 1 at (0, 0), 10 ms apart; it ends where it starts.
pub fn click_batch(session: &str, page: &str, seq: u32, start: u64, clicks: u32) -> Batch {
    let mut b = Batch::new(session, page, seq, start);
    b.events = (0..clicks).map(|i| at(i * 10, click(1, 0, 0))).collect();
    b
}
