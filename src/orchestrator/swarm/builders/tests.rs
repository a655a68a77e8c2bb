use super::*;
use crate::api::{GameServer, GameServerSpec};
use crate::orchestrator::observed::{Problem, ProblemKind};
use crate::orchestrator::{InstanceEventKind, ServerKey};
use crate::plan::LABEL_GAMESERVER;
use crate::plan::{self, plan_spec};
use serde_json::{Value, json};

/// The supervisor's image the builders are given.
const SUPERVISOR: &str = "registry.test/mettaton-supervisor:1";

fn spec(value: Value) -> GameServerSpec {
    serde_json::from_value(value).unwrap()
}

fn minecraft() -> Value {
    json!({
        "image": "itzg/minecraft-server:java21",
        "args": ["--nogui"],
        "env": [{ "name": "EULA", "value": "TRUE" }, { "name": "EMPTY" }],
        "ports": [
            { "name": "game", "containerPort": 25565, "externalPort": 25565 },
            { "name": "query", "containerPort": 25565, "protocol": "UDP" }
        ],
        "resources": { "limits": { "cpu": "2", "memory": "4Gi" }, "requests": { "cpu": "500m", "memory": "2Gi" } },
        "storage": { "size": "10Gi", "mountPath": "/data", "reclaimPolicy": "Retain" },
        "config": [{ "path": "/data/server.properties", "content": "motd=hi\n" }],
        "health": { "startupTimeoutSeconds": 300, "periodSeconds": 5, "failureThreshold": 4,
                    "probe": { "exec": ["mc-health"] } },
        "shutdown": { "gracePeriodSeconds": 30 }
    })
}

fn plan_of(value: Value) -> ServerPlan {
    plan_spec("mc", "games", &spec(value))
}

fn refusal(result: Result<impl std::fmt::Debug, BackendError>) -> String {
    match result {
        Err(BackendError::Refused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_service_spec_runs_the_whole_plan() {
    let spec = service_spec(&plan_of(minecraft()), Some("uid-1"), SUPERVISOR).unwrap();
    insta::with_settings!({ sort_maps => true }, {
        insta::assert_yaml_snapshot!(spec);
    });
}

#[test]
fn names_carry_the_namespace_and_default_to_default() {
    let p = plan_of(minecraft());
    assert_eq!(service_name(&p), "mettaton-games-mc");
    assert_eq!(volume_name(&p), "mettaton-games-mc-data");
    let p = plan_spec("mc", "", &spec(minecraft()));
    assert_eq!(service_name(&p), "mettaton-default-mc");
    assert_eq!(display_name(&p), "default/mc");
}

#[test]
fn names_swarm_would_refuse_are_shortened_and_hashed() {
    let dotted = plan_spec("mc.survival", "games", &spec(minecraft()));
    let name = service_name(&dotted);
    assert!(name.starts_with("mettaton-games-mc-survival-"), "{name}");
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{name}");
    let dashed = plan_spec("mc-survival", "games", &spec(minecraft()));
    assert_ne!(service_name(&dashed), name, "a dot and a dash are different servers");

    let long_name = "x".repeat(200);
    let long = plan_spec(&long_name, "games", &spec(minecraft()));
    let other = plan_spec(&format!("{long_name}y"), "games", &spec(minecraft()));
    assert_eq!(service_name(&long).len(), 63);
    assert_ne!(service_name(&long), service_name(&other));
    let config = config_name(&long, 12, "/a", "b");
    assert!(config.len() <= 64 && config.ends_with(|c: char| c.is_ascii_alphanumeric()), "{config}");
}

#[test]
fn config_names_change_with_the_content_and_only_then() {
    let p = plan_of(minecraft());
    let a = config_name(&p, 0, "/data/server.properties", "motd=hi\n");
    assert!(a.starts_with("mettaton-games-mc-") && a.ends_with("-0"), "{a}");
    assert_eq!(a, config_name(&p, 0, "/data/server.properties", "motd=hi\n"));
    assert_ne!(a, config_name(&p, 0, "/data/server.properties", "motd=hello\n"));
    assert_ne!(a, config_name(&p, 0, "/data/other.properties", "motd=hi\n"));
}

#[test]
fn config_files_are_labelled_base64_configs() {
    let p = plan_of(minecraft());
    let configs = config_files(&p).unwrap();
    assert_eq!(configs.len(), 1);
    let c = &configs[0];
    assert_eq!(c.path, "/data/server.properties");
    assert_eq!(c.spec.name.as_deref(), Some(c.name.as_str()));
    assert_eq!(c.spec.data.as_deref(), Some("bW90ZD1oaQo="));
    assert!(is_ours(c.spec.labels.as_ref(), &p));
    assert_eq!(c.spec.labels.as_ref().unwrap()[LABEL_PATH], "/data/server.properties");
}

#[test]
fn what_swarm_cannot_do_is_refused_with_the_field_named() {
    let mut v = minecraft();
    v["env"] = json!([{ "name": "RCON_PASSWORD", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }]);
    let reason = refusal(service_spec(&plan_of(v), None, SUPERVISOR));
    assert!(reason.contains("env RCON_PASSWORD uses valueFrom"), "{reason}");

    let mut v = minecraft();
    v["config"] = json!([{ "path": "/data/ops.json", "configMapKeyRef": { "name": "ops", "key": "ops.json" } }]);
    let reason = refusal(service_spec(&plan_of(v), None, SUPERVISOR));
    assert!(reason.contains("config file /data/ops.json comes from key ops.json of ConfigMap ops"), "{reason}");

    // A stop command is run by the orchestrator (swarm has no pre-stop
    // hook), so it is no refusal.
    let mut v = minecraft();
    v["shutdown"] = json!({ "stopCommand": ["rcon-cli", "stop"] });
    assert!(service_spec(&plan_of(v), None, SUPERVISOR).is_ok());

    let mut v = minecraft();
    v["resources"] = json!({ "limits": { "nvidia.com/gpu": "1" } });
    assert!(refusal(service_spec(&plan_of(v), None, SUPERVISOR)).contains("resources.limits.nvidia.com/gpu"));

    let mut v = minecraft();
    v["storage"]["mountPath"] = json!("data");
    assert!(
        refusal(service_spec(&plan_of(v), None, SUPERVISOR))
            .contains("storage.mountPath \"data\" must be an absolute path")
    );

    let mut v = minecraft();
    v["resources"] = json!({ "requests": { "memory": "lots" } });
    assert!(refusal(service_spec(&plan_of(v), None, SUPERVISOR)).contains("resources.requests.memory: \"lots\""));
}

#[test]
fn a_tcp_check_sets_no_healthcheck_and_an_exec_check_one() {
    let mut v = minecraft();
    v["health"] = json!({ "probe": { "tcpPort": "game" } });
    let spec = service_spec(&plan_of(v), None, SUPERVISOR).unwrap();
    let container = spec.task_template.unwrap().container_spec.unwrap();
    assert_eq!(container.health_check, None);
    assert!(!spec.labels.unwrap().contains_key(LABEL_READINESS));

    let spec = service_spec(&plan_of(minecraft()), None, SUPERVISOR).unwrap();
    let check = spec.task_template.unwrap().container_spec.unwrap().health_check.unwrap();
    assert_eq!(check.test.unwrap(), ["CMD", "mc-health"]);
    assert_eq!(check.interval, Some(5 * NANOS_PER_SECOND));
    assert_eq!(check.retries, Some(4));
    assert_eq!(check.start_period, Some(300 * NANOS_PER_SECOND));
}

#[test]
fn a_stopped_server_has_no_replica() {
    let mut v = minecraft();
    v["state"] = json!("Stopped");
    let spec = service_spec(&plan_of(v), None, SUPERVISOR).unwrap();
    assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(0));
}

/// The spec as the engine gives it back: what mettaton sent, with the
/// engine's defaults filled in and empty lists dropped.
fn as_the_engine_returns(spec: &ServiceSpec) -> ServiceSpec {
    let mut v = serde_json::to_value(spec).unwrap();
    let task = &mut v["TaskTemplate"];
    task["ForceUpdate"] = json!(0);
    task["Runtime"] = json!("container");
    if task["Placement"].is_null() {
        task["Placement"] = json!({});
    }
    // The engine records the platforms the image runs on beside the constraints.
    task["Placement"]["Platforms"] = json!([{ "Architecture": "amd64", "OS": "linux" }]);
    task["ContainerSpec"]["Init"] = json!(false);
    task["ContainerSpec"]["DNSConfig"] = json!({});
    task["ContainerSpec"]["Isolation"] = json!("default");
    task["RestartPolicy"]["MaxAttempts"] = json!(0);
    task["RestartPolicy"]["Delay"] = json!(5_000_000_000i64);
    // Read back under a key bollard does not know.
    task["ContainerSpec"].as_object_mut().unwrap().remove("HealthCheck");
    v["EndpointSpec"]["Mode"] = json!("vip");
    v["UpdateConfig"] = json!({ "Parallelism": 1, "FailureAction": "pause", "Order": "stop-first" });
    serde_json::from_value(v).unwrap()
}

#[test]
fn a_spec_the_engine_holds_already_needs_no_update() {
    let p = plan_of(minecraft());
    let desired = with_config_ids(
        service_spec(&p, Some("uid-1"), SUPERVISOR).unwrap(),
        &HashMap::from([(config_files(&p).unwrap()[0].name.clone(), "cfg-1".to_string())]),
    );
    assert!(!needs_update(&desired, &as_the_engine_returns(&desired)));

    let mut v = minecraft();
    v["env"] = json!([]);
    v["args"] = json!([]);
    v["resources"] = json!({});
    let bare = service_spec(&plan_of(v), Some("uid-1"), SUPERVISOR).unwrap();
    let mut current = as_the_engine_returns(&bare);
    let container = current.task_template.as_mut().unwrap().container_spec.as_mut().unwrap();
    (container.env, container.args) = (Some(vec![]), Some(vec![]));
    assert!(!needs_update(&bare, &current), "empty lists and absent ones are the same");
}

#[test]
fn every_change_mettaton_decides_needs_an_update() {
    let base = service_spec(&plan_of(minecraft()), Some("uid-1"), SUPERVISOR).unwrap();
    let current = as_the_engine_returns(&base);
    let changed = |edit: fn(&mut Value)| {
        let mut v = minecraft();
        edit(&mut v);
        service_spec(&plan_of(v), Some("uid-1"), SUPERVISOR).unwrap()
    };
    let cases: Vec<(&str, ServiceSpec)> = vec![
        ("image", changed(|v| v["image"] = json!("itzg/minecraft-server:java17"))),
        ("env removed", changed(|v| v["env"] = json!([{ "name": "EULA", "value": "TRUE" }]))),
        ("args removed", changed(|v| v["args"] = json!([]))),
        ("command added", changed(|v| v["command"] = json!(["/start"]))),
        ("limits removed", changed(|v| v["resources"] = json!({ "requests": { "cpu": "500m", "memory": "2Gi" } }))),
        ("stopped", changed(|v| v["state"] = json!("Stopped"))),
        ("grace period", changed(|v| v["shutdown"] = json!({ "gracePeriodSeconds": 31 }))),
        ("config content", changed(|v| v["config"][0]["content"] = json!("motd=other\n"))),
        ("healthcheck", changed(|v| v["health"]["periodSeconds"] = json!(6))),
        ("port", changed(|v| v["ports"][0]["externalPort"] = json!(25566))),
        ("volume removed", changed(|v| v.as_object_mut().unwrap().remove("storage").map(|_| ()).unwrap())),
        ("label", changed(|v| v["description"] = json!("not a label"))),
    ];
    for (what, desired) in cases {
        let differs = needs_update(&desired, &current);
        assert_eq!(differs, what != "label", "{what}");
    }
    let other_owner = service_spec(&plan_of(minecraft()), Some("uid-2"), SUPERVISOR).unwrap();
    assert!(needs_update(&other_owner, &current), "a new GameServer of the same name");
}

#[test]
fn an_update_keeps_what_others_set() {
    let desired = service_spec(&plan_of(minecraft()), None, SUPERVISOR).unwrap();
    let mut current = as_the_engine_returns(&desired);
    let task = current.task_template.as_mut().unwrap();
    task.placement = Some(bollard::models::TaskSpecPlacement {
        constraints: Some(vec!["node.labels.games==true".into()]),
        ..Default::default()
    });
    task.force_update = Some(3);
    let update = for_update(desired.clone(), &current);
    let task = update.task_template.as_ref().unwrap();
    assert_eq!(task.placement, current.task_template.as_ref().unwrap().placement);
    assert_eq!(task.force_update, Some(3), "a changed counter would restart the server");
    assert_eq!(update.update_config, current.update_config);
    assert_eq!(update.task_template.unwrap().container_spec, desired.task_template.unwrap().container_spec);
}

/// A service type other than NodePort and service annotations have no
/// meaning on swarm: refused, naming the field.
#[test]
fn service_types_and_annotations_swarm_cannot_honour_are_refused_by_name() {
    for (service, field) in [
        (json!({ "type": "LoadBalancer" }), "spec.service.type LoadBalancer"),
        (json!({ "type": "ClusterIP" }), "spec.service.type ClusterIP"),
        (json!({ "annotations": { "lb.example.com/x": "y" } }), "spec.service.annotations"),
    ] {
        let mut v = minecraft();
        v["service"] = service;
        let reason = refusal(service_spec(&plan_of(v), None, SUPERVISOR));
        assert!(reason.starts_with(field), "{reason}");
    }
    let mut v = minecraft();
    v["service"] = json!({ "type": "NodePort" });
    assert!(service_spec(&plan_of(v), None, SUPERVISOR).is_ok());
}

/// storageClassName names the volume driver; the size is told to none,
/// recorded on the volume and reported as a limitation naming the field.
#[test]
fn the_storage_class_is_the_volume_driver_and_the_size_a_limitation() {
    let mut v = minecraft();
    v["storage"]["storageClassName"] = json!("rexray");
    let p = plan_of(v);
    let request = volume_request(&p).unwrap();
    assert_eq!(request.driver.as_deref(), Some("rexray"));
    assert_eq!(request.labels.unwrap()[LABEL_SIZE], "10Gi");
    let spec = service_spec(&p, None, SUPERVISOR).unwrap();
    let mount = &spec.task_template.unwrap().container_spec.unwrap().mounts.unwrap()[0];
    let driver = mount.volume_options.as_ref().unwrap().driver_config.as_ref().unwrap();
    assert_eq!(driver.name.as_deref(), Some("rexray"));
    let found = limitations(&p);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("spec.storage.size 10Gi is not enforced on Docker Swarm: volume driver rexray"));
    let plain = plan_of(minecraft());
    assert_eq!(volume_request(&plain).unwrap().driver, None, "Docker's default: local");
    let mut none = minecraft();
    none.as_object_mut().unwrap().remove("storage");
    assert!(limitations(&plan_of(none)).is_empty());
}

/// mettaton's TCP probe: every second until it first passes, then every
/// period; ready after one success, not ready after the failure threshold
/// in a row; a new task starts afresh (the orchestrator makes a new one).
#[test]
fn the_tcp_probe_follows_the_period_and_the_failure_threshold() {
    let mut p = TcpProbe::new("t1");
    assert!(p.due(0, 10) && !p.ready);
    p.record(0, false, 3);
    assert!(!p.due(999, 10) && p.due(1000, 10), "a second apart before the first success");
    p.record(1000, true, 3);
    assert!(p.ready);
    assert!(!p.due(10_999, 10) && p.due(11_000, 10), "then a period apart");
    p.record(11_000, false, 3);
    p.record(21_000, false, 3);
    assert!(p.ready, "two failures of three");
    p.record(31_000, false, 3);
    assert!(!p.ready, "the third in a row");
    p.record(41_000, true, 3);
    assert!(p.ready && p.failures == 0);
}

#[test]
fn the_probe_port_is_the_published_port_of_the_checked_one() {
    let mut v = minecraft();
    v["health"]["probe"] = json!({ "tcpPort": "game" });
    let p = plan_of(v);
    let endpoint = Endpoint {
        address: Some("127.0.0.1".into()),
        ports: vec![
            PublishedPort { name: "query".into(), port: 30001, protocol: Protocol::UDP },
            PublishedPort { name: "game".into(), port: 30000, protocol: Protocol::TCP },
        ],
    };
    assert_eq!(probe_port(&p, &endpoint), Some(30000));
    assert_eq!(probe_port(&plan_of(minecraft()), &endpoint), None, "an exec check");
}

/// A restart asked for is a label of the task's container: a new value is
/// an update of the task template (the engine makes a new task), the same
/// one is none, and the update keeps it.
#[test]
fn a_restart_token_updates_the_task_once() {
    let restarted = |token: Option<&str>| {
        let mut plan = plan_of(minecraft());
        plan.restart_token = token.map(String::from);
        service_spec(&plan, None, SUPERVISOR).unwrap()
    };
    let container_labels =
        |spec: &ServiceSpec| spec.task_template.clone().unwrap().container_spec.unwrap().labels.unwrap();
    let never = restarted(None);
    assert!(!container_labels(&never).contains_key(plan::ANNOTATION_RESTARTED_AT));
    let first = restarted(Some("2026-12-03T10:00:00Z"));
    assert_eq!(container_labels(&first)[plan::ANNOTATION_RESTARTED_AT], "2026-12-03T10:00:00Z");
    // Nothing else of the service changes.
    let mut without = first.clone();
    without.task_template.as_mut().unwrap().container_spec.as_mut().unwrap().labels =
        never.task_template.as_ref().unwrap().container_spec.as_ref().unwrap().labels.clone();
    assert_eq!(without, never);

    let running = as_the_engine_returns(&never);
    assert!(needs_update(&first, &running), "asked: the task is replaced");
    let update = for_update(first.clone(), &running);
    assert_eq!(container_labels(&update), container_labels(&first), "the update carries it");
    let restarted_once = as_the_engine_returns(&update);
    assert!(!needs_update(&first, &restarted_once), "the same token again: no new task");
    assert!(needs_update(&restarted(Some("2026-12-03T11:00:00Z")), &restarted_once), "a new one: again");
}

fn with_node_selector(selector: Value) -> Value {
    let mut v = minecraft();
    v["nodeSelector"] = selector;
    v
}

fn constraints_of(spec: &ServiceSpec) -> Option<Vec<String>> {
    spec.task_template.as_ref()?.placement.as_ref()?.constraints.clone()
}

#[test]
fn the_node_selector_becomes_placement_constraints_on_node_labels() {
    let spec = service_spec(&plan_of(with_node_selector(json!({ "pool": "games", "disk": "ssd" }))), None, SUPERVISOR)
        .unwrap();
    let want = vec!["node.labels.disk==ssd".to_string(), "node.labels.pool==games".to_string()];
    assert_eq!(constraints_of(&spec), Some(want));
    assert_eq!(spec.labels.unwrap()[LABEL_CONSTRAINTS], "node.labels.disk==ssd,node.labels.pool==games");
    let plain = service_spec(&plan_of(minecraft()), None, SUPERVISOR).unwrap();
    assert_eq!(plain.task_template.unwrap().placement, None);
    assert!(!plain.labels.unwrap().contains_key(LABEL_CONSTRAINTS));
}

#[test]
fn placement_swarm_cannot_express_is_refused_with_the_field_named() {
    let mut v = minecraft();
    v["tolerations"] = json!([{ "key": "dedicated", "value": "games", "effect": "NoSchedule" }]);
    let reason = refusal(service_spec(&plan_of(v), None, SUPERVISOR));
    assert!(reason.starts_with("spec.tolerations cannot be used on Docker Swarm, which has no taints"), "{reason}");
    let mut v = minecraft();
    v["command"] = json!(["/start"]);
    v["shutdown"] = json!({ "stop": "SIGWINCH" });
    let reason = refusal(service_spec(&plan_of(v), None, SUPERVISOR));
    assert!(reason.starts_with("spec.shutdown.stop: `SIGWINCH` is not a signal"), "{reason}");

    let reason =
        refusal(service_spec(&plan_of(with_node_selector(json!({ "example.com/pool": "games" }))), None, SUPERVISOR));
    assert!(reason.contains("spec.nodeSelector key \"example.com/pool\""), "{reason}");
    let reason = refusal(service_spec(&plan_of(with_node_selector(json!({ "pool": "" }))), None, SUPERVISOR));
    assert!(reason.contains("spec.nodeSelector pool: value \"\""), "{reason}");
    let reason = refusal(service_spec(&plan_of(with_node_selector(json!({ "pool": "a==b" }))), None, SUPERVISOR));
    assert!(reason.contains("spec.nodeSelector pool"), "{reason}");
}

#[test]
fn own_constraints_decide_an_update_and_an_operators_do_not() {
    let base =
        service_spec(&plan_of(with_node_selector(json!({ "pool": "games" }))), Some("uid-1"), SUPERVISOR).unwrap();
    let current = as_the_engine_returns(&base);
    assert!(!needs_update(&base, &current), "as sent");

    let other =
        service_spec(&plan_of(with_node_selector(json!({ "pool": "arena" }))), Some("uid-1"), SUPERVISOR).unwrap();
    assert!(needs_update(&other, &current), "a changed value");
    let more = with_node_selector(json!({ "pool": "games", "disk": "ssd" }));
    assert!(needs_update(&service_spec(&plan_of(more), Some("uid-1"), SUPERVISOR).unwrap(), &current), "one more");
    let none = service_spec(&plan_of(minecraft()), Some("uid-1"), SUPERVISOR).unwrap();
    assert!(needs_update(&none, &current), "the selector removed");

    let with_constraints = |constraints: &[&str]| {
        let mut operated = current.clone();
        let placement = operated.task_template.as_mut().unwrap().placement.as_mut().unwrap();
        placement.constraints = Some(constraints.iter().map(|c| c.to_string()).collect());
        operated
    };
    let added = with_constraints(&["node.labels.pool==games", "node.role==worker"]);
    assert!(!needs_update(&base, &added), "an operator's constraint is theirs");
    let removed = with_constraints(&["node.role==worker"]);
    assert!(needs_update(&base, &removed), "mettaton's constraint removed by hand is put back");
}

#[test]
fn an_update_replaces_its_own_constraints_and_keeps_an_operators() {
    let old = service_spec(&plan_of(with_node_selector(json!({ "pool": "games" }))), None, SUPERVISOR).unwrap();
    let mut current = as_the_engine_returns(&old);
    let placement = current.task_template.as_mut().unwrap().placement.as_mut().unwrap();
    placement.constraints.as_mut().unwrap().insert(0, "node.role==worker".into());
    placement.max_replicas = Some(1);

    let desired = service_spec(&plan_of(with_node_selector(json!({ "pool": "arena" }))), None, SUPERVISOR).unwrap();
    let update = for_update(desired.clone(), &current);
    let placement = update.task_template.as_ref().unwrap().placement.clone().unwrap();
    assert_eq!(placement.constraints.unwrap(), ["node.role==worker", "node.labels.pool==arena"]);
    assert_eq!(placement.max_replicas, Some(1), "the operator's other placement settings stay");
    assert!(!needs_update(&desired, &as_the_engine_returns(&update)), "what the update sends is what is wanted");

    let dropped = for_update(service_spec(&plan_of(minecraft()), None, SUPERVISOR).unwrap(), &current);
    let placement = dropped.task_template.unwrap().placement.unwrap();
    assert_eq!(placement.constraints.unwrap(), ["node.role==worker"]);

    // A service made before mettaton set constraints: nothing of it is mettaton's.
    let mut bare = as_the_engine_returns(&service_spec(&plan_of(minecraft()), None, SUPERVISOR).unwrap());
    bare.task_template.as_mut().unwrap().placement = None;
    let update = for_update(desired, &bare);
    let placement = update.task_template.unwrap().placement.unwrap();
    assert_eq!(placement.constraints.unwrap(), ["node.labels.pool==arena"]);
}

fn service(value: Value) -> Service {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_port_another_service_publishes_is_a_conflict() {
    let desired = service_spec(&plan_of(minecraft()), None, SUPERVISOR).unwrap();
    let host = |id: &str, port: i64, protocol: &str| {
        service(json!({ "ID": id, "Spec": { "Name": format!("svc-{id}"), "EndpointSpec": { "Ports": [
            { "Protocol": protocol, "TargetPort": 80, "PublishedPort": port, "PublishMode": "host" }
        ] } } }))
    };
    assert_eq!(
        port_conflict(&desired, &[host("a", 25565, "tcp")], None).map(|c| BackendError::from(c).to_string()).as_deref(),
        Some("port 25565/tcp is already published by service svc-a")
    );
    assert_eq!(port_conflict(&desired, &[host("a", 25565, "tcp")], Some("a")), None, "its own port");
    assert_eq!(port_conflict(&desired, &[host("a", 25565, "udp")], None), None, "another protocol");
    assert_eq!(port_conflict(&desired, &[host("a", 25566, "tcp")], None), None);
    // An ingress port the engine chose is in the service's endpoint only.
    let assigned = service(json!({ "ID": "b", "Spec": { "Name": "svc-b" }, "Endpoint": { "Ports": [
        { "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 25565, "PublishMode": "ingress" }
    ] } }));
    assert!(port_conflict(&desired, &[assigned], None).is_some());
}

#[test]
fn images_are_pulled_by_tag() {
    for (image, want) in [
        ("itzg/minecraft-server", ("itzg/minecraft-server", "latest")),
        ("itzg/minecraft-server:java21", ("itzg/minecraft-server", "java21")),
        ("127.0.0.1:5999/game:1", ("127.0.0.1:5999/game", "1")),
        ("127.0.0.1:5999/game", ("127.0.0.1:5999/game", "latest")),
        ("game@sha256:abc", ("game@sha256:abc", "")),
    ] {
        assert_eq!(pull_reference(image), (want.0.to_string(), want.1.to_string()), "{image}");
    }
}

#[test]
fn only_an_active_manager_will_do() {
    let info = |v: Value| serde_json::from_value::<SwarmInfo>(v).unwrap();
    let at = "unix:///var/run/docker.sock";
    assert_eq!(manager_problem(Some(&info(json!({ "LocalNodeState": "active", "ControlAvailable": true }))), at), None);
    let problem = manager_problem(Some(&info(json!({ "LocalNodeState": "inactive" }))), at).unwrap();
    assert_eq!(
        problem,
        "the Docker daemon at unix:///var/run/docker.sock is not a swarm manager: run `docker swarm init`"
    );
    assert_eq!(manager_problem(None, at), Some(problem));
    let worker = manager_problem(Some(&info(json!({ "LocalNodeState": "active", "ControlAvailable": false }))), at);
    assert!(worker.unwrap().contains("is a swarm worker"));
    let locked = manager_problem(Some(&info(json!({ "LocalNodeState": "locked" }))), at);
    assert!(locked.unwrap().contains("docker swarm unlock"));
}

fn task(id: &str, created: &str, desired: &str, state: &str, extra: Value) -> Task {
    let mut v = json!({
        "ID": id, "CreatedAt": created, "Slot": 1, "NodeID": "node-1", "DesiredState": desired,
        "Status": { "State": state, "Timestamp": created }
    });
    if let (Some(target), Value::Object(extra)) = (v.as_object_mut(), extra) {
        for (k, value) in extra {
            if k == "Status" {
                target["Status"].as_object_mut().unwrap().extend(value.as_object().unwrap().clone());
            } else {
                target.insert(k, value);
            }
        }
    }
    serde_json::from_value(v).unwrap()
}

fn running_task(id: &str, created: &str) -> Task {
    task(
        id,
        created,
        "running",
        "running",
        json!({ "Status": {
            "ContainerStatus": { "ContainerID": "c", "PID": 42, "ExitCode": 0 },
            "PortStatus": { "Ports": [
                { "Protocol": "udp", "TargetPort": 25565, "PublishedPort": 32768, "PublishMode": "host" },
                { "Protocol": "tcp", "TargetPort": 25565, "PublishedPort": 25565, "PublishMode": "host" }
            ] }
        } }),
    )
}

fn crashed_task(id: &str, created: &str) -> Task {
    task(
        id,
        created,
        "shutdown",
        "failed",
        json!({ "Status": { "Err": "task: non-zero exit (1)",
                            "ContainerStatus": { "ContainerID": "c", "PID": 0, "ExitCode": 1 } } }),
    )
}

#[test]
fn the_current_task_is_the_newest_meant_to_run() {
    let tasks = vec![
        crashed_task("t1", "2026-01-01T10:00:00.5Z"),
        running_task("t3", "2026-01-01T10:00:02.25Z"),
        crashed_task("t2", "2026-01-01T10:00:01.123456789Z"),
    ];
    assert_eq!(current_task(&tasks).unwrap().id.as_deref(), Some("t3"));
    let stopping = vec![
        task("t4", "2026-01-01T10:00:03Z", "shutdown", "running", json!({})),
        task("t1", "2026-01-01T10:00:00Z", "shutdown", "shutdown", json!({})),
    ];
    assert_eq!(current_task(&stopping).unwrap().id.as_deref(), Some("t4"), "still on its way out");
    let stopped = vec![task("t1", "2026-01-01T10:00:00Z", "shutdown", "shutdown", json!({}))];
    assert!(current_task(&stopped).is_none());
}

#[test]
fn failed_tasks_are_the_restarts_and_shutdowns_are_not() {
    let tasks = vec![
        crashed_task("t1", "2026-01-01T10:00:00Z"),
        task("t2", "2026-01-01T10:00:01Z", "shutdown", "complete", json!({})),
        task("t3", "2026-01-01T10:00:02Z", "shutdown", "rejected", json!({})),
        task("t4", "2026-01-01T10:00:03Z", "shutdown", "shutdown", json!({})),
        running_task("t5", "2026-01-01T10:00:04Z"),
    ];
    assert_eq!(failed_tasks(&tasks), BTreeSet::from(["t1".into(), "t2".into(), "t3".into()]));
}

#[test]
fn a_running_task_is_a_ready_instance() {
    let tasks = vec![crashed_task("t1", "2026-01-01T10:00:00Z"), running_task("t2", "2026-01-01T10:00:01Z")];
    assert_eq!(
        instance("mettaton-games-mc", &tasks[1], &tasks, 1),
        Instance {
            name: "mettaton-games-mc.1.t2".into(),
            running: true,
            ready: true,
            restarts: 1,
            problem: None,
            terminating: false,
        }
    );
}

#[test]
fn a_restarting_instance_reports_the_last_failure() {
    let tasks = vec![
        crashed_task("t1", "2026-01-01T10:00:00Z"),
        task("t2", "2026-01-01T10:00:01Z", "running", "preparing", json!({})),
    ];
    let i = instance("s", &tasks[1], &tasks, 1);
    assert!(!i.running && !i.ready);
    assert_eq!(i.problem, Some(Problem::new(ProblemKind::Exited, "task: non-zero exit (1)", None)));
    let pending = task(
        "t1",
        "2026-01-01T10:00:00Z",
        "running",
        "pending",
        json!({ "Status": { "Err": "no suitable node (host-mode port already in use on 1 node)" } }),
    );
    let i = instance("s", &pending, std::slice::from_ref(&pending), 0);
    let unplaced = "no suitable node (host-mode port already in use on 1 node)";
    assert_eq!(i.problem, Some(Problem::new(ProblemKind::Unschedulable, unplaced, None)));
    let rejected = task("t1", "2026-01-01T10:00:00Z", "running", "rejected", json!({}));
    let i = instance("s", &rejected, std::slice::from_ref(&rejected), 0);
    assert_eq!(i.problem, Some(Problem::new(ProblemKind::Other, "rejected", None)));
    let fresh = task("t1", "2026-01-01T10:00:00Z", "running", "starting", json!({}));
    let i = instance("s", &fresh, std::slice::from_ref(&fresh), 0);
    assert_eq!((i.running, i.problem), (false, None));
    // Waiting for its first passing healthcheck, the container runs.
    let checked = task(
        "t1",
        "2026-01-01T10:00:00Z",
        "running",
        "starting",
        json!({ "Status": { "ContainerStatus": { "ContainerID": "c", "PID": 0, "ExitCode": 0 } } }),
    );
    let i = instance("s", &checked, std::slice::from_ref(&checked), 0);
    assert_eq!((i.running, i.ready, i.problem), (true, false, None));
}

#[test]
fn a_task_swarm_shuts_down_is_terminating() {
    let t = task("t1", "2026-01-01T10:00:00Z", "shutdown", "running", json!({}));
    assert!(instance("s", &t, std::slice::from_ref(&t), 0).terminating);
}

#[test]
fn the_workload_is_rolled_out_when_the_current_task_is_up_to_date() {
    let svc = |update: Value| {
        service(json!({ "ID": "s", "Spec": { "Mode": { "Replicated": { "Replicas": 1 } } }, "UpdateStatus": update }))
    };
    let tasks = vec![running_task("t1", "2026-01-01T10:00:00Z")];
    let current = tasks.first();
    let latest = BTreeSet::from(["t1".to_string()]);
    assert_eq!(
        workload(&svc(Value::Null), &tasks, current, &latest),
        Workload { desired: 1, ready: 1, rolled_out: true, existing: 1 }
    );
    assert!(!workload(&svc(Value::Null), &tasks, current, &BTreeSet::new()).rolled_out, "old spec");
    let updating = svc(json!({ "State": "updating" }));
    assert!(!workload(&updating, &tasks, current, &latest).rolled_out);
    let done = svc(json!({ "State": "completed" }));
    assert!(workload(&done, &tasks, current, &latest).rolled_out);

    let scaled_down = service(json!({ "ID": "s", "Spec": { "Mode": { "Replicated": { "Replicas": 0 } } } }));
    let leaving = vec![task("t1", "2026-01-01T10:00:00Z", "shutdown", "running", json!({}))];
    assert_eq!(
        workload(&scaled_down, &leaving, leaving.first(), &BTreeSet::new()),
        Workload { desired: 0, ready: 0, rolled_out: true, existing: 1 }
    );
}

fn node(value: Value) -> Node {
    serde_json::from_value(value).unwrap()
}

#[test]
fn the_endpoint_is_the_tasks_node_and_its_published_ports() {
    let p = plan_of(minecraft());
    let t = running_task("t1", "2026-01-01T10:00:00Z");
    let n = node(json!({ "ID": "node-1", "Status": { "State": "ready", "Addr": "127.0.0.1" } }));
    assert_eq!(
        endpoint(&p, Some(&t), Some(&n)),
        Endpoint {
            address: Some("127.0.0.1".into()),
            ports: vec![
                PublishedPort { name: "game".into(), port: 25565, protocol: Protocol::TCP },
                PublishedPort { name: "query".into(), port: 32768, protocol: Protocol::UDP },
            ],
        }
    );
    // Before its ports are published, the fixed ones are known.
    let starting = task("t1", "2026-01-01T10:00:00Z", "running", "assigned", json!({}));
    let e = endpoint(&p, Some(&starting), Some(&n));
    assert_eq!(e.ports, vec![PublishedPort { name: "game".into(), port: 25565, protocol: Protocol::TCP }]);
    assert_eq!(endpoint(&p, None, Some(&n)), Endpoint::default());
}

#[test]
fn a_manager_listening_everywhere_is_reached_at_its_manager_address() {
    let n = node(json!({ "Status": { "Addr": "0.0.0.0" }, "ManagerStatus": { "Addr": "10.0.0.5:2377" } }));
    assert_eq!(node_address(&n).as_deref(), Some("10.0.0.5"));
    let v6 = node(json!({ "Status": { "Addr": "0.0.0.0" }, "ManagerStatus": { "Addr": "[fd00::5]:2377" } }));
    assert_eq!(node_address(&v6).as_deref(), Some("fd00::5"));
    assert_eq!(node_address(&node(json!({ "Status": { "Addr": "0.0.0.0" } }))), None);
}

#[test]
fn log_lines_of_successive_tasks_are_merged_in_time_order() {
    let text = "2026-01-01T10:00:02.5Z second task starts\n\
                2026-01-01T10:00:00.51Z first task starts\n\
                2026-01-01T10:00:01Z first task crashes\n\
                2026-01-01T10:00:03Z \n\
                no timestamp\n";
    assert_eq!(
        merge_log_lines(text, None),
        "no timestamp\nfirst task starts\nfirst task crashes\nsecond task starts\n\n"
    );
    assert_eq!(merge_log_lines(text, Some(2)), "second task starts\n\n");
    assert_eq!(merge_log_lines(text, Some(0)), "");
    assert_eq!(merge_log_lines("", Some(3)), "");
}

#[test]
fn engine_events_of_managed_containers_name_the_server() {
    let message = |action: &str, attributes: Value| -> EventMessage {
        serde_json::from_value(json!({
            "Type": "container", "Action": action, "timeNano": 1_700_000_000_000_000_000i64,
            "Actor": { "ID": "c1", "Attributes": attributes }
        }))
        .unwrap()
    };
    let ours = json!({
        LABEL_MANAGED: "true", plan::LABEL_GAMESERVER: "mc", LABEL_NAMESPACE: "games",
        LABEL_SWARM_TASK_ID: "t1", LABEL_SWARM_SERVICE_NAME: "mettaton-games-mc", "exitCode": "137"
    });
    let died = server_event(&message("die", ours.clone())).unwrap();
    assert_eq!(
        died,
        InstanceEvent {
            server: ServerKey { namespace: "games".into(), name: "mc".into() },
            kind: InstanceEventKind::Exited { exit_code: Some(137) },
            container_id: "c1".into(),
            task_id: Some("t1".into()),
            time_nanos: Some(1_700_000_000_000_000_000),
        }
    );
    assert_eq!(server_event(&message("start", ours.clone())).unwrap().kind, InstanceEventKind::Started);
    assert_eq!(server_event(&message("oom", ours.clone())).unwrap().kind, InstanceEventKind::OutOfMemory);
    let health = server_event(&message("health_status: unhealthy", ours.clone())).unwrap();
    assert_eq!(health.kind, InstanceEventKind::Unhealthy);
    assert_eq!(server_event(&message("exec_start: sh", ours)), None);
    assert_eq!(server_event(&message("die", json!({ "name": "someone-else" }))), None);
}

#[test]
fn only_the_servers_own_objects_are_ours() {
    let p = plan_of(minecraft());
    let labels = |gs: &str, ns: &str| {
        Some(HashMap::from([(LABEL_GAMESERVER.to_string(), gs.to_string()), (LABEL_NAMESPACE.into(), ns.into())]))
    };
    assert!(is_ours(labels("mc", "games").as_ref(), &p));
    assert!(!is_ours(labels("mc", "other").as_ref(), &p));
    assert!(!is_ours(labels("other", "games").as_ref(), &p));
    assert!(!is_ours(None, &p));
}

#[test]
fn the_volume_is_labelled_with_its_reclaim_policy() {
    let p = plan_of(minecraft());
    let request = volume_request(&p).unwrap();
    assert_eq!(request.name.as_deref(), Some("mettaton-games-mc-data"));
    let labels = request.labels.unwrap();
    assert!(is_ours(Some(&labels), &p));
    assert_eq!(labels[LABEL_RECLAIM], "Retain");
    assert_eq!(labels[LABEL_MANAGED], "true");
    let mut v = minecraft();
    v.as_object_mut().unwrap().remove("storage");
    assert_eq!(volume_request(&plan_of(v)), None);
}

#[test]
fn a_game_server_plans_through_the_same_builders() {
    let gs: GameServer = serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
        "metadata": { "name": "mc", "namespace": "games", "uid": "u" }, "spec": minecraft()
    }))
    .unwrap();
    let spec = service_spec(&plan::plan(&gs), gs.metadata.uid.as_deref(), SUPERVISOR).unwrap();
    assert_eq!(spec.labels.unwrap()[LABEL_UID], "u");
}

/// The Minecraft server started by mettaton's supervisor, awaiting its done
/// line and its TCP port, stopped by typing `stop`.
fn supervised() -> Value {
    let mut v = minecraft();
    v["command"] = json!(["/start"]);
    v["health"] = json!({ "readyLogLine": ["Done ("], "probe": { "tcpPort": "game" }, "periodSeconds": 5 });
    v["shutdown"] = json!({ "stop": "stop", "gracePeriodSeconds": 30, "stopCommand": ["rcon-cli", "save-all"] });
    v
}

fn container_of(spec: &ServiceSpec) -> &TaskSpecContainerSpec {
    spec.task_template.as_ref().unwrap().container_spec.as_ref().unwrap()
}

#[test]
fn a_supervised_server_runs_its_game_under_the_supervisor_from_the_supervisors_volume() {
    let p = plan_of(supervised());
    let spec = service_spec(&p, Some("uid-1"), SUPERVISOR).unwrap();
    insta::with_settings!({ sort_maps => true }, {
        insta::assert_yaml_snapshot!(spec);
    });
    let c = container_of(&spec);
    assert_eq!(
        c.command.as_deref(),
        Some(crate::supervisor::command_unserved(&p, p.container.supervisor.as_ref().unwrap()).as_slice())
    );
    assert_eq!(c.args, None, "the spec's args are the supervisor's, after `--`");
    let mounts = c.mounts.clone().unwrap();
    let volume = shared::supervisor_volume(SUPERVISOR);
    let bin = mounts.iter().find(|m| m.target.as_deref() == Some("/.mettaton/bin")).expect("the supervisor's volume");
    assert_eq!(
        (bin.source.as_deref(), bin.typ, bin.read_only),
        (Some(volume.as_str()), Some(MountType::VOLUME), Some(true))
    );
    let run = mounts.iter().find(|m| m.target.as_deref() == Some(crate::supervisor::STATE_DIR)).expect("its state");
    assert_eq!(run.typ, Some(MountType::TMPFS));
    assert!(mounts.iter().any(|m| m.target.as_deref() == Some("/data")), "the world's volume too");
    let test = c.health_check.as_ref().unwrap().test.clone().unwrap();
    assert_eq!(test[..3], ["CMD", crate::supervisor::BINARY, "probe"]);
    assert!(test.ends_with(&["--tcp".to_string(), "25565".to_string()]), "{test:?}");
    assert_eq!((c.open_stdin, c.stop_signal.as_deref()), (Some(true), Some("SIGTERM")));
    assert_eq!(c.stop_grace_period, Some(30_000_000_000));

    // Another supervisor image is another volume: the task is replaced.
    let other = service_spec(&p, Some("uid-1"), "registry.test/mettaton-supervisor:2").unwrap();
    assert!(needs_update(&other, &as_the_engine_returns(&spec)) && replaces_task(&other, &spec));
    assert!(!needs_update(&spec, &as_the_engine_returns(&spec)), "as the engine holds it");

    // Unsupervised: the game is the first process, its stdin open all the same.
    let plain = service_spec(&plan_of(minecraft()), None, SUPERVISOR).unwrap();
    let c = container_of(&plain);
    assert_eq!((c.command.as_ref(), c.args.as_deref()), (None, Some(["--nogui".to_string()].as_slice())));
    assert_eq!((c.open_stdin, c.stop_signal.as_ref()), (Some(true), None));
    assert!(!c.mounts.iter().flatten().any(|m| m.target.as_deref().is_some_and(|t| t.starts_with("/.mettaton"))));
    let mut closed = as_the_engine_returns(&plain);
    closed.task_template.as_mut().unwrap().container_spec.as_mut().unwrap().open_stdin = None;
    assert!(needs_update(&plain, &closed), "a service made without a console gets one");
}

#[test]
fn the_supervisors_installer_is_a_global_service_that_runs_once_per_node() {
    let spec = installer_spec(SUPERVISOR);
    assert_eq!(spec.name.as_deref(), Some(shared::supervisor_volume(SUPERVISOR).as_str()));
    assert!(spec.name.as_deref().unwrap().starts_with("mettaton-supervisor-"));
    assert_ne!(installer_name(SUPERVISOR), installer_name("registry.test/mettaton-supervisor:2"));
    assert!(spec.mode.as_ref().unwrap().global.is_some());
    let task = spec.task_template.as_ref().unwrap();
    assert_eq!(task.restart_policy.as_ref().unwrap().condition, Some(TaskSpecRestartPolicyConditionEnum::NONE));
    let c = task.container_spec.as_ref().unwrap();
    assert_eq!(c.image.as_deref(), Some(SUPERVISOR));
    assert_eq!(c.command.clone().unwrap(), ["/mettaton-supervisor", "install", "/.mettaton/bin"]);
    let mount = &c.mounts.as_ref().unwrap()[0];
    assert_eq!((mount.target.as_deref(), mount.read_only), (Some("/.mettaton/bin"), None), "writable here");
    assert!(is_installer(Some(&spec), SUPERVISOR));
    assert!(!is_installer(Some(&spec), "registry.test/mettaton-supervisor:2"));
    assert!(!is_installer(Some(&service_spec(&plan_of(minecraft()), None, SUPERVISOR).unwrap()), SUPERVISOR));
    // No server's: list_managed and the events skip it.
    let labels = spec.labels.unwrap();
    assert_eq!(labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));
    assert!(!labels.contains_key(LABEL_GAMESERVER));
}

#[test]
fn the_installer_is_done_once_its_task_completed_on_every_ready_active_node() {
    let n = |id: &str, state: &str, availability: &str| {
        node(json!({ "ID": id, "Description": { "Hostname": format!("host-{id}") },
                     "Spec": { "Availability": availability }, "Status": { "State": state } }))
    };
    let on = |id: &str, node: &str, created: &str, state: &str, err: Option<&str>| {
        let mut extra = json!({ "NodeID": node });
        if let Some(err) = err {
            extra["Status"] = json!({ "Err": err });
        }
        task(id, created, "shutdown", state, extra)
    };
    let nodes =
        [n("a", "ready", "active"), n("b", "ready", "active"), n("c", "down", "active"), n("d", "ready", "drain")];
    assert_eq!(installation(&[], &nodes), Installation::Waiting(vec!["host-a".into(), "host-b".into()]));
    let a_done = on("t1", "a", "2026-01-01T10:00:00Z", "complete", None);
    let b_running = on("t2", "b", "2026-01-01T10:00:00Z", "running", None);
    assert_eq!(installation(&[a_done.clone(), b_running], &nodes), Installation::Waiting(vec!["host-b".into()]));
    let b_done = on("t3", "b", "2026-01-01T10:00:01Z", "complete", None);
    assert_eq!(
        installation(&[a_done.clone(), b_done], &nodes),
        Installation::Done,
        "nodes down or drained are not waited for"
    );
    let b_failed =
        on("t4", "b", "2026-01-01T10:00:01Z", "rejected", Some("No such image: registry.test/mettaton-supervisor:1"));
    assert_eq!(
        installation(&[a_done.clone(), b_failed.clone()], &nodes),
        Installation::Failed("on node host-b: No such image: registry.test/mettaton-supervisor:1".into())
    );
    // A task still on its way beside the failed one is waited for.
    let b_again = on("t5", "b", "2026-01-01T10:00:02Z", "preparing", None);
    assert_eq!(installation(&[a_done, b_failed, b_again], &nodes), Installation::Waiting(vec!["host-b".into()]));
}

fn with_install(mut p: ServerPlan) -> ServerPlan {
    p.install = Some(plan::InstallPlan {
        image: "registry.test/installer:1".into(),
        entrypoint: "ash".into(),
        script: "echo ok > /mnt/server/ok".into(),
        token: "initial".into(),
    });
    p
}

#[test]
fn the_working_dir_is_the_containers_dir_and_its_change_an_update() {
    let mut p = plan_of(minecraft());
    let none = service_spec(&p, None, SUPERVISOR).unwrap();
    assert_eq!(none.task_template.as_ref().unwrap().container_spec.as_ref().unwrap().dir, None);
    p.container.working_dir = Some("/home/container".into());
    let set = service_spec(&p, None, SUPERVISOR).unwrap();
    assert_eq!(
        set.task_template.as_ref().unwrap().container_spec.as_ref().unwrap().dir.as_deref(),
        Some("/home/container")
    );
    assert!(needs_update(&set, &as_the_engine_returns(&none)));
    assert!(replaces_task(&set, &as_the_engine_returns(&none)));
    assert!(!needs_update(&set, &as_the_engine_returns(&set)));
}

#[test]
fn the_install_job_runs_once_with_the_games_constraints_env_and_volume() {
    let mut v = minecraft();
    v["nodeSelector"] = json!({ "disk": "ssd" });
    let p = with_install(plan_of(v));
    let run = install_run(&p, Some("uid-1"), SUPERVISOR).unwrap().unwrap();
    let job = install_job_spec(&p, &run, constraints(&p).unwrap());
    assert_eq!(job.name.as_deref(), Some("mettaton-games-mc-install"));
    let mode = job.mode.as_ref().unwrap();
    assert!(mode.replicated.is_none() && mode.global.is_none());
    let one = mode.replicated_job.as_ref().unwrap();
    assert_eq!((one.max_concurrent, one.total_completions), (Some(1), Some(1)));
    let task = job.task_template.as_ref().unwrap();
    assert_eq!(task.restart_policy.as_ref().unwrap().condition, Some(TaskSpecRestartPolicyConditionEnum::NONE));
    assert_eq!(
        task.placement.as_ref().unwrap().constraints.as_deref(),
        Some(&["node.labels.disk==ssd".to_string()][..])
    );
    let container = task.container_spec.as_ref().unwrap();
    assert_eq!(container.image.as_deref(), Some("registry.test/installer:1"));
    assert_eq!(container.command.as_ref().unwrap()[..2], [crate::supervisor::BINARY, "install-run"]);
    assert_eq!(container.env.as_deref(), Some(&["EULA=TRUE".to_string(), "EMPTY=".to_string()][..]));
    let mounts: Vec<_> = container.mounts.iter().flatten().map(|m| (m.target.as_deref(), m.source.clone())).collect();
    assert_eq!(mounts[0], (Some(plan::INSTALL_PATH), Some(volume_name(&p))));
    assert_eq!(mounts[1], (Some(shared::SUPERVISOR_BIN), Some(shared::supervisor_volume(SUPERVISOR))));
    let labels = job.labels.as_ref().unwrap();
    assert!(!labels.contains_key(LABEL_MANAGED) && !labels.contains_key(LABEL_GAMESERVER), "not a server: {labels:?}");
    assert_eq!(job_hash(Some(&job)), Some(run.hash.as_str()));
    // A server without storage has nowhere to keep what it installs.
    let mut bare = minecraft();
    bare.as_object_mut().unwrap().remove("storage");
    bare.as_object_mut().unwrap().remove("config");
    assert!(refusal(install_run(&with_install(plan_of(bare)), None, SUPERVISOR)).contains("needs spec.storage"));
    assert_eq!(install_run(&plan_of(minecraft()), None, SUPERVISOR).unwrap(), None);
}

#[test]
fn the_game_records_its_install_so_another_install_replaces_its_task() {
    let p = with_install(plan_of(minecraft()));
    let base = service_spec(&p, None, SUPERVISOR).unwrap();
    assert_eq!(installed_hash(&base), None);
    let installed = super::with_install(base.clone(), "h1");
    assert_eq!(installed_hash(&installed), Some("h1"));
    let current = as_the_engine_returns(&installed);
    assert!(!needs_update(&installed, &current));
    let again = super::with_install(base, "h2");
    assert!(replaces_task(&again, &current), "another install is a new task, run after the install");
    assert_eq!(replicas(Some(&scaled_to_zero(current.clone()))), Some(0));
    assert_eq!(replicas(Some(&current)), Some(1));
}

#[test]
fn a_jobs_progress_is_its_newest_tasks() {
    let name = "mettaton-games-mc-install";
    assert_eq!(job_progress(name, &[]), JobProgress::Running(None));
    let t = "2026-12-04T04:00:00Z";
    let later = "2026-12-04T04:00:05Z";
    assert_eq!(
        job_progress(name, &[task("t1", t, "complete", "running", json!({}))]),
        JobProgress::Running(Some(format!("{name}.1")))
    );
    assert_eq!(job_progress(name, &[task("t1", t, "complete", "complete", json!({}))]), JobProgress::Done);
    let failed = task("t1", t, "complete", "failed", json!({ "Status": { "Err": "task: non-zero exit (3)" } }));
    assert_eq!(
        job_progress(name, std::slice::from_ref(&failed)),
        JobProgress::Failed("task: non-zero exit (3)".into())
    );
    assert_eq!(job_progress(name, &[failed, task("t2", later, "complete", "complete", json!({}))]), JobProgress::Done);
    let rejected = task("t1", t, "complete", "rejected", json!({}));
    assert_eq!(job_progress(name, &[rejected]), JobProgress::Failed("task rejected".into()));
}

#[test]
fn an_install_is_the_server_while_it_runs_and_its_failure_the_instances_problem() {
    let starting = shared::install_observed("job", None, Some("id1".into()));
    let instance = starting.instance.as_ref().unwrap();
    assert!(!instance.running && !instance.ready && instance.problem.is_none());
    assert_eq!(starting.workload.as_ref().map(|w| (w.desired, w.ready)), Some((1, 0)));
    let failed = shared::install_observed(
        "job",
        Some(shared::install_failed("install exited with 2:\nno\n", "x")),
        Some("id1".into()),
    );
    let problem = failed.instance.unwrap().problem.unwrap();
    assert_eq!(
        (problem.kind, problem.message.as_deref()),
        (ProblemKind::InstallFailed, Some("install exited with 2:\nno"))
    );
}

#[test]
fn placeholders_in_the_environment_reach_the_game_literally_through_swarms_templates() {
    assert_eq!(swarm_literal("STARTUP=java -jar {{SERVER_JARFILE}}"), "STARTUP=java -jar {{\"{{\"}}SERVER_JARFILE}}");
    assert_eq!(swarm_literal("A=no braces }}"), "A=no braces }}");
    let mut v = minecraft();
    v["env"] = json!([{ "name": "STARTUP", "value": "run {{X}}" }]);
    let p = with_install(plan_of(v));
    let spec = service_spec(&p, None, SUPERVISOR).unwrap();
    let env = spec.task_template.unwrap().container_spec.unwrap().env.unwrap();
    assert_eq!(env, ["STARTUP=run {{\"{{\"}}X}}"]);
    let run = install_run(&p, None, SUPERVISOR).unwrap().unwrap();
    assert_eq!(run.env, env, "the install's environment too");
}
