//! Names and labels: what mettaton calls the service, volume and configs of a
//! server on a swarm, and the labels it finds them again by.

use super::*;

pub use crate::orchestrator::engine::{
    LABEL_MANAGED, LABEL_NAMESPACE, LABEL_RECLAIM, LABEL_SIZE, LABEL_UID, display_name, identity_labels, is_ours,
    namespace, object_labels,
};

/// On the service: a hash of its healthcheck. The engine returns the
/// healthcheck under a key bollard's model does not read (`Healthcheck`, where
/// the API documents `HealthCheck`), so a change of the check is seen here.
pub const LABEL_READINESS: &str = "mettaton.dev/readiness";
/// On the service: the placement constraints mettaton set (from
/// `spec.nodeSelector`), comma-separated, so that an update replaces them and
/// keeps the ones an operator added.
pub const LABEL_CONSTRAINTS: &str = "mettaton.dev/constraints";
/// On a config: the path it is mounted at, for people reading `docker config ls`.
pub const LABEL_PATH: &str = "mettaton.dev/path";
/// The label swarm puts on a task's container naming its service.
pub const LABEL_SWARM_SERVICE_NAME: &str = "com.docker.swarm.service.name";
/// The label swarm puts on a task's container naming its task.
pub const LABEL_SWARM_TASK_ID: &str = "com.docker.swarm.task.id";

/// Swarm refuses service names over 63 characters (a DNS label).
pub(super) const SERVICE_NAME_MAX: usize = 63;
/// Swarm refuses config names over 64 characters.
pub(super) const CONFIG_NAME_MAX: usize = 64;

/// `mettaton-<namespace>-<name>`, made valid for swarm when it is not (a
/// GameServer name may hold dots, and be longer than a DNS label): then
/// shortened, cleaned, and suffixed with a hash of the full name so that two
/// servers never share one.
pub fn service_name(plan: &ServerPlan) -> String {
    fit(&format!("mettaton-{}-{}", namespace(plan), plan.name), SERVICE_NAME_MAX)
}

/// The data volume: `<service name>-data`, stable for a GameServer name, so a
/// new server of the same name finds a retained world again.
pub fn volume_name(plan: &ServerPlan) -> String {
    format!("{}-data", service_name(plan))
}

/// Name of the swarm config holding the `index`th config file. Configs are
/// immutable, so a hash of the file's path and content is part of the name: a
/// changed file is a new config, and the service update switches to it.
pub fn config_name(plan: &ServerPlan, index: usize, path: &str, content: &str) -> String {
    let mut hash = Fnv1a::default();
    hash.write(path.as_bytes());
    hash.write(b"\0");
    hash.write(content.as_bytes());
    fit(&format!("{}-{}-{index}", service_name(plan), hash.short()), CONFIG_NAME_MAX)
}

/// `name` when swarm accepts it as it is, else a valid name within `max`
/// characters that still starts like it and ends with a hash of it.
pub(super) fn fit(name: &str, max: usize) -> String {
    let valid = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if name.len() <= max && valid(name) {
        return name.to_string();
    }
    let mut hash = Fnv1a::default();
    hash.write(name.as_bytes());
    let suffix = hash.short();
    let cleaned: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let keep = max - suffix.len() - 1;
    let prefix = cleaned[..cleaned.len().min(keep)].trim_matches('-');
    if prefix.is_empty() { suffix } else { format!("{prefix}-{suffix}") }
}
