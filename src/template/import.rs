//! An egg made a game template (`mettaton template import`), pure: [`Egg`] →
//! [`GameTemplateSpec`], its name, and the report of what was left out or
//! changed, one line per field: [`Egg::left_out`] and what the conversion
//! itself does not carry as the egg has it.
//!
//! What is kept as the egg has it: every image and start command, in the
//! egg's order (the first the default); `{{VAR}}` placeholders and shell
//! syntax (`${VAR}`, `$(...)`) in the commands, reported when they are not
//! the egg's `{{VAR}}` of its own variables; the variables with their rules as
//! written; config-file edits, each `find` entry one edit, a map of
//! conditional replacements as `replace`.

use serde_json::Value;

use super::egg::Egg;
use crate::api::{
    ConfigEdit, EggFormat, GameTemplateSpec, InstallScript, Replacement, StartupCommand, TemplateConfigFile,
    TemplateImage, TemplateSource, TemplateVariable,
};

/// A template made from an egg.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The template's name, from the egg's ([`dns_label`]).
    pub name: Option<String>,
    pub spec: GameTemplateSpec,
    /// What was left out or changed, as `field: why`, the egg's field first.
    pub report: Vec<String>,
}

/// The egg's name made a DNS label: lowercase ASCII letters and digits
/// kept, every run of anything else one `-`, no `-` at either end, at most 63
/// characters (cut, then trimmed of `-` again). None when nothing is left
/// (a name of no ASCII letter or digit).
pub fn dns_label(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(63);
    let out = out.trim_end_matches('-').to_string();
    (!out.is_empty()).then_some(out)
}

/// Whether `name` is a DNS label (what `--name` must be).
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A field that does not fit the template: the egg's field and why.
type Problem = String;

/// The bound of a string of the template's schema, checked on the egg's
/// field it comes from.
fn bounded(field: &str, value: &str, max: usize) -> Result<(), Problem> {
    let n = value.chars().count();
    if n > max {
        return Err(format!("{field}: {n} characters, a template takes at most {max}"));
    }
    Ok(())
}

fn count(field: &str, n: usize, max: usize) -> Result<(), Problem> {
    if n > max {
        return Err(format!("{field}: {n} entries, a template takes at most {max}"));
    }
    Ok(())
}

fn image_ref(field: &str, image: &str) -> Result<(), Problem> {
    bounded(field, image, 512)?;
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return Err(format!("{field}: `{image}` is not an image reference (empty, or with spaces)"));
    }
    Ok(())
}

/// Makes a template of an egg.
pub fn import(egg: &Egg) -> Result<Imported, Problem> {
    let mut report = egg.left_out.clone();
    let (images_field, startup_field) = (
        if egg.format == EggFormat::PTDL_v1 { "images" } else { "docker_images" },
        if egg.format == EggFormat::PLCN_v3 { "startup_commands" } else { "startup" },
    );

    if egg.name.trim().is_empty() {
        return Err("name: empty".into());
    }
    bounded("name", &egg.name, 256)?;
    bounded("description", &egg.description, 16384)?;
    bounded("author", &egg.author, 256)?;

    count(images_field, egg.images.len(), 32)?;
    let mut images: Vec<TemplateImage> = Vec::new();
    for (label, image) in &egg.images {
        let field = format!("{images_field}.{label}");
        bounded(&field, label, 256)?;
        image_ref(&field, image)?;
        if images.iter().any(|i| i.name == *label) {
            return Err(format!("{field}: the label is given twice"));
        }
        images.push(TemplateImage { name: label.clone(), image: image.clone() });
    }

    count(startup_field, egg.startup.len(), 16)?;
    let envs: Vec<&str> = egg.variables.iter().map(|v| v.env.as_str()).collect();
    let mut startup = Vec::new();
    for (label, command) in &egg.startup {
        let field =
            if egg.format == EggFormat::PLCN_v3 { format!("startup_commands.{label}") } else { "startup".into() };
        bounded(&field, label, 256)?;
        bounded(&field, command, 16384)?;
        let unknown: Vec<String> = placeholders(command)
            .into_iter()
            .filter(|p| !envs.contains(&p.as_str()))
            .map(|p| format!("`{{{{{p}}}}}`"))
            .collect();
        if !unknown.is_empty() {
            report.push(format!(
                "{field}: {} kept as written: none of the egg's variables (the panel fills such values in itself; mettaton does not)",
                unknown.join(", ")
            ));
        }
        let shell = shell_references(command);
        if !shell.is_empty() {
            let listed: Vec<String> = shell.iter().map(|s| format!("`{s}`")).collect();
            report.push(format!(
                "{field}: {} kept as shell references, not made `{{{{VAR}}}}` placeholders: the shell running the command expands them from its environment",
                listed.join(", ")
            ));
        }
        startup.push(StartupCommand { name: label.clone(), command: command.clone() });
    }

    count("variables", egg.variables.len(), 128)?;
    let mut variables = Vec::new();
    for v in &egg.variables {
        let field = format!("variables[{}]", v.env);
        bounded(&format!("{field}.env_variable"), &v.env, 256)?;
        bounded(&format!("{field}.name"), &v.title, 256)?;
        bounded(&format!("{field}.description"), &v.description, 16384)?;
        bounded(&format!("{field}.default_value"), &v.default, 32768)?;
        bounded(&format!("{field}.rules"), &v.rules_text, 4096)?;
        variables.push(TemplateVariable {
            env: v.env.clone(),
            title: v.title.clone(),
            description: v.description.clone(),
            default: v.default.clone(),
            user_editable: v.user_editable,
            user_viewable: v.user_viewable,
            rules: v.rules_text.clone(),
        });
    }

    count("config.files", egg.files.len(), 32)?;
    let mut config_files = Vec::new();
    for f in &egg.files {
        let field = format!("config.files.{}", f.path);
        bounded(&field, &f.path, 1024)?;
        count(&format!("{field}.find"), f.find.len(), 128)?;
        let mut edits = Vec::new();
        for (key, value) in &f.find {
            let field = format!("{field}.find.{key}");
            bounded(&field, key, 1024)?;
            if key.is_empty() {
                return Err(format!("{field}: an empty key"));
            }
            let text = |v: &Value, field: &str, report: &mut Vec<String>| -> Result<Option<String>, Problem> {
                match v {
                    Value::String(s) => Ok(Some(s.clone())),
                    Value::Number(_) | Value::Bool(_) => {
                        report.push(format!("{field}: the JSON {v} is kept as the text `{v}`"));
                        Ok(Some(v.to_string()))
                    }
                    Value::Null => {
                        report.push(format!("{field}: null, no value to set: left out"));
                        Ok(None)
                    }
                    _ => Err(format!("{field}: a list or map is no value a template sets")),
                }
            };
            let edit = match value {
                Value::Object(cases) if cases.is_empty() => {
                    report.push(format!("{field}: an empty map of replacements, nothing to do: left out"));
                    continue;
                }
                Value::Object(cases) => {
                    count(&field, cases.len(), 32)?;
                    let mut replace = Vec::new();
                    for (match_, with) in cases {
                        let field = format!("{field}.{match_}");
                        bounded(&field, match_, 4096)?;
                        let Some(with) = text(with, &field, &mut report)? else { continue };
                        bounded(&field, &with, 16384)?;
                        replace.push(Replacement { match_: match_.clone(), value: with });
                    }
                    if replace.is_empty() {
                        continue;
                    }
                    ConfigEdit { key: key.clone(), value: None, replace: Some(replace) }
                }
                v => {
                    let Some(value) = text(v, &field, &mut report)? else { continue };
                    bounded(&field, &value, 16384)?;
                    ConfigEdit { key: key.clone(), value: Some(value), replace: None }
                }
            };
            edits.push(edit);
        }
        config_files.push(TemplateConfigFile { path: f.path.clone(), parser: f.parser, edits });
    }

    let mut ready_log_line = Vec::new();
    for (i, line) in egg.done.iter().enumerate() {
        let field =
            if egg.done.len() == 1 { "config.startup.done".to_string() } else { format!("config.startup.done[{i}]") };
        if line.is_empty() {
            report.push(format!("{field}: empty (it would match every line): left out"));
            continue;
        }
        bounded(&field, line, 1024)?;
        ready_log_line.push(line.clone());
    }
    count("config.startup.done", ready_log_line.len(), 16)?;

    let stop = match &egg.stop {
        Some(s) if s.contains('\n') => return Err("config.stop: more than one line".into()),
        Some(s) => {
            bounded("config.stop", s, 1024)?;
            Some(s.clone())
        }
        None => None,
    };

    let install = match &egg.install {
        None => None,
        Some(i) => {
            image_ref("scripts.installation.container", &i.image)?;
            bounded("scripts.installation.entrypoint", &i.entrypoint, 256)?;
            bounded("scripts.installation.script", &i.script, 262144)?;
            Some(InstallScript { image: i.image.clone(), entrypoint: i.entrypoint.clone(), script: i.script.clone() })
        }
    };

    if let Some(url) = &egg.update_url {
        bounded("meta.update_url", url, 2048)?;
    }
    let spec = GameTemplateSpec {
        game: egg.name.clone(),
        description: (!egg.description.is_empty()).then(|| egg.description.clone()),
        images,
        startup,
        variables,
        config_files,
        ready_log_line,
        stop,
        // Eggs have no ports (the panel allocates them) and their files are
        // at Pterodactyl's path.
        ports: Vec::new(),
        files_path: crate::api::DEFAULT_FILES_PATH.to_string(),
        install,
        source: Some(TemplateSource {
            format: egg.format,
            name: egg.name.clone(),
            author: egg.author.clone(),
            update_url: egg.update_url.clone().filter(|u| !u.is_empty()),
        }),
    };
    Ok(Imported { name: dns_label(&egg.name), spec, report })
}

/// The `{{NAME}}` placeholders of a command (a name of letters, digits, `_`
/// and `.`), each once, in order.
pub fn placeholders(command: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = command;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && !out.iter().any(|o| o == name)
        {
            out.push(name.to_string());
        }
        rest = &after[end + 2..];
    }
    out
}

/// The shell's variable references of a command (`${NAME}`, `$NAME`), each
/// once, in order.
pub fn shell_references(command: &str) -> Vec<String> {
    let bytes = command.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let (braced, from) = if bytes.get(i + 1) == Some(&b'{') { (true, i + 2) } else { (false, i + 1) };
        let mut end = from;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        let starts_well = end > from && !bytes[from].is_ascii_digit();
        let closed = !braced || bytes.get(end) == Some(&b'}');
        if starts_well && closed {
            let text = if braced { &command[i..=end] } else { &command[i..end] };
            if !out.iter().any(|o| o == text) {
                out.push(text.to_string());
            }
        }
        i = end.max(i + 1);
    }
    out
}

#[cfg(test)]
mod tests;
