//! A template's install script on a Docker Engine, on swarm as on plain
//! Docker: what runs it (the install's image, the game's environment, the
//! server's volume at [`INSTALL_PATH`], mettaton's supervisor running the
//! script, [`crate::supervisor::install_run_command`]), the labels that tie
//! the run to its server, and what a failed run's log says.
//!
//! The supervisor skips the script when the volume's marker holds the
//! plan's token, so a run on a volume that has it is cheap; the backends
//! still run one only when the game's service or container is created or
//! changes ([`LABEL_INSTALL`] is on both, and part of what they compare).

use std::collections::BTreeMap;

use bollard::models::Mount;

use crate::orchestrator::BackendError;
use crate::orchestrator::observed::{Endpoint, Instance, Observed, Problem, ProblemKind, Workload};
use crate::plan::{ANNOTATION_REINSTALL, Fnv1a, INSTALL_PATH, ServerPlan};
use crate::supervisor;

use super::{LABEL_NAMESPACE, LABEL_UID, display_name, installer_mount, namespace, volume_mounts};

/// On the install's job or container: the hash of what it runs
/// ([`InstallRun::hash`]); on the game's service or container: the hash of
/// the install that must have run before it, so that a changed install
/// changes the game's too (and runs again).
pub const LABEL_INSTALL: &str = "mettaton.dev/install";
/// On the install's job or container: which server it installs (the game's
/// [`crate::plan::LABEL_GAMESERVER`] is not on it, nor
/// [`super::LABEL_MANAGED`]: it is no server, and neither `list_managed` nor
/// the event streams may take it for one).
pub const LABEL_INSTALL_OF: &str = "mettaton.dev/install-of";
/// What a failed install's problem says.
pub const INSTALL_FAILED: &str = "InstallFailed";
/// The most lines of a failed install's log a message keeps when the
/// supervisor's own summary (`install exited with N:`) is not in it.
const TAIL_LINES: usize = 20;

/// What runs a plan's install script.
#[derive(Clone, Debug, PartialEq)]
pub struct InstallRun {
    pub image: String,
    /// The supervisor's `install-run`, then the script's entrypoint and
    /// script.
    pub command: Vec<String>,
    /// The game's environment, `NAME=value`.
    pub env: Vec<String>,
    /// The server's volume at [`INSTALL_PATH`], the supervisor's (read-only)
    /// where the game's container has it.
    pub mounts: Vec<Mount>,
    /// [`LABEL_INSTALL_OF`], [`LABEL_NAMESPACE`], [`LABEL_INSTALL`] (and the
    /// owner's uid when known).
    pub labels: BTreeMap<String, String>,
    /// A hash of all of the above: another value is another install.
    pub hash: String,
}

/// What runs the plan's install script, with the server's data volume
/// `volume` and the supervisor of `supervisor_image`; `None` when the plan
/// has no install. Refused (the reason, naming the field) for a server
/// without storage: the files an install script writes live on the server's
/// volume, and without one they would be lost before the game starts.
/// `env` is the game's environment (refused the backend's way before).
pub fn install_run(
    plan: &ServerPlan,
    volume: &str,
    supervisor_image: &str,
    env: Vec<String>,
    owner_uid: Option<&str>,
) -> Result<Option<InstallRun>, String> {
    let Some(install) = &plan.install else { return Ok(None) };
    let Some(mut data) = volume_mounts(plan, volume.to_string()).and_then(|m| m.into_iter().next()) else {
        return Err(
            "the template's install script needs spec.storage: the files it installs are kept on the server's \
             volume, and an engine has no other place that the game's container would find them in"
                .to_string(),
        );
    };
    if install.image.is_empty() {
        return Err("the template's install.image is empty: the install script needs an image to run in".into());
    }
    data.target = Some(INSTALL_PATH.to_string());
    let bin = Mount { read_only: Some(true), ..installer_mount(supervisor_image) };
    let command = supervisor::install_run_command(install, None);
    let mut hash = Fnv1a::default();
    let parts = [install.image.as_str(), volume, supervisor_image].into_iter();
    for part in parts.chain(command.iter().map(String::as_str)).chain(env.iter().map(String::as_str)) {
        hash.write(part.as_bytes());
        hash.write(b"\0");
    }
    let hash = hash.short();
    let mut labels = BTreeMap::from([
        (LABEL_INSTALL_OF.to_string(), plan.name.clone()),
        (LABEL_NAMESPACE.to_string(), namespace(plan).to_string()),
        (LABEL_INSTALL.to_string(), hash.clone()),
    ]);
    if let Some(uid) = owner_uid {
        labels.insert(LABEL_UID.to_string(), uid.to_string());
    }
    Ok(Some(InstallRun { image: install.image.clone(), command, env, mounts: vec![data, bin], labels, hash }))
}

/// Whether an object with these labels is the install of the plan's server.
pub fn is_install_of(labels: Option<&std::collections::HashMap<String, String>>, plan: &ServerPlan) -> bool {
    labels.is_some_and(|l| {
        l.get(LABEL_INSTALL_OF).is_some_and(|n| *n == plan.name)
            && l.get(LABEL_NAMESPACE).is_some_and(|n| n == namespace(plan))
    })
}

/// The last lines of a failed install's log: from the supervisor's summary
/// (`install exited with N:`, `install killed by signal N:`, `install could
/// not run: ...`, which it prints last with the script's last lines, after
/// its name: `mettaton-supervisor: install exited with 3:`) on, or
/// the log's last lines when it has none (the supervisor itself failed).
/// Engine timestamps or stream prefixes are not expected: the log as the
/// engine gives it without them.
pub fn install_failure_lines(log: &str) -> String {
    let mut lines: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).collect();
    // The summary's line, and where on it the summary begins (after the
    // supervisor's `mettaton-supervisor: `).
    let summary = lines.iter().enumerate().rev().find_map(|(i, l)| {
        ["install exited with ", "install killed by signal ", "install could not run"]
            .iter()
            .find_map(|s| l.find(s))
            .map(|at| (i, at))
    });
    let start = match summary {
        Some((i, at)) => {
            lines[i] = &lines[i][at..];
            i
        }
        None => lines.len().saturating_sub(TAIL_LINES),
    };
    let tail: Vec<&str> = lines[start..].iter().copied().filter(|l| !l.is_empty()).collect();
    tail.join("\n")
}

/// The problem of a failed install: [`ProblemKind::InstallFailed`], its last
/// lines the message (`how` when the log says nothing: the engine's words
/// for how it ended).
pub fn install_failed(log: &str, how: &str) -> Problem {
    let lines = install_failure_lines(log);
    let message = if lines.is_empty() { how.to_string() } else { lines };
    Problem::new(ProblemKind::InstallFailed, INSTALL_FAILED, Some(message))
}

/// The refusal to start a server whose install failed on `runtime`: how it
/// ended, its last lines, and what runs it again.
pub fn install_failure(plan: &ServerPlan, runtime: &str, how: &str, log: &str) -> BackendError {
    let lines = install_failure_lines(log);
    let lines = if lines.is_empty() { how.to_string() } else { lines };
    BackendError::Refused {
        what: format!("install GameServer {} on {runtime}", display_name(plan)),
        reason: format!(
            "its template's install script failed ({how}), and the game is not started: {lines}\n(the same \
             install is not run again: a change of the template's install or of the server's environment, or a \
             reinstall ({ANNOTATION_REINSTALL}), runs it again, as does a new server once this one is removed)"
        ),
    }
}

/// The server while its install run `name` (a swarm job, a one-shot
/// container) is what there is of it: one instance wanted, none ready, the
/// install as the instance, not running the game; `problem` when it failed.
pub fn install_observed(name: &str, problem: Option<Problem>, backend_ref: Option<String>) -> Observed {
    Observed {
        workload: Some(Workload { desired: 1, ready: 0, rolled_out: false, existing: 0 }),
        instance: Some(Instance {
            name: name.to_string(),
            running: false,
            ready: false,
            restarts: 0,
            problem,
            terminating: false,
        }),
        endpoint: Endpoint::default(),
        backend_ref,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::plan::{INSTALL_LOG, INSTALL_MARKER, InstallPlan};

    fn plan(storage: bool) -> ServerPlan {
        let mut spec = fixtures::minecraft_spec_json();
        if storage {
            spec["storage"] = serde_json::json!({ "size": "1Gi", "mountPath": "/data" });
        }
        let mut plan = crate::plan::plan(&fixtures::game_server("mc", spec));
        plan.install = Some(InstallPlan {
            image: "ghcr.io/installers:alpine".into(),
            entrypoint: "ash".into(),
            script: "echo hi > /mnt/server/hi".into(),
            token: "initial".into(),
        });
        plan
    }

    #[test]
    fn the_install_runs_the_supervisor_over_the_script_with_the_volume_at_mnt_server() {
        let plan = plan(true);
        let run = install_run(&plan, "vol-data", "sup:1", vec!["A=1".into()], Some("u1")).unwrap().unwrap();
        assert_eq!(run.image, "ghcr.io/installers:alpine");
        assert_eq!(run.command[0], supervisor::BINARY);
        assert_eq!(run.command[1], "install-run");
        assert!(run.command.contains(&format!("{INSTALL_PATH}/{INSTALL_MARKER}")), "{:?}", run.command);
        assert!(run.command.contains(&format!("{INSTALL_PATH}/{INSTALL_LOG}")), "{:?}", run.command);
        assert_eq!(run.command[run.command.len() - 3..], ["ash", "-c", "echo hi > /mnt/server/hi"]);
        assert_eq!(run.env, ["A=1"]);
        let targets: Vec<_> =
            run.mounts.iter().map(|m| (m.target.as_deref(), m.source.as_deref(), m.read_only)).collect();
        assert_eq!(targets[0], (Some(INSTALL_PATH), Some("vol-data"), None));
        assert_eq!(targets[1].0, Some(super::super::SUPERVISOR_BIN));
        assert_eq!(targets[1].2, Some(true));
        assert_eq!(run.labels[LABEL_INSTALL_OF], plan.name);
        assert_eq!(run.labels[LABEL_INSTALL], run.hash);
        assert_eq!(run.labels[LABEL_UID], "u1");
        assert!(!run.labels.contains_key(super::super::LABEL_MANAGED), "no server: not listed, no events");
        assert!(is_install_of(Some(&run.labels.clone().into_iter().collect()), &plan));
    }

    #[test]
    fn another_token_script_image_or_environment_is_another_install() {
        let base = plan(true);
        let hash = |p: &ServerPlan, env: &[&str]| {
            install_run(p, "v", "s", env.iter().map(|s| s.to_string()).collect(), None).unwrap().unwrap().hash
        };
        let first = hash(&base, &["A=1"]);
        assert_eq!(hash(&base, &["A=1"]), first, "the same install, the same hash");
        assert_ne!(hash(&base, &["A=2"]), first);
        for change in [
            |i: &mut InstallPlan| i.token = "2026-12-04T04:00:00Z".into(),
            |i: &mut InstallPlan| i.script.push_str("\necho again"),
            |i: &mut InstallPlan| i.image = "debian:12".into(),
            |i: &mut InstallPlan| i.entrypoint = "bash".into(),
        ] {
            let mut changed = base.clone();
            change(changed.install.as_mut().unwrap());
            assert_ne!(hash(&changed, &["A=1"]), first);
        }
    }

    #[test]
    fn an_install_without_storage_is_refused_naming_it_and_no_install_is_none() {
        let reason = install_run(&plan(false), "v", "s", Vec::new(), None).unwrap_err();
        assert!(reason.contains("needs spec.storage"), "{reason}");
        let mut none = plan(true);
        none.install = None;
        assert_eq!(install_run(&none, "v", "s", Vec::new(), None), Ok(None));
    }

    #[test]
    fn a_failed_install_says_its_last_lines_from_the_supervisors_summary_on() {
        let log = "downloading\nfetching 1.21.4\ncurl: (6) Could not resolve host\n\
                   mettaton-supervisor: install exited with 6:\nfetching 1.21.4\ncurl: (6) Could not resolve host\n";
        let problem = install_failed(log, "task: non-zero exit (6)");
        assert_eq!(problem.kind, ProblemKind::InstallFailed);
        assert_eq!(problem.reason, INSTALL_FAILED);
        assert_eq!(
            problem.message.as_deref(),
            Some("install exited with 6:\nfetching 1.21.4\ncurl: (6) Could not resolve host")
        );
        // No summary (the supervisor could not start): the log's last lines.
        let log: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let lines = install_failure_lines(&log);
        assert!(lines.starts_with("line 11\n") && lines.ends_with("line 30"), "{lines}");
        // Nothing at all: the engine's words.
        assert_eq!(
            install_failed("", "task: non-zero exit (127)").message.as_deref(),
            Some("task: non-zero exit (127)")
        );
    }
}
