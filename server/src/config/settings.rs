//! The one list of the server's settings: for each, its command-line flag, environment
//! variable, config file key, default and meaning ([`SETTINGS`]). The reference table of
//! `docs/src/configuration.md` is rendered from it ([`reference_table`]), and tests fail when the
//! list and the code part: the file keys against [`FileConfig`]'s fields (here), the flags and
//! variables against the command line (`main.rs`), the table against the docs (here;
//! `cargo xtask docs --write` rewrites it). A setting missing from one of the three sources says
//! why in [`Setting::only`].

use super::FileConfig;

/// One setting and where it can be given.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The command-line flag, with its dashes (`--listen`).
    pub flag: Option<&'static str>,
    /// The environment variable.
    pub env: Option<&'static str>,
    /// The key in the TOML config file.
    pub file: Option<&'static str>,
    /// The default, as the docs say it.
    pub default: &'static str,
    /// What it does.
    pub what: &'static str,
    /// Why a source is missing (a flag, the environment or the file), when one is.
    pub only: Option<&'static str>,
}

const fn all(
    flag: &'static str,
    env: &'static str,
    file: &'static str,
    default: &'static str,
    what: &'static str,
) -> Setting {
    Setting { flag: Some(flag), env: Some(env), file: Some(file), default, what, only: None }
}

/// Every setting of `replay-server`, in the order of the reference table.
pub const SETTINGS: &[Setting] = &[
    Setting {
        flag: Some("--config"),
        env: Some("REPLAY_CONFIG"),
        file: None,
        default: "none",
        what: "the TOML config file; flags and environment variables win over it",
        only: Some("not in the file: it names the file"),
    },
    all(
        "--listen",
        "REPLAY_LISTEN",
        "listen",
        "`127.0.0.1:8080`",
        "address to listen on (port 0 picks a free one, printed)",
    ),
    all("--data-dir", "REPLAY_DATA_DIR", "data_dir", "`./data`", "directory of the embedded storage (SQLite)"),
    all(
        "--retention-days",
        "REPLAY_RETENTION_DAYS",
        "retention_days",
        "30",
        "sessions not updated for this many days are deleted (0 keeps them)",
    ),
    all(
        "--audit-retention-days",
        "REPLAY_AUDIT_RETENTION_DAYS",
        "audit_retention_days",
        "365",
        "audit log entries older than this many days are deleted (0 keeps them)",
    ),
    all("--max-body-bytes", "REPLAY_MAX_BODY_BYTES", "max_body_bytes", "8 MiB", "largest ingest body, as sent"),
    all(
        "--max-batch-bytes",
        "REPLAY_MAX_BATCH_BYTES",
        "max_batch_bytes",
        "32 MiB",
        "largest batch after decompression (caps the gunzip and the decoder)",
    ),
    all(
        "--client-rate",
        "REPLAY_CLIENT_RATE",
        "client_rate_per_second",
        "20",
        "ingest batches per second per client address",
    ),
    all("--client-burst", "REPLAY_CLIENT_BURST", "client_burst", "200", "burst of `--client-rate`"),
    all(
        "--project-rate",
        "REPLAY_PROJECT_RATE",
        "project_rate_per_second",
        "2000",
        "ingest batches per second per project",
    ),
    all("--project-burst", "REPLAY_PROJECT_BURST", "project_burst", "twice the rate", "burst of `--project-rate`"),
    all(
        "--client-bytes-per-second",
        "REPLAY_CLIENT_BYTES_PER_SECOND",
        "client_bytes_per_second",
        "1 MiB",
        "ingest bytes (as sent) per second per client address, burst 16 MiB (0: no limit): one \
         address cannot ask for several cores' worth of decoding",
    ),
    all(
        "--max-inflight-bytes",
        "REPLAY_MAX_INFLIGHT_BYTES",
        "max_inflight_bytes",
        "256 MiB",
        "ingest bytes all uploads may hold at once (bodies and their decompressed copies, until \
         stored); past it 503 `server_busy` with `Retry-After: 1` (0: no budget)",
    ),
    all(
        "--max-session-bytes",
        "REPLAY_MAX_SESSION_BYTES",
        "max_session_bytes",
        "64 MiB",
        "stored bytes (as sent, usually gzip) one session may hold; later batches are refused with \
         413 `session_full` (counted) and the session keeps what it has (0: no cap)",
    ),
    all(
        "--quota-bytes-per-day",
        "REPLAY_QUOTA_BYTES_PER_DAY",
        "quota_bytes_per_day",
        "none",
        "stored bytes each project may send per UTC day; past it 429 `quota_exceeded` with \
         `Retry-After` until midnight UTC (0: none; a project's own quota wins: `project quota`)",
    ),
    all(
        "--quota-sessions-per-day",
        "REPLAY_QUOTA_SESSIONS_PER_DAY",
        "quota_sessions_per_day",
        "none",
        "new sessions each project may start per UTC day; sessions already started go on (0: none)",
    ),
    all(
        "--accept-originless-ingest",
        "REPLAY_ACCEPT_ORIGINLESS_INGEST",
        "accept_originless_ingest",
        "false",
        "accept uploads without an `Origin` header for projects with an origin allow-list \
         (server-to-server senders)",
    ),
    all(
        "--secure-cookies",
        "REPLAY_SECURE_COOKIES",
        "secure_cookies",
        "false",
        "the viewer is served over HTTPS only: cookies are `Secure` with the `__Host-` prefix, and \
         cookies without the prefix are ignored",
    ),
    all(
        "--trusted-proxies",
        "REPLAY_TRUSTED_PROXIES",
        "trusted_proxies",
        "none",
        "load balancers (CIDR ranges or addresses; comma-separated, a list in the file) whose \
         `X-Forwarded-For`/`Forwarded` name the client and whose `X-Forwarded-Proto: https` makes \
         the cookies `Secure` and `__Host-` prefixed",
    ),
    all(
        "--freeze-timeout-secs",
        "REPLAY_FREEZE_TIMEOUT_SECS",
        "freeze_timeout_secs",
        "60",
        "a session whose page froze and sent nothing since for this long is marked \"froze, never \
         recovered\"",
    ),
    all(
        "--settle-after-secs",
        "REPLAY_SETTLE_AFTER_SECS",
        "settle_after_secs",
        "60",
        "a session that received nothing for this long has its frustration signals (dead clicks, \
         error clicks, quick backs) judged over the whole session, replacing the per-batch counts",
    ),
    all(
        "--admin-token",
        "REPLAY_ADMIN_TOKEN",
        "admin_token",
        "generated, printed once",
        "token for API clients (`Authorization: Bearer`); only its hash is stored",
    ),
    all(
        "--admin-token-file",
        "REPLAY_ADMIN_TOKEN_FILE",
        "admin_token_file",
        "none",
        "read the admin token from this file (first line): out of `ps` and the environment",
    ),
    all(
        "--metrics-token",
        "REPLAY_METRICS_TOKEN",
        "metrics_token",
        "none",
        "a secret that may read `/metrics` as `Authorization: Bearer` (a scraper's); server admins \
         always may, nobody else",
    ),
    all(
        "--metrics-token-file",
        "REPLAY_METRICS_TOKEN_FILE",
        "metrics_token_file",
        "none",
        "read the metrics token from this file (first line)",
    ),
    all(
        "--demo",
        "REPLAY_DEMO",
        "demo",
        "false",
        "serve the demo pages (`/demo`, `/demo/lab`, `/demo/echo`) recording into the first project; \
         they publish its ingest key (`cargo xtask run` turns them on)",
    ),
    all(
        "--admin-password",
        "REPLAY_ADMIN_PASSWORD",
        "admin_password",
        "generated, printed once",
        "password of the viewer account `admin`, set when the account is first created",
    ),
    all(
        "--admin-password-file",
        "REPLAY_ADMIN_PASSWORD_FILE",
        "admin_password_file",
        "none",
        "read the `admin` password from this file (first line)",
    ),
    all(
        "--postgres-url",
        "REPLAY_POSTGRES_URL",
        "postgres_url",
        "none (SQLite)",
        "scale-out storage: the session index in PostgreSQL (`postgres://user:password@host/db`); \
         needs `--object-store-url`",
    ),
    all(
        "--postgres-schema",
        "REPLAY_POSTGRES_SCHEMA",
        "postgres_schema",
        "the connection's `search_path`",
        "schema of the tables in PostgreSQL",
    ),
    all(
        "--postgres-max-connections",
        "REPLAY_POSTGRES_MAX_CONNECTIONS",
        "postgres_max_connections",
        "16",
        "most PostgreSQL connections one instance opens",
    ),
    all(
        "--postgres-ca-file",
        "REPLAY_POSTGRES_CA_FILE",
        "postgres_ca_file",
        "none",
        "PEM file of certificate authorities for TLS to PostgreSQL (besides the system's); implies TLS",
    ),
    all(
        "--object-store-url",
        "REPLAY_OBJECT_STORE_URL",
        "object_store_url",
        "none",
        "where batch bodies go with PostgreSQL: `s3://bucket/prefix` or `file:///shared/dir`",
    ),
    all(
        "--oidc-issuer",
        "REPLAY_OIDC_ISSUER",
        "oidc_issuer",
        "none (passwords only)",
        "single sign-on: the OpenID Connect provider's issuer URL (`https`, or `http` on a loopback \
         address); with the client id and secret and the redirect URL, the sign-in page shows \
         \"Sign in with …\"",
    ),
    all(
        "--oidc-client-id",
        "REPLAY_OIDC_CLIENT_ID",
        "oidc_client_id",
        "none",
        "the client id registered at the provider",
    ),
    all(
        "--oidc-client-secret",
        "REPLAY_OIDC_CLIENT_SECRET",
        "oidc_client_secret",
        "none",
        "the client secret (never printed; prefer the variable or `--oidc-client-secret-file`)",
    ),
    all(
        "--oidc-client-secret-file",
        "REPLAY_OIDC_CLIENT_SECRET_FILE",
        "oidc_client_secret_file",
        "none",
        "read the client secret from this file (first line)",
    ),
    all(
        "--oidc-redirect-url",
        "REPLAY_OIDC_REDIRECT_URL",
        "oidc_redirect_url",
        "none",
        "this server's callback as registered at the provider: `https://HOST/login/sso/callback`",
    ),
    all(
        "--oidc-name",
        "REPLAY_OIDC_NAME",
        "oidc_name",
        "the issuer's host",
        "the provider's name on the button (\"Sign in with NAME\")",
    ),
    all(
        "--oidc-auto-create",
        "REPLAY_OIDC_AUTO_CREATE",
        "oidc_auto_create",
        "false",
        "create an account (a member of no project) for a verified e-mail address no account has; \
         off: only accounts an admin created or invited, named by their e-mail address, sign in",
    ),
    Setting {
        flag: None,
        env: Some("`AWS_*`"),
        file: Some("object_store_options"),
        default: "none",
        what: "object store settings (`aws_endpoint`, `aws_region`, `aws_access_key_id`, \
               `aws_secret_access_key`, `aws_allow_http`, ...): a table in the file, or the `AWS_*` \
               variables (`AWS_ENDPOINT`, ...); the file wins",
        only: Some("no flag: a map of the object store's own settings"),
    },
    Setting {
        flag: None,
        env: Some("REPLAY_LOG"),
        file: None,
        default: "`info`",
        what: "log filter (`tracing` env-filter syntax, e.g. `info,replay_store=debug`)",
        only: Some("environment only: logging starts before the flags and the file are read"),
    },
];

/// The file keys [`FileConfig`] accepts, read from its `Deserialize` implementation.
pub fn file_keys() -> Vec<&'static str> {
    use serde::Deserialize;
    let mut fields: &'static [&'static str] = &[];
    let _ = FileConfig::deserialize(FieldNames(&mut fields));
    fields.to_vec()
}

/// A deserializer that only notes the field names a struct asks for.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("only struct field names are read"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("only struct field names are read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The Markdown reference table of [`SETTINGS`] (what `docs/src/configuration.md` holds between
/// its markers).
pub fn reference_table() -> String {
    let code = |v: Option<&str>| match v {
        Some(v) if v.starts_with('`') => v.to_owned(),
        Some(v) => format!("`{v}`"),
        None => "—".to_owned(),
    };
    let mut out = String::from("| flag | environment | file key | default | what |\n|---|---|---|---|---|\n");
    for s in SETTINGS {
        let what = match s.only {
            Some(only) => format!("{} ({only})", s.what),
            None => s.what.to_owned(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            code(s.flag),
            code(s.env),
            code(s.file),
            s.default,
            what.replace('|', "\\|")
        ));
    }
    out
}

/// Markers around the generated table in `docs/src/configuration.md`.
pub const BEGIN: &str = "<!-- settings: generated from server/src/config/settings.rs by `cargo xtask docs --write` -->";
pub const END: &str = "<!-- settings: end -->";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_file_key_is_a_setting_and_every_setting_without_one_says_why() {
        let keys: BTreeSet<&str> = file_keys().into_iter().collect();
        assert!(keys.contains("listen") && keys.len() > 20, "the field names were read: {keys:?}");
        let listed: BTreeSet<&str> = SETTINGS.iter().filter_map(|s| s.file).collect();
        assert_eq!(keys, listed, "FileConfig's keys and the settings list");
        for s in SETTINGS {
            let complete = s.flag.is_some() && s.env.is_some() && s.file.is_some();
            assert_eq!(complete, s.only.is_none(), "{s:?}: say why a source is missing, and only then");
        }
    }

    #[test]
    fn every_listed_file_key_parses() {
        // A value of the right type for each key: the file really takes what the docs say.
        for s in SETTINGS {
            let Some(key) = s.file else { continue };
            let value = match key {
                "listen" => "\"127.0.0.1:1\"",
                "trusted_proxies" => "[\"10.0.0.0/8\"]",
                "object_store_options" => "{ aws_region = \"eu-west-1\" }",
                "secure_cookies" | "accept_originless_ingest" | "oidc_auto_create" | "demo" => "true",
                k if k.ends_with("_url") || k.ends_with("_file") || k.ends_with("_dir") => "\"x\"",
                "admin_token" | "metrics_token" | "admin_password" | "postgres_schema" => "\"x\"",
                k if k.starts_with("oidc_") => "\"x\"",
                _ => "7",
            };
            let parsed = toml::from_str::<FileConfig>(&format!("{key} = {value}"));
            assert!(parsed.is_ok(), "{key} = {value}: {parsed:?}");
        }
    }

    #[test]
    fn the_numeric_defaults_the_docs_state_are_the_codes() {
        let d = super::super::resolve(FileConfig::default(), super::super::Overrides::default(), [])
            .expect("the defaults resolve");
        let c = &d.config;
        let scale_out = super::super::Overrides {
            postgres_url: Some("postgres://db/replay".into()),
            object_store_url: Some("s3://bucket".into()),
            ..Default::default()
        };
        let super::super::Backend::Postgres { max_connections, .. } =
            super::super::resolve(FileConfig::default(), scale_out, []).expect("resolves").backend
        else {
            panic!("the scale-out backend");
        };
        let actual = |key: &str| -> Option<u64> {
            Some(match key {
                "retention_days" => u64::from(c.retention_days),
                "audit_retention_days" => u64::from(c.audit_retention_days),
                "max_body_bytes" => c.max_body_bytes as u64,
                "max_batch_bytes" => c.limits.max_bytes as u64,
                "client_rate_per_second" => u64::from(c.client_rate.per_second),
                "client_burst" => u64::from(c.client_rate.burst),
                "project_rate_per_second" => u64::from(c.project_rate.per_second),
                "client_bytes_per_second" => c.client_bytes_per_second?,
                "max_inflight_bytes" => c.max_inflight_bytes?,
                "max_session_bytes" => c.max_session_bytes?,
                "freeze_timeout_secs" => d.freeze_timeout.as_secs(),
                "settle_after_secs" => d.settle_after.as_secs(),
                "postgres_max_connections" => max_connections as u64,
                _ => return None,
            })
        };
        let mut checked = 0;
        for s in SETTINGS {
            let Some(key) = s.file else { continue };
            let stated = match s.default.split_once(' ') {
                Some((n, "MiB")) => n.parse::<u64>().ok().map(|n| n * 1024 * 1024),
                _ => s.default.parse::<u64>().ok(),
            };
            if let Some(stated) = stated {
                assert_eq!(actual(key), Some(stated), "the default of {key}");
                checked += 1;
            }
        }
        assert_eq!(c.project_rate.burst, 2 * c.project_rate.per_second, "the project burst: twice the rate");
        assert!(checked >= 10, "{checked} defaults checked");
    }

    /// Fails when `docs/src/configuration.md` differs from the list; with `REPLAY_WRITE_DOCS=1`
    /// (`cargo xtask docs --write`) it rewrites the table instead.
    #[test]
    fn the_docs_reference_table_is_the_settings_list() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/configuration.md");
        let text = std::fs::read_to_string(&path).expect("docs/src/configuration.md");
        let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
            panic!("{} lacks the markers {BEGIN} … {END}", path.display());
        };
        let table = reference_table();
        let expected = format!("{}{BEGIN}\n{table}{}", &text[..begin], &text[end..]);
        if std::env::var_os("REPLAY_WRITE_DOCS").is_some() {
            if expected != text {
                std::fs::write(&path, &expected).expect("writing the docs");
            }
            return;
        }
        assert!(
            expected == text,
            "docs/src/configuration.md's settings table is out of date: run `cargo xtask docs --write`"
        );
    }
}
