//! Pure builders of the Docker Swarm backend: a [`ServerPlan`] turned into the
//! service, configs and volume that run it, and what the engine reports turned
//! back into an [`Observed`] view. No client, no I/O: everything here is
//! tested without an engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EventMessage, HealthConfig, Limit, Mount, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig, Node,
    ResourceObject, Service, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceUpdateStatusStateEnum,
    SwarmInfo, Task, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile1,
    TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
    VolumeCreateRequest,
};
use k8s_openapi::jiff::Timestamp;

use crate::api::{Protocol, PublishedPort, ServiceType};
use crate::orchestrator::{BackendError, Endpoint, Instance, Workload};
use crate::plan::{Check, ConfigSource, Fnv1a, LABEL_GAMESERVER, ServerPlan};
use crate::quantity::Quantity;

use super::{ServerEvent, ServerEventKind};

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
const SERVICE_NAME_MAX: usize = 63;
/// Swarm refuses config names over 64 characters.
const CONFIG_NAME_MAX: usize = 64;
/// Config files are only read by the game (swarm mounts them read-only anyway).
const CONFIG_FILE_MODE: u32 = 0o444;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

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
fn fit(name: &str, max: usize) -> String {
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
fn object_labels(plan: &ServerPlan) -> BTreeMap<String, String> {
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

fn refused(plan: &ServerPlan, reason: String) -> BackendError {
    BackendError::Refused { what: format!("run GameServer {} on Docker Swarm", display_name(plan)), reason }
}

/// The swarm service that runs the server. Config references carry their
/// names only: the engine needs their ids too, which exist only once the
/// configs are created (see [`with_config_ids`]).
///
/// Refused, naming the field, for what swarm cannot do: environment from
/// `valueFrom` (no Secrets or ConfigMaps to resolve it from), config files
/// from a ConfigMap, resources
/// other than cpu and memory, tolerations (swarm has no taints), a node
/// selector swarm cannot express (see [`constraints`]).
///
/// `nodeSelector`: one placement constraint `node.labels.KEY==VALUE` per
/// entry, recorded in [`LABEL_CONSTRAINTS`].
///
/// Readiness: an `exec` check becomes the container's healthcheck; swarm keeps
/// such a task `starting` until the check first passes, and replaces the
/// container when it turns unhealthy. A TCP check has no swarm equivalent
/// without a client inside the image (game images seldom have a shell or
/// `nc`), so mettaton probes the published port itself (see [`TcpProbe`]);
/// the service gets no healthcheck for it (an image's own HEALTHCHECK still
/// applies).
pub fn service_spec(plan: &ServerPlan, owner_uid: Option<&str>) -> Result<ServiceSpec, BackendError> {
    let container = &plan.container;
    if !plan.placement.tolerations.is_empty() {
        return Err(refused(
            plan,
            "spec.tolerations cannot be used on Docker Swarm, which has no taints: remove them, and choose the \
             server's nodes with spec.nodeSelector (node labels) instead"
                .into(),
        ));
    }
    if plan.service.type_ != ServiceType::NodePort {
        return Err(refused(
            plan,
            format!(
                "spec.service.type {:?} cannot be used on Docker Swarm, which has no load balancer or cluster \
                 network for players: ports are published on the node that runs the server (what NodePort means \
                 here); remove spec.service.type or set NodePort",
                plan.service.type_
            ),
        ));
    }
    if let Some(key) = plan.service.annotations.keys().next() {
        return Err(refused(
            plan,
            format!(
                "spec.service.annotations ({key:?}) cannot be used on Docker Swarm, which has no Service object to \
                 annotate: remove them"
            ),
        ));
    }
    let constraints = constraints(plan)?;
    // The engine accepts a relative target and only its task fails; a plan
    // made outside Kubernetes has no schema that would have refused it.
    if let Some(v) = plan.volume.as_ref().filter(|v| !v.mount_path.starts_with('/')) {
        return Err(refused(plan, format!("storage.mountPath {:?} must be an absolute path", v.mount_path)));
    }
    let env = container
        .env
        .iter()
        .map(|var| match &var.value_from {
            Some(_) => Err(refused(
                plan,
                format!(
                    "env {} uses valueFrom, which Docker Swarm cannot resolve (it has no Secrets or ConfigMaps): \
                     give it a value (the swarm facade and CLI resolve secretKeyRef from a secrets directory, \
                     `mettaton swarm --secrets DIR`)",
                    var.name
                ),
            )),
            None => Ok(format!("{}={}", var.name, var.value.as_deref().unwrap_or_default())),
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut labels = object_labels(plan);
    if let Some(uid) = owner_uid {
        labels.insert(LABEL_UID.to_string(), uid.to_string());
    }
    if !constraints.is_empty() {
        labels.insert(LABEL_CONSTRAINTS.to_string(), constraints.join(","));
    }
    let health_check = health_check(plan);
    if let Some(check) = &health_check {
        let mut hash = Fnv1a::default();
        hash.write(serde_json::to_string(check).unwrap_or_default().as_bytes());
        labels.insert(LABEL_READINESS.to_string(), hash.short());
    }
    let mounts = plan.volume.as_ref().map(|v| {
        vec![Mount {
            target: Some(v.mount_path.clone()),
            source: Some(volume_name(plan)),
            typ: Some(MountType::VOLUME),
            // Were the volume gone when a task starts, the engine would create
            // it from the mount: these labels keep it findable then too.
            volume_options: Some(MountVolumeOptions {
                labels: Some(volume_labels(plan)),
                driver_config: v
                    .storage_class_name
                    .clone()
                    .map(|driver| MountVolumeOptionsDriverConfig { name: Some(driver), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    let configs = config_files(plan)?
        .into_iter()
        .map(|c| TaskSpecContainerSpecConfigs {
            file: Some(TaskSpecContainerSpecFile1 {
                name: Some(c.path),
                uid: Some("0".into()),
                gid: Some("0".into()),
                mode: Some(CONFIG_FILE_MODE),
            }),
            config_name: Some(c.name),
            ..Default::default()
        })
        .collect::<Vec<_>>();

    let container_spec = TaskSpecContainerSpec {
        image: Some(container.image.clone()),
        // Containers carry the identity labels (service labels do not reach
        // them), so that engine events name the server. A restart asked for is
        // a label of the task's container too: a new value changes the task
        // template, which makes the engine replace the task (same volume).
        labels: Some(
            identity_labels(plan)
                .into_iter()
                .chain(plan.restart_token.clone().map(|t| (crate::plan::ANNOTATION_RESTARTED_AT.to_string(), t)))
                .collect(),
        ),
        command: non_empty(container.command.clone()),
        args: non_empty(container.args.clone()),
        env: non_empty(env),
        mounts,
        stop_grace_period: Some(plan.grace_period_seconds.saturating_mul(NANOS_PER_SECOND)),
        health_check,
        configs: non_empty(configs),
        ..Default::default()
    };
    let ports = container
        .ports
        .iter()
        .map(|p| EndpointPortConfig {
            name: Some(p.name.clone()),
            protocol: Some(protocol(p.protocol)),
            target_port: Some(i64::from(p.container_port)),
            published_port: p.external_port.map(i64::from),
            // Host mode: the port opens on the node the task runs on, which is
            // the address reported. The routing mesh (ingress) needs IPVS in
            // the kernel, which not every node has.
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
        })
        .collect::<Vec<_>>();

    Ok(ServiceSpec {
        name: Some(service_name(plan)),
        labels: Some(labels.into_iter().collect()),
        task_template: Some(TaskSpec {
            container_spec: Some(container_spec),
            resources: resources(plan)?,
            placement: (!constraints.is_empty())
                .then(|| TaskSpecPlacement { constraints: Some(constraints), ..Default::default() }),
            // A game server that dies is started again; each restart is a new
            // task, which is how restarts are counted.
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(i64::from(plan.replicas)) }),
            ..Default::default()
        }),
        endpoint_spec: (!ports.is_empty()).then(|| EndpointSpec { ports: Some(ports), ..Default::default() }),
        ..Default::default()
    })
}

/// The placement constraints of `spec.nodeSelector`: `node.labels.KEY==VALUE`
/// for each entry, in key order. Refused when swarm cannot parse one: it takes
/// only letters, digits, '-', '_' and '.' in a constraint's key (so no label
/// key with a `prefix/`) and a value that is not empty.
pub fn constraints(plan: &ServerPlan) -> Result<Vec<String>, BackendError> {
    let swarm_word = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plan.placement
        .node_selector
        .iter()
        .map(|(key, value)| {
            if key.is_empty() || !swarm_word(key) {
                return Err(refused(
                    plan,
                    format!(
                        "spec.nodeSelector key {key:?} cannot be a Docker Swarm placement constraint, whose node \
                         label names take only letters, digits, '-', '_' and '.' (no prefix and '/')"
                    ),
                ));
            }
            if value.is_empty() || !swarm_word(value) {
                return Err(refused(
                    plan,
                    format!(
                        "spec.nodeSelector {key}: value {value:?} cannot be a Docker Swarm placement constraint, \
                         which needs a value of letters, digits, '-', '_' and '.'"
                    ),
                ));
            }
            Ok(format!("node.labels.{key}=={value}"))
        })
        .collect()
}

/// The placement constraints mettaton set on a service, as its
/// [`LABEL_CONSTRAINTS`] label records them.
fn own_constraints(spec: &ServiceSpec) -> Vec<String> {
    spec.labels
        .as_ref()
        .and_then(|l| l.get(LABEL_CONSTRAINTS))
        .map(|v| v.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

fn protocol(p: Protocol) -> EndpointPortConfigProtocolEnum {
    match p {
        Protocol::TCP => EndpointPortConfigProtocolEnum::TCP,
        Protocol::UDP => EndpointPortConfigProtocolEnum::UDP,
    }
}

fn health_check(plan: &ServerPlan) -> Option<HealthConfig> {
    let Some(Check::Exec { command }) = &plan.container.readiness else { return None };
    if command.is_empty() {
        return None;
    }
    let period = i64::from(plan.container.period_seconds.max(1)) * NANOS_PER_SECOND;
    let mut test = vec!["CMD".to_string()];
    test.extend(command.iter().cloned());
    Some(HealthConfig {
        test: Some(test),
        interval: Some(period),
        // A check still running after a period has failed: the next one is due.
        timeout: Some(period),
        retries: Some(i64::from(plan.container.failure_threshold.max(1))),
        // Failures in the startup window do not count, and the first success
        // ends it: the startup timeout is exactly that window.
        start_period: Some(i64::from(plan.startup_timeout_seconds.max(0)) * NANOS_PER_SECOND),
        ..Default::default()
    })
}

/// cpu and memory limits and reservations; any other resource is refused.
fn resources(plan: &ServerPlan) -> Result<Option<TaskSpecResources>, BackendError> {
    let Some(requirements) = &plan.container.resources else { return Ok(None) };
    if requirements.claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(refused(plan, "resources.claims cannot be used on Docker Swarm".into()));
    }
    let amounts = |field: &str,
                   map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>|
     -> Result<(Option<i64>, Option<i64>), BackendError> {
        let mut cpu = None;
        let mut memory = None;
        for (resource, quantity) in map.into_iter().flatten() {
            let (slot, scale) = match resource.as_str() {
                "cpu" => (&mut cpu, 9),
                "memory" => (&mut memory, 0),
                other => {
                    return Err(refused(
                        plan,
                        format!("resources.{field}.{other} cannot be set on Docker Swarm (only cpu and memory)"),
                    ));
                }
            };
            let value = Quantity::parse(quantity.0.trim()).and_then(|q| q.scaled(scale)).ok_or_else(|| {
                refused(plan, format!("resources.{field}.{resource}: {:?} is not a quantity swarm can use", quantity.0))
            })?;
            *slot = Some(value);
        }
        Ok((cpu, memory))
    };
    let (limit_cpu, limit_memory) = amounts("limits", requirements.limits.as_ref())?;
    let (request_cpu, request_memory) = amounts("requests", requirements.requests.as_ref())?;
    let limits = (limit_cpu.is_some() || limit_memory.is_some()).then(|| Limit {
        nano_cpus: limit_cpu,
        memory_bytes: limit_memory,
        ..Default::default()
    });
    let reservations = (request_cpu.is_some() || request_memory.is_some()).then(|| ResourceObject {
        nano_cpus: request_cpu,
        memory_bytes: request_memory,
        ..Default::default()
    });
    Ok((limits.is_some() || reservations.is_some()).then(|| TaskSpecResources {
        limits,
        reservations,
        ..Default::default()
    }))
}

/// One inline config file as a swarm config.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedConfig {
    /// The config's name, unique for its path and content.
    pub name: String,
    /// Where it is mounted in the container.
    pub path: String,
    pub spec: ConfigSpec,
}

/// The server's config files as swarm configs. Files from a ConfigMap are
/// refused: swarm has no ConfigMaps to read them from.
pub fn config_files(plan: &ServerPlan) -> Result<Vec<PlannedConfig>, BackendError> {
    let Some(config) = &plan.config else { return Ok(Vec::new()) };
    config
        .files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let content = match &file.source {
                ConfigSource::Inline { key } => config.inline.get(key).map(String::as_str).unwrap_or_default(),
                ConfigSource::ConfigMap { name, key } => {
                    return Err(refused(
                        plan,
                        format!(
                            "config file {} comes from key {key} of ConfigMap {name}, and Docker Swarm has no \
                             ConfigMaps: give its content inline",
                            file.path
                        ),
                    ));
                }
            };
            let name = config_name(plan, i, &file.path, content);
            let mut labels = object_labels(plan);
            labels.insert(LABEL_PATH.to_string(), file.path.clone());
            Ok(PlannedConfig {
                name: name.clone(),
                path: file.path.clone(),
                spec: ConfigSpec {
                    name: Some(name),
                    labels: Some(labels.into_iter().collect()),
                    data: Some(base64::engine::general_purpose::STANDARD.encode(content)),
                    ..Default::default()
                },
            })
        })
        .collect()
}

/// The config references of `spec` completed with the ids of the configs of
/// those names. A name without an id is left as it is (the engine refuses it).
pub fn with_config_ids(mut spec: ServiceSpec, ids: &HashMap<String, String>) -> ServiceSpec {
    let configs = spec.task_template.as_mut().and_then(|t| t.container_spec.as_mut()).and_then(|c| c.configs.as_mut());
    for config in configs.into_iter().flatten() {
        if let Some(id) = config.config_name.as_ref().and_then(|n| ids.get(n)) {
            config.config_id = Some(id.clone());
        }
    }
    spec
}

fn volume_labels(plan: &ServerPlan) -> HashMap<String, String> {
    let mut labels = object_labels(plan);
    if let Some(v) = &plan.volume {
        labels.insert(LABEL_RECLAIM.to_string(), format!("{:?}", v.reclaim));
    }
    labels.into_iter().collect()
}

/// The data volume to create, when the server has one. `storage.storageClassName`
/// names the volume driver (Docker's `local` when absent); `storage.size` is
/// recorded in the [`LABEL_SIZE`] label and reported by [`limitations`]: no
/// driver option for a size is common to Docker's volume drivers, and the
/// local driver has none.
pub fn volume_request(plan: &ServerPlan) -> Option<VolumeCreateRequest> {
    plan.volume.as_ref().map(|v| {
        let mut labels = volume_labels(plan);
        labels.insert(LABEL_SIZE.to_string(), v.size.clone());
        VolumeCreateRequest {
            name: Some(volume_name(plan)),
            driver: v.storage_class_name.clone(),
            labels: Some(labels),
            ..Default::default()
        }
    })
}

/// What of the plan Docker Swarm runs differently than asked, each naming its
/// field, for the user to see (the facade returns them, the CLI prints them).
/// Everything else is honoured or refused by [`service_spec`].
pub fn limitations(plan: &ServerPlan) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(v) = &plan.volume {
        let driver = v.storage_class_name.as_deref().unwrap_or("local");
        found.push(format!(
            "spec.storage.size {} is not enforced on Docker Swarm: volume driver {driver} is given no size (the \
             volume grows with what the game writes, up to the node's free disk); the size is recorded in the \
             volume's {LABEL_SIZE} label",
            v.size
        ));
    }
    found
}

/// What to send to update a service: the desired spec, with what mettaton
/// does not manage carried over from the current one (placement settings and
/// constraints or networks an operator added, update and rollback settings,
/// the force counter, whose change alone would restart the server). Of the
/// placement constraints, those mettaton set before (its label lists them)
/// give way to the desired ones; the others stay.
pub fn for_update(mut desired: ServiceSpec, current: &ServiceSpec) -> ServiceSpec {
    desired.update_config = current.update_config.clone();
    desired.rollback_config = current.rollback_config.clone();
    desired.networks = current.networks.clone();
    let previous = own_constraints(current);
    if let (Some(task), Some(current_task)) = (desired.task_template.as_mut(), current.task_template.as_ref()) {
        let wanted = task.placement.take().and_then(|p| p.constraints).unwrap_or_default();
        let mut placement = current_task.placement.clone();
        let kept = placement.as_ref().and_then(|p| p.constraints.clone()).unwrap_or_default();
        let mut constraints: Vec<String> =
            kept.into_iter().filter(|c| !previous.contains(c) && !wanted.contains(c)).collect();
        constraints.extend(wanted);
        match placement.as_mut() {
            Some(p) => p.constraints = (!constraints.is_empty()).then_some(constraints),
            None if !constraints.is_empty() => {
                placement = Some(TaskSpecPlacement { constraints: Some(constraints), ..Default::default() });
            }
            None => {}
        }
        task.placement = placement;
        task.networks = current_task.networks.clone();
        task.log_driver = current_task.log_driver.clone();
        task.force_update = current_task.force_update;
    }
    desired
}

/// The part of a service spec mettaton decides, in a form where what the
/// engine fills in or drops (empty lists, defaults) compares equal.
#[derive(Debug, PartialEq)]
struct Managed {
    name: Option<String>,
    labels: BTreeMap<String, String>,
    replicas: Option<i64>,
    image: Option<String>,
    command: Vec<String>,
    args: Vec<String>,
    env: Vec<String>,
    container_labels: BTreeMap<String, String>,
    mounts: Vec<MountKey>,
    stop_grace_period: Option<i64>,
    configs: Vec<(Option<TaskSpecContainerSpecFile1>, Option<String>, Option<String>)>,
    limits: (i64, i64),
    reservations: (i64, i64),
    restart: Option<TaskSpecRestartPolicyConditionEnum>,
    ports: Vec<PortKey>,
    /// mettaton's own placement constraints that the service has.
    constraints: BTreeSet<String>,
}

/// target, source, type, read-only, volume labels.
type MountKey = (Option<String>, Option<String>, Option<MountType>, bool, BTreeMap<String, String>);

/// name, protocol, target port, published port, publish mode.
type PortKey =
    (Option<String>, EndpointPortConfigProtocolEnum, Option<i64>, Option<i64>, EndpointPortConfigPublishModeEnum);

fn managed(spec: &ServiceSpec) -> Managed {
    let task = spec.task_template.clone().unwrap_or_default();
    let container = task.container_spec.unwrap_or_default();
    let resources = task.resources.unwrap_or_default();
    let sorted = |m: Option<HashMap<String, String>>| m.unwrap_or_default().into_iter().collect::<BTreeMap<_, _>>();
    Managed {
        name: spec.name.clone(),
        labels: sorted(spec.labels.clone()),
        replicas: spec.mode.as_ref().and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas),
        image: container.image,
        command: container.command.unwrap_or_default(),
        args: container.args.unwrap_or_default(),
        env: container.env.unwrap_or_default(),
        container_labels: sorted(container.labels),
        mounts: container
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let labels = sorted(m.volume_options.and_then(|o| o.labels));
                (m.target, m.source, m.typ, m.read_only.unwrap_or(false), labels)
            })
            .collect(),
        stop_grace_period: container.stop_grace_period,
        // Not the healthcheck: bollard does not read it back (see
        // LABEL_READINESS, which stands for it among the labels).
        configs: container
            .configs
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.file, c.config_id, c.config_name))
            .collect(),
        limits: resources.limits.map_or((0, 0), |l| (l.nano_cpus.unwrap_or(0), l.memory_bytes.unwrap_or(0))),
        reservations: resources
            .reservations
            .map_or((0, 0), |r| (r.nano_cpus.unwrap_or(0), r.memory_bytes.unwrap_or(0))),
        restart: task.restart_policy.and_then(|r| r.condition),
        ports: spec.endpoint_spec.as_ref().map(port_keys).unwrap_or_default(),
        constraints: {
            let present = task.placement.and_then(|p| p.constraints).unwrap_or_default();
            own_constraints(spec).into_iter().filter(|c| present.contains(c)).collect()
        },
    }
}

fn port_keys(endpoint: &EndpointSpec) -> Vec<PortKey> {
    endpoint.ports.iter().flatten().map(port_key).collect()
}

fn port_key(p: &EndpointPortConfig) -> PortKey {
    let protocol = match p.protocol {
        None | Some(EndpointPortConfigProtocolEnum::EMPTY) => EndpointPortConfigProtocolEnum::TCP,
        Some(other) => other,
    };
    let mode = match p.publish_mode {
        None | Some(EndpointPortConfigPublishModeEnum::EMPTY) => EndpointPortConfigPublishModeEnum::INGRESS,
        Some(other) => other,
    };
    (p.name.clone(), protocol, p.target_port, p.published_port.filter(|&p| p != 0), mode)
}

/// Whether the service must be updated for `desired`: whether anything
/// mettaton decides differs in `current`, its own placement constraints
/// included. What the engine adds (defaults, runtime, isolation) and what
/// others set (other placement settings and constraints) do not count.
pub fn needs_update(desired: &ServiceSpec, current: &ServiceSpec) -> bool {
    managed(desired) != managed(current)
}

/// Whether updating `current` to `desired` replaces the task (swarm stops
/// the running container): anything of the task differs, or it scales to
/// zero. A change of the service's own labels alone does not.
pub fn replaces_task(desired: &ServiceSpec, current: &ServiceSpec) -> bool {
    let mut d = managed(desired);
    let c = managed(current);
    d.labels = c.labels.clone();
    d.name = c.name.clone();
    d != c
}

/// Whether the published ports of the two specs differ.
pub fn ports_differ(desired: &ServiceSpec, current: &ServiceSpec) -> bool {
    managed(desired).ports != managed(current).ports
}

/// The image of a spec.
pub fn image(spec: &ServiceSpec) -> Option<&str> {
    spec.task_template.as_ref()?.container_spec.as_ref()?.image.as_deref()
}

/// Why `desired` cannot publish its fixed ports: another service (not
/// `own_id`) publishes one of them already. For host-mode ports the engine
/// accepts such a service and leaves its task pending forever ("host-mode port
/// already in use"), so the conflict must be found before.
pub fn port_conflict(desired: &ServiceSpec, services: &[Service], own_id: Option<&str>) -> Option<PortConflict> {
    let wanted: Vec<(i64, EndpointPortConfigProtocolEnum)> = desired
        .endpoint_spec
        .as_ref()
        .map(port_keys)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, protocol, _, published, _)| published.map(|p| (p, protocol)))
        .collect();
    for service in services {
        if own_id.is_some() && service.id.as_deref() == own_id {
            continue;
        }
        let spec_ports = service.spec.as_ref().and_then(|s| s.endpoint_spec.as_ref()).and_then(|e| e.ports.as_ref());
        let assigned = service.endpoint.as_ref().and_then(|e| e.ports.as_ref());
        for port in spec_ports.into_iter().chain(assigned).flatten().map(port_key) {
            let (_, protocol, _, published, _) = port;
            if let Some(published) = published
                && wanted.contains(&(published, protocol))
            {
                let owner = service.spec.as_ref().and_then(|s| s.name.clone()).or_else(|| service.id.clone());
                return Some(PortConflict {
                    port: published,
                    protocol: protocol.as_ref().to_string(),
                    holder: format!("service {}", owner.unwrap_or_default()),
                });
            }
        }
    }
    None
}

/// A published port that another service holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConflict {
    pub port: i64,
    pub protocol: String,
    /// What holds it (`service NAME`).
    pub holder: String,
}

impl From<PortConflict> for BackendError {
    fn from(c: PortConflict) -> Self {
        BackendError::PortTaken { port: c.port, protocol: c.protocol, holder: c.holder }
    }
}

/// What to pull for an image reference: the reference and its tag. An image
/// without a tag or digest means `latest` (the API would pull every tag).
pub fn pull_reference(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (image[..colon].to_string(), image[colon + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

/// Why the engine cannot run mettaton's services, when it cannot.
pub fn manager_problem(swarm: Option<&SwarmInfo>, daemon: &str) -> Option<String> {
    use bollard::models::LocalNodeState;
    let state = swarm.and_then(|s| s.local_node_state).unwrap_or(LocalNodeState::INACTIVE);
    let manager = swarm.and_then(|s| s.control_available).unwrap_or(false);
    match state {
        LocalNodeState::ACTIVE if manager => None,
        LocalNodeState::ACTIVE => Some(format!(
            "the Docker daemon at {daemon} is a swarm worker, not a manager: connect to a manager of the swarm"
        )),
        LocalNodeState::LOCKED => {
            Some(format!("the swarm of the Docker daemon at {daemon} is locked: run `docker swarm unlock`"))
        }
        LocalNodeState::PENDING => {
            Some(format!("the Docker daemon at {daemon} is still joining its swarm: try again in a moment"))
        }
        LocalNodeState::ERROR => Some(format!(
            "the swarm of the Docker daemon at {daemon} is in error ({}): see `docker info`",
            swarm.and_then(|s| s.error.clone()).unwrap_or_default()
        )),
        _ => Some(format!("the Docker daemon at {daemon} is not a swarm manager: run `docker swarm init`")),
    }
}

/// mettaton's own TCP readiness probe of a server on swarm, as Kubernetes'
/// kubelet runs one: a connection to the published port every
/// `health.periodSeconds`; ready after one success, not ready after
/// `health.failureThreshold` failures in a row. Until the first success it
/// probes every second (`health.startupTimeoutSeconds` bounds that phase, as
/// the Kubernetes backend's startup probe does), so that a spawn does not
/// wait a whole period for a server that listens a moment after it starts.
/// The decisions only; the orchestrator connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProbe {
    /// The task probed: a new task starts afresh.
    pub task: String,
    pub ready: bool,
    /// It passed once: the startup phase is over.
    pub passed_once: bool,
    /// Failures in a row.
    pub failures: i32,
    /// When the last probe ran, in milliseconds of the caller's clock.
    pub last_ms: Option<u64>,
}

impl TcpProbe {
    pub fn new(task: &str) -> TcpProbe {
        TcpProbe { task: task.to_string(), ready: false, passed_once: false, failures: 0, last_ms: None }
    }

    /// Whether a probe is due at `now_ms`.
    pub fn due(&self, now_ms: u64, period_seconds: i32) -> bool {
        let period_ms = match self.passed_once {
            true => u64::try_from(period_seconds.max(1)).unwrap_or(1) * 1000,
            false => 1000,
        };
        self.last_ms.is_none_or(|last| now_ms.saturating_sub(last) >= period_ms)
    }

    /// The result of a probe run at `now_ms`.
    pub fn record(&mut self, now_ms: u64, ok: bool, failure_threshold: i32) {
        self.last_ms = Some(now_ms);
        if ok {
            self.ready = true;
            self.passed_once = true;
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.failures >= failure_threshold.max(1) {
                self.ready = false;
            }
        }
    }
}

/// The published TCP port the readiness check of the plan connects to, when
/// it is a TCP check and the endpoint has that port.
pub fn probe_port(plan: &ServerPlan, endpoint: &Endpoint) -> Option<i32> {
    let Some(Check::Tcp { port }) = plan.container.readiness else { return None };
    let name = plan.container.ports.iter().find(|p| p.container_port == port && p.protocol == Protocol::TCP)?;
    endpoint.ports.iter().find(|p| p.name == name.name && p.protocol == Protocol::TCP).map(|p| p.port)
}

/// A task has ended (or never will run): its container is gone or going.
fn is_terminal(state: TaskState) -> bool {
    state > TaskState::RUNNING
}

fn state(task: &Task) -> TaskState {
    task.status.as_ref().and_then(|s| s.state).unwrap_or_default()
}

fn wants_running(task: &Task) -> bool {
    // Swarm sets `ready` as the desired state of a task created ahead of its
    // start (stop-first updates), `running` once it should run.
    matches!(task.desired_state, Some(TaskState::RUNNING | TaskState::READY))
}

/// Newest first: by creation time, then by id so that the order is total.
fn created(task: &Task) -> (Option<Timestamp>, Option<&str>) {
    (task.created_at.as_deref().and_then(|t| t.parse().ok()), task.id.as_deref())
}

/// The task that is the server now: the newest one meant to run, else the
/// newest one still on its way out (a stopping server), else none.
pub fn current_task(tasks: &[Task]) -> Option<&Task> {
    tasks
        .iter()
        .filter(|t| wants_running(t))
        .max_by_key(|t| created(t))
        .or_else(|| tasks.iter().filter(|t| !is_terminal(state(t))).max_by_key(|t| created(t)))
}

/// The ids of the tasks that ended on their own: the container exited
/// (failed, or completed while it should run), or could not be started
/// (rejected). Each was followed by a restart. Tasks that swarm shut down (an
/// update, a scale to zero) do not count.
pub fn failed_tasks(tasks: &[Task]) -> BTreeSet<String> {
    tasks
        .iter()
        .filter(|t| matches!(state(t), TaskState::FAILED | TaskState::COMPLETE | TaskState::REJECTED))
        .filter_map(|t| t.id.clone())
        .collect()
}

/// The engine's name of a task (and of its container): `service.slot.id`.
fn task_name(service_name: &str, task: &Task) -> String {
    let slot = task.slot.map(|s| s.to_string()).unwrap_or_else(|| task.node_id.clone().unwrap_or_default());
    format!("{service_name}.{slot}.{}", task.id.as_deref().unwrap_or_default())
}

fn task_error(task: &Task) -> Option<String> {
    task.status.as_ref().and_then(|s| s.err.clone()).filter(|e| !e.is_empty())
}

/// What the current task says of the server. `restarts` comes from
/// [`failed_tasks`] (and what was seen of them before, since swarm keeps only a
/// few tasks per slot). Swarm reports a task with a healthcheck as running
/// only once the check passed, and replaces one that turns unhealthy: a
/// running task is a ready server.
pub fn instance(service_name: &str, task: &Task, tasks: &[Task], restarts: usize) -> Instance {
    let state = state(task);
    // A task with a healthcheck stays `starting` (with its container up, and
    // no pid reported) until the check first passes.
    let container =
        task.status.as_ref().and_then(|s| s.container_status.as_ref()).and_then(|c| c.container_id.as_ref());
    let running =
        state == TaskState::RUNNING || (state == TaskState::STARTING && container.is_some_and(|c| !c.is_empty()));
    let ready = state == TaskState::RUNNING;
    let problem = if ready {
        None
    } else {
        task_error(task)
            .or_else(|| {
                matches!(state, TaskState::FAILED | TaskState::REJECTED | TaskState::ORPHANED)
                    .then(|| state.to_string())
            })
            .or_else(|| {
                // While the replacement of a failed task starts, the failure is
                // the problem to report, as a container's last state would be.
                let failed = failed_tasks(tasks);
                tasks
                    .iter()
                    .filter(|t| t.id.as_ref().is_some_and(|id| failed.contains(id)))
                    .max_by_key(|t| created(t))
                    .and_then(task_error)
                    .filter(|_| restarts > 0)
            })
    };
    Instance {
        name: task_name(service_name, task),
        running,
        ready,
        restarts: i32::try_from(restarts).unwrap_or(i32::MAX),
        problem,
        // Swarm has no reason codes: its problem is the task's message.
        problem_message: None,
        terminating: !wants_running(task),
    }
}

/// The service's rollout. `up_to_date` holds the ids of the tasks that run the
/// service's current spec (the engine's own test, as `docker service update`
/// uses it): right after an update the engine has not yet marked the update
/// as under way, and the old task is still the one running.
pub fn workload(service: &Service, tasks: &[Task], current: Option<&Task>, up_to_date: &BTreeSet<String>) -> Workload {
    let desired = service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(1);
    let updating = service.update_status.as_ref().and_then(|u| u.state).is_some_and(|s| {
        matches!(
            s,
            ServiceUpdateStatusStateEnum::UPDATING
                | ServiceUpdateStatusStateEnum::PAUSED
                | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
        )
    });
    let current_is_latest = match current.filter(|t| wants_running(t)) {
        Some(task) => task.id.as_ref().is_some_and(|id| up_to_date.contains(id)),
        None => desired == 0,
    };
    let ready = current.is_some_and(|t| wants_running(t) && state(t) == TaskState::RUNNING);
    Workload {
        desired: i32::try_from(desired).unwrap_or(1),
        ready: i32::from(ready),
        rolled_out: !updating && current_is_latest,
        existing: i32::try_from(tasks.iter().filter(|t| !is_terminal(state(t))).count()).unwrap_or(i32::MAX),
    }
}

/// The address players reach a node at: its own address, or, for a manager
/// that reports `0.0.0.0` (listening on every interface), the address it is
/// reached at by the other managers.
pub fn node_address(node: &Node) -> Option<String> {
    let own = node.status.as_ref().and_then(|s| s.addr.clone()).filter(|a| !a.is_empty() && a != "0.0.0.0");
    own.or_else(|| {
        let addr = node.manager_status.as_ref()?.addr.as_deref()?;
        let host = match addr.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => addr,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (!host.is_empty() && host != "0.0.0.0").then(|| host.to_string())
    })
}

/// Where players connect: the node the task runs on, and the ports the engine
/// published there for it (host mode: on that node only). Before the task has
/// its ports, the fixed external ports of the plan are the ones it will get.
pub fn endpoint(plan: &ServerPlan, task: Option<&Task>, node: Option<&Node>) -> Endpoint {
    let Some(task) = task else { return Endpoint::default() };
    let published =
        task.status.as_ref().and_then(|s| s.port_status.as_ref()).and_then(|p| p.ports.as_deref()).unwrap_or_default();
    let ports = plan
        .container
        .ports
        .iter()
        .filter_map(|p| {
            let from_task = published
                .iter()
                .map(port_key)
                .find(|(_, proto, target, _, _)| {
                    *target == Some(i64::from(p.container_port)) && *proto == protocol(p.protocol)
                })
                .and_then(|(_, _, _, published, _)| published)
                .and_then(|port| i32::try_from(port).ok());
            let port = from_task.or(p.external_port)?;
            Some(PublishedPort { name: p.name.clone(), port, protocol: p.protocol })
        })
        .collect();
    Endpoint { address: node.and_then(node_address), ports }
}

/// Log lines of several tasks (each with the engine's timestamp in front), in
/// the order they were written, timestamps removed, the last `tail` of them.
pub fn merge_log_lines(text: &str, tail: Option<i64>) -> String {
    let mut lines: Vec<(Option<Timestamp>, usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| match line.split_once(' ') {
            Some((stamp, rest)) => match stamp.parse::<Timestamp>() {
                Ok(t) => (Some(t), i, rest),
                Err(_) => (None, i, line),
            },
            None => match line.parse::<Timestamp>() {
                Ok(t) => (Some(t), i, ""),
                Err(_) => (None, i, line),
            },
        })
        .collect();
    lines.sort_by_key(|(t, i, _)| (*t, *i));
    let skip = match tail {
        Some(n) => lines.len().saturating_sub(usize::try_from(n.max(0)).unwrap_or(usize::MAX)),
        None => 0,
    };
    let mut out = String::new();
    for (_, _, line) in lines.into_iter().skip(skip) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What an engine event says of a server's container, for containers that
/// carry the identity labels; `None` for any other event.
pub fn server_event(message: &EventMessage) -> Option<ServerEvent> {
    let actor = message.actor.as_ref()?;
    let attributes = actor.attributes.as_ref()?;
    if attributes.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
        return None;
    }
    let action = message.action.as_deref()?;
    let kind = match action {
        "start" => ServerEventKind::Started,
        "die" => ServerEventKind::Exited { exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()) },
        "oom" => ServerEventKind::OutOfMemory,
        _ => match action.strip_prefix("health_status:").map(str::trim) {
            Some("unhealthy") => ServerEventKind::Unhealthy,
            Some("healthy") => ServerEventKind::Healthy,
            _ => return None,
        },
    };
    Some(ServerEvent {
        gameserver: attributes.get(LABEL_GAMESERVER)?.clone(),
        namespace: attributes.get(LABEL_NAMESPACE).cloned().unwrap_or_else(|| "default".into()),
        kind,
        container_id: actor.id.clone().unwrap_or_default(),
        task_id: attributes.get(LABEL_SWARM_TASK_ID).cloned(),
        service_name: attributes.get(LABEL_SWARM_SERVICE_NAME).cloned(),
        time_nanos: message.time_nano,
    })
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GameServer, GameServerSpec};
    use crate::plan::{self, plan_spec};
    use serde_json::{Value, json};

    fn spec(value: Value) -> GameServerSpec {
        serde_json::from_value(value).unwrap()
    }

    fn minecraft() -> Value {
        json!({
            "image": "itzg/minecraft-server:java21",
            "args": ["--nogui"],
            "env": [{ "name": "EULA", "value": "TRUE" }, { "name": "EMPTY" }],
            "ports": [
                { "name": "game", "containerPort": 25565, "externalPort": 25565 },
                { "name": "query", "containerPort": 25565, "protocol": "UDP" }
            ],
            "resources": { "limits": { "cpu": "2", "memory": "4Gi" }, "requests": { "cpu": "500m", "memory": "2Gi" } },
            "storage": { "size": "10Gi", "mountPath": "/data", "reclaimPolicy": "Retain" },
            "config": [{ "path": "/data/server.properties", "content": "motd=hi\n" }],
            "health": { "startupTimeoutSeconds": 300, "periodSeconds": 5, "failureThreshold": 4,
                        "probe": { "exec": ["mc-health"] } },
            "shutdown": { "gracePeriodSeconds": 30 }
        })
    }

    fn plan_of(value: Value) -> ServerPlan {
        plan_spec("mc", "games", &spec(value))
    }

    fn refusal(result: Result<impl std::fmt::Debug, BackendError>) -> String {
        match result {
            Err(BackendError::Refused { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_service_spec_runs_the_whole_plan() {
        let spec = service_spec(&plan_of(minecraft()), Some("uid-1")).unwrap();
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_yaml_snapshot!(spec);
        });
    }

    #[test]
    fn names_carry_the_namespace_and_default_to_default() {
        let p = plan_of(minecraft());
        assert_eq!(service_name(&p), "mettaton-games-mc");
        assert_eq!(volume_name(&p), "mettaton-games-mc-data");
        let p = plan_spec("mc", "", &spec(minecraft()));
        assert_eq!(service_name(&p), "mettaton-default-mc");
        assert_eq!(display_name(&p), "default/mc");
    }

    #[test]
    fn names_swarm_would_refuse_are_shortened_and_hashed() {
        let dotted = plan_spec("mc.survival", "games", &spec(minecraft()));
        let name = service_name(&dotted);
        assert!(name.starts_with("mettaton-games-mc-survival-"), "{name}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{name}");
        let dashed = plan_spec("mc-survival", "games", &spec(minecraft()));
        assert_ne!(service_name(&dashed), name, "a dot and a dash are different servers");

        let long_name = "x".repeat(200);
        let long = plan_spec(&long_name, "games", &spec(minecraft()));
        let other = plan_spec(&format!("{long_name}y"), "games", &spec(minecraft()));
        assert_eq!(service_name(&long).len(), 63);
        assert_ne!(service_name(&long), service_name(&other));
        let config = config_name(&long, 12, "/a", "b");
        assert!(config.len() <= 64 && config.ends_with(|c: char| c.is_ascii_alphanumeric()), "{config}");
    }

    #[test]
    fn config_names_change_with_the_content_and_only_then() {
        let p = plan_of(minecraft());
        let a = config_name(&p, 0, "/data/server.properties", "motd=hi\n");
        assert!(a.starts_with("mettaton-games-mc-") && a.ends_with("-0"), "{a}");
        assert_eq!(a, config_name(&p, 0, "/data/server.properties", "motd=hi\n"));
        assert_ne!(a, config_name(&p, 0, "/data/server.properties", "motd=hello\n"));
        assert_ne!(a, config_name(&p, 0, "/data/other.properties", "motd=hi\n"));
    }

    #[test]
    fn config_files_are_labelled_base64_configs() {
        let p = plan_of(minecraft());
        let configs = config_files(&p).unwrap();
        assert_eq!(configs.len(), 1);
        let c = &configs[0];
        assert_eq!(c.path, "/data/server.properties");
        assert_eq!(c.spec.name.as_deref(), Some(c.name.as_str()));
        assert_eq!(c.spec.data.as_deref(), Some("bW90ZD1oaQo="));
        assert!(is_ours(c.spec.labels.as_ref(), &p));
        assert_eq!(c.spec.labels.as_ref().unwrap()[LABEL_PATH], "/data/server.properties");
    }

    #[test]
    fn what_swarm_cannot_do_is_refused_with_the_field_named() {
        let mut v = minecraft();
        v["env"] = json!([{ "name": "RCON_PASSWORD", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }]);
        let reason = refusal(service_spec(&plan_of(v), None));
        assert!(reason.contains("env RCON_PASSWORD uses valueFrom"), "{reason}");

        let mut v = minecraft();
        v["config"] = json!([{ "path": "/data/ops.json", "configMapKeyRef": { "name": "ops", "key": "ops.json" } }]);
        let reason = refusal(service_spec(&plan_of(v), None));
        assert!(reason.contains("config file /data/ops.json comes from key ops.json of ConfigMap ops"), "{reason}");

        // A stop command is run by the orchestrator (swarm has no pre-stop
        // hook), so it is no refusal.
        let mut v = minecraft();
        v["shutdown"] = json!({ "stopCommand": ["rcon-cli", "stop"] });
        assert!(service_spec(&plan_of(v), None).is_ok());

        let mut v = minecraft();
        v["resources"] = json!({ "limits": { "nvidia.com/gpu": "1" } });
        assert!(refusal(service_spec(&plan_of(v), None)).contains("resources.limits.nvidia.com/gpu"));

        let mut v = minecraft();
        v["storage"]["mountPath"] = json!("data");
        assert!(
            refusal(service_spec(&plan_of(v), None)).contains("storage.mountPath \"data\" must be an absolute path")
        );

        let mut v = minecraft();
        v["resources"] = json!({ "requests": { "memory": "lots" } });
        assert!(refusal(service_spec(&plan_of(v), None)).contains("resources.requests.memory: \"lots\""));
    }

    #[test]
    fn a_tcp_check_sets_no_healthcheck_and_an_exec_check_one() {
        let mut v = minecraft();
        v["health"] = json!({ "probe": { "tcpPort": "game" } });
        let spec = service_spec(&plan_of(v), None).unwrap();
        let container = spec.task_template.unwrap().container_spec.unwrap();
        assert_eq!(container.health_check, None);
        assert!(!spec.labels.unwrap().contains_key(LABEL_READINESS));

        let spec = service_spec(&plan_of(minecraft()), None).unwrap();
        let check = spec.task_template.unwrap().container_spec.unwrap().health_check.unwrap();
        assert_eq!(check.test.unwrap(), ["CMD", "mc-health"]);
        assert_eq!(check.interval, Some(5 * NANOS_PER_SECOND));
        assert_eq!(check.retries, Some(4));
        assert_eq!(check.start_period, Some(300 * NANOS_PER_SECOND));
    }

    #[test]
    fn a_stopped_server_has_no_replica() {
        let mut v = minecraft();
        v["state"] = json!("Stopped");
        let spec = service_spec(&plan_of(v), None).unwrap();
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(0));
    }

    /// The spec as the engine gives it back: what mettaton sent, with the
    /// engine's defaults filled in and empty lists dropped.
    fn as_the_engine_returns(spec: &ServiceSpec) -> ServiceSpec {
        let mut v = serde_json::to_value(spec).unwrap();
        let task = &mut v["TaskTemplate"];
        task["ForceUpdate"] = json!(0);
        task["Runtime"] = json!("container");
        if task["Placement"].is_null() {
            task["Placement"] = json!({});
        }
        // The engine records the platforms the image runs on beside the constraints.
        task["Placement"]["Platforms"] = json!([{ "Architecture": "amd64", "OS": "linux" }]);
        task["ContainerSpec"]["Init"] = json!(false);
        task["ContainerSpec"]["DNSConfig"] = json!({});
        task["ContainerSpec"]["Isolation"] = json!("default");
        task["RestartPolicy"]["MaxAttempts"] = json!(0);
        task["RestartPolicy"]["Delay"] = json!(5_000_000_000i64);
        // Read back under a key bollard does not know.
        task["ContainerSpec"].as_object_mut().unwrap().remove("HealthCheck");
        v["EndpointSpec"]["Mode"] = json!("vip");
        v["UpdateConfig"] = json!({ "Parallelism": 1, "FailureAction": "pause", "Order": "stop-first" });
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_spec_the_engine_holds_already_needs_no_update() {
        let p = plan_of(minecraft());
        let desired = with_config_ids(
            service_spec(&p, Some("uid-1")).unwrap(),
            &HashMap::from([(config_files(&p).unwrap()[0].name.clone(), "cfg-1".to_string())]),
        );
        assert!(!needs_update(&desired, &as_the_engine_returns(&desired)));

        let mut v = minecraft();
        v["env"] = json!([]);
        v["args"] = json!([]);
        v["resources"] = json!({});
        let bare = service_spec(&plan_of(v), Some("uid-1")).unwrap();
        let mut current = as_the_engine_returns(&bare);
        let container = current.task_template.as_mut().unwrap().container_spec.as_mut().unwrap();
        (container.env, container.args) = (Some(vec![]), Some(vec![]));
        assert!(!needs_update(&bare, &current), "empty lists and absent ones are the same");
    }

    #[test]
    fn every_change_mettaton_decides_needs_an_update() {
        let base = service_spec(&plan_of(minecraft()), Some("uid-1")).unwrap();
        let current = as_the_engine_returns(&base);
        let changed = |edit: fn(&mut Value)| {
            let mut v = minecraft();
            edit(&mut v);
            service_spec(&plan_of(v), Some("uid-1")).unwrap()
        };
        let cases: Vec<(&str, ServiceSpec)> = vec![
            ("image", changed(|v| v["image"] = json!("itzg/minecraft-server:java17"))),
            ("env removed", changed(|v| v["env"] = json!([{ "name": "EULA", "value": "TRUE" }]))),
            ("args removed", changed(|v| v["args"] = json!([]))),
            ("command added", changed(|v| v["command"] = json!(["/start"]))),
            ("limits removed", changed(|v| v["resources"] = json!({ "requests": { "cpu": "500m", "memory": "2Gi" } }))),
            ("stopped", changed(|v| v["state"] = json!("Stopped"))),
            ("grace period", changed(|v| v["shutdown"] = json!({ "gracePeriodSeconds": 31 }))),
            ("config content", changed(|v| v["config"][0]["content"] = json!("motd=other\n"))),
            ("healthcheck", changed(|v| v["health"]["periodSeconds"] = json!(6))),
            ("port", changed(|v| v["ports"][0]["externalPort"] = json!(25566))),
            ("volume removed", changed(|v| v.as_object_mut().unwrap().remove("storage").map(|_| ()).unwrap())),
            ("label", changed(|v| v["description"] = json!("not a label"))),
        ];
        for (what, desired) in cases {
            let differs = needs_update(&desired, &current);
            assert_eq!(differs, what != "label", "{what}");
        }
        let other_owner = service_spec(&plan_of(minecraft()), Some("uid-2")).unwrap();
        assert!(needs_update(&other_owner, &current), "a new GameServer of the same name");
    }

    #[test]
    fn an_update_keeps_what_others_set() {
        let desired = service_spec(&plan_of(minecraft()), None).unwrap();
        let mut current = as_the_engine_returns(&desired);
        let task = current.task_template.as_mut().unwrap();
        task.placement = Some(bollard::models::TaskSpecPlacement {
            constraints: Some(vec!["node.labels.games==true".into()]),
            ..Default::default()
        });
        task.force_update = Some(3);
        let update = for_update(desired.clone(), &current);
        let task = update.task_template.as_ref().unwrap();
        assert_eq!(task.placement, current.task_template.as_ref().unwrap().placement);
        assert_eq!(task.force_update, Some(3), "a changed counter would restart the server");
        assert_eq!(update.update_config, current.update_config);
        assert_eq!(update.task_template.unwrap().container_spec, desired.task_template.unwrap().container_spec);
    }

    /// A service type other than NodePort and service annotations have no
    /// meaning on swarm: refused, naming the field.
    #[test]
    fn service_types_and_annotations_swarm_cannot_honour_are_refused_by_name() {
        for (service, field) in [
            (json!({ "type": "LoadBalancer" }), "spec.service.type LoadBalancer"),
            (json!({ "type": "ClusterIP" }), "spec.service.type ClusterIP"),
            (json!({ "annotations": { "lb.example.com/x": "y" } }), "spec.service.annotations"),
        ] {
            let mut v = minecraft();
            v["service"] = service;
            let reason = refusal(service_spec(&plan_of(v), None));
            assert!(reason.starts_with(field), "{reason}");
        }
        let mut v = minecraft();
        v["service"] = json!({ "type": "NodePort" });
        assert!(service_spec(&plan_of(v), None).is_ok());
    }

    /// storageClassName names the volume driver; the size is told to none,
    /// recorded on the volume and reported as a limitation naming the field.
    #[test]
    fn the_storage_class_is_the_volume_driver_and_the_size_a_limitation() {
        let mut v = minecraft();
        v["storage"]["storageClassName"] = json!("rexray");
        let p = plan_of(v);
        let request = volume_request(&p).unwrap();
        assert_eq!(request.driver.as_deref(), Some("rexray"));
        assert_eq!(request.labels.unwrap()[LABEL_SIZE], "10Gi");
        let spec = service_spec(&p, None).unwrap();
        let mount = &spec.task_template.unwrap().container_spec.unwrap().mounts.unwrap()[0];
        let driver = mount.volume_options.as_ref().unwrap().driver_config.as_ref().unwrap();
        assert_eq!(driver.name.as_deref(), Some("rexray"));
        let found = limitations(&p);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("spec.storage.size 10Gi is not enforced on Docker Swarm: volume driver rexray"));
        let plain = plan_of(minecraft());
        assert_eq!(volume_request(&plain).unwrap().driver, None, "Docker's default: local");
        let mut none = minecraft();
        none.as_object_mut().unwrap().remove("storage");
        assert!(limitations(&plan_of(none)).is_empty());
    }

    /// mettaton's TCP probe: every second until it first passes, then every
    /// period; ready after one success, not ready after the failure threshold
    /// in a row; a new task starts afresh (the orchestrator makes a new one).
    #[test]
    fn the_tcp_probe_follows_the_period_and_the_failure_threshold() {
        let mut p = TcpProbe::new("t1");
        assert!(p.due(0, 10) && !p.ready);
        p.record(0, false, 3);
        assert!(!p.due(999, 10) && p.due(1000, 10), "a second apart before the first success");
        p.record(1000, true, 3);
        assert!(p.ready);
        assert!(!p.due(10_999, 10) && p.due(11_000, 10), "then a period apart");
        p.record(11_000, false, 3);
        p.record(21_000, false, 3);
        assert!(p.ready, "two failures of three");
        p.record(31_000, false, 3);
        assert!(!p.ready, "the third in a row");
        p.record(41_000, true, 3);
        assert!(p.ready && p.failures == 0);
    }

    #[test]
    fn the_probe_port_is_the_published_port_of_the_checked_one() {
        let mut v = minecraft();
        v["health"]["probe"] = json!({ "tcpPort": "game" });
        let p = plan_of(v);
        let endpoint = Endpoint {
            address: Some("127.0.0.1".into()),
            ports: vec![
                PublishedPort { name: "query".into(), port: 30001, protocol: Protocol::UDP },
                PublishedPort { name: "game".into(), port: 30000, protocol: Protocol::TCP },
            ],
        };
        assert_eq!(probe_port(&p, &endpoint), Some(30000));
        assert_eq!(probe_port(&plan_of(minecraft()), &endpoint), None, "an exec check");
    }

    /// A restart asked for is a label of the task's container: a new value is
    /// an update of the task template (the engine makes a new task), the same
    /// one is none, and the update keeps it.
    #[test]
    fn a_restart_token_updates_the_task_once() {
        let restarted = |token: Option<&str>| {
            let mut plan = plan_of(minecraft());
            plan.restart_token = token.map(String::from);
            service_spec(&plan, None).unwrap()
        };
        let container_labels =
            |spec: &ServiceSpec| spec.task_template.clone().unwrap().container_spec.unwrap().labels.unwrap();
        let never = restarted(None);
        assert!(!container_labels(&never).contains_key(plan::ANNOTATION_RESTARTED_AT));
        let first = restarted(Some("2026-12-03T10:00:00Z"));
        assert_eq!(container_labels(&first)[plan::ANNOTATION_RESTARTED_AT], "2026-12-03T10:00:00Z");
        // Nothing else of the service changes.
        let mut without = first.clone();
        without.task_template.as_mut().unwrap().container_spec.as_mut().unwrap().labels =
            never.task_template.as_ref().unwrap().container_spec.as_ref().unwrap().labels.clone();
        assert_eq!(without, never);

        let running = as_the_engine_returns(&never);
        assert!(needs_update(&first, &running), "asked: the task is replaced");
        let update = for_update(first.clone(), &running);
        assert_eq!(container_labels(&update), container_labels(&first), "the update carries it");
        let restarted_once = as_the_engine_returns(&update);
        assert!(!needs_update(&first, &restarted_once), "the same token again: no new task");
        assert!(needs_update(&restarted(Some("2026-12-03T11:00:00Z")), &restarted_once), "a new one: again");
    }

    fn with_node_selector(selector: Value) -> Value {
        let mut v = minecraft();
        v["nodeSelector"] = selector;
        v
    }

    fn constraints_of(spec: &ServiceSpec) -> Option<Vec<String>> {
        spec.task_template.as_ref()?.placement.as_ref()?.constraints.clone()
    }

    #[test]
    fn the_node_selector_becomes_placement_constraints_on_node_labels() {
        let spec = service_spec(&plan_of(with_node_selector(json!({ "pool": "games", "disk": "ssd" }))), None).unwrap();
        let want = vec!["node.labels.disk==ssd".to_string(), "node.labels.pool==games".to_string()];
        assert_eq!(constraints_of(&spec), Some(want));
        assert_eq!(spec.labels.unwrap()[LABEL_CONSTRAINTS], "node.labels.disk==ssd,node.labels.pool==games");
        let plain = service_spec(&plan_of(minecraft()), None).unwrap();
        assert_eq!(plain.task_template.unwrap().placement, None);
        assert!(!plain.labels.unwrap().contains_key(LABEL_CONSTRAINTS));
    }

    #[test]
    fn placement_swarm_cannot_express_is_refused_with_the_field_named() {
        let mut v = minecraft();
        v["tolerations"] = json!([{ "key": "dedicated", "value": "games", "effect": "NoSchedule" }]);
        let reason = refusal(service_spec(&plan_of(v), None));
        assert!(reason.starts_with("spec.tolerations cannot be used on Docker Swarm, which has no taints"), "{reason}");

        let reason = refusal(service_spec(&plan_of(with_node_selector(json!({ "example.com/pool": "games" }))), None));
        assert!(reason.contains("spec.nodeSelector key \"example.com/pool\""), "{reason}");
        let reason = refusal(service_spec(&plan_of(with_node_selector(json!({ "pool": "" }))), None));
        assert!(reason.contains("spec.nodeSelector pool: value \"\""), "{reason}");
        let reason = refusal(service_spec(&plan_of(with_node_selector(json!({ "pool": "a==b" }))), None));
        assert!(reason.contains("spec.nodeSelector pool"), "{reason}");
    }

    #[test]
    fn own_constraints_decide_an_update_and_an_operators_do_not() {
        let base = service_spec(&plan_of(with_node_selector(json!({ "pool": "games" }))), Some("uid-1")).unwrap();
        let current = as_the_engine_returns(&base);
        assert!(!needs_update(&base, &current), "as sent");

        let other = service_spec(&plan_of(with_node_selector(json!({ "pool": "arena" }))), Some("uid-1")).unwrap();
        assert!(needs_update(&other, &current), "a changed value");
        let more = with_node_selector(json!({ "pool": "games", "disk": "ssd" }));
        assert!(needs_update(&service_spec(&plan_of(more), Some("uid-1")).unwrap(), &current), "one more");
        let none = service_spec(&plan_of(minecraft()), Some("uid-1")).unwrap();
        assert!(needs_update(&none, &current), "the selector removed");

        let with_constraints = |constraints: &[&str]| {
            let mut operated = current.clone();
            let placement = operated.task_template.as_mut().unwrap().placement.as_mut().unwrap();
            placement.constraints = Some(constraints.iter().map(|c| c.to_string()).collect());
            operated
        };
        let added = with_constraints(&["node.labels.pool==games", "node.role==worker"]);
        assert!(!needs_update(&base, &added), "an operator's constraint is theirs");
        let removed = with_constraints(&["node.role==worker"]);
        assert!(needs_update(&base, &removed), "mettaton's constraint removed by hand is put back");
    }

    #[test]
    fn an_update_replaces_its_own_constraints_and_keeps_an_operators() {
        let old = service_spec(&plan_of(with_node_selector(json!({ "pool": "games" }))), None).unwrap();
        let mut current = as_the_engine_returns(&old);
        let placement = current.task_template.as_mut().unwrap().placement.as_mut().unwrap();
        placement.constraints.as_mut().unwrap().insert(0, "node.role==worker".into());
        placement.max_replicas = Some(1);

        let desired = service_spec(&plan_of(with_node_selector(json!({ "pool": "arena" }))), None).unwrap();
        let update = for_update(desired.clone(), &current);
        let placement = update.task_template.as_ref().unwrap().placement.clone().unwrap();
        assert_eq!(placement.constraints.unwrap(), ["node.role==worker", "node.labels.pool==arena"]);
        assert_eq!(placement.max_replicas, Some(1), "the operator's other placement settings stay");
        assert!(!needs_update(&desired, &as_the_engine_returns(&update)), "what the update sends is what is wanted");

        let dropped = for_update(service_spec(&plan_of(minecraft()), None).unwrap(), &current);
        let placement = dropped.task_template.unwrap().placement.unwrap();
        assert_eq!(placement.constraints.unwrap(), ["node.role==worker"]);

        // A service made before mettaton set constraints: nothing of it is mettaton's.
        let mut bare = as_the_engine_returns(&service_spec(&plan_of(minecraft()), None).unwrap());
        bare.task_template.as_mut().unwrap().placement = None;
        let update = for_update(desired, &bare);
        let placement = update.task_template.unwrap().placement.unwrap();
        assert_eq!(placement.constraints.unwrap(), ["node.labels.pool==arena"]);
    }

    fn service(value: Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_port_another_service_publishes_is_a_conflict() {
        let desired = service_spec(&plan_of(minecraft()), None).unwrap();
        let host = |id: &str, port: i64, protocol: &str| {
            service(json!({ "ID": id, "Spec": { "Name": format!("svc-{id}"), "EndpointSpec": { "Ports": [
                { "Protocol": protocol, "TargetPort": 80, "PublishedPort": port, "PublishMode": "host" }
            ] } } }))
        };
        assert_eq!(
            port_conflict(&desired, &[host("a", 25565, "tcp")], None)
                .map(|c| BackendError::from(c).to_string())
                .as_deref(),
            Some("port 25565/tcp is already published by service svc-a")
        );
        assert_eq!(port_conflict(&desired, &[host("a", 25565, "tcp")], Some("a")), None, "its own port");
        assert_eq!(port_conflict(&desired, &[host("a", 25565, "udp")], None), None, "another protocol");
        assert_eq!(port_conflict(&desired, &[host("a", 25566, "tcp")], None), None);
        // An ingress port the engine chose is in the service's endpoint only.
        let assigned = service(json!({ "ID": "b", "Spec": { "Name": "svc-b" }, "Endpoint": { "Ports": [
            { "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 25565, "PublishMode": "ingress" }
        ] } }));
        assert!(port_conflict(&desired, &[assigned], None).is_some());
    }

    #[test]
    fn images_are_pulled_by_tag() {
        for (image, want) in [
            ("itzg/minecraft-server", ("itzg/minecraft-server", "latest")),
            ("itzg/minecraft-server:java21", ("itzg/minecraft-server", "java21")),
            ("127.0.0.1:5999/game:1", ("127.0.0.1:5999/game", "1")),
            ("127.0.0.1:5999/game", ("127.0.0.1:5999/game", "latest")),
            ("game@sha256:abc", ("game@sha256:abc", "")),
        ] {
            assert_eq!(pull_reference(image), (want.0.to_string(), want.1.to_string()), "{image}");
        }
    }

    #[test]
    fn only_an_active_manager_will_do() {
        let info = |v: Value| serde_json::from_value::<SwarmInfo>(v).unwrap();
        let at = "unix:///var/run/docker.sock";
        assert_eq!(
            manager_problem(Some(&info(json!({ "LocalNodeState": "active", "ControlAvailable": true }))), at),
            None
        );
        let problem = manager_problem(Some(&info(json!({ "LocalNodeState": "inactive" }))), at).unwrap();
        assert_eq!(
            problem,
            "the Docker daemon at unix:///var/run/docker.sock is not a swarm manager: run `docker swarm init`"
        );
        assert_eq!(manager_problem(None, at), Some(problem));
        let worker = manager_problem(Some(&info(json!({ "LocalNodeState": "active", "ControlAvailable": false }))), at);
        assert!(worker.unwrap().contains("is a swarm worker"));
        let locked = manager_problem(Some(&info(json!({ "LocalNodeState": "locked" }))), at);
        assert!(locked.unwrap().contains("docker swarm unlock"));
    }

    fn task(id: &str, created: &str, desired: &str, state: &str, extra: Value) -> Task {
        let mut v = json!({
            "ID": id, "CreatedAt": created, "Slot": 1, "NodeID": "node-1", "DesiredState": desired,
            "Status": { "State": state, "Timestamp": created }
        });
        if let (Some(target), Value::Object(extra)) = (v.as_object_mut(), extra) {
            for (k, value) in extra {
                if k == "Status" {
                    target["Status"].as_object_mut().unwrap().extend(value.as_object().unwrap().clone());
                } else {
                    target.insert(k, value);
                }
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn running_task(id: &str, created: &str) -> Task {
        task(
            id,
            created,
            "running",
            "running",
            json!({ "Status": {
                "ContainerStatus": { "ContainerID": "c", "PID": 42, "ExitCode": 0 },
                "PortStatus": { "Ports": [
                    { "Protocol": "udp", "TargetPort": 25565, "PublishedPort": 32768, "PublishMode": "host" },
                    { "Protocol": "tcp", "TargetPort": 25565, "PublishedPort": 25565, "PublishMode": "host" }
                ] }
            } }),
        )
    }

    fn crashed_task(id: &str, created: &str) -> Task {
        task(
            id,
            created,
            "shutdown",
            "failed",
            json!({ "Status": { "Err": "task: non-zero exit (1)",
                                "ContainerStatus": { "ContainerID": "c", "PID": 0, "ExitCode": 1 } } }),
        )
    }

    #[test]
    fn the_current_task_is_the_newest_meant_to_run() {
        let tasks = vec![
            crashed_task("t1", "2026-01-01T10:00:00.5Z"),
            running_task("t3", "2026-01-01T10:00:02.25Z"),
            crashed_task("t2", "2026-01-01T10:00:01.123456789Z"),
        ];
        assert_eq!(current_task(&tasks).unwrap().id.as_deref(), Some("t3"));
        let stopping = vec![
            task("t4", "2026-01-01T10:00:03Z", "shutdown", "running", json!({})),
            task("t1", "2026-01-01T10:00:00Z", "shutdown", "shutdown", json!({})),
        ];
        assert_eq!(current_task(&stopping).unwrap().id.as_deref(), Some("t4"), "still on its way out");
        let stopped = vec![task("t1", "2026-01-01T10:00:00Z", "shutdown", "shutdown", json!({}))];
        assert!(current_task(&stopped).is_none());
    }

    #[test]
    fn failed_tasks_are_the_restarts_and_shutdowns_are_not() {
        let tasks = vec![
            crashed_task("t1", "2026-01-01T10:00:00Z"),
            task("t2", "2026-01-01T10:00:01Z", "shutdown", "complete", json!({})),
            task("t3", "2026-01-01T10:00:02Z", "shutdown", "rejected", json!({})),
            task("t4", "2026-01-01T10:00:03Z", "shutdown", "shutdown", json!({})),
            running_task("t5", "2026-01-01T10:00:04Z"),
        ];
        assert_eq!(failed_tasks(&tasks), BTreeSet::from(["t1".into(), "t2".into(), "t3".into()]));
    }

    #[test]
    fn a_running_task_is_a_ready_instance() {
        let tasks = vec![crashed_task("t1", "2026-01-01T10:00:00Z"), running_task("t2", "2026-01-01T10:00:01Z")];
        assert_eq!(
            instance("mettaton-games-mc", &tasks[1], &tasks, 1),
            Instance {
                name: "mettaton-games-mc.1.t2".into(),
                running: true,
                ready: true,
                restarts: 1,
                problem: None,
                problem_message: None,
                terminating: false,
            }
        );
    }

    #[test]
    fn a_restarting_instance_reports_the_last_failure() {
        let tasks = vec![
            crashed_task("t1", "2026-01-01T10:00:00Z"),
            task("t2", "2026-01-01T10:00:01Z", "running", "preparing", json!({})),
        ];
        let i = instance("s", &tasks[1], &tasks, 1);
        assert!(!i.running && !i.ready);
        assert_eq!(i.problem.as_deref(), Some("task: non-zero exit (1)"));
        let pending = task(
            "t1",
            "2026-01-01T10:00:00Z",
            "running",
            "pending",
            json!({ "Status": { "Err": "no suitable node (host-mode port already in use on 1 node)" } }),
        );
        let i = instance("s", &pending, std::slice::from_ref(&pending), 0);
        assert_eq!(i.problem.as_deref(), Some("no suitable node (host-mode port already in use on 1 node)"));
        let fresh = task("t1", "2026-01-01T10:00:00Z", "running", "starting", json!({}));
        let i = instance("s", &fresh, std::slice::from_ref(&fresh), 0);
        assert_eq!((i.running, i.problem), (false, None));
        // Waiting for its first passing healthcheck, the container runs.
        let checked = task(
            "t1",
            "2026-01-01T10:00:00Z",
            "running",
            "starting",
            json!({ "Status": { "ContainerStatus": { "ContainerID": "c", "PID": 0, "ExitCode": 0 } } }),
        );
        let i = instance("s", &checked, std::slice::from_ref(&checked), 0);
        assert_eq!((i.running, i.ready, i.problem), (true, false, None));
    }

    #[test]
    fn a_task_swarm_shuts_down_is_terminating() {
        let t = task("t1", "2026-01-01T10:00:00Z", "shutdown", "running", json!({}));
        assert!(instance("s", &t, std::slice::from_ref(&t), 0).terminating);
    }

    #[test]
    fn the_workload_is_rolled_out_when_the_current_task_is_up_to_date() {
        let svc = |update: Value| {
            service(
                json!({ "ID": "s", "Spec": { "Mode": { "Replicated": { "Replicas": 1 } } }, "UpdateStatus": update }),
            )
        };
        let tasks = vec![running_task("t1", "2026-01-01T10:00:00Z")];
        let current = tasks.first();
        let latest = BTreeSet::from(["t1".to_string()]);
        assert_eq!(
            workload(&svc(Value::Null), &tasks, current, &latest),
            Workload { desired: 1, ready: 1, rolled_out: true, existing: 1 }
        );
        assert!(!workload(&svc(Value::Null), &tasks, current, &BTreeSet::new()).rolled_out, "old spec");
        let updating = svc(json!({ "State": "updating" }));
        assert!(!workload(&updating, &tasks, current, &latest).rolled_out);
        let done = svc(json!({ "State": "completed" }));
        assert!(workload(&done, &tasks, current, &latest).rolled_out);

        let scaled_down = service(json!({ "ID": "s", "Spec": { "Mode": { "Replicated": { "Replicas": 0 } } } }));
        let leaving = vec![task("t1", "2026-01-01T10:00:00Z", "shutdown", "running", json!({}))];
        assert_eq!(
            workload(&scaled_down, &leaving, leaving.first(), &BTreeSet::new()),
            Workload { desired: 0, ready: 0, rolled_out: true, existing: 1 }
        );
    }

    fn node(value: Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_endpoint_is_the_tasks_node_and_its_published_ports() {
        let p = plan_of(minecraft());
        let t = running_task("t1", "2026-01-01T10:00:00Z");
        let n = node(json!({ "ID": "node-1", "Status": { "State": "ready", "Addr": "127.0.0.1" } }));
        assert_eq!(
            endpoint(&p, Some(&t), Some(&n)),
            Endpoint {
                address: Some("127.0.0.1".into()),
                ports: vec![
                    PublishedPort { name: "game".into(), port: 25565, protocol: Protocol::TCP },
                    PublishedPort { name: "query".into(), port: 32768, protocol: Protocol::UDP },
                ],
            }
        );
        // Before its ports are published, the fixed ones are known.
        let starting = task("t1", "2026-01-01T10:00:00Z", "running", "assigned", json!({}));
        let e = endpoint(&p, Some(&starting), Some(&n));
        assert_eq!(e.ports, vec![PublishedPort { name: "game".into(), port: 25565, protocol: Protocol::TCP }]);
        assert_eq!(endpoint(&p, None, Some(&n)), Endpoint::default());
    }

    #[test]
    fn a_manager_listening_everywhere_is_reached_at_its_manager_address() {
        let n = node(json!({ "Status": { "Addr": "0.0.0.0" }, "ManagerStatus": { "Addr": "10.0.0.5:2377" } }));
        assert_eq!(node_address(&n).as_deref(), Some("10.0.0.5"));
        let v6 = node(json!({ "Status": { "Addr": "0.0.0.0" }, "ManagerStatus": { "Addr": "[fd00::5]:2377" } }));
        assert_eq!(node_address(&v6).as_deref(), Some("fd00::5"));
        assert_eq!(node_address(&node(json!({ "Status": { "Addr": "0.0.0.0" } }))), None);
    }

    #[test]
    fn log_lines_of_successive_tasks_are_merged_in_time_order() {
        let text = "2026-01-01T10:00:02.5Z second task starts\n\
                    2026-01-01T10:00:00.51Z first task starts\n\
                    2026-01-01T10:00:01Z first task crashes\n\
                    2026-01-01T10:00:03Z \n\
                    no timestamp\n";
        assert_eq!(
            merge_log_lines(text, None),
            "no timestamp\nfirst task starts\nfirst task crashes\nsecond task starts\n\n"
        );
        assert_eq!(merge_log_lines(text, Some(2)), "second task starts\n\n");
        assert_eq!(merge_log_lines(text, Some(0)), "");
        assert_eq!(merge_log_lines("", Some(3)), "");
    }

    #[test]
    fn engine_events_of_managed_containers_name_the_server() {
        let message = |action: &str, attributes: Value| -> EventMessage {
            serde_json::from_value(json!({
                "Type": "container", "Action": action, "timeNano": 1_700_000_000_000_000_000i64,
                "Actor": { "ID": "c1", "Attributes": attributes }
            }))
            .unwrap()
        };
        let ours = json!({
            LABEL_MANAGED: "true", plan::LABEL_GAMESERVER: "mc", LABEL_NAMESPACE: "games",
            LABEL_SWARM_TASK_ID: "t1", LABEL_SWARM_SERVICE_NAME: "mettaton-games-mc", "exitCode": "137"
        });
        let died = server_event(&message("die", ours.clone())).unwrap();
        assert_eq!(
            died,
            ServerEvent {
                gameserver: "mc".into(),
                namespace: "games".into(),
                kind: ServerEventKind::Exited { exit_code: Some(137) },
                container_id: "c1".into(),
                task_id: Some("t1".into()),
                service_name: Some("mettaton-games-mc".into()),
                time_nanos: Some(1_700_000_000_000_000_000),
            }
        );
        assert_eq!(server_event(&message("start", ours.clone())).unwrap().kind, ServerEventKind::Started);
        assert_eq!(server_event(&message("oom", ours.clone())).unwrap().kind, ServerEventKind::OutOfMemory);
        let health = server_event(&message("health_status: unhealthy", ours.clone())).unwrap();
        assert_eq!(health.kind, ServerEventKind::Unhealthy);
        assert_eq!(server_event(&message("exec_start: sh", ours)), None);
        assert_eq!(server_event(&message("die", json!({ "name": "someone-else" }))), None);
    }

    #[test]
    fn only_the_servers_own_objects_are_ours() {
        let p = plan_of(minecraft());
        let labels = |gs: &str, ns: &str| {
            Some(HashMap::from([(LABEL_GAMESERVER.to_string(), gs.to_string()), (LABEL_NAMESPACE.into(), ns.into())]))
        };
        assert!(is_ours(labels("mc", "games").as_ref(), &p));
        assert!(!is_ours(labels("mc", "other").as_ref(), &p));
        assert!(!is_ours(labels("other", "games").as_ref(), &p));
        assert!(!is_ours(None, &p));
    }

    #[test]
    fn the_volume_is_labelled_with_its_reclaim_policy() {
        let p = plan_of(minecraft());
        let request = volume_request(&p).unwrap();
        assert_eq!(request.name.as_deref(), Some("mettaton-games-mc-data"));
        let labels = request.labels.unwrap();
        assert!(is_ours(Some(&labels), &p));
        assert_eq!(labels[LABEL_RECLAIM], "Retain");
        assert_eq!(labels[LABEL_MANAGED], "true");
        let mut v = minecraft();
        v.as_object_mut().unwrap().remove("storage");
        assert_eq!(volume_request(&plan_of(v)), None);
    }

    #[test]
    fn a_game_server_plans_through_the_same_builders() {
        let gs: GameServer = serde_json::from_value(json!({
            "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
            "metadata": { "name": "mc", "namespace": "games", "uid": "u" }, "spec": minecraft()
        }))
        .unwrap();
        let spec = service_spec(&plan::plan(&gs), gs.metadata.uid.as_deref()).unwrap();
        assert_eq!(spec.labels.unwrap()[LABEL_UID], "u");
    }
}
