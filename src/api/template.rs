//! The `GameTemplate` (namespaced) and `ClusterGameTemplate` (cluster-wide)
//! resources (`mettaton.dev/v1alpha1`, issue 16): what a Pterodactyl/Pelican
//! egg holds that mettaton uses, one spec type for both kinds (as
//! cert-manager's Issuer and ClusterIssuer). `mettaton template import`
//! makes one from an egg (`template::import`).
//!
//! What the API server cannot check is checked by mettaton when it reads a
//! template ([`crate::template::check`]): the variables' rules (Laravel's,
//! which CEL cannot run), the ready lines' patterns and the stop.
//!
//! Sizes are bounded (lengths, item counts) so that the API server's cost
//! estimate of the CEL rules stays within its budget, and so that a template
//! stays far below etcd's object size limit.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a game template holds: the images a game runs in, its start
/// commands with `{{VAR}}` placeholders, its variables and their rules, the
/// config-file edits, the ready lines, the stop, and the install script.
/// Imported from Pterodactyl/Pelican eggs by `mettaton template import`, or
/// written by hand. A GameServer names one in `spec.template` and sets its
/// variables in `spec.variables` (`template::resolve`).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mettaton.dev",
    version = "v1alpha1",
    kind = "GameTemplate",
    plural = "gametemplates",
    singular = "gametemplate",
    shortname = "mgt",
    category = "mettaton",
    namespaced,
    derive = "PartialEq",
    doc = "A game template in one namespace: images, start commands with {{VAR}} placeholders, variables with their rules, config-file edits, ready lines, stop and install script, as a Pterodactyl/Pelican egg holds them (`mettaton template import`). A GameServer names it in spec.template.",
    printcolumn(name = "Game", type_ = "string", json_path = ".spec.game", description = "The game"),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.images[0].image",
        description = "The default image (the first of spec.images)"
    ),
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".spec.source.format",
        priority = 1,
        description = "The egg format it was imported from"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && !self.metadata.name.contains('.')").message("metadata.name must be a DNS label, at most 63 characters and no dots: GameServers name the template by it")
)]
#[serde(rename_all = "camelCase")]
pub struct GameTemplateSpec {
    /// The game, as people name it (an egg's `name`), for example `Paper`.
    #[schemars(length(min = 1, max = 256))]
    pub game: String,

    /// Free text for people: what the game and this template are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub description: Option<String>,

    /// The images the game can run in, 1 to 32, names unique; the first is
    /// the default (an egg's `docker_images`, in the egg's order).
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub images: Vec<TemplateImage>,

    /// The start commands, 1 to 16, names unique; the first is the default
    /// (an egg's `startup`, named `Default`, or Pelican's
    /// `startup_commands`, in the egg's order). A command is one shell
    /// command line: `{{VAR}}` stands for the value of the variable `VAR`
    /// (`spec.variables[].env`), and shell syntax such as `${VAR}` is left to
    /// the shell, which has the variables in its environment.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub startup: Vec<StartupCommand>,

    /// The variables the start command, the config files and the install
    /// script are filled in with, at most 128, keyed by `env`, in the order
    /// users see them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["env".into()]))]
    pub variables: Vec<TemplateVariable>,

    /// Files of the server edited before the game starts, at most 32, keyed
    /// by `path` (an egg's `config.files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["path".into()]))]
    pub config_files: Vec<TemplateConfigFile>,

    /// Lines of the game's output that say it is up (an egg's
    /// `config.startup.done`), at most 16: each a substring, or after
    /// `regex:` a regular expression, as a GameServer's
    /// `health.readyLogLine`. mettaton checks the patterns when it reads
    /// the template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 1024)))]
    pub ready_log_line: Vec<String>,

    /// How the game is asked to stop (an egg's `config.stop`), as a
    /// GameServer's `shutdown.stop`: a line typed into its console (`stop`,
    /// `saveandexit 0`), or a signal (`^C` or `SIGINT`, `SIGTERM`, `SIGQUIT`,
    /// `SIGHUP`, `SIGUSR1`, `SIGUSR2`, `SIGKILL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("!self.contains('\\n')").message("stop must be one console line or a signal"))]
    pub stop: Option<String>,

    /// The ports the game listens on, as a GameServer's `spec.ports`, at most
    /// 32; a GameServer that sets its own replaces them. Eggs have none (the
    /// panel allocates them): a server made from an imported template sets
    /// `spec.ports`, and the first is the egg's default port
    /// (`SERVER_PORT`, `{{server.build.default.port}}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub ports: Vec<crate::api::GamePort>,

    /// Where the server's files are in the game's container, as an egg
    /// expects them (default `/home/container`, Pterodactyl's): the data
    /// volume is mounted there, the game starts there, and config-file paths
    /// are relative to it.
    #[serde(default = "default_files_path")]
    #[schemars(length(min = 2, max = 1024), pattern(r"^/[^\x00]*[^/]$"))]
    pub files_path: String,

    /// The script that installs the server's files (an egg's
    /// `scripts.installation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallScript>,

    /// Where the template came from, when it was imported from an egg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TemplateSource>,
}

/// An image the game can run in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TemplateImage {
    /// What users choose it by (an egg's label, such as `Java 21`, or the
    /// image itself when the egg gives none).
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// The container image, for example `ghcr.io/pelican-eggs/yolks:java_21`.
    #[schemars(length(min = 1, max = 512), pattern(r"^\S+$"))]
    pub image: String,
}

/// A start command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct StartupCommand {
    /// What users choose it by (`Default` for an egg's one `startup`).
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// The command line, `{{VAR}}` placeholders and all.
    #[schemars(length(min = 1, max = 16384))]
    pub command: String,
}

/// A variable of the template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateVariable {
    /// The environment variable holding the value, and the name `{{VAR}}`
    /// placeholders use: letters, digits and `_`, not starting with a digit.
    #[schemars(length(min = 1, max = 256), pattern(r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env: String,
    /// What users read as its name (an egg's variable `name`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 256))]
    pub title: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 16384))]
    pub description: String,
    /// The value when a GameServer sets none (may be empty).
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub default: String,
    /// Whether users may set it (an egg's `user_editable`); default false.
    #[serde(default)]
    pub user_editable: bool,
    /// Whether users may see it (an egg's `user_viewable`); default false.
    #[serde(default)]
    pub user_viewable: bool,
    /// The rules a value must keep, as eggs write them: Laravel validation
    /// rules joined by `|`, for example `required|string|max:20`. The rules
    /// mettaton knows: required, present, nullable, string, numeric,
    /// integer (and `int`), boolean, alpha_dash, alpha_num, url, min, max,
    /// between, size, gt, digits, digits_between, in, not_in, ends_with,
    /// regex. The API server does not check them (CEL cannot run Laravel
    /// rules): mettaton does, when it reads the template, and refuses a
    /// template with a rule it does not know, naming the variable and the
    /// rule.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 4096))]
    pub rules: String,
}

/// A file of the server edited before the game starts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TemplateConfigFile {
    /// The file, relative to the server's files (for example
    /// `server.properties`).
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// How the file is read and written: `file` (lines starting with a key
    /// are replaced), `properties`, `yaml`, `ini`, `json` or `xml`.
    pub parser: ConfigParser,
    /// The edits, at most 128, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub edits: Vec<ConfigEdit>,
}

/// How a config file is read and written (the parsers of Pterodactyl's
/// Wings): `file` is plain text, each line starting with a key replaced by
/// the value; `yaml` is also eggs' `yml`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfigParser {
    File,
    Properties,
    Yaml,
    Ini,
    Json,
    Xml,
}

/// One edit of a config file: a key set to `value`, or its current value
/// replaced as `replace` says.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.value) != has(self.replace)").message("an edit takes exactly one of value or replace"))]
pub struct ConfigEdit {
    /// The key: dotted for nested keys (`ServerConfig.Srv_Port`, an ini
    /// file's `Section.Key`), `*` for every element of a list; with the
    /// `file` parser, the start of the lines to replace.
    #[schemars(length(min = 1, max = 1024))]
    pub key: String,
    /// The value to set. Placeholders are filled in: `{{VAR}}`,
    /// `{{env.VAR}}`, `{{server.environment.VAR}}`,
    /// `{{server.build.env.VAR}}` (a variable's value), and the panel's
    /// `{{server.build.default.port}}`, `{{server.allocations.default.port}}`
    /// and the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub value: Option<String>,
    /// Conditional replacements, at most 32: the first whose `match` is the
    /// key's current value (or, after `regex:`, matches it) gives the new
    /// value; none matching leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub replace: Option<Vec<Replacement>>,
}

/// A conditional replacement of a config file's value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    /// The current value to replace: the value itself, or after `regex:` a
    /// regular expression.
    #[serde(rename = "match")]
    #[schemars(length(max = 4096))]
    pub match_: String,
    /// The value put instead, placeholders filled in as `value`'s.
    #[schemars(length(max = 16384))]
    pub value: String,
}

/// The script that installs the server's files.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct InstallScript {
    /// The image the script runs in (an egg's `scripts.installation.container`).
    #[schemars(length(min = 1, max = 512), pattern(r"^\S+$"))]
    pub image: String,
    /// The program that runs the script, for example `bash` (the default) or
    /// `ash`.
    #[serde(default = "default_entrypoint")]
    #[schemars(length(min = 1, max = 256))]
    pub entrypoint: String,
    /// The script. As eggs expect, it installs into `/mnt/server`, where the
    /// server's files are.
    #[schemars(length(min = 1, max = 262144))]
    pub script: String,
}

/// Where an egg's server files are: Pterodactyl's `/home/container`.
pub const DEFAULT_FILES_PATH: &str = "/home/container";

fn default_files_path() -> String {
    DEFAULT_FILES_PATH.to_string()
}

fn default_entrypoint() -> String {
    "bash".to_string()
}

/// Where a template came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSource {
    /// The egg's format (its `meta.version`).
    pub format: EggFormat,
    /// The egg's `name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 256))]
    pub name: String,
    /// The egg's `author`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 256))]
    pub author: String,
    /// Where the egg is published (its `meta.update_url`), to import it again
    /// from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub update_url: Option<String>,
}

/// The formats of Pterodactyl and Pelican eggs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(non_camel_case_types)]
pub enum EggFormat {
    PTDL_v1,
    PTDL_v2,
    PLCN_v1,
    PLCN_v2,
    PLCN_v3,
}

// The cluster-wide kind: the same spec as `GameTemplate` (transparent, so
// that the schema, descriptions included, is the very same), for every
// namespace.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "mettaton.dev",
    version = "v1alpha1",
    kind = "ClusterGameTemplate",
    plural = "clustergametemplates",
    singular = "clustergametemplate",
    shortname = "mcgt",
    category = "mettaton",
    derive = "PartialEq",
    doc = "A game template for every namespace: images, start commands with {{VAR}} placeholders, variables with their rules, config-file edits, ready lines, stop and install script, as a Pterodactyl/Pelican egg holds them (`mettaton template import --cluster`). A GameServer names it in spec.template.",
    printcolumn(name = "Game", type_ = "string", json_path = ".spec.game", description = "The game"),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.images[0].image",
        description = "The default image (the first of spec.images)"
    ),
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".spec.source.format",
        priority = 1,
        description = "The egg format it was imported from"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && !self.metadata.name.contains('.')").message("metadata.name must be a DNS label, at most 63 characters and no dots: GameServers name the template by it")
)]
#[serde(transparent)]
pub struct ClusterGameTemplateSpec(pub GameTemplateSpec);

impl std::ops::Deref for ClusterGameTemplateSpec {
    type Target = GameTemplateSpec;
    fn deref(&self) -> &GameTemplateSpec {
        &self.0
    }
}

/// A template CRD as YAML, as `mettaton crd KIND` prints it and
/// `crds/KIND.yaml` holds it.
pub(super) fn crd_yaml<K: kube::CustomResourceExt + kube::Resource<DynamicType = ()>>() -> String {
    let yaml = serde_yaml::to_string(&K::crd()).expect("a CRD serializes to YAML");
    let kind = K::kind(&()).to_lowercase();
    format!("# Generated by `mettaton crd {kind}` from src/api/template.rs; do not edit.\n---\n{yaml}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    /// crds/gametemplate.yaml and crds/clustergametemplate.yaml are what
    /// users and the chart install: they must be what the types generate.
    #[test]
    fn committed_crds_match_the_types() {
        for (kind, yaml) in crate::api::crds() {
            let path = format!("{}/crds/{kind}.yaml", env!("CARGO_MANIFEST_DIR"));
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(
                committed == yaml,
                "crds/{kind}.yaml drifted from src/api: regenerate it with `cargo run -- crd {kind} > crds/{kind}.yaml`"
            );
        }
    }

    /// Both kinds have one spec: the same schema, one namespaced, one not.
    #[test]
    fn both_kinds_share_the_spec_and_differ_in_scope() {
        let (ns, cluster) = (GameTemplate::crd(), ClusterGameTemplate::crd());
        assert_eq!((ns.spec.scope.as_str(), cluster.spec.scope.as_str()), ("Namespaced", "Cluster"));
        let spec =
            |crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
                let v = serde_json::to_value(crd).unwrap();
                v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
            };
        assert_eq!(spec(&ns), spec(&cluster));
        let spec = spec(&ns);
        assert_eq!(spec["required"], serde_json::json!(["game", "images", "startup"]));
        for (list, key) in [("images", "name"), ("startup", "name"), ("variables", "env"), ("configFiles", "path")] {
            assert_eq!(spec["properties"][list]["x-kubernetes-list-type"], "map", "{list}");
            assert_eq!(spec["properties"][list]["x-kubernetes-list-map-keys"], serde_json::json!([key]), "{list}");
        }
        let edit = &spec["properties"]["configFiles"]["items"]["properties"]["edits"]["items"];
        assert_eq!(edit["x-kubernetes-validations"][0]["rule"], "has(self.value) != has(self.replace)");
        assert!(!serde_json::to_string(&spec).unwrap().contains("preserve-unknown-fields"));
        let parser = &spec["properties"]["configFiles"]["items"]["properties"]["parser"]["enum"];
        assert_eq!(parser, &serde_json::json!(["file", "properties", "yaml", "ini", "json", "xml"]));
        assert_eq!(
            spec["properties"]["source"]["properties"]["format"]["enum"],
            serde_json::json!(["PTDL_v1", "PTDL_v2", "PLCN_v1", "PLCN_v2", "PLCN_v3"])
        );
    }

    /// Every string and list of the spec is bounded: the API server's CEL
    /// cost estimate needs it, and so does etcd's object size.
    #[test]
    fn every_string_and_list_is_bounded() {
        fn walk(path: &str, node: &serde_json::Value, unbounded: &mut Vec<String>) {
            match node["type"].as_str() {
                Some("string") if node.get("maxLength").is_none() && node.get("enum").is_none() => {
                    unbounded.push(path.to_string())
                }
                Some("array") => {
                    if node.get("maxItems").is_none() {
                        unbounded.push(path.to_string());
                    }
                    walk(&format!("{path}[]"), &node["items"], unbounded);
                }
                _ => {}
            }
            if let Some(props) = node["properties"].as_object() {
                for (k, v) in props {
                    walk(&format!("{path}.{k}"), v, unbounded);
                }
            }
        }
        let v = serde_json::to_value(GameTemplate::crd()).unwrap();
        let mut unbounded = Vec::new();
        walk("spec", &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"], &mut unbounded);
        assert!(unbounded.is_empty(), "{unbounded:?}");
    }
}
