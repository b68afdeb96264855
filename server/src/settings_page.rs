//! The viewer's pages for projects: `/viewer/projects` (the list, with forms to create, rename
//! and delete) and `/viewer/settings?project=` (ingest keys with rotation and revocation,
//! allowed origins, quotas, retention, the recorder's defaults, the freeze timeout). Forms post
//! with the login's form token ([`auth::check_form_token`]) to handlers that call the same
//! operations as the API ([`crate::projects`]), then go back to the page (303).

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::audit::{existing_project, require_admin};
use crate::auth::{self, Reader};
use crate::layout::{self, LIST_CSP, html_response};
use crate::projects::{self, BufferMode, ProjectSettings, SettingsUpdate};
use crate::reject::Reason;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/viewer/projects", get(projects_page))
        .route("/viewer/projects/create", post(create_form))
        .route("/viewer/projects/rename", post(rename_form))
        .route("/viewer/projects/delete", post(delete_form))
        .route("/viewer/settings", get(settings_page).post(settings_form))
        .route("/viewer/settings/rotate", post(rotate_form))
        .route("/viewer/settings/revoke", post(revoke_form))
}

/// The admin signed in to the viewer, or where to send them.
async fn admin_page(state: &AppState, uri: &Uri, headers: &HeaderMap) -> Result<Result<Reader, Response>, ApiError> {
    let Some(reader) = auth::reader_of(state, headers).await? else {
        return Ok(Err(auth::to_login(uri.path_and_query().map_or("/viewer/", |p| p.as_str()))));
    };
    require_admin(state, &reader)?;
    Ok(Ok(reader))
}

fn token_field(token: Option<&str>) -> Markup {
    html! { input type="hidden" name="form_token" value=(token.unwrap_or_default()); }
}

/// `GET /viewer/projects`.
async fn projects_page(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Err(to) = admin_page(&state, &uri, &headers).await? {
        return Ok(to);
    }
    let list = state.blocking(|s| s.projects()).await?;
    let token = auth::form_token(&state, &headers);
    let token = token.as_deref();
    let content = html! {
        h1 { "Projects" }
        table id="projects" {
            thead { tr { th { "Id" } th { "Name" } th { "" } th { "Rename" } th { "Delete" } } }
            tbody {
                @for p in &list {
                    tr data-project=(p.id) {
                        td { (p.id) }
                        td.name { (p.name) }
                        td {
                            a href={ "./?project=" (p.id) } { "Sessions" } " · "
                            a href={ "settings?project=" (p.id) } { "Settings" } " · "
                            a href={ "audit?project=" (p.id) } { "Audit log" }
                        }
                        td {
                            form.rename method="post" action="projects/rename" {
                                (token_field(token))
                                input type="hidden" name="project" value=(p.id);
                                input type="text" name="name" required value=(p.name) aria-label="New name";
                                button type="submit" { "Rename" }
                            }
                        }
                        td {
                            form.delete method="post" action="projects/delete" {
                                (token_field(token))
                                input type="hidden" name="project" value=(p.id);
                                label { input type="checkbox" name="confirm" value="1" required; " with all its sessions" }
                                button type="submit" { "Delete" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New project" }
        form #create-project method="post" action="projects/create" {
            (token_field(token))
            label { "Name " input type="text" name="name" required maxlength=(projects::NAME_MAX); }
            button type="submit" { "Create" }
        }
    };
    let markup = layout::page("Projects", layout::Nav::Sessions, "", token, content);
    Ok(html_response(markup, LIST_CSP))
}

#[derive(Debug, Deserialize)]
struct NameForm {
    form_token: Option<String>,
    #[serde(default)]
    project: Option<i64>,
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

/// Checks a form: its fields, this server's token, the admin.
fn checked<T: HasToken>(
    state: &AppState,
    headers: &HeaderMap,
    reader: &Reader,
    form: FormBody<T>,
) -> Result<T, ApiError> {
    let Ok(Form(form)) = form else { return Err(bad_form(state)) };
    auth::check_form_token(state, headers, form.token())?;
    require_admin(state, reader)?;
    Ok(form)
}

trait HasToken {
    fn token(&self) -> Option<&str>;
}

macro_rules! has_token {
    ($($t:ty),+) => { $(impl HasToken for $t { fn token(&self) -> Option<&str> { self.form_token.as_deref() } })+ };
}
has_token!(NameForm, SettingsForm, RotateForm, RevokeForm);

async fn create_form(
    reader: Reader,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<NameForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &reader, form)?;
    let created = projects::create(&state, &reader, &form.name).await?;
    Ok(Redirect::to(&format!("/viewer/settings?project={}", created.id)).into_response())
}

async fn rename_form(
    reader: Reader,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<NameForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &reader, form)?;
    let project = form.project.ok_or_else(|| bad_form(&state))?;
    projects::rename(&state, &reader, project, &form.name).await?;
    Ok(Redirect::to("/viewer/projects").into_response())
}

async fn delete_form(
    reader: Reader,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<NameForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &reader, form)?;
    let project = form.project.ok_or_else(|| bad_form(&state))?;
    if form.confirm.as_deref() != Some("1") {
        return Err(bad_form(&state));
    }
    projects::delete(&state, &reader, project).await?;
    Ok(Redirect::to("/viewer/projects").into_response())
}

#[derive(Debug, Deserialize, Default)]
struct ProjectQuery {
    project: Option<i64>,
}

fn time(ms: Option<u64>) -> String {
    ms.map(crate::pages::format_time).unwrap_or_else(|| "—".into())
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `GET /viewer/settings?project=`.
async fn settings_page(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<ProjectQuery>,
) -> Result<Response, ApiError> {
    if let Err(to) = admin_page(&state, &uri, &headers).await? {
        return Ok(to);
    }
    let project = existing_project(&state, q.project).await?;
    let v = state.blocking(move |s| projects::view(s, project)).await?.ok_or_else(|| ApiError::not_found("project"))?;
    let token = auth::form_token(&state, &headers);
    let token = token.as_deref();
    let s = &v.settings;
    let content = html! {
        h1 { "Settings of " (v.name) }
        p { a href={ "./?project=" (v.id) } { "Sessions" } " · " a href={ "audit?project=" (v.id) } { "Audit log" } " · " a href="projects" { "All projects" } }
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
                                form.revoke method="post" action="settings/revoke" {
                                    (token_field(token))
                                    input type="hidden" name="project" value=(v.id);
                                    input type="hidden" name="key" value=(k.key);
                                    button type="submit" { "Revoke now" }
                                }
                            }
                        }
                    }
                }
            }
        }
        form #rotate method="post" action="settings/rotate" {
            (token_field(token))
            input type="hidden" name="project" value=(v.id);
            label { "Other keys keep working for " input type="number" name="grace_hours" min="0" max="720" value="24"; " hours" }
            button type="submit" { "Make a new key" }
        }
        h2 { "Recording" }
        form #settings method="post" action="settings" {
            (token_field(token))
            input type="hidden" name="project" value=(v.id);
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
            label { "Capture request and response bodies of these URLs (prefixes, one per line) " textarea name="network_allow_list" rows="3" { (s.network_allow_list.join("\n")) } }
            label { "Freeze timeout (s; empty: the server's) " input type="number" min="1" max="3600" name="freeze_timeout_secs" value=(opt(s.freeze_timeout_secs)); }
            button type="submit" { "Save" }
        }
    };
    let markup = layout::page("Settings", layout::Nav::Sessions, "", token, content);
    Ok(html_response(markup, LIST_CSP))
}

#[derive(Debug, Deserialize)]
struct SettingsForm {
    form_token: Option<String>,
    project: i64,
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
            },
        })
    }
}

async fn settings_form(
    reader: Reader,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<SettingsForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &reader, form)?;
    let project = existing_project(&state, Some(form.project)).await?;
    let update = form.update().map_err(|()| {
        state.metrics.rejected(Reason::BadQuery);
        ApiError::new(Reason::BadQuery, "a number field holds something else")
    })?;
    projects::update_settings(&state, &reader, project, update).await?;
    Ok(Redirect::to(&format!("/viewer/settings?project={project}")).into_response())
}

#[derive(Debug, Deserialize)]
struct RotateForm {
    form_token: Option<String>,
    project: i64,
    grace_hours: u64,
}

async fn rotate_form(
    reader: Reader,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<RotateForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &reader, form)?;
    let project = existing_project(&state, Some(form.project)).await?;
    projects::rotate(&state, &reader, project, form.grace_hours.saturating_mul(3_600)).await?;
    Ok(Redirect::to(&format!("/viewer/settings?project={project}")).into_response())
}

#[derive(Debug, Deserialize)]
struct RevokeForm {
    form_token: Option<String>,
    project: i64,
    key: String,
}

async fn revoke_form(
    reader: Reader,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: FormBody<RevokeForm>,
) -> Result<Response, ApiError> {
    let form = checked(&state, &headers, &reader, form)?;
    let project = existing_project(&state, Some(form.project)).await?;
    projects::revoke(&state, &reader, project, form.key).await?;
    Ok(Redirect::to(&format!("/viewer/settings?project={project}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_form_reads_empty_fields_as_the_servers_and_refuses_words_for_numbers() {
        let form = |quota: &str| SettingsForm {
            form_token: None,
            project: 1,
            allowed_origins: "https://a.test\n\n https://b.test \n".into(),
            quota_bytes_per_day: quota.into(),
            quota_sessions_per_day: String::new(),
            retention_days: "7".into(),
            sample_rate: "0.25".into(),
            mode: "buffer".into(),
            mask_all_text: Some("1".into()),
            network_allow_list: "/api/".into(),
            freeze_timeout_secs: String::new(),
        };
        let u = form("0").update().expect("reads");
        assert_eq!(u.allowed_origins, vec!["https://a.test", "https://b.test"]);
        assert_eq!((u.quota_bytes_per_day, u.quota_sessions_per_day), (Some(0), None));
        assert_eq!((u.settings.retention_days, u.settings.freeze_timeout_secs), (Some(7), None));
        assert_eq!(
            (u.settings.sample_rate, u.settings.mode, u.settings.mask_all_text),
            (Some(0.25), Some(BufferMode::Buffer), true)
        );
        assert!(form("lots").update().is_err());
    }
}
