//! rrweb events → the batches of one page view (see the parent module for what maps).

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use replay_protocol::batch::NodeId;
use replay_protocol::codec::encoded_len;
use replay_protocol::{
    AddedSubtree, Attr, AttrChange, Batch, Click, Console, ConsoleLevel, CssChange, CssOp, Custom, Event, EventData,
    Focus, Input, Limits, Media, MediaAction, MousePoint, Mutation, Namespace, Node, NodeKind, Note, NoteKind,
    PageMeta, Scroll, Selection, Snapshot, TextChange, Touch, TouchKind, Viewport,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{SYNTHETIC_IDS, event_type as et, interaction as mi, media, node_type as nt, source as src};
use crate::Error;

/// What an import may cost.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// Most rrweb events in one recording.
    pub max_events: usize,
    /// Most nodes over the whole recording (snapshots and additions).
    pub max_nodes: usize,
    /// Deepest node of a snapshot tree (the document is at depth 0).
    pub max_depth: usize,
    /// Deepest nesting of arrays and objects in the JSON (measured before parsing).
    pub max_json_depth: usize,
    /// Most events in one of the batches made.
    pub batch_events: usize,
    /// The server's batch limits: each batch made stays within half of `max_bytes` and within
    /// the node, string and attribute limits.
    pub batch: Limits,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_events: 1_000_000,
            max_nodes: 5_000_000,
            max_depth: 1_000,
            max_json_depth: 2_100,
            batch_events: 5_000,
            batch: Limits::default(),
        }
    }
}

/// An imported recording.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// One page view, sequence numbers from 0, [`Batch::FLAG_PAGE_START`] on the first.
    pub batches: Vec<Batch>,
    /// rrweb events read.
    pub events_in: usize,
    /// Events made.
    pub events_out: usize,
    /// What was not imported, by kind (also told in `Note` events at the end).
    pub dropped: BTreeMap<&'static str, u32>,
}

/// Splits the JSON of an rrweb export into its events, each left unparsed: an array of
/// events, or an object holding them in `events` (rrweb, Sentry), `snapshots` or
/// `data.snapshots` (PostHog).
///
/// The nesting is measured first, so the (recursive) parser never goes deeper than
/// [`ImportLimits::max_json_depth`]; run this on a thread with [`super::STACK_BYTES`] of stack.
fn split<'a>(json: &'a str, limits: &ImportLimits) -> Result<Vec<&'a RawValue>, Error> {
    let depth = json_depth(json.as_bytes());
    if depth > limits.max_json_depth {
        return Err(Error::RrwebTooLarge { what: "JSON nesting", limit: limits.max_json_depth });
    }
    #[derive(Deserialize)]
    struct Wrapper<'w> {
        #[serde(borrow, default)]
        events: Option<Vec<&'w RawValue>>,
        #[serde(borrow, default)]
        snapshots: Option<Vec<&'w RawValue>>,
        #[serde(borrow, default)]
        data: Option<&'w RawValue>,
    }
    let expected = || bad("expected an array of events, or an object with an `events` array".into());
    let events = match json.trim_start().as_bytes().first() {
        Some(b'[') => from_json::<Vec<&RawValue>>(json)?,
        Some(b'{') => {
            let w = from_json::<Wrapper>(json)?;
            match (w.events, w.snapshots, w.data) {
                (Some(events), _, _) | (None, Some(events), _) => events,
                (None, None, Some(data)) if data.get().trim_start().starts_with('{') => {
                    from_json::<Wrapper>(data.get())?.snapshots.ok_or_else(expected)?
                }
                _ => return Err(expected()),
            }
        }
        _ => return Err(expected()),
    };
    if events.len() > limits.max_events {
        return Err(Error::RrwebTooLarge { what: "events", limit: limits.max_events });
    }
    Ok(events)
}

/// Parses JSON whose nesting [`split`] has measured (no recursion limit of its own).
fn from_json<'a, T: Deserialize<'a>>(json: &'a str) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    de.disable_recursion_limit();
    let value = T::deserialize(&mut de).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    de.end().map_err(|e| bad(format!("invalid JSON: {e}")))?;
    Ok(value)
}

fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| bad(format!("invalid JSON: not UTF-8 ({e})")))
}

/// Parses the JSON of an rrweb export (an array of events, or an object holding them in
/// `events`, `snapshots` or `data.snapshots`) into its events, its nesting measured first.
pub fn parse(bytes: &[u8], limits: &ImportLimits) -> Result<Vec<Value>, Error> {
    split(utf8(bytes)?, limits)?.into_iter().map(|raw| from_json(raw.get())).collect()
}

/// [`parse`] and [`import`] in one, holding one parsed event at a time (a recording parsed
/// whole takes about 20 times its size).
pub fn import_json(bytes: &[u8], session: &str, page: &str, limits: &ImportLimits) -> Result<Imported, Error> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: Option<Value>,
        timestamp: Option<Value>,
    }
    let raws = split(utf8(bytes)?, limits)?;
    let mut heads = Vec::with_capacity(raws.len());
    for (i, raw) in raws.iter().enumerate() {
        if !raw.get().trim_start().starts_with('{') {
            return Err(bad(format!("event {i} is not an object")));
        }
        let head: Head = from_json(raw.get())?;
        heads.push(head_of(i, head.kind.as_ref(), head.timestamp.as_ref())?);
    }
    run(
        heads,
        |i| {
            let event: Value = from_json(raws[i].get())?;
            Ok(Cow::Owned(event))
        },
        session,
        page,
        limits,
    )
}

/// Deepest nesting of `[` and `{` outside strings (a hostile depth costs a counter, not stack).
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Converts rrweb events into the batches of one page view of `session` (ids of 1 to 64 of
/// `[A-Za-z0-9_-]`, chosen by the caller).
pub fn import(events: &[Value], session: &str, page: &str, limits: &ImportLimits) -> Result<Imported, Error> {
    if events.len() > limits.max_events {
        return Err(Error::RrwebTooLarge { what: "events", limit: limits.max_events });
    }
    let mut heads = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let obj = e.as_object().ok_or_else(|| bad(format!("event {i} is not an object")))?;
        heads.push(head_of(i, obj.get("type"), obj.get("timestamp"))?);
    }
    run(heads, |i| Ok(Cow::Borrowed(&events[i])), session, page, limits)
}

/// (time, index, type) of an event.
fn head_of(i: usize, kind: Option<&Value>, time: Option<&Value>) -> Result<(u64, usize, u64), Error> {
    let kind = kind.and_then(Value::as_u64).ok_or_else(|| bad(format!("event {i} has no type")))?;
    let time = time.and_then(timestamp).ok_or_else(|| bad(format!("event {i} has no timestamp")))?;
    Ok((time, i, kind))
}

/// Converts the events in time order; `event(i)` gives the i-th event.
fn run<'v>(
    mut heads: Vec<(u64, usize, u64)>,
    event: impl Fn(usize) -> Result<Cow<'v, Value>, Error>,
    session: &str,
    page: &str,
    limits: &ImportLimits,
) -> Result<Imported, Error> {
    if !heads.iter().any(|o| o.2 == et::FULL_SNAPSHOT) {
        return Err(bad("the recording has no full snapshot (event type 2)".into()));
    }
    let events_in = heads.len();
    // rrweb players sort by time; exports are not always in order (PostHog merges windows).
    heads.sort_by_key(|o| (o.0, o.1));
    let mut im = Importer::new(limits);
    for &(time, i, kind) in &heads {
        im.time = time.max(im.time);
        let e = event(i)?;
        let data = e.get("data").unwrap_or(&Value::Null);
        im.event(kind, data).map_err(|e| match e {
            Error::Rrweb(m) => Error::Rrweb(format!("event {i}: {m}")),
            other => other,
        })?;
    }
    let Importer { out, dropped, .. } = im;
    let mut batches = batch_up(out, session, page, limits)?;
    if let Some(last) = batches.last_mut() {
        let t = u32::try_from(last.end - last.start).unwrap_or(u32::MAX);
        for (kind, count) in &dropped {
            last.events.push(Event {
                t,
                data: EventData::Note(Note {
                    kind: NoteKind::Other,
                    id: 0,
                    count: *count,
                    text: format!("rrweb import: {kind} not imported"),
                }),
            });
        }
    }
    let events_out = batches.iter().map(|b| b.events.len()).sum();
    Ok(Imported { batches, events_in, events_out, dropped })
}

fn bad(message: String) -> Error {
    Error::Rrweb(message)
}

/// A timestamp: absolute ms, an integer or a float (rounded down).
fn timestamp(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f < 9.0e15).map(|f| f as u64))
}

/// Splits the events into batches within the limits.
fn batch_up(out: Vec<(u64, EventData)>, session: &str, page: &str, limits: &ImportLimits) -> Result<Vec<Batch>, Error> {
    let max_bytes = limits.batch.max_bytes / 2;
    // The envelope, and the notes of what was dropped (added to the last batch afterwards).
    let envelope = 64 + session.len() + page.len() + 1024;
    let max_events = limits.batch_events.clamp(1, limits.batch.max_events.max(1));
    let max_nodes = limits.batch.max_nodes;
    let mut batches: Vec<Batch> = Vec::new();
    let (mut bytes, mut nodes) = (0usize, 0usize);
    for (time, data) in out {
        // The event's array header and time come on top of its data.
        let size = encoded_len(&data) + 6;
        let n = node_count(&data);
        if size + envelope > max_bytes {
            return Err(Error::RrwebTooLarge { what: "bytes of one event", limit: max_bytes });
        }
        if n > max_nodes {
            return Err(Error::RrwebTooLarge { what: "nodes in one event", limit: max_nodes });
        }
        let fits = batches.last().is_some_and(|b| {
            b.events.len() < max_events
                && bytes + size <= max_bytes
                && nodes + n <= max_nodes
                && time - b.start <= u64::from(u32::MAX)
        });
        if !fits {
            let seq = u32::try_from(batches.len()).map_err(|_| Error::RrwebTooLarge { what: "batches", limit: 0 })?;
            let mut b = Batch::new(session, page, seq, time);
            if seq == 0 {
                b.flags |= Batch::FLAG_PAGE_START;
            }
            batches.push(b);
            (bytes, nodes) = (envelope, 0);
        }
        let Some(b) = batches.last_mut() else { continue };
        bytes += size;
        nodes += n;
        let t = u32::try_from(time - b.start).unwrap_or(u32::MAX);
        b.events.push(Event { t, data });
        b.end = time;
    }
    Ok(batches)
}

fn node_count(data: &EventData) -> usize {
    match data {
        EventData::Snapshot(s) => s.nodes.len(),
        EventData::Mutation(m) => m.adds.iter().map(|a| a.nodes.len()).sum(),
        _ => 0,
    }
}

/// A node of a tree being flattened.
enum Item<'a> {
    /// An rrweb node under `parent`; `text` replaces a text node's content (a `<style>`'s CSS).
    Rr { node: &'a Value, parent: NodeId, depth: usize, text: Option<String> },
    /// A node we make (a shadow root, a `<style>`'s text).
    Made(Node),
}

/// The conversion state over one recording.
struct Importer<'l> {
    limits: &'l ImportLimits,
    /// Time of the event being converted (absolute ms).
    time: u64,
    out: Vec<(u64, EventData)>,
    /// Where in `out` the last page view's Meta is (a snapshot names its title there).
    last_meta: Option<usize>,
    dropped: BTreeMap<&'static str, u32>,
    nodes: usize,
    next_synthetic: u32,
    /// Shadow root of each host.
    shadow: HashMap<NodeId, NodeId>,
    /// `style` attribute of elements (rrweb sends style changes as property diffs).
    styles: HashMap<NodeId, String>,
    /// Checkboxes and radio buttons (rrweb sends `isChecked` for every input).
    checkable: HashSet<NodeId>,
    viewport: Viewport,
}

impl<'l> Importer<'l> {
    fn new(limits: &'l ImportLimits) -> Self {
        Importer {
            limits,
            time: 0,
            out: Vec::new(),
            last_meta: None,
            dropped: BTreeMap::new(),
            nodes: 0,
            next_synthetic: SYNTHETIC_IDS,
            shadow: HashMap::new(),
            styles: HashMap::new(),
            checkable: HashSet::new(),
            viewport: Viewport { width: 0, height: 0 },
        }
    }

    fn drop(&mut self, kind: &'static str) {
        *self.dropped.entry(kind).or_default() += 1;
    }

    fn push(&mut self, data: EventData) {
        if matches!(data, EventData::Meta(_)) {
            self.last_meta = Some(self.out.len());
        }
        self.out.push((self.time, data));
    }

    fn string(&self, v: Option<&Value>) -> Result<String, Error> {
        let s = match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => return Err(bad("expected a string".into())),
        };
        self.check_len(s)
    }

    fn check_len(&self, s: String) -> Result<String, Error> {
        if s.len() > self.limits.batch.max_string {
            return Err(Error::RrwebTooLarge { what: "bytes in one string", limit: self.limits.batch.max_string });
        }
        Ok(s)
    }

    fn event(&mut self, kind: u64, data: &Value) -> Result<(), Error> {
        match kind {
            et::DOM_CONTENT_LOADED | et::LOAD => {}
            et::META => {
                let href = self.string(data.get("href"))?;
                self.viewport = Viewport { width: u32_of(data.get("width")), height: u32_of(data.get("height")) };
                self.push(EventData::Meta(PageMeta {
                    url: href,
                    title: String::new(),
                    viewport: self.viewport,
                    user_agent: String::new(),
                    referrer: String::new(),
                }));
            }
            et::FULL_SNAPSHOT => self.full_snapshot(data)?,
            et::INCREMENTAL => self.incremental(data)?,
            et::CUSTOM => {
                let name = self.string(data.get("tag"))?;
                let payload = data.get("payload").map(Value::to_string).unwrap_or_else(|| "null".into());
                let data = self.check_len(payload)?;
                self.push(EventData::Custom(Custom { name, data }));
            }
            et::PLUGIN => self.plugin(data)?,
            _ => self.drop("assets and other event types"),
        }
        Ok(())
    }

    fn full_snapshot(&mut self, data: &Value) -> Result<(), Error> {
        let root = data.get("node").ok_or_else(|| bad("full snapshot without a node".into()))?;
        self.shadow.clear();
        self.styles.clear();
        self.checkable.clear();
        let offset = data.get("initialOffset");
        let scroll_x = i32_of(offset.and_then(|o| o.get("left")));
        let scroll_y = i32_of(offset.and_then(|o| o.get("top")));
        let mut extras = Vec::new();
        let nodes = self.tree(root, 0, true, &mut extras)?;
        if !matches!(nodes.first(), Some(Node { kind: NodeKind::Document, .. })) {
            return Err(bad("the full snapshot's root is not a document".into()));
        }
        // rrweb's Meta has no title: the page view's is the document's `<title>` (the last Meta
        // remembered: looking back through every event for it was quadratic in snapshots).
        if let Some(title) = title_of(&nodes)
            && let Some((_, EventData::Meta(meta))) = self.last_meta.and_then(|i| self.out.get_mut(i))
            && meta.title.is_empty()
        {
            meta.title = title;
        }
        self.push(EventData::Snapshot(Snapshot { nodes, scroll_x, scroll_y }));
        for e in extras {
            self.push(e);
        }
        Ok(())
    }

    /// Flattens an rrweb node tree (iteratively: parents before children, siblings in order).
    /// `children` false reads only the node itself (rrweb's additions carry one node each).
    fn tree(
        &mut self,
        root: &Value,
        parent: NodeId,
        children: bool,
        extras: &mut Vec<EventData>,
    ) -> Result<Vec<Node>, Error> {
        let mut out = Vec::new();
        let mut stack = vec![Item::Rr { node: root, parent, depth: 0, text: None }];
        while let Some(item) = stack.pop() {
            let (node, parent, depth, text) = match item {
                Item::Made(n) => {
                    out.push(n);
                    continue;
                }
                Item::Rr { node, parent, depth, text } => (node, parent, depth, text),
            };
            if depth > self.limits.max_depth {
                return Err(Error::RrwebTooLarge { what: "node tree depth", limit: self.limits.max_depth });
            }
            self.nodes += 1;
            if self.nodes > self.limits.max_nodes {
                return Err(Error::RrwebTooLarge { what: "nodes", limit: self.limits.max_nodes });
            }
            let obj = node.as_object().ok_or_else(|| bad("a node is not an object".into()))?;
            let id =
                node_id(obj.get("id")).ok_or_else(|| bad(format!("node id {:?} is not in 1..2^31", obj.get("id"))))?;
            let kind = obj.get("type").and_then(Value::as_u64).ok_or_else(|| bad(format!("node {id} has no type")))?;
            let mut style_css = None;
            let kind = match kind {
                nt::DOCUMENT if depth == 0 && parent == 0 => NodeKind::Document,
                nt::DOCUMENT => {
                    self.drop("iframe documents");
                    continue;
                }
                nt::DOCTYPE => NodeKind::Doctype {
                    name: self.string(obj.get("name"))?,
                    public_id: self.string(obj.get("publicId"))?,
                    system_id: self.string(obj.get("systemId"))?,
                },
                nt::ELEMENT => {
                    let (kind, css) = self.element(id, obj, extras)?;
                    style_css = css;
                    kind
                }
                nt::TEXT => match text {
                    Some(t) => NodeKind::Text(t),
                    None => NodeKind::Text(self.string(obj.get("textContent"))?),
                },
                nt::CDATA => {
                    self.drop("CDATA sections");
                    continue;
                }
                nt::COMMENT => NodeKind::Comment(self.string(obj.get("textContent"))?),
                other => return Err(bad(format!("node {id} has the unknown type {other}"))),
            };
            out.push(Node { id, parent, kind });
            if !children {
                continue;
            }
            let kids = match obj.get("childNodes") {
                None | Some(Value::Null) => &[][..],
                Some(Value::Array(a)) => a.as_slice(),
                Some(_) => return Err(bad(format!("childNodes of node {id} is not an array"))),
            };
            // Pushed in reverse, so popped in order.
            let mut items = Vec::with_capacity(kids.len() + 2);
            let mut shadow_root = None;
            let had_css = style_css.is_some();
            let mut css = style_css;
            for kid in kids {
                let mut p = id;
                if kid.get("isShadow").and_then(Value::as_bool) == Some(true) {
                    p = match shadow_root {
                        Some(s) => s,
                        None => {
                            let s = self.synthetic()?;
                            self.shadow.insert(id, s);
                            shadow_root = Some(s);
                            s
                        }
                    };
                }
                // The first text of a `<style>` given `_cssText` gets the CSS, the others none.
                let is_text = kid.get("type").and_then(Value::as_u64) == Some(nt::TEXT);
                let text = (had_css && is_text).then(|| css.take().unwrap_or_default());
                items.push(Item::Rr { node: kid, parent: p, depth: depth + 1, text });
            }
            if let Some(css) = css {
                let text_id = self.synthetic()?;
                items.push(Item::Made(Node { id: text_id, parent: id, kind: NodeKind::Text(css) }));
            }
            if let Some(s) = shadow_root {
                items.insert(0, Item::Made(Node { id: s, parent: id, kind: NodeKind::ShadowRoot }));
            }
            stack.extend(items.into_iter().rev());
        }
        Ok(out)
    }

    fn synthetic(&mut self) -> Result<NodeId, Error> {
        let id = self.next_synthetic;
        self.next_synthetic = id
            .checked_add(1)
            .ok_or(Error::RrwebTooLarge { what: "made-up node ids", limit: SYNTHETIC_IDS as usize })?;
        Ok(id)
    }

    /// An element's kind, and the CSS its `<style>` children are to hold (`_cssText`).
    fn element(
        &mut self,
        id: NodeId,
        obj: &Map<String, Value>,
        extras: &mut Vec<EventData>,
    ) -> Result<(NodeKind, Option<String>), Error> {
        let tag = self.string(obj.get("tagName"))?;
        if tag.is_empty() {
            return Err(bad(format!("element {id} has no tagName")));
        }
        let ns = if obj.get("isSVG").and_then(Value::as_bool) == Some(true) { Namespace::Svg } else { Namespace::Html };
        let lower = tag.to_ascii_lowercase();
        let mut attrs: Vec<Attr> = Vec::new();
        let (mut css, mut scroll, mut size) = (None, (None, None), (None, None));
        let empty = Map::new();
        let given = match obj.get("attributes") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(bad(format!("attributes of element {id} are not an object"))),
        };
        if given.len() > self.limits.batch.max_attrs {
            return Err(Error::RrwebTooLarge { what: "attributes on one element", limit: self.limits.batch.max_attrs });
        }
        for (name, value) in given {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(true) => String::new(),
                Value::Bool(false) | Value::Null => continue,
                _ => {
                    self.drop("attributes that are not text");
                    continue;
                }
            };
            let value = self.check_len(value)?;
            match name.as_str() {
                "_cssText" if lower == "style" => css = Some(value),
                "_cssText" if lower == "link" => {
                    extras.push(EventData::Css(CssChange { owner: id, sheet: 0, op: CssOp::Text(value) }));
                }
                "rr_dataURL" if lower == "img" => attrs.push(Attr { name: "src".into(), value }),
                "rr_scrollLeft" => scroll.0 = value.parse::<f64>().ok(),
                "rr_scrollTop" => scroll.1 = value.parse::<f64>().ok(),
                "rr_width" => size.0 = Some(value),
                "rr_height" => size.1 = Some(value),
                "src" if lower == "img" && given.contains_key("rr_dataURL") => {}
                n if n.starts_with("rr_") || n == "_cssText" => {
                    self.drop("rrweb-only attributes (canvas, media, dialog state)")
                }
                _ => attrs.push(Attr { name: name.clone(), value }),
            }
        }
        if let (Some(w), Some(h)) = size {
            // A blocked element: rrweb keeps its size only.
            let style = format!("width: {w}; height: {h};");
            match attrs.iter_mut().find(|a| a.name == "style") {
                Some(a) => a.value = format!("{}; {style}", a.value),
                None => attrs.push(Attr { name: "style".into(), value: style }),
            }
        }
        if scroll.0.is_some() || scroll.1.is_some() {
            extras.push(EventData::Scroll(Scroll {
                id,
                x: scroll.0.unwrap_or(0.0) as i32,
                y: scroll.1.unwrap_or(0.0) as i32,
            }));
        }
        self.track(id, &lower, &attrs);
        Ok((NodeKind::Element { tag, ns, attrs }, css))
    }

    /// Remembers what later events need of an element.
    fn track(&mut self, id: NodeId, tag: &str, attrs: &[Attr]) {
        if let Some(a) = attrs.iter().find(|a| a.name == "style") {
            self.styles.insert(id, a.value.clone());
        }
        let kind = attrs.iter().find(|a| a.name == "type").map(|a| a.value.to_ascii_lowercase());
        if tag == "input" && matches!(kind.as_deref(), Some("checkbox" | "radio")) {
            self.checkable.insert(id);
        }
    }

    fn incremental(&mut self, data: &Value) -> Result<(), Error> {
        let source = data.get("source").and_then(Value::as_u64).ok_or_else(|| bad("no source".into()))?;
        match source {
            src::MUTATION => self.mutation(data)?,
            src::MOUSE_MOVE | src::DRAG | src::TOUCH_MOVE => {
                let positions = array(data.get("positions"));
                let min = positions.iter().map(|p| i64_of(p.get("timeOffset"))).min().unwrap_or(0);
                let points: Vec<MousePoint> = positions
                    .iter()
                    .map(|p| MousePoint {
                        x: i32_of(p.get("x")),
                        y: i32_of(p.get("y")),
                        dt: u32::try_from(i64_of(p.get("timeOffset")).saturating_sub(min)).unwrap_or(u32::MAX),
                    })
                    .collect();
                if points.is_empty() {
                    return Ok(());
                }
                let at = self.time.saturating_add_signed(min);
                let event = if source == src::TOUCH_MOVE {
                    EventData::Touch(Touch { kind: TouchKind::Move, points })
                } else {
                    EventData::MouseMove(points)
                };
                // Never before the previous event (the batches' times only go forward).
                let last = self.out.last().map_or(0, |e| e.0);
                self.out.push((at.max(last), event));
            }
            src::MOUSE_INTERACTION => {
                let kind = data.get("type").and_then(Value::as_u64).unwrap_or(u64::MAX);
                let id = ref_id(data.get("id"));
                let (x, y) = (i32_of(data.get("x")), i32_of(data.get("y")));
                let touch = |kind| EventData::Touch(Touch { kind, points: vec![MousePoint { x, y, dt: 0 }] });
                let event = match kind {
                    mi::CLICK | mi::DBL_CLICK => EventData::Click(Click {
                        id,
                        x,
                        y,
                        button: 0,
                        label: String::new(),
                        path: String::new(),
                        interactive: None,
                    }),
                    mi::CONTEXT_MENU => EventData::Click(Click {
                        id,
                        x,
                        y,
                        button: 2,
                        label: String::new(),
                        path: String::new(),
                        interactive: None,
                    }),
                    mi::FOCUS => EventData::Focus(Focus { id, focused: true }),
                    mi::BLUR => EventData::Focus(Focus { id, focused: false }),
                    mi::TOUCH_START => touch(TouchKind::Start),
                    mi::TOUCH_END => touch(TouchKind::End),
                    mi::TOUCH_CANCEL => touch(TouchKind::Cancel),
                    mi::MOUSE_UP | mi::MOUSE_DOWN => {
                        self.drop("mouse up and down");
                        return Ok(());
                    }
                    _ => {
                        self.drop("other mouse interactions");
                        return Ok(());
                    }
                };
                self.push(event);
            }
            src::SCROLL => {
                let s = Scroll { id: ref_id(data.get("id")), x: i32_of(data.get("x")), y: i32_of(data.get("y")) };
                self.push(EventData::Scroll(s));
            }
            src::VIEWPORT_RESIZE => {
                self.viewport = Viewport { width: u32_of(data.get("width")), height: u32_of(data.get("height")) };
                self.push(EventData::Viewport(self.viewport));
            }
            src::INPUT => {
                let id = ref_id(data.get("id"));
                let value = self.string(data.get("text"))?;
                let checked = self
                    .checkable
                    .contains(&id)
                    .then(|| data.get("isChecked").and_then(Value::as_bool).unwrap_or(false));
                self.push(EventData::Input(Input { id, value, checked }));
            }
            src::MEDIA_INTERACTION => {
                let action = match data.get("type").and_then(Value::as_u64) {
                    Some(media::PLAY) => MediaAction::Play,
                    Some(media::PAUSE) => MediaAction::Pause,
                    Some(media::SEEKED) => MediaAction::Seeked,
                    Some(media::VOLUME_CHANGE) => MediaAction::VolumeChange,
                    Some(media::RATE_CHANGE) => MediaAction::RateChange,
                    _ => {
                        self.drop("other media interactions");
                        return Ok(());
                    }
                };
                let f = |k: &str| data.get(k).and_then(Value::as_f64);
                self.push(EventData::Media(Media {
                    id: ref_id(data.get("id")),
                    action,
                    time: f("currentTime").unwrap_or(0.0),
                    rate: f("playbackRate").unwrap_or(1.0),
                    volume: f("volume").unwrap_or(1.0),
                    muted: data.get("muted").and_then(Value::as_bool).unwrap_or(false),
                }));
            }
            src::STYLE_SHEET_RULE => {
                let (owner, sheet) = self.sheet_of(data);
                for add in array(data.get("adds")) {
                    let rule = self.string(add.get("rule"))?;
                    let path = path_of(add.get("index"));
                    self.push(EventData::Css(CssChange { owner, sheet, op: CssOp::Insert { path, rule } }));
                }
                for remove in array(data.get("removes")) {
                    let path = path_of(remove.get("index"));
                    self.push(EventData::Css(CssChange { owner, sheet, op: CssOp::Delete { path } }));
                }
                if let Some(text) = data.get("replace").or_else(|| data.get("replaceSync")) {
                    let text = self.string(Some(text))?;
                    self.push(EventData::Css(CssChange { owner, sheet, op: CssOp::Text(text) }));
                }
            }
            src::STYLE_DECLARATION => {
                let (owner, sheet) = self.sheet_of(data);
                let path = path_of(data.get("index"));
                if let Some(set) = data.get("set") {
                    let name = self.string(set.get("property"))?;
                    let op = match set.get("value") {
                        None | Some(Value::Null) => CssOp::RemoveProperty { path, name },
                        v => CssOp::SetProperty {
                            path,
                            name,
                            value: self.string(v)?,
                            priority: self.string(set.get("priority"))?,
                        },
                    };
                    self.push(EventData::Css(CssChange { owner, sheet, op }));
                } else if let Some(remove) = data.get("remove") {
                    let name = self.string(remove.get("property"))?;
                    self.push(EventData::Css(CssChange { owner, sheet, op: CssOp::RemoveProperty { path, name } }));
                }
            }
            src::SELECTION => {
                let r = array(data.get("ranges")).first();
                let g = |k: &str| r.and_then(|r| r.get(k));
                self.push(EventData::Selection(Selection {
                    anchor: ref_id(g("start")),
                    anchor_offset: u32_of(g("startOffset")),
                    focus: ref_id(g("end")),
                    focus_offset: u32_of(g("endOffset")),
                }));
            }
            src::ADOPTED_STYLE_SHEET => {
                let host = ref_id(data.get("id"));
                let owner = self.shadow.get(&host).copied().unwrap_or(host);
                for style in array(data.get("styles")) {
                    let sheet = u32_of(style.get("styleId"));
                    let mut text = String::new();
                    for rule in array(style.get("rules")) {
                        text.push_str(rule.get("rule").and_then(Value::as_str).unwrap_or_default());
                        text.push('\n');
                    }
                    let text = self.check_len(text)?;
                    self.push(EventData::Css(CssChange { owner: 0, sheet, op: CssOp::Text(text) }));
                }
                let sheets = array(data.get("styleIds")).iter().map(|v| u32_of(Some(v))).collect();
                self.push(EventData::Css(CssChange { owner, sheet: 0, op: CssOp::Adopt { sheets } }));
            }
            src::CANVAS_MUTATION => self.drop("canvas mutations"),
            src::FONT => self.drop("fonts"),
            src::LOG => self.drop("legacy console logs"),
            src::CUSTOM_ELEMENT => self.drop("custom element definitions"),
            _ => self.drop("unknown incremental sources"),
        }
        Ok(())
    }

    /// The owner node (`id`) or constructed sheet (`styleId`) of a CSSOM change.
    fn sheet_of(&self, data: &Value) -> (NodeId, u32) {
        match data.get("id").and_then(Value::as_u64) {
            Some(_) => (ref_id(data.get("id")), 0),
            None => (0, u32_of(data.get("styleId"))),
        }
    }

    fn mutation(&mut self, data: &Value) -> Result<(), Error> {
        let mut m = Mutation::default();
        for r in array(data.get("removes")) {
            match node_id(r.get("id")) {
                Some(id) => m.removes.push(id),
                None => self.drop("references to unknown nodes"),
            }
        }
        // One rrweb addition per node, in any order: each becomes a subtree of one node, applied
        // once its parent and next sibling exist (Kahn's order, rrweb's order among the ready).
        let adds = array(data.get("adds"));
        let mut pending: HashMap<NodeId, usize> = HashMap::with_capacity(adds.len());
        let mut made: Vec<Option<AddedSubtree>> = Vec::with_capacity(adds.len());
        let mut needs: Vec<[Option<NodeId>; 2]> = Vec::with_capacity(adds.len());
        let mut extras = Vec::new();
        for add in adds {
            let node = add.get("node").ok_or_else(|| bad("an addition without a node".into()))?;
            if node.get("type").and_then(Value::as_u64) == Some(nt::DOCUMENT) {
                self.drop("iframe documents");
                continue;
            }
            let Some(mut parent) = node_id(add.get("parentId")) else {
                self.drop("references to unknown nodes");
                continue;
            };
            let next = add.get("nextId").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
            let mut shadow_add = None;
            if node.get("isShadow").and_then(Value::as_bool) == Some(true) {
                parent = match self.shadow.get(&parent) {
                    Some(&s) => s,
                    None => {
                        let s = self.synthetic()?;
                        self.shadow.insert(parent, s);
                        shadow_add = Some(AddedSubtree {
                            parent,
                            next: 0,
                            nodes: vec![Node { id: s, parent: 0, kind: NodeKind::ShadowRoot }],
                        });
                        s
                    }
                };
            }
            if let Some(s) = shadow_add {
                pending.insert(s.nodes[0].id, made.len());
                made.push(Some(s));
                needs.push([None, None]);
            }
            let mut nodes = self.tree(node, 0, false, &mut extras)?;
            if nodes.is_empty() {
                continue;
            }
            // A `<style>` given with `_cssText` gets its text as a child of its own.
            if let NodeKind::Element { tag, .. } = &nodes[0].kind
                && tag.eq_ignore_ascii_case("style")
                && let Some(css) = style_css(node)
            {
                let id = self.synthetic()?;
                let css = self.check_len(css)?;
                nodes.push(Node { id, parent: nodes[0].id, kind: NodeKind::Text(css) });
            }
            let id = nodes[0].id;
            pending.insert(id, made.len());
            made.push(Some(AddedSubtree { parent, next, nodes }));
            needs.push([Some(parent), (next != 0).then_some(next)]);
        }
        let mut waiting_on: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut missing = vec![0u8; made.len()];
        for (i, need) in needs.iter().enumerate() {
            for dep in need.iter().flatten() {
                if let Some(&j) = pending.get(dep)
                    && j != i
                {
                    missing[i] += 1;
                    waiting_on.entry(j).or_default().push(i);
                }
            }
        }
        let mut ready: BinaryHeap<Reverse<usize>> = (0..made.len()).filter(|&i| missing[i] == 0).map(Reverse).collect();
        while let Some(Reverse(i)) = ready.pop() {
            if let Some(a) = made[i].take() {
                m.adds.push(a);
            }
            for j in waiting_on.remove(&i).unwrap_or_default() {
                missing[j] -= 1;
                if missing[j] == 0 {
                    ready.push(Reverse(j));
                }
            }
        }
        // A cycle (a hostile recording): kept in rrweb's order; the model refuses what fails.
        m.adds.extend(made.into_iter().flatten());
        for change in array(data.get("attributes")) {
            let Some(id) = node_id(change.get("id")) else {
                self.drop("references to unknown nodes");
                continue;
            };
            let Some(attributes) = change.get("attributes").and_then(Value::as_object) else { continue };
            for (name, value) in attributes {
                let value = match value {
                    Value::Null | Value::Bool(false) => None,
                    Value::String(s) => Some(self.check_len(s.clone())?),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(true) => Some(String::new()),
                    Value::Object(diff) if name == "style" => Some(self.style_diff(id, diff)?),
                    _ => {
                        self.drop("attributes that are not text");
                        continue;
                    }
                };
                if name == "_cssText" {
                    // A `<link>` or `<style>` whose sheet was inlined late: its whole text.
                    if let Some(text) = value {
                        extras.push(EventData::Css(CssChange { owner: id, sheet: 0, op: CssOp::Text(text) }));
                    }
                    continue;
                }
                if name.starts_with("rr_") {
                    self.drop("rrweb-only attributes (canvas, media, dialog state)");
                    continue;
                }
                if name == "style" {
                    match &value {
                        Some(v) => self.styles.insert(id, v.clone()),
                        None => self.styles.remove(&id),
                    };
                }
                if name == "type" && value.as_deref().is_some_and(|v| matches!(v, "checkbox" | "radio")) {
                    self.checkable.insert(id);
                }
                m.attrs.push(AttrChange { id, name: name.clone(), value });
            }
        }
        for change in array(data.get("texts")) {
            let Some(id) = node_id(change.get("id")) else {
                self.drop("references to unknown nodes");
                continue;
            };
            let text = self.string(change.get("value"))?;
            m.texts.push(TextChange { id, text });
        }
        if !m.is_empty() {
            self.push(EventData::Mutation(m));
        }
        for e in extras {
            self.push(e);
        }
        Ok(())
    }

    /// The `style` attribute after rrweb's property diff (`{prop: value | [value, priority] |
    /// false}`) is applied to the one we know.
    fn style_diff(&self, id: NodeId, diff: &Map<String, Value>) -> Result<String, Error> {
        let mut props: Vec<(String, String)> = self
            .styles
            .get(&id)
            .map(|s| {
                s.split(';')
                    .filter_map(|d| d.split_once(':'))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        for (prop, value) in diff {
            props.retain(|(k, _)| k != prop);
            let value = match value {
                Value::String(v) => v.clone(),
                Value::Array(a) => {
                    let v = a.first().and_then(Value::as_str).unwrap_or_default();
                    match a.get(1).and_then(Value::as_str) {
                        Some(p) if !p.is_empty() => format!("{v} !{p}"),
                        _ => v.to_owned(),
                    }
                }
                _ => continue,
            };
            props.push((prop.clone(), value));
        }
        let text: String = props.iter().map(|(k, v)| format!("{k}: {v}; ")).collect();
        self.check_len(text.trim_end().to_owned())
    }

    fn plugin(&mut self, data: &Value) -> Result<(), Error> {
        if data.get("plugin").and_then(Value::as_str) != Some(super::CONSOLE_PLUGIN) {
            self.drop("plugin events");
            return Ok(());
        }
        let payload = data.get("payload").unwrap_or(&Value::Null);
        let level = match payload.get("level").and_then(Value::as_str).unwrap_or("log") {
            "debug" => ConsoleLevel::Debug,
            "info" => ConsoleLevel::Info,
            "warn" => ConsoleLevel::Warn,
            "error" => ConsoleLevel::Error,
            "trace" => ConsoleLevel::Trace,
            "assert" => ConsoleLevel::Assert,
            _ => ConsoleLevel::Log,
        };
        let mut args = Vec::new();
        for a in array(payload.get("payload")).iter().take(64) {
            args.push(self.check_len(a.as_str().map_or_else(|| a.to_string(), str::to_owned))?);
        }
        let stack: Vec<&str> = array(payload.get("trace")).iter().filter_map(Value::as_str).take(64).collect();
        let stack = self.check_len(stack.join("\n"))?;
        self.push(EventData::Console(Console { level, args, stack }));
        Ok(())
    }
}

/// The text of the first `<title>` of a flat node list.
fn title_of(nodes: &[Node]) -> Option<String> {
    let title =
        nodes.iter().find(|n| matches!(&n.kind, NodeKind::Element { tag, .. } if tag.eq_ignore_ascii_case("title")))?;
    nodes.iter().find_map(|n| match &n.kind {
        NodeKind::Text(t) if n.parent == title.id => Some(t.trim().to_owned()),
        _ => None,
    })
}

/// `_cssText` of an added `<style>` (as text).
fn style_css(node: &Value) -> Option<String> {
    node.get("attributes")?.get("_cssText")?.as_str().map(str::to_owned)
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A node id of a tree: 1 to 2^31 - 1.
fn node_id(v: Option<&Value>) -> Option<NodeId> {
    v.and_then(Value::as_u64).filter(|&id| id > 0 && id < u64::from(SYNTHETIC_IDS)).map(|id| id as NodeId)
}

/// A reference to a node in an interaction; unknown (rrweb's -1) reads as none.
fn ref_id(v: Option<&Value>) -> NodeId {
    node_id(v).unwrap_or(0)
}

fn i64_of(v: Option<&Value>) -> i64 {
    v.and_then(|v| v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))).unwrap_or(0)
}

fn i32_of(v: Option<&Value>) -> i32 {
    i64_of(v).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

fn u32_of(v: Option<&Value>) -> u32 {
    i64_of(v).clamp(0, i64::from(u32::MAX)) as u32
}

/// A CSSOM rule path: one index or a list; missing means 0 (`insertRule`'s default).
fn path_of(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Array(a)) => a.iter().take(32).map(|i| u32_of(Some(i))).collect(),
        Some(v) => vec![u32_of(Some(v))],
        None => vec![0],
    }
}
