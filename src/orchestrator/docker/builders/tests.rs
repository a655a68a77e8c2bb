use super::*;
use crate::api::GameServerSpec;
use crate::orchestrator::InstanceEventKind;
use crate::plan::LABEL_GAMESERVER;
use crate::plan::plan_spec;
use bollard::models::MountType;
use serde_json::json;

/// The supervisor's image the builders are given.
const SUPERVISOR: &str = "registry.test/mettaton-supervisor:1";

fn plan(spec: serde_json::Value) -> ServerPlan {
    let spec: GameServerSpec = serde_json::from_value(spec).unwrap();
    plan_spec("arena", "games", &spec)
}

fn game() -> serde_json::Value {
    json!({
        "image": "127.0.0.1:5999/mettaton-testgame:1",
        "command": ["/testgame"],
        "args": ["-tcp", "7777"],
        "env": [{ "name": "GAME_NAME", "value": "docker" }, { "name": "EMPTY" }],
        "ports": [
            { "name": "game", "containerPort": 7777, "externalPort": 27001 },
            { "name": "query", "containerPort": 7778, "protocol": "UDP" }
        ],
        "config": [{ "path": "/etc/game/motd.txt", "content": "welcome" }],
        "storage": { "size": "1Gi", "mountPath": "/data", "reclaimPolicy": "Delete" },
        "resources": { "limits": { "memory": "256Mi", "cpu": "1500m" }, "requests": { "cpu": "250m", "memory": "64Mi" } },
        "health": { "probe": { "exec": ["/testgame", "-check"] }, "periodSeconds": 2, "failureThreshold": 4,
                    "startupTimeoutSeconds": 30 },
        "shutdown": { "gracePeriodSeconds": 7, "stopCommand": ["/testgame", "-save"] }
    })
}

fn reason(err: BackendError) -> String {
    match err {
        BackendError::Refused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_plan_is_one_container_with_its_ports_volume_limits_check_and_labels() {
    let mut p = plan(game());
    p.restart_token = Some("2026-12-03T12:00:00Z".into());
    let r = container_request(&p, Some("uid-1"), SUPERVISOR).unwrap();
    assert_eq!(r.name, "mettaton-games-arena");
    let b = &r.body;
    assert_eq!(b.image.as_deref(), Some("127.0.0.1:5999/mettaton-testgame:1"));
    assert_eq!(b.entrypoint, Some(vec!["/testgame".to_string()]));
    assert_eq!(b.cmd, Some(vec!["-tcp".to_string(), "7777".to_string()]));
    assert_eq!(b.env, Some(vec!["GAME_NAME=docker".to_string(), "EMPTY=".to_string()]));
    assert_eq!(b.exposed_ports, Some(vec!["7777/tcp".to_string(), "7778/udp".to_string()]));
    assert_eq!(b.stop_timeout, Some(7));
    let labels = b.labels.as_ref().unwrap();
    for (k, v) in [
        (LABEL_MANAGED, "true"),
        (LABEL_BACKEND, "docker"),
        (LABEL_GAMESERVER, "arena"),
        (LABEL_NAMESPACE, "games"),
        (ANNOTATION_RESTARTED_AT, "2026-12-03T12:00:00Z"),
        (LABEL_UID, "uid-1"),
        (LABEL_SPEC_HASH, r.hash.as_str()),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}");
    }
    let host = b.host_config.as_ref().unwrap();
    let bindings = host.port_bindings.as_ref().unwrap();
    assert_eq!(bindings["7777/tcp"].as_ref().unwrap()[0].host_port.as_deref(), Some("27001"));
    assert_eq!(bindings["7778/udp"].as_ref().unwrap()[0].host_port.as_deref(), Some(""), "the engine picks");
    let mount = &host.mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.source.as_deref(), mount.target.as_deref(), mount.typ),
        (Some("mettaton-games-arena-data"), Some("/data"), Some(MountType::VOLUME))
    );
    assert_eq!(host.memory, Some(256 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(1_500_000_000));
    assert_eq!(host.cpu_shares, Some(256));
    assert_eq!(host.memory_reservation, Some(64 * 1024 * 1024));
    assert_eq!(host.restart_policy.as_ref().unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
    let check = b.healthcheck.as_ref().unwrap();
    assert_eq!(check.test, Some(vec!["CMD".into(), "/testgame".into(), "-check".into()]));
    assert_eq!((check.interval, check.retries), (Some(2_000_000_000), Some(4)));
    assert_eq!(check.start_period, Some(30_000_000_000));
    assert!(r.files.is_some(), "the config file is written in before the start");

    // Stopped: the same container, which the engine never starts.
    let mut stopped = p.clone();
    stopped.replicas = 0;
    let s = container_request(&stopped, Some("uid-1"), SUPERVISOR).unwrap();
    assert_eq!(s.body.host_config.unwrap().restart_policy.unwrap().name, Some(RestartPolicyNameEnum::NO));
    assert_eq!(s.hash, r.hash, "state changes in place");

    // A TCP check is mettaton's own: no healthcheck.
    let mut spec = game();
    spec["health"] = json!({});
    assert_eq!(container_request(&plan(spec), None, SUPERVISOR).unwrap().body.healthcheck, None);
}

#[test]
fn the_hash_changes_with_what_the_container_is_made_of_and_only_that() {
    let base = plan(game());
    let hash = |p: &ServerPlan| container_request(p, None, SUPERVISOR).unwrap().hash;
    let h = hash(&base);
    assert_eq!(h, hash(&base.clone()), "deterministic");
    assert_eq!(h, container_request(&base, Some("another-uid"), SUPERVISOR).unwrap().hash, "the uid is no part of it");
    let mut token = base.clone();
    token.restart_token = Some("now".into());
    let mut image = game();
    image["image"] = json!("127.0.0.1:5999/mettaton-testgame:2");
    let mut env = game();
    env["env"][0]["value"] = json!("other");
    let mut file = game();
    file["config"][0]["content"] = json!("changed");
    let mut port = game();
    port["ports"][0]["externalPort"] = json!(27002);
    for (what, other) in
        [("token", token), ("image", plan(image)), ("env", plan(env)), ("file", plan(file)), ("port", plan(port))]
    {
        assert_ne!(hash(&other), h, "{what}");
    }
}

#[test]
fn what_plain_docker_cannot_do_is_refused_by_name() {
    let cases = [
        ("nodeSelector", json!({ "nodeSelector": { "disk": "ssd" } }), "spec.nodeSelector"),
        (
            "bad ready line",
            json!({ "command": ["/start"], "health": { "readyLogLine": ["regex:("] } }),
            "spec.health.readyLogLine[0]: `regex:(` is not a valid regular expression",
        ),
        (
            "stop without a command",
            json!({ "command": [], "shutdown": { "stop": "stop" } }),
            "spec.shutdown.stop needs spec.command on plain Docker",
        ),
        ("tolerations", json!({ "tolerations": [{ "operator": "Exists" }] }), "spec.tolerations"),
        (
            "secret",
            json!({ "env": [{ "name": "PW", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }] }),
            "spec.env[0].valueFrom.secretKeyRef (PW)",
        ),
        (
            "configMap env",
            json!({ "env": [{ "name": "A", "value": "1" },
                            { "name": "C", "valueFrom": { "configMapKeyRef": { "name": "c", "key": "k" } } }] }),
            "spec.env[1].valueFrom.configMapKeyRef (C)",
        ),
        (
            "field",
            json!({ "env": [{ "name": "IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } }] }),
            "spec.env[0].valueFrom.fieldRef (IP)",
        ),
        (
            "configMap file",
            json!({ "config": [{ "path": "/etc/x", "configMapKeyRef": { "name": "c", "key": "k" } }] }),
            "spec.config file /etc/x comes from key k of ConfigMap c",
        ),
        (
            "ephemeral storage",
            json!({ "resources": { "limits": { "ephemeral-storage": "1Gi" } } }),
            "spec.resources.limits.ephemeral-storage",
        ),
        ("service type", json!({ "service": { "type": "LoadBalancer" } }), "spec.service.type"),
        (
            "annotations",
            json!({ "service": { "type": "NodePort", "annotations": { "a": "b" } } }),
            "spec.service.annotations",
        ),
    ];
    for (what, extra, field) in cases {
        let mut spec = json!({ "image": "game:1", "ports": [{ "name": "game", "containerPort": 7777 }] });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let refusal = reason(container_request(&plan(spec), None, SUPERVISOR).unwrap_err());
        assert!(refusal.starts_with(field), "{what}: {refusal}");
    }
}

#[test]
fn config_files_are_a_tar_archive_to_extract_at_the_root() {
    let long = format!("/{}/{}", "d".repeat(120), "f".repeat(90));
    let files = [
        ConfigFile { path: "/etc/game/motd.txt".into(), content: b"welcome".to_vec() },
        ConfigFile { path: long.clone(), content: vec![b'x'; 600] },
    ];
    let archive = tar(&files).unwrap();
    assert_eq!(archive.len(), 512 + 512 + 512 + 1024 + 1024, "headers, padded contents, end blocks");
    let header = &archive[..512];
    let field = |h: &[u8], r: std::ops::Range<usize>| {
        String::from_utf8(h[r].iter().copied().take_while(|b| *b != 0).collect()).unwrap()
    };
    assert_eq!(field(header, 0..100), "etc/game/motd.txt");
    assert_eq!(field(header, 100..108), "0000444");
    assert_eq!(u64::from_str_radix(&field(header, 124..136), 8).unwrap(), 7);
    assert_eq!(&archive[512..519], b"welcome");
    let sum: u32 =
        header.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) }).sum();
    assert_eq!(u32::from_str_radix(field(header, 148..156).trim(), 8).unwrap(), sum, "checksum");
    let second = &archive[1024..1536];
    assert_eq!(field(second, 345..500), "d".repeat(120), "a long path's directory is the prefix");
    assert_eq!(field(second, 0..100), "f".repeat(90));
    assert_eq!(tar(&files).unwrap(), archive, "the same files, the same bytes");
    assert!(tar(&[ConfigFile { path: "etc/x".into(), content: vec![] }]).unwrap_err().contains("absolute"));
    assert!(tar(&[ConfigFile { path: "/etc/../x".into(), content: vec![] }]).is_err());
}

fn inspect(v: serde_json::Value) -> ContainerInspectResponse {
    serde_json::from_value(v).unwrap()
}

fn container(status: &str, policy: &str, hash: &str) -> serde_json::Value {
    json!({
        "Id": "c1", "Name": "/mettaton-games-arena", "RestartCount": 2,
        "State": { "Status": status, "Running": status == "running", "ExitCode": 1,
                   "StartedAt": "2026-12-03T12:00:00Z" },
        "Config": { "Labels": { LABEL_SPEC_HASH: hash, LABEL_GAMESERVER: "arena", LABEL_NAMESPACE: "games" } },
        "HostConfig": { "RestartPolicy": { "Name": policy } },
        "NetworkSettings": { "Ports": {
            "7777/tcp": [{ "HostIp": "0.0.0.0", "HostPort": "27001" }, { "HostIp": "::", "HostPort": "27001" }],
            "7778/udp": [{ "HostIp": "0.0.0.0", "HostPort": "32768" }]
        } }
    })
}

#[test]
fn a_container_is_observed_as_instance_workload_and_endpoint() {
    let p = plan(game());
    let running = inspect(container("running", "unless-stopped", "h"));
    let i = instance(&running).unwrap();
    assert!(i.running && i.ready && !i.terminating, "{i:?}");
    assert_eq!((i.name.as_str(), i.restarts, i.problem.as_ref()), ("mettaton-games-arena", 2, None));
    assert_eq!(workload(&running, Some("h"), 1), Workload { desired: 1, ready: 1, rolled_out: true, existing: 1 });
    assert!(!workload(&running, Some("other"), 1).rolled_out, "made from another plan");
    assert!(!workload(&running, Some("h"), 0).rolled_out, "still running while it should stop");
    let e = endpoint(&p, &running, "127.0.0.1");
    assert_eq!(e.address.as_deref(), Some("127.0.0.1"));
    let ports: Vec<(String, i32, Protocol)> = e.ports.into_iter().map(|p| (p.name, p.port, p.protocol)).collect();
    assert_eq!(ports, vec![("game".into(), 27001, Protocol::TCP), ("query".into(), 32768, Protocol::UDP)]);

    // A healthcheck not passed yet: running, not ready.
    let mut starting = container("running", "unless-stopped", "h");
    starting["State"]["Health"] = json!({ "Status": "starting" });
    let i = instance(&inspect(starting)).unwrap();
    assert!(i.running && !i.ready && i.problem.is_none(), "{i:?}");

    // Crashed, waiting for the engine to start it again.
    let backoff = inspect(container("restarting", "unless-stopped", "h"));
    assert!(restarting(&backoff));
    let problem = instance(&backoff).unwrap().problem.unwrap();
    assert_eq!(problem.kind, ProblemKind::CrashLoop, "{problem:?}");
    assert_eq!(problem.reason, "restarting (exit code 1)");
    assert!(problem.message.unwrap().contains("Docker starts it again"));

    // Killed by hand while it should run: the engine does not start it.
    let killed = inspect(container("exited", "unless-stopped", "h"));
    let problem = instance(&killed).unwrap().problem.unwrap();
    assert_eq!((problem.kind, problem.reason.as_str()), (ProblemKind::Exited, "exited with code 1"));

    // Stopped on purpose: no instance, nothing exists, rolled out at 0.
    let mut stopped = container("exited", "no", "h");
    stopped["NetworkSettings"]["Ports"] = json!({});
    let stopped = inspect(stopped);
    assert_eq!(instance(&stopped), None);
    assert_eq!(workload(&stopped, Some("h"), 0), Workload { desired: 0, ready: 0, rolled_out: true, existing: 0 });
    // Its ports: the fixed ones it will get.
    let e = endpoint(&p, &stopped, "10.0.0.5");
    assert_eq!(e.ports.iter().map(|p| p.port).collect::<Vec<_>>(), vec![27001]);
    assert_eq!(e.address.as_deref(), Some("10.0.0.5"));

    // Ports bound to one address are reached there.
    let mut bound = container("running", "unless-stopped", "h");
    bound["NetworkSettings"]["Ports"]["7777/tcp"] = json!([{ "HostIp": "127.0.0.1", "HostPort": "27001" }]);
    assert_eq!(endpoint(&p, &inspect(bound), "10.0.0.5").address.as_deref(), Some("127.0.0.1"));
}

#[test]
fn engine_events_of_this_backends_containers_are_instance_events() {
    let event = |action: &str, backend: Option<&str>| -> EventMessage {
        let mut attributes = json!({ LABEL_MANAGED: "true", LABEL_GAMESERVER: "arena", LABEL_NAMESPACE: "games",
                                     "exitCode": "137" });
        if let Some(b) = backend {
            attributes[LABEL_BACKEND] = json!(b);
        }
        serde_json::from_value(json!({ "Type": "container", "Action": action, "timeNano": 5,
                                       "Actor": { "ID": "c1", "Attributes": attributes } }))
        .unwrap()
    };
    let died = instance_event(&event("die", Some("docker"))).unwrap();
    assert_eq!(died.server, ServerKey { namespace: "games".into(), name: "arena".into() });
    assert_eq!(died.kind, InstanceEventKind::Exited { exit_code: Some(137) });
    assert_eq!((died.container_id.as_str(), died.task_id, died.time_nanos), ("c1", None, Some(5)));
    assert_eq!(instance_event(&event("start", Some("docker"))).unwrap().kind, InstanceEventKind::Started);
    assert_eq!(instance_event(&event("oom", Some("docker"))).unwrap().kind, InstanceEventKind::OutOfMemory);
    let unhealthy = instance_event(&event("health_status: unhealthy", Some("docker"))).unwrap();
    assert_eq!(unhealthy.kind, InstanceEventKind::Unhealthy);
    assert_eq!(instance_event(&event("exec_start: sh", Some("docker"))), None);
    assert_eq!(instance_event(&event("die", None)), None, "a swarm task's container is not this backend's");
}

#[test]
fn fixed_ports_of_other_containers_conflict_and_the_daemon_host_is_the_address() {
    let p = plan(game());
    let summary = |name: &str, port: u16, typ: &str| -> ContainerSummary {
        serde_json::from_value(json!({ "Id": "x", "Names": [format!("/{name}")],
            "Ports": [{ "PrivatePort": 7777, "PublicPort": port, "Type": typ }] }))
        .unwrap()
    };
    let own = "mettaton-games-arena";
    assert_eq!(port_conflict(&p, &[summary(own, 27001, "tcp")], own), None, "its own container");
    assert_eq!(port_conflict(&p, &[summary("web", 27001, "udp")], own), None, "another protocol");
    assert_eq!(
        port_conflict(&p, &[summary("web", 27001, "tcp")], own),
        Some((27001, Protocol::TCP, "container web".to_string()))
    );
    assert_eq!(daemon_host(&Daemon::default()), "127.0.0.1");
    let tcp = |url: &str| daemon_host(&Daemon::Tcp { url: url.into(), tls: None });
    assert_eq!(tcp("tcp://10.0.0.5:2376"), "10.0.0.5");
    assert_eq!(tcp("https://games.example:2376/"), "games.example");
    assert_eq!(tcp("tcp://[fd00::5]:2375"), "fd00::5");
}

#[test]
fn limitations_name_their_fields() {
    let found = limitations(&plan(game()));
    assert!(found[0].starts_with("spec.storage.size 1Gi is not enforced on plain Docker"), "{found:?}");
    assert!(found[1].starts_with("spec.health.probe"), "{found:?}");
    let udp_only = plan(json!({ "image": "g:1", "ports": [{ "name": "q", "containerPort": 1, "protocol": "UDP" }] }));
    assert!(limitations(&udp_only).is_empty());
    let v = volume_request(&plan(game())).unwrap();
    let labels = v.labels.unwrap();
    assert_eq!(v.name.as_deref(), Some("mettaton-games-arena-data"));
    assert_eq!((labels[LABEL_SIZE].as_str(), labels[LABEL_RECLAIM].as_str()), ("1Gi", "Delete"));
    assert_eq!(v.driver, None, "Docker's default, local");
    let mut classed = game();
    classed["storage"]["storageClassName"] = json!("zfs");
    assert_eq!(volume_request(&plan(classed)).unwrap().driver.as_deref(), Some("zfs"), "the class names the driver");
}

#[test]
fn the_tcp_probe_is_ready_after_a_success_and_not_after_the_threshold() {
    let mut probe = TcpProbe::new("c1@t");
    assert!(probe.due(0, 10));
    probe.record(0, false, 2);
    assert!(probe.due(1000, 10), "every second until it first passes");
    probe.record(1000, true, 2);
    assert!(probe.ready && !probe.due(5000, 10) && probe.due(11000, 10));
    probe.record(11000, false, 2);
    assert!(probe.ready, "one failure is below the threshold");
    probe.record(21000, false, 2);
    assert!(!probe.ready);
    assert_eq!(pull_reference("127.0.0.1:5999/g"), ("127.0.0.1:5999/g".into(), "latest".into()));
    assert_eq!(pull_reference("g:1"), ("g".into(), "1".into()));
}

#[test]
fn a_supervised_container_runs_its_game_under_the_supervisor_from_the_supervisors_volume() {
    let mut spec = game();
    spec["health"] = json!({ "readyLogLine": ["regex:^Done \\("], "probe": { "tcpPort": "game" }, "periodSeconds": 2 });
    spec["shutdown"] = json!({ "stop": "stop", "gracePeriodSeconds": 7 });
    let p = plan(spec);
    let r = container_request(&p, Some("uid-1"), SUPERVISOR).unwrap();
    let b = &r.body;
    let line = crate::supervisor::command_unserved(&p, p.container.supervisor.as_ref().unwrap());
    assert_eq!(b.entrypoint.as_ref(), Some(&line));
    assert_eq!(line[line.len() - 4..], ["--", "/testgame", "-tcp", "7777"], "the game after `--`");
    assert_eq!(b.cmd, None);
    assert_eq!((b.open_stdin, b.stop_signal.as_deref(), b.stop_timeout), (Some(true), Some("SIGTERM"), Some(7)));
    let test = b.healthcheck.as_ref().unwrap().test.clone().unwrap();
    assert_eq!(
        test,
        ["CMD", crate::supervisor::BINARY, "probe", "--state-dir", crate::supervisor::STATE_DIR, "--tcp", "7777"]
    );
    let mounts = b.host_config.as_ref().unwrap().mounts.clone().unwrap();
    type Key<'a> = (Option<&'a str>, Option<&'a str>, Option<MountType>, Option<bool>);
    let targets: Vec<Key> =
        mounts.iter().map(|m| (m.target.as_deref(), m.source.as_deref(), m.typ, m.read_only)).collect();
    let volume = engine::supervisor_volume(SUPERVISOR);
    assert_eq!(
        targets,
        [
            (Some("/data"), Some("mettaton-games-arena-data"), Some(MountType::VOLUME), None),
            (Some("/.mettaton/bin"), Some(volume.as_str()), Some(MountType::VOLUME), Some(true)),
            (Some(crate::supervisor::STATE_DIR), None, Some(MountType::TMPFS), None),
        ]
    );
    // Another supervisor image is another container.
    let other = container_request(&p, Some("uid-1"), "registry.test/mettaton-supervisor:2").unwrap();
    assert_ne!(other.hash, r.hash);
    // Unsupervised: the game's own command, its stdin open all the same.
    let plain = container_request(&plan(game()), None, SUPERVISOR).unwrap().body;
    assert_eq!(plain.entrypoint, Some(vec!["/testgame".to_string()]));
    assert_eq!((plain.open_stdin, plain.stop_signal), (Some(true), None));
}

/// Players and output events run on plain Docker (and swarm, through the
/// same `engine` builders): the supervisor matches their lines, and serves
/// nothing, its report being read by exec.
#[test]
fn players_and_output_events_are_matched_by_the_supervisor_which_serves_no_port() {
    let mut spec = game();
    spec["players"] =
        json!({ "joinLine": ["regex:^(?P<player>\\S+) joined the game$"], "leaveLine": ["regex:^(\\S+) left"] });
    spec["outputEvents"] = json!([{ "line": "saved world", "reason": "WorldSaved", "type": "Warning" }]);
    let p = plan(spec);
    let r = container_request(&p, Some("uid-1"), SUPERVISOR).expect("runs on plain Docker");
    let line = r.body.entrypoint.unwrap();
    let at = |flag: &str| -> Vec<&str> { line.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect() };
    assert_eq!(at("--join"), ["regex:^(?P<player>\\S+) joined the game$"]);
    assert_eq!(at("--event"), ["WorldSaved=saved world"]);
    assert!(!line.contains(&"--http".to_string()), "{line:?}");
    assert!(r.body.exposed_ports.unwrap_or_default().iter().all(|p| !p.starts_with("9396")));
    let swarm =
        crate::orchestrator::swarm::builders::service_spec(&p, Some("uid-1"), SUPERVISOR).expect("and on swarm");
    let command = swarm.task_template.unwrap().container_spec.unwrap().command.unwrap();
    assert_eq!(command, line, "the same command line on swarm");
}

#[test]
fn a_restart_makes_a_container_with_the_console_and_stop_signal_of_the_old_one() {
    let mut spec = game();
    spec["shutdown"] = json!({ "stop": "stop" });
    let body = container_request(&plan(spec), None, SUPERVISOR).unwrap().body;
    let inspected: ContainerInspectResponse = serde_json::from_value(json!({
        "Config": serde_json::to_value(&body).unwrap(),
        "HostConfig": serde_json::to_value(body.host_config.as_ref().unwrap()).unwrap(),
    }))
    .unwrap();
    let again = body_like(&inspected);
    assert_eq!((again.open_stdin, again.stop_signal.as_deref()), (Some(true), Some("SIGTERM")));
    assert_eq!(again.entrypoint, body.entrypoint);
    assert_eq!(again.host_config.unwrap().mounts, body.host_config.unwrap().mounts);
}

#[test]
fn the_supervisors_installer_is_a_one_shot_container_filling_its_volume() {
    let b = installer_body(SUPERVISOR);
    assert_eq!(b.image.as_deref(), Some(SUPERVISOR));
    assert_eq!(b.entrypoint.clone().unwrap(), ["/mettaton-supervisor", "install", "/.mettaton/bin"]);
    let mount = &b.host_config.as_ref().unwrap().mounts.as_ref().unwrap()[0];
    assert_eq!(mount.source.as_deref(), Some(engine::supervisor_volume(SUPERVISOR).as_str()));
    assert_eq!((mount.target.as_deref(), mount.read_only), (Some("/.mettaton/bin"), None));
    assert_eq!(server_of(b.labels.as_ref()), None, "no server's");
}

fn installing(mut p: ServerPlan) -> ServerPlan {
    p.install = Some(crate::plan::InstallPlan {
        image: "registry.test/installer:1".into(),
        entrypoint: "ash".into(),
        script: "echo ok > /mnt/server/ok".into(),
        token: "initial".into(),
    });
    p
}

#[test]
fn the_working_dir_is_the_containers_and_part_of_its_making() {
    let mut p = plan(game());
    let none = container_request(&p, None, SUPERVISOR).unwrap();
    assert_eq!(none.body.working_dir, None);
    p.container.working_dir = Some("/home/container".into());
    let set = container_request(&p, None, SUPERVISOR).unwrap();
    assert_eq!(set.body.working_dir.as_deref(), Some("/home/container"));
    assert_ne!(set.hash, none.hash, "another working dir is another container");
    let inspected: ContainerInspectResponse = serde_json::from_value(json!({
        "Config": { "Image": "game", "WorkingDir": "/home/container" }, "HostConfig": {}
    }))
    .unwrap();
    assert_eq!(body_like(&inspected).working_dir.as_deref(), Some("/home/container"));
}

#[test]
fn the_install_container_runs_the_supervisor_over_the_script_and_is_no_server() {
    let p = installing(plan(game()));
    let run = install_run(&p, Some("uid-1"), SUPERVISOR).unwrap().unwrap();
    let body = install_body(&run);
    assert_eq!(install_container_name(&p), "mettaton-games-arena-install");
    assert_eq!(body.image.as_deref(), Some("registry.test/installer:1"));
    let entrypoint = body.entrypoint.clone().unwrap();
    assert_eq!(entrypoint[..2], [crate::supervisor::BINARY, "install-run"]);
    assert_eq!(entrypoint[entrypoint.len() - 3..], ["ash", "-c", "echo ok > /mnt/server/ok"]);
    assert_eq!(body.cmd, Some(vec![]), "the image's command is no argument of it");
    assert_eq!(body.env.as_deref(), Some(&["GAME_NAME=docker".to_string(), "EMPTY=".to_string()][..]));
    let host = body.host_config.as_ref().unwrap();
    let mounts: Vec<_> = host.mounts.iter().flatten().map(|m| (m.target.as_deref(), m.source.clone())).collect();
    assert_eq!(mounts[0], (Some(crate::plan::INSTALL_PATH), Some(volume_name(&p))));
    assert_eq!(mounts[1].1, Some(engine::supervisor_volume(SUPERVISOR)));
    assert_eq!(host.restart_policy.as_ref().unwrap().name, Some(RestartPolicyNameEnum::NO));
    let labels = body.labels.as_ref().unwrap();
    assert_eq!(server_of(Some(labels)), None, "neither listed nor watched as a server");
    assert!(engine::is_install_of(Some(labels), &p));
    // The game's container names its install: another install, another container.
    let made = container_request(&p, None, SUPERVISOR).unwrap();
    assert_eq!(made.body.labels.as_ref().unwrap().get(engine::LABEL_INSTALL), Some(&run.hash));
    let mut reinstall = p.clone();
    reinstall.install.as_mut().unwrap().token = "2026-12-04T05:00:00Z".into();
    assert_ne!(container_request(&reinstall, None, SUPERVISOR).unwrap().hash, made.hash);
    // Without storage, refused naming it.
    let mut bare = game();
    bare.as_object_mut().unwrap().remove("storage");
    assert!(reason(container_request(&installing(plan(bare)), None, SUPERVISOR).unwrap_err()).contains("spec.storage"));
}

#[test]
fn how_an_install_container_ended() {
    let c = |state: serde_json::Value| -> ContainerInspectResponse {
        serde_json::from_value(json!({ "State": state })).unwrap()
    };
    assert_eq!(install_ended(&c(json!({ "Status": "running", "Running": true }))), None);
    assert_eq!(install_ended(&c(json!({ "Status": "created" }))), None);
    assert_eq!(install_ended(&c(json!({ "Status": "exited", "ExitCode": 0 }))), Some(Ok(())));
    assert_eq!(install_ended(&c(json!({ "Status": "exited", "ExitCode": 3 }))), Some(Err("exit code 3".into())));
    let oom = install_ended(&c(json!({ "Status": "exited", "ExitCode": 137, "OOMKilled": true })));
    assert!(oom.unwrap().unwrap_err().contains("out of memory"));
    let failed =
        engine::install_observed("i", Some(engine::install_failed("install exited with 3:\nboom\n", "x")), None);
    let problem = failed.instance.unwrap().problem.unwrap();
    assert_eq!(problem.kind, ProblemKind::InstallFailed);
    assert_eq!(problem.message.as_deref(), Some("install exited with 3:\nboom"));
}
