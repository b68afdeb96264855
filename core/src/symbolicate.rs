//! Source maps: a minified stack frame (`a (https://cdn.example/app.3f9c.js:1:48213)`) or a
//! freeze culprit (a Long Animation Frame's `sourceURL` and character position, or a sampled
//! stack's line and column) read through the release's source map as the original function,
//! file and line, with a few lines of the original source around it.
//!
//! Pure: the caller finds the map (and, when it has it, the minified file the map describes)
//! and caches the parsed [`MappedFile`]; nothing here does I/O. Parsing uses the pinned
//! `sourcemap` crate.
//!
//! The original function name comes, in order, from: the `sourcemap` crate's reverse lookup
//! through the minified source (when it was uploaded too); the original source itself, by
//! walking back from the mapped position to the header of the enclosing function
//! (`function f(`, `f(...) {` in a class, `const f = (...) =>`; class methods are qualified with
//! the class name); the name the map gives the token; and last the minified name. The walk
//! reads at most [`MAX_SCAN_BYTES`] of source and skips nothing clever (strings and comments
//! holding braces can mislead it: the file and line stay right, only the name is then a guess).
//!
//! Error groups use [`original_fingerprint`]: the normalized message with the original
//! function and file of the top frame — not its line or column, which move with every edit
//! above them, so a new deploy of the same bug keeps its group.

use serde::Serialize;
use sourcemap::{DecodedMap, SourceMap, SourceView};

use crate::diagnostics::{fnv1a, normalized};
use crate::error::Error;

/// Most frames read from one stack.
pub const MAX_FRAMES: usize = 50;
/// Lines of original source shown before and after a frame's line.
pub const CONTEXT_LINES: u32 = 3;
/// Longest line of source context kept.
const MAX_CONTEXT_LINE: usize = 200;
/// Most bytes of original source walked back to find the enclosing function.
pub const MAX_SCAN_BYTES: usize = 64 * 1024;
/// Longest header (text before a `{`) read for a function name.
const MAX_HEADER: usize = 300;
/// Longest stack line parsed.
const MAX_STACK_LINE: usize = 2_000;

/// A frame as the browser wrote it. Lines and columns are 1-based; 0 means unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawFrame {
    pub function: String,
    pub url: String,
    pub line: u32,
    pub column: u32,
}

/// A frame read through a source map. Lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OriginalFrame {
    pub function: String,
    /// The original file as the map names it (`src/ProductList.tsx`, `webpack:///./src/a.js`).
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// Lines of the original source around `line`, the first being line `context_start`;
    /// empty when the map carries no source content.
    pub context: Vec<String>,
    pub context_start: u32,
}

impl OriginalFrame {
    /// `function (file:line:column)`, as error groups and culprits are shown.
    pub fn text(&self) -> String {
        format!("{} ({}:{}:{})", self.function, self.file, self.line, self.column)
    }
}

/// Parses one line of a stack (V8's `at f (url:1:2)` and `at url:1:2`, Firefox's and Safari's
/// `f@url:1:2`), or an error group's frame (`f (url:1:2)`); `None` for lines that name no place.
pub fn parse_frame(line: &str) -> Option<RawFrame> {
    let line = line.trim();
    if line.len() > MAX_STACK_LINE {
        return None;
    }
    let line = line.strip_prefix("at ").unwrap_or(line).trim();
    let line = line.strip_prefix("async ").unwrap_or(line);
    let (function, place) = if let Some(inner) = line.strip_suffix(')')
        && let Some(open) = inner.rfind(" (")
    {
        (&inner[..open], &inner[open + 2..])
    } else if let Some((f, p)) = line.split_once('@') {
        (f, p)
    } else {
        ("", line)
    };
    let (rest, column) = place.rsplit_once(':')?;
    let (url, line_no) = rest.rsplit_once(':')?;
    let (line_no, column) = (line_no.parse().ok()?, column.parse().ok()?);
    if url.is_empty() || url.contains(' ') {
        return None;
    }
    let function = function.trim();
    let function = function.strip_prefix("async ").unwrap_or(function);
    let function = function.strip_prefix("new ").unwrap_or(function);
    Some(RawFrame { function: function.to_owned(), url: url.to_owned(), line: line_no, column })
}

/// The frames of a stack that name a place, at most [`MAX_FRAMES`].
pub fn parse_stack(stack: &str) -> Vec<RawFrame> {
    stack.lines().filter_map(parse_frame).take(MAX_FRAMES).collect()
}

/// The fingerprint of an error by its original top frame: the normalized message, the
/// original function and file (see the module docs). Same format as ingest's.
pub fn original_fingerprint(message: &str, frame: &OriginalFrame) -> String {
    format!("{:016x}", fnv1a(&[&normalized(message), &frame.function, &frame.file]))
}

/// The URL a minified file names its map by (`//# sourceMappingURL=...`, in its last 4 KiB),
/// when it names one that is not a `data:` URL.
pub fn source_mapping_url(minified: &str) -> Option<&str> {
    let tail = &minified[minified.floor_char_boundary(minified.len().saturating_sub(4096))..];
    let at = tail.rfind("sourceMappingURL=")?;
    let name = tail[at + "sourceMappingURL=".len()..].split_whitespace().next()?;
    (!name.is_empty() && !name.starts_with("data:")).then_some(name)
}

/// A parsed source map, with the minified file it maps when that is known.
pub struct MappedFile {
    map: SourceMap,
    minified: Option<SourceView>,
    /// Byte offset of each line of each source's content (by source index), so a frame costs
    /// its own lines, not a walk through a large file.
    line_starts: Vec<Vec<usize>>,
    weight: usize,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile").field("weight", &self.weight).finish_non_exhaustive()
    }
}

/// How a position relates to the function to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// Somewhere inside the function (a stack frame): name the enclosing function.
    Inside,
    /// At the function's start (a culprit's character position or sampled frame).
    Start,
}

impl MappedFile {
    /// Parses a map (a regular or an indexed one) and, optionally, the minified source.
    pub fn parse(map: &[u8], minified: Option<String>) -> Result<MappedFile, Error> {
        let decoded = sourcemap::decode_slice(map).map_err(|e| Error::SourceMap(e.to_string()))?;
        let map = match decoded {
            DecodedMap::Regular(m) => m,
            DecodedMap::Index(i) => i.flatten().map_err(|e| Error::SourceMap(e.to_string()))?,
            DecodedMap::Hermes(_) => return Err(Error::SourceMap("hermes maps are not supported".into())),
        };
        let line_starts: Vec<Vec<usize>> = map
            .source_contents()
            .map(|c| match c {
                Some(c) => std::iter::once(0).chain(c.match_indices('\n').map(|(i, _)| i + 1)).collect(),
                None => Vec::new(),
            })
            .collect();
        let weight = map.get_token_count() as usize * 32
            + map.source_contents().flatten().map(str::len).sum::<usize>()
            + line_starts.iter().map(|l| l.len() * 8).sum::<usize>()
            + minified.as_ref().map_or(0, String::len);
        Ok(MappedFile { map, minified: minified.map(SourceView::from_string), line_starts, weight })
    }

    /// Approximate memory held, in bytes (for a cache's budget).
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// A stack frame read through the map (its line and column are 1-based).
    pub fn frame(&self, raw: &RawFrame) -> Option<OriginalFrame> {
        if raw.line == 0 {
            return None;
        }
        self.resolve(raw.line - 1, raw.column.saturating_sub(1), &raw.function, Anchor::Inside)
    }

    /// A culprit script read through the map: at `line`:`column` (1-based) when known, else at
    /// the character position `char_position` (from the minified source's line breaks when it
    /// was uploaded; a file without it is taken to be one line, as bundles are).
    pub fn culprit(&self, function: &str, line: u32, column: u32, char_position: i32) -> Option<OriginalFrame> {
        if line > 0 {
            return self.resolve(line - 1, column.saturating_sub(1), function, Anchor::Start);
        }
        let offset = u32::try_from(char_position).ok()?;
        let (line, column) = match &self.minified {
            Some(sv) => line_column(sv.source(), offset as usize),
            None => (0, offset),
        };
        self.resolve(line, column, function, Anchor::Start)
    }

    fn resolve(&self, line: u32, column: u32, minified_name: &str, anchor: Anchor) -> Option<OriginalFrame> {
        let token = self.map.lookup_token(line, column)?;
        if token.get_dst_line() != line {
            return None;
        }
        let file = token.get_source()?.to_owned();
        let (src_line, src_col) = token.get_src();
        let content = self.map.get_source_contents(token.get_src_id());
        let starts = self.line_starts.get(token.get_src_id() as usize).map_or(&[][..], Vec::as_slice);
        let from_source = content.and_then(|c| {
            let offset = offset_of(c, starts, src_line, src_col)?;
            match anchor {
                Anchor::Start => function_at(c, offset).or_else(|| enclosing_function(c, offset)),
                Anchor::Inside => enclosing_function(c, offset),
            }
        });
        let from_minified = || {
            let sv = self.minified.as_ref()?;
            let simple = minified_name.rsplit('.').next().unwrap_or(minified_name);
            self.map.get_original_function_name(line, column, simple, sv).map(str::to_owned)
        };
        let function = match anchor {
            Anchor::Inside => from_minified().or(from_source),
            Anchor::Start => from_source.or_else(from_minified),
        }
        .or_else(|| token.get_name().map(str::to_owned))
        .unwrap_or_else(|| if minified_name.is_empty() { "(anonymous)".to_owned() } else { minified_name.to_owned() });
        let (context, context_start) = match content {
            Some(c) => context_lines(c, starts, src_line),
            None => (Vec::new(), 0),
        };
        Some(OriginalFrame { function, file, line: src_line + 1, column: src_col + 1, context, context_start })
    }
}

/// 0-based line and column of a character offset.
fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let offset = source.floor_char_boundary(offset.min(source.len()));
    let before = &source[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count();
    let column = before.rfind('\n').map_or(offset, |n| offset - n - 1);
    (u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(column).unwrap_or(u32::MAX))
}

/// Byte offset of a 0-based line and column (columns counted in characters), from the
/// content's line starts.
fn offset_of(content: &str, starts: &[usize], line: u32, column: u32) -> Option<usize> {
    let start = *starts.get(line as usize)?;
    let text = content.get(start..)?;
    let end = text.find('\n').unwrap_or(text.len());
    let col = text[..end].char_indices().nth(column as usize).map_or(end, |(i, _)| i);
    Some(start + col)
}

fn context_lines(content: &str, starts: &[usize], line: u32) -> (Vec<String>, u32) {
    let first = line.saturating_sub(CONTEXT_LINES);
    let Some(text) = starts.get(first as usize).and_then(|&s| content.get(s..)) else { return (Vec::new(), 0) };
    let lines = text
        .lines()
        .take((line - first + CONTEXT_LINES + 1) as usize)
        .map(|l| match l.char_indices().nth(MAX_CONTEXT_LINE) {
            Some((i, _)) => format!("{}…", &l[..i]),
            None => l.to_owned(),
        })
        .collect();
    (lines, first + 1)
}

/// What the text before a `{` opens.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// A function, and whether it is a method (`name(...) {`).
    Function(String, bool),
    Class(String),
    Other,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// `s` without its trailing identifier (dots allowed when `dotted`), and that identifier.
fn trailing_ident(s: &str, dotted: bool) -> (&str, &str) {
    let s = s.trim_end();
    let start = s.char_indices().rev().take_while(|&(_, c)| is_ident(c) || (dotted && c == '.')).last().map(|(i, _)| i);
    match start {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// The text before the `(` matching the `)` that ends `s`.
fn before_parens(s: &str) -> Option<&str> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The name a function expression is assigned to (`x.y = `, `name: `), if any.
fn assigned_name(s: &str) -> Option<String> {
    let s = s.trim_end();
    let s = s.strip_suffix("async").unwrap_or(s).trim_end();
    let s = if let Some(r) = s.strip_suffix(':') {
        r
    } else if let Some(r) = s.strip_suffix('=') {
        if r.ends_with(['=', '!', '<', '>']) {
            return None;
        }
        r
    } else {
        return None;
    };
    let (_, name) = trailing_ident(s, true);
    (!name.is_empty()).then(|| name.trim_start_matches('.').to_owned())
}

fn header(before: &str) -> Header {
    let b = before.trim_end();
    if let Some(rest) = b.strip_suffix("=>") {
        let rest = rest.trim_end();
        let head = if rest.ends_with(')') { before_parens(rest).unwrap_or("") } else { trailing_ident(rest, false).0 };
        let name = assigned_name(head).unwrap_or_else(|| "(anonymous)".to_owned());
        return Header::Function(name, false);
    }
    if b.ends_with(')') {
        let Some(head) = before_parens(b) else { return Header::Other };
        let (rest, ident) = trailing_ident(head, false);
        return match ident {
            "" | "if" | "for" | "while" | "switch" | "catch" | "with" | "return" => Header::Other,
            "function" => Header::Function(assigned_name(rest).unwrap_or_else(|| "(anonymous)".to_owned()), false),
            name => {
                let rest = rest.trim_end().trim_end_matches('*').trim_end();
                if rest.ends_with("function") {
                    Header::Function(name.to_owned(), false)
                } else if rest.is_empty()
                    || rest.ends_with(['{', '}', ';', ','])
                    || !trailing_ident(rest, false).1.is_empty()
                {
                    // A method (`async name(`, `static name(`, at the start of a line).
                    Header::Function(name.to_owned(), true)
                } else {
                    Header::Other
                }
            }
        };
    }
    let line = b.rsplit(['\n', ';', '}']).next().unwrap_or(b);
    if let Some(at) = line.find("class ") {
        let name: String = line[at + 6..].trim_start().chars().take_while(|&c| is_ident(c)).collect();
        return Header::Class(name);
    }
    Header::Other
}

/// Walks back from `offset` to the next `{` that encloses it; returns its position.
fn enclosing_brace(content: &str, offset: usize, floor: usize) -> Option<usize> {
    let bytes = content.as_bytes();
    let mut depth = 0usize;
    let mut i = offset.min(bytes.len());
    while i > floor {
        i -= 1;
        match bytes[i] {
            b'}' => depth += 1,
            b'{' if depth == 0 => return Some(i),
            b'{' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn header_before(content: &str, brace: usize) -> Header {
    let from = content.floor_char_boundary(brace.saturating_sub(MAX_HEADER));
    header(&content[from..brace])
}

/// The function whose body encloses `offset`, a method qualified by its class.
fn enclosing_function(content: &str, offset: usize) -> Option<String> {
    let floor = offset.saturating_sub(MAX_SCAN_BYTES);
    let mut at = offset;
    while let Some(brace) = enclosing_brace(content, at, floor) {
        if let Header::Function(name, method) = header_before(content, brace) {
            return Some(if method { qualified(content, brace, floor, name) } else { name });
        }
        at = brace;
    }
    None
}

fn qualified(content: &str, from: usize, floor: usize, name: String) -> String {
    match enclosing_brace(content, from, floor).map(|b| header_before(content, b)) {
        Some(Header::Class(class)) if !class.is_empty() => format!("{class}.{name}"),
        _ => name,
    }
}

/// The function that starts at `offset` (its name, parameters or `function` keyword): the
/// header from the start of its line to the first `{` after it.
fn function_at(content: &str, offset: usize) -> Option<String> {
    let offset = content.floor_char_boundary(offset.min(content.len()));
    let line_start = content[..offset].rfind('\n').map_or(0, |n| n + 1);
    let ahead = &content[offset..content.floor_char_boundary((offset + MAX_HEADER).min(content.len()))];
    let brace = offset + ahead.find('{')?;
    if content[offset..brace].contains([';', '}']) {
        return None;
    }
    match header(&content[line_start.max(brace.saturating_sub(MAX_HEADER))..brace]) {
        Header::Function(name, true) => {
            Some(qualified(content, line_start, offset.saturating_sub(MAX_SCAN_BYTES), name))
        }
        Header::Function(name, false) => Some(name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "// products\nclass ProductList {\n  filter(items) {\n    if (items.length > 3) {\n      throw new Error('too many');\n    }\n    return items;\n  }\n}\n\nfunction computeBestValue(items) {\n  let best = 0;\n  for (const i of items) { best = Math.max(best, i); }\n  return best;\n}\n\nconst onBuy = (event) => {\n  return new ProductList().filter(event.items);\n};\n";

    /// A "minified" one-line file and its map, token by token.
    fn minified() -> (String, Vec<u8>) {
        let min = "class P{f(a){if(a.length>3){throw new Error('too many')}return a}}function c(b){let d=0;for(const i of b){d=Math.max(d,i)}return d}const o=(e)=>{return new P().f(e.items)};";
        let mut b = sourcemap::SourceMapBuilder::new(Some("app.min.js"));
        let src = b.add_source("src/products.js");
        b.set_source_contents(src, Some(ORIGINAL));
        // (minified needle, original needle, name)
        for (m, o, name) in [
            ("P{", "ProductList {", Some("ProductList")),
            ("f(a)", "filter(items)", Some("filter")),
            ("throw", "throw", None),
            ("c(b)", "computeBestValue(items)", Some("computeBestValue")),
            ("(b){", "(items) {\n  let", None),
            ("o=", "onBuy =", Some("onBuy")),
            ("(e)=>", "(event) =>", None),
            ("new P().f", "new ProductList().filter", None),
        ] {
            let dst = min.find(m).expect("needle in minified");
            let at = ORIGINAL.find(o).expect("needle in original");
            let line = ORIGINAL[..at].matches('\n').count() as u32;
            let col = (at - ORIGINAL[..at].rfind('\n').map_or(0, |n| n + 1)) as u32;
            b.add(0, dst as u32, line, col, Some("src/products.js"), name, false);
        }
        let mut out = Vec::new();
        b.into_sourcemap().to_writer(&mut out).expect("map");
        (min.to_owned(), out)
    }

    #[test]
    fn frames_of_v8_firefox_and_groups_parse() {
        let stack = "Error: too many\n    at P.f (https://cdn.example/app.min.js:1:30)\n    at async https://cdn.example/app.min.js:1:99\n    at <anonymous>\nf@https://cdn.example/app.min.js:1:31";
        let frames = parse_stack(stack);
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[0],
            RawFrame { function: "P.f".into(), url: "https://cdn.example/app.min.js".into(), line: 1, column: 30 }
        );
        assert_eq!(frames[1].function, "");
        assert_eq!(frames[2].function, "f");
        assert_eq!(parse_frame("pay (https://shop.test/app.js:10:5)").map(|f| f.line), Some(10));
        assert!(parse_frame(&"x".repeat(10_000)).is_none());
    }

    #[test]
    fn a_stack_frame_reads_as_the_original_method_of_its_class() {
        let (min, map) = minified();
        let at = min.find("throw").expect("throw") as u32 + 1;
        let raw = RawFrame { function: "P.f".into(), url: "x".into(), line: 1, column: at };
        for file in
            [MappedFile::parse(&map, None).expect("map"), MappedFile::parse(&map, Some(min.clone())).expect("map")]
        {
            let f = file.frame(&raw).expect("mapped");
            assert_eq!((f.function.as_str(), f.file.as_str(), f.line), ("ProductList.filter", "src/products.js", 5));
            assert_eq!(f.context_start, 2);
            assert!(f.context.iter().any(|l| l.contains("throw new Error('too many')")), "{:?}", f.context);
        }
    }

    #[test]
    fn a_culprit_at_a_character_position_reads_as_its_function() {
        let (min, map) = minified();
        let file = MappedFile::parse(&map, None).expect("map");
        let pos = min.find("(b){").expect("params") as i32;
        let f = file.culprit("c", 0, 0, pos).expect("mapped");
        assert_eq!((f.function.as_str(), f.line), ("computeBestValue", 11));
        let arrow = min.find("(e)=>").expect("arrow") as i32;
        assert_eq!(file.culprit("o", 0, 0, arrow).map(|f| f.function), Some("onBuy".to_owned()));
        // A sampled stack gives 1-based line and column.
        let col = min.find("c(b)").expect("name") as u32 + 1;
        assert_eq!(file.culprit("c", 1, col, -1).map(|f| f.function), Some("computeBestValue".to_owned()));
    }

    #[test]
    fn fingerprints_ignore_lines_but_not_functions() {
        let f = |function: &str, line| OriginalFrame {
            function: function.into(),
            file: "src/a.js".into(),
            line,
            column: 1,
            context: vec![],
            context_start: 0,
        };
        assert_eq!(
            original_fingerprint("order 1 failed", &f("pay", 10)),
            original_fingerprint("order 2 failed", &f("pay", 12))
        );
        assert_ne!(
            original_fingerprint("order 1 failed", &f("pay", 10)),
            original_fingerprint("order 1 failed", &f("refund", 10))
        );
    }

    #[test]
    fn headers_name_functions_and_skip_blocks() {
        assert_eq!(header("function foo(a, b) "), Header::Function("foo".into(), false));
        assert_eq!(header("  const bar = async (x) => "), Header::Function("bar".into(), false));
        assert_eq!(header("obj.baz = function (x) "), Header::Function("obj.baz".into(), false));
        assert_eq!(header("\n  static qux(a) "), Header::Function("qux".into(), true));
        assert_eq!(header("  if (a == b) "), Header::Other);
        assert_eq!(header("} else "), Header::Other);
        assert_eq!(header("export class Cart extends Base "), Header::Class("Cart".into()));
        assert_eq!(source_mapping_url("x()\n//# sourceMappingURL=app.min.js.map\n"), Some("app.min.js.map"));
        assert_eq!(source_mapping_url("//# sourceMappingURL=data:application/json;base64,e30="), None);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(MappedFile::parse(b"{not json", None).is_err());
        assert!(MappedFile::parse(&[0xff; 100], None).is_err());
    }
}
