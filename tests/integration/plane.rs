//! The local control plane is a real one: controllers, scheduler and kwok act on
//! what is created, garbage collection follows owner references, and the API
//! server validates objects against their schemas.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::support::{TestNamespace, api_status, client, eventually};

const WAIT: Duration = Duration::from_secs(60);

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{ "name": "main", "image": "mettaton.test/plain:1" }]
                }
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn nodes_are_ready_and_have_addresses() {
    let nodes = Api::<Node>::all(client().await).list(&ListParams::default()).await.unwrap();
    let ready: Vec<_> = nodes
        .items
        .iter()
        .filter(|n| {
            let status = n.status.as_ref().unwrap();
            let is_ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
            let has_ip = status.addresses.iter().flatten().any(|a| a.type_ == "InternalIP");
            is_ready && has_ip
        })
        .collect();
    assert!(ready.len() >= 3, "want at least 3 Ready nodes with an address, got {}", ready.len());
    // Nodes stay Ready only while their heartbeats (Leases, renewed by kwok)
    // keep coming; without them the node controller marks them NotReady
    // within a minute and their pods unready.
    let leases = Api::<Lease>::namespaced(client().await, "kube-node-lease");
    for node in &ready {
        let name = node.metadata.name.as_deref().unwrap();
        let lease = leases.get(name).await.unwrap_or_else(|e| panic!("no heartbeat Lease for node {name}: {e}"));
        assert!(lease.spec.and_then(|s| s.renew_time).is_some(), "lease of {name} is renewed");
    }
}

#[tokio::test]
async fn deployment_becomes_available_then_is_garbage_collected() {
    let ns = TestNamespace::new("plane-deploy").await;
    let deployments = ns.api::<Deployment>();
    deployments.create(&PostParams::default(), &deployment("two", 2)).await.unwrap();

    // controller-manager makes a ReplicaSet and Pods, the scheduler binds them,
    // kwok makes them Running and Ready.
    eventually("2 available replicas", WAIT, || async {
        let d = deployments.get("two").await.map_err(|e| e.to_string())?;
        let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
        if available == 2 { Ok(()) } else { Err(format!("{available} available")) }
    })
    .await;
    let pods = ns.api::<Pod>().list(&ListParams::default().labels("app=two")).await.unwrap();
    assert_eq!(pods.items.len(), 2);
    for pod in &pods.items {
        let spec = pod.spec.as_ref().unwrap();
        assert!(spec.node_name.as_deref().unwrap_or("").starts_with("kwok-node-"), "pod bound to a kwok node");
    }
    assert_eq!(ns.api::<ReplicaSet>().list(&ListParams::default()).await.unwrap().items.len(), 1);

    // Deleting the Deployment lets the garbage collector remove what it owns.
    deployments.delete("two", &DeleteParams::background()).await.unwrap();
    eventually("ReplicaSet and Pods garbage-collected", WAIT, || async {
        let rs = ns.api::<ReplicaSet>().list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let pods = ns.api::<Pod>().list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        if rs.items.is_empty() && pods.items.is_empty() {
            Ok(())
        } else {
            Err(format!("{} replicasets, {} pods left", rs.items.len(), pods.items.len()))
        }
    })
    .await;
}

#[tokio::test]
async fn node_port_service_gets_a_port() {
    let ns = TestNamespace::new("plane-svc").await;
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "game" },
        "spec": {
            "type": "NodePort",
            "selector": { "app": "game" },
            "ports": [
                { "name": "game", "port": 25565, "protocol": "TCP" },
                { "name": "query", "port": 25565, "protocol": "UDP" }
            ]
        }
    }))
    .unwrap();
    let created = ns.api::<Service>().create(&PostParams::default(), &svc).await.unwrap();
    let spec = created.spec.unwrap();
    assert!(spec.cluster_ip.is_some_and(|ip| ip.starts_with("10.96.")));
    // The plane's range (tests/controlplane/env.sh): Kubernetes' default unless widened.
    let range = std::env::var("MTN_NODE_PORT_RANGE").unwrap_or_else(|_| "30000-32767".into());
    let (low, high) = range.split_once('-').map(|(l, h)| (l.parse().unwrap(), h.parse().unwrap())).unwrap();
    for port in spec.ports.unwrap() {
        let node_port = port.node_port.expect("a node port is allocated");
        assert!((low..=high).contains(&node_port), "node port {node_port} in the plane's range {range}");
    }
}

#[tokio::test]
async fn built_in_validation_refuses_with_the_field_named() {
    let ns = TestNamespace::new("plane-422").await;
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "bad" },
        "spec": { "ports": [{ "port": 70000 }] }
    }))
    .unwrap();
    let err = ns.api::<Service>().create(&PostParams::default(), &svc).await.unwrap_err();
    let status = api_status(&err).expect("refused by the API server");
    assert_eq!(status.code, 422, "{status:?}");
    assert!(status.message.contains("spec.ports[0].port"), "{}", status.message);
}

/// A CRD with an OpenAPI schema: the API server refuses objects that violate it.
#[tokio::test]
async fn crd_schema_violation_is_refused_with_422_naming_the_field() {
    let client = client().await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.plane-test.mettaton.dev" },
        "spec": {
            "group": "plane-test.mettaton.dev",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": { "size": { "type": "integer", "minimum": 1, "maximum": 10 } }
                    }}
                }}
            }]
        }
    }))
    .unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.patch(
        crd.metadata.name.as_deref().unwrap(),
        &PatchParams::apply("mettaton-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("plane-test.mettaton.dev", "v1", "Widget"));
    let ns = TestNamespace::new("plane-crd").await;
    let widgets = Api::<DynamicObject>::namespaced_with(client, &ns.name, &ar);
    let widget = |size: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "plane-test.mettaton.dev/v1", "kind": "Widget",
            "metadata": { "name": "w" }, "spec": { "size": size }
        }))
        .unwrap()
    };
    // The CRD is served once it is established; until then creates give 404.
    eventually("the Widget CRD to be served", WAIT, || async {
        match widgets.create(&PostParams { dry_run: true, ..Default::default() }, &widget(json!(5))).await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;

    for (bad, why) in [(json!(70), "should be less than or equal to 10"), (json!("big"), "spec.size")] {
        let err = widgets.create(&PostParams::default(), &widget(bad.clone())).await.unwrap_err();
        let status = api_status(&err).expect("refused by the API server");
        assert_eq!(status.code, 422, "{status:?}");
        assert!(status.message.contains("spec.size"), "message names the field: {}", status.message);
        assert!(status.message.contains(why) || why == "spec.size", "{bad}: {}", status.message);
    }
}
