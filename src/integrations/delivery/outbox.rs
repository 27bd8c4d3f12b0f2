//! A bounded queue of things waiting to be delivered, between producers that must never
//! wait (a handler, the queue's notices) and the one task that sends them.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Bounded, dropping the oldest when full: a service that is slow or down costs a fixed
/// amount of memory, and the newest news (the reset link just asked for, the set that just
/// started) still goes out. Closing it lets the sender deliver what is left and stop.
pub(crate) struct Outbox<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    dropped: u64,
    closed: bool,
    /// Whether the current overflow was reported by [`Pushed::DroppedOldest::first`].
    overflowing: bool,
}

/// What [`Outbox::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed<T> {
    Queued,
    /// Queued, but the outbox was full and `oldest` was dropped to make room. `first` is
    /// true for the first drop since the outbox was last emptied, so that callers can log
    /// an overflow once rather than once per item.
    DroppedOldest {
        oldest: T,
        first: bool,
    },
    /// Not queued: the outbox is closed.
    Closed(T),
}

// By hand: the items may hold what should not reach a log (an email's text), and the
// counts are what matter.
impl<T> fmt::Debug for Outbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Outbox")
            .field("len", &state.items.len())
            .field("capacity", &self.capacity)
            .field("dropped", &state.dropped)
            .field("closed", &state.closed)
            .finish()
    }
}

impl<T> Outbox<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity),
                dropped: 0,
                closed: false,
                overflowing: false,
            }),
            ready: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every critical section is a few queue operations that cannot leave the state
        // half-updated, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item` without ever waiting.
    pub(crate) fn push(&self, item: T) -> Pushed<T> {
        let pushed = {
            let mut state = self.lock();
            if state.closed {
                return Pushed::Closed(item);
            }
            let pushed = if state.items.len() >= self.capacity
                && let Some(oldest) = state.items.pop_front()
            {
                state.dropped += 1;
                let first = !state.overflowing;
                state.overflowing = true;
                Pushed::DroppedOldest { oldest, first }
            } else {
                Pushed::Queued
            };
            state.items.push_back(item);
            pushed
        };
        self.ready.notify_one();
        pushed
    }

    /// The oldest item, if any.
    pub(crate) fn try_pop(&self) -> Option<T> {
        let mut state = self.lock();
        let item = state.items.pop_front();
        if state.items.is_empty() {
            // Caught up: the next overflow is a new one.
            state.overflowing = false;
        }
        item
    }

    /// Waits for the oldest item; `None` once the outbox is closed and empty.
    pub(crate) async fn pop(&self) -> Option<T> {
        loop {
            // Registered before looking, so a push or close in between is not missed.
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(item) = self.try_pop() {
                return Some(item);
            }
            if self.lock().closed {
                return None;
            }
            notified.await;
        }
    }

    /// Refuses new items from now on; what is queued can still be popped.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Items dropped because the outbox was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn drops_the_oldest_and_counts_it() {
        let outbox = Outbox::new(3);
        let pushed: Vec<Pushed<u32>> = (0..5).map(|i| outbox.push(i)).collect();
        assert_eq!(
            pushed,
            [
                Pushed::Queued,
                Pushed::Queued,
                Pushed::Queued,
                Pushed::DroppedOldest { oldest: 0, first: true },
                Pushed::DroppedOldest { oldest: 1, first: false },
            ]
        );
        assert_eq!(outbox.dropped(), 2);
        let order: Vec<u32> = std::iter::from_fn(|| outbox.try_pop()).collect();
        assert_eq!(order, [2, 3, 4]);
        assert_eq!(outbox.len(), 0);
    }

    #[test]
    fn an_overflow_after_catching_up_is_a_new_one() {
        let outbox = Outbox::new(1);
        outbox.push(1);
        assert_eq!(outbox.push(2), Pushed::DroppedOldest { oldest: 1, first: true });
        assert_eq!(outbox.try_pop(), Some(2));
        outbox.push(3);
        assert_eq!(outbox.push(4), Pushed::DroppedOldest { oldest: 3, first: true });
        assert_eq!(outbox.dropped(), 2, "the count is a total, not per overflow");
    }

    #[test]
    fn a_zero_capacity_still_holds_one() {
        let outbox = Outbox::new(0);
        assert_eq!(outbox.push('a'), Pushed::Queued);
        assert_eq!(outbox.push('b'), Pushed::DroppedOldest { oldest: 'a', first: true });
    }

    #[tokio::test(start_paused = true)]
    async fn pop_waits_for_a_push() {
        let outbox = Arc::new(Outbox::new(4));
        let producer = outbox.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            producer.push("late");
        });
        let start = tokio::time::Instant::now();
        assert_eq!(outbox.pop().await, Some("late"));
        assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_drains_what_is_queued_then_ends_and_refuses_more() {
        let outbox = Arc::new(Outbox::new(4));
        outbox.push(1);
        outbox.push(2);
        outbox.close();
        assert_eq!(outbox.push(3), Pushed::Closed(3));
        assert_eq!(outbox.pop().await, Some(1));
        assert_eq!(outbox.pop().await, Some(2));
        assert_eq!(outbox.pop().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_wakes_a_waiting_pop() {
        let outbox = Arc::new(Outbox::<u8>::new(4));
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.pop().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "nothing to pop yet");
        outbox.close();
        let popped = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert_eq!(popped.ok().and_then(Result::ok), Some(None));
    }
}
