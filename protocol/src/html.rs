//! Normalized HTML serialization of a [`Dom`].
//!
//! Follows the HTML fragment serialization algorithm (what `outerHTML` produces in Chromium), so
//! a test can compare the server's answer with the live page serialized by the browser, with two
//! normalizations: `<script>` elements are left out, and open shadow roots are written as
//! declarative `<template shadowrootmode="open">` before the element's light children.
//! The walk is iterative: hostile nesting cannot overflow the stack.
//!
//! Recordings are hostile, and what a browser's DOM can never hold cannot break the markup
//! out: an element or attribute whose name no parser could have made (white space, quotes,
//! `<`, `>`, `/`, `=`, controls) is left out, with an element's subtree; raw text (`<style>`
//! and the like) never closes its element early (`</` becomes `<\/`), and comment text never
//! closes its comment (`-->`, `--!>` and a leading `>` or `->` are escaped).

use crate::batch::{Namespace, NodeId};
use crate::dom::{Dom, DomKind};

const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input", "keygen", "link",
    "meta", "param", "source", "track", "wbr",
];
const RAW_TEXT: &[&str] = &["style", "script", "xmp", "iframe", "noembed", "noframes", "plaintext", "noscript"];

/// The whole document as normalized HTML (doctype included), or an empty string before the
/// first snapshot.
pub fn document_html(dom: &Dom) -> String {
    let mut out = String::new();
    if dom.document() != 0 {
        for (id, _) in dom.children(dom.document()) {
            write_node(dom, id, &mut out);
        }
    }
    out
}

/// One node and its subtree as normalized HTML.
pub fn node_html(dom: &Dom, id: NodeId) -> String {
    let mut out = String::new();
    write_node(dom, id, &mut out);
    out
}

enum Step {
    Open(NodeId),
    Close(NodeId),
    Raw(&'static str),
}

fn is_script(kind: &DomKind) -> bool {
    matches!(kind, DomKind::Element { tag, ns: Namespace::Html | Namespace::Svg, .. } if tag.eq_ignore_ascii_case("script"))
}

fn write_node(dom: &Dom, root: NodeId, out: &mut String) {
    let mut stack = vec![Step::Open(root)];
    while let Some(step) = stack.pop() {
        let id = match step {
            Step::Open(id) => id,
            Step::Close(id) => {
                if let Some(DomKind::Element { tag, .. }) = dom.node(id).map(|n| &*n.kind) {
                    out.push_str("</");
                    out.push_str(tag);
                    out.push('>');
                }
                continue;
            }
            Step::Raw(s) => {
                out.push_str(s);
                continue;
            }
        };
        let Some(node) = dom.node(id) else { continue };
        match &*node.kind {
            DomKind::Document => push_children(dom, id, &mut stack),
            DomKind::Doctype { name, .. } => {
                out.push_str("<!DOCTYPE ");
                out.push_str(if valid_name(name) { name } else { "html" });
                out.push('>');
            }
            DomKind::Text(t) => {
                let raw = dom.node(node.parent).is_some_and(|p| {
                    matches!(&*p.kind, DomKind::Element { tag, ns: Namespace::Html, .. } if RAW_TEXT.iter().any(|r| r.eq_ignore_ascii_case(tag)))
                });
                if raw { push_raw_text(t, out) } else { escape(t, false, out) }
            }
            DomKind::Comment(t) => {
                out.push_str("<!--");
                push_comment_text(t, out);
                out.push_str("-->");
            }
            DomKind::ShadowRoot => {
                out.push_str("<template shadowrootmode=\"open\">");
                stack.push(Step::Raw("</template>"));
                push_children(dom, id, &mut stack);
            }
            kind @ DomKind::Element { tag, ns, attrs, .. } => {
                if is_script(kind) || !valid_name(tag) {
                    continue;
                }
                out.push('<');
                out.push_str(tag);
                for a in attrs.iter().filter(|a| valid_name(&a.name)) {
                    out.push(' ');
                    out.push_str(&a.name);
                    out.push_str("=\"");
                    escape(&a.value, true, out);
                    out.push('"');
                }
                out.push('>');
                if *ns == Namespace::Html && VOID.iter().any(|v| v.eq_ignore_ascii_case(tag)) {
                    continue;
                }
                stack.push(Step::Close(id));
                // Light children first on the stack so the shadow root (pushed last) pops first.
                let shadow: Vec<NodeId> = dom
                    .children(id)
                    .filter(|(_, c)| matches!(*c.kind, DomKind::ShadowRoot))
                    .map(|(cid, _)| cid)
                    .collect();
                // A same-origin iframe's document is a child in the model but not in `outerHTML`.
                let light: Vec<NodeId> = dom
                    .children(id)
                    .filter(|(_, c)| !matches!(*c.kind, DomKind::ShadowRoot | DomKind::Document))
                    .map(|(cid, _)| cid)
                    .collect();
                stack.extend(light.into_iter().rev().map(Step::Open));
                stack.extend(shadow.into_iter().rev().map(Step::Open));
            }
        }
    }
}

fn push_children(dom: &Dom, id: NodeId, stack: &mut Vec<Step>) {
    let children: Vec<NodeId> = dom.children(id).map(|(cid, _)| cid).collect();
    stack.extend(children.into_iter().rev().map(Step::Open));
}

/// True when `name` is a tag or attribute name a browser's DOM can hold and that cannot end
/// the tag it is written in.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\'' | '/' | '='))
}

/// Raw text (`<style>`, ...) as is, except that it can never close its element: every `</`
/// is written `<\/`.
fn push_raw_text(t: &str, out: &mut String) {
    let mut rest = t;
    while let Some(at) = rest.find("</") {
        out.push_str(&rest[..at]);
        out.push_str("<\\/");
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
}

/// Comment text as is, except what would end the comment early: a leading `>` or `->`, and
/// `-->` or `--!>` anywhere (their `>` becomes `&gt;`).
fn push_comment_text(t: &str, out: &mut String) {
    let mut escaped = t.replace("-->", "--&gt;").replace("--!>", "--!&gt;");
    if escaped.starts_with('>') || escaped.starts_with("->") {
        let at = escaped.find('>').unwrap_or(0);
        escaped.replace_range(at..=at, "&gt;");
    }
    out.push_str(&escaped);
}

/// Escapes text the way the HTML serialization algorithm does (`<` and `>` are escaped in
/// attribute values too, as current Chromium does).
pub fn escape(s: &str, attribute: bool, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{EventData, Node, NodeKind, Snapshot};
    use crate::test_util::el;

    #[test]
    fn serializes_like_outer_html_without_scripts() {
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot {
            nodes: vec![
                Node { id: 1, parent: 0, kind: NodeKind::Document },
                Node {
                    id: 2,
                    parent: 1,
                    kind: NodeKind::Doctype { name: "html".into(), public_id: String::new(), system_id: String::new() },
                },
                el(3, 1, "html", &[("lang", "en")]),
                el(4, 3, "head", &[]),
                el(5, 4, "style", &[]),
                Node { id: 6, parent: 5, kind: NodeKind::Text("a > b { color: red }".into()) },
                el(7, 3, "body", &[("data-x", "a\"<b>&\u{a0}")]),
                el(8, 7, "script", &[]),
                Node { id: 9, parent: 8, kind: NodeKind::Text("alert(1)".into()) },
                el(10, 7, "br", &[]),
                Node { id: 11, parent: 7, kind: NodeKind::Text("1 < 2 & 3".into()) },
                Node { id: 12, parent: 7, kind: NodeKind::Comment(" c ".into()) },
                el(13, 7, "x-card", &[]),
                Node { id: 14, parent: 13, kind: NodeKind::ShadowRoot },
                el(15, 14, "slot", &[]),
                Node { id: 16, parent: 13, kind: NodeKind::Text("light".into()) },
            ],
            scroll_x: 0,
            scroll_y: 0,
        }));
        assert_eq!(
            document_html(&dom),
            "<!DOCTYPE html><html lang=\"en\"><head><style>a > b { color: red }</style></head>\
             <body data-x=\"a&quot;&lt;b&gt;&amp;&nbsp;\"><br>1 &lt; 2 &amp; 3<!-- c -->\
             <x-card><template shadowrootmode=\"open\"><slot></slot></template>light</x-card></body></html>"
        );
    }

    #[test]
    fn hostile_names_and_texts_cannot_break_out_of_the_markup() {
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot {
            nodes: vec![
                Node { id: 1, parent: 0, kind: NodeKind::Document },
                Node {
                    id: 2,
                    parent: 1,
                    kind: NodeKind::Doctype {
                        name: "html><img src=x onerror=alert(1)".into(),
                        public_id: String::new(),
                        system_id: String::new(),
                    },
                },
                el(3, 1, "html", &[]),
                el(4, 3, "body", &[("x><img src=x onerror=alert(2)", "1"), ("title", "ok")]),
                el(5, 4, "img src=x onerror=alert(3)", &[]),
                Node { id: 6, parent: 5, kind: NodeKind::Text("inside a bad tag".into()) },
                el(7, 4, "style", &[]),
                Node { id: 8, parent: 7, kind: NodeKind::Text("a{}</style><img src=x onerror=alert(4)>".into()) },
                Node { id: 9, parent: 4, kind: NodeKind::Comment("--><img src=x onerror=alert(5)>".into()) },
                Node { id: 10, parent: 4, kind: NodeKind::Comment("><img src=x onerror=alert(6)>".into()) },
                Node { id: 11, parent: 4, kind: NodeKind::Comment("x--!><img>".into()) },
            ],
            scroll_x: 0,
            scroll_y: 0,
        }));
        let html = document_html(&dom);
        assert_eq!(
            html,
            "<!DOCTYPE html><html><body title=\"ok\"><style>a{}<\\/style><img src=x onerror=alert(4)></style>\
             <!----&gt;<img src=x onerror=alert(5)>--><!--&gt;<img src=x onerror=alert(6)>--><!--x--!&gt;<img>--></body></html>"
        );
        // What a browser would parse out of it: no element but html, head, body and style.
        for (i, part) in html.split("<!--").enumerate().skip(1) {
            assert_eq!(part.matches("-->").count(), 1, "comment {i} ends once: {part}");
        }
    }

    #[test]
    fn iframe_documents_are_left_out_like_outer_html_does() {
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot {
            nodes: vec![
                Node { id: 1, parent: 0, kind: NodeKind::Document },
                el(2, 1, "html", &[]),
                el(3, 2, "body", &[]),
                el(4, 3, "iframe", &[]),
                Node { id: 5, parent: 4, kind: NodeKind::Document },
                el(6, 5, "html", &[]),
                el(7, 6, "body", &[("class", "inner")]),
            ],
            scroll_x: 0,
            scroll_y: 0,
        }));
        assert_eq!(document_html(&dom), "<html><body><iframe></iframe></body></html>");
        assert_eq!(node_html(&dom, 5), "<html><body class=\"inner\"></body></html>");
    }
}
