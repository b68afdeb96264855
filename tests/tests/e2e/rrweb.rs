//! rrweb interop end to end: a recording made by the real rrweb recorder in Chromium is
//! imported and replayed in our player, and a session recorded by our recorder is exported and
//! played by the real `rrweb-player` (both pinned in `tools/js`, installed into
//! `target/jstools` by `cargo xtask lint` or `cargo xtask test`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{ADMIN_TOKEN, Browser, FixtureServer, Server, fixtures_dir};
use serde_json::Value;

/// A file of the pinned npm packages.
fn js_tool(path: &str) -> Result<PathBuf> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/jstools/node_modules").join(path);
    ensure!(file.is_file(), "{} is missing: run `cargo xtask test` (it runs npm ci in tools/js)", file.display());
    Ok(file)
}

/// A folder with the fixture pages of `fixtures/rrweb/` and `extra` files (name, source).
fn site_dir(extra: &[(&str, PathBuf)]) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for entry in std::fs::read_dir(fixtures_dir("rrweb"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dir.path().join(entry.file_name()))?;
    }
    for (name, from) in extra {
        std::fs::copy(from, dir.path().join(name)).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(dir)
}

fn frame_eval(expr: &str) -> String {
    format!("const doc = document.getElementById('frame').contentDocument; return {expr};")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_of_the_real_rrweb_recorder_imports_and_replays_in_our_player() -> Result<()> {
    let server = Server::start()?;
    let dir = site_dir(&[("rrweb.js", js_tool("rrweb/dist/rrweb.umd.cjs")?)])?;
    let site = FixtureServer::start(dir.path().to_path_buf(), &server.base, &server.key)?;
    let browser = Browser::start().await?;
    let c = &browser.client;
    c.goto(&site.url("record.html")).await?;
    browser.wait_for("return window.__events && window.__events.length >= 2", Duration::from_secs(10)).await?;
    let item = c.find(Locator::Id("item")).await?;
    item.click().await?;
    item.send_keys("Eggs").await?;
    c.find(Locator::Id("urgent")).await?.click().await?;
    c.find(Locator::Id("add")).await?.click().await?;
    browser.eval("window.scrollTo(0, 400); return true;").await?;
    // rrweb throttles scroll events (100 ms); wait until it has sent the one of this scroll.
    browser
        .wait_for(
            "return window.__events.some((e) => e.type === 3 && e.data.source === 3 && e.data.y >= 400)",
            Duration::from_secs(10),
        )
        .await?;
    let events = browser.eval("return JSON.stringify(window.__events)").await?;
    let events = events.as_str().context("events as JSON")?.to_owned();
    let parsed: Vec<Value> = serde_json::from_str(&events)?;
    ensure!(parsed.iter().any(|e| e["type"] == 2), "rrweb took a full snapshot");
    ensure!(parsed.iter().any(|e| e["type"] == 3 && e["data"]["source"] == 0), "rrweb recorded mutations");
    ensure!(parsed.iter().any(|e| e["type"] == 3 && e["data"]["source"] == 5), "rrweb recorded input");

    let answer: Value = ureq::post(&server.url("/api/v1/projects/1/import/rrweb"))
        .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .set("content-type", "application/json")
        .send_string(&format!("{{\"events\": {events}}}"))?
        .into_json()?;
    let id = answer["session"].as_str().context("a session id")?.to_owned();
    ensure!(answer["events_in"].as_u64() == Some(parsed.len() as u64), "{answer}");

    let snapshot = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    ensure!(snapshot.contains("Groceries (3)") && snapshot.contains("<li class=\"new\">Eggs</li>"), "{snapshot}");

    browser.open_player(&server, &format!("session={id}&t=end")).await?;
    let title = browser.eval(&frame_eval("doc.getElementById('title').textContent")).await?;
    ensure!(title == "Groceries (3)", "title in the replay: {title}");
    let items = browser.eval(&frame_eval("[...doc.querySelectorAll('#list li')].map((li) => li.textContent)")).await?;
    ensure!(items == serde_json::json!(["Milk", "Bread", "Eggs"]), "list in the replay: {items}");
    let done = browser.eval(&frame_eval("doc.querySelector('#list li').className")).await?;
    ensure!(done == "done", "class change in the replay: {done}");
    let typed = browser.eval(&frame_eval("doc.getElementById('item').value")).await?;
    ensure!(typed == "Eggs", "input in the replay: {typed}");
    let checked = browser.eval(&frame_eval("doc.getElementById('urgent').checked")).await?;
    ensure!(checked == true, "checkbox in the replay: {checked}");
    let shadow = browser.eval(&frame_eval("doc.getElementById('host').shadowRoot?.textContent ?? null")).await?;
    ensure!(shadow == "shadow changed", "shadow root in the replay: {shadow}");
    let style = browser.eval(&frame_eval("getComputedStyle(doc.getElementById('title')).color")).await?;
    ensure!(style == "rgb(200, 0, 0)", "the <style>'s CSS in the replay: {style}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_our_recorder_plays_in_the_real_rrweb_player() -> Result<()> {
    let server = Server::start()?;
    let pages = site_dir(&[])?;
    let site = FixtureServer::start(pages.path().to_path_buf(), &server.base, &server.key)?;
    let browser = Browser::start().await?;
    let c = &browser.client;
    c.goto(&site.url("ours.html")).await?;
    browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
    browser.flush_within(Duration::from_secs(30)).await?;
    c.find(Locator::Id("add")).await?.click().await?;
    browser.flush_within(Duration::from_secs(30)).await?;
    let id = server.only_session_id()?;

    let response = server.get(&format!("/api/v1/sessions/{id}/rrweb")).call()?;
    ensure!(response.content_type() == "application/json", "{}", response.content_type());
    let exported = response.into_string()?;
    let events: Vec<Value> = serde_json::from_str(&exported)?;
    ensure!(events.first().is_some_and(|e| e["type"] == 4), "a Meta first");
    ensure!(events.iter().any(|e| e["type"] == 2), "a full snapshot");

    let dir = site_dir(&[
        ("rrweb-player.js", js_tool("rrweb-player/dist/rrweb-player.umd.cjs")?),
        ("rrweb-player.css", js_tool("rrweb-player/dist/style.css")?),
    ])?;
    std::fs::write(dir.path().join("events.json"), &exported)?;
    let player = FixtureServer::start(dir.path().to_path_buf(), &server.base, &server.key)?;
    c.goto(&player.url("player.html")).await?;
    let state =
        browser.wait_for("return window.__state !== 'loading' && window.__state", Duration::from_secs(20)).await?;
    ensure!(state == "ready", "rrweb-player: {state}");
    let frame = "const f = document.querySelector('.replayer-wrapper iframe'); const doc = f && f.contentDocument;";
    let wait = browser
        .wait_for(
            &format!("{frame} const t = doc && doc.getElementById('title'); return t && t.textContent === 'Order 42 (2 items)' && t.textContent;"),
            Duration::from_secs(10),
        )
        .await;
    let shown = browser.eval(&format!("{frame} return doc ? doc.documentElement.outerHTML : 'no iframe';")).await?;
    let title = wait.with_context(|| format!("the title's change in rrweb-player, which shows {shown}"))?;
    ensure!(title == "Order 42 (2 items)", "{title}");
    let items = browser
        .eval(&format!("{frame} return [...doc.querySelectorAll('#list li')].map((li) => li.textContent);"))
        .await?;
    ensure!(items == serde_json::json!(["Apples", "Pears"]), "list in rrweb-player: {items}");
    let note = browser.eval(&format!("{frame} return doc.querySelector('p').textContent;")).await?;
    ensure!(note == "Note:  before noon", "removal in rrweb-player: {note}");
    let big = browser.eval(&format!("{frame} return getComputedStyle(doc.getElementById('title')).fontSize;")).await?;
    ensure!(big == "30px", "the recorded <style> in rrweb-player: {big}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_imports_a_recording_into_the_storage() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let run = |args: &[&str]| -> Result<std::process::Output> {
        Ok(std::process::Command::new(replay_e2e::server_bin()?)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(args)
            .output()?)
    };
    let created = run(&["project", "create", "migrated"])?;
    ensure!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let recording = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src/rrweb/testdata/groceries.json");
    let recording = recording.to_str().context("a UTF-8 path")?;
    let imported = run(&["import-rrweb", "--project", "1", recording])?;
    ensure!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let id = String::from_utf8(imported.stdout)?.trim().to_owned();
    ensure!(replay_protocol::codec::is_valid_id(&id), "the session id alone on stdout: {id:?}");
    let refused = run(&["import-rrweb", "--project", "1", "/dev/null"])?;
    ensure!(!refused.status.success(), "an empty file is not a recording");

    let server = Server::start_in(data_dir)?;
    let snapshot = server.get_text(&format!("/api/v1/sessions/{id}/snapshot?project=1"))?;
    ensure!(snapshot.contains("Groceries (3)") && snapshot.contains("<li class=\"new\">Eggs</li>"), "{snapshot}");
    Ok(())
}
