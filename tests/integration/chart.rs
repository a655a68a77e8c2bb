//! The Helm chart (charts/mettaton), with the helm and kubectl built for the
//! local control plane: it lints; its renderings grant exactly the permissions
//! the controller uses (cluster-wide or in one namespace) and run the controller
//! as the `restricted` Pod Security Standard demands; it installs into a
//! namespace that enforces that standard; and the controller binary, run out of
//! the cluster with nothing but a token of the chart's ServiceAccount, takes a
//! GameServer through its life while the account is refused what it must not do.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mettaton::api::{GameServer, Phase};
use serde::Deserialize;
use serde_json::json;
use serde_yaml::Value;

use crate::support::{
    Release, TestNamespace, api_status, ensure_crd, eventually, helm, kubeconfig_path, kubectl, output, root, succeed,
    wait_phase, wait_ready,
};

const WAIT: Duration = Duration::from_secs(90);
/// The Kubernetes version `helm template` renders for (that of the local plane);
/// without it helm assumes v1.20, which the chart's kubeVersion refuses.
const KUBE_VERSION: &str = "1.36.3";
/// The release namespace of the renderings.
const RELEASE_NS: &str = "mettaton-system";
/// The release name of the renderings, so object names are `mtn-mettaton...`.
const RELEASE: &str = "mtn";

// --- what the controller is allowed -------------------------------------------

/// One permission: (API group, resource, verb, resource name or "").
type Permission = (String, String, String, String);

const CHILD_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// What the controller does in a namespace it watches, with the Kubernetes
/// backend (see the comment in templates/_helpers.tpl for why each verb).
fn game_permissions() -> BTreeSet<Permission> {
    let mut p = permissions("mettaton.dev", &["gameservers"], &["list", "watch", "patch"]);
    p.extend(permissions("mettaton.dev", &["gameservers/status"], &["patch"]));
    p.extend(permissions("mettaton.dev", &["gameservers/finalizers"], &["update"]));
    p.extend(permissions("apps", &["deployments"], CHILD_VERBS));
    p.extend(permissions("", &["services", "persistentvolumeclaims", "configmaps"], CHILD_VERBS));
    p.extend(permissions("", &["pods"], &["list", "watch"]));
    p.extend(permissions("", &["pods/proxy"], &["get"]));
    p.extend(permissions("mettaton.dev", &["gametemplates"], &["list", "watch"]));
    p.extend(permissions("events.k8s.io", &["events"], &["create", "patch"]));
    p
}

/// With the swarm backend the cluster holds only GameServers, the templates
/// they name, and Events.
fn swarm_game_permissions() -> BTreeSet<Permission> {
    let mut p = permissions("mettaton.dev", &["gameservers"], &["list", "watch", "patch"]);
    p.extend(permissions("mettaton.dev", &["gameservers/status"], &["patch"]));
    p.extend(permissions("mettaton.dev", &["gametemplates"], &["list", "watch"]));
    p.extend(permissions("events.k8s.io", &["events"], &["create", "patch"]));
    p
}

fn node_permissions() -> BTreeSet<Permission> {
    permissions("", &["nodes"], &["get"])
}

/// ClusterGameTemplates, cluster-scoped: the controller's cache of them.
fn cluster_template_permissions() -> BTreeSet<Permission> {
    permissions("mettaton.dev", &["clustergametemplates"], &["list", "watch"])
}

fn lease_permissions(lease: &str) -> BTreeSet<Permission> {
    let mut p = permissions("coordination.k8s.io", &["leases"], &["create"]);
    for verb in ["get", "update"] {
        p.insert(("coordination.k8s.io".into(), "leases".into(), verb.into(), lease.into()));
    }
    p
}

fn permissions(group: &str, resources: &[&str], verbs: &[&str]) -> BTreeSet<Permission> {
    let mut set = BTreeSet::new();
    for resource in resources {
        for verb in verbs {
            set.insert((group.to_string(), resource.to_string(), verb.to_string(), String::new()));
        }
    }
    set
}

// --- running helm and kubectl ------------------------------------------------------

fn chart_dir() -> PathBuf {
    root().join("charts/mettaton")
}

/// `helm template` of the chart with these extra arguments: the rendered
/// objects, or helm's error.
fn render(args: &[&str]) -> Result<Vec<Value>, String> {
    let out = output(
        helm()
            .args(["template", RELEASE])
            .arg(chart_dir())
            .args(["--namespace", RELEASE_NS, "--kube-version", KUBE_VERSION])
            .args(args),
    );
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| format!("rendered YAML does not parse: {e}\n{text}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn rendered(args: &[&str]) -> Vec<Value> {
    render(args).unwrap_or_else(|e| panic!("helm template {args:?} fails: {e}"))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn kind(v: &Value) -> &str {
    str_at(v, &["kind"]).unwrap_or_default()
}

fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"]).unwrap_or_default()
}

fn namespace(v: &Value) -> Option<&str> {
    str_at(v, &["metadata", "namespace"])
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn the<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found = of_kind(docs, k);
    assert_eq!(found.len(), 1, "want exactly one {k}, got {}", found.len());
    found[0]
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| s.iter().map(|x| x.as_str().expect("a string").to_string()).collect())
        .unwrap_or_default()
}

/// The permissions a Role or ClusterRole grants, one per group, resource, verb
/// and resource name.
fn granted(role: &Value) -> BTreeSet<Permission> {
    let mut set = BTreeSet::new();
    for rule in at(role, &["rules"]).and_then(Value::as_sequence).expect("rules") {
        assert!(rule.get("nonResourceURLs").is_none(), "{}: no non-resource URLs", name(role));
        let mut names = strings(rule.get("resourceNames"));
        if names.is_empty() {
            names.push(String::new());
        }
        for group in strings(rule.get("apiGroups")) {
            for resource in strings(rule.get("resources")) {
                for verb in strings(rule.get("verbs")) {
                    for n in &names {
                        set.insert((group.clone(), resource.clone(), verb.clone(), n.clone()));
                    }
                }
            }
        }
    }
    set
}

/// Checks what every rendering must hold: no wildcard and no Secret in any
/// rule, every binding's subject the chart's ServiceAccount, Leases only in
/// the release namespace, standard labels on every object.
fn assert_least_privilege_and_labels(docs: &[Value]) {
    let sa = name(the(docs, "ServiceAccount")).to_string();
    assert!(of_kind(docs, "Secret").is_empty(), "the chart makes no Secret");
    for role in docs.iter().filter(|d| matches!(kind(d), "Role" | "ClusterRole")) {
        for (group, resource, verb, resource_name) in granted(role) {
            for field in [&group, &resource, &verb, &resource_name] {
                assert!(!field.contains('*'), "{}: wildcard in {group}/{resource} {verb}", name(role));
            }
            assert!(!resource.starts_with("secrets"), "{}: grants {verb} on secrets", name(role));
            if resource == "leases" {
                assert_eq!(
                    (kind(role), namespace(role)),
                    ("Role", Some(RELEASE_NS)),
                    "{}: Leases only in the release namespace",
                    name(role)
                );
            }
        }
    }
    for binding in docs.iter().filter(|d| matches!(kind(d), "RoleBinding" | "ClusterRoleBinding")) {
        let subjects = at(binding, &["subjects"]).and_then(Value::as_sequence).unwrap();
        assert_eq!(subjects.len(), 1, "{}: one subject", name(binding));
        assert_eq!(str_at(&subjects[0], &["kind"]), Some("ServiceAccount"));
        assert_eq!(str_at(&subjects[0], &["name"]), Some(sa.as_str()));
        assert_eq!(str_at(&subjects[0], &["namespace"]), Some(RELEASE_NS));
        let role_kind = str_at(binding, &["roleRef", "kind"]).unwrap();
        let role_name = str_at(binding, &["roleRef", "name"]).unwrap();
        let role = docs.iter().find(|d| kind(d) == role_kind && name(d) == role_name);
        let role = role.unwrap_or_else(|| panic!("{} binds {role_kind} {role_name}, not in the chart", name(binding)));
        assert_eq!(namespace(role), namespace(binding), "{} binds a role of its namespace", name(binding));
    }
    for doc in docs {
        let labels = at(doc, &["metadata", "labels"]).unwrap_or_else(|| panic!("{} has no labels", name(doc)));
        for label in [
            "helm.sh/chart",
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
        ] {
            assert!(labels.get(label).is_some(), "{} {} lacks label {label}", kind(doc), name(doc));
        }
    }
}

fn deployment_args(docs: &[Value]) -> Vec<String> {
    strings(at(the(docs, "Deployment"), &["spec", "template", "spec", "containers"]).map(|c| &c[0]["args"]))
}

// --- renderings -------------------------------------------------------------------

#[test]
fn lint_passes_with_default_namespaced_and_swarm_values() {
    for values in [
        &[][..],
        &["--set", "watchNamespaces={games}"][..],
        &[
            "--set",
            "backend=swarm",
            "--set",
            "swarm.dockerHost=tcp://swarm.example:2376",
            "--set",
            "swarm.tlsSecret=tls",
        ][..],
    ] {
        let out =
            succeed(helm().args(["lint", "--strict", "--kube-version", KUBE_VERSION]).arg(chart_dir()).args(values));
        assert!(out.contains("0 chart(s) failed"), "helm lint {values:?}:\n{out}");
    }
}

#[test]
fn cluster_wide_rendering_grants_exactly_what_the_controller_uses_on_every_namespace() {
    let docs = rendered(&[]);
    assert_least_privilege_and_labels(&docs);

    let cluster_roles = of_kind(&docs, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1, "one ClusterRole");
    let mut want = game_permissions();
    want.extend(cluster_template_permissions());
    want.extend(node_permissions());
    assert_eq!(granted(cluster_roles[0]), want);
    let binding = the(&docs, "ClusterRoleBinding");
    assert_eq!(str_at(binding, &["roleRef", "name"]), Some(name(cluster_roles[0])));

    // The only Role is the Lease's, in the release namespace.
    let roles = of_kind(&docs, "Role");
    assert_eq!(roles.len(), 1, "only the leader-election Role: {roles:?}");
    assert_eq!(namespace(roles[0]), Some(RELEASE_NS));
    assert_eq!(granted(roles[0]), lease_permissions("mtn-mettaton-controller"));
    assert_eq!(of_kind(&docs, "RoleBinding").len(), 1);

    assert!(!deployment_args(&docs).iter().any(|a| a.starts_with("--namespace")), "watches all namespaces");
    let docs = rendered(&["--set", "concurrency=8"]);
    assert!(deployment_args(&docs).contains(&"--concurrency=8".to_string()));
}

#[test]
fn namespaced_rendering_confines_game_resources_to_the_watched_namespace() {
    let docs = rendered(&["--set", "watchNamespaces={games}"]);
    assert_least_privilege_and_labels(&docs);

    let roles = of_kind(&docs, "Role");
    let games: Vec<_> = roles.iter().filter(|r| namespace(r) == Some("games")).collect();
    assert_eq!(games.len(), 1, "one Role in the watched namespace");
    assert_eq!(granted(games[0]), game_permissions());
    let bindings = of_kind(&docs, "RoleBinding");
    assert!(
        bindings
            .iter()
            .any(|b| namespace(b) == Some("games") && str_at(b, &["roleRef", "name"]) == Some(name(games[0]))),
        "the Role in games is bound"
    );

    // Nodes and ClusterGameTemplates are cluster-scoped: the ClusterRoles
    // read them and nothing else, each bound.
    let cluster_roles = of_kind(&docs, "ClusterRole");
    let grants: BTreeSet<BTreeSet<Permission>> = cluster_roles.iter().map(|r| granted(r)).collect();
    assert_eq!(grants, BTreeSet::from([node_permissions(), cluster_template_permissions()]));
    let cluster_bindings = of_kind(&docs, "ClusterRoleBinding");
    for role in &cluster_roles {
        assert!(
            cluster_bindings.iter().any(|b| str_at(b, &["roleRef", "name"]) == Some(name(role))),
            "{} is bound",
            name(role)
        );
    }

    let lease_roles: Vec<_> = roles.iter().filter(|r| namespace(r) == Some(RELEASE_NS)).collect();
    assert_eq!(lease_roles.len(), 1);
    assert_eq!(granted(lease_roles[0]), lease_permissions("mtn-mettaton-controller"));
    assert_eq!(roles.len(), 2, "no other Role");

    assert!(deployment_args(&docs).contains(&"--namespace=games".to_string()));
}

#[test]
fn the_deployment_runs_two_restricted_probed_replicas_with_args_from_values() {
    let docs = rendered(&[]);
    let deployment = the(&docs, "Deployment");
    assert_eq!(namespace(deployment), Some(RELEASE_NS));
    assert_eq!(at(deployment, &["spec", "replicas"]).and_then(Value::as_i64), Some(2));
    let pod = at(deployment, &["spec", "template", "spec"]).unwrap();
    let sa = the(&docs, "ServiceAccount");
    assert_eq!(str_at(pod, &["serviceAccountName"]), Some(name(sa)));
    assert_eq!(at(pod, &["automountServiceAccountToken"]).and_then(Value::as_bool), Some(true));
    assert_eq!(at(sa, &["automountServiceAccountToken"]).and_then(Value::as_bool), Some(true));

    // The restricted Pod Security Standard.
    let pod_sc = at(pod, &["securityContext"]).expect("pod securityContext");
    assert_eq!(at(pod_sc, &["runAsNonRoot"]).and_then(Value::as_bool), Some(true));
    assert_eq!(at(pod_sc, &["runAsUser"]).and_then(Value::as_i64), Some(65532));
    assert_eq!(at(pod_sc, &["runAsGroup"]).and_then(Value::as_i64), Some(65532));
    assert_eq!(str_at(pod_sc, &["seccompProfile", "type"]), Some("RuntimeDefault"));
    let containers = at(pod, &["containers"]).and_then(Value::as_sequence).unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = at(c, &["securityContext"]).expect("container securityContext");
    assert_eq!(at(sc, &["runAsNonRoot"]).and_then(Value::as_bool), Some(true));
    assert_eq!(at(sc, &["runAsUser"]).and_then(Value::as_i64), Some(65532));
    assert_eq!(at(sc, &["readOnlyRootFilesystem"]).and_then(Value::as_bool), Some(true));
    assert_eq!(at(sc, &["allowPrivilegeEscalation"]).and_then(Value::as_bool), Some(false));
    assert_eq!(strings(at(sc, &["capabilities", "drop"])), ["ALL"]);
    assert!(at(sc, &["capabilities", "add"]).is_none());
    assert_eq!(str_at(sc, &["seccompProfile", "type"]), Some("RuntimeDefault"));
    for forbidden in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(pod.get(forbidden).is_none(), "{forbidden}");
    }

    // Resources, the admin port and the probes on it.
    assert!(
        at(c, &["resources", "requests", "cpu"]).is_some() && at(c, &["resources", "requests", "memory"]).is_some()
    );
    assert!(at(c, &["resources", "limits", "memory"]).is_some());
    let port = &at(c, &["ports"]).and_then(Value::as_sequence).unwrap()[0];
    assert_eq!(
        (str_at(port, &["name"]), at(port, &["containerPort"]).and_then(Value::as_i64)),
        (Some("admin"), Some(8080))
    );
    assert_eq!(str_at(c, &["livenessProbe", "httpGet", "path"]), Some("/healthz"));
    assert_eq!(str_at(c, &["livenessProbe", "httpGet", "port"]), Some("admin"));
    assert_eq!(str_at(c, &["readinessProbe", "httpGet", "path"]), Some("/readyz"));
    assert_eq!(str_at(c, &["readinessProbe", "httpGet", "port"]), Some("admin"));

    // Identity from the downward API; arguments from the values.
    let env = at(c, &["env"]).and_then(Value::as_sequence).unwrap();
    for (var, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let e = env.iter().find(|e| str_at(e, &["name"]) == Some(var)).unwrap_or_else(|| panic!("env {var}"));
        assert_eq!(str_at(e, &["valueFrom", "fieldRef", "fieldPath"]), Some(field));
    }
    assert_eq!(
        deployment_args(&docs),
        [
            "controller",
            "--admin-address=0.0.0.0:8080",
            "--backend=kubernetes",
            "--concurrency=64",
            "--leader-election",
            "--lease-name=mtn-mettaton-controller",
            "--lease-namespace=mettaton-system",
            "--lease-duration-seconds=15",
        ]
    );
    let args = deployment_args(&rendered(&[
        "--set",
        "leaderElection.leaseDurationSeconds=30",
        "--set",
        "admin.port=9090",
        "--set",
        "watchNamespaces={games}",
        "--set",
        "supervisor.image=registry.example.com/mettaton-supervisor:1",
    ]));
    assert!(args.contains(&"--lease-duration-seconds=30".to_string()), "{args:?}");
    assert!(args.contains(&"--supervisor-image=registry.example.com/mettaton-supervisor:1".to_string()), "{args:?}");
    assert!(args.contains(&"--admin-address=0.0.0.0:9090".to_string()), "{args:?}");
    assert!(args.contains(&"--namespace=games".to_string()), "{args:?}");

    // The metrics Service, the PodDisruptionBudget; no ServiceMonitor unless asked.
    let service = the(&docs, "Service");
    let service_port = &at(service, &["spec", "ports"]).and_then(Value::as_sequence).unwrap()[0];
    assert_eq!(str_at(service_port, &["name"]), Some("metrics"));
    assert_eq!(at(service_port, &["port"]).and_then(Value::as_i64), Some(8080));
    assert_eq!(str_at(service_port, &["targetPort"]), Some("admin"));
    let selector = at(deployment, &["spec", "selector", "matchLabels"]).unwrap();
    assert_eq!(at(service, &["spec", "selector"]), Some(selector));
    let pdb = the(&docs, "PodDisruptionBudget");
    assert_eq!(at(pdb, &["spec", "minAvailable"]).and_then(Value::as_i64), Some(1));
    assert_eq!(at(pdb, &["spec", "selector", "matchLabels"]), Some(selector));
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());

    let monitored = rendered(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "serviceMonitor.interval=15s",
        "--set",
        "serviceMonitor.labels.release=prometheus",
    ]);
    let monitor = the(&monitored, "ServiceMonitor");
    assert_eq!(str_at(monitor, &["apiVersion"]), Some("monitoring.coreos.com/v1"));
    assert_eq!(str_at(monitor, &["metadata", "labels", "release"]), Some("prometheus"));
    let endpoint = &at(monitor, &["spec", "endpoints"]).and_then(Value::as_sequence).unwrap()[0];
    assert_eq!((str_at(endpoint, &["port"]), str_at(endpoint, &["path"])), (Some("metrics"), Some("/metrics")));
    assert_eq!(str_at(endpoint, &["interval"]), Some("15s"));
    let service_labels = at(the(&monitored, "Service"), &["metadata", "labels"]).unwrap();
    for (k, v) in at(monitor, &["spec", "selector", "matchLabels"]).and_then(Value::as_mapping).unwrap() {
        assert_eq!(service_labels.get(k), Some(v), "the ServiceMonitor selects the metrics Service");
    }

    // One replica: no budget that would block every drain, and leader election
    // may be off; two replicas without it are refused.
    let single = rendered(&["--set", "replicaCount=1", "--set", "leaderElection.enabled=false"]);
    assert!(of_kind(&single, "PodDisruptionBudget").is_empty());
    assert!(!deployment_args(&single).iter().any(|a| a.starts_with("--lease") || a == "--leader-election"));
    assert!(of_kind(&single, "Role").is_empty(), "no Lease Role without leader election");
    let err = render(&["--set", "leaderElection.enabled=false"]).expect_err("2 replicas without leader election");
    assert!(err.contains("without leader election"), "{err}");
}

#[test]
fn more_than_one_watched_namespace_fails_rendering_with_a_clear_message() {
    let err = render(&["--set", "watchNamespaces={games,arcade}"]).expect_err("two namespaces are refused");
    assert!(err.contains("watches one namespace or all of them, not 2 (games, arcade)"), "{err}");
    let err = render(&["--set", "backend=nomad"]).expect_err("an unknown backend is refused");
    assert!(err.contains("\"nomad\" is not a backend; use kubernetes or swarm"), "{err}");
    let err = render(&["--set", "backend=swarm"]).expect_err("the swarm backend needs a daemon");
    assert!(err.contains("swarm.dockerHost"), "{err}");
}

#[test]
fn swarm_rendering_mounts_the_tls_secret_read_only_and_grants_no_children() {
    let docs = rendered(&[
        "--set",
        "backend=swarm",
        "--set",
        "swarm.dockerHost=tcp://swarm.example:2376",
        "--set",
        "swarm.tlsSecret=docker-tls",
    ]);
    assert_least_privilege_and_labels(&docs);
    let cluster_role = the(&docs, "ClusterRole");
    let mut want = swarm_game_permissions();
    want.extend(cluster_template_permissions());
    assert_eq!(granted(cluster_role), want, "no Deployments, pods or nodes for a swarm");
    assert!(deployment_args(&docs).contains(&"--backend=swarm".to_string()));

    let pod = at(the(&docs, "Deployment"), &["spec", "template", "spec"]).unwrap();
    let c = &pod["containers"][0];
    let env = at(c, &["env"]).and_then(Value::as_sequence).unwrap();
    let var = |n: &str| env.iter().find(|e| str_at(e, &["name"]) == Some(n)).and_then(|e| str_at(e, &["value"]));
    assert_eq!(var("DOCKER_HOST"), Some("tcp://swarm.example:2376"));
    assert_eq!(var("DOCKER_TLS_VERIFY"), Some("1"));
    let cert_path = var("DOCKER_CERT_PATH").expect("DOCKER_CERT_PATH");
    let mount = &at(c, &["volumeMounts"]).and_then(Value::as_sequence).unwrap()[0];
    assert_eq!(str_at(mount, &["mountPath"]), Some(cert_path));
    assert_eq!(at(mount, &["readOnly"]).and_then(Value::as_bool), Some(true));
    let volume = &at(pod, &["volumes"]).and_then(Value::as_sequence).unwrap()[0];
    assert_eq!(str_at(volume, &["name"]), str_at(mount, &["name"]));
    assert_eq!(str_at(volume, &["secret", "secretName"]), Some("docker-tls"));
    let keys: Vec<_> = at(volume, &["secret", "items"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .map(|i| str_at(i, &["key"]).unwrap())
        .collect();
    assert_eq!(keys, ["ca.pem", "cert.pem", "key.pem"]);
    assert_eq!(at(c, &["securityContext", "readOnlyRootFilesystem"]).and_then(Value::as_bool), Some(true));

    // Without a TLS secret: plain TCP, nothing mounted.
    let plain = rendered(&["--set", "backend=swarm", "--set", "swarm.dockerHost=tcp://swarm.example:2375"]);
    let pod = at(the(&plain, "Deployment"), &["spec", "template", "spec"]).unwrap();
    assert!(pod.get("volumes").is_none());
    let env: Vec<&str> =
        pod["containers"][0]["env"].as_sequence().unwrap().iter().filter_map(|e| str_at(e, &["name"])).collect();
    assert!(!env.iter().any(|n| n.starts_with("DOCKER_TLS") || *n == "DOCKER_CERT_PATH"), "{env:?}");
}

#[test]
fn the_charts_crds_are_the_repositorys_byte_for_byte() {
    let listed = |dir: std::path::PathBuf| -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };
    let files = listed(root().join("crds"));
    assert_eq!(files, ["clustergametemplate.yaml", "gameserver.yaml", "gametemplate.yaml"]);
    assert_eq!(listed(chart_dir().join("crds")), files, "the chart installs every CRD");
    for file in files {
        let repository = std::fs::read(root().join("crds").join(&file)).unwrap();
        let chart = std::fs::read(chart_dir().join("crds").join(&file)).unwrap();
        assert!(
            repository == chart,
            "charts/mettaton/crds/{file} differs from crds/{file}: cp crds/{file} charts/mettaton/crds/"
        );
    }
}

// --- installs into the local control plane ----------------------------------------------

/// A release name unique to a test namespace (the namespaces' names are unique).
fn release_name(ns: &TestNamespace) -> String {
    format!("chart-{}", ns.name.rsplit('-').next().unwrap())
}

/// The Pod Security Standard `level` enforced (and warned about) in the namespace.
async fn enforce_pod_security(ns: &TestNamespace, level: &str) {
    let patch = json!({ "metadata": { "labels": {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": level,
    } } });
    Api::<Namespace>::all(ns.client.clone())
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn crd_established(client: &Client) {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    eventually("the GameServer CRD Established", WAIT, || async {
        let crd = crds.get("gameservers.mettaton.dev").await.map_err(|e| e.to_string())?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
            Ok(())
        } else {
            Err(format!("{conditions:?}"))
        }
    })
    .await;
}

/// What the namespace's Events say, for failure messages.
async fn events_of(ns: &TestNamespace) -> Vec<String> {
    let events = ns.api::<k8s_openapi::api::core::v1::Event>().list(&ListParams::default()).await;
    events
        .map(|l| l.items.into_iter().map(|e| format!("{:?}: {:?}", e.reason, e.message)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_into_a_restricted_namespace_runs_two_ready_controller_pods() {
    let ns = TestNamespace::new("chart-install").await;
    enforce_pod_security(&ns, "restricted").await;

    // The namespace really refuses what `restricted` forbids: a pod that does
    // not say it runs as non-root, keeps its capabilities, may escalate.
    let loose: Pod = serde_json::from_value(json!({
        "metadata": { "name": "loose" },
        "spec": { "containers": [{ "name": "main", "image": "mettaton.test/plain:1" }] }
    }))
    .unwrap();
    let refused = ns.api::<Pod>().create(&PostParams::default(), &loose).await.expect_err("restricted is enforced");
    let message = api_status(&refused).map(|s| s.message.clone()).unwrap_or_default();
    assert!(message.contains("violates PodSecurity \"restricted:latest\""), "{refused}");

    let release_name = release_name(&ns);
    let (release, out) = Release::install(&release_name, &ns.name, "120s", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helm install: {stderr}\nevents: {:#?}", events_of(&ns).await);
    assert!(!stderr.contains("PodSecurity"), "no Pod Security warning: {stderr}");
    crd_established(&ns.client).await;

    // Both replicas were admitted and are Ready (kwok plays the kubelet, so no
    // image is pulled).
    let selector = format!("app.kubernetes.io/instance={release_name}");
    let pods = eventually("two Ready controller pods", WAIT, || async {
        let pods = ns.api::<Pod>().list(&ListParams::default().labels(&selector)).await.map_err(|e| e.to_string())?;
        let ready = pods
            .items
            .iter()
            .filter(|p| {
                let conditions = p.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
                conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
            })
            .count();
        if pods.items.len() == 2 && ready == 2 {
            Ok(pods.items)
        } else {
            Err(format!("{} pods, {ready} ready; events: {:?}", pods.items.len(), events_of(&ns).await))
        }
    })
    .await;
    for pod in &pods {
        let spec = pod.spec.as_ref().unwrap();
        let sc = spec.containers[0].security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(spec.service_account_name.as_deref(), Some(format!("{release_name}-mettaton").as_str()));
    }
    let deployment = ns.api::<Deployment>().get(&format!("{release_name}-mettaton")).await.unwrap();
    assert_eq!(deployment.status.and_then(|s| s.ready_replicas), Some(2));

    let out = release.uninstall();
    assert!(out.status.success(), "helm uninstall: {}", String::from_utf8_lossy(&out.stderr));
    let cluster_roles = Api::<ClusterRole>::all(ns.client.clone());
    assert!(cluster_roles.get_opt(&format!("{release_name}-mettaton")).await.unwrap().is_none(), "RBAC removed");
    eventually("the Deployment removed", WAIT, || async {
        match ns.api::<Deployment>().get_opt(&format!("{release_name}-mettaton")).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Helm keeps CRDs on uninstall: GameServers of other releases survive.
    crd_established(&ns.client).await;
}

/// Stops the controller process when the test ends, whatever happens.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A kubeconfig for the plane that authenticates with `token` only.
fn token_kubeconfig(token: &str, path: &Path) {
    let admin: Value = serde_yaml::from_str(&std::fs::read_to_string(kubeconfig_path()).unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let mut plane = serde_yaml::Mapping::new();
    plane.insert("server".into(), cluster["server"].clone());
    for ca in ["certificate-authority", "certificate-authority-data"] {
        if let Some(v) = cluster.get(ca) {
            plane.insert(ca.into(), v.clone());
        }
    }
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "plane", "cluster": plane }],
        "users": [{ "name": "chart-service-account", "user": { "token": token } }],
        "contexts": [{ "name": "chart", "context": { "cluster": "plane", "user": "chart-service-account" } }],
        "current-context": "chart"
    });
    std::fs::write(path, serde_yaml::to_string(&config).unwrap()).unwrap();
}

/// Whether `kubectl auth can-i` says `user` may do this.
fn can_i(user: &str, args: &[&str]) -> bool {
    let out = output(kubectl().args(["auth", "can-i"]).args(args).args(["--as", user]));
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl auth can-i {args:?}: {other} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// A GET on the controller's admin server: the status code and body.
fn admin_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, response))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_service_account_is_enough_for_the_controller_and_no_more() {
    ensure_crd().await;
    let system = TestNamespace::new("chart-rbac").await;
    let games = TestNamespace::new("chart-games").await;
    let release_name = release_name(&system);
    let watch = format!("watchNamespaces={{{}}}", games.name);
    let (_release, out) = Release::install(&release_name, &system.name, "120s", &["--set", &watch]);
    assert!(out.status.success(), "helm install: {}", String::from_utf8_lossy(&out.stderr));
    let sa = format!("{release_name}-mettaton");
    let user = format!("system:serviceaccount:{}:{sa}", system.name);

    // What it must not do.
    let other = "default";
    let lease = format!("{release_name}-mettaton-controller");
    let refused: Vec<Vec<&str>> = vec![
        vec!["get", "secrets", "-n", &games.name],
        vec!["list", "secrets", "-n", &games.name],
        vec!["get", "secrets", "-n", &system.name],
        vec!["list", "secrets", "--all-namespaces"],
        vec!["create", "deployments.apps", "-n", &system.name],
        vec!["create", "deployments.apps", "-n", other],
        vec!["list", "gameservers.mettaton.dev", "-n", other],
        vec!["list", "gameservers.mettaton.dev", "--all-namespaces"],
        vec!["list", "gametemplates.mettaton.dev", "-n", other],
        vec!["create", "clustergametemplates.mettaton.dev"],
        vec!["list", "pods", "-n", &system.name],
        vec!["create", "pods", "-n", &games.name],
        vec!["create", "pods", "--subresource=exec", "-n", &games.name],
        vec!["get", "pods", "--subresource=log", "-n", &games.name],
        vec!["create", "pods", "--subresource=proxy", "-n", &games.name],
        vec!["get", "pods", "--subresource=proxy", "-n", &system.name],
        vec!["update", "gameservers.mettaton.dev", "-n", &games.name],
        vec!["delete", "gameservers.mettaton.dev", "-n", &games.name],
        vec!["list", "nodes"],
        vec!["patch", "nodes"],
        vec!["create", "leases.coordination.k8s.io", "-n", &games.name],
        vec!["update", "leases.coordination.k8s.io/someone-elses", "-n", &system.name],
        vec!["create", "rolebindings.rbac.authorization.k8s.io", "-n", &games.name],
        vec!["create", "serviceaccounts", "--subresource=token", "-n", &system.name],
        vec!["*", "*", "-n", &games.name],
    ];
    for args in &refused {
        assert!(!can_i(&user, args), "the ServiceAccount may {args:?}");
    }
    // What it needs.
    let lease_ref = format!("leases.coordination.k8s.io/{lease}");
    let allowed: Vec<Vec<&str>> = vec![
        vec!["watch", "gameservers.mettaton.dev", "-n", &games.name],
        vec!["patch", "gameservers.mettaton.dev", "--subresource=status", "-n", &games.name],
        vec!["update", "gameservers.mettaton.dev", "--subresource=finalizers", "-n", &games.name],
        vec!["create", "deployments.apps", "-n", &games.name],
        vec!["delete", "persistentvolumeclaims", "-n", &games.name],
        vec!["patch", "configmaps", "-n", &games.name],
        vec!["watch", "pods", "-n", &games.name],
        vec!["get", "pods", "--subresource=proxy", "-n", &games.name],
        vec!["watch", "gametemplates.mettaton.dev", "-n", &games.name],
        vec!["list", "clustergametemplates.mettaton.dev"],
        vec!["get", "nodes"],
        vec!["create", "events.events.k8s.io", "-n", &games.name],
        vec!["create", "leases.coordination.k8s.io", "-n", &system.name],
        vec!["update", &lease_ref, "-n", &system.name],
    ];
    for args in &allowed {
        assert!(can_i(&user, args), "the ServiceAccount may not {args:?}");
    }

    // The controller out of the cluster, as the chart runs it, with nothing but
    // a token of the chart's ServiceAccount.
    let token = succeed(kubectl().args(["create", "token", &sa, "-n", &system.name, "--duration=1h"]));
    let dir = Scratch::new(std::env::temp_dir().join(format!("mettaton-{}", system.name)));
    let kubeconfig = dir.join("token-kubeconfig");
    token_kubeconfig(token.trim(), &kubeconfig);
    let help = succeed(Command::new(env!("CARGO_BIN_EXE_mettaton")).args(["controller", "--help"]));
    let supported = |arg: &str| {
        let flag = arg.split('=').next().unwrap();
        help.match_indices(flag).any(|(i, _)| {
            let next = help[i + flag.len()..].chars().next();
            matches!(next, None | Some(' ' | '\n' | '=' | '<' | ','))
        })
    };
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let chart_args = {
        let d = system.api::<Deployment>().get(&sa).await.unwrap();
        d.spec.unwrap().template.spec.unwrap().containers[0].args.clone().unwrap()
    };
    let mut args: Vec<String> = Vec::new();
    for arg in chart_args {
        if arg == "controller" || !supported(&arg) {
            // Flags a controller binary predating them would refuse; the
            // permissions are still what this test proves.
            if arg != "controller" {
                eprintln!("the controller binary has no {arg} yet: running without it");
            }
            continue;
        }
        args.push(match arg.strip_prefix("--admin-address=") {
            Some(_) => format!("--admin-address=127.0.0.1:{admin_port}"),
            None => arg,
        });
    }
    assert!(args.contains(&format!("--namespace={}", games.name)), "{args:?}");
    let log = dir.join("controller.log");
    let pod_name = format!("{release_name}-out-of-cluster");
    let mut command = Command::new(env!("CARGO_BIN_EXE_mettaton"));
    // Only what the chart says counts, not the settings of whoever runs the tests.
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("MTN_") || var == "KUBECONFIG" {
            command.env_remove(var);
        }
    }
    let mut controller = Process(
        command
            .arg("controller")
            .args(&args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env("POD_NAME", &pod_name)
            .env("POD_NAMESPACE", &system.name)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // A server with storage and a config file: Ready with its address...
    let api = games.api::<GameServer>();
    let gs: GameServer = serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
        "metadata": { "name": "world" },
        "spec": {
            "image": "mettaton.test/game:1",
            "ports": [{ "name": "game", "containerPort": 7777 }],
            "storage": { "size": "1Gi", "reclaimPolicy": "Retain" },
            "config": [{ "path": "/etc/game/server.cfg", "content": "motd=hello\n" }]
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &gs).await.unwrap();
    let running = wait_ready(&api, "world", WAIT).await;
    let status = running.status.as_ref().unwrap();
    assert!(status.address.as_deref().is_some_and(|a| a.starts_with("127.0.0.")), "{status:?}");
    assert_eq!(status.ports.len(), 1);
    assert!(games.api::<ConfigMap>().get_opt("world-config").await.unwrap().is_some(), "config file as a ConfigMap");
    let volume = games.api::<PersistentVolumeClaim>().get("world-data").await.unwrap().uid();

    // ...Stopped...
    let state = |s: &str| Patch::Merge(json!({ "spec": { "state": s } }));
    api.patch("world", &PatchParams::default(), &state("Stopped")).await.unwrap();
    wait_phase(&api, "world", Phase::Stopped, WAIT).await;
    assert_eq!(games.api::<Deployment>().get("world").await.unwrap().spec.unwrap().replicas, Some(0));
    // ...Running again...
    api.patch("world", &PatchParams::default(), &state("Running")).await.unwrap();
    wait_ready(&api, "world", WAIT).await;
    let reasons: Vec<String> = games
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("world"))
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Created", "Started", "Stopped"] {
        assert!(reasons.iter().any(|r| r == reason), "a {reason} Event in {reasons:?}");
    }
    // ...and deleted, the volume kept.
    api.delete("world", &DeleteParams::default()).await.unwrap();
    eventually("world deleted", WAIT, || async {
        match api.get_opt("world").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let kept = games.api::<PersistentVolumeClaim>().get("world-data").await.expect("Retain keeps the volume");
    assert_eq!(kept.uid(), volume);
    assert!(kept.owner_references().is_empty(), "released from the deleted GameServer");

    // The chart's Lease permissions, when the binary elects a leader.
    if args.iter().any(|a| a == "--leader-election") {
        let lease = Api::<Lease>::namespaced(system.client.clone(), &system.name).get(&lease).await.unwrap();
        assert_eq!(lease.spec.and_then(|s| s.holder_identity).as_deref(), Some(pod_name.as_str()));
    }
    if args.iter().any(|a| a.starts_with("--admin-address")) {
        let (code, body) = admin_get(admin_port, "/readyz").unwrap();
        assert_eq!(code, 200, "/readyz: {body}");
    }

    assert!(controller.0.try_wait().unwrap().is_none(), "the controller still runs:\n{}", log_text());
    let pid = controller.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exited = eventually("the controller to exit", Duration::from_secs(30), || {
        let exited = controller.0.try_wait().unwrap();
        async move { exited.ok_or("still running") }
    })
    .await;
    assert!(exited.success(), "exit status {exited:?}:\n{}", log_text());
    // Nothing was refused, from the start to the release of the Lease on exit.
    let text = log_text();
    assert!(!text.to_lowercase().contains("forbidden"), "the controller was refused something:\n{text}");
}

/// A directory removed when the test ends (it holds a token).
struct Scratch(PathBuf);

impl Scratch {
    fn new(path: PathBuf) -> Scratch {
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
