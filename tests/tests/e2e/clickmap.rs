//! Click maps and scroll maps in Chromium: 20 sessions of one page recorded with the real
//! recorder, each clicking known elements a known number of times and scrolling to a known
//! depth; the viewer's click map page draws the page with one badge per clicked element whose
//! count is what the sessions clicked, and a scroll map whose figures are the depths they
//! reached. A screenshot of the page is saved to `target/clickmap.png`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, FixtureServer, Server};

const SESSIONS: usize = 20;

/// A page about two and a half screens tall, with its clickable elements in the first screen
/// (a click on them scrolls nothing) and elements of each kind a path names: an id, classes
/// and `:nth-of-type`.
const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>catalogue</title>
<script src=\"{{SERVER}}/recorder.js\" data-key=\"{{KEY}}\"></script>
<style>body { margin: 0; font: 16px sans-serif; } header { padding: 16px; background: #eef; }
nav.menu a { display: inline-block; margin: 8px; padding: 6px 12px; background: #ddd; cursor: pointer; }
ul.items { display: flex; gap: 12px; list-style: none; padding: 16px; } button { padding: 8px 16px; font-size: 16px; }
section { height: 700px; border-top: 1px solid #ccc; padding: 16px; }</style></head>
<body><header><h1>Catalogue</h1><button id=\"buy\">Buy now</button></header>
<nav class=\"menu\"><a class=\"item\">Home</a><a class=\"item next\">Next page</a></nav>
<ul class=\"items\"><li><button class=\"add\">Add one</button></li><li><button class=\"add\">Add two</button></li></ul>
<section>Part one</section><section>Part two</section><section>Part three</section>
<footer>End</footer></body></html>";

/// What the sessions click: (selector for the test, the recorder's path of it).
const TARGETS: [(&str, &str); 3] = [
    ("#buy", "#buy"),
    ("nav.menu a.next", "body > nav.menu > a.item.next:nth-of-type(2)"),
    ("ul.items li:nth-of-type(2) button", "body > ul.items > li:nth-of-type(2) > button.add"),
];

/// Session `i`'s clicks on each target (some none), and how far down it scrolls (a fraction
/// of the scrollable distance).
fn plan(i: usize) -> ([usize; 3], f64) {
    let clicks = [1 + i % 3, usize::from(i.is_multiple_of(2)), usize::from(i.is_multiple_of(5)) * 2];
    let scroll = [0.0, 0.3, 0.6, 1.0][i % 4];
    (clicks, scroll)
}

/// The tenth of the page seen now, as the recorder counts it.
const TENTH: &str = "const h = Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);
    const b = Math.round(scrollY + innerHeight); return b >= h ? 10 : Math.floor(b * 10 / h);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_map_of_20_sessions_shows_each_clicked_element_with_its_count_and_the_scroll_depths() -> Result<()> {
    let server = Server::start()?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("index.html"), PAGE)?;
    let site = FixtureServer::start(dir.path().to_owned(), &server.base, &server.key)?;
    let browser = Browser::start().await?;
    let c = &browser.client;
    let home = c.window().await?;
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    let mut deepest = Vec::new();
    for i in 0..SESSIONS {
        // A tab of its own: a session of its own.
        let tab = c.new_window(true).await?;
        c.switch_to_window(tab.handle.clone()).await?;
        c.goto(&site.url("index.html")).await?;
        browser.flush_within(Duration::from_secs(20)).await?;
        let first = browser.eval(TENTH).await?.as_u64().context("tenth")?;
        let (clicks, scroll) = plan(i);
        for ((selector, path), n) in TARGETS.iter().zip(clicks) {
            for _ in 0..n {
                c.find(Locator::Css(selector)).await?.click().await?;
            }
            if n > 0 {
                *want.entry(path).or_default() += n;
            }
        }
        browser
            .eval(&format!(
                "window.scrollTo(0, (document.documentElement.scrollHeight - innerHeight) * {scroll}); return true;"
            ))
            .await?;
        // The recorder notes a scroll 100 ms after it settles.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let last = browser.eval(TENTH).await?.as_u64().context("tenth")?;
        deepest.push(first.max(last));
        browser.flush_within(Duration::from_secs(20)).await?;
        c.close_window().await?;
        c.switch_to_window(home.clone()).await?;
    }
    let sessions = server.sessions()?;
    ensure!(sessions.len() == SESSIONS, "{SESSIONS} sessions: {}", sessions.len());
    // Page views that reached at least each tenth.
    let reached: Vec<u64> = (0..=10u64).map(|k| deepest.iter().filter(|&&d| d >= k).count() as u64).collect();

    // The API's figures.
    let url = site.url("index.html");
    let map = server.get_json(&format!("/api/v1/projects/1/clickmap?url={url}"))?;
    let counted: BTreeMap<String, u64> = map["elements"]
        .as_array()
        .context("elements")?
        .iter()
        .map(|e| (e["path"].as_str().unwrap_or_default().to_owned(), e["clicks"].as_u64().unwrap_or(0)))
        .collect();
    let expected: BTreeMap<String, u64> = want.iter().map(|(p, n)| ((*p).to_owned(), *n as u64)).collect();
    ensure!(counted == expected, "the API counts what the sessions clicked: {counted:?}, want {expected:?}");
    let api_reached: Vec<u64> =
        map["scroll"]["reached"].as_array().context("reached")?.iter().filter_map(|v| v.as_u64()).collect();
    ensure!(api_reached == reached, "scroll depths {api_reached:?}, want {reached:?} (deepest {deepest:?})");

    // The page: badges over the elements with their counts, nothing missing, the scroll map.
    let encoded: String = url
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    browser.open_viewer(&server, &format!("/viewer/p/1/clickmap?url={encoded}")).await?;
    browser
        .wait_for(
            "const p = document.getElementById('clickmap-picture'); return !!p && p.dataset.state !== 'loading'",
            Duration::from_secs(30),
        )
        .await?;
    let state = browser.eval("return document.getElementById('clickmap-picture').dataset.state").await?;
    let message = browser.eval("return document.getElementById('clickmap-message').textContent").await?;
    ensure!(state == "ready", "the click map was drawn: {state} {message}");
    let badges = browser
        .eval("return [...document.querySelectorAll('.clickmap-badge')].map((b) => [b.dataset.path, b.textContent])")
        .await?;
    let shown: BTreeMap<String, u64> = badges
        .as_array()
        .context("badges")?
        .iter()
        .map(|b| {
            (b[0].as_str().unwrap_or_default().to_owned(), b[1].as_str().and_then(|n| n.parse().ok()).unwrap_or(0))
        })
        .collect();
    ensure!(shown == expected, "one badge per element with what was clicked: {shown:?}, want {expected:?}");
    // Each badge sits on its element in the drawn page.
    let on_target = browser
        .eval(
            "const doc = document.getElementById('clickmap-frame').contentDocument;
             return [...document.querySelectorAll('.clickmap-badge')].every((b) => {
               const r = doc.querySelector(b.dataset.path).getBoundingClientRect();
               const x = parseFloat(b.style.left), y = parseFloat(b.style.top);
               return x >= r.left && x <= r.right && y >= r.top && y <= r.bottom;
             });",
        )
        .await?;
    ensure!(on_target == true, "every badge is over its element");
    let missing = browser.eval("return document.querySelectorAll('#clickmap-missing tbody tr').length").await?;
    ensure!(missing == 0, "every element was found on the drawn page: {missing} missing");
    let table = browser
        .eval("return [...document.querySelectorAll('#scroll-map tr[data-depth] td.count')].map((td) => Number(td.textContent))")
        .await?;
    let table: Vec<u64> = table.as_array().context("scroll map")?.iter().filter_map(|v| v.as_u64()).collect();
    ensure!(table == reached[1..], "the scroll map's figures: {table:?}, want {:?}", &reached[1..]);
    let bands = browser
        .eval("return [...document.querySelectorAll('.scroll-band .scroll-label')].map((l) => l.textContent)")
        .await?;
    let views = reached[0] as f64;
    let want_bands: Vec<String> =
        (1..=10).map(|k| format!("{} % reached {} %", (reached[k] as f64 * 100.0 / views).round(), k * 10)).collect();
    ensure!(bands == serde_json::json!(want_bands), "scroll bands {bands}, want {want_bands:?}");

    let png = c.screenshot().await?;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/clickmap.png");
    std::fs::write(&path, &png)?;
    println!("click map screenshot: {}", path.canonicalize()?.display());
    browser.close().await
}
