//! The controller binary's admin server: probes and metrics as a kubelet and
//! Prometheus see them. Also the helpers to run the binary as a replica, which
//! the leader election tests share.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use mettaton::api::{GameServer, Phase};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixtures::game_server;
use crate::support::{TestNamespace, ensure_crd, eventually, kubeconfig_path, sample, wait_phase};

pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// `mettaton controller` running as its own process, its admin server on a
/// free port. Killed when dropped, whatever the test did.
pub(crate) struct Replica {
    /// Its identity in the Lease (`POD_NAME`).
    pub name: String,
    pub admin: SocketAddr,
    child: Child,
    log: PathBuf,
}

/// An answer of the admin server.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl Replica {
    /// Starts a controller for the test namespace, with `extra` arguments,
    /// and waits for its admin server.
    pub(crate) async fn start(ns: &TestNamespace, name: &str, extra: &[&str]) -> Replica {
        Replica::start_with(ns, name, &kubeconfig_path(), extra).await
    }

    pub(crate) async fn start_with(
        ns: &TestNamespace,
        name: &str,
        kubeconfig: &std::path::Path,
        extra: &[&str],
    ) -> Replica {
        let log = std::env::temp_dir().join(format!("{}-{name}.log", ns.name));
        let child = Command::new(env!("CARGO_BIN_EXE_mettaton"))
            .args(["controller", "--namespace", &ns.name, "--admin-address", "127.0.0.1:0", "--kubeconfig"])
            .arg(kubeconfig)
            .args(extra)
            .env("POD_NAME", name)
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut replica = Replica { name: name.to_string(), admin: "0.0.0.0:0".parse().unwrap(), child, log };
        replica.admin = eventually(&format!("{name}'s admin server"), Duration::from_secs(30), || {
            let found = replica
                .log()
                .split("admin server listening on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next().and_then(|a| a.parse::<SocketAddr>().ok()));
            async move { found.ok_or("no address in the log yet") }
        })
        .await;
        replica
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Response, String> {
        let request = async {
            let mut stream = tokio::net::TcpStream::connect(self.admin).await.map_err(|e| e.to_string())?;
            let head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.admin);
            stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
            let text = String::from_utf8(raw).map_err(|e| e.to_string())?;
            let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no header end in {text:?}"))?;
            let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
            let content_type = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
                .map(|(_, v)| v.trim().to_string());
            Ok(Response { status, content_type, body: body.to_string() })
        };
        tokio::time::timeout(Duration::from_secs(5), request).await.map_err(|_| format!("GET {path} timed out"))?
    }

    /// The `/metrics` exposition.
    pub(crate) async fn metrics(&self) -> String {
        let response = self.get("/metrics").await.unwrap_or_else(|e| panic!("{}: {e}\n{}", self.name, self.log()));
        assert_eq!(response.status, 200, "{response:?}");
        response.body
    }

    /// Waits until `/readyz` says 200.
    pub(crate) async fn ready(&self) {
        eventually(&format!("{} ready", self.name), WAIT, || async {
            match self.get("/readyz").await {
                Ok(r) if r.status == 200 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    /// Waits until the sample `name` (with its labels) has the value `want`.
    pub(crate) async fn metric_is(&self, name: &str, want: f64) {
        eventually(&format!("{name} = {want} on {}", self.name), WAIT, || async {
            let text = self.metrics().await;
            match sample(&text, name) {
                Some(v) if v == want => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(crate) fn terminate(&self) {
        let pid = self.pid().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }

    /// Waits up to `timeout` for the process to exit, and says how.
    pub(crate) async fn exited(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of {} ({}):\n{}", self.name, self.log.display(), self.log());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The value of the sample `name` (labels included, as exposed) in `text`.
pub(crate) fn server(name: &str) -> GameServer {
    game_server(name, json!({ "image": "mettaton.test/game:1", "ports": [{ "name": "game", "containerPort": 7777 }] }))
}

fn running(n: u32) -> (&'static str, f64) {
    (r#"mettaton_gameservers{phase="Running"}"#, n.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_and_metrics_count_reconciles_errors_and_phases() {
    ensure_crd().await;
    let ns = TestNamespace::new("admin").await;
    let replica = Replica::start(&ns, "admin", &[]).await;

    let health = replica.get("/healthz").await.unwrap();
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    replica.ready().await;
    assert_eq!(replica.get("/nothing-here").await.unwrap().status, 404);

    let text = replica.metrics().await;
    let content_type = replica.get("/metrics").await.unwrap().content_type;
    assert_eq!(content_type.as_deref(), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    for family in [
        "mettaton_reconciles counter",
        "mettaton_reconcile_errors counter",
        "mettaton_reconcile_duration_seconds histogram",
        "mettaton_gameservers gauge",
        "mettaton_leader gauge",
    ] {
        assert!(text.contains(&format!("\n# TYPE {family}\n")), "{family} in\n{text}");
    }
    // Without leader election the one replica leads.
    assert_eq!(sample(&text, "mettaton_leader"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "mettaton_reconciles_total"), Some(0.0), "{text}");
    assert_eq!(sample(&text, r#"mettaton_gameservers{phase="Running"}"#), Some(0.0), "{text}");

    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &server("arena")).await.unwrap();
    wait_phase(&api, "arena", Phase::Running, WAIT).await;
    let (name, want) = running(1);
    replica.metric_is(name, want).await;
    let text = replica.metrics().await;
    assert!(sample(&text, "mettaton_reconciles_total").unwrap() >= 1.0, "{text}");
    assert!(sample(&text, "mettaton_reconcile_duration_seconds_count").unwrap() >= 1.0, "{text}");
    assert!(sample(&text, r#"mettaton_reconcile_duration_seconds_bucket{le="+Inf"}"#).unwrap() >= 1.0, "{text}");

    // A GameServer whose Service name someone else took fails to reconcile:
    // an error counted by reason, and a server that stays Pending.
    let theirs: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": { "name": "taken" },
        "spec": { "selector": { "app": "someone-else" }, "ports": [{ "name": "http", "port": 80 }] }
    }))
    .unwrap();
    ns.api::<Service>().create(&PostParams::default(), &theirs).await.unwrap();
    api.create(&PostParams::default(), &server("taken")).await.unwrap();
    eventually("a BackendRefused error counted", WAIT, || async {
        let text = replica.metrics().await;
        match sample(&text, r#"mettaton_reconcile_errors_total{reason="BackendRefused"}"#) {
            Some(n) if n >= 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Its status says it cannot run.
    replica.metric_is(r#"mettaton_gameservers{phase="Failed"}"#, 1.0).await;

    // A phase change moves the count; a deletion removes it.
    let stop = Patch::Merge(json!({ "spec": { "state": "Stopped" } }));
    api.patch("arena", &PatchParams::default(), &stop).await.unwrap();
    replica.metric_is(r#"mettaton_gameservers{phase="Stopped"}"#, 1.0).await;
    let (name, want) = running(0);
    replica.metric_is(name, want).await;
    api.delete("arena", &DeleteParams::default()).await.unwrap();
    eventually("only the refused server counted", WAIT, || async {
        let text = replica.metrics().await;
        let counts: Vec<(&str, f64)> =
            ["Pending", "Starting", "Running", "Stopping", "Stopped", "Failed", "Terminating"]
                .into_iter()
                .map(|p| (p, sample(&text, &format!("mettaton_gameservers{{phase=\"{p}\"}}")).unwrap_or(-1.0)))
                .collect();
        let nonzero: Vec<_> = counts.iter().filter(|(_, n)| *n != 0.0).collect();
        if nonzero == [&("Failed", 1.0)] { Ok(()) } else { Err(counts) }
    })
    .await;
}
