//! Servers made from game templates on Docker Swarm and plain Docker (issue
//! 16), on the engine of tests/swarm/up with the test game standing in for
//! an egg's image (it has busybox's `ash`, the shell eggs' install scripts
//! run in): the library given a template runs a server with variables, its
//! install script run once before the game on the server's volume (a later
//! change runs the install job again, and the volume's marker skips the
//! script), the game started in the template's files path; a variable that
//! breaks its rule is refused naming the variable and the rule; a new
//! process plans the server from the template in the state file; a failed
//! install is the server's `InstallFailed` problem with the script's last
//! lines, and not run again for the same install; and `mettaton swarm apply
//! --template FILE` with `get`/`describe` showing the template.

use std::time::Duration;

use mettaton::api::TemplateKind;
use mettaton::facade::{Applied, Error, Mettaton, Template};
use mettaton::orchestrator::docker::DockerOrchestrator;
use mettaton::orchestrator::observed::ProblemKind;
use mettaton::orchestrator::swarm::SwarmOrchestrator;
use mettaton::orchestrator::{Owner, Teardown};
use serde_json::{Value, json};

use crate::support::{daemon, docker, eventually};
use crate::testgame::{Backend, IMAGE, Scope, supervisor_image, tcp_exchange};

/// The install script: counts its runs on the volume and leaves the file the
/// game prints at its start (`GAME_CONFIG`, relative to the working dir).
const INSTALL: &str = "echo run >> /mnt/server/runs\n\
                       echo \"installed $(wc -l < /mnt/server/runs) times for $GAME_NAME\" > /mnt/server/motd.txt\n\
                       echo install done";

/// The test game as a template: a start command with a placeholder, a user
/// variable with rules, a fixed one, its ports, a ready line, and `install`.
fn template(install: &str) -> Template {
    let spec = serde_json::from_value(json!({
        "game": "arena",
        "images": [{ "name": "default", "image": IMAGE }],
        "startup": [{ "name": "default", "command": "/testgame -tcp {{GAME_TCP}}" }],
        "variables": [
            { "env": "GAME_NAME", "default": "arena", "userEditable": true, "rules": "required|alpha_dash|max:20" },
            { "env": "GAME_TCP", "default": "7777", "userEditable": false, "rules": "required|integer" },
            { "env": "GAME_CONFIG", "default": "motd.txt", "userEditable": false, "rules": "required|string" }
        ],
        "ports": [
            { "name": "game", "containerPort": 7777 },
            { "name": "query", "containerPort": 7778, "protocol": "UDP" }
        ],
        "readyLogLine": ["game server listening"],
        "filesPath": "/home/container",
        "install": { "image": IMAGE, "entrypoint": "ash", "script": install }
    }))
    .unwrap();
    Template { kind: TemplateKind::ClusterGameTemplate, name: "arena".into(), spec }
}

/// A five-line GameServer: the template, a variable, storage.
fn server(name: &str) -> Value {
    json!({
        "template": { "name": "arena", "kind": "ClusterGameTemplate" },
        "variables": { "GAME_NAME": name },
        "storage": { "size": "1Gi", "reclaimPolicy": "Delete" },
        "shutdown": { "gracePeriodSeconds": 5 }
    })
}

const WAIT: Duration = Duration::from_secs(60);

/// The server's log, once it holds `what`.
async fn log_with<B: Backend>(facade: &Mettaton<B>, id: &str, what: &str) -> String {
    eventually(&format!("{what:?} in the log of {id}"), WAIT, || async {
        let logs = facade.logs(id, None).await.map_err(|e| e.to_string())?;
        if logs.contains(what) { Ok(logs) } else { Err(logs) }
    })
    .await
}

async fn a_templated_server_installs_once_runs_and_is_planned_again_from_the_state<B: Backend>() {
    let scope = Scope::<B>::new("tpl");
    let sup = supervisor_image().await;
    let mut facade =
        Mettaton::<B>::on(daemon(), scope.state()).with_supervisor_image(&sup).with_template(template(INSTALL));
    facade.connect().await.expect("connects");
    let handle = facade.spawn(&scope.manifest("arena", server("north"))).await.expect("spawns from the template");
    let id = handle.id.clone();
    let port = handle.ports.iter().find(|p| p.name == "game").expect("the template's port").port;
    let (greeting, _) = tcp_exchange(handle.address.as_deref().unwrap(), port);
    assert_eq!(greeting, "hello from north", "the variable reached the game");
    // The install ran once, before the game, on the volume mounted at the
    // template's files path, where the game starts (GAME_CONFIG is relative).
    log_with(&facade, &id, "installed 1 times for north").await;
    let info = facade.info(&id).await.unwrap();
    assert_eq!(info.template.as_deref(), Some("ClusterGameTemplate/arena"));
    assert_eq!(info.image, IMAGE);
    assert!(info.healthy, "{info:?}");

    // A bad value is refused naming the variable and its rule; nothing changes.
    let bad = scope.manifest("arena", server("not a name"));
    match facade.apply(&bad).await {
        Err(Error::Unresolved { template, problems }) => {
            assert_eq!(template, "ClusterGameTemplate/arena");
            assert!(problems.iter().any(|p| p.contains("GAME_NAME") && p.contains("alpha_dash")), "{problems:?}");
        }
        other => panic!("expected Unresolved, got {other:?}"),
    }
    // A template that was not given is named.
    let mut unknown = server("north");
    unknown["template"]["name"] = json!("nowhere");
    match facade.spawn(&scope.manifest("other", unknown)).await {
        Err(Error::TemplateNotFound(name)) => assert_eq!(name, "ClusterGameTemplate/nowhere"),
        other => panic!("expected TemplateNotFound, got {other:?}"),
    }

    // A new process, given no template: the server is planned from the
    // template in the state file, and an apply takes that one.
    facade.disconnect().await;
    drop(facade);
    let mut again = Mettaton::<B>::on(daemon(), scope.state()).with_supervisor_image(&sup);
    let recovery = again.connect().await.expect("connects again");
    assert_eq!(recovery.picked_up, std::slice::from_ref(&id));
    let info = again.info(&id).await.unwrap();
    assert_eq!((info.template.as_deref(), info.image.as_str()), (Some("ClusterGameTemplate/arena"), IMAGE));
    assert!(info.healthy, "planned as it runs: {info:?}");
    let unchanged = again.apply(&scope.manifest("arena", server("north"))).await.expect("the same manifest");
    assert_eq!(unchanged, Applied::Unchanged { id: id.clone() });
    // Another value: the game replaced, the install job run again before it
    // and the script skipped by the volume's marker (still 1 run).
    let applied = again.apply(&scope.manifest("arena", server("south"))).await.expect("updates");
    let Applied::Updated { handle, changes } = applied else { panic!("expected Updated, got {applied:?}") };
    assert_eq!(changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), ["spec.variables.GAME_NAME"]);
    let port = handle.ports.iter().find(|p| p.name == "game").unwrap().port;
    let (greeting, _) = tcp_exchange(handle.address.as_deref().unwrap(), port);
    assert_eq!(greeting, "hello from south");
    let logs = log_with(&again, &id, "listening").await;
    assert!(logs.contains("installed 1 times for north"), "the script did not run again: {logs}");
    assert!(!logs.contains("installed 2 times"), "{logs}");
    again.shutdown(&id).await.expect("shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_a_templated_server_installs_once_runs_and_is_planned_again_from_the_state() {
    a_templated_server_installs_once_runs_and_is_planned_again_from_the_state::<SwarmOrchestrator>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_a_templated_server_installs_once_runs_and_is_planned_again_from_the_state() {
    a_templated_server_installs_once_runs_and_is_planned_again_from_the_state::<DockerOrchestrator>().await;
}

/// The plan of the templated server `name`, resolved as the facade does.
fn plan_of(scope_ns: &str, name: &str, install: &str) -> mettaton::plan::ServerPlan {
    let gs: mettaton::api::GameServer = serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": scope_ns }, "spec": server(name)
    }))
    .unwrap();
    let t = template(install);
    let resolved = mettaton::template::resolve(&gs.spec, "ClusterGameTemplate/arena", &t.spec).unwrap();
    mettaton::plan::plan_resolved(&gs, &resolved)
}

/// A failing install script: the apply is refused with its last lines, the
/// game is not started, `observe` shows `InstallFailed` with them, and a
/// second apply of the same install does not run it again (the same job or
/// container, still failed); teardown removes it.
async fn a_failed_install_is_the_servers_problem_and_is_not_run_again<B: Backend>(install_object: fn(&str) -> String) {
    let scope = Scope::<B>::new("tplf");
    let backend = B::connect(&daemon()).await.expect("connects").with_supervisor_image(&supervisor_image().await);
    let plan = plan_of(&scope.namespace, "broken", "echo fetching the server\necho 'no such version' >&2\nexit 3");
    let owner = Owner { name: plan.name.clone(), namespace: plan.namespace.clone(), uid: None };
    let err = backend.apply(&owner, &plan).await.expect_err("the install fails").to_string();
    assert!(err.contains("install exited with 3:") && err.contains("no such version"), "{err}");
    let observed = backend.observe(&plan).await.unwrap();
    let instance = observed.instance.expect("the install is the instance");
    assert!(!instance.running, "the game is not started: {instance:?}");
    let problem = instance.problem.expect("a problem");
    assert_eq!((problem.kind, problem.reason.as_str()), (ProblemKind::InstallFailed, "InstallFailed"));
    let message = problem.message.unwrap_or_default();
    assert!(message.starts_with("install exited with 3:") && message.contains("no such version"), "{message}");
    let name = install_object(&scope.namespace);
    let first = object_id(&name).await.expect("the failed install is kept");
    let again = backend.apply(&owner, &plan).await.expect_err("still failed").to_string();
    assert!(again.contains("no such version"), "{again}");
    assert_eq!(object_id(&name).await, Some(first), "not run again for the same install");
    eventually("the teardown", WAIT, || async {
        match backend.teardown(&plan, mettaton::api::ReclaimPolicy::Delete).await {
            Ok(Teardown::Done) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(object_id(&name).await, None, "the install is removed with the server");
}

/// The id of the service, else the container, of that name.
async fn object_id(name: &str) -> Option<String> {
    let docker = docker();
    if let Ok(s) = docker.inspect_service(name, None).await {
        return s.id;
    }
    docker.inspect_container(name, None).await.ok().and_then(|c| c.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_a_failed_install_is_the_servers_problem_and_is_not_run_again() {
    a_failed_install_is_the_servers_problem_and_is_not_run_again::<SwarmOrchestrator>(|ns| {
        format!("mettaton-{ns}-broken-install")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_a_failed_install_is_the_servers_problem_and_is_not_run_again() {
    a_failed_install_is_the_servers_problem_and_is_not_run_again::<DockerOrchestrator>(|ns| {
        format!("mettaton-{ns}-broken-install")
    })
    .await;
}

/// `mettaton swarm apply -f server.yaml --template template.yaml`, then
/// `get` and `describe` naming the template; without `--template`, the
/// template is named as not known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_applies_a_server_with_a_template_from_a_file() {
    let scope = Scope::<SwarmOrchestrator>::new("tplc");
    let t = template(INSTALL);
    let template_file = scope.dir.join("template.yaml");
    let doc = json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "ClusterGameTemplate",
        "metadata": { "name": "arena" }, "spec": t.spec
    });
    std::fs::write(&template_file, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let server_file = scope.dir.join("server.yaml");
    let manifest = scope.manifest("cli", server("cli"));
    std::fs::write(&server_file, serde_yaml::to_string(&manifest).unwrap()).unwrap();
    let sup = supervisor_image().await;
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
            .args(["swarm", "-n", &scope.namespace, "--supervisor-image", &sup, "--state"])
            .arg(scope.state())
            .args(args)
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let server_path = server_file.to_str().unwrap();
    let refused = cli(&["apply", "-f", server_path]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("ClusterGameTemplate/arena is not known"), "{}", text(&refused));
    let applied = cli(&["apply", "-f", server_path, "--template", template_file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(text(&applied).contains(&format!("gameserver {}/cli spawned at", scope.namespace)), "{}", text(&applied));
    let get = cli(&["get"]);
    let table = text(&get);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    let at = header.iter().position(|h| *h == "TEMPLATE").expect("a TEMPLATE column");
    assert_eq!(row[at], "ClusterGameTemplate/arena", "{table}");
    let describe = text(&cli(&["describe", "cli"]));
    assert!(describe.contains("Template:    ClusterGameTemplate/arena"), "{describe}");
    assert!(describe.contains(&format!("Image:       {IMAGE}")), "{describe}");
    let deleted = cli(&["delete", "cli"]);
    assert!(deleted.status.success(), "{}", text(&deleted));
}

/// The test game's template of tests/templates/testgame.yaml, as the real
/// node runs it (`real_node_template`): its install script, its edits in four
/// parsers, its "Done" line and its console stop, on swarm and plain Docker.
async fn the_test_games_template_installs_once_edits_its_files_and_stops_through_the_console<B: Backend>() {
    let scope = Scope::<B>::new("tpl-game");
    let text = std::fs::read_to_string(crate::support::root().join("tests/templates/testgame.yaml")).unwrap();
    let template: mettaton::api::ClusterGameTemplate = serde_yaml::from_str(&text).unwrap();
    let template = Template { kind: TemplateKind::ClusterGameTemplate, name: "testgame".into(), spec: template.spec.0 };
    let mut facade = Mettaton::<B>::on(daemon(), scope.state())
        .with_supervisor_image(&supervisor_image().await)
        .with_template(template);
    facade.connect().await.expect("connects");
    let spec = |state: &str| {
        json!({
            "template": { "name": "testgame", "kind": "ClusterGameTemplate" },
            "variables": { "GAME_NAME": "arena", "MAX_PLAYERS": "50" },
            "storage": { "size": "1Gi", "reclaimPolicy": "Delete" },
            "state": state
        })
    };
    let manifest = scope.manifest("arena", spec("Running"));
    let handle = facade.spawn(&manifest).await.expect("spawns from the template");
    let id = handle.id.clone();
    let healthy = || async {
        eventually("the server healthy", WAIT, || async {
            let info = facade.info(&id).await.map_err(|e| e.to_string())?;
            if info.healthy { Ok(()) } else { Err(format!("{info:?}")) }
        })
        .await
    };
    healthy().await;
    let volume = B::volume_name(&mettaton::plan::plan_spec("arena", &scope.namespace, &manifest.spec));
    let dir = docker().inspect_volume(&volume).await.expect("the server's volume").mountpoint;
    let dir = std::path::PathBuf::from(dir);
    crate::real_node_template::assert_installed_and_edited(&dir, 1);
    // Ready only from the "Done" line, printed after the game listens and
    // read the edited files.
    let logs = log_with(&facade, &id, "Done (").await;
    assert!(logs.contains("motd=arena on mettaton"), "the game read the edited file: {logs}");
    assert!(logs.find("game server listening tcp=7777").unwrap() < logs.find("Done (").unwrap(), "{logs}");

    // Stopped through the template's stop, typed into the console (the game
    // ignores signals): the world is saved.
    facade.apply(&scope.manifest("arena", spec("Stopped"))).await.expect("stops");
    eventually("the world saved", WAIT, || async {
        let world = std::fs::read_to_string(dir.join("world.sav")).unwrap_or_default();
        if world == "starts=1\ndata=\n" { Ok(()) } else { Err(world) }
    })
    .await;
    // Running again: the same world, and no second install.
    facade.apply(&scope.manifest("arena", spec("Running"))).await.expect("starts again");
    healthy().await;
    log_with(&facade, &id, "loaded world starts=2").await;
    crate::real_node_template::assert_installed_and_edited(&dir, 1);
    facade.shutdown(&id).await.expect("shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_the_test_games_template_installs_once_edits_its_files_and_stops_through_the_console() {
    the_test_games_template_installs_once_edits_its_files_and_stops_through_the_console::<SwarmOrchestrator>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_the_test_games_template_installs_once_edits_its_files_and_stops_through_the_console() {
    the_test_games_template_installs_once_edits_its_files_and_stops_through_the_console::<DockerOrchestrator>().await;
}

/// A reinstall asked (`mettaton.dev/reinstall`) with a template whose script
/// fails: the update is refused with the script's last lines, the server is
/// kept (stopped, `Failed` with them, not vanished), and the next apply with
/// a fixed script runs it again under the same token and starts the game.
async fn a_failed_reinstall_keeps_the_server_and_a_fixed_script_runs_again<B: Backend>() {
    let scope = Scope::<B>::new("tplr");
    let sup = supervisor_image().await;
    let mut facade =
        Mettaton::<B>::on(daemon(), scope.state()).with_supervisor_image(&sup).with_template(template(INSTALL));
    facade.connect().await.expect("connects");
    let handle = facade.spawn(&scope.manifest("arena", server("north"))).await.expect("spawns");
    let id = handle.id;
    let mut reinstall = scope.manifest("arena", server("north"));
    reinstall.metadata.annotations =
        Some([("mettaton.dev/reinstall".to_string(), "2026-12-04T05:00:00Z".to_string())].into());
    facade.add_template(template("echo 'no such version' >&2\nexit 4"));
    let err = facade.apply(&reinstall).await.expect_err("the reinstall fails").to_string();
    assert!(err.contains("install exited with 4:") && err.contains("no such version"), "{err}");
    let info = eventually("the failed install in info", WAIT, || async {
        let info = facade.info(&id).await.map_err(|e| e.to_string())?;
        if info.problem.as_deref().is_some_and(|p| p.contains("no such version")) {
            Ok(info)
        } else {
            Err(format!("{info:?}"))
        }
    })
    .await;
    assert_eq!(info.phase, mettaton::api::Phase::Failed, "{info:?}");
    assert!(!info.running, "the game is not started over a failed install: {info:?}");
    assert_eq!(facade.list().await.unwrap().len(), 1, "the server is kept");
    // Fixed: the same token, whose install never succeeded, runs again.
    facade.add_template(template(INSTALL));
    let applied = facade.apply(&reinstall).await.expect("the fixed install runs");
    let Applied::Updated { handle, .. } = applied else { panic!("expected Updated, got {applied:?}") };
    let port = handle.ports.iter().find(|p| p.name == "game").unwrap().port;
    let (greeting, _) = tcp_exchange(handle.address.as_deref().unwrap(), port);
    assert_eq!(greeting, "hello from north");
    log_with(&facade, &id, "installed 2 times for north").await;
    facade.shutdown(&id).await.expect("shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_a_failed_reinstall_keeps_the_server_and_a_fixed_script_runs_again() {
    a_failed_reinstall_keeps_the_server_and_a_fixed_script_runs_again::<SwarmOrchestrator>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_a_failed_reinstall_keeps_the_server_and_a_fixed_script_runs_again() {
    a_failed_reinstall_keeps_the_server_and_a_fixed_script_runs_again::<DockerOrchestrator>().await;
}
