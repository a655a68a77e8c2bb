//! The service, configs and volume a plan asks for, and the refusals of what
//! swarm cannot do, naming the field.

use super::*;

pub(super) fn refused(plan: &ServerPlan, reason: String) -> BackendError {
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
///
/// Supervised (`health.readyLogLine`, `shutdown.stop`): the container's
/// command is mettaton's supervisor running the spec's command and args, from
/// the volume of `supervisor_image` ([`shared::supervisor_mounts`], filled on
/// every node by [`installer_spec`]); its probe (the ready file, with the
/// check asked for) is the healthcheck; the stop signal is SIGTERM, which it
/// turns into the stop. Every container keeps its stdin open: the console.
pub fn service_spec(
    plan: &ServerPlan,
    owner_uid: Option<&str>,
    supervisor_image: &str,
) -> Result<ServiceSpec, BackendError> {
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
    if let Some(problem) = shared::supervisor_problem(plan, "Docker Swarm") {
        return Err(refused(plan, problem));
    }
    let constraints = constraints(plan)?;
    if let Some(problem) = shared::mount_path_problem(plan) {
        return Err(refused(plan, problem));
    }
    let env = shared::env(plan, |_, var| {
        refused(
            plan,
            format!(
                "env {} uses valueFrom, which Docker Swarm cannot resolve (it has no Secrets or ConfigMaps): give it \
                 a value (the swarm facade and CLI resolve secretKeyRef from a secrets directory, `mettaton swarm \
                 --secrets DIR`)",
                var.name
            ),
        )
    })?;

    let env: Vec<String> = env.iter().map(|e| swarm_literal(e)).collect();
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
    let mut mounts = shared::volume_mounts(plan, volume_name(plan)).unwrap_or_default();
    let supervised = shared::supervised_command(plan);
    if supervised.is_some() {
        mounts.extend(shared::supervisor_mounts(supervisor_image));
    }
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
        args: if supervised.is_some() { None } else { non_empty(container.args.clone()) },
        command: supervised.clone().or_else(|| non_empty(container.command.clone())),
        env: non_empty(env),
        mounts: non_empty(mounts),
        // The console: what is typed reaches the game's (or the
        // supervisor's) stdin, which stays open while nobody types.
        open_stdin: Some(true),
        stop_signal: supervised.as_ref().map(|_| shared::SUPERVISED_STOP_SIGNAL.to_string()),
        stop_grace_period: Some(plan.grace_period_seconds.saturating_mul(NANOS_PER_SECOND)),
        health_check,
        configs: non_empty(configs),
        dir: container.working_dir.clone(),
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

/// `text` as swarm takes it literally where it expands templates (a
/// service's environment, hostname and mounts): swarm reads `{{ ... }}` as a
/// Go template (`{{.Node.Hostname}}`), and refuses one naming no function,
/// so each `{{` is written as the template `{{"{{"}}`, which gives `{{` back
/// (an egg's `STARTUP` holds its `{{VAR}}` placeholders).
pub fn swarm_literal(text: &str) -> String {
    text.replace("{{", "{{\"{{\"}}")
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
pub(super) fn own_constraints(spec: &ServiceSpec) -> Vec<String> {
    spec.labels
        .as_ref()
        .and_then(|l| l.get(LABEL_CONSTRAINTS))
        .map(|v| v.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

pub(super) fn protocol(p: Protocol) -> EndpointPortConfigProtocolEnum {
    match p {
        Protocol::TCP => EndpointPortConfigProtocolEnum::TCP,
        Protocol::UDP => EndpointPortConfigProtocolEnum::UDP,
    }
}

/// cpu and memory limits and reservations; any other resource is refused.
pub(super) fn resources(plan: &ServerPlan) -> Result<Option<TaskSpecResources>, BackendError> {
    let Some(amounts) = shared::amounts(plan, "Docker Swarm", |reason| refused(plan, reason))? else {
        return Ok(None);
    };
    let limits = (amounts.limit_cpu.is_some() || amounts.limit_memory.is_some()).then(|| Limit {
        nano_cpus: amounts.limit_cpu,
        memory_bytes: amounts.limit_memory,
        ..Default::default()
    });
    let reservations = (amounts.request_cpu.is_some() || amounts.request_memory.is_some()).then(|| ResourceObject {
        nano_cpus: amounts.request_cpu,
        memory_bytes: amounts.request_memory,
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

/// The data volume to create, when the server has one (see
/// [`shared::volume_request`]).
pub fn volume_request(plan: &ServerPlan) -> Option<VolumeCreateRequest> {
    shared::volume_request(plan, volume_name(plan))
}

/// What of the plan Docker Swarm runs differently than asked, each naming its
/// field, for the user to see (the facade returns them, the CLI prints them).
/// Everything else is honoured or refused by [`service_spec`].
pub fn limitations(plan: &ServerPlan) -> Vec<String> {
    shared::size_limitation(plan, "Docker Swarm", "node").into_iter().collect()
}
