//! Checks that keep `ARCHITECTURE.md` and the module layering honest, run by `cargo xtask lint`
//! (and as this crate's tests):
//!
//! - **code map:** every workspace crate (its folder) and every top-level module of every crate
//!   (`src/x.rs` or `src/x/`) is named in `ARCHITECTURE.md`, so a new module cannot land without
//!   its line in the map;
//! - **no import cycle:** inside each crate, the graph of top-level modules (module `a` uses
//!   `crate::b`, or a name the crate root re-exports from `b`) has no cycle. Between crates,
//!   Cargo already refuses cycles.
//!
//! Both read the sources as text; they need no build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Runs both checks on the workspace at `root`.
pub fn check(root: &Path) -> Result<()> {
    let crates = workspace_crates(root)?;
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).context("reading ARCHITECTURE.md")?;
    let mut missing = Vec::new();
    let mut cycles = Vec::new();
    for dir in &crates {
        let rel = dir.strip_prefix(root).unwrap_or(dir).to_string_lossy().replace('\\', "/");
        if !map.contains(&format!("`{rel}/`")) {
            missing.push(format!("crate `{rel}/`"));
        }
        let modules = top_level_modules(dir)?;
        for m in modules.keys() {
            if !names_module(&map, m) {
                missing.push(format!("module `{m}` of `{rel}/`"));
            }
        }
        if let Some(cycle) = find_cycle(&module_graph(dir, &modules)?) {
            cycles.push(format!("{rel}: {}", cycle.join(" → ")));
        }
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("ARCHITECTURE.md's code map does not name: {}", missing.join(", ")));
    }
    if !cycles.is_empty() {
        problems.push(format!("import cycles between top-level modules: {}", cycles.join("; ")));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// The folders of the workspace members, from the root `Cargo.toml`'s `members = [...]`.
fn workspace_crates(root: &Path) -> Result<Vec<PathBuf>> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let start = manifest.find("members").context("no workspace members")?;
    let list = &manifest[start..];
    let open = list.find('[').context("members is not a list")?;
    let close = list.find(']').context("members is not a list")?;
    let members = list[open + 1..close].split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty());
    Ok(members.map(|m| root.join(m)).collect())
}

/// The top-level modules of a crate (`src/x.rs`, `src/x/`, and for an integration-test-only
/// crate its `tests/` folders), each with the files it is made of.
fn top_level_modules(dir: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut out = BTreeMap::new();
    let src = dir.join("src");
    let Ok(entries) = std::fs::read_dir(&src) else { return Ok(out) };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files)?;
            if !files.is_empty() {
                out.insert(name, files);
            }
        } else if let Some(stem) = name.strip_suffix(".rs")
            && !matches!(stem, "lib" | "main")
        {
            out.entry(stem.to_owned()).or_insert_with(Vec::new).push(path.clone());
        }
    }
    Ok(out)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// True when the map names module `m`: `` `m.rs` ``, `` `m/` `` or `` `m` `` (alone or at the end
/// of a path such as `` `storage/sqlite` ``).
fn names_module(map: &str, m: &str) -> bool {
    map.contains(&format!("`{m}.rs`"))
        || map.contains(&format!("`{m}/`"))
        || map.contains(&format!("`{m}`"))
        || map.contains(&format!("/{m}.rs`"))
        || map.contains(&format!("/{m}/`"))
}

/// Edges `a → b` between top-level modules: `a`'s files name `crate::b`, or a name that the
/// crate root re-exports from `b` (`pub use b::Name`).
fn module_graph(dir: &Path, modules: &BTreeMap<String, Vec<PathBuf>>) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut reexports = BTreeMap::new();
    for root_file in ["lib.rs", "main.rs"] {
        if let Ok(text) = std::fs::read_to_string(dir.join("src").join(root_file)) {
            for line in text.lines().map(str::trim) {
                let Some(rest) = line.strip_prefix("pub use ") else { continue };
                let Some((module, names)) = rest.split_once("::") else { continue };
                if !modules.contains_key(module) {
                    continue;
                }
                for name in names.trim_end_matches(';').trim_matches(|c| c == '{' || c == '}').split(',') {
                    let name = name.trim();
                    let name = name.rsplit_once(" as ").map_or(name, |(_, alias)| alias.trim());
                    let name = name.rsplit("::").next().unwrap_or(name);
                    if !name.is_empty() {
                        reexports.insert(name.to_owned(), module.to_owned());
                    }
                }
            }
        }
    }
    let mut graph = BTreeMap::new();
    for (module, files) in modules {
        let mut used = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            for first in crate_paths(&text) {
                let target = if modules.contains_key(&first) { Some(first) } else { reexports.get(&first).cloned() };
                if let Some(t) = target.filter(|t| t != module) {
                    used.insert(t);
                }
            }
        }
        graph.insert(module.clone(), used);
    }
    Ok(graph)
}

/// The first segment of every path that starts with `crate::` in `text` (comments and the unit
/// tests module at the end of a file skipped: tests may use any module), including each item of
/// a `crate::{a, b::c}` group.
fn crate_paths(text: &str) -> Vec<String> {
    let text = text.find("#[cfg(test)]\nmod tests").map_or(text, |at| &text[..at]);
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        // Not part of a longer identifier (`replay_crate::`).
        let boundary = rest[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        rest = &rest[at + "crate::".len()..];
        if !boundary {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && c != ',' {
                    item.push(c);
                }
            }
            items.push(item);
            out.extend(items.iter().filter_map(|i| ident(i.trim())));
        } else if let Some(i) = ident(rest) {
            out.push(i);
        }
    }
    out
}

fn ident(s: &str) -> Option<String> {
    let id: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!id.is_empty() && id != "self").then_some(id)
}

/// A cycle of the graph, as its modules with the first repeated at the end, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for start in graph.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        // Iterative depth-first search: (node, its successors not yet visited).
        let mut stack: Vec<(&str, Vec<&str>)> = Vec::new();
        let succ = |n: &str| graph.get(n).map(|s| s.iter().map(String::as_str).collect()).unwrap_or_default();
        marks.insert(start, Mark::Open);
        stack.push((start, succ(start)));
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            match next.pop() {
                Some(n) => match marks.get(n) {
                    Some(Mark::Open) => {
                        let from = stack.iter().position(|(m, _)| *m == n).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..].iter().map(|(m, _)| (*m).to_owned()).collect();
                        cycle.push(n.to_owned());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(n, Mark::Open);
                        stack.push((n, succ(n)));
                    }
                },
                None => {
                    marks.insert(node, Mark::Done);
                    stack.pop();
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).to_owned()).or_default().insert((*b).to_owned());
            g.entry((*b).to_owned()).or_default();
        }
        g
    }

    #[test]
    fn finds_cycles_and_accepts_layers() {
        assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
        let cycle = find_cycle(&graph(&[("ingest", "storage"), ("storage", "sqlite"), ("sqlite", "ingest")]));
        assert_eq!(cycle.map(|c| c.len()), Some(4));
    }

    #[test]
    fn reads_crate_paths() {
        let text = "use crate::{ApiError, auth::Reader, layout::{self, Nav}};\n// crate::commented\nlet x = crate::storage::now_ms(); replay_crate::no;\n#[cfg(test)]\nmod tests {\n use crate::codec;\n}";
        assert_eq!(crate_paths(text), ["ApiError", "auth", "layout", "storage"]);
    }

    /// The real workspace: its map names every crate and module, and no crate has a cycle.
    #[test]
    fn workspace_code_map_and_layers() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).to_path_buf();
        if let Err(e) = check(&root) {
            panic!("{e:#}");
        }
    }
}
