//! Symbolication cost: a 50-frame stack read through a 5 MB source map, cold (the map read from
//! storage and parsed) and cached (the parsed map from the server's cache). Prints figures;
//! asserts nothing.
//!
//! `cargo run --release -p replay-server --example symbolicate_bench`

use std::time::Instant;

use replay_core::symbolicate::{RawFrame, parse_stack};
use replay_server::symbols::Cache;
use replay_store::{SqliteStorage, Storage};

const URL: &str = "https://cdn.example/app.min.js";

/// A minified bundle of `n` functions, its map (with the original source inside), and where
/// each function throws in the minified file (column, 0-based).
fn bundle(n: usize) -> (String, Vec<u8>, Vec<u32>) {
    let mut original = String::new();
    let mut min = String::new();
    let mut b = sourcemap::SourceMapBuilder::new(Some("app.min.js"));
    let src = b.add_source("src/app.js");
    let mut throws = Vec::with_capacity(n);
    for i in 0..n {
        let line = (i * 10) as u32;
        original.push_str(&format!(
            "function computeTotal{i}(items) {{\n  let total = 0;\n  for (const item of items) {{\n    total += item.price * {i};\n  }}\n  if (total > {i}) {{\n    throw new Error('limit ' + {i});\n  }}\n  return total;\n}}\n"
        ));
        // (minified text, original line offset, original column, name)
        let parts: [(String, u32, u32, Option<String>); 8] = [
            ("function ".into(), 0, 0, None),
            (format!("a{i}"), 0, 9, Some(format!("computeTotal{i}"))),
            ("(b){".into(), 0, 9 + format!("computeTotal{i}").len() as u32, None),
            ("let c=0;".into(), 1, 2, Some("total".into())),
            ("for(const d of b){".into(), 2, 2, None),
            (format!("c+=d.price*{i}}}"), 3, 4, Some("total".into())),
            (format!("if(c>{i}){{"), 5, 2, None),
            (format!("throw new Error('limit '+{i})}}return c}}"), 6, 4, None),
        ];
        for (text, dl, col, name) in parts {
            if text.starts_with("throw") {
                throws.push(min.len() as u32);
            }
            b.add(0, min.len() as u32, line + dl, col, Some("src/app.js"), name.as_deref(), false);
            min.push_str(&text);
        }
    }
    b.set_source_contents(src, Some(&original));
    let mut map = Vec::new();
    b.into_sourcemap().to_writer(&mut map).expect("map");
    (min, map, throws)
}

fn main() {
    let mut n = 10_000;
    let (min, map, throws) = loop {
        let made = bundle(n);
        if made.1.len() >= 5 << 20 {
            break made;
        }
        n += n / 2;
    };
    println!("bundle: {n} functions, minified {:.1} MB, map {:.1} MB", min.len() as f64 / 1e6, map.len() as f64 / 1e6);
    let stack: String = std::iter::once("Error: limit 7".to_owned())
        .chain((0..50).map(|k| {
            let f = k * (throws.len() / 50);
            format!("    at a{f} ({URL}:1:{})", throws[f] + 1)
        }))
        .collect::<Vec<_>>()
        .join("\n");
    let frames: Vec<RawFrame> = parse_stack(&stack);
    assert_eq!(frames.len(), 50);

    let storage = SqliteStorage::in_memory().expect("db");
    let project = storage.create_project("bench").expect("project").id;
    storage.put_artifact(project, "1", &format!("{URL}.map"), &map).expect("map");
    let read = |cache: &Cache| {
        let file = cache.mapped(&storage, project, "1", URL).expect("storage").expect("a map");
        frames.iter().filter(|f| file.frame(f).is_some()).count()
    };
    for round in 0..3 {
        let cache = Cache::default();
        let t = Instant::now();
        let mapped = read(&cache);
        let cold = t.elapsed();
        let runs = 200;
        let t = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(read(&cache));
        }
        let cached = t.elapsed() / runs;
        println!(
            "round {round}: {mapped}/50 frames mapped; cold (read from storage, parse, map) {:.1} ms; cached {:.1} µs per stack ({:.2} µs per frame)",
            cold.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e6,
            cached.as_secs_f64() * 1e6 / 50.0
        );
    }
}
