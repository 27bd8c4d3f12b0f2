//! Exponential backoff between attempts to reach something outside (a platform, OBS, a mail
//! server, the database). A leaf: every layer that retries uses this one.

use std::time::Duration;

/// Doubles the delay after each failure, from `min` up to `max`; `reset` after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, next: min }
    }

    /// The delay before the next attempt; each call doubles the following one, up to `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.max);
        self.next = delay.saturating_mul(2).min(self.max);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The attempts at delivering one thing: at most `max`, with a [`Backoff`] between them.
#[derive(Debug)]
pub(crate) struct Attempts {
    backoff: Backoff,
    made: u32,
    max: u32,
}

impl Attempts {
    /// `max` attempts (at least one), the first retry after `min`, doubling up to `max_delay`.
    pub(crate) fn new(max: u32, min: Duration, max_delay: Duration) -> Self {
        Self { backoff: Backoff::new(min, max_delay), made: 0, max: max.max(1) }
    }

    /// Counts a failed attempt: the delay before the next one, or `None` when that was the
    /// last one allowed.
    pub(crate) fn failed(&mut self) -> Option<Duration> {
        self.made = self.made.saturating_add(1);
        (self.made < self.max).then(|| self.backoff.next_delay())
    }

    /// Attempts failed so far.
    pub(crate) fn made(&self) -> u32 {
        self.made
    }

    pub(crate) fn max(&self) -> u32 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let delays: Vec<u64> = (0..8).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn huge_bounds_saturate_instead_of_overflowing() {
        let mut backoff = Backoff::new(Duration::MAX / 2 + Duration::from_secs(1), Duration::MAX);
        backoff.next_delay();
        assert_eq!(backoff.next_delay(), Duration::MAX);
        assert_eq!(backoff.next_delay(), Duration::MAX);
        let mut inverted = Backoff::new(Duration::from_secs(10), Duration::from_secs(3));
        assert_eq!(inverted.next_delay(), Duration::from_secs(3), "max wins over min");
    }

    #[test]
    fn attempts_run_out_after_the_last_one() {
        let mut attempts = Attempts::new(4, Duration::from_secs(1), Duration::from_secs(3));
        let delays: Vec<Option<u64>> = (0..5).map(|_| attempts.failed().map(|d| d.as_secs())).collect();
        assert_eq!(delays, [Some(1), Some(2), Some(3), None, None]);
        assert_eq!((attempts.made(), attempts.max()), (5, 4));
        let mut once = Attempts::new(0, Duration::from_secs(1), Duration::from_secs(3));
        assert_eq!(once.failed(), None, "zero attempts still makes one");
    }

    #[tokio::test(start_paused = true)]
    async fn retrying_until_the_attempts_run_out_waits_the_backoff() {
        let mut attempts = Attempts::new(3, Duration::from_millis(10), Duration::from_secs(1));
        let start = Instant::now();
        let mut tries = 1;
        while let Some(delay) = attempts.failed() {
            tokio::time::sleep(delay).await;
            tries += 1;
        }
        assert_eq!(tries, 3);
        assert_eq!(Instant::now() - start, Duration::from_millis(10 + 20));
    }

    #[tokio::test(start_paused = true)]
    async fn sleeping_the_delays_takes_their_sum() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let start = Instant::now();
        for _ in 0..5 {
            tokio::time::sleep(backoff.next_delay()).await;
        }
        assert_eq!(Instant::now() - start, Duration::from_millis(100 + 200 + 400 + 400 + 400));
    }
}
