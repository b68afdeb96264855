//! Signing in and out, the admin token's bootstrap, and the tokens of this server's forms
//! (who the caller is and what they may do is [`crate::access`]).
//!
//! Ingest keys are public and write-only; nothing here accepts them. Reading sessions needs
//! either `Authorization: Bearer <admin token>` or the viewer's login cookie. Both secrets are
//! high-entropy random strings and are stored only as SHA-256 digests; viewer passwords are
//! stored as argon2id hashes. The cookie is `HttpOnly` and `SameSite=Strict`; over HTTPS
//! (`--secure-cookies`, or a trusted proxy's `X-Forwarded-Proto: https`) it is `Secure` and named
//! with the `__Host-` prefix, which browsers only accept from this exact host over HTTPS, so no
//! sibling subdomain or plain-HTTP page can plant one.
//!
//! Every form that changes state carries a token a page of another site cannot know: the
//! sign-in form echoes a random value of its own cookie (double submit), and forms shown to a
//! signed-in user carry [`form_token`], a digest of their login that only this server's pages
//! write.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use replay_core::{now_ms, random_hex};
use replay_store::Storage;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::layout::{self, Nav, html_response, url_encode};
use crate::reject::Reason;
use crate::{ApiError, AppState, Error};

/// Name of the viewer's login cookie over plain HTTP.
pub const COOKIE: &str = "replay_login";
/// Name of the viewer's login cookie over HTTPS.
pub const HOST_COOKIE: &str = "__Host-replay_login";
/// Name of the sign-in form's token cookie over plain HTTP.
const FORM_COOKIE: &str = "replay_form";
/// Name of the sign-in form's token cookie over HTTPS.
const HOST_FORM_COOKIE: &str = "__Host-replay_form";
/// Settings key of the admin token's digest.
pub const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";
/// How long a viewer login lasts.
const LOGIN_TTL_MS: u64 = 12 * 60 * 60 * 1000;

/// The sign-in page runs no script and may only post to this site.
const LOGIN_CSP: &str =
    "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Lowercase hex SHA-256 of a secret.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two equal-length strings without an early exit.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Random(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Random(e.to_string()))
}

/// Refuses a form posted from another site: browsers send `Origin` with every cross-origin
/// POST, so a sign-in forced on a visitor by another page (signing them in as the attacker) or a
/// forced sign-out is refused when that origin's host is not the one the request is addressed
/// to (`Host`, or a trusted proxy's `X-Forwarded-Host`). Requests without `Origin` (API
/// clients) pass; the `SameSite=Strict` cookie protects everything else.
fn same_site_form(headers: &HeaderMap, forwarded_host: Option<&str>) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let host = forwarded_host.or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    let origin_host = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()).and_then(|u| {
        let host = u.host_str()?.to_owned();
        Some(match u.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(ApiError::new(Reason::CrossSiteForm, "forms of this server are only accepted from its own pages")),
    }
}

/// An argon2id hash of a random password, made once: checked against when the user name is
/// unknown, so that a wrong name takes as long to refuse as a wrong password.
pub(crate) fn stand_in_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let password = random_hex(16).unwrap_or_default();
        hash_password(&password).unwrap_or_default()
    })
}

pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// What the server printed or set up at start: secrets shown once.
#[derive(Debug, Default)]
pub struct Bootstrap {
    /// The admin token, when it was generated now (shown once, then only its digest is kept).
    pub new_admin_token: Option<String>,
    /// The first viewer account, when it was created now: its name, and its password when it
    /// was generated (a password given through the environment is never echoed).
    pub new_user: Option<(String, Option<String>)>,
}

/// Makes sure an admin token and a first viewer account exist. `admin_token` (from config or
/// `REPLAY_ADMIN_TOKEN`) replaces the stored digest; `admin_password` (from
/// `REPLAY_ADMIN_PASSWORD`) sets the first account's password instead of a generated one.
pub fn bootstrap(
    storage: &dyn Storage,
    admin_token: Option<&str>,
    admin_password: Option<&str>,
) -> Result<Bootstrap, Error> {
    let mut out = Bootstrap::default();
    match admin_token {
        Some(t) => storage.set_setting(ADMIN_TOKEN_SETTING, &digest(t))?,
        None if storage.setting(ADMIN_TOKEN_SETTING)?.is_none() => {
            let token = random_hex(24)?;
            storage.set_setting(ADMIN_TOKEN_SETTING, &digest(&token))?;
            out.new_admin_token = Some(token);
        }
        None => {}
    }
    if storage.user_count()? == 0 {
        let (password, shown) = match admin_password {
            Some(p) => (p.to_owned(), None),
            None => {
                let p = random_hex(12)?;
                (p.clone(), Some(p))
            }
        };
        storage.put_user("admin", &hash_password(&password)?)?;
        storage.set_user_admin("admin", true)?;
        out.new_user = Some(("admin".into(), shown));
    } else if let Some(p) = admin_password {
        // Only a new password is stored: storing one ends the account's sign-ins, and every
        // restart (of every instance) would otherwise sign the admin out.
        let current = storage.user_password_hash("admin")?;
        if !current.is_some_and(|h| verify_password(p, &h)) {
            storage.put_user("admin", &hash_password(p)?)?;
        }
    }
    Ok(out)
}

/// The value of the cookie `name`, if the request has one.
fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name && !v.is_empty()).then(|| v.to_owned())
    })
}

/// Set by [`mark_https`] on a request that came over HTTPS (the server says so, or a trusted
/// proxy does); removed from what clients send.
const HTTPS_MARK: &str = "x-replay-internal-https";

/// Marks the requests that came over HTTPS ([`HTTPS_MARK`]), for the cookie readers that do not
/// see the connection: over HTTPS only the `__Host-` cookies count ([`plain_cookies_ignored`]).
pub async fn mark_https(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    request.headers_mut().remove(HTTPS_MARK);
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    if is_https(&state, peer, request.headers()) {
        request.headers_mut().insert(HTTPS_MARK, HeaderValue::from_static("1"));
    }
    next.run(request).await
}

/// Whether plain-named cookies are ignored for this request: it came over HTTPS, where the
/// server sets only `__Host-` ones. A plain `replay_login` there was planted (by plain HTTP or a
/// sibling host) and would sign the visitor in as someone else.
pub(crate) fn plain_cookies_ignored(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies || headers.contains_key(HTTPS_MARK)
}

/// The cookie `host_name` (set over HTTPS), else `plain_name` unless the request came over
/// HTTPS (`secure_only`, see [`plain_cookies_ignored`]): then a plain-named cookie, which any
/// page of a sibling host or plain HTTP could have planted, is ignored.
pub(crate) fn cookie_value_of(
    headers: &HeaderMap,
    secure_only: bool,
    host_name: &str,
    plain_name: &str,
) -> Option<String> {
    cookie_named(headers, host_name).or_else(|| if secure_only { None } else { cookie_named(headers, plain_name) })
}

/// The login cookie of a request.
fn cookie_value(headers: &HeaderMap, secure_only: bool) -> Option<String> {
    cookie_value_of(headers, secure_only, HOST_COOKIE, COOKIE)
}

/// The token that forms shown to the user signed in with `headers`' login carry, and that the
/// handlers of those forms check ([`check_form_token`]): a digest of the login, so it changes
/// with every sign-in and no other site can compute it. `None` when not signed in.
pub fn form_token(state: &AppState, headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, plain_cookies_ignored(state, headers))
        .map(|login| digest(&format!("replay-form-token\n{login}")))
}

/// Refuses a state-changing form of a signed-in user whose token is not [`form_token`].
pub fn check_form_token(state: &AppState, headers: &HeaderMap, given: Option<&str>) -> Result<(), ApiError> {
    match (form_token(state, headers), given) {
        (Some(expected), Some(given)) if same(&expected, given) => Ok(()),
        _ => {
            state.metrics.rejected(Reason::BadFormToken);
            Err(ApiError::new(Reason::BadFormToken, "this form is not from this server's pages; reload the page"))
        }
    }
}

/// Whether the request came over HTTPS: the server is configured so, or a trusted proxy says so.
pub(crate) fn is_https(state: &AppState, peer: Option<std::net::IpAddr>, headers: &HeaderMap) -> bool {
    state.config.secure_cookies || crate::client::forwarded_https(peer, headers, &state.config.trusted_proxies)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, path `/`; over HTTPS `Secure` and the
/// `__Host-` name.
fn set_cookie(https: bool, host_name: &str, plain_name: &str, value: &str, max_age_s: Option<u64>) -> String {
    let (name, secure) = if https { (host_name, "; Secure") } else { (plain_name, "") };
    let max_age = max_age_s.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{max_age}{secure}")
}

/// The login cookie's value, if the request has one (see [`cookie_value_of`]).
pub(crate) fn login_cookie(state: &AppState, headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, plain_cookies_ignored(state, headers))
}

/// Where to go after signing in: only local paths, never another site.
///
/// The target is resolved the way a browser resolves a `Location` header (WHATWG URL parsing,
/// which drops tabs and newlines and reads a backslash as `/`) against a stand-in origin, and kept only
/// when it stays on that origin; it goes out as the parsed path, query and fragment, so what the
/// browser follows is exactly what was checked.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/viewer/";
    let Some(next) = next.filter(|n| n.starts_with('/') && !n.chars().any(|c| c.is_control() || c == '\\')) else {
        return HOME.to_owned();
    };
    let Ok(base) = url::Url::parse("http://replay.invalid/") else { return HOME.to_owned() };
    match base.join(next) {
        // A path that starts with `//` once resolved (`/.//evil.example/`) is another site's
        // address to the browser that follows it: never kept.
        Ok(u)
            if u.origin() == base.origin()
                && u.username().is_empty()
                && u.password().is_none()
                && !u.path().starts_with("//") =>
        {
            let mut out = u.path().to_owned();
            if let Some(q) = u.query() {
                out.push('?');
                out.push_str(q);
            }
            if let Some(f) = u.fragment() {
                out.push('#');
                out.push_str(f);
            }
            out
        }
        _ => HOME.to_owned(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    failed: Option<String>,
    expired: Option<String>,
    /// How a single sign-on that came back failed ([`crate::sso::Failure`]).
    sso: Option<String>,
}

/// `GET /login`: the sign-in form, with its token (the form cookie's value, made now unless the
/// browser has one, so two open sign-in tabs both work).
pub async fn login_page(
    State(state): State<AppState>,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let peer = connect.map(|Extension(c)| c.0.ip());
    let https = is_https(&state, peer, &headers);
    let existing = cookie_value_of(&headers, plain_cookies_ignored(&state, &headers), HOST_FORM_COOKIE, FORM_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    let token = match existing {
        Some(t) => t,
        None => random_hex(32)?,
    };
    let next = safe_next(q.next.as_deref());
    let content = html! {
        (crate::sso::login_error(state.config.oidc.as_ref(), q.sso.as_deref()))
        form method="post" action="/login" {
            @if q.failed.is_some() { p.error { "Wrong user name or password." } }
            @if q.expired.is_some() { p.error { "The sign-in form had expired. Please sign in again." } }
            label { "User " input #username name="username" autocomplete="username" required; }
            label { "Password " input #password name="password" type="password" autocomplete="current-password" required; }
            input type="hidden" name="next" value=(next);
            input type="hidden" name="form_token" value=(token);
            button #sign-in type="submit" { "Sign in" }
        }
        (crate::sso::login_button(state.config.oidc.as_ref(), &next))
    };
    let mut response = html_response(layout::page("Sign in", Nav::SignIn, "login", None, content), LOGIN_CSP);
    // Not `no-referrer` like the other pages: with it, browsers send `Origin: null` with the
    // form, and the cross-site check of `login` could not tell this page from another site's.
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if let Ok(v) = HeaderValue::from_str(&set_cookie(https, HOST_FORM_COOKIE, FORM_COOKIE, &token, None)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
    /// The sign-in form's token: must equal its cookie.
    form_token: Option<String>,
}

/// `POST /login`: checks the password (argon2, off the async workers) and sets the cookie.
///
/// Attempts are limited per client address (its /64 for IPv6, the forwarded address behind
/// trusted proxies) and per account name, so guessing one account from many addresses is slow
/// too; at most one password check per core runs at once, and an unknown name costs a check
/// against a stand-in hash, as long as a known one.
pub async fn login(
    State(state): State<AppState>,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    let peer = connect.map(|Extension(c)| c.0.ip());
    same_site_form(&headers, crate::client::forwarded_host(peer, &headers, &state.config.trusted_proxies))?;
    let client = crate::client::client_ip(peer, &headers, &state.config.trusted_proxies).map(crate::client::limit_key);
    let too_many = |state: &AppState| {
        state.metrics.rejected(Reason::LoginRateLimited);
        Err(ApiError::new(Reason::LoginRateLimited, "too many sign-in attempts"))
    };
    if let Some(ip) = client
        && state.limits.login.check_key(&ip).is_err()
    {
        return too_many(&state);
    }
    let next = safe_next(form.next.as_deref());
    // Double submit: another site can make a browser post this form, but cannot read the
    // cookie to copy its value into the form. Without the check it could sign a visitor in
    // to the attacker's account and watch what they then look at.
    let cookie_token =
        cookie_value_of(&headers, plain_cookies_ignored(&state, &headers), HOST_FORM_COOKIE, FORM_COOKIE);
    let token_ok = match (cookie_token.as_deref(), form.form_token.as_deref()) {
        (Some(c), Some(f)) => same(c, f),
        _ => false,
    };
    if !token_ok {
        state.metrics.rejected(Reason::BadFormToken);
        tracing::info!(user = %form.username, "sign-in form without a valid form token");
        return Ok(Redirect::to(&format!("/login?expired=1&next={}", url_encode(&next))).into_response());
    }
    // The account's budget of attempts from this address, after the form token: a post without
    // one (any site's, any script's) cannot spend it, and another address's attempts never
    // lock the account's owner out.
    if !state.limits.check_login_account(&form.username, client) {
        return too_many(&state);
    }
    let name = form.username.clone();
    // A disabled account is checked like an unknown one: refused, in the same time.
    let stored = state
        .blocking(move |s| {
            let disabled = s.user(&name)?.is_some_and(|u| u.disabled);
            if disabled { Ok(None) } else { s.user_password_hash(&name) }
        })
        .await?;
    let password = form.password;
    // The semaphore is never closed, so acquiring only ever waits.
    let _slot = state.password_slots.acquire().await.ok();
    let ok = tokio::task::spawn_blocking(move || match stored {
        Some(h) => verify_password(&password, &h),
        None => {
            let _ = verify_password(&password, stand_in_hash());
            false
        }
    })
    .await
    .map_err(Error::from)?;
    if !ok {
        tracing::info!(user = %form.username, "sign-in refused");
        let target = format!("/login?failed=1&next={}", url_encode(&next));
        return Ok(Redirect::to(&target).into_response());
    }
    let token = new_sign_in(&state, &form.username).await?;
    tracing::info!(user = %form.username, "signed in");
    let https = is_https(&state, peer, &headers);
    let cookie = login_set_cookie(https, &token);
    let mut response = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Starts a sign-in of `user` (a password's or a single sign-on's): stores its digest and
/// returns the cookie's secret.
pub(crate) async fn new_sign_in(state: &AppState, user: &str) -> Result<String, Error> {
    let token = random_hex(32)?;
    let hash = digest(&token);
    let user = user.to_owned();
    state.blocking(move |s| s.create_login(&hash, &user, now_ms() + LOGIN_TTL_MS)).await?;
    Ok(token)
}

/// The `Set-Cookie` value of a new sign-in's login cookie.
pub(crate) fn login_set_cookie(https: bool, token: &str) -> String {
    set_cookie(https, HOST_COOKIE, COOKIE, token, Some(LOGIN_TTL_MS / 1000))
}

#[derive(Debug, Deserialize, Default)]
pub struct LogoutForm {
    /// [`form_token`] of the login being ended.
    form_token: Option<String>,
}

/// `POST /logout`: forgets the login. The form must carry the login's [`form_token`], so
/// another site cannot sign a user out. (No `Origin` check as for signing in: the pages with
/// this form send no referrer, so browsers post it with `Origin: null`; the token is the proof.)
pub async fn logout(
    State(state): State<AppState>,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let peer = connect.map(|Extension(c)| c.0.ip());
    if let Some(cookie) = cookie_value(&headers, plain_cookies_ignored(&state, &headers)) {
        let given = form.ok().and_then(|Form(f)| f.form_token);
        check_form_token(&state, &headers, given.as_deref())?;
        let hash = digest(&cookie);
        state.blocking(move |s| s.delete_login(&hash)).await?;
        state.refused.insert(&cookie);
    }
    let mut response = Redirect::to("/login").into_response();
    let https = is_https(&state, peer, &headers);
    for (host, plain) in [(HOST_COOKIE, COOKIE), (HOST_FORM_COOKIE, FORM_COOKIE)] {
        if let Ok(v) = HeaderValue::from_str(&set_cookie(https, host, plain, "", Some(0))) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// The redirect to the sign-in page for a viewer page at `path_and_query`.
pub fn to_login(path_and_query: &str) -> Response {
    Redirect::to(&format!("/login?next={}", url_encode(path_and_query))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn bootstrap_never_echoes_a_given_password_and_keeps_sign_ins_when_it_is_unchanged() {
        let db = replay_store::SqliteStorage::in_memory().expect("db");
        let boot = bootstrap(&db, Some("token"), Some("from-env")).expect("bootstrap");
        assert_eq!(boot.new_user, Some(("admin".to_owned(), None)), "the password is not shown");
        db.create_login("cookie", "admin", u64::MAX / 2).expect("login");
        bootstrap(&db, Some("token"), Some("from-env")).expect("restart");
        assert!(db.login_user("cookie", 1).expect("q").is_some(), "a restart keeps the sign-ins");
        bootstrap(&db, Some("token"), Some("changed")).expect("new password");
        assert!(db.login_user("cookie", 1).expect("q").is_none(), "a new password ends them");
        let fresh = replay_store::SqliteStorage::in_memory().expect("db");
        let boot = bootstrap(&fresh, None, None).expect("bootstrap");
        assert!(matches!(boot.new_user, Some((_, Some(_)))), "a generated password is shown once");
        assert!(boot.new_admin_token.is_some());
    }

    #[test]
    fn forms_from_other_sites_are_refused() {
        let with = |origin: Option<&str>, host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().expect("host"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().expect("origin"));
            }
            same_site_form(&h, None).is_ok()
        };
        assert!(with(None, "replay.example"), "API clients send no Origin");
        assert!(with(Some("https://replay.example"), "replay.example"));
        assert!(with(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"));
        assert!(!with(Some("https://evil.example"), "replay.example"));
        assert!(!with(Some("http://127.0.0.1:9999"), "127.0.0.1:8080"), "another port is another site");
        assert!(!with(Some("null"), "replay.example"), "sandboxed or file pages are not ours");
        let mut behind = HeaderMap::new();
        behind.insert(header::HOST, "10.0.0.5:8080".parse().expect("host"));
        behind.insert(header::ORIGIN, "https://replay.example".parse().expect("origin"));
        assert!(same_site_form(&behind, Some("replay.example")).is_ok(), "the proxy's forwarded host");
        assert!(same_site_form(&behind, None).is_err());
    }

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next(Some("/viewer/player.html?session=a")), "/viewer/player.html?session=a");
        assert_eq!(safe_next(Some("//evil.example/")), "/viewer/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/viewer/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/viewer/");
        // Tabs and newlines are dropped by browsers: `/\t/evil.example` is `//evil.example`.
        for hostile in ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "/ /evil.example/..", "/\u{0}/x"]
        {
            let got = safe_next(Some(hostile));
            assert!(got == "/viewer/" || (got.starts_with('/') && !got.starts_with("//")), "{hostile:?} -> {got}");
        }
        assert_eq!(safe_next(Some("/\t/evil.example")), "/viewer/");
        // Dot segments that resolve to a path starting with `//` (a network-path reference).
        for hostile in ["/.//evil.example/", "/..//evil.example/", "/%2e//evil.example/", "/viewer/..//evil.example/x"]
        {
            assert_eq!(safe_next(Some(hostile)), "/viewer/", "{hostile}");
        }
        assert_eq!(safe_next(Some("/viewer/../x?y=1#z")), "/x?y=1#z");
        assert_eq!(safe_next(Some("/%2F%2Fevil.example")), "/%2F%2Fevil.example");
        assert_eq!(safe_next(None), "/viewer/");
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; replay_login=tok; b=2"));
        assert_eq!(cookie_value(&h, false).as_deref(), Some("tok"));
        assert_eq!(cookie_value(&h, true), None, "over HTTPS only the __Host- cookie counts");
        h.insert(header::COOKIE, HeaderValue::from_static("replay_login=planted; __Host-replay_login=real"));
        assert_eq!(cookie_value(&h, false).as_deref(), Some("real"), "the __Host- cookie wins");
        assert_eq!(cookie_value(&h, true).as_deref(), Some("real"));
        h.insert(header::COOKIE, HeaderValue::from_static("replay_login="));
        assert_eq!(cookie_value(&h, false), None, "an emptied cookie is no cookie");
    }

    #[test]
    fn cookies_over_https_are_secure_and_host_prefixed() {
        let c = set_cookie(true, HOST_COOKIE, COOKIE, "v", Some(60));
        assert_eq!(c, "__Host-replay_login=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure");
        let c = set_cookie(false, HOST_COOKIE, COOKIE, "v", None);
        assert_eq!(c, "replay_login=v; Path=/; HttpOnly; SameSite=Strict");
    }
}
