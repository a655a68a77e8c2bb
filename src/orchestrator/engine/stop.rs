//! The stop of a server: its grace period, and `shutdown.stopCommand` run by
//! exec before the engine stops the container.

use std::time::Duration;

use bollard::Docker;
use futures::StreamExt;

use crate::plan::ServerPlan;

/// The seconds a server gets between the stop request and the kill.
pub fn grace(plan: &ServerPlan) -> Duration {
    Duration::from_secs(u64::try_from(plan.grace_period_seconds.max(1)).unwrap_or(1))
}

/// `shutdown.stopCommand`, run by exec in the server's running `container`,
/// for at most the grace period. As a failing preStop hook on Kubernetes, a
/// command that fails or times out is logged and the stop goes on.
pub async fn run_stop_command(docker: &Docker, plan: &ServerPlan, server: &str, container: &str) {
    use bollard::exec::StartExecResults;
    let command = &plan.container.stop_command;
    if command.is_empty() {
        return;
    }
    let run = async {
        let config = bollard::models::ExecConfig {
            cmd: Some(command.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = docker.create_exec(container, config).await?;
        if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec.id, None).await? {
            while let Some(chunk) = output.next().await {
                chunk?;
            }
        }
        docker.inspect_exec(&exec.id).await
    };
    match tokio::time::timeout(grace(plan), run).await {
        Ok(Ok(done)) if done.exit_code == Some(0) => tracing::info!(gameserver = server, "stop command ran"),
        Ok(Ok(done)) => tracing::warn!(gameserver = server, exit_code = ?done.exit_code, "stop command failed"),
        Ok(Err(e)) => tracing::warn!(gameserver = server, error = %e, "stop command could not run"),
        Err(_) => tracing::warn!(gameserver = server, "stop command still running after the grace period"),
    }
}
