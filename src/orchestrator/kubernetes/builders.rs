//! Pure translation between a [`ServerPlan`] and Kubernetes objects: one
//! builder per child object of a GameServer, and the readings of what the
//! cluster reports back (the instance a pod is, the endpoint players use).
//! No client here, so every object mettaton writes is pinned by a snapshot test.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapKeySelector, ConfigMapProjection, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, KeyToPath, Lifecycle, LifecycleHandler, Node, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ProjectedVolumeSource, ResourceClaim, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction, Toleration, Volume, VolumeMount,
    VolumeProjection, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::api::{GameServer, PublishedPort, PullPolicy, ServiceType};
use crate::orchestrator::observed::{Problem, ProblemKind};
use crate::orchestrator::{Endpoint, Instance, Owner};
use crate::plan::{self, Check, ConfigSource, EnvPlan, EnvValue, ResourcesPlan, ServerPlan};
use crate::supervisor;

/// Name of the game's container in the pod.
pub const CONTAINER: &str = "game";
/// Name of the pod volume holding the game's data claim.
const DATA_VOLUME: &str = "data";
/// Name of the pod volume projecting every config file.
const CONFIG_VOLUME: &str = "config";
/// Name of the supervisor's pod volume and of the init container that copies
/// the supervisor into it.
const SUPERVISOR: &str = "mettaton-supervisor";
/// Name of the init container that runs a template's install script.
pub const INSTALL_CONTAINER: &str = "install";

/// The Deployment running the game server; `supervisor_image` holds the
/// supervisor, for a server whose plan needs one.
pub fn deployment(plan: &ServerPlan, owner: &Owner, supervisor_image: &str) -> Deployment {
    // What the pod is made from beside the spec: a change of either makes
    // the Deployment roll out a new pod (on the same claim).
    let annotations: BTreeMap<String, String> = plan
        .config
        .as_ref()
        .map(|c| (plan::ANNOTATION_CONFIG_HASH.to_string(), c.hash.clone()))
        .into_iter()
        .chain(plan.restart_token.clone().map(|t| (plan::ANNOTATION_RESTARTED_AT.to_string(), t)))
        .collect();
    Deployment {
        metadata: metadata(plan, &plan.name, owner),
        spec: Some(DeploymentSpec {
            // A game server is one process with one world: never more than one.
            replicas: Some(plan.replicas.clamp(0, 1)),
            selector: LabelSelector { match_labels: Some(plan.selector.clone()), ..Default::default() },
            // The data volume is ReadWriteOnce and the world single-writer: the
            // old server must be gone before the new one opens the world.
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(plan.labels.clone()),
                    annotations: non_empty_map(annotations),
                    ..Default::default()
                }),
                spec: Some(pod_spec(plan, supervisor_image)),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn pod_spec(plan: &ServerPlan, supervisor_image: &str) -> PodSpec {
    let mut volumes = Vec::new();
    if let Some(volume) = &plan.volume {
        volumes.push(Volume {
            name: DATA_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: volume.name.clone(),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if let Some(projected) = config_volume(plan) {
        volumes.push(Volume { name: CONFIG_VOLUME.into(), projected: Some(projected), ..Default::default() });
    }
    // The supervisor's binary is wanted by the game's container when it is
    // supervised, and by the install container, which it runs.
    let supervised = plan.container.supervisor.is_some();
    let install = plan.install.as_ref().filter(|_| plan.volume.is_some());
    if supervised || install.is_some() {
        volumes.push(Volume {
            name: SUPERVISOR.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    PodSpec {
        // Game servers never talk to the Kubernetes API; a mounted token would
        // only be something to steal.
        automount_service_account_token: Some(false),
        // Service links put every Service of the namespace into the game's
        // environment, which games neither need nor expect.
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(plan.grace_period_seconds),
        // Privilege escalation cannot be forbidden for arbitrary game images
        // (many start as root and drop privileges), but the default seccomp
        // profile costs them nothing.
        security_context: Some(PodSecurityContext {
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..Default::default()
        }),
        // The supervisor comes from an image of its own: copied into the
        // volume the game's container shares, it runs in any game image. The
        // install script runs after it, under it, before the game.
        init_containers: non_empty(
            (supervised || install.is_some())
                .then(|| Container {
                    name: SUPERVISOR.into(),
                    image: Some(supervisor_image.to_string()),
                    command: Some(supervisor::install_command()),
                    volume_mounts: Some(vec![supervisor_mount()]),
                    security_context: Some(container_security_context()),
                    ..Default::default()
                })
                .into_iter()
                .chain(install.map(|install| install_container(plan, install)))
                .collect(),
        ),
        containers: vec![container(plan)],
        volumes: non_empty(volumes),
        node_selector: non_empty_map(plan.placement.node_selector.clone()),
        tolerations: non_empty(
            plan.placement
                .tolerations
                .iter()
                .map(|t| Toleration {
                    key: t.key.clone(),
                    operator: Some(t.operator.as_str().into()),
                    value: t.value.clone(),
                    effect: t.effect.map(|e| e.as_str().into()),
                    toleration_seconds: t.toleration_seconds,
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// The init container that runs the template's install script
/// ([`INSTALL_CONTAINER`]): in the script's image, under the supervisor
/// (which skips it on a volume whose marker holds the plan's token, keeps its
/// log on the volume, and on failure writes the last lines to the
/// termination log, where the container's status shows them), with the
/// server's volume at [`plan::INSTALL_PATH`], as eggs expect it, and the
/// game's environment, resources and security context. The token is in the
/// command, so a new one (a reinstall asked) is a new pod template.
fn install_container(plan: &ServerPlan, install: &plan::InstallPlan) -> Container {
    let c = &plan.container;
    Container {
        name: INSTALL_CONTAINER.into(),
        image: Some(install.image.clone()),
        command: Some(supervisor::install_run_command(install, Some(supervisor::TERMINATION_LOG))),
        env: non_empty(c.env.iter().map(env_var).collect()),
        resources: c.resources.as_ref().map(resource_requirements),
        volume_mounts: Some(vec![
            VolumeMount { name: DATA_VOLUME.into(), mount_path: plan::INSTALL_PATH.into(), ..Default::default() },
            supervisor_mount(),
        ]),
        // The supervisor's last lines when it wrote them; the log's tail when
        // it could not (killed, out of memory).
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(container_security_context()),
        ..Default::default()
    }
}

/// Every container's security context: no privilege escalation.
fn container_security_context() -> SecurityContext {
    SecurityContext { allow_privilege_escalation: Some(false), ..Default::default() }
}

fn supervisor_mount() -> VolumeMount {
    VolumeMount { name: SUPERVISOR.into(), mount_path: supervisor::MOUNT.into(), ..Default::default() }
}

fn container(plan: &ServerPlan) -> Container {
    let c = &plan.container;
    let supervised = c.supervisor.as_ref();
    // Supervised, the game runs as the supervisor's child and the ready line
    // joins the readiness check.
    let supervisor_check = supervised.and_then(|s| supervisor::probe(c, s)).map(|command| Check::Exec { command });
    let check = supervisor_check.as_ref().or(c.readiness.as_ref());
    let (command, args) = match supervised {
        Some(s) => (Some(supervisor::command(plan, s)), None),
        None => (non_empty(c.command.clone()), non_empty(c.args.clone())),
    };
    Container {
        name: CONTAINER.into(),
        image: Some(c.image.clone()),
        image_pull_policy: c.pull_policy.map(|p| {
            match p {
                PullPolicy::Always => "Always",
                PullPolicy::IfNotPresent => "IfNotPresent",
                PullPolicy::Never => "Never",
            }
            .to_string()
        }),
        command,
        args,
        // The console: `mettaton send`, `kubectl attach -i` write to the
        // game's stdin (the supervisor's, which passes it on).
        stdin: Some(true),
        env: non_empty(c.env.iter().map(env_var).collect()),
        resources: c.resources.as_ref().map(resource_requirements),
        ports: non_empty(
            c.ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.clone()),
                    container_port: p.container_port,
                    protocol: Some(p.protocol.as_str().into()),
                    ..Default::default()
                })
                .collect(),
        ),
        // Readiness decides whether players are sent to the server.
        readiness_probe: check.map(|check| Probe {
            period_seconds: Some(c.period_seconds),
            failure_threshold: Some(c.failure_threshold),
            ..probe(check)
        }),
        // Holds liveness back while a world loads, for up to the startup timeout.
        startup_probe: check.map(|check| Probe {
            period_seconds: Some(c.period_seconds),
            failure_threshold: Some(startup_failure_threshold(plan.startup_timeout_seconds, c.period_seconds)),
            ..probe(check)
        }),
        // Restarts a server that hangs, more patiently than readiness gives up
        // on it, so a lag spike makes it unready rather than killed.
        liveness_probe: check.map(|check| Probe {
            period_seconds: Some(c.period_seconds),
            failure_threshold: Some(c.failure_threshold.saturating_mul(3)),
            ..probe(check)
        }),
        lifecycle: (!c.stop_command.is_empty()).then(|| Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction { command: Some(c.stop_command.clone()) }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        working_dir: c.working_dir.clone(),
        volume_mounts: non_empty(volume_mounts(plan)),
        security_context: Some(container_security_context()),
        ..Default::default()
    }
}

/// An environment variable as Kubernetes takes it. An empty value is no
/// value (what the API server stores); an unsupported source is an empty
/// `valueFrom`, which the API server refuses.
fn env_var(var: &EnvPlan) -> EnvVar {
    let from = |source: EnvVarSource| EnvVar { name: var.name.clone(), value: None, value_from: Some(source) };
    match &var.value {
        EnvValue::Literal(value) => {
            EnvVar { name: var.name.clone(), value: (!value.is_empty()).then(|| value.clone()), value_from: None }
        }
        EnvValue::Secret { name, key, optional } => from(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: name.clone(), key: key.clone(), optional: *optional }),
            ..Default::default()
        }),
        EnvValue::ConfigMap { name, key, optional } => from(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: name.clone(),
                key: key.clone(),
                optional: *optional,
            }),
            ..Default::default()
        }),
        EnvValue::Field { path, api_version } => from(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.clone(), api_version: api_version.clone() }),
            ..Default::default()
        }),
        EnvValue::Unsupported => from(EnvVarSource::default()),
    }
}

/// The container's resources as Kubernetes takes them; an empty map is left
/// out (what the API server stores).
fn resource_requirements(r: &ResourcesPlan) -> ResourceRequirements {
    let amounts = |map: &BTreeMap<String, String>| {
        non_empty_map(map.iter().map(|(resource, q)| (resource.clone(), Quantity(q.clone()))).collect())
    };
    ResourceRequirements {
        requests: amounts(&r.requests),
        limits: amounts(&r.limits),
        claims: non_empty(
            r.claims.iter().map(|c| ResourceClaim { name: c.name.clone(), request: c.request.clone() }).collect(),
        ),
    }
}

fn probe(check: &Check) -> Probe {
    match check {
        Check::Tcp { port } => Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(*port), host: None }),
            ..Default::default()
        },
        Check::Exec { command } => {
            Probe { exec: Some(ExecAction { command: Some(command.clone()) }), ..Default::default() }
        }
    }
}

/// Checks the startup probe may fail before the container is restarted: enough
/// periods to cover the whole startup timeout. Computed in i64: the schema
/// bounds both, but a spec that did not pass it (an object made before a
/// schema change, a hand-built one) must not overflow.
fn startup_failure_threshold(startup_timeout_seconds: i32, period_seconds: i32) -> i32 {
    let period = i64::from(period_seconds.max(1));
    let threshold = (i64::from(startup_timeout_seconds.max(1)) + period - 1) / period;
    // At most the timeout itself, which is an i32.
    i32::try_from(threshold).unwrap_or(i32::MAX)
}

fn volume_mounts(plan: &ServerPlan) -> Vec<VolumeMount> {
    let mut mounts = Vec::new();
    if plan.container.supervisor.is_some() {
        mounts.push(supervisor_mount());
    }
    if let Some(volume) = &plan.volume {
        mounts.push(VolumeMount {
            name: DATA_VOLUME.into(),
            mount_path: volume.mount_path.clone(),
            ..Default::default()
        });
    }
    // Each file mounted alone (subPath), so a file can sit inside the data
    // volume or any directory of the image without hiding its neighbours.
    for (i, file) in plan.config.iter().flat_map(|c| c.files.iter()).enumerate() {
        mounts.push(VolumeMount {
            name: CONFIG_VOLUME.into(),
            mount_path: file.path.clone(),
            sub_path: Some(config_item_path(i)),
            read_only: Some(true),
            ..Default::default()
        });
    }
    mounts
}

/// Path of the `i`th config file inside the projected volume: distinct for
/// every file whatever ConfigMap and key it comes from.
fn config_item_path(i: usize) -> String {
    format!("f{i}")
}

/// One projected volume for all config files: mettaton's own ConfigMap for
/// inline content, and each referenced user ConfigMap (in order of first use).
fn config_volume(plan: &ServerPlan) -> Option<ProjectedVolumeSource> {
    let config = plan.config.as_ref().filter(|c| !c.files.is_empty())?;
    let mut sources: Vec<(String, Vec<KeyToPath>)> = Vec::new();
    for (i, file) in config.files.iter().enumerate() {
        let (name, key) = match &file.source {
            ConfigSource::Inline { key } => (&config.name, key),
            ConfigSource::ConfigMap { name, key } => (name, key),
        };
        let item = KeyToPath { key: key.clone(), path: config_item_path(i), mode: None };
        match sources.iter_mut().find(|(n, _)| n == name) {
            Some((_, items)) => items.push(item),
            None => sources.push((name.clone(), vec![item])),
        }
    }
    Some(ProjectedVolumeSource {
        default_mode: None,
        sources: Some(
            sources
                .into_iter()
                .map(|(name, items)| VolumeProjection {
                    config_map: Some(ConfigMapProjection { name, items: Some(items), optional: None }),
                    ..Default::default()
                })
                .collect(),
        ),
    })
}

/// The Service through which players reach the server.
pub fn service(plan: &ServerPlan, owner: &Owner) -> Service {
    let type_ = plan.service.type_;
    let ports = plan
        .container
        .ports
        .iter()
        .map(|p| ServicePort {
            name: Some(p.name.clone()),
            protocol: Some(p.protocol.as_str().into()),
            port: match (type_, p.external_port) {
                (ServiceType::LoadBalancer, Some(external)) => external,
                _ => p.container_port,
            },
            target_port: Some(IntOrString::Int(p.container_port)),
            node_port: match type_ {
                ServiceType::NodePort => p.external_port,
                _ => None,
            },
            ..Default::default()
        })
        .collect();
    let mut metadata = metadata(plan, &plan.name, owner);
    metadata.annotations = non_empty_map(plan.service.annotations.clone());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(service_type(type_).into()),
            selector: Some(plan.selector.clone()),
            ports: Some(ports),
            // Local keeps the players' addresses visible to the game (bans,
            // rate limits); players are given the node the pod runs on anyway.
            external_traffic_policy: match type_ {
                ServiceType::NodePort | ServiceType::LoadBalancer => Some("Local".into()),
                ServiceType::ClusterIP => None,
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn service_type(type_: ServiceType) -> &'static str {
    match type_ {
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
        ServiceType::ClusterIP => "ClusterIP",
    }
}

/// The claim for the game's data, when storage is planned.
pub fn persistent_volume_claim(plan: &ServerPlan, owner: &Owner) -> Option<PersistentVolumeClaim> {
    let volume = plan.volume.as_ref()?;
    Some(PersistentVolumeClaim {
        metadata: metadata(plan, &volume.name, owner),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(volume.size.clone()))])),
                limits: None,
            }),
            storage_class_name: volume.storage_class_name.clone(),
            ..Default::default()
        }),
        status: None,
    })
}

/// mettaton's ConfigMap holding the inline config files, when there are any.
pub fn config_map(plan: &ServerPlan, owner: &Owner) -> Option<ConfigMap> {
    let config = plan.config.as_ref().filter(|c| !c.inline.is_empty())?;
    Some(ConfigMap {
        metadata: metadata(plan, &config.name, owner),
        data: Some(config.inline.clone()),
        ..Default::default()
    })
}

/// Metadata every child carries: the server's labels and one controller
/// reference to the GameServer, so that garbage collection and `Controller::owns`
/// both see the child as the GameServer's.
fn metadata(plan: &ServerPlan, name: &str, owner: &Owner) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(plan.namespace.clone()),
        labels: Some(plan.labels.clone()),
        owner_references: controller_ref(owner).map(|r| vec![r]),
        ..Default::default()
    }
}

/// The controller reference to `owner`; `None` for a GameServer that was never
/// stored (no uid).
pub fn controller_ref(owner: &Owner) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: GameServer::api_version(&()).into_owned(),
        kind: GameServer::kind(&()).into_owned(),
        name: owner.name.clone(),
        uid: owner.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Where players connect, from the Service and (for NodePort) the node the
/// server's pod runs on. Unknown parts stay empty: no address before the pod
/// is scheduled or the load balancer is provisioned.
pub fn endpoint(plan: &ServerPlan, service: Option<&Service>, node: Option<&Node>) -> Endpoint {
    let Some(service) = service else { return Endpoint::default() };
    let spec = service.spec.as_ref();
    let service_ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let published = |pick: fn(&ServicePort) -> Option<i32>| -> Vec<PublishedPort> {
        plan.container
            .ports
            .iter()
            .filter_map(|p| {
                let sp = service_ports.iter().find(|sp| sp.name.as_deref() == Some(p.name.as_str()))?;
                Some(PublishedPort { name: p.name.clone(), port: pick(sp)?, protocol: p.protocol })
            })
            .collect()
    };
    match plan.service.type_ {
        ServiceType::NodePort => Endpoint { address: node.and_then(node_address), ports: published(|sp| sp.node_port) },
        ServiceType::LoadBalancer => {
            let ingress = service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_deref())
                .and_then(|ingress| ingress.first());
            let address = ingress.and_then(|i| non_blank(i.ip.as_deref()).or_else(|| non_blank(i.hostname.as_deref())));
            Endpoint { address, ports: published(|sp| Some(sp.port)) }
        }
        ServiceType::ClusterIP => Endpoint {
            address: Some(format!("{}.{}.svc", plan.name, plan.namespace)),
            ports: published(|sp| Some(sp.port)),
        },
    }
}

/// The address of a node players can reach: external before internal before
/// a host name.
fn node_address(node: &Node) -> Option<String> {
    let addresses = node.status.as_ref()?.addresses.as_deref()?;
    ["ExternalIP", "InternalIP", "Hostname"].into_iter().find_map(|type_| {
        addresses.iter().find(|a| a.type_ == type_ && !a.address.is_empty()).map(|a| a.address.clone())
    })
}

fn non_blank(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

/// The pod that stands for the server among those matching its selector: the
/// newest one not shutting down, else the newest one (a stopping server is
/// still something to report).
pub fn current_pod(pods: &[Pod]) -> Option<&Pod> {
    let created = |p: &&Pod| (p.metadata.creation_timestamp.clone(), p.metadata.name.clone());
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .max_by_key(created)
        .or_else(|| pods.iter().max_by_key(created))
}

/// Waiting reasons every start goes through: not problems.
const NORMAL_WAITING: [&str; 2] = ["ContainerCreating", "PodInitializing"];

/// The kind of a reason the kubelet gives a waiting container.
fn waiting_kind(reason: &str) -> ProblemKind {
    match reason {
        // Restarted with back-off.
        "CrashLoopBackOff" => ProblemKind::CrashLoop,
        // The pull failed (and is retried with back-off), the reference is
        // invalid, or the pull policy Never finds no image on the node.
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => ProblemKind::ImagePull,
        // CreateContainerConfigError, RunContainerError...
        _ => ProblemKind::Other,
    }
}

/// The kind of a reason the kubelet gives a terminated container.
fn terminated_kind(reason: &str) -> ProblemKind {
    match reason {
        "OOMKilled" => ProblemKind::OutOfMemory,
        // Error, Completed, ContainerCannotRun...
        _ => ProblemKind::Exited,
    }
}

/// The kind of the reason of a pod's `PodScheduled=False` condition.
fn scheduling_kind(reason: &str) -> ProblemKind {
    match reason {
        "Unschedulable" => ProblemKind::Unschedulable,
        // SchedulingGated...
        _ => ProblemKind::Other,
    }
}

/// The instance a Deployment that should run a pod reports when its pod
/// cannot be created at all (condition ReplicaFailure, reason FailedCreate:
/// refused by Pod Security, a quota, a webhook), with the API server's words.
/// `None` while it reports no such failure, or wants no pod.
pub fn refused_instance(deployment: &Deployment) -> Option<Instance> {
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) > 0;
    let conditions = deployment.status.as_ref()?.conditions.as_deref()?;
    let failure = conditions.iter().find(|c| c.type_ == "ReplicaFailure" && c.status == "True")?;
    let reason = failure.reason.clone().unwrap_or_else(|| "FailedCreate".to_string());
    // The ReplicaSet could not create the pod (FailedCreate); another reason
    // (FailedDelete) is no refusal of the server.
    let kind = if reason == "FailedCreate" { ProblemKind::Refused } else { ProblemKind::Other };
    let problem = Problem::new(kind, reason, failure.message.clone());
    wanted.then(|| Instance { problem: Some(problem), ..Instance::default() })
}

/// What a pod says about the game server running in it.
pub fn instance(pod: &Pod) -> Instance {
    let status = pod.status.as_ref();
    let game = status
        .and_then(|s| s.container_statuses.as_deref())
        .and_then(|statuses| statuses.iter().find(|c| c.name == CONTAINER));
    let state = game.and_then(|c| c.state.as_ref());
    let ready = status
        .and_then(|s| s.conditions.as_deref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    // The reason, its kind, and the message that goes with it.
    let problem = |kind: fn(&str) -> ProblemKind, reason: &Option<String>, message: &Option<String>| {
        let reason = reason.as_deref()?;
        Some(Problem::new(kind(reason), reason, message.clone()))
    };
    // A failed install holds the game back: it is why the game waits.
    let problem = install_failure(pod).or_else(|| match game {
        Some(c) => {
            let waiting = state
                .and_then(|s| s.waiting.as_ref())
                .filter(|w| !w.reason.as_deref().is_some_and(|r| NORMAL_WAITING.contains(&r)))
                .and_then(|w| problem(waiting_kind, &w.reason, &w.message));
            let terminated = || {
                state
                    .and_then(|s| s.terminated.as_ref())
                    .or_else(|| c.last_state.as_ref().and_then(|s| s.terminated.as_ref()))
                    .and_then(|t| problem(terminated_kind, &t.reason, &t.message))
            };
            waiting.or_else(|| if c.ready { None } else { terminated() })
        }
        // Before any container exists, the scheduler is the one that can be stuck
        // (no node fits, the data volume cannot be bound).
        None => status
            .and_then(|s| s.conditions.as_deref())
            .and_then(|conditions| conditions.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False"))
            .and_then(|c| problem(scheduling_kind, &c.reason, &c.message)),
    });
    Instance {
        name: pod.metadata.name.clone().unwrap_or_default(),
        running: state.is_some_and(|s| s.running.is_some()),
        ready,
        restarts: game.map_or(0, |c| c.restart_count),
        problem,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    }
}

/// The pod's install container ([`INSTALL_CONTAINER`]) failed: it exited
/// non-zero, and has not started again (it is waiting, in back-off, or done
/// for good). The message is its termination message: the script's last
/// lines, which the supervisor writes there (or the log's tail).
fn install_failure(pod: &Pod) -> Option<Problem> {
    let install =
        pod.status.as_ref()?.init_container_statuses.as_deref()?.iter().find(|c| c.name == INSTALL_CONTAINER)?;
    let state = install.state.as_ref();
    let failed = state.and_then(|s| s.terminated.as_ref()).or_else(|| {
        state.and_then(|s| s.waiting.as_ref())?;
        install.last_state.as_ref()?.terminated.as_ref()
    })?;
    (failed.exit_code != 0).then(|| {
        let message = failed.message.as_deref().map(str::trim_end).map(str::to_string);
        Problem::new(ProblemKind::InstallFailed, "InstallFailed", message)
    })
}

/// `None` for an empty list, so that the object carries no field the API
/// server would drop (which would make the applied object never match).
fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn non_empty_map<V>(m: BTreeMap<String, V>) -> Option<BTreeMap<String, V>> {
    (!m.is_empty()).then_some(m)
}

#[cfg(test)]
mod tests;
