//! Back-to-back sets, with the virtual clock.

use std::time::{Duration, Instant};

use super::*;

const ALICE: i64 = 1;
const BOB: i64 = 2;
const CAROL: i64 = 3;

fn dj(user_id: i64) -> Dj {
    let name = match user_id {
        ALICE => "Alice".to_owned(),
        BOB => "Bob".to_owned(),
        CAROL => "Carol".to_owned(),
        other => format!("dj{other}"),
    };
    Dj { user_id: UserId(user_id), dj_name: name }
}

/// The shared virtual-clock harness, with the DJs named as above.
impl Harness {
    /// Connection `conn` starts publishing as `user` (a named DJ).
    fn stream(&mut self, conn: u64, user: i64) -> Vec<Output> {
        self.input(Input::PublishRequested { conn: ConnId(conn), dj: dj(user) })
    }

    fn add(&mut self, set: i64, user: i64, by: Caller) -> Result<Vec<Output>, AdminError> {
        self.engine.handle(self.now, Input::AddMember { set: UserId(set), dj: dj(user), by })
    }

    fn hand_over(&mut self, set: i64, to: i64, by: Caller) -> Result<Vec<Output>, AdminError> {
        self.engine.handle(self.now, Input::HandOver { set: UserId(set), to: UserId(to), by })
    }

    fn set_lead(&self) -> LeadStatus {
        self.status().lead.expect("a lead")
    }

    /// Alice on air on connection 1, Bob in her set and standing by on connection 2.
    fn alice_b2b_bob() -> Self {
        let mut h = Harness::new();
        h.stream(1, ALICE);
        h.add(ALICE, BOB, Caller::Dj(UserId(ALICE))).expect("the lead adds a partner");
        h.stream(2, BOB);
        h
    }
}

fn members(status: &LeadStatus) -> Vec<(i64, Option<u64>, bool)> {
    status.members.iter().map(|m| (m.dj.user_id.0, m.conn.map(|c| c.0), m.on_air)).collect()
}

#[test]
fn a_partner_who_publishes_stands_by_in_the_set_instead_of_queueing() {
    let mut h = Harness::new();
    h.stream(1, ALICE);
    let added = h.add(ALICE, BOB, Caller::Dj(UserId(ALICE))).unwrap();
    assert_eq!(notices(&added), vec![Notice::MemberAdded { dj: dj(BOB), set: "Alice b2b Bob".to_owned() }]);
    assert!(added.iter().any(|o| matches!(o, Output::Persist(s) if s.b2b.len() == 1)));

    let out = h.stream(2, BOB);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(2), on_air: false, position: 0 });
    assert_eq!(notices(&out), vec![Notice::StandingBy { dj: dj(BOB), set: "Alice b2b Bob".to_owned() }]);
    assert!(program_changes(&out).is_empty(), "standing by does not touch the program");
    assert!(h.status().waiting.is_empty(), "Bob did not queue separately");
    assert_eq!(members(&h.set_lead()), vec![(ALICE, Some(1), true), (BOB, Some(2), false)]);

    // A second connection of the same member is refused like a double publish.
    let again = h.stream(3, BOB);
    assert_eq!(again, vec![Output::PublishRejected { conn: ConnId(3), reason: RejectReason::AlreadyPublishing }]);
}

#[test]
fn a_hand_over_switches_the_program_and_the_set_clock_keeps_running() {
    let mut h = Harness::alice_b2b_bob();
    h.at(secs(100));
    let out = h.hand_over(ALICE, BOB, Caller::Dj(UserId(BOB))).unwrap();
    assert_eq!(program_changes(&out), vec![Some(2)]);
    assert_eq!(
        notices(&out),
        vec![Notice::HandedOver { from: dj(ALICE), to: dj(BOB), set: "Alice b2b Bob".to_owned(), automatic: false }]
    );
    assert!(disconnects(&out).is_empty(), "Alice stays connected, standing by");
    let lead = h.set_lead();
    assert_eq!(lead.conn, Some(ConnId(2)));
    assert_eq!(lead.elapsed, secs(100));
    assert_eq!(members(&lead), vec![(ALICE, Some(1), false), (BOB, Some(2), true)]);

    // Back to Alice, by an admin; one budget for the whole set.
    h.at(secs(250));
    let back = h.hand_over(BOB, ALICE, Caller::Admin).unwrap();
    assert_eq!(program_changes(&back), vec![Some(1)]);
    assert_eq!(h.set_lead().elapsed, secs(250));
    assert_eq!(h.set_lead().remaining, secs(3600 - 250));
}

#[test]
fn a_hand_over_to_a_member_who_is_not_live_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    h.stream(1, ALICE);
    h.add(ALICE, BOB, Caller::Admin).unwrap();
    let before = h.status();
    assert_eq!(h.hand_over(ALICE, BOB, Caller::Dj(UserId(ALICE))), Err(AdminError::B2b(B2bError::NotLive)));
    assert_eq!(h.hand_over(ALICE, ALICE, Caller::Admin), Err(AdminError::B2b(B2bError::AlreadyOnAir)));
    assert_eq!(h.hand_over(ALICE, CAROL, Caller::Admin), Err(AdminError::B2b(B2bError::NotAMember)));
    assert_eq!(h.status(), before);
    assert_eq!(AdminError::B2b(B2bError::NotLive).to_string(), B2bError::NotLive.to_string());
}

#[test]
fn only_members_and_admins_may_change_a_set() {
    let mut h = Harness::alice_b2b_bob();
    h.stream(3, CAROL); // queued with her own set
    let carol = Caller::Dj(UserId(CAROL));
    assert_eq!(h.hand_over(ALICE, BOB, carol), Err(AdminError::B2b(B2bError::NotAllowed)));
    assert_eq!(h.add(ALICE, 9, carol), Err(AdminError::B2b(B2bError::NotAllowed)));
    // Carol holds a place of her own, so she cannot join Alice's set.
    assert_eq!(h.add(ALICE, CAROL, Caller::Admin), Err(AdminError::B2b(B2bError::Busy)));
    assert_eq!(h.add(ALICE, BOB, Caller::Admin), Err(AdminError::B2b(B2bError::AlreadyMember)));
    assert_eq!(h.add(42, BOB, Caller::Admin), Err(AdminError::B2b(B2bError::NoSuchSet)));
    // Bob, a partner, may name the set by himself and add a third DJ.
    h.add(BOB, 4, Caller::Dj(UserId(BOB))).unwrap();
    assert_eq!(h.set_lead().members.len(), 3);
}

#[test]
fn the_member_on_air_who_drops_hands_over_to_the_one_standing_by_without_slate() {
    let mut h = Harness::alice_b2b_bob();
    h.at(secs(60));
    let out = h.input(Input::ConnectionLost { conn: ConnId(1) });
    assert_eq!(program_changes(&out), vec![Some(2)], "straight to Bob, never the slate");
    assert!(!notices(&out).iter().any(|n| matches!(n, Notice::GraceStarted { .. })));
    assert!(notices(&out).contains(&Notice::HandedOver {
        from: dj(ALICE),
        to: dj(BOB),
        set: "Alice b2b Bob".to_owned(),
        automatic: true
    }));
    h.at(secs(90));
    assert_eq!(h.set_lead().elapsed, secs(90), "the clock never stopped");
    assert_eq!(members(&h.set_lead()), vec![(ALICE, None, false), (BOB, Some(2), true)]);

    // Alice comes back: she stands by, and may take over again.
    h.stream(5, ALICE);
    let back = h.hand_over(ALICE, ALICE, Caller::Dj(UserId(ALICE))).unwrap();
    assert_eq!(program_changes(&back), vec![Some(5)]);
}

#[test]
fn a_stalled_member_on_air_is_disconnected_and_replaced() {
    let mut h = Harness::alice_b2b_bob();
    let out = h.input(Input::StallDetected { conn: ConnId(1) });
    assert_eq!(disconnects(&out), vec![(1, DisconnectReason::Stalled)]);
    assert_eq!(program_changes(&out), vec![Some(2)]);
}

#[test]
fn with_nobody_standing_by_the_lead_gets_its_grace_and_a_member_can_resume_the_set() {
    let mut h = Harness::new();
    h.stream(1, ALICE);
    h.add(ALICE, BOB, Caller::Admin).unwrap();
    h.at(secs(10));
    let out = h.input(Input::ConnectionLost { conn: ConnId(1) });
    assert_eq!(program_changes(&out), vec![None]);
    assert!(notices(&out).iter().any(|n| matches!(n, Notice::GraceStarted { .. })));

    // Bob starts streaming within the grace: the set goes back on air with him.
    h.at(secs(15));
    let out = h.stream(2, BOB);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(2), on_air: true, position: 0 });
    assert_eq!(program_changes(&out), vec![Some(2)]);
    assert!(notices(&out).contains(&Notice::Resumed { dj: dj(ALICE) }), "the set, named by its host, resumes");
    h.at(secs(20));
    assert_eq!(h.set_lead().elapsed, secs(15), "the clock stood still only while the slate was on");
}

#[test]
fn the_end_of_the_set_releases_every_member() {
    let mut h = Harness::alice_b2b_bob();
    h.stream(3, CAROL);
    h.hand_over(ALICE, BOB, Caller::Admin).unwrap();
    h.at(secs(3600));
    let out = h.input(Input::Tick);
    let mut gone = disconnects(&out);
    gone.sort_by_key(|(conn, _)| *conn);
    assert_eq!(gone, vec![(1, DisconnectReason::SlotElapsed), (2, DisconnectReason::SlotElapsed)]);
    assert!(notices(&out).contains(&Notice::SetEnded { dj: dj(ALICE), reason: EndReason::SlotElapsed }));
    assert_eq!(program_changes(&out), vec![Some(3)]);
    assert!(h.set_lead().members.is_empty());
}

#[test]
fn the_set_ends_when_its_last_member_stops() {
    let mut h = Harness::alice_b2b_bob();
    let first = h.input(Input::PublishStopped { conn: ConnId(2) });
    assert!(program_changes(&first).is_empty(), "a standby member stopping changes nothing on air");
    let out = h.input(Input::PublishStopped { conn: ConnId(1) });
    assert!(notices(&out).contains(&Notice::SetEnded { dj: dj(ALICE), reason: EndReason::Stopped }));
    assert_eq!(program_changes(&out), vec![None]);

    // A clean stop of the member on air with somebody standing by is a hand-over.
    let mut h = Harness::alice_b2b_bob();
    let out = h.input(Input::PublishStopped { conn: ConnId(1) });
    assert_eq!(program_changes(&out), vec![Some(2)]);
    assert!(h.status().lead.is_some());
}

#[test]
fn a_queued_set_forms_before_it_airs_and_goes_on_with_whoever_streams() {
    let mut h = Harness::new();
    h.stream(3, CAROL);
    h.stream(1, ALICE);
    h.add(ALICE, BOB, Caller::Dj(UserId(ALICE))).unwrap();
    let out = h.stream(2, BOB);
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(2), on_air: false, position: 1 });
    assert_eq!(h.status().waiting.len(), 1);
    // Alice leaves the queue; the set keeps its place with Bob.
    h.input(Input::ConnectionLost { conn: ConnId(1) });
    assert_eq!(h.status().waiting[0].conn, Some(ConnId(2)));
    let out = h.input(Input::PublishStopped { conn: ConnId(3) });
    assert_eq!(program_changes(&out), vec![Some(2)]);
    assert!(notices(&out).contains(&Notice::OnAir { dj: dj(ALICE) }), "history sees the set by its host");
}

#[test]
fn removing_a_member_keeps_the_set_going() {
    let mut h = Harness::alice_b2b_bob();
    let out = h.engine.handle(h.now, Input::Admin(AdminCommand::Remove { user_id: UserId(ALICE) })).unwrap();
    assert_eq!(disconnects(&out), vec![(1, DisconnectReason::Removed)]);
    assert_eq!(program_changes(&out), vec![Some(2)]);
    assert!(h.set_lead().members.is_empty(), "a set of one is a solo set again");

    let mut h = Harness::alice_b2b_bob();
    let by_bob = Input::RemoveMember { set: UserId(ALICE), user: UserId(BOB), by: Caller::Dj(UserId(BOB)) };
    let out = h.engine.handle(h.now, by_bob).unwrap();
    assert_eq!(disconnects(&out), vec![(2, DisconnectReason::Removed)]);
    assert!(program_changes(&out).is_empty());

    let mut h = Harness::new();
    h.stream(1, ALICE);
    h.add(ALICE, BOB, Caller::Admin).unwrap();
    let alone = Input::RemoveMember { set: UserId(ALICE), user: UserId(ALICE), by: Caller::Admin };
    assert_eq!(h.engine.handle(h.now, alone), Err(AdminError::B2b(B2bError::OnAirAlone)));
}

/// Set history and recordings go by the host's name: with the host gone mid-set, their set
/// is over (its history row closes) and what goes on is the partner's own set.
#[test]
fn the_host_removed_mid_set_ends_their_set_and_the_partner_carries_on_under_their_own_name() {
    let mut h = Harness::alice_b2b_bob();
    let remove = Input::Admin(AdminCommand::Remove { user_id: UserId(ALICE) });
    let out = h.engine.handle(h.now, remove).unwrap();
    let said = notices(&out);
    assert!(said.contains(&Notice::SetEnded { dj: dj(ALICE), reason: EndReason::Removed }), "{said:?}");
    assert!(said.contains(&Notice::OnAir { dj: dj(BOB) }), "{said:?}");
    assert_eq!(program_changes(&out), vec![Some(2)], "the program goes on: Bob was already streaming");
    let out = h.input(Input::PublishStopped { conn: ConnId(2) });
    assert!(notices(&out).contains(&Notice::SetEnded { dj: dj(BOB), reason: EndReason::Stopped }));

    // The host standing by (Bob on air) and leaving the set of their own accord.
    let mut h = Harness::alice_b2b_bob();
    h.hand_over(ALICE, BOB, Caller::Dj(UserId(ALICE))).unwrap();
    let leaves = Input::RemoveMember { set: UserId(ALICE), user: UserId(ALICE), by: Caller::Dj(UserId(ALICE)) };
    let said = notices(&h.engine.handle(h.now, leaves).unwrap());
    assert!(said.contains(&Notice::SetEnded { dj: dj(ALICE), reason: EndReason::Removed }), "{said:?}");
    assert!(said.contains(&Notice::OnAir { dj: dj(BOB) }), "{said:?}");

    // A partner who leaves changes nothing of the set's name.
    let mut h = Harness::alice_b2b_bob();
    let leaves = Input::RemoveMember { set: UserId(ALICE), user: UserId(BOB), by: Caller::Dj(UserId(BOB)) };
    let said = notices(&h.engine.handle(h.now, leaves).unwrap());
    assert!(!said.iter().any(|n| matches!(n, Notice::SetEnded { .. } | Notice::OnAir { .. })), "{said:?}");
}

#[test]
fn members_survive_a_restart() {
    let mut h = Harness::alice_b2b_bob();
    h.at(secs(100));
    h.hand_over(ALICE, BOB, Caller::Admin).unwrap();
    let saved = h.engine.snapshot(h.now);
    let json = serde_json::to_string(&saved).unwrap();
    let saved: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(saved.b2b, vec![B2bSnapshot { on_air: UserId(BOB), members: vec![dj(ALICE), dj(BOB)] }]);

    let t = h.now;
    let mut engine = Engine::restore(Settings::default(), saved, t);
    // Alice reconnects first: she resumes the set, which still has both members.
    let out = engine.handle(t, Input::PublishRequested { conn: ConnId(7), dj: dj(ALICE) }).unwrap();
    assert_eq!(program_changes(&out), vec![Some(7)]);
    let out = engine.handle(t, Input::PublishRequested { conn: ConnId(8), dj: dj(BOB) }).unwrap();
    assert_eq!(out[0], Output::PublishAccepted { conn: ConnId(8), on_air: false, position: 0 });
    let lead = engine.status(t).lead.unwrap();
    assert_eq!(members(&lead), vec![(ALICE, Some(7), true), (BOB, Some(8), false)]);
    assert_eq!(lead.elapsed, secs(100));

    // A snapshot from before back-to-back sets existed still loads.
    let old = r#"{"swap_interval_ms":1000,"block_enabled":false,"last_ended":null,"lead":null,"waiting":[]}"#;
    assert!(serde_json::from_str::<Snapshot>(old).unwrap().b2b.is_empty());
}

mod properties {
    //! Random sequences mixing back-to-back commands with the usual events, checking that
    //! sets never break the queue's invariants.

    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn user() -> impl Strategy<Value = i64> {
        0..5i64
    }

    fn caller() -> impl Strategy<Value = Caller> {
        prop_oneof![Just(Caller::Admin), user().prop_map(|u| Caller::Dj(UserId(u)))]
    }

    fn input() -> impl Strategy<Value = Input> {
        let conn = (0..8u64).prop_map(ConnId);
        prop_oneof![
            4 => (conn.clone(), user()).prop_map(|(conn, u)| Input::PublishRequested { conn, dj: dj(u) }),
            2 => conn.clone().prop_map(|conn| Input::PublishStopped { conn }),
            2 => conn.clone().prop_map(|conn| Input::ConnectionLost { conn }),
            1 => conn.prop_map(|conn| Input::StallDetected { conn }),
            2 => Just(Input::Tick),
            1 => Just(Input::Admin(AdminCommand::Skip)),
            1 => user().prop_map(|u| Input::Admin(AdminCommand::Remove { user_id: UserId(u) })),
            3 => (user(), user(), caller()).prop_map(|(set, u, by)| Input::AddMember { set: UserId(set), dj: dj(u), by }),
            1 => (user(), user(), caller())
                .prop_map(|(set, u, by)| Input::RemoveMember { set: UserId(set), user: UserId(u), by }),
            3 => (user(), user(), caller()).prop_map(|(set, to, by)| Input::HandOver { set: UserId(set), to: UserId(to), by }),
        ]
    }

    /// Every live connection: the places' and the members' standing by.
    fn live(status: &Status) -> HashSet<ConnId> {
        let lead = status.lead.iter().flat_map(|l| l.conn.into_iter().chain(l.members.iter().filter_map(|m| m.conn)));
        let waiting =
            status.waiting.iter().flat_map(|w| w.conn.into_iter().chain(w.members.iter().filter_map(|m| m.conn)));
        lead.chain(waiting).collect()
    }

    fn check(status: &Status, program: Option<ConnId>) -> Result<(), TestCaseError> {
        let mut users = HashSet::new();
        let mut conns = HashSet::new();
        let places = status.lead.iter().map(|l| (&l.dj, l.conn, &l.members));
        let waiting = status.waiting.iter().map(|w| (&w.dj, w.conn, &w.members));
        for (dj, conn, members) in places.chain(waiting) {
            if members.is_empty() {
                prop_assert!(users.insert(dj.user_id), "user {} is in two sets", dj.user_id);
                prop_assert!(conn.is_none_or(|c| conns.insert(c)), "a connection in two places");
                continue;
            }
            prop_assert!(members.len() >= 2, "a set of one member is a solo set");
            let on_air: Vec<&MemberStatus> = members.iter().filter(|m| m.on_air).collect();
            prop_assert_eq!(on_air.len(), 1, "one member on air per set");
            prop_assert_eq!(&on_air[0].dj, dj);
            prop_assert_eq!(on_air[0].conn, conn);
            for member in members {
                prop_assert!(users.insert(member.dj.user_id), "user {} is in two sets", member.dj.user_id);
                prop_assert!(member.conn.is_none_or(|c| conns.insert(c)), "a connection in two places");
            }
        }
        prop_assert_eq!(program, status.lead.as_ref().and_then(|lead| lead.conn));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn sets_keep_the_queue_consistent(
            steps in prop::collection::vec(((0..20_000u64).prop_map(Duration::from_millis), input()), 0..80),
        ) {
            let settings = Settings { swap_interval: secs(200), grace_period: secs(10), block_enabled: false, ..Settings::default() };
            let mut engine = Engine::new(settings.clone());
            let mut now = Instant::now();
            let mut program = None;
            for (delay, input) in steps {
                now += delay;
                let before = engine.status(now);
                let live_before = live(&before);
                let publisher = match &input {
                    Input::PublishRequested { conn, .. } => Some(*conn),
                    _ => None,
                };
                let outputs = match engine.handle(now, input) {
                    Ok(outputs) => outputs,
                    Err(_) => {
                        prop_assert_eq!(engine.status(now), before, "a refused command changed the state");
                        continue;
                    }
                };
                let answers = outputs
                    .iter()
                    .filter(|o| matches!(o, Output::PublishAccepted { .. } | Output::PublishRejected { .. }))
                    .count();
                prop_assert_eq!(answers, usize::from(publisher.is_some()), "one answer per publish request");
                for output in &outputs {
                    match output {
                        Output::ProgramSource(source) => {
                            prop_assert_ne!(*source, program, "a program source that did not change");
                            program = *source;
                        }
                        Output::Disconnect { conn, .. } => prop_assert!(
                            live_before.contains(conn) || publisher == Some(*conn),
                            "disconnect of a stranger"
                        ),
                        _ => {}
                    }
                }
                let status = engine.status(now);
                check(&status, program)?;
                // What is saved comes back: the members of every set included.
                let restored = Engine::restore(settings.clone(), engine.snapshot(now), now);
                let names = |s: &Status| s.lead.iter().map(|l| l.set_name()).chain(s.waiting.iter().map(|w| w.set_name())).collect::<Vec<_>>();
                if status.lead.as_ref().is_none_or(|l| !l.remaining.is_zero()) {
                    prop_assert_eq!(names(&restored.status(now)), names(&status));
                }
            }
        }
    }
}

#[test]
fn partners_standing_by_and_the_next_in_line_are_the_standby() {
    let mut h = Harness::alice_b2b_bob();
    h.stream(3, CAROL);
    assert_eq!(h.engine.standby(), vec![ConnId(2), ConnId(3)], "Bob for a hand-over, Carol for the next set");
    h.hand_over(ALICE, BOB, Caller::Dj(UserId(BOB))).expect("Bob takes over");
    assert_eq!(h.engine.standby(), vec![ConnId(1), ConnId(3)], "now Alice stands by");
}
