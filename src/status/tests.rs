use super::*;
use crate::api::{GameServerSpec, Protocol};
use crate::orchestrator::Endpoint;
use crate::orchestrator::observed::Problem;

/// An arbitrary, fixed origin: 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;

fn at_second(s: i64) -> Time {
    Time(Timestamp::from_second(T0 + s).unwrap())
}

fn server(state: DesiredState, generation: i64) -> GameServer {
    let spec: GameServerSpec = serde_json::from_value(serde_json::json!({
        "image": "itzg/minecraft-server:java21",
        "ports": [{ "name": "game", "containerPort": 25565 }],
    }))
    .unwrap();
    let mut gs = GameServer::new("mc", GameServerSpec { state, ..spec });
    gs.metadata.namespace = Some("games".into());
    gs.metadata.generation = Some(generation);
    gs
}

fn workload(rolled_out: bool, existing: i32) -> Workload {
    Workload { desired: 1, ready: 0, rolled_out, existing }
}

/// An instance, with a problem of a kind in the backend's words.
fn instance(ready: bool, restarts: i32, problem: Option<(ProblemKind, &str)>) -> Instance {
    Instance {
        name: "mc-7d9f-abcde".into(),
        running: problem.is_none(),
        ready,
        restarts,
        problem: problem.map(|(kind, reason)| Problem::new(kind, reason, None)),
        terminating: false,
    }
}

/// An instance whose container, restarted `restarts` times, waits in back-off.
fn crash_looping_instance(restarts: i32) -> Instance {
    instance(false, restarts, Some((ProblemKind::CrashLoop, "CrashLoopBackOff")))
}

/// An instance waiting for its image, for `reason` with `message`.
fn pulling(reason: &str, message: Option<&str>) -> Instance {
    Instance {
        running: false,
        problem: Some(Problem::new(ProblemKind::ImagePull, reason, message.map(str::to_string))),
        ..instance(false, 0, None)
    }
}

/// The image of `server()`.
const IMAGE: &str = "itzg/minecraft-server:java21";

fn endpoint() -> Endpoint {
    Endpoint {
        address: Some("127.0.0.10".into()),
        ports: vec![PublishedPort { name: "game".into(), port: 31234, protocol: Protocol::TCP }],
    }
}

fn observed(workload: Option<Workload>, instance: Option<Instance>) -> Observed {
    Observed { workload, instance, endpoint: endpoint(), backend_ref: Some("deployment/mc".into()) }
}

fn starting() -> Observed {
    observed(Some(workload(true, 1)), Some(instance(false, 0, None)))
}

fn running() -> Observed {
    observed(Some(workload(true, 1)), Some(instance(true, 0, None)))
}

fn gone() -> Observed {
    Observed { backend_ref: Some("deployment/mc".into()), ..Observed::default() }
}

/// One reconcile: computes the status and stores it in `gs` as the API
/// server would hand it back (through JSON), for the next reconcile.
fn step(gs: &mut GameServer, observed: &Observed, now: i64) -> GameServerStatus {
    let status = compute(gs, observed, &at_second(now));
    gs.status = Some(serde_json::from_value(serde_json::to_value(&status).unwrap()).unwrap());
    status
}

fn cond<'a>(status: &'a GameServerStatus, type_: &str) -> &'a Condition {
    condition(&status.conditions, type_).unwrap_or_else(|| panic!("no {type_} condition"))
}

/// (status, reason) of a condition, for compact assertions.
fn state_of<'a>(status: &'a GameServerStatus, type_: &str) -> (&'a str, &'a str) {
    let c = cond(status, type_);
    (c.status.as_str(), c.reason.as_str())
}

#[test]
fn pending_while_the_workload_does_not_exist() {
    // Given a new server whose workload the runtime has not created yet
    let gs = server(DesiredState::Running, 1);
    // When its status is computed
    let s = compute(&gs, &gone(), &at_second(0));
    // Then it is Pending, not ready, progressing, and no start is timed yet
    assert_eq!(s.phase, Some(Phase::Pending));
    assert_eq!(state_of(&s, READY), ("False", reason::PENDING));
    assert_eq!(state_of(&s, PROGRESSING), ("True", reason::STARTING));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
    assert_eq!(s.starting_since, None);
    assert_eq!(s.backend_ref.as_deref(), Some("deployment/mc"));
}

#[test]
fn starting_once_the_workload_exists() {
    // Given a server whose instance runs but is not ready yet
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &gone(), 0);
    // When it is observed
    let s = step(&mut gs, &starting(), 5);
    // Then it is Starting since now, with the timeout in the message
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(s.starting_since, Some(at_second(5)));
    assert_eq!(state_of(&s, READY), ("False", reason::STARTING));
    assert_eq!(cond(&s, READY).message, "waiting for the server to become ready (startup timeout 600s)");
    assert_eq!(state_of(&s, PROGRESSING), ("True", reason::STARTING));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
}

#[test]
fn starting_since_stays_while_starting() {
    // Given a server that started at second 0
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    // When it is observed again, still not ready, later
    let s = step(&mut gs, &starting(), 120);
    // Then the start still counts from second 0
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(s.starting_since, Some(at_second(0)));
}

#[test]
fn running_with_its_address_once_ready() {
    // Given a starting server
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    // When its instance becomes ready on a rolled-out workload
    let s = step(&mut gs, &running(), 30);
    // Then it is Running, Ready, at the observed address, and no longer timed
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(state_of(&s, READY), ("True", reason::SERVER_READY));
    assert_eq!(cond(&s, READY).message, "server is ready at 127.0.0.10:31234");
    assert_eq!(cond(&s, READY).last_transition_time, at_second(30));
    assert_eq!(state_of(&s, PROGRESSING), ("False", reason::STABLE));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
    assert_eq!(s.address.as_deref(), Some("127.0.0.10"));
    assert_eq!(s.ports, endpoint().ports);
    assert_eq!(s.starting_since, None);
    assert_eq!(s.restarts, 0);
}

#[test]
fn ready_instance_is_not_running_while_a_rollout_is_under_way() {
    // Given a running server
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &running(), 0);
    // When a new generation rolls out a new template (the old instance is still ready)
    gs.metadata.generation = Some(2);
    let s = step(&mut gs, &observed(Some(workload(false, 1)), Some(instance(true, 0, None))), 10);
    // Then it is starting the new template, timed from now
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(s.starting_since, Some(at_second(10)));
    assert_eq!(state_of(&s, READY), ("False", reason::STARTING));
    assert_eq!(state_of(&s, PROGRESSING), ("True", reason::ROLLING_OUT));
}

#[test]
fn stopped_server_keeps_its_address_record() {
    // Given a server that ran at 127.0.0.10:31234
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &running(), 0);
    // When it is stopped and nothing of it runs, nor is any address observed
    gs.spec.state = DesiredState::Stopped;
    gs.metadata.generation = Some(2);
    let none = Observed { workload: Some(Workload { desired: 0, rolled_out: true, ..Workload::default() }), ..gone() };
    let s = step(&mut gs, &none, 60);
    // Then it is Stopped and still shows where it lives
    assert_eq!(s.phase, Some(Phase::Stopped));
    assert_eq!(s.address.as_deref(), Some("127.0.0.10"));
    assert_eq!(s.ports, endpoint().ports);
    assert_eq!(state_of(&s, READY), ("False", reason::STOPPED));
    assert_eq!(cond(&s, READY).message, "server is stopped");
    assert_eq!(state_of(&s, PROGRESSING), ("False", reason::STABLE));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
    assert_eq!(s.starting_since, None);
}

#[test]
fn stopped_server_takes_a_newly_observed_address() {
    // Given a stopped server with an address record
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &running(), 0);
    gs.spec.state = DesiredState::Stopped;
    // When the backend still knows where it would be reached
    let moved = Observed { endpoint: Endpoint { address: Some("10.0.0.7".into()), ports: vec![] }, ..gone() };
    let s = step(&mut gs, &moved, 60);
    // Then the record follows what is known now, address and ports together
    assert_eq!((s.address.as_deref(), s.ports.len()), (Some("10.0.0.7"), 0));
}

#[test]
fn stopping_while_an_instance_still_exists() {
    // Given a running server that is told to stop
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &running(), 0);
    gs.spec.state = DesiredState::Stopped;
    gs.metadata.generation = Some(2);
    // When its instance is still shutting down
    let shutting = Instance { terminating: true, ready: false, ..instance(false, 0, None) };
    let s = step(&mut gs, &observed(Some(workload(false, 1)), Some(shutting)), 5);
    // Then it is Stopping, and stopping is the progress under way
    assert_eq!(s.phase, Some(Phase::Stopping));
    assert_eq!(state_of(&s, READY), ("False", reason::STOPPED));
    assert_eq!(cond(&s, READY).message, "server is stopping");
    assert_eq!(state_of(&s, PROGRESSING), ("True", reason::STOPPING));
    // And when the workload still counts a pod that the backend no longer lists
    let s = step(&mut gs, &observed(Some(workload(true, 1)), None), 6);
    assert_eq!(s.phase, Some(Phase::Stopping));
    // And once nothing exists, it is Stopped
    let s = step(&mut gs, &observed(Some(workload(true, 0)), None), 7);
    assert_eq!(s.phase, Some(Phase::Stopped));
}

#[test]
fn startup_timeout_fails_exactly_at_the_timeout_and_not_before() {
    // Given a server that started at second 0 with the default timeout (600 s)
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    // When it is still not ready one second before the timeout
    let s = step(&mut gs, &starting(), 599);
    // Then it is still Starting
    assert_eq!(s.phase, Some(Phase::Starting));
    // When the timeout has elapsed
    let s = step(&mut gs, &starting(), 600);
    // Then it is Failed, and says why in Ready and Degraded
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(state_of(&s, READY), ("False", reason::STARTUP_TIMEOUT));
    assert_eq!(state_of(&s, DEGRADED), ("True", reason::STARTUP_TIMEOUT));
    assert_eq!(cond(&s, DEGRADED).message, "not ready after 600s (health.startupTimeoutSeconds)");
    assert_eq!(state_of(&s, PROGRESSING), ("False", reason::STABLE));
    assert_eq!(s.starting_since, Some(at_second(0)));
    // And it stays Failed while nothing changes
    let s = step(&mut gs, &starting(), 900);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(cond(&s, DEGRADED).last_transition_time, at_second(600));
}

#[test]
fn startup_timeout_comes_from_the_spec() {
    // Given a server allowed 30 s to start
    let mut gs = server(DesiredState::Running, 1);
    gs.spec.health = Some(Health { startup_timeout_seconds: 30, ..Health::default() });
    step(&mut gs, &starting(), 0);
    // When 30 s have passed without readiness
    assert_eq!(step(&mut gs, &starting(), 29).phase, Some(Phase::Starting));
    let s = step(&mut gs, &starting(), 30);
    // Then it is Failed, naming its own timeout
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(cond(&s, READY).message, "not ready after 30s (health.startupTimeoutSeconds)");
}

#[test]
fn a_late_ready_server_recovers_from_a_startup_timeout() {
    // Given a server that failed its startup timeout
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    step(&mut gs, &starting(), 700);
    // When it finally becomes ready
    let s = step(&mut gs, &running(), 800);
    // Then readiness wins
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
    assert_eq!(s.starting_since, None);
}

#[test]
fn crash_loop_fails_the_server_with_its_restart_count() {
    // Given a starting server
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    // When its container crashed twice and waits in back-off
    let s = step(&mut gs, &observed(Some(workload(true, 1)), Some(crash_looping_instance(2))), 20);
    // Then it is still Starting, but Degraded says it crashes
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(s.restarts, 2);
    assert_eq!(state_of(&s, DEGRADED), ("True", reason::CRASH_LOOP));
    assert_eq!(cond(&s, DEGRADED).message, "container restarted 2 times (CrashLoopBackOff)");
    // When it has crashed four times
    let s = step(&mut gs, &observed(Some(workload(true, 1)), Some(crash_looping_instance(4))), 60);
    // Then it is Failed long before the startup timeout
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(s.restarts, 4);
    assert_eq!(state_of(&s, READY), ("False", reason::CRASH_LOOP));
    assert_eq!(cond(&s, READY).message, "container restarted 4 times (CrashLoopBackOff)");
    assert_eq!(state_of(&s, DEGRADED), ("True", reason::CRASH_LOOP));
    assert_eq!(cond(&s, DEGRADED).message, "container restarted 4 times (CrashLoopBackOff)");
    // And the Degraded transition happened at the first crash, not now
    assert_eq!(cond(&s, DEGRADED).last_transition_time, at_second(20));
}

#[test]
fn a_server_whose_pod_admission_refuses_is_failed_at_once_with_the_api_servers_words() {
    let mut gs = server(DesiredState::Running, 1);
    let message = "pods \"mc-5d\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true";
    let refused = Instance {
        problem: Some(Problem::new(ProblemKind::Refused, "FailedCreate", Some(message.into()))),
        ..Instance::default()
    };
    // Given a new Deployment (not rolled out: its pod never came) whose pod is refused
    let s = step(&mut gs, &observed(Some(workload(false, 0)), Some(refused.clone())), 10);
    // Then the server is Failed at once, long before its startup timeout, with the refusal
    assert_eq!(s.phase, Some(Phase::Failed));
    let said = format!("the server's pod cannot be created: {message}");
    assert_eq!(
        (state_of(&s, READY), cond(&s, READY).message.as_str()),
        (("False", reason::PODS_REFUSED), said.as_str())
    );
    assert_eq!(state_of(&s, DEGRADED), ("True", reason::PODS_REFUSED));
    assert_eq!(cond(&s, DEGRADED).message, said);
    // And the same observation later says the same
    assert_eq!(step(&mut gs, &observed(Some(workload(false, 0)), Some(refused)), 40), s);
    // When the namespace lets it in and it comes up, it is Running
    let s = step(&mut gs, &running(), 50);
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
}

#[test]
fn an_image_that_cannot_be_pulled_fails_the_server_at_once_naming_the_image() {
    let back_off = format!("Back-off pulling image \"{IMAGE}\"");
    let cases = [
        ("ErrImagePull", "failed to pull and unpack image: connection refused"),
        ("ImagePullBackOff", back_off.as_str()),
        ("InvalidImageName", "invalid reference format"),
        ("ErrImageNeverPull", "image is not present with pull policy of Never"),
    ];
    for (why, message) in cases {
        // Given a starting server
        let mut gs = server(DesiredState::Running, 1);
        step(&mut gs, &starting(), 0);
        // When its container waits for an image that cannot be pulled
        let s = step(&mut gs, &observed(Some(workload(true, 1)), Some(pulling(why, Some(message)))), 5);
        // Then it is Failed right away, long before the startup timeout
        let expected = format!("image \"{IMAGE}\" cannot be pulled ({why}): {message}");
        assert_eq!(s.phase, Some(Phase::Failed), "{why}");
        assert_eq!(state_of(&s, READY), ("False", reason::IMAGE_PULL_FAILED), "{why}");
        assert_eq!(cond(&s, READY).message, expected);
        assert_eq!(state_of(&s, DEGRADED), ("True", reason::IMAGE_PULL_FAILED), "{why}");
        assert_eq!(cond(&s, DEGRADED).message, expected);
        assert_eq!(cond(&s, DEGRADED).last_transition_time, at_second(5));
        assert_eq!(state_of(&s, PROGRESSING), ("False", reason::STABLE));
        assert_eq!(s.starting_since, Some(at_second(0)), "{why}: the start it failed");
        assert_eq!(needs_requeue(&s, &gs, &at_second(5)), None, "nothing to wait for");
        assert!(!may_settle(None, &s), "{why}: written at once");
    }
    // Without the backend's message, the reason alone
    let gs = server(DesiredState::Running, 1);
    let s = compute(&gs, &observed(Some(workload(true, 1)), Some(pulling("ErrImagePull", None))), &at_second(0));
    assert_eq!(cond(&s, DEGRADED).message, format!("image \"{IMAGE}\" cannot be pulled (ErrImagePull)"));
}

#[test]
fn a_pull_failure_between_retries_keeps_its_transition_time() {
    // Given a server whose image pull failed at second 0
    let mut gs = server(DesiredState::Running, 1);
    let failed = observed(Some(workload(true, 1)), Some(pulling("ErrImagePull", Some("not found"))));
    step(&mut gs, &failed, 0);
    // When the kubelet backs off before the next try
    let backing_off = observed(Some(workload(true, 1)), Some(pulling("ImagePullBackOff", Some("Back-off"))));
    let s = step(&mut gs, &backing_off, 20);
    // Then it is still Failed, with the new message, since second 0
    assert_eq!(s.phase, Some(Phase::Failed));
    let expected = format!("image \"{IMAGE}\" cannot be pulled (ImagePullBackOff): Back-off");
    assert_eq!(cond(&s, DEGRADED).message, expected);
    assert_eq!(cond(&s, DEGRADED).last_transition_time, at_second(0));
    assert_eq!(cond(&s, READY).last_transition_time, at_second(0));
    assert_eq!(s.starting_since, Some(at_second(0)));
}

#[test]
fn a_pull_failure_of_an_old_or_leaving_instance_fails_nothing() {
    // Given a running server whose new template is rolling out
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &running(), 0);
    gs.metadata.generation = Some(2);
    // When an instance not on the latest template cannot pull its image
    let s = step(&mut gs, &observed(Some(workload(false, 1)), Some(pulling("ErrImagePull", None))), 10);
    // Then the rollout is under way, not failed
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(state_of(&s, PROGRESSING), ("True", reason::ROLLING_OUT));
    // And an instance on its way out fails nothing either
    let leaving = Instance { terminating: true, ..pulling("ImagePullBackOff", None) };
    let s = step(&mut gs, &observed(Some(workload(true, 1)), Some(leaving)), 20);
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
}

#[test]
fn a_server_whose_image_is_pulled_at_last_starts_and_runs() {
    // Given a server failed for its image
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &observed(Some(workload(true, 1)), Some(pulling("ImagePullBackOff", None))), 0);
    // When the image is pulled and the container starts
    let s = step(&mut gs, &starting(), 30);
    // Then it is Starting again, within the timeout of the same start
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
    assert_eq!(s.starting_since, Some(at_second(0)));
    // And readiness wins
    let s = step(&mut gs, &running(), 40);
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(state_of(&s, READY), ("True", reason::SERVER_READY));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
    // And a running server whose new pod cannot pull its image is Failed
    let s = step(&mut gs, &observed(Some(workload(true, 1)), Some(pulling("ErrImagePull", None))), 3600);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(state_of(&s, READY), ("False", reason::IMAGE_PULL_FAILED));
}

#[test]
fn passing_phases_may_settle_but_failures_and_lost_readiness_may_not() {
    // Given a new server: Pending, then Starting, may wait
    let mut gs = server(DesiredState::Running, 1);
    let pending = compute(&gs, &gone(), &at_second(0));
    assert_eq!(pending.phase, Some(Phase::Pending));
    assert!(may_settle(None, &pending));
    step(&mut gs, &gone(), 0);
    let started = step(&mut gs, &starting(), 1);
    assert!(may_settle(Some(&pending), &started));
    // Running is written at once
    let up = compute(&gs, &running(), &at_second(2));
    assert!(!may_settle(gs.status.as_ref(), &up));
    step(&mut gs, &running(), 2);
    // A Ready server that restarts is reported Starting at once
    let restarted = compute(&gs, &observed(Some(workload(true, 1)), Some(instance(false, 1, None))), &at_second(9));
    assert_eq!(restarted.phase, Some(Phase::Starting));
    assert!(!may_settle(gs.status.as_ref(), &restarted));
    // A crashing start is Degraded: at once too
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    let crashing = compute(&gs, &observed(Some(workload(true, 1)), Some(crash_looping_instance(2))), &at_second(3));
    assert_eq!(crashing.phase, Some(Phase::Starting));
    assert!(!may_settle(gs.status.as_ref(), &crashing));
    // Stopping may wait, Stopped not
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    gs.spec.state = DesiredState::Stopped;
    let stopping = compute(&gs, &observed(Some(workload(true, 1)), Some(instance(false, 0, None))), &at_second(4));
    assert_eq!(stopping.phase, Some(Phase::Stopping));
    assert!(may_settle(gs.status.as_ref(), &stopping));
    let stopped = compute(&gs, &gone(), &at_second(5));
    assert_eq!(stopped.phase, Some(Phase::Stopped));
    assert!(!may_settle(gs.status.as_ref(), &stopped));
}

#[test]
fn one_restart_is_not_a_crash_loop() {
    let gs = server(DesiredState::Running, 1);
    let s = compute(
        &gs,
        &observed(Some(workload(true, 1)), Some(instance(false, 1, Some((ProblemKind::Exited, "Error"))))),
        &at_second(0),
    );
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(cond(&s, DEGRADED).message, "container restarted 1 time (Error)");
}

#[test]
fn many_restarts_without_readiness_fail_even_without_a_back_off_reason() {
    // Given a backend that reports no waiting reason (Docker Swarm)
    let gs = server(DesiredState::Running, 1);
    // When the container restarted five times and is not ready
    let s = compute(&gs, &observed(Some(workload(true, 1)), Some(instance(false, 5, None))), &at_second(0));
    // Then the server is Failed for crashing
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(state_of(&s, READY), ("False", reason::CRASH_LOOP));
    assert_eq!(cond(&s, READY).message, "container restarted 5 times");
}

#[test]
fn a_terminating_instance_does_not_fail_a_rollout() {
    // Given a crash-looping server whose image the user fixes
    let mut gs = server(DesiredState::Running, 1);
    let crashing = crash_looping_instance(6);
    step(&mut gs, &observed(Some(workload(true, 1)), Some(crashing.clone())), 0);
    gs.metadata.generation = Some(2);
    // When the old instance is on its way out during the rollout
    let old = Instance { terminating: true, ..crashing };
    let s = step(&mut gs, &observed(Some(workload(false, 1)), Some(old)), 30);
    // Then the new start is under way, timed from now
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(s.starting_since, Some(at_second(30)));
    assert_eq!(state_of(&s, PROGRESSING), ("True", reason::ROLLING_OUT));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
}

#[test]
fn recovered_crash_is_running_and_healthy() {
    // Given a server failed by a crash loop
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &observed(Some(workload(true, 1)), Some(crash_looping_instance(4))), 0);
    // When its container finally stays up and becomes ready
    let s = step(&mut gs, &observed(Some(workload(true, 1)), Some(instance(true, 4, None))), 90);
    // Then it is Running and no longer Degraded, with its restarts on record
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(state_of(&s, READY), ("True", reason::SERVER_READY));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
    assert_eq!(s.restarts, 4);
    assert_eq!(s.starting_since, None);
}

#[test]
fn running_server_that_turns_unready_stays_running_but_degraded() {
    // Given a running server
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &running(), 0);
    // When the same container keeps running but fails its readiness check
    let s = step(&mut gs, &starting(), 3600);
    // Then it is still Running, not Ready, Degraded, and not timed
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(state_of(&s, READY), ("False", reason::NOT_READY));
    assert_eq!(state_of(&s, DEGRADED), ("True", reason::NOT_READY));
    assert_eq!(s.starting_since, None);
    assert_eq!(needs_requeue(&s, &gs, &at_second(3600)), None);
    // And it is Ready again once the check passes
    let s = step(&mut gs, &running(), 3700);
    assert_eq!((s.phase, state_of(&s, READY)), (Some(Phase::Running), ("True", reason::SERVER_READY)));
}

#[test]
fn a_restart_of_a_running_server_is_a_new_start() {
    // Given a running server
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &running(), 0);
    // When its container restarted and is loading the world again
    let s = step(&mut gs, &observed(Some(workload(true, 1)), Some(instance(false, 1, None))), 3600);
    // Then it is Starting, with the startup timeout counting from now
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(s.starting_since, Some(at_second(3600)));
    // And the clock does not restart on the next look
    let s = step(&mut gs, &observed(Some(workload(true, 1)), Some(instance(false, 1, None))), 3700);
    assert_eq!(s.starting_since, Some(at_second(3600)));
}

#[test]
fn a_new_template_restarts_the_clock_of_a_failed_server() {
    // Given a server that timed out
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    assert_eq!(step(&mut gs, &starting(), 600).phase, Some(Phase::Failed));
    // When the user changes its template
    gs.metadata.generation = Some(2);
    let s = step(&mut gs, &observed(Some(workload(false, 1)), Some(instance(false, 0, None))), 700);
    // Then the new start gets its own timeout
    assert_eq!(s.phase, Some(Phase::Starting));
    assert_eq!(s.starting_since, Some(at_second(700)));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
}

#[test]
fn a_new_generation_without_a_new_template_keeps_the_clock() {
    // Given a server starting since second 0
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    // When only its description changes (the workload stays rolled out)
    gs.metadata.generation = Some(2);
    gs.spec.description = Some("survival world".into());
    let s = step(&mut gs, &starting(), 100);
    // Then the start still counts from second 0
    assert_eq!(s.starting_since, Some(at_second(0)));
    assert_eq!(s.observed_generation, Some(2));
}

#[test]
fn stopping_a_starting_server_clears_its_clock_and_restarting_sets_a_new_one() {
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    gs.spec.state = DesiredState::Stopped;
    assert_eq!(step(&mut gs, &gone(), 10).starting_since, None);
    gs.spec.state = DesiredState::Running;
    let s = step(&mut gs, &starting(), 20);
    assert_eq!((s.phase, s.starting_since), (Some(Phase::Starting), Some(at_second(20))));
}

#[test]
fn set_condition_moves_last_transition_time_only_on_a_flip() {
    let mut conditions = Vec::new();
    // Given a new condition
    set_condition(&mut conditions, READY, false, reason::STARTING, "starting", Some(1), &at_second(0));
    assert_eq!(conditions[0].last_transition_time, at_second(0));
    // When its reason, message and generation change but not its status
    set_condition(&mut conditions, READY, false, reason::STARTUP_TIMEOUT, "too slow", Some(2), &at_second(10));
    // Then they are updated in place and the transition time stays
    let c = &conditions[0];
    assert_eq!((c.reason.as_str(), c.message.as_str(), c.observed_generation), ("StartupTimeout", "too slow", Some(2)));
    assert_eq!(c.last_transition_time, at_second(0));
    // When the status flips
    set_condition(&mut conditions, READY, true, reason::SERVER_READY, "ready", Some(2), &at_second(20));
    // Then the transition time moves, and there is still one entry
    assert_eq!(conditions.len(), 1);
    assert_eq!((conditions[0].status.as_str(), conditions[0].last_transition_time.clone()), ("True", at_second(20)));
    assert!(is_true(&conditions, READY));
    assert!(!is_true(&conditions, DEGRADED));
}

#[test]
fn set_condition_keeps_one_entry_per_type_and_the_order() {
    let mut conditions = Vec::new();
    set_condition(&mut conditions, READY, false, "A", "", None, &at_second(0));
    set_condition(&mut conditions, DEGRADED, false, "B", "", None, &at_second(0));
    conditions.push(conditions[0].clone());
    set_condition(&mut conditions, READY, true, "C", "", None, &at_second(5));
    let types: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, vec![READY, DEGRADED]);
    assert_eq!(condition(&conditions, READY).unwrap().reason, "C");
}

#[test]
fn times_are_kept_to_whole_seconds_as_they_are_serialized() {
    let mut conditions = Vec::new();
    let now = Time(Timestamp::from_second(T0).unwrap() + SignedDuration::from_millis(750));
    set_condition(&mut conditions, READY, true, "R", "", None, &now);
    assert_eq!(conditions[0].last_transition_time, at_second(0));
    let s = compute(&server(DesiredState::Running, 1), &starting(), &now);
    assert_eq!(cond(&s, READY).last_transition_time, at_second(0));
    assert_eq!(s.starting_since, Some(at_second(1)), "rounded up: the clock never starts early");
}

#[test]
fn a_start_that_began_mid_second_gets_its_full_timeout() {
    // Given a server that started half a second into second 0
    let mid = |s: i64, ms: i64| Time(at_second(s).0 + SignedDuration::from_millis(ms));
    let mut gs = server(DesiredState::Running, 1);
    let s = compute(&gs, &starting(), &mid(0, 500));
    gs.status = Some(s.clone());
    // Then the controller looks again no sooner than a full timeout later
    assert_eq!(needs_requeue(&s, &gs, &mid(0, 500)), Some(Duration::from_millis(600_500)));
    // And the server is not Failed 600 s after its start, only just after
    assert_eq!(compute(&gs, &starting(), &mid(600, 500)).phase, Some(Phase::Starting));
    assert_eq!(compute(&gs, &starting(), &mid(600, 999)).phase, Some(Phase::Starting));
    assert_eq!(compute(&gs, &starting(), &at_second(601)).phase, Some(Phase::Failed));
}

#[test]
fn observed_generation_follows_generation() {
    // Given a server at generation 3
    let mut gs = server(DesiredState::Running, 3);
    let s = step(&mut gs, &running(), 0);
    // Then the status and every condition describe generation 3
    assert_eq!(s.observed_generation, Some(3));
    assert!(s.conditions.iter().all(|c| c.observed_generation == Some(3)));
    // When the generation moves on without other change
    gs.metadata.generation = Some(4);
    let s = step(&mut gs, &running(), 10);
    // Then so does the status, and no condition transitions
    assert_eq!(s.observed_generation, Some(4));
    assert!(s.conditions.iter().all(|c| c.observed_generation == Some(4)));
    assert_eq!(cond(&s, READY).last_transition_time, at_second(0));
}

#[test]
fn compute_is_idempotent() {
    // For each kind of situation: when nothing changes but the time, the
    // status read back from the API server is what compute returns again.
    let spec_running = || server(DesiredState::Running, 1);
    let cases: Vec<(&str, GameServer, Observed)> = vec![
        ("pending", spec_running(), gone()),
        ("starting", spec_running(), starting()),
        ("running", spec_running(), running()),
        ("rolling out", spec_running(), observed(Some(workload(false, 1)), Some(instance(false, 0, None)))),
        ("crash loop", spec_running(), observed(Some(workload(true, 1)), Some(crash_looping_instance(4)))),
        (
            "image pull failed",
            spec_running(),
            observed(Some(workload(true, 1)), Some(pulling("ImagePullBackOff", Some("Back-off pulling image")))),
        ),
        ("stopping", server(DesiredState::Stopped, 1), observed(Some(workload(true, 1)), None)),
        ("stopped", server(DesiredState::Stopped, 1), gone()),
    ];
    for (name, mut gs, obs) in cases {
        let first = step(&mut gs, &obs, 0);
        let again = compute(&gs, &obs, &at_second(30));
        assert_eq!(gs.status.as_ref(), Some(&first), "{name}: the status survives the round trip");
        assert_eq!(again, first, "{name}: recomputing changes nothing");
    }
}

#[test]
fn compute_keeps_shutdown_failed_as_it_was() {
    // Given a status with a ShutdownFailed condition
    let mut gs = server(DesiredState::Running, 1);
    let mut status = GameServerStatus::default();
    set_condition(&mut status.conditions, SHUTDOWN_FAILED, true, "BackendUnreachable", "down", Some(1), &at_second(0));
    gs.status = Some(status);
    // When the status is computed
    let s = compute(&gs, &running(), &at_second(50));
    // Then that condition is untouched
    assert_eq!(condition(&s.conditions, SHUTDOWN_FAILED), condition(&gs.status.unwrap().conditions, SHUTDOWN_FAILED));
}

#[test]
fn terminating_without_failure() {
    // Given a running server being deleted (generation bumped by the deletion)
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &running(), 0);
    gs.metadata.generation = Some(2);
    // When its teardown is under way
    let s = terminating(&gs, None, &at_second(100));
    // Then it is Terminating, not Ready, and its shutdown has not failed
    assert_eq!(s.phase, Some(Phase::Terminating));
    assert_eq!(state_of(&s, READY), ("False", reason::TERMINATING));
    assert_eq!(state_of(&s, SHUTDOWN_FAILED), ("False", reason::SHUTTING_DOWN));
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(s.address.as_deref(), Some("127.0.0.10"));
    assert_eq!(s.backend_ref.as_deref(), Some("deployment/mc"));
    // And it is stable while the teardown lasts
    gs.status = Some(s.clone());
    assert_eq!(terminating(&gs, None, &at_second(200)), s);
}

#[test]
fn terminating_with_failure() {
    // Given a server being deleted
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &running(), 0);
    // When the teardown fails
    let s = terminating(&gs, Some(("BackendUnreachable", "backend unreachable: timeout")), &at_second(100));
    // Then ShutdownFailed says why
    let c = cond(&s, SHUTDOWN_FAILED);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "BackendUnreachable"));
    assert_eq!(c.message, "backend unreachable: timeout");
    assert_eq!(state_of(&s, READY), ("False", reason::TERMINATING));
    // And the same failure again changes nothing
    gs.status = Some(s.clone());
    assert_eq!(terminating(&gs, Some(("BackendUnreachable", "backend unreachable: timeout")), &at_second(200)), s);
    // And once the teardown proceeds, the condition flips back
    let s = terminating(&gs, None, &at_second(300));
    assert_eq!(state_of(&s, SHUTDOWN_FAILED), ("False", reason::SHUTTING_DOWN));
    assert_eq!(cond(&s, SHUTDOWN_FAILED).last_transition_time, at_second(300));
}

#[test]
fn needs_requeue_at_the_startup_deadline_while_starting() {
    // Given a server starting since second 0 with the default 600 s timeout
    let mut gs = server(DesiredState::Running, 1);
    let s = step(&mut gs, &starting(), 0);
    // Then the controller looks again when the timeout expires
    assert_eq!(needs_requeue(&s, &gs, &at_second(0)), Some(Duration::from_secs(600)));
    let s = step(&mut gs, &starting(), 450);
    let later = Time(at_second(450).0 + SignedDuration::from_millis(250));
    assert_eq!(needs_requeue(&s, &gs, &later), Some(Duration::from_millis(149_750)));
    // And a stale status past its deadline asks for a look at once
    assert_eq!(needs_requeue(&s, &gs, &at_second(601)), Some(Duration::ZERO));
    // And that look reports Failed, with nothing more to wait for
    let s = step(&mut gs, &starting(), 600);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(needs_requeue(&s, &gs, &at_second(600)), None);
}

#[test]
fn no_requeue_outside_starting() {
    let mut gs = server(DesiredState::Running, 1);
    assert_eq!(needs_requeue(&step(&mut gs, &gone(), 0), &gs, &at_second(0)), None);
    assert_eq!(needs_requeue(&step(&mut gs, &running(), 1), &gs, &at_second(1)), None);
    gs.spec.state = DesiredState::Stopped;
    assert_eq!(needs_requeue(&step(&mut gs, &gone(), 2), &gs, &at_second(2)), None);
}

#[test]
fn a_server_whose_objects_are_refused_is_failed_and_says_why() {
    let gs = server(DesiredState::Running, 1);
    let why = "backend refused apply deployment/mc: deployment/mc already exists and does not belong to GameServer mc";
    let status = apply_failed(&gs, "BackendRefused", why, true, &at_second(0));
    assert_eq!(status.phase, Some(Phase::Failed));
    for type_ in [READY, PROGRESSING] {
        let c = condition(&status.conditions, type_).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str(), c.message.as_str()), ("False", "BackendRefused", why));
    }
    let degraded = condition(&status.conditions, DEGRADED).unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "BackendRefused"));
    assert_eq!(status.observed_generation, None, "nothing of generation 1 runs");

    // Unreachable, it may run as it is once the backend answers.
    let status = apply_failed(&gs, "BackendUnreachable", "backend unreachable: refused", false, &at_second(0));
    assert_eq!(status.phase, Some(Phase::Pending));

    // The same failure again changes nothing: no write.
    let mut failed = gs.clone();
    failed.status = Some(apply_failed(&gs, "BackendRefused", why, true, &at_second(0)));
    assert_eq!(failed.status, Some(apply_failed(&failed, "BackendRefused", why, true, &at_second(30))));
}

#[test]
fn a_refused_update_of_a_running_server_keeps_what_runs() {
    let mut gs = server(DesiredState::Running, 1);
    let observed = Observed {
        workload: Some(Workload { desired: 1, ready: 1, rolled_out: true, existing: 1 }),
        instance: Some(instance(true, 0, None)),
        endpoint: endpoint(),
        backend_ref: Some("deployment/mc".into()),
    };
    let running = compute(&gs, &observed, &at_second(0));
    gs.status = Some(running.clone());
    gs.metadata.generation = Some(2);
    let status = apply_failed(&gs, "BackendRefused", "quota exceeded", true, &at_second(10));
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(status.address, running.address);
    assert_eq!(status.observed_generation, Some(1), "generation 2 does not run");
    assert!(is_true(&status.conditions, READY), "the old version still serves players");
    assert!(is_true(&status.conditions, DEGRADED));
    assert!(!is_true(&status.conditions, PROGRESSING));

    // Once it applies, the next observation clears it.
    gs.status = Some(status);
    let applied = compute(&gs, &observed, &at_second(20));
    assert!(!is_true(&applied.conditions, DEGRADED));
}

/// An instance whose install container failed with these last lines.
fn install_failed(lines: Option<&str>) -> Instance {
    Instance {
        running: false,
        problem: Some(Problem::new(ProblemKind::InstallFailed, "InstallFailed", lines.map(str::to_string))),
        ..instance(false, 0, None)
    }
}

#[test]
fn a_failed_install_fails_the_server_at_once_with_the_scripts_last_lines() {
    // Given a starting server
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    // When its install script exits non-zero
    let lines = "Downloading paper 1.21.4\ncurl: (22) The requested URL returned error: 404";
    let s = step(&mut gs, &observed(Some(workload(false, 1)), Some(install_failed(Some(lines)))), 5);
    // Then it is Failed right away, the script's last lines in Ready and Degraded
    let said = format!("install script failed: {lines}");
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!((state_of(&s, READY), cond(&s, READY).message.as_str()), (("False", reason::INSTALL_FAILED), &*said));
    assert_eq!(
        (state_of(&s, DEGRADED), cond(&s, DEGRADED).message.as_str()),
        (("True", reason::INSTALL_FAILED), &*said)
    );
    assert_eq!(cond(&s, DEGRADED).last_transition_time, at_second(5));
    assert_eq!(needs_requeue(&s, &gs, &at_second(5)), None, "nothing to wait for");
    assert!(!may_settle(None, &s), "written at once");
    // And the same observation later says the same: no write
    let again = observed(Some(workload(false, 1)), Some(install_failed(Some(lines))));
    assert_eq!(step(&mut gs, &again, 60), s);
    // Without lines, the failure alone
    let s = compute(&gs, &observed(Some(workload(false, 1)), Some(install_failed(None))), &at_second(61));
    assert_eq!(cond(&s, DEGRADED).message, "install script failed");
    // When a retry passes and the game comes up, it is Running
    let s = step(&mut gs, &running(), 90);
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(state_of(&s, DEGRADED), ("False", reason::HEALTHY));
}

#[test]
fn the_failed_install_of_a_leaving_instance_fails_nothing() {
    let mut gs = server(DesiredState::Running, 1);
    step(&mut gs, &starting(), 0);
    let leaving = Instance { terminating: true, ..install_failed(Some("exit 1")) };
    let s = step(&mut gs, &observed(Some(workload(false, 1)), Some(leaving)), 5);
    assert_eq!(s.phase, Some(Phase::Starting));
}

#[test]
fn a_server_whose_template_does_not_resolve_is_failed_saying_why() {
    let gs = server(DesiredState::Running, 1);
    let why = "GameTemplate games/paper does not exist";
    let s = unresolved(&gs, reason::TEMPLATE_NOT_FOUND, why, &at_second(0));
    assert_eq!(s.phase, Some(Phase::Failed));
    for (type_, value) in [(READY, "False"), (PROGRESSING, "False"), (DEGRADED, "True")] {
        let c = cond(&s, type_);
        assert_eq!((c.status.as_str(), c.reason.as_str(), c.message.as_str()), (value, "TemplateNotFound", why));
    }
    assert_eq!(s.observed_generation, Some(1));
    assert!(!may_settle(None, &s), "written at once");
    // The same problem later changes nothing: no write.
    let mut failed = gs.clone();
    failed.status = Some(s.clone());
    assert_eq!(unresolved(&failed, reason::TEMPLATE_NOT_FOUND, why, &at_second(30)), s);
    // A Starting server's clock is dropped: it is not starting any more.
    let mut starting_gs = gs.clone();
    step(&mut starting_gs, &starting(), 0);
    assert_eq!(unresolved(&starting_gs, reason::INVALID_VARIABLES, "x", &at_second(5)).starting_since, None);
    // Once it resolves and runs, the next computation clears it.
    let s = step(&mut failed, &running(), 40);
    assert_eq!((s.phase, state_of(&s, DEGRADED)), (Some(Phase::Running), ("False", reason::HEALTHY)));
}

#[test]
fn a_running_server_whose_template_stops_resolving_keeps_running_degraded() {
    let mut gs = server(DesiredState::Running, 1);
    let running = step(&mut gs, &running(), 0);
    gs.metadata.generation = Some(2);
    let why = "spec.variables.MAX_PLAYERS: 500 breaks the rule between:1,100 of template GameTemplate/paper";
    let s = unresolved(&gs, reason::INVALID_VARIABLES, why, &at_second(10));
    assert_eq!(s.phase, Some(Phase::Running));
    assert_eq!(s.address, running.address);
    assert_eq!(s.observed_generation, Some(1), "generation 2 does not run");
    assert_eq!(state_of(&s, READY), ("True", reason::SERVER_READY), "the last plan still serves players");
    assert_eq!((state_of(&s, DEGRADED), cond(&s, DEGRADED).message.as_str()), (("True", "InvalidVariables"), why));
    assert_eq!(state_of(&s, PROGRESSING), ("False", "InvalidVariables"));
}

#[test]
fn the_requeue_for_the_startup_timeout_follows_the_spec_that_runs() {
    let mut gs = server(DesiredState::Running, 1);
    let s = step(&mut gs, &starting(), 0);
    let mut resolved = gs.spec.clone();
    resolved.health = Some(Health { startup_timeout_seconds: 30, ..Health::default() });
    assert_eq!(needs_requeue_for(&s, &resolved, &at_second(10)), Some(Duration::from_secs(20)));
    assert_eq!(needs_requeue(&s, &gs, &at_second(10)), needs_requeue_for(&s, &gs.spec, &at_second(10)));
}
