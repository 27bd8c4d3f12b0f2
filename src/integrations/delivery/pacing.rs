//! Pacing requests to a service: a rate limit we keep up front, and pauses the service
//! asks for.
//!
//! The bucket is `governor`'s (as for the per-address limits), on a clock that reads
//! tokio's time, so a paused test clock drives it like the sleeps that wait on it.
//! `governor`'s own waiting (`until_ready`) is not used: it sleeps on another timer, which
//! a paused tokio clock does not move.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::{Instant, sleep_until};

/// Time since the pacing was created, read from tokio's clock.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    origin: Instant,
}

impl Clock for TokioClock {
    // `governor` measures with any `Reference`; a duration since a fixed origin is one.
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().duration_since(self.origin)
    }
}

/// A token bucket (a burst, then one request per `spacing`) plus a "not before" that a
/// 429 or an empty bucket reported by the service sets.
pub(crate) struct Pacing {
    /// `None` with a zero spacing: no limit of our own.
    bucket: Option<RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>>,
    clock: TokioClock,
    /// No request before this.
    blocked_until: Option<Instant>,
}

impl Pacing {
    pub(crate) fn new(burst: u32, spacing: Duration) -> Self {
        let clock = TokioClock { origin: Instant::now() };
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let bucket =
            Quota::with_period(spacing).map(|quota| RateLimiter::direct_with_clock(quota.allow_burst(burst), clock));
        Self { bucket, clock, blocked_until: None }
    }

    /// Waits until a request may go out, and counts it.
    pub(crate) async fn acquire(&mut self) {
        if let Some(until) = self.blocked_until.take() {
            sleep_until(until).await;
        }
        let Some(bucket) = &self.bucket else { return };
        while let Err(not_until) = bucket.check() {
            sleep_until(self.clock.origin + not_until.earliest_possible()).await;
        }
    }

    /// No request for `pause` from now (keeping a longer pause already in force).
    pub(crate) fn block_for(&mut self, pause: Duration) {
        let until = Instant::now() + pause;
        if self.blocked_until.is_none_or(|current| current < until) {
            self.blocked_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Time from `start` after each of `n` acquisitions.
    async fn times(pacing: &mut Pacing, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            pacing.acquire().await;
            out.push(Instant::now() - start);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_per_spacing() {
        let mut pacing = Pacing::new(2, Duration::from_secs(2));
        let secs: Vec<u64> = times(&mut pacing, 5).await.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 0, 2, 4, 6]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_refills_while_idle() {
        let mut pacing = Pacing::new(3, Duration::from_secs(1));
        times(&mut pacing, 3).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let secs: Vec<u64> = times(&mut pacing, 3).await.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 0, 1], "two earned while idle, the third waits");
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_delays_the_next_request_and_the_longer_block_wins() {
        let mut pacing = Pacing::new(5, Duration::from_secs(1));
        pacing.block_for(Duration::from_secs(10));
        pacing.block_for(Duration::from_secs(3));
        assert_eq!(times(&mut pacing, 2).await, [Duration::from_secs(10); 2]);
        // Used up: the block applies once.
        assert_eq!(times(&mut pacing, 1).await, [Duration::ZERO]);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_spacing_is_no_limit_of_our_own() {
        let mut pacing = Pacing::new(1, Duration::ZERO);
        assert_eq!(times(&mut pacing, 100).await.last(), Some(&Duration::ZERO));
        pacing.block_for(Duration::from_secs(1));
        assert_eq!(times(&mut pacing, 1).await, [Duration::from_secs(1)]);
    }
}
