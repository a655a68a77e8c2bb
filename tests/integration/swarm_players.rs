//! Players and output events on Docker Swarm and plain Docker (issue 15),
//! on the engine of tests/swarm/up: the test game's own join and leave lines
//! (players logged in over its TCP port), counted by mettaton's supervisor in
//! its container and read by exec (`mettaton-supervisor status`), show in
//! `Mettaton::info` and in `mettaton swarm get`/`describe`; the lines of
//! `spec.outputEvents` arrive once each on the facade's `events()` stream;
//! and a GameServer the controller runs on the swarm gets `status.players`
//! and its output lines as Events, as on Kubernetes.

use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use mettaton::api::{GameServer, OutputEventType, PlayersStatus};
use mettaton::facade::{Mettaton, ServerEvent};
use mettaton::orchestrator::docker::DockerOrchestrator;
use mettaton::orchestrator::swarm::SwarmOrchestrator;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::support::{daemon, eventually};
use crate::testgame::{Backend, Scope, game_spec, login, supervisor_image};

const WAIT: Duration = Duration::from_secs(90);
/// The facade's report interval in these tests (the default is 30 s).
const EVERY: Duration = Duration::from_secs(2);
/// How long after a player's line it may take to show in the facade: a read
/// every [`EVERY`], an exec's round trip and this test's polling.
const FACADE_BEHIND: Duration = Duration::from_secs(15);
/// The same for the controller, which reads every 30 s.
const CONTROLLER_BEHIND: Duration = mettaton::reading::INTERVAL.saturating_add(Duration::from_secs(10));

/// The test game under mettaton's supervisor, with its console, its join and
/// leave lines, and two output events: its save and what the server says.
fn spec() -> Value {
    let mut spec = game_spec("players");
    let mut env = spec["env"].as_array().cloned().unwrap_or_default();
    env.push(json!({ "name": "GAME_CONSOLE", "value": "1" }));
    spec["env"] = Value::Array(env);
    spec["command"] = json!(["/testgame"]);
    spec["players"] = json!({
        "joinLine": ["regex:^(?P<player>\\S+) joined the game$"],
        "leaveLine": ["regex:^(\\S+) left the game$"]
    });
    spec["outputEvents"] = json!([
        { "line": "saved world", "reason": "WorldSaved" },
        { "line": "regex:^\\[Server\\] ", "reason": "ServerSaid", "type": "Warning" }
    ]);
    spec
}

fn names(players: &Option<PlayersStatus>) -> Option<(i32, Vec<String>)> {
    players.as_ref().map(|p| (p.count, p.names.clone()))
}

fn want(names: &[&str]) -> Option<(i32, Vec<String>)> {
    Some((names.len() as i32, names.iter().map(|n| n.to_string()).collect()))
}

/// The next output event of server `id` on `events`, within `timeout`.
async fn next_output(
    events: &mut broadcast::Receiver<ServerEvent>,
    id: &str,
    timeout: Duration,
) -> (String, OutputEventType, String) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ServerEvent::Output { id: of, reason, type_, line })) if of == id => return (reason, type_, line),
            Ok(Ok(_)) => {}
            other => panic!("no output event of {id} within {timeout:?}: {other:?}"),
        }
    }
}

/// `mettaton swarm --backend B` as a user runs it: what it printed.
async fn cli<B: Backend>(scope: &Scope<B>, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
        .args(["swarm", "--backend", B::CLI_BACKEND, "-n", &scope.namespace, "--state"])
        .arg(scope.state())
        .args(["--supervisor-image", &supervisor_image().await])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mettaton swarm {args:?} failed: {stderr}{stdout}");
    // Its reads do not fail (they would say so on stderr).
    assert!(!stderr.contains("could not read"), "mettaton swarm {args:?}: {stderr}");
    if !stderr.is_empty() {
        eprintln!("mettaton swarm {args:?} said: {stderr}");
    }
    stdout
}

/// Players logging in and out show in `info` within a few reads; the lines
/// of `spec.outputEvents` (a `say` and a `save` typed into the console)
/// arrive on `events()` once each, with their reason and type; `mettaton
/// swarm get` and `describe` show the players beside the phase.
async fn players_and_output_events_are_read_from_the_supervisor<B: Backend + mettaton::orchestrator::Console>() {
    let scope = Scope::<B>::new("plr");
    let mut facade = Mettaton::<B>::on(daemon(), scope.state())
        .with_supervisor_image(supervisor_image().await)
        .with_report_interval(EVERY);
    facade.connect().await.expect("connects");
    let mut events = facade.events();
    let handle = facade.spawn(&scope.manifest("players", spec())).await.expect("spawns with players and events");
    let id = handle.id.clone();
    let address = handle.address.clone().unwrap();
    let port = handle.ports.iter().find(|p| p.name == "game").unwrap().port;
    // The game runs and its supervisor was read: nobody yet (not unknown).
    let info = eventually("the players read", FACADE_BEHIND, || async {
        let info = facade.info(&id).await.map_err(|e| e.to_string())?;
        if info.players.is_some() { Ok(info) } else { Err(format!("{info:?}")) }
    })
    .await;
    assert_eq!(names(&info.players), want(&[]), "{info:?}");
    assert!(info.healthy, "{info:?}");

    let zoe = login(&address, port, "zoe").expect("zoe logs in");
    let adam = login(&address, port, "adam").expect("adam logs in");
    let seen = |names_wanted: &'static [&'static str]| {
        let facade = &facade;
        let id = &id;
        async move {
            let since = Instant::now();
            eventually(&format!("players {names_wanted:?} in info"), FACADE_BEHIND, || async {
                let info = facade.info(id).await.map_err(|e| e.to_string())?;
                if names(&info.players) == want(names_wanted) { Ok(()) } else { Err(format!("{:?}", info.players)) }
            })
            .await;
            since.elapsed()
        }
    };
    let took = seen(&["adam", "zoe"]).await;
    assert!(took < FACADE_BEHIND, "{took:?}");
    // The CLI, a process of its own (it reads at its first look).
    let table = cli(&scope, &["get"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    // (The phase a new process computes first may be Starting on plain
    // Docker, whose TCP probe it has not run yet.)
    assert_eq!(&header[..3], ["NAME", "PHASE", "PLAYERS"], "{table}");
    assert_eq!((row[0], row[2]), ("players", "2"), "{table}");
    let described = cli(&scope, &["describe", "players"]).await;
    let after_phase = described.lines().skip_while(|l| !l.starts_with("Phase:")).nth(1);
    assert_eq!(after_phase, Some("Players:     2 (adam, zoe)"), "{described}");
    let json: Value = serde_json::from_str(&cli(&scope, &["-o", "json", "get", "players"]).await).unwrap();
    assert_eq!(json[0]["players"]["count"], 2, "{json}");
    assert_eq!(json[0]["players"]["names"], json!(["adam", "zoe"]), "{json}");

    drop(adam);
    seen(&["zoe"]).await;

    // Output events: each line once, in order, with its reason and type.
    facade.send(&id, "say hello from the test").await.expect("sent");
    facade.send(&id, "save").await.expect("sent");
    let said = next_output(&mut events, &id, FACADE_BEHIND).await;
    assert_eq!(said, ("ServerSaid".into(), OutputEventType::Warning, "[Server] hello from the test".into()));
    let saved = next_output(&mut events, &id, FACADE_BEHIND).await;
    assert_eq!(saved, ("WorldSaved".into(), OutputEventType::Normal, "saved world".into()));
    // Reads go on (info reads too): nothing comes twice.
    let until = tokio::time::Instant::now() + EVERY * 3;
    while tokio::time::Instant::now() < until {
        facade.info(&id).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
            Ok(Ok(e @ ServerEvent::Output { .. })) => panic!("an output event again: {e:?}"),
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => panic!("{e}"),
        }
    }
    drop(zoe);
    seen(&[]).await;
    facade.shutdown(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_swarm_players_and_output_events_are_read_from_the_supervisor() {
    players_and_output_events_are_read_from_the_supervisor::<SwarmOrchestrator>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_plain_docker_players_and_output_events_are_read_from_the_supervisor() {
    players_and_output_events_are_read_from_the_supervisor::<DockerOrchestrator>().await;
}

/// A GameServer the controller runs on the swarm (`mettaton controller
/// --backend swarm`, here `controller::run` with the swarm backend): players
/// logged in over TCP reach `status.players` within a read (30 s), and a
/// line of `spec.outputEvents` becomes an Event on the GameServer, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swarm_controllers_server_gets_its_players_in_the_status_and_its_lines_as_events() {
    use kube::api::{DeleteParams, ListParams, PostParams};

    crate::support::ensure_crd().await;
    let image = supervisor_image().await;
    let ns = crate::support::TestNamespace::new("swarm-plr").await;
    let swarm = SwarmOrchestrator::connect(&daemon())
        .await
        .expect("the swarm")
        .with_poll(Duration::from_secs(1))
        .with_supervisor_image(&image);
    let ctl = crate::support::SwarmController::start(&ns, swarm);
    let gs: GameServer = serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
        "metadata": { "name": "players" }, "spec": spec()
    }))
    .unwrap();
    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &gs).await.unwrap();
    let ready = crate::support::wait_ready(&api, "players", WAIT).await;
    let status = ready.status.clone().unwrap();
    let address = status.address.clone().unwrap();
    let port = status.ports.iter().find(|p| p.name == "game").unwrap().port;
    let players_of = |names_wanted: &'static [&'static str]| {
        let api = api.clone();
        async move {
            eventually(&format!("status.players {names_wanted:?}"), CONTROLLER_BEHIND, || async {
                let gs = api.get("players").await.map_err(|e| e.to_string())?;
                let players = gs.status.and_then(|s| s.players);
                if names(&players) == want(names_wanted) { Ok(()) } else { Err(format!("{players:?}")) }
            })
            .await
        }
    };
    players_of(&[]).await;
    let zoe = eventually("zoe logs in", WAIT, || async { login(&address, port, "zoe") }).await;
    players_of(&["zoe"]).await;

    // `mettaton send --backend swarm` types `say`; its line is an Event.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
        .args(["send", "--backend", "swarm", "-n", &ns.name, "players", "--wait", "1", "say hi from kube"])
        .env("KUBECONFIG", crate::support::kubeconfig_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = |ns: &crate::support::TestNamespace| {
        let events = ns.api::<Event>();
        async move {
            let items = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items;
            let said: Vec<(String, String, i32)> = items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("players"))
                .filter(|e| e.reason.as_deref() == Some("ServerSaid"))
                .map(|e| {
                    let times = e.series.as_ref().map_or(1, |s| s.count);
                    (e.type_.unwrap_or_default(), e.note.unwrap_or_default(), times)
                })
                .collect();
            Ok::<_, String>(said)
        }
    };
    let events = eventually("a ServerSaid Event", CONTROLLER_BEHIND, || async {
        let events = said(&ns).await?;
        if events.is_empty() { Err("none".to_string()) } else { Ok(events) }
    })
    .await;
    assert_eq!(events, [("Warning".to_string(), "[Server] hi from kube".to_string(), 1)]);
    drop(zoe);
    players_of(&[]).await;
    // Read again since (the players' change took a read): still once.
    assert_eq!(said(&ns).await.unwrap(), events);

    api.delete("players", &DeleteParams::default()).await.unwrap();
    eventually("players deleted", WAIT, || async {
        match api.get_opt("players").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    ctl.stop().await;
    crate::support::remove_swarm_leftovers(&ns.name);
}
