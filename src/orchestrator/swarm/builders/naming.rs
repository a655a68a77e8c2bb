//! Names and labels: what mettaton calls the service, volume and configs of a
//! server on a swarm, and the labels it finds them again by.

use super::*;

/// On every object mettaton creates on the swarm: what `list_managed` and the
/// event stream select by.
pub const LABEL_MANAGED: &str = "mettaton.dev/managed";
/// The GameServer's namespace: swarm has none, so names and labels carry it.
pub const LABEL_NAMESPACE: &str = "mettaton.dev/namespace";
/// The uid of the GameServer a service was applied for, when it was known.
pub const LABEL_UID: &str = "mettaton.dev/uid";
/// On the data volume: the reclaim policy it was created under (Docker volume
/// labels cannot change later, so it records the first one).
pub const LABEL_RECLAIM: &str = "mettaton.dev/reclaim";
/// On the data volume: the `storage.size` asked for, which no driver is told.
pub const LABEL_SIZE: &str = "mettaton.dev/size";
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
/// Config files are only read by the game (swarm mounts them read-only anyway).
pub(super) const CONFIG_FILE_MODE: u32 = 0o444;
pub(super) const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The GameServer's namespace; `default` for a plan made outside Kubernetes.
pub fn namespace(plan: &ServerPlan) -> &str {
    if plan.namespace.is_empty() { "default" } else { &plan.namespace }
}

/// `namespace/name`, as users know the server.
pub fn display_name(plan: &ServerPlan) -> String {
    format!("{}/{}", namespace(plan), plan.name)
}

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
pub(super) fn object_labels(plan: &ServerPlan) -> BTreeMap<String, String> {
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
