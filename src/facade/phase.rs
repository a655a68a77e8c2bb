//! The facade's side of the one phase model: a server's phase, readiness and
//! problem are what [`crate::status::compute_for`] says, as for the
//! controller. What the controller keeps in the GameServer between looks (the
//! previous status, the spec's generation) the facade keeps in memory, per
//! server ([`Statuses`]), so that what depends on history (the startup
//! deadline, a new start after a restart or an update, `lastTransitionTime`)
//! goes as it goes on Kubernetes. Pure: `now` is passed in.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{DEGRADED, READY};
use crate::api::{GameServerSpec, GameServerStatus, Phase};
use crate::orchestrator::Observed;
use crate::status::{self, is_true};
use crate::supervisor::PlayersReport;

/// The problem of a server whose workload is gone from the backend.
pub(crate) const GONE: &str = "the server is gone from the backend (its swarm service or Docker container was removed)";

/// What the facade remembers of one server between looks.
#[derive(Clone, Debug)]
struct Seen {
    /// The spec the status was computed for.
    spec: GameServerSpec,
    /// Counts the spec's changes, from 1: the GameServer's
    /// `metadata.generation`, where no API server keeps one.
    generation: i64,
    status: GameServerStatus,
}

/// The status the facade computed last for each server, by id. In memory: a
/// new process starts afresh, as a controller does with a GameServer that has
/// no status yet.
#[derive(Debug, Default)]
pub(crate) struct Statuses(HashMap<String, Seen>);

impl Statuses {
    /// The status of server `id`, of `spec`, from what the backend shows now,
    /// computed over the one computed last, which it replaces. A spec that
    /// differs from the last one computed for (an `apply`, of this facade or
    /// another process) is a new generation. `read`: the players its
    /// supervisor's report gave just now, if it was read ([`status::players`]:
    /// else those computed last are kept, or nobody while the game does not run).
    pub(crate) fn observe(
        &mut self,
        id: &str,
        spec: &GameServerSpec,
        observed: &Observed,
        read: Option<&PlayersReport>,
        now: &Time,
    ) -> GameServerStatus {
        let last = self.0.get(id);
        let generation = match last {
            Some(seen) if seen.spec == *spec => seen.generation,
            Some(seen) => seen.generation + 1,
            None => 1,
        };
        let mut status = status::compute_for(spec, Some(generation), last.map(|s| &s.status), observed, now);
        if spec.players.is_some()
            && let Some(read) = read
        {
            status.players = Some(status::players::read(status.players.as_ref(), read.count, &read.names, now));
        }
        self.0.insert(id.to_string(), Seen { spec: spec.clone(), generation, status: status.clone() });
        status
    }

    /// The server is no longer the facade's (shut down, or its spawn failed).
    pub(crate) fn forget(&mut self, id: &str) {
        self.0.remove(id);
    }
}

/// A computed status in the words of `ServerInfo`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reading {
    pub(crate) phase: Phase,
    /// The Ready condition: the instance runs the latest spec and passes its
    /// readiness check.
    pub(crate) healthy: bool,
    /// The message of the failing condition (Degraded), with the backend's
    /// word for the instance's problem when it does not say it already; the
    /// backend's word alone when nothing failed yet (a server starting again
    /// after its container exited, one whose probe gets no answer).
    pub(crate) problem: Option<String>,
}

/// What `status` (computed from `observed`) says. A workload gone from the
/// backend is Failed ([`GONE`]): the facade spawned it, and nothing will make
/// it again (the controller's model calls it Pending, since it creates it).
pub(crate) fn read(status: &GameServerStatus, observed: &Observed) -> Reading {
    if observed.workload.is_none() {
        return Reading { phase: Phase::Failed, healthy: false, problem: Some(GONE.to_string()) };
    }
    let degraded = status::condition(&status.conditions, DEGRADED).filter(|c| c.status == "True");
    let said = observed.instance.as_ref().and_then(|i| i.problem.as_ref()).map(|p| p.reason.as_str());
    let problem = match (degraded.map(|c| c.message.as_str()), said) {
        (Some(failed), Some(said)) if !failed.contains(said) => Some(format!("{failed}: {said}")),
        (Some(failed), _) => Some(failed.to_string()),
        (None, said) => said.map(str::to_string),
    };
    Reading { phase: status.phase.unwrap_or(Phase::Pending), healthy: is_true(&status.conditions, READY), problem }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::api::{DesiredState, Protocol, PublishedPort};
    use crate::orchestrator::observed::{Problem, ProblemKind};
    use crate::orchestrator::{Endpoint, Instance, Workload};

    const ID: &str = "games/arena";

    fn at_second(s: i64) -> Time {
        Time(Timestamp::from_second(1_767_225_600 + s).unwrap())
    }

    fn spec(state: DesiredState, startup_timeout: i32) -> GameServerSpec {
        serde_json::from_value(serde_json::json!({
            "image": "game:1",
            "state": state,
            "ports": [{ "name": "game", "containerPort": 7777 }],
            "health": { "startupTimeoutSeconds": startup_timeout },
        }))
        .unwrap()
    }

    fn instance(ready: bool, restarts: i32, problem: Option<Problem>) -> Instance {
        Instance { name: "c1".into(), running: problem.is_none(), ready, restarts, problem, terminating: false }
    }

    fn observed(rolled_out: bool, instance: Option<Instance>) -> Observed {
        let desired = i32::from(instance.is_some());
        Observed {
            workload: Some(Workload { desired, ready: 0, rolled_out, existing: desired }),
            instance,
            endpoint: Endpoint {
                address: Some("127.0.0.1".into()),
                ports: vec![PublishedPort { name: "game".into(), port: 30001, protocol: Protocol::TCP }],
            },
            backend_ref: Some("svc1".into()),
        }
    }

    /// One look: the status computed and remembered, and how it reads.
    fn look(statuses: &mut Statuses, spec: &GameServerSpec, observed: &Observed, second: i64) -> Reading {
        read(&statuses.observe(ID, spec, observed, None, &at_second(second)), observed)
    }

    #[test]
    fn a_ready_instance_is_running_and_healthy_and_stays_ready_since_it_became_so() {
        let mut statuses = Statuses::default();
        let spec = spec(DesiredState::Running, 600);
        assert_eq!(
            look(&mut statuses, &spec, &observed(true, Some(instance(false, 0, None))), 0),
            Reading { phase: Phase::Starting, healthy: false, problem: None }
        );
        let up = observed(true, Some(instance(true, 0, None)));
        assert_eq!(
            look(&mut statuses, &spec, &up, 10),
            Reading { phase: Phase::Running, healthy: true, problem: None }
        );
        let status = statuses.observe(ID, &spec, &up, None, &at_second(50));
        let ready = status::condition(&status.conditions, READY).unwrap();
        assert_eq!(ready.last_transition_time, at_second(10), "Ready since it became so, not since the last look");
    }

    #[test]
    fn a_stopped_server_is_stopping_while_its_instance_exists_then_stopped() {
        let mut statuses = Statuses::default();
        let stopped = spec(DesiredState::Stopped, 600);
        let going = observed(true, Some(Instance { terminating: true, ..instance(false, 0, None) }));
        assert_eq!(look(&mut statuses, &stopped, &going, 0).phase, Phase::Stopping);
        let gone = Observed { workload: Some(Workload { desired: 0, ..Default::default() }), ..Default::default() };
        assert_eq!(
            look(&mut statuses, &stopped, &gone, 5),
            Reading { phase: Phase::Stopped, healthy: false, problem: None }
        );
    }

    #[test]
    fn a_crash_looping_instance_is_failed_with_the_crash_and_the_backends_reason() {
        let mut statuses = Statuses::default();
        let spec = spec(DesiredState::Running, 600);
        let why = Problem::new(ProblemKind::CrashLoop, "restarting (exit code 1)", None);
        let crashing = observed(true, Some(instance(false, 3, Some(why))));
        let r = look(&mut statuses, &spec, &crashing, 0);
        assert_eq!(r.phase, Phase::Failed);
        assert!(!r.healthy);
        assert_eq!(r.problem.as_deref(), Some("container restarted 3 times (restarting (exit code 1))"));
    }

    #[test]
    fn the_startup_deadline_counts_from_the_first_look_that_saw_the_start() {
        let mut statuses = Statuses::default();
        let spec = spec(DesiredState::Running, 30);
        let starting = observed(true, Some(instance(false, 0, None)));
        assert_eq!(look(&mut statuses, &spec, &starting, 0).phase, Phase::Starting);
        assert_eq!(look(&mut statuses, &spec, &starting, 29).phase, Phase::Starting);
        let r = look(&mut statuses, &spec, &starting, 30);
        assert_eq!(r.phase, Phase::Failed);
        assert_eq!(r.problem.as_deref(), Some("not ready after 30s (health.startupTimeoutSeconds)"));
        // Forgotten (shut down, spawned again), the clock starts again.
        statuses.forget(ID);
        assert_eq!(look(&mut statuses, &spec, &starting, 40).phase, Phase::Starting);
    }

    #[test]
    fn a_changed_spec_rolling_out_is_a_new_start_with_its_own_deadline() {
        let mut statuses = Statuses::default();
        let old = spec(DesiredState::Running, 30);
        let starting = observed(true, Some(instance(false, 0, None)));
        look(&mut statuses, &old, &starting, 0);
        assert_eq!(look(&mut statuses, &old, &starting, 30).phase, Phase::Failed);
        // The same spec again is the same start: still Failed.
        assert_eq!(
            look(&mut statuses, &old, &observed(false, Some(instance(false, 0, None))), 35).phase,
            Phase::Failed
        );
        let new = GameServerSpec { image: "game:2".into(), ..old };
        let rolling = observed(false, Some(instance(false, 0, None)));
        assert_eq!(look(&mut statuses, &new, &rolling, 40).phase, Phase::Starting);
        assert_eq!(look(&mut statuses, &new, &starting, 69).phase, Phase::Starting);
        assert_eq!(look(&mut statuses, &new, &starting, 70).phase, Phase::Failed);
    }

    #[test]
    fn a_running_instance_the_probe_gets_no_answer_from_says_so() {
        let mut statuses = Statuses::default();
        let spec = spec(DesiredState::Running, 600);
        look(&mut statuses, &spec, &observed(true, Some(instance(true, 0, None))), 0);
        let probe = "the TCP readiness probe of port 30001 gets no answer";
        let silent =
            Instance { running: true, ..instance(false, 0, Some(Problem::new(ProblemKind::Other, probe, None))) };
        let r = look(&mut statuses, &spec, &observed(true, Some(silent)), 10);
        assert_eq!((r.healthy, r.problem.as_deref()), (false, Some(probe)));
    }

    #[test]
    fn the_players_read_are_kept_between_reads_and_nobody_plays_once_the_game_stopped() {
        let mut statuses = Statuses::default();
        let mut spec = spec(DesiredState::Running, 600);
        spec.players = Some(
            serde_json::from_value(serde_json::json!({
                "joinLine": ["regex:^(\\S+) joined"], "leaveLine": ["regex:^(\\S+) left"]
            }))
            .unwrap(),
        );
        let up = observed(true, Some(instance(true, 0, None)));
        let players = |s: &GameServerStatus| s.players.as_ref().map(|p| (p.count, p.names.clone()));
        let at = |statuses: &mut Statuses, read: Option<&PlayersReport>, second| {
            statuses.observe(ID, &spec, &up, read, &at_second(second))
        };
        assert_eq!(players(&at(&mut statuses, None, 0)), None, "never read: unknown");
        let two = PlayersReport { count: 2, names: vec!["zoe".into(), "adam".into()] };
        let read = at(&mut statuses, Some(&two), 5);
        assert_eq!(players(&read), Some((2, vec!["adam".to_string(), "zoe".to_string()])));
        assert_eq!(read.players.unwrap().last_change_time, Some(at_second(5)));
        // A look without a read keeps them, their time too.
        let kept = at(&mut statuses, None, 20);
        assert_eq!(kept.players.unwrap().last_change_time, Some(at_second(5)));
        let one = PlayersReport { count: 1, names: vec!["zoe".into()] };
        assert_eq!(players(&at(&mut statuses, Some(&one), 35)), Some((1, vec!["zoe".to_string()])));
        // The game stopped: nobody.
        let down = observed(true, Some(Instance { running: false, ..instance(false, 0, None) }));
        let stopped = statuses.observe(ID, &spec, &down, None, &at_second(40));
        assert_eq!(players(&stopped), Some((0, vec![])));
        // Without spec.players, a report's players are no status.
        let plain = super::tests::spec(DesiredState::Running, 600);
        assert_eq!(statuses.observe("other", &plain, &up, Some(&two), &at_second(0)).players, None);
    }

    #[test]
    fn a_workload_gone_from_the_backend_is_failed_whatever_the_spec() {
        for state in [DesiredState::Running, DesiredState::Stopped] {
            let mut statuses = Statuses::default();
            let r = look(&mut statuses, &spec(state, 600), &Observed::default(), 0);
            assert_eq!(r, Reading { phase: Phase::Failed, healthy: false, problem: Some(GONE.to_string()) });
        }
    }
}
