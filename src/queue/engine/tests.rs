use std::time::{Duration, Instant};

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The tests speak of connections and users by plain numbers; these wrap them.
fn dj(user_id: i64) -> Dj {
    Dj { user_id: UserId(user_id), dj_name: format!("dj{user_id}") }
}

/// An engine driven by a virtual clock.
struct Harness {
    engine: Engine,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with(Settings::default())
    }

    fn with(settings: Settings) -> Self {
        let t0 = Instant::now();
        Harness { engine: Engine::new(settings), t0, now: t0 }
    }

    /// Moves the virtual clock to `t0 + at`.
    fn at(&mut self, at: Duration) -> &mut Self {
        self.now = self.t0 + at;
        self
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.engine.handle(self.now, input).expect("only admin commands fail")
    }

    fn publish(&mut self, conn: u64, user_id: i64) -> Vec<Output> {
        self.input(Input::PublishRequested { conn: ConnId(conn), dj: dj(user_id) })
    }

    fn stop(&mut self, conn: u64) -> Vec<Output> {
        self.input(Input::PublishStopped { conn: ConnId(conn) })
    }

    fn lose(&mut self, conn: u64) -> Vec<Output> {
        self.input(Input::ConnectionLost { conn: ConnId(conn) })
    }

    fn stall(&mut self, conn: u64) -> Vec<Output> {
        self.input(Input::StallDetected { conn: ConnId(conn) })
    }

    fn tick(&mut self) -> Vec<Output> {
        self.input(Input::Tick)
    }

    fn admin(&mut self, command: AdminCommand) -> Result<Vec<Output>, AdminError> {
        self.engine.handle(self.now, Input::Admin(command))
    }

    fn status(&self) -> Status {
        self.engine.status(self.now)
    }

    fn persist(&self) -> Output {
        Output::Persist(self.engine.snapshot(self.now))
    }

    /// The lead's user and connection, or `None`.
    fn lead(&self) -> Option<(i64, Option<u64>)> {
        self.status().lead.map(|lead| (lead.dj.user_id.0, lead.conn.map(|c| c.0)))
    }

    fn remaining(&self) -> Duration {
        self.status().lead.expect("a lead").remaining
    }

    /// The waiting list as (user, connection) pairs, next up first.
    fn waiting(&self) -> Vec<(i64, Option<u64>)> {
        self.status().waiting.iter().map(|w| (w.dj.user_id.0, w.conn.map(|c| c.0))).collect()
    }
}

fn program_changes(outputs: &[Output]) -> Vec<Option<u64>> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::ProgramSource(source) => Some(source.map(|c| c.0)),
            _ => None,
        })
        .collect()
}

fn disconnects(outputs: &[Output]) -> Vec<(u64, DisconnectReason)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Disconnect { conn, reason } => Some((conn.0, *reason)),
            _ => None,
        })
        .collect()
}

fn notices(outputs: &[Output]) -> Vec<Notice> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Notice(notice) => Some(notice.clone()),
            _ => None,
        })
        .collect()
}

fn warnings(outputs: &[Output]) -> Vec<Duration> {
    notices(outputs)
        .into_iter()
        .filter_map(|notice| match notice {
            Notice::TimeWarning { remaining, .. } => Some(remaining),
            _ => None,
        })
        .collect()
}

fn persisted(outputs: &[Output]) -> bool {
    matches!(outputs.last(), Some(Output::Persist(_)))
}

/// Two DJs: user 1 on air on connection 1, user 2 waiting on connection 2, at t0.
fn two_djs() -> Harness {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.publish(2, 2);
    h
}

// Rule 1 and 2: publishing.

#[test]
fn first_publisher_goes_on_air_at_once() {
    let mut h = Harness::new();
    let out = h.publish(7, 1);
    assert_eq!(
        out,
        vec![
            Output::PublishAccepted { conn: ConnId(7), on_air: true, position: 0 },
            Output::Notice(Notice::OnAir { dj: dj(1) }),
            Output::ProgramSource(Some(ConnId(7))),
            h.persist(),
        ]
    );
    assert_eq!(h.lead(), Some((1, Some(7))));
    assert_eq!(h.remaining(), secs(3600));
}

#[test]
fn later_publishers_queue_in_order_with_their_position() {
    let mut h = Harness::new();
    h.publish(1, 1);
    let out = h.publish(2, 2);
    assert_eq!(
        out,
        vec![
            Output::PublishAccepted { conn: ConnId(2), on_air: false, position: 1 },
            Output::Notice(Notice::Queued { dj: dj(2), position: 1 }),
            h.persist(),
        ]
    );
    let out = h.publish(3, 3);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(3), on_air: false, position: 2 });
    assert_eq!(h.waiting(), vec![(2, Some(2)), (3, Some(3))]);
    assert_eq!(h.status().waiting.iter().map(|w| w.position).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(h.lead(), Some((1, Some(1))), "queued publishers are not aired");
}

// Rule 3 and 7: clean stops and queued departures.

#[test]
fn clean_stop_of_the_lead_puts_the_next_on_air() {
    let mut h = two_djs();
    h.at(secs(100));
    let out = h.stop(1);
    assert_eq!(
        out,
        vec![
            Output::Notice(Notice::SetEnded { dj: dj(1), reason: EndReason::Stopped }),
            Output::Notice(Notice::OnAir { dj: dj(2) }),
            Output::ProgramSource(Some(ConnId(2))),
            h.persist(),
        ]
    );
    assert_eq!(h.lead(), Some((2, Some(2))));
    assert_eq!(h.remaining(), secs(3600), "the new set starts with a full slot");
    assert!(h.waiting().is_empty());
}

#[test]
fn clean_stop_of_the_last_dj_shows_the_slate() {
    let mut h = Harness::new();
    h.publish(1, 1);
    let out = h.stop(1);
    assert_eq!(program_changes(&out), vec![None]);
    assert_eq!(h.lead(), None);
    assert_eq!(h.status().last_ended, Some(dj(1)));
}

#[test]
fn queued_dj_who_disconnects_leaves_the_queue() {
    let mut h = two_djs();
    h.publish(3, 3);
    h.publish(4, 4);
    let out = h.stop(2);
    assert_eq!(notices(&out), vec![Notice::LeftQueue { dj: dj(2), reason: EndReason::Stopped }]);
    assert!(program_changes(&out).is_empty());
    let out = h.lose(4);
    assert_eq!(notices(&out), vec![Notice::LeftQueue { dj: dj(4), reason: EndReason::ConnectionLost }]);
    assert_eq!(h.waiting(), vec![(3, Some(3))]);
    assert_eq!(h.status().waiting[0].position, 1, "positions close up");
    assert!(disconnects(&out).is_empty(), "the connection is already gone");
}

#[test]
fn events_for_unknown_connections_change_nothing() {
    let mut h = two_djs();
    for input in [
        Input::PublishStopped { conn: ConnId(9) },
        Input::ConnectionLost { conn: ConnId(9) },
        Input::StallDetected { conn: ConnId(9) },
    ] {
        assert_eq!(h.input(input), vec![]);
    }
    assert_eq!(h.lead(), Some((1, Some(1))));
}

// Rule 4: dropped connections and the grace period.

#[test]
fn dropped_lead_resumes_within_grace_with_the_time_left() {
    let mut h = two_djs();
    h.at(secs(600));
    let out = h.lose(1);
    assert_eq!(
        out,
        vec![
            Output::Notice(Notice::GraceStarted { dj: dj(1), grace: secs(10) }),
            Output::ProgramSource(None),
            h.persist(),
        ]
    );
    let lead = h.status().lead.unwrap();
    assert_eq!((lead.conn, lead.reserved, lead.reclaim_within), (None, false, Some(secs(10))), "in grace");

    // The set's clock stands still during grace, and the waiting DJ stays waiting.
    h.at(secs(609));
    assert_eq!(h.tick(), vec![]);
    assert_eq!(h.remaining(), secs(3000));
    assert_eq!(h.lead(), Some((1, None)));

    let out = h.publish(11, 1);
    assert_eq!(
        out,
        vec![
            Output::PublishAccepted { conn: ConnId(11), on_air: true, position: 0 },
            Output::Notice(Notice::Resumed { dj: dj(1) }),
            Output::ProgramSource(Some(ConnId(11))),
            h.persist(),
        ]
    );
    assert_eq!(h.remaining(), secs(3000));
    h.at(secs(700));
    assert_eq!(h.remaining(), secs(2909), "the clock runs again");
    assert_eq!(h.waiting(), vec![(2, Some(2))]);
}

#[test]
fn dropped_lead_is_replaced_after_exactly_the_grace_period() {
    let mut h = two_djs();
    h.at(secs(50));
    h.lose(1);
    h.at(secs(60) - Duration::from_millis(1));
    assert_eq!(h.tick(), vec![], "not before the grace period is over");
    assert_eq!(h.lead(), Some((1, None)));
    h.at(secs(60));
    let out = h.tick();
    assert_eq!(
        out,
        vec![
            Output::Notice(Notice::SetEnded { dj: dj(1), reason: EndReason::GraceExpired }),
            Output::Notice(Notice::OnAir { dj: dj(2) }),
            Output::ProgramSource(Some(ConnId(2))),
            h.persist(),
        ]
    );
    assert_eq!(h.status().last_ended, None, "someone else went on air");
}

#[test]
fn grace_expiry_applies_even_if_the_next_call_is_a_late_reconnect() {
    let mut h = two_djs();
    h.lose(1);
    h.at(secs(30));
    // No tick in between: the reconnect arrives too late and is treated as a new publisher.
    let out = h.publish(11, 1);
    assert_eq!(out[0], Output::Notice(Notice::SetEnded { dj: dj(1), reason: EndReason::GraceExpired }));
    assert!(out.contains(&Output::PublishAccepted { conn: ConnId(11), on_air: false, position: 1 }));
    assert_eq!(h.lead(), Some((2, Some(2))));
}

#[test]
fn dropped_lead_with_nobody_waiting_leaves_the_slate_after_grace() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.lose(1);
    h.at(secs(10));
    let out = h.tick();
    assert_eq!(notices(&out), vec![Notice::SetEnded { dj: dj(1), reason: EndReason::GraceExpired }]);
    assert!(program_changes(&out).is_empty(), "the slate was already on");
    assert_eq!(h.lead(), None);
}

#[test]
fn newcomer_during_grace_queues_behind_the_held_slot() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.lose(1);
    let out = h.publish(2, 2);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(2), on_air: false, position: 1 });
    assert_eq!(h.lead(), Some((1, None)));
}

#[test]
fn zero_grace_period_ends_the_set_at_once() {
    let mut h = Harness::with(Settings { grace_period: Duration::ZERO, ..Settings::default() });
    h.publish(1, 1);
    h.publish(2, 2);
    let out = h.lose(1);
    assert_eq!(program_changes(&out), vec![None, Some(2)]);
    assert_eq!(h.lead(), Some((2, Some(2))));
}

// Rule 5: stalls.

#[test]
fn stalled_lead_is_disconnected_and_gets_a_grace_period() {
    let mut h = two_djs();
    h.at(secs(100));
    let out = h.stall(1);
    assert_eq!(
        out,
        vec![
            Output::Disconnect { conn: ConnId(1), reason: DisconnectReason::Stalled },
            Output::Notice(Notice::Stalled { dj: dj(1) }),
            Output::Notice(Notice::GraceStarted { dj: dj(1), grace: secs(10) }),
            Output::ProgramSource(None),
            h.persist(),
        ]
    );
    // The adapter closes the socket; the engine already forgot the connection.
    assert_eq!(h.lose(1), vec![]);
    h.at(secs(105));
    let out = h.publish(12, 1);
    assert!(out.contains(&Output::Notice(Notice::Resumed { dj: dj(1) })));
    assert_eq!(h.remaining(), secs(3500));
}

#[test]
fn stalled_lead_that_does_not_return_is_replaced_after_grace() {
    let mut h = two_djs();
    h.stall(1);
    h.at(secs(10));
    let out = h.tick();
    assert!(out.contains(&Output::Notice(Notice::SetEnded { dj: dj(1), reason: EndReason::GraceExpired })));
    assert_eq!(h.lead(), Some((2, Some(2))));
}

#[test]
fn stalled_queued_dj_is_disconnected_and_leaves() {
    let mut h = two_djs();
    let out = h.stall(2);
    assert_eq!(
        out,
        vec![
            Output::Disconnect { conn: ConnId(2), reason: DisconnectReason::Stalled },
            Output::Notice(Notice::Stalled { dj: dj(2) }),
            Output::Notice(Notice::LeftQueue { dj: dj(2), reason: EndReason::Stalled }),
            h.persist(),
        ]
    );
    assert!(h.waiting().is_empty());
}

// Rule 6: time slots, warnings and the timer commands.

#[test]
fn slot_expiry_disconnects_the_lead_and_promotes_the_next() {
    let mut h = two_djs();
    h.at(secs(3599));
    h.tick();
    assert_eq!(h.lead(), Some((1, Some(1))), "not before the slot is over");
    h.at(secs(3600));
    let out = h.tick();
    assert_eq!(
        out,
        vec![
            Output::Disconnect { conn: ConnId(1), reason: DisconnectReason::SlotElapsed },
            Output::Notice(Notice::SetEnded { dj: dj(1), reason: EndReason::SlotElapsed }),
            Output::Notice(Notice::OnAir { dj: dj(2) }),
            Output::ProgramSource(Some(ConnId(2))),
            h.persist(),
        ]
    );
    assert_eq!(h.remaining(), secs(3600));
}

#[test]
fn warnings_are_sent_once_at_five_and_one_minute_left() {
    let mut h = Harness::new();
    h.publish(1, 1);
    let mut seen = Vec::new();
    // Tick every 10 s through the whole set.
    for t in (10..3600).step_by(10) {
        h.at(secs(t));
        seen.extend(warnings(&h.tick()));
    }
    assert_eq!(seen, vec![secs(300), secs(60)]);
}

/// `(user, seconds to air)` of every [`Notice::UpNext`].
fn up_next(outputs: &[Output]) -> Vec<(i64, u64)> {
    notices(outputs)
        .into_iter()
        .filter_map(|notice| match notice {
            Notice::UpNext { dj, on_air_in } => Some((dj.user_id.0, on_air_in.as_secs())),
            _ => None,
        })
        .collect()
}

/// Ticks every 10 s from `from` to `to` (seconds), collecting the up-next notices.
fn up_next_between(h: &mut Harness, from: u64, to: u64) -> Vec<(i64, u64)> {
    (from..to).step_by(10).flat_map(|t| up_next(&h.at(secs(t)).tick())).collect()
}

#[test]
fn the_next_dj_hears_they_are_up_five_minutes_before_once() {
    let mut h = two_djs();
    assert_eq!(up_next_between(&mut h, 10, 3600), vec![(2, 300)], "at 55:00 of the hour's set, once");
}

#[test]
fn whoever_becomes_next_late_in_a_set_is_told_at_once() {
    let mut h = two_djs();
    h.publish(3, 3);
    assert_eq!(up_next_between(&mut h, 10, 3330), vec![(2, 300)]);
    // Bob leaves with 4:30 left: Carol is next now, and hears it at once.
    assert_eq!(up_next(&h.at(secs(3330)).stop(2)), vec![(3, 270)]);
    assert_eq!(up_next_between(&mut h, 3340, 3590), vec![], "told once");
}

#[test]
fn up_next_is_for_streaming_djs_and_comes_again_with_the_next_set() {
    // A short set: the next DJ is told as soon as the set starts.
    let mut h = Harness::with(Settings { swap_interval: secs(240), ..Settings::default() });
    h.publish(1, 1);
    assert_eq!(up_next(&h.at(secs(5)).publish(2, 2)), vec![(2, 235)], "told as they queue");
    assert_eq!(up_next(&h.at(secs(6)).tick()), vec![], "once");
    // Carol queues behind Bob; Bob's set starts at 4:00 and Carol hears it then.
    h.at(secs(10)).publish(3, 3);
    assert_eq!(up_next_between(&mut h, 20, 240), vec![]);
    assert_eq!(up_next(&h.at(secs(240)).tick()), vec![(3, 240)], "with the new set");
    // Nobody after Carol: no notice while she plays.
    assert_eq!(up_next_between(&mut h, 490, 700), vec![]);
}

#[test]
fn warnings_need_the_set_to_have_been_longer_than_the_threshold() {
    let mut h = Harness::with(Settings { swap_interval: secs(240), ..Settings::default() });
    h.publish(1, 1);
    let mut seen = Vec::new();
    for t in 1..240 {
        h.at(secs(t));
        seen.extend(warnings(&h.tick()));
    }
    assert_eq!(seen, vec![secs(60)], "a 4-minute set gets no 5-minute warning");
}

#[test]
fn extending_a_set_past_a_threshold_arms_its_warning() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.admin(AdminCommand::SetRemaining { secs: 120 }).unwrap();
    h.admin(AdminCommand::SetRemaining { secs: 600 }).unwrap();
    h.at(secs(299));
    assert!(warnings(&h.tick()).is_empty());
    h.at(secs(300));
    assert_eq!(warnings(&h.tick()), vec![secs(300)]);
}

#[test]
fn cutting_a_set_short_does_not_fire_a_stale_warning() {
    let mut h = Harness::new();
    h.publish(1, 1);
    let out = h.admin(AdminCommand::SetRemaining { secs: 120 }).unwrap();
    assert!(warnings(&out).is_empty());
    h.at(secs(60));
    assert_eq!(warnings(&h.tick()), vec![secs(60)], "the one-minute warning still comes");
}

#[test]
fn a_late_tick_past_both_thresholds_sends_one_warning() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.at(secs(3550));
    assert_eq!(warnings(&h.tick()), vec![secs(50)]);
    h.at(secs(3590));
    assert!(warnings(&h.tick()).is_empty());
}

#[test]
fn warnings_are_not_repeated_after_the_timer_is_reset() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.at(secs(3300));
    assert_eq!(warnings(&h.tick()), vec![secs(300)]);
    h.admin(AdminCommand::ResetTimer).unwrap();
    h.at(secs(3300 + 3300));
    assert!(warnings(&h.tick()).is_empty(), "once per set");
    h.at(secs(3300 + 3540));
    assert_eq!(warnings(&h.tick()), vec![secs(60)]);
}

#[test]
fn pause_stops_the_clock_and_resume_continues_it() {
    let mut h = two_djs();
    h.at(secs(100));
    let out = h.admin(AdminCommand::PauseTimer).unwrap();
    assert_eq!(
        out,
        vec![Output::Notice(Notice::TimerChanged { dj: dj(1), remaining: secs(3500), paused: true }), h.persist(),]
    );
    assert_eq!(h.engine.next_deadline(), None, "nothing is due while paused");
    h.at(secs(5000));
    h.tick();
    assert_eq!(h.remaining(), secs(3500));
    assert!(h.status().lead.unwrap().paused);
    assert_eq!(h.admin(AdminCommand::PauseTimer).unwrap(), vec![], "already paused");

    h.admin(AdminCommand::ResumeTimer).unwrap();
    h.at(secs(5000 + 3499));
    h.tick();
    assert_eq!(h.lead(), Some((1, Some(1))));
    h.at(secs(5000 + 3500));
    assert_eq!(disconnects(&h.tick()), vec![(1, DisconnectReason::SlotElapsed)]);
    assert!(!h.status().lead.unwrap().paused, "a new set starts unpaused");
}

#[test]
fn set_swap_interval_keeps_elapsed_time_unless_reset() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.at(secs(600));
    let out = h.admin(AdminCommand::SetSwapInterval { secs: 1800, reset_current: false }).unwrap();
    assert_eq!(
        notices(&out),
        vec![
            Notice::SettingsChanged { swap_interval: secs(1800), block_enabled: false },
            Notice::TimerChanged { dj: dj(1), remaining: secs(1200), paused: false },
        ]
    );
    assert_eq!(h.status().swap_interval, secs(1800));
    assert_eq!(h.remaining(), secs(1200));

    h.admin(AdminCommand::SetSwapInterval { secs: 900, reset_current: true }).unwrap();
    assert_eq!(h.remaining(), secs(900));
    assert_eq!(h.status().lead.unwrap().elapsed, Duration::ZERO);
}

#[test]
fn set_swap_interval_shorter_than_elapsed_ends_the_set() {
    let mut h = two_djs();
    h.at(secs(600));
    let out = h.admin(AdminCommand::SetSwapInterval { secs: 300, reset_current: false }).unwrap();
    assert_eq!(disconnects(&out), vec![(1, DisconnectReason::SlotElapsed)]);
    assert_eq!(h.lead(), Some((2, Some(2))));
    assert_eq!(h.remaining(), secs(300), "the next set uses the new interval");
}

#[test]
fn set_swap_interval_without_a_set_changes_the_channel_setting() {
    let mut h = Harness::new();
    h.admin(AdminCommand::SetSwapInterval { secs: 60, reset_current: true }).unwrap();
    h.publish(1, 1);
    assert_eq!(h.remaining(), secs(60));
}

#[test]
fn set_remaining_and_reset_timer() {
    let mut h = two_djs();
    h.at(secs(1000));
    h.admin(AdminCommand::SetRemaining { secs: 90 }).unwrap();
    assert_eq!(h.remaining(), secs(90));
    assert_eq!(h.status().lead.unwrap().budget, secs(1090));
    h.at(secs(1030));
    assert_eq!(h.remaining(), secs(60));

    h.admin(AdminCommand::ResetTimer).unwrap();
    assert_eq!(h.status().lead.unwrap().elapsed, Duration::ZERO);
    assert_eq!(h.remaining(), secs(1090));

    let out = h.admin(AdminCommand::SetRemaining { secs: 0 }).unwrap();
    assert_eq!(disconnects(&out), vec![(1, DisconnectReason::SlotElapsed)]);
    assert_eq!(h.lead(), Some((2, Some(2))));
}

#[test]
fn huge_durations_do_not_overflow() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.admin(AdminCommand::SetRemaining { secs: u64::MAX }).unwrap();
    h.admin(AdminCommand::SetSwapInterval { secs: u64::MAX, reset_current: false }).unwrap();
    h.at(secs(10));
    h.tick();
    assert_eq!(h.lead(), Some((1, Some(1))));
    let json = serde_json::to_string(&h.engine.snapshot(h.now)).unwrap();
    assert!(json.contains(&format!("\"swap_interval_ms\":{}", u64::MAX)));
}

// Rule 8: block.

#[test]
fn block_refuses_the_just_ended_dj_only_when_they_would_go_straight_on_air() {
    let mut h = Harness::with(Settings { block_enabled: true, ..Settings::default() });
    h.publish(1, 1);
    h.stop(1);
    assert_eq!(h.status().last_ended, Some(dj(1)));
    assert_eq!(
        h.publish(2, 1),
        vec![Output::PublishRejected { conn: ConnId(2), reason: RejectReason::Blocked }],
        "a refusal changes nothing, so nothing is persisted"
    );
    assert_eq!(h.lead(), None);

    // Somebody else is on air: queueing behind them is fine.
    h.publish(3, 3);
    assert_eq!(h.status().last_ended, None, "forgotten once someone else is on air");
    let out = h.publish(4, 1);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(4), on_air: false, position: 1 });
}

#[test]
fn block_allows_the_just_ended_dj_to_queue_behind_a_held_slot() {
    let mut h = Harness::with(Settings { block_enabled: true, ..Settings::default() });
    h.publish(1, 1);
    h.publish(2, 2);
    h.stop(1); // user 2 on air, last_ended forgotten
    h.publish(3, 3);
    h.stop(2); // user 3 on air
    h.lose(3); // user 3's slot is held
    let out = h.publish(5, 2);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(5), on_air: false, position: 1 });
}

#[test]
fn block_applies_after_any_kind_of_set_end() {
    type Ending = (&'static str, fn(&mut Harness));
    let endings: [Ending; 4] = [
        ("slot elapsed", |h| {
            h.at(secs(3600)).tick();
        }),
        ("skip", |h| {
            h.admin(AdminCommand::Skip).unwrap();
        }),
        ("removal", |h| {
            h.admin(AdminCommand::Remove { user_id: UserId(1) }).unwrap();
        }),
        ("grace expired", |h| {
            h.lose(1);
            h.at(secs(10)).tick();
        }),
    ];
    for (ending, end_set) in endings {
        let mut h = Harness::with(Settings { block_enabled: true, ..Settings::default() });
        h.publish(1, 1);
        end_set(&mut h);
        assert_eq!(
            h.publish(2, 1),
            vec![Output::PublishRejected { conn: ConnId(2), reason: RejectReason::Blocked }],
            "after {ending}"
        );
    }
}

#[test]
fn without_block_the_just_ended_dj_may_go_straight_back_on_air() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.stop(1);
    assert_eq!(h.publish(2, 1)[0], Output::PublishAccepted { conn: ConnId(2), on_air: true, position: 0 });
    assert_eq!(h.status().last_ended, None);
}

#[test]
fn block_can_be_set_and_toggled() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.stop(1);
    let out = h.admin(AdminCommand::ToggleBlock).unwrap();
    assert_eq!(
        out,
        vec![Output::Notice(Notice::SettingsChanged { swap_interval: secs(3600), block_enabled: true }), h.persist(),]
    );
    assert!(h.status().block_enabled);
    assert_eq!(h.admin(AdminCommand::SetBlock(true)).unwrap(), vec![], "no change");
    assert_eq!(h.publish(2, 1)[0], Output::PublishRejected { conn: ConnId(2), reason: RejectReason::Blocked });
    h.admin(AdminCommand::SetBlock(false)).unwrap();
    assert!(!h.status().block_enabled);
    assert_eq!(h.publish(3, 1)[0], Output::PublishAccepted { conn: ConnId(3), on_air: true, position: 0 });
}

// Rule 9: admin commands.

#[test]
fn skip_ends_the_set_and_disconnects_the_lead() {
    let mut h = two_djs();
    let out = h.admin(AdminCommand::Skip).unwrap();
    assert_eq!(
        out,
        vec![
            Output::Disconnect { conn: ConnId(1), reason: DisconnectReason::Skipped },
            Output::Notice(Notice::SetEnded { dj: dj(1), reason: EndReason::Skipped }),
            Output::Notice(Notice::OnAir { dj: dj(2) }),
            Output::ProgramSource(Some(ConnId(2))),
            h.persist(),
        ]
    );
}

#[test]
fn skip_of_a_lead_in_grace_promotes_without_a_disconnect() {
    let mut h = two_djs();
    h.lose(1);
    let out = h.admin(AdminCommand::Skip).unwrap();
    assert!(disconnects(&out).is_empty());
    assert_eq!(h.lead(), Some((2, Some(2))));
}

#[test]
fn remove_and_disable_kick_the_lead_or_a_waiting_dj() {
    let mut h = two_djs();
    h.publish(3, 3);
    let out = h.admin(AdminCommand::Remove { user_id: UserId(2) }).unwrap();
    assert_eq!(
        out,
        vec![
            Output::Disconnect { conn: ConnId(2), reason: DisconnectReason::Removed },
            Output::Notice(Notice::LeftQueue { dj: dj(2), reason: EndReason::Removed }),
            h.persist(),
        ]
    );
    let out = h.admin(AdminCommand::DisableUser { user_id: UserId(1) }).unwrap();
    assert_eq!(disconnects(&out), vec![(1, DisconnectReason::Disabled)]);
    assert!(out.contains(&Output::Notice(Notice::SetEnded { dj: dj(1), reason: EndReason::Disabled })));
    assert_eq!(h.lead(), Some((3, Some(3))));
    assert!(h.waiting().is_empty());
}

#[test]
fn move_up_and_down_reorder_the_waiting_list() {
    let mut h = two_djs();
    h.publish(3, 3);
    h.publish(4, 4);
    let out = h.admin(AdminCommand::MoveUp { user_id: UserId(4) }).unwrap();
    assert_eq!(
        out,
        vec![
            Output::Notice(Notice::Moved { dj: dj(4), position: 2 }),
            Output::Notice(Notice::Moved { dj: dj(3), position: 3 }),
            h.persist(),
        ]
    );
    assert_eq!(h.waiting(), vec![(2, Some(2)), (4, Some(4)), (3, Some(3))]);
    h.admin(AdminCommand::MoveDown { user_id: UserId(2) }).unwrap();
    assert_eq!(h.waiting(), vec![(4, Some(4)), (2, Some(2)), (3, Some(3))]);
    // At the ends of the list a move is a no-op.
    assert_eq!(h.admin(AdminCommand::MoveUp { user_id: UserId(4) }).unwrap(), vec![]);
    assert_eq!(h.admin(AdminCommand::MoveDown { user_id: UserId(3) }).unwrap(), vec![]);
    assert_eq!(h.waiting(), vec![(4, Some(4)), (2, Some(2)), (3, Some(3))]);
    assert_eq!(h.lead(), Some((1, Some(1))), "moves never touch the lead");
}

#[test]
fn failed_admin_commands_change_nothing() {
    let mut h = two_djs();
    h.lose(1);
    h.at(secs(60)); // the grace period is over, but nothing has ticked yet
    let before = (h.status(), h.engine.snapshot(h.now), h.engine.next_deadline());
    for (command, error) in [
        (AdminCommand::Remove { user_id: UserId(9) }, AdminError::NotInQueue),
        (AdminCommand::DisableUser { user_id: UserId(9) }, AdminError::NotInQueue),
        (AdminCommand::MoveUp { user_id: UserId(9) }, AdminError::NotInQueue),
        // The command sees the queue as of now: user 2 has taken over the lead.
        (AdminCommand::MoveDown { user_id: UserId(2) }, AdminError::NotWaiting),
        (AdminCommand::SetSwapInterval { secs: 0, reset_current: false }, AdminError::ZeroSwapInterval),
    ] {
        assert_eq!(h.admin(command), Err(error));
        assert_eq!((h.status(), h.engine.snapshot(h.now), h.engine.next_deadline()), before);
    }
    // The expiry is still applied by the next call.
    assert!(h.tick().contains(&Output::Notice(Notice::OnAir { dj: dj(2) })));
}

#[test]
fn timer_commands_and_skip_need_a_current_set() {
    let mut h = Harness::new();
    for command in [
        AdminCommand::Skip,
        AdminCommand::PauseTimer,
        AdminCommand::ResumeTimer,
        AdminCommand::ResetTimer,
        AdminCommand::SetRemaining { secs: 10 },
    ] {
        assert_eq!(h.admin(command), Err(AdminError::NoCurrentSet));
    }
    assert_eq!(h.status(), Harness::new().status());
}

#[test]
fn admin_errors_are_displayable() {
    assert_eq!(AdminError::NotInQueue.to_string(), "this user is not in the queue");
}

// Rule 10: one place per user.

#[test]
fn a_user_with_a_live_place_cannot_publish_again() {
    let mut h = two_djs();
    let rejected = |conn| vec![Output::PublishRejected { conn: ConnId(conn), reason: RejectReason::AlreadyPublishing }];
    assert_eq!(h.publish(3, 1), rejected(3), "the lead");
    assert_eq!(h.publish(4, 2), rejected(4), "a waiting DJ");
    assert_eq!(h.publish(2, 5), rejected(2), "a connection that already publishes");
    assert_eq!(h.lead(), Some((1, Some(1))));
    assert_eq!(h.waiting(), vec![(2, Some(2))]);
    // The refused connections closing does not affect the places.
    assert_eq!(h.lose(3), vec![]);
}

#[test]
fn a_lead_in_grace_is_not_already_publishing() {
    let mut h = Harness::new();
    h.publish(1, 1);
    h.lose(1);
    assert_eq!(h.publish(2, 1)[0], Output::PublishAccepted { conn: ConnId(2), on_air: true, position: 0 });
}

// Rule 11: persistence and restore.

#[test]
fn every_state_change_is_persisted_and_nothing_else_is() {
    let mut h = two_djs();
    h.publish(3, 3);
    let changes: Vec<Vec<Output>> = vec![
        h.admin(AdminCommand::MoveUp { user_id: UserId(3) }).unwrap(),
        h.admin(AdminCommand::PauseTimer).unwrap(),
        h.admin(AdminCommand::ResumeTimer).unwrap(),
        h.admin(AdminCommand::ToggleBlock).unwrap(),
        h.admin(AdminCommand::SetRemaining { secs: 1000 }).unwrap(),
        h.lose(1),
        h.publish(5, 1),
        h.stop(2),
        h.publish(6, 6),
        h.stall(6),
        h.admin(AdminCommand::Skip).unwrap(),
    ];
    for (index, out) in changes.iter().enumerate() {
        assert!(persisted(out), "change #{index} was not persisted: {out:?}");
        assert_eq!(out.iter().filter(|o| matches!(o, Output::Persist(_))).count(), 1);
    }
    assert_eq!(changes.last().unwrap().last().unwrap(), &h.persist());
    h.at(secs(5));
    assert!(!persisted(&h.tick()), "time passing alone is not a change");
    assert!(!persisted(&h.publish(3, 3)), "a refusal is not a change");
    assert!(!persisted(&h.stop(99)));
}

#[test]
fn snapshot_round_trips_through_json_with_millisecond_durations() {
    let mut h = two_djs();
    h.at(Duration::from_millis(1500));
    h.admin(AdminCommand::PauseTimer).unwrap();
    h.publish(1, 1); // refused, just to be sure it changes nothing
    h.admin(AdminCommand::ToggleBlock).unwrap();
    let snapshot = h.engine.snapshot(h.now);
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "swap_interval_ms": 3_600_000,
            "block_enabled": true,
            "last_ended": null,
            "lead": { "user_id": 1, "dj_name": "dj1", "budget_ms": 3_600_000, "elapsed_ms": 1500, "paused": true },
            "waiting": [{ "user_id": 2, "dj_name": "dj2" }],
        })
    );
    let back: Snapshot = serde_json::from_value(json).unwrap();
    assert_eq!(back, snapshot);
}

/// A saved queue: user 1 on air with 600 s left of a 3600 s set, users 2 and 3 waiting.
fn saved() -> Snapshot {
    Snapshot {
        swap_interval: secs(1800),
        block_enabled: true,
        last_ended: Some(dj(9)),
        lead: Some(LeadSnapshot { dj: dj(1), budget: secs(3600), elapsed: secs(3000), paused: false }),
        waiting: vec![dj(2), dj(3)],
        b2b: Vec::new(),
        bookings_open: Vec::new(),
        bookings_done: Vec::new(),
    }
}

fn restored() -> Harness {
    let mut h = Harness::new();
    h.engine = Engine::restore(Settings::default(), saved(), h.now);
    h
}

#[test]
fn restore_turns_every_place_into_a_reservation() {
    let h = restored();
    let status = h.status();
    let lead = status.lead.unwrap();
    assert_eq!((lead.dj, lead.conn, lead.reserved, lead.reclaim_within), (dj(1), None, true, Some(secs(10))));
    assert_eq!(lead.remaining, secs(600));
    assert_eq!(
        status.waiting.iter().map(|w| (w.dj.user_id.0, w.conn, w.reclaim_within)).collect::<Vec<_>>(),
        vec![(2, None, Some(secs(10))), (3, None, Some(secs(10)))]
    );
    assert_eq!((status.swap_interval, status.block_enabled), (secs(1800), true), "runtime settings survive");
    assert_eq!(status.last_ended, Some(dj(9)));
    assert_eq!(h.engine.next_deadline(), Some(h.t0 + secs(10)));
}

#[test]
fn reclaiming_within_the_deadline_keeps_order_and_time_left() {
    let mut h = restored();
    h.at(secs(3));
    let out = h.publish(23, 3);
    assert_eq!(
        out,
        vec![
            Output::PublishAccepted { conn: ConnId(23), on_air: false, position: 2 },
            Output::Notice(Notice::Queued { dj: dj(3), position: 2 }),
            h.persist(),
        ]
    );
    assert!(program_changes(&out).is_empty(), "the slate stays while the lead is reserved");
    h.at(secs(5));
    let out = h.publish(21, 1);
    assert_eq!(
        out,
        vec![
            Output::PublishAccepted { conn: ConnId(21), on_air: true, position: 0 },
            Output::Notice(Notice::Resumed { dj: dj(1) }),
            Output::ProgramSource(Some(ConnId(21))),
            h.persist(),
        ]
    );
    assert_eq!(h.remaining(), secs(600));
    h.publish(22, 2);
    assert_eq!(h.waiting(), vec![(2, Some(22)), (3, Some(23))]);
    assert_eq!(h.status().last_ended, None);
}

#[test]
fn unclaimed_places_are_dropped_at_the_deadline() {
    let mut h = restored();
    h.publish(21, 1);
    h.at(secs(10) - Duration::from_millis(1));
    assert_eq!(h.tick(), vec![]);
    h.at(secs(10));
    let out = h.tick();
    assert_eq!(
        notices(&out),
        vec![
            Notice::LeftQueue { dj: dj(2), reason: EndReason::NotReclaimed },
            Notice::LeftQueue { dj: dj(3), reason: EndReason::NotReclaimed },
        ]
    );
    assert!(persisted(&out));
    assert_eq!(h.lead(), Some((1, Some(21))));
    assert!(h.waiting().is_empty());
    // Too late now: the user is simply a new publisher.
    assert_eq!(h.publish(22, 2)[0], Output::PublishAccepted { conn: ConnId(22), on_air: false, position: 1 });
}

#[test]
fn an_unclaimed_restored_lead_gives_way_to_a_live_waiting_dj() {
    let mut h = restored();
    h.publish(22, 2);
    h.at(secs(10));
    let out = h.tick();
    assert_eq!(
        notices(&out),
        vec![
            Notice::LeftQueue { dj: dj(3), reason: EndReason::NotReclaimed },
            Notice::SetEnded { dj: dj(1), reason: EndReason::NotReclaimed },
            Notice::OnAir { dj: dj(2) },
        ]
    );
    assert_eq!(program_changes(&out), vec![Some(22)]);
    assert_eq!(h.remaining(), secs(1800), "a fresh set with the restored interval");
}

#[test]
fn a_reservation_promoted_to_lead_is_held_until_its_own_deadline() {
    let mut h = restored();
    h.publish(21, 1);
    h.publish(23, 3);
    h.at(secs(4));
    // The lead stops while user 2 (next) has not reclaimed yet: user 2 gets the lead slot
    // as a reservation, and user 3 keeps waiting behind it.
    let out = h.stop(21);
    assert_eq!(
        notices(&out),
        vec![
            Notice::SetEnded { dj: dj(1), reason: EndReason::Stopped },
            Notice::GraceStarted { dj: dj(2), grace: secs(6) },
        ]
    );
    assert_eq!(program_changes(&out), vec![None]);
    let lead = h.status().lead.unwrap();
    assert_eq!((lead.conn, lead.reserved, lead.reclaim_within), (None, true, Some(secs(6))));
    assert_eq!(h.waiting(), vec![(3, Some(23))]);

    h.at(secs(8));
    let out = h.publish(22, 2);
    assert!(out.contains(&Output::Notice(Notice::OnAir { dj: dj(2) })), "a new set, not a resume");
    assert_eq!(program_changes(&out), vec![Some(22)]);
    assert_eq!(h.remaining(), secs(1800));
}

#[test]
fn a_promoted_reservation_not_reclaimed_gives_way_to_the_next() {
    let mut h = restored();
    h.publish(21, 1);
    h.publish(23, 3);
    h.stop(21);
    h.at(secs(10));
    let out = h.tick();
    assert!(out.contains(&Output::Notice(Notice::SetEnded { dj: dj(2), reason: EndReason::NotReclaimed })));
    assert_eq!(h.lead(), Some((3, Some(23))));
    assert_eq!(h.status().last_ended, None);
}

#[test]
fn a_restored_paused_lead_stays_paused() {
    let mut snapshot = saved();
    if let Some(lead) = &mut snapshot.lead {
        lead.paused = true;
    }
    let t0 = Instant::now();
    let mut engine = Engine::restore(Settings::default(), snapshot, t0);
    engine.handle(t0, Input::PublishRequested { conn: ConnId(1), dj: dj(1) }).unwrap();
    let later = t0 + secs(1000);
    let lead = engine.status(later).lead.unwrap();
    assert_eq!((lead.remaining, lead.paused), (secs(600), true));
}

#[test]
fn restore_repairs_an_inconsistent_snapshot() {
    let t0 = Instant::now();
    let snapshot = Snapshot {
        swap_interval: Duration::ZERO,
        block_enabled: false,
        last_ended: None,
        lead: None,
        waiting: vec![dj(2), dj(3), dj(2)],
        b2b: Vec::new(),
        bookings_open: Vec::new(),
        bookings_done: Vec::new(),
    };
    let status = Engine::restore(Settings::default(), snapshot, t0).status(t0);
    assert_eq!(status.swap_interval, secs(3600), "a zero interval falls back to the settings");
    assert_eq!(status.lead.map(|lead| lead.dj), Some(dj(2)), "the first waiter is promoted");
    assert_eq!(status.waiting.iter().map(|w| w.dj.user_id.0).collect::<Vec<_>>(), vec![3], "duplicates are dropped");
}

#[test]
fn a_saved_lead_without_time_left_is_not_restored() {
    let t0 = Instant::now();
    let mut snapshot = saved();
    snapshot.lead = Some(LeadSnapshot { dj: dj(1), budget: secs(600), elapsed: secs(600), paused: false });
    let mut engine = Engine::restore(Settings::default(), snapshot, t0);
    let status = engine.status(t0);
    assert_eq!(status.lead.map(|lead| lead.dj), Some(dj(2)), "the next place is held as lead");
    assert_eq!(status.last_ended, Some(dj(1)));
    let out = engine.handle(t0, Input::PublishRequested { conn: ConnId(1), dj: dj(1) }).unwrap();
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(1), on_air: false, position: 2 });
}

#[test]
fn next_deadline_names_the_earliest_pending_change() {
    let mut h = two_djs();
    assert_eq!(h.engine.next_deadline(), Some(h.t0 + secs(3300)), "the five-minute warning");
    h.at(secs(3300));
    h.tick();
    assert_eq!(h.engine.next_deadline(), Some(h.t0 + secs(3540)));
    h.at(secs(3540));
    h.tick();
    assert_eq!(h.engine.next_deadline(), Some(h.t0 + secs(3600)));
    h.at(secs(3550));
    h.lose(1);
    assert_eq!(h.engine.next_deadline(), Some(h.t0 + secs(3560)), "the end of grace");
    assert_eq!(Harness::new().engine.next_deadline(), None);
}

#[test]
fn notices_read_well() {
    let notice = Notice::TimeWarning { dj: dj(1), remaining: secs(60) };
    assert_eq!(notice.to_string(), "dj1 has 60s left");
    let notice = Notice::SetEnded { dj: dj(1), reason: EndReason::GraceExpired };
    assert_eq!(notice.to_string(), "dj1's set ended: did not reconnect in time");
}

mod b2b;
mod booking;
mod properties;
