//! Checks of a GameServer spec for backends with no API server in front of
//! them (the swarm facade and CLI): the same rules the CRD schema makes the
//! Kubernetes API server enforce, with messages that name the field.

use std::collections::HashSet;

use crate::api::{GameServerSpec, Protocol};
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
    p
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
            "health": { "probe": { "tcpPort": "game" } }
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
