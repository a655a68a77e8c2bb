//! Whether a running service needs an update: the fields mettaton decides,
//! compared; settings an operator added kept; ports another service holds.

use super::*;

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
pub(super) struct Managed {
    name: Option<String>,
    labels: BTreeMap<String, String>,
    replicas: Option<i64>,
    image: Option<String>,
    command: Vec<String>,
    args: Vec<String>,
    env: Vec<String>,
    /// The working dir; the image's own when `None` (or empty).
    dir: Option<String>,
    container_labels: BTreeMap<String, String>,
    mounts: Vec<MountKey>,
    stop_grace_period: Option<i64>,
    /// The console (`OpenStdin`).
    open_stdin: bool,
    /// SIGTERM for a supervised server; the engine's default otherwise.
    stop_signal: Option<String>,
    configs: Vec<(Option<TaskSpecContainerSpecFile1>, Option<String>, Option<String>)>,
    limits: (i64, i64),
    reservations: (i64, i64),
    restart: Option<TaskSpecRestartPolicyConditionEnum>,
    ports: Vec<PortKey>,
    /// mettaton's own placement constraints that the service has.
    constraints: BTreeSet<String>,
}

/// target, source, type, read-only, volume labels.
pub(super) type MountKey = (Option<String>, Option<String>, Option<MountType>, bool, BTreeMap<String, String>);

/// name, protocol, target port, published port, publish mode.
pub(super) type PortKey =
    (Option<String>, EndpointPortConfigProtocolEnum, Option<i64>, Option<i64>, EndpointPortConfigPublishModeEnum);

pub(super) fn managed(spec: &ServiceSpec) -> Managed {
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
        dir: container.dir.filter(|d| !d.is_empty()),
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
        open_stdin: container.open_stdin.unwrap_or(false),
        stop_signal: container.stop_signal.filter(|s| !s.is_empty()),
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

pub(super) fn port_keys(endpoint: &EndpointSpec) -> Vec<PortKey> {
    endpoint.ports.iter().flatten().map(port_key).collect()
}

pub(super) fn port_key(p: &EndpointPortConfig) -> PortKey {
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
