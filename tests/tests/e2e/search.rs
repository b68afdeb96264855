//! Search by what happened, in Chromium: four sessions, each doing one thing (clicking a button
//! with a text, a fetch that fails, a `console.error`, going from page A to page B), each found
//! by its filter in the API and the viewer's list, and not the others.

use std::time::Duration;

use anyhow::{Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, FixtureServer, Server};

const HEAD: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>shop</title>
<script src=\"{{SERVER}}/recorder.js\" data-key=\"{{KEY}}\"></script></head>";

/// One session in a tab of its own: load page A, run `act`, wait and deliver.
async fn session(browser: &Browser, fixtures: &FixtureServer, act: &str) -> Result<()> {
    let c = &browser.client;
    let tab = c.new_window(true).await?;
    c.switch_to_window(tab.handle).await?;
    c.goto(&fixtures.url("a.html")).await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    match act {
        "click" => c.find(Locator::Css("#coupon")).await?.click().await?,
        "fetch" => {
            browser.eval("fetch('missing-prices.json').catch(() => {}); return true;").await?;
        }
        "console" => {
            browser.eval("console.error('coupon expired for basket 42'); return true;").await?;
        }
        _ => c.goto(&fixtures.url("b.html")).await?,
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    browser.flush_within(Duration::from_secs(20)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_found_by_a_click_a_failed_request_a_console_message_and_a_page_sequence() -> Result<()> {
    let server = Server::start()?;
    let dir = tempfile::tempdir()?;
    let body = "<body><button id=\"coupon\">Apply coupon</button> <a href=\"b.html\">Checkout</a></body></html>";
    std::fs::write(dir.path().join("a.html"), format!("{HEAD}{body}"))?;
    std::fs::write(dir.path().join("b.html"), format!("{HEAD}<body><p>Checkout</p></body></html>"))?;
    let shop = FixtureServer::start(dir.path().to_owned(), &server.base, &server.key)?;
    let browser = Browser::start().await?;
    let acts = ["click", "fetch", "console", "navigate"];
    for act in acts {
        session(&browser, &shop, act).await?;
    }
    let sessions = server.sessions()?;
    ensure!(sessions.len() == 4, "four sessions: {sessions:?}");
    // Newest first: reversed, they are in the order of `acts`.
    let ids: Vec<String> = sessions.iter().rev().map(|s| s["id"].as_str().unwrap_or_default().to_owned()).collect();
    let result = async {
        for (query, only) in [
            ("clicked=apply%20coupon", Some("click")),
            ("failed_request=missing-prices", Some("fetch")),
            ("console=coupon%20expired", Some("console")),
            ("visited=a.html&then_visited=b.html", Some("navigate")),
            ("visited=b.html&then_visited=a.html", None),
            ("clicked=checkout", None),
        ] {
            let expected: Vec<&String> =
                acts.iter().zip(&ids).filter(|(act, _)| Some(**act) == only).map(|(_, id)| id).collect();
            let listed = server.get_json(&format!("/api/v1/projects/1/sessions?{query}"))?;
            let found: Vec<String> = listed["sessions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["id"].as_str().map(str::to_owned))
                .collect();
            ensure!(found.iter().collect::<Vec<_>>() == expected, "{query}: the API found {found:?}, not {expected:?}");
            let page = server.get_text(&format!("/viewer/p/1/?{query}"))?;
            for (act, id) in acts.iter().zip(&ids) {
                let shown = page.contains(&format!("session={id}"));
                ensure!(shown == (Some(*act) == only), "{query}: the list shows the {act} session: {shown}");
            }
        }
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}
