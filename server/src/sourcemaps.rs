//! Source maps per release: the routes that store them and read a session through them.
//!
//! - `PUT /api/v1/projects/{project}/sourcemaps?release=R&url=U` (the project's owners, server
//!   admins, or a token with the `manage` scope: [`Capability::Manage`]): stores one file of
//!   a release, a source map (`app.js.map`) or the minified file it maps (`app.js`, for
//!   function names and character positions), under the URL the browser loads it from
//!   (`https://cdn.example/app.js`; `~/app.js` matches any origin). At most
//!   [`MAX_ARTIFACT_BYTES`] a file. The CLI's `replay-server sourcemaps upload` stores a
//!   folder the same way ([`release_files`]).
//! - `GET /api/v1/projects/{project}/sourcemaps?release=R`: the files of a release (readers).
//! - `GET /api/v1/projects/{project}/sessions/{id}/symbolicated`: the session's error and
//!   console stacks and its freeze and long-frame culprits read through the maps of the
//!   session's release (what the viewer's errors and freezes panels show, with a few lines of
//!   source).
//!
//! Every route takes [`ProjectAccess`]: a caller who may not read the project gets 404.
//!
//! The cache of parsed maps and the error groups by original frames are [`crate::symbols`].
//! Fetching maps from a page's `sourceMappingURL` is not done: the server never reaches out to
//! addresses a recording names.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use replay_core::symbolicate::{self, OriginalFrame, RawFrame};
use replay_protocol::EventData;
use replay_store::{Artifact, MAX_ARTIFACT_BYTES, MAX_ARTIFACT_NAME, Storage};
use serde::{Deserialize, Serialize};

use crate::access::{Capability, ProjectAccess};
use crate::api::{ProjectPath, SessionPath};
use crate::reject::Reason;
use crate::symbols::{self, Cache};
use crate::{ApiError, AppState, api};

/// Distinct stacks and culprit scripts one session's answer reads through maps.
pub const MAX_STACKS: usize = 200;
pub const MAX_SCRIPTS: usize = 200;

// ---- upload ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The release the file belongs to (what the recorder reports with `Replay.setRelease`).
    release: String,
    /// The URL the browser loads the file from, or `~/path` for any origin.
    url: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReleaseQuery {
    /// The release.
    release: String,
}

/// Answer of the artifact routes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ArtifactList {
    pub release: String,
    pub files: Vec<Artifact>,
}

fn check_names(release: &str, url: &str) -> Result<(), ApiError> {
    let bad = |m: &str| ApiError::new(Reason::BadQuery, m.to_owned());
    if release.trim().is_empty() || release.len() > MAX_ARTIFACT_NAME {
        return Err(bad("release must be 1 to 2048 bytes"));
    }
    if url.len() > MAX_ARTIFACT_NAME || !(url.starts_with("~/") || url::Url::parse(url).is_ok_and(|u| u.has_host())) {
        return Err(bad("url must be an absolute URL or ~/path"));
    }
    Ok(())
}

fn store_error(e: crate::Error) -> ApiError {
    match e {
        crate::Error::Store(e @ replay_store::Error::ArtifactTooLarge { .. }) => {
            ApiError::new(Reason::BodyTooLarge, e.to_string())
        }
        crate::Error::Store(e @ replay_store::Error::TooManyArtifacts { .. }) => {
            ApiError::new(Reason::BadQuery, e.to_string())
        }
        other => other.into(),
    }
}

/// `PUT /api/v1/projects/{project}/sourcemaps?release=R&url=U`: stores one file of a release.
#[utoipa::path(put, path = "/api/v1/projects/{project}/sourcemaps", tag = "sourcemaps",
    params(ProjectPath, UploadQuery),
    request_body(content = Vec<u8>, description = "The file: a source map, or the minified file it maps.", content_type = "application/octet-stream"),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Stored; the release's files.", body = ArtifactList),
        (status = 400, description = "No release, a URL that is neither absolute nor `~/path`, or too many files in the release."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller may not manage this project (owners, server admins, tokens with the `manage` scope) (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 413, description = "The file is larger than a release file may be."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn upload(
    access: ProjectAccess,
    State(state): State<AppState>,
    q: Result<Query<UploadQuery>, QueryRejection>,
    body: Body,
) -> Result<Json<ArtifactList>, ApiError> {
    // The role first: one who may not upload learns nothing from the query's checks.
    access.require(Capability::Manage)?;
    let Query(q) = q.map_err(|e| ApiError::new(Reason::BadQuery, e.body_text()))?;
    let project = access.project;
    check_names(&q.release, &q.url)?;
    // Read up to one byte past the cap, so that a file over it is told apart from one at it.
    let body = axum::body::to_bytes(body, MAX_ARTIFACT_BYTES + 1).await.map_err(|_| {
        ApiError::new(Reason::BodyTooLarge, format!("a release file holds at most {MAX_ARTIFACT_BYTES} bytes"))
    })?;
    let (release, url) = (q.release.clone(), q.url.clone());
    state.blocking(move |s| s.put_artifact(project, &release, &url, &body)).await.map_err(store_error)?;
    state.symbols.forget_release(project, &q.release);
    tracing::info!(project, release = %q.release, url = %q.url, caller = %access.caller.label(), "release file stored");
    let release = q.release.clone();
    let files = state.blocking(move |s| s.artifacts(project, &release)).await?;
    Ok(Json(ArtifactList { release: q.release, files }))
}

/// `GET /api/v1/projects/{project}/sourcemaps?release=R`: the files of a release.
#[utoipa::path(get, path = "/api/v1/projects/{project}/sourcemaps", tag = "sourcemaps",
    params(ProjectPath, ReleaseQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The release's files.", body = ArtifactList),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list(
    access: ProjectAccess,
    State(state): State<AppState>,
    Query(q): Query<ReleaseQuery>,
) -> Result<Json<ArtifactList>, ApiError> {
    let project = access.project;
    let release = q.release.clone();
    let files = state.blocking(move |s| s.artifacts(project, &release)).await?;
    Ok(Json(ArtifactList { release: q.release, files }))
}

/// Most files `replay-server sourcemaps upload` takes from one folder (a release has at most
/// [`replay_store::MAX_ARTIFACTS_PER_RELEASE`] anyway).
pub const MAX_UPLOAD_FILES: usize = replay_store::MAX_ARTIFACTS_PER_RELEASE;

/// The files of `dir` a release upload takes (`.js`, `.mjs`, `.cjs` and `.map`, in sub-folders
/// too; links are not followed), each with its URL: `url_prefix` + its path under `dir`.
/// Sorted by URL; an error when there are more than [`MAX_UPLOAD_FILES`].
pub fn release_files(dir: &std::path::Path, url_prefix: &str) -> std::io::Result<Vec<(std::path::PathBuf, String)>> {
    let prefix = if url_prefix.ends_with('/') { url_prefix.to_owned() } else { format!("{url_prefix}/") };
    let mut out = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                folders.push(path);
                continue;
            }
            let wanted =
                path.extension().and_then(|e| e.to_str()).is_some_and(|e| ["js", "mjs", "cjs", "map"].contains(&e));
            if !kind.is_file() || !wanted {
                continue;
            }
            let Ok(relative) = path.strip_prefix(dir) else { continue };
            let parts: Vec<String> =
                relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push((path.clone(), format!("{prefix}{}", parts.join("/"))));
            if out.len() > MAX_UPLOAD_FILES {
                return Err(std::io::Error::other(format!("more than {MAX_UPLOAD_FILES} files to upload")));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

// ---- reading a session through the maps ----

/// A frame as recorded, and as read through the map (absent when no map covers it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Frame {
    #[schema(value_type = Object)]
    pub raw: RawFrame,
    #[schema(value_type = Option<Object>)]
    pub original: Option<OriginalFrame>,
}

/// A recorded stack (as text) and its frames.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stack {
    pub stack: String,
    pub frames: Vec<Frame>,
}

/// A culprit script of a freeze or long frame, keyed as the viewer keys it
/// (`source|line|column|charPos|function`), and its original function.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Script {
    pub key: String,
    #[schema(value_type = Object)]
    pub original: OriginalFrame,
}

/// Answer of `GET /api/v1/projects/{project}/sessions/{id}/symbolicated`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Symbolicated {
    /// The session's release (empty when it reported none: then nothing is read).
    pub release: String,
    /// Error and console stacks with at least one frame read through a map.
    pub stacks: Vec<Stack>,
    pub scripts: Vec<Script>,
}

/// The viewer's key of a culprit script.
pub fn script_key(source: &str, line: u32, column: u32, char_position: i32, function: &str) -> String {
    format!("{source}|{line}|{column}|{char_position}|{function}")
}

/// Reads stacks and culprits through the maps of `release`.
fn read_session(
    cache: &Cache,
    storage: &dyn Storage,
    project: i64,
    release: &str,
    batches: &[replay_protocol::Batch],
) -> (Vec<Stack>, Vec<Script>) {
    let mut seen_stacks = std::collections::HashSet::new();
    let mut seen_scripts = std::collections::HashSet::new();
    let (mut stacks, mut scripts) = (Vec::new(), Vec::new());
    // Only the URLs the release has files for are looked up: a recording names whatever URLs
    // its sender wrote (up to MAX_STACKS × 50 frames), and each lookup of one without a file
    // cost storage reads and pushed parsed maps out of the cache.
    let uploaded: std::collections::HashSet<String> = match storage.artifacts(project, release) {
        Ok(list) if !list.is_empty() => list.into_iter().map(|a| a.url).collect(),
        _ => return (stacks, scripts),
    };
    let mapped = |url: &str| {
        symbols::may_have_map(&uploaded, url).then(|| cache.mapped(storage, project, release, url).ok().flatten())?
    };
    for e in batches.iter().flat_map(|b| b.events.iter()) {
        let (stack_text, culprits) = match &e.data {
            EventData::Error(err) => (Some(err.stack.as_str()), None),
            EventData::Console(c) => (Some(c.stack.as_str()), None),
            EventData::LongFrame(l) => (None, Some(l.scripts.as_slice())),
            EventData::Freeze(replay_protocol::Freeze::Ended { culprits, .. }) => (None, Some(culprits.as_slice())),
            _ => (None, None),
        };
        if let Some(text) = stack_text.filter(|t| !t.is_empty())
            && seen_stacks.len() < MAX_STACKS
            && seen_stacks.insert(text.to_owned())
        {
            let frames: Vec<Frame> = symbolicate::parse_stack(text)
                .into_iter()
                .map(|raw| {
                    let original = mapped(&raw.url).and_then(|f| f.frame(&raw));
                    Frame { raw, original }
                })
                .collect();
            if frames.iter().any(|f| f.original.is_some()) {
                stacks.push(Stack { stack: text.to_owned(), frames });
            }
        }
        for s in culprits.unwrap_or_default() {
            let key = script_key(&s.source_url, s.line, s.column, s.char_position, &s.function);
            if s.source_url.is_empty() || seen_scripts.len() >= MAX_SCRIPTS || !seen_scripts.insert(key.clone()) {
                continue;
            }
            let name = if s.function.is_empty() { s.invoker.as_str() } else { s.function.as_str() };
            if let Some(original) =
                mapped(&s.source_url).and_then(|f| f.culprit(name, s.line, s.column, s.char_position))
            {
                scripts.push(Script { key, original });
            }
        }
    }
    (stacks, scripts)
}

/// `GET /api/v1/projects/{project}/sessions/{id}/symbolicated`: the session's error and console stacks and its
/// culprit scripts read through the source maps of its release.
#[utoipa::path(get, path = "/api/v1/projects/{project}/sessions/{id}/symbolicated", tag = "sourcemaps",
    params(SessionPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Stacks and culprits with their original frames and source context.", body = Symbolicated),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn session_symbolicated(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
) -> Result<Json<Symbolicated>, ApiError> {
    if !replay_protocol::codec::is_valid_id(&id) {
        return Err(ApiError::not_found("session"));
    }
    let project = access.project;
    let session = id.clone();
    let row =
        state.blocking(move |s| s.session(project, &session)).await?.ok_or_else(|| ApiError::not_found("session"))?;
    if row.release.is_empty() {
        return Ok(Json(Symbolicated { release: String::new(), stacks: Vec::new(), scripts: Vec::new() }));
    }
    let bodies = api::load_batches(&state, project, id).await?;
    let limits = state.config.limits;
    let release = row.release.clone();
    let st = state.clone();
    let (stacks, scripts) = state
        .blocking(move |s| {
            // Decoded off the async threads too; a batch that does not decode fails the read.
            Ok::<_, crate::Error>(
                api::decode_stored(&bodies, &limits)
                    .map(|batches| read_session(&st.symbols, s, project, &release, &batches)),
            )
        })
        .await??;
    Ok(Json(Symbolicated { release: row.release, stacks, scripts }))
}
