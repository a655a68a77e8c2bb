//! GameServers made from game templates, through the controller on the local
//! control plane (its kwok nodes run the pods): the template read from the
//! controller's caches, a missing one or values breaking its rules reported
//! in the status and nothing run, a template created or edited picked up
//! through the template watches. What runs the template's install and config
//! edits for real is the real node's business (`real_node_template`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mettaton::api::{ClusterGameTemplate, GameServer, GameTemplate, Phase, conditions};
use serde_json::json;

use crate::controller::{RunningController, gone};
use crate::fixtures::game_server;
use crate::support::{TestNamespace, counting_client, ensure_crd, eventually, wait_phase};

const WAIT: Duration = Duration::from_secs(60);

/// A template of the test game: a variable with rules, a start command
/// using it, a ready line, a stop, and an install script.
fn template_spec() -> serde_json::Value {
    json!({
        "game": "Test game",
        "images": [{ "name": "Default", "image": "mettaton.test/game:1" }],
        "startup": [{ "name": "Default", "command": "/game --players {{MAX_PLAYERS}} --port {{server.build.default.port}}" }],
        "variables": [
            { "env": "MAX_PLAYERS", "default": "20", "userEditable": true, "rules": "required|integer|between:1,100" }
        ],
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "readyLogLine": ["ready for players"],
        "stop": "stop",
        "install": { "image": "mettaton.test/game:1", "entrypoint": "ash", "script": "echo installed > /mnt/server/installed" }
    })
}

fn game_template(name: &str, spec: serde_json::Value) -> GameTemplate {
    serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameTemplate",
        "metadata": { "name": name }, "spec": spec
    }))
    .unwrap()
}

/// A server of the template `name` of `kind`, with these variables.
fn templated(name: &str, kind: &str, template: &str, variables: serde_json::Value) -> GameServer {
    game_server(
        name,
        json!({
            "template": { "name": template, "kind": kind },
            "variables": variables,
            "storage": { "size": "1Gi" }
        }),
    )
}

/// The server once its Degraded condition has this reason: the condition.
async fn degraded(api: &Api<GameServer>, name: &str, reason: &str) -> (GameServer, String) {
    eventually(&format!("{name} Degraded {reason}"), WAIT, || async {
        let gs = api.get(name).await.map_err(|e| e.to_string())?;
        let c = gs.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::DEGRADED)).cloned();
        match c {
            Some(c) if c.status == "True" && c.reason == reason => Ok((gs, c.message)),
            _ => Err(format!("{:?}", gs.status)),
        }
    })
    .await
}

/// The pod template of the server's Deployment, once it has one.
async fn pod_spec(ns: &TestNamespace, name: &str) -> PodSpec {
    eventually(&format!("the Deployment {name}"), WAIT, || async {
        match ns.api::<Deployment>().get_opt(name).await {
            Ok(Some(d)) => Ok(d.spec.unwrap().template.spec.unwrap()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// The Warning Events about `name` of `reason`: their notes.
async fn warnings(ns: &TestNamespace, name: &str, reason: &str) -> Vec<String> {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_naming_a_missing_template_fails_and_runs_once_the_template_exists() {
    ensure_crd().await;
    let ns = TestNamespace::new("tpl-missing").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &templated("tg", "GameTemplate", "testgame", json!({ "MAX_PLAYERS": "8" })))
        .await
        .unwrap();

    // No template: Failed, naming what it looked for; nothing created.
    let (gs, message) = degraded(&api, "tg", "TemplateNotFound").await;
    assert_eq!(message, format!("GameTemplate {}/testgame not found (spec.template)", ns.name));
    let status = gs.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Failed));
    let ready = status.conditions.iter().find(|c| c.type_ == conditions::READY).unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "TemplateNotFound"));
    assert!(ns.api::<Deployment>().get_opt("tg").await.unwrap().is_none(), "nothing applied");
    eventually("the TemplateNotFound Event", WAIT, || async {
        let notes = warnings(&ns, "tg", "TemplateNotFound").await;
        if notes.iter().any(|n| n == &message) { Ok(()) } else { Err(notes) }
    })
    .await;

    // The template created: the watch brings the server up, as the template says.
    ns.api::<GameTemplate>().create(&PostParams::default(), &game_template("testgame", template_spec())).await.unwrap();
    wait_phase(&api, "tg", Phase::Running, WAIT).await;
    let pod = pod_spec(&ns, "tg").await;
    let game = &pod.containers[0];
    assert_eq!(game.image.as_deref(), Some("mettaton.test/game:1"));
    assert_eq!(game.working_dir.as_deref(), Some("/home/container"));
    let mounts: Vec<(&str, &str)> =
        game.volume_mounts.iter().flatten().map(|m| (m.name.as_str(), m.mount_path.as_str())).collect();
    assert!(mounts.contains(&("data", "/home/container")), "{mounts:?}");
    let env = game.env.as_ref().unwrap();
    let max = env.iter().find(|e| e.name == "MAX_PLAYERS").and_then(|e| e.value.as_deref());
    assert_eq!(max, Some("8"));
    let inits: Vec<&str> = pod.init_containers.iter().flatten().map(|c| c.name.as_str()).collect();
    assert_eq!(inits, ["mettaton-supervisor", "install"]);

    // Teardown needs no template: deleted first, the server still goes.
    ns.api::<GameTemplate>().delete("testgame", &DeleteParams::default()).await.unwrap();
    api.delete("tg", &DeleteParams::default()).await.unwrap();
    gone(&api, "tg").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_breaking_a_rule_fails_the_server_naming_variable_and_rule_and_runs_nothing() {
    ensure_crd().await;
    let ns = TestNamespace::new("tpl-rules").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    ns.api::<GameTemplate>().create(&PostParams::default(), &game_template("testgame", template_spec())).await.unwrap();
    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &templated("bad", "GameTemplate", "testgame", json!({ "MAX_PLAYERS": "500" })))
        .await
        .unwrap();

    let (gs, message) = degraded(&api, "bad", "InvalidVariables").await;
    assert_eq!(gs.status.as_ref().unwrap().phase, Some(Phase::Failed));
    assert!(message.contains("spec.variables.MAX_PLAYERS") && message.contains("between:1,100"), "{message}");
    assert!(ns.api::<Deployment>().get_opt("bad").await.unwrap().is_none(), "never started with a bad value");
    eventually("the InvalidVariables Event", WAIT, || async {
        let notes = warnings(&ns, "bad", "InvalidVariables").await;
        if notes.iter().any(|n| n == &message) { Ok(()) } else { Err(notes) }
    })
    .await;

    // Fixed: it runs.
    let fix = Patch::Merge(json!({ "spec": { "variables": { "MAX_PLAYERS": "50" } } }));
    api.patch("bad", &PatchParams::default(), &fix).await.unwrap();
    wait_phase(&api, "bad", Phase::Running, WAIT).await;
    api.delete("bad", &DeleteParams::default()).await.unwrap();
    gone(&api, "bad").await;
    ctl.stop().await;
}

/// A ClusterGameTemplate, edited while servers run from it: each edit is
/// resolved again. One that resolves rolls out; one the running server's
/// values now break applies nothing, and the server, still running its last
/// plan, stays Running and says it is Degraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_template_edit_is_resolved_again_for_the_servers_naming_it() {
    ensure_crd().await;
    let ns = TestNamespace::new("tpl-edit").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    // Cluster-scoped: named after the test's namespace, and removed at the end.
    let name = format!("testgame-{}", ns.name);
    let cluster = Api::<ClusterGameTemplate>::all(ns.client.clone());
    let template: ClusterGameTemplate = serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "ClusterGameTemplate",
        "metadata": { "name": name }, "spec": template_spec()
    }))
    .unwrap();
    cluster.create(&PostParams::default(), &template).await.unwrap();
    let api = ns.api::<GameServer>();
    api.create(
        &PostParams::default(),
        &templated("edit", "ClusterGameTemplate", &name, json!({ "MAX_PLAYERS": "60" })),
    )
    .await
    .unwrap();
    wait_phase(&api, "edit", Phase::Running, WAIT).await;
    let command = |pod: &PodSpec| pod.containers[0].command.clone().unwrap_or_default().join(" ");
    assert!(command(&pod_spec(&ns, "edit").await).contains("--players ${MAX_PLAYERS}"));

    // A new start command: the Deployment follows.
    let startup = json!({ "spec": { "startup": [{ "name": "Default", "command": "/game --slots {{MAX_PLAYERS}}" }] } });
    cluster.patch(&name, &PatchParams::default(), &Patch::Merge(startup)).await.unwrap();
    eventually("the new start command", WAIT, || async {
        let c = command(&pod_spec(&ns, "edit").await);
        if c.contains("--slots ${MAX_PLAYERS}") { Ok(()) } else { Err(c) }
    })
    .await;
    wait_phase(&api, "edit", Phase::Running, WAIT).await;
    let before = ns.api::<Deployment>().get("edit").await.unwrap().metadata.generation;

    // A rule the server's value breaks: nothing applied, the server keeps running.
    let rules = json!({ "spec": { "variables": [
        { "env": "MAX_PLAYERS", "default": "20", "userEditable": true, "rules": "required|integer|between:1,50" }
    ] } });
    cluster.patch(&name, &PatchParams::default(), &Patch::Merge(rules)).await.unwrap();
    let (gs, message) = degraded(&api, "edit", "InvalidVariables").await;
    assert!(message.contains("MAX_PLAYERS") && message.contains("between:1,50"), "{message}");
    assert_eq!(gs.status.as_ref().unwrap().phase, Some(Phase::Running), "the last plan still runs");
    assert_eq!(ns.api::<Deployment>().get("edit").await.unwrap().metadata.generation, before, "nothing applied");

    api.delete("edit", &DeleteParams::default()).await.unwrap();
    gone(&api, "edit").await;
    cluster.delete(&name, &DeleteParams::default()).await.unwrap();
    ctl.stop().await;
}

/// The templates are read from the controller's caches, and the install
/// container the API server fills in with its defaults compares as applied:
/// once settled, reconciles of a running templated server and of one whose
/// template is missing send no request at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_reconciles_of_templated_servers_send_nothing() {
    ensure_crd().await;
    let ns = TestNamespace::new("tpl-steady").await;
    let (client, requests) = counting_client().await;
    let ctl = RunningController::start(&ns, client.clone(), client);
    ns.api::<GameTemplate>().create(&PostParams::default(), &game_template("testgame", template_spec())).await.unwrap();
    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &templated("calm", "GameTemplate", "testgame", json!({}))).await.unwrap();
    api.create(&PostParams::default(), &templated("lost", "GameTemplate", "nowhere", json!({}))).await.unwrap();
    wait_phase(&api, "calm", Phase::Running, WAIT).await;
    degraded(&api, "lost", "TemplateNotFound").await;
    let settled = eventually("the controller to stop writing", WAIT, || {
        let before = requests.writes().len();
        let requests = requests.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = requests.writes().len();
            if after == before { Ok(after) } else { Err(after - before) }
        }
    })
    .await;
    let reconciles = || ctl.counted("mettaton_reconciles_total");
    let (calls, reconciled) = (requests.calls(), reconciles());

    let touch = Patch::Merge(json!({ "metadata": { "annotations": { "test/touched": "1" } } }));
    for name in ["calm", "lost"] {
        api.patch(name, &PatchParams::default(), &touch).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let writes = requests.writes();
    assert_eq!(writes.len(), settled, "steady-state reconciles wrote: {:?}", &writes[settled..]);
    assert!(reconciles() >= reconciled + 2, "the touches did cause reconciles");
    assert_eq!(requests.calls(), calls, "steady-state reconciles sent requests");
    let counts = crate::controller::event_counts(&ns, "lost").await;
    assert_eq!(counts.get("TemplateNotFound"), Some(&1), "the Warning once, no repeat: {counts:?}");
    for name in ["calm", "lost"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["calm", "lost"] {
        gone(&api, name).await;
    }
    ctl.stop().await;
}
