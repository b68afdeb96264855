//! End-to-end tests of the player and the session list: synthetic sessions built in Rust are
//! ingested through the API and replayed in real Chromium.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use replay_e2e::{Browser, Server};
use replay_protocol::test_util::{at, click, el, page_meta, page_nodes, snapshot, text};
use replay_protocol::{
    AddedSubtree, AppFact, Batch, Console, ConsoleLevel, Environment, ErrorEvent, ErrorKind, Event, EventData, Freeze,
    LongFrame, Mutation, Network, PageMeta, RequestKind, ScriptTiming, Viewport, encode_batch,
};

const T0: u64 = 1_700_000_000_000;

/// The page metadata of these sessions: [`page_meta`] with a Chrome user agent.
fn meta(url: &str) -> EventData {
    EventData::Meta(PageMeta { user_agent: "Mozilla/5.0 Chrome/156.0".into(), ..page_meta(url) })
}

/// A paragraph `<p id=pN>label</p>` added under the body at `t` ms.
fn add_paragraph(t: u32, n: u32, label: &str) -> Event {
    let id = 100 + n * 2;
    Event {
        t,
        data: EventData::Mutation(Mutation {
            adds: vec![AddedSubtree {
                parent: 4,
                next: 0,
                nodes: vec![el(id, 0, "p", &[("id", &format!("p{n}"))]), text(id + 1, id, label)],
            }],
            ..Mutation::default()
        }),
    }
}

fn network(url: &str, status: u16, failed: bool) -> EventData {
    EventData::Network(Network {
        kind: RequestKind::Fetch,
        method: "POST".into(),
        url: url.into(),
        status,
        duration: 350,
        request_size: 120,
        response_size: 40,
        failed,
        aborted: false,
        error: if failed { "net::ERR_CONNECTION_RESET".into() } else { String::new() },
        request_headers: vec![],
        response_headers: vec![],
        request_body: String::new(),
        response_body: String::new(),
        failure: Default::default(),
        timing: None,
    })
}

/// A 29-second session on one page: paragraphs appear at 2, 10, 15 and 29 s; console (3 s,
/// 15 s), a failed request (6 s), an error (7 s), a freeze (11–13 s), environment facts in
/// between; an idle gap from 15 s to 29 s.
/// The environment report of the story sessions, in `language`.
fn environment(language: &str) -> Environment {
    Environment {
        browser: "Chrome".into(),
        browser_version: "156".into(),
        os: "Linux".into(),
        device_pixel_ratio: 2.0,
        device_memory: 8.0,
        cpu_cores: 4,
        connection: "4g".into(),
        language: language.into(),
        timezone: "Europe/Paris".into(),
    }
}

fn story_session(id: &str, url: &str) -> Vec<Vec<u8>> {
    let mut first = Batch::new(id, "page-1", 0, T0);
    first.flags = Batch::FLAG_PAGE_START;
    first.events = vec![
        at(0, meta(url)),
        at(
            0,
            snapshot(page_nodes(
                &[],
                [el(5, 4, "h1", &[]), text(6, 5, "Checkout"), el(7, 4, "input", &[("id", "card")])],
            )),
        ),
        at(1, EventData::Environment(environment("en-GB"))),
        at(1, EventData::App(AppFact::Release("v1.2.3".into()))),
        add_paragraph(2_000, 1, "first"),
        Event {
            t: 3_000,
            data: EventData::Console(Console {
                level: ConsoleLevel::Info,
                args: vec!["cart loaded".into(), "3 items".into()],
                stack: String::new(),
            }),
        },
        at(4_000, click(7, 100, 80)),
        Event {
            t: 4_500,
            data: EventData::Input(replay_protocol::Input { id: 7, value: "****".into(), checked: None }),
        },
    ];
    first.end = T0 + 4_500;
    let mut second = Batch::new(id, "page-1", 1, T0 + 5_000);
    second.events = vec![
        at(1_000, network("https://api.shop.test/pay", 500, false)),
        Event {
            t: 2_000,
            data: EventData::Error(ErrorEvent {
                kind: ErrorKind::Uncaught,
                message: "TypeError: total is undefined".into(),
                stack: "at pay (https://shop.test/app.js:10:5)\nat onClick (https://shop.test/app.js:3:1)".into(),
                source: "https://shop.test/app.js".into(),
                line: 10,
                column: 5,
                count: 1,
            }),
        },
        add_paragraph(5_000, 2, "second"),
        Event {
            t: 6_000,
            data: EventData::Freeze(Freeze::Started { url: url.into(), last_action: "click #pay".into() }),
        },
        Event {
            t: 8_000,
            data: EventData::Freeze(Freeze::Ended {
                duration: 2_000,
                culprits: vec![ScriptTiming {
                    invoker: "BUTTON#pay.onclick".into(),
                    invoker_type: "event-listener".into(),
                    source_url: "https://shop.test/app.js".into(),
                    function: "computeBestValue".into(),
                    char_position: 10,
                    duration: 1_990,
                    forced_style_layout: 0,
                    pause_duration: 0,
                    line: 3,
                    column: 7,
                }],
            }),
        },
        Event {
            t: 8_001,
            data: EventData::LongFrame(LongFrame {
                duration: 2_010,
                blocking_duration: 1_960,
                style_and_layout: 10,
                long_task: false,
                scripts: vec![],
            }),
        },
        add_paragraph(10_000, 3, "third"),
        Event {
            t: 10_001,
            data: EventData::Console(Console {
                level: ConsoleLevel::Error,
                args: vec!["payment failed".into()],
                stack: "at pay (app.js:12:1)".into(),
            }),
        },
        at(24_000, network("https://api.shop.test/retry", 0, true)),
        add_paragraph(24_000, 4, "last"),
    ];
    second.end = T0 + 29_000;
    [first, second].iter().map(|b| encode_batch(b).expect("encodes")).collect()
}

async fn frame_ids(browser: &Browser) -> Result<String> {
    let v = browser
        .eval("return [...document.getElementById('frame').contentDocument.querySelectorAll('p')].map(p => p.id).join(',')")
        .await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

async fn position(browser: &Browser) -> Result<f64> {
    Ok(browser.eval("return window.replayPlayer.position()").await?.as_f64().unwrap_or(-1.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panels_show_the_story_and_clicking_an_entry_seeks_there() -> Result<()> {
    let server = Server::start()?;
    server.ingest_all(&story_session("story", "https://shop.test/checkout"))?;
    let browser = Browser::start().await?;
    browser.open_player(&server, "session=story").await?;

    let counts = browser
        .eval(
            "return Object.fromEntries(['console','network','errors','performance','environment'].map(p => \
             [p, document.querySelectorAll('#panel-' + p + ' > li:not(.compare):not(.legend)').length]))",
        )
        .await?;
    ensure!(counts["console"] == 2 && counts["network"] == 2 && counts["errors"] == 1, "panel counts: {counts}");
    ensure!(counts["performance"] == 3 && counts["environment"] == 3, "panel counts: {counts}");

    let markers = browser
        .eval("return [...document.querySelectorAll('#markers i')].map(i => i.className).sort().join(' ')")
        .await?;
    ensure!(
        markers == "click error error freeze nav request request",
        "timeline markers for clicks, navigations, errors, failed requests and the freeze: {markers}"
    );
    let tip = browser.eval("return document.querySelector('#markers i.freeze').dataset.tip").await?;
    ensure!(tip.as_str().unwrap_or_default().contains("computeBestValue"), "freeze details name the culprit: {tip}");

    // The error's stack trace is in the errors panel; clicking the entry seeks to 7 s.
    let stack = browser.eval("return document.querySelector('#panel-errors .stack').textContent").await?;
    ensure!(stack.as_str().unwrap_or_default().contains("app.js:10:5"), "stack: {stack}");
    browser.eval("document.querySelector('[data-tab=errors]').click(); document.querySelector('#panel-errors .entry').click(); return true").await?;
    ensure!(position(&browser).await? == 7_000.0, "error entry seeks to its time");
    ensure!(frame_ids(&browser).await? == "p1", "the page at 7 s");
    let current =
        browser.eval("return document.querySelector('#panel-errors .entry').classList.contains('current')").await?;
    ensure!(current == true, "the list follows the position");

    // A console entry click seeks to its time.
    browser.eval("document.querySelector('[data-tab=console]').click(); document.querySelectorAll('#panel-console .entry')[0].click(); return true").await?;
    ensure!(position(&browser).await? == 3_000.0, "console entry seeks to its time");
    ensure!(frame_ids(&browser).await? == "p1", "the page at 3 s");
    let future = browser
        .eval("return document.querySelectorAll('#panel-console .entry')[1].classList.contains('future')")
        .await?;
    ensure!(future == true, "entries after the position are marked as still to come");

    // Masked input values and the current URL are shown.
    browser.eval("window.replayPlayer.seek(5000); return true").await?;
    let value =
        browser.eval("return document.getElementById('frame').contentDocument.getElementById('card').value").await?;
    ensure!(value == "****", "masked input value replayed: {value}");
    let url = browser.eval("return document.getElementById('url').textContent").await?;
    ensure!(url == "https://shop.test/checkout", "url above the page: {url}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_panel_flags_what_few_other_sessions_share() -> Result<()> {
    let server = Server::start()?;
    for i in 0..10 {
        server.ingest_all(&story_session(&format!("usual-{i}"), "https://shop.test/checkout"))?;
    }
    let mut odd = story_session("odd", "https://shop.test/checkout");
    // The odd session's language changed after the first report: the latest value counts.
    let mut later = Batch::new("odd", "page-1", 2, T0 + 30_000);
    later.events = vec![Event { t: 0, data: EventData::Environment(environment("fi-FI")) }];
    odd.push(encode_batch(&later)?);
    server.ingest_all(&odd)?;
    let browser = Browser::start().await?;
    browser.open_player(&server, "session=odd").await?;
    browser.wait_for("return document.querySelector('.env-compare') !== null", Duration::from_secs(10)).await?;
    let unusual = browser
        .eval("return [...document.querySelectorAll('.env-compare tr.unusual')].map(r => r.textContent).join(' | ')")
        .await?;
    let unusual = unusual.as_str().unwrap_or_default();
    ensure!(unusual.starts_with("languagefi-FI9% (1/11)"), "only the language is unusual: {unusual}");
    ensure!(!unusual.contains('|'), "one unusual fact: {unusual}");
    ensure!(unusual.contains("en-GB (91%)"), "the most common value is shown: {unusual}");
    let badge = browser.eval("return document.querySelector('[data-tab=environment]').dataset.unusual").await?;
    ensure!(badge == "1", "the tab shows that something is unusual: {badge}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_shortcuts_seek_play_and_change_speed_and_links_open_at_a_moment() -> Result<()> {
    let server = Server::start()?;
    server.ingest_all(&story_session("keys", "https://shop.test/"))?;
    let browser = Browser::start().await?;

    browser.open_player(&server, "session=keys&t=12000").await?;
    ensure!(position(&browser).await? == 12_000.0, "?t= opens at that moment");
    ensure!(frame_ids(&browser).await? == "p1,p2", "the page at 12 s");

    let key = |k: &str| {
        format!(
            "document.body.dispatchEvent(new KeyboardEvent('keydown', {{ key: '{k}', bubbles: true }})); return true"
        )
    };
    browser.eval(&key("ArrowRight")).await?;
    ensure!(position(&browser).await? == 17_000.0, "→ seeks 5 s forward");
    browser.eval(&key("ArrowLeft")).await?;
    browser.eval(&key("ArrowLeft")).await?;
    ensure!(position(&browser).await? == 7_000.0, "← seeks 5 s back");
    browser.eval(&key("5")).await?;
    ensure!(browser.eval("return window.replayPlayer.speed()").await? == 8, "5 → 8×");
    browser.eval(&key("1")).await?;
    ensure!(browser.eval("return window.replayPlayer.speed()").await? == 0.5, "1 → 0.5×");
    browser.eval(&key(" ")).await?;
    ensure!(browser.eval("return window.replayPlayer.playing()").await? == true, "space plays");
    browser.eval(&key(" ")).await?;
    ensure!(browser.eval("return window.replayPlayer.playing()").await? == false, "space pauses");

    let link = browser.eval("return window.replayPlayer.link()").await?;
    ensure!(
        link.as_str().unwrap_or_default().ends_with("t=7000") || link.as_str().unwrap_or_default().contains("t=70"),
        "link: {link}"
    );

    // Skip inactivity: playing at 1× from 16 s reaches the paragraph at 29 s within seconds.
    browser.eval("window.replayPlayer.seek(16000); document.getElementById('speed').value = '1'; document.getElementById('speed').dispatchEvent(new Event('change')); window.replayPlayer.play(); return true").await?;
    browser.wait_for("return window.replayPlayer.position() >= 28000", Duration::from_secs(5)).await?;
    browser.wait_for("return !window.replayPlayer.playing()", Duration::from_secs(5)).await?;
    ensure!(frame_ids(&browser).await? == "p1,p2,p3,p4", "played to the end");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_session_streams_in_ranges_and_seeks_from_keyframes() -> Result<()> {
    let server = Server::start()?;
    // 40 batches, each adding a big list: the player loads it range by range.
    let mut bodies = story_session("long", "https://shop.test/long");
    bodies.truncate(1);
    let mut next_id = 10_000;
    for seq in 1..=40u32 {
        let mut b = Batch::new("long", "page-1", seq, T0 + 5_000 + u64::from(seq) * 1_000);
        let root = next_id;
        let mut nodes = vec![el(root, 0, "ul", &[("class", "list")])];
        for _ in 0..1_000 {
            next_id += 2;
            nodes.push(el(next_id, root, "li", &[]));
            nodes.push(text(next_id + 1, next_id, "row"));
        }
        next_id += 2;
        b.events.push(Event {
            t: 0,
            data: EventData::Mutation(Mutation {
                removes: if seq > 1 { vec![root - 2_002] } else { vec![] },
                adds: vec![AddedSubtree { parent: 4, next: 0, nodes }],
                ..Mutation::default()
            }),
        });
        b.end = b.start;
        bodies.push(encode_batch(&b)?);
    }
    server.ingest_all(&bodies)?;

    let range = server.get_json("/api/v1/sessions/long/events?from=3&max_bytes=1")?;
    let seqs: Vec<u64> =
        range["batches"].as_array().map(|a| a.iter().filter_map(|b| b["seq"].as_u64()).collect()).unwrap_or_default();
    ensure!(seqs == vec![3], "a range of one batch from index 3: {seqs:?}");

    let browser = Browser::start().await?;
    browser.open_player(&server, "session=long&t=end").await?;
    let lists = browser
        .eval("return document.getElementById('frame').contentDocument.querySelectorAll('ul.list > li').length")
        .await?;
    ensure!(lists == 1_000, "the end state has one list of 1000 rows: {lists}");
    let keyframes = browser.eval("return window.replayPlayer.keyframes()").await?;
    ensure!(keyframes.as_u64().unwrap_or(0) >= 2, "keyframes were taken on the way: {keyframes}");
    browser.eval("window.replayPlayer.seek(20000); return true").await?;
    let rows =
        browser.eval("return document.getElementById('frame').contentDocument.querySelectorAll('li').length").await?;
    ensure!(rows == 1_000, "seeking back shows one list: {rows}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_file_plays_offline() -> Result<()> {
    let server = Server::start()?;
    server.ingest_all(&story_session("export", "https://shop.test/export"))?;
    let html = server.get_text("/viewer/p/1/export/export")?;
    ensure!(html.contains("id=\"replay-session\"") && html.contains("importmap"), "export is self-contained");
    ensure!(!html.contains("player.js\"") && !html.contains("viewer.css\""), "no reference to server files");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("session.html");
    std::fs::write(&file, html)?;
    // The server is stopped: the file must play with nothing to fetch.
    drop(server);
    let browser = Browser::start().await?;
    browser.client.goto(&format!("file://{}?t=12000", file.display())).await?;
    browser.wait_player().await.context("export failed to play")?;
    ensure!(frame_ids(&browser).await? == "p1,p2", "export opens at ?t=");
    browser.eval("window.replayPlayer.seek(0); window.replayPlayer.play(); return true").await?;
    browser.wait_for("return window.replayPlayer.position() > 0", Duration::from_secs(5)).await?;
    let panels = browser.eval("return document.getElementById('panel-errors').children.length").await?;
    ensure!(panels == 1, "panels in the export: {panels}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_list_is_newest_first_and_filters_by_every_field() -> Result<()> {
    let server = Server::start()?;
    server.ingest_all(&story_session("checkout-a", "https://shop.test/checkout"))?;
    let mut short = Batch::new("cart-b", "p", 0, T0 + 60_000);
    short.events = vec![Event { t: 0, data: meta("https://shop.test/cart") }];
    server.ingest_all(&[encode_batch(&short)?])?;

    let browser = Browser::start().await?;
    let rows = async |query: &str| -> Result<String> {
        browser.open_viewer(&server, &format!("/viewer/{query}")).await?;
        let v = browser
            .eval("return [...document.querySelectorAll('#sessions tbody tr')].map(r => r.dataset.session).join(',')")
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    };
    let all = rows("").await?;
    ensure!(all == "cart-b,checkout-a", "newest first: {all:?}");
    ensure!(rows("?url=CHECKOUT").await? == "checkout-a", "URL contains, case-insensitive");
    ensure!(rows("?min_duration=10").await? == "checkout-a", "minimum duration");
    ensure!(rows("?from=2023-11-14T22%3A14").await? == "cart-b", "time range");
    ensure!(rows("?url=nothing").await?.is_empty(), "no match");
    ensure!(rows("?release=v1.2.3").await? == "checkout-a", "release");
    ensure!(rows("?has_error=1").await? == "checkout-a", "has error");
    ensure!(rows("?has_freeze=1").await? == "checkout-a", "has freeze");
    ensure!(rows("?user=ann").await?.is_empty(), "user");
    // The header's sign-out form (with its form token) ends the sign-in: the list then sends
    // the browser back to the sign-in page.
    browser.eval("document.getElementById('sign-out').click(); return true").await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while browser.client.current_url().await?.path() != "/login" {
        ensure!(std::time::Instant::now() < deadline, "signing out did not reach the sign-in page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.client.goto(&server.url("/viewer/")).await?;
    ensure!(browser.client.current_url().await?.path() == "/login", "the list still opens after signing out");
    browser.close().await?;
    Ok(())
}

/// An 8-second session for the controls around the page: a tall page (so it can scroll), the
/// mouse at (200, 150) at 1 s, a click at (300, 200) at 2 s, the page scrolled to y = 700 at
/// 3 s, a failed request at 3.5 s, a paragraph at 4 s, a click at (400, 250) at 6 s, and the
/// viewport widened to 1600×1000 at 7 s.
fn controls_session(id: &str) -> Vec<u8> {
    let mut b = Batch::new(id, "page-1", 0, T0);
    b.flags = Batch::FLAG_PAGE_START;
    b.events = vec![
        at(0, meta("https://shop.test/tall")),
        at(
            0,
            snapshot(page_nodes(
                &[("style", "margin: 0")],
                [el(5, 4, "div", &[("id", "tall"), ("style", "height: 3000px; background: #eee")]), text(6, 5, "tall")],
            )),
        ),
        at(1_000, EventData::MouseMove(vec![replay_protocol::MousePoint { x: 200, y: 150, dt: 0 }])),
        at(2_000, click(5, 300, 200)),
        at(3_000, EventData::Scroll(replay_protocol::Scroll { id: 0, x: 0, y: 700 })),
        at(3_500, network("https://api.shop.test/stock", 503, false)),
        add_paragraph(4_000, 1, "restocked"),
        at(6_000, click(5, 400, 250)),
        at(7_000, EventData::Viewport(Viewport { width: 1600, height: 1000 })),
    ];
    b.end = T0 + 8_000;
    encode_batch(&b).expect("encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_ripples_scroll_and_scale_follow_the_recording() -> Result<()> {
    let server = Server::start()?;
    server.ingest_all(&[controls_session("controls")])?;
    let browser = Browser::start().await?;
    browser.open_player(&server, "session=controls").await?;
    // Every ripple the player draws, with where it was drawn (they remove themselves).
    browser
        .eval(
            "window.__ripples = []; new MutationObserver((changes) => { for (const c of changes) for (const n of c.addedNodes) \
             if (n.classList && n.classList.contains('ripple')) window.__ripples.push([n.style.left, n.style.top]); }) \
             .observe(document.getElementById('frame-wrap'), { childList: true }); return true",
        )
        .await?;
    let cursor = "const c = document.getElementById('cursor'); return [c.hidden, c.style.left, c.style.top]";

    browser.eval("window.replayPlayer.seek(1500); return true").await?;
    let at = browser.eval(cursor).await?;
    ensure!(at == serde_json::json!([false, "200px", "150px"]), "the cursor where the mouse was at 1.5 s: {at}");
    browser.eval("window.replayPlayer.seek(2500); return true").await?;
    let at = browser.eval(cursor).await?;
    ensure!(at == serde_json::json!([false, "300px", "200px"]), "the cursor where the click was: {at}");
    let ripples = browser.eval("return window.__ripples").await?;
    ensure!(ripples == serde_json::json!([]), "seeking past a click draws no ripple: {ripples}");

    // The recorded scroll position is replayed (set in the frame after a seek).
    let scroll_y = "return document.getElementById('frame').contentWindow.scrollY";
    ensure!(browser.eval(scroll_y).await? == 0, "not scrolled before 3 s");
    browser.eval("window.replayPlayer.seek(3200); return true").await?;
    browser.wait_for(&format!("{scroll_y} === 700"), Duration::from_secs(5)).await?;
    browser.eval("window.replayPlayer.seek(500); return true").await?;
    browser.wait_for(&format!("{scroll_y} === 0"), Duration::from_secs(5)).await?;

    // Playing through the click at 6 s draws a ripple there.
    browser.eval("window.replayPlayer.seek(5500); window.replayPlayer.play(); return true").await?;
    browser.wait_for("return window.__ripples.length > 0", Duration::from_secs(10)).await?;
    let ripples = browser.eval("return window.__ripples").await?;
    ensure!(ripples == serde_json::json!([["400px", "250px"]]), "one ripple at the click: {ripples}");
    browser.wait_for("return !window.replayPlayer.playing()", Duration::from_secs(10)).await?;

    // The page is scaled to fit the stage: 800×600 fits as it is; the 1600×1000 viewport
    // recorded at 7 s does not, and neither does 800×600 in a small window.
    let fit = "const w = document.getElementById('frame-wrap'), s = document.getElementById('stage'), \
               r = w.getBoundingClientRect(), f = document.getElementById('frame'); \
               return [Number(w.dataset.scale), f.style.width, r.width <= s.clientWidth + 1 && r.height <= s.clientHeight + 1]";
    browser.eval("window.replayPlayer.seek(1000); return true").await?;
    let scaled = browser.eval(fit).await?;
    ensure!(scaled == serde_json::json!([1, "800px", true]), "800×600 fits unscaled: {scaled}");
    browser.eval("window.replayPlayer.seek(7500); return true").await?;
    let scaled = browser.eval(fit).await?;
    ensure!(
        scaled[0].as_f64().is_some_and(|s| s > 0.0 && s < 1.0) && scaled[1] == "1600px" && scaled[2] == true,
        "the wider viewport is scaled down to fit: {scaled}"
    );
    browser.eval("window.replayPlayer.seek(1000); return true").await?;
    browser.client.set_window_size(700, 600).await?;
    browser
        .wait_for("return Number(document.getElementById('frame-wrap').dataset.scale) < 1", Duration::from_secs(5))
        .await?;
    let scaled = browser.eval(fit).await?;
    ensure!(scaled[1] == "800px" && scaled[2] == true, "a small window scales the page down: {scaled}");
    browser.close().await?;
    Ok(())
}

/// A 5-second session of a phone: two fingers down at 1 s, moved at 2 s, lifted at 3 s; one
/// finger down at 4 s.
fn touch_session(id: &str) -> Vec<u8> {
    use replay_protocol::{MousePoint, Touch, TouchKind};
    let touch = |kind, points: &[(i32, i32)]| {
        EventData::Touch(Touch { kind, points: points.iter().map(|&(x, y)| MousePoint { x, y, dt: 0 }).collect() })
    };
    let mut b = Batch::new(id, "page-1", 0, T0);
    b.flags = Batch::FLAG_PAGE_START;
    b.events = vec![
        at(0, meta("https://shop.test/phone")),
        at(0, snapshot(page_nodes(&[("style", "margin: 0")], [el(5, 4, "p", &[]), text(6, 5, "swipe me")]))),
        at(1_000, touch(TouchKind::Start, &[(100, 200), (150, 260)])),
        at(2_000, touch(TouchKind::Move, &[(120, 300), (170, 360)])),
        at(3_000, touch(TouchKind::End, &[(120, 300), (170, 360)])),
        at(4_000, touch(TouchKind::Start, &[(40, 50)])),
    ];
    b.end = T0 + 5_000;
    encode_batch(&b).expect("encodes")
}

/// A page with a menu that opens on `:hover` (its rule inserted later through the CSSOM as
/// well as in the style text) and a field styled on `:focus`: the pointer moves over the menu
/// at 1 s and away at 2 s; the field has the focus from 3 s to 4 s.
fn pseudo_session(id: &str) -> Vec<u8> {
    use replay_protocol::{CssChange, CssOp, Focus, MousePoint};
    let css = ".menu { position: absolute; left: 0; top: 0; width: 200px; height: 40px; } \
               .sub { display: none; } .menu:hover .sub { display: block; } \
               @media screen { .menu:hover { color: rgb(255, 0, 0); } } \
               input { background-color: rgb(255, 255, 255); } input:focus { background-color: rgb(0, 128, 0); }";
    let mut b = Batch::new(id, "page-1", 0, T0);
    b.flags = Batch::FLAG_PAGE_START;
    let pointer = |x, y| EventData::MouseMove(vec![MousePoint { x, y, dt: 0 }]);
    b.events = vec![
        at(0, meta("https://shop.test/menu")),
        at(
            0,
            snapshot(page_nodes(
                &[("style", "margin: 0")],
                [
                    el(5, 3, "style", &[]),
                    text(6, 5, css),
                    el(7, 4, "div", &[("class", "menu")]),
                    text(8, 7, "Products"),
                    el(9, 7, "div", &[("class", "sub")]),
                    text(10, 9, "Shoes"),
                    el(11, 4, "input", &[("id", "q"), ("style", "position: absolute; top: 300px")]),
                ],
            )),
        ),
        at(500, pointer(500, 500)),
        at(1_000, pointer(50, 20)),
        at(
            1_500,
            EventData::Css(CssChange {
                owner: 5,
                sheet: 0,
                op: CssOp::Insert {
                    path: vec![6],
                    rule: ".menu:hover .sub { border-top: 3px solid rgb(0, 0, 255); }".into(),
                },
            }),
        ),
        at(2_000, pointer(500, 500)),
        at(3_000, EventData::Focus(Focus { id: 11, focused: true })),
        at(4_000, EventData::Focus(Focus { id: 11, focused: false })),
    ];
    b.end = T0 + 5_000;
    encode_batch(&b).expect("encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hover_and_focus_styles_show_on_the_recorded_pointer_and_focus() -> Result<()> {
    let server = Server::start()?;
    server.ingest_all(&[pseudo_session("pseudo")])?;
    let browser = Browser::start().await?;
    browser.open_player(&server, "session=pseudo").await?;
    let look = "(() => { const d = document.getElementById('frame').contentDocument, \
                cs = (q) => getComputedStyle(d.querySelector(q)); \
                return [cs('.sub').display, cs('.menu').color, cs('.sub').borderTopWidth, cs('#q').backgroundColor].join(' '); })()";
    for (t, want) in [
        (700, "none rgb(0, 0, 0) 0px rgb(255, 255, 255)"),
        (1_200, "block rgb(255, 0, 0) 0px rgb(255, 255, 255)"),
        (1_700, "block rgb(255, 0, 0) 3px rgb(255, 255, 255)"),
        (2_500, "none rgb(0, 0, 0) 0px rgb(255, 255, 255)"),
        (3_500, "none rgb(0, 0, 0) 0px rgb(0, 128, 0)"),
        (4_500, "none rgb(0, 0, 0) 0px rgb(255, 255, 255)"),
        // Back to a moment under the pointer, from a later one.
        (1_800, "block rgb(255, 0, 0) 3px rgb(255, 255, 255)"),
    ] {
        browser.eval(&format!("window.replayPlayer.seek({t}); return true")).await?;
        // The pointer's element is found in the next animation frame.
        let got = browser.wait_for(&format!("return {look} === '{want}'"), Duration::from_secs(5)).await;
        ensure!(got.is_ok(), "at {t} ms: {}, expected {want}", browser.eval(&format!("return {look}")).await?);
    }
    // The stand-in attributes and sheet are the viewer's: the page's own markup is unchanged.
    let extra = browser
        .eval("const d = document.getElementById('frame').contentDocument; return d.querySelectorAll('style').length")
        .await?;
    ensure!(extra == 1, "one style element, the page's: {extra}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_points_are_drawn_where_the_fingers_were() -> Result<()> {
    let server = Server::start()?;
    server.ingest_all(&[touch_session("touch")])?;
    let browser = Browser::start().await?;
    browser.open_player(&server, "session=touch").await?;
    let page = &browser;
    let dots = |t: u64| async move {
        page.eval(&format!("window.replayPlayer.seek({t}); return true")).await?;
        page.eval(
            "return [...document.querySelectorAll('#frame-wrap .touch-point')].map((d) => [d.style.left, d.style.top])",
        )
        .await
    };
    for (t, want) in [
        (500, serde_json::json!([])),
        (1_500, serde_json::json!([["100px", "200px"], ["150px", "260px"]])),
        (2_500, serde_json::json!([["120px", "300px"], ["170px", "360px"]])),
        (3_500, serde_json::json!([])),
        (4_500, serde_json::json!([["40px", "50px"]])),
        // Back to a moment before any touch: the rebuild clears the fingers.
        (200, serde_json::json!([])),
    ] {
        let got = dots(t).await?;
        ensure!(got == want, "touch points at {t} ms: {got}, expected {want}");
    }
    // Playing through the recording draws them too. They show for one recorded second only:
    // an observer notes every dot drawn, so a slow driver cannot miss them between two polls.
    browser
        .eval(
            "window.__dots = []; new MutationObserver(() => { \
             for (const d of document.querySelectorAll('#frame-wrap .touch-point')) window.__dots.push(d.style.left); \
             }).observe(document.getElementById('frame-wrap'), { childList: true }); \
             window.replayPlayer.seek(1800); window.replayPlayer.play(); return true",
        )
        .await?;
    browser.wait_for("return window.__dots.includes('120px')", Duration::from_secs(10)).await?;
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_play_button_markers_network_entries_and_density_graph_work() -> Result<()> {
    let server = Server::start()?;
    server.ingest_all(&[controls_session("timeline")])?;
    let browser = Browser::start().await?;
    browser.open_player(&server, "session=timeline").await?;

    // The density graph has ink where events are and none where there are none.
    let ink = browser
        .eval(
            "const c = document.getElementById('density'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
             const cols = new Set(); for (let i = 3; i < d.length; i += 4) if (d[i] > 0) cols.add(((i - 3) / 4) % c.width); \
             return [cols.size, c.width]",
        )
        .await?;
    let (inked, width) = (ink[0].as_u64().unwrap_or(0), ink[1].as_u64().unwrap_or(0));
    ensure!(inked > 0 && inked < width, "the density graph shows where activity is: {inked} of {width} columns");

    // Clicking the play button (a real click) plays from the position; clicking again pauses
    // (at 0.5×, so the 8 s session is still playing when checked).
    browser.eval("const s = document.getElementById('speed'); s.value = '0.5'; s.dispatchEvent(new Event('change')); return true").await?;
    use fantoccini::Locator;
    let play = browser.client.find(Locator::Id("play")).await?;
    play.click().await?;
    browser.wait_for("return window.replayPlayer.position() > 0", Duration::from_secs(5)).await?;
    ensure!(browser.eval("return window.replayPlayer.playing()").await? == true, "the play button plays");
    ensure!(play.text().await? == "❚❚", "the button offers to pause");
    play.click().await?;
    ensure!(browser.eval("return window.replayPlayer.playing()").await? == false, "clicking again pauses");
    ensure!(play.text().await? == "▶", "the button offers to play");

    // The failed request's marker seeks to it, and so does its network panel entry.
    browser.eval("window.replayPlayer.seek(7000); return true").await?;
    browser.eval("document.querySelector('#markers i.request').click(); return true").await?;
    ensure!(position(&browser).await? == 3_500.0, "the request marker seeks to 3.5 s");
    ensure!(frame_ids(&browser).await?.is_empty(), "the page at 3.5 s, before the paragraph");
    browser.eval("window.replayPlayer.seek(7000); return true").await?;
    browser
        .eval("document.querySelector('[data-tab=network]').click(); document.querySelector('#panel-network .entry').click(); return true")
        .await?;
    ensure!(position(&browser).await? == 3_500.0, "the network entry seeks to 3.5 s");
    let click_marker =
        browser.eval("const m = document.querySelector('#markers i.click'); m.click(); return m.dataset.tip").await?;
    ensure!(position(&browser).await? == 2_000.0, "the click marker seeks to the click: {click_marker}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_hook_replays_a_session_to_its_end() -> Result<()> {
    let server = Server::start()?;
    server.ingest_all(&story_session("bench", "https://shop.test/bench"))?;
    let browser = Browser::start().await?;
    // As bench/adapter.mjs drives it: `?bench` skips the player's own loading.
    browser.open_viewer(&server, "/viewer/player.html?bench=1").await?;
    browser
        .wait_for("return window.replayPlayer && !!window.replayPlayer.benchReplay", Duration::from_secs(20))
        .await?;
    ensure!(browser.eval("return document.body.dataset.loaded ?? null").await?.is_null(), "bench mode loads nothing");
    let r = browser
        .eval_async(
            "const done = arguments[arguments.length - 1]; \
             window.replayPlayer.benchReplay('bench', 'p').then(done, (e) => done({ error: String(e) }));",
        )
        .await?;
    ensure!(r.get("error").is_none(), "benchReplay failed: {r}");
    ensure!(r["nodesAtStart"] == 0 && r["nodesAtEnd"] == 4, "first frame before, last frame after the paragraphs: {r}");
    ensure!(r["ranges"] == 2 && r["events"].as_u64().is_some_and(|n| n > 10), "every range and event: {r}");
    for timing in ["startReadyMs", "startFramedMs", "seekEndSyncMs", "seekEndFramedMs"] {
        ensure!(r[timing].as_f64().is_some_and(|ms| ms >= 0.0), "{timing} is a duration: {r}");
    }
    ensure!(frame_ids(&browser).await? == "p1,p2,p3,p4", "the frame shows the end");
    browser.close().await?;
    Ok(())
}
