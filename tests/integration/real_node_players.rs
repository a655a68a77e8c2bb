//! Players and output events on the real node (issue 15): the test game's
//! own join and leave lines, counted by mettaton's supervisor in its
//! container, reach `status.players` and the `mettaton_players` metric through
//! the API server's pod proxy; lines matching `spec.outputEvents` become
//! Events on the GameServer, each once; the stops mettaton causes (a restart,
//! `state: Stopped`, deletion) are Events; and a controller that may not use the pod proxy counts its failed reads and
//! leaves the server Ready.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use mettaton::api::{GameServer, Phase, PlayersStatus, conditions};
use mettaton::reading::INTERVAL;
use serde_json::json;

use crate::controller::{RunningController, gone};
use crate::real_node_common::{ensure_supervisor_image, published};
use crate::real_node_console::{mettaton_send, start, supervised};
use crate::support::{
    TestNamespace, condition_status, ensure_crd, eventually, kubeconfig_path, sample, wait_phase, wait_ready,
};

const WAIT: Duration = Duration::from_secs(120);
/// How long after a player's line its count may take to show: a read every
/// [`INTERVAL`], plus the status write and this test's own polling.
const BEHIND: Duration = INTERVAL.saturating_add(Duration::from_secs(5));

/// The test game's join and leave lines, and two output events: its save
/// (`save` in the console) and what the server says (`say`), a warning.
fn spec() -> serde_json::Value {
    json!({
        "players": {
            "joinLine": ["regex:^(?P<player>\\S+) joined the game$"],
            "leaveLine": ["regex:^(\\S+) left the game$"]
        },
        "outputEvents": [
            { "line": "saved world", "reason": "WorldSaved" },
            { "line": "regex:^\\[Server\\] ", "reason": "ServerSaid", "type": "Warning" }
        ],
        "shutdown": { "stop": "stop", "gracePeriodSeconds": 20 }
    })
}

/// A player logged in over TCP at the status' address, for as long as the
/// connection is kept: dropping it makes the game print the leave line.
fn login(gs: &GameServer, name: &str) -> Result<TcpStream, String> {
    let address = gs.status.as_ref().and_then(|s| s.address.clone()).ok_or("no address")?;
    crate::testgame::login(&address, i32::from(published(gs, "game")), name)
}

async fn login_when_up(gs: &GameServer, name: &str) -> TcpStream {
    eventually(&format!("{name} logs in"), Duration::from_secs(30), || {
        let (gs, name) = (gs.clone(), name.to_string());
        async move { tokio::task::spawn_blocking(move || login(&gs, &name)).await.unwrap() }
    })
    .await
}

fn players_of(gs: &GameServer) -> Option<PlayersStatus> {
    gs.status.as_ref()?.players.clone()
}

/// Waits for `status.players` to hold `names`, and returns how long it took.
async fn wait_players(api: &Api<GameServer>, name: &str, names: &[&str]) -> Duration {
    let since = Instant::now();
    eventually(&format!("players {names:?}"), WAIT, || async {
        let gs = api.get(name).await.map_err(|e| e.to_string())?;
        match players_of(&gs) {
            Some(p) if p.count == names.len() as i32 && p.names == names => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    since.elapsed()
}

fn players_metric(ctl: &RunningController, ns: &TestNamespace, name: &str) -> Option<f64> {
    sample(&ctl.metrics.encode(), &format!("mettaton_players{{namespace=\"{}\",name=\"{name}\"}}", ns.name))
}

/// The Events about GameServer `name` of `reason`: (type, note, times).
async fn events_of(ns: &TestNamespace, name: &str, reason: &str) -> Vec<(String, String, i32)> {
    let events = ns.api::<Event>().list(&ListParams::default()).await.unwrap().items;
    events
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| {
            let times = e.series.as_ref().map_or(1, |s| s.count);
            (e.type_.unwrap_or_default(), e.note.unwrap_or_default(), times)
        })
        .collect()
}

async fn wait_event(ns: &TestNamespace, name: &str, reason: &str) -> Vec<(String, String, i32)> {
    eventually(&format!("a {reason} Event"), BEHIND + Duration::from_secs(10), || async {
        let events = events_of(ns, name, reason).await;
        if events.is_empty() { Err("none") } else { Ok(events) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_and_output_lines_of_the_game_reach_the_status_the_metric_and_events() {
    let (ns, ctl, api) = start("real-players").await;
    api.create(&PostParams::default(), &supervised("players", spec())).await.unwrap();
    let gs = wait_ready(&api, "players", WAIT).await;
    // The pod has the supervisor's port on its command line, nothing else.
    let deployment = ns.api::<k8s_openapi::api::apps::v1::Deployment>().get("players").await.unwrap();
    let container = deployment.spec.unwrap().template.spec.unwrap().containers[0].clone();
    let command = container.command.unwrap();
    assert!(command.windows(2).any(|w| w == ["--http", "9396"]), "{command:?}");
    assert!(command.windows(2).any(|w| w == ["--event", "WorldSaved=saved world"]), "{command:?}");

    // Two players log in: the status and the metric say so within a read.
    let zoe = login_when_up(&gs, "zoe").await;
    let _adam = login_when_up(&gs, "adam").await;
    let took = wait_players(&api, "players", &["adam", "zoe"]).await;
    assert!(took <= BEHIND, "the players showed after {took:?}");
    assert_eq!(players_metric(&ctl, &ns, "players"), Some(2.0));

    // One leaves.
    drop(zoe);
    let took = wait_players(&api, "players", &["adam"]).await;
    assert!(took <= BEHIND, "the leave showed after {took:?}");
    assert_eq!(players_metric(&ctl, &ns, "players"), Some(1.0));

    // Lines of the game's output are Events on the GameServer, the line
    // their message, the type the spec's; two lines of one reason are two
    // Events, each with its own line.
    assert!(mettaton_send(&ns, "players", "save").contains("saved world"));
    assert!(mettaton_send(&ns, "players", "say the world is saved").contains("[Server] the world is saved"));
    assert!(mettaton_send(&ns, "players", "say and again").contains("[Server] and again"));
    let saved = wait_event(&ns, "players", "WorldSaved").await;
    assert_eq!(saved, [("Normal".to_string(), "saved world".to_string(), 1)]);
    let said = eventually("two ServerSaid Events", BEHIND + Duration::from_secs(10), || async {
        let mut said = events_of(&ns, "players", "ServerSaid").await;
        said.sort();
        if said.len() == 2 { Ok(said) } else { Err(said) }
    })
    .await;
    let warning = |note: &str| ("Warning".to_string(), note.to_string(), 1);
    assert_eq!(said, [warning("[Server] and again"), warning("[Server] the world is saved")]);

    // In steady state: a read per interval, no status write, no Event again.
    let reads = |ctl: &RunningController| ctl.counted("mettaton_report_reads_total{result=\"ok\"}");
    let version = api.get("players").await.unwrap().metadata.resource_version;
    let before = reads(&ctl);
    tokio::time::sleep(INTERVAL + Duration::from_secs(5)).await;
    let read = reads(&ctl) - before;
    assert!((1..=2).contains(&read), "{read} reads in {:?}", INTERVAL + Duration::from_secs(5));
    assert_eq!(api.get("players").await.unwrap().metadata.resource_version, version, "no status write");
    assert_eq!(events_of(&ns, "players", "WorldSaved").await.len(), 1);
    assert_eq!(events_of(&ns, "players", "WorldSaved").await[0].2, 1, "published once");
    let said = events_of(&ns, "players", "ServerSaid").await;
    assert!(said.len() == 2 && said.iter().all(|e| e.2 == 1), "published once: {said:?}");
    assert_eq!(condition_status(&api.get("players").await.unwrap(), conditions::READY).as_deref(), Some("True"));

    // A restart: mettaton stops the game by typing its stop command (an
    // Event says so); the new container counts from nobody, and its lines
    // are Events too (its report is of a new boot, read from its first line).
    let restart = Patch::Merge(json!({ "metadata": { "annotations": {
        "mettaton.dev/restartedAt": "2026-12-04T00:00:00Z"
    } } }));
    api.patch("players", &PatchParams::default(), &restart).await.unwrap();
    let stops = wait_event(&ns, "players", "StopCommand").await;
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert!(stops[0].1.starts_with("stopping the game (a restart was asked) by typing `stop`"), "{stops:?}");
    wait_players(&api, "players", &[]).await;
    wait_ready(&api, "players", WAIT).await;
    assert!(mettaton_send(&ns, "players", "save").contains("saved world"));
    eventually("the new container's save as an Event", BEHIND + Duration::from_secs(10), || async {
        let times: i32 = events_of(&ns, "players", "WorldSaved").await.iter().map(|e| e.2).sum();
        if times == 2 { Ok(()) } else { Err(times) }
    })
    .await;

    // Stopped: mettaton stops the game by typing its stop command (an Event
    // says so), and nobody plays on a stopped server.
    let stop = Patch::Merge(json!({ "spec": { "state": "Stopped" } }));
    api.patch("players", &PatchParams::default(), &stop).await.unwrap();
    let stopped = wait_phase(&api, "players", Phase::Stopped, WAIT).await;
    let players = players_of(&stopped).expect("players of a stopped server");
    assert_eq!((players.count, players.names.len()), (0, 0));
    assert_eq!(players_metric(&ctl, &ns, "players"), Some(0.0));
    let stops = events_of(&ns, "players", "StopCommand").await;
    let stops: Vec<_> = stops.into_iter().filter(|e| e.1.contains("(state: Stopped)")).collect();
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(
        stops[0].1,
        "stopping the game (state: Stopped) by typing `stop` into the game's console (shutdown.stop); it has 20 s (shutdown.gracePeriodSeconds) to exit before it is killed"
    );

    // Deleted: its series goes with it.
    api.delete("players", &DeleteParams::default()).await.unwrap();
    gone(&api, "players").await;
    eventually("the players series removed", WAIT, || async {
        match players_metric(&ctl, &ns, "players") {
            None => Ok(()),
            Some(v) => Err(v),
        }
    })
    .await;
}

/// A client acting as user `user` (impersonation by the plane's admin).
async fn client_as(user: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    Client::try_from(config).unwrap()
}

/// Without `get` on `pods/proxy`, the controller cannot read the report:
/// it counts the failed reads, and the server stays Ready all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_without_the_pod_proxy_counts_its_failed_reads_and_the_server_stays_ready() {
    ensure_crd().await;
    ensure_supervisor_image().await;
    let ns = TestNamespace::new("real-noproxy").await;
    // The chart's rules for the game namespace, but pods/proxy (and nodes:
    // a ClusterIP service needs no node address).
    let user = "mettaton-without-proxy";
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let children = ["get", "list", "watch", "create", "patch", "delete"];
    let role = Role {
        metadata: kube::api::ObjectMeta { name: Some("no-proxy".into()), ..Default::default() },
        rules: Some(vec![
            rule(&["apps"], &["deployments"], &children),
            rule(&[""], &["services", "persistentvolumeclaims", "configmaps"], &children),
            rule(&[""], &["pods"], &["list", "watch"]),
            rule(&["mettaton.dev"], &["gameservers/finalizers"], &["update"]),
        ]),
    };
    ns.api::<Role>().create(&PostParams::default(), &role).await.unwrap();
    let binding = RoleBinding {
        metadata: kube::api::ObjectMeta { name: Some("no-proxy".into()), ..Default::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "no-proxy".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: user.into(),
            namespace: None,
        }]),
    };
    ns.api::<RoleBinding>().create(&PostParams::default(), &binding).await.unwrap();
    let ctl = RunningController::start(&ns, ns.client.clone(), client_as(user).await);
    let api = ns.api::<GameServer>();
    let mut spec = spec();
    spec["service"] = json!({ "type": "ClusterIP" });
    api.create(&PostParams::default(), &supervised("noproxy", spec)).await.unwrap();

    let failed = |ctl: &RunningController| ctl.counted("mettaton_report_reads_total{result=\"failed\"}");
    eventually("a failed read counted", WAIT, || async {
        let gs = api.get("noproxy").await.map_err(|e| e.to_string())?;
        let ready = condition_status(&gs, conditions::READY);
        if failed(&ctl) > 0 && ready.as_deref() == Some("True") {
            Ok(())
        } else {
            Err(format!("{} failed reads, Ready {ready:?}", failed(&ctl)))
        }
    })
    .await;
    // A read later, still failing, still Ready and Running, nothing read.
    let before = failed(&ctl);
    eventually("another failed read", BEHIND, || async {
        if failed(&ctl) > before { Ok(()) } else { Err(failed(&ctl)) }
    })
    .await;
    let gs = api.get("noproxy").await.unwrap();
    assert_eq!(condition_status(&gs, conditions::READY).as_deref(), Some("True"));
    assert_eq!(gs.status.as_ref().and_then(|s| s.phase), Some(Phase::Running));
    assert_eq!(ctl.counted("mettaton_report_reads_total{result=\"ok\"}"), 0);
    assert!(ctl.is_running());

    // Deleted while it runs: its game is stopped by its stop command.
    api.delete("noproxy", &DeleteParams::default()).await.unwrap();
    gone(&api, "noproxy").await;
    let stops = events_of(&ns, "noproxy", "StopCommand").await;
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert!(stops[0].1.starts_with("stopping the game (the GameServer is deleted) by typing `stop`"), "{stops:?}");
    ctl.stop().await;
}
