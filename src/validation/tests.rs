use serde_json::{Value, json};

use super::*;

fn manifest(name: &str, spec: Value) -> Value {
    json!({ "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer", "metadata": { "name": name }, "spec": spec })
}

/// A spec that reaches every rule of the CRD: each node with rules is there.
fn full() -> Value {
    json!({
        "image": "mettaton.test/game:1",
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            { "name": "game", "containerPort": 7777, "externalPort": 30777 },
            { "name": "query", "containerPort": 7777, "protocol": "UDP" }
        ],
        "env": [
            { "name": "MODE", "value": "survival" },
            { "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "game-secrets", "key": "password" } } },
            { "name": "MOTD", "valueFrom": { "configMapKeyRef": { "name": "game.cfg", "key": "motd.txt" } } },
            { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
            { "name": "ZONE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.labels['zone']" } } }
        ],
        "resources": { "requests": { "cpu": "500m", "memory": "1Gi" }, "limits": { "cpu": "2", "memory": "1024Mi" } },
        "storage": { "size": "10Gi", "storageClassName": "fast-ssd" },
        "config": [
            { "path": "/etc/game/server.cfg", "content": "x" },
            { "path": "/data/ops.json", "configMapKeyRef": { "name": "ops", "key": "ops.json" } }
        ],
        "service": { "type": "NodePort", "annotations": { "example.com/lb": "internal" } },
        "health": { "probe": { "tcpPort": "game" }, "startupTimeoutSeconds": 900 },
        "shutdown": { "gracePeriodSeconds": 30, "stopCommand": ["rcon-cli", "stop"] },
        "nodeSelector": { "pool": "games", "example.com/disk": "" },
        "tolerations": [
            { "key": "dedicated", "value": "games", "effect": "NoExecute", "tolerationSeconds": 30 },
            { "operator": "Exists" }
        ]
    })
}

fn shown(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut spec = full();
    f(&mut spec);
    spec
}

#[test]
fn a_full_manifest_passes_every_rule_without_an_evaluation_error() {
    let problems = GAMESERVER.validate(&manifest("full", full()));
    assert!(problems.is_empty(), "{}", shown(&problems));
    let problems = GAMESERVER.validate_update(&manifest("full", full()), &manifest("full", full()));
    assert!(problems.is_empty(), "{}", shown(&problems));
    let minimal = json!({ "image": "game", "ports": [{ "name": "game", "containerPort": 1 }] });
    assert!(GAMESERVER.validate(&manifest("m", minimal)).is_empty());
}

#[test]
fn every_rule_of_the_crd_is_compiled() {
    fn count(node: &Node) -> usize {
        node.rules.len()
            + node.properties.values().map(count).sum::<usize>()
            + node.additional.iter().chain(node.items.iter()).map(|n| count(n)).sum::<usize>()
    }
    let yaml = crate::api::crd_yaml();
    assert_eq!(count(&GAMESERVER.root), yaml.matches("rule: ").count());
    let transition = |node: &Node| node.rules.iter().filter(|r| r.transition).count();
    let spec = GAMESERVER.spec_node();
    assert_eq!((transition(spec), transition(&spec.properties["storage"])), (1, 2));
}

/// Each kind of check refuses a manifest, naming the field as the API server
/// does.
#[test]
fn each_kind_of_rule_refuses_naming_the_field() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "required",
            with(|s| drop(s["storage"].as_object_mut().unwrap().remove("size"))),
            "spec.storage.size: Required value",
        ),
        (
            "a rule of the spec on a field absent",
            with(|s| drop(s.as_object_mut().unwrap().remove("image"))),
            "spec.image: is required unless spec.template names a template",
        ),
        (
            "type",
            with(|s| s["ports"][0]["containerPort"] = json!("80")),
            "spec.ports[0].containerPort: Invalid value: \"string\": spec.ports[0].containerPort in body must be of type integer: \"string\"",
        ),
        (
            "type, and no rule runs then",
            with(|s| s["image"] = json!(42)),
            "Invalid value: \"object\": some validation rules were not checked",
        ),
        (
            "enum",
            with(|s| s["state"] = json!("Paused")),
            "spec.state: Unsupported value: \"Paused\": supported values: \"Running\", \"Stopped\"",
        ),
        (
            "pattern",
            with(|s| s["ports"][0]["name"] = json!("Game")),
            "spec.ports[0].name: Invalid value: \"Game\": spec.ports[0].name in body should match '^[a-z0-9]+(-[a-z0-9]+)*$'",
        ),
        (
            "minimum",
            with(|s| s["ports"][0]["containerPort"] = json!(0)),
            "spec.ports[0].containerPort: Invalid value: 0: spec.ports[0].containerPort in body should be greater than or equal to 1",
        ),
        (
            "maximum",
            with(|s| s["ports"][1]["containerPort"] = json!(70000)),
            "spec.ports[1].containerPort: Invalid value: 70000: spec.ports[1].containerPort in body should be less than or equal to 65535",
        ),
        (
            "minLength",
            with(|s| s["storage"]["storageClassName"] = json!("")),
            "spec.storage.storageClassName: Invalid value: \"\": spec.storage.storageClassName in body should be at least 1 chars long",
        ),
        (
            "maxLength",
            with(|s| s["description"] = json!("d".repeat(1025))),
            "spec.description: Too long: may not be more than 1024",
        ),
        (
            "minItems",
            with(|s| s["health"]["readyLogLine"] = json!([])),
            "spec.health.readyLogLine: Invalid value: 0: spec.health.readyLogLine in body should have at least 1 items",
        ),
        (
            "maxItems",
            with(|s| s["command"] = json!(vec!["x"; 65])),
            "spec.command: Too many: 65: must have at most 64 items",
        ),
        (
            "maxProperties",
            with(|s| {
                s["resources"]["limits"] = json!({ "cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi", "x": "1" })
            }),
            "spec.resources.limits: Too many: 4: must have at most 3 items",
        ),
        (
            "list-map keys",
            with(|s| s["ports"][1]["name"] = json!("game")),
            "spec.ports[1]: Duplicate value: {\"name\":\"game\"}",
        ),
        (
            "list-map keys, defaults",
            with(|s| s["env"][1]["name"] = json!("MODE")),
            "spec.env[1]: Duplicate value: {\"name\":\"MODE\"}",
        ),
        (
            "rule on a field",
            with(|s| s["ports"][0]["name"] = json!("27015")),
            "spec.ports[0].name: a port name needs at least one letter",
        ),
        (
            "rule with a fieldPath",
            with(|s| s["env"][1]["value"] = json!("x")),
            "spec.env[1].valueFrom: env[] takes a value or a valueFrom, not both",
        ),
        (
            "rule with fieldPath, the field named once",
            with(|s| s["health"]["probe"]["tcpPort"] = json!("query")),
            "spec.health.probe.tcpPort: must name a TCP port of spec.ports",
        ),
        (
            "startsWith/endsWith/in",
            with(|s| s["env"][4]["valueFrom"]["fieldRef"]["fieldPath"] = json!("metadata.labels['zone'")),
            "spec.env[4].valueFrom.fieldRef.fieldPath: must be a field of the pod",
        ),
        (
            "exists_one",
            with(|s| s["ports"][1]["protocol"] = json!("TCP")),
            "spec.ports: each containerPort and protocol pair may appear only once",
        ),
        (
            "split/exists",
            with(|s| s["config"][0]["path"] = json!("/etc/../x")),
            "spec.config[0].path: config path must not contain '..'",
        ),
        ("trim", with(|s| s["image"] = json!("game:1 ")), "spec.image: must not contain spaces"),
        (
            "has",
            with(|s| s["config"][0]["configMapKeyRef"] = json!({ "name": "c", "key": "k" })),
            "spec.config[0]: a config file needs exactly one",
        ),
        ("map keys", with(|s| s["nodeSelector"] = json!({ "a b": "x" })), "spec.nodeSelector: keys must be label keys"),
        (
            "map values",
            with(|s| s["nodeSelector"] = json!({ "a": "-x" })),
            "spec.nodeSelector: values must be label values",
        ),
        (
            "additionalProperties",
            with(|s| s["nodeSelector"] = json!({ "a": "x".repeat(64) })),
            "spec.nodeSelector[a]: Too long",
        ),
        (
            "isQuantity",
            with(|s| s["resources"]["requests"]["cpu"] = json!("lots")),
            "spec.resources.requests: must be quantities of at least 0",
        ),
        (
            "quantity isLessThan",
            with(|s| s["resources"]["requests"]["cpu"] = json!("-1")),
            "spec.resources.requests: must be quantities of at least 0",
        ),
        (
            "quantity isGreaterThan",
            with(|s| s["storage"]["size"] = json!("0")),
            "spec.storage.size: must be a positive quantity, such as 10Gi",
        ),
        (
            "quantity compareTo",
            with(|s| s["resources"]["limits"]["memory"] = json!("1023Mi")),
            "spec.resources.requests: must not be above resources.limits",
        ),
        (
            "a rule on tolerations",
            with(|s| s["tolerations"][0]["effect"] = json!("NoSchedule")),
            "spec.tolerations[0].tolerationSeconds: needs tolerations[].effect NoExecute",
        ),
    ];
    for (kind, spec, expected) in cases {
        let problems = GAMESERVER.validate(&manifest("bad", spec.clone()));
        // Problems of the whole object that name no field (the API server's
        // note that it ran no rule) are the spec's own when it is alone.
        let found = |p: &str| p.starts_with(expected) || p.starts_with(&format!("spec: {expected}"));
        assert!(
            problems.iter().any(|p| found(&p.to_string())),
            "{kind}: want {expected:?}, got:\n{}",
            shown(&problems)
        );
        let spec_problems: Vec<String> = GAMESERVER.validate_spec(&spec).iter().map(ToString::to_string).collect();
        assert!(spec_problems.iter().any(|p| found(p)), "{kind} (spec alone): {spec_problems:?}");
    }
}

#[test]
fn the_root_rule_sees_the_name() {
    let problems = GAMESERVER.validate(&manifest("a.b", full()));
    assert_eq!(
        shown(&problems),
        "metadata.name must be a DNS label, at most 63 characters and no dots: it names the server's Service and labels its pods"
    );
}

#[test]
fn unknown_fields_are_pruned_and_defaults_filled_in_as_the_api_server_does() {
    // Without its default protocol (TCP) the probe's rule could not find the port.
    let spec = json!({ "image": "game", "ports": [{ "name": "game", "containerPort": 1 }], "health": { "probe": { "tcpPort": "game" } }, "hostNetwork": true });
    let problems = GAMESERVER.validate(&manifest("d", spec));
    assert!(problems.is_empty(), "{}", shown(&problems));
}

#[test]
fn transition_rules_apply_on_update_only() {
    let old = manifest("t", full());
    let shrunk = manifest("t", with(|s| s["storage"]["size"] = json!("9Gi")));
    let reclassed = manifest("t", with(|s| drop(s["storage"].as_object_mut().unwrap().remove("storageClassName"))));
    let removed = manifest("t", with(|s| drop(s.as_object_mut().unwrap().remove("storage"))));
    assert!(GAMESERVER.validate(&shrunk).is_empty(), "on create, no transition rule");
    let refused = |new: &Value| shown(&GAMESERVER.validate_update(&old, new));
    assert_eq!(refused(&shrunk), "spec.storage.size: may grow but never shrink");
    assert_eq!(refused(&reclassed), "spec.storage.storageClassName: cannot change once the volume exists");
    assert_eq!(
        refused(&removed),
        "spec.storage: cannot be removed from a GameServer; delete the GameServer to release its volume"
    );
    let grown = manifest("t", with(|s| s["storage"]["size"] = json!("10240Mi")));
    assert_eq!(refused(&grown), "", "the same size, written otherwise");
    // A server that had no storage may get one.
    assert_eq!(shown(&GAMESERVER.validate_update(&removed, &old)), "");
    // The spec alone: the transition rules only.
    let bad_and_shrunk = with(|s| {
        s["storage"]["size"] = json!("1Gi");
        s["image"] = json!("");
    });
    let p = GAMESERVER.spec_transition_problems(&full(), &bad_and_shrunk);
    assert_eq!(shown(&p), "spec.storage.size: may grow but never shrink");
}

#[test]
fn a_rule_message_keeps_what_does_not_name_its_field() {
    assert_eq!(without_own_name("spec.storage.size", "storage.size may grow"), "may grow");
    assert_eq!(without_own_name("spec.env[2].valueFrom", "env[].valueFrom takes one"), "takes one");
    assert_eq!(without_own_name("spec.env[2].valueFrom", "env[] takes a value"), "env[] takes a value");
    assert_eq!(without_own_name("spec.ports", "each containerPort"), "each containerPort");
    assert_eq!(without_own_name("spec.image", "image must not"), "must not");
}

/// The manifests tests/integration/bad_input.rs sends to a real API server,
/// each broken one way (its `break_it`, every variant), with the fields the
/// API server's refusal names: the validator refuses each naming the same
/// fields, and accepts the valid ones the API server accepts.
#[test]
fn the_validator_and_the_api_server_agree_on_bad_input() {
    let base = || {
        json!({
            "image": "mettaton.test/game:1",
            "ports": [
                { "name": "game0", "containerPort": 7777, "protocol": "TCP" },
                { "name": "query1", "containerPort": 7778, "protocol": "UDP" },
                { "name": "tv2", "containerPort": 7779 }
            ],
            "state": "Running"
        })
    };
    let valid: Vec<Value> = vec![
        base(),
        full(),
        {
            let mut s = base();
            s["service"] = json!({ "type": "LoadBalancer" });
            s["ports"][0]["externalPort"] = json!(7778);
            s["ports"][2]["externalPort"] = json!(7777);
            s
        },
        {
            let mut s = base();
            s["storage"] = json!({ "size": "1e9", "mountPath": "/srv/world", "reclaimPolicy": "Delete" });
            s["config"] = json!([{ "path": "/data/a.txt", "content": "x\ny" }]);
            s["resources"] =
                json!({ "requests": { "cpu": "0.5", "memory": "1073741824" }, "limits": { "cpu": "500m" } });
            s["health"] = json!({ "probe": { "exec": ["ready"] }, "periodSeconds": 3600, "failureThreshold": 100 });
            s["shutdown"] = json!({ "gracePeriodSeconds": 0 });
            s["env"] = json!([{ "name": "a.b-c", "value": "" }, { "name": "X", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }]);
            s["service"] = json!({ "type": "ClusterIP", "annotations": { "example.org/x": "a b" } });
            s["privileged"] = json!(true);
            s
        },
    ];
    for spec in valid {
        let problems = GAMESERVER.validate(&manifest("ok-1", spec.clone()));
        assert!(problems.is_empty(), "a valid manifest refused: {}\n{spec:#}", shown(&problems));
    }

    type Break = Box<dyn Fn(&mut Value)>;
    let set = |pointer: &'static str, values: Vec<Value>| -> Vec<Break> {
        values
            .into_iter()
            .map(|v| -> Break {
                Box::new(move |s: &mut Value| {
                    if let Some(slot) = s.pointer_mut(pointer) {
                        *slot = v.clone();
                    } else {
                        let (parent, key) = pointer.rsplit_once('/').unwrap();
                        s.pointer_mut(parent).unwrap()[key] = v.clone();
                    }
                })
            })
            .collect()
    };
    let one = |f: Break| vec![f];
    let kinds: Vec<(&str, Vec<Break>, Vec<&str>)> = vec![
        ("bad image", set("/image", vec![json!(""), json!(" game"), json!("my game"), json!(42), json!("x".repeat(513))]), vec!["spec.image"]),
        ("no image", one(Box::new(|s| drop(s.as_object_mut().unwrap().remove("image")))), vec!["spec.image"]),
        ("bad port list", set("/ports", vec![json!([]), json!(null), json!({ "name": "game" }), json!("7777")]), vec!["spec.ports"]),
        (
            "bad containerPort",
            set("/ports/0/containerPort", vec![json!(0), json!(-1), json!(65536), json!(70_000), json!(i64::from(i32::MAX)), json!("80"), json!(80.5)]),
            vec!["spec.ports[0].containerPort"],
        ),
        ("no containerPort", one(Box::new(|s| drop(s["ports"][0].as_object_mut().unwrap().remove("containerPort")))), vec!["spec.ports[0].containerPort"]),
        (
            "bad port name",
            set("/ports/0/name", ["", "Game", "game_port", "-game", "game-", "sixteen-letters1", "27015", "game--tv"].map(|n| json!(n)).to_vec()),
            vec!["spec.ports[0].name"],
        ),
        ("bad protocol", set("/ports/0/protocol", vec![json!("SCTP"), json!("tcp"), json!(""), json!(6)]), vec!["spec.ports[0].protocol"]),
        ("bad externalPort", set("/ports/0/externalPort", vec![json!(0), json!(65536), json!(-30000)]), vec!["spec.ports[0].externalPort"]),
        (
            "duplicate port name",
            one(Box::new(|s| s["ports"].as_array_mut().unwrap().push(json!({ "name": "game0", "containerPort": 40_001 })))),
            vec!["spec.ports[3]"],
        ),
        (
            "duplicate containerPort",
            one(Box::new(|s| s["ports"].as_array_mut().unwrap().push(json!({ "name": "dup", "containerPort": 7779 })))),
            vec!["spec.ports"],
        ),
        (
            "duplicate externalPort",
            one(Box::new(|s| {
                let ports = s["ports"].as_array_mut().unwrap();
                ports.push(json!({ "name": "fixa", "containerPort": 40_001, "externalPort": 40_003 }));
                ports.push(json!({ "name": "fixb", "containerPort": 40_002, "externalPort": 40_003 }));
            })),
            vec!["spec.ports"],
        ),
        (
            "externalPort on ClusterIP",
            one(Box::new(|s| {
                s["ports"][0]["externalPort"] = json!(30_001);
                s["service"] = json!({ "type": "ClusterIP" });
            })),
            vec!["spec.ports"],
        ),
        (
            "two Service ports alike",
            one(Box::new(|s| {
                let ports = s["ports"].as_array_mut().unwrap();
                ports.push(json!({ "name": "lba", "containerPort": 40_001, "externalPort": 40_002 }));
                ports.push(json!({ "name": "lbb", "containerPort": 40_002 }));
                s["service"] = json!({ "type": "LoadBalancer" });
            })),
            vec!["spec.ports"],
        ),
        (
            "too many ports",
            one(Box::new(|s| s["ports"] = json!((0..33).map(|n| json!({ "name": format!("p{n}"), "containerPort": 40_000 + n })).collect::<Vec<_>>()))),
            vec!["spec.ports"],
        ),
        ("bad state", set("/state", vec![json!("Paused"), json!("running"), json!(""), json!(true)]), vec!["spec.state"]),
        ("bad imagePullPolicy", set("/imagePullPolicy", vec![json!("Sometimes"), json!("always")]), vec!["spec.imagePullPolicy"]),
        (
            "bad storage size",
            ["-1Gi", "0", "lots", "", "1.5.5Gi", "10 Gi"]
                .into_iter()
                .map(|size| -> Break { Box::new(move |s: &mut Value| s["storage"] = json!({ "size": size })) })
                .collect(),
            vec!["spec.storage.size"],
        ),
        ("no storage size", one(Box::new(|s| s["storage"] = json!({ "mountPath": "/data" }))), vec!["spec.storage.size"]),
        (
            "bad mountPath",
            ["data", "", "./data"]
                .into_iter()
                .map(|m| -> Break { Box::new(move |s: &mut Value| s["storage"] = json!({ "size": "1Gi", "mountPath": m })) })
                .collect(),
            vec!["spec.storage.mountPath"],
        ),
        (
            "bad reclaimPolicy",
            ["Recycle", "delete"]
                .into_iter()
                .map(|r| -> Break { Box::new(move |s: &mut Value| s["storage"] = json!({ "size": "1Gi", "reclaimPolicy": r })) })
                .collect(),
            vec!["spec.storage.reclaimPolicy"],
        ),
        (
            "bad storageClassName",
            ["", "Fast_SSD", "fast ssd", "-fast"]
                .into_iter()
                .map(|c| -> Break { Box::new(move |s: &mut Value| s["storage"] = json!({ "size": "1Gi", "storageClassName": c })) })
                .collect(),
            vec!["spec.storage.storageClassName"],
        ),
        (
            "bad config path",
            ["relative.cfg", "/", "/etc/game/", "/data/../etc/passwd", ""]
                .into_iter()
                .map(|p| -> Break { Box::new(move |s: &mut Value| s["config"] = json!([{ "path": p, "content": "x" }])) })
                .collect(),
            vec!["spec.config[0].path"],
        ),
        (
            "config with both or neither source",
            set(
                "/config",
                vec![
                    json!([{ "path": "/etc/a.cfg", "content": "x", "configMapKeyRef": { "name": "c", "key": "k" } }]),
                    json!([{ "path": "/etc/a.cfg" }]),
                ],
            ),
            vec!["spec.config[0]"],
        ),
        (
            "duplicate config path",
            set("/config", vec![json!([{ "path": "/etc/a.cfg", "content": "x" }, { "path": "/etc/a.cfg", "content": "y" }])]),
            vec!["spec.config[1]"],
        ),
        (
            "bad configMapKeyRef",
            [json!({ "name": "", "key": "k" }), json!({ "name": "c", "key": "" }), json!({ "name": "c" })]
                .into_iter()
                .map(|r| -> Break { Box::new(move |s: &mut Value| s["config"] = json!([{ "path": "/etc/a.cfg", "configMapKeyRef": r }])) })
                .collect(),
            vec!["spec.config[0].configMapKeyRef"],
        ),
        (
            "config file at the volume's mountPath",
            ["/data", "/srv/world"]
                .into_iter()
                .map(|m| -> Break {
                    Box::new(move |s: &mut Value| {
                        s["storage"] = json!({ "size": "1Gi", "mountPath": m });
                        s["config"] = json!([{ "path": m, "content": "x" }]);
                    })
                })
                .collect(),
            vec!["spec.config"],
        ),
        (
            "bad service type",
            ["ExternalName", "nodeport", ""]
                .into_iter()
                .map(|t| -> Break { Box::new(move |s: &mut Value| s["service"] = json!({ "type": t })) })
                .collect(),
            vec!["spec.service.type"],
        ),
        (
            "bad Service annotation key",
            ["bad key".to_string(), "-leading".into(), "example.org/".into(), "a/b/c".into(), "x".repeat(64)]
                .into_iter()
                .map(|k| -> Break {
                    Box::new(move |s: &mut Value| {
                        let mut annotations = serde_json::Map::new();
                        annotations.insert(k.clone(), json!("v"));
                        s["service"] = json!({ "annotations": annotations });
                    })
                })
                .collect(),
            vec!["spec.service.annotations"],
        ),
        (
            "bad startupTimeoutSeconds",
            [0, 86_401, -5].into_iter().map(|t| -> Break { Box::new(move |s: &mut Value| s["health"] = json!({ "startupTimeoutSeconds": t })) }).collect(),
            vec!["spec.health.startupTimeoutSeconds"],
        ),
        (
            "bad periodSeconds",
            [0, 3601].into_iter().map(|t| -> Break { Box::new(move |s: &mut Value| s["health"] = json!({ "periodSeconds": t })) }).collect(),
            vec!["spec.health.periodSeconds"],
        ),
        (
            "bad failureThreshold",
            [0, 101].into_iter().map(|t| -> Break { Box::new(move |s: &mut Value| s["health"] = json!({ "failureThreshold": t })) }).collect(),
            vec!["spec.health.failureThreshold"],
        ),
        ("probe on an unknown port", set("/health", vec![json!({ "probe": { "tcpPort": "nope" } })]), vec!["spec.health.probe.tcpPort"]),
        (
            "probe on a UDP port",
            one(Box::new(|s| {
                s["ports"].as_array_mut().unwrap().push(json!({ "name": "udpq", "containerPort": 40_001, "protocol": "UDP" }));
                s["health"] = json!({ "probe": { "tcpPort": "udpq" } });
            })),
            vec!["spec.health.probe.tcpPort"],
        ),
        (
            "probe with both or neither check",
            set("/health", vec![json!({ "probe": {} }), json!({ "probe": { "tcpPort": "game0", "exec": ["ready"] } })]),
            vec!["spec.health.probe"],
        ),
        ("empty exec probe", set("/health", vec![json!({ "probe": { "exec": [] } })]), vec!["spec.health.probe.exec"]),
        (
            "bad gracePeriodSeconds",
            [-1, 3601].into_iter().map(|g| -> Break { Box::new(move |s: &mut Value| s["shutdown"] = json!({ "gracePeriodSeconds": g })) }).collect(),
            vec!["spec.shutdown.gracePeriodSeconds"],
        ),
        ("too many command arguments", set("/command", vec![json!(vec!["x"; 65])]), vec!["spec.command"]),
        ("too many arguments", set("/args", vec![json!(vec!["x"; 257])]), vec!["spec.args"]),
        ("description too long", set("/description", vec![json!("d".repeat(1025))]), vec!["spec.description"]),
        ("duplicate env name", set("/env", vec![json!([{ "name": "A", "value": "1" }, { "name": "A", "value": "2" }])]), vec!["spec.env[1]"]),
        (
            "bad env name",
            ["", "A=B", "é", "TAB\t"]
                .into_iter()
                .map(|n| -> Break { Box::new(move |s: &mut Value| s["env"] = json!([{ "name": n, "value": "1" }])) })
                .collect(),
            vec!["spec.env[0].name"],
        ),
        (
            "bad env source",
            [
                json!({ "name": "A", "value": "1", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }),
                json!({ "name": "A", "valueFrom": {} }),
                json!({ "name": "A", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" }, "configMapKeyRef": { "name": "c", "key": "k" } } }),
                json!({ "name": "A", "valueFrom": { "secretKeyRef": { "name": "s", "key": "bad/key" } } }),
                json!({ "name": "A", "valueFrom": { "secretKeyRef": { "name": "Bad_Name", "key": "k" } } }),
                json!({ "name": "A", "valueFrom": { "fieldRef": { "fieldPath": "spec.secret" } } }),
            ]
            .into_iter()
            .map(|e| -> Break { Box::new(move |s: &mut Value| s["env"] = json!([e])) })
            .collect(),
            vec!["spec.env[0]"],
        ),
        (
            "bad cpu quantity",
            ["lots", "-1", "", "1x"]
                .into_iter()
                .map(|q| -> Break { Box::new(move |s: &mut Value| s["resources"] = json!({ "requests": { "cpu": q } })) })
                .collect(),
            vec!["spec.resources"],
        ),
        (
            "request above limit",
            set("/resources", vec![json!({ "requests": { "memory": "2Gi" }, "limits": { "memory": "1Gi" } })]),
            vec!["spec.resources"],
        ),
        (
            "unsupported resource",
            set(
                "/resources",
                vec![
                    json!({ "requests": { "gpu": "1" } }),
                    json!({ "limits": { "nvidia.com/gpu": "1" }, "requests": { "nvidia.com/gpu": "2" } }),
                    json!({ "claims": [{ "name": "gpu" }] }),
                ],
            ),
            vec!["spec.resources"],
        ),
    ];
    let mut checked = 0;
    for (what, breaks, fields) in &kinds {
        for (n, break_it) in breaks.iter().enumerate() {
            let mut spec = base();
            break_it(&mut spec);
            let problems = shown(&GAMESERVER.validate(&manifest("bad-1", spec.clone())));
            assert!(
                !problems.is_empty() && fields.iter().all(|f| problems.contains(f)),
                "{what} #{n}: want {fields:?} named, got:\n{problems}\nspec: {spec:#}"
            );
            checked += 1;
        }
    }
    // bad_input.rs's "bad name" kind: the dot and the length are the CRD's
    // rule; upper case (`Game-1`) is the API server's own check of names,
    // not the CRD's (the facade checks it by hand).
    for name in ["a.b-1".to_string(), format!("{}-1", "x".repeat(63))] {
        let problems = shown(&GAMESERVER.validate(&manifest(&name, base())));
        assert!(problems.contains("metadata.name"), "{name}: {problems}");
    }
    // And its "no spec".
    let no_spec = json!({ "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer", "metadata": { "name": "n-1" } });
    assert_eq!(shown(&GAMESERVER.validate(&no_spec)), "spec: Required value");
    assert!(checked >= 100, "{checked} manifests");
}
