//! `cargo xtask size [--no-build]`: what the recorder's script tag makes a page download, from
//! the build in `target/web/` (built first unless `--no-build`). It starts at the loader
//! (`recorder.js`) and follows, transitively, every `.js`/`.mjs`/`.wasm` name that appears as a
//! string literal in the JavaScript (static and dynamic imports, `new URL('x.wasm',
//! import.meta.url)`, the loader's `new URL('recorder/core.js', src)`, a fetched worker script),
//! resolved like a URL against the file that names it; names the build does not hold are
//! skipped. This over-counts a file loaded only on some path (it is listed all the same), the
//! way the shared benchmark's adapter (`bench/adapter.mjs`, `copyRecorderFiles`) lists them.
//!
//! Each file is printed with its raw size and its gzip size (level 9, as a static file server or
//! CDN would send it), then the totals and the number of requests.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The loader, where the walk starts (served at `/recorder.js`).
const LOADER: &str = "recorder.js";
/// At most this many files are followed (a guard against a build that names itself in a loop).
const MAX_FILES: usize = 100;

/// One file the tag loads.
#[derive(Debug)]
pub struct Loaded {
    /// Its path under `target/web/` (also its path on the server).
    pub path: String,
    pub raw: usize,
    pub gzip: usize,
}

pub fn size(args: &[String]) -> Result<()> {
    if !args.iter().any(|a| a == "--no-build") {
        crate::build_web()?;
    }
    let web = crate::root().join("target/web");
    let files = loaded(&web)?;
    println!("{:<40} {:>10} {:>10}", "file the recorder tag loads", "raw bytes", "gzip -9");
    for f in &files {
        println!("{:<40} {:>10} {:>10}", f.path, f.raw, f.gzip);
    }
    let (raw, gzip) = files.iter().fold((0, 0), |(r, g), f| (r + f.raw, g + f.gzip));
    println!("{:<40} {:>10} {:>10}", format!("total ({} requests)", files.len()), raw, gzip);
    Ok(())
}

/// The files the loader in `web` leads to, the loader first, then in the order they are named.
pub fn loaded(web: &Path) -> Result<Vec<Loaded>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut todo = std::collections::VecDeque::from([LOADER.to_owned()]);
    while let Some(path) = todo.pop_front() {
        if !seen.insert(path.clone()) || seen.len() > MAX_FILES {
            continue;
        }
        let file = web.join(&path);
        let Ok(data) = std::fs::read(&file) else {
            if path == LOADER {
                anyhow::bail!("{} is missing: run `cargo xtask build-web`", file.display());
            }
            continue; // a string that only looks like a file name
        };
        if path.ends_with(".js") || path.ends_with(".mjs") {
            let text = String::from_utf8_lossy(&data);
            for name in file_names(&text) {
                if let Some(target) = resolve(&path, &name) {
                    todo.push_back(target);
                }
            }
        }
        out.push(Loaded { path, raw: data.len(), gzip: gzip_len(&data)? });
    }
    Ok(out)
}

/// String literals (`'…'`, `"…"`, `` `…` ``) of `text` that look like a relative file name
/// ending in `.js`, `.mjs` or `.wasm` (letters, digits, `_`, `.`, `/`, `-` only).
fn file_names(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let q = bytes[i];
        if q == b'\'' || q == b'"' || q == b'`' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || b"_./-".contains(&bytes[end])) {
                end += 1;
            }
            if end < bytes.len() && bytes[end] == q && end > start {
                let s = &text[start..end];
                if [".js", ".mjs", ".wasm"].iter().any(|e| s.ends_with(e)) {
                    out.push(s.to_owned());
                }
                i = end + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// `name` resolved against the file `from` (both relative to the web root), like a URL;
/// `None` when it leaves the root.
fn resolve(from: &str, name: &str) -> Option<String> {
    let mut parts: Vec<&str> =
        if let Some(abs) = name.strip_prefix('/') { return Some(abs.to_owned()) } else { from.split('/').collect() };
    parts.pop(); // the file itself
    for p in name.split('/') {
        match p {
            "." | "" => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn gzip_len(data: &[u8]) -> Result<usize> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).context("gzip")?;
    Ok(gz.finish().context("gzip")?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_and_resolved_like_urls() {
        let js = r#"import{a}from"./state.js";new URL('recorder/core.js',s);x=`../up.wasm`;y="a b.js";z='not'"#;
        assert_eq!(file_names(js), ["./state.js", "recorder/core.js", "../up.wasm"]);
        assert_eq!(resolve("recorder.js", "recorder/core.js").as_deref(), Some("recorder/core.js"));
        assert_eq!(resolve("recorder/core.js", "./state.js").as_deref(), Some("recorder/state.js"));
        assert_eq!(resolve("recorder/core.js", "../x.wasm").as_deref(), Some("x.wasm"));
        assert_eq!(resolve("recorder.js", "../x.js"), None);
    }
}
