//! Checks of a GameServer spec for backends with no API server in front of
//! them (the swarm facade and CLI): the same rules the CRD schema makes the
//! Kubernetes API server enforce, with messages that name the field.

use std::collections::HashSet;

use crate::api::{GameServerSpec, Protocol, TaintEffect, TolerationOperator};
use crate::quantity::Quantity;

/// Every problem of the spec, each naming its field; empty when it is valid.
pub fn problems(spec: &GameServerSpec) -> Vec<String> {
    let mut p = Vec::new();
    if spec.image.trim().is_empty() {
        p.push("spec.image: Required value: the container image of the game server".to_string());
    } else if spec.image.contains(char::is_whitespace) {
        p.push(format!("spec.image: Invalid value {:?}: must not contain spaces", spec.image));
    }
    if spec.ports.is_empty() {
        p.push("spec.ports: Required value: at least one port".to_string());
    }
    let mut names = HashSet::new();
    let mut pairs = HashSet::new();
    let mut external = HashSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        if !valid_port_name(&port.name) {
            p.push(format!(
                "{field}.name: Invalid value {:?}: lowercase letters, digits and dashes, at most 15 characters",
                port.name
            ));
        }
        if !names.insert(port.name.as_str()) {
            p.push(format!("{field}.name: Duplicate value {:?}", port.name));
        }
        if !(1..=65535).contains(&port.container_port) {
            p.push(format!(
                "{field}.containerPort: Invalid value {}: must be between 1 and 65535",
                port.container_port
            ));
        }
        if !pairs.insert((port.container_port, port.protocol)) {
            p.push(format!("{field}: containerPort {} {} appears twice", port.container_port, port.protocol.as_str()));
        }
        if let Some(ext) = port.external_port {
            if !(1..=65535).contains(&ext) {
                p.push(format!("{field}.externalPort: Invalid value {ext}: must be between 1 and 65535"));
            }
            if !external.insert((ext, port.protocol)) {
                p.push(format!("{field}.externalPort: {ext} {} appears twice", port.protocol.as_str()));
            }
        }
    }
    if let Some(storage) = &spec.storage {
        if !Quantity::parse(&storage.size.0).is_some_and(|q| q.is_positive()) {
            p.push(format!(
                "spec.storage.size: Invalid value {:?}: must be a positive quantity, such as 10Gi",
                storage.size.0
            ));
        }
        if !storage.mount_path.starts_with('/') {
            p.push(format!("spec.storage.mountPath: Invalid value {:?}: must be an absolute path", storage.mount_path));
        }
    }
    let mut paths = HashSet::new();
    for (i, file) in spec.config.iter().enumerate() {
        let field = format!("spec.config[{i}]");
        if !file.path.starts_with('/') || file.path.ends_with('/') || file.path.split('/').any(|s| s == "..") {
            p.push(format!("{field}.path: Invalid value {:?}: an absolute file path without '..'", file.path));
        }
        if !paths.insert(file.path.as_str()) {
            p.push(format!("{field}.path: Duplicate value {:?}", file.path));
        }
        if file.content.is_some() == file.config_map_key_ref.is_some() {
            p.push(format!("{field}: a config file needs exactly one of content or configMapKeyRef"));
        }
    }
    if let Some(probe) = spec.health.as_ref().and_then(|h| h.probe.as_ref()) {
        if probe.tcp_port.is_some() == probe.exec.is_some() {
            p.push("spec.health.probe: a health probe needs exactly one of tcpPort or exec".to_string());
        }
        if let Some(name) = &probe.tcp_port
            && !spec.ports.iter().any(|port| &port.name == name && port.protocol == Protocol::TCP)
        {
            p.push(format!("spec.health.probe.tcpPort: {name:?} must name a TCP port of spec.ports"));
        }
    }
    if let Some(health) = &spec.health
        && !(1..=86400).contains(&health.startup_timeout_seconds)
    {
        p.push(format!(
            "spec.health.startupTimeoutSeconds: Invalid value {}: must be between 1 and 86400",
            health.startup_timeout_seconds
        ));
    }
    if let Some(shutdown) = &spec.shutdown
        && !(0..=3600).contains(&shutdown.grace_period_seconds)
    {
        p.push(format!(
            "spec.shutdown.gracePeriodSeconds: Invalid value {}: must be between 0 and 3600",
            shutdown.grace_period_seconds
        ));
    }
    if spec.node_selector.len() > 32 {
        p.push(format!("spec.nodeSelector: Too many: {}: must have at most 32 entries", spec.node_selector.len()));
    }
    for (key, value) in &spec.node_selector {
        if !valid_qualified_name(key) {
            p.push(format!("spec.nodeSelector: Invalid key {key:?}: must be a label key"));
        }
        if !valid_label_value(value) {
            p.push(format!("spec.nodeSelector[{key}]: Invalid value {value:?}: must be a label value"));
        }
    }
    if spec.tolerations.len() > 16 {
        p.push(format!("spec.tolerations: Too many: {}: must have at most 16 items", spec.tolerations.len()));
    }
    for (i, t) in spec.tolerations.iter().enumerate() {
        let field = format!("spec.tolerations[{i}]");
        let key = t.key.as_deref().unwrap_or_default();
        let value = t.value.as_deref().unwrap_or_default();
        if !key.is_empty() && !valid_qualified_name(key) {
            p.push(format!("{field}.key: Invalid value {key:?}: must be a label key"));
        }
        if key.is_empty() && t.operator != TolerationOperator::Exists {
            p.push(format!("{field}.operator: must be Exists when the key is empty"));
        }
        if t.operator == TolerationOperator::Exists && !value.is_empty() {
            p.push(format!("{field}.value: Invalid value {value:?}: must be empty when the operator is Exists"));
        } else if !valid_label_value(value) {
            p.push(format!("{field}.value: Invalid value {value:?}: must be a label value"));
        }
        if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
            p.push(format!("{field}.tolerationSeconds: needs effect NoExecute"));
        }
    }
    p
}

/// What an update from `old` to `new` may not do, as the CRD's transition
/// rules refuse it on Kubernetes: remove the storage, change its class, shrink
/// it.
pub fn update_problems(old: &GameServerSpec, new: &GameServerSpec) -> Vec<String> {
    let mut p = Vec::new();
    let Some(before) = &old.storage else { return p };
    let Some(after) = &new.storage else {
        p.push("spec.storage: cannot be removed from a server; shut it down to release its volume".to_string());
        return p;
    };
    if before.storage_class_name != after.storage_class_name {
        p.push("spec.storage.storageClassName: cannot change once the volume exists".to_string());
    }
    let bytes = |q: &str| Quantity::parse(q).and_then(|q| q.scaled(0));
    if let (Some(a), Some(b)) = (bytes(&before.size.0), bytes(&after.size.0))
        && b < a
    {
        p.push(format!("spec.storage.size: may grow but never shrink ({} to {})", before.size.0, after.size.0));
    }
    p
}

/// A label or annotation key: an optional DNS subdomain prefix (at most 253
/// characters) and '/', then a name of at most 63 letters, digits, '-', '_'
/// and '.', starting and ending with a letter or digit.
pub(crate) fn valid_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && valid_label_value(name)
}

/// A label value: empty, or at most 63 letters, digits, '-', '_' and '.',
/// starting and ending with a letter or digit.
pub(crate) fn valid_label_value(value: &str) -> bool {
    value.is_empty()
        || value.len() <= 63
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A name that is also valid for a GameServer (a DNS label).
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn valid_port_name(name: &str) -> bool {
    name.len() <= 15 && valid_server_name(name)
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
            ("/ports/1/name", serde_json::json!("game"), "spec.ports[1].name: Duplicate"),
            ("/ports/0/externalPort", serde_json::json!(0), "spec.ports[0].externalPort"),
            ("/storage/size", serde_json::json!("-1Gi"), "spec.storage.size"),
            ("/storage/size", serde_json::json!("lots"), "spec.storage.size"),
            ("/storage/mountPath", serde_json::json!("data"), "spec.storage.mountPath"),
            ("/config/0/path", serde_json::json!("/data/../x"), "spec.config[0].path"),
            ("/health/probe/tcpPort", serde_json::json!("query"), "spec.health.probe.tcpPort"),
            ("/nodeSelector", serde_json::json!({ "a b": "x" }), "spec.nodeSelector: Invalid key \"a b\""),
            ("/nodeSelector", serde_json::json!({ "Example.com/a": "x" }), "spec.nodeSelector: Invalid key"),
            ("/nodeSelector", serde_json::json!({ "a": "-x" }), "spec.nodeSelector[a]: Invalid value"),
            ("/nodeSelector", serde_json::json!({ "a": "x".repeat(64) }), "spec.nodeSelector[a]"),
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
