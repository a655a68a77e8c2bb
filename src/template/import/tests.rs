use serde_yaml::Value as Yaml;

use super::*;
use crate::api::ConfigParser;
use crate::template::check;

const EGGS: [&str; 6] =
    ["paper.json", "ark-ptdl-v1.json", "valheim.json", "night-of-the-dead.json", "empyrion.json", "arma-reforger.json"];

fn text(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eggs").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn imported(file: &str) -> Imported {
    import(&Egg::parse(&text(file)).unwrap_or_else(|e| panic!("{file}: {e}"))).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The egg as YAML reads it (a JSON egg is YAML too): maps in the file's
/// order, independently of the egg reader, whose JSON maps are sorted.
fn raw(file: &str) -> Yaml {
    serde_yaml::from_str(&text(file)).unwrap()
}

fn s(v: &Yaml) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// A `config.*` section, a JSON string in these eggs, read as YAML (ordered).
fn section(egg: &Yaml, key: &str) -> Yaml {
    match &egg["config"][key] {
        Yaml::String(text) => serde_yaml::from_str(text).unwrap(),
        other => other.clone(),
    }
}

/// Each template against what its egg says, field by field, read off the
/// egg's own JSON.
#[test]
fn every_egg_imports_as_it_says() {
    for file in EGGS {
        let t = imported(file);
        let egg = raw(file);
        let spec = &t.spec;
        assert_eq!(spec.game, s(&egg["name"]), "{file}");

        // The images, in the egg's order.
        let want: Vec<(String, String)> = match egg.get("docker_images") {
            Some(Yaml::Mapping(m)) => m.iter().map(|(k, v)| (s(k).to_string(), s(v).to_string())).collect(),
            _ => egg["images"].as_sequence().unwrap().iter().map(|i| (s(i).to_string(), s(i).to_string())).collect(),
        };
        let got: Vec<(String, String)> = spec.images.iter().map(|i| (i.name.clone(), i.image.clone())).collect();
        assert_eq!(got, want, "{file}: images");

        // The start commands.
        let want: Vec<(String, String)> = match egg.get("startup_commands") {
            Some(Yaml::Mapping(m)) => m.iter().map(|(k, v)| (s(k).to_string(), s(v).to_string())).collect(),
            _ => vec![("Default".to_string(), s(&egg["startup"]).to_string())],
        };
        let got: Vec<(String, String)> = spec.startup.iter().map(|c| (c.name.clone(), c.command.clone())).collect();
        assert_eq!(got, want, "{file}: startup");

        // The stop and the done lines.
        let stop = s(&egg["config"]["stop"]);
        assert_eq!(spec.stop.as_deref(), Some(stop), "{file}: stop");
        let done = &section(&egg, "startup")["done"];
        let done: Vec<&str> = match done {
            Yaml::Sequence(list) => list.iter().map(s).collect(),
            one => vec![s(one)],
        };
        assert_eq!(spec.ready_log_line, done, "{file}: readyLogLine");

        // The variables: Pelican's `sort` where the egg has it, else its order.
        let mut vars: Vec<&Yaml> = egg["variables"].as_sequence().unwrap().iter().collect();
        vars.sort_by_key(|v| v.get("sort").and_then(Yaml::as_i64).unwrap_or(i64::MAX));
        assert_eq!(spec.variables.len(), vars.len(), "{file}");
        for (got, want) in spec.variables.iter().zip(vars) {
            let env = s(&want["env_variable"]);
            assert_eq!(got.env, env, "{file}");
            assert_eq!(got.default, s(&want["default_value"]), "{file}: {env}.default");
            assert_eq!(got.title, s(&want["name"]), "{file}: {env}.title");
            assert_eq!(got.description, s(&want["description"]).replace("\r\n", "\n"), "{file}: {env}.description");
            let flag = |key: &str| want[key].as_bool().unwrap_or_else(|| want[key].as_i64() == Some(1));
            assert_eq!(
                (got.user_editable, got.user_viewable),
                (flag("user_editable"), flag("user_viewable")),
                "{file}: {env}"
            );
            let rules = match &want["rules"] {
                Yaml::Sequence(list) => list.iter().map(s).collect::<Vec<_>>().join("|"),
                one => s(one).to_string(),
            };
            assert_eq!(got.rules, rules, "{file}: {env}.rules");
        }

        // The config files: each `find` entry an edit, in the egg's order.
        let files = section(&egg, "files");
        let files = files.as_mapping().unwrap();
        assert_eq!(spec.config_files.len(), files.len(), "{file}");
        for (got, (path, want)) in spec.config_files.iter().zip(files) {
            assert_eq!(got.path, s(path), "{file}");
            let parser = serde_yaml::to_value(got.parser).unwrap();
            assert_eq!(s(&parser), s(&want["parser"]).replace("yml", "yaml"), "{file}: {}", got.path);
            let find = want["find"].as_mapping().unwrap();
            let edits: Vec<(&str, Option<&str>)> =
                got.edits.iter().map(|e| (e.key.as_str(), e.value.as_deref())).collect();
            // A number or boolean of the egg is kept as its text.
            let scalar = |v: &Yaml| match v {
                Yaml::String(text) => text.clone(),
                Yaml::Bool(b) => b.to_string(),
                other => panic!("{file}: {other:?}"),
            };
            let find: Vec<(String, String)> = find.iter().map(|(k, v)| (s(k).to_string(), scalar(v))).collect();
            let edits: Vec<(String, String)> =
                edits.into_iter().map(|(k, v)| (k.to_string(), v.unwrap().to_string())).collect();
            assert_eq!(edits, find, "{file}: {}", got.path);
        }

        // The install script.
        let i = &egg["scripts"]["installation"];
        let install = spec.install.as_ref().unwrap();
        assert_eq!(install.image, s(&i["container"]), "{file}");
        assert_eq!(install.entrypoint, s(&i["entrypoint"]), "{file}");
        assert_eq!(install.script, s(&i["script"]).replace("\r\n", "\n"), "{file}");

        // Where it came from.
        let source = spec.source.as_ref().unwrap();
        assert_eq!(s(&serde_yaml::to_value(source.format).unwrap()), s(&egg["meta"]["version"]), "{file}");
        assert_eq!(source.update_url.as_deref(), egg["meta"]["update_url"].as_str(), "{file}");
        assert_eq!((source.name.as_str(), source.author.as_str()), (s(&egg["name"]), s(&egg["author"])), "{file}");

        // What the egg reader left out is all in the report.
        let e = Egg::parse(&text(file)).unwrap();
        assert!(e.left_out.iter().all(|l| t.report.contains(l)), "{file}: {:?}", t.report);
        if file == "arma-reforger.json" {
            let line = "config.files.config.json.find.game.gameProperties.fastValidation: the JSON true is kept as the text `true`";
            assert!(t.report.iter().any(|l| l == line), "{:?}", t.report);
        }

        // mettaton reads the template it made, and it survives YAML.
        check(spec).unwrap_or_else(|p| panic!("{file}: {p:?}"));
        let yaml = serde_yaml::to_string(spec).unwrap();
        assert_eq!(&serde_yaml::from_str::<GameTemplateSpec>(&yaml).unwrap(), spec, "{file}");
    }
}

#[test]
fn names_are_the_eggs_made_dns_labels() {
    let names: Vec<Option<String>> = EGGS.iter().map(|f| imported(f).name).collect();
    let want = [
        "paper",
        "ark-survival-evolved",
        "valheim",
        "night-of-the-dead",
        "empyrion-galactic-survival",
        "arma-reforger",
    ];
    assert_eq!(names, want.map(|n| Some(n.to_string())));
    assert_eq!(dns_label("  Team Fortress 2 (TF2)!  ").as_deref(), Some("team-fortress-2-tf2"));
    assert_eq!(dns_label("Ünreal_Tournament--99").as_deref(), Some("nreal-tournament-99"));
    assert_eq!(dns_label(&format!("{}-b", "a".repeat(62))).as_deref(), Some("a".repeat(62).as_str()));
    assert_eq!(dns_label("日本語"), None);
    for (name, ok) in
        [("paper", true), ("a-1", true), ("-a", false), ("a-", false), ("A", false), ("a.b", false), ("", false)]
    {
        assert_eq!(is_dns_label(name), ok, "{name}");
    }
    assert!(!is_dns_label(&"a".repeat(64)));
}

/// What the conversion itself does not carry as the egg has it is reported:
/// placeholders that are no variable of the egg's, and shell references.
#[test]
fn placeholders_and_shell_references_are_reported() {
    let ark = imported("ark-ptdl-v1.json");
    let line = ark.report.iter().find(|l| l.contains("shell references")).expect("ark's ${VAR}");
    assert!(line.starts_with("startup: `${RCON_PORT}`, `${ARK_ADMIN_PASSWORD}`"), "{line}");
    let valheim = imported("valheim.json");
    assert!(
        valheim.report.iter().any(|l| l.starts_with("startup_commands.Default: `{{SERVER_PORT}}` kept as written")),
        "{:?}",
        valheim.report
    );
    let paper = imported("paper.json");
    assert!(!paper.report.iter().any(|l| l.starts_with("startup")), "{:?}", paper.report);
    assert_eq!(shell_references("a ${X} $Y ${1} $$ $(( ${X}*2 )) ${Z:-1} $!"), ["${X}", "$Y"]);
    assert_eq!(
        placeholders("{{A}} {{ B }} {{A}} {{server.build.default.port}} {{}} {{a b}}"),
        ["A", "B", "server.build.default.port"]
    );
}

/// A change made to a good egg.
type Change = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn what_does_not_fit_a_template_is_named_by_the_eggs_field() {
    let base: serde_json::Value = serde_json::from_str(&text("paper.json")).unwrap();
    let files = |find: serde_json::Value| {
        serde_json::json!({ "server.properties": { "parser": "properties", "find": find } }).to_string()
    };
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|e| e["docker_images"]["Java 21"] = "ghcr.io/x y".into()),
            "docker_images.Java 21: `ghcr.io/x y` is not an image reference",
        ),
        (
            Box::new(|e| e["description"] = "d".repeat(16385).into()),
            "description: 16385 characters, a template takes at most 16384",
        ),
        (
            Box::new(|e| e["variables"][0]["default_value"] = "x".repeat(32769).into()),
            "variables[BUILD_NUMBER].default_value: 32769 characters",
        ),
        (
            Box::new(move |e| e["config"]["files"] = files(serde_json::json!({ "motd": ["a"] })).into()),
            "config.files.server.properties.find.motd: a list or map is no value",
        ),
        (Box::new(|e| e["config"]["stop"] = "save\nstop".into()), "config.stop: more than one line"),
        (Box::new(|e| e["name"] = "".into()), "name: empty"),
    ];
    for (change, needle) in cases {
        let mut e = base.clone();
        change(&mut e);
        let err = import(&Egg::parse(&e.to_string()).unwrap()).expect_err(needle);
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn conditional_replacements_and_non_string_values_become_edits() {
    let mut egg: serde_json::Value = serde_json::from_str(&text("paper.json")).unwrap();
    egg["config"]["files"] = serde_json::json!({
        "config.yml": { "parser": "yml", "find": {
            "servers.*.address": { "regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$": "{{config.docker.interface}}$2", "": "x" },
            "online_mode": true,
            "gone": null,
        } }
    });
    let t = import(&Egg::parse(&egg.to_string()).unwrap()).unwrap();
    let f = &t.spec.config_files[0];
    assert_eq!(f.parser, ConfigParser::Yaml);
    let by_key = |k: &str| f.edits.iter().find(|e| e.key == k).unwrap_or_else(|| panic!("{k}: {:?}", f.edits));
    let replace = by_key("servers.*.address").replace.as_ref().unwrap();
    assert_eq!(replace.len(), 2);
    assert!(replace.iter().any(|r| r.match_.starts_with("regex:^(127") && r.value == "{{config.docker.interface}}$2"));
    assert_eq!(by_key("online_mode").value.as_deref(), Some("true"));
    assert!(
        t.report
            .iter()
            .any(|l| l == "config.files.config.yml.find.online_mode: the JSON true is kept as the text `true`"),
        "{:?}",
        t.report
    );
    assert!(!f.edits.iter().any(|e| e.key == "gone"));
    assert!(t.report.iter().any(|l| l.starts_with("config.files.config.yml.find.gone: null")), "{:?}", t.report);
}
