//! `mettaton render`: a GameServer made from a template, printed as the
//! server that runs ([`mettaton::template::resolve`]): its resolved spec, the
//! working dir, the config-file edits and the install script. Read from the
//! cluster (`render NAME -n NS`, the template found as the server names it),
//! or from files (`render -f server.yaml --template template.yaml`, offline,
//! for Docker Swarm users and for checking a server before applying it). A
//! server that does not resolve is refused with its problems, one a line.

use std::path::PathBuf;

use kube::api::{Api, ObjectMeta};
use mettaton::api::{ConfigEdit, ConfigParser, GameServer, GameTemplateSpec};
use mettaton::plan;
use mettaton::template::{self, lookup};
use serde::Serialize;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("server").required(true).args(["name", "file"])))]
pub(crate) struct RenderArgs {
    /// The GameServer, read from the cluster with its template.
    name: Option<String>,
    /// Its namespace (default: the kubeconfig context's namespace, else `default`).
    #[arg(long, short = 'n', env = "MTN_NAMESPACE", conflicts_with = "file")]
    namespace: Option<String>,
    /// Kubeconfig to use; otherwise $KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account.
    #[arg(long, env = "MTN_KUBECONFIG", conflicts_with = "file")]
    kubeconfig: Option<PathBuf>,
    /// The GameServer's YAML, rendered offline with `--template`.
    #[arg(long, short = 'f', requires = "template")]
    file: Option<PathBuf>,
    /// The template's YAML (a GameTemplate or ClusterGameTemplate), the one
    /// the server's `spec.template` names.
    #[arg(long, requires = "file")]
    template: Option<PathBuf>,
}

/// What `mettaton render` prints.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Rendered {
    /// The GameServer with its resolved spec (no template, no variables).
    server: GameServer,
    /// Where the game starts.
    working_dir: String,
    /// The files the supervisor edits before the game starts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    config_files: Vec<RenderedFile>,
    /// The install script, with the token the volume must hold to skip it.
    #[serde(skip_serializing_if = "Option::is_none")]
    install: Option<RenderedInstall>,
}

#[derive(Serialize, Debug)]
struct RenderedFile {
    path: String,
    parser: ConfigParser,
    edits: Vec<ConfigEdit>,
}

#[derive(Serialize, Debug)]
struct RenderedInstall {
    image: String,
    entrypoint: String,
    script: String,
    token: String,
}

pub(crate) async fn run(args: RenderArgs) -> Result<(), String> {
    let (gs, what, template_name, t) = match (&args.file, &args.template) {
        (Some(file), Some(template_file)) => from_files(file, template_file)?,
        _ => from_cluster(&args).await?,
    };
    let r = template::resolve(&gs.spec, &template_name, &t)
        .map_err(|problems| format!("{what} does not resolve:\n{}", problems.join("\n")))?;
    print!("{}", serde_yaml::to_string(&rendered(&gs, &r)).map_err(|e| e.to_string())?);
    Ok(())
}

/// The printed form of a resolved server.
fn rendered(gs: &GameServer, r: &template::Resolved) -> Rendered {
    let p = plan::plan_resolved(gs, r);
    let mut server = GameServer::new(gs.metadata.name.as_deref().unwrap_or_default(), r.spec.clone());
    server.metadata =
        ObjectMeta { name: gs.metadata.name.clone(), namespace: gs.metadata.namespace.clone(), ..Default::default() };
    Rendered {
        server,
        working_dir: r.working_dir.clone(),
        config_files: r
            .config_files
            .iter()
            .map(|f| RenderedFile { path: f.path.clone(), parser: f.parser, edits: f.edits.clone() })
            .collect(),
        install: p.install.map(|i| RenderedInstall {
            image: i.image,
            entrypoint: i.entrypoint,
            script: i.script,
            token: i.token,
        }),
    }
}

async fn from_cluster(args: &RenderArgs) -> Result<(GameServer, String, String, GameTemplateSpec), String> {
    let name = args.name.as_deref().expect("clap requires a name without --file");
    let client = crate::client(args.kubeconfig.as_ref()).await?;
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let what = format!("gameserver {namespace}/{name}");
    let gs = Api::<GameServer>::namespaced(client.clone(), &namespace)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading {what}: {e}"))?
        .ok_or_else(|| format!("{what} not found"))?;
    let wanted = lookup::wanted(&gs).ok_or_else(|| format!("{what} names no template (spec.template)"))?;
    let spec = lookup::get(&client, &wanted)
        .await
        .map_err(|e| format!("reading {} for {what}: {e}", wanted.describe()))?
        .ok_or_else(|| format!("spec.template: {what} names {}, which is not found", wanted.describe()))?;
    Ok((gs, what, wanted.label(), spec))
}

fn from_files(
    file: &PathBuf,
    template_file: &PathBuf,
) -> Result<(GameServer, String, String, GameTemplateSpec), String> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let gs: GameServer = serde_yaml::from_str(&read(file)?).map_err(|e| format!("{}: {e}", file.display()))?;
    let what = format!("gameserver {}", gs.metadata.name.as_deref().unwrap_or_default());
    let wanted =
        lookup::wanted(&gs).ok_or_else(|| format!("{}: {what} names no template (spec.template)", file.display()))?;
    let named = wanted.label();

    #[derive(serde::Deserialize)]
    struct Object {
        kind: String,
        metadata: ObjectMeta,
        spec: serde_yaml::Value,
    }
    let t = template_file.display();
    let object: Object = serde_yaml::from_str(&read(template_file)?).map_err(|e| format!("{t}: {e}"))?;
    if object.kind != "GameTemplate" && object.kind != "ClusterGameTemplate" {
        return Err(format!("{t}: kind: `{}` is not GameTemplate or ClusterGameTemplate", object.kind));
    }
    let held = format!("{}/{}", object.kind, object.metadata.name.as_deref().unwrap_or_default());
    if held != named {
        return Err(format!("spec.template: {what} names {named}, and {t} holds {held}"));
    }
    let spec: GameTemplateSpec = serde_yaml::from_value(object.spec).map_err(|e| format!("{t}: spec: {e}"))?;
    Ok((gs, what, named, spec))
}
