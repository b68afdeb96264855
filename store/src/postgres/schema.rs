//! The scale-out engine's schema: numbered migrations recorded in `replay_migrations`,
//! applied under an advisory lock so that instances starting together apply each once. They
//! only ever append.

use super::Engine;
use crate::Error;

const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite engine has after its migration 4, in PostgreSQL types.
    "CREATE TABLE projects (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        ingest_key TEXT NOT NULL UNIQUE,
        allowed_origins TEXT NOT NULL DEFAULT '',
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE sessions (
        project_id BIGINT NOT NULL REFERENCES projects(id),
        id TEXT NOT NULL,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT NOT NULL,
        url TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT '',
        user_id TEXT NOT NULL DEFAULT '',
        release TEXT NOT NULL DEFAULT '',
        environment TEXT NOT NULL DEFAULT '',
        browser TEXT NOT NULL DEFAULT '',
        pages BIGINT NOT NULL DEFAULT 0,
        batches BIGINT NOT NULL DEFAULT 0,
        events BIGINT NOT NULL DEFAULT 0,
        clicks BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        dropped BIGINT NOT NULL DEFAULT 0,
        recorder_errors BIGINT NOT NULL DEFAULT 0,
        errors BIGINT NOT NULL DEFAULT 0,
        freezes BIGINT NOT NULL DEFAULT 0,
        received_ms BIGINT NOT NULL DEFAULT 0,
        longest_freeze_ms BIGINT NOT NULL DEFAULT 0,
        freeze_culprit TEXT NOT NULL DEFAULT '',
        freeze_started_ms BIGINT NOT NULL DEFAULT 0,
        freeze_ended_ms BIGINT NOT NULL DEFAULT 0,
        never_recovered BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (project_id, id)
    );
    CREATE INDEX sessions_by_start ON sessions(project_id, start_ms DESC);
    CREATE INDEX sessions_by_received ON sessions(received_ms);
    CREATE INDEX sessions_open_freezes ON sessions(received_ms)
        WHERE NOT never_recovered AND freeze_started_ms > freeze_ended_ms;
    CREATE TABLE batches (
        project_id BIGINT NOT NULL,
        session_id TEXT NOT NULL,
        page_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        object_key TEXT NOT NULL,
        encoding TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        PRIMARY KEY (project_id, session_id, page_id, seq)
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_ms BIGINT NOT NULL);
    CREATE TABLE logins (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        expires_ms BIGINT NOT NULL
    );
    CREATE TABLE error_groups (
        project_id BIGINT NOT NULL,
        fingerprint TEXT NOT NULL,
        message TEXT NOT NULL,
        frame TEXT NOT NULL,
        count BIGINT NOT NULL,
        first_ms BIGINT NOT NULL,
        last_ms BIGINT NOT NULL,
        PRIMARY KEY (project_id, fingerprint)
    );
    CREATE INDEX error_groups_by_last ON error_groups(project_id, last_ms DESC);
    CREATE TABLE error_sessions (
        project_id BIGINT NOT NULL,
        fingerprint TEXT NOT NULL,
        session_id TEXT NOT NULL,
        count BIGINT NOT NULL,
        last_ms BIGINT NOT NULL,
        PRIMARY KEY (project_id, fingerprint, session_id)
    );
    CREATE INDEX error_sessions_by_session ON error_sessions(project_id, session_id);",
    // 2: rage clicks in the session index.
    "ALTER TABLE sessions ADD COLUMN rage_clicks BIGINT NOT NULL DEFAULT 0;",
    // 3: environment facts, to compare a session with the others.
    "CREATE TABLE session_facts (
        project_id BIGINT NOT NULL,
        session_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (project_id, session_id, name)
    );
    CREATE INDEX session_facts_by_value ON session_facts(project_id, name, value);",
    // 4: several ingest keys per project (rotation with a grace period, revocation); the
    // key each project has keeps working. `projects.ingest_key` stays the newest one.
    "CREATE TABLE ingest_keys (
        key TEXT PRIMARY KEY,
        project_id BIGINT NOT NULL REFERENCES projects(id),
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT,
        revoked_ms BIGINT
    );
    CREATE INDEX ingest_keys_by_project ON ingest_keys(project_id);
    INSERT INTO ingest_keys (key, project_id, created_ms) SELECT ingest_key, id, created_ms FROM projects;",
    // 5: a project's own daily quotas (NULL: the server's).
    "ALTER TABLE projects ADD COLUMN quota_bytes_per_day BIGINT;
    ALTER TABLE projects ADD COLUMN quota_sessions_per_day BIGINT;",
    // 6: users and roles (server admins, disabled accounts, memberships per project, one-time
    // invitations), dated sign-ins, API tokens with scopes. `admin` becomes the server admin;
    // the other accounts, which could read every project, become members of every project.
    "ALTER TABLE users ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE;
    ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
    UPDATE users SET admin = TRUE WHERE name = 'admin';
    ALTER TABLE logins ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX logins_by_user ON logins(user_name);
    CREATE TABLE memberships (
        project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        role TEXT NOT NULL,
        PRIMARY KEY (project_id, user_name)
    );
    CREATE INDEX memberships_by_user ON memberships(user_name);
    INSERT INTO memberships (project_id, user_name, role)
        SELECT p.id, u.name, 'member' FROM projects p, users u WHERE NOT u.admin;
    CREATE TABLE invites (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        expires_ms BIGINT NOT NULL
    );
    CREATE TABLE api_tokens (
        id BIGSERIAL PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        user_name TEXT REFERENCES users(name) ON DELETE CASCADE,
        project_id BIGINT REFERENCES projects(id) ON DELETE CASCADE,
        scopes TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        last_used_ms BIGINT,
        revoked_ms BIGINT
    );",
    // 7: release artifacts (source maps and minified files); bodies in the object store.
    "CREATE TABLE artifacts (
        project_id BIGINT NOT NULL,
        release TEXT NOT NULL,
        url TEXT NOT NULL,
        object_key TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        uploaded_ms BIGINT NOT NULL,
        PRIMARY KEY (project_id, release, url)
    );",
    // 8: frustration signals beside rage clicks.
    "ALTER TABLE sessions ADD COLUMN dead_clicks BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN error_clicks BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN quick_backs BIGINT NOT NULL DEFAULT 0;",
    // 9: sessions deleted on request (their batches are refused from then on), the audit log,
    // and each project's own settings (JSON the server reads).
    "CREATE TABLE deleted_sessions (
        project_id BIGINT NOT NULL,
        session_id TEXT NOT NULL,
        deleted_ms BIGINT NOT NULL,
        PRIMARY KEY (project_id, session_id)
    );
    CREATE INDEX deleted_sessions_by_time ON deleted_sessions(deleted_ms);
    CREATE TABLE audit_log (
        id BIGSERIAL PRIMARY KEY,
        project_id BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_log_by_project ON audit_log(project_id, id DESC);
    CREATE INDEX audit_log_by_time ON audit_log(at_ms);
    ALTER TABLE projects ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';",
    // 10: frustration counts judged over the whole session once it is idle (`settled_batches`:
    // the batch count at that judgement; more batches since mean it is judged again).
    "ALTER TABLE sessions ADD COLUMN settled_batches BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX sessions_unsettled ON sessions(received_ms) WHERE batches > settled_batches;",
    // 11: comments on sessions at a moment (deleted with their session).
    "CREATE TABLE comments (
        id BIGSERIAL PRIMARY KEY,
        project_id BIGINT NOT NULL,
        session_id TEXT NOT NULL,
        t_ms BIGINT NOT NULL,
        author_user TEXT NOT NULL,
        author TEXT NOT NULL,
        body TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE INDEX comments_by_session ON comments(project_id, session_id, t_ms);",
    // 12: search by what happened (`crate::search`): each session's terms, bounded per kind.
    "CREATE TABLE session_terms (
        project_id BIGINT NOT NULL,
        session_id TEXT NOT NULL,
        kind BIGINT NOT NULL,
        term TEXT NOT NULL,
        first_ms BIGINT NOT NULL,
        last_ms BIGINT NOT NULL,
        PRIMARY KEY (project_id, session_id, kind, term)
    );
    ALTER TABLE sessions ADD COLUMN terms_dropped BIGINT NOT NULL DEFAULT 0;",
    // 13: single sign-on identities (an OpenID Connect issuer and subject) linked to accounts:
    // one account per identity, one identity per account and issuer.
    "CREATE TABLE sso_links (
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (issuer, subject),
        UNIQUE (issuer, user_name)
    );",
    // 14: click maps and scroll maps (`crate::clickmap`): aggregates per project, day and page.
    crate::clickmap::SCHEMA,
    // 15: the clicks each page view counted per URL (`crate::clickmap::MAX_CLICKS_PER_VIEW`).
    crate::clickmap::VIEW_CLICKS,
    // 16: the page views of a page-day (what a deletion asks of each page-day it touches).
    crate::clickmap::VIEWS_BY_PAGE,
];

/// Arbitrary constant naming the advisory lock that serialises migrations between instances.
const MIGRATION_LOCK: i64 = 0x7265_706c_6179;

impl Engine {
    pub(super) async fn migrate(&self, schema: Option<&str>) -> Result<(), Error> {
        let mut client = self.pool.get().await?;
        if let Some(schema) = schema {
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await?;
        }
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        let fresh: bool = tx.query_one("SELECT to_regclass('replay_migrations') IS NULL", &[]).await?.get(0);
        if fresh {
            tx.batch_execute("CREATE TABLE replay_migrations (version BIGINT NOT NULL)").await?;
        }
        let done: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM replay_migrations", &[]).await?.get(0);
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(usize::try_from(done).unwrap_or(0)) {
            tx.batch_execute(migration).await?;
            let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
            tx.execute("INSERT INTO replay_migrations (version) VALUES ($1)", &[&version]).await?;
            tracing::info!(version, "postgres migration applied");
        }
        tx.commit().await?;
        Ok(())
    }
}
