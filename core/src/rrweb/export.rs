//! A session's timeline → rrweb events (see the parent module for what maps).

use std::collections::{BTreeMap, HashMap};

use replay_protocol::batch::NodeId;
use replay_protocol::{CssOp, EventData, MediaAction, MousePoint, Namespace, Node, NodeKind, Timeline, TouchKind};
use serde_json::{Map, Value, json};

use super::{event_type as et, interaction as mi, media, node_type as nt, source as src};

/// What an export may cost.
#[derive(Debug, Clone, Copy)]
pub struct ExportLimits {
    /// Nodes deeper than this (the document is at 0) are left out, so that printing the
    /// nested JSON stays within [`super::STACK_BYTES`].
    pub max_depth: usize,
}

impl Default for ExportLimits {
    fn default() -> Self {
        ExportLimits { max_depth: 1_000 }
    }
}

/// A session as rrweb events.
#[derive(Debug, Clone, Default)]
pub struct Exported {
    /// rrweb `eventWithTime`s, ordered by timestamp.
    pub events: Vec<Value>,
    /// Our events (or nodes) rrweb has no place for, by kind.
    pub dropped: BTreeMap<&'static str, u32>,
}

/// Converts a session's events, in replay order, into rrweb events.
pub fn export(timeline: &Timeline, limits: &ExportLimits) -> Exported {
    let mut ex = Exporter::default();
    for e in &timeline.events {
        ex.event(e.time, &e.data, limits);
    }
    let mut events = ex.out;
    // Pointer trails are stamped with their last point: put everything back in time order.
    events.sort_by_key(|e| e.get("timestamp").and_then(Value::as_u64).unwrap_or(0));
    Exported { events, dropped: ex.dropped }
}

#[derive(Default)]
struct Exporter {
    out: Vec<Value>,
    dropped: BTreeMap<&'static str, u32>,
    /// Parent of every node of the page (rrweb's removals name it).
    parent: HashMap<NodeId, NodeId>,
    /// Host of every shadow root (rrweb has no node for a shadow root).
    host: HashMap<NodeId, NodeId>,
    document: NodeId,
    /// The `<html>` element, the target of pointer moves.
    root: NodeId,
    url: String,
    viewport: (u32, u32),
}

fn incremental(timestamp: u64, source: u64, mut data: Map<String, Value>) -> Value {
    data.insert("source".into(), source.into());
    json!({ "type": et::INCREMENTAL, "data": data, "timestamp": timestamp })
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A rule path as rrweb writes it: one number at the top level, a list when nested.
fn path_value(path: &[u32]) -> Value {
    match path {
        [one] => (*one).into(),
        more => more.iter().copied().map(Value::from).collect(),
    }
}

impl Exporter {
    fn drop(&mut self, kind: &'static str) {
        *self.dropped.entry(kind).or_default() += 1;
    }

    /// The rrweb parent of a node whose parent is `parent`: a shadow root's host, flagged.
    fn rr_parent(&self, parent: NodeId) -> (NodeId, bool) {
        match self.host.get(&parent) {
            Some(&h) => (h, true),
            None => (parent, false),
        }
    }

    fn pointer_target(&self) -> NodeId {
        if self.root != 0 { self.root } else { self.document }
    }

    fn event(&mut self, time: u64, data: &EventData, limits: &ExportLimits) {
        match data {
            EventData::Meta(m) => {
                self.url.clone_from(&m.url);
                self.viewport = (m.viewport.width, m.viewport.height);
                self.meta(time);
            }
            EventData::Navigation(n) => {
                self.url.clone_from(&n.url);
                self.meta(time);
            }
            EventData::Snapshot(s) => self.snapshot(time, &s.nodes, s.scroll_x, s.scroll_y, limits),
            EventData::Mutation(m) => {
                let mut removes = Vec::new();
                for &id in &m.removes {
                    match self.parent.remove(&id) {
                        Some(p) => {
                            let (p, shadow) = self.rr_parent(p);
                            let mut r = json!({ "parentId": p, "id": id });
                            if shadow {
                                r["isShadow"] = true.into();
                            }
                            removes.push(r);
                        }
                        None => self.drop("removals of unknown nodes"),
                    }
                }
                let mut adds = Vec::new();
                for a in &m.adds {
                    for (i, node) in a.nodes.iter().enumerate() {
                        let (parent, next) = if i == 0 { (a.parent, a.next) } else { (node.parent, 0) };
                        if matches!(node.kind, NodeKind::ShadowRoot) {
                            self.host.insert(node.id, parent);
                            continue;
                        }
                        let Some(mut value) = self.node_value(node) else { continue };
                        self.parent.insert(node.id, parent);
                        let (parent, shadow) = self.rr_parent(parent);
                        if shadow {
                            value.insert("isShadow".into(), true.into());
                        }
                        let next = if next == 0 { Value::Null } else { next.into() };
                        adds.push(json!({ "parentId": parent, "nextId": next, "node": value }));
                    }
                }
                let mut attributes: Vec<(NodeId, Map<String, Value>)> = Vec::new();
                for c in &m.attrs {
                    let value = c.value.clone().map_or(Value::Null, Value::from);
                    match attributes.last_mut() {
                        Some((id, map)) if *id == c.id => {
                            map.insert(c.name.clone(), value);
                        }
                        _ => attributes.push((c.id, Map::from_iter([(c.name.clone(), value)]))),
                    }
                }
                let attributes: Vec<Value> =
                    attributes.into_iter().map(|(id, a)| json!({ "id": id, "attributes": a })).collect();
                let texts: Vec<Value> = m.texts.iter().map(|t| json!({ "id": t.id, "value": t.text })).collect();
                let data = json!({ "adds": adds, "removes": removes, "attributes": attributes, "texts": texts });
                self.out.push(incremental(time, src::MUTATION, obj(data)));
            }
            EventData::Input(i) => {
                let data = json!({ "id": i.id, "text": i.value, "isChecked": i.checked.unwrap_or(false) });
                self.out.push(incremental(time, src::INPUT, obj(data)));
            }
            EventData::MouseMove(points) => self.trail(time, src::MOUSE_MOVE, points),
            EventData::Click(c) => {
                let kind = if c.button == 2 { mi::CONTEXT_MENU } else { mi::CLICK };
                let data = json!({ "type": kind, "id": c.id, "x": c.x, "y": c.y });
                self.out.push(incremental(time, src::MOUSE_INTERACTION, obj(data)));
            }
            EventData::Scroll(s) => {
                let id = if s.id == 0 { self.document } else { s.id };
                self.out.push(incremental(time, src::SCROLL, obj(json!({ "id": id, "x": s.x, "y": s.y }))));
            }
            EventData::Viewport(v) => {
                self.viewport = (v.width, v.height);
                let data = json!({ "width": v.width, "height": v.height });
                self.out.push(incremental(time, src::VIEWPORT_RESIZE, obj(data)));
            }
            EventData::Custom(c) => {
                // Kept as text when it is not JSON (serde_json's own depth limit applies).
                let payload = serde_json::from_str::<Value>(&c.data).unwrap_or_else(|_| c.data.clone().into());
                let e = json!({ "type": et::CUSTOM, "data": { "tag": c.name, "payload": payload }, "timestamp": time });
                self.out.push(e);
            }
            EventData::Focus(f) => {
                let kind = if f.focused { mi::FOCUS } else { mi::BLUR };
                self.out.push(incremental(time, src::MOUSE_INTERACTION, obj(json!({ "type": kind, "id": f.id }))));
            }
            EventData::Selection(s) => {
                let ranges = if s.anchor == 0 {
                    vec![]
                } else {
                    vec![json!({
                        "start": s.anchor, "startOffset": s.anchor_offset, "end": s.focus, "endOffset": s.focus_offset,
                    })]
                };
                self.out.push(incremental(time, src::SELECTION, obj(json!({ "ranges": ranges }))));
            }
            EventData::Media(m) => {
                let kind = match m.action {
                    MediaAction::Play => media::PLAY,
                    MediaAction::Pause | MediaAction::Ended => media::PAUSE,
                    MediaAction::Seeked => media::SEEKED,
                    MediaAction::VolumeChange => media::VOLUME_CHANGE,
                    MediaAction::RateChange => media::RATE_CHANGE,
                };
                let finite = |f: f64| if f.is_finite() { f } else { 0.0 };
                let data = json!({
                    "type": kind, "id": m.id, "currentTime": finite(m.time), "volume": finite(m.volume),
                    "muted": m.muted, "playbackRate": finite(m.rate),
                });
                self.out.push(incremental(time, src::MEDIA_INTERACTION, obj(data)));
            }
            EventData::Touch(t) => match t.kind {
                TouchKind::Move => self.trail(time, src::TOUCH_MOVE, &t.points),
                kind => {
                    let kind = match kind {
                        TouchKind::Start => mi::TOUCH_START,
                        TouchKind::End => mi::TOUCH_END,
                        _ => mi::TOUCH_CANCEL,
                    };
                    let (x, y) = t.points.first().map_or((0, 0), |p| (p.x, p.y));
                    let data = json!({ "type": kind, "id": self.pointer_target(), "x": x, "y": y, "pointerType": 2 });
                    self.out.push(incremental(time, src::MOUSE_INTERACTION, obj(data)));
                }
            },
            EventData::Css(c) => self.css(time, c),
            EventData::Console(c) => {
                let level = match c.level {
                    replay_protocol::ConsoleLevel::Log => "log",
                    replay_protocol::ConsoleLevel::Debug => "debug",
                    replay_protocol::ConsoleLevel::Info => "info",
                    replay_protocol::ConsoleLevel::Warn => "warn",
                    replay_protocol::ConsoleLevel::Error => "error",
                    replay_protocol::ConsoleLevel::Trace => "trace",
                    replay_protocol::ConsoleLevel::Assert => "assert",
                };
                let trace: Vec<&str> = c.stack.lines().collect();
                let payload = json!({ "level": level, "trace": trace, "payload": c.args });
                let data = json!({ "plugin": super::CONSOLE_PLUGIN, "payload": payload });
                self.out.push(json!({ "type": et::PLUGIN, "data": data, "timestamp": time }));
            }
            EventData::Visibility(_) => self.drop("visibility changes"),
            EventData::Error(_) => self.drop("errors"),
            EventData::Network(_) | EventData::WebSocket(_) => self.drop("network requests"),
            EventData::LongFrame(_) | EventData::Metric(_) | EventData::Freeze(_) => self.drop("performance events"),
            EventData::Environment(_) | EventData::App(_) => self.drop("environment and app facts"),
            EventData::Note(_) => self.drop("recorder notes"),
            EventData::Dialog(_) => self.drop("dialog modality"),
            EventData::Canvas(_) => self.drop("canvas frames"),
            EventData::Frame(_) => self.drop("frame placeholders"),
            EventData::Font(_) => self.drop("fonts added through FontFace"),
            EventData::ScrollDepth(_) => self.drop("scroll depths"),
        }
    }

    fn meta(&mut self, time: u64) {
        let data = json!({ "href": self.url, "width": self.viewport.0, "height": self.viewport.1 });
        self.out.push(json!({ "type": et::META, "data": data, "timestamp": time }));
    }

    /// A pointer trail, stamped with its last point (rrweb's offsets are back in time).
    fn trail(&mut self, time: u64, source: u64, points: &[MousePoint]) {
        let Some(last) = points.iter().map(|p| p.dt).max() else { return };
        let id = self.pointer_target();
        let positions: Vec<Value> = points
            .iter()
            .map(|p| json!({ "x": p.x, "y": p.y, "id": id, "timeOffset": i64::from(p.dt) - i64::from(last) }))
            .collect();
        self.out.push(incremental(
            time.saturating_add(u64::from(last)),
            source,
            obj(json!({ "positions": positions })),
        ));
    }

    fn css(&mut self, time: u64, c: &replay_protocol::CssChange) {
        let mut data = Map::new();
        if c.owner != 0 {
            data.insert("id".into(), c.owner.into());
        } else {
            data.insert("styleId".into(), c.sheet.into());
        }
        let source = match &c.op {
            CssOp::Insert { path, rule } => {
                data.insert("adds".into(), json!([{ "rule": rule, "index": path_value(path) }]));
                src::STYLE_SHEET_RULE
            }
            CssOp::Delete { path } => {
                data.insert("removes".into(), json!([{ "index": path_value(path) }]));
                src::STYLE_SHEET_RULE
            }
            CssOp::SetProperty { path, name, value, priority } => {
                data.insert("index".into(), path.clone().into());
                data.insert("set".into(), json!({ "property": name, "value": value, "priority": priority }));
                src::STYLE_DECLARATION
            }
            CssOp::RemoveProperty { path, name } => {
                data.insert("index".into(), path.clone().into());
                data.insert("remove".into(), json!({ "property": name }));
                src::STYLE_DECLARATION
            }
            CssOp::Text(text) if c.owner == 0 => {
                data.insert("replaceSync".into(), text.clone().into());
                src::STYLE_SHEET_RULE
            }
            CssOp::Text(text) => {
                // rrweb rebuilds a `<link>` or `<style>` whose `_cssText` attribute changes.
                let attributes = json!([{ "id": c.owner, "attributes": { "_cssText": text } }]);
                let data = json!({ "adds": [], "removes": [], "attributes": attributes, "texts": [] });
                self.out.push(incremental(time, src::MUTATION, obj(data)));
                return;
            }
            CssOp::Adopt { sheets } => {
                let owner = self.host.get(&c.owner).copied().unwrap_or(c.owner);
                let data = json!({ "id": owner, "styleIds": sheets });
                self.out.push(incremental(time, src::ADOPTED_STYLE_SHEET, obj(data)));
                return;
            }
        };
        self.out.push(incremental(time, source, data));
    }

    /// One node without children, as rrweb serializes it (`None`: rrweb has no such node).
    fn node_value(&mut self, node: &Node) -> Option<Map<String, Value>> {
        let v = match &node.kind {
            NodeKind::Document => json!({ "type": nt::DOCUMENT, "childNodes": [], "id": node.id }),
            NodeKind::Doctype { name, public_id, system_id } => json!({
                "type": nt::DOCTYPE, "name": name, "publicId": public_id, "systemId": system_id, "id": node.id,
            }),
            NodeKind::Element { tag, ns, attrs } => {
                let attributes: Map<String, Value> =
                    attrs.iter().map(|a| (a.name.clone(), Value::from(a.value.clone()))).collect();
                let mut v = json!({
                    "type": nt::ELEMENT, "tagName": tag, "attributes": attributes, "childNodes": [], "id": node.id,
                });
                if *ns == Namespace::Svg {
                    v["isSVG"] = true.into();
                }
                v
            }
            NodeKind::Text(t) => json!({ "type": nt::TEXT, "textContent": t, "id": node.id }),
            NodeKind::Comment(t) => json!({ "type": nt::COMMENT, "textContent": t, "id": node.id }),
            NodeKind::ShadowRoot => return None,
        };
        Some(obj(v))
    }

    /// A full snapshot: the flat list nested again, bottom-up (no recursion).
    fn snapshot(&mut self, time: u64, nodes: &[Node], scroll_x: i32, scroll_y: i32, limits: &ExportLimits) {
        self.parent.clear();
        self.host.clear();
        self.document = 0;
        self.root = 0;
        let mut index: HashMap<NodeId, usize> = HashMap::with_capacity(nodes.len());
        let mut depth: Vec<usize> = vec![0; nodes.len()];
        // (rrweb parent index, is a shadow child) of every node kept.
        let mut up: Vec<Option<(usize, bool)>> = vec![None; nodes.len()];
        let mut values: Vec<Option<Map<String, Value>>> = Vec::with_capacity(nodes.len());
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut root = None;
        for (i, node) in nodes.iter().enumerate() {
            values.push(None);
            let parent = if node.parent == 0 { None } else { index.get(&node.parent).copied() };
            match parent {
                None if root.is_none() && node.parent == 0 && matches!(node.kind, NodeKind::Document) => {
                    root = Some(i);
                    self.document = node.id;
                }
                None => {
                    self.drop("snapshot nodes without a parent");
                    continue;
                }
                Some(p) => {
                    depth[i] = depth[p] + 1;
                    if depth[i] > limits.max_depth {
                        self.drop("snapshot nodes nested too deep");
                        continue;
                    }
                    self.parent.insert(node.id, node.parent);
                }
            }
            index.insert(node.id, i);
            if let NodeKind::ShadowRoot = node.kind {
                // Its children hang from the host, flagged.
                up[i] = parent.map(|p| (p, false));
                if let Some(p) = parent {
                    self.host.insert(node.id, nodes[p].id);
                    if let Some(v) = values[p].as_mut() {
                        v.insert("isShadowHost".into(), true.into());
                    }
                }
                continue;
            }
            if self.root == 0
                && parent == root
                && parent.is_some()
                && let NodeKind::Element { tag, .. } = &node.kind
                && tag.eq_ignore_ascii_case("html")
            {
                self.root = node.id;
            }
            values[i] = self.node_value(node);
            if let Some(p) = parent {
                let (p, shadow) = match nodes[p].kind {
                    NodeKind::ShadowRoot => (up[p].map_or(p, |u| u.0), true),
                    _ => (p, false),
                };
                up[i] = Some((p, shadow));
                children[p].push(i);
            }
        }
        // Children have higher indexes than their parents: build from the end.
        for i in (0..nodes.len()).rev() {
            let Some(mut v) = values[i].take() else { continue };
            let kids: Vec<Value> = std::mem::take(&mut children[i])
                .into_iter()
                .filter_map(|c| {
                    let mut kid = built_take(&mut values, c)?;
                    if up[c].is_some_and(|u| u.1) {
                        kid.insert("isShadow".into(), true.into());
                    }
                    Some(Value::Object(kid))
                })
                .collect();
            if v.contains_key("childNodes") {
                v.insert("childNodes".into(), kids.into());
            }
            values[i] = Some(v);
        }
        let Some(node) = root.and_then(|r| values[r].take()) else {
            self.drop("snapshots without a document");
            return;
        };
        let data = json!({ "node": node, "initialOffset": { "left": scroll_x, "top": scroll_y } });
        self.out.push(json!({ "type": et::FULL_SNAPSHOT, "data": data, "timestamp": time }));
    }
}

fn built_take(values: &mut [Option<Map<String, Value>>], i: usize) -> Option<Map<String, Value>> {
    values.get_mut(i).and_then(Option::take)
}
