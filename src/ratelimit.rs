//! Per-address limits: attempt rates (login, sign-up, publish), caps on what one address
//! holds open at once (event streams, FLV viewers, RTMP publishers and players), and failed
//! logins per account.
//!
//! Every per-address table is keyed by [`bucket`]: an IPv6 host is given a whole /64 by its
//! provider, so counting single IPv6 addresses would let one client pick a fresh key for
//! each attempt.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};

/// Addresses tracked before stale entries are swept, so a flood of distinct source
/// addresses cannot grow the table without bound.
const SWEEP_ABOVE: usize = 10_000;

/// The key an address is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// Allows `n` attempts per minute per address (a burst of `n`, refilled evenly).
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
        self.inner.check_key(&bucket(ip)).is_ok()
    }
}

/// At most `limit` things held open at once per address.
pub struct PerIpCap {
    limit: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One thing held open by an address; dropping it frees the place.
pub struct IpPermit {
    cap: Arc<PerIpCap>,
    key: IpAddr,
}

impl PerIpCap {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, held: Mutex::new(HashMap::new()) })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A place for `ip`, or `None` if its address already holds `limit`.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpPermit> {
        let key = bucket(ip);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(key).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(IpPermit { cap: self.clone(), key })
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut held = self.cap.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// Accounts tracked at most; beyond it new names are not counted until old windows expire
/// (a flood of made-up names must not grow memory without bound).
const MAX_ACCOUNTS_TRACKED: usize = 100_000;

/// Failed logins per account (by the name or email typed, case-folded), from any address:
/// once an account has `limit` failures within `window`, its logins are refused until the
/// window that began with the first failure ends. Per-address limits alone would let a
/// botnet guess one account's password, and would let one address behind a shared proxy
/// lock out everyone else there.
pub struct AccountThrottle {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl AccountThrottle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit: limit.max(1), window, failures: Mutex::new(HashMap::new()) }
    }

    /// Whether logins to `account` are refused for now.
    pub fn is_locked(&self, account: &str, now: Instant) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(&key(account))
            .is_some_and(|&(since, count)| count >= self.limit && now.duration_since(since) < self.window)
    }

    pub fn record_failure(&self, account: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let key = key(account);
        if !failures.contains_key(&key) && failures.len() >= MAX_ACCOUNTS_TRACKED {
            failures.retain(|_, (since, _)| now.duration_since(*since) < self.window);
            if failures.len() >= MAX_ACCOUNTS_TRACKED {
                return;
            }
        }
        let entry = failures.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// A successful login starts the account's count afresh.
    pub fn record_success(&self, account: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(account));
    }
}

fn key(account: &str) -> String {
    account.trim().to_lowercase()
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

    #[test]
    fn ipv6_addresses_of_one_64_share_a_quota() {
        let limiter = RateLimiter::per_minute(2);
        let host = |i: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
        assert!(limiter.allow(host(1)));
        assert!(limiter.allow(host(2)));
        assert!(!limiter.allow(host(3)), "a fresh address in the same /64 got a fresh quota");
        assert!(limiter.allow(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1))), "another /64");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(bucket(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_cap_frees_its_place_when_a_permit_drops() {
        let cap = PerIpCap::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = cap.try_acquire(a).unwrap();
        let _second = cap.try_acquire(a).unwrap();
        assert!(cap.try_acquire(a).is_none());
        assert!(cap.try_acquire("10.0.0.2".parse().unwrap()).is_some());
        drop(first);
        assert!(cap.try_acquire(a).is_some());
    }

    #[test]
    fn an_account_locks_after_its_failures_from_anywhere_until_the_window_ends() {
        let throttle = AccountThrottle::new(3, Duration::from_secs(900));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(!throttle.is_locked("Alice", t0));
            throttle.record_failure(if i % 2 == 0 { "alice" } else { "ALICE " }, t0);
        }
        assert!(throttle.is_locked("alice", t0));
        assert!(!throttle.is_locked("bob", t0), "other accounts are not affected");
        assert!(!throttle.is_locked("alice", t0 + Duration::from_secs(900)));
        throttle.record_failure("bob", t0);
        throttle.record_success("bob");
        assert!(!throttle.is_locked("bob", t0));
    }
}
