//! Single sign-on with OpenID Connect: the sign-in page's "Sign in with …" button starts the
//! authorization code flow with PKCE, `state` and `nonce` (`GET /login/sso`), and the provider
//! sends the browser back to `GET /login/sso/callback`, which signs the user in with the same
//! sign-in (cookie and stored digest) a password creates. The protocol is the `openidconnect`
//! crate's; this module configures it, carries its HTTP, and decides who the identity is here.
//!
//! **What is verified.** The `state` comes back equal to the one in a short-lived cookie of the
//! browser that started (HMAC-signed with a key derived from the client secret, ten minutes,
//! used once: every callback clears it), so a callback from another browser, a forged `state`
//! or a replayed callback is refused. The provider's `iss` parameter, when given, is the issuer
//! (mix-ups). The ID token's signature is checked against the provider's JWKS, its issuer,
//! audience (the client id), expiry and `nonce` by `openidconnect`; the access token's hash
//! (`at_hash`) when present. The e-mail comes from the ID token or else from the userinfo
//! endpoint (whose `sub` must be the token's), and must be verified (`email_verified: true`).
//!
//! **Who it is.** An identity is the pair (issuer, `sub`). Once linked to an account (at its
//! first sign-in) it always signs in to that account, whatever its e-mail says later. An
//! identity not linked yet is matched by its verified e-mail against the user names (which an
//! admin creates or invites as e-mail addresses, `alice@example.com`); an account already
//! linked to another identity of this issuer is not taken over by a new one claiming its
//! address. With `--oidc-auto-create` an unknown address gets a new account (member of no
//! project until an owner adds it); by default only accounts an admin made can sign in.
//! Disabled accounts are refused. A sign-in is written to the audit log of each project the
//! user is a member of ([`AUDIT_SIGN_IN`]).
//!
//! **Errors** go back to the sign-in page as a code (`/login?sso=…`) that names what happened
//! without details: unknown account, disabled, unverified e-mail, expired sign-in, refused at
//! the provider, provider unreachable. Details are logged.
//!
//! **The provider's documents** (discovery and JWKS) are fetched with a connect timeout of 5 s,
//! a whole-request timeout of 10 s, no redirects (SSRF) and a body cap of 1 MiB, and kept 15
//! minutes (one provider: one entry); a token signed with a key the JWKS lacks fetches them
//! again once, at most every minute (key rotation). The issuer and every endpoint it names must
//! be `https`, except on loopback addresses (tests, a provider on the same machine).
//!
//! The client secret is read from `--oidc-client-secret`, its variable or a file
//! (`--oidc-client-secret-file`) and never printed (its `Debug` is redacted).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use maud::{DOCTYPE, html};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use replay_core::{now_ms, random_hex};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layout::url_encode;
use crate::sso::{Failure, OidcConfig, check_provider_url};
use crate::{ApiError, AppState, auth};

/// Audit log action of a single sign-on (in each project the user is a member of).
pub const AUDIT_SIGN_IN: &str = "user.sso_sign_in";
/// How long a started sign-in may take at the provider.
const STATE_TTL_MS: u64 = 10 * 60 * 1000;
/// How long the provider's discovery document and keys are kept.
const METADATA_TTL: Duration = Duration::from_secs(15 * 60);
/// Shortest time between two fetches of the provider's keys for an unknown key id.
const REFRESH_MIN: Duration = Duration::from_secs(60);
/// Largest answer read from the provider.
const MAX_BODY: usize = 1024 * 1024;
/// Longest `next` carried through the provider (longer ones go to the home page).
const MAX_NEXT: usize = 1024;
/// Longest state cookie value sent (browsers keep cookies up to 4 KiB, name and attributes included).
const MAX_COOKIE: usize = 3 * 1024;
/// Name of the state cookie over plain HTTP.
const STATE_COOKIE: &str = "replay_sso";
/// Name of the state cookie over HTTPS.
const HOST_STATE_COOKIE: &str = "__Host-replay_sso";

/// The provider's documents, as last fetched.
struct Cached {
    metadata: CoreProviderMetadata,
    fetched: Instant,
}

/// Single sign-on at run time: the settings, the HTTP client and the provider's documents.
pub struct Sso {
    pub config: OidcConfig,
    http: Option<reqwest::Client>,
    /// Key of the state cookie's HMAC.
    state_key: [u8; 32],
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for Sso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sso").field("config", &self.config).finish_non_exhaustive()
    }
}

/// What the state cookie carries through the provider.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct StartedSignIn {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    expires_ms: u64,
}

type HmacSha256 = Hmac<Sha256>;

impl Sso {
    pub fn new(config: OidcConfig) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| tracing::error!(error = %e, "the HTTP client of single sign-on cannot start"))
            .ok();
        let state_key = Sha256::digest(format!("replay-sso-state\n{}", config.client_secret.0).as_bytes()).into();
        Sso { config, http, state_key, cached: tokio::sync::Mutex::new(None) }
    }

    /// The state cookie's value: the sign-in as base64url JSON, a dot, its HMAC.
    fn seal(&self, started: &StartedSignIn) -> String {
        let json = serde_json::to_vec(started).unwrap_or_default();
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        format!("{body}.{}", self.mac(&body))
    }

    fn mac(&self, body: &str) -> String {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.state_key) else { return String::new() };
        mac.update(body.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The sign-in a state cookie carries, when this server sealed it and it is still live.
    fn open(&self, cookie: &str, now: u64) -> Option<StartedSignIn> {
        let (body, mac) = cookie.split_once('.')?;
        if !auth::same(&self.mac(body), mac) {
            return None;
        }
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).ok()?;
        let started: StartedSignIn = serde_json::from_slice(&json).ok()?;
        (started.expires_ms > now).then_some(started)
    }

    /// The provider's documents: kept for [`METADATA_TTL`]; `refresh` fetches them again unless
    /// they were fetched within [`REFRESH_MIN`].
    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let age = c.fetched.elapsed();
            if age < METADATA_TTL && !(refresh && age >= REFRESH_MIN) {
                return Ok(c.metadata.clone());
            }
        }
        let http = self.http.as_ref().ok_or("no HTTP client")?;
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| e.to_string())?;
        let client = Http(http);
        let metadata = CoreProviderMetadata::discover_async(issuer, &client).await.map_err(|e| error_chain(&e))?;
        check_provider_url("the authorization endpoint", metadata.authorization_endpoint().as_str())?;
        check_provider_url("the JWKS", metadata.jwks_uri().as_str())?;
        match metadata.token_endpoint() {
            Some(t) => check_provider_url("the token endpoint", t.as_str())?,
            None => return Err("the provider names no token endpoint".into()),
        };
        if let Some(u) = metadata.userinfo_endpoint() {
            check_provider_url("the userinfo endpoint", u.as_str())?;
        }
        tracing::info!(issuer = %self.config.issuer, keys = metadata.jwks().keys().len(), "single sign-on provider discovered");
        *cached = Some(Cached { metadata: metadata.clone(), fetched: Instant::now() });
        Ok(metadata)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Result<OidcClient, String> {
        let redirect = RedirectUrl::new(self.config.redirect_url.clone()).map_err(|e| e.to_string())?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.0.clone())),
        )
        .set_redirect_uri(redirect))
    }
}

type OidcClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// An error and its sources, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    // Bounded: error chains are short, but nothing here trusts that.
    for _ in 0..8 {
        let Some(s) = source else { break };
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `openidconnect`'s HTTP over the server's `reqwest` client: the provider's URLs checked, no
/// redirects, timeouts, answers capped at [`MAX_BODY`].
struct Http<'a>(&'a reqwest::Client);

type HttpFuture<'c> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<openidconnect::HttpResponse, std::io::Error>> + Send + 'c>,
>;

impl<'c> openidconnect::AsyncHttpClient<'c> for Http<'_> {
    type Error = std::io::Error;
    type Future = HttpFuture<'c>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = parts.uri.to_string();
            check_provider_url("a provider URL", &url).map_err(std::io::Error::other)?;
            let mut response = self
                .0
                .request(parts.method, &url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| std::io::Error::other(error_chain(&e)))?;
            if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
                return Err(std::io::Error::other(format!("{url}: the answer is over {MAX_BODY} bytes")));
            }
            let mut out = openidconnect::http::Response::builder().status(response.status());
            if let Some(h) = out.headers_mut() {
                *h = std::mem::take(response.headers_mut());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| std::io::Error::other(error_chain(&e)))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(std::io::Error::other(format!("{url}: the answer is over {MAX_BODY} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            out.body(body).map_err(std::io::Error::other)
        })
    }
}

/// The routes of single sign-on (answering 404 when it is not configured).
pub fn routes() -> Router<AppState> {
    Router::new().route("/login/sso", get(start)).route("/login/sso/callback", get(callback))
}

fn to_login(failure: Failure, next: &str) -> String {
    format!("/login?sso={}&next={}", failure.code(), url_encode(next))
}

/// A `Set-Cookie` of the state cookie: `SameSite=Lax`, since the provider sends the browser
/// back with a top-level navigation from its own site, which `Strict` cookies do not go with.
fn state_cookie(https: bool, value: &str, max_age_s: u64) -> Option<HeaderValue> {
    let (name, secure) = if https { (HOST_STATE_COOKIE, "; Secure") } else { (STATE_COOKIE, "") };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}")).ok()
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// Limits starts and callbacks per client as password sign-ins are (each may cost a request to
/// the provider).
fn rate_limited(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> Result<(), ApiError> {
    let client = crate::client::client_ip(peer, headers, &state.config.trusted_proxies).map(crate::client::limit_key);
    if let Some(ip) = client
        && state.limits.login.check_key(&ip).is_err()
    {
        state.metrics.rejected(crate::reject::Reason::LoginRateLimited);
        return Err(ApiError::new(crate::reject::Reason::LoginRateLimited, "too many sign-in attempts"));
    }
    Ok(())
}

fn not_configured() -> ApiError {
    ApiError::new(crate::reject::Reason::NotFound, "single sign-on is not configured")
}

/// `GET /login/sso`: sends the browser to the provider, with the sign-in's `state`, `nonce` and
/// PKCE verifier in the state cookie.
pub async fn start(
    State(state): State<AppState>,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Result<Response, ApiError> {
    let sso = state.sso.clone().ok_or_else(not_configured)?;
    let peer = connect.map(|Extension(c)| c.0.ip());
    rate_limited(&state, peer, &headers)?;
    let next = auth::safe_next(q.next.as_deref().filter(|n| n.len() <= MAX_NEXT));
    let client = match sso.metadata(false).await.and_then(|m| sso.client(m)) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(issuer = %sso.config.issuer, error = %e, "single sign-on provider unavailable");
            return Ok(Redirect::to(&to_login(Failure::Failed, &next)).into_response());
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (state_value, nonce) = (random_hex(32)?, random_hex(32)?);
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state_value),
            move || Nonce::new(nonce),
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut started = StartedSignIn {
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next,
        expires_ms: now_ms() + STATE_TTL_MS,
    };
    let mut sealed = sso.seal(&started);
    if sealed.len() > MAX_COOKIE {
        // Browsers drop cookies over 4 KiB: a `next` that long goes home instead.
        started.next = auth::safe_next(None);
        sealed = sso.seal(&started);
    }
    let https = auth::is_https(&state, peer, &headers);
    let mut response = Redirect::to(url.as_str()).into_response();
    if let Some(v) = state_cookie(https, &sealed, STATE_TTL_MS / 1000) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// Who the provider says the user is, verified.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    subject: String,
    /// Lowercased.
    email: String,
}

/// `GET /login/sso/callback`: verifies what the provider sent back and signs the user in.
pub async fn callback(
    State(state): State<AppState>,
    connect: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let sso = state.sso.clone().ok_or_else(not_configured)?;
    let peer = connect.map(|Extension(c)| c.0.ip());
    rate_limited(&state, peer, &headers)?;
    let https = auth::is_https(&state, peer, &headers);
    let started =
        auth::cookie_value_of(&headers, auth::plain_cookies_ignored(&state, &headers), HOST_STATE_COOKIE, STATE_COOKIE)
            .and_then(|c| sso.open(&c, now_ms()));
    // The state cookie is used once, whatever happens next.
    let clear = state_cookie(https, "", 0);
    let refuse = |failure: Failure, next: &str| {
        let mut r = Redirect::to(&to_login(failure, next)).into_response();
        if let Some(v) = clear.clone() {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        Ok(r)
    };
    let Some(started) = started.filter(|s| q.state.as_deref().is_some_and(|given| auth::same(&s.state, given))) else {
        tracing::info!("single sign-on callback without its state (expired, forged or replayed)");
        return refuse(Failure::Expired, "/viewer/");
    };
    let next = started.next.clone();
    if let Some(error) = &q.error {
        let error: String = error.chars().take(64).collect();
        tracing::info!(%error, "single sign-on refused at the provider");
        return refuse(if error == "access_denied" { Failure::Denied } else { Failure::Failed }, &next);
    }
    if q.iss.as_deref().is_some_and(|iss| iss != sso.config.issuer) {
        tracing::warn!("single sign-on callback from another issuer");
        return refuse(Failure::Failed, &next);
    }
    let Some(code) = q.code.clone() else { return refuse(Failure::Failed, &next) };
    let identity = match verify(&sso, code, &started).await {
        Ok(Ok(identity)) => identity,
        Ok(Err(failure)) => {
            tracing::info!(reason = failure.code(), "single sign-on refused");
            return refuse(failure, &next);
        }
        Err(e) => {
            tracing::warn!(issuer = %sso.config.issuer, error = %e, "single sign-on failed");
            return refuse(Failure::Failed, &next);
        }
    };
    let user = match resolve_user(&state, &sso, &identity).await? {
        Ok(user) => user,
        Err(failure) => {
            tracing::info!(email = %identity.email, reason = failure.code(), "single sign-on refused");
            return refuse(failure, &next);
        }
    };
    let token = auth::new_sign_in(&state, &user).await?;
    tracing::info!(user = %user, issuer = %sso.config.issuer, "signed in with single sign-on");
    let detail = format!("single sign-on at {}", sso.config.name);
    let actor = user.clone();
    state
        .blocking(move |s| {
            for m in s.memberships(&actor)? {
                crate::audit::append(s, m.project, &actor, AUDIT_SIGN_IN, &actor, &detail);
            }
            Ok::<_, crate::storage::Error>(())
        })
        .await?;
    // A page that goes on to `next` itself: the browser came from the provider's site, and a
    // redirect from here would still be that cross-site navigation, which the `SameSite=Strict`
    // sign-in cookie would not go with.
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(format!("0;url={next}"));
                title { "Signed in · Replay" }
                link rel="stylesheet" href="/viewer/viewer.css";
            }
            body { main.login { p { "Signed in. " a #continue href=(next) { "Continue" } } } }
        }
    };
    let mut response = crate::layout::html_response(
        page,
        "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    let h = response.headers_mut();
    if let Some(v) = clear {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&auth::login_set_cookie(https, &token)) {
        h.append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Exchanges the code and verifies the ID token (refetching the provider's keys once for a key
/// id they lack); `Ok(Err(_))` is a refusal the user is told about, `Err` a failure logged.
async fn verify(sso: &Sso, code: String, started: &StartedSignIn) -> Result<Result<Identity, Failure>, String> {
    let http = sso.http.as_ref().ok_or("no HTTP client")?;
    let client = sso.client(sso.metadata(false).await?)?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| e.to_string())?
        .set_pkce_verifier(PkceCodeVerifier::new(started.verifier.clone()))
        .request_async(&Http(http))
        .await
        .map_err(|e| format!("the token request failed: {}", error_chain(&e)))?;
    let id_token = tokens.id_token().ok_or("the provider sent no ID token")?;
    let nonce = Nonce::new(started.nonce.clone());
    let no_key = |e: &openidconnect::ClaimsVerificationError| {
        matches!(
            e,
            openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey
            )
        )
    };
    let first = id_token.claims(&client.id_token_verifier(), &nonce).cloned();
    // A key the cached JWKS lacks: the provider may have rotated its keys.
    let client = match &first {
        Err(e) if no_key(e) => sso.client(sso.metadata(true).await?)?,
        _ => client,
    };
    let claims = match first {
        Err(e) if no_key(&e) => id_token.claims(&client.id_token_verifier(), &nonce).cloned(),
        other => other,
    }
    .map_err(|e| format!("the ID token is not valid: {}", error_chain(&e)))?;
    let verifier = client.id_token_verifier();
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token.signing_alg().map_err(|e| e.to_string())?;
        let key = id_token.signing_key(&verifier).map_err(|e| e.to_string())?;
        let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key).map_err(|e| e.to_string())?;
        if actual != *expected {
            return Err("the access token does not match the ID token's at_hash".into());
        }
    }
    let subject = claims.subject().clone();
    let (email, verified) = match claims.email() {
        Some(e) => (e.as_str().to_owned(), claims.email_verified()),
        None => {
            let info: CoreUserInfoClaims = client
                .user_info(tokens.access_token().clone(), Some(subject.clone()))
                .map_err(|e| format!("no e-mail in the ID token and no userinfo endpoint: {e}"))?
                .request_async(&Http(http))
                .await
                .map_err(|e| format!("the userinfo request failed: {}", error_chain(&e)))?;
            match info.email() {
                Some(e) => (e.as_str().to_owned(), info.email_verified()),
                None => return Err("the provider names no e-mail address (is the `email` scope allowed?)".into()),
            }
        }
    };
    if verified != Some(true) {
        return Ok(Err(Failure::Unverified));
    }
    Ok(Ok(Identity { subject: subject.as_str().to_owned(), email: email.to_lowercase() }))
}

/// The account an identity signs in to (see the module's doc), linking it at its first sign-in.
async fn resolve_user(state: &AppState, sso: &Sso, identity: &Identity) -> Result<Result<String, Failure>, ApiError> {
    let issuer = sso.config.issuer.clone();
    let (subject, email) = (identity.subject.clone(), identity.email.clone());
    let auto_create = sso.config.auto_create;
    // A password nobody knows, for an account made here (it signs in with the provider, or
    // gets a password through an invitation).
    let unusable = if auto_create && crate::users::check_name(&email).is_ok() {
        Some(crate::users::hash_password(state, random_hex(24)?).await?)
    } else {
        None
    };
    let outcome = state
        .blocking(move |s| -> Result<Result<String, Failure>, crate::storage::Error> {
            if let Some(name) = s.sso_user(&issuer, &subject)? {
                return Ok(match s.user(&name)? {
                    Some(u) if u.disabled => Err(Failure::Disabled),
                    Some(u) => Ok(u.name),
                    None => Err(Failure::Unknown),
                });
            }
            if crate::users::check_name(&email).is_err() {
                return Ok(Err(Failure::Unknown));
            }
            match s.user(&email)? {
                Some(u) if u.disabled => return Ok(Err(Failure::Disabled)),
                Some(_) => {}
                None => match &unusable {
                    Some(hash) => {
                        s.put_user(&email, hash)?;
                        tracing::info!(user = %email, "account created at its first single sign-on");
                    }
                    None => return Ok(Err(Failure::Unknown)),
                },
            }
            Ok(match s.link_sso(&issuer, &subject, &email, now_ms())? {
                Some(linked) if linked == email => Ok(linked),
                Some(_) | None => Err(Failure::Conflict),
            })
        })
        .await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sso::Secret;
    use crate::sso::tests::config;

    #[test]
    fn the_client_secret_is_never_in_debug_output() {
        let shown = format!("{:?} {:?}", config(), Sso::new(config()));
        assert!(!shown.contains("s3cret-client"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    fn started(expires_ms: u64) -> StartedSignIn {
        StartedSignIn {
            state: "st".into(),
            nonce: "no".into(),
            verifier: "ve".into(),
            next: "/viewer/p/1/".into(),
            expires_ms,
        }
    }

    #[test]
    fn the_state_cookie_opens_only_when_sealed_here_and_live() {
        let sso = Sso::new(config());
        let sealed = sso.seal(&started(2_000));
        assert_eq!(sso.open(&sealed, 1_000), Some(started(2_000)));
        assert_eq!(sso.open(&sealed, 2_000), None, "expired");
        // Another body under the same MAC, or the same body under another key, is refused.
        let (body, mac) = sealed.split_once('.').expect("sealed");
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&started(9_999_999)).expect("json"));
        assert_eq!(sso.open(&format!("{other}.{mac}"), 1_000), None, "a longer life cannot be forged");
        let elsewhere = Sso::new(OidcConfig { client_secret: Secret("another".into()), ..config() });
        assert_eq!(elsewhere.open(&sealed, 1_000), None);
        assert_eq!(sso.open(body, 1_000), None);
        assert_eq!(sso.open("", 1_000), None);
        assert_eq!(sso.open("a.b", 1_000), None);
    }

    fn identity(subject: &str, email: &str) -> Identity {
        Identity { subject: subject.into(), email: email.into() }
    }

    fn app_state(auto_create: bool) -> AppState {
        let storage = Arc::new(replay_store::SqliteStorage::in_memory().expect("db"));
        let config = crate::Config { oidc: Some(OidcConfig { auto_create, ..config() }), ..crate::Config::default() };
        AppState::new(storage, config)
    }

    #[tokio::test]
    async fn users_are_matched_by_email_then_by_their_linked_identity() {
        let state = app_state(false);
        let sso = state.sso.clone().expect("configured");
        state.storage.put_user("alice@example.com", "$argon2id$x").expect("user");
        state.storage.put_user("carol@example.com", "$argon2id$x").expect("user");
        state.storage.set_user_disabled("carol@example.com", true).expect("disable");
        let who = |subject: &'static str, email: &'static str| {
            let (state, sso) = (state.clone(), Arc::clone(&sso));
            async move { resolve_user(&state, &sso, &identity(subject, email)).await.expect("storage") }
        };
        assert_eq!(who("s-bob", "bob@example.com").await, Err(Failure::Unknown), "no account, none created");
        assert_eq!(state.storage.user("bob@example.com").expect("q"), None);
        assert_eq!(who("s-carol", "carol@example.com").await, Err(Failure::Disabled));
        assert_eq!(who("s-alice", "alice@example.com").await, Ok("alice@example.com".to_owned()));
        // Her identity stays hers when her address changes at the provider...
        assert_eq!(who("s-alice", "alice.new@example.com").await, Ok("alice@example.com".to_owned()));
        // ...and another identity now claiming her address does not get her account.
        assert_eq!(who("s-mallory", "alice@example.com").await, Err(Failure::Conflict));
        assert_eq!(who("s-odd", "not a name@example.com").await, Err(Failure::Unknown));
        state.storage.set_user_disabled("alice@example.com", true).expect("disable");
        assert_eq!(who("s-alice", "alice@example.com").await, Err(Failure::Disabled), "disabled after linking");
    }

    async fn get(state: &AppState, uri: &str, cookie: Option<&str>) -> axum::http::Response<axum::body::Body> {
        use tower::ServiceExt;
        let mut request = axum::http::Request::get(uri);
        if let Some(c) = cookie {
            request = request.header(header::COOKIE, c);
        }
        crate::app(state.clone())
            .oneshot(request.body(axum::body::Body::empty()).expect("request"))
            .await
            .expect("answer")
    }

    fn location(r: &axum::http::Response<axum::body::Body>) -> &str {
        r.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    #[tokio::test]
    async fn the_sign_in_page_offers_the_provider_only_when_one_is_configured() {
        use http_body_util::BodyExt;
        let body = |r: axum::http::Response<axum::body::Body>| async move {
            String::from_utf8(r.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8")
        };
        let page = body(get(&app_state(false), "/login?sso=disabled", None).await).await;
        assert!(page.contains("Sign in with Example"), "{page}");
        assert!(page.contains("This account is disabled."), "{page}");
        let plain =
            AppState::new(Arc::new(replay_store::SqliteStorage::in_memory().expect("db")), crate::Config::default());
        let page = body(get(&plain, "/login?sso=disabled", None).await).await;
        assert!(!page.contains("Sign in with") && !page.contains("disabled"), "{page}");
        assert_eq!(get(&plain, "/login/sso", None).await.status(), 404);
        assert_eq!(get(&plain, "/login/sso/callback?code=c&state=s", None).await.status(), 404);
    }

    #[tokio::test]
    async fn a_callback_needs_the_state_its_browser_started_with_and_clears_it() {
        let state = app_state(false);
        let sso = state.sso.clone().expect("configured");
        let live = StartedSignIn { expires_ms: now_ms() + 60_000, ..started(0) };
        let cookie = format!("{STATE_COOKIE}={}", sso.seal(&live));
        // No cookie (another browser, or a replay after the cookie was used), a forged state,
        // an expired or a forged cookie: all "expired", and the cookie is cleared.
        let expired = format!("{STATE_COOKIE}={}", sso.seal(&started(1)));
        for (query, cookie) in [
            ("code=c&state=st", None),
            ("code=c&state=forged", Some(cookie.as_str())),
            ("code=c", Some(cookie.as_str())),
            ("code=c&state=st", Some(expired.as_str())),
            ("code=c&state=st", Some("replay_sso=forged.value")),
        ] {
            let r = get(&state, &format!("/login/sso/callback?{query}"), cookie).await;
            assert_eq!(r.status(), 303, "{query} {cookie:?}");
            assert!(location(&r).starts_with("/login?sso=expired&"), "{query}: {}", location(&r));
            let set = r.headers().get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert!(set.starts_with("replay_sso=;") && set.contains("Max-Age=0"), "{set}");
        }
        // The right state: what the provider said is looked at (here, the user cancelled), and
        // the user goes back to the sign-in page with where they were going.
        let r = get(&state, "/login/sso/callback?state=st&error=access_denied", Some(&cookie)).await;
        assert_eq!(location(&r), "/login?sso=denied&next=/viewer/p/1/");
        let r = get(&state, "/login/sso/callback?state=st&code=c&iss=https%3A%2F%2Fevil.example", Some(&cookie)).await;
        assert!(location(&r).starts_with("/login?sso=failed&"), "another issuer: {}", location(&r));
    }

    #[tokio::test]
    async fn unknown_users_get_an_account_only_when_auto_creation_is_on() {
        let state = app_state(true);
        let sso = state.sso.clone().expect("configured");
        let got = resolve_user(&state, &sso, &identity("s-dan", "dan@example.com")).await.expect("storage");
        assert_eq!(got, Ok("dan@example.com".to_owned()));
        let dan = state.storage.user("dan@example.com").expect("q").expect("created");
        assert!(!dan.admin && !dan.disabled);
        assert!(state.storage.memberships("dan@example.com").expect("q").is_empty(), "a member of nothing yet");
        assert_eq!(state.storage.sso_user(&sso.config.issuer, "s-dan").expect("q").as_deref(), Some("dan@example.com"));
    }
}
