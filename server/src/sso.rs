//! What the sign-in page and the settings know of single sign-on (the flow itself is
//! [`crate::oidc`]): the provider's settings ([`OidcConfig`], checked: `https` unless on a
//! loopback address, the client secret never printed), the refusals the sign-in page names
//! ([`Failure`], carried back as a code, never as text), and the page's "Sign in with …" button.
//! It names neither the sign-in (`auth`) nor the flow, so both can use it.

use std::net::IpAddr;

use maud::{Markup, html};

use crate::layout::url_encode;

/// A secret whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The OpenID Connect provider this server signs users in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer URL (`https://…`, or `http://` on a loopback address).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// This server's callback as registered at the provider (`https://replay.example/login/sso/callback`).
    pub redirect_url: String,
    /// What the button says after "Sign in with ".
    pub name: String,
    /// Create an account for a verified e-mail no account has.
    pub auto_create: bool,
}

/// Whether `host` is a loopback address or `localhost`.
fn loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// The provider's URLs must be `https`, except on loopback addresses.
pub fn check_provider_url(what: &str, url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{what} {url:?} is not a URL: {e}"))?;
    let local = parsed.host().as_ref().is_some_and(loopback);
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if local => Ok(parsed),
        "http" => Err(format!("{what} {url} must be https (plain http only on a loopback address)")),
        other => Err(format!("{what} {url} has the scheme {other}: https is needed")),
    }
}

impl OidcConfig {
    /// Checks the settings: the issuer (see [`check_provider_url`]), an absolute http(s)
    /// redirect URL, a client id and secret.
    pub fn check(self) -> Result<Self, String> {
        check_provider_url("oidc_issuer", &self.issuer)?;
        let redirect = url::Url::parse(&self.redirect_url)
            .map_err(|e| format!("oidc_redirect_url {:?} is not a URL: {e}", self.redirect_url))?;
        if !matches!(redirect.scheme(), "https" | "http") || redirect.fragment().is_some() {
            return Err(format!("oidc_redirect_url {} must be an http(s) URL without a fragment", self.redirect_url));
        }
        if self.client_id.is_empty() || self.client_secret.0.is_empty() {
            return Err("single sign-on needs oidc_client_id and oidc_client_secret".into());
        }
        Ok(self)
    }
}

/// Single sign-on from the merged settings: none when no setting of it is given, an error when
/// some are missing or wrong.
pub fn from_settings(
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    redirect_url: Option<String>,
    name: Option<String>,
    auto_create: bool,
) -> Result<Option<OidcConfig>, String> {
    let (issuer, client_id, client_secret, redirect_url) =
        match (issuer.filter(|s| !s.is_empty()), client_id, client_secret, redirect_url) {
            (None, None, None, None) => return Ok(None),
            (Some(i), Some(c), Some(s), Some(r)) => (i, c, s, r),
            _ => {
                return Err("single sign-on needs oidc_issuer, oidc_client_id, oidc_client_secret and \
                            oidc_redirect_url together"
                    .into());
            }
        };
    let name = match name.filter(|n| !n.trim().is_empty()) {
        Some(n) => n.trim().chars().take(64).collect(),
        None => url::Url::parse(&issuer).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default(),
    };
    let config =
        OidcConfig { issuer, client_id, client_secret: Secret(client_secret), redirect_url, name, auto_create };
    config.check().map(Some)
}

/// Why a sign-in with the provider did not happen, as the sign-in page names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No account matches the verified e-mail (and accounts are not created).
    Unknown,
    Disabled,
    /// The provider did not vouch for the e-mail address.
    Unverified,
    /// The account is linked to another identity at this provider.
    Conflict,
    /// No, a forged, a replayed or an old `state`.
    Expired,
    /// The user cancelled or the provider refused.
    Denied,
    /// The provider could not be reached or answered something wrong.
    Failed,
}

impl Failure {
    pub const ALL: [Failure; 7] = [
        Failure::Unknown,
        Failure::Disabled,
        Failure::Unverified,
        Failure::Conflict,
        Failure::Expired,
        Failure::Denied,
        Failure::Failed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Failure::Unknown => "unknown",
            Failure::Disabled => "disabled",
            Failure::Unverified => "unverified",
            Failure::Conflict => "conflict",
            Failure::Expired => "expired",
            Failure::Denied => "denied",
            Failure::Failed => "failed",
        }
    }

    pub fn from_code(code: &str) -> Option<Failure> {
        Failure::ALL.into_iter().find(|f| f.code() == code)
    }

    /// What the sign-in page says.
    pub fn message(self, provider: &str) -> String {
        match self {
            Failure::Unknown => format!(
                "You signed in at {provider}, but no account here matches your e-mail address. \
                 Ask an admin to create or invite your account."
            ),
            Failure::Disabled => "This account is disabled.".to_owned(),
            Failure::Unverified => format!("{provider} has not verified your e-mail address."),
            Failure::Conflict => {
                format!("The account of your e-mail address is linked to another sign-in at {provider}. Ask an admin.")
            }
            Failure::Expired => "The sign-in expired or did not start here. Please sign in again.".to_owned(),
            Failure::Denied => format!("The sign-in at {provider} was cancelled or refused."),
            Failure::Failed => format!("The sign-in at {provider} failed. Please try again later."),
        }
    }
}

/// The sign-in page's message for a single sign-on that came back refused (its `sso` code).
pub fn login_error(config: Option<&OidcConfig>, code: Option<&str>) -> Markup {
    let Some(config) = config else { return html! {} };
    html! {
        @if let Some(f) = code.and_then(Failure::from_code) { p.error #sso-error { (f.message(&config.name)) } }
    }
}

/// The sign-in page's "Sign in with …" button (a link: a form's redirect to the provider would
/// be refused by the page's `form-action 'self'`).
pub fn login_button(config: Option<&OidcConfig>, next: &str) -> Markup {
    let Some(config) = config else { return html! {} };
    html! {
        p.sso {
            a.button #sso-sign-in href=(format!("/login/sso?next={}", url_encode(next))) {
                "Sign in with " (config.name)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid configuration for tests (here and in `oidc`'s).
    pub(crate) fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example".into(),
            client_id: "replay".into(),
            client_secret: Secret("s3cret-client".into()),
            redirect_url: "https://replay.example/login/sso/callback".into(),
            name: "Example".into(),
            auto_create: false,
        }
    }

    #[test]
    fn the_issuer_is_https_unless_on_a_loopback_address() {
        for ok in [
            "https://idp.example",
            "http://127.0.0.1:4000",
            "http://127.9.0.1",
            "http://[::1]:80",
            "http://localhost:1",
        ] {
            assert!(check_provider_url("issuer", ok).is_ok(), "{ok}");
        }
        for bad in ["http://idp.example", "http://10.0.0.1", "http://localhost.evil.example", "ftp://idp.example", "x"]
        {
            assert!(check_provider_url("issuer", bad).is_err(), "{bad}");
        }
        assert!(config().check().is_ok());
        assert!(OidcConfig { issuer: "http://idp.example".into(), ..config() }.check().is_err());
        assert!(OidcConfig { redirect_url: "/login/sso/callback".into(), ..config() }.check().is_err());
        assert!(OidcConfig { client_secret: Secret(String::new()), ..config() }.check().is_err());
    }

    #[test]
    fn settings_come_all_together_or_not_at_all() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(from_settings(None, None, None, None, None, false), Ok(None));
        let full =
            from_settings(s("https://idp.example/"), s("id"), s("secret"), s("https://r.example/cb"), None, true)
                .expect("valid")
                .expect("configured");
        assert_eq!(full.name, "idp.example", "the button names the issuer's host by default");
        assert!(full.auto_create);
        assert!(
            from_settings(s("https://idp.example"), s("id"), None, s("https://r.example/cb"), None, false).is_err()
        );
        assert!(from_settings(None, s("id"), s("secret"), None, None, false).is_err());
    }

    #[test]
    fn failures_round_trip_through_their_code_and_unknown_codes_show_nothing() {
        for f in Failure::ALL {
            assert_eq!(Failure::from_code(f.code()), Some(f));
            assert!(!f.message("Example").is_empty());
        }
        assert_eq!(Failure::from_code("<script>"), None);
    }
}
