//! The controller's reading of what mettaton's supervisor reports from inside
//! each running server that asks for players or output events
//! (`spec.players`, `spec.outputEvents`): when to read it, from which event
//! on, and which of the events it returns are new. Pure: the clock and the
//! report are passed in; the controller does the reading (through the
//! backend's [`Reports`](crate::orchestrator::Reports)) and the publishing.
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

use crate::api::PlayersStatus;
use crate::supervisor::{EventReport, Report};

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
}
