//! Durable storage of projects, the session index and batch bodies.
//!
//! [`Storage`] is the seam between the HTTP layer and the engines. The embedded default,
//! [`SqliteStorage`], needs no setup: one SQLite database in WAL mode with `synchronous=FULL`, so
//! a batch whose insert has committed survives a crash (ingest acknowledges only after that).
//! Batches are keyed by `(project, session, page, seq)`: storing the same key twice is a no-op,
//! which is what makes ingest idempotent.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::Error;

/// A project: the unit of isolation. Its ingest key is public (write-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub ingest_key: String,
}

/// Facts about a batch that the session index aggregates, extracted at ingest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub session: String,
    pub page: String,
    pub seq: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// URL of the page, when the batch carries page meta.
    pub url: Option<String>,
    pub user_agent: Option<String>,
    pub events: u64,
    pub clicks: u64,
    pub dropped: u64,
    pub recorder_errors: u64,
}

/// One row of the session index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub id: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub duration_ms: u64,
    pub url: String,
    pub user_agent: String,
    pub pages: u64,
    pub batches: u64,
    pub events: u64,
    pub clicks: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub recorder_errors: u64,
}

/// Outcome of storing a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The batch is new and now durable.
    New,
    /// The same (session, page, seq) was stored before; nothing changed.
    Duplicate,
}

/// Storage engines implement this; the server only talks to storage through it.
pub trait Storage: Send + Sync + 'static {
    /// Creates a project with a fresh ingest key.
    fn create_project(&self, name: &str) -> Result<Project, Error>;
    /// All projects, oldest first.
    fn projects(&self) -> Result<Vec<Project>, Error>;
    /// The project owning an ingest key.
    fn project_by_key(&self, key: &str) -> Result<Option<Project>, Error>;
    /// Stores one encoded batch durably (idempotent on its key) and updates the session index.
    fn put_batch(&self, project: i64, summary: &BatchSummary, body: &[u8]) -> Result<Stored, Error>;
    /// Sessions of a project, newest first.
    fn sessions(&self, project: i64, limit: usize, offset: usize) -> Result<Vec<SessionRow>, Error>;
    /// One session's index row.
    fn session(&self, project: i64, id: &str) -> Result<Option<SessionRow>, Error>;
    /// The encoded batches of a session, in (page start, seq) order.
    fn batches(&self, project: i64, session: &str) -> Result<Vec<Vec<u8>>, Error>;
    /// Number of stored batches in all projects.
    fn batch_count(&self) -> Result<u64, Error>;
}

/// The embedded default engine: SQLite in the data directory.
#[derive(Clone)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Connection>>,
}

const MIGRATIONS: &[&str] = &[
    // 1: projects, session index, batches.
    "CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        ingest_key TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        id TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        url TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT '',
        pages INTEGER NOT NULL DEFAULT 0,
        batches INTEGER NOT NULL DEFAULT 0,
        events INTEGER NOT NULL DEFAULT 0,
        clicks INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        dropped INTEGER NOT NULL DEFAULT 0,
        recorder_errors INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (project_id, id)
    );
    CREATE INDEX sessions_by_start ON sessions(project_id, start_ms DESC);
    CREATE TABLE batches (
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        page_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (project_id, session_id, page_id, seq)
    );",
];

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A new random ingest key: 32 lowercase hex characters (128 bits).
pub fn new_key() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl SqliteStorage {
    /// Opens (creating when needed) the database `replay.sqlite3` in `dir` and migrates it.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
        let conn = Connection::open(dir.join("replay.sqlite3"))?;
        Self::init(conn)
    }

    /// A throwaway in-memory database, for tests.
    pub fn in_memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, Error> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", i64::try_from(i + 1).unwrap_or(i64::MAX))?;
            tx.commit()?;
        }
        Ok(SqliteStorage { conn: Arc::new(Mutex::new(conn)) })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, Error> {
        self.conn.lock().map_err(|_| Error::Poisoned)
    }
}

fn project_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project { id: r.get(0)?, name: r.get(1)?, ingest_key: r.get(2)? })
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    let get = |i| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
    let start_ms = get(1)?;
    let end_ms = get(2)?;
    Ok(SessionRow {
        id: r.get(0)?,
        start_ms,
        end_ms,
        duration_ms: end_ms.saturating_sub(start_ms),
        url: r.get(3)?,
        user_agent: r.get(4)?,
        pages: get(5)?,
        batches: get(6)?,
        events: get(7)?,
        clicks: get(8)?,
        bytes: get(9)?,
        dropped: get(10)?,
        recorder_errors: get(11)?,
    })
}

const SESSION_COLUMNS: &str =
    "id, start_ms, end_ms, url, user_agent, pages, batches, events, clicks, bytes, dropped, recorder_errors";

impl Storage for SqliteStorage {
    fn create_project(&self, name: &str) -> Result<Project, Error> {
        let key = new_key()?;
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO projects (name, ingest_key, created_ms) VALUES (?1, ?2, ?3)",
            params![name, key, to_i64(now_ms())],
        )?;
        Ok(Project { id: conn.last_insert_rowid(), name: name.to_owned(), ingest_key: key })
    }

    fn projects(&self) -> Result<Vec<Project>, Error> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare("SELECT id, name, ingest_key FROM projects ORDER BY id")?;
        let rows = stmt.query_map([], project_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn project_by_key(&self, key: &str) -> Result<Option<Project>, Error> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached("SELECT id, name, ingest_key FROM projects WHERE ingest_key = ?1")?;
        Ok(stmt.query_row([key], project_row).optional()?)
    }

    fn put_batch(&self, project: i64, s: &BatchSummary, body: &[u8]) -> Result<Stored, Error> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let inserted = tx.prepare_cached(
            "INSERT OR IGNORE INTO batches (project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            project,
            s.session,
            s.page,
            s.seq,
            to_i64(s.start_ms),
            to_i64(s.end_ms),
            to_i64(now_ms()),
            body
        ])?;
        if inserted == 0 {
            return Ok(Stored::Duplicate);
        }
        tx.prepare_cached(
            "INSERT INTO sessions (project_id, id, start_ms, end_ms, url, user_agent, pages, batches, events, clicks,
                                   bytes, dropped, recorder_errors)
             VALUES (?1, ?2, ?3, ?4, COALESCE(?5, ''), COALESCE(?6, ''), ?7, 1, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (project_id, id) DO UPDATE SET
                start_ms = MIN(start_ms, excluded.start_ms),
                end_ms = MAX(end_ms, excluded.end_ms),
                url = CASE WHEN url = '' THEN excluded.url ELSE url END,
                user_agent = CASE WHEN user_agent = '' THEN excluded.user_agent ELSE user_agent END,
                pages = pages + excluded.pages,
                batches = batches + 1,
                events = events + excluded.events,
                clicks = clicks + excluded.clicks,
                bytes = bytes + excluded.bytes,
                dropped = dropped + excluded.dropped,
                recorder_errors = recorder_errors + excluded.recorder_errors",
        )?
        .execute(params![
            project,
            s.session,
            to_i64(s.start_ms),
            to_i64(s.end_ms),
            s.url,
            s.user_agent,
            i64::from(s.seq == 0),
            to_i64(s.events),
            to_i64(s.clicks),
            i64::try_from(body.len()).unwrap_or(i64::MAX),
            to_i64(s.dropped),
            to_i64(s.recorder_errors),
        ])?;
        tx.commit()?;
        Ok(Stored::New)
    }

    fn sessions(&self, project: i64, limit: usize, offset: usize) -> Result<Vec<SessionRow>, Error> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE project_id = ?1 ORDER BY start_ms DESC, id LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = stmt
            .query_map(
                params![project, i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX)],
                session_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn session(&self, project: i64, id: &str) -> Result<Option<SessionRow>, Error> {
        let conn = self.lock()?;
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE project_id = ?1 AND id = ?2"))?;
        Ok(stmt.query_row(params![project, id], session_row).optional()?)
    }

    fn batches(&self, project: i64, session: &str) -> Result<Vec<Vec<u8>>, Error> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT b.body FROM batches b
             JOIN (SELECT page_id, MIN(start_ms) AS page_start FROM batches
                   WHERE project_id = ?1 AND session_id = ?2 GROUP BY page_id) p ON p.page_id = b.page_id
             WHERE b.project_id = ?1 AND b.session_id = ?2
             ORDER BY p.page_start, b.page_id, b.seq",
        )?;
        let rows =
            stmt.query_map(params![project, session], |r| r.get::<_, Vec<u8>>(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn batch_count(&self) -> Result<u64, Error> {
        let conn = self.lock()?;
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM batches", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(seq: u32) -> BatchSummary {
        BatchSummary {
            session: "s1".into(),
            page: "p1".into(),
            seq,
            start_ms: 1000 + u64::from(seq) * 10,
            end_ms: 1005 + u64::from(seq) * 10,
            url: Some("http://x/".into()),
            events: 3,
            clicks: 1,
            ..BatchSummary::default()
        }
    }

    #[test]
    fn resent_batch_is_stored_once() {
        let db = SqliteStorage::in_memory().expect("db");
        let p = db.create_project("p").expect("project");
        assert_eq!(db.put_batch(p.id, &summary(0), b"a").expect("put"), Stored::New);
        assert_eq!(db.put_batch(p.id, &summary(0), b"a").expect("put"), Stored::Duplicate);
        assert_eq!(db.put_batch(p.id, &summary(1), b"b").expect("put"), Stored::New);
        let row = db.session(p.id, "s1").expect("query").expect("row");
        assert_eq!((row.batches, row.events, row.clicks, row.pages), (2, 6, 2, 1));
        assert_eq!((row.start_ms, row.end_ms), (1000, 1015));
        assert_eq!(db.batches(p.id, "s1").expect("batches"), vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn projects_never_see_each_others_sessions() {
        let db = SqliteStorage::in_memory().expect("db");
        let a = db.create_project("a").expect("project");
        let b = db.create_project("b").expect("project");
        db.put_batch(a.id, &summary(0), b"a").expect("put");
        assert!(db.sessions(b.id, 10, 0).expect("list").is_empty());
        assert!(db.batches(b.id, "s1").expect("batches").is_empty());
        assert_eq!(db.project_by_key(&b.ingest_key).expect("key"), Some(b));
    }

    #[test]
    fn data_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = SqliteStorage::open(dir.path()).expect("db");
            let p = db.create_project("p").expect("project");
            db.put_batch(p.id, &summary(0), b"a").expect("put");
        }
        let db = SqliteStorage::open(dir.path()).expect("db");
        assert_eq!(db.projects().expect("projects").len(), 1);
        assert_eq!(db.batch_count().expect("count"), 1);
    }
}
