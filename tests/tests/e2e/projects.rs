//! Projects kept apart in the real viewer (issue 14 item 3): a session of project 2 whose id
//! also exists in project 1 opens, from project 2's list, as project 2's session; the header's
//! switcher moves between projects; an old player link without a project asks which one.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, Server};
use replay_protocol::test_util::{at, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, encode_batch};

const T0: u64 = 1_700_000_040_000;

fn session(id: &str, url: &str, words: &str) -> Vec<u8> {
    let mut b = Batch::new(id, "page-1", 0, T0);
    b.flags = Batch::FLAG_PAGE_START;
    b.events = vec![at(0, meta(url)), at(0, snapshot(page_nodes(&[], [text(5, 4, words)])))];
    b.end = T0 + 1_000;
    encode_batch(&b).expect("encode")
}

/// The replayed document's text.
async fn replayed_text(browser: &Browser) -> Result<String> {
    let v = browser.eval("return document.getElementById('frame').contentDocument.body.textContent").await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_the_second_project_plays_from_its_list_not_the_first_projects() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let create = |name: &str| -> Result<String> {
        let out = std::process::Command::new(replay_e2e::server_bin()?)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["project", "create", name])
            .output()?;
        ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout)?;
        Ok(stdout.split("ingest key: ").nth(1).context("a key")?.trim().to_owned())
    };
    let key_a = create("alpha")?;
    let key_b = create("bravo")?;
    let server = Server::start_in(data_dir)?;
    for (key, url, words) in
        [(&key_a, "https://alpha.test/", "alpha page"), (&key_b, "https://bravo.test/", "bravo page")]
    {
        let (status, answer) = server.ingest(Some(key), &session("same-id", url, words), None)?;
        ensure!(status == 200, "{answer}");
    }
    let browser = Browser::start().await?;
    // Project 2's list, its row, the player it opens: project 2's session.
    browser.open_viewer(&server, "/viewer/p/2/").await?;
    let listed = browser.eval("return document.querySelector('#sessions tbody').textContent").await?;
    ensure!(listed.as_str().is_some_and(|t| t.contains("bravo.test") && !t.contains("alpha.test")), "{listed}");
    browser.client.find(Locator::Css("tr[data-session='same-id'] a")).await?.click().await?;
    browser.wait_player().await?;
    let here = browser.client.current_url().await?;
    ensure!(here.path() == "/viewer/p/2/player.html", "the row's link stays in project 2: {here}");
    let words = replayed_text(&browser).await?;
    ensure!(words.contains("bravo page") && !words.contains("alpha"), "project 2's session plays: {words:?}");
    // Back to the list, then the switcher to project 1.
    browser.client.find(Locator::Id("back")).await?.click().await?;
    browser.wait_for("return location.pathname === '/viewer/p/2/'", Duration::from_secs(10)).await?;
    browser.eval("document.getElementById('project').value = '1'; document.getElementById('project-switcher').submit(); return true;").await?;
    browser.wait_for("return location.pathname === '/viewer/p/1/'", Duration::from_secs(10)).await?;
    browser.client.find(Locator::Css("tr[data-session='same-id'] a")).await?.click().await?;
    browser.wait_player().await?;
    let words = replayed_text(&browser).await?;
    ensure!(words.contains("alpha page"), "project 1's session with the same id: {words:?}");
    // A link of the first viewer, without a project, does not pick one silently.
    browser.open_viewer(&server, "/viewer/player.html?session=same-id").await?;
    let choices = browser.eval("return document.querySelectorAll('ul.choices a').length").await?;
    ensure!(choices == 2, "both projects offered: {choices}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_member_of_one_project_cannot_open_the_others_sessions_by_any_url() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let create = |name: &str| -> Result<String> {
        let out = std::process::Command::new(replay_e2e::server_bin()?)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["project", "create", name])
            .output()?;
        ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?.split("ingest key: ").nth(1).context("a key")?.trim().to_owned())
    };
    let key_a = create("alpha")?;
    let key_b = create("bravo")?;
    let server = Server::start_in(data_dir)?;
    for (key, url, words) in
        [(&key_a, "https://alpha.test/", "alpha page"), (&key_b, "https://bravo.test/", "bravo page")]
    {
        let (status, answer) = server.ingest(Some(key), &session("same-id", url, words), None)?;
        ensure!(status == 200, "{answer}");
    }
    let browser = Browser::start().await?;
    // The admin adds ann without a password (an invitation link) and makes her a member of alpha.
    let link = browser.invite(&server, "ann").await?;
    browser
        .eval(
            "const f = document.getElementById('set-role'); f.elements.user.value = 'ann'; f.elements.project.value = '1';
             f.elements.role.value = 'member'; f.submit(); return true;",
        )
        .await?;
    browser
        .wait_for(
            "return document.querySelector(\"tr[data-user='ann']\")?.textContent.includes('alpha (member)')",
            Duration::from_secs(10),
        )
        .await?;
    browser.client.find(Locator::Id("sign-out")).await?.click().await?;
    browser.wait_for("return location.pathname === '/login'", Duration::from_secs(10)).await?;
    // Ann opens the link, chooses her password, signs in: she lands in alpha, the only project
    // her switcher offers.
    browser.client.goto(&server.url(&link)).await?;
    browser.eval("document.getElementById('password').value = 'ann-password-1'; document.querySelector('form').submit(); return true;").await?;
    browser.wait_for("return location.pathname === '/login'", Duration::from_secs(10)).await?;
    browser
        .eval(
            "document.getElementById('username').value = 'ann'; document.getElementById('password').value = 'ann-password-1';
             document.querySelector('form').submit(); return true;",
        )
        .await?;
    browser.wait_for("return location.pathname === '/viewer/p/1/'", Duration::from_secs(10)).await?;
    let options = browser
        .eval("return [...document.querySelectorAll('#project option')].map(o => o.textContent).join(',')")
        .await?;
    ensure!(options == "alpha", "only her project: {options}");
    // Bravo's session is not reachable by any URL: its list, player, export, API, an old link.
    for path in [
        "/viewer/p/2/",
        "/viewer/p/2/errors",
        "/viewer/p/2/player.html?session=same-id",
        "/viewer/p/2/export/same-id",
        "/api/v1/projects/2/sessions/same-id/events",
        "/api/v1/sessions/same-id/snapshot?project=2",
    ] {
        browser.client.goto(&server.url(path)).await?;
        let body = browser.eval("return document.body.textContent").await?;
        let body = body.as_str().unwrap_or_default();
        ensure!(body.contains("not_found") && !body.contains("bravo"), "{path}: {body}");
    }
    browser.client.goto(&server.url("/viewer/player.html?session=same-id")).await?;
    browser.wait_player().await?;
    let here = browser.client.current_url().await?;
    ensure!(here.path() == "/viewer/p/1/player.html", "an old link opens her project's session: {here}");
    let words = replayed_text(&browser).await?;
    ensure!(words.contains("alpha page"), "{words:?}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_gives_roles_and_makes_scoped_tokens_for_automation() -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let run = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new(replay_e2e::server_bin()?)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(args)
            .output()?;
        ensure!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?)
    };
    let key_a = run(&["project", "create", "alpha"])?.split("ingest key: ").nth(1).context("key")?.trim().to_owned();
    let key_b = run(&["project", "create", "bravo"])?.split("ingest key: ").nth(1).context("key")?.trim().to_owned();
    run(&["user", "set", "ci"])?;
    run(&["user", "role", "ci", "1", "read_only"])?;
    let made = run(&["user", "token", "--user", "ci", "--scopes", "read", "--name", "nightly"])?;
    let secret = made.split(": ").nth(1).context("the secret")?.trim().to_owned();
    ensure!(secret.starts_with("rpt_"), "{made}");
    ensure!(
        std::process::Command::new(replay_e2e::server_bin()?)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["user", "role", "ci", "1", "root"])
            .output()?
            .status
            .code()
            != Some(0),
        "an unknown role is refused"
    );
    let server = Server::start_in(data_dir)?;
    for (key, url, words) in
        [(&key_a, "https://alpha.test/", "alpha page"), (&key_b, "https://bravo.test/", "bravo page")]
    {
        let (status, answer) = server.ingest(Some(key), &session("same-id", url, words), None)?;
        ensure!(status == 200, "{answer}");
    }
    let with_token = |path: &str| {
        ureq::get(&server.url(path)).set("authorization", &format!("Bearer {secret}")).call().map_or_else(
            |e| match e {
                ureq::Error::Status(code, _) => Ok(code),
                other => Err(anyhow::anyhow!("{other}")),
            },
            |r| Ok(r.status()),
        )
    };
    ensure!(with_token("/api/v1/projects/1/sessions/same-id")? == 200, "the token reads its user's project");
    ensure!(with_token("/api/v1/projects/2/sessions/same-id")? == 404, "and nothing else");
    ensure!(with_token("/api/v1/projects/1/members")? == 200);
    ensure!(with_token("/api/v1/admin/users")? == 404, "read is not admin");
    Ok(())
}
