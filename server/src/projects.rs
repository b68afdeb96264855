//! Projects from the API: list, create, rename, delete, and each project's settings (ingest
//! keys with rotation and revocation, allowed origins, quotas, retention, the recorder's
//! defaults: sampling, buffer mode, which URLs may have bodies captured, mask all text; the
//! freeze timeout). The viewer's pages over the same operations are in `settings_page`.
//!
//! What the server enforces: keys, origins and quotas at ingest, a project's retention in the
//! housekeeping ([`apply_retention`], it can only shorten the server's). The recorder's
//! defaults are kept for the recorder to fetch; the tag's attributes apply until it does. The
//! freeze timeout is kept, not yet used (the server's `--freeze-timeout-secs` applies).
//!
//! Every change is written to the project's audit log. Who may: the list answers the caller's
//! projects; creating is a server admin's (who becomes the new project's owner); everything
//! else needs [`Capability::Manage`] in the project (its owners, server admins).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::access::{AdminAccess, Caller, Capability, ProjectAccess};
use crate::api::ProjectPath;
use crate::audit;
use crate::reject::Reason;
use crate::storage::{Error, ProjectQuota, SessionFilter, Storage};
use crate::{ApiError, AppState};

/// How the recorder sends what it records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BufferMode {
    /// Batches go out as they fill.
    #[default]
    Live,
    /// Held in the page (the last minute or so) until `Replay.flush()` or an error sends them.
    Buffer,
}

/// A project's own settings beyond its keys, origins and quotas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ProjectSettings {
    /// Share of sessions recorded, from 0 to 1, over the tag's `data-sample-rate`; `null`: the
    /// tag's.
    pub sample_rate: Option<f64>,
    /// `live` or `buffer`, over the tag's `data-mode`; `null`: the tag's.
    pub mode: Option<BufferMode>,
    /// Mask every text node (the tag's `data-mask-all-text`).
    pub mask_all_text: bool,
    /// URL prefixes whose request and response bodies may be captured (the recorder's
    /// `networkAllowList`); none by default.
    pub network_allow_list: Vec<String>,
    /// Days the project's sessions are kept, fewer than the server's; `null`: the server's.
    pub retention_days: Option<u32>,
    /// Seconds after which a freeze with no end counts as never recovered; `null`: the
    /// server's. Kept, not yet applied.
    pub freeze_timeout_secs: Option<u32>,
    /// Record every `<canvas>` outside masked subtrees as frames (the tag's `data-canvas`);
    /// off: only canvases marked `data-replay-canvas`.
    pub canvas: bool,
}

/// Most URL prefixes, and longest one, of a body-capture allow-list; most allowed origins.
pub const LIST_MAX: usize = 50;
pub const ENTRY_MAX: usize = 2048;
/// Longest project name.
pub const NAME_MAX: usize = 100;

impl ProjectSettings {
    /// The settings stored for a project (defaults for what was never set or no longer reads).
    pub fn parse(json: &str) -> Self {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// Why these settings cannot be kept, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.sample_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return Err("sample_rate is a share from 0 to 1".into());
        }
        check_list("network_allow_list", &self.network_allow_list, |u| {
            u.starts_with("https://") || u.starts_with("http://") || u.starts_with('/')
        })?;
        if self.retention_days.is_some_and(|d| d == 0 || d > 3_650) {
            return Err("retention_days is from 1 to 3650, or null for the server's".into());
        }
        if self.freeze_timeout_secs.is_some_and(|s| s == 0 || s > 3_600) {
            return Err("freeze_timeout_secs is from 1 to 3600, or null for the server's".into());
        }
        Ok(())
    }
}

fn check_list(name: &str, list: &[String], valid: impl Fn(&str) -> bool) -> Result<(), String> {
    if list.len() > LIST_MAX {
        return Err(format!("{name} holds at most {LIST_MAX} entries"));
    }
    match list.iter().find(|e| e.is_empty() || e.len() > ENTRY_MAX || !valid(e)) {
        Some(bad) => Err(format!("{name}: {bad:?} is not a URL (http://, https://) or a path")),
        None => Ok(()),
    }
}

/// A project's name as given: trimmed, not empty, at most [`NAME_MAX`] bytes.
pub fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(format!("a project's name is 1 to {NAME_MAX} bytes of text"));
    }
    Ok(name.to_owned())
}

/// One ingest key of a project.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyView {
    pub key: String,
    pub created_ms: u64,
    /// When it stops being accepted (the end of a rotation's grace period).
    pub expires_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
    /// Accepted now.
    pub live: bool,
}

/// A project with everything its settings page shows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectView {
    pub id: i64,
    pub name: String,
    /// The newest key: what a new tag embeds.
    pub ingest_key: String,
    /// Newest first, revoked and expired ones included.
    pub keys: Vec<KeyView>,
    /// Origins allowed to send batches; empty: any.
    pub allowed_origins: Vec<String>,
    /// Daily quotas: `null` the server's, 0 none.
    pub quota_bytes_per_day: Option<u64>,
    pub quota_sessions_per_day: Option<u64>,
    pub settings: ProjectSettings,
}

/// Reads a project's view; `None` when there is no such project.
pub fn view(storage: &dyn Storage, project: i64) -> Result<Option<ProjectView>, Error> {
    let Some(p) = storage.projects()?.into_iter().find(|p| p.id == project) else { return Ok(None) };
    let now = replay_core::now_ms();
    let keys = storage
        .ingest_keys(project)?
        .into_iter()
        .map(|k| KeyView {
            live: k.live(now),
            key: k.key,
            created_ms: k.created_ms,
            expires_ms: k.expires_ms,
            revoked_ms: k.revoked_ms,
        })
        .collect();
    let settings = storage.project_settings(project)?.map(|s| ProjectSettings::parse(&s)).unwrap_or_default();
    Ok(Some(ProjectView {
        id: p.id,
        name: p.name,
        ingest_key: p.ingest_key,
        keys,
        allowed_origins: p.allowed_origins,
        quota_bytes_per_day: p.quota.bytes_per_day,
        quota_sessions_per_day: p.quota.sessions_per_day,
        settings,
    }))
}

/// Everything a settings change may set at once.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct SettingsUpdate {
    /// Origins allowed to send batches (`https://shop.example`); empty: any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub quota_bytes_per_day: Option<u64>,
    #[serde(default)]
    pub quota_sessions_per_day: Option<u64>,
    #[serde(default)]
    pub settings: ProjectSettings,
}

impl SettingsUpdate {
    pub fn check(&self) -> Result<(), String> {
        check_list("allowed_origins", &self.allowed_origins, |o| {
            o == "*" || ((o.starts_with("https://") || o.starts_with("http://")) && !o.contains(','))
        })?;
        self.settings.check()
    }
}

fn bad(state: &AppState, message: String) -> ApiError {
    state.metrics.rejected(Reason::BadQuery);
    ApiError::new(Reason::BadQuery, message)
}

fn taken(state: &AppState) -> ApiError {
    state.metrics.rejected(Reason::NameTaken);
    ApiError::new(Reason::NameTaken, "another project has this name")
}

/// Applies a settings change and logs what changed.
pub async fn update_settings(
    state: &AppState,
    caller: &Caller,
    project: i64,
    update: SettingsUpdate,
) -> Result<ProjectView, ApiError> {
    update.check().map_err(|m| bad(state, m))?;
    let actor = audit::actor(caller);
    let view = state
        .blocking(move |s| {
            let before = view(s, project)?.ok_or(Error::NoSuchProject(project))?;
            s.set_allowed_origins(project, &update.allowed_origins)?;
            let quota = ProjectQuota {
                bytes_per_day: update.quota_bytes_per_day,
                sessions_per_day: update.quota_sessions_per_day,
            };
            s.set_project_quota(project, quota)?;
            let json = serde_json::to_string(&update.settings).unwrap_or_else(|_| "{}".into());
            s.set_project_settings(project, &json)?;
            let after = view(s, project)?.ok_or(Error::NoSuchProject(project))?;
            for (what, old, new) in changes(&before, &after) {
                audit::append(s, project, &actor, audit::PROJECT_SETTINGS, what, &format!("{old} → {new}"));
            }
            Ok::<_, Error>(after)
        })
        .await?;
    Ok(view)
}

/// The settings that differ between two views of a project: (name, before, after).
fn changes(before: &ProjectView, after: &ProjectView) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let mut diff = |name: &'static str, a: String, b: String| {
        if a != b {
            out.push((name, a, b));
        }
    };
    let (a, b) = (&before.settings, &after.settings);
    diff("allowed_origins", before.allowed_origins.join(" "), after.allowed_origins.join(" "));
    diff("quota_bytes_per_day", shown(before.quota_bytes_per_day), shown(after.quota_bytes_per_day));
    diff("quota_sessions_per_day", shown(before.quota_sessions_per_day), shown(after.quota_sessions_per_day));
    diff("sample_rate", shown(a.sample_rate), shown(b.sample_rate));
    diff("mode", shown(a.mode.map(|m| format!("{m:?}"))), shown(b.mode.map(|m| format!("{m:?}"))));
    diff("mask_all_text", a.mask_all_text.to_string(), b.mask_all_text.to_string());
    diff("network_allow_list", a.network_allow_list.join(" "), b.network_allow_list.join(" "));
    diff("retention_days", shown(a.retention_days), shown(b.retention_days));
    diff("freeze_timeout_secs", shown(a.freeze_timeout_secs), shown(b.freeze_timeout_secs));
    diff("canvas", a.canvas.to_string(), b.canvas.to_string());
    out
}

/// A setting that may be left to its default, for the audit log.
fn shown(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "default".to_owned(), |v| v.to_string())
}

/// Creates a project and logs it; the caller's user (if any) becomes its owner.
pub async fn create(state: &AppState, caller: &Caller, name: &str) -> Result<ProjectView, ApiError> {
    let name = check_name(name).map_err(|m| bad(state, m))?;
    let actor = audit::actor(caller);
    let user = caller.user().map(str::to_owned);
    let created = state
        .blocking(move |s| {
            if s.projects()?.iter().any(|p| p.name == name) {
                return Ok(None);
            }
            let p = s.create_project(&name)?;
            if let Some(user) = &user {
                s.set_membership(p.id, user, Some(crate::access::Role::Owner.as_str()))?;
            }
            audit::append(s, p.id, &actor, audit::PROJECT_CREATE, &name, "");
            view(s, p.id)
        })
        .await?;
    created.ok_or_else(|| taken(state))
}

/// Renames a project and logs it.
pub async fn rename(state: &AppState, caller: &Caller, project: i64, name: &str) -> Result<ProjectView, ApiError> {
    let name = check_name(name).map_err(|m| bad(state, m))?;
    let actor = audit::actor(caller);
    let renamed = state
        .blocking(move |s| {
            let projects = s.projects()?;
            let Some(old) = projects.iter().find(|p| p.id == project) else { return Ok(Err(false)) };
            if projects.iter().any(|p| p.name == name && p.id != project) {
                return Ok(Err(true));
            }
            s.rename_project(project, &name)?;
            audit::append(s, project, &actor, audit::PROJECT_RENAME, &name, &format!("was {}", old.name));
            Ok::<_, Error>(view(s, project)?.ok_or(false))
        })
        .await?;
    match renamed {
        Ok(v) => Ok(v),
        Err(true) => Err(taken(state)),
        Err(false) => Err(ApiError::not_found("project")),
    }
}

/// Deletes a project with everything it holds, and logs it (in its own log, kept until
/// pruned).
pub async fn delete(state: &AppState, caller: &Caller, project: i64) -> Result<(), ApiError> {
    let actor = audit::actor(caller);
    let deleted = state
        .blocking(move |s| {
            let name = s.projects()?.into_iter().find(|p| p.id == project).map(|p| p.name);
            let deleted = s.delete_project(project)?;
            if deleted {
                audit::append(s, project, &actor, audit::PROJECT_DELETE, &name.unwrap_or_default(), "");
            }
            Ok::<_, Error>(deleted)
        })
        .await?;
    if deleted { Ok(()) } else { Err(ApiError::not_found("project")) }
}

/// Longest grace period of a rotation: 30 days.
pub const GRACE_MAX_SECS: u64 = 30 * 86_400;

/// Makes a new key; the others stay valid `grace_secs` more. Logged.
pub async fn rotate(state: &AppState, caller: &Caller, project: i64, grace_secs: u64) -> Result<String, ApiError> {
    if grace_secs > GRACE_MAX_SECS {
        return Err(bad(state, format!("the grace period is at most {GRACE_MAX_SECS} s")));
    }
    let actor = audit::actor(caller);
    state
        .blocking(move |s| {
            let key = s.rotate_key(project, grace_secs.saturating_mul(1_000))?;
            audit::append(s, project, &actor, audit::KEY_ROTATE, &key, &format!("old keys end in {grace_secs} s"));
            Ok::<_, Error>(key)
        })
        .await
        .map_err(Into::into)
}

/// Ends one key at once. Logged. Not found when the project has no such live key.
pub async fn revoke(state: &AppState, caller: &Caller, project: i64, key: String) -> Result<(), ApiError> {
    let actor = audit::actor(caller);
    let revoked = state
        .blocking(move |s| {
            let revoked = s.revoke_key(project, &key)?;
            if revoked {
                audit::append(s, project, &actor, audit::KEY_REVOKE, &key, "");
            }
            Ok::<_, Error>(revoked)
        })
        .await?;
    if revoked { Ok(()) } else { Err(ApiError::not_found("live key")) }
}

/// Deletes the sessions of projects with a retention of their own, shorter than the
/// server's: those whose last batch is older (rounds of [`crate::storage::ERASE_ROUND`]).
/// Returns how many went.
pub fn apply_retention(storage: &dyn Storage, now_ms: u64) -> Result<u64, Error> {
    let mut deleted = 0;
    for p in storage.projects()? {
        let Some(settings) = storage.project_settings(p.id)? else { continue };
        let Some(days) = ProjectSettings::parse(&settings).retention_days else { continue };
        let cutoff = now_ms.saturating_sub(u64::from(days) * 86_400_000);
        // Click map aggregates of the days wholly before the cutoff go too.
        storage.delete_clickmap_before(p.id, replay_store::clickmap::day_of(cutoff))?;
        // Started before the cutoff; those that also ended before it go.
        let filter = SessionFilter { until_ms: Some(cutoff), ..SessionFilter::default() };
        let mut offset = 0;
        for _ in 0..10_000 {
            let rows = storage.find_sessions(p.id, &filter, crate::storage::ERASE_ROUND, offset)?;
            if rows.is_empty() {
                break;
            }
            let old: Vec<String> = rows.iter().filter(|r| r.end_ms < cutoff).map(|r| r.id.clone()).collect();
            offset += rows.len() - old.len();
            if !old.is_empty() {
                deleted += storage.delete_sessions(p.id, &old)?;
            }
        }
    }
    Ok(deleted)
}

/// Marks "froze, never recovered" the sessions that froze and then sent nothing for their
/// project's freeze timeout (its own setting, or `default` the server's). Returns how many.
pub fn mark_unrecovered_freezes(
    storage: &dyn Storage,
    now_ms: u64,
    default: std::time::Duration,
) -> Result<u64, Error> {
    let mut marked = 0;
    for p in storage.projects()? {
        let own = storage.project_settings(p.id)?.and_then(|s| ProjectSettings::parse(&s).freeze_timeout_secs);
        let timeout_ms = own.map_or(u64::try_from(default.as_millis()).unwrap_or(u64::MAX), |s| u64::from(s) * 1_000);
        marked += storage.mark_unrecovered_freezes(p.id, now_ms.saturating_sub(timeout_ms))?;
    }
    Ok(marked)
}

/// A project in the list.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectItem {
    pub id: i64,
    pub name: String,
}

/// Answer of `GET /api/v1/projects`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectItem>,
}

/// `GET /api/v1/projects`: the caller's projects, oldest first.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The projects the caller may read, oldest first.", body = ProjectList),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_api(caller: Caller, State(state): State<AppState>) -> Result<Json<ProjectList>, ApiError> {
    let projects = caller.projects(&state).await?;
    Ok(Json(ProjectList {
        projects: projects.into_iter().map(|(p, _)| ProjectItem { id: p.id, name: p.name }).collect(),
    }))
}

/// Body naming a project.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NameBody {
    pub name: String,
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(state: &AppState, b: JsonBody<T>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| bad(state, format!("the body is not the JSON expected: {e}")))
}

/// `POST /api/v1/projects`: creates a project with a fresh ingest key; the calling user becomes
/// its owner. A server admin's.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects",
    request_body(content = NameBody, content_type = "application/json"),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The project, with its key.", body = ProjectView),
        (status = 400, description = "No name, or not JSON (`bad_query`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 404, description = "The caller is not a server admin."),
        (status = 409, description = "Another project has this name (`name_taken`)."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn create_api(
    AdminAccess(caller): AdminAccess,
    State(state): State<AppState>,
    b: JsonBody<NameBody>,
) -> Result<Json<ProjectView>, ApiError> {
    let NameBody { name } = body(&state, b)?;
    Ok(Json(create(&state, &caller, &name).await?))
}

/// `PATCH /api/v1/projects/{project}`: renames a project. The project's owners'.
#[utoipa::path(patch, path = "/api/v1/projects/{project}", tag = "projects",
    params(ProjectPath),
    request_body(content = NameBody, content_type = "application/json"),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The renamed project.", body = ProjectView),
        (status = 400, description = "No name, or not JSON (`bad_query`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 409, description = "Another project has this name (`name_taken`)."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn rename_api(
    access: ProjectAccess,
    State(state): State<AppState>,
    b: JsonBody<NameBody>,
) -> Result<Json<ProjectView>, ApiError> {
    access.require(Capability::Manage)?;
    let (project, caller) = (access.project, &access.caller);
    let NameBody { name } = body(&state, b)?;
    Ok(Json(rename(&state, caller, project, &name).await?))
}

/// Answer of a project's deletion.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectDeleted {
    pub deleted: bool,
}

/// `DELETE /api/v1/projects/{project}`: deletes a project with all its sessions and keys. The
/// project's owners'.
#[utoipa::path(delete, path = "/api/v1/projects/{project}", tag = "projects",
    params(ProjectPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The project and everything it held are deleted.", body = ProjectDeleted),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn delete_api(
    access: ProjectAccess,
    State(state): State<AppState>,
) -> Result<Json<ProjectDeleted>, ApiError> {
    access.require(Capability::Manage)?;
    let (project, caller) = (access.project, &access.caller);
    delete(&state, caller, project).await?;
    Ok(Json(ProjectDeleted { deleted: true }))
}

/// `GET /api/v1/projects/{project}/settings`: keys, origins, quotas and settings. The project's owners'.
#[utoipa::path(get, path = "/api/v1/projects/{project}/settings", tag = "projects",
    params(ProjectPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The project's keys and settings.", body = ProjectView),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn settings_api(access: ProjectAccess, State(state): State<AppState>) -> Result<Json<ProjectView>, ApiError> {
    access.require(Capability::Manage)?;
    let project = access.project;
    let v = state.blocking(move |s| view(s, project)).await?;
    v.map(Json).ok_or_else(|| ApiError::not_found("project"))
}

/// `PUT /api/v1/projects/{project}/settings`: replaces origins, quotas and settings. The project's owners'.
#[utoipa::path(put, path = "/api/v1/projects/{project}/settings", tag = "projects",
    params(ProjectPath),
    request_body(content = SettingsUpdate, content_type = "application/json"),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The project with its new settings.", body = ProjectView),
        (status = 400, description = "A setting out of its range, or not JSON (`bad_query`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn update_settings_api(
    access: ProjectAccess,
    State(state): State<AppState>,
    b: JsonBody<SettingsUpdate>,
) -> Result<Json<ProjectView>, ApiError> {
    access.require(Capability::Manage)?;
    let (project, caller) = (access.project, &access.caller);
    let update = body(&state, b)?;
    Ok(Json(update_settings(&state, caller, project, update).await?))
}

/// Body of a key rotation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RotateBody {
    /// How long the project's other keys keep working (at most 30 days; 0: they end now).
    pub grace_secs: u64,
}

/// Answer of a key rotation.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewKey {
    pub key: String,
}

/// `POST /api/v1/projects/{project}/keys`: a new ingest key; the others stay valid for the grace
/// period. The project's owners'.
#[utoipa::path(post, path = "/api/v1/projects/{project}/keys", tag = "projects",
    params(ProjectPath),
    request_body(content = RotateBody, content_type = "application/json"),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The new key.", body = NewKey),
        (status = 400, description = "A grace period over 30 days, or not JSON (`bad_query`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn rotate_api(
    access: ProjectAccess,
    State(state): State<AppState>,
    b: JsonBody<RotateBody>,
) -> Result<Json<NewKey>, ApiError> {
    access.require(Capability::Manage)?;
    let (project, caller) = (access.project, &access.caller);
    let RotateBody { grace_secs } = body(&state, b)?;
    Ok(Json(NewKey { key: rotate(&state, caller, project, grace_secs).await? }))
}

/// `DELETE /api/v1/projects/{project}/keys/{key}`: ends a key at once. The project's owners'.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/keys/{key}", tag = "projects",
    params(KeyPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The key is refused from now on (by other instances within 30 s).", body = ProjectDeleted),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such live key in the project, or no such project or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn revoke_api(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(KeyPath { key, .. }): Path<KeyPath>,
) -> Result<Json<ProjectDeleted>, ApiError> {
    access.require(Capability::Manage)?;
    let (project, caller) = (access.project, &access.caller);
    revoke(&state, caller, project, key).await?;
    Ok(Json(ProjectDeleted { deleted: true }))
}

/// Path of one ingest key of a project.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// Project id.
    pub project: i64,
    /// The key.
    pub key: String,
}

/// What the recorder takes from its project's settings at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecorderSettings {
    /// `null`: the tag's.
    pub sample_rate: Option<f64>,
    /// `null`: the tag's.
    pub mode: Option<BufferMode>,
    pub mask_all_text: bool,
    pub network_allow_list: Vec<String>,
    /// Record canvases as frames (see [`ProjectSettings::canvas`]).
    #[serde(default)]
    pub canvas: bool,
}

/// Query of the recorder's settings: the tag's ingest key.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyQuery {
    /// The project's ingest key, as the tag embeds it.
    key: Option<String>,
}

/// How long a browser (and the recorder's own cache) keeps the recorder's settings.
pub const RECORDER_SETTINGS_MAX_AGE_S: u64 = 300;

/// `GET /api/v1/recorder/settings?key=`: the recorder's defaults of the key's project
/// (sampling, buffer mode, mask all text, body-capture URLs), so a team changes them without
/// redeploying its app. Public like the key (nothing in them is secret); any origin may read
/// them; limited like ingest by the client's rate.
#[utoipa::path(get, path = "/api/v1/recorder/settings", tag = "ingest", params(KeyQuery),
    security(("ingest_key_query" = [])),
    responses(
        (status = 200, description = "The project's recorder settings.", body = RecorderSettings),
        (status = 401, description = "No ingest key, or an unknown one (`missing_key`, `unknown_key`)."),
        (status = 429, description = "Rate limited (`rate_limited`)."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn recorder_settings_api(
    State(state): State<AppState>,
    connect: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<KeyQuery>,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let peer = connect.map(|axum::Extension(c)| c.0.ip());
    let client = crate::client::client_ip(peer, &headers, &state.config.trusted_proxies).map(crate::client::limit_key);
    let answer = async {
        let Some(key) = q.key.filter(|k| !k.is_empty()) else {
            return Err(ApiError::new(Reason::MissingKey, "an ingest key is required"));
        };
        if state.limits.check_client(client).is_err() {
            return Err(ApiError::new(Reason::RateLimited, "too many requests from this client").retry_after(1));
        }
        let unknown = || ApiError::new(Reason::UnknownKey, "unknown ingest key");
        if key.len() > 128 || state.refused.contains(&key) {
            return Err(unknown());
        }
        let lookup = key.clone();
        let found = state
            .blocking(move |s| {
                let Some(p) = s.project_by_key(&lookup)? else { return Ok(None) };
                Ok::<_, Error>(Some(s.project_settings(p.id)?.map(|j| ProjectSettings::parse(&j)).unwrap_or_default()))
            })
            .await?;
        let Some(s) = found else {
            state.refused.insert(&key);
            return Err(unknown());
        };
        Ok(RecorderSettings {
            sample_rate: s.sample_rate,
            mode: s.mode,
            mask_all_text: s.mask_all_text,
            network_allow_list: s.network_allow_list,
            canvas: s.canvas,
        })
    };
    let mut response = match answer.await {
        Ok(settings) => {
            let mut r = Json(settings).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("max-age={RECORDER_SETTINGS_MAX_AGE_S}")) {
                r.headers_mut().insert(header::CACHE_CONTROL, v);
            }
            r
        }
        Err(e) => {
            state.metrics.rejected(e.reason);
            e.into_response()
        }
    };
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// CORS preflight of the recorder's settings request: a plain `GET` needs none, but a page's
/// `fetch` wrapper that adds headers to every request (an APM's trace headers) makes one, and
/// a refused settings request left the project's `mask_all_text` unapplied.
#[utoipa::path(options, path = "/api/v1/recorder/settings", tag = "ingest",
    responses((status = 204, description = "The methods and headers the settings request may use.")))]
pub async fn recorder_settings_preflight(headers: axum::http::HeaderMap) -> axum::response::Response {
    crate::ingest::get_preflight(&headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused_and_unreadable_ones_read_as_defaults() {
        assert_eq!(ProjectSettings::parse("not json"), ProjectSettings::default());
        assert_eq!(ProjectSettings::parse("{}").sample_rate, None, "the tag's");
        assert_eq!(ProjectSettings::parse(r#"{"mode":"buffer"}"#).mode, Some(BufferMode::Buffer));
        let with = |f: fn(&mut ProjectSettings)| {
            let mut s = ProjectSettings::default();
            f(&mut s);
            s.check()
        };
        assert!(with(|_| {}).is_ok());
        assert!(with(|s| s.sample_rate = Some(1.5)).is_err());
        assert!(with(|s| s.sample_rate = Some(f64::NAN)).is_err());
        assert!(with(|s| s.sample_rate = Some(0.0)).is_ok());
        assert!(with(|s| s.retention_days = Some(0)).is_err());
        assert!(with(|s| s.freeze_timeout_secs = Some(7_200)).is_err());
        assert!(with(|s| s.network_allow_list = vec!["javascript:alert(1)".into()]).is_err());
        assert!(with(|s| s.network_allow_list = vec!["https://api.shop.test/".into(), "/api/".into()]).is_ok());
        assert!(with(|s| s.network_allow_list = vec!["/a".into(); LIST_MAX + 1]).is_err());
        let origins = |o: &[&str]| SettingsUpdate {
            allowed_origins: o.iter().map(|s| (*s).to_owned()).collect(),
            ..SettingsUpdate::default()
        };
        assert!(origins(&["https://shop.test", "*"]).check().is_ok());
        assert!(origins(&["shop.test"]).check().is_err());
        assert!(origins(&["https://a.test,https://b.test"]).check().is_err(), "stored comma-separated");
        assert!(check_name("  shop  ").is_ok_and(|n| n == "shop"));
        assert!(check_name(" ").is_err() && check_name(&"x".repeat(NAME_MAX + 1)).is_err());
    }
}
