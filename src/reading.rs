//! The controller's reading of what mettaton's supervisor reports from inside
//! each running server that asks for players or output events
//! (`spec.players`, `spec.outputEvents`): when to read it, from which event
//! on, and which of the events it returns are new. The decisions ([`Cursor`])
//! are pure, the clock and the report passed in; [`read`] is the one read of
//! a due report through the backend's [`Reports`], which the controller and
//! the facade both call, each publishing what it gives its own way.
//!
//! # Cost
//! A server is read at most once per [`INTERVAL`], whatever wakes its
//! reconcile, and the controller requeues a running server that asks for a
//! report so that it is read every [`INTERVAL`]: one request per server per
//! 30 s in steady state (2 a minute), and the status written only when the
//! players changed.
//!
//! # Events once
//! Each read asks for the events from the `seq` after the last one taken
//! (`since`). A container that restarted has a new `boot`, whose `seq` count
//! from 0 again: read again from 0. The first read of a server after the
//! controller started asks from 0 and takes only the events seen since the
//! controller started: those before were published by the controller that ran
//! then, or happened while none ran (a leader's hand-over) and are not
//! published at all; none is published twice.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::api::PlayersStatus;
use crate::orchestrator::{BackendError, Observed, Orchestrator, Reports};
use crate::plan::ServerPlan;
use crate::supervisor::{EventReport, PlayersReport, Report};

/// How often a server's report is read at most (and, while it runs, at
/// least): the players in the status are at most this far behind the game
/// (plus one read's round trip).
pub const INTERVAL: Duration = Duration::from_secs(30);

/// What the controller remembers of one server between reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cursor {
    /// The incarnation (uid) of the GameServer it is about: another one
    /// starts afresh.
    pub uid: Option<String>,
    /// When the report was last read (or tried), on the controller's clock.
    pub read_at: Option<Instant>,
    /// The `boot` of the report read last; `None` before the first read.
    pub boot: Option<String>,
    /// The `seq` of the first event not taken yet in that boot.
    pub next_seq: u64,
    /// Reads that failed in a row.
    pub failures: u32,
    /// `status.players` as this controller computed it last: newer than what
    /// its cache of the GameServer may show.
    pub players: Option<PlayersStatus>,
}

/// What a report read with a given `since` gives.
#[derive(Debug, PartialEq)]
pub enum Taken<'a> {
    /// The events to publish, oldest first, and how many were lost before
    /// them (more than the supervisor keeps came between two reads).
    Events { events: Vec<&'a EventReport>, lost: u64 },
    /// The container restarted since the last read: its first events were
    /// not asked for. Read again from 0.
    ReadAgain,
}

impl Cursor {
    /// This cursor, for the GameServer of `uid`: one of another incarnation
    /// is started afresh.
    pub fn of(&mut self, uid: Option<String>) -> &mut Cursor {
        if self.uid != uid {
            *self = Cursor { uid, ..Cursor::default() };
        }
        self
    }

    /// How long until the next read is due at `now`; zero when it is.
    pub fn wait(&self, now: Instant) -> Duration {
        self.wait_every(INTERVAL, now)
    }

    /// [`Cursor::wait`] for a reader that reads every `interval` instead of
    /// [`INTERVAL`] (the library, told so by its caller).
    pub fn wait_every(&self, interval: Duration, now: Instant) -> Duration {
        match self.read_at {
            Some(at) => (at + interval).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    /// The `since` of the next read.
    pub fn since(&self) -> u64 {
        if self.boot.is_some() { self.next_seq } else { 0 }
    }

    /// Whether `report`, read with `since`, is of a container that restarted
    /// since the last read, and misses its first events: read it again from 0.
    pub fn read_again(&self, report: &Report, since: u64) -> bool {
        since > 0 && self.boot.as_deref().is_some_and(|boot| boot != report.boot)
    }

    /// Takes `report`, read with `since` at the controller's start time
    /// `started_ms` (unix milliseconds): the events that are new, remembered
    /// as taken.
    pub fn take<'a>(&mut self, report: &'a Report, since: u64, started_ms: u64) -> Taken<'a> {
        if self.read_again(report, since) {
            return Taken::ReadAgain;
        }
        let first_read = self.boot.is_none();
        let events: Vec<&EventReport> = report
            .events
            .iter()
            .filter(|e| e.seq >= since)
            .filter(|e| !first_read || e.at.parse::<u64>().is_ok_and(|at| at >= started_ms))
            .collect();
        let lost = if first_read { 0 } else { report.events.first().map_or(0, |e| e.seq.saturating_sub(since)) };
        self.boot = Some(report.boot.clone());
        self.next_seq = report.next_seq;
        Taken::Events { events, lost }
    }
}

/// Unix time now in milliseconds: when a reader started, from which the first
/// read of each server takes its events ([`Cursor::take`]).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The backend's reader of the report of a server that asks for one (its
/// players or output events) and whose game runs; `None` otherwise.
pub fn reader<'a, O: Orchestrator>(backend: &'a O, plan: &ServerPlan, observed: &Observed) -> Option<&'a impl Reports> {
    plan.container.supervisor.as_ref().filter(|s| s.reports())?;
    if !observed.instance.as_ref().is_some_and(|i| i.running) {
        return None;
    }
    backend.reports()
}

/// What [`read`] did.
#[derive(Debug, PartialEq)]
pub enum Read {
    /// Not due yet: due in this long.
    NotDue(Duration),
    /// Read, or tried.
    Done {
        /// The players the report counts (`None` when nothing was read, or it
        /// counts none).
        players: Option<PlayersReport>,
        /// The new matched lines, oldest first.
        events: Vec<EventReport>,
        /// Each request that found an instance to ask (two when the first
        /// showed a restarted container): whether it was answered.
        answers: Vec<bool>,
    },
}

/// Reads the report of `plan`'s server through `reader` when `cursor` says a
/// read every `interval` is due, and takes what is new in it ([`Cursor`]):
/// again from 0 when its container restarted, the first read after the
/// reader started at `started_ms` only from then on. A read that takes
/// longer than `timeout` failed. A failed read is logged (once, then every
/// 20th in a row) and gives nothing; the next is due an interval later.
pub async fn read(
    reader: &impl Reports,
    plan: &ServerPlan,
    cursor: &mut Cursor,
    (interval, timeout, started_ms): (Duration, Duration, u64),
) -> Read {
    let now = Instant::now();
    let wait = cursor.wait_every(interval, now);
    if !wait.is_zero() {
        return Read::NotDue(wait);
    }
    cursor.read_at = Some(now);
    let server = format!("{}/{}", plan.namespace, plan.name);
    let read = |since: u64| {
        let server = &server;
        async move {
            match tokio::time::timeout(timeout, reader.report(plan, since)).await {
                Ok(result) => result,
                Err(_) => Err(BackendError::Other {
                    what: format!("read the supervisor's report of server {server}"),
                    reason: format!("no answer within {} s", timeout.as_secs()),
                }),
            }
        }
    };
    let mut answers = Vec::new();
    let mut answer = |result: &Result<Option<Report>, BackendError>| {
        if !matches!(result, Ok(None)) {
            answers.push(result.is_ok());
        }
    };
    let mut since = cursor.since();
    let mut result = read(since).await;
    answer(&result);
    if let Ok(Some(report)) = &result
        && cursor.read_again(report, since)
    {
        since = 0;
        result = read(since).await;
        answer(&result);
    }
    match result {
        Ok(Some(report)) => {
            if cursor.failures > 0 {
                info!(server, failures = cursor.failures, "the supervisor's report is read again");
            }
            cursor.failures = 0;
            // A report read from 0 is never to be read again.
            let events = match cursor.take(&report, since, started_ms) {
                Taken::Events { events, lost } => {
                    if lost > 0 {
                        warn!(server, lost, "lines matched by spec.outputEvents were dropped before they were read");
                    }
                    events.into_iter().cloned().collect()
                }
                Taken::ReadAgain => Vec::new(),
            };
            Read::Done { players: report.players, events, answers }
        }
        Ok(None) => Read::Done { players: None, events: Vec::new(), answers },
        Err(e) => {
            cursor.failures = cursor.failures.saturating_add(1);
            // Once when it starts failing, then now and then: a thousand
            // servers failing alike must not flood the log.
            if cursor.failures == 1 || cursor.failures.is_multiple_of(20) {
                warn!(server, error = %e, failures = cursor.failures, "could not read the supervisor's report (players and output events wait for the next read)");
            } else {
                debug!(server, error = %e, failures = cursor.failures, "could not read the supervisor's report");
            }
            Read::Done { players: None, events: Vec::new(), answers }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, at: u64) -> EventReport {
        EventReport { seq, reason: "Chat".into(), line: format!("line {seq}"), at: at.to_string() }
    }

    fn report(boot: &str, events: Vec<EventReport>, next_seq: u64) -> Report {
        Report { boot: boot.into(), ready: true, players: None, events, next_seq }
    }

    fn seqs(taken: Taken) -> (Vec<u64>, u64) {
        match taken {
            Taken::Events { events, lost } => (events.iter().map(|e| e.seq).collect(), lost),
            Taken::ReadAgain => panic!("read again"),
        }
    }

    #[test]
    fn a_server_is_read_at_once_then_every_interval() {
        let t0 = Instant::now();
        let mut c = Cursor::default();
        assert_eq!(c.wait(t0), Duration::ZERO, "never read: now");
        c.read_at = Some(t0);
        assert_eq!(c.wait(t0), INTERVAL);
        assert_eq!(c.wait(t0 + Duration::from_secs(10)), Duration::from_secs(20));
        assert_eq!(c.wait(t0 + INTERVAL), Duration::ZERO);
        assert_eq!(c.wait(t0 + INTERVAL + Duration::from_secs(5)), Duration::ZERO, "overdue: now");
        let every = Duration::from_secs(2);
        assert_eq!(c.wait_every(every, t0 + Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(c.wait_every(every, t0 + every), Duration::ZERO);
    }

    #[test]
    fn the_first_read_after_the_controller_started_takes_only_what_came_since() {
        let started = 1_000_000;
        let mut c = Cursor::default();
        assert_eq!(c.since(), 0);
        let r = report(
            "b1",
            vec![event(0, started - 5), event(1, started - 1), event(2, started), event(3, started + 9)],
            4,
        );
        assert_eq!(seqs(c.take(&r, 0, started)), (vec![2, 3], 0));
        assert_eq!((c.boot.as_deref(), c.since()), (Some("b1"), 4));
        // The next read asks from 4 and takes all it gets, whenever it happened.
        let r = report("b1", vec![event(4, started + 20)], 5);
        assert_eq!(seqs(c.take(&r, 4, started)), (vec![4], 0));
        assert_eq!(c.since(), 5);
        // Nothing new: nothing taken, nothing moves.
        assert_eq!(seqs(c.take(&report("b1", vec![], 5), 5, started)), (vec![], 0));
        assert_eq!(c.since(), 5);
    }

    #[test]
    fn a_restarted_container_is_read_again_from_its_first_event() {
        let mut c = Cursor { boot: Some("b1".into()), next_seq: 7, ..Default::default() };
        let r = report("b2", vec![event(7, 5)], 8);
        assert!(c.read_again(&r, 7));
        assert_eq!(c.take(&r, 7, 0), Taken::ReadAgain);
        assert_eq!((c.boot.as_deref(), c.next_seq), (Some("b1"), 7), "nothing taken");
        // Read from 0: every event of the new boot is new (it started after
        // the last read of the old one), old as it may be.
        let r = report("b2", vec![event(0, 1), event(1, 2), event(7, 5)], 8);
        assert!(!c.read_again(&r, 0));
        assert_eq!(seqs(c.take(&r, 0, u64::MAX)), (vec![0, 1, 7], 0));
        assert_eq!((c.boot.as_deref(), c.since()), (Some("b2"), 8));
        // A boot whose first read was from 0 already (no event before): taken.
        let mut c = Cursor { boot: Some("b1".into()), next_seq: 0, ..Default::default() };
        assert_eq!(seqs(c.take(&report("b2", vec![event(0, 1)], 1), 0, u64::MAX)), (vec![0], 0));
    }

    #[test]
    fn events_the_supervisor_no_longer_kept_are_counted_as_lost() {
        let mut c = Cursor { boot: Some("b1".into()), next_seq: 10, ..Default::default() };
        let r = report("b1", vec![event(150, 1), event(151, 2)], 152);
        assert_eq!(seqs(c.take(&r, 10, 0)), (vec![150, 151], 140));
        assert_eq!(c.since(), 152);
    }

    /// The `since` a request is expected with, and the answer it gets.
    type Answer = (u64, Result<Option<Report>, BackendError>);

    /// A backend's reader answering from a script: each request takes the
    /// next answer, and checks the `since` it was asked with.
    struct Scripted(std::sync::Mutex<Vec<Answer>>);

    impl Reports for Scripted {
        async fn report(&self, _: &ServerPlan, since: u64) -> Result<Option<Report>, BackendError> {
            let (asked, answer) = self.0.lock().unwrap().remove(0);
            assert_eq!(since, asked, "asked from the wrong seq");
            answer
        }
    }

    fn scripted(answers: Vec<Answer>) -> Scripted {
        Scripted(std::sync::Mutex::new(answers))
    }

    fn plan() -> ServerPlan {
        let spec = serde_json::json!({
            "image": "game", "command": ["/game"], "ports": [{ "name": "game", "containerPort": 7777 }],
            "outputEvents": [{ "line": "saved", "reason": "Chat" }]
        });
        crate::plan::plan_spec("arena", "games", &serde_json::from_value(spec).unwrap())
    }

    const TIMING: (Duration, Duration, u64) = (INTERVAL, Duration::from_secs(5), 0);

    #[tokio::test]
    async fn a_due_read_takes_the_new_events_once_and_a_restarted_container_is_read_again_from_0() {
        let plan = plan();
        let mut c = Cursor { boot: Some("b1".into()), next_seq: 3, ..Default::default() };
        let reader = scripted(vec![
            (3, Ok(Some(report("b1", vec![event(3, 1)], 4)))),
            // Restarted: asked from 4, its first events are asked for again.
            (4, Ok(Some(report("b2", vec![], 2)))),
            (0, Ok(Some(report("b2", vec![event(0, 1), event(1, 2)], 2)))),
        ]);
        let Read::Done { events, answers, .. } = read(&reader, &plan, &mut c, TIMING).await else { panic!("due") };
        assert_eq!((events.iter().map(|e| e.seq).collect::<Vec<_>>(), answers), (vec![3], vec![true]));
        // Read just now: not due again for an interval.
        assert!(
            matches!(read(&reader, &plan, &mut c, TIMING).await, Read::NotDue(w) if w > INTERVAL - Duration::from_secs(1))
        );
        c.read_at = None;
        let Read::Done { events, answers, .. } = read(&reader, &plan, &mut c, TIMING).await else { panic!("due") };
        assert_eq!((events.iter().map(|e| e.seq).collect::<Vec<_>>(), answers), (vec![0, 1], vec![true, true]));
        assert_eq!((c.boot.as_deref(), c.since()), (Some("b2"), 2));
    }

    #[tokio::test]
    async fn a_failed_read_gives_nothing_and_is_counted_and_no_instance_is_no_answer() {
        let plan = plan();
        let mut c = Cursor::default();
        let failed = BackendError::Other { what: "read".into(), reason: "refused".into() };
        let reader = scripted(vec![(0, Err(failed)), (0, Ok(None))]);
        let done = read(&reader, &plan, &mut c, TIMING).await;
        assert_eq!(done, Read::Done { players: None, events: vec![], answers: vec![false] });
        assert_eq!((c.failures, c.boot.clone()), (1, None));
        c.read_at = None;
        let done = read(&reader, &plan, &mut c, TIMING).await;
        assert_eq!(done, Read::Done { players: None, events: vec![], answers: vec![] });
    }
}
