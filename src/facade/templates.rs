//! Servers made from game templates in the facade: the templates it is given
//! (no API server holds them: [`super::Mettaton::with_template`], `mettaton
//! swarm apply --template FILE`), the one a manifest's `spec.template` names,
//! and the plan of a saved server resolved with the template it was saved
//! with ([`crate::template::resolve()`], [`crate::plan::plan_resolved`]).
//!
//! A `GameTemplate` given to the facade serves every namespace: the facade
//! has no namespaced objects of its own, and a manifest names a template by
//! kind and name.

use std::collections::BTreeMap;

use super::Error;
use super::state::{SavedServer, Template};
use crate::api::{GameServerSpec, TemplateKind};
use crate::plan::{ANNOTATION_REINSTALL, ServerPlan, plan_resolved, plan_spec};
use crate::template::{Resolved, resolve};

/// The templates a facade was given, by [`template_name`].
pub type Templates = BTreeMap<String, Template>;

/// How messages name a template: `ClusterGameTemplate/paper`.
pub fn template_name(kind: TemplateKind, name: &str) -> String {
    format!("{kind:?}/{name}")
}

/// The template `spec.template` names, from `templates`; `None` for a spec
/// without one. Not given: [`Error::TemplateNotFound`].
pub(crate) fn template_for(spec: &GameServerSpec, templates: &Templates) -> Result<Option<Template>, Error> {
    let Some(reference) = &spec.template else { return Ok(None) };
    templates
        .get(&template_name(reference.kind, &reference.name))
        .cloned()
        .map(Some)
        .ok_or_else(|| Error::TemplateNotFound(template_name(reference.kind, &reference.name)))
}

/// The saved server resolved with its template; `None` for one without a
/// template. Its variables breaking their rules, or the template not
/// resolving, is [`Error::Unresolved`] with every problem; a resolved spec
/// the CRD's rules refuse is [`Error::Invalid`].
pub(crate) fn resolved(saved: &SavedServer) -> Result<Option<Resolved>, Error> {
    let Some(reference) = &saved.spec.template else { return Ok(None) };
    let name = template_name(reference.kind, &reference.name);
    let Some(template) = saved.template.as_ref().filter(|t| t.kind == reference.kind && t.name == reference.name)
    else {
        return Err(Error::TemplateNotFound(name));
    };
    let resolved = resolve(&saved.spec, &name, &template.spec)
        .map_err(|problems| Error::Unresolved { template: name, problems })?;
    let problems = super::validate::problems(&resolved.spec);
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    Ok(Some(resolved))
}

/// The plan of a saved server: its spec planned, or for one made from a
/// template, its spec resolved with it (game started in the template's
/// files, config files edited, install script run first with the token of
/// its `reinstall`).
pub(crate) fn plan_saved(saved: &SavedServer) -> Result<ServerPlan, Error> {
    match resolved(saved)? {
        None => Ok(plan_spec(&saved.name, &saved.namespace, &saved.spec)),
        Some(r) => Ok(plan_resolved(&manifest_of(saved), &r)),
    }
}

/// The spec that runs: the saved one, or resolved with its template (the
/// saved one when it no longer resolves, which a server the facade accepted
/// does).
pub(crate) fn running_spec(saved: &SavedServer) -> GameServerSpec {
    match resolved(saved) {
        Ok(Some(r)) => r.spec,
        _ => saved.spec.clone(),
    }
}

/// The saved server as a manifest: name, namespace, the reinstall asked for.
fn manifest_of(saved: &SavedServer) -> crate::api::GameServer {
    let mut gs = super::manifest(&saved.name, Some(&saved.namespace), saved.spec.clone());
    if let Some(token) = &saved.reinstall {
        gs.metadata.annotations = Some(BTreeMap::from([(ANNOTATION_REINSTALL.to_string(), token.clone())]));
    }
    gs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GameTemplateSpec;
    use serde_json::json;

    fn template() -> Template {
        let spec: GameTemplateSpec = serde_json::from_value(json!({
            "game": "arena",
            "images": [{ "name": "default", "image": "registry.test/testgame:1" }],
            "startup": [{ "name": "default", "command": "/testgame --tcp {{GAME_PORT}} --name {{GAME_NAME}}" }],
            "variables": [
                { "env": "GAME_NAME", "default": "arena", "userEditable": true, "rules": "required|alpha_dash|max:20" },
                { "env": "GAME_PORT", "default": "7777", "userEditable": false, "rules": "required|integer" }
            ],
            "ports": [{ "name": "game", "containerPort": 7777 }],
            "filesPath": "/home/container",
            "install": { "image": "registry.test/testgame:1", "entrypoint": "ash", "script": "echo installed > /mnt/server/installed" }
        }))
        .unwrap();
        Template { kind: TemplateKind::ClusterGameTemplate, name: "arena".into(), spec }
    }

    fn saved(variables: serde_json::Value) -> SavedServer {
        SavedServer {
            name: "a".into(),
            namespace: "games".into(),
            spec: serde_json::from_value(json!({
                "template": { "name": "arena", "kind": "ClusterGameTemplate" },
                "variables": variables,
                "storage": { "size": "1Gi" }
            }))
            .unwrap(),
            spawned_at: "2026-12-04T04:00:00Z".into(),
            template: Some(template()),
            reinstall: None,
        }
    }

    #[test]
    fn a_saved_templated_server_plans_resolved_with_its_install_and_working_dir() {
        let plan = plan_saved(&saved(json!({ "GAME_NAME": "north" }))).unwrap();
        assert_eq!(plan.container.image, "registry.test/testgame:1");
        assert_eq!(plan.container.working_dir.as_deref(), Some("/home/container"));
        assert_eq!(plan.volume.as_ref().map(|v| v.mount_path.as_str()), Some("/home/container"));
        let install = plan.install.expect("the template's install");
        assert_eq!((install.entrypoint.as_str(), install.token.as_str()), ("ash", "initial"));
        let args = [plan.container.command.clone(), plan.container.args.clone()].concat().join(" ");
        assert!(args.contains("north") || plan.container.env.iter().any(|e| e.name == "GAME_NAME"), "{args}");
        // The reinstall asked for is the install's token.
        let mut again = saved(json!({}));
        again.reinstall = Some("2026-12-04T05:00:00Z".into());
        assert_eq!(plan_saved(&again).unwrap().install.unwrap().token, "2026-12-04T05:00:00Z");
    }

    #[test]
    fn a_bad_variable_is_refused_naming_the_variable_and_the_rule() {
        match plan_saved(&saved(json!({ "GAME_NAME": "no spaces allowed" }))) {
            Err(Error::Unresolved { template, problems }) => {
                assert_eq!(template, "ClusterGameTemplate/arena");
                assert!(problems.iter().any(|p| p.contains("GAME_NAME") && p.contains("alpha_dash")), "{problems:?}");
            }
            other => panic!("expected Unresolved, got {other:?}"),
        }
        let err = plan_saved(&saved(json!({ "GAME_NAME": "no spaces allowed" }))).unwrap_err().to_string();
        assert!(err.contains("GAME_NAME") && err.contains("ClusterGameTemplate/arena"), "{err}");
    }

    #[test]
    fn a_template_not_given_is_not_found_by_kind_and_name() {
        let spec = saved(json!({})).spec;
        let mut templates = Templates::new();
        assert!(matches!(
            template_for(&spec, &templates),
            Err(Error::TemplateNotFound(name)) if name == "ClusterGameTemplate/arena"
        ));
        // A GameTemplate of the name is another template.
        let mut namespaced = template();
        namespaced.kind = TemplateKind::GameTemplate;
        templates.insert("GameTemplate/arena".into(), namespaced);
        assert!(template_for(&spec, &templates).is_err());
        templates.insert("ClusterGameTemplate/arena".into(), template());
        assert_eq!(template_for(&spec, &templates).unwrap(), Some(template()));
        let mut plain = spec.clone();
        plain.template = None;
        assert_eq!(template_for(&plain, &templates).unwrap(), None);
        // A saved server without its template cannot be planned.
        let mut lost = saved(json!({}));
        lost.template = None;
        assert!(matches!(plan_saved(&lost), Err(Error::TemplateNotFound(_))));
    }
}
