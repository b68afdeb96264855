//! Rate limits: per project and per client address for ingest, per address for sign-in.
//!
//! Token buckets (GCRA, the `governor` crate) keyed in memory. Keys that are back to a full
//! bucket are forgotten by [`RateLimits::forget_idle`], which the server runs every minute, so
//! the maps stay bounded by the number of recently active clients.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

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
    pub login: DefaultKeyedRateLimiter<IpAddr>,
}

fn quota(rate: Rate) -> Quota {
    let per_second = NonZeroU32::new(rate.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_second).allow_burst(burst)
}

impl RateLimits {
    pub fn new(project: Rate, client: Rate) -> Self {
        RateLimits {
            clock: DefaultClock::default(),
            project: DefaultKeyedRateLimiter::keyed(quota(project)),
            client: DefaultKeyedRateLimiter::keyed(quota(client)),
            login: DefaultKeyedRateLimiter::keyed(quota(Rate { per_second: 1, burst: 10 })),
        }
    }

    /// Takes one ingest token for `project` and `client`; on refusal, how long to wait and
    /// which limit refused.
    pub fn check_ingest(&self, project: i64, client: Option<IpAddr>) -> Result<(), (Duration, &'static str)> {
        let now = self.clock.now();
        if let Some(ip) = client {
            self.client.check_key(&ip).map_err(|n| (n.wait_time_from(now), "client"))?;
        }
        self.project.check_key(&project).map_err(|n| (n.wait_time_from(now), "project"))
    }

    /// Forgets keys whose buckets are full again.
    pub fn forget_idle(&self) {
        self.project.retain_recent();
        self.client.retain_recent();
        self.login.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_refused_with_a_wait_time() {
        let limits = RateLimits::new(Rate { per_second: 1000, burst: 1000 }, Rate { per_second: 1, burst: 3 });
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(limits.check_ingest(1, Some(ip)).is_ok());
        }
        let (wait, which) = limits.check_ingest(1, Some(ip)).expect_err("over the burst");
        assert_eq!(which, "client");
        assert!(wait > Duration::ZERO);
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(limits.check_ingest(1, Some(other)).is_ok(), "other clients are not affected");
    }
}
