//! The timetable rules of docs/timetable.md, with a virtual clock.

use std::collections::HashMap;

use super::*;

impl Harness {
    /// Books user `user_id` from `t0 + start` for `length` seconds.
    fn book(&mut self, bookings: &[(i64, i64, u64, u64, bool)]) -> Vec<Output> {
        let bookings = bookings
            .iter()
            .map(|&(id, user_id, start, length, hard_start)| Booking {
                id,
                user_id: UserId(user_id),
                dj_name: format!("dj{user_id}"),
                start: self.t0 + secs(start),
                length: secs(length),
                hard_start,
            })
            .collect();
        self.input(Input::SetBookings(bookings))
    }

    fn waiting_users(&self) -> Vec<i64> {
        self.engine.status(self.now).waiting.iter().map(|w| w.dj.user_id.0).collect()
    }
}

#[test]
fn soft_booking_puts_the_queued_dj_next_and_airs_them_after_the_current_set() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.publish(2, 2);
    c.publish(3, 3);
    c.book(&[(10, 3, 3000, 1800, false)]);
    c.at(secs(2999)).tick();
    assert_eq!(c.waiting_users(), vec![2, 3], "nothing moves before the slot");
    let out = c.at(secs(3000)).tick();
    assert!(notices(&out).contains(&Notice::BookingStarted { dj: dj(3), hard_start: false }));
    assert_eq!(c.waiting_users(), vec![3, 2], "the booked DJ is next");
    assert_eq!(c.lead(), Some((1, Some(1))), "the current set is not cut");
    let out = c.at(secs(3600)).tick();
    assert_eq!(disconnects(&out), vec![(1, DisconnectReason::SlotElapsed)]);
    assert_eq!(c.lead(), Some((3, Some(3))));
    assert_eq!(c.remaining(), secs(1200), "what is left of the slot: its end is fixed");
    c.at(secs(4800)).tick();
    assert_eq!(c.lead(), Some((2, Some(2))), "the booked set ends with the slot");
}

#[test]
fn hard_start_cuts_the_walk_in_on_time_after_a_warning() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.publish(2, 2);
    c.book(&[(10, 2, 600, 1200, true)]);
    assert_eq!(c.remaining(), secs(600), "the walk-in's set is cut to end at the booked start");
    assert_eq!(c.engine.next_deadline(), Some(c.t0 + secs(300)), "the five-minute warning");
    let out = c.at(secs(300)).tick();
    assert_eq!(warnings(&out), vec![secs(300)]);
    let out = c.at(secs(600)).tick();
    assert_eq!(disconnects(&out), vec![(1, DisconnectReason::SlotElapsed)]);
    assert_eq!(c.lead(), Some((2, Some(2))));
    assert_eq!(c.remaining(), secs(1200), "a booked set lasts the booking's length");
}

#[test]
fn a_hard_booking_close_ahead_warns_the_walk_in_at_once() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.at(secs(1000));
    let out = c.book(&[(10, 2, 1120, 600, true)]);
    assert_eq!(warnings(&out), vec![secs(120)]);
}

#[test]
fn hard_start_ends_the_set_even_if_the_booked_dj_is_absent_and_walk_ins_go_on() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.publish(2, 2);
    c.book(&[(10, 3, 600, 3600, true)]);
    let out = c.at(secs(600)).tick();
    assert_eq!(disconnects(&out), vec![(1, DisconnectReason::SlotElapsed)]);
    assert_eq!(c.lead(), Some((2, Some(2))), "the queue goes on with walk-ins");
    assert_eq!(c.remaining(), secs(3600));
}

#[test]
fn a_late_booked_dj_within_grace_goes_on_at_once_with_a_hard_start_and_the_fixed_end() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.publish(2, 2);
    c.book(&[(10, 3, 600, 1800, true)]);
    c.at(secs(600)).tick();
    assert_eq!(c.lead(), Some((2, Some(2))));
    let out = c.at(secs(900)).publish(3, 3);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(3), on_air: true, position: 0 });
    assert_eq!(disconnects(&out), vec![(2, DisconnectReason::SlotElapsed)]);
    assert_eq!(c.lead(), Some((3, Some(3))));
    assert_eq!(c.remaining(), secs(1500), "the slot still ends at 2400");
}

#[test]
fn a_late_booked_dj_within_grace_goes_next_with_a_soft_start() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.publish(2, 2);
    c.book(&[(10, 3, 600, 4000, false)]);
    c.at(secs(700)).tick();
    let out = c.at(secs(1100)).publish(3, 3);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(3), on_air: false, position: 1 });
    assert_eq!(c.waiting_users(), vec![3, 2]);
    c.at(secs(3600)).tick();
    assert_eq!(c.lead(), Some((3, Some(3))));
    assert_eq!(c.remaining(), secs(1000), "the slot ends at 4600");
}

#[test]
fn an_absent_booked_dj_loses_the_booking_after_grace() {
    let mut c = Harness::with(Settings { booking_grace: secs(600), ..Settings::default() });
    c.publish(1, 1);
    c.book(&[(10, 3, 100, 3600, false)]);
    c.at(secs(100)).tick();
    assert_eq!(c.engine.next_deadline(), Some(c.t0 + secs(700)), "the end of the grace window");
    assert!(c.at(secs(699)).tick().is_empty());
    let out = c.at(secs(700)).tick();
    assert_eq!(notices(&out), vec![Notice::BookingDropped { dj: dj(3) }]);
    let out = c.at(secs(800)).publish(3, 3);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(3), on_air: false, position: 1 });
    c.publish(4, 4);
    assert_eq!(c.waiting_users(), vec![3, 4], "an ordinary walk-in now");
    c.at(secs(3600)).tick();
    assert_eq!(c.remaining(), secs(3600), "with an ordinary set");
}

#[test]
fn a_booked_dj_already_on_air_keeps_going_until_the_slot_ends() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.book(&[(10, 1, 3000, 3000, true)]);
    assert_eq!(c.remaining(), secs(3600), "the own booking does not cut the set");
    c.at(secs(3000)).tick();
    assert_eq!(c.remaining(), secs(3000), "the set now ends with the slot");
    c.at(secs(6000)).tick();
    assert_eq!(c.lead(), None);
}

#[test]
fn overlapping_bookings_are_refused_by_the_engine_too() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.publish(2, 2);
    c.publish(3, 3);
    // User 3's booking starts inside user 2's: the earlier one wins.
    c.book(&[(11, 3, 700, 600, true), (10, 2, 600, 600, true)]);
    c.at(secs(600)).tick();
    assert_eq!(c.lead(), Some((2, Some(2))));
    c.at(secs(700)).tick();
    assert_eq!(c.lead(), Some((2, Some(2))), "the overlapping booking is ignored");
    assert_eq!(c.remaining(), secs(500));
}

#[test]
fn back_to_back_bookings_are_not_overlaps() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.publish(2, 2);
    c.publish(3, 3);
    c.book(&[(10, 2, 600, 600, true), (11, 3, 1200, 600, true)]);
    c.at(secs(600)).tick();
    c.at(secs(1200)).tick();
    assert_eq!(c.lead(), Some((3, Some(3))));
    assert_eq!(c.remaining(), secs(600));
}

#[test]
fn restart_in_the_middle_of_a_booked_slot_keeps_its_end() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.book(&[(10, 1, 0, 1800, true)]);
    c.at(secs(600)).tick();
    let saved = c.engine.snapshot(c.now);
    // The server is down for five minutes and the DJ reconnects a minute after the restart.
    let restarted = c.t0 + secs(900);
    c.engine = Engine::restore(Settings { grace_period: secs(120), ..Settings::default() }, saved, restarted);
    c.now = restarted;
    assert_eq!(c.remaining(), secs(1200), "the saved time left, before the bookings come back");
    c.book(&[(10, 1, 0, 1800, true)]);
    assert_eq!(c.remaining(), secs(900), "the slot's end is fixed");
    c.at(secs(960)).publish(1, 1);
    assert_eq!(c.lead(), Some((1, Some(1))));
    assert_eq!(c.remaining(), secs(840));
    c.at(secs(1800)).tick();
    assert_eq!(c.lead(), None);
}

#[test]
fn a_booked_set_held_in_grace_still_ends_with_the_slot() {
    let mut c = Harness::with(Settings { grace_period: secs(60), ..Settings::default() });
    c.publish(1, 1);
    c.book(&[(10, 1, 0, 1000, false)]);
    c.at(secs(100)).input(Input::ConnectionLost { conn: ConnId(1) });
    c.at(secs(150)).publish(5, 1);
    assert_eq!(c.remaining(), secs(850));
    c.at(secs(1000)).tick();
    assert_eq!(c.lead(), None);
}

#[test]
fn walk_ins_use_their_default_set_length_else_the_swap_interval() {
    let mut c = Harness::new();
    c.input(Input::SetDefaultSetLengths(HashMap::from([(UserId(1), secs(1200))])));
    c.publish(1, 1);
    c.publish(2, 2);
    assert_eq!(c.remaining(), secs(1200));
    c.at(secs(1200)).tick();
    assert_eq!(c.lead(), Some((2, Some(2))));
    assert_eq!(c.remaining(), secs(3600));
}

#[test]
fn a_cancelled_booking_no_longer_cuts_or_moves_anybody() {
    let mut c = Harness::new();
    c.publish(1, 1);
    c.publish(2, 2);
    c.book(&[(10, 2, 600, 600, true)]);
    assert_eq!(c.remaining(), secs(600));
    c.book(&[]);
    c.at(secs(600)).tick();
    assert_eq!(c.lead(), Some((1, Some(1))));
    assert_eq!(c.remaining(), secs(3000), "the cut is undone");
}

#[test]
fn next_deadline_names_booking_starts() {
    let mut c = Harness::new();
    c.book(&[(10, 2, 600, 600, false)]);
    assert_eq!(c.engine.next_deadline(), Some(c.t0 + secs(600)));
    assert!(c.at(secs(599)).tick().is_empty());
}

#[test]
fn booking_notices_read_well() {
    assert_eq!(
        Notice::BookingStarted { dj: dj(2), hard_start: true }.to_string(),
        "dj2's booked slot started (hard start)"
    );
    assert_eq!(Notice::BookingDropped { dj: dj(2) }.to_string(), "dj2 did not show up for their booked slot");
}

#[test]
fn a_booked_set_ends_with_its_slot_even_while_held_or_paused() {
    // Found by the property test: reclaiming a held booked set at its slot's end aired a
    // set with no time left.
    let mut c = Harness::with(Settings { grace_period: secs(60), ..Settings::default() });
    c.publish(1, 1);
    c.book(&[(10, 1, 0, 1000, false)]);
    c.at(secs(980)).input(Input::ConnectionLost { conn: ConnId(1) });
    assert_eq!(c.engine.next_deadline(), Some(c.t0 + secs(1000)), "the slot's end comes before the grace's");
    let out = c.at(secs(1000)).publish(5, 1);
    assert!(out.contains(&Output::PublishAccepted { conn: ConnId(5), on_air: true, position: 0 }), "{out:?}");
    assert_eq!(c.lead(), Some((1, Some(5))), "on air again, with an ordinary set");
    assert_eq!(c.remaining(), secs(3600));

    let mut c = Harness::new();
    c.publish(1, 1);
    c.book(&[(10, 1, 0, 1000, false)]);
    c.at(secs(500)).input(Input::Admin(AdminCommand::PauseTimer));
    c.at(secs(1000)).tick();
    assert_eq!(c.lead(), None, "a paused booked set ends with its slot too");
}

#[test]
fn a_restart_after_a_hard_start_does_not_cut_the_walk_in_again() {
    let mut c = Harness::with(Settings { booking_grace: secs(300), ..Settings::default() });
    c.publish(1, 1);
    c.publish(2, 2);
    c.book(&[(10, 3, 600, 3600, true)]);
    c.at(secs(600)).tick();
    assert_eq!(c.lead(), Some((2, Some(2))), "the hard start cut dj1; dj3 is absent");
    c.at(secs(900)).tick();
    let saved = c.engine.snapshot(c.now);
    let restarted = c.t0 + secs(1000);
    c.engine = Engine::restore(Settings { booking_grace: secs(300), ..Settings::default() }, saved, restarted);
    c.now = restarted;
    c.at(secs(1010)).publish(2, 2);
    let out = c.book(&[(10, 3, 600, 3600, true)]);
    assert!(disconnects(&out).is_empty(), "{out:?}");
    let out = c.at(secs(1020)).tick();
    assert!(disconnects(&out).is_empty(), "{out:?}");
    assert_eq!(c.lead(), Some((2, Some(2))));
}
