//! Random input sequences with random time steps, checking the engine's invariants.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::super::*;

#[derive(Clone, Debug)]
enum Op {
    Publish {
        conn: ConnId,
        user_id: UserId,
    },
    Stop(ConnId),
    Lose(ConnId),
    Stall(ConnId),
    Tick,
    Admin(AdminCommand),
    /// Bookings as (id, user, start from now in seconds, length in seconds, hard start).
    Book(Vec<(i64, UserId, u64, u64, bool)>),
}

impl Op {
    fn into_input(self, now: Instant) -> Input {
        match self {
            Op::Publish { conn, user_id } => {
                Input::PublishRequested { conn, dj: Dj { user_id, dj_name: format!("dj{user_id}") } }
            }
            Op::Stop(conn) => Input::PublishStopped { conn },
            Op::Lose(conn) => Input::ConnectionLost { conn },
            Op::Stall(conn) => Input::StallDetected { conn },
            Op::Tick => Input::Tick,
            Op::Admin(command) => Input::Admin(command),
            Op::Book(bookings) => Input::SetBookings(
                bookings
                    .into_iter()
                    .map(|(id, user_id, start, length, hard_start)| Booking {
                        id,
                        user_id,
                        dj_name: format!("dj{user_id}"),
                        start: now + Duration::from_secs(start),
                        length: Duration::from_secs(length),
                        hard_start,
                    })
                    .collect(),
            ),
        }
    }
}

fn user() -> impl Strategy<Value = UserId> {
    (0..5i64).prop_map(UserId)
}

fn admin() -> impl Strategy<Value = AdminCommand> {
    prop_oneof![
        Just(AdminCommand::Skip),
        user().prop_map(|user_id| AdminCommand::Remove { user_id }),
        user().prop_map(|user_id| AdminCommand::DisableUser { user_id }),
        user().prop_map(|user_id| AdminCommand::MoveUp { user_id }),
        user().prop_map(|user_id| AdminCommand::MoveDown { user_id }),
        Just(AdminCommand::PauseTimer),
        Just(AdminCommand::ResumeTimer),
        Just(AdminCommand::ResetTimer),
        (prop::sample::select(vec![0u64, 45, 400]), any::<bool>())
            .prop_map(|(secs, reset_current)| { AdminCommand::SetSwapInterval { secs, reset_current } }),
        (0..500u64).prop_map(|secs| AdminCommand::SetRemaining { secs }),
        any::<bool>().prop_map(AdminCommand::SetBlock),
        Just(AdminCommand::ToggleBlock),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let conn = (0..8u64).prop_map(ConnId);
    prop_oneof![
        4 => (conn.clone(), user()).prop_map(|(conn, user_id)| Op::Publish { conn, user_id }),
        2 => conn.clone().prop_map(Op::Stop),
        2 => conn.clone().prop_map(Op::Lose),
        1 => conn.prop_map(Op::Stall),
        3 => Just(Op::Tick),
        3 => admin().prop_map(Op::Admin),
        1 => prop::collection::vec((0..4i64, user(), 0..600u64, 0..400u64, any::<bool>()), 0..4).prop_map(Op::Book),
    ]
}

/// Mostly short steps, so grace periods and warnings are hit, sometimes long ones.
fn step() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0..3_000u64).prop_map(Duration::from_millis),
        2 => (0..20_000u64).prop_map(Duration::from_millis),
        1 => (0..400_000u64).prop_map(Duration::from_millis),
    ]
}

fn settings() -> impl Strategy<Value = Settings> {
    (prop::sample::select(vec![30u64, 200, 400]), prop::sample::select(vec![0u64, 10]), any::<bool>()).prop_map(
        |(swap, grace, block_enabled)| Settings {
            swap_interval: Duration::from_secs(swap),
            grace_period: Duration::from_secs(grace),
            block_enabled,
            ..Settings::default()
        },
    )
}

/// Sometimes start from a saved queue (possibly with duplicate users), as after a restart.
fn start() -> impl Strategy<Value = Option<Snapshot>> {
    let snapshot = (
        prop::option::of((user(), 1..600u64, 0..700u64, any::<bool>())),
        prop::collection::vec(user(), 0..4),
        prop::option::of(user()),
        any::<bool>(),
    )
        .prop_map(|(lead, waiting, last_ended, block_enabled)| {
            let dj = |user_id: UserId| Dj { user_id, dj_name: format!("dj{user_id}") };
            Snapshot {
                swap_interval: Duration::from_secs(120),
                block_enabled,
                last_ended: last_ended.map(dj),
                lead: lead.map(|(user_id, budget, elapsed, paused)| LeadSnapshot {
                    dj: dj(user_id),
                    budget: Duration::from_secs(budget),
                    elapsed: Duration::from_secs(elapsed),
                    paused,
                }),
                waiting: waiting.into_iter().map(dj).collect(),
                b2b: Vec::new(),
                bookings_open: Vec::new(),
                bookings_done: Vec::new(),
            }
        });
    prop::option::of(snapshot)
}

/// The snapshot without the lead's elapsed time, which changes by itself as time passes.
fn discrete(mut snapshot: Snapshot) -> Snapshot {
    if let Some(lead) = &mut snapshot.lead {
        lead.elapsed = Duration::ZERO;
    }
    snapshot
}

/// Checks the invariants of the state. `settled`: a call was just handled at `now`, so no
/// deadline at or before `now` is still pending.
fn check_state(engine: &Engine, now: Instant, program: Option<ConnId>, settled: bool) -> Result<(), TestCaseError> {
    let status = engine.status(now);
    let mut users = HashSet::new();
    let mut conns = HashSet::new();
    let places = status.lead.iter().map(|lead| (&lead.dj, lead.conn, lead.reclaim_within));
    let waiting = status.waiting.iter().map(|w| (&w.dj, w.conn, w.reclaim_within));
    for (dj, conn, reclaim_within) in places.chain(waiting) {
        prop_assert!(users.insert(dj.user_id), "user {} holds two places", dj.user_id);
        match (conn, reclaim_within) {
            (Some(conn), None) => {
                prop_assert!(conns.insert(conn), "connection {conn} holds two places")
            }
            (None, Some(left)) => {
                prop_assert!(!settled || !left.is_zero(), "an expired hold survived")
            }
            _ => prop_assert!(false, "a place must be either live or held"),
        }
    }
    let positions: Vec<usize> = status.waiting.iter().map(|w| w.position).collect();
    prop_assert_eq!(positions, (1..=status.waiting.len()).collect::<Vec<_>>());
    prop_assert!(status.lead.is_some() || status.waiting.is_empty(), "waiters without a lead");
    prop_assert_eq!(program, status.lead.as_ref().and_then(|lead| lead.conn));
    if let Some(lead) = &status.lead {
        prop_assert!(lead.remaining <= lead.budget);
        prop_assert_eq!(lead.remaining, lead.budget.saturating_sub(lead.elapsed));
        prop_assert!(!settled || !lead.remaining.is_zero(), "an elapsed set survived");
    }
    Ok(())
}

fn run(settings: Settings, start: Option<Snapshot>, steps: Vec<(Duration, Op)>) -> Result<(), TestCaseError> {
    let mut now = Instant::now();
    let mut engine = match start {
        Some(snapshot) => Engine::restore(settings, snapshot, now),
        None => Engine::new(settings),
    };
    let mut program = None;
    check_state(&engine, now, program, false)?;

    for (delay, op) in steps {
        let quiet_until = engine.next_deadline();
        now += delay;
        let before_status = engine.status(now);
        let before_snapshot = discrete(engine.snapshot(now));
        let live_before: HashSet<ConnId> = before_status
            .lead
            .iter()
            .map(|lead| lead.conn)
            .chain(before_status.waiting.iter().map(|w| w.conn))
            .flatten()
            .collect();
        let publisher = match &op {
            Op::Publish { conn, .. } => Some(*conn),
            _ => None,
        };
        let is_tick = matches!(op, Op::Tick);

        let outputs = match engine.handle(now, op.into_input(now)) {
            Ok(outputs) => outputs,
            Err(_) => {
                prop_assert_eq!(engine.status(now), before_status, "a failed command changed the state");
                continue;
            }
        };

        if is_tick && quiet_until.is_none_or(|deadline| now < deadline) {
            prop_assert!(outputs.is_empty(), "a tick before next_deadline did something: {outputs:?}");
        }

        let answers: Vec<&Output> = outputs
            .iter()
            .filter(|o| matches!(o, Output::PublishAccepted { .. } | Output::PublishRejected { .. }))
            .collect();
        match publisher {
            None => prop_assert!(answers.is_empty()),
            Some(conn) => {
                prop_assert_eq!(answers.len(), 1, "one answer per publish request");
                let status = engine.status(now);
                match answers[0] {
                    Output::PublishAccepted { conn: answered, on_air: true, position } => {
                        prop_assert_eq!((*answered, *position), (conn, 0));
                        prop_assert_eq!(status.lead.and_then(|lead| lead.conn), Some(conn));
                    }
                    Output::PublishAccepted { conn: answered, on_air: false, position } => {
                        prop_assert_eq!(*answered, conn);
                        let place = status.waiting.iter().find(|w| w.conn == Some(conn));
                        prop_assert_eq!(place.map(|w| w.position), Some(*position));
                    }
                    Output::PublishRejected { conn: answered, .. } => {
                        prop_assert_eq!(*answered, conn)
                    }
                    _ => unreachable!("filtered above"),
                }
            }
        }

        for output in &outputs {
            match output {
                Output::ProgramSource(source) => {
                    prop_assert_ne!(*source, program, "a program source that did not change");
                    program = *source;
                }
                Output::Disconnect { conn, .. } => {
                    prop_assert!(live_before.contains(conn) || publisher == Some(*conn), "disconnect of a stranger");
                }
                _ => {}
            }
        }
        let persists: Vec<&Output> = outputs.iter().filter(|o| matches!(o, Output::Persist(_))).collect();
        prop_assert!(persists.len() <= 1);
        if discrete(engine.snapshot(now)) != before_snapshot {
            prop_assert_eq!(outputs.last(), Some(&Output::Persist(engine.snapshot(now))), "an unsaved change");
        }
        check_state(&engine, now, program, true)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_input_sequence(
        settings in settings(),
        start in start(),
        steps in prop::collection::vec((step(), op()), 0..80),
    ) {
        run(settings, start, steps)?;
    }
}
