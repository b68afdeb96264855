//! Per-project daily quotas: stored bytes and new sessions per UTC day
//! (`--quota-bytes-per-day`, `--quota-sessions-per-day`, or the project's own, set with
//! `replay-server project quota`), counted in memory.
//!
//! The ingest path checks and counts without a database round trip: one lock and one hash
//! lookup. A project's counter is seeded from the session index the first time the project
//! sends after this instance started (one query per project and start, see
//! [`replay_store::Storage::usage_since`]: an upper bound of the day's bytes) and starts from
//! zero at every midnight UTC. A refusal is a 429 (`quota_exceeded`, counted under
//! `quota_bytes` or `quota_sessions`) with a `Retry-After` until the next UTC day.
//!
//! Bounds: one counter per project (projects are made by operators, not by clients); the
//! sessions of the day are remembered as 64-bit hashes of their ids, at most as many as the
//! session quota allows (only kept when that quota is set).
//!
//! With several instances sharing the scale-out storage, each counts what it accepted itself
//! (plus what the index held when it seeded): a quota holds per instance, so `N` instances
//! behind a balancer may accept up to `N` times it in a day.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use replay_store::Project;

use crate::reject::Reason;

/// Milliseconds in a day.
const DAY_MS: u64 = 86_400_000;

/// The quotas and this instance's counters.
#[derive(Debug)]
pub struct Quotas {
    bytes_per_day: Option<u64>,
    sessions_per_day: Option<u64>,
    days: Mutex<HashMap<i64, Day>>,
    hasher: RandomState,
}

/// One project's usage on one UTC day.
#[derive(Debug, Default)]
struct Day {
    /// Days since the Unix epoch (UTC).
    day: u64,
    bytes: u64,
    /// Hashes of the session ids seen this day (only with a session quota).
    sessions: HashSet<u64>,
    /// Sessions counted by the seed beyond the ids it listed.
    unlisted_sessions: u64,
}

/// Why a batch is refused, and the seconds until the next UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    pub reason: Reason,
    pub retry_after_secs: u64,
}

impl Quotas {
    pub fn new(bytes_per_day: Option<u64>, sessions_per_day: Option<u64>) -> Self {
        Quotas { bytes_per_day, sessions_per_day, days: Mutex::new(HashMap::new()), hasher: RandomState::new() }
    }

    /// The quotas of `project` (bytes, sessions): its own, else the server's; 0 is none.
    pub fn limits(&self, project: &Project) -> (Option<u64>, Option<u64>) {
        let pick = |own: Option<u64>, server: Option<u64>| own.or(server).filter(|&n| n > 0);
        (
            pick(project.quota.bytes_per_day, self.bytes_per_day),
            pick(project.quota.sessions_per_day, self.sessions_per_day),
        )
    }

    /// Whether any quota applies to `project` (otherwise nothing of it is counted).
    pub fn applies(&self, project: &Project) -> bool {
        self.limits(project) != (None, None)
    }

    /// How many session ids a seed of `project` needs (see [`Quotas::seed`]).
    pub fn seed_ids(&self, project: &Project) -> usize {
        self.limits(project).1.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Whether `project` has no counter yet since this instance started.
    pub fn needs_seed(&self, project: i64) -> bool {
        self.days.lock().is_ok_and(|d| !d.contains_key(&project))
    }

    /// Start of the UTC day of `now_ms`.
    pub fn day_start(now_ms: u64) -> u64 {
        now_ms / DAY_MS * DAY_MS
    }

    /// Seeds `project`'s counter from what the index says it stored today (unless another
    /// request seeded it meanwhile).
    pub fn seed(&self, project: &Project, usage: &replay_store::Usage, now_ms: u64) {
        let Ok(mut days) = self.days.lock() else { return };
        if days.contains_key(&project.id) {
            return;
        }
        let mut day = Day { day: now_ms / DAY_MS, bytes: usage.bytes, ..Day::default() };
        if self.limits(project).1.is_some() {
            day.sessions = usage.session_ids.iter().map(|id| self.hasher.hash_one(id)).collect();
            day.unlisted_sessions = usage.sessions.saturating_sub(day.sessions.len() as u64);
        }
        days.insert(project.id, day);
    }

    /// Checks a batch of `session` holding `bytes` against `project`'s quotas for the day of
    /// `now_ms`, and counts its session when that is new. Its bytes are counted once it is
    /// stored ([`Quotas::stored`]).
    pub fn admit(&self, project: &Project, session: &str, bytes: u64, now_ms: u64) -> Result<(), OverQuota> {
        let (max_bytes, max_sessions) = self.limits(project);
        if (max_bytes, max_sessions) == (None, None) {
            return Ok(());
        }
        let Ok(mut days) = self.days.lock() else { return Ok(()) };
        let today = now_ms / DAY_MS;
        let day = days.entry(project.id).or_default();
        if day.day != today {
            *day = Day { day: today, ..Day::default() };
        }
        let over = |reason| OverQuota { reason, retry_after_secs: ((today + 1) * DAY_MS - now_ms).div_ceil(1000) };
        if max_bytes.is_some_and(|max| day.bytes.saturating_add(bytes) > max) {
            return Err(over(Reason::QuotaBytes));
        }
        if let Some(max) = max_sessions {
            let id = self.hasher.hash_one(session);
            if !day.sessions.contains(&id) {
                if day.sessions.len() as u64 + day.unlisted_sessions >= max {
                    return Err(over(Reason::QuotaSessions));
                }
                day.sessions.insert(id);
            }
        }
        Ok(())
    }

    /// Counts the stored bytes of a batch acknowledged as new (of a project with a counter).
    pub fn stored(&self, project: i64, bytes: u64, now_ms: u64) {
        if let Ok(mut days) = self.days.lock()
            && let Some(day) = days.get_mut(&project)
            && day.day == now_ms / DAY_MS
        {
            day.bytes = day.bytes.saturating_add(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: u64 = 1_700_000_040_000 / DAY_MS * DAY_MS + DAY_MS / 2;

    fn project(id: i64, quota: replay_store::ProjectQuota) -> Project {
        Project { id, name: format!("p{id}"), ingest_key: String::new(), allowed_origins: vec![], quota }
    }

    #[test]
    fn bytes_are_refused_past_the_quota_until_the_next_utc_day() {
        let q = Quotas::new(Some(100), None);
        let (one, two) = (project(1, Default::default()), project(2, Default::default()));
        assert!(q.needs_seed(1));
        q.seed(&one, &replay_store::Usage { bytes: 60, ..Default::default() }, NOON);
        assert!(!q.needs_seed(1));
        assert_eq!(q.admit(&one, "s", 40, NOON), Ok(()));
        q.stored(1, 40, NOON);
        let refused = q.admit(&one, "s", 1, NOON).expect_err("over the quota");
        assert_eq!(refused, OverQuota { reason: Reason::QuotaBytes, retry_after_secs: DAY_MS / 2 / 1000 });
        assert_eq!(q.admit(&two, "s", 100, NOON), Ok(()), "other projects have their own");
        assert_eq!(q.admit(&one, "s", 100, NOON + DAY_MS / 2), Ok(()), "a new day starts from zero");
    }

    #[test]
    fn new_sessions_are_refused_past_the_quota_and_known_ones_go_on() {
        let q = Quotas::new(None, Some(3));
        let one = project(1, Default::default());
        assert_eq!(q.seed_ids(&one), 3);
        let usage = replay_store::Usage { sessions: 2, session_ids: vec!["a".into()], bytes: 0 };
        q.seed(&one, &usage, NOON);
        assert_eq!(q.admit(&one, "a", 10, NOON), Ok(()), "seeded: not new");
        assert_eq!(q.admit(&one, "b", 10, NOON), Ok(()), "the third of the day");
        assert_eq!(q.admit(&one, "c", 10, NOON).map_err(|e| e.reason), Err(Reason::QuotaSessions));
        assert_eq!(q.admit(&one, "b", 10, NOON), Ok(()), "sessions of the day go on");
        assert_eq!(q.admit(&one, "c", 10, NOON + DAY_MS), Ok(()));
        assert!(!Quotas::new(None, None).applies(&one));
    }

    #[test]
    fn a_project_s_own_quotas_win_over_the_server_s() {
        use replay_store::ProjectQuota;
        let q = Quotas::new(Some(100), None);
        let unlimited = project(1, ProjectQuota { bytes_per_day: Some(0), sessions_per_day: None });
        assert!(!q.applies(&unlimited), "0: no quota for this project");
        let small = project(2, ProjectQuota { bytes_per_day: None, sessions_per_day: Some(1) });
        assert_eq!(q.limits(&small), (Some(100), Some(1)), "the server's bytes, its own sessions");
        let strict = project(3, ProjectQuota { bytes_per_day: Some(10), sessions_per_day: None });
        assert_eq!(q.admit(&strict, "s", 11, NOON).map_err(|e| e.reason), Err(Reason::QuotaBytes));
        assert_eq!(q.admit(&unlimited, "s", 1_000, NOON), Ok(()));
    }
}
