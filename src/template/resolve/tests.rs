use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::api::{ConfigParser, GameServer};
use crate::plan::{self, ANNOTATION_REINSTALL, ANNOTATION_RESTARTED_AT};

const T: &str = "ClusterGameTemplate/paper";

fn template() -> GameTemplateSpec {
    serde_json::from_value(json!({
        "game": "Paper",
        "images": [
            { "name": "Java 21", "image": "ghcr.io/pelican-eggs/yolks:java_21" },
            { "name": "Java 17", "image": "ghcr.io/pelican-eggs/yolks:java_17" }
        ],
        "startup": [
            { "name": "Default", "command": "java -Xmx{{SERVER_MEMORY}}M -jar {{SERVER_JARFILE}} --port {{server.build.default.port}} --max {{MAX_PLAYERS}}" },
            { "name": "Plain", "command": "java -jar server.jar" }
        ],
        "variables": [
            { "env": "SERVER_JARFILE", "default": "server.jar", "userEditable": true, "rules": "required|regex:/^([\\w\\d._-]+)(\\.jar)$/" },
            { "env": "MAX_PLAYERS", "default": "20", "userEditable": true, "rules": "required|integer|between:1,100" },
            { "env": "BUILD", "default": "latest", "userEditable": false, "rules": "required|string|max:20" },
            { "env": "MOTD", "default": "", "userEditable": true, "rules": "nullable|string" }
        ],
        "configFiles": [
            { "path": "server.properties", "parser": "properties", "edits": [
                { "key": "server-port", "value": "{{server.build.default.port}}" },
                { "key": "server-ip", "value": "{{server.allocations.default.ip}}" },
                { "key": "max-players", "value": "{{server.environment.MAX_PLAYERS}}" },
                { "key": "motd", "value": "{{env.MOTD}} on {{server.build.env.SERVER_PORT}}" },
                { "key": "memory", "value": "{{server.build.memory}}MB {{SERVER_JARFILE}}" },
                { "key": "query.port", "replace": [
                    { "match": "25565", "value": "{{server.allocations.default.port}}" },
                    { "match": "regex:^x", "value": "{{env.SERVER_IP}}" }
                ] }
            ] },
            { "path": "./config/paper.yml", "parser": "yaml", "edits": [ { "key": "a.b", "value": "plain" } ] }
        ],
        "readyLogLine": ["Done ("],
        "stop": "stop",
        "install": { "image": "ghcr.io/pelican-eggs/installers:java_21", "entrypoint": "ash", "script": "echo install" }
    }))
    .unwrap()
}

fn server(extra: serde_json::Value) -> GameServerSpec {
    let mut spec = json!({
        "template": { "name": "paper", "kind": "ClusterGameTemplate" },
        "ports": [ { "name": "game", "containerPort": 25565 }, { "name": "query", "containerPort": 25566, "protocol": "UDP" } ],
        "storage": { "size": "10Gi" },
        "resources": { "limits": { "memory": "2Gi" } }
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            spec.as_object_mut().unwrap().remove(k);
        } else {
            spec[k] = v.clone();
        }
    }
    serde_json::from_value(spec).unwrap()
}

fn env_of(spec: &GameServerSpec) -> Vec<(String, String)> {
    spec.env.iter().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
}

fn problems(spec: &GameServerSpec, t: &GameTemplateSpec) -> Vec<String> {
    resolve(spec, T, t).unwrap_err()
}

#[test]
fn defaults_make_a_concrete_spec() {
    let r = resolve(&server(json!({})), T, &template()).unwrap();
    let s = &r.spec;
    assert_eq!(s.template, None);
    assert!(s.variables.is_empty());
    assert_eq!(s.image, "ghcr.io/pelican-eggs/yolks:java_21");
    assert_eq!(
        s.command,
        ["/bin/sh", "-c", "java -Xmx${SERVER_MEMORY}M -jar ${SERVER_JARFILE} --port 25565 --max ${MAX_PLAYERS}"]
    );
    assert!(s.args.is_empty());
    let env: Vec<(String, String)> = env_of(s);
    let want: Vec<(String, String)> = [
        ("SERVER_JARFILE", "server.jar"),
        ("MAX_PLAYERS", "20"),
        ("BUILD", "latest"),
        ("MOTD", ""),
        ("STARTUP", template().startup[0].command.as_str()),
        ("SERVER_MEMORY", "2048"),
        ("SERVER_IP", "0.0.0.0"),
        ("SERVER_PORT", "25565"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(env, want);
    assert_eq!(s.health.as_ref().unwrap().ready_log_line, Some(vec!["Done (".to_string()]));
    assert_eq!(s.shutdown.as_ref().unwrap().stop.as_deref(), Some("stop"));
    assert_eq!(s.storage.as_ref().unwrap().mount_path(), "/home/container");
    assert_eq!(r.working_dir, "/home/container");
    assert_eq!(r.install.as_ref().unwrap().entrypoint, "ash");
    assert_eq!(s.ports.len(), 2);
}

#[test]
fn the_servers_fields_override_the_template() {
    let spec = server(json!({
        "image": "my/java:21",
        "template": { "name": "paper", "kind": "ClusterGameTemplate", "image": "Java 17", "startup": "Plain" },
        "command": ["java"],
        "args": ["-jar", "x.jar"],
        "variables": { "MAX_PLAYERS": "50", "MOTD": "hi" },
        "env": [ { "name": "MAX_PLAYERS", "value": "60" }, { "name": "EXTRA", "value": "1" }, { "name": "SERVER_IP", "value": "10.0.0.1" } ],
        "health": { "readyLogLine": ["Ready"] },
        "shutdown": { "stop": "^C" },
        "storage": { "size": "1Gi", "mountPath": "/data" }
    }));
    let r = resolve(&spec, T, &template()).unwrap();
    let s = &r.spec;
    assert_eq!(s.image, "my/java:21");
    assert_eq!(
        (s.command.as_slice(), s.args.as_slice()),
        (&["java".to_string()][..], &["-jar".to_string(), "x.jar".to_string()][..])
    );
    let env = env_of(s);
    let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("MAX_PLAYERS"), Some("60"), "spec.env wins over the variable");
    assert_eq!(get("MOTD"), Some("hi"));
    assert_eq!(get("STARTUP"), Some("java -jar server.jar"), "the chosen start command");
    assert_eq!(get("SERVER_IP"), Some("10.0.0.1"));
    assert_eq!(env.last().unwrap().0, "EXTRA", "new names are added after");
    assert_eq!(env.iter().filter(|(k, _)| k == "MAX_PLAYERS").count(), 1, "replaced in place");
    assert_eq!(s.health.as_ref().unwrap().ready_log_line, Some(vec!["Ready".to_string()]));
    assert_eq!(s.shutdown.as_ref().unwrap().stop.as_deref(), Some("^C"));
    assert_eq!(s.storage.as_ref().unwrap().mount_path(), "/data");
    // The config files see the environment as it runs.
    let props = &r.config_files[0];
    let value = |k: &str| props.edits.iter().find(|e| e.key == k).unwrap().value.clone();
    assert_eq!(value("max-players").as_deref(), Some("60"));
    assert_eq!(value("server-ip").as_deref(), Some("0.0.0.0"), "the panel's ip is the default address");
    assert_eq!(value("motd").as_deref(), Some("hi on 25565"));
}

#[test]
fn the_template_image_and_start_command_are_chosen_by_name() {
    let spec = server(json!({ "template": { "name": "paper", "image": "Java 17", "startup": "Plain" } }));
    let r = resolve(&spec, T, &template()).unwrap();
    assert_eq!(r.spec.image, "ghcr.io/pelican-eggs/yolks:java_17");
    assert_eq!(r.spec.command, ["/bin/sh", "-c", "java -jar server.jar"]);
}

#[test]
fn unknown_image_and_start_command_names_list_the_names() {
    let spec = server(json!({ "template": { "name": "paper", "image": "Java 8", "startup": "Fast" } }));
    assert_eq!(
        problems(&spec, &template()),
        [
            format!("spec.template.image: template {T} has no image Java 8 (its images: Java 21, Java 17)"),
            format!(
                "spec.template.startup: template {T} has no start command Fast (its start commands: Default, Plain)"
            ),
        ]
    );
}

#[test]
fn unknown_and_uneditable_variables_are_refused() {
    let spec = server(json!({ "variables": { "NOPE": "1", "BUILD": "123" } }));
    assert_eq!(
        problems(&spec, &template()),
        [
            format!("spec.variables.BUILD: BUILD is not user-editable in template {T}"),
            format!("spec.variables.NOPE: template {T} has no variable NOPE"),
        ]
    );
}

#[test]
fn every_value_breaking_a_rule_is_reported_at_once() {
    let spec = server(json!({ "variables": { "MAX_PLAYERS": "500", "SERVER_JARFILE": "server.zip" } }));
    let ps = problems(&spec, &template());
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert_eq!(
        ps[0],
        format!(
            "spec.variables.SERVER_JARFILE: server.zip breaks the rule regex:/^([\\w\\d._-]+)(\\.jar)$/ of template {T} (`server.zip` does not match)"
        )
    );
    assert_eq!(
        ps[1],
        format!(
            "spec.variables.MAX_PLAYERS: 500 breaks the rule between:1,100 of template {T} (the value 500 is not between 1 and 100)"
        )
    );
    let spec = server(json!({ "variables": { "MAX_PLAYERS": "" } }));
    assert_eq!(
        problems(&spec, &template()),
        [format!("spec.variables.MAX_PLAYERS:  breaks the rule required of template {T} (a value is required)")]
    );
}

#[test]
fn a_default_breaking_its_rule_is_reported() {
    let mut t = template();
    t.variables[1].default = String::new();
    assert_eq!(
        problems(&server(json!({})), &t),
        [format!(
            "spec.variables.MAX_PLAYERS: the default \"\" of template {T} breaks its rule required (a value is required): set spec.variables.MAX_PLAYERS"
        )]
    );
    assert!(resolve(&server(json!({ "variables": { "MAX_PLAYERS": "5" } })), T, &t).is_ok());
    t.variables[2].default = "x".repeat(21);
    let ps = problems(&server(json!({ "variables": { "MAX_PLAYERS": "5" } })), &t);
    assert!(ps[0].starts_with(&format!("{T}: spec.variables[BUILD].default: \"xxx")), "{ps:?}");
    assert!(ps[0].ends_with("and the variable is not user-editable: the template needs fixing"), "{ps:?}");
}

#[test]
fn the_templates_own_problems_come_first_named_by_the_template() {
    let mut t = template();
    t.variables[3].rules = "sometimes".into();
    t.stop = Some("SIGNOPE".into());
    let ps = problems(&server(json!({ "variables": { "MAX_PLAYERS": "0" } })), &t);
    assert_eq!(ps.len(), 3, "{ps:?}");
    assert!(ps[0].starts_with(&format!("{T}: spec.variables[MOTD].rules: rule `sometimes`")), "{ps:?}");
    assert!(ps[1].starts_with(&format!("{T}: spec.stop: ")), "{ps:?}");
    assert!(ps[2].starts_with("spec.variables.MAX_PLAYERS: 0 breaks the rule between:1,100"), "{ps:?}");
}

#[test]
fn ports_come_from_the_server_else_the_template_and_are_needed() {
    let mut t = template();
    let spec = server(json!({ "ports": null }));
    assert_eq!(
        problems(&spec, &t),
        [format!("spec.ports: template {T} has no ports (eggs have none: the panel allocates them): set spec.ports")]
    );
    t.ports =
        vec![serde_json::from_value(json!({ "name": "game", "containerPort": 7777, "protocol": "UDP" })).unwrap()];
    let r = resolve(&spec, T, &t).unwrap();
    assert_eq!(r.spec.ports, t.ports);
    assert_eq!(env_of(&r.spec).iter().find(|(k, _)| k == "SERVER_PORT").unwrap().1, "7777");
    let r = resolve(&server(json!({})), T, &t).unwrap();
    assert_eq!(r.spec.ports[0].container_port, 25565, "the server's replace the template's");
}

#[test]
fn a_probe_port_must_be_a_tcp_port_of_the_templates_when_the_server_has_none() {
    let mut t = template();
    t.ports = vec![
        serde_json::from_value(json!({ "name": "game", "containerPort": 7777 })).unwrap(),
        serde_json::from_value(json!({ "name": "query", "containerPort": 7778, "protocol": "UDP" })).unwrap(),
    ];
    let spec = |port: &str| server(json!({ "ports": null, "health": { "probe": { "tcpPort": port } } }));
    assert!(resolve(&spec("game"), T, &t).is_ok());
    for port in ["query", "nope"] {
        assert_eq!(
            problems(&spec(port), &t),
            [format!("spec.health.probe.tcpPort: {port} is no TCP port of template {T}")]
        );
    }
    // The server's own ports are the API server's to check.
    assert!(resolve(&server(json!({ "health": { "probe": { "tcpPort": "game" } } })), T, &t).is_ok());
}

#[test]
fn memory_is_the_limit_in_mib_or_zero() {
    let get = |spec: &GameServerSpec| {
        let r = resolve(spec, T, &template()).unwrap();
        env_of(&r.spec).into_iter().find(|(k, _)| k == "SERVER_MEMORY").unwrap().1
    };
    assert_eq!(get(&server(json!({ "resources": null }))), "0");
    assert_eq!(get(&server(json!({ "resources": { "limits": { "memory": "1500M" } } }))), "1430");
    assert_eq!(get(&server(json!({ "resources": { "requests": { "memory": "1Gi" } } }))), "0", "a request is no limit");
}

#[test]
fn storage_is_needed_with_an_install_script() {
    let spec = server(json!({ "storage": null }));
    assert_eq!(
        problems(&spec, &template()),
        [format!(
            "spec.storage: template {T} has an install script, which installs into the server's volume: set spec.storage"
        )]
    );
    let mut t = template();
    t.install = None;
    let r = resolve(&spec, T, &t).unwrap();
    assert_eq!((r.spec.storage, r.install), (None, None));
}

#[test]
fn an_install_script_too_long_for_one_argument_is_refused() {
    let mut t = template();
    t.install.as_mut().unwrap().script = "x".repeat(MAX_INSTALL_SCRIPT);
    assert!(resolve(&server(json!({})), T, &t).is_ok());
    t.install.as_mut().unwrap().script.push('x');
    assert_eq!(
        problems(&server(json!({})), &t),
        [format!(
            "install.script of template {T}: 120001 bytes, more than the 120000 that `ash -c SCRIPT` can pass as one argument"
        )]
    );
}

#[test]
fn config_files_are_absolute_with_placeholders_filled() {
    let r = resolve(&server(json!({ "variables": { "MOTD": "Hello {{not}}" } })), T, &template()).unwrap();
    assert_eq!(r.config_files.len(), 2);
    let props = &r.config_files[0];
    assert_eq!((props.path.as_str(), props.parser), ("/home/container/server.properties", ConfigParser::Properties));
    let values: Vec<(String, Option<String>)> = props.edits.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
    assert_eq!(
        values,
        [
            ("server-port", Some("25565")),
            ("server-ip", Some("0.0.0.0")),
            ("max-players", Some("20")),
            ("motd", Some("Hello {{not}} on 25565")),
            ("memory", Some("2048MB server.jar")),
            ("query.port", None),
        ]
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
    );
    let replace = props.edits[5].replace.as_ref().unwrap();
    assert_eq!(replace[0], Replacement { match_: "25565".into(), value: "25565".into() });
    assert_eq!(replace[1], Replacement { match_: "regex:^x".into(), value: "0.0.0.0".into() });
    assert_eq!(r.config_files[1].path, "/home/container/config/paper.yml");
}

#[test]
fn unknown_placeholders_name_the_file_and_key_or_the_start_command() {
    let mut t = template();
    t.config_files[0].edits[0].value = Some("{{server.build.disk}} {{NOPE}} {{NOPE}}".into());
    t.config_files[0].edits.push(ConfigEdit {
        key: "secret".into(),
        value: Some("{{env.TOKEN}}".into()),
        replace: None,
    });
    t.config_files[1].path = "../etc/passwd".into();
    t.startup[0].command = "run {{config.docker.interface}} {{ MAX_PLAYERS }} {{/${/g}} {{}}".into();
    let spec =
        server(json!({ "env": [ { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } } ] }));
    assert_eq!(
        problems(&spec, &t),
        [
            format!(
                "spec.template.startup: the start command Default of template {T} has the placeholder {{{{config.docker.interface}}}}, which is neither a variable of the template nor one mettaton fills"
            ),
            format!(
                "spec.configFiles[server.properties].edits[server-port] of template {T}: the placeholder {{{{server.build.disk}}}} is neither a variable nor a placeholder mettaton fills"
            ),
            format!(
                "spec.configFiles[server.properties].edits[server-port] of template {T}: the placeholder {{{{NOPE}}}} is neither a variable nor a placeholder mettaton fills"
            ),
            format!(
                "spec.configFiles[server.properties].edits[secret] of template {T}: the placeholder {{{{env.TOKEN}}}} stands for a variable of spec.env whose value comes from valueFrom, not known before the container runs"
            ),
            format!("spec.configFiles[../etc/passwd].path of template {T}: `..` leaves the server's files"),
        ]
    );
}

#[test]
fn the_start_command_expands_environment_variables_never_values() {
    let mut t = template();
    t.startup[0].command = "./run {{env.MOTD}} {{EXTRA}} '{{MOTD}}' {{ MOTD }} {{/${/g}} $HOME".into();
    let spec = server(json!({ "variables": { "MOTD": "$(rm -rf /)" }, "env": [ { "name": "EXTRA", "value": "x" } ] }));
    let r = resolve(&spec, T, &t).unwrap();
    assert_eq!(r.spec.command[2], "./run ${MOTD} ${EXTRA} '${MOTD}' {{ MOTD }} {{/${/g}} $HOME");
}

#[test]
fn args_without_a_command_are_refused() {
    assert_eq!(
        problems(&server(json!({ "args": ["nogui"] })), &template()),
        [format!(
            "spec.args: needs spec.command: the start command of template {T} is one shell line, which takes no arguments"
        )]
    );
}

#[test]
fn the_rest_of_the_servers_spec_is_kept() {
    let spec = server(json!({
        "state": "Stopped",
        "description": "mine",
        "nodeSelector": { "zone": "a" },
        "service": { "type": "NodePort" },
        "config": [ { "path": "/etc/x", "content": "y" } ]
    }));
    let r = resolve(&spec, T, &template()).unwrap();
    let mut want = spec.clone();
    want.template = None;
    want.image = r.spec.image.clone();
    want.command = r.spec.command.clone();
    want.env = r.spec.env.clone();
    want.health = r.spec.health.clone();
    want.shutdown = r.spec.shutdown.clone();
    want.storage.as_mut().unwrap().mount_path = Some("/home/container".into());
    assert_eq!(r.spec, want);
}

fn gameserver(annotations: serde_json::Value, spec: &GameServerSpec) -> GameServer {
    let mut gs = GameServer::new("mc", spec.clone());
    gs.metadata.namespace = Some("games".into());
    gs.metadata.annotations = serde_json::from_value(annotations).unwrap();
    gs
}

#[test]
fn plan_resolved_plans_the_resolved_spec_with_its_files_and_install() {
    let spec = server(json!({}));
    let r = resolve(&spec, T, &template()).unwrap();
    let gs = gameserver(json!({ ANNOTATION_RESTARTED_AT: "t1" }), &spec);
    let p = plan::plan_resolved(&gs, &r);
    assert_eq!(p.container.image, r.spec.image);
    assert_eq!(p.container.command, r.spec.command);
    assert_eq!(p.container.working_dir.as_deref(), Some("/home/container"));
    assert_eq!(p.restart_token.as_deref(), Some("t1"));
    assert_eq!(p.volume.as_ref().unwrap().mount_path, "/home/container");
    let sup = p.container.supervisor.as_ref().unwrap();
    assert_eq!(sup.config_files, r.config_files);
    assert_eq!(sup.ready, ["Done ("]);
    assert_eq!(sup.stop.as_deref(), Some("stop"));
    let install = p.install.as_ref().unwrap();
    assert_eq!(
        (install.image.as_str(), install.entrypoint.as_str(), install.script.as_str(), install.token.as_str()),
        ("ghcr.io/pelican-eggs/installers:java_21", "ash", "echo install", "initial")
    );
    // The rest is plan_spec's of the resolved spec.
    let mut want = plan::plan_spec("mc", "games", &r.spec);
    assert_eq!(want.container.supervisor.as_ref().unwrap().config_files, Vec::new(), "plan_spec has no files");
    want.restart_token = Some("t1".into());
    want.container.working_dir = p.container.working_dir.clone();
    want.container.supervisor = p.container.supervisor.clone();
    want.install = p.install.clone();
    assert_eq!(p, want);

    let gs = gameserver(json!({ ANNOTATION_REINSTALL: "2026-12-04T05:00:00Z" }), &spec);
    assert_eq!(plan::plan_resolved(&gs, &r).install.unwrap().token, "2026-12-04T05:00:00Z");
}

#[test]
fn config_files_alone_make_a_supervisor() {
    let mut t = template();
    t.ready_log_line.clear();
    t.stop = None;
    let spec = server(json!({}));
    let r = resolve(&spec, T, &t).unwrap();
    assert_eq!(plan::plan_spec("mc", "games", &r.spec).container.supervisor, None);
    let p = plan::plan_resolved(&gameserver(json!(null), &spec), &r);
    assert_eq!(
        p.container.supervisor,
        Some(plan::SupervisorPlan { config_files: r.config_files.clone(), ..Default::default() })
    );
    t.config_files.clear();
    let r = resolve(&spec, T, &t).unwrap();
    assert_eq!(plan::plan_resolved(&gameserver(json!(null), &spec), &r).container.supervisor, None);
}

#[test]
fn install_token_is_the_reinstall_asked_or_initial() {
    let a = |v: &str| BTreeMap::from([(ANNOTATION_REINSTALL.to_string(), v.to_string())]);
    assert_eq!(plan::install_token(None), "initial");
    assert_eq!(plan::install_token(Some(&a(""))), "initial");
    assert_eq!(plan::install_token(Some(&a("r2"))), "r2");
    assert_eq!(plan::install_token(Some(&BTreeMap::new())), "initial");
}
