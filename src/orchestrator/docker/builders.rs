//! Pure builders of the plain Docker backend: a [`ServerPlan`] turned into the
//! container and volume that run it, and what the engine reports (container
//! inspection, events) turned back into the neutral [`Observed`] view. No
//! client, no I/O: everything here is tested without an engine.
//!
//! [`Observed`]: crate::orchestrator::Observed

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary, EventMessage,
    HealthStatusEnum, HostConfig, PortBinding, PortSummaryTypeEnum, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};

use crate::api::{Protocol, PublishedPort, ServiceType};
use crate::orchestrator::engine::{self, Daemon, non_empty};
use crate::orchestrator::observed::{Problem, ProblemKind};
use crate::orchestrator::{BackendError, Endpoint, Instance, InstanceEvent, ServerKey, Workload};
use crate::plan::{ANNOTATION_RESTARTED_AT, ConfigSource, EnvValue, Fnv1a, ServerPlan};

pub use crate::orchestrator::engine::{
    CONFIG_FILE_MODE, LABEL_MANAGED, LABEL_NAMESPACE, LABEL_RECLAIM, LABEL_SIZE, LABEL_UID, TcpProbe, display_name,
    health_check, identity_labels, is_ours, namespace, probe_port, pull_reference,
};

/// Which backend made the container: `docker`. Swarm's task containers carry
/// the managed label too; this one tells the two apart on a shared engine.
pub const LABEL_BACKEND: &str = "mettaton.dev/backend";
/// The value of [`LABEL_BACKEND`] on this backend's containers.
pub const BACKEND: &str = "docker";
/// On the container: a hash of everything it was created from (the plan's
/// container part, its config files, the restart token). A container whose
/// hash differs from the plan's is replaced.
pub const LABEL_SPEC_HASH: &str = "mettaton.dev/spec-hash";
/// `mettaton-<namespace>-<name>`: GameServer names and namespaces are DNS
/// names (lowercase letters, digits, '-' and '.'), which Docker takes in a
/// container name as they are. Two servers whose names join alike (`a-b`/`c`
/// and `a`/`b-c`) are told apart by their labels: the second is refused.
pub fn container_name(plan: &ServerPlan) -> String {
    format!("mettaton-{}-{}", namespace(plan), plan.name)
}

/// The data volume: `<container name>-data`, stable for a GameServer name,
/// so a new server of the same name finds a retained world again. (The same
/// name and labels as the swarm backend's volume: a server moved from swarm to
/// plain Docker on the same engine keeps its world.)
pub fn volume_name(plan: &ServerPlan) -> String {
    format!("{}-data", container_name(plan))
}

/// The server a container with these labels runs, if it is one of this
/// backend's.
pub fn server_of(labels: Option<&HashMap<String, String>>) -> Option<ServerKey> {
    let labels = labels?;
    if labels.get(LABEL_MANAGED).map(String::as_str) != Some("true")
        || labels.get(LABEL_BACKEND).map(String::as_str) != Some(BACKEND)
    {
        return None;
    }
    engine::server_key(labels)
}

pub(crate) fn refused(plan: &ServerPlan, reason: String) -> BackendError {
    BackendError::Refused { what: format!("run GameServer {} on Docker", display_name(plan)), reason }
}

/// What a plan asks Docker to create: the container and the config files to
/// write into it before it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerRequest {
    pub name: String,
    /// The create body, restart policy included ([`restart_policy`]).
    pub body: ContainerCreateBody,
    /// The config files as a tar archive to extract at `/`, if there are any.
    pub files: Option<Vec<u8>>,
    /// [`LABEL_SPEC_HASH`]'s value (also in the body's labels).
    pub hash: String,
}

/// The container that runs the server.
///
/// Honoured: image, command (the entrypoint) and args, literal environment,
/// ports published on the engine's host (the external port when fixed, one
/// the engine picks when not), the data volume, cpu and memory limits
/// (`NanoCpus`, `Memory`) and requests (`CpuShares` as the kubelet sets them,
/// 1024 per cpu; `MemoryReservation`, the soft limit), an `exec` readiness
/// check as the container's healthcheck (interval the period, retries the
/// failure threshold, start period the startup timeout), the grace period as
/// the stop timeout, the restart token as a label (a new token is a new
/// container), config files written in before the start.
///
/// Refused, naming the field: `env[].valueFrom` (the facade resolves
/// `secretKeyRef` before the plan; nothing resolves the others), config files
/// from a ConfigMap, resources other than cpu and memory and resource claims,
/// `nodeSelector` and `tolerations` (one host: there is no node to choose), a
/// service type other than NodePort, service annotations.
pub fn container_request(plan: &ServerPlan, owner_uid: Option<&str>) -> Result<ContainerRequest, BackendError> {
    let container = &plan.container;
    if let Some(key) = plan.placement.node_selector.keys().next() {
        return Err(refused(
            plan,
            format!(
                "spec.nodeSelector ({key:?}) cannot be used on plain Docker, which runs every server on its one \
                 host: remove it (or use the swarm or Kubernetes backend to choose nodes)"
            ),
        ));
    }
    if !plan.placement.tolerations.is_empty() {
        return Err(refused(
            plan,
            "spec.tolerations cannot be used on plain Docker, which has no nodes and no taints: remove them".into(),
        ));
    }
    if plan.service.type_ != ServiceType::NodePort {
        return Err(refused(
            plan,
            format!(
                "spec.service.type {:?} cannot be used on plain Docker, which has no load balancer or cluster \
                 network: ports are published on the engine's host (what NodePort means here); remove \
                 spec.service.type or set NodePort",
                plan.service.type_
            ),
        ));
    }
    if let Some(key) = plan.service.annotations.keys().next() {
        return Err(refused(
            plan,
            format!(
                "spec.service.annotations ({key:?}) cannot be used on plain Docker, which has no Service object \
                 to annotate: remove them"
            ),
        ));
    }
    if let Some(problem) = engine::mount_path_problem(plan) {
        return Err(refused(plan, problem));
    }
    if let Some(problem) = engine::supervisor_problem(plan, "plain Docker") {
        return Err(refused(plan, problem));
    }
    let env = env(plan)?;
    let resources = resources(plan)?;
    let files = config_files(plan)?;

    let mut labels = identity_labels(plan);
    labels.insert(LABEL_BACKEND.to_string(), BACKEND.to_string());
    labels.extend(plan.labels.clone());
    // The identity labels win over the plan's.
    labels.extend(identity_labels(plan));
    if let Some(token) = &plan.restart_token {
        labels.insert(ANNOTATION_RESTARTED_AT.to_string(), token.clone());
    }

    let mut exposed = Vec::new();
    let mut bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for p in &container.ports {
        let key = port_key(p.container_port, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings.entry(key).or_default().push(PortBinding {
            host_ip: None,
            // Empty: the engine picks a free port.
            host_port: Some(p.external_port.map(|port| port.to_string()).unwrap_or_default()),
        });
    }
    let mounts = engine::volume_mounts(plan, volume_name(plan));
    let host_config = HostConfig {
        port_bindings: (!bindings.is_empty())
            .then(|| bindings.into_iter().map(|(k, v)| (k, Some(v))).collect::<HashMap<_, _>>()),
        mounts,
        memory: resources.limit_memory,
        nano_cpus: resources.limit_cpu,
        memory_reservation: resources.request_memory,
        cpu_shares: resources.request_cpu_shares,
        restart_policy: Some(restart_policy(plan.replicas)),
        ..Default::default()
    };
    let mut body = ContainerCreateBody {
        image: Some(container.image.clone()),
        // `command` replaces the image's entrypoint and `args` its command, as
        // on Kubernetes.
        entrypoint: non_empty(container.command.clone()),
        cmd: non_empty(container.args.clone()),
        env: non_empty(env),
        exposed_ports: non_empty(exposed),
        healthcheck: health_check(plan),
        stop_timeout: Some(plan.grace_period_seconds.max(0)),
        labels: Some(labels.into_iter().collect()),
        host_config: Some(host_config),
        ..Default::default()
    };
    let hash = spec_hash(&body, &files);
    if let Some(labels) = body.labels.as_mut() {
        labels.insert(LABEL_SPEC_HASH.to_string(), hash.clone());
        if let Some(uid) = owner_uid {
            labels.insert(LABEL_UID.to_string(), uid.to_string());
        }
    }
    let archive = if files.is_empty() { None } else { Some(tar(&files).map_err(|reason| refused(plan, reason))?) };
    Ok(ContainerRequest { name: container_name(plan), body, files: archive, hash })
}

/// The body of a container like `c` (what mettaton set on it, as the engine
/// reports it back): a restart makes a new container of the same making,
/// environment values included (the facade resolves secrets only when it
/// applies; the container holds them since).
pub fn body_like(c: &ContainerInspectResponse) -> ContainerCreateBody {
    let config = c.config.clone().unwrap_or_default();
    let host = c.host_config.clone().unwrap_or_default();
    ContainerCreateBody {
        image: config.image,
        entrypoint: config.entrypoint,
        cmd: config.cmd,
        env: config.env,
        exposed_ports: config.exposed_ports,
        healthcheck: config.healthcheck,
        stop_timeout: config.stop_timeout,
        labels: config.labels,
        host_config: Some(HostConfig {
            port_bindings: host.port_bindings,
            mounts: host.mounts,
            memory: host.memory.filter(|m| *m > 0),
            nano_cpus: host.nano_cpus.filter(|n| *n > 0),
            memory_reservation: host.memory_reservation.filter(|m| *m > 0),
            cpu_shares: host.cpu_shares.filter(|s| *s > 0),
            restart_policy: host.restart_policy,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `7777/tcp`, as Docker keys ports.
pub fn port_key(port: i32, protocol: Protocol) -> String {
    format!("{port}/{}", protocol_name(protocol))
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::TCP => "tcp",
        Protocol::UDP => "udp",
    }
}

/// How Docker treats the container's exits: a server that should run is
/// started again whenever it exits (`unless-stopped`: whatever its exit code,
/// as Kubernetes and swarm restart it; after an engine restart too; not after
/// someone stopped or killed it by hand, which `apply` undoes). A stopped
/// server (`replicas` 0) is never started by the engine (`no`).
pub fn restart_policy(replicas: i32) -> RestartPolicy {
    RestartPolicy {
        name: Some(if replicas > 0 { RestartPolicyNameEnum::UNLESS_STOPPED } else { RestartPolicyNameEnum::NO }),
        maximum_retry_count: None,
    }
}

/// The environment as `NAME=value`. `valueFrom` is refused naming the
/// variable: the facade resolves `secretKeyRef` from its secrets directory
/// before the plan is made, and there is nothing to resolve the others from.
fn env(plan: &ServerPlan) -> Result<Vec<String>, BackendError> {
    engine::env(plan, |i, var| {
        let (source, why) = match &var.value {
            EnvValue::Secret { .. } => (
                ".secretKeyRef",
                "which has no Secrets (the library facade resolves secretKeyRef from its secrets directory, \
                 `Mettaton::with_secrets_dir`)",
            ),
            EnvValue::ConfigMap { .. } => (".configMapKeyRef", "which has no ConfigMaps"),
            EnvValue::Field { .. } => (".fieldRef", "which has no pod fields"),
            EnvValue::Literal(_) | EnvValue::Unsupported => ("", "which resolves no valueFrom"),
        };
        refused(
            plan,
            format!(
                "spec.env[{i}].valueFrom{source} ({}) cannot be resolved on plain Docker, {why}: give it a value",
                var.name
            ),
        )
    })
}

/// cpu and memory amounts as Docker takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Resources {
    limit_cpu: Option<i64>,
    limit_memory: Option<i64>,
    request_cpu_shares: Option<i64>,
    request_memory: Option<i64>,
}

fn resources(plan: &ServerPlan) -> Result<Resources, BackendError> {
    let Some(amounts) = engine::amounts(plan, "plain Docker", |reason| refused(plan, reason))? else {
        return Ok(Resources::default());
    };
    Ok(Resources {
        limit_cpu: amounts.limit_cpu,
        limit_memory: amounts.limit_memory,
        // The kubelet's conversion: 1024 shares per cpu, at least 2.
        request_cpu_shares: amounts
            .request_cpu
            .map(|nanos| (nanos.saturating_mul(1024) / engine::NANOS_PER_SECOND).max(2)),
        request_memory: amounts.request_memory,
    })
}

/// One config file: its absolute path and content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: String,
    pub content: Vec<u8>,
}

/// The server's config files. Files from a ConfigMap are refused by path:
/// Docker has no ConfigMaps to read them from.
pub fn config_files(plan: &ServerPlan) -> Result<Vec<ConfigFile>, BackendError> {
    let Some(config) = &plan.config else { return Ok(Vec::new()) };
    config
        .files
        .iter()
        .map(|file| match &file.source {
            ConfigSource::Inline { key } => Ok(ConfigFile {
                path: file.path.clone(),
                content: config.inline.get(key).cloned().unwrap_or_default().into_bytes(),
            }),
            ConfigSource::ConfigMap { name, key } => Err(refused(
                plan,
                format!(
                    "spec.config file {} comes from key {key} of ConfigMap {name}, and plain Docker has no \
                     ConfigMaps: give its content inline",
                    file.path
                ),
            )),
        })
        .collect()
}

/// A tar archive (ustar) of the files, to extract at `/`: each file owned by
/// root, mode [`CONFIG_FILE_MODE`], time 0 (so the same files make the same
/// bytes). The engine creates missing parent directories.
pub fn tar(files: &[ConfigFile]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for file in files {
        let path = file.path.trim_start_matches('/');
        if !file.path.starts_with('/') || path.is_empty() || path.split('/').any(|p| p.is_empty() || p == "..") {
            return Err(format!("spec.config path {:?} must be an absolute path to a file", file.path));
        }
        let (prefix, name) = split_ustar_path(path)
            .ok_or_else(|| format!("spec.config path {:?} is too long for a tar header", file.path))?;
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |field: &mut [u8], value: u64| {
            let width = field.len() - 1;
            let text = format!("{value:0width$o}");
            field[..width].copy_from_slice(text.as_bytes());
        };
        octal(&mut header[100..108], u64::from(CONFIG_FILE_MODE));
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], file.content.len() as u64);
        octal(&mut header[136..148], 0);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        // The checksum is computed with its own field as spaces.
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        let text = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(text.as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&file.content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    Ok(out)
}

/// A path as ustar's prefix (155 bytes) and name (100 bytes), split at a '/'.
fn split_ustar_path(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    path.match_indices('/')
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(prefix, name)| prefix.len() <= 155 && name.len() <= 100 && !name.is_empty())
}

/// The hash of what the container is made from: the create body (without its
/// restart policy, which follows `replicas` in place, and the labels that are
/// not the container's making) and the config files. Deterministic: object
/// keys in order, FNV-1a.
pub fn spec_hash(body: &ContainerCreateBody, files: &[ConfigFile]) -> String {
    let mut body = body.clone();
    if let Some(host) = body.host_config.as_mut() {
        host.restart_policy = None;
    }
    if let Some(labels) = body.labels.as_mut() {
        labels.remove(LABEL_SPEC_HASH);
        labels.remove(LABEL_UID);
    }
    let mut hasher = Fnv1a::default();
    hash_value(&serde_json::to_value(&body).unwrap_or_default(), &mut hasher);
    for file in files {
        hasher.write(b"\0file\0");
        hasher.write(file.path.as_bytes());
        hasher.write(b"\0");
        hasher.write(&file.content);
    }
    format!("{:016x}", hasher.0)
}

fn hash_value(value: &serde_json::Value, hasher: &mut Fnv1a) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.write(b"{");
            for key in keys {
                hasher.write(key.as_bytes());
                hasher.write(b":");
                hash_value(&map[key], hasher);
                hasher.write(b",");
            }
            hasher.write(b"}");
        }
        Value::Array(items) => {
            hasher.write(b"[");
            for item in items {
                hash_value(item, hasher);
                hasher.write(b",");
            }
            hasher.write(b"]");
        }
        other => hasher.write(other.to_string().as_bytes()),
    }
}

/// The data volume to create, when the server has one: a named volume,
/// labelled (see [`engine::volume_request`]).
pub fn volume_request(plan: &ServerPlan) -> Option<VolumeCreateRequest> {
    engine::volume_request(plan, volume_name(plan))
}

/// What of the plan plain Docker runs differently than asked, each naming its
/// field. Everything else is honoured or refused by [`container_request`].
pub fn limitations(plan: &ServerPlan) -> Vec<String> {
    let mut found: Vec<String> = engine::size_limitation(plan, "plain Docker", "host").into_iter().collect();
    if plan.container.readiness.is_some() {
        found.push(
            "spec.health.probe: a server that fails its check is reported not ready (and Unhealthy) but not \
             restarted: plain Docker restarts a container only when it exits"
                .to_string(),
        );
    }
    found
}

/// A fixed port of the plan that a running container other than `own_name`
/// already publishes: the port, its protocol and the holder's name.
pub fn port_conflict(
    plan: &ServerPlan,
    containers: &[ContainerSummary],
    own_name: &str,
) -> Option<(i32, Protocol, String)> {
    for p in &plan.container.ports {
        let Some(wanted) = p.external_port else { continue };
        for c in containers {
            let names = c.names.clone().unwrap_or_default();
            if names.iter().any(|n| n.trim_start_matches('/') == own_name) {
                continue;
            }
            let holds = c.ports.iter().flatten().any(|port| {
                port.public_port.map(i32::from) == Some(wanted)
                    && matches!(
                        (port.typ, p.protocol),
                        (Some(PortSummaryTypeEnum::TCP), Protocol::TCP)
                            | (Some(PortSummaryTypeEnum::UDP), Protocol::UDP)
                    )
            });
            if holds {
                let holder = names.first().map(|n| n.trim_start_matches('/').to_string());
                let holder = holder.unwrap_or_else(|| c.id.clone().unwrap_or_default());
                return Some((wanted, p.protocol, format!("container {holder}")));
            }
        }
    }
    None
}

/// The host players reach the engine's published ports at: the address of a
/// TCP daemon's URL, this machine for a local socket.
pub fn daemon_host(daemon: &Daemon) -> String {
    match daemon {
        Daemon::LocalSocket(_) => "127.0.0.1".to_string(),
        Daemon::Tcp { url, .. } => {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let authority = rest.split('/').next().unwrap_or(rest);
            let host = match authority.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                _ => authority,
            };
            host.trim_start_matches('[').trim_end_matches(']').to_string()
        }
    }
}

fn status(c: &ContainerInspectResponse) -> ContainerStateStatusEnum {
    c.state.as_ref().and_then(|s| s.status).unwrap_or(ContainerStateStatusEnum::EMPTY)
}

/// The container's restart policy says it should run (anything but `no`).
pub fn wants_running(c: &ContainerInspectResponse) -> bool {
    let policy = c.host_config.as_ref().and_then(|h| h.restart_policy.as_ref()).and_then(|p| p.name);
    !matches!(policy, None | Some(RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY))
}

/// The container is up or on its way (running, paused, restarting, removed).
pub fn exists(c: &ContainerInspectResponse) -> bool {
    use ContainerStateStatusEnum as S;
    matches!(status(c), S::RUNNING | S::PAUSED | S::RESTARTING | S::REMOVING | S::STOPPING)
}

/// Whether the engine is about to start the container again (an exit under
/// `unless-stopped`, in the restart back-off).
pub fn restarting(c: &ContainerInspectResponse) -> bool {
    status(c) == ContainerStateStatusEnum::RESTARTING
}

/// The container runs a Docker healthcheck.
fn has_health_check(c: &ContainerInspectResponse) -> bool {
    c.state.as_ref().and_then(|s| s.health.as_ref()).is_some()
}

/// The instance the container is, or `None` when there is none to speak of: a
/// stopped server's container that does not run.
pub fn instance(c: &ContainerInspectResponse) -> Option<Instance> {
    use ContainerStateStatusEnum as S;
    let status = status(c);
    if !wants_running(c) && !exists(c) {
        return None;
    }
    let state = c.state.clone().unwrap_or_default();
    let running = status == S::RUNNING;
    let health = state.health.as_ref().and_then(|h| h.status);
    let ready = running && (!has_health_check(c) || health == Some(HealthStatusEnum::HEALTHY));
    let exit = state.exit_code.unwrap_or_default();
    let error = state.error.clone().filter(|e| !e.is_empty());
    let problem = if ready {
        None
    } else if status == S::RESTARTING {
        let (kind, why) = match state.oom_killed == Some(true) {
            true => (ProblemKind::OutOfMemory, "out of memory".to_string()),
            false => (ProblemKind::CrashLoop, format!("exit code {exit}")),
        };
        Some(Problem::new(
            kind,
            format!("restarting ({why})"),
            Some(format!("the container exited with {why}; Docker starts it again after a back-off")),
        ))
    } else if matches!(status, S::EXITED | S::DEAD | S::CREATED) && wants_running(c) {
        match (&error, state.oom_killed == Some(true)) {
            (Some(e), _) => Some(Problem::new(ProblemKind::Other, e.clone(), None)),
            (None, true) => Some(Problem::new(ProblemKind::OutOfMemory, "OOMKilled", None)),
            (None, false) if status == S::CREATED => None,
            (None, false) => Some(Problem::new(
                ProblemKind::Exited,
                format!("exited with code {exit}"),
                Some("stopped or killed by hand: Docker does not start it again (the next apply does)".into()),
            )),
        }
    } else if running && health == Some(HealthStatusEnum::UNHEALTHY) {
        Some(Problem::new(ProblemKind::Other, "unhealthy", Some("the container fails its health check".into())))
    } else {
        None
    };
    Some(Instance {
        name: c.name.as_deref().unwrap_or_default().trim_start_matches('/').to_string(),
        running,
        ready,
        restarts: c.restart_count.and_then(|n| i32::try_from(n).ok()).unwrap_or(0),
        problem,
        terminating: status == S::REMOVING || (!wants_running(c) && exists(c)),
    })
}

/// The container as the server's workload: 1 wanted while its restart policy
/// says run; rolled out when it was made from the plan as it is now (`hash`)
/// and runs or not as `replicas` says.
pub fn workload(c: &ContainerInspectResponse, hash: Option<&str>, replicas: i32) -> Workload {
    let desired = i32::from(wants_running(c));
    let made_from_plan = hash.is_some_and(|h| {
        c.config.as_ref().and_then(|cfg| cfg.labels.as_ref()).and_then(|l| l.get(LABEL_SPEC_HASH)).map(String::as_str)
            == Some(h)
    });
    let ready = instance(c).is_some_and(|i| i.ready);
    Workload {
        desired,
        ready: i32::from(ready && desired == 1),
        rolled_out: made_from_plan && desired == replicas.clamp(0, 1) && (replicas > 0 || !exists(c)),
        existing: i32::from(exists(c)),
    }
}

/// Where players connect: the engine's host (or the address a port is bound
/// to, when it is one) and the ports the engine published for the container;
/// before they are known, the plan's fixed ports.
pub fn endpoint(plan: &ServerPlan, c: &ContainerInspectResponse, host: &str) -> Endpoint {
    let published = c.network_settings.as_ref().and_then(|n| n.ports.as_ref());
    let mut address = None;
    let ports = plan
        .container
        .ports
        .iter()
        .filter_map(|p| {
            let bindings =
                published.and_then(|m| m.get(&port_key(p.container_port, p.protocol))).and_then(|b| b.as_ref());
            // IPv4 first: the engine lists `0.0.0.0` and `::` for one port.
            let binding = bindings.and_then(|b| {
                b.iter().find(|b| b.host_ip.as_deref().is_none_or(|ip| !ip.contains(':'))).or_else(|| b.first())
            });
            if address.is_none()
                && let Some(ip) = binding.and_then(|b| b.host_ip.as_deref())
                && !matches!(ip, "" | "0.0.0.0" | "::")
            {
                address = Some(ip.to_string());
            }
            let port = binding
                .and_then(|b| b.host_port.as_deref())
                .and_then(|p| p.parse::<i32>().ok())
                .filter(|p| *p > 0)
                .or(p.external_port)?;
            Some(PublishedPort { name: p.name.clone(), port, protocol: p.protocol })
        })
        .collect();
    Endpoint { address: Some(address.unwrap_or_else(|| host.to_string())), ports }
}

/// What an engine event says of one of this backend's containers; `None`
/// for any other event.
pub fn instance_event(message: &EventMessage) -> Option<InstanceEvent> {
    let actor = message.actor.as_ref()?;
    let server = server_of(actor.attributes.as_ref())?;
    let kind = engine::event_kind(message)?;
    Some(InstanceEvent {
        server,
        kind,
        container_id: actor.id.clone().unwrap_or_default(),
        task_id: None,
        time_nanos: message.time_nano,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GameServerSpec;
    use crate::orchestrator::InstanceEventKind;
    use crate::plan::LABEL_GAMESERVER;
    use crate::plan::plan_spec;
    use bollard::models::MountType;
    use serde_json::json;

    fn plan(spec: serde_json::Value) -> ServerPlan {
        let spec: GameServerSpec = serde_json::from_value(spec).unwrap();
        plan_spec("arena", "games", &spec)
    }

    fn game() -> serde_json::Value {
        json!({
            "image": "127.0.0.1:5999/mettaton-testgame:1",
            "command": ["/testgame"],
            "args": ["-tcp", "7777"],
            "env": [{ "name": "GAME_NAME", "value": "docker" }, { "name": "EMPTY" }],
            "ports": [
                { "name": "game", "containerPort": 7777, "externalPort": 27001 },
                { "name": "query", "containerPort": 7778, "protocol": "UDP" }
            ],
            "config": [{ "path": "/etc/game/motd.txt", "content": "welcome" }],
            "storage": { "size": "1Gi", "mountPath": "/data", "reclaimPolicy": "Delete" },
            "resources": { "limits": { "memory": "256Mi", "cpu": "1500m" }, "requests": { "cpu": "250m", "memory": "64Mi" } },
            "health": { "probe": { "exec": ["/testgame", "-check"] }, "periodSeconds": 2, "failureThreshold": 4,
                        "startupTimeoutSeconds": 30 },
            "shutdown": { "gracePeriodSeconds": 7, "stopCommand": ["/testgame", "-save"] }
        })
    }

    fn reason(err: BackendError) -> String {
        match err {
            BackendError::Refused { reason, .. } => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_plan_is_one_container_with_its_ports_volume_limits_check_and_labels() {
        let mut p = plan(game());
        p.restart_token = Some("2026-12-03T12:00:00Z".into());
        let r = container_request(&p, Some("uid-1")).unwrap();
        assert_eq!(r.name, "mettaton-games-arena");
        let b = &r.body;
        assert_eq!(b.image.as_deref(), Some("127.0.0.1:5999/mettaton-testgame:1"));
        assert_eq!(b.entrypoint, Some(vec!["/testgame".to_string()]));
        assert_eq!(b.cmd, Some(vec!["-tcp".to_string(), "7777".to_string()]));
        assert_eq!(b.env, Some(vec!["GAME_NAME=docker".to_string(), "EMPTY=".to_string()]));
        assert_eq!(b.exposed_ports, Some(vec!["7777/tcp".to_string(), "7778/udp".to_string()]));
        assert_eq!(b.stop_timeout, Some(7));
        let labels = b.labels.as_ref().unwrap();
        for (k, v) in [
            (LABEL_MANAGED, "true"),
            (LABEL_BACKEND, "docker"),
            (LABEL_GAMESERVER, "arena"),
            (LABEL_NAMESPACE, "games"),
            (ANNOTATION_RESTARTED_AT, "2026-12-03T12:00:00Z"),
            (LABEL_UID, "uid-1"),
            (LABEL_SPEC_HASH, r.hash.as_str()),
        ] {
            assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        let host = b.host_config.as_ref().unwrap();
        let bindings = host.port_bindings.as_ref().unwrap();
        assert_eq!(bindings["7777/tcp"].as_ref().unwrap()[0].host_port.as_deref(), Some("27001"));
        assert_eq!(bindings["7778/udp"].as_ref().unwrap()[0].host_port.as_deref(), Some(""), "the engine picks");
        let mount = &host.mounts.as_ref().unwrap()[0];
        assert_eq!(
            (mount.source.as_deref(), mount.target.as_deref(), mount.typ),
            (Some("mettaton-games-arena-data"), Some("/data"), Some(MountType::VOLUME))
        );
        assert_eq!(host.memory, Some(256 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.cpu_shares, Some(256));
        assert_eq!(host.memory_reservation, Some(64 * 1024 * 1024));
        assert_eq!(host.restart_policy.as_ref().unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        let check = b.healthcheck.as_ref().unwrap();
        assert_eq!(check.test, Some(vec!["CMD".into(), "/testgame".into(), "-check".into()]));
        assert_eq!((check.interval, check.retries), (Some(2_000_000_000), Some(4)));
        assert_eq!(check.start_period, Some(30_000_000_000));
        assert!(r.files.is_some(), "the config file is written in before the start");

        // Stopped: the same container, which the engine never starts.
        let mut stopped = p.clone();
        stopped.replicas = 0;
        let s = container_request(&stopped, Some("uid-1")).unwrap();
        assert_eq!(s.body.host_config.unwrap().restart_policy.unwrap().name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(s.hash, r.hash, "state changes in place");

        // A TCP check is mettaton's own: no healthcheck.
        let mut spec = game();
        spec["health"] = json!({});
        assert_eq!(container_request(&plan(spec), None).unwrap().body.healthcheck, None);
    }

    #[test]
    fn the_hash_changes_with_what_the_container_is_made_of_and_only_that() {
        let base = plan(game());
        let hash = |p: &ServerPlan| container_request(p, None).unwrap().hash;
        let h = hash(&base);
        assert_eq!(h, hash(&base.clone()), "deterministic");
        assert_eq!(h, container_request(&base, Some("another-uid")).unwrap().hash, "the uid is no part of it");
        let mut token = base.clone();
        token.restart_token = Some("now".into());
        let mut image = game();
        image["image"] = json!("127.0.0.1:5999/mettaton-testgame:2");
        let mut env = game();
        env["env"][0]["value"] = json!("other");
        let mut file = game();
        file["config"][0]["content"] = json!("changed");
        let mut port = game();
        port["ports"][0]["externalPort"] = json!(27002);
        for (what, other) in
            [("token", token), ("image", plan(image)), ("env", plan(env)), ("file", plan(file)), ("port", plan(port))]
        {
            assert_ne!(hash(&other), h, "{what}");
        }
    }

    #[test]
    fn what_plain_docker_cannot_do_is_refused_by_name() {
        let cases = [
            ("nodeSelector", json!({ "nodeSelector": { "disk": "ssd" } }), "spec.nodeSelector"),
            (
                "ready line",
                json!({ "command": ["/start"], "health": { "readyLogLine": ["Done"] } }),
                "spec.health.readyLogLine cannot be used on plain Docker yet",
            ),
            ("tolerations", json!({ "tolerations": [{ "operator": "Exists" }] }), "spec.tolerations"),
            (
                "secret",
                json!({ "env": [{ "name": "PW", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }] }),
                "spec.env[0].valueFrom.secretKeyRef (PW)",
            ),
            (
                "configMap env",
                json!({ "env": [{ "name": "A", "value": "1" },
                                { "name": "C", "valueFrom": { "configMapKeyRef": { "name": "c", "key": "k" } } }] }),
                "spec.env[1].valueFrom.configMapKeyRef (C)",
            ),
            (
                "field",
                json!({ "env": [{ "name": "IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } }] }),
                "spec.env[0].valueFrom.fieldRef (IP)",
            ),
            (
                "configMap file",
                json!({ "config": [{ "path": "/etc/x", "configMapKeyRef": { "name": "c", "key": "k" } }] }),
                "spec.config file /etc/x comes from key k of ConfigMap c",
            ),
            (
                "ephemeral storage",
                json!({ "resources": { "limits": { "ephemeral-storage": "1Gi" } } }),
                "spec.resources.limits.ephemeral-storage",
            ),
            ("service type", json!({ "service": { "type": "LoadBalancer" } }), "spec.service.type"),
            (
                "annotations",
                json!({ "service": { "type": "NodePort", "annotations": { "a": "b" } } }),
                "spec.service.annotations",
            ),
        ];
        for (what, extra, field) in cases {
            let mut spec = json!({ "image": "game:1", "ports": [{ "name": "game", "containerPort": 7777 }] });
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            let refusal = reason(container_request(&plan(spec), None).unwrap_err());
            assert!(refusal.starts_with(field), "{what}: {refusal}");
        }
    }

    #[test]
    fn config_files_are_a_tar_archive_to_extract_at_the_root() {
        let long = format!("/{}/{}", "d".repeat(120), "f".repeat(90));
        let files = [
            ConfigFile { path: "/etc/game/motd.txt".into(), content: b"welcome".to_vec() },
            ConfigFile { path: long.clone(), content: vec![b'x'; 600] },
        ];
        let archive = tar(&files).unwrap();
        assert_eq!(archive.len(), 512 + 512 + 512 + 1024 + 1024, "headers, padded contents, end blocks");
        let header = &archive[..512];
        let field = |h: &[u8], r: std::ops::Range<usize>| {
            String::from_utf8(h[r].iter().copied().take_while(|b| *b != 0).collect()).unwrap()
        };
        assert_eq!(field(header, 0..100), "etc/game/motd.txt");
        assert_eq!(field(header, 100..108), "0000444");
        assert_eq!(u64::from_str_radix(&field(header, 124..136), 8).unwrap(), 7);
        assert_eq!(&archive[512..519], b"welcome");
        let sum: u32 =
            header.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) }).sum();
        assert_eq!(u32::from_str_radix(field(header, 148..156).trim(), 8).unwrap(), sum, "checksum");
        let second = &archive[1024..1536];
        assert_eq!(field(second, 345..500), "d".repeat(120), "a long path's directory is the prefix");
        assert_eq!(field(second, 0..100), "f".repeat(90));
        assert_eq!(tar(&files).unwrap(), archive, "the same files, the same bytes");
        assert!(tar(&[ConfigFile { path: "etc/x".into(), content: vec![] }]).unwrap_err().contains("absolute"));
        assert!(tar(&[ConfigFile { path: "/etc/../x".into(), content: vec![] }]).is_err());
    }

    fn inspect(v: serde_json::Value) -> ContainerInspectResponse {
        serde_json::from_value(v).unwrap()
    }

    fn container(status: &str, policy: &str, hash: &str) -> serde_json::Value {
        json!({
            "Id": "c1", "Name": "/mettaton-games-arena", "RestartCount": 2,
            "State": { "Status": status, "Running": status == "running", "ExitCode": 1,
                       "StartedAt": "2026-12-03T12:00:00Z" },
            "Config": { "Labels": { LABEL_SPEC_HASH: hash, LABEL_GAMESERVER: "arena", LABEL_NAMESPACE: "games" } },
            "HostConfig": { "RestartPolicy": { "Name": policy } },
            "NetworkSettings": { "Ports": {
                "7777/tcp": [{ "HostIp": "0.0.0.0", "HostPort": "27001" }, { "HostIp": "::", "HostPort": "27001" }],
                "7778/udp": [{ "HostIp": "0.0.0.0", "HostPort": "32768" }]
            } }
        })
    }

    #[test]
    fn a_container_is_observed_as_instance_workload_and_endpoint() {
        let p = plan(game());
        let running = inspect(container("running", "unless-stopped", "h"));
        let i = instance(&running).unwrap();
        assert!(i.running && i.ready && !i.terminating, "{i:?}");
        assert_eq!((i.name.as_str(), i.restarts, i.problem.as_ref()), ("mettaton-games-arena", 2, None));
        assert_eq!(workload(&running, Some("h"), 1), Workload { desired: 1, ready: 1, rolled_out: true, existing: 1 });
        assert!(!workload(&running, Some("other"), 1).rolled_out, "made from another plan");
        assert!(!workload(&running, Some("h"), 0).rolled_out, "still running while it should stop");
        let e = endpoint(&p, &running, "127.0.0.1");
        assert_eq!(e.address.as_deref(), Some("127.0.0.1"));
        let ports: Vec<(String, i32, Protocol)> = e.ports.into_iter().map(|p| (p.name, p.port, p.protocol)).collect();
        assert_eq!(ports, vec![("game".into(), 27001, Protocol::TCP), ("query".into(), 32768, Protocol::UDP)]);

        // A healthcheck not passed yet: running, not ready.
        let mut starting = container("running", "unless-stopped", "h");
        starting["State"]["Health"] = json!({ "Status": "starting" });
        let i = instance(&inspect(starting)).unwrap();
        assert!(i.running && !i.ready && i.problem.is_none(), "{i:?}");

        // Crashed, waiting for the engine to start it again.
        let backoff = inspect(container("restarting", "unless-stopped", "h"));
        assert!(restarting(&backoff));
        let problem = instance(&backoff).unwrap().problem.unwrap();
        assert_eq!(problem.kind, ProblemKind::CrashLoop, "{problem:?}");
        assert_eq!(problem.reason, "restarting (exit code 1)");
        assert!(problem.message.unwrap().contains("Docker starts it again"));

        // Killed by hand while it should run: the engine does not start it.
        let killed = inspect(container("exited", "unless-stopped", "h"));
        let problem = instance(&killed).unwrap().problem.unwrap();
        assert_eq!((problem.kind, problem.reason.as_str()), (ProblemKind::Exited, "exited with code 1"));

        // Stopped on purpose: no instance, nothing exists, rolled out at 0.
        let mut stopped = container("exited", "no", "h");
        stopped["NetworkSettings"]["Ports"] = json!({});
        let stopped = inspect(stopped);
        assert_eq!(instance(&stopped), None);
        assert_eq!(workload(&stopped, Some("h"), 0), Workload { desired: 0, ready: 0, rolled_out: true, existing: 0 });
        // Its ports: the fixed ones it will get.
        let e = endpoint(&p, &stopped, "10.0.0.5");
        assert_eq!(e.ports.iter().map(|p| p.port).collect::<Vec<_>>(), vec![27001]);
        assert_eq!(e.address.as_deref(), Some("10.0.0.5"));

        // Ports bound to one address are reached there.
        let mut bound = container("running", "unless-stopped", "h");
        bound["NetworkSettings"]["Ports"]["7777/tcp"] = json!([{ "HostIp": "127.0.0.1", "HostPort": "27001" }]);
        assert_eq!(endpoint(&p, &inspect(bound), "10.0.0.5").address.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn engine_events_of_this_backends_containers_are_instance_events() {
        let event = |action: &str, backend: Option<&str>| -> EventMessage {
            let mut attributes = json!({ LABEL_MANAGED: "true", LABEL_GAMESERVER: "arena", LABEL_NAMESPACE: "games",
                                         "exitCode": "137" });
            if let Some(b) = backend {
                attributes[LABEL_BACKEND] = json!(b);
            }
            serde_json::from_value(json!({ "Type": "container", "Action": action, "timeNano": 5,
                                           "Actor": { "ID": "c1", "Attributes": attributes } }))
            .unwrap()
        };
        let died = instance_event(&event("die", Some("docker"))).unwrap();
        assert_eq!(died.server, ServerKey { namespace: "games".into(), name: "arena".into() });
        assert_eq!(died.kind, InstanceEventKind::Exited { exit_code: Some(137) });
        assert_eq!((died.container_id.as_str(), died.task_id, died.time_nanos), ("c1", None, Some(5)));
        assert_eq!(instance_event(&event("start", Some("docker"))).unwrap().kind, InstanceEventKind::Started);
        assert_eq!(instance_event(&event("oom", Some("docker"))).unwrap().kind, InstanceEventKind::OutOfMemory);
        let unhealthy = instance_event(&event("health_status: unhealthy", Some("docker"))).unwrap();
        assert_eq!(unhealthy.kind, InstanceEventKind::Unhealthy);
        assert_eq!(instance_event(&event("exec_start: sh", Some("docker"))), None);
        assert_eq!(instance_event(&event("die", None)), None, "a swarm task's container is not this backend's");
    }

    #[test]
    fn fixed_ports_of_other_containers_conflict_and_the_daemon_host_is_the_address() {
        let p = plan(game());
        let summary = |name: &str, port: u16, typ: &str| -> ContainerSummary {
            serde_json::from_value(json!({ "Id": "x", "Names": [format!("/{name}")],
                "Ports": [{ "PrivatePort": 7777, "PublicPort": port, "Type": typ }] }))
            .unwrap()
        };
        let own = "mettaton-games-arena";
        assert_eq!(port_conflict(&p, &[summary(own, 27001, "tcp")], own), None, "its own container");
        assert_eq!(port_conflict(&p, &[summary("web", 27001, "udp")], own), None, "another protocol");
        assert_eq!(
            port_conflict(&p, &[summary("web", 27001, "tcp")], own),
            Some((27001, Protocol::TCP, "container web".to_string()))
        );
        assert_eq!(daemon_host(&Daemon::default()), "127.0.0.1");
        let tcp = |url: &str| daemon_host(&Daemon::Tcp { url: url.into(), tls: None });
        assert_eq!(tcp("tcp://10.0.0.5:2376"), "10.0.0.5");
        assert_eq!(tcp("https://games.example:2376/"), "games.example");
        assert_eq!(tcp("tcp://[fd00::5]:2375"), "fd00::5");
    }

    #[test]
    fn limitations_name_their_fields() {
        let found = limitations(&plan(game()));
        assert!(found[0].starts_with("spec.storage.size 1Gi is not enforced on plain Docker"), "{found:?}");
        assert!(found[1].starts_with("spec.health.probe"), "{found:?}");
        let udp_only =
            plan(json!({ "image": "g:1", "ports": [{ "name": "q", "containerPort": 1, "protocol": "UDP" }] }));
        assert!(limitations(&udp_only).is_empty());
        let v = volume_request(&plan(game())).unwrap();
        let labels = v.labels.unwrap();
        assert_eq!(v.name.as_deref(), Some("mettaton-games-arena-data"));
        assert_eq!((labels[LABEL_SIZE].as_str(), labels[LABEL_RECLAIM].as_str()), ("1Gi", "Delete"));
        assert_eq!(v.driver, None, "Docker's default, local");
        let mut classed = game();
        classed["storage"]["storageClassName"] = json!("zfs");
        assert_eq!(
            volume_request(&plan(classed)).unwrap().driver.as_deref(),
            Some("zfs"),
            "the class names the driver"
        );
    }

    #[test]
    fn the_tcp_probe_is_ready_after_a_success_and_not_after_the_threshold() {
        let mut probe = TcpProbe::new("c1@t");
        assert!(probe.due(0, 10));
        probe.record(0, false, 2);
        assert!(probe.due(1000, 10), "every second until it first passes");
        probe.record(1000, true, 2);
        assert!(probe.ready && !probe.due(5000, 10) && probe.due(11000, 10));
        probe.record(11000, false, 2);
        assert!(probe.ready, "one failure is below the threshold");
        probe.record(21000, false, 2);
        assert!(!probe.ready);
        assert_eq!(pull_reference("127.0.0.1:5999/g"), ("127.0.0.1:5999/g".into(), "latest".into()));
        assert_eq!(pull_reference("g:1"), ("g".into(), "1".into()));
    }
}
