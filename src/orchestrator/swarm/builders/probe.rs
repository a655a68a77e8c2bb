//! mettaton's own TCP readiness check of a server on swarm (game images rarely
//! have a shell or `nc` for a healthcheck).

use super::*;

/// mettaton's own TCP readiness probe of a server on swarm, as Kubernetes'
/// kubelet runs one: a connection to the published port every
/// `health.periodSeconds`; ready after one success, not ready after
/// `health.failureThreshold` failures in a row. Until the first success it
/// probes every second (`health.startupTimeoutSeconds` bounds that phase, as
/// the Kubernetes backend's startup probe does), so that a spawn does not
/// wait a whole period for a server that listens a moment after it starts.
/// The decisions only; the orchestrator connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProbe {
    /// The task probed: a new task starts afresh.
    pub task: String,
    pub ready: bool,
    /// It passed once: the startup phase is over.
    pub passed_once: bool,
    /// Failures in a row.
    pub failures: i32,
    /// When the last probe ran, in milliseconds of the caller's clock.
    pub last_ms: Option<u64>,
}

impl TcpProbe {
    pub fn new(task: &str) -> TcpProbe {
        TcpProbe { task: task.to_string(), ready: false, passed_once: false, failures: 0, last_ms: None }
    }

    /// Whether a probe is due at `now_ms`.
    pub fn due(&self, now_ms: u64, period_seconds: i32) -> bool {
        let period_ms = match self.passed_once {
            true => u64::try_from(period_seconds.max(1)).unwrap_or(1) * 1000,
            false => 1000,
        };
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

/// The published TCP port the readiness check of the plan connects to, when
/// it is a TCP check and the endpoint has that port.
pub fn probe_port(plan: &ServerPlan, endpoint: &Endpoint) -> Option<i32> {
    let Some(Check::Tcp { port }) = plan.container.readiness else { return None };
    let name = plan.container.ports.iter().find(|p| p.container_port == port && p.protocol == Protocol::TCP)?;
    endpoint.ports.iter().find(|p| p.name == name.name && p.protocol == Protocol::TCP).map(|p| p.port)
}
