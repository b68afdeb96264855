//! The schema of the embedded engine: numbered migrations recorded in `PRAGMA user_version`.
//! They only ever append: a released migration is never edited, a change is a new one.

use rusqlite::Connection;

use crate::Error;

/// The migrations, in order: migration `i` (from 0) brings a database to version `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 2: richer session index, allowed origins, settings, viewer accounts and logins.
    "ALTER TABLE projects ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN release TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN environment TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN browser TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN freezes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN received_ms INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX sessions_by_received ON sessions(received_ms);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_ms INTEGER NOT NULL);
    CREATE TABLE logins (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        expires_ms INTEGER NOT NULL
    );",
    // 3: bodies stored as sent (gzip stays gzip).
    "ALTER TABLE batches ADD COLUMN encoding TEXT NOT NULL DEFAULT '';",
    // 4: freeze forensics in the session index, error groups.
    "ALTER TABLE sessions ADD COLUMN longest_freeze_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN freeze_culprit TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN freeze_started_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN freeze_ended_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN never_recovered INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX sessions_open_freezes ON sessions(received_ms)
        WHERE never_recovered = 0 AND freeze_started_ms > freeze_ended_ms;
    CREATE TABLE error_groups (
        project_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        message TEXT NOT NULL,
        frame TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, fingerprint)
    );
    CREATE INDEX error_groups_by_last ON error_groups(project_id, last_ms DESC);
    CREATE TABLE error_sessions (
        project_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        session_id TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, fingerprint, session_id)
    );
    CREATE INDEX error_sessions_by_session ON error_sessions(project_id, session_id);",
    // 5: rage clicks in the session index.
    "ALTER TABLE sessions ADD COLUMN rage_clicks INTEGER NOT NULL DEFAULT 0;",
    // 6: environment facts, to compare a session with the others.
    "CREATE TABLE session_facts (
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (project_id, session_id, name)
    );
    CREATE INDEX session_facts_by_value ON session_facts(project_id, name, value);",
    // 7: batches appended to a log in arrival order, their keys indexed in bulk (see
    // `PendingIndex`).
    "CREATE TABLE batch_log (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        page_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        body BLOB NOT NULL,
        encoding TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO batch_log (project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body, encoding)
        SELECT project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body, encoding
        FROM batches ORDER BY rowid;
    CREATE TABLE batch_keys (
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        page_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        batch INTEGER NOT NULL,
        PRIMARY KEY (project_id, session_id, page_id, seq)
    ) WITHOUT ROWID;
    INSERT INTO batch_keys (project_id, session_id, page_id, seq, start_ms, batch)
        SELECT project_id, session_id, page_id, seq, start_ms, id FROM batch_log;
    DROP TABLE batches;
    CREATE TABLE index_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_through INTEGER NOT NULL);
    INSERT INTO index_state (id, indexed_through) VALUES (1, (SELECT COALESCE(MAX(id), 0) FROM batch_log));",
    // 8: each batch's stored size in the key index, so a read chooses its range without
    // touching bodies.
    "ALTER TABLE batch_keys ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE batch_keys SET bytes = COALESCE((SELECT length(b.body) FROM batch_log b WHERE b.id = batch_keys.batch), 0);",
    // 9: several ingest keys per project (rotation with a grace period, revocation); the
    // key each project has keeps working. `projects.ingest_key` stays the newest one.
    "CREATE TABLE ingest_keys (
        key TEXT PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        revoked_ms INTEGER
    );
    CREATE INDEX ingest_keys_by_project ON ingest_keys(project_id);
    INSERT INTO ingest_keys (key, project_id, created_ms) SELECT ingest_key, id, created_ms FROM projects;",
    // 10: a project's own daily quotas (NULL: the server's).
    "ALTER TABLE projects ADD COLUMN quota_bytes_per_day INTEGER;
    ALTER TABLE projects ADD COLUMN quota_sessions_per_day INTEGER;",
    // 11: users and roles (server admins, disabled accounts, memberships per project, one-time
    // invitations), dated sign-ins, API tokens with scopes. `admin` becomes the server admin;
    // the other accounts, which could read every project, become members of every project.
    "ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET admin = 1 WHERE name = 'admin';
    ALTER TABLE logins ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX logins_by_user ON logins(user_name);
    CREATE TABLE memberships (
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        role TEXT NOT NULL,
        PRIMARY KEY (project_id, user_name)
    );
    CREATE INDEX memberships_by_user ON memberships(user_name);
    INSERT INTO memberships (project_id, user_name, role)
        SELECT p.id, u.name, 'member' FROM projects p, users u WHERE u.admin = 0;
    CREATE TABLE invites (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        expires_ms INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        user_name TEXT REFERENCES users(name) ON DELETE CASCADE,
        project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
        scopes TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        last_used_ms INTEGER,
        revoked_ms INTEGER
    );",
    // 12: release artifacts (source maps and minified files) to read stacks with.
    "CREATE TABLE artifacts (
        project_id INTEGER NOT NULL,
        release TEXT NOT NULL,
        url TEXT NOT NULL,
        body BLOB NOT NULL,
        uploaded_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, release, url)
    );",
    // 13: frustration signals beside rage clicks.
    "ALTER TABLE sessions ADD COLUMN dead_clicks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN error_clicks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN quick_backs INTEGER NOT NULL DEFAULT 0;",
    // 14: sessions deleted on request (their batches are refused from then on), the audit log,
    // and each project's own settings (JSON the server reads).
    "CREATE TABLE deleted_sessions (
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        deleted_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, session_id)
    ) WITHOUT ROWID;
    CREATE INDEX deleted_sessions_by_time ON deleted_sessions(deleted_ms);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_log_by_project ON audit_log(project_id, id DESC);
    CREATE INDEX audit_log_by_time ON audit_log(at_ms);
    ALTER TABLE projects ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';",
    // 15: frustration counts judged over the whole session once it is idle (`settled_batches`:
    // the batch count at that judgement; more batches since mean it is judged again).
    "ALTER TABLE sessions ADD COLUMN settled_batches INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX sessions_unsettled ON sessions(received_ms) WHERE batches > settled_batches;",
    // 16: comments on sessions at a moment (deleted with their session).
    "CREATE TABLE comments (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        t_ms INTEGER NOT NULL,
        author_user TEXT NOT NULL,
        author TEXT NOT NULL,
        body TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX comments_by_session ON comments(project_id, session_id, t_ms);",
    // 17: search by what happened (`crate::search`): each session's terms, bounded per kind.
    "CREATE TABLE session_terms (
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        kind INTEGER NOT NULL,
        term TEXT NOT NULL,
        first_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, session_id, kind, term)
    ) WITHOUT ROWID;
    ALTER TABLE sessions ADD COLUMN terms_dropped INTEGER NOT NULL DEFAULT 0;",
    // 18: single sign-on identities (an OpenID Connect issuer and subject) linked to accounts:
    // one account per identity, one identity per account and issuer.
    "CREATE TABLE sso_links (
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (issuer, subject),
        UNIQUE (issuer, user_name)
    );",
    // 19: click maps and scroll maps (`crate::clickmap`): aggregates per project, day and page.
    crate::clickmap::SCHEMA,
    // 20: the clicks each page view counted per URL (`crate::clickmap::MAX_CLICKS_PER_VIEW`).
    crate::clickmap::VIEW_CLICKS,
    // 21: the page views of a page-day (what a deletion asks of each page-day it touches).
    crate::clickmap::VIEWS_BY_PAGE,
];

/// Applies the migrations `conn` has not had yet, each in its own transaction. The version is
/// read inside it (which holds the write lock: the connection begins immediate), so two
/// processes opening one directory at once never both apply a migration.
pub(super) fn migrate(conn: &Connection) -> Result<(), Error> {
    loop {
        let tx = conn.unchecked_transaction()?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let Some(migration) = usize::try_from(version).ok().and_then(|v| MIGRATIONS.get(v)) else {
            return Ok(());
        };
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}
