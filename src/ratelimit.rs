//! Per-IP rate limiting for login, sign-up and publish attempts.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};

/// Addresses tracked before stale entries are swept, so a flood of distinct source
/// addresses cannot grow the table without bound.
const SWEEP_ABOVE: usize = 10_000;

/// Allows `n` attempts per minute per IP address (a burst of `n`, refilled evenly).
pub struct RateLimiter {
    inner: Governor<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
}

impl RateLimiter {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self { inner: Governor::keyed(Quota::per_minute(n)) }
    }

    /// Counts one attempt from `ip`; false if it is over its quota.
    pub fn allow(&self, ip: IpAddr) -> bool {
        if self.inner.len() > SWEEP_ABOVE {
            self.inner.retain_recent();
        }
        self.inner.check_key(&ip).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refuses_per_address() {
        let limiter = RateLimiter::per_minute(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| limiter.allow(a)));
        assert!(!limiter.allow(a));
        assert!(limiter.allow(b), "other addresses keep their own quota");
    }
}
