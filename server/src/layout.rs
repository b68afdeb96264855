//! What every server-rendered page shares: the document around its content (title, stylesheet,
//! the header bar with the navigation), the response headers (type, CSP, no caching) and the one
//! URL encoder for the links and redirects the pages write.
//!
//! Pages are rendered with maud, which escapes every interpolated string; recorded data never
//! reaches a page unescaped.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// The policy of the pages without any script (session list, errors): the filter form submits
/// to the page itself.
pub const LIST_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'self'";

/// Which entry of the header bar is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Sessions,
    Errors,
    /// A project's click map and scroll map.
    Clickmap,
    /// A project's members (and its tokens, for owners).
    Members,
    /// A project's settings and audit log (owners'), and the list of projects.
    Settings,
    /// The signed-in user's own page (password, sign-ins, tokens).
    Account,
    /// The server admin's pages (users, invitations, tokens).
    Admin,
    /// The sign-in page: no navigation, only its name.
    SignIn,
}

/// The project a page belongs to, and every project its reader may switch to.
#[derive(Debug, Clone, Default)]
pub struct ProjectNav {
    pub current: i64,
    /// (id, name) of the reader's projects, oldest first.
    pub projects: Vec<(i64, String)>,
    /// The reader administers the server (the header links to the admin pages).
    pub admin: bool,
    /// The reader manages this project (the header links to its settings).
    pub manage: bool,
}

/// The whole document of a server-rendered page: `title` in the tab (" · Replay" appended), the
/// header bar with `current` marked (and, for a signed-in user, the sign-out form carrying
/// `form_token`, see [`crate::auth::form_token`]), and `content` inside
/// `<main class="page {main_class}">`. Pages of one project use [`project_page`].
pub fn page(title: &str, current: Nav, main_class: &str, form_token: Option<&str>, content: Markup) -> Markup {
    document(title, current, main_class, None, form_token, content)
}

/// A page of one project: its Sessions and Errors entries lead to that project's pages, and a
/// switcher (a GET form, no script) goes to another project of the reader.
pub fn project_page(
    title: &str,
    current: Nav,
    project: &ProjectNav,
    form_token: Option<&str>,
    content: Markup,
) -> Markup {
    document(title, current, "", Some(project), form_token, content)
}

fn document(
    title: &str,
    current: Nav,
    main_class: &str,
    project: Option<&ProjectNav>,
    form_token: Option<&str>,
    content: Markup,
) -> Markup {
    let nav = |entry: Nav, label: &str, href: &str| {
        html! {
            @if entry == current { span { (label) } } @else { a href=(href) { (label) } }
        }
    };
    let (sessions, errors) = match project {
        Some(p) => (format!("/viewer/p/{}/", p.current), format!("/viewer/p/{}/errors", p.current)),
        None => ("/viewer/".to_owned(), "/viewer/errors".to_owned()),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Replay" }
                link rel="stylesheet" href="/viewer/viewer.css";
            }
            body {
                header.bar {
                    strong { "Replay" }
                    @if current == Nav::SignIn {
                        span { "Sign in" }
                    } @else {
                        @if let Some(p) = project {
                            form #project-switcher .switcher method="get" action="/viewer/" {
                                label { "Project " select #project name="project" {
                                    @for (id, name) in &p.projects {
                                        option value=(id) selected[*id == p.current] { (name) }
                                    }
                                } }
                                button type="submit" { "Switch" }
                            }
                        }
                        (nav(Nav::Sessions, "Sessions", &sessions))
                        (nav(Nav::Errors, "Errors", &errors))
                        @if let Some(p) = project {
                            (nav(Nav::Clickmap, "Click map", &format!("/viewer/p/{}/clickmap", p.current)))
                            (nav(Nav::Members, "Members", &format!("/viewer/p/{}/members", p.current)))
                            @if p.manage {
                                (nav(Nav::Settings, "Settings", &format!("/viewer/p/{}/settings", p.current)))
                            }
                        }
                        @if form_token.is_some() {
                            (nav(Nav::Account, "Account", "/viewer/account"))
                        }
                        @if project.is_some_and(|p| p.admin) || current == Nav::Admin {
                            (nav(Nav::Admin, "Users", "/viewer/admin/users"))
                        }
                        @if let Some(token) = form_token {
                            form.sign-out method="post" action="/logout" {
                                input type="hidden" name="form_token" value=(token);
                                button #sign-out type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main class=(if main_class.is_empty() { "page".to_owned() } else { format!("page {main_class}") }) {
                    (content)
                }
            }
        }
    }
}

/// A page as an HTTP answer, with its Content-Security-Policy, no caching, and no `Referer`
/// sent from it (viewer URLs name sessions).
pub fn html_response(markup: Markup, csp: &'static str) -> Response {
    let mut response = markup.into_string().into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// Percent-encodes `s` for a URL's query value or path: every byte but the unreserved characters
/// of RFC 3986 and `/` (legal in both, and keeps `next=/viewer/...` readable) is `%XX`.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encode_keeps_unreserved_and_slash() {
        assert_eq!(url_encode("/viewer/player.html?session=x"), "/viewer/player.html%3Fsession%3Dx");
        assert_eq!(url_encode("2027-01-15T08:55"), "2027-01-15T08%3A55");
        assert_eq!(url_encode("a b&c=d#é"), "a%20b%26c%3Dd%23%C3%A9");
        assert_eq!(url_encode("AZaz09-_.~"), "AZaz09-_.~");
    }

    #[test]
    fn a_project_page_links_inside_its_project_and_offers_the_others() {
        let nav = ProjectNav {
            current: 2,
            projects: vec![(1, "a<b".into()), (2, "shop".into())],
            admin: false,
            manage: false,
        };
        let p = project_page("S", Nav::Sessions, &nav, Some("t"), html! {}).into_string();
        assert!(p.contains(r#"<option value="1">a&lt;b</option><option value="2" selected>shop</option>"#), "{p}");
        assert!(p.contains(r#"id="project-switcher""#) && p.contains(r#"method="get" action="/viewer/""#), "{p}");
        assert!(p.contains(r#"<span>Sessions</span><a href="/viewer/p/2/errors">Errors</a><a href="/viewer/p/2/clickmap">Click map</a><a href="/viewer/p/2/members">Members</a>"#), "{p}");
        assert!(!p.contains("/viewer/admin/users"), "no admin link for a non-admin: {p}");
        assert!(!p.contains("/viewer/p/2/settings"), "no settings link for a non-owner: {p}");
        let owner = ProjectNav { manage: true, ..nav.clone() };
        assert!(
            project_page("S", Nav::Sessions, &owner, None, html! {}).into_string().contains("/viewer/p/2/settings")
        );
        let admin = ProjectNav { admin: true, ..nav };
        assert!(project_page("S", Nav::Errors, &admin, None, html! {}).into_string().contains("/viewer/admin/users"));
    }

    #[test]
    fn page_marks_the_current_entry_and_escapes_the_title() {
        let p = page("<x>", Nav::Errors, "", None, html! { p { "hi" } }).into_string();
        assert!(p.starts_with("<!DOCTYPE html>"), "{p}");
        assert!(p.contains("<title>&lt;x&gt; · Replay</title>"), "{p}");
        assert!(p.contains(r#"<a href="/viewer/">Sessions</a><span>Errors</span>"#), "{p}");
        assert!(p.contains(r#"<main class="page"><p>hi</p></main>"#), "{p}");
        let login = page("Sign in", Nav::SignIn, "login", None, html! {}).into_string();
        assert!(login.contains(r#"<span>Sign in</span></header><main class="page login">"#), "{login}");
        assert!(!login.contains("Sessions"), "{login}");
        let signed_in = page("S", Nav::Sessions, "", Some("t<k"), html! {}).into_string();
        assert!(
            signed_in.contains(r#"<form class="sign-out" method="post" action="/logout"><input type="hidden" name="form_token" value="t&lt;k">"#),
            "{signed_in}"
        );
    }
}
