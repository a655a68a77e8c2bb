//! mettaton's supervisor in a game's container (the `mettaton-supervisor`
//! crate, `supervisor/`): where it lives there, the command line that starts
//! the game under it, its readiness check, and the check of what a spec asks
//! of it. Pure: the backends put these into their objects.

use mettaton_supervisor::{Config, Pattern, Stop};
use serde::{Deserialize, Serialize};

use crate::api::{ConfigParser, Protocol};
use crate::plan::{
    Check, ContainerPlan, EditedFile, INSTALL_LOG, INSTALL_MARKER, INSTALL_PATH, InstallPlan, ServerPlan,
    SupervisorPlan,
};

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

/// The port the supervisor serves its report on inside a Kubernetes pod
/// (`--http`), which the controller reads through the API server's pod proxy.
pub const STATUS_PORT: u16 = 9396;

/// The supervisor's report (`GET /status?since=N`, `mettaton-supervisor
/// status`): one JSON object, the contract between the supervisor and mettaton.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// When this supervisor started (unix milliseconds, in decimal): another
    /// value means the container restarted, and the events' `seq` start over.
    pub boot: String,
    /// The game printed one of its ready lines.
    pub ready: bool,
    /// The players online; `None` when no join pattern was given.
    pub players: Option<PlayersReport>,
    /// The matched lines with `seq >= since`, oldest first (the last 100).
    pub events: Vec<EventReport>,
    /// The `seq` the next matched line will get.
    pub next_seq: u64,
}

/// The players the supervisor counted from the join and leave lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayersReport {
    pub count: u32,
    /// At most 100, sorted.
    pub names: Vec<String>,
}

/// A line of the game's output that matched an `--event` pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    /// Counts from 0 in each boot, never repeated within one.
    pub seq: u64,
    /// The reason of the pattern it matched.
    pub reason: String,
    /// The line, its first 1024 bytes.
    pub line: String,
    /// When the supervisor saw it (unix milliseconds, in decimal).
    pub at: String,
}

/// Whether `reason` is a reason the supervisor and Kubernetes take for an
/// Event: a capital letter, then up to 63 letters and digits.
fn valid_reason(reason: &str) -> bool {
    let mut chars = reason.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && reason.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// What is wrong with what the spec asks of the supervisor, each naming its
/// field; empty when it can run. See [`server_problems`] for the whole
/// server's (its ports too).
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
    for (field, patterns) in [("joinLine", &plan.join), ("leaveLine", &plan.leave)] {
        for (i, p) in patterns.iter().enumerate() {
            if let Err(e) = Pattern::parse_player(p) {
                problems.push(format!("spec.players.{field}[{i}]: {e}"));
            }
        }
    }
    for (i, event) in plan.events.iter().enumerate() {
        if let Err(e) = Pattern::parse(&event.line) {
            problems.push(format!("spec.outputEvents[{i}].line: {e}"));
        }
        if !valid_reason(&event.reason) {
            problems.push(format!(
                "spec.outputEvents[{i}].reason: `{}` is not an Event reason (a capital letter, then up to 63 letters and digits)",
                event.reason
            ));
        }
        // The report names only the reason: an Event's type goes with it.
        if let Some((j, first)) = plan.events.iter().enumerate().take(i).find(|(_, e)| e.reason == event.reason)
            && first.warning != event.warning
        {
            let kind = |warning: bool| if warning { "Warning" } else { "Normal" };
            problems.push(format!(
                "spec.outputEvents[{i}].type: {} differs from the {} of spec.outputEvents[{j}], which has the same reason {}: entries sharing a reason share its type",
                kind(event.warning),
                kind(first.warning),
                event.reason
            ));
        }
    }
    problems
}

/// [`problems`] of the server's supervisor, if it has one, and a game port
/// that is the supervisor's own ([`STATUS_PORT`], where it serves its report).
pub fn server_problems(server: &ServerPlan) -> Vec<String> {
    let Some(plan) = server.container.supervisor.as_ref() else { return Vec::new() };
    let mut problems = problems(plan);
    if plan.reports() {
        for (i, port) in server.container.ports.iter().enumerate() {
            if port.protocol == Protocol::TCP && port.container_port == i32::from(STATUS_PORT) {
                problems.push(format!(
                    "spec.ports[{i}].containerPort: TCP port {STATUS_PORT} is where mettaton's supervisor serves the players and output events in the server's pod (spec.players, spec.outputEvents); the game must listen on another port"
                ));
            }
        }
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
    config.join = supervisor.join.iter().filter_map(|p| Pattern::parse_player(p).ok()).collect();
    config.leave = supervisor.leave.iter().filter_map(|p| Pattern::parse_player(p).ok()).collect();
    config.events =
        supervisor.events.iter().filter_map(|e| Pattern::parse(&e.line).ok().map(|p| (e.reason.clone(), p))).collect();
    // The report is served where the controller reads it (the pod proxy).
    config.http = supervisor.reports().then_some(STATUS_PORT);
    if let Some(Ok(stop)) = supervisor.stop.as_deref().map(Stop::parse) {
        config.stop = stop;
    }
    config.grace = std::time::Duration::from_secs(plan.grace_period_seconds.max(0) as u64);
    config.lock = plan.volume.as_ref().map(|v| format!("{}/{LOCK_FILE}", v.mount_path.trim_end_matches('/')).into());
    config.config_files = supervisor.config_files.iter().map(config_file).collect();
    config
}

/// A file the supervisor edits, in its own words.
fn config_file(file: &EditedFile) -> mettaton_supervisor::ConfigFile {
    use mettaton_supervisor::files::{Edit, Parser, Replacement};
    let parser = match file.parser {
        ConfigParser::File => Parser::File,
        ConfigParser::Properties => Parser::Properties,
        ConfigParser::Yaml => Parser::Yaml,
        ConfigParser::Ini => Parser::Ini,
        ConfigParser::Json => Parser::Json,
        ConfigParser::Xml => Parser::Xml,
    };
    let edits =
        file.edits
            .iter()
            .map(|e| Edit {
                key: e.key.clone(),
                value: e.value.clone(),
                replace: e.replace.as_ref().map(|r| {
                    r.iter().map(|r| Replacement { matches: r.match_.clone(), value: r.value.clone() }).collect()
                }),
            })
            .collect();
    mettaton_supervisor::ConfigFile { path: file.path.clone(), parser, edits }
}

/// The container's command line: the supervisor, running the game.
pub fn command(plan: &ServerPlan, supervisor: &SupervisorPlan) -> Vec<String> {
    command_line(&config(plan, supervisor))
}

/// The container's command line for a backend that reads the report by exec
/// ([`status_command`]: swarm, plain Docker): as [`command`], without
/// `--http`, so that the game's container has no port of mettaton's.
pub fn command_unserved(plan: &ServerPlan, supervisor: &SupervisorPlan) -> Vec<String> {
    let mut config = config(plan, supervisor);
    config.http = None;
    command_line(&config)
}

fn command_line(config: &Config) -> Vec<String> {
    let mut command = vec![BINARY.to_string(), "run".to_string()];
    command.extend(config.to_args());
    command
}

/// The command that prints the report of the supervisor running in the
/// container, with the matched lines from `since` on (exit 1 when it has
/// none yet): what a backend without network access to the container runs
/// there by exec.
pub fn status_command(since: u64) -> Vec<String> {
    [BINARY, "status", "--state-dir", STATE_DIR, "--since", &since.to_string()].map(String::from).to_vec()
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

/// Kubernetes' termination message file, where a failed install leaves its
/// last lines for the container's status.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// The command of the container that runs a template's install script: the
/// supervisor (mounted at [`MOUNT`]) runs `ENTRYPOINT -c SCRIPT` unless the
/// volume (at [`INSTALL_PATH`]) says an install with the plan's token ran,
/// keeps its log there, and on failure leaves the last lines in
/// `termination_log` when given.
pub fn install_run_command(install: &InstallPlan, termination_log: Option<&str>) -> Vec<String> {
    let mut command: Vec<String> = vec![
        BINARY.into(),
        "install-run".into(),
        "--marker".into(),
        format!("{INSTALL_PATH}/{INSTALL_MARKER}"),
        "--token".into(),
        install.token.clone(),
        "--log".into(),
        format!("{INSTALL_PATH}/{INSTALL_LOG}"),
    ];
    if let Some(file) = termination_log {
        command.extend(["--termination-log".into(), file.into()]);
    }
    command.extend(["--".into(), install.entrypoint.clone(), "-c".into(), install.script.clone()]);
    command
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
            &SupervisorPlan { ready: vec!["Done (".into()], stop: Some("stop".into()), ..Default::default() },
        );
        // The supervisor reads back what the backend wrote.
        let back = Config::from_args(&line[2..]).unwrap();
        assert_eq!(back.command, ["/start", "--nogui"]);
        assert_eq!(back.stop, Stop::Line("stop".into()));
    }

    /// A template's config files reach the supervisor as it reads them:
    /// each parser, values and conditional replacements.
    #[test]
    fn config_files_are_on_the_command_line_as_the_supervisor_reads_them() {
        use crate::api::{ConfigEdit, Replacement};
        let mut p = supervised_plan(serde_json::json!({ "shutdown": { "stop": "stop" } }));
        let parsers = [
            ConfigParser::File,
            ConfigParser::Properties,
            ConfigParser::Yaml,
            ConfigParser::Ini,
            ConfigParser::Json,
            ConfigParser::Xml,
        ];
        let s = p.container.supervisor.as_mut().unwrap();
        s.config_files = parsers
            .iter()
            .enumerate()
            .map(|(i, parser)| EditedFile {
                path: format!("/home/container/file{i}"),
                parser: *parser,
                edits: vec![
                    ConfigEdit { key: "a.b".into(), value: Some(format!("v{i}")), replace: None },
                    ConfigEdit {
                        key: "c".into(),
                        value: None,
                        replace: Some(vec![Replacement { match_: "regex:^x".into(), value: "y".into() }]),
                    },
                ],
            })
            .collect();
        let s = p.container.supervisor.clone().unwrap();
        let line = command(&p, &s);
        let back = Config::from_args(&line[2..]).unwrap();
        let want = ["file", "properties", "yaml", "ini", "json", "xml"];
        assert_eq!(back.config_files.len(), 6);
        for (i, file) in back.config_files.iter().enumerate() {
            assert_eq!(file.path, format!("/home/container/file{i}"));
            assert_eq!(serde_json::to_value(file.parser).unwrap(), want[i]);
            assert_eq!((file.edits[0].key.as_str(), file.edits[0].value.as_deref()), ("a.b", Some(&*format!("v{i}"))));
            let replace = file.edits[1].replace.as_ref().unwrap();
            assert_eq!((replace[0].matches.as_str(), replace[0].value.as_str()), ("regex:^x", "y"));
        }
    }

    #[test]
    fn players_and_output_events_are_on_the_command_line_with_the_report_served() {
        let p = supervised_plan(serde_json::json!({
            "players": { "joinLine": ["regex:^(?P<player>\\S+) joined"], "leaveLine": ["regex:^(\\S+) left"] },
            "outputEvents": [
                { "line": "saved the world", "reason": "WorldSaved" },
                { "line": "regex:^\\[chat\\]", "reason": "Chat", "type": "Warning" }
            ]
        }));
        let line = command(&p, p.container.supervisor.as_ref().unwrap());
        let at =
            |flag: &str| -> Vec<&str> { line.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect() };
        assert_eq!(at("--join"), ["regex:^(?P<player>\\S+) joined"]);
        assert_eq!(at("--leave"), ["regex:^(\\S+) left"]);
        assert_eq!(at("--event"), ["WorldSaved=saved the world", "Chat=regex:^\\[chat\\]"]);
        assert_eq!(at("--http"), ["9396"]);
        let back = Config::from_args(&line[2..]).unwrap();
        assert_eq!((back.join.len(), back.leave.len(), back.http), (1, 1, Some(STATUS_PORT)));
        assert_eq!(back.events.iter().map(|(r, p)| format!("{r}={p}")).collect::<Vec<_>>(), at("--event"));
        assert_eq!(back.command, ["/start", "--nogui"]);
        // Without players or events, nothing is served.
        let p = supervised_plan(serde_json::json!({ "shutdown": { "stop": "stop" } }));
        assert!(!command(&p, p.container.supervisor.as_ref().unwrap()).contains(&"--http".to_string()));
    }

    #[test]
    fn a_backend_reading_by_exec_starts_the_supervisor_without_its_port_and_runs_status() {
        let p = supervised_plan(serde_json::json!({
            "players": { "joinLine": ["regex:^(?P<player>\\S+) joined"], "leaveLine": ["regex:^(\\S+) left"] },
            "outputEvents": [{ "line": "saved the world", "reason": "WorldSaved" }]
        }));
        let s = p.container.supervisor.as_ref().unwrap();
        let served = command(&p, s);
        let unserved = command_unserved(&p, s);
        let back = Config::from_args(&unserved[2..]).unwrap();
        assert_eq!((back.http, back.join.len(), back.events.len()), (None, 1, 1));
        // Everything else as served: only `--http 9396` differs.
        let without: Vec<&String> = served.iter().filter(|a| *a != "--http" && *a != "9396").collect();
        assert_eq!(without, unserved.iter().collect::<Vec<_>>());
        assert_eq!(status_command(7), [BINARY, "status", "--state-dir", STATE_DIR, "--since", "7"]);
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
        let mut p = supervised_plan(serde_json::json!({
            "health": { "readyLogLine": ["ok", "regex:("] }, "shutdown": { "stop": "SIGWINCH" }
        }));
        let problems_of = |p: &ServerPlan| server_problems(p);
        let found = problems_of(&p);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("spec.health.readyLogLine[1]: `regex:(` is not a valid regular expression"),
            "{found:?}"
        );
        assert!(found[1].starts_with("spec.shutdown.stop: `SIGWINCH` is not a signal"), "{found:?}");
        p.container.supervisor =
            Some(SupervisorPlan { ready: vec!["Done".into()], stop: Some("stop".into()), ..Default::default() });
        assert!(problems_of(&p).is_empty());
        assert!(problems_of(&supervised_plan(serde_json::json!({}))).is_empty(), "no supervisor, no problem");
    }

    #[test]
    fn player_patterns_must_capture_the_name_and_events_need_a_reason_and_one_type_per_reason() {
        let p = supervised_plan(serde_json::json!({
            "players": {
                "joinLine": ["regex:^(?P<player>\\S+) joined", "regex:^someone joined$"],
                "leaveLine": ["left the game"]
            },
            "outputEvents": [
                { "line": "regex:^\\[chat\\] (.*)", "reason": "Chat" },
                { "line": "regex:(", "reason": "bad reason" },
                { "line": "said", "reason": "Chat", "type": "Warning" }
            ]
        }));
        let found = problems(p.container.supervisor.as_ref().unwrap());
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(
            found[0]
                .starts_with("spec.players.joinLine[1]: `regex:^someone joined$` does not capture the player's name"),
            "{found:#?}"
        );
        assert!(found[1].starts_with("spec.players.leaveLine[0]: `left the game` does not capture"), "{found:#?}");
        assert!(
            found[2].starts_with("spec.outputEvents[1].line: `regex:(` is not a valid regular expression"),
            "{found:#?}"
        );
        assert!(found[3].starts_with("spec.outputEvents[1].reason: `bad reason` is not an Event reason"), "{found:#?}");
        assert!(
            found[4].starts_with("spec.outputEvents[2].type: Warning differs from the Normal of spec.outputEvents[0]"),
            "{found:#?}"
        );
        for (reason, valid) in
            [("Chat", true), ("A", true), ("X9y", true), ("chat", false), ("", false), ("Chat!", false)]
        {
            assert_eq!(valid_reason(reason), valid, "{reason}");
        }
        assert!(valid_reason(&format!("A{}", "b".repeat(63))));
        assert!(!valid_reason(&format!("A{}", "b".repeat(64))));
    }

    #[test]
    fn the_status_port_is_refused_as_a_game_port_only_where_the_supervisor_serves_it() {
        let ports = serde_json::json!([
            { "name": "game", "containerPort": 9396 },
            { "name": "query", "containerPort": 9396, "protocol": "UDP" }
        ]);
        let p = supervised_plan(serde_json::json!({
            "ports": ports,
            "outputEvents": [{ "line": "saved", "reason": "Saved" }]
        }));
        let found = server_problems(&p);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.ports[0].containerPort: TCP port 9396 is where mettaton's supervisor serves"),
            "{found:?}"
        );
        // A stop alone: the supervisor serves nothing, the port is the game's.
        let p = supervised_plan(serde_json::json!({ "ports": ports, "shutdown": { "stop": "stop" } }));
        assert!(server_problems(&p).is_empty());
    }

    /// The report as the supervisor writes it (the contract's JSON, keys in
    /// its order) reads into [`Report`].
    #[test]
    fn the_report_reads_the_supervisors_json() {
        let text = r#"{"boot":"1767225600123","ready":true,"players":{"count":2,"names":["alex","zoe"]},"events":[{"seq":4,"reason":"Chat","line":"<zoe> hi","at":"1767225601000"}],"nextSeq":5}"#;
        let report: Report = serde_json::from_str(text).unwrap();
        assert_eq!(
            report,
            Report {
                boot: "1767225600123".into(),
                ready: true,
                players: Some(PlayersReport { count: 2, names: vec!["alex".into(), "zoe".into()] }),
                events: vec![EventReport {
                    seq: 4,
                    reason: "Chat".into(),
                    line: "<zoe> hi".into(),
                    at: "1767225601000".into()
                }],
                next_seq: 5,
            }
        );
        assert_eq!(serde_json::to_string(&report).unwrap(), text, "and writes it back the same");
        let without: Report =
            serde_json::from_str(r#"{"boot":"1","ready":false,"players":null,"events":[],"nextSeq":0}"#).unwrap();
        assert_eq!((without.players, without.events.len(), without.next_seq), (None, 0, 0));
    }
}
