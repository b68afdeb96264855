//! The recorder's options, kept from drifting: `ReplayOptions` in `recorder/js/types/replay.d.ts`
//! is their one description (name, type, the script tag's attribute, meaning). Checked here (run
//! by `cargo xtask docs` and `lint`):
//! - every option the recorder's JavaScript reads (`cfg.name`, `opt('name', 'attribute')`) is
//!   declared, and every declared option is read;
//! - the tag attribute each declaration names (``tag: `data-x` ``) is one the recorder reads
//!   (`data['x']` / `data.x` in `core.js`, `opt(…, 'x')` in `privacy.js`, or the option's own
//!   name, which the tag's attributes are merged under), and an option without one says
//!   "`init` only";
//! - the per-element `data-replay-*` attributes of `privacy.js` are named in `docs/src/privacy.md`;
//! - the options table of `docs/src/embedding.md` (between its markers) is the one rendered from
//!   the declarations (`cargo xtask docs --write` rewrites it).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// One declared option.
#[derive(Debug)]
struct Declared {
    name: String,
    ty: String,
    /// The tag attribute without `data-`, when the option has one.
    attribute: Option<String>,
    doc: String,
}

/// Keys of the recorder's configuration that are not options (set by the recorder itself).
const INTERNAL: &[&str] = &["base"];

pub const BEGIN: &str = "<!-- options: generated from recorder/js/types/replay.d.ts by `cargo xtask docs --write` -->";
pub const END: &str = "<!-- options: end -->";

/// Runs the checks; with `write`, rewrites the docs' table instead of failing on it.
pub fn check(root: &Path, write: bool) -> Result<()> {
    let js = root.join("recorder/js");
    let typings = read(&js.join("types/replay.d.ts"))?;
    let declared = declarations(&typings)?;
    let names: BTreeSet<&str> = declared.iter().map(|d| d.name.as_str()).collect();

    let mut read_names = BTreeSet::new();
    let mut tag_reads = BTreeSet::new();
    let mut element_attributes = BTreeSet::new();
    for entry in std::fs::read_dir(&js).with_context(|| format!("reading {}", js.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("js") {
            continue;
        }
        let source = read(&path)?;
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        read_names.extend(idents_after(&source, "cfg."));
        for (camel, dashed) in opt_calls(&source) {
            read_names.insert(camel);
            tag_reads.insert(dashed);
        }
        if file == "core.js" {
            tag_reads.extend(idents_after(&source, "data."));
            tag_reads.extend(quoted_after(&source, "data['"));
        }
        element_attributes
            .extend(idents_after(&source, "[data-replay-").into_iter().map(|a| format!("data-replay-{a}")));
    }
    let read_names: BTreeSet<&str> = read_names.iter().map(String::as_str).filter(|n| !INTERNAL.contains(n)).collect();
    let undeclared: Vec<_> = read_names.difference(&names).collect();
    let unread: Vec<_> = names.difference(&read_names).collect();
    if !undeclared.is_empty() || !unread.is_empty() {
        bail!(
            "recorder options: read by recorder/js but not declared in ReplayOptions (types/replay.d.ts): \
             {undeclared:?}; declared but never read: {unread:?}"
        );
    }
    for d in &declared {
        match &d.attribute {
            Some(a) if !(tag_reads.contains(a) || *a == d.name) => {
                bail!(
                    "option {}: its tag attribute data-{a} is not read by the recorder (core.js boot, privacy.js opt)",
                    d.name
                )
            }
            None if !d.doc.contains("`init` only") => {
                bail!("option {}: name its tag attribute (tag: `data-…`) or say it is `init` only", d.name)
            }
            _ => {}
        }
    }

    let privacy_md = read(&root.join("docs/src/privacy.md"))?;
    let missing: Vec<_> = element_attributes.iter().filter(|a| !privacy_md.contains(a.as_str())).collect();
    if !missing.is_empty() {
        bail!("docs/src/privacy.md does not name the element attributes {missing:?}");
    }

    let path = root.join("docs/src/embedding.md");
    let text = read(&path)?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} lacks the markers {BEGIN} … {END}", path.display());
    };
    let expected = format!("{}{BEGIN}\n{}{}", &text[..begin], table(&declared), &text[end..]);
    if expected != text {
        if write {
            std::fs::write(&path, expected).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("xtask: rewrote the options table of {}", path.display());
        } else {
            bail!("the options table of docs/src/embedding.md is out of date: run `cargo xtask docs --write`");
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The members of `interface ReplayOptions`, each with the doc comment above it.
fn declarations(typings: &str) -> Result<Vec<Declared>> {
    let start =
        typings.find("export interface ReplayOptions {").context("no `interface ReplayOptions` in replay.d.ts")?;
    let body = &typings[start..];
    let body = &body[..body.find("\n}").context("unterminated ReplayOptions")?];
    let mut out = Vec::new();
    let mut doc = String::new();
    for line in body.lines().skip(1) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("/**") {
            doc.clear();
            doc.push_str(rest.trim_end_matches("*/").trim());
        } else if let Some(rest) = line.strip_prefix('*') {
            let rest = rest.trim_start_matches('/').trim();
            if !rest.is_empty() {
                if !doc.is_empty() {
                    doc.push(' ');
                }
                doc.push_str(rest);
            }
        } else if let Some((name, ty)) = line.split_once("?:") {
            let attribute = doc
                .split_once("tag: `data-")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(attr, _)| attr.to_owned());
            out.push(Declared {
                name: name.trim().to_owned(),
                ty: ty.trim().trim_end_matches(';').to_owned(),
                attribute,
                doc: std::mem::take(&mut doc),
            });
        }
    }
    if out.len() < 10 {
        bail!("only {} options read from ReplayOptions: has the layout of replay.d.ts changed?", out.len());
    }
    Ok(out)
}

/// Identifiers (letters, digits, `_`, `-`) that follow `prefix` in `source`.
fn idents_after(source: &str, prefix: &str) -> Vec<String> {
    source
        .match_indices(prefix)
        .map(|(i, _)| {
            let rest = &source[i + prefix.len()..];
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// The quoted strings that follow `prefix` (which ends with the opening quote).
fn quoted_after(source: &str, prefix: &str) -> Vec<String> {
    source
        .match_indices(prefix)
        .filter_map(|(i, _)| source[i + prefix.len()..].split_once('\'').map(|(s, _)| s.to_owned()))
        .collect()
}

/// `opt('camel', 'dashed')` calls (privacy.js reads its options through them).
fn opt_calls(source: &str) -> Vec<(String, String)> {
    source
        .match_indices("opt('")
        .filter_map(|(i, _)| {
            let rest = &source[i + 5..];
            let (camel, rest) = rest.split_once('\'')?;
            let rest = rest.strip_prefix(", '")?;
            let (dashed, _) = rest.split_once('\'')?;
            Some((camel.to_owned(), dashed.to_owned()))
        })
        .collect()
}

/// The Markdown table of the options.
fn table(declared: &[Declared]) -> String {
    let mut out = String::from("| option (`init`) | tag attribute | type | what |\n|---|---|---|---|\n");
    for d in declared {
        let attribute = d.attribute.as_ref().map_or("—".to_owned(), |a| format!("`data-{a}`"));
        out.push_str(&format!(
            "| `{}` | {attribute} | `{}` | {} |\n",
            d.name,
            d.ty.replace('|', "\\|"),
            d.doc.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_are_read_with_their_tag_attribute() {
        let typings = "export interface ReplayOptions {\n  /** Ingest key (tag: `data-key`). */\n  key?: string;\n  \
                       /**\n   * Uploads, `init` only.\n   */\n  mode?: 'live' | 'buffer';\n";
        let body = format!("{typings}{}}}\n", "  /** x (tag: `data-x`) */\n  x?: number;\n".repeat(9));
        let d = declarations(&body).expect("parsed");
        assert_eq!((d[0].name.as_str(), d[0].attribute.as_deref()), ("key", Some("key")));
        assert_eq!(
            (d[1].name.as_str(), d[1].ty.as_str(), d[1].attribute.as_deref()),
            ("mode", "'live' | 'buffer'", None)
        );
        assert_eq!(d[1].doc, "Uploads, `init` only.");
        assert_eq!(opt_calls("opt('maskAllText', 'mask-all-text')"), [("maskAllText".into(), "mask-all-text".into())]);
        assert_eq!(quoted_after("data['flush-interval']", "data['"), ["flush-interval"]);
    }
}
