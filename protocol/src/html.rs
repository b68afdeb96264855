//! Normalized HTML serialization of a [`Dom`]: what the snapshot API answers.
//!
//! Follows the HTML fragment serialization algorithm (what `outerHTML` produces in Chromium), so
//! a test can compare the server's answer with the live page serialized by the browser, with
//! these normalizations: `<script>` elements (any namespace) are left out, so are the
//! attributes the [`sanitize`] rules call hostile (event handlers, `srcdoc`, script URLs, meta
//! refresh, `<base href>`, `<object data>`, `referrerpolicy`, ...: exactly what the player
//! drops too), and open shadow roots are written as declarative `<template
//! shadowrootmode="open">` before the element's light children. The walk is iterative: hostile
//! nesting cannot overflow the stack.
//!
//! Recordings are hostile, and any API client may render the answer, so nothing recorded can
//! become markup: an element or attribute whose name no parser could have made (white space,
//! quotes, `<`, `>`, `/`, `=`, controls; a tag not starting with a letter) is left out, with an
//! element's subtree; raw text (`<style>` and the like) never closes its element early (`</`
//! becomes `<\/`), and comment text never closes its comment (`-->`, `--!>` and a leading `>` or
//! `->` are escaped). Text is written raw only where every parser reads raw text: never inside
//! `<svg>`/`<math>` (foreign content, where `<style>` is not raw), `<select>` or after a
//! `<frameset>` (where a parser ignores the `<style>` start tag), never in `<noscript>` (raw
//! only with scripting on). An element whose content may be raw text or RCDATA (`<style>`,
//! `<textarea>`, ... by name, in any namespace) is written with its text children only.
//! `protocol/tests/html_fuzz.rs` parses hostile models' output with html5ever and checks that no
//! script-capable construct survives.
//!
//! The snapshot carries what the viewer shows beyond the markup, so that it renders the same:
//! - a `<style>` whose sheet the CSSOM changed (CSS-in-JS `insertRule`, a sheet whose
//!   `@import`s the recorder inlined) is written with its sheet's text
//!   ([`crate::cssom::SheetState::text_for`]) instead of its text children;
//! - adopted sheets (`adoptedStyleSheets`) are written as `<style data-replay-adopted="">`
//!   elements, one per sheet in adoption order, last in the document's `<head>` or in the
//!   shadow root's template: where they come in the cascade, after the root's own sheets;
//! - a frame's recorded document is written inline, serialized by these same rules, as the
//!   `srcdoc` of its `<iframe>` (nested frames too, up to [`MAX_FRAME_DEPTH`]).
//!
//! Why `srcdoc`, which the player and these rules drop from a recording: a recorded `srcdoc` is
//! recorded (hostile) markup that nothing has cleaned, while this one is the output of this
//! serializer, with every rule above applied to the frame's document, then escaped as an
//! attribute value, so it can neither end the attribute nor hold a construct the top-level
//! document could not. It is the one representation a browser renders as the frame's
//! document with no script (a `<template>` beside the frame would render nothing), and the
//! answer's `sandbox` CSP applies to `srcdoc` documents too. The player does not need it: it
//! builds each frame's document through DOM APIs.

use crate::batch::{Namespace, NodeId};
use crate::cssom::MAX_REBUILD_WORK;
use crate::dom::{Dom, DomKind};
use crate::sanitize;

const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input", "keygen", "link",
    "meta", "param", "source", "track", "wbr",
];
const RAW_TEXT: &[&str] = &["style", "script", "xmp", "iframe", "noembed", "noframes", "plaintext", "noscript"];
/// Elements whose content a parser reads as text with character references.
const RCDATA: &[&str] = &["textarea", "title"];
/// Deepest frame whose document is written inline (the top-level document is at depth 0):
/// each level escapes the one below it once more, so the depth bounds the growth.
pub const MAX_FRAME_DEPTH: u32 = 8;

/// The whole document as normalized HTML (doctype included), or an empty string before the
/// first snapshot.
pub fn document_html(dom: &Dom) -> String {
    let mut out = String::new();
    if dom.document() != 0 {
        // One walk: what a parser has seen before (a `<frameset>`) matters to what follows.
        let mut css_work = MAX_REBUILD_WORK;
        write_node(dom, dom.document(), Context::default(), 0, &mut css_work, &mut out);
    }
    out
}

/// One node and its subtree as normalized HTML.
pub fn node_html(dom: &Dom, id: NodeId) -> String {
    let mut out = String::new();
    let mut css_work = MAX_REBUILD_WORK;
    write_node(dom, id, context_of(dom, id), 0, &mut css_work, &mut out);
    out
}

/// What a parser reading the output may know of a node's ancestors.
#[derive(Clone, Copy, Default)]
struct Context {
    /// An ancestor is named `svg` or `math` (foreign content, where `<style>` is not raw
    /// text) or `select` (where a parser ignores a `<style>` start tag and reads what follows
    /// as markup), in any namespace.
    odd: bool,
}

enum Step {
    Open(NodeId, Context),
    Close(NodeId),
    Raw(&'static str),
    /// The sheets adopted by this document or shadow root.
    Adopted(NodeId, Context),
}

/// True for elements whose content a parser may read as raw text or RCDATA, by tag name (any
/// namespace: a parser goes by the name it reads).
fn is_raw(tag: &str) -> bool {
    RAW_TEXT.iter().chain(RCDATA).any(|r| r.eq_ignore_ascii_case(tag))
}

/// Writes `root` (whose ancestors make `context`) in a document `frames` frames deep.
/// `css_work`: what rebuilding sheets may still cost in this document and its frames
/// ([`crate::cssom::SheetState::text_within`]).
fn write_node(dom: &Dom, root: NodeId, context: Context, frames: u32, css_work: &mut u64, out: &mut String) {
    let mut stack = vec![Step::Open(root, context)];
    // After a `<frameset>` a parser ignores `<style>` (and every other start tag but a few)
    // for the rest of the document.
    let mut frameset = false;
    while let Some(step) = stack.pop() {
        let (id, ctx) = match step {
            Step::Open(id, ctx) => (id, ctx),
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
            Step::Adopted(root, ctx) => {
                for sheet in dom.css.adopted.get(&root).into_iter().flatten() {
                    out.push_str("<style data-replay-adopted=\"\">");
                    let text = dom.css.constructed.get(sheet).map(|s| s.text_within("", css_work));
                    push_style_text(text.as_deref().unwrap_or(""), ctx, frameset, out);
                    out.push_str("</style>");
                }
                // Fonts added through the `FontFace` API, at the end of the page's head.
                if root == dom.document() && frames == 0 {
                    for css in dom.fonts.iter().filter_map(|f| crate::fonts::font_face_css(f, &dom.url)) {
                        out.push_str("<style data-replay-font=\"\">");
                        push_style_text(&css, ctx, frameset, out);
                        out.push_str("</style>");
                    }
                }
                continue;
            }
        };
        let Some(node) = dom.node(id) else { continue };
        match &*node.kind {
            DomKind::Document => push_children(dom, id, ctx, &mut stack),
            DomKind::Doctype { name, .. } => {
                out.push_str("<!DOCTYPE ");
                out.push_str(if valid_tag(name) { name } else { "html" });
                out.push('>');
            }
            DomKind::Text(t) => {
                // Raw only where every parser surely reads raw text: an HTML raw-text parent
                // in plain HTML content. `<noscript>` is raw only to a parser with scripting
                // on; one with it off reads markup, so its text is escaped.
                let raw = !ctx.odd
                    && !frameset
                    && dom.node(node.parent).is_some_and(|p| {
                        matches!(&*p.kind, DomKind::Element { tag, ns: Namespace::Html, .. }
                            if RAW_TEXT.iter().any(|r| r.eq_ignore_ascii_case(tag)) && !tag.eq_ignore_ascii_case("noscript"))
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
                stack.push(Step::Adopted(id, ctx));
                push_children(dom, id, ctx, &mut stack);
            }
            DomKind::Element { tag, ns, attrs, .. } => {
                if sanitize::is_blocked_element(tag) || !valid_tag(tag) {
                    continue;
                }
                frameset |= tag.eq_ignore_ascii_case("frameset");
                out.push('<');
                out.push_str(tag);
                for a in
                    attrs.iter().filter(|a| valid_name(&a.name) && sanitize::snapshot_keeps(tag, &a.name, &a.value))
                {
                    out.push(' ');
                    out.push_str(&a.name);
                    out.push_str("=\"");
                    escape(&a.value, true, out);
                    out.push('"');
                }
                let html = *ns == Namespace::Html;
                if html && tag.eq_ignore_ascii_case("iframe") && frames < MAX_FRAME_DEPTH {
                    write_frame_document(dom, id, frames + 1, css_work, out);
                }
                out.push('>');
                if html && VOID.iter().any(|v| v.eq_ignore_ascii_case(tag)) {
                    continue;
                }
                stack.push(Step::Close(id));
                let inner = ctx.enter(tag);
                if html && tag.eq_ignore_ascii_case("head") && is_document_head(dom, node.parent) {
                    stack.push(Step::Adopted(dom.node(node.parent).map_or(0, |p| p.parent), inner));
                }
                if html
                    && tag.eq_ignore_ascii_case("style")
                    && let Some(sheet) = dom.css.owned.get(&id)
                {
                    // The sheet's rules, not its markup: the CSSOM changed it.
                    let markup: String = dom
                        .children(id)
                        .filter_map(|(_, c)| match &*c.kind {
                            DomKind::Text(t) => Some(t.as_str()),
                            _ => None,
                        })
                        .collect();
                    push_style_text(&sheet.text_within(&markup, css_work), inner, frameset, out);
                    continue;
                }
                if is_raw(tag) {
                    // Only text: inside raw text an element's end tag or a comment could end
                    // the element early (and a browser's parser never puts them there).
                    let texts: Vec<NodeId> = dom
                        .children(id)
                        .filter(|(_, c)| matches!(*c.kind, DomKind::Text(_)))
                        .map(|(cid, _)| cid)
                        .collect();
                    stack.extend(texts.into_iter().rev().map(|c| Step::Open(c, inner)));
                    continue;
                }
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
                stack.extend(light.into_iter().rev().map(|c| Step::Open(c, inner)));
                stack.extend(shadow.into_iter().rev().map(|c| Step::Open(c, inner)));
            }
        }
    }
}

/// Text inside a `<style>` the serializer writes itself: raw where a parser surely reads raw
/// text (as for recorded text), escaped elsewhere.
fn push_style_text(t: &str, ctx: Context, frameset: bool, out: &mut String) {
    if !ctx.odd && !frameset { push_raw_text(t, out) } else { escape(t, false, out) }
}

/// True when `parent` (of a `<head>`) is its document's root element.
fn is_document_head(dom: &Dom, parent: NodeId) -> bool {
    dom.node(parent).and_then(|p| dom.node(p.parent)).is_some_and(|doc| matches!(*doc.kind, DomKind::Document))
}

/// The frame placeholder's document up to its text (the viewer's `render.js` draws the same).
const PLACEHOLDER_HEAD: &str = "<!DOCTYPE html><html><body style=\"margin:0\"><div data-replay-frame=\"placeholder\" \
     style=\"box-sizing:border-box;height:100vh;padding:8px;border:1px dashed #98a2b3;background:#f2f4f7;\
     color:#475467;font:12px sans-serif;overflow:hidden;word-break:break-all\">";

/// The ` srcdoc="…"` of an `<iframe>` whose document was recorded: that document, written by
/// these same rules in a context of its own, escaped as an attribute value.
fn write_frame_document(dom: &Dom, frame: NodeId, depth: u32, css_work: &mut u64, out: &mut String) {
    let Some(doc) = dom.children(frame).find(|(_, c)| matches!(*c.kind, DomKind::Document)).map(|(id, _)| id) else {
        // A cross-origin frame not recorded: its URL and size as text (the URL is never loaded:
        // a `srcdoc` wins over the `src`).
        if let Some(info) = dom.frame_placeholder(frame) {
            let mut inner = String::from(PLACEHOLDER_HEAD);
            escape(&info.placeholder_text(), false, &mut inner);
            inner.push_str("</div></body></html>");
            out.push_str(" srcdoc=\"");
            escape(&inner, true, out);
            out.push('"');
        }
        return;
    };
    let mut inner = String::new();
    write_node(dom, doc, Context::default(), depth, css_work, &mut inner);
    out.push_str(" srcdoc=\"");
    escape(&inner, true, out);
    out.push('"');
}

impl Context {
    /// The context of the children of element `tag` in this context.
    fn enter(self, tag: &str) -> Context {
        Context { odd: self.odd || ["svg", "math", "select"].iter().any(|t| t.eq_ignore_ascii_case(tag)) }
    }
}

/// The context of node `id` from its ancestors (one walk up, for the root of a serialization).
fn context_of(dom: &Dom, id: NodeId) -> Context {
    let mut ctx = Context::default();
    let mut at = dom.node(id).map_or(0, |n| n.parent);
    while let Some(node) = dom.node(at) {
        if let DomKind::Element { tag, .. } = &*node.kind {
            ctx = ctx.enter(tag);
        }
        at = node.parent;
    }
    ctx
}

fn push_children(dom: &Dom, id: NodeId, ctx: Context, stack: &mut Vec<Step>) {
    let children: Vec<NodeId> = dom.children(id).map(|(cid, _)| cid).collect();
    stack.extend(children.into_iter().rev().map(|c| Step::Open(c, ctx)));
}

/// True when `name` is a tag or attribute name a browser's DOM can hold and that cannot end
/// the tag it is written in.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\'' | '/' | '='))
}

/// True when `name` is a valid name ([`valid_name`]) that a parser reads as a tag: one that
/// starts with an ASCII letter (`<1a>` is text, and its `</1a>` a comment).
fn valid_tag(name: &str) -> bool {
    valid_name(name) && name.starts_with(|c: char| c.is_ascii_alphabetic())
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
    use crate::test_util::{el, text};

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
    fn fonts_added_through_font_face_are_styles_at_the_end_of_the_head() {
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot {
            nodes: vec![
                Node { id: 1, parent: 0, kind: NodeKind::Document },
                el(2, 1, "html", &[]),
                el(3, 2, "head", &[]),
                el(4, 3, "title", &[]),
                el(5, 2, "body", &[]),
            ],
            scroll_x: 0,
            scroll_y: 0,
        }));
        let font = |family: &str| crate::FontAdded {
            family: family.into(),
            url: "f.woff2".into(),
            data: vec![],
            style: "normal".into(),
            weight: String::new(),
            stretch: String::new(),
            unicode_range: String::new(),
            display: String::new(),
        };
        dom.url = "http://x/p".into();
        dom.apply(&EventData::Font(font("A</style><script>")));
        assert_eq!(
            document_html(&dom),
            "<html><head><title></title><style data-replay-font=\"\">@font-face{font-family:\"A\\3c /style\\3e \\3c script\\3e \";\
             src:url(\"http://x/f.woff2\");font-style:normal}</style></head><body></body></html>"
        );
        dom.apply(&EventData::Meta(crate::PageMeta {
            url: "http://x/q".into(),
            title: String::new(),
            viewport: crate::Viewport { width: 1, height: 1 },
            user_agent: String::new(),
            referrer: String::new(),
        }));
        assert!(!document_html(&dom).contains("font-face"), "a new page view starts without");
    }

    #[test]
    fn a_cross_origin_frame_not_recorded_is_written_as_a_placeholder_with_its_url_as_text() {
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot {
            nodes: vec![
                Node { id: 1, parent: 0, kind: NodeKind::Document },
                el(2, 1, "html", &[]),
                el(3, 2, "body", &[]),
                el(4, 3, "iframe", &[("src", "http://b.example/<x>")]),
            ],
            scroll_x: 0,
            scroll_y: 0,
        }));
        assert!(!document_html(&dom).contains("srcdoc"), "no placeholder without its event");
        let url = "http://b.example/\"><script>x()</script>".to_owned();
        dom.apply(&EventData::Frame(crate::FrameInfo { id: 4, url, width: 320, height: 100 }));
        let html = document_html(&dom);
        let (_, srcdoc) = html.split_once(" srcdoc=\"").expect("a srcdoc");
        let srcdoc = srcdoc.split_once('"').expect("one attribute").0;
        assert!(!srcdoc.contains('<') && !srcdoc.contains('>'), "{srcdoc}");
        assert!(
            srcdoc.contains("Cross-origin frame not recorded: http://b.example/&quot;&amp;gt;&amp;lt;script&amp;gt;")
        );
        assert!(srcdoc.contains("(320\u{d7}100)"), "{srcdoc}");
    }

    #[test]
    fn frame_documents_are_written_inline_as_srcdoc_sanitized_and_escaped() {
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot {
            nodes: vec![
                Node { id: 1, parent: 0, kind: NodeKind::Document },
                el(2, 1, "html", &[]),
                el(3, 2, "body", &[]),
                // A recorded srcdoc is dropped; the recorded document takes its place.
                el(4, 3, "iframe", &[("src", "a.html"), ("srcdoc", "<script>x()</script>")]),
                Node { id: 5, parent: 4, kind: NodeKind::Document },
                el(6, 5, "html", &[]),
                el(7, 6, "body", &[("class", "inner"), ("onload", "x()")]),
                el(8, 7, "script", &[]),
                text(9, 8, "x()"),
                text(10, 7, "a \"quoted\" & <b>"),
                el(11, 7, "iframe", &[]),
                Node { id: 12, parent: 11, kind: NodeKind::Document },
                el(13, 12, "html", &[]),
                el(14, 13, "body", &[]),
                text(15, 14, "deep & deeper"),
                // Not loaded, or cross-origin: no document, no srcdoc.
                el(16, 3, "iframe", &[]),
            ],
            scroll_x: 0,
            scroll_y: 0,
        }));
        let inner_most = "<html><body>deep &amp; deeper</body></html>";
        let mut escaped_most = String::new();
        escape(inner_most, true, &mut escaped_most);
        let inner = format!(
            "<html><body class=\"inner\">a \"quoted\" &amp; &lt;b&gt;<iframe srcdoc=\"{escaped_most}\"></iframe></body></html>"
        );
        let mut escaped = String::new();
        escape(&inner, true, &mut escaped);
        assert_eq!(
            document_html(&dom),
            format!("<html><body><iframe src=\"a.html\" srcdoc=\"{escaped}\"></iframe><iframe></iframe></body></html>")
        );
        assert!(document_html(&dom).contains("deep &amp;amp;amp; deeper"), "escaped once per level");
        assert_eq!(node_html(&dom, 5), inner);
    }

    #[test]
    fn frames_nested_deeper_than_the_cap_are_written_without_their_document() {
        let mut nodes = vec![Node { id: 1, parent: 0, kind: NodeKind::Document }];
        let mut parent = 1;
        for level in 0..(MAX_FRAME_DEPTH + 3) {
            let base = 10 + level * 10;
            nodes.push(el(base, parent, "iframe", &[]));
            nodes.push(Node { id: base + 1, parent: base, kind: NodeKind::Document });
            parent = base + 1;
        }
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot { nodes, scroll_x: 0, scroll_y: 0 }));
        let html = document_html(&dom);
        assert_eq!(html.matches("srcdoc").count(), MAX_FRAME_DEPTH as usize);
    }

    #[test]
    fn cssom_changes_and_adopted_sheets_are_written_as_style_text() {
        use crate::batch::{CssChange, CssOp};
        let mut dom = Dom::new();
        dom.apply(&EventData::Snapshot(Snapshot {
            nodes: vec![
                Node { id: 1, parent: 0, kind: NodeKind::Document },
                el(2, 1, "html", &[]),
                el(3, 2, "head", &[]),
                el(4, 3, "style", &[("data-emotion", "css")]),
                el(5, 3, "style", &[]),
                text(6, 5, "p { color: red; }"),
                el(7, 2, "body", &[]),
                el(8, 7, "x-card", &[]),
                Node { id: 9, parent: 8, kind: NodeKind::ShadowRoot },
                el(10, 9, "slot", &[]),
            ],
            scroll_x: 0,
            scroll_y: 0,
        }));
        let css = |owner, sheet, op| EventData::Css(CssChange { owner, sheet, op });
        dom.apply(&css(4, 0, CssOp::Insert { path: vec![0], rule: ".a { color: blue; }".into() }));
        dom.apply(&css(4, 0, CssOp::Insert { path: vec![1], rule: ".b { margin: 0px; }".into() }));
        dom.apply(&css(0, 1, CssOp::Text(".x { padding: 1px; }".into())));
        dom.apply(&css(0, 2, CssOp::Text("</style><script>x()</script>".into())));
        dom.apply(&css(1, 0, CssOp::Adopt { sheets: vec![1] }));
        dom.apply(&css(9, 0, CssOp::Adopt { sheets: vec![1, 2] }));
        assert_eq!(
            document_html(&dom),
            "<html><head><style data-emotion=\"css\">.a { color: blue; }\n.b { margin: 0px; }</style>\
             <style>p { color: red; }</style><style data-replay-adopted=\"\">.x { padding: 1px; }</style></head>\
             <body><x-card><template shadowrootmode=\"open\"><slot></slot>\
             <style data-replay-adopted=\"\">.x { padding: 1px; }</style>\
             <style data-replay-adopted=\"\"><\\/style><script>x()<\\/script></style></template></x-card></body></html>"
        );
    }

    fn page(content: Vec<Node>) -> Dom {
        let mut dom = Dom::new();
        let mut nodes =
            vec![Node { id: 1, parent: 0, kind: NodeKind::Document }, el(2, 1, "html", &[]), el(3, 2, "body", &[])];
        nodes.extend(content);
        dom.apply(&EventData::Snapshot(Snapshot { nodes, scroll_x: 0, scroll_y: 0 }));
        dom
    }

    fn ns_el(id: NodeId, parent: NodeId, tag: &str, ns: Namespace) -> Node {
        Node { id, parent, kind: NodeKind::Element { tag: tag.into(), ns, attrs: Vec::new() } }
    }

    #[test]
    fn the_player_s_sanitizer_rules_apply_to_the_snapshot() {
        let dom = page(vec![
            el(
                10,
                3,
                "a",
                &[("href", " JaVa\tscript:alert(1)"), ("onclick", "x()"), ("ONMOUSEOVER", "x()"), ("id", "a")],
            ),
            el(11, 3, "iframe", &[("srcdoc", "<script>x()</script>"), ("src", "inner.html")]),
            el(12, 3, "meta", &[("http-equiv", " Refresh"), ("content", "0;url=javascript:x()")]),
            el(13, 3, "meta", &[("http-equiv", "X-UA-Compatible"), ("content", "IE=edge")]),
            el(14, 3, "base", &[("href", "https://evil.example/"), ("target", "_top")]),
            el(15, 3, "object", &[("data", "https://evil.example/x.html"), ("type", "text/html")]),
            el(16, 3, "form", &[("action", "javascript:x()")]),
            el(17, 3, "form", &[("action", "/search")]),
            el(18, 3, "img", &[("src", "a.png"), ("referrerpolicy", "unsafe-url")]),
            el(19, 3, "meta", &[("name", "referrer"), ("content", "unsafe-url")]),
            el(20, 3, "svg", &[]),
            el(21, 20, "use", &[("href", "data:image/svg+xml,<svg><script>x()</script></svg>#a")]),
            el(22, 20, "set", &[("attributeName", "onmouseover"), ("to", "x()")]),
        ]);
        assert_eq!(
            document_html(&dom),
            "<html><body><a id=\"a\"></a><iframe src=\"inner.html\"></iframe><meta content=\"0;url=javascript:x()\">\
             <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\"><base><object type=\"text/html\"></object>\
             <form></form><form action=\"/search\"></form><img src=\"a.png\"><meta content=\"unsafe-url\">\
             <svg><use></use><set to=\"x()\"></set></svg></body></html>"
        );
    }

    #[test]
    fn namespace_and_raw_text_tricks_cannot_make_markup() {
        let dom = page(vec![
            // A MathML `script` outside `<math>` would parse as an HTML one.
            ns_el(10, 3, "script", Namespace::MathMl),
            Node { id: 11, parent: 10, kind: NodeKind::Text("alert(1)".into()) },
            // An HTML `<style>` inside `<svg>` is not raw text to a parser.
            el(12, 3, "svg", &[]),
            el(13, 12, "style", &[]),
            Node { id: 14, parent: 13, kind: NodeKind::Text("<img src=x onerror=alert(2)>".into()) },
            // A comment in RCDATA is text, ended by `</textarea`: left out.
            el(15, 3, "textarea", &[]),
            Node { id: 16, parent: 15, kind: NodeKind::Comment("</textarea><img src=x onerror=alert(3)>".into()) },
            // `<noscript>` is markup to a parser with scripting off.
            el(17, 3, "noscript", &[]),
            Node { id: 18, parent: 17, kind: NodeKind::Text("<img src=x onerror=alert(4)>".into()) },
            el(19, 3, "style", &[]),
            Node { id: 20, parent: 19, kind: NodeKind::Text("a > b {}".into()) },
            // In `<select>` a parser ignores `<style>` and reads its text as markup.
            el(21, 3, "select", &[]),
            el(22, 21, "style", &[]),
            Node { id: 23, parent: 22, kind: NodeKind::Text("<input autofocus onfocus=alert(5)>".into()) },
            // So it does after a `<frameset>`, for the rest of the document.
            el(24, 3, "frameset", &[]),
            el(25, 3, "style", &[]),
            Node { id: 26, parent: 25, kind: NodeKind::Text("<html onmouseover=alert(6)>".into()) },
            // Even in a second element of the document, after `</html>`.
            el(27, 1, "style", &[]),
            Node { id: 28, parent: 27, kind: NodeKind::Text("<html onfocus=alert(7)>".into()) },
        ]);
        assert_eq!(
            document_html(&dom),
            "<html><body><svg><style>&lt;img src=x onerror=alert(2)&gt;</style></svg><textarea></textarea>\
             <noscript>&lt;img src=x onerror=alert(4)&gt;</noscript><style>a > b {}</style>\
             <select><style>&lt;input autofocus onfocus=alert(5)&gt;</style></select><frameset></frameset>\
             <style>&lt;html onmouseover=alert(6)&gt;</style></body></html><style>&lt;html onfocus=alert(7)&gt;</style>"
        );
    }
}
