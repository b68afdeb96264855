//! The embedded default engine: one SQLite database in the data directory.
//!
//! WAL journal: a batch is acknowledged once its transaction committed and the log holding it
//! was synced, so it survives a crash or a power cut. Batches are written by one writer thread
//! with group commit (`writer`): every batch waiting when a transaction starts goes into it;
//! a sync thread (`sync`) then syncs the log once for every group committed meanwhile, so one
//! fsync acknowledges many concurrent uploads, and the writer paces its commits by the syncs.
//! A checkpoint thread on its own connection copies the log into the database. Every other
//! write keeps `synchronous=FULL`.
//!
//! Batches are appended to `batch_log` in arrival order; the indexes derived from them (the
//! batches' keys, the session index, error groups, environment facts) are written later, in
//! bulk (`index`). Bodies are stored as sent (gzip stays gzip) and decoded on read.
//!
//! A read of batches chooses them from `batch_keys` (each batch's stored size and start, in
//! replay order) under the main lock, flushed first, then reads only the chosen bodies on a
//! read-only connection of its own, without holding up the writer. The writer refuses a new
//! batch past the per-session cap from the sessions' stored bytes it keeps in memory (seeded
//! from the session index).
//!
//! Modules:
//! - `writer`: the writer thread and its group commit;
//! - `sync`: the sync thread (log durability) and the checkpoint thread;
//! - `index`: index entries held in memory, their bulk flush, and recovery at open;
//! - `schema`: the schema and its append-only migrations;
//! - `queries`: the read queries and the small writes outside the batch path;
//! - `artifacts`: release artifacts (source maps, minified files), bodies in their rows;
//! - `comments`: comments on sessions at a moment.

mod accounts;
mod artifacts;
mod clickmap;
mod comments;
mod index;
mod queries;
mod schema;
mod search;
mod sync;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use crossbeam_channel as channel;
use replay_core::{BatchSummary, new_key};
use rusqlite::Connection;

use self::index::{IndexCounts, PendingIndex, flush_all, recover_index};
use self::sync::{AckPath, WAL_CHECKPOINT_PAGES, checkpoint_loop, sync_loop};
use self::writer::{PendingBatch, writer_loop};
use crate::model::{choose_range, unpack_chosen};
use crate::shared::KeyCache;
use crate::{
    AuditEntry, BatchBody, BatchDone, BatchRange, Comment, CommentAdded, Error, ErrorGroup, FactComparison,
    IndexBacklog, IngestKey, Project, ProjectQuota, RangeRequest, SessionFilter, SessionRow, Storage, Usage, unpack,
};

/// SQLite storage; cheap to clone (one shared connection and one group-commit writer).
#[derive(Clone)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Db>>,
    writer: channel::Sender<PendingBatch>,
    /// Projects by ingest key (hit on every ingest request); cleared when projects or keys
    /// change through this storage, and trusted for [`crate::KEY_CACHE_TTL`] (changes made by
    /// another process: `replay-server project revoke-key`).
    keys: Arc<KeyCache>,
    /// Group commits so far (tells the checkpoint thread whether there is anything to do).
    groups_committed: Arc<AtomicU64>,
    /// The index backlog's size, as the writer last published it.
    backlog: Arc<IndexCounts>,
    /// A read-only connection of its own for the lookups every request may make (ingest keys,
    /// the admin token, login cookies, passwords): in WAL mode it reads while the writer
    /// writes, and it never waits for the pending index to be flushed. `None` in memory (a
    /// second connection would open another database): those lookups take the main
    /// connection, still without a flush.
    accounts: Option<Arc<Mutex<Connection>>>,
    /// A read-only connection of its own for batch bodies: a read chooses its batches from the
    /// index under the main lock (flushed first), then reads only their bodies here, without
    /// holding up the writer. `None` in memory (the main connection then, without a flush).
    bodies: Option<Arc<Mutex<Connection>>>,
}

/// The connection, with the index entries of logged batches not yet written to the indexes.
/// Both live under one lock: whoever holds it sees the indexes complete once it flushed.
struct Db {
    conn: Connection,
    index: PendingIndex,
}

impl std::ops::Deref for Db {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl SqliteStorage {
    /// Opens (creating when needed) the database `replay.sqlite3` in `dir` and migrates it.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
        let path = dir.join("replay.sqlite3");
        let storage = Self::init(Connection::open(&path)?, Some(dir.join("replay.sqlite3-wal")))?;
        // Checkpoints move on to a connection of their own (see `checkpoint_loop`); the writer
        // only checkpoints itself when the log grows past `WAL_CHECKPOINT_PAGES`.
        storage.lock()?.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        let accounts = Connection::open(&path)?;
        accounts.busy_timeout(std::time::Duration::from_secs(5))?;
        accounts.pragma_update(None, "query_only", true)?;
        let bodies = Connection::open(&path)?;
        bodies.busy_timeout(std::time::Duration::from_secs(5))?;
        bodies.pragma_update(None, "query_only", true)?;
        let storage = SqliteStorage {
            accounts: Some(Arc::new(Mutex::new(accounts))),
            bodies: Some(Arc::new(Mutex::new(bodies))),
            ..storage
        };
        let checkpointer = Connection::open(&path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        let writes = Arc::clone(&storage.groups_committed);
        std::thread::Builder::new()
            .name("replay-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &writes))
            .map_err(|e| Error::Io { path: "checkpoint thread".into(), source: e })?;
        Ok(storage)
    }

    /// A throwaway in-memory database, for tests.
    pub fn in_memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory()?, None)
    }

    /// `wal`: the write-ahead log of a file database, synced by the sync thread.
    fn init(mut conn: Connection, wal: Option<PathBuf>) -> Result<Self, Error> {
        // The transactions on this connection write, and most read first (a group commit looks
        // up what is stored of its sessions). Begun deferred, the upgrade to a write fails at
        // once with "database is locked" when another connection writes meanwhile (a
        // command-line process on the same directory, a dropped storage's writer finishing its
        // index): SQLite does not wait on a busy lock for a transaction that already reads.
        // Begun immediate, each takes the write lock first and waits its busy timeout for it;
        // so does a group commit that turns out to only read (all duplicates), which is rare.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The session index and the batches' key index are hit at random places (one per live
        // session): the default 2 MB cache made the writer read pages back at a few thousand
        // sessions. Negative: KiB.
        conn.pragma_update(None, "cache_size", -32 * 1024)?;
        schema::migrate(&conn)?;
        let mut db = Db { conn, index: PendingIndex::default() };
        recover_index(&mut db)?;
        let backlog = Arc::clone(&db.index.published);
        let conn = Arc::new(Mutex::new(db));
        let (writer, rx) = channel::unbounded();
        let writer_conn = Arc::clone(&conn);
        let groups_committed = Arc::new(AtomicU64::new(0));
        let committed = Arc::clone(&groups_committed);
        let acks = match wal {
            None => AckPath::Direct,
            Some(wal) => {
                let (to_sync, unsynced) = mpsc::channel();
                let (tell_writer, synced) = channel::unbounded();
                std::thread::Builder::new()
                    .name("replay-sqlite-sync".into())
                    .spawn(move || sync_loop(&wal, &unsynced, &tell_writer))
                    .map_err(|e| Error::Io { path: "sync thread".into(), source: e })?;
                AckPath::AfterSync { to_sync, synced }
            }
        };
        std::thread::Builder::new()
            .name("replay-sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx, &committed, acks))
            .map_err(|e| Error::Io { path: "writer thread".into(), source: e })?;
        Ok(SqliteStorage {
            conn,
            writer,
            keys: Arc::new(KeyCache::default()),
            groups_committed,
            backlog,
            accounts: None,
            bodies: None,
        })
    }

    fn forget_keys(&self) {
        self.keys.clear();
    }

    /// Runs a lookup of projects, settings, users or logins (tables the writer's batches never
    /// touch) without flushing the index and, on a file database, without the main
    /// connection's lock (see `accounts`).
    fn lookup<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        match &self.accounts {
            Some(conn) => f(&*conn.lock().map_err(|_| Error::Poisoned)?),
            None => f(&self.conn.lock().map_err(|_| Error::Poisoned)?.conn),
        }
    }

    /// Reads batch bodies on their own connection (see `bodies`).
    fn read_bodies<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        match &self.bodies {
            Some(conn) => f(&*conn.lock().map_err(|_| Error::Poisoned)?),
            None => f(&self.conn.lock().map_err(|_| Error::Poisoned)?.conn),
        }
    }

    /// The database, with every acknowledged batch in its indexes (pending entries are flushed
    /// first; a failed flush is logged and leaves them for the writer to retry).
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Db>, Error> {
        let mut db = self.conn.lock().map_err(|_| Error::Poisoned)?;
        if db.index.len() > 0
            && let Err(e) = flush_all(&mut db)
        {
            tracing::error!(error = %e, pending = db.index.len(), "writing the index failed; reading without it");
        }
        Ok(db)
    }
}

impl Storage for SqliteStorage {
    fn create_project(&self, name: &str) -> Result<Project, Error> {
        let key = new_key()?;
        let id = queries::insert_project(&self.lock()?.conn, name, &key)?;
        Ok(Project { id, name: name.to_owned(), ingest_key: key, allowed_origins: vec![], quota: Default::default() })
    }

    fn set_project_quota(&self, project: i64, quota: ProjectQuota) -> Result<(), Error> {
        queries::set_project_quota(&self.lock()?.conn, project, quota)?;
        self.forget_keys();
        Ok(())
    }

    fn set_allowed_origins(&self, project: i64, origins: &[String]) -> Result<(), Error> {
        queries::set_allowed_origins(&self.lock()?.conn, project, origins)?;
        self.forget_keys();
        Ok(())
    }

    fn rename_project(&self, project: i64, name: &str) -> Result<bool, Error> {
        let renamed = queries::rename_project(&self.lock()?.conn, project, name)?;
        self.forget_keys();
        Ok(renamed)
    }

    fn delete_project(&self, project: i64) -> Result<bool, Error> {
        // As `delete_sessions`: under the writer's lock, with nothing left pending.
        let mut db = self.lock()?;
        if db.index.len() > 0 {
            flush_all(&mut db)?;
        }
        let Db { conn, index } = &mut *db;
        let held: Vec<i64> = index.held.iter().filter(|e| e.project == project).map(|e| e.id).collect();
        let deleted = queries::delete_project(conn, project, &held)?;
        index.forget(|p, _| p == project);
        drop(db);
        self.forget_keys();
        Ok(deleted)
    }

    fn project_settings(&self, project: i64) -> Result<Option<String>, Error> {
        self.lookup(|c| queries::project_settings(c, project))
    }

    fn set_project_settings(&self, project: i64, settings: &str) -> Result<bool, Error> {
        queries::set_project_settings(&self.lock()?.conn, project, settings)
    }

    fn projects(&self) -> Result<Vec<Project>, Error> {
        queries::projects(&self.lock()?.conn)
    }

    fn project_by_key(&self, key: &str) -> Result<Option<Project>, Error> {
        if let Some(p) = self.cached_project(key) {
            return Ok(Some(Project::clone(&p)));
        }
        let found = self.lookup(|c| queries::project_by_key(c, key))?;
        if let Some((p, expires_ms)) = &found {
            self.keys.insert(key, p, *expires_ms);
        }
        Ok(found.map(|(p, _)| p))
    }

    fn rotate_key(&self, project: i64, grace_ms: u64) -> Result<String, Error> {
        let key = new_key()?;
        queries::rotate_key(&self.lock()?.conn, project, &key, grace_ms)?;
        self.forget_keys();
        Ok(key)
    }

    fn revoke_key(&self, project: i64, key: &str) -> Result<bool, Error> {
        let revoked = queries::revoke_key(&self.lock()?.conn, project, key)?;
        self.forget_keys();
        Ok(revoked)
    }

    fn ingest_keys(&self, project: i64) -> Result<Vec<IngestKey>, Error> {
        self.lookup(|c| queries::ingest_keys(c, project))
    }

    fn put_batch(&self, project: i64, summary: BatchSummary, body: BatchBody, done: BatchDone) {
        let pending = PendingBatch { project, summary, body, reply: done };
        if let Err(channel::SendError(p)) = self.writer.send(pending) {
            (p.reply)(Err(Error::Stopped("the writer thread")));
        }
    }

    fn cached_project(&self, key: &str) -> Option<Arc<Project>> {
        self.keys.get(key)
    }

    fn find_sessions(
        &self,
        project: i64,
        f: &SessionFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<SessionRow>, Error> {
        queries::find_sessions(&self.lock()?.conn, project, f, limit, offset)
    }

    fn session(&self, project: i64, id: &str) -> Result<Option<SessionRow>, Error> {
        queries::session(&self.lock()?.conn, project, id)
    }

    fn batches(&self, project: i64, session: &str) -> Result<Vec<Vec<u8>>, Error> {
        // Decoded after the lock is released.
        let rows = queries::stored_bodies(&self.lock()?.conn, project, session)?;
        rows.into_iter().map(|(body, encoding)| Ok(unpack(body, encoding == "gzip")?)).collect()
    }

    fn batch_range(&self, project: i64, session: &str, range: &RangeRequest) -> Result<BatchRange, Error> {
        // The index under the main lock (flushed first); the bodies after it is released.
        let index = queries::indexed_batches(&self.lock()?.conn, project, session)?;
        let (chosen, next, first_start_ms) = choose_range(&index, range)?;
        let stored = self.read_bodies(|conn| {
            let mut out = Vec::with_capacity(chosen.len());
            for &i in &chosen {
                // Missing only when retention deleted the session meanwhile.
                out.extend(queries::logged_body(conn, index[i].body)?);
            }
            Ok(out)
        })?;
        let stored = stored.into_iter().map(|(body, encoding)| (body, encoding == "gzip"));
        let (bodies, next) = unpack_chosen(stored, &chosen, next, range)?;
        Ok(BatchRange { total: index.len(), bodies, next, first_start_ms })
    }

    fn session_stored_bytes(&self, project: i64, session: &str) -> Result<u64, Error> {
        queries::session_stored_bytes(&self.lock()?.conn, project, session)
    }

    fn limit_session_bytes(&self, cap: Option<u64>) {
        if let Ok(mut db) = self.conn.lock() {
            db.index.session_cap = cap;
        }
    }

    fn usage_since(&self, project: i64, since_ms: u64, max_ids: usize) -> Result<Usage, Error> {
        queries::usage_since(&self.lock()?.conn, project, since_ms, max_ids)
    }

    fn batch_keys(&self, project: i64, session: &str) -> Result<Vec<(String, u32)>, Error> {
        queries::batch_keys(&self.lock()?.conn, project, session)
    }

    fn index_backlog(&self) -> IndexBacklog {
        // Not through the lock: a scrape never waits behind a commit or a flush.
        IndexBacklog {
            pending: self.backlog.pending.load(Ordering::Relaxed),
            held: self.backlog.held.load(Ordering::Relaxed),
        }
    }

    fn batch_count(&self) -> Result<u64, Error> {
        queries::batch_count(&self.lock()?.conn)
    }

    fn delete_sessions_before(&self, cutoff_ms: u64) -> Result<u64, Error> {
        let mut db = self.lock()?;
        let deleted = queries::delete_sessions_before(&mut db.conn, cutoff_ms)?;
        // Sessions deleted may come back (a resent batch): their stored bytes start over.
        db.index.forget_session_bytes();
        Ok(deleted)
    }

    fn delete_sessions(&self, project: i64, ids: &[String]) -> Result<u64, Error> {
        // Under the main lock, as the writer's groups: no batch of these sessions is stored
        // meanwhile, and every one stored before is indexed (or held) by now.
        let mut db = self.lock()?;
        if db.index.len() > 0 {
            // The flush in `lock` failed: entries left pending would bring sessions back.
            flush_all(&mut db)?;
        }
        let Db { conn, index } = &mut *db;
        let doomed: hashbrown::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let held: Vec<i64> = index
            .held
            .iter()
            .filter(|e| e.project == project && doomed.contains(e.summary.session.as_str()))
            .map(|e| e.id)
            .collect();
        let deleted = queries::delete_sessions(conn, project, ids, &held)?;
        index.forget_sessions(project, &doomed);
        Ok(deleted)
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), Error> {
        queries::append_audit(&self.lock()?.conn, entry)
    }

    fn audit_log(&self, project: i64, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        queries::audit_log(&self.lock()?.conn, project, before, limit)
    }

    fn delete_audit_before(&self, cutoff_ms: u64) -> Result<u64, Error> {
        queries::delete_audit_before(&self.lock()?.conn, cutoff_ms)
    }

    fn add_comment(&self, comment: &Comment) -> Result<CommentAdded, Error> {
        comments::add(&self.lock()?.conn, comment)
    }

    fn comments(&self, project: i64, session: &str, limit: usize) -> Result<Vec<Comment>, Error> {
        comments::list(&self.lock()?.conn, project, session, limit)
    }

    fn comment(&self, project: i64, session: &str, id: i64) -> Result<Option<Comment>, Error> {
        comments::get(&self.lock()?.conn, project, session, id)
    }

    fn delete_comment(&self, project: i64, session: &str, id: i64) -> Result<bool, Error> {
        comments::delete(&self.lock()?.conn, project, session, id)
    }

    fn mark_unrecovered_freezes(&self, project: i64, cutoff_ms: u64) -> Result<u64, Error> {
        queries::mark_unrecovered_freezes(&self.lock()?.conn, project, cutoff_ms)
    }

    fn unsettled_sessions(&self, cutoff_ms: u64, limit: usize) -> Result<Vec<crate::Unsettled>, Error> {
        queries::unsettled_sessions(&self.lock()?.conn, cutoff_ms, limit)
    }

    fn settle_frustration(
        &self,
        project: i64,
        session: &str,
        batches: u64,
        counts: Option<crate::FrustrationCounts>,
    ) -> Result<bool, Error> {
        queries::settle_frustration(&self.lock()?.conn, project, session, batches, counts)
    }

    fn error_groups(&self, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, Error> {
        queries::error_groups(&self.lock()?.conn, project, limit)
    }

    fn compare_environment(&self, project: i64, session: &str, sample: usize) -> Result<Vec<FactComparison>, Error> {
        queries::compare_environment(&self.lock()?.conn, project, session, sample)
    }

    fn clickmap(
        &self,
        project: i64,
        query: &crate::clickmap::ClickmapQuery,
    ) -> Result<crate::clickmap::Clickmap, Error> {
        clickmap::clickmap(&self.lock()?.conn, project, query)
    }

    fn delete_clickmap_before(&self, project: i64, day: i64) -> Result<(), Error> {
        let db = self.lock()?;
        for table in crate::clickmap::DAY_TABLES {
            db.conn.execute(&format!("DELETE FROM {table} WHERE project_id = ?1 AND day < ?2"), [project, day])?;
        }
        Ok(())
    }

    fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        self.lookup(|c| queries::setting(c, key))
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), Error> {
        queries::set_setting(&self.lock()?.conn, key, value)
    }

    fn put_artifact(&self, project: i64, release: &str, url: &str, body: &[u8]) -> Result<(), Error> {
        artifacts::put(&self.lock()?.conn, project, release, url, body)
    }

    fn artifact(&self, project: i64, release: &str, url: &str) -> Result<Option<Vec<u8>>, Error> {
        self.lookup(|c| artifacts::get(c, project, release, url))
    }

    fn artifacts(&self, project: i64, release: &str) -> Result<Vec<crate::Artifact>, Error> {
        self.lookup(|c| artifacts::list(c, project, release))
    }

    fn put_user(&self, name: &str, password_hash: &str) -> Result<(), Error> {
        queries::put_user(&self.lock()?.conn, name, password_hash)
    }

    fn user_password_hash(&self, name: &str) -> Result<Option<String>, Error> {
        self.lookup(|c| queries::user_password_hash(c, name))
    }

    fn user_count(&self) -> Result<u64, Error> {
        self.lookup(queries::user_count)
    }

    fn create_login(&self, token_hash: &str, user: &str, expires_ms: u64) -> Result<(), Error> {
        queries::create_login(&self.lock()?.conn, token_hash, user, expires_ms)
    }

    fn login_user(&self, token_hash: &str, now: u64) -> Result<Option<String>, Error> {
        self.lookup(|c| queries::login_user(c, token_hash, now))
    }

    fn delete_login(&self, token_hash: &str) -> Result<(), Error> {
        queries::delete_login(&self.lock()?.conn, token_hash)
    }
}

#[cfg(test)]
mod tests;
