//! The controller's Prometheus metrics, served by the admin server on
//! `/metrics` (OpenMetrics text, which Prometheus scrapes natively).
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `mettaton_reconciles_total` | counter | reconciles run, failed or not |
//! | `mettaton_reconcile_errors_total{reason}` | counter | failed reconciles, by [`Error::reason`](crate::controller::Error::reason) |
//! | `mettaton_reconcile_duration_seconds` | histogram | how long a reconcile took |
//! | `mettaton_gameservers{phase}` | gauge | watched GameServers by `status.phase` |
//! | `mettaton_leader` | gauge | 1 while this replica runs the controller, else 0 |
//! | `mettaton_players{namespace,name}` | gauge | players online on a server with `spec.players`, as its status says |
//! | `mettaton_report_reads_total{result}` | counter | reads of supervisors' reports, `ok` or `failed` |

use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::Store;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::api::{GameServer, Phase};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus' default buckets: reconciles take milliseconds when nothing
/// changes and seconds when the backend is slow.
const DURATION_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

type Labels = [(&'static str, &'static str); 1];
/// A server's labels: its namespace and name.
type ServerLabels = [(&'static str, String); 2];

pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_errors: Family<Labels, Counter>,
    reconcile_duration: Histogram,
    gameservers: Family<Labels, Gauge>,
    leader: Gauge,
    players: Family<ServerLabels, Gauge>,
    report_reads: Family<Labels, Counter>,
    /// The controller's cache of GameServers, once it runs: the phase gauges
    /// are counted from it at each scrape, so they follow phase changes and
    /// deletions without bookkeeping of their own.
    watched: Mutex<Option<Store<GameServer>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The registry, with the error counter of each of `error_reasons` (every
    /// reason a reconcile can fail with) at zero, so that the first failure of
    /// a kind shows as an increase.
    pub fn new(error_reasons: &[&'static str]) -> Self {
        let reconciles = Counter::default();
        let reconcile_errors = Family::<Labels, Counter>::default();
        for &reason in error_reasons {
            let _ = reconcile_errors.get_or_create(&[("reason", reason)]);
        }
        let reconcile_duration = Histogram::new(DURATION_BUCKETS);
        let gameservers = Family::<Labels, Gauge>::default();
        let leader = Gauge::default();
        let players = Family::<ServerLabels, Gauge>::default();
        let report_reads = Family::<Labels, Counter>::default();
        for result in ["ok", "failed"] {
            let _ = report_reads.get_or_create(&[("result", result)]);
        }
        let mut registry = Registry::with_prefix("mettaton");
        registry.register("reconciles", "Reconciles of GameServers, failed or not", reconciles.clone());
        registry.register("reconcile_errors", "Failed reconciles of GameServers, by reason", reconcile_errors.clone());
        registry.register_with_unit(
            "reconcile_duration",
            "How long a reconcile of a GameServer took",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register(
            "gameservers",
            "GameServers this controller watches, by status.phase (no status yet counts as Pending)",
            gameservers.clone(),
        );
        registry.register("leader", "1 while this replica runs the controller, else 0", leader.clone());
        registry.register(
            "players",
            "Players online on a GameServer with spec.players, as its status.players.count says",
            players.clone(),
        );
        registry.register(
            "report_reads",
            "Reads of the report of mettaton's supervisor in a game server, by result (ok, failed)",
            report_reads.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            gameservers,
            leader,
            players,
            report_reads,
            watched: Mutex::new(None),
        }
    }

    /// Records one reconcile: how long it took and, when it failed, why.
    pub fn reconciled(&self, took: Duration, error: Option<&'static str>) {
        self.reconciles.inc();
        self.reconcile_duration.observe(took.as_secs_f64());
        if let Some(reason) = error {
            self.reconcile_errors.get_or_create(&[("reason", reason)]).inc();
        }
    }

    /// The players online on server `namespace/name`; `None` removes its
    /// series (the server is gone, or no longer tracks players).
    pub fn set_players(&self, namespace: &str, name: &str, count: Option<i32>) {
        let labels = [("namespace", namespace.to_string()), ("name", name.to_string())];
        match count {
            Some(n) => {
                self.players.get_or_create(&labels).set(i64::from(n));
            }
            None => {
                self.players.remove(&labels);
            }
        }
    }

    /// Records one read of a supervisor's report.
    pub fn report_read(&self, ok: bool) {
        self.report_reads.get_or_create(&[("result", if ok { "ok" } else { "failed" })]).inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Counts GameServers by phase from `store` from now on.
    pub fn watch_gameservers(&self, store: Store<GameServer>) {
        *self.watched.lock().unwrap() = Some(store);
    }

    /// The exposition, OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let store = self.watched.lock().unwrap().clone();
        if let Some(store) = store {
            let counts = count_by_phase(store.state().iter().map(|gs| gs.status.as_ref().and_then(|s| s.phase)));
            for (phase, n) in PHASES.iter().zip(counts) {
                self.gameservers.get_or_create(&[("phase", phase.as_str())]).set(n);
            }
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Every phase, in the order of [`index`]: each is reported, zero included, so
/// a phase that empties drops to 0 instead of keeping its last count.
const PHASES: [Phase; 7] = [
    Phase::Pending,
    Phase::Starting,
    Phase::Running,
    Phase::Stopping,
    Phase::Stopped,
    Phase::Failed,
    Phase::Terminating,
];

/// Exhaustive, so a new phase cannot be forgotten in [`PHASES`].
fn index(phase: Phase) -> usize {
    match phase {
        Phase::Pending => 0,
        Phase::Starting => 1,
        Phase::Running => 2,
        Phase::Stopping => 3,
        Phase::Stopped => 4,
        Phase::Failed => 5,
        Phase::Terminating => 6,
    }
}

/// How many servers are in each phase of [`PHASES`]. A server not reconciled
/// yet (no phase) is waiting like a Pending one, and counted so.
fn count_by_phase(phases: impl IntoIterator<Item = Option<Phase>>) -> [i64; PHASES.len()] {
    let mut counts = [0; PHASES.len()];
    for phase in phases {
        counts[index(phase.unwrap_or(Phase::Pending))] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_listed_in_index_order() {
        for (i, phase) in PHASES.iter().enumerate() {
            assert_eq!(index(*phase), i, "{phase:?}");
        }
    }

    #[test]
    fn servers_are_counted_by_phase_and_unreconciled_ones_as_pending() {
        let counts = count_by_phase([
            Some(Phase::Running),
            None,
            Some(Phase::Running),
            Some(Phase::Failed),
            Some(Phase::Pending),
            Some(Phase::Terminating),
        ]);
        assert_eq!(counts, [2, 0, 2, 0, 0, 1, 1]);
        assert_eq!(count_by_phase([]), [0; 7]);
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn reconciles_errors_and_durations_are_exposed() {
        let m = Metrics::new(&crate::controller::Error::REASONS);
        m.reconciled(Duration::from_millis(3), None);
        m.reconciled(Duration::from_millis(30), Some("KubeApiError"));
        m.reconciled(Duration::from_secs(20), Some("KubeApiError"));
        m.reconciled(Duration::from_millis(1), Some("TeardownPending"));
        let text = m.encode();
        assert_eq!(line(&text, "mettaton_reconciles_total "), Some("mettaton_reconciles_total 4"), "{text}");
        assert!(text.contains("mettaton_reconcile_errors_total{reason=\"KubeApiError\"} 2\n"), "{text}");
        assert!(text.contains("mettaton_reconcile_errors_total{reason=\"TeardownPending\"} 1\n"), "{text}");
        assert!(text.contains("mettaton_reconcile_errors_total{reason=\"BackendUnreachable\"} 0\n"), "{text}");
        assert!(text.contains("# TYPE mettaton_reconcile_duration_seconds histogram\n"), "{text}");
        assert!(text.contains("mettaton_reconcile_duration_seconds_count 4\n"), "{text}");
        assert!(text.contains("mettaton_reconcile_duration_seconds_bucket{le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("mettaton_reconcile_duration_seconds_bucket{le=\"10.0\"} 3\n"), "{text}");
        assert!(text.contains("mettaton_reconcile_duration_seconds_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn players_are_a_series_per_server_until_it_goes() {
        let m = Metrics::new(&crate::controller::Error::REASONS);
        m.set_players("games", "mc", Some(3));
        m.set_players("games", "other", Some(0));
        let text = m.encode();
        assert!(text.contains("# TYPE mettaton_players gauge\n"), "{text}");
        assert!(text.contains("mettaton_players{namespace=\"games\",name=\"mc\"} 3\n"), "{text}");
        assert!(text.contains("mettaton_players{namespace=\"games\",name=\"other\"} 0\n"), "{text}");
        m.set_players("games", "mc", Some(1));
        m.set_players("games", "other", None);
        let text = m.encode();
        assert!(text.contains("mettaton_players{namespace=\"games\",name=\"mc\"} 1\n"), "{text}");
        assert!(!text.contains("name=\"other\""), "a removed server has no series: {text}");
        // Removing what is not there is no error.
        m.set_players("games", "never", None);
    }

    #[test]
    fn report_reads_are_counted_by_result_from_zero() {
        let m = Metrics::new(&crate::controller::Error::REASONS);
        assert!(m.encode().contains("mettaton_report_reads_total{result=\"failed\"} 0\n"));
        m.report_read(true);
        m.report_read(false);
        m.report_read(false);
        let text = m.encode();
        assert!(text.contains("mettaton_report_reads_total{result=\"ok\"} 1\n"), "{text}");
        assert!(text.contains("mettaton_report_reads_total{result=\"failed\"} 2\n"), "{text}");
    }

    #[test]
    fn leader_is_zero_until_set() {
        let m = Metrics::new(&crate::controller::Error::REASONS);
        assert!(m.encode().contains("\nmettaton_leader 0\n"));
        m.set_leader(true);
        assert!(m.encode().contains("\nmettaton_leader 1\n"));
        m.set_leader(false);
        assert!(m.encode().contains("\nmettaton_leader 0\n"));
    }

    #[test]
    fn phases_follow_the_watched_store_including_changes_and_deletions() {
        use kube::runtime::watcher::Event;

        fn server(name: &str, phase: Option<Phase>) -> GameServer {
            let mut gs: GameServer = serde_yaml::from_str(&format!(
                "apiVersion: mettaton.dev/v1alpha1\nkind: GameServer\nmetadata: {{ name: {name}, namespace: ns }}\nspec: {{ image: game, ports: [{{ name: game, containerPort: 7777 }}] }}\n"
            ))
            .unwrap();
            gs.status = phase.map(|p| crate::api::GameServerStatus { phase: Some(p), ..Default::default() });
            gs
        }
        let gauge = |text: &str, phase: &str| {
            let prefix = format!("mettaton_gameservers{{phase=\"{phase}\"}} ");
            line(text, &prefix).map(|l| l[prefix.len()..].to_string())
        };

        let m = Metrics::new(&crate::controller::Error::REASONS);
        // A standby watches nothing and claims nothing.
        assert_eq!(gauge(&m.encode(), "Running"), None);

        let (store, mut writer) = kube::runtime::reflector::store::<GameServer>();
        m.watch_gameservers(store);
        writer.apply_watcher_event(&Event::Apply(server("a", Some(Phase::Running))));
        writer.apply_watcher_event(&Event::Apply(server("b", Some(Phase::Running))));
        writer.apply_watcher_event(&Event::Apply(server("c", None)));
        let text = m.encode();
        assert_eq!(gauge(&text, "Running").as_deref(), Some("2"), "{text}");
        assert_eq!(gauge(&text, "Pending").as_deref(), Some("1"), "{text}");
        assert_eq!(gauge(&text, "Failed").as_deref(), Some("0"), "{text}");

        writer.apply_watcher_event(&Event::Apply(server("a", Some(Phase::Stopped))));
        writer.apply_watcher_event(&Event::Delete(server("b", Some(Phase::Running))));
        let text = m.encode();
        assert_eq!(gauge(&text, "Running").as_deref(), Some("0"), "{text}");
        assert_eq!(gauge(&text, "Stopped").as_deref(), Some("1"), "{text}");
        assert_eq!(gauge(&text, "Pending").as_deref(), Some("1"), "{text}");
    }
}
