//! Working together on a session: comments at a moment of it, and links to a moment.
//!
//! - `GET /api/v1/projects/{project}/sessions/{id}/comments`: the session's comments by moment
//!   (any reader of the project), with whether the caller may add and delete them; the player
//!   shows them as timeline markers and in its Comments panel.
//! - `POST` on the same path, `{"t": ms from the session's start, "text": "..."}`: a member's or
//!   an owner's ([`Capability::Write`]; `read_only` members and `read` tokens get 403). Plain
//!   text of at most [`MAX_COMMENT_CHARS`] characters (the viewer shows it as text, never as
//!   markup); a session holds at most [`MAX_COMMENTS_PER_SESSION`] (`409 too_many_comments`).
//!   The body must be sent as `application/json` (a form of another site cannot send that
//!   without the browser asking first) and is read up to [`BODY_MAX`] bytes.
//! - `DELETE .../comments/{comment}`: its author's (a member still), or an owner's.
//! - `GET /viewer/p/{project}/sessions/{id}?t=ms`: the share link of a moment. For a reader of
//!   the project it opens the player there, paused at `t`; to anyone else it is 404, as every
//!   route of a project they may not read.
//!
//! The session must be one of the route's project (404 otherwise). Adding and deleting are
//! written to the project's audit log (`comment.add`, `comment.delete`).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use replay_protocol::codec;
use serde::{Deserialize, Serialize};

use crate::access::{Capability, ProjectAccess};
use crate::api::SessionPath;
use crate::audit;
use crate::layout::url_encode;
use crate::reject::Reason;
use crate::storage::{Comment, CommentAdded, MAX_COMMENT_CHARS, MAX_COMMENTS_PER_SESSION};
use crate::{ApiError, AppState};

/// Largest request body of a new comment: the longest text, escaped, and room for the rest.
pub const BODY_MAX: usize = 16 * 1024;
/// Latest moment a comment may name: 31 days into a session (no session is longer).
pub const MAX_T_MS: u64 = 31 * 24 * 3600 * 1000;

/// A comment as the API answers it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommentView {
    pub id: i64,
    /// The moment, in milliseconds from the session's start.
    pub t: u64,
    /// Who wrote it: a user name, or what the token is (`admin-token`, `token:12`).
    pub author: String,
    /// Plain text (never markup).
    pub text: String,
    /// When it was written (Unix ms).
    pub created_ms: u64,
    /// Whether the caller may delete it (its author, or an owner).
    pub can_delete: bool,
}

/// Answer of `GET .../comments`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommentList {
    /// By moment, then as added.
    pub comments: Vec<CommentView>,
    /// Whether the caller may add comments (members and owners).
    pub can_add: bool,
}

/// Body of `POST .../comments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewComment {
    /// The moment, in milliseconds from the session's start.
    pub t: u64,
    /// Plain text, 1 to 2,000 characters.
    pub text: String,
}

/// The path of one comment.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CommentPath {
    /// Project id.
    pub project: i64,
    /// Session id.
    pub id: String,
    /// Comment id.
    pub comment: String,
}

fn may_delete(access: &ProjectAccess, c: &Comment) -> bool {
    access.grant.allows(Capability::Manage)
        || (access.grant.allows(Capability::Write)
            && !c.author_user.is_empty()
            && access.caller.user() == Some(c.author_user.as_str()))
}

fn view(access: &ProjectAccess, c: Comment) -> CommentView {
    let can_delete = may_delete(access, &c);
    CommentView { id: c.id, t: c.t, author: c.author, text: c.text, created_ms: c.created_ms, can_delete }
}

/// 404 unless `id` is a session of the caller's project.
async fn session_of(state: &AppState, access: &ProjectAccess, id: &str) -> Result<(), ApiError> {
    if !codec::is_valid_id(id) {
        return Err(ApiError::not_found("session"));
    }
    let (project, id) = (access.project, id.to_owned());
    match state.blocking(move |s| s.session(project, &id)).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("session")),
    }
}

fn refuse(state: &AppState, reason: Reason, message: impl Into<String>) -> ApiError {
    state.metrics.rejected(reason);
    ApiError::new(reason, message)
}

/// `GET /api/v1/projects/{project}/sessions/{id}/comments`: the session's comments by moment.
#[utoipa::path(get, path = "/api/v1/projects/{project}/sessions/{id}/comments", tag = "comments",
    params(SessionPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The session's comments, by moment.", body = CommentList),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_comments(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
) -> Result<Json<CommentList>, ApiError> {
    session_of(&state, &access, &id).await?;
    let project = access.project;
    let comments = state.blocking(move |s| s.comments(project, &id, MAX_COMMENTS_PER_SESSION)).await?;
    let comments = comments.into_iter().map(|c| view(&access, c)).collect();
    Ok(Json(CommentList { comments, can_add: access.grant.allows(Capability::Write) }))
}

/// `POST /api/v1/projects/{project}/sessions/{id}/comments`: adds a comment at a moment (members
/// and owners).
#[utoipa::path(post, path = "/api/v1/projects/{project}/sessions/{id}/comments", tag = "comments",
    params(SessionPath),
    request_body(content = NewComment, content_type = "application/json"),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The comment as stored.", body = CommentView),
        (status = 400, description = "Not `{t, text}`, a blank text or one over 2,000 characters, or a moment past 31 days (`bad_comment`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller's role or token may not write in the project (`forbidden`)."),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 409, description = "The session holds 1,000 comments already (`too_many_comments`)."),
        (status = 413, description = "The body is over 16 KiB (`body_too_large`)."),
        (status = 415, description = "Not sent as `application/json` (`not_json`)."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn add_comment(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CommentView>, ApiError> {
    access.require(Capability::Write)?;
    session_of(&state, &access, &id).await?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(refuse(&state, Reason::NotJson, "send the comment as Content-Type: application/json"));
    }
    let Ok(bytes) = axum::body::to_bytes(body, BODY_MAX).await else {
        return Err(refuse(&state, Reason::BodyTooLarge, format!("a comment's body is at most {BODY_MAX} bytes")));
    };
    let Ok(NewComment { t, text }) = serde_json::from_slice::<NewComment>(&bytes) else {
        return Err(refuse(
            &state,
            Reason::BadComment,
            "send {\"t\": <ms from the session's start>, \"text\": \"...\"}",
        ));
    };
    if text.trim().is_empty() || text.chars().count() > MAX_COMMENT_CHARS {
        return Err(refuse(&state, Reason::BadComment, format!("a comment holds 1 to {MAX_COMMENT_CHARS} characters")));
    }
    if t > MAX_T_MS {
        return Err(refuse(&state, Reason::BadComment, "the moment is past any session's end"));
    }
    let (author_user, author) = match access.caller.user() {
        Some(user) => (user.to_owned(), user.to_owned()),
        None => (String::new(), access.caller.label()),
    };
    let comment = Comment {
        id: 0,
        project_id: access.project,
        session_id: id.clone(),
        t,
        author_user,
        author,
        text,
        created_ms: replay_core::now_ms(),
    };
    let added = state.blocking(move |s| s.add_comment(&comment)).await?;
    match added {
        CommentAdded::Added(c) => {
            let detail = format!("comment {} at {} ms", c.id, c.t);
            audit::record(&state, access.project, audit::actor(&access.caller), audit::COMMENT_ADD, id, detail).await;
            Ok(Json(view(&access, c)))
        }
        // Deleted meanwhile.
        CommentAdded::NoSuchSession => Err(ApiError::not_found("session")),
        CommentAdded::Full => Err(refuse(
            &state,
            Reason::TooManyComments,
            format!("the session holds {MAX_COMMENTS_PER_SESSION} comments already; delete some first"),
        )),
        CommentAdded::Invalid => {
            Err(refuse(&state, Reason::BadComment, format!("a comment holds 1 to {MAX_COMMENT_CHARS} characters")))
        }
    }
}

/// Answer of a deletion of a comment.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommentDeleted {
    pub deleted: u64,
}

/// `DELETE /api/v1/projects/{project}/sessions/{id}/comments/{comment}`: deletes a comment (its
/// author's, or an owner's).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/sessions/{id}/comments/{comment}", tag = "comments",
    params(CommentPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The comment is deleted.", body = CommentDeleted),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is neither the comment's author (a member) nor an owner (`forbidden`)."),
        (status = 404, description = "No such comment or session, or no such project or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn delete_comment(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(CommentPath { id, comment, .. }): Path<CommentPath>,
) -> Result<Json<CommentDeleted>, ApiError> {
    access.require(Capability::Write)?;
    let comment: i64 = comment.parse().map_err(|_| ApiError::not_found("comment"))?;
    if !codec::is_valid_id(&id) {
        return Err(ApiError::not_found("comment"));
    }
    let (project, session) = (access.project, id.clone());
    let found = state.blocking(move |s| s.comment(project, &session, comment)).await?;
    let found = found.ok_or_else(|| ApiError::not_found("comment"))?;
    if !may_delete(&access, &found) {
        return Err(ApiError::new(Reason::Forbidden, "only its author or an owner of the project deletes a comment"));
    }
    let session = id.clone();
    let deleted = state.blocking(move |s| s.delete_comment(project, &session, comment)).await?;
    if !deleted {
        return Err(ApiError::not_found("comment"));
    }
    let detail = format!("comment {comment} by {}", found.author);
    audit::record(&state, project, audit::actor(&access.caller), audit::COMMENT_DELETE, id, detail).await;
    Ok(Json(CommentDeleted { deleted: 1 }))
}

/// Query of a share link.
#[derive(Debug, Deserialize, Default)]
pub struct ShareQuery {
    t: Option<String>,
}

/// The player's address for session `id` of `project` at `t` (ms from the session's start).
pub fn player_url(project: i64, id: &str, t: Option<u64>) -> String {
    let mut url = format!("/viewer/p/{project}/player.html?session={}", url_encode(id));
    if let Some(t) = t {
        url.push_str(&format!("&t={t}"));
    }
    url
}

/// `GET /viewer/p/{project}/sessions/{id}?t=ms`: a share link of a moment; the player there
/// for a reader of the project, 404 for anyone else and for a session not in the project.
async fn share_link(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
    Query(q): Query<ShareQuery>,
) -> Result<Response, ApiError> {
    session_of(&state, &access, &id).await?;
    let t = q.t.and_then(|t| t.parse::<u64>().ok()).map(|t| t.min(MAX_T_MS));
    Ok(Redirect::to(&player_url(access.project, &id, t)).into_response())
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/viewer/p/{project}/sessions/{id}", get(share_link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_player_url_names_project_session_and_moment() {
        assert_eq!(player_url(2, "a b", Some(1500)), "/viewer/p/2/player.html?session=a%20b&t=1500");
        assert_eq!(player_url(1, "s", None), "/viewer/p/1/player.html?session=s");
    }
}
