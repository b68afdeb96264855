//! Fuzz target on stable Rust: hostile DOM models through the snapshot serializer
//! (`html::document_html`), parsed back by a real HTML parser (html5ever), with scripting on
//! and off (`<noscript>` is raw text to the one, markup to the other).
//!
//! The models are random trees over a hostile alphabet: tag names such as `script` in every
//! case and namespace, `svg`/`math` foreign content and its integration points, raw-text and
//! RCDATA elements, `<noscript>`, `<template>`, `<iframe srcdoc>`, `<base>`, `<meta>`;
//! attribute names such as `on*`, URL attributes, `srcdoc`, `http-equiv`, `referrerpolicy`,
//! SVG animation targets; texts, values and comments that try to close what they are in
//! (`</style>`, `-->`, `<![CDATA[`, `</noscript>`, quotes). What the parser builds must hold no
//! script-capable construct (see [`check_safe`]), and nothing recorded as text, comment or
//! attribute value may have become markup: every element and attribute of the parse comes from
//! the model (see [`check_no_breakout`]). Frame documents in the models come out as the
//! `srcdoc` of their `<iframe>`: each is parsed too and held to the same checks.
//!
//! `cargo test -p replay-protocol --test html_fuzz` runs 2,000 cases; a longer run:
//! `REPLAY_HTML_FUZZ_CASES=200000 cargo test --release -p replay-protocol --test html_fuzz`.

use std::collections::{HashMap, HashSet};

use html5ever::tendril::TendrilSink;
use html5ever::{ParseOpts, parse_document, tree_builder::TreeBuilderOpts};
use markup5ever_rcdom::{Handle, NodeData, RcDom};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use replay_protocol::batch::{Attr, Namespace, Node, NodeKind};
use replay_protocol::dom::{Dom, DomKind};
use replay_protocol::html::document_html;
use replay_protocol::test_util::{page_nodes, snapshot};

const TAGS: &[&str] = &[
    "script",
    "SCRIPT",
    "ScRiPt",
    "svg",
    "math",
    "style",
    "STYLE",
    "noscript",
    "template",
    "iframe",
    "textarea",
    "title",
    "xmp",
    "noembed",
    "noframes",
    "plaintext",
    "object",
    "embed",
    "base",
    "meta",
    "link",
    "a",
    "area",
    "form",
    "button",
    "input",
    "img",
    "image",
    "p",
    "div",
    "table",
    "td",
    "select",
    "option",
    "foreignObject",
    "desc",
    "annotation-xml",
    "mi",
    "mtext",
    "use",
    "animate",
    "set",
    "frame",
    "frameset",
    "body",
    "head",
    "html",
    "svg:script",
    "math:script",
    "x<y",
    "a b",
    "1abc",
    "-x",
    "_",
    "!--",
    "?x",
    "b",
    "font",
    "portal",
    "audio",
    "details",
    "marquee",
    "x-y",
    "custom-el",
];
const ATTR_NAMES: &[&str] = &[
    "onclick",
    "ONLOAD",
    "on",
    "onerror",
    "href",
    "HREF",
    "src",
    "xlink:href",
    "action",
    "formaction",
    "srcdoc",
    "http-equiv",
    "name",
    "content",
    "referrerpolicy",
    "attributeName",
    "to",
    "values",
    "from",
    "data",
    "style",
    "srcset",
    "target",
    "title",
    "id",
    "class",
    "encoding",
    "color",
    "\"><img",
    "a=b",
    "x y",
    "/",
    "xmlns",
    "xmlns:xlink",
    "is",
    "type",
    "background",
    "poster",
    "ping",
    "cite",
    "codebase",
];
const STRINGS: &[&str] = &[
    "javascript:alert(1)",
    " JaVa\tScript:alert(1)",
    "java\nscript:alert(1)",
    "vbscript:x",
    "data:text/html,<script>alert(1)</script>",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "DATA:application/xhtml+xml,x",
    "refresh",
    " Refresh",
    "0;url=javascript:alert(1)",
    "referrer",
    "unsafe-url",
    "href",
    "onmouseover",
    "text/html",
    "x",
    "page.html",
    "https://example.test/a?b=1&c=2",
    "</style><script>alert(1)</script>",
    "</noscript><img src=x onerror=alert(1)>",
    "</textarea><img src=x onerror=alert(1)>",
    "</title><img src=x onerror=alert(1)>",
    "</xmp><img src=x onerror=alert(1)>",
    "</iframe><img src=x onerror=alert(1)>",
    "<img src=x onerror=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<!--",
    "-->",
    "--!>",
    ">",
    "->",
    "<![CDATA[",
    "]]>",
    "<![CDATA[<img src=x onerror=alert(1)>]]>",
    "\"",
    "'",
    "&",
    "&lt;",
    "&#x3c;script&#x3e;",
    "<",
    "</",
    "<?x>",
    "<!DOCTYPE html>",
    "a > b { color: red }",
    "url(javascript:alert(1))",
    "\u{a0}",
    "é",
];

/// One generated node: its parent (an index into the elements so far) and what it is.
#[derive(Debug, Clone)]
enum Gen {
    Element {
        tag: &'static str,
        ns: u8,
        attrs: Vec<(&'static str, String)>,
    },
    Text(String),
    Comment(String),
    /// A frame's document (written as its `<iframe>`'s `srcdoc` when its parent is one).
    Frame,
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        select(STRINGS).prop_map(str::to_owned),
        (select(STRINGS), select(STRINGS)).prop_map(|(a, b)| format!("{a}{b}")),
        (select(STRINGS), select(TAGS), select(STRINGS)).prop_map(|(a, t, b)| format!("{a}</{t}>{b}")),
    ]
}

fn gen_node() -> impl Strategy<Value = Gen> {
    prop_oneof![
        5 => (select(TAGS), 0u8..3, prop::collection::vec((select(ATTR_NAMES), hostile_string()), 0..4))
            .prop_map(|(tag, ns, attrs)| Gen::Element { tag, ns, attrs }),
        3 => hostile_string().prop_map(Gen::Text),
        1 => hostile_string().prop_map(Gen::Comment),
        1 => Just(Gen::Frame),
    ]
}

/// The model: a page whose body holds the generated nodes.
fn model(gens: &[(Index, Gen)]) -> Dom {
    let mut nodes = page_nodes(&[], []);
    // The document, `<html>`, `<head>` and `<body>` take children too.
    let mut parents = vec![1, 2, 3, 4];
    for (i, (parent, g)) in gens.iter().enumerate() {
        let id = 10 + i as u32;
        let parent = parents[parent.index(parents.len())];
        let kind = match g {
            Gen::Element { tag, ns, attrs } => {
                parents.push(id);
                let ns = [Namespace::Html, Namespace::Svg, Namespace::MathMl][usize::from(*ns)];
                let attrs = attrs.iter().map(|(n, v)| Attr { name: (*n).into(), value: v.clone() }).collect();
                NodeKind::Element { tag: (*tag).into(), ns, attrs }
            }
            Gen::Text(t) => NodeKind::Text(t.clone()),
            Gen::Comment(t) => NodeKind::Comment(t.clone()),
            Gen::Frame => {
                parents.push(id);
                NodeKind::Document
            }
        };
        nodes.push(Node { id, parent, kind });
    }
    let mut dom = Dom::new();
    dom.apply(&snapshot(nodes));
    dom
}

fn parse(html: &str, scripting: bool) -> RcDom {
    let opts = ParseOpts {
        tree_builder: TreeBuilderOpts { scripting_enabled: scripting, ..TreeBuilderOpts::default() },
        ..ParseOpts::default()
    };
    parse_document(RcDom::default(), opts).one(html)
}

/// Every node of a parse, template contents included (iteratively).
fn all_nodes(dom: &RcDom) -> Vec<Handle> {
    let mut out = Vec::new();
    let mut stack = vec![dom.document.clone()];
    while let Some(node) = stack.pop() {
        stack.extend(node.children.borrow().iter().cloned());
        if let NodeData::Element { template_contents, .. } = &node.data
            && let Some(contents) = template_contents.borrow().as_ref()
        {
            stack.push(contents.clone());
        }
        out.push(node);
    }
    out
}

/// As a browser reads a URL: ASCII white space and controls anywhere are ignored, any case.
fn script_url(value: &str) -> bool {
    let v: String = value.chars().filter(|c| *c > ' ').collect::<String>().to_ascii_lowercase();
    ["javascript:", "vbscript:", "data:text/html", "data:image/svg", "data:application"]
        .iter()
        .any(|s| v.starts_with(s))
}

const URL_ATTRS: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "data",
    "poster",
    "background",
    "cite",
    "longdesc",
    "ping",
    "srcset",
    "imagesrcset",
];

/// Attribute name as a lower-case qualified name (`xlink:href` on SVG elements too).
fn attr_name(a: &html5ever::Attribute) -> String {
    match &a.name.prefix {
        Some(p) if !p.is_empty() => format!("{}:{}", &**p, &*a.name.local).to_ascii_lowercase(),
        _ => str::to_ascii_lowercase(&a.name.local),
    }
}

/// No script-capable construct in the parse.
fn check_safe(parsed: &RcDom, html: &str) -> Result<(), TestCaseError> {
    for node in all_nodes(parsed) {
        let NodeData::Element { name, attrs, .. } = &node.data else { continue };
        let tag = str::to_ascii_lowercase(&name.local);
        prop_assert!(tag != "script", "a script element in {html}");
        let attrs = attrs.borrow();
        let value_of = |n: &str| attrs.iter().find(|a| attr_name(a) == n).map(|a| a.value.to_string());
        for a in attrs.iter() {
            let n = attr_name(a);
            let local = str::to_ascii_lowercase(&a.name.local);
            let v = a.value.to_string();
            // The serializer's own `srcdoc` (a frame's document): safe when what it parses to is.
            if tag == "iframe" && n == "srcdoc" {
                for scripting in [true, false] {
                    check_safe(&parse(&v, scripting), &v)?;
                }
                continue;
            }
            let bad = n.starts_with("on")
                || n == "srcdoc"
                || n == "referrerpolicy"
                || (URL_ATTRS.contains(&local.as_str()) && script_url(&v))
                || (matches!(tag.as_str(), "object" | "embed") && matches!(n.as_str(), "data" | "src"))
                || (tag == "base" && matches!(n.as_str(), "href" | "target"))
                || (n == "attributename" && {
                    let t = v.trim().to_ascii_lowercase();
                    matches!(t.as_str(), "href" | "xlink:href" | "src") || t.starts_with("on")
                })
                || (matches!(n.as_str(), "values" | "to" | "from" | "by" | "style")
                    && v.chars().filter(|c| *c > ' ').collect::<String>().to_ascii_lowercase().contains("javascript:"));
            prop_assert!(!bad, "<{tag} {n}={v:?}> survived in {html}");
        }
        if tag == "meta" {
            let refresh = value_of("http-equiv").is_some_and(|v| v.trim().eq_ignore_ascii_case("refresh"));
            let referrer = value_of("name").is_some_and(|v| v.trim().eq_ignore_ascii_case("referrer"));
            prop_assert!(!refresh && !referrer, "a meta refresh or referrer policy survived in {html}");
        }
    }
    Ok(())
}

/// Elements a parser makes up on its own: the document's frame, table parts, `</p>` and
/// `</br>` without a start, `<image>` read as `<img>`.
const IMPLIED: &[&str] = &["html", "head", "body", "tbody", "tr", "colgroup", "p", "br", "img"];
/// Elements the adoption agency algorithm may clone.
const FORMATTING: &[&str] =
    &["a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"];

/// Nothing recorded became markup: every element of the parse is one of the model's (no more
/// of each than the model has, except what a parser makes up or clones), every attribute is one
/// of the model's with its value, and there are no more comments than the model has.
fn check_no_breakout(model: &Dom, parsed: &RcDom, html: &str) -> Result<(), TestCaseError> {
    let mut tags: HashMap<String, usize> = HashMap::new();
    let mut attrs: HashSet<(String, String)> = HashSet::new();
    let mut comments = 0;
    let mut stack = vec![model.document()];
    while let Some(id) = stack.pop() {
        stack.extend(model.children(id).map(|(c, _)| c));
        match model.node(id).map(|n| &*n.kind) {
            Some(DomKind::Element { tag, attrs: a, .. }) => {
                *tags.entry(tag.to_ascii_lowercase()).or_default() += 1;
                attrs.extend(a.iter().map(|a| (a.name.to_ascii_lowercase(), a.value.clone())));
            }
            Some(DomKind::Comment(_)) => comments += 1,
            _ => {}
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut parsed_comments = 0;
    for node in all_nodes(parsed) {
        match &node.data {
            NodeData::Element { name, attrs: a, .. } => {
                let tag = str::to_ascii_lowercase(&name.local);
                *seen.entry(tag.clone()).or_default() += 1;
                let known = tags.get(&tag).copied().unwrap_or(0);
                let made_up = IMPLIED.contains(&tag.as_str()) || FORMATTING.contains(&tag.as_str());
                prop_assert!(made_up || seen[&tag] <= known, "<{tag}> not in the model (or too many) in {html}");
                for a in a.borrow().iter() {
                    let pair = (attr_name(a), a.value.to_string());
                    if tag == "iframe" && pair.0 == "srcdoc" {
                        // A frame's document, never a recorded `srcdoc`: nothing in it became
                        // markup either.
                        prop_assert!(pair.1.is_empty() || !attrs.contains(&pair), "a recorded srcdoc in {html}");
                        for scripting in [true, false] {
                            check_no_breakout(model, &parse(&pair.1, scripting), &pair.1)?;
                        }
                        continue;
                    }
                    prop_assert!(attrs.contains(&pair), "attribute {pair:?} of <{tag}> not in the model in {html}");
                }
            }
            NodeData::Comment { .. } => parsed_comments += 1,
            _ => {}
        }
    }
    prop_assert!(parsed_comments <= comments, "{parsed_comments} comments from {comments} in {html}");
    Ok(())
}

fn cases() -> u32 {
    std::env::var("REPLAY_HTML_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_html_of_hostile_models_parses_to_nothing_script_capable(
        gens in prop::collection::vec((any::<Index>(), gen_node()), 0..40)
    ) {
        let dom = model(&gens);
        let html = document_html(&dom);
        for scripting in [true, false] {
            let parsed = parse(&html, scripting);
            check_safe(&parsed, &html)?;
            check_no_breakout(&dom, &parsed, &html)?;
        }
    }
}
