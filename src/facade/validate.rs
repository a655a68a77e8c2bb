//! Checks of a GameServer spec for backends with no API server in front of
//! them (the swarm facade and CLI): the CRD's own schema and CEL rules, as
//! [`crate::validation`] evaluates them, with the messages the API server
//! gives, naming the field. No rule of the CRD is repeated here.

use crate::api::GameServerSpec;
use crate::validation::GAMESERVER;

/// Every problem of the spec, each naming its field; empty when it is valid.
pub fn problems(spec: &GameServerSpec) -> Vec<String> {
    GAMESERVER.validate_spec(&to_json(spec)).iter().map(ToString::to_string).collect()
}

/// What an update from `old` to `new` may not do: what the CRD's transition
/// rules (those with `oldSelf`) refuse on Kubernetes, which are all the
/// rules on updates a GameServer has (storage not removed, its class
/// unchanged, its size never shrunk).
pub fn update_problems(old: &GameServerSpec, new: &GameServerSpec) -> Vec<String> {
    GAMESERVER.spec_transition_problems(&to_json(old), &to_json(new)).iter().map(ToString::to_string).collect()
}

fn to_json(spec: &GameServerSpec) -> serde_json::Value {
    serde_json::to_value(spec).expect("a spec serializes to JSON")
}

/// (Used by the tests of `src/api.rs`, which compare the CRD's rules with
/// the API server's own.)
///
/// Whether the smallest spec with `node_selector` passes the CRD's rules.
#[cfg(test)]
fn node_selector_ok(key: &str, value: &str) -> bool {
    let mut selector = serde_json::Map::new();
    selector.insert(key.to_string(), value.into());
    let spec = serde_json::json!({
        "image": "game",
        "ports": [{ "name": "game", "containerPort": 1 }],
        "nodeSelector": selector,
    });
    GAMESERVER.validate_spec(&spec).is_empty()
}

/// A label or annotation key, as the CRD's rule on `spec.nodeSelector` keys
/// takes it: an optional DNS subdomain prefix (at most 253 characters) and
/// '/', then a name of at most 63 letters, digits, '-', '_' and '.', starting
/// and ending with a letter or digit.
#[cfg(test)]
pub(crate) fn valid_qualified_name(key: &str) -> bool {
    node_selector_ok(key, "")
}

/// A label value, as the CRD's rule on `spec.nodeSelector` values takes it:
/// empty, or at most 63 letters, digits, '-', '_' and '.', starting and ending
/// with a letter or digit.
#[cfg(test)]
pub(crate) fn valid_label_value(value: &str) -> bool {
    node_selector_ok("key", value)
}

/// A name that is also valid for a GameServer (a DNS label). Checked by hand:
/// the CRD has no rule for the names the API server checks itself (its rule
/// on `metadata.name` only adds the length and no dots to the API server's
/// DNS subdomain check, and namespaces are not the CRD's at all).
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> GameServerSpec {
        serde_json::from_value(v).unwrap()
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "image": "game:1",
            "ports": [
                { "name": "game", "containerPort": 7777, "externalPort": 30777 },
                { "name": "query", "containerPort": 7777, "protocol": "UDP" }
            ],
            "storage": { "size": "1Gi", "mountPath": "/data" },
            "config": [{ "path": "/data/a.cfg", "content": "x" }],
            "health": { "probe": { "tcpPort": "game" } },
            "nodeSelector": { "pool": "games", "example.com/disk": "" },
            "tolerations": [
                { "key": "dedicated", "value": "games", "effect": "NoExecute", "tolerationSeconds": 30 },
                { "operator": "Exists", "value": "" }
            ]
        })
    }

    #[test]
    fn a_good_spec_has_no_problem() {
        assert_eq!(problems(&spec(good())), Vec::<String>::new());
    }

    #[test]
    fn each_problem_names_its_field() {
        let cases = [
            ("/image", serde_json::json!(""), "spec.image"),
            ("/ports", serde_json::json!([]), "spec.ports"),
            ("/ports/0/containerPort", serde_json::json!(70000), "spec.ports[0].containerPort"),
            ("/ports/0/name", serde_json::json!("Game_Port"), "spec.ports[0].name"),
            ("/ports/1/name", serde_json::json!("game"), "spec.ports[1]: Duplicate value"),
            ("/ports/0/externalPort", serde_json::json!(0), "spec.ports[0].externalPort"),
            ("/storage/size", serde_json::json!("-1Gi"), "spec.storage.size"),
            ("/storage/size", serde_json::json!("lots"), "spec.storage.size"),
            ("/storage/mountPath", serde_json::json!("data"), "spec.storage.mountPath"),
            ("/config/0/path", serde_json::json!("/data/../x"), "spec.config[0].path"),
            ("/health/probe/tcpPort", serde_json::json!("query"), "spec.health.probe.tcpPort"),
            ("/nodeSelector", serde_json::json!({ "a b": "x" }), "spec.nodeSelector: keys must be label keys"),
            (
                "/nodeSelector",
                serde_json::json!({ "Example.com/a": "x" }),
                "spec.nodeSelector: keys must be label keys",
            ),
            ("/nodeSelector", serde_json::json!({ "a": "-x" }), "spec.nodeSelector: values must be label values"),
            ("/nodeSelector", serde_json::json!({ "a": "x".repeat(64) }), "spec.nodeSelector[a]: Too long"),
            ("/tolerations/0/key", serde_json::json!("a/b/c"), "spec.tolerations[0].key"),
            ("/tolerations/0/key", serde_json::json!(""), "spec.tolerations[0].operator"),
            ("/tolerations/0/value", serde_json::json!("a b"), "spec.tolerations[0].value"),
            ("/tolerations/1/value", serde_json::json!("x"), "spec.tolerations[1].value"),
            ("/tolerations/0/effect", serde_json::json!("NoSchedule"), "spec.tolerations[0].tolerationSeconds"),
        ];
        for (pointer, value, expected) in cases {
            let mut v = good();
            *v.pointer_mut(pointer).unwrap() = value.clone();
            let found = problems(&spec(v));
            assert!(found.iter().any(|p| p.contains(expected)), "{pointer}={value}: {found:?}");
        }
    }

    #[test]
    fn server_names_are_dns_labels() {
        assert!(valid_server_name("minecraft-1"));
        for bad in ["", "-a", "a-", "Mc", "a_b", &"a".repeat(64)] {
            assert!(!valid_server_name(bad), "{bad}");
        }
    }
}
