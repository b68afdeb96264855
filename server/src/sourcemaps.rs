//! Source maps per release: upload, the cache of parsed maps, and everything read through them.
//!
//! - `PUT /api/v1/projects/{id}/sourcemaps?release=R&url=U` (admin token): stores one file of
//!   a release, a source map (`app.js.map`) or the minified file it maps (`app.js`, for
//!   function names and character positions), under the URL the browser loads it from
//!   (`https://cdn.example/app.js`; `~/app.js` matches any origin). At most
//!   [`MAX_ARTIFACT_BYTES`] a file. The CLI's `replay-server sourcemaps upload` stores a
//!   folder the same way.
//! - `GET /api/v1/projects/{id}/sourcemaps?release=R`: the files of a release.
//! - `GET /api/v1/sessions/{id}/symbolicated`: the session's error and console stacks and its
//!   freeze and long-frame culprits read through the maps of the session's release (what the
//!   viewer's errors and freezes panels show, with a few lines of source).
//! - [`error_groups`]: the error groups with their top frame read through the maps, groups
//!   merged by original fingerprint.
//!
//! **Ingest never waits for symbolication.** Ingest fingerprints an error by its message and
//! minified top frame, as before. Grouping by original frames happens when groups are read:
//! each group's top frame is read through the map of the release of its latest session and the
//! group is re-keyed by [`replay_core::symbolicate::original_fingerprint`] (message, original
//! function and file, no line), and groups with the same key are merged. So a new deploy,
//! whose minified positions all moved, lands in the group of the old one as soon as its map is
//! uploaded, and a map uploaded after the errors arrived applies to them too. (A session that
//! saw the error under both releases counts in both minified groups, so a merged group's
//! session count may count it twice.) Re-keyings are cached per (project, fingerprint) for
//! [`GROUP_TTL`].
//!
//! **The cache** holds parsed maps by (project, release, URL), within [`CACHE_BYTES`] of
//! estimated memory and [`CACHE_ENTRIES`] entries, least recently used out first; a map larger
//! than the budget is used and not kept. Entries expire after [`MAP_TTL`] (other instances may
//! have stored a new upload), misses after [`MISS_TTL`]; an upload through this instance drops
//! its release's entries at once. Fetching maps from a page's `sourceMappingURL` is not done:
//! the server never reaches out to addresses a recording names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use replay_core::symbolicate::{self, MappedFile, OriginalFrame, RawFrame};
use replay_protocol::EventData;
use replay_store::{Artifact, ErrorGroup, MAX_ARTIFACT_BYTES, MAX_ARTIFACT_NAME, RECENT_ERROR_SESSIONS, Storage};
use serde::{Deserialize, Serialize};

use crate::auth::Reader;
use crate::reject::Reason;
use crate::{ApiError, AppState, api};

/// Estimated memory the cache of parsed maps may hold.
pub const CACHE_BYTES: usize = 128 << 20;
/// Most maps (and misses) cached.
pub const CACHE_ENTRIES: usize = 512;
/// How long a parsed map is kept.
pub const MAP_TTL: Duration = Duration::from_secs(300);
/// How long "no map for this file" is kept.
pub const MISS_TTL: Duration = Duration::from_secs(15);
/// How long an error group's re-keying is kept.
pub const GROUP_TTL: Duration = Duration::from_secs(60);
/// Most re-keyings cached.
const GROUP_ENTRIES: usize = 20_000;
/// Distinct stacks and culprit scripts one session's answer reads through maps.
pub const MAX_STACKS: usize = 200;
pub const MAX_SCRIPTS: usize = 200;

type MapKey = (i64, String, String);

struct CachedMap {
    file: Option<Arc<MappedFile>>,
    weight: usize,
    loaded: Instant,
    used: u64,
}

/// A group's fingerprint and frame once read through the maps (`None`: unchanged).
type Rekey = Option<(String, String)>;

#[derive(Default)]
struct Inner {
    maps: HashMap<MapKey, CachedMap>,
    weight: usize,
    tick: u64,
    groups: HashMap<(i64, String), (Rekey, Instant)>,
}

/// The cache of parsed source maps and error-group re-keyings (see the module docs).
#[derive(Default)]
pub struct Cache {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

impl Cache {
    fn get(&self, key: &MapKey) -> Option<Option<Arc<MappedFile>>> {
        let mut inner = self.inner.lock().ok()?;
        inner.tick += 1;
        let tick = inner.tick;
        let fresh =
            inner.maps.get(key).is_some_and(|e| e.loaded.elapsed() < if e.file.is_some() { MAP_TTL } else { MISS_TTL });
        if !fresh {
            if let Some(old) = inner.maps.remove(key) {
                inner.weight -= old.weight;
            }
            return None;
        }
        let e = inner.maps.get_mut(key)?;
        e.used = tick;
        Some(e.file.clone())
    }

    fn put(&self, key: MapKey, file: Option<Arc<MappedFile>>) {
        let weight = file.as_ref().map_or(0, |f| f.weight()) + key.1.len() + key.2.len();
        if weight > CACHE_BYTES {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        if let Some(old) = inner.maps.remove(&key) {
            inner.weight -= old.weight;
        }
        while !inner.maps.is_empty() && (inner.weight + weight > CACHE_BYTES || inner.maps.len() >= CACHE_ENTRIES) {
            // A scan of at most CACHE_ENTRIES entries, on a miss only.
            let Some(oldest) = inner.maps.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else { break };
            if let Some(old) = inner.maps.remove(&oldest) {
                inner.weight -= old.weight;
            }
        }
        inner.tick += 1;
        let used = inner.tick;
        inner.weight += weight;
        inner.maps.insert(key, CachedMap { file, weight, loaded: Instant::now(), used });
    }

    /// Drops what this instance cached of a release (after an upload to it).
    fn forget_release(&self, project: i64, release: &str) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let gone: Vec<MapKey> = inner.maps.keys().filter(|k| k.0 == project && k.1 == release).cloned().collect();
        for k in gone {
            if let Some(old) = inner.maps.remove(&k) {
                inner.weight -= old.weight;
            }
        }
        inner.groups.retain(|k, _| k.0 != project);
    }

    fn group(&self, project: i64, fingerprint: &str) -> Option<Rekey> {
        let inner = self.inner.lock().ok()?;
        let (rekey, at) = inner.groups.get(&(project, fingerprint.to_owned()))?;
        (at.elapsed() < GROUP_TTL).then(|| rekey.clone())
    }

    fn put_group(&self, project: i64, fingerprint: &str, rekey: Rekey) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.groups.len() >= GROUP_ENTRIES {
            inner.groups.retain(|_, (_, at)| at.elapsed() < GROUP_TTL);
            if inner.groups.len() >= GROUP_ENTRIES {
                inner.groups.clear();
            }
        }
        inner.groups.insert((project, fingerprint.to_owned()), (rekey, Instant::now()));
    }

    /// The parsed map of the file at `url` in `release`, from the cache or the storage.
    pub fn mapped(
        &self,
        storage: &dyn Storage,
        project: i64,
        release: &str,
        url: &str,
    ) -> Result<Option<Arc<MappedFile>>, replay_store::Error> {
        let url = url.split(['?', '#']).next().unwrap_or(url);
        let key = (project, release.to_owned(), url.to_owned());
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let file = load(storage, project, release, url)?.map(Arc::new);
        self.put(key, file.clone());
        Ok(file)
    }
}

/// `url` and its any-origin form `~/path`.
fn candidates(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    if let Ok(u) = url::Url::parse(url)
        && u.has_host()
    {
        out.push(format!("~{}", u.path()));
    }
    out
}

fn first_artifact(
    storage: &dyn Storage,
    project: i64,
    release: &str,
    urls: &[String],
) -> Result<Option<Vec<u8>>, replay_store::Error> {
    for u in urls {
        if let Some(body) = storage.artifact(project, release, u)? {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// Finds and parses the map of `url`: the one its uploaded minified file names
/// (`sourceMappingURL`, resolved against `url`), else `url.map`.
fn load(
    storage: &dyn Storage,
    project: i64,
    release: &str,
    url: &str,
) -> Result<Option<MappedFile>, replay_store::Error> {
    let minified = first_artifact(storage, project, release, &candidates(url))?.and_then(|b| String::from_utf8(b).ok());
    let named = minified
        .as_deref()
        .and_then(symbolicate::source_mapping_url)
        .and_then(|name| url::Url::parse(url).ok()?.join(name).ok())
        .map(String::from);
    let map_url = named.unwrap_or_else(|| format!("{url}.map"));
    let Some(map) = first_artifact(storage, project, release, &candidates(&map_url))? else { return Ok(None) };
    match MappedFile::parse(&map, minified) {
        Ok(f) => Ok(Some(f)),
        Err(e) => {
            tracing::warn!(project, release, url = %map_url, error = %e, "an uploaded source map does not parse");
            Ok(None)
        }
    }
}

// ---- upload ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The release the file belongs to (what the recorder reports with `Replay.setRelease`).
    release: String,
    /// The URL the browser loads the file from, or `~/path` for any origin.
    url: String,
}

#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Project id; the first project when omitted.
    project: Option<i64>,
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

async fn existing_project(state: &AppState, id: i64) -> Result<(), ApiError> {
    let projects = state.blocking(|s| s.projects()).await?;
    if projects.iter().any(|p| p.id == id) { Ok(()) } else { Err(ApiError::not_found("project")) }
}

/// `PUT /api/v1/projects/{id}/sourcemaps?release=R&url=U`: stores one file of a release.
#[utoipa::path(put, path = "/api/v1/projects/{id}/sourcemaps", tag = "sourcemaps",
    params(("id" = i64, Path, description = "Project id."), UploadQuery),
    request_body(content = Vec<u8>, description = "The file: a source map, or the minified file it maps.", content_type = "application/octet-stream"),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Stored; the release's files.", body = ArtifactList),
        (status = 400, description = "No release, a URL that is neither absolute nor `~/path`, or too many files in the release."),
        (status = 401, description = "Not the admin token."),
        (status = 404, description = "No such project."),
        (status = 413, description = "The file is larger than a release file may be."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn upload(
    reader: Reader,
    State(state): State<AppState>,
    Path(project): Path<i64>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<Json<ArtifactList>, ApiError> {
    if reader != Reader::Admin {
        return Err(ApiError::new(Reason::Unauthorized, "uploading source maps needs the admin token"));
    }
    check_names(&q.release, &q.url)?;
    existing_project(&state, project).await?;
    // Read up to one byte past the cap, so that a file over it is told apart from one at it.
    let body = axum::body::to_bytes(body, MAX_ARTIFACT_BYTES + 1).await.map_err(|_| {
        ApiError::new(Reason::BodyTooLarge, format!("a release file holds at most {MAX_ARTIFACT_BYTES} bytes"))
    })?;
    let (release, url) = (q.release.clone(), q.url.clone());
    state.blocking(move |s| s.put_artifact(project, &release, &url, &body)).await.map_err(store_error)?;
    state.symbols.forget_release(project, &q.release);
    tracing::info!(project, release = %q.release, url = %q.url, "release file stored");
    let release = q.release.clone();
    let files = state.blocking(move |s| s.artifacts(project, &release)).await?;
    Ok(Json(ArtifactList { release: q.release, files }))
}

/// `GET /api/v1/projects/{id}/sourcemaps?release=R`: the files of a release.
#[utoipa::path(get, path = "/api/v1/projects/{id}/sourcemaps", tag = "sourcemaps",
    params(("id" = i64, Path, description = "Project id."), ReleaseQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The release's files.", body = ArtifactList),
        (status = 401, description = "No reader: neither a viewer login nor the admin token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list(
    _reader: Reader,
    State(state): State<AppState>,
    Path(project): Path<i64>,
    Query(q): Query<ReleaseQuery>,
) -> Result<Json<ArtifactList>, ApiError> {
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

/// Answer of `GET /api/v1/sessions/{id}/symbolicated`.
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
    let mapped = |url: &str| cache.mapped(storage, project, release, url).ok().flatten();
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

/// `GET /api/v1/sessions/{id}/symbolicated`: the session's error and console stacks and its
/// culprit scripts read through the source maps of its release.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/symbolicated", tag = "sourcemaps",
    params(("id" = String, Path, description = "Session id."), SessionQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Stacks and culprits with their original frames and source context.", body = Symbolicated),
        (status = 404, description = "No such session or project."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 401, description = "No reader: neither a viewer login nor the admin token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn session_symbolicated(
    _reader: Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SessionQuery>,
) -> Result<Json<Symbolicated>, ApiError> {
    if !replay_protocol::codec::is_valid_id(&id) {
        return Err(ApiError::not_found("session"));
    }
    let project = api::project_id(&state, q.project).await?;
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
            let batches: Vec<replay_protocol::Batch> =
                bodies.iter().filter_map(|b| replay_protocol::decode_batch(b, &limits).ok()).collect();
            Ok::<_, crate::Error>(read_session(&st.symbols, s, project, &release, &batches))
        })
        .await?;
    Ok(Json(Symbolicated { release: row.release, stacks, scripts }))
}

// ---- error groups by original frames ----

/// Groups read per answer before merging: merging shrinks the list.
const GROUP_OVERFETCH: usize = 2;

/// The error groups of a project, re-keyed by their original top frame and merged (see the
/// module docs), most recently seen first, at most `limit`.
pub async fn error_groups(state: &AppState, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, ApiError> {
    let st = state.clone();
    let fetch = limit.saturating_mul(GROUP_OVERFETCH).min(1_000);
    Ok(state
        .blocking(move |s| {
            let groups = s.error_groups(project, fetch)?;
            Ok::<_, replay_store::Error>(regroup(&st.symbols, s, project, groups, limit))
        })
        .await?)
}

fn rekey(
    cache: &Cache,
    storage: &dyn Storage,
    project: i64,
    g: &ErrorGroup,
    releases: &mut HashMap<String, String>,
) -> Rekey {
    let raw = symbolicate::parse_frame(&g.frame)?;
    let session = g.recent_sessions.first()?;
    let release = match releases.get(session) {
        Some(r) => r.clone(),
        None => {
            let r = storage.session(project, session).ok().flatten().map(|row| row.release).unwrap_or_default();
            releases.insert(session.clone(), r.clone());
            r
        }
    };
    if release.is_empty() {
        return None;
    }
    let original = cache.mapped(storage, project, &release, &raw.url).ok().flatten()?.frame(&raw)?;
    Some((symbolicate::original_fingerprint(&g.message, &original), original.text()))
}

fn regroup(
    cache: &Cache,
    storage: &dyn Storage,
    project: i64,
    groups: Vec<ErrorGroup>,
    limit: usize,
) -> Vec<ErrorGroup> {
    let mut releases = HashMap::new();
    let mut out: Vec<ErrorGroup> = Vec::with_capacity(groups.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for mut g in groups {
        let key = match cache.group(project, &g.fingerprint) {
            Some(k) => k,
            None => {
                let k = rekey(cache, storage, project, &g, &mut releases);
                cache.put_group(project, &g.fingerprint, k.clone());
                k
            }
        };
        if let Some((fingerprint, frame)) = key {
            g.fingerprint = fingerprint;
            g.frame = frame;
        }
        match at.get(&g.fingerprint) {
            Some(&i) => {
                let m = &mut out[i];
                m.count += g.count;
                m.sessions += g.sessions;
                m.first_ms = m.first_ms.min(g.first_ms);
                let newer = g.last_ms > m.last_ms;
                m.last_ms = m.last_ms.max(g.last_ms);
                let (mut first, second) = if newer {
                    (g.recent_sessions, std::mem::take(&mut m.recent_sessions))
                } else {
                    (std::mem::take(&mut m.recent_sessions), g.recent_sessions)
                };
                for s in second {
                    if !first.contains(&s) {
                        first.push(s);
                    }
                }
                first.truncate(RECENT_ERROR_SESSIONS);
                m.recent_sessions = first;
            }
            None => {
                at.insert(g.fingerprint.clone(), out.len());
                out.push(g);
            }
        }
    }
    out.sort_by(|a, b| b.last_ms.cmp(&a.last_ms));
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_entry_count() {
        let cache = Cache::default();
        for i in 0..(CACHE_ENTRIES + 50) {
            cache.put((1, "r".into(), format!("https://cdn.example/{i}.js")), None);
        }
        let inner = cache.inner.lock().expect("lock");
        assert!(inner.maps.len() <= CACHE_ENTRIES);
    }

    #[test]
    fn any_origin_form_of_a_url() {
        assert_eq!(candidates("https://cdn.example/js/app.js"), ["https://cdn.example/js/app.js", "~/js/app.js"]);
        assert_eq!(candidates("~/app.js"), ["~/app.js"]);
    }
}
