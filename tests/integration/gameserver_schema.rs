//! The API server itself refuses bad GameServer manifests, with a message that
//! names the field, and accepts good ones with their defaults filled in.

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use mettaton::api::GameServer;
use serde_json::{Value, json};

use crate::fixtures::{self, merged, minecraft};
use crate::support::{TestNamespace, api_status, ensure_crd};

fn api(ns: &TestNamespace) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("mettaton.dev", "v1alpha1", "GameServer"));
    Api::namespaced_with(ns.client.clone(), &ns.name, &ar)
}

fn manifest(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(fixtures::manifest(name, spec)).unwrap()
}

/// The Minecraft server with a volume.
fn good_spec() -> Value {
    merged(minecraft(), json!({ "storage": { "size": "1Gi" } }))
}

/// Applies `edit` to a good spec and expects a 422 whose message contains each
/// of `expected`.
async fn refused(ns: &TestNamespace, case: &str, edit: impl FnOnce(&mut Value), expected: &[&str]) {
    let mut spec = good_spec();
    edit(&mut spec);
    let err = api(ns)
        .create(&PostParams::default(), &manifest("bad", spec.clone()))
        .await
        .expect_err(&format!("{case}: the API server must refuse {spec}"));
    let status = api_status(&err).unwrap_or_else(|| panic!("{case}: not an API refusal: {err}"));
    assert_eq!(status.code, 422, "{case}: {}", status.message);
    for e in expected {
        assert!(status.message.contains(e), "{case}: message should contain {e:?}: {}", status.message);
    }
}

#[tokio::test]
async fn bad_manifests_are_refused_naming_the_field() {
    ensure_crd().await;
    let ns = TestNamespace::new("schema").await;
    refused(
        &ns,
        "missing image",
        |s| drop(s.as_object_mut().unwrap().remove("image")),
        &["spec.image", "required unless spec.template names a template"],
    )
    .await;
    refused(&ns, "empty image", |s| s["image"] = json!(""), &["spec.image"]).await;
    refused(
        &ns,
        "variables without a template",
        |s| s["variables"] = json!({ "A": "1" }),
        &["spec.variables", "needs spec.template"],
    )
    .await;
    refused(
        &ns,
        "a bad variable name",
        |s| {
            s["template"] = json!({ "name": "paper" });
            s["variables"] = json!({ "1A": "1" });
        },
        &["spec.variables", "must be variable names"],
    )
    .await;
    refused(&ns, "no ports", |s| s["ports"] = json!([]), &["spec.ports", "unless spec.template names a template"])
        .await;
    refused(&ns, "port 0", |s| s["ports"][0]["containerPort"] = json!(0), &["spec.ports[0].containerPort"]).await;
    refused(&ns, "port 70000", |s| s["ports"][0]["containerPort"] = json!(70000), &["spec.ports[0].containerPort"])
        .await;
    refused(
        &ns,
        "external port 70000",
        |s| s["ports"][0]["externalPort"] = json!(70000),
        &["spec.ports[0].externalPort"],
    )
    .await;
    refused(
        &ns,
        "duplicate port names",
        |s| s["ports"] = json!([{ "name": "game", "containerPort": 1 }, { "name": "game", "containerPort": 2 }]),
        &["spec.ports[1]", "Duplicate value"],
    )
    .await;
    refused(
        &ns,
        "same port twice",
        |s| s["ports"] = json!([{ "name": "a", "containerPort": 7 }, { "name": "b", "containerPort": 7 }]),
        &["spec.ports", "each containerPort and protocol pair may appear only once"],
    )
    .await;
    refused(&ns, "bad protocol", |s| s["ports"][0]["protocol"] = json!("SCTP"), &["spec.ports[0].protocol", "SCTP"])
        .await;
    refused(&ns, "bad port name", |s| s["ports"][0]["name"] = json!("Game_Port"), &["spec.ports[0].name"]).await;
    refused(&ns, "unknown state", |s| s["state"] = json!("Paused"), &["spec.state", "Paused"]).await;
    refused(&ns, "negative storage", |s| s["storage"]["size"] = json!("-1Gi"), &["spec.storage.size", "positive"])
        .await;
    refused(&ns, "storage not a quantity", |s| s["storage"]["size"] = json!("lots"), &["spec.storage.size"]).await;
    refused(&ns, "relative mount path", |s| s["storage"]["mountPath"] = json!("data"), &["spec.storage.mountPath"])
        .await;
    refused(&ns, "bad reclaim policy", |s| s["storage"]["reclaimPolicy"] = json!("Recycle"), &["reclaimPolicy"]).await;
    refused(
        &ns,
        "config file with content and a ConfigMap",
        |s| {
            s["config"] =
                json!([{ "path": "/data/a.cfg", "content": "x", "configMapKeyRef": { "name": "c", "key": "k" } }])
        },
        &["spec.config[0]", "exactly one of content or configMapKeyRef"],
    )
    .await;
    refused(
        &ns,
        "config path with ..",
        |s| s["config"] = json!([{ "path": "/data/../etc/x", "content": "x" }]),
        &["spec.config[0].path"],
    )
    .await;
    refused(
        &ns,
        "probe on an unknown port",
        |s| s["health"] = json!({ "probe": { "tcpPort": "rcon" } }),
        &["spec.health.probe.tcpPort", "must name a TCP port"],
    )
    .await;
    refused(
        &ns,
        "startup timeout 0",
        |s| s["health"] = json!({ "startupTimeoutSeconds": 0 }),
        &["spec.health.startupTimeoutSeconds"],
    )
    .await;
    refused(&ns, "bad service type", |s| s["service"] = json!({ "type": "ExternalName" }), &["spec.service.type"])
        .await;
    refused(
        &ns,
        "fixed external port on ClusterIP",
        |s| {
            s["service"] = json!({ "type": "ClusterIP" });
            s["ports"][0]["externalPort"] = json!(30000);
        },
        &["spec.ports", "externalPort needs a NodePort or LoadBalancer"],
    )
    .await;
    refused(
        &ns,
        "negative grace period",
        |s| s["shutdown"] = json!({ "gracePeriodSeconds": -1 }),
        &["spec.shutdown.gracePeriodSeconds"],
    )
    .await;
}

/// Players and output events (issue 15): the supervisor reads the game's
/// output, so they need `command`; join and leave lines are `regex:`; an
/// output event's reason is an Event reason, its type Normal or Warning.
#[tokio::test]
async fn players_and_output_events_are_refused_naming_the_field() {
    ensure_crd().await;
    let ns = TestNamespace::new("schema-players").await;
    let players = json!({ "joinLine": ["regex:^(\\S+) joined"], "leaveLine": ["regex:^(\\S+) left"] });
    let event = json!({ "line": "saved", "reason": "WorldSaved" });
    let with_command = |s: &mut Value| s["command"] = json!(["/start"]);
    refused(
        &ns,
        "players without command",
        |s| s["players"] = players.clone(),
        &["spec.command", "players needs spec.command"],
    )
    .await;
    refused(
        &ns,
        "output events without command",
        |s| s["outputEvents"] = json!([event.clone()]),
        &["spec.command", "outputEvents needs spec.command"],
    )
    .await;
    refused(
        &ns,
        "a join line that is no regex",
        |s| {
            with_command(s);
            s["players"] = json!({ "joinLine": ["joined the game"], "leaveLine": ["regex:^(\\S+) left"] });
        },
        &["spec.players.joinLine", "each pattern must be `regex:`"],
    )
    .await;
    refused(
        &ns,
        "no leave line",
        |s| {
            with_command(s);
            s["players"] = json!({ "joinLine": ["regex:^(\\S+) joined"] });
        },
        &["spec.players.leaveLine", "Required"],
    )
    .await;
    refused(
        &ns,
        "a reason that is no Event reason",
        |s| {
            with_command(s);
            s["outputEvents"] = json!([{ "line": "saved", "reason": "world saved" }]);
        },
        &["spec.outputEvents[0].reason"],
    )
    .await;
    refused(
        &ns,
        "an unknown type",
        |s| {
            with_command(s);
            s["outputEvents"] = json!([{ "line": "saved", "reason": "Saved", "type": "Error" }]);
        },
        &["spec.outputEvents[0].type"],
    )
    .await;
    refused(
        &ns,
        "33 output events",
        |s| {
            with_command(s);
            s["outputEvents"] = Value::Array(vec![event.clone(); 33]);
        },
        &["spec.outputEvents", "33"],
    )
    .await;
    // Good ones pass, the type defaulted.
    let mut spec = good_spec();
    with_command(&mut spec);
    spec["players"] = players;
    spec["outputEvents"] = json!([event]);
    let created = api(&ns).create(&PostParams::default(), &manifest("good", spec)).await.unwrap();
    assert_eq!(created.data["spec"]["outputEvents"][0]["type"], "Normal");
}

/// What the CRD accepted before although the API server refuses it in the
/// server's Deployment, Service or claim (found by tests/integration/bad_input.rs):
/// now refused in the GameServer itself, naming the field.
#[tokio::test]
async fn manifests_whose_children_would_be_refused_are_refused_themselves() {
    ensure_crd().await;
    let ns = TestNamespace::new("schema-kids").await;
    let port_name = |name: &'static str| move |s: &mut Value| s["ports"][0]["name"] = json!(name);
    refused(&ns, "port name of digits", port_name("27015"), &["spec.ports[0].name", "at least one letter"]).await;
    refused(&ns, "port name with --", port_name("game--tv"), &["spec.ports[0].name"]).await;
    let env = |var: Value| move |s: &mut Value| s["env"] = json!([var]);
    refused(&ns, "env name with =", env(json!({ "name": "A=B", "value": "1" })), &["spec.env[0].name"]).await;
    refused(&ns, "empty env name", env(json!({ "name": "", "value": "1" })), &["spec.env[0].name"]).await;
    let both = json!({ "name": "A", "value": "1", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } });
    refused(&ns, "value and valueFrom", env(both), &["spec.env[0].valueFrom", "not both"]).await;
    refused(&ns, "empty valueFrom", env(json!({ "name": "A", "valueFrom": {} })), &["spec.env[0].valueFrom"]).await;
    let key = json!({ "name": "A", "valueFrom": { "secretKeyRef": { "name": "s", "key": "a/b" } } });
    refused(&ns, "bad secret key", env(key), &["spec.env[0].valueFrom.secretKeyRef.key"]).await;
    let field = json!({ "name": "A", "valueFrom": { "fieldRef": { "fieldPath": "spec.secret" } } });
    refused(&ns, "bad fieldPath", env(field), &["spec.env[0].valueFrom.fieldRef.fieldPath"]).await;
    let resources = |r: Value| move |s: &mut Value| s["resources"] = r;
    refused(
        &ns,
        "cpu not a quantity",
        resources(json!({ "requests": { "cpu": "lots" } })),
        &["spec.resources.requests"],
    )
    .await;
    refused(&ns, "negative memory", resources(json!({ "limits": { "memory": "-1" } })), &["spec.resources.limits"])
        .await;
    let above = json!({ "requests": { "memory": "2Gi" }, "limits": { "memory": "1Gi" } });
    refused(&ns, "request above limit", resources(above), &["spec.resources.requests", "not be above"]).await;
    refused(&ns, "unknown resource", resources(json!({ "requests": { "gpu": "1" } })), &["spec.resources.requests"])
        .await;
    refused(&ns, "resource claims", resources(json!({ "claims": [{ "name": "gpu" }] })), &["spec.resources.claims"])
        .await;
    refused(
        &ns,
        "bad annotation key",
        |s| s["service"] = json!({ "annotations": { "bad key": "v" } }),
        &["spec.service.annotations"],
    )
    .await;
    let selector = |m: Value| move |s: &mut Value| s["nodeSelector"] = m;
    refused(&ns, "node selector key", selector(json!({ "bad key": "x" })), &["spec.nodeSelector", "label keys"]).await;
    refused(&ns, "node selector prefix", selector(json!({ "A.com/x": "y" })), &["spec.nodeSelector", "label keys"])
        .await;
    refused(&ns, "node selector value", selector(json!({ "pool": "a b" })), &["spec.nodeSelector", "label values"])
        .await;
    refused(&ns, "node selector value length", selector(json!({ "pool": "x".repeat(64) })), &["spec.nodeSelector"])
        .await;
    let toleration = |t: Value| move |s: &mut Value| s["tolerations"] = json!([t]);
    refused(&ns, "toleration of every key", toleration(json!({ "value": "x" })), &["spec.tolerations[0].operator"])
        .await;
    let exists = json!({ "key": "k", "operator": "Exists", "value": "v" });
    refused(&ns, "Exists with a value", toleration(exists), &["spec.tolerations[0].value", "must be empty"]).await;
    let seconds = json!({ "key": "k", "effect": "NoSchedule", "tolerationSeconds": 5 });
    refused(&ns, "seconds without NoExecute", toleration(seconds), &["spec.tolerations[0].tolerationSeconds"]).await;
    refused(&ns, "toleration key", toleration(json!({ "key": "a/b/c" })), &["spec.tolerations[0].key"]).await;
    refused(&ns, "toleration value", toleration(json!({ "key": "k", "value": "a b" })), &["spec.tolerations[0].value"])
        .await;
    refused(
        &ns,
        "toleration effect",
        toleration(json!({ "key": "k", "effect": "Never" })),
        &["spec.tolerations[0].effect"],
    )
    .await;
    refused(
        &ns,
        "storage class not a DNS name",
        |s| s["storage"]["storageClassName"] = json!("Fast_SSD"),
        &["spec.storage.storageClassName"],
    )
    .await;
    refused(
        &ns,
        "config file on the volume's mount path",
        |s| s["config"] = json!([{ "path": "/data", "content": "x" }]),
        &["spec.config", "storage.mountPath"],
    )
    .await;
    refused(
        &ns,
        "two LoadBalancer ports alike",
        |s| {
            s["service"] = json!({ "type": "LoadBalancer" });
            s["ports"] =
                json!([{ "name": "a", "containerPort": 1, "externalPort": 2 }, { "name": "b", "containerPort": 2 }]);
        },
        &["spec.ports", "LoadBalancer"],
    )
    .await;
    for name in ["a.b", &"x".repeat(64)] {
        let err = api(&ns).create(&PostParams::default(), &manifest(name, good_spec())).await.unwrap_err();
        let status = api_status(&err).unwrap();
        assert_eq!(status.code, 422, "{}", status.message);
        assert!(status.message.contains("metadata.name must be a DNS label"), "{}", status.message);
    }
    // A name starting with a digit is a DNS label, which this API server takes
    // for a Service too (checked by a dry run of the children): accepted.
    api(&ns).create(&PostParams::default(), &manifest("7dtd", good_spec())).await.expect("7dtd is a fine name");
}

#[tokio::test]
async fn good_manifest_is_accepted_with_defaults() {
    ensure_crd().await;
    let ns = TestNamespace::new("schema-ok").await;
    let created = api(&ns).create(&PostParams::default(), &manifest("mc", good_spec())).await.unwrap();
    let gs: GameServer = serde_json::from_value(serde_json::to_value(created).unwrap()).unwrap();
    assert_eq!(gs.spec.state, mettaton::api::DesiredState::Running);
    assert_eq!(gs.spec.ports[0].protocol, mettaton::api::Protocol::TCP);
    let storage = gs.spec.storage.unwrap();
    // No default in the schema: `/data`, or a template's filesPath, is the plan's.
    assert_eq!(storage.mount_path, None);
    assert_eq!(storage.mount_path(), "/data");
    assert_eq!(storage.reclaim_policy, mettaton::api::ReclaimPolicy::Retain);
}

#[tokio::test]
async fn placement_is_accepted_with_its_defaults() {
    ensure_crd().await;
    let ns = TestNamespace::new("schema-placement").await;
    let mut spec = good_spec();
    spec["nodeSelector"] = json!({ "mettaton.dev/real-node": "true", "pool": "" });
    spec["tolerations"] = json!([
        { "key": "mettaton.dev/real-node", "value": "true", "effect": "NoSchedule" },
        { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30 },
        { "operator": "Exists" }
    ]);
    let created = api(&ns).create(&PostParams::default(), &manifest("placed", spec)).await.unwrap();
    let gs: GameServer = serde_json::from_value(serde_json::to_value(created).unwrap()).unwrap();
    assert_eq!(gs.spec.node_selector.len(), 2);
    assert_eq!(gs.spec.tolerations[0].operator, mettaton::api::TolerationOperator::Equal, "the default");
    assert_eq!(gs.spec.tolerations[1].toleration_seconds, Some(30));
}

/// Transition rules: a volume may grow but not shrink, its class is fixed, and
/// storage cannot be dropped from a server that has it.
#[tokio::test]
async fn storage_changes_that_would_lose_data_are_refused() {
    ensure_crd().await;
    let ns = TestNamespace::new("schema-upd").await;
    let api = api(&ns);
    api.create(&PostParams::default(), &manifest("mc", good_spec())).await.unwrap();
    let update = |spec: Value| {
        let api = api.clone();
        async move {
            let patch = json!({ "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer", "spec": spec });
            api.patch("mc", &PatchParams::apply("user").force(), &Patch::Apply(&patch)).await
        }
    };
    let mut grow = good_spec();
    grow["storage"]["size"] = json!("2Gi");
    update(grow).await.expect("a volume may grow");

    let mut shrink = good_spec();
    shrink["storage"]["size"] = json!("1Gi");
    let err = update(shrink).await.unwrap_err();
    assert!(api_status(&err).unwrap().message.contains("may grow but never shrink"), "{err}");

    let mut class = good_spec();
    class["storage"]["size"] = json!("2Gi");
    class["storage"]["storageClassName"] = json!("fast");
    let err = update(class).await.unwrap_err();
    assert!(api_status(&err).unwrap().message.contains("storageClassName cannot change"), "{err}");

    let dropped = json!({ "spec": { "storage": null } });
    let err = api.patch("mc", &PatchParams::default(), &Patch::Merge(&dropped)).await.unwrap_err();
    assert!(api_status(&err).unwrap().message.contains("storage cannot be removed"), "{err}");
}
