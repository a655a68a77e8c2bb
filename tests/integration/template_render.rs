//! `mettaton render NAME -n NS` on the real API server: a GameServer made
//! from a GameTemplate of its namespace, or from a ClusterGameTemplate, read
//! with its template and printed as the server that runs; the reinstall
//! asked for in its annotation is the install's token; a server whose
//! variables break their rules, or whose template is missing, is refused
//! naming why, one problem a line.

use std::process::{Command, Stdio};

use kube::api::{Patch, PatchParams, PostParams};
use mettaton::api::{ClusterGameTemplate, ClusterGameTemplateSpec, GameServer, GameTemplate};
use mettaton::template::{egg::Egg, import};
use serde_json::{Value, json};

use crate::support::{TestNamespace, ensure_crd, kubeconfig_path, kubectl, root};

fn imported(file: &str) -> import::Imported {
    let text = std::fs::read_to_string(root().join("tests/eggs").join(file)).unwrap();
    import::import(&Egg::parse(&text).unwrap()).unwrap()
}

fn render(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mettaton"))
        .arg("render")
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn rendered(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_yaml::from_slice(&out.stdout).unwrap()
}

/// Deletes the ClusterGameTemplate a test made, whatever happens.
struct ClusterTemplate(String);

impl Drop for ClusterTemplate {
    fn drop(&mut self) {
        let _ =
            kubectl().args(["delete", "clustergametemplate", &self.0, "--ignore-not-found", "--wait=false"]).output();
    }
}

fn server(name: &str, template: Value, variables: Value) -> GameServer {
    serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1",
        "kind": "GameServer",
        "metadata": { "name": name },
        "spec": {
            "template": template,
            "variables": variables,
            "ports": [ { "name": "game", "containerPort": 25565 } ],
            "storage": { "size": "1Gi" },
            "state": "Stopped"
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn render_reads_the_server_and_its_template_from_the_cluster() {
    ensure_crd().await;
    let ns = TestNamespace::new("render").await;
    let paper = imported("paper.json");
    ns.api::<GameTemplate>()
        .create(&PostParams::default(), &GameTemplate::new("paper", paper.spec.clone()))
        .await
        .unwrap();
    let suffix = ns.name.rsplit('-').next().unwrap().to_string();
    let cluster_name = format!("valheim-{suffix}");
    let _cleanup = ClusterTemplate(cluster_name.clone());
    kube::Api::<ClusterGameTemplate>::all(ns.client.clone())
        .create(
            &PostParams::default(),
            &ClusterGameTemplate::new(&cluster_name, ClusterGameTemplateSpec(imported("valheim.json").spec)),
        )
        .await
        .unwrap();
    let servers = ns.api::<GameServer>();
    let pp = PostParams::default();
    servers
        .create(
            &pp,
            &server("mc", json!({ "name": "paper", "image": "Java 17" }), json!({ "SERVER_JARFILE": "paper.jar" })),
        )
        .await
        .unwrap();
    servers
        .create(
            &pp,
            &server(
                "vh",
                json!({ "name": cluster_name, "kind": "ClusterGameTemplate" }),
                json!({ "WORLD": "Midgard" }),
            ),
        )
        .await
        .unwrap();
    servers
        .create(&pp, &server("bad", json!({ "name": "paper" }), json!({ "SERVER_JARFILE": "paper.zip" })))
        .await
        .unwrap();
    servers.create(&pp, &server("lost", json!({ "name": "nope" }), json!({}))).await.unwrap();

    // A GameTemplate of the server's namespace.
    let r = rendered(&render(&["mc", "-n", &ns.name]));
    let spec = &r["server"]["spec"];
    assert_eq!(r["server"]["metadata"]["namespace"], ns.name.as_str());
    assert_eq!(spec["image"], "ghcr.io/pelican-eggs/yolks:java_17");
    assert_eq!(spec["command"][0], "/bin/sh");
    assert!(spec["command"][2].as_str().unwrap().ends_with("-jar ${SERVER_JARFILE}"), "{spec}");
    let env = |spec: &Value, name: &str| {
        spec["env"].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["value"].clone())
    };
    assert_eq!(env(spec, "SERVER_JARFILE"), Some(json!("paper.jar")));
    assert_eq!(env(spec, "SERVER_PORT"), Some(json!("25565")));
    assert!(spec.get("template").is_none() && spec.get("variables").is_none(), "{spec}");
    assert_eq!(spec["state"], "Stopped", "the server's own fields are kept");
    assert_eq!(r["workingDir"], "/home/container");
    assert_eq!(r["configFiles"][0]["path"], "/home/container/server.properties");
    assert_eq!(r["install"]["token"], "initial");

    // The reinstall asked for is the install's token.
    servers
        .patch(
            "mc",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "mettaton.dev/reinstall": "2026-12-04T05:00:00Z" } } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(rendered(&render(&["mc", "-n", &ns.name]))["install"]["token"], "2026-12-04T05:00:00Z");

    // A ClusterGameTemplate.
    let r = rendered(&render(&["vh", "--namespace", &ns.name]));
    let spec = &r["server"]["spec"];
    assert_eq!(spec["image"], "ghcr.io/parkervcp/games:valheim");
    assert_eq!(env(spec, "WORLD"), Some(json!("Midgard")));
    assert!(spec["command"][2].as_str().unwrap().contains("-world \"${WORLD}\""), "{spec}");
    assert_eq!(spec["shutdown"]["stop"], "^C");
    assert!(r.get("configFiles").is_none(), "valheim edits no file: {r}");

    // Refused: a value breaking its rule, a template not found.
    let out = render(&["bad", "-n", &ns.name]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines[0], format!("mettaton render: gameserver {}/bad does not resolve:", ns.name), "{stderr}");
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[1].starts_with("spec.variables.SERVER_JARFILE: paper.zip breaks the rule regex:")
            && lines[1].contains("of template GameTemplate/paper"),
        "{stderr}"
    );
    let out = render(&["lost", "-n", &ns.name]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim_end(),
        format!(
            "mettaton render: spec.template: gameserver {ns}/lost names GameTemplate {ns}/nope, which is not found",
            ns = ns.name
        )
    );
}
