//! Single sign-on with OpenID Connect (issue 14 item 8) against a real, certified provider:
//! the pinned `oidc-provider` of `tests/oidc/` (installed into `target/oidc-provider` by `cargo
//! xtask test`), started here on `localhost` (another site than the server's `127.0.0.1`, as a
//! real provider is) with one confidential client for the real server. In Chromium, through the
//! provider's own sign-in and consent pages: an account an admin created signs in with
//! "Sign in with …" and sees its project's list; an unknown address, a disabled account and an
//! unverified address are refused with their message; a forged `state` and a replayed callback
//! are refused, and sign no one in.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fantoccini::Locator;
use replay_e2e::{ADMIN_TOKEN, Browser, Server};
use replay_protocol::test_util::{at, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, encode_batch};
use serde_json::{Value, json};

const T0: u64 = 1_700_000_040_000;
const CLIENT_ID: &str = "replay-e2e";
const CLIENT_SECRET: &str = "e2e-oidc-client-secret-0123456789";

/// The provider, killed when dropped; `redirects` are the callback URLs it sent browsers to.
struct Provider {
    child: Child,
    issuer: String,
    redirects: Arc<Mutex<Vec<String>>>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    fn start(redirect_uri: &str) -> Result<Provider> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = root.join("target/oidc-provider");
        if !dir.join("node_modules/oidc-provider/package.json").is_file() {
            bail!("{} has no oidc-provider: run `cargo xtask test` (it runs npm ci there)", dir.display());
        }
        // The script as it is in the repository, next to the installed packages it imports.
        std::fs::copy(root.join("tests/oidc/provider.mjs"), dir.join("provider.mjs"))?;
        let port = replay_e2e::free_port()?.to_string();
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .args([&port, CLIENT_ID, CLIENT_SECRET, redirect_uri, "localhost"])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the OpenID Connect provider (node)")?;
        let stdout = child.stdout.take().context("the provider's stdout")?;
        let redirects = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let noted = Arc::clone(&redirects);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("listening ") {
                    let _ = ready_tx.send(issuer.to_owned());
                } else if let Some(url) = line.strip_prefix("redirect ")
                    && let Ok(mut r) = noted.lock()
                {
                    r.push(url.to_owned());
                }
            }
        });
        let issuer = match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(issuer) => issuer,
            Err(_) => {
                let _ = child.kill();
                bail!("the OpenID Connect provider did not start");
            }
        };
        Ok(Provider { child, issuer, redirects })
    }
}

fn admin(server: &Server, method: &str, path: &str, body: Value) -> Result<Value> {
    let answer = ureq::request(method, &server.url(path))
        .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .send_json(body)
        .with_context(|| format!("{method} {path}"))?;
    Ok(answer.into_json().unwrap_or(Value::Null))
}

fn session() -> Result<Vec<u8>> {
    let mut b = Batch::new("sso-session", "page-1", 0, T0);
    b.flags = Batch::FLAG_PAGE_START;
    b.events = vec![at(0, meta("https://shop.test/cart")), at(0, snapshot(page_nodes(&[], [text(5, 4, "cart")])))];
    b.end = T0 + 1_000;
    Ok(encode_batch(&b)?)
}

/// Forgets every cookie of the server and of the provider (signed out of both).
async fn forget_cookies(browser: &Browser, server: &Server, provider: &Provider) -> Result<()> {
    for origin in [server.url("/healthz"), format!("{}/.well-known/openid-configuration", provider.issuer)] {
        browser.client.goto(&origin).await?;
        browser.client.delete_all_cookies().await?;
    }
    Ok(())
}

/// From the server's sign-in page, "Sign in with Test IdP", then the provider's sign-in form
/// as `account` and its consent page, until the browser is back on the server.
async fn sign_in_with_provider(browser: &Browser, server: &Server, provider: &Provider, account: &str) -> Result<()> {
    browser.client.goto(&server.url("/viewer/p/1/")).await?;
    let here = browser.client.current_url().await?;
    ensure!(here.path() == "/login", "not signed in: the sign-in page ({here})");
    let button = browser.client.find(Locator::Id("sso-sign-in")).await?;
    ensure!(button.text().await? == "Sign in with Test IdP", "the button names the provider");
    button.click().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let server_origin = server.url("");
    loop {
        let url = browser.client.current_url().await?.to_string();
        if Instant::now() > deadline {
            let page = browser.eval("return document.body ? document.body.innerText : ''").await?;
            bail!("the sign-in did not come back to the server: at {url}: {page}");
        }
        if url.starts_with(&server_origin) && !url.contains("/login/sso") {
            break;
        }
        if !url.starts_with(&provider.issuer) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        // The provider's pages: its sign-in form (any password), then its consent form.
        let step = browser
            .eval(&format!(
                "if (document.readyState !== 'complete') return 'loading';
                 const login = document.querySelector('input[name=login]');
                 if (login) {{
                     login.value = {};
                     document.querySelector('input[name=password]').value = 'any password';
                     login.form.submit(); return 'login';
                 }}
                 const form = document.querySelector('form button[type=submit]');
                 if (form) {{ form.form.submit(); return 'consent'; }}
                 return 'waiting';",
                Value::from(account)
            ))
            .await?;
        if step == "login" || step == "consent" {
            // Wait for the page to go before reading it again.
            let left = format!("return location.href !== {}", Value::from(url.as_str()));
            browser.wait_for(&left, Duration::from_secs(10)).await?;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    browser.wait_for("return document.readyState === 'complete'", Duration::from_secs(10)).await?;
    Ok(())
}

/// The sign-in page's single sign-on message, once the browser is on it.
async fn sso_error(browser: &Browser) -> Result<String> {
    browser
        .wait_for(
            "return location.pathname === '/login' && !!document.getElementById('sso-error')",
            Duration::from_secs(10),
        )
        .await?;
    let text = browser.eval("return document.getElementById('sso-error').textContent").await?;
    Ok(text.as_str().unwrap_or_default().to_owned())
}

/// Whether the browser is signed in to the server (the list opens instead of the sign-in page).
async fn signed_in(browser: &Browser, server: &Server) -> Result<bool> {
    browser.client.goto(&server.url("/viewer/p/1/")).await?;
    Ok(browser.client.current_url().await?.path() != "/login")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_sign_in_with_a_certified_openid_provider_and_only_the_right_ones() -> Result<()> {
    let address = replay_e2e::free_address()?;
    let redirect = format!("http://{address}/login/sso/callback");
    let provider = Provider::start(&redirect)?;
    let server = Server::start_with(
        tempfile::tempdir()?,
        &address,
        &[
            ("REPLAY_OIDC_ISSUER", provider.issuer.as_str()),
            ("REPLAY_OIDC_CLIENT_ID", CLIENT_ID),
            ("REPLAY_OIDC_CLIENT_SECRET", CLIENT_SECRET),
            ("REPLAY_OIDC_REDIRECT_URL", redirect.as_str()),
            ("REPLAY_OIDC_NAME", "Test IdP"),
        ],
    )?;
    let (status, answer) = server.ingest(Some(&server.key), &session()?, None)?;
    ensure!(status == 200, "{answer}");
    // Accounts an admin made, named by their e-mail address: alice a member of project 1,
    // carol too but disabled. Nobody made mallory's.
    for user in ["alice@example.com", "carol@example.com"] {
        admin(&server, "POST", "/api/v1/admin/users", json!({ "name": user, "password": "a-password-nobody-uses" }))?;
        admin(&server, "PUT", &format!("/api/v1/projects/1/members/{user}"), json!({ "role": "member" }))?;
    }
    admin(&server, "PUT", "/api/v1/admin/users/carol@example.com", json!({ "disabled": true }))?;
    let browser = Browser::start().await?;

    // Alice signs in at the provider and lands on her project's list, signed in.
    sign_in_with_provider(&browser, &server, &provider, "alice@example.com").await?;
    browser.wait_for("return location.pathname === '/viewer/p/1/'", Duration::from_secs(10)).await?;
    let listed = browser.eval("return document.querySelector('#sessions tbody').textContent").await?;
    ensure!(listed.as_str().is_some_and(|t| t.contains("shop.test")), "her project's sessions: {listed}");
    let audit = server.get_json("/api/v1/projects/1/audit")?;
    let logged = audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["action"] == "user.sso_sign_in" && e["actor"] == "alice@example.com");
    ensure!(logged, "the sign-in is in the project's audit log: {audit}");
    let callback =
        provider.redirects.lock().ok().and_then(|r| r.first().cloned()).context("the provider's redirect")?;
    ensure!(callback.contains("code=") && callback.contains("state="), "{callback}");

    // The same callback again (code and state as the provider sent them) signs no one in.
    forget_cookies(&browser, &server, &provider).await?;
    browser.client.goto(&callback).await?;
    let message = sso_error(&browser).await?;
    ensure!(message.contains("expired"), "a replayed callback: {message}");
    ensure!(!signed_in(&browser, &server).await?, "and nobody is signed in");

    // A forged state, in a browser that did start a sign-in: refused too.
    browser.client.goto(&server.url("/login")).await?;
    browser.client.find(Locator::Id("sso-sign-in")).await?.click().await?;
    browser.wait_for("return !!document.querySelector('input[name=login]')", Duration::from_secs(10)).await?;
    browser.client.goto(&server.url("/login/sso/callback?code=made-up&state=forged")).await?;
    let message = sso_error(&browser).await?;
    ensure!(message.contains("expired"), "a forged state: {message}");
    ensure!(!signed_in(&browser, &server).await?, "and nobody is signed in");

    // Refused accounts, each with its message and no sign-in.
    for (account, expected) in [
        ("mallory@example.com", "no account here matches your e-mail address"),
        ("carol@example.com", "This account is disabled."),
        // Its provider says alice's address, unverified: it does not get alice's account.
        ("unverified@example.com", "has not verified your e-mail address"),
    ] {
        forget_cookies(&browser, &server, &provider).await?;
        sign_in_with_provider(&browser, &server, &provider, account).await?;
        let message = sso_error(&browser).await?;
        ensure!(message.contains(expected), "{account}: {message}");
        ensure!(!signed_in(&browser, &server).await?, "{account} is not signed in");
    }
    let users = server.get_json("/api/v1/admin/users")?;
    ensure!(!users.to_string().contains("mallory"), "no account is created by default: {users}");

    browser.close().await?;
    Ok(())
}
