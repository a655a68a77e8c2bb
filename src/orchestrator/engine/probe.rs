//! mettaton's own TCP readiness probe of a published port: its decisions
//! ([`TcpProbe`]) and the probes of a backend's servers ([`Probes`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::Protocol;
use crate::orchestrator::Endpoint;
use crate::orchestrator::observed::{Problem, ProblemKind};
use crate::plan::{Check, ServerPlan};

/// mettaton's own TCP readiness probe of a server on a Docker Engine (game
/// images rarely have a shell or `nc` for a healthcheck), as Kubernetes'
/// kubelet runs one: a connection to the published port every
/// `health.periodSeconds`; ready after one success, not ready after
/// `health.failureThreshold` failures in a row. Until the first success it
/// probes every second (`health.startupTimeoutSeconds` bounds that phase, as
/// the Kubernetes backend's startup probe does), so that a spawn does not
/// wait a whole period for a server that listens a moment after it starts.
/// The decisions only; [`Probes`] connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProbe {
    /// The instance probed (a swarm task, a container's id and start): a new
    /// one starts afresh.
    pub instance: String,
    pub ready: bool,
    /// It passed once: the startup phase is over.
    pub passed_once: bool,
    /// Failures in a row.
    pub failures: i32,
    /// When the last probe ran, in milliseconds of the caller's clock.
    pub last_ms: Option<u64>,
}

impl TcpProbe {
    pub fn new(instance: &str) -> TcpProbe {
        TcpProbe { instance: instance.to_string(), ready: false, passed_once: false, failures: 0, last_ms: None }
    }

    /// Whether a probe is due at `now_ms`.
    pub fn due(&self, now_ms: u64, period_seconds: i32) -> bool {
        let period_ms = if self.passed_once { u64::try_from(period_seconds.max(1)).unwrap_or(1) * 1000 } else { 1000 };
        self.last_ms.is_none_or(|last| now_ms.saturating_sub(last) >= period_ms)
    }

    /// The result of a probe run at `now_ms`.
    pub fn record(&mut self, now_ms: u64, ok: bool, failure_threshold: i32) {
        self.last_ms = Some(now_ms);
        if ok {
            self.ready = true;
            self.passed_once = true;
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.failures >= failure_threshold.max(1) {
                self.ready = false;
            }
        }
    }
}

/// Whether mettaton probes the server's published TCP port itself: its
/// readiness check is a TCP check, and no supervisor's probe (which runs the
/// TCP check inside the container, with the ready line) takes its place.
pub fn tcp_probed(plan: &ServerPlan) -> bool {
    matches!(plan.container.readiness, Some(Check::Tcp { .. })) && super::exec_check(plan).is_none()
}

/// The published TCP port the readiness check of the plan connects to, when
/// mettaton runs it ([`tcp_probed`]) and the endpoint has that port.
pub fn probe_port(plan: &ServerPlan, endpoint: &Endpoint) -> Option<i32> {
    if !tcp_probed(plan) {
        return None;
    }
    let Some(Check::Tcp { port }) = plan.container.readiness else { return None };
    let name = plan.container.ports.iter().find(|p| p.container_port == port && p.protocol == Protocol::TCP)?;
    endpoint.ports.iter().find(|p| p.name == name.name && p.protocol == Protocol::TCP).map(|p| p.port)
}

/// The TCP probes of a backend's servers, by a key of the backend's choosing
/// (a service id, a container name), on one clock.
#[derive(Clone, Debug)]
pub struct Probes {
    probes: Arc<Mutex<HashMap<String, TcpProbe>>>,
    started: Instant,
}

impl Default for Probes {
    fn default() -> Self {
        Probes { probes: Arc::default(), started: Instant::now() }
    }
}

impl Probes {
    /// Probes the server's `instance` (see [`TcpProbe`]) when a probe is due:
    /// whether it is ready now.
    pub async fn ready(&self, key: &str, instance: &str, plan: &ServerPlan, endpoint: &Endpoint) -> bool {
        let Some(port) = probe_port(plan, endpoint) else { return false };
        let Some(address) = endpoint.address.clone() else { return false };
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        {
            let mut probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
            let probe = probes.entry(key.to_string()).or_insert_with(|| TcpProbe::new(instance));
            if probe.instance != instance {
                *probe = TcpProbe::new(instance);
            }
            if !probe.due(now, plan.container.period_seconds) {
                return probe.ready;
            }
            // Marked as run now, so that concurrent looks do not probe too.
            probe.last_ms = Some(now);
        }
        let ok = tcp_answers(&address, port, Duration::from_secs(1)).await;
        let mut probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
        let probe = probes.entry(key.to_string()).or_insert_with(|| TcpProbe::new(instance));
        probe.record(now, ok, plan.container.failure_threshold);
        probe.ready
    }

    /// The server of `key` is gone: its probe goes too.
    pub fn forget(&self, key: &str) {
        self.probes.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Whether a TCP server answers at `address:port`: the connection is
/// accepted and not closed at once. (Ports published on the engine's own
/// node go through docker-proxy, which accepts every connection and closes it
/// when the container does not listen, so an accept alone proves nothing.)
async fn tcp_answers(address: &str, port: i32, timeout: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(port) = u16::try_from(port) else { return false };
    let connect = tokio::net::TcpStream::connect((address, port));
    let Ok(Ok(mut stream)) = tokio::time::timeout(timeout, connect).await else { return false };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await {
        // Silent: a server waiting for its client to speak first.
        Err(_) => true,
        // It spoke (a greeting).
        Ok(Ok(n)) => n > 0,
        Ok(Err(_)) => false,
    }
}

/// What a server whose TCP readiness probe fails is told.
pub fn unanswered(plan: &ServerPlan, endpoint: &Endpoint) -> Problem {
    let port = probe_port(plan, endpoint).map_or_else(|| "?".to_string(), |p| p.to_string());
    Problem::new(ProblemKind::Other, format!("the TCP readiness probe of port {port} gets no answer"), None)
}
