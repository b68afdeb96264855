//! Search by what happened: the SQL both engines share to keep a session's search terms
//! (`session_terms`: clicked text, failed request URLs, console messages, pages shown; see
//! [`replay_core::summary::TermKind`]) and to filter the session list by them.
//!
//! Terms are stored lowercased and cut (`replay_core::summary::normalize_term`), at most
//! [`MAX_TERMS_PER_KIND`] of each kind per session (more are counted in the session's
//! `terms_dropped`). A filter is a pattern of at most [`MAX_PATTERN_CHARS`] characters, matched
//! with `LIKE` with its wildcards escaped: a substring, or with `*` a whole term where `*`
//! stands for anything (`*/api/cart*`). Each filter is one `EXISTS` over the session's own
//! terms (the primary key's prefix), so it costs at most a few hundred rows per session.

use crate::model::SessionFilter;
use replay_core::summary::{MAX_TERM_CHARS, TermKind};

pub use replay_core::summary::MAX_TERMS_PER_KIND;

/// Longest search pattern accepted, in characters.
pub const MAX_PATTERN_CHARS: usize = MAX_TERM_CHARS;

/// Whether `pattern` may be searched for (not longer than [`MAX_PATTERN_CHARS`]).
pub fn pattern_ok(pattern: &str) -> bool {
    pattern.chars().count() <= MAX_PATTERN_CHARS
}

/// Adds one term of a session: `$1` project, `$2` session, `$3` kind, `$4` term, `$5` first
/// and `$6` last time, `$7` the per-kind cap. Inserts nothing (0 rows) when the session
/// already has the cap of terms of that kind and not this one. (SQLite binds `$N` in order of
/// first appearance, which is this order.)
pub(crate) const ADD_TERM: &str = "INSERT INTO session_terms (project_id, session_id, kind, term, first_ms, last_ms) \
     SELECT CAST($1 AS BIGINT), CAST($2 AS TEXT), CAST($3 AS BIGINT), CAST($4 AS TEXT), CAST($5 AS BIGINT), CAST($6 AS BIGINT) \
     WHERE EXISTS (SELECT 1 FROM session_terms WHERE project_id = $1 AND session_id = $2 AND kind = $3 AND term = $4) \
        OR (SELECT COUNT(*) FROM session_terms WHERE project_id = $1 AND session_id = $2 AND kind = $3) < $7 \
     ON CONFLICT (project_id, session_id, kind, term) DO UPDATE SET \
        first_ms = CASE WHEN excluded.first_ms < session_terms.first_ms THEN excluded.first_ms ELSE session_terms.first_ms END, \
        last_ms = CASE WHEN excluded.last_ms > session_terms.last_ms THEN excluded.last_ms ELSE session_terms.last_ms END";

/// Counts terms a session could not keep: `$1` project, `$2` session, `$3` how many.
pub(crate) const ADD_DROPPED: &str =
    "UPDATE sessions SET terms_dropped = terms_dropped + $3 WHERE project_id = $1 AND id = $2";

/// Appends `text` to a `LIKE` pattern: `*` for any text, `%`, `_` and `\` escaped (the
/// statements say `ESCAPE '\'`). Search patterns and click-map URL patterns both go through it.
pub(crate) fn push_like(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
}

/// The `LIKE` pattern of a search pattern: lowercased, `%`, `_` and `\` escaped, `*` for any
/// text; without `*` a substring.
pub fn like_pattern(pattern: &str) -> String {
    let p = pattern.trim().to_lowercase();
    let anchored = p.contains('*');
    let mut out = String::with_capacity(p.len() + 2);
    if !anchored {
        out.push('%');
    }
    push_like(&mut out, &p);
    if !anchored {
        out.push('%');
    }
    out
}

/// The conditions on `sessions` of the filter's search fields, each with `?` placeholders and
/// their values in order.
pub(crate) fn clauses(f: &SessionFilter) -> Vec<(String, Vec<String>)> {
    let one = |kind: TermKind| {
        format!(
            "EXISTS (SELECT 1 FROM session_terms t WHERE t.project_id = sessions.project_id \
             AND t.session_id = sessions.id AND t.kind = {} AND t.term LIKE ? ESCAPE '\\')",
            kind.code()
        )
    };
    let mut out = Vec::new();
    for (kind, value) in
        [(TermKind::Click, &f.clicked), (TermKind::FailedRequest, &f.failed_request), (TermKind::Console, &f.console)]
    {
        if let Some(v) = value {
            out.push((one(kind), vec![like_pattern(v)]));
        }
    }
    if let Some(user) = &f.identified {
        out.push((
            format!(
                "EXISTS (SELECT 1 FROM session_terms t WHERE t.project_id = sessions.project_id \
                 AND t.session_id = sessions.id AND t.kind = {} AND t.term = ?)",
                TermKind::User.code()
            ),
            vec![replay_core::summary::user_term(user)],
        ));
    }
    match (&f.visited, &f.then_visited) {
        (Some(a), Some(b)) => out.push((
            format!(
                "EXISTS (SELECT 1 FROM session_terms a JOIN session_terms b \
                 ON b.project_id = a.project_id AND b.session_id = a.session_id AND b.kind = a.kind \
                 WHERE a.project_id = sessions.project_id AND a.session_id = sessions.id AND a.kind = {} \
                 AND a.term LIKE ? ESCAPE '\\' AND b.term LIKE ? ESCAPE '\\' AND a.first_ms < b.last_ms)",
                TermKind::Page.code()
            ),
            vec![like_pattern(a), like_pattern(b)],
        )),
        (Some(v), None) | (None, Some(v)) => out.push((one(TermKind::Page), vec![like_pattern(v)])),
        (None, None) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_like_wildcards_and_star_means_anything() {
        assert_eq!(like_pattern("Pay Now"), "%pay now%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("*/api/cart*"), "%/api/cart%");
        assert_eq!(like_pattern("https://shop/*"), "https://shop/%");
        assert!(pattern_ok(&"x".repeat(MAX_PATTERN_CHARS)) && !pattern_ok(&"x".repeat(MAX_PATTERN_CHARS + 1)));
    }
}
