//! Working together (issue 14 item 7) in the real viewer: a member comments on a moment of a
//! recorded session, and the comment is a timeline marker and a row of the Comments panel,
//! still after a reload, its text shown as text; the share link of a moment opens the player
//! paused there; a user of another project gets 404 for the link and the comments API; a
//! read-only member sees the comments but cannot add one.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, Server};
use replay_protocol::test_util::{at, click, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, encode_batch};
use serde_json::{Value, json};

const T0: u64 = 1_700_000_040_000;
const SESSION: &str = "talk";
/// The moment commented on, in ms from the session's start.
const MOMENT: u64 = 7_000;
const MOMENT_F64: f64 = 7_000.0;
/// A comment that would run script if it were ever parsed as HTML.
const HOSTILE: &str = "<img src=x onerror=\"window.__commentXss=1\"> checkout froze here";

/// One page view of 20 s: a heading, and clicks along the way.
fn session() -> Result<Vec<u8>> {
    let mut b = Batch::new(SESSION, "page-1", 0, T0);
    b.flags = Batch::FLAG_PAGE_START;
    b.events = vec![
        at(0, meta("https://shop.test/checkout")),
        at(0, snapshot(page_nodes(&[], [text(5, 4, "Checkout")]))),
        at(5_000, click(4, 10, 10)),
        at(12_000, click(4, 20, 20)),
        at(20_000, click(4, 30, 30)),
    ];
    b.end = T0 + 20_000;
    Ok(encode_batch(&b)?)
}

/// Signs `user` in (their password is `<user>-password-1`) in a fresh browser state.
async fn sign_in(browser: &Browser, server: &Server, user: &str) -> Result<()> {
    browser.sign_in(server, user, &format!("{user}-password-1")).await
}

/// Opens the player on the session and waits until it and its comments are loaded.
async fn open(browser: &Browser, server: &Server, path: &str) -> Result<()> {
    browser.client.goto(&server.url(path)).await?;
    browser.wait_player().await?;
    browser.wait_for("return document.body.dataset.comments === 'loaded'", Duration::from_secs(10)).await?;
    Ok(())
}

/// Status of a same-origin request made by the page (with the signed-in user's cookie).
async fn status_in_page(browser: &Browser, method: &str, path: &str, body: Option<Value>) -> Result<u64> {
    let init = match body {
        Some(b) => {
            json!({ "method": method, "headers": { "content-type": "application/json" }, "body": b.to_string() })
        }
        None => json!({ "method": method }),
    };
    let script = format!(
        "const done = arguments[0]; fetch({}, {init}).then(r => done(r.status), e => done(String(e)));",
        Value::from(path)
    );
    let status = browser.eval_async(&script).await?;
    status.as_u64().with_context(|| format!("{method} {path}: {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_comment_on_a_moment_and_share_it_with_their_project_only() -> Result<()> {
    let server = Server::start()?;
    let (status, answer) = server.ingest(Some(&server.key), &session()?, None)?;
    ensure!(status == 200, "{answer}");
    // Project 1 (the server's first): ann a member, rita read-only; project 2: otto its owner.
    let other = server.admin_api("POST", "/api/v1/projects", json!({ "name": "elsewhere" }))?;
    let other = other["id"].as_i64().context("the new project's id")?;
    for (user, project, role) in [("ann", 1, "member"), ("rita", 1, "read_only"), ("otto", other, "owner")] {
        server.admin_api(
            "POST",
            "/api/v1/admin/users",
            json!({ "name": user, "password": format!("{user}-password-1") }),
        )?;
        server.admin_api("PUT", &format!("/api/v1/projects/{project}/members/{user}"), json!({ "role": role }))?;
    }
    let browser = Browser::start().await?;
    let player = format!("/viewer/p/1/player.html?session={SESSION}");

    // Ann comments at 0:07 from the player's form.
    sign_in(&browser, &server, "ann").await?;
    open(&browser, &server, &player).await?;
    browser.eval(&format!("window.replayPlayer.seek({MOMENT}); return true")).await?;
    browser.client.find(Locator::Css("[data-tab='comments']")).await?.click().await?;
    let form_shown = browser.eval("return !document.getElementById('comment-form').hidden").await?;
    ensure!(form_shown == true, "a member has the form");
    browser.client.find(Locator::Id("comment-text")).await?.send_keys(HOSTILE).await?;
    let label = browser.eval("return document.getElementById('comment-at').textContent").await?;
    ensure!(label == "0:07", "the form names the moment: {label}");
    browser.client.find(Locator::Css("#comment-form button[type='submit']")).await?.click().await?;
    browser
        .wait_for("return document.querySelectorAll('#comment-list li.comment').length === 1", Duration::from_secs(10))
        .await?;

    // After a reload: the marker on the timeline at the moment, the row in the panel, the text
    // as written and never markup.
    open(&browser, &server, &player).await?;
    let shown = browser
        .eval(
            "const m = document.querySelector('#markers i.comment');
             const row = document.querySelector('#comment-list li.comment');
             return {
               tip: m && m.dataset.tip,
               text: row && row.querySelector('.msg').textContent,
               author: row && row.querySelector('.author').textContent,
               t: row && Number(row.dataset.t),
               imgs: document.querySelectorAll('#comment-list img, #markers img, #tip img').length === 0,
               xss: window.__commentXss === 1,
               count: document.querySelector('[data-tab=\"comments\"] .count').textContent,
             };",
        )
        .await?;
    ensure!(
        shown["text"] == HOSTILE && shown["author"] == "ann" && shown["t"].as_f64() == Some(MOMENT_F64),
        "the row: {shown}"
    );
    ensure!(shown["imgs"] == true && shown["xss"] == false, "shown as text, never parsed: {shown}");
    ensure!(shown["count"] == "1", "{shown}");
    ensure!(shown["tip"].as_str().is_some_and(|t| t.starts_with("0:07") && t.contains(HOSTILE)), "{shown}");
    // Clicking the marker seeks to the moment.
    browser.eval("window.replayPlayer.seek(0); return true").await?;
    browser.client.find(Locator::Css("#markers i.comment")).await?.click().await?;
    let position = browser.eval("return window.replayPlayer.position()").await?;
    ensure!(position.as_f64() == Some(MOMENT_F64), "the marker seeks to the moment: {position}");
    // Clicking the row seeks there too.
    browser.eval("window.replayPlayer.seek(0); return true").await?;
    browser.client.find(Locator::Css("[data-tab='comments']")).await?.click().await?;
    browser.client.find(Locator::Css("#comment-list li.comment .msg")).await?.click().await?;
    let position = browser.eval("return window.replayPlayer.position()").await?;
    ensure!(position.as_f64() == Some(MOMENT_F64), "the row seeks to the moment: {position}");

    // The share link of the moment opens the player there, paused.
    let link = browser.eval("return window.replayPlayer.link()").await?;
    let link = link.as_str().context("a link")?.to_owned();
    ensure!(link == server.url(&format!("/viewer/p/1/sessions/{SESSION}?t={MOMENT}")), "{link}");
    browser.client.goto(&link).await?;
    browser.wait_player().await?;
    let here = browser.client.current_url().await?;
    ensure!(here.path() == "/viewer/p/1/player.html", "{here}");
    let opened = browser.eval("return [window.replayPlayer.position(), window.replayPlayer.playing()]").await?;
    ensure!(opened[0].as_f64() == Some(MOMENT_F64) && opened[1] == false, "opens paused at the moment: {opened}");

    // A read-only member: sees the comment and its marker, has no form, cannot add one.
    sign_in(&browser, &server, "rita").await?;
    browser.client.goto(&link).await?;
    browser.wait_player().await?;
    browser.wait_for("return document.body.dataset.comments === 'loaded'", Duration::from_secs(10)).await?;
    let seen = browser
        .eval(
            "return [document.querySelectorAll('#comment-list li.comment').length,
                     document.querySelectorAll('#markers i.comment').length,
                     document.getElementById('comment-form').hidden,
                     window.replayPlayer.position() === 7000]",
        )
        .await?;
    ensure!(seen == json!([1, 1, true, true]), "read-only: sees, no form, at the moment: {seen}");
    let api = format!("/api/v1/projects/1/sessions/{SESSION}/comments");
    let refused = status_in_page(&browser, "POST", &api, Some(json!({ "t": 1000, "text": "me too" }))).await?;
    ensure!(refused == 403, "a read-only member cannot add: {refused}");

    // Otto, of another project: 404 for the link and for the comments API.
    sign_in(&browser, &server, "otto").await?;
    browser.client.goto(&link).await?;
    let body = browser.eval("return document.body.textContent").await?;
    let body = body.as_str().unwrap_or_default();
    ensure!(body.contains("not_found") && !body.contains("froze"), "the link: {body}");
    let path = format!("/viewer/p/1/sessions/{SESSION}?t={MOMENT}");
    ensure!(status_in_page(&browser, "GET", &path, None).await? == 404, "the link is 404");
    ensure!(status_in_page(&browser, "GET", &api, None).await? == 404, "the list is 404");
    let post = status_in_page(&browser, "POST", &api, Some(json!({ "t": 1000, "text": "hi" }))).await?;
    ensure!(post == 404, "adding is 404: {post}");
    // In his own project the session id means nothing either.
    let own = format!("/viewer/p/{other}/sessions/{SESSION}");
    ensure!(status_in_page(&browser, "GET", &own, None).await? == 404, "no such session in his project");

    // Nothing but ann's comment was stored.
    let listed = server.get_json(&api)?;
    ensure!(listed["comments"].as_array().map(Vec::len) == Some(1), "{listed}");
    browser.close().await?;
    Ok(())
}
