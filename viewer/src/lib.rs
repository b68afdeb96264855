//! The player's replay engine, compiled to wasm32 and driven by `viewer/static/player.js`.
//!
//! It holds a session's events and the protocol's [`Dom`](replay_protocol::Dom) model. Seeking
//! applies events to the model in memory and then describes the whole document once
//! (`["full", ...]`); playing forward describes each change as a small operation. JavaScript
//! applies the operations to the sandboxed replay iframe through DOM APIs; recorded strings are
//! never parsed as HTML. Every node and attribute passes [`sanitize`] on its way out.
//!
//! Batches can be loaded in pieces ([`Player::append`]) so the first frame shows before a long
//! session has downloaded. In idle time a second model walks the loaded events and keeps
//! keyframes (clones of the model, see [`keyframes`] and [`Player::build_keyframes`]) so that
//! seeking backwards, or forwards past an earlier seek, never replays from the start of the
//! session; a seek itself never waits for a keyframe to be cloned. A long seek leaves out the
//! subtrees that a later event of the same seek removes again, and never decodes them: the node
//! lists of mutations with many additions stay encoded until applied (see `seek` and
//! `replay_protocol::deferred`).
//!
//! Operations (JSON arrays, one per change):
//! `["full", url, title, scrollX, scrollY, nodes]`, `["rm", id]`, `["add", parent, next, nodes]`,
//! `["attr", id, name, value|null]`, `["text", id, text]`, `["input", id, value, checked|null]`,
//! `["scroll", id, x, y]`, `["mouse", x, y]`, `["click", x, y]`, `["viewport", w, h]`,
//! `["meta", url, title]`, `["css", owner, sheet, op]`, `["media", id, action, time, rate,
//! volume, muted]`, `["sel", anchor, anchorOffset, focus, focusOffset]` (see `ops.rs`). A node is `[id, parent, kind, ...]` with kind 0 document,
//! 1 doctype (name, public, system), 2 element (tag, ns, [name, value, ...]), 3 text, 4 comment,
//! 5 shadow root.
//!
//! A seek can also hand the nodes of its `full` operation over as a binary frame
//! ([`Player::seek_frame`], then [`Player::frame_ints`] and [`Player::frame_text`]; `nodes` is
//! then `null`): integers and one text of strings, read without a JSON parse (see `ops::Tape`).
//!
//! Panel entries ([`Player::entries`]) describe what happened besides the DOM (console, errors,
//! network, performance, environment, freezes, navigation, clicks) as JSON objects, see
//! [`entries`].
//!
//! Modules:
//! - [`player`]: the [`Player`], the API `viewer/static/*.js` calls through wasm-bindgen.
//! - [`replay`]: [`ReplayState`] (a model at one position, moved forward event by event; the
//!   player's position, the scout's and every keyframe are one each) and the loaded events.
//! - `seek`: moving a state to any event index (nearest keyframe, subtrees removed later left
//!   out, deferred node lists) and the whole-document description a seek answers.
//! - [`keyframes`]: when to keep a clone of the scout's state, and the clones kept.
//! - `ops`: the operations written for `static/render.js` (JSON, and the binary frame).
//! - [`entries`]: the panel entries.
//! - [`sanitize`] (`replay_protocol::sanitize`, shared with the snapshot API): the rules every
//!   node, attribute and stylesheet passes on its way out.
//! - [`json`]: small JSON writing helpers.

pub mod entries;
pub mod json;
pub mod keyframes;
pub mod network;
mod ops;
pub mod player;
pub mod replay;
mod seek;

/// The sanitizer rules live in the protocol crate, shared with the snapshot API.
pub use replay_protocol::sanitize;

pub use player::Player;
pub use replay::ReplayState;

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::codec;
    use replay_protocol::test_util::el;
    use replay_protocol::{AddedSubtree, Batch, Event, Mutation, Snapshot};
    use replay_protocol::{Dom, EventData, Timeline};
    use replay_protocol::{Node, NodeKind};

    fn session() -> Timeline {
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = session_events();
        Timeline::from_batches(vec![b])
    }

    fn session_events() -> Vec<Event> {
        vec![
            Event {
                t: 0,
                data: EventData::Snapshot(Snapshot {
                    nodes: vec![
                        Node { id: 1, parent: 0, kind: NodeKind::Document },
                        el(2, 1, "html", &[]),
                        el(3, 2, "body", &[("onload", "alert(1)")]),
                        el(4, 3, "script", &[]),
                        Node { id: 5, parent: 4, kind: NodeKind::Text("alert(2)".into()) },
                        el(6, 3, "a", &[("href", "javascript:alert(3)")]),
                    ],
                    scroll_x: 0,
                    scroll_y: 0,
                }),
            },
            Event {
                t: 10,
                data: EventData::Mutation(Mutation {
                    adds: vec![
                        AddedSubtree { parent: 3, next: 0, nodes: vec![el(7, 3, "p", &[("class", "x")])] },
                        AddedSubtree {
                            parent: 4,
                            next: 0,
                            nodes: vec![Node { id: 8, parent: 4, kind: NodeKind::Text("more".into()) }],
                        },
                    ],
                    ..Mutation::default()
                }),
            },
        ]
    }

    #[test]
    fn full_frames_are_sanitized() {
        let mut p = Player::from_timeline(session());
        let full = p.seek(1000.0);
        assert!(!full.contains("alert"), "{full}");
        assert!(full.contains(sanitize::SCRIPT_PLACEHOLDER));
    }

    /// The nodes of a binary frame written back as the JSON node arrays of a `full` operation.
    fn frame_as_json(ints: &[u32], text: &str) -> String {
        let units: Vec<u16> = text.encode_utf16().collect();
        let mut ints = ints.iter().copied();
        let slice = |start: u32, len: u32| {
            let (start, len) = (start as usize, len as usize);
            String::from_utf16_lossy(units.get(start..start + len).unwrap_or_default())
        };
        let mut out = String::from("[");
        let mut json = ops::JsonNodes::new(&mut out);
        use ops::NodeOut;
        while let (Some(id), Some(parent), Some(kind)) = (ints.next(), ints.next(), ints.next()) {
            let mut next = || ints.next().unwrap_or(0);
            json.begin(id, parent, kind as u8);
            match kind {
                1 => {
                    for _ in 0..3 {
                        let (a, b) = (next(), next());
                        json.str(&slice(a, b));
                    }
                }
                2 => {
                    let (a, b) = (next(), next());
                    json.str(&slice(a, b));
                    json.num(next());
                    let count = next();
                    json.attrs_begin();
                    for _ in 0..count {
                        let (a, b, c, d) = (next(), next(), next(), next());
                        json.attr(&slice(a, b), &slice(c, d));
                    }
                    json.attrs_end();
                }
                3 | 4 => {
                    let (a, b) = (next(), next());
                    json.str(&slice(a, b));
                }
                _ => {}
            }
            json.end();
        }
        out.push(']');
        out
    }

    #[test]
    fn a_binary_frame_holds_the_same_nodes_as_the_json_description() {
        let mut events = session_events();
        if let EventData::Snapshot(s) = &mut events[0].data {
            s.nodes.push(Node { id: 9, parent: 3, kind: NodeKind::Text("caf\u{e9} \u{1f600} \"q\" end".into()) });
            s.nodes.push(el(10, 3, "svg", &[("viewBox", "0 0 1 1")]));
            s.nodes.push(Node { id: 11, parent: 10, kind: NodeKind::Comment("\u{1f600}".into()) });
        }
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = events;
        let mut p = Player::from_timeline(Timeline::from_batches(vec![b]));
        let json = p.seek(2000.0);
        let framed = p.seek_frame(2000.0);
        let (ints, text) = (p.frame_ints(), p.frame_text());
        let nodes = frame_as_json(&ints, &text);
        assert!(nodes.contains("\u{1f600}") && !nodes.contains("alert"), "{nodes}");
        assert_eq!(json, framed.replacen(",null]", &format!(",{nodes}]"), 1));
        assert!(p.frame_ints().is_empty(), "a frame is taken once");
        p.seek_frame(2000.0);
        let again = frame_as_json(&p.frame_ints(), &p.frame_text());
        assert_eq!(again, nodes, "the next frame starts afresh");
    }

    #[test]
    fn a_frame_not_recorded_shows_its_placeholder_until_a_document_is_recorded_under_it() {
        use replay_protocol::FrameInfo;
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = session_events();
        let add = |t, parent, nodes| Event {
            t,
            data: EventData::Mutation(Mutation {
                adds: vec![AddedSubtree { parent, next: 0, nodes }],
                ..Mutation::default()
            }),
        };
        b.events.push(add(20, 3, vec![el(50, 3, "iframe", &[("src", "http://b.example/w")])]));
        b.events.push(Event {
            t: 21,
            data: EventData::Frame(FrameInfo { id: 50, url: "http://b.example/w".into(), width: 300, height: 150 }),
        });
        b.events.push(add(30, 50, vec![Node { id: 1 << 31, parent: 50, kind: NodeKind::Document }]));
        b.events.push(Event {
            t: 40,
            data: EventData::Mutation(Mutation { removes: vec![1 << 31], ..Mutation::default() }),
        });
        let op = r#"["frame",50,"Cross-origin frame not recorded: http://b.example/w (300×150)"]"#;
        let mut p = Player::from_timeline(Timeline::from_batches(vec![b]));
        assert!(p.seek(1025.0).contains(op), "placeholder");
        assert!(!p.seek(1035.0).contains("\"frame\""), "a recorded document instead");
        assert!(p.seek(1045.0).contains(op), "the document went: the placeholder again");
        p.seek(1020.5);
        assert_eq!(p.advance(1021.0), format!("[{op}]"), "playing forward");
    }

    #[test]
    fn fonts_added_through_font_face_replay_as_rules_forward_and_after_a_seek() {
        use replay_protocol::FontAdded;
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = session_events();
        b.events.push(Event {
            t: 20,
            data: EventData::Font(FontAdded {
                family: "Fancy".into(),
                url: String::new(),
                data: b"wOF2".to_vec(),
                style: "italic".into(),
                weight: String::new(),
                stretch: String::new(),
                unicode_range: String::new(),
                display: String::new(),
            }),
        });
        let op = r#"["font","@font-face{font-family:\"Fancy\";src:url(\"data:font/woff2;base64,d09GMg==\");font-style:italic}"]"#;
        let mut p = Player::from_timeline(Timeline::from_batches(vec![b]));
        assert!(!p.seek(1015.0).contains("\"font\""), "not yet");
        assert_eq!(p.advance(1025.0), format!("[{op}]"), "playing forward");
        assert!(p.seek(1030.0).contains(op), "after a seek");
    }

    #[test]
    fn canvas_frames_replay_the_latest_at_or_before_the_position() {
        use replay_protocol::CanvasFrame;
        let frame = |t, data: &[u8], mime: &str| Event {
            t,
            data: EventData::Canvas(CanvasFrame { id: 7, mime: mime.into(), data: data.to_vec(), width: 4, height: 2 }),
        };
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = session_events();
        b.events.push(frame(20, b"foo", "image/png"));
        b.events.push(frame(30, b"fo", "image/webp"));
        b.events.push(frame(40, b"<svg onload=alert(1)>", "image/svg+xml"));
        let mut p = Player::from_timeline(Timeline::from_batches(vec![b]));
        assert!(!p.seek(1015.0).contains("canvas"), "no frame yet");
        assert!(p.seek(1025.0).contains(r#"["canvas",7,"image/png","Zm9v",4,2]"#));
        let later = p.seek(1035.0);
        assert!(later.contains(r#"["canvas",7,"image/webp","Zm8=",4,2]"#) && !later.contains("Zm9v"), "{later}");
        assert!(p.seek(1025.0).contains("Zm9v"), "seeking back shows the earlier frame");
        assert_eq!(p.advance(1035.0), r#"[["canvas",7,"image/webp","Zm8=",4,2]]"#);
        assert_eq!(p.advance(1045.0), "[]", "a frame of another type is not drawn");
        assert!(p.seek(1045.0).contains("Zm8="), "nor does it replace the last drawable one");
    }

    #[test]
    fn playing_forward_emits_ops_and_drops_script_children() {
        let mut p = Player::from_timeline(session());
        p.seek(1000.0);
        let ops = p.advance(1010.0);
        assert_eq!(ops, r#"[["add",3,0,[[7,3,2,"p",0,["class","x"]]]]]"#);
        assert_eq!(p.seek(1000.0).matches("\"p\"").count(), 0, "seeking back rebuilds the earlier document");
    }

    #[test]
    fn nodes_the_model_refuses_are_not_drawn_and_changes_follow_the_models_node() {
        use replay_protocol::AttrChange;
        // An addition whose root names itself as its parent is refused by the model with its
        // subtree, which holds a `<meta>` under the id of the page's `<a>` (6); then an
        // attribute change of 6 that only a `<meta>` would take as a refresh.
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = session_events();
        b.events.push(Event {
            t: 20,
            data: EventData::Mutation(Mutation {
                adds: vec![
                    AddedSubtree {
                        parent: 9,
                        next: 0,
                        nodes: vec![
                            el(9, 9, "span", &[]),
                            el(6, 9, "meta", &[("content", "0;url=https://evil.example/")]),
                        ],
                    },
                    // What the model takes is drawn as before.
                    AddedSubtree { parent: 3, next: 0, nodes: vec![el(20, 0, "em", &[]), el(21, 20, "b", &[])] },
                ],
                attrs: vec![AttrChange { id: 6, name: "http-equiv".into(), value: Some("refresh".into()) }],
                ..Default::default()
            }),
        });
        let mut p = Player::from_timeline(Timeline::from_batches(vec![b]));
        p.seek(1015.0);
        let ops = p.advance(1025.0);
        assert!(!ops.contains("\"meta\"") && !ops.contains("\"span\""), "refused nodes drawn: {ops}");
        assert!(!ops.contains("evil.example"), "{ops}");
        assert!(ops.contains(r#"[20,3,2,"em",0,[]]"#) && ops.contains(r#"[21,20,2,"b",0,[]]"#), "{ops}");
    }

    /// A session of `n` mutations that each add one paragraph of 3,000 text nodes (enough work
    /// per event for keyframes to be taken).
    fn long_session(n: u32) -> Timeline {
        let mut b = Batch::new("s", "p", 0, 0);
        b.events.push(Event {
            t: 0,
            data: EventData::Snapshot(Snapshot {
                nodes: vec![Node { id: 1, parent: 0, kind: NodeKind::Document }, el(2, 1, "html", &[])],
                scroll_x: 0,
                scroll_y: 0,
            }),
        });
        let mut next = 3;
        for i in 0..n {
            let root = next;
            let mut nodes = vec![el(root, 2, "p", &[])];
            for _ in 0..3_000 {
                next += 1;
                nodes.push(Node { id: next, parent: root, kind: NodeKind::Text("x".into()) });
            }
            next += 1;
            b.events.push(Event {
                t: 100 * (i + 1),
                data: EventData::Mutation(Mutation {
                    adds: vec![AddedSubtree { parent: 2, next: 0, nodes }],
                    ..Mutation::default()
                }),
            });
        }
        Timeline::from_batches(vec![b])
    }

    #[test]
    fn seeking_back_starts_from_a_keyframe_and_gives_the_same_document() {
        let mut p = Player::from_timeline(long_session(20));
        let end = p.seek(1_000_000.0);
        assert_eq!(p.keyframe_count(), 0, "a seek takes no keyframes itself");
        while p.build_keyframes(5_000) {}
        assert!(p.keyframe_count() > 1, "keyframes taken in idle time: {}", p.keyframe_count());
        let middle = p.seek(1_000.0);
        assert_eq!(middle.matches("\"p\"").count(), 10);
        let mut fresh = Player::from_timeline(long_session(20));
        assert_eq!(fresh.seek(1_000.0), middle, "a keyframe seek equals a seek from the start");
        assert_eq!(p.seek(1_000_000.0), end);
    }

    #[test]
    fn keyframe_seek_applies_only_events_after_the_keyframe() {
        let mut p = Player::from_timeline(long_session(40));
        p.seek(1_000_000.0);
        while p.build_keyframes(5_000) {}
        p.seek(0.0);
        let best = p.keyframes().best_for(30).map(|k| k.cursor()).unwrap_or(0);
        assert!(best > 10, "a keyframe late in the session exists: {best}");
        p.move_to(30);
        assert_eq!(p.cursor(), 30);
        assert_eq!(p.dom().count_elements("p"), 29);
    }

    #[test]
    fn a_long_seek_leaves_out_subtrees_removed_later_and_ends_in_the_same_document() {
        use replay_protocol::{AttrChange, TextChange};
        let li = |id: u32, text: &str| {
            vec![
                el(id, 0, "li", &[("class", "row")]),
                Node { id: id + 1, parent: id, kind: NodeKind::Text(text.into()) },
            ]
        };
        let mut b = Batch::new("s", "p", 0, 0);
        b.events = vec![session_events().remove(0)];
        let mutation = |m: Mutation| Event { t: 1, data: EventData::Mutation(m) };
        // Render 10, 11, 12; re-render 20, 21 (a row placed before 11 first); change removed
        // and kept rows; re-render 30 before 21, which stays.
        let add = |nodes, next| AddedSubtree { parent: 3, next, nodes };
        b.events.push(mutation(Mutation {
            adds: vec![add(li(10, "a"), 0), add(li(12, "c"), 0), add(li(14, "e"), 0)],
            ..Mutation::default()
        }));
        b.events.push(mutation(Mutation { adds: vec![add(li(16, "before"), 12)], ..Mutation::default() }));
        b.events.push(mutation(Mutation {
            attrs: vec![AttrChange { id: 10, name: "class".into(), value: Some("gone".into()) }],
            texts: vec![TextChange { id: 15, text: "E".into() }],
            ..Mutation::default()
        }));
        b.events.push(mutation(Mutation {
            removes: vec![10, 12, 14],
            adds: vec![add(li(22, "y"), 0), add(li(20, "x"), 22)],
            ..Mutation::default()
        }));
        b.events.push(mutation(Mutation {
            removes: vec![20],
            adds: vec![add(li(30, "z"), 22)],
            texts: vec![TextChange { id: 23, text: "Y".into() }],
            ..Mutation::default()
        }));
        let timeline = Timeline::from_batches(vec![b]);
        let mut reference = Dom::new();
        for e in &timeline.events {
            reference.apply(&e.data);
        }
        let mut p = Player::from_timeline(timeline);
        p.move_to(usize::MAX);
        let html = replay_protocol::html::document_html(p.dom());
        assert_eq!(html, replay_protocol::html::document_html(&reference));
        assert!(html.contains("before") && html.contains(">z<") && html.contains(">Y<"), "{html}");
    }

    #[test]
    fn keyframes_built_in_slices_continue_after_more_events_arrive() {
        let whole = long_session(30);
        let mut first = whole.clone();
        first.events.truncate(11);
        let mut p = Player::from_timeline(first);
        let mut slices = 0;
        while p.build_keyframes(3_001) {
            slices += 1;
        }
        assert!(slices >= 9, "one slice per budget: {slices}");
        let before = p.keyframe_count();
        for e in whole.events[11..].iter().cloned() {
            p.push_event(e);
        }
        while p.build_keyframes(100_000) {}
        assert!(p.keyframe_count() > before, "{before} -> {}", p.keyframe_count());
        let mut fresh = Player::from_timeline(long_session(30));
        assert_eq!(p.seek(2_500.0), fresh.seek(2_500.0));
    }

    #[test]
    fn batches_appended_in_pieces_play_like_one_load() {
        let mut whole = Batch::new("s", "p", 0, 1000);
        whole.events = session_events();
        let mut first = Batch::new("s", "p", 0, 1000);
        first.events = whole.events[..1].to_vec();
        let mut second = Batch::new("s", "p", 1, 1000);
        second.events = whole.events[1..].to_vec();
        let encode = |bs: &[&Batch]| {
            let bodies: Vec<Vec<u8>> = bs.iter().map(|b| codec::encode_batch(b).unwrap_or_default()).collect();
            codec::concat_encoded(bodies.iter().map(Vec::as_slice))
        };
        let mut streamed = Player::empty();
        assert_eq!(streamed.append(encode(&[&first])).ok(), Some(1));
        let first_frame = streamed.seek(1000.0);
        assert!(first_frame.contains("\"body\""));
        assert_eq!(streamed.append(encode(&[&second])).ok(), Some(1));
        let mut loaded = Player::new(encode(&[&whole])).ok().unwrap_or_else(Player::empty);
        assert_eq!(streamed.seek(2000.0), loaded.seek(2000.0));
        assert_eq!(streamed.end(), 1010.0);
    }

    /// Renders of 20 rows each (their node lists deferred on load), each replacing the last.
    fn rerenders() -> Batch {
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = vec![session_events().remove(0)];
        let mut rendered: Vec<u32> = Vec::new();
        for r in 0..4u32 {
            let ids: Vec<u32> = (0..20).map(|i| 100 + 1000 * r + 2 * i).collect();
            let adds = ids
                .iter()
                .map(|&id| AddedSubtree {
                    parent: 3,
                    next: 0,
                    nodes: vec![
                        el(id, 0, "li", &[("class", "row")]),
                        Node { id: id + 1, parent: id, kind: NodeKind::Text(format!("r{r} {id}")) },
                    ],
                })
                .collect();
            let removes = std::mem::replace(&mut rendered, ids);
            b.events.push(Event {
                t: 10 * (r + 1),
                data: EventData::Mutation(Mutation { removes, adds, ..Mutation::default() }),
            });
        }
        b
    }

    #[test]
    fn deferred_node_lists_play_like_decoded_ones() {
        let bytes = codec::concat_encoded(
            [codec::encode_batch_compact(rerenders()).unwrap_or_default().as_slice()].into_iter(),
        );
        let mut loaded = Player::new(bytes).ok().unwrap_or_else(Player::empty);
        assert!(loaded.deferred_count() >= 4, "the renders' lists are deferred");
        let mut decoded = Player::from_timeline(Timeline::from_batches(vec![rerenders()]));
        let end = loaded.seek(2000.0);
        assert!(end.contains("r3 3100") && !end.contains("r2"), "{end}");
        assert_eq!(end, decoded.seek(2000.0));
        assert!(loaded.deferred_count() >= 3, "the renders replaced are never decoded");
        assert_eq!(loaded.seek(1025.0), decoded.seek(1025.0), "a seek back decodes what it needs");
        while loaded.build_keyframes(1_000) {}
        assert_eq!(loaded.seek(1015.0), decoded.seek(1015.0));
        loaded.seek(1000.0);
        decoded.seek(1000.0);
        assert_eq!(loaded.advance(2000.0), decoded.advance(2000.0), "playing decodes each list it applies");
    }

    #[test]
    fn entries_describe_console_errors_network_and_freezes_as_text() {
        use replay_protocol::{Console, ConsoleLevel, ErrorEvent, ErrorKind, Freeze, Network, RequestKind};
        let mut b = Batch::new("s", "p", 0, 5000);
        b.events = vec![
            Event {
                t: 1,
                data: EventData::Console(Console {
                    level: ConsoleLevel::Warn,
                    args: vec!["<img src=x onerror=alert(1)>".into()],
                    stack: String::new(),
                }),
            },
            Event {
                t: 2,
                data: EventData::Error(ErrorEvent {
                    kind: ErrorKind::Uncaught,
                    message: "boom".into(),
                    stack: "at f (app.js:1:2)".into(),
                    source: "app.js".into(),
                    line: 1,
                    column: 2,
                    count: 3,
                }),
            },
            Event {
                t: 3,
                data: EventData::Network(Network {
                    kind: RequestKind::Fetch,
                    method: "GET".into(),
                    url: "/api".into(),
                    status: 500,
                    duration: 20,
                    request_size: 0,
                    response_size: 10,
                    failed: false,
                    aborted: false,
                    error: String::new(),
                    request_headers: vec![],
                    response_headers: vec![],
                    request_body: String::new(),
                    response_body: String::new(),
                    failure: Default::default(),
                    timing: None,
                }),
            },
            Event { t: 4, data: EventData::Freeze(Freeze::Ended { duration: 2000, culprits: vec![] }) },
            Event { t: 5, data: EventData::Scroll(replay_protocol::Scroll { id: 0, x: 0, y: 1 }) },
        ];
        let p = Player::from_timeline(Timeline::from_batches(vec![b]));
        let all = p.entries(0);
        assert!(all.starts_with(r#"[{"i":0,"t":5001,"k":"console","level":"warn","stack":"","args":["<img"#), "{all}");
        assert!(all.contains(r#""k":"error","kind":"uncaught","message":"boom""#), "{all}");
        assert!(all.contains(r#""status":500"#), "{all}");
        assert!(all.contains(r#""k":"freeze","phase":"end","duration":2000,"scripts":[]"#), "{all}");
        assert_eq!(p.entries(3), r#"[{"i":3,"t":5004,"k":"freeze","phase":"end","duration":2000,"scripts":[]}]"#);
    }

    #[test]
    fn a_session_nested_far_deeper_than_the_model_allows_seeks_without_recursion() {
        // 50,000 levels: the model keeps the first MAX_DEPTH and refuses the rest; seeking and
        // describing the document walk iteratively, and the page gets the first
        // MAX_RENDER_DEPTH (deeper, Chromium's renderer crashes).
        let depth = 50_000u32;
        let mut nodes = vec![Node { id: 1, parent: 0, kind: NodeKind::Document }];
        nodes.extend((2..depth).map(|i| el(i, i - 1, "div", &[])));
        let mut b = Batch::new("s", "p", 0, 1000);
        b.events = vec![Event { t: 0, data: EventData::Snapshot(Snapshot { nodes, scroll_x: 0, scroll_y: 0 }) }];
        let mut p = Player::from_timeline(Timeline::from_batches(vec![b]));
        let full = p.seek(1000.0);
        let kept = replay_protocol::dom::MAX_DEPTH as usize + 1;
        assert_eq!(p.dom().len(), kept);
        assert!(p.dom().refused > 0);
        let rendered = crate::ops::MAX_RENDER_DEPTH as usize;
        assert_eq!(full.matches("\"div\"").count(), rendered, "the nodes the page can take are described");
    }
}
