//! Players and output events on Docker Swarm (issue 15), on the engine of
//! tests/swarm/up: a GameServer the controller runs on the swarm gets the
//! test game's own join and leave lines (players logged in over its TCP
//! port), counted by mettaton's supervisor in its container and read by exec
//! (`mettaton-supervisor status`), in `status.players`, and its output lines
//! as Events, as on Kubernetes.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use mettaton::api::{GameServer, PlayersStatus};
use mettaton::orchestrator::swarm::SwarmOrchestrator;
use serde_json::{Value, json};

use crate::support::{daemon, eventually};
use crate::testgame::{game_spec, supervisor_image};

const WAIT: Duration = Duration::from_secs(90);
/// How long after a player's line it may take to show: the controller reads
/// every 30 s, then an exec's round trip and this test's polling.
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

/// A player logged in over TCP, for as long as the connection is kept:
/// dropping it makes the game print the leave line.
fn login(address: &str, port: i32, name: &str) -> Result<TcpStream, String> {
    let at = format!("{address}:{port}");
    let stream = TcpStream::connect_timeout(&at.parse().map_err(|e| format!("{at}: {e}"))?, Duration::from_secs(5))
        .map_err(|e| format!("connect to {at}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| format!("greeting from {at}: {e}"))?;
    writeln!(&stream, "login {name}").map_err(|e| e.to_string())?;
    line.clear();
    reader.read_line(&mut line).map_err(|e| format!("login at {at}: {e}"))?;
    if line.trim_end() != format!("logged in as {name}") {
        return Err(format!("login answered {line:?}"));
    }
    Ok(stream)
}

fn names(players: &Option<PlayersStatus>) -> Option<(i32, Vec<String>)> {
    players.as_ref().map(|p| (p.count, p.names.clone()))
}

fn want(names: &[&str]) -> Option<(i32, Vec<String>)> {
    Some((names.len() as i32, names.iter().map(|n| n.to_string()).collect()))
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ctl = tokio::spawn(mettaton::controller::run(ns.client.clone(), swarm, Some(ns.name.clone()), async move {
        let _ = stopped.await;
    }));
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
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), ctl).await.unwrap().unwrap();
    crate::support::remove_swarm_leftovers(&ns.name);
}
