//! Inside the server, on Docker Swarm and on plain Docker (issue 15), through
//! the library facade and the `mettaton swarm` CLI on the engine of
//! tests/swarm/up: mettaton's supervisor, from its own image (imported into
//! the engine, `testgame::supervisor_image`) through its volume, runs the
//! test game in its container; the server is ready only once the game
//! printed its "Done" line; what `Mettaton::send`, `mettaton swarm send` and
//! the consoles type reaches the game, and its answer is printed; `state:
//! Stopped`, a restart and deletion stop it by typing its stop command (the
//! saved bytes checked on the volume); a supervisor image that is nowhere is
//! refused, naming it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mettaton::facade::{Applied, Error, Mettaton};
use mettaton::orchestrator::Console;
use mettaton::orchestrator::docker::DockerOrchestrator;
use mettaton::orchestrator::swarm::SwarmOrchestrator;
use serde_json::{Value, json};

use crate::support::{daemon, docker, eventually};
use crate::testgame::{Backend, Scope, game_spec, say_through_console, supervisor_image, tcp_exchange};

const WAIT: Duration = Duration::from_secs(90);

/// The test game started by mettaton's supervisor (`command` given), with
/// its console on, and `extra` over it (its `env` added to the console's).
fn supervised(extra: Value) -> Value {
    let mut spec = game_spec("console");
    let mut env = spec["env"].as_array().cloned().unwrap_or_default();
    env.push(json!({ "name": "GAME_CONSOLE", "value": "1" }));
    env.extend(extra["env"].as_array().cloned().unwrap_or_default());
    spec["env"] = Value::Array(env);
    spec["command"] = json!(["/testgame"]);
    for (key, value) in extra.as_object().unwrap() {
        if key != "env" {
            spec[key] = value.clone();
        }
    }
    spec
}

/// The facade of `scope` with the tests' supervisor image, connected.
async fn facade<B: Backend>(scope: &Scope<B>) -> Mettaton<B> {
    let mut facade = Mettaton::<B>::on(daemon(), scope.state()).with_supervisor_image(supervisor_image().await);
    facade.connect().await.expect("connects");
    facade
}

/// The directory on this machine behind server `name`'s data volume.
async fn volume_dir<B: Backend>(scope: &Scope<B>, name: &str, spec: &Value) -> PathBuf {
    let spec = serde_json::from_value(spec.clone()).unwrap();
    let volume = B::volume_name(&mettaton::plan::plan_spec(name, &scope.namespace, &spec));
    PathBuf::from(docker().inspect_volume(&volume).await.expect("the data volume").mountpoint)
}

/// The world on the volume, as the test game saves it.
fn world(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("world.sav")).unwrap_or_else(|e| format!("no world.sav: {e}"))
}

/// The log of server `name`'s running container, read from the engine.
async fn container_log<B: Backend>(scope: &Scope<B>, name: &str) -> Option<String> {
    engine_container_log(&scope.namespace, name).await
}

/// A player's line to the test game over TCP: its answer.
fn play(address: &str, port: i32, line: &str) -> String {
    let stream = TcpStream::connect((address, port as u16)).expect("TCP connection to the game server");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    (&stream).write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    answer.trim().to_string()
}

/// `mettaton swarm --backend B` as a user runs it, in `scope`'s namespace
/// and state, with the tests' supervisor image.
async fn cli<B: Backend>(scope: &Scope<B>, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"));
    cmd.args(["swarm", "--backend", B::CLI_BACKEND, "-n", &scope.namespace, "--state"])
        .arg(scope.state())
        .args(["--supervisor-image", &supervisor_image().await])
        .args(args);
    cmd
}

/// `mettaton swarm send`: what it printed.
async fn mettaton_send<B: Backend>(scope: &Scope<B>, name: &str, line: &str) -> String {
    let out = cli(scope, &["send", name, "--wait", "3", line]).await.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "mettaton swarm send failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Ready only after the done line (the game listens, which a TCP probe
/// alone would take for ready, 6 s before it); `Mettaton::send`, `mettaton
/// swarm send`, a library console session and `mettaton swarm console` all
/// reach the game's console, and what it answers is printed.
async fn the_done_line_makes_it_ready_and_the_consoles_reach_the_game<B: Backend + Console>() {
    let scope = Scope::<B>::new("con");
    let facade = facade(&scope).await;
    let spec = supervised(json!({
        "env": [
            { "name": "GAME_DONE_AFTER_SECONDS", "value": "6" },
            { "name": "GAME_SAVE_FILE", "value": "/data/world.sav" }
        ],
        "storage": { "size": "1Gi", "mountPath": "/data", "reclaimPolicy": "Delete" },
        // The done line and the TCP probe, both.
        "health": { "readyLogLine": ["regex:^Done \\(", "never printed"], "probe": { "tcpPort": "game" }, "periodSeconds": 1 }
    }));
    let id = format!("{}/done", scope.namespace);
    let spawned = std::sync::atomic::AtomicBool::new(false);
    let spawn = async {
        let handle = facade.spawn(&scope.manifest("done", spec.clone())).await;
        spawned.store(true, std::sync::atomic::Ordering::SeqCst);
        handle
    };
    // While spawn waits: every look that shows the game listening without
    // its done line shows it not healthy; healthy, the line is in the log.
    // (The container's own log: swarm serves a service's log only from
    // tasks that run, and a task waiting for its healthcheck is `starting`.)
    let watch = async {
        let mut listening_unready = 0;
        while !spawned.load(std::sync::atomic::Ordering::SeqCst) {
            if let (Ok(info), Some(log)) = (facade.info(&id).await, container_log(&scope, "done").await) {
                if info.healthy {
                    assert!(log.contains("Done (6.000s)!"), "healthy before the done line:\n{log}");
                } else if log.contains("game server listening") && !log.contains("Done (") {
                    listening_unready += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        listening_unready
    };
    let (handle, listening_unready) = tokio::join!(spawn, watch);
    let handle = handle.expect("spawns once the done line is printed");
    assert!(listening_unready > 0, "never seen listening and not healthy");
    let log = facade.logs(&id, None).await.unwrap();
    assert!(log.contains("Done (6.000s)!"), "{log}");
    assert!(facade.info(&id).await.unwrap().healthy);
    // A player reaches it as before: the supervisor changes nothing of the game.
    let address = handle.address.clone().unwrap();
    let tcp = handle.ports.iter().find(|p| p.name == "game").unwrap().port;
    assert_eq!(tcp_exchange(&address, tcp).1, "echo: ping");

    // The library: the line reaches the game, which answers in its log.
    facade.send(&id, "say hello from the library").await.expect("sent");
    eventually("the game's answer in its log", WAIT, || async {
        let log = facade.logs(&id, None).await.map_err(|e| e.to_string())?;
        if log.contains("console: say hello from the library") && log.contains("[Server] hello from the library") {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
    assert!(matches!(facade.send(&id, "two\nlines").await, Err(Error::Invalid(_))));

    // `mettaton swarm send`: the game does what it says, and its answer is printed.
    let dir = volume_dir(&scope, "done", &spec).await;
    assert!(!dir.join("world.sav").exists(), "no save before it is asked");
    let answer = mettaton_send(&scope, "done", "save").await;
    assert!(answer.contains("console: save") && answer.contains("saved world"), "{answer}");
    assert_eq!(world(&dir), "starts=1\ndata=\n", "the console's save is on the volume");

    // A session of the library: the output as it comes.
    let mut session = facade.console(&id).await.expect("a console session");
    session.write_line("say typed in a session").await.unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains("[Server] typed in a session") {
        match tokio::time::timeout_at(deadline, session.output.next()).await {
            Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            other => panic!("no answer in the session ({other:?}); it printed:\n{seen}"),
        }
    }
    session.close().await.expect("the session closes once its input was delivered");

    // `mettaton swarm console`: each typed line sent; Ctrl-D (end of input)
    // leaves, and the server goes on.
    let console = cli(&scope, &["console", "done"])
        .await
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    say_through_console(console, "typed at a terminal").await;
    assert!(facade.info(&id).await.unwrap().healthy, "the server goes on");
    facade.shutdown(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_swarm_the_done_line_makes_it_ready_and_the_consoles_reach_the_game() {
    the_done_line_makes_it_ready_and_the_consoles_reach_the_game::<SwarmOrchestrator>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_plain_docker_the_done_line_makes_it_ready_and_the_consoles_reach_the_game() {
    the_done_line_makes_it_ready_and_the_consoles_reach_the_game::<DockerOrchestrator>().await;
}

/// A game that ignores SIGTERM (`GAME_STOP_ON=console`): only its console's
/// `stop` saves it; killed at the end of its grace period it would save
/// nothing. `state: Stopped`, a restart and deletion each save it, well
/// within the grace period.
async fn stopped_restarted_and_deleted_servers_save_through_their_console_stop<B: Backend>() {
    let scope = Scope::<B>::new("stop");
    let facade = facade(&scope).await;
    let spec = supervised(json!({
        "env": [
            { "name": "GAME_STOP_ON", "value": "console" },
            { "name": "GAME_SAVE_FILE", "value": "/data/world.sav" }
        ],
        "storage": { "size": "1Gi", "mountPath": "/data", "reclaimPolicy": "Retain" },
        "shutdown": { "stop": "stop", "gracePeriodSeconds": 30 }
    }));
    let handle = facade.spawn(&scope.manifest("stop", spec.clone())).await.expect("spawns");
    let id = handle.id.clone();
    let dir = volume_dir(&scope, "stop", &spec).await;
    let tcp = |h: &mettaton::facade::ServerHandle| {
        (h.address.clone().unwrap(), h.ports.iter().find(|p| p.name == "game").unwrap().port)
    };
    let (address, port) = tcp(&handle);
    assert_eq!(play(&address, port, "set alpha"), "set: alpha");

    // state: Stopped.
    let mut stopped = spec.clone();
    stopped["state"] = json!("Stopped");
    let stopping = Instant::now();
    assert!(matches!(facade.apply(&scope.manifest("stop", stopped)).await.unwrap(), Applied::Updated { .. }));
    eventually("the stopped game's save", WAIT, || async {
        let w = world(&dir);
        if w == "starts=1\ndata=alpha\n" { Ok(()) } else { Err(w) }
    })
    .await;
    eventually("the game stopped", WAIT, || async {
        let info = facade.info(&id).await.map_err(|e| e.to_string())?;
        if info.phase == mettaton::api::Phase::Stopped { Ok(()) } else { Err(format!("{info:?}")) }
    })
    .await;
    assert!(stopping.elapsed() < Duration::from_secs(25), "stopped by its command, not killed after the grace period");
    let log = facade.logs(&id, None).await.unwrap_or_default();
    assert!(!log.contains("got terminated, ignored"), "the game got no SIGTERM, its stop:\n{log}");

    // A restart stops it the same way.
    let handle = match facade.apply(&scope.manifest("stop", spec.clone())).await.unwrap() {
        Applied::Updated { handle, .. } => handle,
        other => panic!("{other:?}"),
    };
    let (address, port) = tcp(&handle);
    assert_eq!(play(&address, port, "set beta"), "set: beta");
    let restarting = Instant::now();
    let handle = facade.restart(&id).await.expect("restarts");
    assert_eq!(world(&dir), "starts=2\ndata=beta\n", "saved before the new one started");
    assert!(restarting.elapsed() < Duration::from_secs(25), "{:?}", restarting.elapsed());
    let (address, port) = tcp(&handle);
    assert_eq!(play(&address, port, "get"), "world: starts=3 data=beta");
    assert_eq!(play(&address, port, "set gamma"), "set: gamma");

    // Deletion.
    let deleting = Instant::now();
    facade.shutdown(&id).await.expect("shuts down");
    assert_eq!(world(&dir), "starts=3\ndata=gamma\n");
    assert!(deleting.elapsed() < Duration::from_secs(25), "{:?}", deleting.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_swarm_stopped_restarted_and_deleted_servers_save_through_their_console_stop() {
    stopped_restarted_and_deleted_servers_save_through_their_console_stop::<SwarmOrchestrator>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_plain_docker_stopped_restarted_and_deleted_servers_save_through_their_console_stop() {
    stopped_restarted_and_deleted_servers_save_through_their_console_stop::<DockerOrchestrator>().await;
}

/// A supervisor image that neither the engine has nor any registry gives is
/// refused before anything of the server is made, the image named with the
/// fields that need it and how another is given.
async fn a_supervisor_image_that_is_nowhere_is_refused_naming_it<B: Backend>() {
    let missing = "127.0.0.1:5999/mettaton-supervisor:nowhere";
    let scope = Scope::<B>::new("nosup");
    let mut facade = Mettaton::<B>::on(daemon(), scope.state()).with_supervisor_image(missing);
    facade.connect().await.unwrap();
    let spec = supervised(json!({
        "storage": { "size": "1Gi", "mountPath": "/data", "reclaimPolicy": "Delete" },
        "shutdown": { "stop": "stop" }
    }));
    match facade.spawn(&scope.manifest("nosup", spec.clone())).await {
        Err(Error::ImageMissing { image, reason }) => {
            assert_eq!(image, missing);
            assert!(reason.contains("mettaton's supervisor image, which spec.shutdown.stop needs"), "{reason}");
            assert!(reason.contains("--supervisor-image"), "{reason}");
        }
        other => panic!("expected the supervisor's image missing, got {other:?}"),
    }
    let err = facade.spawn(&scope.manifest("nosup", spec.clone())).await.unwrap_err();
    assert!(err.to_string().starts_with(&format!("image {missing} not found")), "{err}");
    // Nothing of the server was made.
    assert!(facade.list().await.unwrap().is_empty());
    let backend = B::connect(&daemon()).await.unwrap();
    assert!(!backend.list_managed().await.unwrap().iter().any(|k| k.namespace == scope.namespace));
    let plan = mettaton::plan::plan_spec("nosup", &scope.namespace, &serde_json::from_value(spec).unwrap());
    assert!(!backend.volume_exists(&plan).await.unwrap(), "no volume left");
    // Without the supervisor, the same game runs.
    let handle = facade.spawn(&scope.manifest("plain", game_spec("console"))).await.expect("spawns unsupervised");
    facade.shutdown(&handle.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_swarm_a_supervisor_image_that_is_nowhere_is_refused_naming_it() {
    a_supervisor_image_that_is_nowhere_is_refused_naming_it::<SwarmOrchestrator>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_plain_docker_a_supervisor_image_that_is_nowhere_is_refused_naming_it() {
    a_supervisor_image_that_is_nowhere_is_refused_naming_it::<DockerOrchestrator>().await;
}

/// A GameServer the controller runs on the swarm (`mettaton controller
/// --backend swarm`, here `controller::run` with the swarm backend and the
/// tests' supervisor image): Ready only after its done line, `mettaton send
/// --backend swarm` (the GameServer read from the API server, typed through
/// the manager's engine) prints the game's answer, and `state: Stopped` saves
/// a SIGTERM-ignoring game through its console stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swarm_controllers_server_is_ready_after_its_done_line_and_mettaton_send_reaches_it() {
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    use mettaton::api::{GameServer, Phase, conditions};

    crate::support::ensure_crd().await;
    let image = supervisor_image().await;
    let ns = crate::support::TestNamespace::new("swarm-con").await;
    let swarm = SwarmOrchestrator::connect(&daemon())
        .await
        .expect("the swarm")
        .with_poll(Duration::from_secs(1))
        .with_supervisor_image(&image);
    let ctl = crate::support::SwarmController::start(&ns, swarm);
    let spec = supervised(json!({
        "env": [
            { "name": "GAME_DONE_AFTER_SECONDS", "value": "5" },
            { "name": "GAME_STOP_ON", "value": "console" },
            { "name": "GAME_SAVE_FILE", "value": "/data/world.sav" }
        ],
        "storage": { "size": "1Gi", "mountPath": "/data", "reclaimPolicy": "Retain" },
        "health": { "readyLogLine": ["regex:^Done \\("], "periodSeconds": 1 },
        "shutdown": { "stop": "stop", "gracePeriodSeconds": 30 }
    }));
    let gs: GameServer = serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
        "metadata": { "name": "done" }, "spec": spec
    }))
    .unwrap();
    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &gs).await.unwrap();
    let listening_unready = std::sync::atomic::AtomicUsize::new(0);
    let ready = eventually("Ready on the swarm", WAIT, || async {
        let gs = api.get("done").await.map_err(|e| e.to_string())?;
        let log = engine_container_log(&ns.name, "done").await.unwrap_or_default();
        if crate::support::condition_status(&gs, conditions::READY).as_deref() == Some("True") {
            assert!(log.contains("Done (5.000s)!"), "Ready before the done line:\n{log}");
            return Ok(gs);
        }
        if log.contains("game server listening") && !log.contains("Done (") {
            listening_unready.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Err(format!("not ready; log:\n{log}"))
    })
    .await;
    assert!(listening_unready.into_inner() > 0, "never seen listening and not Ready");
    let volume = mettaton::orchestrator::swarm::builders::volume_name(&mettaton::plan::plan(&ready));
    let status = ready.status.unwrap();
    let port = status.ports.iter().find(|p| p.name == "game").unwrap().port;
    assert_eq!(play(status.address.as_deref().unwrap(), port, "set kube"), "set: kube");

    // `mettaton send --backend swarm`, as a user runs it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
        .args(["send", "--backend", "swarm", "-n", &ns.name, "done", "--wait", "3", "say hello through the controller"])
        .env("KUBECONFIG", crate::support::kubeconfig_path())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}{printed}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("[Server] hello through the controller"), "{printed}");
    // Without --backend, the Kubernetes backend finds no pod of it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
        .args(["send", "-n", &ns.name, "done", "x"])
        .env("KUBECONFIG", crate::support::kubeconfig_path())
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no pod runs the server"));

    // state: Stopped saves it through its console stop.
    let dir = PathBuf::from(docker().inspect_volume(&volume).await.unwrap().mountpoint);
    api.patch("done", &PatchParams::default(), &Patch::Merge(&json!({ "spec": { "state": "Stopped" } })))
        .await
        .unwrap();
    crate::support::wait_phase(&api, "done", Phase::Stopped, WAIT).await;
    assert_eq!(world(&dir), "starts=1\ndata=kube\n");

    api.delete("done", &DeleteParams::default()).await.unwrap();
    eventually("done deleted", WAIT, || async {
        match api.get_opt("done").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    ctl.stop().await;
    crate::support::remove_swarm_leftovers(&ns.name);
}

/// The log of the running container of server `name` of `namespace`.
async fn engine_container_log(namespace: &str, name: &str) -> Option<String> {
    use bollard::query_parameters::{ListContainersOptionsBuilder, LogsOptionsBuilder};
    let labels = vec![format!("mettaton.dev/gameserver={name}"), format!("mettaton.dev/namespace={namespace}")];
    let filters = std::collections::HashMap::from([("label".to_string(), labels)]);
    let docker = docker();
    let options = ListContainersOptionsBuilder::default().filters(&filters).build();
    let id = docker.list_containers(Some(options)).await.ok()?.into_iter().next()?.id?;
    let options = LogsOptionsBuilder::default().stdout(true).stderr(true).build();
    let mut log = docker.logs(&id, Some(options));
    let mut text = String::new();
    while let Some(chunk) = log.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.ok()?.into_bytes()));
    }
    Some(text)
}
