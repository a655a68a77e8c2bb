//! Status: what a GameServer reports, computed from its spec, its previous
//! status and what the backend observed. Pure: no client, no I/O, and `now` is
//! passed in, so the same inputs always give the same status.
//!
//! The controller writes the status only when [`compute`] returns something
//! other than what the object holds, so `compute` is idempotent: run again with
//! the same observation and a later `now`, it returns an equal status. Times
//! move only on real transitions (a condition flipping, a start beginning), and
//! are kept to whole seconds because that is all `metav1.Time` serializes: a
//! status read back from the API server compares equal to the one computed.
//! `startingSince` is rounded up, not down, so that a server is never Failed
//! before its full startup timeout has passed.
//!
//! # The lifecycle
//! - `state: Stopped`: `Stopping` while an instance still exists, then `Stopped`.
//!   A stopped server keeps its last known address and ports (its address
//!   record), so players and tools still see where it lives.
//! - `state: Running`: `Pending` until the workload exists, `Starting` until the
//!   instance is ready on the latest template, then `Running`. `Failed` when the
//!   start outlasts `health.startupTimeoutSeconds`, the container keeps
//!   crashing, its image cannot be pulled (at once, `ImagePullFailed`, with
//!   the image and the backend's message), or its template's install script
//!   failed (at once, `InstallFailed`, `install script failed: ` and the
//!   script's last lines); readiness always wins, so a failed
//!   server that comes up is `Running` again. The startup clock (`startingSince`) starts with
//!   `Starting`: while `Pending` nothing runs yet that could time out.
//! - A `Running` server whose instance stops passing its readiness check, while
//!   the same container keeps running, stays `Running` with `Ready=False` and
//!   `Degraded=True` (`NotReady`): players may be lagging, not gone, and the
//!   startup timeout is about starts. A restarted, stopped or replaced container
//!   (as far as observed: a new restart count), or a new template rolling out,
//!   is a new start: `Starting`, with a fresh `startingSince` and the startup
//!   timeout counting again.
//! - A server made from a template (`spec.template`) is computed from its
//!   resolved spec (the template's startup timeout, ready lines...). One that
//!   does not resolve ([`unresolved`]: `TemplateNotFound`, `InvalidVariables`,
//!   `InvalidTemplate`) is `Failed` at once and `Degraded`, nothing applied
//!   for it until it resolves; a server Running and Ready on the last plan
//!   that resolved keeps running it, `Running` and `Degraded`.
//! - `players` (with `spec.players`): what the controller last read from the
//!   game's supervisor ([`players::read`]), kept as it is between reads, and
//!   nobody online while no instance runs the game or just after it restarted
//!   ([`players::kept`]).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::conditions::{DEGRADED, PROGRESSING, READY, SHUTDOWN_FAILED};
use crate::api::{DesiredState, GameServer, GameServerSpec, GameServerStatus, Health, Phase, PublishedPort};
use crate::orchestrator::observed::ProblemKind;
use crate::orchestrator::{Instance, Observed, Workload};

/// Condition reasons, as constants so that code and tests agree.
pub mod reason {
    /// Ready=True.
    pub const SERVER_READY: &str = "ServerReady";
    /// Ready=False: the server is stopped or stopping.
    pub const STOPPED: &str = "Stopped";
    /// Ready=False: waiting for the runtime to create the workload.
    pub const PENDING: &str = "Pending";
    /// Ready=False while starting; Progressing=True while starting.
    pub const STARTING: &str = "Starting";
    /// Ready=False and Degraded=True: not ready within the startup timeout.
    pub const STARTUP_TIMEOUT: &str = "StartupTimeout";
    /// Ready=False and Degraded=True: the container keeps crashing.
    pub const CRASH_LOOP: &str = "CrashLoop";
    /// Ready=False and Degraded=True: the image cannot be pulled.
    pub const IMAGE_PULL_FAILED: &str = "ImagePullFailed";
    /// Ready=False and Degraded=True: the server's pod cannot even be created
    /// (refused by admission: Pod Security, a quota, a webhook).
    pub const PODS_REFUSED: &str = "PodsRefused";
    /// Ready=False and Degraded=True: a running server fails its readiness check.
    pub const NOT_READY: &str = "NotReady";
    /// Ready=False and Degraded=True: the template's install script failed
    /// (exited non-zero); the message holds its last lines.
    pub const INSTALL_FAILED: &str = "InstallFailed";
    /// Degraded=True and Progressing=False (and Ready=False, but for a server
    /// still running its last plan: [`super::unresolved`]): the template the
    /// server names (`spec.template`) does not exist (in the server's
    /// namespace, for a GameTemplate); nothing is applied until it does.
    pub const TEMPLATE_NOT_FOUND: &str = "TemplateNotFound";
    /// Degraded=True, Progressing=False (and Ready=False, as for
    /// [`TEMPLATE_NOT_FOUND`]): the server's variables
    /// break the template's rules, or name variables the template has not or
    /// users may not set; nothing is applied until they are fixed.
    pub const INVALID_VARIABLES: &str = "InvalidVariables";
    /// Degraded=True, Progressing=False (and Ready=False, as for
    /// [`TEMPLATE_NOT_FOUND`]): the server does not
    /// resolve from its template for another reason than its variables (the
    /// template's own problems, an image or start command it has not, no
    /// ports...); nothing is applied until it does.
    pub const INVALID_TEMPLATE: &str = "InvalidTemplate";
    /// Progressing=True: a new template is being rolled out.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// Progressing=True: the server is shutting down.
    pub const STOPPING: &str = "Stopping";
    /// Progressing=False.
    pub const STABLE: &str = "Stable";
    /// Degraded=False.
    pub const HEALTHY: &str = "Healthy";
    /// Ready=False while the GameServer is being deleted.
    pub const TERMINATING: &str = "Terminating";
    /// ShutdownFailed=False while the teardown is under way.
    pub const SHUTTING_DOWN: &str = "ShuttingDown";
}

/// Restarts in back-off from which a server counts as crash looping: one crash
/// may be bad luck, three in back-off are a pattern.
const CRASH_LOOP_RESTARTS: i32 = 3;
/// Restarts from which a server that is not ready counts as crash looping,
/// whatever the backend says of the container (Docker Swarm has no back-off
/// reason to report).
const CRASHING_RESTARTS: i32 = 5;

/// The condition of type `type_`, if there is one.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is there with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Sets a condition with metav1.Condition semantics: one entry per type (a
/// duplicate, which only a hand edit makes, is dropped), reason, message and
/// observedGeneration updated in place, and `lastTransitionTime` moved to `now`
/// (in whole seconds) only when the status flips or the condition is new.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" };
    let mut seen = false;
    conditions.retain(|c| c.type_ != type_ || !std::mem::replace(&mut seen, true));
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.status = status.to_string();
                c.last_transition_time = whole_seconds(now);
            }
            if c.reason != reason {
                c.reason = reason.to_string();
            }
            if c.message != message {
                c.message = message.to_string();
            }
            c.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation,
            last_transition_time: whole_seconds(now),
        }),
    }
}

/// Why a server is Failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    CrashLoop,
    StartupTimeout,
    ImagePull,
    PodsRefused,
    InstallFailed,
}

/// Where the server stands, before it is put into words.
struct Assessment {
    phase: Phase,
    /// The instance is ready on the latest template.
    ready: bool,
    starting_since: Option<Time>,
    failure: Option<Failure>,
}

/// The status of a GameServer that exists (is not being deleted), from its
/// previous status, its spec and generation, and what the backend observed.
/// See the module documentation for the lifecycle it follows.
pub fn compute(gs: &GameServer, observed: &Observed, now: &Time) -> GameServerStatus {
    compute_for(&gs.spec, gs.metadata.generation, gs.status.as_ref(), observed, now)
}

/// [`compute`] from the parts of a GameServer it reads, for a caller that
/// holds no GameServer object (the facade) or another previous status than
/// the object's (the controller's status held back): the spec, its
/// `generation` (what counts the spec's changes: `metadata.generation` on
/// Kubernetes) and the status computed last (`None` before the first).
pub fn compute_for(
    spec: &GameServerSpec,
    generation: Option<i64>,
    prev: Option<&GameServerStatus>,
    observed: &Observed,
    now: &Time,
) -> GameServerStatus {
    let prev = prev.cloned().unwrap_or_default();
    let timeout = startup_timeout_seconds(spec);
    let instance = observed.instance.as_ref();
    let restarts = instance.map_or(0, |i| i.restarts);
    let players = players::kept(spec, &prev, instance, now);

    let a = match spec.state {
        DesiredState::Stopped => assess_stopped(observed),
        DesiredState::Running => assess_running(generation, &prev, observed, timeout, now),
    };

    let (address, ports) = match spec.state {
        DesiredState::Running => (observed.endpoint.address.clone(), observed.endpoint.ports.clone()),
        // The address record: the last place the server was known to live.
        DesiredState::Stopped if observed.endpoint.address.is_none() => (prev.address.clone(), prev.ports.clone()),
        DesiredState::Stopped => (observed.endpoint.address.clone(), observed.endpoint.ports.clone()),
    };

    let mut conditions = prev.conditions;
    let crash = instance.map(crash_message).unwrap_or_default();
    let pull = instance.map(|i| pull_message(&spec.image, i)).unwrap_or_default();
    let refused = instance.map(refused_message).unwrap_or_default();
    let install = instance.map(install_message).unwrap_or_default();
    let timed_out = format!("not ready after {timeout}s (health.startupTimeoutSeconds)");
    let (ready, ready_reason, ready_message) = match (a.phase, a.failure) {
        (Phase::Running, _) if a.ready => {
            (true, reason::SERVER_READY, format!("server is ready{}", at(address.as_deref(), &ports)))
        }
        (Phase::Running, _) => (false, reason::NOT_READY, "server stopped passing its readiness check".to_string()),
        (Phase::Pending, _) => (false, reason::PENDING, "waiting for the runtime to create the server".to_string()),
        (Phase::Starting, _) => {
            (false, reason::STARTING, format!("waiting for the server to become ready (startup timeout {timeout}s)"))
        }
        (Phase::Failed, Some(Failure::CrashLoop)) => (false, reason::CRASH_LOOP, crash.clone()),
        (Phase::Failed, Some(Failure::ImagePull)) => (false, reason::IMAGE_PULL_FAILED, pull.clone()),
        (Phase::Failed, Some(Failure::PodsRefused)) => (false, reason::PODS_REFUSED, refused.clone()),
        (Phase::Failed, Some(Failure::InstallFailed)) => (false, reason::INSTALL_FAILED, install.clone()),
        (Phase::Failed, _) => (false, reason::STARTUP_TIMEOUT, timed_out.clone()),
        (Phase::Stopping, _) => (false, reason::STOPPED, "server is stopping".to_string()),
        (Phase::Stopped | Phase::Terminating, _) => (false, reason::STOPPED, "server is stopped".to_string()),
    };
    set_condition(&mut conditions, READY, ready, ready_reason, &ready_message, generation, now);

    // A Stopped server's workload may still settle its own rollout (the scale to
    // zero); that is no progress the user waits for.
    let rolling_out = spec.state == DesiredState::Running && observed.workload.as_ref().is_some_and(|w| !w.rolled_out);
    let (progressing, progressing_reason, progressing_message) = match a.phase {
        Phase::Stopping => (true, reason::STOPPING, "stopping the server; data is kept"),
        _ if rolling_out => (true, reason::ROLLING_OUT, "rolling out the server's new template"),
        Phase::Pending => (true, reason::STARTING, "creating the server"),
        Phase::Starting => (true, reason::STARTING, "starting the server"),
        _ => (false, reason::STABLE, "no change under way"),
    };
    set_condition(&mut conditions, PROGRESSING, progressing, progressing_reason, progressing_message, generation, now);

    let crashed = spec.state == DesiredState::Running
        && instance.is_some_and(|i| !i.terminating && i.restarts > 0 && i.problem.is_some());
    let (degraded, degraded_reason, degraded_message) = match a.failure {
        Some(Failure::CrashLoop) => (true, reason::CRASH_LOOP, crash),
        Some(Failure::StartupTimeout) => (true, reason::STARTUP_TIMEOUT, timed_out),
        Some(Failure::ImagePull) => (true, reason::IMAGE_PULL_FAILED, pull),
        Some(Failure::PodsRefused) => (true, reason::PODS_REFUSED, refused),
        Some(Failure::InstallFailed) => (true, reason::INSTALL_FAILED, install),
        None if crashed => (true, reason::CRASH_LOOP, crash),
        None if a.phase == Phase::Running && !a.ready => {
            (true, reason::NOT_READY, "server is running but fails its readiness check".to_string())
        }
        None => (false, reason::HEALTHY, "no problem observed".to_string()),
    };
    set_condition(&mut conditions, DEGRADED, degraded, degraded_reason, &degraded_message, generation, now);

    GameServerStatus {
        phase: Some(a.phase),
        address,
        ports,
        conditions,
        observed_generation: generation,
        restarts,
        starting_since: a.starting_since,
        backend_ref: observed.backend_ref.clone(),
        players,
    }
}

fn assess_stopped(observed: &Observed) -> Assessment {
    let exists = observed.workload.as_ref().is_some_and(|w| w.existing > 0) || observed.instance.is_some();
    Assessment {
        phase: if exists { Phase::Stopping } else { Phase::Stopped },
        ready: false,
        starting_since: None,
        failure: None,
    }
}

fn assess_running(
    generation: Option<i64>,
    prev: &GameServerStatus,
    observed: &Observed,
    timeout: i32,
    now: &Time,
) -> Assessment {
    let assessed = |phase, starting_since, failure| Assessment { phase, ready: false, starting_since, failure };
    let Some(workload) = &observed.workload else {
        return assessed(Phase::Pending, None, None);
    };
    let instance = observed.instance.as_ref();
    if workload.rolled_out && instance.is_some_and(|i| i.ready) {
        return Assessment { phase: Phase::Running, ready: true, starting_since: None, failure: None };
    }
    if prev.phase == Some(Phase::Running) && workload.rolled_out && instance.is_some_and(|i| still_up(i, prev)) {
        return assessed(Phase::Running, None, None);
    }
    let continuing =
        matches!(prev.phase, Some(Phase::Starting | Phase::Failed)) && !rollout_begins(generation, prev, workload);
    let since = prev.starting_since.clone().filter(|_| continuing).unwrap_or_else(|| seconds_after(now));
    // Waiting for an image that cannot be pulled will not end by waiting: no
    // need to let the startup timeout run out. Only on the latest template:
    // an old instance's image says nothing of the new one's.
    if workload.rolled_out && instance.is_some_and(image_pull_failing) {
        return assessed(Phase::Failed, Some(since), Some(Failure::ImagePull));
    }
    // Nor will a pod that admission refuses to create (the latest template's:
    // the rollout waits on it, so the workload is not rolled out).
    if instance.is_some_and(|i| has_problem(i, ProblemKind::Refused)) {
        return assessed(Phase::Failed, Some(since), Some(Failure::PodsRefused));
    }
    // Nor will an install script that failed: it fails the same way when
    // run again (the kubelet retries it in back-off all the same, and a
    // retry that passes makes the server Starting again).
    if instance.is_some_and(|i| !i.terminating && has_problem(i, ProblemKind::InstallFailed)) {
        return assessed(Phase::Failed, Some(since), Some(Failure::InstallFailed));
    }
    if instance.is_some_and(crash_looping) {
        return assessed(Phase::Failed, Some(since), Some(Failure::CrashLoop));
    }
    if now.0.duration_since(since.0) >= SignedDuration::from_secs(i64::from(timeout)) {
        return assessed(Phase::Failed, Some(since), Some(Failure::StartupTimeout));
    }
    assessed(Phase::Starting, Some(since), None)
}

/// A new generation that changed the template: the start begins anew. A new
/// generation that did not (a description edit) leaves the workload rolled out
/// and the clock where it was.
fn rollout_begins(generation: Option<i64>, prev: &GameServerStatus, workload: &Workload) -> bool {
    generation != prev.observed_generation && !workload.rolled_out
}

/// The container that was ready is still the one running: not a new start.
fn still_up(instance: &Instance, prev: &GameServerStatus) -> bool {
    instance.running && !instance.terminating && instance.problem.is_none() && instance.restarts == prev.restarts
}

/// Whether the instance's problem is of `kind`.
fn has_problem(instance: &Instance, kind: ProblemKind) -> bool {
    instance.problem.as_ref().is_some_and(|p| p.kind == kind)
}

/// The instance keeps crashing. A terminating instance is on its way out (an
/// old pod during a rollout): its crashes say nothing of the new template.
fn crash_looping(instance: &Instance) -> bool {
    !instance.terminating
        && !instance.ready
        && ((has_problem(instance, ProblemKind::CrashLoop) && instance.restarts >= CRASH_LOOP_RESTARTS)
            || instance.restarts >= CRASHING_RESTARTS)
}

/// The instance waits for an image that cannot be pulled. (Docker Swarm finds
/// a missing image before it creates the service, and refuses it then:
/// `BackendError::ImageMissing`.)
fn image_pull_failing(instance: &Instance) -> bool {
    !instance.terminating && !instance.ready && has_problem(instance, ProblemKind::ImagePull)
}

/// What the backend says of the instance's problem beyond its reason.
fn problem_message(instance: &Instance) -> Option<&str> {
    instance.problem.as_ref().and_then(|p| p.message.as_deref()).filter(|m| !m.is_empty())
}

/// `image "IMAGE" cannot be pulled (REASON): MESSAGE`, the image as the spec
/// names it.
fn pull_message(image: &str, instance: &Instance) -> String {
    let why = instance.problem.as_ref().map_or("", |p| p.reason.as_str());
    match problem_message(instance) {
        Some(message) => format!("image \"{image}\" cannot be pulled ({why}): {message}"),
        None => format!("image \"{image}\" cannot be pulled ({why})"),
    }
}

/// `the server's pod cannot be created: MESSAGE` (the API server's refusal).
fn refused_message(instance: &Instance) -> String {
    match problem_message(instance) {
        Some(message) => format!("the server's pod cannot be created: {message}"),
        None => "the server's pod cannot be created".to_string(),
    }
}

/// `install script failed: LAST LINES` (what the script wrote last, as the
/// backend reports it).
fn install_message(instance: &Instance) -> String {
    match problem_message(instance) {
        Some(lines) => format!("install script failed: {lines}"),
        None => "install script failed".to_string(),
    }
}

fn crash_message(instance: &Instance) -> String {
    let n = instance.restarts;
    let times = if n == 1 { "time" } else { "times" };
    match &instance.problem {
        Some(problem) => format!("container restarted {n} {times} ({})", problem.reason),
        None => format!("container restarted {n} {times}"),
    }
}

/// " at ADDRESS:PORT" for the first published port, or as much of it as is known.
fn at(address: Option<&str>, ports: &[PublishedPort]) -> String {
    match (address, ports.first()) {
        (Some(a), Some(p)) => format!(" at {a}:{}", p.port),
        (Some(a), None) => format!(" at {a}"),
        (None, _) => String::new(),
    }
}

/// The status while the finalizer tears the server down: phase Terminating,
/// Ready False, and ShutdownFailed True with `failure` (reason, message) when
/// the last teardown attempt failed, False while it is under way. The address
/// record, restarts and the other conditions are kept as they were.
pub fn terminating(gs: &GameServer, failure: Option<(&str, &str)>, now: &Time) -> GameServerStatus {
    let mut status = gs.status.clone().unwrap_or_default();
    // Setting the deletion timestamp bumps the generation of an object with
    // finalizers; the status describes the object being deleted.
    let generation = gs.metadata.generation;
    status.phase = Some(Phase::Terminating);
    status.observed_generation = generation;
    status.starting_since = None;
    set_condition(
        &mut status.conditions,
        READY,
        false,
        reason::TERMINATING,
        "server is being deleted",
        generation,
        now,
    );
    let (failed, why, message) = match failure {
        Some((why, message)) => (true, why, message),
        None => (false, reason::SHUTTING_DOWN, "tearing down the server's runtime objects"),
    };
    set_condition(&mut status.conditions, SHUTDOWN_FAILED, failed, why, message, generation, now);
    status
}

/// The status of a GameServer whose runtime objects could not be written:
/// `Degraded=True` and `Progressing=False`, both with the backend's `reason`
/// and `message`. Whatever already runs is not observed anew and keeps its
/// phase, readiness and `observedGeneration` (the spec asked for is not what
/// runs). A server that never ran is `Failed` when the backend `refused` its
/// objects (it cannot run as specified), and `Pending` when the failure may
/// pass (the backend unreachable or failing).
pub fn apply_failed(gs: &GameServer, reason: &str, message: &str, refused: bool, now: &Time) -> GameServerStatus {
    let mut status = gs.status.clone().unwrap_or_default();
    let generation = gs.metadata.generation;
    if status.phase.is_none() {
        status.phase = Some(if refused { Phase::Failed } else { Phase::Pending });
        set_condition(&mut status.conditions, READY, false, reason, message, generation, now);
    }
    set_condition(&mut status.conditions, PROGRESSING, false, reason, message, generation, now);
    set_condition(&mut status.conditions, DEGRADED, true, reason, message, generation, now);
    status
}

/// The status of a GameServer made from a template that does not resolve
/// (its template missing, or its variables or the template refused), with
/// `reason` and `message`: `Degraded=True` and `Progressing=False`. Nothing
/// is applied for it, and nothing observed: the runtime is left as it is.
/// A server that was Running and Ready keeps that phase, readiness and
/// `observedGeneration` (the last plan that resolved still serves players,
/// and the generation refused does not run); any other is `Failed`, with
/// `Ready=False` saying why, and its `observedGeneration` the one refused.
/// The address record, restarts and players are kept as they were.
pub fn unresolved(gs: &GameServer, reason: &str, message: &str, now: &Time) -> GameServerStatus {
    let mut status = gs.status.clone().unwrap_or_default();
    let generation = gs.metadata.generation;
    let serving = status.phase == Some(Phase::Running) && is_true(&status.conditions, READY);
    if !serving {
        status.phase = Some(Phase::Failed);
        status.observed_generation = generation;
        status.starting_since = None;
        set_condition(&mut status.conditions, READY, false, reason, message, generation, now);
    }
    set_condition(&mut status.conditions, PROGRESSING, false, reason, message, generation, now);
    set_condition(&mut status.conditions, DEGRADED, true, reason, message, generation, now);
    status
}

/// Whether `next` may wait a little before it is written over `written`: it
/// is a passing phase (Pending, Starting, Stopping) with nothing failed, and
/// the server was not Ready (a server losing its readiness is reported at
/// once). A passing phase that soon gives way to the next one is then never
/// written: a server that comes up quickly costs one status write, not three.
pub fn may_settle(written: Option<&GameServerStatus>, next: &GameServerStatus) -> bool {
    matches!(next.phase, Some(Phase::Pending | Phase::Starting | Phase::Stopping))
        && !is_true(&next.conditions, DEGRADED)
        && !written.is_some_and(|w| is_true(&w.conditions, READY))
}

/// When the controller must look again although no event may come: while
/// Starting, at the moment the startup timeout expires, so that Failed is
/// reported on time even if nothing changes. `None` otherwise.
///
/// The deadline is exact: a look that lands a hair early finds the server still
/// Starting and asks again for the little time left, never a whole resync.
pub fn needs_requeue(status: &GameServerStatus, gs: &GameServer, now: &Time) -> Option<Duration> {
    needs_requeue_for(status, &gs.spec, now)
}

/// [`needs_requeue`] for the spec that runs: a templated server's resolved
/// one, whose startup timeout may be the template's.
pub fn needs_requeue_for(status: &GameServerStatus, spec: &GameServerSpec, now: &Time) -> Option<Duration> {
    if status.phase != Some(Phase::Starting) {
        return None;
    }
    let since = status.starting_since.as_ref()?;
    let timeout = SignedDuration::from_secs(i64::from(startup_timeout_seconds(spec)));
    let left = timeout - now.0.duration_since(since.0);
    // Past the deadline already (a stale status): look again at once.
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

fn startup_timeout_seconds(spec: &GameServerSpec) -> i32 {
    spec.health.as_ref().map_or_else(|| Health::default().startup_timeout_seconds, |h| h.startup_timeout_seconds)
}

/// `t` in whole seconds, rounded down.
fn whole_seconds(t: &Time) -> Time {
    Time(Timestamp::from_second(t.0.as_second()).unwrap_or(t.0))
}

/// `t` in whole seconds, rounded up.
fn seconds_after(t: &Time) -> Time {
    let rounded = whole_seconds(t);
    if rounded.0 == t.0 { rounded } else { Time(Timestamp::from_second(t.0.as_second() + 1).unwrap_or(t.0)) }
}

pub mod players;

#[cfg(test)]
mod tests;
