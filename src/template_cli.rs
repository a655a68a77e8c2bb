//! `mettaton template import|check`: an egg made a GameTemplate or
//! ClusterGameTemplate, printed as YAML or applied; a template file checked as
//! mettaton reads templates.

use std::path::PathBuf;

use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use mettaton::api::{ClusterGameTemplate, ClusterGameTemplateSpec, FIELD_MANAGER, GameTemplate, GameTemplateSpec};
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
    let spec = imported.spec;
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
