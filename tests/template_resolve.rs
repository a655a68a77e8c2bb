//! Game templates resolved (issue 16), no cluster needed: the six real eggs
//! of tests/eggs/ imported and resolved for a GameServer with their default
//! variables, each checked against the egg's own JSON (the command, the
//! environment, the config files, the stop, the ready lines, the install);
//! random variable values, which resolve exactly when every one keeps its
//! rule; and `mettaton render -f --template` as a binary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use mettaton::api::{GameServerSpec, GameTemplateSpec};
use mettaton::template::{self, egg::Egg};
use proptest::prelude::*;
use regex::Regex;
use serde_json::{Value, json};

const EGGS: [&str; 6] =
    ["paper.json", "ark-ptdl-v1.json", "valheim.json", "night-of-the-dead.json", "empyrion.json", "arma-reforger.json"];

const PORT: i32 = 27015;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An egg section that older formats hold as a JSON-encoded string.
fn section(egg: &Value, key: &str) -> Value {
    match &egg["config"][key] {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|e| panic!("config.{key}: {e}")),
        v => v.clone(),
    }
}

/// The egg's rules of a variable, as one text (pipe string or list).
fn rules_text(v: &Value) -> String {
    match &v["rules"] {
        Value::Array(list) => list.iter().map(|r| r.as_str().unwrap()).collect::<Vec<_>>().join("|"),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// What the egg's placeholders are filled with: the panel's own by what
/// mettaton knows of the server, the others by the environment.
fn expected_fill(text: &str, env: &BTreeMap<String, String>) -> String {
    let placeholder = Regex::new(r"\{\{([\w.-]+)\}\}").unwrap();
    placeholder
        .replace_all(text, |c: &regex::Captures| {
            let key = &c[1];
            match key {
                "server.build.default.port" | "server.allocations.default.port" => PORT.to_string(),
                "server.build.default.ip" | "server.allocations.default.ip" => "0.0.0.0".to_string(),
                "server.build.memory" => "0".to_string(),
                _ => {
                    let name = ["server.build.env.", "server.environment.", "env."]
                        .iter()
                        .find_map(|p| key.strip_prefix(p))
                        .unwrap_or(key);
                    env.get(name).unwrap_or_else(|| panic!("the egg's {{{{{key}}}}} names no variable")).clone()
                }
            }
        })
        .into_owned()
}

#[test]
fn the_six_eggs_resolve_as_their_json_says() {
    let variable = Regex::new(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}").unwrap();
    for file in EGGS {
        let text = std::fs::read_to_string(root().join("tests/eggs").join(file)).unwrap();
        let egg: Value = serde_json::from_str(&text).unwrap();
        let imported = template::import(&Egg::parse(&text).unwrap()).unwrap();
        let name = format!("ClusterGameTemplate/{}", imported.name.clone().unwrap());
        let t = &imported.spec;

        // The variables a panel user must fill in: required, with no default.
        let required: Vec<String> = egg["variables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| {
                v["default_value"].as_str().unwrap_or_default().is_empty()
                    && rules_text(v).split('|').any(|r| r == "required")
            })
            .map(|v| v["env_variable"].as_str().unwrap().to_string())
            .collect();
        let mut spec = json!({
            "template": { "name": imported.name, "kind": "ClusterGameTemplate" },
            "ports": [ { "name": "game", "containerPort": PORT, "protocol": "UDP" } ],
            "storage": { "size": "10Gi" }
        });
        let server: GameServerSpec = serde_json::from_value(spec.clone()).unwrap();
        match template::resolve(&server, &name, t) {
            Ok(_) => assert!(required.is_empty(), "{file}: resolves with {required:?} empty"),
            Err(problems) => {
                assert_eq!(problems.len(), required.len(), "{file}: {problems:?}");
                for (p, env) in problems.iter().zip(&required) {
                    assert!(
                        p.starts_with(&format!(
                            "spec.variables.{env}: the default \"\" of template {name} breaks its rule required"
                        )),
                        "{file}: {p}"
                    );
                }
            }
        }
        let set: BTreeMap<String, String> = required.iter().map(|env| (env.clone(), "secret1".to_string())).collect();
        spec["variables"] = json!(set);
        let server: GameServerSpec = serde_json::from_value(spec).unwrap();
        let r = template::resolve(&server, &name, t).unwrap_or_else(|p| panic!("{file}: {p:?}"));

        // The environment: each variable's default (or the value set), then
        // what Wings sets.
        let startup = match egg.get("startup_commands").filter(|v| !v.is_null()) {
            Some(commands) => commands.as_object().unwrap().values().next().unwrap().as_str().unwrap().to_string(),
            None => egg["startup"].as_str().unwrap().to_string(),
        };
        let env: BTreeMap<String, String> =
            r.spec.env.iter().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect();
        assert_eq!(env.len(), r.spec.env.len(), "{file}: one variable per name");
        for v in egg["variables"].as_array().unwrap() {
            let key = v["env_variable"].as_str().unwrap();
            let want =
                set.get(key).cloned().unwrap_or_else(|| v["default_value"].as_str().unwrap_or_default().to_string());
            assert_eq!(env.get(key), Some(&want), "{file}: {key}");
        }
        assert_eq!(env["STARTUP"], startup, "{file}");
        assert_eq!(env["SERVER_PORT"], PORT.to_string(), "{file}");
        assert_eq!(env["SERVER_IP"], "0.0.0.0", "{file}");
        assert_eq!(env["SERVER_MEMORY"], "0", "{file}: no memory limit");

        // The command: sh -c of the start command, {{X}} as ${X}.
        let line = variable.replace_all(&startup, "$${$1}");
        assert_eq!(r.spec.command, ["/bin/sh", "-c", line.as_ref()], "{file}");
        assert!(r.spec.args.is_empty(), "{file}");

        // The stop and the ready lines.
        assert_eq!(r.spec.shutdown.as_ref().and_then(|s| s.stop.as_deref()), egg["config"]["stop"].as_str(), "{file}");
        let done = match &section(&egg, "startup")["done"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(list) => list.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
            v => panic!("{file}: done {v}"),
        };
        assert_eq!(r.spec.health.as_ref().and_then(|h| h.ready_log_line.clone()), Some(done), "{file}");

        // The config files: every find key, placeholders filled.
        let files = section(&egg, "files");
        let files = files.as_object().unwrap();
        assert_eq!(r.config_files.len(), files.len(), "{file}");
        for (path, f) in files {
            let got = r
                .config_files
                .iter()
                .find(|c| c.path == format!("/home/container/{path}"))
                .unwrap_or_else(|| panic!("{file}: no {path} among {:?}", r.config_files));
            let parser = f["parser"].as_str().unwrap().replace("yml", "yaml");
            assert_eq!(serde_json::to_value(got.parser).unwrap(), parser, "{file}: {path}");
            let find = f["find"].as_object().unwrap();
            assert_eq!(got.edits.len(), find.len(), "{file}: {path}");
            for (key, value) in find {
                let edit = got.edits.iter().find(|e| &e.key == key).unwrap_or_else(|| panic!("{file}: {path} {key}"));
                match value {
                    Value::String(s) => {
                        assert_eq!(edit.value.as_deref(), Some(expected_fill(s, &env).as_str()), "{file}: {path} {key}")
                    }
                    Value::Object(cases) => {
                        let replace = edit.replace.as_ref().unwrap();
                        assert_eq!(replace.len(), cases.len(), "{file}: {path} {key}");
                        for (m, with) in cases {
                            let r = replace.iter().find(|r| &r.match_ == m).unwrap();
                            assert_eq!(
                                r.value,
                                expected_fill(with.as_str().unwrap(), &env),
                                "{file}: {path} {key} {m}"
                            );
                        }
                    }
                    v => assert_eq!(edit.value.as_deref(), Some(v.to_string().as_str()), "{file}: {path} {key}"),
                }
            }
        }
        assert!(
            r.config_files.iter().all(|f| f.edits.iter().all(|e| {
                !e.value.as_deref().unwrap_or_default().contains("{{")
                    && e.replace.iter().flatten().all(|r| !r.value.contains("{{"))
            })),
            "{file}: every placeholder filled"
        );

        // The install, into the server's volume at the egg's files.
        let install = &egg["scripts"]["installation"];
        let got = r.install.as_ref().unwrap_or_else(|| panic!("{file}: no install"));
        assert_eq!(got.image, install["container"].as_str().unwrap(), "{file}");
        assert_eq!(got.entrypoint, install["entrypoint"].as_str().unwrap(), "{file}");
        // Line ends made Unix ones: `bash -c` would read a CR as part of each command.
        assert_eq!(got.script, install["script"].as_str().unwrap().replace("\r\n", "\n"), "{file}");
        assert_eq!(r.working_dir, "/home/container", "{file}");
        assert_eq!(r.spec.storage.as_ref().unwrap().mount_path(), "/home/container", "{file}");
        assert_eq!((r.spec.template.as_ref(), r.spec.variables.len()), (None, 0), "{file}");
    }
}

/// The rules a variable of the property test may have, each with what it
/// allows, written independently of the rule engine.
type Allows = fn(&str) -> bool;

const RULES: [(&str, Allows); 7] = [
    ("required|integer|between:1,100", |v| {
        // PHP's FILTER_VALIDATE_INT: whitespace around, a sign, no leading zero.
        let v = v.trim();
        let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
        !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && v.parse::<i64>().is_ok_and(|n| (1..=100).contains(&n))
    }),
    ("required|string|max:8", |v| !v.trim().is_empty() && v.chars().count() <= 8),
    ("nullable|alpha_dash", |v| v.trim().is_empty() || v.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')),
    ("required|in:Easy,Normal,Hard", |v| ["Easy", "Normal", "Hard"].contains(&v)),
    ("boolean", |v| v.trim().is_empty() || v == "0" || v == "1"),
    ("required|regex:/^[a-z]+\\.jar$/", |v| {
        v.strip_suffix(".jar").is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase()))
    }),
    ("", |_| true),
];

fn property_template(rules: &[usize]) -> GameTemplateSpec {
    serde_json::from_value(json!({
        "game": "Game",
        "images": [ { "name": "a", "image": "game:1" } ],
        "startup": [ { "name": "Default", "command": "./game" } ],
        "ports": [ { "name": "game", "containerPort": 7777 } ],
        "variables": rules.iter().enumerate().map(|(i, r)| json!({
            "env": format!("V{i}"), "default": "x", "userEditable": true, "rules": RULES[*r].0
        })).collect::<Vec<_>>()
    }))
    .unwrap()
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        1 => Just(" ".to_string()),
        1 => (-5i64..130).prop_map(|n| n.to_string()),
        1 => Just("007".to_string()),
        4 => prop::sample::select(vec![
            "100",
            "101",
            "+5",
            " 5",
            "-1",
            "1.0",
            ".jar",
            "12345678",
            "123456789",
            "Easy",
            "Normal",
            "Hard",
            "hard",
            "0",
            "1",
            "true",
            "server.jar",
            "Server.jar",
            "a-b_c",
            "a b",
            "é-ü"
        ])
        .prop_map(str::to_string),
        1 => "[a-z]{0,6}(\\.jar)?",
        1 => "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Values set for the variables resolve exactly when each keeps its
    /// rule; every one that breaks it is reported, by name.
    #[test]
    fn values_resolve_exactly_when_they_keep_their_rules(
        vars in prop::collection::vec((0..RULES.len(), value()), 1..6)
    ) {
        let t = property_template(&vars.iter().map(|(r, _)| *r).collect::<Vec<_>>());
        let variables: BTreeMap<String, String> =
            vars.iter().enumerate().map(|(i, (_, v))| (format!("V{i}"), v.clone())).collect();
        let spec: GameServerSpec = serde_json::from_value(json!({
            "template": { "name": "game" },
            "variables": variables,
        }))
        .unwrap();
        let broken: Vec<String> = vars
            .iter()
            .enumerate()
            .filter(|(_, (r, v))| !(RULES[*r].1)(v))
            .map(|(i, _)| format!("V{i}"))
            .collect();
        match template::resolve(&spec, "GameTemplate/game", &t) {
            Ok(r) => {
                prop_assert!(broken.is_empty(), "resolved though {:?} break their rules", broken);
                for (i, (_, v)) in vars.iter().enumerate() {
                    let name = format!("V{i}");
                    let env = r.spec.env.iter().find(|e| e.name == name).unwrap();
                    prop_assert_eq!(env.value.as_deref(), Some(v.as_str()));
                }
            }
            Err(problems) => {
                let named: Vec<String> = problems
                    .iter()
                    .map(|p| p.strip_prefix("spec.variables.").and_then(|p| p.split(':').next()).unwrap_or(p).to_string())
                    .collect();
                prop_assert_eq!(named, broken, "{:?}", problems);
            }
        }
    }
}

/// `mettaton render -f server.yaml --template template.yaml` through the
/// binary: the resolved server as YAML on stdout; problems one a line on
/// stderr, exit 1.
#[test]
fn render_from_files_prints_the_resolved_server_or_its_problems() {
    let dir = std::env::temp_dir().join(format!("mettaton-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let egg = std::fs::read_to_string(root().join("tests/eggs/paper.json")).unwrap();
    let imported = template::import(&Egg::parse(&egg).unwrap()).unwrap();
    let t = mettaton::api::ClusterGameTemplate::new("paper", mettaton::api::ClusterGameTemplateSpec(imported.spec));
    let template_file = dir.join("template.yaml");
    std::fs::write(&template_file, serde_yaml::to_string(&t).unwrap()).unwrap();
    let server = |variables: &str| {
        format!(
            "apiVersion: mettaton.dev/v1alpha1\nkind: GameServer\nmetadata:\n  name: mc\n  namespace: games\n  annotations:\n    mettaton.dev/reinstall: again\nspec:\n  template:\n    name: paper\n    kind: ClusterGameTemplate\n    image: Java 17\n  variables: {variables}\n  ports:\n  - name: game\n    containerPort: 25565\n  storage:\n    size: 10Gi\n  resources:\n    limits:\n      memory: 4Gi\n"
        )
    };
    let render = |server_yaml: &str| {
        let file = dir.join("server.yaml");
        std::fs::write(&file, server_yaml).unwrap();
        Command::new(env!("CARGO_BIN_EXE_mettaton"))
            .args(["render", "-f"])
            .arg(&file)
            .arg("--template")
            .arg(&template_file)
            .output()
            .unwrap()
    };

    let out = render(&server("{ SERVER_JARFILE: paper.jar }"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rendered: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let s = &rendered["server"];
    assert_eq!((s["kind"].as_str(), s["metadata"]["name"].as_str()), (Some("GameServer"), Some("mc")));
    assert_eq!(s["metadata"]["namespace"], "games");
    assert_eq!(s["spec"]["image"], "ghcr.io/pelican-eggs/yolks:java_17");
    assert_eq!(
        s["spec"]["command"][2],
        "java -Xms128M -XX:MaxRAMPercentage=95.0 -Dterminal.jline=false -Dterminal.ansi=true -jar ${SERVER_JARFILE}"
    );
    assert!(s["spec"].get("template").is_none() && s["spec"].get("variables").is_none(), "{s}");
    let env: BTreeMap<&str, &str> = s["spec"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!((env["SERVER_JARFILE"], env["SERVER_MEMORY"], env["SERVER_PORT"]), ("paper.jar", "4096", "25565"));
    assert_eq!(s["spec"]["storage"]["mountPath"], "/home/container");
    assert_eq!(s["spec"]["shutdown"]["stop"], "stop");
    assert_eq!(rendered["workingDir"], "/home/container");
    let file = &rendered["configFiles"][0];
    assert_eq!(
        (file["path"].as_str(), file["parser"].as_str()),
        (Some("/home/container/server.properties"), Some("properties"))
    );
    let port = file["edits"].as_array().unwrap().iter().find(|e| e["key"] == "server-port").unwrap();
    assert_eq!(port["value"], "25565");
    assert_eq!(rendered["install"]["image"], "ghcr.io/pelican-eggs/installers:alpine");
    assert_eq!(
        (rendered["install"]["entrypoint"].as_str(), rendered["install"]["token"].as_str()),
        (Some("ash"), Some("again"))
    );
    assert!(rendered["install"]["script"].as_str().unwrap().contains("/mnt/server"));

    let out = render(&server("{ SERVER_JARFILE: paper.zip, NOPE: x }"));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert_eq!(lines[0], "mettaton render: gameserver mc does not resolve:");
    assert_eq!(lines[1], "spec.variables.NOPE: template ClusterGameTemplate/paper has no variable NOPE");
    assert!(lines[2].starts_with("spec.variables.SERVER_JARFILE: paper.zip breaks the rule regex:"), "{stderr}");

    let out = render(&server("{}").replace("kind: ClusterGameTemplate", "kind: GameTemplate"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("names GameTemplate/paper, and ") && stderr.contains("holds ClusterGameTemplate/paper"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The README's templated server (examples/paper.yaml) is what it says: with
/// the Paper egg imported as the README says (`--cluster --port
/// game=25565`), it renders to the egg's server with its variables, port and
/// volume.
#[test]
fn the_readmes_paper_server_renders_from_the_egg_imported_as_it_says() {
    let example = std::fs::read_to_string(root().join("examples/paper.yaml")).unwrap();
    let manifest: String = example.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains(&format!("```yaml\n{manifest}```")), "README shows examples/paper.yaml:\n{manifest}");
    assert!(example.contains("mettaton template import egg-paper.json --cluster --port game=25565 --apply"));
    assert!(readme.contains("mettaton template import egg-paper.json --cluster --port game=25565 --apply"));

    let mettaton = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_mettaton")).args(args).output().unwrap();
    let egg = root().join("tests/eggs/paper.json");
    let out = mettaton(&["template", "import", egg.to_str().unwrap(), "--cluster", "--port", "game=25565"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = std::env::temp_dir().join(format!("mettaton-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let template = dir.join("paper-template.yaml");
    std::fs::write(&template, &out.stdout).unwrap();
    let example_path = root().join("examples/paper.yaml");
    let out = mettaton(&["render", "-f", example_path.to_str().unwrap(), "--template", template.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rendered: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let spec = &rendered["server"]["spec"];
    assert_eq!(spec["image"], "ghcr.io/pelican-eggs/yolks:java_21", "the egg's first image");
    assert_eq!(spec["ports"], json!([{ "name": "game", "containerPort": 25565, "protocol": "TCP" }]));
    assert_eq!(spec["storage"]["size"], "10Gi");
    assert_eq!(spec["storage"]["mountPath"], "/home/container");
    let env: BTreeMap<&str, &str> = spec["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        (env["MINECRAFT_VERSION"], env["SERVER_JARFILE"], env["SERVER_PORT"]),
        ("1.21.4", "server.jar", "25565")
    );
    assert_eq!(spec["health"]["readyLogLine"], json!([")! For help, type "]));
    assert_eq!(rendered["configFiles"][0]["path"], "/home/container/server.properties");
    assert_eq!(rendered["install"]["image"], "ghcr.io/pelican-eggs/installers:alpine");
    let _ = std::fs::remove_dir_all(&dir);
}
