//! GameServer manifests read strictly, for the swarm facade and CLI: a field
//! the `GameServer` type does not have (a misspelt `stroage:`) is refused by
//! its path, as the Kubernetes API server's strict field validation refuses it
//! for `kubectl apply`. The CRD types stay as they are (no
//! `deny_unknown_fields`, which would change the CRD's schema and refuse
//! fields a newer mettaton writes): the fields serde skips are collected while
//! deserializing (`serde_ignored`).

use serde::Deserialize;

use super::Error;
use super::state::Template;
use crate::api::{GameServer, GameTemplateSpec, TemplateKind};

/// The one version of the resource.
const GROUP_VERSION: &str = "mettaton.dev/v1alpha1";

/// One GameServer from a JSON or YAML value, refusing unknown fields by path
/// (`spec.stroage`, `spec.ports[0].nmae`).
pub fn manifest_from_value(mut value: serde_json::Value) -> Result<GameServer, Error> {
    // The type's own deserializer skips apiVersion and kind: checked here.
    if let Some(object) = value.as_object_mut() {
        let api_version = object.remove("apiVersion");
        if api_version.as_ref().is_some_and(|v| v != GROUP_VERSION) {
            return Err(Error::Invalid(vec![format!(
                "apiVersion: Unsupported value {}: supported values: \"{GROUP_VERSION}\"",
                api_version.unwrap_or_default()
            )]));
        }
        let kind = object.remove("kind");
        if kind.as_ref().is_some_and(|k| k != "GameServer") {
            return Err(Error::Invalid(vec![format!("kind: {} is not GameServer", kind.unwrap_or_default())]));
        }
    }
    let mut unknown = Vec::new();
    let parsed: Result<GameServer, _> = serde_ignored::deserialize(value, |path| unknown.push(field_path(&path)));
    let gs = parsed.map_err(|e| Error::Invalid(vec![e.to_string()]))?;
    if !unknown.is_empty() {
        return Err(Error::Invalid(unknown.iter().map(|f| format!("{f}: unknown field {f:?}")).collect()));
    }
    Ok(gs)
}

/// Every GameServer of a YAML (or JSON) text, several documents allowed;
/// `namespace` for those that name none. Each problem names its document
/// when there are several, and its field.
pub fn manifests_from_str(text: &str, namespace: &str) -> Result<Vec<GameServer>, Error> {
    let mut servers = Vec::new();
    let mut problems = Vec::new();
    let documents: Vec<_> = serde_yaml::Deserializer::from_str(text).collect();
    let several = documents.len() > 1;
    for (i, doc) in documents.into_iter().enumerate() {
        let at = |p: String| if several { format!("document {}: {p}", i + 1) } else { p };
        let value = match serde_json::Value::deserialize(doc) {
            Ok(serde_json::Value::Null) => continue,
            Ok(v) => v,
            Err(e) => {
                problems.push(at(e.to_string()));
                continue;
            }
        };
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
        if kind != "GameServer" {
            problems.push(at(format!("kind: {kind:?} is not GameServer")));
            continue;
        }
        match manifest_from_value(value) {
            Ok(mut gs) => {
                gs.metadata.namespace.get_or_insert_with(|| namespace.to_string());
                servers.push(gs);
            }
            Err(Error::Invalid(found)) => problems.extend(found.into_iter().map(at)),
            Err(other) => problems.push(at(other.to_string())),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    if servers.is_empty() {
        return Err(Error::Invalid(vec!["no GameServer in it".to_string()]));
    }
    Ok(servers)
}

/// Every game template of a YAML (or JSON) text, several documents
/// allowed: `GameTemplate`s and `ClusterGameTemplate`s (as `mettaton
/// template import` prints them), named by `metadata.name`, strictly (a
/// field the template has not is refused by its path, as for GameServers).
/// Each problem names its document when there are several.
pub fn templates_from_str(text: &str) -> Result<Vec<Template>, Error> {
    let mut templates = Vec::new();
    let mut problems = Vec::new();
    let documents: Vec<_> = serde_yaml::Deserializer::from_str(text).collect();
    let several = documents.len() > 1;
    for (i, doc) in documents.into_iter().enumerate() {
        let at = |p: String| if several { format!("document {}: {p}", i + 1) } else { p };
        let mut value = match serde_json::Value::deserialize(doc) {
            Ok(serde_json::Value::Null) => continue,
            Ok(v) => v,
            Err(e) => {
                problems.push(at(e.to_string()));
                continue;
            }
        };
        match template_from_value(&mut value) {
            Ok(t) => templates.push(t),
            Err(found) => problems.extend(found.into_iter().map(at)),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    if templates.is_empty() {
        return Err(Error::Invalid(vec!["no GameTemplate or ClusterGameTemplate in it".to_string()]));
    }
    Ok(templates)
}

fn template_from_value(value: &mut serde_json::Value) -> Result<Template, Vec<String>> {
    let Some(object) = value.as_object_mut() else {
        return Err(vec!["a template is an object with kind, metadata and spec".to_string()]);
    };
    let api_version = object.remove("apiVersion");
    if api_version.as_ref().is_some_and(|v| v != GROUP_VERSION) {
        return Err(vec![format!(
            "apiVersion: Unsupported value {}: supported values: \"{GROUP_VERSION}\"",
            api_version.unwrap_or_default()
        )]);
    }
    let kind = match object.remove("kind").as_ref().and_then(|k| k.as_str()) {
        Some("GameTemplate") => TemplateKind::GameTemplate,
        Some("ClusterGameTemplate") => TemplateKind::ClusterGameTemplate,
        other => return Err(vec![format!("kind: {other:?} is not GameTemplate or ClusterGameTemplate")]),
    };
    let name = object.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str()).unwrap_or_default();
    if !super::validate::valid_server_name(name) {
        return Err(vec![format!(
            "metadata.name: Invalid value {name:?}: lowercase letters, digits and dashes, at most 63 characters"
        )]);
    }
    let name = name.to_string();
    let spec = object.remove("spec").unwrap_or_default();
    let mut unknown = Vec::new();
    let parsed: Result<GameTemplateSpec, _> =
        serde_ignored::deserialize(spec, |path| unknown.push(format!("spec.{}", field_path(&path))));
    let spec = parsed.map_err(|e| vec![format!("spec: {e}")])?;
    if !unknown.is_empty() {
        return Err(unknown.iter().map(|f| format!("{f}: unknown field {f:?}")).collect());
    }
    Ok(Template { kind, name, spec })
}

/// `spec.ports[0].nmae`, as Kubernetes writes field paths.
fn field_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match manifests_from_str(text, "default") {
            Err(Error::Invalid(p)) => p,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    const GOOD: &str = "apiVersion: mettaton.dev/v1alpha1\nkind: GameServer\nmetadata: { name: a }\n\
                        spec:\n  image: game:1\n  ports: [{ name: game, containerPort: 7777 }]\n";

    #[test]
    fn a_good_manifest_reads_and_takes_the_default_namespace() {
        let servers = manifests_from_str(GOOD, "games").unwrap();
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].metadata.namespace.as_deref(), Some("games"));
    }

    /// TESTS_1_UNITS (manifests_from_str, manifest_from_value).
    #[test]
    fn unknown_fields_are_refused_by_their_path() {
        let text = format!(
            "{GOOD}  stroage: {{ size: 1Gi }}\n  health: {{ probe: {{ tcpPort: game }}, periodSecond: 3 }}\n  \
             env: [{{ name: A, vaule: b }}]\n"
        );
        let found = problems(&text.replace("containerPort: 7777 }", "containerPort: 7777, nmae: x }"));
        for field in ["spec.stroage", "spec.health.periodSecond", "spec.env[0].vaule", "spec.ports[0].nmae"] {
            assert!(found.iter().any(|p| p.starts_with(&format!("{field}: unknown field"))), "{field}: {found:?}");
        }
        let meta = problems(&GOOD.replace("{ name: a }", "{ name: a, lables: { x: y } }"));
        assert_eq!(meta, vec!["metadata.lables: unknown field \"metadata.lables\""]);
    }

    const TEMPLATE: &str = "apiVersion: mettaton.dev/v1alpha1\nkind: ClusterGameTemplate\nmetadata: { name: arena }\n\
                            spec:\n  game: arena\n  images: [{ name: default, image: game:1 }]\n  \
                            startup: [{ name: default, command: /testgame }]\n";

    #[test]
    fn templates_of_both_kinds_read_and_unknown_fields_are_refused_by_path() {
        let text = format!("{TEMPLATE}---\n{}", TEMPLATE.replace("ClusterGameTemplate", "GameTemplate"));
        let read = templates_from_str(&text).unwrap();
        let kinds: Vec<_> = read.iter().map(|t| (t.kind, t.name.as_str(), t.spec.game.as_str())).collect();
        assert_eq!(
            kinds,
            [(TemplateKind::ClusterGameTemplate, "arena", "arena"), (TemplateKind::GameTemplate, "arena", "arena")]
        );
        let problems = |text: &str| match templates_from_str(text) {
            Err(Error::Invalid(p)) => p,
            other => panic!("expected Invalid, got {other:?}"),
        };
        let found = problems(&format!("{TEMPLATE}  stopp: stop\n"));
        assert_eq!(found, ["spec.stopp: unknown field \"spec.stopp\""]);
        assert!(
            problems(GOOD)[0].starts_with("kind: Some(\"GameServer\") is not GameTemplate"),
            "{:?}",
            problems(GOOD)
        );
        assert!(problems(&TEMPLATE.replace("name: arena", "name: Arena"))[0].starts_with("metadata.name"));
        assert_eq!(problems(""), ["no GameTemplate or ClusterGameTemplate in it"]);
    }

    #[test]
    fn another_api_version_is_refused() {
        let found = problems(&GOOD.replace("v1alpha1", "v2"));
        assert!(found[0].starts_with("apiVersion: Unsupported value \"mettaton.dev/v2\""), "{found:?}");
    }

    #[test]
    fn each_document_is_named_and_other_kinds_are_refused() {
        let found = problems(&format!("{GOOD}---\nkind: Deployment\n---\n{}", GOOD.replace("image:", "imgae:")));
        assert!(found.iter().any(|p| p.starts_with("document 2: kind")), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("document 3: ")), "{found:?}");
        assert_eq!(problems(""), vec!["no GameServer in it"]);
    }
}
