//! The GameServers the unit tests start from: the Minecraft server, small and
//! with everything, and the wrapping of a spec into a GameServer. A test that
//! needs a variant changes the fields it is about (in the JSON, or in the
//! typed spec), it does not copy the rest.

use serde_json::{Value, json};

use crate::api::{GameServer, GameServerSpec};

/// The Minecraft server's image.
pub(crate) const MINECRAFT_IMAGE: &str = "itzg/minecraft-server:java21";
/// The namespace of [`game_server`]s.
pub(crate) const NAMESPACE: &str = "games";
/// The uid of [`game_server`]s.
pub(crate) const UID: &str = "0b7c3e0e-5d7e-4d4f-9d3c-2f1f5e4b6a01";

/// The Minecraft server with as little as it takes: its image, the game on
/// TCP port 25565 and the query on UDP port 25565.
pub(crate) fn minecraft_spec_json() -> Value {
    json!({
        "image": MINECRAFT_IMAGE,
        "ports": [
            { "name": "game", "containerPort": 25565 },
            { "name": "query", "containerPort": 25565, "protocol": "UDP" }
        ]
    })
}

/// [`minecraft_spec_json`], typed.
pub(crate) fn minecraft_spec() -> GameServerSpec {
    serde_json::from_value(minecraft_spec_json()).unwrap()
}

/// The Minecraft server with everything: a fixed external game port, an
/// environment with a Secret reference, resources, a world volume, config
/// files inline and from a ConfigMap, health and shutdown settings.
pub(crate) fn full_minecraft_spec_json() -> Value {
    let mut spec = minecraft_spec_json();
    spec["ports"][0]["externalPort"] = json!(30565);
    let extra = json!({
        "imagePullPolicy": "IfNotPresent",
        "env": [
            { "name": "EULA", "value": "TRUE" },
            { "name": "RCON_PASSWORD", "valueFrom": { "secretKeyRef": { "name": "rcon", "key": "password" } } }
        ],
        "resources": { "requests": { "cpu": "1", "memory": "2Gi" }, "limits": { "memory": "4Gi" } },
        "storage": { "size": "10Gi", "storageClassName": "fast", "mountPath": "/data" },
        "config": [
            { "path": "/data/server.properties", "content": "motd=Hello\nmax-players=20\n" },
            { "path": "/data/ops.json", "configMapKeyRef": { "name": "ops", "key": "ops.json" } },
            { "path": "/data/whitelist.json", "content": "[]" },
            { "path": "/data/banned-players.json", "configMapKeyRef": { "name": "ops", "key": "banned.json" } }
        ],
        "health": { "startupTimeoutSeconds": 900, "periodSeconds": 10, "failureThreshold": 3 },
        "shutdown": { "gracePeriodSeconds": 120, "stopCommand": ["rcon-cli", "stop"] }
    });
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    spec
}

/// The GameServer `name` of `spec` in [`NAMESPACE`], with [`UID`].
pub(crate) fn game_server(name: &str, spec: Value) -> GameServer {
    serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1",
        "kind": "GameServer",
        "metadata": { "name": name, "namespace": NAMESPACE, "uid": UID },
        "spec": spec
    }))
    .unwrap()
}

/// The GameServer `survival`: the Minecraft server with everything
/// ([`full_minecraft_spec_json`]).
pub(crate) fn minecraft() -> GameServer {
    game_server("survival", full_minecraft_spec_json())
}

/// The fixtures are GameServers the facade's validation finds nothing wrong
/// with, so that a test's variant is wrong only where the test makes it so.
#[test]
fn the_fixtures_are_valid_game_servers() {
    for spec in [minecraft_spec(), minecraft().spec] {
        assert_eq!(crate::facade::validate::problems(&spec), Vec::<String>::new(), "{spec:?}");
    }
    let gs = minecraft();
    assert_eq!(
        (gs.metadata.name.as_deref(), gs.metadata.namespace.as_deref(), gs.metadata.uid.as_deref()),
        (Some("survival"), Some(NAMESPACE), Some(UID))
    );
    assert_eq!(gs.spec.image, MINECRAFT_IMAGE);
    assert_eq!(gs.spec.ports.len(), 2);
}
