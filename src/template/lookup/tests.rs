use serde_json::json;

use super::*;

fn template() -> GameTemplateSpec {
    serde_json::from_value(json!({
        "game": "Test game",
        "images": [{ "name": "Default", "image": "mettaton.test/game:1" }],
        "startup": [{ "name": "Default", "command": "/game --players {{MAX_PLAYERS}}" }],
        "variables": [
            { "env": "MAX_PLAYERS", "default": "20", "userEditable": true, "rules": "required|integer|between:1,100" }
        ],
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "readyLogLine": ["ready for players"],
        "stop": "stop",
        "install": { "image": "mettaton.test/game:1", "entrypoint": "ash", "script": "echo installed" }
    }))
    .unwrap()
}

fn server(spec: serde_json::Value) -> GameServer {
    serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
        "metadata": { "name": "mc", "namespace": "games", "uid": "u1" },
        "spec": spec
    }))
    .unwrap()
}

fn templated(kind: &str, variables: serde_json::Value) -> GameServer {
    server(json!({ "template": { "name": "tg", "kind": kind }, "variables": variables, "storage": { "size": "1Gi" } }))
}

#[test]
fn a_game_template_is_in_the_servers_namespace_a_cluster_one_in_none() {
    let w = wanted(&templated("GameTemplate", json!({}))).unwrap();
    assert_eq!(w, Wanted { kind: TemplateKind::GameTemplate, namespace: Some("games".into()), name: "tg".into() });
    assert_eq!((w.describe(), w.label()), ("GameTemplate games/tg".into(), "GameTemplate/tg".into()));
    let w = wanted(&templated("ClusterGameTemplate", json!({}))).unwrap();
    assert_eq!(w.namespace, None);
    assert_eq!((w.describe(), w.label()), ("ClusterGameTemplate tg".into(), "ClusterGameTemplate/tg".into()));
    let plain = server(json!({ "image": "game:1", "ports": [{ "name": "game", "containerPort": 7777 }] }));
    assert_eq!(wanted(&plain), None);
}

#[test]
fn a_server_without_a_template_plans_as_it_always_did() {
    let plain = server(json!({ "image": "game:1", "ports": [{ "name": "game", "containerPort": 7777 }] }));
    let planned = plan(&plain, Some(&template())).unwrap();
    assert_eq!(planned, Planned { plan: plan::plan(&plain), spec: plain.spec.clone() });
}

#[test]
fn a_template_found_is_resolved_and_planned() {
    let gs = templated("GameTemplate", json!({ "MAX_PLAYERS": "8" }));
    let planned = plan(&gs, Some(&template())).unwrap();
    let resolved = crate::template::resolve(&gs.spec, "GameTemplate/tg", &template()).unwrap();
    assert_eq!(planned.plan, plan::plan_resolved(&gs, &resolved));
    assert_eq!(planned.spec, resolved.spec);
    assert_eq!(planned.spec.image, "mettaton.test/game:1");
    assert!(planned.plan.install.is_some());
}

#[test]
fn a_missing_template_is_named_with_its_kind_and_namespace() {
    let e = plan(&templated("GameTemplate", json!({})), None).unwrap_err();
    assert_eq!(
        e,
        Unresolved {
            reason: reason::TEMPLATE_NOT_FOUND,
            message: "GameTemplate games/tg not found (spec.template)".into()
        }
    );
    let e = plan(&templated("ClusterGameTemplate", json!({})), None).unwrap_err();
    assert_eq!(e.message, "ClusterGameTemplate tg not found (spec.template)");
}

#[test]
fn problems_of_variables_alone_are_invalid_variables_others_an_invalid_template() {
    let gs = templated("GameTemplate", json!({ "MAX_PLAYERS": "500", "NOPE": "1" }));
    let e = plan(&gs, Some(&template())).unwrap_err();
    assert_eq!(e.reason, reason::INVALID_VARIABLES);
    let problems: Vec<&str> = e.message.split("; ").collect();
    assert_eq!(problems.len(), 2, "{}", e.message);
    assert!(problems.iter().any(|p| p.contains("MAX_PLAYERS") && p.contains("between:1,100")), "{}", e.message);
    assert!(problems.iter().any(|p| p.contains("NOPE")), "{}", e.message);
    // No storage for the install script: the server's use of the template.
    let mut gs = templated("GameTemplate", json!({ "MAX_PLAYERS": "500" }));
    gs.spec.storage = None;
    let e = plan(&gs, Some(&template())).unwrap_err();
    assert_eq!(e.reason, reason::INVALID_TEMPLATE);
    assert!(e.message.contains("spec.storage") && e.message.contains("MAX_PLAYERS"), "{}", e.message);
}
