//! The storage conformance suite: every [`Storage`] engine must pass [`run`]. Also the blocking
//! [`StorageExt::put_batch_blocking`] that tests store batches with.
//!
//! Each check starts from a fresh, empty store made by the caller's factory, so engines with
//! external state (PostgreSQL, object stores) can hand out isolated namespaces.
//!
//! Compiled for this crate's own tests and with the `testsuite` feature (which the release
//! server does not enable).

use crate::{
    AuditEntry, BatchBody, BatchSummary, Comment, CommentAdded, ENVIRONMENT_SAMPLE, Error, ErrorSighting,
    FrustrationCounts, ProjectQuota, RangeRequest, SessionFilter, Storage, Stored, Unsettled,
};
use replay_core::{SearchTerm, TermKind};

mod clickmap;

/// Blocking forms of [`Storage::put_batch`], for tests and tools: they wait for the outcome
/// on the calling thread (never call them on an async worker).
pub trait StorageExt: Storage {
    /// Stores `body` as given and waits until it is durable (or refused).
    fn put_body_blocking(&self, project: i64, summary: &BatchSummary, body: &BatchBody) -> Result<Stored, Error> {
        let (reply, outcome) = std::sync::mpsc::sync_channel(1);
        self.put_batch(
            project,
            summary.clone(),
            body.clone(),
            Box::new(move |r| {
                let _ = reply.send(r);
            }),
        );
        outcome.recv().map_err(|_| Error::Stopped("the storage engine"))?
    }

    /// Stores an uncompressed MessagePack body and waits until it is durable (or refused).
    fn put_batch_blocking(&self, project: i64, summary: &BatchSummary, raw: &[u8]) -> Result<Stored, Error> {
        self.put_body_blocking(project, summary, &BatchBody { bytes: raw.to_vec().into(), gzip: false })
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}

fn summary(session: &str, page: &str, seq: u32, start_ms: u64) -> BatchSummary {
    BatchSummary {
        session: session.into(),
        page: page.into(),
        seq,
        start_ms,
        end_ms: start_ms + 100,
        received_ms: start_ms + 150,
        url: Some(format!("https://shop.test/{session}")),
        user_agent: Some("agent".into()),
        events: 3,
        clicks: 1,
        ..BatchSummary::default()
    }
}

/// Runs every check against fresh stores from `make`. Panics with the failing check's name.
pub fn run<S: Storage>(make: impl Fn() -> S) {
    members_have_roles_per_project_and_disabled_users_lose_their_sign_ins(&make());
    invitations_are_used_once_and_expire(&make());
    api_tokens_are_found_by_digest_noted_when_used_and_revoked(&make());
    resent_batch_is_stored_once(&make());
    a_freeze_marker_and_a_real_batch_of_one_number_are_both_kept(&make());
    a_freeze_marker_and_a_real_batch_of_one_number_sent_at_once_are_both_kept(&make());
    a_marker_stored_before_markers_were_keyed_apart_is_not_stored_again(&make());
    concurrent_uploads_and_resends_count_once(&make());
    batches_come_back_in_replay_order(&make());
    gzip_bodies_come_back_decoded(&make());
    projects_are_isolated(&make());
    index_aggregates_and_filters(&make());
    retention_deletes_old_sessions_with_their_batches(&make());
    settings_users_and_logins_round_trip(&make());
    freezes_are_indexed_and_an_unended_one_is_marked_never_recovered(&make());
    errors_are_grouped_by_fingerprint_across_sessions(&make());
    environments_are_compared_with_other_sessions(&make());
    range_reads_read_only_the_bodies_they_choose(&make());
    range_reads_stop_at_what_bodies_decompress_to(&make());
    a_session_past_its_byte_cap_is_refused_and_keeps_what_it_has(&make());
    usage_since_counts_sessions_started_and_bytes_received(&make());
    ingest_keys_rotate_with_a_grace_period_and_are_revoked_at_once(&make());
    a_project_keeps_its_own_quotas(&make());
    a_session_keeps_a_bounded_number_of_facts(&make());
    release_artifacts_are_kept_per_project_and_release_and_capped(&make());
    a_deleted_session_leaves_nothing_and_stays_deleted(&make());
    erasing_a_user_deletes_every_session_of_theirs_and_only_theirs(&make());
    the_audit_log_is_per_project_newest_first_and_pruned(&make());
    projects_are_renamed_configured_and_deleted_with_everything_they_hold(&make());
    a_deleted_project_s_id_is_never_given_to_a_new_project(&make());
    idle_sessions_get_their_frustration_judged_once_and_again_after_a_new_batch(&make());
    comments_are_kept_per_session_by_moment_and_capped(&make());
    retention_deletes_comments_with_their_sessions(&make());
    sessions_are_found_by_what_happened(&make());
    a_session_keeps_a_bounded_number_of_search_terms(&make());
    single_sign_on_identities_link_to_one_account_each(&make());
    clickmap::clicks_and_scroll_depths_are_aggregated_per_page_and_day_once(&make());
    clickmap::click_maps_are_bounded_and_count_what_they_drop(&make());
    clickmap::one_page_view_counts_at_most_its_cap_of_clicks(&make());
    clickmap::click_maps_forget_sessions_deleted_and_go_with_their_project_and_days(&make());
}

fn idle_sessions_get_their_frustration_judged_once_and_again_after_a_new_batch(db: &impl Storage) {
    let p = db.create_project("shop").expect("p");
    let other = db.create_project("blog").expect("other");
    let mut first = summary("s", "p", 0, 1_000);
    first.dead_clicks = 1;
    db.put_batch_blocking(p.id, &first, b"0").expect("put");
    db.put_batch_blocking(p.id, &summary("s", "p", 1, 2_000), b"1").expect("put");
    db.put_batch_blocking(other.id, &summary("s", "p", 0, 9_000), b"0").expect("put");
    let listed = |cutoff| db.unsettled_sessions(cutoff, 10).expect("list");
    assert_eq!(listed(2_000), [], "received after the cutoff: still going");
    let want = Unsettled { project: p.id, session: "s".into(), batches: 2 };
    assert_eq!(listed(5_000), std::slice::from_ref(&want));
    assert_eq!(db.unsettled_sessions(20_000, 1).expect("list"), [want], "bounded, idle longest first");
    // A batch that arrived after the listing: the judgement is stale and not written.
    db.put_batch_blocking(p.id, &summary("s", "p", 2, 3_000), b"2").expect("put");
    let counts = FrustrationCounts { dead_clicks: 0, error_clicks: 2, quick_backs: 1 };
    assert!(!db.settle_frustration(p.id, "s", 2, Some(counts)).expect("settle"));
    assert_eq!(db.session(p.id, "s").expect("q").expect("row").dead_clicks, 1, "untouched");
    assert!(db.settle_frustration(p.id, "s", 3, Some(counts)).expect("settle"));
    let row = db.session(p.id, "s").expect("q").expect("row");
    assert_eq!((row.dead_clicks, row.error_clicks, row.quick_backs), (0, 2, 1), "replaced, not added");
    assert_eq!(db.session(other.id, "s").expect("q").expect("row").error_clicks, 0, "projects are apart");
    let ids = |f: SessionFilter| -> Vec<String> {
        db.find_sessions(p.id, &f, 10, 0).expect("find").into_iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(SessionFilter { has_error_click: true, ..Default::default() }), ["s"]);
    assert_eq!(ids(SessionFilter { has_dead_click: true, ..Default::default() }), Vec::<String>::new());
    assert_eq!(listed(20_000).iter().map(|u| u.project).collect::<Vec<_>>(), [other.id], "settled");
    // Another batch: summed on top until the session is judged again.
    let mut late = summary("s", "p", 3, 4_000);
    late.dead_clicks = 1;
    db.put_batch_blocking(p.id, &late, b"3").expect("put");
    assert_eq!(db.session(p.id, "s").expect("q").expect("row").dead_clicks, 1);
    assert_eq!(listed(20_000).len(), 2);
    // One that cannot be judged is marked settled with its counts kept, so it is not retried.
    assert!(db.settle_frustration(p.id, "s", 4, None).expect("settle"));
    assert_eq!(db.session(p.id, "s").expect("q").expect("row").dead_clicks, 1);
    assert_eq!(listed(20_000).len(), 1);
}

fn term(kind: TermKind, text: &str, at_ms: u64) -> SearchTerm {
    SearchTerm { kind, text: text.into(), first_ms: at_ms, last_ms: at_ms }
}

/// Ids of the sessions `f` finds, newest first.
fn found(db: &impl Storage, project: i64, f: &SessionFilter) -> Vec<String> {
    db.find_sessions(project, f, 100, 0).expect("find").into_iter().map(|r| r.id).collect()
}

fn sessions_are_found_by_what_happened(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let other = db.create_project("other").expect("other");
    let mut a = summary("a", "p", 0, 1_000);
    a.search_terms = vec![
        term(TermKind::Click, "pay now", 1_010),
        term(TermKind::FailedRequest, "https://shop.test/api/cart?id=1", 1_020),
        term(TermKind::Console, "boom: cart failed", 1_030),
        term(TermKind::Page, "https://shop.test/list", 1_000),
    ];
    db.put_batch_blocking(p.id, &a, b"a0").expect("put");
    // Page B comes in a later batch (and page view) of the same session.
    let mut a2 = summary("a", "p2", 0, 3_000);
    a2.search_terms = vec![term(TermKind::Page, "https://shop.test/checkout", 3_000)];
    db.put_batch_blocking(p.id, &a2, b"a1").expect("put");
    let mut b = summary("b", "p", 0, 2_000);
    b.search_terms = vec![
        term(TermKind::Click, "cancel", 2_010),
        term(TermKind::Console, "all good", 2_020),
        term(TermKind::Page, "https://shop.test/checkout", 2_000),
        term(TermKind::Page, "https://shop.test/list", 2_500),
    ];
    db.put_batch_blocking(p.id, &b, b"b").expect("put");
    db.put_batch_blocking(p.id, &summary("c", "p", 0, 2_500), b"c").expect("put");
    let mut elsewhere = summary("x", "p", 0, 2_000);
    elsewhere.search_terms = vec![term(TermKind::Click, "pay now", 2_010)];
    db.put_batch_blocking(other.id, &elsewhere, b"x").expect("put");

    let by = |set: &dyn Fn(&mut SessionFilter)| {
        let mut f = SessionFilter::default();
        set(&mut f);
        found(db, p.id, &f)
    };
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(by(&|f| f.clicked = s("Pay")), ["a"], "a substring, any case");
    assert_eq!(by(&|f| f.clicked = s("pay*")), ["a"], "with * the whole text");
    assert!(by(&|f| f.clicked = s("*pay")).is_empty(), "anchored at the end");
    assert!(by(&|f| f.clicked = s("pay%")).is_empty(), "% is not a wildcard");
    assert!(by(&|f| f.clicked = s("_ay")).is_empty(), "_ is not a wildcard");
    assert_eq!(by(&|f| f.clicked = s("c")), ["b"]);
    assert_eq!(by(&|f| f.failed_request = s("/api/cart")), ["a"]);
    assert_eq!(by(&|f| f.failed_request = s("https://shop.test/api/*")), ["a"]);
    assert!(by(&|f| f.failed_request = s("/list")).is_empty(), "pages are not failed requests");
    assert_eq!(by(&|f| f.console = s("cart failed")), ["a"]);
    assert_eq!(by(&|f| f.visited = s("/checkout")), ["b", "a"]);
    assert_eq!(
        by(&|f| {
            f.visited = s("/list");
            f.then_visited = s("/checkout");
        }),
        ["a"],
        "list then checkout"
    );
    assert_eq!(
        by(&|f| {
            f.visited = s("/checkout");
            f.then_visited = s("/list");
        }),
        ["b"],
        "checkout then list"
    );
    assert_eq!(by(&|f| f.then_visited = s("/list")), ["b", "a"], "B alone: a page shown");
    assert_eq!(
        by(&|f| {
            f.clicked = s("pay");
            f.console = s("all good");
        }),
        Vec::<String>::new(),
        "filters combine"
    );
    // Deleting a session takes its terms: the id, used again, has none of them.
    assert_eq!(db.delete_sessions(p.id, &["a".into()]).expect("delete"), 1);
    db.delete_sessions_before(replay_core::now_ms() + 1).expect("retention forgets the deleted id");
    db.put_batch_blocking(p.id, &summary("a", "p", 0, 5_000), b"again").expect("put");
    for set in [
        &(|f: &mut SessionFilter| f.clicked = Some("pay".into())) as &dyn Fn(&mut SessionFilter),
        &|f| f.failed_request = Some("cart".into()),
        &|f| f.console = Some("boom".into()),
        &|f| f.visited = Some("/list".into()),
    ] {
        assert!(by(set).is_empty(), "a deleted session's terms are gone");
    }
    // Retention takes them too.
    let mut old = summary("old", "p", 0, 1_000);
    old.search_terms = vec![term(TermKind::Click, "vintage", 1_010)];
    db.put_batch_blocking(other.id, &old, b"old").expect("put");
    db.delete_sessions_before(replay_core::now_ms() + 1).expect("retention");
    db.put_batch_blocking(other.id, &summary("old", "p", 0, 1_000), b"old").expect("put");
    assert!(
        found(db, other.id, &SessionFilter { clicked: Some("vintage".into()), ..SessionFilter::default() }).is_empty()
    );
}

fn a_session_keeps_a_bounded_number_of_search_terms(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let cap = crate::search::MAX_TERMS_PER_KIND;
    for (seq, range) in [(0, 0..150), (1, 150..300)] {
        let mut s = summary("busy", "p", seq, 1_000 + u64::from(seq));
        s.search_terms = range.map(|i| term(TermKind::Console, &format!("message {i:03}"), 1_000)).collect();
        s.search_terms.push(term(TermKind::Click, &format!("button {seq}"), 1_000));
        db.put_batch_blocking(p.id, &s, b"b").expect("put");
    }
    let console = |text: &str| SessionFilter { console: Some(text.into()), ..SessionFilter::default() };
    assert_eq!(found(db, p.id, &console("message 000")), ["busy"]);
    assert_eq!(found(db, p.id, &console(&format!("message {:03}", cap - 1))), ["busy"]);
    assert!(found(db, p.id, &console(&format!("message {cap:03}"))).is_empty(), "past the cap: dropped");
    // The cap is per kind: the second batch's click is kept.
    let clicked = SessionFilter { clicked: Some("button 1".into()), ..SessionFilter::default() };
    assert_eq!(found(db, p.id, &clicked), ["busy"]);
}

fn release_artifacts_are_kept_per_project_and_release_and_capped(db: &impl Storage) {
    let a = db.create_project("a").expect("project").id;
    let b = db.create_project("b").expect("project").id;
    let url = "https://cdn.example/app.js.map";
    db.put_artifact(a, "1.0", url, b"{\"v\":1}").expect("put");
    db.put_artifact(a, "1.0", url, b"{\"v\":2}").expect("replace");
    db.put_artifact(a, "1.0", "~/app.js", b"x()").expect("put");
    assert_eq!(db.artifact(a, "1.0", url).expect("get").as_deref(), Some(&b"{\"v\":2}"[..]), "the latest upload wins");
    assert_eq!(db.artifact(a, "1.1", url).expect("get"), None, "releases are apart");
    assert_eq!(db.artifact(b, "1.0", url).expect("get"), None, "projects are apart");
    let list = db.artifacts(a, "1.0").expect("list");
    assert_eq!(list.iter().map(|x| (x.url.as_str(), x.bytes)).collect::<Vec<_>>(), [(url, 7), ("~/app.js", 3)]);
    let big = vec![b' '; crate::MAX_ARTIFACT_BYTES + 1];
    assert!(matches!(
        db.put_artifact(a, "1.0", "https://cdn.example/big.map", &big),
        Err(Error::ArtifactTooLarge { .. })
    ));
    assert_eq!(db.artifacts(a, "1.0").expect("list").len(), 2, "a refused file stores nothing");
}

/// What outlives a project under its id (its audit trail, the server's caches keyed by project)
/// must never become another project's: SQLite gave the newest project's id again once it was
/// deleted, with the deleted project's audit trail readable by the new one's owners.
fn a_deleted_project_s_id_is_never_given_to_a_new_project(db: &impl Storage) {
    let first = db.create_project("one").expect("p");
    let newest = db.create_project("two").expect("p");
    assert!(db.delete_project(newest.id).expect("delete"));
    let next = db.create_project("three").expect("p");
    assert!(next.id > newest.id, "{} after deleting {}", next.id, newest.id);
    assert!(db.delete_project(next.id).expect("delete"));
    assert!(db.delete_project(first.id).expect("delete"));
    let last = db.create_project("four").expect("p");
    assert!(last.id > next.id, "{} after deleting {}", last.id, next.id);
}

fn projects_are_renamed_configured_and_deleted_with_everything_they_hold(db: &impl Storage) {
    let p = db.create_project("shop").expect("p");
    let other = db.create_project("blog").expect("other");
    assert!(db.rename_project(p.id, "shop (prod)").expect("rename"));
    assert!(!db.rename_project(999, "x").expect("rename"), "no such project");
    assert!(db.rename_project(other.id, "shop (prod)").is_err(), "names are unique");
    let names: Vec<String> = db.projects().expect("list").into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["shop (prod)", "blog"]);
    assert_eq!(db.project_by_key(&p.ingest_key).expect("key").expect("project").name, "shop (prod)");

    assert_eq!(db.project_settings(p.id).expect("settings").as_deref(), Some("{}"), "never set");
    assert!(db.set_project_settings(p.id, r#"{"mask_all_text":true}"#).expect("set"));
    assert_eq!(db.project_settings(p.id).expect("settings").as_deref(), Some(r#"{"mask_all_text":true}"#));
    assert_eq!(db.project_settings(other.id).expect("settings").as_deref(), Some("{}"));
    assert!(db.project_settings(999).expect("settings").is_none());
    assert!(!db.set_project_settings(999, "{}").expect("set"));

    let mut s = summary("s", "p", 0, 1_000);
    s.error_sightings =
        vec![ErrorSighting { fingerprint: "f".into(), message: "m".into(), frame: "f".into(), count: 1, at_ms: 1_000 }];
    s.facts = vec![("browser".into(), "Firefox".into())];
    db.put_batch_blocking(p.id, &s, b"1").expect("put");
    db.put_batch_blocking(other.id, &s, b"1").expect("put");
    db.delete_sessions(p.id, &["old".into()]).expect("a remembered deletion");
    let rotated = db.rotate_key(p.id, 60_000).expect("rotate");
    db.put_artifact(p.id, "1.0", "~/app.js.map", b"{}").expect("a release file");
    db.put_artifact(other.id, "1.0", "~/app.js.map", b"{}").expect("a release file");
    assert!(matches!(db.add_comment(&comment(p.id, "s", 1, "c")), Ok(CommentAdded::Added(_))));
    assert!(matches!(db.add_comment(&comment(other.id, "s", 1, "c")), Ok(CommentAdded::Added(_))));

    assert!(db.delete_project(p.id).expect("delete"));
    assert_eq!(db.comments(other.id, "s", 10).expect("comments").len(), 1, "the other project's comment stays");
    assert!(db.artifacts(p.id, "1.0").expect("list").is_empty(), "its release files go with it");
    assert_eq!(db.artifacts(other.id, "1.0").expect("list").len(), 1, "others' stay");
    assert!(!db.delete_project(p.id).expect("again"), "gone already");
    leaves_nothing(db, p.id, "s");
    assert!(db.error_groups(p.id, 10).expect("groups").is_empty());
    assert!(db.ingest_keys(p.id).expect("keys").is_empty());
    for key in [&p.ingest_key, &rotated] {
        assert!(db.project_by_key(key).expect("key").is_none(), "its keys are refused");
    }
    assert_eq!(db.projects().expect("list").into_iter().map(|p| p.id).collect::<Vec<_>>(), vec![other.id]);
    assert_eq!(db.batch_count().expect("count"), 1, "only the other project's batch is left");
    assert_eq!(db.batches(other.id, "s").expect("other").len(), 1);
    assert_eq!(db.error_groups(other.id, 10).expect("groups").len(), 1);
    // The name is free again.
    db.create_project("shop (prod)").expect("a new project of the name");
}

/// Everything a reader could reach of a session, for the deletion checks.
fn leaves_nothing(db: &impl Storage, project: i64, id: &str) {
    assert!(db.session(project, id).expect("q").is_none(), "{id}: index row");
    assert!(db.batches(project, id).expect("batches").is_empty(), "{id}: bodies");
    assert!(db.batch_keys(project, id).expect("keys").is_empty(), "{id}: keys");
    assert_eq!(db.session_stored_bytes(project, id).expect("bytes"), 0, "{id}: stored bytes");
    assert_eq!(db.batch_range(project, id, &RangeRequest::whole(u64::MAX)).expect("range").total, 0, "{id}: range");
    assert!(db.compare_environment(project, id, 10).expect("facts").is_empty(), "{id}: facts");
    let listed = db.sessions(project, 100, 0).expect("list");
    assert!(listed.iter().all(|r| r.id != id), "{id}: listed");
    let groups = db.error_groups(project, 100).expect("groups");
    assert!(groups.iter().all(|g| !g.recent_sessions.iter().any(|s| s == id)), "{id}: error sightings");
    assert!(db.comments(project, id, 100).expect("comments").is_empty(), "{id}: comments");
}

fn a_deleted_session_leaves_nothing_and_stays_deleted(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let other = db.create_project("other").expect("other");
    db.limit_session_bytes(Some(1_000_000));
    let sighting = |at_ms: u64| ErrorSighting {
        fingerprint: "f1".into(),
        message: "boom".into(),
        frame: "pay (app.js:1:1)".into(),
        count: 2,
        at_ms,
    };
    for (session, start) in [("gone", 1_000), ("kept", 2_000)] {
        let mut first = summary(session, "p", 0, start);
        first.error_sightings = vec![sighting(start + 10)];
        first.facts = vec![("browser".into(), "Firefox".into())];
        db.put_batch_blocking(p.id, &first, b"1").expect("put");
        db.put_batch_blocking(p.id, &summary(session, "p2", 0, start + 500), b"2").expect("put");
    }
    // The same session id in another project is another session.
    db.put_batch_blocking(other.id, &summary("gone", "p", 0, 1_000), b"o").expect("put");
    let before = db.batch_count().expect("count");
    for (project, session) in [(p.id, "gone"), (p.id, "kept"), (other.id, "gone")] {
        assert!(matches!(db.add_comment(&comment(project, session, 10, "look")), Ok(CommentAdded::Added(_))));
    }

    assert_eq!(db.delete_sessions(p.id, &["gone".into()]).expect("delete"), 1);
    leaves_nothing(db, p.id, "gone");
    assert_eq!(db.batch_count().expect("count"), before - 2, "both bodies are gone");
    // The other session and the other project's session keep everything.
    assert_eq!(db.batches(p.id, "kept").expect("kept").len(), 2);
    assert_eq!(db.compare_environment(p.id, "kept", 10).expect("facts").len(), 1);
    let groups = db.error_groups(p.id, 10).expect("groups");
    assert_eq!((groups.len(), groups[0].count, groups[0].sessions), (1, 2, 1), "the deleted occurrences are gone");
    assert_eq!(db.batches(other.id, "gone").expect("other").len(), 1);
    assert_eq!(db.comments(p.id, "kept", 10).expect("comments").len(), 1, "the other session's comment stays");
    assert_eq!(db.comments(other.id, "gone", 10).expect("comments").len(), 1, "the other project's too");
    assert_eq!(
        db.add_comment(&comment(p.id, "gone", 20, "late")).expect("add"),
        CommentAdded::NoSuchSession,
        "a deleted session takes no comment"
    );

    // A recorder still running (or resending) cannot bring it back, whatever page or seq.
    for (page, seq) in [("p", 0), ("p", 1), ("p3", 0)] {
        let again = db.put_batch_blocking(p.id, &summary("gone", page, seq, 9_000), b"again");
        assert!(matches!(again, Err(Error::SessionDeleted)), "{page}/{seq}: {again:?}");
    }
    leaves_nothing(db, p.id, "gone");
    // Deleting what is not there deletes nothing.
    assert_eq!(db.delete_sessions(p.id, &["gone".into(), "never".into()]).expect("delete"), 0);
    assert_eq!(db.delete_sessions(other.id, &[]).expect("nothing"), 0);
    assert_eq!(db.put_batch_blocking(other.id, &summary("gone", "p", 1, 1_100), b"o").expect("put"), Stored::New);
    // Retention forgets deleted ids with the sessions of their age: the id is usable again.
    db.delete_sessions_before(replay_core::now_ms() + 1).expect("retention");
    assert_eq!(db.put_batch_blocking(p.id, &summary("gone", "p", 0, 9_000), b"new").expect("put"), Stored::New);
}

fn erasing_a_user_deletes_every_session_of_theirs_and_only_theirs(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let other = db.create_project("other").expect("other");
    let identified = |session: &str, user: Option<&str>, start: u64| {
        let mut s = summary(session, "p", 0, start);
        s.user = user.map(Into::into);
        s
    };
    // Identified in a later batch: the index's latest user is what counts.
    db.put_batch_blocking(p.id, &summary("ada-1", "p", 0, 1_000), b"1").expect("put");
    let mut later = summary("ada-1", "p", 1, 1_100);
    later.user = Some("ada@example.com".into());
    db.put_batch_blocking(p.id, &later, b"2").expect("put");
    for i in 0..(crate::ERASE_ROUND as u64 + 3) {
        db.put_batch_blocking(p.id, &identified(&format!("ada-{}", i + 2), Some("ada@example.com"), 2_000 + i), b"a")
            .expect("put");
    }
    db.put_batch_blocking(p.id, &identified("bob", Some("bob@example.com"), 3_000), b"b").expect("put");
    db.put_batch_blocking(p.id, &identified("anon", None, 4_000), b"n").expect("put");
    db.put_batch_blocking(other.id, &identified("ada-other", Some("ada@example.com"), 5_000), b"o").expect("put");
    // Ada signed in, then Bob on the same tab: the index's user is Bob; Ada's sign-in is erased
    // with the session all the same.
    let mut first = identified("shared", Some("ada@example.com"), 6_000);
    first.search_terms = vec![term(TermKind::User, "ada@example.com", 6_000)];
    db.put_batch_blocking(p.id, &first, b"s0").expect("put");
    let mut second = summary("shared", "p", 1, 6_100);
    second.user = Some("bob@example.com".into());
    second.search_terms = vec![term(TermKind::User, "bob@example.com", 6_100)];
    db.put_batch_blocking(p.id, &second, b"s1").expect("put");
    // A user whose id differs only by case is someone else.
    let mut upper = identified("ADA", Some("ADA@example.com"), 7_000);
    upper.search_terms = vec![term(TermKind::User, "ADA@example.com", 7_000)];
    db.put_batch_blocking(p.id, &upper, b"u").expect("put");

    let erased = db.delete_user_sessions(p.id, "ada@example.com").expect("erase");
    assert_eq!(erased.len(), crate::ERASE_ROUND + 5, "every round, past one round's worth, and the shared tab");
    leaves_nothing(db, p.id, "shared");
    for id in ["ada-1", "ada-2", &format!("ada-{}", crate::ERASE_ROUND + 4)] {
        leaves_nothing(db, p.id, id);
    }
    let filter = SessionFilter { user: Some("ada@example.com".into()), ..SessionFilter::default() };
    assert!(db.find_sessions(p.id, &filter, 10, 0).expect("find").is_empty());
    let left: Vec<String> = db.sessions(p.id, 10, 0).expect("list").into_iter().map(|r| r.id).collect();
    assert_eq!(left, vec!["ADA", "anon", "bob"]);
    assert_eq!(db.sessions(other.id, 10, 0).expect("other").len(), 1, "another project's erasure is its own");
    assert!(db.delete_user_sessions(p.id, "").expect("empty").is_empty(), "never the unidentified sessions");
    assert_eq!(db.sessions(p.id, 10, 0).expect("list").len(), 3);
}

fn the_audit_log_is_per_project_newest_first_and_pruned(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let other = db.create_project("other").expect("other");
    let entry = |project: i64, at_ms: u64, action: &str| AuditEntry {
        id: 0,
        project_id: project,
        at_ms,
        actor: "ada".into(),
        action: action.into(),
        target: "s1".into(),
        detail: String::new(),
    };
    db.append_audit(&entry(p.id, 1_000, "session.watch")).expect("append");
    db.append_audit(&entry(other.id, 1_500, "session.watch")).expect("append");
    db.append_audit(&entry(p.id, 2_000, "session.export")).expect("append");
    db.append_audit(&entry(p.id, 3_000, "session.delete")).expect("append");
    let log = db.audit_log(p.id, None, 10).expect("log");
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["session.delete", "session.export", "session.watch"], "newest first, own project");
    assert_eq!((log[0].actor.as_str(), log[0].target.as_str(), log[0].at_ms), ("ada", "s1", 3_000));
    let page = db.audit_log(p.id, Some(log[0].id), 1).expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].action, "session.export", "the page after the first entry");
    assert_eq!(db.delete_audit_before(2_000).expect("prune"), 2, "one per project");
    assert_eq!(db.audit_log(p.id, None, 10).expect("log").len(), 2);
    assert!(db.audit_log(other.id, None, 10).expect("log").is_empty());
}

fn a_session_keeps_a_bounded_number_of_facts(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let cap = usize::try_from(crate::shared::MAX_FACTS_PER_SESSION).expect("small");
    // Batch after batch naming new feature flags: the session's facts stop at the cap.
    for seq in 0..(cap / 40 + 3) as u32 {
        let mut s = summary("flags", "p", seq, 1_000 + u64::from(seq));
        s.facts = (0..40).map(|i| (format!("flag f{seq}-{i}"), "on".to_owned())).collect();
        if seq == 0 {
            s.facts.insert(0, ("os".to_owned(), "Linux".to_owned()));
        }
        db.put_batch_blocking(p.id, &s, b"x").expect("put");
    }
    // A fact the session already has still takes its latest value at the cap.
    let mut last = summary("flags", "p", 99, 9_000);
    last.facts = vec![("os".to_owned(), "Windows".to_owned()), ("never".to_owned(), "kept".to_owned())];
    db.put_batch_blocking(p.id, &last, b"x").expect("put");
    let cmp = db.compare_environment(p.id, "flags", ENVIRONMENT_SAMPLE).expect("compare");
    assert_eq!(cmp.len(), cap, "facts past the cap are left out");
    assert!(cmp.iter().any(|c| c.name == "os" && c.value == "Windows"), "a known fact is updated");
    assert!(!cmp.iter().any(|c| c.name == "never"));
}

fn a_project_keeps_its_own_quotas(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    assert_eq!(p.quota, ProjectQuota::default(), "the server's quotas unless told otherwise");
    let own = ProjectQuota { bytes_per_day: Some(1_000), sessions_per_day: Some(0) };
    // Cached before the change: the change reaches the lookup at once.
    assert!(db.project_by_key(&p.ingest_key).expect("lookup").is_some());
    db.set_project_quota(p.id, own).expect("quota");
    assert_eq!(db.project_by_key(&p.ingest_key).expect("lookup").map(|p| p.quota), Some(own));
    assert_eq!(db.projects().expect("projects")[0].quota, own);
    assert!(db.set_project_quota(999_999, own).is_err(), "no such project");
}

fn ingest_keys_rotate_with_a_grace_period_and_are_revoked_at_once(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let q = db.create_project("q").expect("q");
    let owner = |key: &str| db.project_by_key(key).expect("lookup").map(|p| p.id);
    let old = p.ingest_key.clone();
    assert_eq!(db.ingest_keys(p.id).expect("keys").len(), 1);
    let new = db.rotate_key(p.id, 3_600_000).expect("rotate");
    assert_ne!(new, old);
    assert_eq!((owner(&old), owner(&new)), (Some(p.id), Some(p.id)), "the old key works during the grace period");
    assert_eq!(db.projects().expect("projects")[0].ingest_key, new, "the project shows its new key");
    let keys = db.ingest_keys(p.id).expect("keys");
    assert_eq!(keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), vec![new.as_str(), old.as_str()]);
    assert!(keys[0].expires_ms.is_none() && keys[1].expires_ms.is_some());
    assert!(keys.iter().all(|k| k.live(replay_core::now_ms())));

    assert!(db.cached_project(&old).is_some() || owner(&old).is_some());
    assert!(db.revoke_key(p.id, &old).expect("revoke"));
    assert_eq!(owner(&old), None, "refused at once");
    assert!(db.cached_project(&old).is_none(), "and not from a cache");
    assert!(!db.revoke_key(p.id, &old).expect("revoke"), "revoked once");
    assert!(!db.revoke_key(p.id, &q.ingest_key).expect("revoke"), "another project's key is not this project's");
    assert_eq!(owner(&q.ingest_key), Some(q.id));
    assert!(db.ingest_keys(p.id).expect("keys")[1].revoked_ms.is_some());

    // A grace period ends on its own, in the cache too.
    let newer = db.rotate_key(p.id, 300).expect("rotate");
    assert_eq!((owner(&new), owner(&newer)), (Some(p.id), Some(p.id)));
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(db.cached_project(&new).is_none(), "the cache honours the key's end");
    assert_eq!((owner(&new), owner(&newer)), (None, Some(p.id)));
    let now = db.rotate_key(p.id, 0).expect("rotate");
    assert_eq!((owner(&newer), owner(&now)), (None, Some(p.id)), "no grace: the old key ends at once");
    assert!(db.rotate_key(999_999, 0).is_err(), "no such project");
}

fn usage_since_counts_sessions_started_and_bytes_received(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let other = db.create_project("other").expect("other");
    db.put_batch_blocking(p.id, &summary("a", "p", 0, 1_000), b"aa").expect("put");
    db.put_batch_blocking(p.id, &summary("b", "p", 0, 5_000), b"bbb").expect("put");
    db.put_batch_blocking(p.id, &summary("b", "p", 1, 6_000), b"bbbb").expect("put");
    db.put_batch_blocking(other.id, &summary("c", "p", 0, 5_000), b"c").expect("put");
    let since = db.usage_since(p.id, 2_000, 10).expect("usage");
    assert_eq!((since.sessions, since.session_ids, since.bytes), (1, vec!["b".to_string()], 7));
    let all = db.usage_since(p.id, 0, 1).expect("usage");
    assert_eq!((all.sessions, all.session_ids.len(), all.bytes), (2, 1, 9), "ids at most as asked");
    assert_eq!(db.usage_since(other.id, 0, 10).expect("usage").bytes, 1);
}

/// A body that cannot be read back (invalid gzip): a read that touches it fails.
fn unreadable() -> BatchBody {
    BatchBody { bytes: bytes::Bytes::from_static(b"not gzip at all"), gzip: true }
}

fn range_reads_read_only_the_bodies_they_choose(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    db.put_batch_blocking(p.id, &summary("s", "a", 0, 1_000), b"a0").expect("put");
    db.put_body_blocking(p.id, &summary("s", "a", 1, 1_100), &unreadable()).expect("put");
    db.put_batch_blocking(p.id, &summary("s", "a", 2, 1_200), b"a2-").expect("put");
    db.put_batch_blocking(p.id, &summary("s", "a", 3, 9_000), b"a3--").expect("put");
    db.put_body_blocking(p.id, &summary("s", "b", 0, 20_000), &unreadable()).expect("put");
    let range = |from, max_bytes| RangeRequest { from, max_bytes, until_offset_ms: None, refuse_over: u64::MAX };
    assert!(db.batches(p.id, "s").is_err(), "reading every body reads the unreadable ones");

    // The unreadable bodies are outside these ranges, so they are never read.
    let first = db.batch_range(p.id, "s", &range(0, 1)).expect("the first batch");
    assert_eq!((first.total, first.bodies.clone(), first.next), (5, vec![b"a0".to_vec()], Some(1)));
    assert_eq!(first.first_start_ms, 1_000);
    let middle = db.batch_range(p.id, "s", &range(2, 7)).expect("two batches");
    assert_eq!((middle.bodies, middle.next), (vec![b"a2-".to_vec(), b"a3--".to_vec()], Some(4)));
    let budget = db.batch_range(p.id, "s", &range(2, 3)).expect("one batch fills the budget");
    assert_eq!((budget.bodies.len(), budget.next), (1, Some(3)));
    assert!(db.batch_range(p.id, "s", &range(1, 1)).is_err(), "a range with an unreadable body fails");
    let past = db.batch_range(p.id, "s", &range(9, 1)).expect("past the end");
    assert_eq!((past.total, past.bodies.len(), past.next), (5, 0, None));

    // Up to a time: the batches before the first that started after it (the index's times).
    let until = |t| RangeRequest { until_offset_ms: Some(t), ..RangeRequest::whole(u64::MAX) };
    let by_0 = db.batch_range(p.id, "s", &until(0)).expect("up to the start");
    assert_eq!((by_0.bodies, by_0.next), (vec![b"a0".to_vec()], Some(1)));
    let by_8s = db.batch_range(p.id, "s", &until(8_000)).expect_err("a1 is unreadable");
    assert!(!matches!(by_8s, Error::RangeTooLarge { .. }));

    // Sizes come from the index: a read over the limit is refused before any body is read.
    let stored = db.session_stored_bytes(p.id, "s").expect("stored bytes");
    assert_eq!(stored, 2 + 15 + 3 + 4 + 15);
    assert_eq!(db.session_stored_bytes(p.id, "nobody").expect("none"), 0);
    match db.batch_range(p.id, "s", &RangeRequest::whole(stored - 1)) {
        Err(Error::RangeTooLarge { bytes }) => assert_eq!(bytes, stored),
        other => panic!("expected RangeTooLarge, got {other:?}"),
    }
    let other = db.create_project("other").expect("other");
    assert_eq!(db.batch_range(other.id, "s", &range(0, 1)).expect("empty").total, 0, "projects are isolated");
}

fn a_session_past_its_byte_cap_is_refused_and_keeps_what_it_has(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    db.limit_session_bytes(Some(10));
    assert_eq!(db.put_batch_blocking(p.id, &summary("s", "p", 0, 1_000), b"123456").expect("put"), Stored::New);
    match db.put_batch_blocking(p.id, &summary("s", "p", 1, 1_100), b"789012") {
        Err(Error::SessionFull { stored, cap }) => assert_eq!((stored, cap), (6, 10)),
        other => panic!("expected SessionFull, got {other:?}"),
    }
    // A resend of what is stored is still a duplicate; a batch that fits still goes in.
    assert_eq!(db.put_batch_blocking(p.id, &summary("s", "p", 0, 1_000), b"123456").expect("put"), Stored::Duplicate);
    assert_eq!(db.put_batch_blocking(p.id, &summary("s", "p", 2, 1_200), b"7890").expect("put"), Stored::New);
    assert!(matches!(db.put_batch_blocking(p.id, &summary("s", "p", 3, 1_300), b"1"), Err(Error::SessionFull { .. })));
    // Other sessions have their own allowance.
    assert_eq!(db.put_batch_blocking(p.id, &summary("t", "p", 0, 1_000), b"123456").expect("put"), Stored::New);
    let row = db.session(p.id, "s").expect("q").expect("row");
    assert_eq!((row.batches, row.bytes), (2, 10), "the refused batches stored nothing");
    assert_eq!(db.batches(p.id, "s").expect("batches"), vec![b"123456".to_vec(), b"7890".to_vec()]);
    assert_eq!(db.batch_count().expect("count"), 3);
    db.limit_session_bytes(None);
    assert_eq!(db.put_batch_blocking(p.id, &summary("s", "p", 3, 1_300), b"1").expect("no cap"), Stored::New);
}

fn environments_are_compared_with_other_sessions(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let other = db.create_project("other").expect("other");
    let facts = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    for (i, os) in ["Windows", "Windows", "Windows", "macOS"].iter().enumerate() {
        let mut s = summary(&format!("s{i}"), "p", 0, 1_000 + i as u64);
        s.facts = facts(&[("os", os), ("language", "en-US")]);
        db.put_batch_blocking(p.id, &s, b"x").expect("put");
    }
    // The odd one out changed language in a later batch: the latest value counts.
    let mut later = summary("s3", "p", 1, 2_000);
    later.facts = facts(&[("language", "fi-FI")]);
    db.put_batch_blocking(p.id, &later, b"y").expect("put");
    let mut elsewhere = summary("s3", "p", 0, 1_000);
    elsewhere.facts = facts(&[("os", "macOS")]);
    db.put_batch_blocking(other.id, &elsewhere, b"z").expect("put");

    let cmp = db.compare_environment(p.id, "s3", ENVIRONMENT_SAMPLE).expect("compare");
    let names: Vec<&str> = cmp.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["language", "os"]);
    let os = &cmp[1];
    assert_eq!((os.value.as_str(), os.same, os.total), ("macOS", 1, 4), "other projects do not count");
    assert_eq!(os.common[0].value, "Windows");
    assert_eq!(os.common[0].sessions, 3);
    assert_eq!((cmp[0].value.as_str(), cmp[0].same, cmp[0].total), ("fi-FI", 1, 4));
    assert!(db.compare_environment(p.id, "nobody", ENVIRONMENT_SAMPLE).expect("compare").is_empty());
    // A sample of the two most recently started sessions (s3, s2) and the oldest one itself.
    let sampled = db.compare_environment(p.id, "s0", 2).expect("compare");
    let os = &sampled[1];
    assert_eq!((os.name.as_str(), os.value.as_str(), os.same, os.total), ("os", "Windows", 2, 3));
    let sampled = db.compare_environment(p.id, "s3", 1).expect("compare");
    assert_eq!((sampled[1].same, sampled[1].total), (1, 1), "the session itself is counted once");
    // Retention takes the facts along.
    db.delete_sessions_before(u64::MAX).expect("retention");
    assert!(db.compare_environment(p.id, "s0", ENVIRONMENT_SAMPLE).expect("compare").is_empty());
}

fn freezes_are_indexed_and_an_unended_one_is_marked_never_recovered(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    // "recovered": froze at 1 500, answered again at 3 600 after 2 000 ms.
    let mut started = summary("recovered", "p", 1, 1_500);
    started.freezes = 1;
    started.freeze_started_ms = 1_500;
    let mut ended = summary("recovered", "p", 2, 3_600);
    ended.freeze_ended_ms = 3_600;
    ended.longest_freeze_ms = 2_000;
    ended.freeze_culprit = Some("computeBestValue (https://shop.test/app.js:87:13)".into());
    db.put_batch_blocking(p.id, &summary("recovered", "p", 0, 1_000), b"0").expect("put");
    // The worker's marker can arrive after the batch that ended the freeze.
    db.put_batch_blocking(p.id, &ended, b"2").expect("put");
    db.put_batch_blocking(p.id, &started, b"1").expect("put");
    // "killed": froze at 5 500 and the tab was killed.
    db.put_batch_blocking(p.id, &summary("killed", "p", 0, 5_000), b"0").expect("put");
    let mut frozen = summary("killed", "p", 1, 5_500);
    frozen.freezes = 1;
    frozen.freeze_started_ms = 5_500;
    db.put_batch_blocking(p.id, &frozen, b"1").expect("put");

    assert_eq!(db.mark_unrecovered_freezes(p.id, 5_000).expect("mark"), 0, "received after the cutoff: still waiting");
    let other = db.create_project("other").expect("other");
    assert_eq!(db.mark_unrecovered_freezes(other.id, 10_000).expect("mark"), 0, "another project's sessions");
    assert_eq!(db.mark_unrecovered_freezes(p.id, 10_000).expect("mark"), 1);
    assert_eq!(db.mark_unrecovered_freezes(p.id, 10_000).expect("mark"), 0, "marked once");
    let recovered = db.session(p.id, "recovered").expect("q").expect("row");
    assert_eq!((recovered.freezes, recovered.longest_freeze_ms, recovered.never_recovered), (1, 2_000, false));
    assert_eq!(recovered.freeze_culprit, "computeBestValue (https://shop.test/app.js:87:13)");
    let killed = db.session(p.id, "killed").expect("q").expect("row");
    assert!(killed.never_recovered && killed.longest_freeze_ms == 0);
    let ids = |f: SessionFilter| -> Vec<String> {
        db.find_sessions(p.id, &f, 10, 0).expect("find").into_iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(SessionFilter { never_recovered: true, ..Default::default() }), vec!["killed"]);
    // A late freeze_ended (the page came back after all) clears the mark.
    let mut late = summary("killed", "p", 2, 70_000);
    late.freeze_ended_ms = 70_000;
    late.longest_freeze_ms = 64_500;
    db.put_batch_blocking(p.id, &late, b"2").expect("put");
    assert!(!db.session(p.id, "killed").expect("q").expect("row").never_recovered);
}

fn errors_are_grouped_by_fingerprint_across_sessions(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let other = db.create_project("other").expect("other");
    let sighting = |fingerprint: &str, count: u64, at_ms: u64| ErrorSighting {
        fingerprint: fingerprint.into(),
        message: format!("message {fingerprint}"),
        frame: "pay (https://shop.test/app.js:10:5)".into(),
        count,
        at_ms,
    };
    let mut a = summary("a", "p", 0, 1_000);
    a.error_sightings = vec![sighting("f1", 3, 1_050), sighting("f2", 1, 1_060)];
    db.put_batch_blocking(p.id, &a, b"a").expect("put");
    db.put_batch_blocking(p.id, &a, b"a").expect("resent: counted once");
    let mut b = summary("b", "p", 0, 5_000);
    b.error_sightings = vec![sighting("f1", 2, 5_050)];
    db.put_batch_blocking(p.id, &b, b"b").expect("put");
    db.put_batch_blocking(other.id, &b, b"b").expect("put");

    let groups = db.error_groups(p.id, 10).expect("groups");
    assert_eq!(groups.len(), 2);
    let f1 = &groups[0];
    assert_eq!((f1.fingerprint.as_str(), f1.count, f1.sessions), ("f1", 5, 2), "most recent first");
    assert_eq!((f1.first_ms, f1.last_ms), (1_050, 5_050));
    assert_eq!(f1.recent_sessions, vec!["b", "a"]);
    assert_eq!(f1.message, "message f1");
    assert_eq!((groups[1].count, groups[1].recent_sessions.clone()), (1, vec!["a".to_string()]));
    assert_eq!(db.error_groups(other.id, 10).expect("groups").len(), 1, "projects are isolated");

    // Retention takes the groups' sessions along, and groups left without sessions.
    db.delete_sessions_before(1_500).expect("retention");
    let groups = db.error_groups(p.id, 10).expect("groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].recent_sessions, vec!["b"]);

    // A deleted session's message (its group's first sighting) keeps nothing of its own in the
    // group that stays: the digits its sightings do not share are folded.
    let card = |session: &str, digits: &str, at_ms: u64| {
        let mut s = summary(session, "p", 0, at_ms);
        s.error_sightings = vec![ErrorSighting {
            fingerprint: "card".into(),
            message: format!("Card {digits} declined for order 90210"),
            frame: "pay (https://shop.test/app.js:10:5)".into(),
            count: 1,
            at_ms,
        }];
        s
    };
    db.put_batch_blocking(p.id, &card("ada", "4111111111111111", 7_000), b"c").expect("put");
    db.put_batch_blocking(p.id, &card("bob", "5500000000000004", 8_000), b"d").expect("put");
    assert!(db.error_groups(p.id, 10).expect("groups").iter().any(|g| g.message.contains("4111111111111111")));
    db.delete_sessions(p.id, &["ada".to_string()]).expect("erase ada");
    let groups = db.error_groups(p.id, 10).expect("groups");
    let group = groups.iter().find(|g| g.fingerprint == "card").expect("bob's keeps the group");
    assert_eq!((group.count, group.message.as_str()), (1, "Card N declined for order N"));
}

fn resent_batch_is_stored_once(db: &impl Storage) {
    let p = db.create_project("p").expect("create project");
    assert_eq!(db.put_batch_blocking(p.id, &summary("s1", "p1", 0, 1000), b"a").expect("put"), Stored::New);
    assert_eq!(db.put_batch_blocking(p.id, &summary("s1", "p1", 0, 1000), b"a").expect("put"), Stored::Duplicate);
    assert_eq!(db.put_batch_blocking(p.id, &summary("s1", "p1", 1, 1100), b"b").expect("put"), Stored::New);
    let row = db.session(p.id, "s1").expect("query").expect("row");
    assert_eq!((row.batches, row.events, row.clicks, row.pages), (2, 6, 2, 1), "duplicates must not count");
    assert_eq!((row.start_ms, row.end_ms, row.duration_ms), (1000, 1200, 200));
    assert_eq!(db.batch_count().expect("count"), 2);
}

/// The batch the recorder's upload worker sends on its own when the page stops answering: one
/// `freeze_started` event, numbered after the batch the page was filling.
fn freeze_marker(session: &str, page: &str, seq: u32, at_ms: u64) -> BatchSummary {
    BatchSummary {
        session: session.into(),
        page: page.into(),
        seq,
        start_ms: at_ms,
        end_ms: at_ms,
        received_ms: at_ms + 1_500,
        events: 1,
        freezes: 1,
        freeze_started_ms: at_ms,
        ..BatchSummary::default()
    }
}

/// A freeze marker whose number a real batch of the page also carries (the page did not
/// reserve it): in either order, both are stored, indexed and read back, the marker first;
/// resends of either stay duplicates.
fn a_freeze_marker_and_a_real_batch_of_one_number_are_both_kept(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let put = |s: &BatchSummary, body: &[u8]| db.put_batch_blocking(p.id, s, body).expect("put");
    // The marker first, then the real batch.
    assert_eq!(put(&summary("m", "p", 0, 1_000), b"r0"), Stored::New);
    assert_eq!(put(&freeze_marker("m", "p", 1, 1_200), b"f1"), Stored::New);
    assert_eq!(put(&summary("m", "p", 1, 3_000), b"r1"), Stored::New, "the real batch is not the marker's resend");
    // The real batch first, then the marker (sent by the worker and again by the page).
    assert_eq!(put(&summary("r", "p", 0, 1_000), b"r0"), Stored::New);
    assert_eq!(put(&summary("r", "p", 1, 3_000), b"r1"), Stored::New);
    assert_eq!(put(&freeze_marker("r", "p", 1, 1_200), b"f1"), Stored::New, "the freeze is recorded all the same");
    for session in ["m", "r"] {
        assert_eq!(put(&freeze_marker(session, "p", 1, 1_200), b"f1"), Stored::Duplicate, "{session}: marker resent");
        assert_eq!(put(&summary(session, "p", 1, 3_000), b"r1"), Stored::Duplicate, "{session}: batch resent");
        assert_eq!(put(&summary(session, "p", 0, 1_000), b"r0"), Stored::Duplicate, "{session}: first resent");
        // A later batch of the page is new, and its resend is not. (Whether the marker's key
        // raises the number past which a batch is new without a lookup, a lookup would answer
        // the same: SQLite's own test of that is
        // `a_freeze_marker_does_not_raise_its_pages_highest_number_pending_or_indexed`;
        // PostgreSQL looks every batch up.)
        assert_eq!(put(&summary(session, "p", 2, 4_000), b"r2"), Stored::New, "{session}: next batch");
        assert_eq!(put(&summary(session, "p", 2, 4_000), b"r2"), Stored::Duplicate, "{session}: next resent");

        let replay = [b"r0".to_vec(), b"f1".to_vec(), b"r1".to_vec(), b"r2".to_vec()];
        assert_eq!(
            db.batches(p.id, session).expect("batches"),
            replay,
            "{session}: the marker before its number's batch"
        );
        let range = db.batch_range(p.id, session, &RangeRequest::whole(u64::MAX)).expect("range");
        assert_eq!((range.total, range.bodies), (4, replay.to_vec()), "{session}: range read");
        let keys: Vec<(String, u32)> = [0, 1, 1, 2].into_iter().map(|seq| ("p".to_string(), seq)).collect();
        assert_eq!(db.batch_keys(p.id, session).expect("keys"), keys, "{session}: keys");
        let row = db.session(p.id, session).expect("q").expect("row");
        assert_eq!(
            (row.batches, row.events, row.clicks, row.pages, row.freezes, row.bytes),
            (4, 3 + 1 + 3 + 3, 3, 1, 1, 8),
            "{session}: each batch counted once, the freeze once"
        );
        assert_eq!(db.session_stored_bytes(p.id, session).expect("bytes"), 8);
    }
    assert_eq!(db.batch_count().expect("count"), 8);
    let frozen = SessionFilter { has_freeze: true, ..SessionFilter::default() };
    assert_eq!(found(db, p.id, &frozen).len(), 2, "both sessions froze");
    // No freeze_ended came: the freeze is open in both, whichever batch came first.
    assert_eq!(db.mark_unrecovered_freezes(p.id, 10_000).expect("mark"), 2);
}

/// The same, with the marker and the real batch (and their resends) uploaded at once, so
/// engines with a group commit may meet both in one group.
fn a_freeze_marker_and_a_real_batch_of_one_number_sent_at_once_are_both_kept(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let sessions: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let outcomes: Vec<Stored> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sessions = &sessions;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for s in sessions {
                        let (real, marker) = (summary(s, "p", 1, 3_000), freeze_marker(s, "p", 1, 1_200));
                        // Half the threads send the marker first.
                        let pair = if t % 2 == 0 {
                            [(&marker, b"f1"), (&real, b"r1")]
                        } else {
                            [(&real, b"r1"), (&marker, b"f1")]
                        };
                        for (summary, body) in pair {
                            out.push(db.put_batch_blocking(p.id, summary, body).expect("put"));
                        }
                    }
                    out
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("uploading thread")).collect()
    });
    let new = outcomes.iter().filter(|o| **o == Stored::New).count();
    assert_eq!((new, outcomes.len() - new), (12, 36), "each marker and each real batch is new once");
    for s in &sessions {
        assert_eq!(db.batches(p.id, s).expect("batches"), [b"f1".to_vec(), b"r1".to_vec()], "{s}");
        let row = db.session(p.id, s).expect("q").expect("row");
        assert_eq!((row.batches, row.events, row.freezes), (2, 4, 1), "{s}");
    }
}

/// The encoded body of a freeze marker (the check of a marker stored under its plain number
/// decodes the stored body).
fn encoded_freeze_marker(session: &str, page: &str, seq: u32, at_ms: u64) -> Vec<u8> {
    use replay_protocol::{Event, EventData, Freeze};
    let mut b = replay_protocol::Batch::new(session, page, seq, at_ms);
    let started = Freeze::Started { url: "https://shop.test/".into(), last_action: "click button#pay".into() };
    b.events.push(Event { t: 0, data: EventData::Freeze(started) });
    replay_protocol::encode_batch(&b).expect("encode")
}

/// A freeze marker stored before markers were keyed apart sits under its plain number: its
/// resend after the upgrade (the page's copy, a retried upload) is a duplicate, counted
/// nowhere again; a real batch of that number and a marker whose plain-number row is a real
/// batch are still both stored.
fn a_marker_stored_before_markers_were_keyed_apart_is_not_stored_again(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let put = |s: &BatchSummary, body: &[u8]| db.put_batch_blocking(p.id, s, body).expect("put");
    assert_eq!(put(&summary("old", "p", 0, 1_000), b"r0"), Stored::New);
    // The old row: the marker's body keyed under its plain number. (Stored here with a summary
    // the engine keys as a real batch: one event, no freeze counted.)
    let marker = freeze_marker("old", "p", 1, 1_200);
    let body = encoded_freeze_marker("old", "p", 1, 1_200);
    let old = BatchSummary { freezes: 0, freeze_started_ms: 0, ..marker.clone() };
    assert_eq!(put(&old, &body), Stored::New);
    let before = db.session(p.id, "old").expect("q").expect("row");
    assert_eq!((before.batches, before.events), (2, 4));

    assert_eq!(put(&marker, &body), Stored::Duplicate, "the marker's resend after the upgrade");
    assert_eq!(put(&marker, &body), Stored::Duplicate, "and again");
    let after = db.session(p.id, "old").expect("q").expect("row");
    assert_eq!((after.batches, after.events, after.freezes, after.bytes), (2, 4, 0, before.bytes));
    assert_eq!(db.batches(p.id, "old").expect("batches"), [b"r0".to_vec(), body.clone()], "the marker once");
    // The page's next real batch is new.
    assert_eq!(put(&summary("old", "p", 2, 4_000), b"r2"), Stored::New);

    // A real batch under the plain number (its body no marker): the marker is stored beside it.
    assert_eq!(put(&summary("real", "p", 1, 3_000), b"r1"), Stored::New);
    assert_eq!(put(&freeze_marker("real", "p", 1, 1_200), &encoded_freeze_marker("real", "p", 1, 1_200)), Stored::New);
    let row = db.session(p.id, "real").expect("q").expect("row");
    assert_eq!((row.batches, row.freezes), (2, 1));
    // The same with a real batch that decodes (two events, so no marker) and is small enough
    // to be read: read, found no marker, the marker stored beside it.
    let mut two = replay_protocol::Batch::new("real2", "p", 1, 3_000);
    let started = replay_protocol::Freeze::Started { url: "https://shop.test/".into(), last_action: String::new() };
    for t in [0, 1] {
        two.events.push(replay_protocol::Event { t, data: replay_protocol::EventData::Freeze(started.clone()) });
    }
    let two = replay_protocol::encode_batch(&two).expect("encode");
    assert_eq!(put(&summary("real2", "p", 1, 3_000), &two), Stored::New);
    assert_eq!(
        put(&freeze_marker("real2", "p", 1, 1_200), &encoded_freeze_marker("real2", "p", 1, 1_200)),
        Stored::New
    );
    // A real batch far bigger than the marker is never read for it.
    assert_eq!(put(&summary("big", "p", 1, 3_000), &vec![7_u8; 64 * 1024]), Stored::New);
    assert_eq!(put(&freeze_marker("big", "p", 1, 1_200), &encoded_freeze_marker("big", "p", 1, 1_200)), Stored::New);
    assert_eq!(db.batch_count().expect("count"), 9);
}

/// Many uploads at once, each batch sent four times (engines with a group commit index them in
/// groups, a batch and its resend in the same group or not): every sum counts each batch once.
fn concurrent_uploads_and_resends_count_once(db: &impl Storage) {
    use replay_core::clickmap::{Activity, ElementClicks, PageActivity};
    let p = db.create_project("p").expect("p");
    let day = 19_700 * crate::clickmap::DAY_MS;
    let url = "https://shop.test/busy";
    let batches: Vec<BatchSummary> = (0..4u32)
        .flat_map(|seq| {
            (0..6u64).map(move |i| {
                let at = day + 1_000 + u64::from(seq) * 100 + i;
                let mut s = summary(&format!("s{i}"), "p", seq, at);
                s.search_terms = vec![term(TermKind::Click, &format!("buy {i}"), at)];
                s.error_sightings = vec![ErrorSighting {
                    fingerprint: "f".into(),
                    message: "boom".into(),
                    frame: String::new(),
                    count: 2,
                    at_ms: at,
                }];
                let element = ElementClicks { path: "#buy".into(), label: "Buy".into(), clicks: 3, x_sum: 3, y_sum: 6 };
                let page = PageActivity { url: Some(url.into()), elements: vec![element], depth: Some(5), last_ms: at };
                s.activity = Activity { pages: vec![page], dropped: 0 };
                s
            })
        })
        .collect();
    let outcomes: Vec<Stored> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let batches = &batches;
                scope.spawn(move || {
                    batches.iter().map(|s| db.put_batch_blocking(p.id, s, b"body").expect("put")).collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("uploading thread")).collect()
    });
    let new = outcomes.iter().filter(|o| **o == Stored::New).count();
    assert_eq!((new, outcomes.len() - new), (24, 72), "each batch is new once");
    assert_eq!(db.batch_count().expect("count"), 24);
    for i in 0..6 {
        let row = db.session(p.id, &format!("s{i}")).expect("q").expect("row");
        assert_eq!((row.batches, row.events, row.clicks, row.bytes, row.pages), (4, 12, 4, 16, 1), "s{i}");
        let f = SessionFilter { clicked: Some(format!("buy {i}")), ..SessionFilter::default() };
        assert_eq!(found(db, p.id, &f), [format!("s{i}")]);
    }
    let groups = db.error_groups(p.id, 10).expect("groups");
    assert_eq!((groups.len(), groups[0].count, groups[0].sessions), (1, 48, 6));
    let q = crate::clickmap::ClickmapQuery {
        url: url.into(),
        from_day: crate::clickmap::day_of(day),
        to_day: crate::clickmap::day_of(day),
        limit: 10,
    };
    let map = db.clickmap(p.id, &q).expect("clickmap");
    assert_eq!((map.clicks, map.elements[0].clicks, map.clicks_dropped), (72, 72, 0));
    assert_eq!(map.reached[5], 6, "each page view reached half the page once");
}

fn batches_come_back_in_replay_order(db: &impl Storage) {
    let p = db.create_project("p").expect("create project");
    // Second page view first, out of order, then the first page view.
    db.put_batch_blocking(p.id, &summary("s", "page-b", 1, 5100), b"b1").expect("put");
    db.put_batch_blocking(p.id, &summary("s", "page-b", 0, 5000), b"b0").expect("put");
    db.put_batch_blocking(p.id, &summary("s", "page-a", 1, 1100), b"a1").expect("put");
    db.put_batch_blocking(p.id, &summary("s", "page-a", 0, 1000), b"a0").expect("put");
    let bodies = db.batches(p.id, "s").expect("batches");
    assert_eq!(bodies, vec![b"a0".to_vec(), b"a1".to_vec(), b"b0".to_vec(), b"b1".to_vec()]);
    let keys = db.batch_keys(p.id, "s").expect("keys");
    assert_eq!(keys[2], ("page-b".to_string(), 0));
    assert_eq!(db.session(p.id, "s").expect("q").expect("row").pages, 2);
}

fn gzip_bodies_come_back_decoded(db: &impl Storage) {
    use std::io::Write;
    let p = db.create_project("p").expect("create project");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"messagepack bytes").expect("in memory");
    let body = BatchBody { bytes: gz.finish().expect("in memory").into(), gzip: true };
    db.put_body_blocking(p.id, &summary("s", "p", 0, 1), &body).expect("put");
    db.put_batch_blocking(p.id, &summary("s", "p", 1, 2), b"raw").expect("put");
    assert_eq!(db.batches(p.id, "s").expect("batches"), vec![b"messagepack bytes".to_vec(), b"raw".to_vec()]);
}

/// Bodies that deflate a thousand times (stored ~1 KB, 1 MiB read): a ranged read stops at
/// 16 bytes decompressed per stored byte asked for, a whole read is refused as soon as what it
/// decompressed passes its limit.
fn range_reads_stop_at_what_bodies_decompress_to(db: &impl Storage) {
    use std::io::Write;
    let p = db.create_project("p").expect("create project");
    let bomb = || {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'x'; 1 << 20]).expect("in memory");
        BatchBody { bytes: gz.finish().expect("in memory").into(), gzip: true }
    };
    for seq in 0..4 {
        db.put_body_blocking(p.id, &summary("s", "p", seq, 1_000 + u64::from(seq)), &bomb()).expect("put");
    }
    let stored = db.session_stored_bytes(p.id, "s").expect("stored bytes");
    assert!(stored < 16 * 1024, "{stored}");
    // 64 KiB of stored bytes asked for: the index says all four fit; 1 MiB decompressed stops it.
    let ranged = RangeRequest { from: 0, max_bytes: 64 * 1024, until_offset_ms: None, refuse_over: u64::MAX };
    let first = db.batch_range(p.id, "s", &ranged).expect("a range");
    assert_eq!((first.bodies.len(), first.next), (1, Some(1)), "one body reaches the budget");
    assert_eq!(first.bodies[0].len(), 1 << 20);
    let rest = db.batch_range(p.id, "s", &RangeRequest { from: 3, ..ranged }).expect("the last");
    assert_eq!((rest.bodies.len(), rest.next), (1, None));
    // Everything, refused past 2.5 MiB decompressed although 16 KB are stored.
    match db.batch_range(p.id, "s", &RangeRequest::whole(5 << 19)) {
        Err(Error::RangeTooLarge { bytes }) => assert_eq!(bytes, 3 << 20),
        other => panic!("expected RangeTooLarge, got {:?}", other.map(|r| r.bodies.len())),
    }
    assert_eq!(db.batch_range(p.id, "s", &RangeRequest::whole(4 << 20)).expect("fits").bodies.len(), 4);
}

fn projects_are_isolated(db: &impl Storage) {
    let a = db.create_project("a").expect("a");
    let b = db.create_project("b").expect("b");
    assert_ne!(a.ingest_key, b.ingest_key);
    db.put_batch_blocking(a.id, &summary("s", "p", 0, 1), b"x").expect("put");
    assert!(db.sessions(b.id, 10, 0).expect("list").is_empty());
    assert!(db.batches(b.id, "s").expect("batches").is_empty());
    assert!(db.session(b.id, "s").expect("q").is_none());
    assert_eq!(db.project_by_key(&b.ingest_key).expect("key").map(|p| p.id), Some(b.id));
    assert!(db.project_by_key("nope").expect("key").is_none());
    db.set_allowed_origins(a.id, &["https://a.test".into()]).expect("origins");
    let a2 = db.project_by_key(&a.ingest_key).expect("key").expect("project");
    assert!(a2.allows_origin(Some("https://a.test")) && !a2.allows_origin(Some("https://evil.test")));
}

fn index_aggregates_and_filters(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let mut first = summary("checkout", "p", 0, 10_000);
    first.user = Some("ada@example.com".into());
    first.release = Some("1.4.2".into());
    first.environment = Some("production".into());
    first.browser = Some("Chrome".into());
    db.put_batch_blocking(p.id, &first, b"1").expect("put");
    let mut second = summary("checkout", "p", 1, 70_000);
    second.errors = 2;
    second.freezes = 1;
    second.rage_clicks = 1;
    db.put_batch_blocking(p.id, &second, b"2").expect("put");
    db.put_batch_blocking(p.id, &summary("home", "p", 0, 20_000), b"3").expect("put");

    let ids = |f: SessionFilter| -> Vec<String> {
        db.find_sessions(p.id, &f, 10, 0).expect("find").into_iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(SessionFilter::default()), vec!["home", "checkout"], "newest first");
    assert_eq!(ids(SessionFilter { has_error: true, ..Default::default() }), vec!["checkout"]);
    assert_eq!(ids(SessionFilter { has_freeze: true, ..Default::default() }), vec!["checkout"]);
    assert_eq!(ids(SessionFilter { has_rage_click: true, ..Default::default() }), vec!["checkout"]);
    assert_eq!(ids(SessionFilter { user: Some("ada@example.com".into()), ..Default::default() }), vec!["checkout"]);
    assert_eq!(ids(SessionFilter { release: Some("1.4.2".into()), ..Default::default() }), vec!["checkout"]);
    assert_eq!(ids(SessionFilter { environment: Some("staging".into()), ..Default::default() }), Vec::<String>::new());
    assert_eq!(ids(SessionFilter { browser: Some("Chrome".into()), ..Default::default() }), vec!["checkout"]);
    assert_eq!(ids(SessionFilter { url_contains: Some("hom".into()), ..Default::default() }), vec!["home"]);
    assert_eq!(ids(SessionFilter { url_contains: Some("%".into()), ..Default::default() }), Vec::<String>::new());
    assert_eq!(ids(SessionFilter { min_duration_ms: Some(30_000), ..Default::default() }), vec!["checkout"]);
    assert_eq!(ids(SessionFilter { since_ms: Some(15_000), ..Default::default() }), vec!["home"]);
    assert_eq!(ids(SessionFilter { until_ms: Some(15_000), ..Default::default() }), vec!["checkout"]);
    let row = db.session(p.id, "checkout").expect("q").expect("row");
    assert_eq!((row.errors, row.freezes, row.rage_clicks, row.user.as_str()), (2, 1, 1, "ada@example.com"));
    assert_eq!(db.sessions(p.id, 1, 1).expect("page").len(), 1, "pagination");
}

fn retention_deletes_old_sessions_with_their_batches(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    db.put_batch_blocking(p.id, &summary("old", "p", 0, 1_000), b"o").expect("put");
    db.put_batch_blocking(p.id, &summary("new", "p", 0, 9_000), b"n").expect("put");
    assert_eq!(db.delete_sessions_before(5_000).expect("delete"), 1);
    assert!(db.session(p.id, "old").expect("q").is_none());
    assert!(db.batches(p.id, "old").expect("batches").is_empty());
    assert!(db.session(p.id, "new").expect("q").is_some());
    // A resent old batch after deletion starts a fresh session rather than failing.
    assert_eq!(db.put_batch_blocking(p.id, &summary("old", "p", 0, 1_000), b"o").expect("put"), Stored::New);
}

fn settings_users_and_logins_round_trip(db: &impl Storage) {
    assert!(db.setting("admin_token_sha256").expect("get").is_none());
    db.set_setting("admin_token_sha256", "abc").expect("set");
    db.set_setting("admin_token_sha256", "def").expect("set");
    assert_eq!(db.setting("admin_token_sha256").expect("get").as_deref(), Some("def"));
    assert_eq!(db.user_count().expect("count"), 0);
    db.put_user("admin", "$argon2id$hash").expect("user");
    assert_eq!(db.user_password_hash("admin").expect("get").as_deref(), Some("$argon2id$hash"));
    assert!(db.user_password_hash("nobody").expect("get").is_none());
    db.create_login("tok", "admin", 2_000).expect("login");
    assert_eq!(db.login_user("tok", 1_000).expect("q").as_deref(), Some("admin"));
    assert!(db.login_user("tok", 3_000).expect("q").is_none(), "expired logins do not count");
    db.delete_login("tok").expect("logout");
    assert!(db.login_user("tok", 1_000).expect("q").is_none());
    // A new password ends the user's sign-ins, and only that user's.
    db.put_user("ada", "$argon2id$ada").expect("user");
    db.create_login("a1", "admin", 2_000).expect("login");
    db.create_login("a2", "ada", 2_000).expect("login");
    db.put_user("admin", "$argon2id$new").expect("new password");
    assert!(db.login_user("a1", 1_000).expect("q").is_none(), "signed out by the new password");
    assert_eq!(db.login_user("a2", 1_000).expect("q").as_deref(), Some("ada"));
}

/// An expiry in the far future (stores drop expired rows by the real clock).
const LATER: u64 = 4_000_000_000_000;

fn members_have_roles_per_project_and_disabled_users_lose_their_sign_ins(db: &impl Storage) {
    let a = db.create_project("a").expect("project").id;
    let b = db.create_project("b").expect("project").id;
    db.put_user("admin", "$argon2id$x").expect("user");
    db.put_user("ann", "$argon2id$y").expect("user");
    assert!(db.set_user_admin("admin", true).expect("admin"));
    assert!(!db.set_user_admin("nobody", true).expect("unknown"), "no such user");
    let ann = db.user("ann").expect("q").expect("ann");
    assert!(!ann.admin && !ann.disabled);
    assert!(db.user("admin").expect("q").expect("admin").admin);
    assert_eq!(db.users().expect("users").iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["admin", "ann"]);

    db.set_membership(a, "ann", Some("member")).expect("member");
    db.set_membership(a, "ann", Some("owner")).expect("role changes in place");
    db.set_membership(b, "ann", Some("read_only")).expect("member");
    let roles: Vec<(i64, String)> =
        db.memberships("ann").expect("q").into_iter().map(|m| (m.project, m.role)).collect();
    assert_eq!(roles, [(a, "owner".to_owned()), (b, "read_only".to_owned())]);
    assert_eq!(db.members(a).expect("q").len(), 1);
    db.set_membership(b, "ann", None).expect("removed");
    assert!(db.members(b).expect("q").is_empty(), "removed from b");
    assert!(db.memberships("admin").expect("q").is_empty(), "admins need no memberships");

    db.create_login("s1", "ann", LATER).expect("login");
    db.create_login("s2", "ann", LATER).expect("login");
    db.create_login("s3", "admin", LATER).expect("login");
    let mut ids: Vec<String> = db.logins("ann", 1_000).expect("q").into_iter().map(|l| l.id).collect();
    ids.sort();
    assert_eq!(ids, ["s1", "s2"], "a user sees their own sign-ins only");
    assert!(db.logins("ann", LATER + 1).expect("q").is_empty(), "expired sign-ins are not listed");
    db.delete_login("s1").expect("end one");
    assert_eq!(db.logins("ann", 1_000).expect("q").len(), 1);

    assert!(db.set_user_disabled("ann", true).expect("disable"));
    assert!(db.user("ann").expect("q").expect("ann").disabled);
    assert!(db.login_user("s2", 1_000).expect("q").is_none(), "a disabled user's sign-ins end");
    db.create_login("s4", "ann", LATER).expect("login");
    assert!(db.login_user("s4", 1_000).expect("q").is_none(), "and new ones do not count");
    assert_eq!(db.login_user("s3", 1_000).expect("q").as_deref(), Some("admin"), "others keep theirs");
    assert!(db.set_user_disabled("ann", false).expect("enable"));
    assert_eq!(db.login_user("s4", 1_000).expect("q").as_deref(), Some("ann"));
}

fn invitations_are_used_once_and_expire(db: &impl Storage) {
    db.put_user("bob", "$argon2id$unusable").expect("user");
    db.create_invite("inv1", "bob", LATER).expect("invite");
    db.create_invite("inv2", "bob", LATER - 1).expect("invite");
    assert_eq!(db.take_invite("inv1", 1_000).expect("take").as_deref(), Some("bob"));
    assert!(db.take_invite("inv1", 1_000).expect("take").is_none(), "used once");
    assert!(db.take_invite("inv2", LATER).expect("take").is_none(), "expired");
    assert!(db.take_invite("inv2", 1_000).expect("take").is_none(), "and gone");
    assert!(db.take_invite("never", 1_000).expect("take").is_none());
    db.create_invite("inv3", "bob", LATER).expect("invite");
    db.set_user_disabled("bob", true).expect("disable");
    assert!(db.take_invite("inv3", 1_000).expect("take").is_none(), "disabling ends invitations");
}

fn single_sign_on_identities_link_to_one_account_each(db: &impl Storage) {
    const IDP: &str = "https://idp.example";
    db.put_user("ann@example.com", "$argon2id$x").expect("user");
    db.put_user("bob@example.com", "$argon2id$y").expect("user");
    assert_eq!(db.sso_user(IDP, "sub-ann").expect("q"), None, "nothing linked yet");
    assert_eq!(
        db.link_sso(IDP, "sub-ann", "ann@example.com", 1_000).expect("link").as_deref(),
        Some("ann@example.com")
    );
    assert_eq!(db.sso_user(IDP, "sub-ann").expect("q").as_deref(), Some("ann@example.com"));
    assert_eq!(
        db.link_sso(IDP, "sub-ann", "ann@example.com", 2_000).expect("again").as_deref(),
        Some("ann@example.com"),
        "linking again changes nothing"
    );
    // Another identity claiming ann's address (an e-mail changed at the provider) does not take
    // her account: ann keeps her one identity at this issuer.
    assert_eq!(db.link_sso(IDP, "sub-other", "ann@example.com", 3_000).expect("refused"), None);
    assert_eq!(db.sso_user(IDP, "sub-other").expect("q"), None);
    // An identity linked to ann stays hers, whoever it is offered to.
    assert_eq!(
        db.link_sso(IDP, "sub-ann", "bob@example.com", 4_000).expect("kept").as_deref(),
        Some("ann@example.com")
    );
    assert_eq!(db.sso_user(IDP, "sub-bob").expect("q"), None);
    // Subjects are per issuer: the same subject elsewhere is another identity.
    assert_eq!(
        db.link_sso("https://other.example", "sub-ann", "bob@example.com", 5_000).expect("link").as_deref(),
        Some("bob@example.com")
    );
    assert_eq!(db.sso_user(IDP, "sub-ann").expect("q").as_deref(), Some("ann@example.com"));
}

fn api_tokens_are_found_by_digest_noted_when_used_and_revoked(db: &impl Storage) {
    use crate::NewToken;
    let p = db.create_project("p").expect("project").id;
    db.put_user("ann", "$argon2id$y").expect("user");
    let mine = db
        .create_token(&NewToken {
            token_hash: "h1".into(),
            name: "ci".into(),
            user: Some("ann".into()),
            project: None,
            scopes: vec!["read".into()],
        })
        .expect("token");
    let project = db
        .create_token(&NewToken {
            token_hash: "h2".into(),
            name: "export job".into(),
            user: None,
            project: Some(p),
            scopes: vec!["read".into(), "manage".into()],
        })
        .expect("token");
    assert_ne!(mine, project);
    let t = db.token(project).expect("q").expect("stored");
    assert_eq!((t.project, t.user.as_deref(), t.scopes.len()), (Some(p), None, 2));
    assert!(t.last_used_ms.is_none(), "never used yet");
    let used = db.use_token("h2", 1_700_000_000_000).expect("use").expect("live");
    assert_eq!(used.last_used_ms, Some(1_700_000_000_000));
    assert_eq!(db.token(project).expect("q").expect("t").last_used_ms, Some(1_700_000_000_000), "noted");
    db.use_token("h2", 1_700_000_000_010).expect("use").expect("live");
    assert_eq!(db.token(project).expect("q").expect("t").last_used_ms, Some(1_700_000_000_000), "not every request");
    assert!(db.use_token("nope", 1).expect("use").is_none());
    assert_eq!(db.tokens(Some("ann"), None).expect("q").len(), 1);
    assert_eq!(db.tokens(None, Some(p)).expect("q").len(), 1);
    assert_eq!(db.tokens(None, None).expect("q").len(), 2);
    db.set_user_disabled("ann", true).expect("disable");
    assert!(db.use_token("h1", 1).expect("use").is_none(), "a disabled user's tokens stop working");
    db.set_user_disabled("ann", false).expect("enable");
    assert!(db.use_token("h1", 1).expect("use").is_none(), "and stay ended when the user is enabled again");
    assert!(db.token(mine).expect("q").expect("t").revoked_ms.is_some(), "revoked, as listed");
    assert!(db.revoke_token(project, 5).expect("revoke"));
    assert!(!db.revoke_token(project, 6).expect("again"), "revoked once");
    assert!(db.use_token("h2", 1_700_000_000_020).expect("use").is_none(), "revoked at once");
    assert_eq!(db.token(project).expect("q").expect("t").revoked_ms, Some(5));
}

/// A comment by `ann` on `session` at `t`.
fn comment(project: i64, session: &str, t: u64, text: &str) -> Comment {
    Comment {
        id: 0,
        project_id: project,
        session_id: session.into(),
        t,
        author_user: "ann".into(),
        author: "ann".into(),
        text: text.into(),
        created_ms: 1_700_000_040_000,
    }
}

fn comments_are_kept_per_session_by_moment_and_capped(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    let other = db.create_project("other").expect("other");
    for session in ["s", "t"] {
        db.put_batch_blocking(p.id, &summary(session, "p", 0, 1_000), b"1").expect("put");
    }
    db.put_batch_blocking(other.id, &summary("s", "p", 0, 1_000), b"1").expect("put");

    let added = |c: Comment| match db.add_comment(&c).expect("add") {
        CommentAdded::Added(stored) => stored,
        other => panic!("not added: {other:?}"),
    };
    let late = added(comment(p.id, "s", 5_000, "late"));
    let early = added(comment(p.id, "s", 1_000, "<img src=x onerror=alert(1)>"));
    let same_moment = added(comment(p.id, "s", 5_000, "same moment, added after"));
    assert_eq!((late.t, late.text.as_str(), late.author_user.as_str()), (5_000, "late", "ann"));
    assert!(late.id != early.id && early.id != same_moment.id, "ids are assigned");
    let listed = db.comments(p.id, "s", 100).expect("list");
    assert_eq!(listed, vec![early.clone(), late.clone(), same_moment.clone()], "by moment, then as added");
    assert_eq!(db.comments(p.id, "s", 2).expect("list").len(), 2, "bounded by the limit");
    assert!(db.comments(p.id, "t", 100).expect("list").is_empty(), "sessions are apart");
    assert!(db.comments(other.id, "s", 100).expect("list").is_empty(), "projects are apart");
    assert_eq!(db.comment(p.id, "s", early.id).expect("get"), Some(early.clone()));
    assert_eq!(db.comment(other.id, "s", early.id).expect("get"), None, "not through another project");
    assert_eq!(db.comment(p.id, "t", early.id).expect("get"), None, "nor another session");

    // Refusals store nothing.
    assert_eq!(db.add_comment(&comment(p.id, "never", 0, "x")).expect("add"), CommentAdded::NoSuchSession);
    assert_eq!(db.add_comment(&comment(other.id, "t", 0, "x")).expect("add"), CommentAdded::NoSuchSession);
    assert_eq!(db.add_comment(&comment(p.id, "s", 0, "  ")).expect("add"), CommentAdded::Invalid);
    let long = "é".repeat(crate::MAX_COMMENT_CHARS + 1);
    assert_eq!(db.add_comment(&comment(p.id, "s", 0, &long)).expect("add"), CommentAdded::Invalid);
    let longest = "é".repeat(crate::MAX_COMMENT_CHARS);
    assert!(matches!(db.add_comment(&comment(p.id, "t", 0, &longest)), Ok(CommentAdded::Added(_))), "chars, not bytes");
    assert_eq!(db.comments(p.id, "s", 100).expect("list").len(), 3);

    // Deleting one: only through its own project and session.
    assert!(!db.delete_comment(other.id, "s", late.id).expect("delete"));
    assert!(!db.delete_comment(p.id, "t", late.id).expect("delete"));
    assert!(db.delete_comment(p.id, "s", late.id).expect("delete"));
    assert!(!db.delete_comment(p.id, "s", late.id).expect("again"), "gone already");
    assert_eq!(db.comments(p.id, "s", 100).expect("list"), vec![early, same_moment]);

    // The cap: a full session refuses more, another session does not mind.
    for i in 2..crate::MAX_COMMENTS_PER_SESSION as u64 {
        added(comment(p.id, "s", i, "many"));
    }
    assert_eq!(db.comments(p.id, "s", usize::MAX).expect("list").len(), crate::MAX_COMMENTS_PER_SESSION);
    assert_eq!(db.add_comment(&comment(p.id, "s", 1, "one more")).expect("add"), CommentAdded::Full);
    assert_eq!(db.comments(p.id, "s", usize::MAX).expect("list").len(), crate::MAX_COMMENTS_PER_SESSION);
    added(comment(p.id, "t", 1, "another session"));
}

fn retention_deletes_comments_with_their_sessions(db: &impl Storage) {
    let p = db.create_project("p").expect("p");
    db.put_batch_blocking(p.id, &summary("old", "p", 0, 1_000), b"o").expect("put");
    db.put_batch_blocking(p.id, &summary("new", "p", 0, 9_000), b"n").expect("put");
    for session in ["old", "new"] {
        assert!(matches!(db.add_comment(&comment(p.id, session, 1, "c")), Ok(CommentAdded::Added(_))));
    }
    assert_eq!(db.delete_sessions_before(5_000).expect("delete"), 1);
    assert!(db.comments(p.id, "old", 10).expect("list").is_empty(), "the old session's comments go with it");
    assert_eq!(db.comments(p.id, "new", 10).expect("list").len(), 1);
    // A resent old batch starts a fresh session, without the old comments.
    db.put_batch_blocking(p.id, &summary("old", "p", 0, 1_000), b"o").expect("put");
    assert!(db.comments(p.id, "old", 10).expect("list").is_empty());
}
