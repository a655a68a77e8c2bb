//! mettaton's supervisor in a game's container (the `mettaton-supervisor`
//! crate, `supervisor/`): where it lives there, the command line that starts
//! the game under it, its readiness check, and the check of what a spec asks
//! of it. Pure: the backends put these into their objects.

use mettaton_supervisor::{Config, Pattern, Stop};

use crate::plan::{Check, ContainerPlan, ServerPlan, SupervisorPlan};

/// Where the supervisor's volume is mounted in the game's container: its
/// binary and its state (the ready and players files).
pub const MOUNT: &str = "/.mettaton";
/// The supervisor's binary in the game's container.
pub const BINARY: &str = "/.mettaton/bin/mettaton-supervisor";
/// The supervisor's state directory in the game's container.
pub const STATE_DIR: &str = "/.mettaton/run";
/// The supervisor's binary in its own image: an image holding only the
/// static binary of scripts/build-supervisor there (the tests make one).
pub const IMAGE_BINARY: &str = "/mettaton-supervisor";
/// The supervisor's image when the controller is given none
/// (`--supervisor-image`): the one of this release.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/mettaton/mettaton-supervisor:", env!("CARGO_PKG_VERSION"));

/// What is wrong with what the spec asks of the supervisor, each naming its
/// field; empty when it can run.
pub fn problems(plan: &SupervisorPlan) -> Vec<String> {
    let mut problems: Vec<String> = plan
        .ready
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Pattern::parse(p).err().map(|e| format!("spec.health.readyLogLine[{i}]: {e}")))
        .collect();
    if let Some(Err(e)) = plan.stop.as_deref().map(Stop::parse) {
        problems.push(format!("spec.shutdown.stop: {e}"));
    }
    problems
}

/// The name of the lock file the supervisor holds on the data volume while
/// the game runs (`mettaton_supervisor::Config::lock`).
pub const LOCK_FILE: &str = ".mettaton-lock";

/// The supervisor's configuration for a server whose plan has one; the
/// patterns are assumed checked ([`problems`]): a bad one is left out.
fn config(plan: &ServerPlan, supervisor: &SupervisorPlan) -> Config {
    let container = &plan.container;
    let game = container.command.iter().chain(&container.args).cloned().collect();
    let mut config = Config::new(STATE_DIR, game);
    config.ready = supervisor.ready.iter().filter_map(|p| Pattern::parse(p).ok()).collect();
    if let Some(Ok(stop)) = supervisor.stop.as_deref().map(Stop::parse) {
        config.stop = stop;
    }
    config.grace = std::time::Duration::from_secs(plan.grace_period_seconds.max(0) as u64);
    config.lock = plan.volume.as_ref().map(|v| format!("{}/{LOCK_FILE}", v.mount_path.trim_end_matches('/')).into());
    config
}

/// The container's command line: the supervisor, running the game.
pub fn command(plan: &ServerPlan, supervisor: &SupervisorPlan) -> Vec<String> {
    let mut command = vec![BINARY.to_string(), "run".to_string()];
    command.extend(config(plan, supervisor).to_args());
    command
}

/// The readiness check of a supervised container: the ready line when one is
/// awaited, and the plan's own check when it has one.
pub fn probe(container: &ContainerPlan, supervisor: &SupervisorPlan) -> Option<Vec<String>> {
    if supervisor.ready.is_empty() {
        return None;
    }
    let mut probe = vec![BINARY.to_string(), "probe".to_string(), "--state-dir".to_string(), STATE_DIR.to_string()];
    match &container.readiness {
        Some(Check::Tcp { port }) => probe.extend(["--tcp".to_string(), port.to_string()]),
        Some(Check::Exec { command }) => {
            probe.push("--".to_string());
            probe.extend(command.iter().cloned());
        }
        None => {}
    }
    Some(probe)
}

/// The command of the container that copies the supervisor into the volume.
pub fn install_command() -> Vec<String> {
    vec![IMAGE_BINARY.to_string(), "install".to_string(), format!("{MOUNT}/bin")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::plan;

    /// The Minecraft server with a command, and `extra` on top.
    fn supervised_plan(extra: serde_json::Value) -> ServerPlan {
        let mut spec = fixtures::minecraft_spec_json();
        spec["command"] = serde_json::json!(["/start"]);
        spec["args"] = serde_json::json!(["--nogui"]);
        for (key, value) in extra.as_object().unwrap() {
            spec[key] = value.clone();
        }
        plan::plan(&fixtures::game_server("mc", spec))
    }

    fn supervised(extra: serde_json::Value) -> ContainerPlan {
        supervised_plan(extra).container
    }

    #[test]
    fn the_game_runs_under_the_supervisor_with_its_command_and_args() {
        let p = supervised_plan(serde_json::json!({
            "health": { "readyLogLine": ["Done (", "regex:^ready$"] },
            "shutdown": { "stop": "stop", "gracePeriodSeconds": 45 },
            "storage": { "size": "1Gi", "mountPath": "/data/" }
        }));
        let s = p.container.supervisor.clone().expect("supervised");
        let line = command(&p, &s);
        assert_eq!(
            line,
            [
                BINARY,
                "run",
                "--state-dir",
                STATE_DIR,
                "--ready",
                "Done (",
                "--ready",
                "regex:^ready$",
                "--stop",
                "stop",
                "--lock",
                "/data/.mettaton-lock",
                "--grace",
                "45",
                "--",
                "/start",
                "--nogui"
            ]
        );
        // Without a volume, no lock.
        let p = supervised_plan(serde_json::json!({ "shutdown": { "stop": "stop" } }));
        assert!(!command(&p, p.container.supervisor.as_ref().unwrap()).contains(&"--lock".to_string()));
        let line = command(
            &supervised_plan(serde_json::json!({
                "health": { "readyLogLine": ["Done ("] }, "shutdown": { "stop": "stop" }
            })),
            &SupervisorPlan { ready: vec!["Done (".into()], stop: Some("stop".into()) },
        );
        // The supervisor reads back what the backend wrote.
        let back = Config::from_args(&line[2..]).unwrap();
        assert_eq!(back.command, ["/start", "--nogui"]);
        assert_eq!(back.stop, Stop::Line("stop".into()));
    }

    #[test]
    fn the_probe_awaits_the_ready_line_and_the_probe_asked_for() {
        let c = supervised(serde_json::json!({ "health": { "readyLogLine": ["Done"] } }));
        let s = c.supervisor.clone().unwrap();
        // No probe asked: the ready line alone, not the default TCP check.
        assert_eq!(probe(&c, &s).unwrap(), [BINARY, "probe", "--state-dir", STATE_DIR]);
        let c = supervised(serde_json::json!({
            "health": { "readyLogLine": ["Done"], "probe": { "tcpPort": "game" } }
        }));
        let s = c.supervisor.clone().unwrap();
        assert_eq!(probe(&c, &s).unwrap(), [BINARY, "probe", "--state-dir", STATE_DIR, "--tcp", "25565"]);
        let c = supervised(serde_json::json!({
            "health": { "readyLogLine": ["Done"], "probe": { "exec": ["mc-health", "-q"] } }
        }));
        let s = c.supervisor.clone().unwrap();
        assert_eq!(probe(&c, &s).unwrap(), [BINARY, "probe", "--state-dir", STATE_DIR, "--", "mc-health", "-q"]);
        // A stop command alone: the usual readiness check, no supervisor probe.
        let c = supervised(serde_json::json!({ "shutdown": { "stop": "^C" } }));
        assert_eq!(probe(&c, c.supervisor.as_ref().unwrap()), None);
        assert_eq!(c.readiness, Some(Check::Tcp { port: 25565 }));
    }

    #[test]
    fn nothing_asked_of_the_supervisor_means_none() {
        assert_eq!(supervised(serde_json::json!({})).supervisor, None);
    }

    #[test]
    fn problems_name_the_field_and_the_cause() {
        let plan = SupervisorPlan { ready: vec!["ok".into(), "regex:(".into()], stop: Some("SIGWINCH".into()) };
        let p = problems(&plan);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("spec.health.readyLogLine[1]: `regex:(` is not a valid regular expression"), "{p:?}");
        assert!(p[1].starts_with("spec.shutdown.stop: `SIGWINCH` is not a signal"), "{p:?}");
        assert!(problems(&SupervisorPlan { ready: vec!["Done".into()], stop: Some("stop".into()) }).is_empty());
    }
}
