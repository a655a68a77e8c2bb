//! The `GameServer` resource (`mettaton.dev/v1alpha1`): what a user declares
//! (spec) and what mettaton reports back (status).
//!
//! Doc comments on the fields are the descriptions `kubectl explain` shows.
//! Validation lives in the schema (enums, ranges, patterns, list-map keys and
//! CEL rules), so the API server refuses a bad manifest with a message that names
//! the field, before any controller sees it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod template;
pub use template::*;

/// The API group of every mettaton resource.
pub const GROUP: &str = "mettaton.dev";
/// The finalizer that makes deletion wait for the runtime to be torn down.
pub const FINALIZER: &str = "mettaton.dev/teardown";
/// The one field manager under which mettaton applies everything it writes.
pub const FIELD_MANAGER: &str = "mettaton";

/// A dedicated game server: one instance of a game, with its ports, its data
/// volume and its configuration, kept running (or stopped) as declared.
// Each printcolumn repeats `type_ = "string"`, which clippy mistakes for a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mettaton.dev",
    version = "v1alpha1",
    kind = "GameServer",
    plural = "gameservers",
    singular = "gameserver",
    shortname = "mgs",
    category = "mettaton",
    namespaced,
    status = "GameServerStatus",
    derive = "PartialEq",
    doc = "A dedicated game server: one instance of a game, kept running (or stopped) as declared, with the address players connect to in its status.",
    printcolumn(name = "State", type_ = "string", json_path = ".spec.state", description = "Declared state"),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the server is in its lifecycle"
    ),
    printcolumn(
        name = "Address",
        type_ = "string",
        json_path = ".status.address",
        description = "Where players connect"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether players can connect"
    ),
    printcolumn(
        name = "Players",
        type_ = "integer",
        json_path = ".status.players.count",
        description = "Players online, from the game's join and leave lines (spec.players)"
    ),
    printcolumn(
        name = "Restarts",
        type_ = "integer",
        json_path = ".status.restarts",
        priority = 1,
        description = "Restarts of the server's container"
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.image",
        priority = 1,
        description = "Container image"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && !self.metadata.name.contains('.')").message("metadata.name must be a DNS label, at most 63 characters and no dots: it names the server's Service and labels its pods")
)]
#[x_kube(validation = Rule::new("!has(self.health) || !has(self.health.probe) || !has(self.health.probe.tcpPort) || !has(self.ports) || self.ports.exists(p, p.name == self.health.probe.tcpPort && p.protocol == 'TCP')").message("health.probe.tcpPort must name a TCP port of spec.ports").field_path(".health.probe.tcpPort"))]
#[x_kube(validation = Rule::new("!has(self.service) || self.service.type != 'ClusterIP' || !has(self.ports) || self.ports.all(p, !has(p.externalPort))").message("ports[].externalPort needs a NodePort or LoadBalancer service, not ClusterIP").field_path(".ports"))]
#[x_kube(validation = Rule::new("!has(self.service) || self.service.type != 'LoadBalancer' || !has(self.ports) || self.ports.all(p, self.ports.exists_one(q, q.protocol == p.protocol && (has(q.externalPort) ? q.externalPort : q.containerPort) == (has(p.externalPort) ? p.externalPort : p.containerPort)))").message("with a LoadBalancer service, each port's externalPort (or containerPort when it has none) and protocol pair may appear only once: they are the Service's ports").field_path(".ports"))]
#[x_kube(validation = Rule::new("!has(self.storage) || !has(self.config) || self.config.all(c, c.path != (has(self.storage.mountPath) ? self.storage.mountPath : '/data'))").message("a config file cannot be at storage.mountPath, where the data volume is mounted").field_path(".config"))]
#[x_kube(validation = Rule::new("!has(self.health) || !has(self.health.readyLogLine) || has(self.command) || has(self.template)").message("health.readyLogLine needs spec.command (or spec.template): mettaton's supervisor starts the game, and the image's own entrypoint is not known to it").field_path(".command"))]
#[x_kube(validation = Rule::new("!has(self.shutdown) || !has(self.shutdown.stop) || has(self.command) || has(self.template)").message("shutdown.stop needs spec.command (or spec.template): mettaton's supervisor starts the game, and the image's own entrypoint is not known to it").field_path(".command"))]
#[x_kube(validation = Rule::new("!has(self.players) || has(self.command) || has(self.template)").message("players needs spec.command (or spec.template): mettaton's supervisor starts the game and reads its output, and the image's own entrypoint is not known to it").field_path(".command"))]
#[x_kube(validation = Rule::new("!has(self.outputEvents) || size(self.outputEvents) == 0 || has(self.command) || has(self.template)").message("outputEvents needs spec.command (or spec.template): mettaton's supervisor starts the game and reads its output, and the image's own entrypoint is not known to it").field_path(".command"))]
#[x_kube(validation = Rule::new("!has(oldSelf.storage) || has(self.storage)").message("storage cannot be removed from a GameServer; delete the GameServer to release its volume").field_path(".storage"))]
#[x_kube(validation = Rule::new("has(self.template) || has(self.image) && size(self.image) > 0").message("spec.image is required unless spec.template names a template").field_path(".image"))]
#[x_kube(validation = Rule::new("has(self.template) || has(self.ports) && size(self.ports) > 0").message("spec.ports needs at least one port unless spec.template names a template that has them").field_path(".ports"))]
#[x_kube(validation = Rule::new("has(self.template) || !has(self.variables) || size(self.variables) == 0").message("spec.variables needs spec.template: they are the template's variables").field_path(".variables"))]
#[serde(rename_all = "camelCase")]
pub struct GameServerSpec {
    /// Container image of the game server, for example `itzg/minecraft-server:java21`.
    /// Required, unless `template` names a template, whose image is the default.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new("self.trim() == self && !self.contains(' ')").message("image must not contain spaces"))]
    pub image: String,

    /// The game template this server is made from: a `GameTemplate` in the
    /// server's namespace or a `ClusterGameTemplate`. The template gives the
    /// image, start command, environment, ports, ready lines, stop, the
    /// config-file edits and the install script; fields set here override
    /// it. `mettaton render NAME` prints the server it resolves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,

    /// Values of the template's variables, by their `env` name, at most 128:
    /// each must be a variable of the template that users may set
    /// (`userEditable`) and keep its rules; the others take the template's
    /// default. A server whose values break a rule is Failed, naming the
    /// variable and the rule, and is not started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "variables_schema")]
    pub variables: BTreeMap<String, String>,

    /// When to pull the image: Always, IfNotPresent (the default) or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// Entrypoint override. The image's own entrypoint runs when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub command: Vec<String>,

    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub args: Vec<String>,

    /// Environment of the game server. Secrets belong in `valueFrom.secretKeyRef`,
    /// never in `value`: the spec is readable by everyone who can read the
    /// GameServer.
    /// `valueFrom` takes one of `secretKeyRef`, `configMapKeyRef` or `fieldRef`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "env_schema")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,

    /// CPU and memory the game server requests and is limited to: `cpu`,
    /// `memory` and `ephemeral-storage`, requests not above limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,

    /// The ports the game listens on. At least one (here or in the
    /// template, whose ports these replace); names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[x_kube(validation = Rule::new("self.all(p, self.exists_one(q, q.containerPort == p.containerPort && q.protocol == p.protocol))").message("each containerPort and protocol pair may appear only once"))]
    #[x_kube(validation = Rule::new("self.all(p, !has(p.externalPort) || self.exists_one(q, has(q.externalPort) && q.externalPort == p.externalPort && q.protocol == p.protocol))").message("each externalPort and protocol pair may appear only once"))]
    pub ports: Vec<GamePort>,

    /// Running keeps the server up; Stopped shuts it down but keeps its data,
    /// its volume and its address record.
    #[serde(default)]
    pub state: DesiredState,

    /// A persistent volume for the game's data (worlds, saves). Without it the
    /// data lives only as long as the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,

    /// Files mounted into the server, from inline content or from a ConfigMap.
    /// A change to this list (a file added, removed or moved, its inline
    /// content, the ConfigMap or key it names) restarts the server with the
    /// new files. An edit inside a referenced ConfigMap does not restart it,
    /// and the running server does not see it either (each file is mounted on
    /// its own, which Kubernetes does not update in place): it takes effect
    /// at the server's next start, such as `mettaton restart NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["path".into()]))]
    pub config: Vec<ConfigFile>,

    /// How players reach the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSettings>,

    /// How mettaton decides that the server is up, and when it gives up on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,

    /// How the server is shut down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Shutdown>,

    /// Who is playing, read from the game's own output (no SDK in the game):
    /// the lines it prints when a player joins and leaves. mettaton's
    /// supervisor, which starts the game (needs `spec.command`), counts them;
    /// the controller reads its count every 30 seconds while the server runs
    /// into `status.players` and the `mettaton_players` metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub players: Option<PlayerLines>,

    /// Lines of the game's output published as Kubernetes Events on the
    /// GameServer (`kubectl events --for gameserver/NAME`), at most 32
    /// patterns. Each line printed that matches one becomes an Event with
    /// that entry's reason and type and the line as its message (its first
    /// 1024 bytes); a line matching several entries is one Event, of the
    /// first. Read by mettaton's supervisor, which starts the game (needs
    /// `spec.command`); the controller collects them at most every 30
    /// seconds, so an Event may come up to 30 s after its line. Up to 100
    /// lines are kept between two reads (older ones are dropped), and the
    /// lines of a container that restarted before they were read are lost
    /// with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub output_events: Vec<OutputEvent>,

    /// Free text for people: what this server is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Labels the node running the server must carry, as label key and value,
    /// to keep game servers on dedicated game nodes. At most 32 entries. On
    /// Kubernetes it is the pod's `nodeSelector`. On Docker Swarm each entry is
    /// a placement constraint `node.labels.KEY==VALUE` on the swarm node's
    /// labels (`docker node update --label-add`); swarm takes neither a key
    /// with a prefix (`example.com/...`) nor an empty value there, and compares
    /// values ignoring case.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "node_selector_schema")]
    #[x_kube(validation = Rule::new(QUALIFIED_KEYS_RULE).message("nodeSelector keys must be label keys: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))]
    #[x_kube(validation = Rule::new(LABEL_VALUES_RULE).message("nodeSelector values must be label values: empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))]
    pub node_selector: BTreeMap<String, String>,

    /// Taints of nodes the server may run on all the same: dedicated game
    /// nodes are often tainted so that nothing else lands on them. At most 16.
    /// On Kubernetes they are the pod's `tolerations`. Docker Swarm has no
    /// taints: a GameServer with tolerations is refused there (choose its
    /// nodes with `nodeSelector` instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tolerations: Vec<Toleration>,
}

/// The template a GameServer is made from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// The template's name.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// `GameTemplate` (the default: in the server's namespace) or
    /// `ClusterGameTemplate`.
    #[serde(default)]
    pub kind: TemplateKind,
    /// Which of the template's images (`spec.images[].name`) to run; the
    /// first when absent. `spec.image` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub image: Option<String>,
    /// Which of the template's start commands (`spec.startup[].name`) to
    /// run; the first when absent. `spec.command` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub startup: Option<String>,
}

/// The kinds of game templates.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TemplateKind {
    #[default]
    GameTemplate,
    ClusterGameTemplate,
}

/// A taint the server tolerates (Kubernetes only; refused on Docker Swarm).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.key) && size(self.key) > 0 || has(self.operator) && self.operator == 'Exists'").message("tolerations[].operator must be Exists when tolerations[].key is empty: such a toleration matches every taint").field_path(".operator"))]
#[x_kube(validation = Rule::new("!has(self.operator) || self.operator != 'Exists' || !has(self.value) || size(self.value) == 0").message("tolerations[].value must be empty when tolerations[].operator is Exists").field_path(".value"))]
#[x_kube(validation = Rule::new("!has(self.tolerationSeconds) || has(self.effect) && self.effect == 'NoExecute'").message("tolerations[].tolerationSeconds needs tolerations[].effect NoExecute").field_path(".tolerationSeconds"))]
pub struct Toleration {
    /// The key of the taint tolerated. Empty or absent, with operator Exists,
    /// it tolerates every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 317))]
    #[x_kube(validation = Rule::new(QUALIFIED_KEY_RULE).message("tolerations[].key must be a label key: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))]
    pub key: Option<String>,
    /// Equal (the default): the taint's value must be `value`. Exists: any
    /// value of the taint, and `value` stays empty.
    #[serde(default)]
    pub operator: TolerationOperator,
    /// The taint's value, with operator Equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new(LABEL_VALUE_RULE).message("tolerations[].value must be a label value: empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))]
    pub value: Option<String>,
    /// The taint effect tolerated: NoSchedule (no new server is placed on the
    /// node), PreferNoSchedule (the node is avoided when another fits) or
    /// NoExecute (servers running there are evicted too); every effect when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// With effect NoExecute: how many seconds the server stays on a node
    /// after such a taint appears on it, before it is evicted. Forever when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// How a toleration matches a taint's value.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TolerationOperator {
    /// Any value.
    Exists,
    /// The value given.
    #[default]
    Equal,
}

impl TolerationOperator {
    pub fn as_str(self) -> &'static str {
        match self {
            TolerationOperator::Exists => "Exists",
            TolerationOperator::Equal => "Equal",
        }
    }
}

/// What a taint does to servers that do not tolerate it: NoSchedule (no new
/// one is placed on the node), PreferNoSchedule (the node is avoided when
/// another fits), NoExecute (those running there are evicted too).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// When the image is pulled.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// The state the user wants the server in.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DesiredState {
    #[default]
    Running,
    Stopped,
}

/// Transport protocol of a port.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum Protocol {
    #[default]
    TCP,
    UDP,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::TCP => "TCP",
            Protocol::UDP => "UDP",
        }
    }
}

/// A port the game listens on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GamePort {
    /// Name of the port, unique in the list: lowercase letters, digits and
    /// single dashes, at least one letter, at most 15 characters (it names the
    /// container port too, an IANA service name).
    #[schemars(length(min = 1, max = 15), pattern(r"^[a-z0-9]+(-[a-z0-9]+)*$"))]
    #[x_kube(validation = Rule::new("self.matches('[a-z]')").message("a port name needs at least one letter"))]
    pub name: String,
    /// Port the game listens on inside its container.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
    /// TCP (the default) or UDP.
    #[serde(default)]
    pub protocol: Protocol,
    /// The port players connect to, when it must be fixed. With a NodePort
    /// service it is the node port (inside the cluster's node-port range,
    /// 30000-32767 by default); with a LoadBalancer, the load balancer's port;
    /// on Docker Swarm, the published port. Chosen automatically when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub external_port: Option<i32>,
}

/// The game's data volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("isQuantity(string(self.size)) && quantity(string(self.size)).isGreaterThan(quantity('0'))").message("storage.size must be a positive quantity, such as 10Gi").field_path(".size"))]
#[x_kube(validation = Rule::new("!isQuantity(string(self.size)) || !isQuantity(string(oldSelf.size)) || quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) >= 0").message("storage.size may grow but never shrink").field_path(".size"))]
#[x_kube(validation = Rule::new("(has(self.storageClassName) ? self.storageClassName : '') == (has(oldSelf.storageClassName) ? oldSelf.storageClassName : '')").message("storage.storageClassName cannot change once the volume exists").field_path(".storageClassName"))]
pub struct Storage {
    /// Size of the volume, as a quantity (for example `10Gi`). It may grow
    /// later (where the storage class allows expansion), never shrink.
    pub size: Quantity,
    /// Storage class of the volume; the cluster's default class when absent.
    /// Fixed once the volume exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub storage_class_name: Option<String>,
    /// Where the volume is mounted in the container: by default `/data`, or
    /// with `spec.template` the template's `filesPath` (where an egg's server
    /// files are, `/home/container`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), pattern(r"^/"))]
    pub mount_path: Option<String>,
    /// What happens to the volume when the GameServer is deleted: Retain (the
    /// default) keeps it, so a GameServer of the same name picks the world up
    /// again; Delete erases it.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
}

/// Where a volume is mounted when neither the GameServer nor its template
/// says.
pub const DEFAULT_MOUNT_PATH: &str = "/data";

impl Storage {
    /// Where the volume is mounted: `mountPath`, or [`DEFAULT_MOUNT_PATH`].
    pub fn mount_path(&self) -> &str {
        self.mount_path.as_deref().unwrap_or(DEFAULT_MOUNT_PATH)
    }
}

/// What happens to a GameServer's volume when the GameServer is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReclaimPolicy {
    /// Keep the volume (and the world in it).
    #[default]
    Retain,
    /// Delete the volume with the GameServer.
    Delete,
}

/// A file mounted into the game server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.content) != has(self.configMapKeyRef)").message("a config file needs exactly one of content or configMapKeyRef"))]
pub struct ConfigFile {
    /// Absolute path of the file in the container, for example
    /// `/data/server.properties`. Unique in the list.
    #[schemars(length(min = 2, max = 1024), pattern(r"^/[^\x00]*[^/]$"))]
    #[x_kube(validation = Rule::new("!self.split('/').exists(s, s == '..')").message("config path must not contain '..'"))]
    pub path: String,
    /// The file's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub content: Option<String>,
    /// A key of a ConfigMap in the GameServer's namespace holding the content,
    /// as it is when the server starts: later edits of the ConfigMap reach the
    /// server at its next start, and do not restart it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKey>,
}

/// A key of a ConfigMap in the GameServer's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigMapKey {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// How players reach the server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSettings {
    /// NodePort (the default: players connect to a node's address), LoadBalancer
    /// (a cloud load balancer's address) or ClusterIP (reachable only inside the
    /// cluster, for proxies).
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations for the Service, for example a cloud load balancer's settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new(QUALIFIED_KEYS_RULE).message("service.annotations keys must be annotation keys: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))]
    pub annotations: BTreeMap<String, String>,
}

/// Kind of Service in front of the server.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    #[default]
    NodePort,
    LoadBalancer,
    ClusterIP,
}

/// How mettaton decides that the server is up.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Seconds the server may take from start until ready. Past that it is
    /// Failed. Large worlds take minutes to load: the default is 600.
    #[serde(default = "default_startup_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub startup_timeout_seconds: i32,
    /// How readiness is checked. When absent, a TCP connection to the first TCP
    /// port; a server with only UDP ports is ready once its container runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<HealthProbe>,
    /// Seconds between checks (default 10).
    #[serde(default = "default_period")]
    #[schemars(range(min = 1, max = 3600))]
    pub period_seconds: i32,
    /// Failed checks in a row before a running server counts as not ready
    /// (default 3).
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: i32,
    /// Lines of the game's output that make it ready, as Pterodactyl/Pelican
    /// eggs' "done" lines: each a substring, or after `regex:` a regular
    /// expression; the first line matching any of them makes the server
    /// Ready (combined with `probe` when that is set too: both must pass).
    /// Read by mettaton's supervisor, which then starts the game: needs
    /// `spec.command` (or `spec.template`, whose ready lines these replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 1024)))]
    pub ready_log_line: Option<Vec<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            startup_timeout_seconds: default_startup_timeout(),
            probe: None,
            period_seconds: default_period(),
            failure_threshold: default_failure_threshold(),
            ready_log_line: None,
        }
    }
}

fn default_startup_timeout() -> i32 {
    600
}
fn default_period() -> i32 {
    10
}
fn default_failure_threshold() -> i32 {
    3
}

/// A readiness check: a TCP connection to a named port, or a command run in the
/// container (for UDP games, a query tool the image ships).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.tcpPort) != has(self.exec)").message("a health probe needs exactly one of tcpPort or exec"))]
pub struct HealthProbe {
    /// Name of a TCP port in `spec.ports` to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15))]
    pub tcp_port: Option<String>,
    /// A command run in the container; exit code 0 means ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub exec: Option<Vec<String>>,
}

/// How the server is shut down.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Shutdown {
    /// Seconds the server gets to save and exit after it is asked to stop,
    /// before it is killed (default 60).
    #[serde(default = "default_grace_period")]
    #[schemars(range(min = 0, max = 3600))]
    pub grace_period_seconds: i64,
    /// A command run in the container before it is sent SIGTERM, for games
    /// that save on a console command (for example `rcon-cli stop`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub stop_command: Vec<String>,
    /// How the game is asked to stop, as eggs' `stop`: a line typed into its
    /// console (`stop`, `quit`, `exit`), or a signal (`^C` or `SIGINT`,
    /// `SIGTERM`, `SIGQUIT`, `SIGHUP`, `SIGUSR1`, `SIGUSR2`, `SIGKILL`).
    /// mettaton's supervisor, which starts the game (needs `spec.command`),
    /// sends it whenever the container is stopped: `state: Stopped`, deletion,
    /// a restart, and also an eviction, a node drain or a rollout; after
    /// `gracePeriodSeconds` the game is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("!self.contains('\\n')").message("shutdown.stop must be one console line or a signal"))]
    pub stop: Option<String>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { grace_period_seconds: default_grace_period(), stop_command: Vec::new(), stop: None }
    }
}

fn default_grace_period() -> i64 {
    60
}

/// The lines a game prints when players join and leave.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlayerLines {
    /// Lines that say a player joined, 1 to 16: each `regex:` and a regular
    /// expression that captures the player's name, in a group named
    /// `player` or else in the first group, for example
    /// `regex:^(?P<player>\S+) joined the game$`. A player who joins again
    /// while online counts once.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 1024)))]
    #[x_kube(validation = Rule::new("self.all(p, p.startsWith('regex:'))").message("players.joinLine: each pattern must be `regex:` and a regular expression with a group capturing the player's name"))]
    pub join_line: Vec<String>,
    /// Lines that say a player left, 1 to 16, written as `joinLine`. The
    /// leave of a name that is not online changes nothing, except beyond 100
    /// players, whose names are not kept: then it counts one less.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 1024)))]
    #[x_kube(validation = Rule::new("self.all(p, p.startsWith('regex:'))").message("players.leaveLine: each pattern must be `regex:` and a regular expression with a group capturing the player's name"))]
    pub leave_line: Vec<String>,
}

/// A line of the game's output to publish as a Kubernetes Event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputEvent {
    /// The line to look for, as `health.readyLogLine`: a substring, or after
    /// `regex:` a regular expression.
    #[schemars(length(min = 1, max = 1024))]
    pub line: String,
    /// The Event's reason, as Kubernetes reasons are written: a capital
    /// letter, then up to 63 letters and digits (`PlayerChat`, `WorldSaved`).
    #[schemars(pattern(r"^[A-Z][A-Za-z0-9]{0,63}$"))]
    pub reason: String,
    /// The Event's type: Normal (the default) or Warning.
    #[serde(default, rename = "type")]
    pub type_: OutputEventType,
}

/// The type of an Event published for a line of the game's output.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OutputEventType {
    #[default]
    Normal,
    Warning,
}

/// What mettaton observed of the server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GameServerStatus {
    /// Where the server is in its lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The host name or IP address players connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The ports players connect to at `address`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PublishedPort>,
    /// Ready, Progressing, Degraded and ShutdownFailed, with the usual
    /// Kubernetes condition semantics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How often the server's container restarted.
    #[serde(default)]
    pub restarts: i32,
    /// When the current start began; the startup timeout counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_since: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The runtime object that runs the server, as `kind/name` (Kubernetes) or
    /// the swarm service id (Docker Swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<String>,
    /// Who is playing, from the game's join and leave lines
    /// (`spec.players`); absent without them (and, for a server whose game
    /// already runs, until the controller's first read of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub players: Option<PlayersStatus>,
}

/// The players online, as the game's join and leave lines tell.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlayersStatus {
    /// How many players are online: joined and not left since the game's
    /// container started (a restart starts from 0); 0 while no container
    /// runs the game. Read from the game's container every 30 seconds, and
    /// written only when it changes: up to 30 s behind the game.
    pub count: i32,
    /// Their names, sorted; at most 100. When more play, `count` goes on and
    /// the names of those who joined beyond the first 100 are not listed.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub names: Vec<String>,
    /// When the controller found the players as they are now (the read that
    /// saw them change). Reads that find them unchanged do not move it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// Where a server is in its lifecycle.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted; the runtime objects are being created.
    Pending,
    /// Starting, not yet ready.
    Starting,
    /// Up and ready for players.
    Running,
    /// Shutting down after `state: Stopped`.
    Stopping,
    /// Shut down; data kept.
    Stopped,
    /// Not ready within the startup timeout, or crashing.
    Failed,
    /// Being deleted.
    Terminating,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Starting => "Starting",
            Phase::Running => "Running",
            Phase::Stopping => "Stopping",
            Phase::Stopped => "Stopped",
            Phase::Failed => "Failed",
            Phase::Terminating => "Terminating",
        }
    }
}

/// A port as players reach it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedPort {
    /// Name of the port in `spec.ports`.
    pub name: String,
    /// Port number at `status.address`.
    pub port: i32,
    /// TCP or UDP.
    pub protocol: Protocol,
}

/// Condition types and reasons, as constants so that code and tests agree.
pub mod conditions {
    pub const READY: &str = "Ready";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const SHUTDOWN_FAILED: &str = "ShutdownFailed";
}

/// A qualified name, as label and annotation keys are: an optional DNS
/// subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.',
/// starting and ending with a letter or digit. (The prefix's own limit, 253
/// characters, is checked beside it.)
macro_rules! qualified_name_pattern {
    () => {
        "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
    };
}

/// A label value: empty, or at most 63 letters, digits, '-', '_' or '.',
/// starting and ending with a letter or digit.
macro_rules! label_value_pattern {
    () => {
        "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
    };
}

/// Every key of the map is a valid qualified name, as the API server checks
/// annotation keys on the Service and label keys in a pod's nodeSelector.
const QUALIFIED_KEYS_RULE: &str = concat!(
    "self.all(k, size(k) <= 317 && k.matches('",
    qualified_name_pattern!(),
    "') && (!k.contains('/') || size(k.split('/')[0]) <= 253))"
);

/// Every value of the map is a valid label value (the schema bounds their
/// length), as the API server checks a pod's nodeSelector.
const LABEL_VALUES_RULE: &str = concat!("self.all(k, self[k].matches('", label_value_pattern!(), "'))");

/// The string is empty or a qualified name (a toleration's key).
const QUALIFIED_KEY_RULE: &str = concat!(
    "size(self) == 0 || self.matches('",
    qualified_name_pattern!(),
    "') && (!self.contains('/') || size(self.split('/')[0]) <= 253)"
);

/// The string is a label value (a toleration's value).
const LABEL_VALUE_RULE: &str = concat!("self.matches('", label_value_pattern!(), "')");

/// The schema of `spec.variables`: a map of strings, keys as variable names
/// (`spec.variables[].env` of a template), values as long as a template's
/// default may be.
fn variables_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<BTreeMap<String, String>>();
    let s = schema.as_object_mut().expect("a map schema is an object");
    s.insert("maxProperties".into(), 128.into());
    let values = s.get_mut("additionalProperties").and_then(|v| v.as_object_mut()).expect("a map of strings");
    values.insert("maxLength".into(), 32768.into());
    s.insert(
        "x-kubernetes-validations".into(),
        serde_json::json!([{
            "rule": "self.all(k, size(k) <= 256 && k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",
            "message": "variables keys must be variable names: letters, digits and _, not starting with a digit, at most 256 characters"
        }]),
    );
    schema
}

/// The schema of `spec.nodeSelector`: a map of strings, with a bounded number
/// of entries and values no longer than a label value, which keeps its rules'
/// cost within the CRD's budget.
fn node_selector_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<BTreeMap<String, String>>();
    let s = schema.as_object_mut().expect("a map schema is an object");
    s.insert("maxProperties".into(), 32.into());
    let values = s.get_mut("additionalProperties").and_then(|v| v.as_object_mut()).expect("a map of strings");
    values.insert("maxLength".into(), 63.into());
    schema
}

/// The schema of `spec.env`: Kubernetes' EnvVar list, with the rules the API
/// server applies to a container's environment (so that a GameServer it
/// accepts never gets its Deployment refused), and lengths that keep the
/// rules' cost within the CRD's budget.
fn env_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<EnvVar>>();
    let s = schema.as_object_mut().expect("an array schema is an object");
    s.insert("maxItems".into(), 256.into());
    let item = s.get_mut("items").and_then(|i| i.as_object_mut()).expect("EnvVar's schema is inlined");
    let props = item.get_mut("properties").and_then(|p| p.as_object_mut()).expect("EnvVar has properties");
    props["name"]["maxLength"] = 256.into();
    props["value"]["maxLength"] = 262_144.into();
    let from = props["valueFrom"]["properties"].as_object_mut().expect("EnvVarSource has properties");
    for source in ["secretKeyRef", "configMapKeyRef"] {
        from[source]["properties"]["name"]["maxLength"] = 253.into();
        from[source]["properties"]["key"]["maxLength"] = 253.into();
    }
    from["fieldRef"]["properties"]["fieldPath"]["maxLength"] = 256.into();
    let rule = |rule: &str, message: &str, path: &str| serde_json::json!({ "rule": rule, "message": message, "fieldPath": path });
    let subdomain = "'^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'";
    let key = "'^[-._a-zA-Z0-9]+$'";
    let mut rules = vec![
        rule(
            "self.name.matches('^[ -<>-~]+$')",
            "env[].name must be printable ASCII characters other than '='",
            ".name",
        ),
        rule(
            "!has(self.valueFrom) || !has(self.value) || size(self.value) == 0",
            "env[] takes a value or a valueFrom, not both",
            ".valueFrom",
        ),
        rule(
            "!has(self.valueFrom) || (has(self.valueFrom.secretKeyRef) ? 1 : 0) + (has(self.valueFrom.configMapKeyRef) ? 1 : 0) + (has(self.valueFrom.fieldRef) ? 1 : 0) == 1 && !has(self.valueFrom.resourceFieldRef) && !has(self.valueFrom.fileKeyRef)",
            "env[].valueFrom takes exactly one of secretKeyRef, configMapKeyRef or fieldRef",
            ".valueFrom",
        ),
        rule(
            "!has(self.valueFrom) || !has(self.valueFrom.fieldRef) || self.valueFrom.fieldRef.fieldPath in ['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName', 'status.hostIP', 'status.hostIPs', 'status.podIP', 'status.podIPs'] || (self.valueFrom.fieldRef.fieldPath.startsWith('metadata.labels[') || self.valueFrom.fieldRef.fieldPath.startsWith('metadata.annotations[')) && self.valueFrom.fieldRef.fieldPath.endsWith(']')",
            "env[].valueFrom.fieldRef.fieldPath must be a field of the pod Kubernetes offers, such as status.podIP or metadata.name",
            ".valueFrom.fieldRef.fieldPath",
        ),
    ];
    for source in ["secretKeyRef", "configMapKeyRef"] {
        rules.push(rule(
            &format!("!has(self.valueFrom) || !has(self.valueFrom.{source}) || self.valueFrom.{source}.name.matches({subdomain})"),
            &format!("env[].valueFrom.{source}.name must be a DNS subdomain (lowercase letters, digits, '-' and '.')"),
            &format!(".valueFrom.{source}.name"),
        ));
        rules.push(rule(
            &format!("!has(self.valueFrom) || !has(self.valueFrom.{source}) || self.valueFrom.{source}.key.matches({key}) && !(self.valueFrom.{source}.key in ['.', '..']) && !self.valueFrom.{source}.key.startsWith('..')"),
            &format!("env[].valueFrom.{source}.key must be letters, digits, '-', '_' and '.' (not '.' or '..')"),
            &format!(".valueFrom.{source}.key"),
        ));
    }
    item.insert("x-kubernetes-validations".into(), rules.into());
    schema
}

/// The schema of `spec.resources`: Kubernetes' ResourceRequirements, limited
/// to what a game server's container may ask for (cpu, memory,
/// ephemeral-storage; no dynamic resource claims), with quantities checked
/// and requests not above limits, as the API server checks the Deployment.
fn resources_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Option<ResourceRequirements>>();
    let s = schema.as_object_mut().expect("an object schema");
    let props = s.get_mut("properties").and_then(|p| p.as_object_mut()).expect("ResourceRequirements is inlined");
    for amounts in ["requests", "limits"] {
        props[amounts]["maxProperties"] = 3.into();
    }
    let rule = |rule: String, message: &str, path: &str| serde_json::json!({ "rule": rule, "message": message, "fieldPath": path });
    let mut rules = vec![rule(
        "!has(self.claims) || size(self.claims) == 0".into(),
        "resources.claims is not supported",
        ".claims",
    )];
    for amounts in ["requests", "limits"] {
        rules.push(rule(
            format!("!has(self.{amounts}) || self.{amounts}.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])"),
            &format!("resources.{amounts} may name cpu, memory and ephemeral-storage"),
            &format!(".{amounts}"),
        ));
        rules.push(rule(
            format!("!has(self.{amounts}) || self.{amounts}.all(k, isQuantity(string(self.{amounts}[k])) && !quantity(string(self.{amounts}[k])).isLessThan(quantity('0')))"),
            &format!("resources.{amounts} must be quantities of at least 0, such as 500m or 2Gi"),
            &format!(".{amounts}"),
        ));
    }
    rules.push(rule(
        "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || !isQuantity(string(self.requests[k])) || !isQuantity(string(self.limits[k])) || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)".into(),
        "resources.requests must not be above resources.limits",
        ".requests",
    ));
    s.insert("x-kubernetes-validations".into(), rules.into());
    schema
}

/// The CRD as YAML, as `mettaton crd` prints it and `crds/gameserver.yaml` holds it.
pub fn crd_yaml() -> String {
    let crd = GameServer::crd();
    let yaml = serde_yaml::to_string(&crd).expect("a CRD serializes to YAML");
    format!("# Generated by `mettaton crd` from src/api.rs; do not edit.\n---\n{yaml}")
}

/// Every CRD mettaton defines, as (the `mettaton crd KIND` argument, its
/// YAML), as `crds/KIND.yaml` and the chart's `crds/` hold them.
pub fn crds() -> [(&'static str, String); 3] {
    [
        ("gameserver", crd_yaml()),
        ("gametemplate", template::crd_yaml::<GameTemplate>()),
        ("clustergametemplate", template::crd_yaml::<ClusterGameTemplate>()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// crds/gameserver.yaml is what users and the chart install: it must be what
    /// the types generate.
    #[test]
    fn committed_crd_matches_the_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/gameserver.yaml");
        let committed = std::fs::read_to_string(path).expect("crds/gameserver.yaml exists");
        assert!(
            committed == crd_yaml(),
            "crds/gameserver.yaml drifted from src/api.rs: regenerate it with `cargo run -- crd gameserver > crds/gameserver.yaml`"
        );
    }

    #[test]
    fn short_names_do_not_collide_with_agones() {
        let crd = GameServer::crd();
        let names = crd.spec.names;
        assert!(!names.short_names.unwrap_or_default().iter().any(|s| s == "gs"));
        assert_eq!(names.categories, Some(vec!["mettaton".to_string()]));
    }

    /// What the API server would refuse in a child (a Deployment, Service or
    /// claim) is refused in the GameServer already: the rules are in the
    /// schema, where they apply. (tests/integration/bad_input.rs sends such
    /// manifests to a real API server.)
    #[test]
    fn the_schema_carries_the_rules_the_children_need() {
        let crd = serde_json::to_value(GameServer::crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let rules = |v: &serde_json::Value| -> Vec<String> {
            v["x-kubernetes-validations"]
                .as_array()
                .map(|a| a.iter().map(|r| r["rule"].as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        assert!(rules(schema).iter().any(|r| r.contains("self.metadata.name")), "the name is a DNS label");
        let spec = &schema["properties"]["spec"];
        assert!(rules(spec).iter().any(|r| r.contains("'LoadBalancer'")), "Service ports unique");
        assert!(rules(spec).iter().any(|r| r.contains("mountPath")), "no config file on the volume");
        let env = &spec["properties"]["env"];
        assert_eq!(env["x-kubernetes-list-type"], "map", "still a list-map by name");
        assert_eq!(rules(&env["items"]).len(), 8, "{:#?}", rules(&env["items"]));
        let resources = &spec["properties"]["resources"];
        assert_eq!(resources["properties"]["requests"]["maxProperties"], 3);
        assert_eq!(rules(resources).len(), 6, "{:#?}", rules(resources));
        let port_name = &spec["properties"]["ports"]["items"]["properties"]["name"];
        assert_eq!(port_name["pattern"], "^[a-z0-9]+(-[a-z0-9]+)*$");
        assert_eq!(rules(port_name), vec!["self.matches('[a-z]')".to_string()]);
        let storage = &spec["properties"]["storage"]["properties"];
        assert!(storage["storageClassName"]["pattern"].as_str().unwrap().starts_with("^[a-z0-9]"));
        let annotations = &spec["properties"]["service"]["properties"]["annotations"];
        assert_eq!(annotations["maxProperties"], 64);
        assert_eq!(rules(annotations), vec![QUALIFIED_KEYS_RULE.to_string()]);
        let node_selector = &spec["properties"]["nodeSelector"];
        assert_eq!(
            (&node_selector["maxProperties"], &node_selector["additionalProperties"]["maxLength"]),
            (&32.into(), &63.into())
        );
        assert_eq!(rules(node_selector), vec![QUALIFIED_KEYS_RULE.to_string(), LABEL_VALUES_RULE.to_string()]);
        let tolerations = &spec["properties"]["tolerations"];
        assert_eq!(tolerations["maxItems"], 16);
        assert_eq!(rules(&tolerations["items"]).len(), 3, "{:#?}", rules(&tolerations["items"]));
        let toleration = &tolerations["items"]["properties"];
        assert_eq!(rules(&toleration["key"]), vec![QUALIFIED_KEY_RULE.to_string()]);
        assert_eq!(rules(&toleration["value"]), vec![LABEL_VALUE_RULE.to_string()]);
        assert_eq!((&toleration["key"]["maxLength"], &toleration["value"]["maxLength"]), (&317.into(), &63.into()));
        assert_eq!(toleration["operator"]["default"], "Equal");
    }

    /// The patterns of the CEL rules (RE2, as the regex crate) accept exactly
    /// the label keys and values the API server does, and so does the facade's
    /// validation, which checks them without an API server.
    #[test]
    fn label_keys_and_values_are_checked_as_the_api_server_does() {
        let key_pattern = regex::Regex::new(qualified_name_pattern!()).unwrap();
        let value_pattern = regex::Regex::new(label_value_pattern!()).unwrap();
        // The rest of QUALIFIED_KEYS_RULE, beside the pattern.
        let key_rule = |k: &str| {
            k.len() <= 317 && key_pattern.is_match(k) && (!k.contains('/') || k.split('/').next().unwrap().len() <= 253)
        };
        let long_prefix = format!("{}.com/a", "a".repeat(250));
        let name63 = "a".repeat(63);
        let name64 = "a".repeat(64);
        let keys = [
            ("pool", true),
            ("Pool_1.x-y", true),
            ("mettaton.dev/real-node", true),
            ("kubernetes.io/hostname", true),
            (name63.as_str(), true),
            (name64.as_str(), false),
            ("", false),
            ("-pool", false),
            ("pool.", false),
            ("a b", false),
            ("/pool", false),
            ("Example.com/pool", false),
            ("a/b/c", false),
            ("example..com/pool", false),
            ("example.com/", false),
            (long_prefix.as_str(), false),
        ];
        for (key, valid) in keys {
            assert_eq!(key_rule(key), valid, "CEL rule on key {key:?}");
            assert_eq!(crate::facade::validate::valid_qualified_name(key), valid, "facade on key {key:?}");
        }
        let values =
            [("", true), ("games", true), ("A.b_c-1", true), (name63.as_str(), true), (name64.as_str(), false)];
        let bad_values = [("-x", false), ("x-", false), ("a b", false), ("a/b", false), ("a==b", false)];
        for (value, valid) in values.into_iter().chain(bad_values) {
            assert_eq!(value_pattern.is_match(value), valid, "CEL rule on value {value:?}");
            assert_eq!(crate::facade::validate::valid_label_value(value), valid, "facade on value {value:?}");
        }
    }

    #[test]
    fn a_minimal_manifest_gets_the_documented_defaults() {
        let gs: GameServerSpec = serde_yaml::from_str(
            "image: itzg/minecraft-server\nports:\n- name: game\n  containerPort: 25565\nstorage:\n  size: 10Gi\n",
        )
        .unwrap();
        assert_eq!(gs.state, DesiredState::Running);
        assert_eq!(gs.ports[0].protocol, Protocol::TCP);
        let storage = gs.storage.unwrap();
        assert_eq!((storage.mount_path(), storage.reclaim_policy), ("/data", ReclaimPolicy::Retain));
    }
}
