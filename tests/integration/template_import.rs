//! Game templates (issue 16) on the real API server: the six real eggs of
//! tests/eggs/ imported are accepted as GameTemplates and
//! ClusterGameTemplates and read back unchanged (nothing pruned), bad
//! templates are refused naming the field, `kubectl explain` shows the
//! documented schema, and `mettaton template import` as a binary prints YAML
//! that round-trips, applies, and fails naming the egg's field.

use std::process::{Command, Stdio};
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use mettaton::api::{ClusterGameTemplate, ClusterGameTemplateSpec, GameTemplate, GameTemplateSpec};
use mettaton::template::{egg::Egg, import};
use serde_json::{Value, json};

use crate::support::{
    TestNamespace, api_status, ensure_crd, eventually, kubeconfig_path, kubectl, output, root, succeed,
};

const EGGS: [&str; 6] =
    ["paper.json", "ark-ptdl-v1.json", "valheim.json", "night-of-the-dead.json", "empyrion.json", "arma-reforger.json"];

fn egg_path(file: &str) -> std::path::PathBuf {
    root().join("tests/eggs").join(file)
}

fn imported(file: &str) -> import::Imported {
    import::import(&Egg::parse(&std::fs::read_to_string(egg_path(file)).unwrap()).unwrap()).unwrap()
}

/// Deletes the ClusterGameTemplates a test made, whatever happens.
struct ClusterTemplates(Vec<String>);

impl Drop for ClusterTemplates {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ =
                kubectl().args(["delete", "clustergametemplate", name, "--ignore-not-found", "--wait=false"]).output();
        }
    }
}

#[tokio::test]
async fn the_six_eggs_imported_are_accepted_as_both_kinds_and_read_back_unchanged() {
    ensure_crd().await;
    let ns = TestNamespace::new("templates").await;
    let suffix = ns.name.rsplit('-').next().unwrap().to_string();
    let cluster_api = Api::<ClusterGameTemplate>::all(ns.client.clone());
    let mut made = ClusterTemplates(Vec::new());
    for file in EGGS {
        let t = imported(file);
        let name = t.name.clone().unwrap();
        let created = ns
            .api::<GameTemplate>()
            .create(&PostParams::default(), &GameTemplate::new(&name, t.spec.clone()))
            .await
            .unwrap_or_else(|e| panic!("{file}: the API server refuses the GameTemplate: {e}"));
        assert_eq!(created.spec, t.spec, "{file}: the API server kept every field as sent");
        let cluster_name = format!("{name}-{suffix}");
        made.0.push(cluster_name.clone());
        let created = cluster_api
            .create(
                &PostParams::default(),
                &ClusterGameTemplate::new(&cluster_name, ClusterGameTemplateSpec(t.spec.clone())),
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: the API server refuses the ClusterGameTemplate: {e}"));
        assert_eq!(created.spec.0, t.spec, "{file}");
    }
    // The printer columns: the game and the default image.
    let table = succeed(kubectl().args(["-n", &ns.name, "get", "gametemplates", "paper"]));
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.starts_with("paper") && row.contains("Paper") && row.contains("ghcr.io/pelican-eggs/yolks:java_21"),
        "{table}"
    );
    for name in &made.0 {
        cluster_api.delete(name, &DeleteParams::default()).await.unwrap();
    }
}

/// A change made to a good template's spec.
type Change = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn bad_templates_are_refused_naming_the_field() {
    ensure_crd().await;
    let ns = TestNamespace::new("templates").await;
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("mettaton.dev", "v1alpha1", "GameTemplate"));
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    let good = serde_json::to_value(&imported("paper.json").spec).unwrap();
    let cases: Vec<(&str, Change, &[&str])> = vec![
        ("no image", Box::new(|s| s["images"] = json!([])), &["spec.images"]),
        (
            "an image twice",
            Box::new(|s| s["images"][1]["name"] = s["images"][0]["name"].clone()),
            &["spec.images[1]", "Duplicate value"],
        ),
        ("an image with a space", Box::new(|s| s["images"][0]["image"] = json!("a b")), &["spec.images[0].image"]),
        (
            "a bad parser",
            Box::new(|s| s["configFiles"][0]["parser"] = json!("toml")),
            &["spec.configFiles[0].parser", "toml"],
        ),
        (
            "an edit with a value and replacements",
            Box::new(|s| s["configFiles"][0]["edits"][0]["replace"] = json!([{ "match": "a", "value": "b" }])),
            &["spec.configFiles[0].edits[0]", "an edit takes exactly one of value or replace"],
        ),
        (
            "a variable twice",
            Box::new(|s| s["variables"][1]["env"] = s["variables"][0]["env"].clone()),
            &["spec.variables[1]", "Duplicate value"],
        ),
        ("a bad env name", Box::new(|s| s["variables"][0]["env"] = json!("1X")), &["spec.variables[0].env"]),
        ("a stop of two lines", Box::new(|s| s["stop"] = json!("save\nstop")), &["spec.stop", "one console line"]),
        (
            "no start command",
            Box::new(|s| drop(s.as_object_mut().unwrap().remove("startup"))),
            &["spec.startup", "Required"],
        ),
    ];
    for (case, edit, expected) in cases {
        let mut spec = good.clone();
        edit(&mut spec);
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameTemplate", "metadata": { "name": "bad" }, "spec": spec,
        }))
        .unwrap();
        let err = api.create(&PostParams::default(), &object).await.expect_err(case);
        let status = api_status(&err).unwrap_or_else(|| panic!("{case}: {err}"));
        assert_eq!(status.code, 422, "{case}: {}", status.message);
        for e in expected {
            assert!(status.message.contains(e), "{case}: {e:?} not in {}", status.message);
        }
    }
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameTemplate", "metadata": { "name": "pa.per" }, "spec": good,
    }))
    .unwrap();
    let err = api.create(&PostParams::default(), &object).await.expect_err("a name with a dot");
    assert!(err.to_string().contains("metadata.name must be a DNS label"), "{err}");
}

#[tokio::test]
async fn kubectl_explain_shows_the_documented_schema() {
    ensure_crd().await;
    let explained = eventually("kubectl explain to know gametemplates", Duration::from_secs(30), || async {
        let out = output(kubectl().args(["explain", "gametemplate.spec.variables"]));
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    })
    .await;
    let flat = explained.split_whitespace().collect::<Vec<_>>().join(" ");
    for said in [
        "keyed by `env`",
        "Laravel validation rules joined by `|`",
        "The API server does not check them (CEL cannot run Laravel rules): mettaton does, when it reads the template",
        "userEditable",
    ] {
        assert!(flat.contains(said), "{said:?} not in:\n{explained}");
    }
    let cluster = succeed(kubectl().args(["explain", "clustergametemplate.spec.configFiles.edits.replace"]));
    assert!(
        cluster.split_whitespace().collect::<Vec<_>>().join(" ").contains("Conditional replacements, at most 32"),
        "{cluster}"
    );
}

fn mettaton(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mettaton"))
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_cli_prints_yaml_that_round_trips_applies_and_names_a_bad_eggs_field() {
    ensure_crd().await;
    let ns = TestNamespace::new("templates").await;
    let paper = egg_path("paper.json");
    let paper = paper.to_str().unwrap();

    // Printed: a GameTemplate, its spec the library's, the report on stderr.
    let out = mettaton(&["template", "import", paper, "-n", &ns.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let printed: GameTemplate = serde_yaml::from_str(&yaml).unwrap();
    let library = imported("paper.json");
    assert_eq!(printed.metadata.name.as_deref(), Some("paper"));
    assert_eq!(printed.metadata.namespace.as_deref(), Some(ns.name.as_str()));
    assert_eq!(printed.spec, library.spec);
    assert_eq!(serde_yaml::to_string(&printed).unwrap(), yaml, "the YAML round-trips");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let reported: Vec<&str> =
        stderr.lines().map(|l| l.strip_prefix("left out: ").unwrap_or_else(|| panic!("{l}"))).collect();
    assert_eq!(reported, library.report);

    // kubectl applies what was printed, and the API server keeps it whole.
    let mut apply = kubectl()
        .args(["apply", "--server-side", "--field-manager=mettaton-tests", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(apply.stdin.as_mut().unwrap(), yaml.as_bytes()).unwrap();
    let applied = apply.wait_with_output().unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let read: GameTemplate = ns.api().get("paper").await.unwrap();
    assert_eq!(read.spec, library.spec);

    // --apply, a name of our own: server-side apply as `mettaton`.
    let valheim = egg_path("valheim.json");
    let out = mettaton(&["template", "import", valheim.to_str().unwrap(), "--name", "vh", "-n", &ns.name, "--apply"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("gametemplate {}/vh applied", ns.name));
    let read: GameTemplate = ns.api().get("vh").await.unwrap();
    assert_eq!(read.spec, imported("valheim.json").spec);
    let managers: Vec<String> =
        read.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert_eq!(managers, ["mettaton"]);
    // Again: unchanged, still accepted.
    assert!(
        mettaton(&["template", "import", valheim.to_str().unwrap(), "--name", "vh", "-n", &ns.name, "--apply"])
            .status
            .success()
    );

    // --cluster: a ClusterGameTemplate.
    let out = mettaton(&["template", "import", paper, "--cluster", "--name", "paper-x"]);
    let cluster: ClusterGameTemplate = serde_yaml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!((cluster.metadata.name.as_deref(), cluster.metadata.namespace.as_deref()), (Some("paper-x"), None));
    let spec: &GameTemplateSpec = &cluster.spec;
    assert_eq!(spec, &library.spec);

    // Bad eggs and names: exit code 1, the egg's field named.
    let dir = std::env::temp_dir().join(&ns.name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut egg: Value = serde_json::from_str(&std::fs::read_to_string(egg_path("paper.json")).unwrap()).unwrap();
    egg["config"]["files"] = json!({ "server.properties": { "parser": "toml", "find": {} } }).to_string().into();
    let bad = dir.join("bad-parser.json");
    std::fs::write(&bad, egg.to_string()).unwrap();
    let mut egg: Value = serde_json::from_str(&std::fs::read_to_string(egg_path("paper.json")).unwrap()).unwrap();
    egg["variables"][1]["rules"] = "required|sometimes".into();
    let bad_rule = dir.join("bad-rule.json");
    std::fs::write(&bad_rule, egg.to_string()).unwrap();
    for (args, needle) in [
        (
            vec!["template", "import", bad.to_str().unwrap()],
            "config.files.server.properties.parser: `toml` is not a parser",
        ),
        (vec!["template", "import", bad_rule.to_str().unwrap()], "variables[1].rules (DL_PATH): rule `sometimes`"),
        (vec!["template", "import", paper, "--name", "Not_A_Label"], "--name: `Not_A_Label` is not a DNS label"),
        (vec!["template", "import", "/nonexistent/egg.json"], "/nonexistent/egg.json: "),
    ] {
        let out = mettaton(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {needle:?} not in {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing printed");
    }

    // `template check`: a hand-written template with a rule mettaton does not know.
    let mut t = printed.clone();
    t.spec.variables[0].rules = "required|uuid".into();
    let file = dir.join("template.yaml");
    std::fs::write(&file, serde_yaml::to_string(&t).unwrap()).unwrap();
    let out = mettaton(&["template", "check", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("spec.variables[BUILD_NUMBER].rules: rule `uuid`"), "{stderr}");
    std::fs::write(&file, &yaml).unwrap();
    let out = mettaton(&["template", "check", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
