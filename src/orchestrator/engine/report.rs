//! The supervisor's report read from a running container on its engine:
//! `mettaton-supervisor status` run there by exec ([`supervisor::status_command`]),
//! its output collected and its exit code checked. The engine's API reaches
//! the container without any network path to it, and the supervisor serves
//! nothing (`supervisor::command_unserved`): the container has no port of
//! mettaton's.

use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures::StreamExt;

use crate::orchestrator::BackendError;
use crate::supervisor::{self, Report};

use super::status_of;

/// How long one read may take: the exec made, run and inspected.
pub const REPORT_EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// What the exec of `mettaton-supervisor status` gave.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: Option<i64>,
}

/// The report of the supervisor in the running `container`, with the
/// matched lines from `since` on; `None` when the container is not running
/// (the engine refuses an exec there with 409). `what` names the read in
/// errors ("read the supervisor's report of GameServer NS/NAME (container
/// ...)"); an engine error is made the backend's by `error`.
pub async fn read_report(
    docker: &Docker,
    container: &str,
    since: u64,
    what: String,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<Option<Report>, BackendError> {
    let run = async {
        let config = ExecConfig {
            cmd: Some(supervisor::status_command(since)),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = match docker.create_exec(container, config).await {
            Ok(exec) => exec,
            // Stopped (or stopping) since it was seen running.
            Err(e) if status_of(&e) == Some(409) => return Ok(None),
            Err(e) => return Err(error(what.clone(), e)),
        };
        let mut out = ExecOutput { stdout: Vec::new(), stderr: Vec::new(), exit_code: None };
        match docker.start_exec(&exec.id, None).await.map_err(|e| error(what.clone(), e))? {
            StartExecResults::Attached { mut output, .. } => {
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(|e| error(what.clone(), e))? {
                        LogOutput::StdOut { message } => out.stdout.extend_from_slice(&message),
                        LogOutput::StdErr { message } => out.stderr.extend_from_slice(&message),
                        _ => {}
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        out.exit_code = docker.inspect_exec(&exec.id).await.map_err(|e| error(what.clone(), e))?.exit_code;
        Ok(Some(out))
    };
    match tokio::time::timeout(REPORT_EXEC_TIMEOUT, run).await {
        Ok(Ok(Some(out))) => parse_report(&out).map(Some).map_err(|reason| BackendError::Other { what, reason }),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BackendError::Other {
            what,
            reason: format!("`mettaton-supervisor status` gave no answer within {} s", REPORT_EXEC_TIMEOUT.as_secs()),
        }),
    }
}

/// The report `mettaton-supervisor status` printed, or why there is none:
/// its exit code and message (exit 1: no supervisor keeps a report there
/// yet), or output that is no report.
pub fn parse_report(out: &ExecOutput) -> Result<Report, String> {
    let shown = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        if text.chars().count() > 200 {
            format!("{}...", text.chars().take(200).collect::<String>())
        } else {
            text.to_string()
        }
    };
    match out.exit_code {
        Some(0) => serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("`mettaton-supervisor status` printed no report ({e}): {}", shown(&out.stdout))),
        // 126, 127: the exec could not start the binary (its volume not mounted).
        code => Err(format!(
            "`mettaton-supervisor status` exited with {}: {}",
            code.map_or_else(|| "no exit code".to_string(), |c| format!("code {c}")),
            match shown(&out.stderr) {
                said if said.is_empty() => shown(&out.stdout),
                said => said,
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(stdout: &str, stderr: &str, exit_code: Option<i64>) -> ExecOutput {
        ExecOutput { stdout: stdout.into(), stderr: stderr.into(), exit_code }
    }

    #[test]
    fn the_report_printed_is_read_and_a_failure_says_why() {
        let printed = r#"{"boot":"1767225600123","ready":true,"players":{"count":1,"names":["zoe"]},"events":[],"nextSeq":3}
"#;
        let report = parse_report(&out(printed, "", Some(0))).unwrap();
        assert_eq!((report.boot.as_str(), report.next_seq), ("1767225600123", 3));
        assert_eq!(report.players.unwrap().names, ["zoe"]);
        let none = parse_report(&out("", "no report in /.mettaton/run: no supervisor runs there\n", Some(1)));
        assert_eq!(
            none.unwrap_err(),
            "`mettaton-supervisor status` exited with code 1: no report in /.mettaton/run: no supervisor runs there"
        );
        let missing = parse_report(&out("exec: no such file or directory\n", "", Some(127))).unwrap_err();
        assert_eq!(missing, "`mettaton-supervisor status` exited with code 127: exec: no such file or directory");
        let garbled = parse_report(&out("{\"boot\":", "", Some(0))).unwrap_err();
        assert!(garbled.starts_with("`mettaton-supervisor status` printed no report ("), "{garbled}");
        assert!(garbled.ends_with(": {\"boot\":"), "{garbled}");
        let long = parse_report(&out(&"x".repeat(500), "", Some(0))).unwrap_err();
        assert!(long.ends_with(&format!(": {}...", "x".repeat(200))), "{long}");
        assert!(parse_report(&out("", "", None)).unwrap_err().contains("exited with no exit code"));
    }
}
