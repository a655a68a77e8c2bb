//! A GameServer's plan, whether it names a template or not: the template
//! the server names ([`wanted()`]), found by the caller (the controller in its
//! caches, the CLI with one read: [`get`]), resolved ([`super::resolve()`]) and
//! planned ([`crate::plan::plan_resolved`]), or why it cannot be
//! ([`Unresolved`], with the status reason that says so). Pure but for
//! [`get`].

use kube::{Api, Client};

use crate::api::{ClusterGameTemplate, GameServer, GameServerSpec, GameTemplate, GameTemplateSpec, TemplateKind};
use crate::plan::{self, ServerPlan};
use crate::status::reason;

/// The template a GameServer names: its kind, its namespace (the server's,
/// for a GameTemplate; `None` for a ClusterGameTemplate) and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub kind: TemplateKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl Wanted {
    /// How messages name it: `GameTemplate games/paper`,
    /// `ClusterGameTemplate paper`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("GameTemplate {ns}/{}", self.name),
            None => format!("ClusterGameTemplate {}", self.name),
        }
    }

    /// How [`super::resolve()`] names it in its problems: `GameTemplate/paper`,
    /// `ClusterGameTemplate/paper` (a GameTemplate is in the server's own
    /// namespace).
    pub fn label(&self) -> String {
        let kind = match self.kind {
            TemplateKind::GameTemplate => "GameTemplate",
            TemplateKind::ClusterGameTemplate => "ClusterGameTemplate",
        };
        format!("{kind}/{}", self.name)
    }
}

/// The template `gs` names in `spec.template`, if it names one.
pub fn wanted(gs: &GameServer) -> Option<Wanted> {
    let r = gs.spec.template.as_ref()?;
    Some(Wanted {
        kind: r.kind,
        namespace: match r.kind {
            TemplateKind::GameTemplate => Some(gs.metadata.namespace.clone().unwrap_or_default()),
            TemplateKind::ClusterGameTemplate => None,
        },
        name: r.name.clone(),
    })
}

/// What a GameServer runs: its plan, and the spec that runs (the resolved
/// one, for a server made from a template; the server's own otherwise),
/// which its status is computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub plan: ServerPlan,
    pub spec: GameServerSpec,
}

/// Why a GameServer made from a template has no plan: the status reason
/// ([`reason::TEMPLATE_NOT_FOUND`], [`reason::INVALID_VARIABLES`] or
/// [`reason::INVALID_TEMPLATE`]) and the message (every problem, joined by
/// `; `).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    pub reason: &'static str,
    pub message: String,
}

/// The plan of `gs`, given `template`: the spec of the template it names, as
/// the caller found it (`None`: it does not exist), ignored for a server
/// that names none ([`plan::plan`]). The problems of a server that does not
/// resolve are `InvalidVariables` when every one is about
/// `spec.variables`, `InvalidTemplate` otherwise.
pub fn plan(gs: &GameServer, template: Option<&GameTemplateSpec>) -> Result<Planned, Unresolved> {
    let Some(wanted) = wanted(gs) else {
        return Ok(Planned { plan: plan::plan(gs), spec: gs.spec.clone() });
    };
    let Some(template) = template else {
        return Err(Unresolved {
            reason: reason::TEMPLATE_NOT_FOUND,
            message: format!("{} not found (spec.template)", wanted.describe()),
        });
    };
    match super::resolve(&gs.spec, &wanted.label(), template) {
        Ok(resolved) => Ok(Planned { plan: plan::plan_resolved(gs, &resolved), spec: resolved.spec }),
        Err(problems) => {
            let variables = problems.iter().all(|p| p.starts_with("spec.variables"));
            Err(Unresolved {
                reason: if variables { reason::INVALID_VARIABLES } else { reason::INVALID_TEMPLATE },
                message: problems.join("; "),
            })
        }
    }
}

/// Reads the template `wanted` names from the API server (`None`: it does
/// not exist); for a caller without the controller's caches (the CLI).
pub async fn get(client: &Client, wanted: &Wanted) -> Result<Option<GameTemplateSpec>, kube::Error> {
    match &wanted.namespace {
        Some(ns) => {
            let api = Api::<GameTemplate>::namespaced(client.clone(), ns);
            Ok(api.get_opt(&wanted.name).await?.map(|t| t.spec))
        }
        None => {
            let api = Api::<ClusterGameTemplate>::all(client.clone());
            Ok(api.get_opt(&wanted.name).await?.map(|t| t.spec.0))
        }
    }
}

#[cfg(test)]
mod tests;
