//! Staging vs production, side by side: a session compared with sessions of the same page in
//! another environment (`Replay.setEnvironment`), and what differs most.
//!
//! `GET /api/v1/projects/{project}/sessions/{id}/compare?environment=staging` (a reader of the
//! project: [`ProjectAccess`]) finds up to [`MAX_PEERS`] of the
//! newest sessions whose first page has the same path (the host may differ: staging and
//! production rarely share one) in the other environment (by default the most common other
//! environment among sessions of that page), reads each (within the server's read cap; a peer
//! over it is skipped) and profiles it: DOM size at the end, mutation volume (nodes added and
//! removed, attributes and texts changed), requests and the largest responses, long-frame and
//! freeze totals, errors, and the environment facts the index keeps (release, browser, OS,
//! device, connection, flags, viewport). Numbers are compared with the peers' median: a
//! difference is named when the ratio is at least [`RATIO`] and the gap at least the metric's
//! floor, scored by the log of the ratio; a fact is named when no peer shares its value. The
//! answer lists the differences most different first.
//!
//! The cost is bounded: at most 1 + [`MAX_PEERS`] sessions are read, each within the read cap,
//! on the blocking pool.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use replay_protocol::{Batch, EventData, Freeze, Timeline};
use replay_store::{SessionFilter, SessionRow};
use serde::{Deserialize, Serialize};

use crate::access::ProjectAccess;
use crate::api::SessionPath;
use crate::{ApiError, AppState, api};

/// Sessions of the other environment compared with.
pub const MAX_PEERS: usize = 5;
/// Candidate sessions of the page looked at to find the peers.
const CANDIDATES: usize = 200;
/// A number differs when one side is at least this many times the other.
pub const RATIO: f64 = 2.0;
/// Largest responses listed per session.
const LARGEST: usize = 3;
/// Differences answered.
const MAX_DIFFERENCES: usize = 20;

#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// The environment to compare with; the most common other one for this page when omitted.
    environment: Option<String>,
}

/// One response of a session.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Response {
    pub url: String,
    pub bytes: u64,
}

/// What a session did, in the figures sessions are compared by.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub id: String,
    pub environment: String,
    pub release: String,
    pub url: String,
    /// Nodes in the document at the end of the session.
    pub dom_nodes: u64,
    /// Nodes added and removed, attributes and texts changed.
    pub mutations: u64,
    pub requests: u64,
    pub response_bytes: u64,
    pub largest_responses: Vec<Response>,
    pub long_frames: u64,
    pub long_frame_ms: u64,
    pub freezes: u64,
    pub freeze_ms: u64,
    pub errors: u64,
    /// Environment facts (release, browser, os, pixel ratio, memory, cpu cores, viewport,
    /// `flag name`, ...).
    pub facts: BTreeMap<String, String>,
}

/// One thing that differs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Difference {
    /// `dom_nodes`, `mutations`, `largest_response`, `response_bytes`, `long_frame_ms`,
    /// `freeze_ms`, `freezes`, `errors`, or `fact:NAME`.
    pub name: String,
    /// `DOM size`, `Freeze time`, `release`, ...
    pub label: String,
    pub this: String,
    /// The peers' median (numbers) or their values (facts).
    pub others: String,
    /// How much it differs: the log of the ratio for numbers, 0.5 for facts.
    pub score: f64,
}

/// Answer of `GET /api/v1/sessions/{id}/compare`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    /// The page's path both sides share.
    pub path: String,
    pub environment: String,
    /// The environment compared with (empty when there is none).
    pub other_environment: String,
    pub session: Profile,
    pub peers: Vec<Profile>,
    /// Most different first.
    pub differences: Vec<Difference>,
}

fn path_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.path().to_owned(),
        Err(_) => url.split(['?', '#']).next().unwrap_or(url).to_owned(),
    }
}

/// The profile of a session from its decoded batches.
pub fn profile(row: &SessionRow, batches: Vec<Batch>) -> Profile {
    let mut p = Profile {
        id: row.id.clone(),
        environment: row.environment.clone(),
        release: row.release.clone(),
        url: row.url.clone(),
        ..Profile::default()
    };
    let mut facts: Vec<(String, String)> = Vec::new();
    let mut responses: Vec<Response> = Vec::new();
    for b in &batches {
        let summary = replay_core::summarize(b);
        for (name, value) in summary.facts {
            replay_core::diagnostics::push_fact(&mut facts, &name, &value);
        }
        p.errors += summary.errors;
        for e in &b.events {
            match &e.data {
                EventData::Mutation(m) => {
                    let added: usize = m.adds.iter().map(|a| a.nodes.len()).sum();
                    p.mutations += (added + m.removes.len() + m.attrs.len() + m.texts.len()) as u64;
                }
                EventData::Network(n) => {
                    p.requests += 1;
                    p.response_bytes += n.response_size;
                    if responses.len() < LARGEST || responses.last().is_some_and(|r| r.bytes < n.response_size) {
                        responses.push(Response { url: n.url.chars().take(300).collect(), bytes: n.response_size });
                        responses.sort_by_key(|r| std::cmp::Reverse(r.bytes));
                        responses.truncate(LARGEST);
                    }
                }
                EventData::LongFrame(l) => {
                    p.long_frames += 1;
                    p.long_frame_ms += u64::from(l.duration);
                }
                EventData::Freeze(Freeze::Started { .. }) => p.freezes += 1,
                EventData::Freeze(Freeze::Ended { duration, .. }) => p.freeze_ms += u64::from(*duration),
                _ => {}
            }
        }
    }
    p.largest_responses = responses;
    p.facts = facts.into_iter().filter(|(n, _)| n != "environment").collect();
    p.dom_nodes = Timeline::from_batches(batches).dom_at(None).len() as u64;
    p
}

/// (name, label, floor): a number differs only when the gap is at least the floor.
const METRICS: &[(&str, &str, u64)] = &[
    ("dom_nodes", "DOM size", 200),
    ("mutations", "Mutation volume", 500),
    ("largest_response", "Largest response", 100_000),
    ("response_bytes", "Response bytes", 250_000),
    ("long_frame_ms", "Long-task time", 200),
    ("freeze_ms", "Freeze time", 500),
    ("freezes", "Freezes", 1),
    ("errors", "Errors", 1),
];

fn metric(p: &Profile, name: &str) -> u64 {
    match name {
        "dom_nodes" => p.dom_nodes,
        "mutations" => p.mutations,
        "largest_response" => p.largest_responses.first().map_or(0, |r| r.bytes),
        "response_bytes" => p.response_bytes,
        "long_frame_ms" => p.long_frame_ms,
        "freeze_ms" => p.freeze_ms,
        "freezes" => p.freezes,
        "errors" => p.errors,
        _ => 0,
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// What differs between `this` and `peers`, most different first.
pub fn differences(this: &Profile, peers: &[Profile]) -> Vec<Difference> {
    if peers.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for &(name, label, floor) in METRICS {
        let mine = metric(this, name);
        let theirs = median(peers.iter().map(|p| metric(p, name)).collect());
        let ratio = (mine as f64 + 1.0) / (theirs as f64 + 1.0);
        if mine.abs_diff(theirs) >= floor && (ratio >= RATIO || ratio <= 1.0 / RATIO) {
            out.push(Difference {
                name: name.to_owned(),
                label: label.to_owned(),
                this: mine.to_string(),
                others: theirs.to_string(),
                score: ratio.ln().abs(),
            });
        }
    }
    let names: std::collections::BTreeSet<&String> =
        this.facts.keys().chain(peers.iter().flat_map(|p| p.facts.keys())).collect();
    for name in names {
        let mine = this.facts.get(name).map_or("", String::as_str);
        let theirs: std::collections::BTreeSet<&str> =
            peers.iter().map(|p| p.facts.get(name).map_or("", String::as_str)).collect();
        if !theirs.contains(mine) {
            out.push(Difference {
                name: format!("fact:{name}"),
                label: name.clone(),
                this: if mine.is_empty() { "unknown".into() } else { mine.to_owned() },
                others: theirs.iter().map(|v| if v.is_empty() { "unknown" } else { v }).collect::<Vec<_>>().join(", "),
                score: 0.5,
            });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(MAX_DIFFERENCES);
    out
}

async fn read_profile(state: &AppState, project: i64, row: SessionRow) -> Result<Profile, ApiError> {
    let bodies = api::load_batches(state, project, row.id.clone()).await?;
    let limits = state.config.limits;
    tokio::task::spawn_blocking(move || {
        let batches: Vec<Batch> = api::decode_stored(&bodies, &limits)?;
        Ok(profile(&row, batches))
    })
    .await
    .map_err(crate::Error::from)?
}

/// `GET /api/v1/projects/{project}/sessions/{id}/compare`: the session beside sessions of the same page in
/// another environment, and what differs most.
#[utoipa::path(get, path = "/api/v1/projects/{project}/sessions/{id}/compare", tag = "sessions",
    params(SessionPath, CompareQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The session's profile, its peers' and what differs most.", body = Comparison),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn compare(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
    Query(q): Query<CompareQuery>,
) -> Result<Json<Comparison>, ApiError> {
    if !replay_protocol::codec::is_valid_id(&id) {
        return Err(ApiError::not_found("session"));
    }
    let project = access.project;
    let session = id.clone();
    let row =
        state.blocking(move |s| s.session(project, &session)).await?.ok_or_else(|| ApiError::not_found("session"))?;
    let path = path_of(&row.url);
    let filter = SessionFilter { url_contains: Some(path.clone()), ..SessionFilter::default() };
    let candidates = state.blocking(move |s| s.find_sessions(project, &filter, CANDIDATES, 0)).await?;
    let same_page: Vec<SessionRow> =
        candidates.into_iter().filter(|r| r.id != row.id && path_of(&r.url) == path).collect();
    let other = match q.environment.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()) {
        Some(e) => e,
        None => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for r in same_page.iter().filter(|r| r.environment != row.environment && !r.environment.is_empty()) {
                *counts.entry(r.environment.as_str()).or_default() += 1;
            }
            counts.into_iter().max_by_key(|(_, n)| *n).map(|(e, _)| e.to_owned()).unwrap_or_default()
        }
    };
    let this = read_profile(&state, project, row.clone()).await?;
    let mut peers = Vec::new();
    for r in same_page.into_iter().filter(|r| !other.is_empty() && r.environment == other).take(MAX_PEERS) {
        match read_profile(&state, project, r).await {
            Ok(p) => peers.push(p),
            // A peer too large to read is left out; the comparison stands on the others.
            Err(e) => tracing::debug!(reason = ?e.reason, "a peer session was not compared"),
        }
    }
    let differences = differences(&this, &peers);
    Ok(Json(Comparison {
        path,
        environment: row.environment,
        other_environment: other,
        session: this,
        peers,
        differences,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(dom: u64, freeze_ms: u64, release: &str) -> Profile {
        let mut p = Profile { dom_nodes: dom, freeze_ms, freezes: u64::from(freeze_ms > 0), ..Profile::default() };
        p.facts.insert("release".into(), release.into());
        p.facts.insert("browser".into(), "Chrome 140".into());
        p
    }

    #[test]
    fn the_biggest_ratio_comes_first_and_shared_facts_are_not_named() {
        let d = differences(&p(200_000, 2_400, "2.0"), &[p(300, 0, "1.9"), p(320, 0, "1.9")]);
        let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["freeze_ms", "dom_nodes", "freezes", "fact:release"], "{d:?}");
        assert_eq!((d[1].this.as_str(), d[1].others.as_str()), ("200000", "310"));
    }

    #[test]
    fn small_gaps_are_not_differences() {
        assert!(differences(&p(350, 0, "1"), &[p(300, 0, "1")]).is_empty());
        assert!(differences(&p(350, 0, "1"), &[]).is_empty());
    }
}
