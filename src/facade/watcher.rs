//! The facade's watcher: tells the caller what happens to the servers without
//! being asked. The engine's event stream says at once when a server's
//! container dies or starts; a periodic look at the services finds those
//! removed behind the facade's back and whether the daemon still answers,
//! and reads the supervisor's report of the servers with `spec.outputEvents`
//! when their read is due (`reports`), for their new lines.
//!
//! Across a daemon restart (or any time the daemon stops answering) the stream
//! reports, in order: `DaemonLost` once, `DaemonBack` once it answers again,
//! then `Restarted` for each server whose container runs again (a daemon
//! restart stops every container; swarm starts new ones). The decisions are in
//! [`Tracker`], which does no I/O, so that they are unit-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::broadcast;

use super::state::{SavedServer, State, server_id};
use super::{ServerEvent, Shared, plan_of};
use crate::orchestrator::{BackendError, InstanceEventKind, Standalone};

/// How many servers' reports the watcher reads at once.
const READS_AT_ONCE: usize = 8;

/// What a container event means for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Happened {
    /// The server's container ended while the server should run; `cause`
    /// when the engine said why before (out of memory, unhealthy).
    Died { id: String, cause: Option<Cause> },
    /// The server's health check failed: swarm replaces its container.
    Unhealthy { id: String },
    /// The container of a server that had died (or was out with the daemon)
    /// started again.
    Restarted { id: String },
}

/// What the watcher remembers between events: whether the daemon answers, and
/// which servers are down (their container died, or the daemon went away with
/// them) and not yet seen starting again.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    lost_since: Option<Instant>,
    down: BTreeSet<String>,
    /// What the engine said of a server's container before it ended.
    causes: BTreeMap<String, Cause>,
}

/// Why a container ended, as the engine said before its exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    OutOfMemory,
    Unhealthy,
}

/// The `reason` of a `Died` event.
pub(crate) fn death_reason(cause: Option<Cause>, exit_code: Option<i64>) -> String {
    let code = exit_code.map_or_else(String::new, |c| format!(" (exit code {c})"));
    match cause {
        Some(Cause::OutOfMemory) => format!("out of memory: the kernel killed it at its memory limit{code}"),
        Some(Cause::Unhealthy) => format!("unhealthy: its health check failed and swarm replaced it{code}"),
        None => match exit_code {
            Some(c) => format!("the container exited with code {c}"),
            None => "the container stopped".to_string(),
        },
    }
}

impl Tracker {
    /// The daemon did not answer. The first time: `DaemonLost`, and every
    /// server that should run (`running`) counts as down until its container
    /// starts again. `None` while it is still lost.
    pub(crate) fn daemon_failed(
        &mut self,
        reason: String,
        running: impl IntoIterator<Item = String>,
        now: Instant,
    ) -> Option<ServerEvent> {
        if self.lost_since.is_some() {
            return None;
        }
        self.lost_since = Some(now);
        self.down.extend(running);
        Some(ServerEvent::DaemonLost { reason })
    }

    /// The daemon answered: `DaemonBack` with how long it was lost for, the
    /// first time after it was lost; else `None`.
    pub(crate) fn daemon_answered(&mut self, now: Instant) -> Option<ServerEvent> {
        let since = self.lost_since.take()?;
        Some(ServerEvent::DaemonBack { after: now.saturating_duration_since(since) })
    }

    /// A container event of server `id`; `keeps_running` says whether the
    /// facade knows the server and it should run (one shut down or stopped
    /// exits on purpose, and one not known is not the caller's).
    pub(crate) fn container(&mut self, id: &str, kind: InstanceEventKind, keeps_running: bool) -> Option<Happened> {
        match kind {
            InstanceEventKind::OutOfMemory if keeps_running => {
                self.causes.insert(id.to_string(), Cause::OutOfMemory);
                None
            }
            InstanceEventKind::Unhealthy if keeps_running => {
                // An out-of-memory kill said first stays the cause.
                self.causes.entry(id.to_string()).or_insert(Cause::Unhealthy);
                Some(Happened::Unhealthy { id: id.to_string() })
            }
            InstanceEventKind::Exited { .. } if keeps_running => {
                self.down.insert(id.to_string());
                Some(Happened::Died { id: id.to_string(), cause: self.causes.remove(id) })
            }
            InstanceEventKind::Exited { .. } => {
                self.causes.remove(id);
                None
            }
            InstanceEventKind::Started if self.down.remove(id) => {
                // Shut down meanwhile: its start (if any) is not a restart.
                keeps_running.then(|| Happened::Restarted { id: id.to_string() })
            }
            _ => None,
        }
    }

    /// The server is no longer the facade's (shut down, vanished).
    pub(crate) fn forget(&mut self, id: &str) {
        self.down.remove(id);
        self.causes.remove(id);
    }

    /// Whether the daemon is currently lost.
    pub(crate) fn lost(&self) -> bool {
        self.lost_since.is_some()
    }
}

/// The ids of the saved servers that should run.
fn running(state: &Mutex<State>) -> Vec<String> {
    let state = state.lock().unwrap();
    state.servers.iter().filter(|(_, s)| s.spec.state == Default::default()).map(|(id, _)| id.clone()).collect()
}

/// The watcher task: runs until aborted.
pub(crate) async fn watch<B: Standalone>(
    backend: Arc<B>,
    state: Arc<Mutex<State>>,
    shared: Arc<Shared>,
    state_path: std::path::PathBuf,
    events: broadcast::Sender<ServerEvent>,
    period: Duration,
) {
    // Other processes (another `mettaton swarm apply`) change the state file:
    // it is read again when it changed, so that their servers are watched too.
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut last_modified = modified(&state_path);
    use futures::StreamExt;
    let send = |e: ServerEvent| {
        let _ = events.send(e);
    };
    // Events are asked for from this moment on; when the stream breaks it is
    // opened again from the last event seen, so that what the daemon did
    // meanwhile (it keeps its recent events) is not missed.
    let mut since = SystemTime::now();
    let mut engine = backend.instance_events(Some(since));
    let mut poll = tokio::time::interval(period);
    let mut present: BTreeMap<String, bool> = BTreeMap::new();
    let mut tracker = Tracker::default();
    loop {
        tokio::select! {
            event = engine.next() => match event {
                Some(Ok(e)) => {
                    // A stopping daemon refuses new connections (its socket is
                    // gone) but still sends the exits of the containers it
                    // stops on the open stream: it is back only once a new
                    // request is answered.
                    if tracker.lost()
                        && backend.ping().await.is_ok()
                        && let Some(back) = tracker.daemon_answered(Instant::now())
                    {
                        send(back);
                    }
                    since = SystemTime::now();
                    let id = server_id(&e.server.namespace, &e.server.name);
                    let saved = state.lock().unwrap().servers.get(&id).cloned();
                    // A server restarted on purpose: its old container exits.
                    let restarting =
                        shared.restarting.lock().unwrap().get(&id).is_some_and(|until| *until > Instant::now());
                    let mut keeps_running =
                        !restarting && saved.as_ref().is_some_and(|s| s.spec.state == Default::default());
                    // Replaced by an update or a restart another process asked
                    // for: the backend stopped the instance, it did not die.
                    if keeps_running
                        && matches!(e.kind, InstanceEventKind::Exited { .. })
                        && backend.stopped_on_purpose(&e).await
                    {
                        keeps_running = false;
                    }
                    let Some(happened) = tracker.container(&id, e.kind, keeps_running) else { continue };
                    let Some(saved) = saved else { continue };
                    let observed = backend.observe(&plan_of(&saved)).await.ok();
                    if let Some(observed) = &observed {
                        shared.status_of(&saved, observed, None);
                    }
                    let mut restarts = observed.as_ref().and_then(|o| o.instance.as_ref()).map_or(0, |i| i.restarts);
                    // The dead instance is a restart now, before the backend
                    // records it as failed.
                    if let (Happened::Died { .. }, Some(observed)) = (&happened, &observed)
                        && let Some(counted) = backend.note_failure(observed, &e)
                    {
                        restarts = counted;
                    }
                    send(match happened {
                        Happened::Died { id, cause } => {
                            let exit_code = match e.kind {
                                InstanceEventKind::Exited { exit_code } => exit_code,
                                _ => None,
                            };
                            let reason = death_reason(cause, exit_code);
                            shared.last_failure.lock().unwrap().insert(id.clone(), reason.clone());
                            ServerEvent::Died { id, restarts, reason }
                        }
                        Happened::Unhealthy { id } => {
                            shared
                                .last_failure
                                .lock()
                                .unwrap()
                                .insert(id.clone(), "unhealthy: its health check failed".to_string());
                            ServerEvent::Unhealthy { id, restarts }
                        }
                        Happened::Restarted { id } => ServerEvent::Restarted { id, restarts },
                    });
                }
                Some(Err(_)) | None => {
                    // The stream broke: the daemon went away, or only the
                    // connection did. Only the first is news.
                    if let Err(e) = backend.ping().await
                        && let Some(lost) = tracker.daemon_failed(e.to_string(), running(&state), Instant::now())
                    {
                        send(lost);
                    }
                    tokio::time::sleep(period).await;
                    engine = backend.instance_events(Some(since));
                }
            },
            _ = poll.tick() => {
                let now_modified = modified(&state_path);
                if now_modified != last_modified {
                    last_modified = now_modified;
                    if let Ok(saved) = super::state::load(&state_path) {
                        state.lock().unwrap().servers = saved.servers;
                    }
                }
                let managed = match backend.list_managed().await {
                    Ok(managed) => managed,
                    Err(BackendError::Unreachable(reason)) => {
                        if let Some(lost) = tracker.daemon_failed(reason, running(&state), Instant::now()) {
                            send(lost);
                        }
                        continue;
                    }
                    Err(_) => continue,
                };
                if let Some(back) = tracker.daemon_answered(Instant::now()) {
                    send(back);
                }
                let ids: Vec<String> = state.lock().unwrap().servers.keys().cloned().collect();
                present.retain(|id, _| ids.contains(id));
                for id in ids {
                    let here = managed.iter().any(|k| server_id(&k.namespace, &k.name) == id);
                    let was_here = present.insert(id.clone(), here);
                    // Shut down by this facade meanwhile: not a vanishing.
                    if was_here == Some(true) && !here && state.lock().unwrap().servers.contains_key(&id) {
                        tracker.forget(&id);
                        send(ServerEvent::Vanished { id });
                    }
                }
                // The output events of the servers that ask for them, each
                // server read when its read is due (a look of its own, the
                // status computed with the players read).
                let now = Instant::now();
                let due: Vec<SavedServer> = state
                    .lock()
                    .unwrap()
                    .servers
                    .values()
                    .filter(|s| !s.spec.output_events.is_empty() && s.spec.state == Default::default())
                    .filter(|s| shared.readings.due(&s.id(), shared.report_interval, now))
                    .cloned()
                    .collect();
                futures::stream::iter(due)
                    .for_each_concurrent(READS_AT_ONCE, |saved| {
                        let (backend, shared) = (&backend, &shared);
                        async move {
                            if let Err(e) = shared.look(&**backend, &saved, true).await {
                                tracing::debug!(server = %saved.id(), error = %e, "could not look at the server");
                            }
                        }
                    })
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i64) -> InstanceEventKind {
        InstanceEventKind::Exited { exit_code: Some(code) }
    }

    #[test]
    fn a_death_then_a_start_is_died_then_restarted() {
        let mut t = Tracker::default();
        assert_eq!(t.container("ns/a", exited(137), true), Some(Happened::Died { id: "ns/a".into(), cause: None }));
        assert_eq!(
            t.container("ns/a", InstanceEventKind::Started, true),
            Some(Happened::Restarted { id: "ns/a".into() })
        );
        // Only once: the next start (a plain update, say) is no restart.
        assert_eq!(t.container("ns/a", InstanceEventKind::Started, true), None);
    }

    #[test]
    fn starts_without_a_death_and_exits_on_purpose_are_not_news() {
        let mut t = Tracker::default();
        // The first start of a spawned server.
        assert_eq!(t.container("ns/a", InstanceEventKind::Started, true), None);
        // Stopped, shut down, or not this facade's: the exit is on purpose.
        assert_eq!(t.container("ns/a", exited(0), false), None);
        assert_eq!(t.container("ns/a", InstanceEventKind::Started, true), None);
        // Those of a server that is not to run are not news either.
        assert_eq!(t.container("ns/a", InstanceEventKind::Unhealthy, false), None);
        assert_eq!(t.container("ns/a", InstanceEventKind::OutOfMemory, false), None);
        assert_eq!(t.container("ns/a", exited(137), true), Some(Happened::Died { id: "ns/a".into(), cause: None }));
    }

    /// TESTS_1_UNITS (the event stream's decisions).
    #[test]
    fn an_out_of_memory_kill_and_a_failed_health_check_are_the_cause_of_the_death_that_follows() {
        let mut t = Tracker::default();
        // The engine says "oom", then "die".
        assert_eq!(t.container("ns/a", InstanceEventKind::OutOfMemory, true), None);
        assert_eq!(
            t.container("ns/a", exited(137), true),
            Some(Happened::Died { id: "ns/a".into(), cause: Some(Cause::OutOfMemory) })
        );
        assert!(death_reason(Some(Cause::OutOfMemory), Some(137)).starts_with("out of memory"));
        // Unhealthy is news at once, and the cause of the kill that follows.
        assert_eq!(
            t.container("ns/b", InstanceEventKind::Unhealthy, true),
            Some(Happened::Unhealthy { id: "ns/b".into() })
        );
        assert_eq!(
            t.container("ns/b", exited(143), true),
            Some(Happened::Died { id: "ns/b".into(), cause: Some(Cause::Unhealthy) })
        );
        // Each cause is of one death only.
        t.container("ns/b", InstanceEventKind::Started, true);
        assert_eq!(t.container("ns/b", exited(1), true), Some(Happened::Died { id: "ns/b".into(), cause: None }));
        assert_eq!(death_reason(None, Some(1)), "the container exited with code 1");
    }

    #[test]
    fn a_server_shut_down_after_it_died_is_not_restarted() {
        let mut t = Tracker::default();
        t.container("ns/a", exited(1), true);
        assert_eq!(t.container("ns/a", InstanceEventKind::Started, false), None);
        t.container("ns/b", exited(1), true);
        t.forget("ns/b");
        assert_eq!(t.container("ns/b", InstanceEventKind::Started, true), None);
    }

    #[test]
    fn a_lost_daemon_is_reported_once_and_its_return_once_with_the_time_it_was_away() {
        let mut t = Tracker::default();
        let start = Instant::now();
        assert_eq!(t.daemon_answered(start), None, "never lost");
        let lost = t.daemon_failed("connection refused".into(), ["ns/a".to_string()], start);
        assert_eq!(lost, Some(ServerEvent::DaemonLost { reason: "connection refused".into() }));
        assert!(t.lost());
        // Failing again and again while it is away says nothing more.
        assert_eq!(t.daemon_failed("still refused".into(), ["ns/b".to_string()], start), None);
        let back = t.daemon_answered(start + Duration::from_secs(7));
        assert_eq!(back, Some(ServerEvent::DaemonBack { after: Duration::from_secs(7) }));
        assert!(!t.lost());
        assert_eq!(t.daemon_answered(start + Duration::from_secs(8)), None);
    }

    #[test]
    fn servers_out_with_the_daemon_are_restarted_when_their_containers_start_again() {
        let mut t = Tracker::default();
        let now = Instant::now();
        t.daemon_failed("gone".into(), ["ns/a".to_string(), "ns/b".to_string()], now);
        t.daemon_answered(now);
        // The daemon's shutdown may report the exits too; still one restart each.
        assert_eq!(t.container("ns/a", exited(143), true), Some(Happened::Died { id: "ns/a".into(), cause: None }));
        assert_eq!(
            t.container("ns/a", InstanceEventKind::Started, true),
            Some(Happened::Restarted { id: "ns/a".into() })
        );
        assert_eq!(
            t.container("ns/b", InstanceEventKind::Started, true),
            Some(Happened::Restarted { id: "ns/b".into() })
        );
        assert_eq!(t.container("ns/b", InstanceEventKind::Started, true), None);
        // A server spawned after the daemon came back was never down.
        assert_eq!(t.container("ns/c", InstanceEventKind::Started, true), None);
    }
}
