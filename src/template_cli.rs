//! `mettaton template import|check`: an egg made a GameTemplate or
//! ClusterGameTemplate, printed as YAML or applied; a template file checked as
//! mettaton reads templates.

use std::path::PathBuf;

use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use mettaton::api::{
    ClusterGameTemplate, ClusterGameTemplateSpec, FIELD_MANAGER, GamePort, GameTemplate, GameTemplateSpec, Protocol,
};
use mettaton::template::{self, egg::Egg, import::is_dns_label};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum TemplateCommand {
    /// Make a template of a Pterodactyl/Pelican egg (PTDL_v1, PTDL_v2,
    /// PLCN_v1-v3; JSON or YAML). Prints it as YAML, or applies it with
    /// `--apply`; what the egg holds that the template does not carry is
    /// listed on stderr, one line per field.
    Import(ImportArgs),
    /// Check a GameTemplate or ClusterGameTemplate file as mettaton reads
    /// templates: the variables' rules, the ready lines, the stop.
    Check {
        /// The template's YAML.
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// The egg, JSON or YAML.
    file: PathBuf,
    /// The template's name (default: the egg's name made a DNS label).
    #[arg(long)]
    name: Option<String>,
    /// A GameTemplate in this namespace (default: the kubeconfig context's
    /// namespace with `--apply`, none in the YAML printed).
    #[arg(long, short = 'n', conflicts_with = "cluster")]
    namespace: Option<String>,
    /// A ClusterGameTemplate, for every namespace.
    #[arg(long)]
    cluster: bool,
    /// A port the game listens on, `NAME=PORT` or `NAME=PORT/UDP`
    /// (repeatable; the first is the egg's default port, `SERVER_PORT`).
    /// Eggs have none (the panel allocates them): with them in the template,
    /// a GameServer needs no `spec.ports`.
    #[arg(long = "port", value_name = "NAME=PORT[/PROTOCOL]", value_parser = parse_port)]
    ports: Vec<GamePort>,
    /// Apply it (server-side apply, field manager `mettaton`) with your
    /// kubeconfig instead of printing it.
    #[arg(long)]
    apply: bool,
    /// Kubeconfig to use with `--apply`; otherwise $KUBECONFIG or ~/.kube/config.
    #[arg(long, env = "MTN_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

pub(crate) async fn run(command: TemplateCommand) -> Result<(), String> {
    match command {
        TemplateCommand::Import(args) => import(args).await,
        TemplateCommand::Check { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let (kind, name, spec) = read_template(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            template::check(&spec).map_err(|p| format!("{}: {kind} {name}:\n  {}", file.display(), p.join("\n  ")))?;
            println!("{kind} {name}: the template is one mettaton reads");
            Ok(())
        }
    }
}

/// A port of `--port`: `NAME=PORT` or `NAME=PORT/TCP|UDP`, the name as the
/// CRD takes it.
fn parse_port(arg: &str) -> Result<GamePort, String> {
    let (name, port) = arg.split_once('=').ok_or_else(|| format!("`{arg}`: want NAME=PORT or NAME=PORT/UDP"))?;
    let name_ok = (1..=15).contains(&name.len())
        && name
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && name.chars().any(|c| c.is_ascii_lowercase());
    if !name_ok {
        return Err(format!(
            "`{name}` is not a port name: lowercase letters, digits and single dashes, at least one letter, at most 15"
        ));
    }
    let (number, protocol) = match port.split_once('/') {
        None => (port, Protocol::TCP),
        Some((n, p)) if p.eq_ignore_ascii_case("tcp") => (n, Protocol::TCP),
        Some((n, p)) if p.eq_ignore_ascii_case("udp") => (n, Protocol::UDP),
        Some((_, p)) => return Err(format!("`{p}` is not a protocol: TCP or UDP")),
    };
    let container_port = number
        .parse::<i32>()
        .ok()
        .filter(|n| (1..=65535).contains(n))
        .ok_or_else(|| format!("`{number}` is not a port (1 to 65535)"))?;
    Ok(GamePort { name: name.to_string(), container_port, protocol, external_port: None })
}

/// A template's kind, name and spec from its YAML.
fn read_template(text: &str) -> Result<(String, String, GameTemplateSpec), String> {
    #[derive(serde::Deserialize)]
    struct Object {
        kind: String,
        metadata: ObjectMeta,
        spec: serde_yaml::Value,
    }
    let object: Object = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if object.kind != "GameTemplate" && object.kind != "ClusterGameTemplate" {
        return Err(format!("kind: `{}` is not GameTemplate or ClusterGameTemplate", object.kind));
    }
    let spec: GameTemplateSpec = serde_yaml::from_value(object.spec).map_err(|e| format!("spec: {e}"))?;
    Ok((object.kind, object.metadata.name.unwrap_or_default(), spec))
}

async fn import(args: ImportArgs) -> Result<(), String> {
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).map_err(|e| format!("{file}: {e}"))?;
    let egg = Egg::parse(&text).map_err(|e| format!("{file}: {e}"))?;
    let imported = template::import(&egg).map_err(|e| format!("{file}: {e}"))?;
    template::check(&imported.spec).map_err(|p| format!("{file}: {}", p.join("; ")))?;
    let name = match args.name {
        Some(n) if is_dns_label(&n) => n,
        Some(n) => {
            return Err(format!("--name: `{n}` is not a DNS label (lowercase letters, digits and `-`, at most 63)"));
        }
        None => imported.name.clone().ok_or_else(|| {
            format!("{file}: name: `{}` has no ASCII letter or digit to name the template by: pass --name", egg.name)
        })?,
    };
    for line in &imported.report {
        eprintln!("left out: {line}");
    }
    let mut spec = imported.spec;
    if let Some(twice) = args.ports.iter().enumerate().find_map(|(i, p)| {
        args.ports[..i]
            .iter()
            .any(|q| q.name == p.name || (q.container_port, q.protocol) == (p.container_port, p.protocol))
            .then_some(p)
    }) {
        return Err(format!(
            "--port: {} (port {}/{}) is given twice, by name or port",
            twice.name,
            twice.container_port,
            twice.protocol.as_str()
        ));
    }
    spec.ports = args.ports;
    if !args.apply {
        let yaml = if args.cluster {
            let mut t = ClusterGameTemplate::new(&name, ClusterGameTemplateSpec(spec));
            t.metadata.namespace = None;
            serde_yaml::to_string(&t)
        } else {
            let mut t = GameTemplate::new(&name, spec);
            t.metadata.namespace = args.namespace;
            serde_yaml::to_string(&t)
        };
        print!("{}", yaml.map_err(|e| e.to_string())?);
        return Ok(());
    }
    let client = crate::client(args.kubeconfig.as_ref()).await?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    if args.cluster {
        let t = ClusterGameTemplate::new(&name, ClusterGameTemplateSpec(spec));
        Api::<ClusterGameTemplate>::all(client)
            .patch(&name, &params, &Patch::Apply(&t))
            .await
            .map_err(|e| format!("applying clustergametemplate {name}: {e}"))?;
        println!("clustergametemplate {name} applied");
    } else {
        let namespace = args.namespace.unwrap_or_else(|| client.default_namespace().to_string());
        let mut t = GameTemplate::new(&name, spec);
        t.metadata.namespace = Some(namespace.clone());
        Api::<GameTemplate>::namespaced(client, &namespace)
            .patch(&name, &params, &Patch::Apply(&t))
            .await
            .map_err(|e| format!("applying gametemplate {namespace}/{name}: {e}"))?;
        println!("gametemplate {namespace}/{name} applied");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_a_name_a_number_and_a_protocol() {
        let p = parse_port("game=25565").unwrap();
        assert_eq!((p.name.as_str(), p.container_port, p.protocol), ("game", 25565, Protocol::TCP));
        let p = parse_port("query=2457/udp").unwrap();
        assert_eq!((p.name.as_str(), p.container_port, p.protocol), ("query", 2457, Protocol::UDP));
        for (bad, why) in [
            ("game", "want NAME=PORT"),
            ("Game=1", "is not a port name"),
            ("123=1", "is not a port name"),
            ("a--b=1", "is not a port name"),
            ("game=0", "is not a port (1 to 65535)"),
            ("game=70000", "is not a port"),
            ("game=x", "is not a port"),
            ("game=1/sctp", "`sctp` is not a protocol"),
        ] {
            let e = parse_port(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
