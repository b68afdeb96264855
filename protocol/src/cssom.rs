//! CSSOM state of a replayed page: what the recorded stylesheets contain beyond the DOM.
//!
//! The DOM model alone misses styles that never appear in the markup: rules inserted with
//! `insertRule` (CSS-in-JS), inlined `<link>` sheets, constructed sheets and
//! `adoptedStyleSheets`. The model does not parse CSS: each sheet keeps its last full text and
//! the operations applied since, in order, so a replayer can rebuild the exact sheet in a real
//! browser (which does the parsing). The log is bounded: beyond [`MAX_OPS_PER_SHEET`] operations
//! a sheet refuses more (counted).
//!
//! The snapshot API has no browser to do the parsing, so [`SheetState::text_for`] rebuilds a
//! sheet's text itself: the last full text (the recorder sends rules' `cssText`, one a line) is
//! split into rules with a small tokenizer that knows strings, comments, escapes and blocks, and
//! the operations are applied to that list as the CSSOM applies them: rules inserted and
//! deleted at a path (into `@media`, `@supports`, ... blocks, written back as Chromium writes a
//! grouping rule: `prelude {`, each rule on its own line indented by two spaces, `}`), and
//! declarations set (in place, or appended) and removed by name. `@import` rules are written
//! as Chromium serializes them: `@import url("…")`. Declarations are not expanded into
//! longhands, so setting a longhand of a shorthand the rule holds is not merged as a browser
//! would.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::batch::{CssChange, CssOp, NodeId};

/// Most operations remembered per sheet since its last full text.
pub const MAX_OPS_PER_SHEET: usize = 20_000;
/// Most sheets (owned plus constructed) remembered at once.
pub const MAX_SHEETS: usize = 20_000;
/// Most bytes of rule text the sheets of one document may re-read while they are rebuilt
/// ([`SheetState::text_within`]): setting a declaration rewrites its whole rule, so a big rule
/// and many changes of it cost their product (a 256 KiB rule and 1,000 changes took 29 s).
/// Past it, the operations left are not applied (the snapshot shows the sheets as they were).
pub const MAX_REBUILD_WORK: u64 = 64 << 20;

/// One sheet: its last full text (when one was recorded) and the operations since.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SheetState {
    /// Full text from a [`CssOp::Text`]; `None` when the sheet's text is its owner's markup.
    pub text: Option<String>,
    /// Rule operations since the text, in order (never `Text` or `Adopt`).
    pub ops: Vec<CssOp>,
}

impl SheetState {
    /// The sheet's text as its rules would serialize: the recorded text (or `markup`, the
    /// owner's text, when none was recorded) with the operations applied.
    pub fn text_for<'a>(&'a self, markup: &'a str) -> Cow<'a, str> {
        let mut work = MAX_REBUILD_WORK;
        self.text_within(markup, &mut work)
    }

    /// [`Self::text_for`] within `work`, the bytes of rule text the rebuild may still re-read
    /// (shared by the sheets of a document, [`MAX_REBUILD_WORK`]): the operations past it are
    /// left out.
    pub fn text_within<'a>(&'a self, markup: &'a str, work: &mut u64) -> Cow<'a, str> {
        let base = self.text.as_deref().unwrap_or(markup);
        if self.ops.is_empty() && !has_import(base) {
            return Cow::Borrowed(base);
        }
        let mut rules: Vec<Rule> = split_rules(base).into_iter().map(Rule::parsed).collect();
        for op in &self.ops {
            if *work == 0 {
                break;
            }
            *work = work.saturating_sub(apply_op(&mut rules, op));
        }
        let mut out = String::with_capacity(base.len() + 64);
        for (i, r) in rules.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            r.write(&mut out);
        }
        Cow::Owned(out)
    }

    fn apply(&mut self, op: &CssOp) -> bool {
        match op {
            CssOp::Text(t) => {
                self.text = Some(t.clone());
                self.ops.clear();
                true
            }
            CssOp::Adopt { .. } => false,
            other => {
                if self.ops.len() >= MAX_OPS_PER_SHEET {
                    return false;
                }
                self.ops.push(other.clone());
                true
            }
        }
    }
}

/// Stylesheets of owner nodes (`<style>`, `<link>`), constructed sheets, and adoptions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CssState {
    /// Sheets owned by a node, by owner id.
    pub owned: HashMap<NodeId, SheetState>,
    /// Constructed sheets (`new CSSStyleSheet()`), by recorder sheet id.
    pub constructed: HashMap<u32, SheetState>,
    /// `adoptedStyleSheets` of a document or shadow root, by its node id.
    pub adopted: HashMap<NodeId, Vec<u32>>,
    /// What every sheet holds, in [`weight_of`] units (kept as changes come).
    weight: usize,
}

/// Most [`CssState::weight`] a page's sheets may hold together (about 256 MiB of CSS text, or
/// a million operations): past it, changes are refused (counted) like past a sheet's cap.
pub const MAX_CSS_WEIGHT: usize = 1 << 20;

/// What a text or an operation weighs: 1, plus 1 per 256 bytes of text it carries (a node of the
/// model is about that).
fn weight_of(bytes: usize) -> usize {
    1 + bytes / 256
}

fn op_weight(op: &CssOp) -> usize {
    weight_of(match op {
        CssOp::Text(t) => t.len(),
        CssOp::Insert { rule, .. } => rule.len(),
        CssOp::SetProperty { name, value, .. } => name.len() + value.len(),
        CssOp::RemoveProperty { name, .. } => name.len(),
        CssOp::Delete { .. } | CssOp::Adopt { .. } => 0,
    })
}

fn sheet_weight(sheet: &SheetState) -> usize {
    sheet.text.as_deref().map_or(0, |t| weight_of(t.len())) + sheet.ops.iter().map(op_weight).sum::<usize>()
}

impl CssState {
    /// Applies one change; false when it was refused (a cap was reached).
    pub fn apply(&mut self, change: &CssChange) -> bool {
        if let CssOp::Adopt { sheets } = &change.op {
            if sheets.is_empty() {
                self.adopted.remove(&change.owner);
            } else {
                self.adopted.insert(change.owner, sheets.clone());
            }
            return true;
        }
        let full = self.owned.len() + self.constructed.len() >= MAX_SHEETS;
        let added = op_weight(&change.op);
        if self.weight.saturating_add(added) > MAX_CSS_WEIGHT {
            return false;
        }
        let sheet = if change.owner != 0 {
            if full && !self.owned.contains_key(&change.owner) {
                return false;
            }
            self.owned.entry(change.owner).or_default()
        } else {
            if full && !self.constructed.contains_key(&change.sheet) {
                return false;
            }
            self.constructed.entry(change.sheet).or_default()
        };
        // A full text replaces what the sheet held (each operation is counted out once).
        let dropped = if matches!(change.op, CssOp::Text(_)) { sheet_weight(sheet) } else { 0 };
        let applied = sheet.apply(&change.op);
        if applied {
            self.weight = self.weight.saturating_sub(dropped).saturating_add(added);
        }
        applied
    }

    /// What the sheets hold, about as many units as model nodes would take the same memory: the
    /// viewer's keyframes count it with the nodes (each keyframe clones it).
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Forgets what belonged to a removed node (its own sheet, its adoptions).
    pub fn forget(&mut self, id: NodeId) {
        if !self.owned.is_empty()
            && let Some(sheet) = self.owned.remove(&id)
        {
            self.weight = self.weight.saturating_sub(sheet_weight(&sheet));
        }
        if !self.adopted.is_empty() {
            self.adopted.remove(&id);
        }
    }

    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.owned.is_empty() && self.constructed.is_empty() && self.adopted.is_empty()
    }
}

/// True when CSS text holds an `@import` (any case).
fn has_import(css: &str) -> bool {
    css.as_bytes().windows(7).any(|w| w.eq_ignore_ascii_case(b"@import"))
}

/// Deepest nesting of grouping rules an operation's path may address.
const MAX_PATH: usize = 32;

/// One rule of a sheet: its text, or (once an operation reached inside it) a grouping rule's
/// prelude and child rules.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Text(String),
    Group { prelude: String, rules: Vec<Rule> },
}

impl Rule {
    /// A rule from its text, `@import` written as Chromium serializes it.
    fn parsed(text: &str) -> Rule {
        Rule::Text(normalize_import(text).unwrap_or_else(|| text.to_owned()))
    }

    /// The child rules of a grouping rule (`prelude { rules }`), turning its text into a group.
    fn children(&mut self) -> Option<&mut Vec<Rule>> {
        if let Rule::Text(t) = self {
            if !t.starts_with('@') {
                return None;
            }
            let (prelude, body) = split_block(t)?;
            let rules = split_rules(body).into_iter().map(Rule::parsed).collect();
            *self = Rule::Group { prelude: prelude.trim().to_owned(), rules };
        }
        match self {
            Rule::Group { rules, .. } => Some(rules),
            Rule::Text(_) => None,
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Rule::Text(t) => out.push_str(t),
            Rule::Group { prelude, rules } => {
                out.push_str(prelude);
                out.push_str(" {\n");
                for r in rules {
                    out.push_str("  ");
                    r.write(out);
                    out.push('\n');
                }
                out.push('}');
            }
        }
    }
}

/// The list holding the rule at `path` (all but its last index), and that index.
fn list_at<'a>(rules: &'a mut Vec<Rule>, path: &[u32]) -> Option<(&'a mut Vec<Rule>, usize)> {
    let (&last, parents) = path.split_last()?;
    if path.len() > MAX_PATH {
        return None;
    }
    let mut list = rules;
    for &i in parents {
        list = list.get_mut(i as usize)?.children()?;
    }
    Some((list, last as usize))
}

/// Applies one operation; what it cost, in bytes of rule text read (at least 1).
fn apply_op(rules: &mut Vec<Rule>, op: &CssOp) -> u64 {
    let mut cost = 1 + path_of(op).len() as u64;
    match op {
        CssOp::Insert { path, rule } => {
            if let Some((list, i)) = list_at(rules, path) {
                let i = i.min(list.len());
                cost += rule.len() as u64;
                list.insert(i, Rule::parsed(rule.trim()));
            }
        }
        CssOp::Delete { path } => {
            if let Some((list, i)) = list_at(rules, path)
                && i < list.len()
            {
                list.remove(i);
            }
        }
        CssOp::SetProperty { path, name, value, priority } => {
            if let Some((list, i)) = list_at(rules, path)
                && let Some(Rule::Text(t)) = list.get_mut(i)
            {
                cost += (t.len() + value.len()) as u64;
                if let Some(changed) = set_declaration(t, name, value, priority) {
                    *t = changed;
                }
            }
        }
        CssOp::RemoveProperty { path, name } => {
            if let Some((list, i)) = list_at(rules, path)
                && let Some(Rule::Text(t)) = list.get_mut(i)
            {
                cost += t.len() as u64;
                if let Some(changed) = set_declaration(t, name, "", "") {
                    *t = changed;
                }
            }
        }
        CssOp::Text(_) | CssOp::Adopt { .. } => {}
    }
    cost
}

/// The rule path an operation addresses (empty for whole-sheet operations).
fn path_of(op: &CssOp) -> &[u32] {
    match op {
        CssOp::Insert { path, .. }
        | CssOp::Delete { path }
        | CssOp::SetProperty { path, .. }
        | CssOp::RemoveProperty { path, .. } => path,
        CssOp::Text(_) | CssOp::Adopt { .. } => &[],
    }
}

/// A style rule's text with declaration `name` set to `value` (removed when empty), written
/// as Chromium writes a style rule: `selector { a: b; c: d !important; }`.
fn set_declaration(rule: &str, name: &str, value: &str, priority: &str) -> Option<String> {
    let (selector, body) = split_block(rule)?;
    let mut decls: Vec<(String, String)> = split_top(body, b';')
        .into_iter()
        .filter_map(|d| {
            let (n, v) = d.split_once(':')?;
            Some((n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let name = name.trim();
    let value = value.trim();
    let at = decls.iter().position(|(n, _)| n.eq_ignore_ascii_case(name));
    if value.is_empty() {
        if let Some(i) = at {
            decls.remove(i);
        }
    } else {
        let v =
            if priority.eq_ignore_ascii_case("important") { format!("{value} !important") } else { value.to_owned() };
        match at {
            Some(i) => decls[i].1 = v,
            None => decls.push((name.to_owned(), v)),
        }
    }
    let mut out = String::with_capacity(rule.len() + value.len());
    out.push_str(selector.trim());
    out.push_str(" {");
    for (n, v) in &decls {
        out.push(' ');
        out.push_str(n);
        out.push_str(": ");
        out.push_str(v);
        out.push(';');
    }
    out.push_str(" }");
    Some(out)
}

/// `@import 'x' media` or `@import url(x) media` as Chromium serializes it:
/// `@import url("x") media;`. `None` for other rules.
fn normalize_import(rule: &str) -> Option<String> {
    let head = rule.get(..7)?;
    if !head.eq_ignore_ascii_case("@import") {
        return None;
    }
    let rest = rule[7..].trim_start();
    let (url, after): (Cow<'_, str>, &str) = if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
        // A string: its escapes are undone here and written again below.
        let mut url = String::new();
        let mut chars = rest.char_indices().skip(1);
        let end = loop {
            match chars.next()? {
                (_, '\\') => url.push(chars.next()?.1),
                (i, c) if c == q => break i,
                (_, c) => url.push(c),
            }
        };
        (Cow::Owned(url), &rest[end + 1..])
    } else if rest.get(..4).is_some_and(|u| u.eq_ignore_ascii_case("url(")) {
        let inner = rest[4..].trim_start();
        let close = inner.find(')')?;
        let body = inner[..close].trim();
        let body = body
            .strip_prefix('"')
            .and_then(|b| b.strip_suffix('"'))
            .or_else(|| body.strip_prefix('\'').and_then(|b| b.strip_suffix('\'')))
            .unwrap_or(body);
        (Cow::Borrowed(body), &inner[close + 1..])
    } else {
        return None;
    };
    let tail = after.trim().trim_end_matches(';').trim();
    let mut out = String::with_capacity(rule.len() + 8);
    out.push_str("@import url(\"");
    for c in url.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\a "),
            c => out.push(c),
        }
    }
    out.push_str("\")");
    if !tail.is_empty() {
        out.push(' ');
        out.push_str(tail);
    }
    out.push(';');
    Some(out)
}

/// A rule's prelude and the inside of its first block: `a { b }` gives `("a ", " b ")`.
fn split_block(rule: &str) -> Option<(&str, &str)> {
    let open = scan(rule).find(|&(_, b, depth)| b == b'{' && depth == 0)?.0;
    let close = rule.rfind('}').filter(|&c| c > open)?;
    Some((&rule[..open], &rule[open + 1..close]))
}

/// The top-level rules of a sheet's text, trimmed: a statement at-rule ends at its `;`, any
/// other rule at the `}` closing its block.
fn split_rules(css: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b, depth) in scan(css) {
        let end = match b {
            b';' if depth == 0 => i + 1,
            b'}' if depth == 1 => i + 1,
            _ => continue,
        };
        let rule = css[start..end].trim();
        if !rule.is_empty() && rule != ";" {
            out.push(rule);
        }
        start = end;
    }
    let rest = css[start..].trim();
    if !rest.is_empty() && !rest.starts_with("/*") {
        out.push(rest);
    }
    out
}

/// `text` split at each `sep` outside blocks, parentheses, strings and comments.
fn split_top(text: &str, sep: u8) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b, depth) in scan(text) {
        if b == sep && depth == 0 {
            out.push(&text[start..i]);
            start = i + 1;
        }
    }
    out.push(&text[start..]);
    out.retain(|p| !p.trim().is_empty());
    out
}

/// The structural bytes of CSS text (`{`, `}`, `;`, `:`, ...) outside strings, comments and
/// escapes, each with its position and the nesting depth of blocks and parentheses before it
/// (a closing bracket is reported at the depth it closes: 1 for the `}` of a top-level rule).
fn scan(css: &str) -> impl Iterator<Item = (usize, u8, u32)> + '_ {
    let b = css.as_bytes();
    let mut i = 0;
    let mut depth: u32 = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            let at = i;
            let c = b[i];
            i += 1;
            match c {
                b'\\' => i += 1,
                b'"' | b'\'' => {
                    while i < b.len() && b[i] != c {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                b'/' if b.get(i) == Some(&b'*') => {
                    i = css[i + 1..].find("*/").map_or(b.len(), |e| i + 1 + e + 2);
                }
                b'{' | b'(' | b'[' => {
                    let d = depth;
                    depth += 1;
                    return Some((at, c, d));
                }
                b'}' | b')' | b']' => {
                    let d = depth;
                    depth = depth.saturating_sub(1);
                    return Some((at, c, d));
                }
                _ => return Some((at, c, depth)),
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_follows_texts_operations_resets_and_removals_and_is_capped() {
        let mut css = CssState::default();
        let insert = |n: usize| CssOp::Insert { path: vec![0], rule: "x".repeat(n) };
        assert!(css.apply(&change(5, 0, CssOp::Text("a".repeat(1024)))));
        assert_eq!(css.weight(), 1 + 4);
        assert!(css.apply(&change(5, 0, insert(10))));
        assert!(css.apply(&change(7, 0, insert(512))));
        assert_eq!(css.weight(), 5 + 1 + 3);
        // A new full text replaces the sheet's text and operations; removing the owner, its sheet.
        assert!(css.apply(&change(5, 0, CssOp::Text(String::new()))));
        assert_eq!(css.weight(), 1 + 3);
        css.forget(7);
        assert_eq!(css.weight(), 1);
        // Past the cap, changes are refused.
        let big = CssOp::Text("y".repeat(256 * (MAX_CSS_WEIGHT - 2)));
        assert!(css.apply(&change(0, 1, big)));
        assert!(!css.apply(&change(0, 2, insert(1))), "the page's sheets are full");
        assert_eq!(css.weight(), MAX_CSS_WEIGHT);
    }

    #[test]
    fn rebuilding_stops_applying_operations_past_its_work() {
        // A 10 KB rule changed 100 times: each change re-reads the rule.
        let rule = format!("a {{ {} }}", "b: c; ".repeat(1_700));
        let ops: Vec<CssOp> = (0..100)
            .map(|i| CssOp::SetProperty {
                path: vec![0],
                name: format!("p{i}"),
                value: "1".into(),
                priority: String::new(),
            })
            .collect();
        let sheet = SheetState { text: Some(rule.clone()), ops };
        let all = sheet.text_for("");
        assert!(all.contains("p0: 1") && all.contains("p99: 1"));
        let mut work = 20 * rule.len() as u64;
        let part = sheet.text_within("", &mut work);
        assert_eq!(work, 0, "the work was used up");
        assert!(
            part.contains("p0: 1") && part.contains("p18: 1") && !part.contains("p25: 1"),
            "{}",
            &part[part.len() - 200..]
        );
    }

    fn change(owner: NodeId, sheet: u32, op: CssOp) -> CssChange {
        CssChange { owner, sheet, op }
    }

    #[test]
    fn full_text_resets_the_operation_log() {
        let mut css = CssState::default();
        css.apply(&change(5, 0, CssOp::Insert { path: vec![0], rule: "a{color:red}".into() }));
        assert_eq!(css.owned[&5].ops.len(), 1);
        css.apply(&change(5, 0, CssOp::Text("b{}".into())));
        assert_eq!(css.owned[&5], SheetState { text: Some("b{}".into()), ops: vec![] });
    }

    #[test]
    fn constructed_sheets_and_adoptions_are_kept_apart() {
        let mut css = CssState::default();
        css.apply(&change(0, 3, CssOp::Text("p{}".into())));
        css.apply(&change(1, 0, CssOp::Adopt { sheets: vec![3] }));
        assert_eq!(css.constructed[&3].text.as_deref(), Some("p{}"));
        assert_eq!(css.adopted[&1], vec![3]);
        css.apply(&change(1, 0, CssOp::Adopt { sheets: vec![] }));
        assert!(css.adopted.is_empty());
    }

    #[test]
    fn operation_log_is_bounded() {
        let mut css = CssState::default();
        let op = CssOp::Delete { path: vec![0] };
        let accepted = (0..MAX_OPS_PER_SHEET + 10).filter(|_| css.apply(&change(2, 0, op.clone()))).count();
        assert_eq!(accepted, MAX_OPS_PER_SHEET);
    }

    fn text_after(text: &str, ops: Vec<CssOp>) -> String {
        SheetState { text: Some(text.into()), ops }.text_for("").into_owned()
    }

    #[test]
    fn rules_are_inserted_and_deleted_at_their_path_like_the_cssom() {
        let media = "@media (min-width: 100px) {\n  .m { color: rgb(193, 21, 117); }\n}";
        let text = format!(".a {{ background: rgb(254, 240, 199); padding: 6px; }}\n{media}");
        let got = text_after(
            &text,
            vec![
                CssOp::Insert { path: vec![1], rule: ".b { font-size: 22px; }".into() },
                CssOp::Insert { path: vec![2, 1], rule: ".m { font-weight: bold; }".into() },
                CssOp::Delete { path: vec![1] },
                CssOp::SetProperty {
                    path: vec![0],
                    name: "background".into(),
                    value: "rgb(209, 250, 223)".into(),
                    priority: String::new(),
                },
                CssOp::SetProperty {
                    path: vec![0],
                    name: "color".into(),
                    value: "red".into(),
                    priority: "important".into(),
                },
                CssOp::RemoveProperty { path: vec![0], name: "padding".into() },
                // Stale or hostile paths change nothing.
                CssOp::Delete { path: vec![7, 7] },
                CssOp::Insert { path: vec![0, 0], rule: ".no {}".into() },
                CssOp::Delete { path: vec![] },
            ],
        );
        assert_eq!(
            got,
            ".a { background: rgb(209, 250, 223); color: red !important; }\n\
             @media (min-width: 100px) {\n  .m { color: rgb(193, 21, 117); }\n  .m { font-weight: bold; }\n}"
        );
    }

    #[test]
    fn the_tokenizer_keeps_strings_comments_and_parentheses_whole() {
        let css = "@charset \"x;y\"; .a::before { content: \"}{;\"; background: url(a;b.png) } /* } */ .b{}";
        assert_eq!(
            split_rules(css),
            vec!["@charset \"x;y\";", ".a::before { content: \"}{;\"; background: url(a;b.png) }", "/* } */ .b{}"]
        );
        assert_eq!(
            set_declaration(".a { content: \"a;b\"; color: red }", "color", "blue", "").as_deref(),
            Some(".a { content: \"a;b\"; color: blue; }")
        );
        assert_eq!(set_declaration(".a { color: red }", "color", "", "").as_deref(), Some(".a { }"));
    }

    #[test]
    fn imports_are_written_as_chromium_serializes_them() {
        let got = text_after("@import 'a.css';\n@import url(b.css) screen;\n@IMPORT \"c\\\"d.css\";\np { }", vec![]);
        assert_eq!(got, "@import url(\"a.css\");\n@import url(\"b.css\") screen;\n@import url(\"c\\\"d.css\");\np { }");
        // A sheet without CSSOM changes or imports is its text, unparsed.
        let plain = SheetState { text: Some("a{b:c}  d{}".into()), ops: vec![] };
        assert!(matches!(plain.text_for(""), Cow::Borrowed("a{b:c}  d{}")));
        // Without a recorded text, operations apply to the owner's markup.
        let on_markup = SheetState { text: None, ops: vec![CssOp::Insert { path: vec![1], rule: "b { }".into() }] };
        assert_eq!(on_markup.text_for("a { }"), "a { }\nb { }");
    }
}
