//! Each mapping both ways, a round trip, and hostile recordings.

use replay_protocol::{
    AddedSubtree, Attr, AttrChange, Batch, Click, Custom, Event, EventData, Input, MousePoint, Mutation, Namespace,
    Node, NodeKind, PageMeta, Scroll, Snapshot, TextChange, Timeline, Viewport, html,
};
use serde_json::{Value, json};

use super::*;
use crate::Error;

const T0: u64 = 1_700_000_040_000;

fn el(id: u32, tag: &str, attrs: Value, kids: Vec<Value>) -> Value {
    json!({ "type": 2, "id": id, "tagName": tag, "attributes": attrs, "childNodes": kids })
}

fn text(id: u32, t: &str) -> Value {
    json!({ "type": 3, "id": id, "textContent": t })
}

/// A small recording shaped like what rrweb 2 writes.
fn recording() -> Vec<Value> {
    let doc = json!({ "type": 0, "id": 1, "childNodes": [
        { "type": 1, "id": 2, "name": "html", "publicId": "", "systemId": "" },
        el(3, "html", json!({ "lang": "en" }), vec![
            el(4, "head", json!({}), vec![
                el(25, "title", json!({}), vec![text(26, "Cart · Shop")]),
                el(5, "style", json!({ "_cssText": "p { color: red; }" }), vec![text(6, "")]),
                el(7, "link", json!({ "rel": "stylesheet", "href": "/a.css", "_cssText": "b { margin: 0; }" }), vec![]),
            ]),
            el(8, "body", json!({}), vec![
                el(9, "h1", json!({ "style": "color: blue" }), vec![text(10, "Hello")]),
                el(11, "input", json!({ "type": "checkbox" }), vec![]),
                el(12, "input", json!({ "type": "text", "value": "" }), vec![]),
                el(13, "div", json!({ "id": "host" }), vec![
                    json!({ "type": 2, "id": 14, "tagName": "span", "attributes": {}, "childNodes": [text(15, "shadow")], "isShadow": true }),
                ]),
                el(16, "img", json!({ "src": "https://x.test/a.png", "rr_dataURL": "data:image/png;base64,AAAA" }), vec![]),
                el(17, "svg", json!({ "viewBox": "0 0 1 1" }), vec![]),
                json!({ "type": 5, "id": 18, "textContent": " note " }),
                el(19, "div", json!({ "rr_width": "10px", "rr_height": "20px" }), vec![]),
            ]),
        ]),
    ]});
    let mut doc = doc;
    doc["childNodes"][1]["childNodes"][1]["childNodes"][5]["isSVG"] = true.into();
    vec![
        json!({ "type": 4, "data": { "href": "https://shop.test/cart", "width": 1280, "height": 720 }, "timestamp": T0 }),
        json!({ "type": 2, "data": { "node": doc, "initialOffset": { "left": 0, "top": 40 } }, "timestamp": T0 + 1 }),
        json!({ "type": 0, "data": {}, "timestamp": T0 + 2 }),
        // A list added child first (rrweb's order is not the application order).
        json!({ "type": 3, "timestamp": T0 + 10, "data": { "source": 0,
            "texts": [{ "id": 10, "value": "Hello, world" }],
            "attributes": [{ "id": 9, "attributes": { "style": { "color": "green", "font-weight": ["bold", "important"] }, "class": "big" } }],
            "removes": [{ "parentId": 8, "id": 18 }],
            "adds": [
                { "parentId": 21, "nextId": null, "node": text(22, "second") },
                { "parentId": 20, "nextId": null, "node": el(21, "li", json!({}), vec![]) },
                { "parentId": 20, "nextId": 21, "node": el(23, "li", json!({}), vec![]) },
                { "parentId": 23, "nextId": null, "node": text(24, "first") },
                { "parentId": 8, "nextId": 11, "node": el(20, "ul", json!({}), vec![]) },
            ] } }),
        json!({ "type": 3, "timestamp": T0 + 20, "data": { "source": 5, "id": 11, "text": "", "isChecked": true } }),
        json!({ "type": 3, "timestamp": T0 + 21, "data": { "source": 5, "id": 12, "text": "***", "isChecked": false } }),
        json!({ "type": 3, "timestamp": T0 + 40, "data": { "source": 1, "positions": [
            { "x": 10, "y": 20, "id": 9, "timeOffset": -15 }, { "x": 30, "y": 40, "id": 9, "timeOffset": 0 } ] } }),
        json!({ "type": 3, "timestamp": T0 + 41, "data": { "source": 2, "type": 1, "id": 9, "x": 30, "y": 40 } }),
        json!({ "type": 3, "timestamp": T0 + 42, "data": { "source": 2, "type": 2, "id": 9, "x": 30, "y": 40 } }),
        json!({ "type": 3, "timestamp": T0 + 50, "data": { "source": 3, "id": 1, "x": 0, "y": 300 } }),
        json!({ "type": 3, "timestamp": T0 + 60, "data": { "source": 4, "width": 800, "height": 600 } }),
        json!({ "type": 3, "timestamp": T0 + 70, "data": { "source": 9, "id": 17, "type": 0, "commands": [] } }),
        json!({ "type": 5, "timestamp": T0 + 80, "data": { "tag": "checkout", "payload": { "total": 12 } } }),
        json!({ "type": 6, "timestamp": T0 + 90, "data": { "plugin": "rrweb/console@1",
            "payload": { "level": "warn", "trace": ["at a (x.js:1:2)"], "payload": ["\"careful\""] } } }),
    ]
}

fn imported(events: &[Value]) -> Imported {
    import(events, "sess", "page", &ImportLimits::default()).expect("import")
}

fn all_events(batches: &[Batch]) -> Vec<EventData> {
    batches.iter().flat_map(|b| b.events.iter().map(|e| e.data.clone())).collect()
}

fn final_html(batches: Vec<Batch>) -> String {
    html::document_html(&Timeline::from_batches(batches).dom_at(None))
}

#[test]
fn an_rrweb_recording_imports_and_replays() {
    let im = imported(&recording());
    assert_eq!(im.batches.len(), 1);
    let b = &im.batches[0];
    assert_eq!((b.seq, b.start, b.flags & Batch::FLAG_PAGE_START), (0, T0, Batch::FLAG_PAGE_START));
    let events = all_events(&im.batches);
    assert!(
        matches!(&events[0], EventData::Meta(m) if m.url == "https://shop.test/cart" && m.title == "Cart · Shop" && m.viewport == Viewport { width: 1280, height: 720 })
    );
    let EventData::Snapshot(s) = &events[1] else { panic!("snapshot second: {:?}", events[1]) };
    assert_eq!(s.scroll_y, 40);
    assert_eq!(s.nodes[0], Node { id: 1, parent: 0, kind: NodeKind::Document });
    let svg = s.nodes.iter().find(|n| n.id == 17).expect("svg");
    assert!(matches!(&svg.kind, NodeKind::Element { ns: Namespace::Svg, .. }));
    let shadow = s.nodes.iter().find(|n| matches!(n.kind, NodeKind::ShadowRoot)).expect("a shadow root");
    assert_eq!(shadow.parent, 13);
    assert!(shadow.id >= SYNTHETIC_IDS);
    assert_eq!(s.nodes.iter().find(|n| n.id == 14).expect("span").parent, shadow.id);
    // The link's sheet became a CSS change right after the snapshot.
    assert!(
        matches!(&events[2], EventData::Css(c) if c.owner == 7 && c.op == replay_protocol::CssOp::Text("b { margin: 0; }".into()))
    );
    // Adds were ordered so that every parent and next sibling exists.
    let EventData::Mutation(m) = &events[3] else { panic!("mutation: {:?}", events[3]) };
    let order: Vec<u32> = m.adds.iter().map(|a| a.nodes[0].id).collect();
    assert_eq!(order, vec![20, 21, 22, 23, 24]);
    assert_eq!(m.removes, vec![18]);
    let style = m.attrs.iter().find(|a| a.name == "style").expect("style");
    assert_eq!(style.value.as_deref(), Some("color: green; font-weight: bold !important;"));
    // Checked only for the checkbox.
    assert!(events.contains(&EventData::Input(Input { id: 11, value: String::new(), checked: Some(true) })));
    assert!(events.contains(&EventData::Input(Input { id: 12, value: "***".into(), checked: None })));
    assert!(events.contains(&EventData::MouseMove(vec![
        MousePoint { x: 10, y: 20, dt: 0 },
        MousePoint { x: 30, y: 40, dt: 15 }
    ])));
    assert!(events.contains(&EventData::Click(Click {
        id: 9,
        x: 30,
        y: 40,
        button: 0,
        label: String::new(),
        path: String::new(),
        interactive: None
    })));
    assert!(events.contains(&EventData::Scroll(Scroll { id: 1, x: 0, y: 300 })));
    assert!(events.contains(&EventData::Viewport(Viewport { width: 800, height: 600 })));
    assert!(events.contains(&EventData::Custom(Custom { name: "checkout".into(), data: r#"{"total":12}"#.into() })));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventData::Console(c) if c.args == ["\"careful\""] && c.stack == "at a (x.js:1:2)"))
    );
    // Dropped: mouse down and the canvas, each told in a note.
    assert_eq!(im.dropped.get("mouse up and down"), Some(&1));
    assert_eq!(im.dropped.get("canvas mutations"), Some(&1));
    let notes = events.iter().filter(|e| matches!(e, EventData::Note(_))).count();
    assert_eq!(notes, im.dropped.len());
    // Mouse moves start at their first position's time.
    let mm = b.events.iter().find(|e| matches!(e.data, EventData::MouseMove(_))).expect("moves");
    assert_eq!(b.start + u64::from(mm.t), T0 + 25);

    let html = final_html(im.batches);
    for want in [
        "<style>p { color: red; }</style>",
        "<h1 style=\"color: green; font-weight: bold !important;\" class=\"big\">Hello, world</h1>",
        "<ul><li>first</li><li>second</li></ul><input type=\"checkbox\">",
        "src=\"data:image/png;base64,AAAA\"",
        "style=\"width: 10px; height: 20px;\"",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert!(!html.contains("note"), "the comment was removed: {html}");
    assert!(!html.contains("rr_"), "{html}");
}

#[test]
fn exports_wrapped_by_posthog_or_sentry_parse() {
    let events = json!(recording());
    let limits = ImportLimits::default();
    let as_bytes = |v: Value| serde_json::to_vec(&v).expect("json");
    assert_eq!(parse(&as_bytes(events.clone()), &limits).expect("array").len(), 14);
    assert_eq!(parse(&as_bytes(json!({ "events": events })), &limits).expect("events").len(), 14);
    assert_eq!(parse(&as_bytes(json!({ "data": { "snapshots": events } })), &limits).expect("posthog").len(), 14);
    for bad in [&b"{}"[..], b"3", b"[1, 2", b"{\"events\": 3}", b"", b"\xff[]"] {
        assert!(matches!(parse(bad, &limits), Err(Error::Rrweb(_))), "{}", String::from_utf8_lossy(bad));
    }
    for bad in [&b"{}"[..], b"3", b"[1, 2", b"", b"[3]", b"[{\"type\": 2}]", b"[{\"type\": 2, \"timestamp\": {}}]"] {
        let r = import_json(bad, "s", "p", &limits);
        assert!(matches!(r, Err(Error::Rrweb(_))), "{}: {r:?}", String::from_utf8_lossy(bad));
    }
    // Parsing one event at a time gives what parsing the whole does.
    let whole = imported(&recording());
    for wrapped in [events.clone(), json!({ "events": events }), json!({ "data": { "snapshots": events } })] {
        let lazy = import_json(&as_bytes(wrapped), "sess", "page", &limits).expect("import");
        assert_eq!(lazy.batches, whole.batches);
        assert_eq!(lazy.dropped, whole.dropped);
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(import_json(deep.as_bytes(), "s", "p", &limits), Err(Error::RrwebTooLarge { .. })));
}

fn our_session() -> Vec<Batch> {
    let e = |id, parent, tag: &str, attrs: &[(&str, &str)]| Node {
        id,
        parent,
        kind: NodeKind::Element {
            tag: tag.into(),
            ns: Namespace::Html,
            attrs: attrs.iter().map(|(n, v)| Attr { name: (*n).into(), value: (*v).into() }).collect(),
        },
    };
    let t = |id, parent, s: &str| Node { id, parent, kind: NodeKind::Text(s.into()) };
    let mut b = Batch::new("s1", "p1", 0, T0);
    b.flags = Batch::FLAG_PAGE_START;
    let meta = PageMeta {
        url: "https://shop.test/".into(),
        title: "Shop".into(),
        viewport: Viewport { width: 1024, height: 768 },
        user_agent: "ua".into(),
        referrer: String::new(),
    };
    b.events = vec![
        Event { t: 0, data: EventData::Meta(meta) },
        Event {
            t: 1,
            data: EventData::Snapshot(Snapshot {
                nodes: vec![
                    Node { id: 1, parent: 0, kind: NodeKind::Document },
                    Node {
                        id: 2,
                        parent: 1,
                        kind: NodeKind::Doctype {
                            name: "html".into(),
                            public_id: String::new(),
                            system_id: String::new(),
                        },
                    },
                    e(3, 1, "html", &[]),
                    e(4, 3, "head", &[]),
                    e(5, 3, "body", &[("class", "home")]),
                    e(6, 5, "p", &[]),
                    t(7, 6, "Welcome"),
                    e(8, 5, "div", &[]),
                    Node { id: 9, parent: 8, kind: NodeKind::ShadowRoot },
                    e(10, 9, "b", &[]),
                    t(11, 10, "inside"),
                    e(12, 5, "input", &[("type", "text")]),
                    Node { id: 13, parent: 5, kind: NodeKind::Comment("c".into()) },
                ],
                scroll_x: 0,
                scroll_y: 5,
            }),
        },
        Event {
            t: 10,
            data: EventData::Mutation(Mutation {
                removes: vec![13],
                adds: vec![
                    AddedSubtree {
                        parent: 5,
                        next: 8,
                        nodes: vec![e(20, 0, "ul", &[]), e(21, 20, "li", &[]), t(22, 21, "one")],
                    },
                    AddedSubtree { parent: 9, next: 0, nodes: vec![t(23, 0, "!")] },
                ],
                attrs: vec![
                    AttrChange { id: 5, name: "class".into(), value: None },
                    AttrChange { id: 6, name: "title".into(), value: Some("t".into()) },
                ],
                texts: vec![TextChange { id: 7, text: "Welcome back".into() }],
            }),
        },
        Event { t: 20, data: EventData::Input(Input { id: 12, value: "hello".into(), checked: None }) },
        Event {
            t: 30,
            data: EventData::MouseMove(vec![MousePoint { x: 1, y: 2, dt: 0 }, MousePoint { x: 3, y: 4, dt: 8 }]),
        },
        Event {
            t: 40,
            data: EventData::Click(Click {
                id: 6,
                x: 3,
                y: 4,
                button: 0,
                label: String::new(),
                path: String::new(),
                interactive: None,
            }),
        },
        Event { t: 50, data: EventData::Scroll(Scroll { id: 0, x: 0, y: 90 }) },
        Event { t: 60, data: EventData::Viewport(Viewport { width: 500, height: 400 }) },
        Event { t: 70, data: EventData::Custom(Custom { name: "n".into(), data: "{\"a\":[1]}".into() }) },
        Event { t: 80, data: EventData::Visibility(false) },
    ];
    b.end = T0 + 80;
    vec![b]
}

fn exported(batches: Vec<Batch>) -> Exported {
    export(&Timeline::from_batches(batches), &ExportLimits::default())
}

#[test]
fn our_events_export_as_rrweb_events() {
    let ex = exported(our_session());
    let types: Vec<u64> = ex.events.iter().map(|e| e["type"].as_u64().expect("type")).collect();
    assert_eq!(types, vec![4, 2, 3, 3, 3, 3, 3, 3, 5]);
    assert_eq!(ex.events[0]["data"], json!({ "href": "https://shop.test/", "width": 1024, "height": 768 }));
    let full = &ex.events[1]["data"];
    assert_eq!(full["initialOffset"], json!({ "left": 0, "top": 5 }));
    let html = &full["node"]["childNodes"][1];
    assert_eq!(html["tagName"], "html");
    let host = &html["childNodes"][1]["childNodes"][1];
    assert_eq!((host["id"].as_u64(), host["isShadowHost"].as_bool()), (Some(8), Some(true)));
    assert_eq!(host["childNodes"][0]["isShadow"], true);
    assert_eq!(host["childNodes"][0]["childNodes"][0]["textContent"], "inside");
    let m = &ex.events[2]["data"];
    assert_eq!(m["source"], 0);
    assert_eq!(m["removes"], json!([{ "parentId": 5, "id": 13 }]));
    let adds = m["adds"].as_array().expect("adds");
    assert_eq!(adds.len(), 4, "one add per node");
    assert_eq!((adds[0]["parentId"].as_u64(), adds[0]["nextId"].as_u64()), (Some(5), Some(8)));
    assert_eq!(adds[0]["node"]["childNodes"], json!([]));
    assert_eq!((adds[1]["parentId"].as_u64(), adds[1]["nextId"].is_null()), (Some(20), true));
    assert_eq!((adds[3]["parentId"].as_u64(), adds[3]["node"]["isShadow"].as_bool()), (Some(8), Some(true)));
    assert_eq!(
        m["attributes"],
        json!([{ "id": 5, "attributes": { "class": null } }, { "id": 6, "attributes": { "title": "t" } }])
    );
    assert_eq!(m["texts"], json!([{ "id": 7, "value": "Welcome back" }]));
    assert_eq!(ex.events[3]["data"], json!({ "source": 5, "id": 12, "text": "hello", "isChecked": false }));
    // The trail is stamped with its last point, offsets going back from it.
    assert_eq!(ex.events[4]["timestamp"], T0 + 38);
    assert_eq!(ex.events[4]["data"]["positions"][0], json!({ "x": 1, "y": 2, "id": 3, "timeOffset": -8 }));
    assert_eq!(ex.events[5]["data"], json!({ "source": 2, "type": 2, "id": 6, "x": 3, "y": 4 }));
    assert_eq!(ex.events[6]["data"], json!({ "source": 3, "id": 1, "x": 0, "y": 90 }));
    assert_eq!(ex.events[7]["data"], json!({ "source": 4, "width": 500, "height": 400 }));
    assert_eq!(ex.events[8]["data"], json!({ "tag": "n", "payload": { "a": [1] } }));
    assert_eq!(ex.dropped.get("visibility changes"), Some(&1));
}

#[test]
fn ours_to_rrweb_to_ours_keeps_the_document() {
    let ours = our_session();
    let before = final_html(ours.clone());
    assert!(before.contains("Welcome back") && before.contains("<li>one</li>"), "{before}");
    let rr = exported(ours).events;
    let back = imported(&rr);
    assert_eq!(final_html(back.batches.clone()), before);
    // And the document at every step, not only at the end.
    let ours = Timeline::from_batches(our_session());
    let theirs = Timeline::from_batches(back.batches);
    for e in &ours.events {
        let a = html::document_html(&ours.dom_at(Some(e.time)));
        let b = html::document_html(&theirs.dom_at(Some(e.time)));
        assert_eq!(a, b, "at {}", e.time - T0);
    }
}

#[test]
fn rrweb_to_ours_to_rrweb_keeps_the_document() {
    let once = imported(&recording());
    let html = final_html(once.batches.clone());
    let twice = imported(&exported(once.batches).events);
    assert_eq!(final_html(twice.batches), html);
}

#[test]
fn whole_sheet_texts_travel_as_css_text_attributes() {
    // Ours → rrweb: a `<link>`'s sheet text is an attribute change rrweb rebuilds the link for.
    let mut ours = our_session();
    let css = |owner| {
        EventData::Css(replay_protocol::CssChange {
            owner,
            sheet: 0,
            op: replay_protocol::CssOp::Text("i { color: red; }".into()),
        })
    };
    ours[0].events.push(Event { t: 90, data: css(4) });
    ours[0].end = T0 + 90;
    let ex = exported(ours);
    let last = ex.events.last().expect("events");
    assert_eq!(last["data"]["attributes"], json!([{ "id": 4, "attributes": { "_cssText": "i { color: red; }" } }]));
    // rrweb → ours: and back to the sheet's text.
    let back = imported(&ex.events);
    assert!(all_events(&back.batches).contains(&css(4)));
}

#[test]
fn several_page_views_export_a_meta_and_snapshot_each() {
    let mut second = our_session();
    second[0].page = "p2".into();
    second[0].start = T0 + 10_000;
    let mut all = our_session();
    all.append(&mut second);
    let ex = exported(all);
    let starts: Vec<u64> =
        ex.events.iter().filter(|e| e["type"] == 2).map(|e| e["timestamp"].as_u64().unwrap_or(0)).collect();
    assert_eq!(starts, vec![T0 + 1, T0 + 10_001]);
    assert_eq!(ex.events.iter().filter(|e| e["type"] == 4).count(), 2);
}

#[test]
fn big_recordings_are_split_into_batches_within_the_limits() {
    let mut events = recording();
    for i in 0..2_500u64 {
        events.push(json!({ "type": 3, "timestamp": T0 + 100 + i, "data": { "source": 3, "id": 1, "x": 0, "y": i } }));
    }
    let limits = ImportLimits { batch_events: 1_000, ..ImportLimits::default() };
    let im = import(&events, "sess", "page", &limits).expect("import");
    assert_eq!(im.batches.len(), 3);
    for (i, b) in im.batches.iter().enumerate() {
        assert_eq!(b.seq as usize, i);
        assert_eq!(b.flags & Batch::FLAG_PAGE_START != 0, i == 0);
        assert!(b.events.len() <= 1_000 + im.dropped.len());
        let bytes = replay_protocol::encode_batch(b).expect("encode");
        let back = replay_protocol::decode_batch(&bytes, &limits.batch).expect("every batch decodes");
        assert_eq!(&back, b);
    }
    // A tight byte limit splits by size.
    let mut small = ImportLimits::default();
    small.batch.max_bytes = 8 * 1024;
    let im = import(&events, "sess", "page", &small).expect("import");
    assert!(im.batches.len() > 3, "{} batches", im.batches.len());
    assert!(im.batches.iter().all(|b| replay_protocol::encode_batch(b).expect("encode").len() <= 4 * 1024));
}

#[test]
fn hostile_recordings_are_errors_not_panics() {
    let limits = ImportLimits::default();
    // 100k levels of nesting: refused before parsing.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(parse(deep.as_bytes(), &limits), Err(Error::RrwebTooLarge { what: "JSON nesting", .. })));
    let mut deep_tree = String::from(r#"[{"type":2,"timestamp":1,"data":{"node":{"type":0,"id":1,"childNodes":["#);
    for i in 0..100_000 {
        deep_tree.push_str(&format!(r#"{{"type":2,"id":{},"tagName":"div","attributes":{{}},"childNodes":["#, i + 2));
    }
    deep_tree.push_str(&"]}".repeat(100_000));
    deep_tree.push_str("]}}}]");
    assert!(matches!(parse(deep_tree.as_bytes(), &limits), Err(Error::RrwebTooLarge { .. })));
    // A tree deeper than max_depth (but within the JSON limit) is refused by the walk.
    let mut node = text(1_000, "leaf");
    for i in 0..30 {
        node = el(100 + i, "div", json!({}), vec![node]);
    }
    let doc = json!({ "type": 0, "id": 1, "childNodes": [node] });
    let events = vec![json!({ "type": 2, "timestamp": T0, "data": { "node": doc } })];
    let shallow = ImportLimits { max_depth: 10, ..ImportLimits::default() };
    assert!(matches!(import(&events, "s", "p", &shallow), Err(Error::RrwebTooLarge { what: "node tree depth", .. })));
    assert!(import(&events, "s", "p", &limits).is_ok());

    let snap = |node: Value| json!({ "type": 2, "timestamp": T0, "data": { "node": node } });
    let cases: Vec<(&str, Vec<Value>)> = vec![
        ("not an object", vec![json!(3)]),
        ("no timestamp", vec![json!({ "type": 2, "data": {} })]),
        ("no snapshot", vec![json!({ "type": 4, "timestamp": T0, "data": {} })]),
        ("id 0", vec![snap(json!({ "type": 0, "id": 0, "childNodes": [] }))]),
        ("negative id", vec![snap(json!({ "type": 0, "id": -4, "childNodes": [] }))]),
        ("id too big", vec![snap(json!({ "type": 0, "id": 4_294_967_296u64, "childNodes": [] }))]),
        ("id a string", vec![snap(json!({ "type": 0, "id": "1", "childNodes": [] }))]),
        ("childNodes not a list", vec![snap(json!({ "type": 0, "id": 1, "childNodes": {} }))]),
        ("unknown node type", vec![snap(json!({ "type": 0, "id": 1, "childNodes": [{ "type": 77, "id": 2 }] }))]),
        ("no tag", vec![snap(json!({ "type": 0, "id": 1, "childNodes": [{ "type": 2, "id": 2 }] }))]),
        ("root not a document", vec![snap(el(1, "div", json!({}), vec![]))]),
        (
            "attributes a list",
            vec![snap(
                json!({ "type": 0, "id": 1, "childNodes": [{ "type": 2, "id": 2, "tagName": "a", "attributes": [] }] }),
            )],
        ),
        (
            "text an object",
            vec![snap(json!({ "type": 0, "id": 1, "childNodes": [{ "type": 3, "id": 2, "textContent": {} }] }))],
        ),
    ];
    for (what, events) in cases {
        assert!(matches!(import(&events, "s", "p", &limits), Err(Error::Rrweb(_))), "{what}");
    }
    // Too many events, nodes, attributes, too long a string.
    let many = vec![json!({ "type": 0, "timestamp": T0, "data": {} }); 11];
    let few = ImportLimits { max_events: 10, ..ImportLimits::default() };
    assert!(matches!(import(&many, "s", "p", &few), Err(Error::RrwebTooLarge { what: "events", .. })));
    let wide: Vec<Value> = (0..50).map(|i| text(10 + i, "x")).collect();
    let events = vec![snap(json!({ "type": 0, "id": 1, "childNodes": wide }))];
    let narrow = ImportLimits { max_nodes: 20, ..ImportLimits::default() };
    assert!(matches!(import(&events, "s", "p", &narrow), Err(Error::RrwebTooLarge { what: "nodes", .. })));
    let attrs: serde_json::Map<String, Value> = (0..2_000).map(|i| (format!("a{i}"), json!("v"))).collect();
    let events = vec![snap(json!({ "type": 0, "id": 1, "childNodes": [el(2, "p", Value::Object(attrs), vec![])] }))];
    assert!(matches!(import(&events, "s", "p", &limits), Err(Error::RrwebTooLarge { .. })));
    let mut tiny = ImportLimits::default();
    tiny.batch.max_string = 4;
    let events = vec![snap(json!({ "type": 0, "id": 1, "childNodes": [text(2, "longer than four")] }))];
    assert!(matches!(import(&events, "s", "p", &tiny), Err(Error::RrwebTooLarge { .. })));

    // Wrong types and unknown nodes in incrementals are skipped, and the model refuses them.
    let mut events = recording();
    for data in [
        json!({ "source": 0, "adds": [{ "parentId": 9999, "nextId": 12345, "node": text(500, "lost") }], "removes": [{ "parentId": 1, "id": 0 }] }),
        json!({ "source": 0, "adds": [{ "parentId": 600, "nextId": null, "node": el(601, "i", json!({}), vec![]) },
                                      { "parentId": 601, "nextId": null, "node": el(600, "i", json!({}), vec![]) }] }),
        json!({ "source": 1, "positions": "many" }),
        json!({ "source": 2, "type": "click", "id": -1 }),
        json!({ "source": 3, "id": "x", "x": 1e300, "y": -1e300 }),
        json!({ "source": 5, "id": 77777, "text": "x", "isChecked": "yes" }),
        json!({ "source": 8, "id": 5, "adds": [{ "rule": "a{}", "index": [1, "x"] }], "removes": 3 }),
        json!({ "source": 13, "index": "x", "set": { "property": "color", "value": null } }),
        json!({ "source": 99 }),
    ] {
        events.push(json!({ "type": 3, "timestamp": T0 + 500, "data": data }));
    }
    events.push(json!({ "type": 3, "timestamp": T0 + 500, "data": { "source": "x" } }));
    assert!(import(&events, "s", "p", &limits).is_err(), "an incremental without a numeric source");
    events.pop();
    let im = import(&events, "s", "p", &limits).expect("import");
    let html = final_html(im.batches);
    assert!(!html.contains("lost"), "{html}");
}

#[test]
fn deep_trees_within_the_limits_parse_and_export_on_a_big_stack() {
    // 1000 levels of elements: within the limits, on a thread with STACK_BYTES of stack.
    let worker = std::thread::Builder::new().stack_size(STACK_BYTES).spawn(|| {
        let mut json =
            String::from(r#"[{"type":2,"timestamp":1700000040000,"data":{"node":{"type":0,"id":1,"childNodes":["#);
        for i in 0..1_000 {
            json.push_str(&format!(r#"{{"type":2,"id":{},"tagName":"div","attributes":{{}},"childNodes":["#, i + 2));
        }
        json.push_str(&"]}".repeat(1_000));
        json.push_str("]}}}]");
        let events = parse(json.as_bytes(), &ImportLimits::default()).expect("parse");
        let im = import(&events, "s", "p", &ImportLimits::default()).expect("import");
        let ex = export(&Timeline::from_batches(im.batches), &ExportLimits::default());
        let printed = serde_json::to_string(&ex.events).expect("print");
        assert!(ex.dropped.is_empty(), "{:?}", ex.dropped);
        let shallow = export(
            &Timeline::from_batches(import(&events, "s", "p", &ImportLimits::default()).expect("import").batches),
            &ExportLimits { max_depth: 100 },
        );
        assert_eq!(shallow.dropped.get("snapshot nodes nested too deep"), Some(&1));
        printed.len()
    });
    let len = worker.expect("spawn").join().expect("no stack overflow");
    assert!(len > 50_000);
}

/// A recording of the real rrweb recorder (npm rrweb 2.1.7 in Chromium, on the e2e test's
/// `fixtures/rrweb/record.html`: typed "Eggs", ticked the checkbox, clicked Add, scrolled).
const REAL_RECORDING: &str = include_str!("testdata/groceries.json");

#[test]
fn a_recording_of_the_real_rrweb_recorder_imports_and_round_trips() {
    let events = parse(REAL_RECORDING.as_bytes(), &ImportLimits::default()).expect("parse");
    let im = imported(&events);
    assert!(im.dropped.keys().all(|k| *k == "mouse up and down"), "{:?}", im.dropped);
    let timeline = Timeline::from_batches(im.batches.clone());
    let dom = timeline.dom_at(None);
    let html = html::document_html(&dom);
    for want in [
        "<h1 id=\"title\">Groceries (3)</h1>",
        "<li class=\"done\">Milk</li>",
        "<li class=\"new\">Eggs</li>",
        "h1 { color: rgb(200, 0, 0); }",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    let events = all_events(&im.batches);
    assert!(events.iter().any(|e| matches!(e, EventData::Input(i) if i.value == "Eggs")));
    assert!(events.iter().any(|e| matches!(e, EventData::Input(i) if i.checked == Some(true))));
    assert!(events.iter().any(|e| matches!(e, EventData::Scroll(s) if s.y >= 400)));
    assert!(events.iter().any(
        |e| matches!(e, EventData::Snapshot(s) if s.nodes.iter().any(|n| matches!(n.kind, NodeKind::ShadowRoot)))
    ));
    let again = imported(&exported(im.batches).events);
    assert_eq!(final_html(again.batches), html);
}
