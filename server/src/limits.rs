//! What keeps a flood from reaching storage: rate limits (per project and per client address
//! for ingest, per address for sign-in) and the negative cache of credentials that were wrong.
//!
//! Token buckets (GCRA, the `governor` crate) keyed in memory. Keys that are back to a full
//! bucket are forgotten by [`RateLimits::forget_idle`], which the server runs every minute, so
//! the maps stay bounded by the number of recently active clients.
//!
//! Ingest is also limited by what it costs, not only by counts: each client address has a
//! budget of bytes per second (one address cannot ask for the CPU of several cores with a few
//! multi-megabyte batches), and [`Inflight`] bounds the bytes all uploads hold at once, however
//! many addresses send them.
//!
//! [`Refused`] remembers, for [`REFUSED_TTL`], the digests of ingest keys, bearer tokens and
//! login cookies that storage did not know: a flood of made-up credentials is answered from
//! memory instead of a database lookup each. It holds at most [`REFUSED_MAX`] entries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Sustained rate and burst of one kind of limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// All limiters of the server.
pub struct RateLimits {
    /// One clock for all checks (creating a clock calibrates it: far too slow per request).
    clock: DefaultClock,
    project: DefaultKeyedRateLimiter<i64>,
    client: DefaultKeyedRateLimiter<IpAddr>,
    /// Ingest KiB per client address (`None`: no byte limit).
    client_kib: Option<DefaultKeyedRateLimiter<IpAddr>>,
    pub login: DefaultKeyedRateLimiter<IpAddr>,
    /// Sign-in attempts per account name (lowercased, at most 64 bytes of it) and client
    /// address: one address spends its own budget for an account, never the owner's.
    login_account: DefaultKeyedRateLimiter<(String, Option<IpAddr>)>,
    /// Sign-in attempts per account name from all addresses together: a looser bound on
    /// guessing one password from many addresses (one address alone cannot spend it).
    login_account_all: DefaultKeyedRateLimiter<String>,
}

fn quota(rate: Rate) -> Quota {
    let per_second = NonZeroU32::new(rate.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_second).allow_burst(burst)
}

/// Smallest burst of the per-client byte limit (a first snapshot of a big page).
const MIN_CLIENT_BURST_BYTES: u64 = 16 * 1024 * 1024;

fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).max(1)
}

impl RateLimits {
    /// Limiters for `project` and `client` batch rates, and for `client_bytes` bytes per second
    /// per client (burst: 16 MiB or `max_body` bytes, whichever is larger).
    pub fn new(project: Rate, client: Rate, client_bytes: Option<u64>, max_body: usize) -> Self {
        let client_kib = client_bytes.map(|per_second| {
            let burst = MIN_CLIENT_BURST_BYTES.max(max_body as u64);
            DefaultKeyedRateLimiter::keyed(quota(Rate { per_second: kib(per_second), burst: kib(burst) }))
        });
        RateLimits {
            clock: DefaultClock::default(),
            project: DefaultKeyedRateLimiter::keyed(quota(project)),
            client: DefaultKeyedRateLimiter::keyed(quota(client)),
            client_kib,
            login: DefaultKeyedRateLimiter::keyed(quota(Rate { per_second: 1, burst: 10 })),
            login_account: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(NonZeroU32::new(6).unwrap_or(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN)),
            ),
            login_account_all: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN)),
            ),
        }
    }

    /// Takes one ingest token for `client`, before anything else about the request is looked
    /// at (so unknown keys are limited too); on refusal, how long to wait.
    pub fn check_client(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let Some(ip) = client else { return Ok(()) };
        let now = self.clock.now();
        self.client.check_key(&ip).map_err(|n| n.wait_time_from(now))
    }

    /// Takes `bytes` of `client`'s byte budget (before the body is read: its announced length);
    /// on refusal, how long to wait.
    pub fn check_client_bytes(&self, client: Option<IpAddr>, bytes: usize) -> Result<(), Duration> {
        let (Some(ip), Some(limiter)) = (client, &self.client_kib) else { return Ok(()) };
        let now = self.clock.now();
        let n = NonZeroU32::new(kib(bytes as u64)).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(&ip, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(now)),
            // More than the whole burst: never allowed (the burst covers the largest body).
            Err(_) => Err(Duration::from_secs(60)),
        }
    }

    /// Takes one ingest token for `project`; on refusal, how long to wait.
    pub fn check_project(&self, project: i64) -> Result<(), Duration> {
        let now = self.clock.now();
        self.project.check_key(&project).map_err(|n| n.wait_time_from(now))
    }

    /// Takes one sign-in (or password check) attempt of account `name` from `client` (its
    /// rate-limit key): 10 at once, then 6 a minute, per address; 60 at once, then 30 a minute,
    /// from all addresses. False when there is none left.
    ///
    /// Per address: anyone can fetch the sign-in form and post wrong passwords for `admin`
    /// once a second, which kept the account's one budget empty and its owner out.
    pub fn check_login_account(&self, name: &str, client: Option<IpAddr>) -> bool {
        let mut key = name.to_lowercase();
        if key.len() > 64 {
            let mut end = 64;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            key.truncate(end);
        }
        self.login_account.check_key(&(key.clone(), client)).is_ok() && self.login_account_all.check_key(&key).is_ok()
    }

    /// Forgets keys whose buckets are full again.
    pub fn forget_idle(&self) {
        self.project.retain_recent();
        self.client.retain_recent();
        if let Some(l) = &self.client_kib {
            l.retain_recent();
        }
        self.login.retain_recent();
        self.login_account.retain_recent();
        self.login_account_all.retain_recent();
    }
}

/// The server's budget of ingest bytes in flight: bodies as read and their decompressed copies,
/// held until storage acknowledges the batch. A reservation that does not fit is refused (the
/// upload gets 503 and retries), except when nothing else is held, so a body the other caps
/// allow always passes alone.
#[derive(Debug)]
pub struct Inflight {
    used: std::sync::atomic::AtomicUsize,
    cap: Option<usize>,
}

impl Inflight {
    /// A budget of `cap` bytes (`None`: unlimited; reservations are still counted).
    pub fn new(cap: Option<u64>) -> Arc<Self> {
        Arc::new(Inflight {
            used: std::sync::atomic::AtomicUsize::new(0),
            cap: cap.map(|c| usize::try_from(c).unwrap_or(usize::MAX)),
        })
    }

    /// Reserves `bytes`, released when the returned guard drops; `None` when they do not fit.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<InflightBytes> {
        use std::sync::atomic::Ordering;
        let fits = |used: usize| match self.cap {
            Some(cap) => used == 0 || used.saturating_add(bytes) <= cap,
            None => true,
        };
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| fits(used).then(|| used.saturating_add(bytes)))
            .ok()?;
        Some(InflightBytes { budget: Arc::clone(self), bytes })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Bytes reserved in an [`Inflight`] budget; released on drop.
#[derive(Debug)]
pub struct InflightBytes {
    budget: Arc<Inflight>,
    bytes: usize,
}

impl InflightBytes {
    /// Reserves more, up to `bytes` in all (a body read as it arrives); false when that does not
    /// fit the budget (then the reservation is what it was).
    pub fn grow_to(&mut self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering;
        if bytes <= self.bytes {
            return true;
        }
        let more = bytes - self.bytes;
        let fits = |used: usize| match self.budget.cap {
            Some(cap) => used.saturating_add(more) <= cap,
            None => true,
        };
        if self.budget.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| fits(u).then(|| u + more)).is_err() {
            return false;
        }
        self.bytes = bytes;
        true
    }

    /// Keeps only `bytes` of the reservation (when the body turned out smaller than charged).
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget.used.fetch_sub(self.bytes - bytes, std::sync::atomic::Ordering::AcqRel);
            self.bytes = bytes;
        }
    }
}

impl Drop for InflightBytes {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, std::sync::atomic::Ordering::AcqRel);
    }
}

/// How long a credential that storage did not know is refused from memory.
pub const REFUSED_TTL: Duration = Duration::from_secs(10);
/// Most credentials remembered as refused; past it, the expired go, then all.
pub const REFUSED_MAX: usize = 65_536;

/// Credentials recently found unknown, by SHA-256 digest (the secrets themselves are never kept).
#[derive(Debug, Default)]
pub struct Refused {
    seen: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Refused {
    fn digest(credential: &str) -> [u8; 32] {
        Sha256::digest(credential.as_bytes()).into()
    }

    /// True when `credential` was found unknown less than [`REFUSED_TTL`] ago.
    pub fn contains(&self, credential: &str) -> bool {
        let key = Self::digest(credential);
        self.seen.lock().is_ok_and(|m| m.get(&key).is_some_and(|t| t.elapsed() < REFUSED_TTL))
    }

    /// Remembers `credential` as unknown.
    pub fn insert(&self, credential: &str) {
        let key = Self::digest(credential);
        let Ok(mut m) = self.seen.lock() else { return };
        if m.len() >= REFUSED_MAX {
            m.retain(|_, t| t.elapsed() < REFUSED_TTL);
            if m.len() >= REFUSED_MAX {
                tracing::warn!(entries = m.len(), "refused-credentials cache full; cleared");
                m.clear();
            }
        }
        m.insert(key, Instant::now());
    }

    /// Entries held (expired ones included until the next clean-up).
    pub fn len(&self) -> usize {
        self.seen.lock().map_or(0, |m| m.len())
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the expired entries.
    pub fn forget_expired(&self) {
        if let Ok(mut m) = self.seen.lock() {
            m.retain(|_, t| t.elapsed() < REFUSED_TTL);
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_reservation_grows_as_its_body_arrives_while_the_budget_has_room() {
        let budget = Inflight::new(Some(100));
        let mut first = budget.reserve(30).expect("fits");
        assert!(first.grow_to(80));
        assert!(budget.reserve(30).is_none(), "80 of 100 held");
        assert!(!first.grow_to(120), "over the budget");
        assert_eq!(budget.used(), 80, "a refused growth keeps what was held");
        first.shrink_to(10);
        assert_eq!(budget.used(), 10);
        drop(first);
        assert_eq!(budget.used(), 0);
    }
    use super::*;

    #[test]
    fn the_inflight_budget_refuses_what_does_not_fit_and_frees_on_drop() {
        let budget = Inflight::new(Some(100));
        let alone = budget.reserve(500).expect("a body the other caps allow passes alone");
        assert!(budget.reserve(1).is_none(), "nothing fits beside it");
        drop(alone);
        assert_eq!(budget.used(), 0);
        let mut a = budget.reserve(60).expect("fits");
        assert!(budget.reserve(41).is_none());
        let b = budget.reserve(40).expect("fits exactly");
        a.shrink_to(10);
        assert_eq!(budget.used(), 50);
        let c = budget.reserve(50).expect("room made by the shrink");
        drop((a, b, c));
        assert_eq!(budget.used(), 0);
        let unlimited = Inflight::new(None);
        let held: Vec<_> = (0..100).filter_map(|_| unlimited.reserve(usize::MAX / 200)).collect();
        assert_eq!(held.len(), 100);
    }

    #[test]
    fn each_client_has_a_budget_of_bytes() {
        let limits = RateLimits::new(
            Rate { per_second: 1000, burst: 1000 },
            Rate { per_second: 1000, burst: 1000 },
            Some(1024),
            8 << 20,
        );
        let (a, b) = (Some(IpAddr::from([10, 0, 0, 1])), Some(IpAddr::from([10, 0, 0, 2])));
        // The burst is 16 MiB: two bodies of 8 MiB, then the next waits for the refill.
        for _ in 0..2 {
            assert!(limits.check_client_bytes(a, 8 << 20).is_ok());
        }
        let wait = limits.check_client_bytes(a, 8 << 20).expect_err("over the burst");
        assert!(wait > Duration::from_secs(60), "8 MiB at 1 KiB/s: {wait:?}");
        assert!(limits.check_client_bytes(b, 8 << 20).is_ok(), "another client has its own budget");
        assert!(limits.check_client_bytes(None, usize::MAX).is_ok(), "no address, no per-address limit");
        let off = RateLimits::new(Rate { per_second: 1, burst: 1 }, Rate { per_second: 1, burst: 1 }, None, 1024);
        assert!((0..100).all(|_| off.check_client_bytes(a, 8 << 20).is_ok()));
    }

    #[test]
    fn a_flood_is_refused_with_a_wait_time() {
        let limits =
            RateLimits::new(Rate { per_second: 1000, burst: 1000 }, Rate { per_second: 1, burst: 3 }, None, 1024);
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(limits.check_client(Some(ip)).is_ok());
        }
        let wait = limits.check_client(Some(ip)).expect_err("over the burst");
        assert!(wait > Duration::ZERO);
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(limits.check_client(Some(other)).is_ok(), "other clients are not affected");
        assert!(limits.check_project(1).is_ok());
    }

    #[test]
    fn sign_in_is_limited_per_account_and_address_and_looser_per_account() {
        let limits = RateLimits::new(Rate { per_second: 1, burst: 1 }, Rate { per_second: 1, burst: 1 }, None, 1024);
        let attacker: Option<IpAddr> = Some([203, 0, 113, 9].into());
        let owner: Option<IpAddr> = Some([198, 51, 100, 7].into());
        assert!((0..10).all(|_| limits.check_login_account("Admin", attacker)));
        assert!(!limits.check_login_account("admin", attacker), "names are compared lowercased");
        assert!(limits.check_login_account("admin", owner), "the owner's address has its own budget");
        assert!(limits.check_login_account("ada", attacker), "other accounts are not affected");
        assert!(limits.check_login_account(&"é".repeat(100), attacker), "long names are cut on a char boundary");
        // Many addresses together: the account's overall bound.
        let spent = (0..100u8).filter(|i| limits.check_login_account("eve", Some([10, 0, 0, *i].into()))).count();
        assert_eq!(spent, 60);
    }

    #[test]
    fn refused_credentials_are_remembered_bounded() {
        let refused = Refused::default();
        assert!(!refused.contains("bogus"));
        refused.insert("bogus");
        assert!(refused.contains("bogus") && !refused.contains("other"));
        for i in 0..REFUSED_MAX + 10 {
            refused.insert(&format!("k{i}"));
        }
        assert!(refused.len() <= REFUSED_MAX, "{}", refused.len());
    }
}
