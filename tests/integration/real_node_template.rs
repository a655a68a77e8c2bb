//! A GameServer made from a template on the real node (issue 16): the test
//! game's ClusterGameTemplate (tests/templates/testgame.yaml) with a
//! five-line server naming it. Its install script runs once, in its own
//! image, before the first start, and again only when asked
//! (`mettaton reinstall`); the supervisor edits the files the script made in
//! four parsers before every start, with the server's variables and port
//! filled in; Ready comes from the game's "Done" line; Stopped types the
//! template's stop command into the console, and the world is saved. An
//! install script that fails is a Failed server with its last lines.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mettaton::api::{ClusterGameTemplate, GameServer, Phase, conditions};
use serde_json::{Value, json};

use crate::fixtures::game_server;
use crate::real_node_common::{live_pod, volume_dir, world};
use crate::real_node_console::start;
use crate::support::{TestNamespace, eventually, kubeconfig_path, root, wait_phase, wait_ready};

const WAIT: Duration = Duration::from_secs(180);

/// The test game's template (tests/templates/testgame.yaml), named for the
/// test: a cluster-wide object, so the name is the namespace's own.
pub(crate) fn test_template(name: &str) -> ClusterGameTemplate {
    let text = std::fs::read_to_string(root().join("tests/templates/testgame.yaml")).unwrap();
    let mut template: ClusterGameTemplate = serde_yaml::from_str(&text).unwrap();
    template.metadata.name = Some(name.to_string());
    template
}

/// Deletes a ClusterGameTemplate when dropped.
struct Created(Api<ClusterGameTemplate>, String);

impl Drop for Created {
    fn drop(&mut self) {
        let (api, name) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async move {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            })
        })
        .join();
    }
}

async fn create_template(ns: &TestNamespace, template: ClusterGameTemplate) -> Created {
    let api = Api::<ClusterGameTemplate>::all(ns.client.clone());
    let name = template.metadata.name.clone().unwrap();
    api.create(&PostParams::default(), &template).await.unwrap();
    Created(api, name)
}

/// The five lines a user writes, and what the real node needs (its label
/// and taint).
fn templated(name: &str, template: &str, variables: Value) -> GameServer {
    game_server(
        name,
        json!({
            "template": { "name": template, "kind": "ClusterGameTemplate" },
            "variables": variables,
            "storage": { "size": "1Gi" },
            "nodeSelector": { "type": "real" },
            "tolerations": [{ "operator": "Exists", "effect": "NoSchedule" }]
        }),
    )
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| format!("no {file}: {e}"))
}

/// What the install script and the config edits left on the volume.
pub(crate) fn assert_installed_and_edited(dir: &Path, runs: usize) {
    assert_eq!(read(dir, "install-runs").lines().count(), runs, "install runs: {}", read(dir, "install-runs"));
    let properties = read(dir, "server.properties");
    assert!(properties.starts_with("# the test game\n"), "the comment kept: {properties}");
    for line in ["server-port=7777", "motd=arena on mettaton", "max-players=20"] {
        assert!(properties.lines().any(|l| l == line), "{line} in {properties}");
    }
    let config: Value = serde_json::from_str(&read(dir, "config.json")).unwrap();
    assert_eq!(config["game"], json!({ "maxPlayers": 50, "mode": "creative" }), "{config}");
    assert_eq!(config["tags"], json!(["a", "b"]));
    let settings: Value = serde_yaml::from_str(&read(dir, "settings.yml")).unwrap();
    assert_eq!(settings["world"], json!({ "name": "arena", "seed": 42 }), "{settings}");
    let ini = read(dir, "game.ini");
    assert!(ini.lines().any(|l| l.trim() == "Port=7777" || l.trim() == "Port = 7777"), "{ini}");
    assert!(ini.lines().any(|l| l.trim() == "Name=x" || l.trim() == "Name = x"), "{ini}");
}

async fn game_log(ns: &TestNamespace, pod: &str, container: &str) -> String {
    let params = kube::api::LogParams { container: Some(container.into()), ..Default::default() };
    ns.api::<Pod>().logs(pod, &params).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templated_server_installs_once_runs_with_its_files_edited_and_stops_through_its_console() {
    let (ns, _controller, api) = start("real-tmpl").await;
    let _template = create_template(&ns, test_template(&ns.name)).await;
    let gs = templated("arena", &ns.name, json!({ "GAME_NAME": "arena", "MAX_PLAYERS": "50" }));
    api.create(&PostParams::default(), &gs).await.unwrap();

    let gs = wait_ready(&api, "arena", WAIT).await;
    let dir = volume_dir(&ns, "arena-data").await;
    assert_installed_and_edited(&dir, 1);
    let pod = live_pod(&ns, "arena").await;
    let pod_name = pod.metadata.name.clone().unwrap();
    // The install ran in its own container, its log kept on the volume.
    let install = game_log(&ns, &pod_name, "install").await;
    assert!(install.contains("installed the test game"), "{install}");
    assert!(read(&dir, ".mettaton-install.log").contains("installed the test game"));
    // The game started in the files' directory with the edited files, on the
    // template's port, and was Ready once it printed its "Done" line.
    let log = game_log(&ns, &pod_name, "game").await;
    assert!(log.contains("game server listening tcp=7777"), "{log}");
    assert!(log.contains("motd=arena on mettaton"), "the game read the edited file: {log}");
    let done = log.find("Done (").unwrap_or_else(|| panic!("no Done line: {log}"));
    assert!(log.find("game server listening").unwrap() < done, "{log}");
    let game = pod.spec.as_ref().unwrap().containers.iter().find(|c| c.name == "game").unwrap();
    assert_eq!(game.working_dir.as_deref(), Some("/home/container"));
    let probe = game.readiness_probe.as_ref().and_then(|p| p.exec.as_ref()).and_then(|e| e.command.clone());
    assert!(probe.is_some_and(|c| c.iter().any(|a| a == "probe")), "readiness from the supervisor's ready line");
    assert_eq!(gs.status.as_ref().unwrap().address.as_deref(), Some(crate::real_node_common::NODE_IP));

    // Stopped: the template's stop command typed into the console (the test
    // game ignores signals with GAME_STOP_ON=console), and the world saved.
    api.patch("arena", &PatchParams::default(), &Patch::Merge(&json!({ "spec": { "state": "Stopped" } })))
        .await
        .unwrap();
    wait_phase(&api, "arena", Phase::Stopped, WAIT).await;
    assert_eq!(world(&dir), "starts=1\ndata=\n", "saved through the console's stop");

    // Running again: no second install; the edits are made again (the
    // install's files are kept as the edits left them).
    api.patch("arena", &PatchParams::default(), &Patch::Merge(&json!({ "spec": { "state": "Running" } })))
        .await
        .unwrap();
    wait_ready(&api, "arena", WAIT).await;
    assert_installed_and_edited(&dir, 1);
    let pod = live_pod(&ns, "arena").await.metadata.name.unwrap();
    let log = game_log(&ns, &pod, "game").await;
    assert!(log.contains("loaded world starts=2"), "the saved world loaded: {log}");
    let install = game_log(&ns, &pod, "install").await;
    assert!(install.contains("install: already done (initial)"), "{install}");

    // Asked again: the install runs again, and the edits follow it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
        .args(["reinstall", "arena", "-n", &ns.name])
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually("the second install", WAIT, || async {
        let runs = read(&dir, "install-runs").lines().count();
        if runs == 2 { Ok(()) } else { Err(format!("{runs} install runs")) }
    })
    .await;
    wait_ready(&api, "arena", WAIT).await;
    assert_installed_and_edited(&dir, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_install_is_a_failed_server_with_the_scripts_last_lines() {
    let (ns, _controller, api) = start("real-tmpl-bad").await;
    let mut template = test_template(&ns.name);
    template.spec.0.install.as_mut().unwrap().script =
        "echo preparing\necho 'no space left for the world' >&2\nexit 3\n".into();
    let _template = create_template(&ns, template).await;
    api.create(&PostParams::default(), &templated("broken", &ns.name, json!({}))).await.unwrap();

    let gs = wait_phase(&api, "broken", Phase::Failed, WAIT).await;
    let degraded = gs.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == conditions::DEGRADED).cloned();
    let degraded = degraded.expect("a Degraded condition");
    assert_eq!(degraded.reason, "InstallFailed", "{degraded:?}");
    assert!(degraded.message.contains("no space left for the world"), "{}", degraded.message);
    assert!(degraded.message.contains("3"), "the exit code: {}", degraded.message);
    // The game never started.
    let pod = live_pod(&ns, "broken").await;
    let game = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first().cloned());
    assert!(game.is_none_or(|g| g.state.and_then(|s| s.running).is_none()), "the game did not run");
}
