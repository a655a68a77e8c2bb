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
///
/// Supervised (`health.readyLogLine`, `shutdown.stop`): the entrypoint is
/// mettaton's supervisor running the spec's command and args, from the volume
/// of `supervisor_image` ([`engine::supervisor_mounts`], filled by
/// [`installer_body`]) with a tmpfs for its state; its probe (the ready file,
/// with the check asked for) is the healthcheck; the stop signal is SIGTERM,
/// which it turns into the stop. Every container keeps its stdin open: the
/// console.
pub fn container_request(
    plan: &ServerPlan,
    owner_uid: Option<&str>,
    supervisor_image: &str,
) -> Result<ContainerRequest, BackendError> {
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
    // The install that runs before the game: another one is another
    // container (and runs first).
    if let Some(run) = install_run(plan, owner_uid, supervisor_image)? {
        labels.insert(engine::LABEL_INSTALL.to_string(), run.hash);
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
    let mut mounts = engine::volume_mounts(plan, volume_name(plan)).unwrap_or_default();
    let supervised = engine::supervised_command(plan);
    if supervised.is_some() {
        mounts.extend(engine::supervisor_mounts(supervisor_image));
    }
    let host_config = HostConfig {
        port_bindings: (!bindings.is_empty())
            .then(|| bindings.into_iter().map(|(k, v)| (k, Some(v))).collect::<HashMap<_, _>>()),
        mounts: non_empty(mounts),
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
        cmd: if supervised.is_some() { None } else { non_empty(container.args.clone()) },
        entrypoint: supervised.clone().or_else(|| non_empty(container.command.clone())),
        env: non_empty(env),
        exposed_ports: non_empty(exposed),
        healthcheck: health_check(plan),
        // The console: what is typed reaches the game's (or the
        // supervisor's) stdin, which stays open while nobody types.
        open_stdin: Some(true),
        stop_signal: supervised.as_ref().map(|_| engine::SUPERVISED_STOP_SIGNAL.to_string()),
        stop_timeout: Some(plan.grace_period_seconds.max(0)),
        working_dir: container.working_dir.clone(),
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
        open_stdin: config.open_stdin,
        stop_signal: config.stop_signal,
        stop_timeout: config.stop_timeout,
        working_dir: config.working_dir.filter(|d| !d.is_empty()),
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

/// The one-shot container that fills the supervisor's volume of `image`
/// (`install /.mettaton/bin`), then exits: not one of a server's (no
/// server's labels), removed once it exited.
pub fn installer_body(image: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(engine::installer_command()),
        labels: Some(engine::supervisor_labels(image)),
        host_config: Some(HostConfig { mounts: Some(vec![engine::installer_mount(image)]), ..Default::default() }),
        ..Default::default()
    }
}

/// The one-shot container of the server's install: `<container name>-install`.
pub fn install_container_name(plan: &ServerPlan) -> String {
    format!("{}-install", container_name(plan))
}

/// What runs the plan's install script on plain Docker (see
/// [`engine::install_run`]): the game's environment, its volume, the
/// supervisor of `supervisor_image`. `None` without an install; refused,
/// naming the field, for what plain Docker cannot give it.
pub fn install_run(
    plan: &ServerPlan,
    owner_uid: Option<&str>,
    supervisor_image: &str,
) -> Result<Option<engine::InstallRun>, BackendError> {
    if plan.install.is_none() {
        return Ok(None);
    }
    let env = env(plan)?;
    engine::install_run(plan, &volume_name(plan), supervisor_image, env, owner_uid).map_err(|r| refused(plan, r))
}

/// The one-shot container that runs `run`: not one of a server's (no
/// [`LABEL_MANAGED`], no [`LABEL_BACKEND`]: neither listed nor watched),
/// labelled as the server's install ([`engine::LABEL_INSTALL_OF`]), never
/// restarted, kept after a failure (what `observe` reports) and removed after
/// a success.
pub fn install_body(run: &engine::InstallRun) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(run.image.clone()),
        entrypoint: Some(run.command.clone()),
        // The image's own command would be the arguments of the entrypoint.
        cmd: Some(Vec::new()),
        env: non_empty(run.env.clone()),
        labels: Some(run.labels.clone().into_iter().collect()),
        host_config: Some(HostConfig {
            mounts: non_empty(run.mounts.clone()),
            restart_policy: Some(restart_policy(0)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// How a one-shot container ended, once it did: `Ok` for exit code 0, else
/// the engine's words for how (`exit code N`, `OOM killed`). `None` while it
/// runs or has not started.
pub fn install_ended(c: &ContainerInspectResponse) -> Option<Result<(), String>> {
    let state = c.state.as_ref()?;
    if !matches!(state.status, Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)) {
        return None;
    }
    let code = state.exit_code.unwrap_or(0);
    Some(match (code, state.oom_killed) {
        (_, Some(true)) => Err(format!("killed for running out of memory (exit code {code})")),
        (0, _) => Ok(()),
        (code, _) => Err(format!("exit code {code}")),
    })
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
mod tests;
