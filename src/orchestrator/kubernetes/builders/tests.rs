use super::*;
use crate::api::Protocol;
use crate::fixtures::{game_server, minecraft};
use serde_json::json;

fn stopped() -> GameServer {
    let mut gs = minecraft();
    gs.spec.state = crate::api::DesiredState::Stopped;
    gs
}

fn udp_only() -> GameServer {
    game_server(
        "valheim",
        json!({
            "image": "lloesche/valheim-server",
            "ports": [
                { "name": "game", "containerPort": 2456, "protocol": "UDP" },
                { "name": "query", "containerPort": 2457, "protocol": "UDP" }
            ]
        }),
    )
}

fn load_balanced() -> GameServer {
    game_server(
        "arena",
        json!({
            "image": "example.org/arena:1.4",
            "ports": [{ "name": "game", "containerPort": 7777, "externalPort": 7777 },
                      { "name": "voice", "containerPort": 9987, "protocol": "UDP", "externalPort": 9000 }],
            "service": {
                "type": "LoadBalancer",
                "annotations": { "service.beta.kubernetes.io/aws-load-balancer-type": "nlb" }
            }
        }),
    )
}

fn exec_probe() -> GameServer {
    game_server(
        "factory",
        json!({
            "image": "factoriotools/factorio:stable",
            "command": ["/docker-entrypoint.sh"],
            "args": ["--server-settings", "/factorio/config/server-settings.json"],
            "ports": [{ "name": "game", "containerPort": 34197, "protocol": "UDP" }],
            "health": { "probe": { "exec": ["sh", "-c", "pgrep factorio"] }, "periodSeconds": 15,
                        "failureThreshold": 2, "startupTimeoutSeconds": 100 },
            "service": { "type": "ClusterIP" }
        }),
    )
}

/// A server pinned to tainted game nodes.
fn placed() -> GameServer {
    game_server(
        "pinned",
        json!({
            "image": "mettaton.test/game:1",
            "ports": [{ "name": "game", "containerPort": 7777 }],
            "nodeSelector": { "mettaton.dev/real-node": "true", "pool": "games" },
            "tolerations": [
                { "key": "mettaton.dev/real-node", "value": "true", "effect": "NoSchedule" },
                { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                  "tolerationSeconds": 30 },
                { "operator": "Exists" }
            ]
        }),
    )
}

fn build<T>(gs: &GameServer, f: fn(&ServerPlan, &Owner) -> T) -> T {
    f(&plan::plan(gs), &Owner::of(gs))
}

/// The Deployment with the supervisor's image of a test controller.
fn game_deployment(plan: &ServerPlan, owner: &Owner) -> Deployment {
    deployment(plan, owner, "registry.test/mettaton-supervisor:1")
}

#[test]
fn a_supervised_server_runs_the_game_under_the_supervisor_copied_in_by_an_init_container() {
    let mut spec = crate::fixtures::minecraft_spec_json();
    spec["command"] = json!(["/start"]);
    spec["health"] = json!({ "readyLogLine": [")! For help, type "], "probe": { "tcpPort": "game" } });
    spec["shutdown"] = json!({ "stop": "stop", "gracePeriodSeconds": 90 });
    insta::assert_yaml_snapshot!(build(&game_server("mc", spec), game_deployment).spec.unwrap().template.spec);
}

/// A plan as a template resolves it: an install script, a working
/// directory, and (here) no supervisor otherwise. Built by hand: what the
/// builders do with these fields, not how a template fills them.
fn installed(token: &str) -> ServerPlan {
    let mut plan = plan::plan(&minecraft());
    assert!(plan.container.supervisor.is_none() && plan.volume.is_some());
    plan.container.working_dir = Some("/home/container".into());
    plan.install = Some(plan::InstallPlan {
        image: "ghcr.io/pelican-eggs/installers:debian".into(),
        entrypoint: "bash".into(),
        script: "cd /mnt/server\ncurl -o server.jar https://example.org/paper.jar\n".into(),
        token: token.into(),
    });
    plan
}

fn pod_of(plan: &ServerPlan) -> PodSpec {
    let owner = Owner::of(&minecraft());
    game_deployment(plan, &owner).spec.unwrap().template.spec.unwrap()
}

#[test]
fn a_template_install_runs_in_an_init_container_after_the_supervisor_copy() {
    insta::assert_yaml_snapshot!(pod_of(&installed("initial")));
}

/// The install container: the script's image, the supervisor's
/// `install-run` as command (the token in it), the game's environment, the
/// volume where eggs expect it and the supervisor's binary, and its last
/// lines as its termination message. The game starts in the working dir.
#[test]
fn the_install_container_runs_the_script_under_the_supervisor_on_the_data_volume() {
    let plan = installed("initial");
    let pod = pod_of(&plan);
    let inits = pod.init_containers.as_ref().unwrap();
    let names: Vec<&str> = inits.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [SUPERVISOR, INSTALL_CONTAINER], "the supervisor is copied first, though the game has none");
    let install = &inits[1];
    let game = &pod.containers[0];
    assert_eq!(install.image.as_deref(), Some("ghcr.io/pelican-eggs/installers:debian"));
    let command = install.command.as_ref().unwrap();
    assert_eq!(
        command,
        &supervisor::install_run_command(plan.install.as_ref().unwrap(), Some(supervisor::TERMINATION_LOG))
    );
    assert!(command.windows(2).any(|w| w == ["--token", "initial"]), "{command:?}");
    assert_eq!(install.env, game.env);
    assert!(install.env.is_some());
    assert_eq!(install.resources, game.resources);
    assert_eq!(install.security_context, game.security_context);
    let mounts: Vec<(&str, &str)> =
        install.volume_mounts.iter().flatten().map(|m| (m.name.as_str(), m.mount_path.as_str())).collect();
    assert_eq!(mounts, [(DATA_VOLUME, plan::INSTALL_PATH), (SUPERVISOR, supervisor::MOUNT)]);
    assert_eq!(install.termination_message_policy.as_deref(), Some("FallbackToLogsOnError"));
    assert_eq!(game.working_dir.as_deref(), Some("/home/container"));
    // The game itself is not supervised: its container has no supervisor mount.
    assert!(game.volume_mounts.iter().flatten().all(|m| m.name != SUPERVISOR));
    assert!(pod.volumes.iter().flatten().any(|v| v.name == SUPERVISOR && v.empty_dir.is_some()));
}

/// A reinstall asked is a new token, in the install container's command:
/// a new pod template, so the Deployment rolls out a pod that runs it.
#[test]
fn a_new_install_token_is_a_new_pod_template() {
    let owner = Owner::of(&minecraft());
    let template = |token: &str| game_deployment(&installed(token), &owner).spec.unwrap().template;
    assert_ne!(template("initial"), template("2026-12-04T05:00:00Z"));
    assert_eq!(template("initial"), template("initial"));
}

/// Without a volume an install has nowhere to put the files (a resolved
/// template always has one): no install container, nor the supervisor for it.
#[test]
fn without_an_install_or_a_volume_there_is_no_install_container() {
    let mut plan = installed("initial");
    plan.volume = None;
    let pod = pod_of(&plan);
    assert_eq!(pod.init_containers, None);
    assert!(pod.volumes.iter().flatten().all(|v| v.name != SUPERVISOR));
    let plain = pod_of(&plan::plan(&minecraft()));
    assert_eq!((plain.init_containers, plain.containers[0].working_dir.clone()), (None, None));
}

#[test]
fn minecraft_deployment() {
    insta::assert_yaml_snapshot!(build(&minecraft(), game_deployment));
}

#[test]
fn minecraft_service() {
    insta::assert_yaml_snapshot!(build(&minecraft(), service));
}

#[test]
fn minecraft_persistent_volume_claim() {
    insta::assert_yaml_snapshot!(build(&minecraft(), persistent_volume_claim));
}

#[test]
fn minecraft_config_map() {
    insta::assert_yaml_snapshot!(build(&minecraft(), config_map));
}

#[test]
fn stopped_deployment() {
    insta::assert_yaml_snapshot!(build(&stopped(), game_deployment));
}

#[test]
fn udp_only_deployment() {
    insta::assert_yaml_snapshot!(build(&udp_only(), game_deployment));
}

#[test]
fn udp_only_service() {
    insta::assert_yaml_snapshot!(build(&udp_only(), service));
}

#[test]
fn load_balancer_service() {
    insta::assert_yaml_snapshot!(build(&load_balanced(), service));
}

#[test]
fn exec_probe_deployment() {
    insta::assert_yaml_snapshot!(build(&exec_probe(), game_deployment));
}

#[test]
fn cluster_ip_service() {
    insta::assert_yaml_snapshot!(build(&exec_probe(), service));
}

#[test]
fn placed_deployment() {
    insta::assert_yaml_snapshot!(build(&placed(), game_deployment));
}

#[test]
fn placement_maps_to_the_pod_spec_and_is_absent_without_it() {
    let pod = |gs: &GameServer| build(gs, game_deployment).spec.unwrap().template.spec.unwrap();
    let placed = pod(&placed());
    assert_eq!(
        placed.node_selector,
        Some(BTreeMap::from([("mettaton.dev/real-node".into(), "true".into()), ("pool".into(), "games".into())]))
    );
    let tolerations = placed.tolerations.unwrap();
    assert_eq!(
        tolerations[0],
        Toleration {
            key: Some("mettaton.dev/real-node".into()),
            operator: Some("Equal".into()),
            value: Some("true".into()),
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        }
    );
    assert_eq!(tolerations[1].toleration_seconds, Some(30));
    assert_eq!((tolerations[2].key.as_ref(), tolerations[2].operator.as_deref()), (None, Some("Exists")));
    assert_eq!(tolerations[2].effect, None, "every effect");
    let plain = pod(&minecraft());
    assert_eq!((plain.node_selector, plain.tolerations), (None, None));
}

/// A restart asked for on the GameServer is an annotation of the pod
/// template beside the config hash: a new value is a new template (the
/// Deployment rolls out a new pod) on the same claim; nothing else moves.
#[test]
fn a_restart_is_a_pod_template_annotation_and_only_that() {
    let restarted = |gs: &GameServer, token: Option<&str>| {
        let mut gs = gs.clone();
        if let Some(token) = token {
            gs.metadata.annotations = Some(BTreeMap::from([(plan::ANNOTATION_RESTARTED_AT.into(), token.into())]));
        }
        build(&gs, game_deployment)
    };
    let annotations = |d: &Deployment| d.spec.clone().unwrap().template.metadata.unwrap().annotations;
    let hash = plan::plan(&minecraft()).config.unwrap().hash;
    let asked = restarted(&minecraft(), Some("2026-12-03T10:00:00Z"));
    assert_eq!(
        annotations(&asked),
        Some(BTreeMap::from([
            (plan::ANNOTATION_CONFIG_HASH.into(), hash.clone()),
            (plan::ANNOTATION_RESTARTED_AT.into(), "2026-12-03T10:00:00Z".into()),
        ]))
    );
    let never = restarted(&minecraft(), None);
    assert_eq!(annotations(&never), Some(BTreeMap::from([(plan::ANNOTATION_CONFIG_HASH.into(), hash)])));
    let mut same_but_annotations = asked.clone();
    same_but_annotations.spec.as_mut().unwrap().template.metadata.as_mut().unwrap().annotations = annotations(&never);
    assert_eq!(same_but_annotations, never, "the pod, its claim and the rest are the same");
    // Without config files the restart is the only annotation; without either, none.
    assert_eq!(
        annotations(&restarted(&udp_only(), Some("t1"))),
        Some(BTreeMap::from([(plan::ANNOTATION_RESTARTED_AT.into(), "t1".into())]))
    );
    assert_eq!(annotations(&restarted(&udp_only(), None)), None);
}

#[test]
fn without_storage_or_inline_files_there_is_no_claim_and_no_config_map() {
    let gs = udp_only();
    assert_eq!(build(&gs, persistent_volume_claim), None);
    assert_eq!(build(&gs, config_map), None);
    let mut only_refs = minecraft();
    only_refs.spec.config.retain(|f| f.config_map_key_ref.is_some());
    assert_eq!(build(&only_refs, config_map), None);
    let d = build(&only_refs, game_deployment);
    let volumes = d.spec.unwrap().template.spec.unwrap().volumes.unwrap();
    let sources = volumes[1].projected.as_ref().unwrap().sources.as_ref().unwrap();
    assert_eq!(sources.len(), 1, "only the user's ConfigMap is projected");
}

#[test]
fn every_child_has_one_controller_reference_to_the_game_server() {
    let gs = minecraft();
    let p = plan::plan(&gs);
    let metas = [
        game_deployment(&p, &Owner::of(&gs)).metadata,
        service(&p, &Owner::of(&gs)).metadata,
        persistent_volume_claim(&p, &Owner::of(&gs)).unwrap().metadata,
        config_map(&p, &Owner::of(&gs)).unwrap().metadata,
    ];
    for meta in metas {
        let refs = meta.owner_references.unwrap();
        assert_eq!(refs.len(), 1);
        let r = &refs[0];
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str(), r.name.as_str()),
            ("mettaton.dev/v1alpha1", "GameServer", "survival")
        );
        assert_eq!(r.uid, "0b7c3e0e-5d7e-4d4f-9d3c-2f1f5e4b6a01");
        assert_eq!((r.controller, r.block_owner_deletion), (Some(true), Some(true)));
        assert_eq!(meta.labels.as_ref(), Some(&p.labels));
        assert_eq!(meta.namespace.as_deref(), Some("games"));
    }
}

#[test]
fn startup_probe_covers_the_startup_timeout() {
    for (timeout, period) in [(600, 10), (5, 10), (601, 10), (86400, 1), (100, 15)] {
        let threshold = startup_failure_threshold(timeout, period);
        assert!(threshold * period >= timeout, "{timeout}s with {period}s periods: {threshold}");
        assert!((threshold - 1) * period < timeout, "not more than needed: {timeout}/{period} -> {threshold}");
    }
    // Outside the schema's bounds: no overflow, still covering the timeout.
    assert_eq!(startup_failure_threshold(357_462_728, 1_790_020_920), 1);
    assert_eq!(startup_failure_threshold(i32::MAX, 1), i32::MAX);
    assert_eq!(startup_failure_threshold(i32::MAX, i32::MAX), 1);
    assert_eq!(startup_failure_threshold(-5, -5), 1);
}

fn node(addresses: &[(&str, &str)]) -> Node {
    serde_json::from_value(json!({
        "metadata": { "name": "n" },
        "status": { "addresses": addresses.iter().map(|(t, a)| json!({ "type": t, "address": a })).collect::<Vec<_>>() }
    }))
    .unwrap()
}

/// The Service as the API server returns it: ports allocated.
fn served(mut svc: Service, node_ports: &[i32], ingress: Option<serde_json::Value>) -> Service {
    for (p, n) in svc.spec.as_mut().unwrap().ports.as_mut().unwrap().iter_mut().zip(node_ports) {
        p.node_port = Some(*n);
    }
    if let Some(ingress) = ingress {
        svc.status = Some(serde_json::from_value(json!({ "loadBalancer": { "ingress": [ingress] } })).unwrap());
    }
    svc
}

fn port(name: &str, port: i32, protocol: Protocol) -> PublishedPort {
    PublishedPort { name: name.into(), port, protocol }
}

#[test]
fn node_port_endpoint_is_the_nodes_best_address_and_the_node_ports() {
    let gs = minecraft();
    let p = plan::plan(&gs);
    let svc = served(service(&p, &Owner::of(&gs)), &[30565, 31000], None);
    let both = node(&[("Hostname", "node-a"), ("InternalIP", "10.0.0.5"), ("ExternalIP", "203.0.113.7")]);
    let e = endpoint(&p, Some(&svc), Some(&both));
    assert_eq!(e.address.as_deref(), Some("203.0.113.7"));
    assert_eq!(e.ports, vec![port("game", 30565, Protocol::TCP), port("query", 31000, Protocol::UDP)]);

    let internal = node(&[("Hostname", "node-a"), ("InternalIP", "10.0.0.5")]);
    assert_eq!(endpoint(&p, Some(&svc), Some(&internal)).address.as_deref(), Some("10.0.0.5"));
    let named = node(&[("Hostname", "node-a")]);
    assert_eq!(endpoint(&p, Some(&svc), Some(&named)).address.as_deref(), Some("node-a"));

    // Not scheduled yet: ports known, address not.
    let unscheduled = endpoint(&p, Some(&svc), None);
    assert_eq!((unscheduled.address, unscheduled.ports.len()), (None, 2));
    assert_eq!(endpoint(&p, None, Some(&both)), Endpoint::default());
}

#[test]
fn load_balancer_endpoint_is_the_ingress_and_the_service_ports() {
    let gs = load_balanced();
    let p = plan::plan(&gs);
    let pending = served(service(&p, &Owner::of(&gs)), &[31001, 31002], None);
    assert_eq!(endpoint(&p, Some(&pending), None).address, None);

    let by_ip = served(service(&p, &Owner::of(&gs)), &[31001, 31002], Some(json!({ "ip": "198.51.100.4" })));
    let e = endpoint(&p, Some(&by_ip), None);
    assert_eq!(e.address.as_deref(), Some("198.51.100.4"));
    assert_eq!(e.ports, vec![port("game", 7777, Protocol::TCP), port("voice", 9000, Protocol::UDP)]);

    let by_name = served(service(&p, &Owner::of(&gs)), &[], Some(json!({ "hostname": "lb.example.org" })));
    assert_eq!(endpoint(&p, Some(&by_name), None).address.as_deref(), Some("lb.example.org"));
}

#[test]
fn cluster_ip_endpoint_is_the_service_dns_name() {
    let gs = exec_probe();
    let p = plan::plan(&gs);
    let e = endpoint(&p, Some(&service(&p, &Owner::of(&gs))), None);
    assert_eq!(e.address.as_deref(), Some("factory.games.svc"));
    assert_eq!(e.ports, vec![port("game", 34197, Protocol::UDP)]);
}

fn pod(name: &str, created: &str, status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "creationTimestamp": created },
        "status": status
    }))
    .unwrap()
}

/// The server's pod `mc-1` with the game container in that state.
fn game_pod(ready: bool, container: serde_json::Value) -> Pod {
    pod("mc-1", "2025-01-01T00:00:00Z", game_status(ready, container))
}

/// The server's pod whose game container runs again after one
/// termination (`terminated`).
fn restarted_pod(ready: bool, terminated: serde_json::Value) -> Pod {
    game_pod(ready, json!({ "restartCount": 1, "state": { "running": {} }, "lastState": { "terminated": terminated } }))
}

fn game_status(ready: bool, container: serde_json::Value) -> serde_json::Value {
    let mut c = json!({ "name": "game", "image": "i", "imageID": "", "ready": ready, "restartCount": 0 });
    c.as_object_mut().unwrap().extend(container.as_object().unwrap().clone());
    json!({
        "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
        "containerStatuses": [
            { "name": "sidecar", "image": "s", "imageID": "", "ready": false, "restartCount": 9 },
            c
        ]
    })
}

#[test]
fn a_ready_pod_is_a_running_ready_instance() {
    let p = game_pod(true, json!({ "state": { "running": {} } }));
    assert_eq!(
        instance(&p),
        Instance { name: "mc-1".into(), running: true, ready: true, restarts: 0, problem: None, terminating: false }
    );
}

#[test]
fn a_deployment_whose_pods_are_refused_reports_an_instance_with_the_refusal() {
    let deployment = |replicas: i32, conditions: serde_json::Value| -> Deployment {
        serde_json::from_value(json!({
            "metadata": { "name": "mc" },
            "spec": { "replicas": replicas, "selector": {}, "template": {} },
            "status": { "conditions": conditions }
        }))
        .unwrap()
    };
    let failure = json!([{ "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
        "message": "pods \"mc-1\" is forbidden: exceeded quota" }]);
    let i = refused_instance(&deployment(1, failure.clone())).expect("an instance with the refusal");
    assert_eq!(
        i.problem,
        Some(Problem::new(
            ProblemKind::Refused,
            "FailedCreate",
            Some("pods \"mc-1\" is forbidden: exceeded quota".into())
        ))
    );
    assert!(!i.running && !i.ready && !i.terminating);
    // A failure to delete a pod is reported, but is no refusal.
    let deleting = json!([{ "type": "ReplicaFailure", "status": "True", "reason": "FailedDelete" }]);
    let kind = refused_instance(&deployment(1, deleting)).and_then(|i| i.problem).map(|p| p.kind);
    assert_eq!(kind, Some(ProblemKind::Other));
    // Stopped (no pod wanted), a failure that passed, or none: nothing to report.
    assert_eq!(refused_instance(&deployment(0, failure)), None);
    let passed = json!([{ "type": "ReplicaFailure", "status": "False", "reason": "FailedCreate" }]);
    assert_eq!(refused_instance(&deployment(1, passed)), None);
    assert_eq!(refused_instance(&deployment(1, json!([{ "type": "Available", "status": "False" }]))), None);
}

#[test]
fn an_image_that_cannot_be_pulled_is_reported_with_the_kubelets_message() {
    for (reason, message) in [
        ("ErrImagePull", "failed to pull and unpack image \"127.0.0.1:5999/nope:1\": connection refused"),
        ("ImagePullBackOff", "Back-off pulling image \"127.0.0.1:5999/nope:1\""),
        ("InvalidImageName", "Failed to apply default image tag \"NOPE:\": invalid reference format"),
        ("ErrImageNeverPull", "Container image \"nope:1\" is not present with pull policy of Never"),
    ] {
        let p = game_pod(false, json!({ "state": { "waiting": { "reason": reason, "message": message } } }));
        let i = instance(&p);
        assert_eq!((i.running, i.ready, i.restarts), (false, false, 0), "{reason}");
        assert_eq!(i.problem, Some(Problem::new(ProblemKind::ImagePull, reason, Some(message.into()))));
    }
    // A reason without a message, or with an empty one: no message.
    for waiting in [json!({ "reason": "ErrImagePull" }), json!({ "reason": "ErrImagePull", "message": "" })] {
        let p = game_pod(false, json!({ "state": { "waiting": waiting } }));
        let i = instance(&p);
        assert_eq!(i.problem, Some(Problem::new(ProblemKind::ImagePull, "ErrImagePull", None)));
    }
}

#[test]
fn a_termination_and_an_unschedulable_pod_carry_their_message() {
    let p = restarted_pod(false, json!({ "exitCode": 1, "reason": "Error", "message": "world corrupt" }));
    let exited = Problem::new(ProblemKind::Exited, "Error", Some("world corrupt".into()));
    assert_eq!(instance(&p).problem, Some(exited));
    let message = "0/4 nodes are available: 1 node(s) had untolerated taint {mettaton.dev/real-node: true}";
    let p = pod(
        "mc-1",
        "2025-01-01T00:00:00Z",
        json!({ "phase": "Pending", "conditions": [
            { "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message }
        ] }),
    );
    let unschedulable = Problem::new(ProblemKind::Unschedulable, "Unschedulable", Some(message.into()));
    assert_eq!(instance(&p).problem, Some(unschedulable));
}

#[test]
fn a_crash_looping_container_reports_why() {
    let p = game_pod(
        false,
        json!({
            "restartCount": 4,
            "state": { "waiting": { "reason": "CrashLoopBackOff" } },
            "lastState": { "terminated": { "exitCode": 1, "reason": "Error" } }
        }),
    );
    let i = instance(&p);
    assert_eq!((i.running, i.ready, i.restarts), (false, false, 4));
    assert_eq!(i.problem, Some(Problem::new(ProblemKind::CrashLoop, "CrashLoopBackOff", None)));
}

#[test]
fn a_running_unready_container_reports_its_last_termination() {
    let p = restarted_pod(false, json!({ "exitCode": 137, "reason": "OOMKilled" }));
    let i = instance(&p);
    assert_eq!((i.running, i.ready), (true, false));
    assert_eq!(i.problem, Some(Problem::new(ProblemKind::OutOfMemory, "OOMKilled", None)));

    // Once ready again, an old termination is history, not a problem.
    let recovered = restarted_pod(true, json!({ "exitCode": 137, "reason": "OOMKilled" }));
    assert_eq!(instance(&recovered).problem, None);
}

/// The server's pod, its install init container in that state, the game
/// waiting for it.
fn installing_pod(install: serde_json::Value) -> Pod {
    let mut status = game_status(false, json!({ "state": { "waiting": { "reason": "PodInitializing" } } }));
    let mut c = json!({ "name": "install", "image": "i", "imageID": "", "ready": false, "restartCount": 2 });
    c.as_object_mut().unwrap().extend(install.as_object().unwrap().clone());
    status["initContainerStatuses"] = json!([
        { "name": "mettaton-supervisor", "image": "s", "imageID": "", "ready": true, "restartCount": 0,
          "state": { "terminated": { "exitCode": 0, "reason": "Completed" } } },
        c
    ]);
    pod("mc-1", "2025-01-01T00:00:00Z", status)
}

#[test]
fn a_failed_install_is_reported_with_the_scripts_last_lines() {
    let lines = "curl: (6) Could not resolve host: example.org\ninstall script exited with 6\n";
    let failed = Problem::new(
        ProblemKind::InstallFailed,
        "InstallFailed",
        Some("curl: (6) Could not resolve host: example.org\ninstall script exited with 6".into()),
    );
    // Waiting in back-off after the failure.
    let backing_off = installing_pod(json!({
        "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container" } },
        "lastState": { "terminated": { "exitCode": 6, "reason": "Error", "message": lines } }
    }));
    let i = instance(&backing_off);
    assert_eq!(i.problem, Some(failed.clone()));
    assert!(!i.running && !i.ready);
    // Just terminated.
    let just_failed = installing_pod(json!({
        "state": { "terminated": { "exitCode": 6, "reason": "Error", "message": lines } }
    }));
    assert_eq!(instance(&just_failed).problem, Some(failed));
    // Without a termination message: the reason alone.
    let silent = installing_pod(json!({ "state": { "terminated": { "exitCode": 1, "reason": "Error" } } }));
    assert_eq!(instance(&silent).problem, Some(Problem::new(ProblemKind::InstallFailed, "InstallFailed", None)));
}

#[test]
fn an_install_that_runs_again_or_succeeded_is_no_problem() {
    // Running again after a failure: it may pass this time.
    let again = installing_pod(json!({
        "state": { "running": {} },
        "lastState": { "terminated": { "exitCode": 6, "reason": "Error", "message": "failed" } }
    }));
    assert_eq!(instance(&again).problem, None);
    let done = installing_pod(json!({ "state": { "terminated": { "exitCode": 0, "reason": "Completed" } } }));
    assert_eq!(instance(&done).problem, None);
    // Another init container's failure is not the install's.
    let mut other = installing_pod(json!({ "state": { "running": {} } }));
    let statuses = other.status.as_mut().unwrap().init_container_statuses.as_mut().unwrap();
    statuses[0].state = serde_json::from_value(json!({ "terminated": { "exitCode": 1, "reason": "Error" } })).unwrap();
    assert_ne!(instance(&other).problem.map(|p| p.kind), Some(ProblemKind::InstallFailed));
}

#[test]
fn a_starting_container_has_no_problem() {
    let p = game_pod(false, json!({ "state": { "waiting": { "reason": "ContainerCreating" } } }));
    assert_eq!(instance(&p).problem, None);
}

#[test]
fn an_unschedulable_pod_reports_it() {
    let p = pod(
        "mc-1",
        "2025-01-01T00:00:00Z",
        json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable" }] }),
    );
    let i = instance(&p);
    assert_eq!((i.running, i.ready), (false, false));
    assert_eq!(i.problem, Some(Problem::new(ProblemKind::Unschedulable, "Unschedulable", None)));
}

#[test]
fn the_current_pod_is_the_newest_one_not_shutting_down() {
    let mut old = pod("a", "2025-01-01T00:00:00Z", json!({}));
    let mut new = pod("b", "2025-01-01T00:05:00Z", json!({}));
    let older = pod("c", "2024-12-31T00:00:00Z", json!({}));
    let pods = vec![old.clone(), new.clone(), older.clone()];
    assert_eq!(current_pod(&pods).unwrap().metadata.name.as_deref(), Some("b"));

    new.metadata.deletion_timestamp = old.metadata.creation_timestamp.clone();
    let pods = vec![old.clone(), new.clone(), older];
    assert_eq!(current_pod(&pods).unwrap().metadata.name.as_deref(), Some("a"));

    // All shutting down: the newest still stands for the server, as terminating.
    old.metadata.deletion_timestamp = new.metadata.deletion_timestamp.clone();
    let pods = vec![old, new];
    let current = current_pod(&pods).unwrap();
    assert_eq!(current.metadata.name.as_deref(), Some("b"));
    assert!(instance(current).terminating);
    assert_eq!(current_pod(&[]), None);
}
