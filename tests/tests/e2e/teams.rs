//! The teams scenario of issue 14, end to end in the real viewer and recorder: a server admin
//! creates project B in the viewer and invites a member; a page embedding B's key records a
//! session of an identified user; a member of project A cannot find or open it by any URL; B's
//! member plays it and comments, the comment a marker on the timeline; a key rotation keeps the
//! old key working through its grace period and refuses it after (401); an erasure request for
//! the user removes the session from the list, the API and the storage.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, FixtureServer, Server, fixtures_dir};
use replay_protocol::test_util::{at, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, encode_batch};
use replay_store::{SqliteStorage, Storage};
use serde_json::{Value, json};

/// The identified user of B's recorded session, whom the erasure names.
const USER: &str = "erin@shop.test";
/// Grace period of B's key rotation: long enough to ingest with the old key, short enough to wait.
const GRACE_SECS: u64 = 6;
const T0: u64 = 1_700_000_040_000;

/// A one-batch session sent straight to ingest with `key`; the status of the answer.
fn ingest_with(server: &Server, key: &str, id: &str) -> Result<u16> {
    let mut b = Batch::new(id, "page-1", 0, T0);
    b.flags = Batch::FLAG_PAGE_START;
    b.events = vec![at(0, meta("https://bravo.test/")), at(0, snapshot(page_nodes(&[], [text(5, 4, "ping")])))];
    b.end = T0 + 1_000;
    Ok(server.ingest(Some(key), &encode_batch(&b)?, None)?.0)
}

/// Status and body of a same-origin GET made by the page, with the signed-in user's cookie (the
/// page must allow scripts to fetch: the player does, the server-rendered pages run no script).
async fn get_in_page(browser: &Browser, path: &str) -> Result<(u64, String)> {
    let script = format!(
        "const done = arguments[0];
         fetch({}).then(async (r) => done([r.status, await r.text()]), (e) => done([0, String(e)]));",
        Value::from(path)
    );
    let v = browser.eval_async(&script).await?;
    Ok((v[0].as_u64().unwrap_or(0), v[1].as_str().unwrap_or_default().to_owned()))
}

/// Submits the form `#id` of the current page after setting its fields (`name` → value).
async fn submit(browser: &Browser, id: &str, fields: &[(&str, &str)]) -> Result<()> {
    let fields: serde_json::Map<String, Value> =
        fields.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
    let script = format!(
        "const f = document.getElementById({}); const fields = {};
         for (const [k, v] of Object.entries(fields)) f.elements[k].value = v;
         f.submit(); return true;",
        Value::from(id),
        Value::Object(fields)
    );
    browser.eval(&script).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_set_up_in_the_viewer_records_plays_for_its_members_only_rotates_and_erases() -> Result<()> {
    let server = Server::start()?;
    // Project A (the server's first) has a member of its own.
    server.admin_api("POST", "/api/v1/admin/users", json!({ "name": "amos", "password": "amos-password-1" }))?;
    server.admin_api("PUT", "/api/v1/projects/1/members/amos", json!({ "role": "member" }))?;
    let browser = Browser::start().await?;

    // The admin creates project B on the projects page.
    browser.open_viewer(&server, "/viewer/projects").await?;
    submit(&browser, "create-project", &[("name", "bravo")]).await?;
    // The new project opens on its settings page.
    let b = browser
        .wait_for(
            "const m = /^\\/viewer\\/p\\/(\\d+)\\/settings$/.exec(location.pathname);
             return m && document.readyState === 'complete' ? Number(m[1]) : null;",
            Duration::from_secs(10),
        )
        .await?
        .as_i64()
        .context("project B's id")?;
    let title = browser.eval("return document.querySelector('h1').textContent").await?;
    ensure!(title == "Settings of bravo", "{title}");
    ensure!(b != 1, "a new project: {b}");

    // ... invites bea (a one-time link sets her password) and makes her a member of B.
    let invite = browser.invite(&server, "bea").await?;
    submit(&browser, "set-role", &[("user", "bea"), ("project", &b.to_string()), ("role", "member")]).await?;
    browser
        .wait_for(
            "return document.querySelector(\"tr[data-user='bea']\")?.textContent.includes('bravo (member)')",
            Duration::from_secs(10),
        )
        .await?;

    // B's settings page names the key its pages embed.
    browser.open_viewer(&server, &format!("/viewer/p/{b}/settings")).await?;
    let old_key = browser.eval("return document.getElementById('current-key').textContent").await?;
    let old_key = old_key.as_str().context("B's key")?.to_owned();
    ensure!(old_key != server.key, "B has its own key");

    // A page embedding B's key records a session of an identified user.
    let site = FixtureServer::start(fixtures_dir("teams"), &server.base, &old_key)?;
    browser.client.goto(&site.url("shop.html")).await?;
    browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
    browser.eval(&format!("window.Replay.identify({}); return true", Value::from(USER))).await?;
    browser.client.find(Locator::Id("buy")).await?.click().await?;
    browser
        .wait_for(
            "return document.getElementById('status').textContent === 'lamp in the basket'",
            Duration::from_secs(5),
        )
        .await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    let listed = server.get_json(&format!("/api/v1/projects/{b}/sessions"))?;
    let sessions = listed["sessions"].as_array().cloned().unwrap_or_default();
    ensure!(sessions.len() == 1 && sessions[0]["user"] == USER, "B holds the session: {listed}");
    let id = sessions[0]["id"].as_str().context("its id")?.to_owned();
    let in_a = server.get_json("/api/v1/projects/1/sessions")?;
    ensure!(in_a["sessions"].as_array().is_some_and(Vec::is_empty), "not in A: {in_a}");

    // Amos, a member of A: B's session is nowhere for him, by any URL.
    browser.sign_in(&server, "amos", "amos-password-1").await?;
    browser.client.goto(&server.url("/viewer/p/1/player.html")).await?;
    let (status, mine) = get_in_page(&browser, "/viewer/p/1/").await?;
    ensure!(status == 200 && mine.contains("Sessions") && !mine.contains(&id), "A's list does not show it");
    for path in [
        format!("/viewer/p/{b}/"),
        format!("/viewer/p/{b}/player.html?session={id}"),
        format!("/viewer/p/{b}/sessions/{id}?t=0"),
        format!("/viewer/p/{b}/export/{id}"),
        format!("/api/v1/projects/{b}/sessions"),
        format!("/api/v1/projects/{b}/sessions/{id}"),
        format!("/api/v1/projects/{b}/sessions/{id}/events"),
        format!("/api/v1/projects/{b}/sessions/{id}/snapshot?t=0"),
        format!("/api/v1/projects/{b}/sessions/{id}/comments"),
        format!("/api/v1/projects/1/sessions/{id}"),
        format!("/api/v1/projects/1/sessions/{id}/events"),
        format!("/api/v1/sessions/{id}"),
        format!("/api/v1/sessions/{id}/events?project={b}"),
    ] {
        let (status, body) = get_in_page(&browser, &path).await?;
        let leaked = body.contains("lamp") || body.contains(USER);
        ensure!(status == 404 && !leaked, "{path}: {status} {body}");
    }
    let (status, body) = get_in_page(&browser, &format!("/api/v1/projects/1/sessions?user={USER}")).await?;
    ensure!(status == 200 && !body.contains(&id), "searching A for the user finds nothing: {body}");
    // The player of his own project, given the id, finds no such session there.
    browser.client.goto(&server.url(&format!("/viewer/p/1/player.html?session={id}"))).await?;
    ensure!(browser.wait_player().await.is_err(), "the player of A does not open B's session");
    let shown = browser.eval("return document.body.textContent").await?;
    ensure!(shown.as_str().is_some_and(|t| !t.contains("lamp")), "{shown}");

    // Bea takes her invitation, signs in, finds the session in B's list and plays it.
    browser.client.delete_all_cookies().await?;
    browser.client.goto(&server.url(&invite)).await?;
    browser.eval("document.getElementById('password').value = 'bea-password-1'; document.querySelector('form').submit(); return true;").await?;
    browser.wait_for("return location.pathname === '/login'", Duration::from_secs(10)).await?;
    browser.sign_in(&server, "bea", "bea-password-1").await?;
    browser.wait_for(&format!("return location.pathname === '/viewer/p/{b}/'"), Duration::from_secs(10)).await?;
    browser.client.find(Locator::Css(&format!("tr[data-session='{id}'] a"))).await?.click().await?;
    browser.wait_player().await?;
    browser.eval("window.replayPlayer.seek(window.replayPlayer.duration()); return true").await?;
    let replayed = browser
        .wait_for(
            "const t = document.getElementById('frame').contentDocument.body.textContent;
             return t.includes('lamp in the basket') ? t : null",
            Duration::from_secs(10),
        )
        .await?;
    ensure!(replayed.as_str().is_some_and(|t| t.contains("Bravo lamps")), "{replayed}");
    // A member, not an owner: no Delete link; her one project, so no switcher either.
    browser.wait_for("return document.body.dataset.header === 'ready'", Duration::from_secs(10)).await?;
    let header = browser
        .eval("return [document.getElementById('delete-session').hidden, document.getElementById('player-project').closest('label').hidden]")
        .await?;
    ensure!(header == json!([true, true]), "a member's header: {header}");
    // She comments at the moment on screen; the comment is a marker on the timeline.
    let moment = browser
        .eval("window.replayPlayer.seek(Math.floor(window.replayPlayer.duration() / 2)); return window.replayPlayer.position()")
        .await?;
    browser.client.find(Locator::Css("[data-tab='comments']")).await?.click().await?;
    browser.wait_for("return document.body.dataset.comments === 'loaded'", Duration::from_secs(10)).await?;
    browser.client.find(Locator::Id("comment-text")).await?.send_keys("the lamp button answers late").await?;
    browser.client.find(Locator::Css("#comment-form button[type='submit']")).await?.click().await?;
    let marker = browser
        .wait_for(
            "const m = document.querySelector('#markers i.comment'); return m ? m.dataset.tip : null",
            Duration::from_secs(10),
        )
        .await?;
    ensure!(marker.as_str().is_some_and(|t| t.contains("the lamp button answers late")), "the marker: {marker}");
    let comments = server.get_json(&format!("/api/v1/projects/{b}/sessions/{id}/comments"))?;
    ensure!(
        comments["comments"][0]["author"] == "bea" && comments["comments"][0]["t"] == moment,
        "at {moment}: {comments}"
    );

    // The admin rotates B's key in the viewer with a short grace period: the old key keeps
    // working through it, and is refused (401) after it.
    browser.client.delete_all_cookies().await?;
    // The admin, an owner of both projects, has the Delete link and a switcher between them.
    browser.open_viewer(&server, &format!("/viewer/p/{b}/player.html?session={id}")).await?;
    browser.wait_player().await?;
    browser.wait_for("return document.body.dataset.header === 'ready'", Duration::from_secs(10)).await?;
    let header = browser
        .eval(
            "const s = document.getElementById('player-project');
             return [document.getElementById('delete-session').hidden, s.closest('label').hidden, s.options.length, s.value]",
        )
        .await?;
    ensure!(header == json!([false, false, 2, b.to_string()]), "an owner's header: {header}");
    browser.open_viewer(&server, &format!("/viewer/p/{b}/settings")).await?;
    let rotated_at = Instant::now();
    submit(&browser, "rotate", &[("grace", &GRACE_SECS.to_string()), ("unit", "seconds")]).await?;
    let new_key = browser
        .wait_for(
            &format!(
                "const k = document.getElementById('current-key')?.textContent; return k && k !== {} ? k : null",
                Value::from(old_key.as_str())
            ),
            Duration::from_secs(10),
        )
        .await?;
    let new_key = new_key.as_str().context("the new key")?.to_owned();
    let during = ingest_with(&server, &old_key, "during-grace")?;
    ensure!(
        during == 200 || rotated_at.elapsed() >= Duration::from_secs(GRACE_SECS),
        "the old key works during the grace period: {during}"
    );
    ensure!(ingest_with(&server, &new_key, "with-new-key")? == 200, "the new key works");
    tokio::time::sleep(Duration::from_secs(GRACE_SECS + 1).saturating_sub(rotated_at.elapsed())).await;
    let after = ingest_with(&server, &old_key, "after-grace")?;
    ensure!(after == 401, "the old key is refused after the grace period: {after}");
    let keys = browser.eval("return document.querySelectorAll('#keys tbody tr').length").await?;
    ensure!(keys == 2, "both keys listed: {keys}");

    // An erasure request for the user removes her session: from the list, the API, the storage.
    let erased = server.admin_api("POST", &format!("/api/v1/projects/{b}/erasure"), json!({ "user": USER }))?;
    ensure!(erased["deleted"] == 1, "{erased}");
    browser.sign_in(&server, "bea", "bea-password-1").await?;
    browser.client.goto(&server.url(&format!("/viewer/p/{b}/player.html"))).await?;
    let (status, list) = get_in_page(&browser, &format!("/viewer/p/{b}/")).await?;
    ensure!(
        status == 200 && !list.contains(&id) && list.contains("with-new-key"),
        "gone from the list, the others stay: {list}"
    );
    for path in [
        format!("/api/v1/projects/{b}/sessions/{id}"),
        format!("/api/v1/projects/{b}/sessions/{id}/events"),
        format!("/api/v1/projects/{b}/sessions/{id}/comments"),
        format!("/viewer/p/{b}/export/{id}"),
    ] {
        let (status, _) = get_in_page(&browser, &path).await?;
        ensure!(status == 404, "{path} after the erasure: {status}");
    }
    let (_, found) = get_in_page(&browser, &format!("/api/v1/projects/{b}/sessions?user={USER}")).await?;
    ensure!(found.contains("\"sessions\":[]"), "no session of the user: {found}");
    browser.close().await?;
    drop(site);
    let (clean, data_dir) = server.terminate()?;
    ensure!(clean, "the server stopped cleanly");
    let storage = SqliteStorage::open(data_dir.path())?;
    ensure!(storage.session(b, &id)?.is_none(), "no index row");
    ensure!(storage.batches(b, &id)?.is_empty(), "no batch body");
    ensure!(storage.session(b, "with-new-key")?.is_some(), "the rest of B stays");
    Ok(())
}
