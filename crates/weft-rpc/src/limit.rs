//! A per-source limit on failed attempts (wrong join secrets), sans-IO: fed the time, no
//! clock, no sockets.
//!
//! Each source (an IPv4 address, or an IPv6 /64: one host usually holds a whole /64) has a
//! budget of `burst` failures that refills at one failure per `refill`; a source whose
//! budget is spent is limited until one failure's worth has come back. Successes cost
//! nothing. This is GCRA (the generic cell rate algorithm): one instant per source, the
//! time at which its budget is full again, instead of a token count that needs floats.
//!
//! Memory is bounded: at most `max_sources` sources are tracked. A source whose budget is
//! full is forgotten when room is needed; if every tracked source is still paying, the one
//! closest to being full is evicted, so a flood from many addresses can at worst shorten
//! another source's wait, never grow the table.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How many failures a source may make and how fast it earns them back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitConfig {
    /// Failures allowed back to back before the source is limited.
    pub burst: u32,
    /// The time that gives one failure back.
    pub refill: Duration,
    /// The most sources tracked at once.
    pub max_sources: usize,
}

impl Default for LimitConfig {
    /// 5 failures, then one per second; 4096 sources (about 100 KiB).
    fn default() -> Self {
        Self {
            burst: 5,
            refill: Duration::from_secs(1),
            max_sources: 4096,
        }
    }
}

/// Failed attempts per source; see the module documentation.
#[derive(Debug)]
pub struct FailureLimiter {
    config: LimitConfig,
    /// Per source: the instant at which its budget is full again.
    full_at: HashMap<IpAddr, Instant>,
}

impl FailureLimiter {
    /// A limiter that tracks nobody yet.
    pub fn new(config: LimitConfig) -> Self {
        Self {
            config,
            full_at: HashMap::new(),
        }
    }

    /// `Err(wait)` when `source` is limited at `now` and may try again after `wait`.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(full_at) = self.full_at.get(&key(source)) else {
            return Ok(());
        };
        // Limited while less than one failure's worth of budget is left.
        let owed = full_at.saturating_duration_since(now);
        let allowed = self.config.refill * self.config.burst.saturating_sub(1);
        match owed.checked_sub(allowed) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// Records a failure of `source` at `now`.
    pub fn failed(&mut self, source: IpAddr, now: Instant) {
        let source = key(source);
        if !self.full_at.contains_key(&source) && self.full_at.len() >= self.config.max_sources {
            self.make_room(now);
        }
        let full_at = self.full_at.entry(source).or_insert(now);
        *full_at = (*full_at).max(now) + self.config.refill;
    }

    /// The number of sources tracked.
    pub fn tracked(&self) -> usize {
        self.full_at.len()
    }

    fn make_room(&mut self, now: Instant) {
        self.full_at.retain(|_, full_at| *full_at > now);
        if self.full_at.len() < self.config.max_sources {
            return;
        }
        let closest = self
            .full_at
            .iter()
            .min_by_key(|(_, full_at)| **full_at)
            .map(|(source, _)| *source);
        if let Some(source) = closest {
            self.full_at.remove(&source);
        }
    }
}

/// The unit a limit applies to: an IPv4 address (IPv4-mapped IPv6 included), an IPv6 /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SEC: Duration = Duration::from_secs(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
    }

    #[test]
    fn five_failures_then_one_per_second() {
        let mut limiter = FailureLimiter::new(LimitConfig::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.check(ip(2), t0), Ok(()));
            limiter.failed(ip(2), t0);
        }
        assert_eq!(limiter.check(ip(2), t0), Err(SEC));
        assert_eq!(
            limiter.check(ip(2), t0 + SEC / 4),
            Err(SEC * 3 / 4),
            "the wait counts down"
        );
        assert_eq!(limiter.check(ip(2), t0 + SEC), Ok(()));
        limiter.failed(ip(2), t0 + SEC);
        assert!(limiter.check(ip(2), t0 + SEC).is_err(), "one per second");
        assert_eq!(limiter.check(ip(2), t0 + 2 * SEC), Ok(()));
        // Other sources are not affected.
        assert_eq!(limiter.check(ip(3), t0), Ok(()));
    }

    #[test]
    fn a_paced_source_is_never_limited_and_the_budget_refills() {
        let mut limiter = FailureLimiter::new(LimitConfig::default());
        let t0 = Instant::now();
        for i in 0..100 {
            let now = t0 + SEC * i;
            assert_eq!(limiter.check(ip(2), now), Ok(()), "attempt {i}");
            limiter.failed(ip(2), now);
        }
        // After a quiet spell the full burst is available again.
        let later = t0 + SEC * 200;
        for _ in 0..5 {
            assert_eq!(limiter.check(ip(2), later), Ok(()));
            limiter.failed(ip(2), later);
        }
        assert!(limiter.check(ip(2), later).is_err());
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let mut limiter = FailureLimiter::new(LimitConfig {
            burst: 1,
            ..LimitConfig::default()
        });
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        limiter.failed(a, t0);
        assert!(limiter.check(b, t0).is_err(), "same /64");
        assert_eq!(limiter.check(c, t0), Ok(()), "another /64");
        let mapped: IpAddr = "::ffff:198.18.0.2".parse().unwrap();
        limiter.failed(mapped, t0);
        assert!(limiter.check(ip(2), t0).is_err());
    }

    #[test]
    fn memory_is_bounded_and_full_budgets_go_first() {
        let config = LimitConfig {
            burst: 2,
            refill: SEC,
            max_sources: 3,
        };
        let mut limiter = FailureLimiter::new(config);
        let t0 = Instant::now();
        // Source 1 is limited for long; 2 and 3 failed once, a while ago.
        for _ in 0..10 {
            limiter.failed(ip(1), t0);
        }
        limiter.failed(ip(2), t0);
        limiter.failed(ip(3), t0);
        let later = t0 + 2 * SEC;
        limiter.failed(ip(4), later);
        assert_eq!(
            limiter.tracked(),
            2,
            "2 and 3 were full again and forgotten"
        );
        assert!(limiter.check(ip(1), later).is_err(), "1 is still limited");

        // Everybody paying: the one closest to full makes room.
        limiter.failed(ip(5), later);
        limiter.failed(ip(5), later);
        limiter.failed(ip(6), later);
        assert_eq!(limiter.tracked(), 3);
        assert!(limiter.check(ip(1), later).is_err());
        assert!(limiter.check(ip(5), later).is_err());
        for i in 7..200 {
            limiter.failed(ip(i), later);
            assert!(limiter.tracked() <= 3);
        }
        assert!(
            limiter.check(ip(1), later).is_err(),
            "the longest debt stays"
        );
    }
}
