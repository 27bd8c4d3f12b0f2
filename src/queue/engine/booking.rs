//! The timetable rules of the engine, specified in docs/timetable.md (R1 to R11 below).

use std::time::{Duration, Instant};

use super::{DisconnectReason, Dj, Effects, EndReason, Engine, Lead, Notice, Output, Place, Spot, UserId};

/// Bookings the engine keeps; the adapter sends the upcoming ones, earliest first, so the
/// latest are the ones left out.
pub const MAX_BOOKINGS: usize = 512;

/// A booked slot, with its start already on the engine's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booking {
    pub id: i64,
    pub user_id: UserId,
    pub dj_name: String,
    pub start: Instant,
    pub length: Duration,
    /// Whether the slot starts on time, cutting the set on air (R3), rather than at the
    /// end of it (R2).
    pub hard_start: bool,
}

impl Booking {
    /// `None` when the end lies beyond what an `Instant` can represent: never.
    pub(super) fn end(&self) -> Option<Instant> {
        self.start.checked_add(self.length)
    }

    pub(super) fn ends_by(&self, now: Instant) -> bool {
        self.end().is_some_and(|end| now >= end)
    }

    /// Time left in the slot at `now`.
    fn left_at(&self, now: Instant) -> Duration {
        self.end().map_or(Duration::MAX, |end| end.saturating_duration_since(now))
    }

    fn dj(&self) -> Dj {
        Dj { user_id: self.user_id, dj_name: self.dj_name.clone() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Pending,
    Open,
    Closed,
}

/// How far a booking had got before a restart (see [`super::Snapshot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RestoredBooking {
    Open,
    Done,
}

#[derive(Clone, Debug)]
pub(super) struct BookingState {
    booking: Booking,
    phase: Phase,
}

impl BookingState {
    /// The end of the grace window (R5), never past the slot's end.
    fn grace_end(&self, grace: Duration) -> Option<Instant> {
        let grace_end = self.booking.start.checked_add(grace);
        match (grace_end, self.booking.end()) {
            (Some(grace_end), Some(end)) => Some(grace_end.min(end)),
            (grace_end, end) => grace_end.or(end),
        }
    }
}

impl Engine {
    /// The ids of the bookings whose slot has begun: those still open, and those the engine
    /// is done with.
    pub(super) fn bookings_begun(&self) -> (Vec<i64>, Vec<i64>) {
        let begun = |phase: Phase| {
            self.bookings.iter().filter(|state| state.phase == phase).map(|state| state.booking.id).collect()
        };
        (begun(Phase::Open), begun(Phase::Closed))
    }

    /// After a restart: the saved progress of bookings, applied when they are loaded.
    pub(super) fn restore_bookings(&mut self, open: Vec<i64>, done: Vec<i64>) {
        let open = open.into_iter().map(|id| (id, RestoredBooking::Open));
        self.restored_bookings = open.chain(done.into_iter().map(|id| (id, RestoredBooking::Done))).collect();
    }

    /// Whether the DJ streaming on the lead's place is the booked one.
    fn lead_is_booked(&self, booking: &Booking) -> bool {
        self.lead.as_ref().is_some_and(|lead| lead.place.dj.user_id == booking.user_id)
    }

    /// R10 across a restart: a booking whose slot had begun is not started again (no second
    /// cut of the set on air, no second notice). One the engine was done with stays done,
    /// unless its DJ holds the lead: it opens again without starting, so that the set is
    /// linked to it again (R4, R9).
    fn restored_phase(&self, booking: &Booking) -> Phase {
        match self.restored_bookings.get(&booking.id) {
            None => Phase::Pending,
            Some(RestoredBooking::Open) => Phase::Open,
            Some(RestoredBooking::Done) if self.lead_is_booked(booking) => Phase::Open,
            Some(RestoredBooking::Done) => Phase::Closed,
        }
    }

    /// R8 and R10: keeps the earliest of overlapping bookings, and the state of unchanged ones.
    pub(super) fn set_bookings(&mut self, now: Instant, mut bookings: Vec<Booking>, fx: &mut Effects) {
        bookings.retain(|booking| !booking.length.is_zero());
        bookings.sort_by_key(|booking| (booking.start, booking.id));
        let mut kept: Vec<BookingState> = Vec::new();
        for booking in bookings {
            if kept.len() == MAX_BOOKINGS {
                break;
            }
            let overlaps = kept.last().is_some_and(|last| last.booking.end().is_none_or(|end| booking.start < end));
            if overlaps {
                continue;
            }
            let phase = match self.bookings.iter().find(|old| old.booking == booking) {
                Some(old) => old.phase,
                None => self.restored_phase(&booking),
            };
            kept.push(BookingState { booking, phase });
        }
        self.bookings = kept;
        // The first list after a restart has taken what was saved.
        self.restored_bookings.clear();
        // A set honouring a booking that was cancelled or changed is an ordinary set again;
        // a changed booking that is open links to it afresh (R4).
        if let Some(lead) = &mut self.lead {
            // The cuts are made again from the new list (`cap_lead_budget`).
            if let Some(budget) = lead.uncut_budget.take() {
                lead.clock.budget = budget;
                lead.rearm_warnings(now);
            }
            let still_booked =
                lead.booking.as_ref().is_some_and(|linked| self.bookings.iter().any(|state| &state.booking == linked));
            if !still_booked {
                lead.booking = None;
            }
        }
        fx.changed = true;
    }

    /// A lead place for `place` going up at `now`, with the set length of R1.
    pub(super) fn new_lead(&mut self, place: Place, now: Instant) -> Lead {
        let user_id = place.dj.user_id;
        let open = self
            .bookings
            .iter_mut()
            .find(|state| state.phase == Phase::Open && state.booking.user_id == user_id && state.booking.start <= now);
        match open {
            Some(state) => {
                state.phase = Phase::Closed;
                let mut lead = Lead::new(place, state.booking.left_at(now), now);
                lead.booking = Some(state.booking.clone());
                lead
            }
            None => {
                let budget = self
                    .default_set_lengths
                    .get(&user_id)
                    .copied()
                    .filter(|length| !length.is_zero())
                    .unwrap_or(self.swap_interval);
                Lead::new(place, budget, now)
            }
        }
    }

    /// Puts the live `place` of a DJ who is not the lead into the waiting list at index `at`,
    /// or first if their booked slot is open (R5); with a hard start they go on air at once.
    pub(super) fn queue_up(&mut self, now: Instant, place: Place, at: usize, fx: &mut Effects) {
        let (Some(conn), dj) = (place.conn(), place.dj.clone()) else { return };
        let booked = self
            .bookings
            .iter()
            .find(|state| state.phase == Phase::Open && state.booking.user_id == dj.user_id)
            .map(|state| state.booking.hard_start);
        let at = if booked.is_some() { 0 } else { at.min(self.waiting.len()) };
        self.waiting.insert(at, place);
        fx.changed = true;
        if booked == Some(true) {
            fx.emit(Output::PublishAccepted { conn, on_air: true, position: 0 });
            self.end_set(now, EndReason::SlotElapsed, Some(DisconnectReason::SlotElapsed), fx);
        } else {
            fx.emit(Output::PublishAccepted { conn, on_air: false, position: at + 1 });
            fx.notice(Notice::Queued { dj, position: at + 1 });
        }
    }

    /// Applies the booking transitions due at `now` (R2 to R6).
    pub(super) fn advance_bookings(&mut self, now: Instant, fx: &mut Effects) {
        for index in 0..self.bookings.len() {
            let Some(state) = self.bookings.get_mut(index) else { break };
            if state.phase == Phase::Closed {
                continue;
            }
            if state.booking.ends_by(now) {
                state.phase = Phase::Closed;
                fx.changed = true;
                continue;
            }
            if now < state.booking.start {
                continue;
            }
            let booking = state.booking.clone();
            let grace_end = state.grace_end(self.booking_grace);
            let opening = state.phase == Phase::Pending;
            state.phase = Phase::Open;
            if opening {
                // Saved, so that a restart does not start it again.
                fx.changed = true;
                fx.notice(Notice::BookingStarted { dj: booking.dj(), hard_start: booking.hard_start });
            }
            self.apply_open_booking(index, &booking, opening, grace_end, now, fx);
        }
    }

    fn apply_open_booking(
        &mut self,
        index: usize,
        booking: &Booking,
        opening: bool,
        grace_end: Option<Instant>,
        now: Instant,
        fx: &mut Effects,
    ) {
        let spot = self.spot_of_user(booking.user_id);
        if let Some(Spot::Waiting(at)) = spot.filter(|spot| *spot != Spot::Waiting(0)) {
            // R2, R5: the booked DJ goes next.
            if let Some(place) = self.waiting.remove(at) {
                fx.notice(Notice::Moved { dj: place.dj.clone(), position: 1 });
                self.waiting.push_front(place);
                fx.changed = true;
            }
        }
        if opening && booking.hard_start && !self.lead_is_booked(booking) && self.lead.is_some() {
            // R3; a booked DJ who turns up later cuts in when publishing (`queue_up`).
            self.end_set(now, EndReason::SlotElapsed, Some(DisconnectReason::SlotElapsed), fx);
        }
        // The set just ended may have promoted the booked DJ, which honours the booking.
        let spot = self.spot_of_user(booking.user_id);
        let Some(state) = self.bookings.get_mut(index).filter(|state| state.phase == Phase::Open) else {
            return;
        };
        match (spot, self.lead.as_mut()) {
            (Some(Spot::Lead), Some(lead)) => {
                // R4, R9: the set on air becomes the booked set.
                state.phase = Phase::Closed;
                lead.clock.budget = lead.clock.elapsed(now).saturating_add(booking.left_at(now));
                lead.booking = Some(booking.clone());
                lead.rearm_warnings(now);
                fx.changed = true;
            }
            (None, _) if grace_end.is_some_and(|grace_end| now >= grace_end) => {
                state.phase = Phase::Closed;
                fx.changed = true;
                fx.notice(Notice::BookingDropped { dj: booking.dj() });
            }
            _ => {}
        }
    }

    /// R3, R7: while the lead's clock runs, its set ends no later than the end of its own
    /// booking and the start of the next hard-start booking of somebody else. The cut
    /// depends only on when the clock started, not on when this runs.
    pub(super) fn cap_lead_budget(&mut self, fx: &mut Effects) {
        let Some(lead) = &mut self.lead else { return };
        let Some(since) = lead.clock.running_since else { return };
        let own_end = lead.booking.as_ref().and_then(Booking::end);
        let user_id = lead.place.dj.user_id;
        let next_hard = self
            .bookings
            .iter()
            .filter(|state| state.phase == Phase::Pending && state.booking.hard_start)
            .filter(|state| state.booking.user_id != user_id)
            .map(|state| state.booking.start)
            .min();
        let Some(limit) = own_end.into_iter().chain(next_hard).min() else { return };
        let capped = lead.clock.banked.saturating_add(limit.saturating_duration_since(since));
        if capped < lead.clock.budget {
            lead.uncut_budget.get_or_insert(lead.clock.budget);
            lead.clock.budget = capped;
            fx.changed = true;
        }
    }

    /// R11: booking starts, ends of grace windows and slot ends still ahead.
    pub(super) fn booking_deadlines(&self) -> impl Iterator<Item = Instant> + '_ {
        self.bookings.iter().flat_map(move |state| {
            let (start, grace_end) = match state.phase {
                Phase::Closed => (None, None),
                Phase::Pending => (Some(state.booking.start), None),
                Phase::Open if self.spot_of_user(state.booking.user_id).is_none() => {
                    (None, state.grace_end(self.booking_grace))
                }
                Phase::Open => (None, None),
            };
            let end = (state.phase != Phase::Closed).then(|| state.booking.end()).flatten();
            start.into_iter().chain(grace_end).chain(end)
        })
    }
}
