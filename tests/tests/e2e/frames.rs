//! Cross-origin frames (issue 17 item 3), in Chromium. A parent page on one origin embeds the
//! recorder and three frames of a second origin (another loopback port): `child.html`, which
//! embeds the recorder too; `plain.html`, which does not; and `strayed.html`, which navigates
//! itself to a third origin whose page has the recorder (its hello comes from an origin that is
//! not the frame's). After load the child changes its text and takes typed input.
//!
//! - one session only: the children record nothing of their own;
//! - the viewer replays the child's changed document, input included, inside the parent's
//!   frame; the frame without a recorder, and the strayed one, show the placeholder with the
//!   frame's URL and size;
//! - the message from the wrong origin is refused and noted in the recording;
//! - a value typed in the child's masked field and echoed in its text is masked in both;
//! - the snapshot API holds the child's document and the placeholder likewise;
//! - in a new page view of the parent the child is recorded again, and when it reloads its new
//!   document replaces the old one (viewer and snapshot API).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use replay_e2e::{Browser, FixtureServer, Server, fixtures_dir};
use serde_json::Value;

/// All stored events of the only session, as JSON text (to look for what was recorded).
fn events_text(server: &Server) -> Result<(String, String)> {
    let id = server.only_session_id()?;
    let list = server.get_json(&format!("/api/v1/projects/1/sessions/{id}/events"))?;
    Ok((id, list.to_string()))
}

/// Flushes the parent's recorder until its session's events contain every one of `wanted`.
async fn until_recorded(browser: &Browser, server: &Server, wanted: &[&str]) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        browser.flush_within(Duration::from_secs(20)).await?;
        let (_, text) = events_text(server)?;
        if wanted.iter().all(|w| text.contains(w)) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = wanted.iter().filter(|w| !text.contains(*w)).collect();
            bail!("never recorded: {missing:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Sets the text of the child frame's (frame 0) message, once its page is there.
async fn set_child_text(browser: &Browser, text: &str) -> Result<()> {
    browser.client.enter_frame(0).await?;
    let script = format!(
        "const m = document.getElementById('msg'); if (!m || document.readyState !== 'complete') return false; \
         m.textContent = '{text}'; return true;"
    );
    let set = browser.wait_for(&script, Duration::from_secs(10)).await;
    browser.client.enter_parent_frame().await?;
    set.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_origin_frame_with_the_recorder_replays_inside_its_parent_and_one_without_shows_a_placeholder()
-> Result<()> {
    let server = Server::start()?;
    let (base, key) = (server.base.clone(), server.key.clone());
    let parent = FixtureServer::start(fixtures_dir("frames"), &base, &key)?;
    let other = FixtureServer::start(fixtures_dir("frames"), &base, &key)?;
    let third = FixtureServer::start(fixtures_dir("frames"), &base, &key)?;
    let b = other.base.clone();
    parent.put(
        "parent.html",
        format!(
            r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>frames parent</title>
<style>body {{ margin: 0; font: 14px sans-serif; }} iframe {{ border: 0; display: block; margin: 4px; }}</style>
<script src="{base}/recorder.js" data-key="{key}" defer></script></head>
<body><h1>parent</h1>
<iframe id="child" src="{b}/child.html" width="400" height="200"></iframe>
<iframe id="plain" src="{b}/plain.html" width="300" height="120"></iframe>
<iframe id="strayed" src="{b}/strayed.html" width="200" height="100"></iframe>
<iframe id="foreign" src="{b}/foreign.html" width="250" height="100"></iframe>
</body></html>"#
        )
        .into_bytes(),
    );
    other.put(
        "strayed.html",
        format!("<!DOCTYPE html><script>location.replace('{}/child.html');</script>", third.base).into_bytes(),
    );

    // A page of the second origin embedding the recorder with another project's key.
    let elsewhere = server.admin_api("POST", "/api/v1/projects", serde_json::json!({ "name": "elsewhere" }))?;
    let elsewhere = elsewhere["id"].as_i64().context("the new project's id")?;
    let settings = server.admin_api("GET", &format!("/api/v1/projects/{elsewhere}/settings"), Value::Null)?;
    let foreign_key = settings["ingest_key"].as_str().context("the other project's key")?;
    other.put(
        "foreign.html",
        format!(
            r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<script src="{base}/recorder.js" data-key="{foreign_key}" defer></script></head>
<body><p id="secret">another project's page</p></body></html>"#
        )
        .into_bytes(),
    );

    let browser = Browser::start().await?;
    let c = &browser.client;
    c.goto(&parent.url("parent.html")).await?;
    browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
    // The child's first document is in the parent's recording.
    until_recorded(&browser, &server, &["\"before\""]).await.context("the child's document")?;

    // After load, the child changes its text and takes typed input.
    c.enter_frame(0).await?;
    browser.eval("window.changeText(); return true;").await?;
    c.find(fantoccini::Locator::Id("name")).await?.send_keys("hello frame").await?;
    c.find(fantoccini::Locator::Id("secret")).await?.send_keys("zqxframesecret42").await?;
    c.enter_parent_frame().await?;
    // The strayed frame's page (third origin) starts again, now that the parent knows the frame:
    // its hello comes from an origin that is not the frame's.
    c.enter_frame(2).await?;
    browser.eval("location.reload(); return true;").await?;
    c.enter_parent_frame().await?;
    let text = until_recorded(
        &browser,
        &server,
        &["changed in the child", "hello frame", "wrong origin", "another project", "echoed "],
    )
    .await
    .context("the child's changes and the refused hello")?;
    // What was typed in the child's masked field, and its echo in the child's text, stay masked
    // (the child hands the parent its typed values for echo masking).
    let leak = text.find("framesecret").map(|i| text[i.saturating_sub(300)..(i + 100).min(text.len())].to_owned());
    ensure!(leak.is_none(), "a value typed in the frame was sent in clear: {leak:?}");
    ensure!(text.contains(&format!("wrong origin {}", third.base)), "the refusal names the origin");
    let sessions = server.sessions()?;
    ensure!(sessions.len() == 1, "the children recorded sessions of their own: {sessions:?}");

    ensure!(!text.contains("another project's page"), "the other project's frame joined the session");
    let (id, _) = events_text(&server)?;
    browser.open_player(&server, &format!("session={id}&t=end")).await?;
    let replay: Value = browser
        .eval(
            "const d = document.getElementById('frame').contentDocument;
             const inner = (id) => { const f = d.getElementById(id); return f && f.contentDocument; };
             const text = (doc) => doc && doc.body ? doc.body.textContent.trim() : null;
             const child = inner('child');
             return { msg: child && child.getElementById('msg') && child.getElementById('msg').textContent,
                      input: child && child.getElementById('name') && child.getElementById('name').value,
                      childPlaceholder: !!(child && child.querySelector('[data-replay-frame]')),
                      plain: text(inner('plain')), strayed: text(inner('strayed')), foreign: text(inner('foreign')) };",
        )
        .await?;
    ensure!(replay["msg"] == "changed in the child", "the child's changed text in the parent's frame: {replay}");
    ensure!(replay["input"] == "hello frame", "the child's input: {replay}");
    ensure!(replay["childPlaceholder"] == false, "{replay}");
    ensure!(
        replay["plain"] == format!("Cross-origin frame not recorded: {b}/plain.html (300\u{d7}120)"),
        "the frame without a recorder: {replay}"
    );
    ensure!(
        replay["strayed"] == format!("Cross-origin frame not recorded: {b}/strayed.html (200\u{d7}100)"),
        "the frame whose hello came from the wrong origin: {replay}"
    );
    ensure!(
        replay["foreign"] == format!("Cross-origin frame not recorded: {b}/foreign.html (250\u{d7}100)"),
        "the frame of another project: {replay}"
    );

    let snapshot = server.get_text(&format!("/api/v1/projects/1/sessions/{id}/snapshot"))?;
    ensure!(snapshot.contains("changed in the child"), "the child's document in the snapshot");
    ensure!(
        snapshot.contains(&format!("Cross-origin frame not recorded: {b}/plain.html (300\u{d7}120)")),
        "{snapshot}"
    );

    // A new page view of the parent records its child again; the child then reloads: its new
    // document replaces the old one (in the model too, which the snapshot API writes).
    c.goto(&parent.url("parent.html")).await?;
    browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
    set_child_text(&browser, "first document").await?;
    until_recorded(&browser, &server, &["first document"]).await.context("the child in a new page view")?;
    c.enter_frame(0).await?;
    browser.eval("location.reload(); return true;").await?;
    c.enter_parent_frame().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_child_text(&browser, "after reload").await?;
    until_recorded(&browser, &server, &["after reload"]).await.context("the reloaded child")?;
    let snapshot = server.get_text(&format!("/api/v1/projects/1/sessions/{id}/snapshot"))?;
    ensure!(snapshot.contains("after reload") && !snapshot.contains("first document"), "{snapshot}");
    browser.open_player(&server, &format!("session={id}&t=end")).await?;
    let replay: Value = browser
        .eval(
            "const f = document.getElementById('frame').contentDocument.getElementById('child');
             const d = f && f.contentDocument;
             return d && d.getElementById('msg') ? { msg: d.getElementById('msg').textContent,
                 input: d.getElementById('name').value } : null;",
        )
        .await?;
    ensure!(replay["msg"] == "after reload" && replay["input"] == "", "{replay}");
    browser.close().await?;
    Ok(())
}
