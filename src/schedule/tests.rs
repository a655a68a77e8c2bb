use super::*;
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn daily(cron: &str, action: Action) -> Schedule {
    Schedule {
        name: "nightly".into(),
        cron: cron.into(),
        time_zone: "UTC".into(),
        action,
        guard: None,
        missed: MissedPolicy::Skip,
    }
}

fn guarded(wait: bool, deadline: Duration, announce: &[(u64, &str)]) -> Schedule {
    Schedule {
        guard: Some(Guard {
            wait_while_players: wait,
            deadline,
            announce: announce
                .iter()
                .map(|(m, line)| Announcement { before: mins(*m), line: line.to_string() })
                .collect(),
        }),
        ..daily("0 4 * * *", Action::Restart)
    }
}

/// The state of a schedule first looked at `seen`.
fn seen(schedule: &Schedule, seen: &str) -> RunState {
    decide(schedule, &RunState::default(), ts(seen), None).unwrap().state
}

/// Drives a schedule from `state` at `now`, waking at every wait it asks for,
/// until it runs or skips; `players(now)` is the count at each look. Returns
/// each step with the instant it was taken.
fn drive(
    schedule: &Schedule,
    mut state: RunState,
    mut now: Timestamp,
    players: impl Fn(Timestamp) -> Option<u32>,
) -> Vec<(Timestamp, Step)> {
    let mut steps = Vec::new();
    for _ in 0..10_000 {
        let d = decide(schedule, &state, now, players(now)).unwrap();
        state = d.state;
        steps.push((now, d.step.clone()));
        match d.step {
            Step::Wait { until, .. } => {
                assert!(until > now, "a wait ends later than now: {until} at {now}");
                now = until;
            }
            Step::Announce { .. } => {}
            Step::Run { .. } | Step::Skip { .. } => return steps,
        }
    }
    panic!("no run after 10000 steps: {:?}", steps.last());
}

fn announcements(steps: &[(Timestamp, Step)]) -> Vec<(Timestamp, String)> {
    steps
        .iter()
        .filter_map(|(t, s)| match s {
            Step::Announce { line, .. } => Some((*t, line.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn fires_at_its_time_and_reports_next_and_last_run() {
    let s = daily("0 4 * * *", Action::Restart);
    let first = decide(&s, &RunState::default(), ts("2026-06-01T03:00:00Z"), None).unwrap();
    assert_eq!(first.step, Step::Wait { until: ts("2026-06-01T04:00:00Z"), wake: Wake::Due });
    assert_eq!(first.next_run, Some(ts("2026-06-01T04:00:00Z")));
    assert_eq!(first.last_run, None);

    // Woken a little late (the controller's latency): still on time.
    let run = decide(&s, &first.state, ts("2026-06-01T04:00:02Z"), None).unwrap();
    assert_eq!(run.step, Step::Run { due: ts("2026-06-01T04:00:00Z"), reason: RunReason::OnTime });
    assert_eq!(run.last_run, Some(ts("2026-06-01T04:00:02Z")));
    assert_eq!(run.next_run, Some(ts("2026-06-02T04:00:00Z")));
    assert_eq!(run.passed_over, 0);

    let after = decide(&s, &run.state, ts("2026-06-01T04:00:03Z"), None).unwrap();
    assert_eq!(after.step, Step::Wait { until: ts("2026-06-02T04:00:00Z"), wake: Wake::Due });
    assert_eq!(after.last_run, Some(ts("2026-06-01T04:00:02Z")));
}

#[test]
fn a_new_schedule_never_runs_for_a_time_before_it_existed() {
    let s = Schedule { missed: MissedPolicy::RunLate { within: mins(180) }, ..daily("0 4 * * *", Action::Restart) };
    let d = decide(&s, &RunState::default(), ts("2026-06-01T04:30:00Z"), None).unwrap();
    assert_eq!(d.step, Step::Wait { until: ts("2026-06-02T04:00:00Z"), wake: Wake::Due });
}

#[test]
fn the_guard_waits_while_players_are_on_and_runs_at_the_deadline_at_the_latest() {
    let s = guarded(true, mins(30), &[]);
    let state = seen(&s, "2026-06-01T03:00:00Z");
    let due = ts("2026-06-01T04:00:00Z");

    let d = decide(&s, &state, due, Some(2)).unwrap();
    assert_eq!(d.step, Step::Wait { until: ts("2026-06-01T04:00:30Z"), wake: Wake::Players { online: Some(2) } });
    assert_eq!(d.next_run, Some(due), "the status shows the run waited for");

    // Players stay on: the run is at the deadline, no later.
    let steps = drive(&s, state.clone(), due, |_| Some(2));
    assert_eq!(
        steps.last().unwrap(),
        &(ts("2026-06-01T04:30:00Z"), Step::Run { due, reason: RunReason::Deadline { players: Some(2) } })
    );
    assert!(
        steps[..steps.len() - 1].iter().all(|(t, s)| *t < ts("2026-06-01T04:30:00Z") && matches!(s, Step::Wait { .. }))
    );

    // They leave at 04:10: the next re-check runs it.
    let left = ts("2026-06-01T04:10:00Z");
    let steps = drive(&s, state.clone(), due, |t| Some(if t < left { 1 } else { 0 }));
    assert_eq!(steps.last().unwrap(), &(left, Step::Run { due, reason: RunReason::NobodyOn { after: mins(10) } }));

    // A count nobody knows counts as players on.
    let steps = drive(&s, state.clone(), due, |_| None);
    assert_eq!(steps.last().unwrap().1, Step::Run { due, reason: RunReason::Deadline { players: None } });

    // Nobody on at the due time: on time.
    let d = decide(&s, &state, due, Some(0)).unwrap();
    assert_eq!(d.step, Step::Run { due, reason: RunReason::OnTime });
}

#[test]
fn announces_at_10_and_1_minutes_before_each_once() {
    let s = guarded(false, Duration::ZERO, &[(1, "restart in 1 minute"), (10, "restart in 10 minutes")]);
    let state = seen(&s, "2026-06-01T03:00:00Z");
    let steps = drive(&s, state, ts("2026-06-01T03:00:00Z"), |_| Some(3));
    assert_eq!(
        announcements(&steps),
        vec![
            (ts("2026-06-01T03:50:00Z"), "restart in 10 minutes".to_string()),
            (ts("2026-06-01T03:59:00Z"), "restart in 1 minute".to_string()),
        ]
    );
    assert_eq!(
        steps.last().unwrap(),
        &(ts("2026-06-01T04:00:00Z"), Step::Run { due: ts("2026-06-01T04:00:00Z"), reason: RunReason::OnTime })
    );
    // After an announcement, asking again at the same instant waits.
    let i = steps.iter().position(|(_, s)| matches!(s, Step::Announce { .. })).unwrap();
    assert_eq!(
        steps[i + 1],
        (ts("2026-06-01T03:50:00Z"), Step::Wait { until: ts("2026-06-01T03:59:00Z"), wake: Wake::Announcement })
    );
}

#[test]
fn an_announcement_whose_time_passed_long_ago_is_passed_over() {
    let s = guarded(false, Duration::ZERO, &[(10, "in 10"), (1, "in 1")]);
    let state = seen(&s, "2026-06-01T03:00:00Z");
    let first = |now: &str| announcements(&drive(&s, state.clone(), ts(now), |_| Some(1)));

    // 30 s late is within a tenth of 10 minutes: said.
    assert_eq!(first("2026-06-01T03:50:30Z")[0], (ts("2026-06-01T03:50:30Z"), "in 10".into()));
    // 5 minutes late: passed over, the 1-minute one said on time.
    assert_eq!(first("2026-06-01T03:55:00Z"), vec![(ts("2026-06-01T03:59:00Z"), "in 1".into())]);
    // Both passed: the later one supersedes, said 5 s late (within 10 s).
    assert_eq!(first("2026-06-01T03:59:05Z"), vec![(ts("2026-06-01T03:59:05Z"), "in 1".into())]);
    // Both long passed: none is said, the run is on time.
    let steps = drive(&s, state.clone(), ts("2026-06-01T03:59:30Z"), |_| Some(1));
    assert!(announcements(&steps).is_empty());
    assert_eq!(steps.last().unwrap().0, ts("2026-06-01T04:00:00Z"));
    // Woken after the due time: never said after the run either.
    let steps = drive(&s, state, ts("2026-06-01T04:00:20Z"), |_| Some(1));
    assert_eq!(
        steps,
        vec![(ts("2026-06-01T04:00:20Z"), Step::Run { due: ts("2026-06-01T04:00:00Z"), reason: RunReason::OnTime })]
    );
}

#[test]
fn a_missed_run_is_skipped_saying_by_how_much() {
    let s = daily("0 4 * * *", Action::Backup);
    let state = seen(&s, "2026-06-01T03:00:00Z");
    let d = decide(&s, &state, ts("2026-06-01T06:00:00Z"), None).unwrap();
    assert_eq!(d.step, Step::Skip { due: ts("2026-06-01T04:00:00Z"), late_by: mins(120) });
    assert_eq!(d.passed_over, 0);
    assert_eq!(d.next_run, Some(ts("2026-06-02T04:00:00Z")));
    let next = decide(&s, &d.state, ts("2026-06-01T06:00:00Z"), None).unwrap();
    assert_eq!(next.step, Step::Wait { until: ts("2026-06-02T04:00:00Z"), wake: Wake::Due });

    // Down for three nights: the latest is judged, the two before passed over.
    let d = decide(&s, &state, ts("2026-06-03T05:00:00Z"), None).unwrap();
    assert_eq!(d.step, Step::Skip { due: ts("2026-06-03T04:00:00Z"), late_by: mins(60) });
    assert_eq!(d.passed_over, 2);
}

#[test]
fn a_missed_run_runs_late_within_the_policy() {
    let s = Schedule { missed: MissedPolicy::RunLate { within: mins(180) }, ..daily("0 4 * * *", Action::Backup) };
    let state = seen(&s, "2026-06-01T03:00:00Z");
    let d = decide(&s, &state, ts("2026-06-01T06:00:00Z"), None).unwrap();
    assert_eq!(d.step, Step::Run { due: ts("2026-06-01T04:00:00Z"), reason: RunReason::Late { by: mins(120) } });
    assert_eq!(d.state.after, Some(ts("2026-06-01T06:00:00Z")));

    let d = decide(&s, &state, ts("2026-06-01T07:00:01Z"), None).unwrap();
    assert_eq!(d.step, Step::Skip { due: ts("2026-06-01T04:00:00Z"), late_by: Duration::from_secs(3 * 3600 + 1) });
}

#[test]
fn a_late_run_of_a_guarded_schedule_is_announced_and_waits_anew() {
    let s =
        Schedule { missed: MissedPolicy::RunLate { within: mins(180) }, ..guarded(true, mins(20), &[(10, "in 10")]) };
    let state = seen(&s, "2026-06-01T03:00:00Z");
    let woke = ts("2026-06-01T06:00:00Z");
    let steps = drive(&s, state, woke, |t| Some(if t < ts("2026-06-01T06:15:00Z") { 1 } else { 0 }));
    assert_eq!(
        steps[0],
        (woke, Step::Announce { line: "in 10".into(), before: mins(10), due: ts("2026-06-01T06:10:00Z") })
    );
    assert_eq!(
        steps.last().unwrap(),
        &(
            ts("2026-06-01T06:15:00Z"),
            Step::Run { due: ts("2026-06-01T04:00:00Z"), reason: RunReason::Late { by: mins(135) } }
        )
    );
}

#[test]
fn the_controller_down_during_the_wait_past_the_deadline_is_a_miss() {
    let s = guarded(true, mins(30), &[]);
    let state = seen(&s, "2026-06-01T03:00:00Z");
    let waiting = decide(&s, &state, ts("2026-06-01T04:00:00Z"), Some(4)).unwrap();
    let d = decide(&s, &waiting.state, ts("2026-06-01T05:00:00Z"), Some(4)).unwrap();
    assert_eq!(d.step, Step::Skip { due: ts("2026-06-01T04:00:00Z"), late_by: mins(60) });
}

#[test]
fn occurrences_due_while_a_run_waits_are_covered_by_it() {
    let s = Schedule { cron: "*/10 * * * *".into(), ..guarded(true, mins(25), &[]) };
    let state = seen(&s, "2026-06-01T03:55:00Z");
    let steps = drive(&s, state.clone(), ts("2026-06-01T04:00:00Z"), |_| Some(1));
    assert_eq!(
        steps.last().unwrap(),
        &(
            ts("2026-06-01T04:25:00Z"),
            Step::Run { due: ts("2026-06-01T04:00:00Z"), reason: RunReason::Deadline { players: Some(1) } }
        )
    );
    let d = decide(&s, &state, ts("2026-06-01T04:25:00Z"), Some(0)).unwrap();
    assert_eq!(d.passed_over, 2, "04:10 and 04:20");
    assert_eq!(d.next_run, Some(ts("2026-06-01T04:30:00Z")));
}

#[test]
fn a_pending_run_of_an_edited_cron_is_dropped() {
    let s = guarded(false, Duration::ZERO, &[(10, "in 10")]);
    let state = seen(&s, "2026-06-01T03:00:00Z");
    let said = decide(&s, &state, ts("2026-06-01T03:50:00Z"), None).unwrap();
    assert!(matches!(said.step, Step::Announce { .. }));
    let edited = Schedule { cron: "0 5 * * *".into(), ..s };
    let d = decide(&edited, &said.state, ts("2026-06-01T03:50:01Z"), None).unwrap();
    assert_eq!(d.step, Step::Wait { until: ts("2026-06-01T04:50:00Z"), wake: Wake::Announcement });
}

#[test]
fn the_time_zone_is_respected_across_a_daylight_saving_change() {
    let paris = Schedule { time_zone: "Europe/Paris".into(), ..daily("0 4 * * *", Action::Restart) };
    // The last Sunday of March 2026 is the 29th: CET (+1) to CEST (+2).
    let mut t = ts("2026-03-27T12:00:00Z");
    let mut runs = Vec::new();
    for _ in 0..3 {
        t = paris.next_after(t).unwrap().unwrap();
        runs.push(t);
    }
    assert_eq!(runs, vec![ts("2026-03-28T03:00:00Z"), ts("2026-03-29T02:00:00Z"), ts("2026-03-30T02:00:00Z")]);

    let state = seen(&paris, "2026-03-28T12:00:00Z");
    let d = decide(&paris, &state, ts("2026-03-28T12:00:00Z"), None).unwrap();
    assert_eq!(d.step, Step::Wait { until: ts("2026-03-29T02:00:00Z"), wake: Wake::Due });
    let run = decide(&paris, &d.state, ts("2026-03-29T02:00:00Z"), None).unwrap();
    assert_eq!(run.step, Step::Run { due: ts("2026-03-29T02:00:00Z"), reason: RunReason::OnTime });

    // 02:30 does not exist that night: croner runs it at 03:00 CEST.
    let gap = Schedule { cron: "30 2 * * *".into(), ..paris.clone() };
    assert_eq!(gap.next_after(ts("2026-03-28T12:00:00Z")).unwrap(), Some(ts("2026-03-29T01:00:00Z")));
    // 02:30 happens twice on 25 October: once, at the first (CEST).
    let fold = gap.next_after(ts("2026-10-24T12:00:00Z")).unwrap().unwrap();
    assert_eq!(fold, ts("2026-10-25T00:30:00Z"));
    assert_eq!(gap.next_after(fold).unwrap(), Some(ts("2026-10-26T01:30:00Z")));
    // A step field skips the gap and runs in both halves of the fold.
    let steps = Schedule { cron: "*/30 * * * *".into(), ..paris };
    assert_eq!(steps.next_after(ts("2026-03-29T00:30:00Z")).unwrap(), Some(ts("2026-03-29T01:00:00Z")));
    let mut t = ts("2026-10-25T00:00:00Z");
    let mut fold = Vec::new();
    for _ in 0..4 {
        t = steps.next_after(t).unwrap().unwrap();
        fold.push(t);
    }
    assert_eq!(
        fold,
        vec![
            ts("2026-10-25T00:30:00Z"),
            ts("2026-10-25T01:00:00Z"),
            ts("2026-10-25T01:30:00Z"),
            ts("2026-10-25T02:00:00Z")
        ]
    );
}

#[test]
fn aliases_are_read() {
    let t = ts("2026-06-03T10:20:00Z"); // a Wednesday
    let next = |cron: &str| daily(cron, Action::Restart).next_after(t).unwrap().unwrap();
    assert_eq!(next("@hourly"), ts("2026-06-03T11:00:00Z"));
    assert_eq!(next("@daily"), ts("2026-06-04T00:00:00Z"));
    assert_eq!(next("@weekly"), ts("2026-06-07T00:00:00Z"));
    assert_eq!(next("0 4 * * MON"), ts("2026-06-08T04:00:00Z"));
}

#[test]
fn check_names_each_problem_by_its_field() {
    assert_eq!(guarded(true, mins(30), &[(10, "in 10"), (1, "in 1")]).check(), Vec::<String>::new());
    assert_eq!(daily("@weekly", Action::Command("save-all".into())).check(), Vec::<String>::new());

    let problems = |s: Schedule| s.check();
    let one = |s: Schedule| {
        let p = s.check();
        assert_eq!(p.len(), 1, "{p:?}");
        p[0].clone()
    };
    assert!(one(daily("0 4 * *", Action::Restart)).starts_with("schedules[nightly].cron: "));
    assert!(one(daily("0 0 4 * * *", Action::Restart)).starts_with("schedules[nightly].cron: "), "no seconds field");
    assert!(one(daily("61 4 * * *", Action::Restart)).starts_with("schedules[nightly].cron: "));
    assert!(one(daily("@reboot", Action::Restart)).starts_with("schedules[nightly].cron: "));
    assert_eq!(one(daily("0 0 30 2 *", Action::Restart)), "schedules[nightly].cron: \"0 0 30 2 *\" never fires");
    assert_eq!(
        one(Schedule { time_zone: "Mars/Olympus".into(), ..daily("0 4 * * *", Action::Restart) }),
        "schedules[nightly].timeZone: unknown time zone \"Mars/Olympus\" (IANA names, such as Europe/Paris)"
    );
    assert_eq!(
        one(guarded(false, Duration::ZERO, &[(25 * 60, "tomorrow")])),
        "schedules[nightly].guard.announce[0].beforeSeconds: 90000 s is longer than a day"
    );
    assert_eq!(
        one(guarded(false, Duration::ZERO, &[(0, "now")])),
        "schedules[nightly].guard.announce[0].beforeSeconds: must be more than 0"
    );
    assert_eq!(
        one(guarded(false, Duration::ZERO, &[(5, "a"), (5, "b")])),
        "schedules[nightly].guard.announce[1].beforeSeconds: 300 s is also an earlier announcement's"
    );
    assert_eq!(
        one(guarded(false, Duration::ZERO, &[(5, "a\nb")])),
        "schedules[nightly].guard.announce[0].line: must be one line"
    );
    assert_eq!(
        one(guarded(true, Duration::ZERO, &[])),
        "schedules[nightly].guard.deadlineSeconds: must be more than 0 with waitWhilePlayers"
    );
    assert_eq!(
        one(guarded(true, mins(24 * 60 + 1), &[])),
        "schedules[nightly].guard.deadlineSeconds: 86460 s is longer than a day"
    );
    assert_eq!(
        one(Schedule { action: Action::Start, ..guarded(false, Duration::ZERO, &[(5, "a")]) }),
        "schedules[nightly].guard: start is not disruptive (nobody plays on a stopped server); remove the guard"
    );
    assert!(problems(Schedule { action: Action::Backup, ..guarded(true, mins(5), &[(5, "a")]) }).is_empty());
    assert_eq!(one(daily("0 4 * * *", Action::Command(" ".into()))), "schedules[nightly].command: must not be empty");
    assert_eq!(
        one(Schedule {
            missed: MissedPolicy::RunLate { within: Duration::from_secs(8 * 86400) },
            ..daily("@daily", Action::Backup)
        }),
        "schedules[nightly].missed.runLate.withinSeconds: 691200 s is longer than 7 days"
    );
    assert!(
        one(Schedule { name: "Nightly".into(), ..daily("@daily", Action::Stop) })
            .starts_with("schedules[Nightly].name: ")
    );

    let s = daily("@daily", Action::Stop);
    assert_eq!(check_all(&[s.clone(), s.clone()]), vec!["schedules[nightly].name: used by an earlier schedule"]);

    // decide refuses what check refuses.
    let bad = Schedule { time_zone: "Nowhere".into(), ..s };
    assert_eq!(decide(&bad, &RunState::default(), ts("2026-06-01T00:00:00Z"), None).unwrap_err(), bad.check());
}

#[test]
fn reads_and_writes_its_serialized_form() {
    let s: Schedule = serde_yaml::from_str(
        "name: nightly\ncron: '0 4 * * *'\naction: restart\n\
         guard: {waitWhilePlayers: true, deadlineSeconds: 1800, announce: [{beforeSeconds: 600, line: restart in 10 minutes}]}\n\
         missed: {policy: runLate, withinSeconds: 3600}\n",
    )
    .unwrap();
    assert_eq!(s.time_zone, "UTC");
    assert_eq!(s.missed, MissedPolicy::RunLate { within: mins(60) });
    assert_eq!(s.guard.as_ref().unwrap().announce[0].before, mins(10));
    let c: Schedule = serde_yaml::from_str("name: say\ncron: '@hourly'\naction: command\ncommand: save-all\n").unwrap();
    assert_eq!((&c.action, &c.missed), (&Action::Command("save-all".into()), &MissedPolicy::Skip));
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        serde_json::json!({"name": "say", "cron": "@hourly", "timeZone": "UTC", "action": "command", "command": "save-all", "missed": {"policy": "skip"}})
    );
    assert_eq!(serde_json::from_value::<Schedule>(serde_json::to_value(&s).unwrap()).unwrap(), s);
    let refused = |yaml: &str| serde_yaml::from_str::<Schedule>(yaml).unwrap_err().to_string();
    assert!(refused("name: a\ncron: '@daily'\naction: command\n").contains("action command needs command"));
    assert!(
        refused("name: a\ncron: '@daily'\naction: stop\ncommand: x\n").contains("command is only for action command")
    );

    let state = decide(&s, &seen(&s, "2026-06-01T03:00:00Z"), ts("2026-06-01T03:50:00Z"), None).unwrap().state;
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"after": "2026-06-01T03:00:00Z", "pending": {"due": "2026-06-01T04:00:00Z", "at": "2026-06-01T04:00:00Z", "announced": [600]}})
    );
    assert_eq!(serde_json::from_value::<RunState>(json).unwrap(), state);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Woken at every wait it asks for, a schedule never runs before its due
    /// time nor after due + deadline, says each announcement once and before
    /// the due time, and never skips.
    #[test]
    fn never_runs_before_the_due_time_nor_after_the_deadline(
        minute in 0u8..60,
        hour in 0u8..24,
        start in 0i64..(3 * 86400),
        deadline_min in 1u64..(24 * 60),
        offsets in proptest::collection::btree_set(1u64..(24 * 60), 0..4),
        wait in any::<bool>(),
        players in proptest::collection::vec(proptest::option::of(0u32..3), 1..40),
    ) {
        let mut s = guarded(wait, mins(deadline_min), &[]);
        s.cron = format!("{minute} {hour} * * *");
        s.time_zone = "Europe/Paris".into();
        s.guard.as_mut().unwrap().announce =
            offsets.iter().map(|m| Announcement { before: mins(*m), line: format!("in {m}") }).collect();
        let origin = ts("2026-03-27T00:00:00Z") + SignedDuration::from_secs(start);
        let state = seen(&s, &origin.to_string());
        let counts = std::cell::Cell::new(0usize);
        let steps = drive(&s, state, origin, |_| {
            let i = counts.get();
            counts.set(i + 1);
            players[i % players.len()]
        });
        let (at, last) = steps.last().unwrap().clone();
        let Step::Run { due, .. } = last else { panic!("not a run: {last:?}") };
        prop_assert_eq!(Some(due), s.next_after(origin).unwrap());
        prop_assert!(at >= due, "ran at {} before {}", at, due);
        let latest = if wait { due + signed(mins(deadline_min)) } else { due };
        prop_assert!(at <= latest, "ran at {} after {}", at, latest);
        let said = announcements(&steps);
        let mut lines: Vec<&String> = said.iter().map(|(_, l)| l).collect();
        lines.sort();
        lines.dedup();
        prop_assert_eq!(lines.len(), said.len(), "an announcement said twice: {:?}", said);
        prop_assert!(said.iter().all(|(t, _)| *t < due));
        // Announcements whose time was after the first look are said on time.
        for m in &offsets {
            let time = due - signed(mins(*m));
            if time > origin {
                prop_assert!(said.contains(&(time, format!("in {m}"))), "{} not said at {}: {:?}", m, time, said);
            }
        }
    }
}
