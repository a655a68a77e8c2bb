//! A GameServer made from a template, resolved: the template merged into the
//! server's spec, the server's own fields overriding it, every variable
//! checked. Pure, so that every backend (Kubernetes, Docker Swarm) and
//! `mettaton render` run the same server from the same two specs; a server
//! that does not resolve is never started, and every problem is reported at
//! once, each naming its field and cause.
//!
//! What [`resolve`] does, in order:
//! - The template is read first ([`crate::template::check`]): its problems
//!   are reported prefixed by its name (`ClusterGameTemplate/paper:
//!   spec.variables[X].rules: ...`), and a variable whose rules cannot be
//!   read is not checked further.
//! - Variables: every key of `spec.variables` must be a variable of the
//!   template (`spec.variables.X: template T has no variable X`) that users
//!   may set (`spec.variables.X: X is not user-editable in template T`). A
//!   variable's value is the server's, else the template's default; every
//!   value, defaults included, is checked against the variable's rules
//!   ([`crate::template::rules`]): `spec.variables.X: 500 breaks the rule
//!   between:1,100 of template T (...)`. A default breaking its rule is the
//!   server's to fix when users may set the variable (`spec.variables.X:
//!   the default ...: set spec.variables.X`), the template's when they may
//!   not (`T: spec.variables[X].default: ...`).
//! - Image: `spec.image` when set, else the template's image named by
//!   `spec.template.image` (an unknown name is a problem listing the names),
//!   else the template's first.
//! - Command: `spec.command` (and `spec.args`) when set, else the start
//!   command named by `spec.template.startup` (else the first), run as
//!   `["/bin/sh", "-c", CMD]`. In CMD every placeholder that stands for an
//!   environment variable becomes a shell expansion, as Pterodactyl's yolks
//!   entrypoints do before they `eval` the command: `{{VAR}}` (a variable of
//!   the template, or a variable of the environment below) becomes
//!   `${VAR}` (so do the panel's `{{env.VAR}}`, `{{server.build.env.VAR}}`
//!   and `{{server.environment.VAR}}`): the variables' values reach the
//!   shell through the environment, never pasted into the command line. The
//!   panel's own placeholders, which stand for no variable, are filled with
//!   what mettaton knows, none of it from users: `{{server.build.default.port}}`
//!   and `{{server.allocations.default.port}}` with the first port's
//!   `containerPort`, `{{server.build.default.ip}}` and
//!   `{{server.allocations.default.ip}}` with `0.0.0.0`,
//!   `{{server.build.memory}}` with the MiB of the memory limit. Any other
//!   placeholder is a problem naming the start command and the placeholder. `spec.args` without `spec.command` is a
//!   problem: a start command is one shell line and takes no arguments.
//!   Placeholders are written as the panel reads them: `{{` then letters,
//!   digits, `_`, `.` and `-`, then `}}`; anything else between braces is
//!   left to the shell.
//! - Environment: one variable per template variable (its value), then
//!   those Wings sets for every server, replacing a template variable of the
//!   same name as Wings does: `STARTUP` (the start command as the template
//!   writes it), `SERVER_MEMORY` (the MiB of `resources.limits.memory`, 0
//!   without a limit), `SERVER_IP` (`0.0.0.0`: the game listens on every
//!   address of its container) and `SERVER_PORT` (the first port's
//!   `containerPort`). Then the server's own `spec.env`, replacing by name
//!   what comes before, or added after it.
//! - Ports: the server's when it has any, else the template's; none at all is
//!   a problem (eggs have none: the panel allocates them). A
//!   `health.probe.tcpPort` must name a TCP port of the template's when the
//!   server has none (the API server checks it against the server's own).
//! - `health.readyLogLine`: the server's, else the template's `readyLogLine`
//!   when it has any. `shutdown.stop`: the server's, else the template's
//!   `stop`.
//! - Storage: the server's; its `mountPath`, when unset, is the template's
//!   `filesPath`. A template with an install script needs storage (the
//!   script installs into the server's volume).
//! - Config files: each of the template's `configFiles`, its path joined to
//!   `filesPath` (`server.properties` is `/home/container/server.properties`;
//!   a path leaving the files with `..` is a problem), each edit's `value`
//!   and each replacement's `value` with its placeholders filled (the
//!   `match`es and keys are kept as written): the panel's own as in the start
//!   command; `{{server.build.env.X}}`, `{{server.environment.X}}`,
//!   `{{env.X}}` and `{{X}}` with the value of the environment variable `X`
//!   above (`{{env.SERVER_PORT}}` and the panel's other legacy forms
//!   included: a server setting `SERVER_PORT` in `spec.env` changes them, not
//!   `{{server.build.default.port}}`). A placeholder naming nothing in the
//!   environment, or a variable whose value comes from `valueFrom` (not
//!   known before the container runs), is a problem naming the file and the
//!   key. Others of the panel's (`{{server.build.disk}}`,
//!   `{{config.docker.interface}}`) are not filled: problems too.
//! - The install script is passed to its program as one argument
//!   (`bash -c SCRIPT`), which Linux bounds at 128 KiB: a script above
//!   [`MAX_INSTALL_SCRIPT`] bytes is a problem naming `install.script`.
//! - The resolved spec is concrete: `spec.template` and `spec.variables`
//!   are cleared, everything else of the server's spec is kept.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;

use super::rules::Rules;
use crate::api::{ConfigEdit, GameServerSpec, GameTemplateSpec, Health, InstallScript, Replacement, Shutdown};
use crate::plan::EditedFile;

/// A GameServer's spec with its template merged in: what runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The server as it will run: the template merged, overrides applied,
    /// `template` and `variables` cleared.
    pub spec: GameServerSpec,
    /// Where the game starts: the template's `filesPath`.
    pub working_dir: String,
    /// The template's config files, placeholders filled, paths absolute.
    pub config_files: Vec<EditedFile>,
    /// The template's install script.
    pub install: Option<InstallScript>,
}

/// The largest install script, in bytes: one argument of `bash -c` may hold
/// 131072 bytes (Linux's `MAX_ARG_STRLEN`), less some room.
pub const MAX_INSTALL_SCRIPT: usize = 120_000;

/// What Wings gives a server's `SERVER_IP`: every address of the container.
const SERVER_IP: &str = "0.0.0.0";

/// Resolves the server `spec` made from the template `t`, which the server
/// names `template` (as messages name it: `ClusterGameTemplate/paper`). See
/// the module's doc for what is taken from where; every problem found is
/// returned, each naming its field and cause.
pub fn resolve(spec: &GameServerSpec, template: &str, t: &GameTemplateSpec) -> Result<Resolved, Vec<String>> {
    let mut problems = Vec::new();
    let rules = match super::check(t) {
        Ok(checked) => checked.rules,
        Err(ps) => {
            problems.extend(ps.into_iter().map(|p| format!("{template}: {p}")));
            // The variables whose rules were read are still checked.
            t.variables.iter().filter_map(|v| Some((v.env.clone(), Rules::parse_str(&v.rules).ok()?))).collect()
        }
    };
    let values = variables(spec, template, t, &rules, &mut problems);
    let image = image(spec, template, t, &mut problems);
    let startup = startup(spec, template, t, &mut problems);

    let ports = if spec.ports.is_empty() { t.ports.clone() } else { spec.ports.clone() };
    if ports.is_empty() {
        problems.push(format!(
            "spec.ports: template {template} has no ports (eggs have none: the panel allocates them): set spec.ports"
        ));
    }
    let port = ports.first().map(|p| p.container_port.to_string()).unwrap_or_default();
    let memory = memory_mib(spec);
    let env = environment(spec, &values, startup.map(|s| s.command.as_str()).unwrap_or_default(), &port, memory);

    let (command, args) = if !spec.command.is_empty() {
        (spec.command.clone(), spec.args.clone())
    } else {
        if !spec.args.is_empty() {
            problems.push(format!(
                "spec.args: needs spec.command: the start command of template {template} is one shell line, which takes no arguments"
            ));
        }
        match startup {
            Some(s) => match shell_command(&s.command, &env, &port, memory) {
                Ok(line) => (vec!["/bin/sh".to_string(), "-c".to_string(), line], Vec::new()),
                Err(unknown) => {
                    problems.extend(unknown.into_iter().map(|p| {
                        format!(
                            "spec.template.startup: the start command {} of template {template} has the placeholder {{{{{p}}}}}, which is neither a variable of the template nor one mettaton fills",
                            s.name
                        )
                    }));
                    (Vec::new(), Vec::new())
                }
            },
            None => (Vec::new(), Vec::new()),
        }
    };

    if let Some(port) = spec.health.as_ref().and_then(|h| h.probe.as_ref()).and_then(|p| p.tcp_port.as_deref())
        && spec.ports.is_empty()
        && !ports.iter().any(|p| p.name == port && p.protocol == crate::api::Protocol::TCP)
    {
        problems.push(format!("spec.health.probe.tcpPort: {port} is no TCP port of template {template}"));
    }
    if t.install.is_some() && spec.storage.is_none() {
        problems.push(format!(
            "spec.storage: template {template} has an install script, which installs into the server's volume: set spec.storage"
        ));
    }
    if let Some(install) = &t.install
        && install.script.len() > MAX_INSTALL_SCRIPT
    {
        problems.push(format!(
            "install.script of template {template}: {} bytes, more than the {MAX_INSTALL_SCRIPT} that `{} -c SCRIPT` can pass as one argument",
            install.script.len(),
            install.entrypoint
        ));
    }

    let config_files = config_files(template, t, &env, &port, memory, &mut problems);

    if !problems.is_empty() {
        return Err(problems);
    }

    let mut out = spec.clone();
    out.template = None;
    out.variables.clear();
    out.image = image.unwrap_or_default();
    out.command = command;
    out.args = args;
    out.env = env;
    out.ports = ports;
    let has_ready = spec.health.as_ref().is_some_and(|h| h.ready_log_line.is_some());
    if !has_ready && !t.ready_log_line.is_empty() {
        out.health.get_or_insert_with(Health::default).ready_log_line = Some(t.ready_log_line.clone());
    }
    let has_stop = spec.shutdown.as_ref().is_some_and(|s| s.stop.is_some());
    if !has_stop && let Some(stop) = &t.stop {
        out.shutdown.get_or_insert_with(Shutdown::default).stop = Some(stop.clone());
    }
    if let Some(storage) = &mut out.storage {
        storage.mount_path.get_or_insert_with(|| t.files_path.clone());
    }
    Ok(Resolved { spec: out, working_dir: t.files_path.clone(), config_files, install: t.install.clone() })
}

/// Each template variable with its value (the server's, else the default),
/// in the template's order; the problems of the server's keys and of values
/// breaking their rules pushed to `problems`.
fn variables(
    spec: &GameServerSpec,
    template: &str,
    t: &GameTemplateSpec,
    rules: &[(String, Rules)],
    problems: &mut Vec<String>,
) -> Vec<(String, String)> {
    for key in spec.variables.keys() {
        match t.variables.iter().find(|v| &v.env == key) {
            None => problems.push(format!("spec.variables.{key}: template {template} has no variable {key}")),
            Some(v) if !v.user_editable => {
                problems.push(format!("spec.variables.{key}: {key} is not user-editable in template {template}"))
            }
            Some(_) => {}
        }
    }
    let mut values = Vec::with_capacity(t.variables.len());
    for v in &t.variables {
        let set = spec.variables.get(&v.env).filter(|_| v.user_editable);
        let value = set.unwrap_or(&v.default).clone();
        if let Some((_, r)) = rules.iter().find(|(env, _)| env == &v.env)
            && let Err(broken) = r.check(&value)
        {
            let env = &v.env;
            let rule = &broken.rule;
            let reason = &broken.reason;
            problems.push(match set {
                Some(_) => format!("spec.variables.{env}: {value} breaks the rule {rule} of template {template} ({reason})"),
                None if v.user_editable => format!(
                    "spec.variables.{env}: the default {value:?} of template {template} breaks its rule {rule} ({reason}): set spec.variables.{env}"
                ),
                None => format!(
                    "{template}: spec.variables[{env}].default: {value:?} breaks its rule {rule} ({reason}), and the variable is not user-editable: the template needs fixing"
                ),
            });
        }
        values.push((v.env.clone(), value));
    }
    values
}

fn image(spec: &GameServerSpec, template: &str, t: &GameTemplateSpec, problems: &mut Vec<String>) -> Option<String> {
    let named = spec.template.as_ref().and_then(|r| r.image.as_deref());
    let chosen = match named {
        Some(name) => {
            let found = t.images.iter().find(|i| i.name == name);
            if found.is_none() {
                let names: Vec<&str> = t.images.iter().map(|i| i.name.as_str()).collect();
                problems.push(format!(
                    "spec.template.image: template {template} has no image {name} (its images: {})",
                    names.join(", ")
                ));
            }
            found
        }
        None => t.images.first(),
    };
    if !spec.image.is_empty() {
        return Some(spec.image.clone());
    }
    if named.is_none() && chosen.is_none() {
        problems.push(format!("spec.image: template {template} has no images: set spec.image"));
    }
    chosen.map(|i| i.image.clone())
}

fn startup<'t>(
    spec: &GameServerSpec,
    template: &str,
    t: &'t GameTemplateSpec,
    problems: &mut Vec<String>,
) -> Option<&'t crate::api::StartupCommand> {
    match spec.template.as_ref().and_then(|r| r.startup.as_deref()) {
        Some(name) => {
            let found = t.startup.iter().find(|s| s.name == name);
            if found.is_none() {
                let names: Vec<&str> = t.startup.iter().map(|s| s.name.as_str()).collect();
                problems.push(format!(
                    "spec.template.startup: template {template} has no start command {name} (its start commands: {})",
                    names.join(", ")
                ));
            }
            found
        }
        None => {
            let first = t.startup.first();
            if first.is_none() && spec.command.is_empty() {
                problems.push(format!("spec.command: template {template} has no start command: set spec.command"));
            }
            first
        }
    }
}

/// The environment: the template's variables, Wings' own, the server's.
fn environment(
    spec: &GameServerSpec,
    values: &[(String, String)],
    startup: &str,
    port: &str,
    memory: i64,
) -> Vec<EnvVar> {
    let literal = |name: &str, value: String| EnvVar { name: name.to_string(), value: Some(value), value_from: None };
    let wings = [
        ("STARTUP", startup.to_string()),
        ("SERVER_MEMORY", memory.to_string()),
        ("SERVER_IP", SERVER_IP.to_string()),
        ("SERVER_PORT", port.to_string()),
    ];
    let mut env: Vec<EnvVar> = values
        .iter()
        .filter(|(name, _)| !wings.iter().any(|(w, _)| w == name))
        .map(|(name, value)| literal(name, value.clone()))
        .collect();
    env.extend(wings.into_iter().map(|(name, value)| literal(name, value)));
    for var in &spec.env {
        match env.iter_mut().find(|e| e.name == var.name) {
            Some(e) => *e = var.clone(),
            None => env.push(var.clone()),
        }
    }
    env
}

/// The MiB of `resources.limits.memory`, rounded down; 0 without a limit.
fn memory_mib(spec: &GameServerSpec) -> i64 {
    spec.resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(|q| crate::quantity::Quantity::parse(&q.0))
        .and_then(|q| q.scaled(0))
        .map_or(0, |bytes| bytes / (1024 * 1024))
}

/// What a placeholder stands for.
enum Placeholder<'k> {
    /// One of the panel's, with its value: the first port's
    /// `containerPort`, the address, the memory limit.
    Panel(String),
    /// An environment variable, by name: the panel's `server.build.env.`,
    /// `server.environment.` and `env.` forms, or the name itself.
    Variable(&'k str),
}

/// What the placeholder `key` stands for, given the server's `port` and
/// `memory` (MiB); `None` when nothing.
fn placeholder<'k>(key: &'k str, port: &str, memory: i64) -> Option<Placeholder<'k>> {
    match key {
        "server.build.default.port" | "server.allocations.default.port" => Some(Placeholder::Panel(port.to_string())),
        "server.build.default.ip" | "server.allocations.default.ip" => Some(Placeholder::Panel(SERVER_IP.to_string())),
        "server.build.memory" => Some(Placeholder::Panel(memory.to_string())),
        _ => {
            let name = ["server.build.env.", "server.environment.", "env."]
                .iter()
                .find_map(|prefix| key.strip_prefix(prefix))
                .unwrap_or(key);
            is_identifier(name).then_some(Placeholder::Variable(name))
        }
    }
}

fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces every placeholder of `text` (`{{` then `[A-Za-z0-9_.-]+` then
/// `}}`, as the panel matches them) with what `fill` gives for its key;
/// the keys `fill` refuses are returned, in order, each once.
fn fill_placeholders(text: &str, mut fill: impl FnMut(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut unknown: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let len =
            after.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))).unwrap_or(after.len());
        if len == 0 || !after[len..].starts_with("}}") {
            // Not a placeholder: keep the first brace, look again after it.
            out.push_str(&rest[..start + 1]);
            rest = &rest[start + 1..];
            continue;
        }
        let key = &after[..len];
        out.push_str(&rest[..start]);
        match fill(key) {
            Some(value) => out.push_str(&value),
            None if !unknown.iter().any(|u| u == key) => unknown.push(key.to_string()),
            None => {}
        }
        rest = &after[len + 2..];
    }
    out.push_str(rest);
    if unknown.is_empty() { Ok(out) } else { Err(unknown) }
}

/// A start command as the shell runs it: placeholders of variables of `env`
/// made `${VAR}`, the panel's filled.
fn shell_command(command: &str, env: &[EnvVar], port: &str, memory: i64) -> Result<String, Vec<String>> {
    fill_placeholders(command, |key| match placeholder(key, port, memory)? {
        Placeholder::Panel(value) => Some(value),
        Placeholder::Variable(name) => env.iter().any(|e| e.name == name).then(|| format!("${{{name}}}")),
    })
}

fn config_files(
    template: &str,
    t: &GameTemplateSpec,
    env: &[EnvVar],
    port: &str,
    memory: i64,
    problems: &mut Vec<String>,
) -> Vec<EditedFile> {
    let values: BTreeMap<&str, Option<&str>> = env
        .iter()
        .map(|e| {
            (e.name.as_str(), if e.value_from.is_some() { None } else { Some(e.value.as_deref().unwrap_or_default()) })
        })
        .collect();
    let mut files = Vec::with_capacity(t.config_files.len());
    for file in &t.config_files {
        let relative = file.path.trim_start_matches("./").trim_start_matches('/');
        if relative.split('/').any(|part| part == "..") {
            problems.push(format!(
                "spec.configFiles[{}].path of template {template}: `..` leaves the server's files",
                file.path
            ));
        }
        let mut fill = |key: &str, text: &str| -> String {
            let mut from_elsewhere = Vec::new();
            let filled = fill_placeholders(text, |k| match placeholder(k, port, memory)? {
                Placeholder::Panel(value) => Some(value),
                Placeholder::Variable(name) => match values.get(name) {
                    Some(Some(v)) => Some(v.to_string()),
                    Some(None) => {
                        from_elsewhere.push(k.to_string());
                        None
                    }
                    None => None,
                },
            });
            match filled {
                Ok(v) => v,
                Err(unknown) => {
                    for p in unknown {
                        let why = if from_elsewhere.contains(&p) {
                            "stands for a variable of spec.env whose value comes from valueFrom, not known before the container runs"
                        } else {
                            "is neither a variable nor a placeholder mettaton fills"
                        };
                        problems.push(format!(
                            "spec.configFiles[{}].edits[{key}] of template {template}: the placeholder {{{{{p}}}}} {why}",
                            file.path
                        ));
                    }
                    String::new()
                }
            }
        };
        let edits = file
            .edits
            .iter()
            .map(|e| ConfigEdit {
                key: e.key.clone(),
                value: e.value.as_deref().map(|v| fill(&e.key, v)),
                replace: e.replace.as_ref().map(|rs| {
                    rs.iter().map(|r| Replacement { match_: r.match_.clone(), value: fill(&e.key, &r.value) }).collect()
                }),
            })
            .collect();
        files.push(EditedFile {
            path: format!("{}/{relative}", t.files_path.trim_end_matches('/')),
            parser: file.parser,
            edits,
        });
    }
    files
}

#[cfg(test)]
mod tests;
