//! A second writer on mettaton's children (issue 7, item 4): another field
//! manager edits a managed Deployment or Service. The controller, woken by its
//! watch on the children, takes back the fields it owns; it keeps what the other
//! writer added to fields it does not own, and it does not fight over them: once
//! converged it writes nothing, even when reconciles run.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mettaton::api::GameServer;
use serde_json::{Value, json};

use crate::controller::RunningController;
use crate::fixtures::game_server;
use crate::support::{Requests, TestNamespace, api_status, counting_client, ensure_crd, eventually, wait_ready};

const WAIT: Duration = Duration::from_secs(60);
const INTRUDER: &str = "intruder";
/// The field manager `kubectl edit` and `kubectl patch` write under.
const KUBECTL: &str = "kubectl-edit";

fn arena_spec() -> Value {
    json!({
        "image": "mettaton.test/arena:1",
        "env": [{ "name": "MAP", "value": "dust" }],
        "ports": [
            { "name": "game", "containerPort": 7777 },
            { "name": "voice", "containerPort": 9987, "protocol": "UDP" }
        ],
        "storage": { "size": "1Gi" },
        "config": [{ "path": "/etc/arena/server.cfg", "content": "maxplayers=16" }],
        "shutdown": { "gracePeriodSeconds": 5, "stopCommand": ["arena-cli", "save"] }
    })
}

fn game_container(d: &Deployment) -> Container {
    d.spec.clone().unwrap().template.spec.unwrap().containers.into_iter().find(|c| c.name == "game").unwrap()
}

fn service_ports(s: &Service) -> Vec<(String, i32, String)> {
    let mut ports: Vec<(String, i32, String)> = s
        .spec
        .clone()
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port, format!("{:?}", p.target_port)))
        .collect();
    ports.sort();
    ports
}

/// A patch under another field manager (an update, as `kubectl edit` and
/// `kubectl patch` make).
fn edit_by(manager: &str) -> PatchParams {
    PatchParams { field_manager: Some(manager.into()), ..Default::default() }
}

/// A controller (counting its requests) on a new namespace named after
/// `prefix`, and the GameServer "arena" of `spec` Ready under it.
async fn arena(prefix: &str, spec: Value) -> (TestNamespace, Requests, RunningController, Api<GameServer>) {
    ensure_crd().await;
    let ns = TestNamespace::new(prefix).await;
    let (client, requests) = counting_client().await;
    let ctl = RunningController::start(&ns, client.clone(), client);
    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &game_server("arena", spec)).await.unwrap();
    wait_ready(&api, "arena", WAIT).await;
    (ns, requests, ctl, api)
}

/// Two reconciles of the settled "arena" write nothing, and leave its
/// Deployment and Service as they are; `settled` is the writes made so far.
async fn reconciles_write_nothing(
    ns: &TestNamespace,
    ctl: &RunningController,
    requests: &Requests,
    settled: usize,
    why: &str,
) {
    let versions = || async {
        let deployment = ns.api::<Deployment>().get("arena").await.unwrap();
        let service = ns.api::<Service>().get("arena").await.unwrap();
        (deployment.resource_version(), service.resource_version())
    };
    let before = versions().await;
    for round in 1..=2 {
        let writes = reconcile_once(ctl, &ns.api::<GameServer>(), "arena", requests, round).await;
        assert_eq!(writes, vec![], "{why}");
    }
    assert_eq!(versions().await, before, "neither child changed");
    assert_eq!(requests.writes().len(), settled);
}

/// Waits until the controller has written nothing for 3 s in a row, and
/// returns how many writes it had made by then.
async fn quiet(requests: &Requests) -> usize {
    eventually("the controller to stop writing", WAIT, || {
        let before = requests.writes().len();
        let requests = requests.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = requests.writes().len();
            if after == before { Ok(after) } else { Err(requests.writes()[before..].to_vec()) }
        }
    })
    .await
}

/// Makes the controller reconcile `name` (a GameServer annotation changes,
/// which is no change of spec), waits until that reconcile ran and the
/// controller is quiet again, and returns the writes it made.
async fn reconcile_once(
    ctl: &RunningController,
    api: &Api<GameServer>,
    name: &str,
    requests: &Requests,
    round: u32,
) -> Vec<(http::Method, String)> {
    let writes_before = requests.writes().len();
    let reconciles_before = ctl.counted("mettaton_reconciles_total");
    let touch = Patch::Merge(json!({ "metadata": { "annotations": { "test/touched": round.to_string() } } }));
    api.patch(name, &PatchParams::default(), &touch).await.unwrap();
    eventually("a reconcile after the touch", WAIT, || async {
        let done = ctl.counted("mettaton_reconciles_total") - reconciles_before;
        if done >= 1 { Ok(()) } else { Err(done) }
    })
    .await;
    // Let that reconcile finish what it started.
    quiet(requests).await;
    requests.writes()[writes_before..].to_vec()
}

/// Who manages which top-level field of the game container, from the
/// Deployment's managedFields: manager → does it own `image`.
fn owns_image(d: &Deployment, manager: &str) -> bool {
    d.metadata.managed_fields.iter().flatten().filter(|m| m.manager.as_deref() == Some(manager)).any(|m| {
        let fields = serde_json::to_value(&m.fields_v1).unwrap();
        fields.pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"game\"}/f:image").is_some()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writers_changes_to_owned_fields_are_undone_and_its_own_fields_kept() {
    let (ns, requests, ctl, api) = arena("conflict-edit", arena_spec()).await;
    let deployments = ns.api::<Deployment>();
    let services = ns.api::<Service>();
    let original_ports = service_ports(&services.get("arena").await.unwrap());

    // kubectl edit: the image, the replicas and a Service port's target are
    // mettaton's; the annotations and labels added are not.
    let edit = Patch::Strategic(json!({
        "metadata": { "labels": { "team": "blue" }, "annotations": { "example.org/owner": "ops" } },
        "spec": {
            "replicas": 3,
            "template": { "spec": { "containers": [{ "name": "game", "image": "intruder/arena:6" }] } }
        }
    }));
    deployments.patch("arena", &edit_by(KUBECTL), &edit).await.unwrap();
    let edit = Patch::Strategic(json!({
        "metadata": { "annotations": { "example.org/dns": "arena.example.org" } },
        "spec": { "ports": [{ "port": 7777, "targetPort": 8888 }] }
    }));
    services.patch("arena", &edit_by(KUBECTL), &edit).await.unwrap();

    let restored = eventually("the Deployment restored", WAIT, || async {
        let d = deployments.get("arena").await.map_err(|e| e.to_string())?;
        let image = game_container(&d).image;
        let replicas = d.spec.as_ref().and_then(|s| s.replicas);
        if image.as_deref() == Some("mettaton.test/arena:1") && replicas == Some(1) {
            Ok(d)
        } else {
            Err(format!("image {image:?}, replicas {replicas:?}"))
        }
    })
    .await;
    assert_eq!(restored.labels().get("team").map(String::as_str), Some("blue"), "their label is kept");
    assert_eq!(restored.annotations().get("example.org/owner").map(String::as_str), Some("ops"));
    let svc = eventually("the Service restored", WAIT, || async {
        let s = services.get("arena").await.map_err(|e| e.to_string())?;
        if service_ports(&s) == original_ports { Ok(s) } else { Err(format!("{:?}", service_ports(&s))) }
    })
    .await;
    assert_eq!(svc.annotations().get("example.org/dns").map(String::as_str), Some("arena.example.org"));

    // The label mettaton's watches select by is removed: the object drops out
    // of the watch, which is a change too, and the label comes back.
    let unlabel = Patch::Merge(json!({ "metadata": { "labels": { "app.kubernetes.io/managed-by": null } } }));
    services.patch("arena", &edit_by(KUBECTL), &unlabel).await.unwrap();
    eventually("the managed-by label restored", WAIT, || async {
        let s = services.get("arena").await.map_err(|e| e.to_string())?;
        match s.labels().get("app.kubernetes.io/managed-by") {
            Some(v) if v == "mettaton" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Deleted outright: made again.
    let old_uid = services.get("arena").await.unwrap().uid();
    services.delete("arena", &DeleteParams::default()).await.unwrap();
    eventually("the Service made again", WAIT, || async {
        match services.get_opt("arena").await {
            Ok(Some(s)) if s.uid() != old_uid && service_ports(&s) == original_ports => Ok(()),
            other => Err(format!("{:?}", other.map(|s| s.map(|s| s.uid())))),
        }
    })
    .await;
    wait_ready(&api, "arena", WAIT).await;

    // Converged: no more writes, and a reconcile changes nothing.
    let settled = quiet(&requests).await;
    reconciles_write_nothing(&ns, &ctl, &requests, settled, "a reconcile after the edits wrote").await;

    // Deletion is data_safety.rs's subject; the namespace goes with the test.
    ctl.stop().await;
}

/// What another writer adds inside lists mettaton fills (an env var in the
/// game container, a sidecar container, a Service port) is theirs: it stays,
/// and mettaton neither removes it nor rewrites its own objects on every
/// reconcile because of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additions_by_another_writer_inside_managed_lists_are_kept_without_rewrites() {
    let (ns, requests, ctl, api) = arena("conflict-add", arena_spec()).await;
    let deployments = ns.api::<Deployment>();
    let services = ns.api::<Service>();
    quiet(&requests).await;

    let add = Patch::Strategic(json!({
        "spec": { "template": { "spec": { "containers": [
            { "name": "game", "env": [{ "name": "TRACE", "value": "1" }] },
            { "name": "metrics", "image": "example.org/exporter:1" }
        ] } } }
    }));
    deployments.patch("arena", &edit_by(KUBECTL), &add).await.unwrap();
    let add = Patch::Strategic(json!({
        "spec": { "ports": [{ "name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": 9100 }] }
    }));
    services.patch("arena", &edit_by(KUBECTL), &add).await.unwrap();
    // The Deployment rolls out its new template (kwok runs it at once).
    wait_ready(&api, "arena", WAIT).await;
    let settled = quiet(&requests).await;

    let deployment = deployments.get("arena").await.unwrap();
    let containers: Vec<String> =
        deployment.spec.clone().unwrap().template.spec.unwrap().containers.into_iter().map(|c| c.name).collect();
    assert_eq!(containers, vec!["game".to_string(), "metrics".to_string()], "the sidecar is kept");
    let env: BTreeMap<String, Option<String>> =
        game_container(&deployment).env.unwrap().into_iter().map(|e| (e.name, e.value)).collect();
    assert_eq!(env.get("TRACE"), Some(&Some("1".to_string())), "their env var is kept: {env:?}");
    assert_eq!(env.get("MAP"), Some(&Some("dust".to_string())), "ours too: {env:?}");
    let svc = services.get("arena").await.unwrap();
    assert!(service_ports(&svc).iter().any(|(name, port, _)| name == "metrics" && *port == 9100), "their port is kept");
    let why = "a reconcile rewrote the children because of another writer's additions";
    reconciles_write_nothing(&ns, &ctl, &requests, settled, why).await;

    // Deletion is data_safety.rs's subject; the namespace goes with the test.
    ctl.stop().await;
}

/// Server-side apply conflicts: another applier cannot change a field mettaton
/// owns without forcing (the API server refuses it with 409), and when it
/// forces, it takes the field over; mettaton forces it back at once, and owns
/// it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_apply_of_an_owned_field_is_taken_back() {
    let (ns, requests, ctl, api) = arena("conflict-ssa", arena_spec()).await;
    let deployments = ns.api::<Deployment>();
    assert!(owns_image(&deployments.get("arena").await.unwrap(), mettaton::api::FIELD_MANAGER));

    let theirs = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "arena" },
        "spec": {
            "selector": { "matchLabels": { "mettaton.dev/gameserver": "arena" } },
            "template": {
                "metadata": { "labels": { "mettaton.dev/gameserver": "arena" } },
                "spec": { "containers": [{ "name": "game", "image": "intruder/arena:6" }] }
            }
        }
    });
    let err = deployments
        .patch("arena", &PatchParams::apply(INTRUDER), &Patch::Apply(&theirs))
        .await
        .expect_err("an apply of a field another manager owns is a conflict");
    let status = api_status(&err).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(status.code, 409, "{}", status.message);
    assert!(status.message.contains(mettaton::api::FIELD_MANAGER), "names the owner: {}", status.message);
    assert_eq!(
        game_container(&deployments.get("arena").await.unwrap()).image.as_deref(),
        Some("mettaton.test/arena:1")
    );

    deployments.patch("arena", &PatchParams::apply(INTRUDER).force(), &Patch::Apply(&theirs)).await.unwrap();
    let back = eventually("the image taken back", WAIT, || async {
        let d = deployments.get("arena").await.map_err(|e| e.to_string())?;
        let image = game_container(&d).image;
        if image.as_deref() == Some("mettaton.test/arena:1") && owns_image(&d, mettaton::api::FIELD_MANAGER) {
            Ok(d)
        } else {
            Err(format!("{image:?}"))
        }
    })
    .await;
    assert!(!owns_image(&back, INTRUDER), "the intruder lost the field to mettaton's forced apply");
    wait_ready(&api, "arena", WAIT).await;
    // No tug of war: settled, a reconcile writes nothing.
    quiet(&requests).await;
    assert_eq!(reconcile_once(&ctl, &api, "arena", &requests, 1).await, vec![]);

    // Deletion is data_safety.rs's subject; the namespace goes with the test.
    ctl.stop().await;
}

/// Fields mettaton applied once and no longer wants (the GameServer dropped
/// its stop command, its resources, its config files) leave the children:
/// comparing only "does the object hold everything desired" would keep them
/// forever, mettaton still owning them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_mettaton_no_longer_wants_are_removed_from_the_children() {
    let spec = json!({
        "image": "mettaton.test/arena:1",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "resources": { "requests": { "cpu": "100m", "memory": "64Mi" }, "limits": { "memory": "128Mi" } },
        "config": [{ "path": "/etc/arena/server.cfg", "content": "maxplayers=16" }],
        "service": { "annotations": { "example.org/lb": "internal" } },
        "shutdown": { "gracePeriodSeconds": 5, "stopCommand": ["arena-cli", "save"] }
    });
    let (ns, requests, ctl, api) = arena("conflict-drop", spec).await;
    let deployments = ns.api::<Deployment>();
    let container = game_container(&deployments.get("arena").await.unwrap());
    assert!(container.lifecycle.is_some() && container.resources.is_some() && container.volume_mounts.is_some());

    // The user drops the stop command, the resources, the config files and
    // the Service annotations. Nothing else changes.
    api.patch(
        "arena",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": {
        "resources": null, "config": null, "service": null, "shutdown": { "stopCommand": null }
    } })),
    )
    .await
    .unwrap();
    let d = eventually("the dropped fields gone from the Deployment", WAIT, || async {
        let d = deployments.get("arena").await.map_err(|e| e.to_string())?;
        let c = game_container(&d);
        let pod = d.spec.clone().unwrap().template;
        let left = (
            c.lifecycle.is_some(),
            c.resources.as_ref().is_some_and(|r| r.requests.is_some() || r.limits.is_some()),
            c.volume_mounts.is_some(),
            pod.spec.as_ref().unwrap().volumes.is_some(),
            pod.metadata.as_ref().and_then(|m| m.annotations.as_ref()).is_some_and(|a| !a.is_empty()),
        );
        if left == (false, false, false, false, false) { Ok(d) } else { Err(format!("still there: {left:?}")) }
    })
    .await;
    assert_eq!(game_container(&d).image.as_deref(), Some("mettaton.test/arena:1"));
    eventually("the Service annotation gone", WAIT, || async {
        let s = ns.api::<Service>().get("arena").await.map_err(|e| e.to_string())?;
        if s.annotations().contains_key("example.org/lb") { Err(format!("{:?}", s.annotations())) } else { Ok(()) }
    })
    .await;
    wait_ready(&api, "arena", WAIT).await;
    quiet(&requests).await;
    assert_eq!(reconcile_once(&ctl, &api, "arena", &requests, 1).await, vec![], "and then it settles");

    // Deletion is data_safety.rs's subject; the namespace goes with the test.
    ctl.stop().await;
}

/// GitOps (issue 13, item 3): a GitOps tool applies the GameServer
/// server-side under its own field manager, the controller makes it Ready
/// (finalizer, status), and the tool applies the same manifest again, without
/// force, as it does at every sync: no conflict (the controller owns none of
/// the tool's fields), no drift (every field of the manifest is live as
/// written; spec and generation as they were), and no write from the
/// controller in answer. A restart asked for by another manager meanwhile
/// survives the tool's next apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitops_tool_reapplying_its_manifest_meets_no_conflict_and_no_drift() {
    ensure_crd().await;
    let ns = TestNamespace::new("gitops").await;
    let (client, requests) = counting_client().await;
    let ctl = RunningController::start(&ns, client.clone(), client);
    let api = ns.api::<GameServer>();
    let manifest = json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
        "metadata": {
            "name": "arena",
            "labels": { "app.kubernetes.io/instance": "games" },
            "annotations": { "argocd.argoproj.io/tracking-id": "games:mettaton.dev/GameServer:arena" }
        },
        "spec": arena_spec()
    });
    const ARGOCD: &str = "argocd-controller";
    let sync = PatchParams::apply(ARGOCD);
    let created = api.patch("arena", &sync, &Patch::Apply(&manifest)).await.expect("the first sync");
    wait_ready(&api, "arena", WAIT).await;
    let settled = quiet(&requests).await;
    let live = api.get("arena").await.unwrap();
    assert!(live.finalizers().iter().any(|f| f == mettaton::api::FINALIZER), "the controller took part");
    let managers = |gs: &GameServer| {
        gs.metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|m| (m.manager.clone(), m.subresource.clone()))
            .collect::<Vec<_>>()
    };
    let tools_fields = |gs: &GameServer| {
        let entry = gs.metadata.managed_fields.iter().flatten().find(|m| m.manager.as_deref() == Some(ARGOCD));
        entry.map(|m| serde_json::to_value(&m.fields_v1).unwrap())
    };

    let resynced = api.patch("arena", &sync, &Patch::Apply(&manifest)).await.expect("no conflict on a re-sync");
    // No drift: the manifest, field by field, is what is live.
    let as_json = serde_json::to_value(&resynced).unwrap();
    assert!(mettaton::orchestrator::kubernetes::is_subset(&manifest, &as_json), "drift: {as_json:#}");
    assert_eq!(resynced.spec, created.spec, "the spec is the one the tool applied");
    assert_eq!((resynced.metadata.generation, created.metadata.generation), (Some(1), Some(1)));
    assert_eq!(resynced.resource_version(), live.resource_version(), "the re-sync changed nothing");
    assert_eq!(tools_fields(&resynced), tools_fields(&created), "the tool owns what it owned");
    assert_eq!(managers(&resynced), managers(&live));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(requests.writes().len(), settled, "the controller wrote in answer: {:?}", &requests.writes()[settled..]);

    // A restart asked for by another manager (`mettaton restart`) is not the
    // tool's to take away: its next sync keeps it, and does not conflict.
    let restart = Patch::Merge(
        json!({ "metadata": { "annotations": { mettaton::plan::ANNOTATION_RESTARTED_AT: "2026-12-03T10:00:00Z" } } }),
    );
    api.patch("arena", &edit_by("mettaton-restart"), &restart).await.unwrap();
    let synced = api.patch("arena", &sync, &Patch::Apply(&manifest)).await.expect("no conflict after a restart");
    assert_eq!(
        synced.annotations().get(mettaton::plan::ANNOTATION_RESTARTED_AT).map(String::as_str),
        Some("2026-12-03T10:00:00Z")
    );
    assert_eq!(synced.metadata.generation, Some(1));
    wait_ready(&api, "arena", WAIT).await;

    api.delete("arena", &DeleteParams::default()).await.unwrap();
    eventually("arena deleted", WAIT, || async {
        match api.get_opt("arena").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    ctl.stop().await;
}
