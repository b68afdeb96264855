//! Privacy end to end: known secrets typed into a checkout form never appear in any byte the
//! recorder sends with default settings (gzip bodies decompressed before searching), and each
//! opt-in reveals exactly what it names.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, FixtureServer, Server, fixtures_dir};

const EMAIL: &str = "ada.lovelace@example.com";
const CARD: &str = "4242424242424242";
const PASSWORD: &str = "hunter2-correct-horse";
const ADDRESS: &str = "12 Analytical Engine Road";
const IGNORED: &str = "ignored-typed-value";
const STATIC: &str = "static-secret-text";
const BLOCKED: &str = "blocked-secret-text";
const NOTE: &str = "note-secret-text";
const LINK_TOKEN: &str = "link-secret-token";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()).collect()
}

/// Records the checkout page with `query` (script-tag options), types every secret, and
/// returns everything the recorder sent, decompressed.
async fn sent_bytes(server: &Server, browser: &Browser, query: &str) -> Result<Vec<u8>> {
    let dir = fixtures_dir("privacy");
    let site = FixtureServer::start(dir, &server.base, &server.key)?;
    let c = &browser.client;
    c.goto(&site.url(&format!("checkout.html{query}"))).await?;
    browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
    browser.eval_async("const d = arguments[arguments.length - 1]; window.Replay.flush().then(d, d);").await?;
    for (id, text) in
        [("email", EMAIL), ("card", CARD), ("password", PASSWORD), ("address", ADDRESS), ("ignored", IGNORED)]
    {
        let field = c.find(Locator::Id(id)).await?;
        field.click().await?;
        field.send_keys(text).await?;
    }
    let note = c.find(Locator::Id("note")).await?;
    note.click().await?;
    note.send_keys(" more").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = browser
        .eval_async(
            "const d = arguments[arguments.length - 1]; window.Replay.flush().then(d, (e) => d({ error: String(e) }));",
        )
        .await?;
    ensure!(stats["acked"].as_u64().unwrap_or(0) >= 2 && stats["pending"] == 0, "not delivered: {stats}");
    let sent = browser.eval("return window.__sent").await?;
    let mut all = Vec::new();
    for body in sent.as_array().context("sent bodies")? {
        let body = body.as_str().unwrap_or_default();
        ensure!(!body.starts_with("unexpected") && body != "error", "unexpected body: {body}");
        let bytes = hex(body);
        if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut all)?;
        } else {
            all.extend_from_slice(&bytes);
        }
    }
    // Uploads normally leave from the recorder's Web Worker, whose fetch the page cannot see:
    // what the server received and stored for this page's session counts as sent too.
    let url =
        browser.eval_async("const d = arguments[arguments.length - 1]; window.Replay.sessionUrl().then(d, d);").await?;
    let session = url.as_str().and_then(|u| u.split("session=").nth(1)).context("session id")?.to_owned();
    let mut stored = Vec::new();
    server
        .get(&format!("/api/v1/sessions/{session}/events"))
        .set("accept", "application/msgpack")
        .call()?
        .into_reader()
        .read_to_end(&mut stored)?;
    all.extend_from_slice(&stored);
    ensure!(all.len() > 100, "nothing was sent");
    Ok(all)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn present(bytes: &[u8]) -> Vec<&'static str> {
    [EMAIL, CARD, PASSWORD, ADDRESS, IGNORED, STATIC, BLOCKED, NOTE, LINK_TOKEN]
        .into_iter()
        .filter(|s| contains(bytes, s))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaves_the_page_by_default_and_each_opt_in_reveals_only_what_it_names() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let result = async {
        let default = sent_bytes(&server, &browser, "").await?;
        ensure!(present(&default) == vec![STATIC], "default settings leak: {:?}", present(&default));

        // Unmasking the address reveals the address, nothing else.
        let unmask = sent_bytes(&server, &browser, "?unmask=%23address").await?;
        ensure!(present(&unmask) == vec![ADDRESS, STATIC], "unmask #address: {:?}", present(&unmask));

        // Unmasking the whole form reveals its ordinary fields and the note; passwords, card
        // numbers and ignored fields stay out.
        let form = sent_bytes(&server, &browser, "?unmask=form").await?;
        ensure!(present(&form) == vec![EMAIL, ADDRESS, STATIC, NOTE], "unmask form: {:?}", present(&form));

        // maskAllText through init() (queued before the recorder loaded) hides static text too.
        let init = sent_bytes(&server, &browser, "?init=%7B%22maskAllText%22%3Atrue%7D").await?;
        ensure!(present(&init).is_empty(), "maskAllText via init: {:?}", present(&init));
        ensure!(contains(&init, "Checkout") || contains(&init, "********"), "text should be masked, not missing");

        // A block selector on the script tag turns the static paragraph into a placeholder.
        let block = sent_bytes(&server, &browser, "?block=%23static").await?;
        ensure!(present(&block).is_empty(), "block #static: {:?}", present(&block));
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}
