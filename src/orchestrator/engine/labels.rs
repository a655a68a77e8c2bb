//! The names users know a server by and the labels that tie its objects on
//! an engine to its GameServer. Swarm and plain Docker label alike, so that a
//! world survives a move between the two on one engine.

use std::collections::{BTreeMap, HashMap};

use crate::orchestrator::{BackendError, ServerKey};
use crate::plan::{LABEL_GAMESERVER, ServerPlan};

/// On every object mettaton creates: what `list_managed` and the event
/// stream select by.
pub const LABEL_MANAGED: &str = "mettaton.dev/managed";
/// The GameServer's namespace: an engine has none, so names and labels carry it.
pub const LABEL_NAMESPACE: &str = "mettaton.dev/namespace";
/// The uid of the GameServer an object was applied for, when it was known.
pub const LABEL_UID: &str = "mettaton.dev/uid";
/// On the data volume: the reclaim policy it was created under (Docker volume
/// labels cannot change later, so it records the first one).
pub const LABEL_RECLAIM: &str = "mettaton.dev/reclaim";
/// On the data volume: the `storage.size` asked for, which no driver is told.
pub const LABEL_SIZE: &str = "mettaton.dev/size";

/// The GameServer's namespace; `default` for a plan made without one.
pub fn namespace(plan: &ServerPlan) -> &str {
    if plan.namespace.is_empty() { "default" } else { &plan.namespace }
}

/// `namespace/name`, as users know the server.
pub fn display_name(plan: &ServerPlan) -> String {
    format!("{}/{}", namespace(plan), plan.name)
}

/// The labels that say which server an object belongs to.
pub fn identity_labels(plan: &ServerPlan) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_GAMESERVER.to_string(), plan.name.clone()),
        (LABEL_NAMESPACE.to_string(), namespace(plan).to_string()),
    ])
}

/// The plan's labels with the identity labels over them: what every object of
/// the server carries.
pub fn object_labels(plan: &ServerPlan) -> BTreeMap<String, String> {
    let mut labels = plan.labels.clone();
    labels.extend(identity_labels(plan));
    labels
}

/// Whether an object with these labels is this server's. Anything else with
/// the same name is left alone.
pub fn is_ours(labels: Option<&HashMap<String, String>>, plan: &ServerPlan) -> bool {
    labels.is_some_and(|l| {
        l.get(LABEL_GAMESERVER).is_some_and(|n| *n == plan.name)
            && l.get(LABEL_NAMESPACE).is_some_and(|n| n == namespace(plan))
    })
}

/// The server that labels of the identity name (namespace `default` when
/// they name none).
pub fn server_key(labels: &HashMap<String, String>) -> Option<ServerKey> {
    Some(ServerKey {
        namespace: labels.get(LABEL_NAMESPACE).cloned().unwrap_or_else(|| "default".into()),
        name: labels.get(LABEL_GAMESERVER)?.clone(),
    })
}

/// The refusal to `what` when the `object` of the server's name (`volume
/// NAME`, `service NAME`) is another's.
pub fn not_ours(what: String, object: &str, plan: &ServerPlan) -> BackendError {
    BackendError::Refused {
        what,
        reason: format!("{object} already exists and does not belong to GameServer {}", display_name(plan)),
    }
}
