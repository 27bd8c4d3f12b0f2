//! Exponential backoff between attempts to reach something outside.

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
