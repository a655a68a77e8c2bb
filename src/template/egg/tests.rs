use super::*;

fn egg_text(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eggs").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn egg(file: &str) -> Egg {
    Egg::parse(&egg_text(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn envs(egg: &Egg) -> Vec<&str> {
    egg.variables.iter().map(|v| v.env.as_str()).collect()
}

fn variable<'a>(egg: &'a Egg, env: &str) -> &'a Variable {
    egg.variables.iter().find(|v| v.env == env).unwrap_or_else(|| panic!("no {env}"))
}

/// What each of the six real eggs says (read off the files, see
/// tests/eggs/SOURCES.md), against what the reader makes of it.
#[test]
fn paper_ptdl_v2() {
    let e = egg("paper.json");
    assert_eq!(e.format, EggFormat::PTDL_v2);
    assert_eq!(e.name, "Paper");
    // The egg's own order: Java 21 first, the default.
    let labels: Vec<&str> = e.images.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["Java 21", "Java 17", "Java 16", "Java 11", "Java 8"]);
    assert_eq!(e.images[0].1, "ghcr.io/pelican-eggs/yolks:java_21");
    assert_eq!(e.startup.len(), 1);
    assert!(e.startup[0].1.ends_with("-jar {{SERVER_JARFILE}}"), "{:?}", e.startup);
    assert_eq!(e.done, [")! For help, type "]);
    assert_eq!(e.stop.as_deref(), Some("stop"));
    assert_eq!(e.files.len(), 1);
    let f = &e.files[0];
    assert_eq!((f.path.as_str(), f.parser), ("server.properties", ConfigParser::Properties));
    let keys: Vec<&str> = f.find.iter().map(|(k, _)| k.as_str()).collect();
    // The egg's order, not serde_json's sorted one.
    assert_eq!(keys, ["server-ip", "server-port", "query.port"]);
    assert_eq!(f.find[1].1, "{{server.build.default.port}}");
    let install = e.install.as_ref().unwrap();
    assert_eq!(
        (install.image.as_str(), install.entrypoint.as_str()),
        ("ghcr.io/pelican-eggs/installers:alpine", "ash")
    );
    assert!(install.script.starts_with("#!/bin/ash") && !install.script.contains('\r'), "{}", &install.script[..40]);
    assert_eq!(envs(&e), ["BUILD_NUMBER", "DL_PATH", "MINECRAFT_VERSION", "SERVER_JARFILE"]);
    let jar = variable(&e, "SERVER_JARFILE");
    assert_eq!((jar.default.as_str(), jar.user_editable), ("server.jar", true));
    assert_eq!(jar.rules.check("server.jar"), Ok(()));
    assert_eq!(jar.rules.check("server.sh").unwrap_err().rule, r"regex:/^([\w\d._-]+)(\.jar)$/");
    assert_eq!(e.features, ["eula", "java_version", "pid_limit"]);
    assert!(e.left_out.iter().any(|l| l.starts_with("features: `eula`")), "{:?}", e.left_out);
    assert_eq!(e.update_url, None);
}

#[test]
fn ark_ptdl_v1() {
    let e = egg("ark-ptdl-v1.json");
    assert_eq!(e.format, EggFormat::PTDL_v1);
    assert_eq!(
        e.images,
        [(
            "quay.io/parkervcp/pterodactyl-images:debian_source".into(),
            "quay.io/parkervcp/pterodactyl-images:debian_source".into()
        )]
    );
    // config.* as JSON strings with \r\n.
    assert_eq!(e.done, ["Waiting commands for 127.0.0.1:"]);
    assert_eq!(e.stop.as_deref(), Some("^C"));
    assert!(e.files.is_empty());
    assert!(e.startup[0].1.contains("${RCON_PORT}"));
    assert_eq!(variable(&e, "ARK_PASSWORD").rules_text, "nullable|alpha_dash|between:1,100");
    assert_eq!(variable(&e, "AUTO_UPDATE").rules.check("true").unwrap_err().rule, "boolean");
}

#[test]
fn valheim_plcn_v3() {
    let e = egg("valheim.json");
    assert_eq!(e.format, EggFormat::PLCN_v3);
    assert_eq!(e.startup.len(), 1);
    assert_eq!(e.startup[0].0, "Default");
    assert!(e.startup[0].1.starts_with("./valheim_server.x86_64 -nographics"));
    assert_eq!(e.images[0].1, "ghcr.io/parkervcp/games:valheim");
    assert_eq!(e.done, ["DungeonDB Start"]);
    assert_eq!(
        e.update_url.as_deref(),
        Some(
            "https://raw.githubusercontent.com/pelican-eggs/games-steamcmd/refs/heads/main/valheim/valheim_vanilla/egg-valheim.json"
        )
    );
    // Pelican's `sort` orders the variables.
    let sorts: Vec<i64> = {
        let doc: Value = serde_json::from_str(&egg_text("valheim.json")).unwrap();
        let mut s: Vec<(i64, String)> = doc["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["sort"].as_i64().unwrap(), v["env_variable"].as_str().unwrap().to_string()))
            .collect();
        s.sort();
        assert_eq!(envs(&e), s.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>());
        s.into_iter().map(|(n, _)| n).collect()
    };
    assert!(sorts.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(variable(&e, "PASSWORD").rules.check("four").unwrap_err().rule, "min:5");
}

#[test]
fn night_of_the_dead_plcn_v1() {
    let e = egg("night-of-the-dead.json");
    assert_eq!(e.format, EggFormat::PLCN_v1);
    assert_eq!(e.done, ["Successfully updated session", "Start Session Complete"]);
    let f = &e.files[0];
    assert_eq!((f.path.as_str(), f.parser), ("LF/Saved/Config/ServerSettings.ini", ConfigParser::Ini));
    assert!(
        f.find.iter().any(|(k, v)| k == "ServerSettings.ServerName" && v == "{{server.environment.SERVER_NAME}}"),
        "{:?}",
        f.find
    );
    assert_eq!(variable(&e, "DIFFICULTY").rules.check("Legend"), Ok(()));
    // The one default that breaks its own rule: the admin password, left for the user.
    let broken: Vec<&str> =
        e.variables.iter().filter(|v| v.rules.check(&v.default).is_err()).map(|v| v.env.as_str()).collect();
    assert_eq!(broken, ["SERVER_ADMIN_PASSWORD"]);
}

#[test]
fn empyrion_ptdl_v2_yaml_parser_and_a_stop_with_an_argument() {
    let e = egg("empyrion.json");
    assert_eq!(e.stop.as_deref(), Some("saveandexit 0"));
    let f = &e.files[0];
    assert_eq!((f.path.as_str(), f.parser), ("empyrion/dedicated.yaml", ConfigParser::Yaml));
    assert!(f.find.iter().any(|(k, v)| k == "ServerConfig.Srv_Port" && v == "{{server.build.default.port}}"));
    assert!(e.features.is_empty());
}

#[test]
fn arma_reforger_plcn_v2_json_parser() {
    let e = egg("arma-reforger.json");
    assert_eq!(e.format, EggFormat::PLCN_v2);
    let f = &e.files[0];
    assert_eq!((f.path.as_str(), f.parser), ("config.json", ConfigParser::Json));
    assert!(f.find.iter().any(|(k, v)| k == "bindPort" && v == "{{server.allocations.default.port}}"), "{:?}", f.find);
    assert_eq!(variable(&e, "MAX_PLAYERS").rules.check("300").unwrap_err().rule, "between:1,256");
    assert_eq!(variable(&e, "MAX_FPS").rules.check("0").unwrap_err().rule, "gt:0");
}

#[test]
fn every_egg_reads_and_its_defaults_pass_their_rules_but_those_left_to_the_user() {
    for file in [
        "paper.json",
        "ark-ptdl-v1.json",
        "valheim.json",
        "night-of-the-dead.json",
        "empyrion.json",
        "arma-reforger.json",
    ] {
        let e = egg(file);
        assert!(!e.variables.is_empty() && !e.startup.is_empty() && !e.images.is_empty(), "{file}");
        for v in &e.variables {
            if let Err(b) = v.rules.check(&v.default) {
                assert!(v.default.is_empty() && v.rules.required(), "{file}: {}: default {:?} {b}", v.env, v.default);
            }
        }
    }
}

#[test]
fn yaml_and_config_sections_as_maps_read_the_same() {
    // As YAML reads it: maps in the file's order (serde_json's are sorted).
    let text = egg_text("arma-reforger.json");
    let mut maps: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for key in ["files", "startup", "logs"] {
        let section = maps["config"][key].as_str().unwrap().to_string();
        maps["config"][key] = serde_yaml::from_str(&section).unwrap();
    }
    let yaml = serde_yaml::to_string(&maps).unwrap();
    assert!(yaml.find("bindPort").unwrap() < yaml.find("game.name").unwrap(), "the egg's order kept");
    let (a, b) = (Egg::parse(&text).unwrap(), Egg::parse(&yaml).unwrap());
    assert_eq!((a.files, a.done, a.stop, a.images, a.startup), (b.files, b.done, b.stop, b.images, b.startup));
    assert_eq!(envs(&Egg::parse(&text).unwrap()), envs(&Egg::parse(&yaml).unwrap()));
}

/// A change made to a good egg.
type Change = Box<dyn Fn(&mut Value)>;

#[test]
fn what_is_wrong_is_named_by_its_field() {
    let base: Value = serde_json::from_str(&egg_text("paper.json")).unwrap();
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|e| e["meta"]["version"] = "PTDL_v9".into()), "meta.version: `PTDL_v9` is not a format"),
        (Box::new(|e| e["docker_images"] = serde_json::json!({})), "docker_images: the egg names no image"),
        (Box::new(|e| e["startup"] = "".into()), "startup: the egg has no start command"),
        (
            Box::new(|e| e["config"]["files"] = r#"{"a.cfg": {"parser": "toml", "find": {}}}"#.into()),
            "config.files.a.cfg.parser: `toml` is not a parser",
        ),
        (Box::new(|e| e["config"]["startup"] = "{not json".into()), "config.startup: a string that is not JSON"),
        (
            Box::new(|e| e["variables"][1]["rules"] = "required|sometimes".into()),
            "variables[1].rules (DL_PATH): rule `sometimes`",
        ),
        (
            Box::new(|e| e["variables"][2]["env_variable"] = "BUILD_NUMBER".into()),
            "variables[2].env_variable: `BUILD_NUMBER` is defined twice",
        ),
        (Box::new(|e| e["variables"][0]["env_variable"] = "1X".into()), "variables[0].env_variable: `1X` is not"),
        (Box::new(|e| e["scripts"]["installation"]["container"] = "".into()), "scripts.installation.container"),
    ];
    for (change, needle) in cases {
        let mut e = base.clone();
        change(&mut e);
        let err = Egg::parse(&e.to_string()).expect_err(needle);
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(Egg::parse("[1, 2").unwrap_err().contains("neither JSON"));
}

/// Nothing of an egg is dropped silently: each key the reader does not take
/// (of the egg, and of its variables) is in `left_out`, by name.
#[test]
fn every_key_not_read_is_reported() {
    let read = [
        "meta",
        "name",
        "author",
        "description",
        "docker_images",
        "images",
        "image",
        "startup",
        "startup_commands",
        "config",
        "scripts",
        "variables",
        "features",
        "file_denylist",
    ];
    let variable_read =
        ["env_variable", "name", "description", "default_value", "user_viewable", "user_editable", "rules", "sort"];
    let mut seen = 0;
    for file in [
        "paper.json",
        "ark-ptdl-v1.json",
        "valheim.json",
        "night-of-the-dead.json",
        "empyrion.json",
        "arma-reforger.json",
    ] {
        let e = egg(file);
        let doc: Value = serde_json::from_str(&egg_text(file)).unwrap();
        for (key, value) in doc.as_object().unwrap() {
            if !read.contains(&key.as_str()) && !value.is_null() {
                seen += 1;
                assert!(
                    e.left_out.iter().any(|l| l.starts_with(&format!("{key}: "))),
                    "{file}: {key}: {:?}",
                    e.left_out
                );
            }
        }
        for v in doc["variables"].as_array().unwrap() {
            for (key, value) in v.as_object().unwrap() {
                if !variable_read.contains(&key.as_str()) && !value.is_null() {
                    seen += 1;
                    let line = e.left_out.iter().find(|l| l.starts_with(&format!("variables[*].{key}: "))).unwrap();
                    assert!(line.contains(v["env_variable"].as_str().unwrap()), "{file}: {line}");
                }
            }
        }
    }
    assert!(seen > 20, "the eggs have such keys ({seen})");
    // A key the reader does not know at all, in the egg and in a file.
    let mut doc: Value = serde_json::from_str(&egg_text("empyrion.json")).unwrap();
    doc["script_hooks"] = "x".into();
    doc["scripts"]["installation"]["timeout"] = 60.into();
    let e = Egg::parse(&doc.to_string()).unwrap();
    assert!(e.left_out.contains(&"script_hooks: not read by mettaton".to_string()), "{:?}", e.left_out);
    assert!(e.left_out.contains(&"scripts.installation.timeout: not read by mettaton".to_string()), "{:?}", e.left_out);
}
