//! The GameServer manifests the integration and reliability tests start from:
//! the Minecraft server, the wrapping of a spec into a GameServer, and `merged`
//! for a variant (a test changes the fields it is about, it does not copy the
//! rest).

use mettaton::api::GameServer;
use serde_json::{Value, json};

/// The Minecraft server's image.
pub const MINECRAFT_IMAGE: &str = "itzg/minecraft-server:java21";

/// The Minecraft server, as little of it as the API server takes: its image
/// and the game on TCP port 25565.
pub fn minecraft() -> Value {
    json!({
        "image": MINECRAFT_IMAGE,
        "ports": [{ "name": "game", "containerPort": 25565 }]
    })
}

/// [`minecraft`] with its query port as well: UDP, on the same number.
pub fn minecraft_with_query() -> Value {
    let mut spec = minecraft();
    spec["ports"].as_array_mut().unwrap().push(json!({ "name": "query", "containerPort": 25565, "protocol": "UDP" }));
    spec
}

/// The GameServer `name` of `spec`, as a manifest (JSON), with no namespace:
/// the one it is created in.
pub fn manifest(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "mettaton.dev/v1alpha1",
        "kind": "GameServer",
        "metadata": { "name": name },
        "spec": spec
    })
}

/// The GameServer `name` of `spec` (see [`manifest`]).
pub fn game_server(name: &str, spec: Value) -> GameServer {
    serde_json::from_value(manifest(name, spec)).unwrap()
}

/// `base` with `extra` merged in: objects key by key, anything else replaced.
pub fn merged(mut base: Value, extra: Value) -> Value {
    match (&mut base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                let slot = b.remove(&k).unwrap_or(Value::Null);
                b.insert(k, merged(slot, v));
            }
            base
        }
        (_, e) => e,
    }
}
