//! Source maps end to end: a small shop page served minified (one line, short names) with its
//! map, two releases of it (the second with more code in front, so every minified position
//! moves), the maps uploaded with the CLI (`replay-server sourcemaps upload`). In Chromium the
//! user hits the same bug in both releases and freezes the page; the error's stack and the
//! freeze culprit read as the original functions, files and lines in the API and the viewer,
//! and both releases' errors are one error group.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, FixtureServer, Server, server_bin};

const ORIGINAL: &str = "class ProductList {
  constructor(items) {
    this.items = items;
  }
  filter(limit) {
    if (this.items.length > limit) {
      throw new Error('too many products: ' + this.items.length);
    }
    return this.items;
  }
}

function onFilter() {
  new ProductList([1, 2, 3, 4, 5]).filter(3);
}

function onBest() {
  const until = Date.now() + 2500;
  let best = 0;
  while (Date.now() < until) { best = Math.max(best, Math.random()); }
  document.getElementById('out').textContent = String(best);
}

document.getElementById('filter').addEventListener('click', onFilter);
document.getElementById('best').addEventListener('click', onBest);
";

/// (minified needle, original needle, name) of every mapping.
const TOKENS: &[(&str, &str, Option<&str>)] = &[
    ("class P", "class ProductList", None),
    ("P{", "ProductList {", Some("ProductList")),
    ("constructor(a)", "constructor(items)", None),
    ("f(a){if", "filter(limit)", Some("filter")),
    ("(a){if", "(limit) {", None),
    ("if(this.i.length>a)", "if (this.items.length > limit)", None),
    ("throw", "throw", None),
    ("new Error", "new Error", None),
    ("return this.i}", "return this.items;", None),
    ("function g", "function onFilter", None),
    ("g(){", "onFilter() {", Some("onFilter")),
    ("(){new", "() {\n  new ProductList", None),
    ("new P([", "new ProductList([", None),
    (".f(3)", ".filter(3)", None),
    ("function k", "function onBest", None),
    ("k(){", "onBest() {", Some("onBest")),
    ("(){const", "() {\n  const until", None),
    ("const u", "const until", None),
    ("while", "while", None),
    ("document.getElementById('out')", "document.getElementById('out')", None),
    ("document.getElementById('filter')", "document.getElementById('filter')", None),
];

/// The minified file of release `n` and its source map.
fn minified(n: usize) -> Result<(String, String)> {
    let pad: String = (0..n * 9).map(|i| format!("var z{i}={i};")).collect();
    let min = format!(
        "{pad}class P{{constructor(a){{this.i=a}}f(a){{if(this.i.length>a){{throw new Error('too many products: '+this.i.length)}}return this.i}}}}function g(){{new P([1,2,3,4,5]).f(3)}}function k(){{const u=Date.now()+2500;let b=0;while(Date.now()<u){{b=Math.max(b,Math.random())}}document.getElementById('out').textContent=String(b)}}document.getElementById('filter').addEventListener('click',g);document.getElementById('best').addEventListener('click',k);\n//# sourceMappingURL=app.min.js.map\n"
    );
    let mut b = sourcemap::SourceMapBuilder::new(Some("app.min.js"));
    let src = b.add_source("src/shop.js");
    b.set_source_contents(src, Some(ORIGINAL));
    for (m, o, name) in TOKENS {
        let dst = min.find(m).with_context(|| format!("{m} in the minified file"))?;
        let at = ORIGINAL.find(o).with_context(|| format!("{o} in the original"))?;
        let line = ORIGINAL[..at].matches('\n').count() as u32;
        let col = (at - ORIGINAL[..at].rfind('\n').map_or(0, |n| n + 1)) as u32;
        b.add(0, dst as u32, line, col, Some("src/shop.js"), *name, false);
    }
    let mut map = Vec::new();
    b.into_sourcemap().to_writer(&mut map)?;
    Ok((min, String::from_utf8(map)?))
}

/// The page of release `release` (files under `dir`): the recorder loaded synchronously so the
/// release is set before anything is recorded.
fn write_release(dir: &Path, release: &str, n: usize) -> Result<()> {
    let (min, map) = minified(n)?;
    std::fs::create_dir_all(dir.join("js"))?;
    std::fs::write(dir.join("js/app.min.js"), min)?;
    std::fs::write(dir.join("js/app.min.js.map"), map)?;
    std::fs::write(
        dir.join("index.html"),
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>shop</title>\n\
             <script src=\"{{{{SERVER}}}}/recorder.js\" data-key=\"{{{{KEY}}}}\"></script>\n\
             <script>Replay.setRelease('{release}');</script></head>\n\
             <body><button id=\"filter\">Filter</button> <button id=\"best\">Best value</button> <p id=\"out\"></p>\n\
             <script src=\"js/app.min.js\"></script></body></html>\n"
        ),
    )?;
    Ok(())
}

fn upload(server: &Server, release: &str, prefix: &str, dir: &Path) -> Result<String> {
    let out = std::process::Command::new(server_bin()?)
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .args(["sourcemaps", "upload", "--project", "1", "--release", release, "--url-prefix", prefix])
        .arg(dir)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(out.status.success(), "upload failed: {text} {}", String::from_utf8_lossy(&out.stderr));
    Ok(text)
}

/// Loads the page, hits the bug, freezes the page for 2.5 s, and delivers everything.
async fn use_the_shop(browser: &Browser, fixtures: &FixtureServer) -> Result<()> {
    browser.client.goto(&fixtures.url("index.html")).await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    browser.client.find(Locator::Css("#filter")).await?.click().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    browser.client.find(Locator::Css("#best")).await?.click().await?;
    browser.wait_for("return document.getElementById('out').textContent", Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    browser.flush_within(Duration::from_secs(20)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minified_stacks_and_freeze_culprits_read_as_the_original_source_and_releases_share_a_group() -> Result<()> {
    let server = Server::start()?;
    let (one, two) = (tempfile::tempdir()?, tempfile::tempdir()?);
    write_release(one.path(), "1.0", 1)?;
    write_release(two.path(), "2.0", 2)?;
    // Two origins: each release is its own session.
    let shop1 = FixtureServer::start(one.path().to_owned(), &server.base, &server.key)?;
    let shop2 = FixtureServer::start(two.path().to_owned(), &server.base, &server.key)?;
    let listed = upload(&server, "1.0", &format!("{}/js/", shop1.base), &one.path().join("js"))?;
    ensure!(listed.contains("/js/app.min.js.map") && listed.contains("2 files stored"), "{listed}");
    upload(&server, "2.0", "~/js/", &two.path().join("js"))?;

    let browser = Browser::start().await?;
    use_the_shop(&browser, &shop1).await?;
    use_the_shop(&browser, &shop2).await?;

    let sessions = server.sessions()?;
    ensure!(sessions.len() == 2, "one session per release: {sessions:?}");
    let second = sessions.iter().find(|s| s["release"] == "2.0").context("the 2.0 session")?;
    let id = second["id"].as_str().unwrap_or_default().to_owned();

    // The error's stack and the freeze culprit, read through the maps.
    let read = server.get_json(&format!("/api/v1/projects/1/sessions/{id}/symbolicated"))?;
    let frames = read["stacks"].as_array().and_then(|s| s.first()).map(|s| s["frames"].clone()).context("a stack")?;
    let original = |i: usize| frames[i]["original"].clone();
    ensure!(original(0)["function"] == "ProductList.filter", "top frame: {read}");
    ensure!(original(0)["file"] == "src/shop.js" && original(0)["line"] == 7, "top frame place: {read}");
    ensure!(frames[0]["raw"]["function"] == "P.f", "the raw frame is the minified one: {read}");
    ensure!(original(1)["function"] == "onFilter" && original(1)["line"] == 14, "caller: {read}");
    let culprits = read["scripts"].as_array().cloned().unwrap_or_default();
    ensure!(
        culprits.iter().any(|s| s["original"]["function"] == "onBest"
            && s["original"]["file"] == "src/shop.js"
            && s["original"]["line"] == 17),
        "the freeze culprit is onBest at src/shop.js:17: {read}"
    );

    // One bug, two releases, one group.
    let groups = server.get_json("/api/v1/projects/1/errors")?;
    let ours: Vec<_> = groups["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|g| g["message"].as_str().is_some_and(|m| m.contains("too many products")))
        .collect();
    ensure!(ours.len() == 1, "both releases in one group: {groups}");
    ensure!(
        ours[0]["sessions"] == 2
            && ours[0]["frame"].as_str().is_some_and(|f| f.starts_with("ProductList.filter (src/shop.js:7:")),
        "{groups}"
    );
    let page = server.get_text("/viewer/p/1/errors")?;
    ensure!(page.contains("ProductList.filter (src/shop.js:7:"), "the errors page shows the original frame");

    // What a support engineer sees in the player.
    browser.open_player(&server, &format!("session={id}")).await?;
    let errors = browser
        .wait_for(
            "const t = document.getElementById('panel-errors').textContent; return t.includes('ProductList.filter') ? t : null",
            Duration::from_secs(20),
        )
        .await?;
    let errors = errors.as_str().unwrap_or_default();
    for needle in [
        "at ProductList.filter (src/shop.js:7:",
        "throw new Error('too many products: '",
        "at onFilter (src/shop.js:14:",
    ] {
        ensure!(errors.contains(needle), "errors panel lacks {needle:?}: {errors}");
    }
    let freezes = browser
        .wait_for(
            "const t = document.getElementById('panel-freezes').textContent; return t.includes('onBest') ? t : null",
            Duration::from_secs(20),
        )
        .await?;
    let freezes = freezes.as_str().unwrap_or_default();
    ensure!(freezes.contains("onBest (src/shop.js:17:"), "freeze panel: {freezes}");
    ensure!(freezes.contains("while (Date.now() < until)"), "the freeze panel shows the source: {freezes}");
    browser.close().await
}
