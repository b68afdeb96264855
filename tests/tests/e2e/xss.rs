//! The XSS corpus: hostile recordings (fixtures in `tests/fixtures/xss/`) are ingested through
//! the API and replayed in the real player, by seeking and by playing. No script may run in the
//! player (a sentinel stays unset and no script-only request reaches the canary server), and no
//! request at all reaches the canary when "block external resources" is on. The sanitiser is
//! checked on its own too (the sandbox alone would keep the sentinel unset): the replayed DOM
//! holds no scripts, handlers, script URLs, `srcdoc`, meta refresh, `<base href>`, form
//! actions, `referrerpolicy` or `<meta name=referrer>`, and clicking every link and button
//! leaves the replay frame where it is; no request reaches the canary with a `Referer`. The
//! snapshot API's HTML of each recording, parsed by the browser, holds none of the
//! script-capable constructs either (the same rules: `replay_protocol::sanitize`).
//!
//! Fixture format: an element is `["tag", {"attr": "value"}, child...]`, a text node a string.
//! `{{SENTINEL}}` becomes script that would set the sentinel and call the canary;
//! `{{CANARY}}` the canary server's origin. Paths under `/script/` can only be requested by
//! running script or by navigation the player must prevent; `/external/` are plain resources,
//! and so are `/page/` ones (relative URLs resolved against the recorded page, which is on the
//! canary: `relative-after-base.png` arriving under `/page/` and not `/script/base/` shows that
//! the recorded `<base>` was ignored).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use replay_e2e::{Browser, Server};
use replay_protocol::test_util::{at, page_meta, page_nodes, snapshot};
use replay_protocol::{
    AddedSubtree, Attr, AttrChange, Batch, Event, EventData, Mutation, Namespace, Node, NodeKind, PageMeta,
    encode_batch,
};
use serde_json::Value;

const FIXTURES: &[(&str, &str)] = &[
    ("scripts", include_str!("../../fixtures/xss/scripts.json")),
    ("handlers", include_str!("../../fixtures/xss/handlers.json")),
    ("urls", include_str!("../../fixtures/xss/urls.json")),
    ("svg-animate", include_str!("../../fixtures/xss/svg-animate.json")),
    ("external", include_str!("../../fixtures/xss/external.json")),
    ("referrer", include_str!("../../fixtures/xss/referrer.json")),
];

/// A loopback HTTP server that records every request path (and the `Referer` it came with)
/// and answers 200.
struct Canary {
    origin: String,
    hits: Arc<Mutex<Vec<String>>>,
    referers: Arc<Mutex<Vec<(String, String)>>>,
}

impl Canary {
    fn start() -> Result<Canary> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let origin = format!("http://{}", listener.local_addr()?);
        let hits = Arc::new(Mutex::new(Vec::new()));
        let referers = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&hits);
        let seen_referers = Arc::clone(&referers);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                // The headers, up to the blank line: only the Referer is kept.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("referer")
                        && let Ok(mut r) = seen_referers.lock()
                    {
                        r.push((path.clone(), value.trim().to_owned()));
                    }
                    header.clear();
                }
                if let Ok(mut h) = seen.lock() {
                    h.push(path);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Ok(Canary { origin, hits, referers })
    }

    /// (path, Referer) of the requests that came with a `Referer` header.
    fn referers(&self) -> Vec<(String, String)> {
        self.referers.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn clear(&self) {
        if let Ok(mut h) = self.hits.lock() {
            h.clear();
        }
        if let Ok(mut r) = self.referers.lock() {
            r.clear();
        }
    }
}

/// Builds snapshot nodes from a fixture tree, giving ids from `next`.
fn nodes_of(tree: &Value, parent: u32, ns: Namespace, next: &mut u32, out: &mut Vec<Node>) -> Result<()> {
    let id = *next;
    *next += 1;
    match tree {
        Value::String(text) => out.push(Node { id, parent, kind: NodeKind::Text(text.clone()) }),
        Value::Array(parts) => {
            let tag = parts.first().and_then(Value::as_str).context("element without tag")?;
            let ns = match tag {
                "svg" => Namespace::Svg,
                "math" => Namespace::MathMl,
                "foreignObject" => Namespace::Svg,
                _ => ns,
            };
            let attrs = parts
                .get(1)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| Attr { name: k.clone(), value: v.as_str().unwrap_or_default().to_owned() })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Node { id, parent, kind: NodeKind::Element { tag: tag.to_owned(), ns, attrs } });
            let child_ns = if tag == "foreignObject" { Namespace::Html } else { ns };
            for child in parts.iter().skip(2) {
                nodes_of(child, id, child_ns, next, out)?;
            }
        }
        _ => bail!("bad fixture node {tree}"),
    }
    Ok(())
}

const SENTINEL: &str = "try{parent.__xss=(parent.__xss||0)+1}catch(e){};try{top.__xss=1}catch(e){};new Image().src='{{CANARY}}/script/ran'";

/// The hostile session of one fixture: a snapshot holding it, then the same tree added again
/// by a mutation (the play-forward path), then attribute changes that try to add handlers and
/// script URLs to existing elements.
fn hostile_session(name: &str, fixture: &str, canary: &str) -> Result<Vec<u8>> {
    let text = fixture.replace("{{SENTINEL}}", &SENTINEL.replace("{{CANARY}}", canary)).replace("{{CANARY}}", canary);
    let tree: Value = serde_json::from_str(&text).with_context(|| format!("fixture {name}"))?;
    let mut nodes = page_nodes(&[], []);
    let mut next = 10;
    nodes_of(&tree, 4, Namespace::Html, &mut next, &mut nodes)?;
    let mut added = Vec::new();
    nodes_of(&tree, 4, Namespace::Html, &mut next, &mut added)?;
    added[0].parent = 0;
    let mut b = Batch::new(format!("xss-{name}"), "p1", 0, 1_700_000_000_000);
    let page = format!("{canary}/page/index.html");
    b.flags = Batch::FLAG_PAGE_START;
    let attr = |id, name: &str, value: &str| AttrChange { id, name: name.into(), value: Some(value.into()) };
    b.events = vec![
        at(0, EventData::Meta(PageMeta { title: "hostile".into(), ..page_meta(&page) })),
        at(0, snapshot(nodes)),
        Event {
            t: 500,
            data: EventData::Mutation(Mutation {
                adds: vec![AddedSubtree { parent: 4, next: 0, nodes: added }],
                ..Mutation::default()
            }),
        },
        Event {
            t: 1000,
            data: EventData::Mutation(Mutation {
                attrs: vec![
                    attr(4, "onload", &SENTINEL.replace("{{CANARY}}", canary)),
                    attr(4, "onmouseover", &SENTINEL.replace("{{CANARY}}", canary)),
                    attr(10, "href", "javascript:parent.__xss=1"),
                    attr(10, "srcdoc", "<script>parent.__xss=1</script>"),
                    attr(10, "formaction", "javascript:parent.__xss=1"),
                ],
                ..Mutation::default()
            }),
        },
    ];
    b.end = b.start + 1000;
    Ok(encode_batch(&b)?)
}

const EXERCISE_JS: &str = r#"
const doc = document.getElementById('frame').contentDocument;
for (const el of doc.querySelectorAll('*')) {
  for (const type of ['mouseover', 'focus', 'error', 'load', 'toggle', 'animationstart']) {
    try { el.dispatchEvent(new Event(type)); } catch (e) {}
  }
  try { el.focus(); } catch (e) {}
}
return true;
"#;

/// What the sanitiser must have removed from a document, checked on its own (the sandbox
/// would stop most of it anyway): every element, template contents and shadow roots included.
/// `survivors(doc, player)` returns one line per survivor. The player removes more than the
/// snapshot API (`player` true): form actions, any `http-equiv`, frame sources; the snapshot
/// keeps those as recorded unless they hold a script URL or a refresh.
const SURVIVORS_FN: &str = r#"
const survivors = (doc, player) => {
  const found = [];
  // As a browser reads a URL: ASCII whitespace and control characters anywhere are ignored.
  const scriptUrl = (v) => /^(javascript:|vbscript:|data:text\/html)/.test(v.replace(/[\x00-\x20]/g, '').toLowerCase());
  const urlAttrs = ['href', 'src', 'xlink:href', 'data', 'poster', 'background', 'action', 'formaction', 'cite', 'ping'];
  const visit = (root) => {
    for (const el of root.querySelectorAll('*')) {
      const tag = el.localName.toLowerCase();
      if (tag === 'script') found.push(`<${tag}> element`);
      if (tag === 'meta' && el.hasAttribute('http-equiv') && (player || /refresh/i.test(el.getAttribute('http-equiv')))) {
        found.push(`<meta http-equiv=${el.getAttribute('http-equiv')}>`);
      }
      if (tag === 'meta' && /^\s*referrer\s*$/i.test(el.getAttribute('name') || '')) found.push('<meta name=referrer>');
      if (tag === 'base' && el.hasAttribute('href')) found.push(`<base href=${el.getAttribute('href')}>`);
      if ((tag === 'object' || tag === 'embed') && (el.hasAttribute('data') || el.hasAttribute('src'))) found.push(`<${tag}> with a source`);
      for (const a of el.attributes) {
        const name = a.name.toLowerCase();
        if (name.startsWith('on')) found.push(`<${tag} ${name}>`);
        if (name === 'srcdoc' || name === 'referrerpolicy') found.push(`<${tag} ${name}>`);
        if (player && (name === 'action' || name === 'formaction')) found.push(`<${tag} ${name}>`);
        if (urlAttrs.includes(name) && scriptUrl(a.value)) found.push(`<${tag} ${name}=${a.value}>`);
        if (['values', 'to', 'from', 'by'].includes(name) && /javascript:/i.test(a.value.replace(/[\x00-\x20]/g, ''))) {
          found.push(`<${tag} ${name}=${a.value}>`);
        }
      }
      if (tag === 'template' && el.content) visit(el.content);
      if (el.shadowRoot) visit(el.shadowRoot);
    }
  };
  visit(doc);
  if (!doc.body || !doc.body.firstElementChild) found.push('nothing was replayed');
  return found;
};
"#;

/// Clicks every link, button and submit control of the replayed page, as a support engineer
/// might; remembers the document so that a navigation of the replay frame shows afterwards.
const CLICK_JS: &str = r#"
const frame = document.getElementById('frame');
const doc = frame.contentDocument;
window.__replayDocument = doc;
const targets = doc.querySelectorAll('a, area, button, [type=submit], [type=image], summary');
for (const el of targets) { try { el.click(); } catch (e) {} }
return targets.length;
"#;

/// Did the replay frame stay on the replayed document? (A navigation away replaces the
/// document, or makes it unreachable when it went to another origin.)
const STAYED_JS: &str = r#"
const frame = document.getElementById('frame');
let href = null;
try { href = frame.contentWindow.location.href; } catch (e) { href = 'another origin'; }
return [frame.contentDocument === window.__replayDocument, href];
"#;

async fn assert_sanitised(browser: &Browser, id: &str, path: &str) -> Result<()> {
    let script = format!("{SURVIVORS_FN} return survivors(document.getElementById('frame').contentDocument, true);");
    let survivors = browser.eval(&script).await?;
    ensure!(survivors.as_array().is_some_and(Vec::is_empty), "{id} ({path}): the sanitiser let through {survivors}");
    Ok(())
}

/// The snapshot API's HTML of session `id`, parsed by the browser (`DOMParser`: scripting off,
/// so `<noscript>` content is markup too), holds nothing script-capable either.
async fn assert_snapshot_sanitised(browser: &Browser, server: &Server, id: &str) -> Result<()> {
    let html = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    // A page without the viewer's CSP (which requires Trusted Types for parsing HTML).
    browser.client.goto("about:blank").await?;
    let script =
        format!("{SURVIVORS_FN} return survivors(new DOMParser().parseFromString(arguments[0], 'text/html'), false);");
    let survivors = browser.client.execute(&script, vec![Value::String(html.clone())]).await?;
    ensure!(
        survivors.as_array().is_some_and(Vec::is_empty),
        "{id}: the snapshot API let through {survivors} in {html}"
    );
    Ok(())
}

async fn replay_and_check(browser: &Browser, server: &Server, id: &str, block: bool) -> Result<()> {
    let query = if block { "&block=1" } else { "" };
    // Seek path: the whole document at the end.
    browser.open_player(server, &format!("session={id}&t=end{query}")).await?;
    assert_sanitised(browser, id, "seek").await?;
    browser.eval(EXERCISE_JS).await?;
    // Play path: from the start, every change as an operation.
    browser.eval("window.replayPlayer.seek(0); document.getElementById('speed').value = '16'; document.getElementById('speed').dispatchEvent(new Event('change')); window.replayPlayer.play(); return true;").await?;
    browser.wait_for("return !window.replayPlayer.playing()", Duration::from_secs(10)).await?;
    assert_sanitised(browser, id, "play").await?;
    browser.eval(EXERCISE_JS).await?;
    let clicked = browser.eval(CLICK_JS).await?;
    // Navigations, scripts and resource loads triggered above have this long to show up at
    // the canary (a request the player must prevent cannot be waited for).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stayed = browser.eval(STAYED_JS).await?;
    ensure!(
        stayed[0] == true && stayed[1] == "about:blank",
        "{id}: clicking the {clicked} links and buttons of the replay navigated the frame: {stayed}"
    );
    let sentinel = browser
        .eval("const w = document.getElementById('frame').contentWindow; return [window.__xss ?? null, (w && w.__xss) ?? null, document.title];")
        .await?;
    ensure!(sentinel[0].is_null() && sentinel[1].is_null(), "{id}: a script ran in the player: {sentinel}");
    let sandbox = browser.eval("return document.getElementById('frame').getAttribute('sandbox')").await?;
    ensure!(
        !sandbox.as_str().unwrap_or("allow-scripts").contains("allow-scripts"),
        "sandbox allows scripts: {sandbox}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_recordings_run_no_script_and_reach_no_canary_when_blocked() -> Result<()> {
    let canary = Canary::start()?;
    let server = Server::start()?;
    let browser = Browser::start().await?;
    for (name, fixture) in FIXTURES {
        let body = hostile_session(name, fixture, &canary.origin)?;
        let (status, answer) = server.ingest(Some(&server.key), &body, None)?;
        ensure!(status == 200, "ingest of {name} failed: {answer}");
    }

    for (name, _) in FIXTURES {
        let id = format!("xss-{name}");
        assert_snapshot_sanitised(&browser, &server, &id).await?;
        canary.clear();
        replay_and_check(&browser, &server, &id, true).await?;
        let hits = canary.hits();
        ensure!(hits.is_empty(), "{name}: with external resources blocked the canary was reached: {hits:?}");

        canary.clear();
        replay_and_check(&browser, &server, &id, false).await?;
        let hits = canary.hits();
        let scripted: Vec<&String> =
            hits.iter().filter(|p| !p.starts_with("/external/") && !p.starts_with("/page/")).collect();
        ensure!(scripted.is_empty(), "{name}: requests only script or navigation could make: {scripted:?}");
        // The viewer pages send `Referrer-Policy: no-referrer`; a recorded policy must not
        // override it and tell third parties which session was watched.
        let referers = canary.referers();
        ensure!(referers.is_empty(), "{name}: the replay sent the viewer's URL as Referer: {referers:?}");
        if *name == "external" {
            // Relative URLs (under /page/) resolve against the recorded page, wherever CSS
            // takes a URL: `url()`, `@import "..."`, `image-set("...")`, inline styles.
            let expected = [
                "/external/img.png",
                "/external/import.css",
                "/external/link.css",
                "/external/bg.png",
                "/external/font.woff2",
                "/external/inline-style.png",
                "/external/import-string.css",
                "/external/image-set.png",
                "/page/import-relative.css",
                "/page/image-set-relative.png",
                "/page/inline-relative.png",
            ];
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let missing = loop {
                let hits = canary.hits();
                let missing: Vec<&str> = expected.into_iter().filter(|e| !hits.iter().any(|h| h == e)).collect();
                if missing.is_empty() || std::time::Instant::now() > deadline {
                    break missing;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            ensure!(
                missing.is_empty(),
                "with external resources allowed, recorded resources load as recorded; missing {missing:?} in {:?}",
                canary.hits()
            );
        }
    }
    browser.close().await?;
    Ok(())
}
