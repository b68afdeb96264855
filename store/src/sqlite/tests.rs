//! Tests of the embedded engine: the conformance suite, durability across reopening, the
//! writer and sync threads, the bulk index and its recovery, migrations.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crossbeam_channel as channel;
use rusqlite::{Connection, params};

use super::index::{HELD_RETRY_AFTER, HIGHEST_INDEXED_SEQ, PendingIndex};
use super::schema::MIGRATIONS;
use super::sync::{AckPath, Acks, sync_loop};
use super::writer::{PendingBatch, writer_loop};
use super::{Db, SqliteStorage};
use crate::testsuite::StorageExt;
use crate::{BatchBody, BatchDone, BatchSummary, Error, IndexBacklog, Storage, Stored};

#[test]
fn sqlite_passes_the_conformance_suite() {
    crate::testsuite::run(|| SqliteStorage::in_memory().expect("in-memory database"));
}

#[test]
fn data_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = SqliteStorage::open(dir.path()).expect("db");
        let p = db.create_project("p").expect("project");
        let s = BatchSummary { session: "s".into(), page: "p".into(), ..BatchSummary::default() };
        db.put_batch_blocking(p.id, &s, b"a").expect("put");
    }
    let db = SqliteStorage::open(dir.path()).expect("db");
    assert_eq!(db.projects().expect("projects").len(), 1);
    assert_eq!(db.batch_count().expect("count"), 1);
}

#[test]
fn range_reads_and_the_session_cap_hold_on_a_file_database_across_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = |seq| BatchSummary { session: "s".into(), page: "p".into(), seq, ..BatchSummary::default() };
    let whole = crate::RangeRequest::whole(u64::MAX);
    {
        let db = SqliteStorage::open(dir.path()).expect("db");
        db.limit_session_bytes(Some(10));
        let p = db.create_project("p").expect("project");
        db.put_batch_blocking(p.id, &s(0), b"123456").expect("put");
        // Read on the bodies' own connection, the index flushed first.
        assert_eq!(db.batch_range(p.id, "s", &whole).expect("range").bodies, vec![b"123456".to_vec()]);
    }
    let db = SqliteStorage::open(dir.path()).expect("db");
    db.limit_session_bytes(Some(10));
    let p = db.projects().expect("projects")[0].id;
    // The cap counts what the session stored before the restart (from the session index).
    assert!(matches!(db.put_batch_blocking(p, &s(1), b"78901"), Err(Error::SessionFull { stored: 6, cap: 10 })));
    assert_eq!(db.put_batch_blocking(p, &s(1), b"7890").expect("fits"), Stored::New);
    let all = db.batch_range(p, "s", &whole).expect("range");
    assert_eq!((all.total, all.bodies), (2, vec![b"123456".to_vec(), b"7890".to_vec()]));
    assert_eq!(db.session_stored_bytes(p, "s").expect("bytes"), 10);
}

#[test]
fn nothing_is_acknowledged_when_the_log_cannot_be_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (to_sync, unsynced) = mpsc::channel::<Acks>();
    let (tell_writer, synced) = channel::unbounded();
    let (reply, outcomes) = mpsc::channel();
    for _ in 0..2 {
        let reply = reply.clone();
        let done: BatchDone = Box::new(move |r| {
            let _ = reply.send(r);
        });
        to_sync.send(vec![(done, Ok(Stored::New))]).expect("send");
    }
    drop(to_sync);
    // No log file there: the first sync fails, and every later group is refused too.
    sync_loop(&dir.path().join("missing-wal"), &unsynced, &tell_writer);
    let outcomes: Vec<_> = outcomes.try_iter().collect();
    assert_eq!(outcomes.len(), 2);
    // The writer hears of both groups, synced or not, so it never waits for them.
    assert_eq!(synced.try_iter().sum::<usize>(), 2);
    assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
}

/// A writer thread on a fresh in-memory database whose sync side the test plays: returns
/// the writer's queue, the groups it hands over for syncing and where to say they synced.
fn writer_with_test_sync() -> (channel::Sender<PendingBatch>, mpsc::Receiver<Acks>, channel::Sender<usize>) {
    let conn = Connection::open_in_memory().expect("db");
    for m in MIGRATIONS {
        conn.execute_batch(m).expect("migrate");
    }
    let db = Arc::new(Mutex::new(Db { conn, index: PendingIndex::default() }));
    let (writer, rx) = channel::unbounded();
    let (to_sync, unsynced) = mpsc::channel();
    let (tell_writer, synced) = channel::unbounded();
    std::thread::spawn(move || {
        writer_loop(db, rx, &AtomicU64::new(0), AckPath::AfterSync { to_sync, synced });
    });
    (writer, unsynced, tell_writer)
}

fn pending(seq: u32, outcomes: &mpsc::Sender<Result<Stored, Error>>) -> PendingBatch {
    let outcomes = outcomes.clone();
    PendingBatch {
        project: 1,
        summary: BatchSummary { session: "s".into(), page: "p".into(), seq, ..BatchSummary::default() },
        body: BatchBody { bytes: vec![seq as u8].into(), gzip: false },
        reply: Box::new(move |r| {
            let _ = outcomes.send(r);
        }),
    }
}

#[test]
fn a_group_commits_even_when_the_sync_never_answers() {
    let (writer, unsynced, _tell_writer) = writer_with_test_sync();
    let (outcomes, results) = mpsc::channel();
    let wait = Duration::from_secs(10);
    writer.send(pending(0, &outcomes)).expect("send");
    let first = unsynced.recv_timeout(wait).expect("first group");
    assert_eq!(first.len(), 1);
    // The first group is never reported synced: the next one still commits, after at
    // most GROUP_WAIT_MAX, and goes to the sync thread too.
    writer.send(pending(1, &outcomes)).expect("send");
    writer.send(pending(2, &outcomes)).expect("send");
    let mut later = 0;
    while later < 2 {
        later += unsynced.recv_timeout(wait).expect("later group").len();
    }
    // Nothing was acknowledged: that is the sync thread's job once the log is durable.
    assert!(results.try_recv().is_err());
}

#[test]
fn batches_are_refused_once_the_sync_thread_is_gone() {
    let (writer, unsynced, tell_writer) = writer_with_test_sync();
    drop(unsynced);
    drop(tell_writer);
    let (outcomes, results) = mpsc::channel();
    let wait = Duration::from_secs(10);
    for seq in 0..3 {
        writer.send(pending(seq, &outcomes)).expect("send");
        let outcome = results.recv_timeout(wait).expect("an answer");
        assert!(matches!(outcome, Err(Error::Stopped("the sync thread"))), "{outcome:?}");
    }
}

#[test]
fn acknowledged_batches_of_a_file_database_are_in_it_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqliteStorage::open(dir.path()).expect("db");
    let p = db.create_project("p").expect("project");
    let (reply, outcomes) = mpsc::channel();
    for seq in 0..300 {
        let s = BatchSummary { session: format!("s{}", seq % 7), page: "p".into(), seq, ..BatchSummary::default() };
        let reply = reply.clone();
        db.put_batch(
            p.id,
            s,
            BatchBody { bytes: vec![1, 2, 3].into(), gzip: false },
            Box::new(move |r| {
                let _ = reply.send(r);
            }),
        );
    }
    drop(reply);
    let outcomes: Vec<_> = outcomes.iter().collect();
    assert_eq!(outcomes.len(), 300);
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Stored::New))));
    drop(db);
    let db = SqliteStorage::open(dir.path()).expect("db");
    assert_eq!(db.batch_count().expect("count"), 300);
    assert_eq!(db.session(p.id, "s3").expect("session").map(|s| s.batches), Some(43));
}

/// An encoded batch with `clicks` clicks, and its summary as ingest makes it.
fn batch(session: &str, seq: u32, clicks: u32) -> (BatchSummary, Vec<u8>) {
    let b = replay_protocol::test_util::click_batch(
        session,
        "page",
        seq,
        1_800_000_000_000 + u64::from(seq) * 5_000,
        clicks,
    );
    let bytes = replay_protocol::encode_batch(&b).expect("encode");
    let summary =
        replay_core::summarize(&replay_protocol::decode_batch_borrowed(&bytes, &Default::default()).expect("decode"));
    (summary, bytes)
}

#[test]
fn batches_logged_but_not_indexed_are_indexed_when_the_database_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = {
        let db = SqliteStorage::open(dir.path()).expect("db");
        let p = db.create_project("p").expect("project");
        let (s, body) = batch("kept", 0, 1);
        db.put_batch_blocking(p.id, &s, &body).expect("put");
        assert_eq!(db.batch_count().expect("count"), 1);
        p.id
    };
    // What a crash between a group commit and the next index flush leaves: rows past
    // `indexed_through`, one of them a second copy of an indexed key.
    {
        let conn = Connection::open(dir.path().join("replay.sqlite3")).expect("raw");
        let (_, unindexed) = batch("lost", 0, 3);
        let (_, copy) = batch("kept", 0, 1);
        for (id, session, body) in [(10, "lost", unindexed), (11, "kept", copy)] {
            conn.execute(
                "INSERT INTO batch_log (id, project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body)
                 VALUES (?1, ?2, ?3, 'page', 0, 1800000000000, 1800000000000, 7, ?4)",
                params![id, project, session, body],
            )
            .expect("insert");
        }
    }
    let db = SqliteStorage::open(dir.path()).expect("db");
    let lost = db.session(project, "lost").expect("session").expect("indexed on open");
    assert_eq!((lost.batches, lost.clicks), (1, 3), "summarised again from its body");
    assert_eq!(db.session(project, "kept").expect("session").map(|s| s.batches), Some(1));
    assert_eq!(db.batch_count().expect("count"), 2);
    let rows: i64 =
        db.lock().expect("lock").query_row("SELECT COUNT(*) FROM batch_log", [], |r| r.get(0)).expect("rows");
    assert_eq!(rows, 2, "the second copy of an indexed key is dropped");
    // New rows continue after the recovered ones.
    let (s, body) = batch("next", 0, 0);
    db.put_batch_blocking(project, &s, &body).expect("put");
    let id: i64 = db
        .lock()
        .expect("lock")
        .query_row("SELECT batch FROM batch_keys WHERE session_id = 'next'", [], |r| r.get(0))
        .expect("id");
    assert_eq!(id, 12);
}

/// A freeze marker numbered `seq`, encoded, and its summary as ingest makes it.
fn freeze_marker(session: &str, seq: u32) -> (BatchSummary, Vec<u8>) {
    use replay_protocol::{Event, EventData, Freeze};
    let mut b = replay_protocol::Batch::new(session, "page", seq, 1_800_000_000_000 + u64::from(seq) * 5_000 - 100);
    let started = Freeze::Started { url: "https://shop.test/".into(), last_action: "click button#pay".into() };
    b.events.push(Event { t: 0, data: EventData::Freeze(started) });
    let bytes = replay_protocol::encode_batch(&b).expect("encode");
    let summary =
        replay_core::summarize(&replay_protocol::decode_batch_borrowed(&bytes, &Default::default()).expect("decode"));
    assert!(summary.is_freeze_marker());
    (summary, bytes)
}

#[test]
fn a_freeze_marker_and_the_real_batch_of_its_number_are_both_indexed_after_a_crash_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (real, real_body) = batch("s", 1, 2);
    let (marker, marker_body) = freeze_marker("s", 1);
    let project = {
        let db = SqliteStorage::open(dir.path()).expect("db");
        let p = db.create_project("p").expect("project");
        let (first, body) = batch("s", 0, 1);
        db.put_batch_blocking(p.id, &first, &body).expect("put");
        db.batch_count().expect("count (flushes the index)");
        p.id
    };
    // What a crash before the next index flush leaves: both logged, neither indexed.
    {
        let conn = Connection::open(dir.path().join("replay.sqlite3")).expect("raw");
        for (id, s, body) in [(10, &marker, &marker_body), (11, &real, &real_body)] {
            conn.execute(
                "INSERT INTO batch_log (id, project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body)
                 VALUES (?1, ?2, 's', 'page', 1, ?3, ?4, ?3, ?5)",
                params![id, project, s.start_ms as i64, s.end_ms as i64, body],
            )
            .expect("insert");
        }
    }
    let db = SqliteStorage::open(dir.path()).expect("db");
    assert_eq!(db.batch_count().expect("count"), 3, "neither taken for the other's copy");
    let row = db.session(project, "s").expect("session").expect("row");
    assert_eq!((row.batches, row.clicks, row.freezes), (3, 3, 1));
    assert_eq!(db.put_batch_blocking(project, &marker, &marker_body).expect("put"), Stored::Duplicate);
    assert_eq!(db.put_batch_blocking(project, &real, &real_body).expect("put"), Stored::Duplicate);
    let (next, body) = batch("s", 2, 1);
    assert_eq!(db.put_batch_blocking(project, &next, &body).expect("put"), Stored::New);
    let seqs: Vec<u32> = db.batch_keys(project, "s").expect("keys").into_iter().map(|(_, seq)| seq).collect();
    assert_eq!(seqs, [0, 1, 1, 2]);
    let bodies = db.batches(project, "s").expect("bodies");
    assert_eq!(bodies[1], marker_body, "the marker before the real batch of its number");
    assert_eq!(bodies[2], real_body);
}

/// The writer takes a batch past its page's highest stored number for new without a lookup:
/// a freeze marker, keyed apart and numbered past the real batches, must not raise that
/// number, pending or indexed (else the page's next real batches would each cost a lookup;
/// a lookup answers New all the same, so only this tells).
#[test]
fn a_freeze_marker_does_not_raise_its_pages_highest_number_pending_or_indexed() {
    let db = SqliteStorage::in_memory().expect("db");
    let p = db.create_project("p").expect("project").id;
    for seq in [0, 1] {
        let (s, body) = batch("s", seq, 1);
        assert_eq!(db.put_batch_blocking(p, &s, &body).expect("put"), Stored::New);
    }
    let (marker, body) = freeze_marker("s", 5);
    assert_eq!(db.put_batch_blocking(p, &marker, &body).expect("put"), Stored::New);
    let highest_known = |db: &SqliteStorage| {
        let conn = db.conn.lock().expect("lock");
        conn.index.pages.get(&(p, "s".to_string(), "page".to_string())).copied()
    };
    assert_eq!(highest_known(&db), Some(1), "the writer's own note");
    db.batch_count().expect("count (flushes the index)");
    assert_eq!(highest_known(&db), Some(1));
    let conn = db.conn.lock().expect("lock");
    let indexed: i64 = conn.query_row(HIGHEST_INDEXED_SEQ, params![p, "s", "page"], |r| r.get(0)).expect("highest");
    assert_eq!(indexed, 1, "the stored keys' (a page the writer forgot)");
}

#[test]
fn a_logged_batch_that_no_longer_decodes_never_takes_the_place_of_a_real_batch_of_its_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (real, real_body) = batch("s", 1, 2);
    let project = {
        let db = SqliteStorage::open(dir.path()).expect("db");
        let p = db.create_project("p").expect("project");
        let (first, body) = batch("s", 0, 1);
        db.put_batch_blocking(p.id, &first, &body).expect("put");
        db.batch_count().expect("count (flushes the index)");
        p.id
    };
    // A crash before the next index flush leaves three rows numbered 1: two that no longer
    // decode (logged first and last: a freeze marker and a copy of something, for all
    // recovery can tell) and the real batch between them.
    {
        let conn = Connection::open(dir.path().join("replay.sqlite3")).expect("raw");
        for (id, body) in [(10, &b"not a batch"[..]), (11, &real_body[..]), (12, &b"not a batch either"[..])] {
            conn.execute(
                "INSERT INTO batch_log (id, project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body)
                 VALUES (?1, ?2, 's', 'page', 1, ?3, ?4, ?3, ?5)",
                params![id, project, real.start_ms as i64, real.end_ms as i64, body],
            )
            .expect("insert");
        }
    }
    let db = SqliteStorage::open(dir.path()).expect("db");
    // The real batch keeps its key; the first undecodable row takes the other key of the
    // number; the last, with both taken, is a copy and dropped.
    assert_eq!(db.batch_count().expect("count"), 3);
    let conn = Connection::open(dir.path().join("replay.sqlite3")).expect("raw");
    let keyed: Vec<(i64, i64)> = conn
        .prepare("SELECT seq, batch FROM batch_keys WHERE session_id = 's' ORDER BY seq")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(keyed[1..], [(1, 11), ((1 << 32) + 1, 10)]);
    let logged: Vec<i64> = conn
        .prepare("SELECT id FROM batch_log WHERE id >= 10 ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(logged, [10, 11]);
    assert_eq!(db.batches(project, "s").expect("bodies")[2], real_body);
    assert_eq!(db.put_batch_blocking(project, &real, &real_body).expect("put"), Stored::Duplicate);
    // Deleting the session reaches every row it kept.
    db.delete_sessions(project, &["s".to_string()]).expect("delete");
    let left: i64 = conn.query_row("SELECT COUNT(*) FROM batch_log", [], |r| r.get(0)).expect("count");
    assert_eq!(left, 0);
}

#[test]
fn resent_batches_are_duplicates_whether_pending_indexed_or_from_before_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let put = |db: &SqliteStorage, seq: u32| {
        let s = BatchSummary { session: "s".into(), page: "p".into(), seq, ..BatchSummary::default() };
        db.put_batch_blocking(1, &s, b"x").expect("put")
    };
    {
        let db = SqliteStorage::open(dir.path()).expect("db");
        db.create_project("p").expect("project");
        for seq in 0..6 {
            assert_eq!(put(&db, seq), Stored::New);
        }
        assert_eq!(put(&db, 3), Stored::Duplicate, "still pending");
        assert_eq!(db.batch_count().expect("count"), 6);
        assert_eq!(put(&db, 4), Stored::Duplicate, "indexed");
        assert_eq!(put(&db, 9), Stored::New);
    }
    let db = SqliteStorage::open(dir.path()).expect("db");
    assert_eq!(put(&db, 5), Stored::Duplicate, "stored before the restart");
    assert_eq!(put(&db, 7), Stored::New, "below the highest seq, never sent");
    assert_eq!(put(&db, 7), Stored::Duplicate);
    assert_eq!(put(&db, 10), Stored::New);
    assert_eq!(db.session(1, "s").expect("session").map(|s| s.batches), Some(9));
}

/// Stores batch `seq` of `session` (page `p`, project 1).
fn put_in(db: &SqliteStorage, session: &str, seq: u32) -> Stored {
    let s = BatchSummary { session: session.into(), page: "p".into(), seq, ..BatchSummary::default() };
    db.put_batch_blocking(1, &s, b"x").expect("put")
}

fn batches_of(db: &SqliteStorage, session: &str) -> Option<u64> {
    db.session(1, session).expect("session").map(|s| s.batches)
}

/// Makes the index refuse `session`'s row (a connection's own trigger, gone on reopening).
fn poison_session(db: &SqliteStorage, session: &str) {
    db.conn
        .lock()
        .expect("lock")
        .execute_batch(&format!(
            "CREATE TEMP TRIGGER poison BEFORE INSERT ON sessions WHEN NEW.id = '{session}'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;"
        ))
        .expect("trigger");
}

#[test]
fn a_lone_batch_that_cannot_be_indexed_is_held_and_tried_again() {
    let db = SqliteStorage::in_memory().expect("db");
    db.create_project("p").expect("project");
    poison_session(&db, "bad");
    assert_eq!(put_in(&db, "bad", 0), Stored::New);
    // A flush of that one entry fails while the database takes other writes: held.
    assert_eq!(batches_of(&db, "bad"), None);
    assert_eq!(db.index_backlog(), IndexBacklog { pending: 0, held: 1 });
    assert_eq!(put_in(&db, "a", 0), Stored::New);
    assert_eq!(batches_of(&db, "a"), Some(1), "later batches are indexed");
    // Once the cause is gone, the next retry (due after a minute) indexes it.
    {
        let mut conn = db.conn.lock().expect("lock");
        conn.execute_batch("DROP TRIGGER temp.poison").expect("drop trigger");
        conn.index.held_since = Instant::now().checked_sub(HELD_RETRY_AFTER);
    }
    assert_eq!(put_in(&db, "a", 1), Stored::New, "a commit, then a flush step");
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.index_backlog().held > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(batches_of(&db, "bad"), Some(1));
    assert_eq!(db.index_backlog(), IndexBacklog::default());
}

#[test]
fn a_batch_that_cannot_be_indexed_does_not_hold_up_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = SqliteStorage::open(dir.path()).expect("db");
        db.create_project("p").expect("project");
        // Stands in for entries that fail for good: one session's row is refused (after its
        // keys went in, which must be rolled back with it).
        poison_session(&db, "bad");
        for seq in 0..3 {
            for session in ["a", "bad", "b"] {
                assert_eq!(put_in(&db, session, seq), Stored::New);
            }
        }
        // Reads flush first: the other sessions are indexed, the bad one is held.
        assert_eq!(batches_of(&db, "a"), Some(3));
        assert_eq!(batches_of(&db, "b"), Some(3));
        assert_eq!(batches_of(&db, "bad"), None);
        assert_eq!(db.index_backlog(), IndexBacklog { pending: 0, held: 3 }, "operators see it");
        assert_eq!(db.batch_count().expect("count"), 6, "no key of the held batches stayed");
        assert_eq!(put_in(&db, "bad", 1), Stored::Duplicate, "a held batch is still known");
        assert_eq!(put_in(&db, "a", 3), Stored::New);
        assert_eq!(batches_of(&db, "a"), Some(4), "later flushes go on");
    }
    // Opened again (the trigger was the connection's own): the held batches are indexed
    // from the log, and nothing is indexed twice.
    let db = SqliteStorage::open(dir.path()).expect("db");
    assert_eq!(batches_of(&db, "bad"), Some(3));
    assert_eq!(batches_of(&db, "a"), Some(4));
    assert_eq!(batches_of(&db, "b"), Some(3));
    assert_eq!(db.batch_count().expect("count"), 10);
}

#[test]
fn a_database_whose_index_cannot_be_written_at_open_still_opens_and_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = SqliteStorage::open(dir.path()).expect("db");
        db.create_project("p").expect("project");
        for seq in 0..4 {
            put_in(&db, "s", seq);
        }
        // As a crash would leave it: logged, not indexed. Then the index and its watermark
        // refuse every write, as a full disk would.
        let conn = db.conn.lock().expect("lock");
        conn.execute_batch(
            "DELETE FROM batch_keys; DELETE FROM sessions; UPDATE index_state SET indexed_through = 0;
             CREATE TRIGGER refuse BEFORE INSERT ON batch_keys BEGIN SELECT RAISE(ABORT, 'refused'); END;
             CREATE TRIGGER refuse_state BEFORE UPDATE ON index_state BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .expect("unindex");
    }
    // Indexing at open fails: the database opens anyway, with the entries pending (not
    // held: nothing went in, and the database took no write either).
    let db = SqliteStorage::open(dir.path()).expect("db");
    assert_eq!(db.index_backlog(), IndexBacklog { pending: 4, held: 0 });
    assert_eq!(put_in(&db, "s", 2), Stored::Duplicate, "a pending batch is known");
    assert!(db.session(1, "s").is_ok(), "reads still answer");
    db.conn
        .lock()
        .expect("lock")
        .execute_batch("DROP TRIGGER refuse; DROP TRIGGER refuse_state")
        .expect("drop triggers");
    assert_eq!(put_in(&db, "s", 4), Stored::New);
    assert_eq!(batches_of(&db, "s"), Some(5));
    assert_eq!(db.batch_count().expect("count"), 5);
}

#[test]
fn batches_indexed_together_give_the_rows_they_give_one_by_one() {
    // A small deterministic generator: runs of batches of two sessions, some setting the
    // fields the session index takes from one batch, some only counting.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for case in 0..40 {
        let (one_by_one, together) = (SqliteStorage::in_memory().expect("db"), SqliteStorage::in_memory().expect("db"));
        for db in [&one_by_one, &together] {
            db.create_project("p").expect("project");
        }
        // Page ids are random, so key order is not arrival order.
        let mut seqs = [[0u32; 2]; 2];
        for _ in 0..30 {
            let which = next(2) as usize;
            let page = next(2) as usize;
            let pick = |n: u64, v: &str| (n == 0).then(|| v.to_owned());
            let mut s = BatchSummary {
                session: format!("s{which}"),
                page: ["z", "a"][page].into(),
                seq: seqs[which][page],
                start_ms: 1_000 + next(50) * 10,
                received_ms: 5_000 + next(1_000),
                events: next(9),
                clicks: next(3),
                errors: next(2),
                freezes: next(2),
                dropped: next(2),
                url: pick(next(4), &format!("https://x.test/{}", next(3))),
                user_agent: pick(next(6), "UA"),
                user: pick(next(5), &format!("u{}", next(3))),
                release: pick(next(5), "1.0"),
                browser: pick(next(6), "Chrome"),
                longest_freeze_ms: if next(5) == 0 { next(900) } else { 0 },
                ..BatchSummary::default()
            };
            s.end_ms = s.start_ms + next(5_000);
            if s.longest_freeze_ms > 0 {
                s.freeze_culprit = Some(format!("f{}", next(3)));
                s.freeze_started_ms = s.start_ms;
                s.freeze_ended_ms = if next(2) == 0 { s.end_ms } else { 0 };
            }
            seqs[which][page] += 1;
            one_by_one.put_batch_blocking(1, &s, b"x").expect("put");
            // A read flushes: one by one applies each batch on its own.
            one_by_one.session(1, &s.session).expect("read");
            together.put_batch_blocking(1, &s, b"x").expect("put");
        }
        for session in ["s0", "s1"] {
            assert_eq!(
                together.session(1, session).expect("read"),
                one_by_one.session(1, session).expect("read"),
                "case {case}, session {session}"
            );
        }
    }
}

#[test]
fn a_version_6_database_moves_its_batches_to_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let conn = Connection::open(dir.path().join("replay.sqlite3")).expect("raw");
        for m in &MIGRATIONS[..6] {
            conn.execute_batch(m).expect("migration");
        }
        conn.pragma_update(None, "user_version", 6).expect("version");
        conn.execute("INSERT INTO projects (id, name, ingest_key, created_ms) VALUES (1, 'p', 'k', 0)", [])
            .expect("project");
        for (page, seq, start) in [("b", 0, 200), ("a", 1, 100), ("a", 0, 100)] {
            conn.execute(
                "INSERT INTO batches (project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body)
                 VALUES (1, 's', ?1, ?2, ?3, ?3, 0, ?4)",
                params![page, seq, start, format!("{page}{seq}").into_bytes()],
            )
            .expect("batch");
        }
    }
    let db = SqliteStorage::open(dir.path()).expect("db");
    let bodies: Vec<Vec<u8>> = db.batches(1, "s").expect("batches");
    assert_eq!(bodies, [b"a0".to_vec(), b"a1".to_vec(), b"b0".to_vec()], "replay order kept");
    let s = BatchSummary { session: "s".into(), page: "a".into(), seq: 1, ..BatchSummary::default() };
    assert_eq!(db.put_batch_blocking(1, &s, b"again").expect("put"), Stored::Duplicate);
    // Migration 8 gave the old batches their stored sizes; 9 kept the project's key working.
    let range = crate::RangeRequest { max_bytes: 2, ..crate::RangeRequest::whole(u64::MAX) };
    let first = db.batch_range(1, "s", &range).expect("range");
    assert_eq!((first.bodies, first.next, first.total), (vec![b"a0".to_vec()], Some(1), 3));
    assert_eq!(db.project_by_key("k").expect("lookup").map(|p| p.id), Some(1));
    assert_eq!(db.ingest_keys(1).expect("keys").len(), 1);
}

#[test]
fn credential_lookups_do_not_wait_for_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqliteStorage::open(dir.path()).expect("db");
    let key = db.create_project("p").expect("project").ingest_key;
    db.set_setting("admin_token_sha256", "abc").expect("setting");
    db.put_user("ada", "hash").expect("user");
    db.create_login("cookie-hash", "ada", u64::MAX / 2).expect("login");
    // The main connection busy (as during a group commit or an index flush): the lookups made
    // by every request still answer, from their own connection.
    let busy = db.conn.lock().expect("lock");
    let (tx, rx) = mpsc::channel();
    let lookups = db.clone();
    std::thread::spawn(move || {
        let answers = (
            lookups.project_by_key(&key).map(|p| p.is_some()),
            lookups.project_by_key("made-up").map(|p| p.is_none()),
            lookups.setting("admin_token_sha256"),
            lookups.login_user("cookie-hash", 1),
            lookups.user_password_hash("ada"),
            lookups.user_count(),
        );
        let _ = tx.send(format!("{answers:?}"));
    });
    let answers = rx.recv_timeout(Duration::from_secs(30)).expect("the lookups answered while the writer was busy");
    drop(busy);
    assert_eq!(
        answers, r#"(Ok(true), Ok(true), Ok(Some("abc")), Ok(Some("ada")), Ok(Some("hash")), Ok(1))"#,
        "the lookups see what was committed"
    );
}

#[test]
fn deleting_a_session_drops_its_held_entries_and_reopening_does_not_bring_it_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = SqliteStorage::open(dir.path()).expect("db");
        db.create_project("p").expect("project");
        poison_session(&db, "bad");
        assert_eq!(put_in(&db, "bad", 0), Stored::New);
        assert_eq!(put_in(&db, "ok", 0), Stored::New);
        assert_eq!(batches_of(&db, "ok"), Some(1));
        assert_eq!(db.index_backlog().held, 1, "bad's batch is logged, not indexed");
        // Deleted while only its held entry knows it: no index row, but its batch goes.
        assert_eq!(db.delete_sessions(1, &["bad".into()]).expect("delete"), 0);
        assert_eq!(db.index_backlog(), IndexBacklog::default(), "nothing held any more");
        let s = BatchSummary { session: "bad".into(), page: "p".into(), seq: 1, ..BatchSummary::default() };
        assert!(matches!(db.put_batch_blocking(1, &s, b"x"), Err(Error::SessionDeleted)), "its page is refused");
        assert_eq!(db.batch_count().expect("count"), 1);
    }
    // The log row is gone too: opening again indexes nothing of it.
    let db = SqliteStorage::open(dir.path()).expect("db");
    assert_eq!(batches_of(&db, "bad"), None);
    assert_eq!(batches_of(&db, "ok"), Some(1));
    assert_eq!(db.batch_count().expect("count"), 1);
    assert_eq!(db.batch_keys(1, "bad").expect("keys"), vec![]);
}

#[test]
fn a_batch_waits_for_another_connection_s_write_instead_of_failing() {
    // Another connection writing (a second process on the same directory, or a storage being
    // dropped whose writer still indexes what it had pending): the group commit reads before it
    // writes, so a deferred transaction would fail at once with "database is locked" instead of
    // waiting its busy timeout.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = SqliteStorage::open(dir.path()).expect("db");
        db.create_project("p").expect("project");
        assert_eq!(put_in(&db, "s", 0), Stored::New);
    }
    // Reopened, the session is not in memory: the commit first reads what is stored of it.
    let db = SqliteStorage::open(dir.path()).expect("db");
    let other = Connection::open(dir.path().join("replay.sqlite3")).expect("raw");
    other.execute_batch("BEGIN IMMEDIATE; UPDATE projects SET name = 'q' WHERE id = 1;").expect("write lock");
    let (locked, release) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _ = release.recv_timeout(Duration::from_millis(300));
        other.execute_batch("COMMIT").expect("commit");
    });
    assert_eq!(put_in(&db, "s", 1), Stored::New, "waited for the other writer");
    drop(locked);
    holder.join().expect("holder");
    assert_eq!(db.session(1, "s").expect("session").map(|s| s.batches), Some(2));
}
