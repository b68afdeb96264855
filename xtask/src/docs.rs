//! `cargo xtask docs`: the book in `docs/` rendered to `target/docs/`, one HTML page per chapter
//! of `docs/src/SUMMARY.md` with the table of contents beside it, failing on what makes a book
//! rot: a page the summary leaves out or names twice, a relative link to a file that does not
//! exist, an anchor no heading of its page has. The README's relative links are checked too.
//! `cargo xtask lint` runs it, so CI fails on a broken link.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};

/// One chapter: its file name in `docs/src/`, title and Markdown.
struct Page {
    file: String,
    title: String,
    text: String,
}

pub fn docs() -> Result<()> {
    let root = crate::root();
    let out = root.join("target").join("docs");
    let pages = check(&root)?;
    std::fs::create_dir_all(&out)?;
    for page in &pages {
        let html = render(page, &pages);
        std::fs::write(out.join(page.file.replace(".md", ".html")), html)?;
    }
    std::fs::write(out.join("index.html"), render(&pages[0], &pages))?;
    eprintln!("xtask: the book ({} pages) is in {}", pages.len(), out.display());
    Ok(())
}

/// The chapters in summary order, after checking the summary and every link.
fn check(root: &Path) -> Result<Vec<Page>> {
    let src = root.join("docs").join("src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).context("reading docs/src/SUMMARY.md")?;
    let mut pages = Vec::new();
    let mut seen = BTreeSet::new();
    for (title, file) in summary_entries(&summary) {
        if !seen.insert(file.clone()) {
            bail!("docs/src/SUMMARY.md names {file} twice");
        }
        let text =
            std::fs::read_to_string(src.join(&file)).with_context(|| format!("SUMMARY.md names {file}, missing"))?;
        pages.push(Page { file, title, text });
    }
    if pages.is_empty() {
        bail!("docs/src/SUMMARY.md names no page");
    }
    for entry in std::fs::read_dir(&src)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && name != "SUMMARY.md" && !seen.contains(&name) {
            bail!("docs/src/{name} is not in SUMMARY.md: readers would never find it");
        }
    }
    let anchors: BTreeMap<&str, BTreeSet<String>> =
        pages.iter().map(|p| (p.file.as_str(), headings(&p.text).into_iter().map(|(_, id)| id).collect())).collect();
    let mut broken = Vec::new();
    for page in &pages {
        for link in links(&page.text) {
            if let Err(e) = check_link(&src, &page.file, &link, &anchors) {
                broken.push(format!("docs/src/{}: {link}: {e}", page.file));
            }
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).context("reading README.md")?;
    for link in links(&readme) {
        if let Some(path) = local_path(&link)
            && !root.join(path).exists()
        {
            broken.push(format!("README.md: {link}: no such file"));
        }
    }
    if !broken.is_empty() {
        bail!("broken links:\n  {}", broken.join("\n  "));
    }
    Ok(pages)
}

/// `[Title](file.md)` entries of the summary, in order.
fn summary_entries(summary: &str) -> Vec<(String, String)> {
    summary
        .lines()
        .filter_map(|line| {
            let open = line.find('[')?;
            let close = open + line[open..].find("](")?;
            let end = close + line[close..].find(')')?;
            Some((line[open + 1..close].to_owned(), line[close + 2..end].to_owned()))
        })
        .collect()
}

/// The part of a link that names a local file (`None` for URLs and same-page anchors).
fn local_path(link: &str) -> Option<&str> {
    if link.contains("://") || link.starts_with("mailto:") || link.starts_with('#') {
        return None;
    }
    let path = link.split('#').next().unwrap_or_default();
    (!path.is_empty()).then_some(path)
}

fn check_link(src: &Path, from: &str, link: &str, anchors: &BTreeMap<&str, BTreeSet<String>>) -> Result<()> {
    if link.contains("://") || link.starts_with("mailto:") {
        return Ok(());
    }
    let (path, anchor) = match link.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (link, None),
    };
    let target = if path.is_empty() { from } else { path };
    if let Some(ids) = anchors.get(target) {
        return match anchor {
            Some(a) if !ids.contains(a) => bail!("{target} has no heading #{a}"),
            _ => Ok(()),
        };
    }
    if target.ends_with(".md") && !target.contains('/') {
        bail!("no such page in the book");
    }
    let file: PathBuf = src.join(target);
    if !file.exists() {
        bail!("no such file ({})", file.display());
    }
    Ok(())
}

/// Every link destination of a Markdown text.
fn links(text: &str) -> Vec<String> {
    Parser::new_ext(text, Options::ENABLE_TABLES)
        .filter_map(|e| match e {
            Event::Start(Tag::Link { dest_url, .. }) => Some(dest_url.into_string()),
            _ => None,
        })
        .collect()
}

/// Headings as (text, id), ids made the way mdBook and GitHub make them: lowercase, letters,
/// digits, `-` and `_` kept, spaces to `-`, the rest dropped; repeats get `-1`, `-2`, ….
fn headings(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    let mut current: Option<String> = None;
    for e in Parser::new_ext(text, Options::ENABLE_TABLES) {
        match e {
            Event::Start(Tag::Heading { .. }) => current = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(text) = current.take() {
                    let base = slug(&text);
                    let n = used.entry(base.clone()).or_insert(0);
                    let id = if *n == 0 { base.clone() } else { format!("{base}-{n}") };
                    *n += 1;
                    out.push((text, id));
                }
            }
            _ => {}
        }
    }
    out
}

fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A chapter as a whole HTML document: the table of contents, then the chapter, headings with
/// their ids, links to chapters pointing at their HTML pages.
fn render(page: &Page, pages: &[Page]) -> String {
    let ids = headings(&page.text);
    let mut ids = ids.into_iter();
    let mut events = Vec::new();
    let mut in_heading: Option<HeadingLevel> = None;
    for e in Parser::new_ext(&page.text, Options::ENABLE_TABLES) {
        match e {
            Event::Start(Tag::Heading { level, .. }) => {
                let id = ids.next().map(|(_, id)| id).unwrap_or_default();
                events.push(Event::Html(format!("<{level} id=\"{id}\">").into()));
                in_heading = Some(level);
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(level) = in_heading.take() {
                    events.push(Event::Html(format!("</{level}>\n").into()));
                }
            }
            Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
                let dest = if local_path(&dest_url).is_some_and(|p| p.ends_with(".md") && !p.contains('/')) {
                    dest_url.replacen(".md", ".html", 1).into()
                } else {
                    dest_url
                };
                events.push(Event::Start(Tag::Link { link_type, dest_url: dest, title, id }));
            }
            other => events.push(other),
        }
    }
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let toc: String = pages
        .iter()
        .map(|p| {
            let href = p.file.replace(".md", ".html");
            let current = if p.file == page.file { " aria-current=\"page\"" } else { "" };
            format!("<li><a href=\"{href}\"{current}>{}</a></li>", escape(&p.title))
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Replay</title>\n\
         <meta name=\"viewport\" content=\"width=device-width\">\n<style>{STYLE}</style></head>\n\
         <body><nav><strong>Replay</strong><ol>{toc}</ol></nav><main>{body}</main></body></html>\n",
        escape(&page.title)
    )
}

const STYLE: &str = "body{display:flex;margin:0;font:16px/1.55 system-ui,sans-serif;color:#1d2939}\
nav{flex:0 0 15em;padding:1em;background:#f2f4f7;min-height:100vh}nav ol{padding-left:1.2em}\
nav a[aria-current]{font-weight:bold}main{max-width:52em;padding:1em 2em}\
pre{background:#f2f4f7;padding:.8em;overflow:auto}code{font-size:.92em}\
table{border-collapse:collapse}td,th{border:1px solid #d0d5dd;padding:.3em .5em;vertical-align:top}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_get_the_ids_readers_link_to() {
        let ids: Vec<String> = headings("# Deploying\n## Scale out: PostgreSQL + S3\n## The `binary`\n## Deploying\n")
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        assert_eq!(ids, ["deploying", "scale-out-postgresql--s3", "the-binary", "deploying-1"]);
    }

    #[test]
    fn broken_links_and_anchors_are_found() {
        let src = Path::new("/nonexistent");
        let anchors: BTreeMap<&str, BTreeSet<String>> =
            [("a.md", BTreeSet::from(["top".to_owned()])), ("b.md", BTreeSet::new())].into_iter().collect();
        assert!(check_link(src, "a.md", "b.md", &anchors).is_ok());
        assert!(check_link(src, "b.md", "a.md#top", &anchors).is_ok());
        assert!(check_link(src, "a.md", "#top", &anchors).is_ok());
        assert!(check_link(src, "b.md", "a.md#nowhere", &anchors).is_err());
        assert!(check_link(src, "a.md", "#nowhere", &anchors).is_err());
        assert!(check_link(src, "a.md", "c.md", &anchors).is_err(), "a page the book does not have");
        assert!(check_link(src, "a.md", "../../missing/file.rs", &anchors).is_err());
        assert!(check_link(src, "a.md", "https://example.com/x.md", &anchors).is_ok());
    }

    #[test]
    fn the_book_in_this_repository_has_no_broken_link() {
        let pages = check(&crate::root()).expect("docs/ checks");
        assert!(pages.len() >= 8);
        let html = render(&pages[0], &pages);
        assert!(html.contains("<a href=\"embedding.html\">"), "chapters link to their HTML pages");
    }
}
