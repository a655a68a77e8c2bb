//! The facade's reading of what mettaton's supervisor reports from inside a
//! server that asks for players or output events (`spec.players`,
//! `spec.outputEvents`), through the backend's
//! [`Reports`](crate::orchestrator::Reports) (an exec on swarm and plain
//! Docker). The timing and the cursor are the controller's
//! ([`crate::reading`]): a server is read at most once per interval (30 s by
//! default, `Mettaton::with_report_interval`), from the `seq` after the last
//! event taken, again from 0 after its container restarted, and the first
//! read after `connect` takes only the lines seen since (those before were
//! this process's predecessor's to tell). `info`/`list` read a server with
//! `spec.players` when its read is due, the watcher's periodic look one with
//! `spec.outputEvents`; the new lines go to the event stream as
//! [`ServerEvent::Output`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::OutputEventType;
use crate::orchestrator::{Observed, Orchestrator};
use crate::plan::ServerPlan;
use crate::reading::{self, Cursor, Read};
use crate::supervisor::{EventReport, PlayersReport};

use super::ServerEvent;

/// How long one read may take before it counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// What the facade remembers of each server's reading, by id: its cursor,
/// behind a lock of its own that a look holds while it reads and computes
/// the status with what it read, so that two looks (`info` and the
/// watcher's) never read the same events, and the one that did not read
/// computes its status after the one that did.
#[derive(Debug, Default)]
pub(crate) struct Readings(Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cursor>>>>);

impl Readings {
    /// The reading of server `id`, for a look to hold.
    pub(crate) async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<Cursor> {
        let reading = self.0.lock().unwrap().entry(id.to_string()).or_default().clone();
        reading.lock_owned().await
    }

    /// Whether server `id`'s read is due at `now`, reading every `interval`
    /// (not while a look holds it: that one reads, if it is due).
    pub(crate) fn due(&self, id: &str, interval: Duration, now: Instant) -> bool {
        let Some(reading) = self.0.lock().unwrap().get(id).cloned() else { return true };
        reading.try_lock().is_ok_and(|cursor| cursor.wait_every(interval, now).is_zero())
    }

    /// The server is no longer the facade's: a new one of the name starts afresh.
    pub(crate) fn forget(&self, id: &str) {
        self.0.lock().unwrap().remove(id);
    }
}

/// The output events of `taken` as the facade's events for server `id`,
/// each with the type its reason has in `plan` (one type per reason).
pub(crate) fn output_events(id: &str, plan: &ServerPlan, taken: Vec<EventReport>) -> Vec<ServerEvent> {
    taken
        .into_iter()
        .map(|e| {
            let warning = plan.container.supervisor.as_ref().is_some_and(|s| s.warns(&e.reason));
            ServerEvent::Output {
                id: id.to_string(),
                type_: if warning { OutputEventType::Warning } else { OutputEventType::Normal },
                reason: e.reason,
                line: e.line,
            }
        })
        .collect()
}

/// Reads the report of server `id` (of `plan`, as `observed`) when it asks
/// for one, runs, and its read is due by `cursor` (held: [`Readings::lock`])
/// ([`reading::read`]); sends its new output events through `send`; returns
/// the players read (`None` when nothing was read, or the report counts
/// none). A failed read is logged and changes nothing: the next is due an
/// interval later.
pub(crate) async fn read_due<B: Orchestrator>(
    backend: &B,
    cursor: &mut Cursor,
    (interval, started_ms): (Duration, u64),
    (id, plan, observed): (&str, &ServerPlan, &Observed),
    send: impl Fn(ServerEvent),
) -> Option<PlayersReport> {
    let reader = reading::reader(backend, plan, observed)?;
    match reading::read(reader, plan, cursor, (interval, READ_TIMEOUT, started_ms)).await {
        Read::NotDue(_) => None,
        Read::Done { players, events, .. } => {
            output_events(id, plan, events).into_iter().for_each(send);
            players
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ServerPlan {
        let spec = serde_json::json!({
            "image": "game", "command": ["/game"], "ports": [{ "name": "game", "containerPort": 7777 }],
            "outputEvents": [
                { "line": "saved world", "reason": "WorldSaved" },
                { "line": "regex:^\\[Server\\] ", "reason": "ServerSaid", "type": "Warning" }
            ]
        });
        crate::plan::plan_spec("arena", "games", &serde_json::from_value(spec).unwrap())
    }

    #[test]
    fn each_line_is_an_event_of_its_server_with_the_type_of_its_reason() {
        let taken = [
            EventReport { seq: 0, reason: "ServerSaid".into(), line: "[Server] hi".into(), at: "1".into() },
            EventReport { seq: 1, reason: "WorldSaved".into(), line: "saved world".into(), at: "2".into() },
        ];
        let events = output_events("games/arena", &plan(), taken.to_vec());
        assert_eq!(
            events,
            [
                ServerEvent::Output {
                    id: "games/arena".into(),
                    reason: "ServerSaid".into(),
                    type_: OutputEventType::Warning,
                    line: "[Server] hi".into()
                },
                ServerEvent::Output {
                    id: "games/arena".into(),
                    reason: "WorldSaved".into(),
                    type_: OutputEventType::Normal,
                    line: "saved world".into()
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_server_is_due_at_once_then_once_per_interval_and_not_while_a_look_holds_it() {
        let readings = Readings::default();
        let every = Duration::from_secs(30);
        let t0 = Instant::now();
        assert!(readings.due("a", every, t0), "never read: due");
        let mut held = readings.lock("a").await;
        assert!(!readings.due("a", every, t0), "held by a look: that one reads");
        assert!(readings.due("b", every, t0), "each server on its own");
        held.read_at = Some(t0);
        drop(held);
        assert!(!readings.due("a", every, t0 + Duration::from_secs(29)));
        assert!(readings.due("a", every, t0 + every));
        // Forgotten (shut down): a new one of the name is read at once.
        readings.forget("a");
        assert!(readings.due("a", every, t0 + Duration::from_secs(1)));
    }
}
