//! The controller with the Docker Swarm backend: GameServers declared on the
//! local control plane run as swarm services on the real Docker Engine, their
//! status says where players connect, and deletion removes the service, also
//! after the daemon was unreachable for a while (ShutdownFailed meanwhile).
//! The controller reaches the daemon through a loopback proxy the test cuts.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams};
use mettaton::api::{GameServer, Phase, conditions};
use mettaton::orchestrator::swarm::{Daemon, SwarmOrchestrator};

use crate::support::{Proxy, SwarmController, TestNamespace, Upstream, docker_socket, ensure_crd, eventually};

const WAIT: Duration = Duration::from_secs(60);

async fn services_of(ns: &str) -> Vec<String> {
    let swarm = SwarmOrchestrator::connect(&Daemon::LocalSocket(docker_socket())).await.unwrap();
    swarm.list_managed().await.unwrap().into_iter().filter(|m| m.namespace == ns).map(|m| m.service_name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gameservers_run_on_the_swarm_and_deletion_survives_an_unreachable_daemon() {
    ensure_crd().await;
    let ns = TestNamespace::new("swarm-ctl").await;
    let proxy = Proxy::start_to(Upstream::Unix(docker_socket())).await;
    let daemon = Daemon::Tcp { url: format!("tcp://127.0.0.1:{}", proxy.port), tls: None };
    let swarm = SwarmOrchestrator::connect(&daemon)
        .await
        .expect("the swarm through the proxy")
        .with_poll(Duration::from_secs(1));
    let ctl = SwarmController::start(&ns, swarm);

    let gs: GameServer = serde_json::from_value(serde_json::json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
        "metadata": { "name": "dune" },
        "spec": {
            "image": "127.0.0.1:5999/mettaton-testgame:1",
            "env": [{ "name": "GAME_NAME", "value": "dune" }],
            "ports": [{ "name": "game", "containerPort": 7777 }],
            "shutdown": { "gracePeriodSeconds": 5 }
        }
    }))
    .unwrap();
    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &gs).await.unwrap();

    let ready = eventually("dune Ready on the swarm", WAIT, || async {
        let gs = api.get("dune").await.map_err(|e| e.to_string())?;
        let status = gs.status.clone().unwrap_or_default();
        let ready = status.conditions.iter().any(|c| c.type_ == conditions::READY && c.status == "True");
        if ready && status.address.is_some() && !status.ports.is_empty() { Ok(gs) } else { Err(format!("{status:?}")) }
    })
    .await;
    let status = ready.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(services_of(&ns.name).await, vec![format!("mettaton-{}-dune", ns.name)]);
    assert!(status.backend_ref.is_some(), "the swarm service id");
    // A player reaches the server where the status says.
    let stream = TcpStream::connect((status.address.as_deref().unwrap(), status.ports[0].port as u16)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut greeting = String::new();
    BufReader::new(stream).read_line(&mut greeting).unwrap();
    assert_eq!(greeting.trim(), "hello from dune");

    // The daemon becomes unreachable; deletion must wait and say why.
    proxy.set_up(false);
    api.delete("dune", &DeleteParams::default()).await.unwrap();
    let reported = eventually("ShutdownFailed while the daemon is unreachable", WAIT, || async {
        let gs = api.get("dune").await.map_err(|e| e.to_string())?;
        let failed = gs.status.as_ref().and_then(|s| {
            s.conditions.iter().find(|c| c.type_ == conditions::SHUTDOWN_FAILED && c.status == "True").cloned()
        });
        failed.map(|c| (gs, c)).ok_or_else(|| "not yet".to_string())
    })
    .await;
    assert!(reported.0.finalizers().iter().any(|f| f == mettaton::api::FINALIZER));
    assert_eq!(reported.1.reason, "BackendUnreachable", "{}", reported.1.message);
    assert_eq!(services_of(&ns.name).await.len(), 1, "nothing removed while unreachable");

    // The daemon is back: deletion completes and the service is gone.
    proxy.set_up(true);
    eventually("dune deleted", crate::controller::AFTER_BACKOFF, || async {
        match api.get_opt("dune").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(services_of(&ns.name).await.is_empty(), "the swarm service is removed");

    ctl.stop().await;
}
