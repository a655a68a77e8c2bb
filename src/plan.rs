//! Planning: a `GameServer` turned into the backend-neutral description of what
//! must run. Pure: no client, no I/O, the same input always gives the same plan.
//! Both backends (Kubernetes, Docker Swarm) build their runtime objects from a
//! [`ServerPlan`], so the meaning of every spec field is decided here once.

use std::collections::BTreeMap;

use crate::api::{
    ConfigEdit, ConfigFile, ConfigParser, DesiredState, GameServer, GameServerSpec, Health, OutputEventType, Protocol,
    PullPolicy, ReclaimPolicy, ServiceType, Shutdown, TaintEffect, TolerationOperator,
};

/// Label carrying the name of the GameServer an object belongs to; also the
/// selector of its pods, so it never changes for the life of the server.
pub const LABEL_GAMESERVER: &str = "mettaton.dev/gameserver";
/// Annotation on the pod template holding a hash of the inline config files, so
/// that a change to them restarts the server with the new files.
pub const ANNOTATION_CONFIG_HASH: &str = "mettaton.dev/config-hash";
/// Annotation on a GameServer asking for a restart, as `kubectl rollout
/// restart` does for a Deployment: a new value (by convention the time it was
/// asked, RFC 3339; `mettaton restart` sets it) replaces the server's pod or
/// task with a new one, on the same volume. The same key on the pod template
/// carries it to the Deployment.
pub const ANNOTATION_RESTARTED_AT: &str = "mettaton.dev/restartedAt";
/// Annotation on a GameServer asking for its template's install script to
/// run again: a new value (`mettaton reinstall` sets the time it was asked)
/// runs it at the server's next start, which the new value also causes.
pub const ANNOTATION_REINSTALL: &str = "mettaton.dev/reinstall";
/// Where an install script finds the server's files, as eggs expect.
pub const INSTALL_PATH: &str = "/mnt/server";
/// The file on the data volume saying which install ran last: its content
/// is the [`InstallPlan::token`] of that run.
pub const INSTALL_MARKER: &str = ".mettaton-installed";
/// The log of the last install run, on the data volume.
pub const INSTALL_LOG: &str = ".mettaton-install.log";

/// Everything a backend needs to run one game server.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerPlan {
    /// Name of the GameServer, also the name of its workload and service.
    pub name: String,
    pub namespace: String,
    /// Labels every runtime object of this server carries.
    pub labels: BTreeMap<String, String>,
    /// The subset of `labels` that selects the server's pods or tasks.
    pub selector: BTreeMap<String, String>,
    /// 1 while the server should run, 0 when it should be stopped.
    pub replicas: i32,
    pub container: ContainerPlan,
    pub volume: Option<VolumePlan>,
    pub config: Option<ConfigPlan>,
    pub service: ServicePlan,
    /// Which nodes may run the server.
    pub placement: PlacementPlan,
    /// Seconds the server gets between the stop request and the kill.
    pub grace_period_seconds: i64,
    /// Seconds a start may take before the server counts as Failed.
    pub startup_timeout_seconds: i32,
    /// The restart asked for last ([`ANNOTATION_RESTARTED_AT`]), if any. The
    /// backends carry it into what the instance is made from (the pod
    /// template, the swarm task's container), so that a new value makes a new
    /// instance and the same value none. `None` when not asked (or empty).
    pub restart_token: Option<String>,
    /// The template's install script, run before the game on a volume where
    /// it has not run (with this token) yet; `None` without one.
    pub install: Option<InstallPlan>,
}

/// An install script (a template's `install`), run in its own image with the
/// server's volume at [`INSTALL_PATH`] and the game's environment, once per
/// volume and token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallPlan {
    pub image: String,
    /// The program that runs the script (`bash`, `ash`).
    pub entrypoint: String,
    pub script: String,
    /// What the volume's [`INSTALL_MARKER`] must hold for the script to be
    /// skipped: the [`ANNOTATION_REINSTALL`] asked last, `initial` before any.
    pub token: String,
}

/// The game's container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPlan {
    pub image: String,
    pub pull_policy: Option<PullPolicy>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<EnvPlan>,
    /// What the container asks for; `None` when the spec asks nothing.
    pub resources: Option<ResourcesPlan>,
    pub ports: Vec<PortPlan>,
    /// How readiness is checked; `None` means ready once running.
    pub readiness: Option<Check>,
    pub period_seconds: i32,
    pub failure_threshold: i32,
    /// Run before the stop signal, so the game can save.
    pub stop_command: Vec<String>,
    /// What mettaton's supervisor does in the container; `None` when nothing
    /// needs it, and the game is the container's first process.
    pub supervisor: Option<SupervisorPlan>,
    /// Where the game starts; the image's own when `None`.
    pub working_dir: Option<String>,
}

/// The supervisor's work: the game's command line is the container's
/// (`command` then `args`), which the CRD requires whenever this is set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupervisorPlan {
    /// `health.readyLogLine`: patterns, checked by
    /// [`crate::supervisor::problems`].
    pub ready: Vec<String>,
    /// `shutdown.stop`: a console line or a signal.
    pub stop: Option<String>,
    /// `players.joinLine`: patterns capturing the player's name.
    pub join: Vec<String>,
    /// `players.leaveLine`.
    pub leave: Vec<String>,
    /// `outputEvents`, in their order.
    pub events: Vec<OutputEventPlan>,
    /// Files the supervisor edits before every start of the game (a
    /// template's `configFiles`), placeholders filled in, paths absolute.
    pub config_files: Vec<EditedFile>,
}

/// A config file the supervisor edits before the game starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditedFile {
    /// Absolute, in the game's container.
    pub path: String,
    pub parser: ConfigParser,
    /// Values literal: placeholders are filled in.
    pub edits: Vec<ConfigEdit>,
}

impl SupervisorPlan {
    /// Whether the supervisor keeps a report the controller reads: the
    /// players it counts, the lines it matched for Events.
    pub fn reports(&self) -> bool {
        !self.join.is_empty() || !self.events.is_empty()
    }

    /// Whether the lines matched for `reason` are Warnings (entries sharing a
    /// reason share its type: [`crate::supervisor::problems`]).
    pub fn warns(&self, reason: &str) -> bool {
        self.events.iter().find(|e| e.reason == reason).is_some_and(|e| e.warning)
    }
}

/// A line of the game's output that becomes an Event (`spec.outputEvents[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputEventPlan {
    /// The pattern, as `health.readyLogLine`'s.
    pub line: String,
    /// The Event's reason.
    pub reason: String,
    /// A Warning Event, else Normal.
    pub warning: bool,
}

/// An environment variable of the game's container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvPlan {
    pub name: String,
    pub value: EnvValue,
}

/// Where an environment variable's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    /// The value itself; empty is the same as none (to Kubernetes, and what it
    /// stores).
    Literal(String),
    /// A key of a Secret in the server's namespace.
    Secret { name: String, key: String, optional: Option<bool> },
    /// A key of a ConfigMap in the server's namespace.
    ConfigMap { name: String, key: String, optional: Option<bool> },
    /// A field of the running instance (`metadata.name`, `status.podIP`...),
    /// in the schema version `api_version` when given.
    Field { path: String, api_version: Option<String> },
    /// A `valueFrom` the CRD refuses: no source or more than one, one mettaton
    /// does not offer (`resourceFieldRef`, `fileKeyRef`), or a value beside it.
    /// Every backend refuses it (Kubernetes through the API server).
    Unsupported,
}

/// The amounts the container asks for, by resource name (`cpu`, `memory`,
/// `ephemeral-storage`: the CRD allows no other, a spec it did not check may
/// name one), each a quantity as written. An empty map asks nothing (the same
/// to Kubernetes, and what it stores).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcesPlan {
    /// What the instance is guaranteed (reserved).
    pub requests: BTreeMap<String, String>,
    /// What it may not exceed.
    pub limits: BTreeMap<String, String>,
    /// Dynamic resource claims: the CRD refuses them, and no backend runs them.
    pub claims: Vec<ResourceClaimPlan>,
}

/// A dynamic resource claim of the container, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceClaimPlan {
    pub name: String,
    pub request: Option<String>,
}

/// A port of the game.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPlan {
    pub name: String,
    pub container_port: i32,
    pub protocol: Protocol,
    /// The port players must be given, when the user fixed it.
    pub external_port: Option<i32>,
}

/// A readiness check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A TCP connection to this container port.
    Tcp { port: i32 },
    /// A command in the container that exits 0 when ready.
    Exec { command: Vec<String> },
}

/// The data volume.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumePlan {
    /// Name of the claim (Kubernetes) or volume (Swarm): stable for a GameServer
    /// name, so a new GameServer of the same name finds a retained one again.
    pub name: String,
    pub size: String,
    pub storage_class_name: Option<String>,
    pub mount_path: String,
    pub reclaim: ReclaimPolicy,
}

/// Config files and where their content comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigPlan {
    /// Name of the ConfigMap (Kubernetes) or config prefix (Swarm) holding the
    /// inline files.
    pub name: String,
    /// Inline content by key, for the object mettaton owns.
    pub inline: BTreeMap<String, String>,
    pub files: Vec<ConfigFilePlan>,
    /// Hash of the inline content and of the references: changes when a file
    /// changes, and restarts the server.
    pub hash: String,
}

/// One config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFilePlan {
    /// Absolute path in the container.
    pub path: String,
    pub source: ConfigSource,
}

/// Where a config file's content comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A key of mettaton's own config object (`ConfigPlan::inline`).
    Inline { key: String },
    /// A key of the user's ConfigMap.
    ConfigMap { name: String, key: String },
}

/// Which nodes may run the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementPlan {
    /// Node labels (key, value) the node must carry.
    pub node_selector: BTreeMap<String, String>,
    /// Taints the server tolerates.
    pub tolerations: Vec<TolerationPlan>,
}

/// A taint the server tolerates. Empty strings are absent: the same to
/// Kubernetes, and what it stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TolerationPlan {
    /// The taint's key; every key when `None` (with `Exists`).
    pub key: Option<String>,
    pub operator: TolerationOperator,
    /// The taint's value, with `Equal`.
    pub value: Option<String>,
    /// The taint's effect; every effect when `None`.
    pub effect: Option<TaintEffect>,
    /// How long a NoExecute taint is tolerated; forever when `None`.
    pub toleration_seconds: Option<i64>,
}

/// How players reach the server.
#[derive(Clone, Debug, PartialEq)]
pub struct ServicePlan {
    pub type_: ServiceType,
    pub annotations: BTreeMap<String, String>,
}

/// The plan for a GameServer. `name` and `namespace` come from its metadata.
pub fn plan(gs: &GameServer) -> ServerPlan {
    let name = gs.metadata.name.clone().unwrap_or_default();
    let namespace = gs.metadata.namespace.clone().unwrap_or_default();
    let mut plan = plan_spec(&name, &namespace, &gs.spec);
    plan.restart_token = restart_token(gs.metadata.annotations.as_ref());
    plan
}

/// The restart asked for in these annotations: the value of
/// [`ANNOTATION_RESTARTED_AT`], unless it is empty.
pub fn restart_token(annotations: Option<&BTreeMap<String, String>>) -> Option<String> {
    annotations?.get(ANNOTATION_RESTARTED_AT).filter(|v| !v.is_empty()).cloned()
}

/// The plan for a GameServer made from a template, resolved
/// ([`crate::template::resolve`]): [`plan`] of the server with the resolved
/// spec, the game started in the template's files, the supervisor editing
/// the template's config files (a supervisor planned for them when nothing
/// else needed one), and the install script with the reinstall asked for
/// ([`install_token`]).
pub fn plan_resolved(gs: &GameServer, r: &crate::template::Resolved) -> ServerPlan {
    let name = gs.metadata.name.clone().unwrap_or_default();
    let namespace = gs.metadata.namespace.clone().unwrap_or_default();
    let annotations = gs.metadata.annotations.as_ref();
    let mut plan = plan_spec(&name, &namespace, &r.spec);
    plan.restart_token = restart_token(annotations);
    plan.container.working_dir = Some(r.working_dir.clone());
    if !r.config_files.is_empty() {
        plan.container.supervisor.get_or_insert_with(SupervisorPlan::default).config_files = r.config_files.clone();
    }
    plan.install = r.install.as_ref().map(|i| InstallPlan {
        image: i.image.clone(),
        entrypoint: i.entrypoint.clone(),
        script: i.script.clone(),
        token: install_token(annotations),
    });
    plan
}

/// The install asked for in these annotations: the value of
/// [`ANNOTATION_REINSTALL`], or `initial` when there is none (or it is
/// empty), the install every volume gets once.
pub fn install_token(annotations: Option<&BTreeMap<String, String>>) -> String {
    annotations
        .and_then(|a| a.get(ANNOTATION_REINSTALL))
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "initial".to_string())
}

/// The plan for a spec, given the server's name and namespace. No restart is
/// asked for: that is in the GameServer's metadata ([`plan`]), or set by the
/// caller.
pub fn plan_spec(name: &str, namespace: &str, spec: &GameServerSpec) -> ServerPlan {
    let selector = BTreeMap::from([(LABEL_GAMESERVER.to_string(), name.to_string())]);
    let mut labels = selector.clone();
    labels.extend([
        ("app.kubernetes.io/name".to_string(), "gameserver".to_string()),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
        ("app.kubernetes.io/component".to_string(), "game-server".to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "mettaton".to_string()),
    ]);

    let health = spec.health.clone().unwrap_or_default();
    let shutdown = spec.shutdown.clone().unwrap_or_default();
    let ports: Vec<PortPlan> = spec
        .ports
        .iter()
        .map(|p| PortPlan {
            name: p.name.clone(),
            container_port: p.container_port,
            protocol: p.protocol,
            external_port: p.external_port,
        })
        .collect();

    ServerPlan {
        name: name.to_string(),
        namespace: namespace.to_string(),
        selector,
        labels,
        replicas: match spec.state {
            DesiredState::Running => 1,
            DesiredState::Stopped => 0,
        },
        container: ContainerPlan {
            image: spec.image.clone(),
            pull_policy: spec.image_pull_policy,
            command: spec.command.clone(),
            args: spec.args.clone(),
            env: env(spec),
            resources: resources(spec),
            readiness: readiness(&health, &ports),
            period_seconds: health.period_seconds,
            failure_threshold: health.failure_threshold,
            stop_command: shutdown.stop_command.clone(),
            supervisor: supervisor(spec, &health, &shutdown),
            ports,
            working_dir: None,
        },
        volume: spec.storage.as_ref().map(|s| VolumePlan {
            name: volume_name(name),
            size: s.size.0.clone(),
            storage_class_name: s.storage_class_name.clone(),
            mount_path: s.mount_path().to_string(),
            reclaim: s.reclaim_policy,
        }),
        config: config(name, &spec.config),
        service: ServicePlan {
            type_: spec.service.as_ref().map(|s| s.type_).unwrap_or_default(),
            annotations: spec.service.as_ref().map(|s| s.annotations.clone()).unwrap_or_default(),
        },
        placement: PlacementPlan {
            node_selector: spec.node_selector.clone(),
            tolerations: spec
                .tolerations
                .iter()
                .map(|t| {
                    let present = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
                    TolerationPlan {
                        key: present(&t.key),
                        operator: t.operator,
                        value: present(&t.value),
                        effect: t.effect,
                        toleration_seconds: t.toleration_seconds,
                    }
                })
                .collect(),
        },
        grace_period_seconds: shutdown.grace_period_seconds,
        startup_timeout_seconds: health.startup_timeout_seconds,
        restart_token: None,
        install: None,
    }
}

/// Name of the data volume of the GameServer `name`.
pub fn volume_name(name: &str) -> String {
    format!("{name}-data")
}

/// Name of the config object of the GameServer `name`.
pub fn config_name(name: &str) -> String {
    format!("{name}-config")
}

/// The environment's plan. A `valueFrom` is one of the sources the CRD
/// offers, alone and with no value beside it (an empty value is none), or
/// [`EnvValue::Unsupported`].
fn env(spec: &GameServerSpec) -> Vec<EnvPlan> {
    spec.env
        .iter()
        .map(|var| {
            let literal = var.value.clone().unwrap_or_default();
            let value = match &var.value_from {
                None => EnvValue::Literal(literal),
                Some(from)
                    if literal.is_empty() && from.resource_field_ref.is_none() && from.file_key_ref.is_none() =>
                {
                    match (&from.secret_key_ref, &from.config_map_key_ref, &from.field_ref) {
                        (Some(s), None, None) => {
                            EnvValue::Secret { name: s.name.clone(), key: s.key.clone(), optional: s.optional }
                        }
                        (None, Some(c), None) => {
                            EnvValue::ConfigMap { name: c.name.clone(), key: c.key.clone(), optional: c.optional }
                        }
                        (None, None, Some(f)) => {
                            EnvValue::Field { path: f.field_path.clone(), api_version: f.api_version.clone() }
                        }
                        _ => EnvValue::Unsupported,
                    }
                }
                Some(_) => EnvValue::Unsupported,
            };
            EnvPlan { name: var.name.clone(), value }
        })
        .collect()
}

/// The resources' plan: the amounts as written, the claims by name.
fn resources(spec: &GameServerSpec) -> Option<ResourcesPlan> {
    let r = spec.resources.as_ref()?;
    let requests = r.requests.iter().flatten().map(|(resource, q)| (resource.clone(), q.0.clone())).collect();
    let limits = r.limits.iter().flatten().map(|(resource, q)| (resource.clone(), q.0.clone())).collect();
    Some(ResourcesPlan {
        requests,
        limits,
        claims: r
            .claims
            .iter()
            .flatten()
            .map(|c| ResourceClaimPlan { name: c.name.clone(), request: c.request.clone() })
            .collect(),
    })
}

/// What the supervisor must do, if anything.
fn supervisor(spec: &GameServerSpec, health: &Health, shutdown: &Shutdown) -> Option<SupervisorPlan> {
    let plan = SupervisorPlan {
        ready: health.ready_log_line.clone().unwrap_or_default(),
        stop: shutdown.stop.clone(),
        join: spec.players.as_ref().map(|p| p.join_line.clone()).unwrap_or_default(),
        leave: spec.players.as_ref().map(|p| p.leave_line.clone()).unwrap_or_default(),
        events: spec
            .output_events
            .iter()
            .map(|e| OutputEventPlan {
                line: e.line.clone(),
                reason: e.reason.clone(),
                warning: e.type_ == OutputEventType::Warning,
            })
            .collect(),
        config_files: Vec::new(),
    };
    (plan != SupervisorPlan::default()).then_some(plan)
}

/// The readiness check beside the game's ready line (if any): the probe asked
/// for, else, when no ready line is awaited, a TCP connection to the first TCP
/// port, else none (a UDP-only server is ready once it runs).
fn readiness(health: &Health, ports: &[PortPlan]) -> Option<Check> {
    if let Some(probe) = &health.probe {
        if let Some(command) = &probe.exec {
            return Some(Check::Exec { command: command.clone() });
        }
        if let Some(port_name) = &probe.tcp_port {
            // The schema guarantees the name refers to a TCP port.
            if let Some(p) = ports.iter().find(|p| &p.name == port_name) {
                return Some(Check::Tcp { port: p.container_port });
            }
        }
    }
    if health.ready_log_line.is_some() {
        return None;
    }
    ports.iter().find(|p| p.protocol == Protocol::TCP).map(|p| Check::Tcp { port: p.container_port })
}

fn config(name: &str, files: &[ConfigFile]) -> Option<ConfigPlan> {
    if files.is_empty() {
        return None;
    }
    let mut inline = BTreeMap::new();
    let mut planned = Vec::with_capacity(files.len());
    let mut hasher = Fnv1a::default();
    for (i, file) in files.iter().enumerate() {
        hasher.write(file.path.as_bytes());
        let source = match (&file.content, &file.config_map_key_ref) {
            (Some(content), _) => {
                let key = config_key(i, &file.path);
                hasher.write(b"\0inline\0");
                hasher.write(content.as_bytes());
                inline.insert(key.clone(), content.clone());
                ConfigSource::Inline { key }
            }
            (None, Some(r)) => {
                hasher.write(b"\0ref\0");
                hasher.write(r.name.as_bytes());
                hasher.write(b"\0");
                hasher.write(r.key.as_bytes());
                ConfigSource::ConfigMap { name: r.name.clone(), key: r.key.clone() }
            }
            // The schema refuses a file with neither; an empty file is the
            // harmless reading of one that slipped through.
            (None, None) => {
                let key = config_key(i, &file.path);
                inline.insert(key.clone(), String::new());
                ConfigSource::Inline { key }
            }
        };
        hasher.write(b"\0\0");
        planned.push(ConfigFilePlan { path: file.path.clone(), source });
    }
    Some(ConfigPlan { name: config_name(name), inline, files: planned, hash: format!("{:016x}", hasher.0) })
}

/// A ConfigMap key for the `i`th file: its position (unique) and its base name
/// (for people reading the ConfigMap), with only the characters keys allow.
fn config_key(i: usize, path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or("");
    let clean: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .take(200)
        .collect();
    format!("{i}-{clean}")
}

/// FNV-1a, 64 bits: a hash that is the same on every platform and every Rust
/// release (std's hasher is not), which a value stored in objects needs.
pub(crate) struct Fnv1a(pub(crate) u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf29ce484222325)
    }
}

impl Fnv1a {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }

    /// Eight hex digits: enough to tell a server's files or names apart.
    pub(crate) fn short(&self) -> String {
        format!("{:08x}", (self.0 >> 32) ^ (self.0 & 0xffff_ffff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ConfigMapKey, GamePort, HealthProbe};

    fn spec() -> GameServerSpec {
        serde_json::from_value(serde_json::json!({
            "image": "itzg/minecraft-server:java21",
            "ports": [
                { "name": "game", "containerPort": 25565 },
                { "name": "query", "containerPort": 25565, "protocol": "UDP" }
            ]
        }))
        .unwrap()
    }

    #[test]
    fn running_server_has_one_replica_and_stopped_none() {
        let mut s = spec();
        assert_eq!(plan_spec("mc", "games", &s).replicas, 1);
        s.state = DesiredState::Stopped;
        assert_eq!(plan_spec("mc", "games", &s).replicas, 0);
    }

    #[test]
    fn players_and_output_events_are_the_supervisors_work() {
        let mut s = spec();
        s.command = vec!["/start".into()];
        s.players = serde_json::from_value(serde_json::json!({
            "joinLine": ["regex:^(\\S+) joined"], "leaveLine": ["regex:^(\\S+) left", "regex:^(\\S+) lost"]
        }))
        .unwrap();
        let p = plan_spec("mc", "games", &s).container.supervisor.expect("supervised");
        assert_eq!((p.join.len(), p.leave.len(), p.events.len()), (1, 2, 0));
        assert!(p.reports());
        let mut s = spec();
        s.command = vec!["/start".into()];
        s.output_events = serde_json::from_value(serde_json::json!([
            { "line": "saved the world", "reason": "WorldSaved" },
            { "line": "regex:^ERROR", "reason": "GameError", "type": "Warning" }
        ]))
        .unwrap();
        let p = plan_spec("mc", "games", &s).container.supervisor.expect("supervised");
        assert_eq!(
            p.events,
            [
                OutputEventPlan { line: "saved the world".into(), reason: "WorldSaved".into(), warning: false },
                OutputEventPlan { line: "regex:^ERROR".into(), reason: "GameError".into(), warning: true }
            ]
        );
        assert!(p.join.is_empty() && p.reports());
        // A stop alone keeps no report.
        let mut s = spec();
        s.command = vec!["/start".into()];
        s.shutdown = Some(serde_json::from_value(serde_json::json!({ "stop": "stop" })).unwrap());
        assert!(!plan_spec("mc", "games", &s).container.supervisor.unwrap().reports());
    }

    #[test]
    fn labels_identify_the_server_and_selector_is_minimal() {
        let p = plan_spec("mc", "games", &spec());
        assert_eq!(p.selector, BTreeMap::from([(LABEL_GAMESERVER.into(), "mc".into())]));
        assert_eq!(p.labels["app.kubernetes.io/instance"], "mc");
        assert_eq!(p.labels["app.kubernetes.io/managed-by"], "mettaton");
        assert!(p.selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)));
    }

    #[test]
    fn readiness_defaults_to_the_first_tcp_port() {
        let p = plan_spec("mc", "games", &spec());
        assert_eq!(p.container.readiness, Some(Check::Tcp { port: 25565 }));
    }

    #[test]
    fn udp_only_server_has_no_readiness_check() {
        let mut s = spec();
        s.ports =
            vec![GamePort { name: "game".into(), container_port: 2456, protocol: Protocol::UDP, external_port: None }];
        assert_eq!(plan_spec("vh", "games", &s).container.readiness, None);
    }

    #[test]
    fn explicit_probe_wins() {
        let mut s = spec();
        s.health = Some(Health {
            probe: Some(HealthProbe { tcp_port: None, exec: Some(vec!["mc-health".into()]) }),
            ..Health::default()
        });
        assert_eq!(
            plan_spec("mc", "games", &s).container.readiness,
            Some(Check::Exec { command: vec!["mc-health".into()] })
        );
    }

    #[test]
    fn storage_plans_a_stably_named_volume() {
        let mut s = spec();
        s.storage = Some(
            serde_json::from_value(
                serde_json::json!({ "size": "10Gi", "mountPath": "/data", "reclaimPolicy": "Retain" }),
            )
            .unwrap(),
        );
        let v = plan_spec("mc", "games", &s).volume.unwrap();
        assert_eq!((v.name.as_str(), v.size.as_str(), v.reclaim), ("mc-data", "10Gi", ReclaimPolicy::Retain));
    }

    #[test]
    fn config_hash_changes_with_content_and_not_otherwise() {
        let mut s = spec();
        s.config = vec![
            ConfigFile {
                path: "/data/server.properties".into(),
                content: Some("motd=hi".into()),
                config_map_key_ref: None,
            },
            ConfigFile {
                path: "/data/ops.json".into(),
                content: None,
                config_map_key_ref: Some(ConfigMapKey { name: "ops".into(), key: "ops.json".into() }),
            },
        ];
        let a = plan_spec("mc", "games", &s).config.unwrap();
        assert_eq!(a, plan_spec("mc", "games", &s).config.unwrap());
        assert_eq!(a.inline.keys().collect::<Vec<_>>(), vec!["0-server.properties"]);
        assert_eq!(a.files[1].source, ConfigSource::ConfigMap { name: "ops".into(), key: "ops.json".into() });
        s.config[0].content = Some("motd=hello".into());
        assert_ne!(a.hash, plan_spec("mc", "games", &s).config.unwrap().hash);
    }

    #[test]
    fn placement_carries_the_node_selector_and_the_tolerations() {
        let mut s = spec();
        assert_eq!(plan_spec("mc", "games", &s).placement, PlacementPlan::default());
        s = serde_json::from_value(serde_json::json!({
            "image": "itzg/minecraft-server:java21",
            "ports": [{ "name": "game", "containerPort": 25565 }],
            "nodeSelector": { "mettaton.dev/pool": "games", "disk": "" },
            "tolerations": [
                { "key": "mettaton.dev/real-node", "value": "true", "effect": "NoSchedule" },
                { "operator": "Exists", "key": "", "value": "", "effect": "NoExecute", "tolerationSeconds": 30 }
            ]
        }))
        .unwrap();
        let p = plan_spec("mc", "games", &s).placement;
        assert_eq!(
            p.node_selector,
            BTreeMap::from([("mettaton.dev/pool".into(), "games".into()), ("disk".into(), String::new())])
        );
        assert_eq!(
            p.tolerations,
            vec![
                TolerationPlan {
                    key: Some("mettaton.dev/real-node".into()),
                    operator: TolerationOperator::Equal,
                    value: Some("true".into()),
                    effect: Some(TaintEffect::NoSchedule),
                    toleration_seconds: None,
                },
                TolerationPlan {
                    key: None,
                    operator: TolerationOperator::Exists,
                    value: None,
                    effect: Some(TaintEffect::NoExecute),
                    toleration_seconds: Some(30),
                },
            ]
        );
    }

    #[test]
    fn a_restart_is_the_annotations_value_and_nothing_else_plans_one() {
        let gs = |annotations: serde_json::Value| -> GameServer {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
                "metadata": { "name": "mc", "namespace": "games", "annotations": annotations },
                "spec": spec()
            }))
            .unwrap()
        };
        let asked = gs(serde_json::json!({ ANNOTATION_RESTARTED_AT: "2026-12-03T10:00:00Z", "other": "x" }));
        let p = plan(&asked);
        assert_eq!(p.restart_token.as_deref(), Some("2026-12-03T10:00:00Z"));
        // Everything else is the plan of the spec: a restart changes nothing but itself.
        assert_eq!(ServerPlan { restart_token: None, ..p }, plan_spec("mc", "games", &spec()));
        assert_eq!(plan(&gs(serde_json::json!({ "other": "x" }))).restart_token, None);
        assert_eq!(plan(&gs(serde_json::json!({ ANNOTATION_RESTARTED_AT: "" }))).restart_token, None, "empty");
        assert_eq!(plan_spec("mc", "games", &spec()).restart_token, None);
    }

    #[test]
    fn env_values_are_literals_or_one_source_and_anything_else_unsupported() {
        let mut s = spec();
        s.env = serde_json::from_value(serde_json::json!([
            { "name": "A", "value": "1" },
            { "name": "B" },
            { "name": "C", "value": "", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k", "optional": true } } },
            { "name": "D", "valueFrom": { "configMapKeyRef": { "name": "c", "key": "k" } } },
            { "name": "E", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
            { "name": "F", "value": "x", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
            { "name": "G", "valueFrom": {} },
            { "name": "H", "valueFrom": { "resourceFieldRef": { "resource": "limits.cpu" } } },
            { "name": "I", "valueFrom": {
                "secretKeyRef": { "name": "s", "key": "k" }, "configMapKeyRef": { "name": "c", "key": "k" } } }
        ]))
        .unwrap();
        let values: Vec<(String, EnvValue)> =
            plan_spec("mc", "games", &s).container.env.into_iter().map(|e| (e.name, e.value)).collect();
        let secret = EnvValue::Secret { name: "s".into(), key: "k".into(), optional: Some(true) };
        let config_map = EnvValue::ConfigMap { name: "c".into(), key: "k".into(), optional: None };
        let field = EnvValue::Field { path: "status.podIP".into(), api_version: None };
        assert_eq!(
            values,
            vec![
                ("A".into(), EnvValue::Literal("1".into())),
                ("B".into(), EnvValue::Literal(String::new())),
                ("C".into(), secret),
                ("D".into(), config_map),
                ("E".into(), field),
                ("F".into(), EnvValue::Unsupported),
                ("G".into(), EnvValue::Unsupported),
                ("H".into(), EnvValue::Unsupported),
                ("I".into(), EnvValue::Unsupported),
            ]
        );
    }

    #[test]
    fn resources_are_the_amounts_as_written() {
        let mut s = spec();
        assert_eq!(plan_spec("mc", "games", &s).container.resources, None);
        s.resources = serde_json::from_value(serde_json::json!({
            "requests": { "cpu": "500m", "memory": "2Gi" }, "limits": { "memory": "4096Mi" }
        }))
        .unwrap();
        let amounts = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(
            plan_spec("mc", "games", &s).container.resources,
            Some(ResourcesPlan {
                requests: amounts(&[("cpu", "500m"), ("memory", "2Gi")]),
                limits: amounts(&[("memory", "4096Mi")]),
                claims: vec![],
            })
        );
        s.resources = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(plan_spec("mc", "games", &s).container.resources, Some(ResourcesPlan::default()));
    }

    #[test]
    fn config_keys_are_valid_configmap_keys() {
        assert_eq!(config_key(3, "/etc/game/my file?.ini"), "3-my_file_.ini");
    }
}
