//! The viewer's pages for projects: `/viewer/projects` (the caller's projects, with forms to
//! rename and delete those they manage, and to create one for server admins) and
//! `/viewer/p/{project}/settings` (ingest keys with rotation and revocation, allowed origins,
//! quotas, retention, the recorder's defaults, the freeze timeout; the project's owners'). Forms
//! post with the login's form token ([`auth::check_form_token`]) to handlers that call the same
//! operations as the API ([`crate::projects`]), then go back to the page (303).

use axum::Router;
use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::access::{AdminAccess, Caller, Capability, ProjectAccess};
use crate::auth;
use crate::layout::{self, LIST_CSP, html_response};
use crate::projects::{self, BufferMode, ProjectSettings, SettingsUpdate};
use crate::reject::Reason;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/viewer/projects", get(projects_page))
        .route("/viewer/projects/create", post(create_form))
        .route("/viewer/p/{project}/settings", get(settings_page).post(settings_form))
        .route("/viewer/p/{project}/settings/rename", post(rename_form))
        .route("/viewer/p/{project}/settings/delete", post(delete_form))
        .route("/viewer/p/{project}/settings/rotate", post(rotate_form))
        .route("/viewer/p/{project}/settings/revoke", post(revoke_form))
}

fn token_field(token: Option<&str>) -> Markup {
    html! { input type="hidden" name="form_token" value=(token.unwrap_or_default()); }
}

/// `GET /viewer/projects`: the caller's projects.
async fn projects_page(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let list = caller.projects(&state).await?;
    let token = auth::form_token(&state, &headers);
    let token = token.as_deref();
    let content = html! {
        h1 { "Projects" }
        table id="projects" {
            thead { tr { th { "Id" } th { "Name" } th { "" } th { "Rename" } th { "Delete" } } }
            tbody {
                @for (p, grant) in &list {
                    @let manage = grant.allows(Capability::Manage);
                    tr data-project=(p.id) {
                        td { (p.id) }
                        td.name { (p.name) }
                        td {
                            a href={ "/viewer/p/" (p.id) "/" } { "Sessions" }
                            @if manage {
                                " · " a href={ "/viewer/p/" (p.id) "/settings" } { "Settings" }
                                " · " a href={ "/viewer/p/" (p.id) "/audit" } { "Audit log" }
                            }
                        }
                        td {
                            @if manage {
                                form.rename method="post" action={ "/viewer/p/" (p.id) "/settings/rename" } {
                                    (token_field(token))
                                    input type="text" name="name" required value=(p.name) aria-label="New name";
                                    button type="submit" { "Rename" }
                                }
                            }
                        }
                        td {
                            @if manage {
                                form.delete method="post" action={ "/viewer/p/" (p.id) "/settings/delete" } {
                                    (token_field(token))
                                    label { input type="checkbox" name="confirm" value="1" required; " with all its sessions" }
                                    button type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if caller.is_server_admin() {
            h2 { "New project" }
            form #create-project method="post" action="/viewer/projects/create" {
                (token_field(token))
                label { "Name " input type="text" name="name" required maxlength=(projects::NAME_MAX); }
                button type="submit" { "Create" }
            }
        }
    };
    let markup = layout::page("Projects", layout::Nav::Settings, "", token, content);
    Ok(html_response(markup, LIST_CSP))
}

#[derive(Debug, Deserialize)]
struct NameForm {
    form_token: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    confirm: Option<String>,
}

fn bad_form(state: &AppState) -> ApiError {
    state.metrics.rejected(Reason::BadQuery);
    ApiError::new(Reason::BadQuery, "the form lacks a field")
}

type FormBody<T> = Result<Form<T>, axum::extract::rejection::FormRejection>;

/// Checks a form: its fields, this server's token, then that the caller manages the project.
fn checked<T: HasToken>(
    state: &AppState,
    headers: &HeaderMap,
    access: &ProjectAccess,
    form: FormBody<T>,
) -> Result<T, ApiError> {
    let form = form_of(state, headers, form)?;
    access.require(Capability::Manage)?;
    Ok(form)
}

/// A form's fields, checked against this server's form token.
fn form_of<T: HasToken>(state: &AppState, headers: &HeaderMap, form: FormBody<T>) -> Result<T, ApiError> {
    let Ok(Form(form)) = form else { return Err(bad_form(state)) };
    auth::check_form_token(state, headers, form.token())?;
    Ok(form)
}

trait HasToken {
    fn token(&self) -> Option<&str>;
}

macro_rules! has_token {
    ($($t:ty),+) => { $(impl HasToken for $t { fn token(&self) -> Option<&str> { self.form_token.as_deref() } })+ };
}
has_token!(NameForm, SettingsForm, RotateForm, RevokeForm);

/// `POST /viewer/projects/create`: a server admin's; they become the new project's owner.
async fn create_form(
    AdminAccess(caller): AdminAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<NameForm>,
) -> Result<Response, ApiError> {
    let form = form_of(&state, &headers, form)?;
    let created = projects::create(&state, &caller, &form.name).await?;
    Ok(Redirect::to(&format!("/viewer/p/{}/settings", created.id)).into_response())
}

/// `POST /viewer/p/{project}/settings/rename`.
async fn rename_form(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<NameForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &access, form)?;
    projects::rename(&state, &access.caller, access.project, &form.name).await?;
    Ok(Redirect::to("/viewer/projects").into_response())
}

/// `POST /viewer/p/{project}/settings/delete`: with the confirmation box ticked.
async fn delete_form(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<NameForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &access, form)?;
    if form.confirm.as_deref() != Some("1") {
        return Err(bad_form(&state));
    }
    projects::delete(&state, &access.caller, access.project).await?;
    Ok(Redirect::to("/viewer/projects").into_response())
}

fn time(ms: Option<u64>) -> String {
    ms.map(crate::pages::format_time).unwrap_or_else(|| "—".into())
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `GET /viewer/p/{project}/settings`: the project's owners'.
async fn settings_page(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    access.require(Capability::Manage)?;
    let project = access.project;
    let v = state.blocking(move |s| projects::view(s, project)).await?.ok_or_else(|| ApiError::not_found("project"))?;
    let token = auth::form_token(&state, &headers);
    let token = token.as_deref();
    let s = &v.settings;
    let content = html! {
        h1 { "Settings of " (v.name) }
        p { a href={ "/viewer/p/" (v.id) "/audit" } { "Audit log" } " · " a href="/viewer/projects" { "All projects" } }
        h2 { "Ingest keys" }
        p { "A new tag embeds the newest key: " code #current-key { (v.ingest_key) } }
        table id="keys" {
            thead { tr { th { "Key" } th { "Created (UTC)" } th { "Ends" } th { "State" } th { "" } } }
            tbody {
                @for k in &v.keys {
                    tr data-key=(k.key) {
                        td { code { (k.key) } }
                        td { (time(Some(k.created_ms))) }
                        td { (time(k.expires_ms)) }
                        td { @if k.live { "accepted" } @else if k.revoked_ms.is_some() { "revoked" } @else { "expired" } }
                        td {
                            @if k.live {
                                form.revoke method="post" action={ "/viewer/p/" (v.id) "/settings/revoke" } {
                                    (token_field(token))
                                    input type="hidden" name="key" value=(k.key);
                                    button type="submit" { "Revoke now" }
                                }
                            }
                        }
                    }
                }
            }
        }
        form #rotate method="post" action={ "/viewer/p/" (v.id) "/settings/rotate" } {
            (token_field(token))
            label { "Other keys keep working for " input type="number" name="grace" min="0" value="24"; }
            select name="unit" aria-label="Unit of the grace period" {
                option value="seconds" { "seconds" }
                option value="minutes" { "minutes" }
                option value="hours" selected { "hours" }
                option value="days" { "days" }
            }
            button type="submit" { "Make a new key" }
        }
        h2 { "Recording" }
        form #settings method="post" action={ "/viewer/p/" (v.id) "/settings" } {
            (token_field(token))
            label { "Allowed origins (one per line; empty: any) " textarea name="allowed_origins" rows="3" { (v.allowed_origins.join("\n")) } }
            label { "Bytes per day (empty: the server's, 0: none) " input type="number" min="0" name="quota_bytes_per_day" value=(opt(v.quota_bytes_per_day)); }
            label { "New sessions per day (empty: the server's, 0: none) " input type="number" min="0" name="quota_sessions_per_day" value=(opt(v.quota_sessions_per_day)); }
            label { "Keep sessions (days; empty: the server's) " input type="number" min="1" max="3650" name="retention_days" value=(opt(s.retention_days)); }
            label { "Share of sessions recorded (0 to 1; empty: the tag's) " input type="number" min="0" max="1" step="any" name="sample_rate" value=(opt(s.sample_rate)); }
            label { "Mode "
                select name="mode" {
                    option value="" selected[s.mode.is_none()] { "the tag's" }
                    option value="live" selected[s.mode == Some(BufferMode::Live)] { "live: send as recorded" }
                    option value="buffer" selected[s.mode == Some(BufferMode::Buffer)] { "buffer: keep the last minute, send on flush" }
                }
            }
            label { input type="checkbox" name="mask_all_text" value="1" checked[s.mask_all_text]; " Mask all text" }
            label { input type="checkbox" name="canvas" value="1" checked[s.canvas]; " Record canvases (outside masked parts; otherwise only those marked data-replay-canvas)" }
            label { "Capture request and response bodies of these URLs (prefixes, one per line) " textarea name="network_allow_list" rows="3" { (s.network_allow_list.join("\n")) } }
            label { "Freeze timeout (s; empty: the server's) " input type="number" min="1" max="3600" name="freeze_timeout_secs" value=(opt(s.freeze_timeout_secs)); }
            button type="submit" { "Save" }
        }
    };
    let nav = crate::pages::project_nav(&state, &access).await?;
    let markup = layout::project_page("Settings", layout::Nav::Settings, &nav, token, content);
    Ok(html_response(markup, LIST_CSP))
}

#[derive(Debug, Deserialize)]
struct SettingsForm {
    form_token: Option<String>,
    #[serde(default)]
    allowed_origins: String,
    #[serde(default)]
    quota_bytes_per_day: String,
    #[serde(default)]
    quota_sessions_per_day: String,
    #[serde(default)]
    retention_days: String,
    #[serde(default)]
    sample_rate: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    mask_all_text: Option<String>,
    #[serde(default)]
    network_allow_list: String,
    #[serde(default)]
    freeze_timeout_secs: String,
    #[serde(default)]
    canvas: Option<String>,
}

/// A number field: empty is `None`, anything else must parse.
fn number<T: std::str::FromStr>(field: &str) -> Result<Option<T>, ()> {
    let field = field.trim();
    if field.is_empty() { Ok(None) } else { field.parse().map(Some).map_err(|_| ()) }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

impl SettingsForm {
    fn update(&self) -> Result<SettingsUpdate, ()> {
        Ok(SettingsUpdate {
            allowed_origins: lines(&self.allowed_origins),
            quota_bytes_per_day: number(&self.quota_bytes_per_day)?,
            quota_sessions_per_day: number(&self.quota_sessions_per_day)?,
            settings: ProjectSettings {
                sample_rate: number(&self.sample_rate)?,
                mode: match self.mode.as_str() {
                    "buffer" => Some(BufferMode::Buffer),
                    "live" => Some(BufferMode::Live),
                    _ => None,
                },
                mask_all_text: self.mask_all_text.is_some(),
                network_allow_list: lines(&self.network_allow_list),
                retention_days: number(&self.retention_days)?,
                freeze_timeout_secs: number(&self.freeze_timeout_secs)?,
                canvas: self.canvas.is_some(),
            },
        })
    }
}

/// `POST /viewer/p/{project}/settings`.
async fn settings_form(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<SettingsForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &access, form)?;
    let project = access.project;
    let update = form.update().map_err(|()| {
        state.metrics.rejected(Reason::BadQuery);
        ApiError::new(Reason::BadQuery, "a number field holds something else")
    })?;
    projects::update_settings(&state, &access.caller, project, update).await?;
    Ok(Redirect::to(&format!("/viewer/p/{project}/settings")).into_response())
}

#[derive(Debug, Deserialize)]
struct RotateForm {
    form_token: Option<String>,
    grace: u64,
    #[serde(default)]
    unit: GraceUnit,
}

/// The unit of a rotation's grace period on the settings page (hours unless chosen).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum GraceUnit {
    Seconds,
    Minutes,
    #[default]
    Hours,
    Days,
}

impl GraceUnit {
    fn secs(self) -> u64 {
        match self {
            GraceUnit::Seconds => 1,
            GraceUnit::Minutes => 60,
            GraceUnit::Hours => 3_600,
            GraceUnit::Days => 86_400,
        }
    }
}

/// `POST /viewer/p/{project}/settings/rotate`.
async fn rotate_form(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<RotateForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &access, form)?;
    let project = access.project;
    // Past 30 days the rotation is refused with the limit named (saturating keeps it past it).
    projects::rotate(&state, &access.caller, project, form.grace.saturating_mul(form.unit.secs())).await?;
    Ok(Redirect::to(&format!("/viewer/p/{project}/settings")).into_response())
}

#[derive(Debug, Deserialize)]
struct RevokeForm {
    form_token: Option<String>,
    key: String,
}

/// `POST /viewer/p/{project}/settings/revoke`.
async fn revoke_form(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<RevokeForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &access, form)?;
    let project = access.project;
    projects::revoke(&state, &access.caller, project, form.key).await?;
    Ok(Redirect::to(&format!("/viewer/p/{project}/settings")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_form_reads_empty_fields_as_the_servers_and_refuses_words_for_numbers() {
        let form = |quota: &str| SettingsForm {
            form_token: None,
            allowed_origins: "https://a.test\n\n https://b.test \n".into(),
            quota_bytes_per_day: quota.into(),
            quota_sessions_per_day: String::new(),
            retention_days: "7".into(),
            sample_rate: "0.25".into(),
            mode: "buffer".into(),
            mask_all_text: Some("1".into()),
            network_allow_list: "/api/".into(),
            freeze_timeout_secs: String::new(),
            canvas: Some("1".into()),
        };
        let u = form("0").update().expect("reads");
        assert_eq!(u.allowed_origins, vec!["https://a.test", "https://b.test"]);
        assert_eq!((u.quota_bytes_per_day, u.quota_sessions_per_day), (Some(0), None));
        assert_eq!((u.settings.retention_days, u.settings.freeze_timeout_secs), (Some(7), None));
        assert!(u.settings.canvas, "the canvas box");
        assert_eq!(
            (u.settings.sample_rate, u.settings.mode, u.settings.mask_all_text),
            (Some(0.25), Some(BufferMode::Buffer), true)
        );
        assert!(form("lots").update().is_err());
    }
}
