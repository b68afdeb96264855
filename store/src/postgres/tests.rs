//! Tests of the group commit against a real PostgreSQL: `REPLAY_TEST_POSTGRES_URL` names its
//! database (`cargo run -p replay-e2e --bin with-postgres -- cargo test -p replay-store`
//! starts a private cluster and sets it); without it they are skipped. Each test works in
//! schemas of its own, bodies in memory.

use std::sync::Arc;

use object_store::memory::InMemory;
use replay_core::clickmap::{Activity, ElementClicks, PageActivity};
use replay_core::{ErrorSighting, SearchTerm, TermKind};

use super::bulk::Entry;
use super::group::queued;
use super::{PostgresOptions, PostgresStorage};
use crate::clickmap::{ClickmapQuery, DAY_MS, day_of};
use crate::testsuite::StorageExt;
use crate::{BatchSummary, Error, SessionFilter, Storage, Stored};

/// A connection to a fresh schema, or `None` (skipped) without a database.
fn connect(test: &str) -> Option<PostgresStorage> {
    let Ok(url) = std::env::var("REPLAY_TEST_POSTGRES_URL") else {
        eprintln!("{test}: REPLAY_TEST_POSTGRES_URL is not set; skipped");
        return None;
    };
    let schema = format!("{test}_{}_{}", std::process::id(), replay_core::random_hex(4).expect("random"));
    Some(connect_to(&url, &schema))
}

fn connect_to(url: &str, schema: &str) -> PostgresStorage {
    PostgresStorage::connect(PostgresOptions {
        url: url.to_owned(),
        schema: Some(schema.to_owned()),
        store: Arc::new(InMemory::new()),
        prefix: "t".into(),
        max_connections: 4,
        ca_file: None,
    })
    .expect("connect")
}

const DAY: u64 = 19_700 * DAY_MS;
const LIST: &str = "https://shop.test/list";
const CART: &str = "https://shop.test/cart";

/// A batch with something of everything the index keeps: two pages of clicks and depths,
/// search terms, an error, facts on a page start, a user, a freeze and frustration signals.
fn batch(session: usize, seq: u32) -> BatchSummary {
    let t = DAY + 3_600_000 + u64::from(seq) * 1_000 + session as u64 * 10;
    let element = |path: &str, label: &str, clicks: u64| ElementClicks {
        path: path.into(),
        label: label.into(),
        clicks,
        x_sum: 10 * clicks as i64,
        y_sum: 20 * clicks as i64,
    };
    let list = PageActivity {
        url: seq.is_multiple_of(3).then(|| LIST.to_owned()),
        // Session 0 clicks in a loop: its page view passes the click cap (MAX_CLICKS_PER_VIEW)
        // in the middle of a group.
        elements: vec![
            element("#buy", if seq == 1 { "Buy" } else { "" }, if session == 0 { 300 } else { 2 }),
            element(&format!("#row{seq}"), "Row", 1),
        ],
        depth: Some(u8::try_from(seq % 11).unwrap_or(0)),
        last_ms: t,
    };
    let cart = PageActivity {
        url: Some(CART.into()),
        elements: vec![element("#pay", "Pay", 1)],
        depth: Some(4),
        last_ms: t + 1,
    };
    let mut s = BatchSummary {
        session: format!("s{session}"),
        page: "page".into(),
        seq,
        start_ms: t,
        end_ms: t + 500,
        received_ms: t + 600,
        url: (seq == 0).then(|| format!("{LIST}?s={session}")),
        user_agent: (seq == 0).then(|| "agent".to_owned()),
        events: 10 + u64::from(seq),
        clicks: 3,
        rage_clicks: u64::from(seq == 2),
        dead_clicks: u64::from(seq % 2),
        errors: 1,
        search_terms: vec![
            SearchTerm { kind: TermKind::Click, text: format!("buy {}", seq % 2), first_ms: t, last_ms: t + 5 },
            SearchTerm { kind: TermKind::Page, text: format!("/list/{session}"), first_ms: t, last_ms: t },
        ],
        error_sightings: vec![ErrorSighting {
            fingerprint: format!("f{}", seq % 2),
            message: format!("boom {seq}"),
            frame: "pay".into(),
            count: 2,
            at_ms: t + 7,
        }],
        activity: Activity {
            pages: if session.is_multiple_of(2) { vec![list, cart] } else { vec![list] },
            dropped: u64::from(seq == 4),
        },
        ..BatchSummary::default()
    };
    if seq == 0 {
        s.facts = vec![("browser".into(), "firefox".into()), ("flag".into(), format!("v{session}"))];
    }
    // Session 1 names 150 new feature flags in every batch: its facts reach the session's cap
    // (MAX_FACTS_PER_SESSION) at its second batch, in the group that stored its first (counted
    // in memory there), after which a fact it has still takes its latest value. Session 2 names
    // one fact twice in a batch: the later value stays.
    if session == 1 {
        s.facts.extend((0..150).map(|i| (format!("flag {seq}-{i}"), "on".to_owned())));
        if seq == 3 {
            s.facts.push(("browser".into(), "chrome".into()));
        }
    }
    if session == 2 && seq == 1 {
        s.facts = vec![("mode".into(), "a".into()), ("mode".into(), "b".into())];
    }
    if seq == 2 {
        s.user = Some(format!("user{session}"));
        (s.longest_freeze_ms, s.freeze_started_ms, s.freeze_culprit) = (900, t + 100, Some("loop".into()));
    }
    if seq == 3 {
        s.freeze_ended_ms = t + 200;
    }
    s
}

fn entry(project: i64, s: BatchSummary) -> Entry {
    let key = format!("{}-{}-{}", s.session, s.page, s.seq);
    Entry { project, summary: s, key, encoding: "", size: 1_000 }
}

/// What the index answers about the workload's sessions, for comparing two stores.
fn everything(db: &PostgresStorage, project: i64, sessions: usize) -> String {
    let mut out = String::new();
    for i in 0..sessions {
        let id = format!("s{i}");
        out.push_str(&format!("{:?}\n", db.session(project, &id).expect("session")));
        out.push_str(&format!("{:?}\n", db.compare_environment(project, &id, 100).expect("facts")));
        out.push_str(&format!("{:?}\n", db.batch_keys(project, &id).expect("keys")));
    }
    for url in [LIST, CART, "https://shop.test/*"] {
        let q = ClickmapQuery { url: url.into(), from_day: day_of(DAY), to_day: day_of(DAY), limit: 100 };
        out.push_str(&format!("{:?}\n", db.clickmap(project, &q).expect("clickmap")));
    }
    out.push_str(&format!("{:?}\n", db.error_groups(project, 10).expect("errors")));
    for clicked in ["buy 0", "buy 1", "nothing"] {
        let f = SessionFilter { clicked: Some(clicked.into()), ..SessionFilter::default() };
        let found: Vec<String> =
            db.find_sessions(project, &f, 100, 0).expect("find").into_iter().map(|r| r.id).collect();
        out.push_str(&format!("{clicked}: {found:?}\n"));
    }
    out
}

#[test]
fn a_group_commit_indexes_as_batch_by_batch_does() {
    let (Some(one), Some(bulk)) = (connect("per_batch"), connect("bulk")) else { return };
    let (p1, p2) = (one.create_project("p").expect("p").id, bulk.create_project("p").expect("p").id);
    let sessions = 4;
    // Arrival order: the sessions' batches interleaved, as concurrent recorders send them.
    let arrivals: Vec<BatchSummary> = (0..5).flat_map(|seq| (0..sessions).map(move |s| batch(s, seq))).collect();
    for s in &arrivals {
        let e = entry(p1, s.clone());
        let stored =
            one.block(move |engine| async move {
                engine.index_batch(e.project, &e.summary, &e.key, e.encoding, e.size).await
            })
            .expect("per batch");
        assert_eq!(stored, Stored::New);
    }
    // Two groups (the second resends one batch of the first, and holds one twice).
    let mut first: Vec<BatchSummary> = arrivals[..9].to_vec();
    let mut second: Vec<BatchSummary> = arrivals[9..].to_vec();
    second.insert(3, arrivals[2].clone());
    second.push(arrivals[12].clone());
    let mut outcomes = Vec::new();
    for group in [std::mem::take(&mut first), std::mem::take(&mut second)] {
        let answers = bulk
            .block(move |engine| async move {
                let (items, answers): (Vec<_>, Vec<_>) = group.into_iter().map(|s| queued(entry(p2, s))).unzip();
                engine.flush(items).await;
                let mut out = Vec::new();
                for a in answers {
                    out.push(a.await.map_err(|_| Error::Stopped("answer"))??);
                }
                Ok(out)
            })
            .expect("group commit");
        outcomes.extend(answers);
    }
    let new = outcomes.iter().filter(|o| **o == Stored::New).count();
    assert_eq!((new, outcomes.len() - new), (arrivals.len(), 2), "the resent and the doubled batch are duplicates");
    let (a, b) = (everything(&one, p1, sessions), everything(&bulk, p2, sessions));
    assert!(a.contains("Buy") && a.contains("user1") && a.contains("firefox"), "the workload indexes something: {a}");
    assert!(
        a.contains("chrome") && a.contains("flag 1-103") && !a.contains("flag 1-104"),
        "session 1's facts end at the cap"
    );
    assert!(a.contains("\"b\"") && !a.contains("\"a\""), "the later value of a fact named twice");
    assert_eq!(a, b, "per batch:\n{a}\nin groups:\n{b}");
}

#[test]
fn two_instances_storing_the_same_batches_at_once_count_them_once() {
    let Some(first) = connect("two_instances") else { return };
    let url = std::env::var("REPLAY_TEST_POSTGRES_URL").unwrap_or_default();
    let schema = first.block(|e| async move { e.query_opt_string("SELECT current_schema()", vec![]).await });
    let schema = schema.expect("schema").expect("a schema");
    let second = connect_to(&url, &schema);
    let p = first.create_project("p").expect("p").id;
    let sessions = 6;
    let all: Vec<BatchSummary> = (0..5).flat_map(|seq| (0..sessions).map(move |s| batch(s, seq))).collect();
    // Each instance gets every batch twice, from four threads at once.
    let outcomes: Vec<Stored> = std::thread::scope(|scope| {
        let threads: Vec<_> = [&first, &second, &first, &second]
            .into_iter()
            .map(|db| {
                let all = &all;
                scope.spawn(move || {
                    all.iter().map(|s| db.put_batch_blocking(p, s, b"body").expect("put")).collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("thread")).collect()
    });
    assert_eq!(outcomes.iter().filter(|o| **o == Stored::New).count(), all.len(), "each batch is new once");
    assert_eq!(first.batch_count().expect("count"), all.len() as u64);
    // The same batches stored once, one by one, in a store of their own.
    let Some(once) = connect("stored_once") else { return };
    let q = once.create_project("p").expect("p").id;
    for s in &all {
        assert_eq!(once.put_batch_blocking(q, s, b"body").expect("put"), Stored::New);
    }
    let (a, b) = (everything(&once, q, sessions), everything(&second, p, sessions));
    assert_eq!(a, b, "stored once:\n{a}\nby two instances, four times:\n{b}");
}

#[test]
fn a_batch_that_fails_in_a_group_fails_alone() {
    let Some(db) = connect("failing_batch") else { return };
    let p = db.create_project("p").expect("p").id;
    for s in [batch(0, 0), batch(1, 0)] {
        db.put_batch_blocking(p, &s, &[7; 1_000]).expect("put");
    }
    db.delete_sessions(p, &["s0".into()]).expect("delete");
    db.limit_session_bytes(Some(1_500));
    // s0 was deleted, s1 holds 1,000 of its 1,500 bytes: their batches fail, each its own way;
    // s2 and s3 go in.
    let group = vec![batch(2, 0), batch(0, 1), batch(3, 0), batch(1, 1), batch(2, 1)];
    let answers = db
        .block(move |engine| async move {
            let (items, answers): (Vec<_>, Vec<_>) = group.into_iter().map(|s| queued(entry(p, s))).unzip();
            engine.flush(items).await;
            let mut out = Vec::new();
            for a in answers {
                out.push(a.await.map_err(|_| Error::Stopped("answer"))?);
            }
            Ok(out)
        })
        .expect("flush");
    let shown: Vec<String> = answers.iter().map(|a| format!("{a:?}")).collect();
    assert!(matches!(answers[0], Ok(Stored::New)), "{shown:?}");
    assert!(matches!(answers[1], Err(Error::SessionDeleted)), "{shown:?}");
    assert!(matches!(answers[2], Ok(Stored::New)), "{shown:?}");
    assert!(matches!(answers[3], Err(Error::SessionFull { .. })), "{shown:?}");
    assert!(matches!(answers[4], Err(Error::SessionFull { .. })), "s2 passes its cap with its second batch: {shown:?}");
    assert_eq!(db.batch_keys(p, "s0").expect("keys"), []);
    assert_eq!(db.batch_keys(p, "s1").expect("keys").len(), 1);
    assert_eq!(db.batch_keys(p, "s2").expect("keys").len(), 1);
    assert_eq!(db.batch_keys(p, "s3").expect("keys").len(), 1);
    assert_eq!(db.session(p, "s3").expect("q").expect("row").bytes, 1_000);
}

#[test]
fn postgres_passes_the_storage_conformance_suite() {
    let Ok(url) = std::env::var("REPLAY_TEST_POSTGRES_URL") else {
        eprintln!("conformance: REPLAY_TEST_POSTGRES_URL is not set; skipped");
        return;
    };
    let run = format!("{}_{}", std::process::id(), replay_core::random_hex(4).expect("random"));
    let n = std::sync::atomic::AtomicUsize::new(0);
    // Every check in a schema of its own (bodies in memory; `tests/e2e/scale_out.rs` runs the
    // suite against an S3-compatible store).
    crate::testsuite::run(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        connect_to(&url, &format!("conformance_{run}_{i}"))
    });
}
